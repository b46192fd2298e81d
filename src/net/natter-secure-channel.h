/* natter-secure-channel.h: the interface of a per-peer secure datagram channel
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

/* A secure channel turns an unreliable, unauthenticated datagram path (an
 * ICE pair) into an authenticated, encrypted one.  It is pure logic: it
 * opens no socket and reads no clock.  The transport thread drives it:
 *
 *   - feeds every received datagram to handle_datagram();
 *   - after start(), handle_datagram() and handle_timeout(), sends every
 *     datagram that pop_outgoing() hands out (handshake messages and
 *     their retransmissions);
 *   - arms a timer for get_timeout() and calls handle_timeout() then;
 *   - sends what encrypt() returns once the channel is established.
 *
 * Times are g_get_monotonic_time() microseconds, passed in so that tests
 * can run the clock.  An instance is used from one thread only.
 *
 * Noise (NatterNoiseChannel) implements it today; DTLS for browser peers
 * can be another subclass. */

#define NATTER_TYPE_SECURE_CHANNEL (natter_secure_channel_get_type ())
G_DECLARE_DERIVABLE_TYPE (NatterSecureChannel, natter_secure_channel,
                          NATTER, SECURE_CHANNEL, GObject)

typedef enum
{
  NATTER_SECURE_CHANNEL_STATE_NEW,          /* start() not called yet */
  NATTER_SECURE_CHANNEL_STATE_HANDSHAKING,
  NATTER_SECURE_CHANNEL_STATE_ESTABLISHED,
  NATTER_SECURE_CHANNEL_STATE_FAILED,       /* wrong peer or handshake timed out: final */
} NatterSecureChannelState;

#define NATTER_TYPE_SECURE_CHANNEL_STATE (natter_secure_channel_state_get_type ())
GType natter_secure_channel_state_get_type (void);

/* Datagrams a channel refused, by reason.  None of these is fatal: a
 * forged or damaged datagram is dropped and counted, and the channel goes on. */
typedef struct
{
  guint64 datagrams_sent;
  guint64 datagrams_received;            /* accepted, handshake or data */
  guint64 dropped_tampered;              /* failed authentication */
  guint64 dropped_replayed;              /* duplicate inside the replay window */
  guint64 dropped_too_old;               /* behind the replay window */
  guint64 dropped_truncated;             /* shorter than its header and tag */
  guint64 dropped_unexpected;            /* unknown type, or not valid in this state */
  guint64 handshake_retransmissions;
  guint64 send_epoch;                    /* how many times each direction rekeyed */
  guint64 recv_epoch;
} NatterSecureChannelStats;

struct _NatterSecureChannelClass
{
  GObjectClass parent_class;

  gboolean      (*start)                  (NatterSecureChannel       *self,
                                           gint64                     now_us,
                                           GError                   **error);
  gboolean      (*handle_datagram)        (NatterSecureChannel       *self,
                                           const guint8              *data,
                                           gsize                      len,
                                           gint64                     now_us,
                                           GBytes                   **plaintext_out,
                                           GError                   **error);
  GBytes       *(*encrypt)                (NatterSecureChannel       *self,
                                           const guint8              *plaintext,
                                           gsize                      len,
                                           gint64                     now_us,
                                           GError                   **error);
  GBytes       *(*pop_outgoing)           (NatterSecureChannel       *self);
  gint64        (*get_timeout)            (NatterSecureChannel       *self);
  void          (*handle_timeout)         (NatterSecureChannel       *self,
                                           gint64                     now_us);
  GBytes       *(*get_remote_static_key)  (NatterSecureChannel       *self);
  GBytes       *(*get_channel_binding)    (NatterSecureChannel       *self);
  void          (*get_stats)              (NatterSecureChannel       *self,
                                           NatterSecureChannelStats  *stats);

  gpointer padding[8];
};

/* Begins the handshake (an initiator queues its first message). */
gboolean natter_secure_channel_start (NatterSecureChannel  *self,
                                      gint64                now_us,
                                      GError              **error);
/* Handles one received datagram (untrusted).  Returns FALSE with @error
 * when it was dropped; that is fatal only if the state became FAILED.  On
 * TRUE, *@plaintext_out holds application data, or NULL when the datagram
 * was part of the handshake (then look at pop_outgoing()). */
gboolean natter_secure_channel_handle_datagram (NatterSecureChannel  *self,
                                                const guint8         *data,
                                                gsize                 len,
                                                gint64                now_us,
                                                GBytes              **plaintext_out,
                                                GError              **error);
/* The datagram that carries @plaintext; only once established. */
GBytes *natter_secure_channel_encrypt (NatterSecureChannel  *self,
                                       const guint8         *plaintext,
                                       gsize                 len,
                                       gint64                now_us,
                                       GError              **error);
/* The next datagram the channel itself wants sent, or NULL. */
GBytes *natter_secure_channel_pop_outgoing (NatterSecureChannel *self);
/* When to call handle_timeout() (monotonic microseconds), or -1 for never. */
gint64 natter_secure_channel_get_timeout (NatterSecureChannel *self);
void natter_secure_channel_handle_timeout (NatterSecureChannel *self,
                                           gint64               now_us);

NatterSecureChannelState natter_secure_channel_get_state (NatterSecureChannel *self);
gboolean natter_secure_channel_is_established (NatterSecureChannel *self);
/* The authenticated remote static key, or NULL before it is known. */
GBytes *natter_secure_channel_get_remote_static_key (NatterSecureChannel *self);
/* A value both ends share and no one else can choose (Noise: the handshake
 * hash), to bind higher-level authentication to this channel; NULL until
 * established. */
GBytes *natter_secure_channel_get_channel_binding (NatterSecureChannel *self);
void natter_secure_channel_get_stats (NatterSecureChannel      *self,
                                      NatterSecureChannelStats *stats);

/* For implementations: records a state change and notifies "state". */
void natter_secure_channel_set_state (NatterSecureChannel      *self,
                                      NatterSecureChannelState  state);

G_END_DECLS
