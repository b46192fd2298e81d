/* natter-message.c: the message type, its IDs and its signature
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>
#include <sodium.h>

#include "natter-message-private.h"

G_DEFINE_QUARK (natter-message-error-quark, natter_message_error)

G_DEFINE_BOXED_TYPE (NatterMessage, natter_message, natter_message_ref, natter_message_unref)

static const char * const error_code_names[] = {
  [NATTER_MESSAGE_ERROR_TOO_LARGE] = "TOO_LARGE",
  [NATTER_MESSAGE_ERROR_INVALID_UTF8] = "INVALID_UTF8",
  [NATTER_MESSAGE_ERROR_TOO_DEEP] = "TOO_DEEP",
  [NATTER_MESSAGE_ERROR_MALFORMED_JSON] = "MALFORMED_JSON",
  [NATTER_MESSAGE_ERROR_NOT_AN_OBJECT] = "NOT_AN_OBJECT",
  [NATTER_MESSAGE_ERROR_UNSUPPORTED_VERSION] = "UNSUPPORTED_VERSION",
  [NATTER_MESSAGE_ERROR_UNKNOWN_TYPE] = "UNKNOWN_TYPE",
  [NATTER_MESSAGE_ERROR_MISSING_FIELD] = "MISSING_FIELD",
  [NATTER_MESSAGE_ERROR_WRONG_TYPE] = "WRONG_TYPE",
  [NATTER_MESSAGE_ERROR_OUT_OF_RANGE] = "OUT_OF_RANGE",
  [NATTER_MESSAGE_ERROR_INVALID_PEER_ID] = "INVALID_PEER_ID",
  [NATTER_MESSAGE_ERROR_INVALID_ID] = "INVALID_ID",
  [NATTER_MESSAGE_ERROR_INVALID_BASE64] = "INVALID_BASE64",
  [NATTER_MESSAGE_ERROR_UNKNOWN_FIELD] = "UNKNOWN_FIELD",
  [NATTER_MESSAGE_ERROR_BAD_SIGNATURE] = "BAD_SIGNATURE",
  [NATTER_MESSAGE_ERROR_DECRYPT_FAILED] = "DECRYPT_FAILED",
  [NATTER_MESSAGE_ERROR_INVALID_STATE] = "INVALID_STATE",
};

/**
 * natter_message_error_code_to_string:
 * @code: an error code
 *
 * Returns: the stable name of @code, such as "BAD_SIGNATURE", or NULL.
 */
const char *
natter_message_error_code_to_string (NatterMessageError code)
{
  if ((guint) code >= G_N_ELEMENTS (error_code_names))
    return NULL;
  return error_code_names[code];
}

/**
 * natter_message_error_code_from_string:
 * @text: a name from natter_message_error_code_to_string()
 * @out_code: (out): the code
 *
 * Returns: TRUE when @text names an error code.
 */
gboolean
natter_message_error_code_from_string (const char         *text,
                                       NatterMessageError *out_code)
{
  for (guint i = 0; i < G_N_ELEMENTS (error_code_names); i++)
    if (g_strcmp0 (text, error_code_names[i]) == 0)
      {
        *out_code = (NatterMessageError) i;
        return TRUE;
      }
  return FALSE;
}

static const char * const type_names[NATTER_MESSAGE_N_TYPES] = {
  [NATTER_MESSAGE_TYPE_DIRECT_MESSAGE] = "direct_message",
  [NATTER_MESSAGE_TYPE_GROUP_MESSAGE] = "group_message",
  [NATTER_MESSAGE_TYPE_PRIVATE_MESSAGE] = "private_message",
  [NATTER_MESSAGE_TYPE_MESSAGE_ACK] = "message_ack",
  [NATTER_MESSAGE_TYPE_MESSAGE_DELIVERED] = "message_delivered",
  [NATTER_MESSAGE_TYPE_MESSAGE_READ] = "message_read",
  [NATTER_MESSAGE_TYPE_TYPING_INDICATOR] = "typing_indicator",
  [NATTER_MESSAGE_TYPE_PRESENCE_UPDATE] = "presence_update",
  [NATTER_MESSAGE_TYPE_STATUS_UPDATE] = "status_update",
  [NATTER_MESSAGE_TYPE_FILE_OFFER] = "file_offer",
  [NATTER_MESSAGE_TYPE_FILE_ACCEPT] = "file_accept",
  [NATTER_MESSAGE_TYPE_FILE_CHUNK] = "file_chunk",
  [NATTER_MESSAGE_TYPE_FILE_COMPLETE] = "file_complete",
  [NATTER_MESSAGE_TYPE_PEER_INTRODUCTION] = "peer_introduction",
  [NATTER_MESSAGE_TYPE_CONNECTION_REQUEST] = "connection_request",
  [NATTER_MESSAGE_TYPE_HEARTBEAT] = "heartbeat",
};

/**
 * natter_message_type_to_string:
 * @type: a message type
 *
 * Returns: the wire name of @type ("direct_message", …), or NULL when
 *   @type is not a known type.
 */
const char *
natter_message_type_to_string (NatterMessageType type)
{
  if ((guint) type >= NATTER_MESSAGE_N_TYPES)
    return NULL;
  return type_names[type];
}

/**
 * natter_message_type_from_string:
 * @text: a wire type name
 * @out_type: (out): the type
 *
 * Returns: TRUE when @text is a known type name.
 */
gboolean
natter_message_type_from_string (const char        *text,
                                 NatterMessageType *out_type)
{
  if (text == NULL)
    return FALSE;
  for (guint i = 0; i < NATTER_MESSAGE_N_TYPES; i++)
    if (strcmp (text, type_names[i]) == 0)
      {
        *out_type = (NatterMessageType) i;
        return TRUE;
      }
  return FALSE;
}

/**
 * natter_message_id_new:
 *
 * Returns: (transfer full): a fresh message ID,
 *   "msg_<ms timestamp>_<16 random hex digits>".
 */
char *
natter_message_id_new (void)
{
  guint8 random[8];
  char hex[sizeof random * 2 + 1];

  if (sodium_init () < 0)
    g_error ("libsodium cannot be initialised");
  randombytes_buf (random, sizeof random);
  sodium_bin2hex (hex, sizeof hex, random, sizeof random);
  return g_strdup_printf ("msg_%" G_GINT64_FORMAT "_%s", g_get_real_time () / 1000, hex);
}

/**
 * natter_message_id_is_valid:
 * @id: (nullable): text
 *
 * Message, file, group and key IDs are 8 to 128 characters of
 * A-Z, a-z, 0-9, '_' and '-': safe in file names, SQL and logs.
 *
 * Returns: TRUE when @id is a valid ID.
 */
gboolean
natter_message_id_is_valid (const char *id)
{
  gsize len = 0;

  if (id == NULL)
    return FALSE;
  for (const char *p = id; *p != '\0'; p++, len++)
    if (!g_ascii_isalnum (*p) && *p != '_' && *p != '-')
      return FALSE;
  return len >= 8 && len <= 128;
}

NatterMessage *
natter_message_alloc (void)
{
  NatterMessage *self = g_new0 (NatterMessage, 1);

  g_atomic_ref_count_init (&self->ref_count);
  self->to = g_new0 (char *, 1);
  self->route = g_new0 (char *, 1);
  self->vector_clock = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return self;
}

/**
 * natter_message_new:
 * @type: the message type
 *
 * Returns: (transfer full): a new message of @type with a fresh ID, the
 *   current time, version "1.0", an empty content object, and no
 *   recipient, route or clock entry yet.
 */
NatterMessage *
natter_message_new (NatterMessageType type)
{
  NatterMessage *self = natter_message_alloc ();

  self->id = natter_message_id_new ();
  self->type = type;
  self->version = g_strdup (NATTER_MESSAGE_VERSION);
  self->content = json_object_new ();
  self->timestamp = g_get_real_time () / 1000;
  return self;
}

/**
 * natter_message_ref:
 * @self: a message
 *
 * Returns: (transfer full): @self
 */
NatterMessage *
natter_message_ref (NatterMessage *self)
{
  g_return_val_if_fail (self != NULL, NULL);

  g_atomic_ref_count_inc (&self->ref_count);
  return self;
}

/**
 * natter_message_unref:
 * @self: (transfer full): a message
 *
 * Drops a reference, freeing @self with the last one.
 */
void
natter_message_unref (NatterMessage *self)
{
  g_return_if_fail (self != NULL);

  if (!g_atomic_ref_count_dec (&self->ref_count))
    return;

  g_free (self->id);
  g_free (self->version);
  g_free (self->from);
  g_strfreev (self->to);
  g_strfreev (self->route);
  g_free (self->group);
  g_clear_pointer (&self->content, json_object_unref);
  g_clear_pointer (&self->vector_clock, g_hash_table_unref);
  g_clear_pointer (&self->ciphertext, g_bytes_unref);
  g_free (self->key_id);
  g_clear_pointer (&self->tree, g_bytes_unref);
  g_free (self);
}

static JsonObject *
copy_object (JsonObject *object)
{
  g_autoptr(JsonNode) node = json_node_init_object (json_node_alloc (), object);
  g_autoptr(GString) text = g_string_new (NULL);
  g_autoptr(JsonParser) parser = json_parser_new ();

  /* json_node_copy() shares the object, so go through text for a deep
   * copy that the caller may change freely. */
  natter_json_write_canonical (text, node);
  if (!json_parser_load_from_data (parser, text->str, text->len, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return json_object_new ();
  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

/**
 * natter_message_copy:
 * @self: a message
 *
 * Returns: (transfer full): a deep copy of @self, which can be changed
 *   (route, hops, …) without touching @self.
 */
NatterMessage *
natter_message_copy (NatterMessage *self)
{
  NatterMessage *copy;
  GHashTableIter iter;
  gpointer key, value;

  g_return_val_if_fail (self != NULL, NULL);

  copy = natter_message_alloc ();
  copy->id = g_strdup (self->id);
  copy->type = self->type;
  copy->version = g_strdup (self->version);
  copy->from = g_strdup (self->from);
  g_strfreev (copy->to);
  copy->to = self->to ? g_strdupv (self->to) : g_new0 (char *, 1);
  g_strfreev (copy->route);
  copy->route = self->route ? g_strdupv (self->route) : g_new0 (char *, 1);
  copy->hops = self->hops;
  copy->group = g_strdup (self->group);
  if (self->content != NULL)
    copy->content = copy_object (self->content);
  copy->timestamp = self->timestamp;
  copy->sequence = self->sequence;
  if (self->vector_clock != NULL)
    {
      g_hash_table_iter_init (&iter, self->vector_clock);
      while (g_hash_table_iter_next (&iter, &key, &value))
        natter_message_set_clock (copy, key, *(guint64 *) value);
    }
  copy->requires_ack = self->requires_ack;
  copy->ttl = self->ttl;
  copy->retry_count = self->retry_count;
  copy->has_signature = self->has_signature;
  memcpy (copy->signature, self->signature, sizeof copy->signature);
  copy->encrypted = self->encrypted;
  memcpy (copy->nonce, self->nonce, sizeof copy->nonce);
  if (self->ciphertext != NULL)
    copy->ciphertext = g_bytes_ref (self->ciphertext);  /* immutable */
  copy->key_id = g_strdup (self->key_id);
  if (self->tree != NULL)
    copy->tree = g_bytes_ref (self->tree);  /* immutable */

  return copy;
}

/**
 * natter_message_set_clock:
 * @self: a message
 * @peer_id: a peer ID
 * @value: its counter
 *
 * Sets the vector clock entry of @peer_id.
 */
void
natter_message_set_clock (NatterMessage *self,
                          const char    *peer_id,
                          guint64        value)
{
  g_return_if_fail (self != NULL);
  g_return_if_fail (peer_id != NULL);

  if (self->vector_clock == NULL)
    self->vector_clock = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_hash_table_replace (self->vector_clock, g_strdup (peer_id), g_memdup2 (&value, sizeof value));
}

/**
 * natter_message_get_clock:
 * @self: a message
 * @peer_id: a peer ID
 *
 * Returns: the vector clock entry of @peer_id, 0 when there is none.
 */
guint64
natter_message_get_clock (NatterMessage *self,
                          const char    *peer_id)
{
  const guint64 *value;

  g_return_val_if_fail (self != NULL, 0);

  if (self->vector_clock == NULL || peer_id == NULL)
    return 0;
  value = g_hash_table_lookup (self->vector_clock, peer_id);
  return value ? *value : 0;
}

/**
 * natter_message_validate:
 * @self: a message
 * @error: return location for a #GError
 *
 * Checks every field of @self with the decoder's rules.
 *
 * Returns: TRUE when @self would be accepted on the wire.
 */
gboolean
natter_message_validate (NatterMessage  *self,
                         GError        **error)
{
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(NatterMessage) check = NULL;

  g_return_val_if_fail (self != NULL, FALSE);

  object = natter_message_to_json_object (self, FALSE);
  check = natter_message_alloc ();
  return natter_message_fill_from_object (check, object, error);
}

/**
 * natter_message_canonical_bytes:
 * @self: a message
 *
 * The byte string that the signature covers: "natter-message-v1\n" and
 * the canonical JSON of every field but route, hops, retryCount and
 * signature (docs/protocol.md).
 *
 * Returns: (transfer full): the bytes
 */
GBytes *
natter_message_canonical_bytes (NatterMessage *self)
{
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(JsonNode) root = NULL;
  GString *out;

  g_return_val_if_fail (self != NULL, NULL);

  object = natter_message_to_json_object (self, TRUE);
  root = json_node_init_object (json_node_alloc (), object);
  out = g_string_sized_new (512);
  g_string_append (out, NATTER_MESSAGE_SIGNING_PREFIX);
  natter_json_write_canonical (out, root);
  return g_string_free_to_bytes (out);
}

/**
 * natter_message_sign:
 * @self: a message
 * @identity: its author
 * @error: return location for a #GError
 *
 * Validates @self and signs it with @identity, filling @self->from when
 * it is unset.  Encrypt before signing: the signature covers the envelope.
 *
 * Returns: TRUE on success; the validation error, or
 *   NATTER_MESSAGE_ERROR_INVALID_STATE when @identity is not the author.
 */
gboolean
natter_message_sign (NatterMessage   *self,
                     NatterIdentity  *identity,
                     GError         **error)
{
  g_autoptr(GBytes) bytes = NULL;
  const char *peer_id;
  gsize len;
  const guint8 *data;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (NATTER_IS_IDENTITY (identity), FALSE);

  peer_id = natter_identity_get_peer_id (identity);
  if (self->from == NULL)
    self->from = g_strdup (peer_id);
  else if (strcmp (self->from, peer_id) != 0)
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE,
                   "from: %s is not the signing identity %s", self->from, peer_id);
      return FALSE;
    }

  if (!natter_message_validate (self, error))
    return FALSE;

  bytes = natter_message_canonical_bytes (self);
  data = g_bytes_get_data (bytes, &len);
  natter_identity_sign (identity, data, len, self->signature);
  self->has_signature = TRUE;
  return TRUE;
}

/**
 * natter_message_sign_encode:
 * @self: a message
 * @identity: its author
 * @error: return location for a #GError
 *
 * natter_message_sign() and natter_message_encode() in one pass: the wire
 * form is the canonical JSON that was signed, with the signature (and any
 * routing fields that are not at their defaults) appended as further
 * members.  Member order does not matter to a decoder, and this saves
 * serializing the message twice.
 *
 * Returns: (transfer full): the wire bytes, or %NULL as for
 *   natter_message_sign()
 */
GBytes *
natter_message_sign_encode (NatterMessage   *self,
                            NatterIdentity  *identity,
                            GError         **error)
{
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(NatterMessage) check = NULL;
  g_autoptr(GString) canonical = NULL;
  g_autofree char *signature = NULL;
  const char *peer_id;
  const char *data;
  gsize len, prefix = strlen (NATTER_MESSAGE_SIGNING_PREFIX);
  GString *wire;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (NATTER_IS_IDENTITY (identity), NULL);

  peer_id = natter_identity_get_peer_id (identity);
  if (self->from == NULL)
    self->from = g_strdup (peer_id);
  else if (strcmp (self->from, peer_id) != 0)
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE,
                   "from: %s is not the signing identity %s", self->from, peer_id);
      return NULL;
    }
  /* One object serves both the validation (what a receiver would accept)
   * and, without the unsigned members, the canonical form: the same as
   * natter_message_validate() then natter_message_canonical_bytes(). */
  object = natter_message_to_json_object (self, FALSE);
  check = natter_message_alloc ();
  if (!natter_message_fill_from_object (check, object, error))
    return NULL;
  json_object_remove_member (object, "route");
  json_object_remove_member (object, "hops");
  json_object_remove_member (object, "retryCount");
  if (json_object_has_member (object, "signature"))
    json_object_remove_member (object, "signature");
  root = json_node_init_object (json_node_alloc (), object);
  canonical = g_string_sized_new (1024);
  g_string_append (canonical, NATTER_MESSAGE_SIGNING_PREFIX);
  natter_json_write_canonical (canonical, root);
  data = canonical->str;
  len = canonical->len;
  natter_identity_sign (identity, (const guint8 *) data, len, self->signature);
  self->has_signature = TRUE;
  signature = g_base64_encode (self->signature, NATTER_SIGNATURE_LEN);

  /* The canonical object ends with '}'. */
  g_assert (len > prefix + 2 && data[len - 1] == '}');
  wire = g_string_sized_new (len + 128);
  g_string_append_len (wire, data + prefix, (gssize) (len - prefix - 1));
  if (self->hops > 0)
    g_string_append_printf (wire, ",\"hops\":%u", self->hops);
  if (self->retry_count > 0)
    g_string_append_printf (wire, ",\"retryCount\":%u", self->retry_count);
  if (self->route != NULL && self->route[0] != NULL)
    {
      g_string_append (wire, ",\"route\":[");
      for (guint i = 0; self->route[i] != NULL; i++)
        g_string_append_printf (wire, "%s\"%s\"", i > 0 ? "," : "", self->route[i]);
      g_string_append_c (wire, ']');
    }
  g_string_append_printf (wire, ",\"signature\":\"%s\"}", signature);
  if (wire->len > NATTER_MESSAGE_MAX_SIZE)
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_TOO_LARGE,
                   "The message is %" G_GSIZE_FORMAT " bytes encoded; at most %d are allowed",
                   wire->len, NATTER_MESSAGE_MAX_SIZE);
      g_string_free (wire, TRUE);
      return NULL;
    }
  return g_string_free_to_bytes (wire);
}

/**
 * natter_message_verify:
 * @self: a message
 * @error: return location for a #GError
 *
 * Checks the signature against the Ed25519 key inside @self->from.
 *
 * Returns: TRUE when the signature is valid; otherwise
 *   NATTER_MESSAGE_ERROR_BAD_SIGNATURE (or INVALID_PEER_ID for a bad @from).
 */
gboolean
natter_message_verify (NatterMessage  *self,
                       GError        **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GBytes) bytes = NULL;
  guint8 public_key[NATTER_PUBLIC_KEY_LEN];
  gsize len;
  const guint8 *data;

  g_return_val_if_fail (self != NULL, FALSE);

  if (!self->has_signature)
    {
      g_set_error_literal (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_BAD_SIGNATURE,
                           "signature: the message is not signed");
      return FALSE;
    }

  if (self->from == NULL || !natter_peer_id_parse (self->from, public_key, &local_error))
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_PEER_ID,
                   "from: %s", local_error ? local_error->message : "missing");
      return FALSE;
    }

  bytes = natter_message_canonical_bytes (self);
  data = g_bytes_get_data (bytes, &len);
  if (!natter_verify_signature (public_key, data, len, self->signature, NULL))
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_BAD_SIGNATURE,
                   "signature: does not match the message and its author %s", self->from);
      return FALSE;
    }

  return TRUE;
}
