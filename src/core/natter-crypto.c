/* natter-crypto.c: end-to-end encryption of message content
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>
#include <sodium.h>

#include "natter-crypto.h"
#include "natter-message-private.h"

#define PEER_KEY_CONTEXT  "natter-peer-key-v1"
#define GROUP_KEY_CONTEXT "natter-group-key-v1"
#define PEER_AD_CONTEXT   "natter-peer-ad-v1"
#define GROUP_AD_CONTEXT  "natter-group-ad-v1"

#define KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES

G_STATIC_ASSERT (NATTER_MESSAGE_NONCE_LEN == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
G_STATIC_ASSERT (KEY_LEN == 32);

/* Associated data is a context string followed by length-prefixed
 * fields, so that no two different field lists give the same bytes. */
static void
ad_append (GByteArray *ad,
           const char *field)
{
  guint32 len = field ? strlen (field) : 0;
  guint32 be = GUINT32_TO_BE (len);

  g_byte_array_append (ad, (const guint8 *) &be, sizeof be);
  if (len > 0)
    g_byte_array_append (ad, (const guint8 *) field, len);
}

static GByteArray *
peer_ad (NatterMessage *self)
{
  GByteArray *ad = g_byte_array_new ();
  guint32 n_to = self->to ? g_strv_length (self->to) : 0;
  guint32 be = GUINT32_TO_BE (n_to);

  g_byte_array_append (ad, (const guint8 *) PEER_AD_CONTEXT, strlen (PEER_AD_CONTEXT));
  ad_append (ad, self->id);
  ad_append (ad, natter_message_type_to_string (self->type));
  ad_append (ad, self->from);
  g_byte_array_append (ad, (const guint8 *) &be, sizeof be);
  for (guint32 i = 0; i < n_to; i++)
    ad_append (ad, self->to[i]);
  return ad;
}

static GByteArray *
group_ad (NatterMessage *self,
          const char    *key_id)
{
  GByteArray *ad = g_byte_array_new ();

  g_byte_array_append (ad, (const guint8 *) GROUP_AD_CONTEXT, strlen (GROUP_AD_CONTEXT));
  ad_append (ad, self->id);
  ad_append (ad, natter_message_type_to_string (self->type));
  ad_append (ad, self->from);
  ad_append (ad, self->group);
  ad_append (ad, key_id);
  return ad;
}

/* key = BLAKE2b-256 (context || X25519 (own secret, their public) ||
 *                    sender X25519 public || recipient X25519 public)
 * The sender's key comes first whoever computes it, so both ends agree. */
/* Agreeing a key costs an X25519 multiplication (tens of microseconds),
 * and a chat sends many messages to the same peer, so derived keys are
 * cached process-wide, direct-mapped by a hash of all the inputs. */
#define PEER_KEY_CACHE_SIZE 64

typedef struct
{
  gboolean used;
  guint8   inputs[crypto_generichash_BYTES];
  guint8   key[KEY_LEN];
} PeerKeyCacheEntry;

static GMutex peer_key_cache_lock;
static PeerKeyCacheEntry peer_key_cache[PEER_KEY_CACHE_SIZE];

static gboolean
derive_peer_key (const guint8  *own_secret,
                 const guint8  *their_public,
                 const guint8  *sender_public,
                 const guint8  *recipient_public,
                 guint8         key[KEY_LEN])
{
  guint8 shared[crypto_scalarmult_BYTES];
  guint8 inputs[crypto_generichash_BYTES];
  crypto_generichash_state state;
  PeerKeyCacheEntry *slot;

  crypto_generichash_init (&state, NULL, 0, sizeof inputs);
  crypto_generichash_update (&state, own_secret, NATTER_X25519_KEY_LEN);
  crypto_generichash_update (&state, their_public, NATTER_X25519_KEY_LEN);
  crypto_generichash_update (&state, sender_public, NATTER_X25519_KEY_LEN);
  crypto_generichash_update (&state, recipient_public, NATTER_X25519_KEY_LEN);
  crypto_generichash_final (&state, inputs, sizeof inputs);
  slot = &peer_key_cache[inputs[0] % PEER_KEY_CACHE_SIZE];

  g_mutex_lock (&peer_key_cache_lock);
  if (slot->used && sodium_memcmp (slot->inputs, inputs, sizeof inputs) == 0)
    {
      memcpy (key, slot->key, KEY_LEN);
      g_mutex_unlock (&peer_key_cache_lock);
      return TRUE;
    }
  g_mutex_unlock (&peer_key_cache_lock);

  /* Fails on low-order points, whose shared secret is all zeroes. */
  if (crypto_scalarmult (shared, own_secret, their_public) != 0)
    return FALSE;

  crypto_generichash_init (&state, NULL, 0, KEY_LEN);
  crypto_generichash_update (&state, (const guint8 *) PEER_KEY_CONTEXT, strlen (PEER_KEY_CONTEXT));
  crypto_generichash_update (&state, shared, sizeof shared);
  crypto_generichash_update (&state, sender_public, NATTER_X25519_KEY_LEN);
  crypto_generichash_update (&state, recipient_public, NATTER_X25519_KEY_LEN);
  crypto_generichash_final (&state, key, KEY_LEN);

  sodium_memzero (shared, sizeof shared);
  sodium_memzero (&state, sizeof state);

  g_mutex_lock (&peer_key_cache_lock);
  slot->used = TRUE;
  memcpy (slot->inputs, inputs, sizeof inputs);
  memcpy (slot->key, key, KEY_LEN);
  g_mutex_unlock (&peer_key_cache_lock);
  return TRUE;
}

/* The group key is used through a derived subkey, so that the raw key
 * handed to members can serve other purposes later without reuse. */
static void
derive_group_key (const guint8 *group_key,
                  guint8        key[KEY_LEN])
{
  crypto_generichash (key, KEY_LEN,
                      (const guint8 *) GROUP_KEY_CONTEXT, strlen (GROUP_KEY_CONTEXT),
                      group_key, NATTER_MESSAGE_GROUP_KEY_LEN);
}

/* Converting a peer ID's Ed25519 key to X25519 costs a field inversion and
 * a point check; the results are cached like the derived keys. */
#define X25519_CACHE_SIZE 64

typedef struct
{
  char   peer_id[NATTER_PEER_ID_LEN + 1];
  guint8 x25519[NATTER_X25519_KEY_LEN];
} X25519CacheEntry;

static GMutex x25519_cache_lock;
static X25519CacheEntry x25519_cache[X25519_CACHE_SIZE];

static gboolean
peer_x25519_public (const char  *peer_id,
                    guint8       x25519[NATTER_X25519_KEY_LEN],
                    GError     **error)
{
  guint8 ed25519[NATTER_PUBLIC_KEY_LEN];
  g_autoptr(GError) local_error = NULL;
  X25519CacheEntry *slot = NULL;

  if (peer_id != NULL && strlen (peer_id) == NATTER_PEER_ID_LEN)
    {
      slot = &x25519_cache[g_str_hash (peer_id) % X25519_CACHE_SIZE];
      g_mutex_lock (&x25519_cache_lock);
      if (strcmp (slot->peer_id, peer_id) == 0)
        {
          memcpy (x25519, slot->x25519, NATTER_X25519_KEY_LEN);
          g_mutex_unlock (&x25519_cache_lock);
          return TRUE;
        }
      g_mutex_unlock (&x25519_cache_lock);
    }

  if (peer_id == NULL ||
      !natter_peer_id_parse (peer_id, ed25519, &local_error) ||
      !natter_public_key_to_x25519 (ed25519, x25519, &local_error))
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_PEER_ID,
                   "%s: %s", peer_id ? peer_id : "(null)",
                   local_error ? local_error->message : "missing peer ID");
      return FALSE;
    }

  /* Only the canonical spelling is cached (the parse accepts others). */
  if (slot != NULL)
    {
      g_autofree char *canonical = natter_peer_id_from_public_key (ed25519);

      if (strcmp (canonical, peer_id) == 0)
        {
          g_mutex_lock (&x25519_cache_lock);
          memcpy (slot->peer_id, peer_id, NATTER_PEER_ID_LEN + 1);
          memcpy (slot->x25519, x25519, NATTER_X25519_KEY_LEN);
          g_mutex_unlock (&x25519_cache_lock);
        }
    }
  return TRUE;
}

static gboolean
check_can_encrypt (NatterMessage  *self,
                   GError        **error)
{
  if (self->encrypted)
    {
      g_set_error_literal (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE,
                           "encrypted: the message is already encrypted");
      return FALSE;
    }
  if (self->content == NULL)
    {
      g_set_error_literal (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_MISSING_FIELD,
                           "content: required field is missing");
      return FALSE;
    }
  /* Never seal content that the recipient would reject after opening. */
  return natter_message_validate_content (self->type, self->content, error);
}

static void
seal (NatterMessage *self,
      const guint8  *key,
      GByteArray    *ad,
      const char    *key_id)
{
  g_autoptr(JsonNode) root = json_node_init_object (json_node_alloc (), self->content);
  g_autoptr(GString) plaintext = g_string_sized_new (256);
  guint8 *ciphertext;
  unsigned long long ciphertext_len;

  natter_json_write_canonical (plaintext, root);

  randombytes_buf (self->nonce, sizeof self->nonce);
  ciphertext = g_malloc (plaintext->len + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  crypto_aead_xchacha20poly1305_ietf_encrypt (ciphertext, &ciphertext_len,
                                              (const guint8 *) plaintext->str, plaintext->len,
                                              ad->data, ad->len, NULL, self->nonce, key);
  sodium_memzero (plaintext->str, plaintext->len);

  g_clear_pointer (&self->ciphertext, g_bytes_unref);
  self->ciphertext = g_bytes_new_take (ciphertext, ciphertext_len);
  g_free (self->key_id);
  self->key_id = g_strdup (key_id);
  g_clear_pointer (&self->content, json_object_unref);
  self->encrypted = TRUE;
  /* Whatever was signed before, it was not this envelope. */
  self->has_signature = FALSE;
}

static gboolean
check_can_decrypt (NatterMessage  *self,
                   GError        **error)
{
  if (!self->encrypted || self->ciphertext == NULL)
    {
      g_set_error_literal (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE,
                           "encrypted: the message is not encrypted");
      return FALSE;
    }
  return TRUE;
}

static gboolean
open_envelope (NatterMessage  *self,
               const guint8   *key,
               GByteArray     *ad,
               GError        **error)
{
  gsize ciphertext_len;
  const guint8 *ciphertext = g_bytes_get_data (self->ciphertext, &ciphertext_len);
  g_autofree guint8 *plaintext = NULL;
  unsigned long long plaintext_len = 0;
  g_autoptr(JsonObject) content = NULL;

  if (ciphertext_len < crypto_aead_xchacha20poly1305_ietf_ABYTES)
    {
      g_set_error_literal (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED,
                           "content.ciphertext: too short");
      return FALSE;
    }

  plaintext = g_malloc (ciphertext_len);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt (plaintext, &plaintext_len, NULL,
                                                  ciphertext, ciphertext_len,
                                                  ad->data, ad->len, self->nonce, key) != 0)
    {
      g_set_error_literal (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED,
                           "content.ciphertext: cannot be decrypted with this key "
                           "(wrong recipient or key, or altered)");
      return FALSE;
    }

  /* The plaintext came from the sender, so it is as untrusted as the
   * wire.  It sits one level below the message root. */
  content = natter_message_parse_object (plaintext, plaintext_len,
                                         NATTER_MESSAGE_MAX_DEPTH - 1, "content", error);
  sodium_memzero (plaintext, plaintext_len);
  if (content == NULL ||
      !natter_message_validate_content (self->type, content, error))
    return FALSE;

  g_clear_pointer (&self->content, json_object_unref);
  self->content = g_steal_pointer (&content);
  self->encrypted = FALSE;
  memset (self->nonce, 0, sizeof self->nonce);
  g_clear_pointer (&self->ciphertext, g_bytes_unref);
  g_clear_pointer (&self->key_id, g_free);
  /* The signature covered the envelope, which is gone now. */
  self->has_signature = FALSE;
  return TRUE;
}

/**
 * natter_message_encrypt_for_peer:
 * @self: a plaintext message
 * @sender: the author's identity
 * @recipient_peer_id: one of @self->to
 * @error: return location for a #GError
 *
 * Replaces the content by an envelope sealed to @recipient_peer_id.  Sign
 * afterwards.
 *
 * Returns: TRUE on success
 */
gboolean
natter_message_encrypt_for_peer (NatterMessage   *self,
                                 NatterIdentity  *sender,
                                 const char      *recipient_peer_id,
                                 GError         **error)
{
  guint8 recipient_public[NATTER_X25519_KEY_LEN];
  guint8 key[KEY_LEN];
  g_autoptr(GByteArray) ad = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (NATTER_IS_IDENTITY (sender), FALSE);

  if (sodium_init () < 0)
    g_error ("libsodium cannot be initialised");

  if (!check_can_encrypt (self, error))
    return FALSE;
  if (g_strcmp0 (self->from, natter_identity_get_peer_id (sender)) != 0)
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE,
                   "from: the sender %s is not the author of the message",
                   natter_identity_get_peer_id (sender));
      return FALSE;
    }
  if (recipient_peer_id == NULL || self->to == NULL ||
      !g_strv_contains ((const char * const *) self->to, recipient_peer_id))
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE,
                   "to: %s is not a recipient of the message",
                   recipient_peer_id ? recipient_peer_id : "(null)");
      return FALSE;
    }
  if (!peer_x25519_public (recipient_peer_id, recipient_public, error))
    return FALSE;

  if (!derive_peer_key (natter_identity_get_x25519_secret (sender), recipient_public,
                        natter_identity_get_x25519_public (sender), recipient_public, key))
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_PEER_ID,
                   "to: %s has an unusable key", recipient_peer_id);
      return FALSE;
    }

  ad = peer_ad (self);
  seal (self, key, ad, NULL);
  sodium_memzero (key, sizeof key);
  return TRUE;
}

/**
 * natter_message_decrypt_from_peer:
 * @self: an encrypted message
 * @recipient: the identity it was sealed to
 * @error: return location for a #GError
 *
 * Opens the envelope and validates the content.  Verify the signature
 * first: afterwards @self no longer holds what was signed.
 *
 * Returns: TRUE on success; NATTER_MESSAGE_ERROR_DECRYPT_FAILED when
 *   @recipient cannot open it or it was altered.
 */
gboolean
natter_message_decrypt_from_peer (NatterMessage   *self,
                                  NatterIdentity  *recipient,
                                  GError         **error)
{
  guint8 sender_public[NATTER_X25519_KEY_LEN];
  guint8 key[KEY_LEN];
  g_autoptr(GByteArray) ad = NULL;
  const char *peer_id;
  gboolean ok;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (NATTER_IS_IDENTITY (recipient), FALSE);

  if (sodium_init () < 0)
    g_error ("libsodium cannot be initialised");

  if (!check_can_decrypt (self, error))
    return FALSE;

  peer_id = natter_identity_get_peer_id (recipient);
  if (self->key_id != NULL || self->to == NULL ||
      !g_strv_contains ((const char * const *) self->to, peer_id))
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED,
                   "content: not encrypted to %s", peer_id);
      return FALSE;
    }
  if (!peer_x25519_public (self->from, sender_public, error))
    return FALSE;

  if (!derive_peer_key (natter_identity_get_x25519_secret (recipient), sender_public,
                        sender_public, natter_identity_get_x25519_public (recipient), key))
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED,
                   "from: %s has an unusable key", self->from);
      return FALSE;
    }

  ad = peer_ad (self);
  ok = open_envelope (self, key, ad, error);
  sodium_memzero (key, sizeof key);
  return ok;
}

static gboolean
check_group_key (NatterMessage  *self,
                 const guint8   *key,
                 gsize           key_len,
                 const char     *key_id,
                 GError        **error)
{
  if (key == NULL || key_len != NATTER_MESSAGE_GROUP_KEY_LEN)
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_STATE,
                   "group key: %" G_GSIZE_FORMAT " bytes, expected %d",
                   key_len, NATTER_MESSAGE_GROUP_KEY_LEN);
      return FALSE;
    }
  if (!natter_message_id_is_valid (key_id))
    {
      g_set_error_literal (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_ID,
                           "content.keyId: not a valid key ID");
      return FALSE;
    }
  if (self->group == NULL)
    {
      g_set_error_literal (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_MISSING_FIELD,
                           "group: required to encrypt for a group");
      return FALSE;
    }
  return TRUE;
}

/**
 * natter_message_encrypt_for_group:
 * @self: a plaintext message with a group
 * @key: the group key
 * @key_len: its length, NATTER_MESSAGE_GROUP_KEY_LEN
 * @key_id: the key's ID, sent in clear
 * @error: return location for a #GError
 *
 * Replaces the content by an envelope sealed with the group key.  Sign
 * afterwards.
 *
 * Returns: TRUE on success
 */
gboolean
natter_message_encrypt_for_group (NatterMessage  *self,
                                  const guint8   *key,
                                  gsize           key_len,
                                  const char     *key_id,
                                  GError        **error)
{
  guint8 subkey[KEY_LEN];
  g_autoptr(GByteArray) ad = NULL;

  g_return_val_if_fail (self != NULL, FALSE);

  if (sodium_init () < 0)
    g_error ("libsodium cannot be initialised");

  if (!check_can_encrypt (self, error) ||
      !check_group_key (self, key, key_len, key_id, error))
    return FALSE;

  derive_group_key (key, subkey);
  ad = group_ad (self, key_id);
  seal (self, subkey, ad, key_id);
  sodium_memzero (subkey, sizeof subkey);
  return TRUE;
}

/**
 * natter_message_decrypt_for_group:
 * @self: an encrypted group message
 * @key: the group key named by @key_id
 * @key_len: its length, NATTER_MESSAGE_GROUP_KEY_LEN
 * @key_id: the key's ID; must match the envelope's keyId
 * @error: return location for a #GError
 *
 * Opens the envelope and validates the content.  Verify the signature
 * first.
 *
 * Returns: TRUE on success; NATTER_MESSAGE_ERROR_DECRYPT_FAILED when the
 *   key does not open it or it was altered.
 */
gboolean
natter_message_decrypt_for_group (NatterMessage  *self,
                                  const guint8   *key,
                                  gsize           key_len,
                                  const char     *key_id,
                                  GError        **error)
{
  guint8 subkey[KEY_LEN];
  g_autoptr(GByteArray) ad = NULL;
  gboolean ok;

  g_return_val_if_fail (self != NULL, FALSE);

  if (sodium_init () < 0)
    g_error ("libsodium cannot be initialised");

  if (!check_can_decrypt (self, error) ||
      !check_group_key (self, key, key_len, key_id, error))
    return FALSE;
  if (g_strcmp0 (self->key_id, key_id) != 0)
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED,
                   "content.keyId: sealed with key “%s”, not “%s”",
                   self->key_id ? self->key_id : "(none)", key_id);
      return FALSE;
    }

  derive_group_key (key, subkey);
  ad = group_ad (self, key_id);
  ok = open_envelope (self, subkey, ad, error);
  sodium_memzero (subkey, sizeof subkey);
  return ok;
}
