/* natter-bench-causal.c: throughput of the causal delivery buffer
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <stdio.h>
#include <string.h>

#include "natter-bench.h"
#include "natter-causal-buffer.h"

/* A causal history: message i was sent by senders[i] with the vector clock
 * clocks[i * n_members .. (i + 1) * n_members). */
typedef struct
{
  guint n_messages;
  guint n_members;
  guint *senders;
  guint64 *clocks;
  guint64 *sent;      /* [n_members]: messages sent per member */
} History;

static void
history_free (History *h)
{
  g_free (h->senders);
  g_free (h->clocks);
  g_free (h->sent);
  g_free (h);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (History, history_free)

/* Each member sends with its current knowledge as the clock.  Before half
 * of its sends it has just received one recent message from the group, so
 * there are long causal chains across members as well as concurrency, as
 * in a busy group chat. */
static History *
history_generate (GRand *rand,
                  guint  n_messages,
                  guint  n_members)
{
  History *h = g_new0 (History, 1);
  g_autofree guint64 *know = g_new0 (guint64, (gsize) n_members * n_members);
  guint recent = MAX (4 * n_members, 8);

  h->n_messages = n_messages;
  h->n_members = n_members;
  h->senders = g_new (guint, n_messages);
  h->clocks = g_new (guint64, (gsize) n_messages * n_members);
  h->sent = g_new0 (guint64, n_members);

  for (guint i = 0; i < n_messages; i++)
    {
      guint sender = g_rand_int_range (rand, 0, n_members);
      guint64 *mine = &know[(gsize) sender * n_members];

      if (i > 0 && g_rand_boolean (rand))
        {
          guint back = g_rand_int_range (rand, 1, MIN (i, recent) + 1);
          const guint64 *theirs = &h->clocks[(gsize) (i - back) * n_members];

          for (guint k = 0; k < n_members; k++)
            mine[k] = MAX (mine[k], theirs[k]);
        }
      mine[sender]++;
      h->senders[i] = sender;
      h->sent[sender] = mine[sender];
      memcpy (&h->clocks[(gsize) i * n_members], mine, n_members * sizeof (guint64));
    }
  return h;
}

static void
shuffle (GRand *rand,
         guint *order,
         guint  n)
{
  for (guint i = n; i > 1; i--)
    {
      guint j = g_rand_int_range (rand, 0, i);
      guint tmp = order[i - 1];

      order[i - 1] = order[j];
      order[j] = tmp;
    }
}

/* Network-like arrival: generation order, shuffled within consecutive
 * windows of @window messages (window >= n gives a full shuffle). */
static guint *
arrival_order (GRand *rand,
               guint  n,
               guint  window)
{
  guint *order = g_new (guint, n);

  for (guint i = 0; i < n; i++)
    order[i] = i;
  for (guint start = 0; start < n; start += window)
    shuffle (rand, order + start, MIN (window, n - start));
  return order;
}

typedef struct
{
  guint64 delivered;
} Counter;

static void
count_deliver (NatterCausalBuffer *buffer,
               guint               sender,
               const guint64      *clock,
               gsize               clock_len,
               gpointer            item,
               gpointer            user_data)
{
  Counter *counter = user_data;

  counter->delivered++;
}

typedef struct
{
  double seconds;
  guint max_buffered;
  gboolean complete;
} RunResult;

/* Feeds the whole history to a fresh buffer in @order; only the feeding is
 * timed. */
static RunResult
run_buffer (const History *h,
            const guint   *order)
{
  g_autoptr(NatterCausalBuffer) buffer = NULL;
  Counter counter = { 0 };
  RunResult result = { 0, 0, TRUE };
  const guint64 *local;
  guint max_buffered = 0;
  double start;

  buffer = natter_causal_buffer_new (count_deliver, &counter, NULL);
  for (guint k = 0; k < h->n_members; k++)
    {
      g_autofree char *name = g_strdup_printf ("member-%u", k);

      natter_causal_buffer_add_member (buffer, name);
    }

  start = natter_bench_now ();
  for (guint a = 0; a < h->n_messages; a++)
    {
      guint i = order[a];
      guint waiting;

      if (natter_causal_buffer_add (buffer, h->senders[i], &h->clocks[(gsize) i * h->n_members],
                                    h->n_members, GUINT_TO_POINTER (i + 1)) == NATTER_CAUSAL_DUPLICATE)
        result.complete = FALSE;
      waiting = natter_causal_buffer_get_n_waiting (buffer);
      if (waiting > max_buffered)
        max_buffered = waiting;
    }
  result.seconds = natter_bench_now () - start;
  result.max_buffered = max_buffered;

  /* Every message delivered, exactly as many per member as were sent. */
  if (counter.delivered != h->n_messages || natter_causal_buffer_get_n_waiting (buffer) != 0)
    result.complete = FALSE;
  local = natter_causal_buffer_get_local (buffer, NULL);
  for (guint k = 0; k < h->n_members; k++)
    if (local[k] != h->sent[k])
      result.complete = FALSE;

  return result;
}

/* What any receiver pays per message regardless of ordering: remember its
 * ID for duplicate suppression (a GHashTable insert) ... */
static double
run_baseline_hash (const History *h,
                   const guint   *order)
{
  g_autoptr(GHashTable) seen = g_hash_table_new (g_direct_hash, g_direct_equal);
  double start = natter_bench_now ();

  for (guint a = 0; a < h->n_messages; a++)
    {
      guint i = order[a];

      g_hash_table_insert (seen, GUINT_TO_POINTER (i + 1),
                           (gpointer) &h->clocks[(gsize) i * h->n_members]);
    }
  return natter_bench_now () - start;
}

/* ... and touch its clock once (copy it into an array). */
static double
run_baseline_copy (const History *h,
                   const guint   *order)
{
  g_autofree guint64 *copy = g_new (guint64, (gsize) h->n_messages * h->n_members);
  double start = natter_bench_now ();
  double elapsed;
  volatile guint64 sink;

  for (guint a = 0; a < h->n_messages; a++)
    {
      guint i = order[a];

      memcpy (&copy[(gsize) a * h->n_members], &h->clocks[(gsize) i * h->n_members],
              h->n_members * sizeof (guint64));
    }
  elapsed = natter_bench_now () - start;
  /* Keep the copies observable so the loop is not optimised away. */
  sink = copy[(gsize) (h->n_messages - 1) * h->n_members];
  (void) sink;
  return elapsed;
}

/* Per second, without dividing by a zero time on tiny runs (JSON has no
 * infinity). */
static double
per_second (double count,
            double seconds)
{
  return count / MAX (seconds, 1e-9);
}

/**
 * natter_bench_causal:
 * @argc: argument count
 * @argv: arguments; argv[0] is "causal"
 * @json: print one JSON object instead of a table
 *
 * `natter-bench causal [--messages N] [--members M] [--window W] [--seed S]
 * [--runs R]`: generates a causal history (untimed), then times feeding it
 * to a fresh NatterCausalBuffer in windowed and fully shuffled arrival
 * orders, next to a baseline of per-message work every receiver does.
 *
 * Returns: 0, 1 if a run did not deliver every message, 2 on bad options
 */
int
natter_bench_causal (int      argc,
                     char   **argv,
                     gboolean json)
{
  gint n_messages = 1000000;
  gint n_members = 16;
  gint window = 1024;
  gint runs = 3;
  gint64 seed = -1;
  gboolean json_ignored = FALSE;
  const GOptionEntry entries[] = {
    { "messages", 0, 0, G_OPTION_ARG_INT, &n_messages, "Messages in the history (default 1000000)", "N" },
    { "members", 0, 0, G_OPTION_ARG_INT, &n_members, "Group members (default 16)", "M" },
    { "window", 0, 0, G_OPTION_ARG_INT, &window, "Reordering window (default 1024)", "W" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Random seed (default: random)", "S" },
    { "runs", 0, 0, G_OPTION_ARG_INT, &runs, "Timed runs per order, best is reported (default 3)", "R" },
    /* Handled by natter-bench itself. */
    { "json", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &json_ignored, NULL, NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("- causal buffer throughput");
  g_auto(GStrv) args = g_new0 (char *, argc + 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterBenchReport) report = NULL;
  g_autoptr(History) history = NULL;
  g_autoptr(GRand) rand = NULL;
  g_autofree guint *windowed = NULL;
  g_autofree guint *shuffled = NULL;
  RunResult best_window = { G_MAXDOUBLE, 0, TRUE };
  RunResult best_shuffled = { G_MAXDOUBLE, 0, TRUE };
  double best_hash = G_MAXDOUBLE;
  double best_copy = G_MAXDOUBLE;
  g_autofree char *seed_text = NULL;

  for (int i = 0; i < argc; i++)
    args[i] = g_strdup (argv[i]);
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse_strv (context, &args, &error))
    {
      g_printerr ("natter-bench causal: %s\n", error->message);
      return 2;
    }
  if (n_messages < 1 || n_members < 1 || window < 1 || runs < 1)
    {
      g_printerr ("natter-bench causal: --messages, --members, --window and --runs must be positive\n");
      return 2;
    }
  if (seed < 0)
    seed = g_random_int ();

  rand = g_rand_new_with_seed ((guint32) seed);
  history = history_generate (rand, n_messages, n_members);
  windowed = arrival_order (rand, n_messages, window);
  shuffled = arrival_order (rand, n_messages, n_messages);

  for (int r = 0; r < runs; r++)
    {
      RunResult w = run_buffer (history, windowed);
      RunResult s = run_buffer (history, shuffled);
      double hash = run_baseline_hash (history, shuffled);
      double copy = run_baseline_copy (history, shuffled);

      if (!w.complete || !s.complete)
        {
          g_printerr ("natter-bench causal: not every message was delivered exactly once "
                      "(seed %" G_GINT64_FORMAT ")\n", seed);
          return 1;
        }
      if (w.seconds < best_window.seconds)
        best_window = w;
      if (s.seconds < best_shuffled.seconds)
        best_shuffled = s;
      best_hash = MIN (best_hash, hash);
      best_copy = MIN (best_copy, copy);
    }

  report = natter_bench_report_new ("causal");
  natter_bench_report_add (report, "messages", n_messages, "Messages");
  natter_bench_report_add (report, "members", n_members, "Members");
  natter_bench_report_add (report, "window", window, "Reordering window");
  seed_text = g_strdup_printf ("%" G_GINT64_FORMAT, seed);
  natter_bench_report_add_text (report, "seed", seed_text, "Seed");
  natter_bench_report_add (report, "runs", runs, "Runs (best reported)");
  natter_bench_report_add (report, "delivered_per_s_window", per_second (n_messages, best_window.seconds),
                           "Delivered/s, reordered within window");
  natter_bench_report_add (report, "delivered_per_s_shuffled", per_second (n_messages, best_shuffled.seconds),
                           "Delivered/s, fully shuffled");
  natter_bench_report_add (report, "baseline_per_s", per_second (n_messages, best_hash),
                           "Baseline/s: GHashTable insert per message");
  natter_bench_report_add (report, "baseline_copy_per_s", per_second (n_messages, best_copy),
                           "Baseline/s: copy each clock into an array");
  natter_bench_report_add (report, "ratio_window_to_baseline", per_second (best_hash, best_window.seconds),
                           "Windowed rate / baseline rate");
  natter_bench_report_add (report, "ratio_shuffled_to_baseline", per_second (best_hash, best_shuffled.seconds),
                           "Shuffled rate / baseline rate");
  natter_bench_report_add (report, "max_buffered_window", best_window.max_buffered,
                           "Most messages held at once, windowed");
  natter_bench_report_add (report, "max_buffered", best_shuffled.max_buffered,
                           "Most messages held at once, shuffled");
  natter_bench_report_print (report, json);

  return 0;
}
