/* natter-noise.c: the Noise Protocol Framework (25519, ChaChaPoly, BLAKE2b)
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include <sodium.h>

#include "natter-noise.h"

/* Written from the Noise Protocol Framework, revision 34: section 5 gives
 * CipherState, SymmetricState and HandshakeState, section 4 the HMAC/HKDF
 * and the ChaChaPoly nonce encoding.  libsodium supplies the primitives;
 * it has no HMAC-BLAKE2b, so that is built here from plain BLAKE2b-512. */

#define BLOCK_LEN     128   /* BLAKE2b block, the HMAC block size */
#define MAX_TOKENS    5     /* longest message in our table: IK's first */
#define MAX_MESSAGES  3

G_STATIC_ASSERT (NATTER_NOISE_DH_LEN == crypto_scalarmult_curve25519_BYTES);
G_STATIC_ASSERT (NATTER_NOISE_DH_LEN == crypto_scalarmult_curve25519_SCALARBYTES);
G_STATIC_ASSERT (NATTER_NOISE_KEY_LEN == crypto_aead_chacha20poly1305_ietf_KEYBYTES);
G_STATIC_ASSERT (NATTER_NOISE_TAG_LEN == crypto_aead_chacha20poly1305_ietf_ABYTES);
G_STATIC_ASSERT (crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12);
G_STATIC_ASSERT (NATTER_NOISE_HASH_LEN == crypto_generichash_blake2b_BYTES_MAX);

G_DEFINE_QUARK (natter-noise-error-quark, natter_noise_error)

typedef enum
{
  TOKEN_END = 0,
  TOKEN_E,
  TOKEN_S,
  TOKEN_EE,
  TOKEN_ES,
  TOKEN_SE,
  TOKEN_SS,
} Token;

typedef struct
{
  const char *name;
  /* Pre-messages: "-> s" (the responder knows the initiator's static key
   * beforehand) and "<- s" (the initiator knows the responder's). */
  gboolean    initiator_static_known;
  gboolean    responder_static_known;
  guint       n_messages;
  Token       messages[MAX_MESSAGES][MAX_TOKENS + 1];
} Pattern;

/* Section 7.4 and 7.5.  Message i is written by the initiator when i is even. */
static const Pattern patterns[] = {
  { "NN", FALSE, FALSE, 2, {
      { TOKEN_E },
      { TOKEN_E, TOKEN_EE } } },
  { "NK", FALSE, TRUE, 2, {
      { TOKEN_E, TOKEN_ES },
      { TOKEN_E, TOKEN_EE } } },
  { "KK", TRUE, TRUE, 2, {
      { TOKEN_E, TOKEN_ES, TOKEN_SS },
      { TOKEN_E, TOKEN_EE, TOKEN_SE } } },
  { "XK", FALSE, TRUE, 3, {
      { TOKEN_E, TOKEN_ES },
      { TOKEN_E, TOKEN_EE },
      { TOKEN_S, TOKEN_SE } } },
  { "IK", FALSE, TRUE, 2, {
      { TOKEN_E, TOKEN_ES, TOKEN_S, TOKEN_SS },
      { TOKEN_E, TOKEN_EE, TOKEN_SE } } },
  { "XX", FALSE, FALSE, 3, {
      { TOKEN_E },
      { TOKEN_E, TOKEN_EE, TOKEN_S, TOKEN_ES },
      { TOKEN_S, TOKEN_SE } } },
};

#define PROTOCOL_PREFIX  "Noise_"
#define PROTOCOL_SUFFIX  "_25519_ChaChaPoly_BLAKE2b"

/* A flat struct with no owned pointers: read/write work on a copy and
 * commit it only on success, which makes them all-or-nothing. */
struct _NatterNoiseHandshake
{
  const Pattern          *pattern;
  NatterNoiseRole         role;
  guint                   message_index;
  gboolean                split_done;

  /* SymmetricState */
  guint8                  ck[NATTER_NOISE_HASH_LEN];
  guint8                  h[NATTER_NOISE_HASH_LEN];
  NatterNoiseCipherState  cs;

  guint8                  s_secret[NATTER_NOISE_DH_LEN];
  guint8                  s_public[NATTER_NOISE_DH_LEN];
  guint8                  e_secret[NATTER_NOISE_DH_LEN];
  guint8                  e_public[NATTER_NOISE_DH_LEN];
  guint8                  rs[NATTER_NOISE_DH_LEN];
  guint8                  re[NATTER_NOISE_DH_LEN];
  gboolean                has_s;
  gboolean                has_e;
  gboolean                e_preset;   /* set_ephemeral() was called */
  gboolean                has_rs;
  gboolean                has_re;
};

/* ---- Primitives -------------------------------------------------------- */

void
natter_noise_generate_keypair (guint8 *secret_out,
                               guint8 *public_out)
{
  /* crypto_scalarmult_base clamps the scalar itself, as X25519 says; a
   * random secret can therefore be used as drawn. */
  randombytes_buf (secret_out, NATTER_NOISE_DH_LEN);
  crypto_scalarmult_base (public_out, secret_out);
}

gboolean
natter_noise_public_from_secret (const guint8  *secret,
                                 guint8        *public_out,
                                 GError       **error)
{
  if (crypto_scalarmult_base (public_out, secret) != 0)
    {
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_BAD_KEY,
                           "Static secret gives the identity point");
      return FALSE;
    }
  return TRUE;
}

static void
encode_nonce (guint64 n,
              guint8  nonce[12])
{
  memset (nonce, 0, 4);
  for (guint i = 0; i < 8; i++)
    nonce[4 + i] = (guint8) (n >> (8 * i));
}

void
natter_noise_aead_encrypt (const guint8 *key,
                           guint64       nonce,
                           const guint8 *ad,
                           gsize         ad_len,
                           const guint8 *in,
                           gsize         in_len,
                           guint8       *out)
{
  guint8 npub[12];

  encode_nonce (nonce, npub);
  crypto_aead_chacha20poly1305_ietf_encrypt (out, NULL, in, in_len, ad, ad_len,
                                             NULL, npub, key);
}

gboolean
natter_noise_aead_decrypt (const guint8 *key,
                           guint64       nonce,
                           const guint8 *ad,
                           gsize         ad_len,
                           const guint8 *in,
                           gsize         in_len,
                           guint8       *out)
{
  guint8 npub[12];

  if (in_len < NATTER_NOISE_TAG_LEN)
    return FALSE;
  encode_nonce (nonce, npub);
  return crypto_aead_chacha20poly1305_ietf_decrypt (out, NULL, NULL, in, in_len,
                                                    ad, ad_len, npub, key) == 0;
}

void
natter_noise_rekey_key (guint8 *key)
{
  guint8 zeros[NATTER_NOISE_KEY_LEN] = { 0 };
  guint8 out[NATTER_NOISE_KEY_LEN + NATTER_NOISE_TAG_LEN];

  natter_noise_aead_encrypt (key, G_MAXUINT64, NULL, 0, zeros, sizeof zeros, out);
  memcpy (key, out, NATTER_NOISE_KEY_LEN);
  sodium_memzero (out, sizeof out);
}

static void
hash_two (const guint8 *a,
          gsize         a_len,
          const guint8 *b,
          gsize         b_len,
          guint8        out[NATTER_NOISE_HASH_LEN])
{
  crypto_generichash_blake2b_state st;

  crypto_generichash_blake2b_init (&st, NULL, 0, NATTER_NOISE_HASH_LEN);
  crypto_generichash_blake2b_update (&st, a, a_len);
  if (b_len > 0)
    crypto_generichash_blake2b_update (&st, b, b_len);
  crypto_generichash_blake2b_final (&st, out, NATTER_NOISE_HASH_LEN);
  sodium_memzero (&st, sizeof st);
}

/* HMAC (RFC 2104) over BLAKE2b-512 with its 128-byte block, the message
 * being @a || @b.  Keys here are always chaining keys or HKDF temporary
 * keys, both HASH_LEN long, so they never need hashing down first. */
static void
hmac_blake2b (const guint8 *key,
              const guint8 *a,
              gsize         a_len,
              const guint8 *b,
              gsize         b_len,
              guint8        out[NATTER_NOISE_HASH_LEN])
{
  guint8 block[BLOCK_LEN] = { 0 };
  guint8 inner[NATTER_NOISE_HASH_LEN];
  crypto_generichash_blake2b_state st;

  memcpy (block, key, NATTER_NOISE_HASH_LEN);
  for (guint i = 0; i < BLOCK_LEN; i++)
    block[i] ^= 0x36;
  crypto_generichash_blake2b_init (&st, NULL, 0, NATTER_NOISE_HASH_LEN);
  crypto_generichash_blake2b_update (&st, block, BLOCK_LEN);
  if (a_len > 0)
    crypto_generichash_blake2b_update (&st, a, a_len);
  if (b_len > 0)
    crypto_generichash_blake2b_update (&st, b, b_len);
  crypto_generichash_blake2b_final (&st, inner, sizeof inner);

  for (guint i = 0; i < BLOCK_LEN; i++)
    block[i] ^= 0x36 ^ 0x5c;
  crypto_generichash_blake2b_init (&st, NULL, 0, NATTER_NOISE_HASH_LEN);
  crypto_generichash_blake2b_update (&st, block, BLOCK_LEN);
  crypto_generichash_blake2b_update (&st, inner, sizeof inner);
  crypto_generichash_blake2b_final (&st, out, NATTER_NOISE_HASH_LEN);

  sodium_memzero (block, sizeof block);
  sodium_memzero (inner, sizeof inner);
  sodium_memzero (&st, sizeof st);
}

/* HKDF as section 4.3 defines it, two outputs (all we need without PSKs). */
static void
hkdf2 (const guint8 *chaining_key,
       const guint8 *ikm,
       gsize         ikm_len,
       guint8        out1[NATTER_NOISE_HASH_LEN],
       guint8        out2[NATTER_NOISE_HASH_LEN])
{
  guint8 temp_key[NATTER_NOISE_HASH_LEN];
  const guint8 one = 0x01, two = 0x02;

  hmac_blake2b (chaining_key, ikm, ikm_len, NULL, 0, temp_key);
  hmac_blake2b (temp_key, &one, 1, NULL, 0, out1);
  hmac_blake2b (temp_key, out1, NATTER_NOISE_HASH_LEN, &two, 1, out2);
  sodium_memzero (temp_key, sizeof temp_key);
}

/* ---- CipherState ------------------------------------------------------- */

void
natter_noise_cipher_state_init_key (NatterNoiseCipherState *cs,
                                    const guint8           *key)
{
  memcpy (cs->k, key, NATTER_NOISE_KEY_LEN);
  cs->n = 0;
  cs->has_key = TRUE;
}

void
natter_noise_cipher_state_clear (NatterNoiseCipherState *cs)
{
  sodium_memzero (cs, sizeof *cs);
}

/* 2^64 - 1 is reserved for REKEY, so it is never a message nonce. */
static gboolean
check_nonce (NatterNoiseCipherState  *cs,
             GError                 **error)
{
  if (cs->n == G_MAXUINT64)
    {
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE,
                           "Nonces exhausted");
      return FALSE;
    }
  return TRUE;
}

gboolean
natter_noise_cipher_state_encrypt_with_ad (NatterNoiseCipherState  *cs,
                                           const guint8            *ad,
                                           gsize                    ad_len,
                                           const guint8            *plaintext,
                                           gsize                    plaintext_len,
                                           GByteArray              *out,
                                           GError                 **error)
{
  gsize overhead = cs->has_key ? NATTER_NOISE_TAG_LEN : 0;
  guint offset;

  if (plaintext_len > NATTER_NOISE_MAX_MESSAGE_LEN - overhead
      || out->len > NATTER_NOISE_MAX_MESSAGE_LEN)
    {
      g_set_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TOO_LARGE,
                   "Plaintext of %" G_GSIZE_FORMAT " bytes is too large", plaintext_len);
      return FALSE;
    }
  if (cs->has_key && !check_nonce (cs, error))
    return FALSE;

  offset = out->len;
  g_byte_array_set_size (out, offset + plaintext_len + overhead);
  if (!cs->has_key)
    {
      if (plaintext_len > 0)
        memcpy (out->data + offset, plaintext, plaintext_len);
      return TRUE;
    }
  natter_noise_aead_encrypt (cs->k, cs->n, ad, ad_len, plaintext, plaintext_len,
                             out->data + offset);
  cs->n++;
  return TRUE;
}

gboolean
natter_noise_cipher_state_decrypt_with_ad (NatterNoiseCipherState  *cs,
                                           const guint8            *ad,
                                           gsize                    ad_len,
                                           const guint8            *ciphertext,
                                           gsize                    ciphertext_len,
                                           GByteArray              *out,
                                           GError                 **error)
{
  guint offset;

  if (ciphertext_len > NATTER_NOISE_MAX_MESSAGE_LEN)
    {
      g_set_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TOO_LARGE,
                   "Message of %" G_GSIZE_FORMAT " bytes is too large", ciphertext_len);
      return FALSE;
    }

  offset = out->len;
  if (!cs->has_key)
    {
      if (ciphertext_len > 0)
        g_byte_array_append (out, ciphertext, ciphertext_len);
      return TRUE;
    }

  if (ciphertext_len < NATTER_NOISE_TAG_LEN)
    {
      g_set_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TRUNCATED,
                   "Ciphertext of %" G_GSIZE_FORMAT " bytes is shorter than its tag",
                   ciphertext_len);
      return FALSE;
    }
  if (!check_nonce (cs, error))
    return FALSE;

  g_byte_array_set_size (out, offset + ciphertext_len - NATTER_NOISE_TAG_LEN);
  if (!natter_noise_aead_decrypt (cs->k, cs->n, ad, ad_len, ciphertext, ciphertext_len,
                                  out->data + offset))
    {
      sodium_memzero (out->data + offset, out->len - offset);
      g_byte_array_set_size (out, offset);
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_DECRYPT,
                           "Message failed authentication");
      return FALSE;
    }
  cs->n++;
  return TRUE;
}

void
natter_noise_cipher_state_rekey (NatterNoiseCipherState *cs)
{
  if (cs->has_key)
    natter_noise_rekey_key (cs->k);
}

/* ---- SymmetricState ---------------------------------------------------- */

static void
mix_hash (NatterNoiseHandshake *hs,
          const guint8         *data,
          gsize                 len)
{
  hash_two (hs->h, sizeof hs->h, data, len, hs->h);
}

static void
mix_key (NatterNoiseHandshake *hs,
         const guint8         *ikm,
         gsize                 ikm_len)
{
  guint8 temp_k[NATTER_NOISE_HASH_LEN];

  hkdf2 (hs->ck, ikm, ikm_len, hs->ck, temp_k);
  /* HASHLEN is 64: the cipher key is the first 32 bytes. */
  natter_noise_cipher_state_init_key (&hs->cs, temp_k);
  sodium_memzero (temp_k, sizeof temp_k);
}

static gboolean
encrypt_and_hash (NatterNoiseHandshake  *hs,
                  const guint8          *plaintext,
                  gsize                  len,
                  GByteArray            *out,
                  GError               **error)
{
  guint offset = out->len;

  if (!natter_noise_cipher_state_encrypt_with_ad (&hs->cs, hs->h, sizeof hs->h,
                                                  plaintext, len, out, error))
    return FALSE;
  mix_hash (hs, out->data + offset, out->len - offset);
  return TRUE;
}

static gboolean
decrypt_and_hash (NatterNoiseHandshake  *hs,
                  const guint8          *ciphertext,
                  gsize                  len,
                  GByteArray            *out,
                  GError               **error)
{
  if (!natter_noise_cipher_state_decrypt_with_ad (&hs->cs, hs->h, sizeof hs->h,
                                                  ciphertext, len, out, error))
    return FALSE;
  mix_hash (hs, ciphertext, len);
  return TRUE;
}

/* ---- HandshakeState ---------------------------------------------------- */

static const Pattern *
find_pattern (const char *protocol_name)
{
  gsize prefix_len = strlen (PROTOCOL_PREFIX);
  const char *rest;

  if (!g_str_has_prefix (protocol_name, PROTOCOL_PREFIX)
      || !g_str_has_suffix (protocol_name, PROTOCOL_SUFFIX))
    return NULL;
  rest = protocol_name + prefix_len;

  for (guint i = 0; i < G_N_ELEMENTS (patterns); i++)
    {
      gsize name_len = strlen (patterns[i].name);

      if (strncmp (rest, patterns[i].name, name_len) == 0
          && strcmp (rest + name_len, PROTOCOL_SUFFIX) == 0)
        return &patterns[i];
    }
  return NULL;
}

static gboolean
is_initiator_message (guint index)
{
  return index % 2 == 0;
}

/* Whether the pattern ever needs a static key for @role: as a pre-message,
 * sent as "s", or in a DH that uses that side's static key. */
static gboolean
pattern_uses_static (const Pattern   *p,
                     NatterNoiseRole  role)
{
  gboolean initiator = role == NATTER_NOISE_ROLE_INITIATOR;

  if (initiator ? p->initiator_static_known : p->responder_static_known)
    return TRUE;
  for (guint m = 0; m < p->n_messages; m++)
    for (const Token *t = p->messages[m]; *t != TOKEN_END; t++)
      {
        if (*t == TOKEN_SS)
          return TRUE;
        if (*t == TOKEN_S && is_initiator_message (m) == initiator)
          return TRUE;
        /* es: initiator's e with responder's s; se: the other way round. */
        if (*t == TOKEN_ES && !initiator)
          return TRUE;
        if (*t == TOKEN_SE && initiator)
          return TRUE;
      }
  return FALSE;
}

NatterNoiseHandshake *
natter_noise_handshake_new (const char       *protocol_name,
                            NatterNoiseRole   role,
                            const guint8     *prologue,
                            gsize             prologue_len,
                            const guint8     *local_static_secret,
                            const guint8     *remote_static_public,
                            GError          **error)
{
  const Pattern *pattern;
  NatterNoiseHandshake *hs;
  gboolean initiator = role == NATTER_NOISE_ROLE_INITIATOR;
  gboolean remote_known;
  gsize name_len;

  g_return_val_if_fail (protocol_name != NULL, NULL);
  g_return_val_if_fail (prologue != NULL || prologue_len == 0, NULL);

  if (sodium_init () < 0)
    {
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE,
                           "libsodium failed to initialise");
      return NULL;
    }

  pattern = find_pattern (protocol_name);
  if (pattern == NULL)
    {
      g_set_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_UNSUPPORTED,
                   "Unsupported Noise protocol “%s”", protocol_name);
      return NULL;
    }

  if (pattern_uses_static (pattern, role) != (local_static_secret != NULL))
    {
      g_set_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_BAD_KEY,
                   local_static_secret ? "Pattern %s gives this side no static key"
                                       : "Pattern %s needs a local static key",
                   pattern->name);
      return NULL;
    }
  remote_known = initiator ? pattern->responder_static_known : pattern->initiator_static_known;
  if (remote_known != (remote_static_public != NULL))
    {
      g_set_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_BAD_KEY,
                   remote_static_public ? "Pattern %s does not pre-share the remote static key"
                                        : "Pattern %s needs the remote static key",
                   pattern->name);
      return NULL;
    }

  /* sodium_malloc: guard pages and no swapping for the secrets it holds. */
  hs = sodium_malloc (sizeof *hs);
  if (hs == NULL)
    g_error ("%s: out of memory", G_STRFUNC);
  memset (hs, 0, sizeof *hs);
  hs->pattern = pattern;
  hs->role = role;

  if (local_static_secret != NULL)
    {
      memcpy (hs->s_secret, local_static_secret, NATTER_NOISE_DH_LEN);
      if (!natter_noise_public_from_secret (hs->s_secret, hs->s_public, error))
        {
          natter_noise_handshake_free (hs);
          return NULL;
        }
      hs->has_s = TRUE;
    }
  if (remote_static_public != NULL)
    {
      memcpy (hs->rs, remote_static_public, NATTER_NOISE_DH_LEN);
      hs->has_rs = TRUE;
    }

  /* InitializeSymmetric */
  name_len = strlen (protocol_name);
  if (name_len <= NATTER_NOISE_HASH_LEN)
    memcpy (hs->h, protocol_name, name_len);
  else
    hash_two ((const guint8 *) protocol_name, name_len, NULL, 0, hs->h);
  memcpy (hs->ck, hs->h, sizeof hs->ck);

  mix_hash (hs, prologue, prologue_len);

  /* Pre-messages, the initiator's first. */
  if (pattern->initiator_static_known)
    mix_hash (hs, initiator ? hs->s_public : hs->rs, NATTER_NOISE_DH_LEN);
  if (pattern->responder_static_known)
    mix_hash (hs, initiator ? hs->rs : hs->s_public, NATTER_NOISE_DH_LEN);

  return hs;
}

void
natter_noise_handshake_free (NatterNoiseHandshake *hs)
{
  /* sodium_free() wipes the whole allocation before releasing it. */
  if (hs != NULL)
    sodium_free (hs);
}

gboolean
natter_noise_handshake_set_ephemeral (NatterNoiseHandshake  *hs,
                                      const guint8          *secret,
                                      GError               **error)
{
  g_return_val_if_fail (hs != NULL, FALSE);
  g_return_val_if_fail (secret != NULL, FALSE);

  if (hs->has_e)
    {
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE,
                           "Ephemeral key already in use");
      return FALSE;
    }
  memcpy (hs->e_secret, secret, NATTER_NOISE_DH_LEN);
  if (!natter_noise_public_from_secret (hs->e_secret, hs->e_public, error))
    {
      sodium_memzero (hs->e_secret, sizeof hs->e_secret);
      return FALSE;
    }
  hs->e_preset = TRUE;
  return TRUE;
}

gboolean
natter_noise_handshake_is_finished (NatterNoiseHandshake *hs)
{
  g_return_val_if_fail (hs != NULL, FALSE);
  return hs->message_index >= hs->pattern->n_messages;
}

gboolean
natter_noise_handshake_is_my_turn (NatterNoiseHandshake *hs)
{
  g_return_val_if_fail (hs != NULL, FALSE);
  return !natter_noise_handshake_is_finished (hs)
         && is_initiator_message (hs->message_index) == (hs->role == NATTER_NOISE_ROLE_INITIATOR);
}

const guint8 *
natter_noise_handshake_get_remote_static (NatterNoiseHandshake *hs)
{
  g_return_val_if_fail (hs != NULL, NULL);
  return hs->has_rs ? hs->rs : NULL;
}

const guint8 *
natter_noise_handshake_get_handshake_hash (NatterNoiseHandshake *hs)
{
  g_return_val_if_fail (hs != NULL, NULL);
  return natter_noise_handshake_is_finished (hs) ? hs->h : NULL;
}

/* DH and MixKey for one of ee, es, se, ss. */
static gboolean
mix_dh (NatterNoiseHandshake  *hs,
        Token                  token,
        GError               **error)
{
  gboolean initiator = hs->role == NATTER_NOISE_ROLE_INITIATOR;
  const guint8 *local_secret;
  const guint8 *remote_public;
  gboolean have_local, have_remote;
  guint8 shared[NATTER_NOISE_DH_LEN];
  gboolean local_is_e, remote_is_e;

  switch (token)
    {
    case TOKEN_EE:
      local_is_e = TRUE;
      remote_is_e = TRUE;
      break;
    case TOKEN_SS:
      local_is_e = FALSE;
      remote_is_e = FALSE;
      break;
    case TOKEN_ES:   /* initiator's e, responder's s */
      local_is_e = initiator;
      remote_is_e = !initiator;
      break;
    case TOKEN_SE:   /* initiator's s, responder's e */
      local_is_e = !initiator;
      remote_is_e = initiator;
      break;
    case TOKEN_END:
    case TOKEN_E:
    case TOKEN_S:
    default:
      g_assert_not_reached ();
    }

  local_secret = local_is_e ? hs->e_secret : hs->s_secret;
  have_local = local_is_e ? hs->has_e : hs->has_s;
  remote_public = remote_is_e ? hs->re : hs->rs;
  have_remote = remote_is_e ? hs->has_re : hs->has_rs;
  if (!have_local || !have_remote)
    {
      /* The constructor's checks make this unreachable for the table's
       * patterns; kept as an error rather than an assertion all the same. */
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE,
                           "DH with a key the handshake does not have");
      return FALSE;
    }

  /* libsodium returns -1 for an all-zero result, i.e. a low-order point,
   * which would let the peer force a known shared secret. */
  if (crypto_scalarmult (shared, local_secret, remote_public) != 0)
    {
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_BAD_KEY,
                           "Peer sent a low-order public key");
      return FALSE;
    }
  mix_key (hs, shared, sizeof shared);
  sodium_memzero (shared, sizeof shared);
  return TRUE;
}

static gboolean
write_message_tokens (NatterNoiseHandshake  *hs,
                      const guint8          *payload,
                      gsize                  payload_len,
                      GByteArray            *out,
                      GError               **error)
{
  for (const Token *t = hs->pattern->messages[hs->message_index]; *t != TOKEN_END; t++)
    {
      switch (*t)
        {
        case TOKEN_E:
          if (!hs->e_preset)
            natter_noise_generate_keypair (hs->e_secret, hs->e_public);
          hs->has_e = TRUE;
          g_byte_array_append (out, hs->e_public, sizeof hs->e_public);
          mix_hash (hs, hs->e_public, sizeof hs->e_public);
          break;

        case TOKEN_S:
          if (!encrypt_and_hash (hs, hs->s_public, sizeof hs->s_public, out, error))
            return FALSE;
          break;

        case TOKEN_EE:
        case TOKEN_ES:
        case TOKEN_SE:
        case TOKEN_SS:
          if (!mix_dh (hs, *t, error))
            return FALSE;
          break;

        case TOKEN_END:
        default:
          g_assert_not_reached ();
        }
    }

  if (!encrypt_and_hash (hs, payload, payload_len, out, error))
    return FALSE;
  if (out->len > NATTER_NOISE_MAX_MESSAGE_LEN)
    {
      g_set_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TOO_LARGE,
                   "Handshake message of %u bytes is too large", out->len);
      return FALSE;
    }
  hs->message_index++;
  return TRUE;
}

gboolean
natter_noise_handshake_write_message (NatterNoiseHandshake  *hs,
                                      const guint8          *payload,
                                      gsize                  payload_len,
                                      GByteArray            *out,
                                      GError               **error)
{
  NatterNoiseHandshake scratch;
  g_autoptr(GByteArray) buf = NULL;
  gboolean ok;

  g_return_val_if_fail (hs != NULL, FALSE);
  g_return_val_if_fail (payload != NULL || payload_len == 0, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);

  if (!natter_noise_handshake_is_my_turn (hs))
    {
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE,
                           natter_noise_handshake_is_finished (hs)
                             ? "Handshake already finished"
                             : "Not this side's turn to write");
      return FALSE;
    }
  if (payload_len > NATTER_NOISE_MAX_MESSAGE_LEN)
    {
      g_set_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TOO_LARGE,
                   "Payload of %" G_GSIZE_FORMAT " bytes is too large", payload_len);
      return FALSE;
    }

  buf = g_byte_array_sized_new (payload_len + 3 * NATTER_NOISE_DH_LEN);
  scratch = *hs;
  ok = write_message_tokens (&scratch, payload, payload_len, buf, error);
  if (ok)
    {
      *hs = scratch;
      g_byte_array_append (out, buf->data, buf->len);
    }
  sodium_memzero (&scratch, sizeof scratch);
  return ok;
}

static gboolean
take_bytes (const guint8  **cursor,
            gsize          *remaining,
            gsize           n,
            const guint8  **out,
            GError        **error)
{
  if (*remaining < n)
    {
      g_set_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TRUNCATED,
                   "Handshake message truncated: %" G_GSIZE_FORMAT " bytes left, "
                   "%" G_GSIZE_FORMAT " needed", *remaining, n);
      return FALSE;
    }
  *out = *cursor;
  *cursor += n;
  *remaining -= n;
  return TRUE;
}

static gboolean
read_message_tokens (NatterNoiseHandshake  *hs,
                     const guint8          *message,
                     gsize                  message_len,
                     GByteArray            *payload_out,
                     GError               **error)
{
  const guint8 *cursor = message;
  gsize remaining = message_len;

  for (const Token *t = hs->pattern->messages[hs->message_index]; *t != TOKEN_END; t++)
    {
      const guint8 *field;

      switch (*t)
        {
        case TOKEN_E:
          if (!take_bytes (&cursor, &remaining, NATTER_NOISE_DH_LEN, &field, error))
            return FALSE;
          memcpy (hs->re, field, NATTER_NOISE_DH_LEN);
          hs->has_re = TRUE;
          mix_hash (hs, hs->re, sizeof hs->re);
          break;

        case TOKEN_S:
          {
            gsize len = NATTER_NOISE_DH_LEN + (hs->cs.has_key ? NATTER_NOISE_TAG_LEN : 0);
            g_autoptr(GByteArray) rs = g_byte_array_sized_new (NATTER_NOISE_DH_LEN);

            if (!take_bytes (&cursor, &remaining, len, &field, error))
              return FALSE;
            if (!decrypt_and_hash (hs, field, len, rs, error))
              return FALSE;
            g_assert (rs->len == NATTER_NOISE_DH_LEN);
            memcpy (hs->rs, rs->data, NATTER_NOISE_DH_LEN);
            hs->has_rs = TRUE;
          }
          break;

        case TOKEN_EE:
        case TOKEN_ES:
        case TOKEN_SE:
        case TOKEN_SS:
          if (!mix_dh (hs, *t, error))
            return FALSE;
          break;

        case TOKEN_END:
        default:
          g_assert_not_reached ();
        }
    }

  /* What is left is the payload, authenticated once a key exists. */
  if (!decrypt_and_hash (hs, cursor, remaining, payload_out, error))
    return FALSE;
  hs->message_index++;
  return TRUE;
}

gboolean
natter_noise_handshake_read_message (NatterNoiseHandshake  *hs,
                                     const guint8          *message,
                                     gsize                  message_len,
                                     GByteArray            *payload_out,
                                     GError               **error)
{
  NatterNoiseHandshake scratch;
  g_autoptr(GByteArray) payload = NULL;
  gboolean ok;

  g_return_val_if_fail (hs != NULL, FALSE);
  g_return_val_if_fail (message != NULL || message_len == 0, FALSE);
  g_return_val_if_fail (payload_out != NULL, FALSE);

  if (natter_noise_handshake_is_finished (hs) || natter_noise_handshake_is_my_turn (hs))
    {
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE,
                           natter_noise_handshake_is_finished (hs)
                             ? "Handshake already finished"
                             : "Not this side's turn to read");
      return FALSE;
    }
  if (message_len > NATTER_NOISE_MAX_MESSAGE_LEN)
    {
      g_set_error (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_TOO_LARGE,
                   "Handshake message of %" G_GSIZE_FORMAT " bytes is too large",
                   message_len);
      return FALSE;
    }

  payload = g_byte_array_sized_new (message_len);
  scratch = *hs;
  ok = read_message_tokens (&scratch, message, message_len, payload, error);
  if (ok)
    {
      *hs = scratch;
      g_byte_array_append (payload_out, payload->data, payload->len);
    }
  sodium_memzero (&scratch, sizeof scratch);
  return ok;
}

gboolean
natter_noise_handshake_split (NatterNoiseHandshake    *hs,
                              NatterNoiseCipherState  *send_out,
                              NatterNoiseCipherState  *recv_out,
                              GError                 **error)
{
  guint8 k1[NATTER_NOISE_HASH_LEN], k2[NATTER_NOISE_HASH_LEN];
  gboolean initiator;

  g_return_val_if_fail (hs != NULL, FALSE);
  g_return_val_if_fail (send_out != NULL && recv_out != NULL, FALSE);

  if (!natter_noise_handshake_is_finished (hs) || hs->split_done)
    {
      g_set_error_literal (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_STATE,
                           hs->split_done ? "Handshake already split"
                                          : "Handshake not finished");
      return FALSE;
    }

  hkdf2 (hs->ck, NULL, 0, k1, k2);
  initiator = hs->role == NATTER_NOISE_ROLE_INITIATOR;
  natter_noise_cipher_state_init_key (send_out, initiator ? k1 : k2);
  natter_noise_cipher_state_init_key (recv_out, initiator ? k2 : k1);
  sodium_memzero (k1, sizeof k1);
  sodium_memzero (k2, sizeof k2);

  /* Nothing after Split() needs these; h stays for channel binding. */
  sodium_memzero (hs->ck, sizeof hs->ck);
  natter_noise_cipher_state_clear (&hs->cs);
  sodium_memzero (hs->e_secret, sizeof hs->e_secret);
  sodium_memzero (hs->s_secret, sizeof hs->s_secret);
  hs->split_done = TRUE;
  return TRUE;
}
