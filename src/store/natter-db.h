/* natter-db.h: synchronous SQLite layer of the message store
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

#include "natter-contact.h"
#include "natter-conversation.h"

G_BEGIN_DECLS

/* All times in the store are milliseconds since the Unix epoch, as in the
 * wire format. */

#define NATTER_STORE_ERROR (natter_store_error_quark ())

/**
 * NatterStoreError:
 * @NATTER_STORE_ERROR_FAILED: an SQLite error with no better code
 * @NATTER_STORE_ERROR_IO: the file could not be read, written or opened
 * @NATTER_STORE_ERROR_CORRUPT: the file is not a database, or is damaged
 * @NATTER_STORE_ERROR_TOO_NEW: the database was written by a newer Natter
 * @NATTER_STORE_ERROR_CONSTRAINT: a row broke a constraint (unknown
 *   conversation, duplicate key, out-of-range value)
 * @NATTER_STORE_ERROR_NOT_FOUND: the row asked for does not exist
 * @NATTER_STORE_ERROR_INVALID: an argument, or a value read from disk, is
 *   not valid
 * @NATTER_STORE_ERROR_BUSY: another process holds the database locked
 * @NATTER_STORE_ERROR_FULL: the disk is full
 * @NATTER_STORE_ERROR_CLOSED: the store is closed
 */
typedef enum
{
  NATTER_STORE_ERROR_FAILED,
  NATTER_STORE_ERROR_IO,
  NATTER_STORE_ERROR_CORRUPT,
  NATTER_STORE_ERROR_TOO_NEW,
  NATTER_STORE_ERROR_CONSTRAINT,
  NATTER_STORE_ERROR_NOT_FOUND,
  NATTER_STORE_ERROR_INVALID,
  NATTER_STORE_ERROR_BUSY,
  NATTER_STORE_ERROR_FULL,
  NATTER_STORE_ERROR_CLOSED,
} NatterStoreError;

GQuark natter_store_error_quark (void);

/* The schema version this code writes; see natter-db-schema.c. */
#define NATTER_DB_SCHEMA_VERSION 4

typedef enum
{
  NATTER_STORE_DIRECTION_IN,
  NATTER_STORE_DIRECTION_OUT,
} NatterStoreDirection;

/* Delivery states in the order they may be taken.  FAILED sits between SENT
 * and DELIVERED: a message whose TTL ran out may still be acknowledged by a
 * late signed ack, and that proof wins; nothing goes back to QUEUED/SENT. */
typedef enum
{
  NATTER_STORE_MESSAGE_QUEUED,
  NATTER_STORE_MESSAGE_SENT,
  NATTER_STORE_MESSAGE_FAILED,
  NATTER_STORE_MESSAGE_DELIVERED,
  NATTER_STORE_MESSAGE_READ,
} NatterStoreMessageState;

typedef enum
{
  NATTER_STORE_RECEIPT_DELIVERED,
  NATTER_STORE_RECEIPT_READ,
} NatterStoreReceiptKind;

typedef enum
{
  NATTER_STORE_GROUP_ROLE_MEMBER,
  NATTER_STORE_GROUP_ROLE_ADMIN,
} NatterStoreGroupRole;

typedef enum
{
  NATTER_STORE_TRANSFER_OFFERED,
  NATTER_STORE_TRANSFER_ACCEPTED,
  NATTER_STORE_TRANSFER_ACTIVE,
  NATTER_STORE_TRANSFER_PAUSED,
  NATTER_STORE_TRANSFER_COMPLETE,
  NATTER_STORE_TRANSFER_FAILED,
  NATTER_STORE_TRANSFER_CANCELLED,
  NATTER_STORE_TRANSFER_REJECTED,
} NatterStoreTransferState;

/* The strings are the values stored in the database.  from_string() returns
 * FALSE for anything unknown (data from disk is not trusted). */
const char *natter_store_direction_to_string         (NatterStoreDirection      direction);
gboolean    natter_store_direction_from_string       (const char               *str,
                                                      NatterStoreDirection     *out);
const char *natter_store_message_state_to_string     (NatterStoreMessageState   state);
gboolean    natter_store_message_state_from_string   (const char               *str,
                                                      NatterStoreMessageState  *out);
const char *natter_store_receipt_kind_to_string      (NatterStoreReceiptKind    kind);
gboolean    natter_store_receipt_kind_from_string    (const char               *str,
                                                      NatterStoreReceiptKind   *out);
const char *natter_store_group_role_to_string        (NatterStoreGroupRole      role);
gboolean    natter_store_group_role_from_string      (const char               *str,
                                                      NatterStoreGroupRole     *out);
const char *natter_store_transfer_state_to_string    (NatterStoreTransferState  state);
gboolean    natter_store_transfer_state_from_string  (const char               *str,
                                                      NatterStoreTransferState *out);
/* Whether a message may move from @from to @to (strictly forward). */
gboolean    natter_store_message_state_can_advance   (NatterStoreMessageState   from,
                                                      NatterStoreMessageState   to);

/**
 * NatterStoreMessage:
 * @id: the row id, which orders a conversation's history (0 before insert)
 * @msg_id: the message ID from the wire; unique
 * @conversation_id: the conversation's row id
 * @sender: the sender's peer ID
 * @direction: in or out
 * @type: the wire message type ("text", "file_offer", ...)
 * @body: the text shown and indexed for search, or %NULL
 * @timestamp: the sender's timestamp (ms)
 * @sequence: the sender's sequence number
 * @state: the delivery state
 * @relay_via: the peer that relayed it, or %NULL when direct
 * @wire: the signed wire JSON, or %NULL
 */
typedef struct
{
  gint64                  id;
  char                   *msg_id;
  gint64                  conversation_id;
  char                   *sender;
  NatterStoreDirection    direction;
  char                   *type;
  char                   *body;
  gint64                  timestamp;
  gint64                  sequence;
  NatterStoreMessageState state;
  char                   *relay_via;
  GBytes                 *wire;
} NatterStoreMessage;

NatterStoreMessage *natter_store_message_new  (void);
NatterStoreMessage *natter_store_message_copy (const NatterStoreMessage *message);
void                natter_store_message_free (NatterStoreMessage       *message);

/* A wire message waiting to reach one recipient. */
typedef struct
{
  char   *msg_id;
  char   *recipient;
  GBytes *wire;
  gint64  next_attempt;
  guint   attempts;
  gint64  expires_at;
} NatterStoreOutboxEntry;

NatterStoreOutboxEntry *natter_store_outbox_entry_new  (void);
void                    natter_store_outbox_entry_free (NatterStoreOutboxEntry *entry);

/* A sealed message held for an offline peer.  @size is the length of @wire,
 * computed by the store (callers' figures are not used for quotas). */
typedef struct
{
  char   *msg_id;
  char   *recipient;
  char   *sender;
  GBytes *wire;
  gint64  received_at;
  gint64  expires_at;
  gint64  size;
} NatterStoreRelayEntry;

NatterStoreRelayEntry *natter_store_relay_entry_new  (void);
void                   natter_store_relay_entry_free (NatterStoreRelayEntry *entry);

typedef struct
{
  char                   *msg_id;
  char                   *peer_id;
  NatterStoreReceiptKind  kind;
  gint64                  at;
} NatterStoreReceipt;

void natter_store_receipt_free (NatterStoreReceipt *receipt);

typedef struct
{
  char   *id;
  char   *name;
  char   *created_by;
  gint64  created_at;
  /* Bumped when the group key is rotated (a member left). */
  gint64  key_epoch;
  /* What natter-groups.c needs besides (JSON, checked there); may be NULL. */
  char   *state;
} NatterStoreGroup;

NatterStoreGroup *natter_store_group_new  (void);
void              natter_store_group_free (NatterStoreGroup *group);

typedef struct
{
  char                 *group_id;
  char                 *peer_id;
  NatterStoreGroupRole  role;
  gint64                joined_at;
} NatterStoreGroupMember;

void natter_store_group_member_free (NatterStoreGroupMember *member);

/* A delivered message of a group's causal log (the signed wire frame, and
 * how the history shows it). */
typedef struct
{
  char   *author;
  gint64  counter;     /* the author's counter, >= 1 */
  char   *msg_id;
  char   *kind;        /* "text", "event", or NULL when not shown */
  char   *body;
  gint64  clock_sum;   /* sum of its vector clock: the display order */
  GBytes *wire;
} NatterStoreGroupMessage;

void natter_store_group_message_free (NatterStoreGroupMessage *message);

/* Everything stored about one group. */
typedef struct
{
  NatterStoreGroup *group;
  GPtrArray        *members;    /* NatterStoreGroupMember */
  GHashTable       *keys;       /* key ID -> GBytes (32): secrets */
  GPtrArray        *messages;   /* NatterStoreGroupMessage, by author and counter */
} NatterStoreGroupRecord;

NatterStoreGroupRecord *natter_store_group_record_new  (void);
void                    natter_store_group_record_free (NatterStoreGroupRecord *record);

/* A file transfer, kept so that it resumes after a restart. */
typedef struct
{
  char                     *id;
  gint64                    conversation_id;
  char                     *msg_id;
  char                     *peer_id;
  NatterStoreDirection      direction;
  char                     *name;
  gint64                    size;
  char                     *hash;
  gint64                    offset;
  NatterStoreTransferState  state;
  char                     *path;
  gint64                    created_at;
  gint64                    updated_at;
} NatterStoreTransfer;

NatterStoreTransfer *natter_store_transfer_new  (void);
void                 natter_store_transfer_free (NatterStoreTransfer *transfer);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterStoreMessage, natter_store_message_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterStoreOutboxEntry, natter_store_outbox_entry_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterStoreRelayEntry, natter_store_relay_entry_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterStoreReceipt, natter_store_receipt_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterStoreGroup, natter_store_group_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterStoreGroupMember, natter_store_group_member_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterStoreGroupMessage, natter_store_group_message_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterStoreGroupRecord, natter_store_group_record_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterStoreTransfer, natter_store_transfer_free)

/**
 * NatterDb:
 *
 * One SQLite connection and its statement cache.  Not thread-safe: it is
 * owned by the #NatterStore worker thread (or by a test or the benchmark).
 */
typedef struct _NatterDb NatterDb;

NatterDb   *natter_db_open                 (const char           *path,
                                            GError              **error);
void        natter_db_close                (NatterDb             *self);
int         natter_db_get_schema_version   (NatterDb             *self);

/* Contacts */
gboolean    natter_db_upsert_contact       (NatterDb             *self,
                                            NatterContact        *contact,
                                            GError              **error);
NatterContact *natter_db_get_contact       (NatterDb             *self,
                                            const char           *peer_id,
                                            GError              **error);
GPtrArray  *natter_db_list_contacts        (NatterDb             *self,
                                            GError              **error);
gboolean    natter_db_set_contact_state    (NatterDb             *self,
                                            const char           *peer_id,
                                            NatterContactState    state,
                                            GError              **error);

/* Conversations */
gint64      natter_db_ensure_conversation  (NatterDb             *self,
                                            NatterConversationKind kind,
                                            const char           *peer_or_group_id,
                                            const char           *title,
                                            GError              **error);
/* Unread counts are counted, not stored, and stop here: the list shows
 * "999+" from 1000 on. */
#define NATTER_DB_UNREAD_CAP 1000

NatterConversation *natter_db_get_conversation (NatterDb         *self,
                                            gint64                conversation_id,
                                            GError              **error);
GPtrArray  *natter_db_list_conversations   (NatterDb             *self,
                                            GError              **error);
GPtrArray  *natter_db_mark_conversation_read (NatterDb           *self,
                                            gint64                conversation_id,
                                            GError              **error);

/* Messages */
gboolean    natter_db_insert_message       (NatterDb             *self,
                                            NatterStoreMessage   *message,
                                            gboolean             *was_new,
                                            GError              **error);
gboolean    natter_db_insert_messages      (NatterDb             *self,
                                            GPtrArray            *messages,
                                            guint                *n_new,
                                            GError              **error);
gboolean    natter_db_update_message_state (NatterDb             *self,
                                            const char           *msg_id,
                                            NatterStoreMessageState state,
                                            gboolean             *changed,
                                            GError              **error);
NatterStoreMessage *natter_db_get_message  (NatterDb             *self,
                                            const char           *msg_id,
                                            GError              **error);
GPtrArray  *natter_db_load_page            (NatterDb             *self,
                                            gint64                conversation_id,
                                            gint64                before_id,
                                            guint                 limit,
                                            GError              **error);
gint64      natter_db_count_messages       (NatterDb             *self,
                                            gint64                conversation_id,
                                            GError              **error);
GPtrArray  *natter_db_search               (NatterDb             *self,
                                            const char           *query,
                                            gint64                conversation_id,
                                            guint                 limit,
                                            GError              **error);
char       *natter_db_build_match_query    (const char           *user_query);

/* Deferred full-text indexing (see natter-db-schema.c): a message is
 * indexed by the first batch after its insert, at the latest
 * NATTER_DB_INDEX_DELAY_MS after the oldest pending one or as soon as
 * NATTER_DB_INDEX_BATCH are pending; searches index pending messages
 * first. */
#define NATTER_DB_INDEX_BATCH     512
#define NATTER_DB_INDEX_DELAY_MS  150

gboolean    natter_db_flush_index          (NatterDb             *self,
                                            GError              **error);
guint       natter_db_get_index_pending    (NatterDb             *self);
gint64      natter_db_get_index_deadline   (NatterDb             *self);

/* Outbox */
gboolean    natter_db_outbox_add           (NatterDb             *self,
                                            const NatterStoreOutboxEntry *entry,
                                            GError              **error);
gboolean    natter_db_outbox_remove        (NatterDb             *self,
                                            const char           *msg_id,
                                            const char           *recipient,
                                            GError              **error);
gboolean    natter_db_outbox_reschedule    (NatterDb             *self,
                                            const char           *msg_id,
                                            const char           *recipient,
                                            gint64                next_attempt,
                                            GError              **error);
GPtrArray  *natter_db_outbox_due           (NatterDb             *self,
                                            gint64                now,
                                            guint                 limit,
                                            GError              **error);
GPtrArray  *natter_db_outbox_take_expired  (NatterDb             *self,
                                            gint64                now,
                                            GError              **error);

/* Relay store */
gboolean    natter_db_relay_add            (NatterDb             *self,
                                            const NatterStoreRelayEntry *entry,
                                            gboolean             *was_new,
                                            GError              **error);
GPtrArray  *natter_db_relay_take_for_recipient (NatterDb         *self,
                                            const char           *recipient,
                                            gint64                now,
                                            guint                 limit,
                                            GError              **error);
gboolean    natter_db_relay_remove         (NatterDb             *self,
                                            const char           *msg_id,
                                            const char           *recipient,
                                            GError              **error);
gint64      natter_db_relay_bytes_for_recipient (NatterDb        *self,
                                            const char           *recipient,
                                            GError              **error);
gint64      natter_db_relay_count_for_recipient (NatterDb        *self,
                                            const char           *recipient,
                                            GError              **error);
gint64      natter_db_relay_delete_expired (NatterDb             *self,
                                            gint64                now,
                                            GError              **error);

/* Receipts */
gboolean    natter_db_receipt_add          (NatterDb             *self,
                                            const char           *msg_id,
                                            const char           *peer_id,
                                            NatterStoreReceiptKind kind,
                                            gint64                at,
                                            GError              **error);
GPtrArray  *natter_db_list_receipts        (NatterDb             *self,
                                            const char           *msg_id,
                                            GError              **error);

/* Groups */
gboolean    natter_db_group_upsert         (NatterDb             *self,
                                            const NatterStoreGroup *group,
                                            GError              **error);
NatterStoreGroup *natter_db_group_get      (NatterDb             *self,
                                            const char           *group_id,
                                            GError              **error);
gboolean    natter_db_group_member_add     (NatterDb             *self,
                                            const char           *group_id,
                                            const char           *peer_id,
                                            NatterStoreGroupRole  role,
                                            gint64                joined_at,
                                            GError              **error);
gboolean    natter_db_group_member_remove  (NatterDb             *self,
                                            const char           *group_id,
                                            const char           *peer_id,
                                            GError              **error);
GPtrArray  *natter_db_group_list_members   (NatterDb             *self,
                                            const char           *group_id,
                                            GError              **error);
gboolean    natter_db_group_save           (NatterDb             *self,
                                            const NatterStoreGroupRecord *record,
                                            GError              **error);
GPtrArray  *natter_db_group_load_all       (NatterDb             *self,
                                            GError              **error);

/* File transfers */
gboolean    natter_db_transfer_upsert      (NatterDb             *self,
                                            const NatterStoreTransfer *transfer,
                                            GError              **error);
NatterStoreTransfer *natter_db_transfer_get (NatterDb            *self,
                                            const char           *id,
                                            GError              **error);
gboolean    natter_db_transfer_update_progress (NatterDb         *self,
                                            const char           *id,
                                            gint64                offset,
                                            NatterStoreTransferState state,
                                            gint64                now,
                                            GError              **error);
GPtrArray  *natter_db_transfer_list_unfinished (NatterDb         *self,
                                            GError              **error);

/* Group commit: many operations in one transaction, each in a savepoint. */
gboolean    natter_db_begin_batch          (NatterDb             *self,
                                            GError              **error);
gboolean    natter_db_end_batch            (NatterDb             *self,
                                            GError              **error);
gboolean    natter_db_set_message_state_via (NatterDb            *self,
                                            const char           *msg_id,
                                            NatterStoreMessageState state,
                                            const char           *relay_via,
                                            gboolean             *changed,
                                            GError              **error);
gint64      natter_db_get_max_sequence     (NatterDb             *self,
                                            gint64                conversation_id,
                                            NatterStoreDirection  direction,
                                            GError              **error);
GPtrArray  *natter_db_relay_list_for_recipient (NatterDb         *self,
                                            const char           *recipient,
                                            gint64                now,
                                            guint                 limit,
                                            GError              **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterDb, natter_db_close)

G_END_DECLS
