/* natter-noise-channel.c: the secure channel over Noise_XX, with datagrams
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include <sodium.h>

#include "natter-noise-channel-private.h"

/* The handshake is plain Noise_XX with empty payloads.  What follows it is
 * NOT Noise's transport phase: Noise's implicit nonces need in-order,
 * lossless delivery, and ICE gives neither.  So each data datagram carries
 * its counter, and that counter is the AEAD nonce under the keys Split()
 * gave (the scheme of WireGuard and DTLS 1.3).  A replay window stands in
 * for the ordering Noise would have enforced.
 *
 * Rekeying follows Noise's REKEY() (k = ENCRYPT(k, 2^64-1, "", zeros)[0:32])
 * but its epoch is part of the counter: epoch = counter >> EPOCH_SHIFT.  A
 * receiver learns from each datagram which key it needs, so both ends
 * rotate in step without a message of their own, and datagrams reordered
 * across the boundary still open with the previous epoch's key.  Rekeying
 * on time moves the send counter to the start of the next epoch. */

#define PROLOGUE          "natter secure channel v1"
#define EPOCH_LEN         (G_GUINT64_CONSTANT (1) << NATTER_NOISE_CHANNEL_EPOCH_SHIFT)
/* Far below 2^64 - 1, the nonce REKEY uses; a channel that got here would
 * have to re-handshake, which at 2^20 datagrams a second takes 280k years. */
#define MAX_COUNTER       (G_GUINT64_CONSTANT (1) << 62)
/* How many epochs a receiver will derive forward for one datagram; bounds
 * the work a forged counter can cause. */
#define MAX_EPOCH_SKIP    64
#define WINDOW_WORDS      (NATTER_NOISE_CHANNEL_REPLAY_WINDOW / 64 + 1)

/* A sliding window over the newest REPLAY_WINDOW counters, as a ring of
 * 64-bit words indexed by counter / 64 (RFC 6479): sliding forward clears
 * whole words instead of shifting the bitmap.  One spare word makes the
 * full REPLAY_WINDOW usable whatever the alignment of the newest counter. */
typedef struct
{
  guint64  top;
  gboolean any;
  guint64  bits[WINDOW_WORDS];
} ReplayWindow;

typedef enum
{
  WINDOW_FRESH,
  WINDOW_DUPLICATE,
  WINDOW_TOO_OLD,
} WindowVerdict;

/* Keys, in sodium_malloc()'d memory. */
typedef struct
{
  guint8 static_secret[NATTER_NOISE_DH_LEN];
  guint8 send_key[NATTER_NOISE_KEY_LEN];
  guint8 recv_key[NATTER_NOISE_KEY_LEN];
  guint8 recv_prev_key[NATTER_NOISE_KEY_LEN];
  /* Scratch for deriving a later epoch before its datagram is authentic. */
  guint8 next_key[NATTER_NOISE_KEY_LEN];
  guint8 next_prev_key[NATTER_NOISE_KEY_LEN];
} Secrets;

struct _NatterNoiseChannel
{
  NatterSecureChannel       parent_instance;

  NatterNoiseRole           role;
  Secrets                  *secrets;
  guint8                    expected_remote[NATTER_NOISE_DH_LEN];
  guint8                    handshake_hash[NATTER_NOISE_HASH_LEN];

  /* Handshake; NULL once established or failed. */
  NatterNoiseHandshake     *hs;
  /* Whole datagrams, kept to retransmit them and to recognise duplicates. */
  GBytes                   *msg1;
  GBytes                   *msg2;
  GBytes                   *msg3;
  GQueue                    outgoing;
  gint64                    next_timeout_us;
  gint64                    deadline_us;
  gint64                    rto_us;
  gint64                    msg2_sent_us;

  /* Data */
  guint64                   send_counter;
  guint64                   send_epoch;
  gint64                    send_epoch_start_us;
  guint64                   recv_epoch;
  gboolean                  has_recv_prev;
  ReplayWindow              window;

  NatterSecureChannelStats  stats;
};

G_DEFINE_FINAL_TYPE (NatterNoiseChannel, natter_noise_channel, NATTER_TYPE_SECURE_CHANNEL)

/* ---- Replay window ----------------------------------------------------- */

static WindowVerdict
window_check (const ReplayWindow *w,
              guint64             counter)
{
  if (!w->any || counter > w->top)
    return WINDOW_FRESH;
  if (w->top - counter >= NATTER_NOISE_CHANNEL_REPLAY_WINDOW)
    return WINDOW_TOO_OLD;
  if (w->bits[(counter >> 6) % WINDOW_WORDS] & (G_GUINT64_CONSTANT (1) << (counter & 63)))
    return WINDOW_DUPLICATE;
  return WINDOW_FRESH;
}

/* Only for a counter window_check() called fresh and that authenticated. */
static void
window_accept (ReplayWindow *w,
               guint64       counter)
{
  if (!w->any)
    {
      memset (w->bits, 0, sizeof w->bits);
      w->top = counter;
      w->any = TRUE;
    }
  else if (counter > w->top)
    {
      guint64 top_word = w->top >> 6;
      guint64 new_word = counter >> 6;

      if (new_word - top_word >= WINDOW_WORDS)
        memset (w->bits, 0, sizeof w->bits);
      else
        for (guint64 i = top_word + 1; i <= new_word; i++)
          w->bits[i % WINDOW_WORDS] = 0;
      w->top = counter;
    }
  w->bits[(counter >> 6) % WINDOW_WORDS] |= G_GUINT64_CONSTANT (1) << (counter & 63);
}

/* ---- Helpers ----------------------------------------------------------- */

static gboolean
drop (guint64           *counter,
      GError           **error,
      NatterNoiseError   code,
      const char        *message)
{
  (*counter)++;
  g_set_error_literal (error, NATTER_NOISE_ERROR, code, message);
  return FALSE;
}

/* Counts a dropped handshake message by why Noise refused it. */
static gboolean
drop_handshake (NatterNoiseChannel  *self,
                GError              *local_error,
                GError             **error)
{
  if (g_error_matches (local_error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TRUNCATED))
    self->stats.dropped_truncated++;
  else if (g_error_matches (local_error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_DECRYPT)
           || g_error_matches (local_error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_BAD_KEY))
    self->stats.dropped_tampered++;
  else
    self->stats.dropped_unexpected++;
  g_propagate_error (error, local_error);
  return FALSE;
}

static GBytes *
frame (guint8      type,
       GByteArray *message)
{
  g_byte_array_prepend (message, &type, 1);
  return g_byte_array_free_to_bytes (message);
}

static gboolean
same_datagram (GBytes       *stored,
               const guint8 *data,
               gsize         len)
{
  gsize stored_len;
  const guint8 *stored_data;

  if (stored == NULL)
    return FALSE;
  stored_data = g_bytes_get_data (stored, &stored_len);
  return stored_len == len && memcmp (stored_data, data, len) == 0;
}

static void
queue_datagram (NatterNoiseChannel *self,
                GBytes             *datagram)
{
  g_queue_push_tail (&self->outgoing, g_bytes_ref (datagram));
  self->stats.datagrams_sent++;
}

static void
retransmit (NatterNoiseChannel *self,
            GBytes             *datagram)
{
  queue_datagram (self, datagram);
  self->stats.handshake_retransmissions++;
}

static void
arm_retransmission (NatterNoiseChannel *self,
                    gint64              now_us)
{
  self->rto_us = NATTER_NOISE_CHANNEL_RTO_INITIAL_US;
  self->next_timeout_us = now_us + self->rto_us;
  self->deadline_us = now_us + NATTER_NOISE_CHANNEL_HANDSHAKE_TIMEOUT_US;
}

static void
fail (NatterNoiseChannel *self)
{
  g_clear_pointer (&self->hs, natter_noise_handshake_free);
  g_clear_pointer (&self->msg1, g_bytes_unref);
  g_clear_pointer (&self->msg2, g_bytes_unref);
  g_clear_pointer (&self->msg3, g_bytes_unref);
  sodium_memzero (self->secrets, sizeof *self->secrets);
  self->next_timeout_us = -1;
  natter_secure_channel_set_state (NATTER_SECURE_CHANNEL (self),
                                   NATTER_SECURE_CHANNEL_STATE_FAILED);
}

static NatterNoiseHandshake *
new_handshake (NatterNoiseChannel  *self,
               GError             **error)
{
  return natter_noise_handshake_new (NATTER_NOISE_CHANNEL_PROTOCOL, self->role,
                                     (const guint8 *) PROLOGUE, strlen (PROLOGUE),
                                     self->secrets->static_secret, NULL, error);
}

/* The handshake has authenticated the peer's static key: is it the one
 * that was meant?  If not, the channel is over. */
static gboolean
check_peer (NatterNoiseChannel  *self,
            GError             **error)
{
  const guint8 *rs = natter_noise_handshake_get_remote_static (self->hs);

  if (rs != NULL && sodium_memcmp (rs, self->expected_remote, NATTER_NOISE_DH_LEN) == 0)
    return TRUE;

  fail (self);
  g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_WRONG_PEER,
                       "The peer proved a different static key than expected");
  return FALSE;
}

static gboolean
establish (NatterNoiseChannel  *self,
           gint64               now_us,
           GError             **error)
{
  NatterNoiseCipherState send_cs, recv_cs;

  if (!natter_noise_handshake_split (self->hs, &send_cs, &recv_cs, error))
    {
      fail (self);
      return FALSE;
    }
  memcpy (self->secrets->send_key, send_cs.k, NATTER_NOISE_KEY_LEN);
  memcpy (self->secrets->recv_key, recv_cs.k, NATTER_NOISE_KEY_LEN);
  natter_noise_cipher_state_clear (&send_cs);
  natter_noise_cipher_state_clear (&recv_cs);
  memcpy (self->handshake_hash, natter_noise_handshake_get_handshake_hash (self->hs),
          NATTER_NOISE_HASH_LEN);
  /* The static secret is only needed for a handshake, and there is no
   * second one on this object. */
  sodium_memzero (self->secrets->static_secret, NATTER_NOISE_DH_LEN);
  g_clear_pointer (&self->hs, natter_noise_handshake_free);

  self->send_epoch_start_us = now_us;
  self->next_timeout_us = -1;
  natter_secure_channel_set_state (NATTER_SECURE_CHANNEL (self),
                                   NATTER_SECURE_CHANNEL_STATE_ESTABLISHED);
  return TRUE;
}

/* ---- Handshake --------------------------------------------------------- */

static gboolean
natter_noise_channel_start (NatterSecureChannel  *channel,
                            gint64                now_us,
                            GError              **error)
{
  NatterNoiseChannel *self = NATTER_NOISE_CHANNEL (channel);
  g_autoptr(GByteArray) message = NULL;

  if (natter_secure_channel_get_state (channel) != NATTER_SECURE_CHANNEL_STATE_NEW)
    {
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE,
                           "Channel already started");
      return FALSE;
    }

  /* A responder builds its handshake state from each message 1 it takes. */
  if (self->role == NATTER_NOISE_ROLE_INITIATOR)
    {
      self->hs = new_handshake (self, error);
      if (self->hs == NULL)
        return FALSE;
      message = g_byte_array_new ();
      if (!natter_noise_handshake_write_message (self->hs, NULL, 0, message, error))
        return FALSE;
      self->msg1 = frame (NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE1, g_steal_pointer (&message));
      queue_datagram (self, self->msg1);
      arm_retransmission (self, now_us);
    }

  natter_secure_channel_set_state (channel, NATTER_SECURE_CHANNEL_STATE_HANDSHAKING);
  return TRUE;
}

/* Responder: "-> e".  A copy of the message we already answered means our
 * answer was lost; any other message 1 is a fresh attempt by a restarted
 * initiator, which replaces ours. */
static gboolean
handle_message1 (NatterNoiseChannel  *self,
                 const guint8        *data,
                 gsize                len,
                 gint64               now_us,
                 GError             **error)
{
  g_autoptr(NatterNoiseHandshake) hs = NULL;
  g_autoptr(GByteArray) payload = NULL;
  g_autoptr(GByteArray) reply = NULL;
  GError *local_error = NULL;

  if (natter_secure_channel_get_state (NATTER_SECURE_CHANNEL (self))
      != NATTER_SECURE_CHANNEL_STATE_HANDSHAKING)
    return drop (&self->stats.dropped_unexpected, error, NATTER_NOISE_ERROR_UNEXPECTED,
                 "Handshake message 1 after the handshake");
  if (same_datagram (self->msg1, data, len))
    {
      retransmit (self, self->msg2);
      self->msg2_sent_us = now_us;
      return TRUE;
    }

  hs = new_handshake (self, &local_error);
  if (hs == NULL)
    return drop_handshake (self, local_error, error);
  payload = g_byte_array_new ();
  reply = g_byte_array_new ();
  if (!natter_noise_handshake_read_message (hs, data + 1, len - 1, payload, &local_error)
      || !natter_noise_handshake_write_message (hs, NULL, 0, reply, &local_error))
    return drop_handshake (self, local_error, error);

  g_clear_pointer (&self->hs, natter_noise_handshake_free);
  self->hs = g_steal_pointer (&hs);
  g_clear_pointer (&self->msg1, g_bytes_unref);
  g_clear_pointer (&self->msg2, g_bytes_unref);
  self->msg1 = g_bytes_new (data, len);
  self->msg2 = frame (NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE2, g_steal_pointer (&reply));
  queue_datagram (self, self->msg2);
  self->msg2_sent_us = now_us;
  arm_retransmission (self, now_us);
  self->stats.datagrams_received++;
  return TRUE;
}

/* Initiator: "<- e, ee, s, es".  Once it is read the responder's static
 * key is authenticated; it is checked before message 3 reveals ours. */
static gboolean
handle_message2 (NatterNoiseChannel  *self,
                 const guint8        *data,
                 gsize                len,
                 gint64               now_us,
                 GError             **error)
{
  g_autoptr(GByteArray) payload = NULL;
  g_autoptr(GByteArray) reply = NULL;
  GError *local_error = NULL;

  if (same_datagram (self->msg2, data, len))
    {
      /* The responder still waits for message 3: it was lost. */
      if (self->msg3 == NULL)
        return drop (&self->stats.dropped_replayed, error, NATTER_NOISE_ERROR_REPLAYED,
                     "Duplicate handshake message 2");
      retransmit (self, self->msg3);
      return TRUE;
    }
  if (self->hs == NULL || self->msg2 != NULL)
    return drop (&self->stats.dropped_unexpected, error, NATTER_NOISE_ERROR_UNEXPECTED,
                 "Handshake message 2 at the wrong moment");

  payload = g_byte_array_new ();
  if (!natter_noise_handshake_read_message (self->hs, data + 1, len - 1, payload, &local_error))
    return drop_handshake (self, local_error, error);
  self->stats.datagrams_received++;
  if (!check_peer (self, error))
    return FALSE;

  reply = g_byte_array_new ();
  if (!natter_noise_handshake_write_message (self->hs, NULL, 0, reply, error))
    {
      fail (self);
      return FALSE;
    }
  self->msg2 = g_bytes_new (data, len);
  self->msg3 = frame (NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE3, g_steal_pointer (&reply));
  queue_datagram (self, self->msg3);
  return establish (self, now_us, error);
}

/* Responder: "-> s, se". */
static gboolean
handle_message3 (NatterNoiseChannel  *self,
                 const guint8        *data,
                 gsize                len,
                 gint64               now_us,
                 GError             **error)
{
  g_autoptr(GByteArray) payload = NULL;
  GError *local_error = NULL;

  if (same_datagram (self->msg3, data, len))
    return drop (&self->stats.dropped_replayed, error, NATTER_NOISE_ERROR_REPLAYED,
                 "Duplicate handshake message 3");
  if (self->hs == NULL || self->msg2 == NULL)
    return drop (&self->stats.dropped_unexpected, error, NATTER_NOISE_ERROR_UNEXPECTED,
                 "Handshake message 3 at the wrong moment");

  payload = g_byte_array_new ();
  if (!natter_noise_handshake_read_message (self->hs, data + 1, len - 1, payload, &local_error))
    return drop_handshake (self, local_error, error);
  self->stats.datagrams_received++;
  if (!check_peer (self, error))
    return FALSE;

  /* Kept only to recognise its duplicates; messages 1 and 2 are done. */
  self->msg3 = g_bytes_new (data, len);
  g_clear_pointer (&self->msg1, g_bytes_unref);
  g_clear_pointer (&self->msg2, g_bytes_unref);
  return establish (self, now_us, error);
}

static void
natter_noise_channel_handle_timeout (NatterSecureChannel *channel,
                                     gint64               now_us)
{
  NatterNoiseChannel *self = NATTER_NOISE_CHANNEL (channel);
  GBytes *pending;

  if (self->next_timeout_us < 0 || now_us < self->next_timeout_us)
    return;

  if (now_us >= self->deadline_us)
    {
      g_debug ("Noise handshake timed out");
      fail (self);
      return;
    }

  /* Initiator: message 2 has not come; responder: message 3 has not. */
  pending = self->role == NATTER_NOISE_ROLE_INITIATOR ? self->msg1 : self->msg2;
  if (pending == NULL)
    {
      self->next_timeout_us = -1;
      return;
    }
  retransmit (self, pending);
  if (self->role == NATTER_NOISE_ROLE_RESPONDER)
    self->msg2_sent_us = now_us;
  self->rto_us = MIN (self->rto_us * 2, NATTER_NOISE_CHANNEL_RTO_MAX_US);
  self->next_timeout_us = MIN (now_us + self->rto_us, self->deadline_us);
}

static gint64
natter_noise_channel_get_timeout (NatterSecureChannel *channel)
{
  return NATTER_NOISE_CHANNEL (channel)->next_timeout_us;
}

static GBytes *
natter_noise_channel_pop_outgoing (NatterSecureChannel *channel)
{
  return g_queue_pop_head (&NATTER_NOISE_CHANNEL (channel)->outgoing);
}

/* ---- Data -------------------------------------------------------------- */

static void
write_be64 (guint8  *out,
            guint64  v)
{
  for (guint i = 0; i < 8; i++)
    out[i] = (guint8) (v >> (56 - 8 * i));
}

static guint64
read_be64 (const guint8 *in)
{
  guint64 v = 0;

  for (guint i = 0; i < 8; i++)
    v = (v << 8) | in[i];
  return v;
}

static gboolean
reserve_seal (NatterNoiseChannel  *self,
              gsize                len,
              gint64               now_us,
              guint64             *counter_out,
              GError             **error)
{
  if (!natter_secure_channel_is_established (NATTER_SECURE_CHANNEL (self)))
    {
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE,
                           "Channel not established");
      return FALSE;
    }
  if (len > NATTER_NOISE_CHANNEL_MAX_PLAINTEXT)
    {
      g_set_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TOO_LARGE,
                   "Datagram payload of %" G_GSIZE_FORMAT " bytes is too large", len);
      return FALSE;
    }

  if (now_us - self->send_epoch_start_us >= NATTER_NOISE_CHANNEL_REKEY_AFTER_US)
    self->send_counter = MAX (self->send_counter,
                              (self->send_epoch + 1) << NATTER_NOISE_CHANNEL_EPOCH_SHIFT);
  if (self->send_counter >= MAX_COUNTER)
    {
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE,
                           "Datagram counter exhausted");
      return FALSE;
    }
  while (self->send_epoch < self->send_counter >> NATTER_NOISE_CHANNEL_EPOCH_SHIFT)
    {
      natter_noise_rekey_key (self->secrets->send_key);
      self->send_epoch++;
      self->send_epoch_start_us = now_us;
    }

  *counter_out = self->send_counter++;
  self->stats.datagrams_sent++;
  self->stats.send_epoch = self->send_epoch;
  return TRUE;
}

static void
seal (const guint8 *key,
      guint64       counter,
      const guint8 *plaintext,
      gsize         len,
      guint8       *datagram)
{
  datagram[0] = NATTER_NOISE_CHANNEL_TYPE_DATA;
  write_be64 (datagram + 1, counter);
  natter_noise_aead_encrypt (key, counter, datagram, NATTER_NOISE_CHANNEL_HEADER_LEN,
                             plaintext, len, datagram + NATTER_NOISE_CHANNEL_HEADER_LEN);
}

static GBytes *
natter_noise_channel_encrypt (NatterSecureChannel  *channel,
                              const guint8         *plaintext,
                              gsize                 len,
                              gint64                now_us,
                              GError              **error)
{
  NatterNoiseChannel *self = NATTER_NOISE_CHANNEL (channel);
  guint64 counter;
  guint8 *datagram;

  if (!reserve_seal (self, len, now_us, &counter, error))
    return NULL;
  datagram = g_malloc (len + NATTER_NOISE_CHANNEL_OVERHEAD);
  seal (self->secrets->send_key, counter, plaintext, len, datagram);
  return g_bytes_new_take (datagram, len + NATTER_NOISE_CHANNEL_OVERHEAD);
}

/* The key for @epoch, or NULL.  A later epoch is derived into scratch
 * space and only adopted (commit_epoch) once a datagram authenticates
 * under it, so forged counters cannot move the receiver's keys. */
static const guint8 *
key_for_epoch (NatterNoiseChannel *self,
               guint64             epoch)
{
  Secrets *s = self->secrets;

  if (epoch == self->recv_epoch)
    return s->recv_key;
  if (epoch + 1 == self->recv_epoch)
    return self->has_recv_prev ? s->recv_prev_key : NULL;
  if (epoch < self->recv_epoch || epoch - self->recv_epoch > MAX_EPOCH_SKIP)
    return NULL;

  memcpy (s->next_key, s->recv_key, NATTER_NOISE_KEY_LEN);
  for (guint64 e = self->recv_epoch; e < epoch; e++)
    {
      memcpy (s->next_prev_key, s->next_key, NATTER_NOISE_KEY_LEN);
      natter_noise_rekey_key (s->next_key);
    }
  return s->next_key;
}

static void
commit_epoch (NatterNoiseChannel *self,
              guint64             epoch)
{
  Secrets *s = self->secrets;

  if (epoch <= self->recv_epoch)
    return;
  memcpy (s->recv_prev_key, s->next_prev_key, NATTER_NOISE_KEY_LEN);
  memcpy (s->recv_key, s->next_key, NATTER_NOISE_KEY_LEN);
  sodium_memzero (s->next_key, NATTER_NOISE_KEY_LEN);
  sodium_memzero (s->next_prev_key, NATTER_NOISE_KEY_LEN);
  self->recv_epoch = epoch;
  self->has_recv_prev = TRUE;
  self->stats.recv_epoch = epoch;
}

static void accept_datagram (NatterNoiseChannel *self,
                             guint64             counter);

static gboolean
handle_data (NatterNoiseChannel  *self,
             const guint8        *data,
             gsize                len,
             gint64               now_us,
             GBytes             **plaintext_out,
             GError             **error)
{
  NatterSecureChannel *channel = NATTER_SECURE_CHANNEL (self);
  const guint8 *key;
  guint64 counter, epoch;
  gsize plaintext_len;
  guint8 *plaintext;

  if (len < NATTER_NOISE_CHANNEL_OVERHEAD)
    return drop (&self->stats.dropped_truncated, error, NATTER_NOISE_ERROR_TRUNCATED,
                 "Datagram shorter than its header and tag");

  if (!natter_secure_channel_is_established (channel))
    {
      /* Data before message 3 means message 3 was lost (or is late):
       * resend message 2, whose duplicate makes the initiator resend 3.
       * Rate limited, as anyone can send us such a datagram. */
      if (self->role == NATTER_NOISE_ROLE_RESPONDER && self->msg2 != NULL
          && now_us - self->msg2_sent_us >= NATTER_NOISE_CHANNEL_RTO_INITIAL_US)
        {
          retransmit (self, self->msg2);
          self->msg2_sent_us = now_us;
        }
      return drop (&self->stats.dropped_unexpected, error, NATTER_NOISE_ERROR_UNEXPECTED,
                   "Data datagram before the handshake finished");
    }

  counter = read_be64 (data + 1);
  if (counter >= MAX_COUNTER)
    return drop (&self->stats.dropped_tampered, error, NATTER_NOISE_ERROR_DECRYPT,
                 "Datagram counter out of range");
  switch (window_check (&self->window, counter))
    {
    case WINDOW_DUPLICATE:
      return drop (&self->stats.dropped_replayed, error, NATTER_NOISE_ERROR_REPLAYED,
                   "Replayed datagram");
    case WINDOW_TOO_OLD:
      return drop (&self->stats.dropped_too_old, error, NATTER_NOISE_ERROR_REPLAYED,
                   "Datagram behind the replay window");
    case WINDOW_FRESH:
    default:
      break;
    }

  epoch = counter >> NATTER_NOISE_CHANNEL_EPOCH_SHIFT;
  key = key_for_epoch (self, epoch);
  if (key == NULL)
    return drop (&self->stats.dropped_tampered, error, NATTER_NOISE_ERROR_DECRYPT,
                 "Datagram from an epoch without a key");

  plaintext_len = len - NATTER_NOISE_CHANNEL_OVERHEAD;
  /* One spare byte: an empty datagram still gets a real buffer. */
  plaintext = g_malloc (plaintext_len + 1);
  if (!natter_noise_aead_decrypt (key, counter, data, NATTER_NOISE_CHANNEL_HEADER_LEN,
                                  data + NATTER_NOISE_CHANNEL_HEADER_LEN,
                                  len - NATTER_NOISE_CHANNEL_HEADER_LEN, plaintext))
    {
      g_free (plaintext);
      return drop (&self->stats.dropped_tampered, error, NATTER_NOISE_ERROR_DECRYPT,
                   "Datagram failed authentication");
    }

  commit_epoch (self, epoch);
  accept_datagram (self, counter);
  *plaintext_out = g_bytes_new_take (plaintext, plaintext_len);
  return TRUE;
}

/* A datagram authenticated and its counter is fresh: take it. */
static void
accept_datagram (NatterNoiseChannel *self,
                 guint64             counter)
{
  window_accept (&self->window, counter);
  self->stats.datagrams_received++;

  /* Once the window has moved a full width into this epoch, nothing from
   * the previous one can pass it: wipe that key for forward secrecy. */
  if (self->has_recv_prev
      && self->window.top - (self->recv_epoch << NATTER_NOISE_CHANNEL_EPOCH_SHIFT)
         >= NATTER_NOISE_CHANNEL_REPLAY_WINDOW)
    {
      sodium_memzero (self->secrets->recv_prev_key, NATTER_NOISE_KEY_LEN);
      self->has_recv_prev = FALSE;
    }

  /* For the initiator, authentic data proves the responder has message 3;
   * for the responder the handshake is long over: either way the copies
   * kept for retransmission are no longer needed. */
  g_clear_pointer (&self->msg2, g_bytes_unref);
  g_clear_pointer (&self->msg3, g_bytes_unref);
}

static gboolean
natter_noise_channel_handle_datagram (NatterSecureChannel  *channel,
                                      const guint8         *data,
                                      gsize                 len,
                                      gint64                now_us,
                                      GBytes              **plaintext_out,
                                      GError              **error)
{
  NatterNoiseChannel *self = NATTER_NOISE_CHANNEL (channel);
  NatterSecureChannelState state = natter_secure_channel_get_state (channel);
  gboolean initiator = self->role == NATTER_NOISE_ROLE_INITIATOR;

  if (len == 0)
    return drop (&self->stats.dropped_truncated, error, NATTER_NOISE_ERROR_TRUNCATED,
                 "Empty datagram");
  if (len > NATTER_NOISE_MAX_MESSAGE_LEN)
    return drop (&self->stats.dropped_unexpected, error, NATTER_NOISE_ERROR_TOO_LARGE,
                 "Datagram too large");
  if (state == NATTER_SECURE_CHANNEL_STATE_NEW || state == NATTER_SECURE_CHANNEL_STATE_FAILED)
    return drop (&self->stats.dropped_unexpected, error, NATTER_NOISE_ERROR_STATE,
                 "Channel not running");

  switch (data[0])
    {
    case NATTER_NOISE_CHANNEL_TYPE_DATA:
      return handle_data (self, data, len, now_us, plaintext_out, error);
    case NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE1:
      if (!initiator)
        return handle_message1 (self, data, len, now_us, error);
      break;
    case NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE2:
      if (initiator)
        return handle_message2 (self, data, len, now_us, error);
      break;
    case NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE3:
      if (!initiator)
        return handle_message3 (self, data, len, now_us, error);
      break;
    default:
      break;
    }
  return drop (&self->stats.dropped_unexpected, error, NATTER_NOISE_ERROR_UNEXPECTED,
               "Unexpected datagram type");
}

/* ---- Data, split for another thread ------------------------------------ */

gboolean
natter_noise_channel_reserve_seal (NatterNoiseChannel     *self,
                                   gsize                   len,
                                   gint64                  now_us,
                                   NatterNoiseChannelJob  *job,
                                   GError                **error)
{
  g_return_val_if_fail (NATTER_IS_NOISE_CHANNEL (self), FALSE);
  g_return_val_if_fail (job != NULL, FALSE);

  if (!reserve_seal (self, len, now_us, &job->counter, error))
    return FALSE;
  memcpy (job->key, self->secrets->send_key, NATTER_NOISE_KEY_LEN);
  return TRUE;
}

void
natter_noise_channel_job_seal (const NatterNoiseChannelJob *job,
                               const guint8                *plaintext,
                               gsize                        len,
                               guint8                      *datagram)
{
  seal (job->key, job->counter, plaintext, len, datagram);
}

gboolean
natter_noise_channel_prepare_open (NatterNoiseChannel     *self,
                                   const guint8           *data,
                                   gsize                   len,
                                   NatterNoiseChannelJob  *job)
{
  guint64 counter, epoch;
  const guint8 *key;

  g_return_val_if_fail (NATTER_IS_NOISE_CHANNEL (self), FALSE);
  g_return_val_if_fail (job != NULL, FALSE);

  /* Whatever is not plainly openable (short, early, replayed, or from an
   * epoch whose key would first have to be derived) takes the whole path,
   * which also counts it. */
  if (len < NATTER_NOISE_CHANNEL_OVERHEAD || len > NATTER_NOISE_MAX_MESSAGE_LEN
      || data[0] != NATTER_NOISE_CHANNEL_TYPE_DATA
      || !natter_secure_channel_is_established (NATTER_SECURE_CHANNEL (self)))
    return FALSE;

  counter = read_be64 (data + 1);
  if (counter >= MAX_COUNTER || window_check (&self->window, counter) != WINDOW_FRESH)
    return FALSE;

  epoch = counter >> NATTER_NOISE_CHANNEL_EPOCH_SHIFT;
  if (epoch == self->recv_epoch)
    key = self->secrets->recv_key;
  else if (epoch + 1 == self->recv_epoch && self->has_recv_prev)
    key = self->secrets->recv_prev_key;
  else
    return FALSE;

  memcpy (job->key, key, NATTER_NOISE_KEY_LEN);
  job->counter = counter;
  return TRUE;
}

gboolean
natter_noise_channel_job_open (const NatterNoiseChannelJob *job,
                               guint8                      *datagram,
                               gsize                        len)
{
  if (len < NATTER_NOISE_CHANNEL_OVERHEAD || read_be64 (datagram + 1) != job->counter)
    return FALSE;
  return natter_noise_aead_decrypt (job->key, job->counter,
                                    datagram, NATTER_NOISE_CHANNEL_HEADER_LEN,
                                    datagram + NATTER_NOISE_CHANNEL_HEADER_LEN,
                                    len - NATTER_NOISE_CHANNEL_HEADER_LEN,
                                    datagram + NATTER_NOISE_CHANNEL_HEADER_LEN);
}

gboolean
natter_noise_channel_commit_open (NatterNoiseChannel  *self,
                                  guint64              counter,
                                  gboolean             authentic,
                                  GError             **error)
{
  g_return_val_if_fail (NATTER_IS_NOISE_CHANNEL (self), FALSE);

  if (!authentic)
    return drop (&self->stats.dropped_tampered, error, NATTER_NOISE_ERROR_DECRYPT,
                 "Datagram failed authentication");
  /* The channel may have failed meanwhile, and wiped its keys. */
  if (!natter_secure_channel_is_established (NATTER_SECURE_CHANNEL (self)))
    return drop (&self->stats.dropped_unexpected, error, NATTER_NOISE_ERROR_STATE,
                 "Channel not running");
  switch (window_check (&self->window, counter))
    {
    case WINDOW_DUPLICATE:
      return drop (&self->stats.dropped_replayed, error, NATTER_NOISE_ERROR_REPLAYED,
                   "Replayed datagram");
    case WINDOW_TOO_OLD:
      return drop (&self->stats.dropped_too_old, error, NATTER_NOISE_ERROR_REPLAYED,
                   "Datagram behind the replay window");
    case WINDOW_FRESH:
    default:
      break;
    }
  accept_datagram (self, counter);
  return TRUE;
}

void
natter_noise_channel_job_clear (NatterNoiseChannelJob *job)
{
  sodium_memzero (job, sizeof *job);
}

/* ---- Introspection ----------------------------------------------------- */

static GBytes *
natter_noise_channel_get_remote_static_key (NatterSecureChannel *channel)
{
  NatterNoiseChannel *self = NATTER_NOISE_CHANNEL (channel);

  /* Once established it is, by check_peer(), the expected key. */
  if (!natter_secure_channel_is_established (channel))
    return NULL;
  return g_bytes_new (self->expected_remote, NATTER_NOISE_DH_LEN);
}

static GBytes *
natter_noise_channel_get_channel_binding (NatterSecureChannel *channel)
{
  NatterNoiseChannel *self = NATTER_NOISE_CHANNEL (channel);

  if (!natter_secure_channel_is_established (channel))
    return NULL;
  return g_bytes_new (self->handshake_hash, NATTER_NOISE_HASH_LEN);
}

static void
natter_noise_channel_get_stats (NatterSecureChannel      *channel,
                                NatterSecureChannelStats *stats)
{
  *stats = NATTER_NOISE_CHANNEL (channel)->stats;
}

/* ---- GObject ----------------------------------------------------------- */

static void
natter_noise_channel_finalize (GObject *object)
{
  NatterNoiseChannel *self = NATTER_NOISE_CHANNEL (object);

  g_clear_pointer (&self->hs, natter_noise_handshake_free);
  g_clear_pointer (&self->msg1, g_bytes_unref);
  g_clear_pointer (&self->msg2, g_bytes_unref);
  g_clear_pointer (&self->msg3, g_bytes_unref);
  g_queue_clear_full (&self->outgoing, (GDestroyNotify) g_bytes_unref);
  g_clear_pointer (&self->secrets, sodium_free);

  G_OBJECT_CLASS (natter_noise_channel_parent_class)->finalize (object);
}

static void
natter_noise_channel_class_init (NatterNoiseChannelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  NatterSecureChannelClass *channel_class = NATTER_SECURE_CHANNEL_CLASS (klass);

  object_class->finalize = natter_noise_channel_finalize;

  channel_class->start = natter_noise_channel_start;
  channel_class->handle_datagram = natter_noise_channel_handle_datagram;
  channel_class->encrypt = natter_noise_channel_encrypt;
  channel_class->pop_outgoing = natter_noise_channel_pop_outgoing;
  channel_class->get_timeout = natter_noise_channel_get_timeout;
  channel_class->handle_timeout = natter_noise_channel_handle_timeout;
  channel_class->get_remote_static_key = natter_noise_channel_get_remote_static_key;
  channel_class->get_channel_binding = natter_noise_channel_get_channel_binding;
  channel_class->get_stats = natter_noise_channel_get_stats;
}

static void
natter_noise_channel_init (NatterNoiseChannel *self)
{
  g_queue_init (&self->outgoing);
  self->next_timeout_us = -1;
}

NatterSecureChannel *
natter_noise_channel_new (NatterNoiseRole   role,
                          const guint8     *local_static_secret,
                          const guint8     *expected_remote_static,
                          GError          **error)
{
  g_autoptr(NatterNoiseChannel) self = NULL;
  guint8 local_public[NATTER_NOISE_DH_LEN];

  g_return_val_if_fail (role == NATTER_NOISE_ROLE_INITIATOR
                        || role == NATTER_NOISE_ROLE_RESPONDER, NULL);
  g_return_val_if_fail (local_static_secret != NULL, NULL);
  g_return_val_if_fail (expected_remote_static != NULL, NULL);

  if (sodium_init () < 0)
    {
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE,
                           "libsodium failed to initialise");
      return NULL;
    }
  if (!natter_noise_public_from_secret (local_static_secret, local_public, error))
    return NULL;

  self = g_object_new (NATTER_TYPE_NOISE_CHANNEL, NULL);
  self->role = role;
  self->secrets = sodium_malloc (sizeof *self->secrets);
  if (self->secrets == NULL)
    g_error ("%s: out of memory", G_STRFUNC);
  memset (self->secrets, 0, sizeof *self->secrets);
  memcpy (self->secrets->static_secret, local_static_secret, NATTER_NOISE_DH_LEN);
  memcpy (self->expected_remote, expected_remote_static, NATTER_NOISE_DH_LEN);

  return NATTER_SECURE_CHANNEL (g_steal_pointer (&self));
}

void
natter_noise_channel_skip_send_counter_for_testing (NatterNoiseChannel *self,
                                                    guint64             counter)
{
  guint64 limit;

  g_return_if_fail (NATTER_IS_NOISE_CHANNEL (self));

  /* No further than a receiver follows; also keeps the rekey loop in
   * encrypt() short. */
  limit = (self->send_epoch + MAX_EPOCH_SKIP + 1) * EPOCH_LEN - 1;
  self->send_counter = MAX (self->send_counter, MIN (counter, limit));
}
