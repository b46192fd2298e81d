/* natter-identity.h: a peer's Ed25519 identity, peer IDs and safety numbers
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define NATTER_PUBLIC_KEY_LEN 32   /* Ed25519 public key */
#define NATTER_SIGNATURE_LEN  64   /* Ed25519 signature */
#define NATTER_X25519_KEY_LEN 32   /* X25519 public or secret key */

/* A peer ID is the base32 (RFC 4648, lower case, no padding) form of the
 * 32-byte Ed25519 public key followed by a 4-byte BLAKE2b checksum, behind
 * the prefix "n".  It is 1 + 58 = 59 characters long. */
#define NATTER_PEER_ID_LEN 59

#define NATTER_IDENTITY_ERROR (natter_identity_error_quark ())

typedef enum
{
  NATTER_IDENTITY_ERROR_INVALID_PEER_ID,   /* wrong length, alphabet or prefix */
  NATTER_IDENTITY_ERROR_BAD_CHECKSUM,      /* well formed, but mistyped */
  NATTER_IDENTITY_ERROR_INVALID_KEY,       /* not a valid Ed25519 point */
  NATTER_IDENTITY_ERROR_BAD_KEY_FILE,      /* identity file corrupt or unsafe */
  NATTER_IDENTITY_ERROR_BAD_SIGNATURE,
} NatterIdentityError;

GQuark natter_identity_error_quark (void);

#define NATTER_TYPE_IDENTITY (natter_identity_get_type ())
G_DECLARE_FINAL_TYPE (NatterIdentity, natter_identity, NATTER, IDENTITY, GObject)

/* Creating and loading.  The secret key never leaves the object; it is kept
 * in sodium_malloc()'d memory and wiped when the object is finalized. */
NatterIdentity *natter_identity_new_random        (void);
NatterIdentity *natter_identity_new_from_seed     (const guint8   *seed,   /* 32 bytes */
                                                   gsize           seed_len,
                                                   GError        **error);
/* Loads @path, or creates a fresh identity there (mode 0600, written to a
 * temporary file and renamed) when it does not exist.  Refuses a file that
 * is readable by others, has the wrong size or a bad header. */
NatterIdentity *natter_identity_load_or_create    (const char     *path,
                                                   gboolean       *out_created,
                                                   GError        **error);
gboolean        natter_identity_save              (NatterIdentity *self,
                                                   const char     *path,
                                                   GError        **error);

const char     *natter_identity_get_peer_id       (NatterIdentity *self);
const guint8   *natter_identity_get_public_key    (NatterIdentity *self); /* 32 bytes */
/* X25519 key pair derived from the Ed25519 one, for encryption and Noise. */
const guint8   *natter_identity_get_x25519_public (NatterIdentity *self);
const guint8   *natter_identity_get_x25519_secret (NatterIdentity *self);

void            natter_identity_sign              (NatterIdentity *self,
                                                   const guint8   *data,
                                                   gsize           len,
                                                   guint8          signature[NATTER_SIGNATURE_LEN]);

/* Peer IDs.  Parsing ignores case, spaces and dashes, so an ID copied from a
 * chat or read aloud in groups still parses. */
char           *natter_peer_id_from_public_key    (const guint8   *public_key);
gboolean        natter_peer_id_parse              (const char     *text,
                                                   guint8          public_key[NATTER_PUBLIC_KEY_LEN],
                                                   GError        **error);
/* Returns the canonical form of @text, or NULL with @error set. */
char           *natter_peer_id_normalize          (const char     *text,
                                                   GError        **error);
gboolean        natter_peer_id_is_valid           (const char     *text);

gboolean        natter_verify_signature           (const guint8   *public_key,
                                                   const guint8   *data,
                                                   gsize           len,
                                                   const guint8   *signature,
                                                   GError        **error);
gboolean        natter_public_key_to_x25519       (const guint8   *public_key,
                                                   guint8          x25519_public[NATTER_X25519_KEY_LEN],
                                                   GError        **error);

/* The safety number of two identities: 60 digits in 12 groups of 5, the
 * same whichever side computes it. */
char           *natter_safety_number              (const guint8   *public_key_a,
                                                   const guint8   *public_key_b);

G_END_DECLS
