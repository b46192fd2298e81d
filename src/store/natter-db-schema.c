/* natter-db-schema.c: the store's schema and its migrations
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include "natter-store-private.h"

/*
 * The schema
 * ==========
 *
 * PRAGMA user_version holds the schema version.  Each entry of migrations[]
 * takes the database from version i - 1 to version i inside one
 * transaction, so a crash mid-upgrade leaves the old version intact.  Old
 * steps are never edited once released: tests/fixtures/schema-v1.sql is a
 * real version-1 database that tests/test-migration.c upgrades.
 *
 * Times are milliseconds since the Unix epoch.  Enumerations are stored as
 * short strings guarded by CHECK constraints, so the file explains itself
 * and a value this code does not know is rejected on read, not guessed.
 *
 * Version 1
 * ---------
 * contacts       peer_id PK, display_name, state pending|accepted|blocked,
 *                verified 0|1, added_at.
 * conversations  id INTEGER PK; kind direct|group with exactly one of
 *                peer_id / group_id set (each UNIQUE, so one conversation
 *                per peer or group); title; last_activity (newest message
 *                timestamp); unread_count (incoming messages not yet read,
 *                kept in step by natter-db.c so the list needs no COUNT).
 *                Index on last_activity for the ordered list.
 * messages       id INTEGER PK (the rowid: arrival order, what history
 *                pages and search results sort by); msg_id TEXT UNIQUE (the
 *                wire ID: duplicates are dropped by it); conversation_id ->
 *                conversations ON DELETE CASCADE; sender; direction in|out;
 *                type (wire message type); body (display text, indexed);
 *                timestamp and sequence (sender's); state
 *                queued|sent|delivered|read|failed; relay_via (peer that
 *                relayed it, NULL if direct); wire (signed wire JSON).
 *                Indexes: (conversation_id, id) serves "a page of one
 *                conversation before id X, newest first" as one range scan;
 *                a partial index of unread incoming messages makes "mark
 *                conversation read" touch only those rows.
 * outbox         one row per (msg_id, recipient) still to be delivered:
 *                wire, next_attempt, attempts, expires_at.  Index on
 *                next_attempt for "what is due now".
 *
 * Version 2
 * ---------
 * conversations  an insert no longer writes its conversation's row (its
 *                last activity and unread count moved with every message:
 *                one more page per single-message insert, about 15 % of
 *                the insert rate), nor the index conversations_activity
 *                (one more page, about 12 %), which is dropped.
 *                unread_count is dropped too and derived when read: the
 *                unread incoming messages of a conversation, counted on the
 *                partial index messages_unread and capped at
 *                NATTER_DB_UNREAD_CAP (1000; the list shows "999+"), so a
 *                read costs at most that many index entries per
 *                conversation, and neither "mark read" nor a state change
 *                writes a conversation row.  last_activity stays, but it
 *                is now the newest timestamp of the conversation's messages
 *                at or below the mark (see deferred indexing below): the
 *                batch that indexes the pending messages also folds their
 *                timestamps into it, and a read takes the larger of it and
 *                the newest timestamp of the conversation's pending
 *                messages (at most about a batch, one range of the rowid
 *                for the whole list).  A message with an old timestamp
 *                (delayed by a relay) still never moves a conversation back
 *                in time.  The preview (the newest message's body by
 *                arrival, the last one its history shows) is one probe of
 *                messages_conversation.
 * messages       messages_unread gains the columns direction and state
 *                (constant in it but for the state name, about 13 bytes an
 *                entry), which makes it covering for the unread count:
 *                SQLite does not see that a partial index's own WHERE
 *                clause needs no table row, and a count that reads no
 *                table row reads only the index's few pages, cold or warm.
 * messages_fts   FTS5 external-content index over messages.body
 *                (content='messages', content_rowid='id', unicode61 with
 *                diacritics folded, columnsize=0 because results are
 *                ordered by rowid, never by rank, and it saves a write per
 *                message).  Filled in deferred batches, see below; state
 *                changes do not touch it.
 * messages_fts_progress
 *                one row (id = 1): indexed_to, the highest messages.id the
 *                batches have indexed and folded into last_activity (the
 *                "mark").
 *
 *                Deferred indexing.  FTS5 writes a new segment at every
 *                commit that touched it, which cost more than the rest of
 *                a single-message insert, so an insert does not index its
 *                row: every message with id > indexed_to is pending.
 *                natter_db_flush_index() indexes the pending rows, and
 *                folds their timestamps into their conversations'
 *                last_activity, in one transaction that also moves
 *                indexed_to to the highest id.
 *                It runs when NATTER_DB_INDEX_BATCH (512) rows are pending
 *                or NATTER_DB_INDEX_DELAY_MS (150 ms) after the first
 *                pending row (the store worker's timed wait on its queue),
 *                before every search (so a search never misses a committed
 *                message), on close, and at open (a crash between a
 *                message's commit and its batch loses nothing: the next
 *                open indexes what is above the mark).  A multi-message
 *                insert indexes in its own transaction instead.  The mark
 *                and the index always move together, so "id <= indexed_to"
 *                means "in the index", which the triggers rely on:
 *                  - delete: an indexed row is removed from the index (an
 *                    external-content 'delete' must be given the indexed
 *                    values, so it is never sent for a pending row);
 *                  - update of body or id: the old row leaves the index if
 *                    it was in it, the new one enters if its id is at or
 *                    below the mark;
 *                  - insert: a row that gets an id at or below the mark
 *                    (the rowid of a deleted newest row is reused, or an id
 *                    is given explicitly) is indexed, and its timestamp
 *                    folded into last_activity, at once, since no batch
 *                    would ever pick it up.
 *                The migration builds the index from the rows already
 *                stored and puts the mark at the highest id.
 * receipts       (msg_id, peer_id, kind delivered|read) PK, at: who
 *                acknowledged what; a group message gets one per member.
 * relay_store    sealed messages held for an offline peer: msg_id,
 *                recipient, sender, wire, received_at, expires_at, size
 *                (= length(wire), computed by SQLite, used for per-recipient
 *                quotas).  UNIQUE (recipient, msg_id); indexes by
 *                (recipient, received_at) for hand-over and by expires_at for
 *                expiry.
 * groups         id PK, name, created_by, created_at, key_epoch (bumped on
 *                each group-key rotation).
 * group_members  (group_id -> groups ON DELETE CASCADE, peer_id) PK, role
 *                admin|member, joined_at; index by peer_id.
 * file_transfers id PK (the transfer ID of the offer), conversation_id ->
 *                conversations, msg_id of the offer, peer_id, direction,
 *                name (already sanitised), size, hash (BLAKE2b hex),
 *                byte_offset (bytes done, for resuming; <= size), state
 *                offered|accepted|active|paused|complete|failed|cancelled|
 *                rejected, path (where the data is written), created_at,
 *                updated_at.  Partial index of unfinished transfers, which
 *                are resumed at start-up.
 */

static const char schema_v1[] =
  "CREATE TABLE contacts ("
  "  peer_id       TEXT PRIMARY KEY NOT NULL,"
  "  display_name  TEXT,"
  "  state         TEXT NOT NULL DEFAULT 'pending'"
  "                CHECK (state IN ('pending', 'accepted', 'blocked')),"
  "  verified      INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),"
  "  added_at      INTEGER NOT NULL"
  ");"
  "CREATE TABLE conversations ("
  "  id            INTEGER PRIMARY KEY,"
  "  kind          TEXT NOT NULL CHECK (kind IN ('direct', 'group')),"
  "  peer_id       TEXT UNIQUE,"
  "  group_id      TEXT UNIQUE,"
  "  title         TEXT,"
  "  last_activity INTEGER NOT NULL DEFAULT 0,"
  "  unread_count  INTEGER NOT NULL DEFAULT 0 CHECK (unread_count >= 0),"
  "  CHECK ((kind = 'direct' AND peer_id IS NOT NULL AND group_id IS NULL)"
  "      OR (kind = 'group' AND group_id IS NOT NULL AND peer_id IS NULL))"
  ");"
  "CREATE INDEX conversations_activity ON conversations (last_activity);"
  "CREATE TABLE messages ("
  "  id              INTEGER PRIMARY KEY,"
  "  msg_id          TEXT NOT NULL UNIQUE,"
  "  conversation_id INTEGER NOT NULL"
  "                  REFERENCES conversations (id) ON DELETE CASCADE,"
  "  sender          TEXT NOT NULL,"
  "  direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),"
  "  type            TEXT NOT NULL DEFAULT 'text',"
  "  body            TEXT,"
  "  timestamp       INTEGER NOT NULL,"
  "  sequence        INTEGER NOT NULL DEFAULT 0,"
  "  state           TEXT NOT NULL CHECK (state IN ('queued', 'sent',"
  "                  'delivered', 'read', 'failed')),"
  "  relay_via       TEXT,"
  "  wire            BLOB"
  ");"
  "CREATE INDEX messages_conversation ON messages (conversation_id, id);"
  "CREATE INDEX messages_unread ON messages (conversation_id)"
  "  WHERE direction = 'in' AND state <> 'read';"
  "CREATE TABLE outbox ("
  "  id            INTEGER PRIMARY KEY,"
  "  msg_id        TEXT NOT NULL,"
  "  recipient     TEXT NOT NULL,"
  "  wire          BLOB NOT NULL,"
  "  next_attempt  INTEGER NOT NULL,"
  "  attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),"
  "  expires_at    INTEGER NOT NULL,"
  "  UNIQUE (msg_id, recipient)"
  ");"
  "CREATE INDEX outbox_due ON outbox (next_attempt);";

static const char schema_v2[] =
  "DROP INDEX conversations_activity;"
  "ALTER TABLE conversations DROP COLUMN unread_count;"
  "DROP INDEX messages_unread;"
  "CREATE INDEX messages_unread ON messages (conversation_id, direction, state)"
  "  WHERE direction = 'in' AND state <> 'read';"
  "CREATE VIRTUAL TABLE messages_fts USING fts5 ("
  "  body,"
  "  content = 'messages',"
  "  content_rowid = 'id',"
  "  columnsize = 0,"
  "  tokenize = 'unicode61 remove_diacritics 2'"
  ");"
  "CREATE TABLE messages_fts_progress ("
  "  id          INTEGER PRIMARY KEY CHECK (id = 1),"
  "  indexed_to  INTEGER NOT NULL"
  ");"
  "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages"
  "  WHEN new.id <= (SELECT indexed_to FROM messages_fts_progress) BEGIN"
  "  INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);"
  "  UPDATE conversations SET last_activity = new.timestamp"
  "    WHERE id = new.conversation_id AND last_activity < new.timestamp;"
  "END;"
  "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages"
  "  WHEN old.id <= (SELECT indexed_to FROM messages_fts_progress) BEGIN"
  "  INSERT INTO messages_fts (messages_fts, rowid, body)"
  "    VALUES ('delete', old.id, old.body);"
  "END;"
  "CREATE TRIGGER messages_fts_update AFTER UPDATE OF id, body ON messages BEGIN"
  "  INSERT INTO messages_fts (messages_fts, rowid, body)"
  "    SELECT 'delete', old.id, old.body"
  "    WHERE old.id <= (SELECT indexed_to FROM messages_fts_progress);"
  "  INSERT INTO messages_fts (rowid, body)"
  "    SELECT new.id, new.body"
  "    WHERE new.id <= (SELECT indexed_to FROM messages_fts_progress);"
  "END;"
  /* Index what version 1 stored, and mark it indexed. */
  "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');"
  "INSERT INTO messages_fts_progress (id, indexed_to)"
  "  SELECT 1, coalesce (max (id), 0) FROM messages;"
  "CREATE TABLE receipts ("
  "  msg_id   TEXT NOT NULL,"
  "  peer_id  TEXT NOT NULL,"
  "  kind     TEXT NOT NULL CHECK (kind IN ('delivered', 'read')),"
  "  at       INTEGER NOT NULL,"
  "  PRIMARY KEY (msg_id, peer_id, kind)"
  ") WITHOUT ROWID;"
  "CREATE TABLE relay_store ("
  "  id           INTEGER PRIMARY KEY,"
  "  msg_id       TEXT NOT NULL,"
  "  recipient    TEXT NOT NULL,"
  "  sender       TEXT NOT NULL,"
  "  wire         BLOB NOT NULL,"
  "  received_at  INTEGER NOT NULL,"
  "  expires_at   INTEGER NOT NULL,"
  "  size         INTEGER NOT NULL CHECK (size >= 0),"
  "  UNIQUE (recipient, msg_id)"
  ");"
  "CREATE INDEX relay_store_recipient ON relay_store (recipient, received_at);"
  "CREATE INDEX relay_store_expiry ON relay_store (expires_at);"
  "CREATE TABLE groups ("
  "  id          TEXT PRIMARY KEY NOT NULL,"
  "  name        TEXT NOT NULL,"
  "  created_by  TEXT NOT NULL,"
  "  created_at  INTEGER NOT NULL,"
  "  key_epoch   INTEGER NOT NULL DEFAULT 0 CHECK (key_epoch >= 0)"
  ");"
  "CREATE TABLE group_members ("
  "  group_id   TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,"
  "  peer_id    TEXT NOT NULL,"
  "  role       TEXT NOT NULL DEFAULT 'member'"
  "             CHECK (role IN ('admin', 'member')),"
  "  joined_at  INTEGER NOT NULL,"
  "  PRIMARY KEY (group_id, peer_id)"
  ") WITHOUT ROWID;"
  "CREATE INDEX group_members_peer ON group_members (peer_id);"
  "CREATE TABLE file_transfers ("
  "  id              TEXT PRIMARY KEY NOT NULL,"
  "  conversation_id INTEGER NOT NULL"
  "                  REFERENCES conversations (id) ON DELETE CASCADE,"
  "  msg_id          TEXT,"
  "  peer_id         TEXT NOT NULL,"
  "  direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),"
  "  name            TEXT NOT NULL,"
  "  size            INTEGER NOT NULL CHECK (size >= 0),"
  "  hash            TEXT NOT NULL,"
  "  byte_offset     INTEGER NOT NULL DEFAULT 0"
  "                  CHECK (byte_offset >= 0 AND byte_offset <= size),"
  "  state           TEXT NOT NULL CHECK (state IN ('offered', 'accepted',"
  "                  'active', 'paused', 'complete', 'failed', 'cancelled',"
  "                  'rejected')),"
  "  path            TEXT,"
  "  created_at      INTEGER NOT NULL,"
  "  updated_at      INTEGER NOT NULL"
  ");"
  "CREATE INDEX file_transfers_conversation ON file_transfers (conversation_id);"
  "CREATE INDEX file_transfers_unfinished ON file_transfers (state)"
  "  WHERE state IN ('offered', 'accepted', 'active', 'paused');";

/* Version 3: the messaging service continues each conversation's sequence
 * numbers after a restart (max per conversation and direction); without
 * this index that read every row of a long conversation into the cache. */
static const char schema_v3[] =
  "CREATE INDEX messages_sequence ON messages (conversation_id, direction, sequence);";

/* Version 4: groups survive a restart (natter-groups.c).
 * groups          + state: JSON of what natter-groups.c keeps besides
 *                 (admin, fan-out, current key ID, whether we were removed,
 *                 everyone who was ever a member, the delivered and read
 *                 vector clocks, the key hashes and who may write under
 *                 each key, invitees still owed a welcome); checked there
 *                 when loaded.
 * group_keys      (group_id -> groups ON DELETE CASCADE, key_id) PK, key
 *                 (32 bytes): the group keys, secrets like the rest of the
 *                 profile database.
 * group_messages  (group_id -> groups ON DELETE CASCADE, author, counter)
 *                 PK: the delivered causal log, msg_id, kind text|event
 *                 (NULL when not shown: a refused operation, an unreadable
 *                 message), body, clock_sum (the display order), wire (the
 *                 author's signed frame, verified again when loaded). */
static const char schema_v4[] =
  "ALTER TABLE groups ADD COLUMN state TEXT;"
  "CREATE TABLE group_keys ("
  "  group_id  TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,"
  "  key_id    TEXT NOT NULL,"
  "  key       BLOB NOT NULL CHECK (length (key) = 32),"
  "  PRIMARY KEY (group_id, key_id)"
  ") WITHOUT ROWID;"
  "CREATE TABLE group_messages ("
  "  group_id   TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,"
  "  author     TEXT NOT NULL,"
  "  counter    INTEGER NOT NULL CHECK (counter >= 1),"
  "  msg_id     TEXT NOT NULL,"
  "  kind       TEXT CHECK (kind IN ('text', 'event')),"
  "  body       TEXT,"
  "  clock_sum  INTEGER NOT NULL CHECK (clock_sum >= 1),"
  "  wire       BLOB NOT NULL,"
  "  PRIMARY KEY (group_id, author, counter)"
  ") WITHOUT ROWID;";

/* migrations[i] takes version i to version i + 1. */
static const char * const migrations[] = {
  schema_v1,
  schema_v2,
  schema_v3,
  schema_v4,
};

G_STATIC_ASSERT (G_N_ELEMENTS (migrations) == NATTER_DB_SCHEMA_VERSION);

static gboolean
read_user_version (sqlite3  *db,
                   int      *out_version,
                   GError  **error)
{
  sqlite3_stmt *stmt = NULL;
  int rc;

  rc = sqlite3_prepare_v2 (db, "PRAGMA user_version", -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      natter_db_set_sqlite_error (error, db, rc, "Could not read the schema version");
      sqlite3_finalize (stmt);
      return FALSE;
    }
  *out_version = sqlite3_column_int (stmt, 0);
  sqlite3_finalize (stmt);
  return TRUE;
}

static gboolean
migrate_step (sqlite3  *db,
              int       target,
              GError  **error)
{
  g_autofree char *set_version = NULL;
  g_autofree char *what = NULL;
  int current;

  /* IMMEDIATE takes the write lock first, so that two processes opening a
   * new file at once cannot both run the same step. */
  if (!natter_db_exec (db, "BEGIN IMMEDIATE", "Could not start the schema upgrade", error))
    return FALSE;

  if (!read_user_version (db, &current, error))
    goto fail;

  if (current < target)
    {
      what = g_strdup_printf ("Could not upgrade the database to version %d", target);
      set_version = g_strdup_printf ("PRAGMA user_version = %d", target);
      if (!natter_db_exec (db, migrations[target - 1], what, error) ||
          !natter_db_exec (db, set_version, what, error))
        goto fail;
    }

  if (!natter_db_exec (db, "COMMIT", "Could not commit the schema upgrade", error))
    goto fail;

  return TRUE;

fail:
  /* Nothing useful can be done if the rollback fails too: the first error
   * is what the user needs to see. */
  sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
}

gboolean
natter_db_schema_migrate (sqlite3  *db,
                          int      *out_version,
                          GError  **error)
{
  int version;

  if (!read_user_version (db, &version, error))
    return FALSE;

  if (version > NATTER_DB_SCHEMA_VERSION)
    {
      g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_TOO_NEW,
                   "The database has schema version %d, but this version of "
                   "Natter only knows versions up to %d; it was written by a "
                   "newer Natter and will not be downgraded",
                   version, NATTER_DB_SCHEMA_VERSION);
      return FALSE;
    }
  if (version < 0)
    {
      g_set_error (error, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CORRUPT,
                   "The database has an invalid schema version %d", version);
      return FALSE;
    }

  for (int target = version + 1; target <= NATTER_DB_SCHEMA_VERSION; target++)
    if (!migrate_step (db, target, error))
      return FALSE;

  *out_version = NATTER_DB_SCHEMA_VERSION;
  return TRUE;
}
