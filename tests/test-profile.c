/* test-profile.c: tests of profile folders, locking, identity and settings
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "core/natter-profile.h"

/* Set to "MODE:DIR" in the environment of a child started by run_child(). */
#define CHILD_VAR "NATTER_TEST_PROFILE_CHILD"

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
  char *dir = g_dir_make_tmp ("natter-profile-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

static guint
file_mode (const char *path)
{
  struct stat st;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  return st.st_mode & 07777;
}

/* Runs this test program again as a separate process (see child_main()),
 * with its environment given explicitly rather than through setenv(),
 * which is unsafe once threads exist.  Returns the child's output. */
static char *
run_child (const char *mode,
           const char *dir,
           const char *schema_dir)
{
  g_autofree char *self_exe = NULL;
  g_autofree char *child_out = NULL;
  g_autofree char *child_err = NULL;
  g_auto(GStrv) envp = g_get_environ ();
  g_autofree char *mode_env = g_strdup_printf ("%s:%s", mode, dir);
  const char *argv[2] = { NULL, NULL };
  GError *error = NULL;
  int status = 0;

  self_exe = g_file_read_link ("/proc/self/exe", &error);
  g_assert_no_error (error);
  argv[0] = self_exe;

  envp = g_environ_setenv (envp, CHILD_VAR, mode_env, TRUE);
  if (schema_dir != NULL)
    {
      envp = g_environ_setenv (envp, "GSETTINGS_SCHEMA_DIR", schema_dir, TRUE);
      envp = g_environ_setenv (envp, "XDG_DATA_DIRS", schema_dir, TRUE);
    }

  g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_DEFAULT, NULL, NULL,
                &child_out, &child_err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("child %s failed: %s%s", mode, child_out, child_err);

  return g_steal_pointer (&child_out);
}

static void
test_resolve (void)
{
  g_autofree char *base = g_build_filename (g_get_user_data_dir (), "natter", NULL);
  g_autofree char *longest = g_strnfill (64, 'x');
  g_autofree char *too_long = g_strnfill (65, 'x');
  const char *valid[] = { "work", "a", "Work.2_test-B", "x.", "-", longest };
  const char *paths[] = { "/abs/profile", "./rel", "rel/sub/", "../up", "/" };
  const char *invalid[] = {
    "", ".", "..", ".hidden", "a b", "tab\there", "new\nline", "é",
    "semi;colon", "back\\slash", "star*", "~", too_long,
  };
  GError *error = NULL;

  {
    g_autofree char *dir = natter_profile_resolve_directory (NULL, &error);
    g_autofree char *expected = g_build_filename (base, "default", NULL);

    g_assert_no_error (error);
    g_assert_cmpstr (dir, ==, expected);
  }

  for (guint i = 0; i < G_N_ELEMENTS (valid); i++)
    {
      g_autofree char *dir = natter_profile_resolve_directory (valid[i], &error);
      g_autofree char *expected = g_build_filename (base, valid[i], NULL);

      g_assert_no_error (error);
      g_assert_cmpstr (dir, ==, expected);
    }

  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      g_autofree char *dir = natter_profile_resolve_directory (paths[i], &error);

      g_assert_no_error (error);
      g_assert_cmpstr (dir, ==, paths[i]);
    }

  for (guint i = 0; i < G_N_ELEMENTS (invalid); i++)
    {
      g_autofree char *dir = natter_profile_resolve_directory (invalid[i], &error);
      g_autoptr(NatterProfile) profile = NULL;

      g_assert_null (dir);
      g_assert_error (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_INVALID_NAME);
      g_clear_error (&error);

      profile = natter_profile_open (invalid[i], NULL, &error);
      g_assert_null (profile);
      g_assert_error (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_INVALID_NAME);
      g_clear_error (&error);
    }
}

static void
test_open_by_name (void)
{
  g_autofree char *expected_dir = g_build_filename (g_get_user_data_dir (),
                                                    "natter", "work", NULL);
  g_autofree char *identity_path = g_build_filename (expected_dir, "identity.key", NULL);
  g_autofree char *lock_path = g_build_filename (expected_dir, "lock", NULL);
  g_autofree char *db_path = g_build_filename (expected_dir, "natter.db", NULL);
  g_autofree char *lock_contents = NULL;
  g_autofree char *pid_line = g_strdup_printf ("%ld\n", (long) getpid ());
  g_autofree char *peer_id = NULL;
  g_autoptr(NatterProfile) profile = NULL;
  GError *error = NULL;

  profile = natter_profile_open ("work", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (profile);

  g_assert_cmpstr (natter_profile_get_name (profile), ==, "work");
  g_assert_cmpstr (natter_profile_get_directory (profile), ==, expected_dir);
  g_assert_cmpstr (natter_profile_get_database_path (profile), ==, db_path);
  g_assert_true (natter_profile_is_new (profile));
  g_assert_true (NATTER_IS_IDENTITY (natter_profile_get_identity (profile)));
  g_assert_true (G_IS_SETTINGS (natter_profile_get_settings (profile)));

  g_assert_cmpuint (file_mode (expected_dir), ==, 0700);
  g_assert_cmpuint (file_mode (identity_path), ==, 0600);

  g_file_get_contents (lock_path, &lock_contents, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (lock_contents, ==, pid_line);

  /* Reopening finds the same identity rather than making a new one. */
  peer_id = g_strdup (natter_identity_get_peer_id (natter_profile_get_identity (profile)));
  g_clear_object (&profile);

  profile = natter_profile_open ("work", NULL, &error);
  g_assert_no_error (error);
  g_assert_false (natter_profile_is_new (profile));
  g_assert_cmpstr (natter_identity_get_peer_id (natter_profile_get_identity (profile)),
                   ==, peer_id);
}

static void
test_open_path (void)
{
  g_autofree char *tmp = make_tmp_dir ();
  g_autofree char *dir = g_build_filename (tmp, "nested", "my-profile", NULL);
  g_autofree char *parent = g_path_get_dirname (dir);
  g_autoptr(NatterProfile) profile = NULL;
  GError *error = NULL;

  profile = natter_profile_open (dir, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (natter_profile_get_directory (profile), ==, dir);
  g_assert_cmpstr (natter_profile_get_name (profile), ==, "my-profile");
  g_assert_cmpuint (file_mode (dir), ==, 0700);
  g_assert_cmpuint (file_mode (parent), ==, 0700);
  g_assert_true (g_str_has_prefix (natter_profile_get_database_path (profile), dir));

  g_clear_object (&profile);
  rm_rf (tmp);
}

static void
test_unsafe (void)
{
  g_autofree char *tmp = make_tmp_dir ();
  g_autofree char *open_dir = g_build_filename (tmp, "open", NULL);
  g_autofree char *file = g_build_filename (tmp, "file", NULL);
  g_autofree char *under_file = g_build_filename (file, "profile", NULL);
  g_autoptr(NatterProfile) profile = NULL;
  GError *error = NULL;

  /* A folder others can enter is refused, not silently changed. */
  g_assert_cmpint (g_mkdir (open_dir, 0700), ==, 0);
  g_assert_cmpint (g_chmod (open_dir, 0755), ==, 0);
  profile = natter_profile_open (open_dir, NULL, &error);
  g_assert_null (profile);
  g_assert_error (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_UNSAFE);
  g_assert_nonnull (strstr (error->message, open_dir));
  g_assert_nonnull (strstr (error->message, "0755"));
  g_clear_error (&error);
  g_assert_cmpuint (file_mode (open_dir), ==, 0755);

  g_file_set_contents (file, "", 0, &error);
  g_assert_no_error (error);
  profile = natter_profile_open (file, NULL, &error);
  g_assert_null (profile);
  g_assert_error (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_UNSAFE);
  g_clear_error (&error);

  profile = natter_profile_open (under_file, NULL, &error);
  g_assert_null (profile);
  g_assert_nonnull (error);
  g_clear_error (&error);

  rm_rf (tmp);
}

static void
test_bad_identity_file (void)
{
  g_autofree char *tmp = make_tmp_dir ();
  g_autofree char *key = g_build_filename (tmp, "identity.key", NULL);
  g_autoptr(NatterProfile) profile = NULL;
  GError *error = NULL;

  g_file_set_contents (key, "not a key", -1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_chmod (key, 0600), ==, 0);

  profile = natter_profile_open (tmp, NULL, &error);
  g_assert_null (profile);
  g_assert_error (error, NATTER_IDENTITY_ERROR, NATTER_IDENTITY_ERROR_BAD_KEY_FILE);
  g_clear_error (&error);

  /* The failed open released its lock. */
  g_unlink (key);
  profile = natter_profile_open (tmp, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (natter_profile_is_new (profile));

  g_clear_object (&profile);
  rm_rf (tmp);
}

static void
test_lock_in_process (void)
{
  g_autofree char *tmp = make_tmp_dir ();
  g_autofree char *pid_text = g_strdup_printf ("(PID %ld)", (long) getpid ());
  g_autoptr(NatterProfile) first = NULL;
  g_autoptr(NatterProfile) second = NULL;
  GError *error = NULL;

  first = natter_profile_open (tmp, NULL, &error);
  g_assert_no_error (error);

  /* flock() locks belong to the open file description, so a second open in
   * the same process conflicts just as another process would. */
  second = natter_profile_open (tmp, NULL, &error);
  g_assert_null (second);
  g_assert_error (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_LOCKED);
  g_assert_nonnull (strstr (error->message, pid_text));
  g_assert_nonnull (strstr (error->message, tmp));
  g_assert_nonnull (strstr (error->message, "already in use"));
  g_clear_error (&error);

  /* Closing the profile releases the lock. */
  g_clear_object (&first);
  second = natter_profile_open (tmp, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (second);

  g_clear_object (&second);
  rm_rf (tmp);
}

static void
test_lock_other_process (void)
{
  g_autofree char *tmp = make_tmp_dir ();
  g_autofree char *pid_text = g_strdup_printf ("(PID %ld)", (long) getpid ());
  g_autofree char *child_out = NULL;
  g_autoptr(NatterProfile) profile = NULL;
  GError *error = NULL;

  profile = natter_profile_open (tmp, NULL, &error);
  g_assert_no_error (error);

  child_out = run_child ("lock", tmp, NULL);
  g_assert_nonnull (strstr (child_out, "already in use by another Natter process"));
  g_assert_nonnull (strstr (child_out, pid_text));

  g_clear_object (&profile);
  rm_rf (tmp);
}

static void
open_ready_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  GAsyncResult **out = user_data;

  g_assert_null (source);
  *out = g_object_ref (result);
}

static GAsyncResult *
wait_for_open (const char   *name_or_path,
               GCancellable *cancellable)
{
  GAsyncResult *result = NULL;

  natter_profile_open_async (name_or_path, cancellable, open_ready_cb, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);

  return result;
}

static void
test_open_async (void)
{
  g_autofree char *tmp = make_tmp_dir ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(NatterProfile) profile = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  GError *error = NULL;

  result = wait_for_open (tmp, NULL);
  g_assert_true (g_task_is_valid (result, NULL));
  g_assert_true (g_task_get_source_tag (G_TASK (result)) == natter_profile_open_async);
  profile = natter_profile_open_finish (result, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (natter_profile_get_directory (profile), ==, tmp);
  g_clear_object (&result);

  /* Errors come back through _finish too. */
  result = wait_for_open (tmp, NULL);
  g_assert_null (natter_profile_open_finish (result, &error));
  g_assert_error (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_LOCKED);
  g_clear_error (&error);
  g_clear_object (&result);

  result = wait_for_open ("..", NULL);
  g_assert_null (natter_profile_open_finish (result, &error));
  g_assert_error (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_INVALID_NAME);
  g_clear_error (&error);
  g_clear_object (&result);

  g_clear_object (&profile);
  g_cancellable_cancel (cancellable);
  result = wait_for_open (tmp, cancellable);
  g_assert_null (natter_profile_open_finish (result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_clear_object (&result);

  rm_rf (tmp);
}

static void
test_display_name (void)
{
  g_autofree char *tmp = make_tmp_dir ();
  g_autofree char *ini_path = g_build_filename (tmp, "settings.ini", NULL);
  g_autofree char *ini = NULL;
  g_autofree char *fallback = NULL;
  g_autofree char *name = NULL;
  g_autoptr(NatterProfile) profile = NULL;
  const char *real_name = g_get_real_name ();
  GSettings *settings;
  GError *error = NULL;

  profile = natter_profile_open (tmp, NULL, &error);
  g_assert_no_error (error);
  settings = natter_profile_get_settings (profile);

  if (real_name[0] != '\0' && strcmp (real_name, "Unknown") != 0)
    fallback = g_strdup (real_name);
  else
    fallback = g_strdup (g_get_user_name ());

  name = natter_profile_dup_display_name (profile);
  g_assert_cmpstr (name, ==, fallback);
  g_assert_cmpstr (name, !=, "");
  g_clear_pointer (&name, g_free);

  /* Blank counts as unset. */
  g_settings_set_string (settings, "display-name", "   ");
  name = natter_profile_dup_display_name (profile);
  g_assert_cmpstr (name, ==, fallback);
  g_clear_pointer (&name, g_free);

  g_settings_set_string (settings, "display-name", "Ada Lovelace");
  name = natter_profile_dup_display_name (profile);
  g_assert_cmpstr (name, ==, "Ada Lovelace");
  g_clear_pointer (&name, g_free);

  /* The setting lives in the profile folder and survives a reopen. */
  g_settings_sync ();
  g_clear_object (&profile);
  g_file_get_contents (ini_path, &ini, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (ini, "[Profile]"));
  g_assert_nonnull (strstr (ini, "Ada Lovelace"));

  profile = natter_profile_open (tmp, NULL, &error);
  g_assert_no_error (error);
  name = natter_profile_dup_display_name (profile);
  g_assert_cmpstr (name, ==, "Ada Lovelace");

  g_clear_object (&profile);
  rm_rf (tmp);
}

static void
test_settings_separate (void)
{
  g_autofree char *tmp_a = make_tmp_dir ();
  g_autofree char *tmp_b = make_tmp_dir ();
  g_autoptr(NatterProfile) a = NULL;
  g_autoptr(NatterProfile) b = NULL;
  g_autofree char *name = NULL;
  GError *error = NULL;

  a = natter_profile_open (tmp_a, NULL, &error);
  g_assert_no_error (error);
  b = natter_profile_open (tmp_b, NULL, &error);
  g_assert_no_error (error);

  g_assert_cmpstr (natter_identity_get_peer_id (natter_profile_get_identity (a)), !=,
                   natter_identity_get_peer_id (natter_profile_get_identity (b)));

  g_settings_set_string (natter_profile_get_settings (a), "display-name", "Alice");
  name = g_settings_get_string (natter_profile_get_settings (b), "display-name");
  g_assert_cmpstr (name, ==, "");

  g_clear_object (&a);
  g_clear_object (&b);
  rm_rf (tmp_a);
  rm_rf (tmp_b);
}

static void
test_no_schema (void)
{
  g_autofree char *tmp = make_tmp_dir ();
  g_autofree char *empty = make_tmp_dir ();
  g_autofree char *child_out = NULL;

  /* The schema source is read once per process, so the missing schema is
   * tried in a child that sees only an empty schema folder. */
  child_out = run_child ("no-schema", tmp, empty);
  g_assert_nonnull (strstr (child_out, "org.natter.Natter.Profile"));

  rm_rf (tmp);
  rm_rf (empty);
}

/* The child side of run_child(): opens the profile, expects @code, prints
 * the message and exits 0 only when the error was the expected one. */
static int
child_main (const char *mode,
            const char *dir)
{
  g_autoptr(NatterProfile) profile = NULL;
  GError *error = NULL;
  int code;

  if (g_strcmp0 (mode, "lock") == 0)
    code = NATTER_PROFILE_ERROR_LOCKED;
  else if (g_strcmp0 (mode, "no-schema") == 0)
    code = NATTER_PROFILE_ERROR_NO_SCHEMA;
  else
    return 2;

  profile = natter_profile_open (dir, NULL, &error);
  if (profile != NULL || !g_error_matches (error, NATTER_PROFILE_ERROR, code))
    {
      g_printerr ("unexpected result: %s\n", error ? error->message : "opened");
      g_clear_error (&error);
      return 1;
    }

  g_print ("%s\n", error->message);
  g_clear_error (&error);
  return 0;
}

int
main (int   argc,
      char *argv[])
{
  const char *child = g_getenv (CHILD_VAR);
  g_autofree char *data_home = NULL;
  int status;

  if (child != NULL)
    {
      g_auto(GStrv) parts = g_strsplit (child, ":", 2);

      return child_main (parts[0], parts[1]);
    }

  /* Name-based profiles go to a throw-away $XDG_DATA_HOME.  Set here, before
   * any thread exists, rather than with G_TEST_OPTION_ISOLATE_DIRS, whose
   * per-test reset of the user folders leaks by design and so trips the
   * sanitizer build. */
  data_home = make_tmp_dir ();
  g_setenv ("XDG_DATA_HOME", data_home, TRUE);

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/profile/resolve", test_resolve);
  g_test_add_func ("/profile/open-by-name", test_open_by_name);
  g_test_add_func ("/profile/open-path", test_open_path);
  g_test_add_func ("/profile/unsafe", test_unsafe);
  g_test_add_func ("/profile/bad-identity-file", test_bad_identity_file);
  g_test_add_func ("/profile/lock/in-process", test_lock_in_process);
  g_test_add_func ("/profile/lock/other-process", test_lock_other_process);
  g_test_add_func ("/profile/open-async", test_open_async);
  g_test_add_func ("/profile/display-name", test_display_name);
  g_test_add_func ("/profile/settings-separate", test_settings_separate);
  g_test_add_func ("/profile/no-schema", test_no_schema);

  status = g_test_run ();
  rm_rf (data_home);

  return status;
}
