/* natter-group-members-window.c: a group's members, with presence
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-app-util.h"
#include "natter-group-members-window.h"

struct _NatterGroupMembersWindow
{
  AdwWindow parent_instance;

  NatterMessagingService *service;
  NatterGroups *groups;
  char *group_id;
  GPtrArray *rows;
  guint rebuild_id;

  AdwWindowTitle *window_title;
  AdwPreferencesGroup *members_group;
  AdwPreferencesGroup *invite_group;
};

G_DEFINE_FINAL_TYPE (NatterGroupMembersWindow, natter_group_members_window, ADW_TYPE_WINDOW)

static void
show_error (NatterGroupMembersWindow *self,
            GError                   *error)
{
  GtkWidget *dialog = adw_message_dialog_new (GTK_WINDOW (self), _("Could Not Change the Group"),
                                              error->message);

  natter_ui_trace ("group-members group=%s error=%s", self->group_id, error->message);
  adw_message_dialog_add_response (ADW_MESSAGE_DIALOG (dialog), "close", _("_Close"));
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
invite_action (GtkWidget  *widget,
               const char *action_name,
               GVariant   *parameter)
{
  NatterGroupMembersWindow *self = NATTER_GROUP_MEMBERS_WINDOW (widget);
  g_autoptr(GError) error = NULL;

  natter_ui_trace ("group-members group=%s inviting=%s", self->group_id, g_variant_get_string (parameter, NULL));
  if (!natter_messaging_service_group_invite (self->service, self->group_id,
                                              g_variant_get_string (parameter, NULL), &error))
    show_error (self, error);
}

static void
remove_action (GtkWidget  *widget,
               const char *action_name,
               GVariant   *parameter)
{
  NatterGroupMembersWindow *self = NATTER_GROUP_MEMBERS_WINDOW (widget);
  g_autoptr(GError) error = NULL;

  natter_ui_trace ("group-members group=%s removing=%s", self->group_id, g_variant_get_string (parameter, NULL));
  if (!natter_messaging_service_group_remove (self->service, self->group_id,
                                              g_variant_get_string (parameter, NULL), &error))
    show_error (self, error);
}

static GtkWidget *
make_button (const char *icon_name,
             const char *tooltip,
             const char *action,
             const char *peer_id)
{
  GtkWidget *button = gtk_button_new_from_icon_name (icon_name);

  gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
  gtk_widget_add_css_class (button, "flat");
  gtk_actionable_set_action_target (GTK_ACTIONABLE (button), "s", peer_id);
  gtk_actionable_set_action_name (GTK_ACTIONABLE (button), action);
  gtk_widget_set_tooltip_text (button, tooltip);
  gtk_accessible_update_property (GTK_ACCESSIBLE (button), GTK_ACCESSIBLE_PROPERTY_LABEL, tooltip, -1);
  return button;
}

static GtkWidget *
make_row (NatterGroupMembersWindow *self,
          const char               *peer_id,
          const char               *subtitle)
{
  g_autofree char *name = natter_app_dup_member_name (self->service, peer_id);
  GtkWidget *row = adw_action_row_new ();

  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), name);
  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_action_row_set_subtitle (ADW_ACTION_ROW (row), subtitle);
  adw_action_row_set_subtitle_lines (ADW_ACTION_ROW (row), 1);
  adw_action_row_add_prefix (ADW_ACTION_ROW (row), adw_avatar_new (32, name, TRUE));
  return row;
}

static void
add_row (NatterGroupMembersWindow *self,
         AdwPreferencesGroup      *group,
         GtkWidget                *row)
{
  adw_preferences_group_add (group, row);
  g_ptr_array_add (self->rows, row);
}

/* Ourselves first, then the others by name. */
static int
compare_members (gconstpointer a,
                 gconstpointer b,
                 gpointer      user_data)
{
  NatterGroupMembersWindow *self = user_data;
  const char *peer_a = *(const char * const *) a;
  const char *peer_b = *(const char * const *) b;
  const char *own_id = natter_messaging_service_get_peer_id (self->service);
  g_autofree char *name_a = NULL;
  g_autofree char *name_b = NULL;

  if (g_strcmp0 (peer_a, own_id) == 0 || g_strcmp0 (peer_b, own_id) == 0)
    return g_strcmp0 (peer_a, own_id) == 0 ? -1 : 1;
  name_a = natter_app_dup_peer_name (self->service, peer_a);
  name_b = natter_app_dup_peer_name (self->service, peer_b);
  return g_utf8_collate (name_a, name_b);
}

static void
rebuild (NatterGroupMembersWindow *self)
{
  g_autoptr(NatterGroupInfo) info = natter_groups_get_info (self->groups, self->group_id);
  const char *own_id = natter_messaging_service_get_peer_id (self->service);
  GListModel *contacts = natter_messaging_service_get_contacts (self->service);
  g_autoptr(GPtrArray) members = g_ptr_array_new ();
  gboolean admin;
  guint n_invitable = 0;

  for (guint i = 0; i < self->rows->len; i++)
    {
      GtkWidget *row = g_ptr_array_index (self->rows, i);
      GtkWidget *group = gtk_widget_get_ancestor (row, ADW_TYPE_PREFERENCES_GROUP);

      if (group != NULL)
        adw_preferences_group_remove (ADW_PREFERENCES_GROUP (group), row);
    }
  g_ptr_array_set_size (self->rows, 0);
  if (info == NULL)
    return;

  adw_window_title_set_subtitle (self->window_title, info->name);
  admin = !info->removed && g_strcmp0 (info->admin, own_id) == 0;
  adw_preferences_group_set_description (self->members_group,
                                         info->removed ? _("You are no longer a member of this group")
                                         : admin ? _("You are the admin: you can add and remove members")
                                         : _("Only the admin can add or remove members"));

  for (guint i = 0; info->members != NULL && info->members[i] != NULL; i++)
    g_ptr_array_add (members, info->members[i]);
  g_ptr_array_sort_with_data (members, compare_members, self);
  for (guint i = 0; i < members->len; i++)
    {
      const char *peer_id = g_ptr_array_index (members, i);
      gboolean self_row = g_strcmp0 (peer_id, own_id) == 0;
      NatterPresence presence = self_row ? natter_messaging_service_get_presence (self->service)
                                         : natter_messaging_service_get_peer_presence (self->service, peer_id);
      gboolean is_admin = g_strcmp0 (peer_id, info->admin) == 0;
      g_autofree char *subtitle = is_admin
        /* Translators: a member's presence, and that it is the group's admin */
        ? g_strdup_printf (_("%s · Admin"), natter_app_presence_label (presence))
        : g_strdup (natter_app_presence_label (presence));
      GtkWidget *row = make_row (self, peer_id, subtitle);

      if (presence != NATTER_PRESENCE_OFFLINE)
        {
          GtkWidget *dot = gtk_image_new_from_icon_name ("natter-presence-symbolic");

          gtk_widget_add_css_class (dot, "presence-dot");
          if (presence == NATTER_PRESENCE_AWAY)
            gtk_widget_add_css_class (dot, "away");
          gtk_widget_set_valign (dot, GTK_ALIGN_CENTER);
          adw_action_row_add_suffix (ADW_ACTION_ROW (row), dot);
        }
      if (admin && !self_row)
        {
          GtkWidget *button = make_button ("list-remove-symbolic", _("Remove From Group"),
                                           "members.remove", peer_id);
          g_autofree char *what = g_strdup_printf ("group-members remove peer=%s", peer_id);

          adw_action_row_add_suffix (ADW_ACTION_ROW (row), button);
          natter_app_trace_position (button, what);
        }
      add_row (self, self->members_group, row);
      natter_ui_trace ("group-members group=%s peer=%s presence=%s admin=%d removable=%d",
                       self->group_id, peer_id, natter_presence_to_string (presence), is_admin,
                       admin && !self_row);
    }

  for (guint i = 0; admin && i < g_list_model_get_n_items (contacts); i++)
    {
      g_autoptr(NatterContact) contact = g_list_model_get_item (contacts, i);
      const char *peer_id = natter_contact_get_peer_id (contact);
      GtkWidget *row;

      if (natter_contact_get_state (contact) != NATTER_CONTACT_ACCEPTED ||
          g_strv_contains ((const char * const *) info->members, peer_id))
        continue;
      g_autofree char *what = g_strdup_printf ("group-members invite peer=%s", peer_id);
      GtkWidget *button = make_button ("list-add-symbolic", _("Add to Group"), "members.invite", peer_id);

      row = make_row (self, peer_id,
                      natter_app_presence_label (natter_messaging_service_get_peer_presence (self->service, peer_id)));
      adw_action_row_add_suffix (ADW_ACTION_ROW (row), button);
      add_row (self, self->invite_group, row);
      natter_app_trace_position (button, what);
      n_invitable++;
    }
  if (admin && n_invitable == 0)
    {
      GtkWidget *row = adw_action_row_new ();

      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), _("All your contacts are in the group"));
      gtk_widget_add_css_class (row, "dim-label");
      gtk_list_box_row_set_activatable (GTK_LIST_BOX_ROW (row), FALSE);
      gtk_widget_set_focusable (row, FALSE);
      add_row (self, self->invite_group, row);
    }
  gtk_widget_set_visible (GTK_WIDGET (self->invite_group), admin);
  natter_ui_trace ("group-members group=%s editable=%d invitable=%u", self->group_id, admin, n_invitable);
}

static gboolean
rebuild_idle (gpointer user_data)
{
  NatterGroupMembersWindow *self = user_data;

  self->rebuild_id = 0;
  rebuild (self);
  return G_SOURCE_REMOVE;
}

/* Not at once: a change may come from a click on a button of a row that
 * the rebuild destroys. */
static void
queue_rebuild (NatterGroupMembersWindow *self)
{
  if (self->rebuild_id == 0)
    self->rebuild_id = g_idle_add (rebuild_idle, self);
}

static void
on_group_changed (NatterGroupMembersWindow *self,
                  const char               *group_id,
                  NatterGroups             *groups)
{
  if (g_strcmp0 (group_id, self->group_id) == 0)
    queue_rebuild (self);
}

static void
natter_group_members_window_dispose (GObject *object)
{
  NatterGroupMembersWindow *self = NATTER_GROUP_MEMBERS_WINDOW (object);

  g_clear_handle_id (&self->rebuild_id, g_source_remove);
  g_clear_pointer (&self->rows, g_ptr_array_unref);
  g_clear_object (&self->groups);
  g_clear_object (&self->service);
  g_clear_pointer (&self->group_id, g_free);

  G_OBJECT_CLASS (natter_group_members_window_parent_class)->dispose (object);
}

static void
natter_group_members_window_class_init (NatterGroupMembersWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = natter_group_members_window_dispose;

  gtk_widget_class_set_template_from_resource (widget_class, "/org/natter/Natter/natter-group-members-window.ui");
  gtk_widget_class_bind_template_child (widget_class, NatterGroupMembersWindow, window_title);
  gtk_widget_class_bind_template_child (widget_class, NatterGroupMembersWindow, members_group);
  gtk_widget_class_bind_template_child (widget_class, NatterGroupMembersWindow, invite_group);
  gtk_widget_class_install_action (widget_class, "members.invite", "s", invite_action);
  gtk_widget_class_install_action (widget_class, "members.remove", "s", remove_action);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
natter_group_members_window_init (NatterGroupMembersWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->rows = g_ptr_array_new ();
}

/**
 * natter_group_members_window_new:
 * @service: the started messaging service
 * @group_id: the group
 *
 * Returns: (transfer full): a window listing the group's members
 */
NatterGroupMembersWindow *
natter_group_members_window_new (NatterMessagingService *service,
                                 const char             *group_id)
{
  NatterGroupMembersWindow *self = g_object_new (NATTER_TYPE_GROUP_MEMBERS_WINDOW, NULL);

  self->service = g_object_ref (service);
  self->groups = g_object_ref (natter_messaging_service_get_groups (service));
  self->group_id = g_strdup (group_id);
  g_signal_connect_object (self->groups, "group-changed", G_CALLBACK (on_group_changed), self,
                           G_CONNECT_SWAPPED);
  g_signal_connect_object (service, "presence-changed", G_CALLBACK (queue_rebuild), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (natter_messaging_service_get_contacts (service), "items-changed",
                           G_CALLBACK (queue_rebuild), self, G_CONNECT_SWAPPED);
  rebuild (self);
  return self;
}
