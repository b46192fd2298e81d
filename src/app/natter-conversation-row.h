/* natter-conversation-row.h: one conversation in the sidebar
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-messaging-service.h"

G_BEGIN_DECLS

#define NATTER_TYPE_CONVERSATION_ROW (natter_conversation_row_get_type ())
G_DECLARE_FINAL_TYPE (NatterConversationRow, natter_conversation_row, NATTER, CONVERSATION_ROW, GtkWidget)

NatterConversationRow *natter_conversation_row_new              (NatterMessagingService *service);
void                   natter_conversation_row_set_conversation (NatterConversationRow  *self,
                                                                 NatterConversation     *conversation);

G_END_DECLS
