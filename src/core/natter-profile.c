/* natter-profile.c: a user profile: its folder, lock, identity and settings
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#define G_SETTINGS_ENABLE_BACKEND
#include <gio/gsettingsbackend.h>

#include "natter-profile.h"

#define PROFILE_DEFAULT_NAME   "default"
#define PROFILE_NAME_MAX       64
#define PROFILE_SCHEMA_ID      "org.natter.Natter.Profile"
#define PROFILE_SCHEMA_PATH    "/org/natter/Natter/Profile/"
#define PROFILE_BACKEND_ROOT   "/org/natter/Natter/"

struct _NatterProfile
{
  GObject         parent_instance;

  char           *name;
  char           *directory;
  char           *database_path;
  NatterIdentity *identity;
  GSettings      *settings;

  /* Holds the flock() for as long as the profile is open; the kernel drops
   * the lock when the descriptor closes, even if we crash. */
  int             lock_fd;
  guint           is_new : 1;
};

G_DEFINE_TYPE (NatterProfile, natter_profile, G_TYPE_OBJECT)

G_DEFINE_QUARK (natter-profile-error-quark, natter_profile_error)

static void
natter_profile_finalize (GObject *object)
{
  NatterProfile *self = NATTER_PROFILE (object);

  g_clear_object (&self->settings);
  g_clear_object (&self->identity);
  g_clear_pointer (&self->name, g_free);
  g_clear_pointer (&self->directory, g_free);
  g_clear_pointer (&self->database_path, g_free);
  if (self->lock_fd >= 0)
    {
      close (self->lock_fd);
      self->lock_fd = -1;
    }

  G_OBJECT_CLASS (natter_profile_parent_class)->finalize (object);
}

static void
natter_profile_class_init (NatterProfileClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = natter_profile_finalize;
}

static void
natter_profile_init (NatterProfile *self)
{
  self->lock_fd = -1;
}

static gboolean
is_valid_name (const char *name)
{
  gsize len = strlen (name);

  if (len == 0 || len > PROFILE_NAME_MAX || name[0] == '.')
    return FALSE;

  for (const char *p = name; *p != '\0'; p++)
    {
      if (!g_ascii_isalnum (*p) && *p != '.' && *p != '_' && *p != '-')
        return FALSE;
    }

  return TRUE;
}

/**
 * natter_profile_resolve_directory:
 * @name_or_path: (nullable): a profile name, or a folder path
 * @error: return location for a #GError
 *
 * A value containing a slash is the profile folder itself.  Any other value
 * is a profile name: 1 to 64 of the characters A–Z, a–z, 0–9, “.”, “_” and
 * “-”, not starting with a dot, kept in $XDG_DATA_HOME/natter/NAME.
 *
 * Returns: (transfer full) (nullable): the folder, or %NULL with
 *   %NATTER_PROFILE_ERROR_INVALID_NAME
 */
char *
natter_profile_resolve_directory (const char  *name_or_path,
                                  GError     **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (name_or_path == NULL)
    name_or_path = PROFILE_DEFAULT_NAME;

  if (strchr (name_or_path, '/') != NULL)
    return g_strdup (name_or_path);

  if (!is_valid_name (name_or_path))
    {
      g_autofree char *shown = g_strescape (name_or_path, NULL);

      g_set_error (error, NATTER_PROFILE_ERROR,
                   NATTER_PROFILE_ERROR_INVALID_NAME,
                   "“%s” is not a valid profile name: use 1 to %d letters, "
                   "digits, dots, dashes or underscores, not starting with "
                   "a dot, or give a folder path containing “/”",
                   shown, PROFILE_NAME_MAX);
      return NULL;
    }

  return g_build_filename (g_get_user_data_dir (), "natter", name_or_path,
                           NULL);
}

static gboolean
prepare_directory (const char  *directory,
                   GError     **error)
{
  struct stat st;

  if (g_mkdir_with_parents (directory, 0700) != 0)
    {
      int saved_errno = errno;

      if (g_stat (directory, &st) == 0 && !S_ISDIR (st.st_mode))
        {
          g_set_error (error, NATTER_PROFILE_ERROR,
                       NATTER_PROFILE_ERROR_UNSAFE,
                       "Profile folder “%s” is not a folder", directory);
          return FALSE;
        }

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "Could not create profile folder “%s”: %s",
                   directory, g_strerror (saved_errno));
      return FALSE;
    }

  if (g_stat (directory, &st) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "Could not inspect profile folder “%s”: %s",
                   directory, g_strerror (saved_errno));
      return FALSE;
    }

  if (!S_ISDIR (st.st_mode))
    {
      g_set_error (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_UNSAFE,
                   "Profile folder “%s” is not a folder", directory);
      return FALSE;
    }

  /* The folder holds the identity key and the message history; someone
   * else who owns or can enter it could read, replace or delete them. */
  if (st.st_uid != geteuid ())
    {
      g_set_error (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_UNSAFE,
                   "Profile folder “%s” belongs to another user (uid %u)",
                   directory, (guint) st.st_uid);
      return FALSE;
    }

  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    {
      g_set_error (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_UNSAFE,
                   "Profile folder “%s” is accessible by other users "
                   "(mode %04o); make it private with “chmod 700 %s”",
                   directory, (guint) (st.st_mode & 07777), directory);
      return FALSE;
    }

  return TRUE;
}

/* The PID is advisory, for the error message only: the flock() is what
 * excludes other processes, and it vanishes with its holder. */
static glong
read_lock_pid (int fd)
{
  char buf[32];
  gssize len;
  char *end = NULL;
  glong pid;

  do
    len = pread (fd, buf, sizeof buf - 1, 0);
  while (len < 0 && errno == EINTR);

  if (len <= 0)
    return -1;
  buf[len] = '\0';

  errno = 0;
  pid = strtol (buf, &end, 10);
  if (errno != 0 || end == buf || pid <= 0 ||
      (*end != '\0' && !g_ascii_isspace (*end)))
    return -1;

  return pid;
}

static gboolean
take_lock (NatterProfile  *self,
           GError        **error)
{
  g_autofree char *lock_path = g_build_filename (self->directory, "lock", NULL);
  g_autofree char *pid_text = NULL;
  int fd;
  int r;

  fd = g_open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
               0600);
  if (fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "Could not open lock file “%s”: %s",
                   lock_path, g_strerror (saved_errno));
      return FALSE;
    }

  do
    r = flock (fd, LOCK_EX | LOCK_NB);
  while (r != 0 && errno == EINTR);

  if (r != 0)
    {
      int saved_errno = errno;

      if (saved_errno == EWOULDBLOCK)
        {
          glong pid = read_lock_pid (fd);

          if (pid > 0)
            g_set_error (error, NATTER_PROFILE_ERROR,
                         NATTER_PROFILE_ERROR_LOCKED,
                         "Profile “%s” (%s) is already in use by another "
                         "Natter process (PID %ld)",
                         self->name, self->directory, pid);
          else
            g_set_error (error, NATTER_PROFILE_ERROR,
                         NATTER_PROFILE_ERROR_LOCKED,
                         "Profile “%s” (%s) is already in use by another "
                         "Natter process",
                         self->name, self->directory);
        }
      else
        {
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                       "Could not lock profile “%s” (%s): %s",
                       self->name, self->directory, g_strerror (saved_errno));
        }

      close (fd);
      return FALSE;
    }

  self->lock_fd = fd;

  /* Failing to record the PID only makes a later error message less
   * helpful, so it does not fail the open. */
  pid_text = g_strdup_printf ("%ld\n", (long) getpid ());
  if (ftruncate (fd, 0) == 0)
    {
      gssize w;

      do
        w = pwrite (fd, pid_text, strlen (pid_text), 0);
      while (w < 0 && errno == EINTR);
    }

  return TRUE;
}

static gboolean
open_settings (NatterProfile  *self,
               GError        **error)
{
  g_autoptr(GSettingsSchema) schema = NULL;
  g_autoptr(GSettingsBackend) backend = NULL;
  g_autofree char *settings_path = NULL;
  GSettingsSchemaSource *source;

  /* g_settings_new() aborts on a missing schema; an uninstalled build must
   * get an error it can show instead. */
  source = g_settings_schema_source_get_default ();
  if (source != NULL)
    schema = g_settings_schema_source_lookup (source, PROFILE_SCHEMA_ID, TRUE);
  if (schema == NULL)
    {
      g_set_error (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_NO_SCHEMA,
                   "The settings schema “%s” is not installed; install "
                   "Natter or point GSETTINGS_SCHEMA_DIR at its compiled "
                   "schemas", PROFILE_SCHEMA_ID);
      return FALSE;
    }

  settings_path = g_build_filename (self->directory, "settings.ini", NULL);
  backend = g_keyfile_settings_backend_new (settings_path,
                                            PROFILE_BACKEND_ROOT, NULL);
  self->settings = g_settings_new_full (schema, backend, PROFILE_SCHEMA_PATH);

  return TRUE;
}

/**
 * natter_profile_open:
 * @name_or_path: (nullable): a profile name or folder, see
 *   natter_profile_resolve_directory()
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Opens a profile: creates its folder with mode 0700 when needed, locks it
 * against other processes, loads or creates its identity and opens its
 * settings.  This blocks on disk; from the main context use
 * natter_profile_open_async().
 *
 * Returns: (transfer full) (nullable): the profile, or %NULL with @error set
 */
NatterProfile *
natter_profile_open (const char    *name_or_path,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_autoptr(NatterProfile) self = NULL;
  g_autofree char *directory = NULL;
  g_autofree char *identity_path = NULL;
  gboolean created = FALSE;

  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  directory = natter_profile_resolve_directory (name_or_path, error);
  if (directory == NULL)
    return NULL;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;

  self = g_object_new (NATTER_TYPE_PROFILE, NULL);
  self->directory = g_steal_pointer (&directory);
  self->name = g_path_get_basename (self->directory);
  self->database_path = g_build_filename (self->directory, "natter.db", NULL);

  if (!prepare_directory (self->directory, error))
    return NULL;

  if (!take_lock (self, error))
    return NULL;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;

  identity_path = g_build_filename (self->directory, "identity.key", NULL);
  self->identity = natter_identity_load_or_create (identity_path, &created,
                                                   error);
  if (self->identity == NULL)
    return NULL;
  self->is_new = created;

  if (!open_settings (self, error))
    return NULL;

  return g_steal_pointer (&self);
}

static void
open_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  const char *name_or_path = task_data;
  NatterProfile *profile;
  GError *error = NULL;

  profile = natter_profile_open (name_or_path, cancellable, &error);
  if (profile == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, profile, g_object_unref);
}

/**
 * natter_profile_open_async:
 * @name_or_path: (nullable): a profile name or folder
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the profile is open or failed to open
 * @user_data: data for @callback
 *
 * Runs natter_profile_open() in a worker thread.
 */
void
natter_profile_open_async (const char          *name_or_path,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, natter_profile_open_async);
  g_task_set_task_data (task, g_strdup (name_or_path), g_free);
  g_task_run_in_thread (task, open_thread);
}

/**
 * natter_profile_open_finish:
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (nullable): the profile, or %NULL with @error set
 */
NatterProfile *
natter_profile_open_finish (GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) ==
                        natter_profile_open_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * natter_profile_get_name:
 * @self: a #NatterProfile
 *
 * Returns: the profile name (the last component of its folder)
 */
const char *
natter_profile_get_name (NatterProfile *self)
{
  g_return_val_if_fail (NATTER_IS_PROFILE (self), NULL);

  return self->name;
}

/**
 * natter_profile_get_directory:
 * @self: a #NatterProfile
 *
 * Returns: the profile folder
 */
const char *
natter_profile_get_directory (NatterProfile *self)
{
  g_return_val_if_fail (NATTER_IS_PROFILE (self), NULL);

  return self->directory;
}

/**
 * natter_profile_get_database_path:
 * @self: a #NatterProfile
 *
 * Returns: the path of the profile's message database
 */
const char *
natter_profile_get_database_path (NatterProfile *self)
{
  g_return_val_if_fail (NATTER_IS_PROFILE (self), NULL);

  return self->database_path;
}

/**
 * natter_profile_get_identity:
 * @self: a #NatterProfile
 *
 * Returns: (transfer none): the profile's identity
 */
NatterIdentity *
natter_profile_get_identity (NatterProfile *self)
{
  g_return_val_if_fail (NATTER_IS_PROFILE (self), NULL);

  return self->identity;
}

/**
 * natter_profile_is_new:
 * @self: a #NatterProfile
 *
 * Returns: %TRUE when opening the profile created its identity
 */
gboolean
natter_profile_is_new (NatterProfile *self)
{
  g_return_val_if_fail (NATTER_IS_PROFILE (self), FALSE);

  return self->is_new;
}

/**
 * natter_profile_get_settings:
 * @self: a #NatterProfile
 *
 * Returns: (transfer none): the profile's settings
 */
GSettings *
natter_profile_get_settings (NatterProfile *self)
{
  g_return_val_if_fail (NATTER_IS_PROFILE (self), NULL);

  return self->settings;
}

/**
 * natter_profile_dup_display_name:
 * @self: a #NatterProfile
 *
 * Returns: (transfer full): the “display-name” setting, or when it is
 *   blank the user's real name, or failing that the login name
 */
char *
natter_profile_dup_display_name (NatterProfile *self)
{
  g_autofree char *name = NULL;
  const char *real_name;

  g_return_val_if_fail (NATTER_IS_PROFILE (self), NULL);

  name = g_settings_get_string (self->settings, "display-name");
  g_strstrip (name);
  if (name[0] != '\0')
    return g_steal_pointer (&name);

  /* GLib answers "Unknown" when the passwd entry has no name. */
  real_name = g_get_real_name ();
  if (real_name != NULL && real_name[0] != '\0' &&
      g_strcmp0 (real_name, "Unknown") != 0)
    return g_strdup (real_name);

  return g_strdup (g_get_user_name ());
}
