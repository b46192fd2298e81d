/* natter-bench-transport.c: natter-bench transport
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <stdio.h>
#include <string.h>

#include "natter-bench.h"
#include "natter-bench-baselines.h"
#include "natter-identity.h"
#include "natter-peer-connection.h"

/* Two peer connections in this process, over loopback ICE (interfaces =
 * lo), through the whole stack: libnice, the Noise channel and SCTP on the
 * transport thread, messages delivered to this (main) thread.  Baselines
 * run first, in the same process, so that ratios mean something on a busy
 * machine. */

typedef struct
{
  NatterIdentity *id_a;
  NatterIdentity *id_b;
  NatterPeerConnection *a;
  NatterPeerConnection *b;
} Pair;

static void
forward_signal (NatterPeerConnection *from,
                GBytes               *blob,
                NatterPeerConnection *to)
{
  natter_peer_connection_handle_signal (to, blob, NULL);
}

static NatterIceConfig *
loopback_config (void)
{
  static const char *lo[] = { "lo", NULL };
  NatterIceConfig *config = natter_ice_config_new ();

  natter_ice_config_set_interfaces (config, lo);
  natter_ice_config_set_ipv6 (config, FALSE);
  return config;
}

static void
pair_init (Pair *pair)
{
  g_autoptr(NatterIceConfig) config = loopback_config ();

  if (pair->id_a == NULL)
    {
      pair->id_a = natter_identity_new_random ();
      pair->id_b = natter_identity_new_random ();
    }
  pair->a = natter_peer_connection_new (pair->id_a, natter_identity_get_peer_id (pair->id_b), config, NULL);
  pair->b = natter_peer_connection_new (pair->id_b, natter_identity_get_peer_id (pair->id_a), config, NULL);
  g_signal_connect_object (pair->a, "signal", G_CALLBACK (forward_signal), pair->b, 0);
  g_signal_connect_object (pair->b, "signal", G_CALLBACK (forward_signal), pair->a, 0);
}

static void
pair_drop (Pair *pair)
{
  g_clear_object (&pair->a);
  g_clear_object (&pair->b);
}

static gboolean
both_connected (Pair *pair)
{
  return natter_peer_connection_get_state (pair->a) == NATTER_PEER_CONNECTION_STATE_CONNECTED &&
         natter_peer_connection_get_state (pair->b) == NATTER_PEER_CONNECTION_STATE_CONNECTED;
}

static gboolean
any_failed (Pair *pair)
{
  return natter_peer_connection_get_state (pair->a) >= NATTER_PEER_CONNECTION_STATE_FAILED ||
         natter_peer_connection_get_state (pair->b) >= NATTER_PEER_CONNECTION_STATE_FAILED;
}

/* Iterates until both are connected; returns the seconds it took, or a
 * negative number on failure or after 20 s. */
static double
pair_connect (Pair *pair)
{
  double start = natter_bench_now ();

  natter_peer_connection_start (pair->a);
  natter_peer_connection_start (pair->b);
  while (!both_connected (pair))
    {
      if (any_failed (pair) || natter_bench_now () - start > 20.0)
        return -1.0;
      g_main_context_iteration (NULL, TRUE);
    }
  return natter_bench_now () - start;
}

static void
run_for (double seconds)
{
  double until = natter_bench_now () + seconds;

  while (natter_bench_now () < until)
    {
      while (g_main_context_pending (NULL))
        g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

/* ---- Round trips -------------------------------------------------------- */

typedef struct
{
  Pair *pair;
  gboolean echoed;
} Rtt;

static void
on_echo (NatterPeerConnection *pc,
         guint                 stream,
         GBytes               *message,
         Rtt                  *rtt)
{
  natter_peer_connection_send (rtt->pair->b, NATTER_PEER_STREAM_CHAT, message, NULL);
}

static void
on_echoed (NatterPeerConnection *pc,
           guint                 stream,
           GBytes               *message,
           Rtt                  *rtt)
{
  rtt->echoed = TRUE;
}

/* ---- Bulk --------------------------------------------------------------- */

typedef struct
{
  Pair *pair;
  GBytes *chunk;
  gsize total;
  gsize sent;
  gsize received;
  gsize window;
} Bulk;

static void
bulk_pump (Bulk *bulk)
{
  while (bulk->sent < bulk->total &&
         natter_peer_connection_get_buffered_amount (bulk->pair->a) < bulk->window)
    {
      if (!natter_peer_connection_send (bulk->pair->a, NATTER_PEER_STREAM_FIRST_BULK, bulk->chunk, NULL))
        return;
      bulk->sent += g_bytes_get_size (bulk->chunk);
    }
}

static void
on_bulk_low (NatterPeerConnection *pc,
             Bulk                 *bulk)
{
  bulk_pump (bulk);
}

static void
on_bulk_message (NatterPeerConnection *pc,
                 guint                 stream,
                 GBytes               *message,
                 Bulk                 *bulk)
{
  bulk->received += g_bytes_get_size (message);
}

static void
usage (void)
{
  fprintf (stderr,
           "Usage: natter-bench transport [--connects N] [--round-trips N] [--bulk-mb N] [--skip-baselines]\n"
           "  --connects N      connection setups to time (default 20)\n"
           "  --round-trips N   200-byte round trips (default 10000)\n"
           "  --bulk-mb N       megabytes of 64 KiB messages for bulk throughput (default 512)\n");
}

int
natter_bench_transport (int       argc,
                        char    **argv,
                        gboolean  json)
{
  g_autoptr(NatterBenchReport) report = natter_bench_report_new ("transport");
  guint n_connects = 20;
  guint n_round_trips = 10000;
  gsize bulk_mb = 512;
  gboolean skip_baselines = FALSE;
  g_autofree double *setups = NULL;
  g_autofree double *rtts = NULL;
  double udp_rtt_p50 = -1, udp_rtt_p99 = -1, tcp_mbps = -1, sctp_mbps = -1;
  double setup_p50, rtt_p50, rtt_p99, bulk_mbps;
  Pair pair = { 0 };
  Rtt rtt = { 0 };
  Bulk bulk = { 0 };
  double start, elapsed;
  guint connected = 0;
  guint8 payload[200];

  for (int i = 1; i < argc; i++)
    {
      if (g_str_equal (argv[i], "--json"))
        continue;
      else if (g_str_equal (argv[i], "--skip-baselines"))
        skip_baselines = TRUE;
      else if (g_str_equal (argv[i], "--connects") && i + 1 < argc)
        n_connects = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (g_str_equal (argv[i], "--round-trips") && i + 1 < argc)
        n_round_trips = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (g_str_equal (argv[i], "--bulk-mb") && i + 1 < argc)
        bulk_mb = (gsize) g_ascii_strtoull (argv[++i], NULL, 10);
      else
        {
          usage ();
          return 2;
        }
    }

  n_connects = MAX (n_connects, 1);
  n_round_trips = MAX (n_round_trips, 1);
  bulk_mb = MAX (bulk_mb, 1);

  /* Baselines first: the SCTP one drives usrsctp on this thread, and must
   * be done before the transport thread starts its own associations. */
  if (!skip_baselines)
    {
      udp_rtt_p50 = natter_bench_baseline_udp_rtt_us (n_round_trips, 200, &udp_rtt_p99);
      tcp_mbps = natter_bench_baseline_tcp_mbps (bulk_mb * 1000 * 1000 * 2);
      sctp_mbps = natter_bench_baseline_sctp_udp_mbps (bulk_mb * 1000 * 1000);
    }

  /* Connection setup: from start() on both sides to both connected
   * (ICE checks, Noise handshake, SCTP association). */
  setups = g_new0 (double, n_connects);
  for (guint i = 0; i < n_connects; i++)
    {
      double t;

      pair_init (&pair);
      t = pair_connect (&pair);
      if (t >= 0)
        setups[connected++] = t * 1000.0;
      pair_drop (&pair);
      run_for (0.05);
    }
  if (connected < n_connects)
    {
      fprintf (stderr, "natter-bench transport: %u of %u connections failed\n",
               n_connects - connected, n_connects);
      return 1;
    }
  setup_p50 = natter_bench_percentile (setups, connected, 50);

  /* Round trips of 200-byte messages on the chat stream. */
  pair_init (&pair);
  if (pair_connect (&pair) < 0)
    {
      fprintf (stderr, "natter-bench transport: could not connect\n");
      return 1;
    }
  rtt.pair = &pair;
  g_signal_connect (pair.b, "message", G_CALLBACK (on_echo), &rtt);
  g_signal_connect (pair.a, "message", G_CALLBACK (on_echoed), &rtt);
  memset (payload, 0x5a, sizeof payload);
  rtts = g_new0 (double, n_round_trips);
  for (guint i = 0; i < n_round_trips + 100; i++)
    {
      g_autoptr(GBytes) message = g_bytes_new (payload, sizeof payload);
      double t0 = natter_bench_now ();

      rtt.echoed = FALSE;
      natter_peer_connection_send (pair.a, NATTER_PEER_STREAM_CHAT, message, NULL);
      while (!rtt.echoed)
        {
          if (any_failed (&pair))
            {
              fprintf (stderr, "natter-bench transport: connection lost\n");
              return 1;
            }
          g_main_context_iteration (NULL, TRUE);
        }
      /* The first 100 warm up caches and congestion state. */
      if (i >= 100)
        rtts[i - 100] = (natter_bench_now () - t0) * 1e6;
    }
  g_signal_handlers_disconnect_by_data (pair.a, &rtt);
  g_signal_handlers_disconnect_by_data (pair.b, &rtt);
  rtt_p50 = natter_bench_percentile (rtts, n_round_trips, 50);
  rtt_p99 = natter_bench_percentile (rtts, n_round_trips, 99);

  /* Bulk: 64 KiB messages on a bulk stream, as fast as back-pressure
   * allows, until the receiver has all of them. */
  bulk.pair = &pair;
  bulk.total = bulk_mb * 1000 * 1000;
  bulk.total -= bulk.total % NATTER_PEER_MAX_MESSAGE_SIZE;
  bulk.window = 4 * 1024 * 1024;
  bulk.chunk = g_bytes_new_take (g_malloc0 (NATTER_PEER_MAX_MESSAGE_SIZE), NATTER_PEER_MAX_MESSAGE_SIZE);
  natter_peer_connection_set_buffered_amount_low_threshold (pair.a, bulk.window / 2);
  g_signal_connect (pair.a, "buffered-amount-low", G_CALLBACK (on_bulk_low), &bulk);
  g_signal_connect (pair.b, "message", G_CALLBACK (on_bulk_message), &bulk);
  start = natter_bench_now ();
  bulk_pump (&bulk);
  while (bulk.received < bulk.total)
    {
      if (any_failed (&pair) || natter_bench_now () - start > 300)
        {
          fprintf (stderr, "natter-bench transport: bulk transfer failed\n");
          return 1;
        }
      g_main_context_iteration (NULL, TRUE);
      bulk_pump (&bulk);
    }
  elapsed = natter_bench_now () - start;
  bulk_mbps = bulk.total / elapsed / 1e6;
  g_signal_handlers_disconnect_by_data (pair.a, &bulk);
  g_signal_handlers_disconnect_by_data (pair.b, &bulk);
  g_bytes_unref (bulk.chunk);
  pair_drop (&pair);
  run_for (0.2);
  g_clear_object (&pair.id_a);
  g_clear_object (&pair.id_b);

  natter_bench_report_add (report, "connects", connected, "Connections timed");
  natter_bench_report_add (report, "setup_p50_ms", setup_p50, "Connection setup p50 (ms)");
  natter_bench_report_add (report, "setup_max_ms", natter_bench_percentile (setups, connected, 100),
                           "Connection setup max (ms)");
  natter_bench_report_add (report, "round_trips", n_round_trips, "Round trips timed (200 bytes)");
  natter_bench_report_add (report, "rtt_p50_us", rtt_p50, "Round trip p50 (us)");
  natter_bench_report_add (report, "rtt_p99_us", rtt_p99, "Round trip p99 (us)");
  natter_bench_report_add (report, "bulk_mb", bulk.total / 1e6, "Bulk data moved (MB)");
  natter_bench_report_add (report, "bulk_mbps", bulk_mbps, "Bulk throughput, 64 KiB messages (MB/s)");
  if (!skip_baselines)
    {
      natter_bench_report_add (report, "baseline_udp_rtt_p50_us", udp_rtt_p50, "Baseline: raw UDP round trip p50 (us)");
      natter_bench_report_add (report, "baseline_udp_rtt_p99_us", udp_rtt_p99, "Baseline: raw UDP round trip p99 (us)");
      natter_bench_report_add (report, "baseline_tcp_mbps", tcp_mbps, "Baseline: raw TCP loopback (MB/s)");
      natter_bench_report_add (report, "baseline_sctp_udp_mbps", sctp_mbps,
                               "Baseline: plain usrsctp over UDP, no ICE or crypto (MB/s)");
      if (sctp_mbps > 0)
        natter_bench_report_add (report, "bulk_vs_sctp_ratio", bulk_mbps / sctp_mbps,
                                 "Bulk throughput / plain usrsctp");
    }
  natter_bench_report_print (report, json);
  return 0;
}
