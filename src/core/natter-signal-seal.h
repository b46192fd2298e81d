/* natter-signal-seal.h: signaling blobs sealed to the recipient
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include "natter-identity.h"

G_BEGIN_DECLS

/* A signaling blob (ICE credentials and candidates) travels through a
 * rendezvous server, which must not read it.  It is sealed with libsodium's
 * crypto_box_seal to the recipient's X25519 key, derived from the Ed25519
 * key inside its peer ID: an ephemeral key per blob, so the server sees
 * only random-looking bytes, NATTER_SIGNAL_SEAL_OVERHEAD longer than the
 * plaintext.  The seal is anonymous; the sender's identity is proved by the
 * Noise handshake that the blobs set up, not by the seal. */

#define NATTER_SIGNAL_SEAL_OVERHEAD 48      /* crypto_box_SEALBYTES */
#define NATTER_SIGNAL_MAX_PLAINTEXT 8192

#define NATTER_SIGNAL_ERROR (natter_signal_error_quark ())

typedef enum
{
  NATTER_SIGNAL_ERROR_TOO_LARGE,
  NATTER_SIGNAL_ERROR_BAD_RECIPIENT,   /* not a valid peer ID or key */
  NATTER_SIGNAL_ERROR_OPEN_FAILED,     /* not sealed to us, or altered */
} NatterSignalError;

GQuark  natter_signal_error_quark (void);

/* Seals @plaintext to @recipient_peer_id. */
GBytes *natter_signal_seal        (const char      *recipient_peer_id,
                                   GBytes          *plaintext,
                                   GError         **error);
/* Opens a blob sealed to @recipient. */
GBytes *natter_signal_open        (NatterIdentity  *recipient,
                                   GBytes          *sealed,
                                   GError         **error);

G_END_DECLS
