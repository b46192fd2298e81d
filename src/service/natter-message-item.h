/* natter-message-item.h: one message of a conversation, for models and signals
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

#include "natter-db.h"

G_BEGIN_DECLS

/* An immutable snapshot of a stored message plus a mutable delivery state
 * ("state" and "relay-via" are notified when the service learns more). */

#define NATTER_TYPE_MESSAGE_ITEM (natter_message_item_get_type ())
G_DECLARE_FINAL_TYPE (NatterMessageItem, natter_message_item, NATTER, MESSAGE_ITEM, GObject)

NatterMessageItem *natter_message_item_new (const NatterStoreMessage *message,
                                            const char               *peer_id);

gint64               natter_message_item_get_row_id          (NatterMessageItem *self);
const char          *natter_message_item_get_msg_id          (NatterMessageItem *self);
gint64               natter_message_item_get_conversation_id (NatterMessageItem *self);
/* The other side of the conversation. */
const char          *natter_message_item_get_peer_id         (NatterMessageItem *self);
const char          *natter_message_item_get_sender          (NatterMessageItem *self);
gboolean             natter_message_item_is_outgoing         (NatterMessageItem *self);
const char          *natter_message_item_get_kind            (NatterMessageItem *self);
const char          *natter_message_item_get_text            (NatterMessageItem *self);
gint64               natter_message_item_get_timestamp       (NatterMessageItem *self);
gint64               natter_message_item_get_sequence        (NatterMessageItem *self);
NatterStoreMessageState natter_message_item_get_state        (NatterMessageItem *self);
const char          *natter_message_item_get_relay_via       (NatterMessageItem *self);

/* Only forward (natter_store_message_state_can_advance); notifies. */
void                 natter_message_item_set_state           (NatterMessageItem      *self,
                                                              NatterStoreMessageState state,
                                                              const char             *relay_via);

G_END_DECLS
