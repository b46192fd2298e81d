/* test-identity.c: tests of identities, peer IDs, signatures and safety numbers
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <sodium.h>

#include "core/natter-identity.h"

/* Pinned so that any change to the peer ID or safety number format, which
 * would break every saved contact, shows up as a failing test.  Checked
 * against an independent implementation (Python hashlib + base64). */
#define SEED_A_PEER_ID "naoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4mqk3g74"
#define SEED_B_PEER_ID "nfgwlvykbxtfpbmrodkkngtily43b4utnbp7bfsexss6jgiuwnxl2d7fmjm"
#define SEED_AB_SAFETY "58861 66474 82310 05926 31379 62995 62084 87029 01836 81120 81804 31902"

static const char base32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static NatterIdentity *
identity_from_counting_seed (guint8 first)
{
  guint8 seed[32];
  GError *error = NULL;
  NatterIdentity *identity;

  for (guint i = 0; i < sizeof seed; i++)
    seed[i] = first + i;
  identity = natter_identity_new_from_seed (seed, sizeof seed, &error);
  g_assert_no_error (error);
  g_assert_nonnull (identity);

  return identity;
}

static void
rm_rf (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);

  if (dir != NULL)
    {
      const char *name;

      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          rm_rf (child);
        }
      g_dir_close (dir);
      g_rmdir (path);
    }
  else
    {
      g_unlink (path);
    }
}

static char *
make_tmp_dir (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("natter-identity-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

static void
write_private_file (const char   *path,
                    const guint8 *data,
                    gsize         len)
{
  GError *error = NULL;

  g_file_set_contents (path, (const char *) data, len, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_chmod (path, 0600), ==, 0);
}

static void
assert_parse_fails (const char *text,
                    int         code)
{
  guint8 public_key[NATTER_PUBLIC_KEY_LEN];
  GError *error = NULL;
  char *normalized;

  g_assert_false (natter_peer_id_parse (text, public_key, &error));
  g_assert_error (error, NATTER_IDENTITY_ERROR, code);
  g_assert_nonnull (error->message);
  g_clear_error (&error);

  normalized = natter_peer_id_normalize (text, &error);
  g_assert_null (normalized);
  g_assert_error (error, NATTER_IDENTITY_ERROR, code);
  g_clear_error (&error);

  g_assert_false (natter_peer_id_is_valid (text));
}

static void
test_peer_id_format (void)
{
  g_autoptr(NatterIdentity) a = identity_from_counting_seed (0);
  g_autoptr(NatterIdentity) b = identity_from_counting_seed (32);
  const char *peer_id = natter_identity_get_peer_id (a);
  g_autofree char *from_key = NULL;

  /* 32 + 4 bytes = 288 bits, 58 base32 digits, plus the prefix. */
  g_assert_cmpint (NATTER_PEER_ID_LEN, ==, 1 + (36 * 8 + 4) / 5);
  g_assert_cmpint (strlen (peer_id), ==, NATTER_PEER_ID_LEN);
  g_assert_cmpint (peer_id[0], ==, 'n');
  for (const char *p = peer_id + 1; *p != '\0'; p++)
    g_assert_nonnull (strchr (base32_alphabet, *p));

  g_assert_cmpstr (peer_id, ==, SEED_A_PEER_ID);
  g_assert_cmpstr (natter_identity_get_peer_id (b), ==, SEED_B_PEER_ID);

  from_key = natter_peer_id_from_public_key (natter_identity_get_public_key (a));
  g_assert_cmpstr (from_key, ==, peer_id);
}

static void
test_peer_id_round_trip (void)
{
  for (guint i = 0; i < 64; i++)
    {
      g_autoptr(NatterIdentity) identity = natter_identity_new_random ();
      const char *peer_id = natter_identity_get_peer_id (identity);
      guint8 public_key[NATTER_PUBLIC_KEY_LEN];
      g_autofree char *normalized = NULL;
      GError *error = NULL;

      g_assert_cmpint (strlen (peer_id), ==, NATTER_PEER_ID_LEN);
      g_assert_true (natter_peer_id_parse (peer_id, public_key, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (public_key, sizeof public_key,
                       natter_identity_get_public_key (identity),
                       NATTER_PUBLIC_KEY_LEN);

      normalized = natter_peer_id_normalize (peer_id, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (normalized, ==, peer_id);
      g_assert_true (natter_peer_id_is_valid (peer_id));
    }
}

static void
test_peer_id_lenient (void)
{
  g_autoptr(NatterIdentity) identity = identity_from_counting_seed (0);
  const char *peer_id = natter_identity_get_peer_id (identity);
  g_autofree char *upper = g_ascii_strup (peer_id, -1);
  g_autoptr(GString) grouped = g_string_new ("  ");
  g_autoptr(GString) spaced = g_string_new (NULL);
  const char *variants[4];

  /* As people write IDs down: in groups, with dashes or spaces, mixed case,
   * with the newline a copy from a terminal brings along. */
  for (guint i = 0; peer_id[i] != '\0'; i++)
    {
      if (i > 0 && i % 5 == 0)
        g_string_append_c (grouped, '-');
      g_string_append_c (grouped, i % 3 == 0 ? g_ascii_toupper (peer_id[i])
                                             : peer_id[i]);
      if (i > 0 && i % 4 == 0)
        g_string_append (spaced, " \t");
      g_string_append_c (spaced, peer_id[i]);
    }
  g_string_append (grouped, "\n");

  variants[0] = peer_id;
  variants[1] = upper;
  variants[2] = grouped->str;
  variants[3] = spaced->str;

  for (guint i = 0; i < G_N_ELEMENTS (variants); i++)
    {
      guint8 public_key[NATTER_PUBLIC_KEY_LEN];
      g_autofree char *normalized = NULL;
      GError *error = NULL;

      g_assert_true (natter_peer_id_parse (variants[i], public_key, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (public_key, sizeof public_key,
                       natter_identity_get_public_key (identity),
                       NATTER_PUBLIC_KEY_LEN);

      normalized = natter_peer_id_normalize (variants[i], &error);
      g_assert_no_error (error);
      g_assert_cmpstr (normalized, ==, peer_id);
    }
}

static void
test_peer_id_mistyped (void)
{
  g_autoptr(NatterIdentity) identity = identity_from_counting_seed (0);
  const char *peer_id = natter_identity_get_peer_id (identity);
  char typo[NATTER_PEER_ID_LEN + 1];

  /* Every single-character substitution after the prefix. */
  for (guint i = 1; i < NATTER_PEER_ID_LEN; i++)
    {
      for (const char *c = base32_alphabet; *c != '\0'; c++)
        {
          if (*c == peer_id[i])
            continue;
          memcpy (typo, peer_id, sizeof typo);
          typo[i] = *c;
          assert_parse_fails (typo, NATTER_IDENTITY_ERROR_BAD_CHECKSUM);
        }
    }

  /* Every swap of two different neighbours. */
  for (guint i = 1; i + 1 < NATTER_PEER_ID_LEN; i++)
    {
      if (peer_id[i] == peer_id[i + 1])
        continue;
      memcpy (typo, peer_id, sizeof typo);
      typo[i] = peer_id[i + 1];
      typo[i + 1] = peer_id[i];
      assert_parse_fails (typo, NATTER_IDENTITY_ERROR_BAD_CHECKSUM);
    }
}

static void
test_peer_id_malformed (void)
{
  g_autoptr(NatterIdentity) identity = identity_from_counting_seed (0);
  const char *peer_id = natter_identity_get_peer_id (identity);
  const char *bad_chars[] = { "0", "1", "8", "9", "!", "_", ".", "é", "\x01" };
  g_autofree char *longer = g_strconcat (peer_id, "a", NULL);
  g_autofree char *no_prefix = g_strdup (peer_id + 1);
  g_autofree char *wrong_prefix = g_strdup (peer_id);
  g_autofree char *huge = NULL;
  char truncated[NATTER_PEER_ID_LEN + 1];

  assert_parse_fails (NULL, NATTER_IDENTITY_ERROR_INVALID_PEER_ID);
  assert_parse_fails ("", NATTER_IDENTITY_ERROR_INVALID_PEER_ID);
  assert_parse_fails (" - \n", NATTER_IDENTITY_ERROR_INVALID_PEER_ID);
  assert_parse_fails ("n", NATTER_IDENTITY_ERROR_INVALID_PEER_ID);

  /* Truncated anywhere, or one character too many. */
  for (guint len = 1; len < NATTER_PEER_ID_LEN; len++)
    {
      memcpy (truncated, peer_id, len);
      truncated[len] = '\0';
      assert_parse_fails (truncated, NATTER_IDENTITY_ERROR_INVALID_PEER_ID);
    }
  assert_parse_fails (longer, NATTER_IDENTITY_ERROR_INVALID_PEER_ID);
  huge = g_strnfill (1 << 20, 'a');
  huge[0] = 'n';
  assert_parse_fails (huge, NATTER_IDENTITY_ERROR_INVALID_PEER_ID);

  /* Wrong or missing prefix. */
  assert_parse_fails (no_prefix, NATTER_IDENTITY_ERROR_INVALID_PEER_ID);
  for (const char *c = "abmoz27"; *c != '\0'; c++)
    {
      wrong_prefix[0] = *c;
      assert_parse_fails (wrong_prefix, NATTER_IDENTITY_ERROR_INVALID_PEER_ID);
    }

  /* Characters outside the alphabet, at the start, middle and end. */
  for (guint i = 0; i < G_N_ELEMENTS (bad_chars); i++)
    {
      const guint positions[] = { 1, 30, NATTER_PEER_ID_LEN - 1 };

      for (guint j = 0; j < G_N_ELEMENTS (positions); j++)
        {
          g_autoptr(GString) bad = g_string_new (peer_id);

          g_string_erase (bad, positions[j], 1);
          g_string_insert (bad, positions[j], bad_chars[i]);
          assert_parse_fails (bad->str, NATTER_IDENTITY_ERROR_INVALID_PEER_ID);
        }
    }
}

static void
test_peer_id_invalid_key (void)
{
  guint8 bad_keys[3][NATTER_PUBLIC_KEY_LEN];
  guint8 x25519[NATTER_X25519_KEY_LEN];

  /* The identity point (small order), an all-zero key (small order) and a
   * non-canonical encoding (y >= p): each with a correct checksum, so only
   * the key check can catch them. */
  memset (bad_keys, 0, sizeof bad_keys);
  bad_keys[0][0] = 1;
  memset (bad_keys[2], 0xff, NATTER_PUBLIC_KEY_LEN);
  bad_keys[2][31] = 0x7f;

  for (guint i = 0; i < G_N_ELEMENTS (bad_keys); i++)
    {
      g_autofree char *peer_id = natter_peer_id_from_public_key (bad_keys[i]);
      GError *error = NULL;

      g_assert_cmpint (strlen (peer_id), ==, NATTER_PEER_ID_LEN);
      assert_parse_fails (peer_id, NATTER_IDENTITY_ERROR_INVALID_KEY);

      g_assert_false (natter_public_key_to_x25519 (bad_keys[i], x25519, &error));
      g_assert_error (error, NATTER_IDENTITY_ERROR,
                      NATTER_IDENTITY_ERROR_INVALID_KEY);
      g_clear_error (&error);
    }
}

/* IDs that parsed once are remembered: asking again gives the same key,
 * every spelling of a bad ID is still refused each time, and more IDs
 * than are remembered still parse right. */
static void
test_peer_id_repeated (void)
{
  g_autoptr(NatterIdentity) a = identity_from_counting_seed (0);
  const char *peer_id = natter_identity_get_peer_id (a);
  g_autofree char *mistyped = g_strdup (peer_id);
  g_autoptr(GPtrArray) identities = g_ptr_array_new_with_free_func (g_object_unref);
  guint8 small_order[NATTER_PUBLIC_KEY_LEN] = { 1 };
  g_autofree char *bad_key = natter_peer_id_from_public_key (small_order);

  mistyped[10] = mistyped[10] == 'a' ? 'b' : 'a';
  for (guint round = 0; round < 3; round++)
    {
      guint8 key[NATTER_PUBLIC_KEY_LEN];
      GError *error = NULL;

      g_assert_true (natter_peer_id_parse (peer_id, key, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (key, sizeof key, natter_identity_get_public_key (a), NATTER_PUBLIC_KEY_LEN);
      assert_parse_fails (mistyped, NATTER_IDENTITY_ERROR_BAD_CHECKSUM);
      assert_parse_fails (bad_key, NATTER_IDENTITY_ERROR_INVALID_KEY);
    }

  for (guint i = 0; i < 1500; i++)
    g_ptr_array_add (identities, natter_identity_new_random ());
  for (guint pass = 0; pass < 2; pass++)
    for (guint i = 0; i < identities->len; i++)
      {
        NatterIdentity *identity = g_ptr_array_index (identities, i);
        guint8 key[NATTER_PUBLIC_KEY_LEN];

        g_assert_true (natter_peer_id_parse (natter_identity_get_peer_id (identity), key, NULL));
        g_assert_cmpmem (key, sizeof key, natter_identity_get_public_key (identity),
                         NATTER_PUBLIC_KEY_LEN);
      }
}

static void
test_seed (void)
{
  g_autoptr(NatterIdentity) a = identity_from_counting_seed (0);
  g_autoptr(NatterIdentity) again = identity_from_counting_seed (0);
  g_autoptr(NatterIdentity) b = identity_from_counting_seed (1);
  g_autoptr(NatterIdentity) short_seed = NULL;
  guint8 seed[33] = { 0 };
  GError *error = NULL;

  g_assert_cmpstr (natter_identity_get_peer_id (a), ==,
                   natter_identity_get_peer_id (again));
  g_assert_cmpstr (natter_identity_get_peer_id (a), !=,
                   natter_identity_get_peer_id (b));

  short_seed = natter_identity_new_from_seed (seed, 31, &error);
  g_assert_null (short_seed);
  g_assert_error (error, NATTER_IDENTITY_ERROR, NATTER_IDENTITY_ERROR_INVALID_KEY);
  g_clear_error (&error);

  short_seed = natter_identity_new_from_seed (seed, 33, &error);
  g_assert_null (short_seed);
  g_assert_error (error, NATTER_IDENTITY_ERROR, NATTER_IDENTITY_ERROR_INVALID_KEY);
  g_clear_error (&error);
}

static void
test_sign_verify (void)
{
  g_autoptr(NatterIdentity) alice = natter_identity_new_random ();
  g_autoptr(NatterIdentity) mallory = natter_identity_new_random ();
  const guint8 *pk = natter_identity_get_public_key (alice);
  guint8 message[] = "meet at the usual place at 6";
  guint8 signature[NATTER_SIGNATURE_LEN];
  guint8 forged[NATTER_SIGNATURE_LEN];
  GError *error = NULL;

  natter_identity_sign (alice, message, sizeof message, signature);
  g_assert_true (natter_verify_signature (pk, message, sizeof message,
                                          signature, &error));
  g_assert_no_error (error);

  /* Every single-bit change of the message or the signature is caught. */
  for (gsize bit = 0; bit < sizeof message * 8; bit++)
    {
      message[bit / 8] ^= 1 << (bit % 8);
      g_assert_false (natter_verify_signature (pk, message, sizeof message,
                                               signature, &error));
      g_assert_error (error, NATTER_IDENTITY_ERROR,
                      NATTER_IDENTITY_ERROR_BAD_SIGNATURE);
      g_clear_error (&error);
      message[bit / 8] ^= 1 << (bit % 8);
    }
  for (gsize bit = 0; bit < sizeof signature * 8; bit++)
    {
      memcpy (forged, signature, sizeof forged);
      forged[bit / 8] ^= 1 << (bit % 8);
      g_assert_false (natter_verify_signature (pk, message, sizeof message,
                                               forged, &error));
      g_assert_error (error, NATTER_IDENTITY_ERROR,
                      NATTER_IDENTITY_ERROR_BAD_SIGNATURE);
      g_clear_error (&error);
    }

  /* A shorter message, or the right signature under someone else's key. */
  g_assert_false (natter_verify_signature (pk, message, sizeof message - 1,
                                           signature, NULL));
  g_assert_false (natter_verify_signature (natter_identity_get_public_key (mallory),
                                           message, sizeof message,
                                           signature, &error));
  g_assert_error (error, NATTER_IDENTITY_ERROR, NATTER_IDENTITY_ERROR_BAD_SIGNATURE);
  g_clear_error (&error);

  /* The empty message is a message too. */
  natter_identity_sign (alice, NULL, 0, signature);
  g_assert_true (natter_verify_signature (pk, NULL, 0, signature, &error));
  g_assert_no_error (error);
}

static gboolean
is_safety_number_format (const char *text)
{
  if (strlen (text) != 12 * 5 + 11)
    return FALSE;

  for (guint i = 0; text[i] != '\0'; i++)
    {
      if (i % 6 == 5 ? text[i] != ' ' : !g_ascii_isdigit (text[i]))
        return FALSE;
    }

  return TRUE;
}

static void
test_safety_number (void)
{
  g_autoptr(NatterIdentity) a = identity_from_counting_seed (0);
  g_autoptr(NatterIdentity) b = identity_from_counting_seed (32);
  g_autoptr(NatterIdentity) c = natter_identity_new_random ();
  const guint8 *pka = natter_identity_get_public_key (a);
  const guint8 *pkb = natter_identity_get_public_key (b);
  const guint8 *pkc = natter_identity_get_public_key (c);
  g_autofree char *ab = natter_safety_number (pka, pkb);
  g_autofree char *ba = natter_safety_number (pkb, pka);
  g_autofree char *ac = natter_safety_number (pka, pkc);
  g_autofree char *bc = natter_safety_number (pkb, pkc);
  g_autofree char *aa = natter_safety_number (pka, pka);

  g_assert_true (is_safety_number_format (ab));
  g_assert_true (is_safety_number_format (ac));
  g_assert_true (is_safety_number_format (aa));

  g_assert_cmpstr (ab, ==, ba);
  g_assert_cmpstr (ab, ==, SEED_AB_SAFETY);
  g_assert_cmpstr (ab, !=, ac);
  g_assert_cmpstr (ab, !=, bc);
  g_assert_cmpstr (ac, !=, bc);
}

static void
test_x25519 (void)
{
  g_autoptr(NatterIdentity) alice = natter_identity_new_random ();
  g_autoptr(NatterIdentity) bob = natter_identity_new_random ();
  guint8 derived[NATTER_X25519_KEY_LEN];
  guint8 from_secret[NATTER_X25519_KEY_LEN];
  guint8 shared_alice[crypto_scalarmult_BYTES];
  guint8 shared_bob[crypto_scalarmult_BYTES];
  GError *error = NULL;

  /* What a peer derives from Bob's public key is the key Bob decrypts with. */
  g_assert_true (natter_public_key_to_x25519 (natter_identity_get_public_key (bob),
                                              derived, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (derived, sizeof derived,
                   natter_identity_get_x25519_public (bob), NATTER_X25519_KEY_LEN);

  g_assert_cmpint (crypto_scalarmult_base (from_secret,
                                           natter_identity_get_x25519_secret (bob)),
                   ==, 0);
  g_assert_cmpmem (from_secret, sizeof from_secret, derived, sizeof derived);

  g_assert_cmpint (crypto_scalarmult (shared_alice,
                                      natter_identity_get_x25519_secret (alice),
                                      derived), ==, 0);
  g_assert_true (natter_public_key_to_x25519 (natter_identity_get_public_key (alice),
                                              derived, &error));
  g_assert_no_error (error);
  g_assert_cmpint (crypto_scalarmult (shared_bob,
                                      natter_identity_get_x25519_secret (bob),
                                      derived), ==, 0);
  g_assert_cmpmem (shared_alice, sizeof shared_alice,
                   shared_bob, sizeof shared_bob);
}

static void
test_file_create_reload (void)
{
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *path = g_build_filename (dir, "identity.key", NULL);
  g_autoptr(NatterIdentity) created = NULL;
  g_autoptr(NatterIdentity) loaded = NULL;
  gboolean was_created = FALSE;
  GError *error = NULL;
  struct stat st;
  GDir *listing;
  guint n_files = 0;

  created = natter_identity_load_or_create (path, &was_created, &error);
  g_assert_no_error (error);
  g_assert_nonnull (created);
  g_assert_true (was_created);

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_true (S_ISREG (st.st_mode));
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);
  g_assert_cmpint (st.st_size, ==, 48);

  loaded = natter_identity_load_or_create (path, &was_created, &error);
  g_assert_no_error (error);
  g_assert_false (was_created);
  g_assert_cmpstr (natter_identity_get_peer_id (loaded), ==,
                   natter_identity_get_peer_id (created));
  g_assert_cmpmem (natter_identity_get_x25519_secret (loaded), NATTER_X25519_KEY_LEN,
                   natter_identity_get_x25519_secret (created), NATTER_X25519_KEY_LEN);

  /* The temporary file was renamed, not left behind. */
  listing = g_dir_open (dir, 0, &error);
  g_assert_no_error (error);
  while (g_dir_read_name (listing) != NULL)
    n_files++;
  g_dir_close (listing);
  g_assert_cmpuint (n_files, ==, 1);

  rm_rf (dir);
}

static void
test_file_save_replaces (void)
{
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *path = g_build_filename (dir, "identity.key", NULL);
  g_autofree char *missing = g_build_filename (dir, "no", "such", "dir", NULL);
  g_autoptr(NatterIdentity) a = natter_identity_new_random ();
  g_autoptr(NatterIdentity) b = natter_identity_new_random ();
  g_autoptr(NatterIdentity) loaded = NULL;
  GError *error = NULL;
  struct stat st;

  g_assert_true (natter_identity_save (a, path, &error));
  g_assert_no_error (error);
  g_assert_true (natter_identity_save (b, path, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);

  loaded = natter_identity_load_or_create (path, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (natter_identity_get_peer_id (loaded), ==,
                   natter_identity_get_peer_id (b));

  g_assert_false (natter_identity_save (a, missing, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);

  rm_rf (dir);
}

static void
test_file_permissions (void)
{
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *path = g_build_filename (dir, "identity.key", NULL);
  g_autoptr(NatterIdentity) identity = natter_identity_new_random ();
  const guint modes[] = { 0644, 0640, 0604, 0660, 0606, 0610, 0601 };
  GError *error = NULL;

  g_assert_true (natter_identity_save (identity, path, &error));
  g_assert_no_error (error);

  for (guint i = 0; i < G_N_ELEMENTS (modes); i++)
    {
      g_autoptr(NatterIdentity) loaded = NULL;
      g_autofree char *mode_text = g_strdup_printf ("%04o", modes[i]);
      gboolean was_created = TRUE;

      g_assert_cmpint (g_chmod (path, modes[i]), ==, 0);
      loaded = natter_identity_load_or_create (path, &was_created, &error);
      g_assert_null (loaded);
      g_assert_false (was_created);
      g_assert_error (error, NATTER_IDENTITY_ERROR,
                      NATTER_IDENTITY_ERROR_BAD_KEY_FILE);
      /* The user must learn which file and what to do about it. */
      g_assert_nonnull (strstr (error->message, path));
      g_assert_nonnull (strstr (error->message, mode_text));
      g_assert_nonnull (strstr (error->message, "chmod 600"));
      g_clear_error (&error);
    }

  /* Once private again it loads, and was not rewritten meanwhile. */
  g_assert_cmpint (g_chmod (path, 0600), ==, 0);
  {
    g_autoptr(NatterIdentity) loaded = natter_identity_load_or_create (path, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (natter_identity_get_peer_id (loaded), ==,
                     natter_identity_get_peer_id (identity));
  }

  rm_rf (dir);
}

static void
assert_load_refused (const char *path)
{
  g_autoptr(NatterIdentity) loaded = NULL;
  gboolean was_created = TRUE;
  GError *error = NULL;

  loaded = natter_identity_load_or_create (path, &was_created, &error);
  g_assert_null (loaded);
  g_assert_false (was_created);
  g_assert_error (error, NATTER_IDENTITY_ERROR, NATTER_IDENTITY_ERROR_BAD_KEY_FILE);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);
}

static void
test_file_corrupt (void)
{
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *path = g_build_filename (dir, "identity.key", NULL);
  g_autofree char *good = NULL;
  g_autofree char *other = NULL;
  g_autoptr(NatterIdentity) identity = natter_identity_new_random ();
  guint8 buf[4096];
  gsize len = 0;
  GError *error = NULL;

  g_assert_true (natter_identity_save (identity, path, &error));
  g_assert_no_error (error);
  g_file_get_contents (path, &good, &len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (len, ==, 48);
  g_assert_cmpmem (good, 8, "NATTERID", 8);
  g_assert_cmpint (good[8], ==, 1);

  /* Empty and truncated at every length. */
  for (gsize n = 0; n < len; n++)
    {
      write_private_file (path, (const guint8 *) good, n);
      assert_load_refused (path);
    }

  /* Too long, by one byte or a lot. */
  memset (buf, 0, sizeof buf);
  memcpy (buf, good, len);
  write_private_file (path, buf, len + 1);
  assert_load_refused (path);
  write_private_file (path, buf, sizeof buf);
  assert_load_refused (path);

  /* Garbage of the right size. */
  randombytes_buf (buf, len);
  write_private_file (path, buf, len);
  assert_load_refused (path);

  /* Every single-bit flip: magic, version, reserved, seed or checksum. */
  for (gsize bit = 0; bit < len * 8; bit++)
    {
      memcpy (buf, good, len);
      buf[bit / 8] ^= 1 << (bit % 8);
      write_private_file (path, buf, len);
      assert_load_refused (path);
    }

  /* Not a regular file. */
  g_unlink (path);
  g_assert_cmpint (g_mkdir (path, 0700), ==, 0);
  assert_load_refused (path);
  g_rmdir (path);
  g_assert_cmpint (mkfifo (path, 0600), ==, 0);
  assert_load_refused (path);
  g_unlink (path);

  /* A symlink to a private file is followed; the checks apply to the
   * target. */
  other = g_build_filename (dir, "elsewhere.key", NULL);
  write_private_file (other, (const guint8 *) good, len);
  g_assert_cmpint (symlink (other, path), ==, 0);
  {
    g_autoptr(NatterIdentity) loaded = natter_identity_load_or_create (path, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (natter_identity_get_peer_id (loaded), ==,
                     natter_identity_get_peer_id (identity));
  }
  g_assert_cmpint (g_chmod (other, 0644), ==, 0);
  assert_load_refused (path);

  rm_rf (dir);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/identity/peer-id/format", test_peer_id_format);
  g_test_add_func ("/identity/peer-id/round-trip", test_peer_id_round_trip);
  g_test_add_func ("/identity/peer-id/lenient", test_peer_id_lenient);
  g_test_add_func ("/identity/peer-id/mistyped", test_peer_id_mistyped);
  g_test_add_func ("/identity/peer-id/malformed", test_peer_id_malformed);
  g_test_add_func ("/identity/peer-id/invalid-key", test_peer_id_invalid_key);
  g_test_add_func ("/identity/peer-id/repeated", test_peer_id_repeated);
  g_test_add_func ("/identity/seed", test_seed);
  g_test_add_func ("/identity/sign-verify", test_sign_verify);
  g_test_add_func ("/identity/safety-number", test_safety_number);
  g_test_add_func ("/identity/x25519", test_x25519);
  g_test_add_func ("/identity/file/create-reload", test_file_create_reload);
  g_test_add_func ("/identity/file/save-replaces", test_file_save_replaces);
  g_test_add_func ("/identity/file/permissions", test_file_permissions);
  g_test_add_func ("/identity/file/corrupt", test_file_corrupt);

  return g_test_run ();
}
