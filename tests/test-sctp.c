/* test-sctp.c: SCTP associations over an in-memory wire
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include <usrsctp.h>

#include "net/natter-sctp.h"

#define TEST_PPID          51
#define TIMEOUT_US         (20 * G_USEC_PER_SEC)

/* Under the sanitizers everything is several times slower; the big
 * transfers shrink so that the suite stays quick there too. */
#if defined(__SANITIZE_ADDRESS__)
#define SCALE 4
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SCALE 4
#endif
#endif
#ifndef SCALE
#define SCALE 1
#endif

/* The wire: what one side's packet-out hands over reaches the other side
 * from a source on the context, never synchronously, optionally lost,
 * duplicated or reordered on the way. */

typedef struct _Wire Wire;

typedef struct
{
  Wire *wire;
  guint to;                      /* index of the receiving side */
} WireEnd;

struct _Wire
{
  GMainContext *context;
  NatterSctpAssociation *side[2];
  WireEnd ends[2];
  GQueue queue[2];               /* GBytes on their way to side[i] */
  gsize queued_bytes;
  gsize queued_peak_bytes;
  GSource *source;
  GRand *rand;
  double loss;
  double duplicate;
  double reorder;
  gsize max_packet;
  guint64 packets;
  guint64 lost;
};

static gboolean
wire_dispatch (GSource     *source,
               GSourceFunc  callback,
               gpointer     user_data)
{
  return callback (user_data);
}

static GSourceFuncs wire_funcs = {
  .dispatch = wire_dispatch,
};

static gboolean
wire_deliver (gpointer data)
{
  Wire *wire = data;

  g_source_set_ready_time (wire->source, -1);

  for (guint to = 0; to < 2; to++)
    {
      /* Only what is there now: replies wait for the next dispatch, as
       * they would on a real network. */
      guint n = g_queue_get_length (&wire->queue[to]);

      for (guint i = 0; i < n; i++)
        {
          g_autoptr(GBytes) packet = g_queue_pop_head (&wire->queue[to]);
          gsize len;
          const guint8 *bytes = g_bytes_get_data (packet, &len);

          wire->queued_bytes -= len;
          if (wire->side[to] != NULL)
            natter_sctp_association_receive_packet (wire->side[to], bytes, len);
        }
    }

  return G_SOURCE_CONTINUE;
}

static void
wire_packet_out (NatterSctpAssociation *assoc,
                 const guint8          *data,
                 gsize                  len,
                 gpointer               user_data)
{
  WireEnd *end = user_data;
  Wire *wire = end->wire;
  GQueue *queue = &wire->queue[end->to];
  g_autoptr(GBytes) packet = g_bytes_new (data, len);
  guint copies = 1;

  wire->packets++;
  wire->max_packet = MAX (wire->max_packet, len);

  /* Receivers do not check the CRC32c (the secure channel does better),
   * so check here that every packet carries the right one, against
   * usrsctp's own implementation. */
  {
    g_autofree guint8 *copy = g_memdup2 (data, len);
    guint32 carried, expected;

    g_assert_cmpuint (len, >=, 12);
    memcpy (&carried, copy + 8, 4);
    memset (copy + 8, 0, 4);
    expected = usrsctp_crc32c (copy, len);
    g_assert_cmphex (carried, ==, expected);
  }

  if (wire->loss > 0 && g_rand_double (wire->rand) < wire->loss)
    {
      wire->lost++;
      return;
    }
  if (wire->duplicate > 0 && g_rand_double (wire->rand) < wire->duplicate)
    copies = 2;

  for (guint i = 0; i < copies; i++)
    {
      if (wire->reorder > 0 && queue->length > 0
          && g_rand_double (wire->rand) < wire->reorder)
        g_queue_insert_before (queue, queue->tail, g_bytes_ref (packet));
      else
        g_queue_push_tail (queue, g_bytes_ref (packet));
      wire->queued_bytes += len;
    }
  wire->queued_peak_bytes = MAX (wire->queued_peak_bytes, wire->queued_bytes);

  g_source_set_ready_time (wire->source, 0);
}

static Wire *
wire_new (GMainContext *context,
          guint32       seed)
{
  Wire *wire = g_new0 (Wire, 1);

  wire->context = g_main_context_ref (context);
  wire->rand = g_rand_new_with_seed (seed);
  g_queue_init (&wire->queue[0]);
  g_queue_init (&wire->queue[1]);
  wire->source = g_source_new (&wire_funcs, sizeof (GSource));
  g_source_set_callback (wire->source, wire_deliver, wire, NULL);
  g_source_set_ready_time (wire->source, -1);
  g_source_attach (wire->source, context);

  for (guint i = 0; i < 2; i++)
    {
      wire->side[i] = natter_sctp_association_new (context, 5000, 5000);
      wire->ends[i].wire = wire;
      wire->ends[i].to = 1 - i;
      natter_sctp_association_set_packet_out_func (wire->side[i], wire_packet_out,
                                                   &wire->ends[i], NULL);
    }

  return wire;
}

static void
wire_free (Wire *wire)
{
  for (guint i = 0; i < 2; i++)
    {
      if (wire->side[i] != NULL)
        {
          /* An ABORT may still come out while it is finalized: the wire
           * takes it, and drops it with the rest below. */
          g_clear_object (&wire->side[i]);
        }
      g_queue_clear_full (&wire->queue[i], (GDestroyNotify) g_bytes_unref);
    }
  g_source_destroy (wire->source);
  g_source_unref (wire->source);
  g_rand_free (wire->rand);
  g_main_context_unref (wire->context);
  g_free (wire);
}

typedef gboolean (*Condition) (gpointer data);

static void
run_until (GMainContext *context,
           Condition     condition,
           gpointer      data)
{
  gint64 deadline = g_get_monotonic_time () + TIMEOUT_US;

  while (!condition (data))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (context, TRUE);
    }
}

static void
run_for (GMainContext *context,
         guint         ms)
{
  gint64 end = g_get_monotonic_time () + ms * 1000;

  while (g_get_monotonic_time () < end)
    {
      if (!g_main_context_iteration (context, FALSE))
        g_usleep (500);
    }
}

static void
count_signal (NatterSctpAssociation *assoc,
              gpointer               user_data)
{
  guint *counter = user_data;

  (*counter)++;
}

static gboolean
both_open (gpointer data)
{
  Wire *wire = data;

  return natter_sctp_association_get_state (wire->side[0]) == NATTER_SCTP_STATE_OPEN
         && natter_sctp_association_get_state (wire->side[1]) == NATTER_SCTP_STATE_OPEN;
}

static gboolean
stack_stopped (gpointer data)
{
  return !natter_sctp_stack_is_running ();
}

static void
connect_both (Wire *wire)
{
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < 2; i++)
    {
      natter_sctp_association_connect (wire->side[i], &error);
      g_assert_no_error (error);
      g_assert_cmpint (natter_sctp_association_get_state (wire->side[i]), ==,
                       NATTER_SCTP_STATE_CONNECTING);
    }
}

/* Frees everything and checks that usrsctp_finish() went through: every
 * socket usrsctp had was freed. */
static void
teardown (Wire         *wire,
          GMainContext *context)
{
  wire_free (wire);
  run_until (context, stack_stopped, NULL);
}

/* Messages: deterministic contents, checked by hash on arrival. */

static guint64
hash_bytes (const guint8 *data,
            gsize         len)
{
  guint64 h = 0x9e3779b97f4a7c15ull ^ len;
  gsize i = 0;

  for (; i + 8 <= len; i += 8)
    {
      guint64 w;

      memcpy (&w, data + i, 8);
      h = (h ^ w) * 0x100000001b3ull;
      h ^= h >> 29;
    }
  for (; i < len; i++)
    h = (h ^ data[i]) * 0x100000001b3ull;

  return h;
}

static GBytes *
make_message (guint  index,
              gsize  size)
{
  guint8 *data = g_malloc (size);
  guint64 x = 0x2545f4914f6cdd1dull * (index + 1);
  gsize i = 0;

  for (; i + 8 <= size; i += 8)
    {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      memcpy (data + i, &x, 8);
    }
  for (; i < size; i++)
    data[i] = (guint8) (index + i);

  return g_bytes_new_take (data, size);
}

typedef struct
{
  Wire *wire;
  NatterSctpAssociation *sender;
  NatterSctpAssociation *receiver;
  GRand *rand;

  guint n_total;
  guint n_sent;
  guint n_received;
  guint n_streams;               /* messages go round streams 1..n_streams */
  gsize min_size;
  gsize max_size;
  gsize high_water;              /* the sender stops above this */

  GArray *sizes;                 /* per message */
  GArray *hashes;
  GArray *streams;
  GQueue expected[16];           /* per stream: indices in send order */

  gboolean blocked;
  guint n_low;                   /* "buffered-amount-low" seen */
  gsize buffered_peak;
  gulong low_handler;
  gulong message_handler;
} Transfer;

static void transfer_pump (Transfer *t);

static void
on_buffered_amount_low (NatterSctpAssociation *assoc,
                        gpointer               user_data)
{
  Transfer *t = user_data;

  t->n_low++;
  if (t->blocked)
    {
      t->blocked = FALSE;
      transfer_pump (t);
    }
}

static void
on_message (NatterSctpAssociation *assoc,
            guint                  stream,
            guint                  ppid,
            GBytes                *message,
            gpointer               user_data)
{
  Transfer *t = user_data;
  gsize len;
  const guint8 *data = g_bytes_get_data (message, &len);
  guint index;

  g_assert_cmpuint (ppid, ==, TEST_PPID);
  g_assert_cmpuint (stream, <, G_N_ELEMENTS (t->expected));
  g_assert_false (g_queue_is_empty (&t->expected[stream]));

  /* The next message sent on this stream, and no other. */
  index = GPOINTER_TO_UINT (g_queue_pop_head (&t->expected[stream]));
  g_assert_cmpuint (len, ==, g_array_index (t->sizes, gsize, index));
  g_assert_cmpuint (hash_bytes (data, len), ==, g_array_index (t->hashes, guint64, index));
  t->n_received++;
}

static void
transfer_pump (Transfer *t)
{
  while (t->n_sent < t->n_total)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) message = NULL;
      gsize buffered = natter_sctp_association_get_buffered_amount (t->sender);
      gsize size;
      guint16 stream;
      gsize len;
      const guint8 *data;

      t->buffered_peak = MAX (t->buffered_peak, buffered);
      if (buffered > t->high_water)
        {
          t->blocked = TRUE;
          return;
        }

      size = g_rand_int_range (t->rand, t->min_size, t->max_size + 1);
      stream = 1 + g_rand_int_range (t->rand, 0, t->n_streams);
      message = make_message (t->n_sent, size);
      data = g_bytes_get_data (message, &len);

      g_array_append_val (t->sizes, size);
      g_array_append_vals (t->hashes, &(guint64) { hash_bytes (data, len) }, 1);
      g_array_append_val (t->streams, stream);
      g_queue_push_tail (&t->expected[stream], GUINT_TO_POINTER (t->n_sent));

      natter_sctp_association_send (t->sender, stream, TEST_PPID, message, &error);
      g_assert_no_error (error);
      t->n_sent++;
    }
}

static void
transfer_init (Transfer *t,
               Wire     *wire,
               guint     n_total,
               gsize     min_size,
               gsize     max_size,
               guint     n_streams)
{
  memset (t, 0, sizeof *t);
  t->wire = wire;
  t->sender = wire->side[0];
  t->receiver = wire->side[1];
  t->rand = g_rand_new_with_seed (n_total);
  t->n_total = n_total;
  t->min_size = min_size;
  t->max_size = max_size;
  t->n_streams = n_streams;
  t->high_water = 2 * 1024 * 1024;
  t->sizes = g_array_new (FALSE, FALSE, sizeof (gsize));
  t->hashes = g_array_new (FALSE, FALSE, sizeof (guint64));
  t->streams = g_array_new (FALSE, FALSE, sizeof (guint16));
  for (guint i = 0; i < G_N_ELEMENTS (t->expected); i++)
    g_queue_init (&t->expected[i]);

  natter_sctp_association_set_buffered_amount_low_threshold (t->sender, 1024 * 1024);
  t->low_handler = g_signal_connect (t->sender, "buffered-amount-low",
                                     G_CALLBACK (on_buffered_amount_low), t);
  t->message_handler = g_signal_connect (t->receiver, "message-received",
                                         G_CALLBACK (on_message), t);
}

static void
transfer_clear (Transfer *t)
{
  g_clear_signal_handler (&t->low_handler, t->sender);
  g_clear_signal_handler (&t->message_handler, t->receiver);
  g_rand_free (t->rand);
  g_array_unref (t->sizes);
  g_array_unref (t->hashes);
  g_array_unref (t->streams);
  for (guint i = 0; i < G_N_ELEMENTS (t->expected); i++)
    g_queue_clear (&t->expected[i]);
}

static gboolean
transfer_done (gpointer data)
{
  Transfer *t = data;

  return t->n_received == t->n_total;
}

static Wire *
open_pair (GMainContext *context,
           guint32       seed)
{
  Wire *wire = wire_new (context, seed);

  connect_both (wire);
  run_until (context, both_open, wire);
  return wire;
}

static void
run_transfer (GMainContext *context,
              Wire         *wire,
              guint         n_total,
              gsize         min_size,
              gsize         max_size,
              guint         n_streams,
              double       *mb_per_s)
{
  Transfer t;
  gint64 start = g_get_monotonic_time ();
  NatterSctpStats stats;
  guint64 bytes = 0;

  transfer_init (&t, wire, n_total, min_size, max_size, n_streams);
  transfer_pump (&t);
  run_until (context, transfer_done, &t);

  for (guint i = 0; i < t.sizes->len; i++)
    bytes += g_array_index (t.sizes, gsize, i);
  if (mb_per_s != NULL)
    *mb_per_s = bytes / ((g_get_monotonic_time () - start) / 1e6) / 1e6;

  g_assert_cmpuint (t.n_received, ==, n_total);
  for (guint i = 0; i < G_N_ELEMENTS (t.expected); i++)
    g_assert_true (g_queue_is_empty (&t.expected[i]));

  natter_sctp_association_get_stats (t.receiver, &stats);
  g_assert_cmpuint (stats.messages_received, ==, n_total);
  g_assert_cmpuint (stats.bytes_received, ==, bytes);

  /* The sender respected its high-water mark: our queue never held more
   * than that plus one message, on top of usrsctp's 1 MiB buffer. */
  natter_sctp_association_get_stats (t.sender, &stats);
  g_assert_cmpuint (stats.queued_peak_bytes, <=, t.high_water + NATTER_SCTP_MAX_MESSAGE_SIZE);
  g_assert_cmpuint (t.buffered_peak, <=, t.high_water + 2 * 1024 * 1024);

  /* Every packet fitted the path MTU. */
  g_assert_cmpuint (wire->max_packet, <=, NATTER_SCTP_DEFAULT_MTU);

  transfer_clear (&t);
}

/* Tests */

static void
test_handshake (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = wire_new (context, 1);
  guint opened = 0;

  g_assert_true (natter_sctp_stack_is_running ());
  g_signal_connect (wire->side[0], "opened", G_CALLBACK (count_signal), &opened);
  g_signal_connect (wire->side[1], "opened", G_CALLBACK (count_signal), &opened);

  connect_both (wire);
  run_until (context, both_open, wire);

  g_assert_cmpuint (opened, ==, 2);
  g_assert_cmpuint (natter_sctp_association_get_n_streams (wire->side[0]), ==, NATTER_SCTP_MAX_STREAMS);
  g_assert_cmpuint (natter_sctp_association_get_n_streams (wire->side[1]), ==, NATTER_SCTP_MAX_STREAMS);
  g_assert_cmpuint (natter_sctp_association_get_buffered_amount (wire->side[0]), ==, 0);
  g_assert_cmpuint (wire->max_packet, <=, NATTER_SCTP_DEFAULT_MTU);

  teardown (wire, context);
}

static void
test_late_connect (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = wire_new (context, 16);
  g_autoptr(GError) error = NULL;
  gint64 start;

  /* A's INIT reaches B before B connects: B keeps it until it has sent
   * its own (an unconnected socket would answer it with an ABORT), and the
   * handshake completes without waiting for a retransmission. */
  natter_sctp_association_connect (wire->side[0], &error);
  g_assert_no_error (error);
  run_for (context, 20);
  g_assert_cmpint (natter_sctp_association_get_state (wire->side[1]), ==, NATTER_SCTP_STATE_NEW);

  start = g_get_monotonic_time ();
  natter_sctp_association_connect (wire->side[1], &error);
  g_assert_no_error (error);
  run_until (context, both_open, wire);
  g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC / 2);

  teardown (wire, context);
}

static void
test_chat_in_order (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = open_pair (context, 2);
  double mb_per_s;

  run_transfer (context, wire, 10000 / SCALE, 1, NATTER_SCTP_MAX_MESSAGE_SIZE, 1, &mb_per_s);
  g_test_message ("in-memory wire: %.0f MB/s, largest packet %zu bytes, wire peak %zu bytes",
                  mb_per_s, wire->max_packet, wire->queued_peak_bytes);

  /* Full-size messages filled whole packets (DATA chunks are padded to
   * 4 bytes, so the last few bytes may stay unused). */
  g_assert_cmpuint (wire->max_packet, >, NATTER_SCTP_DEFAULT_MTU - 8);

  teardown (wire, context);
}

static gboolean
has_n_received (gpointer data)
{
  guint *counts = data;

  return counts[0] >= counts[1];
}

static void
count_message (NatterSctpAssociation *assoc,
               guint                  stream,
               guint                  ppid,
               GBytes                *message,
               gpointer               user_data)
{
  guint *counts = user_data;

  counts[0]++;
}

/* Runs @context until the slow tick is due within 4 to 12 ms. */
static void
run_until_just_before_tick (GMainContext *context)
{
  gint64 deadline = g_get_monotonic_time () + TIMEOUT_US;

  for (;;)
    {
      gint64 now = g_get_monotonic_time ();
      gint64 next = natter_sctp_stack_get_next_tick_us ();

      g_assert_cmpint (next, >, 0);
      if (next - now >= 4000 && next - now <= 12000)
        return;
      g_assert_cmpint (now, <, deadline);
      while (g_main_context_iteration (context, FALSE))
        ;
      g_usleep (next - now > 20000 ? 5000 : 1000);
    }
}

static gboolean
ticks_slowly (gpointer data)
{
  return natter_sctp_stack_get_tick_ms () == 250;
}

static gboolean
all_acknowledged (gpointer data)
{
  return natter_sctp_association_get_buffered_amount (data) == 0;
}

/* A quiet stack ticks its timers rarely; whatever comes next goes out and
 * is answered as promptly as before, and nothing is sent twice (a timer
 * fired early after the quiet spell would retransmit: one packet more). */
static void
test_idle_tick (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = open_pair (context, 17);
  static const guint8 payload[200] = { 0 };
  g_autoptr(GBytes) message = g_bytes_new_static (payload, sizeof payload);
  guint counts[2] = { 0, 0 };   /* received, wanted */
  gulong handler;

  handler = g_signal_connect (wire->side[1], "message-received", G_CALLBACK (count_message), counts);

  for (guint round = 0; round < 6; round++)
    {
      g_autoptr(GError) error = NULL;
      NatterSctpStats before, after;
      guint64 packets;

      /* Quiet: after the last SACK, no packet at all, on the slow tick.
       * The spells differ so that the sends below fall at different
       * points of the slow tick's 250 ms; every other one falls just
       * before the next slow tick, where usrsctp's clock, left alone,
       * would be almost 250 ms behind (more than the 200 ms
       * retransmission timeout). */
      run_for (context, 300);
      packets = wire->packets;
      run_for (context, 60 + 40 * round);
      g_assert_cmpuint (wire->packets, ==, packets);
      g_assert_cmpuint (natter_sctp_stack_get_tick_ms (), ==, 250);
      if (round % 2 == 1)
        run_until_just_before_tick (context);

      /* The DATA leaves within the send call, not at the next tick. */
      natter_sctp_association_get_stats (wire->side[0], &before);
      counts[1]++;
      g_assert_true (natter_sctp_association_send (wire->side[0], 1, TEST_PPID, message, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (natter_sctp_stack_get_tick_ms (), ==, 10);
      natter_sctp_association_get_stats (wire->side[0], &after);
      g_assert_cmpuint (after.packets_out - before.packets_out, ==, 1);
      run_until (context, has_n_received, counts);

      /* The receiver's delayed SACK (20 ms) is the one packet back; no
       * second copy of the DATA and no timeout (the retransmission
       * timeout and the window are as before).  A timer counted from a
       * clock left 250 ms behind would fire at the first tick; usrsctp
       * then resends nothing younger than the timeout, so this holds
       * even so, but the timing of the sends above is what a user sees. */
      run_until (context, all_acknowledged, wire->side[0]);
      natter_sctp_association_get_stats (wire->side[0], &after);
      g_assert_cmpuint (after.packets_out - before.packets_out, ==, 1);
      g_assert_cmpuint (after.packets_in - before.packets_in, ==, 1);
      g_assert_cmpuint (after.rto_ms, ==, before.rto_ms);
      g_assert_cmpuint (after.cwnd_bytes, >=, before.cwnd_bytes);

      /* Both sides are done: the stack goes back to the slow tick. */
      run_until (context, ticks_slowly, NULL);
    }

  g_signal_handler_disconnect (wire->side[1], handler);
  teardown (wire, context);
}

static void
test_streams_interleaved (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = open_pair (context, 3);

  /* Small and large messages on streams 1..7, each checked in its own
   * order. */
  run_transfer (context, wire, 3000, 1, 16384, 7, NULL);

  teardown (wire, context);
}

static void
test_too_large (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = open_pair (context, 4);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) too_large = make_message (0, NATTER_SCTP_MAX_MESSAGE_SIZE + 1);
  g_autoptr(GBytes) largest = make_message (1, NATTER_SCTP_MAX_MESSAGE_SIZE);
  g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
  NatterSctpStats before, after;
  guint64 packets = wire->packets;

  natter_sctp_association_get_stats (wire->side[0], &before);

  g_assert_false (natter_sctp_association_send (wire->side[0], NATTER_SCTP_STREAM_CHAT,
                                                TEST_PPID, too_large, &error));
  g_assert_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_TOO_LARGE);
  g_clear_error (&error);

  g_assert_false (natter_sctp_association_send (wire->side[0], NATTER_SCTP_STREAM_CHAT,
                                                TEST_PPID, empty, &error));
  g_assert_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_EMPTY);
  g_clear_error (&error);

  g_assert_false (natter_sctp_association_send (wire->side[0], NATTER_SCTP_MAX_STREAMS,
                                                TEST_PPID, largest, &error));
  g_assert_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_INVALID_STREAM);
  g_clear_error (&error);

  /* Nothing went out, nothing is buffered. */
  natter_sctp_association_get_stats (wire->side[0], &after);
  g_assert_cmpuint (after.messages_sent, ==, before.messages_sent);
  g_assert_cmpuint (after.packets_out, ==, before.packets_out);
  g_assert_cmpuint (wire->packets, ==, packets);
  g_assert_cmpuint (natter_sctp_association_get_buffered_amount (wire->side[0]), ==, 0);

  /* The largest allowed message goes through whole. */
  run_transfer (context, wire, 1, NATTER_SCTP_MAX_MESSAGE_SIZE, NATTER_SCTP_MAX_MESSAGE_SIZE, 1, NULL);

  teardown (wire, context);
}

static void
test_lossy (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = wire_new (context, 5);

  /* From the first INIT on, both ways. */
  wire->loss = 0.10;
  connect_both (wire);
  run_until (context, both_open, wire);

  run_transfer (context, wire, 300, 1, 8192, 3, NULL);
  g_test_message ("10%% loss: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " packets lost",
                  wire->lost, wire->packets);
  g_assert_cmpuint (wire->lost, >, 0);

  teardown (wire, context);
}

static void
test_reorder_duplicate (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = wire_new (context, 6);

  wire->loss = 0.02;
  wire->duplicate = 0.05;
  wire->reorder = 0.10;
  connect_both (wire);
  run_until (context, both_open, wire);

  run_transfer (context, wire, 1000, 1, 16384, 3, NULL);

  teardown (wire, context);
}

static gboolean
sender_blocked (gpointer data)
{
  Transfer *t = data;

  return t->blocked;
}

static void
test_backpressure (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = open_pair (context, 7);
  Transfer t;
  gsize buffered;
  guint64 sent_before;
  NatterSctpStats stats;

  /* 64 KiB messages to a receiver that does not read. */
  transfer_init (&t, wire, 200, NATTER_SCTP_MAX_MESSAGE_SIZE, NATTER_SCTP_MAX_MESSAGE_SIZE, 1);
  natter_sctp_association_set_receive_paused (t.receiver, TRUE);
  transfer_pump (&t);
  run_until (context, sender_blocked, &t);

  /* It stays stuck: usrsctp's send buffer and the receiver's window are
   * full, the rest waits in our queue, and nothing grows. */
  run_for (context, 500);
  natter_sctp_association_get_stats (t.sender, &stats);
  sent_before = stats.messages_sent;
  run_for (context, 300);
  natter_sctp_association_get_stats (t.sender, &stats);
  g_assert_cmpuint (stats.messages_sent, ==, sent_before);

  buffered = natter_sctp_association_get_buffered_amount (t.sender);
  g_test_message ("stalled: buffered %zu, queue peak %zu, wire peak %zu, sent %u of %u, received %u",
                  buffered, stats.queued_peak_bytes, wire->queued_peak_bytes,
                  t.n_sent, t.n_total, t.n_received);
  g_assert_true (t.blocked);
  g_assert_cmpuint (t.n_sent, <, t.n_total);
  g_assert_cmpuint (t.n_received, ==, 0);
  g_assert_cmpuint (buffered, >, 1024 * 1024);
  g_assert_cmpuint (buffered, <=, t.high_water + NATTER_SCTP_MAX_MESSAGE_SIZE);
  g_assert_cmpuint (stats.queued_peak_bytes, <=, t.high_water + NATTER_SCTP_MAX_MESSAGE_SIZE);
  /* In flight at most a receive window's worth, plus headers. */
  g_assert_cmpuint (wire->queued_peak_bytes, <, 2 * 1024 * 1024);

  /* The reader comes back: everything arrives, nothing dropped. */
  natter_sctp_association_set_receive_paused (t.receiver, FALSE);
  run_until (context, transfer_done, &t);
  g_assert_cmpuint (t.n_received, ==, t.n_total);
  g_assert_cmpuint (t.n_low, >, 0);

  transfer_clear (&t);
  teardown (wire, context);
}

static void
test_teardown_before_connect (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = wire_new (context, 8);
  g_autoptr(GError) error = NULL;

  /* One side never connects, and the other's INIT waits in it. */
  natter_sctp_association_connect (wire->side[0], &error);
  g_assert_no_error (error);
  run_for (context, 20);

  teardown (wire, context);

  /* And one closed before anything at all. */
  {
    NatterSctpAssociation *assoc = natter_sctp_association_new (context, 1, 2);
    guint closed = 0;

    g_signal_connect (assoc, "closed", G_CALLBACK (count_signal), &closed);
    natter_sctp_association_close (assoc);
    g_assert_cmpuint (closed, ==, 1);
    g_assert_cmpint (natter_sctp_association_get_state (assoc), ==, NATTER_SCTP_STATE_CLOSED);
    g_assert_false (natter_sctp_association_connect (assoc, &error));
    g_assert_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_STATE);
    g_object_unref (assoc);
    run_until (context, stack_stopped, NULL);
  }
}

static void
test_teardown_mid_handshake (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = wire_new (context, 9);

  connect_both (wire);
  /* The INITs cross; the rest is still on the wire. */
  g_main_context_iteration (context, FALSE);
  g_assert_false (both_open (wire));

  teardown (wire, context);
}

static void
test_teardown_in_flight (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = open_pair (context, 10);
  g_autoptr(GError) error = NULL;

  /* 10 MB handed over at once, no back-pressure: most of it waits in the
   * association's queue, some in usrsctp, some on the wire. */
  for (guint i = 0; i < 160; i++)
    {
      g_autoptr(GBytes) message = make_message (i, NATTER_SCTP_MAX_MESSAGE_SIZE);

      natter_sctp_association_send (wire->side[0], NATTER_SCTP_STREAM_FIRST_BULK + i % 4,
                                    TEST_PPID, message, &error);
      g_assert_no_error (error);
    }
  run_for (context, 30);
  g_assert_cmpuint (natter_sctp_association_get_buffered_amount (wire->side[0]), >, 1024 * 1024);

  teardown (wire, context);
}

static gboolean
both_closed (gpointer data)
{
  Wire *wire = data;

  return natter_sctp_association_get_state (wire->side[0]) == NATTER_SCTP_STATE_CLOSED
         && natter_sctp_association_get_state (wire->side[1]) == NATTER_SCTP_STATE_CLOSED;
}

static void
test_teardown_close_both (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = open_pair (context, 11);

  natter_sctp_association_close (wire->side[0]);
  natter_sctp_association_close (wire->side[1]);
  run_until (context, both_closed, wire);

  teardown (wire, context);
}

static void
test_teardown_close_one (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = open_pair (context, 12);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) message = make_message (0, 1000);
  guint closed = 0;

  g_signal_connect (wire->side[1], "closed", G_CALLBACK (count_signal), &closed);

  /* A graceful close: B sees "closed", and A can send no more. */
  natter_sctp_association_close (wire->side[0]);
  g_assert_false (natter_sctp_association_send (wire->side[0], 1, TEST_PPID, message, &error));
  g_assert_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_CLOSED);
  run_until (context, both_closed, wire);
  g_assert_cmpuint (closed, ==, 1);

  teardown (wire, context);
}

static void
test_teardown_close_delivers_queue (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = open_pair (context, 13);
  Transfer t;

  /* Close right after queueing 4 MB: it all arrives first. */
  transfer_init (&t, wire, 64, NATTER_SCTP_MAX_MESSAGE_SIZE, NATTER_SCTP_MAX_MESSAGE_SIZE, 2);
  t.high_water = G_MAXSIZE;
  transfer_pump (&t);
  natter_sctp_association_close (t.sender);
  run_until (context, both_closed, wire);
  g_assert_cmpuint (t.n_received, ==, t.n_total);

  transfer_clear (&t);
  teardown (wire, context);
}

static void
test_teardown_abort_one (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = open_pair (context, 14);
  guint closed = 0;

  g_signal_connect (wire->side[1], "closed", G_CALLBACK (count_signal), &closed);

  /* A is finalized while up: its ABORT reaches B, even though B is not
   * reading (the notification would wait behind unread messages). */
  natter_sctp_association_set_receive_paused (wire->side[1], TRUE);
  g_clear_object (&wire->side[0]);
  while (closed == 0)
    g_main_context_iteration (context, TRUE);
  g_assert_cmpint (natter_sctp_association_get_state (wire->side[1]), ==, NATTER_SCTP_STATE_CLOSED);

  teardown (wire, context);
}

typedef struct
{
  Wire *wire;
  guint n_packets;
} DropInCallback;

/* Drops the wire's reference to side 1 from inside its own packet-out
 * call, that is from inside usrsctp. */
static void
drop_in_callback (NatterSctpAssociation *assoc,
                  const guint8          *packet,
                  gsize                  len,
                  gpointer               user_data)
{
  DropInCallback *drop = user_data;

  if (++drop->n_packets == 2 && drop->wire->side[1] != NULL)
    {
      NatterSctpAssociation *side = g_steal_pointer (&drop->wire->side[1]);

      g_object_unref (side);
      return;
    }
  wire_packet_out (assoc, packet, len, &drop->wire->ends[1]);
}

static gboolean
side_1_gone (gpointer data)
{
  Wire *wire = data;

  return wire->side[1] == NULL;
}

static void
test_teardown_in_callback (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Wire *wire = wire_new (context, 15);
  DropInCallback drop = { wire, 0 };

  natter_sctp_association_set_packet_out_func (wire->side[1], drop_in_callback, &drop, NULL);
  connect_both (wire);
  run_until (context, side_1_gone, wire);

  /* Side 0 goes on retransmitting into the void; the dropped socket was
   * closed on a later timer tick. */
  run_for (context, 50);
  g_assert_cmpint (natter_sctp_association_get_state (wire->side[0]), !=, NATTER_SCTP_STATE_OPEN);

  teardown (wire, context);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/sctp/handshake", test_handshake);
  g_test_add_func ("/sctp/late-connect", test_late_connect);
  g_test_add_func ("/sctp/chat-in-order", test_chat_in_order);
  g_test_add_func ("/sctp/streams-interleaved", test_streams_interleaved);
  g_test_add_func ("/sctp/idle-tick", test_idle_tick);
  g_test_add_func ("/sctp/too-large", test_too_large);
  g_test_add_func ("/sctp/lossy", test_lossy);
  g_test_add_func ("/sctp/reorder-duplicate", test_reorder_duplicate);
  g_test_add_func ("/sctp/backpressure", test_backpressure);
  g_test_add_func ("/sctp/teardown/before-connect", test_teardown_before_connect);
  g_test_add_func ("/sctp/teardown/mid-handshake", test_teardown_mid_handshake);
  g_test_add_func ("/sctp/teardown/in-flight", test_teardown_in_flight);
  g_test_add_func ("/sctp/teardown/close-both", test_teardown_close_both);
  g_test_add_func ("/sctp/teardown/close-one", test_teardown_close_one);
  g_test_add_func ("/sctp/teardown/close-delivers-queue", test_teardown_close_delivers_queue);
  g_test_add_func ("/sctp/teardown/abort-one", test_teardown_abort_one);
  g_test_add_func ("/sctp/teardown/in-callback", test_teardown_in_callback);

  return g_test_run ();
}
