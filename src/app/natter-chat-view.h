/* natter-chat-view.h: the messages of one conversation and the composer
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-messaging-service.h"

G_BEGIN_DECLS

#define NATTER_TYPE_CHAT_VIEW (natter_chat_view_get_type ())
G_DECLARE_FINAL_TYPE (NatterChatView, natter_chat_view, NATTER, CHAT_VIEW, GtkWidget)

void        natter_chat_view_set_service     (NatterChatView         *self,
                                              NatterMessagingService *service);
const char *natter_chat_view_get_peer_id     (NatterChatView         *self);
void        natter_chat_view_set_peer_id     (NatterChatView         *self,
                                              const char             *peer_id);
/* The open conversation's NatterHistoryModel, once it is open. */
GListModel *natter_chat_view_get_history     (NatterChatView         *self);
void        natter_chat_view_mark_read       (NatterChatView         *self);
void        natter_chat_view_focus_composer  (NatterChatView         *self);
void        natter_chat_view_jump_to_message (NatterChatView         *self,
                                              const char             *msg_id);
gboolean    natter_chat_view_send_files      (NatterChatView         *self,
                                              GdkFileList            *files);

G_END_DECLS
