/* natter-bench-messaging.c: natter-bench messaging
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "natter-bench.h"
#include "natter-bench-local.h"
#include "natter-identity.h"
#include "natter-messaging-service.h"
#include "natter-peer-connection.h"

/* Two NatterMessagingServices in two processes, over loopback ICE, with
 * profiles in temporary folders and a natter-rendezvous process on
 * 127.0.0.1 for the first signals.  This process is the sender (A); it
 * starts itself again as the receiver (B, "--receiver").  Measured:
 *
 *  - send-to-delivered latency: from send_text_async() to the
 *    "delivered" state, which needs A's commit to history and outbox, the
 *    frame to B, B's commit, B's signed receipt and A's state update;
 *    one message at a time;
 *  - sustained acknowledged messages per second, with a window of
 *    messages in flight;
 *  - in the same run, the bare transport round trip (two peer
 *    connections in this process, 200-byte messages) as the baseline. */

#define LO_INTERFACES "lo"

/* ---- A service in this process ------------------------------------------ */

/* CPU time (user + system) of process @pid, all threads, in seconds; -1
 * when it cannot be read. */
static double
process_cpu_seconds (const char *pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/stat", pid);
  g_autofree char *text = NULL;
  g_auto(GStrv) fields = NULL;
  const char *after;

  if (!g_file_get_contents (path, &text, NULL, NULL) || (after = strrchr (text, ')')) == NULL)
    return -1;
  /* After "pid (comm)": state is field 3; utime and stime are 14 and 15. */
  fields = g_strsplit (after + 2, " ", 14);
  if (g_strv_length (fields) < 14)
    return -1;
  return (g_ascii_strtod (fields[11], NULL) + g_ascii_strtod (fields[12], NULL)) / sysconf (_SC_CLK_TCK);
}

/* ---- The receiver process ----------------------------------------------- */

static int
run_receiver (const char *dir,
              const char *url,
              const char *contact)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  NatterBenchLocal local = { 0 };

  if (!natter_bench_local_start (&local, dir, url, contact, NULL, &error))
    {
      fprintf (stderr, "natter-bench receiver: %s\n", error->message);
      return 1;
    }
  printf ("ready %s\n", natter_messaging_service_get_peer_id (local.service));
  fflush (stdout);
  /* Runs until the parent goes away (PR_SET_PDEATHSIG). */
  g_main_loop_run (loop);
  return 0;
}

/* ---- The transport baseline --------------------------------------------- */

typedef struct
{
  NatterPeerConnection *a;
  NatterPeerConnection *b;
  gboolean echoed;
} Echo;

static void
forward_signal (NatterPeerConnection *from,
                GBytes               *blob,
                NatterPeerConnection *to)
{
  natter_peer_connection_handle_signal (to, blob, NULL);
}

static void
on_echo (NatterPeerConnection *pc,
         guint                 stream,
         GBytes               *message,
         Echo                 *echo)
{
  natter_peer_connection_send (echo->b, NATTER_PEER_STREAM_CHAT, message, NULL);
}

static void
on_echoed (NatterPeerConnection *pc,
           guint                 stream,
           GBytes               *message,
           Echo                 *echo)
{
  echo->echoed = TRUE;
}

/* The p50 and p99 round trip of 200-byte messages, in µs, or -1. */
static double
transport_rtt_us (guint   n,
                  double *p99)
{
  g_autoptr(NatterIdentity) id_a = natter_identity_new_random ();
  g_autoptr(NatterIdentity) id_b = natter_identity_new_random ();
  g_autoptr(NatterIceConfig) config = natter_ice_config_new ();
  g_autoptr(GBytes) payload = NULL;
  g_autofree double *rtts = g_new0 (double, n);
  const char *lo[] = { LO_INTERFACES, NULL };
  guint8 bytes[200];
  Echo echo = { 0 };
  double start;
  double p50;

  memset (bytes, 'x', sizeof bytes);
  payload = g_bytes_new (bytes, sizeof bytes);
  natter_ice_config_set_interfaces (config, lo);
  echo.a = natter_peer_connection_new (id_a, natter_identity_get_peer_id (id_b), config, NULL);
  echo.b = natter_peer_connection_new (id_b, natter_identity_get_peer_id (id_a), config, NULL);
  g_signal_connect_object (echo.a, "signal", G_CALLBACK (forward_signal), echo.b, 0);
  g_signal_connect_object (echo.b, "signal", G_CALLBACK (forward_signal), echo.a, 0);
  g_signal_connect (echo.b, "message", G_CALLBACK (on_echo), &echo);
  g_signal_connect (echo.a, "message", G_CALLBACK (on_echoed), &echo);
  natter_peer_connection_start (echo.a);
  natter_peer_connection_start (echo.b);
  start = natter_bench_now ();
  while (natter_peer_connection_get_state (echo.a) != NATTER_PEER_CONNECTION_STATE_CONNECTED ||
         natter_peer_connection_get_state (echo.b) != NATTER_PEER_CONNECTION_STATE_CONNECTED)
    {
      if (natter_bench_now () - start > 20)
        return -1;
      g_main_context_iteration (NULL, TRUE);
    }

  for (guint i = 0; i < n; i++)
    {
      double t0 = natter_bench_now ();

      echo.echoed = FALSE;
      natter_peer_connection_send (echo.a, NATTER_PEER_STREAM_CHAT, payload, NULL);
      while (!echo.echoed)
        g_main_context_iteration (NULL, TRUE);
      rtts[i] = (natter_bench_now () - t0) * 1e6;
    }
  natter_peer_connection_close (echo.a);
  natter_peer_connection_close (echo.b);
  g_clear_object (&echo.a);
  g_clear_object (&echo.b);

  p50 = natter_bench_percentile (rtts, n, 50);
  *p99 = natter_bench_percentile (rtts, n, 99);
  return p50;
}

/* ---- The sender ---------------------------------------------------------- */

typedef struct
{
  GHashTable *sent_at;       /* msg_id -> double (boxed) */
  GHashTable *early;         /* msg_id -> delivery time, before its send callback ran */
  GArray     *latencies;     /* double, µs */
  guint       delivered;
  guint       in_flight;
  gboolean    one_done;
  gboolean    failed;
} Tracker;

static void
on_state (NatterMessagingService *service,
          const char             *msg_id,
          const char             *peer_id,
          const char             *state,
          const char             *via,
          Tracker                *tracker)
{
  double *sent_at;

  if (strcmp (state, "failed") == 0)
    tracker->failed = TRUE;
  if (strcmp (state, "delivered") != 0)
    return;
  sent_at = g_hash_table_lookup (tracker->sent_at, msg_id);
  if (sent_at == NULL)
    {
      /* The send callback may run after the receipt: it is a separate
       * main-loop dispatch. */
      double *now = g_new (double, 1);

      *now = natter_bench_now ();
      g_hash_table_insert (tracker->early, g_strdup (msg_id), now);
      return;
    }
  {
    double us = (natter_bench_now () - *sent_at) * 1e6;

    g_array_append_val (tracker->latencies, us);
  }
  g_hash_table_remove (tracker->sent_at, msg_id);
  tracker->delivered++;
  tracker->in_flight--;
  tracker->one_done = TRUE;
}

typedef struct
{
  Tracker *tracker;
  double   t0;
} SendCall;

static void
on_sent (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  SendCall *call = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *msg_id =
    natter_messaging_service_send_text_finish (NATTER_MESSAGING_SERVICE (source), result, &error);

  if (msg_id == NULL)
    {
      fprintf (stderr, "natter-bench: send failed: %s\n", error->message);
      call->tracker->failed = TRUE;
    }
  else if (g_hash_table_contains (call->tracker->early, msg_id))
    {
      Tracker *tracker = call->tracker;
      double us = (*(double *) g_hash_table_lookup (tracker->early, msg_id) - call->t0) * 1e6;

      g_array_append_val (tracker->latencies, us);
      g_hash_table_remove (tracker->early, msg_id);
      tracker->delivered++;
      tracker->in_flight--;
      tracker->one_done = TRUE;
    }
  else
    {
      double *t0 = g_new (double, 1);

      *t0 = call->t0;
      g_hash_table_insert (call->tracker->sent_at, g_steal_pointer (&msg_id), t0);
    }
  g_free (call);
}

static void
send_one (NatterMessagingService *service,
          const char             *peer,
          Tracker                *tracker,
          guint                   i)
{
  g_autofree char *text = g_strdup_printf ("Benchmark message %u: the quick brown fox jumps over the lazy dog", i);
  SendCall *call = g_new0 (SendCall, 1);

  call->tracker = tracker;
  call->t0 = natter_bench_now ();
  tracker->in_flight++;
  natter_messaging_service_send_text_async (service, peer, text, NULL, on_sent, call);
}

static void
usage (void)
{
  fprintf (stderr,
           "Usage: natter-bench messaging [--latency N] [--messages N] [--window N] [--round-trips N]\n"
           "  --latency N      messages sent one at a time for the latency (default 2000)\n"
           "  --messages N     messages for the sustained rate (default 20000)\n"
           "  --window N       messages in flight during the sustained run (default 1000)\n"
           "  --round-trips N  transport round trips for the baseline (default 5000)\n"
           "Environment: NATTER_RENDEZVOUS, the natter-rendezvous to start.\n");
}

int
natter_bench_messaging (int       argc,
                        char    **argv,
                        gboolean  json)
{
  g_autoptr(NatterBenchReport) report = natter_bench_report_new ("messaging");
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) server = NULL;
  g_autoptr(GSubprocess) receiver = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *rendezvous = NULL;
  g_autofree char *url = NULL;
  g_autofree char *line = NULL;
  g_autofree char *tmp = NULL;
  g_autofree char *dir_a = NULL;
  g_autofree char *dir_b = NULL;
  g_autofree char *self_exe = NULL;
  g_autofree char *peer_b = NULL;
  guint n_latency = 2000, n_messages = 20000, window = 1000, n_round_trips = 5000;
  const char *receiver_dir = NULL, *receiver_url = NULL, *receiver_contact = NULL;
  NatterBenchLocal a = { 0 };
  Tracker tracker = { 0 };
  double rtt_p50, rtt_p99 = -1, lat_p50, lat_p99, start, elapsed, rate, cpu_a, cpu_b;
  gboolean connected = FALSE;

  for (int i = 1; i < argc; i++)
    {
      if (g_str_equal (argv[i], "--json"))
        continue;
      else if (g_str_equal (argv[i], "--latency") && i + 1 < argc)
        n_latency = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (g_str_equal (argv[i], "--messages") && i + 1 < argc)
        n_messages = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (g_str_equal (argv[i], "--window") && i + 1 < argc)
        window = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (g_str_equal (argv[i], "--round-trips") && i + 1 < argc)
        n_round_trips = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (g_str_equal (argv[i], "--receiver") && i + 3 < argc)
        {
          receiver_dir = argv[++i];
          receiver_url = argv[++i];
          receiver_contact = argv[++i];
        }
      else
        {
          usage ();
          return 2;
        }
    }

  g_setenv ("NATTER_INTERFACES", LO_INTERFACES, TRUE);
  if (g_getenv ("GSETTINGS_BACKEND") == NULL)
    g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);
  if (receiver_dir != NULL)
    return run_receiver (receiver_dir, receiver_url, receiver_contact);

  n_latency = MAX (n_latency, 10);
  n_messages = MAX (n_messages, 10);
  window = CLAMP (window, 1, 100000);
  n_round_trips = MAX (n_round_trips, 10);

  /* The baseline first, before the services load the machine. */
  rtt_p50 = transport_rtt_us (n_round_trips, &rtt_p99);

  /* This executable, exactly, to start the receiver and find the server. */
  self_exe = g_file_read_link ("/proc/self/exe", NULL);
  rendezvous = natter_bench_find_rendezvous (self_exe);
  if (rendezvous == NULL)
    {
      fprintf (stderr, "natter-bench messaging: natter-rendezvous not found (set NATTER_RENDEZVOUS)\n");
      return 1;
    }

  tmp = g_dir_make_tmp ("natter-bench-XXXXXX", &error);
  if (tmp == NULL)
    {
      fprintf (stderr, "natter-bench messaging: %s\n", error->message);
      return 1;
    }
  dir_a = g_build_filename (tmp, "a", NULL);
  dir_b = g_build_filename (tmp, "b", NULL);

  {
    g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);

    g_subprocess_launcher_set_child_setup (launcher, natter_bench_die_with_parent, NULL, NULL);
    server = g_subprocess_launcher_spawn (launcher, &error, rendezvous, "--listen", "127.0.0.1",
                                          "--port", "0", NULL);
    if (server == NULL)
      goto fail;
    out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (server));
    line = g_data_input_stream_read_line (out, NULL, NULL, &error);
    if (line == NULL || strrchr (line, ':') == NULL)
      goto fail;
    /* "natter-rendezvous: listening on ws://127.0.0.1:PORT/v1" */
    url = g_strdup (strstr (line, "ws://") != NULL ? strstr (line, "ws://") : "");
    g_clear_object (&out);
    g_clear_pointer (&line, g_free);
  }

  /* A's identity first, so B can list it as a contact. */
  if (!natter_bench_local_start (&a, dir_a, url, NULL, NULL, &error))
    goto fail;
  {
    g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);

    g_subprocess_launcher_set_child_setup (launcher, natter_bench_die_with_parent, NULL, NULL);
    receiver = g_subprocess_launcher_spawn (launcher, &error, self_exe, "messaging", "--receiver",
                                            dir_b, url, natter_messaging_service_get_peer_id (a.service),
                                            NULL);
    if (receiver == NULL)
      goto fail;
    out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (receiver));
    /* Skip the machine line natter-bench prints first. */
    do
      {
        g_free (line);
        line = g_data_input_stream_read_line (out, NULL, NULL, &error);
      }
    while (line != NULL && line[0] == '#');
    if (line == NULL || !g_str_has_prefix (line, "ready "))
      {
        if (error == NULL)
          g_set_error (&error, G_IO_ERROR, G_IO_ERROR_FAILED, "the receiver did not start");
        goto fail;
      }
    peer_b = g_strdup (line + strlen ("ready "));
  }
  a.done = FALSE;
  natter_messaging_service_add_contact_async (a.service, peer_b, "receiver", NULL, natter_bench_local_on_contact, &a);
  natter_bench_iterate_until (&a.done, 30);
  if (a.error != NULL)
    {
      error = g_steal_pointer (&a.error);
      goto fail;
    }

  tracker.sent_at = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  tracker.early = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  tracker.latencies = g_array_new (FALSE, FALSE, sizeof (double));
  g_signal_connect (a.service, "message-state-changed", G_CALLBACK (on_state), &tracker);

  /* Wait for the direct connection. */
  start = natter_bench_now ();
  while (!connected && natter_bench_now () - start < 30)
    {
      g_main_context_iteration (NULL, TRUE);
      connected = natter_messaging_service_get_peer_state (a.service, peer_b, NULL) == NATTER_PEER_STATE_DIRECT;
    }
  if (!connected)
    {
      g_set_error (&error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "the peers did not connect in 30 s");
      goto fail;
    }

  /* Warm up, then one at a time. */
  for (guint i = 0; i < n_latency + 100; i++)
    {
      tracker.one_done = FALSE;
      send_one (a.service, peer_b, &tracker, i);
      if (!natter_bench_iterate_until (&tracker.one_done, 10) || tracker.failed)
        {
          g_set_error (&error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "message %u was not delivered in 10 s", i);
          goto fail;
        }
      if (i == 99)
        g_array_set_size (tracker.latencies, 0);
    }
  lat_p50 = natter_bench_percentile ((double *) tracker.latencies->data, tracker.latencies->len, 50);
  lat_p99 = natter_bench_percentile ((double *) tracker.latencies->data, tracker.latencies->len, 99);

  /* Sustained: keep @window messages in flight. */
  tracker.delivered = 0;
  cpu_a = process_cpu_seconds ("self");
  cpu_b = process_cpu_seconds (g_subprocess_get_identifier (receiver));
  start = natter_bench_now ();
  {
    guint next = 0;

    while (tracker.delivered < n_messages)
      {
        while (next < n_messages && tracker.in_flight < window)
          send_one (a.service, peer_b, &tracker, next++);
        g_main_context_iteration (NULL, TRUE);
        if (tracker.failed || natter_bench_now () - start > 60)
          {
            NatterMessagingStats stats;

            natter_messaging_service_get_stats (a.service, &stats);
            g_set_error (&error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                         "only %u of %u messages delivered (%u in flight, outbox %u, "
                         "%" G_GUINT64_FORMAT " frames sent, %" G_GUINT64_FORMAT " received)",
                         tracker.delivered, n_messages, tracker.in_flight, stats.outbox_length,
                         stats.messages_sent, stats.messages_received);
            goto fail;
          }
      }
  }
  elapsed = natter_bench_now () - start;
  rate = n_messages / elapsed;
  cpu_a = process_cpu_seconds ("self") - cpu_a;
  cpu_b = process_cpu_seconds (g_subprocess_get_identifier (receiver)) - cpu_b;

  natter_bench_report_add (report, "baseline_transport_rtt_p50_us", rtt_p50,
                           "baseline: transport round trip p50, 200 B (µs)");
  natter_bench_report_add (report, "baseline_transport_rtt_p99_us", rtt_p99,
                           "baseline: transport round trip p99, 200 B (µs)");
  natter_bench_report_add (report, "send_to_delivered_p50_ms", lat_p50 / 1000.0,
                           "send to delivered p50 (ms)");
  natter_bench_report_add (report, "send_to_delivered_p99_ms", lat_p99 / 1000.0,
                           "send to delivered p99 (ms)");
  natter_bench_report_add (report, "delivered_vs_rtt_p50_ratio", lat_p50 / rtt_p50,
                           "send to delivered p50 / transport RTT p50");
  natter_bench_report_add (report, "acked_messages_per_s", rate,
                           "sustained messages per second, delivered (acked)");
  natter_bench_report_add (report, "sender_cpu_us_per_msg", cpu_a / n_messages * 1e6,
                           "sender process CPU per message, all threads (µs)");
  natter_bench_report_add (report, "receiver_cpu_us_per_msg", cpu_b / n_messages * 1e6,
                           "receiver process CPU per message, all threads (µs)");
  natter_bench_report_add (report, "messages", n_messages, "messages in the sustained run");
  natter_bench_report_add (report, "window", window, "messages in flight");
  natter_bench_report_print (report, json);

  g_subprocess_force_exit (receiver);
  g_subprocess_force_exit (server);
  natter_bench_remove_tree (tmp);
  g_hash_table_unref (tracker.sent_at);
  g_hash_table_unref (tracker.early);
  g_array_unref (tracker.latencies);
  return 0;

fail:
  fprintf (stderr, "natter-bench messaging: %s\n", error != NULL ? error->message : "failed");
  if (receiver != NULL)
    g_subprocess_force_exit (receiver);
  if (server != NULL)
    g_subprocess_force_exit (server);
  if (tmp != NULL)
    natter_bench_remove_tree (tmp);
  return 1;
}
