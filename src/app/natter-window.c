/* natter-window.c: the main window
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-add-contact-dialog.h"
#include "natter-app-util.h"
#include "natter-chat-view.h"
#include "natter-contacts-window.h"
#include "natter-conversation-row.h"
#include "natter-group-list.h"
#include "natter-group-view.h"
#include "natter-invite.h"
#include "natter-new-group-dialog.h"
#include "natter-window.h"

struct _NatterWindow
{
  AdwApplicationWindow parent_instance;

  NatterProfile *profile;
  NatterMessagingService *service;
  NatterGroupList *group_list;
  GtkFlattenListModel *all;        /* direct conversations, then groups */
  GtkSortListModel *sorted;
  GtkFilterListModel *filtered;
  GtkStringFilter *filter;
  GtkSingleSelection *selection;
  GSettings *settings;
  guint reselect_id;

  /* Template widgets */
  AdwToastOverlay *toast_overlay;
  AdwLeaflet *leaflet;
  AdwAvatar *avatar;
  GtkLabel *display_name_label;
  GtkLabel *peer_id_label;
  GtkSearchBar *search_bar;
  GtkSearchEntry *search_entry;
  GtkStack *sidebar_stack;
  GtkListView *conversation_list;
  GtkStack *content_stack;
  NatterChatView *chat_view;
  NatterGroupView *group_view;
};

G_DEFINE_FINAL_TYPE (NatterWindow, natter_window, ADW_TYPE_APPLICATION_WINDOW)

enum {
  PROP_0,
  PROP_PROFILE,
  PROP_SERVICE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* What a sidebar row opens: a peer ID or a group ID. */
static const char *
conversation_target (NatterConversation *conversation)
{
  const char *peer_id = natter_conversation_get_peer_id (conversation);

  return peer_id != NULL ? peer_id : natter_conversation_get_group_id (conversation);
}

/* The peer or group ID of what the content pane shows. */
static const char *
open_target (NatterWindow *self)
{
  const char *page = gtk_stack_get_visible_child_name (self->content_stack);

  if (g_strcmp0 (page, "group") == 0)
    return natter_group_view_get_group_id (self->group_view);
  if (g_strcmp0 (page, "chat") == 0)
    return natter_chat_view_get_peer_id (self->chat_view);
  return NULL;
}

static gboolean
is_group (NatterWindow *self,
          const char   *id)
{
  NatterGroups *groups = self->service != NULL ? natter_messaging_service_get_groups (self->service) : NULL;
  g_autoptr(NatterGroupInfo) info = groups != NULL && id != NULL ? natter_groups_get_info (groups, id) : NULL;

  return info != NULL;
}

static void
update_sidebar_page (NatterWindow *self)
{
  GListModel *all = G_LIST_MODEL (self->all);
  const char *page = "list";

  if (all == NULL || g_list_model_get_n_items (all) == 0)
    page = "empty";
  else if (g_list_model_get_n_items (G_LIST_MODEL (self->filtered)) == 0)
    page = "no-results";
  gtk_stack_set_visible_child_name (self->sidebar_stack, page);
}

/* The service moves a conversation to the top when it changes; the open
 * one stays selected.  Not from inside items-changed: the list view is
 * still handling the change then. */
static gboolean
reselect_open_conversation (gpointer user_data)
{
  NatterWindow *self = user_data;
  const char *current = open_target (self);
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->selection));
  guint found = GTK_INVALID_LIST_POSITION;

  self->reselect_id = 0;
  for (guint i = 0; current != NULL && i < n; i++)
    {
      g_autoptr(NatterConversation) c = g_list_model_get_item (G_LIST_MODEL (self->selection), i);

      if (g_strcmp0 (conversation_target (c), current) == 0)
        {
          found = i;
          break;
        }
    }
  if (gtk_single_selection_get_selected (self->selection) != found)
    gtk_single_selection_set_selected (self->selection, found);
  return G_SOURCE_REMOVE;
}

static void
queue_reselect (NatterWindow *self)
{
  if (self->reselect_id == 0)
    self->reselect_id = g_idle_add (reselect_open_conversation, self);
}

static void
on_conversations_changed (NatterWindow *self,
                          guint         position,
                          guint         removed,
                          guint         added,
                          GListModel   *model)
{
  update_sidebar_page (self);
  queue_reselect (self);
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
copy_text (NatterWindow *self,
           const char   *text,
           const char   *toast)
{
  gdk_clipboard_set_text (gtk_widget_get_clipboard (GTK_WIDGET (self)), text);
  adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (toast));
}

static void
copy_peer_id_action (GtkWidget  *widget,
                     const char *action_name,
                     GVariant   *parameter)
{
  NatterWindow *self = NATTER_WINDOW (widget);

  if (self->profile == NULL)
    return;
  copy_text (self, natter_identity_get_peer_id (natter_profile_get_identity (self->profile)),
             _("Peer ID copied"));
}

static void
copy_invite_link_action (GtkWidget  *widget,
                         const char *action_name,
                         GVariant   *parameter)
{
  NatterWindow *self = NATTER_WINDOW (widget);
  g_autofree char *name = NULL;
  g_autofree char *link = NULL;

  if (self->profile == NULL)
    return;
  name = natter_profile_dup_display_name (self->profile);
  link = natter_invite_build (natter_identity_get_peer_id (natter_profile_get_identity (self->profile)),
                              name);
  copy_text (self, link, _("Invite link copied"));
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
add_contact_action (GtkWidget  *widget,
                    const char *action_name,
                    GVariant   *parameter)
{
  natter_window_open_invite (NATTER_WINDOW (widget), NULL, NULL);
}

static void
show_contacts_action (GtkWidget  *widget,
                      const char *action_name,
                      GVariant   *parameter)
{
  NatterWindow *self = NATTER_WINDOW (widget);
  NatterContactsWindow *contacts;

  if (self->service == NULL)
    return;
  contacts = natter_contacts_window_new (self->service);
  gtk_window_set_transient_for (GTK_WINDOW (contacts), GTK_WINDOW (self));
  gtk_window_present (GTK_WINDOW (contacts));
}

static void
search_conversations_action (GtkWidget  *widget,
                             const char *action_name,
                             GVariant   *parameter)
{
  NatterWindow *self = NATTER_WINDOW (widget);

  adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_BACK);
  gtk_search_bar_set_search_mode (self->search_bar, TRUE);
  gtk_widget_grab_focus (GTK_WIDGET (self->search_entry));
}

/* Alt+Up and Alt+Down walk the sidebar, as in other GNOME chat apps. */
static void
move_conversation_action (GtkWidget  *widget,
                          const char *action_name,
                          GVariant   *parameter)
{
  NatterWindow *self = NATTER_WINDOW (widget);
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->selection));
  guint selected = gtk_single_selection_get_selected (self->selection);
  int step = g_variant_get_int32 (parameter);
  guint next;
  g_autoptr(NatterConversation) conversation = NULL;

  if (n == 0)
    return;
  if (selected == GTK_INVALID_LIST_POSITION)
    next = step > 0 ? 0 : n - 1;
  else if (step < 0 && selected == 0)
    return;
  else
    next = MIN (selected + step, n - 1);
  conversation = g_list_model_get_item (G_LIST_MODEL (self->selection), next);
  natter_window_open_conversation (self, conversation_target (conversation));
}

static void
new_group_action (GtkWidget  *widget,
                  const char *action_name,
                  GVariant   *parameter)
{
  NatterWindow *self = NATTER_WINDOW (widget);
  NatterNewGroupDialog *dialog;

  if (self->service == NULL || natter_messaging_service_get_groups (self->service) == NULL)
    return;
  dialog = natter_new_group_dialog_new (self->service);
  gtk_window_set_transient_for (GTK_WINDOW (dialog), GTK_WINDOW (self));
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
on_search_changed (NatterWindow   *self,
                   GtkSearchEntry *entry)
{
  gtk_string_filter_set_search (self->filter, gtk_editable_get_text (GTK_EDITABLE (entry)));
  update_sidebar_page (self);
}

static void
on_search_activate (NatterWindow   *self,
                    GtkSearchEntry *entry)
{
  g_autoptr(NatterConversation) first = NULL;

  if (g_list_model_get_n_items (G_LIST_MODEL (self->filtered)) == 0)
    return;
  first = g_list_model_get_item (G_LIST_MODEL (self->filtered), 0);
  natter_window_open_conversation (self, conversation_target (first));
}

static void
on_conversation_activated (NatterWindow *self,
                           guint         position,
                           GtkListView  *list)
{
  g_autoptr(NatterConversation) conversation = g_list_model_get_item (G_LIST_MODEL (self->selection), position);

  if (conversation != NULL)
    natter_window_open_conversation (self, conversation_target (conversation));
}

/* @id is a peer ID or a group ID. */
static gboolean
conversation_in_view (NatterWindow *self,
                      const char   *id)
{
  return gtk_window_is_active (GTK_WINDOW (self)) &&
         g_strcmp0 (open_target (self), id) == 0 &&
         (!adw_leaflet_get_folded (self->leaflet) ||
          adw_leaflet_get_visible_child (self->leaflet) == GTK_WIDGET (self->content_stack));
}

static void
send_notification (NatterWindow *self,
                   const char   *id,
                   const char   *title,
                   const char   *body)
{
  GApplication *app = G_APPLICATION (gtk_window_get_application (GTK_WINDOW (self)));
  g_autoptr(GNotification) notification = NULL;
  g_autofree char *notification_id = NULL;

  if (conversation_in_view (self, id) || app == NULL)
    return;

  /* One notification per conversation, replaced by the newest message. */
  notification = g_notification_new (title);
  g_notification_set_body (notification, body);
  g_notification_set_priority (notification, G_NOTIFICATION_PRIORITY_HIGH);
  g_notification_set_default_action_and_target (notification, "app.open-conversation", "s", id);
  g_notification_set_category (notification, "im.received");
  notification_id = g_strconcat ("message-", id, NULL);
  g_application_send_notification (app, notification_id, notification);
}

static void
on_message_received (NatterWindow      *self,
                     NatterMessageItem *item,
                     NatterMessagingService *service)
{
  const char *peer_id = natter_message_item_get_peer_id (item);
  g_autofree char *name = natter_app_dup_peer_name (service, peer_id);

  send_notification (self, peer_id, name, natter_message_item_get_text (item));
}

static void
on_group_message_received (NatterWindow       *self,
                           NatterGroupMessage *message,
                           NatterGroups       *groups)
{
  g_autoptr(NatterGroupInfo) info = natter_groups_get_info (groups, message->group_id);
  g_autofree char *name = NULL;
  g_autofree char *body = NULL;

  if (info == NULL || g_strcmp0 (message->kind, "text") != 0 || message->text == NULL)
    return;
  name = natter_app_dup_peer_name (self->service, message->sender);
  /* Translators: a group message in a notification, "sender: text" */
  body = g_strdup_printf (_("%s: %s"), name, message->text);
  send_notification (self, message->group_id, info->name, body);
}

static void
on_is_active_changed (NatterWindow *self)
{
  const char *id = open_target (self);

  if (id == NULL || !conversation_in_view (self, id))
    return;
  if (g_strcmp0 (gtk_stack_get_visible_child_name (self->content_stack), "group") == 0)
    natter_group_view_mark_read (self->group_view);
  else
    natter_chat_view_mark_read (self->chat_view);
}

static void
factory_setup (GtkSignalListItemFactory *factory,
               GtkListItem              *item,
               NatterWindow             *self)
{
  gtk_list_item_set_child (item, GTK_WIDGET (natter_conversation_row_new (self->service)));
}

static void
factory_bind (GtkSignalListItemFactory *factory,
              GtkListItem              *item,
              NatterWindow             *self)
{
  natter_conversation_row_set_conversation (NATTER_CONVERSATION_ROW (gtk_list_item_get_child (item)),
                                            gtk_list_item_get_item (item));
}

static void
factory_unbind (GtkSignalListItemFactory *factory,
                GtkListItem              *item,
                NatterWindow             *self)
{
  natter_conversation_row_set_conversation (NATTER_CONVERSATION_ROW (gtk_list_item_get_child (item)),
                                            NULL);
}

static void
natter_window_constructed (GObject *object)
{
  NatterWindow *self = NATTER_WINDOW (object);
  g_autoptr(GtkListItemFactory) factory = NULL;
  GtkExpression *expression;
  GtkSorter *sorter;
  GListStore *sources;

  G_OBJECT_CLASS (natter_window_parent_class)->constructed (object);

  g_return_if_fail (self->profile != NULL);
  g_return_if_fail (self->service != NULL);

  g_signal_connect_object (natter_profile_get_settings (self->profile),
                           "changed::display-name",
                           G_CALLBACK (on_display_name_changed), self,
                           G_CONNECT_SWAPPED);
  update_identity (self);

  /* Direct conversations and groups in one list, most recent activity
   * first; the filter matches names as typed. */
  self->group_list = natter_group_list_new (self->service);
  sources = g_list_store_new (G_TYPE_LIST_MODEL);
  g_list_store_append (sources, natter_messaging_service_get_conversations (self->service));
  g_list_store_append (sources, natter_group_list_get_model (self->group_list));
  self->all = gtk_flatten_list_model_new (G_LIST_MODEL (sources));
  expression = gtk_property_expression_new (NATTER_TYPE_CONVERSATION, NULL, "last-activity");
  sorter = GTK_SORTER (gtk_numeric_sorter_new (expression));
  gtk_numeric_sorter_set_sort_order (GTK_NUMERIC_SORTER (sorter), GTK_SORT_DESCENDING);
  self->sorted = gtk_sort_list_model_new (g_object_ref (G_LIST_MODEL (self->all)), sorter);
  self->filter = gtk_string_filter_new (gtk_property_expression_new (NATTER_TYPE_CONVERSATION, NULL, "title"));
  gtk_string_filter_set_match_mode (self->filter, GTK_STRING_FILTER_MATCH_MODE_SUBSTRING);
  gtk_string_filter_set_ignore_case (self->filter, TRUE);
  self->filtered = gtk_filter_list_model_new (g_object_ref (G_LIST_MODEL (self->sorted)),
                                              g_object_ref (GTK_FILTER (self->filter)));
  self->selection = gtk_single_selection_new (g_object_ref (G_LIST_MODEL (self->filtered)));
  gtk_single_selection_set_autoselect (self->selection, FALSE);
  gtk_single_selection_set_can_unselect (self->selection, TRUE);
  gtk_single_selection_set_selected (self->selection, GTK_INVALID_LIST_POSITION);
  g_signal_connect_object (self->selection, "items-changed",
                           G_CALLBACK (on_conversations_changed), self, G_CONNECT_SWAPPED);

  factory = gtk_signal_list_item_factory_new ();
  g_signal_connect_object (factory, "setup", G_CALLBACK (factory_setup), self, 0);
  g_signal_connect_object (factory, "bind", G_CALLBACK (factory_bind), self, 0);
  g_signal_connect_object (factory, "unbind", G_CALLBACK (factory_unbind), self, 0);
  gtk_list_view_set_factory (self->conversation_list, factory);
  gtk_list_view_set_model (self->conversation_list, GTK_SELECTION_MODEL (self->selection));

  natter_chat_view_set_service (self->chat_view, self->service);
  natter_group_view_set_service (self->group_view, self->service, self->group_list);
  if (natter_messaging_service_get_groups (self->service) != NULL)
    g_signal_connect_object (natter_messaging_service_get_groups (self->service), "message-received",
                             G_CALLBACK (on_group_message_received), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->service, "message-received",
                           G_CALLBACK (on_message_received), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self, "notify::is-active",
                           G_CALLBACK (on_is_active_changed), self, G_CONNECT_SWAPPED);

  update_sidebar_page (self);
}

static void
natter_window_dispose (GObject *object)
{
  NatterWindow *self = NATTER_WINDOW (object);

  g_clear_handle_id (&self->reselect_id, g_source_remove);
  gtk_widget_dispose_template (GTK_WIDGET (self), NATTER_TYPE_WINDOW);
  g_clear_object (&self->selection);
  g_clear_object (&self->filtered);
  g_clear_object (&self->filter);
  g_clear_object (&self->sorted);
  g_clear_object (&self->all);
  g_clear_object (&self->group_list);
  g_clear_object (&self->service);
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
    case PROP_SERVICE:
      g_value_set_object (value, self->service);
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
    case PROP_SERVICE:
      self->service = g_value_dup_object (value);
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
  properties[PROP_SERVICE] =
    g_param_spec_object ("service", NULL, NULL,
                         NATTER_TYPE_MESSAGING_SERVICE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  g_type_ensure (NATTER_TYPE_CHAT_VIEW);
  g_type_ensure (NATTER_TYPE_GROUP_VIEW);

  gtk_widget_class_set_template_from_resource (widget_class, "/org/natter/Natter/natter-window.ui");
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, leaflet);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, avatar);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, display_name_label);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, peer_id_label);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, search_bar);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, search_entry);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, sidebar_stack);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, conversation_list);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, content_stack);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, chat_view);
  gtk_widget_class_bind_template_child (widget_class, NatterWindow, group_view);
  gtk_widget_class_bind_template_callback (widget_class, on_search_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_search_activate);
  gtk_widget_class_bind_template_callback (widget_class, on_conversation_activated);

  gtk_widget_class_install_action (widget_class, "win.copy-peer-id", NULL, copy_peer_id_action);
  gtk_widget_class_install_action (widget_class, "win.copy-invite-link", NULL, copy_invite_link_action);
  gtk_widget_class_install_action (widget_class, "win.show-sidebar", NULL, show_sidebar_action);
  gtk_widget_class_install_action (widget_class, "win.add-contact", NULL, add_contact_action);
  gtk_widget_class_install_action (widget_class, "win.show-contacts", NULL, show_contacts_action);
  gtk_widget_class_install_action (widget_class, "win.new-group", NULL, new_group_action);
  gtk_widget_class_install_action (widget_class, "win.search-conversations", NULL, search_conversations_action);
  gtk_widget_class_install_action (widget_class, "win.move-conversation", "i", move_conversation_action);

  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_c, GDK_CONTROL_MASK | GDK_SHIFT_MASK,
                                       "win.copy-peer-id", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_n, GDK_CONTROL_MASK,
                                       "win.add-contact", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_n, GDK_CONTROL_MASK | GDK_SHIFT_MASK,
                                       "win.new-group", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_k, GDK_CONTROL_MASK,
                                       "win.search-conversations", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Up, GDK_ALT_MASK,
                                       "win.move-conversation", "i", -1);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Down, GDK_ALT_MASK,
                                       "win.move-conversation", "i", 1);
}

static void
natter_window_init (NatterWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));

  gtk_search_bar_connect_entry (self->search_bar, GTK_EDITABLE (self->search_entry));

  /* Remember the window size between runs, like every GNOME app does. */
  self->settings = g_settings_new (APP_ID);
  g_settings_bind (self->settings, "window-width", self, "default-width", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "window-height", self, "default-height", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "window-maximized", self, "maximized", G_SETTINGS_BIND_DEFAULT);
}

/**
 * natter_window_new:
 * @application: (nullable): the application
 * @profile: the open profile whose identity the window shows
 * @service: the started messaging service of @profile
 *
 * Returns: (transfer full): a new window
 */
NatterWindow *
natter_window_new (AdwApplication         *application,
                   NatterProfile          *profile,
                   NatterMessagingService *service)
{
  return g_object_new (NATTER_TYPE_WINDOW,
                       "application", application,
                       "profile", profile,
                       "service", service,
                       NULL);
}

NatterProfile *
natter_window_get_profile (NatterWindow *self)
{
  g_return_val_if_fail (NATTER_IS_WINDOW (self), NULL);

  return self->profile;
}

/**
 * natter_window_open_conversation:
 * @self: a window
 * @peer_id: the contact to talk to, or the ID of one of our groups
 *
 * Shows the conversation with @peer_id, which need not have a message yet.
 */
void
natter_window_open_conversation (NatterWindow *self,
                                 const char   *peer_id)
{
  GApplication *app;
  g_autofree char *id = NULL;
  gboolean group;

  g_return_if_fail (NATTER_IS_WINDOW (self));
  g_return_if_fail (peer_id != NULL);

  group = is_group (self, peer_id);
  if (group)
    natter_group_view_set_group_id (self->group_view, peer_id);
  else
    natter_chat_view_set_peer_id (self->chat_view, peer_id);
  gtk_stack_set_visible_child_name (self->content_stack, group ? "group" : "chat");
  adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_FORWARD);
  queue_reselect (self);
  if (group)
    natter_group_view_focus_composer (self->group_view);
  else
    natter_chat_view_focus_composer (self->chat_view);

  app = G_APPLICATION (gtk_window_get_application (GTK_WINDOW (self)));
  if (app != NULL)
    {
      id = g_strconcat ("message-", peer_id, NULL);
      g_application_withdraw_notification (app, id);
    }
  if (conversation_in_view (self, peer_id))
    on_is_active_changed (self);
}

/**
 * natter_window_open_invite:
 * @self: a window
 * @peer_id: (nullable): a peer ID from an invite link
 * @name: (nullable): the name in the link
 *
 * Opens the conversation with a known contact, or asks whether to add the
 * peer as a contact.  With no @peer_id, asks for one.
 */
void
natter_window_open_invite (NatterWindow *self,
                           const char   *peer_id,
                           const char   *name)
{
  NatterAddContactDialog *dialog;

  g_return_if_fail (NATTER_IS_WINDOW (self));

  if (peer_id != NULL)
    {
      g_autoptr(NatterContact) contact = natter_app_find_contact (self->service, peer_id);

      if (contact != NULL && natter_contact_get_state (contact) == NATTER_CONTACT_ACCEPTED)
        {
          natter_window_open_conversation (self, peer_id);
          return;
        }
    }

  dialog = natter_add_contact_dialog_new (self->service, peer_id, name);
  gtk_window_set_transient_for (GTK_WINDOW (dialog), GTK_WINDOW (self));
  gtk_window_present (GTK_WINDOW (dialog));
}

void
natter_window_show_toast (NatterWindow *self,
                          const char   *message)
{
  g_return_if_fail (NATTER_IS_WINDOW (self));

  adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (message));
}

/**
 * natter_window_send_files:
 * @self: the window
 * @files: files to send
 *
 * Sends @files to the open conversation's contact, as a drop on it does.
 *
 * Returns: %TRUE when a conversation is open
 */
gboolean
natter_window_send_files (NatterWindow *self,
                          GdkFileList  *files)
{
  g_return_val_if_fail (NATTER_IS_WINDOW (self), FALSE);

  return natter_chat_view_send_files (self->chat_view, files);
}
