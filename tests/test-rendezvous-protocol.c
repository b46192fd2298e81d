/* test-rendezvous-protocol.c: tests of rendezvous message validation
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include "rendezvous/natter-rendezvous-protocol.h"

static NatterRendezvousMessage *
parse (const char  *text,
       GError     **error)
{
  return natter_rendezvous_message_parse ((const guint8 *) text, strlen (text), error);
}

static void
assert_refused (const char            *text,
                int                    code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterRendezvousMessage) message = parse (text, &error);

  if (message != NULL)
    g_error ("accepted: %s", text);
  g_assert_error (error, NATTER_RENDEZVOUS_ERROR, code);
}

static char *
signature_b64 (NatterIdentity *identity,
               const guint8   *challenge)
{
  g_autoptr(GBytes) payload = natter_rendezvous_register_payload (challenge,
                                                                  natter_identity_get_peer_id (identity));
  guint8 signature[NATTER_SIGNATURE_LEN];
  gsize len;
  const guint8 *data = g_bytes_get_data (payload, &len);

  natter_identity_sign (identity, data, len, signature);
  return g_base64_encode (signature, sizeof signature);
}

static void
test_register (void)
{
  g_autoptr(NatterIdentity) alice = natter_identity_new_random ();
  guint8 challenge[NATTER_RENDEZVOUS_CHALLENGE_LEN] = { 1, 2, 3 };
  g_autofree char *sig = signature_b64 (alice, challenge);
  g_autofree char *text = g_strdup_printf ("{\"type\":\"register\",\"peer\":\"%s\",\"signature\":\"%s\"}",
                                           natter_identity_get_peer_id (alice), sig);
  g_autoptr(NatterRendezvousMessage) message = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GError) error = NULL;
  const guint8 *data;
  gsize len;

  message = parse (text, &error);
  g_assert_no_error (error);
  g_assert_cmpint (message->type, ==, NATTER_RENDEZVOUS_MESSAGE_REGISTER);
  g_assert_cmpstr (message->peer, ==, natter_identity_get_peer_id (alice));
  g_assert_cmpmem (message->public_key, NATTER_PUBLIC_KEY_LEN,
                   natter_identity_get_public_key (alice), NATTER_PUBLIC_KEY_LEN);

  /* The payload starts with the context, NUL included, then the challenge. */
  payload = natter_rendezvous_register_payload (challenge, message->peer);
  data = g_bytes_get_data (payload, &len);
  g_assert_cmpuint (len, ==, sizeof NATTER_RENDEZVOUS_REGISTER_CONTEXT + sizeof challenge + NATTER_PEER_ID_LEN);
  g_assert_cmpmem (data, sizeof NATTER_RENDEZVOUS_REGISTER_CONTEXT,
                   NATTER_RENDEZVOUS_REGISTER_CONTEXT, sizeof NATTER_RENDEZVOUS_REGISTER_CONTEXT);
  g_assert_true (natter_verify_signature (message->public_key, data, len, message->signature, NULL));

  /* Another challenge: the same signature no longer verifies. */
  challenge[0] ^= 1;
  g_clear_pointer (&payload, g_bytes_unref);
  payload = natter_rendezvous_register_payload (challenge, message->peer);
  data = g_bytes_get_data (payload, &len);
  g_assert_false (natter_verify_signature (message->public_key, data, len, message->signature, NULL));
}

static void
test_register_malformed (void)
{
  g_autoptr(NatterIdentity) alice = natter_identity_new_random ();
  const char *id = natter_identity_get_peer_id (alice);
  g_autofree char *upper = g_ascii_strup (id, -1);
  guint8 sig[NATTER_SIGNATURE_LEN] = { 0 };
  g_autofree char *sig_b64 = g_base64_encode (sig, sizeof sig);
  g_autofree char *short_b64 = g_base64_encode (sig, 63);
  g_autofree char *t = NULL;

#define REFUSE(code, ...) \
  G_STMT_START { g_free (t); t = g_strdup_printf (__VA_ARGS__); assert_refused (t, code); } G_STMT_END

  REFUSE (NATTER_RENDEZVOUS_ERROR_BAD_FIELD, "{\"type\":\"register\",\"peer\":\"%s\"}", id);
  REFUSE (NATTER_RENDEZVOUS_ERROR_BAD_FIELD, "{\"type\":\"register\",\"signature\":\"%s\"}", sig_b64);
  REFUSE (NATTER_RENDEZVOUS_ERROR_BAD_FIELD, "{\"type\":\"register\",\"peer\":\"%s\",\"signature\":\"%s\"}", upper, sig_b64);
  REFUSE (NATTER_RENDEZVOUS_ERROR_BAD_FIELD, "{\"type\":\"register\",\"peer\":\"%s\",\"signature\":\"%s\"}", id, short_b64);
  REFUSE (NATTER_RENDEZVOUS_ERROR_BAD_FIELD, "{\"type\":\"register\",\"peer\":\"%s\",\"signature\":\"%s!\"}", id, sig_b64);
  REFUSE (NATTER_RENDEZVOUS_ERROR_BAD_FIELD, "{\"type\":\"register\",\"peer\":\"%s\",\"signature\":7}", id);
  REFUSE (NATTER_RENDEZVOUS_ERROR_BAD_FIELD, "{\"type\":\"register\",\"peer\":\"%s\",\"signature\":\"%s\",\"x\":1}", id, sig_b64);
  REFUSE (NATTER_RENDEZVOUS_ERROR_BAD_FIELD, "{\"type\":\"register\",\"peer\":[\"%s\"],\"signature\":\"%s\"}", id, sig_b64);
  /* Non-canonical base64 (non-zero padding bits). */
  REFUSE (NATTER_RENDEZVOUS_ERROR_BAD_FIELD, "{\"type\":\"register\",\"peer\":\"%s\",\"signature\":\"AB==\"}", id);
#undef REFUSE
}

static void
test_signal (void)
{
  g_autoptr(NatterIdentity) bob = natter_identity_new_random ();
  g_autofree char *text = g_strdup_printf ("{\"to\":\"%s\",\"blob\":\"aGVsbG8=\",\"type\":\"signal\"}",
                                           natter_identity_get_peer_id (bob));
  g_autofree char *with_from = g_strdup_printf ("{\"type\":\"signal\",\"to\":\"%s\",\"from\":\"%s\",\"blob\":\"aGVsbG8=\"}",
                                                natter_identity_get_peer_id (bob),
                                                natter_identity_get_peer_id (bob));
  g_autoptr(NatterRendezvousMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  message = parse (text, &error);
  g_assert_no_error (error);
  g_assert_cmpint (message->type, ==, NATTER_RENDEZVOUS_MESSAGE_SIGNAL);
  g_assert_cmpstr (message->to, ==, natter_identity_get_peer_id (bob));
  g_assert_cmpmem (g_bytes_get_data (message->blob, NULL), g_bytes_get_size (message->blob), "hello", 5);

  out = natter_rendezvous_build_signal ("nsender", message->blob);
  g_assert_cmpstr (out, ==, "{\"type\":\"signal\",\"from\":\"nsender\",\"blob\":\"aGVsbG8=\"}");

  /* A client does not name the sender. */
  assert_refused (with_from, NATTER_RENDEZVOUS_ERROR_BAD_FIELD);
}

static void
test_signal_blob_limit (void)
{
  g_autoptr(NatterIdentity) bob = natter_identity_new_random ();
  g_autofree guint8 *blob = g_malloc0 (NATTER_RENDEZVOUS_MAX_BLOB + 1);
  g_autofree char *ok_b64 = g_base64_encode (blob, NATTER_RENDEZVOUS_MAX_BLOB);
  g_autofree char *big_b64 = g_base64_encode (blob, NATTER_RENDEZVOUS_MAX_BLOB + 1);
  g_autofree char *ok_text = g_strdup_printf ("{\"type\":\"signal\",\"to\":\"%s\",\"blob\":\"%s\"}",
                                              natter_identity_get_peer_id (bob), ok_b64);
  g_autofree char *big_text = g_strdup_printf ("{\"type\":\"signal\",\"to\":\"%s\",\"blob\":\"%s\"}",
                                               natter_identity_get_peer_id (bob), big_b64);
  g_autoptr(NatterRendezvousMessage) message = NULL;
  g_autoptr(GError) error = NULL;

  message = parse (ok_text, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (message->blob), ==, NATTER_RENDEZVOUS_MAX_BLOB);
  assert_refused (big_text, NATTER_RENDEZVOUS_ERROR_BAD_FIELD);
}

static void
test_contacts (void)
{
  g_autoptr(NatterIdentity) a = natter_identity_new_random ();
  g_autoptr(NatterIdentity) b = natter_identity_new_random ();
  g_autoptr(GString) many = g_string_new ("{\"type\":\"contacts\",\"peers\":[");
  g_autofree char *text = g_strdup_printf ("{\"type\":\"contacts\",\"peers\":[\"%s\",\"%s\",\"%s\"]}",
                                           natter_identity_get_peer_id (a),
                                           natter_identity_get_peer_id (b),
                                           natter_identity_get_peer_id (a));
  g_autoptr(NatterRendezvousMessage) message = NULL;
  g_autoptr(GError) error = NULL;

  message = parse (text, &error);
  g_assert_no_error (error);
  g_assert_cmpint (message->type, ==, NATTER_RENDEZVOUS_MESSAGE_CONTACTS);
  g_assert_cmpuint (message->peers->len, ==, 2);   /* duplicates dropped */

  g_clear_pointer (&message, natter_rendezvous_message_free);
  message = parse ("{\"type\":\"contacts\",\"peers\":[]}", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (message->peers->len, ==, 0);

  for (guint i = 0; i <= NATTER_RENDEZVOUS_MAX_CONTACTS; i++)
    g_string_append_printf (many, "%s\"%s\"", i ? "," : "", natter_identity_get_peer_id (a));
  g_string_append (many, "]}");
  assert_refused (many->str, NATTER_RENDEZVOUS_ERROR_BAD_FIELD);

  assert_refused ("{\"type\":\"contacts\",\"peers\":\"x\"}", NATTER_RENDEZVOUS_ERROR_BAD_FIELD);
  assert_refused ("{\"type\":\"contacts\",\"peers\":[1]}", NATTER_RENDEZVOUS_ERROR_BAD_FIELD);
  assert_refused ("{\"type\":\"contacts\",\"peers\":[[]]}", NATTER_RENDEZVOUS_ERROR_MALFORMED);
  assert_refused ("{\"type\":\"contacts\"}", NATTER_RENDEZVOUS_ERROR_BAD_FIELD);
}

static void
test_malformed (void)
{
  g_autofree char *deep = NULL;
  g_autofree char *huge = g_strnfill (NATTER_RENDEZVOUS_MAX_FRAME + 1, ' ');
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterRendezvousMessage) message = NULL;

  assert_refused ("", NATTER_RENDEZVOUS_ERROR_MALFORMED);
  assert_refused ("{", NATTER_RENDEZVOUS_ERROR_MALFORMED);
  assert_refused ("]", NATTER_RENDEZVOUS_ERROR_MALFORMED);
  assert_refused ("[]", NATTER_RENDEZVOUS_ERROR_MALFORMED);
  assert_refused ("\"ping\"", NATTER_RENDEZVOUS_ERROR_MALFORMED);
  assert_refused ("{\"type\":\"ping\"} {}", NATTER_RENDEZVOUS_ERROR_MALFORMED);
  assert_refused ("{\"type\":\"ping\",\"type\":\"ping\"}", NATTER_RENDEZVOUS_ERROR_MALFORMED);
  assert_refused ("{\"type\":\"pi\xff\"}", NATTER_RENDEZVOUS_ERROR_MALFORMED);
  assert_refused ("{\"type\":\"shout\"}", NATTER_RENDEZVOUS_ERROR_UNKNOWN_TYPE);
  assert_refused ("{\"type\":3}", NATTER_RENDEZVOUS_ERROR_BAD_FIELD);
  assert_refused ("{}", NATTER_RENDEZVOUS_ERROR_BAD_FIELD);
  assert_refused ("{\"type\":\"ping\",\"x\":{}}", NATTER_RENDEZVOUS_ERROR_BAD_FIELD);
  assert_refused (huge, NATTER_RENDEZVOUS_ERROR_TOO_LARGE);

  /* Nesting is refused before json-glib recurses into it. */
  {
    g_autofree char *brackets = g_strnfill (10000, '[');

    deep = g_strconcat ("{\"type\":", brackets, NULL);
  }
  assert_refused (deep, NATTER_RENDEZVOUS_ERROR_MALFORMED);

  /* Brackets inside strings do not count. */
  message = parse ("{\"type\":\"ping\" }", &error);
  g_assert_no_error (error);
  g_assert_cmpint (message->type, ==, NATTER_RENDEZVOUS_MESSAGE_PING);
  assert_refused ("{\"type\":\"[[[{{{\\\"\"}", NATTER_RENDEZVOUS_ERROR_UNKNOWN_TYPE);
}

static void
test_token_bucket (void)
{
  NatterTokenBucket bucket;
  gint64 t = 1000000;
  guint taken = 0;

  natter_token_bucket_init (&bucket, 50, 100, t);
  while (natter_token_bucket_take (&bucket, t))
    taken++;
  g_assert_cmpuint (taken, ==, 100);

  /* 50 a second: one more every 20 ms. */
  t += 19999;
  g_assert_false (natter_token_bucket_take (&bucket, t));
  t += 1;
  g_assert_true (natter_token_bucket_take (&bucket, t));
  g_assert_false (natter_token_bucket_take (&bucket, t));

  /* A long pause refills only up to the burst. */
  t += (gint64) 3600 * G_USEC_PER_SEC;
  taken = 0;
  while (natter_token_bucket_take (&bucket, t))
    taken++;
  g_assert_cmpuint (taken, ==, 100);

  /* A clock going backwards gives nothing. */
  g_assert_false (natter_token_bucket_take (&bucket, t - G_USEC_PER_SEC));
}

static void
test_server_messages (void)
{
  guint8 challenge[NATTER_RENDEZVOUS_CHALLENGE_LEN] = { 0 };
  g_autofree char *c = natter_rendezvous_build_challenge (challenge);
  g_autofree char *p = natter_rendezvous_build_presence ("nabc", FALSE);
  g_autofree char *u = natter_rendezvous_build_undeliverable ("nabc");

  g_assert_cmpstr (c, ==, "{\"type\":\"challenge\",\"challenge\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\","
                          "\"context\":\"natter-rendezvous-register-v1\"}");
  g_assert_cmpstr (p, ==, "{\"type\":\"presence\",\"peer\":\"nabc\",\"online\":false}");
  g_assert_cmpstr (u, ==, "{\"type\":\"undeliverable\",\"to\":\"nabc\"}");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/rendezvous-protocol/register", test_register);
  g_test_add_func ("/rendezvous-protocol/register/malformed", test_register_malformed);
  g_test_add_func ("/rendezvous-protocol/signal", test_signal);
  g_test_add_func ("/rendezvous-protocol/signal/blob-limit", test_signal_blob_limit);
  g_test_add_func ("/rendezvous-protocol/contacts", test_contacts);
  g_test_add_func ("/rendezvous-protocol/malformed", test_malformed);
  g_test_add_func ("/rendezvous-protocol/token-bucket", test_token_bucket);
  g_test_add_func ("/rendezvous-protocol/server-messages", test_server_messages);

  return g_test_run ();
}
