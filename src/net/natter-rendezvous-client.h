/* natter-rendezvous-client.h: a connection to a natter-rendezvous server
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>
#include <libsoup/soup.h>

#include "natter-identity.h"

G_BEGIN_DECLS

/* A rendezvous client keeps one authenticated WebSocket to a server
 * (docs/rendezvous.md): it answers the challenge with the identity's
 * signature, declares the contact list, keeps the connection out of the
 * idle timeout with pings, and reconnects on its own after any close, with
 * exponential backoff and jitter (NATTER_RENDEZVOUS_CLIENT_BACKOFF_MIN_MS
 * doubling up to _MAX_MS, back to the minimum after a registration).
 *
 * Everything the server sends is untrusted: frames are size-checked and
 * scanned for nesting before JSON parsing, every field is checked, and a
 * message that breaks the protocol closes the connection (which is then
 * reopened after the backoff); nothing the server sends is fatal.
 *
 * Signal blobs are sealed to the recipient on the way out
 * (natter_signal_seal) and opened on the way in; "signal-received" carries
 * only blobs that opened, from a peer in the contact list.
 *
 * The object lives on the thread that creates it (its main context). */

#define NATTER_RENDEZVOUS_CLIENT_BACKOFF_MIN_MS   500
#define NATTER_RENDEZVOUS_CLIENT_BACKOFF_MAX_MS   60000
/* A {"type":"ping"} goes out this often (the server's idle timeout
 * defaults to 120 s and counts messages only). */
#define NATTER_RENDEZVOUS_CLIENT_PING_INTERVAL_S  30
/* From the start of a connection attempt to "registered". */
#define NATTER_RENDEZVOUS_CLIENT_REGISTER_TIMEOUT_S 15

#define NATTER_RENDEZVOUS_CLIENT_ERROR (natter_rendezvous_client_error_quark ())

typedef enum
{
  NATTER_RENDEZVOUS_CLIENT_ERROR_INVALID,          /* bad argument */
  NATTER_RENDEZVOUS_CLIENT_ERROR_NOT_REGISTERED,   /* no registered connection now */
  NATTER_RENDEZVOUS_CLIENT_ERROR_NOT_CONTACT,      /* the peer is not in the list */
  NATTER_RENDEZVOUS_CLIENT_ERROR_TOO_LARGE,
  NATTER_RENDEZVOUS_CLIENT_ERROR_PROTOCOL,         /* the server broke the protocol */
} NatterRendezvousClientError;

GQuark natter_rendezvous_client_error_quark (void);

typedef enum
{
  NATTER_RENDEZVOUS_CLIENT_STATE_DISCONNECTED,
  NATTER_RENDEZVOUS_CLIENT_STATE_CONNECTING,   /* connecting or registering */
  NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED,
} NatterRendezvousClientState;

#define NATTER_TYPE_RENDEZVOUS_CLIENT_STATE (natter_rendezvous_client_state_get_type ())
GType natter_rendezvous_client_state_get_type (void);

#define NATTER_TYPE_RENDEZVOUS_CLIENT (natter_rendezvous_client_get_type ())
G_DECLARE_FINAL_TYPE (NatterRendezvousClient, natter_rendezvous_client, NATTER, RENDEZVOUS_CLIENT, GObject)

/* @url is ws:// or wss://, with the path (normally "/v1").  @contacts
 * (may be NULL) are peer IDs in any spelling natter_peer_id_normalize()
 * accepts.  Nothing happens before natter_rendezvous_client_start(). */
NatterRendezvousClient *natter_rendezvous_client_new      (const char              *url,
                                                           NatterIdentity          *identity,
                                                           const char * const      *contacts,
                                                           GError                 **error);
/* As above, on a shared @session (many clients in one process). */
NatterRendezvousClient *natter_rendezvous_client_new_with_session (const char         *url,
                                                                   NatterIdentity     *identity,
                                                                   const char * const *contacts,
                                                                   SoupSession        *session,
                                                                   GError            **error);

void        natter_rendezvous_client_start        (NatterRendezvousClient  *self);
/* Closes the connection and stops reconnecting. */
void        natter_rendezvous_client_stop         (NatterRendezvousClient  *self);

/* Replaces the contact list (sent at once when registered). */
gboolean    natter_rendezvous_client_set_contacts (NatterRendezvousClient  *self,
                                                   const char * const      *contacts,
                                                   GError                 **error);

/* Seals @blob to @peer_id and sends it.  Fails when not registered or when
 * @peer_id is not a contact; delivery failures come back later as
 * "undeliverable". */
gboolean    natter_rendezvous_client_send_signal  (NatterRendezvousClient  *self,
                                                   const char              *peer_id,
                                                   GBytes                  *blob,
                                                   GError                 **error);

NatterRendezvousClientState natter_rendezvous_client_get_state (NatterRendezvousClient *self);
gboolean    natter_rendezvous_client_is_online    (NatterRendezvousClient  *self,
                                                   const char              *peer_id);
/* Successful registrations since start(), for tests and diagnostics. */
guint       natter_rendezvous_client_get_n_registrations (NatterRendezvousClient *self);

G_END_DECLS
