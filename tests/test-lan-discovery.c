/* test-lan-discovery.c: the LAN announcement and signal formats
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#define _GNU_SOURCE
#include "config.h"

#include <string.h>
#include <sodium.h>

#include "natter-identity.h"
#include "natter-lan-discovery.h"
#include "natter-lan-discovery-private.h"

/* ---- Helpers ------------------------------------------------------------ */

static GPtrArray *
contacts_of (NatterIdentity *self,
             ...)
{
  GPtrArray *contacts = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_lan_contact_free);
  va_list args;
  NatterIdentity *other;

  va_start (args, self);
  while ((other = va_arg (args, NatterIdentity *)) != NULL)
    {
      g_autoptr(GError) error = NULL;
      NatterLanContact *contact = natter_lan_contact_new (self, natter_identity_get_peer_id (other), &error);

      g_assert_no_error (error);
      g_ptr_array_add (contacts, contact);
    }
  va_end (args);
  return contacts;
}

static gboolean
contains (GBytes       *haystack,
          const void   *needle,
          gsize         needle_len)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (haystack, &len);

  return memmem (data, len, needle, needle_len) != NULL;
}

/* Neither the peer ID nor either public key of @identity is in @bytes. */
static void
assert_reveals_nothing (GBytes         *bytes,
                        NatterIdentity *identity)
{
  const char *peer_id = natter_identity_get_peer_id (identity);

  g_assert_false (contains (bytes, peer_id, strlen (peer_id)));
  g_assert_false (contains (bytes, natter_identity_get_public_key (identity), NATTER_PUBLIC_KEY_LEN));
  g_assert_false (contains (bytes, natter_identity_get_x25519_public (identity), NATTER_X25519_KEY_LEN));
  /* Not even a prefix long enough to identify a key. */
  g_assert_false (contains (bytes, natter_identity_get_public_key (identity), 6));
}

static GInetSocketAddress *
some_address (void)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string ("192.0.2.7");

  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (inet, 40000));
}

/* ---- Announcements ------------------------------------------------------ */

static void
test_round_trip (void)
{
  g_autoptr(NatterIdentity) a = natter_identity_new_random ();
  g_autoptr(NatterIdentity) b = natter_identity_new_random ();
  g_autoptr(NatterIdentity) c = natter_identity_new_random ();
  g_autoptr(NatterIdentity) d = natter_identity_new_random ();
  g_autoptr(GPtrArray) a_contacts = contacts_of (a, b, c, NULL);
  g_autoptr(GPtrArray) b_contacts = contacts_of (b, d, a, NULL);
  g_autoptr(GPtrArray) d_contacts = contacts_of (d, b, NULL);
  g_autoptr(GBytes) bytes = natter_lan_announcement_build (a_contacts, 0, NULL);
  g_autoptr(GError) error = NULL;
  NatterLanAnnouncement announcement;
  NatterLanContact *sender;
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  g_assert_true (natter_lan_announcement_parse (data, len, &announcement, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (announcement.n_tags, ==, NATTER_LAN_TAG_GROUP);
  g_assert_null (announcement.handle);
  g_assert_cmpuint (len, ==, NATTER_LAN_HEADER_LEN + 8 * NATTER_LAN_TAG_LEN);

  /* B knows A and recognises it. */
  sender = natter_lan_announcement_find_sender (&announcement, b_contacts);
  g_assert_nonnull (sender);
  g_assert_cmpstr (sender->peer_id, ==, natter_identity_get_peer_id (a));

  /* D is not a contact of A: nothing, though D shares a contact with A. */
  g_assert_null (natter_lan_announcement_find_sender (&announcement, d_contacts));

  /* A's own announcement reflected back to A is not taken for B's. */
  g_assert_null (natter_lan_announcement_find_sender (&announcement, a_contacts));

  assert_reveals_nothing (bytes, a);
  assert_reveals_nothing (bytes, b);
  assert_reveals_nothing (bytes, c);
}

static void
test_unlinkable (void)
{
  g_autoptr(NatterIdentity) a = natter_identity_new_random ();
  g_autoptr(NatterIdentity) b = natter_identity_new_random ();
  g_autoptr(GPtrArray) a_contacts = contacts_of (a, b, NULL);
  g_autoptr(GBytes) first = natter_lan_announcement_build (a_contacts, 0, NULL);
  g_autoptr(GBytes) second = natter_lan_announcement_build (a_contacts, 0, NULL);
  gsize len1, len2;
  const guint8 *one = g_bytes_get_data (first, &len1);
  const guint8 *two = g_bytes_get_data (second, &len2);

  /* Same length and the same 8-byte fixed header (magic, version, flags,
   * tag count, reserved) ... */
  g_assert_cmpuint (len1, ==, len2);
  g_assert_cmpmem (one, 8, two, 8);

  /* ... and beyond it, not one 4-byte run in common anywhere: nonce and
   * tags are fresh.  (A chance match is ~1 in 30,000.) */
  for (gsize i = 8; i + 4 <= len1; i++)
    g_assert_null (memmem (two + 8, len2 - 8, one + i, 4));
}

static void
test_contact_rotation (void)
{
  g_autoptr(NatterIdentity) a = natter_identity_new_random ();
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GPtrArray) a_contacts = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_lan_contact_free);
  guint n = NATTER_LAN_DISCOVERY_MAX_TAGS + 10;
  guint first = 0;
  g_autofree gboolean *seen = g_new0 (gboolean, n);

  for (guint i = 0; i < n; i++)
    {
      NatterIdentity *other = natter_identity_new_random ();

      g_ptr_array_add (ids, other);
      g_ptr_array_add (a_contacts, natter_lan_contact_new (a, natter_identity_get_peer_id (other), NULL));
    }

  /* The tag count is capped; two rounds cover everyone. */
  for (guint round = 0; round < 2; round++)
    {
      g_autoptr(GBytes) bytes = natter_lan_announcement_build (a_contacts, first, NULL);
      NatterLanAnnouncement announcement;
      gsize len;
      const guint8 *data = g_bytes_get_data (bytes, &len);

      g_assert_true (natter_lan_announcement_parse (data, len, &announcement, NULL));
      g_assert_cmpuint (announcement.n_tags, ==, NATTER_LAN_DISCOVERY_MAX_TAGS);
      g_assert_cmpuint (len, <=, NATTER_LAN_DISCOVERY_MAX_DATAGRAM);
      for (guint i = 0; i < n; i++)
        {
          g_autoptr(GPtrArray) mine = contacts_of (g_ptr_array_index (ids, i), a, NULL);

          if (natter_lan_announcement_find_sender (&announcement, mine) != NULL)
            seen[i] = TRUE;
        }
      first = (first + NATTER_LAN_DISCOVERY_MAX_TAGS) % n;
    }
  for (guint i = 0; i < n; i++)
    g_assert_true (seen[i]);
}

static void
test_tampered (void)
{
  g_autoptr(NatterIdentity) a = natter_identity_new_random ();
  g_autoptr(NatterIdentity) b = natter_identity_new_random ();
  g_autoptr(GPtrArray) a_contacts = contacts_of (a, b, NULL);
  g_autoptr(GPtrArray) b_contacts = contacts_of (b, a, NULL);
  guint8 handle[NATTER_LAN_DISCOVERABLE_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };
  g_autoptr(GBytes) bytes = natter_lan_announcement_build (a_contacts, 0, handle);
  gsize len;
  g_autofree guint8 *copy = g_bytes_unref_to_data (g_bytes_ref (bytes), &len);
  NatterLanAnnouncement announcement;
  gsize covered = NATTER_LAN_HEADER_LEN + NATTER_LAN_DISCOVERABLE_LEN;
  gssize own_tag = -1;

  g_assert_true (natter_lan_announcement_parse (copy, len, &announcement, NULL));
  g_assert_nonnull (natter_lan_announcement_find_sender (&announcement, b_contacts));

  /* Which slot holds B's tag: the one whose damage makes A unrecognised. */
  for (guint t = 0; t < announcement.n_tags; t++)
    {
      gsize at = covered + t * NATTER_LAN_TAG_LEN;

      copy[at] ^= 0x01;
      if (natter_lan_announcement_find_sender (&announcement, b_contacts) == NULL)
        own_tag = at;
      copy[at] ^= 0x01;
    }
  g_assert_cmpint (own_tag, >=, 0);

  /* Every bit of the header, nonce, handle and B's tag counts. */
  for (gsize i = 0; i < len; i++)
    {
      if (i >= covered && ((gssize) i < own_tag || (gssize) i >= own_tag + NATTER_LAN_TAG_LEN))
        continue;
      for (guint bit = 0; bit < 8; bit++)
        {
          copy[i] ^= 1u << bit;
          if (natter_lan_announcement_parse (copy, len, &announcement, NULL))
            g_assert_null (natter_lan_announcement_find_sender (&announcement, b_contacts));
          copy[i] ^= 1u << bit;
        }
    }
}

static void
count_cb (gpointer  object,
          gpointer  a1,
          gpointer  a2,
          guint    *counter)
{
  (*counter)++;
}

static void
test_garbage (void)
{
  g_autoptr(NatterIdentity) a = natter_identity_new_random ();
  g_autoptr(NatterIdentity) b = natter_identity_new_random ();
  g_autoptr(GPtrArray) a_contacts = contacts_of (a, b, NULL);
  g_autoptr(NatterLanDiscovery) discovery = natter_lan_discovery_new (NULL, b, NULL);
  g_autoptr(GInetSocketAddress) from = some_address ();
  g_autoptr(GBytes) good = natter_lan_announcement_build (a_contacts, 0, NULL);
  const char *contacts[] = { natter_identity_get_peer_id (a), NULL };
  NatterLanDiscoveryStats stats;
  guint8 buffer[NATTER_LAN_DISCOVERY_MAX_DATAGRAM + 100];
  gsize good_len;
  const guint8 *good_data = g_bytes_get_data (good, &good_len);
  guint found = 0;
  guint dropped = 0;
  g_autoptr(GRand) rand = g_rand_new_with_seed (7);

  natter_lan_discovery_set_contacts (discovery, contacts);
  g_signal_connect (discovery, "contact-found", G_CALLBACK (count_cb), &found);

  /* Random bytes of every length, and random bytes behind a valid header. */
  for (guint i = 0; i < 2000; i++)
    {
      gsize len = g_rand_int_range (rand, 0, sizeof buffer);

      for (gsize j = 0; j < len; j++)
        buffer[j] = g_rand_int (rand);
      if (i % 2 == 1 && len >= 8)
        memcpy (buffer, good_data, 8);
      natter_lan_discovery_handle_announcement (discovery, buffer, len, from);
    }
  natter_lan_discovery_get_stats (discovery, &stats);
  g_assert_cmpuint (found, ==, 0);
  g_assert_cmpuint (stats.announcements_recognised, ==, 0);
  g_assert_cmpuint (stats.dropped_oversized, >, 0);
  g_assert_cmpuint (stats.dropped_malformed, >, 0);
  dropped = stats.dropped_malformed + stats.dropped_oversized;
  /* Random tags behind a valid header parse, but are nobody. */
  g_assert_cmpuint (dropped + stats.announcements_received, ==, 2000);

  /* Truncated and extended copies of a good one. */
  for (gsize len = 0; len < good_len; len++)
    natter_lan_discovery_handle_announcement (discovery, good_data, len, from);
  memcpy (buffer, good_data, good_len);
  buffer[good_len] = 0;
  natter_lan_discovery_handle_announcement (discovery, buffer, good_len + 1, from);
  natter_lan_discovery_get_stats (discovery, &stats);
  g_assert_cmpuint (stats.dropped_malformed + stats.dropped_oversized, ==, dropped + good_len + 1);
  g_assert_cmpuint (found, ==, 0);

  /* The good one itself is found, once. */
  natter_lan_discovery_handle_announcement (discovery, good_data, good_len, from);
  natter_lan_discovery_handle_announcement (discovery, good_data, good_len, from);
  g_assert_cmpuint (found, ==, 1);
  natter_lan_discovery_get_stats (discovery, &stats);
  g_assert_cmpuint (stats.announcements_recognised, ==, 2);

  /* A flood of well-formed ones is checked at a bounded rate. */
  for (guint i = 0; i < 2000; i++)
    natter_lan_discovery_handle_announcement (discovery, good_data, good_len, from);
  natter_lan_discovery_get_stats (discovery, &stats);
  g_assert_cmpuint (stats.dropped_rate, >=, 1000);
  g_assert_cmpuint (stats.announcements_recognised + stats.dropped_rate, ==, 2002);
}

static void
test_discoverable (void)
{
  g_autoptr(NatterIdentity) a = natter_identity_new_random ();
  g_autoptr(NatterIdentity) stranger = natter_identity_new_random ();
  g_autoptr(GPtrArray) a_contacts = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_lan_contact_free);
  g_autoptr(NatterLanDiscovery) discovery = natter_lan_discovery_new (NULL, stranger, NULL);
  g_autoptr(GInetSocketAddress) from = some_address ();
  guint8 handle[NATTER_LAN_DISCOVERABLE_LEN];
  g_autoptr(GBytes) plain = natter_lan_announcement_build (a_contacts, 0, NULL);
  g_autoptr(GBytes) marked = NULL;
  guint nearby = 0, found = 0;
  gsize len;
  const guint8 *data;

  randombytes_buf (handle, sizeof handle);
  marked = natter_lan_announcement_build (a_contacts, 0, handle);
  g_signal_connect (discovery, "nearby-found", G_CALLBACK (count_cb), &nearby);
  g_signal_connect (discovery, "contact-found", G_CALLBACK (count_cb), &found);

  /* Not discoverable: nothing to see. */
  data = g_bytes_get_data (plain, &len);
  natter_lan_discovery_handle_announcement (discovery, data, len, from);
  g_assert_cmpuint (nearby, ==, 0);

  /* Discoverable: someone nearby, with the handle but no identity. */
  data = g_bytes_get_data (marked, &len);
  natter_lan_discovery_handle_announcement (discovery, data, len, from);
  natter_lan_discovery_handle_announcement (discovery, data, len, from);
  g_assert_cmpuint (nearby, ==, 1);
  g_assert_cmpuint (found, ==, 0);
  assert_reveals_nothing (marked, a);

  /* A flood of handles is bounded. */
  for (guint i = 0; i < 500; i++)
    {
      g_autoptr(GBytes) other = NULL;

      randombytes_buf (handle, sizeof handle);
      other = natter_lan_announcement_build (a_contacts, 0, handle);
      data = g_bytes_get_data (other, &len);
      natter_lan_discovery_handle_announcement (discovery, data, len, from);
    }
  g_assert_cmpuint (nearby, ==, NATTER_LAN_DISCOVERY_MAX_NEARBY);
}

/* ---- Signals -------------------------------------------------------------- */

static void
test_signal_round_trip (void)
{
  g_autoptr(NatterIdentity) a = natter_identity_new_random ();
  g_autoptr(NatterIdentity) b = natter_identity_new_random ();
  g_autoptr(NatterIdentity) c = natter_identity_new_random ();
  g_autoptr(GBytes) blob = g_bytes_new_static ("ice-end-of-candidates", 21);
  g_autoptr(GBytes) packed = NULL;
  g_autoptr(GBytes) opened = NULL;
  g_autoptr(GError) error = NULL;
  guint8 sender[NATTER_PUBLIC_KEY_LEN];
  guint8 id[16];
  gint64 now = g_get_real_time () / 1000;
  gsize len;
  g_autofree guint8 *copy = NULL;

  packed = natter_lan_signal_pack (a, natter_identity_get_peer_id (b), blob, now, &error);
  g_assert_no_error (error);
  assert_reveals_nothing (packed, a);
  assert_reveals_nothing (packed, b);
  g_assert_false (contains (packed, "ice-end", 7));

  opened = natter_lan_signal_unpack (b, g_bytes_get_data (packed, NULL), g_bytes_get_size (packed),
                                     now, sender, id, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (opened, blob));
  g_assert_cmpmem (sender, sizeof sender, natter_identity_get_public_key (a), NATTER_PUBLIC_KEY_LEN);
  g_clear_pointer (&opened, g_bytes_unref);

  /* Not for C. */
  opened = natter_lan_signal_unpack (c, g_bytes_get_data (packed, NULL), g_bytes_get_size (packed),
                                     now, sender, id, &error);
  g_assert_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_MALFORMED);
  g_assert_null (opened);
  g_clear_error (&error);

  /* Stale. */
  opened = natter_lan_signal_unpack (b, g_bytes_get_data (packed, NULL), g_bytes_get_size (packed),
                                     now + 10 * 60 * 1000, sender, id, &error);
  g_assert_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_REJECTED);
  g_clear_error (&error);

  /* Every flipped byte is caught. */
  copy = g_bytes_unref_to_data (g_bytes_ref (packed), &len);
  for (gsize i = 0; i < len; i++)
    {
      copy[i] ^= 0x20;
      opened = natter_lan_signal_unpack (b, copy, len, now, sender, id, NULL);
      g_assert_null (opened);
      copy[i] ^= 0x20;
    }

  /* Size limits. */
  {
    g_autoptr(GBytes) empty = g_bytes_new_static ("", 0);
    g_autofree char *big = g_strnfill (1025, 'x');
    g_autoptr(GBytes) too_big = g_bytes_new_static (big, 1025);

    g_assert_null (natter_lan_signal_pack (a, natter_identity_get_peer_id (b), empty, now, &error));
    g_assert_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_TOO_LARGE);
    g_clear_error (&error);
    g_assert_null (natter_lan_signal_pack (a, natter_identity_get_peer_id (b), too_big, now, &error));
    g_assert_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_TOO_LARGE);
    g_clear_error (&error);
  }
}

static void
test_signal_validation (void)
{
  g_autoptr(NatterIdentity) a = natter_identity_new_random ();
  g_autoptr(NatterIdentity) b = natter_identity_new_random ();
  g_autoptr(NatterIdentity) stranger = natter_identity_new_random ();
  g_autoptr(NatterLanDiscovery) discovery = natter_lan_discovery_new (NULL, b, NULL);
  g_autoptr(GInetSocketAddress) from = some_address ();
  g_autoptr(GBytes) blob = g_bytes_new_static ("ice-end-of-candidates", 21);
  const char *contacts[] = { natter_identity_get_peer_id (a), NULL };
  gint64 now = g_get_real_time () / 1000;
  g_autoptr(GBytes) good = natter_lan_signal_pack (a, natter_identity_get_peer_id (b), blob, now, NULL);
  g_autoptr(GBytes) from_stranger = natter_lan_signal_pack (stranger, natter_identity_get_peer_id (b),
                                                            blob, now, NULL);
  NatterLanDiscoveryStats stats;
  guint received = 0, found = 0;
  g_autoptr(GInetSocketAddress) address = NULL;
  guint8 noise[300];

  natter_lan_discovery_set_contacts (discovery, contacts);
  g_signal_connect (discovery, "signal-received", G_CALLBACK (count_cb), &received);
  g_signal_connect (discovery, "contact-found", G_CALLBACK (count_cb), &found);

  /* A good signal is delivered, and proves the contact is at its source. */
  natter_lan_discovery_handle_signal (discovery, g_bytes_get_data (good, NULL), g_bytes_get_size (good), from);
  g_assert_cmpuint (received, ==, 1);
  g_assert_cmpuint (found, ==, 1);
  address = natter_lan_discovery_dup_contact_address (discovery, natter_identity_get_peer_id (a));
  g_assert_nonnull (address);
  g_assert_cmpuint (g_inet_socket_address_get_port (address), ==, 40000);
  /* A replay is dropped. */
  natter_lan_discovery_handle_signal (discovery, g_bytes_get_data (good, NULL), g_bytes_get_size (good), from);
  g_assert_cmpuint (received, ==, 1);
  /* So is a well-signed one from a stranger. */
  natter_lan_discovery_handle_signal (discovery, g_bytes_get_data (from_stranger, NULL),
                                      g_bytes_get_size (from_stranger), from);
  g_assert_cmpuint (received, ==, 1);
  natter_lan_discovery_get_stats (discovery, &stats);
  g_assert_cmpuint (stats.signals_received, ==, 1);
  g_assert_cmpuint (stats.signals_dropped_rejected, ==, 2);

  /* A flood: the rate limit drops most of it before any crypto. */
  randombytes_buf (noise, sizeof noise);
  for (guint i = 0; i < 1000; i++)
    natter_lan_discovery_handle_signal (discovery, noise, sizeof noise, from);
  natter_lan_discovery_get_stats (discovery, &stats);
  g_assert_cmpuint (stats.signals_dropped_rate, >=, 700);
  g_assert_cmpuint (stats.signals_dropped_malformed + stats.signals_dropped_rate, ==, 1000);
  g_assert_cmpuint (received, ==, 1);
  g_assert_cmpuint (found, ==, 1);
}

/* ---- Interfaces ------------------------------------------------------------ */

static void
test_no_interface (void)
{
  g_autoptr(NatterIdentity) a = natter_identity_new_random ();
  g_autoptr(NatterLanDiscovery) discovery = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *saved = g_strdup (g_getenv ("NATTER_INTERFACES"));
  static const char *lo[] = { "lo", NULL };
  g_autoptr(GBytes) blob = g_bytes_new_static ("x", 1);

  /* The environment wins over the list given, and a name that matches
   * nothing fails rather than widening to every interface. */
  g_setenv ("NATTER_INTERFACES", "natter-none0", TRUE);
  discovery = natter_lan_discovery_new (NULL, a, lo);
  if (saved != NULL)
    g_setenv ("NATTER_INTERFACES", saved, TRUE);
  else
    g_unsetenv ("NATTER_INTERFACES");

  g_assert_false (natter_lan_discovery_start (discovery, &error));
  g_assert_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_NO_INTERFACE);
  g_clear_error (&error);

  /* Not running: nothing is sent. */
  g_assert_false (natter_lan_discovery_send_signal (discovery, natter_identity_get_peer_id (a), blob, &error));
  g_assert_error (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_STATE);
}

static void
test_reveal (void)
{
  g_autoptr(NatterIdentity) a = natter_identity_new_random ();
  guint8 public[NATTER_LAN_REVEAL_KEY_LEN], secret[NATTER_LAN_REVEAL_KEY_LEN];
  guint8 other_public[NATTER_LAN_REVEAL_KEY_LEN], other_secret[NATTER_LAN_REVEAL_KEY_LEN];
  g_autoptr(GBytes) reveal = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *peer_id = NULL;
  g_autofree guint8 *copy = NULL;
  gsize len;

  crypto_box_keypair (public, secret);
  crypto_box_keypair (other_public, other_secret);
  reveal = natter_lan_reveal_pack (a, public, &error);
  g_assert_no_error (error);
  assert_reveals_nothing (reveal, a);

  peer_id = natter_lan_reveal_unpack (public, secret, g_bytes_get_data (reveal, NULL),
                                      g_bytes_get_size (reveal), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (peer_id, ==, natter_identity_get_peer_id (a));

  /* Only the holder of the run's key can read it. */
  g_assert_null (natter_lan_reveal_unpack (other_public, other_secret, g_bytes_get_data (reveal, NULL),
                                           g_bytes_get_size (reveal), NULL));

  /* Every flipped byte is caught; so are other lengths. */
  copy = g_bytes_unref_to_data (g_bytes_ref (reveal), &len);
  for (gsize i = 0; i < len; i++)
    {
      copy[i] ^= 0x04;
      g_assert_null (natter_lan_reveal_unpack (public, secret, copy, len, NULL));
      copy[i] ^= 0x04;
    }
  g_assert_null (natter_lan_reveal_unpack (public, secret, copy, len - 1, NULL));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);

  g_test_add_func ("/lan/announcement/round-trip", test_round_trip);
  g_test_add_func ("/lan/announcement/unlinkable", test_unlinkable);
  g_test_add_func ("/lan/announcement/rotation", test_contact_rotation);
  g_test_add_func ("/lan/announcement/tampered", test_tampered);
  g_test_add_func ("/lan/announcement/garbage", test_garbage);
  g_test_add_func ("/lan/announcement/discoverable", test_discoverable);
  g_test_add_func ("/lan/signal/round-trip", test_signal_round_trip);
  g_test_add_func ("/lan/signal/validation", test_signal_validation);
  g_test_add_func ("/lan/interfaces/none", test_no_interface);
  g_test_add_func ("/lan/nearby/reveal", test_reveal);

  return g_test_run ();
}
