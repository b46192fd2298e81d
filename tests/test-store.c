/* test-store.c: tests of the SQLite message store
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>

#include "store/natter-db.h"
#include "store/natter-store.h"

#define PEER_A "peer-4Fh7Kq2ZxW9mLp3RtYc8Vn"
#define PEER_B "peer-9Bn2Xc5VqL8kJd4HsGf7Tr"
#define ME     "peer-Me1Ab2Cd3Ef4Gh5Ij6Kl"

typedef struct
{
  char     *dir;
  char     *path;
  NatterDb *db;
} Fixture;

static void
remove_dir (const char *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *file = g_build_filename (dir, name, NULL);
      g_unlink (file);
    }
  g_rmdir (dir);
}

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("natter-test-store-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, "store.db", NULL);
  f->db = natter_db_open (f->path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->db);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  g_clear_pointer (&f->db, natter_db_close);
  remove_dir (f->dir);
  g_free (f->dir);
  g_free (f->path);
}

static NatterStoreMessage *
make_message (const char              *msg_id,
              gint64                   conversation_id,
              NatterStoreDirection     direction,
              const char              *body,
              gint64                   timestamp,
              NatterStoreMessageState  state)
{
  NatterStoreMessage *m = natter_store_message_new ();

  m->msg_id = g_strdup (msg_id);
  m->conversation_id = conversation_id;
  m->direction = direction;
  m->sender = g_strdup (direction == NATTER_STORE_DIRECTION_IN ? PEER_A : ME);
  m->type = g_strdup ("text");
  m->body = g_strdup (body);
  m->timestamp = timestamp;
  m->sequence = timestamp;
  m->state = state;
  m->wire = g_bytes_new (msg_id, strlen (msg_id));
  return m;
}

static gint64
insert (Fixture                 *f,
        const char              *msg_id,
        gint64                   conversation_id,
        NatterStoreDirection     direction,
        const char              *body,
        gint64                   timestamp,
        NatterStoreMessageState  state)
{
  g_autoptr(NatterStoreMessage) m = make_message (msg_id, conversation_id, direction,
                                                  body, timestamp, state);
  g_autoptr(GError) error = NULL;
  gboolean was_new = FALSE;

  natter_db_insert_message (f->db, m, &was_new, &error);
  g_assert_no_error (error);
  g_assert_true (was_new);
  g_assert_cmpint (m->id, >, 0);
  return m->id;
}

static gint64
direct_conversation (Fixture    *f,
                     const char *peer)
{
  g_autoptr(GError) error = NULL;
  gint64 id = natter_db_ensure_conversation (f->db, NATTER_CONVERSATION_DIRECT, peer, peer, &error);

  g_assert_no_error (error);
  g_assert_cmpint (id, >, 0);
  return id;
}

static guint
search_count (Fixture    *f,
              const char *query,
              gint64      conversation_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) hits = natter_db_search (f->db, query, conversation_id, 1000, &error);

  g_assert_no_error (error);
  g_assert_nonnull (hits);
  return hits->len;
}

static void
test_open_new (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (natter_db_get_schema_version (f->db), ==, NATTER_DB_SCHEMA_VERSION);

  /* Reopening an up-to-date database changes nothing. */
  g_clear_pointer (&f->db, natter_db_close);
  f->db = natter_db_open (f->path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (natter_db_get_schema_version (f->db), ==, NATTER_DB_SCHEMA_VERSION);
}

static void
test_idempotent_insert (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterStoreMessage) again = NULL;
  g_autoptr(NatterConversation) conv = NULL;
  gint64 c = direct_conversation (f, PEER_A);
  gint64 first;
  gboolean was_new = TRUE;

  first = insert (f, "msg_1", c, NATTER_STORE_DIRECTION_IN, "unique zebra words", 1000,
                  NATTER_STORE_MESSAGE_DELIVERED);

  again = make_message ("msg_1", c, NATTER_STORE_DIRECTION_IN, "unique zebra words", 1000,
                        NATTER_STORE_MESSAGE_DELIVERED);
  g_assert_true (natter_db_insert_message (f->db, again, &was_new, &error));
  g_assert_no_error (error);
  g_assert_false (was_new);
  /* The duplicate reports the stored row, so the caller can still ack. */
  g_assert_cmpint (again->id, ==, first);

  g_assert_cmpint (natter_db_count_messages (f->db, c, &error), ==, 1);
  g_assert_cmpuint (search_count (f, "zebra", 0), ==, 1);
  g_assert_cmpuint (search_count (f, "zebra", c), ==, 1);

  conv = natter_db_get_conversation (f->db, c, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (natter_conversation_get_unread_count (conv), ==, 1);

  /* A batch with duplicates inside and against the table. */
  {
    g_autoptr(GPtrArray) batch =
      g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_message_free);
    guint n_new = 0;

    g_ptr_array_add (batch, make_message ("msg_1", c, NATTER_STORE_DIRECTION_IN, "zebra", 1, 0));
    g_ptr_array_add (batch, make_message ("msg_2", c, NATTER_STORE_DIRECTION_OUT, "zebra two", 2, 0));
    g_ptr_array_add (batch, make_message ("msg_2", c, NATTER_STORE_DIRECTION_OUT, "zebra two", 2, 0));
    g_assert_true (natter_db_insert_messages (f->db, batch, &n_new, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (n_new, ==, 1);
    g_assert_cmpuint (search_count (f, "zebra", 0), ==, 2);
  }
}

static void
test_insert_errors (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterStoreMessage) orphan = NULL;
  g_autoptr(NatterStoreMessage) bad = NULL;
  gint64 c = direct_conversation (f, PEER_A);

  orphan = make_message ("orphan", 4242, NATTER_STORE_DIRECTION_IN, "x", 1, 0);
  g_assert_false (natter_db_insert_message (f->db, orphan, NULL, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CONSTRAINT);
  g_clear_error (&error);

  bad = make_message ("bad", c, NATTER_STORE_DIRECTION_IN, "x", 1, 0);
  g_free (bad->body);
  bad->body = g_strdup ("not \xff utf-8");
  g_assert_false (natter_db_insert_message (f->db, bad, NULL, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_INVALID);
  g_clear_error (&error);

  /* Nothing half-written, and the connection still works. */
  g_assert_cmpint (natter_db_count_messages (f->db, 0, &error), ==, 0);
  insert (f, "good", c, NATTER_STORE_DIRECTION_IN, "fine", 1, 0);
}

static void
test_paging (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  g_autoptr(GArray) expected = g_array_new (FALSE, FALSE, sizeof (gint64));
  gint64 a = direct_conversation (f, PEER_A);
  gint64 b = direct_conversation (f, PEER_B);
  gint64 before = 0;
  guint total = 0;
  guint pages = 0;

  for (guint i = 0; i < 237; i++)
    {
      g_autofree char *id = g_strdup_printf ("msg_a_%u", i);
      g_autofree char *other = g_strdup_printf ("msg_b_%u", i);
      gint64 row = insert (f, id, a, i % 3 ? NATTER_STORE_DIRECTION_IN : NATTER_STORE_DIRECTION_OUT,
                           "page test", 1000 + i, NATTER_STORE_MESSAGE_READ);

      g_array_append_val (expected, row);
      /* Interleave another conversation, which must not show up. */
      if (i % 2 == 0)
        insert (f, other, b, NATTER_STORE_DIRECTION_IN, "other", 1000 + i, NATTER_STORE_MESSAGE_READ);
    }

  for (;;)
    {
      g_autoptr(GPtrArray) page = natter_db_load_page (f->db, a, before, 50, &error);
      gint64 previous = G_MAXINT64;

      g_assert_no_error (error);
      g_assert_nonnull (page);
      if (page->len == 0)
        break;
      pages++;
      g_assert_cmpuint (page->len, <=, 50);
      for (guint i = 0; i < page->len; i++)
        {
          NatterStoreMessage *m = g_ptr_array_index (page, i);

          g_assert_cmpint (m->conversation_id, ==, a);
          g_assert_cmpint (m->id, <, previous);
          previous = m->id;
          g_assert_false (g_hash_table_contains (seen, &m->id));
          g_hash_table_add (seen, g_memdup2 (&m->id, sizeof m->id));
          /* Newest first: the i-th message overall is expected[len - 1 - i]. */
          g_assert_cmpint (m->id, ==, g_array_index (expected, gint64, expected->len - 1 - total));
          g_assert_null (m->wire);
          total++;
        }
      before = ((NatterStoreMessage *) g_ptr_array_index (page, page->len - 1))->id;
    }

  g_assert_cmpuint (total, ==, 237);
  g_assert_cmpuint (pages, ==, 5);
  g_assert_cmpint (natter_db_count_messages (f->db, a, &error), ==, 237);
  g_assert_cmpint (natter_db_count_messages (f->db, b, &error), ==, 119);
  g_assert_cmpint (natter_db_count_messages (f->db, 0, &error), ==, 356);
}

static void
test_state_forward (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterStoreMessage) m = NULL;
  g_autoptr(NatterConversation) conv = NULL;
  gint64 c = direct_conversation (f, PEER_A);
  gboolean changed;

  insert (f, "out1", c, NATTER_STORE_DIRECTION_OUT, "hello", 1, NATTER_STORE_MESSAGE_QUEUED);

#define EXPECT_STATE(id, to, expect_changed, expect_state)                         \
  G_STMT_START {                                                                   \
    g_autoptr(NatterStoreMessage) got = NULL;                                      \
    changed = !(expect_changed);                                                   \
    g_assert_true (natter_db_update_message_state (f->db, id, to, &changed, &error)); \
    g_assert_no_error (error);                                                     \
    g_assert_cmpint (changed, ==, expect_changed);                                 \
    got = natter_db_get_message (f->db, id, &error);                               \
    g_assert_no_error (error);                                                     \
    g_assert_cmpint (got->state, ==, expect_state);                                \
  } G_STMT_END

  EXPECT_STATE ("out1", NATTER_STORE_MESSAGE_SENT, TRUE, NATTER_STORE_MESSAGE_SENT);
  EXPECT_STATE ("out1", NATTER_STORE_MESSAGE_QUEUED, FALSE, NATTER_STORE_MESSAGE_SENT);
  EXPECT_STATE ("out1", NATTER_STORE_MESSAGE_SENT, FALSE, NATTER_STORE_MESSAGE_SENT);
  EXPECT_STATE ("out1", NATTER_STORE_MESSAGE_DELIVERED, TRUE, NATTER_STORE_MESSAGE_DELIVERED);
  EXPECT_STATE ("out1", NATTER_STORE_MESSAGE_FAILED, FALSE, NATTER_STORE_MESSAGE_DELIVERED);
  EXPECT_STATE ("out1", NATTER_STORE_MESSAGE_SENT, FALSE, NATTER_STORE_MESSAGE_DELIVERED);
  EXPECT_STATE ("out1", NATTER_STORE_MESSAGE_READ, TRUE, NATTER_STORE_MESSAGE_READ);
  EXPECT_STATE ("out1", NATTER_STORE_MESSAGE_DELIVERED, FALSE, NATTER_STORE_MESSAGE_READ);

  /* failed from queued, and from sent; a late signed ack still wins. */
  insert (f, "out2", c, NATTER_STORE_DIRECTION_OUT, "hello", 2, NATTER_STORE_MESSAGE_QUEUED);
  EXPECT_STATE ("out2", NATTER_STORE_MESSAGE_FAILED, TRUE, NATTER_STORE_MESSAGE_FAILED);
  EXPECT_STATE ("out2", NATTER_STORE_MESSAGE_SENT, FALSE, NATTER_STORE_MESSAGE_FAILED);
  EXPECT_STATE ("out2", NATTER_STORE_MESSAGE_QUEUED, FALSE, NATTER_STORE_MESSAGE_FAILED);
  EXPECT_STATE ("out2", NATTER_STORE_MESSAGE_DELIVERED, TRUE, NATTER_STORE_MESSAGE_DELIVERED);
  insert (f, "out3", c, NATTER_STORE_DIRECTION_OUT, "hello", 3, NATTER_STORE_MESSAGE_SENT);
  EXPECT_STATE ("out3", NATTER_STORE_MESSAGE_FAILED, TRUE, NATTER_STORE_MESSAGE_FAILED);

  /* An incoming message read leaves the unread count. */
  insert (f, "in1", c, NATTER_STORE_DIRECTION_IN, "hi", 4, NATTER_STORE_MESSAGE_DELIVERED);
  insert (f, "in2", c, NATTER_STORE_DIRECTION_IN, "hi", 5, NATTER_STORE_MESSAGE_DELIVERED);
  conv = natter_db_get_conversation (f->db, c, &error);
  g_assert_cmpuint (natter_conversation_get_unread_count (conv), ==, 2);
  g_clear_object (&conv);
  EXPECT_STATE ("in1", NATTER_STORE_MESSAGE_READ, TRUE, NATTER_STORE_MESSAGE_READ);
  EXPECT_STATE ("in1", NATTER_STORE_MESSAGE_READ, FALSE, NATTER_STORE_MESSAGE_READ);
  conv = natter_db_get_conversation (f->db, c, &error);
  g_assert_cmpuint (natter_conversation_get_unread_count (conv), ==, 1);

#undef EXPECT_STATE

  g_assert_false (natter_db_update_message_state (f->db, "nope", NATTER_STORE_MESSAGE_READ,
                                                  NULL, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_false (natter_db_update_message_state (f->db, "out1", 99, NULL, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_INVALID);
  g_clear_error (&error);

  m = natter_db_get_message (f->db, "out1", &error);
  g_assert_no_error (error);
  g_assert_nonnull (m->wire);
  g_assert_cmpmem (g_bytes_get_data (m->wire, NULL), g_bytes_get_size (m->wire), "out1", 4);

  g_assert_true (natter_store_message_state_can_advance (NATTER_STORE_MESSAGE_QUEUED,
                                                         NATTER_STORE_MESSAGE_FAILED));
  g_assert_false (natter_store_message_state_can_advance (NATTER_STORE_MESSAGE_DELIVERED,
                                                          NATTER_STORE_MESSAGE_FAILED));
}

static void
test_search (Fixture       *f,
             gconstpointer  data)
{
  static const char * const hostile[] = {
    "\"", "\"\"", "\"unterminated", "a\"b", "AND (", "AND(", "AND", "OR", "NOT",
    "*", "* *", "**", "NEAR(", "NEAR(a b, 2)", "body:secret", "{body}: x", "-x",
    "^start", "(", ")", "'", "';DROP TABLE messages;--", "%", "_", "\\", ":",
    "+", "a + b", "x OR", "NOT NOT", "\t\n ", "", "日本語", "🎉", "é", "\xff\xfe bad",
    "a\"*", "\"*\"", "abc*", "ça*", "a b c d e f g h i j k l m n o p q r s t",
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) hits = NULL;
  gint64 a = direct_conversation (f, PEER_A);
  gint64 b = direct_conversation (f, PEER_B);
  gint64 r1, r3;

  r1 = insert (f, "m1", a, NATTER_STORE_DIRECTION_IN, "Meet at the café near the bridge", 1, 0);
  insert (f, "m2", b, NATTER_STORE_DIRECTION_IN, "the bridge AND (tunnel) \"quoted\" words", 2, 0);
  r3 = insert (f, "m3", a, NATTER_STORE_DIRECTION_OUT, "Bridge closed; take the 日本語 route 🎉", 3, 0);
  insert (f, "m4", b, NATTER_STORE_DIRECTION_OUT, "NEAR the station, don't be late", 4, 0);

  for (guint i = 0; i < G_N_ELEMENTS (hostile); i++)
    {
      g_autoptr(GPtrArray) result = natter_db_search (f->db, hostile[i], 0, 50, &error);

      g_assert_no_error (error);
      g_assert_nonnull (result);
      g_clear_pointer (&result, g_ptr_array_unref);
      result = natter_db_search (f->db, hostile[i], a, 50, &error);
      g_assert_no_error (error);
      g_assert_nonnull (result);
    }

  /* Newest first, all conversations or one. */
  hits = natter_db_search (f->db, "bridge", 0, 50, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (hits->len, ==, 3);
  g_assert_cmpstr (((NatterStoreMessage *) hits->pdata[0])->msg_id, ==, "m3");
  g_assert_cmpstr (((NatterStoreMessage *) hits->pdata[1])->msg_id, ==, "m2");
  g_assert_cmpstr (((NatterStoreMessage *) hits->pdata[2])->msg_id, ==, "m1");
  g_clear_pointer (&hits, g_ptr_array_unref);

  hits = natter_db_search (f->db, "bridge", a, 50, &error);
  g_assert_cmpuint (hits->len, ==, 2);
  g_assert_cmpint (((NatterStoreMessage *) hits->pdata[0])->id, ==, r3);
  g_assert_cmpint (((NatterStoreMessage *) hits->pdata[1])->id, ==, r1);
  g_clear_pointer (&hits, g_ptr_array_unref);

  hits = natter_db_search (f->db, "bridge", 0, 1, &error);
  g_assert_cmpuint (hits->len, ==, 1);
  g_assert_cmpstr (((NatterStoreMessage *) hits->pdata[0])->msg_id, ==, "m3");

  /* Operators are words, terms are ANDed, diacritics fold, prefixes work. */
  g_assert_cmpuint (search_count (f, "AND (", 0), ==, 1);
  g_assert_cmpuint (search_count (f, "near", 0), ==, 2);
  g_assert_cmpuint (search_count (f, "NEAR(", 0), ==, 2);
  g_assert_cmpuint (search_count (f, "bridge tunnel", 0), ==, 1);
  g_assert_cmpuint (search_count (f, "cafe", 0), ==, 1);
  g_assert_cmpuint (search_count (f, "CAFÉ", 0), ==, 1);
  g_assert_cmpuint (search_count (f, "brid*", 0), ==, 3);
  g_assert_cmpuint (search_count (f, "\"quoted\"", 0), ==, 1);
  g_assert_cmpuint (search_count (f, "don't", 0), ==, 1);
  g_assert_cmpuint (search_count (f, "日本語", 0), ==, 1);
  g_assert_cmpuint (search_count (f, "*", 0), ==, 0);
  g_assert_cmpuint (search_count (f, "", 0), ==, 0);
  g_assert_cmpuint (search_count (f, "absent", 0), ==, 0);

  {
    g_autofree char *q = natter_db_build_match_query ("a\"b AND( x*");
    g_assert_cmpstr (q, ==, "\"a\"\"b\" \"AND(\" \"x\"*");
  }
}

static void
test_conversations (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GPtrArray) read = NULL;
  gint64 a = direct_conversation (f, PEER_A);
  gint64 b = direct_conversation (f, PEER_B);
  gint64 g;

  g_assert_cmpint (a, !=, b);
  g_assert_cmpint (direct_conversation (f, PEER_A), ==, a);
  g = natter_db_ensure_conversation (f->db, NATTER_CONVERSATION_GROUP, "group-1", "Hike", &error);
  g_assert_no_error (error);
  g_assert_cmpint (natter_db_ensure_conversation (f->db, NATTER_CONVERSATION_GROUP, "group-1",
                                                  NULL, &error), ==, g);

  insert (f, "a1", a, NATTER_STORE_DIRECTION_IN, "x", 100, NATTER_STORE_MESSAGE_DELIVERED);
  insert (f, "b1", b, NATTER_STORE_DIRECTION_IN, "x", 300, NATTER_STORE_MESSAGE_DELIVERED);
  insert (f, "g1", g, NATTER_STORE_DIRECTION_OUT, "x", 200, NATTER_STORE_MESSAGE_SENT);
  insert (f, "a2", a, NATTER_STORE_DIRECTION_IN, "x", 400, NATTER_STORE_MESSAGE_DELIVERED);
  insert (f, "a3", a, NATTER_STORE_DIRECTION_IN, "x", 50, NATTER_STORE_MESSAGE_READ);
  /* A message with an old timestamp (delayed by a relay) does not move
   * the conversation back in time. */

  list = natter_db_list_conversations (f->db, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 3);
  g_assert_cmpint (natter_conversation_get_id (list->pdata[0]), ==, a);
  g_assert_cmpint (natter_conversation_get_last_activity (list->pdata[0]), ==, 400);
  g_assert_cmpuint (natter_conversation_get_unread_count (list->pdata[0]), ==, 2);
  g_assert_cmpstr (natter_conversation_get_peer_id (list->pdata[0]), ==, PEER_A);
  g_assert_null (natter_conversation_get_group_id (list->pdata[0]));
  g_assert_cmpint (natter_conversation_get_id (list->pdata[1]), ==, b);
  g_assert_cmpint (natter_conversation_get_id (list->pdata[2]), ==, g);
  g_assert_cmpint (natter_conversation_get_kind (list->pdata[2]), ==, NATTER_CONVERSATION_GROUP);
  g_assert_cmpstr (natter_conversation_get_group_id (list->pdata[2]), ==, "group-1");
  g_assert_cmpuint (natter_conversation_get_unread_count (list->pdata[2]), ==, 0);
  g_clear_pointer (&list, g_ptr_array_unref);

  read = natter_db_mark_conversation_read (f->db, a, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (read->len, ==, 2);
  g_assert_true (g_ptr_array_find_with_equal_func (read, "a1", g_str_equal, NULL));
  g_assert_true (g_ptr_array_find_with_equal_func (read, "a2", g_str_equal, NULL));
  g_clear_pointer (&read, g_ptr_array_unref);
  read = natter_db_mark_conversation_read (f->db, a, &error);
  g_assert_cmpuint (read->len, ==, 0);

  list = natter_db_list_conversations (f->db, &error);
  g_assert_cmpuint (natter_conversation_get_unread_count (list->pdata[0]), ==, 0);
  g_assert_cmpuint (natter_conversation_get_unread_count (list->pdata[1]), ==, 1);

  g_clear_pointer (&read, g_ptr_array_unref);
  read = natter_db_mark_conversation_read (f->db, 999, &error);
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND);
  g_assert_null (read);
  g_clear_error (&error);

  g_assert_null (natter_db_get_conversation (f->db, 999, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND);
}

static void
test_contacts (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterContact) alice = natter_contact_new (PEER_A, "Alice", NATTER_CONTACT_PENDING, FALSE, 10);
  g_autoptr(NatterContact) bob = natter_contact_new (PEER_B, "bob", NATTER_CONTACT_ACCEPTED, TRUE, 20);
  g_autoptr(NatterContact) got = NULL;
  g_autoptr(GPtrArray) list = NULL;

  g_assert_true (natter_db_upsert_contact (f->db, bob, &error));
  g_assert_true (natter_db_upsert_contact (f->db, alice, &error));
  g_assert_no_error (error);

  natter_contact_set_display_name (alice, "Alice M.");
  g_assert_true (natter_db_upsert_contact (f->db, alice, &error));
  g_assert_true (natter_db_set_contact_state (f->db, PEER_A, NATTER_CONTACT_ACCEPTED, &error));
  g_assert_no_error (error);

  got = natter_db_get_contact (f->db, PEER_A, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (natter_contact_get_display_name (got), ==, "Alice M.");
  g_assert_cmpint (natter_contact_get_state (got), ==, NATTER_CONTACT_ACCEPTED);
  g_assert_false (natter_contact_get_verified (got));
  g_assert_cmpint (natter_contact_get_added_at (got), ==, 10);

  list = natter_db_list_contacts (f->db, &error);
  g_assert_cmpuint (list->len, ==, 2);
  g_assert_cmpstr (natter_contact_get_peer_id (list->pdata[0]), ==, PEER_A);
  g_assert_true (natter_contact_get_verified (list->pdata[1]));

  g_assert_false (natter_db_set_contact_state (f->db, "nobody", NATTER_CONTACT_BLOCKED, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (natter_db_get_contact (f->db, "nobody", &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND);
}

static NatterStoreOutboxEntry *
outbox_entry (const char *msg_id,
              const char *recipient,
              gint64      next_attempt,
              gint64      expires_at)
{
  NatterStoreOutboxEntry *e = natter_store_outbox_entry_new ();

  e->msg_id = g_strdup (msg_id);
  e->recipient = g_strdup (recipient);
  e->wire = g_bytes_new_static ("{\"wire\":1}", 10);
  e->next_attempt = next_attempt;
  e->expires_at = expires_at;
  return e;
}

static void
test_outbox (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) due = NULL;
  g_autoptr(GPtrArray) expired = NULL;
  NatterStoreOutboxEntry *e;

  e = outbox_entry ("m1", PEER_A, 100, 10000);
  g_assert_true (natter_db_outbox_add (f->db, e, &error));
  natter_store_outbox_entry_free (e);
  e = outbox_entry ("m1", PEER_B, 50, 10000);
  g_assert_true (natter_db_outbox_add (f->db, e, &error));
  natter_store_outbox_entry_free (e);
  e = outbox_entry ("m2", PEER_A, 500, 10000);
  g_assert_true (natter_db_outbox_add (f->db, e, &error));
  natter_store_outbox_entry_free (e);
  e = outbox_entry ("old", PEER_A, 10, 150);
  g_assert_true (natter_db_outbox_add (f->db, e, &error));
  natter_store_outbox_entry_free (e);
  g_assert_no_error (error);

  due = natter_db_outbox_due (f->db, 200, 10, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (due->len, ==, 2);
  e = due->pdata[0];
  g_assert_cmpstr (e->msg_id, ==, "m1");
  g_assert_cmpstr (e->recipient, ==, PEER_B);
  g_assert_cmpmem (g_bytes_get_data (e->wire, NULL), g_bytes_get_size (e->wire), "{\"wire\":1}", 10);
  g_clear_pointer (&due, g_ptr_array_unref);

  g_assert_true (natter_db_outbox_reschedule (f->db, "m1", PEER_B, 1000, &error));
  g_assert_false (natter_db_outbox_reschedule (f->db, "m9", PEER_B, 1000, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  due = natter_db_outbox_due (f->db, 2000, 1, &error);
  g_assert_cmpuint (due->len, ==, 1);
  g_assert_cmpstr (((NatterStoreOutboxEntry *) due->pdata[0])->msg_id, ==, "m1");
  g_assert_cmpstr (((NatterStoreOutboxEntry *) due->pdata[0])->recipient, ==, PEER_A);
  g_clear_pointer (&due, g_ptr_array_unref);

  due = natter_db_outbox_due (f->db, 2000, 10, &error);
  g_assert_cmpuint (due->len, ==, 3);
  g_assert_cmpuint (((NatterStoreOutboxEntry *) due->pdata[2])->attempts, ==, 1);
  g_clear_pointer (&due, g_ptr_array_unref);

  expired = natter_db_outbox_take_expired (f->db, 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (expired->len, ==, 1);
  g_assert_cmpstr (((NatterStoreOutboxEntry *) expired->pdata[0])->msg_id, ==, "old");
  g_clear_pointer (&expired, g_ptr_array_unref);
  expired = natter_db_outbox_take_expired (f->db, 2000, &error);
  g_assert_cmpuint (expired->len, ==, 0);

  /* An ack for one recipient, then for all of them; twice is harmless. */
  g_assert_true (natter_db_outbox_remove (f->db, "m1", PEER_A, &error));
  due = natter_db_outbox_due (f->db, 2000, 10, &error);
  g_assert_cmpuint (due->len, ==, 2);
  g_clear_pointer (&due, g_ptr_array_unref);
  g_assert_true (natter_db_outbox_remove (f->db, "m1", NULL, &error));
  g_assert_true (natter_db_outbox_remove (f->db, "m1", NULL, &error));
  due = natter_db_outbox_due (f->db, 2000, 10, &error);
  g_assert_cmpuint (due->len, ==, 1);
  g_assert_cmpstr (((NatterStoreOutboxEntry *) due->pdata[0])->msg_id, ==, "m2");
  g_assert_no_error (error);

  /* Validation. */
  e = outbox_entry ("m3", PEER_A, 1, 2);
  g_clear_pointer (&e->wire, g_bytes_unref);
  g_assert_false (natter_db_outbox_add (f->db, e, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_INVALID);
  natter_store_outbox_entry_free (e);
}

static void
relay_add (Fixture    *f,
           const char *msg_id,
           const char *recipient,
           gsize       size,
           gint64      received_at,
           gint64      expires_at,
           gboolean    expect_new)
{
  g_autoptr(NatterStoreRelayEntry) e = natter_store_relay_entry_new ();
  g_autoptr(GError) error = NULL;
  gboolean was_new = !expect_new;

  e->msg_id = g_strdup (msg_id);
  e->recipient = g_strdup (recipient);
  e->sender = g_strdup (ME);
  e->wire = g_bytes_new_take (g_malloc0 (size), size);
  e->received_at = received_at;
  e->expires_at = expires_at;
  e->size = 1;   /* ignored: the store measures the wire itself */
  g_assert_true (natter_db_relay_add (f->db, e, &was_new, &error));
  g_assert_no_error (error);
  g_assert_cmpint (was_new, ==, expect_new);
}

static void
test_relay (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) taken = NULL;

  relay_add (f, "r1", PEER_A, 1000, 30, 10000, TRUE);
  relay_add (f, "r2", PEER_A, 2000, 10, 10000, TRUE);
  relay_add (f, "r3", PEER_A, 500, 20, 100, TRUE);
  relay_add (f, "r1", PEER_A, 1000, 30, 10000, FALSE);
  relay_add (f, "r1", PEER_B, 700, 30, 10000, TRUE);
  relay_add (f, "empty", PEER_B, 0, 40, 10000, TRUE);

  g_assert_cmpint (natter_db_relay_bytes_for_recipient (f->db, PEER_A, &error), ==, 3500);
  g_assert_cmpint (natter_db_relay_bytes_for_recipient (f->db, PEER_B, &error), ==, 700);
  g_assert_cmpint (natter_db_relay_bytes_for_recipient (f->db, "nobody", &error), ==, 0);
  g_assert_cmpint (natter_db_relay_count_for_recipient (f->db, PEER_A, &error), ==, 3);
  g_assert_no_error (error);

  /* Expired entries are not handed over; the rest oldest first. */
  taken = natter_db_relay_take_for_recipient (f->db, PEER_A, 500, 100, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (taken->len, ==, 2);
  g_assert_cmpstr (((NatterStoreRelayEntry *) taken->pdata[0])->msg_id, ==, "r2");
  g_assert_cmpint (((NatterStoreRelayEntry *) taken->pdata[0])->size, ==, 2000);
  g_assert_cmpstr (((NatterStoreRelayEntry *) taken->pdata[1])->msg_id, ==, "r1");
  g_assert_cmpstr (((NatterStoreRelayEntry *) taken->pdata[1])->sender, ==, ME);
  g_clear_pointer (&taken, g_ptr_array_unref);

  g_assert_cmpint (natter_db_relay_bytes_for_recipient (f->db, PEER_A, &error), ==, 500);
  g_assert_cmpint (natter_db_relay_delete_expired (f->db, 500, &error), ==, 1);
  g_assert_cmpint (natter_db_relay_count_for_recipient (f->db, PEER_A, &error), ==, 0);
  g_assert_cmpint (natter_db_relay_delete_expired (f->db, 500, &error), ==, 0);

  /* Limit, and a removal by ack. */
  taken = natter_db_relay_take_for_recipient (f->db, PEER_B, 500, 1, &error);
  g_assert_cmpuint (taken->len, ==, 1);
  g_assert_cmpstr (((NatterStoreRelayEntry *) taken->pdata[0])->msg_id, ==, "r1");
  g_assert_true (natter_db_relay_remove (f->db, "empty", PEER_B, &error));
  g_assert_cmpint (natter_db_relay_count_for_recipient (f->db, PEER_B, &error), ==, 0);
  g_assert_no_error (error);
}

static void
test_receipts (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  NatterStoreReceipt *r;

  g_assert_true (natter_db_receipt_add (f->db, "m1", PEER_A, NATTER_STORE_RECEIPT_DELIVERED, 50, &error));
  g_assert_true (natter_db_receipt_add (f->db, "m1", PEER_A, NATTER_STORE_RECEIPT_DELIVERED, 40, &error));
  g_assert_true (natter_db_receipt_add (f->db, "m1", PEER_A, NATTER_STORE_RECEIPT_DELIVERED, 60, &error));
  g_assert_true (natter_db_receipt_add (f->db, "m1", PEER_B, NATTER_STORE_RECEIPT_READ, 70, &error));
  g_assert_true (natter_db_receipt_add (f->db, "m2", PEER_B, NATTER_STORE_RECEIPT_READ, 70, &error));
  g_assert_no_error (error);

  list = natter_db_list_receipts (f->db, "m1", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  r = list->pdata[0];
  g_assert_cmpstr (r->peer_id, ==, PEER_A);
  g_assert_cmpint (r->kind, ==, NATTER_STORE_RECEIPT_DELIVERED);
  g_assert_cmpint (r->at, ==, 40);
  r = list->pdata[1];
  g_assert_cmpint (r->kind, ==, NATTER_STORE_RECEIPT_READ);
}

static NatterStoreGroupMessage *
group_message (const char *author,
               gint64      counter,
               const char *body)
{
  NatterStoreGroupMessage *message = g_new0 (NatterStoreGroupMessage, 1);

  message->author = g_strdup (author);
  message->counter = counter;
  message->msg_id = g_strdup_printf ("msg_%s_%" G_GINT64_FORMAT, body, counter);
  message->kind = g_strdup ("text");
  message->body = g_strdup (body);
  message->clock_sum = counter;
  message->wire = g_bytes_new (body, strlen (body));
  return message;
}

/* A group with its state, members, keys and log is saved in one
 * transaction and read back; saving again adds, never duplicates. */
static void
test_group_records (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterStoreGroupRecord) record = natter_store_group_record_new ();
  g_autoptr(GPtrArray) loaded = NULL;
  NatterStoreGroupRecord *got;
  NatterStoreGroupMember *member = g_new0 (NatterStoreGroupMember, 1);
  guint8 key[32] = { 7 };
  sqlite3 *raw = NULL;

  record->group->id = g_strdup ("grp_1");
  record->group->name = g_strdup ("Hike");
  record->group->created_by = g_strdup (ME);
  record->group->created_at = 5;
  record->group->state = g_strdup ("{\"admin\":\"x\"}");
  member->peer_id = g_strdup (ME);
  member->role = NATTER_STORE_GROUP_ROLE_ADMIN;
  member->joined_at = 5;
  g_ptr_array_add (record->members, member);
  g_hash_table_insert (record->keys, g_strdup ("key_1"), g_bytes_new (key, sizeof key));
  g_ptr_array_add (record->messages, group_message (PEER_A, 2, "two"));
  g_ptr_array_add (record->messages, group_message (PEER_A, 1, "one"));
  g_assert_true (natter_db_group_save (f->db, record, &error));
  g_assert_no_error (error);

  /* Later: only new messages, the members left as they are. */
  g_clear_pointer (&record->members, g_ptr_array_unref);
  g_ptr_array_set_size (record->messages, 0);
  g_ptr_array_add (record->messages, group_message (PEER_A, 2, "two"));
  g_ptr_array_add (record->messages, group_message (ME, 1, "mine"));
  g_free (record->group->state);
  record->group->state = g_strdup ("{\"admin\":\"y\"}");
  g_assert_true (natter_db_group_save (f->db, record, &error));
  g_assert_no_error (error);

  loaded = natter_db_group_load_all (f->db, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (loaded->len, ==, 1);
  got = loaded->pdata[0];
  g_assert_cmpstr (got->group->name, ==, "Hike");
  g_assert_cmpstr (got->group->state, ==, "{\"admin\":\"y\"}");
  g_assert_cmpuint (got->members->len, ==, 1);
  g_assert_cmpstr (((NatterStoreGroupMember *) got->members->pdata[0])->peer_id, ==, ME);
  g_assert_cmpuint (g_hash_table_size (got->keys), ==, 1);
  g_assert_cmpuint (g_bytes_get_size (g_hash_table_lookup (got->keys, "key_1")), ==, 32);
  g_assert_cmpuint (got->messages->len, ==, 3);
  /* By author, then counter. */
  for (guint i = 0; i < got->messages->len; i++)
    {
      NatterStoreGroupMessage *m = got->messages->pdata[i];
      NatterStoreGroupMessage *e = i == 2 ? NULL : got->messages->pdata[i + 1];

      g_assert_nonnull (m->wire);
      if (e != NULL)
        g_assert_true (strcmp (m->author, e->author) < 0 ||
                       (strcmp (m->author, e->author) == 0 && m->counter < e->counter));
    }

  /* A key of the wrong size is refused, and nothing of that save stays. */
  g_ptr_array_set_size (record->messages, 0);
  g_ptr_array_add (record->messages, group_message (ME, 2, "lost"));
  g_hash_table_insert (record->keys, g_strdup ("key_2"), g_bytes_new (key, 16));
  g_assert_false (natter_db_group_save (f->db, record, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_INVALID);
  g_clear_error (&error);
  g_clear_pointer (&loaded, g_ptr_array_unref);
  loaded = natter_db_group_load_all (f->db, &error);
  g_assert_cmpuint (((NatterStoreGroupRecord *) loaded->pdata[0])->messages->len, ==, 3);

  /* A damaged key on disk is reported, not loaded.  (The connection
   * locks the file while it is open.) */
  g_clear_pointer (&f->db, natter_db_close);
  g_assert_cmpint (sqlite3_open (f->path, &raw), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (raw,
                                 "PRAGMA ignore_check_constraints = ON;"
                                 "UPDATE group_keys SET key = x'00';", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (raw);
  f->db = natter_db_open (f->path, &error);
  g_assert_no_error (error);
  g_clear_pointer (&loaded, g_ptr_array_unref);
  loaded = natter_db_group_load_all (f->db, &error);
  g_assert_null (loaded);
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CORRUPT);
}

static void
test_groups_transfers (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterStoreGroup) group = natter_store_group_new ();
  g_autoptr(NatterStoreGroup) got = NULL;
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(NatterStoreTransfer) t = natter_store_transfer_new ();
  g_autoptr(NatterStoreTransfer) got_t = NULL;
  g_autoptr(GPtrArray) unfinished = NULL;
  gint64 c;

  group->id = g_strdup ("group-1");
  group->name = g_strdup ("Hike");
  group->created_by = g_strdup (ME);
  group->created_at = 5;
  group->key_epoch = 3;
  g_assert_true (natter_db_group_upsert (f->db, group, &error));
  group->key_epoch = 1;   /* a stale update must not roll the key back */
  g_assert_true (natter_db_group_upsert (f->db, group, &error));
  got = natter_db_group_get (f->db, "group-1", &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->key_epoch, ==, 3);
  g_assert_cmpstr (got->created_by, ==, ME);

  g_assert_true (natter_db_group_member_add (f->db, "group-1", ME, NATTER_STORE_GROUP_ROLE_ADMIN, 5, &error));
  g_assert_true (natter_db_group_member_add (f->db, "group-1", PEER_A, NATTER_STORE_GROUP_ROLE_MEMBER, 6, &error));
  g_assert_true (natter_db_group_member_add (f->db, "group-1", PEER_B, NATTER_STORE_GROUP_ROLE_MEMBER, 7, &error));
  g_assert_true (natter_db_group_member_remove (f->db, "group-1", PEER_A, &error));
  g_assert_no_error (error);
  members = natter_db_group_list_members (f->db, "group-1", &error);
  g_assert_cmpuint (members->len, ==, 2);
  g_assert_cmpint (((NatterStoreGroupMember *) members->pdata[0])->role, ==, NATTER_STORE_GROUP_ROLE_ADMIN);
  g_assert_cmpstr (((NatterStoreGroupMember *) members->pdata[1])->peer_id, ==, PEER_B);

  g_assert_false (natter_db_group_member_add (f->db, "no-group", PEER_A, 0, 1, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CONSTRAINT);
  g_clear_error (&error);
  g_assert_null (natter_db_group_get (f->db, "no-group", &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  c = direct_conversation (f, PEER_A);
  t->id = g_strdup ("xfer-1");
  t->conversation_id = c;
  t->msg_id = g_strdup ("m-offer");
  t->peer_id = g_strdup (PEER_A);
  t->direction = NATTER_STORE_DIRECTION_IN;
  t->name = g_strdup ("photo.jpg");
  t->size = 1000;
  t->hash = g_strdup ("abcdef");
  t->state = NATTER_STORE_TRANSFER_OFFERED;
  t->created_at = t->updated_at = 10;
  g_assert_true (natter_db_transfer_upsert (f->db, t, &error));
  g_assert_true (natter_db_transfer_update_progress (f->db, "xfer-1", 400,
                                                     NATTER_STORE_TRANSFER_ACTIVE, 20, &error));
  g_assert_no_error (error);
  got_t = natter_db_transfer_get (f->db, "xfer-1", &error);
  g_assert_no_error (error);
  g_assert_cmpint (got_t->offset, ==, 400);
  g_assert_cmpint (got_t->state, ==, NATTER_STORE_TRANSFER_ACTIVE);
  g_assert_cmpint (got_t->updated_at, ==, 20);
  g_assert_cmpstr (got_t->name, ==, "photo.jpg");

  g_assert_false (natter_db_transfer_update_progress (f->db, "xfer-1", 2000,
                                                      NATTER_STORE_TRANSFER_ACTIVE, 30, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CONSTRAINT);
  g_clear_error (&error);
  g_assert_false (natter_db_transfer_update_progress (f->db, "nope", 1,
                                                      NATTER_STORE_TRANSFER_ACTIVE, 30, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  unfinished = natter_db_transfer_list_unfinished (f->db, &error);
  g_assert_cmpuint (unfinished->len, ==, 1);
  g_clear_pointer (&unfinished, g_ptr_array_unref);
  g_assert_true (natter_db_transfer_update_progress (f->db, "xfer-1", 1000,
                                                     NATTER_STORE_TRANSFER_COMPLETE, 40, &error));
  unfinished = natter_db_transfer_list_unfinished (f->db, &error);
  g_assert_cmpuint (unfinished->len, ==, 0);
  g_assert_no_error (error);
}

/* Values read from disk are validated: a row edited behind our back gives
 * an error, never a crash or an out-of-range enum. */
static void
test_untrusted_rows (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) page = NULL;
  g_autoptr(GPtrArray) list = NULL;
  gint64 c = direct_conversation (f, PEER_A);
  sqlite3 *raw = NULL;

  insert (f, "m1", c, NATTER_STORE_DIRECTION_IN, "hello", 1, 0);
  /* The connection locks the file for as long as it is open. */
  g_clear_pointer (&f->db, natter_db_close);
  g_assert_cmpint (sqlite3_open (f->path, &raw), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (raw,
                                 "PRAGMA ignore_check_constraints = ON;"
                                 "UPDATE messages SET state = 'bogus';"
                                 "UPDATE conversations SET kind = 'weird';",
                                 NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (raw);
  f->db = natter_db_open (f->path, &error);
  g_assert_no_error (error);

  page = natter_db_load_page (f->db, c, 0, 50, &error);
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CORRUPT);
  g_assert_null (page);
  g_clear_error (&error);

  list = natter_db_list_conversations (f->db, &error);
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CORRUPT);
  g_assert_null (list);
  g_clear_error (&error);

  /* The damaged row is not overwritten by a state update either. */
  g_assert_true (natter_db_update_message_state (f->db, "m1", NATTER_STORE_MESSAGE_READ, NULL, &error));
  g_assert_no_error (error);
}

/* Deferred full-text indexing */

static sqlite3 *
raw_open (const char *path)
{
  sqlite3 *db = NULL;

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  return db;
}

static void
raw_exec (sqlite3    *db,
          const char *sql)
{
  char *errmsg = NULL;

  if (sqlite3_exec (db, sql, NULL, NULL, &errmsg) != SQLITE_OK)
    g_error ("%s: %s", sql, errmsg);
}

static gint64
raw_int (sqlite3    *db,
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

static char *
raw_text (sqlite3    *db,
          const char *sql)
{
  sqlite3_stmt *stmt = NULL;
  char *value;

  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  value = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  sqlite3_finalize (stmt);
  return value;
}

/* For a closed database with nothing pending: the index holds exactly what
 * the messages say.  FTS5's integrity-check does not compare an external-
 * content index with its table (SQLite 3.40), so every (term, row,
 * offset) of the index is also compared with an index rebuilt from the
 * table. */
static void
assert_index_matches_content (const char *path)
{
  static const char instances[] =
    "SELECT coalesce (group_concat (term || ':' || doc || ':' || offset, ' '), '') "
    "FROM (SELECT term, doc, offset FROM temp.instances ORDER BY doc, offset, term)";
  sqlite3 *db = raw_open (path);
  g_autofree char *indexed = NULL;
  g_autofree char *rebuilt = NULL;

  g_assert_cmpint (raw_int (db, "SELECT indexed_to FROM messages_fts_progress"), >=,
                   raw_int (db, "SELECT coalesce (max (id), 0) FROM messages"));
  raw_exec (db, "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')");
  raw_exec (db, "CREATE VIRTUAL TABLE temp.instances USING fts5vocab (main, messages_fts, 'instance')");
  indexed = raw_text (db, instances);
  raw_exec (db, "BEGIN; INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')");
  rebuilt = raw_text (db, instances);
  raw_exec (db, "ROLLBACK");
  g_assert_cmpstr (indexed, ==, rebuilt);
  sqlite3_close (db);
}

/* Copies the database as a crash would leave it: what was committed is in
 * the main file and the WAL, and nothing ran after. */
static void
copy_as_crashed (const char *from,
                 const char *to)
{
  static const char * const suffixes[] = { "", "-wal" };

  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *src = g_strconcat (from, suffixes[i], NULL);
      g_autofree char *dst = g_strconcat (to, suffixes[i], NULL);
      g_autofree char *contents = NULL;
      gsize len;

      g_file_get_contents (src, &contents, &len, &error);
      g_assert_no_error (error);
      g_file_set_contents (dst, contents, len, &error);
      g_assert_no_error (error);
    }
}

static void
test_index_deferred (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) batch =
    g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_message_free);
  gint64 c = direct_conversation (f, PEER_A);
  gint64 first_deadline;
  gint64 before;
  guint n_new = 0;
  sqlite3 *raw;

  /* Stored and acknowledged at once, indexed later... */
  before = g_get_monotonic_time ();
  insert (f, "m1", c, NATTER_STORE_DIRECTION_IN, "a lantern by the door", 1, 0);
  g_assert_cmpuint (natter_db_get_index_pending (f->db), ==, 1);
  first_deadline = natter_db_get_index_deadline (f->db);
  g_assert_cmpint (first_deadline, >=, before + NATTER_DB_INDEX_DELAY_MS * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpint (first_deadline, <=, g_get_monotonic_time () +
                   NATTER_DB_INDEX_DELAY_MS * G_TIME_SPAN_MILLISECOND);

  /* ...but a search right after the insert finds it: it indexes first. */
  g_assert_cmpuint (search_count (f, "lantern", 0), ==, 1);
  g_assert_cmpuint (natter_db_get_index_pending (f->db), ==, 0);
  g_assert_cmpint (natter_db_get_index_deadline (f->db), ==, 0);
  g_assert_true (natter_db_flush_index (f->db, &error));
  g_assert_no_error (error);

  /* A full batch is due at once; until then the first row's delay holds. */
  for (guint i = 1; i < NATTER_DB_INDEX_BATCH; i++)
    {
      g_autofree char *id = g_strdup_printf ("b%u", i);

      insert (f, id, c, NATTER_STORE_DIRECTION_OUT, "batch words", 1 + i, 0);
      if (i == 1)
        first_deadline = natter_db_get_index_deadline (f->db);
      g_assert_cmpint (natter_db_get_index_deadline (f->db), ==, first_deadline);
    }
  insert (f, "b_last", c, NATTER_STORE_DIRECTION_OUT, "batch words", 1000, 0);
  g_assert_cmpuint (natter_db_get_index_pending (f->db), ==, NATTER_DB_INDEX_BATCH);
  g_assert_cmpint (natter_db_get_index_deadline (f->db), <=, g_get_monotonic_time ());
  g_assert_true (natter_db_flush_index (f->db, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (natter_db_get_index_pending (f->db), ==, 0);
  g_assert_cmpuint (search_count (f, "batch", 0), ==, NATTER_DB_INDEX_BATCH);

  /* Several messages stored together are indexed in their transaction,
   * with what was pending before them. */
  insert (f, "p1", c, NATTER_STORE_DIRECTION_IN, "pending before the backlog", 2000, 0);
  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *id = g_strdup_printf ("backlog%u", i);

      g_ptr_array_add (batch, make_message (id, c, NATTER_STORE_DIRECTION_IN,
                                            "relayed backlog", 3000 + i, 0));
    }
  g_assert_true (natter_db_insert_messages (f->db, batch, &n_new, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (n_new, ==, 3);
  g_assert_cmpuint (natter_db_get_index_pending (f->db), ==, 0);
  g_assert_cmpuint (search_count (f, "backlog", 0), ==, 4);

  /* Closing indexes what is pending. */
  insert (f, "last", c, NATTER_STORE_DIRECTION_IN, "written just before closing", 4000, 0);
  g_clear_pointer (&f->db, natter_db_close);
  raw = raw_open (f->path);
  g_assert_cmpint (raw_int (raw, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'closing'"), ==, 1);
  sqlite3_close (raw);
  assert_index_matches_content (f->path);
}

/* A crash between a message's commit and its batch: the next open indexes
 * it.  Rows changed meanwhile, indexed or not, leave the index exact. */
static void
test_index_crash (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *crashed = g_build_filename (f->dir, "crashed.db", NULL);
  g_autoptr(NatterDb) reopened = NULL;
  g_autoptr(GPtrArray) hits = NULL;
  gint64 c = direct_conversation (f, PEER_A);
  gint64 mark;
  sqlite3 *raw;

  insert (f, "i1", c, NATTER_STORE_DIRECTION_IN, "indexed first words", 1, 0);
  insert (f, "i2", c, NATTER_STORE_DIRECTION_IN, "indexed second words", 2, 0);
  insert (f, "i3", c, NATTER_STORE_DIRECTION_IN, "indexed third words", 3, 0);
  insert (f, "i4", c, NATTER_STORE_DIRECTION_IN, "indexed fourth words", 4, 0);
  g_assert_true (natter_db_flush_index (f->db, &error));
  g_assert_no_error (error);
  mark = insert (f, "p1", c, NATTER_STORE_DIRECTION_IN, "pending first words", 5, 0) - 1;
  insert (f, "p2", c, NATTER_STORE_DIRECTION_IN, "pending second words", 6, 0);
  insert (f, "p3", c, NATTER_STORE_DIRECTION_IN, "pending third words", 7, 0);
  insert (f, "p4", c, NATTER_STORE_DIRECTION_IN, "pending fourth words", 8, 0);
  insert (f, "p5", c, NATTER_STORE_DIRECTION_IN, "pending fifth words", 9, 0);
  g_assert_cmpuint (natter_db_get_index_pending (f->db), ==, 5);

  copy_as_crashed (f->path, crashed);

  /* What the crash left: five committed messages, not in the index. */
  raw = raw_open (crashed);
  g_assert_cmpint (raw_int (raw, "SELECT count(*) FROM messages"), ==, 9);
  g_assert_cmpint (raw_int (raw, "SELECT indexed_to FROM messages_fts_progress"), ==, mark);
  g_assert_cmpint (raw_int (raw, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'pending'"), ==, 0);
  g_assert_cmpint (raw_int (raw, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'indexed'"), ==, 4);

  /* Changes before the repair, through the triggers: */
  raw_exec (raw,
            /* indexed rows: the index follows */
            "UPDATE messages SET body = 'indexed rewritten' WHERE msg_id = 'i1';"
            "DELETE FROM messages WHERE msg_id = 'i2';"
            /* pending rows: the index is not touched */
            "UPDATE messages SET body = 'pending rewritten' WHERE msg_id = 'p1';"
            "DELETE FROM messages WHERE msg_id = 'p2';"
            /* an id moving above the mark leaves the index; one moving to
             * or below it enters at once */
            "UPDATE messages SET id = 100 WHERE msg_id = 'i3';"
            "UPDATE messages SET id = (SELECT indexed_to FROM messages_fts_progress) - 1 "
            "  WHERE msg_id = 'p3';"
            /* a freed id at or below the mark is indexed at insert */
            "INSERT INTO messages (id, msg_id, conversation_id, sender, direction, body, "
            "  timestamp, state) VALUES (2, 'late', 1, 'x', 'in', 'late arrival words', 10, 'sent');");
  g_assert_cmpint (raw_int (raw, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'late'"), ==, 1);
  g_assert_cmpint (raw_int (raw, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'pending'"), ==, 1);
  g_assert_cmpint (raw_int (raw, "SELECT indexed_to FROM messages_fts_progress"), ==, mark);
  sqlite3_close (raw);

  /* The next open indexes everything above the mark. */
  reopened = natter_db_open (crashed, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (natter_db_get_index_pending (reopened), ==, 0);
  hits = natter_db_search (reopened, "pending", 0, 50, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (hits->len, ==, 4);
  g_clear_pointer (&hits, g_ptr_array_unref);
  hits = natter_db_search (reopened, "rewritten", 0, 50, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (hits->len, ==, 2);
  g_clear_pointer (&hits, g_ptr_array_unref);
  hits = natter_db_search (reopened, "words", 0, 50, &error);
  g_assert_no_error (error);
  /* i3 (moved to 100), i4, p3, p4, p5, late */
  g_assert_cmpuint (hits->len, ==, 6);
  g_assert_cmpint (((NatterStoreMessage *) hits->pdata[0])->id, ==, 100);
  g_clear_pointer (&reopened, natter_db_close);

  assert_index_matches_content (crashed);
}

static NatterConversation *
get_conversation (Fixture *f,
                  gint64   conversation_id)
{
  g_autoptr(GError) error = NULL;
  NatterConversation *conversation = natter_db_get_conversation (f->db, conversation_id, &error);

  g_assert_no_error (error);
  g_assert_nonnull (conversation);
  return conversation;
}

/* Last activity, unread count and preview are not written by an insert:
 * they are read from the messages, with the activity of the messages
 * below the mark kept in the conversation's row by the index batches. */
static void
test_conversation_summary (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterConversation) conv = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GPtrArray) read = NULL;
  g_autoptr(GPtrArray) batch =
    g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_message_free);
  g_autoptr(GString) long_body = g_string_new ("line one\nline\ttwo ");
  g_autofree char *crashed = g_build_filename (f->dir, "crashed.db", NULL);
  gint64 a = direct_conversation (f, PEER_A);
  gint64 b = direct_conversation (f, PEER_B);
  gint64 newest;
  sqlite3 *raw;

  conv = get_conversation (f, a);
  g_assert_cmpint (natter_conversation_get_last_activity (conv), ==, 0);
  g_assert_cmpuint (natter_conversation_get_unread_count (conv), ==, 0);
  g_assert_null (natter_conversation_get_preview (conv));
  g_clear_object (&conv);

  /* Pending (not yet indexed) messages count at once. */
  insert (f, "a1", a, NATTER_STORE_DIRECTION_IN, "first", 1000, NATTER_STORE_MESSAGE_DELIVERED);
  insert (f, "b1", b, NATTER_STORE_DIRECTION_OUT, "to b", 1500, NATTER_STORE_MESSAGE_SENT);
  g_assert_cmpuint (natter_db_get_index_pending (f->db), ==, 2);
  list = natter_db_list_conversations (f->db, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  g_assert_cmpint (natter_conversation_get_id (list->pdata[0]), ==, b);
  g_assert_cmpint (natter_conversation_get_last_activity (list->pdata[0]), ==, 1500);
  g_assert_cmpuint (natter_conversation_get_unread_count (list->pdata[0]), ==, 0);
  g_assert_cmpstr (natter_conversation_get_preview (list->pdata[0]), ==, "to b");
  g_assert_cmpint (natter_conversation_get_id (list->pdata[1]), ==, a);
  g_assert_cmpint (natter_conversation_get_last_activity (list->pdata[1]), ==, 1000);
  g_assert_cmpuint (natter_conversation_get_unread_count (list->pdata[1]), ==, 1);
  g_assert_cmpstr (natter_conversation_get_preview (list->pdata[1]), ==, "first");
  g_clear_pointer (&list, g_ptr_array_unref);

  /* Once indexed, the same from the stored activity. */
  g_assert_true (natter_db_flush_index (f->db, &error));
  g_assert_no_error (error);
  conv = get_conversation (f, a);
  g_assert_cmpint (natter_conversation_get_last_activity (conv), ==, 1000);
  g_assert_cmpuint (natter_conversation_get_unread_count (conv), ==, 1);
  g_clear_object (&conv);

  /* A late message (old timestamp) is the preview, the newest in history,
   * but does not move the activity back, pending or indexed. */
  insert (f, "a2", a, NATTER_STORE_DIRECTION_IN, "late", 500, NATTER_STORE_MESSAGE_DELIVERED);
  conv = get_conversation (f, a);
  g_assert_cmpint (natter_conversation_get_last_activity (conv), ==, 1000);
  g_assert_cmpuint (natter_conversation_get_unread_count (conv), ==, 2);
  g_assert_cmpstr (natter_conversation_get_preview (conv), ==, "late");
  g_clear_object (&conv);
  g_assert_true (natter_db_flush_index (f->db, &error));
  conv = get_conversation (f, a);
  g_assert_cmpint (natter_conversation_get_last_activity (conv), ==, 1000);
  g_clear_object (&conv);
  insert (f, "a3", a, NATTER_STORE_DIRECTION_OUT, "newer", 2000, NATTER_STORE_MESSAGE_SENT);
  list = natter_db_list_conversations (f->db, &error);
  g_assert_cmpint (natter_conversation_get_id (list->pdata[0]), ==, a);
  g_assert_cmpint (natter_conversation_get_last_activity (list->pdata[0]), ==, 2000);
  g_assert_cmpuint (natter_conversation_get_unread_count (list->pdata[0]), ==, 2);
  g_clear_pointer (&list, g_ptr_array_unref);

  /* Counts stop at the cap; marking read reports every message. */
  for (guint i = 0; i < NATTER_DB_UNREAD_CAP + 5; i++)
    {
      g_autofree char *id = g_strdup_printf ("flood%u", i);

      g_ptr_array_add (batch, make_message (id, b, NATTER_STORE_DIRECTION_IN, "flood",
                                            3000 + i, NATTER_STORE_MESSAGE_DELIVERED));
    }
  g_assert_true (natter_db_insert_messages (f->db, batch, NULL, &error));
  g_assert_no_error (error);
  conv = get_conversation (f, b);
  g_assert_cmpuint (natter_conversation_get_unread_count (conv), ==, NATTER_DB_UNREAD_CAP);
  g_assert_cmpint (natter_conversation_get_last_activity (conv), ==,
                   3000 + NATTER_DB_UNREAD_CAP + 4);
  g_clear_object (&conv);
  read = natter_db_mark_conversation_read (f->db, b, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (read->len, ==, NATTER_DB_UNREAD_CAP + 5);
  conv = get_conversation (f, b);
  g_assert_cmpuint (natter_conversation_get_unread_count (conv), ==, 0);
  g_clear_object (&conv);

  /* The preview is one line, cut after NATTER_CONVERSATION_PREVIEW_LENGTH
   * characters (not bytes); a message without text has none. */
  while (g_utf8_strlen (long_body->str, -1) < NATTER_CONVERSATION_PREVIEW_LENGTH + 10)
    g_string_append (long_body, "é");
  insert (f, "a4", a, NATTER_STORE_DIRECTION_IN, long_body->str, 4000, NATTER_STORE_MESSAGE_DELIVERED);
  conv = get_conversation (f, a);
  g_assert_true (g_str_has_prefix (natter_conversation_get_preview (conv), "line one line two é"));
  g_assert_true (g_str_has_suffix (natter_conversation_get_preview (conv), "é…"));
  g_assert_cmpint (g_utf8_strlen (natter_conversation_get_preview (conv), -1), ==,
                   NATTER_CONVERSATION_PREVIEW_LENGTH + 1);
  g_clear_object (&conv);
  insert (f, "a5", a, NATTER_STORE_DIRECTION_IN, NULL, 4001, NATTER_STORE_MESSAGE_READ);
  conv = get_conversation (f, a);
  g_assert_null (natter_conversation_get_preview (conv));
  g_assert_cmpuint (natter_conversation_get_unread_count (conv), ==, 3);
  g_clear_object (&conv);
  conv = natter_conversation_new (1, NATTER_CONVERSATION_DIRECT, PEER_A, NULL, 0, 0);
  natter_conversation_set_preview (conv, "short");
  g_assert_cmpstr (natter_conversation_get_preview (conv), ==, "short");
  g_object_set (conv, "preview", NULL, NULL);
  g_assert_null (natter_conversation_get_preview (conv));
  g_clear_object (&conv);

  /* An insert writes no conversation row: a crash before the batch leaves
   * the row as it was, and the next open folds the message in. */
  g_assert_true (natter_db_flush_index (f->db, &error));
  insert (f, "a6", a, NATTER_STORE_DIRECTION_IN, "after the batch", 5000, NATTER_STORE_MESSAGE_DELIVERED);
  copy_as_crashed (f->path, crashed);
  raw = raw_open (crashed);
  g_assert_cmpint (raw_int (raw, "SELECT last_activity FROM conversations WHERE peer_id = '" PEER_A "'"),
                   ==, 4001);
  sqlite3_close (raw);
  g_clear_pointer (&f->db, natter_db_close);
  f->db = natter_db_open (crashed, &error);
  g_assert_no_error (error);
  conv = get_conversation (f, a);
  g_assert_cmpint (natter_conversation_get_last_activity (conv), ==, 5000);
  g_assert_cmpstr (natter_conversation_get_preview (conv), ==, "after the batch");
  g_clear_object (&conv);
  g_clear_pointer (&f->db, natter_db_close);

  /* A row that gets an id at or below the mark (the newest deleted, its
   * rowid reused) is folded in by the insert trigger, as it is indexed. */
  raw = raw_open (crashed);
  newest = raw_int (raw, "SELECT max (id) FROM messages");
  g_assert_cmpint (raw_int (raw, "SELECT indexed_to FROM messages_fts_progress"), ==, newest);
  raw_exec (raw, "DELETE FROM messages WHERE msg_id = 'a6'");
  raw_exec (raw, "INSERT INTO messages (msg_id, conversation_id, sender, direction, body, "
                 "timestamp, state) SELECT 'a7', id, '" PEER_A "', 'in', 'reused row', 6000, "
                 "'delivered' FROM conversations WHERE peer_id = '" PEER_A "'");
  g_assert_cmpint (raw_int (raw, "SELECT id FROM messages WHERE msg_id = 'a7'"), ==, newest);
  g_assert_cmpint (raw_int (raw, "SELECT last_activity FROM conversations WHERE peer_id = '" PEER_A "'"),
                   ==, 6000);
  sqlite3_close (raw);
  f->db = natter_db_open (crashed, &error);
  g_assert_no_error (error);
  conv = get_conversation (f, a);
  g_assert_cmpint (natter_conversation_get_last_activity (conv), ==, 6000);
  g_assert_cmpstr (natter_conversation_get_preview (conv), ==, "reused row");
  g_clear_pointer (&f->db, natter_db_close);
  assert_index_matches_content (crashed);
  f->db = natter_db_open (f->path, &error);
  g_assert_no_error (error);
}

/* The asynchronous store */

typedef struct
{
  GMainLoop *loop;
  GThread   *main_thread;
  guint      pending;
  guint      completed;
  guint      next_expected;
  guint      errors;
  gint64     conversation_id;
} AsyncState;

typedef struct
{
  AsyncState *state;
  guint       index;
} Call;

static Call *
call_new (AsyncState *state,
          guint       index)
{
  Call *call = g_new0 (Call, 1);

  call->state = state;
  call->index = index;
  state->pending++;
  return call;
}

static void
call_done (Call *call)
{
  AsyncState *state = call->state;

  /* Results arrive on the main context, in the order asked. */
  g_assert_true (g_thread_self () == state->main_thread);
  g_assert_cmpuint (call->index, ==, state->next_expected);
  state->next_expected++;
  state->completed++;
  if (--state->pending == 0)
    g_main_loop_quit (state->loop);
  g_free (call);
}

static void
on_open (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (natter_store_open_finish (NATTER_STORE (source), result, &error));
  g_assert_no_error (error);
  call_done (user_data);
}

static void
on_ensure (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Call *call = user_data;
  g_autoptr(GError) error = NULL;

  call->state->conversation_id =
    natter_store_ensure_conversation_finish (NATTER_STORE (source), result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (call->state->conversation_id, >, 0);
  call_done (call);
}

static void
on_insert (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  gboolean was_new = FALSE;
  gint64 id = natter_store_insert_message_finish (NATTER_STORE (source), result, &was_new, &error);

  if (error != NULL)
    ((Call *) user_data)->state->errors++;
  else
    {
      g_assert_cmpint (id, >, 0);
      g_assert_true (was_new);
    }
  call_done (user_data);
}

static void
on_insert_duplicate (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  gboolean was_new = TRUE;
  gint64 id = natter_store_insert_message_finish (NATTER_STORE (source), result, &was_new, &error);

  g_assert_no_error (error);
  g_assert_cmpint (id, >, 0);
  g_assert_false (was_new);
  call_done (user_data);
}

static void
on_update_state (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  gboolean changed = FALSE;

  g_assert_true (natter_store_update_message_state_finish (NATTER_STORE (source), result,
                                                           &changed, &error));
  g_assert_no_error (error);
  g_assert_true (changed);
  call_done (user_data);
}

static void
on_page (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) page = natter_store_load_page_finish (NATTER_STORE (source), result, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (page->len, ==, 20);
  g_assert_cmpstr (((NatterStoreMessage *) page->pdata[0])->msg_id, ==, "async_29");
  call_done (user_data);
}

static void
on_search (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) hits = natter_store_search_finish (NATTER_STORE (source), result, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (hits->len, ==, 3);
  call_done (user_data);
}

static void
on_count (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (natter_store_count_messages_finish (NATTER_STORE (source), result, &error), ==, 30);
  g_assert_no_error (error);
  call_done (user_data);
}

static void
on_list_conversations (GObject      *source,
                       GAsyncResult *result,
                       gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GListModel) model =
    natter_store_list_conversations_finish (NATTER_STORE (source), result, &error);
  g_autoptr(NatterConversation) first = NULL;

  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 1);
  g_assert_true (g_list_model_get_item_type (model) == NATTER_TYPE_CONVERSATION);
  first = g_list_model_get_item (model, 0);
  g_assert_cmpuint (natter_conversation_get_unread_count (first), ==, 29);
  call_done (user_data);
}

static void
on_list_contacts (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GListModel) model =
    natter_store_list_contacts_finish (NATTER_STORE (source), result, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 1);
  call_done (user_data);
}

static void
on_upsert_contact (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (natter_store_upsert_contact_finish (NATTER_STORE (source), result, &error));
  g_assert_no_error (error);
  call_done (user_data);
}

static void
on_relay_add (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  gboolean was_new = FALSE;

  g_assert_true (natter_store_relay_add_finish (NATTER_STORE (source), result, &was_new, &error));
  g_assert_no_error (error);
  g_assert_true (was_new);
  call_done (user_data);
}

static void
on_relay_take (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) taken =
    natter_store_relay_take_for_recipient_finish (NATTER_STORE (source), result, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (taken->len, ==, 1);
  call_done (user_data);
}

static gpointer
run_in_worker (NatterDb  *db,
               gpointer   user_data,
               GError   **error)
{
  gint64 *count = g_new (gint64, 1);

  *count = natter_db_count_messages (db, 0, error);
  return count;
}

static void
on_run (GObject      *source,
        GAsyncResult *result,
        gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autofree gint64 *count = natter_store_run_finish (NATTER_STORE (source), result, &error);

  g_assert_no_error (error);
  g_assert_cmpint (*count, ==, 30);
  call_done (user_data);
}

static void
test_async (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("natter-test-store-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "async.db", NULL);
  g_autoptr(NatterStore) store = natter_store_new (path);
  g_autoptr(NatterContact) contact = natter_contact_new (PEER_A, "Alice", NATTER_CONTACT_ACCEPTED, TRUE, 1);
  g_autoptr(NatterStoreRelayEntry) relay = natter_store_relay_entry_new ();
  AsyncState state = { 0 };
  guint n = 0;

  state.loop = g_main_loop_new (NULL, FALSE);
  state.main_thread = g_thread_self ();

  natter_store_open_async (store, NULL, on_open, call_new (&state, n++));
  natter_store_ensure_conversation_async (store, NATTER_CONVERSATION_DIRECT, PEER_A, "Alice",
                                          NULL, on_ensure, call_new (&state, n++));
  /* Wait for the id, as the service would. */
  g_main_loop_run (state.loop);
  g_assert_cmpint (state.conversation_id, >, 0);

  for (guint i = 0; i < 30; i++)
    {
      g_autofree char *id = g_strdup_printf ("async_%u", i);
      g_autoptr(NatterStoreMessage) m =
        make_message (id, state.conversation_id, NATTER_STORE_DIRECTION_IN,
                      i % 10 == 0 ? "needle in the hay" : "just hay", i,
                      NATTER_STORE_MESSAGE_DELIVERED);

      natter_store_insert_message_async (store, m, NULL, on_insert, call_new (&state, n++));
    }
  {
    g_autoptr(NatterStoreMessage) dup =
      make_message ("async_3", state.conversation_id, NATTER_STORE_DIRECTION_IN, "dup", 3, 0);
    natter_store_insert_message_async (store, dup, NULL, on_insert_duplicate, call_new (&state, n++));
  }
  natter_store_update_message_state_async (store, "async_0", NATTER_STORE_MESSAGE_READ, NULL,
                                           on_update_state, call_new (&state, n++));
  natter_store_load_page_async (store, state.conversation_id, 0, 20, NULL, on_page,
                                call_new (&state, n++));
  natter_store_search_async (store, "needle", 0, 50, NULL, on_search, call_new (&state, n++));
  natter_store_count_messages_async (store, state.conversation_id, NULL, on_count,
                                     call_new (&state, n++));
  natter_store_list_conversations_async (store, NULL, on_list_conversations, call_new (&state, n++));
  natter_store_upsert_contact_async (store, contact, NULL, on_upsert_contact, call_new (&state, n++));
  /* The store copied the contact: changing ours now does not race. */
  natter_contact_set_display_name (contact, "Changed");
  natter_store_list_contacts_async (store, NULL, on_list_contacts, call_new (&state, n++));

  relay->msg_id = g_strdup ("relay-1");
  relay->recipient = g_strdup (PEER_B);
  relay->sender = g_strdup (PEER_A);
  relay->wire = g_bytes_new_static ("sealed", 6);
  relay->expires_at = 1000;
  natter_store_relay_add_async (store, relay, NULL, on_relay_add,
                                call_new (&state, n++));
  natter_store_relay_take_for_recipient_async (store, PEER_B, 10, 10, NULL, on_relay_take,
                                               call_new (&state, n++));
  natter_store_run_async (store, run_in_worker, NULL, NULL, g_free, NULL, on_run,
                          call_new (&state, n++));

  g_main_loop_run (state.loop);
  g_assert_cmpuint (state.completed, ==, n);
  g_assert_cmpuint (state.errors, ==, 0);

  g_clear_object (&store);
  g_main_loop_unref (state.loop);
  remove_dir (dir);
}

/* For open and close: each either ran or was refused as closed. */
static void
on_open_or_close (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  Call *call = user_data;
  gboolean ok;

  if (g_task_get_source_tag (G_TASK (result)) == natter_store_open_async)
    ok = natter_store_open_finish (NATTER_STORE (source), result, &error);
  else
    ok = natter_store_close_finish (NATTER_STORE (source), result, &error);
  if (!ok)
    {
      if (!g_error_matches (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CLOSED) &&
          !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_error ("unexpected error: %s", error->message);
      call->state->errors++;
    }
  call_done (call);
}

static void
on_insert_any (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  Call *call = user_data;

  if (natter_store_insert_message_finish (NATTER_STORE (source), result, NULL, &error) == 0)
    {
      g_assert_true (g_error_matches (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CLOSED) ||
                     g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED));
      call->state->errors++;
    }
  call_done (call);
}

static void
queue_inserts (NatterStore *store,
               AsyncState  *state,
               guint       *n,
               guint        count,
               GCancellable *cancellable)
{
  for (guint i = 0; i < count; i++)
    {
      g_autofree char *id = g_strdup_printf ("pending_%u_%u", *n, i);
      g_autoptr(NatterStoreMessage) m =
        make_message (id, 1, NATTER_STORE_DIRECTION_OUT, "pending words", i, 0);

      natter_store_insert_message_async (store, m, cancellable, on_insert_any,
                                         call_new (state, (*n)++));
    }
}

static void
test_async_close_pending (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("natter-test-store-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "close.db", NULL);
  NatterStore *store = natter_store_new (path);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  AsyncState state = { 0 };
  guint n = 0;

  state.loop = g_main_loop_new (NULL, FALSE);
  state.main_thread = g_thread_self ();

  natter_store_open_async (store, NULL, on_open, call_new (&state, n++));
  natter_store_ensure_conversation_async (store, NATTER_CONVERSATION_DIRECT, PEER_A, NULL,
                                          NULL, on_ensure, call_new (&state, n++));
  g_main_loop_run (state.loop);

  /* Cancelled before they run: refused with CANCELLED, in order.  (Cancel
   * first: the worker may start an operation as soon as it is queued.) */
  g_cancellable_cancel (cancellable);
  queue_inserts (store, &state, &n, 5, cancellable);
  /* Closed in the middle of a queue: what follows is refused. */
  queue_inserts (store, &state, &n, 50, NULL);
  natter_store_close_async (store, NULL, on_open_or_close, call_new (&state, n++));
  queue_inserts (store, &state, &n, 10, NULL);
  g_main_loop_run (state.loop);
  g_assert_cmpuint (state.errors, ==, 15);

  /* Reopen, queue a lot, and drop our reference at once: the pending
   * tasks keep the store alive until they are done, then it goes. */
  state.errors = 0;
  natter_store_open_async (store, NULL, on_open, call_new (&state, n++));
  queue_inserts (store, &state, &n, 300, NULL);
  g_object_add_weak_pointer (G_OBJECT (store), (gpointer *) &store);
  g_object_unref (store);
  g_assert_nonnull (store);
  g_main_loop_run (state.loop);
  g_assert_cmpuint (state.errors, ==, 0);
  /* The last references go on this context, never on the worker. */
  while (store != NULL)
    g_main_context_iteration (NULL, TRUE);

  /* Forced dispose with work queued: everything completes, some refused. */
  store = natter_store_new (path);
  state.errors = 0;
  natter_store_open_async (store, NULL, on_open_or_close, call_new (&state, n++));
  queue_inserts (store, &state, &n, 300, NULL);
  g_object_run_dispose (G_OBJECT (store));
  /* After dispose the store refuses new work at once. */
  queue_inserts (store, &state, &n, 1, NULL);
  g_object_unref (store);
  g_main_loop_run (state.loop);
  g_assert_cmpuint (state.pending, ==, 0);
  g_assert_cmpuint (state.errors, >=, 1);

  g_main_loop_unref (state.loop);
  remove_dir (dir);
}

static void
on_open_fails (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (natter_store_open_finish (NATTER_STORE (source), result, &error));
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CORRUPT);
  call_done (user_data);
}

static void
on_page_closed (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) page = natter_store_load_page_finish (NATTER_STORE (source), result, &error);

  g_assert_null (page);
  g_assert_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CLOSED);
  call_done (user_data);
}

static void
test_async_open_error (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("natter-test-store-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "junk.db", NULL);
  g_autoptr(NatterStore) store = NULL;
  AsyncState state = { 0 };
  guint n = 0;

  g_assert_true (g_file_set_contents (path, "this is not a database, just some text that is "
                                      "long enough to have a header and more, more, more "
                                      "and more text to fill a page header.", -1, &error));
  state.loop = g_main_loop_new (NULL, FALSE);
  state.main_thread = g_thread_self ();
  store = natter_store_new (path);
  natter_store_open_async (store, NULL, on_open_fails, call_new (&state, n++));
  natter_store_load_page_async (store, 1, 0, 10, NULL, on_page_closed, call_new (&state, n++));
  g_main_loop_run (state.loop);

  g_clear_object (&store);
  g_main_loop_unref (state.loop);
  remove_dir (dir);
}

static gpointer
run_get_index_pending (NatterDb  *db,
                       gpointer   user_data,
                       GError   **error)
{
  guint *pending = g_new (guint, 1);

  *pending = natter_db_get_index_pending (db);
  return pending;
}

static void
on_result (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

/* Runs an operation's completion on this thread, synchronously. */
static GAsyncResult *
wait_result (GAsyncResult **slot)
{
  while (*slot == NULL)
    g_main_context_iteration (NULL, TRUE);
  return *slot;
}

/* With no search asking, the worker's timed wait indexes a new message
 * within the delay. */
static void
test_async_index_timer (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("natter-test-store-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "timer.db", NULL);
  NatterStore *store = natter_store_new (path);
  g_autoptr(NatterStoreMessage) m = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GPtrArray) hits = NULL;
  gint64 conversation_id;
  gint64 inserted_at;
  gint64 indexed_at = 0;

  natter_store_open_async (store, NULL, on_result, &result);
  g_assert_true (natter_store_open_finish (store, wait_result (&result), &error));
  g_assert_no_error (error);
  g_clear_object (&result);
  natter_store_ensure_conversation_async (store, NATTER_CONVERSATION_DIRECT, PEER_A, NULL,
                                          NULL, on_result, &result);
  conversation_id = natter_store_ensure_conversation_finish (store, wait_result (&result), &error);
  g_assert_no_error (error);
  g_clear_object (&result);

  m = make_message ("timed", conversation_id, NATTER_STORE_DIRECTION_IN,
                    "indexed by the timer", 1, 0);
  natter_store_insert_message_async (store, m, NULL, on_result, &result);
  g_assert_cmpint (natter_store_insert_message_finish (store, wait_result (&result), NULL, &error), >, 0);
  g_assert_no_error (error);
  g_clear_object (&result);
  inserted_at = g_get_monotonic_time ();

  /* Poll without searching (a search would index at once). */
  while (indexed_at == 0)
    {
      g_autofree guint *pending = NULL;

      natter_store_run_async (store, run_get_index_pending, NULL, NULL, g_free,
                              NULL, on_result, &result);
      pending = natter_store_run_finish (store, wait_result (&result), &error);
      g_assert_no_error (error);
      g_clear_object (&result);
      if (*pending == 0)
        indexed_at = g_get_monotonic_time ();
      else
        g_usleep (5 * G_TIME_SPAN_MILLISECOND);
      /* The bound, with room for a loaded machine or a sanitizer. */
      g_assert_cmpint (g_get_monotonic_time () - inserted_at, <,
                       (NATTER_DB_INDEX_DELAY_MS + 2000) * G_TIME_SPAN_MILLISECOND);
    }
  g_test_message ("indexed %" G_GINT64_FORMAT " ms after the insert returned",
                  (indexed_at - inserted_at) / G_TIME_SPAN_MILLISECOND);

  natter_store_search_async (store, "timer", 0, 10, NULL, on_result, &result);
  hits = natter_store_search_finish (store, wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (hits->len, ==, 1);
  g_clear_object (&result);

  /* The tasks' last references go on this context; then the worker
   * closes the database. */
  g_object_add_weak_pointer (G_OBJECT (store), (gpointer *) &store);
  g_object_unref (store);
  while (store != NULL)
    g_main_context_iteration (NULL, TRUE);
  assert_index_matches_content (path);
  remove_dir (dir);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func) \
  g_test_add ("/store/db/" name, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  ADD ("open-new", test_open_new);
  ADD ("idempotent-insert", test_idempotent_insert);
  ADD ("insert-errors", test_insert_errors);
  ADD ("paging", test_paging);
  ADD ("state-forward", test_state_forward);
  ADD ("search", test_search);
  ADD ("conversations", test_conversations);
  ADD ("contacts", test_contacts);
  ADD ("outbox", test_outbox);
  ADD ("relay", test_relay);
  ADD ("receipts", test_receipts);
  ADD ("groups-transfers", test_groups_transfers);
  ADD ("group-records", test_group_records);
  ADD ("untrusted-rows", test_untrusted_rows);
  ADD ("index-deferred", test_index_deferred);
  ADD ("index-crash", test_index_crash);
  ADD ("conversation-summary", test_conversation_summary);

#undef ADD

  g_test_add_func ("/store/async/basic", test_async);
  g_test_add_func ("/store/async/close-pending", test_async_close_pending);
  g_test_add_func ("/store/async/open-error", test_async_open_error);
  g_test_add_func ("/store/async/index-timer", test_async_index_timer);

  return g_test_run ();
}
