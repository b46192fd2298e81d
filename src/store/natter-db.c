/* natter-db.c: synchronous SQLite layer of the message store
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include "natter-store-private.h"

/* Every statement the store runs, prepared once per connection with
 * SQLITE_PREPARE_PERSISTENT and reused: parsing costs more than running a
 * one-row insert. */
typedef enum
{
  STMT_BEGIN,
  STMT_COMMIT,
  STMT_ROLLBACK,
  STMT_SAVEPOINT,
  STMT_RELEASE,
  STMT_ROLLBACK_TO,
  STMT_CONTACT_UPSERT,
  STMT_CONTACT_GET,
  STMT_CONTACT_LIST,
  STMT_CONTACT_SET_STATE,
  STMT_CONV_FIND_PEER,
  STMT_CONV_FIND_GROUP,
  STMT_CONV_INSERT,
  STMT_CONV_EXISTS,
  STMT_CONV_GET,
  STMT_CONV_LIST,
  STMT_MSG_MARK_READ,
  STMT_MSG_INSERT,
  STMT_MSG_FIND_ID,
  STMT_MSG_UPDATE_STATE,
  STMT_MSG_GET,
  STMT_MSG_PAGE,
  STMT_MSG_COUNT_CONV,
  STMT_MSG_COUNT_ALL,
  STMT_MSG_SEARCH,
  STMT_MSG_SEARCH_CONV,
  STMT_FTS_COUNT_PENDING,
  STMT_FTS_INDEX_PENDING,
  STMT_FTS_FOLD_ACTIVITY,
  STMT_FTS_ADVANCE,
  STMT_OUTBOX_ADD,
  STMT_OUTBOX_REMOVE,
  STMT_OUTBOX_RESCHEDULE,
  STMT_OUTBOX_DUE,
  STMT_OUTBOX_TAKE_EXPIRED,
  STMT_RELAY_ADD,
  STMT_RELAY_TAKE,
  STMT_RELAY_REMOVE,
  STMT_RELAY_BYTES,
  STMT_RELAY_COUNT,
  STMT_RELAY_DELETE_EXPIRED,
  STMT_RELAY_LIST,
  STMT_MSG_UPDATE_STATE_VIA,
  STMT_MSG_MAX_SEQUENCE,
  STMT_RECEIPT_ADD,
  STMT_RECEIPT_LIST,
  STMT_GROUP_UPSERT,
  STMT_GROUP_GET,
  STMT_MEMBER_ADD,
  STMT_MEMBER_REMOVE,
  STMT_MEMBER_LIST,
  STMT_MEMBER_CLEAR,
  STMT_GROUP_LIST,
  STMT_GROUP_KEY_ADD,
  STMT_GROUP_KEY_LIST,
  STMT_GROUP_MSG_ADD,
  STMT_GROUP_MSG_LIST,
  STMT_TRANSFER_UPSERT,
  STMT_TRANSFER_GET,
  STMT_TRANSFER_PROGRESS,
  STMT_TRANSFER_UNFINISHED,
  N_STMTS
} StmtId;

#define MESSAGE_COLUMNS \
  "m.id, m.msg_id, m.conversation_id, m.sender, m.direction, m.type, " \
  "m.body, m.timestamp, m.sequence, m.state, m.relay_via"
/* A conversation as the list shows it (see natter-db-schema.c): the
 * stored last activity or, if newer, the newest timestamp among its
 * messages above the mark (the LEFT JOIN, one range scan of the rowid for
 * the whole list); its unread incoming messages counted on the partial
 * index messages_unread, at most NATTER_DB_UNREAD_CAP of them; the body
 * of its newest message, one character more than a preview keeps so that
 * cutting it shows.  NOT INDEXED keeps the pending rows a rowid range:
 * for the GROUP BY the planner would rather skip-scan messages_conversation
 * over every conversation.  The count's WHERE clause must match the partial
 * index's. */
#define CONVERSATION_SELECT \
  "SELECT c.id, c.kind, c.peer_id, c.group_id, c.title, " \
  "max (c.last_activity, coalesce (p.activity, c.last_activity)) AS activity, " \
  "(SELECT count(*) FROM (SELECT 1 FROM messages u " \
  "WHERE u.conversation_id = c.id AND u.direction = 'in' AND u.state <> 'read' " \
  "LIMIT " G_STRINGIFY (NATTER_DB_UNREAD_CAP) ")), " \
  "(SELECT substr (l.body, 1, " G_STRINGIFY (NATTER_CONVERSATION_PREVIEW_LENGTH) " + 1) " \
  "FROM messages l WHERE l.conversation_id = c.id ORDER BY l.id DESC LIMIT 1) " \
  "FROM conversations c LEFT JOIN " \
  "(SELECT conversation_id, max (timestamp) AS activity FROM messages NOT INDEXED " \
  "WHERE id > (SELECT indexed_to FROM messages_fts_progress) " \
  "GROUP BY conversation_id) p ON p.conversation_id = c.id "
#define OUTBOX_COLUMNS "msg_id, recipient, wire, next_attempt, attempts, expires_at"
#define RELAY_COLUMNS "msg_id, recipient, sender, wire, received_at, expires_at, size"
#define TRANSFER_COLUMNS \
  "id, conversation_id, msg_id, peer_id, direction, name, size, hash, " \
  "byte_offset, state, path, created_at, updated_at"

/* The state order of NatterStoreMessageState, in SQL, for forward-only
 * updates done in one statement.  Unknown strings rank highest so that a
 * damaged row is never overwritten. */
#define STATE_RANK_SQL \
  "(CASE state WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 " \
  "WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 ELSE 5 END)"

static const char * const stmt_sql[N_STMTS] = {
  [STMT_BEGIN] = "BEGIN IMMEDIATE",
  [STMT_COMMIT] = "COMMIT",
  [STMT_ROLLBACK] = "ROLLBACK",
  [STMT_SAVEPOINT] = "SAVEPOINT natter_op",
  [STMT_RELEASE] = "RELEASE natter_op",
  [STMT_ROLLBACK_TO] = "ROLLBACK TO natter_op",
  [STMT_CONTACT_UPSERT] =
    "INSERT INTO contacts (peer_id, display_name, state, verified, added_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT (peer_id) DO UPDATE SET display_name = excluded.display_name, "
    "state = excluded.state, verified = excluded.verified",
  [STMT_CONTACT_GET] =
    "SELECT peer_id, display_name, state, verified, added_at FROM contacts "
    "WHERE peer_id = ?1",
  [STMT_CONTACT_LIST] =
    "SELECT peer_id, display_name, state, verified, added_at FROM contacts "
    "ORDER BY display_name COLLATE NOCASE, peer_id",
  [STMT_CONTACT_SET_STATE] =
    "UPDATE contacts SET state = ?2 WHERE peer_id = ?1",
  [STMT_CONV_FIND_PEER] =
    "SELECT id FROM conversations WHERE peer_id = ?1",
  [STMT_CONV_FIND_GROUP] =
    "SELECT id FROM conversations WHERE group_id = ?1",
  [STMT_CONV_INSERT] =
    "INSERT INTO conversations (kind, peer_id, group_id, title) "
    "VALUES (?1, ?2, ?3, ?4)",
  [STMT_CONV_EXISTS] =
    "SELECT 1 FROM conversations WHERE id = ?1",
  [STMT_CONV_GET] =
    CONVERSATION_SELECT "WHERE c.id = ?1",
  [STMT_CONV_LIST] =
    CONVERSATION_SELECT "ORDER BY activity DESC, c.id DESC",
  /* The WHERE clause matches the partial index messages_unread. */
  [STMT_MSG_MARK_READ] =
    "UPDATE messages SET state = 'read' WHERE conversation_id = ?1 "
    "AND direction = 'in' AND state <> 'read' RETURNING msg_id",
  /* ON CONFLICT (msg_id) rather than INSERT OR IGNORE: OR IGNORE would also
   * silently swallow NOT NULL and CHECK violations. */
  [STMT_MSG_INSERT] =
    "INSERT INTO messages (msg_id, conversation_id, sender, direction, type, "
    "body, timestamp, sequence, state, relay_via, wire) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
    "ON CONFLICT (msg_id) DO NOTHING",
  [STMT_MSG_FIND_ID] =
    "SELECT id FROM messages WHERE msg_id = ?1",
  [STMT_MSG_UPDATE_STATE] =
    "UPDATE messages SET state = ?2 WHERE msg_id = ?1 AND "
    STATE_RANK_SQL " < ?3",
  [STMT_MSG_GET] =
    "SELECT " MESSAGE_COLUMNS ", m.wire FROM messages m WHERE m.msg_id = ?1",
  [STMT_MSG_PAGE] =
    "SELECT " MESSAGE_COLUMNS " FROM messages m "
    "WHERE m.conversation_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3",
  [STMT_MSG_COUNT_CONV] =
    "SELECT count(*) FROM messages WHERE conversation_id = ?1",
  [STMT_MSG_COUNT_ALL] =
    "SELECT count(*) FROM messages",
  /* The subquery lets FTS5 walk its doclists backwards and stop after
   * LIMIT hits, instead of collecting every match and sorting. */
  [STMT_MSG_SEARCH] =
    "SELECT " MESSAGE_COLUMNS " FROM messages m WHERE m.id IN "
    "(SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 "
    "ORDER BY rowid DESC LIMIT ?2) ORDER BY m.id DESC",
  [STMT_MSG_SEARCH_CONV] =
    "SELECT " MESSAGE_COLUMNS " FROM messages_fts f "
    "JOIN messages m ON m.id = f.rowid "
    "WHERE messages_fts MATCH ?1 AND m.conversation_id = ?2 "
    "ORDER BY f.rowid DESC LIMIT ?3",
  /* Deferred indexing (see natter-db-schema.c): the rows above the mark
   * are indexed and the mark moves to the newest row, in one
   * transaction. */
  [STMT_FTS_COUNT_PENDING] =
    "SELECT count(*) FROM messages "
    "WHERE id > (SELECT indexed_to FROM messages_fts_progress)",
  [STMT_FTS_INDEX_PENDING] =
    "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages "
    "WHERE id > (SELECT indexed_to FROM messages_fts_progress) ORDER BY id",
  /* Before the mark moves: the pending rows' newest timestamps become
   * their conversations' stored last activity (NOT INDEXED: see
   * CONVERSATION_SELECT). */
  [STMT_FTS_FOLD_ACTIVITY] =
    "UPDATE conversations SET last_activity = p.activity FROM "
    "(SELECT conversation_id, max (timestamp) AS activity FROM messages NOT INDEXED "
    "WHERE id > (SELECT indexed_to FROM messages_fts_progress) "
    "GROUP BY conversation_id) p "
    "WHERE conversations.id = p.conversation_id "
    "AND conversations.last_activity < p.activity",
  [STMT_FTS_ADVANCE] =
    "UPDATE messages_fts_progress SET indexed_to = (SELECT max (id) FROM messages) "
    "WHERE indexed_to < (SELECT max (id) FROM messages)",
  [STMT_OUTBOX_ADD] =
    "INSERT INTO outbox (" OUTBOX_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
    "ON CONFLICT (msg_id, recipient) DO UPDATE SET wire = excluded.wire, "
    "next_attempt = excluded.next_attempt, expires_at = excluded.expires_at",
  [STMT_OUTBOX_REMOVE] =
    "DELETE FROM outbox WHERE msg_id = ?1 AND (?2 IS NULL OR recipient = ?2)",
  [STMT_OUTBOX_RESCHEDULE] =
    "UPDATE outbox SET next_attempt = ?3, attempts = attempts + 1 "
    "WHERE msg_id = ?1 AND recipient = ?2",
  [STMT_OUTBOX_DUE] =
    "SELECT " OUTBOX_COLUMNS " FROM outbox "
    "WHERE next_attempt <= ?1 AND expires_at > ?1 "
    "ORDER BY next_attempt, id LIMIT ?2",
  [STMT_OUTBOX_TAKE_EXPIRED] =
    "DELETE FROM outbox WHERE expires_at <= ?1 RETURNING " OUTBOX_COLUMNS,
  [STMT_RELAY_ADD] =
    "INSERT INTO relay_store (" RELAY_COLUMNS ") "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, length (?4)) "
    "ON CONFLICT (recipient, msg_id) DO NOTHING",
  [STMT_RELAY_TAKE] =
    "DELETE FROM relay_store WHERE id IN (SELECT id FROM relay_store "
    "WHERE recipient = ?1 AND expires_at > ?2 ORDER BY received_at, id "
    "LIMIT ?3) RETURNING " RELAY_COLUMNS ", id",
  [STMT_RELAY_REMOVE] =
    "DELETE FROM relay_store WHERE recipient = ?2 AND msg_id = ?1",
  [STMT_RELAY_BYTES] =
    "SELECT total (size) FROM relay_store WHERE recipient = ?1",
  [STMT_RELAY_COUNT] =
    "SELECT count(*) FROM relay_store WHERE recipient = ?1",
  [STMT_RELAY_LIST] =
    "SELECT " RELAY_COLUMNS ", id FROM relay_store "
    "WHERE recipient = ?1 AND expires_at > ?2 ORDER BY received_at, id LIMIT ?3",
  [STMT_MSG_UPDATE_STATE_VIA] =
    "UPDATE messages SET state = ?2, relay_via = coalesce (?4, relay_via) "
    "WHERE msg_id = ?1 AND " STATE_RANK_SQL " < ?3",
  [STMT_MSG_MAX_SEQUENCE] =
    "SELECT coalesce (max (sequence), 0) FROM messages "
    "WHERE conversation_id = ?1 AND direction = ?2",
  [STMT_RELAY_DELETE_EXPIRED] =
    "DELETE FROM relay_store WHERE expires_at <= ?1",
  /* The earliest acknowledgement is the one that counts. */
  [STMT_RECEIPT_ADD] =
    "INSERT INTO receipts (msg_id, peer_id, kind, at) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (msg_id, peer_id, kind) DO UPDATE SET at = MIN (at, excluded.at)",
  [STMT_RECEIPT_LIST] =
    "SELECT msg_id, peer_id, kind, at FROM receipts WHERE msg_id = ?1 "
    "ORDER BY at, peer_id, kind",
  /* The key epoch never goes back: a stale update must not resurrect a
   * key that was rotated away. */
  [STMT_GROUP_UPSERT] =
    "INSERT INTO groups (id, name, created_by, created_at, key_epoch, state) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
    "key_epoch = MAX (key_epoch, excluded.key_epoch), "
    "state = coalesce (excluded.state, state)",
  [STMT_GROUP_GET] =
    "SELECT id, name, created_by, created_at, key_epoch, state FROM groups WHERE id = ?1",
  [STMT_GROUP_LIST] =
    "SELECT id, name, created_by, created_at, key_epoch, state FROM groups ORDER BY created_at, id",
  [STMT_MEMBER_CLEAR] =
    "DELETE FROM group_members WHERE group_id = ?1",
  [STMT_GROUP_KEY_ADD] =
    "INSERT OR IGNORE INTO group_keys (group_id, key_id, key) VALUES (?1, ?2, ?3)",
  [STMT_GROUP_KEY_LIST] =
    "SELECT key_id, key FROM group_keys WHERE group_id = ?1",
  [STMT_GROUP_MSG_ADD] =
    "INSERT OR IGNORE INTO group_messages "
    "(group_id, author, counter, msg_id, kind, body, clock_sum, wire) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
  [STMT_GROUP_MSG_LIST] =
    "SELECT author, counter, msg_id, kind, body, clock_sum, wire FROM group_messages "
    "WHERE group_id = ?1 ORDER BY author, counter",
  [STMT_MEMBER_ADD] =
    "INSERT INTO group_members (group_id, peer_id, role, joined_at) "
    "VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (group_id, peer_id) DO UPDATE SET role = excluded.role",
  [STMT_MEMBER_REMOVE] =
    "DELETE FROM group_members WHERE group_id = ?1 AND peer_id = ?2",
  [STMT_MEMBER_LIST] =
    "SELECT group_id, peer_id, role, joined_at FROM group_members "
    "WHERE group_id = ?1 ORDER BY joined_at, peer_id",
  [STMT_TRANSFER_UPSERT] =
    "INSERT INTO file_transfers (" TRANSFER_COLUMNS ") "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
    "ON CONFLICT (id) DO UPDATE SET byte_offset = excluded.byte_offset, "
    "state = excluded.state, path = excluded.path, "
    "updated_at = excluded.updated_at",
  [STMT_TRANSFER_GET] =
    "SELECT " TRANSFER_COLUMNS " FROM file_transfers WHERE id = ?1",
  [STMT_TRANSFER_PROGRESS] =
    "UPDATE file_transfers SET byte_offset = ?2, state = ?3, updated_at = ?4 "
    "WHERE id = ?1",
  [STMT_TRANSFER_UNFINISHED] =
    "SELECT " TRANSFER_COLUMNS " FROM file_transfers "
    "WHERE state IN ('offered', 'accepted', 'active', 'paused') "
    "ORDER BY created_at, id",
};

struct _NatterDb
{
  sqlite3      *db;
  int           schema_version;
  sqlite3_stmt *stmts[N_STMTS];

  /* Deferred indexing: messages committed by this connection and not yet
   * in messages_fts (an upper bound: a row that got an id at or below the
   * mark was indexed by its trigger), and the monotonic time (µs) at which
   * they are due, 0 when none are pending. */
  guint         index_pending;
  gint64        index_due;
  /* The last batch failed: wait for the delay before the next try, even
   * when a full batch is pending, instead of retrying at every insert. */
  gboolean      index_backoff;

  /* natter_db_begin_batch() nesting: inside a batch, each operation's own
   * transaction becomes a savepoint. */
  guint         batch_depth;
};

/* A cached statement in use.  The cleanup resets it rather than finalizing
 * it: a statement left stepped would keep a read transaction open and stop
 * WAL checkpoints. */
typedef sqlite3_stmt NatterDbStmt;

static void
stmt_release (NatterDbStmt *stmt)
{
  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterDbStmt, stmt_release)

G_DEFINE_QUARK (natter-store-error-quark, natter_store_error)

/* Enumerations <-> stored strings */

static const char * const direction_names[] = { "in", "out" };
static const char * const message_state_names[] = {
  "queued", "sent", "failed", "delivered", "read",
};
static const char * const receipt_kind_names[] = { "delivered", "read" };
static const char * const group_role_names[] = { "member", "admin" };
static const char * const transfer_state_names[] = {
  "offered", "accepted", "active", "paused", "complete", "failed",
  "cancelled", "rejected",
};

static gboolean
lookup_name (const char * const *names,
             guint               n_names,
             const char         *str,
             int                *out)
{
  if (str == NULL)
    return FALSE;
  for (guint i = 0; i < n_names; i++)
    if (strcmp (str, names[i]) == 0)
      {
        *out = (int) i;
        return TRUE;
      }
  return FALSE;
}

#define DEFINE_ENUM_STRINGS(Type, prefix, names)                        \
  const char *                                                          \
  prefix##_to_string (Type value)                                       \
  {                                                                     \
    g_return_val_if_fail ((guint) value < G_N_ELEMENTS (names), NULL);  \
    return names[value];                                                \
  }                                                                     \
                                                                        \
  gboolean                                                              \
  prefix##_from_string (const char *str,                                \
                        Type       *out)                                \
  {                                                                     \
    int value;                                                          \
                                                                        \
    if (!lookup_name (names, G_N_ELEMENTS (names), str, &value))        \
      return FALSE;                                                     \
    *out = (Type) value;                                                \
    return TRUE;                                                        \
  }

DEFINE_ENUM_STRINGS (NatterStoreDirection, natter_store_direction, direction_names)
DEFINE_ENUM_STRINGS (NatterStoreMessageState, natter_store_message_state, message_state_names)
DEFINE_ENUM_STRINGS (NatterStoreReceiptKind, natter_store_receipt_kind, receipt_kind_names)
DEFINE_ENUM_STRINGS (NatterStoreGroupRole, natter_store_group_role, group_role_names)
DEFINE_ENUM_STRINGS (NatterStoreTransferState, natter_store_transfer_state, transfer_state_names)

/**
 * natter_store_message_state_can_advance:
 * @from: the current state
 * @to: the proposed state
 *
 * States only move forward: queued < sent < failed < delivered < read.  A
 * failed message can still become delivered or read when a signed ack
 * arrives late, but nothing ever returns to queued or sent.
 *
 * Returns: whether the move is allowed
 */
gboolean
natter_store_message_state_can_advance (NatterStoreMessageState from,
                                        NatterStoreMessageState to)
{
  return to > from;
}

/* Records */

NatterStoreMessage *
natter_store_message_new (void)
{
  return g_new0 (NatterStoreMessage, 1);
}

/**
 * natter_store_message_copy:
 * @message: a message
 *
 * Returns: (transfer full): a deep copy of @message
 */
NatterStoreMessage *
natter_store_message_copy (const NatterStoreMessage *message)
{
  NatterStoreMessage *copy;

  g_return_val_if_fail (message != NULL, NULL);

  copy = g_memdup2 (message, sizeof *message);
  copy->msg_id = g_strdup (message->msg_id);
  copy->sender = g_strdup (message->sender);
  copy->type = g_strdup (message->type);
  copy->body = g_strdup (message->body);
  copy->relay_via = g_strdup (message->relay_via);
  copy->wire = message->wire ? g_bytes_ref (message->wire) : NULL;
  return copy;
}

void
natter_store_message_free (NatterStoreMessage *message)
{
  if (message == NULL)
    return;
  g_free (message->msg_id);
  g_free (message->sender);
  g_free (message->type);
  g_free (message->body);
  g_free (message->relay_via);
  g_clear_pointer (&message->wire, g_bytes_unref);
  g_free (message);
}

NatterStoreOutboxEntry *
natter_store_outbox_entry_new (void)
{
  return g_new0 (NatterStoreOutboxEntry, 1);
}

void
natter_store_outbox_entry_free (NatterStoreOutboxEntry *entry)
{
  if (entry == NULL)
    return;
  g_free (entry->msg_id);
  g_free (entry->recipient);
  g_clear_pointer (&entry->wire, g_bytes_unref);
  g_free (entry);
}

NatterStoreRelayEntry *
natter_store_relay_entry_new (void)
{
  return g_new0 (NatterStoreRelayEntry, 1);
}

void
natter_store_relay_entry_free (NatterStoreRelayEntry *entry)
{
  if (entry == NULL)
    return;
  g_free (entry->msg_id);
  g_free (entry->recipient);
  g_free (entry->sender);
  g_clear_pointer (&entry->wire, g_bytes_unref);
  g_free (entry);
}

void
natter_store_receipt_free (NatterStoreReceipt *receipt)
{
  if (receipt == NULL)
    return;
  g_free (receipt->msg_id);
  g_free (receipt->peer_id);
  g_free (receipt);
}

NatterStoreGroup *
natter_store_group_new (void)
{
  return g_new0 (NatterStoreGroup, 1);
}

void
natter_store_group_free (NatterStoreGroup *group)
{
  if (group == NULL)
    return;
  g_free (group->id);
  g_free (group->name);
  g_free (group->created_by);
  g_free (group->state);
  g_free (group);
}

void
natter_store_group_message_free (NatterStoreGroupMessage *message)
{
  if (message == NULL)
    return;
  g_free (message->author);
  g_free (message->msg_id);
  g_free (message->kind);
  g_free (message->body);
  g_clear_pointer (&message->wire, g_bytes_unref);
  g_free (message);
}

NatterStoreGroupRecord *
natter_store_group_record_new (void)
{
  NatterStoreGroupRecord *record = g_new0 (NatterStoreGroupRecord, 1);

  record->group = natter_store_group_new ();
  record->members = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_group_member_free);
  record->keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_bytes_unref);
  record->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_group_message_free);
  return record;
}

void
natter_store_group_record_free (NatterStoreGroupRecord *record)
{
  if (record == NULL)
    return;
  natter_store_group_free (record->group);
  g_clear_pointer (&record->members, g_ptr_array_unref);
  g_hash_table_unref (record->keys);
  g_ptr_array_unref (record->messages);
  g_free (record);
}

void
natter_store_group_member_free (NatterStoreGroupMember *member)
{
  if (member == NULL)
    return;
  g_free (member->group_id);
  g_free (member->peer_id);
  g_free (member);
}

NatterStoreTransfer *
natter_store_transfer_new (void)
{
  return g_new0 (NatterStoreTransfer, 1);
}

void
natter_store_transfer_free (NatterStoreTransfer *transfer)
{
  if (transfer == NULL)
    return;
  g_free (transfer->id);
  g_free (transfer->msg_id);
  g_free (transfer->peer_id);
  g_free (transfer->name);
  g_free (transfer->hash);
  g_free (transfer->path);
  g_free (transfer);
}

/* Errors */

gboolean
natter_db_set_sqlite_error (GError     **error,
                            sqlite3     *db,
                            int          rc,
                            const char  *what)
{
  NatterStoreError code;
  const char *detail;

  switch (rc & 0xff)
    {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      code = NATTER_STORE_ERROR_CORRUPT;
      break;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_NOLFS:
    case SQLITE_AUTH:
      code = NATTER_STORE_ERROR_IO;
      break;
    case SQLITE_FULL:
      code = NATTER_STORE_ERROR_FULL;
      break;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
      code = NATTER_STORE_ERROR_CONSTRAINT;
      break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = NATTER_STORE_ERROR_BUSY;
      break;
    default:
      code = NATTER_STORE_ERROR_FAILED;
      break;
    }

  /* sqlite3_errmsg() describes the last call on @db, which is the failing
   * one as long as callers report errors immediately. */
  if (db != NULL && (sqlite3_errcode (db) & 0xff) == (rc & 0xff))
    detail = sqlite3_errmsg (db);
  else
    detail = sqlite3_errstr (rc);

  if (code == NATTER_STORE_ERROR_CORRUPT)
    g_set_error (error, NATTER_STORE_ERROR, code,
                 "%s: the database file is damaged or is not a database (%s)",
                 what, detail);
  else
    g_set_error (error, NATTER_STORE_ERROR, code, "%s: %s", what, detail);

  return FALSE;
}

gboolean
natter_db_exec (sqlite3     *db,
                const char  *sql,
                const char  *what,
                GError     **error)
{
  int rc = sqlite3_exec (db, sql, NULL, NULL, NULL);

  if (rc != SQLITE_OK)
    return natter_db_set_sqlite_error (error, db, rc, what);
  return TRUE;
}

static gboolean
set_corrupt_row (GError     **error,
                 const char  *table,
                 const char  *detail)
{
  g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CORRUPT,
               "A row of %s holds an invalid value: %s", table, detail);
  return FALSE;
}

static gboolean
set_invalid (GError     **error,
             const char  *what)
{
  g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_INVALID,
               "Invalid argument: %s", what);
  return FALSE;
}

/* Statements */

static NatterDbStmt *
db_stmt (NatterDb  *self,
         StmtId     id,
         GError   **error)
{
  if (self->stmts[id] == NULL)
    {
      int rc = sqlite3_prepare_v3 (self->db, stmt_sql[id], -1,
                                   SQLITE_PREPARE_PERSISTENT,
                                   &self->stmts[id], NULL);
      if (rc != SQLITE_OK)
        {
          natter_db_set_sqlite_error (error, self->db, rc,
                                      "Could not prepare a database statement");
          return NULL;
        }
    }
  return self->stmts[id];
}

/* Runs a statement that returns no rows (or whose rows are ignored). */
static gboolean
stmt_run (NatterDb     *self,
          NatterDbStmt *stmt,
          const char   *what,
          GError      **error)
{
  int rc;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    ;
  if (rc != SQLITE_DONE)
    return natter_db_set_sqlite_error (error, self->db, rc, what);
  return TRUE;
}

/* Steps once; returns SQLITE_ROW or SQLITE_DONE, or sets @error and
 * returns the error code. */
static int
stmt_step (NatterDb     *self,
           NatterDbStmt *stmt,
           const char   *what,
           GError      **error)
{
  int rc = sqlite3_step (stmt);

  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    natter_db_set_sqlite_error (error, self->db, rc, what);
  return rc;
}

static gboolean
run_simple (NatterDb    *self,
            StmtId       id,
            const char  *what,
            GError     **error)
{
  g_autoptr(NatterDbStmt) stmt = db_stmt (self, id, error);

  if (stmt == NULL)
    return FALSE;
  return stmt_run (self, stmt, what, error);
}

/* Undoes the operation's savepoint (inside a batch).  The statements are
 * prepared once: savepoints come with every operation of a batch, and
 * parsing them each time was a tenth of the store thread's time. */
static void
savepoint_undo (NatterDb *self)
{
  run_simple (self, STMT_ROLLBACK_TO, "", NULL);
  run_simple (self, STMT_RELEASE, "", NULL);
}

static gboolean
tx_begin (NatterDb  *self,
          GError   **error)
{
  if (self->batch_depth > 0)
    return run_simple (self, STMT_SAVEPOINT, "Could not start a savepoint", error);
  return run_simple (self, STMT_BEGIN, "Could not start a transaction", error);
}

static gboolean
tx_commit (NatterDb  *self,
           GError   **error)
{
  if (self->batch_depth > 0)
    {
      if (run_simple (self, STMT_RELEASE, "Could not release a savepoint", error))
        return TRUE;
      savepoint_undo (self);
      return FALSE;
    }
  if (run_simple (self, STMT_COMMIT, "Could not commit a transaction", error))
    return TRUE;
  /* A failed COMMIT (SQLITE_FULL, I/O) leaves the transaction open. */
  if (!sqlite3_get_autocommit (self->db))
    run_simple (self, STMT_ROLLBACK, "", NULL);
  return FALSE;
}

static void
tx_rollback (NatterDb *self)
{
  if (self->batch_depth > 0)
    {
      savepoint_undo (self);
      return;
    }
  if (!sqlite3_get_autocommit (self->db))
    run_simple (self, STMT_ROLLBACK, "Could not roll back", NULL);
}

/**
 * natter_db_begin_batch:
 * @self: a connection
 * @error: return location for a #GError
 *
 * Starts one transaction for many operations (group commit).  Each
 * operation inside runs in a savepoint, so one that fails is undone alone
 * and the others still commit at natter_db_end_batch().
 *
 * Returns: whether the batch started
 */
gboolean
natter_db_begin_batch (NatterDb  *self,
                       GError   **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (self->batch_depth == 0, FALSE);

  if (!run_simple (self, STMT_BEGIN, "Could not start a transaction", error))
    return FALSE;
  self->batch_depth = 1;
  return TRUE;
}

/**
 * natter_db_end_batch:
 * @self: a connection
 * @error: return location for a #GError
 *
 * Commits the batch.  On failure everything in it is rolled back.
 *
 * Returns: whether the batch is durable
 */
gboolean
natter_db_end_batch (NatterDb  *self,
                     GError   **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (self->batch_depth == 1, FALSE);

  self->batch_depth = 0;
  return tx_commit (self, error);
}

static void
bind_text (NatterDbStmt *stmt,
           int           index,
           const char   *text)
{
  if (text == NULL)
    sqlite3_bind_null (stmt, index);
  else
    sqlite3_bind_text (stmt, index, text, -1, SQLITE_STATIC);
}

static void
bind_bytes (NatterDbStmt *stmt,
            int           index,
            GBytes       *bytes)
{
  gsize size;
  gconstpointer data;

  if (bytes == NULL)
    {
      sqlite3_bind_null (stmt, index);
      return;
    }
  data = g_bytes_get_data (bytes, &size);
  /* A zero-length blob must not be bound as NULL. */
  sqlite3_bind_blob64 (stmt, index, size ? data : "", size, SQLITE_STATIC);
}

/* Column readers.  Text from disk is not trusted: invalid UTF-8 is
 * repaired rather than handed to the UI. */
static char *
column_text (NatterDbStmt *stmt,
             int           col)
{
  const char *text = (const char *) sqlite3_column_text (stmt, col);
  int len;

  if (text == NULL)
    return NULL;
  len = sqlite3_column_bytes (stmt, col);
  if (g_utf8_validate_len (text, len, NULL))
    return g_strndup (text, len);
  return g_utf8_make_valid (text, len);
}

static GBytes *
column_bytes (NatterDbStmt *stmt,
              int           col)
{
  const void *data;
  int len;

  if (sqlite3_column_type (stmt, col) == SQLITE_NULL)
    return NULL;
  data = sqlite3_column_blob (stmt, col);
  len = sqlite3_column_bytes (stmt, col);
  return g_bytes_new (data, len);
}

static gboolean
column_nonnull_text (NatterDbStmt  *stmt,
                     int            col,
                     const char    *table,
                     char         **out,
                     GError       **error)
{
  *out = column_text (stmt, col);
  if (*out == NULL)
    return set_corrupt_row (error, table, sqlite3_column_name (stmt, col));
  return TRUE;
}

/* Deferred full-text indexing (see natter-db-schema.c) */

/* Counts @n_new rows committed above the mark. */
static void
index_note_pending (NatterDb *self,
                    guint     n_new)
{
  gint64 now;

  if (n_new == 0)
    return;

  now = g_get_monotonic_time ();
  if (self->index_pending == 0)
    self->index_due = now + NATTER_DB_INDEX_DELAY_MS * G_TIME_SPAN_MILLISECOND;
  self->index_pending = (guint) MIN ((guint64) self->index_pending + n_new, G_MAXUINT);
  if (self->index_pending >= NATTER_DB_INDEX_BATCH && !self->index_backoff)
    self->index_due = MIN (self->index_due, now);
}

/* Called once the rows above the mark are committed to the index. */
static void
index_note_done (NatterDb *self)
{
  self->index_pending = 0;
  self->index_due = 0;
  self->index_backoff = FALSE;
}

/* Indexes every row above the mark, folds their timestamps into their
 * conversations' last activity and moves the mark, inside the caller's
 * transaction. */
static gboolean
index_pending_locked (NatterDb  *self,
                      GError   **error)
{
  const char *what = "Could not update the search index";

  return run_simple (self, STMT_FTS_INDEX_PENDING, what, error) &&
         run_simple (self, STMT_FTS_FOLD_ACTIVITY, what, error) &&
         run_simple (self, STMT_FTS_ADVANCE, what, error);
}

/**
 * natter_db_flush_index:
 * @self: a connection
 * @error: return location for a #GError
 *
 * Adds every message not yet in the full-text index to it, in one
 * transaction.  Inserts leave that work to a later batch, so that a
 * message costs one FTS5 segment write per batch instead of one per
 * commit; natter_db_search() calls this first, and the store's worker
 * calls it at natter_db_get_index_deadline().  On failure nothing is
 * lost: the rows stay pending and the next flush, or the next open,
 * indexes them.
 *
 * Returns: %TRUE on success, including when nothing was pending
 */
gboolean
natter_db_flush_index (NatterDb  *self,
                       GError   **error)
{
  g_return_val_if_fail (self != NULL, FALSE);

  if (self->index_pending == 0)
    return TRUE;

  if (!tx_begin (self, error))
    goto fail;
  if (!index_pending_locked (self, error))
    {
      tx_rollback (self);
      goto fail;
    }
  if (!tx_commit (self, error))
    goto fail;

  index_note_done (self);
  return TRUE;

fail:
  self->index_backoff = TRUE;
  self->index_due = g_get_monotonic_time () +
                    NATTER_DB_INDEX_DELAY_MS * G_TIME_SPAN_MILLISECOND;
  return FALSE;
}

/**
 * natter_db_get_index_pending:
 * @self: a connection
 *
 * Returns: how many stored messages may still be missing from the
 *   full-text index (they are found by searches all the same)
 */
guint
natter_db_get_index_pending (NatterDb *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->index_pending;
}

/**
 * natter_db_get_index_deadline:
 * @self: a connection
 *
 * When natter_db_flush_index() should run: %NATTER_DB_INDEX_DELAY_MS after
 * the first message that is not indexed yet, or as soon as
 * %NATTER_DB_INDEX_BATCH of them are pending.  After a failed flush, the
 * delay again.
 *
 * Returns: a g_get_monotonic_time() value, possibly in the past, or 0
 *   when nothing is pending
 */
gint64
natter_db_get_index_deadline (NatterDb *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->index_due;
}

/* At open: rows committed above the mark by a process that stopped before
 * its batch ran are indexed now. */
static void
index_repair (NatterDb *self)
{
  g_autoptr(GError) error = NULL;
  gint64 pending = 0;

  {
    g_autoptr(NatterDbStmt) count = db_stmt (self, STMT_FTS_COUNT_PENDING, &error);

    if (count != NULL &&
        stmt_step (self, count, "Could not read the search index state", &error) == SQLITE_ROW)
      pending = sqlite3_column_int64 (count, 0);
  }

  if (error == NULL && pending > 0)
    {
      index_note_pending (self, (guint) MIN (pending, G_MAXUINT));
      natter_db_flush_index (self, &error);
    }

  /* Not fatal: the messages are stored, the worker retries the batch and a
   * search reports the error rather than miss them. */
  if (error != NULL)
    {
      g_warning ("Could not index stored messages for search: %s", error->message);
      index_note_pending (self, 1);
    }
}

/* Opening */

/**
 * natter_db_open:
 * @path: the database file, created if missing
 * @error: return location for a #GError
 *
 * Opens the database and brings its schema up to date.  A file written by
 * a newer Natter gives %NATTER_STORE_ERROR_TOO_NEW; a file that is not a
 * database gives %NATTER_STORE_ERROR_CORRUPT.
 *
 * Returns: (transfer full): the connection, or %NULL
 */
NatterDb *
natter_db_open (const char  *path,
                GError     **error)
{
  g_autoptr(NatterDb) self = NULL;
  int rc;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  self = g_new0 (NatterDb, 1);

  /* One thread owns the connection, so SQLite's own mutexes are waste. */
  rc = sqlite3_open_v2 (path, &self->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                        NULL);
  if (rc != SQLITE_OK)
    {
      g_autofree char *what = g_strdup_printf ("Could not open the database “%s”", path);
      natter_db_set_sqlite_error (error, self->db, rc, what);
      return NULL;
    }

  /* Defensive mode stops SQL from corrupting the file on purpose
   * (writable_schema, shadow-table writes). */
  sqlite3_db_config (self->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  sqlite3_busy_timeout (self->db, 5000);

  /* The profile lock lets one process at a time open the profile, and
   * only the store's worker opens the database, so it is locked for as
   * long as it is open: transactions then skip the file locks and the WAL
   * index lives in memory, not in a shared -shm file.  This must come
   * before the first access to the WAL.  The journal_mode statement reads
   * the header: this is where a file that is not a database is noticed. */
  if (!natter_db_exec (self->db,
                       "PRAGMA locking_mode = EXCLUSIVE;"
                       "PRAGMA journal_mode = WAL",
                       "Could not open the database", error) ||
      !natter_db_exec (self->db,
                       "PRAGMA synchronous = NORMAL;"
                       "PRAGMA foreign_keys = ON;"
                       /* History pages and search hit a working set larger
                        * than the 2 MiB default. */
                       "PRAGMA cache_size = -32768;"
                       "PRAGMA temp_store = MEMORY;",
                       "Could not configure the database", error))
    return NULL;

  if (!natter_db_schema_migrate (self->db, &self->schema_version, error))
    return NULL;

  index_repair (self);

  return g_steal_pointer (&self);
}

/**
 * natter_db_close:
 * @self: (nullable): a connection
 *
 * Indexes the messages still pending for search, finalizes the cached
 * statements and closes the connection.
 */
void
natter_db_close (NatterDb *self)
{
  g_autoptr(GError) error = NULL;

  if (self == NULL)
    return;

  /* A failure loses nothing: the next open indexes what is above the
   * mark. */
  if (self->db != NULL && !natter_db_flush_index (self, &error))
    g_warning ("Could not index messages for search before closing: %s", error->message);

  for (guint i = 0; i < N_STMTS; i++)
    g_clear_pointer (&self->stmts[i], sqlite3_finalize);

  if (self->db != NULL)
    {
      /* Optimize on the way out as the SQLite docs advise; it is cheap when
       * there is nothing to do. */
      if (self->schema_version > 0)
        sqlite3_exec (self->db, "PRAGMA optimize", NULL, NULL, NULL);
      sqlite3_close_v2 (self->db);
    }
  g_free (self);
}

int
natter_db_get_schema_version (NatterDb *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->schema_version;
}

/* Contacts */

static NatterContact *
row_to_contact (NatterDbStmt  *stmt,
                GError       **error)
{
  g_autofree char *peer_id = NULL;
  g_autofree char *name = NULL;
  g_autofree char *state_str = NULL;
  NatterContactState state;

  if (!column_nonnull_text (stmt, 0, "contacts", &peer_id, error))
    return NULL;
  name = column_text (stmt, 1);
  state_str = column_text (stmt, 2);
  if (!natter_contact_state_from_string (state_str, &state))
    {
      set_corrupt_row (error, "contacts", "unknown state");
      return NULL;
    }
  return natter_contact_new (peer_id, name, state,
                             sqlite3_column_int (stmt, 3) != 0,
                             sqlite3_column_int64 (stmt, 4));
}

/**
 * natter_db_upsert_contact:
 * @self: a connection
 * @contact: the contact to store
 * @error: return location for a #GError
 *
 * Inserts the contact or updates its name, state and verified flag; the
 * time it was first added is kept.
 *
 * Returns: %TRUE on success
 */
gboolean
natter_db_upsert_contact (NatterDb       *self,
                          NatterContact  *contact,
                          GError        **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (NATTER_IS_CONTACT (contact), FALSE);

  if (!(stmt = db_stmt (self, STMT_CONTACT_UPSERT, error)))
    return FALSE;
  bind_text (stmt, 1, natter_contact_get_peer_id (contact));
  bind_text (stmt, 2, natter_contact_get_display_name (contact));
  bind_text (stmt, 3, natter_contact_state_to_string (natter_contact_get_state (contact)));
  sqlite3_bind_int (stmt, 4, natter_contact_get_verified (contact));
  sqlite3_bind_int64 (stmt, 5, natter_contact_get_added_at (contact));
  return stmt_run (self, stmt, "Could not save the contact", error);
}

/**
 * natter_db_get_contact:
 * @self: a connection
 * @peer_id: the contact's peer ID
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the contact, or %NULL with
 *   %NATTER_STORE_ERROR_NOT_FOUND
 */
NatterContact *
natter_db_get_contact (NatterDb    *self,
                       const char  *peer_id,
                       GError     **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;
  int rc;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (peer_id != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_CONTACT_GET, error)))
    return NULL;
  bind_text (stmt, 1, peer_id);
  rc = stmt_step (self, stmt, "Could not read the contact", error);
  if (rc == SQLITE_ROW)
    return row_to_contact (stmt, error);
  if (rc == SQLITE_DONE)
    g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND,
                 "No contact with peer ID %s", peer_id);
  return NULL;
}

/**
 * natter_db_list_contacts:
 * @self: a connection
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (element-type NatterContact): every contact,
 *   sorted by name
 */
GPtrArray *
natter_db_list_contacts (NatterDb  *self,
                         GError   **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;
  g_autoptr(GPtrArray) result = g_ptr_array_new_with_free_func (g_object_unref);
  int rc;

  g_return_val_if_fail (self != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_CONTACT_LIST, error)))
    return NULL;
  while ((rc = stmt_step (self, stmt, "Could not list contacts", error)) == SQLITE_ROW)
    {
      NatterContact *contact = row_to_contact (stmt, error);

      if (contact == NULL)
        return NULL;
      g_ptr_array_add (result, contact);
    }
  if (rc != SQLITE_DONE)
    return NULL;
  return g_steal_pointer (&result);
}

/**
 * natter_db_set_contact_state:
 * @self: a connection
 * @peer_id: the contact's peer ID
 * @state: the new state
 * @error: return location for a #GError
 *
 * Returns: %TRUE on success; %NATTER_STORE_ERROR_NOT_FOUND for an unknown
 *   contact
 */
gboolean
natter_db_set_contact_state (NatterDb            *self,
                             const char          *peer_id,
                             NatterContactState   state,
                             GError             **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (peer_id != NULL, FALSE);

  if ((guint) state > NATTER_CONTACT_BLOCKED)
    return set_invalid (error, "contact state");
  if (!(stmt = db_stmt (self, STMT_CONTACT_SET_STATE, error)))
    return FALSE;
  bind_text (stmt, 1, peer_id);
  bind_text (stmt, 2, natter_contact_state_to_string (state));
  if (!stmt_run (self, stmt, "Could not change the contact's state", error))
    return FALSE;
  if (sqlite3_changes (self->db) == 0)
    {
      g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND,
                   "No contact with peer ID %s", peer_id);
      return FALSE;
    }
  return TRUE;
}

/* Conversations */

static NatterConversation *
row_to_conversation (NatterDbStmt  *stmt,
                     GError       **error)
{
  g_autofree char *kind_str = column_text (stmt, 1);
  g_autofree char *target = NULL;
  g_autofree char *title = NULL;
  g_autofree char *preview = NULL;
  NatterConversation *conversation;
  NatterConversationKind kind;

  if (!natter_conversation_kind_from_string (kind_str, &kind))
    {
      set_corrupt_row (error, "conversations", "unknown kind");
      return NULL;
    }
  target = column_text (stmt, kind == NATTER_CONVERSATION_DIRECT ? 2 : 3);
  if (target == NULL)
    {
      set_corrupt_row (error, "conversations", "no peer or group");
      return NULL;
    }
  title = column_text (stmt, 4);
  preview = column_text (stmt, 7);
  conversation = natter_conversation_new (sqlite3_column_int64 (stmt, 0), kind, target,
                                          title, sqlite3_column_int64 (stmt, 5),
                                          (guint) CLAMP (sqlite3_column_int64 (stmt, 6),
                                                         0, NATTER_DB_UNREAD_CAP));
  natter_conversation_set_preview (conversation, preview);
  return conversation;
}

/**
 * natter_db_ensure_conversation:
 * @self: a connection
 * @kind: direct or group
 * @peer_or_group_id: the peer ID, or the group ID
 * @title: (nullable): the title for a new conversation
 * @error: return location for a #GError
 *
 * Finds the conversation with a peer or group, creating it if needed.
 *
 * Returns: the conversation's id, or 0 on error
 */
gint64
natter_db_ensure_conversation (NatterDb                *self,
                               NatterConversationKind   kind,
                               const char              *peer_or_group_id,
                               const char              *title,
                               GError                 **error)
{
  gint64 id = 0;

  g_return_val_if_fail (self != NULL, 0);
  g_return_val_if_fail (peer_or_group_id != NULL, 0);

  if ((guint) kind > NATTER_CONVERSATION_GROUP)
    {
      set_invalid (error, "conversation kind");
      return 0;
    }

  if (!tx_begin (self, error))
    return 0;

  {
    g_autoptr(NatterDbStmt) find = NULL;
    int rc;

    if (!(find = db_stmt (self, kind == NATTER_CONVERSATION_DIRECT ?
                          STMT_CONV_FIND_PEER : STMT_CONV_FIND_GROUP, error)))
      goto fail;
    bind_text (find, 1, peer_or_group_id);
    rc = stmt_step (self, find, "Could not look up the conversation", error);
    if (rc == SQLITE_ROW)
      id = sqlite3_column_int64 (find, 0);
    else if (rc != SQLITE_DONE)
      goto fail;
  }

  if (id == 0)
    {
      g_autoptr(NatterDbStmt) insert = NULL;

      if (!(insert = db_stmt (self, STMT_CONV_INSERT, error)))
        goto fail;
      bind_text (insert, 1, natter_conversation_kind_to_string (kind));
      bind_text (insert, 2, kind == NATTER_CONVERSATION_DIRECT ? peer_or_group_id : NULL);
      bind_text (insert, 3, kind == NATTER_CONVERSATION_GROUP ? peer_or_group_id : NULL);
      bind_text (insert, 4, title);
      if (!stmt_run (self, insert, "Could not create the conversation", error))
        goto fail;
      id = sqlite3_last_insert_rowid (self->db);
    }

  if (!tx_commit (self, error))
    return 0;
  return id;

fail:
  tx_rollback (self);
  return 0;
}

/**
 * natter_db_get_conversation:
 * @self: a connection
 * @conversation_id: a conversation id
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the conversation, or %NULL with
 *   %NATTER_STORE_ERROR_NOT_FOUND
 */
NatterConversation *
natter_db_get_conversation (NatterDb  *self,
                            gint64     conversation_id,
                            GError   **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;
  int rc;

  g_return_val_if_fail (self != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_CONV_GET, error)))
    return NULL;
  sqlite3_bind_int64 (stmt, 1, conversation_id);
  rc = stmt_step (self, stmt, "Could not read the conversation", error);
  if (rc == SQLITE_ROW)
    return row_to_conversation (stmt, error);
  if (rc == SQLITE_DONE)
    g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND,
                 "No conversation %" G_GINT64_FORMAT, conversation_id);
  return NULL;
}

/**
 * natter_db_list_conversations:
 * @self: a connection
 * @error: return location for a #GError
 *
 * Reads the conversations with their last activity (the newest message
 * timestamp), unread count (at most %NATTER_DB_UNREAD_CAP) and preview
 * (the start of the newest message).  None of them is stored per message:
 * this costs a few index probes per conversation.
 *
 * Returns: (transfer full) (element-type NatterConversation): every
 *   conversation, most recently active first
 */
GPtrArray *
natter_db_list_conversations (NatterDb  *self,
                              GError   **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;
  g_autoptr(GPtrArray) result = g_ptr_array_new_with_free_func (g_object_unref);
  int rc;

  g_return_val_if_fail (self != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_CONV_LIST, error)))
    return NULL;
  while ((rc = stmt_step (self, stmt, "Could not list conversations", error)) == SQLITE_ROW)
    {
      NatterConversation *conversation = row_to_conversation (stmt, error);

      if (conversation == NULL)
        return NULL;
      g_ptr_array_add (result, conversation);
    }
  if (rc != SQLITE_DONE)
    return NULL;
  return g_steal_pointer (&result);
}

/**
 * natter_db_mark_conversation_read:
 * @self: a connection
 * @conversation_id: a conversation id
 * @error: return location for a #GError
 *
 * Marks every incoming message of the conversation read, which clears its
 * unread count.  Only the messages are written.
 *
 * Returns: (transfer full) (element-type utf8): the msg_ids that became
 *   read (the service sends read receipts for them), or %NULL on error
 */
GPtrArray *
natter_db_mark_conversation_read (NatterDb  *self,
                                  gint64     conversation_id,
                                  GError   **error)
{
  g_autoptr(GPtrArray) msg_ids = g_ptr_array_new_with_free_func (g_free);

  g_return_val_if_fail (self != NULL, NULL);

  if (!tx_begin (self, error))
    return NULL;

  {
    g_autoptr(NatterDbStmt) exists = NULL;
    int rc;

    if (!(exists = db_stmt (self, STMT_CONV_EXISTS, error)))
      goto fail;
    sqlite3_bind_int64 (exists, 1, conversation_id);
    rc = stmt_step (self, exists, "Could not look up the conversation", error);
    if (rc == SQLITE_DONE)
      g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND,
                   "No conversation %" G_GINT64_FORMAT, conversation_id);
    if (rc != SQLITE_ROW)
      goto fail;
  }

  {
    g_autoptr(NatterDbStmt) mark = NULL;
    int rc;

    if (!(mark = db_stmt (self, STMT_MSG_MARK_READ, error)))
      goto fail;
    sqlite3_bind_int64 (mark, 1, conversation_id);
    while ((rc = stmt_step (self, mark, "Could not mark messages read", error)) == SQLITE_ROW)
      {
        char *msg_id = column_text (mark, 0);

        if (msg_id != NULL)
          g_ptr_array_add (msg_ids, msg_id);
      }
    if (rc != SQLITE_DONE)
      goto fail;
  }

  if (!tx_commit (self, error))
    return NULL;
  return g_steal_pointer (&msg_ids);

fail:
  tx_rollback (self);
  return NULL;
}

/* Messages */

static gboolean
validate_message (const NatterStoreMessage  *message,
                  GError                   **error)
{
  if (message->msg_id == NULL || *message->msg_id == '\0')
    return set_invalid (error, "message without an ID");
  if (message->sender == NULL)
    return set_invalid (error, "message without a sender");
  if ((guint) message->direction > NATTER_STORE_DIRECTION_OUT)
    return set_invalid (error, "message direction");
  if ((guint) message->state > NATTER_STORE_MESSAGE_READ)
    return set_invalid (error, "message state");
  if (!g_utf8_validate (message->msg_id, -1, NULL) ||
      !g_utf8_validate (message->sender, -1, NULL) ||
      (message->type != NULL && !g_utf8_validate (message->type, -1, NULL)) ||
      (message->body != NULL && !g_utf8_validate (message->body, -1, NULL)) ||
      (message->relay_via != NULL && !g_utf8_validate (message->relay_via, -1, NULL)))
    return set_invalid (error, "message text is not UTF-8");
  return TRUE;
}

/* Inserts one message inside the caller's transaction. */
static gboolean
insert_message_locked (NatterDb            *self,
                       NatterStoreMessage  *message,
                       gboolean            *was_new,
                       GError             **error)
{
  g_autoptr(NatterDbStmt) insert = NULL;

  if (!(insert = db_stmt (self, STMT_MSG_INSERT, error)))
    return FALSE;
  bind_text (insert, 1, message->msg_id);
  sqlite3_bind_int64 (insert, 2, message->conversation_id);
  bind_text (insert, 3, message->sender);
  bind_text (insert, 4, natter_store_direction_to_string (message->direction));
  bind_text (insert, 5, message->type ? message->type : "text");
  bind_text (insert, 6, message->body);
  sqlite3_bind_int64 (insert, 7, message->timestamp);
  sqlite3_bind_int64 (insert, 8, message->sequence);
  bind_text (insert, 9, natter_store_message_state_to_string (message->state));
  bind_text (insert, 10, message->relay_via);
  bind_bytes (insert, 11, message->wire);
  if (!stmt_run (self, insert, "Could not store the message", error))
    return FALSE;

  if (sqlite3_changes (self->db) == 0)
    {
      /* A duplicate: report the stored row so the caller can still ack. */
      g_autoptr(NatterDbStmt) find = NULL;

      *was_new = FALSE;
      if (!(find = db_stmt (self, STMT_MSG_FIND_ID, error)))
        return FALSE;
      bind_text (find, 1, message->msg_id);
      if (stmt_step (self, find, "Could not look up the message", error) == SQLITE_ROW)
        message->id = sqlite3_column_int64 (find, 0);
      return TRUE;
    }

  /* The conversation's row is not written: its unread count and preview
   * are read from the messages, and its last activity takes this
   * message's timestamp in the next index batch (natter-db-schema.c). */
  *was_new = TRUE;
  message->id = sqlite3_last_insert_rowid (self->db);
  return TRUE;
}

/**
 * natter_db_insert_message:
 * @self: a connection
 * @message: the message; its @id is set to the stored row's id
 * @was_new: (out) (optional): %FALSE when a message with the same msg_id
 *   was already stored (nothing is written then)
 * @error: return location for a #GError
 *
 * Stores a message in its own transaction, idempotently by msg_id; its
 * conversation's last activity, unread count and preview follow at once
 * in natter_db_list_conversations().  When this returns %TRUE the message
 * is on disk and may be acknowledged.  Its full-text index entry is
 * written by a later natter_db_flush_index(); natter_db_search() finds it
 * in the meantime all the same.
 *
 * Returns: %TRUE on success; %NATTER_STORE_ERROR_CONSTRAINT for an unknown
 *   conversation
 */
gboolean
natter_db_insert_message (NatterDb            *self,
                          NatterStoreMessage  *message,
                          gboolean            *was_new,
                          GError             **error)
{
  gboolean is_new = FALSE;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (message != NULL, FALSE);

  if (!validate_message (message, error))
    return FALSE;
  if (!tx_begin (self, error))
    return FALSE;
  if (!insert_message_locked (self, message, &is_new, error))
    {
      tx_rollback (self);
      return FALSE;
    }
  if (!tx_commit (self, error))
    return FALSE;
  index_note_pending (self, is_new ? 1 : 0);
  if (was_new != NULL)
    *was_new = is_new;
  return TRUE;
}

/**
 * natter_db_insert_messages:
 * @self: a connection
 * @messages: (element-type NatterStoreMessage): messages to store
 * @n_new: (out) (optional): how many were not stored before
 * @error: return location for a #GError
 *
 * Stores many messages in one transaction (a backlog handed over by a
 * relay, an import).  All or none are written.  The same transaction
 * indexes them for search, with any other pending messages: a big
 * transaction writes one FTS5 segment whatever its size.
 *
 * Returns: %TRUE on success
 */
gboolean
natter_db_insert_messages (NatterDb   *self,
                           GPtrArray  *messages,
                           guint      *n_new,
                           GError    **error)
{
  guint count = 0;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (messages != NULL, FALSE);

  for (guint i = 0; i < messages->len; i++)
    if (!validate_message (g_ptr_array_index (messages, i), error))
      return FALSE;

  if (!tx_begin (self, error))
    return FALSE;
  for (guint i = 0; i < messages->len; i++)
    {
      gboolean is_new;

      if (!insert_message_locked (self, g_ptr_array_index (messages, i), &is_new, error))
        {
          tx_rollback (self);
          return FALSE;
        }
      count += is_new;
    }
  if ((count > 0 || self->index_pending > 0) &&
      !index_pending_locked (self, error))
    {
      tx_rollback (self);
      return FALSE;
    }
  if (!tx_commit (self, error))
    return FALSE;
  if (count > 0 || self->index_pending > 0)
    index_note_done (self);
  if (n_new != NULL)
    *n_new = count;
  return TRUE;
}

/**
 * natter_db_update_message_state:
 * @self: a connection
 * @msg_id: the message ID
 * @state: the new state
 * @changed: (out) (optional): %FALSE when the move was not forward (the
 *   stored state is kept; this is not an error, acks arrive out of order)
 * @error: return location for a #GError
 *
 * Moves a message's delivery state forward (see
 * natter_store_message_state_can_advance()).  An incoming message that
 * becomes read leaves its conversation's unread count (which is counted,
 * not stored: only the message is written).
 *
 * Returns: %TRUE on success; %NATTER_STORE_ERROR_NOT_FOUND for an unknown
 *   msg_id
 */
gboolean
natter_db_update_message_state (NatterDb                 *self,
                                const char               *msg_id,
                                NatterStoreMessageState   state,
                                gboolean                 *changed,
                                GError                  **error)
{
  gboolean was_changed;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (msg_id != NULL, FALSE);

  if ((guint) state > NATTER_STORE_MESSAGE_READ)
    return set_invalid (error, "message state");

  if (!tx_begin (self, error))
    return FALSE;

  {
    g_autoptr(NatterDbStmt) update = NULL;

    if (!(update = db_stmt (self, STMT_MSG_UPDATE_STATE, error)))
      goto fail;
    bind_text (update, 1, msg_id);
    bind_text (update, 2, natter_store_message_state_to_string (state));
    sqlite3_bind_int (update, 3, (int) state);
    if (!stmt_run (self, update, "Could not update the message state", error))
      goto fail;
    was_changed = sqlite3_changes (self->db) > 0;
  }

  if (!was_changed)
    {
      g_autoptr(NatterDbStmt) find = NULL;
      int rc;

      if (!(find = db_stmt (self, STMT_MSG_FIND_ID, error)))
        goto fail;
      bind_text (find, 1, msg_id);
      rc = stmt_step (self, find, "Could not look up the message", error);
      if (rc == SQLITE_DONE)
        g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND,
                     "No message with ID %s", msg_id);
      if (rc != SQLITE_ROW)
        goto fail;
    }

  if (!tx_commit (self, error))
    return FALSE;
  if (changed != NULL)
    *changed = was_changed;
  return TRUE;

fail:
  tx_rollback (self);
  return FALSE;
}

/* Reads MESSAGE_COLUMNS (and the wire, when @with_wire) from a row. */
static NatterStoreMessage *
row_to_message (NatterDbStmt  *stmt,
                gboolean       with_wire,
                GError       **error)
{
  g_autoptr(NatterStoreMessage) message = natter_store_message_new ();
  g_autofree char *direction = NULL;
  g_autofree char *state = NULL;

  message->id = sqlite3_column_int64 (stmt, 0);
  if (!column_nonnull_text (stmt, 1, "messages", &message->msg_id, error))
    return NULL;
  message->conversation_id = sqlite3_column_int64 (stmt, 2);
  if (!column_nonnull_text (stmt, 3, "messages", &message->sender, error))
    return NULL;
  direction = column_text (stmt, 4);
  if (!natter_store_direction_from_string (direction, &message->direction))
    {
      set_corrupt_row (error, "messages", "unknown direction");
      return NULL;
    }
  message->type = column_text (stmt, 5);
  if (message->type == NULL)
    message->type = g_strdup ("text");
  message->body = column_text (stmt, 6);
  message->timestamp = sqlite3_column_int64 (stmt, 7);
  message->sequence = sqlite3_column_int64 (stmt, 8);
  state = column_text (stmt, 9);
  if (!natter_store_message_state_from_string (state, &message->state))
    {
      set_corrupt_row (error, "messages", "unknown state");
      return NULL;
    }
  message->relay_via = column_text (stmt, 10);
  if (with_wire)
    message->wire = column_bytes (stmt, 11);
  return g_steal_pointer (&message);
}

static GPtrArray *
collect_messages (NatterDb      *self,
                  NatterDbStmt  *stmt,
                  const char    *what,
                  GError       **error)
{
  g_autoptr(GPtrArray) result =
    g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_message_free);
  int rc;

  while ((rc = stmt_step (self, stmt, what, error)) == SQLITE_ROW)
    {
      NatterStoreMessage *message = row_to_message (stmt, FALSE, error);

      if (message == NULL)
        return NULL;
      g_ptr_array_add (result, message);
    }
  if (rc != SQLITE_DONE)
    return NULL;
  return g_steal_pointer (&result);
}

/**
 * natter_db_get_message:
 * @self: a connection
 * @msg_id: the message ID
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the message with its wire bytes, or %NULL with
 *   %NATTER_STORE_ERROR_NOT_FOUND
 */
NatterStoreMessage *
natter_db_get_message (NatterDb    *self,
                       const char  *msg_id,
                       GError     **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;
  int rc;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (msg_id != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_MSG_GET, error)))
    return NULL;
  bind_text (stmt, 1, msg_id);
  rc = stmt_step (self, stmt, "Could not read the message", error);
  if (rc == SQLITE_ROW)
    return row_to_message (stmt, TRUE, error);
  if (rc == SQLITE_DONE)
    g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND,
                 "No message with ID %s", msg_id);
  return NULL;
}

/**
 * natter_db_load_page:
 * @self: a connection
 * @conversation_id: a conversation id
 * @before_id: load messages with a row id below this, or 0 for the latest
 * @limit: the page size
 * @error: return location for a #GError
 *
 * Loads one page of history, newest first.  Pass the id of the last
 * (oldest) message of a page as @before_id to get the page before it.
 * Pages leave out the wire bytes (use natter_db_get_message()).
 *
 * Returns: (transfer full) (element-type NatterStoreMessage): the page,
 *   empty at the start of history, or %NULL on error
 */
GPtrArray *
natter_db_load_page (NatterDb  *self,
                     gint64     conversation_id,
                     gint64     before_id,
                     guint      limit,
                     GError   **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_MSG_PAGE, error)))
    return NULL;
  sqlite3_bind_int64 (stmt, 1, conversation_id);
  sqlite3_bind_int64 (stmt, 2, before_id > 0 ? before_id : G_MAXINT64);
  sqlite3_bind_int64 (stmt, 3, limit);
  return collect_messages (self, stmt, "Could not load history", error);
}

/**
 * natter_db_count_messages:
 * @self: a connection
 * @conversation_id: a conversation id, or 0 for all conversations
 * @error: return location for a #GError
 *
 * Returns: the number of messages, or -1 on error
 */
gint64
natter_db_count_messages (NatterDb  *self,
                          gint64     conversation_id,
                          GError   **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, -1);

  if (!(stmt = db_stmt (self, conversation_id ? STMT_MSG_COUNT_CONV : STMT_MSG_COUNT_ALL, error)))
    return -1;
  if (conversation_id)
    sqlite3_bind_int64 (stmt, 1, conversation_id);
  if (stmt_step (self, stmt, "Could not count messages", error) != SQLITE_ROW)
    return -1;
  return sqlite3_column_int64 (stmt, 0);
}

static gboolean
term_has_token_chars (const char *term)
{
  for (const char *p = term; *p; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (g_unichar_isalnum (c) || g_unichar_ismark (c))
        return TRUE;
    }
  return FALSE;
}

/**
 * natter_db_build_match_query:
 * @user_query: what the user typed
 *
 * Turns free text into an FTS5 query that cannot be a syntax error: every
 * whitespace-separated term becomes a quoted phrase (quotes doubled), and
 * the phrases are ANDed.  A term ending in `*` stays a prefix search.
 * Terms with no letters or digits are dropped, since the tokenizer would
 * drop them anyway.
 *
 * Returns: (transfer full) (nullable): the MATCH expression, or %NULL when
 *   nothing searchable is left
 */
char *
natter_db_build_match_query (const char *user_query)
{
  g_autofree char *valid = NULL;
  g_auto(GStrv) terms = NULL;
  g_autoptr(GString) match = NULL;

  if (user_query == NULL)
    return NULL;

  valid = g_utf8_make_valid (user_query, -1);
  /* g_strsplit_set only knows ASCII whitespace; map the rest first. */
  for (char *p = valid; *p; p = g_utf8_next_char (p))
    if (g_unichar_isspace (g_utf8_get_char (p)) && (guchar) *p < 0x80)
      *p = ' ';
  terms = g_strsplit_set (valid, " ", -1);
  match = g_string_new (NULL);

  for (guint i = 0; terms[i] != NULL; i++)
    {
      char *term = terms[i];
      gsize len = strlen (term);
      gboolean prefix = FALSE;

      while (len > 0 && term[len - 1] == '*')
        {
          prefix = TRUE;
          term[--len] = '\0';
        }
      if (!term_has_token_chars (term))
        continue;

      if (match->len > 0)
        g_string_append_c (match, ' ');
      g_string_append_c (match, '"');
      for (const char *p = term; *p; p++)
        {
          if (*p == '"')
            g_string_append_c (match, '"');
          g_string_append_c (match, *p);
        }
      g_string_append_c (match, '"');
      if (prefix)
        g_string_append_c (match, '*');
    }

  if (match->len == 0)
    return NULL;
  return g_string_free (g_steal_pointer (&match), FALSE);
}

/**
 * natter_db_search:
 * @self: a connection
 * @query: the text the user typed (any text: it is quoted, not parsed)
 * @conversation_id: a conversation to search, or 0 for all
 * @limit: the most results to return
 * @error: return location for a #GError
 *
 * Full-text search over message bodies, newest first.  Messages whose
 * index entries are still pending are indexed first, so every committed
 * message is searched.
 *
 * Returns: (transfer full) (element-type NatterStoreMessage): the
 *   matches (possibly none), or %NULL on error
 */
GPtrArray *
natter_db_search (NatterDb    *self,
                  const char  *query,
                  gint64       conversation_id,
                  guint        limit,
                  GError     **error)
{
  g_autofree char *match = NULL;
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, NULL);

  match = natter_db_build_match_query (query);
  if (match == NULL || limit == 0)
    return g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_message_free);

  /* Never answer from an index that lacks committed messages. */
  if (!natter_db_flush_index (self, error))
    return NULL;

  if (conversation_id == 0)
    {
      if (!(stmt = db_stmt (self, STMT_MSG_SEARCH, error)))
        return NULL;
      bind_text (stmt, 1, match);
      sqlite3_bind_int64 (stmt, 2, limit);
    }
  else
    {
      if (!(stmt = db_stmt (self, STMT_MSG_SEARCH_CONV, error)))
        return NULL;
      bind_text (stmt, 1, match);
      sqlite3_bind_int64 (stmt, 2, conversation_id);
      sqlite3_bind_int64 (stmt, 3, limit);
    }
  return collect_messages (self, stmt, "Could not search messages", error);
}

/* Outbox */

static NatterStoreOutboxEntry *
row_to_outbox_entry (NatterDbStmt  *stmt,
                     GError       **error)
{
  g_autoptr(NatterStoreOutboxEntry) entry = natter_store_outbox_entry_new ();

  if (!column_nonnull_text (stmt, 0, "outbox", &entry->msg_id, error) ||
      !column_nonnull_text (stmt, 1, "outbox", &entry->recipient, error))
    return NULL;
  entry->wire = column_bytes (stmt, 2);
  if (entry->wire == NULL)
    {
      set_corrupt_row (error, "outbox", "no wire data");
      return NULL;
    }
  entry->next_attempt = sqlite3_column_int64 (stmt, 3);
  entry->attempts = (guint) CLAMP (sqlite3_column_int64 (stmt, 4), 0, G_MAXUINT);
  entry->expires_at = sqlite3_column_int64 (stmt, 5);
  return g_steal_pointer (&entry);
}

static GPtrArray *
collect_outbox (NatterDb      *self,
                NatterDbStmt  *stmt,
                const char    *what,
                GError       **error)
{
  g_autoptr(GPtrArray) result =
    g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_outbox_entry_free);
  int rc;

  while ((rc = stmt_step (self, stmt, what, error)) == SQLITE_ROW)
    {
      NatterStoreOutboxEntry *entry = row_to_outbox_entry (stmt, error);

      if (entry == NULL)
        {
          /* Finish the statement so a DELETE … RETURNING is not half done. */
          while (sqlite3_step (stmt) == SQLITE_ROW)
            ;
          return NULL;
        }
      g_ptr_array_add (result, entry);
    }
  if (rc != SQLITE_DONE)
    return NULL;
  return g_steal_pointer (&result);
}

/**
 * natter_db_outbox_add:
 * @self: a connection
 * @entry: what to send, to whom, and when to try
 * @error: return location for a #GError
 *
 * Queues a wire message for one recipient.  Adding the same (msg_id,
 * recipient) again replaces its wire and schedule but keeps its attempt
 * count.
 *
 * Returns: %TRUE on success
 */
gboolean
natter_db_outbox_add (NatterDb                      *self,
                      const NatterStoreOutboxEntry  *entry,
                      GError                       **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (entry != NULL, FALSE);

  if (entry->msg_id == NULL || entry->recipient == NULL || entry->wire == NULL)
    return set_invalid (error, "outbox entry needs a msg_id, a recipient and wire data");
  if (!(stmt = db_stmt (self, STMT_OUTBOX_ADD, error)))
    return FALSE;
  bind_text (stmt, 1, entry->msg_id);
  bind_text (stmt, 2, entry->recipient);
  bind_bytes (stmt, 3, entry->wire);
  sqlite3_bind_int64 (stmt, 4, entry->next_attempt);
  sqlite3_bind_int64 (stmt, 5, entry->attempts);
  sqlite3_bind_int64 (stmt, 6, entry->expires_at);
  return stmt_run (self, stmt, "Could not queue the message", error);
}

/**
 * natter_db_outbox_remove:
 * @self: a connection
 * @msg_id: the message ID
 * @recipient: (nullable): the recipient, or %NULL for every recipient
 * @error: return location for a #GError
 *
 * Drops delivered (or abandoned) outbox rows.  Removing rows that are not
 * there is not an error: acks may arrive twice.
 *
 * Returns: %TRUE on success
 */
gboolean
natter_db_outbox_remove (NatterDb    *self,
                         const char  *msg_id,
                         const char  *recipient,
                         GError     **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (msg_id != NULL, FALSE);

  if (!(stmt = db_stmt (self, STMT_OUTBOX_REMOVE, error)))
    return FALSE;
  bind_text (stmt, 1, msg_id);
  bind_text (stmt, 2, recipient);
  return stmt_run (self, stmt, "Could not remove the message from the outbox", error);
}

/**
 * natter_db_outbox_reschedule:
 * @self: a connection
 * @msg_id: the message ID
 * @recipient: the recipient
 * @next_attempt: when to try again (ms)
 * @error: return location for a #GError
 *
 * Records a failed attempt and the time of the next one (the service
 * computes the backoff).
 *
 * Returns: %TRUE on success; %NATTER_STORE_ERROR_NOT_FOUND if the row is gone
 */
gboolean
natter_db_outbox_reschedule (NatterDb    *self,
                             const char  *msg_id,
                             const char  *recipient,
                             gint64       next_attempt,
                             GError     **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (msg_id != NULL && recipient != NULL, FALSE);

  if (!(stmt = db_stmt (self, STMT_OUTBOX_RESCHEDULE, error)))
    return FALSE;
  bind_text (stmt, 1, msg_id);
  bind_text (stmt, 2, recipient);
  sqlite3_bind_int64 (stmt, 3, next_attempt);
  if (!stmt_run (self, stmt, "Could not reschedule the message", error))
    return FALSE;
  if (sqlite3_changes (self->db) == 0)
    {
      g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND,
                   "Message %s to %s is not in the outbox", msg_id, recipient);
      return FALSE;
    }
  return TRUE;
}

/**
 * natter_db_outbox_due:
 * @self: a connection
 * @now: the current time (ms)
 * @limit: the most entries to return
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (element-type NatterStoreOutboxEntry): entries
 *   whose next attempt is due and that have not expired, earliest first
 */
GPtrArray *
natter_db_outbox_due (NatterDb  *self,
                      gint64     now,
                      guint      limit,
                      GError   **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_OUTBOX_DUE, error)))
    return NULL;
  sqlite3_bind_int64 (stmt, 1, now);
  sqlite3_bind_int64 (stmt, 2, limit);
  return collect_outbox (self, stmt, "Could not read the outbox", error);
}

/**
 * natter_db_outbox_take_expired:
 * @self: a connection
 * @now: the current time (ms)
 * @error: return location for a #GError
 *
 * Removes the entries whose TTL is over and returns them, so that the
 * service can mark their messages failed.
 *
 * Returns: (transfer full) (element-type NatterStoreOutboxEntry): the
 *   removed entries
 */
GPtrArray *
natter_db_outbox_take_expired (NatterDb  *self,
                               gint64     now,
                               GError   **error)
{
  g_autoptr(GPtrArray) result = NULL;

  g_return_val_if_fail (self != NULL, NULL);

  if (!tx_begin (self, error))
    return NULL;
  {
    g_autoptr(NatterDbStmt) stmt = db_stmt (self, STMT_OUTBOX_TAKE_EXPIRED, error);

    if (stmt == NULL)
      goto fail;
    sqlite3_bind_int64 (stmt, 1, now);
    result = collect_outbox (self, stmt, "Could not expire outbox entries", error);
    if (result == NULL)
      goto fail;
  }
  if (!tx_commit (self, error))
    return NULL;
  return g_steal_pointer (&result);

fail:
  tx_rollback (self);
  return NULL;
}

/* Relay store */

/**
 * natter_db_relay_add:
 * @self: a connection
 * @entry: the sealed message and its recipient; @entry->size is ignored
 * @was_new: (out) (optional): %FALSE if it was already held
 * @error: return location for a #GError
 *
 * Holds a sealed message for an offline peer.  Quotas are the caller's
 * business (see natter_db_relay_bytes_for_recipient()).
 *
 * Returns: %TRUE on success
 */
gboolean
natter_db_relay_add (NatterDb                     *self,
                     const NatterStoreRelayEntry  *entry,
                     gboolean                     *was_new,
                     GError                      **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (entry != NULL, FALSE);

  if (entry->msg_id == NULL || entry->recipient == NULL ||
      entry->sender == NULL || entry->wire == NULL)
    return set_invalid (error, "relay entry needs a msg_id, recipient, sender and wire data");
  if (!(stmt = db_stmt (self, STMT_RELAY_ADD, error)))
    return FALSE;
  bind_text (stmt, 1, entry->msg_id);
  bind_text (stmt, 2, entry->recipient);
  bind_text (stmt, 3, entry->sender);
  bind_bytes (stmt, 4, entry->wire);
  sqlite3_bind_int64 (stmt, 5, entry->received_at);
  sqlite3_bind_int64 (stmt, 6, entry->expires_at);
  if (!stmt_run (self, stmt, "Could not hold the message for relaying", error))
    return FALSE;
  if (was_new != NULL)
    *was_new = sqlite3_changes (self->db) > 0;
  return TRUE;
}

static int
compare_relay_entries (gconstpointer a,
                       gconstpointer b)
{
  const NatterStoreRelayEntry *ea = *(NatterStoreRelayEntry * const *) a;
  const NatterStoreRelayEntry *eb = *(NatterStoreRelayEntry * const *) b;

  return (ea->received_at > eb->received_at) - (ea->received_at < eb->received_at);
}

/**
 * natter_db_relay_take_for_recipient:
 * @self: a connection
 * @recipient: the peer that came back
 * @now: the current time (ms); expired entries are not handed over
 * @limit: the most entries to take
 * @error: return location for a #GError
 *
 * Removes and returns the messages held for @recipient, oldest first.  If
 * the hand-over fails, the caller adds them back.
 *
 * Returns: (transfer full) (element-type NatterStoreRelayEntry): the
 *   entries
 */
GPtrArray *
natter_db_relay_take_for_recipient (NatterDb    *self,
                                    const char  *recipient,
                                    gint64       now,
                                    guint        limit,
                                    GError     **error)
{
  g_autoptr(GPtrArray) result =
    g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_relay_entry_free);

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (recipient != NULL, NULL);

  if (!tx_begin (self, error))
    return NULL;
  {
    g_autoptr(NatterDbStmt) stmt = db_stmt (self, STMT_RELAY_TAKE, error);
    int rc;

    if (stmt == NULL)
      goto fail;
    bind_text (stmt, 1, recipient);
    sqlite3_bind_int64 (stmt, 2, now);
    sqlite3_bind_int64 (stmt, 3, limit);
    while ((rc = stmt_step (self, stmt, "Could not take relayed messages", error)) == SQLITE_ROW)
      {
        g_autoptr(NatterStoreRelayEntry) entry = natter_store_relay_entry_new ();

        if (!column_nonnull_text (stmt, 0, "relay_store", &entry->msg_id, error) ||
            !column_nonnull_text (stmt, 1, "relay_store", &entry->recipient, error) ||
            !column_nonnull_text (stmt, 2, "relay_store", &entry->sender, error) ||
            (entry->wire = column_bytes (stmt, 3)) == NULL)
          {
            if (error == NULL || *error == NULL)
              set_corrupt_row (error, "relay_store", "no wire data");
            goto fail;
          }
        entry->received_at = sqlite3_column_int64 (stmt, 4);
        entry->expires_at = sqlite3_column_int64 (stmt, 5);
        entry->size = g_bytes_get_size (entry->wire);
        g_ptr_array_add (result, g_steal_pointer (&entry));
      }
    if (rc != SQLITE_DONE)
      goto fail;
  }
  if (!tx_commit (self, error))
    return NULL;

  /* RETURNING gives rows in no defined order. */
  g_ptr_array_sort (result, compare_relay_entries);
  return g_steal_pointer (&result);

fail:
  tx_rollback (self);
  return NULL;
}

/**
 * natter_db_relay_remove:
 * @self: a connection
 * @msg_id: the message ID
 * @recipient: the recipient
 * @error: return location for a #GError
 *
 * Drops one held message (for example when its recipient's ack was seen
 * by another route).
 *
 * Returns: %TRUE on success, whether or not it was held
 */
gboolean
natter_db_relay_remove (NatterDb    *self,
                        const char  *msg_id,
                        const char  *recipient,
                        GError     **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (msg_id != NULL && recipient != NULL, FALSE);

  if (!(stmt = db_stmt (self, STMT_RELAY_REMOVE, error)))
    return FALSE;
  bind_text (stmt, 1, msg_id);
  bind_text (stmt, 2, recipient);
  return stmt_run (self, stmt, "Could not remove a relayed message", error);
}

static gint64
relay_aggregate (NatterDb    *self,
                 StmtId       id,
                 const char  *recipient,
                 GError     **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, -1);
  g_return_val_if_fail (recipient != NULL, -1);

  if (!(stmt = db_stmt (self, id, error)))
    return -1;
  bind_text (stmt, 1, recipient);
  if (stmt_step (self, stmt, "Could not measure the relay store", error) != SQLITE_ROW)
    return -1;
  return sqlite3_column_int64 (stmt, 0);
}

/**
 * natter_db_relay_bytes_for_recipient:
 * @self: a connection
 * @recipient: a peer ID
 * @error: return location for a #GError
 *
 * Returns: the bytes of wire data held for @recipient (for quotas), or -1
 *   on error
 */
gint64
natter_db_relay_bytes_for_recipient (NatterDb    *self,
                                     const char  *recipient,
                                     GError     **error)
{
  return relay_aggregate (self, STMT_RELAY_BYTES, recipient, error);
}

/**
 * natter_db_relay_count_for_recipient:
 * @self: a connection
 * @recipient: a peer ID
 * @error: return location for a #GError
 *
 * Returns: the number of messages held for @recipient, or -1 on error
 */
gint64
natter_db_relay_count_for_recipient (NatterDb    *self,
                                     const char  *recipient,
                                     GError     **error)
{
  return relay_aggregate (self, STMT_RELAY_COUNT, recipient, error);
}

/**
 * natter_db_relay_delete_expired:
 * @self: a connection
 * @now: the current time (ms)
 * @error: return location for a #GError
 *
 * Returns: the number of expired messages deleted, or -1 on error
 */
gint64
natter_db_relay_delete_expired (NatterDb  *self,
                                gint64     now,
                                GError   **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, -1);

  if (!(stmt = db_stmt (self, STMT_RELAY_DELETE_EXPIRED, error)))
    return -1;
  sqlite3_bind_int64 (stmt, 1, now);
  if (!stmt_run (self, stmt, "Could not expire relayed messages", error))
    return -1;
  return sqlite3_changes64 (self->db);
}

/* Receipts */

/**
 * natter_db_receipt_add:
 * @self: a connection
 * @msg_id: the acknowledged message
 * @peer_id: who acknowledged it
 * @kind: delivered or read
 * @at: when (ms)
 * @error: return location for a #GError
 *
 * Records an acknowledgement; a repeated one keeps the earliest time.
 *
 * Returns: %TRUE on success
 */
gboolean
natter_db_receipt_add (NatterDb                *self,
                       const char              *msg_id,
                       const char              *peer_id,
                       NatterStoreReceiptKind   kind,
                       gint64                   at,
                       GError                 **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (msg_id != NULL && peer_id != NULL, FALSE);

  if ((guint) kind > NATTER_STORE_RECEIPT_READ)
    return set_invalid (error, "receipt kind");
  if (!(stmt = db_stmt (self, STMT_RECEIPT_ADD, error)))
    return FALSE;
  bind_text (stmt, 1, msg_id);
  bind_text (stmt, 2, peer_id);
  bind_text (stmt, 3, natter_store_receipt_kind_to_string (kind));
  sqlite3_bind_int64 (stmt, 4, at);
  return stmt_run (self, stmt, "Could not store the receipt", error);
}

/**
 * natter_db_list_receipts:
 * @self: a connection
 * @msg_id: a message ID
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (element-type NatterStoreReceipt): the
 *   receipts for @msg_id, oldest first
 */
GPtrArray *
natter_db_list_receipts (NatterDb    *self,
                         const char  *msg_id,
                         GError     **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;
  g_autoptr(GPtrArray) result =
    g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_receipt_free);
  int rc;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (msg_id != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_RECEIPT_LIST, error)))
    return NULL;
  bind_text (stmt, 1, msg_id);
  while ((rc = stmt_step (self, stmt, "Could not read receipts", error)) == SQLITE_ROW)
    {
      g_autoptr(NatterStoreReceipt) receipt = g_new0 (NatterStoreReceipt, 1);
      g_autofree char *kind = NULL;

      if (!column_nonnull_text (stmt, 0, "receipts", &receipt->msg_id, error) ||
          !column_nonnull_text (stmt, 1, "receipts", &receipt->peer_id, error))
        return NULL;
      kind = column_text (stmt, 2);
      if (!natter_store_receipt_kind_from_string (kind, &receipt->kind))
        {
          set_corrupt_row (error, "receipts", "unknown kind");
          return NULL;
        }
      receipt->at = sqlite3_column_int64 (stmt, 3);
      g_ptr_array_add (result, g_steal_pointer (&receipt));
    }
  if (rc != SQLITE_DONE)
    return NULL;
  return g_steal_pointer (&result);
}

/* Groups */

/**
 * natter_db_group_upsert:
 * @self: a connection
 * @group: the group
 * @error: return location for a #GError
 *
 * Stores a group, or updates its name and key epoch (which never goes
 * back).
 *
 * Returns: %TRUE on success
 */
gboolean
natter_db_group_upsert (NatterDb                *self,
                        const NatterStoreGroup  *group,
                        GError                 **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (group != NULL, FALSE);

  if (group->id == NULL || group->name == NULL || group->created_by == NULL)
    return set_invalid (error, "group needs an id, a name and a creator");
  if (!(stmt = db_stmt (self, STMT_GROUP_UPSERT, error)))
    return FALSE;
  bind_text (stmt, 1, group->id);
  bind_text (stmt, 2, group->name);
  bind_text (stmt, 3, group->created_by);
  sqlite3_bind_int64 (stmt, 4, group->created_at);
  sqlite3_bind_int64 (stmt, 5, group->key_epoch);
  bind_text (stmt, 6, group->state);
  return stmt_run (self, stmt, "Could not save the group", error);
}

static NatterStoreGroup *
row_to_group (NatterDbStmt  *stmt,
              GError       **error)
{
  g_autoptr(NatterStoreGroup) group = natter_store_group_new ();

  if (!column_nonnull_text (stmt, 0, "groups", &group->id, error) ||
      !column_nonnull_text (stmt, 1, "groups", &group->name, error) ||
      !column_nonnull_text (stmt, 2, "groups", &group->created_by, error))
    return NULL;
  group->created_at = sqlite3_column_int64 (stmt, 3);
  group->key_epoch = sqlite3_column_int64 (stmt, 4);
  group->state = column_text (stmt, 5);
  return g_steal_pointer (&group);
}

/**
 * natter_db_group_get:
 * @self: a connection
 * @group_id: the group ID
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the group, or %NULL with
 *   %NATTER_STORE_ERROR_NOT_FOUND
 */
NatterStoreGroup *
natter_db_group_get (NatterDb    *self,
                     const char  *group_id,
                     GError     **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;
  g_autoptr(NatterStoreGroup) group = NULL;
  int rc;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (group_id != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_GROUP_GET, error)))
    return NULL;
  bind_text (stmt, 1, group_id);
  rc = stmt_step (self, stmt, "Could not read the group", error);
  if (rc == SQLITE_DONE)
    g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND,
                 "No group with ID %s", group_id);
  if (rc != SQLITE_ROW)
    return NULL;

  return row_to_group (stmt, error);
}

/**
 * natter_db_group_member_add:
 * @self: a connection
 * @group_id: the group ID (the group must be stored)
 * @peer_id: the member
 * @role: the member's role
 * @joined_at: when the member joined (ms)
 * @error: return location for a #GError
 *
 * Adds a member, or changes the role of an existing one.
 *
 * Returns: %TRUE on success; %NATTER_STORE_ERROR_CONSTRAINT for an unknown
 *   group
 */
gboolean
natter_db_group_member_add (NatterDb              *self,
                            const char            *group_id,
                            const char            *peer_id,
                            NatterStoreGroupRole   role,
                            gint64                 joined_at,
                            GError               **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (group_id != NULL && peer_id != NULL, FALSE);

  if ((guint) role > NATTER_STORE_GROUP_ROLE_ADMIN)
    return set_invalid (error, "group role");
  if (!(stmt = db_stmt (self, STMT_MEMBER_ADD, error)))
    return FALSE;
  bind_text (stmt, 1, group_id);
  bind_text (stmt, 2, peer_id);
  bind_text (stmt, 3, natter_store_group_role_to_string (role));
  sqlite3_bind_int64 (stmt, 4, joined_at);
  return stmt_run (self, stmt, "Could not add the group member", error);
}

/**
 * natter_db_group_member_remove:
 * @self: a connection
 * @group_id: the group ID
 * @peer_id: the member
 * @error: return location for a #GError
 *
 * Returns: %TRUE on success, whether or not @peer_id was a member
 */
gboolean
natter_db_group_member_remove (NatterDb    *self,
                               const char  *group_id,
                               const char  *peer_id,
                               GError     **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (group_id != NULL && peer_id != NULL, FALSE);

  if (!(stmt = db_stmt (self, STMT_MEMBER_REMOVE, error)))
    return FALSE;
  bind_text (stmt, 1, group_id);
  bind_text (stmt, 2, peer_id);
  return stmt_run (self, stmt, "Could not remove the group member", error);
}

/**
 * natter_db_group_list_members:
 * @self: a connection
 * @group_id: the group ID
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (element-type NatterStoreGroupMember): the
 *   members, in joining order
 */
GPtrArray *
natter_db_group_list_members (NatterDb    *self,
                              const char  *group_id,
                              GError     **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;
  g_autoptr(GPtrArray) result =
    g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_group_member_free);
  int rc;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (group_id != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_MEMBER_LIST, error)))
    return NULL;
  bind_text (stmt, 1, group_id);
  while ((rc = stmt_step (self, stmt, "Could not list group members", error)) == SQLITE_ROW)
    {
      g_autoptr(NatterStoreGroupMember) member = g_new0 (NatterStoreGroupMember, 1);
      g_autofree char *role = NULL;

      if (!column_nonnull_text (stmt, 0, "group_members", &member->group_id, error) ||
          !column_nonnull_text (stmt, 1, "group_members", &member->peer_id, error))
        return NULL;
      role = column_text (stmt, 2);
      if (!natter_store_group_role_from_string (role, &member->role))
        {
          set_corrupt_row (error, "group_members", "unknown role");
          return NULL;
        }
      member->joined_at = sqlite3_column_int64 (stmt, 3);
      g_ptr_array_add (result, g_steal_pointer (&member));
    }
  if (rc != SQLITE_DONE)
    return NULL;
  return g_steal_pointer (&result);
}

static gboolean
group_save_inner (NatterDb                     *self,
                  const NatterStoreGroupRecord *record,
                  GError                      **error)
{
  const char *group_id = record->group->id;
  GHashTableIter iter;
  gpointer key_id, key;

  if (!natter_db_group_upsert (self, record->group, error))
    return FALSE;
  if (record->members != NULL)
    {
      g_autoptr(NatterDbStmt) clear = db_stmt (self, STMT_MEMBER_CLEAR, error);

      if (clear == NULL)
        return FALSE;
      bind_text (clear, 1, group_id);
      if (!stmt_run (self, clear, "Could not save the group members", error))
        return FALSE;
      for (guint i = 0; i < record->members->len; i++)
        {
          NatterStoreGroupMember *member = g_ptr_array_index (record->members, i);

          if (!natter_db_group_member_add (self, group_id, member->peer_id, member->role,
                                           member->joined_at, error))
            return FALSE;
        }
    }
  g_hash_table_iter_init (&iter, record->keys);
  while (g_hash_table_iter_next (&iter, &key_id, &key))
    {
      g_autoptr(NatterDbStmt) stmt = db_stmt (self, STMT_GROUP_KEY_ADD, error);

      if (stmt == NULL)
        return FALSE;
      if (g_bytes_get_size (key) != 32)
        return set_invalid (error, "a group key has 32 bytes");
      bind_text (stmt, 1, group_id);
      bind_text (stmt, 2, key_id);
      bind_bytes (stmt, 3, key);
      if (!stmt_run (self, stmt, "Could not save a group key", error))
        return FALSE;
    }
  for (guint i = 0; i < record->messages->len; i++)
    {
      NatterStoreGroupMessage *message = g_ptr_array_index (record->messages, i);
      g_autoptr(NatterDbStmt) stmt = db_stmt (self, STMT_GROUP_MSG_ADD, error);

      if (stmt == NULL)
        return FALSE;
      if (message->author == NULL || message->msg_id == NULL || message->wire == NULL ||
          message->counter < 1)
        return set_invalid (error, "a group message needs an author, a counter, an ID and its frame");
      bind_text (stmt, 1, group_id);
      bind_text (stmt, 2, message->author);
      sqlite3_bind_int64 (stmt, 3, message->counter);
      bind_text (stmt, 4, message->msg_id);
      bind_text (stmt, 5, message->kind);
      bind_text (stmt, 6, message->body);
      sqlite3_bind_int64 (stmt, 7, message->clock_sum);
      bind_bytes (stmt, 8, message->wire);
      if (!stmt_run (self, stmt, "Could not save a group message", error))
        return FALSE;
    }
  return TRUE;
}

/**
 * natter_db_group_save:
 * @self: a connection
 * @record: the group's row (with its state), its current members (all of
 *   them, replacing the stored ones; %NULL leaves them), its keys (added;
 *   a stored key never changes) and new messages of its log (added; one
 *   already stored is left as it is)
 * @error: return location for a #GError
 *
 * Saves all of it in one transaction.
 *
 * Returns: %TRUE on success; nothing is saved on failure
 */
gboolean
natter_db_group_save (NatterDb                     *self,
                      const NatterStoreGroupRecord *record,
                      GError                      **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (record != NULL && record->group != NULL, FALSE);

  if (record->group->id == NULL)
    return set_invalid (error, "group needs an id");
  if (!tx_begin (self, error))
    return FALSE;
  if (!group_save_inner (self, record, error))
    {
      tx_rollback (self);
      return FALSE;
    }
  return tx_commit (self, error);
}

static gboolean
group_load_keys (NatterDb                *self,
                 NatterStoreGroupRecord  *record,
                 GError                 **error)
{
  g_autoptr(NatterDbStmt) stmt = db_stmt (self, STMT_GROUP_KEY_LIST, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  bind_text (stmt, 1, record->group->id);
  while ((rc = stmt_step (self, stmt, "Could not read the group keys", error)) == SQLITE_ROW)
    {
      char *key_id = NULL;
      GBytes *key;

      if (!column_nonnull_text (stmt, 0, "group_keys", &key_id, error))
        return FALSE;
      key = column_bytes (stmt, 1);
      if (key == NULL || g_bytes_get_size (key) != 32)
        {
          g_free (key_id);
          g_clear_pointer (&key, g_bytes_unref);
          return set_corrupt_row (error, "group_keys", "a key is not 32 bytes");
        }
      g_hash_table_insert (record->keys, key_id, key);
    }
  return rc == SQLITE_DONE;
}

static gboolean
group_load_messages (NatterDb                *self,
                     NatterStoreGroupRecord  *record,
                     GError                 **error)
{
  g_autoptr(NatterDbStmt) stmt = db_stmt (self, STMT_GROUP_MSG_LIST, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  bind_text (stmt, 1, record->group->id);
  while ((rc = stmt_step (self, stmt, "Could not read the group messages", error)) == SQLITE_ROW)
    {
      g_autoptr(NatterStoreGroupMessage) message = g_new0 (NatterStoreGroupMessage, 1);

      if (!column_nonnull_text (stmt, 0, "group_messages", &message->author, error) ||
          !column_nonnull_text (stmt, 2, "group_messages", &message->msg_id, error))
        return FALSE;
      message->counter = sqlite3_column_int64 (stmt, 1);
      message->kind = column_text (stmt, 3);
      message->body = column_text (stmt, 4);
      message->clock_sum = sqlite3_column_int64 (stmt, 5);
      message->wire = column_bytes (stmt, 6);
      if (message->wire == NULL)
        return set_corrupt_row (error, "group_messages", "wire");
      g_ptr_array_add (record->messages, g_steal_pointer (&message));
    }
  return rc == SQLITE_DONE;
}

/**
 * natter_db_group_load_all:
 * @self: a connection
 * @error: return location for a #GError
 *
 * Reads every stored group with its members, keys and log.  Only the
 * columns are checked here; the content is natter-groups.c's to check.
 *
 * Returns: (transfer full) (element-type NatterStoreGroupRecord): the
 *   groups, oldest first, or %NULL on error
 */
GPtrArray *
natter_db_group_load_all (NatterDb  *self,
                          GError   **error)
{
  g_autoptr(GPtrArray) result =
    g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_group_record_free);
  g_autoptr(NatterDbStmt) stmt = NULL;
  int rc;

  g_return_val_if_fail (self != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_GROUP_LIST, error)))
    return NULL;
  while ((rc = stmt_step (self, stmt, "Could not list the groups", error)) == SQLITE_ROW)
    {
      g_autoptr(NatterStoreGroupRecord) record = natter_store_group_record_new ();

      natter_store_group_free (record->group);
      if (!(record->group = row_to_group (stmt, error)))
        return NULL;
      g_ptr_array_add (result, g_steal_pointer (&record));
    }
  if (rc != SQLITE_DONE)
    return NULL;
  for (guint i = 0; i < result->len; i++)
    {
      NatterStoreGroupRecord *record = g_ptr_array_index (result, i);

      g_ptr_array_unref (record->members);
      if (!(record->members = natter_db_group_list_members (self, record->group->id, error)) ||
          !group_load_keys (self, record, error) ||
          !group_load_messages (self, record, error))
        return NULL;
    }
  return g_steal_pointer (&result);
}

/* File transfers */

static NatterStoreTransfer *
row_to_transfer (NatterDbStmt  *stmt,
                 GError       **error)
{
  g_autoptr(NatterStoreTransfer) transfer = natter_store_transfer_new ();
  g_autofree char *direction = NULL;
  g_autofree char *state = NULL;

  if (!column_nonnull_text (stmt, 0, "file_transfers", &transfer->id, error))
    return NULL;
  transfer->conversation_id = sqlite3_column_int64 (stmt, 1);
  transfer->msg_id = column_text (stmt, 2);
  if (!column_nonnull_text (stmt, 3, "file_transfers", &transfer->peer_id, error))
    return NULL;
  direction = column_text (stmt, 4);
  if (!natter_store_direction_from_string (direction, &transfer->direction))
    {
      set_corrupt_row (error, "file_transfers", "unknown direction");
      return NULL;
    }
  if (!column_nonnull_text (stmt, 5, "file_transfers", &transfer->name, error))
    return NULL;
  transfer->size = sqlite3_column_int64 (stmt, 6);
  if (!column_nonnull_text (stmt, 7, "file_transfers", &transfer->hash, error))
    return NULL;
  transfer->offset = sqlite3_column_int64 (stmt, 8);
  if (transfer->size < 0 || transfer->offset < 0 || transfer->offset > transfer->size)
    {
      set_corrupt_row (error, "file_transfers", "offset out of range");
      return NULL;
    }
  state = column_text (stmt, 9);
  if (!natter_store_transfer_state_from_string (state, &transfer->state))
    {
      set_corrupt_row (error, "file_transfers", "unknown state");
      return NULL;
    }
  transfer->path = column_text (stmt, 10);
  transfer->created_at = sqlite3_column_int64 (stmt, 11);
  transfer->updated_at = sqlite3_column_int64 (stmt, 12);
  return g_steal_pointer (&transfer);
}

/**
 * natter_db_transfer_upsert:
 * @self: a connection
 * @transfer: the transfer
 * @error: return location for a #GError
 *
 * Stores a transfer; for an existing one only offset, state, path and
 * updated_at change (what was offered is immutable).
 *
 * Returns: %TRUE on success
 */
gboolean
natter_db_transfer_upsert (NatterDb                   *self,
                           const NatterStoreTransfer  *transfer,
                           GError                    **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (transfer != NULL, FALSE);

  if (transfer->id == NULL || transfer->peer_id == NULL ||
      transfer->name == NULL || transfer->hash == NULL)
    return set_invalid (error, "transfer needs an id, a peer, a name and a hash");
  if ((guint) transfer->direction > NATTER_STORE_DIRECTION_OUT ||
      (guint) transfer->state > NATTER_STORE_TRANSFER_REJECTED)
    return set_invalid (error, "transfer direction or state");
  if (!(stmt = db_stmt (self, STMT_TRANSFER_UPSERT, error)))
    return FALSE;
  bind_text (stmt, 1, transfer->id);
  sqlite3_bind_int64 (stmt, 2, transfer->conversation_id);
  bind_text (stmt, 3, transfer->msg_id);
  bind_text (stmt, 4, transfer->peer_id);
  bind_text (stmt, 5, natter_store_direction_to_string (transfer->direction));
  bind_text (stmt, 6, transfer->name);
  sqlite3_bind_int64 (stmt, 7, transfer->size);
  bind_text (stmt, 8, transfer->hash);
  sqlite3_bind_int64 (stmt, 9, transfer->offset);
  bind_text (stmt, 10, natter_store_transfer_state_to_string (transfer->state));
  bind_text (stmt, 11, transfer->path);
  sqlite3_bind_int64 (stmt, 12, transfer->created_at);
  sqlite3_bind_int64 (stmt, 13, transfer->updated_at);
  return stmt_run (self, stmt, "Could not save the file transfer", error);
}

/**
 * natter_db_transfer_get:
 * @self: a connection
 * @id: the transfer ID
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the transfer, or %NULL with
 *   %NATTER_STORE_ERROR_NOT_FOUND
 */
NatterStoreTransfer *
natter_db_transfer_get (NatterDb    *self,
                        const char  *id,
                        GError     **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;
  int rc;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (id != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_TRANSFER_GET, error)))
    return NULL;
  bind_text (stmt, 1, id);
  rc = stmt_step (self, stmt, "Could not read the file transfer", error);
  if (rc == SQLITE_ROW)
    return row_to_transfer (stmt, error);
  if (rc == SQLITE_DONE)
    g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND,
                 "No file transfer with ID %s", id);
  return NULL;
}

/**
 * natter_db_transfer_update_progress:
 * @self: a connection
 * @id: the transfer ID
 * @offset: bytes done so far
 * @state: the transfer's state
 * @now: the current time (ms)
 * @error: return location for a #GError
 *
 * Returns: %TRUE on success; %NATTER_STORE_ERROR_CONSTRAINT when @offset is
 *   beyond the file size, %NATTER_STORE_ERROR_NOT_FOUND for an unknown id
 */
gboolean
natter_db_transfer_update_progress (NatterDb                  *self,
                                    const char                *id,
                                    gint64                     offset,
                                    NatterStoreTransferState   state,
                                    gint64                     now,
                                    GError                   **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (id != NULL, FALSE);

  if ((guint) state > NATTER_STORE_TRANSFER_REJECTED)
    return set_invalid (error, "transfer state");
  if (!(stmt = db_stmt (self, STMT_TRANSFER_PROGRESS, error)))
    return FALSE;
  bind_text (stmt, 1, id);
  sqlite3_bind_int64 (stmt, 2, offset);
  bind_text (stmt, 3, natter_store_transfer_state_to_string (state));
  sqlite3_bind_int64 (stmt, 4, now);
  if (!stmt_run (self, stmt, "Could not save the transfer progress", error))
    return FALSE;
  if (sqlite3_changes (self->db) == 0)
    {
      g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_NOT_FOUND,
                   "No file transfer with ID %s", id);
      return FALSE;
    }
  return TRUE;
}

/**
 * natter_db_transfer_list_unfinished:
 * @self: a connection
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (element-type NatterStoreTransfer): transfers
 *   to resume (offered, accepted, active or paused), oldest first
 */
GPtrArray *
natter_db_transfer_list_unfinished (NatterDb  *self,
                                    GError   **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;
  g_autoptr(GPtrArray) result =
    g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_transfer_free);
  int rc;

  g_return_val_if_fail (self != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_TRANSFER_UNFINISHED, error)))
    return NULL;
  while ((rc = stmt_step (self, stmt, "Could not list file transfers", error)) == SQLITE_ROW)
    {
      NatterStoreTransfer *transfer = row_to_transfer (stmt, error);

      if (transfer == NULL)
        return NULL;
      g_ptr_array_add (result, transfer);
    }
  if (rc != SQLITE_DONE)
    return NULL;
  return g_steal_pointer (&result);
}

/**
 * natter_db_set_message_state_via:
 * @self: a connection
 * @msg_id: the message
 * @state: the new state; only a forward move is made
 * @relay_via: (nullable): the peer it went through, or %NULL to keep it
 * @changed: (out) (optional): whether the row changed
 * @error: return location for a #GError
 *
 * Like natter_db_update_message_state(), also recording the relay.  A
 * message that does not exist is not an error here (@changed is FALSE):
 * receipts may name messages that were deleted.
 *
 * Returns: whether the statement ran
 */
gboolean
natter_db_set_message_state_via (NatterDb                *self,
                                 const char              *msg_id,
                                 NatterStoreMessageState  state,
                                 const char              *relay_via,
                                 gboolean                *changed,
                                 GError                 **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (msg_id != NULL, FALSE);

  if ((guint) state > NATTER_STORE_MESSAGE_READ)
    return set_invalid (error, "message state");
  if (relay_via != NULL && !g_utf8_validate (relay_via, -1, NULL))
    return set_invalid (error, "relay peer");

  if (!(stmt = db_stmt (self, STMT_MSG_UPDATE_STATE_VIA, error)))
    return FALSE;
  bind_text (stmt, 1, msg_id);
  bind_text (stmt, 2, natter_store_message_state_to_string (state));
  sqlite3_bind_int (stmt, 3, (int) state);
  bind_text (stmt, 4, relay_via);
  if (!stmt_run (self, stmt, "Could not update the message state", error))
    return FALSE;
  if (changed != NULL)
    *changed = sqlite3_changes (self->db) > 0;
  return TRUE;
}

/**
 * natter_db_get_max_sequence:
 * @self: a connection
 * @conversation_id: the conversation
 * @direction: whose messages: ours (out) or the peer's (in)
 * @error: return location for a #GError
 *
 * Returns: the highest sequence number stored, 0 when none, -1 on error
 */
gint64
natter_db_get_max_sequence (NatterDb              *self,
                            gint64                 conversation_id,
                            NatterStoreDirection   direction,
                            GError               **error)
{
  g_autoptr(NatterDbStmt) stmt = NULL;

  g_return_val_if_fail (self != NULL, -1);

  if (!(stmt = db_stmt (self, STMT_MSG_MAX_SEQUENCE, error)))
    return -1;
  sqlite3_bind_int64 (stmt, 1, conversation_id);
  bind_text (stmt, 2, natter_store_direction_to_string (direction));
  if (stmt_step (self, stmt, "Could not read the sequence numbers", error) != SQLITE_ROW)
    return -1;
  return sqlite3_column_int64 (stmt, 0);
}

/**
 * natter_db_relay_list_for_recipient:
 * @self: a connection
 * @recipient: a peer ID
 * @now: the current time (ms); expired entries are skipped
 * @limit: the most to return
 * @error: return location for a #GError
 *
 * Reads, without removing, the messages held for @recipient, oldest
 * first.  The service removes each one when the recipient acknowledges
 * it (natter_db_relay_remove()), so a hand-over cut short loses nothing.
 *
 * Returns: (transfer full) (element-type NatterStoreRelayEntry): entries
 */
GPtrArray *
natter_db_relay_list_for_recipient (NatterDb    *self,
                                    const char  *recipient,
                                    gint64       now,
                                    guint        limit,
                                    GError     **error)
{
  g_autoptr(GPtrArray) result =
    g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_relay_entry_free);
  g_autoptr(NatterDbStmt) stmt = NULL;
  int rc;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (recipient != NULL, NULL);

  if (!(stmt = db_stmt (self, STMT_RELAY_LIST, error)))
    return NULL;
  bind_text (stmt, 1, recipient);
  sqlite3_bind_int64 (stmt, 2, now);
  sqlite3_bind_int64 (stmt, 3, limit);
  while ((rc = stmt_step (self, stmt, "Could not read relayed messages", error)) == SQLITE_ROW)
    {
      g_autoptr(NatterStoreRelayEntry) entry = natter_store_relay_entry_new ();

      if (!column_nonnull_text (stmt, 0, "relay_store", &entry->msg_id, error) ||
          !column_nonnull_text (stmt, 1, "relay_store", &entry->recipient, error) ||
          !column_nonnull_text (stmt, 2, "relay_store", &entry->sender, error) ||
          (entry->wire = column_bytes (stmt, 3)) == NULL)
        {
          if (error != NULL && *error == NULL)
            g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CORRUPT,
                         "A relayed message has no content");
          return NULL;
        }
      entry->received_at = sqlite3_column_int64 (stmt, 4);
      entry->expires_at = sqlite3_column_int64 (stmt, 5);
      entry->size = sqlite3_column_int64 (stmt, 6);
      g_ptr_array_add (result, g_steal_pointer (&entry));
    }
  if (rc != SQLITE_DONE)
    return NULL;
  return g_steal_pointer (&result);
}
