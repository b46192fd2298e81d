/* natter-peer-connection-private.h: fault injection for tests
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include "natter-peer-connection.h"

G_BEGIN_DECLS

/* Called on the transport thread with every datagram the connection puts
 * on the wire (after encryption).  Tests use it to capture datagrams they
 * then replay, alter or cut short. */
typedef void (*NatterDatagramTap) (GBytes   *datagram,
                                   gpointer  user_data);

void natter_peer_connection_set_datagram_tap (NatterPeerConnection *self,
                                              NatterDatagramTap     tap,
                                              gpointer              user_data);
/* Feeds @datagram to the connection as if it had arrived from the network. */
void natter_peer_connection_inject_datagram  (NatterPeerConnection *self,
                                              GBytes               *datagram);

G_END_DECLS
