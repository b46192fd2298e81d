/* natter-group-view.c: the messages of one group and the composer
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-app-util.h"
#include "natter-group-members-window.h"
#include "natter-group-view.h"
#include "natter-message-row.h"

struct _NatterGroupView
{
  GtkWidget parent_instance;

  NatterMessagingService *service;
  NatterGroups *groups;
  NatterGroupList *group_list;
  char *group_id;
  GListStore *messages;        /* NatterMessageItem, display order */
  GHashTable *bound_rows;      /* msg ID → NatterMessageRow (borrowed) */
  gboolean folded;
  gboolean stick_to_bottom;

  /* Template widgets */
  GtkLabel *title_label;
  GtkLabel *subtitle_label;
  GtkSpinner *sync_spinner;
  GtkWidget *members_button;
  GtkScrolledWindow *scroller;
  GtkListView *message_list;
  AdwStatusPage *empty_page;
  GtkRevealer *typing_revealer;
  GtkLabel *typing_label;
  GtkWidget *composer_bar;
  GtkTextView *composer;
};

G_DEFINE_FINAL_TYPE (NatterGroupView, natter_group_view, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_FOLDED,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
show_toast (NatterGroupView *self,
            const char      *message)
{
  GtkWidget *overlay = gtk_widget_get_ancestor (GTK_WIDGET (self), ADW_TYPE_TOAST_OVERLAY);

  if (overlay != NULL)
    adw_toast_overlay_add_toast (ADW_TOAST_OVERLAY (overlay), adw_toast_new (message));
  else
    g_warning ("%s", message);
}

static gboolean
is_shown (NatterGroupView *self)
{
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));

  return root != NULL && gtk_window_is_active (GTK_WINDOW (root)) &&
         gtk_widget_get_mapped (GTK_WIDGET (self));
}

static void
update_header (NatterGroupView *self)
{
  g_autoptr(NatterGroupInfo) info = NULL;
  g_autofree char *subtitle = NULL;
  guint n_members;
  gboolean admin;

  if (self->group_id == NULL || self->groups == NULL)
    return;
  info = natter_groups_get_info (self->groups, self->group_id);
  if (info == NULL)
    return;

  n_members = info->members != NULL ? g_strv_length (info->members) : 0;
  admin = g_strcmp0 (info->admin, natter_messaging_service_get_peer_id (self->service)) == 0;
  gtk_label_set_label (self->title_label, info->name);
  if (info->removed)
    subtitle = g_strdup (_("You are no longer a member"));
  else if (info->syncing)
    subtitle = g_strdup (_("Syncing…"));
  else
    subtitle = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%u member", "%u members", n_members),
                                n_members);
  gtk_label_set_label (self->subtitle_label, subtitle);
  gtk_widget_set_visible (GTK_WIDGET (self->sync_spinner), info->syncing && !info->removed);
  gtk_spinner_set_spinning (self->sync_spinner, info->syncing && !info->removed);
  gtk_widget_set_sensitive (self->composer_bar, !info->removed);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "group.leave", !info->removed && !admin);

  natter_ui_trace ("group-header group=%s name=%s members=%u syncing=%d removed=%d admin=%d",
                   self->group_id, info->name, n_members, info->syncing, info->removed, admin);
}

static void
update_typing (NatterGroupView *self)
{
  g_auto(GStrv) typing = NULL;
  g_autofree char *text = NULL;
  guint n;

  if (self->group_id == NULL || self->groups == NULL)
    return;
  typing = natter_groups_get_typing (self->groups, self->group_id);
  n = typing != NULL ? g_strv_length (typing) : 0;
  if (n == 1)
    {
      g_autofree char *name = natter_app_dup_peer_name (self->service, typing[0]);

      text = g_strdup_printf (_("%s is typing…"), name);
    }
  else if (n == 2)
    {
      g_autofree char *first = natter_app_dup_peer_name (self->service, typing[0]);
      g_autofree char *second = natter_app_dup_peer_name (self->service, typing[1]);

      /* Translators: two members of a group are typing */
      text = g_strdup_printf (_("%s and %s are typing…"), first, second);
    }
  else if (n > 2)
    text = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%u person is typing…",
                                         "%u people are typing…", n), n);
  if (text != NULL)
    gtk_label_set_label (self->typing_label, text);
  if (gtk_revealer_get_reveal_child (self->typing_revealer) != (n > 0))
    gtk_revealer_set_reveal_child (self->typing_revealer, n > 0);
  natter_ui_trace ("group-typing group=%s text=%s", self->group_id, text != NULL ? text : "");
}

/* {{{ History */

static NatterMessageItem *
item_new (NatterGroupView          *self,
          const NatterGroupMessage *message)
{
  g_autofree char *body = NULL;
  NatterStoreMessage stored = { 0, };
  gboolean event = g_strcmp0 (message->kind, "event") == 0;

  if (event)
    {
      body = natter_app_dup_group_event (self->service, message->sender, message->text);
      if (body == NULL)
        return NULL;
    }
  else
    body = g_strdup (message->text != NULL ? message->text : _("This message could not be decrypted"));

  stored.msg_id = message->msg_id;
  stored.sender = message->sender;
  stored.direction = message->outgoing ? NATTER_STORE_DIRECTION_OUT : NATTER_STORE_DIRECTION_IN;
  stored.type = event ? (char *) "event" : (char *) "text";
  stored.body = body;
  stored.timestamp = message->timestamp;
  stored.sequence = (gint64) message->counter;
  stored.state = message->outgoing ? NATTER_STORE_MESSAGE_SENT : NATTER_STORE_MESSAGE_DELIVERED;
  return natter_message_item_new (&stored, message->group_id);
}

/* The group's order is causal: a late message can land above newer ones.
 * New messages at the end are appended; anything else replaces the list. */
static void
reload_history (NatterGroupView *self)
{
  g_autoptr(GPtrArray) history = NULL;
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func (g_object_unref);
  guint n_old = g_list_model_get_n_items (G_LIST_MODEL (self->messages));
  gboolean prefix = TRUE;

  if (self->group_id == NULL || self->groups == NULL)
    {
      g_list_store_remove_all (self->messages);
      return;
    }
  history = natter_groups_get_history (self->groups, self->group_id);
  for (guint i = 0; i < history->len; i++)
    {
      NatterMessageItem *item = item_new (self, g_ptr_array_index (history, i));

      if (item != NULL)
        g_ptr_array_add (items, item);
    }
  if (items->len < n_old)
    prefix = FALSE;
  for (guint i = 0; prefix && i < n_old; i++)
    {
      g_autoptr(NatterMessageItem) old = g_list_model_get_item (G_LIST_MODEL (self->messages), i);

      prefix = g_strcmp0 (natter_message_item_get_msg_id (old),
                          natter_message_item_get_msg_id (g_ptr_array_index (items, i))) == 0;
    }
  if (prefix)
    g_list_store_splice (self->messages, n_old, 0, items->pdata + n_old, items->len - n_old);
  else
    g_list_store_splice (self->messages, 0, n_old, items->pdata, items->len);
  gtk_widget_set_visible (GTK_WIDGET (self->empty_page), items->len == 0);
}

static void
scroll_to_bottom (NatterGroupView *self)
{
  GtkAdjustment *adjustment = gtk_scrolled_window_get_vadjustment (self->scroller);

  gtk_adjustment_set_value (adjustment,
                            gtk_adjustment_get_upper (adjustment) - gtk_adjustment_get_page_size (adjustment));
}

static void
on_adjustment_changed (NatterGroupView *self,
                       GtkAdjustment   *adjustment)
{
  if (self->stick_to_bottom)
    scroll_to_bottom (self);
}

static void
on_adjustment_value_changed (NatterGroupView *self,
                             GtkAdjustment   *adjustment)
{
  double bottom = gtk_adjustment_get_upper (adjustment) - gtk_adjustment_get_page_size (adjustment);

  self->stick_to_bottom = gtk_adjustment_get_value (adjustment) >= bottom - 24;
}

static void
update_receipts (NatterGroupView  *self,
                 NatterMessageRow *row)
{
  NatterMessageItem *item = natter_message_row_get_item (row);
  g_auto(GStrv) delivered_to = NULL;
  g_auto(GStrv) read_by = NULL;
  guint total = 0;

  if (item == NULL || !natter_message_item_is_outgoing (item) ||
      g_strcmp0 (natter_message_item_get_kind (item), "text") != 0 ||
      !natter_groups_get_receipts (self->groups, self->group_id, natter_message_item_get_msg_id (item),
                                   &delivered_to, &read_by, &total))
    {
      natter_message_row_set_receipts (row, NULL, NULL, NULL, 0);
      return;
    }
  natter_message_row_set_receipts (row, self->service, (const char * const *) delivered_to,
                                   (const char * const *) read_by, total);
}

static void
update_day_separator (GtkListItem     *list_item,
                      GParamSpec      *pspec,
                      NatterGroupView *self)
{
  NatterMessageRow *row = NATTER_MESSAGE_ROW (gtk_list_item_get_child (list_item));
  NatterMessageItem *item = gtk_list_item_get_item (list_item);
  guint position = gtk_list_item_get_position (list_item);
  gboolean show_day = TRUE;

  if (item == NULL || row == NULL)
    return;
  if (position != GTK_INVALID_LIST_POSITION && position > 0)
    {
      g_autoptr(NatterMessageItem) previous = g_list_model_get_item (G_LIST_MODEL (self->messages), position - 1);

      show_day = previous == NULL ||
                 !natter_app_same_day (natter_message_item_get_timestamp (previous),
                                       natter_message_item_get_timestamp (item));
    }
  natter_message_row_set_show_day (row, show_day);
}

static void
message_setup (GtkSignalListItemFactory *factory,
               GtkListItem              *list_item,
               NatterGroupView          *self)
{
  gtk_list_item_set_activatable (list_item, FALSE);
  gtk_list_item_set_child (list_item, GTK_WIDGET (natter_message_row_new ()));
  g_signal_connect_object (list_item, "notify::position", G_CALLBACK (update_day_separator), self, 0);
}

static void
message_bind (GtkSignalListItemFactory *factory,
              GtkListItem              *list_item,
              NatterGroupView          *self)
{
  NatterMessageRow *row = NATTER_MESSAGE_ROW (gtk_list_item_get_child (list_item));
  NatterMessageItem *item = gtk_list_item_get_item (list_item);
  g_autofree char *sender = NULL;

  natter_message_row_set_item (row, item);
  if (!natter_message_item_is_outgoing (item) &&
      g_strcmp0 (natter_message_item_get_kind (item), "text") == 0)
    sender = natter_app_dup_peer_name (self->service, natter_message_item_get_sender (item));
  natter_message_row_set_sender (row, sender);
  update_receipts (self, row);
  update_day_separator (list_item, NULL, self);
  g_hash_table_replace (self->bound_rows, g_strdup (natter_message_item_get_msg_id (item)), row);
}

static void
message_unbind (GtkSignalListItemFactory *factory,
                GtkListItem              *list_item,
                NatterGroupView          *self)
{
  NatterMessageRow *row = NATTER_MESSAGE_ROW (gtk_list_item_get_child (list_item));
  NatterMessageItem *item = natter_message_row_get_item (row);

  if (item != NULL &&
      g_hash_table_lookup (self->bound_rows, natter_message_item_get_msg_id (item)) == row)
    g_hash_table_remove (self->bound_rows, natter_message_item_get_msg_id (item));
}

/* }}} */

/* {{{ Composer and actions */

static char *
dup_draft (NatterGroupView *self)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->composer);
  GtkTextIter start, end;

  gtk_text_buffer_get_bounds (buffer, &start, &end);
  return g_strstrip (gtk_text_buffer_get_text (buffer, &start, &end, FALSE));
}

static void
send_action (GtkWidget  *widget,
             const char *action_name,
             GVariant   *parameter)
{
  NatterGroupView *self = NATTER_GROUP_VIEW (widget);
  g_autofree char *text = dup_draft (self);
  g_autofree char *msg_id = NULL;
  g_autoptr(GError) error = NULL;

  if (self->group_id == NULL || text[0] == '\0')
    return;
  msg_id = natter_messaging_service_group_send_text (self->service, self->group_id, text, &error);
  if (msg_id == NULL)
    {
      show_toast (self, error->message);
      return;
    }
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->composer), "", -1);
  self->stick_to_bottom = TRUE;
  natter_group_list_note_sent (self->group_list, self->group_id, text);
  reload_history (self);
}

static void
on_draft_changed (NatterGroupView *self,
                  GtkTextBuffer   *buffer)
{
  g_autofree char *text = NULL;
  gboolean has_text;

  if (self->group_id == NULL || self->groups == NULL)
    return;
  text = dup_draft (self);
  has_text = text[0] != '\0';
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "group.send", has_text);
  /* NatterGroups throttles: one typing frame per few seconds at most. */
  natter_groups_set_typing (self->groups, self->group_id, has_text, NULL);
}

static gboolean
on_composer_key_pressed (NatterGroupView       *self,
                         guint                  keyval,
                         guint                  keycode,
                         GdkModifierType        state,
                         GtkEventControllerKey *controller)
{
  if (keyval != GDK_KEY_Return && keyval != GDK_KEY_KP_Enter && keyval != GDK_KEY_ISO_Enter)
    return FALSE;
  /* Shift+Enter (and Ctrl+Enter) add a line; Enter sends. */
  if (state & (GDK_SHIFT_MASK | GDK_CONTROL_MASK))
    return FALSE;
  gtk_widget_activate_action (GTK_WIDGET (self), "group.send", NULL);
  return TRUE;
}

/* Typing anywhere in the view (after closing a popover, say) writes in the
 * composer. */
static gboolean
on_view_key_pressed (NatterGroupView       *self,
                     guint                  keyval,
                     guint                  keycode,
                     GdkModifierType        state,
                     GtkEventControllerKey *controller)
{
  GtkWidget *focus = gtk_root_get_focus (gtk_widget_get_root (GTK_WIDGET (self)));

  if ((state & (GDK_CONTROL_MASK | GDK_ALT_MASK | GDK_SUPER_MASK)) != 0 ||
      !g_unichar_isgraph (gdk_keyval_to_unicode (keyval)) ||
      focus == GTK_WIDGET (self->composer) || GTK_IS_EDITABLE (focus) ||
      !gtk_widget_is_sensitive (self->composer_bar))
    return FALSE;
  gtk_widget_grab_focus (GTK_WIDGET (self->composer));
  return gtk_event_controller_key_forward (controller, GTK_WIDGET (self->composer));
}

static void
members_action (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  NatterGroupView *self = NATTER_GROUP_VIEW (widget);
  NatterGroupMembersWindow *members;

  if (self->group_id == NULL)
    return;
  members = natter_group_members_window_new (self->service, self->group_id);
  gtk_window_set_transient_for (GTK_WINDOW (members), GTK_WINDOW (gtk_widget_get_root (widget)));
  gtk_window_present (GTK_WINDOW (members));
}

static void
on_leave_response (AdwMessageDialog *dialog,
                   const char       *response,
                   NatterGroupView  *self)
{
  g_autoptr(GError) error = NULL;
  const char *group_id = g_object_get_data (G_OBJECT (dialog), "group-id");

  if (g_strcmp0 (response, "leave") != 0)
    return;
  if (!natter_messaging_service_group_leave (self->service, group_id, &error))
    show_toast (self, error->message);
}

static void
leave_action (GtkWidget  *widget,
              const char *action_name,
              GVariant   *parameter)
{
  NatterGroupView *self = NATTER_GROUP_VIEW (widget);
  g_autoptr(NatterGroupInfo) info = NULL;
  GtkWidget *dialog;

  if (self->group_id == NULL || (info = natter_groups_get_info (self->groups, self->group_id)) == NULL)
    return;
  dialog = adw_message_dialog_new (GTK_WINDOW (gtk_widget_get_root (widget)),
                                   _("Leave Group?"), NULL);
  adw_message_dialog_format_body (ADW_MESSAGE_DIALOG (dialog),
                                  _("You will no longer get the messages of “%s”. The history stays here."),
                                  info->name);
  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog),
                                    "cancel", _("_Cancel"),
                                    "leave", _("_Leave"),
                                    NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (dialog), "leave",
                                              ADW_RESPONSE_DESTRUCTIVE);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  g_object_set_data_full (G_OBJECT (dialog), "group-id", g_strdup (self->group_id), g_free);
  g_signal_connect_object (dialog, "response", G_CALLBACK (on_leave_response), self, 0);
  gtk_window_present (GTK_WINDOW (dialog));
}

/* }}} */

/* {{{ Group signals */

static void
on_group_changed (NatterGroupView *self,
                  const char      *group_id,
                  NatterGroups    *groups)
{
  if (g_strcmp0 (group_id, self->group_id) != 0)
    return;
  update_header (self);
  reload_history (self);
}

static void
on_group_message (NatterGroupView    *self,
                  NatterGroupMessage *message,
                  NatterGroups       *groups)
{
  if (g_strcmp0 (message->group_id, self->group_id) != 0)
    return;
  reload_history (self);
  update_typing (self);
  if (is_shown (self))
    natter_group_view_mark_read (self);
}

static void
on_receipts_changed (NatterGroupView *self,
                     const char      *group_id,
                     const char      *msg_id,
                     guint            delivered,
                     guint            read,
                     guint            total,
                     NatterGroups    *groups)
{
  NatterMessageRow *row;

  if (g_strcmp0 (group_id, self->group_id) != 0)
    return;
  row = g_hash_table_lookup (self->bound_rows, msg_id);
  if (row != NULL)
    update_receipts (self, row);
}

static void
on_typing_changed (NatterGroupView *self,
                   const char      *group_id,
                   const char      *peer_id,
                   gboolean         typing,
                   NatterGroups    *groups)
{
  if (g_strcmp0 (group_id, self->group_id) == 0)
    update_typing (self);
}

static void
on_sync_changed (NatterGroupView *self,
                 const char      *group_id,
                 gboolean         syncing,
                 NatterGroups    *groups)
{
  if (g_strcmp0 (group_id, self->group_id) == 0)
    update_header (self);
}

/* }}} */

static void
natter_group_view_dispose (GObject *object)
{
  NatterGroupView *self = NATTER_GROUP_VIEW (object);
  GtkWidget *child;

  if (self->message_list != NULL)
    gtk_list_view_set_model (self->message_list, NULL);
  gtk_widget_dispose_template (GTK_WIDGET (self), NATTER_TYPE_GROUP_VIEW);
  /* The template's root box is not a bound child: unparent it too. */
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  g_clear_pointer (&self->bound_rows, g_hash_table_unref);
  g_clear_object (&self->messages);
  g_clear_object (&self->group_list);
  g_clear_object (&self->groups);
  g_clear_object (&self->service);
  g_clear_pointer (&self->group_id, g_free);

  G_OBJECT_CLASS (natter_group_view_parent_class)->dispose (object);
}

static void
natter_group_view_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  NatterGroupView *self = NATTER_GROUP_VIEW (object);

  switch (prop_id)
    {
    case PROP_FOLDED:
      g_value_set_boolean (value, self->folded);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_group_view_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  NatterGroupView *self = NATTER_GROUP_VIEW (object);

  switch (prop_id)
    {
    case PROP_FOLDED:
      if (self->folded != g_value_get_boolean (value))
        {
          self->folded = g_value_get_boolean (value);
          g_object_notify_by_pspec (object, pspec);
        }
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_group_view_class_init (NatterGroupViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = natter_group_view_dispose;
  object_class->get_property = natter_group_view_get_property;
  object_class->set_property = natter_group_view_set_property;

  properties[PROP_FOLDED] =
    g_param_spec_boolean ("folded", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_template_from_resource (widget_class, "/org/natter/Natter/natter-group-view.ui");
  gtk_widget_class_bind_template_child (widget_class, NatterGroupView, title_label);
  gtk_widget_class_bind_template_child (widget_class, NatterGroupView, subtitle_label);
  gtk_widget_class_bind_template_child (widget_class, NatterGroupView, sync_spinner);
  gtk_widget_class_bind_template_child (widget_class, NatterGroupView, members_button);
  gtk_widget_class_bind_template_child (widget_class, NatterGroupView, scroller);
  gtk_widget_class_bind_template_child (widget_class, NatterGroupView, message_list);
  gtk_widget_class_bind_template_child (widget_class, NatterGroupView, empty_page);
  gtk_widget_class_bind_template_child (widget_class, NatterGroupView, typing_revealer);
  gtk_widget_class_bind_template_child (widget_class, NatterGroupView, typing_label);
  gtk_widget_class_bind_template_child (widget_class, NatterGroupView, composer_bar);
  gtk_widget_class_bind_template_child (widget_class, NatterGroupView, composer);

  gtk_widget_class_install_action (widget_class, "group.send", NULL, send_action);
  gtk_widget_class_install_action (widget_class, "group.members", NULL, members_action);
  gtk_widget_class_install_action (widget_class, "group.leave", NULL, leave_action);
}

static void
natter_group_view_init (NatterGroupView *self)
{
  g_autoptr(GtkListItemFactory) factory = gtk_signal_list_item_factory_new ();
  g_autoptr(GtkNoSelection) selection = NULL;
  GtkEventController *keys;
  GtkAdjustment *adjustment;

  gtk_widget_init_template (GTK_WIDGET (self));
  self->messages = g_list_store_new (NATTER_TYPE_MESSAGE_ITEM);
  self->bound_rows = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->stick_to_bottom = TRUE;

  g_signal_connect (factory, "setup", G_CALLBACK (message_setup), self);
  g_signal_connect (factory, "bind", G_CALLBACK (message_bind), self);
  g_signal_connect (factory, "unbind", G_CALLBACK (message_unbind), self);
  gtk_list_view_set_factory (self->message_list, factory);
  selection = gtk_no_selection_new (g_object_ref (G_LIST_MODEL (self->messages)));
  gtk_list_view_set_model (self->message_list, GTK_SELECTION_MODEL (selection));

  adjustment = gtk_scrolled_window_get_vadjustment (self->scroller);
  g_signal_connect_object (adjustment, "changed", G_CALLBACK (on_adjustment_changed), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (adjustment, "value-changed", G_CALLBACK (on_adjustment_value_changed), self, G_CONNECT_SWAPPED);

  keys = gtk_event_controller_key_new ();
  gtk_event_controller_set_propagation_phase (keys, GTK_PHASE_CAPTURE);
  g_signal_connect_object (keys, "key-pressed", G_CALLBACK (on_composer_key_pressed), self, G_CONNECT_SWAPPED);
  gtk_widget_add_controller (GTK_WIDGET (self->composer), keys);
  keys = gtk_event_controller_key_new ();
  g_signal_connect_object (keys, "key-pressed", G_CALLBACK (on_view_key_pressed), self, G_CONNECT_SWAPPED);
  gtk_widget_add_controller (GTK_WIDGET (self), keys);
  g_signal_connect_object (gtk_text_view_get_buffer (self->composer), "changed",
                           G_CALLBACK (on_draft_changed), self, G_CONNECT_SWAPPED);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "group.send", FALSE);
}

void
natter_group_view_set_service (NatterGroupView        *self,
                               NatterMessagingService *service,
                               NatterGroupList        *groups)
{
  g_return_if_fail (NATTER_IS_GROUP_VIEW (self));
  g_return_if_fail (self->service == NULL);

  self->service = g_object_ref (service);
  self->group_list = g_object_ref (groups);
  if (natter_messaging_service_get_groups (service) == NULL)
    return;
  self->groups = g_object_ref (natter_messaging_service_get_groups (service));
  g_signal_connect_object (self->groups, "group-changed", G_CALLBACK (on_group_changed), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->groups, "message-received", G_CALLBACK (on_group_message), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->groups, "receipts-changed", G_CALLBACK (on_receipts_changed), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->groups, "typing-changed", G_CALLBACK (on_typing_changed), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->groups, "sync-changed", G_CALLBACK (on_sync_changed), self, G_CONNECT_SWAPPED);
}

const char *
natter_group_view_get_group_id (NatterGroupView *self)
{
  g_return_val_if_fail (NATTER_IS_GROUP_VIEW (self), NULL);
  return self->group_id;
}

/**
 * natter_group_view_set_group_id:
 * @self: the view
 * @group_id: (nullable): the group to show
 */
void
natter_group_view_set_group_id (NatterGroupView *self,
                                const char      *group_id)
{
  g_return_if_fail (NATTER_IS_GROUP_VIEW (self));

  if (g_strcmp0 (self->group_id, group_id) == 0)
    return;
  if (self->group_id != NULL && self->groups != NULL)
    natter_groups_set_typing (self->groups, self->group_id, FALSE, NULL);
  g_free (self->group_id);
  self->group_id = g_strdup (group_id);
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->composer), "", -1);
  g_list_store_remove_all (self->messages);
  self->stick_to_bottom = TRUE;
  reload_history (self);
  update_header (self);
  update_typing (self);
  natter_app_trace_position (self->members_button, "group-view members");
}

/* Marks what the group shows read: the other members see it in their
 * "read by" lists. */
void
natter_group_view_mark_read (NatterGroupView *self)
{
  g_return_if_fail (NATTER_IS_GROUP_VIEW (self));

  if (self->group_id != NULL && self->group_list != NULL)
    natter_group_list_mark_read (self->group_list, self->group_id);
}

void
natter_group_view_focus_composer (NatterGroupView *self)
{
  g_return_if_fail (NATTER_IS_GROUP_VIEW (self));
  gtk_widget_grab_focus (GTK_WIDGET (self->composer));
}
