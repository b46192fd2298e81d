/* natter-noise-channel.h: the secure channel over Noise_XX, with datagrams
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include "natter-noise.h"
#include "natter-secure-channel.h"

G_BEGIN_DECLS

#define NATTER_NOISE_CHANNEL_PROTOCOL "Noise_XX_25519_ChaChaPoly_BLAKE2b"

/* Datagram formats (first byte = type).  The type values sit outside the
 * ranges RFC 7983 gives STUN (0-3), DTLS (20-63) and TURN channels (64-79),
 * so a later DTLS channel could share the ICE component.
 *
 *   0x51 | Noise XX message 1     initiator -> responder
 *   0x52 | Noise XX message 2     responder -> initiator
 *   0x53 | Noise XX message 3     initiator -> responder
 *   0x54 | counter (8 bytes, big endian) | ChaChaPoly ciphertext and tag
 *
 * A data datagram's AEAD nonce is its counter and its associated data the
 * 9-byte header; the key is the epoch key of its direction (see
 * natter-noise-channel.c), so datagrams may be lost or reordered. */
#define NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE1  0x51
#define NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE2  0x52
#define NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE3  0x53
#define NATTER_NOISE_CHANNEL_TYPE_DATA        0x54

#define NATTER_NOISE_CHANNEL_HEADER_LEN       9
#define NATTER_NOISE_CHANNEL_OVERHEAD \
  (NATTER_NOISE_CHANNEL_HEADER_LEN + NATTER_NOISE_TAG_LEN)
#define NATTER_NOISE_CHANNEL_MAX_PLAINTEXT \
  (NATTER_NOISE_MAX_MESSAGE_LEN - NATTER_NOISE_CHANNEL_OVERHEAD)

/* Replay window: how far behind the newest counter a datagram may arrive. */
#define NATTER_NOISE_CHANNEL_REPLAY_WINDOW    1024
/* Each direction moves to its next key after this many counters ... */
#define NATTER_NOISE_CHANNEL_EPOCH_SHIFT      20
/* ... or after this long, whichever comes first. */
#define NATTER_NOISE_CHANNEL_REKEY_AFTER_US   (120 * G_USEC_PER_SEC)

/* Handshake retransmission: first timeout, its cap, and when to give up. */
#define NATTER_NOISE_CHANNEL_RTO_INITIAL_US   (200 * 1000)
#define NATTER_NOISE_CHANNEL_RTO_MAX_US       (6400 * 1000)
#define NATTER_NOISE_CHANNEL_HANDSHAKE_TIMEOUT_US (30 * G_USEC_PER_SEC)

#define NATTER_TYPE_NOISE_CHANNEL (natter_noise_channel_get_type ())
G_DECLARE_FINAL_TYPE (NatterNoiseChannel, natter_noise_channel,
                      NATTER, NOISE_CHANNEL, NatterSecureChannel)

/* @local_static_secret: this side's X25519 secret key (the identity's,
 * natter_identity_get_x25519_secret()).  @expected_remote_static: the
 * X25519 public key of the peer that was meant; a handshake that
 * authenticates any other key fails with NATTER_NOISE_ERROR_WRONG_PEER.
 * The two ends must take opposite roles. */
NatterSecureChannel *natter_noise_channel_new (NatterNoiseRole   role,
                                               const guint8     *local_static_secret,
                                               const guint8     *expected_remote_static,
                                               GError          **error);

/* The data path split in two, so that the AEAD can run on another thread
 * (see "Threads" in docs/architecture.md).  The cheap, stateful steps stay
 * with the owner of the channel: reserving a counter (and rekeying) before
 * a seal; checking the replay window and choosing the key before an open;
 * committing the counter to the window only once it authenticated.  The
 * seal and open themselves touch no channel state.  A job holds a copy of
 * one epoch's key: wipe it with natter_noise_channel_job_clear(). */
typedef struct
{
  guint8  key[NATTER_NOISE_KEY_LEN];
  guint64 counter;
} NatterNoiseChannelJob;

gboolean natter_noise_channel_reserve_seal  (NatterNoiseChannel     *self,
                                             gsize                   len,
                                             gint64                  now_us,
                                             NatterNoiseChannelJob  *job,
                                             GError                **error);
/* @datagram: room for len + NATTER_NOISE_CHANNEL_OVERHEAD bytes; may not
 * overlap @plaintext, unless @plaintext is exactly
 * datagram + NATTER_NOISE_CHANNEL_HEADER_LEN (sealing in place).  Any
 * thread. */
void     natter_noise_channel_job_seal      (const NatterNoiseChannelJob *job,
                                             const guint8                *plaintext,
                                             gsize                        len,
                                             guint8                      *datagram);
/* TRUE if @data is a data datagram that may be opened off the channel's
 * thread: fresh in the replay window, from the current or the previous
 * epoch.  FALSE for everything else, which goes to
 * natter_secure_channel_handle_datagram() as before. */
gboolean natter_noise_channel_prepare_open  (NatterNoiseChannel     *self,
                                             const guint8           *data,
                                             gsize                   len,
                                             NatterNoiseChannelJob  *job);
/* Opens @datagram in place: on success the plaintext starts at
 * datagram + NATTER_NOISE_CHANNEL_HEADER_LEN and is
 * len - NATTER_NOISE_CHANNEL_OVERHEAD bytes long.  Any thread. */
gboolean natter_noise_channel_job_open      (const NatterNoiseChannelJob *job,
                                             guint8                      *datagram,
                                             gsize                        len);
/* After natter_noise_channel_job_open(), on the channel's thread: counts
 * the datagram, and if it authenticated and is still fresh (another copy
 * may have been committed meanwhile), marks its counter as seen. */
gboolean natter_noise_channel_commit_open   (NatterNoiseChannel     *self,
                                             guint64                 counter,
                                             gboolean                authentic,
                                             GError                **error);
void     natter_noise_channel_job_clear     (NatterNoiseChannelJob  *job);

G_END_DECLS
