/* natter-application.c: the application object
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-application.h"
#include "natter-profile.h"
#include "natter-store.h"
#include "natter-window.h"

struct _NatterApplication
{
  AdwApplication parent_instance;

  char *profile_name;
  NatterProfile *profile;
  NatterStore *store;
  GListStore *conversations;
  GCancellable *cancellable;
  gboolean opening;
  gboolean startup_failed;
};

G_DEFINE_FINAL_TYPE (NatterApplication, natter_application, ADW_TYPE_APPLICATION)

static const GOptionEntry option_entries[] = {
  { "profile", 'p', 0, G_OPTION_ARG_STRING, NULL,
    N_("Use the profile NAME, or the folder PATH when it contains a slash"), N_("NAME|PATH") },
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

static void
present_window (NatterApplication *self)
{
  NatterWindow *window;

  window = natter_window_new (ADW_APPLICATION (self), self->profile,
                              G_LIST_MODEL (self->conversations));
  gtk_window_present (GTK_WINDOW (window));
}

static void
on_conversations_listed (GObject      *source,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  g_autoptr(NatterApplication) self = user_data;
  g_autoptr(GListModel) conversations = NULL;
  g_autoptr(GError) error = NULL;

  conversations = natter_store_list_conversations_finish (NATTER_STORE (source), result, &error);
  if (conversations == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_warning ("Could not load conversations: %s", error->message);
    }
  else
    {
      guint n = g_list_model_get_n_items (conversations);
      g_autoptr(GPtrArray) items = g_ptr_array_new_full (n, g_object_unref);

      for (guint i = 0; i < n; i++)
        g_ptr_array_add (items, g_list_model_get_item (conversations, i));
      g_list_store_splice (self->conversations, 0,
                           g_list_model_get_n_items (G_LIST_MODEL (self->conversations)),
                           items->pdata, items->len);
    }
}

static void
on_store_opened (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(NatterApplication) self = user_data;
  g_autoptr(GError) error = NULL;

  self->opening = FALSE;
  if (!natter_store_open_finish (NATTER_STORE (source), result, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_startup_error (self, error);
      g_application_release (G_APPLICATION (self));
      return;
    }

  present_window (self);
  g_application_release (G_APPLICATION (self));

  natter_store_list_conversations_async (self->store, self->cancellable,
                                         on_conversations_listed,
                                         g_object_ref (self));
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

  self->store = natter_store_new (natter_profile_get_database_path (self->profile));
  natter_store_open_async (self->store, self->cancellable, on_store_opened,
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

  /* Opening the profile touches the disk (lock, identity key) and the store
   * runs migrations: both happen off the main loop, and the application is
   * held so that it does not quit before the window exists. */
  self->opening = TRUE;
  g_application_hold (app);
  natter_profile_open_async (self->profile_name, self->cancellable,
                             on_profile_opened, g_object_ref (self));
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
quit_action (GSimpleAction *action,
             GVariant      *parameter,
             gpointer       user_data)
{
  g_application_quit (G_APPLICATION (user_data));
}

static const GActionEntry app_actions[] = {
  { "about", about_action },
  { "quit", quit_action },
};

static void
natter_application_startup (GApplication *app)
{
  static const char *quit_accels[] = { "<Control>q", NULL };

  G_APPLICATION_CLASS (natter_application_parent_class)->startup (app);

  g_action_map_add_action_entries (G_ACTION_MAP (app), app_actions,
                                   G_N_ELEMENTS (app_actions), app);
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "app.quit", quit_accels);
}

static void
natter_application_shutdown (GApplication *app)
{
  NatterApplication *self = NATTER_APPLICATION (app);

  g_cancellable_cancel (self->cancellable);
  G_APPLICATION_CLASS (natter_application_parent_class)->shutdown (app);
}

static void
natter_application_dispose (GObject *object)
{
  NatterApplication *self = NATTER_APPLICATION (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->conversations);
  g_clear_object (&self->store);
  g_clear_object (&self->profile);
  g_clear_object (&self->cancellable);

  G_OBJECT_CLASS (natter_application_parent_class)->dispose (object);
}

static void
natter_application_finalize (GObject *object)
{
  NatterApplication *self = NATTER_APPLICATION (object);

  g_free (self->profile_name);

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
  app_class->startup = natter_application_startup;
  app_class->shutdown = natter_application_shutdown;
  app_class->handle_local_options = natter_application_handle_local_options;
}

static void
natter_application_init (NatterApplication *self)
{
  self->cancellable = g_cancellable_new ();
  self->conversations = g_list_store_new (NATTER_TYPE_CONVERSATION);
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
                       "flags", G_APPLICATION_NON_UNIQUE,
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
