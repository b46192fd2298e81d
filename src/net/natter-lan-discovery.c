/* natter-lan-discovery.c: finding contacts on the local network
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sodium.h>

#include "natter-lan-discovery.h"
#include "natter-lan-discovery-private.h"
#include "natter-peer-connection.h"
#include "natter-signal-seal.h"

#define ANNOUNCE_MAGIC   "NTLA"
#define SIGNAL_MAGIC     "NTLS"
#define REVEAL_MAGIC     "NTLR"
#define WIRE_VERSION     1

#define PAIR_CONTEXT     "natter-lan-pair-v1"
#define DIR_CONTEXT      "natter-lan-dir-v1"
#define TAG_CONTEXT      "natter-lan-tag-v1"
#define SIGNAL_CONTEXT   "natter-lan-signal-v1"
#define REVEAL_CONTEXT   "natter-lan-reveal-v1"
#define REVEAL_PLAIN_LEN (NATTER_PUBLIC_KEY_LEN + NATTER_SIGNATURE_LEN)
#define REVEAL_LEN       (5 + crypto_box_SEALBYTES + REVEAL_PLAIN_LEN)

/* Signal plaintext: sender key, message id, time, signature, blob. */
#define SIGNAL_ID_LEN        16
#define SIGNAL_FIXED_LEN     (NATTER_PUBLIC_KEY_LEN + SIGNAL_ID_LEN + 8)
#define SIGNAL_PLAIN_MIN     (SIGNAL_FIXED_LEN + NATTER_SIGNATURE_LEN + 1)
#define SIGNAL_PLAIN_MAX     (SIGNAL_FIXED_LEN + NATTER_SIGNATURE_LEN + NATTER_PEER_MAX_SIGNAL_LEN)
#define SIGNAL_MAX_AGE_MS    (120 * 1000)
#define SIGNAL_SEEN_IDS      256
#define SIGNAL_RATE          100.0   /* datagrams per second, ... */
#define SIGNAL_BURST         200.0   /* ... with this burst */
#define ANNOUNCE_RATE        200.0   /* announcements checked per second, ... */
#define ANNOUNCE_BURST       400.0   /* ... with this burst */
#define RECEIVE_BATCH        64      /* datagrams read per wake-up */

G_DEFINE_QUARK (natter-lan-discovery-error-quark, natter_lan_discovery_error)

/* ---- Keys and the announcement ----------------------------------------- */

void
natter_lan_contact_free (NatterLanContact *contact)
{
  if (contact == NULL)
    return;
  sodium_memzero (contact->key_out, sizeof contact->key_out);
  sodium_memzero (contact->key_in, sizeof contact->key_in);
  g_free (contact->peer_id);
  g_free (contact);
}

static void
derive_direction_key (const guint8 *pair_key,
                      const guint8 *from_key,
                      const guint8 *to_key,
                      guint8        out[32])
{
  crypto_generichash_state state;

  crypto_generichash_init (&state, pair_key, 32, 32);
  crypto_generichash_update (&state, (const guint8 *) DIR_CONTEXT, strlen (DIR_CONTEXT));
  crypto_generichash_update (&state, from_key, NATTER_PUBLIC_KEY_LEN);
  crypto_generichash_update (&state, to_key, NATTER_PUBLIC_KEY_LEN);
  crypto_generichash_final (&state, out, 32);
}

NatterLanContact *
natter_lan_contact_new (NatterIdentity  *self,
                        const char      *peer_id,
                        GError         **error)
{
  NatterLanContact *contact;
  const guint8 *own_key = natter_identity_get_public_key (self);
  guint8 their_x25519[NATTER_X25519_KEY_LEN];
  guint8 shared[32];
  guint8 pair_key[32];
  crypto_generichash_state state;
  const guint8 *low, *high;

  contact = g_new0 (NatterLanContact, 1);
  if (!natter_peer_id_parse (peer_id, contact->public_key, error) ||
      !natter_public_key_to_x25519 (contact->public_key, their_x25519, error))
    {
      natter_lan_contact_free (contact);
      return NULL;
    }
  if (memcmp (contact->public_key, own_key, NATTER_PUBLIC_KEY_LEN) == 0 ||
      crypto_scalarmult (shared, natter_identity_get_x25519_secret (self), their_x25519) != 0)
    {
      g_set_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_UNKNOWN_PEER,
                   "Peer %s cannot be a contact", peer_id);
      natter_lan_contact_free (contact);
      return NULL;
    }

  /* The pair key binds the DH result to both identities, in a fixed order. */
  if (memcmp (own_key, contact->public_key, NATTER_PUBLIC_KEY_LEN) < 0)
    low = own_key, high = contact->public_key;
  else
    low = contact->public_key, high = own_key;
  crypto_generichash_init (&state, NULL, 0, 32);
  crypto_generichash_update (&state, (const guint8 *) PAIR_CONTEXT, strlen (PAIR_CONTEXT));
  crypto_generichash_update (&state, shared, sizeof shared);
  crypto_generichash_update (&state, low, NATTER_PUBLIC_KEY_LEN);
  crypto_generichash_update (&state, high, NATTER_PUBLIC_KEY_LEN);
  crypto_generichash_final (&state, pair_key, sizeof pair_key);

  /* One key per direction, so an announcement reflected back to its
   * sender is not taken for one from the contact. */
  derive_direction_key (pair_key, own_key, contact->public_key, contact->key_out);
  derive_direction_key (pair_key, contact->public_key, own_key, contact->key_in);

  sodium_memzero (shared, sizeof shared);
  sodium_memzero (pair_key, sizeof pair_key);
  contact->peer_id = natter_peer_id_from_public_key (contact->public_key);
  return contact;
}

/* The tag covers everything before the tags: header, nonce and the
 * discoverable block. */
static void
compute_tag (const guint8 *key,
             const guint8 *covered,
             gsize         covered_len,
             guint8        tag[NATTER_LAN_TAG_LEN])
{
  crypto_generichash_state state;

  crypto_generichash_init (&state, key, 32, NATTER_LAN_TAG_LEN);
  crypto_generichash_update (&state, (const guint8 *) TAG_CONTEXT, strlen (TAG_CONTEXT));
  crypto_generichash_update (&state, covered, covered_len);
  crypto_generichash_final (&state, tag, NATTER_LAN_TAG_LEN);
}

GBytes *
natter_lan_announcement_build (GPtrArray    *contacts,
                               guint         first,
                               const guint8 *discoverable)
{
  guint n_contacts = contacts != NULL ? MIN (contacts->len, NATTER_LAN_DISCOVERY_MAX_TAGS) : 0;
  /* Padding to a multiple of 8 hides the exact number of contacts. */
  guint n_tags = MAX (NATTER_LAN_TAG_GROUP,
                      (n_contacts + NATTER_LAN_TAG_GROUP - 1) / NATTER_LAN_TAG_GROUP * NATTER_LAN_TAG_GROUP);
  gsize covered = NATTER_LAN_HEADER_LEN + (discoverable != NULL ? NATTER_LAN_DISCOVERABLE_LEN : 0);
  gsize len = covered + (gsize) n_tags * NATTER_LAN_TAG_LEN;
  guint8 *data = g_malloc0 (len);
  guint8 *tags = data + covered;
  guint *order;

  memcpy (data, ANNOUNCE_MAGIC, 4);
  data[4] = WIRE_VERSION;
  data[5] = discoverable != NULL ? NATTER_LAN_FLAG_DISCOVERABLE : 0;
  data[6] = (guint8) n_tags;
  data[7] = 0;
  randombytes_buf (data + 8, NATTER_LAN_NONCE_LEN);
  if (discoverable != NULL)
    memcpy (data + NATTER_LAN_HEADER_LEN, discoverable, NATTER_LAN_DISCOVERABLE_LEN);

  /* Fill every slot with noise, then put the real tags in random slots. */
  randombytes_buf (tags, (gsize) n_tags * NATTER_LAN_TAG_LEN);
  order = g_new (guint, n_tags);
  for (guint i = 0; i < n_tags; i++)
    order[i] = i;
  for (guint i = n_tags - 1; i > 0; i--)
    {
      guint j = randombytes_uniform (i + 1);
      guint t = order[i];

      order[i] = order[j];
      order[j] = t;
    }
  for (guint i = 0; i < n_contacts; i++)
    {
      NatterLanContact *contact = g_ptr_array_index (contacts, (first + i) % contacts->len);

      compute_tag (contact->key_out, data, covered, tags + (gsize) order[i] * NATTER_LAN_TAG_LEN);
    }
  g_free (order);

  return g_bytes_new_take (data, len);
}

gboolean
natter_lan_announcement_parse (const guint8           *data,
                               gsize                   len,
                               NatterLanAnnouncement  *out,
                               GError                **error)
{
  gsize covered;
  guint n_tags;

  memset (out, 0, sizeof *out);
  if (len > NATTER_LAN_DISCOVERY_MAX_DATAGRAM)
    {
      g_set_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_TOO_LARGE,
                   "Announcement of %" G_GSIZE_FORMAT " bytes", len);
      return FALSE;
    }
  if (len < NATTER_LAN_HEADER_LEN || memcmp (data, ANNOUNCE_MAGIC, 4) != 0 ||
      data[4] != WIRE_VERSION || (data[5] & ~NATTER_LAN_FLAG_DISCOVERABLE) != 0 ||
      data[7] != 0)
    {
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_MALFORMED,
                           "Not a Natter announcement");
      return FALSE;
    }

  n_tags = data[6];
  covered = NATTER_LAN_HEADER_LEN + ((data[5] & NATTER_LAN_FLAG_DISCOVERABLE) ? NATTER_LAN_DISCOVERABLE_LEN : 0);
  if (n_tags == 0 || n_tags > NATTER_LAN_DISCOVERY_MAX_TAGS || n_tags % NATTER_LAN_TAG_GROUP != 0 ||
      len != covered + (gsize) n_tags * NATTER_LAN_TAG_LEN)
    {
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_MALFORMED,
                           "Announcement with a wrong length or tag count");
      return FALSE;
    }

  out->flags = data[5];
  out->nonce = data + 8;
  out->handle = (data[5] & NATTER_LAN_FLAG_DISCOVERABLE) ? data + NATTER_LAN_HEADER_LEN : NULL;
  out->reveal_key = out->handle != NULL ? out->handle + NATTER_LAN_HANDLE_LEN : NULL;
  out->tags = data + covered;
  out->n_tags = n_tags;
  out->data = data;
  out->len = len;
  return TRUE;
}

NatterLanContact *
natter_lan_announcement_find_sender (const NatterLanAnnouncement *announcement,
                                     GPtrArray                   *contacts)
{
  gsize covered = announcement->tags - announcement->data;

  if (contacts == NULL)
    return NULL;

  /* One hash per contact and a compare per tag: bounded by the caps on
   * both. */
  for (guint c = 0; c < contacts->len && c < NATTER_LAN_DISCOVERY_MAX_CONTACTS; c++)
    {
      NatterLanContact *contact = g_ptr_array_index (contacts, c);
      guint8 expected[NATTER_LAN_TAG_LEN];

      compute_tag (contact->key_in, announcement->data, covered, expected);
      for (guint t = 0; t < announcement->n_tags; t++)
        if (sodium_memcmp (expected, announcement->tags + (gsize) t * NATTER_LAN_TAG_LEN,
                           NATTER_LAN_TAG_LEN) == 0)
          return contact;
    }
  return NULL;
}

/* ---- Signaling datagrams ------------------------------------------------ */

GBytes *
natter_lan_signal_pack (NatterIdentity  *self,
                        const char      *recipient_peer_id,
                        GBytes          *blob,
                        gint64           now_ms,
                        GError         **error)
{
  guint8 recipient_key[NATTER_PUBLIC_KEY_LEN];
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GBytes) sealed = NULL;
  guint8 signature[NATTER_SIGNATURE_LEN];
  gsize blob_len;
  const guint8 *blob_data = g_bytes_get_data (blob, &blob_len);
  guint8 *p;
  gsize sealed_len;
  const guint8 *sealed_data;
  guint8 *out;
  guint64 be_time;

  if (blob_len == 0 || blob_len > NATTER_PEER_MAX_SIGNAL_LEN)
    {
      g_set_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_TOO_LARGE,
                   "Signal of %" G_GSIZE_FORMAT " bytes", blob_len);
      return NULL;
    }
  if (!natter_peer_id_parse (recipient_peer_id, recipient_key, error))
    return NULL;

  p = g_malloc (SIGNAL_FIXED_LEN + NATTER_SIGNATURE_LEN + blob_len);
  memcpy (p, natter_identity_get_public_key (self), NATTER_PUBLIC_KEY_LEN);
  randombytes_buf (p + NATTER_PUBLIC_KEY_LEN, SIGNAL_ID_LEN);
  be_time = GUINT64_TO_BE ((guint64) now_ms);
  memcpy (p + NATTER_PUBLIC_KEY_LEN + SIGNAL_ID_LEN, &be_time, 8);

  /* Signed: context, recipient key, sender key, id, time and blob. */
  {
    gsize ctx_len = strlen (SIGNAL_CONTEXT);
    gsize total = ctx_len + NATTER_PUBLIC_KEY_LEN + SIGNAL_FIXED_LEN + blob_len;
    g_autofree guint8 *signed_bytes = g_malloc (total);

    memcpy (signed_bytes, SIGNAL_CONTEXT, ctx_len);
    memcpy (signed_bytes + ctx_len, recipient_key, NATTER_PUBLIC_KEY_LEN);
    memcpy (signed_bytes + ctx_len + NATTER_PUBLIC_KEY_LEN, p, SIGNAL_FIXED_LEN);
    memcpy (signed_bytes + ctx_len + NATTER_PUBLIC_KEY_LEN + SIGNAL_FIXED_LEN, blob_data, blob_len);
    natter_identity_sign (self, signed_bytes, total, signature);
  }
  memcpy (p + SIGNAL_FIXED_LEN, signature, NATTER_SIGNATURE_LEN);
  memcpy (p + SIGNAL_FIXED_LEN + NATTER_SIGNATURE_LEN, blob_data, blob_len);
  plain = g_bytes_new_take (p, SIGNAL_FIXED_LEN + NATTER_SIGNATURE_LEN + blob_len);

  sealed = natter_signal_seal (recipient_peer_id, plain, error);
  if (sealed == NULL)
    return NULL;

  sealed_data = g_bytes_get_data (sealed, &sealed_len);
  out = g_malloc (5 + sealed_len);
  memcpy (out, SIGNAL_MAGIC, 4);
  out[4] = WIRE_VERSION;
  memcpy (out + 5, sealed_data, sealed_len);
  return g_bytes_new_take (out, 5 + sealed_len);
}

GBytes *
natter_lan_signal_unpack (NatterIdentity  *self,
                          const guint8    *data,
                          gsize            len,
                          gint64           now_ms,
                          guint8           sender_public_key[NATTER_PUBLIC_KEY_LEN],
                          guint8           message_id[16],
                          GError         **error)
{
  g_autoptr(GBytes) sealed = NULL;
  g_autoptr(GBytes) plain = NULL;
  const guint8 *p;
  gsize plain_len;
  guint64 be_time;
  gint64 sent_ms;
  gsize ctx_len = strlen (SIGNAL_CONTEXT);
  gsize blob_len;
  gsize total;
  g_autofree guint8 *signed_bytes = NULL;

  if (len > NATTER_LAN_DISCOVERY_MAX_DATAGRAM)
    {
      g_set_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_TOO_LARGE,
                   "Signal datagram of %" G_GSIZE_FORMAT " bytes", len);
      return NULL;
    }
  if (len < 5 + NATTER_SIGNAL_SEAL_OVERHEAD + SIGNAL_PLAIN_MIN ||
      len > 5 + NATTER_SIGNAL_SEAL_OVERHEAD + SIGNAL_PLAIN_MAX ||
      memcmp (data, SIGNAL_MAGIC, 4) != 0 || data[4] != WIRE_VERSION)
    {
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_MALFORMED,
                           "Not a Natter signal datagram");
      return NULL;
    }

  sealed = g_bytes_new (data + 5, len - 5);
  plain = natter_signal_open (self, sealed, NULL);
  if (plain == NULL)
    {
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_MALFORMED,
                           "Signal datagram not sealed to us, or altered");
      return NULL;
    }

  p = g_bytes_get_data (plain, &plain_len);
  g_assert (plain_len >= SIGNAL_PLAIN_MIN);
  blob_len = plain_len - SIGNAL_FIXED_LEN - NATTER_SIGNATURE_LEN;

  total = ctx_len + NATTER_PUBLIC_KEY_LEN + SIGNAL_FIXED_LEN + blob_len;
  signed_bytes = g_malloc (total);
  memcpy (signed_bytes, SIGNAL_CONTEXT, ctx_len);
  memcpy (signed_bytes + ctx_len, natter_identity_get_public_key (self), NATTER_PUBLIC_KEY_LEN);
  memcpy (signed_bytes + ctx_len + NATTER_PUBLIC_KEY_LEN, p, SIGNAL_FIXED_LEN);
  memcpy (signed_bytes + ctx_len + NATTER_PUBLIC_KEY_LEN + SIGNAL_FIXED_LEN,
          p + SIGNAL_FIXED_LEN + NATTER_SIGNATURE_LEN, blob_len);
  if (!natter_verify_signature (p, signed_bytes, total, p + SIGNAL_FIXED_LEN, NULL))
    {
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_REJECTED,
                           "Signal datagram with a bad signature");
      return NULL;
    }

  memcpy (&be_time, p + NATTER_PUBLIC_KEY_LEN + SIGNAL_ID_LEN, 8);
  sent_ms = (gint64) GUINT64_FROM_BE (be_time);
  if (sent_ms < now_ms - SIGNAL_MAX_AGE_MS || sent_ms > now_ms + SIGNAL_MAX_AGE_MS)
    {
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_REJECTED,
                           "Signal datagram too old or from the future");
      return NULL;
    }

  memcpy (sender_public_key, p, NATTER_PUBLIC_KEY_LEN);
  memcpy (message_id, p + NATTER_PUBLIC_KEY_LEN, SIGNAL_ID_LEN);
  return g_bytes_new (p + SIGNAL_FIXED_LEN + NATTER_SIGNATURE_LEN, blob_len);
}

/* ---- Revealing to someone nearby ------------------------------------------ */

static guint8 *
reveal_signed_bytes (const guint8 *reveal_key,
                     const guint8 *public_key,
                     gsize        *len)
{
  gsize ctx_len = strlen (REVEAL_CONTEXT);
  guint8 *bytes = g_malloc (ctx_len + NATTER_LAN_REVEAL_KEY_LEN + NATTER_PUBLIC_KEY_LEN);

  memcpy (bytes, REVEAL_CONTEXT, ctx_len);
  memcpy (bytes + ctx_len, reveal_key, NATTER_LAN_REVEAL_KEY_LEN);
  memcpy (bytes + ctx_len + NATTER_LAN_REVEAL_KEY_LEN, public_key, NATTER_PUBLIC_KEY_LEN);
  *len = ctx_len + NATTER_LAN_REVEAL_KEY_LEN + NATTER_PUBLIC_KEY_LEN;
  return bytes;
}

GBytes *
natter_lan_reveal_pack (NatterIdentity  *self,
                        const guint8    *reveal_key,
                        GError         **error)
{
  guint8 plain[REVEAL_PLAIN_LEN];
  guint8 *out;
  gsize signed_len;
  g_autofree guint8 *signed_bytes = NULL;

  /* The signature names the recipient's per-run key, so the reveal means
   * nothing to anyone else and cannot be replayed to another run. */
  memcpy (plain, natter_identity_get_public_key (self), NATTER_PUBLIC_KEY_LEN);
  signed_bytes = reveal_signed_bytes (reveal_key, plain, &signed_len);
  natter_identity_sign (self, signed_bytes, signed_len, plain + NATTER_PUBLIC_KEY_LEN);

  out = g_malloc (REVEAL_LEN);
  memcpy (out, REVEAL_MAGIC, 4);
  out[4] = WIRE_VERSION;
  if (crypto_box_seal (out + 5, plain, sizeof plain, reveal_key) != 0)
    {
      g_free (out);
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_REJECTED,
                           "Not a usable key to reveal to");
      return NULL;
    }
  return g_bytes_new_take (out, REVEAL_LEN);
}

char *
natter_lan_reveal_unpack (const guint8  *reveal_public,
                          const guint8  *reveal_secret,
                          const guint8  *data,
                          gsize          len,
                          GError       **error)
{
  guint8 plain[REVEAL_PLAIN_LEN];
  gsize signed_len;
  g_autofree guint8 *signed_bytes = NULL;

  if (len != REVEAL_LEN || memcmp (data, REVEAL_MAGIC, 4) != 0 || data[4] != WIRE_VERSION ||
      crypto_box_seal_open (plain, data + 5, len - 5, reveal_public, reveal_secret) != 0)
    {
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_MALFORMED,
                           "Not a reveal sealed to us");
      return NULL;
    }
  signed_bytes = reveal_signed_bytes (reveal_public, plain, &signed_len);
  if (!natter_verify_signature (plain, signed_bytes, signed_len, plain + NATTER_PUBLIC_KEY_LEN, NULL))
    {
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_REJECTED,
                           "Reveal with a bad signature");
      return NULL;
    }
  return natter_peer_id_from_public_key (plain);
}

/* ---- The object ---------------------------------------------------------- */

typedef struct
{
  char         *name;
  guint         index;
  guint32       address;   /* network order */
  guint32       netmask;   /* network order */
  guint16       port;      /* of the socket, host order */
  GSocket      *socket;    /* bound to the interface's address: sends and receives unicast */
  GSource      *source;
} Iface;

typedef struct
{
  GInetSocketAddress *address;
  gint64              last_seen;   /* monotonic, µs */
  guint8              reveal_key[NATTER_LAN_REVEAL_KEY_LEN];   /* nearby only */
} Sighting;

struct _NatterLanDiscovery
{
  GObject          parent_instance;

  GMainContext    *context;
  NatterIdentity  *identity;
  char           **interfaces;
  guint16          port;
  guint            interval_ms;
  gboolean         discoverable;
  guint8           handle[NATTER_LAN_DISCOVERABLE_LEN];   /* handle, reveal key */
  guint8           reveal_secret[NATTER_X25519_KEY_LEN];

  GPtrArray       *contacts;      /* NatterLanContact * */
  guint            rotation;
  GHashTable      *found;         /* peer ID -> Sighting */
  GHashTable      *nearby;        /* handle (hex) -> Sighting */

  gboolean         started;
  GPtrArray       *ifaces;        /* Iface * */
  GSocket         *group_socket;
  GSource         *group_source;
  GSource         *announce_source;
  GSource         *expire_source;
  gint64           last_answer;

  double           tokens;          /* signal rate limit */
  gint64           tokens_at;
  double           announce_tokens; /* announcement rate limit */
  gint64           announce_tokens_at;
  guint8           seen_ids[SIGNAL_SEEN_IDS][SIGNAL_ID_LEN];
  guint            seen_next;
  guint            seen_count;

  NatterLanDiscoveryStats stats;
};

G_DEFINE_FINAL_TYPE (NatterLanDiscovery, natter_lan_discovery, G_TYPE_OBJECT)

enum
{
  SIGNAL_CONTACT_FOUND,
  SIGNAL_CONTACT_LOST,
  SIGNAL_NEARBY_FOUND,
  SIGNAL_NEARBY_LOST,
  SIGNAL_NEARBY_REVEALED,
  SIGNAL_SIGNAL_RECEIVED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void
sighting_free (Sighting *sighting)
{
  g_clear_object (&sighting->address);
  g_free (sighting);
}

static void
iface_free (Iface *iface)
{
  if (iface->source != NULL)
    {
      g_source_destroy (iface->source);
      g_source_unref (iface->source);
    }
  if (iface->socket != NULL)
    g_socket_close (iface->socket, NULL);
  g_clear_object (&iface->socket);
  g_free (iface->name);
  g_free (iface);
}

static void
clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

static GInetSocketAddress *
make_ipv4_address (guint32 address,
                   guint16 port)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_bytes ((const guint8 *) &address,
                                                                G_SOCKET_FAMILY_IPV4);

  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (inet, port));
}

static gboolean
address_to_ipv4 (GInetSocketAddress *address,
                 guint32            *out)
{
  GInetAddress *inet = g_inet_socket_address_get_address (address);

  if (g_inet_address_get_family (inet) != G_SOCKET_FAMILY_IPV4)
    return FALSE;
  memcpy (out, g_inet_address_to_bytes (inet), 4);
  return TRUE;
}

static gboolean
is_own_address (NatterLanDiscovery *self,
                GInetSocketAddress *from)
{
  guint32 address;
  guint16 port = g_inet_socket_address_get_port (from);

  if (self->ifaces == NULL || !address_to_ipv4 (from, &address))
    return FALSE;
  for (guint i = 0; i < self->ifaces->len; i++)
    {
      Iface *iface = g_ptr_array_index (self->ifaces, i);

      if (iface->address == address && iface->port == port)
        return TRUE;
    }
  return FALSE;
}

static gboolean
take_token (double *tokens,
            gint64 *tokens_at,
            double  rate,
            double  burst)
{
  gint64 now = g_get_monotonic_time ();

  *tokens = MIN (burst, *tokens + (now - *tokens_at) * rate / G_USEC_PER_SEC);
  *tokens_at = now;
  if (*tokens < 1.0)
    return FALSE;
  *tokens -= 1.0;
  return TRUE;
}

/* Records a sighting; TRUE when it is new or its address changed. */
static gboolean
record_sighting (GHashTable         *table,
                 const char         *key,
                 GInetSocketAddress *from)
{
  Sighting *sighting = g_hash_table_lookup (table, key);
  gboolean changed = FALSE;

  if (sighting == NULL)
    {
      sighting = g_new0 (Sighting, 1);
      g_hash_table_insert (table, g_strdup (key), sighting);
      changed = TRUE;
    }
  else
    {
      g_autofree char *old = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (sighting->address));
      g_autofree char *new = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (from));

      changed = g_strcmp0 (old, new) != 0;
    }
  if (changed)
    g_set_object (&sighting->address, from);
  sighting->last_seen = g_get_monotonic_time ();
  return changed;
}

static void send_announcements    (NatterLanDiscovery *self);
static void schedule_announcement (NatterLanDiscovery *self);

/* A contact that just appeared has probably just started: announce at once
 * rather than make it wait up to an interval, but at most once per quarter
 * interval, so replayed announcements cannot make us flood. */
static void
answer_new_contact (NatterLanDiscovery *self)
{
  gint64 now = g_get_monotonic_time ();

  if (!self->started || now - self->last_answer < (gint64) self->interval_ms * 1000 / 4)
    return;
  self->last_answer = now;
  send_announcements (self);
  schedule_announcement (self);
}

void
natter_lan_discovery_handle_announcement (NatterLanDiscovery *self,
                                          const guint8       *data,
                                          gsize               len,
                                          GInetSocketAddress *from)
{
  NatterLanAnnouncement announcement;
  NatterLanContact *contact;
  g_autoptr(GError) error = NULL;

  if (is_own_address (self, from))
    return;

  if (!natter_lan_announcement_parse (data, len, &announcement, &error))
    {
      if (g_error_matches (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_TOO_LARGE))
        self->stats.dropped_oversized++;
      else
        self->stats.dropped_malformed++;
      g_debug ("LAN discovery: dropped a datagram: %s", error->message);
      return;
    }
  self->stats.announcements_received++;

  /* Looking for the sender costs a hash per contact: bound the rate. */
  if (!take_token (&self->announce_tokens, &self->announce_tokens_at, ANNOUNCE_RATE, ANNOUNCE_BURST))
    {
      self->stats.dropped_rate++;
      return;
    }

  contact = natter_lan_announcement_find_sender (&announcement, self->contacts);
  if (contact != NULL)
    {
      g_autofree char *peer_id = g_strdup (contact->peer_id);

      self->stats.announcements_recognised++;
      if (record_sighting (self->found, peer_id, from))
        {
          answer_new_contact (self);
          g_signal_emit (self, signals[SIGNAL_CONTACT_FOUND], 0, peer_id, from);
        }
      return;
    }

  if (announcement.handle != NULL)
    {
      char handle[2 * NATTER_LAN_HANDLE_LEN + 1];

      if (self->discoverable && memcmp (announcement.handle, self->handle, NATTER_LAN_HANDLE_LEN) == 0)
        return;
      sodium_bin2hex (handle, sizeof handle, announcement.handle, NATTER_LAN_HANDLE_LEN);
      /* A bounded list: a flood of made-up handles cannot grow it. */
      if (!g_hash_table_contains (self->nearby, handle) &&
          g_hash_table_size (self->nearby) >= NATTER_LAN_DISCOVERY_MAX_NEARBY)
        return;
      if (record_sighting (self->nearby, handle, from))
        {
          Sighting *sighting = g_hash_table_lookup (self->nearby, handle);

          memcpy (sighting->reveal_key, announcement.reveal_key, NATTER_LAN_REVEAL_KEY_LEN);
          g_signal_emit (self, signals[SIGNAL_NEARBY_FOUND], 0, handle, from);
        }
    }
}

static NatterLanContact *
find_contact_by_key (NatterLanDiscovery *self,
                     const guint8       *public_key)
{
  for (guint i = 0; i < self->contacts->len; i++)
    {
      NatterLanContact *contact = g_ptr_array_index (self->contacts, i);

      if (memcmp (contact->public_key, public_key, NATTER_PUBLIC_KEY_LEN) == 0)
        return contact;
    }
  return NULL;
}


void
natter_lan_discovery_handle_signal (NatterLanDiscovery *self,
                                    const guint8       *data,
                                    gsize               len,
                                    GInetSocketAddress *from)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) blob = NULL;
  guint8 sender_key[NATTER_PUBLIC_KEY_LEN];
  guint8 message_id[SIGNAL_ID_LEN];
  NatterLanContact *contact;
  g_autofree char *peer_id = NULL;

  /* The limit comes before any public-key work. */
  if (!take_token (&self->tokens, &self->tokens_at, SIGNAL_RATE, SIGNAL_BURST))
    {
      self->stats.signals_dropped_rate++;
      return;
    }

  if (len >= 4 && memcmp (data, REVEAL_MAGIC, 4) == 0)
    {
      g_autofree char *revealed = NULL;

      if (!self->discoverable)
        {
          self->stats.signals_dropped_rejected++;
          return;
        }
      revealed = natter_lan_reveal_unpack (self->handle + NATTER_LAN_HANDLE_LEN, self->reveal_secret,
                                           data, len, &error);
      if (revealed == NULL)
        {
          self->stats.signals_dropped_malformed++;
          g_debug ("LAN discovery: dropped a reveal: %s", error->message);
          return;
        }
      self->stats.reveals_received++;
      g_signal_emit (self, signals[SIGNAL_NEARBY_REVEALED], 0, revealed, from);
      return;
    }

  blob = natter_lan_signal_unpack (self->identity, data, len, g_get_real_time () / 1000,
                                   sender_key, message_id, &error);
  if (blob == NULL)
    {
      if (g_error_matches (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_REJECTED))
        self->stats.signals_dropped_rejected++;
      else
        self->stats.signals_dropped_malformed++;
      g_debug ("LAN discovery: dropped a signal datagram: %s", error->message);
      return;
    }

  contact = find_contact_by_key (self, sender_key);
  if (contact == NULL)
    {
      self->stats.signals_dropped_rejected++;
      return;
    }
  for (guint i = 0; i < self->seen_count; i++)
    if (memcmp (self->seen_ids[i], message_id, SIGNAL_ID_LEN) == 0)
      {
        self->stats.signals_dropped_rejected++;
        return;
      }
  memcpy (self->seen_ids[self->seen_next], message_id, SIGNAL_ID_LEN);
  self->seen_next = (self->seen_next + 1) % SIGNAL_SEEN_IDS;
  self->seen_count = MIN (self->seen_count + 1, SIGNAL_SEEN_IDS);

  self->stats.signals_received++;
  peer_id = g_strdup (contact->peer_id);

  /* A sealed, signed and fresh signal proves the contact is here as well
   * as an announcement does, and it may come first: the contact heard our
   * announcement before we heard one of its. */
  if (record_sighting (self->found, peer_id, from))
    g_signal_emit (self, signals[SIGNAL_CONTACT_FOUND], 0, peer_id, from);
  g_signal_emit (self, signals[SIGNAL_SIGNAL_RECEIVED], 0, peer_id, blob);
}

typedef void (*DatagramHandler) (NatterLanDiscovery *self,
                                 const guint8       *data,
                                 gsize               len,
                                 GInetSocketAddress *from);

static gboolean
receive_datagrams (NatterLanDiscovery *self,
                   GSocket            *socket,
                   DatagramHandler     handler)
{
  g_autoptr(NatterLanDiscovery) hold = g_object_ref (self);
  guint8 buffer[NATTER_LAN_DISCOVERY_MAX_DATAGRAM + 1];

  for (guint i = 0; i < RECEIVE_BATCH && self->started; i++)
    {
      g_autoptr(GSocketAddress) from = NULL;
      g_autoptr(GError) error = NULL;
      gssize n;

      n = g_socket_receive_from (socket, &from, (char *) buffer, sizeof buffer, NULL, &error);
      if (n < 0)
        {
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            g_debug ("LAN discovery: receive failed: %s", error->message);
          break;
        }
      if (!G_IS_INET_SOCKET_ADDRESS (from))
        continue;
      if ((gsize) n > NATTER_LAN_DISCOVERY_MAX_DATAGRAM)
        {
          if (handler == natter_lan_discovery_handle_signal)
            self->stats.signals_dropped_malformed++;
          else
            self->stats.dropped_oversized++;
          continue;
        }
      handler (self, buffer, n, G_INET_SOCKET_ADDRESS (from));
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
group_readable_cb (GSocket      *socket,
                   GIOCondition  condition,
                   gpointer      user_data)
{
  return receive_datagrams (user_data, socket, natter_lan_discovery_handle_announcement);
}

static gboolean
iface_readable_cb (GSocket      *socket,
                   GIOCondition  condition,
                   gpointer      user_data)
{
  return receive_datagrams (user_data, socket, natter_lan_discovery_handle_signal);
}

static void
send_announcements (NatterLanDiscovery *self)
{
  g_autoptr(GInetAddress) group = g_inet_address_new_from_string (NATTER_LAN_DISCOVERY_GROUP);
  g_autoptr(GSocketAddress) destination = g_inet_socket_address_new (group, self->port);

  for (guint i = 0; i < self->ifaces->len; i++)
    {
      Iface *iface = g_ptr_array_index (self->ifaces, i);
      g_autoptr(GBytes) announcement = NULL;
      g_autoptr(GError) error = NULL;
      gsize len;
      const guint8 *data;

      /* A fresh nonce per interface and per round. */
      announcement = natter_lan_announcement_build (self->contacts, self->rotation,
                                                    self->discoverable ? self->handle : NULL);
      data = g_bytes_get_data (announcement, &len);
      if (g_socket_send_to (iface->socket, destination, (const char *) data, len, NULL, &error) < 0)
        {
          self->stats.send_errors++;
          g_debug ("LAN discovery: announcing on %s failed: %s", iface->name, error->message);
        }
      else
        self->stats.announcements_sent++;
    }

  if (self->contacts->len > NATTER_LAN_DISCOVERY_MAX_TAGS)
    self->rotation = (self->rotation + NATTER_LAN_DISCOVERY_MAX_TAGS) % self->contacts->len;
  else
    self->rotation = 0;
}

static gboolean announce_cb (gpointer user_data);

static void
schedule_announcement (NatterLanDiscovery *self)
{
  /* ±20 % jitter, so instances started together drift apart. */
  guint delay = self->interval_ms * 4 / 5 + randombytes_uniform (self->interval_ms * 2 / 5 + 1);

  clear_source (&self->announce_source);
  self->announce_source = g_timeout_source_new (delay);
  g_source_set_callback (self->announce_source, announce_cb, self, NULL);
  g_source_set_static_name (self->announce_source, "[natter] LAN announcement");
  g_source_attach (self->announce_source, self->context);
}

static gboolean
announce_cb (gpointer user_data)
{
  NatterLanDiscovery *self = user_data;

  send_announcements (self);
  schedule_announcement (self);
  return G_SOURCE_REMOVE;
}

static void
expire_table (NatterLanDiscovery *self,
              GHashTable         *table,
              guint               lost_signal,
              gboolean            everything)
{
  gint64 limit = g_get_monotonic_time () -
                 (gint64) self->interval_ms * NATTER_LAN_DISCOVERY_LOST_INTERVALS * 1000;
  g_autoptr(GPtrArray) lost = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, table);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      Sighting *sighting = value;

      if (everything || sighting->last_seen < limit)
        {
          g_ptr_array_add (lost, g_strdup (key));
          g_hash_table_iter_remove (&iter);
        }
    }
  for (guint i = 0; i < lost->len; i++)
    g_signal_emit (self, signals[lost_signal], 0, g_ptr_array_index (lost, i));
}

static gboolean
expire_cb (gpointer user_data)
{
  NatterLanDiscovery *self = user_data;
  g_autoptr(NatterLanDiscovery) hold = g_object_ref (self);

  expire_table (self, self->found, SIGNAL_CONTACT_LOST, FALSE);
  expire_table (self, self->nearby, SIGNAL_NEARBY_LOST, FALSE);
  return G_SOURCE_CONTINUE;
}

/* ---- Interfaces and sockets ---------------------------------------------- */

static GPtrArray *
find_interfaces (NatterLanDiscovery *self)
{
  GPtrArray *ifaces = g_ptr_array_new_with_free_func ((GDestroyNotify) iface_free);
  struct ifaddrs *list = NULL;
  gboolean all = self->interfaces == NULL || self->interfaces[0] == NULL;

  if (getifaddrs (&list) != 0)
    return ifaces;

  for (struct ifaddrs *ifa = list; ifa != NULL; ifa = ifa->ifa_next)
    {
      Iface *iface;
      gboolean taken = FALSE;

      if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != AF_INET ||
          ifa->ifa_netmask == NULL ||
          !(ifa->ifa_flags & IFF_UP) || !(ifa->ifa_flags & IFF_MULTICAST))
        continue;
      if (all ? (ifa->ifa_flags & IFF_LOOPBACK) != 0
              : !g_strv_contains ((const char * const *) self->interfaces, ifa->ifa_name))
        continue;
      for (guint i = 0; i < ifaces->len; i++)
        if (g_str_equal (((Iface *) g_ptr_array_index (ifaces, i))->name, ifa->ifa_name))
          taken = TRUE;
      if (taken)
        continue;

      iface = g_new0 (Iface, 1);
      iface->name = g_strdup (ifa->ifa_name);
      iface->index = if_nametoindex (ifa->ifa_name);
      iface->address = ((struct sockaddr_in *) ifa->ifa_addr)->sin_addr.s_addr;
      iface->netmask = ((struct sockaddr_in *) ifa->ifa_netmask)->sin_addr.s_addr;
      if (iface->index == 0)
        {
          iface_free (iface);
          continue;
        }
      g_ptr_array_add (ifaces, iface);
    }
  freeifaddrs (list);
  return ifaces;
}

static gboolean
open_iface_socket (NatterLanDiscovery  *self,
                   Iface               *iface,
                   GError             **error)
{
  g_autoptr(GInetSocketAddress) bind_address = make_ipv4_address (iface->address, 0);
  g_autoptr(GSocketAddress) local = NULL;
  struct ip_mreqn mreq = { 0 };

  iface->socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                G_SOCKET_PROTOCOL_UDP, error);
  if (iface->socket == NULL)
    return FALSE;
  g_socket_set_blocking (iface->socket, FALSE);
  if (!g_socket_bind (iface->socket, G_SOCKET_ADDRESS (bind_address), FALSE, error))
    return FALSE;
  local = g_socket_get_local_address (iface->socket, error);
  if (local == NULL)
    return FALSE;
  iface->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));

  /* Announcements leave through this interface only, and no further than
   * the link; they loop back so that instances on this host see them. */
  mreq.imr_ifindex = iface->index;
  mreq.imr_address.s_addr = iface->address;
  if (setsockopt (g_socket_get_fd (iface->socket), IPPROTO_IP, IP_MULTICAST_IF,
                  &mreq, sizeof mreq) != 0)
    {
      int saved = errno;

      g_set_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_SOCKET,
                   "IP_MULTICAST_IF on %s: %s", iface->name, g_strerror (saved));
      return FALSE;
    }
  g_socket_set_multicast_ttl (iface->socket, 1);
  g_socket_set_multicast_loopback (iface->socket, TRUE);

  iface->source = g_socket_create_source (iface->socket, G_IO_IN, NULL);
  g_source_set_callback (iface->source, G_SOURCE_FUNC (iface_readable_cb), self, NULL);
  g_source_set_static_name (iface->source, "[natter] LAN signals");
  g_source_attach (iface->source, self->context);
  return TRUE;
}

static gboolean
open_group_socket (NatterLanDiscovery  *self,
                   GError             **error)
{
  g_autoptr(GInetAddress) group = g_inet_address_new_from_string (NATTER_LAN_DISCOVERY_GROUP);
  g_autoptr(GSocketAddress) bind_address = g_inet_socket_address_new (group, self->port);
  guint joined = 0;

  self->group_socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                     G_SOCKET_PROTOCOL_UDP, error);
  if (self->group_socket == NULL)
    return FALSE;
  g_socket_set_blocking (self->group_socket, FALSE);
  /* Bound to the group, shared with other instances on this host, and
   * limited to the groups this socket joined. */
  if (!g_socket_bind (self->group_socket, bind_address, TRUE, error))
    return FALSE;
#ifdef IP_MULTICAST_ALL
  if (!g_socket_set_option (self->group_socket, IPPROTO_IP, IP_MULTICAST_ALL, 0, error))
    return FALSE;
#endif

  for (guint i = 0; i < self->ifaces->len; i++)
    {
      Iface *iface = g_ptr_array_index (self->ifaces, i);
      g_autoptr(GError) local_error = NULL;

      if (g_socket_join_multicast_group (self->group_socket, group, FALSE, iface->name, &local_error))
        joined++;
      else
        g_debug ("LAN discovery: joining the group on %s failed: %s", iface->name, local_error->message);
    }
  if (joined == 0)
    {
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_NO_INTERFACE,
                           "Could not join the discovery group on any allowed interface");
      return FALSE;
    }

  self->group_source = g_socket_create_source (self->group_socket, G_IO_IN, NULL);
  g_source_set_callback (self->group_source, G_SOURCE_FUNC (group_readable_cb), self, NULL);
  g_source_set_static_name (self->group_source, "[natter] LAN announcements");
  g_source_attach (self->group_source, self->context);
  return TRUE;
}

/* ---- Public API ----------------------------------------------------------- */

gboolean
natter_lan_discovery_start (NatterLanDiscovery  *self,
                            GError             **error)
{
  g_return_val_if_fail (NATTER_IS_LAN_DISCOVERY (self), FALSE);

  if (self->started)
    {
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_STATE,
                           "LAN discovery is already running");
      return FALSE;
    }

  self->ifaces = find_interfaces (self);
  if (self->ifaces->len == 0)
    {
      g_autofree char *names = self->interfaces != NULL ? g_strjoinv (",", self->interfaces) : NULL;

      g_set_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_NO_INTERFACE,
                   "No interface with IPv4 and multicast among %s",
                   names != NULL && names[0] != '\0' ? names : "the interfaces that are up");
      g_clear_pointer (&self->ifaces, g_ptr_array_unref);
      return FALSE;
    }

  self->started = TRUE;
  for (guint i = 0; i < self->ifaces->len; i++)
    if (!open_iface_socket (self, g_ptr_array_index (self->ifaces, i), error))
      {
        natter_lan_discovery_stop (self);
        return FALSE;
      }
  if (!open_group_socket (self, error))
    {
      natter_lan_discovery_stop (self);
      return FALSE;
    }

  /* A new handle and reveal key for every run. */
  randombytes_buf (self->handle, NATTER_LAN_HANDLE_LEN);
  crypto_box_keypair (self->handle + NATTER_LAN_HANDLE_LEN, self->reveal_secret);

  self->expire_source = g_timeout_source_new (MAX (self->interval_ms / 2, 50));
  g_source_set_callback (self->expire_source, expire_cb, self, NULL);
  g_source_set_static_name (self->expire_source, "[natter] LAN expiry");
  g_source_attach (self->expire_source, self->context);

  send_announcements (self);
  schedule_announcement (self);
  return TRUE;
}

void
natter_lan_discovery_stop (NatterLanDiscovery *self)
{
  g_return_if_fail (NATTER_IS_LAN_DISCOVERY (self));

  if (!self->started)
    return;
  self->started = FALSE;

  clear_source (&self->announce_source);
  clear_source (&self->expire_source);
  clear_source (&self->group_source);
  if (self->group_socket != NULL)
    g_socket_close (self->group_socket, NULL);
  g_clear_object (&self->group_socket);
  g_clear_pointer (&self->ifaces, g_ptr_array_unref);

  sodium_memzero (self->reveal_secret, sizeof self->reveal_secret);
  expire_table (self, self->found, SIGNAL_CONTACT_LOST, TRUE);
  expire_table (self, self->nearby, SIGNAL_NEARBY_LOST, TRUE);
}

void
natter_lan_discovery_set_contacts (NatterLanDiscovery *self,
                                   const char * const *peer_ids)
{
  g_autoptr(GPtrArray) lost = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  gpointer key;

  g_return_if_fail (NATTER_IS_LAN_DISCOVERY (self));

  g_ptr_array_set_size (self->contacts, 0);
  for (gsize i = 0; peer_ids != NULL && peer_ids[i] != NULL &&
                    self->contacts->len < NATTER_LAN_DISCOVERY_MAX_CONTACTS; i++)
    {
      g_autoptr(GError) error = NULL;
      NatterLanContact *contact = natter_lan_contact_new (self->identity, peer_ids[i], &error);

      if (contact == NULL)
        {
          g_debug ("LAN discovery: skipping contact %s: %s", peer_ids[i], error->message);
          continue;
        }
      if (find_contact_by_key (self, contact->public_key) != NULL)
        {
          natter_lan_contact_free (contact);
          continue;
        }
      g_ptr_array_add (self->contacts, contact);
    }
  self->rotation = 0;

  g_hash_table_iter_init (&iter, self->found);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      guint8 public_key[NATTER_PUBLIC_KEY_LEN];

      if (!natter_peer_id_parse (key, public_key, NULL) || find_contact_by_key (self, public_key) == NULL)
        {
          g_ptr_array_add (lost, g_strdup (key));
          g_hash_table_iter_remove (&iter);
        }
    }
  for (guint i = 0; i < lost->len; i++)
    g_signal_emit (self, signals[SIGNAL_CONTACT_LOST], 0, g_ptr_array_index (lost, i));

  /* New contacts hear about us at once rather than at the next round. */
  if (self->started)
    {
      send_announcements (self);
      schedule_announcement (self);
    }
}

void
natter_lan_discovery_set_discoverable (NatterLanDiscovery *self,
                                       gboolean            discoverable)
{
  g_return_if_fail (NATTER_IS_LAN_DISCOVERY (self));

  discoverable = !!discoverable;
  if (self->discoverable == discoverable)
    return;
  self->discoverable = discoverable;
  if (self->started)
    {
      send_announcements (self);
      schedule_announcement (self);
    }
}

gboolean
natter_lan_discovery_get_discoverable (NatterLanDiscovery *self)
{
  g_return_val_if_fail (NATTER_IS_LAN_DISCOVERY (self), FALSE);

  return self->discoverable;
}

void
natter_lan_discovery_set_port (NatterLanDiscovery *self,
                               guint16             port)
{
  g_return_if_fail (NATTER_IS_LAN_DISCOVERY (self));
  g_return_if_fail (!self->started);

  self->port = port != 0 ? port : NATTER_LAN_DISCOVERY_PORT;
}

void
natter_lan_discovery_set_interval (NatterLanDiscovery *self,
                                   guint               interval_ms)
{
  g_return_if_fail (NATTER_IS_LAN_DISCOVERY (self));
  g_return_if_fail (!self->started);

  self->interval_ms = interval_ms != 0 ? MAX (interval_ms, 50) : NATTER_LAN_DISCOVERY_INTERVAL_MS;
}

static Iface *
iface_towards (NatterLanDiscovery *self,
               guint32             address)
{
  for (guint i = 0; i < self->ifaces->len; i++)
    {
      Iface *iface = g_ptr_array_index (self->ifaces, i);

      if ((iface->address & iface->netmask) == (address & iface->netmask))
        return iface;
    }
  return g_ptr_array_index (self->ifaces, 0);
}

gboolean
natter_lan_discovery_send_signal (NatterLanDiscovery  *self,
                                  const char          *peer_id,
                                  GBytes              *blob,
                                  GError             **error)
{
  g_autoptr(GBytes) datagram = NULL;
  Sighting *sighting;
  guint32 address;
  Iface *iface;
  const guint8 *data;
  gsize len;

  g_return_val_if_fail (NATTER_IS_LAN_DISCOVERY (self), FALSE);
  g_return_val_if_fail (peer_id != NULL, FALSE);
  g_return_val_if_fail (blob != NULL, FALSE);

  if (!self->started)
    {
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_STATE,
                           "LAN discovery is not running");
      return FALSE;
    }
  sighting = g_hash_table_lookup (self->found, peer_id);
  if (sighting == NULL || !address_to_ipv4 (sighting->address, &address))
    {
      g_set_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_UNKNOWN_PEER,
                   "Peer %s has not been found on the LAN", peer_id);
      return FALSE;
    }

  datagram = natter_lan_signal_pack (self->identity, peer_id, blob, g_get_real_time () / 1000, error);
  if (datagram == NULL)
    return FALSE;

  iface = iface_towards (self, address);
  data = g_bytes_get_data (datagram, &len);
  if (g_socket_send_to (iface->socket, G_SOCKET_ADDRESS (sighting->address),
                        (const char *) data, len, NULL, error) < 0)
    {
      self->stats.send_errors++;
      return FALSE;
    }
  self->stats.signals_sent++;
  return TRUE;
}

char *
natter_lan_discovery_dup_handle (NatterLanDiscovery *self)
{
  char hex[2 * NATTER_LAN_HANDLE_LEN + 1];

  g_return_val_if_fail (NATTER_IS_LAN_DISCOVERY (self), NULL);

  sodium_bin2hex (hex, sizeof hex, self->handle, NATTER_LAN_HANDLE_LEN);
  return g_strdup (hex);
}

gboolean
natter_lan_discovery_reveal_to_nearby (NatterLanDiscovery  *self,
                                       const char          *handle,
                                       GError             **error)
{
  g_autoptr(GBytes) datagram = NULL;
  Sighting *sighting;
  guint32 address;
  const guint8 *data;
  gsize len;

  g_return_val_if_fail (NATTER_IS_LAN_DISCOVERY (self), FALSE);
  g_return_val_if_fail (handle != NULL, FALSE);

  if (!self->started)
    {
      g_set_error_literal (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_STATE,
                           "LAN discovery is not running");
      return FALSE;
    }
  sighting = g_hash_table_lookup (self->nearby, handle);
  if (sighting == NULL || !address_to_ipv4 (sighting->address, &address))
    {
      g_set_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_UNKNOWN_PEER,
                   "Nobody nearby is listed as %s", handle);
      return FALSE;
    }

  datagram = natter_lan_reveal_pack (self->identity, sighting->reveal_key, error);
  if (datagram == NULL)
    return FALSE;
  data = g_bytes_get_data (datagram, &len);
  if (g_socket_send_to (iface_towards (self, address)->socket, G_SOCKET_ADDRESS (sighting->address),
                        (const char *) data, len, NULL, error) < 0)
    {
      self->stats.send_errors++;
      return FALSE;
    }
  return TRUE;
}

GInetSocketAddress *
natter_lan_discovery_dup_contact_address (NatterLanDiscovery *self,
                                          const char         *peer_id)
{
  Sighting *sighting;

  g_return_val_if_fail (NATTER_IS_LAN_DISCOVERY (self), NULL);

  sighting = g_hash_table_lookup (self->found, peer_id);
  return sighting != NULL ? g_object_ref (sighting->address) : NULL;
}

void
natter_lan_discovery_get_stats (NatterLanDiscovery      *self,
                                NatterLanDiscoveryStats *stats)
{
  g_return_if_fail (NATTER_IS_LAN_DISCOVERY (self));

  *stats = self->stats;
}

NatterLanDiscovery *
natter_lan_discovery_new (GMainContext       *context,
                          NatterIdentity     *identity,
                          const char * const *interfaces)
{
  NatterLanDiscovery *self;
  g_auto(GStrv) from_env = natter_ice_interfaces_from_env ();

  g_return_val_if_fail (NATTER_IS_IDENTITY (identity), NULL);

  self = g_object_new (NATTER_TYPE_LAN_DISCOVERY, NULL);
  self->context = context != NULL ? g_main_context_ref (context)
                                  : g_main_context_ref_thread_default ();
  self->identity = g_object_ref (identity);
  self->interfaces = from_env != NULL ? g_steal_pointer (&from_env) : g_strdupv ((char **) interfaces);
  return self;
}

static void
natter_lan_discovery_dispose (GObject *object)
{
  NatterLanDiscovery *self = NATTER_LAN_DISCOVERY (object);

  if (self->started)
    natter_lan_discovery_stop (self);

  G_OBJECT_CLASS (natter_lan_discovery_parent_class)->dispose (object);
}

static void
natter_lan_discovery_finalize (GObject *object)
{
  NatterLanDiscovery *self = NATTER_LAN_DISCOVERY (object);

  sodium_memzero (self->reveal_secret, sizeof self->reveal_secret);
  g_clear_pointer (&self->contacts, g_ptr_array_unref);
  g_clear_pointer (&self->found, g_hash_table_unref);
  g_clear_pointer (&self->nearby, g_hash_table_unref);
  g_clear_pointer (&self->interfaces, g_strfreev);
  g_clear_object (&self->identity);
  g_clear_pointer (&self->context, g_main_context_unref);

  G_OBJECT_CLASS (natter_lan_discovery_parent_class)->finalize (object);
}

static void
natter_lan_discovery_class_init (NatterLanDiscoveryClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = natter_lan_discovery_dispose;
  object_class->finalize = natter_lan_discovery_finalize;

  /**
   * NatterLanDiscovery::contact-found:
   * @peer_id: the contact
   * @address: the address it announced from, where signals go
   *
   * A contact was recognised, or announced from a new address.
   */
  signals[SIGNAL_CONTACT_FOUND] =
    g_signal_new ("contact-found",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_INET_SOCKET_ADDRESS);
  /**
   * NatterLanDiscovery::contact-lost:
   * @peer_id: the contact
   *
   * Nothing heard for NATTER_LAN_DISCOVERY_LOST_INTERVALS intervals, or
   * discovery stopped, or the peer is no longer a contact.
   */
  signals[SIGNAL_CONTACT_LOST] =
    g_signal_new ("contact-lost",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_STRING);
  /**
   * NatterLanDiscovery::nearby-found:
   * @handle: an opaque handle for this stranger's run, in hex
   * @address: where it announced from
   *
   * A stranger that chose to be discoverable.  Its peer ID is not known.
   */
  signals[SIGNAL_NEARBY_FOUND] =
    g_signal_new ("nearby-found",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_INET_SOCKET_ADDRESS);
  /**
   * NatterLanDiscovery::nearby-revealed:
   * @peer_id: the peer ID someone nearby chose to show us (signature checked)
   * @address: where it came from
   *
   * Only while we are discoverable: the reveal is sealed to this run's key.
   */
  signals[SIGNAL_NEARBY_REVEALED] =
    g_signal_new ("nearby-revealed",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_INET_SOCKET_ADDRESS);
  signals[SIGNAL_NEARBY_LOST] =
    g_signal_new ("nearby-lost",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_STRING);
  /**
   * NatterLanDiscovery::signal-received:
   * @peer_id: the contact that sent it (signature checked)
   * @blob: the signaling blob, for natter_peer_connection_handle_signal()
   */
  signals[SIGNAL_SIGNAL_RECEIVED] =
    g_signal_new ("signal-received",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_BYTES);
}

static void
natter_lan_discovery_init (NatterLanDiscovery *self)
{
  self->port = NATTER_LAN_DISCOVERY_PORT;
  self->interval_ms = NATTER_LAN_DISCOVERY_INTERVAL_MS;
  self->tokens = SIGNAL_BURST;
  self->tokens_at = g_get_monotonic_time ();
  self->announce_tokens = ANNOUNCE_BURST;
  self->announce_tokens_at = self->tokens_at;
  self->contacts = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_lan_contact_free);
  self->found = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) sighting_free);
  self->nearby = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) sighting_free);
}
