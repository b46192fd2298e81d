/* natter-bench-groups.c: natter-bench groups
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <stdio.h>
#include <string.h>

#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <gio/gunixinputstream.h>

#include "natter-bench.h"
#include "natter-bench-baselines.h"
#include "natter-group-cluster.h"

/* For each group size N: N members, each a NatterMessagingService with its
 * own profile in a temporary folder, connected over loopback ICE through
 * one natter-rendezvous process on 127.0.0.1, in one group with the given
 * fan-out.  By default each member is a process of its own (this program
 * again, "groups --member DIR URL", driven by one-line commands on its
 * stdin); with --in-process all N services share this process.  Arrival
 * times are CLOCK_MONOTONIC, which all processes share.  Measured:
 *
 *  - reach-all: from natter_groups_send_text() on member 0 until the last
 *    of the N − 1 others has delivered the message ("message-received");
 *    p50 and p99.  With processes, member 0 sends one message every
 *    --interval ms (250: a busy chat) by itself and the members keep their
 *    arrival times until the series is over, so that neither the driver
 *    nor a pipe write runs while messages travel; in one process each
 *    message is waited for, then the interval;
 *  - for scale, measured in the same run with the members at rest: the
 *    loopback UDP round trip of a 1 KB datagram, and the members' own CPU;
 *    then their CPU per message (beyond that at rest), copies received
 *    twice and pull requests;
 *  - the sender's upload: bytes of its own stream frames that it handed to
 *    connections per message, against naive fan-out (one copy to each
 *    other member);
 *  - catch-up: member N − 1 is cut off while member 1 sends 500 messages;
 *    then member 1 and everyone but member 2 stop, member N − 1 is let
 *    back, and the time until it has delivered all 500 (pulled from
 *    member 2 alone) is measured.
 *
 * In one process all members share one main context and, above all, one
 * transport thread that polls every member's sockets (about N² of them):
 * at 32 members that poll dominates, so the in-process figures show the
 * harness more than the protocol. */

static void
die_with_parent (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/* CPU time (user + system, all threads) of process @pid so far, in ms;
 * 0 for our own process. */
static double
process_cpu_ms (const char *pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/stat", pid != NULL ? pid : "self");
  g_autofree char *text = NULL;
  g_auto(GStrv) fields = NULL;
  const char *after_name;

  if (!g_file_get_contents (path, &text, NULL, NULL) || (after_name = strrchr (text, ')')) == NULL)
    return 0;
  /* After "pid (comm)": state is field 3, utime 14 and stime 15. */
  fields = g_strsplit (after_name + 2, " ", 16);
  if (g_strv_length (fields) < 14)
    return 0;
  return (g_ascii_strtod (fields[11], NULL) + g_ascii_strtod (fields[12], NULL)) * 1000.0 /
         (double) sysconf (_SC_CLK_TCK);
}

/* The figures that give the others a scale, measured in the same run:
 * loopback UDP round trips of a frame's size on this machine as it is
 * loaded at that moment (the members idle), and what the members cost
 * when no message moves. */
typedef struct
{
  double udp_rtt_p50_us;
  double udp_rtt_p99_us;
  double idle_cpu_pct;       /* of one CPU, all members together */
  double cpu_ms_per_msg;     /* all members together, while timed */
} Scale;

static void
report_scale (NatterBenchReport *report,
              guint              n,
              const Scale       *scale)
{
  char key[96];
  char label[160];

  g_snprintf (key, sizeof key, "n%u_loopback_udp_rtt_p50_us", n);
  g_snprintf (label, sizeof label, "%u members: baseline, loopback UDP round trip of 1 KB, p50 (µs)", n);
  natter_bench_report_add (report, key, scale->udp_rtt_p50_us, label);
  g_snprintf (key, sizeof key, "n%u_loopback_udp_rtt_p99_us", n);
  g_snprintf (label, sizeof label, "%u members: baseline, loopback UDP round trip of 1 KB, p99 (µs)", n);
  natter_bench_report_add (report, key, scale->udp_rtt_p99_us, label);
  g_snprintf (key, sizeof key, "n%u_idle_cpu_pct", n);
  g_snprintf (label, sizeof label, "%u members: CPU of all members at rest (%% of one CPU)", n);
  natter_bench_report_add (report, key, scale->idle_cpu_pct, label);
  g_snprintf (key, sizeof key, "n%u_cpu_ms_per_msg", n);
  g_snprintf (label, sizeof label, "%u members: CPU of all members per message (ms)", n);
  natter_bench_report_add (report, key, scale->cpu_ms_per_msg, label);
}

static const char *
find_rendezvous (void)
{
  static char *found;
  g_autofree char *self_exe = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *candidate = NULL;

  if (found != NULL)
    return found;
  if (g_getenv ("NATTER_RENDEZVOUS") != NULL)
    return found = g_strdup (g_getenv ("NATTER_RENDEZVOUS"));
  self_exe = g_file_read_link ("/proc/self/exe", NULL);
  dir = self_exe != NULL ? g_path_get_dirname (self_exe) : g_strdup (".");
  candidate = g_build_filename (dir, "..", "rendezvous", "natter-rendezvous", NULL);
  if (g_file_test (candidate, G_FILE_TEST_IS_EXECUTABLE))
    return found = g_steal_pointer (&candidate);
  g_free (candidate);
  candidate = g_build_filename (dir, "natter-rendezvous", NULL);
  if (g_file_test (candidate, G_FILE_TEST_IS_EXECUTABLE))
    return found = g_steal_pointer (&candidate);
  return found = g_find_program_in_path ("natter-rendezvous");
}

/* The pause between two timed messages (--interval). */
static guint interval_ms = 250;

typedef struct
{
  Cluster    *cluster;
  const char *msg_id;
  guint       skip;       /* the sender */
} Reach;

static gboolean
reached_all (gpointer data)
{
  Reach *reach = data;

  for (guint i = 0; i < reach->cluster->nodes->len; i++)
    {
      ClusterNode *node = cluster_node (reach->cluster, i);

      if (i != reach->skip && !node->stopped && !g_hash_table_contains (node->arrivals, reach->msg_id))
        return FALSE;
    }
  return TRUE;
}

typedef struct
{
  Cluster *cluster;
  guint    index;
  guint    length;
} Length;

static gboolean
has_length (gpointer data)
{
  Length *length = data;

  return cluster_history_length (length->cluster, length->index) >= length->length;
}

static void
set_isolated (Cluster *cluster,
              guint    index,
              gboolean isolated)
{
  ClusterNode *node = cluster_node (cluster, index);

  for (guint i = 0; i < cluster->nodes->len; i++)
    {
      ClusterNode *other = cluster_node (cluster, i);

      if (i == index || other->stopped)
        continue;
      natter_groups_set_blocked (other->groups, node->peer_id, isolated);
      natter_groups_set_blocked (node->groups, other->peer_id, isolated);
    }
}

static void measure_scale (Scale     *scale,
                           GPtrArray *children);

static int
compare_gint64 (const void *a,
                const void *b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

static gboolean
run_size_in_process (NatterBenchReport *report,
          guint              n,
          guint              fanout,
          guint              n_messages,
          guint              n_catch_up)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Cluster) cluster = NULL;
  g_autofree double *reach = g_new0 (double, n_messages);
  NatterGroupsStats before, after;
  ClusterNode *sender;
  double setup_start = natter_bench_now ();
  double setup_s, catch_up_ms = -1;
  double cpu_before, timed_start;
  Scale scale = { -1, -1, -1, -1 };
  guint64 wire_bytes = 0;
  guint reached = 0;
  char key[96];
  char label[160];

  cluster = cluster_new (find_rendezvous (), n, &error);
  if (cluster == NULL)
    {
      fprintf (stderr, "natter-bench groups: %s\n", error->message);
      return FALSE;
    }
  if (!cluster_befriend (cluster, 0, 120) || !cluster_create_group (cluster, 0, fanout, 240))
    {
      fprintf (stderr, "natter-bench groups: the %u members did not all connect\n", n);
      return FALSE;
    }
  setup_s = natter_bench_now () - setup_start;
  sender = cluster_node (cluster, 0);

  /* Warm up: a few messages, and round-trip samples for the tree. */
  for (guint i = 0; i < 5; i++)
    {
      g_autofree char *msg_id = natter_groups_send_text (sender->groups, cluster->group_id, "warm-up", NULL);
      Reach wait = { cluster, msg_id, 0 };

      cluster_wait (reached_all, &wait, 10);
    }
  cluster_sleep (1.0);
  measure_scale (&scale, NULL);
  cpu_before = process_cpu_ms (NULL);
  timed_start = natter_bench_now ();

  natter_groups_get_stats (sender->groups, &before);
  for (guint i = 0; i < n_messages; i++)
    {
      g_autofree char *text = g_strdup_printf ("message %u of the benchmark, about as long as a chat line", i);
      gint64 start = g_get_monotonic_time ();
      g_autofree char *msg_id = natter_groups_send_text (sender->groups, cluster->group_id, text, NULL);
      Reach wait = { cluster, msg_id, 0 };
      gint64 last = 0;

      if (msg_id == NULL || !cluster_wait (reached_all, &wait, 10))
        continue;
      for (guint j = 1; j < n; j++)
        last = MAX (last, *(gint64 *) g_hash_table_lookup (cluster_node (cluster, j)->arrivals, msg_id));
      reach[reached++] = (last - start) / 1000.0;
      {
        g_autoptr(GBytes) wire = natter_groups_dup_wire (sender->groups, cluster->group_id, msg_id);

        wire_bytes += wire != NULL ? g_bytes_get_size (wire) : 0;
      }
      /* Let acknowledgements and summaries settle, as between chat lines. */
      cluster_sleep (interval_ms / 1000.0);
    }
  scale.cpu_ms_per_msg = reached > 0
    ? (process_cpu_ms (NULL) - cpu_before -
       scale.idle_cpu_pct / 100.0 * (natter_bench_now () - timed_start) * 1000.0) / reached
    : -1;
  natter_groups_get_stats (sender->groups, &after);

  /* Catch-up. */
  if (n >= 4 && n_catch_up > 0)
    {
      ClusterNode *author = cluster_node (cluster, 1);
      guint late = n - 1;
      guint base = cluster_history_length (cluster, late);
      Length others = { cluster, 2, cluster_history_length (cluster, 2) + n_catch_up };
      Length done = { cluster, late, base + n_catch_up };
      double start;

      set_isolated (cluster, late, TRUE);
      for (guint i = 0; i < n_catch_up; i++)
        {
          g_free (natter_groups_send_text (author->groups, cluster->group_id, "missed", NULL));
          if (i % 50 == 49)
            cluster_sleep (0.05);
        }
      cluster_wait (has_length, &others, 60);
      for (guint i = 0; i < n - 1; i++)
        if (i != 2)
          cluster_stop_node (cluster, i);
      start = natter_bench_now ();
      set_isolated (cluster, late, FALSE);
      if (cluster_wait (has_length, &done, 60))
        catch_up_ms = (natter_bench_now () - start) * 1000.0;
    }

  report_scale (report, n, &scale);
  g_snprintf (key, sizeof key, "n%u_setup_s", n);
  g_snprintf (label, sizeof label, "%u members: befriend, create, full mesh (s)", n);
  natter_bench_report_add (report, key, setup_s, label);
  g_snprintf (key, sizeof key, "n%u_reached", n);
  g_snprintf (label, sizeof label, "%u members: messages that reached all (of %u)", n, n_messages);
  natter_bench_report_add (report, key, reached, label);
  if (reached > 0)
    {
      double per_message = (double) (after.own_bytes - before.own_bytes) / n_messages;
      double naive = (double) wire_bytes / reached * (n - 1);

      g_snprintf (key, sizeof key, "n%u_reach_all_p50_ms", n);
      g_snprintf (label, sizeof label, "%u members: reach-all p50 (ms)", n);
      natter_bench_report_add (report, key, natter_bench_percentile (reach, reached, 50), label);
      g_snprintf (key, sizeof key, "n%u_reach_all_p99_ms", n);
      g_snprintf (label, sizeof label, "%u members: reach-all p99 (ms)", n);
      natter_bench_report_add (report, key, natter_bench_percentile (reach, reached, 99), label);
      g_snprintf (key, sizeof key, "n%u_upload_copies_per_msg", n);
      g_snprintf (label, sizeof label, "%u members: sender's copies per message (fan-out %u)", n, fanout);
      natter_bench_report_add (report, key, (double) (after.own_copies - before.own_copies) / n_messages, label);
      g_snprintf (key, sizeof key, "n%u_upload_bytes_per_msg", n);
      g_snprintf (label, sizeof label, "%u members: sender's upload per message (bytes)", n);
      natter_bench_report_add (report, key, per_message, label);
      g_snprintf (key, sizeof key, "n%u_naive_bytes_per_msg", n);
      g_snprintf (label, sizeof label, "%u members: naive fan-out per message (bytes)", n);
      natter_bench_report_add (report, key, naive, label);
      g_snprintf (key, sizeof key, "n%u_upload_vs_naive", n);
      g_snprintf (label, sizeof label, "%u members: upload / naive", n);
      natter_bench_report_add (report, key, per_message / naive, label);
    }
  g_snprintf (key, sizeof key, "n%u_catch_up_%u_ms", n, n_catch_up);
  g_snprintf (label, sizeof label, "%u members: catch-up of %u messages from one member (ms)", n, n_catch_up);
  natter_bench_report_add (report, key, catch_up_ms, label);
  return TRUE;
}


/* {{{ One process per member */

/* The member side: one service, commands on stdin, one line each way. */

typedef struct
{
  NatterProfile          *profile;
  NatterMessagingService *service;
  GDataInputStream       *input;
  GMainLoop              *loop;
  gboolean                started;
  GError                 *error;
  gboolean                quiet;       /* arrivals kept, not printed */
  GString                *arrivals;    /* " ID:µs" each, while quiet */
  /* A timed series, sent by the member itself. */
  char                   *series_group;
  guint                   series_left;
  guint                   series_index;
  GString                *series_sent; /* " ID:µs" each */
} Member;

static void
say (const char *format,
     ...) G_GNUC_PRINTF (1, 2);

static void
say (const char *format,
     ...)
{
  va_list args;

  va_start (args, format);
  vprintf (format, args);
  va_end (args);
  putchar ('\n');
  fflush (stdout);
}

static void
on_member_message (NatterGroups       *groups,
                   NatterGroupMessage *message,
                   Member             *member)
{
  gint64 now = g_get_monotonic_time ();

  if (member->quiet)
    g_string_append_printf (member->arrivals, " %s:%" G_GINT64_FORMAT, message->msg_id, now);
  else
    say ("recv %s %" G_GINT64_FORMAT, message->msg_id, now);
}

/* One message of a series; the next follows after the interval, whether
 * or not this one has reached everyone (as in a chat). */
static gboolean
on_series_tick (gpointer user_data)
{
  Member *member = user_data;
  NatterGroups *groups = natter_messaging_service_get_groups (member->service);
  g_autofree char *text = g_strdup_printf ("message %u of the benchmark, about as long as a chat line",
                                           member->series_index++);
  gint64 start = g_get_monotonic_time ();
  g_autofree char *id = natter_groups_send_text (groups, member->series_group, text, NULL);

  if (id != NULL)
    g_string_append_printf (member->series_sent, " %s:%" G_GINT64_FORMAT, id, start);
  if (--member->series_left > 0)
    return G_SOURCE_CONTINUE;
  say ("series%s", member->series_sent->str);
  g_string_truncate (member->series_sent, 0);
  g_clear_pointer (&member->series_group, g_free);
  return G_SOURCE_REMOVE;
}

static void
on_member_contact (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(NatterContact) contact = NULL;
  g_autoptr(GError) error = NULL;

  contact = natter_messaging_service_add_contact_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  if (contact == NULL)
    say ("err %s", error->message);
  else
    say ("ok");
}

static void member_read (Member *member);

static void
on_member_stopped (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Member *member = user_data;

  natter_messaging_service_stop_finish (member->service, result, NULL);
  say ("bye");
  g_main_loop_quit (member->loop);
}

static void
member_command (Member *member,
                char   *line)
{
  g_auto(GStrv) words = g_strsplit (line, " ", -1);
  NatterGroups *groups = natter_messaging_service_get_groups (member->service);
  g_autoptr(GError) error = NULL;
  guint n = g_strv_length (words);

  if (n == 0)
    return;
  if (g_str_equal (words[0], "contact") && n == 2)
    {
      natter_messaging_service_add_contact_async (member->service, words[1], NULL, NULL,
                                                  on_member_contact, member);
      return;
    }
  if (g_str_equal (words[0], "peer") && n == 2)
    {
      say ("state %s", natter_peer_state_to_string (natter_messaging_service_get_peer_state (member->service,
                                                                                             words[1], NULL)));
      return;
    }
  if (g_str_equal (words[0], "create") && n >= 2)
    {
      g_autofree char *id = natter_messaging_service_group_create (member->service, "bench",
                                                                   (const char * const *) words + 2,
                                                                   (guint) g_ascii_strtoull (words[1], NULL, 10),
                                                                   &error);
      if (id == NULL)
        say ("err %s", error->message);
      else
        say ("group %s", id);
      return;
    }
  if (g_str_equal (words[0], "mesh") && n == 2)
    {
      g_autoptr(NatterGroupInfo) info = natter_groups_get_info (groups, words[1]);
      guint connected = 0;

      for (guint i = 0; info != NULL && info->members[i] != NULL; i++)
        if (natter_messaging_service_get_peer_state (member->service, info->members[i], NULL) ==
            NATTER_PEER_STATE_DIRECT)
          connected++;
      say ("mesh %u %u", connected, info != NULL ? g_strv_length (info->members) : 0);
      return;
    }
  if (g_str_equal (words[0], "send") && n >= 3)
    {
      gint64 start = g_get_monotonic_time ();
      g_autofree char *id = natter_groups_send_text (groups, words[1], words[2], &error);

      if (id == NULL)
        say ("err %s", error->message);
      else
        say ("sent %s %" G_GINT64_FORMAT, id, start);
      return;
    }
  if (g_str_equal (words[0], "series") && n == 4 && member->series_group == NULL)
    {
      /* series GROUP COUNT INTERVAL_MS: answered with "series ID:µs…" when
       * the last one is sent. */
      member->series_group = g_strdup (words[1]);
      member->series_left = MAX (1, (guint) g_ascii_strtoull (words[2], NULL, 10));
      g_timeout_add (MAX (1, (guint) g_ascii_strtoull (words[3], NULL, 10)), on_series_tick, member);
      return;
    }
  if (g_str_equal (words[0], "quiet") && n == 2)
    {
      member->quiet = g_str_equal (words[1], "1");
      say ("ok");
      return;
    }
  if (g_str_equal (words[0], "arrivals") && n == 1)
    {
      say ("arrivals%s", member->arrivals->str);
      g_string_truncate (member->arrivals, 0);
      return;
    }
  if (g_str_equal (words[0], "stats") && n == 1)
    {
      NatterGroupsStats stats;

      natter_groups_get_stats (groups, &stats);
      say ("stats %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
           stats.own_copies, stats.own_bytes, stats.duplicates, stats.pulls_sent);
      return;
    }
  if (g_str_equal (words[0], "wire") && n == 3)
    {
      g_autoptr(GBytes) wire = natter_groups_dup_wire (groups, words[1], words[2]);

      say ("wire %" G_GSIZE_FORMAT, wire != NULL ? g_bytes_get_size (wire) : 0);
      return;
    }
  if (g_str_equal (words[0], "len") && n == 2)
    {
      g_autoptr(GPtrArray) history = natter_groups_get_history (groups, words[1]);

      say ("len %u", history->len);
      return;
    }
  if (g_str_equal (words[0], "block") && n == 3)
    {
      natter_groups_set_blocked (groups, words[1], g_str_equal (words[2], "1"));
      say ("ok");
      return;
    }
  if (g_str_equal (words[0], "quit"))
    {
      natter_messaging_service_stop_async (member->service, NULL, on_member_stopped, member);
      return;
    }
  say ("err unknown command");
}

static void
on_member_line (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  Member *member = user_data;
  g_autofree char *line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result,
                                                                 NULL, NULL);

  if (line == NULL)
    {
      g_main_loop_quit (member->loop);
      return;
    }
  member_command (member, line);
  member_read (member);
}

static void
member_read (Member *member)
{
  g_data_input_stream_read_line_async (member->input, G_PRIORITY_DEFAULT, NULL, on_member_line, member);
}

static void
on_member_started (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Member *member = user_data;

  member->started = natter_messaging_service_start_finish (member->service, result, &member->error);
  g_main_loop_quit (member->loop);
}

static int
run_member (const char *dir,
            const char *url)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) stdin_stream = g_unix_input_stream_new (0, FALSE);
  const char *urls[] = { url, NULL };
  const char *lo[] = { "lo", NULL };
  Member member = { 0 };

  member.loop = g_main_loop_new (NULL, FALSE);
  member.arrivals = g_string_new (NULL);
  member.series_sent = g_string_new (NULL);
  member.profile = natter_profile_open (dir, NULL, &error);
  if (member.profile == NULL)
    {
      fprintf (stderr, "member: %s\n", error->message);
      return 1;
    }
  member.service = natter_messaging_service_new (member.profile);
  g_object_set (member.service, "rendezvous-urls", urls, "lan-discovery", FALSE, "interfaces", lo, NULL);
  natter_messaging_service_start_async (member.service, NULL, on_member_started, &member);
  g_main_loop_run (member.loop);
  if (!member.started)
    {
      fprintf (stderr, "member: %s\n", member.error->message);
      return 1;
    }
  g_signal_connect (natter_messaging_service_get_groups (member.service), "message-received",
                    G_CALLBACK (on_member_message), &member);
  say ("ready %s", natter_messaging_service_get_peer_id (member.service));
  member.input = g_data_input_stream_new (stdin_stream);
  member_read (&member);
  g_main_loop_run (member.loop);
  g_object_unref (member.input);
  g_object_unref (member.service);
  g_object_unref (member.profile);
  g_main_loop_unref (member.loop);
  g_string_free (member.arrivals, TRUE);
  g_string_free (member.series_sent, TRUE);
  g_free (member.series_group);
  return 0;
}

/* The driver side. */

typedef struct
{
  GSubprocess      *process;
  GOutputStream    *in;
  GDataInputStream *out;
  char             *peer_id;
  GQueue            replies;
  GHashTable       *arrivals;   /* msg ID -> gint64* (the member's monotonic µs) */
  GCancellable     *cancel;     /* the pending read, which must not outlive the child */
  gboolean          eof;
  gboolean          stopped;
} Child;

static void child_read (Child *child);

static void
on_child_line (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Child *child = user_data;
  g_autoptr(GError) error = NULL;
  char *line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result, NULL, &error);

  /* Cancelled: the child is gone. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (line == NULL)
    {
      child->eof = TRUE;
      return;
    }
  if (g_str_has_prefix (line, "recv "))
    {
      g_auto(GStrv) words = g_strsplit (line, " ", 3);
      gint64 at = g_ascii_strtoll (words[2] != NULL ? words[2] : "0", NULL, 10);

      g_hash_table_insert (child->arrivals, g_strdup (words[1]), g_memdup2 (&at, sizeof at));
      g_free (line);
    }
  else
    g_queue_push_tail (&child->replies, line);
  child_read (child);
}

static void
child_read (Child *child)
{
  g_data_input_stream_read_line_async (child->out, G_PRIORITY_DEFAULT, child->cancel, on_child_line, child);
}

static gboolean
child_has_reply (gpointer data)
{
  Child *child = data;

  return child->replies.length > 0 || child->eof;
}

static double call_timeout_s = 60;

/* Sends one command and waits for its one-line answer. */
static char *
child_call (Child      *child,
            const char *format,
            ...) G_GNUC_PRINTF (2, 3);

static char *
child_call (Child      *child,
            const char *format,
            ...)
{
  g_autofree char *line = NULL;
  va_list args;

  if (child->stopped || child->eof)
    return NULL;
  va_start (args, format);
  line = g_strdup_vprintf (format, args);
  va_end (args);
  {
    g_autofree char *with_newline = g_strconcat (line, "\n", NULL);

    if (!g_output_stream_write_all (child->in, with_newline, strlen (with_newline), NULL, NULL, NULL))
      return NULL;
  }
  if (!cluster_wait (child_has_reply, child, call_timeout_s))
    return NULL;
  return g_queue_pop_head (&child->replies);
}

static void
child_free (Child *child)
{
  g_cancellable_cancel (child->cancel);
  g_clear_object (&child->cancel);
  g_clear_object (&child->out);
  if (child->process != NULL)
    {
      g_subprocess_force_exit (child->process);
      g_subprocess_wait (child->process, NULL, NULL);
    }
  g_clear_object (&child->process);
  g_free (child->peer_id);
  g_queue_clear_full (&child->replies, g_free);
  g_hash_table_unref (child->arrivals);
  g_free (child);
}

static void
child_quit (Child *child)
{
  g_autofree char *bye = child_call (child, "quit");

  child->stopped = TRUE;
}

typedef struct
{
  GPtrArray  *children;
  const char *msg_id;
  guint       skip;
} ChildReach;

static gboolean
children_reached (gpointer data)
{
  ChildReach *reach = data;

  for (guint i = 0; i < reach->children->len; i++)
    {
      Child *child = g_ptr_array_index (reach->children, i);

      if (i != reach->skip && !child->stopped && !g_hash_table_contains (child->arrivals, reach->msg_id))
        return FALSE;
    }
  return TRUE;
}

typedef struct
{
  Child *child;
  guint  count;
} ArrivalCount;

static gboolean
has_arrivals (gpointer data)
{
  ArrivalCount *wait = data;

  return g_hash_table_size (wait->child->arrivals) >= wait->count || wait->child->eof;
}

static double
children_cpu_ms (GPtrArray *children)
{
  double total = 0;

  for (guint i = 0; i < children->len; i++)
    {
      Child *child = g_ptr_array_index (children, i);
      const char *pid = child->process != NULL && !child->stopped
                        ? g_subprocess_get_identifier (child->process) : NULL;

      if (pid != NULL)
        total += process_cpu_ms (pid);
    }
  return total;
}

/* Redundant work of all members so far: copies of messages they already
 * had, and pull requests. */
static void
children_redundancy (GPtrArray *children,
                     guint64   *duplicates,
                     guint64   *pulls)
{
  *duplicates = *pulls = 0;
  for (guint i = 0; i < children->len; i++)
    {
      g_autofree char *stats = child_call (g_ptr_array_index (children, i), "stats");
      guint64 copies, bytes, d, p;

      if (stats != NULL && sscanf (stats, "stats %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                                   " %" G_GUINT64_FORMAT, &copies, &bytes, &d, &p) == 4)
        {
          *duplicates += d;
          *pulls += p;
        }
    }
}

/* With the members at rest: their CPU over two seconds, then the loopback
 * baseline. */
static void
measure_scale (Scale     *scale,
               GPtrArray *children)
{
  double cpu = children != NULL ? children_cpu_ms (children) : process_cpu_ms (NULL);
  double start = natter_bench_now ();

  cluster_sleep (2.0);
  scale->idle_cpu_pct = ((children != NULL ? children_cpu_ms (children) : process_cpu_ms (NULL)) - cpu) /
                        ((natter_bench_now () - start) * 1000.0) * 100.0;
  scale->udp_rtt_p50_us = natter_bench_baseline_udp_rtt_us (1000, 1000, &scale->udp_rtt_p99_us);
}

static gboolean
run_size_processes (NatterBenchReport *report,
                    guint              n,
                    guint              fanout,
                    guint              n_messages,
                    guint              n_catch_up)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) server = NULL;
  g_autoptr(GPtrArray) children = g_ptr_array_new_with_free_func ((GDestroyNotify) child_free);
  g_autofree char *self_exe = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *tmp = g_dir_make_tmp ("natter-bench-groups-XXXXXX", NULL);
  g_autofree char *url = NULL;
  g_autofree char *group = NULL;
  g_autofree double *reach = g_new0 (double, n_messages);
  g_autofree double *reach_first = g_new0 (double, n_messages);
  g_autofree double *reach_half = g_new0 (double, n_messages);
  g_autofree gint64 *offsets = g_new0 (gint64, n);
  double setup_start = natter_bench_now ();
  double setup_s, catch_up_ms = -1;
  double cpu_before = 0, timed_start = 0;
  g_autofree char *series = NULL;
  guint64 duplicates_before = 0, pulls_before = 0, duplicates_after = 0, pulls_after = 0;
  Scale scale = { -1, -1, -1, -1 };
  guint64 copies_before = 0, bytes_before = 0, copies_after = 0, bytes_after = 0;
  guint64 wire_bytes = 0;
  guint reached = 0;
  gboolean ok = FALSE;
  Child *hub;
  char key[96];
  char label[160];

  {
    g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
    g_autoptr(GDataInputStream) out = NULL;
    g_autofree char *line = NULL;

    g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
    server = g_subprocess_launcher_spawn (launcher, &error, find_rendezvous (),
                                          "--listen", "127.0.0.1", "--port", "0", NULL);
    if (server == NULL)
      goto out;
    out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (server));
    line = g_data_input_stream_read_line (out, NULL, NULL, &error);
    if (line == NULL || strstr (line, "ws://") == NULL)
      goto out;
    url = g_strdup (strstr (line, "ws://"));
  }

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GSubprocessLauncher) launcher =
        g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
      g_autofree char *dir = g_strdup_printf ("%s/m%02u", tmp, i);
      Child *child = g_new0 (Child, 1);
      g_autofree char *line = NULL;

      g_ptr_array_add (children, child);
      g_queue_init (&child->replies);
      child->arrivals = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      child->cancel = g_cancellable_new ();
      g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
      child->process = g_subprocess_launcher_spawn (launcher, &error, self_exe, "groups", "--member",
                                                    dir, url, NULL);
      if (child->process == NULL)
        goto out;
      child->in = g_subprocess_get_stdin_pipe (child->process);
      child->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child->process));
      /* natter-bench prints a "# machine" line first. */
      do
        {
          g_free (line);
          line = g_data_input_stream_read_line (child->out, NULL, NULL, &error);
        }
      while (line != NULL && line[0] == '#');
      if (line == NULL || !g_str_has_prefix (line, "ready "))
        goto out;
      child->peer_id = g_strdup (line + 6);
      child_read (child);
    }
  hub = g_ptr_array_index (children, 0);

  /* Contacts with the hub, a few at a time, members first. */
  for (guint first = 1; first < n; first += 8)
    {
      guint last = MIN (first + 8, n);

      for (guint i = first; i < last; i++)
        g_free (child_call (g_ptr_array_index (children, i), "contact %s", hub->peer_id));
      cluster_sleep (0.2);
      for (guint i = first; i < last; i++)
        g_free (child_call (hub, "contact %s", ((Child *) g_ptr_array_index (children, i))->peer_id));
      for (guint i = first; i < last; i++)
        {
          gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

          for (;;)
            {
              g_autofree char *state = child_call (hub, "peer %s", ((Child *) g_ptr_array_index (children, i))->peer_id);

              if (g_strcmp0 (state, "state direct") == 0)
                break;
              if (g_get_monotonic_time () > deadline)
                {
                  fprintf (stderr, "natter-bench groups: member %u did not connect to the hub (%s)\n",
                           i, state != NULL ? state : "no answer");
                  goto out;
                }
              cluster_sleep (0.1);
            }
        }
    }

  {
    GString *command = g_string_new (NULL);
    g_autofree char *reply = NULL;

    g_string_append_printf (command, "create %u", fanout);
    for (guint i = 1; i < n; i++)
      g_string_append_printf (command, " %s", ((Child *) g_ptr_array_index (children, i))->peer_id);
    reply = child_call (hub, "%s", command->str);
    g_string_free (command, TRUE);
    if (reply == NULL || !g_str_has_prefix (reply, "group "))
      {
        fprintf (stderr, "natter-bench groups: create: %s\n", reply != NULL ? reply : "no answer");
        goto out;
      }
    group = g_strdup (reply + 6);
  }
  {
    gint64 deadline = g_get_monotonic_time () + 300 * G_USEC_PER_SEC;
    g_autofree char *wanted = g_strdup_printf ("mesh %u %u", n - 1, n);

    for (guint i = 0; i < n;)
      {
        g_autofree char *mesh = child_call (g_ptr_array_index (children, i), "mesh %s", group);

        if (g_strcmp0 (mesh, wanted) == 0)
          i++;
        else if (g_get_monotonic_time () > deadline)
          {
            fprintf (stderr, "natter-bench groups: member %u: %s\n", i, mesh ? mesh : "(none)");
            goto out;
          }
        else
          cluster_sleep (0.2);
      }
  }
  setup_s = natter_bench_now () - setup_start;

  /* Warm-up: five messages, each waited for; round-trip samples for the
   * tree come in meanwhile. */
  for (guint i = 0; i < 5; i++)
    {
      g_autofree char *reply = child_call (hub, "send %s warm-up-%u", group, i);
      g_auto(GStrv) words = NULL;
      ChildReach wait = { children, NULL, 0 };

      if (reply == NULL || !g_str_has_prefix (reply, "sent "))
        continue;
      words = g_strsplit (reply, " ", 3);
      wait.msg_id = words[1];
      cluster_wait (children_reached, &wait, 10);
    }
  cluster_sleep (1.0);
  {
    g_autofree char *stats = child_call (hub, "stats");

    if (stats == NULL || sscanf (stats, "stats %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                                 &copies_before, &bytes_before) < 2)
      goto out;
  }
  measure_scale (&scale, children);
  children_redundancy (children, &duplicates_before, &pulls_before);
  for (guint j = 0; j < n; j++)
    g_free (child_call (g_ptr_array_index (children, j), "quiet 1"));

  /* The timed series: the sender sends one message every interval by
   * itself, and the members keep their arrival times until asked, so
   * that nothing of the benchmark's own runs while messages travel. */
  cpu_before = children_cpu_ms (children);
  timed_start = natter_bench_now ();
  call_timeout_s = n_messages * (interval_ms / 1000.0) + 60;
  series = child_call (hub, "series %s %u %u", group, n_messages, MAX (interval_ms, 1));
  call_timeout_s = 60;
  if (series == NULL || !g_str_has_prefix (series, "series"))
    goto out;
  /* The last ones, acknowledgements and summaries settle. */
  cluster_sleep (2.0);
  scale.cpu_ms_per_msg = (children_cpu_ms (children) - cpu_before -
                          scale.idle_cpu_pct / 100.0 * (natter_bench_now () - timed_start) * 1000.0) / n_messages;
  children_redundancy (children, &duplicates_after, &pulls_after);
  for (guint j = 1; j < n; j++)
    {
      Child *child = g_ptr_array_index (children, j);
      g_autofree char *arrivals = child_call (child, "arrivals");
      g_auto(GStrv) items = arrivals != NULL ? g_strsplit (arrivals, " ", -1) : NULL;

      for (guint k = 1; items != NULL && items[k] != NULL; k++)
        {
          char *colon = strchr (items[k], ':');
          gint64 at;

          if (colon == NULL)
            continue;
          *colon = '\0';
          at = g_ascii_strtoll (colon + 1, NULL, 10);
          g_hash_table_insert (child->arrivals, g_strdup (items[k]), g_memdup2 (&at, sizeof at));
        }
    }
  for (guint j = 0; j < n; j++)
    g_free (child_call (g_ptr_array_index (children, j), "quiet 0"));
  {
    g_auto(GStrv) items = g_strsplit (series, " ", -1);

    for (guint i = 1; items[i] != NULL; i++)
      {
        char *colon = strchr (items[i], ':');
        gint64 start, last = 0;
        gboolean all = TRUE;

        if (colon == NULL)
          continue;
        *colon = '\0';
        start = g_ascii_strtoll (colon + 1, NULL, 10);
        for (guint j = 1; j < n && all; j++)
          {
            gint64 *at = g_hash_table_lookup (((Child *) g_ptr_array_index (children, j))->arrivals, items[i]);

            if (at == NULL)
              all = FALSE;
            else
              {
                last = MAX (last, *at);
                offsets[j - 1] = *at - start;
              }
          }
        if (!all)
          continue;
        qsort (offsets, n - 1, sizeof (gint64), compare_gint64);
        reach_first[reached] = offsets[0] / 1000.0;
        reach_half[reached] = offsets[(n - 1) / 2] / 1000.0;
        reach[reached++] = (last - start) / 1000.0;
        {
          g_autofree char *wire = child_call (hub, "wire %s %s", group, items[i]);

          wire_bytes += wire != NULL ? g_ascii_strtoull (wire + 5, NULL, 10) : 0;
        }
      }
  }
  {
    g_autofree char *stats = child_call (hub, "stats");

    if (stats == NULL || sscanf (stats, "stats %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                                 &copies_after, &bytes_after) < 2)
      goto out;
  }

  if (n >= 4 && n_catch_up > 0)
    {
      Child *author = g_ptr_array_index (children, 1);
      Child *helper = g_ptr_array_index (children, 2);
      Child *late = g_ptr_array_index (children, n - 1);
      ArrivalCount helper_wait = { helper, g_hash_table_size (helper->arrivals) + n_catch_up };
      ArrivalCount late_wait = { late, g_hash_table_size (late->arrivals) + n_catch_up };
      gint64 start, last = 0;

      for (guint i = 0; i < n - 1; i++)
        {
          Child *other = g_ptr_array_index (children, i);

          g_free (child_call (other, "block %s 1", late->peer_id));
          g_free (child_call (late, "block %s 1", other->peer_id));
        }
      for (guint i = 0; i < n_catch_up; i++)
        g_free (child_call (author, "send %s missed", group));
      cluster_wait (has_arrivals, &helper_wait, 60);
      for (guint i = 0; i < n - 1; i++)
        if (i != 2)
          child_quit (g_ptr_array_index (children, i));
      start = g_get_monotonic_time ();
      g_free (child_call (helper, "block %s 0", late->peer_id));
      g_free (child_call (late, "block %s 0", helper->peer_id));
      if (cluster_wait (has_arrivals, &late_wait, 60))
        {
          GHashTableIter iter;
          gint64 *at;

          g_hash_table_iter_init (&iter, late->arrivals);
          while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &at))
            last = MAX (last, *at);
          catch_up_ms = (last - start) / 1000.0;
        }
    }
  ok = TRUE;

out:
  if (!ok)
    fprintf (stderr, "natter-bench groups: %u members in processes failed%s%s\n", n,
             error != NULL ? ": " : "", error != NULL ? error->message : "");
  for (guint i = 0; i < children->len; i++)
    {
      Child *child = g_ptr_array_index (children, i);

      if (!child->stopped && child->process != NULL)
        child_quit (child);
    }
  g_ptr_array_set_size (children, 0);
  if (server != NULL)
    {
      g_subprocess_force_exit (server);
      g_subprocess_wait (server, NULL, NULL);
    }
  if (tmp != NULL)
    {
      const char *argv[] = { "rm", "-rf", "--", tmp, NULL };

      g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
    }
  if (!ok)
    return FALSE;

  report_scale (report, n, &scale);
  g_snprintf (key, sizeof key, "n%u_duplicates_per_msg", n);
  g_snprintf (label, sizeof label, "%u members: copies received again, all members, per message", n);
  natter_bench_report_add (report, key, (double) (duplicates_after - duplicates_before) / n_messages, label);
  g_snprintf (key, sizeof key, "n%u_pulls_per_msg", n);
  g_snprintf (label, sizeof label, "%u members: pull requests, all members, per message", n);
  natter_bench_report_add (report, key, (double) (pulls_after - pulls_before) / n_messages, label);
  g_snprintf (key, sizeof key, "n%u_setup_s", n);
  g_snprintf (label, sizeof label, "%u members: befriend, create, full mesh (s)", n);
  natter_bench_report_add (report, key, setup_s, label);
  g_snprintf (key, sizeof key, "n%u_reached", n);
  g_snprintf (label, sizeof label, "%u members: messages that reached all (of %u)", n, n_messages);
  natter_bench_report_add (report, key, reached, label);
  if (reached > 0)
    {
      double per_message = (double) (bytes_after - bytes_before) / n_messages;
      double naive = (double) wire_bytes / reached * (n - 1);

      g_snprintf (key, sizeof key, "n%u_reach_all_p50_ms", n);
      g_snprintf (label, sizeof label, "%u members: reach-all p50 (ms)", n);
      natter_bench_report_add (report, key, natter_bench_percentile (reach, reached, 50), label);
      g_snprintf (key, sizeof key, "n%u_reach_all_p99_ms", n);
      g_snprintf (label, sizeof label, "%u members: reach-all p99 (ms)", n);
      natter_bench_report_add (report, key, natter_bench_percentile (reach, reached, 99), label);
      g_snprintf (key, sizeof key, "n%u_reach_first_p50_ms", n);
      g_snprintf (label, sizeof label, "%u members: first member reached, p50 (ms)", n);
      natter_bench_report_add (report, key, natter_bench_percentile (reach_first, reached, 50), label);
      g_snprintf (key, sizeof key, "n%u_reach_half_p50_ms", n);
      g_snprintf (label, sizeof label, "%u members: half of the members reached, p50 (ms)", n);
      natter_bench_report_add (report, key, natter_bench_percentile (reach_half, reached, 50), label);
      g_snprintf (key, sizeof key, "n%u_upload_copies_per_msg", n);
      g_snprintf (label, sizeof label, "%u members: sender's copies per message (fan-out %u)", n, fanout);
      natter_bench_report_add (report, key, (double) (copies_after - copies_before) / n_messages, label);
      g_snprintf (key, sizeof key, "n%u_upload_bytes_per_msg", n);
      g_snprintf (label, sizeof label, "%u members: sender's upload per message (bytes)", n);
      natter_bench_report_add (report, key, per_message, label);
      g_snprintf (key, sizeof key, "n%u_naive_bytes_per_msg", n);
      g_snprintf (label, sizeof label, "%u members: naive fan-out per message (bytes)", n);
      natter_bench_report_add (report, key, naive, label);
      g_snprintf (key, sizeof key, "n%u_upload_vs_naive", n);
      g_snprintf (label, sizeof label, "%u members: upload / naive", n);
      natter_bench_report_add (report, key, per_message / naive, label);
    }
  g_snprintf (key, sizeof key, "n%u_catch_up_%u_ms", n, n_catch_up);
  g_snprintf (label, sizeof label, "%u members: catch-up of %u messages from one member (ms)", n, n_catch_up);
  natter_bench_report_add (report, key, catch_up_ms, label);
  return TRUE;
}

/* }}} */

static void
usage (void)
{
  fprintf (stderr,
           "Usage: natter-bench groups [--members N[,N…]] [--fanout K] [--messages M] [--interval MS]\n"
           "                          [--catch-up C] [--in-process]\n"
           "Defaults: --members 8,16,32 --fanout 3 --messages 200 --interval 250 --catch-up 500.\n"
           "Environment: NATTER_RENDEZVOUS, the natter-rendezvous to start.\n");
}

int
natter_bench_groups (int      argc,
                     char   **argv,
                     gboolean json)
{
  g_autoptr(NatterBenchReport) report = natter_bench_report_new ("groups");
  g_auto(GStrv) sizes = g_strsplit ("8,16,32", ",", -1);
  guint fanout = 3;
  guint n_messages = 200;
  guint n_catch_up = 500;
  gboolean in_process = FALSE;

  for (int i = 1; i < argc; i++)
    {
      if (g_str_equal (argv[i], "--member") && i + 2 < argc)
        {
          g_setenv ("NATTER_INTERFACES", "lo", TRUE);
          if (g_getenv ("GSETTINGS_BACKEND") == NULL)
            g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);
          return run_member (argv[i + 1], argv[i + 2]);
        }
      else if (g_str_equal (argv[i], "--in-process"))
        in_process = TRUE;
      else if (g_str_equal (argv[i], "--members") && i + 1 < argc)
        {
          g_strfreev (sizes);
          sizes = g_strsplit (argv[++i], ",", -1);
        }
      else if (g_str_equal (argv[i], "--fanout") && i + 1 < argc)
        fanout = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (g_str_equal (argv[i], "--messages") && i + 1 < argc)
        n_messages = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (g_str_equal (argv[i], "--interval") && i + 1 < argc)
        interval_ms = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (g_str_equal (argv[i], "--catch-up") && i + 1 < argc)
        n_catch_up = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else
        {
          usage ();
          return 2;
        }
    }
  fanout = CLAMP (fanout, 1, NATTER_GROUPS_MAX_FANOUT);
  n_messages = CLAMP (n_messages, 10, 100000);
  interval_ms = MIN (interval_ms, 10000);

  g_setenv ("NATTER_INTERFACES", "lo", TRUE);
  if (g_getenv ("GSETTINGS_BACKEND") == NULL)
    g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);
  if (find_rendezvous () == NULL)
    {
      fprintf (stderr, "natter-bench groups: natter-rendezvous not found (set NATTER_RENDEZVOUS)\n");
      return 1;
    }

  natter_bench_report_add (report, "fanout", fanout, "fan-out limit per node");
  natter_bench_report_add (report, "messages", n_messages, "messages timed per size");
  natter_bench_report_add (report, "interval_ms", interval_ms, "pause between two timed messages (ms)");
  natter_bench_report_add_text (report, "members_are", in_process ? "services in one process" : "processes",
                                "each member is one of");
  for (guint i = 0; sizes[i] != NULL; i++)
    {
      guint n = (guint) g_ascii_strtoull (sizes[i], NULL, 10);

      if (n < 2 || n > NATTER_GROUPS_MAX_MEMBERS)
        {
          usage ();
          return 2;
        }
      if (!(in_process ? run_size_in_process : run_size_processes) (report, n, fanout, n_messages, n_catch_up))
        return 1;
    }
  natter_bench_report_print (report, json);
  return 0;
}
