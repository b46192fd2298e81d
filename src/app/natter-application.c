/* natter-application.c: the application object
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>
#include <glib-unix.h>
#include <gio/gunixinputstream.h>
#include <signal.h>

#include "natter-app-util.h"
#include "natter-application.h"
#include "natter-invite.h"
#include "natter-messaging-service.h"
#include "natter-preferences-window.h"
#include "natter-profile.h"
#include "natter-window.h"

struct _NatterApplication
{
  AdwApplication parent_instance;

  char *profile_name;
  NatterProfile *profile;
  NatterMessagingService *service;
  GCancellable *cancellable;

  /* Overrides from the command line, for this run only. */
  char **rendezvous;
  char *stun;
  char **turn;
  char *interfaces;
  gboolean no_lan;

  /* natter: links given before the window existed. */
  GPtrArray *pending_uris;

  guint sigterm_id;
  guint sigint_id;
  gboolean opening;
  gboolean started;
  gboolean stopping;
  gboolean startup_failed;

  /* NATTER_TEST_HOOKS=1: commands for the UI tests on standard input. */
  GDataInputStream *test_input;
};

G_DEFINE_FINAL_TYPE (NatterApplication, natter_application, ADW_TYPE_APPLICATION)

static const GOptionEntry option_entries[] = {
  { "profile", 'p', 0, G_OPTION_ARG_STRING, NULL,
    N_("Use the profile NAME, or the folder PATH when it contains a slash"), N_("NAME|PATH") },
  { "rendezvous", 0, 0, G_OPTION_ARG_STRING_ARRAY, NULL,
    N_("Use the rendezvous server URL (repeatable) instead of the preferences"), N_("URL") },
  { "stun", 0, 0, G_OPTION_ARG_STRING, NULL,
    N_("Use the STUN server HOST:PORT instead of the preferences"), N_("HOST:PORT") },
  { "turn", 0, 0, G_OPTION_ARG_STRING_ARRAY, NULL,
    N_("Use the TURN server USER:PASSWORD@HOST:PORT (repeatable)"), N_("SERVER") },
  { "interfaces", 0, 0, G_OPTION_ARG_STRING, NULL,
    N_("Use only these network interfaces (comma separated)"), N_("NAMES") },
  { "no-lan", 0, 0, G_OPTION_ARG_NONE, NULL,
    N_("Do not look for contacts on the local network"), NULL },
  { "version", 0, 0, G_OPTION_ARG_NONE, NULL, N_("Print the version and exit"), NULL },
  { NULL }
};

static void
on_error_dialog_response (AdwMessageDialog  *dialog,
                          const char        *response,
                          NatterApplication *self)
{
  g_application_quit (G_APPLICATION (self));
}

/* A profile that cannot be opened is reported both on stderr, for scripts
 * and terminals, and in a dialog, for people who started Natter from their
 * desktop where stderr goes nowhere. */
static void
show_startup_error (NatterApplication *self,
                    const GError      *error)
{
  GtkWidget *dialog;

  g_printerr ("natter: %s\n", error->message);

  dialog = adw_message_dialog_new (NULL, _("Natter Cannot Start"), error->message);
  gtk_window_set_application (GTK_WINDOW (dialog), GTK_APPLICATION (self));
  adw_message_dialog_add_response (ADW_MESSAGE_DIALOG (dialog), "close", _("_Close"));
  g_signal_connect (dialog, "response", G_CALLBACK (on_error_dialog_response), self);
  gtk_window_present (GTK_WINDOW (dialog));

  self->startup_failed = TRUE;
  self->opening = FALSE;
}

static NatterWindow *
get_window (NatterApplication *self)
{
  for (GList *l = gtk_application_get_windows (GTK_APPLICATION (self)); l != NULL; l = l->next)
    if (NATTER_IS_WINDOW (l->data))
      return l->data;
  return NULL;
}

static void
open_uri (NatterApplication *self,
          const char        *uri)
{
  NatterWindow *window = get_window (self);
  g_autoptr(GError) error = NULL;
  g_autofree char *peer_id = NULL;
  g_autofree char *name = NULL;

  if (window == NULL)
    {
      g_ptr_array_add (self->pending_uris, g_strdup (uri));
      return;
    }
  if (!natter_invite_parse (uri, &peer_id, &name, &error))
    {
      natter_window_show_toast (window, error->message);
      return;
    }
  natter_window_open_invite (window, peer_id, name);
}

static void
present_window (NatterApplication *self)
{
  NatterWindow *window;

  window = natter_window_new (ADW_APPLICATION (self), self->profile, self->service);
  gtk_window_present (GTK_WINDOW (window));

  for (guint i = 0; i < self->pending_uris->len; i++)
    open_uri (self, g_ptr_array_index (self->pending_uris, i));
  g_ptr_array_set_size (self->pending_uris, 0);
}

static void
on_service_stopped (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(NatterApplication) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!natter_messaging_service_stop_finish (NATTER_MESSAGING_SERVICE (source), result, &error))
    g_warning ("Could not stop cleanly: %s", error->message);
  g_application_release (G_APPLICATION (self));
}

/* Peers are told we go offline and pending writes are committed before the
 * process ends: the service holds the application until it has stopped. */
static void
stop_service (NatterApplication *self)
{
  if (!self->started || self->stopping)
    return;
  self->stopping = TRUE;
  natter_messaging_service_stop_async (self->service, NULL, on_service_stopped,
                                       g_object_ref (self));
}

static void
quit (NatterApplication *self)
{
  GList *windows = g_list_copy (gtk_application_get_windows (GTK_APPLICATION (self)));

  /* Hold across the windows' destruction so that the service can stop. */
  g_application_hold (G_APPLICATION (self));
  for (GList *l = windows; l != NULL; l = l->next)
    gtk_window_destroy (l->data);
  g_list_free (windows);
  if (self->started)
    stop_service (self);
  g_application_release (G_APPLICATION (self));
  if (!self->started)
    g_application_quit (G_APPLICATION (self));
}

static gboolean
on_unix_signal (gpointer user_data)
{
  quit (NATTER_APPLICATION (user_data));
  return G_SOURCE_CONTINUE;
}

static void
on_service_started (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(NatterApplication) self = user_data;
  g_autoptr(GError) error = NULL;

  self->opening = FALSE;
  if (!natter_messaging_service_start_finish (NATTER_MESSAGING_SERVICE (source), result, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_startup_error (self, error);
      g_application_release (G_APPLICATION (self));
      return;
    }

  /* This hold is released once the service has stopped. */
  self->started = TRUE;
  present_window (self);
}

static char **
settings_strv_or_null (GSettings  *settings,
                       const char *key)
{
  g_auto(GStrv) value = g_settings_get_strv (settings, key);

  if (value == NULL || value[0] == NULL)
    return NULL;
  return g_steal_pointer (&value);
}

/* The preferences of the profile, then what the command line says for this
 * run.  The service reads the "interfaces" setting and NATTER_INTERFACES
 * itself. */
static void
on_download_folder_changed (NatterApplication *self,
                            const char        *key,
                            GSettings         *settings)
{
  g_autofree char *folder = g_settings_get_string (settings, "download-folder");

  /* NULL: the service's default, the Downloads folder. */
  g_object_set (self->service, "download-folder", folder[0] != '\0' ? folder : NULL, NULL);
}

static void
configure_service (NatterApplication *self)
{
  GSettings *settings = natter_profile_get_settings (self->profile);
  g_auto(GStrv) rendezvous = settings_strv_or_null (settings, "rendezvous-servers");
  g_auto(GStrv) turn = settings_strv_or_null (settings, "turn-servers");
  g_autofree char *stun = g_settings_get_string (settings, "stun-server");

  g_object_set (self->service,
                "rendezvous-urls", self->rendezvous != NULL ? self->rendezvous : rendezvous,
                "turn-servers", self->turn != NULL ? self->turn : turn,
                "stun-server", self->stun != NULL ? self->stun : (stun[0] != '\0' ? stun : NULL),
                "lan-discovery", !self->no_lan && g_settings_get_boolean (settings, "lan-discovery"),
                NULL);
  on_download_folder_changed (self, "download-folder", settings);
  /* Live: the service starts or stops showing a handle at once. */
  g_settings_bind (settings, "discoverable", self->service, "discoverable", G_SETTINGS_BIND_GET);
  g_signal_connect_object (settings, "changed::download-folder",
                           G_CALLBACK (on_download_folder_changed), self, G_CONNECT_SWAPPED);
  if (self->interfaces != NULL)
    {
      g_auto(GStrv) names = g_strsplit (self->interfaces, ",", -1);

      g_object_set (self->service, "interfaces", names, NULL);
    }
}

static void
on_profile_opened (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(NatterApplication) self = user_data;
  g_autoptr(GError) error = NULL;

  self->profile = natter_profile_open_finish (result, &error);
  if (self->profile == NULL)
    {
      self->opening = FALSE;
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_startup_error (self, error);
      g_application_release (G_APPLICATION (self));
      return;
    }

  self->service = natter_messaging_service_new (self->profile);
  configure_service (self);
  natter_messaging_service_start_async (self->service, self->cancellable, on_service_started,
                                        g_object_ref (self));
}

static void
natter_application_activate (GApplication *app)
{
  NatterApplication *self = NATTER_APPLICATION (app);
  GtkWindow *window;

  window = gtk_application_get_active_window (GTK_APPLICATION (app));
  if (window != NULL)
    {
      gtk_window_present (window);
      return;
    }
  if (self->opening || self->profile != NULL)
    return;

  /* Opening the profile touches the disk (lock, identity key) and the
   * service opens the store and runs migrations: all of it happens off the
   * main loop, and the application is held so that it does not quit before
   * the window exists. */
  self->opening = TRUE;
  g_application_hold (app);
  natter_profile_open_async (self->profile_name, self->cancellable,
                             on_profile_opened, g_object_ref (self));
}

static void
natter_application_open (GApplication  *app,
                         GFile        **files,
                         int            n_files,
                         const char    *hint)
{
  NatterApplication *self = NATTER_APPLICATION (app);

  natter_application_activate (app);
  for (int i = 0; i < n_files; i++)
    {
      g_autofree char *uri = g_file_get_uri (files[i]);

      open_uri (self, uri);
    }
}

static int
natter_application_handle_local_options (GApplication *app,
                                         GVariantDict *options)
{
  NatterApplication *self = NATTER_APPLICATION (app);
  const char *profile = NULL;

  if (g_variant_dict_contains (options, "version"))
    {
      g_print ("natter %s\n", PACKAGE_VERSION);
      return 0;
    }

  if (g_variant_dict_lookup (options, "profile", "&s", &profile))
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *directory = natter_profile_resolve_directory (profile, &error);

      if (directory == NULL)
        {
          g_printerr ("natter: %s\n", error->message);
          return 2;
        }
      g_free (self->profile_name);
      self->profile_name = g_strdup (profile);
    }

  g_variant_dict_lookup (options, "rendezvous", "^as", &self->rendezvous);
  g_variant_dict_lookup (options, "stun", "s", &self->stun);
  g_variant_dict_lookup (options, "turn", "^as", &self->turn);
  g_variant_dict_lookup (options, "interfaces", "s", &self->interfaces);
  self->no_lan = g_variant_dict_contains (options, "no-lan");

  return -1;
}

static void
about_action (GSimpleAction *action,
              GVariant      *parameter,
              gpointer       user_data)
{
  NatterApplication *self = user_data;
  static const char *developers[] = { "The Natter developers", NULL };
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (self));

  adw_show_about_window (window,
                         "application-name", _("Natter"),
                         "application-icon", APP_ID,
                         "developer-name", _("The Natter developers"),
                         "version", PACKAGE_VERSION,
                         "developers", developers,
                         "license-type", GTK_LICENSE_GPL_3_0,
                         "comments", _("Private messages and files, straight from one computer to another"),
                         NULL);
}

static void
preferences_action (GSimpleAction *action,
                    GVariant      *parameter,
                    gpointer       user_data)
{
  NatterApplication *self = user_data;
  NatterPreferencesWindow *preferences;

  if (self->profile == NULL)
    return;
  preferences = natter_preferences_window_new (self->profile);
  gtk_window_set_transient_for (GTK_WINDOW (preferences),
                                gtk_application_get_active_window (GTK_APPLICATION (self)));
  gtk_window_present (GTK_WINDOW (preferences));
}

/* The default action of a message notification. */
static void
open_conversation_action (GSimpleAction *action,
                          GVariant      *parameter,
                          gpointer       user_data)
{
  NatterApplication *self = user_data;
  NatterWindow *window = get_window (self);

  if (window == NULL)
    return;
  natter_window_open_conversation (window, g_variant_get_string (parameter, NULL));
  gtk_window_present (GTK_WINDOW (window));
}

static void
quit_action (GSimpleAction *action,
             GVariant      *parameter,
             gpointer       user_data)
{
  quit (NATTER_APPLICATION (user_data));
}

/* {{{ Test hooks */

/* What a drop of @path on the open conversation does, through the same
 * function as the drop target's handler (NATTER_TEST_HOOKS=1 only). */
static void
test_drop_file_action (GSimpleAction *action,
                       GVariant      *parameter,
                       gpointer       user_data)
{
  NatterApplication *self = user_data;
  NatterWindow *window = get_window (self);
  g_autoptr(GFile) file = g_file_new_for_commandline_arg (g_variant_get_string (parameter, NULL));
  GdkFileList *files;
  GSList *list;

  if (window == NULL)
    return;
  list = g_slist_prepend (NULL, file);
  files = gdk_file_list_new_from_list (list);
  g_slist_free (list);
  if (!natter_window_send_files (window, files))
    g_warning ("test-drop-file: no conversation is open");
  g_boxed_free (GDK_TYPE_FILE_LIST, files);
}

/* Drops every group frame to and from a peer while blocked ("PEER 1"),
 * as a partition would (NATTER_TEST_HOOKS=1 only). */
static void
test_group_block_action (GSimpleAction *action,
                         GVariant      *parameter,
                         gpointer       user_data)
{
  NatterApplication *self = user_data;
  NatterGroups *groups = self->service != NULL ? natter_messaging_service_get_groups (self->service) : NULL;
  const char *peer_id;
  gboolean blocked;

  g_variant_get (parameter, "(&sb)", &peer_id, &blocked);
  if (groups != NULL)
    natter_groups_set_blocked (groups, peer_id, blocked);
}

static void read_test_command (NatterApplication *self);

static void
on_test_command (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(NatterApplication) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;

  line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result, NULL, &error);
  if (line == NULL)
    {
      if (error != NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_warning ("Test commands: %s", error->message);
      return;
    }
  if (g_str_has_prefix (line, "drop-file "))
    g_action_group_activate_action (G_ACTION_GROUP (self), "test-drop-file",
                                    g_variant_new_string (line + strlen ("drop-file ")));
  else if (g_str_has_prefix (line, "window-action "))
    {
      NatterWindow *window = get_window (self);

      if (window == NULL || !gtk_widget_activate_action (GTK_WIDGET (window), line + strlen ("window-action "), NULL))
        g_warning ("test: could not activate %s", line + strlen ("window-action "));
    }
  else if (g_str_has_prefix (line, "group-block "))
    {
      g_auto(GStrv) words = g_strsplit (line + strlen ("group-block "), " ", 2);

      if (g_strv_length (words) == 2)
        g_action_group_activate_action (G_ACTION_GROUP (self), "test-group-block",
                                        g_variant_new ("(sb)", words[0], g_str_equal (words[1], "1")));
    }
  else if (line[0] != '\0')
    g_warning ("Unknown test command: %s", line);
  read_test_command (self);
}

static void
read_test_command (NatterApplication *self)
{
  g_data_input_stream_read_line_async (self->test_input, G_PRIORITY_DEFAULT, self->cancellable,
                                       on_test_command, g_object_ref (self));
}

static void
start_test_hooks (NatterApplication *self)
{
  static const GActionEntry test_actions[] = {
    { "test-drop-file", test_drop_file_action, "s" },
    { "test-group-block", test_group_block_action, "(sb)" },
  };
  g_autoptr(GInputStream) input = NULL;

  if (g_strcmp0 (g_getenv ("NATTER_TEST_HOOKS"), "1") != 0)
    return;
  g_action_map_add_action_entries (G_ACTION_MAP (self), test_actions, G_N_ELEMENTS (test_actions), self);
  input = g_unix_input_stream_new (STDIN_FILENO, FALSE);
  self->test_input = g_data_input_stream_new (input);
  read_test_command (self);
}

/* }}} */

static const GActionEntry app_actions[] = {
  { "about", about_action },
  { "preferences", preferences_action },
  { "open-conversation", open_conversation_action, "s" },
  { "quit", quit_action },
};

static void
on_window_removed (GtkApplication *app,
                   GtkWindow      *window)
{
  NatterApplication *self = NATTER_APPLICATION (app);

  /* Closing the main window ends the run, like quitting. */
  if (NATTER_IS_WINDOW (window) && get_window (self) == NULL)
    stop_service (self);
}

static void
natter_application_startup (GApplication *app)
{
  NatterApplication *self = NATTER_APPLICATION (app);
  static const char *quit_accels[] = { "<Control>q", NULL };
  static const char *preferences_accels[] = { "<Control>comma", NULL };

  G_APPLICATION_CLASS (natter_application_parent_class)->startup (app);

  g_action_map_add_action_entries (G_ACTION_MAP (app), app_actions,
                                   G_N_ELEMENTS (app_actions), app);
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "app.quit", quit_accels);
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "app.preferences", preferences_accels);
  g_signal_connect (app, "window-removed", G_CALLBACK (on_window_removed), NULL);
  start_test_hooks (self);

  self->sigterm_id = g_unix_signal_add (SIGTERM, on_unix_signal, self);
  self->sigint_id = g_unix_signal_add (SIGINT, on_unix_signal, self);
}

static void
natter_application_shutdown (GApplication *app)
{
  NatterApplication *self = NATTER_APPLICATION (app);

  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->sigterm_id, g_source_remove);
  g_clear_handle_id (&self->sigint_id, g_source_remove);
  G_APPLICATION_CLASS (natter_application_parent_class)->shutdown (app);
}

static void
natter_application_dispose (GObject *object)
{
  NatterApplication *self = NATTER_APPLICATION (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->service);
  g_clear_object (&self->profile);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->test_input);

  G_OBJECT_CLASS (natter_application_parent_class)->dispose (object);
}

static void
natter_application_finalize (GObject *object)
{
  NatterApplication *self = NATTER_APPLICATION (object);

  g_free (self->profile_name);
  g_strfreev (self->rendezvous);
  g_free (self->stun);
  g_strfreev (self->turn);
  g_free (self->interfaces);
  g_ptr_array_unref (self->pending_uris);

  G_OBJECT_CLASS (natter_application_parent_class)->finalize (object);
}

static void
natter_application_class_init (NatterApplicationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  object_class->dispose = natter_application_dispose;
  object_class->finalize = natter_application_finalize;

  app_class->activate = natter_application_activate;
  app_class->open = natter_application_open;
  app_class->startup = natter_application_startup;
  app_class->shutdown = natter_application_shutdown;
  app_class->handle_local_options = natter_application_handle_local_options;
}

static void
natter_application_init (NatterApplication *self)
{
  self->cancellable = g_cancellable_new ();
  self->pending_uris = g_ptr_array_new_with_free_func (g_free);
  g_application_add_main_option_entries (G_APPLICATION (self), option_entries);
}

/**
 * natter_application_new:
 *
 * Natter runs one process per profile: profiles are separated by their
 * lock, not by D-Bus uniqueness, so two profiles can run side by side.
 *
 * Returns: (transfer full): the application
 */
NatterApplication *
natter_application_new (void)
{
  return g_object_new (NATTER_TYPE_APPLICATION,
                       "application-id", APP_ID,
                       "flags", G_APPLICATION_NON_UNIQUE | G_APPLICATION_HANDLES_OPEN,
                       "resource-base-path", "/org/natter/Natter",
                       NULL);
}

/**
 * natter_application_get_startup_failed:
 * @self: the application
 *
 * Returns: %TRUE when the profile could not be opened, so that the process
 *   can exit with a failure status for scripts.
 */
gboolean
natter_application_get_startup_failed (NatterApplication *self)
{
  g_return_val_if_fail (NATTER_IS_APPLICATION (self), FALSE);

  return self->startup_failed;
}
