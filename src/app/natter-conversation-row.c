/* natter-conversation-row.c: one conversation in the sidebar
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-app-util.h"
#include "natter-conversation-row.h"

struct _NatterConversationRow
{
  GtkWidget parent_instance;

  NatterMessagingService *service;
  NatterConversation *conversation;
  GSignalGroup *conversation_signals;

  AdwAvatar *avatar;
  GtkImage *presence_dot;
  GtkImage *group_icon;
  GtkLabel *title_label;
  GtkLabel *time_label;
  GtkLabel *preview_label;
  GtkLabel *unread_label;
};

G_DEFINE_FINAL_TYPE (NatterConversationRow, natter_conversation_row, GTK_TYPE_WIDGET)

static void
update_presence (NatterConversationRow *self)
{
  const char *peer_id = self->conversation != NULL ? natter_conversation_get_peer_id (self->conversation) : NULL;
  NatterPresence presence = NATTER_PRESENCE_OFFLINE;

  /* A group (no peer ID) has no presence of its own. */
  if (peer_id != NULL && self->service != NULL)
    presence = natter_messaging_service_get_peer_presence (self->service, peer_id);

  gtk_widget_set_visible (GTK_WIDGET (self->presence_dot), presence != NATTER_PRESENCE_OFFLINE);
  if (presence == NATTER_PRESENCE_AWAY)
    gtk_widget_add_css_class (GTK_WIDGET (self->presence_dot), "away");
  else
    gtk_widget_remove_css_class (GTK_WIDGET (self->presence_dot), "away");
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->presence_dot), natter_app_presence_label (presence));
}

static void
update (NatterConversationRow *self)
{
  g_autofree char *title = NULL;
  g_autofree char *time = NULL;
  g_autofree char *unread = NULL;
  g_autofree char *description = NULL;
  const char *preview = NULL;
  guint unread_count = 0;
  gboolean group = FALSE;

  if (self->conversation != NULL)
    {
      const char *name = natter_conversation_get_title (self->conversation);
      const char *peer_id = natter_conversation_get_peer_id (self->conversation);
      gint64 last = natter_conversation_get_last_activity (self->conversation);

      group = natter_conversation_get_kind (self->conversation) == NATTER_CONVERSATION_GROUP;

      if (name != NULL && name[0] != '\0')
        title = g_strdup (name);
      else if (peer_id != NULL && self->service != NULL)
        title = natter_app_dup_peer_name (self->service, peer_id);
      else
        title = g_strdup (_("Unknown"));
      preview = natter_conversation_get_preview (self->conversation);
      unread_count = natter_conversation_get_unread_count (self->conversation);
      if (last > 0)
        {
          if (natter_app_same_day (last, g_get_real_time () / 1000))
            time = natter_app_format_time (last);
          else
            time = natter_app_format_day (last);
        }
    }

  gtk_label_set_label (self->title_label, title);
  adw_avatar_set_text (self->avatar, title);
  /* Groups have the group icon for an avatar, and next to their name. */
  adw_avatar_set_show_initials (self->avatar, !group);
  adw_avatar_set_icon_name (self->avatar, group ? "system-users-symbolic" : NULL);
  gtk_widget_set_visible (GTK_WIDGET (self->group_icon), group);
  gtk_label_set_label (self->time_label, time != NULL ? time : "");
  gtk_label_set_label (self->preview_label, preview != NULL ? preview : "");
  gtk_widget_set_visible (GTK_WIDGET (self->preview_label), preview != NULL);
  if (unread_count > 999)
    unread = g_strdup ("999+");
  else
    unread = g_strdup_printf ("%u", unread_count);
  gtk_label_set_label (self->unread_label, unread);
  gtk_widget_set_visible (GTK_WIDGET (self->unread_label), unread_count > 0);

  /* Screen readers read the row as one sentence. */
  if (unread_count > 0)
    description = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%u unread message", "%u unread messages",
                                                unread_count), unread_count);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, title != NULL ? title : "",
                                  GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, description != NULL ? description : "",
                                  -1);
  update_presence (self);
  if (group)
    natter_ui_trace ("conversation-row group=%s title=%s unread=%u preview=%s",
                     natter_conversation_get_group_id (self->conversation), title, unread_count,
                     preview != NULL ? preview : "");
}

static void
on_presence_changed (NatterConversationRow  *self,
                     const char             *peer_id,
                     NatterPresence          presence,
                     NatterMessagingService *service)
{
  if (self->conversation != NULL &&
      g_strcmp0 (natter_conversation_get_peer_id (self->conversation), peer_id) == 0)
    update_presence (self);
}

static void
natter_conversation_row_dispose (GObject *object)
{
  NatterConversationRow *self = NATTER_CONVERSATION_ROW (object);
  GtkWidget *child;

  gtk_widget_dispose_template (GTK_WIDGET (self), NATTER_TYPE_CONVERSATION_ROW);
  /* The template's root box is not a bound child: unparent it too. */
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  g_clear_object (&self->conversation_signals);
  g_clear_object (&self->conversation);
  g_clear_object (&self->service);

  G_OBJECT_CLASS (natter_conversation_row_parent_class)->dispose (object);
}

static void
natter_conversation_row_class_init (NatterConversationRowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = natter_conversation_row_dispose;

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_GROUP);
  gtk_widget_class_set_template_from_resource (widget_class, "/org/natter/Natter/natter-conversation-row.ui");
  gtk_widget_class_bind_template_child (widget_class, NatterConversationRow, avatar);
  gtk_widget_class_bind_template_child (widget_class, NatterConversationRow, presence_dot);
  gtk_widget_class_bind_template_child (widget_class, NatterConversationRow, group_icon);
  gtk_widget_class_bind_template_child (widget_class, NatterConversationRow, title_label);
  gtk_widget_class_bind_template_child (widget_class, NatterConversationRow, time_label);
  gtk_widget_class_bind_template_child (widget_class, NatterConversationRow, preview_label);
  gtk_widget_class_bind_template_child (widget_class, NatterConversationRow, unread_label);
}

static void
natter_conversation_row_init (NatterConversationRow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));

  self->conversation_signals = g_signal_group_new (NATTER_TYPE_CONVERSATION);
  g_signal_group_connect_swapped (self->conversation_signals, "notify", G_CALLBACK (update), self);
}

NatterConversationRow *
natter_conversation_row_new (NatterMessagingService *service)
{
  NatterConversationRow *self = g_object_new (NATTER_TYPE_CONVERSATION_ROW, NULL);

  self->service = g_object_ref (service);
  g_signal_connect_object (service, "presence-changed",
                           G_CALLBACK (on_presence_changed), self, G_CONNECT_SWAPPED);
  return self;
}

void
natter_conversation_row_set_conversation (NatterConversationRow *self,
                                          NatterConversation    *conversation)
{
  g_return_if_fail (NATTER_IS_CONVERSATION_ROW (self));

  if (!g_set_object (&self->conversation, conversation))
    return;
  g_signal_group_set_target (self->conversation_signals, conversation);
  update (self);
}
