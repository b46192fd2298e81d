/* natter-transport.h: the transport thread
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

#include "natter-crypto-worker.h"

G_BEGIN_DECLS

#define NATTER_TYPE_TRANSPORT (natter_transport_get_type ())
G_DECLARE_FINAL_TYPE (NatterTransport, natter_transport, NATTER, TRANSPORT, GObject)

/* The transport thread runs libnice, the secure channels and usrsctp for
 * every peer connection of the process, on a GMainContext of its own, so
 * per-packet crypto and SCTP work never stalls a frame of the UI.
 *
 * usrsctp keeps process-wide state and is started without threads of its
 * own (usrsctp_init_nothreads), so all SCTP work of a process must happen on
 * one thread: that is why there is one shared transport per process rather
 * than one per connection.  natter_transport_dup_default() returns it,
 * starting the thread on first use; the thread stops when the last
 * reference is dropped. */
NatterTransport *natter_transport_dup_default (void);

GMainContext    *natter_transport_get_context (NatterTransport *self);
/* TRUE on the transport thread. */
gboolean         natter_transport_is_current  (NatterTransport *self);

/* Runs @func(@data) once on the transport thread, later (never
 * synchronously, even from the transport thread, so that no caller is
 * re-entered), in the order of the calls; its return value is ignored.
 * @destroy frees @data afterwards, on the transport thread. */
void             natter_transport_invoke      (NatterTransport *self,
                                               GSourceFunc      func,
                                               gpointer         data,
                                               GDestroyNotify   destroy);

/* The thread that seals and opens the secure channels' data datagrams;
 * its results come back on the transport context. */
NatterCryptoWorker *natter_transport_get_crypto_worker (NatterTransport *self);

G_END_DECLS
