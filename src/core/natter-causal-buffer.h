/* natter-causal-buffer.h: causal delivery of messages in a group
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib.h>

#include "natter-vector-clock.h"

G_BEGIN_DECLS

/* A NatterCausalBuffer holds messages until everything they depend on has
 * been delivered, then hands them out in causal order.
 *
 * Members are interned to small indices (0, 1, 2, … in the order they are
 * added) and a message's vector clock is a guint64 array aligned with those
 * indices; a shorter array means 0 for the members past its end, so members
 * added later need no change to messages already held.
 *
 * A message from member j with clock VC is delivered when
 *   VC[j] == local[j] + 1   and   VC[k] <= local[k] for every k != j,
 * after which local[j] = VC[j].  A message with VC[j] <= local[j], or whose
 * (j, VC[j]) is already held, is a duplicate.
 *
 * Group chats: one buffer per group, one member per group member, and the
 * message clocks as sent.
 *
 * Direct chats: the same buffer gives per-sender sequence ordering.  Use one
 * member per sender (often just the peer) and pass the sender's sequence
 * number as its only counter, with natter_causal_buffer_add_sequence() or
 * natter_causal_buffer_add (buf, sender, &seq, 1, item) when sender is 0.
 * Messages of each sender then come out in sequence order with no gaps,
 * and different senders never wait for each other.
 *
 * Cost: O(1) amortised per message (plus the clock length), whatever the
 * number of held messages.  A held message takes about 40 + 8 × members
 * bytes plus a few cells; memory is given back as the buffer drains.  The
 * buffer holds whatever it is given: bound natter_causal_buffer_get_n_waiting()
 * per group (or per sender) in the caller, since a peer can send messages
 * that will never become deliverable.
 *
 * The buffer is not thread-safe; use it from one thread. */
typedef struct _NatterCausalBuffer NatterCausalBuffer;

typedef enum
{
  NATTER_CAUSAL_DELIVERED,  /* delivered (with anything it unblocked) */
  NATTER_CAUSAL_BUFFERED,   /* held until its dependencies arrive */
  NATTER_CAUSAL_DUPLICATE,  /* already delivered or already held: dropped */
} NatterCausalResult;

/* Called once per message, in causal order.  @clock is the message's clock
 * (@clock_len entries, aligned with member indices) and is only valid during
 * the call.  The callback owns @item from then on.  It may add members and
 * add messages to @buffer (those are delivered after it returns), but must
 * not free @buffer. */
typedef void (*NatterCausalDeliverFunc) (NatterCausalBuffer *buffer,
                                         guint               sender,
                                         const guint64      *clock,
                                         gsize               clock_len,
                                         gpointer            item,
                                         gpointer            user_data);

NatterCausalBuffer *natter_causal_buffer_new                (NatterCausalDeliverFunc   deliver,
                                                             gpointer                  user_data,
                                                             GDestroyNotify            item_free);
void                natter_causal_buffer_free               (NatterCausalBuffer       *self);

guint               natter_causal_buffer_add_member         (NatterCausalBuffer       *self,
                                                             const char               *peer_id);
gboolean            natter_causal_buffer_lookup_member      (NatterCausalBuffer       *self,
                                                             const char               *peer_id,
                                                             guint                    *out_index);
const char         *natter_causal_buffer_get_member         (NatterCausalBuffer       *self,
                                                             guint                     index);
guint               natter_causal_buffer_get_n_members      (NatterCausalBuffer       *self);

NatterCausalResult  natter_causal_buffer_add                (NatterCausalBuffer       *self,
                                                             guint                     sender,
                                                             const guint64            *clock,
                                                             gsize                     clock_len,
                                                             gpointer                  item);
NatterCausalResult  natter_causal_buffer_add_clock          (NatterCausalBuffer       *self,
                                                             const char               *sender,
                                                             const NatterVectorClock  *clock,
                                                             gpointer                  item);
NatterCausalResult  natter_causal_buffer_add_sequence       (NatterCausalBuffer       *self,
                                                             guint                     sender,
                                                             guint64                   sequence,
                                                             gpointer                  item);

const guint64      *natter_causal_buffer_get_local          (NatterCausalBuffer       *self,
                                                             gsize                    *out_len);
NatterVectorClock  *natter_causal_buffer_dup_local_clock    (NatterCausalBuffer       *self);
void                natter_causal_buffer_set_local          (NatterCausalBuffer       *self,
                                                             guint                     member,
                                                             guint64                   value);
guint               natter_causal_buffer_get_n_waiting      (NatterCausalBuffer       *self);
guint64             natter_causal_buffer_get_missing        (NatterCausalBuffer       *self,
                                                             guint                     member,
                                                             guint64                  *out_needed_up_to);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterCausalBuffer, natter_causal_buffer_free)

G_END_DECLS
