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

/* send_file_async() with a chosen offered @name and, when @fake_hash
 * (32 bytes) is given, that hash in the offer instead of the file's: for
 * tests of hostile names and of a failed verification.  natter-cli offers
 * them only with NATTER_TEST_HOOKS=1. */
void     natter_messaging_service_send_file_full_async (NatterMessagingService *self,
                                                        const char             *peer_id,
                                                        GFile                  *file,
                                                        const char             *name,
                                                        const guint8           *fake_hash,
                                                        GCancellable           *cancellable,
                                                        GAsyncReadyCallback     callback,
                                                        gpointer                user_data);
/* Puts @frame, unchanged, on bulk @stream of the connection to @peer_id:
 * for tests of forged file data frames. */
gboolean natter_messaging_service_send_raw_bulk     (NatterMessagingService  *self,
                                                     const char              *peer_id,
                                                     guint                    stream,
                                                     GBytes                  *frame,
                                                     GError                 **error);
/* Counters of one transfer in this process (FALSE when unknown). */
gboolean natter_messaging_service_get_transfer_counters (NatterMessagingService *self,
                                                         const char             *transfer_id,
                                                         guint64                *bytes_sent,
                                                         guint64                *bytes_received,
                                                         guint64                *duplicate_bytes,
                                                         guint64                *resumed_from,
                                                         guint                  *starts);
/* File data frames refused since start, by reason: 0 unknown transfer,
 * 1 not accepted, 2 beyond the offered size, 3 out of order, 4 malformed. */
guint64  natter_messaging_service_get_rejected_file_frames (NatterMessagingService *self,
                                                           guint                   reason);

G_END_DECLS
