/* natter-message.h: the wire message, its JSON codec and its signature
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "natter-identity.h"

G_BEGIN_DECLS

/* The wire format is described in docs/protocol.md; these limits are part
 * of it. */
#define NATTER_MESSAGE_VERSION            "1.0"
#define NATTER_MESSAGE_MAX_SIZE           (256 * 1024)
#define NATTER_MESSAGE_MAX_DEPTH          32
#define NATTER_MESSAGE_MAX_HOPS           3
#define NATTER_MESSAGE_MAX_ROUTE          5
#define NATTER_MESSAGE_MAX_RECIPIENTS     256
#define NATTER_MESSAGE_MAX_RETRY_COUNT    1000
#define NATTER_MESSAGE_MAX_CLOCK_ENTRIES  256
#define NATTER_MESSAGE_MAX_INTEGER        G_GINT64_CONSTANT (9007199254740992)  /* 2^53 */
/* "tree": an 8-byte roster ID and one byte per other member. */
#define NATTER_MESSAGE_TREE_MIN           8
#define NATTER_MESSAGE_TREE_MAX           (8 + 255)
#define NATTER_MESSAGE_MAX_TTL            G_GINT64_CONSTANT (2592000000)        /* 30 days, ms */
#define NATTER_MESSAGE_NONCE_LEN          24
#define NATTER_MESSAGE_GROUP_KEY_LEN      32

#define NATTER_MESSAGE_ERROR (natter_message_error_quark ())

/* Every error names the offending field ("to[2]", "content.text", …) in its
 * message.  The codes are stable: fixtures and the CLI refer to them by the
 * names returned by natter_message_error_code_to_string(). */
typedef enum
{
  NATTER_MESSAGE_ERROR_TOO_LARGE,            /* input over NATTER_MESSAGE_MAX_SIZE */
  NATTER_MESSAGE_ERROR_INVALID_UTF8,         /* input or a string is not UTF-8 */
  NATTER_MESSAGE_ERROR_TOO_DEEP,             /* nesting over NATTER_MESSAGE_MAX_DEPTH */
  NATTER_MESSAGE_ERROR_MALFORMED_JSON,       /* not strict RFC 8259 JSON, or duplicate member */
  NATTER_MESSAGE_ERROR_NOT_AN_OBJECT,        /* the root is not an object */
  NATTER_MESSAGE_ERROR_UNSUPPORTED_VERSION,
  NATTER_MESSAGE_ERROR_UNKNOWN_TYPE,
  NATTER_MESSAGE_ERROR_MISSING_FIELD,
  NATTER_MESSAGE_ERROR_WRONG_TYPE,           /* wrong JSON type, including any float */
  NATTER_MESSAGE_ERROR_OUT_OF_RANGE,
  NATTER_MESSAGE_ERROR_INVALID_PEER_ID,
  NATTER_MESSAGE_ERROR_INVALID_ID,
  NATTER_MESSAGE_ERROR_INVALID_BASE64,       /* bad base64 or wrong decoded length */
  NATTER_MESSAGE_ERROR_UNKNOWN_FIELD,
  NATTER_MESSAGE_ERROR_BAD_SIGNATURE,        /* missing, forged or not matching */
  NATTER_MESSAGE_ERROR_DECRYPT_FAILED,
  NATTER_MESSAGE_ERROR_INVALID_STATE,        /* e.g. encrypting an encrypted message */
} NatterMessageError;

GQuark      natter_message_error_quark          (void);
const char *natter_message_error_code_to_string (NatterMessageError code);
gboolean    natter_message_error_code_from_string (const char         *text,
                                                   NatterMessageError *out_code);

typedef enum
{
  NATTER_MESSAGE_TYPE_DIRECT_MESSAGE,
  NATTER_MESSAGE_TYPE_GROUP_MESSAGE,
  NATTER_MESSAGE_TYPE_PRIVATE_MESSAGE,
  NATTER_MESSAGE_TYPE_MESSAGE_ACK,
  NATTER_MESSAGE_TYPE_MESSAGE_DELIVERED,
  NATTER_MESSAGE_TYPE_MESSAGE_READ,
  NATTER_MESSAGE_TYPE_TYPING_INDICATOR,
  NATTER_MESSAGE_TYPE_PRESENCE_UPDATE,
  NATTER_MESSAGE_TYPE_STATUS_UPDATE,
  NATTER_MESSAGE_TYPE_FILE_OFFER,
  NATTER_MESSAGE_TYPE_FILE_ACCEPT,
  NATTER_MESSAGE_TYPE_FILE_CHUNK,
  NATTER_MESSAGE_TYPE_FILE_COMPLETE,
  NATTER_MESSAGE_TYPE_PEER_INTRODUCTION,
  NATTER_MESSAGE_TYPE_CONNECTION_REQUEST,
  NATTER_MESSAGE_TYPE_HEARTBEAT,
} NatterMessageType;

#define NATTER_MESSAGE_N_TYPES (NATTER_MESSAGE_TYPE_HEARTBEAT + 1)

const char *natter_message_type_to_string   (NatterMessageType  type);
gboolean    natter_message_type_from_string (const char        *text,
                                             NatterMessageType *out_type);

/* "msg_<ms timestamp>_<16 random hex digits>" */
char       *natter_message_id_new           (void);
/* 8–128 characters of [A-Za-z0-9_-]: message, file, group and key IDs. */
gboolean    natter_message_id_is_valid      (const char        *id);

typedef struct _NatterMessage NatterMessage;

/* A message as it travels.  The fields are public; the codec and the
 * signature functions check them, so a message built by hand is validated
 * when it is signed or encoded. */
struct _NatterMessage
{
  /*< public >*/
  char              *id;
  NatterMessageType  type;
  char              *version;        /* NATTER_MESSAGE_VERSION */
  char              *from;           /* canonical peer ID of the author */
  GStrv              to;             /* canonical peer IDs, 1..256 */
  GStrv              route;          /* peer IDs the message went through, 0..5 */
  guint              hops;           /* 0..3 */
  char              *group;          /* group ID, or NULL; required for group_message */

  /* Plaintext content when !encrypted; NULL when encrypted. */
  JsonObject        *content;

  gint64             timestamp;      /* ms since the Unix epoch */
  guint64            sequence;       /* per-sender sequence number */
  /* peer ID (char *) -> counter (guint64 *); use natter_message_set_clock() */
  GHashTable        *vector_clock;
  gboolean           requires_ack;
  gint64             ttl;            /* ms, 0..NATTER_MESSAGE_MAX_TTL */
  guint              retry_count;    /* 0..NATTER_MESSAGE_MAX_RETRY_COUNT */

  gboolean           has_signature;
  guint8             signature[NATTER_SIGNATURE_LEN];

  /* The envelope, meaningful only when encrypted. */
  gboolean           encrypted;
  guint8             nonce[NATTER_MESSAGE_NONCE_LEN];
  GBytes            *ciphertext;     /* AEAD output, tag included */
  char              *key_id;         /* group key ID, or NULL */

  /* A group stream message's distribution tree, or NULL: a roster ID
   * and member indices (protocol.md, section 7); signed, not encrypted. */
  GBytes            *tree;

  /*< private >*/
  gatomicrefcount    ref_count;
};

#define NATTER_TYPE_MESSAGE (natter_message_get_type ())
GType          natter_message_get_type (void) G_GNUC_CONST;

/* A fresh message of @type with a new ID, the current time, version 1.0,
 * an empty content object and empty recipient, route and clock. */
NatterMessage *natter_message_new      (NatterMessageType  type);
NatterMessage *natter_message_ref      (NatterMessage     *self);
void           natter_message_unref    (NatterMessage     *self);
/* A deep copy (content and envelope included). */
NatterMessage *natter_message_copy     (NatterMessage     *self);

void           natter_message_set_clock (NatterMessage    *self,
                                         const char       *peer_id,
                                         guint64           value);
/* 0 when @peer_id has no entry. */
guint64        natter_message_get_clock (NatterMessage    *self,
                                         const char       *peer_id);

/* Checks every field as the decoder would, without encoding. */
gboolean       natter_message_validate  (NatterMessage    *self,
                                         GError          **error);

typedef enum
{
  NATTER_MESSAGE_DECODE_NONE   = 0,
  NATTER_MESSAGE_DECODE_VERIFY = 1 << 0,  /* also natter_message_verify() */
} NatterMessageDecodeFlags;

/* Compact JSON.  Fails (with the decoder's error codes) on an invalid
 * message, so whatever is encoded decodes again. */
GBytes        *natter_message_encode    (NatterMessage    *self,
                                         GError          **error);
/* Decodes untrusted bytes.  Never asserts on input. */
NatterMessage *natter_message_decode    (GBytes                   *bytes,
                                         NatterMessageDecodeFlags  flags,
                                         GError                  **error);
NatterMessage *natter_message_decode_data (const guint8             *data,
                                           gsize                     len,
                                           NatterMessageDecodeFlags  flags,
                                           GError                  **error);

/* The bytes that the signature covers: "natter-message-v1\n" followed by
 * the canonical JSON of the message without route, hops, retryCount and
 * signature.  See docs/protocol.md. */
GBytes        *natter_message_canonical_bytes (NatterMessage *self);

/* Validates the message, checks that @identity is its author (sets @from
 * when it is NULL) and signs it.  Encrypt first: the signature covers the
 * envelope. */
gboolean       natter_message_sign      (NatterMessage    *self,
                                         NatterIdentity   *identity,
                                         GError          **error);
/* Checks the signature against the key inside @from:
 * NATTER_MESSAGE_ERROR_BAD_SIGNATURE when missing or wrong. */
GBytes        *natter_message_sign_encode (NatterMessage  *self,
                                           NatterIdentity *identity,
                                           GError        **error);
gboolean       natter_message_verify    (NatterMessage    *self,
                                         GError          **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterMessage, natter_message_unref)

G_END_DECLS
