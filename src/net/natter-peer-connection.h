/* natter-peer-connection.h: an encrypted multi-stream connection to one peer
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

#include "natter-ice.h"
#include "natter-identity.h"

G_BEGIN_DECLS

/* A peer connection is the whole per-peer stack: ICE (libnice) carries
 * datagrams, the Noise secure channel authenticates and encrypts them and
 * checks that the remote key is the one of the peer that was meant, and an
 * SCTP association (usrsctp) carries whole messages on independent streams.
 *
 * The object lives on the thread that creates it (the main context); all
 * of the stack runs on the process's transport thread (NatterTransport), and
 * signals are emitted on the creating thread's context.
 *
 * Signaling: the connection emits "signal" with small opaque blobs
 * (ICE credentials, candidates, end of candidates) that must reach the
 * other side's natter_peer_connection_handle_signal() by any route: the
 * rendezvous server, LAN discovery or another peer.  Blobs are untrusted
 * input there and are checked.
 *
 * Roles are not negotiated: the side whose peer ID sorts first is the ICE
 * controlling agent and the Noise initiator, so two peers that both start
 * at once never collide. */

#define NATTER_PEER_CONNECTION_ERROR (natter_peer_connection_error_quark ())

typedef enum
{
  NATTER_PEER_CONNECTION_ERROR_INVALID_SIGNAL,  /* a blob that is not a valid signal */
  NATTER_PEER_CONNECTION_ERROR_ICE_FAILED,      /* no path to the peer */
  NATTER_PEER_CONNECTION_ERROR_HANDSHAKE,       /* secure channel failed or timed out */
  NATTER_PEER_CONNECTION_ERROR_WRONG_PEER,      /* the remote key is not the peer's */
  NATTER_PEER_CONNECTION_ERROR_PEER_LOST,       /* nothing heard for too long */
  NATTER_PEER_CONNECTION_ERROR_CLOSED,          /* closed, locally or by the peer */
  NATTER_PEER_CONNECTION_ERROR_TOO_LARGE,       /* message over the size limit */
  NATTER_PEER_CONNECTION_ERROR_INVALID,         /* bad argument */
} NatterPeerConnectionError;

GQuark natter_peer_connection_error_quark (void);

typedef enum
{
  NATTER_PEER_CONNECTION_STATE_NEW,
  NATTER_PEER_CONNECTION_STATE_CONNECTING,  /* ICE, handshake or SCTP under way */
  NATTER_PEER_CONNECTION_STATE_CONNECTED,   /* messages flow */
  NATTER_PEER_CONNECTION_STATE_FAILED,      /* final; see the "error" property */
  NATTER_PEER_CONNECTION_STATE_CLOSED,      /* final */
} NatterPeerConnectionState;

#define NATTER_TYPE_PEER_CONNECTION_STATE (natter_peer_connection_state_get_type ())
GType natter_peer_connection_state_get_type (void);
const char *natter_peer_connection_state_to_string (NatterPeerConnectionState state);

/* Message streams.  CONTROL carries the connection's own keepalives and the
 * service's control traffic; CHAT is ordered and reliable; every bulk
 * transfer gets a stream of its own from FIRST_BULK up. */
#define NATTER_PEER_STREAM_CONTROL    0
#define NATTER_PEER_STREAM_CHAT       1
#define NATTER_PEER_STREAM_FIRST_BULK 2
#define NATTER_PEER_MAX_MESSAGE_SIZE  65536

/* A peer that is silent this long is lost: a side that has heard nothing
 * for NATTER_PEER_KEEPALIVE_MS sends a keepalive, which the peer's SCTP
 * acknowledges. */
#define NATTER_PEER_KEEPALIVE_MS      2000
#define NATTER_PEER_TIMEOUT_MS        10000

/* Largest signal blob accepted. */
#define NATTER_PEER_MAX_SIGNAL_LEN    1024

#define NATTER_TYPE_PEER_CONNECTION (natter_peer_connection_get_type ())
G_DECLARE_FINAL_TYPE (NatterPeerConnection, natter_peer_connection, NATTER, PEER_CONNECTION, GObject)

/* @remote_peer_id is the peer that must answer: a connection to anyone
 * else fails with WRONG_PEER.  @config may be NULL (host candidates only).
 * The NATTER_INTERFACES environment variable, when set, replaces the
 * config's interface list. */
NatterPeerConnection *natter_peer_connection_new (NatterIdentity        *identity,
                                                  const char            *remote_peer_id,
                                                  const NatterIceConfig *config,
                                                  GError               **error);

/* Starts gathering and connecting; "signal" follows. */
void        natter_peer_connection_start          (NatterPeerConnection  *self);
/* Feeds a blob the other side's "signal" produced. */
gboolean    natter_peer_connection_handle_signal  (NatterPeerConnection  *self,
                                                   GBytes                *blob,
                                                   GError               **error);
/* Sends one whole message (1..NATTER_PEER_MAX_MESSAGE_SIZE bytes) on
 * @stream.  Allowed from start(); queued until connected.  Refused (not
 * truncated) when too large. */
gboolean    natter_peer_connection_send           (NatterPeerConnection  *self,
                                                   guint16                stream,
                                                   GBytes                *message,
                                                   GError               **error);
/* Bytes handed to send() that the peer has not acknowledged yet. */
gsize       natter_peer_connection_get_buffered_amount (NatterPeerConnection *self);
/* "buffered-amount-low" fires when the buffered amount falls to or below
 * @threshold (default 256 KiB) after having been above it. */
void        natter_peer_connection_set_buffered_amount_low_threshold (NatterPeerConnection *self,
                                                                      gsize                 threshold);
void        natter_peer_connection_close          (NatterPeerConnection  *self);

NatterPeerConnectionState natter_peer_connection_get_state (NatterPeerConnection *self);
/* Why the connection failed or closed, or NULL. */
const GError *natter_peer_connection_get_error    (NatterPeerConnection  *self);
const char  *natter_peer_connection_get_remote_peer_id (NatterPeerConnection *self);
gboolean     natter_peer_connection_is_controlling (NatterPeerConnection *self);
/* The ICE pair in use ("host", "srflx", "prflx", "relay" on each side);
 * FALSE before connected. */
gboolean     natter_peer_connection_get_selected_pair (NatterPeerConnection *self,
                                                       NatterIcePairInfo    *info);

typedef struct
{
  guint64 messages_sent;
  guint64 messages_received;
  guint64 datagrams_dropped;   /* tampered, replayed, truncated, too old or unexpected */
  guint64 dropped_tampered;
  guint64 dropped_replayed;
  guint64 dropped_truncated;
  guint64 handshake_retransmissions;
} NatterPeerConnectionStats;

/* A snapshot, updated by the transport thread as it goes. */
void         natter_peer_connection_get_stats     (NatterPeerConnection      *self,
                                                   NatterPeerConnectionStats *stats);

G_END_DECLS
