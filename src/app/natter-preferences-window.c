/* natter-preferences-window.c: the profile's preferences
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-preferences-window.h"

struct _NatterPreferencesWindow
{
  AdwPreferencesWindow parent_instance;

  GSettings *settings;
  GtkFileChooserNative *chooser;

  AdwEntryRow *display_name_row;
  GtkSwitch *lan_switch;
  GtkSwitch *discoverable_switch;
  AdwEntryRow *rendezvous_row;
  AdwEntryRow *stun_row;
  AdwEntryRow *turn_row;
  AdwActionRow *download_row;
};

G_DEFINE_FINAL_TYPE (NatterPreferencesWindow, natter_preferences_window, ADW_TYPE_PREFERENCES_WINDOW)

/* Lists of servers are edited as one line, comma separated. */
static gboolean
strv_to_text (GValue   *value,
              GVariant *variant,
              gpointer  user_data)
{
  g_autofree const char **strv = g_variant_get_strv (variant, NULL);

  g_value_take_string (value, g_strjoinv (", ", (char **) strv));
  return TRUE;
}

static GVariant *
text_to_strv (const GValue       *value,
              const GVariantType *expected_type,
              gpointer            user_data)
{
  g_auto(GStrv) parts = g_strsplit (g_value_get_string (value), ",", -1);
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  g_auto(GStrv) strv = NULL;

  for (guint i = 0; parts[i] != NULL; i++)
    {
      g_strstrip (parts[i]);
      if (parts[i][0] != '\0')
        g_strv_builder_add (builder, parts[i]);
    }
  strv = g_strv_builder_end (builder);
  return g_variant_new_strv ((const char * const *) strv, -1);
}

static void
update_download_folder (NatterPreferencesWindow *self)
{
  g_autofree char *folder = g_settings_get_string (self->settings, "download-folder");
  const char *shown = folder[0] != '\0' ? folder : g_get_user_special_dir (G_USER_DIRECTORY_DOWNLOAD);

  if (shown == NULL)
    shown = g_get_home_dir ();
  adw_action_row_set_subtitle (self->download_row, shown);
}

static void
on_folder_chosen (NatterPreferencesWindow *self,
                  int                      response,
                  GtkNativeDialog         *dialog)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) folder = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = folder != NULL ? g_file_get_path (folder) : NULL;

      if (path != NULL)
        g_settings_set_string (self->settings, "download-folder", path);
    }
  g_clear_object (&self->chooser);
}

/* Through the file chooser portal when sandboxed: no file access needed. */
static void
choose_folder_action (GtkWidget  *widget,
                      const char *action_name,
                      GVariant   *parameter)
{
  NatterPreferencesWindow *self = NATTER_PREFERENCES_WINDOW (widget);

  g_clear_object (&self->chooser);
  self->chooser = gtk_file_chooser_native_new (_("Choose Download Folder"), GTK_WINDOW (self),
                                               GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER,
                                               _("_Select"), _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  g_signal_connect_object (self->chooser, "response", G_CALLBACK (on_folder_chosen), self, G_CONNECT_SWAPPED);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
natter_preferences_window_dispose (GObject *object)
{
  NatterPreferencesWindow *self = NATTER_PREFERENCES_WINDOW (object);

  if (self->chooser != NULL)
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
  g_clear_object (&self->chooser);
  g_clear_object (&self->settings);

  G_OBJECT_CLASS (natter_preferences_window_parent_class)->dispose (object);
}

static void
natter_preferences_window_class_init (NatterPreferencesWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = natter_preferences_window_dispose;

  gtk_widget_class_set_template_from_resource (widget_class, "/org/natter/Natter/natter-preferences-window.ui");
  gtk_widget_class_bind_template_child (widget_class, NatterPreferencesWindow, display_name_row);
  gtk_widget_class_bind_template_child (widget_class, NatterPreferencesWindow, lan_switch);
  gtk_widget_class_bind_template_child (widget_class, NatterPreferencesWindow, discoverable_switch);
  gtk_widget_class_bind_template_child (widget_class, NatterPreferencesWindow, rendezvous_row);
  gtk_widget_class_bind_template_child (widget_class, NatterPreferencesWindow, stun_row);
  gtk_widget_class_bind_template_child (widget_class, NatterPreferencesWindow, turn_row);
  gtk_widget_class_bind_template_child (widget_class, NatterPreferencesWindow, download_row);
  gtk_widget_class_install_action (widget_class, "preferences.choose-folder", NULL, choose_folder_action);
}

static void
natter_preferences_window_init (NatterPreferencesWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

/**
 * natter_preferences_window_new:
 * @profile: the open profile
 *
 * The preferences are the profile's own settings (a keyfile in its
 * folder), so two profiles never share them.
 *
 * Returns: (transfer full): a new window
 */
NatterPreferencesWindow *
natter_preferences_window_new (NatterProfile *profile)
{
  NatterPreferencesWindow *self = g_object_new (NATTER_TYPE_PREFERENCES_WINDOW, NULL);

  self->settings = g_object_ref (natter_profile_get_settings (profile));
  g_settings_bind (self->settings, "display-name", self->display_name_row, "text", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "lan-discovery", self->lan_switch, "active", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "discoverable", self->discoverable_switch, "active", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "stun-server", self->stun_row, "text", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind_with_mapping (self->settings, "rendezvous-servers", self->rendezvous_row, "text",
                                G_SETTINGS_BIND_DEFAULT, strv_to_text, text_to_strv, NULL, NULL);
  g_settings_bind_with_mapping (self->settings, "turn-servers", self->turn_row, "text",
                                G_SETTINGS_BIND_DEFAULT, strv_to_text, text_to_strv, NULL, NULL);
  g_signal_connect_object (self->settings, "changed::download-folder",
                           G_CALLBACK (update_download_folder), self, G_CONNECT_SWAPPED);
  update_download_folder (self);
  return self;
}
