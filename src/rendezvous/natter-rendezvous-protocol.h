/* natter-rendezvous-protocol.h: messages and limits of the rendezvous protocol
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

#include "core/natter-identity.h"

G_BEGIN_DECLS

/* The protocol is specified in docs/rendezvous.md. */

#define NATTER_RENDEZVOUS_PATH               "/v1"
#define NATTER_RENDEZVOUS_CHALLENGE_LEN      32
#define NATTER_RENDEZVOUS_MAX_FRAME          (64 * 1024)
/* Depth 1 is the message object, 2 the "peers" array. */
#define NATTER_RENDEZVOUS_MAX_DEPTH          2
#define NATTER_RENDEZVOUS_MAX_CONTACTS       1024
#define NATTER_RENDEZVOUS_MAX_BLOB           (16 * 1024)
/* The fixed context the registration signature starts with, NUL included,
 * so the signature can be mistaken for no other Natter signature. */
#define NATTER_RENDEZVOUS_REGISTER_CONTEXT   "natter-rendezvous-register-v1"

/* Close codes, in the private range RFC 6455 leaves to applications. */
typedef enum
{
  NATTER_RENDEZVOUS_CLOSE_PROTOCOL_ERROR = 4000,  /* malformed or unexpected message */
  NATTER_RENDEZVOUS_CLOSE_AUTH_FAILED    = 4001,  /* bad or replayed signature */
  NATTER_RENDEZVOUS_CLOSE_AUTH_TIMEOUT   = 4002,  /* no registration in time */
  NATTER_RENDEZVOUS_CLOSE_REPLACED       = 4003,  /* a newer connection registered the ID */
  NATTER_RENDEZVOUS_CLOSE_RATE_LIMITED   = 4004,
  NATTER_RENDEZVOUS_CLOSE_IDLE           = 4005,
  NATTER_RENDEZVOUS_CLOSE_SERVER_FULL    = 4006,
  NATTER_RENDEZVOUS_CLOSE_NOT_READING    = 4007,  /* its send queue stays full */
} NatterRendezvousCloseCode;

#define NATTER_RENDEZVOUS_ERROR (natter_rendezvous_error_quark ())

typedef enum
{
  NATTER_RENDEZVOUS_ERROR_TOO_LARGE,
  NATTER_RENDEZVOUS_ERROR_MALFORMED,      /* not UTF-8, not JSON, too deep, not an object */
  NATTER_RENDEZVOUS_ERROR_UNKNOWN_TYPE,
  NATTER_RENDEZVOUS_ERROR_BAD_FIELD,      /* missing, extra, wrong type or out of range */
} NatterRendezvousError;

GQuark natter_rendezvous_error_quark (void);

typedef enum
{
  NATTER_RENDEZVOUS_MESSAGE_REGISTER,
  NATTER_RENDEZVOUS_MESSAGE_CONTACTS,
  NATTER_RENDEZVOUS_MESSAGE_SIGNAL,
  NATTER_RENDEZVOUS_MESSAGE_PING,
} NatterRendezvousMessageType;

/* A validated message from a client.  Peer IDs are in canonical form. */
typedef struct
{
  NatterRendezvousMessageType type;
  /* register */
  char       *peer;
  guint8      public_key[NATTER_PUBLIC_KEY_LEN];
  guint8      signature[NATTER_SIGNATURE_LEN];
  /* signal */
  char       *to;
  GBytes     *blob;
  /* contacts: distinct peer IDs */
  GPtrArray  *peers;
} NatterRendezvousMessage;

NatterRendezvousMessage *natter_rendezvous_message_parse (const guint8             *data,
                                                          gsize                     len,
                                                          GError                  **error);
void                     natter_rendezvous_message_free  (NatterRendezvousMessage  *message);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterRendezvousMessage, natter_rendezvous_message_free)

/* The bytes a client signs to register: the context with its NUL, the
 * challenge, then the peer ID. */
GBytes  *natter_rendezvous_register_payload (const guint8 *challenge,
                                             const char   *peer_id);

/* Messages from the server, as JSON text. */
char    *natter_rendezvous_build_challenge     (const guint8 *challenge);
char    *natter_rendezvous_build_registered    (const char   *peer_id);
char    *natter_rendezvous_build_presence      (const char   *peer_id,
                                                gboolean      online);
char    *natter_rendezvous_build_signal        (const char   *from,
                                                GBytes       *blob);
char    *natter_rendezvous_build_undeliverable (const char   *to);
char    *natter_rendezvous_build_pong          (void);

/* A token bucket: @rate tokens a second up to @burst.  Time is passed in
 * (microseconds, monotonic) so it is tested without waiting. */
typedef struct
{
  double  tokens;
  double  rate;
  double  burst;
  gint64  last_us;
} NatterTokenBucket;

void     natter_token_bucket_init (NatterTokenBucket *bucket,
                                   double             rate,
                                   double             burst,
                                   gint64             now_us);
gboolean natter_token_bucket_take (NatterTokenBucket *bucket,
                                   gint64             now_us);

G_END_DECLS
