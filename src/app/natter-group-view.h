/* natter-group-view.h: the messages of one group and the composer
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-group-list.h"
#include "natter-messaging-service.h"

G_BEGIN_DECLS

#define NATTER_TYPE_GROUP_VIEW (natter_group_view_get_type ())
G_DECLARE_FINAL_TYPE (NatterGroupView, natter_group_view, NATTER, GROUP_VIEW, GtkWidget)

/* @groups is the window's list, which it marks read and tells of sent
 * messages. */
void        natter_group_view_set_service    (NatterGroupView        *self,
                                              NatterMessagingService *service,
                                              NatterGroupList        *groups);
const char *natter_group_view_get_group_id   (NatterGroupView        *self);
void        natter_group_view_set_group_id   (NatterGroupView        *self,
                                              const char             *group_id);
void        natter_group_view_mark_read      (NatterGroupView        *self);
void        natter_group_view_focus_composer (NatterGroupView        *self);

G_END_DECLS
