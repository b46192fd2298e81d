/* natter-rendezvous-server.c: the rendezvous server's WebSocket endpoint
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>

#include <libsoup/soup.h>
#include <sodium.h>

#include "natter-rendezvous-protocol.h"
#include "natter-rendezvous-server.h"

/* A close reason must fit a control frame: 125 bytes minus the code. */
#define MAX_CLOSE_REASON 123

/* libsoup drops a connection whose frame passes its limit at once,
 * unread data and all, so the peer sees a reset rather than a reason.
 * Its limit is therefore set above the protocol's: a frame between the
 * two is read and answered with a clean 1009 and a reason, and only a
 * grossly oversized one is cut off hard.  Either way memory stays bounded. */
#define HARD_MAX_FRAME (2 * NATTER_RENDEZVOUS_MAX_FRAME)

typedef struct
{
  NatterRendezvousServer  *server;      /* unowned; outlives its clients */
  SoupWebsocketConnection *ws;
  GSocket                 *socket;      /* under the WebSocket (and TLS) */
  char                    *remote;      /* for the log */
  char                    *peer_id;     /* NULL until the signature verified */
  GHashTable              *contacts;    /* canonical peer IDs; NULL until declared */
  guint8                   challenge[NATTER_RENDEZVOUS_CHALLENGE_LEN];
  NatterTokenBucket        bucket;      /* messages from the client */
  NatterTokenBucket        deliveries;  /* signals to the client */
  guint                    backed_up;   /* sweeps in a row with a full send queue */
  gint64                   connected_us;
  gint64                   last_message_us;
  gboolean                 admitted;    /* FALSE when turned away: server full */
  gboolean                 closing;
} Client;

struct _NatterRendezvousServer
{
  GObject      parent_instance;

  SoupServer  *soup;
  GHashTable  *clients;         /* Client * set, owns */
  GHashTable  *by_peer;         /* peer ID -> registered Client *, unowned */
  guint        n_admitted;      /* clients not turned away for being over the limit */
  guint        sweep_id;

  guint        max_connections;
  guint        idle_timeout;
  gboolean     dump_frames;
};

G_DEFINE_FINAL_TYPE (NatterRendezvousServer, natter_rendezvous_server, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_MAX_CONNECTIONS,
  PROP_IDLE_TIMEOUT,
  PROP_DUMP_FRAMES,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static const char *
client_name (Client *client)
{
  return client->peer_id != NULL ? client->peer_id : client->remote;
}

static void
client_send (Client     *client,
             const char *text)
{
  if (client->closing ||
      soup_websocket_connection_get_state (client->ws) != SOUP_WEBSOCKET_STATE_OPEN)
    return;

  soup_websocket_connection_send_text (client->ws, text);
}

static gboolean
client_lists (Client     *client,
              const char *peer_id)
{
  return client->contacts != NULL && g_hash_table_contains (client->contacts, peer_id);
}

static Client *
lookup_online (NatterRendezvousServer *self,
               const char             *peer_id)
{
  Client *client = g_hash_table_lookup (self->by_peer, peer_id);

  return client != NULL && !client->closing ? client : NULL;
}

static void
send_presence (Client     *to,
               const char *peer_id,
               gboolean    online)
{
  g_autofree char *text = natter_rendezvous_build_presence (peer_id, online);

  client_send (to, text);
}

/* Takes @client's ID off the server: each mutual contact still online
 * learns that it went offline. */
static void
client_unregister (Client *client)
{
  NatterRendezvousServer *self = client->server;
  GHashTableIter iter;
  const char *peer_id;

  if (client->peer_id == NULL || g_hash_table_lookup (self->by_peer, client->peer_id) != client)
    return;

  g_hash_table_remove (self->by_peer, client->peer_id);
  if (client->contacts == NULL)
    return;

  g_hash_table_iter_init (&iter, client->contacts);
  while (g_hash_table_iter_next (&iter, (gpointer *) &peer_id, NULL))
    {
      Client *other = lookup_online (self, peer_id);

      if (other != NULL && other != client && client_lists (other, client->peer_id))
        send_presence (other, client->peer_id, FALSE);
    }
}

static void
client_close (Client     *client,
              gushort     code,
              const char *reason)
{
  g_autofree char *short_reason = NULL;

  if (client->closing)
    return;

  /* Cut at a character boundary: the reason must stay valid UTF-8. */
  if (strlen (reason) > MAX_CLOSE_REASON)
    {
      const char *end = reason + MAX_CLOSE_REASON;

      while (end > reason && (*end & 0xc0) == 0x80)
        end--;
      short_reason = g_strndup (reason, end - reason);
      reason = short_reason;
    }

  g_info ("closing %s: %u %s", client_name (client), code, reason);
  client_unregister (client);
  client->closing = TRUE;
  soup_websocket_connection_close (client->ws, code, reason);
}

static gboolean
release_connection (gpointer ws)
{
  g_object_unref (ws);
  return G_SOURCE_REMOVE;
}

static void
client_free (Client *client)
{
  g_signal_handlers_disconnect_by_data (client->ws, client);
  g_clear_object (&client->ws);
  g_clear_object (&client->socket);
  g_free (client->remote);
  g_free (client->peer_id);
  g_clear_pointer (&client->contacts, g_hash_table_unref);
  sodium_memzero (client->challenge, sizeof client->challenge);
  g_free (client);
}

/* {{{ Messages */

static void
handle_register (Client                  *client,
                 NatterRendezvousMessage *message)
{
  NatterRendezvousServer *self = client->server;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *reply = NULL;
  Client *previous;
  gsize len;
  const guint8 *data;

  if (client->peer_id != NULL)
    {
      client_close (client, NATTER_RENDEZVOUS_CLOSE_PROTOCOL_ERROR, "already registered");
      return;
    }

  payload = natter_rendezvous_register_payload (client->challenge, message->peer);
  data = g_bytes_get_data (payload, &len);
  if (!natter_verify_signature (message->public_key, data, len, message->signature, &error))
    {
      g_info ("%s failed to register as %s: %s", client->remote, message->peer, error->message);
      client_close (client, NATTER_RENDEZVOUS_CLOSE_AUTH_FAILED,
                    "authentication failed: bad or replayed signature");
      return;
    }

  /* The challenge is spent: it never verifies a second signature. */
  randombytes_buf (client->challenge, sizeof client->challenge);

  previous = lookup_online (self, message->peer);
  if (previous != NULL)
    client_close (previous, NATTER_RENDEZVOUS_CLOSE_REPLACED, "replaced by a newer connection");

  client->peer_id = g_steal_pointer (&message->peer);
  g_hash_table_insert (self->by_peer, client->peer_id, client);
  g_info ("%s registered as %s", client->remote, client->peer_id);

  reply = natter_rendezvous_build_registered (client->peer_id);
  client_send (client, reply);
}

/* Presence is visible between A and B only while both are registered and
 * each lists the other.  Any change of that, either way, is told to both. */
static void
handle_contacts (Client                  *client,
                 NatterRendezvousMessage *message)
{
  NatterRendezvousServer *self = client->server;
  g_autoptr(GHashTable) old = g_steal_pointer (&client->contacts);
  GHashTable *new = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GPtrArray) changed = g_ptr_array_new ();
  GHashTableIter iter;
  const char *peer_id;

  for (guint i = 0; i < message->peers->len; i++)
    g_hash_table_add (new, g_strdup (g_ptr_array_index (message->peers, i)));

  /* Only the pairs whose listing changed can change visibility. */
  if (old != NULL)
    {
      g_hash_table_iter_init (&iter, old);
      while (g_hash_table_iter_next (&iter, (gpointer *) &peer_id, NULL))
        if (!g_hash_table_contains (new, peer_id))
          g_ptr_array_add (changed, (gpointer) peer_id);
    }
  g_hash_table_iter_init (&iter, new);
  while (g_hash_table_iter_next (&iter, (gpointer *) &peer_id, NULL))
    if (old == NULL || !g_hash_table_contains (old, peer_id))
      g_ptr_array_add (changed, (gpointer) peer_id);

  client->contacts = new;

  for (guint i = 0; i < changed->len; i++)
    {
      Client *other;
      gboolean now_listed;

      peer_id = g_ptr_array_index (changed, i);
      other = lookup_online (self, peer_id);
      if (other == NULL || other == client || !client_lists (other, client->peer_id))
        continue;

      now_listed = g_hash_table_contains (new, peer_id);
      send_presence (client, other->peer_id, now_listed);
      send_presence (other, client->peer_id, now_listed);
    }
}

/* A stranger's blob and a blob to an offline contact get the same reply,
 * so signaling reveals no more presence than the presence messages do. */
static void
handle_signal (Client                  *client,
               NatterRendezvousMessage *message)
{
  Client *target = lookup_online (client->server, message->to);
  g_autofree char *text = NULL;

  /* A full delivery budget looks like any other failure to the sender. */
  if (target == NULL || target == client ||
      !client_lists (client, target->peer_id) || !client_lists (target, client->peer_id) ||
      !natter_token_bucket_take (&target->deliveries, g_get_monotonic_time ()))
    {
      text = natter_rendezvous_build_undeliverable (message->to);
      client_send (client, text);
      return;
    }

  /* The sender is the connection's authenticated ID, never a field. */
  text = natter_rendezvous_build_signal (client->peer_id, message->blob);
  client_send (target, text);
}

static void
on_message (SoupWebsocketConnection *ws,
            SoupWebsocketDataType    type,
            GBytes                  *bytes,
            Client                  *client)
{
  g_autoptr(NatterRendezvousMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *reply = NULL;
  const guint8 *data;
  gsize len;

  if (client->closing)
    return;

  data = g_bytes_get_data (bytes, &len);
  client->last_message_us = g_get_monotonic_time ();

  if (client->server->dump_frames)
    g_message ("frame from %s (%" G_GSIZE_FORMAT " bytes): %.*s", client_name (client), len,
               type == SOUP_WEBSOCKET_DATA_TEXT && g_utf8_validate_len ((const char *) data, len, NULL) ? (int) len : 0,
               (const char *) data);

  if (len > NATTER_RENDEZVOUS_MAX_FRAME)
    {
      g_autofree char *reason = g_strdup_printf ("frame of %" G_GSIZE_FORMAT " bytes, more than the %d allowed",
                                                 len, NATTER_RENDEZVOUS_MAX_FRAME);

      client_close (client, SOUP_WEBSOCKET_CLOSE_TOO_BIG, reason);
      return;
    }

  if (!natter_token_bucket_take (&client->bucket, client->last_message_us))
    {
      client_close (client, NATTER_RENDEZVOUS_CLOSE_RATE_LIMITED, "rate limit exceeded");
      return;
    }

  if (type != SOUP_WEBSOCKET_DATA_TEXT)
    {
      client_close (client, SOUP_WEBSOCKET_CLOSE_UNSUPPORTED_DATA, "only text frames are accepted");
      return;
    }

  message = natter_rendezvous_message_parse (data, len, &error);
  if (message == NULL)
    {
      g_autofree char *reason = g_strdup_printf ("protocol error: %s", error->message);

      client_close (client, NATTER_RENDEZVOUS_CLOSE_PROTOCOL_ERROR, reason);
      return;
    }

  if (message->type == NATTER_RENDEZVOUS_MESSAGE_PING)
    {
      reply = natter_rendezvous_build_pong ();
      client_send (client, reply);
      return;
    }

  if (message->type == NATTER_RENDEZVOUS_MESSAGE_REGISTER)
    {
      handle_register (client, message);
      return;
    }

  if (client->peer_id == NULL)
    {
      client_close (client, NATTER_RENDEZVOUS_CLOSE_PROTOCOL_ERROR, "protocol error: not registered");
      return;
    }

  switch (message->type)
    {
    case NATTER_RENDEZVOUS_MESSAGE_CONTACTS:
      handle_contacts (client, message);
      break;
    case NATTER_RENDEZVOUS_MESSAGE_SIGNAL:
      handle_signal (client, message);
      break;
    case NATTER_RENDEZVOUS_MESSAGE_REGISTER:
    case NATTER_RENDEZVOUS_MESSAGE_PING:
    default:
      g_assert_not_reached ();
    }
}

static void
on_error (SoupWebsocketConnection *ws,
          GError                  *error,
          Client                  *client)
{
  g_info ("connection of %s: %s", client_name (client), error->message);
}

static void
on_closed (SoupWebsocketConnection *ws,
           Client                  *client)
{
  NatterRendezvousServer *self = client->server;
  const char *reason = soup_websocket_connection_get_close_data (ws);

  g_info ("%s disconnected (%u %s)", client_name (client),
          soup_websocket_connection_get_close_code (ws), reason != NULL ? reason : "");

  client_unregister (client);
  if (client->admitted)
    self->n_admitted--;
  /* The connection is inside its own signal emission: it is released
   * once that has returned. */
  g_idle_add (release_connection, g_object_ref (ws));
  g_hash_table_remove (self->clients, client);
}

/* }}} */

static void
on_websocket (SoupServer              *soup,
              SoupServerMessage       *msg,
              const char              *path,
              SoupWebsocketConnection *ws,
              gpointer                 user_data)
{
  NatterRendezvousServer *self = user_data;
  g_autofree char *challenge = NULL;
  GSocketAddress *address = soup_server_message_get_remote_address (msg);
  Client *client;

  client = g_new0 (Client, 1);
  client->server = self;
  client->ws = g_object_ref (ws);
  client->socket = g_object_ref (soup_server_message_get_socket (msg));
  client->connected_us = client->last_message_us = g_get_monotonic_time ();
  if (G_IS_INET_SOCKET_ADDRESS (address))
    {
      g_autofree char *host =
        g_inet_address_to_string (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address)));

      client->remote = g_strdup_printf ("%s:%u", host,
                                        g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address)));
    }
  else
    {
      client->remote = g_strdup ("(unknown)");
    }

  g_hash_table_add (self->clients, client);
  g_signal_connect (ws, "message", G_CALLBACK (on_message), client);
  g_signal_connect (ws, "error", G_CALLBACK (on_error), client);
  g_signal_connect (ws, "closed", G_CALLBACK (on_closed), client);

  soup_websocket_connection_set_max_incoming_payload_size (ws, HARD_MAX_FRAME);
  soup_websocket_connection_set_keepalive_interval (ws, NATTER_RENDEZVOUS_KEEPALIVE_INTERVAL);

  if (self->n_admitted >= self->max_connections)
    {
      client_close (client, NATTER_RENDEZVOUS_CLOSE_SERVER_FULL, "server full");
      return;
    }

  client->admitted = TRUE;
  self->n_admitted++;
  natter_token_bucket_init (&client->bucket, NATTER_RENDEZVOUS_RATE, NATTER_RENDEZVOUS_BURST,
                            client->connected_us);
  natter_token_bucket_init (&client->deliveries, NATTER_RENDEZVOUS_DELIVERY_RATE,
                            NATTER_RENDEZVOUS_DELIVERY_BURST, client->connected_us);
  randombytes_buf (client->challenge, sizeof client->challenge);
  g_debug ("%s connected (%u connections)", client->remote, self->n_admitted);

  challenge = natter_rendezvous_build_challenge (client->challenge);
  client_send (client, challenge);
}

/* libsoup queues without a bound what the socket does not take, and has
 * no API to tell how much, so a client that stops reading would make the
 * server hold everything sent to it.  The kernel's queue tells instead:
 * when the unacknowledged bytes stay above half the send buffer (the
 * kernel fills about 70% of it with data) or 1 MiB, far more than
 * signaling needs, for two sweeps in a row, the client is not reading.
 * Together with the delivery budget this bounds what waits for one
 * client. */
#define MAX_UNREAD (1024 * 1024)

static gboolean
client_is_backed_up (Client *client)
{
  int fd = g_socket_get_fd (client->socket);
  int queued = 0;
  int sndbuf = 0;
  socklen_t len = sizeof sndbuf;

  if (ioctl (fd, SIOCOUTQ, &queued) != 0 ||
      getsockopt (fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) != 0)
    return FALSE;

  return sndbuf > 0 && queued >= MIN (sndbuf / 2, MAX_UNREAD);
}

/* Once a second: registration and idle timeouts, clients not reading. */
static gboolean
sweep (gpointer user_data)
{
  NatterRendezvousServer *self = user_data;
  g_autoptr(GPtrArray) unregistered = g_ptr_array_new ();
  g_autoptr(GPtrArray) idle = g_ptr_array_new ();
  g_autoptr(GPtrArray) not_reading = g_ptr_array_new ();
  gint64 now = g_get_monotonic_time ();
  GHashTableIter iter;
  Client *client;

  g_hash_table_iter_init (&iter, self->clients);
  while (g_hash_table_iter_next (&iter, (gpointer *) &client, NULL))
    {
      if (client->closing)
        continue;
      if (client->peer_id == NULL &&
          now - client->connected_us > NATTER_RENDEZVOUS_AUTH_TIMEOUT * G_USEC_PER_SEC)
        g_ptr_array_add (unregistered, client);
      else if (now - client->last_message_us > (gint64) self->idle_timeout * G_USEC_PER_SEC)
        g_ptr_array_add (idle, client);
      else if (!client_is_backed_up (client))
        client->backed_up = 0;
      else if (++client->backed_up >= 2)
        g_ptr_array_add (not_reading, client);
    }

  /* Closing may drop a client from the table, so not while iterating it. */
  for (guint i = 0; i < unregistered->len; i++)
    client_close (g_ptr_array_index (unregistered, i), NATTER_RENDEZVOUS_CLOSE_AUTH_TIMEOUT,
                  "registration timed out");
  for (guint i = 0; i < idle->len; i++)
    client_close (g_ptr_array_index (idle, i), NATTER_RENDEZVOUS_CLOSE_IDLE, "idle timeout");
  for (guint i = 0; i < not_reading->len; i++)
    client_close (g_ptr_array_index (not_reading, i), NATTER_RENDEZVOUS_CLOSE_NOT_READING,
                  "not reading");

  return G_SOURCE_CONTINUE;
}

static void
natter_rendezvous_server_dispose (GObject *object)
{
  NatterRendezvousServer *self = NATTER_RENDEZVOUS_SERVER (object);

  g_clear_handle_id (&self->sweep_id, g_source_remove);
  if (self->soup != NULL)
    soup_server_disconnect (self->soup);
  g_clear_object (&self->soup);
  g_hash_table_remove_all (self->by_peer);
  g_hash_table_remove_all (self->clients);

  G_OBJECT_CLASS (natter_rendezvous_server_parent_class)->dispose (object);
}

static void
natter_rendezvous_server_finalize (GObject *object)
{
  NatterRendezvousServer *self = NATTER_RENDEZVOUS_SERVER (object);

  g_clear_pointer (&self->by_peer, g_hash_table_unref);
  g_clear_pointer (&self->clients, g_hash_table_unref);

  G_OBJECT_CLASS (natter_rendezvous_server_parent_class)->finalize (object);
}

static void
natter_rendezvous_server_get_property (GObject    *object,
                                       guint       prop_id,
                                       GValue     *value,
                                       GParamSpec *pspec)
{
  NatterRendezvousServer *self = NATTER_RENDEZVOUS_SERVER (object);

  switch (prop_id)
    {
    case PROP_MAX_CONNECTIONS:
      g_value_set_uint (value, self->max_connections);
      break;
    case PROP_IDLE_TIMEOUT:
      g_value_set_uint (value, self->idle_timeout);
      break;
    case PROP_DUMP_FRAMES:
      g_value_set_boolean (value, self->dump_frames);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_rendezvous_server_set_property (GObject      *object,
                                       guint         prop_id,
                                       const GValue *value,
                                       GParamSpec   *pspec)
{
  NatterRendezvousServer *self = NATTER_RENDEZVOUS_SERVER (object);

  switch (prop_id)
    {
    case PROP_MAX_CONNECTIONS:
      natter_rendezvous_server_set_max_connections (self, g_value_get_uint (value));
      break;
    case PROP_IDLE_TIMEOUT:
      natter_rendezvous_server_set_idle_timeout (self, g_value_get_uint (value));
      break;
    case PROP_DUMP_FRAMES:
      natter_rendezvous_server_set_dump_frames (self, g_value_get_boolean (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_rendezvous_server_class_init (NatterRendezvousServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = natter_rendezvous_server_dispose;
  object_class->finalize = natter_rendezvous_server_finalize;
  object_class->get_property = natter_rendezvous_server_get_property;
  object_class->set_property = natter_rendezvous_server_set_property;

  /**
   * NatterRendezvousServer:max-connections:
   *
   * WebSocket connections open at once; one more is closed with 4006.
   */
  properties[PROP_MAX_CONNECTIONS] =
    g_param_spec_uint ("max-connections", NULL, NULL,
                       1, G_MAXUINT, NATTER_RENDEZVOUS_DEFAULT_MAX_CONNECTIONS,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * NatterRendezvousServer:idle-timeout:
   *
   * Seconds without a message from a client before it is closed with 4005.
   */
  properties[PROP_IDLE_TIMEOUT] =
    g_param_spec_uint ("idle-timeout", NULL, NULL,
                       1, 24 * 3600, NATTER_RENDEZVOUS_DEFAULT_IDLE_TIMEOUT,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * NatterRendezvousServer:dump-frames:
   *
   * Whether every incoming text frame is logged.
   */
  properties[PROP_DUMP_FRAMES] =
    g_param_spec_boolean ("dump-frames", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
natter_rendezvous_server_init (NatterRendezvousServer *self)
{
  if (sodium_init () < 0)
    g_error ("libsodium cannot be initialised");

  self->max_connections = NATTER_RENDEZVOUS_DEFAULT_MAX_CONNECTIONS;
  self->idle_timeout = NATTER_RENDEZVOUS_DEFAULT_IDLE_TIMEOUT;
  self->clients = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) client_free, NULL);
  self->by_peer = g_hash_table_new (g_str_hash, g_str_equal);
  self->soup = soup_server_new (NULL, NULL);
  /* With permessage-deflate the payload limit would apply to the
   * compressed frame, and a small frame could inflate without bound. */
  soup_server_remove_websocket_extension (self->soup, SOUP_TYPE_WEBSOCKET_EXTENSION_DEFLATE);
  soup_server_add_websocket_handler (self->soup, NATTER_RENDEZVOUS_PATH, NULL, NULL,
                                     on_websocket, self, NULL);
  self->sweep_id = g_timeout_add_seconds (1, sweep, self);
}

NatterRendezvousServer *
natter_rendezvous_server_new (void)
{
  return g_object_new (NATTER_TYPE_RENDEZVOUS_SERVER, NULL);
}

void
natter_rendezvous_server_set_max_connections (NatterRendezvousServer *self,
                                              guint                   max_connections)
{
  g_return_if_fail (NATTER_IS_RENDEZVOUS_SERVER (self));
  g_return_if_fail (max_connections > 0);

  if (self->max_connections == max_connections)
    return;
  self->max_connections = max_connections;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_CONNECTIONS]);
}

void
natter_rendezvous_server_set_idle_timeout (NatterRendezvousServer *self,
                                           guint                   seconds)
{
  g_return_if_fail (NATTER_IS_RENDEZVOUS_SERVER (self));
  g_return_if_fail (seconds > 0);

  if (self->idle_timeout == seconds)
    return;
  self->idle_timeout = seconds;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_IDLE_TIMEOUT]);
}

void
natter_rendezvous_server_set_dump_frames (NatterRendezvousServer *self,
                                          gboolean                dump_frames)
{
  g_return_if_fail (NATTER_IS_RENDEZVOUS_SERVER (self));

  dump_frames = !!dump_frames;
  if (self->dump_frames == dump_frames)
    return;
  self->dump_frames = dump_frames;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_DUMP_FRAMES]);
}

guint
natter_rendezvous_server_listen (NatterRendezvousServer  *self,
                                 GInetAddress            *address,
                                 guint                    port,
                                 GTlsCertificate         *certificate,
                                 GError                 **error)
{
  g_autoptr(GSocketAddress) socket_address = NULL;
  SoupServerListenOptions options = 0;
  GSList *listeners;
  guint bound = 0;

  g_return_val_if_fail (NATTER_IS_RENDEZVOUS_SERVER (self), 0);
  g_return_val_if_fail (G_IS_INET_ADDRESS (address), 0);
  g_return_val_if_fail (port <= G_MAXUINT16, 0);

  if (certificate != NULL)
    {
      soup_server_set_tls_certificate (self->soup, certificate);
      options |= SOUP_SERVER_LISTEN_HTTPS;
    }

  socket_address = g_inet_socket_address_new (address, port);
  if (!soup_server_listen (self->soup, socket_address, options, error))
    return 0;

  listeners = soup_server_get_listeners (self->soup);
  for (GSList *l = listeners; l != NULL && bound == 0; l = l->next)
    {
      g_autoptr(GSocketAddress) local = g_socket_get_local_address (l->data, NULL);

      if (G_IS_INET_SOCKET_ADDRESS (local))
        bound = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
    }
  g_slist_free (listeners);

  return bound;
}

guint
natter_rendezvous_server_get_n_connections (NatterRendezvousServer *self)
{
  g_return_val_if_fail (NATTER_IS_RENDEZVOUS_SERVER (self), 0);

  return self->n_admitted;
}
