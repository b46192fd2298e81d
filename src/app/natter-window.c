/* natter-window.c: the main window
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-window.h"

struct _NatterWindow
{
  AdwApplicationWindow parent_instance;

  NatterProfile *profile;
  GListModel *conversations;
  GtkSingleSelection *selection;
  GSettings *settings;

  /* Template widgets */
  AdwToastOverlay *toast_overlay;
  AdwLeaflet *leaflet;
  AdwAvatar *avatar;
  GtkLabel *display_name_label;
  GtkLabel *peer_id_label;
  GtkStack *sidebar_stack;
  GtkListView *conversation_list;
};

G_DEFINE_FINAL_TYPE (NatterWindow, natter_window, ADW_TYPE_APPLICATION_WINDOW)

enum {
  PROP_0,
  PROP_PROFILE,
  PROP_CONVERSATIONS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
update_sidebar_page (NatterWindow *self)
{
  gboolean empty = self->conversations == NULL ||
                   g_list_model_get_n_items (self->conversations) == 0;

  gtk_stack_set_visible_child_name (self->sidebar_stack, empty ? "empty" : "list");
}

static void
on_conversations_changed (NatterWindow *self,
                          guint         position,
                          guint         removed,
                          guint         added,
                          GListModel   *model)
{
  update_sidebar_page (self);
}

static void
update_identity (NatterWindow *self)
{
  g_autofree char *display_name = NULL;
  NatterIdentity *identity;

  if (self->profile == NULL)
    return;

  display_name = natter_profile_dup_display_name (self->profile);
  identity = natter_profile_get_identity (self->profile);

  gtk_label_set_label (self->display_name_label, display_name);
  adw_avatar_set_text (self->avatar, display_name);
  gtk_label_set_label (self->peer_id_label, natter_identity_get_peer_id (identity));
}

static void
on_display_name_changed (NatterWindow *self,
                         const char   *key,
                         GSettings    *settings)
{
  update_identity (self);
}

static void
copy_peer_id_action (GtkWidget  *widget,
                     const char *action_name,
                     GVariant   *parameter)
{
  NatterWindow *self = NATTER_WINDOW (widget);
  NatterIdentity *identity;

  if (self->profile == NULL)
    return;

  identity = natter_profile_get_identity (self->profile);
  gdk_clipboard_set_text (gtk_widget_get_clipboard (widget),
                          natter_identity_get_peer_id (identity));
  adw_toast_overlay_add_toast (self->toast_overlay,
                               adw_toast_new (_("Peer ID copied")));
}

static void
show_sidebar_action (GtkWidget  *widget,
                     const char *action_name,
                     GVariant   *parameter)
{
  NatterWindow *self = NATTER_WINDOW (widget);

  adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_BACK);
}

static void
natter_window_set_conversations (NatterWindow *self,
                                 GListModel   *conversations)
{
  if (self->conversations != NULL)
    g_signal_handlers_disconnect_by_func (self->conversations,
                                          on_conversations_changed, self);
  g_set_object (&self->conversations, conversations);
  if (conversations != NULL)
    g_signal_connect_object (conversations, "items-changed",
                             G_CALLBACK (on_conversations_changed), self,
                             G_CONNECT_SWAPPED);

  gtk_single_selection_set_model (self->selection, conversations);
  update_sidebar_page (self);
}

static void
natter_window_constructed (GObject *object)
{
  NatterWindow *self = NATTER_WINDOW (object);

  G_OBJECT_CLASS (natter_window_parent_class)->constructed (object);

  if (self->profile != NULL)
    {
      g_signal_connect_object (natter_profile_get_settings (self->profile),
                               "changed::display-name",
                               G_CALLBACK (on_display_name_changed), self,
                               G_CONNECT_SWAPPED);
      gtk_window_set_title (GTK_WINDOW (self), _("Natter"));
    }
  update_identity (self);
}

static void
natter_window_dispose (GObject *object)
{
  NatterWindow *self = NATTER_WINDOW (object);

  if (self->conversations != NULL)
    g_signal_handlers_disconnect_by_func (self->conversations,
                                          on_conversations_changed, self);
  gtk_widget_dispose_template (GTK_WIDGET (self), NATTER_TYPE_WINDOW);
  g_clear_object (&self->selection);
  g_clear_object (&self->conversations);
  g_clear_object (&self->profile);
  g_clear_object (&self->settings);

  G_OBJECT_CLASS (natter_window_parent_class)->dispose (object);
}

static void
natter_window_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  NatterWindow *self = NATTER_WINDOW (object);

  switch (prop_id)
    {
    case PROP_PROFILE:
      g_value_set_object (value, self->profile);
      break;
    case PROP_CONVERSATIONS:
      g_value_set_object (value, self->conversations);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_window_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  NatterWindow *self = NATTER_WINDOW (object);

  switch (prop_id)
    {
    case PROP_PROFILE:
      self->profile = g_value_dup_object (value);
      break;
    case PROP_CONVERSATIONS:
      natter_window_set_conversations (self, g_value_get_object (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_window_class_init (NatterWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->constructed = natter_window_constructed;
  object_class->dispose = natter_window_dispose;
  object_class->get_property = natter_window_get_property;
  object_class->set_property = natter_window_set_property;

  properties[PROP_PROFILE] =
    g_param_spec_object ("profile", NULL, NULL,
                         NATTER_TYPE_PROFILE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_CONVERSATIONS] =
    g_param_spec_object ("conversations", NULL, NULL,
                         G_TYPE_LIST_MODEL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class, "/org/natter/Natter/natter-window.ui");
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, leaflet);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, avatar);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, display_name_label);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, peer_id_label);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, sidebar_stack);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, conversation_list);

  gtk_widget_class_install_action (widget_class, "win.copy-peer-id", NULL, copy_peer_id_action);
  gtk_widget_class_install_action (widget_class, "win.show-sidebar", NULL, show_sidebar_action);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_c, GDK_CONTROL_MASK | GDK_SHIFT_MASK,
                                       "win.copy-peer-id", NULL);
}

static char *
natter_conversation_row_unread_label (GtkListItem *item,
                                      guint        unread_count)
{
  if (unread_count > 999)
    return g_strdup ("999+");
  return g_strdup_printf ("%u", unread_count);
}

static gboolean
natter_conversation_row_has_unread (GtkListItem *item,
                                    guint        unread_count)
{
  return unread_count > 0;
}

static void
natter_window_init (NatterWindow *self)
{
  g_autoptr(GtkBuilderScope) scope = gtk_builder_cscope_new ();
  g_autoptr(GtkListItemFactory) factory = NULL;

  gtk_widget_init_template (GTK_WIDGET (self));

  gtk_builder_cscope_add_callback_symbols (GTK_BUILDER_CSCOPE (scope),
                                           "natter_conversation_row_unread_label",
                                           G_CALLBACK (natter_conversation_row_unread_label),
                                           "natter_conversation_row_has_unread",
                                           G_CALLBACK (natter_conversation_row_has_unread),
                                           NULL);
  factory = gtk_builder_list_item_factory_new_from_resource (scope,
                                                             "/org/natter/Natter/natter-conversation-row.ui");
  gtk_list_view_set_factory (self->conversation_list, factory);

  self->selection = gtk_single_selection_new (NULL);
  gtk_single_selection_set_autoselect (self->selection, FALSE);
  gtk_single_selection_set_can_unselect (self->selection, TRUE);
  gtk_list_view_set_model (self->conversation_list, GTK_SELECTION_MODEL (self->selection));

  /* Remember the window size between runs, like every GNOME app does. */
  self->settings = g_settings_new (APP_ID);
  g_settings_bind (self->settings, "window-width", self, "default-width", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "window-height", self, "default-height", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "window-maximized", self, "maximized", G_SETTINGS_BIND_DEFAULT);

  update_sidebar_page (self);
}

/**
 * natter_window_new:
 * @application: the application
 * @profile: the open profile whose identity the window shows
 * @conversations: (nullable): a #GListModel of conversations
 *
 * Returns: (transfer full): a new window
 */
NatterWindow *
natter_window_new (AdwApplication *application,
                   NatterProfile  *profile,
                   GListModel     *conversations)
{
  return g_object_new (NATTER_TYPE_WINDOW,
                       "application", application,
                       "profile", profile,
                       "conversations", conversations,
                       NULL);
}

NatterProfile *
natter_window_get_profile (NatterWindow *self)
{
  g_return_val_if_fail (NATTER_IS_WINDOW (self), NULL);

  return self->profile;
}
