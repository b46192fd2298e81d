/* natter-new-group-dialog.h: name a group and pick its members
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-messaging-service.h"

G_BEGIN_DECLS

#define NATTER_TYPE_NEW_GROUP_DIALOG (natter_new_group_dialog_get_type ())
G_DECLARE_FINAL_TYPE (NatterNewGroupDialog, natter_new_group_dialog, NATTER, NEW_GROUP_DIALOG, AdwWindow)

/* Members are picked from the accepted contacts.  Creating the group opens
 * it in the parent NatterWindow. */
NatterNewGroupDialog *natter_new_group_dialog_new (NatterMessagingService *service);

G_END_DECLS
