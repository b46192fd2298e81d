/* test-noise.c: Noise test vectors, handshake failures and the secure channel
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>
#include <sodium.h>

#include "natter-noise.h"
#include "natter-noise-channel-private.h"

#define VECTORS_FILE "noise-25519-chachapoly-blake2b.json"
#define SEC          G_USEC_PER_SEC

/* ---- Test vectors ------------------------------------------------------ */

static JsonParser *vectors_parser;
static GError *vectors_error;

/* The vectors come from the project's shared folder when it is beside the
 * checkout (NATTER_SHARED_DIR, set by tests/meson.build), else from the
 * copy in tests/fixtures/.  A missing or broken file is remembered and fails
 * every vector test, instead of silently running no vector at all. */
static void
load_vectors (void)
{
  const char *shared = g_getenv ("NATTER_SHARED_DIR");
  const char *srcdir = g_getenv ("G_TEST_SRCDIR");
  g_autofree char *path = NULL;

  if (shared != NULL)
    path = g_build_filename (shared, "test-vectors", VECTORS_FILE, NULL);
  if ((path == NULL || !g_file_test (path, G_FILE_TEST_EXISTS)) && srcdir != NULL)
    {
      g_free (path);
      path = g_build_filename (srcdir, "fixtures", VECTORS_FILE, NULL);
    }
  if (path == NULL)
    {
      g_set_error_literal (&vectors_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                           "Neither NATTER_SHARED_DIR nor G_TEST_SRCDIR is set: run through meson test");
      return;
    }
  g_test_message ("Noise test vectors: %s", path);
  vectors_parser = json_parser_new ();
  if (!json_parser_load_from_file (vectors_parser, path, &vectors_error))
    g_prefix_error (&vectors_error, "%s: ", path);
}

static JsonArray *
get_vectors (void)
{
  JsonNode *root;
  JsonObject *object;

  g_assert_no_error (vectors_error);
  root = json_parser_get_root (vectors_parser);
  g_assert_nonnull (root);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (root));
  object = json_node_get_object (root);
  g_assert_true (json_object_has_member (object, "vectors"));
  return json_object_get_array_member (object, "vectors");
}

static GBytes *
unhex (const char *hex)
{
  gsize len = strlen (hex);
  guint8 *out;

  g_assert_cmpuint (len % 2, ==, 0);
  out = g_malloc (len / 2 + 1);
  for (gsize i = 0; i < len / 2; i++)
    {
      int hi = g_ascii_xdigit_value (hex[2 * i]);
      int lo = g_ascii_xdigit_value (hex[2 * i + 1]);

      g_assert_cmpint (hi, >=, 0);
      g_assert_cmpint (lo, >=, 0);
      out[i] = (guint8) (hi << 4 | lo);
    }
  return g_bytes_new_take (out, len / 2);
}

static GBytes *
member_bytes (JsonObject *object,
              const char *name)
{
  if (!json_object_has_member (object, name))
    return NULL;
  return unhex (json_object_get_string_member (object, name));
}

static const guint8 *
data_or_null (GBytes *bytes)
{
  return bytes != NULL ? g_bytes_get_data (bytes, NULL) : NULL;
}

static NatterNoiseHandshake *
vector_handshake (JsonObject      *v,
                  NatterNoiseRole  role)
{
  const char *prefix = role == NATTER_NOISE_ROLE_INITIATOR ? "init_" : "resp_";
  g_autofree char *prologue_name = g_strconcat (prefix, "prologue", NULL);
  g_autofree char *static_name = g_strconcat (prefix, "static", NULL);
  g_autofree char *remote_name = g_strconcat (prefix, "remote_static", NULL);
  g_autofree char *ephemeral_name = g_strconcat (prefix, "ephemeral", NULL);
  g_autoptr(GBytes) prologue = member_bytes (v, prologue_name);
  g_autoptr(GBytes) local_static = member_bytes (v, static_name);
  g_autoptr(GBytes) remote_static = member_bytes (v, remote_name);
  g_autoptr(GBytes) ephemeral = member_bytes (v, ephemeral_name);
  g_autoptr(GError) error = NULL;
  NatterNoiseHandshake *hs;

  g_assert_nonnull (prologue);
  g_assert_nonnull (ephemeral);
  hs = natter_noise_handshake_new (json_object_get_string_member (v, "protocol_name"), role,
                                   g_bytes_get_data (prologue, NULL), g_bytes_get_size (prologue),
                                   data_or_null (local_static), data_or_null (remote_static),
                                   &error);
  g_assert_no_error (error);
  natter_noise_handshake_set_ephemeral (hs, g_bytes_get_data (ephemeral, NULL), &error);
  g_assert_no_error (error);
  return hs;
}

/* Checks one vector from both sides: every handshake message byte for
 * byte as written and as read back, the handshake hash each side ends
 * with, then the transport messages, which keep alternating between the
 * two sides (initiator first after a 2-message pattern, responder first
 * after a 3-message one), as in cacophony's vectors. */
static void
check_vector (JsonObject *v)
{
  const char *name = json_object_get_string_member (v, "protocol_name");
  JsonArray *messages = json_object_get_array_member (v, "messages");
  g_autoptr(NatterNoiseHandshake) init = vector_handshake (v, NATTER_NOISE_ROLE_INITIATOR);
  g_autoptr(NatterNoiseHandshake) resp = vector_handshake (v, NATTER_NOISE_ROLE_RESPONDER);
  g_autoptr(GBytes) expected_hash = member_bytes (v, "handshake_hash");
  NatterNoiseCipherState init_send = { 0 }, init_recv = { 0 }, resp_send = { 0 }, resp_recv = { 0 };
  g_autoptr(GError) error = NULL;
  guint n_handshake = 0, n_transport = 0;
  gboolean split = FALSE;

  g_test_message ("%s: %u messages", name, json_array_get_length (messages));
  g_assert_nonnull (expected_hash);
  g_assert_cmpuint (g_bytes_get_size (expected_hash), ==, NATTER_NOISE_HASH_LEN);

  for (guint i = 0; i < json_array_get_length (messages); i++)
    {
      JsonObject *m = json_array_get_object_element (messages, i);
      g_autoptr(GBytes) payload = member_bytes (m, "payload");
      g_autoptr(GBytes) ciphertext = member_bytes (m, "ciphertext");
      g_autoptr(GByteArray) written = g_byte_array_new ();
      g_autoptr(GByteArray) read = g_byte_array_new ();
      gboolean from_initiator = i % 2 == 0;

      g_assert_nonnull (payload);
      g_assert_nonnull (ciphertext);

      if (!natter_noise_handshake_is_finished (init))
        {
          NatterNoiseHandshake *sender = from_initiator ? init : resp;
          NatterNoiseHandshake *receiver = from_initiator ? resp : init;

          g_assert_true (natter_noise_handshake_is_my_turn (sender));
          g_assert_false (natter_noise_handshake_is_my_turn (receiver));
          natter_noise_handshake_write_message (sender, g_bytes_get_data (payload, NULL),
                                                g_bytes_get_size (payload), written, &error);
          g_assert_no_error (error);
          g_assert_cmpmem (written->data, written->len,
                           g_bytes_get_data (ciphertext, NULL), g_bytes_get_size (ciphertext));
          natter_noise_handshake_read_message (receiver, g_bytes_get_data (ciphertext, NULL),
                                               g_bytes_get_size (ciphertext), read, &error);
          g_assert_no_error (error);
          g_assert_cmpmem (read->data, read->len,
                           g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));
          n_handshake++;
          continue;
        }

      if (!split)
        {
          g_assert_true (natter_noise_handshake_is_finished (resp));
          g_assert_cmpmem (natter_noise_handshake_get_handshake_hash (init), NATTER_NOISE_HASH_LEN,
                           g_bytes_get_data (expected_hash, NULL), NATTER_NOISE_HASH_LEN);
          g_assert_cmpmem (natter_noise_handshake_get_handshake_hash (resp), NATTER_NOISE_HASH_LEN,
                           g_bytes_get_data (expected_hash, NULL), NATTER_NOISE_HASH_LEN);
          natter_noise_handshake_split (init, &init_send, &init_recv, &error);
          g_assert_no_error (error);
          natter_noise_handshake_split (resp, &resp_send, &resp_recv, &error);
          g_assert_no_error (error);
          split = TRUE;
        }

      natter_noise_cipher_state_encrypt_with_ad (from_initiator ? &init_send : &resp_send, NULL, 0,
                                                 g_bytes_get_data (payload, NULL),
                                                 g_bytes_get_size (payload), written, &error);
      g_assert_no_error (error);
      g_assert_cmpmem (written->data, written->len,
                       g_bytes_get_data (ciphertext, NULL), g_bytes_get_size (ciphertext));
      natter_noise_cipher_state_decrypt_with_ad (from_initiator ? &resp_recv : &init_recv, NULL, 0,
                                                 g_bytes_get_data (ciphertext, NULL),
                                                 g_bytes_get_size (ciphertext), read, &error);
      g_assert_no_error (error);
      g_assert_cmpmem (read->data, read->len,
                       g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));
      n_transport++;
    }

  /* Every vector has a complete handshake and some transport traffic. */
  g_assert_true (split);
  g_assert_cmpuint (n_handshake, >=, 2);
  g_assert_cmpuint (n_transport, >=, 1);

  natter_noise_cipher_state_clear (&init_send);
  natter_noise_cipher_state_clear (&init_recv);
  natter_noise_cipher_state_clear (&resp_send);
  natter_noise_cipher_state_clear (&resp_recv);
}

static void
test_vector_pattern (gconstpointer data)
{
  const char *pattern = data;
  g_autofree char *protocol = g_strdup_printf ("Noise_%s_25519_ChaChaPoly_BLAKE2b", pattern);
  JsonArray *vectors = get_vectors ();
  guint found = 0;

  for (guint i = 0; i < json_array_get_length (vectors); i++)
    {
      JsonObject *v = json_array_get_object_element (vectors, i);

      if (g_strcmp0 (json_object_get_string_member (v, "protocol_name"), protocol) == 0)
        {
          check_vector (v);
          found++;
        }
    }
  g_assert_cmpuint (found, >=, 1);
}

/* Every vector in the file, whatever its name: a vector added later for a
 * pattern we do not support fails here rather than being skipped. */
static void
test_vector_all (void)
{
  JsonArray *vectors = get_vectors ();

  g_assert_cmpuint (json_array_get_length (vectors), >=, 6);
  for (guint i = 0; i < json_array_get_length (vectors); i++)
    check_vector (json_array_get_object_element (vectors, i));
}

/* ---- Handshake behaviour ----------------------------------------------- */

typedef struct
{
  guint8 secret[NATTER_NOISE_DH_LEN];
  guint8 public[NATTER_NOISE_DH_LEN];
} KeyPair;

static void
keypair_init (KeyPair *kp)
{
  natter_noise_generate_keypair (kp->secret, kp->public);
}

#define XX "Noise_XX_25519_ChaChaPoly_BLAKE2b"

static NatterNoiseHandshake *
xx_new (NatterNoiseRole  role,
        const KeyPair   *kp)
{
  g_autoptr(GError) error = NULL;
  NatterNoiseHandshake *hs;

  hs = natter_noise_handshake_new (XX, role, (const guint8 *) "test", 4, kp->secret, NULL, &error);
  g_assert_no_error (error);
  return hs;
}

static GByteArray *
write_msg (NatterNoiseHandshake *hs,
           const char           *payload)
{
  g_autoptr(GError) error = NULL;
  GByteArray *out = g_byte_array_new ();

  natter_noise_handshake_write_message (hs, (const guint8 *) payload, strlen (payload),
                                        out, &error);
  g_assert_no_error (error);
  return out;
}

static void
read_msg (NatterNoiseHandshake *hs,
          GByteArray           *msg,
          const char           *expected_payload)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) payload = g_byte_array_new ();

  natter_noise_handshake_read_message (hs, msg->data, msg->len, payload, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (payload->data, payload->len, expected_payload, strlen (expected_payload));
}

static void
test_xx_random (void)
{
  KeyPair a, b;
  g_autoptr(NatterNoiseHandshake) init = NULL;
  g_autoptr(NatterNoiseHandshake) resp = NULL;
  g_autoptr(GByteArray) m1 = NULL, m2 = NULL, m3 = NULL;
  g_autoptr(GByteArray) t1 = g_byte_array_new (), t2 = g_byte_array_new ();
  g_autoptr(GByteArray) p1 = g_byte_array_new (), p2 = g_byte_array_new ();
  NatterNoiseCipherState is, ir, rs, rr;
  g_autoptr(GError) error = NULL;

  keypair_init (&a);
  keypair_init (&b);
  init = xx_new (NATTER_NOISE_ROLE_INITIATOR, &a);
  resp = xx_new (NATTER_NOISE_ROLE_RESPONDER, &b);

  g_assert_null (natter_noise_handshake_get_remote_static (init));
  m1 = write_msg (init, "hello");
  read_msg (resp, m1, "hello");
  m2 = write_msg (resp, "");
  read_msg (init, m2, "");
  g_assert_cmpmem (natter_noise_handshake_get_remote_static (init), 32, b.public, 32);
  g_assert_null (natter_noise_handshake_get_handshake_hash (init));
  m3 = write_msg (init, "third");
  read_msg (resp, m3, "third");
  g_assert_cmpmem (natter_noise_handshake_get_remote_static (resp), 32, a.public, 32);

  g_assert_true (natter_noise_handshake_is_finished (init));
  g_assert_true (natter_noise_handshake_is_finished (resp));
  g_assert_cmpmem (natter_noise_handshake_get_handshake_hash (init), NATTER_NOISE_HASH_LEN,
                   natter_noise_handshake_get_handshake_hash (resp), NATTER_NOISE_HASH_LEN);

  natter_noise_handshake_split (init, &is, &ir, &error);
  g_assert_no_error (error);
  natter_noise_handshake_split (resp, &rs, &rr, &error);
  g_assert_no_error (error);
  natter_noise_handshake_split (resp, &rs, &rr, &error);
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE);
  g_clear_error (&error);

  natter_noise_cipher_state_encrypt_with_ad (&is, NULL, 0, (const guint8 *) "ping", 4, t1, &error);
  g_assert_no_error (error);
  natter_noise_cipher_state_decrypt_with_ad (&rr, NULL, 0, t1->data, t1->len, p1, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (p1->data, p1->len, "ping", 4);

  /* REKEY on both ends keeps them in step. */
  natter_noise_cipher_state_rekey (&rs);
  natter_noise_cipher_state_rekey (&ir);
  natter_noise_cipher_state_encrypt_with_ad (&rs, NULL, 0, (const guint8 *) "pong", 4, t2, &error);
  g_assert_no_error (error);
  natter_noise_cipher_state_decrypt_with_ad (&ir, NULL, 0, t2->data, t2->len, p2, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (p2->data, p2->len, "pong", 4);

  natter_noise_cipher_state_clear (&is);
  natter_noise_cipher_state_clear (&ir);
  natter_noise_cipher_state_clear (&rs);
  natter_noise_cipher_state_clear (&rr);
}

/* Every single-byte change to messages 2 and 3 is refused, and a refused
 * message leaves the handshake able to take the genuine one. */
static void
test_handshake_tampered (void)
{
  KeyPair a, b;
  g_autoptr(NatterNoiseHandshake) init = NULL;
  g_autoptr(NatterNoiseHandshake) resp = NULL;
  g_autoptr(GByteArray) m1 = NULL, m2 = NULL, m3 = NULL;

  keypair_init (&a);
  keypair_init (&b);
  init = xx_new (NATTER_NOISE_ROLE_INITIATOR, &a);
  resp = xx_new (NATTER_NOISE_ROLE_RESPONDER, &b);

  m1 = write_msg (init, "");
  read_msg (resp, m1, "");
  m2 = write_msg (resp, "payload");
  for (guint i = 0; i < m2->len; i++)
    {
      g_autoptr(GByteArray) copy = g_byte_array_new ();
      g_autoptr(GByteArray) payload = g_byte_array_new ();
      g_autoptr(GError) error = NULL;

      g_byte_array_append (copy, m2->data, m2->len);
      copy->data[i] ^= 0x01;
      g_assert_false (natter_noise_handshake_read_message (init, copy->data, copy->len,
                                                           payload, &error));
      /* A changed "e" may land on a low-order point (BAD_KEY); anything
       * else fails authentication. */
      g_assert_true (g_error_matches (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_DECRYPT)
                     || g_error_matches (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_BAD_KEY));
      g_assert_cmpuint (payload->len, ==, 0);
    }
  read_msg (init, m2, "payload");

  m3 = write_msg (init, "");
  for (guint i = 0; i < m3->len; i++)
    {
      g_autoptr(GByteArray) payload = g_byte_array_new ();
      g_autoptr(GError) error = NULL;

      m3->data[i] ^= 0x80;
      g_assert_false (natter_noise_handshake_read_message (resp, m3->data, m3->len,
                                                           payload, &error));
      g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_DECRYPT);
      m3->data[i] ^= 0x80;
    }
  read_msg (resp, m3, "");
  g_assert_true (natter_noise_handshake_is_finished (resp));
}

static void
test_handshake_truncated (void)
{
  KeyPair a, b;
  g_autoptr(NatterNoiseHandshake) init = NULL;
  g_autoptr(NatterNoiseHandshake) resp = NULL;
  g_autoptr(GByteArray) m1 = NULL, m2 = NULL;

  keypair_init (&a);
  keypair_init (&b);
  init = xx_new (NATTER_NOISE_ROLE_INITIATOR, &a);
  resp = xx_new (NATTER_NOISE_ROLE_RESPONDER, &b);

  m1 = write_msg (init, "");
  for (guint len = 0; len < m1->len; len++)
    {
      g_autoptr(GByteArray) payload = g_byte_array_new ();
      g_autoptr(GError) error = NULL;

      g_assert_false (natter_noise_handshake_read_message (resp, m1->data, len, payload, &error));
      g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TRUNCATED);
    }
  read_msg (resp, m1, "");

  /* e (32) + encrypted s (48) + payload tag (16): every shorter length
   * misses part of a field. */
  m2 = write_msg (resp, "");
  g_assert_cmpuint (m2->len, ==, 96);
  for (guint len = 0; len < m2->len; len++)
    {
      g_autoptr(GByteArray) payload = g_byte_array_new ();
      g_autoptr(GError) error = NULL;

      g_assert_false (natter_noise_handshake_read_message (init, m2->data, len, payload, &error));
      g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TRUNCATED);
    }
  read_msg (init, m2, "");
}

static void
test_handshake_misuse (void)
{
  KeyPair a, b;
  g_autoptr(NatterNoiseHandshake) init = NULL;
  g_autoptr(NatterNoiseHandshake) resp = NULL;
  g_autoptr(NatterNoiseHandshake) nn = NULL;
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(GByteArray) big = g_byte_array_new ();
  NatterNoiseCipherState s, r;
  guint8 zeros[NATTER_NOISE_DH_LEN] = { 0 };
  GError *error = NULL;

  keypair_init (&a);
  keypair_init (&b);

  g_assert_null (natter_noise_handshake_new ("Noise_XX_448_AESGCM_SHA512",
                                             NATTER_NOISE_ROLE_INITIATOR,
                                             NULL, 0, a.secret, NULL, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_UNSUPPORTED);
  g_clear_error (&error);
  g_assert_null (natter_noise_handshake_new ("Noise_XXfallback_25519_ChaChaPoly_BLAKE2b",
                                             NATTER_NOISE_ROLE_INITIATOR, NULL, 0, a.secret, NULL,
                                             &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_UNSUPPORTED);
  g_clear_error (&error);
  /* XX needs our static key; NK needs theirs; NN uses none. */
  g_assert_null (natter_noise_handshake_new (XX, NATTER_NOISE_ROLE_INITIATOR,
                                             NULL, 0, NULL, NULL, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_BAD_KEY);
  g_clear_error (&error);
  g_assert_null (natter_noise_handshake_new ("Noise_NK_25519_ChaChaPoly_BLAKE2b",
                                             NATTER_NOISE_ROLE_INITIATOR,
                                             NULL, 0, NULL, NULL, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_BAD_KEY);
  g_clear_error (&error);
  g_assert_null (natter_noise_handshake_new (XX, NATTER_NOISE_ROLE_INITIATOR, NULL, 0,
                                             a.secret, b.public, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_BAD_KEY);
  g_clear_error (&error);

  init = xx_new (NATTER_NOISE_ROLE_INITIATOR, &a);
  resp = xx_new (NATTER_NOISE_ROLE_RESPONDER, &b);

  /* Out of turn. */
  g_assert_false (natter_noise_handshake_write_message (resp, NULL, 0, out, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE);
  g_clear_error (&error);
  g_assert_false (natter_noise_handshake_read_message (init, zeros, sizeof zeros, out, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE);
  g_clear_error (&error);
  g_assert_false (natter_noise_handshake_split (init, &s, &r, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE);
  g_clear_error (&error);

  /* Over 65535 bytes, either way. */
  g_byte_array_set_size (big, NATTER_NOISE_MAX_MESSAGE_LEN + 1);
  memset (big->data, 0x42, big->len);
  g_assert_false (natter_noise_handshake_read_message (resp, big->data, big->len, out, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TOO_LARGE);
  g_clear_error (&error);
  g_assert_false (natter_noise_handshake_write_message (init, big->data,
                                                        NATTER_NOISE_MAX_MESSAGE_LEN - 31,
                                                        out, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TOO_LARGE);
  g_clear_error (&error);
  /* Exactly 65535 is fine: "e" is 32 bytes, the payload is in clear. */
  g_assert_true (natter_noise_handshake_write_message (init, big->data,
                                                       NATTER_NOISE_MAX_MESSAGE_LEN - 32,
                                                       out, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (out->len, ==, NATTER_NOISE_MAX_MESSAGE_LEN);

  /* A low-order "e" (here the all-zero point) makes "ee" all zero. */
  nn = natter_noise_handshake_new ("Noise_NN_25519_ChaChaPoly_BLAKE2b", NATTER_NOISE_ROLE_RESPONDER,
                                   NULL, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  g_byte_array_set_size (out, 0);
  natter_noise_handshake_read_message (nn, zeros, sizeof zeros, out, &error);
  g_assert_no_error (error);
  g_assert_false (natter_noise_handshake_write_message (nn, NULL, 0, out, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_BAD_KEY);
  g_clear_error (&error);
}

/* ---- Secure channel ---------------------------------------------------- */

typedef struct
{
  KeyPair              ka;
  KeyPair              kb;
  NatterSecureChannel *a;   /* initiator */
  NatterSecureChannel *b;   /* responder */
  gint64               now;
} Pair;

static void
pair_init (Pair          *p,
           const guint8  *a_expects,
           const guint8  *b_expects)
{
  g_autoptr(GError) error = NULL;

  keypair_init (&p->ka);
  keypair_init (&p->kb);
  p->now = 1000 * SEC;
  p->a = natter_noise_channel_new (NATTER_NOISE_ROLE_INITIATOR, p->ka.secret,
                                   a_expects ? a_expects : p->kb.public, &error);
  g_assert_no_error (error);
  p->b = natter_noise_channel_new (NATTER_NOISE_ROLE_RESPONDER, p->kb.secret,
                                   b_expects ? b_expects : p->ka.public, &error);
  g_assert_no_error (error);
  g_assert_cmpint (natter_secure_channel_get_state (p->a), ==, NATTER_SECURE_CHANNEL_STATE_NEW);
  natter_secure_channel_start (p->b, p->now, &error);
  g_assert_no_error (error);
  natter_secure_channel_start (p->a, p->now, &error);
  g_assert_no_error (error);
}

static void
pair_clear (Pair *p)
{
  g_clear_object (&p->a);
  g_clear_object (&p->b);
}

/* Carries @from's queued datagrams to @to, losing those whose type is in
 * @lose (each entry once).  Returns how many were handed over. */
static guint
carry (Pair                *p,
       NatterSecureChannel *from,
       NatterSecureChannel *to,
       guint8              *lose,
       gsize                n_lose)
{
  GBytes *datagram;
  guint n = 0;

  while ((datagram = natter_secure_channel_pop_outgoing (from)) != NULL)
    {
      const guint8 *data = g_bytes_get_data (datagram, NULL);
      gboolean lost = FALSE;

      for (gsize i = 0; i < n_lose && !lost; i++)
        if (lose[i] == data[0])
          {
            lose[i] = 0;
            lost = TRUE;
          }
      if (!lost)
        {
          g_autoptr(GBytes) plaintext = NULL;
          g_autoptr(GError) error = NULL;

          natter_secure_channel_handle_datagram (to, data, g_bytes_get_size (datagram), p->now,
                                                 &plaintext, &error);
          if (error != NULL)
            g_test_message ("dropped 0x%02x: %s", data[0], error->message);
          g_assert_null (plaintext);
          n++;
        }
      g_bytes_unref (datagram);
    }
  return n;
}

/* Runs the handshake over a network that loses the datagrams of the types
 * in @lose, advancing the clock to the next timeout whenever nothing is in
 * flight, as the transport thread would. */
static void
pair_handshake (Pair         *p,
                const guint8 *lose,
                gsize         n_lose)
{
  guint8 pending[8] = { 0 };

  g_assert_cmpuint (n_lose, <=, G_N_ELEMENTS (pending));
  if (n_lose > 0)
    memcpy (pending, lose, n_lose);

  for (guint round = 0; round < 50; round++)
    {
      guint moved = carry (p, p->a, p->b, pending, n_lose) + carry (p, p->b, p->a, pending, n_lose);
      gint64 ta, tb, next;

      if (moved > 0)
        continue;
      if (natter_secure_channel_is_established (p->a)
          && natter_secure_channel_is_established (p->b))
        break;
      ta = natter_secure_channel_get_timeout (p->a);
      tb = natter_secure_channel_get_timeout (p->b);
      g_assert_true (ta >= 0 || tb >= 0);
      next = ta < 0 ? tb : tb < 0 ? ta : MIN (ta, tb);
      g_assert_cmpint (next, >=, p->now);
      p->now = next;
      natter_secure_channel_handle_timeout (p->a, p->now);
      natter_secure_channel_handle_timeout (p->b, p->now);
    }
  g_assert_true (natter_secure_channel_is_established (p->a));
  g_assert_true (natter_secure_channel_is_established (p->b));
}

static GBytes *
seal (Pair                *p,
      NatterSecureChannel *from,
      const char          *text)
{
  g_autoptr(GError) error = NULL;
  GBytes *datagram;

  datagram = natter_secure_channel_encrypt (from, (const guint8 *) text, strlen (text),
                                            p->now, &error);
  g_assert_no_error (error);
  g_assert_nonnull (datagram);
  g_assert_cmpuint (g_bytes_get_size (datagram), ==, strlen (text) + NATTER_NOISE_CHANNEL_OVERHEAD);
  return datagram;
}

static void
open_ok (Pair                *p,
         NatterSecureChannel *to,
         GBytes              *datagram,
         const char          *expected)
{
  g_autoptr(GBytes) plaintext = NULL;
  g_autoptr(GError) error = NULL;

  natter_secure_channel_handle_datagram (to, g_bytes_get_data (datagram, NULL),
                                         g_bytes_get_size (datagram), p->now, &plaintext, &error);
  g_assert_no_error (error);
  g_assert_nonnull (plaintext);
  g_assert_cmpmem (g_bytes_get_data (plaintext, NULL), g_bytes_get_size (plaintext),
                   expected, strlen (expected));
}

static void
open_fails (Pair                *p,
            NatterSecureChannel *to,
            const guint8        *data,
            gsize                len,
            gint                 code)
{
  g_autoptr(GBytes) plaintext = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_false (natter_secure_channel_handle_datagram (to, data, len, p->now,
                                                         &plaintext, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, code);
  g_assert_null (plaintext);
}

static NatterSecureChannelStats
stats_of (NatterSecureChannel *channel)
{
  NatterSecureChannelStats stats;

  natter_secure_channel_get_stats (channel, &stats);
  return stats;
}

static void
check_both_ways (Pair *p)
{
  g_autoptr(GBytes) ab = seal (p, p->a, "from a");
  g_autoptr(GBytes) ba = seal (p, p->b, "from b");

  open_ok (p, p->b, ab, "from a");
  open_ok (p, p->a, ba, "from b");
}

static void
test_channel_handshake (void)
{
  Pair p;
  g_autoptr(GBytes) ra = NULL, rb = NULL, ha = NULL, hb = NULL;

  pair_init (&p, NULL, NULL);
  g_assert_null (natter_secure_channel_get_remote_static_key (p.a));
  g_assert_null (natter_secure_channel_get_channel_binding (p.a));
  pair_handshake (&p, NULL, 0);
  check_both_ways (&p);

  ra = natter_secure_channel_get_remote_static_key (p.a);
  rb = natter_secure_channel_get_remote_static_key (p.b);
  g_assert_cmpmem (g_bytes_get_data (ra, NULL), g_bytes_get_size (ra), p.kb.public, 32);
  g_assert_cmpmem (g_bytes_get_data (rb, NULL), g_bytes_get_size (rb), p.ka.public, 32);
  ha = natter_secure_channel_get_channel_binding (p.a);
  hb = natter_secure_channel_get_channel_binding (p.b);
  g_assert_cmpuint (g_bytes_get_size (ha), ==, NATTER_NOISE_HASH_LEN);
  g_assert_true (g_bytes_equal (ha, hb));
  g_assert_cmpuint (stats_of (p.a).handshake_retransmissions, ==, 0);
  g_assert_cmpint (natter_secure_channel_get_timeout (p.a), ==, -1);
  g_assert_cmpint (natter_secure_channel_get_timeout (p.b), ==, -1);
  pair_clear (&p);
}

static void
test_channel_lose (gconstpointer data)
{
  guint8 type = GPOINTER_TO_UINT (data);
  Pair p;

  pair_init (&p, NULL, NULL);
  pair_handshake (&p, &type, 1);
  g_assert_cmpuint (stats_of (p.a).handshake_retransmissions
                    + stats_of (p.b).handshake_retransmissions, >=, 1);
  check_both_ways (&p);
  pair_clear (&p);
}

/* Every handshake message lost once, then twice in a row. */
static void
test_channel_lose_all (void)
{
  guint8 lose[] = {
    NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE1, NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE1,
    NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE2, NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE2,
    NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE3, NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE3,
  };
  Pair p;

  pair_init (&p, NULL, NULL);
  pair_handshake (&p, lose, G_N_ELEMENTS (lose));
  check_both_ways (&p);
  pair_clear (&p);
}

/* Message 3 lost, and the initiator sends data at once: the responder
 * takes that as the sign to resend message 2, which brings back 3. */
static void
test_channel_data_before_message3 (void)
{
  guint8 lose = NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE3;
  g_autoptr(GBytes) early = NULL;
  g_autoptr(GBytes) later = NULL;
  Pair p;

  pair_init (&p, NULL, NULL);
  carry (&p, p.a, p.b, &lose, 1);
  carry (&p, p.b, p.a, &lose, 1);
  carry (&p, p.a, p.b, &lose, 1);
  g_assert_true (natter_secure_channel_is_established (p.a));
  g_assert_false (natter_secure_channel_is_established (p.b));

  p.now += NATTER_NOISE_CHANNEL_RTO_INITIAL_US;
  early = seal (&p, p.a, "early");
  open_fails (&p, p.b, g_bytes_get_data (early, NULL), g_bytes_get_size (early),
              NATTER_NOISE_ERROR_UNEXPECTED);
  g_assert_cmpuint (carry (&p, p.b, p.a, NULL, 0), ==, 1);   /* message 2 again */
  g_assert_cmpuint (carry (&p, p.a, p.b, NULL, 0), ==, 1);   /* message 3 again */
  g_assert_true (natter_secure_channel_is_established (p.b));
  later = seal (&p, p.a, "later");
  open_ok (&p, p.b, later, "later");
  pair_clear (&p);
}

/* Nothing gets through: retransmissions back off from 200 ms and the
 * initiator gives up after the handshake timeout. */
static void
test_channel_handshake_timeout (void)
{
  Pair p;
  gint64 start, last = 0;
  guint sent = 0;

  pair_init (&p, NULL, NULL);
  start = p.now;
  g_assert_cmpint (natter_secure_channel_get_timeout (p.a), ==,
                   start + NATTER_NOISE_CHANNEL_RTO_INITIAL_US);
  while (natter_secure_channel_get_state (p.a) == NATTER_SECURE_CHANNEL_STATE_HANDSHAKING)
    {
      GBytes *datagram;
      gint64 next = natter_secure_channel_get_timeout (p.a);

      while ((datagram = natter_secure_channel_pop_outgoing (p.a)) != NULL)
        {
          sent++;
          g_bytes_unref (datagram);
        }
      g_assert_cmpint (next, >, p.now);
      if (last > 0 && next - p.now < NATTER_NOISE_CHANNEL_RTO_MAX_US
          && next < start + NATTER_NOISE_CHANNEL_HANDSHAKE_TIMEOUT_US)
        g_assert_cmpint (next - p.now, ==, 2 * last);
      last = next - p.now;
      p.now = next;
      natter_secure_channel_handle_timeout (p.a, p.now);
    }
  g_assert_cmpint (natter_secure_channel_get_state (p.a), ==, NATTER_SECURE_CHANNEL_STATE_FAILED);
  g_assert_cmpint (p.now, ==, start + NATTER_NOISE_CHANNEL_HANDSHAKE_TIMEOUT_US);
  g_assert_cmpint (natter_secure_channel_get_timeout (p.a), ==, -1);
  /* Sent at 0, then after 0.2 0.4 0.8 1.6 3.2 6.4 6.4 6.4 s; at 30 s it
   * gives up. */
  g_assert_cmpuint (sent, ==, 9);
  g_assert_cmpuint (stats_of (p.a).handshake_retransmissions, ==, 8);
  pair_clear (&p);
}

static void
test_channel_wrong_peer (void)
{
  KeyPair other;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) plaintext = NULL;
  GBytes *datagram;
  Pair p;

  keypair_init (&other);

  /* The initiator meant someone else: it refuses message 2 and never
   * reveals its own static key in message 3. */
  pair_init (&p, other.public, NULL);
  carry (&p, p.a, p.b, NULL, 0);
  datagram = natter_secure_channel_pop_outgoing (p.b);
  g_assert_nonnull (datagram);
  g_assert_false (natter_secure_channel_handle_datagram (p.a, g_bytes_get_data (datagram, NULL),
                                                         g_bytes_get_size (datagram), p.now,
                                                         &plaintext, &error));
  g_bytes_unref (datagram);
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_WRONG_PEER);
  g_clear_error (&error);
  g_assert_cmpint (natter_secure_channel_get_state (p.a), ==, NATTER_SECURE_CHANNEL_STATE_FAILED);
  g_assert_null (natter_secure_channel_pop_outgoing (p.a));
  g_assert_cmpint (natter_secure_channel_get_timeout (p.a), ==, -1);
  g_assert_null (natter_secure_channel_encrypt (p.a, (const guint8 *) "x", 1, p.now, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE);
  g_clear_error (&error);
  pair_clear (&p);

  /* The responder meant someone else: it refuses message 3. */
  pair_init (&p, NULL, other.public);
  carry (&p, p.a, p.b, NULL, 0);
  carry (&p, p.b, p.a, NULL, 0);
  datagram = natter_secure_channel_pop_outgoing (p.a);
  g_assert_nonnull (datagram);
  g_assert_false (natter_secure_channel_handle_datagram (p.b, g_bytes_get_data (datagram, NULL),
                                                         g_bytes_get_size (datagram), p.now,
                                                         &plaintext, &error));
  g_bytes_unref (datagram);
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_WRONG_PEER);
  g_assert_cmpint (natter_secure_channel_get_state (p.b), ==, NATTER_SECURE_CHANNEL_STATE_FAILED);
  g_assert_null (natter_secure_channel_get_remote_static_key (p.b));
  pair_clear (&p);
}

static void
pair_established (Pair *p)
{
  pair_init (p, NULL, NULL);
  pair_handshake (p, NULL, 0);
}

static void
test_channel_replay (void)
{
  g_autoptr(GBytes) d = NULL;
  Pair p;

  pair_established (&p);
  d = seal (&p, p.a, "once");
  open_ok (&p, p.b, d, "once");
  for (guint i = 0; i < 3; i++)
    open_fails (&p, p.b, g_bytes_get_data (d, NULL), g_bytes_get_size (d),
                NATTER_NOISE_ERROR_REPLAYED);
  g_assert_cmpuint (stats_of (p.b).dropped_replayed, ==, 3);
  check_both_ways (&p);
  pair_clear (&p);
}

static void
test_channel_tampered (void)
{
  g_autoptr(GBytes) d = NULL;
  g_autoptr(GByteArray) copy = g_byte_array_new ();
  Pair p;

  pair_established (&p);
  d = seal (&p, p.a, "integrity");
  g_byte_array_append (copy, g_bytes_get_data (d, NULL), g_bytes_get_size (d));

  /* Every bit after the type byte: counter, ciphertext, tag. */
  for (guint i = 1; i < copy->len; i++)
    for (guint bit = 0; bit < 8; bit++)
      {
        copy->data[i] ^= 1 << bit;
        open_fails (&p, p.b, copy->data, copy->len, NATTER_NOISE_ERROR_DECRYPT);
        copy->data[i] ^= 1 << bit;
      }
  g_assert_cmpuint (stats_of (p.b).dropped_tampered, ==, (copy->len - 1) * 8);
  /* Cut short but still long enough to parse: the tag no longer matches. */
  open_fails (&p, p.b, copy->data, copy->len - 1, NATTER_NOISE_ERROR_DECRYPT);
  /* None of that marked the counter as seen. */
  open_ok (&p, p.b, d, "integrity");
  g_assert_cmpuint (stats_of (p.b).dropped_replayed, ==, 0);
  pair_clear (&p);
}

static void
test_channel_truncated (void)
{
  g_autoptr(GBytes) d = NULL;
  const guint8 *data;
  Pair p;

  pair_established (&p);
  d = seal (&p, p.a, "");
  g_assert_cmpuint (g_bytes_get_size (d), ==, NATTER_NOISE_CHANNEL_OVERHEAD);
  data = g_bytes_get_data (d, NULL);
  for (gsize len = 0; len < NATTER_NOISE_CHANNEL_OVERHEAD; len++)
    open_fails (&p, p.b, data, len, NATTER_NOISE_ERROR_TRUNCATED);
  g_assert_cmpuint (stats_of (p.b).dropped_truncated, ==, NATTER_NOISE_CHANNEL_OVERHEAD);
  open_ok (&p, p.b, d, "");
  pair_clear (&p);
}

static void
test_channel_reorder (void)
{
  GBytes *d[200];
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);
  guint order[G_N_ELEMENTS (d)];
  Pair p;

  pair_established (&p);
  for (guint i = 0; i < G_N_ELEMENTS (d); i++)
    {
      g_autofree char *text = g_strdup_printf ("datagram %u", i);

      d[i] = seal (&p, p.a, text);
      order[i] = i;
    }
  /* Fisher-Yates: any order inside the window is fine. */
  for (guint i = G_N_ELEMENTS (d) - 1; i > 0; i--)
    {
      guint j = g_rand_int_range (rand, 0, i + 1);
      guint t = order[i];

      order[i] = order[j];
      order[j] = t;
    }
  for (guint i = 0; i < G_N_ELEMENTS (d); i++)
    {
      g_autofree char *text = g_strdup_printf ("datagram %u", order[i]);

      open_ok (&p, p.b, d[order[i]], text);
    }
  for (guint i = 0; i < G_N_ELEMENTS (d); i++)
    open_fails (&p, p.b, g_bytes_get_data (d[i], NULL), g_bytes_get_size (d[i]),
                NATTER_NOISE_ERROR_REPLAYED);
  g_assert_cmpuint (stats_of (p.b).dropped_replayed, ==, G_N_ELEMENTS (d));
  g_assert_cmpuint (stats_of (p.b).datagrams_received, >=, G_N_ELEMENTS (d));
  for (guint i = 0; i < G_N_ELEMENTS (d); i++)
    g_bytes_unref (d[i]);
  pair_clear (&p);
}

/* The newest counter minus 1023 is the oldest still accepted. */
static void
test_channel_too_old (void)
{
  const guint n = NATTER_NOISE_CHANNEL_REPLAY_WINDOW + 100;
  GPtrArray *d = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  guint newest = n - 1;
  guint oldest_ok = newest - (NATTER_NOISE_CHANNEL_REPLAY_WINDOW - 1);
  Pair p;

  pair_established (&p);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (d, seal (&p, p.a, "x"));

  open_ok (&p, p.b, d->pdata[newest], "x");
  open_fails (&p, p.b, g_bytes_get_data (d->pdata[0], NULL), g_bytes_get_size (d->pdata[0]),
              NATTER_NOISE_ERROR_REPLAYED);
  open_fails (&p, p.b, g_bytes_get_data (d->pdata[oldest_ok - 1], NULL),
              g_bytes_get_size (d->pdata[oldest_ok - 1]), NATTER_NOISE_ERROR_REPLAYED);
  g_assert_cmpuint (stats_of (p.b).dropped_too_old, ==, 2);
  g_assert_cmpuint (stats_of (p.b).dropped_replayed, ==, 0);
  open_ok (&p, p.b, d->pdata[oldest_ok], "x");
  open_ok (&p, p.b, d->pdata[newest - 1], "x");

  /* Everything between is still inside the window, and fresh. */
  for (guint i = oldest_ok + 1; i < newest - 1; i++)
    open_ok (&p, p.b, d->pdata[i], "x");
  g_ptr_array_unref (d);
  pair_clear (&p);
}

/* Count-based rekey: both directions cross an epoch boundary, with
 * datagrams reordered across it; then a time-based one. */
static void
test_channel_rekey (void)
{
  const guint64 epoch_len = G_GUINT64_CONSTANT (1) << NATTER_NOISE_CHANNEL_EPOCH_SHIFT;
  NatterSecureChannel *sides[2][2];
  Pair p;

  pair_established (&p);
  sides[0][0] = p.a; sides[0][1] = p.b;
  sides[1][0] = p.b; sides[1][1] = p.a;

  for (guint s = 0; s < 2; s++)
    {
      NatterSecureChannel *from = sides[s][0], *to = sides[s][1];
      g_autoptr(GBytes) old1 = NULL, old2 = NULL, new1 = NULL, new2 = NULL;

      natter_noise_channel_skip_send_counter_for_testing (NATTER_NOISE_CHANNEL (from),
                                                          epoch_len - 2);
      old1 = seal (&p, from, "old 1");
      old2 = seal (&p, from, "old 2");
      new1 = seal (&p, from, "new 1");
      new2 = seal (&p, from, "new 2");
      g_assert_cmpuint (stats_of (from).send_epoch, ==, 1);

      open_ok (&p, to, new1, "new 1");
      g_assert_cmpuint (stats_of (to).recv_epoch, ==, 1);
      open_ok (&p, to, old2, "old 2");   /* previous epoch's key still there */
      open_ok (&p, to, new2, "new 2");
      open_ok (&p, to, old1, "old 1");
    }
  check_both_ways (&p);

  /* Two minutes later each side moves on by time alone. */
  p.now += NATTER_NOISE_CHANNEL_REKEY_AFTER_US;
  check_both_ways (&p);
  g_assert_cmpuint (stats_of (p.a).send_epoch, ==, 2);
  g_assert_cmpuint (stats_of (p.b).recv_epoch, ==, 2);
  g_assert_cmpuint (stats_of (p.b).send_epoch, ==, 2);
  g_assert_cmpuint (stats_of (p.a).recv_epoch, ==, 2);
  check_both_ways (&p);

  /* Jumping several epochs (everything in between lost) still works. */
  natter_noise_channel_skip_send_counter_for_testing (NATTER_NOISE_CHANNEL (p.a),
                                                      7 * epoch_len + 5);
  check_both_ways (&p);
  g_assert_cmpuint (stats_of (p.b).recv_epoch, ==, 7);
  pair_clear (&p);
}

/* The split data path, as the transport and crypto threads use it: seals
 * that interoperate with the whole path, copies of one datagram in flight
 * together (only the first is taken), tampering (counted, the counter not
 * marked), and an epoch that needs a new key left to the whole path. */
static gboolean
split_open (Pair                *p,
            NatterSecureChannel *to,
            GByteArray          *datagram,
            GError             **error)
{
  NatterNoiseChannelJob job;
  gboolean authentic;

  g_assert_true (natter_noise_channel_prepare_open (NATTER_NOISE_CHANNEL (to), datagram->data,
                                                    datagram->len, &job));
  authentic = natter_noise_channel_job_open (&job, datagram->data, datagram->len);
  return natter_noise_channel_commit_open (NATTER_NOISE_CHANNEL (to), job.counter, authentic,
                                           error);
}

static GByteArray *
split_seal (Pair                *p,
            NatterSecureChannel *from,
            const char          *text)
{
  g_autoptr(GError) error = NULL;
  NatterNoiseChannelJob job;
  GByteArray *datagram = g_byte_array_sized_new (strlen (text) + NATTER_NOISE_CHANNEL_OVERHEAD);

  g_assert_true (natter_noise_channel_reserve_seal (NATTER_NOISE_CHANNEL (from), strlen (text),
                                                    p->now, &job, &error));
  g_assert_no_error (error);
  g_byte_array_set_size (datagram, strlen (text) + NATTER_NOISE_CHANNEL_OVERHEAD);
  natter_noise_channel_job_seal (&job, (const guint8 *) text, strlen (text), datagram->data);
  natter_noise_channel_job_clear (&job);
  return datagram;
}

static void
test_channel_split (void)
{
  const guint64 epoch_len = G_GUINT64_CONSTANT (1) << NATTER_NOISE_CHANNEL_EPOCH_SHIFT;
  g_autoptr(GByteArray) d = NULL;
  g_autoptr(GByteArray) copy = NULL;
  g_autoptr(GByteArray) tampered = NULL;
  g_autoptr(GBytes) whole = NULL;
  g_autoptr(GError) error = NULL;
  GBytes *view;
  NatterNoiseChannelJob job1, job2;
  Pair p;

  pair_established (&p);

  /* Split seal, whole open. */
  d = split_seal (&p, p.a, "split");
  view = g_bytes_new_static (d->data, d->len);
  open_ok (&p, p.b, view, "split");
  g_clear_pointer (&view, g_bytes_unref);
  g_clear_pointer (&d, g_byte_array_unref);

  /* Whole seal, split open, in place. */
  whole = seal (&p, p.a, "whole");
  d = g_byte_array_new ();
  g_byte_array_append (d, g_bytes_get_data (whole, NULL), g_bytes_get_size (whole));
  g_assert_true (split_open (&p, p.b, d, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (d->data + NATTER_NOISE_CHANNEL_HEADER_LEN,
                   d->len - NATTER_NOISE_CHANNEL_OVERHEAD, "whole", 5);
  /* Taken: neither path accepts it again. */
  open_fails (&p, p.b, g_bytes_get_data (whole, NULL), g_bytes_get_size (whole),
              NATTER_NOISE_ERROR_REPLAYED);
  g_assert_false (natter_noise_channel_prepare_open (NATTER_NOISE_CHANNEL (p.b),
                                                     g_bytes_get_data (whole, NULL),
                                                     g_bytes_get_size (whole), &job1));
  g_clear_pointer (&d, g_byte_array_unref);

  /* Two copies in flight at once: both pass the check, one is taken. */
  d = split_seal (&p, p.a, "twice");
  copy = g_byte_array_new ();
  g_byte_array_append (copy, d->data, d->len);
  g_assert_true (natter_noise_channel_prepare_open (NATTER_NOISE_CHANNEL (p.b), d->data, d->len,
                                                    &job1));
  g_assert_true (natter_noise_channel_prepare_open (NATTER_NOISE_CHANNEL (p.b), copy->data,
                                                    copy->len, &job2));
  g_assert_true (natter_noise_channel_job_open (&job1, d->data, d->len));
  g_assert_true (natter_noise_channel_job_open (&job2, copy->data, copy->len));
  g_assert_true (natter_noise_channel_commit_open (NATTER_NOISE_CHANNEL (p.b), job1.counter,
                                                   TRUE, &error));
  g_assert_no_error (error);
  g_assert_false (natter_noise_channel_commit_open (NATTER_NOISE_CHANNEL (p.b), job2.counter,
                                                    TRUE, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_REPLAYED);
  g_clear_error (&error);
  natter_noise_channel_job_clear (&job1);
  natter_noise_channel_job_clear (&job2);
  g_assert_cmpuint (stats_of (p.b).dropped_replayed, ==, 2);
  g_clear_pointer (&d, g_byte_array_unref);

  /* Tampered: dropped and counted, the counter still fresh. */
  d = split_seal (&p, p.a, "integrity");
  tampered = g_byte_array_new ();
  g_byte_array_append (tampered, d->data, d->len);
  tampered->data[tampered->len - 1] ^= 1;
  g_assert_false (split_open (&p, p.b, tampered, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_DECRYPT);
  g_clear_error (&error);
  g_assert_cmpuint (stats_of (p.b).dropped_tampered, ==, 1);
  g_assert_true (split_open (&p, p.b, d, &error));
  g_assert_no_error (error);
  g_clear_pointer (&d, g_byte_array_unref);

  /* A new epoch takes the whole path once, which adopts its key; the
   * previous epoch's datagrams still open split. */
  natter_noise_channel_skip_send_counter_for_testing (NATTER_NOISE_CHANNEL (p.a), epoch_len - 1);
  g_clear_pointer (&copy, g_byte_array_unref);
  copy = split_seal (&p, p.a, "old");
  d = split_seal (&p, p.a, "new");
  g_assert_false (natter_noise_channel_prepare_open (NATTER_NOISE_CHANNEL (p.b), d->data, d->len,
                                                     &job1));
  view = g_bytes_new_static (d->data, d->len);
  open_ok (&p, p.b, view, "new");
  g_clear_pointer (&view, g_bytes_unref);
  g_assert_cmpuint (stats_of (p.b).recv_epoch, ==, 1);
  g_assert_true (split_open (&p, p.b, copy, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (copy->data + NATTER_NOISE_CHANNEL_HEADER_LEN,
                   copy->len - NATTER_NOISE_CHANNEL_OVERHEAD, "old", 3);
  check_both_ways (&p);
  pair_clear (&p);
}

static void
test_channel_misuse (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) big = g_byte_array_new ();
  guint8 junk[64];
  Pair p;

  pair_init (&p, NULL, NULL);
  g_assert_null (natter_secure_channel_encrypt (p.a, (const guint8 *) "x", 1, p.now, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE);
  g_clear_error (&error);
  g_assert_false (natter_secure_channel_start (p.a, p.now, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE);
  g_clear_error (&error);

  /* Junk of every type during the handshake changes nothing. */
  memset (junk, 0x5a, sizeof junk);
  for (guint type = 0; type < 256; type++)
    {
      g_autoptr(GBytes) plaintext = NULL;

      junk[0] = type;
      natter_secure_channel_handle_datagram (p.a, junk, sizeof junk, p.now, &plaintext, &error);
      g_assert_nonnull (error);
      g_clear_error (&error);
    }
  pair_handshake (&p, NULL, 0);

  g_byte_array_set_size (big, NATTER_NOISE_CHANNEL_MAX_PLAINTEXT + 1);
  g_assert_null (natter_secure_channel_encrypt (p.a, big->data, big->len, p.now, &error));
  g_assert_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TOO_LARGE);
  g_clear_error (&error);
  g_byte_array_set_size (big, NATTER_NOISE_CHANNEL_MAX_PLAINTEXT);
  memset (big->data, 'b', big->len);
  g_byte_array_append (big, (const guint8 *) "", 1);
  {
    g_autoptr(GBytes) d = seal (&p, p.a, (const char *) big->data);

    g_assert_cmpuint (g_bytes_get_size (d), ==, NATTER_NOISE_MAX_MESSAGE_LEN);
    open_ok (&p, p.b, d, (const char *) big->data);
  }
  pair_clear (&p);
}

int
main (int   argc,
      char *argv[])
{
  static const char *const vector_patterns[] = { "NN", "NK", "KK", "XK", "IK", "XX" };

  g_test_init (&argc, &argv, NULL);
  if (sodium_init () < 0)
    g_error ("libsodium failed to initialise");
  load_vectors ();

  for (guint i = 0; i < G_N_ELEMENTS (vector_patterns); i++)
    {
      g_autofree char *path = g_strdup_printf ("/noise/vectors/%s", vector_patterns[i]);

      g_test_add_data_func (path, vector_patterns[i], test_vector_pattern);
    }
  g_test_add_func ("/noise/vectors/all", test_vector_all);
  g_test_add_func ("/noise/handshake/xx-random", test_xx_random);
  g_test_add_func ("/noise/handshake/tampered", test_handshake_tampered);
  g_test_add_func ("/noise/handshake/truncated", test_handshake_truncated);
  g_test_add_func ("/noise/handshake/misuse", test_handshake_misuse);

  g_test_add_func ("/noise/channel/handshake", test_channel_handshake);
  g_test_add_data_func ("/noise/channel/lose-message1",
                        GUINT_TO_POINTER (NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE1), test_channel_lose);
  g_test_add_data_func ("/noise/channel/lose-message2",
                        GUINT_TO_POINTER (NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE2), test_channel_lose);
  g_test_add_data_func ("/noise/channel/lose-message3",
                        GUINT_TO_POINTER (NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE3), test_channel_lose);
  g_test_add_func ("/noise/channel/lose-all-twice", test_channel_lose_all);
  g_test_add_func ("/noise/channel/data-before-message3", test_channel_data_before_message3);
  g_test_add_func ("/noise/channel/handshake-timeout", test_channel_handshake_timeout);
  g_test_add_func ("/noise/channel/wrong-peer", test_channel_wrong_peer);
  g_test_add_func ("/noise/channel/replay", test_channel_replay);
  g_test_add_func ("/noise/channel/tampered", test_channel_tampered);
  g_test_add_func ("/noise/channel/truncated", test_channel_truncated);
  g_test_add_func ("/noise/channel/reorder", test_channel_reorder);
  g_test_add_func ("/noise/channel/too-old", test_channel_too_old);
  g_test_add_func ("/noise/channel/rekey", test_channel_rekey);
  g_test_add_func ("/noise/channel/split", test_channel_split);
  g_test_add_func ("/noise/channel/misuse", test_channel_misuse);

  return g_test_run ();
}
