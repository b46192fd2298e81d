/* natter-message-row.h: one message bubble of a conversation
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-message-item.h"
#include "natter-messaging-service.h"

G_BEGIN_DECLS

#define NATTER_TYPE_MESSAGE_ROW (natter_message_row_get_type ())
G_DECLARE_FINAL_TYPE (NatterMessageRow, natter_message_row, NATTER, MESSAGE_ROW, GtkWidget)

NatterMessageRow  *natter_message_row_new          (void);
NatterMessageItem *natter_message_row_get_item     (NatterMessageRow  *self);
void               natter_message_row_set_item     (NatterMessageRow  *self,
                                                    NatterMessageItem *item);
/* Shows the day above the bubble: the first message of a day. */
void               natter_message_row_set_show_day (NatterMessageRow  *self,
                                                    gboolean           show_day);
/* Group messages: the author's name, and our messages' receipts. */
void               natter_message_row_set_sender   (NatterMessageRow  *self,
                                                    const char        *name);
void               natter_message_row_set_receipts (NatterMessageRow       *self,
                                                    NatterMessagingService *service,
                                                    const char * const     *delivered_to,
                                                    const char * const     *read_by,
                                                    guint                   total);

G_END_DECLS
