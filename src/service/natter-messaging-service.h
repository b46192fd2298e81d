/* natter-messaging-service.h: the messaging facade over peers and the store
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

#include "natter-contact.h"
#include "natter-conversation.h"
#include "natter-groups.h"
#include "natter-message-item.h"
#include "natter-profile.h"

G_BEGIN_DECLS

/* NatterMessagingService is what the window and natter-cli talk to.  It is
 * constructed for an open profile, lives on the main context, and owns:
 *
 *  - the profile's NatterStore (history, outbox, relay store);
 *  - one NatterPeerConnection per contact that is reachable, with the
 *    signaling routes that can set one up: LAN discovery, rendezvous
 *    servers, and introductions by a connected peer;
 *  - the delivery machinery: a durable outbox retried with backoff, signed
 *    end-to-end receipts, relaying through connected peers (at most 3
 *    hops) and store-and-forward for offline contacts.
 *
 * Nothing here blocks: SQL runs on the store's worker, the network on the
 * transport thread.  Every signal is emitted on the main context.  The
 * protocol is in docs/protocol.md, the design in docs/architecture.md. */

#define NATTER_MESSAGING_ERROR (natter_messaging_error_quark ())

typedef enum
{
  NATTER_MESSAGING_ERROR_INVALID,        /* bad argument (peer ID, empty text…) */
  NATTER_MESSAGING_ERROR_NOT_STARTED,    /* start() has not finished, or stop() ran */
  NATTER_MESSAGING_ERROR_UNKNOWN_PEER,   /* not a contact */
  NATTER_MESSAGING_ERROR_BLOCKED,        /* the contact is blocked */
  NATTER_MESSAGING_ERROR_TOO_LARGE,      /* text over the message size limit */
  NATTER_MESSAGING_ERROR_STORE,          /* the store failed; the message is the store's */
} NatterMessagingError;

GQuark natter_messaging_error_quark (void);

typedef enum
{
  NATTER_PRESENCE_OFFLINE,
  NATTER_PRESENCE_ONLINE,
  NATTER_PRESENCE_AWAY,
} NatterPresence;

#define NATTER_TYPE_PRESENCE (natter_presence_get_type ())
GType       natter_presence_get_type    (void);
const char *natter_presence_to_string   (NatterPresence  presence);
gboolean    natter_presence_from_string (const char     *text,
                                         NatterPresence *out);

/* How we reach a peer now. */
typedef enum
{
  NATTER_PEER_STATE_OFFLINE,     /* no connection and no relay */
  NATTER_PEER_STATE_CONNECTING,  /* a connection is being set up */
  NATTER_PEER_STATE_DIRECT,      /* our own connection to the peer */
  NATTER_PEER_STATE_RELAYED,     /* through a connected peer ("via") */
} NatterPeerState;

#define NATTER_TYPE_PEER_STATE (natter_peer_state_get_type ())
GType       natter_peer_state_get_type  (void);
const char *natter_peer_state_to_string (NatterPeerState state);

/* Defaults. */
#define NATTER_MESSAGING_DEFAULT_TTL_MS          (7 * 24 * 3600 * G_GINT64_CONSTANT (1000))
#define NATTER_MESSAGING_RELAY_QUOTA_BYTES       (8 * 1024 * 1024)
#define NATTER_MESSAGING_RELAY_MAX_TTL_MS        (7 * 24 * 3600 * G_GINT64_CONSTANT (1000))
#define NATTER_MESSAGING_TYPING_THROTTLE_MS      3000
#define NATTER_MESSAGING_TYPING_TIMEOUT_MS       6000
#define NATTER_MESSAGING_HEARTBEAT_MS            2000
#define NATTER_MESSAGING_PEER_TIMEOUT_MS         10000

#define NATTER_TYPE_MESSAGING_SERVICE (natter_messaging_service_get_type ())
G_DECLARE_FINAL_TYPE (NatterMessagingService, natter_messaging_service, NATTER, MESSAGING_SERVICE, GObject)

/* Construct properties (all may also be set before start()):
 *   "rendezvous-urls"  GStrv   ws:// or wss:// URLs; none by default
 *   "stun-server"      string  host:port, or NULL
 *   "turn-servers"     GStrv   "user:password@host:port" each
 *   "lan-discovery"    boolean default TRUE
 *   "interfaces"       GStrv   interfaces for ICE and LAN discovery; NULL:
 *                              the profile's "interfaces" setting (and the
 *                              NATTER_INTERFACES environment variable wins)
 *   "relay"            boolean default TRUE: relay and store for contacts
 *   "relay-quota"      int64   bytes held per offline recipient
 *   "default-ttl"      int64   ms a sent message may take to be delivered
 *   "discoverable"     boolean default FALSE: strangers on the LAN may see
 *                              "someone nearby" (never our peer ID) */
NatterMessagingService *natter_messaging_service_new (NatterProfile *profile);

NatterProfile *natter_messaging_service_get_profile (NatterMessagingService *self);
const char    *natter_messaging_service_get_peer_id (NatterMessagingService *self);

/* Opens the store, loads contacts and the outbox, starts finding peers. */
void     natter_messaging_service_start_async  (NatterMessagingService *self,
                                                GCancellable           *cancellable,
                                                GAsyncReadyCallback     callback,
                                                gpointer                user_data);
gboolean natter_messaging_service_start_finish (NatterMessagingService *self,
                                                GAsyncResult           *result,
                                                GError                **error);
/* Closes connections (after telling peers we go offline) and the store.
 * Pending writes are committed first. */
void     natter_messaging_service_stop_async   (NatterMessagingService *self,
                                                GCancellable           *cancellable,
                                                GAsyncReadyCallback     callback,
                                                gpointer                user_data);
gboolean natter_messaging_service_stop_finish  (NatterMessagingService *self,
                                                GAsyncResult           *result,
                                                GError                **error);

/* Contacts.  add_contact() stores an accepted contact (or renames one, and
 * accepts it again if it was blocked: adding is an explicit choice) and
 * starts looking for it; accept turns a pending one (someone who revealed
 * themselves nearby) into an accepted one; block stops all traffic with it. */
void     natter_messaging_service_add_contact_async    (NatterMessagingService *self,
                                                        const char             *peer_id,
                                                        const char             *display_name,
                                                        GCancellable           *cancellable,
                                                        GAsyncReadyCallback     callback,
                                                        gpointer                user_data);
NatterContact *natter_messaging_service_add_contact_finish (NatterMessagingService *self,
                                                        GAsyncResult           *result,
                                                        GError                **error);
void     natter_messaging_service_set_contact_state_async (NatterMessagingService *self,
                                                        const char             *peer_id,
                                                        NatterContactState      state,
                                                        GCancellable           *cancellable,
                                                        GAsyncReadyCallback     callback,
                                                        gpointer                user_data);
gboolean natter_messaging_service_set_contact_state_finish (NatterMessagingService *self,
                                                        GAsyncResult           *result,
                                                        GError                **error);
/* Records that the user compared the safety number with the contact. */
void     natter_messaging_service_set_contact_verified_async (NatterMessagingService *self,
                                                        const char             *peer_id,
                                                        gboolean                verified,
                                                        GCancellable           *cancellable,
                                                        GAsyncReadyCallback     callback,
                                                        gpointer                user_data);
gboolean natter_messaging_service_set_contact_verified_finish (NatterMessagingService *self,
                                                        GAsyncResult           *result,
                                                        GError                **error);

/* Sending.  The message is committed to history and the outbox (state
 * "queued") before the callback runs; finish() returns its message ID.
 * Later states come as "message-state-changed". */
void     natter_messaging_service_send_text_async  (NatterMessagingService *self,
                                                    const char             *peer_id,
                                                    const char             *text,
                                                    GCancellable           *cancellable,
                                                    GAsyncReadyCallback     callback,
                                                    gpointer                user_data);
char    *natter_messaging_service_send_text_finish (NatterMessagingService *self,
                                                    GAsyncResult           *result,
                                                    GError                **error);
/* Marks every received message of the conversation with @peer_id read and
 * sends read receipts for them. */
void     natter_messaging_service_mark_read_async  (NatterMessagingService *self,
                                                    const char             *peer_id,
                                                    GCancellable           *cancellable,
                                                    GAsyncReadyCallback     callback,
                                                    gpointer                user_data);
gboolean natter_messaging_service_mark_read_finish (NatterMessagingService *self,
                                                    GAsyncResult           *result,
                                                    GError                **error);
/* Typing: call with TRUE on every keystroke (throttled here) and FALSE when
 * the draft is sent or cleared; the peer's indicator also expires alone. */
gboolean natter_messaging_service_set_typing   (NatterMessagingService *self,
                                                const char             *peer_id,
                                                gboolean                typing,
                                                GError                **error);
void     natter_messaging_service_set_presence (NatterMessagingService *self,
                                                NatterPresence          presence);
NatterPresence natter_messaging_service_get_presence (NatterMessagingService *self);

/* What we know of a contact now. */
NatterPresence  natter_messaging_service_get_peer_presence (NatterMessagingService *self,
                                                            const char             *peer_id);
NatterPeerState natter_messaging_service_get_peer_state    (NatterMessagingService *self,
                                                            const char             *peer_id,
                                                            char                  **via);

/* Models, kept up to date by the service.  Contacts: NatterContact, by
 * name.  Conversations: NatterConversation, most recent activity first. */
GListModel *natter_messaging_service_get_contacts      (NatterMessagingService *self);
GListModel *natter_messaging_service_get_conversations (NatterMessagingService *self);

/* History of one conversation, newest last, NatterMessageItem.  Pages are
 * loaded from the store on demand (natter_history_model_load_older()).
 * Asynchronous because the conversation may have to be created. */
void        natter_messaging_service_open_history_async  (NatterMessagingService *self,
                                                          const char             *peer_id,
                                                          GCancellable           *cancellable,
                                                          GAsyncReadyCallback     callback,
                                                          gpointer                user_data);
GListModel *natter_messaging_service_open_history_finish (NatterMessagingService *self,
                                                          GAsyncResult           *result,
                                                          GError                **error);

/* Nearby strangers (LAN discovery, only while "discoverable" is TRUE on
 * both sides) appear as opaque handles in "nearby-changed".  Revealing
 * ourselves to one sends it our peer ID; there it becomes a pending
 * contact ("contact-request"), which its user may accept or block. */
gboolean natter_messaging_service_reveal_to_nearby (NatterMessagingService  *self,
                                                    const char              *handle,
                                                    GError                 **error);
/* The handles of the strangers nearby now, sorted.  Introducing ourselves
 * to one (reveal_to_nearby) is remembered for this run: get_introduced().
 * Accepting the request that follows on the other side introduces that
 * side back, and an introduction that answers ours is accepted as a
 * contact at once (we asked first).  dup_nearby_handle(): the handle that
 * others see for us, or NULL when we are not discoverable. */
GStrv    natter_messaging_service_list_nearby       (NatterMessagingService  *self);
gboolean natter_messaging_service_get_introduced    (NatterMessagingService  *self,
                                                    const char              *handle);
char    *natter_messaging_service_dup_nearby_handle (NatterMessagingService  *self);
/* The handle of the stranger nearby whose open contact request @peer_id
 * is, or NULL.  Such handles are not in list_nearby(). */
char    *natter_messaging_service_dup_request_handle (NatterMessagingService *self,
                                                     const char             *peer_id);

/* Counters for tests and diagnostics. */
typedef struct
{
  guint64 messages_sent;            /* frames handed to a connection */
  guint64 messages_received;        /* valid frames received */
  guint64 duplicates_dropped;       /* already had it; acknowledged again */
  guint64 rejected;                 /* bad signature, bad format, not for us… */
  guint64 relayed;                  /* forwarded for others */
  guint64 relay_stored;             /* held for an offline contact */
  guint64 relay_refused;            /* over quota, TTL, not a contact, no route */
  guint64 relay_handed_over;        /* held messages given to their recipient */
  guint   outbox_length;            /* entries waiting (last count) */
  guint   connections;              /* connected peers */
} NatterMessagingStats;

void natter_messaging_service_get_stats (NatterMessagingService *self,
                                         NatterMessagingStats   *stats);

/* Signals (all on the main context):
 *
 * "message-received" (NatterMessageItem *item)
 *     a new incoming message, committed to the store.
 * "message-state-changed" (const char *msg_id, const char *peer_id,
 *                          const char *state, const char *via)
 *     an outgoing message moved on: state is "queued", "sent", "delivered",
 *     "read" or "failed"; via is the relay's peer ID for a message sent
 *     through (or held by) another peer, NULL when direct.
 * "typing-changed" (const char *peer_id, gboolean typing)
 * "presence-changed" (const char *peer_id, NatterPresence presence)
 * "peer-state-changed" (const char *peer_id, NatterPeerState state,
 *                       const char *via)
 * "contact-added" (NatterContact *contact)
 * "contact-request" (NatterContact *contact)   pending: someone nearby
 *     revealed itself to us
 * "nearby-changed" (const char *handle, gboolean present)
 * "relay-event" (const char *event, const char *msg_id, const char *from,
 *                const char *to, const char *detail)
 *     on a relaying peer: event is "forwarded", "stored", "handed-over",
 *     "refused" (detail says why: "quota", "expired", "not-contact",
 *     "no-route", "invalid"), or "dropped-expired".  On the sender, a
 *     refusal also arrives as event "refused-by" with from = the relay.
 */

/* File transfers (docs/architecture.md, "Files").  A transfer has an ID
 * (the offer's fileId), a peer, a direction, a name, a size and a state
 * ("offered", "accepted", "active", "paused", "complete", "failed",
 * "cancelled", "rejected", as NatterStoreTransferState).  Offers wait in
 * the outbox like messages; data flows on a bulk stream of its own under
 * the connection's back-pressure, resumes from the last offset the
 * receiver confirmed, and is verified with BLAKE2b before it is complete.
 *
 * Properties: "download-folder" (string; default the XDG download folder),
 * "auto-accept" (boolean, default FALSE), "max-file-size" (int64 bytes, 0
 * for no limit, the default). */
void     natter_messaging_service_send_file_async    (NatterMessagingService *self,
                                                      const char             *peer_id,
                                                      GFile                  *file,
                                                      GCancellable           *cancellable,
                                                      GAsyncReadyCallback     callback,
                                                      gpointer                user_data);
/* Returns the transfer ID once the offer is committed. */
char    *natter_messaging_service_send_file_finish   (NatterMessagingService *self,
                                                      GAsyncResult           *result,
                                                      GError                **error);
/* Accepts an incoming offer; @folder (nullable) overrides the download
 * folder for this file. */
gboolean natter_messaging_service_accept_file        (NatterMessagingService *self,
                                                      const char             *transfer_id,
                                                      GFile                  *folder,
                                                      GError                **error);
gboolean natter_messaging_service_decline_file       (NatterMessagingService *self,
                                                      const char             *transfer_id,
                                                      GError                **error);
gboolean natter_messaging_service_cancel_file        (NatterMessagingService *self,
                                                      const char             *transfer_id,
                                                      GError                **error);
/* Transfers not finished, and those finished in this run, newest last:
 * NatterStoreTransfer copies (free with natter_store_transfer_free). */
GPtrArray *natter_messaging_service_list_transfers   (NatterMessagingService *self);

/* File signals:
 * "transfer-offered" (const char *transfer_id, const char *peer_id,
 *                     const char *name, gint64 size, const char *media_type)
 * "transfer-state-changed" (const char *transfer_id, const char *state,
 *                           const char *detail)   detail: the final path when
 *                           complete, the reason when failed, else NULL
 * "transfer-progress" (const char *transfer_id, gint64 bytes_done,
 *                      gint64 size, double bytes_per_second)
 *     at most a few times a second per transfer. */

/* Groups (docs/architecture.md, "Groups").  The group logic lives in
 * NatterGroups, which also has the signals ("group-changed",
 * "message-received", "receipts-changed", "typing-changed",
 * "sync-changed", "operation-rejected") and the rest of the API (admin
 * handover, read marks, typing, receipts, group info).  It exists from the
 * end of start() until the service is disposed.  Members of a group are
 * connected to like contacts; invitations go to accepted contacts, and a
 * welcome is accepted only from a contact.  Errors are G_IO_ERROR codes. */
NatterGroups *natter_messaging_service_get_groups (NatterMessagingService *self);
char      *natter_messaging_service_group_create    (NatterMessagingService  *self,
                                                     const char              *name,
                                                     const char * const      *members,
                                                     guint                    fanout,
                                                     GError                 **error);
gboolean   natter_messaging_service_group_invite    (NatterMessagingService  *self,
                                                     const char              *group_id,
                                                     const char              *peer_id,
                                                     GError                 **error);
gboolean   natter_messaging_service_group_remove    (NatterMessagingService  *self,
                                                     const char              *group_id,
                                                     const char              *peer_id,
                                                     GError                 **error);
gboolean   natter_messaging_service_group_leave     (NatterMessagingService  *self,
                                                     const char              *group_id,
                                                     GError                 **error);
char      *natter_messaging_service_group_send_text (NatterMessagingService  *self,
                                                     const char              *group_id,
                                                     const char              *text,
                                                     GError                 **error);
/* NatterGroupMessage, in display order. */
GPtrArray *natter_messaging_service_group_get_history (NatterMessagingService *self,
                                                       const char             *group_id);

G_END_DECLS
