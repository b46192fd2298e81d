/* natter-crypto.h: end-to-end encryption of message content
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include "natter-identity.h"
#include "natter-message.h"

G_BEGIN_DECLS

/* Content is sealed with XChaCha20-Poly1305 (IETF) under a random 24-byte
 * nonce.  The associated data binds the ciphertext to the message's id,
 * type, from and to (peer) or group (group), so it cannot be moved to
 * another message.  The exact construction is in docs/protocol.md.
 *
 * Encrypt, then sign: the signature covers the envelope.  On receipt,
 * verify, then decrypt: decryption replaces the envelope by the plaintext
 * content, after which the old signature no longer matches. */

/* Encrypts @self's content to @recipient_peer_id, which must be one of
 * @self's recipients, with a key agreed between @sender (the author) and
 * the recipient. */
gboolean natter_message_encrypt_for_peer   (NatterMessage   *self,
                                            NatterIdentity  *sender,
                                            const char      *recipient_peer_id,
                                            GError         **error);
/* Decrypts a message addressed to @recipient.  NATTER_MESSAGE_ERROR_DECRYPT_FAILED
 * when it was not encrypted to @recipient or was altered.  The plaintext
 * goes through the same size, depth and schema checks as the wire. */
gboolean natter_message_decrypt_from_peer  (NatterMessage   *self,
                                            NatterIdentity  *recipient,
                                            GError         **error);

/* Group content: @key is the group's current 32-byte key, @key_id names it
 * (it travels in clear as "keyId").  @self->group must be set. */
gboolean natter_message_encrypt_for_group  (NatterMessage   *self,
                                            const guint8    *key,
                                            gsize            key_len,
                                            const char      *key_id,
                                            GError         **error);
gboolean natter_message_decrypt_for_group  (NatterMessage   *self,
                                            const guint8    *key,
                                            gsize            key_len,
                                            const char      *key_id,
                                            GError         **error);

G_END_DECLS
