/* test-migration.c: schema upgrades of the message store
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>

#include "store/natter-db.h"

/* The tables of schema version 1 and their columns, compared row by row
 * before and after the upgrade.  conversations.unread_count, which version
 * 2 drops and counts instead, is compared through the API. */
static const char * const v1_tables[] = {
  "SELECT peer_id, display_name, state, verified, added_at FROM contacts ORDER BY peer_id",
  "SELECT id, kind, peer_id, group_id, title, last_activity "
  "FROM conversations ORDER BY id",
  "SELECT id, msg_id, conversation_id, sender, direction, type, body, timestamp, "
  "sequence, state, relay_via, wire FROM messages ORDER BY id",
  "SELECT id, msg_id, recipient, wire, next_attempt, attempts, expires_at "
  "FROM outbox ORDER BY id",
};

typedef struct
{
  char *dir;
  char *path;
} Fixture;

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("natter-test-migration-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, "natter.db", NULL);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GDir) d = g_dir_open (f->dir, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *file = g_build_filename (f->dir, name, NULL);
      g_unlink (file);
    }
  g_rmdir (f->dir);
  g_free (f->dir);
  g_free (f->path);
}

static sqlite3 *
raw_open (const char *path)
{
  sqlite3 *db = NULL;

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  return db;
}

static int
raw_int (sqlite3    *db,
         const char *sql)
{
  sqlite3_stmt *stmt = NULL;
  int value;

  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  value = sqlite3_column_int (stmt, 0);
  sqlite3_finalize (stmt);
  return value;
}

static gint64
raw_int64 (sqlite3    *db,
           const char *sql)
{
  sqlite3_stmt *stmt = NULL;
  gint64 value;

  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  value = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);
  return value;
}

/* Every row of @sql as text, with the storage class of each value, so that
 * a value changing type (blob to text, integer to real) is caught too. */
static GPtrArray *
snapshot (sqlite3    *db,
          const char *sql)
{
  GPtrArray *rows = g_ptr_array_new_with_free_func (g_free);
  sqlite3_stmt *stmt = NULL;

  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  while (sqlite3_step (stmt) == SQLITE_ROW)
    {
      GString *row = g_string_new (NULL);

      for (int i = 0; i < sqlite3_column_count (stmt); i++)
        {
          int type = sqlite3_column_type (stmt, i);

          g_string_append_printf (row, "%d:", type);
          if (type == SQLITE_BLOB)
            {
              const guchar *blob = sqlite3_column_blob (stmt, i);
              int len = sqlite3_column_bytes (stmt, i);

              for (int j = 0; j < len; j++)
                g_string_append_printf (row, "%02x", blob[j]);
            }
          else if (type != SQLITE_NULL)
            g_string_append (row, (const char *) sqlite3_column_text (stmt, i));
          g_string_append_c (row, '|');
        }
      g_ptr_array_add (rows, g_string_free (row, FALSE));
    }
  sqlite3_finalize (stmt);
  return rows;
}

static void
load_fixture (const char *path,
              const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *sql = NULL;
  const char *fixture = g_test_get_filename (G_TEST_DIST, "fixtures", name, NULL);
  char *errmsg = NULL;
  sqlite3 *db;

  g_file_get_contents (fixture, &sql, NULL, &error);
  g_assert_no_error (error);
  db = raw_open (path);
  if (sqlite3_exec (db, sql, NULL, NULL, &errmsg) != SQLITE_OK)
    g_error ("Could not load %s: %s", name, errmsg);
  sqlite3_close (db);
}

static void
test_upgrade_v1 (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *before[G_N_ELEMENTS (v1_tables)];
  g_autoptr(GPtrArray) v1_summaries = NULL;
  g_autofree char *newest_body = NULL;
  gint64 new_activity;
  g_autoptr(NatterDb) ndb = NULL;
  g_autoptr(GPtrArray) hits = NULL;
  g_autoptr(GPtrArray) conversations = NULL;
  g_autoptr(GPtrArray) contacts = NULL;
  g_autoptr(GPtrArray) page = NULL;
  g_autoptr(GPtrArray) due = NULL;
  g_autoptr(NatterStoreMessage) inserted = NULL;
  int lantern;
  int in_first;
  sqlite3 *db;

  load_fixture (f->path, "schema-v1.sql");

  db = raw_open (f->path);
  g_assert_cmpint (raw_int (db, "PRAGMA user_version"), ==, 1);
  g_assert_cmpint (raw_int (db, "SELECT count(*) FROM messages"), ==, 50);
  g_assert_cmpint (raw_int (db, "SELECT count(*) FROM outbox"), >, 0);
  lantern = raw_int (db, "SELECT count(*) FROM messages WHERE body LIKE '%lantern%'");
  g_assert_cmpint (lantern, >, 1);
  in_first = raw_int (db, "SELECT count(*) FROM messages WHERE conversation_id = 1");
  for (guint i = 0; i < G_N_ELEMENTS (v1_tables); i++)
    before[i] = snapshot (db, v1_tables[i]);
  v1_summaries = snapshot (db, "SELECT id, last_activity, unread_count "
                               "FROM conversations ORDER BY id");
  g_assert_cmpuint (v1_summaries->len, ==, 3);
  new_activity = raw_int64 (db, "SELECT max (last_activity) FROM conversations") + 1000;
  {
    sqlite3_stmt *stmt = NULL;

    g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT body FROM messages WHERE conversation_id = 1 "
                                             "ORDER BY id DESC LIMIT 1", -1, &stmt, NULL), ==, SQLITE_OK);
    g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
    newest_body = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
    sqlite3_finalize (stmt);
  }
  sqlite3_close (db);

  ndb = natter_db_open (f->path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (ndb);
  g_assert_cmpint (natter_db_get_schema_version (ndb), ==, NATTER_DB_SCHEMA_VERSION);
  /* Nothing is left for a batch: the upgrade indexed every old row. */
  g_assert_cmpuint (natter_db_get_index_pending (ndb), ==, 0);

  /* Old messages are found by full-text search, newest first. */
  hits = natter_db_search (ndb, "lantern", 0, 100, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (hits->len, ==, (guint) lantern);
  for (guint i = 1; i < hits->len; i++)
    g_assert_cmpint (((NatterStoreMessage *) hits->pdata[i - 1])->id, >,
                     ((NatterStoreMessage *) hits->pdata[i])->id);
  g_clear_pointer (&hits, g_ptr_array_unref);
  hits = natter_db_search (ndb, "cafe pres", 0, 100, &error);
  g_assert_cmpuint (hits->len, ==, 1);
  g_clear_pointer (&hits, g_ptr_array_unref);
  hits = natter_db_search (ndb, "\"AND (\"", 0, 100, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (hits->len, >=, 1);

  /* The API reads the old rows. */
  conversations = natter_db_list_conversations (ndb, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (conversations->len, ==, 3);
  for (guint i = 1; i < conversations->len; i++)
    g_assert_cmpint (natter_conversation_get_last_activity (conversations->pdata[i - 1]), >=,
                     natter_conversation_get_last_activity (conversations->pdata[i]));
  /* Last activity as stored by version 1, and the unread count it kept is
   * the one now counted. */
  for (guint i = 0; i < v1_summaries->len; i++)
    {
      g_autoptr(NatterConversation) conversation =
        natter_db_get_conversation (ndb, (gint64) i + 1, &error);
      g_autofree char *summary = NULL;

      g_assert_no_error (error);
      summary = g_strdup_printf ("1:%" G_GINT64_FORMAT "|1:%" G_GINT64_FORMAT "|1:%u|",
                                 natter_conversation_get_id (conversation),
                                 natter_conversation_get_last_activity (conversation),
                                 natter_conversation_get_unread_count (conversation));
      g_assert_cmpstr (summary, ==, v1_summaries->pdata[i]);
    }
  {
    g_autoptr(NatterConversation) first = natter_db_get_conversation (ndb, 1, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (natter_conversation_get_preview (first), ==, newest_body);
  }
  contacts = natter_db_list_contacts (ndb, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (contacts->len, ==, 4);
  page = natter_db_load_page (ndb, 1, 0, 100, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (page->len, ==, (guint) in_first);
  due = natter_db_outbox_due (ndb, G_MAXINT64 - 1, 100, &error);
  g_assert_no_error (error);

  /* A new message is indexed by the triggers of version 2. */
  inserted = natter_store_message_new ();
  inserted->msg_id = g_strdup ("msg_after_upgrade");
  inserted->conversation_id = 1;
  inserted->sender = g_strdup ("peer-Me1Ab2Cd3Ef4Gh5Ij6Kl");
  inserted->direction = NATTER_STORE_DIRECTION_OUT;
  inserted->body = g_strdup ("one more lantern");
  inserted->timestamp = new_activity;
  inserted->state = NATTER_STORE_MESSAGE_QUEUED;
  g_assert_true (natter_db_insert_message (ndb, inserted, NULL, &error));
  g_assert_no_error (error);
  g_clear_pointer (&conversations, g_ptr_array_unref);
  conversations = natter_db_list_conversations (ndb, &error);
  g_assert_no_error (error);
  g_assert_cmpint (natter_conversation_get_id (conversations->pdata[0]), ==, 1);
  g_assert_cmpint (natter_conversation_get_last_activity (conversations->pdata[0]), ==, new_activity);
  g_assert_cmpstr (natter_conversation_get_preview (conversations->pdata[0]), ==, "one more lantern");
  g_clear_pointer (&hits, g_ptr_array_unref);
  hits = natter_db_search (ndb, "lantern", 0, 100, &error);
  g_assert_cmpuint (hits->len, ==, (guint) lantern + 1);
  g_assert_cmpstr (((NatterStoreMessage *) hits->pdata[0])->msg_id, ==, "msg_after_upgrade");
  g_clear_pointer (&ndb, natter_db_close);

  /* Every version-1 row is still there with the same values (except the
   * one conversation the new message touched, checked apart). */
  db = raw_open (f->path);
  g_assert_cmpint (raw_int (db, "PRAGMA user_version"), ==, NATTER_DB_SCHEMA_VERSION);
  g_assert_cmpint (raw_int (db, "SELECT count(*) FROM messages"), ==, 51);
  /* The upgrade indexed the old rows and set the mark; the new message
   * was indexed by the search (and close) after it. */
  g_assert_cmpint (raw_int (db, "SELECT indexed_to FROM messages_fts_progress"), ==,
                   raw_int (db, "SELECT max (id) FROM messages"));
  g_assert_cmpint (raw_int (db, "SELECT count(*) FROM sqlite_schema "
                                "WHERE name = 'conversations_activity'"), ==, 0);
  /* Version 4: groups keep their state, keys and log. */
  g_assert_cmpint (raw_int (db, "SELECT count(*) FROM sqlite_schema "
                                "WHERE name IN ('group_keys', 'group_messages')"), ==, 2);
  g_assert_cmpint (raw_int (db, "SELECT count(*) FROM pragma_table_info ('groups') "
                                "WHERE name = 'state'"), ==, 1);
  /* The batch folded the new message into its conversation's row. */
  g_assert_cmpint (raw_int64 (db, "SELECT last_activity FROM conversations WHERE id = 1"), ==,
                   new_activity);
  sqlite3_exec (db, "DELETE FROM messages WHERE msg_id = 'msg_after_upgrade'", NULL, NULL, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (v1_tables); i++)
    {
      g_autoptr(GPtrArray) after = snapshot (db, v1_tables[i]);

      if (g_str_has_prefix (v1_tables[i], "SELECT id, kind"))
        {
          /* Conversation 1 moved its last activity; the rest is equal. */
          g_assert_cmpuint (after->len, ==, before[i]->len);
          for (guint r = 1; r < after->len; r++)
            g_assert_cmpstr (after->pdata[r], ==, before[i]->pdata[r]);
        }
      else
        {
          g_assert_cmpuint (after->len, ==, before[i]->len);
          for (guint r = 0; r < after->len; r++)
            g_assert_cmpstr (after->pdata[r], ==, before[i]->pdata[r]);
        }
      g_ptr_array_unref (before[i]);
    }
  /* The index stays consistent with its content table. */
  g_assert_cmpint (sqlite3_exec (db, "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')",
                                 NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);
}

static void
test_too_new (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterDb) ndb = NULL;
  sqlite3 *db = raw_open (f->path);

  g_assert_cmpint (sqlite3_exec (db, "CREATE TABLE future (x); PRAGMA user_version = 99;",
                                 NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);

  ndb = natter_db_open (f->path, &error);
  g_assert_null (ndb);
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_TOO_NEW);
  g_assert_nonnull (strstr (error->message, "newer"));
  g_assert_nonnull (strstr (error->message, "99"));

  /* Refused, not downgraded or touched. */
  db = raw_open (f->path);
  g_assert_cmpint (raw_int (db, "PRAGMA user_version"), ==, 99);
  g_assert_cmpint (raw_int (db, "SELECT count(*) FROM sqlite_schema WHERE name = 'messages'"), ==, 0);
  sqlite3_close (db);
}

static void
test_not_a_database (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterDb) ndb = NULL;
  g_autofree char *junk = g_malloc (8192);
  GRand *rand = g_rand_new_with_seed (42);

  for (guint i = 0; i < 8192; i++)
    junk[i] = (char) g_rand_int_range (rand, 0, 256);
  g_rand_free (rand);
  g_assert_true (g_file_set_contents (f->path, junk, 8192, &error));

  ndb = natter_db_open (f->path, &error);
  g_assert_null (ndb);
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "not a database"));
}

static void
test_damaged_database (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterDb) ndb = NULL;
  g_autofree char *contents = NULL;
  gsize len;

  /* A real header followed by garbage pages. */
  load_fixture (f->path, "schema-v1.sql");
  g_file_get_contents (f->path, &contents, &len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (len, >, 4096);
  for (gsize i = 100; i < len; i++)
    contents[i] = (char) (i * 7919);
  g_assert_true (g_file_set_contents (f->path, contents, len, &error));

  ndb = natter_db_open (f->path, &error);
  g_assert_null (ndb);
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CORRUPT);
}

static void
test_unwritable (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterDb) ndb = NULL;
  g_autofree char *path = g_build_filename (f->dir, "missing-dir", "natter.db", NULL);

  ndb = natter_db_open (path, &error);
  g_assert_null (ndb);
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_IO);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/migration/upgrade-v1", Fixture, NULL, fixture_set_up, test_upgrade_v1, fixture_tear_down);
  g_test_add ("/migration/too-new", Fixture, NULL, fixture_set_up, test_too_new, fixture_tear_down);
  g_test_add ("/migration/not-a-database", Fixture, NULL, fixture_set_up, test_not_a_database, fixture_tear_down);
  g_test_add ("/migration/damaged", Fixture, NULL, fixture_set_up, test_damaged_database, fixture_tear_down);
  g_test_add ("/migration/unwritable", Fixture, NULL, fixture_set_up, test_unwritable, fixture_tear_down);

  return g_test_run ();
}
