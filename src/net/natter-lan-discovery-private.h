/* natter-lan-discovery-private.h: the wire formats, for tests
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include "natter-lan-discovery.h"

G_BEGIN_DECLS

#define NATTER_LAN_NONCE_LEN     16
#define NATTER_LAN_HANDLE_LEN    8
#define NATTER_LAN_REVEAL_KEY_LEN 32
/* A discoverable announcement's extra block: handle, then the X25519 key
 * a peer ID may be revealed to. */
#define NATTER_LAN_DISCOVERABLE_LEN (NATTER_LAN_HANDLE_LEN + NATTER_LAN_REVEAL_KEY_LEN)
#define NATTER_LAN_TAG_LEN       16
#define NATTER_LAN_HEADER_LEN    (8 + NATTER_LAN_NONCE_LEN)
#define NATTER_LAN_TAG_GROUP     8   /* tags are padded to a multiple of this */
#define NATTER_LAN_FLAG_DISCOVERABLE 0x01

/* One contact, with the keys derived for it. */
typedef struct
{
  char   *peer_id;
  guint8  public_key[NATTER_PUBLIC_KEY_LEN];
  guint8  key_out[32];   /* tags we send to it */
  guint8  key_in[32];    /* tags it sends to us */
} NatterLanContact;

NatterLanContact *natter_lan_contact_new  (NatterIdentity   *self,
                                           const char       *peer_id,
                                           GError          **error);
void              natter_lan_contact_free (NatterLanContact *contact);

typedef struct
{
  guint8        flags;
  const guint8 *nonce;    /* NATTER_LAN_NONCE_LEN */
  const guint8 *handle;   /* NATTER_LAN_HANDLE_LEN, or NULL */
  const guint8 *reveal_key; /* NATTER_LAN_REVEAL_KEY_LEN, with the handle */
  const guint8 *tags;     /* n_tags * NATTER_LAN_TAG_LEN */
  guint         n_tags;
  const guint8 *data;     /* the whole datagram */
  gsize         len;
} NatterLanAnnouncement;

/* Builds an announcement with tags for @contacts (NatterLanContact *),
 * starting at @first and wrapping, at most NATTER_LAN_DISCOVERY_MAX_TAGS,
 * padded with random tags; @discoverable (NATTER_LAN_DISCOVERABLE_LEN
 * bytes) non-NULL marks it discoverable. */
GBytes  *natter_lan_announcement_build (GPtrArray                   *contacts,
                                        guint                        first,
                                        const guint8                *discoverable);
/* Checks the framing of untrusted bytes; @out points into @data. */
gboolean natter_lan_announcement_parse (const guint8                *data,
                                        gsize                        len,
                                        NatterLanAnnouncement       *out,
                                        GError                     **error);
/* The contact among @contacts that sent @announcement, or NULL. */
NatterLanContact *natter_lan_announcement_find_sender (const NatterLanAnnouncement *announcement,
                                                       GPtrArray                   *contacts);

/* Unicast signaling datagrams. */
GBytes  *natter_lan_signal_pack   (NatterIdentity   *self,
                                   const char       *recipient_peer_id,
                                   GBytes           *blob,
                                   gint64            now_ms,
                                   GError          **error);
/* Opens and verifies; on success @sender_public_key and @message_id (for
 * replay checks) are set.  The sender's contact status is the caller's. */
GBytes  *natter_lan_signal_unpack (NatterIdentity   *self,
                                   const guint8     *data,
                                   gsize             len,
                                   gint64            now_ms,
                                   guint8            sender_public_key[NATTER_PUBLIC_KEY_LEN],
                                   guint8            message_id[16],
                                   GError          **error);

/* Revealing one's peer ID to someone nearby: sealed to its per-run
 * @reveal_key, signed over that key. */
GBytes  *natter_lan_reveal_pack   (NatterIdentity   *self,
                                   const guint8     *reveal_key,
                                   GError          **error);
/* Opens with the per-run key pair; returns the revealed peer ID. */
char    *natter_lan_reveal_unpack (const guint8     *reveal_public,
                                   const guint8     *reveal_secret,
                                   const guint8     *data,
                                   gsize             len,
                                   GError          **error);

/* Feeds a datagram as if it had arrived from @from, for tests. */
void     natter_lan_discovery_handle_announcement (NatterLanDiscovery *self,
                                                   const guint8       *data,
                                                   gsize               len,
                                                   GInetSocketAddress *from);
void     natter_lan_discovery_handle_signal       (NatterLanDiscovery *self,
                                                   const guint8       *data,
                                                   gsize               len,
                                                   GInetSocketAddress *from);

G_END_DECLS
