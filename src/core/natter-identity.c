/* natter-identity.c: a peer's Ed25519 identity, peer IDs and safety numbers
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <glib-unix.h>
#include <sodium.h>

#include "natter-identity.h"

/* Peer ID: "n" + base32 (public key || checksum).  36 bytes are 288 bits,
 * which need 58 base32 digits of 5 bits; the last digit carries 3 bits and
 * 2 zero bits of padding. */
#define PEER_ID_PREFIX        'n'
#define PEER_ID_CHECKSUM_LEN  4
#define PEER_ID_PAYLOAD_LEN   (NATTER_PUBLIC_KEY_LEN + PEER_ID_CHECKSUM_LEN)
#define PEER_ID_BASE32_LEN    ((PEER_ID_PAYLOAD_LEN * 8 + 4) / 5)
#define PEER_ID_CHECKSUM_KEY  "natter-peer-id-v1"

G_STATIC_ASSERT (1 + PEER_ID_BASE32_LEN == NATTER_PEER_ID_LEN);
G_STATIC_ASSERT (NATTER_PUBLIC_KEY_LEN == crypto_sign_PUBLICKEYBYTES);
G_STATIC_ASSERT (NATTER_SIGNATURE_LEN == crypto_sign_BYTES);
G_STATIC_ASSERT (NATTER_X25519_KEY_LEN == crypto_scalarmult_curve25519_BYTES);

/* Identity file: a fixed 48-byte binary record.
 *
 *   0  8  magic "NATTERID"
 *   8  1  format version (1)
 *   9  3  reserved, zero
 *  12 32  Ed25519 seed
 *  44  4  first 4 bytes of BLAKE2b-256 keyed with KEY_FILE_CHECKSUM_KEY
 *         over bytes 0..43, so a damaged file is told apart from a
 *         different identity */
#define KEY_FILE_MAGIC         "NATTERID"
#define KEY_FILE_MAGIC_LEN     8
#define KEY_FILE_VERSION       1
#define KEY_FILE_SEED_OFFSET   12
#define KEY_FILE_SUM_OFFSET    (KEY_FILE_SEED_OFFSET + crypto_sign_SEEDBYTES)
#define KEY_FILE_SIZE          (KEY_FILE_SUM_OFFSET + 4)
#define KEY_FILE_CHECKSUM_KEY  "natter-key-file-v1"

G_STATIC_ASSERT (KEY_FILE_SIZE == 48);

/* Safety number: each key gives 30 digits from an iterated hash, so that
 * brute-forcing a key with a matching number costs SAFETY_ITERATIONS
 * hashes a try. */
#define SAFETY_ITERATIONS      1024
#define SAFETY_KEY             "natter-safety-number-v1"
#define SAFETY_CHUNKS          6
#define SAFETY_DIGITS          (SAFETY_CHUNKS * 5)

static const char base32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

typedef struct
{
  guint8 ed25519[crypto_sign_SECRETKEYBYTES];
  guint8 x25519[crypto_scalarmult_curve25519_SCALARBYTES];
} SecretKeys;

struct _NatterIdentity
{
  GObject     parent_instance;

  guint8      public_key[NATTER_PUBLIC_KEY_LEN];
  guint8      x25519_public[NATTER_X25519_KEY_LEN];
  char        peer_id[NATTER_PEER_ID_LEN + 1];

  /* In sodium_malloc()'d memory: guard pages, locked out of swap where
   * the system allows, and wiped by sodium_free(). */
  SecretKeys *secret;
};

G_DEFINE_TYPE (NatterIdentity, natter_identity, G_TYPE_OBJECT)

G_DEFINE_QUARK (natter-identity-error-quark, natter_identity_error)

static void
ensure_sodium (void)
{
  static gsize initialized = 0;

  if (g_once_init_enter (&initialized))
    {
      /* Without a working libsodium (no entropy source) no key can be made
       * safely, so there is nothing sensible left to do. */
      if (sodium_init () < 0)
        g_error ("libsodium could not be initialized");
      g_once_init_leave (&initialized, 1);
    }
}

static void
natter_identity_finalize (GObject *object)
{
  NatterIdentity *self = NATTER_IDENTITY (object);

  g_clear_pointer (&self->secret, sodium_free);

  G_OBJECT_CLASS (natter_identity_parent_class)->finalize (object);
}

static void
natter_identity_class_init (NatterIdentityClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = natter_identity_finalize;

  ensure_sodium ();
}

static void
natter_identity_init (NatterIdentity *self)
{
  self->secret = sodium_malloc (sizeof *self->secret);
  if (self->secret == NULL)
    g_error ("Could not allocate %" G_GSIZE_FORMAT " bytes of secure memory",
             sizeof *self->secret);
}

/* Base32 */

static void
base32_encode (const guint8 *data,
               gsize         len,
               char         *out)
{
  guint32 buffer = 0;
  guint bits = 0;
  gsize o = 0;

  for (gsize i = 0; i < len; i++)
    {
      buffer = (buffer << 8) | data[i];
      bits += 8;
      while (bits >= 5)
        {
          out[o++] = base32_alphabet[(buffer >> (bits - 5)) & 31];
          bits -= 5;
        }
    }
  if (bits > 0)
    out[o++] = base32_alphabet[(buffer << (5 - bits)) & 31];
  out[o] = '\0';
}

static int
base32_value (char c)
{
  if (c >= 'a' && c <= 'z')
    return c - 'a';
  if (c >= '2' && c <= '7')
    return c - '2' + 26;
  return -1;
}

static void
peer_id_checksum (const guint8 *public_key,
                  guint8        checksum[PEER_ID_CHECKSUM_LEN])
{
  guint8 hash[crypto_generichash_BYTES];

  crypto_generichash (hash, sizeof hash,
                      public_key, NATTER_PUBLIC_KEY_LEN,
                      (const guint8 *) PEER_ID_CHECKSUM_KEY,
                      strlen (PEER_ID_CHECKSUM_KEY));
  memcpy (checksum, hash, PEER_ID_CHECKSUM_LEN);
}

/**
 * natter_peer_id_from_public_key:
 * @public_key: a 32-byte Ed25519 public key
 *
 * Returns: (transfer full): the peer ID of @public_key, NATTER_PEER_ID_LEN
 *   characters long
 */
char *
natter_peer_id_from_public_key (const guint8 *public_key)
{
  guint8 payload[PEER_ID_PAYLOAD_LEN];
  char *peer_id;

  g_return_val_if_fail (public_key != NULL, NULL);

  ensure_sodium ();

  memcpy (payload, public_key, NATTER_PUBLIC_KEY_LEN);
  peer_id_checksum (public_key, payload + NATTER_PUBLIC_KEY_LEN);

  peer_id = g_malloc (NATTER_PEER_ID_LEN + 1);
  peer_id[0] = PEER_ID_PREFIX;
  base32_encode (payload, sizeof payload, peer_id + 1);

  return peer_id;
}

static gboolean peer_id_parse_text (const char  *text,
                                    guint8       public_key[NATTER_PUBLIC_KEY_LEN],
                                    GError     **error);

/* Every signed frame names its author, so the same few IDs are parsed
 * over and over; checking that the key is a valid point costs a scalar
 * multiplication (tens of µs, as much as half a signature check).  The
 * IDs that parsed are kept, spelled exactly as given, a bounded number. */
#define PARSED_CACHE_MAX      1024
#define PARSED_CACHE_TEXT_MAX (NATTER_PEER_ID_LEN + 16)

G_LOCK_DEFINE_STATIC (parsed_cache);
static GHashTable *parsed_cache;   /* text -> guint8[NATTER_PUBLIC_KEY_LEN] */

/**
 * natter_peer_id_parse:
 * @text: a peer ID as typed or pasted by a user
 * @public_key: (out caller-allocates): where to store the public key
 * @error: return location for a #GError
 *
 * Parses a peer ID, ignoring case, white space and dashes.  A malformed ID
 * gives %NATTER_IDENTITY_ERROR_INVALID_PEER_ID, a mistyped one
 * %NATTER_IDENTITY_ERROR_BAD_CHECKSUM and one whose key is not a usable
 * Ed25519 point %NATTER_IDENTITY_ERROR_INVALID_KEY.
 *
 * Returns: %TRUE on success
 */
gboolean
natter_peer_id_parse (const char  *text,
                      guint8       public_key[NATTER_PUBLIC_KEY_LEN],
                      GError     **error)
{
  const guint8 *known = NULL;
  gboolean cacheable;

  g_return_val_if_fail (public_key != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  cacheable = text != NULL && strnlen (text, PARSED_CACHE_TEXT_MAX + 1) <= PARSED_CACHE_TEXT_MAX;
  if (cacheable)
    {
      G_LOCK (parsed_cache);
      if (parsed_cache != NULL)
        known = g_hash_table_lookup (parsed_cache, text);
      if (known != NULL)
        memcpy (public_key, known, NATTER_PUBLIC_KEY_LEN);
      G_UNLOCK (parsed_cache);
      if (known != NULL)
        return TRUE;
    }

  if (!peer_id_parse_text (text, public_key, error))
    return FALSE;

  if (cacheable)
    {
      G_LOCK (parsed_cache);
      if (parsed_cache == NULL)
        parsed_cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      if (g_hash_table_size (parsed_cache) >= PARSED_CACHE_MAX)
        g_hash_table_remove_all (parsed_cache);
      g_hash_table_insert (parsed_cache, g_strdup (text),
                           g_memdup2 (public_key, NATTER_PUBLIC_KEY_LEN));
      G_UNLOCK (parsed_cache);
    }
  return TRUE;
}

static gboolean
peer_id_parse_text (const char  *text,
                    guint8       public_key[NATTER_PUBLIC_KEY_LEN],
                    GError     **error)
{
  char clean[NATTER_PEER_ID_LEN];
  guint8 payload[PEER_ID_PAYLOAD_LEN];
  guint8 checksum[PEER_ID_CHECKSUM_LEN];
  gsize n = 0;
  gsize total = 0;
  guint32 buffer = 0;
  guint bits = 0;
  gsize o = 0;

  ensure_sodium ();

  if (text == NULL)
    text = "";

  /* Only the first NATTER_PEER_ID_LEN significant characters are kept;
   * the rest are only counted, so a huge paste costs no memory. */
  for (const char *p = text; *p != '\0'; p++)
    {
      char c = *p;

      if (c == '-' || g_ascii_isspace (c))
        continue;

      c = g_ascii_tolower (c);
      if (total == 0 && c != PEER_ID_PREFIX)
        {
          g_set_error (error, NATTER_IDENTITY_ERROR,
                       NATTER_IDENTITY_ERROR_INVALID_PEER_ID,
                       "A peer ID starts with “%c”", PEER_ID_PREFIX);
          return FALSE;
        }
      if (total > 0 && base32_value (c) < 0)
        {
          if (g_ascii_isgraph (c))
            g_set_error (error, NATTER_IDENTITY_ERROR,
                         NATTER_IDENTITY_ERROR_INVALID_PEER_ID,
                         "A peer ID cannot contain “%c”; it uses only the "
                         "letters a–z and the digits 2–7", *p);
          else
            g_set_error_literal (error, NATTER_IDENTITY_ERROR,
                                 NATTER_IDENTITY_ERROR_INVALID_PEER_ID,
                                 "A peer ID uses only the letters a–z and "
                                 "the digits 2–7");
          return FALSE;
        }

      if (n < sizeof clean)
        clean[n++] = c;
      total++;
    }

  if (total != NATTER_PEER_ID_LEN)
    {
      if (total == 0)
        g_set_error_literal (error, NATTER_IDENTITY_ERROR,
                             NATTER_IDENTITY_ERROR_INVALID_PEER_ID,
                             "The peer ID is empty");
      else
        g_set_error (error, NATTER_IDENTITY_ERROR,
                     NATTER_IDENTITY_ERROR_INVALID_PEER_ID,
                     "A peer ID has %d characters, not %" G_GSIZE_FORMAT,
                     NATTER_PEER_ID_LEN, total);
      return FALSE;
    }

  for (gsize i = 1; i < NATTER_PEER_ID_LEN; i++)
    {
      buffer = (buffer << 5) | (guint32) base32_value (clean[i]);
      bits += 5;
      if (bits >= 8)
        {
          payload[o++] = (buffer >> (bits - 8)) & 0xff;
          bits -= 8;
        }
    }

  /* Non-zero padding bits come from a mistyped last character: without
   * this check two spellings would parse to the same key. */
  if ((buffer & ((1u << bits) - 1)) != 0)
    {
      g_set_error_literal (error, NATTER_IDENTITY_ERROR,
                           NATTER_IDENTITY_ERROR_BAD_CHECKSUM,
                           "The peer ID contains a typo (its last character "
                           "is not possible)");
      return FALSE;
    }

  peer_id_checksum (payload, checksum);
  if (sodium_memcmp (checksum, payload + NATTER_PUBLIC_KEY_LEN,
                     PEER_ID_CHECKSUM_LEN) != 0)
    {
      g_set_error_literal (error, NATTER_IDENTITY_ERROR,
                           NATTER_IDENTITY_ERROR_BAD_CHECKSUM,
                           "The peer ID contains a typo (its checksum does "
                           "not match)");
      return FALSE;
    }

  /* Small-order and non-canonical points would let a forged ID collide
   * with others or break the X25519 conversion later. */
  if (!crypto_core_ed25519_is_valid_point (payload))
    {
      g_set_error_literal (error, NATTER_IDENTITY_ERROR,
                           NATTER_IDENTITY_ERROR_INVALID_KEY,
                           "The peer ID does not contain a valid public key");
      return FALSE;
    }

  memcpy (public_key, payload, NATTER_PUBLIC_KEY_LEN);
  return TRUE;
}

/**
 * natter_peer_id_normalize:
 * @text: a peer ID as typed or pasted by a user
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (nullable): the canonical spelling of @text, or
 *   %NULL with @error set when it is not a valid peer ID
 */
char *
natter_peer_id_normalize (const char  *text,
                          GError     **error)
{
  guint8 public_key[NATTER_PUBLIC_KEY_LEN];

  if (!natter_peer_id_parse (text, public_key, error))
    return NULL;

  return natter_peer_id_from_public_key (public_key);
}

/**
 * natter_peer_id_is_valid:
 * @text: (nullable): a peer ID
 *
 * Returns: %TRUE when natter_peer_id_parse() would accept @text
 */
gboolean
natter_peer_id_is_valid (const char *text)
{
  guint8 public_key[NATTER_PUBLIC_KEY_LEN];

  return natter_peer_id_parse (text, public_key, NULL);
}

/* Keys and signatures */

static NatterIdentity *
identity_new_from_seed (const guint8  *seed,
                        GError       **error)
{
  g_autoptr(NatterIdentity) self = g_object_new (NATTER_TYPE_IDENTITY, NULL);
  g_autofree char *peer_id = NULL;

  if (crypto_sign_seed_keypair (self->public_key, self->secret->ed25519,
                                seed) != 0 ||
      crypto_sign_ed25519_pk_to_curve25519 (self->x25519_public,
                                            self->public_key) != 0 ||
      crypto_sign_ed25519_sk_to_curve25519 (self->secret->x25519,
                                            self->secret->ed25519) != 0)
    {
      g_set_error_literal (error, NATTER_IDENTITY_ERROR,
                           NATTER_IDENTITY_ERROR_INVALID_KEY,
                           "The key seed does not give a usable key pair");
      return NULL;
    }

  peer_id = natter_peer_id_from_public_key (self->public_key);
  memcpy (self->peer_id, peer_id, sizeof self->peer_id);

  return g_steal_pointer (&self);
}

/**
 * natter_identity_new_random:
 *
 * Returns: (transfer full): a new identity with a fresh random key
 */
NatterIdentity *
natter_identity_new_random (void)
{
  guint8 *seed;
  NatterIdentity *self;

  ensure_sodium ();

  seed = sodium_malloc (crypto_sign_SEEDBYTES);
  if (seed == NULL)
    g_error ("Could not allocate secure memory");
  randombytes_buf (seed, crypto_sign_SEEDBYTES);
  self = identity_new_from_seed (seed, NULL);
  sodium_free (seed);

  /* Any 32 bytes are a valid seed, so this cannot fail. */
  g_assert (self != NULL);
  return self;
}

/**
 * natter_identity_new_from_seed:
 * @seed: 32 bytes of secret seed
 * @seed_len: length of @seed
 * @error: return location for a #GError
 *
 * Derives the identity whose Ed25519 key pair comes from @seed, as
 * crypto_sign_seed_keypair() does.
 *
 * Returns: (transfer full) (nullable): the identity, or %NULL with @error set
 */
NatterIdentity *
natter_identity_new_from_seed (const guint8  *seed,
                               gsize          seed_len,
                               GError       **error)
{
  g_return_val_if_fail (seed != NULL || seed_len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  ensure_sodium ();

  if (seed_len != crypto_sign_SEEDBYTES)
    {
      g_set_error (error, NATTER_IDENTITY_ERROR,
                   NATTER_IDENTITY_ERROR_INVALID_KEY,
                   "A key seed has %d bytes, not %" G_GSIZE_FORMAT,
                   crypto_sign_SEEDBYTES, seed_len);
      return NULL;
    }

  return identity_new_from_seed (seed, error);
}

/**
 * natter_identity_get_peer_id:
 * @self: a #NatterIdentity
 *
 * Returns: the peer ID, in canonical form
 */
const char *
natter_identity_get_peer_id (NatterIdentity *self)
{
  g_return_val_if_fail (NATTER_IS_IDENTITY (self), NULL);

  return self->peer_id;
}

/**
 * natter_identity_get_public_key:
 * @self: a #NatterIdentity
 *
 * Returns: the 32-byte Ed25519 public key
 */
const guint8 *
natter_identity_get_public_key (NatterIdentity *self)
{
  g_return_val_if_fail (NATTER_IS_IDENTITY (self), NULL);

  return self->public_key;
}

/**
 * natter_identity_get_x25519_public:
 * @self: a #NatterIdentity
 *
 * Returns: the 32-byte X25519 public key matching the identity key
 */
const guint8 *
natter_identity_get_x25519_public (NatterIdentity *self)
{
  g_return_val_if_fail (NATTER_IS_IDENTITY (self), NULL);

  return self->x25519_public;
}

/**
 * natter_identity_get_x25519_secret:
 * @self: a #NatterIdentity
 *
 * Returns: the 32-byte X25519 secret key, valid as long as @self lives;
 *   do not copy it into ordinary memory
 */
const guint8 *
natter_identity_get_x25519_secret (NatterIdentity *self)
{
  g_return_val_if_fail (NATTER_IS_IDENTITY (self), NULL);

  return self->secret->x25519;
}

/**
 * natter_identity_sign:
 * @self: a #NatterIdentity
 * @data: the bytes to sign
 * @len: length of @data
 * @signature: (out caller-allocates): where to store the 64-byte signature
 *
 * Signs @data with the identity key (Ed25519, detached).
 */
void
natter_identity_sign (NatterIdentity *self,
                      const guint8   *data,
                      gsize           len,
                      guint8          signature[NATTER_SIGNATURE_LEN])
{
  g_return_if_fail (NATTER_IS_IDENTITY (self));
  g_return_if_fail (data != NULL || len == 0);
  g_return_if_fail (signature != NULL);

  crypto_sign_detached (signature, NULL, data, len, self->secret->ed25519);
}

/**
 * natter_verify_signature:
 * @public_key: the signer's 32-byte Ed25519 public key
 * @data: the signed bytes
 * @len: length of @data
 * @signature: the 64-byte signature
 * @error: return location for a #GError
 *
 * Returns: %TRUE when @signature is a valid signature of @data by
 *   @public_key, else %FALSE with %NATTER_IDENTITY_ERROR_BAD_SIGNATURE
 */
gboolean
natter_verify_signature (const guint8  *public_key,
                         const guint8  *data,
                         gsize          len,
                         const guint8  *signature,
                         GError       **error)
{
  g_return_val_if_fail (public_key != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (signature != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  ensure_sodium ();

  if (crypto_sign_verify_detached (signature, data, len, public_key) != 0)
    {
      g_set_error_literal (error, NATTER_IDENTITY_ERROR,
                           NATTER_IDENTITY_ERROR_BAD_SIGNATURE,
                           "The signature is not valid");
      return FALSE;
    }

  return TRUE;
}

/**
 * natter_public_key_to_x25519:
 * @public_key: a 32-byte Ed25519 public key
 * @x25519_public: (out caller-allocates): the matching X25519 public key
 * @error: return location for a #GError
 *
 * Returns: %TRUE on success, %FALSE with %NATTER_IDENTITY_ERROR_INVALID_KEY
 *   when @public_key is not a usable Ed25519 point
 */
gboolean
natter_public_key_to_x25519 (const guint8  *public_key,
                             guint8         x25519_public[NATTER_X25519_KEY_LEN],
                             GError       **error)
{
  g_return_val_if_fail (public_key != NULL, FALSE);
  g_return_val_if_fail (x25519_public != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  ensure_sodium ();

  if (!crypto_core_ed25519_is_valid_point (public_key) ||
      crypto_sign_ed25519_pk_to_curve25519 (x25519_public, public_key) != 0)
    {
      g_set_error_literal (error, NATTER_IDENTITY_ERROR,
                           NATTER_IDENTITY_ERROR_INVALID_KEY,
                           "The public key is not a valid Ed25519 key");
      return FALSE;
    }

  return TRUE;
}

/* Safety numbers */

static void
safety_digits (const guint8 *public_key,
               char          out[SAFETY_DIGITS + 1])
{
  guint8 hash[crypto_generichash_BYTES_MAX];
  crypto_generichash_state state;

  crypto_generichash (hash, sizeof hash, public_key, NATTER_PUBLIC_KEY_LEN,
                      (const guint8 *) SAFETY_KEY, strlen (SAFETY_KEY));
  for (guint i = 0; i < SAFETY_ITERATIONS; i++)
    {
      crypto_generichash_init (&state, (const guint8 *) SAFETY_KEY,
                               strlen (SAFETY_KEY), sizeof hash);
      crypto_generichash_update (&state, public_key, NATTER_PUBLIC_KEY_LEN);
      crypto_generichash_update (&state, hash, sizeof hash);
      crypto_generichash_final (&state, hash, sizeof hash);
    }

  for (guint chunk = 0; chunk < SAFETY_CHUNKS; chunk++)
    {
      const guint8 *b = hash + chunk * 5;
      guint64 value = ((guint64) b[0] << 32) | ((guint64) b[1] << 24) |
                      ((guint64) b[2] << 16) | ((guint64) b[3] << 8) |
                      (guint64) b[4];

      g_snprintf (out + chunk * 5, 6, "%05u", (guint) (value % 100000));
    }
}

/**
 * natter_safety_number:
 * @public_key_a: one 32-byte Ed25519 public key
 * @public_key_b: the other 32-byte Ed25519 public key
 *
 * Computes the number two people read to each other to make sure they see
 * each other's real keys.  The order of the keys does not matter.
 *
 * Returns: (transfer full): 60 digits in 12 groups of 5 separated by spaces
 */
char *
natter_safety_number (const guint8 *public_key_a,
                      const guint8 *public_key_b)
{
  char a[SAFETY_DIGITS + 1];
  char b[SAFETY_DIGITS + 1];
  char joined[2 * SAFETY_DIGITS + 1];
  GString *result;

  g_return_val_if_fail (public_key_a != NULL, NULL);
  g_return_val_if_fail (public_key_b != NULL, NULL);

  ensure_sodium ();

  safety_digits (public_key_a, a);
  safety_digits (public_key_b, b);

  /* Sorting makes both sides compute the same string. */
  if (strcmp (a, b) <= 0)
    g_snprintf (joined, sizeof joined, "%s%s", a, b);
  else
    g_snprintf (joined, sizeof joined, "%s%s", b, a);

  result = g_string_sized_new (2 * SAFETY_DIGITS + 2 * SAFETY_CHUNKS);
  for (guint i = 0; i < 2 * SAFETY_DIGITS; i += 5)
    {
      if (i > 0)
        g_string_append_c (result, ' ');
      g_string_append_len (result, joined + i, 5);
    }

  return g_string_free (result, FALSE);
}

/* Identity file */

static void
key_file_checksum (const guint8 *record,
                   guint8        checksum[4])
{
  guint8 hash[crypto_generichash_BYTES];

  crypto_generichash (hash, sizeof hash, record, KEY_FILE_SUM_OFFSET,
                      (const guint8 *) KEY_FILE_CHECKSUM_KEY,
                      strlen (KEY_FILE_CHECKSUM_KEY));
  memcpy (checksum, hash, 4);
}

static void
set_error_from_errno (GError     **error,
                      int          saved_errno,
                      const char  *what,
                      const char  *path)
{
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
               "Could not %s identity file “%s”: %s",
               what, path, g_strerror (saved_errno));
}

static gssize
read_all (int     fd,
          guint8 *buf,
          gsize   len)
{
  gsize done = 0;

  while (done < len)
    {
      gssize r = read (fd, buf + done, len - done);

      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return -1;
      if (r == 0)
        break;
      done += r;
    }

  return done;
}

static gboolean
write_all (int           fd,
           const guint8 *buf,
           gsize         len)
{
  gsize done = 0;

  while (done < len)
    {
      gssize w = write (fd, buf + done, len - done);

      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return FALSE;
      done += w;
    }

  return TRUE;
}

/* Returns NULL with errno set to ENOENT (and no @error) when @path does not
 * exist, so that the caller can create it. */
static NatterIdentity *
load_key_file (const char  *path,
               GError     **error)
{
  guint8 *record = NULL;
  guint8 checksum[4];
  struct stat st;
  gssize len;
  int fd;
  NatterIdentity *identity = NULL;

  /* O_NONBLOCK so that a FIFO planted at @path cannot hang us before
   * fstat() tells it is not a regular file. */
  fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);
  if (fd < 0)
    {
      int saved_errno = errno;

      if (saved_errno != ENOENT)
        set_error_from_errno (error, saved_errno, "open", path);
      errno = saved_errno;
      return NULL;
    }

  if (fstat (fd, &st) != 0)
    {
      set_error_from_errno (error, errno, "inspect", path);
      goto out;
    }

  if (!S_ISREG (st.st_mode))
    {
      g_set_error (error, NATTER_IDENTITY_ERROR,
                   NATTER_IDENTITY_ERROR_BAD_KEY_FILE,
                   "Identity file “%s” is not a regular file", path);
      goto out;
    }

  if (st.st_uid != geteuid ())
    {
      g_set_error (error, NATTER_IDENTITY_ERROR,
                   NATTER_IDENTITY_ERROR_BAD_KEY_FILE,
                   "Identity file “%s” belongs to another user (uid %u)",
                   path, (guint) st.st_uid);
      goto out;
    }

  /* A secret key that others could read is no longer secret, and one they
   * could write is no longer ours: refuse rather than silently fix. */
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    {
      g_set_error (error, NATTER_IDENTITY_ERROR,
                   NATTER_IDENTITY_ERROR_BAD_KEY_FILE,
                   "Identity file “%s” is accessible by other users "
                   "(mode %04o); make it private with “chmod 600 %s”",
                   path, (guint) (st.st_mode & 07777), path);
      goto out;
    }

  /* One byte more than expected, to notice a file that is too long. */
  record = sodium_malloc (KEY_FILE_SIZE + 1);
  if (record == NULL)
    g_error ("Could not allocate secure memory");

  len = read_all (fd, record, KEY_FILE_SIZE + 1);
  if (len < 0)
    {
      set_error_from_errno (error, errno, "read", path);
      goto out;
    }

  if (len != KEY_FILE_SIZE)
    {
      g_set_error (error, NATTER_IDENTITY_ERROR,
                   NATTER_IDENTITY_ERROR_BAD_KEY_FILE,
                   "Identity file “%s” has the wrong size (%s%" G_GSSIZE_FORMAT
                   " bytes, expected %d)",
                   path, len > KEY_FILE_SIZE ? "over " : "", len,
                   KEY_FILE_SIZE);
      goto out;
    }

  if (memcmp (record, KEY_FILE_MAGIC, KEY_FILE_MAGIC_LEN) != 0)
    {
      g_set_error (error, NATTER_IDENTITY_ERROR,
                   NATTER_IDENTITY_ERROR_BAD_KEY_FILE,
                   "“%s” is not a Natter identity file", path);
      goto out;
    }

  if (record[KEY_FILE_MAGIC_LEN] != KEY_FILE_VERSION)
    {
      g_set_error (error, NATTER_IDENTITY_ERROR,
                   NATTER_IDENTITY_ERROR_BAD_KEY_FILE,
                   "Identity file “%s” has format version %u, which this "
                   "version of Natter does not know",
                   path, record[KEY_FILE_MAGIC_LEN]);
      goto out;
    }

  key_file_checksum (record, checksum);
  if (record[9] != 0 || record[10] != 0 || record[11] != 0 ||
      sodium_memcmp (checksum, record + KEY_FILE_SUM_OFFSET, 4) != 0)
    {
      g_set_error (error, NATTER_IDENTITY_ERROR,
                   NATTER_IDENTITY_ERROR_BAD_KEY_FILE,
                   "Identity file “%s” is damaged (checksum mismatch)", path);
      goto out;
    }

  identity = identity_new_from_seed (record + KEY_FILE_SEED_OFFSET, error);

out:
  g_clear_pointer (&record, sodium_free);
  close (fd);
  return identity;
}

/**
 * natter_identity_save:
 * @self: a #NatterIdentity
 * @path: where to save the identity
 * @error: return location for a #GError
 *
 * Writes the identity's secret seed to @path with mode 0600.  The file is
 * written under a temporary name in the same folder, flushed to disk and
 * renamed, so @path holds either the old or the new identity, never a part.
 *
 * Returns: %TRUE on success
 */
gboolean
natter_identity_save (NatterIdentity  *self,
                      const char      *path,
                      GError         **error)
{
  g_autofree char *tmp_path = NULL;
  g_autofree char *dir = NULL;
  guint8 *record;
  gboolean ok = FALSE;
  int fd;
  int dir_fd;

  g_return_val_if_fail (NATTER_IS_IDENTITY (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  tmp_path = g_strdup_printf ("%s.XXXXXX", path);
  fd = g_mkstemp_full (tmp_path, O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      set_error_from_errno (error, errno, "create", tmp_path);
      return FALSE;
    }

  record = sodium_malloc (KEY_FILE_SIZE);
  if (record == NULL)
    g_error ("Could not allocate secure memory");
  memset (record, 0, KEY_FILE_SIZE);
  memcpy (record, KEY_FILE_MAGIC, KEY_FILE_MAGIC_LEN);
  record[KEY_FILE_MAGIC_LEN] = KEY_FILE_VERSION;
  crypto_sign_ed25519_sk_to_seed (record + KEY_FILE_SEED_OFFSET,
                                  self->secret->ed25519);
  key_file_checksum (record, record + KEY_FILE_SUM_OFFSET);

  /* The umask can only narrow the mode, but make sure of 0600 anyway. */
  if (fchmod (fd, 0600) != 0)
    set_error_from_errno (error, errno, "protect", tmp_path);
  else if (!write_all (fd, record, KEY_FILE_SIZE))
    set_error_from_errno (error, errno, "write", tmp_path);
  else if (fsync (fd) != 0)
    set_error_from_errno (error, errno, "flush", tmp_path);
  else
    ok = TRUE;

  sodium_free (record);

  if (close (fd) != 0 && ok)
    {
      set_error_from_errno (error, errno, "write", tmp_path);
      ok = FALSE;
    }

  if (ok && g_rename (tmp_path, path) != 0)
    {
      set_error_from_errno (error, errno, "save", path);
      ok = FALSE;
    }

  if (!ok)
    {
      g_unlink (tmp_path);
      return FALSE;
    }

  /* Make the rename itself survive a crash; failing here loses nothing
   * that was not already at risk, so it is not an error. */
  dir = g_path_get_dirname (path);
  dir_fd = g_open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (dir_fd >= 0)
    {
      fsync (dir_fd);
      close (dir_fd);
    }

  return TRUE;
}

/**
 * natter_identity_load_or_create:
 * @path: the identity file
 * @out_created: (out) (optional): set to %TRUE when a new identity was made
 * @error: return location for a #GError
 *
 * Loads the identity in @path, or creates and saves a new one when @path
 * does not exist.  A file that is accessible by other users, not a regular
 * file, of the wrong size, or with a bad header or checksum is refused with
 * %NATTER_IDENTITY_ERROR_BAD_KEY_FILE; system errors are in %G_IO_ERROR.
 * Callers serialize access to @path (the profile lock does).
 *
 * Returns: (transfer full) (nullable): the identity, or %NULL with @error set
 */
NatterIdentity *
natter_identity_load_or_create (const char  *path,
                                gboolean    *out_created,
                                GError     **error)
{
  g_autoptr(NatterIdentity) identity = NULL;
  GError *local_error = NULL;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  ensure_sodium ();

  if (out_created != NULL)
    *out_created = FALSE;

  identity = load_key_file (path, &local_error);
  if (identity != NULL)
    return g_steal_pointer (&identity);
  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return NULL;
    }

  identity = natter_identity_new_random ();
  if (!natter_identity_save (identity, path, error))
    return NULL;

  if (out_created != NULL)
    *out_created = TRUE;

  return g_steal_pointer (&identity);
}
