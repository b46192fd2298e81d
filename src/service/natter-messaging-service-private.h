/* natter-messaging-service-private.h: test hooks of the messaging service
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include "natter-messaging-service.h"

G_BEGIN_DECLS

/* Sends @wire as one frame, unchanged, to the connected peer @peer_id:
 * for tests that must put forged or tampered messages on the wire (a
 * relay must refuse them).  natter-cli exposes it only when the
 * environment variable NATTER_TEST_HOOKS is 1. */
gboolean natter_messaging_service_send_raw_frame (NatterMessagingService  *self,
                                                  const char              *peer_id,
                                                  GBytes                  *wire,
                                                  GError                 **error);

G_END_DECLS
