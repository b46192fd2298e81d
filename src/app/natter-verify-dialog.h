/* natter-verify-dialog.h: compare safety numbers with a contact
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-messaging-service.h"

G_BEGIN_DECLS

#define NATTER_TYPE_VERIFY_DIALOG (natter_verify_dialog_get_type ())
G_DECLARE_FINAL_TYPE (NatterVerifyDialog, natter_verify_dialog, NATTER, VERIFY_DIALOG, AdwWindow)

NatterVerifyDialog *natter_verify_dialog_new (NatterMessagingService *service,
                                              const char             *peer_id);

G_END_DECLS
