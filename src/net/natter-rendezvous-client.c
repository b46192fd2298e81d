/* natter-rendezvous-client.c: a connection to a natter-rendezvous server
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "natter-json-scan.h"
#include "natter-rendezvous-client.h"
#include "natter-signal-seal.h"

/* The protocol's values (docs/rendezvous.md), repeated here so that the
 * client does not link the server. */
#define PROTOCOL_PATH        "/v1"
#define PROTOCOL_CONTEXT     "natter-rendezvous-register-v1"
#define CHALLENGE_LEN        32
#define MAX_FRAME            (64 * 1024)
#define MAX_DEPTH            1          /* the server sends flat objects */
#define MAX_BLOB             (16 * 1024)
#define MAX_CONTACTS         1024
/* libsoup's own limit: a larger frame drops the connection unread. */
#define HARD_MAX_FRAME       (2 * MAX_FRAME)

#define CLOSE_PROTOCOL_ERROR 1002

struct _NatterRendezvousClient
{
  GObject                      parent_instance;

  char                        *url;
  NatterIdentity              *identity;
  GPtrArray                   *contacts;       /* canonical peer IDs */
  GHashTable                  *contact_set;    /* the same, for lookups */
  GHashTable                  *online;         /* mutual contacts seen online */
  SoupSession                 *session;
  GMainContext                *context;        /* the creating thread's */

  SoupWebsocketConnection     *ws;
  GCancellable                *cancellable;    /* the connection attempt */
  NatterRendezvousClientState  state;
  gboolean                     running;
  gboolean                     challenged;
  guint                        backoff_ms;
  guint                        reconnect_id;
  guint                        ping_id;
  guint                        register_timeout_id;
  guint                        n_registrations;
};

G_DEFINE_FINAL_TYPE (NatterRendezvousClient, natter_rendezvous_client, G_TYPE_OBJECT)
G_DEFINE_QUARK (natter-rendezvous-client-error-quark, natter_rendezvous_client_error)
G_DEFINE_ENUM_TYPE (NatterRendezvousClientState, natter_rendezvous_client_state,
                    G_DEFINE_ENUM_VALUE (NATTER_RENDEZVOUS_CLIENT_STATE_DISCONNECTED, "disconnected"),
                    G_DEFINE_ENUM_VALUE (NATTER_RENDEZVOUS_CLIENT_STATE_CONNECTING, "connecting"),
                    G_DEFINE_ENUM_VALUE (NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED, "registered"))

enum {
  PROP_0,
  PROP_STATE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_PRESENCE_CHANGED,
  SIGNAL_SIGNAL_RECEIVED,
  SIGNAL_UNDELIVERABLE,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void connect_now (NatterRendezvousClient *self);

/* Timers go to the creating thread's context, like libsoup's sources. */
static guint
add_timeout (NatterRendezvousClient *self,
             guint                   ms,
             GSourceFunc             func)
{
  g_autoptr(GSource) source = g_timeout_source_new (ms);

  g_source_set_callback (source, func, self, NULL);
  return g_source_attach (source, self->context);
}

static void
remove_source (NatterRendezvousClient *self,
               guint                  *id)
{
  GSource *source;

  if (*id == 0)
    return;
  source = g_main_context_find_source_by_id (self->context, *id);
  if (source != NULL)
    g_source_destroy (source);
  *id = 0;
}

static gboolean
reconnect_cb (gpointer user_data)
{
  NatterRendezvousClient *self = user_data;

  self->reconnect_id = 0;
  connect_now (self);
  return G_SOURCE_REMOVE;
}

/* {{{ State */

static void
set_state (NatterRendezvousClient      *self,
           NatterRendezvousClientState  state)
{
  if (self->state == state)
    return;
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}

/* Everyone we saw online goes offline with the connection. */
static void
clear_online (NatterRendezvousClient *self)
{
  g_autoptr(GPtrArray) was_online = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  gpointer key;

  g_hash_table_iter_init (&iter, self->online);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (was_online, g_strdup (key));
  g_hash_table_remove_all (self->online);

  g_object_ref (self);
  for (guint i = 0; i < was_online->len; i++)
    g_signal_emit (self, signals[SIGNAL_PRESENCE_CHANGED], 0,
                   (const char *) g_ptr_array_index (was_online, i), FALSE);
  g_object_unref (self);
}

static void on_ws_message (SoupWebsocketConnection *ws,
                           gint                     type,
                           GBytes                  *message,
                           gpointer                 user_data);
static void on_ws_closed  (SoupWebsocketConnection *ws,
                           gpointer                 user_data);

/* Drops the connection (if any), and schedules the next one when still
 * running. */
static void
drop_connection (NatterRendezvousClient *self,
                 gushort                 code,
                 const char             *reason)
{
  remove_source (self, &self->ping_id);
  remove_source (self, &self->register_timeout_id);
  if (self->cancellable != NULL)
    {
      g_cancellable_cancel (self->cancellable);
      g_clear_object (&self->cancellable);
    }
  if (self->ws != NULL)
    {
      g_autoptr(SoupWebsocketConnection) ws = g_steal_pointer (&self->ws);

      g_signal_handlers_disconnect_by_data (ws, self);
      if (soup_websocket_connection_get_state (ws) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_close (ws, code, reason);
    }
  self->challenged = FALSE;

  g_object_ref (self);
  set_state (self, NATTER_RENDEZVOUS_CLIENT_STATE_DISCONNECTED);
  clear_online (self);

  if (self->running && self->reconnect_id == 0)
    {
      /* Full jitter over the upper half: [backoff/2, backoff]. */
      guint delay = self->backoff_ms / 2 + g_random_int_range (0, self->backoff_ms / 2 + 1);

      self->backoff_ms = MIN (self->backoff_ms * 2, NATTER_RENDEZVOUS_CLIENT_BACKOFF_MAX_MS);
      self->reconnect_id = add_timeout (self, delay, reconnect_cb);
      g_debug ("rendezvous: reconnecting to %s in %u ms", self->url, delay);
    }
  g_object_unref (self);
}

static void
protocol_error (NatterRendezvousClient *self,
                const GError           *error)
{
  g_warning ("rendezvous: %s broke the protocol: %s", self->url, error->message);
  drop_connection (self, CLOSE_PROTOCOL_ERROR, "protocol error");
}

/* }}} */
/* {{{ Sending */

static void
send_text (NatterRendezvousClient *self,
           const char             *text)
{
  if (self->ws != NULL &&
      soup_websocket_connection_get_state (self->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_send_text (self->ws, text);
}

static void
send_contacts (NatterRendezvousClient *self)
{
  GString *text = g_string_new ("{\"type\":\"contacts\",\"peers\":[");

  /* Peer IDs are canonical: lower-case base32, nothing to escape. */
  for (guint i = 0; i < self->contacts->len; i++)
    g_string_append_printf (text, "%s\"%s\"", i > 0 ? "," : "",
                            (const char *) g_ptr_array_index (self->contacts, i));
  g_string_append (text, "]}");
  send_text (self, text->str);
  g_string_free (text, TRUE);
}

static gboolean
ping_cb (gpointer user_data)
{
  send_text (user_data, "{\"type\":\"ping\"}");
  return G_SOURCE_CONTINUE;
}

/* }}} */
/* {{{ Validating what the server sends */

static gboolean
malformed (GError     **error,
           const char  *format,
           ...) G_GNUC_PRINTF (2, 3);

static gboolean
malformed (GError     **error,
           const char  *format,
           ...)
{
  va_list args;
  char *message;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error_literal (error, NATTER_RENDEZVOUS_CLIENT_ERROR,
                       NATTER_RENDEZVOUS_CLIENT_ERROR_PROTOCOL, message);
  g_free (message);
  return FALSE;
}

static const char *
get_string (JsonObject  *object,
            const char  *field,
            GError     **error)
{
  JsonNode *node = json_object_get_member (object, field);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_STRING)
    {
      malformed (error, "“%s” missing or not a string", field);
      return NULL;
    }
  return json_node_get_string (node);
}

/* A peer ID from the server must be canonical already. */
static const char *
get_peer_id (JsonObject  *object,
             const char  *field,
             GError     **error)
{
  const char *text = get_string (object, field, error);
  g_autofree char *canonical = NULL;

  if (text == NULL)
    return NULL;
  if (strlen (text) != NATTER_PEER_ID_LEN ||
      (canonical = natter_peer_id_normalize (text, NULL)) == NULL ||
      strcmp (canonical, text) != 0)
    {
      malformed (error, "“%s” is not a canonical peer ID", field);
      return NULL;
    }
  return text;
}

/* Standard, padded, canonical base64 of at most @max_len bytes. */
static GBytes *
get_base64 (JsonObject  *object,
            const char  *field,
            gsize        max_len,
            GError     **error)
{
  const char *text = get_string (object, field, error);
  g_autofree guchar *decoded = NULL;
  g_autofree char *again = NULL;
  gsize text_len;
  gsize len;

  if (text == NULL)
    return NULL;
  text_len = strlen (text);
  if (text_len == 0 || text_len % 4 != 0 || text_len / 4 * 3 > max_len + 2)
    {
      malformed (error, "“%s”: bad base64 length", field);
      return NULL;
    }
  for (gsize i = 0; i < text_len; i++)
    {
      char c = text[i];

      if (!(g_ascii_isalnum (c) || c == '+' || c == '/' || (c == '=' && i >= text_len - 2)))
        {
          malformed (error, "“%s”: not base64", field);
          return NULL;
        }
    }
  decoded = g_base64_decode (text, &len);
  again = g_base64_encode (decoded, len);
  if (strcmp (again, text) != 0 || len > max_len)
    {
      malformed (error, "“%s”: not canonical base64", field);
      return NULL;
    }
  return g_bytes_new_take (g_steal_pointer (&decoded), len);
}

/* }}} */
/* {{{ Handling messages */

static gboolean
handle_challenge (NatterRendezvousClient  *self,
                  JsonObject              *object,
                  GError                 **error)
{
  g_autoptr(GBytes) challenge = NULL;
  g_autoptr(GByteArray) payload = NULL;
  const char *context;
  const char *peer_id = natter_identity_get_peer_id (self->identity);
  guint8 signature[NATTER_SIGNATURE_LEN];
  g_autofree char *signature_b64 = NULL;
  g_autofree char *text = NULL;

  if (self->challenged)
    return malformed (error, "a second challenge");
  if ((context = get_string (object, "context", error)) == NULL)
    return FALSE;
  if (strcmp (context, PROTOCOL_CONTEXT) != 0)
    return malformed (error, "unknown context");
  if ((challenge = get_base64 (object, "challenge", CHALLENGE_LEN, error)) == NULL)
    return FALSE;
  if (g_bytes_get_size (challenge) != CHALLENGE_LEN)
    return malformed (error, "challenge of %" G_GSIZE_FORMAT " bytes", g_bytes_get_size (challenge));

  self->challenged = TRUE;
  payload = g_byte_array_new ();
  g_byte_array_append (payload, (const guint8 *) PROTOCOL_CONTEXT, sizeof PROTOCOL_CONTEXT);
  g_byte_array_append (payload, g_bytes_get_data (challenge, NULL), CHALLENGE_LEN);
  g_byte_array_append (payload, (const guint8 *) peer_id, strlen (peer_id));
  natter_identity_sign (self->identity, payload->data, payload->len, signature);
  signature_b64 = g_base64_encode (signature, sizeof signature);
  text = g_strdup_printf ("{\"type\":\"register\",\"peer\":\"%s\",\"signature\":\"%s\"}",
                          peer_id, signature_b64);
  send_text (self, text);
  return TRUE;
}

static gboolean
handle_registered (NatterRendezvousClient  *self,
                   JsonObject              *object,
                   GError                 **error)
{
  const char *peer = get_peer_id (object, "peer", error);

  if (peer == NULL)
    return FALSE;
  if (!self->challenged || self->state == NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED)
    return malformed (error, "unexpected “registered”");
  if (strcmp (peer, natter_identity_get_peer_id (self->identity)) != 0)
    return malformed (error, "registered as another peer");

  remove_source (self, &self->register_timeout_id);
  self->backoff_ms = NATTER_RENDEZVOUS_CLIENT_BACKOFF_MIN_MS;
  self->n_registrations++;
  send_contacts (self);
  self->ping_id = add_timeout (self, NATTER_RENDEZVOUS_CLIENT_PING_INTERVAL_S * 1000, ping_cb);
  set_state (self, NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED);
  return TRUE;
}

static gboolean
handle_presence (NatterRendezvousClient  *self,
                 JsonObject              *object,
                 GError                 **error)
{
  const char *peer = get_peer_id (object, "peer", error);
  JsonNode *node = json_object_get_member (object, "online");
  gboolean online;

  if (peer == NULL)
    return FALSE;
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    return malformed (error, "“online” missing or not a boolean");
  if (self->state != NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED)
    return malformed (error, "presence before registration");

  /* The list may have changed since the server sent it: presence of a
   * peer no longer listed is stale, not an error. */
  if (!g_hash_table_contains (self->contact_set, peer))
    return TRUE;

  online = json_node_get_boolean (node);
  if (online == g_hash_table_contains (self->online, peer))
    return TRUE;
  if (online)
    g_hash_table_add (self->online, g_strdup (peer));
  else
    g_hash_table_remove (self->online, peer);
  g_signal_emit (self, signals[SIGNAL_PRESENCE_CHANGED], 0, peer, online);
  return TRUE;
}

static gboolean
handle_signal (NatterRendezvousClient  *self,
               JsonObject              *object,
               GError                 **error)
{
  const char *from = get_peer_id (object, "from", error);
  g_autoptr(GBytes) sealed = NULL;
  g_autoptr(GBytes) blob = NULL;
  g_autoptr(GError) local_error = NULL;

  if (from == NULL)
    return FALSE;
  if ((sealed = get_base64 (object, "blob", MAX_BLOB, error)) == NULL)
    return FALSE;
  if (self->state != NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED)
    return malformed (error, "signal before registration");

  /* Not fatal: another peer's mistake, or a contact dropped since. */
  if (!g_hash_table_contains (self->contact_set, from))
    {
      g_debug ("rendezvous: dropped a signal from %s, not a contact", from);
      return TRUE;
    }
  blob = natter_signal_open (self->identity, sealed, &local_error);
  if (blob == NULL)
    {
      g_debug ("rendezvous: dropped a signal from %s: %s", from, local_error->message);
      return TRUE;
    }
  g_signal_emit (self, signals[SIGNAL_SIGNAL_RECEIVED], 0, from, blob);
  return TRUE;
}

static gboolean
handle_undeliverable (NatterRendezvousClient  *self,
                      JsonObject              *object,
                      GError                 **error)
{
  const char *to = get_peer_id (object, "to", error);

  if (to == NULL)
    return FALSE;
  if (self->state != NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED)
    return malformed (error, "undeliverable before registration");
  g_signal_emit (self, signals[SIGNAL_UNDELIVERABLE], 0, to);
  return TRUE;
}

typedef struct
{
  const char *type;
  guint       n_members;       /* "type" included */
  const char *members[3];
  gboolean  (*handle) (NatterRendezvousClient *, JsonObject *, GError **);
} MessageSpec;

static const MessageSpec message_specs[] = {
  { "challenge", 3, { "challenge", "context", NULL }, handle_challenge },
  { "registered", 2, { "peer", NULL }, handle_registered },
  { "presence", 3, { "peer", "online", NULL }, handle_presence },
  { "signal", 3, { "from", "blob", NULL }, handle_signal },
  { "undeliverable", 2, { "to", NULL }, handle_undeliverable },
  { "pong", 1, { NULL }, NULL },
};

static gboolean
handle_message (NatterRendezvousClient  *self,
                GBytes                  *message,
                GError                 **error)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (message, &len);
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GError) parse_error = NULL;
  JsonObject *object;
  const char *type;
  const MessageSpec *spec = NULL;
  guint members = 0;
  const char *problem = NULL;

  if (len > MAX_FRAME)
    return malformed (error, "frame of %" G_GSIZE_FORMAT " bytes", len);
  if (!g_utf8_validate_len ((const char *) data, len, NULL))
    return malformed (error, "not UTF-8");
  if (!natter_json_scan_object (data, len, MAX_DEPTH, &members, &problem))
    return malformed (error, "%s", problem);

  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, (const char *) data, len, &parse_error))
    return malformed (error, "not JSON: %s", parse_error->message);
  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return malformed (error, "not an object");
  object = json_node_get_object (json_parser_get_root (parser));
  if (json_object_get_size (object) != members)
    return malformed (error, "duplicate members");
  if ((type = get_string (object, "type", error)) == NULL)
    return FALSE;

  for (gsize i = 0; i < G_N_ELEMENTS (message_specs); i++)
    if (strcmp (message_specs[i].type, type) == 0)
      spec = &message_specs[i];
  if (spec == NULL)
    return malformed (error, "unknown type");
  if (members != spec->n_members)
    return malformed (error, "“%s” with %u members", spec->type, members);
  for (guint i = 0; i + 1 < spec->n_members; i++)
    if (!json_object_has_member (object, spec->members[i]))
      return malformed (error, "“%s” without “%s”", spec->type, spec->members[i]);

  /* Only the challenge may come before it is answered. */
  if (!self->challenged && spec->handle != handle_challenge)
    return malformed (error, "“%s” before the challenge", spec->type);

  return spec->handle != NULL ? spec->handle (self, object, error) : TRUE;
}

static void
on_ws_message (SoupWebsocketConnection *ws,
               gint                     type,
               GBytes                  *message,
               gpointer                 user_data)
{
  NatterRendezvousClient *self = user_data;
  g_autoptr(GError) error = NULL;

  if (ws != self->ws)
    return;
  if (type != SOUP_WEBSOCKET_DATA_TEXT)
    {
      g_set_error_literal (&error, NATTER_RENDEZVOUS_CLIENT_ERROR,
                           NATTER_RENDEZVOUS_CLIENT_ERROR_PROTOCOL, "a binary frame");
      protocol_error (self, error);
      return;
    }

  g_object_ref (self);
  if (!handle_message (self, message, &error) && self->ws == ws)
    protocol_error (self, error);
  g_object_unref (self);
}

static void
on_ws_closed (SoupWebsocketConnection *ws,
              gpointer                 user_data)
{
  NatterRendezvousClient *self = user_data;

  if (ws != self->ws)
    return;
  g_debug ("rendezvous: %s closed the connection (%u %s)", self->url,
           soup_websocket_connection_get_close_code (ws),
           soup_websocket_connection_get_close_data (ws) != NULL ?
             soup_websocket_connection_get_close_data (ws) : "");
  drop_connection (self, 0, NULL);
}

/* }}} */
/* {{{ Connecting */

static gboolean
register_timeout_cb (gpointer user_data)
{
  NatterRendezvousClient *self = user_data;

  self->register_timeout_id = 0;
  g_debug ("rendezvous: %s did not register us in time", self->url);
  drop_connection (self, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "registration timed out");
  return G_SOURCE_REMOVE;
}

static void
connect_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  NatterRendezvousClient *self = user_data;
  g_autoptr(GError) error = NULL;
  SoupWebsocketConnection *ws;

  ws = soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_object_unref (self);
      return;
    }
  g_clear_object (&self->cancellable);
  if (ws == NULL)
    {
      g_debug ("rendezvous: cannot connect to %s: %s", self->url, error->message);
      drop_connection (self, 0, NULL);
      g_object_unref (self);
      return;
    }

  self->ws = ws;
  soup_websocket_connection_set_max_incoming_payload_size (ws, HARD_MAX_FRAME);
  /* Our own pings keep the server's idle timeout away; libsoup's
   * protocol-level keepalive stays off. */
  soup_websocket_connection_set_keepalive_interval (ws, 0);
  g_signal_connect (ws, "message", G_CALLBACK (on_ws_message), self);
  g_signal_connect (ws, "closed", G_CALLBACK (on_ws_closed), self);
  g_object_unref (self);
}

static void
connect_now (NatterRendezvousClient *self)
{
  g_autoptr(SoupMessage) message = NULL;

  remove_source (self, &self->reconnect_id);
  if (!self->running || self->ws != NULL || self->cancellable != NULL)
    return;

  message = soup_message_new ("GET", self->url);
  if (message == NULL)
    {
      /* Checked in new(); kept from crashing all the same. */
      self->running = FALSE;
      return;
    }

  set_state (self, NATTER_RENDEZVOUS_CLIENT_STATE_CONNECTING);
  self->cancellable = g_cancellable_new ();
  self->register_timeout_id = add_timeout (self, NATTER_RENDEZVOUS_CLIENT_REGISTER_TIMEOUT_S * 1000,
                                            register_timeout_cb);
  soup_session_websocket_connect_async (self->session, message, NULL, NULL,
                                        G_PRIORITY_DEFAULT, self->cancellable,
                                        connect_cb, g_object_ref (self));
}

/* }}} */
/* {{{ Public API */

static gboolean
set_contacts (NatterRendezvousClient  *self,
              const char * const      *contacts,
              GError                 **error)
{
  g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) set = g_hash_table_new (g_str_hash, g_str_equal);

  for (gsize i = 0; contacts != NULL && contacts[i] != NULL; i++)
    {
      char *canonical = natter_peer_id_normalize (contacts[i], error);

      if (canonical == NULL)
        return FALSE;
      if (g_hash_table_contains (set, canonical))
        {
          g_free (canonical);
          continue;
        }
      g_ptr_array_add (list, canonical);
      g_hash_table_add (set, canonical);
    }
  if (list->len > MAX_CONTACTS)
    {
      g_set_error (error, NATTER_RENDEZVOUS_CLIENT_ERROR, NATTER_RENDEZVOUS_CLIENT_ERROR_TOO_LARGE,
                   "more than %d contacts", MAX_CONTACTS);
      return FALSE;
    }

  g_clear_pointer (&self->contact_set, g_hash_table_unref);
  g_clear_pointer (&self->contacts, g_ptr_array_unref);
  self->contacts = g_steal_pointer (&list);
  self->contact_set = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < self->contacts->len; i++)
    g_hash_table_add (self->contact_set, g_ptr_array_index (self->contacts, i));
  return TRUE;
}

NatterRendezvousClient *
natter_rendezvous_client_new_with_session (const char         *url,
                                           NatterIdentity     *identity,
                                           const char * const *contacts,
                                           SoupSession        *session,
                                           GError            **error)
{
  g_autoptr(NatterRendezvousClient) self = NULL;
  g_autoptr(GUri) uri = NULL;
  const char *scheme;

  g_return_val_if_fail (url != NULL, NULL);
  g_return_val_if_fail (NATTER_IS_IDENTITY (identity), NULL);
  g_return_val_if_fail (session == NULL || SOUP_IS_SESSION (session), NULL);

  uri = g_uri_parse (url, SOUP_HTTP_URI_FLAGS, NULL);
  scheme = uri != NULL ? g_uri_get_scheme (uri) : NULL;
  if (scheme == NULL || (g_ascii_strcasecmp (scheme, "ws") != 0 &&
                         g_ascii_strcasecmp (scheme, "wss") != 0) ||
      g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
    {
      g_set_error (error, NATTER_RENDEZVOUS_CLIENT_ERROR, NATTER_RENDEZVOUS_CLIENT_ERROR_INVALID,
                   "“%s” is not a ws:// or wss:// URL", url);
      return NULL;
    }

  self = g_object_new (NATTER_TYPE_RENDEZVOUS_CLIENT, NULL);
  if (!set_contacts (self, contacts, error))
    return NULL;
  self->url = g_strdup (url);
  self->identity = g_object_ref (identity);
  if (session != NULL)
    self->session = g_object_ref (session);
  else
    self->session = soup_session_new_with_options ("timeout", 10,
                                                   "idle-timeout", 0,
                                                   NULL);
  return g_steal_pointer (&self);
}

NatterRendezvousClient *
natter_rendezvous_client_new (const char         *url,
                              NatterIdentity     *identity,
                              const char * const *contacts,
                              GError            **error)
{
  return natter_rendezvous_client_new_with_session (url, identity, contacts, NULL, error);
}

void
natter_rendezvous_client_start (NatterRendezvousClient *self)
{
  g_return_if_fail (NATTER_IS_RENDEZVOUS_CLIENT (self));

  if (self->running)
    return;
  self->running = TRUE;
  self->backoff_ms = NATTER_RENDEZVOUS_CLIENT_BACKOFF_MIN_MS;
  connect_now (self);
}

void
natter_rendezvous_client_stop (NatterRendezvousClient *self)
{
  g_return_if_fail (NATTER_IS_RENDEZVOUS_CLIENT (self));

  self->running = FALSE;
  remove_source (self, &self->reconnect_id);
  drop_connection (self, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
}

gboolean
natter_rendezvous_client_set_contacts (NatterRendezvousClient  *self,
                                       const char * const      *contacts,
                                       GError                 **error)
{
  g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  gpointer key;

  g_return_val_if_fail (NATTER_IS_RENDEZVOUS_CLIENT (self), FALSE);

  if (!set_contacts (self, contacts, error))
    return FALSE;

  /* A peer taken off the list is no longer visible. */
  g_hash_table_iter_init (&iter, self->online);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (!g_hash_table_contains (self->contact_set, key))
      {
        g_ptr_array_add (gone, g_strdup (key));
        g_hash_table_iter_remove (&iter);
      }
  if (self->state == NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED)
    send_contacts (self);
  for (guint i = 0; i < gone->len; i++)
    g_signal_emit (self, signals[SIGNAL_PRESENCE_CHANGED], 0,
                   (const char *) g_ptr_array_index (gone, i), FALSE);
  return TRUE;
}

gboolean
natter_rendezvous_client_send_signal (NatterRendezvousClient  *self,
                                      const char              *peer_id,
                                      GBytes                  *blob,
                                      GError                 **error)
{
  g_autofree char *canonical = NULL;
  g_autoptr(GBytes) sealed = NULL;
  g_autofree char *sealed_b64 = NULL;
  g_autofree char *text = NULL;

  g_return_val_if_fail (NATTER_IS_RENDEZVOUS_CLIENT (self), FALSE);
  g_return_val_if_fail (peer_id != NULL, FALSE);
  g_return_val_if_fail (blob != NULL, FALSE);

  if ((canonical = natter_peer_id_normalize (peer_id, error)) == NULL)
    return FALSE;
  if (!g_hash_table_contains (self->contact_set, canonical))
    {
      g_set_error (error, NATTER_RENDEZVOUS_CLIENT_ERROR, NATTER_RENDEZVOUS_CLIENT_ERROR_NOT_CONTACT,
                   "%s is not a contact", canonical);
      return FALSE;
    }
  if (self->state != NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED)
    {
      g_set_error (error, NATTER_RENDEZVOUS_CLIENT_ERROR, NATTER_RENDEZVOUS_CLIENT_ERROR_NOT_REGISTERED,
                   "not registered with %s", self->url);
      return FALSE;
    }
  if ((sealed = natter_signal_seal (canonical, blob, error)) == NULL)
    return FALSE;
  if (g_bytes_get_size (sealed) > MAX_BLOB)
    {
      g_set_error (error, NATTER_RENDEZVOUS_CLIENT_ERROR, NATTER_RENDEZVOUS_CLIENT_ERROR_TOO_LARGE,
                   "sealed blob of %" G_GSIZE_FORMAT " bytes", g_bytes_get_size (sealed));
      return FALSE;
    }
  sealed_b64 = g_base64_encode (g_bytes_get_data (sealed, NULL), g_bytes_get_size (sealed));
  text = g_strdup_printf ("{\"type\":\"signal\",\"to\":\"%s\",\"blob\":\"%s\"}",
                          canonical, sealed_b64);
  send_text (self, text);
  return TRUE;
}

NatterRendezvousClientState
natter_rendezvous_client_get_state (NatterRendezvousClient *self)
{
  g_return_val_if_fail (NATTER_IS_RENDEZVOUS_CLIENT (self), NATTER_RENDEZVOUS_CLIENT_STATE_DISCONNECTED);
  return self->state;
}

gboolean
natter_rendezvous_client_is_online (NatterRendezvousClient *self,
                                    const char             *peer_id)
{
  g_autofree char *canonical = NULL;

  g_return_val_if_fail (NATTER_IS_RENDEZVOUS_CLIENT (self), FALSE);

  canonical = natter_peer_id_normalize (peer_id, NULL);
  return canonical != NULL && g_hash_table_contains (self->online, canonical);
}

guint
natter_rendezvous_client_get_n_registrations (NatterRendezvousClient *self)
{
  g_return_val_if_fail (NATTER_IS_RENDEZVOUS_CLIENT (self), 0);
  return self->n_registrations;
}

/* }}} */
/* {{{ GObject */

static void
natter_rendezvous_client_dispose (GObject *object)
{
  NatterRendezvousClient *self = NATTER_RENDEZVOUS_CLIENT (object);

  self->running = FALSE;
  remove_source (self, &self->reconnect_id);
  remove_source (self, &self->ping_id);
  remove_source (self, &self->register_timeout_id);
  if (self->cancellable != NULL)
    {
      g_cancellable_cancel (self->cancellable);
      g_clear_object (&self->cancellable);
    }
  if (self->ws != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->ws, self);
      if (soup_websocket_connection_get_state (self->ws) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_close (self->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
      g_clear_object (&self->ws);
    }
  g_clear_object (&self->session);
  g_clear_object (&self->identity);

  G_OBJECT_CLASS (natter_rendezvous_client_parent_class)->dispose (object);
}

static void
natter_rendezvous_client_finalize (GObject *object)
{
  NatterRendezvousClient *self = NATTER_RENDEZVOUS_CLIENT (object);

  g_free (self->url);
  g_clear_pointer (&self->contact_set, g_hash_table_unref);
  g_clear_pointer (&self->contacts, g_ptr_array_unref);
  g_clear_pointer (&self->online, g_hash_table_unref);
  g_main_context_unref (self->context);

  G_OBJECT_CLASS (natter_rendezvous_client_parent_class)->finalize (object);
}

static void
natter_rendezvous_client_get_property (GObject    *object,
                                       guint       prop_id,
                                       GValue     *value,
                                       GParamSpec *pspec)
{
  NatterRendezvousClient *self = NATTER_RENDEZVOUS_CLIENT (object);

  switch (prop_id)
    {
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_rendezvous_client_class_init (NatterRendezvousClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = natter_rendezvous_client_dispose;
  object_class->finalize = natter_rendezvous_client_finalize;
  object_class->get_property = natter_rendezvous_client_get_property;

  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL,
                       NATTER_TYPE_RENDEZVOUS_CLIENT_STATE,
                       NATTER_RENDEZVOUS_CLIENT_STATE_DISCONNECTED,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * NatterRendezvousClient::presence-changed:
   * @peer_id: a contact, canonical
   * @online: whether it is now visible (online, and listing us)
   */
  signals[SIGNAL_PRESENCE_CHANGED] =
    g_signal_new ("presence-changed",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_BOOLEAN);

  /**
   * NatterRendezvousClient::signal-received:
   * @from_peer_id: the sender as the server authenticated it
   * @blob: the opened blob
   */
  signals[SIGNAL_SIGNAL_RECEIVED] =
    g_signal_new ("signal-received",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_BYTES);

  /**
   * NatterRendezvousClient::undeliverable:
   * @peer_id: the recipient of a signal the server did not deliver
   */
  signals[SIGNAL_UNDELIVERABLE] =
    g_signal_new ("undeliverable",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_STRING);
}

static void
natter_rendezvous_client_init (NatterRendezvousClient *self)
{
  self->state = NATTER_RENDEZVOUS_CLIENT_STATE_DISCONNECTED;
  self->online = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->contacts = g_ptr_array_new_with_free_func (g_free);
  self->contact_set = g_hash_table_new (g_str_hash, g_str_equal);
  self->backoff_ms = NATTER_RENDEZVOUS_CLIENT_BACKOFF_MIN_MS;
  self->context = g_main_context_ref_thread_default ();
}

/* }}} */
