/* natter-bench-rendezvous.c: many authenticated clients on one rendezvous server
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Starts a natter-rendezvous process on 127.0.0.1, opens N clients
 * (NatterRendezvousClient, all on one SoupSession in this process), each
 * with four mutual contacts (its neighbours i±1 and i±2 on a ring), waits
 * until all are registered and see their contacts, then keeps a fixed
 * number of sealed signals in flight between random mutual contacts for a
 * fixed time.  Nothing leaves 127.0.0.1.
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "natter-bench.h"
#include "natter-bench-baselines.h"
#include "natter-identity.h"
#include "natter-rendezvous-client.h"

#define N_NEIGHBOURS   4
#define SIGNAL_MAGIC   0x4e524456u   /* "NRDV" */
/* Clients connecting at once: the server's accept queue is short, and a
 * dropped SYN costs a one-second retransmission. */
#define CONNECT_WINDOW 128

typedef struct
{
  guint32 magic;
  guint32 sender;
  gint64  sent_us;
} Probe;

typedef struct _Bench Bench;

typedef struct
{
  Bench                  *bench;
  guint                   index;
  NatterIdentity         *identity;
  NatterRendezvousClient *client;
  guint                   online;        /* contacts seen online */
  gboolean                registered;    /* counted once */
} Node;

struct _Bench
{
  Node        *nodes;
  guint        n;
  guint        next_to_start;
  guint        connecting;
  guint        n_registered;
  guint        n_presence_complete;
  guint        in_flight;
  guint        window;
  gboolean     sending;
  guint64      sent;
  guint64      received;
  guint64      undeliverable;
  guint64      send_failed;
  GArray      *latencies_ms;
  GRand       *rand;
};

static void
die_with_parent (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static char *
default_server_path (void)
{
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *dir = NULL;

  if (self == NULL)
    return NULL;
  dir = g_path_get_dirname (self);
  return g_build_filename (dir, "..", "rendezvous", "natter-rendezvous", NULL);
}

/* VmRSS of @pid in KiB, or -1. */
static double
rss_kib (const char *pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/status", pid);
  g_autofree char *text = NULL;
  const char *line;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return -1;
  line = strstr (text, "\nVmRSS:");
  if (line == NULL)
    return -1;
  return g_ascii_strtod (line + strlen ("\nVmRSS:"), NULL);
}

static gboolean
timeout_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

static gboolean
wait_until (gboolean (*done) (Bench *),
            Bench     *bench,
            double     seconds)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add ((guint) (seconds * 1000), timeout_cb, &timed_out);

  while (!done (bench) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  return done (bench);
}

static gboolean
all_registered (Bench *bench)
{
  return bench->n_registered == bench->n;
}

static gboolean
all_see_contacts (Bench *bench)
{
  return bench->n_presence_complete == bench->n;
}

static void start_more (Bench *bench);

static void
on_state (NatterRendezvousClient *client,
          GParamSpec             *pspec,
          Node                   *node)
{
  Bench *bench = node->bench;

  if (natter_rendezvous_client_get_state (client) != NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED ||
      node->registered)
    return;
  node->registered = TRUE;
  bench->n_registered++;
  bench->connecting--;
  start_more (bench);
}

static void
on_presence (NatterRendezvousClient *client,
             const char             *peer_id,
             gboolean                online,
             Node                   *node)
{
  Bench *bench = node->bench;

  if (online)
    {
      if (++node->online == N_NEIGHBOURS)
        bench->n_presence_complete++;
    }
  else
    {
      if (node->online-- == N_NEIGHBOURS)
        bench->n_presence_complete--;
    }
}

static void send_one (Bench *bench);

static void
on_signal_received (NatterRendezvousClient *client,
                    const char             *from,
                    GBytes                 *blob,
                    Node                   *node)
{
  Bench *bench = node->bench;
  Probe probe;
  double ms;

  if (g_bytes_get_size (blob) != sizeof probe)
    return;
  memcpy (&probe, g_bytes_get_data (blob, NULL), sizeof probe);
  if (probe.magic != SIGNAL_MAGIC || probe.sender >= bench->n ||
      strcmp (from, natter_identity_get_peer_id (bench->nodes[probe.sender].identity)) != 0)
    return;

  ms = (g_get_monotonic_time () - probe.sent_us) / 1000.0;
  g_array_append_val (bench->latencies_ms, ms);
  bench->received++;
  bench->in_flight--;
  if (bench->sending)
    send_one (bench);
}

static void
on_undeliverable (NatterRendezvousClient *client,
                  const char             *peer_id,
                  Node                   *node)
{
  Bench *bench = node->bench;

  bench->undeliverable++;
  bench->in_flight--;
  if (bench->sending)
    send_one (bench);
}

static guint
neighbour (Bench *bench,
           guint  index,
           guint  k)
{
  static const int offsets[N_NEIGHBOURS] = { -2, -1, 1, 2 };

  return (guint) (((gint64) index + offsets[k] + bench->n) % bench->n);
}

static void
send_one (Bench *bench)
{
  guint from = g_rand_int_range (bench->rand, 0, bench->n);
  guint to = neighbour (bench, from, g_rand_int_range (bench->rand, 0, N_NEIGHBOURS));
  Probe probe = { SIGNAL_MAGIC, from, g_get_monotonic_time () };
  g_autoptr(GBytes) blob = g_bytes_new (&probe, sizeof probe);
  g_autoptr(GError) error = NULL;

  if (!natter_rendezvous_client_send_signal (bench->nodes[from].client,
                                             natter_identity_get_peer_id (bench->nodes[to].identity),
                                             blob, &error))
    {
      bench->send_failed++;
      return;
    }
  bench->sent++;
  bench->in_flight++;
}

static void
start_more (Bench *bench)
{
  while (bench->next_to_start < bench->n && bench->connecting < CONNECT_WINDOW)
    {
      natter_rendezvous_client_start (bench->nodes[bench->next_to_start++].client);
      bench->connecting++;
    }
}

static gboolean
stop_sending (gpointer data)
{
  ((Bench *) data)->sending = FALSE;
  return G_SOURCE_REMOVE;
}

static gboolean
drained (Bench *bench)
{
  return bench->in_flight == 0;
}

/* Raises the open-file limit to the hard limit; returns the new soft one. */
static rlim_t
raise_nofile (void)
{
  struct rlimit limit;

  if (getrlimit (RLIMIT_NOFILE, &limit) != 0)
    return 0;
  if (limit.rlim_cur < limit.rlim_max)
    {
      limit.rlim_cur = limit.rlim_max;
      if (setrlimit (RLIMIT_NOFILE, &limit) != 0)
        g_warning ("setrlimit: %s", g_strerror (errno));
      getrlimit (RLIMIT_NOFILE, &limit);
    }
  return limit.rlim_cur;
}

int
natter_bench_rendezvous (int      argc,
                         char   **argv,
                         gboolean json)
{
  int n_clients = 5000;
  int seconds = 10;
  int window = 256;
  g_autofree char *server_path = NULL;
  const GOptionEntry entries[] = {
    { "clients", 'n', 0, G_OPTION_ARG_INT, &n_clients, "Concurrent clients (default 5000)", "N" },
    { "seconds", 's', 0, G_OPTION_ARG_INT, &seconds, "Signaling time (default 10)", "S" },
    { "window", 'w', 0, G_OPTION_ARG_INT, &window, "Signals in flight (default 256)", "N" },
    { "server", 0, 0, G_OPTION_ARG_FILENAME, &server_path, "The natter-rendezvous binary", "PATH" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("- many clients on one rendezvous server");
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterBenchReport) report = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) server = NULL;
  g_autoptr(GDataInputStream) server_out = NULL;
  g_autoptr(SoupSession) session = NULL;
  g_autofree char *line = NULL;
  g_autofree char *url = NULL;
  g_autofree char *max_text = NULL;
  Bench bench = { 0 };
  GArray *loaded = NULL;
  rlim_t nofile;
  double rss_before;
  double rss_after;
  double t0;
  double register_s;
  double presence_s;
  double signal_s;
  double baseline_p99 = 0;
  double baseline_p50;
  guint held = 0;
  int status = 0;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("natter-bench rendezvous: %s\n", error->message);
      return 2;
    }
  if (n_clients < N_NEIGHBOURS + 1 || seconds < 1 || window < 1)
    {
      g_printerr ("natter-bench rendezvous: --clients must be at least %d, --seconds and --window at least 1\n",
                  N_NEIGHBOURS + 1);
      return 2;
    }
  if (server_path == NULL)
    server_path = default_server_path ();
  if (server_path == NULL || !g_file_test (server_path, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_printerr ("natter-bench rendezvous: no natter-rendezvous at %s; use --server PATH\n",
                  server_path != NULL ? server_path : "(unknown)");
      return 1;
    }
  signal (SIGPIPE, SIG_IGN);

  /* Both processes hold one descriptor per client, and some more. */
  nofile = raise_nofile ();
  if (nofile < 12000)
    g_warning ("open-file limit is %lu (under 12k): raise the hard limit for %d clients",
               (unsigned long) nofile, n_clients);
  if (nofile < (rlim_t) n_clients + 256)
    {
      g_printerr ("natter-bench rendezvous: open-file limit %lu is too low for %d clients\n",
                  (unsigned long) nofile, n_clients);
      return 1;
    }

  report = natter_bench_report_new ("rendezvous");

  /* The baseline first, on a quiet machine: raw loopback round trips. */
  baseline_p50 = natter_bench_baseline_udp_rtt_us (5000, 200, &baseline_p99) / 1000.0;
  baseline_p99 /= 1000.0;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  max_text = g_strdup_printf ("%d", n_clients + 64);
  server = g_subprocess_launcher_spawn (launcher, &error, server_path,
                                        "--listen", "127.0.0.1", "--port", "0",
                                        "--max-connections", max_text,
                                        "--idle-timeout", "300", NULL);
  if (server == NULL)
    {
      g_printerr ("natter-bench rendezvous: %s\n", error->message);
      return 1;
    }
  server_out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (server));
  line = g_data_input_stream_read_line (server_out, NULL, NULL, &error);
  if (line == NULL || !g_str_has_prefix (line, "natter-rendezvous: listening on ws://127.0.0.1:"))
    {
      g_printerr ("natter-bench rendezvous: the server did not start\n");
      return 1;
    }
  url = g_strdup_printf ("ws://127.0.0.1:%s", strrchr (line, ':') + 1);

  /* Identities and clients, all made before the clock starts. */
  bench.n = (guint) n_clients;
  bench.window = (guint) window;
  bench.nodes = g_new0 (Node, bench.n);
  bench.latencies_ms = g_array_new (FALSE, FALSE, sizeof (double));
  bench.rand = g_rand_new_with_seed (42);
  session = soup_session_new_with_options ("max-conns", n_clients + 64,
                                           "max-conns-per-host", n_clients + 64,
                                           "timeout", 30,
                                           "idle-timeout", 0,
                                           NULL);
  for (guint i = 0; i < bench.n; i++)
    {
      bench.nodes[i].bench = &bench;
      bench.nodes[i].index = i;
      bench.nodes[i].identity = natter_identity_new_random ();
    }
  for (guint i = 0; i < bench.n; i++)
    {
      const char *contacts[N_NEIGHBOURS + 1] = { NULL };
      Node *node = &bench.nodes[i];

      for (guint k = 0; k < N_NEIGHBOURS; k++)
        contacts[k] = natter_identity_get_peer_id (bench.nodes[neighbour (&bench, i, k)].identity);
      node->client = natter_rendezvous_client_new_with_session (url, node->identity, contacts,
                                                                session, &error);
      g_assert_no_error (error);
      g_signal_connect (node->client, "notify::state", G_CALLBACK (on_state), node);
      g_signal_connect (node->client, "presence-changed", G_CALLBACK (on_presence), node);
      g_signal_connect (node->client, "signal-received", G_CALLBACK (on_signal_received), node);
      g_signal_connect (node->client, "undeliverable", G_CALLBACK (on_undeliverable), node);
    }

  rss_before = rss_kib (g_subprocess_get_identifier (server));

  t0 = natter_bench_now ();
  start_more (&bench);
  if (!wait_until (all_registered, &bench, 60))
    {
      g_printerr ("natter-bench rendezvous: only %u of %u clients registered in 60 s\n",
                  bench.n_registered, bench.n);
      status = 1;
    }
  register_s = natter_bench_now () - t0;
  if (status == 0 && !wait_until (all_see_contacts, &bench, 20))
    {
      g_printerr ("natter-bench rendezvous: only %u of %u clients see all their contacts\n",
                  bench.n_presence_complete, bench.n);
      status = 1;
    }
  presence_s = natter_bench_now () - t0;
  rss_after = rss_kib (g_subprocess_get_identifier (server));

  if (status == 0)
    {
      bench.sending = TRUE;
      t0 = natter_bench_now ();
      g_timeout_add_seconds (seconds, stop_sending, &bench);
      for (guint i = 0; i < bench.window; i++)
        send_one (&bench);
      while (bench.sending)
        g_main_context_iteration (NULL, TRUE);
      signal_s = natter_bench_now () - t0;
      wait_until (drained, &bench, 5);
      loaded = g_steal_pointer (&bench.latencies_ms);

      /* One signal at a time for two seconds: the cost of a hop with all
       * the connections open but the machine not saturated. */
      bench.latencies_ms = g_array_new (FALSE, FALSE, sizeof (double));
      bench.sending = TRUE;
      g_timeout_add_seconds (2, stop_sending, &bench);
      send_one (&bench);
      while (bench.sending)
        g_main_context_iteration (NULL, TRUE);
      wait_until (drained, &bench, 5);

      for (guint i = 0; i < bench.n; i++)
        if (natter_rendezvous_client_get_state (bench.nodes[i].client) ==
            NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED)
          held++;

      natter_bench_report_add (report, "clients", bench.n, "Clients started");
      natter_bench_report_add (report, "connections_held", held,
                               "Authenticated connections held at the end");
      natter_bench_report_add (report, "register_s", register_s, "Time to register all (s)");
      natter_bench_report_add (report, "presence_s", presence_s,
                               "Time until all see their 4 contacts online (s)");
      natter_bench_report_add (report, "signals_per_s", bench.received / signal_s,
                               "Sealed signals forwarded per second");
      natter_bench_report_add (report, "signals_in_flight", bench.window, "Signals kept in flight");
      natter_bench_report_add (report, "undeliverable", (double) bench.undeliverable,
                               "Signals refused by the server");
      natter_bench_report_add (report, "forward_latency_p50_ms",
                               natter_bench_percentile ((double *) (void *) loaded->data,
                                                        loaded->len, 50),
                               "Send to receive, median (ms)");
      natter_bench_report_add (report, "forward_latency_p99_ms",
                               natter_bench_percentile ((double *) (void *) loaded->data,
                                                        loaded->len, 99),
                               "Send to receive, 99th percentile (ms)");
      natter_bench_report_add (report, "forward_latency_unloaded_p50_ms",
                               natter_bench_percentile ((double *) (void *) bench.latencies_ms->data,
                                                        bench.latencies_ms->len, 50),
                               "Send to receive, one in flight, median (ms)");
      natter_bench_report_add (report, "forward_latency_unloaded_p99_ms",
                               natter_bench_percentile ((double *) (void *) bench.latencies_ms->data,
                                                        bench.latencies_ms->len, 99),
                               "Send to receive, one in flight, 99th percentile (ms)");
      natter_bench_report_add (report, "server_rss_before_kib", rss_before, "Server RSS before (KiB)");
      natter_bench_report_add (report, "server_rss_after_kib", rss_after,
                               "Server RSS with all registered (KiB)");
      natter_bench_report_add (report, "server_rss_per_connection_kib",
                               (rss_after - rss_before) / bench.n, "Server RSS per connection (KiB)");
      natter_bench_report_add (report, "baseline_udp_rtt_p50_ms", baseline_p50,
                               "Baseline: raw loopback UDP round trip, median (ms)");
      natter_bench_report_add (report, "baseline_udp_rtt_p99_ms", baseline_p99,
                               "Baseline: raw loopback UDP round trip, 99th percentile (ms)");
      natter_bench_report_add (report, "nofile_limit", (double) nofile, "Open-file limit");
      natter_bench_report_print (report, json);
    }

  for (guint i = 0; i < bench.n; i++)
    {
      if (bench.nodes[i].client != NULL)
        {
          g_signal_handlers_disconnect_by_data (bench.nodes[i].client, &bench.nodes[i]);
          natter_rendezvous_client_stop (bench.nodes[i].client);
        }
      g_clear_object (&bench.nodes[i].client);
      g_clear_object (&bench.nodes[i].identity);
    }
  g_subprocess_send_signal (server, SIGTERM);
  g_subprocess_wait (server, NULL, NULL);
  g_free (bench.nodes);
  g_array_unref (bench.latencies_ms);
  g_clear_pointer (&loaded, g_array_unref);
  g_rand_free (bench.rand);
  return status;
}
