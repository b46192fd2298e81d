/* natter-messaging-service.c: the messaging facade over peers and the store
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include "natter-crypto.h"
#include "natter-groups-private.h"
#include "natter-file-transfers.h"
#include "natter-history-model.h"
#include "natter-ice.h"
#include "natter-lan-discovery.h"
#include "natter-message.h"
#include "natter-messaging-service.h"
#include "natter-messaging-service-private.h"
#include "natter-peer-connection.h"
#include "natter-rendezvous-client.h"
#include "natter-signal-seal.h"
#include "natter-store.h"

/* How the service works (docs/architecture.md, "Delivery"):
 *
 * Every frame on a peer connection's CHAT stream is one signed wire
 * message (docs/protocol.md).  Outgoing user messages and receipts that
 * cannot go straight to a connected peer live in the outbox, mirrored in
 * memory (OutboxItem) and in SQLite.  Store writes are grouped: operations
 * queue in `pending_ops` and one store task commits them all in one
 * transaction (each in its own savepoint), so that a burst of messages
 * costs one commit, not one per message; their completions then run in
 * order on the main context.  A received message is acknowledged only
 * from such a completion, that is, after it is durable. */

#define RETRY_DIRECT_MS        60000    /* resend if no receipt came after this */
#define RETRY_RELAY_MS         60000
#define RETRY_NO_ROUTE_MS      5000
#define CONNECT_BACKOFF_MIN_MS 1000
#define CONNECT_BACKOFF_MAX_MS 30000
#define HOLD_BACK_MS           5000     /* wait this long for a sequence gap to fill */
#define MAX_HELD               1024
#define SEEN_CACHE_SIZE        8192
#define MAX_RETIRED_UFRAGS     16
#define SEND_HIGH_WATER        (4 * 1024 * 1024)
#define RELAY_EXPIRY_EVERY_MS  30000
#define HANDOVER_BATCH         256
#define CONNECT_TIMEOUT_MS     10000    /* a connection not up by then is started again */
#define STALE_SESSION_MS       3000     /* see link_take_signal() */
#define NEARBY_ANSWER_WINDOW_US (10 * 60 * G_USEC_PER_SEC) /* an introduction answers ours */

G_DEFINE_QUARK (natter-messaging-error-quark, natter_messaging_error)

/* {{{ Enums */

GType
natter_presence_get_type (void)
{
  static gsize type_id = 0;

  if (g_once_init_enter (&type_id))
    {
      static const GEnumValue values[] = {
        { NATTER_PRESENCE_OFFLINE, "NATTER_PRESENCE_OFFLINE", "offline" },
        { NATTER_PRESENCE_ONLINE, "NATTER_PRESENCE_ONLINE", "online" },
        { NATTER_PRESENCE_AWAY, "NATTER_PRESENCE_AWAY", "away" },
        { 0, NULL, NULL }
      };
      g_once_init_leave (&type_id, g_enum_register_static ("NatterPresence", values));
    }
  return type_id;
}

const char *
natter_presence_to_string (NatterPresence presence)
{
  switch (presence)
    {
    case NATTER_PRESENCE_ONLINE: return "online";
    case NATTER_PRESENCE_AWAY:   return "away";
    case NATTER_PRESENCE_OFFLINE:
    default:                     return "offline";
    }
}

gboolean
natter_presence_from_string (const char     *text,
                             NatterPresence *out)
{
  if (g_strcmp0 (text, "online") == 0)
    *out = NATTER_PRESENCE_ONLINE;
  else if (g_strcmp0 (text, "away") == 0)
    *out = NATTER_PRESENCE_AWAY;
  else if (g_strcmp0 (text, "offline") == 0)
    *out = NATTER_PRESENCE_OFFLINE;
  else
    return FALSE;
  return TRUE;
}

GType
natter_peer_state_get_type (void)
{
  static gsize type_id = 0;

  if (g_once_init_enter (&type_id))
    {
      static const GEnumValue values[] = {
        { NATTER_PEER_STATE_OFFLINE, "NATTER_PEER_STATE_OFFLINE", "offline" },
        { NATTER_PEER_STATE_CONNECTING, "NATTER_PEER_STATE_CONNECTING", "connecting" },
        { NATTER_PEER_STATE_DIRECT, "NATTER_PEER_STATE_DIRECT", "direct" },
        { NATTER_PEER_STATE_RELAYED, "NATTER_PEER_STATE_RELAYED", "relayed" },
        { 0, NULL, NULL }
      };
      g_once_init_leave (&type_id, g_enum_register_static ("NatterPeerState", values));
    }
  return type_id;
}

const char *
natter_peer_state_to_string (NatterPeerState state)
{
  switch (state)
    {
    case NATTER_PEER_STATE_CONNECTING: return "connecting";
    case NATTER_PEER_STATE_DIRECT:     return "direct";
    case NATTER_PEER_STATE_RELAYED:    return "relayed";
    case NATTER_PEER_STATE_OFFLINE:
    default:                           return "offline";
    }
}

/* }}} */
/* {{{ Types */

typedef struct _Link Link;

/* One wire message waiting to reach one recipient. */
typedef struct
{
  char              *msg_id;
  char              *recipient;
  GBytes            *wire;
  NatterMessageType  type;
  gint64             expires_at;     /* ms, wall clock */
  gint64             next_attempt;   /* ms, wall clock */
  guint              attempts;
  guint64            sent_generation; /* the link generation it went out on, 0: none */
  char              *pending_relay;  /* handed to this relay, no answer yet */
  char              *via;            /* a relay that took it */
  guint              relay_index;    /* next relay candidate to try */
  gboolean           user_message;   /* has a delivery state shown to the user */
  gboolean           signed_wire;    /* wire carries our signature (see service_seal) */
} OutboxItem;

struct _Link
{
  NatterMessagingService *service;
  char                   *peer_id;
  gboolean                is_contact;
  NatterContactState      contact_state;
  gboolean                group_peer;        /* a member of one of our groups */

  NatterPeerConnection   *pc;
  guint64                 generation;
  gboolean                connected;
  char                   *remote_ufrag;
  GPtrArray              *retired_ufrags;
  gint64                  next_connect_us;
  gint64                  pc_started_us;     /* when link->pc was created */
  guint                   backoff_ms;
  char                   *introducer;

  gboolean                lan_found;
  gboolean                rendezvous_online;

  NatterPresence          presence;
  NatterPeerState         state;
  char                   *via;
  gboolean                remote_typing;
  guint                   typing_source;
  gint64                  typing_sent_us;
  gboolean                typing_sent;

  gint64                  conversation_id;   /* 0: not known yet */
  guint64                 out_seq;
  guint64                 in_seq;
  GHashTable             *held;              /* sequence -> NatterMessage, out of order */
  gint64                  held_since_us;

  GQueue                  outbox;            /* OutboxItem, in order */
  GHashTable             *outbox_index;      /* msg_id -> GList node of outbox */
  GPtrArray              *pending_receipts;  /* msg IDs committed, receipt not sent yet */
  gboolean                paused;            /* over the high-water mark */
  guint                   pump_idle;
  gboolean                handover_running;
  GHashTable             *handed_over;       /* msg_id set: relay entries given to it */
};

typedef enum
{
  OP_INSERT_MESSAGE,
  OP_SET_STATE,
  OP_OUTBOX_ADD,
  OP_OUTBOX_REMOVE,
  OP_RELAY_ADD,
  OP_RELAY_REMOVE,
  OP_RELAY_LIST,
  OP_RELAY_EXPIRE,
  OP_MARK_READ,
  OP_ENSURE_CONVERSATION,
  OP_UPSERT_CONTACT,
  OP_TRANSFER_SAVE,
} OpKind;

typedef enum
{
  RELAY_STORED,
  RELAY_DUPLICATE,
  RELAY_QUOTA,
} RelayResult;

typedef struct _Op Op;
typedef void (*OpDone) (NatterMessagingService *self,
                        Op                     *op);

struct _Op
{
  OpKind                  kind;
  char                   *peer_id;
  char                   *msg_id;
  char                   *via;
  NatterStoreMessageState state;
  NatterStoreMessage     *message;
  NatterStoreOutboxEntry *outbox;
  NatterStoreRelayEntry  *relay;
  NatterContact          *contact;
  NatterStoreTransfer    *transfer;
  gint64                  number;    /* quota, time, conversation id */

  /* Results. */
  GError                 *error;
  gboolean                flag;      /* was_new, changed */
  gint64                  result;    /* row id, conversation id, count */
  GPtrArray              *list;
  RelayResult             relay_result;

  OpDone                  done;
  gpointer                data;
  GDestroyNotify          data_free;
};

struct _NatterMessagingService
{
  GObject                 parent_instance;

  NatterProfile          *profile;
  NatterIdentity         *identity;
  char                   *peer_id;
  NatterStore            *store;

  /* Settings. */
  char                  **rendezvous_urls;
  char                   *stun_server;
  char                  **turn_servers;
  gboolean                lan_enabled;
  gboolean                discoverable;
  char                  **interfaces;
  gboolean                relay_enabled;
  gint64                  relay_quota;
  gint64                  default_ttl;
  NatterIceConfig        *ice_config;
  char                   *download_folder;
  gboolean                auto_accept;
  gint64                  max_file_size;

  NatterFileTransfers    *files;

  gboolean                started;
  gboolean                stopping;
  GHashTable             *links;           /* peer ID -> Link */
  GListStore             *contacts;
  GListStore             *conversations;
  GPtrArray              *histories;       /* weak NatterHistoryModel * */
  NatterLanDiscovery     *lan;
  /* Nearby strangers (docs/architecture.md, "Nearby"): handle ->
   * GInetSocketAddress of their announcements; handles we introduced
   * ourselves to -> monotonic time (µs); peer ID -> address of a pending
   * contact request, so that accepting it can introduce us back. */
  GHashTable             *nearby;
  GHashTable             *introduced_to;
  GHashTable             *request_addresses;
  /* Handles that became contacts this run -> peer ID: no longer strangers. */
  GHashTable             *nearby_known;
  /* Accepted requests whose sender we have not heard announce yet: peer ID
   * -> address; we introduce ourselves back when it shows up. */
  GHashTable             *answers_due;
  GPtrArray              *rendezvous;      /* NatterRendezvousClient */
  NatterPresence          presence;
  guint                   tick_source;
  gint64                  last_relay_expiry;

  /* Group commit. */
  GPtrArray              *pending_ops;
  GHashTable             *pending_states;  /* msg_id -> queued OP_SET_STATE not yet running */
  /* Sent messages whose history row is not committed yet: msg_id ->
   * StashedState.  Their state changes are shown after "queued". */
  GHashTable             *uncommitted;
  gboolean                batch_running;
  guint                   batch_idle;
  GPtrArray              *flush_waiters;   /* GTask, completed when all is committed */
  /* Worker side only: peer ID -> conversation id. */
  GHashTable             *worker_conversations;

  /* Receive-side duplicate suppression: msg IDs seen lately. */
  GHashTable             *seen;
  GQueue                  seen_order;
  /* Relay side: "msg_id\nrecipient" -> ack status already given. */
  GHashTable             *relay_seen;
  GQueue                  relay_seen_order;

  NatterMessagingStats    stats;

  NatterGroups           *groups;          /* natter-groups.c */
};

G_DEFINE_FINAL_TYPE (NatterMessagingService, natter_messaging_service, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_PROFILE,
  PROP_RENDEZVOUS_URLS,
  PROP_STUN_SERVER,
  PROP_TURN_SERVERS,
  PROP_LAN_DISCOVERY,
  PROP_INTERFACES,
  PROP_RELAY,
  PROP_RELAY_QUOTA,
  PROP_DEFAULT_TTL,
  PROP_DOWNLOAD_FOLDER,
  PROP_AUTO_ACCEPT,
  PROP_MAX_FILE_SIZE,
  PROP_DISCOVERABLE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum
{
  SIGNAL_MESSAGE_RECEIVED,
  SIGNAL_MESSAGE_STATE_CHANGED,
  SIGNAL_TYPING_CHANGED,
  SIGNAL_PRESENCE_CHANGED,
  SIGNAL_PEER_STATE_CHANGED,
  SIGNAL_CONTACT_ADDED,
  SIGNAL_RELAY_EVENT,
  SIGNAL_TRANSFER_OFFERED,
  SIGNAL_TRANSFER_STATE_CHANGED,
  SIGNAL_TRANSFER_PROGRESS,
  SIGNAL_NEARBY_CHANGED,
  SIGNAL_CONTACT_REQUEST,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void link_pump (Link *link);
static void link_maybe_connect (Link *link, gboolean now);
static void service_pump_all (NatterMessagingService *self);
static void link_set_state (Link *link, NatterPeerState state, const char *via);

static gint64
now_ms (void)
{
  return g_get_real_time () / 1000;
}

/* }}} */
/* {{{ Outbox items, links */

static void
outbox_item_free (OutboxItem *item)
{
  g_free (item->msg_id);
  g_free (item->recipient);
  g_clear_pointer (&item->wire, g_bytes_unref);
  g_free (item->pending_relay);
  g_free (item->via);
  g_free (item);
}

static void
link_free (Link *link)
{
  if (link->pc != NULL)
    {
      g_signal_handlers_disconnect_by_data (link->pc, link);
      natter_peer_connection_close (link->pc);
      g_clear_object (&link->pc);
    }
  g_clear_handle_id (&link->typing_source, g_source_remove);
  g_clear_handle_id (&link->pump_idle, g_source_remove);
  g_free (link->peer_id);
  g_free (link->remote_ufrag);
  g_ptr_array_unref (link->retired_ufrags);
  g_free (link->introducer);
  g_free (link->via);
  g_hash_table_unref (link->held);
  g_hash_table_unref (link->handed_over);
  g_ptr_array_unref (link->pending_receipts);
  g_hash_table_unref (link->outbox_index);
  g_queue_clear_full (&link->outbox, (GDestroyNotify) outbox_item_free);
  g_free (link);
}

static Link *
service_get_link (NatterMessagingService *self,
                  const char             *peer_id)
{
  return g_hash_table_lookup (self->links, peer_id);
}

static Link *
service_ensure_link (NatterMessagingService *self,
                     const char             *peer_id)
{
  Link *link = g_hash_table_lookup (self->links, peer_id);

  if (link != NULL)
    return link;

  link = g_new0 (Link, 1);
  link->service = self;
  link->peer_id = g_strdup (peer_id);
  link->retired_ufrags = g_ptr_array_new_with_free_func (g_free);
  link->held = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                      (GDestroyNotify) natter_message_unref);
  link->handed_over = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  link->pending_receipts = g_ptr_array_new_with_free_func (g_free);
  link->outbox_index = g_hash_table_new (g_str_hash, g_str_equal);
  link->backoff_ms = CONNECT_BACKOFF_MIN_MS;
  link->presence = NATTER_PRESENCE_OFFLINE;
  g_queue_init (&link->outbox);
  g_hash_table_insert (self->links, link->peer_id, link);
  return link;
}

static gboolean
link_is_accepted (Link *link)
{
  if (link != NULL && link->group_peer)
    return !(link->is_contact && link->contact_state == NATTER_CONTACT_BLOCKED);
  return link != NULL && link->is_contact && link->contact_state == NATTER_CONTACT_ACCEPTED;
}

static OutboxItem *
link_find_item (Link       *link,
                const char *msg_id)
{
  GList *node = g_hash_table_lookup (link->outbox_index, msg_id);

  return node != NULL ? node->data : NULL;
}

static void
link_outbox_push (Link       *link,
                  OutboxItem *item)
{
  g_queue_push_tail (&link->outbox, item);
  g_hash_table_insert (link->outbox_index, item->msg_id, link->outbox.tail);
}

static void
link_outbox_unlink (Link       *link,
                    OutboxItem *item)
{
  GList *node = g_hash_table_lookup (link->outbox_index, item->msg_id);

  if (node == NULL || node->data != item)
    return;
  g_hash_table_remove (link->outbox_index, item->msg_id);
  g_queue_delete_link (&link->outbox, node);
}

/* }}} */
/* {{{ Group commit */

static void
op_free (Op *op)
{
  g_free (op->peer_id);
  g_free (op->msg_id);
  g_free (op->via);
  g_clear_pointer (&op->message, natter_store_message_free);
  g_clear_pointer (&op->outbox, natter_store_outbox_entry_free);
  g_clear_pointer (&op->relay, natter_store_relay_entry_free);
  g_clear_object (&op->contact);
  g_clear_pointer (&op->transfer, natter_store_transfer_free);
  g_clear_error (&op->error);
  g_clear_pointer (&op->list, g_ptr_array_unref);
  if (op->data_free != NULL)
    op->data_free (op->data);
  g_free (op);
}

static Op *
op_new (OpKind kind)
{
  Op *op = g_new0 (Op, 1);

  op->kind = kind;
  return op;
}

typedef struct
{
  GPtrArray  *ops;
  GHashTable *conversations;   /* the service's worker_conversations */
} Batch;

static gint64
worker_conversation (NatterDb    *db,
                     GHashTable  *cache,
                     const char  *peer_id,
                     GError     **error)
{
  gpointer value;
  gint64 id;

  if (g_hash_table_lookup_extended (cache, peer_id, NULL, &value))
    return *(gint64 *) value;

  id = natter_db_ensure_conversation (db, NATTER_CONVERSATION_DIRECT, peer_id, NULL, error);
  if (id > 0)
    g_hash_table_insert (cache, g_strdup (peer_id), g_memdup2 (&id, sizeof id));
  return id;
}

static void
batch_run_op (NatterDb   *db,
              Batch      *batch,
              Op         *op)
{
  switch (op->kind)
    {
    case OP_INSERT_MESSAGE:
      op->message->conversation_id = worker_conversation (db, batch->conversations,
                                                          op->peer_id, &op->error);
      if (op->message->conversation_id > 0 &&
          natter_db_insert_message (db, op->message, &op->flag, &op->error))
        op->result = op->message->id;
      break;

    case OP_SET_STATE:
      natter_db_set_message_state_via (db, op->msg_id, op->state, op->via, &op->flag, &op->error);
      break;

    case OP_OUTBOX_ADD:
      natter_db_outbox_add (db, op->outbox, &op->error);
      break;

    case OP_OUTBOX_REMOVE:
      natter_db_outbox_remove (db, op->msg_id, op->peer_id, &op->error);
      break;

    case OP_RELAY_ADD:
      {
        gint64 held = natter_db_relay_bytes_for_recipient (db, op->relay->recipient, &op->error);

        if (held < 0)
          break;
        if (held + (gint64) g_bytes_get_size (op->relay->wire) > op->number)
          {
            op->relay_result = RELAY_QUOTA;
            op->result = held;
            break;
          }
        if (natter_db_relay_add (db, op->relay, &op->flag, &op->error))
          op->relay_result = op->flag ? RELAY_STORED : RELAY_DUPLICATE;
      }
      break;

    case OP_RELAY_REMOVE:
      natter_db_relay_remove (db, op->msg_id, op->peer_id, &op->error);
      break;

    case OP_RELAY_LIST:
      op->list = natter_db_relay_list_for_recipient (db, op->peer_id, op->number,
                                                     HANDOVER_BATCH, &op->error);
      break;

    case OP_RELAY_EXPIRE:
      op->result = natter_db_relay_delete_expired (db, op->number, &op->error);
      break;

    case OP_MARK_READ:
      {
        gint64 conversation = worker_conversation (db, batch->conversations, op->peer_id, &op->error);

        if (conversation > 0)
          {
            op->result = conversation;
            op->list = natter_db_mark_conversation_read (db, conversation, &op->error);
          }
      }
      break;

    case OP_ENSURE_CONVERSATION:
      op->result = worker_conversation (db, batch->conversations, op->peer_id, &op->error);
      if (op->result > 0)
        {
          op->number = natter_db_get_max_sequence (db, op->result, NATTER_STORE_DIRECTION_OUT, &op->error);
          if (op->number >= 0)
            op->flag = TRUE;
          op->list = g_ptr_array_new_with_free_func (g_free);
          {
            gint64 in = natter_db_get_max_sequence (db, op->result, NATTER_STORE_DIRECTION_IN, NULL);

            g_ptr_array_add (op->list, g_memdup2 (&in, sizeof in));
          }
        }
      break;

    case OP_UPSERT_CONTACT:
      natter_db_upsert_contact (db, op->contact, &op->error);
      break;

    case OP_TRANSFER_SAVE:
      op->transfer->conversation_id = worker_conversation (db, batch->conversations,
                                                           op->transfer->peer_id, &op->error);
      if (op->transfer->conversation_id > 0)
        natter_db_transfer_upsert (db, op->transfer, &op->error);
      break;

    default:
      g_assert_not_reached ();
    }
}

static gpointer
batch_run (NatterDb  *db,
           gpointer   user_data,
           GError   **error)
{
  Batch *batch = user_data;
  GError *batch_error = NULL;

  if (!natter_db_begin_batch (db, &batch_error))
    {
      for (guint i = 0; i < batch->ops->len; i++)
        {
          Op *op = g_ptr_array_index (batch->ops, i);

          op->error = g_error_copy (batch_error);
        }
      g_error_free (batch_error);
      return batch;
    }

  for (guint i = 0; i < batch->ops->len; i++)
    batch_run_op (db, batch, g_ptr_array_index (batch->ops, i));

  if (!natter_db_end_batch (db, &batch_error))
    {
      /* Nothing of the batch is durable: every operation failed. */
      g_hash_table_remove_all (batch->conversations);
      for (guint i = 0; i < batch->ops->len; i++)
        {
          Op *op = g_ptr_array_index (batch->ops, i);

          g_clear_error (&op->error);
          op->error = g_error_copy (batch_error);
          op->flag = FALSE;
        }
      g_error_free (batch_error);
    }
  return batch;
}

static void
batch_free (Batch *batch)
{
  g_ptr_array_unref (batch->ops);
  g_hash_table_unref (batch->conversations);
  g_free (batch);
}

static void service_flush (NatterMessagingService *self);
static void service_send_receipts (NatterMessagingService *self);

static void
on_batch_done (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(NatterMessagingService) self = user_data;
  g_autoptr(GError) error = NULL;
  Batch *batch;

  self->batch_running = FALSE;
  batch = natter_store_run_finish (NATTER_STORE (source), result, &error);
  if (batch == NULL)
    {
      /* The store is closed or the task failed as a whole. */
      g_warning ("Store batch failed: %s", error->message);
      return;
    }

  for (guint i = 0; i < batch->ops->len; i++)
    {
      Op *op = g_ptr_array_index (batch->ops, i);

      if (op->error != NULL && op->done == NULL)
        g_warning ("Store operation failed: %s", op->error->message);
      if (op->done != NULL)
        op->done (self, op);
    }
  batch_free (batch);
  service_send_receipts (self);

  if (self->pending_ops->len > 0)
    service_flush (self);
  else if (self->flush_waiters->len > 0)
    {
      g_autoptr(GPtrArray) waiters = g_steal_pointer (&self->flush_waiters);

      self->flush_waiters = g_ptr_array_new ();
      for (guint i = 0; i < waiters->len; i++)
        {
          GTask *task = g_ptr_array_index (waiters, i);

          g_task_return_boolean (task, TRUE);
          g_object_unref (task);
        }
    }
}

static void
service_flush (NatterMessagingService *self)
{
  Batch *batch;

  g_clear_handle_id (&self->batch_idle, g_source_remove);
  if (self->batch_running || self->pending_ops->len == 0)
    return;

  batch = g_new0 (Batch, 1);
  batch->ops = g_steal_pointer (&self->pending_ops);
  g_hash_table_remove_all (self->pending_states);
  batch->conversations = g_hash_table_ref (self->worker_conversations);
  self->pending_ops = g_ptr_array_new_with_free_func ((GDestroyNotify) op_free);
  g_ptr_array_set_free_func (batch->ops, (GDestroyNotify) op_free);
  self->batch_running = TRUE;
  natter_store_run_async (self->store, batch_run, batch, NULL, NULL, NULL,
                          on_batch_done, g_object_ref (self));
}

static gboolean
on_batch_idle (gpointer user_data)
{
  NatterMessagingService *self = user_data;

  self->batch_idle = 0;
  service_flush (self);
  return G_SOURCE_REMOVE;
}

/* Queues @op for the next group commit. */
static void
service_queue_op (NatterMessagingService *self,
                  Op                     *op)
{
  /* A state change for a message whose previous change has not been
   * written yet replaces it ("sent" then "delivered" in one batch is one
   * update): states only move forward. */
  if (op->kind == OP_SET_STATE && op->done == NULL)
    {
      Op *queued = g_hash_table_lookup (self->pending_states, op->msg_id);

      if (queued != NULL)
        {
          if (op->state > queued->state)
            queued->state = op->state;
          if (op->via != NULL)
            {
              g_free (queued->via);
              queued->via = g_steal_pointer (&op->via);
            }
          op_free (op);
          return;
        }
      g_hash_table_insert (self->pending_states, op->msg_id, op);
    }
  g_ptr_array_add (self->pending_ops, op);
  if (!self->batch_running && self->batch_idle == 0)
    self->batch_idle = g_idle_add_full (G_PRIORITY_DEFAULT_IDLE, on_batch_idle, self, NULL);
}

/* Calls back once everything queued so far is committed. */
static void
service_when_committed (NatterMessagingService *self,
                        GTask                  *task)
{
  if (!self->batch_running && self->pending_ops->len == 0)
    {
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
      return;
    }
  g_ptr_array_add (self->flush_waiters, task);
}

/* }}} */
/* {{{ Models and signal helpers */

typedef struct
{
  gboolean                 changed;
  NatterStoreMessageState  state;
  char                     via[NATTER_PEER_ID_LEN + 1];
} StashedState;

static void
emit_state (NatterMessagingService  *self,
            const char              *msg_id,
            const char              *peer_id,
            NatterStoreMessageState  state,
            const char              *via)
{
  StashedState *stashed = g_hash_table_lookup (self->uncommitted, msg_id);

  /* Not shown before "queued": kept until the row is committed. */
  if (stashed != NULL && state != NATTER_STORE_MESSAGE_QUEUED)
    {
      if (!stashed->changed || state > stashed->state)
        stashed->state = state;
      stashed->changed = TRUE;
      if (via != NULL)
        g_strlcpy (stashed->via, via, sizeof stashed->via);
      return;
    }
  for (guint i = 0; i < self->histories->len; i++)
    {
      NatterHistoryModel *model = g_ptr_array_index (self->histories, i);
      NatterMessageItem *item;

      if (g_strcmp0 (natter_history_model_get_peer_id (model), peer_id) != 0)
        continue;
      item = natter_history_model_lookup (model, msg_id);
      if (item != NULL)
        natter_message_item_set_state (item, state, via);
    }
  g_signal_emit (self, signals[SIGNAL_MESSAGE_STATE_CHANGED], 0, msg_id, peer_id,
                 natter_store_message_state_to_string (state), via);
}

static void
history_weak_notify (gpointer  data,
                     GObject  *where_the_object_was)
{
  NatterMessagingService *self = data;

  g_ptr_array_remove (self->histories, where_the_object_was);
}

static void
histories_append (NatterMessagingService *self,
                  NatterMessageItem      *item)
{
  for (guint i = 0; i < self->histories->len; i++)
    {
      NatterHistoryModel *model = g_ptr_array_index (self->histories, i);

      if (natter_history_model_get_conversation_id (model) ==
          natter_message_item_get_conversation_id (item))
        natter_history_model_append (model, item);
    }
}

/* Moves the conversation to the top of the list with its new preview. */
static void
conversations_touch (NatterMessagingService *self,
                     const char             *peer_id,
                     gint64                  conversation_id,
                     const char             *preview,
                     gint64                  timestamp,
                     gboolean                incoming)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->conversations));
  g_autoptr(NatterConversation) conversation = NULL;

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(NatterConversation) c = g_list_model_get_item (G_LIST_MODEL (self->conversations), i);

      if (natter_conversation_get_id (c) == conversation_id)
        {
          conversation = g_steal_pointer (&c);
          if (i != 0)
            g_list_store_remove (self->conversations, i);
          else
            {
              natter_conversation_set_last_activity (conversation, MAX (timestamp, natter_conversation_get_last_activity (conversation)));
              natter_conversation_set_preview (conversation, preview);
              if (incoming)
                natter_conversation_set_unread_count (conversation, natter_conversation_get_unread_count (conversation) + 1);
              return;
            }
          break;
        }
    }

  if (conversation == NULL)
    {
      Link *link = service_get_link (self, peer_id);
      const char *title = NULL;

      for (guint i = 0; link != NULL && i < g_list_model_get_n_items (G_LIST_MODEL (self->contacts)); i++)
        {
          g_autoptr(NatterContact) contact = g_list_model_get_item (G_LIST_MODEL (self->contacts), i);

          if (strcmp (natter_contact_get_peer_id (contact), peer_id) == 0)
            title = natter_contact_get_display_name (contact);
        }
      conversation = natter_conversation_new (conversation_id, NATTER_CONVERSATION_DIRECT,
                                              peer_id, title, timestamp, 0);
    }
  natter_conversation_set_last_activity (conversation, MAX (timestamp, natter_conversation_get_last_activity (conversation)));
  natter_conversation_set_preview (conversation, preview);
  if (incoming)
    natter_conversation_set_unread_count (conversation, natter_conversation_get_unread_count (conversation) + 1);
  g_list_store_insert (self->conversations, 0, conversation);
}

static void
emit_relay_event (NatterMessagingService *self,
                  const char             *event,
                  const char             *msg_id,
                  const char             *from,
                  const char             *to,
                  const char             *detail)
{
  g_signal_emit (self, signals[SIGNAL_RELAY_EVENT], 0, event, msg_id, from, to, detail);
}

/* }}} */
/* {{{ Building and sending frames */

static NatterMessage *
service_new_message (NatterMessagingService *self,
                     NatterMessageType       type,
                     const char             *recipient)
{
  NatterMessage *message = natter_message_new (type);
  const char *to[] = { recipient, NULL };

  message->from = g_strdup (self->peer_id);
  g_strfreev (message->to);
  message->to = g_strdupv ((char **) to);
  message->ttl = self->default_ttl;
  return message;
}

/* Encodes a message of ours.  A frame that goes straight to its recipient
 * over the connection needs no signature: the Noise session already proves
 * who sent it, and the receiver does not check one (receive_frame()).  So
 * only what others pass on is signed: a connection request (the helper
 * forwards it whole) here, and an outbox frame when it is handed to a relay
 * (outbox_item_sign()).  Besides the CPU (Ed25519 was the largest cost per
 * message), direct messages are then deniable, as in Signal: the receiver
 * holds no proof that would convince anyone else. */
static GBytes *
service_seal (NatterMessagingService *self,
              NatterMessage          *message,
              GError                **error)
{
  if (message->type == NATTER_MESSAGE_TYPE_CONNECTION_REQUEST)
    return natter_message_sign_encode (message, self->identity, error);
  return natter_message_encode (message, error);
}

/* The frame of @item, signed, for a relay: relays and recipients accept a
 * frame that did not come straight from its author only with the author's
 * signature.  FALSE (logged) if it cannot be decoded again, which would be a
 * bug: our own bytes. */
static gboolean
outbox_item_sign (NatterMessagingService *self,
                  OutboxItem             *item)
{
  g_autoptr(NatterMessage) message = NULL;
  g_autoptr(GBytes) wire = NULL;
  g_autoptr(GError) error = NULL;

  if (item->signed_wire)
    return TRUE;
  message = natter_message_decode (item->wire, NATTER_MESSAGE_DECODE_NONE, &error);
  if (message != NULL && !message->has_signature)
    wire = natter_message_sign_encode (message, self->identity, &error);
  if (message == NULL || (!message->has_signature && wire == NULL))
    {
      g_warning ("Could not sign %s for a relay: %s", item->msg_id, error->message);
      return FALSE;
    }
  if (wire != NULL)
    {
      g_bytes_unref (item->wire);
      item->wire = g_steal_pointer (&wire);
    }
  item->signed_wire = TRUE;
  return TRUE;
}

/* Above this buffered amount the link's outbox pauses.  File data has a
 * window of its own (bulk streams, which usrsctp chunks after chat): the
 * mark counts only what is beyond it, so chat and control messages never
 * wait in our queues for file data to drain. */
static gsize
link_high_water (Link *link)
{
  NatterMessagingService *self = link->service;

  return SEND_HIGH_WATER + (self->files != NULL ? natter_file_transfers_get_send_window (self->files) : 0);
}

/* The outbox resumes, and file data is topped up, when the buffered amount
 * falls to this: half the files' window, so that the connection never runs
 * dry while the main context wakes up to refill it. */
static gsize
link_low_water (Link *link)
{
  NatterMessagingService *self = link->service;

  if (self->files != NULL)
    return MIN (SEND_HIGH_WATER, natter_file_transfers_get_send_window (self->files)) / 2;
  return SEND_HIGH_WATER / 4;
}

static gboolean
link_send_frame (Link   *link,
                 GBytes *wire)
{
  g_autoptr(GError) error = NULL;

  if (link == NULL || !link->connected || link->pc == NULL)
    return FALSE;
  if (!natter_peer_connection_send (link->pc, NATTER_PEER_STREAM_CHAT, wire, &error))
    {
      g_debug ("Could not send to %s: %s", link->peer_id, error->message);
      return FALSE;
    }
  link->service->stats.messages_sent++;
  if (natter_peer_connection_get_buffered_amount (link->pc) > link_high_water (link))
    link->paused = TRUE;
  return TRUE;
}

/* A small control message (ack, receipt, typing…) straight to a connected
 * peer; FALSE when there is no connection. */
static gboolean
link_send_control (Link              *link,
                   NatterMessageType  type,
                   const char        *key,
                   const char        *value,
                   const char        *key2,
                   const char        *value2)
{
  NatterMessagingService *self = link->service;
  g_autoptr(NatterMessage) message = NULL;
  g_autoptr(GBytes) wire = NULL;
  g_autoptr(GError) error = NULL;

  if (!link->connected)
    return FALSE;
  message = service_new_message (self, type, link->peer_id);
  if (key != NULL)
    json_object_set_string_member (message->content, key, value);
  if (key2 != NULL)
    json_object_set_string_member (message->content, key2, value2);
  message->ttl = 60000;
  wire = service_seal (self, message, &error);
  if (wire == NULL)
    {
      g_warning ("Could not build a %s: %s", natter_message_type_to_string (type), error->message);
      return FALSE;
    }
  return link_send_frame (link, wire);
}

static void
link_send_hop_ack (Link       *link,
                   const char *msg_id,
                   const char *status)
{
  link_send_control (link, NATTER_MESSAGE_TYPE_MESSAGE_ACK, "messageId", msg_id, "status", status);
}

/* }}} */
/* {{{ Outbox */

static gboolean
outbox_item_is_due (OutboxItem *item,
                    Link       *link,
                    gint64      now)
{
  if (item->pending_relay != NULL && item->next_attempt > now)
    return FALSE;
  if (link->connected)
    /* Not yet sent on this connection, or sent long ago with no receipt. */
    return item->sent_generation != link->generation || item->next_attempt <= now;
  return item->next_attempt <= now;
}

static void
item_set_sent (NatterMessagingService *self,
               OutboxItem             *item,
               const char             *via)
{
  Op *op;

  if (!item->user_message)
    return;
  op = op_new (OP_SET_STATE);
  op->msg_id = g_strdup (item->msg_id);
  op->state = NATTER_STORE_MESSAGE_SENT;
  op->via = g_strdup (via);
  service_queue_op (self, op);
  emit_state (self, item->msg_id, item->recipient, NATTER_STORE_MESSAGE_SENT, via);
}

static void
outbox_remove_item (NatterMessagingService *self,
                    Link                   *link,
                    OutboxItem             *item)
{
  Op *op = op_new (OP_OUTBOX_REMOVE);

  op->msg_id = g_strdup (item->msg_id);
  op->peer_id = g_strdup (item->recipient);
  service_queue_op (self, op);
  link_outbox_unlink (link, item);
  outbox_item_free (item);
}

static gint
compare_links (gconstpointer a,
               gconstpointer b)
{
  const Link *la = *(Link * const *) a;
  const Link *lb = *(Link * const *) b;

  return strcmp (la->peer_id, lb->peer_id);
}

/* Sends what is due for @link's peer: straight to it when connected, else
 * to a relay. */
static void
link_pump (Link *link)
{
  NatterMessagingService *self = link->service;
  gint64 now = now_ms ();
  g_autoptr(GPtrArray) candidates = NULL;

  if (!self->started || self->stopping)
    return;

  for (GList *l = link->outbox.head; l != NULL; l = l->next)
    {
      OutboxItem *item = l->data;

      if (link->connected && link->paused)
        break;
      if (!outbox_item_is_due (item, link, now))
        continue;

      if (link->connected)
        {
          if (!link_send_frame (link, item->wire))
            break;
          item->attempts++;
          item->sent_generation = link->generation;
          item->next_attempt = now + RETRY_DIRECT_MS;
          g_clear_pointer (&item->pending_relay, g_free);
          if (item->user_message && item->attempts == 1)
            item_set_sent (self, item, NULL);
          continue;
        }

      /* No connection: hand it to a relay, one candidate after another. */
      if (candidates == NULL)
        {
          candidates = g_ptr_array_new ();
          {
            GHashTableIter iter;
            Link *other;

            g_hash_table_iter_init (&iter, self->links);
            while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &other))
              if (other->connected && link_is_accepted (other) && other != link && !other->paused)
                g_ptr_array_add (candidates, other);
          }
          g_ptr_array_sort (candidates, compare_links);
        }
      if (candidates->len == 0)
        {
          item->next_attempt = now + RETRY_NO_ROUTE_MS;
          continue;
        }
      {
        Link *relay = g_ptr_array_index (candidates, item->relay_index % candidates->len);

        if (item->relay_index >= candidates->len && item->pending_relay == NULL && item->via == NULL)
          {
            /* Every relay refused: wait, then go round again. */
            item->relay_index = 0;
            item->next_attempt = now + RETRY_RELAY_MS;
            continue;
          }
        if (!outbox_item_sign (self, item))
          {
            item->next_attempt = now + RETRY_RELAY_MS;
            continue;
          }
        if (!link_send_frame (relay, item->wire))
          continue;
        item->attempts++;
        g_free (item->pending_relay);
        item->pending_relay = g_strdup (relay->peer_id);
        item->next_attempt = now + RETRY_RELAY_MS;
      }
    }
}

static gboolean
on_pump_idle (gpointer user_data)
{
  Link *link = user_data;

  link->pump_idle = 0;
  link_pump (link);
  return G_SOURCE_REMOVE;
}

/* One pump for everything queued in this main-loop iteration: a burst of
 * sends scans the outbox once, not once per message. */
static void
link_schedule_pump (Link *link)
{
  if (link->pump_idle == 0)
    link->pump_idle = g_idle_add_full (G_PRIORITY_DEFAULT, on_pump_idle, link, NULL);
}

static void
service_pump_all (NatterMessagingService *self)
{
  GHashTableIter iter;
  Link *link;

  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &link))
    if (link->outbox.length > 0)
      link_pump (link);
}

static OutboxItem *
outbox_item_new (const char        *msg_id,
                 const char        *recipient,
                 GBytes            *wire,
                 NatterMessageType  type,
                 gint64             expires_at)
{
  OutboxItem *item = g_new0 (OutboxItem, 1);

  item->msg_id = g_strdup (msg_id);
  item->recipient = g_strdup (recipient);
  item->wire = g_bytes_ref (wire);
  item->type = type;
  item->expires_at = expires_at;
  item->next_attempt = 0;
  item->user_message = type == NATTER_MESSAGE_TYPE_DIRECT_MESSAGE;
  return item;
}

/* Adds a wire message to the outbox, durably, and tries to send it now. */
static void
service_outbox_add (NatterMessagingService *self,
                    NatterMessage          *message,
                    GBytes                 *wire,
                    OpDone                  done,
                    gpointer                data,
                    GDestroyNotify          data_free)
{
  const char *recipient = message->to[0];
  Link *link = service_ensure_link (self, recipient);
  gint64 expires_at = message->timestamp + message->ttl;
  OutboxItem *item;
  Op *op = op_new (OP_OUTBOX_ADD);

  op->outbox = natter_store_outbox_entry_new ();
  op->outbox->msg_id = g_strdup (message->id);
  op->outbox->recipient = g_strdup (recipient);
  op->outbox->wire = g_bytes_ref (wire);
  op->outbox->next_attempt = message->timestamp;
  op->outbox->expires_at = expires_at;
  op->done = done;
  op->data = data;
  op->data_free = data_free;
  service_queue_op (self, op);

  item = outbox_item_new (message->id, recipient, wire, message->type, expires_at);
  link_outbox_push (link, item);
  self->stats.outbox_length++;
}

/* Messages whose TTL ran out: failed, visibly. */
static void
service_expire_outbox (NatterMessagingService *self)
{
  gint64 now = now_ms ();
  GHashTableIter iter;
  Link *link;

  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &link))
    {
      GList *l = link->outbox.head;

      while (l != NULL)
        {
          OutboxItem *item = l->data;

          l = l->next;
          if (item->expires_at > now)
            continue;
          if (item->user_message)
            {
              Op *op = op_new (OP_SET_STATE);

              op->msg_id = g_strdup (item->msg_id);
              op->state = NATTER_STORE_MESSAGE_FAILED;
              service_queue_op (self, op);
              emit_state (self, item->msg_id, item->recipient, NATTER_STORE_MESSAGE_FAILED, NULL);
            }
          outbox_remove_item (self, link, item);
        }
    }
}

/* }}} */
/* {{{ Connections and signaling */

static void link_take_signal (Link *link, GBytes *blob, const char *introducer);
static void link_on_message (NatterPeerConnection *pc, guint stream, GBytes *bytes, Link *link);

static void
link_set_state (Link            *link,
                NatterPeerState  state,
                const char      *via)
{
  if (link->state == state && g_strcmp0 (link->via, via) == 0)
    return;
  link->state = state;
  g_free (link->via);
  link->via = g_strdup (via);
  g_signal_emit (link->service, signals[SIGNAL_PEER_STATE_CHANGED], 0,
                 link->peer_id, state, via);
}

static void
link_set_presence (Link           *link,
                   NatterPresence  presence)
{
  if (link->presence == presence)
    return;
  link->presence = presence;
  g_signal_emit (link->service, signals[SIGNAL_PRESENCE_CHANGED], 0, link->peer_id, presence);
}

static void
link_set_remote_typing (Link     *link,
                        gboolean  typing)
{
  g_clear_handle_id (&link->typing_source, g_source_remove);
  if (link->remote_typing == typing)
    return;
  link->remote_typing = typing;
  g_signal_emit (link->service, signals[SIGNAL_TYPING_CHANGED], 0, link->peer_id, typing);
}

/* Whether any route could carry signals to the peer now. */
static gboolean
link_has_signal_route (Link *link)
{
  NatterMessagingService *self = link->service;
  GHashTableIter iter;
  Link *other;

  if (link->lan_found || link->rendezvous_online)
    return TRUE;
  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &other))
    if (other != link && other->connected)
      return TRUE;
  return FALSE;
}

static void
link_drop_connection (Link     *link,
                      gboolean  retire_ufrag)
{
  if (link->pc == NULL)
    return;
  g_signal_handlers_disconnect_by_data (link->pc, link);
  natter_peer_connection_close (link->pc);
  g_clear_object (&link->pc);
  if (retire_ufrag && link->remote_ufrag != NULL)
    {
      g_ptr_array_add (link->retired_ufrags, g_steal_pointer (&link->remote_ufrag));
      if (link->retired_ufrags->len > MAX_RETIRED_UFRAGS)
        g_ptr_array_remove_index (link->retired_ufrags, 0);
    }
  g_clear_pointer (&link->remote_ufrag, g_free);
}

static void link_handover_relayed (Link *link);

static void
link_on_connected (Link *link)
{
  NatterMessagingService *self = link->service;
  GHashTableIter iter;
  Link *other;

  link->connected = TRUE;
  link->paused = FALSE;
  link->backoff_ms = CONNECT_BACKOFF_MIN_MS;
  self->stats.connections++;
  link_set_state (link, NATTER_PEER_STATE_DIRECT, NULL);
  link_set_presence (link, NATTER_PRESENCE_ONLINE);
  link_send_control (link, NATTER_MESSAGE_TYPE_PRESENCE_UPDATE, "status",
                     natter_presence_to_string (self->presence), NULL, NULL);
  link_pump (link);
  link_handover_relayed (link);
  if (self->groups != NULL)
    natter_groups_peer_connected (self->groups, link->peer_id);
  if (self->files != NULL)
    natter_file_transfers_peer_connected (self->files, link->peer_id, link->pc);

  /* A new neighbour: it may introduce us to contacts we cannot reach, and
   * it may carry what waits for them. */
  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &other))
    if (other != link && !other->connected)
      {
        link_maybe_connect (other, FALSE);
        if (other->outbox.length > 0)
          {
            for (GList *l = other->outbox.head; l != NULL; l = l->next)
              {
                OutboxItem *item = l->data;

                if (item->pending_relay == NULL)
                  item->next_attempt = 0;
              }
            link_pump (other);
          }
      }
}

static void
link_on_lost (Link *link)
{
  NatterMessagingService *self = link->service;
  GHashTableIter iter;
  Link *other;
  gboolean was_connected = link->connected;

  link->connected = FALSE;
  if (was_connected)
    self->stats.connections--;
  if (self->files != NULL)
    natter_file_transfers_peer_lost (self->files, link->peer_id);
  link_set_remote_typing (link, FALSE);
  link_set_presence (link, NATTER_PRESENCE_OFFLINE);
  {
    /* A failed attempt at a direct connection does not end a relayed
     * path that still works. */
    Link *relay = link->via != NULL ? service_get_link (self, link->via) : NULL;

    if (link->state == NATTER_PEER_STATE_RELAYED && relay != NULL && relay->connected)
      ;
    else if (link->state == NATTER_PEER_STATE_CONNECTING && link->via != NULL &&
             relay != NULL && relay->connected)
      link_set_state (link, NATTER_PEER_STATE_RELAYED, link->via);
    else
      link_set_state (link, NATTER_PEER_STATE_OFFLINE, NULL);
  }
  g_hash_table_remove_all (link->handed_over);

  if (!was_connected)
    return;
  if (self->groups != NULL)
    natter_groups_peer_lost (self->groups, link->peer_id);
  /* Peers we reached through this one are no longer relayed. */
  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &other))
    if (other->state == NATTER_PEER_STATE_RELAYED && g_strcmp0 (other->via, link->peer_id) == 0)
      link_set_state (other, NATTER_PEER_STATE_OFFLINE, NULL);
}

static void
on_pc_state (NatterPeerConnection *pc,
             GParamSpec           *pspec,
             Link                 *link)
{
  NatterPeerConnectionState state = natter_peer_connection_get_state (pc);

  switch (state)
    {
    case NATTER_PEER_CONNECTION_STATE_CONNECTED:
      link_on_connected (link);
      break;

    case NATTER_PEER_CONNECTION_STATE_FAILED:
    case NATTER_PEER_CONNECTION_STATE_CLOSED:
      {
        const GError *error = natter_peer_connection_get_error (pc);
        gboolean was_connected = link->connected;

        g_debug ("Connection to %s ended: %s", link->peer_id,
                 error ? error->message : "closed");
        link_drop_connection (link, TRUE);
        link_on_lost (link);
        /* A connection that worked is retried at once, a failing one
         * with growing pauses. */
        if (!was_connected)
          link->backoff_ms = MIN (link->backoff_ms * 2, CONNECT_BACKOFF_MAX_MS);
        link->next_connect_us = g_get_monotonic_time () +
          (gint64) (was_connected ? CONNECT_BACKOFF_MIN_MS : link->backoff_ms) * 1000;
      }
      break;

    case NATTER_PEER_CONNECTION_STATE_NEW:
    case NATTER_PEER_CONNECTION_STATE_CONNECTING:
    default:
      break;
    }
}

static void
on_buffered_amount_low (NatterPeerConnection *pc,
                        Link                 *link)
{
  NatterMessagingService *self = link->service;

  if (self->files != NULL)
    natter_file_transfers_pump (self->files, link->peer_id);
  if (!link->paused)
    return;
  link->paused = FALSE;
  /* Resume this peer's own queue and whatever waits on it as a relay. */
  link_pump (link);
  service_pump_all (self);
}

/* Sends one signal blob to the peer by the best route there is. */
static void
on_pc_signal (NatterPeerConnection *pc,
              GBytes               *blob,
              Link                 *link)
{
  NatterMessagingService *self = link->service;
  g_autoptr(GError) error = NULL;
  GHashTableIter iter;
  Link *other;
  gboolean sent = FALSE;

  if (link->lan_found && self->lan != NULL)
    {
      if (natter_lan_discovery_send_signal (self->lan, link->peer_id, blob, &error))
        return;
      g_debug ("LAN signal to %s failed: %s", link->peer_id, error->message);
      g_clear_error (&error);
    }
  for (guint i = 0; i < self->rendezvous->len; i++)
    {
      NatterRendezvousClient *client = g_ptr_array_index (self->rendezvous, i);

      if (!natter_rendezvous_client_is_online (client, link->peer_id))
        continue;
      if (natter_rendezvous_client_send_signal (client, link->peer_id, blob, &error))
        return;
      g_debug ("Rendezvous signal to %s failed: %s", link->peer_id, error->message);
      g_clear_error (&error);
    }

  /* No server: ask connected peers to introduce us.  The blob is sealed
   * to the target, so the introducer cannot read it. */
  {
    g_autoptr(GBytes) sealed = natter_signal_seal (link->peer_id, blob, &error);
    g_autofree char *encoded = NULL;
    gsize len;
    const guint8 *data;

    if (sealed == NULL)
      {
        g_warning ("Could not seal a signal: %s", error->message);
        return;
      }
    data = g_bytes_get_data (sealed, &len);
    encoded = g_base64_encode (data, len);

    g_hash_table_iter_init (&iter, self->links);
    while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &other))
      {
        if (other == link || !other->connected)
          continue;
        if (link->introducer != NULL && strcmp (other->peer_id, link->introducer) != 0 &&
            service_get_link (self, link->introducer) != NULL &&
            service_get_link (self, link->introducer)->connected)
          continue;
        sent |= link_send_control (other, NATTER_MESSAGE_TYPE_CONNECTION_REQUEST,
                                   "target", link->peer_id, "blob", encoded);
      }
  }
  if (!sent)
    g_debug ("No route for a signal to %s", link->peer_id);
}

static void
link_start_connection (Link *link)
{
  NatterMessagingService *self = link->service;
  g_autoptr(GError) error = NULL;
  NatterPeerConnection *pc;

  pc = natter_peer_connection_new (self->identity, link->peer_id, self->ice_config, &error);
  if (pc == NULL)
    {
      g_warning ("Cannot connect to %s: %s", link->peer_id, error->message);
      return;
    }
  link->pc = pc;
  link->pc_started_us = g_get_monotonic_time ();
  link->generation++;
  natter_peer_connection_set_buffered_amount_low_threshold (pc, link_low_water (link));
  g_signal_connect (pc, "signal", G_CALLBACK (on_pc_signal), link);
  g_signal_connect (pc, "notify::state", G_CALLBACK (on_pc_state), link);
  g_signal_connect (pc, "message", G_CALLBACK (link_on_message), link);
  g_signal_connect (pc, "buffered-amount-low", G_CALLBACK (on_buffered_amount_low), link);
  if (link->state != NATTER_PEER_STATE_RELAYED)
    link_set_state (link, NATTER_PEER_STATE_CONNECTING, NULL);
  natter_peer_connection_start (pc);
}

/* Starts a connection when the peer is a contact, has a way to be reached
 * and the back-off allows (or @now). */
static void
link_maybe_connect (Link     *link,
                    gboolean  now)
{
  NatterMessagingService *self = link->service;

  if (!self->started || self->stopping || link->pc != NULL || !link_is_accepted (link))
    return;
  if (!link_has_signal_route (link))
    return;
  if (!now && g_get_monotonic_time () < link->next_connect_us)
    return;
  link->next_connect_us = g_get_monotonic_time () + (gint64) link->backoff_ms * 1000;
  link_start_connection (link);
}

/* A signal blob from the peer, by any route. */
static void
link_take_signal (Link       *link,
                  GBytes     *blob,
                  const char *introducer)
{
  g_autoptr(GError) error = NULL;
  gsize len;
  const char *data = g_bytes_get_data (blob, &len);

  if (!link_is_accepted (link) || link->service->stopping || !link->service->started)
    return;

  if (introducer != NULL)
    {
      g_free (link->introducer);
      link->introducer = g_strdup (introducer);
    }

  if (len > strlen ("ice-credentials ") && memcmp (data, "ice-credentials ", 16) == 0)
    {
      g_autofree char *text = g_strndup (data, len);
      g_auto(GStrv) parts = g_strsplit (text, " ", 3);

      if (g_strv_length (parts) < 3)
        return;
      for (guint i = 0; i < link->retired_ufrags->len; i++)
        if (strcmp (g_ptr_array_index (link->retired_ufrags, i), parts[1]) == 0)
          return;   /* from a session that is over */
      /* A session of ours that never heard from the peer, started a
       * while ago: its credentials went to an earlier run of the peer, or
       * nowhere (no route then), so this new run of the peer has never
       * seen them and the checks could never succeed.  Start again, which
       * sends it fresh credentials.  (Found by tests/service/offline.py:
       * a peer that restarted could not reconnect to a relay that had
       * been trying to reach it meanwhile.)  A recent one is kept: that is
       * two sides starting at the same time, which works as it is. */
      if (link->pc != NULL && link->remote_ufrag == NULL && !link->connected &&
          g_get_monotonic_time () - link->pc_started_us > (gint64) STALE_SESSION_MS * 1000)
        link_drop_connection (link, FALSE);
      if (link->pc != NULL && link->remote_ufrag != NULL && strcmp (link->remote_ufrag, parts[1]) != 0)
        {
          /* The peer started again: so do we. */
          gboolean was_connected = link->connected;

          link_drop_connection (link, TRUE);
          if (was_connected)
            link_on_lost (link);
        }
      if (link->pc == NULL)
        link_start_connection (link);
      if (link->pc == NULL)
        return;
      g_free (link->remote_ufrag);
      link->remote_ufrag = g_strdup (parts[1]);
    }
  else if (link->pc == NULL)
    return;   /* candidates of a session we no longer have */

  if (!natter_peer_connection_handle_signal (link->pc, blob, &error))
    g_debug ("Signal from %s refused: %s", link->peer_id, error->message);
}

static void
on_lan_contact_found (NatterLanDiscovery *lan,
                      const char         *peer_id,
                      GInetSocketAddress *address,
                      gpointer            user_data)
{
  NatterMessagingService *self = user_data;
  Link *link = service_get_link (self, peer_id);

  if (link == NULL)
    return;
  link->lan_found = TRUE;
  link_maybe_connect (link, TRUE);
}

static void
on_lan_contact_lost (NatterLanDiscovery *lan,
                     const char         *peer_id,
                     gpointer            user_data)
{
  Link *link = service_get_link (user_data, peer_id);

  if (link != NULL)
    link->lan_found = FALSE;
}

static void
on_lan_signal (NatterLanDiscovery *lan,
               const char         *peer_id,
               GBytes             *blob,
               gpointer            user_data)
{
  Link *link = service_get_link (user_data, peer_id);

  if (link != NULL)
    {
      link->lan_found = TRUE;
      link_take_signal (link, blob, NULL);
    }
}

static void
on_rendezvous_presence (NatterRendezvousClient *client,
                        const char             *peer_id,
                        gboolean                online,
                        gpointer                user_data)
{
  NatterMessagingService *self = user_data;
  Link *link = service_get_link (self, peer_id);

  if (link == NULL)
    return;
  link->rendezvous_online = FALSE;
  for (guint i = 0; i < self->rendezvous->len; i++)
    if (natter_rendezvous_client_is_online (g_ptr_array_index (self->rendezvous, i), peer_id))
      link->rendezvous_online = TRUE;
  if (online)
    link_maybe_connect (link, TRUE);
}

static void
on_rendezvous_signal (NatterRendezvousClient *client,
                      const char             *peer_id,
                      GBytes                 *blob,
                      gpointer                user_data)
{
  Link *link = service_get_link (user_data, peer_id);

  if (link != NULL)
    {
      link->rendezvous_online = TRUE;
      link_take_signal (link, blob, NULL);
    }
}

static void     nearby_now_known     (NatterMessagingService *self,
                                      const char             *handle,
                                      const char             *peer_id);
static gboolean same_socket_address  (GInetSocketAddress     *a,
                                      GInetSocketAddress     *b);
static gboolean nearby_has_requested (NatterMessagingService *self,
                                      const char             *handle);

static void
on_lan_nearby_found (NatterLanDiscovery *lan,
                     const char         *handle,
                     GInetSocketAddress *address,
                     gpointer            user_data)
{
  NatterMessagingService *self = user_data;
  GHashTableIter iter;
  const char *peer_id;
  GInetSocketAddress *due;

  g_hash_table_replace (self->nearby, g_strdup (handle), g_object_ref (address));
  /* Someone whose introduction we accepted before we heard from it. */
  g_hash_table_iter_init (&iter, self->answers_due);
  while (g_hash_table_iter_next (&iter, (gpointer *) &peer_id, (gpointer *) &due))
    if (same_socket_address (due, address))
      {
        g_autoptr(GError) error = NULL;
        g_autofree char *peer = g_strdup (peer_id);

        g_hash_table_iter_remove (&iter);
        if (self->lan != NULL && natter_lan_discovery_reveal_to_nearby (self->lan, handle, &error))
          nearby_now_known (self, handle, peer);
        else if (error != NULL)
          g_message ("Could not introduce ourselves back to %s: %s", peer, error->message);
        break;
      }
  if (!g_hash_table_contains (self->nearby_known, handle) && !nearby_has_requested (self, handle))
    g_signal_emit (self, signals[SIGNAL_NEARBY_CHANGED], 0, handle, TRUE);
}

/* @handle turned out to be @peer_id, now a contact: not a stranger any more. */
static void
nearby_now_known (NatterMessagingService *self,
                  const char             *handle,
                  const char             *peer_id)
{
  g_autofree char *key = g_strdup (handle);

  g_hash_table_remove (self->introduced_to, key);
  if (g_hash_table_size (self->nearby_known) >= 1024)
    return;
  g_hash_table_replace (self->nearby_known, g_strdup (key), g_strdup (peer_id));
  g_signal_emit (self, signals[SIGNAL_NEARBY_CHANGED], 0, key, FALSE);
}

static void
on_lan_nearby_lost (NatterLanDiscovery *lan,
                    const char         *handle,
                    gpointer            user_data)
{
  NatterMessagingService *self = user_data;

  if (!g_hash_table_remove (self->nearby, handle))
    return;
  g_hash_table_remove (self->introduced_to, handle);
  if (!g_hash_table_remove (self->nearby_known, handle))
    g_signal_emit (self, signals[SIGNAL_NEARBY_CHANGED], 0, handle, FALSE);
}

static gboolean
same_socket_address (GInetSocketAddress *a,
                     GInetSocketAddress *b)
{
  return g_inet_socket_address_get_port (a) == g_inet_socket_address_get_port (b) &&
         g_inet_address_equal (g_inet_socket_address_get_address (a),
                               g_inet_socket_address_get_address (b));
}

/* The handle of the stranger whose announcements come from @address. */
static const char *
nearby_handle_at (NatterMessagingService *self,
                  GInetSocketAddress     *address)
{
  GHashTableIter iter;
  const char *handle;
  GInetSocketAddress *seen;

  g_hash_table_iter_init (&iter, self->nearby);
  while (g_hash_table_iter_next (&iter, (gpointer *) &handle, (gpointer *) &seen))
    if (same_socket_address (seen, address))
      return handle;
  return NULL;
}

static void
nearby_clear (NatterMessagingService *self)
{
  g_autoptr(GPtrArray) handles = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  const char *handle;

  g_hash_table_iter_init (&iter, self->nearby);
  while (g_hash_table_iter_next (&iter, (gpointer *) &handle, NULL))
    if (!g_hash_table_contains (self->nearby_known, handle))
      g_ptr_array_add (handles, g_strdup (handle));
  g_hash_table_remove_all (self->nearby);
  g_hash_table_remove_all (self->nearby_known);
  g_hash_table_remove_all (self->answers_due);
  g_hash_table_remove_all (self->introduced_to);
  g_hash_table_remove_all (self->request_addresses);
  for (guint i = 0; i < handles->len; i++)
    g_signal_emit (self, signals[SIGNAL_NEARBY_CHANGED], 0, g_ptr_array_index (handles, i), FALSE);
}

static void on_lan_nearby_revealed (NatterLanDiscovery *lan,
                                    const char         *peer_id,
                                    GInetSocketAddress *address,
                                    gpointer            user_data);

/* The contact lists of the finders follow the accepted contacts. */
static void
service_update_finders (NatterMessagingService *self)
{
  g_autoptr(GPtrArray) ids = g_ptr_array_new ();
  GHashTableIter iter;
  Link *link;

  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &link))
    if (link_is_accepted (link))
      g_ptr_array_add (ids, link->peer_id);
  g_ptr_array_add (ids, NULL);

  if (self->lan != NULL)
    natter_lan_discovery_set_contacts (self->lan, (const char * const *) ids->pdata);
  for (guint i = 0; i < self->rendezvous->len; i++)
    {
      g_autoptr(GError) error = NULL;

      if (!natter_rendezvous_client_set_contacts (g_ptr_array_index (self->rendezvous, i),
                                                  (const char * const *) ids->pdata, &error))
        g_warning ("Could not update the rendezvous contacts: %s", error->message);
    }
}

/* }}} */
/* {{{ Receiving */

static gboolean
seen_check_and_add (GHashTable *table,
                    GQueue     *order,
                    const char *key,
                    gpointer    value)
{
  if (g_hash_table_contains (table, key))
    return TRUE;
  {
    char *copy = g_strdup (key);

    g_hash_table_insert (table, copy, value);
    g_queue_push_tail (order, copy);
    while (order->length > SEEN_CACHE_SIZE)
      {
        char *old = g_queue_pop_head (order);

        /* The table may hold a newer copy of the same ID. */
        if (g_hash_table_lookup_extended (table, old, (gpointer *) &copy, NULL) && copy == old)
          g_hash_table_remove (table, old);
        g_free (old);
      }
  }
  return FALSE;
}

typedef struct
{
  char    *peer_id;       /* the author */
  char    *arrived_from;  /* the neighbour it came from */
  gboolean relayed;
} ReceiveData;

static void
receive_data_free (ReceiveData *data)
{
  g_free (data->peer_id);
  g_free (data->arrived_from);
  g_free (data);
}

/* After the message is durable: show it, then acknowledge it. */
static void
on_chat_committed (NatterMessagingService *self,
                   Op                     *op)
{
  ReceiveData *data = op->data;
  Link *author = service_get_link (self, data->peer_id);

  if (op->error != NULL)
    {
      /* Not durable, so not acknowledged: the sender will send it again. */
      g_warning ("Could not store a message from %s: %s", data->peer_id, op->error->message);
      g_hash_table_remove (self->seen, op->message->msg_id);
      return;
    }

  if (op->flag)
    {
      g_autoptr(NatterMessageItem) item = NULL;

      if (author != NULL)
        author->conversation_id = op->message->conversation_id;
      item = natter_message_item_new (op->message, data->peer_id);
      histories_append (self, item);
      conversations_touch (self, data->peer_id, op->message->conversation_id, op->message->body,
                           op->message->timestamp, TRUE);
      g_signal_emit (self, signals[SIGNAL_MESSAGE_RECEIVED], 0, item);
    }
  else
    self->stats.duplicates_dropped++;

  /* The signed end-to-end receipt goes out after this batch, one for all
   * the messages of this sender that it committed. */
  if (author != NULL)
    g_ptr_array_add (author->pending_receipts, g_strdup (op->message->msg_id));
}

#define MAX_RECEIPT_IDS 256

/* Sends the delivered receipts that the last batch made due: straight
 * back when connected, otherwise through the outbox (relays,
 * store-and-forward). */
static void
service_send_receipts (NatterMessagingService *self)
{
  GHashTableIter iter;
  Link *link;

  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &link))
    {
      guint done = 0;

      while (done < link->pending_receipts->len)
        {
          guint n = MIN (link->pending_receipts->len - done, MAX_RECEIPT_IDS);
          g_autoptr(NatterMessage) receipt =
            service_new_message (self, NATTER_MESSAGE_TYPE_MESSAGE_DELIVERED, link->peer_id);
          g_autoptr(GBytes) wire = NULL;
          g_autoptr(GError) error = NULL;

          json_object_set_string_member (receipt->content, "messageId",
                                         g_ptr_array_index (link->pending_receipts, done));
          if (n > 1)
            {
              JsonArray *ids = json_array_sized_new (n);

              for (guint i = 0; i < n; i++)
                json_array_add_string_element (ids, g_ptr_array_index (link->pending_receipts, done + i));
              json_object_set_array_member (receipt->content, "messageIds", ids);
            }
          done += n;
          receipt->requires_ack = !link->connected;
          if (link->connected)
            receipt->ttl = 60000;
          wire = service_seal (self, receipt, &error);
          if (wire == NULL)
            {
              g_warning ("Could not build a receipt: %s", error->message);
              continue;
            }
          if (link->connected && link_send_frame (link, wire))
            continue;
          service_outbox_add (self, receipt, wire, NULL, NULL, NULL);
          link_pump (link);
        }
      g_ptr_array_set_size (link->pending_receipts, 0);
    }
}

static void
receive_commit_chat (NatterMessagingService *self,
                     Link                   *author,
                     NatterMessage          *message,
                     const char             *arrived_from)
{
  g_autoptr(GError) error = NULL;
  NatterStoreMessage *row;
  ReceiveData *data;
  JsonNode *text;
  Op *op;

  if (!natter_message_decrypt_from_peer (message, self->identity, &error))
    {
      self->stats.rejected++;
      g_debug ("Message %s from %s does not open: %s", message->id, message->from, error->message);
      return;
    }
  text = json_object_get_member (message->content, "text");

  row = natter_store_message_new ();
  row->msg_id = g_strdup (message->id);
  row->sender = g_strdup (message->from);
  row->direction = NATTER_STORE_DIRECTION_IN;
  row->type = g_strdup ("text");
  row->body = g_strdup (text != NULL ? json_node_get_string (text) : "");
  row->timestamp = message->timestamp;
  row->sequence = (gint64) message->sequence;
  row->state = NATTER_STORE_MESSAGE_DELIVERED;
  row->relay_via = message->route != NULL && message->route[0] != NULL
                   ? g_strdup (message->route[0]) : NULL;

  data = g_new0 (ReceiveData, 1);
  data->peer_id = g_strdup (author->peer_id);
  data->arrived_from = g_strdup (arrived_from);

  op = op_new (OP_INSERT_MESSAGE);
  op->peer_id = g_strdup (author->peer_id);
  op->message = row;
  op->done = on_chat_committed;
  op->data = data;
  op->data_free = (GDestroyNotify) receive_data_free;
  service_queue_op (self, op);

  if (author->remote_typing)
    link_set_remote_typing (author, FALSE);
}

static gint
compare_seq (gconstpointer a,
             gconstpointer b)
{
  guint64 x = **(guint64 * const *) a;
  guint64 y = **(guint64 * const *) b;

  return x < y ? -1 : x > y;
}

/* Releases held messages: the contiguous run after in_seq, or, when
 * @force, everything in order (the gap did not fill in time). */
static void
link_release_held (Link     *link,
                   gboolean  force)
{
  NatterMessagingService *self = link->service;

  if (force && g_hash_table_size (link->held) > 0)
    {
      g_autoptr(GPtrArray) keys = g_ptr_array_new ();
      GHashTableIter iter;
      gpointer key;

      g_hash_table_iter_init (&iter, link->held);
      while (g_hash_table_iter_next (&iter, &key, NULL))
        g_ptr_array_add (keys, key);

      g_ptr_array_sort (keys, compare_seq);
      for (guint i = 0; i < keys->len; i++)
        {
          guint64 seq = *(guint64 *) g_ptr_array_index (keys, i);
          NatterMessage *message = natter_message_ref (g_hash_table_lookup (link->held, &seq));

          g_hash_table_remove (link->held, &seq);
          link->in_seq = MAX (link->in_seq, seq);
          receive_commit_chat (self, link, message, NULL);
          natter_message_unref (message);
        }
      return;
    }

  for (;;)
    {
      guint64 next = link->in_seq + 1;
      NatterMessage *message = g_hash_table_lookup (link->held, &next);

      if (message == NULL)
        break;
      natter_message_ref (message);
      g_hash_table_remove (link->held, &next);
      link->in_seq = next;
      receive_commit_chat (self, link, message, NULL);
      natter_message_unref (message);
    }
  if (g_hash_table_size (link->held) == 0)
    link->held_since_us = 0;
}

static void
receive_chat (NatterMessagingService *self,
              Link                   *author,
              NatterMessage          *message,
              const char             *arrived_from)
{
  guint64 seq = message->sequence;

  if (seen_check_and_add (self->seen, &self->seen_order, message->id, GINT_TO_POINTER (1)))
    {
      /* Seen lately: it may still be on its way to the disk, or held.
       * Acknowledge again only once it is durable (a duplicate insert is
       * a no-op whose completion sends the receipt). */
      gboolean held = FALSE;
      GHashTableIter iter;
      gpointer value;

      g_hash_table_iter_init (&iter, author->held);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        if (strcmp (((NatterMessage *) value)->id, message->id) == 0)
          held = TRUE;
      if (held)
        return;
      receive_commit_chat (self, author, message, arrived_from);
      return;
    }

  /* Per-sender order: sequence numbers count up from 1 per conversation. */
  if (seq == 0 || seq <= author->in_seq)
    {
      receive_commit_chat (self, author, message, arrived_from);
      return;
    }
  if (seq == author->in_seq + 1)
    {
      author->in_seq = seq;
      receive_commit_chat (self, author, message, arrived_from);
      link_release_held (author, FALSE);
      return;
    }
  /* A gap: hold it for a while, in case the missing ones are on their way
   * (through a relay while this came direct, say). */
  if (g_hash_table_size (author->held) >= MAX_HELD)
    link_release_held (author, TRUE);
  g_hash_table_insert (author->held, g_memdup2 (&seq, sizeof seq), natter_message_ref (message));
  if (author->held_since_us == 0)
    author->held_since_us = g_get_monotonic_time ();
}

static void
receipt_apply (NatterMessagingService  *self,
               Link                    *author,
               const char              *msg_id,
               NatterStoreMessageState  state)
{
  OutboxItem *item = link_find_item (author, msg_id);
  Op *op;

  if (item != NULL)
    outbox_remove_item (self, author, item);

  op = op_new (OP_SET_STATE);
  op->msg_id = g_strdup (msg_id);
  op->state = state;
  service_queue_op (self, op);
  emit_state (self, msg_id, author->peer_id, state, NULL);
}

/* message_delivered / message_read from @author about our messages. */
static void
receive_receipt (NatterMessagingService  *self,
                 Link                    *author,
                 NatterMessage           *message,
                 NatterStoreMessageState  state)
{
  JsonNode *node = json_object_get_member (message->content, "messageId");
  JsonNode *list = json_object_get_member (message->content, "messageIds");

  if (list != NULL && JSON_NODE_HOLDS_ARRAY (list))
    {
      JsonArray *ids = json_node_get_array (list);

      for (guint i = 0; i < json_array_get_length (ids); i++)
        receipt_apply (self, author, json_array_get_string_element (ids, i), state);
      /* "messageId" is the first of the list. */
      return;
    }
  if (node != NULL)
    receipt_apply (self, author, json_node_get_string (node), state);
}

/* A hop acknowledgement from the neighbour @link about a frame we gave it. */
static void
receive_hop_ack (NatterMessagingService *self,
                 Link                   *link,
                 NatterMessage          *message)
{
  JsonNode *id_node = json_object_get_member (message->content, "messageId");
  JsonNode *status_node = json_object_get_member (message->content, "status");
  const char *msg_id = id_node != NULL ? json_node_get_string (id_node) : NULL;
  const char *status = status_node != NULL ? json_node_get_string (status_node) : "received";
  GHashTableIter iter;
  Link *target;

  if (msg_id == NULL)
    return;

  /* A message we held for this peer and handed over. */
  if (g_hash_table_remove (link->handed_over, msg_id))
    {
      Op *op = op_new (OP_RELAY_REMOVE);

      op->msg_id = g_strdup (msg_id);
      op->peer_id = g_strdup (link->peer_id);
      service_queue_op (self, op);
      self->stats.relay_handed_over++;
      emit_relay_event (self, "handed-over", msg_id, NULL, link->peer_id, NULL);
      return;
    }

  /* An outbox item: the recipient itself, or a relay, answered. */
  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &target))
    {
      OutboxItem *item = link_find_item (target, msg_id);

      if (item == NULL)
        continue;

      if (target == link)
        {
          /* The recipient has it.  User messages wait for the signed
           * receipt; anything else is done. */
          if (!item->user_message)
            outbox_remove_item (self, target, item);
          return;
        }
      if (g_strcmp0 (item->pending_relay, link->peer_id) != 0 && g_strcmp0 (item->via, link->peer_id) != 0)
        return;

      if (g_strcmp0 (status, "forwarded") == 0 || g_strcmp0 (status, "stored") == 0)
        {
          g_clear_pointer (&item->pending_relay, g_free);
          g_free (item->via);
          item->via = g_strdup (link->peer_id);
          if (item->user_message)
            item_set_sent (self, item, link->peer_id);
          else
            {
              /* Custody moved to the relay, which keeps it durably. */
              outbox_remove_item (self, target, item);
            }
          if (g_strcmp0 (status, "forwarded") == 0 && !target->connected)
            link_set_state (target, NATTER_PEER_STATE_RELAYED, link->peer_id);
        }
      else
        {
          g_clear_pointer (&item->pending_relay, g_free);
          emit_relay_event (self, "refused-by", msg_id, link->peer_id, target->peer_id, status);
          item->relay_index++;
          item->next_attempt = 0;
          link_pump (target);
        }
      return;
    }
}

static void
on_relay_added (NatterMessagingService *self,
                Op                     *op)
{
  ReceiveData *data = op->data;
  Link *from = service_get_link (self, data->arrived_from);
  const char *status;

  if (op->error != NULL)
    {
      g_warning ("Could not hold a message for %s: %s", op->relay->recipient, op->error->message);
      g_hash_table_remove (self->relay_seen, op->msg_id);
      return;   /* no ack: the sender tries again */
    }
  switch (op->relay_result)
    {
    case RELAY_QUOTA:
      status = "quota";
      self->stats.relay_refused++;
      g_hash_table_remove (self->relay_seen, op->msg_id);
      {
        g_autofree char *detail = g_strdup_printf ("quota: %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " bytes held",
                                                   op->result, op->number);
        emit_relay_event (self, "refused", op->relay->msg_id, op->relay->sender,
                          op->relay->recipient, detail);
      }
      break;
    case RELAY_STORED:
      self->stats.relay_stored++;
      emit_relay_event (self, "stored", op->relay->msg_id, op->relay->sender, op->relay->recipient, NULL);
      G_GNUC_FALLTHROUGH;
    case RELAY_DUPLICATE:
    default:
      status = "stored";
      break;
    }
  if (from != NULL)
    link_send_hop_ack (from, op->relay->msg_id, status);

  /* The recipient may have come back while this was being written. */
  {
    Link *recipient = service_get_link (self, op->relay->recipient);

    if (op->relay_result == RELAY_STORED && recipient != NULL && recipient->connected)
      link_handover_relayed (recipient);
  }
}

static void
relay_refuse (NatterMessagingService *self,
              Link                   *from,
              NatterMessage          *message,
              const char             *status)
{
  self->stats.relay_refused++;
  emit_relay_event (self, "refused", message->id, message->from,
                    message->to != NULL ? message->to[0] : NULL, status);
  link_send_hop_ack (from, message->id, status);
}

/* Remembers what we answered for (message, recipient), so that a repeat
 * gets the same answer and is not carried twice. */
static void
relay_seen_add (NatterMessagingService *self,
                const char             *key,
                const char             *status)
{
  g_hash_table_insert (self->relay_seen, g_strdup (key), (gpointer) status);
  g_queue_push_tail (&self->relay_seen_order, g_strdup (key));
  while (self->relay_seen_order.length > SEEN_CACHE_SIZE)
    {
      char *old = g_queue_pop_head (&self->relay_seen_order);

      g_hash_table_remove (self->relay_seen, old);
      g_free (old);
    }
}

/* A frame that is not for us: carry it on, or hold it. */
static void
receive_for_relay (NatterMessagingService *self,
                   Link                   *from,
                   NatterMessage          *message)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key = NULL;
  const char *recipient;
  Link *author, *target;
  const char *previous;

  if (g_strv_length (message->to) != 1)
    {
      relay_refuse (self, from, message, "invalid");
      return;
    }
  recipient = message->to[0];

  /* The relay checks everything it can without reading the content. */
  if (!natter_message_verify (message, &error))
    {
      self->stats.rejected++;
      g_debug ("Relayed message %s refused: %s", message->id, error->message);
      relay_refuse (self, from, message, "invalid");
      return;
    }
  if (!self->relay_enabled)
    {
      relay_refuse (self, from, message, "disabled");
      return;
    }
  author = service_get_link (self, message->from);
  target = service_get_link (self, recipient);
  if (!link_is_accepted (author) || !link_is_accepted (target) || !link_is_accepted (from))
    {
      relay_refuse (self, from, message, "not-contact");
      return;
    }
  if (message->timestamp + message->ttl <= now_ms ())
    {
      relay_refuse (self, from, message, "expired");
      return;
    }
  if (message->route != NULL && g_strv_contains ((const char * const *) message->route, self->peer_id))
    return;   /* a loop: we carried it already */
  if (message->hops >= NATTER_MESSAGE_MAX_HOPS)
    {
      relay_refuse (self, from, message, "no-route");
      return;
    }

  key = g_strconcat (message->id, "\n", recipient, NULL);
  {
    const char *done = g_hash_table_lookup (self->relay_seen, key);

    if (done != NULL)
      {
        link_send_hop_ack (from, message->id, done);
        return;
      }
  }

  /* Record ourselves on the route. */
  {
    guint n = message->route != NULL ? g_strv_length (message->route) : 0;
    GStrv route;

    if (n >= NATTER_MESSAGE_MAX_ROUTE)
      {
        relay_refuse (self, from, message, "no-route");
        return;
      }
    route = g_new0 (char *, n + 2);
    for (guint i = 0; i < n; i++)
      route[i] = g_strdup (message->route[i]);
    route[n] = g_strdup (self->peer_id);
    g_strfreev (message->route);
    message->route = route;
    message->hops++;
  }
  previous = from->peer_id;

  {
    g_autoptr(GBytes) wire = natter_message_encode (message, &error);

    if (wire == NULL)
      {
        relay_refuse (self, from, message, "invalid");
        return;
      }

    /* A connected recipient that said it is offline is leaving (or
     * hiding): give it the message, but also keep a copy, since the
     * connection may already be gone. */
    if (target->connected && target->presence != NATTER_PRESENCE_OFFLINE &&
        link_send_frame (target, wire))
      {
        self->stats.relayed++;
        relay_seen_add (self, key, "forwarded");
        emit_relay_event (self, "forwarded", message->id, message->from, recipient, NULL);
        link_send_hop_ack (from, message->id, "forwarded");
        return;
      }

    if (target->connected)
      link_send_frame (target, wire);

    /* Not connected to the recipient: let other neighbours try (a further
     * hop), and hold a copy for when it comes back. */
    if (message->hops < NATTER_MESSAGE_MAX_HOPS)
      {
        GHashTableIter iter;
        Link *other;

        g_hash_table_iter_init (&iter, self->links);
        while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &other))
          {
            if (!other->connected || other == from || other == target || other == author ||
                !link_is_accepted (other) ||
                g_strv_contains ((const char * const *) message->route, other->peer_id))
              continue;
            if (link_send_frame (other, wire))
              self->stats.relayed++;
          }
      }

    {
      Op *op = op_new (OP_RELAY_ADD);
      ReceiveData *data = g_new0 (ReceiveData, 1);

      op->msg_id = g_strdup (key);
      op->relay = natter_store_relay_entry_new ();
      op->relay->msg_id = g_strdup (message->id);
      op->relay->recipient = g_strdup (recipient);
      op->relay->sender = g_strdup (message->from);
      op->relay->wire = g_bytes_ref (wire);
      op->relay->received_at = now_ms ();
      op->relay->expires_at = MIN (message->timestamp + message->ttl,
                                   now_ms () + NATTER_MESSAGING_RELAY_MAX_TTL_MS);
      op->number = self->relay_quota;
      data->arrived_from = g_strdup (previous);
      op->data = data;
      op->data_free = (GDestroyNotify) receive_data_free;
      op->done = on_relay_added;
      relay_seen_add (self, key, "stored");
      service_queue_op (self, op);
    }
  }
}

/* {{{ Hand-over of held messages */

static void
on_relay_listed (NatterMessagingService *self,
                 Op                     *op)
{
  Link *link = service_get_link (self, op->peer_id);

  if (link == NULL)
    return;
  link->handover_running = FALSE;
  if (op->error != NULL)
    {
      g_warning ("Could not read held messages: %s", op->error->message);
      return;
    }
  if (!link->connected)
    return;
  for (guint i = 0; i < op->list->len; i++)
    {
      NatterStoreRelayEntry *entry = g_ptr_array_index (op->list, i);

      if (g_hash_table_contains (link->handed_over, entry->msg_id))
        continue;
      if (!link_send_frame (link, entry->wire))
        break;
      g_hash_table_add (link->handed_over, g_strdup (entry->msg_id));
    }
}

static void
link_handover_relayed (Link *link)
{
  NatterMessagingService *self = link->service;
  Op *op;

  if (!self->relay_enabled || link->handover_running || !link->connected)
    return;
  link->handover_running = TRUE;
  op = op_new (OP_RELAY_LIST);
  op->peer_id = g_strdup (link->peer_id);
  op->number = now_ms ();
  op->done = on_relay_listed;
  service_queue_op (self, op);
}

/* }}} */

/* connection_request from @link: it wants us to introduce it to target. */
static void
receive_connection_request (NatterMessagingService *self,
                            Link                   *link,
                            NatterMessage          *message,
                            GBytes                 *wire)
{
  JsonNode *target_node = json_object_get_member (message->content, "target");
  const char *target_id = target_node != NULL ? json_node_get_string (target_node) : NULL;
  Link *target = target_id != NULL ? service_get_link (self, target_id) : NULL;
  g_autofree char *encoded = NULL;
  gsize len;
  const guint8 *data;

  if (target_id != NULL && strcmp (target_id, self->peer_id) == 0)
    return;
  /* Introductions only between two of our own contacts, and only to a
   * peer we are connected to. */
  if (!link_is_accepted (link) || !link_is_accepted (target) || !target->connected)
    return;

  /* The introduction carries the requester's whole signed request, so the
   * target can check who asked; the signal inside is sealed to it. */
  data = g_bytes_get_data (wire, &len);
  encoded = g_base64_encode (data, len);
  link_send_control (target, NATTER_MESSAGE_TYPE_PEER_INTRODUCTION,
                     "peer", link->peer_id, "blob", encoded);
}

/* peer_introduction from the neighbour @link. */
static void
receive_introduction (NatterMessagingService *self,
                      Link                   *link,
                      NatterMessage          *message)
{
  JsonNode *peer_node = json_object_get_member (message->content, "peer");
  JsonNode *blob_node = json_object_get_member (message->content, "blob");
  g_autoptr(NatterMessage) request = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) sealed = NULL;
  g_autoptr(GBytes) signal = NULL;
  g_autofree guint8 *raw = NULL;
  gsize raw_len = 0;
  const char *peer_id, *target;
  JsonNode *node;
  Link *peer;

  if (peer_node == NULL || blob_node == NULL || !link_is_accepted (link))
    return;
  peer_id = json_node_get_string (peer_node);
  raw = g_base64_decode (json_node_get_string (blob_node), &raw_len);
  request = natter_message_decode_data (raw, raw_len, NATTER_MESSAGE_DECODE_VERIFY, &error);
  if (request == NULL)
    {
      self->stats.rejected++;
      g_debug ("Introduction from %s refused: %s", link->peer_id, error->message);
      return;
    }
  node = json_object_get_member (request->content, "target");
  target = node != NULL ? json_node_get_string (node) : NULL;
  if (request->type != NATTER_MESSAGE_TYPE_CONNECTION_REQUEST ||
      g_strcmp0 (request->from, peer_id) != 0 || g_strcmp0 (target, self->peer_id) != 0 ||
      request->timestamp + request->ttl <= now_ms ())
    {
      self->stats.rejected++;
      return;
    }
  peer = service_get_link (self, peer_id);
  if (!link_is_accepted (peer))
    return;
  node = json_object_get_member (request->content, "blob");
  g_clear_pointer (&raw, g_free);
  raw = g_base64_decode (json_node_get_string (node), &raw_len);
  sealed = g_bytes_new_take (g_steal_pointer (&raw), raw_len);
  signal = natter_signal_open (self->identity, sealed, &error);
  if (signal == NULL)
    {
      self->stats.rejected++;
      return;
    }
  link_take_signal (peer, signal, link->peer_id);
}

static void
on_typing_expired (gpointer user_data)
{
  Link *link = user_data;

  link->typing_source = 0;
  link->remote_typing = FALSE;
  g_signal_emit (link->service, signals[SIGNAL_TYPING_CHANGED], 0, link->peer_id, FALSE);
}

/* file_offer, file_accept, file_complete: encrypted end to end like
 * chat, because file names are private. */
static void
receive_file_message (NatterMessagingService *self,
                      Link                   *author,
                      NatterMessage          *message)
{
  g_autoptr(GError) error = NULL;

  if (self->files == NULL)
    return;
  if (message->encrypted &&
      !natter_message_decrypt_from_peer (message, self->identity, &error))
    {
      self->stats.rejected++;
      g_debug ("File message %s from %s does not open: %s", message->id, message->from, error->message);
      return;
    }
  natter_file_transfers_handle_message (self->files, author->peer_id, message->type, message->content);
}

static void
link_on_message (NatterPeerConnection *pc,
                 guint                 stream,
                 GBytes               *bytes,
                 Link                 *link)
{
  NatterMessagingService *self = link->service;
  g_autoptr(NatterMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  gboolean direct;
  Link *author;

  if (self->stopping)
    return;
  if (stream >= NATTER_PEER_STREAM_FIRST_BULK)
    {
      /* File data and its acknowledgements (natter-file-transfers.c). */
      if (self->files != NULL && link_is_accepted (link))
        natter_file_transfers_handle_frame (self->files, link->peer_id, stream, bytes);
      return;
    }
  if (stream != NATTER_PEER_STREAM_CHAT)
    return;

  message = natter_message_decode (bytes, NATTER_MESSAGE_DECODE_NONE, &error);
  if (message == NULL)
    {
      self->stats.rejected++;
      g_debug ("Frame from %s refused: %s", link->peer_id, error->message);
      return;
    }
  self->stats.messages_received++;

  /* Group frames (natter-groups.c) check and route themselves. */
  if (message->group != NULL && self->groups != NULL &&
      natter_groups_receive (self->groups, link->peer_id, message, bytes))
    return;

  if (!g_strv_contains ((const char * const *) message->to, self->peer_id))
    {
      receive_for_relay (self, link, message);
      return;
    }

  /* Straight from its author over the authenticated connection: the
   * channel already proves who sent it.  Anything else must carry the
   * author's valid signature. */
  direct = strcmp (message->from, link->peer_id) == 0 && message->hops == 0;
  if (!direct && !natter_message_verify (message, &error))
    {
      self->stats.rejected++;
      g_debug ("Message %s via %s refused: %s", message->id, link->peer_id, error->message);
      link_send_hop_ack (link, message->id, "invalid");
      return;
    }
  author = service_get_link (self, message->from);
  if (!link_is_accepted (author))
    {
      self->stats.rejected++;
      return;
    }
  if (message->timestamp + message->ttl <= now_ms () && !direct)
    {
      link_send_hop_ack (link, message->id, "expired");
      return;
    }

  /* A relay (or the author, for a frame it keeps in its outbox) wants to
   * know we have it. */
  if (!direct || (message->requires_ack && message->type != NATTER_MESSAGE_TYPE_DIRECT_MESSAGE))
    link_send_hop_ack (link, message->id, "received");

  switch (message->type)
    {
    case NATTER_MESSAGE_TYPE_DIRECT_MESSAGE:
      receive_chat (self, author, message, link->peer_id);
      break;

    case NATTER_MESSAGE_TYPE_MESSAGE_DELIVERED:
      receive_receipt (self, author, message, NATTER_STORE_MESSAGE_DELIVERED);
      break;

    case NATTER_MESSAGE_TYPE_MESSAGE_READ:
      receive_receipt (self, author, message, NATTER_STORE_MESSAGE_READ);
      break;

    case NATTER_MESSAGE_TYPE_MESSAGE_ACK:
      if (direct)
        receive_hop_ack (self, link, message);
      break;

    case NATTER_MESSAGE_TYPE_TYPING_INDICATOR:
      {
        JsonNode *node = json_object_get_member (message->content, "typing");
        gboolean typing = node != NULL && json_node_get_boolean (node);

        link_set_remote_typing (author, typing);
        if (typing)
          author->typing_source = g_timeout_add_once (NATTER_MESSAGING_TYPING_TIMEOUT_MS,
                                                      on_typing_expired, author);
      }
      break;

    case NATTER_MESSAGE_TYPE_PRESENCE_UPDATE:
      {
        JsonNode *node = json_object_get_member (message->content, "status");
        NatterPresence presence;

        if (node != NULL && natter_presence_from_string (json_node_get_string (node), &presence))
          {
            gboolean back = author->presence == NATTER_PRESENCE_OFFLINE &&
                            presence != NATTER_PRESENCE_OFFLINE;

            link_set_presence (author, presence);
            /* Held while it said it was offline: hand it over now. */
            if (back)
              link_handover_relayed (author);
          }
      }
      break;

    case NATTER_MESSAGE_TYPE_CONNECTION_REQUEST:
      if (direct)
        receive_connection_request (self, link, message, bytes);
      break;

    case NATTER_MESSAGE_TYPE_PEER_INTRODUCTION:
      if (direct)
        receive_introduction (self, link, message);
      break;

    case NATTER_MESSAGE_TYPE_FILE_OFFER:
    case NATTER_MESSAGE_TYPE_FILE_ACCEPT:
    case NATTER_MESSAGE_TYPE_FILE_COMPLETE:
      receive_file_message (self, author, message);
      break;

    case NATTER_MESSAGE_TYPE_HEARTBEAT:
    case NATTER_MESSAGE_TYPE_STATUS_UPDATE:
    case NATTER_MESSAGE_TYPE_GROUP_MESSAGE:
    case NATTER_MESSAGE_TYPE_PRIVATE_MESSAGE:
    case NATTER_MESSAGE_TYPE_FILE_CHUNK:
    default:
      /* Valid, but nothing this version acts on. */
      break;
    }
}

/* }}} */
/* {{{ Timer */

static void
on_relay_expired (NatterMessagingService *self,
                  Op                     *op)
{
  if (op->error == NULL && op->result > 0)
    {
      g_autofree char *detail = g_strdup_printf ("%" G_GINT64_FORMAT, op->result);

      emit_relay_event (self, "dropped-expired", NULL, NULL, NULL, detail);
    }
}

static gboolean
on_tick (gpointer user_data)
{
  NatterMessagingService *self = user_data;
  gint64 now_us = g_get_monotonic_time ();
  GHashTableIter iter;
  Link *link;

  if (!self->started || self->stopping)
    return G_SOURCE_CONTINUE;

  service_expire_outbox (self);

  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &link))
    {
      if (link->held_since_us != 0 && now_us - link->held_since_us > HOLD_BACK_MS * 1000)
        {
          link_release_held (link, TRUE);
          link->held_since_us = 0;
        }
      if (link->pc != NULL && !link->connected &&
          now_us - link->pc_started_us > CONNECT_TIMEOUT_MS * 1000)
        {
          /* Signals of a start can be lost (a route that was not there
           * yet): neither side would ever hear the other.  The side that
           * sorts first starts again at once; the other waits for it. */
          g_debug ("Connection to %s not up after %d s; starting again", link->peer_id,
                   CONNECT_TIMEOUT_MS / 1000);
          link_drop_connection (link, TRUE);
          link_on_lost (link);
          link->next_connect_us = now_us + (strcmp (self->peer_id, link->peer_id) < 0
                                            ? 0 : (gint64) CONNECT_TIMEOUT_MS * 2000);
        }
      if (link->pc == NULL)
        link_maybe_connect (link, FALSE);
    }
  service_pump_all (self);

  if (self->relay_enabled && now_us - self->last_relay_expiry > RELAY_EXPIRY_EVERY_MS * 1000)
    {
      Op *op = op_new (OP_RELAY_EXPIRE);

      self->last_relay_expiry = now_us;
      op->number = now_ms ();
      op->done = on_relay_expired;
      service_queue_op (self, op);
    }

  {
    guint n = 0;

    g_hash_table_iter_init (&iter, self->links);
    while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &link))
      n += link->outbox.length;
    self->stats.outbox_length = n;
  }
  return G_SOURCE_CONTINUE;
}

/* }}} */

/* {{{ Conversations touched by file transfers */

typedef struct
{
  char    *preview;
  gboolean incoming;
} TouchData;

static void
touch_data_free (TouchData *data)
{
  g_free (data->preview);
  g_free (data);
}

static void
on_touch_conversation (NatterMessagingService *self,
                       Op                     *op)
{
  TouchData *data = op->data;
  Link *link;

  if (op->error != NULL || op->result <= 0)
    return;
  link = service_get_link (self, op->peer_id);
  if (link != NULL)
    link->conversation_id = op->result;
  conversations_touch (self, op->peer_id, op->result, data->preview, now_ms (), data->incoming);
}

/* A file offered either way shows its conversation in the list, like a
 * message does (unread counts come from messages only, as in the store). */
static void
service_touch_for_file (NatterMessagingService *self,
                        const char             *peer_id,
                        const char             *name,
                        gboolean                incoming)
{
  Op *op;
  TouchData *data;

  if (peer_id == NULL || service_get_link (self, peer_id) == NULL)
    return;
  data = g_new0 (TouchData, 1);
  data->preview = g_strdup (name);
  data->incoming = incoming;
  op = op_new (OP_ENSURE_CONVERSATION);
  op->peer_id = g_strdup (peer_id);
  op->done = on_touch_conversation;
  op->data = data;
  op->data_free = (GDestroyNotify) touch_data_free;
  service_queue_op (self, op);
}

static void
on_self_transfer_offered (NatterMessagingService *self,
                          const char             *transfer_id,
                          const char             *peer_id,
                          const char             *name,
                          gint64                  size,
                          const char             *media_type,
                          gpointer                user_data)
{
  service_touch_for_file (self, peer_id, name, FALSE);
}

static void
on_self_transfer_state (NatterMessagingService *self,
                        const char             *transfer_id,
                        const char             *state,
                        const char             *detail,
                        gpointer                user_data)
{
  g_autoptr(GPtrArray) transfers = NULL;

  if (g_strcmp0 (state, "offered") != 0)
    return;
  transfers = natter_messaging_service_list_transfers (self);
  for (guint i = 0; transfers != NULL && i < transfers->len; i++)
    {
      NatterStoreTransfer *t = g_ptr_array_index (transfers, i);

      if (g_strcmp0 (t->id, transfer_id) == 0 && t->direction == NATTER_STORE_DIRECTION_OUT)
        service_touch_for_file (self, t->peer_id, t->name, FALSE);
    }
}

/* }}} */

/* {{{ GObject */

static void
natter_messaging_service_dispose (GObject *object)
{
  NatterMessagingService *self = NATTER_MESSAGING_SERVICE (object);

  g_clear_handle_id (&self->tick_source, g_source_remove);
  g_clear_handle_id (&self->batch_idle, g_source_remove);
  if (self->groups != NULL)
    {
      natter_groups_shutdown (self->groups);
      g_clear_object (&self->groups);
    }
  if (self->files != NULL)
    {
      g_object_run_dispose (G_OBJECT (self->files));
      g_clear_object (&self->files);
    }
  if (self->lan != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->lan, self);
      natter_lan_discovery_stop (self->lan);
      g_clear_object (&self->lan);
    }
  if (self->nearby != NULL)
    {
      g_hash_table_remove_all (self->nearby);
      g_hash_table_remove_all (self->introduced_to);
      g_hash_table_remove_all (self->request_addresses);
      g_hash_table_remove_all (self->nearby_known);
      g_hash_table_remove_all (self->answers_due);
    }
  if (self->rendezvous != NULL)
    {
      for (guint i = 0; i < self->rendezvous->len; i++)
        {
          NatterRendezvousClient *client = g_ptr_array_index (self->rendezvous, i);

          g_signal_handlers_disconnect_by_data (client, self);
          natter_rendezvous_client_stop (client);
        }
      g_ptr_array_set_size (self->rendezvous, 0);
    }
  if (self->links != NULL)
    g_hash_table_remove_all (self->links);
  for (guint i = 0; self->histories != NULL && i < self->histories->len; i++)
    g_object_weak_unref (g_ptr_array_index (self->histories, i), history_weak_notify, self);
  if (self->histories != NULL)
    g_ptr_array_set_size (self->histories, 0);

  G_OBJECT_CLASS (natter_messaging_service_parent_class)->dispose (object);
}

static void
natter_messaging_service_finalize (GObject *object)
{
  NatterMessagingService *self = NATTER_MESSAGING_SERVICE (object);

  g_clear_object (&self->profile);
  g_clear_object (&self->identity);
  g_clear_object (&self->store);
  g_free (self->peer_id);
  g_strfreev (self->rendezvous_urls);
  g_free (self->stun_server);
  g_strfreev (self->turn_servers);
  g_strfreev (self->interfaces);
  g_free (self->download_folder);
  g_clear_pointer (&self->ice_config, natter_ice_config_free);
  g_hash_table_unref (self->links);
  g_clear_object (&self->contacts);
  g_clear_object (&self->conversations);
  g_ptr_array_unref (self->histories);
  g_ptr_array_unref (self->rendezvous);
  g_ptr_array_unref (self->pending_ops);
  g_hash_table_unref (self->pending_states);
  g_hash_table_unref (self->uncommitted);
  g_ptr_array_unref (self->flush_waiters);
  g_hash_table_unref (self->worker_conversations);
  g_hash_table_unref (self->seen);
  g_queue_clear_full (&self->seen_order, g_free);
  g_hash_table_unref (self->relay_seen);
  g_queue_clear_full (&self->relay_seen_order, g_free);
  g_hash_table_unref (self->nearby);
  g_hash_table_unref (self->introduced_to);
  g_hash_table_unref (self->request_addresses);
  g_hash_table_unref (self->nearby_known);
  g_hash_table_unref (self->answers_due);

  G_OBJECT_CLASS (natter_messaging_service_parent_class)->finalize (object);
}

static void
natter_messaging_service_get_property (GObject    *object,
                                       guint       prop_id,
                                       GValue     *value,
                                       GParamSpec *pspec)
{
  NatterMessagingService *self = NATTER_MESSAGING_SERVICE (object);

  switch (prop_id)
    {
    case PROP_PROFILE:
      g_value_set_object (value, self->profile);
      break;
    case PROP_RENDEZVOUS_URLS:
      g_value_set_boxed (value, self->rendezvous_urls);
      break;
    case PROP_STUN_SERVER:
      g_value_set_string (value, self->stun_server);
      break;
    case PROP_TURN_SERVERS:
      g_value_set_boxed (value, self->turn_servers);
      break;
    case PROP_LAN_DISCOVERY:
      g_value_set_boolean (value, self->lan_enabled);
      break;
    case PROP_INTERFACES:
      g_value_set_boxed (value, self->interfaces);
      break;
    case PROP_RELAY:
      g_value_set_boolean (value, self->relay_enabled);
      break;
    case PROP_RELAY_QUOTA:
      g_value_set_int64 (value, self->relay_quota);
      break;
    case PROP_DEFAULT_TTL:
      g_value_set_int64 (value, self->default_ttl);
      break;
    case PROP_DOWNLOAD_FOLDER:
      if (self->download_folder != NULL)
        g_value_set_string (value, self->download_folder);
      else
        {
          const char *dir = g_get_user_special_dir (G_USER_DIRECTORY_DOWNLOAD);

          g_value_take_string (value, dir != NULL ? g_strdup (dir)
                                      : g_build_filename (g_get_home_dir (), "Downloads", NULL));
        }
      break;
    case PROP_AUTO_ACCEPT:
      g_value_set_boolean (value, self->auto_accept);
      break;
    case PROP_MAX_FILE_SIZE:
      g_value_set_int64 (value, self->max_file_size);
      break;
    case PROP_DISCOVERABLE:
      g_value_set_boolean (value, self->discoverable);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_messaging_service_set_property (GObject      *object,
                                       guint         prop_id,
                                       const GValue *value,
                                       GParamSpec   *pspec)
{
  NatterMessagingService *self = NATTER_MESSAGING_SERVICE (object);

  switch (prop_id)
    {
    case PROP_PROFILE:
      self->profile = g_value_dup_object (value);
      break;
    case PROP_RENDEZVOUS_URLS:
      g_strfreev (self->rendezvous_urls);
      self->rendezvous_urls = g_value_dup_boxed (value);
      break;
    case PROP_STUN_SERVER:
      g_free (self->stun_server);
      self->stun_server = g_value_dup_string (value);
      break;
    case PROP_TURN_SERVERS:
      g_strfreev (self->turn_servers);
      self->turn_servers = g_value_dup_boxed (value);
      break;
    case PROP_LAN_DISCOVERY:
      self->lan_enabled = g_value_get_boolean (value);
      break;
    case PROP_INTERFACES:
      g_strfreev (self->interfaces);
      self->interfaces = g_value_dup_boxed (value);
      break;
    case PROP_RELAY:
      self->relay_enabled = g_value_get_boolean (value);
      break;
    case PROP_RELAY_QUOTA:
      self->relay_quota = g_value_get_int64 (value);
      break;
    case PROP_DEFAULT_TTL:
      self->default_ttl = g_value_get_int64 (value);
      break;
    case PROP_DOWNLOAD_FOLDER:
      g_free (self->download_folder);
      self->download_folder = g_value_dup_string (value);
      break;
    case PROP_AUTO_ACCEPT:
      self->auto_accept = g_value_get_boolean (value);
      break;
    case PROP_MAX_FILE_SIZE:
      self->max_file_size = g_value_get_int64 (value);
      break;
    case PROP_DISCOVERABLE:
      self->discoverable = g_value_get_boolean (value);
      if (self->lan != NULL)
        natter_lan_discovery_set_discoverable (self->lan, self->discoverable);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_messaging_service_class_init (NatterMessagingServiceClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  object_class->dispose = natter_messaging_service_dispose;
  object_class->finalize = natter_messaging_service_finalize;
  object_class->get_property = natter_messaging_service_get_property;
  object_class->set_property = natter_messaging_service_set_property;

  properties[PROP_PROFILE] =
    g_param_spec_object ("profile", NULL, NULL, NATTER_TYPE_PROFILE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_RENDEZVOUS_URLS] =
    g_param_spec_boxed ("rendezvous-urls", NULL, NULL, G_TYPE_STRV, flags);
  properties[PROP_STUN_SERVER] =
    g_param_spec_string ("stun-server", NULL, NULL, NULL, flags);
  properties[PROP_TURN_SERVERS] =
    g_param_spec_boxed ("turn-servers", NULL, NULL, G_TYPE_STRV, flags);
  properties[PROP_LAN_DISCOVERY] =
    g_param_spec_boolean ("lan-discovery", NULL, NULL, TRUE, flags | G_PARAM_CONSTRUCT);
  properties[PROP_INTERFACES] =
    g_param_spec_boxed ("interfaces", NULL, NULL, G_TYPE_STRV, flags);
  properties[PROP_RELAY] =
    g_param_spec_boolean ("relay", NULL, NULL, TRUE, flags | G_PARAM_CONSTRUCT);
  properties[PROP_RELAY_QUOTA] =
    g_param_spec_int64 ("relay-quota", NULL, NULL, 0, G_MAXINT64,
                        NATTER_MESSAGING_RELAY_QUOTA_BYTES, flags | G_PARAM_CONSTRUCT);
  properties[PROP_DEFAULT_TTL] =
    g_param_spec_int64 ("default-ttl", NULL, NULL, 1000, NATTER_MESSAGE_MAX_TTL,
                        NATTER_MESSAGING_DEFAULT_TTL_MS, flags | G_PARAM_CONSTRUCT);
  properties[PROP_DOWNLOAD_FOLDER] =
    g_param_spec_string ("download-folder", NULL, NULL, NULL, flags);
  properties[PROP_AUTO_ACCEPT] =
    g_param_spec_boolean ("auto-accept", NULL, NULL, FALSE, flags);
  properties[PROP_MAX_FILE_SIZE] =
    g_param_spec_int64 ("max-file-size", NULL, NULL, 0, G_MAXINT64, 0, flags);
  properties[PROP_DISCOVERABLE] =
    g_param_spec_boolean ("discoverable", NULL, NULL, FALSE, flags);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  signals[SIGNAL_MESSAGE_RECEIVED] =
    g_signal_new ("message-received", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, NATTER_TYPE_MESSAGE_ITEM);
  signals[SIGNAL_MESSAGE_STATE_CHANGED] =
    g_signal_new ("message-state-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 4,
                  G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING);
  signals[SIGNAL_TYPING_CHANGED] =
    g_signal_new ("typing-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_BOOLEAN);
  signals[SIGNAL_PRESENCE_CHANGED] =
    g_signal_new ("presence-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, NATTER_TYPE_PRESENCE);
  signals[SIGNAL_PEER_STATE_CHANGED] =
    g_signal_new ("peer-state-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 3,
                  G_TYPE_STRING, NATTER_TYPE_PEER_STATE, G_TYPE_STRING);
  signals[SIGNAL_CONTACT_ADDED] =
    g_signal_new ("contact-added", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, NATTER_TYPE_CONTACT);
  signals[SIGNAL_NEARBY_CHANGED] =
    g_signal_new ("nearby-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_BOOLEAN);
  signals[SIGNAL_CONTACT_REQUEST] =
    g_signal_new ("contact-request", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, NATTER_TYPE_CONTACT);
  signals[SIGNAL_RELAY_EVENT] =
    g_signal_new ("relay-event", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 5,
                  G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING);
  signals[SIGNAL_TRANSFER_OFFERED] =
    g_signal_new ("transfer-offered", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 5,
                  G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_INT64, G_TYPE_STRING);
  signals[SIGNAL_TRANSFER_STATE_CHANGED] =
    g_signal_new ("transfer-state-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 3,
                  G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING);
  signals[SIGNAL_TRANSFER_PROGRESS] =
    g_signal_new ("transfer-progress", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 4,
                  G_TYPE_STRING, G_TYPE_INT64, G_TYPE_INT64, G_TYPE_DOUBLE);
}

static void
natter_messaging_service_init (NatterMessagingService *self)
{
  self->links = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) link_free);
  self->contacts = g_list_store_new (NATTER_TYPE_CONTACT);
  self->conversations = g_list_store_new (NATTER_TYPE_CONVERSATION);
  self->histories = g_ptr_array_new ();
  self->rendezvous = g_ptr_array_new_with_free_func (g_object_unref);
  self->pending_ops = g_ptr_array_new_with_free_func ((GDestroyNotify) op_free);
  self->pending_states = g_hash_table_new (g_str_hash, g_str_equal);
  self->uncommitted = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->flush_waiters = g_ptr_array_new ();
  self->worker_conversations = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->seen = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, NULL);
  g_queue_init (&self->seen_order);
  self->relay_seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_queue_init (&self->relay_seen_order);
  self->nearby = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->introduced_to = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->request_addresses = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->nearby_known = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->answers_due = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->presence = NATTER_PRESENCE_ONLINE;
  g_signal_connect (self, "transfer-offered", G_CALLBACK (on_self_transfer_offered), NULL);
  g_signal_connect (self, "transfer-state-changed", G_CALLBACK (on_self_transfer_state), NULL);
}

/* }}} */
/* {{{ Start and stop */

NatterMessagingService *
natter_messaging_service_new (NatterProfile *profile)
{
  g_return_val_if_fail (NATTER_IS_PROFILE (profile), NULL);

  return g_object_new (NATTER_TYPE_MESSAGING_SERVICE, "profile", profile, NULL);
}

NatterProfile *
natter_messaging_service_get_profile (NatterMessagingService *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NULL);
  return self->profile;
}

const char *
natter_messaging_service_get_peer_id (NatterMessagingService *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NULL);
  return natter_identity_get_peer_id (natter_profile_get_identity (self->profile));
}

static gboolean
parse_host_port (const char  *text,
                 char       **host,
                 guint16     *port,
                 GError     **error)
{
  const char *colon = text != NULL ? strrchr (text, ':') : NULL;
  guint64 value;

  if (colon == NULL || colon == text ||
      !g_ascii_string_to_unsigned (colon + 1, 10, 1, 65535, &value, NULL))
    {
      g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                   "“%s” is not HOST:PORT", text ? text : "");
      return FALSE;
    }
  *host = g_strndup (text, colon - text);
  *port = (guint16) value;
  return TRUE;
}

static gboolean
service_build_ice_config (NatterMessagingService  *self,
                          GError                 **error)
{
  g_autoptr(NatterIceConfig) config = natter_ice_config_new ();
  g_auto(GStrv) interfaces = NULL;

  if (self->stun_server != NULL && *self->stun_server != '\0')
    {
      g_autofree char *host = NULL;
      guint16 port;

      if (!parse_host_port (self->stun_server, &host, &port, error) ||
          !natter_ice_config_set_stun_server (config, host, port, error))
        return FALSE;
    }
  for (guint i = 0; self->turn_servers != NULL && self->turn_servers[i] != NULL; i++)
    {
      const char *spec = self->turn_servers[i];
      const char *at = strrchr (spec, '@');
      g_autofree char *credentials = NULL;
      g_autofree char *host = NULL;
      const char *colon;
      guint16 port;

      if (at == NULL || (colon = memchr (spec, ':', at - spec)) == NULL)
        {
          g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                       "TURN server “%s” is not USER:PASSWORD@HOST:PORT", spec);
          return FALSE;
        }
      credentials = g_strndup (spec, at - spec);
      credentials[colon - spec] = '\0';
      if (!parse_host_port (at + 1, &host, &port, error) ||
          !natter_ice_config_add_turn_server (config, host, port, credentials,
                                              credentials + (colon - spec) + 1, error))
        return FALSE;
    }

  if (self->interfaces != NULL && self->interfaces[0] != NULL)
    interfaces = g_strdupv (self->interfaces);
  else
    {
      g_autoptr(GSettings) settings = g_object_ref (natter_profile_get_settings (self->profile));

      interfaces = g_settings_get_strv (settings, "interfaces");
      g_strfreev (self->interfaces);
      self->interfaces = g_strdupv (interfaces);
    }
  natter_ice_config_set_interfaces (config, (const char * const *) interfaces);
  self->ice_config = g_steal_pointer (&config);
  return TRUE;
}

typedef struct
{
  GPtrArray *contacts;        /* NatterContact */
  GPtrArray *conversations;   /* NatterConversation */
  GPtrArray *outbox;          /* NatterStoreOutboxEntry */
  GPtrArray *expired;         /* NatterStoreOutboxEntry */
  GHashTable *sequences;      /* peer ID -> gint64[3]: conversation, out, in */
  GPtrArray *groups;          /* NatterStoreGroupRecord, checked (natter-groups.c) */
} LoadResult;

static void
load_result_free (LoadResult *result)
{
  g_clear_pointer (&result->contacts, g_ptr_array_unref);
  g_clear_pointer (&result->conversations, g_ptr_array_unref);
  g_clear_pointer (&result->outbox, g_ptr_array_unref);
  g_clear_pointer (&result->expired, g_ptr_array_unref);
  g_clear_pointer (&result->sequences, g_hash_table_unref);
  g_clear_pointer (&result->groups, g_ptr_array_unref);
  g_free (result);
}

static gpointer
load_run (NatterDb  *db,
          gpointer   user_data,
          GError   **error)
{
  g_autoptr(GError) local_error = NULL;
  LoadResult *result = g_new0 (LoadResult, 1);
  gint64 now = now_ms ();

  if (!(result->expired = natter_db_outbox_take_expired (db, now, error)) ||
      !(result->contacts = natter_db_list_contacts (db, error)) ||
      !(result->conversations = natter_db_list_conversations (db, error)) ||
      !(result->outbox = natter_db_outbox_due (db, now, 1000000, error)) ||
      !(result->groups = natter_groups_load_saved (db, error)))
    {
      load_result_free (result);
      return NULL;
    }
  /* outbox_due() returns the entries with next_attempt <= now AND
   * expires_at > now.  It used to be asked with a far "now"
   * (G_MAXINT64 / 2) for the schedule, but then "expires_at > now" holds
   * for no entry and the whole outbox was silently left behind at every
   * start: a message queued by a process that was killed (or simply
   * quit) before delivery was never sent again (tests/service/faults.py).
   * The service stores next_attempt = the message's own timestamp, which
   * is in the past at the next start, so the real "now" finds them all
   * (the expired ones were taken just above). */
  result->sequences = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  for (guint i = 0; i < result->conversations->len; i++)
    {
      NatterConversation *conversation = g_ptr_array_index (result->conversations, i);
      const char *peer_id = natter_conversation_get_peer_id (conversation);
      gint64 *values;

      if (natter_conversation_get_kind (conversation) != NATTER_CONVERSATION_DIRECT || peer_id == NULL)
        continue;
      values = g_new0 (gint64, 3);
      values[0] = natter_conversation_get_id (conversation);
      values[1] = MAX (0, natter_db_get_max_sequence (db, values[0], NATTER_STORE_DIRECTION_OUT, NULL));
      values[2] = MAX (0, natter_db_get_max_sequence (db, values[0], NATTER_STORE_DIRECTION_IN, NULL));
      g_hash_table_insert (result->sequences, g_strdup (peer_id), values);
    }
  return result;
}

static void
service_start_finders (NatterMessagingService *self)
{
  g_autoptr(GError) error = NULL;

  if (self->lan_enabled)
    {
      self->lan = natter_lan_discovery_new (NULL, self->identity,
                                            (const char * const *) self->interfaces);
      g_signal_connect (self->lan, "contact-found", G_CALLBACK (on_lan_contact_found), self);
      g_signal_connect (self->lan, "contact-lost", G_CALLBACK (on_lan_contact_lost), self);
      g_signal_connect (self->lan, "signal-received", G_CALLBACK (on_lan_signal), self);
      g_signal_connect (self->lan, "nearby-found", G_CALLBACK (on_lan_nearby_found), self);
      g_signal_connect (self->lan, "nearby-lost", G_CALLBACK (on_lan_nearby_lost), self);
      g_signal_connect (self->lan, "nearby-revealed", G_CALLBACK (on_lan_nearby_revealed), self);
      natter_lan_discovery_set_discoverable (self->lan, self->discoverable);
      if (!natter_lan_discovery_start (self->lan, &error))
        {
          /* No LAN is not an error: the other routes still work. */
          g_message ("LAN discovery is off: %s", error->message);
          g_clear_error (&error);
          g_signal_handlers_disconnect_by_data (self->lan, self);
          g_clear_object (&self->lan);
        }
    }

  for (guint i = 0; self->rendezvous_urls != NULL && self->rendezvous_urls[i] != NULL; i++)
    {
      NatterRendezvousClient *client =
        natter_rendezvous_client_new (self->rendezvous_urls[i], self->identity, NULL, &error);

      if (client == NULL)
        {
          g_warning ("Rendezvous server %s not used: %s", self->rendezvous_urls[i], error->message);
          g_clear_error (&error);
          continue;
        }
      g_signal_connect (client, "presence-changed", G_CALLBACK (on_rendezvous_presence), self);
      g_signal_connect (client, "signal-received", G_CALLBACK (on_rendezvous_signal), self);
      g_ptr_array_add (self->rendezvous, client);
    }
  service_update_finders (self);
  for (guint i = 0; i < self->rendezvous->len; i++)
    natter_rendezvous_client_start (g_ptr_array_index (self->rendezvous, i));
}

static void
on_loaded (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  NatterMessagingService *self = g_task_get_source_object (task);
  g_autoptr(GPtrArray) saved_groups = NULL;
  GError *error = NULL;
  LoadResult *loaded;

  loaded = natter_store_run_finish (NATTER_STORE (source), result, &error);
  if (loaded == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  for (guint i = 0; i < loaded->contacts->len; i++)
    {
      NatterContact *contact = g_ptr_array_index (loaded->contacts, i);
      Link *link = service_ensure_link (self, natter_contact_get_peer_id (contact));

      link->is_contact = TRUE;
      link->contact_state = natter_contact_get_state (contact);
      g_list_store_append (self->contacts, contact);
    }
  for (guint i = 0; i < loaded->conversations->len; i++)
    g_list_store_append (self->conversations, g_ptr_array_index (loaded->conversations, i));
  {
    GHashTableIter iter;
    const char *peer_id;
    gint64 *values;

    g_hash_table_iter_init (&iter, loaded->sequences);
    while (g_hash_table_iter_next (&iter, (gpointer *) &peer_id, (gpointer *) &values))
      {
        Link *link = service_ensure_link (self, peer_id);

        link->conversation_id = values[0];
        link->out_seq = (guint64) values[1];
        link->in_seq = (guint64) values[2];
      }
  }
  for (guint i = 0; i < loaded->outbox->len; i++)
    {
      NatterStoreOutboxEntry *entry = g_ptr_array_index (loaded->outbox, i);
      g_autoptr(NatterMessage) message = natter_message_decode (entry->wire, NATTER_MESSAGE_DECODE_NONE, NULL);
      Link *link;
      OutboxItem *item;

      if (message == NULL)
        {
          g_warning ("Outbox entry %s is damaged; it is dropped", entry->msg_id);
          continue;
        }
      link = service_ensure_link (self, entry->recipient);
      item = outbox_item_new (entry->msg_id, entry->recipient, entry->wire, message->type,
                              entry->expires_at);
      if (link_find_item (link, entry->msg_id) == NULL)
        link_outbox_push (link, item);
      else
        outbox_item_free (item);
    }
  for (guint i = 0; i < loaded->expired->len; i++)
    {
      NatterStoreOutboxEntry *entry = g_ptr_array_index (loaded->expired, i);
      g_autoptr(NatterMessage) message = natter_message_decode (entry->wire, NATTER_MESSAGE_DECODE_NONE, NULL);

      if (message != NULL && message->type == NATTER_MESSAGE_TYPE_DIRECT_MESSAGE)
        {
          Op *op = op_new (OP_SET_STATE);

          op->msg_id = g_strdup (entry->msg_id);
          op->state = NATTER_STORE_MESSAGE_FAILED;
          service_queue_op (self, op);
          emit_state (self, entry->msg_id, entry->recipient, NATTER_STORE_MESSAGE_FAILED, NULL);
        }
    }
  saved_groups = g_steal_pointer (&loaded->groups);
  load_result_free (loaded);

  self->started = TRUE;
  self->groups = natter_groups_new (self, self->identity, self->store);
  natter_groups_restore (self->groups, saved_groups);
  self->files = natter_file_transfers_new (self, self->store);
  natter_file_transfers_start (self->files);
  service_start_finders (self);
  self->tick_source = g_timeout_add_seconds (1, on_tick, self);
  g_task_return_boolean (task, TRUE);
}

static void
on_store_opened (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  NatterMessagingService *self = g_task_get_source_object (task);
  GError *error = NULL;

  if (!natter_store_open_finish (NATTER_STORE (source), result, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  natter_store_run_async (self->store, load_run, NULL, NULL, (GDestroyNotify) load_result_free,
                          g_task_get_cancellable (task), on_loaded, g_object_ref (task));
}

void
natter_messaging_service_start_async (NatterMessagingService *self,
                                      GCancellable           *cancellable,
                                      GAsyncReadyCallback     callback,
                                      gpointer                user_data)
{
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;

  g_return_if_fail (NATTER_IS_MESSAGING_SERVICE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, natter_messaging_service_start_async);

  if (self->store != NULL)
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                               "The service was started already");
      return;
    }
  self->identity = g_object_ref (natter_profile_get_identity (self->profile));
  self->peer_id = g_strdup (natter_identity_get_peer_id (self->identity));
  if (!service_build_ice_config (self, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  self->store = natter_store_new (natter_profile_get_database_path (self->profile));
  natter_store_open_async (self->store, cancellable, on_store_opened, g_steal_pointer (&task));
}

gboolean
natter_messaging_service_start_finish (NatterMessagingService *self,
                                       GAsyncResult           *result,
                                       GError                **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
on_store_closed (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;

  if (!natter_store_close_finish (NATTER_STORE (source), result, &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static void
on_stop_committed (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  NatterMessagingService *self = g_task_get_source_object (task);

  natter_store_close_async (self->store, NULL, on_store_closed, g_object_ref (task));
}

void
natter_messaging_service_stop_async (NatterMessagingService *self,
                                     GCancellable           *cancellable,
                                     GAsyncReadyCallback     callback,
                                     gpointer                user_data)
{
  g_autoptr(GTask) task = NULL;
  GHashTableIter iter;
  Link *link;

  g_return_if_fail (NATTER_IS_MESSAGING_SERVICE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, natter_messaging_service_stop_async);
  if (!self->started || self->stopping)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }

  if (self->files != NULL)
    natter_file_transfers_stop (self->files);

  /* Tell connected peers we leave, then close everything. */
  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &link))
    if (link->connected)
      link_send_control (link, NATTER_MESSAGE_TYPE_PRESENCE_UPDATE, "status", "offline", NULL, NULL);
  self->stopping = TRUE;
  if (self->groups != NULL)
    natter_groups_shutdown (self->groups);
  g_clear_handle_id (&self->tick_source, g_source_remove);
  if (self->lan != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->lan, self);
      natter_lan_discovery_stop (self->lan);
      g_clear_object (&self->lan);
      nearby_clear (self);
    }
  for (guint i = 0; i < self->rendezvous->len; i++)
    {
      NatterRendezvousClient *client = g_ptr_array_index (self->rendezvous, i);

      g_signal_handlers_disconnect_by_data (client, self);
      natter_rendezvous_client_stop (client);
    }
  g_ptr_array_set_size (self->rendezvous, 0);
  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &link))
    link_drop_connection (link, FALSE);

  {
    GTask *committed = g_task_new (self, NULL, on_stop_committed, g_steal_pointer (&task));

    service_when_committed (self, committed);
  }
}

gboolean
natter_messaging_service_stop_finish (NatterMessagingService *self,
                                      GAsyncResult           *result,
                                      GError                **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* }}} */
/* {{{ Public API */

static gboolean
check_started (NatterMessagingService  *self,
               GError                 **error)
{
  if (!self->started || self->stopping)
    {
      g_set_error_literal (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_NOT_STARTED,
                           "The messaging service is not running");
      return FALSE;
    }
  return TRUE;
}

static char *
normalize_peer (NatterMessagingService  *self,
                const char              *peer_id,
                GError                 **error)
{
  g_autoptr(GError) local_error = NULL;
  char *normal;

  /* A peer we know is spelt canonically already: checking the key inside
   * a peer ID costs tens of microseconds, too much for every message. */
  if (peer_id != NULL && g_hash_table_contains (self->links, peer_id))
    return g_strdup (peer_id);

  normal = natter_peer_id_normalize (peer_id != NULL ? peer_id : "", &local_error);

  if (normal == NULL)
    {
      g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                   "Not a valid peer ID: %s", local_error->message);
      return NULL;
    }
  if (strcmp (normal, self->peer_id) == 0)
    {
      g_set_error_literal (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                           "That is your own peer ID");
      g_free (normal);
      return NULL;
    }
  return normal;
}

static void
contacts_model_update (NatterMessagingService *self,
                       NatterContact          *contact)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->contacts));

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(NatterContact) existing = g_list_model_get_item (G_LIST_MODEL (self->contacts), i);

      if (strcmp (natter_contact_get_peer_id (existing), natter_contact_get_peer_id (contact)) == 0)
        {
          g_list_store_splice (self->contacts, i, 1, (gpointer *) &contact, 1);
          return;
        }
    }
  g_list_store_append (self->contacts, contact);
}

static void
on_contact_committed (NatterMessagingService *self,
                      Op                     *op)
{
  GTask *task = op->data;
  Link *link;

  if (op->error != NULL)
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_STORE,
                               "%s", op->error->message);
      return;
    }
  link = service_ensure_link (self, natter_contact_get_peer_id (op->contact));
  link->is_contact = TRUE;
  link->contact_state = natter_contact_get_state (op->contact);
  contacts_model_update (self, op->contact);
  service_update_finders (self);
  if (link->contact_state == NATTER_CONTACT_BLOCKED)
    {
      link_drop_connection (link, TRUE);
      link_on_lost (link);
    }
  else
    link_maybe_connect (link, TRUE);
  g_signal_emit (self, signals[SIGNAL_CONTACT_ADDED], 0, op->contact);
  g_task_return_pointer (task, g_object_ref (op->contact), g_object_unref);
}

static NatterContact *
find_contact (NatterMessagingService *self,
              const char             *peer_id)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->contacts));

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(NatterContact) contact = g_list_model_get_item (G_LIST_MODEL (self->contacts), i);

      if (strcmp (natter_contact_get_peer_id (contact), peer_id) == 0)
        return g_steal_pointer (&contact);
    }
  return NULL;
}

static void nearby_answer_request (NatterMessagingService *self,
                                   const char             *peer_id);
static void nearby_forget_request (NatterMessagingService *self,
                                   const char             *peer_id);

static void
queue_contact (NatterMessagingService *self,
               NatterContact          *contact,
               GTask                  *task)
{
  Op *op = op_new (OP_UPSERT_CONTACT);

  op->contact = contact;
  op->done = on_contact_committed;
  op->data = task;
  op->data_free = g_object_unref;
  service_queue_op (self, op);
}

void
natter_messaging_service_add_contact_async (NatterMessagingService *self,
                                            const char             *peer_id,
                                            const char             *display_name,
                                            GCancellable           *cancellable,
                                            GAsyncReadyCallback     callback,
                                            gpointer                user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(NatterContact) existing = NULL;
  g_autofree char *normal = NULL;
  GError *error = NULL;
  NatterContact *contact;

  g_return_if_fail (NATTER_IS_MESSAGING_SERVICE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, natter_messaging_service_add_contact_async);
  if (!check_started (self, &error) || !(normal = normalize_peer (self, peer_id, &error)))
    {
      g_task_return_error (task, error);
      return;
    }
  if (display_name != NULL && (!g_utf8_validate (display_name, -1, NULL) ||
                               g_utf8_strlen (display_name, -1) > 128))
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                               "A contact name is valid UTF-8 of at most 128 characters");
      return;
    }

  existing = find_contact (self, normal);
  contact = natter_contact_new (normal,
                                display_name != NULL ? display_name
                                : existing != NULL ? natter_contact_get_display_name (existing) : NULL,
                                NATTER_CONTACT_ACCEPTED,
                                existing != NULL && natter_contact_get_verified (existing),
                                existing != NULL ? natter_contact_get_added_at (existing) : now_ms ());
  queue_contact (self, contact, g_steal_pointer (&task));
}

NatterContact *
natter_messaging_service_add_contact_finish (NatterMessagingService *self,
                                             GAsyncResult           *result,
                                             GError                **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

void
natter_messaging_service_set_contact_state_async (NatterMessagingService *self,
                                                  const char             *peer_id,
                                                  NatterContactState      state,
                                                  GCancellable           *cancellable,
                                                  GAsyncReadyCallback     callback,
                                                  gpointer                user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(NatterContact) existing = NULL;
  g_autofree char *normal = NULL;
  GError *error = NULL;

  g_return_if_fail (NATTER_IS_MESSAGING_SERVICE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, natter_messaging_service_set_contact_state_async);
  if (!check_started (self, &error) || !(normal = normalize_peer (self, peer_id, &error)))
    {
      g_task_return_error (task, error);
      return;
    }
  existing = find_contact (self, normal);
  if (state == NATTER_CONTACT_ACCEPTED)
    nearby_answer_request (self, normal);
  else
    nearby_forget_request (self, normal);
  queue_contact (self,
                 natter_contact_new (normal,
                                     existing != NULL ? natter_contact_get_display_name (existing) : NULL,
                                     state,
                                     existing != NULL && natter_contact_get_verified (existing),
                                     existing != NULL ? natter_contact_get_added_at (existing) : now_ms ()),
                 g_steal_pointer (&task));
}

gboolean
natter_messaging_service_set_contact_state_finish (NatterMessagingService *self,
                                                   GAsyncResult           *result,
                                                   GError                **error)
{
  g_autoptr(NatterContact) contact = NULL;

  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  contact = g_task_propagate_pointer (G_TASK (result), error);
  return contact != NULL;
}

void
natter_messaging_service_set_contact_verified_async (NatterMessagingService *self,
                                                     const char             *peer_id,
                                                     gboolean                verified,
                                                     GCancellable           *cancellable,
                                                     GAsyncReadyCallback     callback,
                                                     gpointer                user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(NatterContact) existing = NULL;
  g_autofree char *normal = NULL;
  GError *error = NULL;

  g_return_if_fail (NATTER_IS_MESSAGING_SERVICE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, natter_messaging_service_set_contact_verified_async);
  if (!check_started (self, &error) || !(normal = normalize_peer (self, peer_id, &error)))
    {
      g_task_return_error (task, error);
      return;
    }
  existing = find_contact (self, normal);
  if (existing == NULL)
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_UNKNOWN_PEER,
                               "%s is not a contact", normal);
      return;
    }
  queue_contact (self,
                 natter_contact_new (normal,
                                     natter_contact_get_display_name (existing),
                                     natter_contact_get_state (existing),
                                     verified,
                                     natter_contact_get_added_at (existing)),
                 g_steal_pointer (&task));
}

gboolean
natter_messaging_service_set_contact_verified_finish (NatterMessagingService *self,
                                                      GAsyncResult           *result,
                                                      GError                **error)
{
  g_autoptr(NatterContact) contact = NULL;

  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  contact = g_task_propagate_pointer (G_TASK (result), error);
  return contact != NULL;
}

/* {{{ Sending text */

typedef struct
{
  GTask              *task;
  NatterMessage      *message;
  GBytes             *wire;
  char               *text;
} SendData;

static void
send_data_free (SendData *data)
{
  g_clear_object (&data->task);
  g_clear_pointer (&data->message, natter_message_unref);
  g_clear_pointer (&data->wire, g_bytes_unref);
  g_free (data->text);
  g_free (data);
}

static void
on_sent_committed (NatterMessagingService *self,
                   Op                     *op)
{
  SendData *data = op->data;
  Link *link = service_get_link (self, data->message->to[0]);

  if (op->error != NULL)
    {
      /* Nothing is durable: the outbox entry queued after it fails too.
       * Take the item back out of the memory outbox. */
      OutboxItem *item = link != NULL ? link_find_item (link, data->message->id) : NULL;

      g_hash_table_remove (self->uncommitted, data->message->id);

      if (item != NULL)
        {
          link_outbox_unlink (link, item);
          outbox_item_free (item);
        }
      g_task_return_new_error (data->task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_STORE,
                               "The message could not be saved: %s", op->error->message);
      return;
    }

  {
    g_autoptr(NatterMessageItem) item = NULL;

    if (link != NULL)
      link->conversation_id = op->message->conversation_id;
    item = natter_message_item_new (op->message, data->message->to[0]);
    histories_append (self, item);
    conversations_touch (self, data->message->to[0], op->message->conversation_id,
                         op->message->body, op->message->timestamp, FALSE);
  }
  {
    StashedState *stashed = g_hash_table_lookup (self->uncommitted, data->message->id);
    StashedState copy = { 0 };

    if (stashed != NULL)
      copy = *stashed;
    g_hash_table_remove (self->uncommitted, data->message->id);
    g_task_return_pointer (data->task, g_strdup (data->message->id), g_free);
    emit_state (self, data->message->id, data->message->to[0], NATTER_STORE_MESSAGE_QUEUED, NULL);
    /* What happened while the row was being written, in order. */
    if (copy.changed && copy.state > NATTER_STORE_MESSAGE_SENT)
      emit_state (self, data->message->id, data->message->to[0], NATTER_STORE_MESSAGE_SENT,
                  copy.via[0] != '\0' ? copy.via : NULL);
    if (copy.changed)
      emit_state (self, data->message->id, data->message->to[0], copy.state,
                  copy.via[0] != '\0' && copy.state == NATTER_STORE_MESSAGE_SENT ? copy.via : NULL);
  }
  /* A short queue is sent at once; a burst is scanned once, later in
   * this main-loop iteration. */
  if (link != NULL && link->outbox.length <= 64)
    link_pump (link);
  else if (link != NULL)
    link_schedule_pump (link);
}

void
natter_messaging_service_send_text_async (NatterMessagingService *self,
                                          const char             *peer_id,
                                          const char             *text,
                                          GCancellable           *cancellable,
                                          GAsyncReadyCallback     callback,
                                          gpointer                user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(NatterMessage) message = NULL;
  g_autoptr(GBytes) wire = NULL;
  g_autofree char *normal = NULL;
  GError *error = NULL;
  NatterStoreMessage *row;
  SendData *data;
  Link *link;
  Op *op;

  g_return_if_fail (NATTER_IS_MESSAGING_SERVICE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, natter_messaging_service_send_text_async);
  if (!check_started (self, &error) || !(normal = normalize_peer (self, peer_id, &error)))
    {
      g_task_return_error (task, error);
      return;
    }
  if (text == NULL || *text == '\0' || !g_utf8_validate (text, -1, NULL))
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                               "A message needs some valid UTF-8 text");
      return;
    }
  if (strlen (text) > NATTER_MESSAGE_MAX_SIZE / 2)
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_TOO_LARGE,
                               "The text is %" G_GSIZE_FORMAT " bytes; at most %d are allowed",
                               strlen (text), NATTER_MESSAGE_MAX_SIZE / 2);
      return;
    }
  link = service_get_link (self, normal);
  if (link == NULL || !link->is_contact)
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_UNKNOWN_PEER,
                               "%s is not a contact; add it first", normal);
      return;
    }
  if (link->contact_state == NATTER_CONTACT_BLOCKED)
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_BLOCKED,
                               "%s is blocked", normal);
      return;
    }

  message = service_new_message (self, NATTER_MESSAGE_TYPE_DIRECT_MESSAGE, normal);
  message->sequence = ++link->out_seq;
  message->requires_ack = TRUE;
  json_object_set_string_member (message->content, "text", text);
  if (!natter_message_encrypt_for_peer (message, self->identity, normal, &error) ||
      !(wire = service_seal (self, message, &error)))
    {
      link->out_seq--;
      g_task_return_error (task, error);
      return;
    }

  row = natter_store_message_new ();
  row->msg_id = g_strdup (message->id);
  row->sender = g_strdup (self->peer_id);
  row->direction = NATTER_STORE_DIRECTION_OUT;
  row->type = g_strdup ("text");
  row->body = g_strdup (text);
  row->timestamp = message->timestamp;
  row->sequence = (gint64) message->sequence;
  row->state = NATTER_STORE_MESSAGE_QUEUED;
  /* The signed bytes live in the outbox until the message is delivered;
   * the history row needs only what is shown. */

  data = g_new0 (SendData, 1);
  data->task = g_steal_pointer (&task);
  data->message = natter_message_ref (message);
  data->wire = g_bytes_ref (wire);

  /* History row and outbox entry commit together. */
  op = op_new (OP_INSERT_MESSAGE);
  op->peer_id = g_strdup (normal);
  op->message = row;
  op->done = on_sent_committed;
  op->data = data;
  op->data_free = (GDestroyNotify) send_data_free;
  service_queue_op (self, op);
  service_outbox_add (self, message, wire, NULL, NULL, NULL);
  /* The frame may leave while the row is being written: the store applies
   * later state changes after the insert (operations run in order), and
   * the signals wait for "queued" (emit_state).  Handing the caller the
   * message ID still waits for the commit, so a message the caller knows
   * of survives a crash. */
  g_hash_table_insert (self->uncommitted, g_strdup (message->id), g_new0 (StashedState, 1));
  if (link->connected && link->outbox.length <= 64)
    link_pump (link);
}

char *
natter_messaging_service_send_text_finish (NatterMessagingService *self,
                                           GAsyncResult           *result,
                                           GError                **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* }}} */

static void
on_marked_read (NatterMessagingService *self,
                Op                     *op)
{
  GTask *task = op->data;
  guint n;

  if (op->error != NULL)
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_STORE,
                               "%s", op->error->message);
      return;
    }

  n = g_list_model_get_n_items (G_LIST_MODEL (self->conversations));
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(NatterConversation) c = g_list_model_get_item (G_LIST_MODEL (self->conversations), i);

      if (natter_conversation_get_id (c) == op->result)
        natter_conversation_set_unread_count (c, 0);
    }

  /* Read receipts go through the outbox (they must arrive even if the
   * sender is away now): one signed receipt, for at most the last
   * MAX_RECEIPT_IDS messages that became read.  A backlog of thousands
   * opened at once is read here, but its senders are not sent thousands
   * of receipts for messages long since delivered. */
  for (guint done = op->list->len > MAX_RECEIPT_IDS ? op->list->len - MAX_RECEIPT_IDS : 0;
       done < op->list->len;)
    {
      guint count = MIN (op->list->len - done, MAX_RECEIPT_IDS);
      g_autoptr(NatterMessage) receipt = service_new_message (self, NATTER_MESSAGE_TYPE_MESSAGE_READ, op->peer_id);
      g_autoptr(GBytes) wire = NULL;
      g_autoptr(GError) error = NULL;

      json_object_set_string_member (receipt->content, "messageId", g_ptr_array_index (op->list, done));
      if (count > 1)
        {
          JsonArray *ids = json_array_sized_new (count);

          for (guint i = 0; i < count; i++)
            json_array_add_string_element (ids, g_ptr_array_index (op->list, done + i));
          json_object_set_array_member (receipt->content, "messageIds", ids);
        }
      done += count;
      receipt->requires_ack = TRUE;
      wire = service_seal (self, receipt, &error);
      if (wire != NULL)
        service_outbox_add (self, receipt, wire, NULL, NULL, NULL);
    }
  if (op->list->len > 0)
    link_pump (service_ensure_link (self, op->peer_id));
  g_task_return_boolean (task, TRUE);
}

void
natter_messaging_service_mark_read_async (NatterMessagingService *self,
                                          const char             *peer_id,
                                          GCancellable           *cancellable,
                                          GAsyncReadyCallback     callback,
                                          gpointer                user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autofree char *normal = NULL;
  GError *error = NULL;
  Op *op;

  g_return_if_fail (NATTER_IS_MESSAGING_SERVICE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, natter_messaging_service_mark_read_async);
  if (!check_started (self, &error) || !(normal = normalize_peer (self, peer_id, &error)))
    {
      g_task_return_error (task, error);
      return;
    }
  op = op_new (OP_MARK_READ);
  op->peer_id = g_steal_pointer (&normal);
  op->done = on_marked_read;
  op->data = g_steal_pointer (&task);
  op->data_free = g_object_unref;
  service_queue_op (self, op);
}

gboolean
natter_messaging_service_mark_read_finish (NatterMessagingService *self,
                                           GAsyncResult           *result,
                                           GError                **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

gboolean
natter_messaging_service_set_typing (NatterMessagingService *self,
                                     const char             *peer_id,
                                     gboolean                typing,
                                     GError                **error)
{
  g_autofree char *normal = NULL;
  g_autoptr(NatterMessage) message = NULL;
  g_autoptr(GBytes) wire = NULL;
  gint64 now = g_get_monotonic_time ();
  Link *link;

  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), FALSE);

  if (!check_started (self, error) || !(normal = normalize_peer (self, peer_id, error)))
    return FALSE;
  link = service_get_link (self, normal);
  if (!link_is_accepted (link))
    {
      g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_UNKNOWN_PEER,
                   "%s is not a contact", normal);
      return FALSE;
    }
  /* Throttled: a "typing" refresh at most every few seconds; the peer's
   * indicator expires by itself when refreshes stop. */
  if (typing && link->typing_sent &&
      now - link->typing_sent_us < NATTER_MESSAGING_TYPING_THROTTLE_MS * 1000)
    return TRUE;
  if (!typing && !link->typing_sent)
    return TRUE;
  link->typing_sent = typing;
  link->typing_sent_us = now;
  if (!link->connected)
    return TRUE;   /* typing is live only; nothing is queued for later */

  message = service_new_message (self, NATTER_MESSAGE_TYPE_TYPING_INDICATOR, normal);
  json_object_set_boolean_member (message->content, "typing", typing);
  message->ttl = NATTER_MESSAGING_TYPING_TIMEOUT_MS;
  wire = service_seal (self, message, error);
  if (wire == NULL)
    return FALSE;
  link_send_frame (link, wire);
  return TRUE;
}

void
natter_messaging_service_set_presence (NatterMessagingService *self,
                                       NatterPresence          presence)
{
  GHashTableIter iter;
  Link *link;

  g_return_if_fail (NATTER_IS_MESSAGING_SERVICE (self));

  if (self->presence == presence)
    return;
  self->presence = presence;
  if (!self->started || self->stopping)
    return;
  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &link))
    if (link->connected)
      link_send_control (link, NATTER_MESSAGE_TYPE_PRESENCE_UPDATE, "status",
                         natter_presence_to_string (presence), NULL, NULL);
}

NatterPresence
natter_messaging_service_get_presence (NatterMessagingService *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NATTER_PRESENCE_OFFLINE);
  return self->presence;
}

NatterPresence
natter_messaging_service_get_peer_presence (NatterMessagingService *self,
                                            const char             *peer_id)
{
  Link *link;

  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NATTER_PRESENCE_OFFLINE);
  link = peer_id != NULL ? service_get_link (self, peer_id) : NULL;
  return link != NULL ? link->presence : NATTER_PRESENCE_OFFLINE;
}

NatterPeerState
natter_messaging_service_get_peer_state (NatterMessagingService *self,
                                         const char             *peer_id,
                                         char                  **via)
{
  Link *link;

  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NATTER_PEER_STATE_OFFLINE);
  link = peer_id != NULL ? service_get_link (self, peer_id) : NULL;
  if (via != NULL)
    *via = link != NULL ? g_strdup (link->via) : NULL;
  return link != NULL ? link->state : NATTER_PEER_STATE_OFFLINE;
}

GListModel *
natter_messaging_service_get_contacts (NatterMessagingService *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NULL);
  return G_LIST_MODEL (self->contacts);
}

GListModel *
natter_messaging_service_get_conversations (NatterMessagingService *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NULL);
  return G_LIST_MODEL (self->conversations);
}

static void
on_history_conversation (NatterMessagingService *self,
                         Op                     *op)
{
  GTask *task = op->data;
  NatterHistoryModel *model;

  if (op->error != NULL)
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_STORE,
                               "%s", op->error->message);
      return;
    }
  model = natter_history_model_new (self->store, op->result, op->peer_id);
  g_ptr_array_add (self->histories, model);
  g_object_weak_ref (G_OBJECT (model), history_weak_notify, self);
  g_task_return_pointer (task, model, g_object_unref);
}

void
natter_messaging_service_open_history_async (NatterMessagingService *self,
                                             const char             *peer_id,
                                             GCancellable           *cancellable,
                                             GAsyncReadyCallback     callback,
                                             gpointer                user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autofree char *normal = NULL;
  GError *error = NULL;
  Op *op;

  g_return_if_fail (NATTER_IS_MESSAGING_SERVICE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, natter_messaging_service_open_history_async);
  if (!check_started (self, &error) || !(normal = normalize_peer (self, peer_id, &error)))
    {
      g_task_return_error (task, error);
      return;
    }
  if (service_get_link (self, normal) == NULL)
    {
      /* Neither a contact nor anyone we have a conversation with. */
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_UNKNOWN_PEER,
                               "There is no conversation with %s", normal);
      return;
    }
  op = op_new (OP_ENSURE_CONVERSATION);
  op->peer_id = g_steal_pointer (&normal);
  op->done = on_history_conversation;
  op->data = g_steal_pointer (&task);
  op->data_free = g_object_unref;
  service_queue_op (self, op);
}

GListModel *
natter_messaging_service_open_history_finish (NatterMessagingService *self,
                                              GAsyncResult           *result,
                                              GError                **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* Someone nearby showed us its peer ID: a contact request, pending until
 * the user accepts or blocks it. */
static void
on_request_committed (NatterMessagingService *self,
                      Op                     *op)
{
  Link *link;

  if (op->error != NULL)
    {
      g_warning ("Could not store a contact request: %s", op->error->message);
      return;
    }
  link = service_ensure_link (self, natter_contact_get_peer_id (op->contact));
  if (link->is_contact)
    return;
  link->is_contact = TRUE;
  link->contact_state = NATTER_CONTACT_PENDING;
  contacts_model_update (self, op->contact);
  g_signal_emit (self, signals[SIGNAL_CONTACT_REQUEST], 0, op->contact);
}

/* An introduction that answers ours: we introduced ourselves to the
 * stranger at that address first, so the user already chose to talk to
 * them, and they accepted.  No second question. */
static void
on_answer_committed (NatterMessagingService *self,
                     Op                     *op)
{
  Link *link;

  if (op->error != NULL)
    {
      g_warning ("Could not store a contact: %s", op->error->message);
      return;
    }
  link = service_ensure_link (self, natter_contact_get_peer_id (op->contact));
  link->is_contact = TRUE;
  link->contact_state = NATTER_CONTACT_ACCEPTED;
  contacts_model_update (self, op->contact);
  service_update_finders (self);
  link_maybe_connect (link, TRUE);
  g_signal_emit (self, signals[SIGNAL_CONTACT_ADDED], 0, op->contact);
}

static void
on_lan_nearby_revealed (NatterLanDiscovery *lan,
                        const char         *peer_id,
                        GInetSocketAddress *address,
                        gpointer            user_data)
{
  NatterMessagingService *self = user_data;
  Link *link = service_get_link (self, peer_id);
  const char *handle;
  gpointer introduced_at;
  Op *op;

  if ((link != NULL && link->is_contact) || strcmp (peer_id, self->peer_id) == 0)
    return;   /* known already, blocked ones included */
  handle = nearby_handle_at (self, address);
  op = op_new (OP_UPSERT_CONTACT);
  if (handle != NULL &&
      g_hash_table_lookup_extended (self->introduced_to, handle, NULL, &introduced_at) &&
      g_get_monotonic_time () - (gint64) GPOINTER_TO_SIZE (introduced_at) <= NEARBY_ANSWER_WINDOW_US)
    {
      nearby_now_known (self, handle, peer_id);
      op->contact = natter_contact_new (peer_id, NULL, NATTER_CONTACT_ACCEPTED, FALSE, now_ms ());
      op->done = on_answer_committed;
    }
  else
    {
      /* Remembered so that accepting introduces us back (bounded by the
       * nearby list, whose size LAN discovery bounds). */
      if (g_hash_table_size (self->request_addresses) < 256)
        {
          g_hash_table_replace (self->request_addresses, g_strdup (peer_id), g_object_ref (address));
          /* Listed under the request from now on, not as a stranger (its
           * announcement may not have reached us yet: then no handle). */
          if (handle != NULL)
            g_signal_emit (self, signals[SIGNAL_NEARBY_CHANGED], 0, handle, FALSE);
        }
      op->contact = natter_contact_new (peer_id, NULL, NATTER_CONTACT_PENDING, FALSE, now_ms ());
      op->done = on_request_committed;
    }
  service_queue_op (self, op);
}

static int
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

/* Accepting a request from someone nearby introduces us back, so that it
 * becomes a contact on both sides without more steps. */
static void
nearby_answer_request (NatterMessagingService *self,
                       const char             *peer_id)
{
  g_autoptr(GInetSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *key = NULL;
  const char *handle;

  if (!g_hash_table_steal_extended (self->request_addresses, peer_id, (gpointer *) &key,
                                    (gpointer *) &address))
    return;
  if (self->lan == NULL)
    return;
  if ((handle = nearby_handle_at (self, address)) == NULL)
    {
      /* Not heard from yet (announcements come every few seconds):
       * answer when it shows up (on_lan_nearby_found()). */
      if (g_hash_table_size (self->answers_due) < 256)
        g_hash_table_replace (self->answers_due, g_steal_pointer (&key), g_steal_pointer (&address));
      return;
    }
  if (!natter_lan_discovery_reveal_to_nearby (self->lan, handle, &error))
    g_message ("Could not introduce ourselves back to %s: %s", peer_id, error->message);
  else
    nearby_now_known (self, handle, peer_id);
}

/* Whether @handle sent us a contact request that is still open. */
static gboolean
nearby_has_requested (NatterMessagingService *self,
                      const char             *handle)
{
  GInetSocketAddress *at = g_hash_table_lookup (self->nearby, handle);
  GHashTableIter iter;
  GInetSocketAddress *address;

  if (at == NULL)
    return FALSE;
  g_hash_table_iter_init (&iter, self->request_addresses);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &address))
    if (same_socket_address (address, at))
      return TRUE;
  return FALSE;
}

char *
natter_messaging_service_dup_request_handle (NatterMessagingService *self,
                                             const char             *peer_id)
{
  GInetSocketAddress *address;
  const char *handle;

  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NULL);
  g_return_val_if_fail (peer_id != NULL, NULL);

  address = g_hash_table_lookup (self->request_addresses, peer_id);
  handle = address != NULL ? nearby_handle_at (self, address) : NULL;
  return g_strdup (handle);
}

/* A request that was blocked: that stranger is not listed again. */
static void
nearby_forget_request (NatterMessagingService *self,
                       const char             *peer_id)
{
  GInetSocketAddress *address = g_hash_table_lookup (self->request_addresses, peer_id);
  const char *handle = address != NULL ? nearby_handle_at (self, address) : NULL;

  if (handle != NULL)
    nearby_now_known (self, handle, peer_id);
  g_hash_table_remove (self->request_addresses, peer_id);
}

GStrv
natter_messaging_service_list_nearby (NatterMessagingService *self)
{
  GHashTableIter iter;
  const char *handle;
  GStrvBuilder *builder = g_strv_builder_new ();
  GStrv handles;

  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NULL);

  g_hash_table_iter_init (&iter, self->nearby);
  while (g_hash_table_iter_next (&iter, (gpointer *) &handle, NULL))
    if (!g_hash_table_contains (self->nearby_known, handle) && !nearby_has_requested (self, handle))
      g_strv_builder_add (builder, handle);
  handles = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);
  qsort (handles, g_strv_length (handles), sizeof (char *), compare_strings);
  return handles;
}

char *
natter_messaging_service_dup_nearby_handle (NatterMessagingService *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NULL);

  if (self->lan == NULL || !self->discoverable)
    return NULL;
  return natter_lan_discovery_dup_handle (self->lan);
}

gboolean
natter_messaging_service_get_introduced (NatterMessagingService *self,
                                         const char             *handle)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), FALSE);
  g_return_val_if_fail (handle != NULL, FALSE);

  return g_hash_table_contains (self->introduced_to, handle);
}

gboolean
natter_messaging_service_reveal_to_nearby (NatterMessagingService  *self,
                                           const char              *handle,
                                           GError                 **error)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), FALSE);

  if (!check_started (self, error))
    return FALSE;
  if (self->lan == NULL)
    {
      g_set_error_literal (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                           "LAN discovery is off");
      return FALSE;
    }
  if (!natter_lan_discovery_reveal_to_nearby (self->lan, handle, error))
    return FALSE;
  g_hash_table_replace (self->introduced_to, g_strdup (handle),
                        GSIZE_TO_POINTER ((gsize) g_get_monotonic_time ()));
  return TRUE;
}

void
natter_messaging_service_get_stats (NatterMessagingService *self,
                                    NatterMessagingStats   *stats)
{
  g_return_if_fail (NATTER_IS_MESSAGING_SERVICE (self));
  g_return_if_fail (stats != NULL);
  *stats = self->stats;
}

/* }}} */

gboolean
natter_messaging_service_send_raw_frame (NatterMessagingService  *self,
                                         const char              *peer_id,
                                         GBytes                  *wire,
                                         GError                 **error)
{
  g_autofree char *normal = NULL;
  Link *link;

  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), FALSE);

  if (!check_started (self, error) || !(normal = normalize_peer (self, peer_id, error)))
    return FALSE;
  link = service_get_link (self, normal);
  if (link == NULL || !link->connected)
    {
      g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_UNKNOWN_PEER,
                   "%s is not connected", normal);
      return FALSE;
    }
  if (!link_send_frame (link, wire))
    {
      g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                   "The frame could not be sent");
      return FALSE;
    }
  return TRUE;
}

/* {{{ Groups (natter-groups.c) */

gboolean
natter_messaging_service_group_send_frame (NatterMessagingService *self,
                                           const char             *peer_id,
                                           GBytes                 *wire)
{
  return !self->stopping && link_send_frame (service_get_link (self, peer_id), wire);
}

gboolean
natter_messaging_service_peer_is_connected (NatterMessagingService *self,
                                            const char             *peer_id)
{
  Link *link = service_get_link (self, peer_id);

  return link != NULL && link->connected && link->pc != NULL;
}

gboolean
natter_messaging_service_peer_is_contact (NatterMessagingService *self,
                                          const char             *peer_id)
{
  Link *link = service_get_link (self, peer_id);

  return link != NULL && link->is_contact && link->contact_state == NATTER_CONTACT_ACCEPTED;
}

void
natter_messaging_service_add_group_peers (NatterMessagingService *self,
                                          const char * const     *peer_ids)
{
  gboolean changed = FALSE;

  if (!self->started || self->stopping)
    return;
  for (guint i = 0; peer_ids[i] != NULL; i++)
    {
      Link *link;

      if (strcmp (peer_ids[i], self->peer_id) == 0)
        continue;
      link = service_ensure_link (self, peer_ids[i]);
      changed |= !link->group_peer;
      link->group_peer = TRUE;
    }
  if (!changed)
    return;
  service_update_finders (self);
  for (guint i = 0; peer_ids[i] != NULL; i++)
    {
      Link *link = service_get_link (self, peer_ids[i]);

      if (link != NULL)
        link_maybe_connect (link, FALSE);
    }
}

NatterGroups *
natter_messaging_service_get_groups (NatterMessagingService *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NULL);
  return self->groups;
}

static gboolean
check_groups (NatterMessagingService  *self,
              GError                 **error)
{
  if (!check_started (self, error))
    return FALSE;
  g_return_val_if_fail (self->groups != NULL, FALSE);
  return TRUE;
}

char *
natter_messaging_service_group_create (NatterMessagingService  *self,
                                       const char              *name,
                                       const char * const      *members,
                                       guint                    fanout,
                                       GError                 **error)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NULL);
  if (!check_groups (self, error))
    return NULL;
  return natter_groups_create (self->groups, name, members, fanout, error);
}

gboolean
natter_messaging_service_group_invite (NatterMessagingService  *self,
                                       const char              *group_id,
                                       const char              *peer_id,
                                       GError                 **error)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), FALSE);
  return check_groups (self, error) && natter_groups_invite (self->groups, group_id, peer_id, error);
}

gboolean
natter_messaging_service_group_remove (NatterMessagingService  *self,
                                       const char              *group_id,
                                       const char              *peer_id,
                                       GError                 **error)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), FALSE);
  return check_groups (self, error) && natter_groups_remove (self->groups, group_id, peer_id, error);
}

gboolean
natter_messaging_service_group_leave (NatterMessagingService  *self,
                                      const char              *group_id,
                                      GError                 **error)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), FALSE);
  return check_groups (self, error) && natter_groups_leave (self->groups, group_id, error);
}

char *
natter_messaging_service_group_send_text (NatterMessagingService  *self,
                                          const char              *group_id,
                                          const char              *text,
                                          GError                 **error)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NULL);
  if (!check_groups (self, error))
    return NULL;
  return natter_groups_send_text (self->groups, group_id, text, error);
}

GPtrArray *
natter_messaging_service_group_get_history (NatterMessagingService *self,
                                            const char             *group_id)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NULL);
  if (self->groups == NULL)
    return g_ptr_array_new_with_free_func ((GDestroyNotify) natter_group_message_free);
  return natter_groups_get_history (self->groups, group_id);
}

/* }}} */

/* {{{ Files */

gboolean
natter_messaging_service_is_contact (NatterMessagingService *self,
                                     const char             *peer_id)
{
  /* An accepted contact; fellow group members are connected to
   * (link_is_accepted()) but are not contacts. */
  return natter_messaging_service_peer_is_contact (self, peer_id);
}

static void
on_file_control_committed (NatterMessagingService *self,
                           Op                     *op)
{
  GTask *task = op->data;

  if (op->error != NULL)
    g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_STORE,
                             "The offer could not be saved: %s", op->error->message);
  else
    g_task_return_pointer (task, g_strdup (op->msg_id), g_free);
}

gboolean
natter_messaging_service_send_file_control (NatterMessagingService *self,
                                            const char             *peer_id,
                                            NatterMessageType       type,
                                            JsonObject             *content,
                                            gboolean                queued,
                                            GTask                  *commit_task,
                                            const char             *transfer_id)
{
  g_autoptr(NatterMessage) message = NULL;
  g_autoptr(GBytes) wire = NULL;
  g_autoptr(GError) error = NULL;
  Link *link = service_get_link (self, peer_id);

  if (link == NULL || self->stopping)
    {
      if (commit_task != NULL)
        g_task_return_new_error (commit_task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_NOT_STARTED,
                                 "The messaging service is not running");
      return FALSE;
    }
  if (!queued && !link->connected)
    return FALSE;

  message = service_new_message (self, type, peer_id);
  json_object_unref (message->content);
  message->content = json_object_ref (content);
  message->requires_ack = queued;
  if (!queued)
    message->ttl = 60000;
  if (!natter_message_encrypt_for_peer (message, self->identity, peer_id, &error) ||
      !(wire = service_seal (self, message, &error)))
    {
      g_warning ("Could not build a %s: %s", natter_message_type_to_string (type), error->message);
      if (commit_task != NULL)
        g_task_return_new_error (commit_task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                                 "%s", error->message);
      return FALSE;
    }
  if (!queued)
    return link_send_frame (link, wire);

  if (commit_task != NULL)
    {
      service_outbox_add (self, message, wire, on_file_control_committed,
                          g_object_ref (commit_task), g_object_unref);
      /* The commit callback returns the transfer ID. */
      {
        Op *op = g_ptr_array_index (self->pending_ops, self->pending_ops->len - 1);

        g_free (op->msg_id);
        op->msg_id = g_strdup (transfer_id);
      }
    }
  else
    service_outbox_add (self, message, wire, NULL, NULL, NULL);
  link_schedule_pump (link);
  return TRUE;
}

void
natter_messaging_service_save_transfer (NatterMessagingService    *self,
                                        const NatterStoreTransfer *transfer)
{
  Op *op = op_new (OP_TRANSFER_SAVE);

  op->transfer = natter_store_transfer_new ();
  op->transfer->id = g_strdup (transfer->id);
  op->transfer->msg_id = g_strdup (transfer->msg_id);
  op->transfer->peer_id = g_strdup (transfer->peer_id);
  op->transfer->direction = transfer->direction;
  op->transfer->name = g_strdup (transfer->name);
  op->transfer->size = transfer->size;
  op->transfer->hash = g_strdup (transfer->hash);
  op->transfer->offset = transfer->offset;
  op->transfer->state = transfer->state;
  op->transfer->path = g_strdup (transfer->path);
  op->transfer->created_at = transfer->created_at;
  op->transfer->updated_at = transfer->updated_at;
  service_queue_op (self, op);
}

void
natter_messaging_service_send_file_full_async (NatterMessagingService *self,
                                               const char             *peer_id,
                                               GFile                  *file,
                                               const char             *name,
                                               const guint8           *fake_hash,
                                               GCancellable           *cancellable,
                                               GAsyncReadyCallback     callback,
                                               gpointer                user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autofree char *normal = NULL;
  GError *error = NULL;
  Link *link;

  g_return_if_fail (NATTER_IS_MESSAGING_SERVICE (self));
  g_return_if_fail (G_IS_FILE (file));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, natter_messaging_service_send_file_async);
  if (!check_started (self, &error) || !(normal = normalize_peer (self, peer_id, &error)))
    {
      g_task_return_error (task, error);
      return;
    }
  link = service_get_link (self, normal);
  if (link == NULL || !link->is_contact)
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_UNKNOWN_PEER,
                               "%s is not a contact; add it first", normal);
      return;
    }
  if (link->contact_state == NATTER_CONTACT_BLOCKED)
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_BLOCKED,
                               "%s is blocked", normal);
      return;
    }
  if (name != NULL && (!g_utf8_validate (name, -1, NULL) || *name == '\0' ||
                       g_utf8_strlen (name, -1) > 255))
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                               "A file name is 1 to 255 characters of UTF-8");
      return;
    }
  natter_file_transfers_send_async (self->files, normal, file, name, fake_hash,
                                    g_steal_pointer (&task));
}

void
natter_messaging_service_send_file_async (NatterMessagingService *self,
                                          const char             *peer_id,
                                          GFile                  *file,
                                          GCancellable           *cancellable,
                                          GAsyncReadyCallback     callback,
                                          gpointer                user_data)
{
  natter_messaging_service_send_file_full_async (self, peer_id, file, NULL, NULL,
                                                 cancellable, callback, user_data);
}

char *
natter_messaging_service_send_file_finish (NatterMessagingService *self,
                                           GAsyncResult           *result,
                                           GError                **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

gboolean
natter_messaging_service_accept_file (NatterMessagingService *self,
                                      const char             *transfer_id,
                                      GFile                  *folder,
                                      GError                **error)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), FALSE);

  if (!check_started (self, error))
    return FALSE;
  return natter_file_transfers_accept (self->files, transfer_id, folder, error);
}

gboolean
natter_messaging_service_decline_file (NatterMessagingService *self,
                                       const char             *transfer_id,
                                       GError                **error)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), FALSE);

  if (!check_started (self, error))
    return FALSE;
  return natter_file_transfers_decline (self->files, transfer_id, error);
}

gboolean
natter_messaging_service_cancel_file (NatterMessagingService *self,
                                      const char             *transfer_id,
                                      GError                **error)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), FALSE);

  if (!check_started (self, error))
    return FALSE;
  return natter_file_transfers_cancel (self->files, transfer_id, error);
}

GPtrArray *
natter_messaging_service_list_transfers (NatterMessagingService *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGING_SERVICE (self), NULL);

  if (self->files == NULL)
    return g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_transfer_free);
  return natter_file_transfers_list (self->files);
}

gboolean
natter_messaging_service_get_transfer_counters (NatterMessagingService *self,
                                                const char             *transfer_id,
                                                guint64                *bytes_sent,
                                                guint64                *bytes_received,
                                                guint64                *duplicate_bytes,
                                                guint64                *resumed_from,
                                                guint                  *starts)
{
  NatterFileTransferCounters counters;

  if (self->files == NULL ||
      !natter_file_transfers_get_counters (self->files, transfer_id, &counters))
    return FALSE;
  *bytes_sent = counters.bytes_sent;
  *bytes_received = counters.bytes_received;
  *duplicate_bytes = counters.duplicate_bytes;
  *resumed_from = counters.resumed_from;
  *starts = counters.starts;
  return TRUE;
}

guint64
natter_messaging_service_get_rejected_file_frames (NatterMessagingService *self,
                                                   guint                   reason)
{
  if (self->files == NULL || reason >= NATTER_FILE_REJECT_N)
    return 0;
  return natter_file_transfers_get_rejected_frames (self->files, reason);
}

gboolean
natter_messaging_service_send_raw_bulk (NatterMessagingService  *self,
                                        const char              *peer_id,
                                        guint                    stream,
                                        GBytes                  *frame,
                                        GError                 **error)
{
  g_autofree char *normal = NULL;
  Link *link;

  if (!check_started (self, error) || !(normal = normalize_peer (self, peer_id, error)))
    return FALSE;
  link = service_get_link (self, normal);
  if (link == NULL || !link->connected || link->pc == NULL)
    {
      g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_UNKNOWN_PEER,
                   "%s is not connected", normal);
      return FALSE;
    }
  if (stream < NATTER_PEER_STREAM_FIRST_BULK || stream > 1023)
    {
      g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                   "Stream %u is not a bulk stream", stream);
      return FALSE;
    }
  return natter_peer_connection_send (link->pc, (guint16) stream, frame, error);
}

/* }}} */
