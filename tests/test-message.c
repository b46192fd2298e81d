/* test-message.c: tests of the wire message: codec, signature, encryption
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include "core/natter-crypto.h"
#include "core/natter-message.h"

#define HASH_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  /* bytes 0..31 */

static NatterIdentity *alice;
static NatterIdentity *bob;
static NatterIdentity *carol;

static NatterIdentity *
identity_from_byte (guint8 byte)
{
  guint8 seed[32];
  GError *error = NULL;
  NatterIdentity *identity;

  memset (seed, byte, sizeof seed);
  identity = natter_identity_new_from_seed (seed, sizeof seed, &error);
  g_assert_no_error (error);
  return identity;
}

static JsonObject *
object_from_json (const char *json)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  GError *error = NULL;

  json_parser_load_from_data (parser, json, -1, &error);
  g_assert_no_error (error);
  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

/* Valid content for each type, as a user of that type would send it. */
static JsonObject *
sample_content (NatterMessageType type)
{
  g_autofree char *json = NULL;

  switch (type)
    {
    case NATTER_MESSAGE_TYPE_DIRECT_MESSAGE:
    case NATTER_MESSAGE_TYPE_PRIVATE_MESSAGE:
      json = g_strdup ("{\"text\":\"Hello, Bob! \\u00e9t\\u00e9 \\ud83d\\ude00 \\\"quoted\\\"\\n\","
                       "\"attachments\":[{\"fileId\":\"file_0001\",\"name\":\"cat.png\","
                       "\"size\":1234,\"mediaType\":\"image/png\",\"hash\":\"" HASH_B64 "\"}],"
                       "\"metadata\":{\"lang\":\"en\",\"n\":[1,-2,{\"x\":null,\"y\":true}]}}");
      break;
    case NATTER_MESSAGE_TYPE_GROUP_MESSAGE:
      json = g_strdup ("{\"text\":\"Hello, family\"}");
      break;
    case NATTER_MESSAGE_TYPE_MESSAGE_ACK:
    case NATTER_MESSAGE_TYPE_MESSAGE_DELIVERED:
    case NATTER_MESSAGE_TYPE_MESSAGE_READ:
      json = g_strdup ("{\"messageId\":\"msg_1640995200000_0123456789abcdef\"}");
      break;
    case NATTER_MESSAGE_TYPE_TYPING_INDICATOR:
      json = g_strdup ("{\"typing\":true}");
      break;
    case NATTER_MESSAGE_TYPE_PRESENCE_UPDATE:
      json = g_strdup ("{\"status\":\"away\"}");
      break;
    case NATTER_MESSAGE_TYPE_STATUS_UPDATE:
      json = g_strdup ("{\"text\":\"Out for lunch\"}");
      break;
    case NATTER_MESSAGE_TYPE_FILE_OFFER:
      json = g_strdup ("{\"fileId\":\"file_0001\",\"name\":\"report.pdf\",\"size\":1048576,"
                       "\"mediaType\":\"application/pdf\",\"hash\":\"" HASH_B64 "\"}");
      break;
    case NATTER_MESSAGE_TYPE_FILE_ACCEPT:
      json = g_strdup ("{\"fileId\":\"file_0001\",\"offset\":65536}");
      break;
    case NATTER_MESSAGE_TYPE_FILE_CHUNK:
      json = g_strdup ("{\"fileId\":\"file_0001\",\"offset\":65536,\"data\":\"aGVsbG8=\"}");
      break;
    case NATTER_MESSAGE_TYPE_FILE_COMPLETE:
      json = g_strdup ("{\"fileId\":\"file_0001\",\"hash\":\"" HASH_B64 "\"}");
      break;
    case NATTER_MESSAGE_TYPE_PEER_INTRODUCTION:
      json = g_strdup_printf ("{\"peer\":\"%s\",\"blob\":\"c2lnbmFs\"}",
                              natter_identity_get_peer_id (carol));
      break;
    case NATTER_MESSAGE_TYPE_CONNECTION_REQUEST:
      json = g_strdup_printf ("{\"target\":\"%s\",\"blob\":\"c2lnbmFs\"}",
                              natter_identity_get_peer_id (carol));
      break;
    case NATTER_MESSAGE_TYPE_HEARTBEAT:
      json = g_strdup ("{\"sentAt\":1640995200000}");
      break;
    default:
      g_assert_not_reached ();
    }

  return object_from_json (json);
}

/* A message from Alice to Bob with every field set to a non-default value. */
static NatterMessage *
sample_message (NatterMessageType type)
{
  NatterMessage *msg = natter_message_new (type);
  const char *to[] = { natter_identity_get_peer_id (bob), NULL };
  const char *route[] = { natter_identity_get_peer_id (alice), NULL };

  msg->from = g_strdup (natter_identity_get_peer_id (alice));
  g_strfreev (msg->to);
  msg->to = g_strdupv ((char **) to);
  g_strfreev (msg->route);
  msg->route = g_strdupv ((char **) route);
  msg->hops = 1;
  if (type == NATTER_MESSAGE_TYPE_GROUP_MESSAGE)
    msg->group = g_strdup ("grp_family_0001");
  json_object_unref (msg->content);
  msg->content = sample_content (type);
  msg->timestamp = G_GINT64_CONSTANT (1640995200000);
  msg->sequence = 42;
  natter_message_set_clock (msg, natter_identity_get_peer_id (alice), 42);
  natter_message_set_clock (msg, natter_identity_get_peer_id (bob), 15);
  msg->requires_ack = TRUE;
  msg->ttl = 3600000;
  msg->retry_count = 2;
  return msg;
}

static gboolean
content_equal (JsonObject *a,
               JsonObject *b)
{
  g_autoptr(JsonNode) na = json_node_init_object (json_node_alloc (), a);
  g_autoptr(JsonNode) nb = json_node_init_object (json_node_alloc (), b);

  return json_node_equal (na, nb);
}

static void
assert_messages_equal (NatterMessage *a,
                       NatterMessage *b)
{
  GHashTableIter iter;
  gpointer key, value;

  g_assert_cmpstr (a->id, ==, b->id);
  g_assert_cmpint (a->type, ==, b->type);
  g_assert_cmpstr (a->version, ==, b->version);
  g_assert_cmpstr (a->from, ==, b->from);
  g_assert_true (g_strv_equal ((const char * const *) a->to, (const char * const *) b->to));
  g_assert_true (g_strv_equal ((const char * const *) a->route, (const char * const *) b->route));
  g_assert_cmpuint (a->hops, ==, b->hops);
  g_assert_cmpstr (a->group, ==, b->group);
  g_assert_cmpint (a->timestamp, ==, b->timestamp);
  g_assert_cmpuint (a->sequence, ==, b->sequence);
  g_assert_cmpuint (g_hash_table_size (a->vector_clock), ==, g_hash_table_size (b->vector_clock));
  g_hash_table_iter_init (&iter, a->vector_clock);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      g_assert_true (g_hash_table_contains (b->vector_clock, key));
      g_assert_cmpuint (*(guint64 *) value, ==, natter_message_get_clock (b, key));
    }
  g_assert_cmpint (a->requires_ack, ==, b->requires_ack);
  g_assert_cmpint (a->ttl, ==, b->ttl);
  g_assert_cmpuint (a->retry_count, ==, b->retry_count);
  g_assert_cmpint (a->has_signature, ==, b->has_signature);
  if (a->has_signature)
    g_assert_cmpmem (a->signature, sizeof a->signature, b->signature, sizeof b->signature);
  g_assert_cmpint (a->encrypted, ==, b->encrypted);
  g_assert_true ((a->tree == NULL) == (b->tree == NULL));
  if (a->tree != NULL)
    g_assert_true (g_bytes_equal (a->tree, b->tree));
  if (a->encrypted)
    {
      g_assert_cmpmem (a->nonce, sizeof a->nonce, b->nonce, sizeof b->nonce);
      g_assert_true (g_bytes_equal (a->ciphertext, b->ciphertext));
      g_assert_cmpstr (a->key_id, ==, b->key_id);
    }
  else
    {
      g_assert_true (content_equal (a->content, b->content));
    }
}

static NatterMessage *
round_trip (NatterMessage            *msg,
            NatterMessageDecodeFlags  flags)
{
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GBytes) again = NULL;
  NatterMessage *decoded;
  GError *error = NULL;

  bytes = natter_message_encode (msg, &error);
  g_assert_no_error (error);
  decoded = natter_message_decode (bytes, flags, &error);
  g_assert_no_error (error);
  g_assert_nonnull (decoded);

  /* Encoding is deterministic. */
  again = natter_message_encode (decoded, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (bytes, again));

  return decoded;
}

static void
test_type_names (void)
{
  for (guint i = 0; i < NATTER_MESSAGE_N_TYPES; i++)
    {
      const char *name = natter_message_type_to_string (i);
      NatterMessageType type;

      g_assert_nonnull (name);
      g_assert_true (natter_message_type_from_string (name, &type));
      g_assert_cmpint (type, ==, i);
    }
  g_assert_null (natter_message_type_to_string (NATTER_MESSAGE_N_TYPES));
  g_assert_false (natter_message_type_from_string ("DIRECT_MESSAGE", &(NatterMessageType) { 0 }));
  g_assert_false (natter_message_type_from_string (NULL, &(NatterMessageType) { 0 }));
  g_assert_cmpstr (natter_message_type_to_string (NATTER_MESSAGE_TYPE_CONNECTION_REQUEST), ==,
                   "connection_request");

  for (guint code = 0; natter_message_error_code_to_string (code) != NULL; code++)
    {
      NatterMessageError back;

      g_assert_true (natter_message_error_code_from_string (natter_message_error_code_to_string (code), &back));
      g_assert_cmpint (back, ==, code);
    }
}

static void
test_ids (void)
{
  g_autofree char *a = natter_message_id_new ();
  g_autofree char *b = natter_message_id_new ();
  g_auto(GStrv) parts = g_strsplit (a, "_", -1);

  g_assert_true (natter_message_id_is_valid (a));
  g_assert_cmpstr (a, !=, b);
  g_assert_cmpuint (g_strv_length (parts), ==, 3);
  g_assert_cmpstr (parts[0], ==, "msg");
  g_assert_cmpuint (g_ascii_strtoull (parts[1], NULL, 10), >, G_GUINT64_CONSTANT (1600000000000));
  g_assert_cmpuint (strlen (parts[2]), ==, 16);

  g_assert_true (natter_message_id_is_valid ("abcdefgh"));
  g_assert_true (natter_message_id_is_valid ("msg_1640995200000_abc123"));
  g_assert_false (natter_message_id_is_valid ("abcdefg"));
  g_assert_false (natter_message_id_is_valid ("msg 1234567"));
  g_assert_false (natter_message_id_is_valid ("../../etc/passwd"));
  g_assert_false (natter_message_id_is_valid ("msg_\xc3\xa9t\xc3\xa9_1234"));
  g_assert_false (natter_message_id_is_valid (NULL));
  {
    g_autofree char *long_id = g_strnfill (129, 'a');

    g_assert_false (natter_message_id_is_valid (long_id));
    long_id[128] = '\0';
    g_assert_true (natter_message_id_is_valid (long_id));
  }
}

static void
test_round_trip_every_type (void)
{
  for (guint type = 0; type < NATTER_MESSAGE_N_TYPES; type++)
    {
      g_autoptr(NatterMessage) msg = sample_message (type);
      g_autoptr(NatterMessage) decoded = NULL;

      g_test_message ("type %s", natter_message_type_to_string (type));
      decoded = round_trip (msg, NATTER_MESSAGE_DECODE_NONE);
      assert_messages_equal (msg, decoded);
      g_assert_cmpint (decoded->type, ==, type);
    }
}

static void
test_round_trip_defaults (void)
{
  g_autoptr(NatterMessage) msg = natter_message_new (NATTER_MESSAGE_TYPE_HEARTBEAT);
  g_autoptr(NatterMessage) decoded = NULL;
  g_autoptr(GBytes) bytes = NULL;
  GError *error = NULL;
  char *to[] = { (char *) natter_identity_get_peer_id (bob), NULL };

  /* A fresh message lacks its author and recipient. */
  g_assert_false (natter_message_validate (msg, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_MISSING_FIELD);
  g_assert_nonnull (strstr (error->message, "from"));
  g_clear_error (&error);

  msg->from = g_strdup (natter_identity_get_peer_id (alice));
  g_assert_false (natter_message_validate (msg, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_OUT_OF_RANGE);
  g_assert_nonnull (strstr (error->message, "to"));
  g_clear_error (&error);

  g_strfreev (msg->to);
  msg->to = g_strdupv (to);
  bytes = natter_message_encode (msg, &error);
  g_assert_no_error (error);
  decoded = natter_message_decode (bytes, NATTER_MESSAGE_DECODE_NONE, &error);
  g_assert_no_error (error);
  assert_messages_equal (msg, decoded);
  g_assert_cmpstr (decoded->version, ==, "1.0");
  g_assert_cmpuint (g_strv_length (decoded->route), ==, 0);
  g_assert_false (decoded->has_signature);
}

static void
test_copy (void)
{
  g_autoptr(NatterMessage) msg = sample_message (NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);
  g_autoptr(NatterMessage) copy = natter_message_copy (msg);

  assert_messages_equal (msg, copy);
  json_object_set_string_member (copy->content, "text", "changed");
  g_assert_cmpstr (json_object_get_string_member (msg->content, "text"), !=, "changed");
}

static void
test_canonical_bytes (void)
{
  g_autoptr(NatterMessage) msg = natter_message_new (NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);
  g_autoptr(GBytes) bytes = NULL;
  g_autofree char *expected = NULL;
  const char *a = natter_identity_get_peer_id (alice);
  const char *b = natter_identity_get_peer_id (bob);
  char *to[] = { (char *) b, NULL };
  char *route[] = { (char *) a, (char *) b, NULL };

  g_free (msg->id);
  msg->id = g_strdup ("msg_1640995200000_abc123");
  msg->from = g_strdup (a);
  g_strfreev (msg->to);
  msg->to = g_strdupv (to);
  g_strfreev (msg->route);
  msg->route = g_strdupv (route);
  msg->hops = 1;
  msg->retry_count = 3;
  json_object_unref (msg->content);
  msg->content = object_from_json ("{ \"text\" : \"Hi \\\"B\\\"\\u0001\\t/\\u00e9\", "
                                   "\"metadata\": {\"z\": 1, \"a\": [true, null, -7]} }");
  msg->timestamp = G_GINT64_CONSTANT (1640995200000);
  msg->sequence = 42;
  natter_message_set_clock (msg, b, 15);
  natter_message_set_clock (msg, a, 42);
  msg->requires_ack = TRUE;
  msg->ttl = 3600000;

  /* Keys sorted bytewise, no whitespace, minimal escapes, UTF-8 raw;
   * route, hops, retryCount and signature are not there. */
  expected = g_strdup_printf ("natter-message-v1\n"
                              "{\"content\":{\"metadata\":{\"a\":[true,null,-7],\"z\":1},"
                              "\"text\":\"Hi \\\"B\\\"\\u0001\\t/\xc3\xa9\"},"
                              "\"encrypted\":false,\"from\":\"%s\",\"id\":\"msg_1640995200000_abc123\","
                              "\"requiresAck\":true,\"sequence\":42,\"timestamp\":1640995200000,"
                              "\"to\":[\"%s\"],\"ttl\":3600000,\"type\":\"direct_message\","
                              "\"vectorClock\":{\"%s\":%d,\"%s\":%d},\"version\":\"1.0\"}",
                              a, b,
                              strcmp (a, b) < 0 ? a : b, strcmp (a, b) < 0 ? 42 : 15,
                              strcmp (a, b) < 0 ? b : a, strcmp (a, b) < 0 ? 15 : 42);
  bytes = natter_message_canonical_bytes (msg);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes),
                   expected, strlen (expected));
}

static void
test_sign_verify (void)
{
  for (guint type = 0; type < NATTER_MESSAGE_N_TYPES; type++)
    {
      g_autoptr(NatterMessage) msg = sample_message (type);
      g_autoptr(NatterMessage) decoded = NULL;
      GError *error = NULL;

      g_assert_true (natter_message_sign (msg, alice, &error));
      g_assert_no_error (error);
      g_assert_true (msg->has_signature);
      g_assert_true (natter_message_verify (msg, &error));
      g_assert_no_error (error);

      decoded = round_trip (msg, NATTER_MESSAGE_DECODE_VERIFY);
      assert_messages_equal (msg, decoded);
      g_assert_true (natter_message_verify (decoded, &error));
      g_assert_no_error (error);
    }
}

static void
test_sign_refuses (void)
{
  g_autoptr(NatterMessage) msg = sample_message (NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);
  g_autoptr(NatterMessage) unsigned_msg = sample_message (NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);
  GError *error = NULL;

  /* Bob cannot sign as Alice. */
  g_assert_false (natter_message_sign (msg, bob, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE);
  g_clear_error (&error);
  g_assert_false (msg->has_signature);

  /* An invalid message is not signed. */
  msg->hops = 9;
  g_assert_false (natter_message_sign (msg, alice, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_OUT_OF_RANGE);
  g_assert_nonnull (strstr (error->message, "hops"));
  g_clear_error (&error);

  /* Nor is an unsigned message accepted as signed. */
  g_assert_false (natter_message_verify (unsigned_msg, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_BAD_SIGNATURE);
  g_clear_error (&error);

  /* Floats have no canonical form and are refused before signing. */
  msg->hops = 0;
  json_object_set_object_member (msg->content, "metadata", object_from_json ("{\"pi\":3.14}"));
  g_assert_false (natter_message_sign (msg, alice, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_WRONG_TYPE);
  g_assert_nonnull (strstr (error->message, "content.metadata.pi"));
  g_clear_error (&error);
}

typedef void (*Tamper) (NatterMessage *msg);

static void tamper_id (NatterMessage *m) { g_free (m->id); m->id = g_strdup ("msg_1640995200000_ffffffffffffffff"); }
static void tamper_type (NatterMessage *m) { m->type = NATTER_MESSAGE_TYPE_PRIVATE_MESSAGE; }
static void tamper_version (NatterMessage *m) { g_free (m->version); m->version = g_strdup ("1.1"); }
static void tamper_from (NatterMessage *m) { g_free (m->from); m->from = g_strdup (natter_identity_get_peer_id (carol)); }
static void tamper_to_replace (NatterMessage *m) { g_free (m->to[0]); m->to[0] = g_strdup (natter_identity_get_peer_id (carol)); }
static void
tamper_to_add (NatterMessage *m)
{
  char *to[] = { m->to[0], (char *) natter_identity_get_peer_id (carol), NULL };
  GStrv old = m->to;

  m->to = g_strdupv (to);
  g_strfreev (old);
}
static void tamper_group (NatterMessage *m) { m->group = g_strdup ("grp_other_0001"); }
static void tamper_text (NatterMessage *m) { json_object_set_string_member (m->content, "text", "Hello, Eve!"); }
static void tamper_metadata (NatterMessage *m) { json_object_set_object_member (m->content, "metadata", json_object_new ()); }
static void tamper_timestamp (NatterMessage *m) { m->timestamp++; }
static void tamper_sequence (NatterMessage *m) { m->sequence = 43; }
static void tamper_clock_value (NatterMessage *m) { natter_message_set_clock (m, natter_identity_get_peer_id (bob), 16); }
static void tamper_clock_entry (NatterMessage *m) { natter_message_set_clock (m, natter_identity_get_peer_id (carol), 1); }
static void tamper_requires_ack (NatterMessage *m) { m->requires_ack = FALSE; }
static void tamper_ttl (NatterMessage *m) { m->ttl = 30 * 24 * 3600 * G_GINT64_CONSTANT (1000); }
static void tamper_signature (NatterMessage *m) { m->signature[10] ^= 0x01; }

static void
test_tamper_each_signed_field (void)
{
  static const struct { const char *name; Tamper tamper; } cases[] = {
    { "id", tamper_id },
    { "type", tamper_type },
    { "version", tamper_version },
    { "from", tamper_from },
    { "to (replaced)", tamper_to_replace },
    { "to (added)", tamper_to_add },
    { "group", tamper_group },
    { "content.text", tamper_text },
    { "content.metadata", tamper_metadata },
    { "timestamp", tamper_timestamp },
    { "sequence", tamper_sequence },
    { "vectorClock (value)", tamper_clock_value },
    { "vectorClock (entry)", tamper_clock_entry },
    { "requiresAck", tamper_requires_ack },
    { "ttl", tamper_ttl },
    { "signature", tamper_signature },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(NatterMessage) msg = sample_message (NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);
      g_autoptr(NatterMessage) decoded = NULL;
      g_autoptr(GBytes) bytes = NULL;
      GError *error = NULL;

      g_test_message ("tampering with %s", cases[i].name);
      g_assert_true (natter_message_sign (msg, alice, &error));
      g_assert_no_error (error);

      cases[i].tamper (msg);
      g_assert_false (natter_message_verify (msg, &error));
      g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_BAD_SIGNATURE);
      g_clear_error (&error);

      /* And on the wire, where the receiver sees it. */
      if (natter_message_validate (msg, NULL))
        {
          bytes = natter_message_encode (msg, &error);
          g_assert_no_error (error);
          decoded = natter_message_decode (bytes, NATTER_MESSAGE_DECODE_VERIFY, &error);
          g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_BAD_SIGNATURE);
          g_assert_null (decoded);
          g_clear_error (&error);
        }
    }
}

/* A group stream message's tree: signed, carried as base64, bounded, and
 * only in a group_message. */
static void
test_group_tree (void)
{
  static const guint8 tree[] = { 1, 2, 3, 4, 5, 6, 7, 8, 2, 0, 1 };
  g_autoptr(NatterMessage) msg = sample_message (NATTER_MESSAGE_TYPE_GROUP_MESSAGE);
  g_autoptr(NatterMessage) decoded = NULL;
  g_autoptr(NatterMessage) direct = sample_message (NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GBytes) short_bytes = NULL;
  g_autoptr(GError) error = NULL;
  guint8 *altered;
  gsize len;

  msg->tree = g_bytes_new_static (tree, sizeof tree);
  g_assert_true (natter_message_sign (msg, alice, &error));
  g_assert_no_error (error);
  bytes = natter_message_encode (msg, &error);
  g_assert_no_error (error);
  {
    g_autofree char *text = g_strndup (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));

    g_assert_nonnull (strstr (text, "\"tree\":\"AQIDBAUGBwgCAAE=\""));
  }
  decoded = natter_message_decode (bytes, NATTER_MESSAGE_DECODE_VERIFY, &error);
  g_assert_no_error (error);
  assert_messages_equal (msg, decoded);

  /* Another tree breaks the signature. */
  altered = g_memdup2 (tree, sizeof tree);
  altered[sizeof tree - 1] = 2;
  g_bytes_unref (msg->tree);
  msg->tree = g_bytes_new_take (altered, sizeof tree);
  g_assert_false (natter_message_verify (msg, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_BAD_SIGNATURE);
  g_clear_error (&error);

  /* Shorter than a roster ID. */
  g_bytes_unref (msg->tree);
  msg->tree = g_bytes_new_static (tree, NATTER_MESSAGE_TREE_MIN - 1);
  g_assert_false (natter_message_validate (msg, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_BASE64);
  g_clear_error (&error);

  /* Not in other types. */
  direct->tree = g_bytes_new_static (tree, sizeof tree);
  g_assert_false (natter_message_validate (direct, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_UNKNOWN_FIELD);
  g_clear_error (&error);

  /* Not valid base64 on the wire. */
  len = g_bytes_get_size (bytes);
  {
    g_autofree char *text = g_strndup (g_bytes_get_data (bytes, NULL), len);
    char *at = strstr (text, "AQIDBAUGBwgCAAE=");

    at[0] = '*';
    short_bytes = g_bytes_new (text, len);
    g_clear_pointer (&decoded, natter_message_unref);
    decoded = natter_message_decode (short_bytes, NATTER_MESSAGE_DECODE_NONE, &error);
    g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_BASE64);
    g_assert_null (decoded);
  }
}

static void
test_routing_fields_unsigned (void)
{
  g_autoptr(NatterMessage) msg = sample_message (NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);
  g_autoptr(NatterMessage) relayed = NULL;
  g_autoptr(NatterMessage) decoded = NULL;
  g_autoptr(GBytes) bytes = NULL;
  GError *error = NULL;
  char *route[] = { msg->route[0], (char *) natter_identity_get_peer_id (carol), NULL };

  g_assert_true (natter_message_sign (msg, alice, &error));
  g_assert_no_error (error);

  /* What a relay does: it is not the author and holds no key. */
  relayed = natter_message_copy (msg);
  g_strfreev (relayed->route);
  relayed->route = g_strdupv (route);
  relayed->hops = 3;
  relayed->retry_count = 7;

  g_assert_true (natter_message_verify (relayed, &error));
  g_assert_no_error (error);
  bytes = natter_message_encode (relayed, &error);
  g_assert_no_error (error);
  decoded = natter_message_decode (bytes, NATTER_MESSAGE_DECODE_VERIFY, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (decoded->hops, ==, 3);
  g_assert_cmpuint (decoded->retry_count, ==, 7);
  g_assert_cmpuint (g_strv_length (decoded->route), ==, 2);

  /* The original is untouched by the relay's copy. */
  g_assert_cmpuint (msg->hops, ==, 1);
}

static gboolean
bytes_contain (GBytes     *bytes,
               const char *needle)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  return g_strstr_len ((const char *) data, len, needle) != NULL;
}

static void
test_encrypt_peer (void)
{
  for (guint type = 0; type < NATTER_MESSAGE_N_TYPES; type++)
    {
      g_autoptr(NatterMessage) msg = sample_message (type);
      g_autoptr(JsonObject) original = sample_content (type);
      g_autoptr(NatterMessage) received = NULL;
      g_autoptr(GBytes) bytes = NULL;
      GError *error = NULL;

      g_assert_true (natter_message_encrypt_for_peer (msg, alice, natter_identity_get_peer_id (bob), &error));
      g_assert_no_error (error);
      g_assert_true (msg->encrypted);
      g_assert_null (msg->content);
      g_assert_true (natter_message_sign (msg, alice, &error));
      g_assert_no_error (error);

      bytes = natter_message_encode (msg, &error);
      g_assert_no_error (error);
      if (type == NATTER_MESSAGE_TYPE_DIRECT_MESSAGE)
        {
          g_assert_false (bytes_contain (bytes, "Hello"));
          g_assert_false (bytes_contain (bytes, "cat.png"));
          g_assert_true (bytes_contain (bytes, "\"encrypted\":true"));
        }

      received = natter_message_decode (bytes, NATTER_MESSAGE_DECODE_VERIFY, &error);
      g_assert_no_error (error);
      g_assert_true (natter_message_decrypt_from_peer (received, bob, &error));
      g_assert_no_error (error);
      g_assert_false (received->encrypted);
      g_assert_true (content_equal (received->content, original));
      g_assert_cmpstr (received->from, ==, natter_identity_get_peer_id (alice));
    }
}

static void
test_encrypt_peer_failures (void)
{
  g_autoptr(NatterMessage) msg = sample_message (NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);
  g_autoptr(NatterMessage) tampered = NULL;
  g_autoptr(NatterMessage) moved = NULL;
  g_autoptr(NatterMessage) for_carol = NULL;
  GError *error = NULL;
  char *to[] = { msg->to[0], (char *) natter_identity_get_peer_id (carol), NULL };
  gsize len;
  guint8 *data;

  GStrv old_to = msg->to;

  /* Addressed to Bob and Carol, sealed to Bob only. */
  msg->to = g_strdupv (to);
  g_strfreev (old_to);

  g_assert_false (natter_message_encrypt_for_peer (msg, bob, natter_identity_get_peer_id (bob), &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE);
  g_clear_error (&error);
  g_assert_false (natter_message_encrypt_for_peer (msg, alice, natter_identity_get_peer_id (alice), &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE);
  g_clear_error (&error);

  g_assert_true (natter_message_encrypt_for_peer (msg, alice, natter_identity_get_peer_id (bob), &error));
  g_assert_no_error (error);
  g_assert_false (natter_message_encrypt_for_peer (msg, alice, natter_identity_get_peer_id (bob), &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE);
  g_clear_error (&error);

  /* Carol is a recipient, but the key is Bob's. */
  for_carol = natter_message_copy (msg);
  g_assert_false (natter_message_decrypt_from_peer (for_carol, carol, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED);
  g_clear_error (&error);
  g_assert_true (for_carol->encrypted);

  /* Alice is not a recipient at all. */
  g_assert_false (natter_message_decrypt_from_peer (for_carol, alice, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED);
  g_clear_error (&error);

  /* One flipped bit of ciphertext. */
  tampered = natter_message_copy (msg);
  data = g_bytes_unref_to_data (g_steal_pointer (&tampered->ciphertext), &len);
  data[len / 2] ^= 0x20;
  tampered->ciphertext = g_bytes_new_take (data, len);
  g_assert_false (natter_message_decrypt_from_peer (tampered, bob, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED);
  g_clear_error (&error);

  /* The ciphertext moved into another message (other id). */
  moved = natter_message_copy (msg);
  g_free (moved->id);
  moved->id = natter_message_id_new ();
  g_assert_false (natter_message_decrypt_from_peer (moved, bob, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED);
  g_clear_error (&error);

  /* A plaintext message cannot be decrypted. */
  {
    g_autoptr(NatterMessage) plain = sample_message (NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);

    g_assert_false (natter_message_decrypt_from_peer (plain, bob, &error));
    g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE);
    g_clear_error (&error);
  }

  /* The right recipient still can. */
  g_assert_true (natter_message_decrypt_from_peer (msg, bob, &error));
  g_assert_no_error (error);
}

static void
test_encrypt_group (void)
{
  g_autoptr(NatterMessage) msg = sample_message (NATTER_MESSAGE_TYPE_GROUP_MESSAGE);
  g_autoptr(NatterMessage) received = NULL;
  g_autoptr(NatterMessage) wrong_key = NULL;
  g_autoptr(NatterMessage) wrong_id = NULL;
  g_autoptr(NatterMessage) moved = NULL;
  g_autoptr(GBytes) bytes = NULL;
  GError *error = NULL;
  guint8 key[NATTER_MESSAGE_GROUP_KEY_LEN];
  guint8 other_key[NATTER_MESSAGE_GROUP_KEY_LEN];

  memset (key, 0x42, sizeof key);
  memset (other_key, 0x43, sizeof other_key);

  g_assert_true (natter_message_encrypt_for_group (msg, key, sizeof key, "key_family_1", &error));
  g_assert_no_error (error);
  g_assert_true (natter_message_sign (msg, alice, &error));
  g_assert_no_error (error);
  bytes = natter_message_encode (msg, &error);
  g_assert_no_error (error);
  g_assert_false (bytes_contain (bytes, "Hello, family"));
  g_assert_true (bytes_contain (bytes, "\"keyId\":\"key_family_1\""));

  received = natter_message_decode (bytes, NATTER_MESSAGE_DECODE_VERIFY, &error);
  g_assert_no_error (error);
  wrong_key = natter_message_copy (received);
  wrong_id = natter_message_copy (received);
  moved = natter_message_copy (received);

  g_assert_false (natter_message_decrypt_for_group (wrong_key, other_key, sizeof other_key, "key_family_1", &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED);
  g_clear_error (&error);

  g_assert_false (natter_message_decrypt_for_group (wrong_id, key, sizeof key, "key_family_2", &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED);
  g_clear_error (&error);

  g_free (moved->group);
  moved->group = g_strdup ("grp_other_0001");
  g_assert_false (natter_message_decrypt_for_group (moved, key, sizeof key, "key_family_1", &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED);
  g_clear_error (&error);

  g_assert_false (natter_message_decrypt_for_group (received, key, 16, "key_family_1", &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE);
  g_clear_error (&error);

  g_assert_true (natter_message_decrypt_for_group (received, key, sizeof key, "key_family_1", &error));
  g_assert_no_error (error);
  g_assert_cmpstr (json_object_get_string_member (received->content, "text"), ==, "Hello, family");

  /* No group, no group encryption. */
  {
    g_autoptr(NatterMessage) direct = sample_message (NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);

    g_assert_false (natter_message_encrypt_for_group (direct, key, sizeof key, "key_family_1", &error));
    g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_MISSING_FIELD);
    g_clear_error (&error);
  }
}

static void
test_tamper_envelope (void)
{
  g_autoptr(NatterMessage) msg = sample_message (NATTER_MESSAGE_TYPE_GROUP_MESSAGE);
  GError *error = NULL;
  guint8 key[NATTER_MESSAGE_GROUP_KEY_LEN] = { 1 };

  g_assert_true (natter_message_encrypt_for_group (msg, key, sizeof key, "key_family_1", &error));
  g_assert_no_error (error);
  g_assert_true (natter_message_sign (msg, alice, &error));
  g_assert_no_error (error);

  for (guint i = 0; i < 4; i++)
    {
      g_autoptr(NatterMessage) copy = natter_message_copy (msg);

      if (i == 0)
        copy->nonce[0] ^= 1;
      else if (i == 1)
        {
          gsize len;
          guint8 *data = g_bytes_unref_to_data (g_steal_pointer (&copy->ciphertext), &len);

          data[0] ^= 1;
          copy->ciphertext = g_bytes_new_take (data, len);
        }
      else if (i == 2)
        {
          g_free (copy->key_id);
          copy->key_id = g_strdup ("key_family_2");
        }
      else
        copy->encrypted = FALSE;

      g_assert_false (natter_message_verify (copy, &error));
      g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_BAD_SIGNATURE);
      g_clear_error (&error);
    }
}

static NatterMessage *
decode_with_nesting (guint       n_arrays,
                     GError    **error)
{
  g_autoptr(NatterMessage) msg = sample_message (NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GString) text = NULL;
  g_autoptr(GString) nested = g_string_new (NULL);
  const char *placeholder = "\"PLACEHOLDER\"";

  json_object_set_object_member (msg->content, "metadata",
                                 object_from_json ("{\"deep\":\"PLACEHOLDER\"}"));
  bytes = natter_message_encode (msg, NULL);
  g_assert_nonnull (bytes);
  text = g_string_new_len (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));

  for (guint i = 0; i < n_arrays; i++)
    g_string_append_c (nested, '[');
  g_string_append_c (nested, '0');
  for (guint i = 0; i < n_arrays; i++)
    g_string_append_c (nested, ']');
  g_assert_cmpuint (g_string_replace (text, placeholder, nested->str, 1), ==, 1);

  return natter_message_decode_data ((const guint8 *) text->str, text->len, 0, error);
}

static void
test_depth_limit (void)
{
  g_autoptr(NatterMessage) at_limit = NULL;
  g_autoptr(NatterMessage) over_limit = NULL;
  GError *error = NULL;

  /* Root (1), content (2), metadata (3): 29 arrays more make exactly 32. */
  at_limit = decode_with_nesting (29, &error);
  g_assert_no_error (error);
  g_assert_nonnull (at_limit);

  over_limit = decode_with_nesting (30, &error);
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_TOO_DEEP);
  g_assert_null (over_limit);
  g_clear_error (&error);
}

/* sign_encode() gives the same message as sign() then encode(), in one
 * serialization: every type, routing fields set and not. */
static void
test_sign_encode (void)
{
  for (int t = 0; t < NATTER_MESSAGE_N_TYPES; t++)
    for (int routed = 0; routed < 2; routed++)
      {
        g_autoptr(NatterMessage) msg = sample_message ((NatterMessageType) t);
        g_autoptr(NatterMessage) copy = NULL;
        g_autoptr(NatterMessage) decoded = NULL;
        g_autoptr(NatterMessage) expected = NULL;
        g_autoptr(GBytes) wire = NULL;
        g_autoptr(GBytes) reference = NULL;
        g_autoptr(GBytes) again = NULL;
        g_autoptr(GBytes) expected_again = NULL;
        GError *error = NULL;

        if (!routed)
          {
            g_clear_pointer (&msg->route, g_strfreev);
            msg->hops = 0;
            msg->retry_count = 0;
          }
        copy = natter_message_copy (msg);
        wire = natter_message_sign_encode (msg, alice, &error);
        g_assert_no_error (error);
        g_assert_true (natter_message_sign (copy, alice, &error));
        reference = natter_message_encode (copy, &error);
        g_assert_no_error (error);

        decoded = natter_message_decode (wire, NATTER_MESSAGE_DECODE_VERIFY, &error);
        g_assert_no_error (error);
        expected = natter_message_decode (reference, NATTER_MESSAGE_DECODE_VERIFY, &error);
        g_assert_no_error (error);
        again = natter_message_encode (decoded, &error);
        expected_again = natter_message_encode (expected, &error);
        g_assert_true (g_bytes_equal (again, expected_again));
      }
}

int
main (int   argc,
      char *argv[])
{
  int ret;

  g_test_init (&argc, &argv, NULL);

  alice = identity_from_byte ('A');
  bob = identity_from_byte ('B');
  carol = identity_from_byte ('C');

  g_test_add_func ("/message/type-names", test_type_names);
  g_test_add_func ("/message/ids", test_ids);
  g_test_add_func ("/message/round-trip/every-type", test_round_trip_every_type);
  g_test_add_func ("/message/round-trip/defaults", test_round_trip_defaults);
  g_test_add_func ("/message/copy", test_copy);
  g_test_add_func ("/message/sign-encode", test_sign_encode);
  g_test_add_func ("/message/canonical-bytes", test_canonical_bytes);
  g_test_add_func ("/message/sign/verify", test_sign_verify);
  g_test_add_func ("/message/sign/refuses", test_sign_refuses);
  g_test_add_func ("/message/sign/tamper-each-field", test_tamper_each_signed_field);
  g_test_add_func ("/message/sign/routing-fields-unsigned", test_routing_fields_unsigned);
  g_test_add_func ("/message/group-tree", test_group_tree);
  g_test_add_func ("/message/encrypt/peer", test_encrypt_peer);
  g_test_add_func ("/message/encrypt/peer-failures", test_encrypt_peer_failures);
  g_test_add_func ("/message/encrypt/group", test_encrypt_group);
  g_test_add_func ("/message/encrypt/tamper-envelope", test_tamper_envelope);
  g_test_add_func ("/message/decode/depth-limit", test_depth_limit);

  ret = g_test_run ();

  g_clear_object (&alice);
  g_clear_object (&bob);
  g_clear_object (&carol);
  return ret;
}
