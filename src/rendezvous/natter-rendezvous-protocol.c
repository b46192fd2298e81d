/* natter-rendezvous-protocol.c: messages and limits of the rendezvous protocol
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "natter-json-scan.h"
#include "natter-rendezvous-protocol.h"

G_DEFINE_QUARK (natter-rendezvous-error-quark, natter_rendezvous_error)

/* {{{ Parsing */

static gboolean
bad_field (GError     **error,
           const char  *field,
           const char  *detail)
{
  g_set_error (error, NATTER_RENDEZVOUS_ERROR, NATTER_RENDEZVOUS_ERROR_BAD_FIELD,
               "%s: %s", field, detail);
  return FALSE;
}

static const char *
get_string (JsonObject  *object,
            const char  *field,
            GError     **error)
{
  JsonNode *node = json_object_get_member (object, field);

  if (node == NULL)
    {
      bad_field (error, field, "missing");
      return NULL;
    }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      bad_field (error, field, "not a string");
      return NULL;
    }

  return json_node_get_string (node);
}

/* Only the canonical form is accepted, so one peer has one spelling and
 * the server's tables cannot be confused by case or dashes. */
static char *
get_peer_id (JsonNode    *node,
             const char  *field,
             guint8      *out_public_key,
             GError     **error)
{
  guint8 public_key[NATTER_PUBLIC_KEY_LEN];
  g_autoptr(GError) local_error = NULL;
  g_autofree char *canonical = NULL;
  const char *text;

  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      bad_field (error, field, "not a string");
      return NULL;
    }
  text = json_node_get_string (node);
  if (strlen (text) != NATTER_PEER_ID_LEN)
    {
      bad_field (error, field, "not a peer ID");
      return NULL;
    }
  if (!natter_peer_id_parse (text, public_key, &local_error))
    {
      bad_field (error, field, local_error->message);
      return NULL;
    }
  canonical = natter_peer_id_from_public_key (public_key);
  if (strcmp (canonical, text) != 0)
    {
      bad_field (error, field, "peer ID not in canonical form");
      return NULL;
    }
  if (out_public_key != NULL)
    memcpy (out_public_key, public_key, NATTER_PUBLIC_KEY_LEN);

  return g_steal_pointer (&canonical);
}

static char *
get_peer_id_member (JsonObject  *object,
                    const char  *field,
                    guint8      *out_public_key,
                    GError     **error)
{
  JsonNode *node = json_object_get_member (object, field);

  if (node == NULL)
    {
      bad_field (error, field, "missing");
      return NULL;
    }

  return get_peer_id (node, field, out_public_key, error);
}

/* Strict standard base64 with padding: g_base64_decode() skips what it
 * does not know, so the alphabet and length are checked first and the
 * result must encode back to the same text. */
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
  if (text_len % 4 != 0 || text_len / 4 * 3 > max_len + 2)
    {
      bad_field (error, field, "bad base64 length");
      return NULL;
    }
  for (gsize i = 0; i < text_len; i++)
    {
      char c = text[i];

      if (!(g_ascii_isalnum (c) || c == '+' || c == '/' ||
            (c == '=' && i >= text_len - 2)))
        {
          bad_field (error, field, "not base64");
          return NULL;
        }
    }

  decoded = g_base64_decode (text, &len);
  again = g_base64_encode (decoded, len);
  if (strcmp (again, text) != 0 || len > max_len)
    {
      bad_field (error, field, "not canonical base64");
      return NULL;
    }

  return g_bytes_new_take (g_steal_pointer (&decoded), len);
}

static gboolean
check_members (JsonObject          *object,
               const char * const  *allowed,
               GError             **error)
{
  g_autoptr(GList) members = json_object_get_members (object);

  for (GList *l = members; l != NULL; l = l->next)
    {
      if (!g_strv_contains (allowed, l->data))
        {
          g_set_error (error, NATTER_RENDEZVOUS_ERROR, NATTER_RENDEZVOUS_ERROR_BAD_FIELD,
                       "unexpected member \"%.32s\"", (const char *) l->data);
          return FALSE;
        }
    }

  return TRUE;
}

static gboolean
parse_register (JsonObject               *object,
                NatterRendezvousMessage  *message,
                GError                  **error)
{
  static const char * const allowed[] = { "type", "peer", "signature", NULL };
  g_autoptr(GBytes) signature = NULL;

  if (!check_members (object, allowed, error))
    return FALSE;
  message->peer = get_peer_id_member (object, "peer", message->public_key, error);
  if (message->peer == NULL)
    return FALSE;
  signature = get_base64 (object, "signature", NATTER_SIGNATURE_LEN, error);
  if (signature == NULL)
    return FALSE;
  if (g_bytes_get_size (signature) != NATTER_SIGNATURE_LEN)
    return bad_field (error, "signature", "not 64 bytes");
  memcpy (message->signature, g_bytes_get_data (signature, NULL), NATTER_SIGNATURE_LEN);

  return TRUE;
}

static gboolean
parse_contacts (JsonObject               *object,
                NatterRendezvousMessage  *message,
                GError                  **error)
{
  static const char * const allowed[] = { "type", "peers", NULL };
  g_autoptr(GHashTable) seen = NULL;
  JsonNode *node;
  JsonArray *array;
  guint n;

  if (!check_members (object, allowed, error))
    return FALSE;
  node = json_object_get_member (object, "peers");
  if (node == NULL)
    return bad_field (error, "peers", "missing");
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return bad_field (error, "peers", "not an array");
  array = json_node_get_array (node);
  n = json_array_get_length (array);
  if (n > NATTER_RENDEZVOUS_MAX_CONTACTS)
    {
      g_set_error (error, NATTER_RENDEZVOUS_ERROR, NATTER_RENDEZVOUS_ERROR_BAD_FIELD,
                   "peers: %u entries, more than the %d allowed", n, NATTER_RENDEZVOUS_MAX_CONTACTS);
      return FALSE;
    }

  seen = g_hash_table_new (g_str_hash, g_str_equal);
  message->peers = g_ptr_array_new_full (n, g_free);
  for (guint i = 0; i < n; i++)
    {
      char *peer = get_peer_id (json_array_get_element (array, i), "peers", NULL, error);

      if (peer == NULL)
        return FALSE;
      if (!g_hash_table_add (seen, peer))
        {
          g_free (peer);
          continue;
        }
      g_ptr_array_add (message->peers, peer);
    }

  return TRUE;
}

static gboolean
parse_signal (JsonObject               *object,
              NatterRendezvousMessage  *message,
              GError                  **error)
{
  static const char * const allowed[] = { "type", "to", "blob", NULL };

  if (!check_members (object, allowed, error))
    return FALSE;
  message->to = get_peer_id_member (object, "to", NULL, error);
  if (message->to == NULL)
    return FALSE;
  message->blob = get_base64 (object, "blob", NATTER_RENDEZVOUS_MAX_BLOB, error);

  return message->blob != NULL;
}

static gboolean
parse_ping (JsonObject               *object,
            NatterRendezvousMessage  *message,
            GError                  **error)
{
  static const char * const allowed[] = { "type", NULL };

  return check_members (object, allowed, error);
}

/**
 * natter_rendezvous_message_parse:
 *
 * Validates one text frame from a client, in a fixed order: size, UTF-8,
 * nesting depth, JSON syntax, an object without duplicate members, type,
 * then each field's presence, type and range, with no other members.
 *
 * Returns: (transfer full): the message, or %NULL with @error set.
 */
NatterRendezvousMessage *
natter_rendezvous_message_parse (const guint8  *data,
                                 gsize          len,
                                 GError       **error)
{
  g_autoptr(NatterRendezvousMessage) message = NULL;
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GError) local_error = NULL;
  JsonObject *object;
  JsonNode *root;
  const char *type;
  const char *problem = NULL;
  guint top_members;
  gboolean ok;

  if (len > NATTER_RENDEZVOUS_MAX_FRAME)
    {
      g_set_error (error, NATTER_RENDEZVOUS_ERROR, NATTER_RENDEZVOUS_ERROR_TOO_LARGE,
                   "message of %" G_GSIZE_FORMAT " bytes, more than the %d allowed",
                   len, NATTER_RENDEZVOUS_MAX_FRAME);
      return NULL;
    }
  if (!g_utf8_validate_len ((const char *) data, len, NULL))
    {
      g_set_error (error, NATTER_RENDEZVOUS_ERROR, NATTER_RENDEZVOUS_ERROR_MALFORMED,
                   "message is not valid UTF-8");
      return NULL;
    }
  if (!natter_json_scan_object (data, len, NATTER_RENDEZVOUS_MAX_DEPTH, &top_members, &problem))
    {
      g_set_error (error, NATTER_RENDEZVOUS_ERROR, NATTER_RENDEZVOUS_ERROR_MALFORMED,
                   "message %s", problem);
      return NULL;
    }

  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, (const char *) data, len, &local_error))
    {
      g_set_error (error, NATTER_RENDEZVOUS_ERROR, NATTER_RENDEZVOUS_ERROR_MALFORMED,
                   "message is not JSON: %s", local_error->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, NATTER_RENDEZVOUS_ERROR, NATTER_RENDEZVOUS_ERROR_MALFORMED,
                   "message is not a JSON object");
      return NULL;
    }
  object = json_node_get_object (root);
  if (json_object_get_size (object) != top_members)
    {
      g_set_error (error, NATTER_RENDEZVOUS_ERROR, NATTER_RENDEZVOUS_ERROR_MALFORMED,
                   "message has two members with the same name");
      return NULL;
    }

  type = get_string (object, "type", error);
  if (type == NULL)
    return NULL;

  message = g_new0 (NatterRendezvousMessage, 1);
  if (strcmp (type, "register") == 0)
    {
      message->type = NATTER_RENDEZVOUS_MESSAGE_REGISTER;
      ok = parse_register (object, message, error);
    }
  else if (strcmp (type, "contacts") == 0)
    {
      message->type = NATTER_RENDEZVOUS_MESSAGE_CONTACTS;
      ok = parse_contacts (object, message, error);
    }
  else if (strcmp (type, "signal") == 0)
    {
      message->type = NATTER_RENDEZVOUS_MESSAGE_SIGNAL;
      ok = parse_signal (object, message, error);
    }
  else if (strcmp (type, "ping") == 0)
    {
      message->type = NATTER_RENDEZVOUS_MESSAGE_PING;
      ok = parse_ping (object, message, error);
    }
  else
    {
      g_set_error (error, NATTER_RENDEZVOUS_ERROR, NATTER_RENDEZVOUS_ERROR_UNKNOWN_TYPE,
                   "unknown message type \"%.32s\"", type);
      ok = FALSE;
    }

  return ok ? g_steal_pointer (&message) : NULL;
}

void
natter_rendezvous_message_free (NatterRendezvousMessage *message)
{
  if (message == NULL)
    return;

  g_free (message->peer);
  g_free (message->to);
  g_clear_pointer (&message->blob, g_bytes_unref);
  g_clear_pointer (&message->peers, g_ptr_array_unref);
  g_free (message);
}

/* }}} */
/* {{{ Registration payload */

GBytes *
natter_rendezvous_register_payload (const guint8 *challenge,
                                    const char   *peer_id)
{
  GByteArray *payload = g_byte_array_new ();

  g_byte_array_append (payload, (const guint8 *) NATTER_RENDEZVOUS_REGISTER_CONTEXT,
                       sizeof NATTER_RENDEZVOUS_REGISTER_CONTEXT);
  g_byte_array_append (payload, challenge, NATTER_RENDEZVOUS_CHALLENGE_LEN);
  g_byte_array_append (payload, (const guint8 *) peer_id, strlen (peer_id));

  return g_byte_array_free_to_bytes (payload);
}

/* }}} */
/* {{{ Server messages
 *
 * Every value put in these is a canonical peer ID or base64 text, neither
 * of which can contain a character that JSON would need escaped. */

char *
natter_rendezvous_build_challenge (const guint8 *challenge)
{
  g_autofree char *encoded = g_base64_encode (challenge, NATTER_RENDEZVOUS_CHALLENGE_LEN);

  return g_strdup_printf ("{\"type\":\"challenge\",\"challenge\":\"%s\",\"context\":\"%s\"}",
                          encoded, NATTER_RENDEZVOUS_REGISTER_CONTEXT);
}

char *
natter_rendezvous_build_registered (const char *peer_id)
{
  return g_strdup_printf ("{\"type\":\"registered\",\"peer\":\"%s\"}", peer_id);
}

char *
natter_rendezvous_build_presence (const char *peer_id,
                                  gboolean    online)
{
  return g_strdup_printf ("{\"type\":\"presence\",\"peer\":\"%s\",\"online\":%s}",
                          peer_id, online ? "true" : "false");
}

char *
natter_rendezvous_build_signal (const char *from,
                                GBytes     *blob)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (blob, &len);
  g_autofree char *encoded = g_base64_encode (data, len);

  return g_strdup_printf ("{\"type\":\"signal\",\"from\":\"%s\",\"blob\":\"%s\"}", from, encoded);
}

char *
natter_rendezvous_build_undeliverable (const char *to)
{
  return g_strdup_printf ("{\"type\":\"undeliverable\",\"to\":\"%s\"}", to);
}

char *
natter_rendezvous_build_pong (void)
{
  return g_strdup ("{\"type\":\"pong\"}");
}

/* }}} */
/* {{{ Token bucket */

void
natter_token_bucket_init (NatterTokenBucket *bucket,
                          double             rate,
                          double             burst,
                          gint64             now_us)
{
  bucket->rate = rate;
  bucket->burst = burst;
  bucket->tokens = burst;
  bucket->last_us = now_us;
}

gboolean
natter_token_bucket_take (NatterTokenBucket *bucket,
                          gint64             now_us)
{
  if (now_us > bucket->last_us)
    {
      bucket->tokens = MIN (bucket->burst,
                            bucket->tokens + (now_us - bucket->last_us) * bucket->rate / G_USEC_PER_SEC);
      bucket->last_us = now_us;
    }
  if (bucket->tokens < 1.0)
    return FALSE;
  bucket->tokens -= 1.0;

  return TRUE;
}

/* }}} */
