/* natter-new-group-dialog.c: name a group and pick its members
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "natter-app-util.h"
#include "natter-new-group-dialog.h"
#include "natter-window.h"

struct _NatterNewGroupDialog
{
  AdwWindow parent_instance;

  NatterMessagingService *service;
  GHashTable *checks;     /* peer ID → GtkCheckButton (borrowed) */

  GtkWidget *create_button;
  AdwEntryRow *name_row;
  AdwPreferencesGroup *members_group;
  GtkWidget *no_contacts_page;
};

G_DEFINE_FINAL_TYPE (NatterNewGroupDialog, natter_new_group_dialog, ADW_TYPE_WINDOW)

static GPtrArray *
dup_members (NatterNewGroupDialog *self)
{
  GPtrArray *members = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  gpointer peer_id, check;

  g_hash_table_iter_init (&iter, self->checks);
  while (g_hash_table_iter_next (&iter, &peer_id, &check))
    if (gtk_check_button_get_active (check))
      g_ptr_array_add (members, g_strdup (peer_id));
  g_ptr_array_sort (members, (GCompareFunc) g_strcmp0);
  return members;
}

static void
update_create (NatterNewGroupDialog *self)
{
  g_autofree char *name = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->name_row))));
  g_autoptr(GPtrArray) members = dup_members (self);
  gboolean valid = name[0] != '\0' && strlen (name) <= NATTER_GROUPS_MAX_NAME && members->len > 0;

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "new-group.create", valid);
  natter_ui_trace ("new-group members=%u valid=%d", members->len, valid);
}

static void
on_name_changed (NatterNewGroupDialog *self)
{
  update_create (self);
}

static void
create_action (GtkWidget  *widget,
               const char *action_name,
               GVariant   *parameter)
{
  NatterNewGroupDialog *self = NATTER_NEW_GROUP_DIALOG (widget);
  g_autofree char *name = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->name_row))));
  g_autoptr(GPtrArray) members = dup_members (self);
  g_autofree char *group_id = NULL;
  g_autoptr(GError) error = NULL;
  GtkWindow *parent = gtk_window_get_transient_for (GTK_WINDOW (self));

  g_ptr_array_add (members, NULL);
  group_id = natter_messaging_service_group_create (self->service, name,
                                                    (const char * const *) members->pdata, 0, &error);
  if (group_id == NULL)
    {
      GtkWidget *dialog = adw_message_dialog_new (GTK_WINDOW (self), _("Could Not Create the Group"),
                                                  error->message);

      adw_message_dialog_add_response (ADW_MESSAGE_DIALOG (dialog), "close", _("_Close"));
      gtk_window_present (GTK_WINDOW (dialog));
      return;
    }
  natter_ui_trace ("new-group created group=%s name=%s", group_id, name);
  if (NATTER_IS_WINDOW (parent))
    natter_window_open_conversation (NATTER_WINDOW (parent), group_id);
  gtk_window_destroy (GTK_WINDOW (self));
}

static void
populate (NatterNewGroupDialog *self)
{
  GListModel *contacts = natter_messaging_service_get_contacts (self->service);
  guint n = g_list_model_get_n_items (contacts);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(NatterContact) contact = g_list_model_get_item (contacts, i);
      const char *peer_id = natter_contact_get_peer_id (contact);
      g_autofree char *name = NULL;
      g_autofree char *what = NULL;
      GtkWidget *row;
      GtkWidget *check;

      if (natter_contact_get_state (contact) != NATTER_CONTACT_ACCEPTED)
        continue;
      name = natter_app_dup_peer_name (self->service, peer_id);
      row = adw_action_row_new ();
      check = gtk_check_button_new ();
      gtk_widget_set_valign (check, GTK_ALIGN_CENTER);
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), name);
      adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
      adw_action_row_set_subtitle (ADW_ACTION_ROW (row),
                                   natter_app_presence_label (natter_messaging_service_get_peer_presence (self->service, peer_id)));
      adw_action_row_add_prefix (ADW_ACTION_ROW (row), check);
      adw_action_row_add_suffix (ADW_ACTION_ROW (row), adw_avatar_new (32, name, TRUE));
      adw_action_row_set_activatable_widget (ADW_ACTION_ROW (row), check);
      g_signal_connect_object (check, "toggled", G_CALLBACK (update_create), self, G_CONNECT_SWAPPED);
      adw_preferences_group_add (self->members_group, row);
      g_hash_table_insert (self->checks, g_strdup (peer_id), check);
      what = g_strdup_printf ("new-group member peer=%s", peer_id);
      natter_app_trace_position (check, what);
    }
  gtk_widget_set_visible (GTK_WIDGET (self->members_group), g_hash_table_size (self->checks) > 0);
  gtk_widget_set_visible (self->no_contacts_page, g_hash_table_size (self->checks) == 0);
  natter_app_trace_position (self->create_button, "new-group create");
  update_create (self);
}

static void
natter_new_group_dialog_dispose (GObject *object)
{
  NatterNewGroupDialog *self = NATTER_NEW_GROUP_DIALOG (object);

  g_clear_pointer (&self->checks, g_hash_table_unref);
  g_clear_object (&self->service);

  G_OBJECT_CLASS (natter_new_group_dialog_parent_class)->dispose (object);
}

static void
natter_new_group_dialog_class_init (NatterNewGroupDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = natter_new_group_dialog_dispose;

  gtk_widget_class_set_template_from_resource (widget_class, "/org/natter/Natter/natter-new-group-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, NatterNewGroupDialog, create_button);
  gtk_widget_class_bind_template_child (widget_class, NatterNewGroupDialog, name_row);
  gtk_widget_class_bind_template_child (widget_class, NatterNewGroupDialog, members_group);
  gtk_widget_class_bind_template_child (widget_class, NatterNewGroupDialog, no_contacts_page);
  gtk_widget_class_bind_template_callback (widget_class, on_name_changed);
  gtk_widget_class_install_action (widget_class, "new-group.create", NULL, create_action);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
natter_new_group_dialog_init (NatterNewGroupDialog *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->checks = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  gtk_widget_grab_focus (GTK_WIDGET (self->name_row));
}

/**
 * natter_new_group_dialog_new:
 * @service: the started messaging service
 *
 * Returns: (transfer full): a dialog that creates a group
 */
NatterNewGroupDialog *
natter_new_group_dialog_new (NatterMessagingService *service)
{
  NatterNewGroupDialog *self = g_object_new (NATTER_TYPE_NEW_GROUP_DIALOG, NULL);

  self->service = g_object_ref (service);
  populate (self);
  return self;
}
