/* natter-bench-files.c: natter-bench files
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <glib/gstdio.h>
#include <sodium.h>

#include "natter-bench.h"
#include "natter-bench-local.h"
#include "natter-bench-baselines.h"
#include "natter-identity.h"
#include "natter-messaging-service.h"
#include "natter-peer-connection.h"

/* A file of --size bytes (1 GiB by default) goes from this process (A) to
 * a second one (B, this program again with "--receiver"), both full
 * NatterMessagingServices over loopback ICE with a natter-rendezvous on
 * 127.0.0.1, B accepting automatically into a temporary folder.  The
 * figure is timed from the moment A starts sending (B's accept arrived) to
 * A's "complete", which needs B to have written, hashed, checked, fsynced
 * and renamed the file.  Meanwhile A sends a chat message every
 * --chat-interval ms (50 by default: twenty a second, far more than people
 * type, and few enough that the probe does not itself load the machine;
 * 0 sends each as soon as the one before is delivered) and times each to
 * "delivered" (B's signed receipt): the chat round trip during the
 * transfer, next to the same measured idle, one at a time, before it.
 *
 * Baselines in the same run: raw TCP over loopback (one process, two
 * threads), and the transport's own bulk throughput between two processes:
 * two bare NatterPeerConnections (ICE, Noise, SCTP), this process and a
 * child ("--transport-peer") signaling over its pipes, 64 KiB messages on
 * a bulk stream at most 4 MiB buffered, as in natter-bench transport.  It
 * runs before the file and again after it, and the file is compared with
 * the mean of the two: the host's speed drifts by several percent within a
 * minute, and the two figures show by how much. */

#define LO "lo"

/* ---- Transport baseline: two processes, bare connections ---------------- */

typedef struct
{
  NatterPeerConnection *pc;
  GDataInputStream     *in;
  GOutputStream        *out;
  guint64               received;
  guint64               expected;
  gboolean              done;
  gboolean              low;
} Bare;

static void
bare_on_signal (NatterPeerConnection *pc,
                GBytes               *blob,
                Bare                 *bare)
{
  g_autofree char *encoded = g_base64_encode (g_bytes_get_data (blob, NULL), g_bytes_get_size (blob));
  g_autofree char *line = g_strdup_printf ("sig %s\n", encoded);

  g_output_stream_write_all (bare->out, line, strlen (line), NULL, NULL, NULL);
  g_output_stream_flush (bare->out, NULL, NULL);
}

static void bare_read_line (Bare *bare);

static void
bare_on_line (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Bare *bare = user_data;
  g_autofree char *line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result,
                                                                NULL, NULL);

  if (line == NULL)
    {
      bare->done = TRUE;
      return;
    }
  if (g_str_has_prefix (line, "sig ") && bare->pc != NULL)
    {
      gsize len = 0;
      guchar *raw = g_base64_decode (line + 4, &len);
      g_autoptr(GBytes) blob = g_bytes_new_take (raw, len);

      natter_peer_connection_handle_signal (bare->pc, blob, NULL);
    }
  else if (g_str_has_prefix (line, "done"))
    bare->done = TRUE;
  bare_read_line (bare);
}

static void
bare_read_line (Bare *bare)
{
  g_data_input_stream_read_line_async (bare->in, G_PRIORITY_DEFAULT, NULL, bare_on_line, bare);
}

static void
bare_on_message (NatterPeerConnection *pc,
                 guint                 stream,
                 GBytes               *message,
                 Bare                 *bare)
{
  bare->received += g_bytes_get_size (message);
  if (bare->received >= bare->expected && !bare->done)
    {
      bare->done = TRUE;
      g_output_stream_write_all (bare->out, "done\n", 5, NULL, NULL, NULL);
      g_output_stream_flush (bare->out, NULL, NULL);
    }
}

static void
bare_on_low (NatterPeerConnection *pc,
             Bare                 *bare)
{
  bare->low = TRUE;
}

/* The child: prints its peer ID, connects to @remote, counts @expected bytes. */
static int
run_transport_peer (const char *remote,
                    guint64     expected)
{
  g_autoptr(NatterIdentity) identity = natter_identity_new_random ();
  g_autoptr(NatterIceConfig) config = natter_ice_config_new ();
  const char *lo[] = { LO, NULL };
  Bare bare = { 0 };

  natter_ice_config_set_interfaces (config, lo);
  printf ("id %s\n", natter_identity_get_peer_id (identity));
  fflush (stdout);
  bare.in = g_data_input_stream_new (g_unix_input_stream_new (0, FALSE));
  bare.out = g_unix_output_stream_new (1, FALSE);
  bare.expected = expected;
  bare.pc = natter_peer_connection_new (identity, remote, config, NULL);
  g_signal_connect (bare.pc, "signal", G_CALLBACK (bare_on_signal), &bare);
  g_signal_connect (bare.pc, "message", G_CALLBACK (bare_on_message), &bare);
  bare_read_line (&bare);
  natter_peer_connection_start (bare.pc);
  while (TRUE)
    g_main_context_iteration (NULL, TRUE);
  return 0;
}

/* MB/s of @total bytes from here to a child process, or -1. */
static double
transport_two_process_mbps (const char *self_exe,
                            guint64     total)
{
  g_autoptr(NatterIdentity) identity = natter_identity_new_random ();
  g_autoptr(NatterIceConfig) config = natter_ice_config_new ();
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDIN_PIPE);
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autofree char *line = NULL;
  g_autofree char *size_text = g_strdup_printf ("%" G_GUINT64_FORMAT, total);
  g_autofree guint8 *data = g_malloc (NATTER_PEER_MAX_MESSAGE_SIZE);
  const char *lo[] = { LO, NULL };
  Bare bare = { 0 };
  guint64 sent = 0;
  double start, elapsed;

  g_subprocess_launcher_set_child_setup (launcher, natter_bench_die_with_parent, NULL, NULL);
  child = g_subprocess_launcher_spawn (launcher, NULL, self_exe, "files", "--transport-peer",
                                       natter_identity_get_peer_id (identity), size_text, NULL);
  if (child == NULL)
    return -1;
  bare.in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child));
  bare.out = g_object_ref (g_subprocess_get_stdin_pipe (child));
  do
    {
      g_free (line);
      line = g_data_input_stream_read_line (bare.in, NULL, NULL, NULL);
    }
  while (line != NULL && !g_str_has_prefix (line, "id "));
  if (line == NULL)
    return -1;

  natter_ice_config_set_interfaces (config, lo);
  bare.pc = natter_peer_connection_new (identity, line + 3, config, NULL);
  natter_peer_connection_set_buffered_amount_low_threshold (bare.pc, 2 * 1024 * 1024);
  g_signal_connect (bare.pc, "signal", G_CALLBACK (bare_on_signal), &bare);
  g_signal_connect (bare.pc, "buffered-amount-low", G_CALLBACK (bare_on_low), &bare);
  bare_read_line (&bare);
  natter_peer_connection_start (bare.pc);
  start = natter_bench_now ();
  while (natter_peer_connection_get_state (bare.pc) != NATTER_PEER_CONNECTION_STATE_CONNECTED)
    {
      if (natter_bench_now () - start > 30)
        return -1;
      g_main_context_iteration (NULL, TRUE);
    }

  randombytes_buf (data, NATTER_PEER_MAX_MESSAGE_SIZE);
  payload = g_bytes_new_static (data, NATTER_PEER_MAX_MESSAGE_SIZE);
  start = natter_bench_now ();
  while (!bare.done)
    {
      while (sent < total && natter_peer_connection_get_buffered_amount (bare.pc) < 4 * 1024 * 1024)
        {
          natter_peer_connection_send (bare.pc, NATTER_PEER_STREAM_FIRST_BULK, payload, NULL);
          sent += NATTER_PEER_MAX_MESSAGE_SIZE;
        }
      bare.low = FALSE;
      g_main_context_iteration (NULL, TRUE);
      if (natter_bench_now () - start > 120)
        return -1;
    }
  elapsed = natter_bench_now () - start;
  natter_peer_connection_close (bare.pc);
  g_clear_object (&bare.pc);
  g_subprocess_force_exit (child);
  g_clear_object (&bare.in);
  g_clear_object (&bare.out);
  return sent / elapsed / 1e6;
}

/* ---- Services ------------------------------------------------------------ */

static int
run_receiver (const char *dir,
              const char *url,
              const char *contact,
              const char *downloads)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  NatterBenchLocal local = { 0 };

  if (!natter_bench_local_start (&local, dir, url, contact, downloads, &error))
    {
      fprintf (stderr, "natter-bench receiver: %s\n", error->message);
      return 1;
    }
  printf ("ready %s\n", natter_messaging_service_get_peer_id (local.service));
  fflush (stdout);
  g_main_loop_run (loop);
  return 0;
}

/* ---- The transfer and the chat beside it --------------------------------- */

typedef struct
{
  char    *transfer_id;
  char    *state;
  double   active_at;
  double   complete_at;
  char    *chat_id;
  double   chat_sent_at;
  gboolean chat_done;
  GArray  *rtts;           /* ms */
  gboolean failed;
} Run;

static void
on_transfer_state (NatterMessagingService *service,
                   const char             *transfer_id,
                   const char             *state,
                   const char             *detail,
                   Run                    *run)
{
  if (run->transfer_id != NULL && g_strcmp0 (transfer_id, run->transfer_id) != 0)
    return;
  if (g_str_equal (state, "active") && run->active_at == 0)
    run->active_at = natter_bench_now ();
  else if (g_str_equal (state, "complete"))
    run->complete_at = natter_bench_now ();
  else if (g_str_equal (state, "failed") || g_str_equal (state, "cancelled") ||
           g_str_equal (state, "rejected"))
    {
      fprintf (stderr, "natter-bench files: transfer %s: %s\n", state, detail ? detail : "");
      run->failed = TRUE;
    }
}

static void
on_message_state (NatterMessagingService *service,
                  const char             *msg_id,
                  const char             *peer_id,
                  const char             *state,
                  const char             *via,
                  Run                    *run)
{
  if (g_str_equal (state, "delivered") && g_strcmp0 (msg_id, run->chat_id) == 0 && !run->chat_done)
    {
      double ms = (natter_bench_now () - run->chat_sent_at) * 1000.0;

      g_array_append_val (run->rtts, ms);
      run->chat_done = TRUE;
    }
}

static void
on_chat_sent (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Run *run = user_data;

  g_free (run->chat_id);
  run->chat_id = natter_messaging_service_send_text_finish (NATTER_MESSAGING_SERVICE (source), result, NULL);
  if (run->chat_id == NULL)
    run->failed = TRUE;
}

static void
wake_up (gpointer data)
{
  *(gboolean *) data = FALSE;
}

static void
chat_once (NatterMessagingService *service,
           const char             *peer,
           Run                    *run,
           guint                   i)
{
  g_autofree char *text = g_strdup_printf ("chat %u during the file", i);

  run->chat_done = FALSE;
  g_clear_pointer (&run->chat_id, g_free);
  run->chat_sent_at = natter_bench_now ();
  natter_messaging_service_send_text_async (service, peer, text, NULL, on_chat_sent, run);
}

static void
on_file_sent (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Run *run = user_data;
  g_autoptr(GError) error = NULL;

  run->transfer_id = natter_messaging_service_send_file_finish (NATTER_MESSAGING_SERVICE (source),
                                                                result, &error);
  if (run->transfer_id == NULL)
    {
      fprintf (stderr, "natter-bench files: %s\n", error->message);
      run->failed = TRUE;
    }
}

static gboolean
write_random_file (const char  *path,
                   guint64      size,
                   GError     **error)
{
  g_autofree guint8 *block = g_malloc (4 * 1024 * 1024);
  FILE *file = fopen (path, "wb");

  if (file == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot create %s", path);
      return FALSE;
    }
  randombytes_buf (block, 4 * 1024 * 1024);
  for (guint64 done = 0; done < size;)
    {
      gsize n = (gsize) MIN (size - done, 4 * 1024 * 1024);

      /* Different blocks, cheaply: the first bytes count up. */
      memcpy (block, &done, sizeof done);
      if (fwrite (block, 1, n, file) != n)
        {
          fclose (file);
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot write %s", path);
          return FALSE;
        }
      done += n;
    }
  fclose (file);
  return TRUE;
}

static void
usage (void)
{
  fprintf (stderr,
           "Usage: natter-bench files [--size BYTES] [--bulk BYTES] [--tmp DIR]\n"
           "  --size BYTES   the file (default 1073741824, 1 GiB)\n"
           "  --bulk BYTES   bytes for the transport baseline (default 536870912)\n"
           "  --tmp DIR      where the file and the profiles go (default the temporary folder)\n"
           "  --chat-interval MS  during the transfer, a chat message every MS (default 50;\n"
           "                 0: each one as soon as the one before is delivered)\n"
           "Environment: NATTER_RENDEZVOUS, the natter-rendezvous to start.\n");
}

int
natter_bench_files (int       argc,
                    char    **argv,
                    gboolean  json)
{
  g_autoptr(NatterBenchReport) report = natter_bench_report_new ("files");
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) server = NULL;
  g_autoptr(GSubprocess) receiver = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GFile) file = NULL;
  g_autofree char *self_exe = NULL;
  g_autofree char *rendezvous = NULL;
  g_autofree char *url = NULL;
  g_autofree char *line = NULL;
  g_autofree char *tmp = NULL;
  g_autofree char *dir_a = NULL;
  g_autofree char *dir_b = NULL;
  g_autofree char *downloads = NULL;
  g_autofree char *source = NULL;
  g_autofree char *peer_b = NULL;
  guint64 size = G_GUINT64_CONSTANT (1) << 30, bulk = 512 * 1024 * 1024;
  const char *tmp_base = NULL;
  const char *r_dir = NULL, *r_url = NULL, *r_contact = NULL, *r_downloads = NULL;
  NatterBenchLocal a = { 0 };
  Run run = { 0 };
  double tcp_mbps, transport_mbps, transport_after_mbps, file_mbps, offer_s, start, idle_p50, idle_p99, busy_p50, busy_p99;
  guint idle_n, i = 0, chat_interval_ms = 50;
  gboolean connected = FALSE, chat_waiting = FALSE;

  for (int k = 1; k < argc; k++)
    {
      if (g_str_equal (argv[k], "--json"))
        continue;
      else if (g_str_equal (argv[k], "--size") && k + 1 < argc)
        size = g_ascii_strtoull (argv[++k], NULL, 10);
      else if (g_str_equal (argv[k], "--bulk") && k + 1 < argc)
        bulk = g_ascii_strtoull (argv[++k], NULL, 10);
      else if (g_str_equal (argv[k], "--tmp") && k + 1 < argc)
        tmp_base = argv[++k];
      else if (g_str_equal (argv[k], "--chat-interval") && k + 1 < argc)
        chat_interval_ms = (guint) g_ascii_strtoull (argv[++k], NULL, 10);
      else if (g_str_equal (argv[k], "--transport-peer") && k + 2 < argc)
        return run_transport_peer (argv[k + 1], g_ascii_strtoull (argv[k + 2], NULL, 10));
      else if (g_str_equal (argv[k], "--receiver") && k + 4 < argc)
        {
          r_dir = argv[++k];
          r_url = argv[++k];
          r_contact = argv[++k];
          r_downloads = argv[++k];
        }
      else
        {
          usage ();
          return 2;
        }
    }

  g_setenv ("NATTER_INTERFACES", LO, TRUE);
  if (g_getenv ("GSETTINGS_BACKEND") == NULL)
    g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);
  if (r_dir != NULL)
    return run_receiver (r_dir, r_url, r_contact, r_downloads);
  if (sodium_init () < 0)
    return 1;

  self_exe = g_file_read_link ("/proc/self/exe", NULL);
  rendezvous = natter_bench_find_rendezvous (self_exe);
  if (rendezvous == NULL)
    {
      fprintf (stderr, "natter-bench files: natter-rendezvous not found (set NATTER_RENDEZVOUS)\n");
      return 1;
    }

  /* Baselines first, before the services load the machine. */
  tcp_mbps = natter_bench_baseline_tcp_mbps (MIN (size, (guint64) 1 << 30));
  transport_mbps = transport_two_process_mbps (self_exe, bulk);

  if (tmp_base != NULL)
    {
      tmp = g_build_filename (tmp_base, "natter-bench-files-XXXXXX", NULL);
      if (g_mkdtemp (tmp) == NULL)
        g_clear_pointer (&tmp, g_free);
    }
  else
    tmp = g_dir_make_tmp ("natter-bench-files-XXXXXX", &error);
  if (tmp == NULL)
    {
      fprintf (stderr, "natter-bench files: no temporary folder\n");
      return 1;
    }
  dir_a = g_build_filename (tmp, "a", NULL);
  dir_b = g_build_filename (tmp, "b", NULL);
  downloads = g_build_filename (tmp, "downloads", NULL);
  source = g_build_filename (tmp, "file.bin", NULL);
  if (!write_random_file (source, size, &error))
    goto fail;

  {
    g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);

    g_subprocess_launcher_set_child_setup (launcher, natter_bench_die_with_parent, NULL, NULL);
    server = g_subprocess_launcher_spawn (launcher, &error, rendezvous, "--listen", "127.0.0.1",
                                          "--port", "0", NULL);
    if (server == NULL)
      goto fail;
    out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (server));
    line = g_data_input_stream_read_line (out, NULL, NULL, &error);
    if (line == NULL || strstr (line, "ws://") == NULL)
      goto fail;
    url = g_strdup (strstr (line, "ws://"));
    g_clear_object (&out);
    g_clear_pointer (&line, g_free);
  }
  if (!natter_bench_local_start (&a, dir_a, url, NULL, NULL, &error))
    goto fail;
  {
    g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);

    g_subprocess_launcher_set_child_setup (launcher, natter_bench_die_with_parent, NULL, NULL);
    receiver = g_subprocess_launcher_spawn (launcher, &error, self_exe, "files", "--receiver",
                                            dir_b, url, natter_messaging_service_get_peer_id (a.service),
                                            downloads, NULL);
    if (receiver == NULL)
      goto fail;
    out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (receiver));
    do
      {
        g_free (line);
        line = g_data_input_stream_read_line (out, NULL, NULL, &error);
      }
    while (line != NULL && !g_str_has_prefix (line, "ready "));
    if (line == NULL)
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

  run.rtts = g_array_new (FALSE, FALSE, sizeof (double));
  g_signal_connect (a.service, "transfer-state-changed", G_CALLBACK (on_transfer_state), &run);
  g_signal_connect (a.service, "message-state-changed", G_CALLBACK (on_message_state), &run);

  /* Idle chat round trips. */
  for (i = 0; i < 300; i++)
    {
      chat_once (a.service, peer_b, &run, i);
      if (!natter_bench_iterate_until (&run.chat_done, 10))
        {
          g_set_error (&error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "a chat message was not delivered");
          goto fail;
        }
      if (i == 49)
        g_array_set_size (run.rtts, 0);
    }
  idle_n = run.rtts->len;
  idle_p50 = natter_bench_percentile ((double *) run.rtts->data, idle_n, 50);
  idle_p99 = natter_bench_percentile ((double *) run.rtts->data, idle_n, 99);
  g_array_set_size (run.rtts, 0);

  /* The file, with chat beside it. */
  file = g_file_new_for_path (source);
  start = natter_bench_now ();
  natter_messaging_service_send_file_async (a.service, peer_b, file, NULL, on_file_sent, &run);
  while (run.active_at == 0 && !run.failed && natter_bench_now () - start < 60)
    g_main_context_iteration (NULL, TRUE);
  offer_s = run.active_at - start;
  run.chat_done = TRUE;
  while (run.complete_at == 0 && !run.failed && natter_bench_now () - start < 600)
    {
      if (run.chat_done)
        {
          double due = run.chat_sent_at + chat_interval_ms / 1000.0;
          double now = natter_bench_now ();

          if (now >= due)
            chat_once (a.service, peer_b, &run, i++);
          else if (!chat_waiting)
            {
              chat_waiting = TRUE;
              g_timeout_add_once ((guint) ((due - now) * 1000.0) + 1, wake_up, &chat_waiting);
            }
        }
      g_main_context_iteration (NULL, TRUE);
    }
  if (run.complete_at == 0)
    {
      g_set_error (&error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "the transfer did not complete");
      goto fail;
    }
  file_mbps = size / (run.complete_at - run.active_at) / 1e6;
  busy_p50 = natter_bench_percentile ((double *) run.rtts->data, run.rtts->len, 50);
  busy_p99 = natter_bench_percentile ((double *) run.rtts->data, run.rtts->len, 99);

  /* The second transport baseline, with the services gone. */
  g_subprocess_force_exit (receiver);
  g_subprocess_wait (receiver, NULL, NULL);
  g_clear_object (&a.service);
  transport_after_mbps = transport_two_process_mbps (self_exe, bulk);
  if (transport_after_mbps <= 0)
    {
      g_set_error (&error, G_IO_ERROR, G_IO_ERROR_FAILED, "the second transport baseline failed");
      goto fail;
    }

  natter_bench_report_add (report, "file_bytes", (double) size, "file size (bytes)");
  natter_bench_report_add (report, "file_mbps", file_mbps,
                           "file transfer: sending started to verified, fsynced and renamed (MB/s)");
  natter_bench_report_add (report, "offer_s", offer_s,
                           "offer: hashing the file, offer, accept, until sending starts (s)");
  natter_bench_report_add (report, "baseline_transport_before_mbps", transport_mbps,
                           "baseline: bare connections between two processes, 64 KiB messages, before (MB/s)");
  natter_bench_report_add (report, "baseline_transport_after_mbps", transport_after_mbps,
                           "baseline: the same, after the file (MB/s)");
  transport_mbps = (transport_mbps + transport_after_mbps) / 2;
  natter_bench_report_add (report, "baseline_transport_mbps", transport_mbps,
                           "baseline: bare connections, mean of before and after (MB/s)");
  natter_bench_report_add (report, "baseline_tcp_mbps", tcp_mbps, "baseline: raw TCP loopback (MB/s)");
  natter_bench_report_add (report, "file_vs_transport_ratio", file_mbps / transport_mbps,
                           "file / transport bulk (the mean)");
  natter_bench_report_add (report, "chat_rtt_idle_p50_ms", idle_p50, "chat send to delivered, idle, p50 (ms)");
  natter_bench_report_add (report, "chat_rtt_idle_p99_ms", idle_p99, "chat send to delivered, idle, p99 (ms)");
  natter_bench_report_add (report, "chat_rtt_busy_p50_ms", busy_p50,
                           "chat send to delivered, during the transfer, p50 (ms)");
  natter_bench_report_add (report, "chat_rtt_busy_p99_ms", busy_p99,
                           "chat send to delivered, during the transfer, p99 (ms)");
  natter_bench_report_add (report, "chat_messages_busy", run.rtts->len, "chat messages during the transfer");
  natter_bench_report_add (report, "chat_interval_ms", chat_interval_ms,
                           "a chat message every (ms) during the transfer; 0: back to back");
  natter_bench_report_print (report, json);

  g_subprocess_force_exit (server);
  g_object_unref (a.profile);
  natter_bench_remove_tree (tmp);
  g_array_unref (run.rtts);
  g_free (run.transfer_id);
  g_free (run.chat_id);
  return 0;

fail:
  fprintf (stderr, "natter-bench files: %s\n", error != NULL ? error->message : "failed");
  if (receiver != NULL)
    g_subprocess_force_exit (receiver);
  if (server != NULL)
    g_subprocess_force_exit (server);
  if (tmp != NULL)
    natter_bench_remove_tree (tmp);
  return 1;
}
