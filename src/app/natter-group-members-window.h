/* natter-group-members-window.h: a group's members, with presence
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-messaging-service.h"

G_BEGIN_DECLS

#define NATTER_TYPE_GROUP_MEMBERS_WINDOW (natter_group_members_window_get_type ())
G_DECLARE_FINAL_TYPE (NatterGroupMembersWindow, natter_group_members_window, NATTER, GROUP_MEMBERS_WINDOW, AdwWindow)

/* The admin may invite contacts and remove members here; the others see
 * the list only. */
NatterGroupMembersWindow *natter_group_members_window_new (NatterMessagingService *service,
                                                           const char             *group_id);

G_END_DECLS
