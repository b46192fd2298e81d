/* natter-lan-discovery.h: finding contacts on the local network
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

#include "natter-identity.h"

G_BEGIN_DECLS

/* LAN discovery announces, by UDP multicast on the allowed interfaces,
 * that this instance is here, in a form that only its contacts can
 * recognise: every announcement carries a fresh random nonce and, for each
 * contact, a tag keyed with the secret the two of them share.  A stranger
 * sees random bytes that change with every announcement.  The format is in
 * docs/lan-discovery.md.
 *
 * A contact that is found can be sent signaling blobs for a
 * NatterPeerConnection by unicast UDP, sealed to the contact and signed by
 * us, so two peers on one LAN connect without any server.
 *
 * The object lives on the thread that runs the GMainContext it was given:
 * its sockets and timers are attached there and its signals are emitted
 * there. */

#define NATTER_LAN_DISCOVERY_ERROR (natter_lan_discovery_error_quark ())

typedef enum
{
  NATTER_LAN_DISCOVERY_ERROR_NO_INTERFACE,  /* no allowed interface with IPv4 and multicast */
  NATTER_LAN_DISCOVERY_ERROR_SOCKET,        /* a socket could not be set up */
  NATTER_LAN_DISCOVERY_ERROR_STATE,         /* not valid now (not started, started twice) */
  NATTER_LAN_DISCOVERY_ERROR_UNKNOWN_PEER,  /* not a contact, or not found on the LAN */
  NATTER_LAN_DISCOVERY_ERROR_MALFORMED,     /* a datagram that is not ours, or damaged */
  NATTER_LAN_DISCOVERY_ERROR_REJECTED,      /* well formed but not acceptable */
  NATTER_LAN_DISCOVERY_ERROR_TOO_LARGE,
} NatterLanDiscoveryError;

GQuark natter_lan_discovery_error_quark (void);

/* The IPv4 group and port, administratively scoped (RFC 2365); TTL 1. */
#define NATTER_LAN_DISCOVERY_GROUP      "239.255.78.84"
#define NATTER_LAN_DISCOVERY_PORT       51843
/* Announcements go out on start and about every this many milliseconds
 * (±20 % jitter); a contact is lost after NATTER_LAN_DISCOVERY_LOST_INTERVALS
 * intervals without one. */
#define NATTER_LAN_DISCOVERY_INTERVAL_MS    5000
#define NATTER_LAN_DISCOVERY_LOST_INTERVALS 3
/* Limits: contacts considered, tags per announcement (more contacts are
 * covered in turn by successive announcements), and datagram sizes. */
#define NATTER_LAN_DISCOVERY_MAX_CONTACTS   1024
#define NATTER_LAN_DISCOVERY_MAX_TAGS       48
#define NATTER_LAN_DISCOVERY_MAX_NEARBY     64
#define NATTER_LAN_DISCOVERY_MAX_DATAGRAM   1400

typedef struct
{
  guint64 announcements_sent;
  guint64 announcements_received;   /* well formed, from anyone */
  guint64 announcements_recognised;  /* from a contact */
  guint64 dropped_malformed;         /* bad magic, version, length or field */
  guint64 dropped_oversized;
  guint64 dropped_rate;              /* well formed, over the checking rate limit */
  guint64 reveals_received;          /* delivered as "nearby-revealed" */
  guint64 signals_sent;
  guint64 signals_received;          /* delivered as "signal-received" */
  guint64 signals_dropped_malformed; /* bad framing, or not sealed to us */
  guint64 signals_dropped_rejected;  /* not a contact, bad signature, stale or replayed */
  guint64 signals_dropped_rate;      /* over the receive rate limit */
  guint64 send_errors;
} NatterLanDiscoveryStats;

#define NATTER_TYPE_LAN_DISCOVERY (natter_lan_discovery_get_type ())
G_DECLARE_FINAL_TYPE (NatterLanDiscovery, natter_lan_discovery, NATTER, LAN_DISCOVERY, GObject)

/* @context: where sockets and timers run (NULL: the thread-default one).
 * @interfaces: the interfaces to use, by name; NULL or empty means every
 * interface that is up, has IPv4 and multicast, and is not loopback.  The
 * NATTER_INTERFACES environment variable, when set, wins. */
NatterLanDiscovery *natter_lan_discovery_new (GMainContext       *context,
                                              NatterIdentity     *identity,
                                              const char * const *interfaces);

/* The peer IDs to look for and to announce ourselves to.  Invalid IDs and
 * our own are skipped; at most NATTER_LAN_DISCOVERY_MAX_CONTACTS are kept.
 * A contact that is removed while found is reported lost. */
void     natter_lan_discovery_set_contacts     (NatterLanDiscovery  *self,
                                                const char * const  *peer_ids);
/* Discoverable (default off): announcements also carry a random handle
 * for this run so that strangers list us as "someone nearby", without our
 * peer ID.  Strangers that are discoverable are reported either way. */
void     natter_lan_discovery_set_discoverable (NatterLanDiscovery  *self,
                                                gboolean             discoverable);
gboolean natter_lan_discovery_get_discoverable (NatterLanDiscovery  *self);
/* Our handle for this run (hex), as strangers list us, whether or not we
 * are discoverable now. */
char    *natter_lan_discovery_dup_handle       (NatterLanDiscovery  *self);

/* Tells the stranger listed as @handle ("nearby-found") who we are: our
 * peer ID, signed and sealed to a key only that stranger holds.  It is
 * reported there as "nearby-revealed".  An explicit choice of the user. */
gboolean natter_lan_discovery_reveal_to_nearby (NatterLanDiscovery  *self,
                                                const char          *handle,
                                                GError             **error);

/* For tests and special set-ups; only before start(). 0 keeps the default. */
void     natter_lan_discovery_set_port         (NatterLanDiscovery  *self,
                                                guint16              port);
void     natter_lan_discovery_set_interval     (NatterLanDiscovery  *self,
                                                guint                interval_ms);

gboolean natter_lan_discovery_start            (NatterLanDiscovery  *self,
                                                GError             **error);
/* Closes the sockets; contacts found are reported lost. */
void     natter_lan_discovery_stop             (NatterLanDiscovery  *self);

/* Sends @blob (at most NATTER_PEER_MAX_SIGNAL_LEN bytes) to @peer_id, a
 * contact that has been found, by unicast to the address it announced
 * from: sealed to it, signed by us. */
gboolean natter_lan_discovery_send_signal      (NatterLanDiscovery  *self,
                                                const char          *peer_id,
                                                GBytes              *blob,
                                                GError             **error);

/* The address @peer_id announced from, or NULL when it is not found. */
GInetSocketAddress *natter_lan_discovery_dup_contact_address (NatterLanDiscovery *self,
                                                              const char         *peer_id);

void     natter_lan_discovery_get_stats        (NatterLanDiscovery      *self,
                                                NatterLanDiscoveryStats *stats);

G_END_DECLS
