/* natter-add-contact-dialog.h: add a contact by peer ID or invite link
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-messaging-service.h"

G_BEGIN_DECLS

#define NATTER_TYPE_ADD_CONTACT_DIALOG (natter_add_contact_dialog_get_type ())
G_DECLARE_FINAL_TYPE (NatterAddContactDialog, natter_add_contact_dialog, NATTER, ADD_CONTACT_DIALOG, AdwWindow)

NatterAddContactDialog *natter_add_contact_dialog_new (NatterMessagingService *service,
                                                       const char             *peer_id,
                                                       const char             *name);

G_END_DECLS
