/* natter-app-util.h: small helpers shared by the widgets
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-messaging-service.h"

G_BEGIN_DECLS

/* Debug lines the UI tests read (G_MESSAGES_DEBUG=natter-ui): what a
 * widget shows, not what the service said. */
#define NATTER_UI_LOG_DOMAIN "natter-ui"
#define natter_ui_trace(...) g_log (NATTER_UI_LOG_DOMAIN, G_LOG_LEVEL_DEBUG, __VA_ARGS__)

NatterContact *natter_app_find_contact      (NatterMessagingService *service,
                                             const char             *peer_id);
char          *natter_app_dup_peer_name     (NatterMessagingService *service,
                                             const char             *peer_id);
char          *natter_app_format_time       (gint64                  timestamp_ms);
char          *natter_app_format_day        (gint64                  timestamp_ms);
char          *natter_app_format_size       (gint64                  bytes);
gboolean       natter_app_same_day          (gint64                  a_ms,
                                             gint64                  b_ms);
const char    *natter_app_presence_label    (NatterPresence          presence);
/* Groups: a member's name ("You" for ourselves), and a membership event
 * of the history as a sentence (NULL for one that is not shown). */
char          *natter_app_dup_member_name   (NatterMessagingService *service,
                                             const char             *peer_id);
char          *natter_app_dup_group_event   (NatterMessagingService *service,
                                             const char             *author,
                                             const char             *event);
/* Traces "@what at=X,Y", the centre of @widget in its window's surface,
 * for tests that click it with xdotool; once the next frame is laid out. */
void           natter_app_trace_position    (GtkWidget              *widget,
                                             const char             *what);

/* For the UI tests: whether natter-ui lines are wanted, and the centre of
 * @widget in its window's X coordinates (FALSE while it is not laid out). */
gboolean       natter_app_tracing           (void);
gboolean       natter_app_widget_center     (GtkWidget              *widget,
                                             int                    *x,
                                             int                    *y);

G_END_DECLS
