/* natter-group-list.h: the groups, as conversations for the sidebar
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

#include "natter-messaging-service.h"

G_BEGIN_DECLS

#define NATTER_TYPE_GROUP_LIST (natter_group_list_get_type ())
G_DECLARE_FINAL_TYPE (NatterGroupList, natter_group_list, NATTER, GROUP_LIST, GObject)

/* A NatterConversation of kind group per group of the service's
 * NatterGroups, kept up to date from its signals: the name, the newest
 * message (preview and time) and the messages received since the group
 * was last marked read here. */
NatterGroupList    *natter_group_list_new        (NatterMessagingService *service);
GListModel         *natter_group_list_get_model  (NatterGroupList        *self);
/* (transfer none): the group's item, or NULL */
NatterConversation *natter_group_list_lookup     (NatterGroupList        *self,
                                                  const char             *group_id);
/* Marks the group read in the service and clears its unread count. */
void                natter_group_list_mark_read  (NatterGroupList        *self,
                                                  const char             *group_id);
/* One of our messages: it becomes the preview. */
void                natter_group_list_note_sent  (NatterGroupList        *self,
                                                  const char             *group_id,
                                                  const char             *text);

G_END_DECLS
