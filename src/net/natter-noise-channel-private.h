/* natter-noise-channel-private.h: hooks for the tests of src/net only
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include "natter-noise-channel.h"

G_BEGIN_DECLS

/* Moves the send counter forward, so that a test reaches an epoch boundary
 * without sending 2^20 datagrams.  Never backwards, and never further than
 * the 64 epochs a receiver derives forward. */
void natter_noise_channel_skip_send_counter_for_testing (NatterNoiseChannel *self,
                                                         guint64             counter);

G_END_DECLS
