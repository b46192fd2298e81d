/* natter-noise.h: the Noise Protocol Framework (25519, ChaChaPoly, BLAKE2b)
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Sizes fixed by the one cipher suite we speak:
 * Noise_*_25519_ChaChaPoly_BLAKE2b (Noise revision 34). */
#define NATTER_NOISE_DH_LEN           32      /* X25519 key or shared secret */
#define NATTER_NOISE_KEY_LEN          32      /* ChaChaPoly key */
#define NATTER_NOISE_TAG_LEN          16      /* Poly1305 tag */
#define NATTER_NOISE_HASH_LEN         64      /* BLAKE2b-512 */
#define NATTER_NOISE_MAX_MESSAGE_LEN  65535   /* spec section 3 */

#define NATTER_NOISE_ERROR (natter_noise_error_quark ())

typedef enum
{
  NATTER_NOISE_ERROR_DECRYPT,       /* authentication failed: tampered or wrong key */
  NATTER_NOISE_ERROR_TRUNCATED,     /* shorter than its fields need */
  NATTER_NOISE_ERROR_TOO_LARGE,     /* over NATTER_NOISE_MAX_MESSAGE_LEN */
  NATTER_NOISE_ERROR_STATE,         /* call not valid now (not our turn, not finished...) */
  NATTER_NOISE_ERROR_BAD_KEY,       /* missing/unused key, or a low-order point */
  NATTER_NOISE_ERROR_WRONG_PEER,    /* authenticated, but not the peer that was meant */
  NATTER_NOISE_ERROR_UNSUPPORTED,   /* unknown protocol name */
  NATTER_NOISE_ERROR_REPLAYED,      /* secure channel: seen before, or behind the window */
  NATTER_NOISE_ERROR_UNEXPECTED,    /* secure channel: unknown type or wrong moment */
} NatterNoiseError;

GQuark natter_noise_error_quark (void);

typedef enum
{
  NATTER_NOISE_ROLE_INITIATOR,
  NATTER_NOISE_ROLE_RESPONDER,
} NatterNoiseRole;

/* Keys and key pairs: 32-byte secret and public X25519 keys. */
void     natter_noise_generate_keypair   (guint8        *secret_out,
                                          guint8        *public_out);
gboolean natter_noise_public_from_secret (const guint8  *secret,
                                          guint8        *public_out,
                                          GError       **error);

/* ChaChaPoly with an explicit nonce, as Noise's ENCRYPT/DECRYPT: the
 * 96-bit nonce is 32 zero bits followed by @nonce little-endian.  @out
 * needs @in_len + 16 bytes (encrypt) or @in_len - 16 (decrypt); in place
 * (out == in) is allowed. */
void natter_noise_aead_encrypt (const guint8 *key,
                                guint64       nonce,
                                const guint8 *ad,
                                gsize         ad_len,
                                const guint8 *in,
                                gsize         in_len,
                                guint8       *out);
gboolean natter_noise_aead_decrypt (const guint8 *key,
                                    guint64       nonce,
                                    const guint8 *ad,
                                    gsize         ad_len,
                                    const guint8 *in,
                                    gsize         in_len,
                                    guint8       *out);
/* REKEY(k): k = ENCRYPT(k, 2^64 - 1, empty, 32 zero bytes)[0:32], in place. */
void natter_noise_rekey_key (guint8 *key);

/* CipherState: a key and the implicit nonce of Noise's transport phase.
 * A plain struct so that it can live inside other secret-holding
 * structures; wipe it with natter_noise_cipher_state_clear(). */
typedef struct
{
  guint8   k[NATTER_NOISE_KEY_LEN];
  guint64  n;
  gboolean has_key;
} NatterNoiseCipherState;

void natter_noise_cipher_state_init_key (NatterNoiseCipherState *cs,
                                         const guint8           *key);
void natter_noise_cipher_state_clear (NatterNoiseCipherState *cs);
/* Append the ciphertext (or plaintext, for an empty key) to @out. */
gboolean natter_noise_cipher_state_encrypt_with_ad (NatterNoiseCipherState  *cs,
                                                    const guint8            *ad,
                                                    gsize                    ad_len,
                                                    const guint8            *plaintext,
                                                    gsize                    plaintext_len,
                                                    GByteArray              *out,
                                                    GError                 **error);
/* On failure the nonce is not advanced and nothing is appended. */
gboolean natter_noise_cipher_state_decrypt_with_ad (NatterNoiseCipherState  *cs,
                                                    const guint8            *ad,
                                                    gsize                    ad_len,
                                                    const guint8            *ciphertext,
                                                    gsize                    ciphertext_len,
                                                    GByteArray              *out,
                                                    GError                 **error);
void natter_noise_cipher_state_rekey (NatterNoiseCipherState *cs);

/* HandshakeState.  Patterns: NN, NK, KK, XK, IK, XX. */
typedef struct _NatterNoiseHandshake NatterNoiseHandshake;

/* @protocol_name is e.g. "Noise_XX_25519_ChaChaPoly_BLAKE2b".
 * @local_static_secret is needed exactly when the pattern gives this side
 * a static key; @remote_static_public exactly when the pattern has the
 * peer's static key as a pre-message (NK, KK, XK, IK for the initiator,
 * KK for the responder).  A key the pattern does not use is refused
 * (BAD_KEY) rather than ignored, so that nobody believes an NN or XX
 * handshake checked a key it never saw: for XX, compare
 * natter_noise_handshake_get_remote_static() after the handshake. */
NatterNoiseHandshake *natter_noise_handshake_new (const char       *protocol_name,
                                                  NatterNoiseRole   role,
                                                  const guint8     *prologue,
                                                  gsize             prologue_len,
                                                  const guint8     *local_static_secret,
                                                  const guint8     *remote_static_public,
                                                  GError          **error);
void natter_noise_handshake_free (NatterNoiseHandshake *hs);
/* Fixes the ephemeral secret instead of drawing a random one (test
 * vectors).  Only before this side has written its "e". */
gboolean natter_noise_handshake_set_ephemeral (NatterNoiseHandshake  *hs,
                                               const guint8          *secret,
                                               GError               **error);

gboolean natter_noise_handshake_is_my_turn (NatterNoiseHandshake *hs);
gboolean natter_noise_handshake_is_finished (NatterNoiseHandshake *hs);

/* WriteMessage: appends the handshake message carrying @payload to @out.
 * ReadMessage: parses @message (untrusted) and appends its payload to
 * @payload_out.  Both are all-or-nothing: on error the handshake state and
 * the output are left as they were, so a forged datagram cannot wedge a
 * handshake that the real peer can still complete. */
gboolean natter_noise_handshake_write_message (NatterNoiseHandshake  *hs,
                                               const guint8          *payload,
                                               gsize                  payload_len,
                                               GByteArray            *out,
                                               GError               **error);
gboolean natter_noise_handshake_read_message (NatterNoiseHandshake  *hs,
                                              const guint8          *message,
                                              gsize                  message_len,
                                              GByteArray            *payload_out,
                                              GError               **error);

/* The peer's static public key once known (pre-message or received), else NULL. */
const guint8 *natter_noise_handshake_get_remote_static (NatterNoiseHandshake *hs);
/* h, NATTER_NOISE_HASH_LEN bytes, for channel binding; NULL until finished. */
const guint8 *natter_noise_handshake_get_handshake_hash (NatterNoiseHandshake *hs);

/* Split(): the transport keys, already oriented for this side's role.
 * Only once the handshake is finished; wipes the chaining key. */
gboolean natter_noise_handshake_split (NatterNoiseHandshake    *hs,
                                       NatterNoiseCipherState  *send_out,
                                       NatterNoiseCipherState  *recv_out,
                                       GError                 **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterNoiseHandshake, natter_noise_handshake_free)

G_END_DECLS
