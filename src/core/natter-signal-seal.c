/* natter-signal-seal.c: signaling blobs sealed to the recipient
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <sodium.h>

#include "natter-signal-seal.h"

G_STATIC_ASSERT (NATTER_SIGNAL_SEAL_OVERHEAD == crypto_box_SEALBYTES);

G_DEFINE_QUARK (natter-signal-error-quark, natter_signal_error)

GBytes *
natter_signal_seal (const char  *recipient_peer_id,
                    GBytes      *plaintext,
                    GError     **error)
{
  guint8 public_key[NATTER_PUBLIC_KEY_LEN];
  guint8 x25519[NATTER_X25519_KEY_LEN];
  g_autoptr(GError) local_error = NULL;
  const guint8 *data;
  gsize len;
  guint8 *sealed;

  g_return_val_if_fail (recipient_peer_id != NULL, NULL);
  g_return_val_if_fail (plaintext != NULL, NULL);

  if (sodium_init () < 0)
    g_error ("libsodium cannot be initialised");

  data = g_bytes_get_data (plaintext, &len);
  if (len > NATTER_SIGNAL_MAX_PLAINTEXT)
    {
      g_set_error (error, NATTER_SIGNAL_ERROR, NATTER_SIGNAL_ERROR_TOO_LARGE,
                   "Signaling blob of %" G_GSIZE_FORMAT " bytes, more than the %d allowed",
                   len, NATTER_SIGNAL_MAX_PLAINTEXT);
      return NULL;
    }

  if (!natter_peer_id_parse (recipient_peer_id, public_key, &local_error) ||
      !natter_public_key_to_x25519 (public_key, x25519, &local_error))
    {
      g_set_error (error, NATTER_SIGNAL_ERROR, NATTER_SIGNAL_ERROR_BAD_RECIPIENT,
                   "Cannot seal to %s: %s", recipient_peer_id, local_error->message);
      return NULL;
    }

  sealed = g_malloc (len + crypto_box_SEALBYTES);
  if (crypto_box_seal (sealed, data, len, x25519) != 0)
    {
      g_free (sealed);
      g_set_error (error, NATTER_SIGNAL_ERROR, NATTER_SIGNAL_ERROR_BAD_RECIPIENT,
                   "Cannot seal to %s", recipient_peer_id);
      return NULL;
    }

  return g_bytes_new_take (sealed, len + crypto_box_SEALBYTES);
}

GBytes *
natter_signal_open (NatterIdentity  *recipient,
                    GBytes          *sealed,
                    GError         **error)
{
  const guint8 *data;
  gsize len;
  guint8 *plain;

  g_return_val_if_fail (NATTER_IS_IDENTITY (recipient), NULL);
  g_return_val_if_fail (sealed != NULL, NULL);

  data = g_bytes_get_data (sealed, &len);
  if (len < crypto_box_SEALBYTES ||
      len - crypto_box_SEALBYTES > NATTER_SIGNAL_MAX_PLAINTEXT)
    {
      g_set_error (error, NATTER_SIGNAL_ERROR, NATTER_SIGNAL_ERROR_OPEN_FAILED,
                   "Sealed signaling blob has a bad size (%" G_GSIZE_FORMAT " bytes)", len);
      return NULL;
    }

  /* One spare byte so an empty plaintext still has a buffer. */
  plain = g_malloc (len - crypto_box_SEALBYTES + 1);
  if (crypto_box_seal_open (plain, data, len,
                            natter_identity_get_x25519_public (recipient),
                            natter_identity_get_x25519_secret (recipient)) != 0)
    {
      g_free (plain);
      g_set_error (error, NATTER_SIGNAL_ERROR, NATTER_SIGNAL_ERROR_OPEN_FAILED,
                   "Signaling blob was not sealed to this identity, or was altered");
      return NULL;
    }

  return g_bytes_new_take (plain, len - crypto_box_SEALBYTES);
}
