/* natter-bench-store.c: insert rate, page loads and search over the store
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gstdio.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "natter-bench.h"
#include "store/natter-db.h"

/*
 * What the store's worker thread pays, measured on NatterDb directly:
 *
 *  - single inserts, each in its own transaction, FTS5 index included:
 *    what receiving one message costs (it must be on disk before the ack).
 *    The index is written in deferred batches (see natter-db-schema.c), so
 *    the timed loop runs them exactly where the store's worker would,
 *    at natter_db_get_index_deadline(), and ends with the flush of what is
 *    left: every timed message is indexed when the clock stops;
 *  - how long a new message can wait before a batch indexes it when no
 *    search asks (a search indexes pending messages first): the batch
 *    delay plus the slowest batch seen;
 *  - the same rows into a bare table with no index, no FTS and no
 *    conversation update, also one transaction each: the baseline that
 *    makes the first figure meaningful on any machine;
 *  - loading the latest page (50) of the bench conversation, which holds
 *    most messages;
 *  - a full-text search for a word found in a few percent of messages, and
 *    for a rare word, newest 50 first;
 *  - listing the conversations (BENCH_CONVERSATIONS of them) with their
 *    last activity, unread count and preview, none of which an insert
 *    writes: with nothing waiting for an index batch, and with a batch
 *    all but due.
 *
 * The database is first filled, untimed against the targets but reported,
 * with big transactions.  Bodies are 5-30 words drawn from a Zipf-like
 * distribution over a few thousand made-up words, so that common, moderate
 * and rare words exist as in real text.  One fill message in OTHER_SHARE
 * goes to one of the other conversations, a few of them busy; in one of
 * UNREAD_EVERY of those, and in the busy ones, incoming messages stay
 * unread, the busy ones past NATTER_DB_UNREAD_CAP.  The bench conversation
 * is created last: its messages, the timed ones included, land at the end
 * of the (conversation_id, id) index as they do for a conversation that
 * is active now.
 */

#define VOCABULARY_SIZE   4000
/* Words outside the Zipf draw, each put in about 1 message in 50,000. */
#define N_RARE_WORDS      200
#define RARE_PER_MESSAGE  250
#define PAGE_SIZE         50
#define BULK_BATCH        20000
/* Vocabulary ranks used for the typical search: each word is in about
 * 3-6 % of messages. */
#define TYPICAL_RANK_MIN  30
#define TYPICAL_RANK_MAX  60
#define BENCH_CONVERSATIONS 1000
#define OTHER_SHARE       8
#define N_BUSY            8
#define UNREAD_EVERY      4
#define LIST_RUNS         200

typedef struct
{
  GRand      *rand;
  GPtrArray  *words;
  double     *cdf;
  gint64      clock_ms;
  guint64     serial;
  gint64      conversation_id;
  /* The other conversations, which the fill spreads messages over when
   * @spread is set. */
  GArray     *others;
  gboolean    spread;
  /* Incoming messages of the bench conversation arrive unread. */
  gboolean    unread;
} Generator;

static void
generator_clear (Generator *gen)
{
  g_clear_pointer (&gen->rand, g_rand_free);
  g_clear_pointer (&gen->words, g_ptr_array_unref);
  g_clear_pointer (&gen->cdf, g_free);
  g_clear_pointer (&gen->others, g_array_unref);
}

static void
generator_init (Generator *gen)
{
  static const char * const onsets[] = {
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s",
    "t", "v", "w", "z", "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr",
    "sh", "st", "th", "tr",
  };
  static const char * const vowels[] = {
    "a", "e", "i", "o", "u", "ai", "ea", "ee", "oo", "ou",
  };
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  double total = 0.0;

  /* A fixed seed: every run searches the same text. */
  gen->rand = g_rand_new_with_seed (20260101);
  gen->words = g_ptr_array_new_with_free_func (g_free);
  gen->others = g_array_new (FALSE, FALSE, sizeof (gint64));
  gen->clock_ms = G_GINT64_CONSTANT (1767225600000);

  while (gen->words->len < VOCABULARY_SIZE + N_RARE_WORDS)
    {
      GString *word = g_string_new (NULL);
      guint syllables = g_rand_int_range (gen->rand, 1, 4);

      for (guint i = 0; i < syllables; i++)
        {
          g_string_append (word, onsets[g_rand_int_range (gen->rand, 0, G_N_ELEMENTS (onsets))]);
          g_string_append (word, vowels[g_rand_int_range (gen->rand, 0, G_N_ELEMENTS (vowels))]);
        }
      if (g_rand_boolean (gen->rand))
        g_string_append (word, onsets[g_rand_int_range (gen->rand, 0, 18)]);

      if (g_hash_table_contains (seen, word->str))
        {
          g_string_free (word, TRUE);
          continue;
        }
      g_hash_table_add (seen, word->str);
      g_ptr_array_add (gen->words, g_string_free (word, FALSE));
    }

  gen->cdf = g_new (double, VOCABULARY_SIZE);
  for (guint r = 0; r < VOCABULARY_SIZE; r++)
    {
      total += 1.0 / (r + 1);
      gen->cdf[r] = total;
    }
  for (guint r = 0; r < VOCABULARY_SIZE; r++)
    gen->cdf[r] /= total;
}

static guint
generator_word_rank (Generator *gen)
{
  double u = g_rand_double (gen->rand);
  guint lo = 0;
  guint hi = VOCABULARY_SIZE - 1;

  while (lo < hi)
    {
      guint mid = (lo + hi) / 2;

      if (gen->cdf[mid] < u)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo;
}

static NatterStoreMessage *
generator_message (Generator *gen)
{
  NatterStoreMessage *message = natter_store_message_new ();
  GString *body = g_string_new (NULL);
  guint n_words = g_rand_int_range (gen->rand, 5, 31);
  g_autofree char *wire = NULL;
  gsize wire_len;
  gboolean unread = gen->unread;

  for (guint i = 0; i < n_words; i++)
    {
      if (i > 0)
        g_string_append_c (body, ' ');
      g_string_append (body, g_ptr_array_index (gen->words, generator_word_rank (gen)));
    }
  if (g_rand_int_range (gen->rand, 0, RARE_PER_MESSAGE) == 0)
    {
      g_string_append_c (body, ' ');
      g_string_append (body, g_ptr_array_index (gen->words,
                                                VOCABULARY_SIZE +
                                                g_rand_int_range (gen->rand, 0, N_RARE_WORDS)));
    }

  gen->clock_ms += g_rand_int_range (gen->rand, 1, 5000);
  gen->serial++;
  /* The seed's ID shape: msg_<ms>_<random>. */
  message->msg_id = g_strdup_printf ("msg_%" G_GINT64_FORMAT "_%06x%02x",
                                     gen->clock_ms,
                                     g_rand_int (gen->rand) & 0xffffff,
                                     (guint) (gen->serial & 0xff));
  message->conversation_id = gen->conversation_id;
  if (gen->spread && gen->others->len > N_BUSY &&
      g_rand_int_range (gen->rand, 0, OTHER_SHARE) == 0)
    {
      /* A quarter of them to the busy few, the rest anywhere. */
      guint other = g_rand_int_range (gen->rand, 0, 4) == 0 ?
                    (guint) g_rand_int_range (gen->rand, 0, N_BUSY) :
                    (guint) g_rand_int_range (gen->rand, 0, gen->others->len);

      message->conversation_id = g_array_index (gen->others, gint64, other);
      unread = other < N_BUSY || other % UNREAD_EVERY == 0;
    }
  message->direction = g_rand_boolean (gen->rand) ? NATTER_STORE_DIRECTION_IN
                                                  : NATTER_STORE_DIRECTION_OUT;
  message->sender = g_strdup (message->direction == NATTER_STORE_DIRECTION_IN ?
                              "peer-7Qm3sX9vKc2LhWbE4nRtYp" : "peer-Ab5dF8gH1jK3lM6nP9qR2s");
  message->type = g_strdup ("text");
  message->timestamp = gen->clock_ms;
  message->sequence = (gint64) gen->serial;
  if (message->direction == NATTER_STORE_DIRECTION_OUT)
    message->state = NATTER_STORE_MESSAGE_DELIVERED;
  else
    message->state = unread ? NATTER_STORE_MESSAGE_DELIVERED : NATTER_STORE_MESSAGE_READ;

  /* Roughly what the signed wire JSON of such a message weighs. */
  wire = g_strdup_printf ("{\"v\":1,\"id\":\"%s\",\"type\":\"text\",\"from\":\"%s\","
                          "\"to\":\"peer-target\",\"timestamp\":%" G_GINT64_FORMAT ","
                          "\"sequence\":%" G_GUINT64_FORMAT ",\"ttl\":604800,"
                          "\"content\":\"%s\",\"sig\":\"%064x%064x\"}",
                          message->msg_id, message->sender, gen->clock_ms,
                          gen->serial, body->str, g_rand_int (gen->rand),
                          g_rand_int (gen->rand));
  wire_len = strlen (wire);
  message->wire = g_bytes_new_take (g_steal_pointer (&wire), wire_len);
  message->body = g_string_free (body, FALSE);
  return message;
}

static GPtrArray *
generate_messages (Generator *gen,
                   guint      count)
{
  GPtrArray *messages =
    g_ptr_array_new_full (count, (GDestroyNotify) natter_store_message_free);

  for (guint i = 0; i < count; i++)
    g_ptr_array_add (messages, generator_message (gen));
  return messages;
}

/* The baseline: the same rows into a bare table, one transaction each. */
static double
baseline_inserts (const char  *path,
                  GPtrArray   *messages,
                  GError     **error)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *insert = NULL;
  sqlite3_stmt *begin = NULL;
  sqlite3_stmt *commit = NULL;
  double start;
  double elapsed = -1.0;
  int rc;

  rc = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec (db,
                       "PRAGMA journal_mode = WAL;"
                       "PRAGMA synchronous = NORMAL;"
                       "CREATE TABLE plain (id INTEGER PRIMARY KEY, msg_id TEXT, "
                       "conversation_id INTEGER, sender TEXT, direction TEXT, "
                       "type TEXT, body TEXT, timestamp INTEGER, sequence INTEGER, "
                       "state TEXT, relay_via TEXT, wire BLOB);",
                       NULL, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v3 (db, "INSERT INTO plain (msg_id, conversation_id, sender, "
                             "direction, type, body, timestamp, sequence, state, "
                             "relay_via, wire) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                             "?9, ?10, ?11)", -1, SQLITE_PREPARE_PERSISTENT,
                             &insert, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2 (db, "BEGIN IMMEDIATE", -1, &begin, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2 (db, "COMMIT", -1, &commit, NULL);
  if (rc != SQLITE_OK)
    goto out;

  start = natter_bench_now ();
  for (guint i = 0; i < messages->len && rc == SQLITE_OK; i++)
    {
      NatterStoreMessage *m = g_ptr_array_index (messages, i);
      gsize wire_len;
      gconstpointer wire = g_bytes_get_data (m->wire, &wire_len);

      sqlite3_step (begin);
      sqlite3_reset (begin);
      sqlite3_bind_text (insert, 1, m->msg_id, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (insert, 2, m->conversation_id);
      sqlite3_bind_text (insert, 3, m->sender, -1, SQLITE_STATIC);
      sqlite3_bind_text (insert, 4, natter_store_direction_to_string (m->direction), -1, SQLITE_STATIC);
      sqlite3_bind_text (insert, 5, m->type, -1, SQLITE_STATIC);
      sqlite3_bind_text (insert, 6, m->body, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (insert, 7, m->timestamp);
      sqlite3_bind_int64 (insert, 8, m->sequence);
      sqlite3_bind_text (insert, 9, natter_store_message_state_to_string (m->state), -1, SQLITE_STATIC);
      sqlite3_bind_null (insert, 10);
      sqlite3_bind_blob64 (insert, 11, wire, wire_len, SQLITE_STATIC);
      rc = sqlite3_step (insert) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
      sqlite3_reset (insert);
      if (rc == SQLITE_OK)
        rc = sqlite3_step (commit) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
      sqlite3_reset (commit);
    }
  if (rc == SQLITE_OK)
    elapsed = natter_bench_now () - start;

out:
  if (rc != SQLITE_OK)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                 "Baseline inserts failed: %s", db ? sqlite3_errmsg (db) : sqlite3_errstr (rc));
  sqlite3_finalize (insert);
  sqlite3_finalize (begin);
  sqlite3_finalize (commit);
  sqlite3_close_v2 (db);
  return elapsed;
}

static gboolean
time_searches (NatterDb    *db,
               Generator   *gen,
               guint        rank_min,
               guint        rank_max,
               guint        n_queries,
               double      *p50,
               double      *p99,
               double      *mean_hits,
               GError     **error)
{
  g_autofree double *times = g_new (double, n_queries);
  guint64 hits = 0;

  for (guint i = 0; i < n_queries; i++)
    {
      const char *word = g_ptr_array_index (gen->words,
                                            rank_min + i % (rank_max - rank_min + 1));
      double start = natter_bench_now ();
      g_autoptr(GPtrArray) results = natter_db_search (db, word, 0, PAGE_SIZE, error);

      times[i] = (natter_bench_now () - start) * 1000.0;
      if (results == NULL)
        return FALSE;
      hits += results->len;
    }
  *p50 = natter_bench_percentile (times, n_queries, 50);
  *p99 = natter_bench_percentile (times, n_queries, 99);
  *mean_hits = (double) hits / n_queries;
  return TRUE;
}

static gboolean
time_conversation_lists (NatterDb  *db,
                         double    *p50,
                         double    *p99,
                         guint     *n_conversations,
                         guint64   *n_unread,
                         GError   **error)
{
  double times[LIST_RUNS];

  for (guint i = 0; i < LIST_RUNS; i++)
    {
      double start = natter_bench_now ();
      g_autoptr(GPtrArray) list = natter_db_list_conversations (db, error);

      times[i] = (natter_bench_now () - start) * 1000.0;
      if (list == NULL)
        return FALSE;
      *n_conversations = list->len;
      *n_unread = 0;
      for (guint j = 0; j < list->len; j++)
        *n_unread += natter_conversation_get_unread_count (list->pdata[j]);
    }
  *p50 = natter_bench_percentile (times, LIST_RUNS, 50);
  *p99 = natter_bench_percentile (times, LIST_RUNS, 99);
  return TRUE;
}

static void
remove_db_files (const char *path)
{
  g_autofree char *wal = g_strconcat (path, "-wal", NULL);
  g_autofree char *shm = g_strconcat (path, "-shm", NULL);

  g_unlink (path);
  g_unlink (wal);
  g_unlink (shm);
}

int
natter_bench_store (int    argc,
                    char **argv,
                    gboolean json)
{
  gint64 n_messages = 1000000;
  gint64 n_single = 50000;
  gint n_queries = 1000;
  g_autofree char *db_option = NULL;
  gboolean json_option = FALSE;
  gboolean unread_option = FALSE;
  const GOptionEntry entries[] = {
    { "messages", 0, 0, G_OPTION_ARG_INT64, &n_messages,
      "Messages stored in the conversation (default 1000000)", "N" },
    { "single", 0, 0, G_OPTION_ARG_INT64, &n_single,
      "How many of them are timed single-transaction inserts (default 50000)", "N" },
    { "queries", 0, 0, G_OPTION_ARG_INT, &n_queries,
      "Page loads and searches timed per figure (default 1000)", "N" },
    { "db", 0, 0, G_OPTION_ARG_FILENAME, &db_option,
      "Database file (default: in a temporary directory, removed after)", "PATH" },
    { "unread", 0, 0, G_OPTION_ARG_NONE, &unread_option,
      "Timed incoming messages arrive unread, as before the user reads them "
      "(default: read, as in a conversation on screen)", NULL },
    /* natter-bench handles --json; accept it here wherever it is. */
    { "json", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &json_option, NULL, NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterBenchReport) report = NULL;
  g_autofree char *tmpdir = NULL;
  g_autofree char *db_path = NULL;
  g_autofree char *baseline_path = NULL;
  g_autoptr(NatterDb) db = NULL;
  g_autoptr(GPtrArray) single = NULL;
  g_autofree double *times = NULL;
  Generator gen = { 0 };
  gint64 n_bulk;
  gint64 stored;
  double start, elapsed, bulk_elapsed, single_elapsed, baseline_elapsed;
  double p50, p99, hits, rare_p50, rare_p99, rare_hits;
  double flush_max = 0.0;
  double flush_total = 0.0;
  double list_p50, list_p99, list_pending_p50, list_pending_p99;
  guint n_conversations = 0;
  guint64 n_unread = 0;
  guint n_flushes = 0;
  int status = 1;

  context = g_option_context_new ("- benchmark the SQLite message store");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("natter-bench store: %s\n", error->message);
      return 2;
    }
  if (n_messages < 1 || n_single < 1 || n_queries < 1)
    {
      g_printerr ("natter-bench store: counts must be positive\n");
      return 2;
    }
  n_single = MIN (n_single, n_messages);
  n_bulk = n_messages - n_single;

  tmpdir = g_dir_make_tmp ("natter-bench-store-XXXXXX", &error);
  if (tmpdir == NULL)
    {
      g_printerr ("natter-bench store: %s\n", error->message);
      return 1;
    }
  db_path = db_option ? g_strdup (db_option) : g_build_filename (tmpdir, "store.db", NULL);
  baseline_path = g_build_filename (tmpdir, "baseline.db", NULL);
  if (db_option != NULL)
    remove_db_files (db_path);

  generator_init (&gen);
  report = natter_bench_report_new ("store");

  db = natter_db_open (db_path, &error);
  if (db == NULL)
    goto out;
  for (guint i = 0; i + 1 < BENCH_CONVERSATIONS; i++)
    {
      g_autofree char *peer = g_strdup_printf ("peer-other-%04u", i);
      gint64 id = natter_db_ensure_conversation (db, NATTER_CONVERSATION_DIRECT,
                                                 peer, peer, &error);

      if (id == 0)
        goto out;
      g_array_append_val (gen.others, id);
    }
  gen.conversation_id = natter_db_ensure_conversation (db, NATTER_CONVERSATION_DIRECT,
                                                       "peer-7Qm3sX9vKc2LhWbE4nRtYp",
                                                       "Bench", &error);
  if (gen.conversation_id == 0)
    goto out;

  /* Fill: big transactions through the same insert path. */
  bulk_elapsed = 0.0;
  gen.spread = TRUE;
  for (gint64 done = 0; done < n_bulk; done += BULK_BATCH)
    {
      g_autoptr(GPtrArray) batch = generate_messages (&gen, (guint) MIN (BULK_BATCH, n_bulk - done));

      start = natter_bench_now ();
      if (!natter_db_insert_messages (db, batch, NULL, &error))
        goto out;
      bulk_elapsed += natter_bench_now () - start;
    }

  /* Single inserts, one transaction each, on top of the filled database,
   * with the index batches the worker would run. */
  gen.spread = FALSE;
  gen.unread = unread_option;
  single = generate_messages (&gen, (guint) n_single);
  start = natter_bench_now ();
  for (guint i = 0; i < single->len; i++)
    {
      gboolean was_new;
      gint64 deadline;

      if (!natter_db_insert_message (db, g_ptr_array_index (single, i), &was_new, &error))
        goto out;
      deadline = natter_db_get_index_deadline (db);
      if (deadline != 0 && deadline <= g_get_monotonic_time ())
        {
          double flush_start = natter_bench_now ();

          if (!natter_db_flush_index (db, &error))
            goto out;
          flush_max = MAX (flush_max, natter_bench_now () - flush_start);
          flush_total += natter_bench_now () - flush_start;
          n_flushes++;
        }
    }
  {
    double flush_start = natter_bench_now ();

    if (!natter_db_flush_index (db, &error))
      goto out;
    flush_max = MAX (flush_max, natter_bench_now () - flush_start);
    flush_total += natter_bench_now () - flush_start;
    n_flushes++;
  }
  single_elapsed = natter_bench_now () - start;

  stored = natter_db_count_messages (db, 0, &error);
  if (stored < 0)
    goto out;

  if (!time_conversation_lists (db, &list_p50, &list_p99, &n_conversations, &n_unread, &error))
    goto out;

  /* Latest page of the conversation. */
  times = g_new (double, n_queries);
  for (int i = 0; i < n_queries; i++)
    {
      g_autoptr(GPtrArray) page = NULL;

      start = natter_bench_now ();
      page = natter_db_load_page (db, gen.conversation_id, 0, PAGE_SIZE, &error);
      times[i] = (natter_bench_now () - start) * 1000.0;
      if (page == NULL)
        goto out;
    }
  p50 = natter_bench_percentile (times, n_queries, 50);
  p99 = natter_bench_percentile (times, n_queries, 99);

  natter_bench_report_add (report, "messages", (double) stored, "Messages stored");
  natter_bench_report_add (report, "conversations", n_conversations, "Conversations");
  natter_bench_report_add (report, "unread_shown", (double) n_unread,
                           "Unread messages shown (each count capped)");
  natter_bench_report_add (report, "insert_per_s", n_single / single_elapsed,
                           "Single inserts/s (own transaction, FTS5 batches included)");
  natter_bench_report_add (report, "index_batches", n_flushes,
                           "FTS5 index batches run by the timed inserts");
  natter_bench_report_add (report, "index_batch_max_ms", flush_max * 1000.0,
                           "Slowest FTS5 index batch ms");
  natter_bench_report_add (report, "index_share", flush_total / single_elapsed,
                           "Share of the insert time spent in index batches");
  natter_bench_report_add (report, "insert_to_searchable_ms",
                           NATTER_DB_INDEX_DELAY_MS + flush_max * 1000.0,
                           "Worst delay until indexed without a search, ms (search: 0)");
  natter_bench_report_add (report, "conversations_list_ms", list_p50,
                           "Conversation list p50 ms");
  natter_bench_report_add (report, "conversations_list_p99_ms", list_p99,
                           "Conversation list p99 ms");
  natter_bench_report_add (report, "page_load_p50_ms", p50, "Latest page (50) p50 ms");
  natter_bench_report_add (report, "page_load_p99_ms", p99, "Latest page (50) p99 ms");

  /* Pages deep in history, as when scrolling back. */
  for (int i = 0; i < n_queries; i++)
    {
      g_autoptr(GPtrArray) page = NULL;
      gint64 before = g_rand_int_range (gen.rand, 2, (gint32) MIN (stored, G_MAXINT32 - 1) + 1);

      start = natter_bench_now ();
      page = natter_db_load_page (db, gen.conversation_id, before, PAGE_SIZE, &error);
      times[i] = (natter_bench_now () - start) * 1000.0;
      if (page == NULL)
        goto out;
    }
  natter_bench_report_add (report, "page_load_deep_p50_ms",
                           natter_bench_percentile (times, n_queries, 50),
                           "Page deep in history p50 ms");
  natter_bench_report_add (report, "page_load_deep_p99_ms",
                           natter_bench_percentile (times, n_queries, 99),
                           "Page deep in history p99 ms");

  if (!time_searches (db, &gen, TYPICAL_RANK_MIN, TYPICAL_RANK_MAX, n_queries,
                      &p50, &p99, &hits, &error) ||
      !time_searches (db, &gen, VOCABULARY_SIZE, VOCABULARY_SIZE + N_RARE_WORDS - 1, n_queries,
                      &rare_p50, &rare_p99, &rare_hits, &error))
    goto out;

  natter_bench_report_add (report, "search_p50_ms", p50, "Search, common word, p50 ms");
  natter_bench_report_add (report, "search_p99_ms", p99, "Search, common word, p99 ms");
  natter_bench_report_add (report, "search_hits", hits, "Search, common word, mean hits");
  natter_bench_report_add (report, "search_rare_p50_ms", rare_p50, "Search, rare word, p50 ms");
  natter_bench_report_add (report, "search_rare_p99_ms", rare_p99, "Search, rare word, p99 ms");
  natter_bench_report_add (report, "search_rare_hits", rare_hits, "Search, rare word, mean hits");

  /* The list again with all but a full batch waiting to be indexed: the
   * most the list has to read beyond the conversations' rows. */
  {
    g_autoptr(GPtrArray) pending = generate_messages (&gen, NATTER_DB_INDEX_BATCH - 1);

    for (guint i = 0; i < pending->len; i++)
      if (!natter_db_insert_message (db, g_ptr_array_index (pending, i), NULL, &error))
        goto out;
    if (!time_conversation_lists (db, &list_pending_p50, &list_pending_p99,
                                  &n_conversations, &n_unread, &error))
      goto out;
  }
  natter_bench_report_add (report, "conversations_list_pending_ms", list_pending_p50,
                           "Conversation list, a batch pending, p50 ms");
  natter_bench_report_add (report, "conversations_list_pending_p99_ms", list_pending_p99,
                           "Conversation list, a batch pending, p99 ms");

  {
    g_autoptr(NatterDb) closing = g_steal_pointer (&db);
  }

  baseline_elapsed = baseline_inserts (baseline_path, single, &error);
  if (baseline_elapsed < 0)
    goto out;

  elapsed = bulk_elapsed;
  natter_bench_report_add (report, "baseline_insert_per_s", n_single / baseline_elapsed,
                           "Baseline inserts/s (bare table, own transaction)");
  natter_bench_report_add (report, "insert_vs_baseline_ratio",
                           (n_single / single_elapsed) / (n_single / baseline_elapsed),
                           "Single insert rate / baseline rate");
  natter_bench_report_add (report, "bulk_insert_per_s", n_bulk > 0 ? n_bulk / elapsed : 0.0,
                           "Bulk fill inserts/s (20k per transaction)");
  natter_bench_report_print (report, json);
  status = 0;

out:
  if (error != NULL)
    g_printerr ("natter-bench store: %s\n", error->message);
  g_clear_pointer (&db, natter_db_close);
  generator_clear (&gen);
  remove_db_files (baseline_path);
  if (db_option == NULL)
    remove_db_files (db_path);
  g_rmdir (tmpdir);
  return status;
}
