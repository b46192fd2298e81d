/* test-malformed.c: table-driven tests of hostile and broken messages
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Every case is a mutation of a valid message signed by a fixed identity
 * (seed of 32 'A' bytes), so that cases needing a valid signature (tampered
 * fields, relayed messages) are deterministic: Ed25519 signatures are.  The
 * cases are kept as files in tests/fixtures/malformed/, listed with the
 * expected error in manifest.txt, so that other tools (natter-cli
 * inspect-message) can run the same table.  This program checks the files
 * and that they still match the table; after changing the table or the
 * wire format, rewrite them with:
 *
 *   test-malformed --generate tests/fixtures/malformed
 */

#include "config.h"

#include <string.h>
#include <sodium.h>

#include "core/natter-message.h"

typedef enum
{
  BASE_PLAIN,     /* signed direct_message, plaintext content */
  BASE_ENVELOPE,  /* signed direct_message, encrypted envelope */
  BASE_GROUP,     /* signed group_message, envelope with keyId */
} Base;

typedef struct
{
  const char *name;
  const char *code;   /* a NatterMessageError name, or "OK" */
  const char *field;  /* the error message must name it, or NULL */
  Base        base;
  const char *ops[4];
} MalformedCase;

/* Operations, applied in order:
 *   "path=JSON"   set a member (path: dot-separated names, array indices)
 *   "-path"       remove a member
 *   "~old~new"    replace text in the encoded message (after the above)
 *   "@name"       a special mutation, see apply_special()
 * $NAME placeholders in paths and values are expanded, see expand(). */
static const MalformedCase cases[] = {
  /* Valid controls: the mutations below are what makes the others fail. */
  { "valid-direct", "OK", NULL, BASE_PLAIN, { NULL } },
  { "valid-encrypted", "OK", NULL, BASE_ENVELOPE, { NULL } },
  { "valid-group", "OK", NULL, BASE_GROUP, { NULL } },
  { "relayed-route", "OK", NULL, BASE_PLAIN, { "route=[\"$ALICE\",\"$CAROL\"]" } },
  { "relayed-hops", "OK", NULL, BASE_PLAIN, { "hops=3" } },
  { "relayed-retry-count", "OK", NULL, BASE_PLAIN, { "retryCount=1000" } },
  { "relayed-encrypted", "OK", NULL, BASE_ENVELOPE, { "route=[\"$ALICE\",\"$CAROL\",\"$BOB\"]", "hops=2", "retryCount=4" } },

  /* Size, encoding, syntax */
  { "too-large", "TOO_LARGE", NULL, BASE_PLAIN, { "@too-large" } },
  { "too-deep", "TOO_DEEP", NULL, BASE_PLAIN, { "@too-deep" } },
  { "too-deep-unclosed", "TOO_DEEP", NULL, BASE_PLAIN, { "@raw:{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[" } },
  { "invalid-utf8", "INVALID_UTF8", NULL, BASE_PLAIN, { "~Hello, Bob!~Hello, \xff\xfe!" } },
  { "overlong-utf8", "INVALID_UTF8", NULL, BASE_PLAIN, { "~Hello, Bob!~Hello, \xc0\xaf!" } },
  { "lone-surrogate", "INVALID_UTF8", NULL, BASE_PLAIN, { "~Hello, Bob!~Hello, \\ud800!" } },
  { "truncated", "MALFORMED_JSON", NULL, BASE_PLAIN, { "@truncate" } },
  { "empty", "MALFORMED_JSON", NULL, BASE_PLAIN, { "@raw:" } },
  { "trailing-comma", "MALFORMED_JSON", NULL, BASE_PLAIN, { "~\"encrypted\":false}~\"encrypted\":false,}" } },
  { "single-quotes", "MALFORMED_JSON", NULL, BASE_PLAIN, { "~\"version\"~'version'" } },
  { "comment", "MALFORMED_JSON", NULL, BASE_PLAIN, { "~{\"id\"~{/* hi */\"id\"" } },
  { "nul-escape", "MALFORMED_JSON", NULL, BASE_PLAIN, { "~Hello, Bob!~Hello\\u0000, Bob!" } },
  { "duplicate-member", "MALFORMED_JSON", NULL, BASE_PLAIN, { "~{\"id\"~{\"ttl\":1,\"id\"" } },
  { "trailing-garbage", "MALFORMED_JSON", NULL, BASE_PLAIN, { "~\"encrypted\":false}~\"encrypted\":false} x" } },
  { "hex-number", "MALFORMED_JSON", NULL, BASE_PLAIN, { "~\"ttl\":3600000~\"ttl\":0x10" } },
  { "leading-zero", "MALFORMED_JSON", NULL, BASE_PLAIN, { "~\"sequence\":42~\"sequence\":042" } },
  { "not-an-object-array", "NOT_AN_OBJECT", NULL, BASE_PLAIN, { "@raw:[1,2,3]" } },
  { "not-an-object-string", "NOT_AN_OBJECT", NULL, BASE_PLAIN, { "@raw:\"hello\"" } },
  { "huge-integer", "OUT_OF_RANGE", NULL, BASE_PLAIN, { "~\"sequence\":42~\"sequence\":99999999999999999999" } },

  /* Version and type come first */
  { "version-unknown", "UNSUPPORTED_VERSION", "2.0", BASE_PLAIN, { "version=\"2.0\"", "priority=1" } },
  { "version-missing", "MISSING_FIELD", "version", BASE_PLAIN, { "-version" } },
  { "version-number", "WRONG_TYPE", "version", BASE_PLAIN, { "version=1" } },
  { "type-unknown", "UNKNOWN_TYPE", "type", BASE_PLAIN, { "type=\"shout\"" } },
  { "type-missing", "MISSING_FIELD", "type", BASE_PLAIN, { "-type" } },
  { "type-number", "WRONG_TYPE", "type", BASE_PLAIN, { "type=5" } },

  /* Each required field missing */
  { "missing-id", "MISSING_FIELD", "id", BASE_PLAIN, { "-id" } },
  { "missing-from", "MISSING_FIELD", "from", BASE_PLAIN, { "-from" } },
  { "missing-to", "MISSING_FIELD", "to", BASE_PLAIN, { "-to" } },
  { "missing-timestamp", "MISSING_FIELD", "timestamp", BASE_PLAIN, { "-timestamp" } },
  { "missing-sequence", "MISSING_FIELD", "sequence", BASE_PLAIN, { "-sequence" } },
  { "missing-requires-ack", "MISSING_FIELD", "requiresAck", BASE_PLAIN, { "-requiresAck" } },
  { "missing-ttl", "MISSING_FIELD", "ttl", BASE_PLAIN, { "-ttl" } },
  { "missing-encrypted", "MISSING_FIELD", "encrypted", BASE_PLAIN, { "-encrypted" } },
  { "missing-content", "MISSING_FIELD", "content", BASE_PLAIN, { "-content" } },
  { "missing-group", "MISSING_FIELD", "group", BASE_GROUP, { "-group" } },

  /* Each field with the wrong JSON type */
  { "id-number", "WRONG_TYPE", "id", BASE_PLAIN, { "id=12345678" } },
  { "from-array", "WRONG_TYPE", "from", BASE_PLAIN, { "from=[\"$ALICE\"]" } },
  { "to-string", "WRONG_TYPE", "to", BASE_PLAIN, { "to=\"$BOB\"" } },
  { "to-element-number", "WRONG_TYPE", "to[0]", BASE_PLAIN, { "to=[42]" } },
  { "route-object", "WRONG_TYPE", "route", BASE_PLAIN, { "route={}" } },
  { "hops-string", "WRONG_TYPE", "hops", BASE_PLAIN, { "hops=\"1\"" } },
  { "group-number", "WRONG_TYPE", "group", BASE_GROUP, { "group=7" } },
  { "timestamp-string", "WRONG_TYPE", "timestamp", BASE_PLAIN, { "timestamp=\"now\"" } },
  { "timestamp-float", "WRONG_TYPE", "timestamp", BASE_PLAIN, { "~\"timestamp\":1640995200000~\"timestamp\":1640995200000.5" } },
  { "sequence-bool", "WRONG_TYPE", "sequence", BASE_PLAIN, { "sequence=true" } },
  { "vector-clock-array", "WRONG_TYPE", "vectorClock", BASE_PLAIN, { "vectorClock=[]" } },
  { "vector-clock-value-string", "WRONG_TYPE", "vectorClock.", BASE_PLAIN, { "vectorClock.$ALICE=\"42\"" } },
  { "requires-ack-string", "WRONG_TYPE", "requiresAck", BASE_PLAIN, { "requiresAck=\"yes\"" } },
  { "ttl-null", "WRONG_TYPE", "ttl", BASE_PLAIN, { "ttl=null" } },
  { "retry-count-float", "WRONG_TYPE", "retryCount", BASE_PLAIN, { "~\"retryCount\":0~\"retryCount\":1.0" } },
  { "encrypted-number", "WRONG_TYPE", "encrypted", BASE_PLAIN, { "encrypted=0" } },
  { "content-string", "WRONG_TYPE", "content", BASE_PLAIN, { "content=\"Hello\"" } },
  { "signature-number", "WRONG_TYPE", "signature", BASE_PLAIN, { "signature=0" } },

  /* Out of range */
  { "hops-too-many", "OUT_OF_RANGE", "hops", BASE_PLAIN, { "hops=4" } },
  { "hops-negative", "OUT_OF_RANGE", "hops", BASE_PLAIN, { "hops=-1" } },
  { "route-too-long", "OUT_OF_RANGE", "route", BASE_PLAIN, { "route=[\"$ALICE\",\"$CAROL\",\"$BOB\",\"$CAROL\",\"$BOB\",\"$CAROL\"]" } },
  { "to-empty", "OUT_OF_RANGE", "to", BASE_PLAIN, { "to=[]" } },
  { "to-too-many", "OUT_OF_RANGE", "to", BASE_PLAIN, { "@to-257" } },
  { "to-duplicate", "OUT_OF_RANGE", "to[1]", BASE_PLAIN, { "to=[\"$BOB\",\"$BOB\"]" } },
  { "retry-count-too-high", "OUT_OF_RANGE", "retryCount", BASE_PLAIN, { "retryCount=1001" } },
  { "timestamp-negative", "OUT_OF_RANGE", "timestamp", BASE_PLAIN, { "timestamp=-1" } },
  { "timestamp-beyond-2-53", "OUT_OF_RANGE", NULL, BASE_PLAIN, { "~\"timestamp\":1640995200000~\"timestamp\":9007199254740993" } },
  { "ttl-over-30-days", "OUT_OF_RANGE", "ttl", BASE_PLAIN, { "ttl=2592000001" } },
  { "ttl-negative", "OUT_OF_RANGE", "ttl", BASE_PLAIN, { "ttl=-5" } },
  { "sequence-negative", "OUT_OF_RANGE", "sequence", BASE_PLAIN, { "sequence=-1" } },
  { "vector-clock-negative", "OUT_OF_RANGE", "vectorClock.", BASE_PLAIN, { "vectorClock.$ALICE=-1" } },
  { "vector-clock-too-many", "OUT_OF_RANGE", "vectorClock", BASE_PLAIN, { "@vector-clock-257" } },

  /* Peer IDs */
  { "from-seed-style", "INVALID_PEER_ID", "from", BASE_PLAIN, { "from=\"peer-alice-123\"" } },
  { "from-bad-checksum", "INVALID_PEER_ID", "from", BASE_PLAIN, { "from=\"$BADSUM\"" } },
  { "from-upper-case", "INVALID_PEER_ID", "from", BASE_PLAIN, { "from=\"$UPPER\"" } },
  { "from-dashes", "INVALID_PEER_ID", "from", BASE_PLAIN, { "from=\"$DASHED\"" } },
  { "to-bad-checksum", "INVALID_PEER_ID", "to[0]", BASE_PLAIN, { "to=[\"$BADSUM\"]" } },
  { "route-invalid", "INVALID_PEER_ID", "route[0]", BASE_PLAIN, { "route=[\"n123\"]" } },
  { "vector-clock-key-invalid", "INVALID_PEER_ID", "vectorClock", BASE_PLAIN, { "vectorClock={\"peer-bob-456\":1}" } },

  /* IDs */
  { "id-too-short", "INVALID_ID", "id", BASE_PLAIN, { "id=\"msg_1\"" } },
  { "id-path", "INVALID_ID", "id", BASE_PLAIN, { "id=\"msg_1640995200000/../../x\"" } },
  { "id-too-long", "INVALID_ID", "id", BASE_PLAIN, { "id=\"$LONGID\"" } },
  { "group-invalid", "INVALID_ID", "group", BASE_GROUP, { "group=\"bad group\"" } },
  { "ack-message-id-invalid", "INVALID_ID", "content.messageId", BASE_PLAIN, { "type=\"message_ack\"", "content={\"messageId\":\"nope\"}" } },
  { "key-id-invalid", "INVALID_ID", "content.keyId", BASE_GROUP, { "content.keyId=\"k\"" } },

  /* Base64 */
  { "signature-not-base64", "INVALID_BASE64", "signature", BASE_PLAIN, { "signature=\"!!!!\"" } },
  { "signature-too-short", "INVALID_BASE64", "signature", BASE_PLAIN, { "signature=\"AAAA\"" } },
  { "nonce-wrong-length", "INVALID_BASE64", "content.nonce", BASE_ENVELOPE, { "content.nonce=\"AAAA\"" } },
  { "ciphertext-bad-character", "INVALID_BASE64", "content.ciphertext", BASE_ENVELOPE, { "content.ciphertext=\"abc$\"" } },
  { "file-hash-wrong-length", "INVALID_BASE64", "content.hash", BASE_PLAIN, { "type=\"file_offer\"", "content={\"fileId\":\"file_0001\",\"name\":\"a.pdf\",\"size\":1,\"mediaType\":\"application/pdf\",\"hash\":\"AAAA\"}" } },
  { "file-chunk-data-url-safe", "INVALID_BASE64", "content.data", BASE_PLAIN, { "type=\"file_chunk\"", "content={\"fileId\":\"file_0001\",\"offset\":0,\"data\":\"-_8=\"}" } },
  { "blob-unpadded", "INVALID_BASE64", "content.blob", BASE_PLAIN, { "type=\"peer_introduction\"", "content={\"peer\":\"$CAROL\",\"blob\":\"c2lnbmFsIQ\"}" } },

  /* Unknown fields */
  { "unknown-top-level-field", "UNKNOWN_FIELD", "priority", BASE_PLAIN, { "priority=1" } },
  { "unknown-content-field", "UNKNOWN_FIELD", "content.color", BASE_PLAIN, { "content.color=\"red\"" } },
  { "unknown-envelope-field", "UNKNOWN_FIELD", "content.extra", BASE_ENVELOPE, { "content.extra=1" } },
  { "unknown-attachment-field", "UNKNOWN_FIELD", "content.attachments[0].url", BASE_PLAIN, { "content.attachments.0.url=\"http://x\"" } },

  /* Content of each type */
  { "chat-text-missing", "MISSING_FIELD", "content.text", BASE_PLAIN, { "-content.text" } },
  { "chat-text-number", "WRONG_TYPE", "content.text", BASE_PLAIN, { "content.text=42" } },
  { "chat-attachments-too-many", "OUT_OF_RANGE", "content.attachments", BASE_PLAIN, { "@attachments-33" } },
  { "chat-attachment-not-object", "WRONG_TYPE", "content.attachments", BASE_PLAIN, { "content.attachments=[\"cat.png\"]" } },
  { "chat-attachment-size-missing", "MISSING_FIELD", "content.attachments[0].size", BASE_PLAIN, { "-content.attachments.0.size" } },
  { "chat-metadata-array", "WRONG_TYPE", "content.metadata", BASE_PLAIN, { "content.metadata=[]" } },
  { "chat-metadata-float", "WRONG_TYPE", "content.metadata.pi", BASE_PLAIN, { "content.metadata={\"pi\":3.14}" } },
  { "ack-message-id-missing", "MISSING_FIELD", "content.messageId", BASE_PLAIN, { "type=\"message_delivered\"", "content={}" } },
  { "read-extra-field", "UNKNOWN_FIELD", "content.text", BASE_PLAIN, { "type=\"message_read\"", "content={\"messageId\":\"msg_1640995200000_0123456789abcdef\",\"text\":\"hi\"}" } },
  { "typing-not-bool", "WRONG_TYPE", "content.typing", BASE_PLAIN, { "type=\"typing_indicator\"", "content={\"typing\":\"yes\"}" } },
  { "presence-unknown-status", "OUT_OF_RANGE", "content.status", BASE_PLAIN, { "type=\"presence_update\"", "content={\"status\":\"busy\"}" } },
  { "status-too-long", "OUT_OF_RANGE", "content.text", BASE_PLAIN, { "type=\"status_update\"", "content={\"text\":\"$TEXT257\"}" } },
  { "file-offer-negative-size", "OUT_OF_RANGE", "content.size", BASE_PLAIN, { "type=\"file_offer\"", "content={\"fileId\":\"file_0001\",\"name\":\"a.pdf\",\"size\":-1,\"mediaType\":\"application/pdf\",\"hash\":\"$HASH\"}" } },
  { "file-offer-empty-name", "OUT_OF_RANGE", "content.name", BASE_PLAIN, { "type=\"file_offer\"", "content={\"fileId\":\"file_0001\",\"name\":\"\",\"size\":1,\"mediaType\":\"application/pdf\",\"hash\":\"$HASH\"}" } },
  { "file-accept-offset-missing", "MISSING_FIELD", "content.offset", BASE_PLAIN, { "type=\"file_accept\"", "content={\"fileId\":\"file_0001\"}" } },
  { "file-chunk-offset-string", "WRONG_TYPE", "content.offset", BASE_PLAIN, { "type=\"file_chunk\"", "content={\"fileId\":\"file_0001\",\"offset\":\"0\",\"data\":\"aGVsbG8=\"}" } },
  { "file-complete-hash-missing", "MISSING_FIELD", "content.hash", BASE_PLAIN, { "type=\"file_complete\"", "content={\"fileId\":\"file_0001\"}" } },
  { "introduction-peer-invalid", "INVALID_PEER_ID", "content.peer", BASE_PLAIN, { "type=\"peer_introduction\"", "content={\"peer\":\"$BADSUM\",\"blob\":\"c2lnbmFs\"}" } },
  { "connection-target-missing", "MISSING_FIELD", "content.target", BASE_PLAIN, { "type=\"connection_request\"", "content={\"blob\":\"c2lnbmFs\"}" } },
  { "heartbeat-sent-at-float", "WRONG_TYPE", "content.sentAt", BASE_PLAIN, { "type=\"heartbeat\"", "content={\"sentAt\":1.5}" } },
  { "heartbeat-unknown-field", "UNKNOWN_FIELD", "content.x", BASE_PLAIN, { "type=\"heartbeat\"", "content={\"sentAt\":1,\"x\":1}" } },
  { "plaintext-marked-encrypted", "MISSING_FIELD", "content.nonce", BASE_PLAIN, { "encrypted=true" } },
  { "envelope-marked-plaintext", "MISSING_FIELD", "content.text", BASE_ENVELOPE, { "encrypted=false" } },

  /* Signatures */
  { "unsigned", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "-signature" } },
  { "forged-signature", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "signature=\"$ZEROSIG\"" } },
  { "signature-bit-flipped", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "@flip-signature" } },
  { "tampered-from", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "from=\"$CAROL\"" } },
  { "tampered-id", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "id=\"msg_1640995200000_ffffffffffffffff\"" } },
  { "tampered-type", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "type=\"private_message\"" } },
  { "tampered-to", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "to=[\"$CAROL\"]" } },
  { "tampered-to-added", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "to=[\"$BOB\",\"$CAROL\"]" } },
  { "tampered-group-added", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "group=\"grp_other_0001\"" } },
  { "tampered-group", "BAD_SIGNATURE", "signature", BASE_GROUP, { "group=\"grp_other_0001\"" } },
  { "tampered-text", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "content.text=\"Hello, Eve!\"" } },
  { "tampered-attachment", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "content.attachments.0.size=1" } },
  { "tampered-metadata", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "content.metadata.lang=\"fr\"" } },
  { "tampered-timestamp", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "timestamp=1640995200001" } },
  { "tampered-sequence", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "sequence=43" } },
  { "tampered-vector-clock", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "vectorClock.$BOB=16" } },
  { "tampered-vector-clock-added", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "vectorClock.$CAROL=1" } },
  { "tampered-requires-ack", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "requiresAck=false" } },
  { "tampered-ttl", "BAD_SIGNATURE", "signature", BASE_PLAIN, { "ttl=60000" } },
  { "tampered-nonce", "BAD_SIGNATURE", "signature", BASE_ENVELOPE, { "content.nonce=\"$NONCE2\"" } },
  { "tampered-ciphertext", "BAD_SIGNATURE", "signature", BASE_ENVELOPE, { "content.ciphertext=\"$CIPHERTEXT2\"" } },
  { "tampered-key-id", "BAD_SIGNATURE", "signature", BASE_GROUP, { "content.keyId=\"key_family_2\"" } },
  { "tampered-key-id-removed", "BAD_SIGNATURE", "signature", BASE_GROUP, { "-content.keyId" } },
};

typedef struct
{
  NatterIdentity *alice;
  NatterIdentity *bob;
  NatterIdentity *carol;
  GBytes         *bases[3];
} Fixture;

static Fixture fx;

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

static char *
base64 (const guint8 *data,
        gsize         len)
{
  gsize b64_len = sodium_base64_ENCODED_LEN (len, sodium_base64_VARIANT_ORIGINAL);
  char *b64 = g_malloc (b64_len);

  return sodium_bin2base64 (b64, b64_len, data, len, sodium_base64_VARIANT_ORIGINAL);
}

static GBytes *
make_base (Base base)
{
  g_autoptr(NatterMessage) msg = natter_message_new (base == BASE_GROUP
                                                     ? NATTER_MESSAGE_TYPE_GROUP_MESSAGE
                                                     : NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);
  const char *alice = natter_identity_get_peer_id (fx.alice);
  const char *bob = natter_identity_get_peer_id (fx.bob);
  char *to[] = { (char *) bob, NULL };
  char *route[] = { (char *) alice, NULL };
  GError *error = NULL;
  GBytes *bytes;

  g_free (msg->id);
  msg->id = g_strdup ("msg_1640995200000_0123456789abcdef");
  msg->from = g_strdup (alice);
  g_strfreev (msg->to);
  msg->to = g_strdupv (to);
  g_strfreev (msg->route);
  msg->route = g_strdupv (route);
  msg->timestamp = G_GINT64_CONSTANT (1640995200000);
  msg->sequence = 42;
  natter_message_set_clock (msg, alice, 42);
  natter_message_set_clock (msg, bob, 15);
  msg->requires_ack = TRUE;
  msg->ttl = 3600000;

  if (base == BASE_PLAIN)
    {
      g_autoptr(JsonParser) parser = json_parser_new ();

      json_parser_load_from_data (parser,
                                  "{\"text\":\"Hello, Bob!\",\"attachments\":[{\"fileId\":\"file_0001\","
                                  "\"name\":\"cat.png\",\"size\":1234,\"mediaType\":\"image/png\"}],"
                                  "\"metadata\":{\"lang\":\"en\"}}", -1, &error);
      g_assert_no_error (error);
      json_object_unref (msg->content);
      msg->content = json_object_ref (json_node_get_object (json_parser_get_root (parser)));
    }
  else
    {
      /* A fixed envelope: these cases test the codec and the signature,
       * not decryption, and must not change from one run to the next. */
      guint8 ciphertext[48];

      memset (msg->nonce, 0x07, sizeof msg->nonce);
      memset (ciphertext, 0x99, sizeof ciphertext);
      g_clear_pointer (&msg->content, json_object_unref);
      msg->ciphertext = g_bytes_new (ciphertext, sizeof ciphertext);
      msg->encrypted = TRUE;
      if (base == BASE_GROUP)
        {
          msg->group = g_strdup ("grp_family_0001");
          msg->key_id = g_strdup ("key_family_1");
        }
    }

  g_assert_true (natter_message_sign (msg, fx.alice, &error));
  g_assert_no_error (error);
  bytes = natter_message_encode (msg, &error);
  g_assert_no_error (error);
  return bytes;
}

static char *
expand (const char *text)
{
  GString *s = g_string_new (text);
  const char *alice = natter_identity_get_peer_id (fx.alice);
  const char *bob = natter_identity_get_peer_id (fx.bob);
  g_autofree char *bad_sum = g_strdup (bob);
  g_autofree char *upper = g_ascii_strup (alice, -1);
  g_autofree char *dashed = g_strdup_printf ("%.20s-%.20s-%s", alice, alice + 20, alice + 40);
  g_autofree char *long_id = g_strnfill (129, 'a');
  g_autofree char *text257 = g_strnfill (257, 'z');
  guint8 zeros[64] = { 0 };
  guint8 other[48];
  guint8 hash[32];
  g_autofree char *zero_sig = base64 (zeros, 64);
  g_autofree char *nonce2 = base64 (zeros, 24);
  g_autofree char *ciphertext2 = NULL;
  g_autofree char *hash_b64 = NULL;

  /* One changed character in the key part: the checksum catches it. */
  bad_sum[30] = bad_sum[30] == 'a' ? 'b' : 'a';
  memset (other, 0x98, sizeof other);
  ciphertext2 = base64 (other, sizeof other);
  for (guint i = 0; i < sizeof hash; i++)
    hash[i] = i;
  hash_b64 = base64 (hash, sizeof hash);

  g_string_replace (s, "$ALICE", alice, 0);
  g_string_replace (s, "$BOB", bob, 0);
  g_string_replace (s, "$CAROL", natter_identity_get_peer_id (fx.carol), 0);
  g_string_replace (s, "$BADSUM", bad_sum, 0);
  g_string_replace (s, "$UPPER", upper, 0);
  g_string_replace (s, "$DASHED", dashed, 0);
  g_string_replace (s, "$LONGID", long_id, 0);
  g_string_replace (s, "$TEXT257", text257, 0);
  g_string_replace (s, "$ZEROSIG", zero_sig, 0);
  g_string_replace (s, "$NONCE2", nonce2, 0);
  g_string_replace (s, "$CIPHERTEXT2", ciphertext2, 0);
  g_string_replace (s, "$HASH", hash_b64, 0);
  return g_string_free (s, FALSE);
}

static JsonNode *
parse_node (const char *json)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  GError *error = NULL;

  json_parser_load_from_data (parser, json, -1, &error);
  g_assert_no_error (error);
  return json_node_copy (json_parser_get_root (parser));
}

/* Sets (@value non-NULL) or removes the member at @path. */
static void
apply_path (JsonObject *root,
            const char *path,
            JsonNode   *value)
{
  g_auto(GStrv) parts = g_strsplit (path, ".", -1);
  guint n = g_strv_length (parts);
  JsonNode *node = NULL;
  JsonObject *object = root;
  JsonArray *array = NULL;

  for (guint i = 0; i + 1 < n; i++)
    {
      node = object ? json_object_get_member (object, parts[i])
                    : json_array_get_element (array, atoi (parts[i]));
      g_assert_nonnull (node);
      object = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
      array = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
      g_assert_true (object != NULL || array != NULL);
    }

  if (object != NULL && value != NULL)
    json_object_set_member (object, parts[n - 1], value);
  else if (object != NULL)
    {
      g_assert_true (json_object_has_member (object, parts[n - 1]));
      json_object_remove_member (object, parts[n - 1]);
    }
  else
    {
      guint index = atoi (parts[n - 1]);

      g_assert_nonnull (value);
      g_assert_cmpuint (index, <, json_array_get_length (array));
      json_array_remove_element (array, index);
      /* json-glib has no "replace element"; rebuild in order. */
      {
        g_autoptr(JsonArray) rebuilt = json_array_new ();
        guint len = json_array_get_length (array);

        for (guint i = 0; i <= len; i++)
          {
            if (i == index)
              json_array_add_element (rebuilt, json_node_ref (value));
            if (i < len)
              json_array_add_element (rebuilt, json_node_copy (json_array_get_element (array, i)));
          }
        while (json_array_get_length (array) > 0)
          json_array_remove_element (array, 0);
        for (guint i = 0; i < json_array_get_length (rebuilt); i++)
          json_array_add_element (array, json_node_copy (json_array_get_element (rebuilt, i)));
        json_node_unref (value);
      }
    }
}

static char *
repeat_json (const char *item,
             guint       count,
             const char *open,
             const char *close)
{
  GString *s = g_string_new (open);

  for (guint i = 0; i < count; i++)
    {
      g_autofree char *expanded = NULL;
      g_autofree char *numbered = g_strdup_printf (item, i);

      if (i > 0)
        g_string_append_c (s, ',');
      expanded = expand (numbered);
      g_string_append (s, expanded);
    }
  g_string_append (s, close);
  return g_string_free (s, FALSE);
}

static void
apply_special (const char *name,
               JsonObject *root)
{
  g_autofree char *json = NULL;
  const char *path = NULL;

  if (strcmp (name, "@too-large") == 0)
    {
      g_autofree char *text = g_strnfill (NATTER_MESSAGE_MAX_SIZE, 'a');

      json_object_set_string_member (json_object_get_object_member (root, "content"), "text", text);
      return;
    }
  if (strcmp (name, "@too-deep") == 0)
    {
      /* root, content, metadata and 30 arrays: 33 levels */
      g_autofree char *open = g_strnfill (30, '[');
      g_autofree char *close = g_strnfill (30, ']');

      path = "content.metadata";
      json = g_strdup_printf ("{\"deep\":%s0%s}", open, close);
    }
  else if (strcmp (name, "@to-257") == 0)
    {
      path = "to";
      json = repeat_json ("\"$BOB\"", 257, "[", "]");
    }
  else if (strcmp (name, "@vector-clock-257") == 0)
    {
      path = "vectorClock";
      json = repeat_json ("\"p%u\":1", 257, "{", "}");
    }
  else if (strcmp (name, "@attachments-33") == 0)
    {
      path = "content.attachments";
      json = repeat_json ("{\"fileId\":\"file_%04u\",\"name\":\"a.png\",\"size\":1}", 33, "[", "]");
    }
  else if (strcmp (name, "@flip-signature") == 0)
    {
      const char *b64 = json_object_get_string_member (root, "signature");
      guint8 signature[64];
      size_t len;
      g_autofree char *flipped = NULL;

      g_assert_cmpint (sodium_base642bin (signature, sizeof signature, b64, strlen (b64), NULL,
                                          &len, NULL, sodium_base64_VARIANT_ORIGINAL), ==, 0);
      signature[0] ^= 0x01;
      flipped = base64 (signature, len);
      json_object_set_string_member (root, "signature", flipped);
      return;
    }
  else
    g_error ("unknown special mutation %s", name);

  apply_path (root, path, parse_node (json));
}

/* The bytes of @c: its base message with its operations applied. */
static GBytes *
build_case (const MalformedCase *c)
{
  gsize base_len;
  const char *base_data = g_bytes_get_data (fx.bases[c->base], &base_len);
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(GString) text = NULL;
  gboolean changed = FALSE;

  for (guint i = 0; i < G_N_ELEMENTS (c->ops) && c->ops[i] != NULL; i++)
    if (g_str_has_prefix (c->ops[i], "@raw:"))
      return g_bytes_new (c->ops[i] + 5, strlen (c->ops[i] + 5));

  {
    g_autofree char *json = g_strndup (base_data, base_len);

    root = parse_node (json);
  }

  for (guint i = 0; i < G_N_ELEMENTS (c->ops) && c->ops[i] != NULL; i++)
    {
      const char *op = c->ops[i];

      if (op[0] == '@' && strcmp (op, "@truncate") != 0)
        {
          apply_special (op, json_node_get_object (root));
          changed = TRUE;
        }
      else if (op[0] == '-')
        {
          g_autofree char *path = expand (op + 1);

          apply_path (json_node_get_object (root), path, NULL);
          changed = TRUE;
        }
      else if (strchr (op, '=') != NULL && op[0] != '~')
        {
          g_autofree char *expanded = expand (op);
          char *eq = strchr (expanded, '=');

          *eq = '\0';
          apply_path (json_node_get_object (root), expanded, parse_node (eq + 1));
          changed = TRUE;
        }
    }

  if (changed)
    {
      json_generator_set_root (generator, root);
      text = g_string_new (NULL);
      json_generator_to_gstring (generator, text);
    }
  else
    {
      text = g_string_new_len (base_data, base_len);
    }

  for (guint i = 0; i < G_N_ELEMENTS (c->ops) && c->ops[i] != NULL; i++)
    {
      const char *op = c->ops[i];

      if (op[0] == '~')
        {
          g_auto(GStrv) parts = g_strsplit (op + 1, "~", 2);

          g_assert_cmpuint (g_string_replace (text, parts[0], parts[1], 1), ==, 1);
        }
      else if (strcmp (op, "@truncate") == 0)
        {
          g_string_truncate (text, text->len / 2);
        }
    }

  return g_string_free_to_bytes (g_steal_pointer (&text));
}

static void
assert_case (const MalformedCase *c,
             GBytes              *bytes)
{
  g_autoptr(NatterMessage) msg = NULL;
  GError *error = NULL;
  NatterMessageError code;
  gint expected;

  msg = natter_message_decode (bytes, NATTER_MESSAGE_DECODE_VERIFY, &error);

  if (strcmp (c->code, "OK") == 0)
    {
      g_assert_no_error (error);
      g_assert_nonnull (msg);
      return;
    }

  g_assert_true (natter_message_error_code_from_string (c->code, &code));
  expected = code;
  if (error == NULL || error->code != expected)
    g_test_message ("case %s: expected %s, got %s (%s)", c->name, c->code,
                    error ? natter_message_error_code_to_string (error->code) : "success",
                    error ? error->message : "");
  g_assert_error (error, NATTER_MESSAGE_ERROR, expected);
  g_assert_null (msg);
  if (c->field != NULL && strstr (error->message, c->field) == NULL)
    g_error ("case %s: “%s” does not name %s", c->name, error->message, c->field);
  g_clear_error (&error);
}

static void
test_table (void)
{
  guint n_errors = 0;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GBytes) bytes = build_case (&cases[i]);

      g_test_message ("case %s", cases[i].name);
      assert_case (&cases[i], bytes);
      if (strcmp (cases[i].code, "OK") != 0)
        n_errors++;
    }

  g_assert_cmpuint (n_errors, >=, 45);
}

static char *
fixture_dir (void)
{
  return g_test_build_filename (G_TEST_DIST, "fixtures", "malformed", NULL);
}

static char *
manifest_text (void)
{
  GString *s = g_string_new ("# Malformed-message fixtures: FILE EXPECTED-CODE\n"
                             "# Expected result of decoding FILE with signature verification\n"
                             "# (natter_message_decode with NATTER_MESSAGE_DECODE_VERIFY):\n"
                             "# OK, or a NatterMessageError name.  Generated by\n"
                             "# tests/test-malformed --generate; do not edit by hand.\n");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    g_string_append_printf (s, "%s.json %s\n", cases[i].name, cases[i].code);
  return g_string_free (s, FALSE);
}

/* The files are what other tools read: decode them, and check that they
 * still are what the table describes. */
static void
test_fixtures (void)
{
  g_autofree char *dir = fixture_dir ();
  g_autofree char *manifest_path = g_build_filename (dir, "manifest.txt", NULL);
  g_autofree char *manifest = NULL;
  g_autofree char *expected_manifest = manifest_text ();
  g_auto(GStrv) lines = NULL;
  GError *error = NULL;
  guint n_checked = 0;

  g_file_get_contents (manifest_path, &manifest, NULL, &error);
  g_assert_no_error (error);
  if (strcmp (manifest, expected_manifest) != 0)
    g_error ("%s is out of date: run test-malformed --generate %s", manifest_path, dir);

  lines = g_strsplit (manifest, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_auto(GStrv) words = NULL;
      g_autofree char *path = NULL;
      g_autofree char *name = NULL;
      g_autofree char *contents = NULL;
      g_autoptr(GBytes) file_bytes = NULL;
      g_autoptr(GBytes) table_bytes = NULL;
      const MalformedCase *c = NULL;
      gsize len;

      if (lines[i][0] == '#' || lines[i][0] == '\0')
        continue;
      words = g_strsplit (lines[i], " ", 2);
      g_assert_cmpuint (g_strv_length (words), ==, 2);
      name = g_strndup (words[0], strlen (words[0]) - strlen (".json"));
      for (guint j = 0; j < G_N_ELEMENTS (cases); j++)
        if (strcmp (cases[j].name, name) == 0)
          c = &cases[j];
      g_assert_nonnull (c);
      g_assert_cmpstr (c->code, ==, words[1]);

      path = g_build_filename (dir, words[0], NULL);
      g_file_get_contents (path, &contents, &len, &error);
      g_assert_no_error (error);
      file_bytes = g_bytes_new_take (g_steal_pointer (&contents), len);

      table_bytes = build_case (c);
      if (!g_bytes_equal (file_bytes, table_bytes))
        g_error ("%s is out of date: run test-malformed --generate %s", path, dir);

      assert_case (c, file_bytes);
      n_checked++;
    }

  g_assert_cmpuint (n_checked, ==, G_N_ELEMENTS (cases));
}

static void
test_every_code_covered (void)
{
  /* Every error code the decoder can give on input appears in the table. */
  static const NatterMessageError wanted[] = {
    NATTER_MESSAGE_ERROR_TOO_LARGE, NATTER_MESSAGE_ERROR_INVALID_UTF8,
    NATTER_MESSAGE_ERROR_TOO_DEEP, NATTER_MESSAGE_ERROR_MALFORMED_JSON,
    NATTER_MESSAGE_ERROR_NOT_AN_OBJECT, NATTER_MESSAGE_ERROR_UNSUPPORTED_VERSION,
    NATTER_MESSAGE_ERROR_UNKNOWN_TYPE, NATTER_MESSAGE_ERROR_MISSING_FIELD,
    NATTER_MESSAGE_ERROR_WRONG_TYPE, NATTER_MESSAGE_ERROR_OUT_OF_RANGE,
    NATTER_MESSAGE_ERROR_INVALID_PEER_ID, NATTER_MESSAGE_ERROR_INVALID_ID,
    NATTER_MESSAGE_ERROR_INVALID_BASE64, NATTER_MESSAGE_ERROR_UNKNOWN_FIELD,
    NATTER_MESSAGE_ERROR_BAD_SIGNATURE,
  };

  for (guint i = 0; i < G_N_ELEMENTS (wanted); i++)
    {
      const char *name = natter_message_error_code_to_string (wanted[i]);
      gboolean found = FALSE;

      for (guint j = 0; j < G_N_ELEMENTS (cases) && !found; j++)
        found = strcmp (cases[j].code, name) == 0;
      if (!found)
        g_error ("no case for %s", name);
    }
}

static void
test_decoder_survives_mutations (void)
{
  /* Every truncation and every single-byte change of a valid message
   * gives a clean result: a message or an error, never a crash. */
  gsize len;
  const guint8 *data = g_bytes_get_data (fx.bases[BASE_PLAIN], &len);
  g_autofree guint8 *copy = g_memdup2 (data, len);

  for (gsize cut = 0; cut < len; cut++)
    {
      g_autoptr(NatterMessage) msg = NULL;
      g_autoptr(GError) error = NULL;

      msg = natter_message_decode_data (data, cut, NATTER_MESSAGE_DECODE_VERIFY, &error);
      g_assert_true ((msg == NULL) != (error == NULL));
      g_assert_null (msg);
    }

  for (gsize i = 0; i < len; i++)
    {
      static const guint8 bytes[] = { 0x00, '"', '\\', '{', '[', '9', 0xff };

      for (guint j = 0; j < G_N_ELEMENTS (bytes); j++)
        {
          g_autoptr(NatterMessage) msg = NULL;
          g_autoptr(GError) error = NULL;

          copy[i] = bytes[j];
          msg = natter_message_decode_data (copy, len, NATTER_MESSAGE_DECODE_VERIFY, &error);
          g_assert_true ((msg == NULL) != (error == NULL));
          g_assert_true (error == NULL || error->domain == NATTER_MESSAGE_ERROR);
          g_assert_true (error == NULL || error->message[0] != '\0');
        }
      copy[i] = data[i];
    }
}

static int
generate (const char *dir)
{
  g_autofree char *manifest = manifest_text ();
  g_autofree char *manifest_path = g_build_filename (dir, "manifest.txt", NULL);
  GError *error = NULL;

  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      g_printerr ("cannot create %s\n", dir);
      return 1;
    }
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GBytes) bytes = build_case (&cases[i]);
      g_autofree char *file = g_strconcat (cases[i].name, ".json", NULL);
      g_autofree char *path = g_build_filename (dir, file, NULL);
      gsize len;
      const char *data = g_bytes_get_data (bytes, &len);

      if (!g_file_set_contents (path, data ? data : "", len, &error))
        {
          g_printerr ("%s\n", error->message);
          g_clear_error (&error);
          return 1;
        }
    }
  if (!g_file_set_contents (manifest_path, manifest, -1, &error))
    {
      g_printerr ("%s\n", error->message);
      g_clear_error (&error);
      return 1;
    }
  g_print ("wrote %u cases to %s\n", (guint) G_N_ELEMENTS (cases), dir);
  return 0;
}

int
main (int   argc,
      char *argv[])
{
  int ret;

  if (sodium_init () < 0)
    return 1;

  fx.alice = identity_from_byte ('A');
  fx.bob = identity_from_byte ('B');
  fx.carol = identity_from_byte ('C');
  for (guint i = 0; i < G_N_ELEMENTS (fx.bases); i++)
    fx.bases[i] = make_base (i);

  if (argc == 3 && strcmp (argv[1], "--generate") == 0)
    {
      ret = generate (argv[2]);
    }
  else
    {
      g_test_init (&argc, &argv, NULL);

      g_test_add_func ("/malformed/table", test_table);
      g_test_add_func ("/malformed/fixtures", test_fixtures);
      g_test_add_func ("/malformed/every-code-covered", test_every_code_covered);
      g_test_add_func ("/malformed/single-byte-mutations", test_decoder_survives_mutations);

      ret = g_test_run ();
    }

  for (guint i = 0; i < G_N_ELEMENTS (fx.bases); i++)
    g_bytes_unref (fx.bases[i]);
  g_clear_object (&fx.alice);
  g_clear_object (&fx.bob);
  g_clear_object (&fx.carol);
  return ret;
}
