/* fuzz-noise.c: libFuzzer target for the Noise handshake and datagram parsers
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "natter-noise-channel-private.h"

/* Input: one mode byte, then records.  The modes:
 *
 *   0  records are datagrams for a started responder (message 1 and 3 parsers);
 *   1  records are datagrams for an initiator that sent message 1 (message 2);
 *   2  records are datagrams for an established channel (data parser);
 *   3  records are operations on an established pair over a hostile network:
 *      send, deliver a sent datagram (maybe altered), skip counters, let
 *      time pass.  Whatever is accepted must be exactly what was sent.
 *
 * A record is a 2-byte big-endian length and that many bytes. */

#define N_SENT 32

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const guint8 *
next_record (const guint8 **cursor,
             gsize         *remaining,
             gsize         *len)
{
  const guint8 *record;

  if (*remaining < 2)
    return NULL;
  *len = ((gsize) (*cursor)[0] << 8 | (*cursor)[1]);
  *cursor += 2;
  *remaining -= 2;
  if (*len > *remaining)
    *len = *remaining;
  record = *cursor;
  *cursor += *len;
  *remaining -= *len;
  return record;
}

static void
deliver (NatterSecureChannel *to,
         const guint8        *data,
         gsize                len,
         gint64               now)
{
  g_autoptr(GBytes) plaintext = NULL;
  g_autoptr(GError) error = NULL;
  gboolean ok;

  ok = natter_secure_channel_handle_datagram (to, data, len, now, &plaintext, &error);
  g_assert_true (ok == (error == NULL));
}

static void
drain (NatterSecureChannel *from,
       NatterSecureChannel *to,
       gint64               now)
{
  GBytes *datagram;

  while ((datagram = natter_secure_channel_pop_outgoing (from)) != NULL)
    {
      if (to != NULL)
        deliver (to, g_bytes_get_data (datagram, NULL), g_bytes_get_size (datagram), now);
      g_bytes_unref (datagram);
    }
}

static void
make_pair (NatterSecureChannel **a,
           NatterSecureChannel **b,
           gboolean              establish)
{
  /* Fixed static keys: the ephemerals are random anyway, and nothing the
   * fuzzer writes can authenticate under them. */
  static guint8 ka[32], kb[32], pa[32], pb[32];
  static gboolean keys_ready;

  if (!keys_ready)
    {
      memset (ka, 0x11, sizeof ka);
      memset (kb, 0x22, sizeof kb);
      g_assert_true (natter_noise_public_from_secret (ka, pa, NULL));
      g_assert_true (natter_noise_public_from_secret (kb, pb, NULL));
      keys_ready = TRUE;
    }

  *a = natter_noise_channel_new (NATTER_NOISE_ROLE_INITIATOR, ka, pb, NULL);
  *b = natter_noise_channel_new (NATTER_NOISE_ROLE_RESPONDER, kb, pa, NULL);
  g_assert_true (natter_secure_channel_start (*a, 0, NULL));
  g_assert_true (natter_secure_channel_start (*b, 0, NULL));
  if (establish)
    {
      drain (*a, *b, 0);
      drain (*b, *a, 0);
      drain (*a, *b, 0);
      g_assert_true (natter_secure_channel_is_established (*a));
      g_assert_true (natter_secure_channel_is_established (*b));
    }
}

static void
check_accepted (NatterSecureChannel *to,
                GBytes              *sent_plaintext,
                const guint8        *datagram,
                gsize                len,
                gint64               now)
{
  g_autoptr(GBytes) plaintext = NULL;
  g_autoptr(GError) error = NULL;

  if (natter_secure_channel_handle_datagram (to, datagram, len, now, &plaintext, &error))
    {
      /* Authentication means: these are the bytes that were sent. */
      g_assert_nonnull (plaintext);
      g_assert_true (sent_plaintext != NULL && g_bytes_equal (plaintext, sent_plaintext));
    }
  else
    g_assert_nonnull (error);
}

static void
run_network (NatterSecureChannel *a,
             NatterSecureChannel *b,
             const guint8        *cursor,
             gsize                remaining)
{
  GBytes *sent[N_SENT] = { NULL };
  GBytes *sent_plaintext[N_SENT] = { NULL };
  guint n_sent = 0;
  gint64 now = 0;
  const guint8 *record;
  gsize len;

  while ((record = next_record (&cursor, &remaining, &len)) != NULL)
    {
      guint8 op = len > 0 ? record[0] : 0;
      const guint8 *arg = record + 1;
      gsize arg_len = len > 0 ? len - 1 : 0;

      switch (op % 5)
        {
        case 0:   /* a sends the rest of the record */
          {
            guint slot = n_sent++ % N_SENT;

            g_clear_pointer (&sent[slot], g_bytes_unref);
            g_clear_pointer (&sent_plaintext[slot], g_bytes_unref);
            /* Refused only when too large: the counter cannot run out here. */
            sent[slot] = natter_secure_channel_encrypt (a, arg, arg_len, now, NULL);
            if (sent[slot] != NULL)
              sent_plaintext[slot] = g_bytes_new (arg, arg_len);
            else
              g_assert_true (arg_len > NATTER_NOISE_CHANNEL_MAX_PLAINTEXT);
          }
          break;

        case 1:   /* deliver sent datagram arg[0], maybe altered at arg[1] ^= arg[2] */
          if (arg_len >= 1 && sent[arg[0] % N_SENT] != NULL)
            {
              guint slot = arg[0] % N_SENT;
              gsize dlen;
              guint8 *copy = g_bytes_unref_to_data (g_bytes_ref (sent[slot]), &dlen);

              if (arg_len >= 3)
                copy[arg[1] % dlen] ^= arg[2];
              if (arg_len >= 4)
                dlen -= MIN (dlen, arg[3]);
              check_accepted (b, arg_len >= 3 && arg[2] != 0 ? NULL : sent_plaintext[slot],
                              copy, dlen, now);
              g_free (copy);
            }
          break;

        case 2:   /* skip a's send counter forward by arg as a big-endian number */
          {
            guint64 skip = 0;

            for (gsize i = 0; i < MIN (arg_len, 8); i++)
              skip = skip << 8 | arg[i];
            natter_noise_channel_skip_send_counter_for_testing (NATTER_NOISE_CHANNEL (a), skip);
          }
          break;

        case 3:   /* time passes: arg[0] seconds */
          now += (arg_len > 0 ? arg[0] : 1) * G_USEC_PER_SEC;
          natter_secure_channel_handle_timeout (a, now);
          natter_secure_channel_handle_timeout (b, now);
          break;

        case 4:   /* raw bytes straight at b */
        default:
          deliver (b, arg, arg_len, now);
          break;
        }
    }

  for (guint i = 0; i < N_SENT; i++)
    {
      g_clear_pointer (&sent[i], g_bytes_unref);
      g_clear_pointer (&sent_plaintext[i], g_bytes_unref);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  NatterSecureChannel *a = NULL, *b = NULL;
  const guint8 *cursor = data + 1;
  gsize remaining;
  const guint8 *record;
  gsize len;
  gint64 now = 0;

  if (size < 1)
    return 0;
  if (sodium_init () < 0)
    abort ();
  remaining = size - 1;

  switch (data[0] % 4)
    {
    case 0:   /* responder: fed message 1 / 3 candidates */
    case 1:   /* initiator: fed message 2 candidates */
      make_pair (&a, &b, FALSE);
      if (data[0] % 4 == 1)
        drain (b, NULL, now);
      while ((record = next_record (&cursor, &remaining, &len)) != NULL)
        {
          NatterSecureChannel *target = data[0] % 4 == 0 ? b : a;

          deliver (target, record, len, now);
          drain (target, NULL, now);
          now += 100 * 1000;
          natter_secure_channel_handle_timeout (target, now);
          drain (target, NULL, now);
        }
      break;

    case 2:
      make_pair (&a, &b, TRUE);
      while ((record = next_record (&cursor, &remaining, &len)) != NULL)
        deliver (b, record, len, now);
      break;

    case 3:
    default:
      make_pair (&a, &b, TRUE);
      run_network (a, b, cursor, remaining);
      break;
    }

  g_clear_object (&a);
  g_clear_object (&b);
  return 0;
}
