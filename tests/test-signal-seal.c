/* test-signal-seal.c: tests of signaling blobs sealed to the recipient
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include "core/natter-signal-seal.h"

static const char plaintext[] = "ice-credentials abcd 0123456789abcdef01234567";

static gboolean
bytes_contain (GBytes     *bytes,
               const char *needle)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);
  gsize n = strlen (needle);

  for (gsize i = 0; i + n <= len; i++)
    if (memcmp (data + i, needle, n) == 0)
      return TRUE;

  return FALSE;
}

static void
test_round_trip (void)
{
  g_autoptr(NatterIdentity) bob = natter_identity_new_random ();
  g_autoptr(GBytes) plain = g_bytes_new_static (plaintext, strlen (plaintext));
  g_autoptr(GBytes) sealed = NULL;
  g_autoptr(GBytes) sealed_again = NULL;
  g_autoptr(GBytes) opened = NULL;
  g_autoptr(GError) error = NULL;

  sealed = natter_signal_seal (natter_identity_get_peer_id (bob), plain, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (sealed), ==, strlen (plaintext) + NATTER_SIGNAL_SEAL_OVERHEAD);
  /* The plaintext does not show through. */
  g_assert_false (bytes_contain (sealed, "ice-credentials"));

  /* An ephemeral key per seal: the same plaintext never seals alike. */
  sealed_again = natter_signal_seal (natter_identity_get_peer_id (bob), plain, &error);
  g_assert_no_error (error);
  g_assert_false (g_bytes_equal (sealed, sealed_again));

  opened = natter_signal_open (bob, sealed, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (opened, plain));
}

static void
test_empty (void)
{
  g_autoptr(NatterIdentity) bob = natter_identity_new_random ();
  g_autoptr(GBytes) plain = g_bytes_new_static ("", 0);
  g_autoptr(GBytes) sealed = NULL;
  g_autoptr(GBytes) opened = NULL;
  g_autoptr(GError) error = NULL;

  sealed = natter_signal_seal (natter_identity_get_peer_id (bob), plain, &error);
  g_assert_no_error (error);
  opened = natter_signal_open (bob, sealed, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (opened), ==, 0);
}

static void
test_wrong_recipient (void)
{
  g_autoptr(NatterIdentity) bob = natter_identity_new_random ();
  g_autoptr(NatterIdentity) eve = natter_identity_new_random ();
  g_autoptr(GBytes) plain = g_bytes_new_static (plaintext, strlen (plaintext));
  g_autoptr(GBytes) sealed = NULL;
  g_autoptr(GBytes) opened = NULL;
  g_autoptr(GError) error = NULL;

  sealed = natter_signal_seal (natter_identity_get_peer_id (bob), plain, &error);
  g_assert_no_error (error);
  opened = natter_signal_open (eve, sealed, &error);
  g_assert_error (error, NATTER_SIGNAL_ERROR, NATTER_SIGNAL_ERROR_OPEN_FAILED);
  g_assert_null (opened);
}

static void
test_altered (void)
{
  g_autoptr(NatterIdentity) bob = natter_identity_new_random ();
  g_autoptr(GBytes) plain = g_bytes_new_static (plaintext, strlen (plaintext));
  g_autoptr(GBytes) sealed = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;

  sealed = natter_signal_seal (natter_identity_get_peer_id (bob), plain, &error);
  g_assert_no_error (error);
  len = g_bytes_get_size (sealed);

  for (gsize i = 0; i < len; i += 7)
    {
      g_autofree guint8 *copy = g_memdup2 (g_bytes_get_data (sealed, NULL), len);
      g_autoptr(GBytes) altered = NULL;
      g_autoptr(GBytes) opened = NULL;
      g_autoptr(GError) local_error = NULL;

      copy[i] ^= 0x01;
      altered = g_bytes_new (copy, len);
      opened = natter_signal_open (bob, altered, &local_error);
      g_assert_error (local_error, NATTER_SIGNAL_ERROR, NATTER_SIGNAL_ERROR_OPEN_FAILED);
      g_assert_null (opened);
    }

  /* Truncated below the overhead. */
  {
    g_autoptr(GBytes) short_blob = g_bytes_new_static ("short", 5);
    g_autoptr(GBytes) opened = natter_signal_open (bob, short_blob, &error);

    g_assert_error (error, NATTER_SIGNAL_ERROR, NATTER_SIGNAL_ERROR_OPEN_FAILED);
    g_assert_null (opened);
  }
}

static void
test_bad_input (void)
{
  g_autoptr(GBytes) plain = g_bytes_new_static (plaintext, strlen (plaintext));
  g_autofree char *big = g_malloc0 (NATTER_SIGNAL_MAX_PLAINTEXT + 1);
  g_autoptr(GBytes) too_big = g_bytes_new (big, NATTER_SIGNAL_MAX_PLAINTEXT + 1);
  g_autoptr(NatterIdentity) bob = natter_identity_new_random ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) sealed = NULL;

  sealed = natter_signal_seal ("nnotapeerid", plain, &error);
  g_assert_error (error, NATTER_SIGNAL_ERROR, NATTER_SIGNAL_ERROR_BAD_RECIPIENT);
  g_assert_null (sealed);
  g_clear_error (&error);

  sealed = natter_signal_seal (natter_identity_get_peer_id (bob), too_big, &error);
  g_assert_error (error, NATTER_SIGNAL_ERROR, NATTER_SIGNAL_ERROR_TOO_LARGE);
  g_assert_null (sealed);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/signal-seal/round-trip", test_round_trip);
  g_test_add_func ("/signal-seal/empty", test_empty);
  g_test_add_func ("/signal-seal/wrong-recipient", test_wrong_recipient);
  g_test_add_func ("/signal-seal/altered", test_altered);
  g_test_add_func ("/signal-seal/bad-input", test_bad_input);

  return g_test_run ();
}
