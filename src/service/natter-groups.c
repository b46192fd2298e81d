/* natter-groups.c: group conversations of the messaging service
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include <sodium.h>

#include "natter-causal-buffer.h"
#include "natter-crypto.h"
#include "natter-groups-private.h"
#include "natter-vector-clock.h"

/* How groups work (docs/architecture.md, "Groups"; frames in
 * docs/protocol.md, "Groups"):
 *
 * Stream.  Texts and membership operations are group_message frames
 * encrypted with the group key, signed by their author, with the author's
 * counter as `sequence` and the author's delivered clock (plus the new
 * counter) as `vectorClock`.  Every member puts them through a
 * NatterCausalBuffer; the history shows them in causal order, concurrent
 * ones by (sum of the clock, timestamp, author), a linear extension of
 * happened-before that every member computes alike.
 *
 * Tree.  The author lists the other members in `to` in tree order (the
 * connected ones by round-trip time first) and the group has a fan-out k:
 * `to[i]` is node i + 1, the author node 0, and node p forwards to nodes
 * k·p + 1 … k·p + k.  A node acknowledges to the node it got the frame
 * from once its subtree has acknowledged; a child that is not connected,
 * or that does not acknowledge in time, is skipped and its children are
 * served by the node itself (repair).
 *
 * Sync.  Members exchange summaries (the delivered clock and the read
 * clock) and pull the ranges (author, counters) that another member has
 * and they lack, from that member.  Summaries double as receipts.
 *
 * Membership.  Operations are stream messages (metadata "op"), checked when
 * they are delivered against the state at that point: only the admin
 * invites, removes, rotates the key or hands over; any other member may
 * leave.  A removal or a leave rotates the key: the operation carries the
 * new key's ID and a hash of it, and the key itself goes to every remaining
 * member pairwise (encrypted to that member); any member that holds a key
 * may hand it to a member that asks and is entitled to it. */

#define TICK_MS               100
#define ACK_DELAY_MS          20      /* tree acknowledgements are batched */
#define SUMMARY_DELAY_MS      150     /* receipts (summaries) are batched */
#define ACK_TIMEOUT_MS        400     /* per tree level below the child */
#define SYNC_EVERY_MS         1000
#define SYNC_FANOUT           2       /* random members sent a summary per round */
#define SUMMARY_REPLY_MS      300
#define PULL_TIMEOUT_MS       3000
#define PULL_MAX              256
#define PULL_GRACE_MS         500     /* a small gap may still be on its way down the tree */
#define PULL_AT_ONCE          64      /* a larger gap is pulled at once */
#define KEY_WAIT_MS           10000
#define KEY_REQUEST_EVERY_MS  1000
#define WELCOME_EVERY_MS      2000
#define PING_EVERY_MS         5000
#define PEERS_PER_SECOND      6
#define MAX_WAITING           20000
#define MAX_INFLIGHT          4096
#define MAX_GROUPS            1024
#define TYPING_THROTTLE_MS    3000
#define TYPING_TIMEOUT_MS     6000
#define CONTROL_TTL_MS        60000
#define STREAM_TTL_MS         (30 * 24 * 3600 * G_GINT64_CONSTANT (1000))
#define SAVE_DELAY_MS         50      /* changes are written in batches */
#define MAX_STATE_BYTES       (4 * 1024 * 1024)
#define MAX_EVER              4096
#define ROSTER_ID_LEN         8
#define MAX_ROSTERS           8       /* member lists a tree may refer to */
#define ROSTER_ID_CONTEXT     "natter-group-roster-v1"

/* {{{ Boxed types */

G_DEFINE_BOXED_TYPE (NatterGroupMessage, natter_group_message,
                     natter_group_message_copy, natter_group_message_free)

NatterGroupMessage *
natter_group_message_copy (const NatterGroupMessage *message)
{
  NatterGroupMessage *copy = g_new0 (NatterGroupMessage, 1);

  copy->msg_id = g_strdup (message->msg_id);
  copy->group_id = g_strdup (message->group_id);
  copy->sender = g_strdup (message->sender);
  copy->kind = g_strdup (message->kind);
  copy->text = g_strdup (message->text);
  copy->timestamp = message->timestamp;
  copy->counter = message->counter;
  copy->outgoing = message->outgoing;
  return copy;
}

void
natter_group_message_free (NatterGroupMessage *message)
{
  if (message == NULL)
    return;
  g_free (message->msg_id);
  g_free (message->group_id);
  g_free (message->sender);
  g_free (message->kind);
  g_free (message->text);
  g_free (message);
}

NatterGroupInfo *
natter_group_info_copy (const NatterGroupInfo *info)
{
  NatterGroupInfo *copy = g_new0 (NatterGroupInfo, 1);

  *copy = *info;
  copy->id = g_strdup (info->id);
  copy->name = g_strdup (info->name);
  copy->admin = g_strdup (info->admin);
  copy->members = g_strdupv (info->members);
  copy->key_id = g_strdup (info->key_id);
  return copy;
}

void
natter_group_info_free (NatterGroupInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->id);
  g_free (info->name);
  g_free (info->admin);
  g_strfreev (info->members);
  g_free (info->key_id);
  g_free (info);
}

/* }}} */
/* {{{ Types */

typedef struct _Group Group;

/* One stream message, from receipt to the log. */
typedef struct
{
  char       *msg_id;
  char       *author;
  guint64     counter;
  gint64      timestamp;
  char       *key_id;
  GBytes     *wire;          /* as signed by the author */
  NatterVectorClock *clock;
  guint64     clock_sum;
  JsonObject *content;       /* decrypted, or NULL when unreadable */
  gint64      since_us;      /* parked for its key since */
  gint64      delivered_us;
  gboolean    delivered;
  gboolean    shown;         /* in the history */
  char       *kind;
  char       *text;
} Entry;

typedef struct
{
  guint64    base;           /* entries[i] has counter base + 1 + i */
  GPtrArray *entries;
} AuthorLog;

/* A frame this node sent down the tree and waits to hear back about. */
typedef struct
{
  char    *msg_id;
  GBytes  *wire;
  GStrv    to;
  guint    my_index;
  char    *parent;           /* whom to acknowledge; NULL for our own */
  GArray  *pending;          /* guint node indices */
  gint64   deadline_us;
} Inflight;

typedef struct
{
  guint64 upto;
  gint64  deadline_us;
} Pull;

struct _Group
{
  NatterGroups      *groups;
  char              *id;
  char              *name;
  char              *admin;
  guint              fanout;
  GPtrArray         *members;       /* char *, sorted */
  GHashTable        *ever;          /* everyone who was a member: set */
  GHashTable        *keys;          /* key ID -> GBytes (32) */
  GHashTable        *key_hashes;    /* key ID -> GBytes (32): from delivered operations */
  GHashTable        *key_members;   /* key ID -> GHashTable set of authors allowed under it */
  GHashTable        *unverified_keys; /* key ID -> GBytes: arrived before their operation */
  char              *key_id;
  gboolean           removed;
  GHashTable        *rosters;       /* roster ID (guint64 *) -> GPtrArray of char *, sorted */
  GQueue             roster_order;  /* the keys of rosters, least recently current first */
  gboolean           roster_stale;  /* members changed since roster_id */
  guint64            roster_id;

  NatterCausalBuffer *buffer;
  GHashTable        *ids;           /* msg ID -> Entry (held, parked or delivered) */
  GHashTable        *logs;          /* author -> AuthorLog */
  GPtrArray         *history;       /* Entry, shown, in display order */
  GPtrArray         *parked;        /* Entry waiting for its key */
  GHashTable        *inflight;      /* msg ID -> Inflight */
  GQueue             inflight_order;
  GHashTable        *known;         /* peer -> NatterVectorClock: what it has */
  GHashTable        *known_read;    /* peer -> NatterVectorClock: what it read */
  NatterVectorClock *my_read;
  GHashTable        *pulls;         /* author -> Pull */
  GHashTable        *gaps;          /* author -> Pull: a small gap seen, pulled from deadline_us on */
  GHashTable        *owe_summary;   /* peers to send a summary soon: set */
  GHashTable        *acks;          /* parent -> GPtrArray of msg IDs to acknowledge */
  GHashTable        *summary_sent;  /* peer -> gint64* last summary time (us) */
  GHashTable        *pending_welcome; /* peer -> gint64* next attempt (us) */
  GHashTable        *pending_keys;  /* "peer\nkeyId" -> gint64* next attempt (us) */
  GHashTable        *typing;        /* peer -> gint64* expiry (us) */
  gint64             typing_sent_us;
  gint64             last_key_request_us;
  gint64             last_sync_us;
  gboolean           syncing;

  /* Persistence (natter-db.c, group_* tables). */
  gint64             created_at;    /* ms */
  gboolean           dirty;         /* the state row is to be written */
  gboolean           members_dirty;
  GPtrArray         *unsaved;       /* Entry, delivered and not written yet */
};

struct _NatterGroups
{
  GObject                 parent_instance;

  NatterMessagingService *service;     /* not owned: it owns us */
  NatterIdentity         *identity;
  NatterStore            *store;
  char                   *self_id;
  GHashTable             *groups;      /* ID -> Group */
  GHashTable             *rtt;         /* peer -> double* ms (EWMA) */
  GHashTable             *last_ping;   /* peer -> gint64* us */
  GHashTable             *peers_added; /* set */
  GQueue                  peer_queue;  /* char *, to hand to the service */
  gint64                  peer_window_us;
  guint                   peers_in_window;
  guint                   tick_source;
  guint                   summary_idle;
  guint                   summary_source;
  guint                   ack_source;
  guint                   save_source;
  gboolean                shut_down;

  double                  drop_rate;
  guint                   delay_min_ms;
  guint                   delay_max_ms;
  GHashTable             *blocked;     /* set */

  NatterGroupsStats       stats;
};

G_DEFINE_FINAL_TYPE (NatterGroups, natter_groups, G_TYPE_OBJECT)

enum
{
  SIGNAL_GROUP_CHANGED,
  SIGNAL_MESSAGE_RECEIVED,
  SIGNAL_RECEIPTS_CHANGED,
  SIGNAL_TYPING_CHANGED,
  SIGNAL_SYNC_CHANGED,
  SIGNAL_OPERATION_REJECTED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void group_deliver (NatterCausalBuffer *buffer, guint sender, const guint64 *clock,
                           gsize clock_len, gpointer item, gpointer user_data);
static void group_update_syncing (Group *g);
static void group_send_summary (Group *g, const char *peer);
static void schedule_summaries (NatterGroups *self);

static gint64
now_us (void)
{
  return g_get_monotonic_time ();
}

/* }}} */
/* {{{ Small helpers */

static void
entry_free (Entry *entry)
{
  g_free (entry->msg_id);
  g_free (entry->author);
  g_free (entry->key_id);
  g_clear_pointer (&entry->wire, g_bytes_unref);
  g_clear_pointer (&entry->clock, natter_vector_clock_free);
  g_clear_pointer (&entry->content, json_object_unref);
  g_free (entry->kind);
  g_free (entry->text);
  g_free (entry);
}

static void
author_log_free (AuthorLog *log)
{
  g_ptr_array_unref (log->entries);
  g_free (log);
}

static void
inflight_free (Inflight *inflight)
{
  g_free (inflight->msg_id);
  g_bytes_unref (inflight->wire);
  g_strfreev (inflight->to);
  g_free (inflight->parent);
  g_array_unref (inflight->pending);
  g_free (inflight);
}

static GHashTable *
str_set_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

static GHashTable *
str_time_table_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

static void
time_table_set (GHashTable *table,
                const char *key,
                gint64      value)
{
  g_hash_table_insert (table, g_strdup (key), g_memdup2 (&value, sizeof value));
}

static gint64
time_table_get (GHashTable *table,
                const char *key)
{
  gint64 *value = g_hash_table_lookup (table, key);

  return value != NULL ? *value : 0;
}

static void
group_free (Group *g)
{
  g_free (g->id);
  g_free (g->name);
  g_free (g->admin);
  g_ptr_array_unref (g->members);
  g_queue_clear (&g->roster_order);
  g_hash_table_unref (g->rosters);
  g_hash_table_unref (g->ever);
  g_hash_table_unref (g->keys);
  g_hash_table_unref (g->key_hashes);
  g_hash_table_unref (g->key_members);
  g_hash_table_unref (g->unverified_keys);
  g_free (g->key_id);
  /* Entries are owned by ids; the buffer holds pointers into it. */
  g_clear_pointer (&g->buffer, natter_causal_buffer_free);
  g_ptr_array_unref (g->history);
  g_ptr_array_unref (g->parked);
  g_hash_table_unref (g->logs);
  g_hash_table_unref (g->ids);
  g_hash_table_unref (g->inflight);
  g_queue_clear_full (&g->inflight_order, g_free);
  g_hash_table_unref (g->known);
  g_hash_table_unref (g->known_read);
  natter_vector_clock_free (g->my_read);
  g_hash_table_unref (g->pulls);
  g_hash_table_unref (g->gaps);
  g_hash_table_unref (g->owe_summary);
  g_hash_table_unref (g->acks);
  g_hash_table_unref (g->summary_sent);
  g_hash_table_unref (g->pending_welcome);
  g_hash_table_unref (g->pending_keys);
  g_hash_table_unref (g->typing);
  g_ptr_array_unref (g->unsaved);
  g_free (g);
}

static gint
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

static gboolean
group_is_member (Group      *g,
                 const char *peer)
{
  for (guint i = 0; i < g->members->len; i++)
    if (strcmp (g_ptr_array_index (g->members, i), peer) == 0)
      return TRUE;
  return FALSE;
}

static void
group_add_member (Group      *g,
                  const char *peer)
{
  if (group_is_member (g, peer))
    return;
  g_ptr_array_add (g->members, g_strdup (peer));
  g_ptr_array_sort (g->members, compare_strings);
  g_hash_table_add (g->ever, g_strdup (peer));
  g->members_dirty = TRUE;
  g->roster_stale = TRUE;
}

static void
group_remove_member (Group      *g,
                     const char *peer)
{
  for (guint i = 0; i < g->members->len; i++)
    if (strcmp (g_ptr_array_index (g->members, i), peer) == 0)
      {
        g_ptr_array_remove_index (g->members, i);
        g->members_dirty = TRUE;
        g->roster_stale = TRUE;
        return;
      }
}

static GHashTable *
members_snapshot (Group *g)
{
  GHashTable *set = str_set_new ();

  for (guint i = 0; i < g->members->len; i++)
    g_hash_table_add (set, g_strdup (g_ptr_array_index (g->members, i)));
  return set;
}

static GBytes *
key_hash (GBytes *key)
{
  guint8 out[32];
  gsize len;
  const guint8 *data = g_bytes_get_data (key, &len);
  static const char context[] = "natter-group-key-hash-v1";

  crypto_generichash (out, sizeof out, data, len, (const guint8 *) context, sizeof context - 1);
  return g_bytes_new (out, sizeof out);
}

static char *
new_key_id (void)
{
  guint8 random[8];
  g_autofree char *hex = NULL;

  randombytes_buf (random, sizeof random);
  hex = g_malloc (sizeof random * 2 + 1);
  sodium_bin2hex (hex, sizeof random * 2 + 1, random, sizeof random);
  return g_strdup_printf ("key_%" G_GINT64_FORMAT "_%s", g_get_real_time () / 1000, hex);
}

static GBytes *
new_key (void)
{
  guint8 key[NATTER_MESSAGE_GROUP_KEY_LEN];

  randombytes_buf (key, sizeof key);
  return g_bytes_new (key, sizeof key);
}

static char *
bytes_to_base64 (GBytes *bytes)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  return g_base64_encode (data, len);
}

/* NULL unless @text is base64 of exactly @len bytes. */
static GBytes *
base64_to_bytes (const char *text,
                 gsize       len)
{
  guint8 buffer[64];
  gsize out_len;

  if (text == NULL || len > sizeof buffer ||
      sodium_base642bin (buffer, sizeof buffer, text, strlen (text), NULL, &out_len, NULL,
                         sodium_base64_VARIANT_ORIGINAL) != 0 ||
      out_len != len)
    return NULL;
  return g_bytes_new (buffer, len);
}

static const char *
json_get_string (JsonObject *object,
                 const char *name)
{
  JsonNode *node = object != NULL ? json_object_get_member (object, name) : NULL;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

static gboolean
json_get_int (JsonObject *object,
              const char *name,
              gint64     *out)
{
  JsonNode *node = object != NULL ? json_object_get_member (object, name) : NULL;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (node);
  return TRUE;
}

static JsonObject *
json_get_object (JsonObject *object,
                 const char *name)
{
  JsonNode *node = object != NULL ? json_object_get_member (object, name) : NULL;

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return NULL;
  return json_node_get_object (node);
}

static JsonArray *
json_get_array (JsonObject *object,
                const char *name)
{
  JsonNode *node = object != NULL ? json_object_get_member (object, name) : NULL;

  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    return NULL;
  return json_node_get_array (node);
}

static gboolean
json_node_is_int (JsonNode *node)
{
  return node != NULL && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_INT64;
}

static JsonObject *
clock_to_json (const NatterVectorClock *clock)
{
  JsonObject *object = json_object_new ();
  NatterVectorClockIter iter;
  const char *peer;
  guint64 value;

  natter_vector_clock_iter_init (&iter, clock);
  while (natter_vector_clock_iter_next (&iter, &peer, &value))
    json_object_set_int_member (object, peer, (gint64) value);
  return object;
}

/* Only entries of peers that were ever members count. */
static NatterVectorClock *
clock_from_json (Group      *g,
                 JsonObject *object)
{
  NatterVectorClock *clock = natter_vector_clock_new ();
  JsonObjectIter iter;
  const char *peer;
  JsonNode *node;

  if (object == NULL)
    return clock;
  json_object_iter_init (&iter, object);
  while (json_object_iter_next (&iter, &peer, &node))
    {
      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64 ||
          json_node_get_int (node) < 0 || !g_hash_table_contains (g->ever, peer))
        continue;
      natter_vector_clock_set (clock, peer, (guint64) json_node_get_int (node));
    }
  return clock;
}

static guint64
local_of (Group      *g,
          const char *peer)
{
  guint index;
  gsize len;
  const guint64 *local;

  if (!natter_causal_buffer_lookup_member (g->buffer, peer, &index))
    return 0;
  local = natter_causal_buffer_get_local (g->buffer, &len);
  return index < len ? local[index] : 0;
}

/* }}} */
/* {{{ Sending frames */

typedef struct
{
  NatterGroups *self;
  char         *peer;
  GBytes       *wire;
} Delayed;

static void
delayed_free (Delayed *delayed)
{
  g_object_unref (delayed->self);
  g_free (delayed->peer);
  g_bytes_unref (delayed->wire);
  g_free (delayed);
}

static gboolean
on_delayed_send (gpointer user_data)
{
  Delayed *delayed = user_data;

  if (!delayed->self->shut_down)
    natter_messaging_service_group_send_frame (delayed->self->service, delayed->peer, delayed->wire);
  return G_SOURCE_REMOVE;
}

/* Every group frame leaves here: the fault injection of the tests sits in
 * front of the service.  FALSE when the peer is not connected. */
static gboolean
groups_send (NatterGroups *self,
             const char   *peer,
             GBytes       *wire)
{
  if (self->shut_down || !natter_messaging_service_peer_is_connected (self->service, peer))
    return FALSE;
  if (g_hash_table_contains (self->blocked, peer) ||
      (self->drop_rate > 0 && g_random_double () < self->drop_rate))
    {
      self->stats.dropped_by_faults++;
      return TRUE;   /* lost on the way, as far as the sender can tell */
    }
  if (self->delay_max_ms > 0)
    {
      Delayed *delayed = g_new0 (Delayed, 1);
      guint delay = self->delay_min_ms +
        (self->delay_max_ms > self->delay_min_ms
         ? (guint) g_random_int_range (0, (gint32) (self->delay_max_ms - self->delay_min_ms + 1)) : 0);

      delayed->self = g_object_ref (self);
      delayed->peer = g_strdup (peer);
      delayed->wire = g_bytes_ref (wire);
      g_timeout_add_full (G_PRIORITY_DEFAULT, delay, on_delayed_send, delayed,
                          (GDestroyNotify) delayed_free);
      return TRUE;
    }
  return natter_messaging_service_group_send_frame (self->service, peer, wire);
}

/* Signs and encodes a frame of @type to one member. */
static GBytes *
build_control (NatterGroups      *self,
               Group             *g,
               NatterMessageType  type,
               const char        *peer,
               JsonObject        *content,    /* transfer full */
               gboolean           pairwise)
{
  g_autoptr(NatterMessage) message = natter_message_new (type);
  g_autoptr(GError) error = NULL;
  const char *to[] = { peer, NULL };
  GBytes *wire;

  message->from = g_strdup (self->self_id);
  g_strfreev (message->to);
  message->to = g_strdupv ((char **) to);
  message->group = g_strdup (g->id);
  message->ttl = CONTROL_TTL_MS;
  json_object_unref (message->content);
  message->content = content;
  /* Control frames go straight to @peer over the session, which already
   * authenticates us (protocol.md section 7): only the pairwise ones,
   * welcomes and keys, are signed as well. */
  if ((pairwise && (!natter_message_encrypt_for_peer (message, self->identity, peer, &error) ||
                    !natter_message_sign (message, self->identity, &error))) ||
      !(wire = natter_message_encode (message, &error)))
    {
      g_warning ("Could not build a group frame: %s", error->message);
      return NULL;
    }
  return wire;
}

static JsonObject *
ctl_content (const char  *ctl,
             JsonObject **out_metadata)
{
  JsonObject *content = json_object_new ();
  JsonObject *metadata = json_object_new ();

  json_object_set_string_member (content, "text", "");
  json_object_set_string_member (metadata, "ctl", ctl);
  json_object_set_object_member (content, "metadata", metadata);
  *out_metadata = metadata;
  return content;
}

static gboolean
send_control (NatterGroups *self,
              Group        *g,
              const char   *peer,
              JsonObject   *content,
              gboolean      pairwise)
{
  g_autoptr(GBytes) wire = build_control (self, g, NATTER_MESSAGE_TYPE_GROUP_MESSAGE, peer,
                                          content, pairwise);

  if (wire == NULL || !groups_send (self, peer, wire))
    return FALSE;
  self->stats.control_sent++;
  self->stats.control_bytes += g_bytes_get_size (wire);
  return TRUE;
}

static gboolean on_flush_acks (gpointer user_data);

/* Tree acknowledgements are collected for ACK_DELAY_MS and go as one
 * signed message_delivered per parent: fewer signatures, and none of
 * them in the way of the messages themselves. */
static void
send_ack (NatterGroups *self,
          Group        *g,
          const char   *peer,
          const char   *msg_id)
{
  GPtrArray *ids = g_hash_table_lookup (g->acks, peer);

  if (ids == NULL)
    {
      ids = g_ptr_array_new_with_free_func (g_free);
      g_hash_table_insert (g->acks, g_strdup (peer), ids);
    }
  g_ptr_array_add (ids, g_strdup (msg_id));
  if (self->ack_source == 0 && !self->shut_down)
    self->ack_source = g_timeout_add (ACK_DELAY_MS, on_flush_acks, self);
}

static void
group_flush_acks (NatterGroups *self,
                  Group        *g)
{
  GHashTableIter iter;
  const char *peer;
  GPtrArray *ids;

  g_hash_table_iter_init (&iter, g->acks);
  while (g_hash_table_iter_next (&iter, (gpointer *) &peer, (gpointer *) &ids))
    for (guint done = 0; done < ids->len;)
      {
        guint n = MIN (ids->len - done, NATTER_MESSAGE_MAX_RECIPIENTS);
        JsonObject *content = json_object_new ();
        g_autoptr(GBytes) wire = NULL;

        json_object_set_string_member (content, "messageId", g_ptr_array_index (ids, done));
        if (n > 1)
          {
            JsonArray *array = json_array_sized_new (n);

            for (guint i = 0; i < n; i++)
              json_array_add_string_element (array, g_ptr_array_index (ids, done + i));
            json_object_set_array_member (content, "messageIds", array);
          }
        done += n;
        wire = build_control (self, g, NATTER_MESSAGE_TYPE_MESSAGE_DELIVERED, peer, content, FALSE);
        if (wire != NULL && groups_send (self, peer, wire))
          {
            self->stats.control_sent++;
            self->stats.control_bytes += g_bytes_get_size (wire);
          }
      }
  g_hash_table_remove_all (g->acks);
}

static gboolean
on_flush_acks (gpointer user_data)
{
  NatterGroups *self = user_data;
  GHashTableIter iter;
  Group *g;

  self->ack_source = 0;
  g_hash_table_iter_init (&iter, self->groups);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &g))
    group_flush_acks (self, g);
  return G_SOURCE_REMOVE;
}

/* Connected, and not cut off by the tests' partition hook. */
static gboolean
peer_connected (NatterGroups *self,
                const char   *peer)
{
  return !g_hash_table_contains (self->blocked, peer) &&
         natter_messaging_service_peer_is_connected (self->service, peer);
}

/* }}} */
/* {{{ The tree */

/* Node indices: 0 is the author, to[i] is node i + 1. */
static guint
tree_height (guint index,
             guint n_nodes,
             guint k)
{
  guint height = 0;
  guint64 x = index;

  while (k * x + 1 < n_nodes)
    {
      x = k * x + 1;
      height++;
    }
  return height;
}

static gboolean
tree_is_ancestor (guint ancestor,
                  guint index,
                  guint k)
{
  while (index > 0)
    {
      index = (index - 1) / k;
      if (index == ancestor)
        return TRUE;
    }
  return FALSE;
}

static guint
tree_index_of (GStrv       to,
               const char *author,
               const char *peer)
{
  if (strcmp (peer, author) == 0)
    return 0;
  for (guint i = 0; to[i] != NULL; i++)
    if (strcmp (to[i], peer) == 0)
      return i + 1;
  return G_MAXUINT;
}

/* The roster of a tree is the sorted member list its author had; frames
 * name it by an ID and the nodes by their index in it, a byte each.  The
 * last MAX_ROSTERS member lists are kept, so that a frame sent just
 * before or after a membership change still finds its tree. */
static guint64
roster_compute_id (Group *g)
{
  crypto_generichash_state state;
  guint8 out[crypto_generichash_BYTES_MIN];
  guint64 id;

  crypto_generichash_init (&state, (const guint8 *) ROSTER_ID_CONTEXT, strlen (ROSTER_ID_CONTEXT),
                           sizeof out);
  crypto_generichash_update (&state, (const guint8 *) g->id, strlen (g->id) + 1);
  for (guint i = 0; i < g->members->len; i++)
    {
      const char *member = g_ptr_array_index (g->members, i);

      crypto_generichash_update (&state, (const guint8 *) member, strlen (member) + 1);
    }
  crypto_generichash_final (&state, out, sizeof out);
  G_STATIC_ASSERT (sizeof id == ROSTER_ID_LEN);
  memcpy (&id, out, sizeof id);
  return id;
}

/* The ID of the current member list, which is kept among the rosters. */
static guint64
group_roster_id (Group *g)
{
  guint64 *key;

  if (!g->roster_stale)
    return g->roster_id;
  g->roster_id = roster_compute_id (g);
  g->roster_stale = FALSE;
  if (g_hash_table_lookup_extended (g->rosters, &g->roster_id, (gpointer *) &key, NULL))
    {
      g_queue_remove (&g->roster_order, key);
      g_queue_push_tail (&g->roster_order, key);
      return g->roster_id;
    }
  {
    GPtrArray *roster = g_ptr_array_new_full (g->members->len, g_free);

    for (guint i = 0; i < g->members->len; i++)
      g_ptr_array_add (roster, g_strdup (g_ptr_array_index (g->members, i)));
    key = g_memdup2 (&g->roster_id, sizeof g->roster_id);
    g_hash_table_insert (g->rosters, key, roster);
    g_queue_push_tail (&g->roster_order, key);
  }
  while (g->roster_order.length > MAX_ROSTERS)
    g_hash_table_remove (g->rosters, g_queue_pop_head (&g->roster_order));
  return g->roster_id;
}

static guint
roster_index_of (GPtrArray  *roster,
                 const char *peer)
{
  guint low = 0, high = roster->len;

  while (low < high)
    {
      guint mid = low + (high - low) / 2;
      int cmp = strcmp (g_ptr_array_index (roster, mid), peer);

      if (cmp == 0)
        return mid;
      if (cmp < 0)
        low = mid + 1;
      else
        high = mid;
    }
  return G_MAXUINT;
}

/* @to (the other members in tree order) as it goes on the wire. */
static GBytes *
tree_encode (Group *g,
             GStrv  to)
{
  guint64 id = group_roster_id (g);
  GByteArray *tree = g_byte_array_sized_new (ROSTER_ID_LEN + g_strv_length (to));

  g_byte_array_append (tree, (const guint8 *) &id, ROSTER_ID_LEN);
  for (guint i = 0; to[i] != NULL; i++)
    {
      guint index = roster_index_of (g->members, to[i]);
      guint8 byte = (guint8) index;

      g_assert (index < NATTER_GROUPS_MAX_MEMBERS);
      g_byte_array_append (tree, &byte, 1);
    }
  return g_byte_array_free_to_bytes (tree);
}

typedef enum
{
  TREE_INVALID,
  TREE_UNKNOWN,     /* a member list we do not have (any more, or yet) */
  TREE_OK,
} TreeResult;

/* The other members of @message's tree, in tree order.  The indices come
 * from the network: a permutation of the roster without the author, or
 * the frame is refused. */
static TreeResult
tree_decode (Group          *g,
             NatterMessage  *message,
             GStrv          *out_to)
{
  gsize len;
  const guint8 *data = message->tree != NULL ? g_bytes_get_data (message->tree, &len) : NULL;
  guint8 seen[NATTER_GROUPS_MAX_MEMBERS] = { 0 };
  GPtrArray *roster;
  GStrvBuilder *builder;
  guint64 id;
  guint author;

  if (data == NULL || len < ROSTER_ID_LEN || len - ROSTER_ID_LEN >= NATTER_GROUPS_MAX_MEMBERS)
    return TREE_INVALID;
  group_roster_id (g);
  memcpy (&id, data, sizeof id);
  roster = g_hash_table_lookup (g->rosters, &id);
  if (roster == NULL)
    return TREE_UNKNOWN;
  author = roster_index_of (roster, message->from);
  if (author == G_MAXUINT || len - ROSTER_ID_LEN != roster->len - 1)
    return TREE_INVALID;
  seen[author] = 1;
  for (gsize i = ROSTER_ID_LEN; i < len; i++)
    {
      if (data[i] >= roster->len || seen[data[i]])
        return TREE_INVALID;
      seen[data[i]] = 1;
    }
  builder = g_strv_builder_new ();
  for (gsize i = ROSTER_ID_LEN; i < len; i++)
    g_strv_builder_add (builder, g_ptr_array_index (roster, data[i]));
  *out_to = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);
  return TREE_OK;
}

/* Sends to node @index, or, when it cannot be reached, to its children in
 * its place. */
static void
tree_send_to (NatterGroups *self,
              Group        *g,
              Inflight     *inflight,
              guint         index,
              gboolean      own)
{
  guint n_nodes = g_strv_length (inflight->to) + 1;
  const char *peer = inflight->to[index - 1];

  if (strcmp (peer, self->self_id) != 0 && group_is_member (g, peer) &&
      peer_connected (self, peer) && groups_send (self, peer, inflight->wire))
    {
      gsize size = g_bytes_get_size (inflight->wire);

      if (own)
        {
          self->stats.own_copies++;
          self->stats.own_bytes += size;
        }
      else
        {
          self->stats.forwarded++;
          self->stats.forwarded_bytes += size;
        }
      g_array_append_val (inflight->pending, index);
      inflight->deadline_us = MAX (inflight->deadline_us,
                                   now_us () + (gint64) ACK_TIMEOUT_MS * 1000 *
                                   (tree_height (index, n_nodes, g->fanout) + 1));
      return;
    }
  for (guint64 c = (guint64) g->fanout * index + 1;
       c <= (guint64) g->fanout * index + g->fanout && c < n_nodes; c++)
    tree_send_to (self, g, inflight, (guint) c, own);
}

static void
inflight_finish (NatterGroups *self,
                 Group        *g,
                 Inflight     *inflight)
{
  if (inflight->parent != NULL)
    send_ack (self, g, inflight->parent, inflight->msg_id);
  g_hash_table_remove (g->inflight, inflight->msg_id);
}

/* Sends @wire to our children in its tree.  @parent is acknowledged when
 * the subtree has answered (at once when we have no children). */
static void
tree_forward (NatterGroups *self,
              Group        *g,
              const char   *msg_id,
              GBytes       *wire,
              GStrv         to,
              guint         my_index,
              const char   *parent,
              gboolean      own)
{
  guint n_nodes = g_strv_length (to) + 1;
  Inflight *inflight = g_new0 (Inflight, 1);

  inflight->msg_id = g_strdup (msg_id);
  inflight->wire = g_bytes_ref (wire);
  inflight->to = g_strdupv (to);
  inflight->my_index = my_index;
  inflight->parent = g_strdup (parent);
  inflight->pending = g_array_new (FALSE, FALSE, sizeof (guint));

  for (guint64 c = (guint64) g->fanout * my_index + 1;
       c <= (guint64) g->fanout * my_index + g->fanout && c < n_nodes; c++)
    tree_send_to (self, g, inflight, (guint) c, own);

  if (inflight->pending->len == 0)
    {
      if (parent != NULL)
        send_ack (self, g, parent, msg_id);
      inflight_free (inflight);
      return;
    }
  if (g_hash_table_contains (g->inflight, msg_id))
    {
      inflight_free (inflight);
      return;
    }
  g_hash_table_insert (g->inflight, inflight->msg_id, inflight);
  g_queue_push_tail (&g->inflight_order, g_strdup (msg_id));
  while (g->inflight_order.length > MAX_INFLIGHT)
    {
      g_autofree char *old = g_queue_pop_head (&g->inflight_order);

      g_hash_table_remove (g->inflight, old);
    }
}

/* The children at @positions of @inflight did not answer: serve theirs. */
static void
inflight_take_over (NatterGroups *self,
                    Group        *g,
                    Inflight     *inflight,
                    const char   *lost_peer)
{
  guint n_nodes = g_strv_length (inflight->to) + 1;
  g_autoptr(GArray) missing = g_array_new (FALSE, FALSE, sizeof (guint));
  gint64 now = now_us ();

  for (guint i = 0; i < inflight->pending->len;)
    {
      guint index = g_array_index (inflight->pending, guint, i);

      if (lost_peer == NULL ? inflight->deadline_us <= now
                            : strcmp (inflight->to[index - 1], lost_peer) == 0)
        {
          g_array_append_val (missing, index);
          g_array_remove_index_fast (inflight->pending, i);
        }
      else
        i++;
    }
  if (missing->len == 0)
    return;
  inflight->deadline_us = 0;
  for (guint i = 0; i < missing->len; i++)
    {
      guint index = g_array_index (missing, guint, i);

      self->stats.repairs++;
      for (guint64 c = (guint64) g->fanout * index + 1;
           c <= (guint64) g->fanout * index + g->fanout && c < n_nodes; c++)
        tree_send_to (self, g, inflight, (guint) c, inflight->parent == NULL);
    }
  /* Children that still wait keep their own deadline. */
  if (inflight->deadline_us == 0)
    inflight->deadline_us = now + ACK_TIMEOUT_MS * 1000;
  if (inflight->pending->len == 0)
    inflight_finish (self, g, inflight);
}

static void
receive_ack (NatterGroups  *self,
             Group         *g,
             const char    *from,
             const char    *msg_id)
{
  Inflight *inflight = msg_id != NULL ? g_hash_table_lookup (g->inflight, msg_id) : NULL;

  if (inflight == NULL)
    return;
  for (guint i = 0; i < inflight->pending->len; i++)
    {
      guint index = g_array_index (inflight->pending, guint, i);

      if (strcmp (inflight->to[index - 1], from) == 0)
        {
          g_array_remove_index_fast (inflight->pending, i);
          break;
        }
    }
  if (inflight->pending->len == 0)
    inflight_finish (self, g, inflight);
}

/* The other members in tree order: connected ones by round-trip time,
 * then the rest by peer ID (they are leaves and get it through sync). */
typedef struct
{
  const char *peer;
  double      rtt;
  gboolean    connected;
} TreeNode;

static gint
compare_tree_nodes (gconstpointer a,
                    gconstpointer b)
{
  const TreeNode *x = a;
  const TreeNode *y = b;

  if (x->connected != y->connected)
    return x->connected ? -1 : 1;
  if (x->rtt != y->rtt)
    return x->rtt < y->rtt ? -1 : 1;
  return strcmp (x->peer, y->peer);
}

static GStrv
tree_order (NatterGroups *self,
            Group        *g)
{
  g_autoptr(GArray) nodes = g_array_new (FALSE, FALSE, sizeof (TreeNode));
  GStrvBuilder *builder = g_strv_builder_new ();
  GStrv to;

  for (guint i = 0; i < g->members->len; i++)
    {
      const char *peer = g_ptr_array_index (g->members, i);
      double *rtt = g_hash_table_lookup (self->rtt, peer);
      TreeNode node = { peer, rtt != NULL ? *rtt : 1e9, peer_connected (self, peer) };

      if (strcmp (peer, self->self_id) != 0)
        g_array_append_val (nodes, node);
    }
  g_array_sort (nodes, compare_tree_nodes);
  for (guint i = 0; i < nodes->len; i++)
    g_strv_builder_add (builder, g_array_index (nodes, TreeNode, i).peer);
  to = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);
  return to;
}

/* }}} */
/* {{{ Groups and peers */

static void
groups_want_peers (NatterGroups *self,
                   Group        *g)
{
  for (guint i = 0; i < g->members->len; i++)
    {
      const char *peer = g_ptr_array_index (g->members, i);

      if (strcmp (peer, self->self_id) == 0 || g_hash_table_contains (self->peers_added, peer))
        continue;
      g_hash_table_add (self->peers_added, g_strdup (peer));
      g_queue_push_tail (&self->peer_queue, g_strdup (peer));
    }
}

/* Hands queued members to the service a few a second: each new peer costs
 * a handful of rendezvous messages, and the server limits their rate. */
static void
groups_pace_peers (NatterGroups *self)
{
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_free);
  gint64 now = now_us ();

  if (now - self->peer_window_us >= G_USEC_PER_SEC)
    {
      self->peer_window_us = now;
      self->peers_in_window = 0;
    }
  while (self->peer_queue.length > 0 && self->peers_in_window < PEERS_PER_SECOND)
    {
      g_ptr_array_add (batch, g_queue_pop_head (&self->peer_queue));
      self->peers_in_window++;
    }
  if (batch->len == 0)
    return;
  g_ptr_array_add (batch, NULL);
  natter_messaging_service_add_group_peers (self->service, (const char * const *) batch->pdata);
}

static Group *
group_new (NatterGroups *self,
           const char   *id,
           const char   *name,
           const char   *admin,
           guint         fanout)
{
  Group *g = g_new0 (Group, 1);

  g->groups = self;
  g->id = g_strdup (id);
  g->name = g_strdup (name);
  g->admin = g_strdup (admin);
  g->fanout = CLAMP (fanout, 1, NATTER_GROUPS_MAX_FANOUT);
  g->members = g_ptr_array_new_with_free_func (g_free);
  g->rosters = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                      (GDestroyNotify) g_ptr_array_unref);
  g_queue_init (&g->roster_order);
  g->roster_stale = TRUE;
  g->ever = str_set_new ();
  g->keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_bytes_unref);
  g->key_hashes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_bytes_unref);
  g->key_members = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_hash_table_unref);
  g->unverified_keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_bytes_unref);
  g->buffer = natter_causal_buffer_new (group_deliver, g, NULL);
  g->ids = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) entry_free);
  g->logs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) author_log_free);
  g->history = g_ptr_array_new ();
  g->parked = g_ptr_array_new ();
  g->inflight = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) inflight_free);
  g_queue_init (&g->inflight_order);
  g->known = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) natter_vector_clock_free);
  g->known_read = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) natter_vector_clock_free);
  g->my_read = natter_vector_clock_new ();
  g->pulls = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g->gaps = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g->owe_summary = str_set_new ();
  g->acks = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
  g->summary_sent = str_time_table_new ();
  g->pending_welcome = str_time_table_new ();
  g->pending_keys = str_time_table_new ();
  g->typing = str_time_table_new ();
  g->unsaved = g_ptr_array_new ();
  g->created_at = g_get_real_time () / 1000;
  g->dirty = TRUE;
  g->members_dirty = TRUE;
  g_hash_table_insert (self->groups, g->id, g);
  return g;
}

static gboolean on_save (gpointer user_data);

/* The group is written to the store soon (with whatever else changed). */
static void
group_mark_dirty (Group *g)
{
  NatterGroups *self = g->groups;

  g->dirty = TRUE;
  if (self->save_source == 0 && !self->shut_down && self->store != NULL)
    self->save_source = g_timeout_add (SAVE_DELAY_MS, on_save, self);
}

static void
group_set_key (Group      *g,
               const char *key_id,
               GBytes     *key)
{
  g_hash_table_insert (g->keys, g_strdup (key_id), g_bytes_ref (key));
  group_mark_dirty (g);
}

static gboolean
check_group (NatterGroups  *self,
             const char    *group_id,
             Group        **out,
             GError       **error)
{
  Group *g = group_id != NULL ? g_hash_table_lookup (self->groups, group_id) : NULL;

  if (self->shut_down)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED, "The messaging service is not running");
      return FALSE;
    }
  if (g == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "No group %s", group_id ? group_id : "");
      return FALSE;
    }
  if (g->removed)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   "You are no longer a member of %s", g->id);
      return FALSE;
    }
  *out = g;
  return TRUE;
}

/* }}} */
/* {{{ Stream: sending */

/* Builds our next stream message (a text or an operation), delivers it
 * to ourselves and sends it down the tree.  Returns its ID. */
static char *
group_send_stream (NatterGroups *self,
                   Group        *g,
                   JsonObject   *content,    /* transfer full */
                   GError      **error)
{
  g_autoptr(NatterMessage) message = natter_message_new (NATTER_MESSAGE_TYPE_GROUP_MESSAGE);
  g_autoptr(NatterVectorClock) clock = NULL;
  g_autoptr(GBytes) wire = NULL;
  g_auto(GStrv) to = NULL;
  NatterVectorClockIter iter;
  GBytes *key = g_hash_table_lookup (g->keys, g->key_id);
  const char *peer;
  guint64 value;
  Entry *entry;

  if (key == NULL)
    {
      json_object_unref (content);
      /* Right after a rotation, until the admin's key frame arrives. */
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                   "The new group key has not arrived yet; try again shortly");
      return NULL;
    }
  clock = natter_causal_buffer_dup_local_clock (g->buffer);
  natter_vector_clock_increment (clock, self->self_id);

  message->from = g_strdup (self->self_id);
  /* The recipients are the tree; `to` names the author. */
  to = tree_order (self, g);
  message->tree = tree_encode (g, to);
  g_strfreev (message->to);
  message->to = g_new0 (char *, 2);
  message->to[0] = g_strdup (self->self_id);
  message->group = g_strdup (g->id);
  message->sequence = natter_vector_clock_get (clock, self->self_id);
  message->ttl = STREAM_TTL_MS;
  natter_vector_clock_iter_init (&iter, clock);
  while (natter_vector_clock_iter_next (&iter, &peer, &value))
    natter_message_set_clock (message, peer, value);
  json_object_unref (message->content);
  message->content = json_object_ref (content);

  if (!natter_message_encrypt_for_group (message, g_bytes_get_data (key, NULL), g_bytes_get_size (key),
                                         g->key_id, error) ||
      !natter_message_sign (message, self->identity, error) ||
      !(wire = natter_message_encode (message, error)))
    {
      json_object_unref (content);
      return NULL;
    }

  entry = g_new0 (Entry, 1);
  entry->msg_id = g_strdup (message->id);
  entry->author = g_strdup (self->self_id);
  entry->counter = message->sequence;
  entry->timestamp = message->timestamp;
  entry->key_id = g_strdup (g->key_id);
  entry->wire = g_bytes_ref (wire);
  entry->clock = natter_vector_clock_copy (clock);
  entry->content = content;
  g_hash_table_insert (g->ids, entry->msg_id, entry);
  self->stats.sent++;

  /* Down the tree first, then to ourselves (which may change the state,
   * a removal say, after it was sent under the old one). */
  if (to[0] != NULL)
    tree_forward (self, g, entry->msg_id, wire, to, 0, NULL, TRUE);
  /* Delivered at once, or right after the delivery that is running (an
   * operation sent from a delivery callback). */
  natter_causal_buffer_add_clock (g->buffer, self->self_id, clock, entry);
  return g_strdup (message->id);
}

static JsonObject *
op_content (const char  *op,
            JsonObject **out_metadata)
{
  JsonObject *content = json_object_new ();
  JsonObject *metadata = json_object_new ();

  json_object_set_string_member (content, "text", "");
  json_object_set_string_member (metadata, "op", op);
  json_object_set_object_member (content, "metadata", metadata);
  *out_metadata = metadata;
  return content;
}

/* }}} */
/* {{{ Keys and welcomes */

static void
send_key (NatterGroups *self,
          Group        *g,
          const char   *peer,
          const char   *key_id)
{
  GBytes *key = g_hash_table_lookup (g->keys, key_id);
  g_autofree char *encoded = NULL;
  g_autofree char *pending = g_strdup_printf ("%s\n%s", peer, key_id);

  /* A key we just made is known before its operation is delivered. */
  if (key == NULL && strcmp (g->admin, self->self_id) == 0)
    key = g_hash_table_lookup (g->unverified_keys, key_id);
  JsonObject *metadata;
  JsonObject *content;

  if (key == NULL)
    return;
  encoded = bytes_to_base64 (key);
  content = ctl_content ("key", &metadata);
  json_object_set_string_member (metadata, "keyId", key_id);
  json_object_set_string_member (metadata, "key", encoded);
  if (send_control (self, g, peer, content, TRUE))
    g_hash_table_remove (g->pending_keys, pending);
  else
    time_table_set (g->pending_keys, pending, 0);
}

static void
send_welcome (NatterGroups *self,
              Group        *g,
              const char   *peer)
{
  g_autoptr(NatterVectorClock) clock = natter_causal_buffer_dup_local_clock (g->buffer);
  GBytes *key = g_hash_table_lookup (g->keys, g->key_id);
  g_autofree char *encoded = NULL;
  JsonObject *metadata;
  JsonObject *content;
  JsonArray *members = json_array_new ();

  if (key == NULL)
    {
      json_array_unref (members);
      return;
    }
  encoded = bytes_to_base64 (key);
  for (guint i = 0; i < g->members->len; i++)
    json_array_add_string_element (members, g_ptr_array_index (g->members, i));
  content = ctl_content ("welcome", &metadata);
  json_object_set_string_member (metadata, "name", g->name);
  json_object_set_string_member (metadata, "admin", g->admin);
  json_object_set_int_member (metadata, "fanout", g->fanout);
  json_object_set_array_member (metadata, "members", members);
  json_object_set_string_member (metadata, "keyId", g->key_id);
  json_object_set_string_member (metadata, "key", encoded);
  json_object_set_object_member (metadata, "clock", clock_to_json (clock));
  if (send_control (self, g, peer, content, TRUE))
    time_table_set (g->pending_welcome, peer, now_us () + (gint64) WELCOME_EVERY_MS * 1000);
  else
    time_table_set (g->pending_welcome, peer, 0);
}

static void
group_request_key (NatterGroups *self,
                   Group        *g,
                   const char   *key_id,
                   const char   *hint_peer)
{
  JsonObject *metadata;
  JsonObject *content;
  gint64 now = now_us ();
  const char *asked[3] = { hint_peer, g->admin, NULL };

  if (now - g->last_key_request_us < (gint64) KEY_REQUEST_EVERY_MS * 1000)
    return;
  g->last_key_request_us = now;
  for (guint i = 0; i < 2; i++)
    {
      if (asked[i] == NULL || strcmp (asked[i], self->self_id) == 0 ||
          (i == 1 && g_strcmp0 (asked[0], asked[1]) == 0))
        continue;
      content = ctl_content ("keyreq", &metadata);
      json_object_set_string_member (metadata, "keyId", key_id);
      send_control (self, g, asked[i], content, FALSE);
    }
}

/* }}} */
/* {{{ Stream: delivery */

static gint
compare_order (const Entry *a,
               const Entry *b)
{
  if (a->clock_sum != b->clock_sum)
    return a->clock_sum < b->clock_sum ? -1 : 1;
  if (a->timestamp != b->timestamp)
    return a->timestamp < b->timestamp ? -1 : 1;
  {
    int c = strcmp (a->author, b->author);

    if (c != 0)
      return c;
  }
  return a->counter < b->counter ? -1 : a->counter > b->counter;
}

static void
history_insert (Group *g,
                Entry *entry)
{
  guint lo = 0, hi = g->history->len;

  /* Nearly always at the end. */
  if (hi > 0 && compare_order (g_ptr_array_index (g->history, hi - 1), entry) < 0)
    lo = hi;
  while (lo < hi)
    {
      guint mid = (lo + hi) / 2;

      if (compare_order (g_ptr_array_index (g->history, mid), entry) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  g_ptr_array_insert (g->history, lo, entry);
  entry->shown = TRUE;
}

static NatterGroupMessage *
entry_to_message (Group *g,
                  Entry *entry)
{
  NatterGroupMessage *message = g_new0 (NatterGroupMessage, 1);

  message->msg_id = g_strdup (entry->msg_id);
  message->group_id = g_strdup (g->id);
  message->sender = g_strdup (entry->author);
  message->kind = g_strdup (entry->kind);
  message->text = g_strdup (entry->text);
  message->timestamp = entry->timestamp;
  message->counter = entry->counter;
  message->outgoing = strcmp (entry->author, g->groups->self_id) == 0;
  return message;
}

static void
reject_op (Group      *g,
           Entry      *entry,
           const char *reason)
{
  g->groups->stats.ops_rejected++;
  g_debug ("Group %s: operation %s by %s rejected: %s", g->id, entry->msg_id, entry->author, reason);
  g_signal_emit (g->groups, signals[SIGNAL_OPERATION_REJECTED], 0, g->id, entry->author, reason);
}

static gboolean
is_member_id (Group      *g,
              const char *peer)
{
  return peer != NULL && natter_peer_id_is_valid (peer);
}

/* The admin rotates the key: a new key under an operation that carries its
 * hash, then the key to every remaining member, pairwise. */
static void
group_rotate (NatterGroups *self,
              Group        *g,
              const char   *op,
              const char   *peer)
{
  g_autoptr(GBytes) key = new_key ();
  g_autoptr(GBytes) hash = key_hash (key);
  g_autofree char *key_id = new_key_id ();
  g_autofree char *hash64 = bytes_to_base64 (hash);
  g_autofree char *msg_id = NULL;
  g_autoptr(GError) error = NULL;
  JsonObject *metadata;
  JsonObject *content = op_content (op, &metadata);

  if (peer != NULL)
    json_object_set_string_member (metadata, "peer", peer);
  json_object_set_string_member (metadata, "keyId", key_id);
  json_object_set_string_member (metadata, "keyHash", hash64);
  /* Known to us before the operation is delivered to ourselves. */
  g_hash_table_insert (g->unverified_keys, g_strdup (key_id), g_bytes_ref (key));
  msg_id = group_send_stream (self, g, content, &error);
  if (msg_id == NULL)
    {
      g_warning ("Could not rotate the key of %s: %s", g->id, error->message);
      return;
    }
  for (guint i = 0; i < g->members->len; i++)
    {
      const char *member = g_ptr_array_index (g->members, i);

      if (strcmp (member, self->self_id) != 0)
        send_key (self, g, member, key_id);
    }
}

/* Applies a delivered operation, or rejects it; TRUE when applied. */
static gboolean
group_apply_op (Group      *g,
                Entry      *entry,
                JsonObject *metadata,
                char      **out_text)
{
  NatterGroups *self = g->groups;
  const char *op = json_get_string (metadata, "op");
  const char *peer = json_get_string (metadata, "peer");
  gboolean from_admin = strcmp (entry->author, g->admin) == 0;

  if (g_strcmp0 (op, "invite") == 0)
    {
      if (!from_admin)
        return reject_op (g, entry, "only the admin may invite"), FALSE;
      if (!is_member_id (g, peer) || group_is_member (g, peer) ||
          g->members->len >= NATTER_GROUPS_MAX_MEMBERS)
        return reject_op (g, entry, "bad invitation"), FALSE;
      group_add_member (g, peer);
      {
        GHashTable *allowed = g_hash_table_lookup (g->key_members, g->key_id);

        if (allowed != NULL)
          g_hash_table_add (allowed, g_strdup (peer));
      }
      *out_text = g_strdup_printf ("invite %s", peer);
      return TRUE;
    }
  if (g_strcmp0 (op, "remove") == 0 || g_strcmp0 (op, "rotate") == 0)
    {
      gboolean remove = g_strcmp0 (op, "remove") == 0;
      const char *key_id = json_get_string (metadata, "keyId");
      g_autoptr(GBytes) hash = base64_to_bytes (json_get_string (metadata, "keyHash"), 32);
      GBytes *key;

      if (!from_admin)
        return reject_op (g, entry, remove ? "only the admin may remove" : "only the admin may rotate"), FALSE;
      if (key_id == NULL || !natter_message_id_is_valid (key_id) || hash == NULL ||
          g_hash_table_contains (g->key_hashes, key_id) ||
          (remove && (peer == NULL || !group_is_member (g, peer) || strcmp (peer, g->admin) == 0)))
        return reject_op (g, entry, "bad removal"), FALSE;
      if (remove)
        group_remove_member (g, peer);
      g_hash_table_insert (g->key_hashes, g_strdup (key_id), g_bytes_ref (hash));
      g_hash_table_insert (g->key_members, g_strdup (key_id), members_snapshot (g));
      g_free (g->key_id);
      g->key_id = g_strdup (key_id);
      key = g_hash_table_lookup (g->unverified_keys, key_id);
      if (key != NULL)
        {
          g_autoptr(GBytes) got = key_hash (key);

          if (g_bytes_equal (got, hash))
            group_set_key (g, key_id, key);
          g_hash_table_remove (g->unverified_keys, key_id);
        }
      if (remove && strcmp (peer, self->self_id) == 0)
        g->removed = TRUE;
      *out_text = remove ? g_strdup_printf ("remove %s", peer) : g_strdup ("rotate");
      return TRUE;
    }
  if (g_strcmp0 (op, "admin") == 0)
    {
      if (!from_admin)
        return reject_op (g, entry, "only the admin may hand over"), FALSE;
      if (peer == NULL || !group_is_member (g, peer))
        return reject_op (g, entry, "bad handover"), FALSE;
      g_free (g->admin);
      g->admin = g_strdup (peer);
      g->members_dirty = TRUE;   /* the roles */
      *out_text = g_strdup_printf ("admin %s", peer);
      return TRUE;
    }
  if (g_strcmp0 (op, "leave") == 0)
    {
      if (!group_is_member (g, entry->author) || from_admin)
        return reject_op (g, entry, "cannot leave"), FALSE;
      group_remove_member (g, entry->author);
      if (strcmp (entry->author, self->self_id) == 0)
        g->removed = TRUE;
      *out_text = g_strdup ("leave");
      return TRUE;
    }
  return reject_op (g, entry, "unknown operation"), FALSE;
}

static void
group_deliver (NatterCausalBuffer *buffer,
               guint               sender,
               const guint64      *clock,
               gsize               clock_len,
               gpointer            item,
               gpointer            user_data)
{
  Group *g = user_data;
  NatterGroups *self = g->groups;
  Entry *entry = item;
  AuthorLog *log;
  gboolean own = strcmp (entry->author, self->self_id) == 0;
  gboolean changed = FALSE;
  gboolean rotate_for_leave = FALSE;

  entry->delivered = TRUE;
  entry->delivered_us = now_us ();
  entry->clock_sum = 0;
  for (gsize i = 0; i < clock_len; i++)
    entry->clock_sum += clock[i];
  self->stats.delivered++;

  log = g_hash_table_lookup (g->logs, entry->author);
  if (log == NULL)
    {
      log = g_new0 (AuthorLog, 1);
      log->base = entry->counter - 1;
      log->entries = g_ptr_array_new ();
      g_hash_table_insert (g->logs, g_strdup (entry->author), log);
    }
  if (log->base + 1 + log->entries->len == entry->counter)
    g_ptr_array_add (log->entries, entry);

  if (entry->content != NULL)
    {
      JsonObject *metadata = json_get_object (entry->content, "metadata");
      GHashTable *allowed = g_hash_table_lookup (g->key_members, entry->key_id);

      if (allowed != NULL && !g_hash_table_contains (allowed, entry->author))
        {
          self->stats.rejected++;
          g_debug ("Group %s: %s is not a member under %s", g->id, entry->author, entry->key_id);
        }
      else if (json_get_string (metadata, "op") != NULL)
        {
          char *text = NULL;
          gboolean leave = g_strcmp0 (json_get_string (metadata, "op"), "leave") == 0;

          if (group_apply_op (g, entry, metadata, &text))
            {
              entry->kind = g_strdup ("event");
              entry->text = text;
              history_insert (g, entry);
              changed = TRUE;
              rotate_for_leave = leave && strcmp (g->admin, self->self_id) == 0 && !g->removed;
            }
        }
      else
        {
          entry->kind = g_strdup ("text");
          entry->text = g_strdup (json_get_string (entry->content, "text"));
          history_insert (g, entry);
        }
    }

  if (!own)
    g_hash_table_add (g->owe_summary, g_strdup (entry->author));
  if (entry->shown && !own)
    {
      g_autoptr(NatterGroupMessage) message = entry_to_message (g, entry);

      /* A message ends its author's typing. */
      if (g_hash_table_remove (g->typing, entry->author))
        g_signal_emit (self, signals[SIGNAL_TYPING_CHANGED], 0, g->id, entry->author, FALSE);
      g_signal_emit (self, signals[SIGNAL_MESSAGE_RECEIVED], 0, message);
    }
  if (changed)
    {
      groups_want_peers (self, g);
      g_signal_emit (self, signals[SIGNAL_GROUP_CHANGED], 0, g->id);
    }
  if (rotate_for_leave)
    group_rotate (self, g, "rotate", NULL);
  g_ptr_array_add (g->unsaved, entry);
  group_mark_dirty (g);
  schedule_summaries (self);
}

/* Decrypts a parked or new entry and hands it to the buffer. */
static void
group_enqueue (NatterGroups  *self,
               Group         *g,
               Entry         *entry,
               NatterMessage *message)
{
  GBytes *key = g_hash_table_lookup (g->keys, entry->key_id);

  if (message != NULL && key != NULL)
    {
      g_autoptr(GError) error = NULL;

      if (!natter_message_decrypt_for_group (message, g_bytes_get_data (key, NULL), g_bytes_get_size (key),
                                             entry->key_id, &error))
        {
          /* Signed by a member, but not sealed with the key it names:
           * delivered as unreadable so that the author's later messages
           * are not held up. */
          g_debug ("Group message %s does not open: %s", entry->msg_id, error->message);
          self->stats.rejected++;
        }
      else
        entry->content = json_object_ref (message->content);
    }
  natter_causal_buffer_add_clock (g->buffer, entry->author, entry->clock, entry);
}

static void
group_unpark (NatterGroups *self,
              Group        *g,
              gboolean      force)
{
  gint64 now = now_us ();

  for (guint i = 0; i < g->parked->len;)
    {
      Entry *entry = g_ptr_array_index (g->parked, i);
      GBytes *key = g_hash_table_lookup (g->keys, entry->key_id);

      if (key != NULL || (force && now - entry->since_us > (gint64) KEY_WAIT_MS * 1000))
        {
          g_autoptr(NatterMessage) message = NULL;

          g_ptr_array_remove_index (g->parked, i);
          if (key != NULL)
            message = natter_message_decode (entry->wire, NATTER_MESSAGE_DECODE_NONE, NULL);
          group_enqueue (self, g, entry, message);
        }
      else
        i++;
    }
}

static void
receive_stream (NatterGroups  *self,
                Group         *g,
                const char    *from,
                NatterMessage *message,
                GBytes        *bytes)
{
  g_autoptr(NatterVectorClock) clock = natter_vector_clock_new ();
  g_auto(GStrv) to = NULL;
  GHashTableIter iter;
  gpointer key, value;
  guint my_index = G_MAXUINT, from_index = G_MAXUINT;
  gboolean from_ancestor;
  TreeResult tree;
  Entry *entry;

  if (g->removed)
    return;
  if (!g_hash_table_contains (g->ever, message->from) || message->sequence == 0 ||
      natter_message_get_clock (message, message->from) != message->sequence ||
      message->key_id == NULL || message->to[1] != NULL || strcmp (message->to[0], message->from) != 0 ||
      (tree = tree_decode (g, message, &to)) == TREE_INVALID)
    {
      self->stats.rejected++;
      return;
    }
  /* A tree over a member list we do not know is not ours to forward:
   * our parent serves our children when we do not acknowledge. */
  if (tree == TREE_OK)
    {
      my_index = tree_index_of (to, message->from, self->self_id);
      from_index = tree_index_of (to, message->from, from);
    }
  from_ancestor = my_index != G_MAXUINT && from_index != G_MAXUINT &&
                  tree_is_ancestor (from_index, my_index, g->fanout);

  if (g_hash_table_contains (g->ids, message->id) ||
      message->sequence <= local_of (g, message->from))
    {
      self->stats.duplicates++;
      if (from_ancestor)
        send_ack (self, g, from, message->id);
      return;
    }
  if (natter_causal_buffer_get_n_waiting (g->buffer) + g->parked->len >= MAX_WAITING)
    {
      self->stats.rejected++;
      return;   /* sync brings it again once the backlog drains */
    }

  g_hash_table_iter_init (&iter, message->vector_clock);
  while (g_hash_table_iter_next (&iter, &key, &value))
    if (g_hash_table_contains (g->ever, key))
      natter_vector_clock_set (clock, key, *(guint64 *) value);
    else if (*(guint64 *) value > 0)
      {
        /* Depends on someone we never heard of: we cannot order it. */
        self->stats.rejected++;
        return;
      }

  if (!from_ancestor)
    self->stats.pulled++;
  else
    tree_forward (self, g, message->id, bytes, to, my_index, from, FALSE);

  entry = g_new0 (Entry, 1);
  entry->msg_id = g_strdup (message->id);
  entry->author = g_strdup (message->from);
  entry->counter = message->sequence;
  entry->timestamp = message->timestamp;
  entry->key_id = g_strdup (message->key_id);
  entry->wire = g_bytes_ref (bytes);
  entry->clock = g_steal_pointer (&clock);
  g_hash_table_insert (g->ids, entry->msg_id, entry);

  if (!g_hash_table_contains (g->keys, entry->key_id))
    {
      entry->since_us = now_us ();
      g_ptr_array_add (g->parked, entry);
      group_request_key (self, g, entry->key_id, from);
      return;
    }
  group_enqueue (self, g, entry, message);
}

/* }}} */
/* {{{ Sync */

static void
group_send_summary (Group      *g,
                    const char *peer)
{
  NatterGroups *self = g->groups;
  g_autoptr(NatterVectorClock) have = natter_causal_buffer_dup_local_clock (g->buffer);
  JsonObject *metadata;
  JsonObject *content = ctl_content ("summary", &metadata);

  json_object_set_object_member (metadata, "have", clock_to_json (have));
  json_object_set_object_member (metadata, "read", clock_to_json (g->my_read));
  if (send_control (self, g, peer, content, FALSE))
    time_table_set (g->summary_sent, peer, now_us ());
  g_hash_table_remove (g->owe_summary, peer);
}

static gboolean
on_summary_timeout (gpointer user_data)
{
  NatterGroups *self = user_data;
  GHashTableIter iter;
  Group *g;

  self->summary_source = 0;
  g_hash_table_iter_init (&iter, self->groups);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &g))
    {
      g_autoptr(GPtrArray) peers = g_ptr_array_new_with_free_func (g_free);
      GHashTableIter owed;
      const char *peer;

      g_hash_table_iter_init (&owed, g->owe_summary);
      while (g_hash_table_iter_next (&owed, (gpointer *) &peer, NULL))
        g_ptr_array_add (peers, g_strdup (peer));
      for (guint i = 0; i < peers->len; i++)
        {
          if (!g->removed && group_is_member (g, g_ptr_array_index (peers, i)))
            group_send_summary (g, g_ptr_array_index (peers, i));
          g_hash_table_remove (g->owe_summary, g_ptr_array_index (peers, i));
        }
      group_update_syncing (g);
    }
  return G_SOURCE_REMOVE;
}

/* After deliveries: sync state (and pulls) soon, receipts a bit later. */
static gboolean
on_sync_idle (gpointer user_data)
{
  NatterGroups *self = user_data;
  GHashTableIter iter;
  Group *g;

  self->summary_idle = 0;
  g_hash_table_iter_init (&iter, self->groups);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &g))
    group_update_syncing (g);
  return G_SOURCE_REMOVE;
}

static void
schedule_summaries (NatterGroups *self)
{
  if (self->shut_down)
    return;
  if (self->summary_idle == 0)
    self->summary_idle = g_idle_add_full (G_PRIORITY_LOW, on_sync_idle, self, NULL);
  if (self->summary_source == 0)
    self->summary_source = g_timeout_add (SUMMARY_DELAY_MS, on_summary_timeout, self);
}

/* Whether we delivered a message of @author in the last PULL_GRACE_MS. */
static gboolean
author_flowing (Group      *g,
                const char *author,
                gint64      now)
{
  AuthorLog *log = g_hash_table_lookup (g->logs, author);
  Entry *last;

  if (log == NULL || log->entries->len == 0)
    return FALSE;
  last = g_ptr_array_index (log->entries, log->entries->len - 1);
  return now - last->delivered_us < (gint64) PULL_GRACE_MS * 1000;
}

/* Asks connected members for what they have and we lack. */
static void
group_pull (Group *g)
{
  NatterGroups *self = g->groups;
  g_autoptr(GHashTable) requests = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                                          (GDestroyNotify) json_object_unref);
  g_autoptr(GPtrArray) peers = g_ptr_array_new ();
  GHashTableIter iter;
  const char *peer;
  NatterVectorClock *have;
  gint64 now = now_us ();
  guint budget = PULL_MAX;

  if (g->removed)
    return;
  g_hash_table_iter_init (&iter, g->known);
  while (g_hash_table_iter_next (&iter, (gpointer *) &peer, (gpointer *) &have))
    if (group_is_member (g, peer) && peer_connected (self, peer) &&
        !g_hash_table_contains (self->blocked, peer))
      g_ptr_array_add (peers, (gpointer) peer);
  /* Start at a random member so that the load spreads. */
  for (guint n = 0, start = peers->len ? g_random_int_range (0, peers->len) : 0; n < peers->len; n++)
    {
      const char *source = g_ptr_array_index (peers, (start + n) % peers->len);
      NatterVectorClockIter clock_iter;
      const char *author;
      guint64 value;

      have = g_hash_table_lookup (g->known, source);
      natter_vector_clock_iter_init (&clock_iter, have);
      while (budget > 0 && natter_vector_clock_iter_next (&clock_iter, &author, &value))
        {
          guint64 local = local_of (g, author);
          Pull *pull = g_hash_table_lookup (g->pulls, author);
          guint64 upto;

          if (value <= local)
            continue;
          if (pull != NULL && pull->deadline_us > now && pull->upto > local)
            continue;
          /* While an author's messages keep arriving, the few we lack
           * are most likely still on their way down the tree: they are
           * pulled only if still missing PULL_GRACE_MS after we first
           * learned of them. */
          if (value - local <= PULL_AT_ONCE && author_flowing (g, author, now))
            {
              Pull *gap = g_hash_table_lookup (g->gaps, author);

              if (gap == NULL || gap->upto <= local)
                {
                  gap = g_new0 (Pull, 1);
                  gap->upto = value;
                  gap->deadline_us = now + (gint64) PULL_GRACE_MS * 1000;
                  g_hash_table_insert (g->gaps, g_strdup (author), gap);
                }
              if (gap->deadline_us > now)
                continue;
            }
          upto = MIN (value, local + budget);
          budget -= (guint) (upto - local);
          {
            JsonObject *ranges = g_hash_table_lookup (requests, source);
            JsonArray *range = json_array_new ();

            if (ranges == NULL)
              {
                ranges = json_object_new ();
                g_hash_table_insert (requests, (gpointer) source, ranges);
              }
            json_array_add_int_element (range, (gint64) local + 1);
            json_array_add_int_element (range, (gint64) upto);
            json_object_set_array_member (ranges, author, range);
          }
          pull = g_new0 (Pull, 1);
          pull->upto = upto;
          pull->deadline_us = now + (gint64) PULL_TIMEOUT_MS * 1000;
          g_hash_table_insert (g->pulls, g_strdup (author), pull);
        }
    }

  g_hash_table_iter_init (&iter, requests);
  {
    JsonObject *ranges;

    while (g_hash_table_iter_next (&iter, (gpointer *) &peer, (gpointer *) &ranges))
      {
        JsonObject *metadata;
        JsonObject *content = ctl_content ("pull", &metadata);

        json_object_set_object_member (metadata, "ranges", json_object_ref (ranges));
        if (send_control (self, g, peer, content, FALSE))
          self->stats.pulls_sent++;
      }
  }
}

static void
group_update_syncing (Group *g)
{
  NatterGroups *self = g->groups;
  gboolean syncing = FALSE;
  GHashTableIter iter;
  const char *peer;
  NatterVectorClock *have;

  if (!g->removed)
    {
      syncing = natter_causal_buffer_get_n_waiting (g->buffer) > 0 || g->parked->len > 0;
      g_hash_table_iter_init (&iter, g->known);
      while (!syncing && g_hash_table_iter_next (&iter, (gpointer *) &peer, (gpointer *) &have))
        {
          NatterVectorClockIter clock_iter;
          const char *author;
          guint64 value;

          if (!group_is_member (g, peer))
            continue;
          natter_vector_clock_iter_init (&clock_iter, have);
          while (natter_vector_clock_iter_next (&clock_iter, &author, &value))
            if (value > local_of (g, author))
              {
                syncing = TRUE;
                break;
              }
        }
    }
  if (syncing != g->syncing)
    {
      g->syncing = syncing;
      g_signal_emit (self, signals[SIGNAL_SYNC_CHANGED], 0, g->id, syncing);
    }
  if (syncing)
    group_pull (g);
}

/* How many members other than the author have (or, with @read, have
 * read) the author's message @counter; their IDs go to @who. */
static guint
count_having (Group        *g,
              gboolean      read,
              const char   *author,
              guint64       counter,
              GStrvBuilder *who)
{
  const char *self_id = g->groups->self_id;
  guint n = 0;

  for (guint i = 0; i < g->members->len; i++)
    {
      const char *member = g_ptr_array_index (g->members, i);
      gboolean has;

      if (strcmp (member, author) == 0)
        continue;
      if (strcmp (member, self_id) == 0)
        has = read ? natter_vector_clock_get (g->my_read, author) >= counter
                   : local_of (g, author) >= counter;
      else
        {
          NatterVectorClock *have = g_hash_table_lookup (g->known, member);
          NatterVectorClock *seen = g_hash_table_lookup (g->known_read, member);

          has = seen != NULL && natter_vector_clock_get (seen, author) >= counter;
          if (!read)
            has |= have != NULL && natter_vector_clock_get (have, author) >= counter;
        }
      if (has)
        {
          n++;
          if (who != NULL)
            g_strv_builder_add (who, member);
        }
    }
  return n;
}

/* Whether a member whose delivered clock is @have lacks messages that are
 * not just on their way to it: more than a few of an author, or one that
 * we delivered PULL_GRACE_MS ago or earlier. */
static gboolean
group_peer_lacks (Group             *g,
                  NatterVectorClock *have)
{
  g_autoptr(NatterVectorClock) local = natter_causal_buffer_dup_local_clock (g->buffer);
  gint64 old = now_us () - (gint64) PULL_GRACE_MS * 1000;
  NatterVectorClockIter iter;
  const char *author;
  guint64 value;

  natter_vector_clock_iter_init (&iter, local);
  while (natter_vector_clock_iter_next (&iter, &author, &value))
    {
      guint64 theirs = natter_vector_clock_get (have, author);
      AuthorLog *log;
      Entry *next;

      if (value <= theirs)
        continue;
      if (value - theirs > PULL_AT_ONCE)
        return TRUE;
      log = g_hash_table_lookup (g->logs, author);
      if (log == NULL || theirs < log->base || theirs - log->base >= log->entries->len)
        return TRUE;
      next = g_ptr_array_index (log->entries, theirs - log->base);
      if (next->delivered_us <= old)
        return TRUE;
    }
  return FALSE;
}

static void
receive_summary (NatterGroups *self,
                 Group        *g,
                 const char   *from,
                 JsonObject   *metadata)
{
  g_autoptr(NatterVectorClock) have = clock_from_json (g, json_get_object (metadata, "have"));
  g_autoptr(NatterVectorClock) read = clock_from_json (g, json_get_object (metadata, "read"));
  NatterVectorClock *old = g_hash_table_lookup (g->known, from);
  NatterVectorClock *old_read = g_hash_table_lookup (g->known_read, from);
  guint64 before = old != NULL ? natter_vector_clock_get (old, self->self_id) : 0;
  guint64 before_read = old_read != NULL ? natter_vector_clock_get (old_read, self->self_id) : 0;
  guint64 after, after_read;
  gboolean lacks = FALSE;
  AuthorLog *log;

  g_hash_table_remove (g->pending_welcome, from);
  if (old == NULL)
    {
      old = natter_vector_clock_new ();
      g_hash_table_insert (g->known, g_strdup (from), old);
    }
  natter_vector_clock_merge (old, have);
  if (old_read == NULL)
    {
      old_read = natter_vector_clock_new ();
      g_hash_table_insert (g->known_read, g_strdup (from), old_read);
    }
  natter_vector_clock_merge (old_read, read);

  /* Receipts for our own messages. */
  after = natter_vector_clock_get (old, self->self_id);
  after_read = natter_vector_clock_get (old_read, self->self_id);
  log = g_hash_table_lookup (g->logs, self->self_id);
  for (guint64 c = MIN (before, before_read) + 1; log != NULL && c <= MAX (after, after_read); c++)
    {
      Entry *entry;

      if (c <= log->base || c - log->base - 1 >= log->entries->len)
        continue;
      if (!(c > before && c <= after) && !(c > before_read && c <= after_read))
        continue;
      entry = g_ptr_array_index (log->entries, c - log->base - 1);
      if (!entry->shown)
        continue;
      g_signal_emit (self, signals[SIGNAL_RECEIPTS_CHANGED], 0, g->id, entry->msg_id,
                     count_having (g, FALSE, self->self_id, c, NULL),
                     count_having (g, TRUE, self->self_id, c, NULL),
                     g->members->len - 1);
    }

  /* It lacks something we have: tell it, so it pulls. */
  lacks = group_peer_lacks (g, have);
  if (lacks && now_us () - time_table_get (g->summary_sent, from) > (gint64) SUMMARY_REPLY_MS * 1000)
    group_send_summary (g, from);
  group_update_syncing (g);
}

static void
receive_pull (NatterGroups *self,
              Group        *g,
              const char   *from,
              JsonObject   *metadata)
{
  JsonObject *ranges = json_get_object (metadata, "ranges");
  JsonObjectIter iter;
  const char *author;
  JsonNode *node;
  guint budget = PULL_MAX;

  if (ranges == NULL)
    return;
  json_object_iter_init (&iter, ranges);
  while (budget > 0 && json_object_iter_next (&iter, &author, &node))
    {
      AuthorLog *log = g_hash_table_lookup (g->logs, author);
      JsonArray *range;
      gint64 first, last;

      if (log == NULL || !JSON_NODE_HOLDS_ARRAY (node))
        continue;
      range = json_node_get_array (node);
      if (json_array_get_length (range) != 2 ||
          !json_node_is_int (json_array_get_element (range, 0)) ||
          !json_node_is_int (json_array_get_element (range, 1)))
        continue;
      first = json_array_get_int_element (range, 0);
      last = json_array_get_int_element (range, 1);
      if (first < 1 || last < first)
        continue;
      for (gint64 c = MAX (first, (gint64) log->base + 1); c <= last && budget > 0; c++)
        {
          Entry *entry;

          if ((guint64) c - log->base - 1 >= log->entries->len)
            break;
          entry = g_ptr_array_index (log->entries, c - log->base - 1);
          if (groups_send (self, from, entry->wire))
            {
              self->stats.served++;
              budget--;
            }
        }
    }
}

static void
receive_key (NatterGroups *self,
             Group        *g,
             const char   *from,
             JsonObject   *metadata)
{
  const char *key_id = json_get_string (metadata, "keyId");
  g_autoptr(GBytes) key = base64_to_bytes (json_get_string (metadata, "key"), NATTER_MESSAGE_GROUP_KEY_LEN);
  GBytes *expected;

  if (key_id == NULL || key == NULL || g_hash_table_contains (g->keys, key_id))
    return;
  expected = g_hash_table_lookup (g->key_hashes, key_id);
  if (expected == NULL)
    {
      /* Before its operation: checked when that is delivered. */
      if (g_hash_table_size (g->unverified_keys) < 64)
        g_hash_table_insert (g->unverified_keys, g_strdup (key_id), g_bytes_ref (key));
      return;
    }
  {
    g_autoptr(GBytes) got = key_hash (key);

    if (!g_bytes_equal (got, expected))
      {
        self->stats.rejected++;
        return;
      }
  }
  group_set_key (g, key_id, key);
  group_unpark (self, g, FALSE);
  schedule_summaries (self);
}

static void
receive_keyreq (NatterGroups *self,
                Group        *g,
                const char   *from,
                JsonObject   *metadata)
{
  const char *key_id = json_get_string (metadata, "keyId");
  GHashTable *allowed = key_id != NULL ? g_hash_table_lookup (g->key_members, key_id) : NULL;

  /* Only to someone who was a member while that key was in use. */
  if (allowed != NULL && g_hash_table_contains (allowed, from) && group_is_member (g, from))
    send_key (self, g, from, key_id);
}

static void
group_join_from_welcome (NatterGroups  *self,
                         NatterMessage *message,
                         JsonObject    *metadata)
{
  const char *name = json_get_string (metadata, "name");
  const char *admin = json_get_string (metadata, "admin");
  const char *key_id = json_get_string (metadata, "keyId");
  g_autoptr(GBytes) key = base64_to_bytes (json_get_string (metadata, "key"), NATTER_MESSAGE_GROUP_KEY_LEN);
  JsonArray *members = json_get_array (metadata, "members");
  g_autoptr(NatterVectorClock) clock = NULL;
  gint64 fanout = NATTER_GROUPS_DEFAULT_FANOUT;
  NatterVectorClockIter iter;
  const char *peer;
  guint64 value;
  gboolean has_self = FALSE;
  Group *g;

  /* Invitations come from contacts, and from the admin they name. */
  if (g_hash_table_contains (self->groups, message->group) ||
      g_hash_table_size (self->groups) >= MAX_GROUPS ||
      !natter_messaging_service_peer_is_contact (self->service, message->from) ||
      name == NULL || g_utf8_strlen (name, -1) > NATTER_GROUPS_MAX_NAME ||
      g_strcmp0 (admin, message->from) != 0 || key_id == NULL ||
      !natter_message_id_is_valid (key_id) || key == NULL || members == NULL ||
      json_array_get_length (members) > NATTER_GROUPS_MAX_MEMBERS ||
      (json_get_int (metadata, "fanout", &fanout) && (fanout < 1 || fanout > NATTER_GROUPS_MAX_FANOUT)))
    {
      self->stats.rejected++;
      return;
    }
  for (guint i = 0; i < json_array_get_length (members); i++)
    {
      JsonNode *node = json_array_get_element (members, i);

      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING ||
          !natter_peer_id_is_valid (json_node_get_string (node)))
        {
          self->stats.rejected++;
          return;
        }
      has_self |= strcmp (json_node_get_string (node), self->self_id) == 0;
    }
  if (!has_self)
    {
      self->stats.rejected++;
      return;
    }

  g = group_new (self, message->group, name, admin, (guint) fanout);
  for (guint i = 0; i < json_array_get_length (members); i++)
    group_add_member (g, json_array_get_string_element (members, i));
  group_add_member (g, admin);
  g->key_id = g_strdup (key_id);
  group_set_key (g, key_id, key);
  g_hash_table_insert (g->key_members, g_strdup (key_id), members_snapshot (g));
  clock = clock_from_json (g, json_get_object (metadata, "clock"));
  natter_vector_clock_iter_init (&iter, clock);
  while (natter_vector_clock_iter_next (&iter, &peer, &value))
    natter_causal_buffer_set_local (g->buffer, natter_causal_buffer_add_member (g->buffer, peer), value);

  groups_want_peers (self, g);
  groups_pace_peers (self);
  group_mark_dirty (g);
  g_signal_emit (self, signals[SIGNAL_GROUP_CHANGED], 0, g->id);
  /* The summary tells the admin we have it. */
  group_send_summary (g, message->from);
}

static void
receive_ping (NatterGroups *self,
              Group        *g,
              const char   *from,
              JsonObject   *metadata,
              gboolean      pong)
{
  gint64 t;

  if (!json_get_int (metadata, "t", &t))
    return;
  if (!pong)
    {
      JsonObject *reply_metadata;
      JsonObject *content = ctl_content ("pong", &reply_metadata);

      json_object_set_int_member (reply_metadata, "t", t);
      send_control (self, g, from, content, FALSE);
      return;
    }
  if (t <= 0 || t > now_us ())
    return;
  {
    double sample = (now_us () - t) / 1000.0;
    double *rtt = g_hash_table_lookup (self->rtt, from);

    if (rtt == NULL)
      g_hash_table_insert (self->rtt, g_strdup (from), g_memdup2 (&sample, sizeof sample));
    else
      *rtt = 0.8 * *rtt + 0.2 * sample;
  }
}

static void
send_ping (NatterGroups *self,
           Group        *g,
           const char   *peer)
{
  JsonObject *metadata;
  JsonObject *content = ctl_content ("ping", &metadata);

  json_object_set_int_member (metadata, "t", now_us ());
  send_control (self, g, peer, content, FALSE);
  time_table_set (self->last_ping, peer, now_us ());
}

/* }}} */
/* {{{ Receiving */

gboolean
natter_groups_receive (NatterGroups  *self,
                       const char    *from_peer,
                       NatterMessage *message,
                       GBytes        *bytes)
{
  g_autoptr(GError) error = NULL;
  gboolean stream;
  Group *g;

  if (message->group == NULL)
    return FALSE;
  if (message->type != NATTER_MESSAGE_TYPE_GROUP_MESSAGE &&
      message->type != NATTER_MESSAGE_TYPE_MESSAGE_DELIVERED &&
      message->type != NATTER_MESSAGE_TYPE_TYPING_INDICATOR)
    return FALSE;
  if (self->shut_down || g_hash_table_contains (self->blocked, from_peer))
    return TRUE;
  /* Stream messages (with a key ID) name their recipients in `tree`, and
   * only they have one. */
  stream = message->type == NATTER_MESSAGE_TYPE_GROUP_MESSAGE && message->key_id != NULL;
  /* A stream message may come from any member on its way down the tree,
   * so its author's signature is what vouches for it.  Everything else
   * comes from its author over the session (checked here once for all),
   * which authenticates it: it need not be signed. */
  if ((stream ? message->tree == NULL || !natter_message_verify (message, &error)
              : message->tree != NULL || !g_strv_contains ((const char * const *) message->to, self->self_id) ||
                g_strcmp0 (message->from, from_peer) != 0 ||
                (message->encrypted && !natter_message_verify (message, &error))))
    {
      self->stats.rejected++;
      g_debug ("Group frame %s from %s refused: %s", message->id, from_peer,
               error != NULL ? error->message : "not for us");
      return TRUE;
    }

  g = g_hash_table_lookup (self->groups, message->group);

  /* Pairwise: a welcome or a key, encrypted to us. */
  if (message->type == NATTER_MESSAGE_TYPE_GROUP_MESSAGE && message->encrypted && message->key_id == NULL)
    {
      JsonObject *metadata;
      const char *ctl;

      if (strcmp (message->from, from_peer) != 0 ||
          !natter_message_decrypt_from_peer (message, self->identity, &error))
        {
          self->stats.rejected++;
          return TRUE;
        }
      metadata = json_get_object (message->content, "metadata");
      ctl = json_get_string (metadata, "ctl");
      if (g_strcmp0 (ctl, "welcome") == 0)
        group_join_from_welcome (self, message, metadata);
      else if (g_strcmp0 (ctl, "key") == 0 && g != NULL && g_hash_table_contains (g->ever, message->from))
        receive_key (self, g, message->from, metadata);
      else
        self->stats.rejected++;
      return TRUE;
    }

  if (g == NULL)
    {
      self->stats.rejected++;
      return TRUE;
    }

  if (stream)
    {
      receive_stream (self, g, from_peer, message, bytes);
      return TRUE;
    }

  /* Everything else comes straight from a member. */
  if (strcmp (message->from, from_peer) != 0 || !group_is_member (g, message->from) || g->removed)
    {
      self->stats.rejected++;
      return TRUE;
    }

  switch (message->type)
    {
    case NATTER_MESSAGE_TYPE_MESSAGE_DELIVERED:
      {
        JsonArray *ids = json_get_array (message->content, "messageIds");

        if (ids == NULL)
          receive_ack (self, g, from_peer, json_get_string (message->content, "messageId"));
        for (guint i = 0; ids != NULL && i < json_array_get_length (ids); i++)
          {
            JsonNode *node = json_array_get_element (ids, i);

            if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
              receive_ack (self, g, from_peer, json_node_get_string (node));
          }
      }
      break;

    case NATTER_MESSAGE_TYPE_TYPING_INDICATOR:
      {
        JsonNode *node = json_object_get_member (message->content, "typing");
        gboolean typing = node != NULL && json_node_get_boolean (node);
        gboolean was = g_hash_table_contains (g->typing, from_peer);

        if (typing)
          time_table_set (g->typing, from_peer, now_us () + (gint64) TYPING_TIMEOUT_MS * 1000);
        else
          g_hash_table_remove (g->typing, from_peer);
        if (was != typing)
          g_signal_emit (self, signals[SIGNAL_TYPING_CHANGED], 0, g->id, from_peer, typing);
      }
      break;

    case NATTER_MESSAGE_TYPE_GROUP_MESSAGE:
      {
        JsonObject *metadata = json_get_object (message->content, "metadata");
        const char *ctl = json_get_string (metadata, "ctl");

        if (g_strcmp0 (ctl, "summary") == 0)
          receive_summary (self, g, from_peer, metadata);
        else if (g_strcmp0 (ctl, "pull") == 0)
          receive_pull (self, g, from_peer, metadata);
        else if (g_strcmp0 (ctl, "keyreq") == 0)
          receive_keyreq (self, g, from_peer, metadata);
        else if (g_strcmp0 (ctl, "ping") == 0)
          receive_ping (self, g, from_peer, metadata, FALSE);
        else if (g_strcmp0 (ctl, "pong") == 0)
          receive_ping (self, g, from_peer, metadata, TRUE);
        else
          self->stats.rejected++;
      }
      break;

    default:
      break;
    }
  return TRUE;
}

/* }}} */
/* {{{ Timer and connection hooks */

static gboolean
on_tick (gpointer user_data)
{
  NatterGroups *self = user_data;
  gint64 now = now_us ();
  GHashTableIter iter;
  Group *g;

  groups_pace_peers (self);
  g_hash_table_iter_init (&iter, self->groups);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &g))
    {
      g_autoptr(GPtrArray) due = g_ptr_array_new ();
      GHashTableIter inner;
      const char *peer;
      gint64 *when;
      Inflight *inflight;

      /* Tree repair: children that did not answer in time. */
      g_hash_table_iter_init (&inner, g->inflight);
      while (g_hash_table_iter_next (&inner, NULL, (gpointer *) &inflight))
        if (inflight->deadline_us <= now)
          g_ptr_array_add (due, inflight);
      for (guint i = 0; i < due->len; i++)
        inflight_take_over (self, g, g_ptr_array_index (due, i), NULL);

      /* Typing that expired. */
      g_ptr_array_set_size (due, 0);
      g_hash_table_iter_init (&inner, g->typing);
      while (g_hash_table_iter_next (&inner, (gpointer *) &peer, (gpointer *) &when))
        if (*when <= now)
          g_ptr_array_add (due, g_strdup (peer));
      for (guint i = 0; i < due->len; i++)
        {
          g_autofree char *gone = g_ptr_array_index (due, i);

          g_hash_table_remove (g->typing, gone);
          g_signal_emit (self, signals[SIGNAL_TYPING_CHANGED], 0, g->id, gone, FALSE);
        }

      if (g->removed)
        continue;
      if (g->parked->len > 0)
        {
          Entry *first = g_ptr_array_index (g->parked, 0);

          group_request_key (self, g, first->key_id, NULL);
          group_unpark (self, g, TRUE);
        }

      /* Welcomes and keys for members who were away. */
      if (strcmp (g->admin, self->self_id) == 0)
        {
          g_ptr_array_set_size (due, 0);
          g_hash_table_iter_init (&inner, g->pending_welcome);
          while (g_hash_table_iter_next (&inner, (gpointer *) &peer, (gpointer *) &when))
            if (*when <= now && peer_connected (self, peer))
              g_ptr_array_add (due, g_strdup (peer));
          for (guint i = 0; i < due->len; i++)
            {
              g_autofree char *peer_copy = g_ptr_array_index (due, i);

              if (group_is_member (g, peer_copy))
                send_welcome (self, g, peer_copy);
              else
                g_hash_table_remove (g->pending_welcome, peer_copy);
            }
        }
      g_ptr_array_set_size (due, 0);
      g_hash_table_iter_init (&inner, g->pending_keys);
      while (g_hash_table_iter_next (&inner, (gpointer *) &peer, (gpointer *) &when))
        g_ptr_array_add (due, g_strdup (peer));
      for (guint i = 0; i < due->len; i++)
        {
          g_autofree char *pair = g_ptr_array_index (due, i);
          char *newline = strchr (pair, '\n');

          *newline = '\0';
          if (peer_connected (self, pair) && group_is_member (g, pair))
            send_key (self, g, pair, newline + 1);
          else if (!group_is_member (g, pair))
            {
              *newline = '\n';
              g_hash_table_remove (g->pending_keys, pair);
            }
        }

      /* Anti-entropy: a summary to a few members every round. */
      if (now - g->last_sync_us >= (gint64) SYNC_EVERY_MS * 1000)
        {
          g_autoptr(GPtrArray) connected = g_ptr_array_new ();

          g->last_sync_us = now;
          for (guint i = 0; i < g->members->len; i++)
            {
              const char *member = g_ptr_array_index (g->members, i);

              if (strcmp (member, self->self_id) != 0 && peer_connected (self, member))
                g_ptr_array_add (connected, (gpointer) member);
            }
          for (guint i = 0; i < SYNC_FANOUT && connected->len > 0; i++)
            {
              guint pick = g_random_int_range (0, connected->len);

              group_send_summary (g, g_ptr_array_index (connected, pick));
              g_ptr_array_remove_index_fast (connected, pick);
            }
          group_update_syncing (g);
        }
    }
  return G_SOURCE_CONTINUE;
}

void
natter_groups_peer_connected (NatterGroups *self,
                              const char   *peer_id)
{
  GHashTableIter iter;
  Group *g;
  gboolean pinged = FALSE;

  if (self->shut_down)
    return;
  g_hash_table_iter_init (&iter, self->groups);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &g))
    {
      if (g->removed || !group_is_member (g, peer_id))
        continue;
      if (!pinged)
        {
          send_ping (self, g, peer_id);
          pinged = TRUE;
        }
      if (strcmp (g->admin, self->self_id) == 0 && g_hash_table_contains (g->pending_welcome, peer_id))
        send_welcome (self, g, peer_id);
      group_send_summary (g, peer_id);
    }
}

void
natter_groups_peer_lost (NatterGroups *self,
                         const char   *peer_id)
{
  GHashTableIter iter;
  Group *g;

  if (self->shut_down)
    return;
  g_hash_table_iter_init (&iter, self->groups);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &g))
    {
      g_autoptr(GPtrArray) affected = g_ptr_array_new ();
      GHashTableIter inner;
      Inflight *inflight;

      g_hash_table_iter_init (&inner, g->inflight);
      while (g_hash_table_iter_next (&inner, NULL, (gpointer *) &inflight))
        g_ptr_array_add (affected, inflight);
      /* Orphaned subtrees are served at once, not after the timeout. */
      for (guint i = 0; i < affected->len; i++)
        inflight_take_over (self, g, g_ptr_array_index (affected, i), peer_id);
      g_hash_table_remove (g->pulls, peer_id);
    }
}

/* }}} */
/* {{{ Public API */

char *
natter_groups_create (NatterGroups        *self,
                      const char          *name,
                      const char * const  *members,
                      guint                fanout,
                      GError             **error)
{
  g_autofree char *id = NULL;
  g_autoptr(GBytes) key = new_key ();
  g_autofree char *key_id = new_key_id ();
  g_autoptr(GPtrArray) normal = g_ptr_array_new_with_free_func (g_free);
  Group *g;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), NULL);

  if (self->shut_down)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED, "The messaging service is not running");
      return NULL;
    }
  if (name == NULL || *name == '\0' || !g_utf8_validate (name, -1, NULL) ||
      g_utf8_strlen (name, -1) > NATTER_GROUPS_MAX_NAME)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "A group needs a name of 1 to %d characters", NATTER_GROUPS_MAX_NAME);
      return NULL;
    }
  if (fanout > NATTER_GROUPS_MAX_FANOUT)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "The fan-out is at most %d", NATTER_GROUPS_MAX_FANOUT);
      return NULL;
    }
  for (guint i = 0; members != NULL && members[i] != NULL; i++)
    {
      g_autoptr(GError) local_error = NULL;
      char *peer = natter_peer_id_normalize (members[i], &local_error);

      if (peer == NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "Not a valid peer ID: %s",
                       local_error->message);
          return NULL;
        }
      if (strcmp (peer, self->self_id) == 0)
        {
          g_free (peer);
          continue;
        }
      if (!natter_messaging_service_peer_is_contact (self->service, peer))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s is not a contact; add it first", peer);
          g_free (peer);
          return NULL;
        }
      g_ptr_array_add (normal, peer);
    }
  if (normal->len + 1 > NATTER_GROUPS_MAX_MEMBERS)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "A group has at most %d members", NATTER_GROUPS_MAX_MEMBERS);
      return NULL;
    }

  id = natter_message_id_new ();
  memcpy (id, "grp", 3);
  g = group_new (self, id, name, self->self_id, fanout == 0 ? NATTER_GROUPS_DEFAULT_FANOUT : fanout);
  group_add_member (g, self->self_id);
  for (guint i = 0; i < normal->len; i++)
    group_add_member (g, g_ptr_array_index (normal, i));
  g->key_id = g_strdup (key_id);
  group_set_key (g, key_id, key);
  g_hash_table_insert (g->key_members, g_strdup (key_id), members_snapshot (g));
  for (guint i = 0; i < normal->len; i++)
    {
      time_table_set (g->pending_welcome, g_ptr_array_index (normal, i), 0);
      send_welcome (self, g, g_ptr_array_index (normal, i));
    }
  groups_want_peers (self, g);
  groups_pace_peers (self);
  group_mark_dirty (g);
  g_signal_emit (self, signals[SIGNAL_GROUP_CHANGED], 0, g->id);
  return g_steal_pointer (&id);
}

static char *
normalize_member (NatterGroups  *self,
                  const char    *peer_id,
                  GError       **error)
{
  g_autoptr(GError) local_error = NULL;
  char *peer = natter_peer_id_normalize (peer_id != NULL ? peer_id : "", &local_error);

  if (peer == NULL)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "Not a valid peer ID: %s",
                 local_error->message);
  return peer;
}

static gboolean
check_admin (NatterGroups  *self,
             Group         *g,
             GError       **error)
{
  if (strcmp (g->admin, self->self_id) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   "Only the admin of %s may do that", g->id);
      return FALSE;
    }
  return TRUE;
}

gboolean
natter_groups_invite (NatterGroups  *self,
                      const char    *group_id,
                      const char    *peer_id,
                      GError       **error)
{
  g_autofree char *peer = NULL;
  g_autofree char *msg_id = NULL;
  JsonObject *metadata;
  JsonObject *content;
  Group *g;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), FALSE);

  if (!check_group (self, group_id, &g, error) || !check_admin (self, g, error) ||
      !(peer = normalize_member (self, peer_id, error)))
    return FALSE;
  if (group_is_member (g, peer))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "%s is a member already", peer);
      return FALSE;
    }
  if (!natter_messaging_service_peer_is_contact (self->service, peer))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s is not a contact; add it first", peer);
      return FALSE;
    }
  content = op_content ("invite", &metadata);
  json_object_set_string_member (metadata, "peer", peer);
  if (!(msg_id = group_send_stream (self, g, content, error)))
    return FALSE;
  time_table_set (g->pending_welcome, peer, 0);
  send_welcome (self, g, peer);
  return TRUE;
}

gboolean
natter_groups_remove (NatterGroups  *self,
                      const char    *group_id,
                      const char    *peer_id,
                      GError       **error)
{
  g_autofree char *peer = NULL;
  Group *g;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), FALSE);

  if (!check_group (self, group_id, &g, error) || !check_admin (self, g, error) ||
      !(peer = normalize_member (self, peer_id, error)))
    return FALSE;
  if (!group_is_member (g, peer) || strcmp (peer, self->self_id) == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%s is not a member you can remove", peer);
      return FALSE;
    }
  g_hash_table_remove (g->pending_welcome, peer);
  group_rotate (self, g, "remove", peer);
  return TRUE;
}

gboolean
natter_groups_set_admin (NatterGroups  *self,
                         const char    *group_id,
                         const char    *peer_id,
                         GError       **error)
{
  g_autofree char *peer = NULL;
  g_autofree char *msg_id = NULL;
  JsonObject *metadata;
  JsonObject *content;
  Group *g;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), FALSE);

  if (!check_group (self, group_id, &g, error) || !check_admin (self, g, error) ||
      !(peer = normalize_member (self, peer_id, error)))
    return FALSE;
  if (!group_is_member (g, peer))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s is not a member", peer);
      return FALSE;
    }
  content = op_content ("admin", &metadata);
  json_object_set_string_member (metadata, "peer", peer);
  msg_id = group_send_stream (self, g, content, error);
  return msg_id != NULL;
}

gboolean
natter_groups_leave (NatterGroups  *self,
                     const char    *group_id,
                     GError       **error)
{
  g_autofree char *msg_id = NULL;
  JsonObject *metadata;
  JsonObject *content;
  Group *g;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), FALSE);

  if (!check_group (self, group_id, &g, error))
    return FALSE;
  if (strcmp (g->admin, self->self_id) == 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                           "The admin hands over to another member before leaving");
      return FALSE;
    }
  content = op_content ("leave", &metadata);
  msg_id = group_send_stream (self, g, content, error);
  return msg_id != NULL;
}

char *
natter_groups_send_text (NatterGroups  *self,
                         const char    *group_id,
                         const char    *text,
                         GError       **error)
{
  JsonObject *content;
  Group *g;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), NULL);

  if (!check_group (self, group_id, &g, error))
    return NULL;
  if (text == NULL || *text == '\0' || !g_utf8_validate (text, -1, NULL) ||
      strlen (text) > NATTER_MESSAGE_MAX_SIZE / 2)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "A message needs 1 to %d bytes of valid UTF-8 text", NATTER_MESSAGE_MAX_SIZE / 2);
      return NULL;
    }
  content = json_object_new ();
  json_object_set_string_member (content, "text", text);
  /* Peers end our typing indicator when the message arrives. */
  g->typing_sent_us = 0;
  return group_send_stream (self, g, content, error);
}

gboolean
natter_groups_mark_read (NatterGroups  *self,
                         const char    *group_id,
                         GError       **error)
{
  g_autoptr(NatterVectorClock) local = NULL;
  Group *g;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), FALSE);

  if (!check_group (self, group_id, &g, error))
    return FALSE;
  local = natter_causal_buffer_dup_local_clock (g->buffer);
  natter_vector_clock_merge (g->my_read, local);
  group_mark_dirty (g);
  for (guint i = 0; i < g->members->len; i++)
    {
      const char *member = g_ptr_array_index (g->members, i);

      if (strcmp (member, self->self_id) != 0 && peer_connected (self, member))
        group_send_summary (g, member);
    }
  return TRUE;
}

gboolean
natter_groups_set_typing (NatterGroups  *self,
                          const char    *group_id,
                          gboolean       typing,
                          GError       **error)
{
  gint64 now = now_us ();
  Group *g;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), FALSE);

  if (!check_group (self, group_id, &g, error))
    return FALSE;
  if (typing && now - g->typing_sent_us < (gint64) TYPING_THROTTLE_MS * 1000)
    return TRUE;
  if (!typing && g->typing_sent_us == 0)
    return TRUE;
  g->typing_sent_us = typing ? now : 0;
  for (guint i = 0; i < g->members->len; i++)
    {
      const char *member = g_ptr_array_index (g->members, i);
      JsonObject *content;
      g_autoptr(GBytes) wire = NULL;

      if (strcmp (member, self->self_id) == 0 || !peer_connected (self, member))
        continue;
      content = json_object_new ();
      json_object_set_boolean_member (content, "typing", typing);
      wire = build_control (self, g, NATTER_MESSAGE_TYPE_TYPING_INDICATOR, member, content, FALSE);
      if (wire != NULL && groups_send (self, member, wire))
        self->stats.control_sent++;
    }
  return TRUE;
}

static NatterGroupInfo *
group_info (Group *g)
{
  NatterGroupInfo *info = g_new0 (NatterGroupInfo, 1);
  GStrvBuilder *builder = g_strv_builder_new ();

  for (guint i = 0; i < g->members->len; i++)
    g_strv_builder_add (builder, g_ptr_array_index (g->members, i));
  info->id = g_strdup (g->id);
  info->name = g_strdup (g->name);
  info->admin = g_strdup (g->admin);
  info->members = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);
  info->fanout = g->fanout;
  info->key_id = g_strdup (g->key_id);
  info->syncing = g->syncing;
  info->removed = g->removed;
  info->n_messages = g->history->len;
  return info;
}

GPtrArray *
natter_groups_list (NatterGroups *self)
{
  GPtrArray *list = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_group_info_free);
  GHashTableIter iter;
  Group *g;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), list);
  g_hash_table_iter_init (&iter, self->groups);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &g))
    g_ptr_array_add (list, group_info (g));
  return list;
}

NatterGroupInfo *
natter_groups_get_info (NatterGroups *self,
                        const char   *group_id)
{
  Group *g;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), NULL);
  g = group_id != NULL ? g_hash_table_lookup (self->groups, group_id) : NULL;
  return g != NULL ? group_info (g) : NULL;
}

GPtrArray *
natter_groups_get_history (NatterGroups *self,
                           const char   *group_id)
{
  GPtrArray *list = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_group_message_free);
  Group *g;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), list);
  g = group_id != NULL ? g_hash_table_lookup (self->groups, group_id) : NULL;
  for (guint i = 0; g != NULL && i < g->history->len; i++)
    g_ptr_array_add (list, entry_to_message (g, g_ptr_array_index (g->history, i)));
  return list;
}

gboolean
natter_groups_get_receipts (NatterGroups  *self,
                            const char    *group_id,
                            const char    *msg_id,
                            GStrv         *delivered_to,
                            GStrv         *read_by,
                            guint         *total)
{
  Group *g;
  Entry *entry;
  GStrvBuilder *delivered;
  GStrvBuilder *read;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), FALSE);
  g = group_id != NULL ? g_hash_table_lookup (self->groups, group_id) : NULL;
  entry = g != NULL && msg_id != NULL ? g_hash_table_lookup (g->ids, msg_id) : NULL;
  if (entry == NULL || !entry->delivered)
    return FALSE;
  delivered = g_strv_builder_new ();
  read = g_strv_builder_new ();
  count_having (g, FALSE, entry->author, entry->counter, delivered);
  count_having (g, TRUE, entry->author, entry->counter, read);
  if (delivered_to != NULL)
    *delivered_to = g_strv_builder_end (delivered);
  if (read_by != NULL)
    *read_by = g_strv_builder_end (read);
  g_strv_builder_unref (delivered);
  g_strv_builder_unref (read);
  if (total != NULL)
    *total = g->members->len - (group_is_member (g, entry->author) ? 1 : 0);
  return TRUE;
}

GStrv
natter_groups_get_typing (NatterGroups *self,
                          const char   *group_id)
{
  GStrvBuilder *builder = g_strv_builder_new ();
  Group *g = group_id != NULL ? g_hash_table_lookup (self->groups, group_id) : NULL;
  GStrv result;

  if (g != NULL)
    {
      GHashTableIter iter;
      const char *peer;

      g_hash_table_iter_init (&iter, g->typing);
      while (g_hash_table_iter_next (&iter, (gpointer *) &peer, NULL))
        g_strv_builder_add (builder, peer);
    }
  result = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);
  return result;
}

void
natter_groups_get_stats (NatterGroups      *self,
                         NatterGroupsStats *stats)
{
  g_return_if_fail (NATTER_IS_GROUPS (self));
  *stats = self->stats;
}

void
natter_groups_set_faults (NatterGroups *self,
                          double        drop_rate,
                          guint         delay_min_ms,
                          guint         delay_max_ms)
{
  g_return_if_fail (NATTER_IS_GROUPS (self));
  self->drop_rate = CLAMP (drop_rate, 0.0, 1.0);
  self->delay_min_ms = delay_min_ms;
  self->delay_max_ms = MAX (delay_min_ms, delay_max_ms);
}

void
natter_groups_set_blocked (NatterGroups *self,
                           const char   *peer_id,
                           gboolean      blocked)
{
  g_return_if_fail (NATTER_IS_GROUPS (self));
  if (blocked)
    g_hash_table_add (self->blocked, g_strdup (peer_id));
  else if (g_hash_table_remove (self->blocked, peer_id))
    natter_groups_peer_connected (self, peer_id);
}

char *
natter_groups_forge_op (NatterGroups  *self,
                        const char    *group_id,
                        const char    *op,
                        const char    *peer_id,
                        GError       **error)
{
  JsonObject *metadata;
  JsonObject *content;
  Group *g;

  g_return_val_if_fail (NATTER_IS_GROUPS (self), NULL);
  if (!check_group (self, group_id, &g, error))
    return NULL;
  content = op_content (op, &metadata);
  if (peer_id != NULL)
    json_object_set_string_member (metadata, "peer", peer_id);
  if (g_strcmp0 (op, "remove") == 0 || g_strcmp0 (op, "rotate") == 0)
    {
      g_autoptr(GBytes) key = new_key ();
      g_autoptr(GBytes) hash = key_hash (key);
      g_autofree char *key_id = new_key_id ();
      g_autofree char *hash64 = bytes_to_base64 (hash);

      json_object_set_string_member (metadata, "keyId", key_id);
      json_object_set_string_member (metadata, "keyHash", hash64);
    }
  return group_send_stream (self, g, content, error);
}

GBytes *
natter_groups_dup_wire (NatterGroups *self,
                        const char   *group_id,
                        const char   *msg_id)
{
  Group *g = group_id != NULL ? g_hash_table_lookup (self->groups, group_id) : NULL;
  Entry *entry = g != NULL && msg_id != NULL ? g_hash_table_lookup (g->ids, msg_id) : NULL;

  return entry != NULL ? g_bytes_ref (entry->wire) : NULL;
}

GStrv
natter_groups_dup_tree (NatterGroups *self,
                        const char   *group_id,
                        const char   *msg_id)
{
  Group *g = group_id != NULL ? g_hash_table_lookup (self->groups, group_id) : NULL;
  Entry *entry = g != NULL && msg_id != NULL ? g_hash_table_lookup (g->ids, msg_id) : NULL;
  g_autoptr(NatterMessage) message = NULL;
  GStrv to = NULL;

  if (entry == NULL ||
      (message = natter_message_decode (entry->wire, NATTER_MESSAGE_DECODE_NONE, NULL)) == NULL ||
      tree_decode (g, message, &to) != TREE_OK)
    return NULL;
  return to;
}

GBytes *
natter_groups_dup_key (NatterGroups *self,
                       const char   *group_id,
                       const char   *key_id)
{
  Group *g = group_id != NULL ? g_hash_table_lookup (self->groups, group_id) : NULL;
  GBytes *key = g != NULL && key_id != NULL ? g_hash_table_lookup (g->keys, key_id) : NULL;

  return key != NULL ? g_bytes_ref (key) : NULL;
}

/* }}} */
/* {{{ Persistence */

/* What the group keeps besides its members, keys and log (groups.state). */
static char *
group_state_to_json (Group *g)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(NatterVectorClock) delivered = natter_causal_buffer_dup_local_clock (g->buffer);
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(GList) ever = g_list_sort (g_hash_table_get_keys (g->ever), (GCompareFunc) strcmp);
  JsonObject *object = json_object_new ();
  JsonArray *array = json_array_new ();
  JsonObject *keys = json_object_new ();
  GHashTableIter iter;
  gpointer key, value;

  json_object_set_string_member (object, "admin", g->admin);
  json_object_set_int_member (object, "fanout", g->fanout);
  json_object_set_string_member (object, "keyId", g->key_id);
  json_object_set_boolean_member (object, "removed", g->removed);
  for (GList *l = ever; l != NULL; l = l->next)
    json_array_add_string_element (array, l->data);
  json_object_set_array_member (object, "ever", array);
  json_object_set_object_member (object, "delivered", clock_to_json (delivered));
  json_object_set_object_member (object, "read", clock_to_json (g->my_read));
  g_hash_table_iter_init (&iter, g->key_members);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      JsonObject *info = json_object_new ();
      JsonArray *writers = json_array_new ();
      GBytes *hash = g_hash_table_lookup (g->key_hashes, key);
      GHashTableIter inner;
      gpointer writer;

      if (hash != NULL)
        {
          g_autofree char *encoded = bytes_to_base64 (hash);

          json_object_set_string_member (info, "hash", encoded);
        }
      g_hash_table_iter_init (&inner, value);
      while (g_hash_table_iter_next (&inner, &writer, NULL))
        json_array_add_string_element (writers, writer);
      json_object_set_array_member (info, "writers", writers);
      json_object_set_object_member (keys, key, info);
    }
  json_object_set_object_member (object, "keys", keys);
  array = json_array_new ();
  g_hash_table_iter_init (&iter, g->pending_welcome);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    json_array_add_string_element (array, key);
  json_object_set_array_member (object, "welcome", array);

  root = json_node_init_object (json_node_alloc (), object);
  json_object_unref (object);
  return json_to_string (root, FALSE);
}

/* A copy of what changed, for the store's thread. */
static NatterStoreGroupRecord *
group_to_record (NatterGroups *self,
                 Group        *g)
{
  NatterStoreGroupRecord *record = natter_store_group_record_new ();
  GHashTableIter iter;
  gpointer key_id, key;

  record->group->id = g_strdup (g->id);
  record->group->name = g_strdup (g->name);
  record->group->created_by = g_strdup (g->admin);
  record->group->created_at = g->created_at;
  record->group->key_epoch = g_hash_table_size (g->key_hashes);
  record->group->state = group_state_to_json (g);
  if (g->members_dirty)
    for (guint i = 0; i < g->members->len; i++)
      {
        NatterStoreGroupMember *member = g_new0 (NatterStoreGroupMember, 1);

        member->group_id = g_strdup (g->id);
        member->peer_id = g_strdup (g_ptr_array_index (g->members, i));
        member->role = strcmp (member->peer_id, g->admin) == 0 ? NATTER_STORE_GROUP_ROLE_ADMIN
                                                               : NATTER_STORE_GROUP_ROLE_MEMBER;
        member->joined_at = g->created_at;
        g_ptr_array_add (record->members, member);
      }
  else
    g_clear_pointer (&record->members, g_ptr_array_unref);
  g_hash_table_iter_init (&iter, g->keys);
  while (g_hash_table_iter_next (&iter, &key_id, &key))
    g_hash_table_insert (record->keys, g_strdup (key_id), g_bytes_ref (key));
  for (guint i = 0; i < g->unsaved->len; i++)
    {
      Entry *entry = g_ptr_array_index (g->unsaved, i);
      NatterStoreGroupMessage *message = g_new0 (NatterStoreGroupMessage, 1);

      message->author = g_strdup (entry->author);
      message->counter = (gint64) entry->counter;
      message->msg_id = g_strdup (entry->msg_id);
      message->kind = entry->shown ? g_strdup (entry->kind) : NULL;
      message->body = entry->shown ? g_strdup (entry->text) : NULL;
      message->clock_sum = (gint64) entry->clock_sum;
      message->wire = g_bytes_ref (entry->wire);
      g_ptr_array_add (record->messages, message);
    }
  g_ptr_array_set_size (g->unsaved, 0);
  g->dirty = FALSE;
  g->members_dirty = FALSE;
  return record;
}

static gpointer
save_run (NatterDb  *db,
          gpointer   data,
          GError   **error)
{
  GPtrArray *records = data;

  for (guint i = 0; i < records->len; i++)
    if (!natter_db_group_save (db, g_ptr_array_index (records, i), error))
      return NULL;
  return GINT_TO_POINTER (TRUE);
}

static void
on_saved (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  g_autoptr(NatterGroups) self = user_data;
  g_autoptr(GError) error = NULL;

  if (natter_store_run_finish (NATTER_STORE (source), result, &error) == NULL)
    g_warning ("Could not save the groups: %s", error->message);
}

/* Queues one store task with every change since the last one. */
static void
groups_save (NatterGroups *self)
{
  g_autoptr(GPtrArray) records = NULL;
  GHashTableIter iter;
  Group *g;

  g_clear_handle_id (&self->save_source, g_source_remove);
  if (self->store == NULL)
    return;
  g_hash_table_iter_init (&iter, self->groups);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &g))
    if (g->dirty || g->members_dirty || g->unsaved->len > 0)
      {
        if (records == NULL)
          records = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_group_record_free);
        g_ptr_array_add (records, group_to_record (self, g));
      }
  if (records == NULL)
    return;
  natter_store_run_async (self->store, save_run, g_steal_pointer (&records),
                          (GDestroyNotify) g_ptr_array_unref, NULL, NULL, on_saved, g_object_ref (self));
}

static gboolean
on_save (gpointer user_data)
{
  NatterGroups *self = user_data;

  self->save_source = 0;
  groups_save (self);
  return G_SOURCE_REMOVE;
}

static gboolean
set_damaged (GError     **error,
             const char  *what)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "Stored group data is damaged: %s", what);
  return FALSE;
}

/* Store thread: every frame of the log is the author's, verified, and is
 * what its row says it is. */
static gboolean
record_check (NatterStoreGroupRecord  *record,
              GError                 **error)
{
  const char *id = record->group->id;

  if (!natter_message_id_is_valid (id))
    return set_damaged (error, "group ID");
  if (record->group->state == NULL || strlen (record->group->state) > MAX_STATE_BYTES)
    return set_damaged (error, "no state, or too large");
  for (guint i = 0; i < record->messages->len; i++)
    {
      NatterStoreGroupMessage *stored = g_ptr_array_index (record->messages, i);
      g_autoptr(NatterMessage) message = NULL;
      g_autoptr(GError) local_error = NULL;

      message = natter_message_decode (stored->wire, NATTER_MESSAGE_DECODE_VERIFY, &local_error);
      if (message == NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "Stored group data is damaged: message %s: %s", stored->msg_id, local_error->message);
          return FALSE;
        }
      if (message->type != NATTER_MESSAGE_TYPE_GROUP_MESSAGE || g_strcmp0 (message->group, id) != 0 ||
          g_strcmp0 (message->from, stored->author) != 0 || g_strcmp0 (message->id, stored->msg_id) != 0 ||
          (gint64) message->sequence != stored->counter || message->key_id == NULL ||
          natter_message_get_clock (message, message->from) != message->sequence ||
          stored->clock_sum < 1 ||
          (stored->kind != NULL && strcmp (stored->kind, "text") != 0 && strcmp (stored->kind, "event") != 0))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "Stored group data is damaged: message %s does not match its frame", stored->msg_id);
          return FALSE;
        }
      /* What the history shows must be what the author sealed. */
      if (stored->kind != NULL)
        {
          GBytes *key = g_hash_table_lookup (record->keys, message->key_id);
          JsonObject *metadata;
          const char *op;

          if (key == NULL ||
              !natter_message_decrypt_for_group (message, g_bytes_get_data (key, NULL), g_bytes_get_size (key),
                                                 message->key_id, NULL))
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "Stored group data is damaged: message %s does not open with its key", stored->msg_id);
              return FALSE;
            }
          metadata = json_get_object (message->content, "metadata");
          op = json_get_string (metadata, "op");
          if (strcmp (stored->kind, "text") == 0
              ? (op != NULL || g_strcmp0 (json_get_string (message->content, "text"), stored->body) != 0)
              : (op == NULL || stored->body == NULL || !g_str_has_prefix (stored->body, op)))
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "Stored group data is damaged: message %s does not show what its author wrote",
                           stored->msg_id);
              return FALSE;
            }
        }
    }
  return TRUE;
}

GPtrArray *
natter_groups_load_saved (NatterDb  *db,
                          GError   **error)
{
  g_autoptr(GPtrArray) records = natter_db_group_load_all (db, error);

  if (records == NULL)
    return NULL;
  for (guint i = 0; i < records->len;)
    {
      NatterStoreGroupRecord *record = g_ptr_array_index (records, i);
      g_autoptr(GError) local_error = NULL;

      if (record_check (record, &local_error))
        i++;
      else
        {
          g_warning ("Group %s is not loaded: %s", record->group->id, local_error->message);
          g_ptr_array_remove_index (records, i);
        }
    }
  return g_steal_pointer (&records);
}

/* A JSON array of peer IDs into @set (at most @limit). */
static gboolean
peers_from_json (JsonArray   *array,
                 guint        limit,
                 GHashTable  *set)
{
  if (array == NULL || json_array_get_length (array) > limit)
    return FALSE;
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *node = json_array_get_element (array, i);

      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING ||
          !natter_peer_id_is_valid (json_node_get_string (node)))
        return FALSE;
      g_hash_table_add (set, g_strdup (json_node_get_string (node)));
    }
  return TRUE;
}

static gboolean
clock_json_is_valid (JsonObject *object)
{
  JsonObjectIter iter;
  const char *peer;
  JsonNode *node;

  if (object == NULL)
    return FALSE;
  json_object_iter_init (&iter, object);
  while (json_object_iter_next (&iter, &peer, &node))
    if (!json_node_is_int (node) || json_node_get_int (node) < 0 || !natter_peer_id_is_valid (peer))
      return FALSE;
  return TRUE;
}

static gint
compare_stored (gconstpointer a,
                gconstpointer b)
{
  const NatterStoreGroupMessage *x = *(NatterStoreGroupMessage * const *) a;
  const NatterStoreGroupMessage *y = *(NatterStoreGroupMessage * const *) b;
  int c = strcmp (x->author, y->author);

  if (c != 0)
    return c;
  return x->counter < y->counter ? -1 : x->counter > y->counter;
}

/* Main context: builds the group from its record (checked on the store's
 * thread for the frames; everything else is checked here). */
static gboolean
group_restore (NatterGroups            *self,
               NatterStoreGroupRecord  *record,
               GError                 **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GHashTable) ever = str_set_new ();
  g_autoptr(GHashTable) welcome = str_set_new ();
  g_autoptr(NatterVectorClock) delivered = NULL;
  JsonObject *state, *keys;
  const char *admin, *key_id;
  gint64 fanout;
  JsonNode *removed;
  JsonObjectIter iter;
  const char *name;
  JsonNode *node;
  NatterVectorClockIter clock_iter;
  const char *peer;
  guint64 value;
  Group *g;

  if (g_hash_table_contains (self->groups, record->group->id) || g_hash_table_size (self->groups) >= MAX_GROUPS)
    return set_damaged (error, "a second copy of a group, or too many groups");
  if (!json_parser_load_from_data (parser, record->group->state, -1, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return set_damaged (error, "the state is not a JSON object");
  state = json_node_get_object (json_parser_get_root (parser));
  admin = json_get_string (state, "admin");
  key_id = json_get_string (state, "keyId");
  removed = json_object_get_member (state, "removed");
  keys = json_get_object (state, "keys");
  if (admin == NULL || !natter_peer_id_is_valid (admin) || key_id == NULL ||
      !natter_message_id_is_valid (key_id) || !json_get_int (state, "fanout", &fanout) ||
      fanout < 1 || fanout > NATTER_GROUPS_MAX_FANOUT || removed == NULL ||
      json_node_get_value_type (removed) != G_TYPE_BOOLEAN || keys == NULL ||
      g_utf8_strlen (record->group->name, -1) > NATTER_GROUPS_MAX_NAME ||
      !peers_from_json (json_get_array (state, "ever"), MAX_EVER, ever) ||
      !peers_from_json (json_get_array (state, "welcome"), NATTER_GROUPS_MAX_MEMBERS, welcome) ||
      !clock_json_is_valid (json_get_object (state, "delivered")) ||
      !clock_json_is_valid (json_get_object (state, "read")) ||
      record->members->len > NATTER_GROUPS_MAX_MEMBERS)
    return set_damaged (error, "a field of the state is missing or out of range");
  for (guint i = 0; i < record->members->len; i++)
    {
      NatterStoreGroupMember *member = g_ptr_array_index (record->members, i);

      if (!natter_peer_id_is_valid (member->peer_id))
        return set_damaged (error, "a member is not a peer ID");
    }
  json_object_iter_init (&iter, keys);
  while (json_object_iter_next (&iter, &name, &node))
    {
      JsonObject *info = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
      g_autoptr(GHashTable) writers = str_set_new ();
      const char *hash = json_get_string (info, "hash");
      g_autoptr(GBytes) hash_bytes = hash != NULL ? base64_to_bytes (hash, 32) : NULL;

      if (info == NULL || !natter_message_id_is_valid (name) || (hash != NULL && hash_bytes == NULL) ||
          !peers_from_json (json_get_array (info, "writers"), NATTER_GROUPS_MAX_MEMBERS, writers))
        return set_damaged (error, "a key's hash or writers");
    }
  for (guint i = 0; i < record->messages->len; i++)
    {
      NatterStoreGroupMessage *stored = g_ptr_array_index (record->messages, i);

      if (!g_hash_table_contains (ever, stored->author))
        return set_damaged (error, "a message from someone who never was a member");
    }

  /* Checked: build it. */
  g = group_new (self, record->group->id, record->group->name, admin, (guint) fanout);
  g->created_at = record->group->created_at;
  g_hash_table_unref (g->ever);
  g->ever = g_steal_pointer (&ever);
  for (guint i = 0; i < record->members->len; i++)
    group_add_member (g, ((NatterStoreGroupMember *) g_ptr_array_index (record->members, i))->peer_id);
  g->key_id = g_strdup (key_id);
  g->removed = json_node_get_boolean (removed);
  {
    GHashTableIter key_iter;
    gpointer stored_id, key;

    g_hash_table_iter_init (&key_iter, record->keys);
    while (g_hash_table_iter_next (&key_iter, &stored_id, &key))
      g_hash_table_insert (g->keys, g_strdup (stored_id), g_bytes_ref (key));
  }
  json_object_iter_init (&iter, keys);
  while (json_object_iter_next (&iter, &name, &node))
    {
      JsonObject *info = json_node_get_object (node);
      GHashTable *writers = str_set_new ();
      const char *hash = json_get_string (info, "hash");

      peers_from_json (json_get_array (info, "writers"), NATTER_GROUPS_MAX_MEMBERS, writers);
      g_hash_table_insert (g->key_members, g_strdup (name), writers);
      if (hash != NULL)
        g_hash_table_insert (g->key_hashes, g_strdup (name), base64_to_bytes (hash, 32));
    }
  {
    GHashTableIter welcome_iter;
    gpointer invitee;

    g_hash_table_iter_init (&welcome_iter, welcome);
    while (g_hash_table_iter_next (&welcome_iter, &invitee, NULL))
      if (group_is_member (g, invitee))
        time_table_set (g->pending_welcome, invitee, 0);
  }
  natter_vector_clock_free (g->my_read);
  g->my_read = clock_from_json (g, json_get_object (state, "read"));
  delivered = clock_from_json (g, json_get_object (state, "delivered"));

  /* The log: per author, the run of counters that follows the first
   * stored one without a gap, up to the delivered clock.  Anything past a
   * gap comes back through sync. */
  g_ptr_array_sort (record->messages, compare_stored);
  for (guint i = 0; i < record->messages->len;)
    {
      NatterStoreGroupMessage *first = g_ptr_array_index (record->messages, i);
      guint64 local = natter_vector_clock_get (delivered, first->author);
      AuthorLog *log = g_new0 (AuthorLog, 1);
      guint64 next = (guint64) first->counter;
      guint j = i;

      log->base = next - 1;
      log->entries = g_ptr_array_new ();
      g_hash_table_insert (g->logs, g_strdup (first->author), log);
      for (; j < record->messages->len; j++)
        {
          NatterStoreGroupMessage *stored = g_ptr_array_index (record->messages, j);
          g_autoptr(NatterMessage) message = NULL;
          Entry *entry;
          GHashTableIter vc_iter;
          gpointer vc_peer, vc_value;

          if (strcmp (stored->author, first->author) != 0)
            break;
          if ((guint64) stored->counter != next || next > local || g_hash_table_contains (g->ids, stored->msg_id))
            continue;
          /* Verified on the store's thread. */
          message = natter_message_decode (stored->wire, NATTER_MESSAGE_DECODE_NONE, NULL);
          if (message == NULL)
            continue;
          entry = g_new0 (Entry, 1);
          entry->msg_id = g_strdup (stored->msg_id);
          entry->author = g_strdup (stored->author);
          entry->counter = next;
          entry->timestamp = message->timestamp;
          entry->key_id = g_strdup (message->key_id);
          entry->wire = g_bytes_ref (stored->wire);
          entry->clock = natter_vector_clock_new ();
          g_hash_table_iter_init (&vc_iter, message->vector_clock);
          while (g_hash_table_iter_next (&vc_iter, &vc_peer, &vc_value))
            if (g_hash_table_contains (g->ever, vc_peer))
              natter_vector_clock_set (entry->clock, vc_peer, *(guint64 *) vc_value);
          entry->clock_sum = (guint64) stored->clock_sum;
          entry->delivered = TRUE;
          entry->kind = g_strdup (stored->kind);
          entry->text = g_strdup (stored->body);
          g_hash_table_insert (g->ids, entry->msg_id, entry);
          g_ptr_array_add (log->entries, entry);
          if (entry->kind != NULL)
            history_insert (g, entry);
          next++;
        }
      if (log->entries->len == 0)
        log->base = local;
      else if (next - 1 < local)
        natter_vector_clock_set (delivered, first->author, next - 1);
      i = j;
    }
  natter_vector_clock_iter_init (&clock_iter, delivered);
  while (natter_vector_clock_iter_next (&clock_iter, &peer, &value))
    natter_causal_buffer_set_local (g->buffer, natter_causal_buffer_add_member (g->buffer, peer), value);
  g->dirty = FALSE;
  g->members_dirty = FALSE;
  if (!g->removed)
    groups_want_peers (self, g);
  return TRUE;
}

void
natter_groups_restore (NatterGroups *self,
                       GPtrArray    *records)
{
  g_return_if_fail (NATTER_IS_GROUPS (self));

  for (guint i = 0; records != NULL && i < records->len; i++)
    {
      NatterStoreGroupRecord *record = g_ptr_array_index (records, i);
      g_autoptr(GError) error = NULL;

      if (!group_restore (self, record, &error))
        g_warning ("Group %s is not loaded: %s", record->group->id, error->message);
    }
  groups_pace_peers (self);
}

/* }}} */
/* {{{ GObject */

NatterGroups *
natter_groups_new (NatterMessagingService *service,
                   NatterIdentity         *identity,
                   NatterStore            *store)
{
  NatterGroups *self = g_object_new (NATTER_TYPE_GROUPS, NULL);

  self->service = service;
  self->identity = g_object_ref (identity);
  self->store = store != NULL ? g_object_ref (store) : NULL;
  self->self_id = g_strdup (natter_identity_get_peer_id (identity));
  self->tick_source = g_timeout_add (TICK_MS, on_tick, self);
  return self;
}

void
natter_groups_shutdown (NatterGroups *self)
{
  g_return_if_fail (NATTER_IS_GROUPS (self));
  /* The last changes go to the store ahead of its closing (its queue is
   * first in, first out). */
  if (!self->shut_down)
    groups_save (self);
  self->shut_down = TRUE;
  g_clear_handle_id (&self->save_source, g_source_remove);
  g_clear_handle_id (&self->tick_source, g_source_remove);
  g_clear_handle_id (&self->summary_idle, g_source_remove);
  g_clear_handle_id (&self->summary_source, g_source_remove);
  g_clear_handle_id (&self->ack_source, g_source_remove);
}

static void
natter_groups_finalize (GObject *object)
{
  NatterGroups *self = NATTER_GROUPS (object);

  g_clear_handle_id (&self->tick_source, g_source_remove);
  g_clear_handle_id (&self->summary_idle, g_source_remove);
  g_clear_handle_id (&self->summary_source, g_source_remove);
  g_clear_handle_id (&self->ack_source, g_source_remove);
  g_clear_handle_id (&self->save_source, g_source_remove);
  g_hash_table_unref (self->groups);
  g_hash_table_unref (self->rtt);
  g_hash_table_unref (self->last_ping);
  g_hash_table_unref (self->peers_added);
  g_queue_clear_full (&self->peer_queue, g_free);
  g_hash_table_unref (self->blocked);
  g_clear_object (&self->identity);
  g_clear_object (&self->store);
  g_free (self->self_id);

  G_OBJECT_CLASS (natter_groups_parent_class)->finalize (object);
}

static void
natter_groups_class_init (NatterGroupsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = natter_groups_finalize;

  signals[SIGNAL_GROUP_CHANGED] =
    g_signal_new ("group-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
  signals[SIGNAL_MESSAGE_RECEIVED] =
    g_signal_new ("message-received", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, NATTER_TYPE_GROUP_MESSAGE);
  signals[SIGNAL_RECEIPTS_CHANGED] =
    g_signal_new ("receipts-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 5,
                  G_TYPE_STRING, G_TYPE_STRING, G_TYPE_UINT, G_TYPE_UINT, G_TYPE_UINT);
  signals[SIGNAL_TYPING_CHANGED] =
    g_signal_new ("typing-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 3, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_BOOLEAN);
  signals[SIGNAL_SYNC_CHANGED] =
    g_signal_new ("sync-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_BOOLEAN);
  signals[SIGNAL_OPERATION_REJECTED] =
    g_signal_new ("operation-rejected", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 3, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING);
}

static void
natter_groups_init (NatterGroups *self)
{
  self->groups = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) group_free);
  self->rtt = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->last_ping = str_time_table_new ();
  self->peers_added = str_set_new ();
  g_queue_init (&self->peer_queue);
  self->blocked = str_set_new ();
}

/* }}} */
