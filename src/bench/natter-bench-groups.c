/* natter-bench-groups.c: natter-bench groups
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <stdio.h>
#include <string.h>

#include "natter-bench.h"
#include "natter-group-cluster.h"

/* For each group size N: N NatterMessagingServices in this process (each
 * with its own profile in a temporary folder), connected over loopback ICE
 * through one natter-rendezvous process on 127.0.0.1, in one group with
 * the given fan-out.  Measured:
 *
 *  - reach-all: from natter_groups_send_text() on member 0 until the last
 *    of the N − 1 others has delivered the message ("message-received"),
 *    one message at a time; p50 and p99;
 *  - the sender's upload: bytes of its own stream frames that it handed to
 *    connections per message, against naive fan-out (one copy to each
 *    other member);
 *  - catch-up: member N − 1 is cut off while member 1 sends 500 messages;
 *    then member 1 and everyone but member 2 stop, member N − 1 is let
 *    back, and the time until it has delivered all 500 (pulled from
 *    member 2 alone) is measured.
 *
 * All members share this process's main context, so the figures include
 * every member's work on one thread (decode, signature check, decryption,
 * forwarding, delivery); the transport thread and the crypto worker are
 * shared as well. */

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

static gboolean
run_size (NatterBenchReport *report,
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
      cluster_sleep (0.02);
    }
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

static void
usage (void)
{
  fprintf (stderr,
           "Usage: natter-bench groups [--members N[,N…]] [--fanout K] [--messages M] [--catch-up C]\n"
           "Defaults: --members 8,16,32 --fanout 3 --messages 200 --catch-up 500.\n"
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

  for (int i = 1; i < argc; i++)
    {
      if (g_str_equal (argv[i], "--members") && i + 1 < argc)
        {
          g_strfreev (sizes);
          sizes = g_strsplit (argv[++i], ",", -1);
        }
      else if (g_str_equal (argv[i], "--fanout") && i + 1 < argc)
        fanout = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (g_str_equal (argv[i], "--messages") && i + 1 < argc)
        n_messages = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
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
  for (guint i = 0; sizes[i] != NULL; i++)
    {
      guint n = (guint) g_ascii_strtoull (sizes[i], NULL, 10);

      if (n < 2 || n > NATTER_GROUPS_MAX_MEMBERS)
        {
          usage ();
          return 2;
        }
      if (!run_size (report, n, fanout, n_messages, n_catch_up))
        return 1;
    }
  natter_bench_report_print (report, json);
  return 0;
}
