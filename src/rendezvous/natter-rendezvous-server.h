/* natter-rendezvous-server.h: the rendezvous server's WebSocket endpoint
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define NATTER_RENDEZVOUS_DEFAULT_MAX_CONNECTIONS 10000
#define NATTER_RENDEZVOUS_DEFAULT_IDLE_TIMEOUT    120   /* seconds without a message */
#define NATTER_RENDEZVOUS_AUTH_TIMEOUT            10    /* seconds to register */
#define NATTER_RENDEZVOUS_KEEPALIVE_INTERVAL      30    /* seconds between WebSocket pings */
#define NATTER_RENDEZVOUS_RATE                    50.0  /* messages a second */
#define NATTER_RENDEZVOUS_BURST                   100.0
/* Signals delivered to one recipient, from all its contacts together. */
#define NATTER_RENDEZVOUS_DELIVERY_RATE           100.0
#define NATTER_RENDEZVOUS_DELIVERY_BURST          200.0

#define NATTER_TYPE_RENDEZVOUS_SERVER (natter_rendezvous_server_get_type ())
G_DECLARE_FINAL_TYPE (NatterRendezvousServer, natter_rendezvous_server, NATTER, RENDEZVOUS_SERVER, GObject)

NatterRendezvousServer *natter_rendezvous_server_new                (void);

void                    natter_rendezvous_server_set_max_connections (NatterRendezvousServer *self,
                                                                      guint                   max_connections);
void                    natter_rendezvous_server_set_idle_timeout    (NatterRendezvousServer *self,
                                                                      guint                   seconds);
/* Logs every incoming text frame; for debugging, and for the test that
 * shows the server sees only sealed blobs. */
void                    natter_rendezvous_server_set_dump_frames     (NatterRendezvousServer *self,
                                                                      gboolean                dump_frames);

/* Listens on @address:@port (0 picks a free port), with TLS when
 * @certificate is set.  Returns the port bound. */
guint                   natter_rendezvous_server_listen              (NatterRendezvousServer *self,
                                                                      GInetAddress           *address,
                                                                      guint                   port,
                                                                      GTlsCertificate        *certificate,
                                                                      GError                **error);

guint                   natter_rendezvous_server_get_n_connections   (NatterRendezvousServer *self);

G_END_DECLS
