/* natter-chat-view.c: the messages of one conversation and the composer
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-app-util.h"
#include "natter-chat-view-private.h"
#include "natter-history-model.h"
#include "natter-message-row.h"
#include "natter-transfer-row.h"
#include "natter-verify-dialog.h"

/* How close to the top (in pixels) the view may come before an older page
 * is asked for, so that it arrives before the user gets there. */
#define LOAD_AHEAD_PX 600

G_DEFINE_FINAL_TYPE (NatterChatView, natter_chat_view, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_FOLDED,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void maybe_load_older (NatterChatView *self);

static void
show_toast (NatterChatView *self,
            const char     *message)
{
  GtkWidget *overlay = gtk_widget_get_ancestor (GTK_WIDGET (self), ADW_TYPE_TOAST_OVERLAY);

  if (overlay != NULL)
    adw_toast_overlay_add_toast (ADW_TOAST_OVERLAY (overlay), adw_toast_new (message));
  else
    g_warning ("%s", message);
}

static void
update_header (NatterChatView *self)
{
  g_autoptr(NatterContact) contact = NULL;
  g_autofree char *name = NULL;
  const char *subtitle;
  char *via = NULL;
  NatterPeerState state;

  if (self->peer_id == NULL || self->service == NULL)
    return;

  contact = natter_app_find_contact (self->service, self->peer_id);
  name = natter_app_dup_peer_name (self->service, self->peer_id);
  gtk_label_set_label (self->title_label, name);
  gtk_widget_set_visible (GTK_WIDGET (self->verified_icon),
                          contact != NULL && natter_contact_get_verified (contact));

  state = natter_messaging_service_get_peer_state (self->service, self->peer_id, &via);
  g_free (via);
  if (contact != NULL && natter_contact_get_state (contact) == NATTER_CONTACT_BLOCKED)
    subtitle = _("Blocked");
  else if (state == NATTER_PEER_STATE_CONNECTING)
    subtitle = _("Connecting…");
  else if (state == NATTER_PEER_STATE_RELAYED)
    subtitle = _("Reachable through another contact");
  else
    subtitle = natter_app_presence_label (natter_messaging_service_get_peer_presence (self->service,
                                                                                      self->peer_id));
  gtk_label_set_label (self->subtitle_label, subtitle);
  natter_ui_trace ("header peer=%s presence=%s state=%s", self->peer_id,
                   natter_presence_to_string (natter_messaging_service_get_peer_presence (self->service, self->peer_id)),
                   natter_peer_state_to_string (state));

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.verify", contact != NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.block",
                                 contact != NULL && natter_contact_get_state (contact) != NATTER_CONTACT_BLOCKED);
}

static void
set_typing_visible (NatterChatView *self,
                    gboolean        typing)
{
  if (typing)
    {
      g_autofree char *name = natter_app_dup_peer_name (self->service, self->peer_id);
      g_autofree char *text = g_strdup_printf (_("%s is typing…"), name);

      gtk_label_set_label (self->typing_label, text);
    }
  if (gtk_revealer_get_reveal_child (self->typing_revealer) != typing)
    {
      gtk_revealer_set_reveal_child (self->typing_revealer, typing);
      natter_ui_trace ("typing peer=%s visible=%d", self->peer_id, typing);
    }
}

static void
update_empty (NatterChatView *self)
{
  gboolean empty = self->history != NULL &&
                   g_list_model_get_n_items (self->history) == 0 &&
                   g_hash_table_size (self->transfer_rows) == 0 &&
                   natter_history_model_get_complete (NATTER_HISTORY_MODEL (self->history));

  gtk_widget_set_visible (GTK_WIDGET (self->empty_page), empty);
}

/* {{{ Scrolling and paging */

static void
scroll_to_bottom (NatterChatView *self)
{
  GtkAdjustment *adjustment = gtk_scrolled_window_get_vadjustment (self->scroller);

  gtk_adjustment_set_value (adjustment,
                            gtk_adjustment_get_upper (adjustment) - gtk_adjustment_get_page_size (adjustment));
}

static void
on_adjustment_changed (NatterChatView *self,
                       GtkAdjustment  *adjustment)
{
  /* New messages or a taller window keep the newest message in view when
   * the user was reading it. */
  if (self->stick_to_bottom)
    scroll_to_bottom (self);
  maybe_load_older (self);
}

static void
on_adjustment_value_changed (NatterChatView *self,
                             GtkAdjustment  *adjustment)
{
  double value = gtk_adjustment_get_value (adjustment);
  double bottom = gtk_adjustment_get_upper (adjustment) - gtk_adjustment_get_page_size (adjustment);

  self->stick_to_bottom = value >= bottom - 24;
  maybe_load_older (self);
}

static void
on_older_loaded (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(NatterChatView) self = user_data;
  g_autoptr(GError) error = NULL;
  guint n_loaded = 0;

  if (!natter_history_model_load_older_finish (NATTER_HISTORY_MODEL (source), result, &n_loaded, &error))
    {
      /* PENDING: a page is on its way already; that is not a failure. */
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) &&
          !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PENDING))
        {
          g_debug ("Loading older messages failed: %s", error->message);
          show_toast (self, _("Could not load older messages"));
        }
      if (G_LIST_MODEL (source) == self->history)
        self->loading = FALSE;
      return;
    }
  if (G_LIST_MODEL (source) != self->history)
    return;

  self->loading = FALSE;
  if (self->first_page_pending)
    {
      self->first_page_pending = FALSE;
      natter_ui_trace ("open peer=%s first-page=%u", self->peer_id, n_loaded);
    }
  update_empty (self);

  if (self->jump_to != NULL)
    natter_chat_view_jump_to_message (self, self->jump_to);
  else
    maybe_load_older (self);
}

static void
load_older (NatterChatView *self)
{
  if (self->history == NULL || self->loading ||
      natter_history_model_get_complete (NATTER_HISTORY_MODEL (self->history)))
    return;

  self->loading = TRUE;
  natter_history_model_load_older_async (NATTER_HISTORY_MODEL (self->history), 0,
                                         self->cancellable, on_older_loaded, g_object_ref (self));
}

/* Pages are asked for while the top of what is loaded is within reach;
 * each one comes from the store's worker, so scrolling never waits. */
static void
maybe_load_older (NatterChatView *self)
{
  GtkAdjustment *adjustment = gtk_scrolled_window_get_vadjustment (self->scroller);

  if (self->history == NULL || self->loading || self->first_page_pending)
    return;
  if (gtk_adjustment_get_value (adjustment) < LOAD_AHEAD_PX)
    load_older (self);
}

/* }}} */

/* {{{ Opening a conversation */

static void
on_history_items_changed (NatterChatView *self,
                          guint           position,
                          guint           removed,
                          guint           added,
                          GListModel     *model)
{
  update_empty (self);
  if (added > 0 && position + added == g_list_model_get_n_items (model) && position > 0)
    {
      g_autoptr(NatterMessageItem) newest = g_list_model_get_item (model, position + added - 1);

      /* What the user sends always comes into view. */
      if (natter_message_item_is_outgoing (newest))
        self->stick_to_bottom = TRUE;
    }
}

static void
on_history_opened (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(NatterChatView) self = user_data;
  g_autoptr(GListModel) history = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GtkNoSelection) selection = NULL;

  history = natter_messaging_service_open_history_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  if (history == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_toast (self, error->message);
      return;
    }

  self->history = g_steal_pointer (&history);
  g_signal_connect_object (self->history, "items-changed",
                           G_CALLBACK (on_history_items_changed), self, G_CONNECT_SWAPPED);
  selection = gtk_no_selection_new (g_object_ref (self->history));
  gtk_list_view_set_model (self->message_list, GTK_SELECTION_MODEL (selection));
  self->stick_to_bottom = TRUE;

  if (g_list_model_get_n_items (self->history) == 0 &&
      !natter_history_model_get_complete (NATTER_HISTORY_MODEL (self->history)))
    {
      self->first_page_pending = TRUE;
      self->loading = TRUE;
      natter_history_model_load_older_async (NATTER_HISTORY_MODEL (self->history), 0,
                                             self->cancellable, on_older_loaded, g_object_ref (self));
    }
  else
    {
      natter_ui_trace ("open peer=%s first-page=%u", self->peer_id,
                       g_list_model_get_n_items (self->history));
      update_empty (self);
    }
}

static void
clear_history (NatterChatView *self)
{
  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  gtk_list_view_set_model (self->message_list, NULL);
  gtk_list_view_set_model (self->results_list, NULL);
  if (self->history != NULL)
    g_signal_handlers_disconnect_by_data (self->history, self);
  g_clear_object (&self->history);
  g_clear_pointer (&self->jump_to, g_free);
  self->loading = FALSE;
  self->first_page_pending = FALSE;
  gtk_widget_set_visible (GTK_WIDGET (self->empty_page), FALSE);
}

/* }}} */

/* {{{ Composer */

static void
on_text_sent (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(NatterChatView) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *msg_id = NULL;

  msg_id = natter_messaging_service_send_text_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  if (msg_id == NULL)
    show_toast (self, error->message);
}

static char *
dup_draft (NatterChatView *self)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->composer);
  GtkTextIter start, end;
  char *text;

  gtk_text_buffer_get_bounds (buffer, &start, &end);
  text = gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
  return g_strstrip (text);
}

static void
send_action (GtkWidget  *widget,
             const char *action_name,
             GVariant   *parameter)
{
  NatterChatView *self = NATTER_CHAT_VIEW (widget);
  g_autofree char *text = dup_draft (self);

  if (self->peer_id == NULL || text[0] == '\0')
    return;

  natter_messaging_service_send_text_async (self->service, self->peer_id, text, NULL,
                                            on_text_sent, g_object_ref (self));
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->composer), "", -1);
  self->stick_to_bottom = TRUE;
}

/* A failed message is sent again as a new message with the same text;
 * the failed one stays in the history, marked as not sent. */
static void
retry_action (GtkWidget  *widget,
              const char *action_name,
              GVariant   *parameter)
{
  NatterChatView *self = NATTER_CHAT_VIEW (widget);
  const char *msg_id = g_variant_get_string (parameter, NULL);
  NatterMessageItem *item;

  if (self->history == NULL || self->peer_id == NULL)
    return;
  item = natter_history_model_lookup (NATTER_HISTORY_MODEL (self->history), msg_id);
  if (item == NULL || natter_message_item_get_text (item) == NULL)
    return;
  natter_messaging_service_send_text_async (self->service, self->peer_id,
                                            natter_message_item_get_text (item), NULL,
                                            on_text_sent, g_object_ref (self));
}

static void
on_draft_changed (NatterChatView *self,
                  GtkTextBuffer  *buffer)
{
  g_autofree char *text = NULL;
  gboolean has_text;

  if (self->peer_id == NULL || self->service == NULL)
    return;
  text = dup_draft (self);
  has_text = text[0] != '\0';
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.send", has_text);
  /* The service throttles: one typing signal per few seconds at most. */
  natter_messaging_service_set_typing (self->service, self->peer_id, has_text, NULL);
}

static gboolean
on_composer_key_pressed (NatterChatView        *self,
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
  gtk_widget_activate_action (GTK_WIDGET (self), "chat.send", NULL);
  return TRUE;
}

/* }}} */

/* {{{ Search */

static void
on_search_done (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(NatterChatView) self = user_data;
  g_autoptr(GListModel) results = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GtkNoSelection) selection = NULL;

  results = natter_history_model_search_finish (NATTER_HISTORY_MODEL (source), result, &error);
  if (results == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_toast (self, error->message);
      return;
    }
  if (!gtk_search_bar_get_search_mode (self->search_bar))
    return;
  selection = gtk_no_selection_new (g_object_ref (results));
  gtk_list_view_set_model (self->results_list, GTK_SELECTION_MODEL (selection));
  gtk_stack_set_visible_child_name (self->history_stack,
                                    g_list_model_get_n_items (results) > 0 ? "results" : "no-results");
}

static void
on_search_changed (NatterChatView *self,
                   GtkSearchEntry *entry)
{
  const char *query = gtk_editable_get_text (GTK_EDITABLE (entry));

  g_cancellable_cancel (self->search_cancellable);
  g_clear_object (&self->search_cancellable);

  if (self->history == NULL || query[0] == '\0')
    {
      gtk_stack_set_visible_child_name (self->history_stack, "messages");
      return;
    }
  self->search_cancellable = g_cancellable_new ();
  natter_history_model_search_async (NATTER_HISTORY_MODEL (self->history), query, 200,
                                     self->search_cancellable, on_search_done, g_object_ref (self));
}

static void
on_search_mode_changed (NatterChatView *self,
                        GParamSpec     *pspec,
                        GtkSearchBar   *bar)
{
  if (!gtk_search_bar_get_search_mode (bar))
    {
      gtk_editable_set_text (GTK_EDITABLE (self->search_entry), "");
      gtk_stack_set_visible_child_name (self->history_stack, "messages");
    }
}

static void
on_result_activated (NatterChatView *self,
                     guint           position,
                     GtkListView    *list)
{
  GListModel *model = G_LIST_MODEL (gtk_list_view_get_model (list));
  g_autoptr(NatterMessageItem) item = g_list_model_get_item (model, position);

  if (item == NULL)
    return;
  gtk_search_bar_set_search_mode (self->search_bar, FALSE);
  natter_chat_view_jump_to_message (self, natter_message_item_get_msg_id (item));
}

static void
search_action (GtkWidget  *widget,
               const char *action_name,
               GVariant   *parameter)
{
  NatterChatView *self = NATTER_CHAT_VIEW (widget);

  if (self->peer_id == NULL)
    return;
  gtk_search_bar_set_search_mode (self->search_bar, TRUE);
  gtk_widget_grab_focus (GTK_WIDGET (self->search_entry));
}

/* }}} */

/* {{{ Contact actions */

static void
verify_action (GtkWidget  *widget,
               const char *action_name,
               GVariant   *parameter)
{
  NatterChatView *self = NATTER_CHAT_VIEW (widget);
  NatterVerifyDialog *dialog;

  if (self->peer_id == NULL)
    return;
  dialog = natter_verify_dialog_new (self->service, self->peer_id);
  gtk_window_set_transient_for (GTK_WINDOW (dialog), GTK_WINDOW (gtk_widget_get_root (widget)));
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
on_blocked (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(NatterChatView) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!natter_messaging_service_set_contact_state_finish (NATTER_MESSAGING_SERVICE (source), result, &error))
    show_toast (self, error->message);
}

static void
on_block_response (AdwMessageDialog *dialog,
                   const char       *response,
                   NatterChatView   *self)
{
  if (g_strcmp0 (response, "block") != 0 || self->peer_id == NULL)
    return;
  natter_messaging_service_set_contact_state_async (self->service, self->peer_id,
                                                    NATTER_CONTACT_BLOCKED, NULL,
                                                    on_blocked, g_object_ref (self));
}

static void
block_action (GtkWidget  *widget,
              const char *action_name,
              GVariant   *parameter)
{
  NatterChatView *self = NATTER_CHAT_VIEW (widget);
  g_autofree char *name = NULL;
  g_autofree char *heading = NULL;
  GtkWidget *dialog;

  if (self->peer_id == NULL)
    return;
  name = natter_app_dup_peer_name (self->service, self->peer_id);
  heading = g_strdup_printf (_("Block %s?"), name);
  dialog = adw_message_dialog_new (GTK_WINDOW (gtk_widget_get_root (widget)), heading,
                                   _("You will not receive their messages or see when they are online. "
                                     "Adding them again unblocks them."));
  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog),
                                    "cancel", _("_Cancel"),
                                    "block", _("_Block"),
                                    NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (dialog), "block",
                                              ADW_RESPONSE_DESTRUCTIVE);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  g_signal_connect_object (dialog, "response", G_CALLBACK (on_block_response), self, 0);
  gtk_window_present (GTK_WINDOW (dialog));
}

/* }}} */

/* {{{ Files */

static NatterTransferRow *
add_transfer_row (NatterChatView            *self,
                  const NatterStoreTransfer *transfer)
{
  NatterTransferRow *row;

  row = g_hash_table_lookup (self->transfer_rows, transfer->id);
  if (row != NULL)
    return row;
  if (g_strcmp0 (transfer->peer_id, self->peer_id) != 0)
    return NULL;
  row = natter_transfer_row_new (transfer);
  g_hash_table_insert (self->transfer_rows, g_strdup (transfer->id), row);
  gtk_list_box_append (self->transfer_list, GTK_WIDGET (row));
  gtk_widget_set_visible (self->transfer_scroller, TRUE);
  update_empty (self);
  return row;
}

/* The row of a transfer of this conversation, made from what the service
 * lists when there is none yet; NULL for other conversations. */
static NatterTransferRow *
ensure_transfer_row (NatterChatView *self,
                     const char     *transfer_id)
{
  g_autoptr(GPtrArray) transfers = NULL;
  NatterTransferRow *row;

  row = g_hash_table_lookup (self->transfer_rows, transfer_id);
  if (row != NULL || self->peer_id == NULL)
    return row;
  transfers = natter_messaging_service_list_transfers (self->service);
  for (guint i = 0; i < transfers->len; i++)
    {
      const NatterStoreTransfer *transfer = g_ptr_array_index (transfers, i);

      if (g_strcmp0 (transfer->id, transfer_id) == 0)
        return add_transfer_row (self, transfer);
    }
  return NULL;
}

static void
reload_transfers (NatterChatView *self)
{
  g_autoptr(GPtrArray) transfers = NULL;
  GtkWidget *child;

  g_hash_table_remove_all (self->transfer_rows);
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->transfer_list))) != NULL)
    gtk_list_box_remove (self->transfer_list, child);
  gtk_widget_set_visible (self->transfer_scroller, FALSE);
  if (self->peer_id == NULL || self->service == NULL)
    return;
  transfers = natter_messaging_service_list_transfers (self->service);
  for (guint i = 0; i < transfers->len; i++)
    add_transfer_row (self, g_ptr_array_index (transfers, i));
}

static void
on_transfer_offered (NatterChatView         *self,
                     const char             *transfer_id,
                     const char             *peer_id,
                     const char             *name,
                     gint64                  size,
                     const char             *media_type,
                     NatterMessagingService *service)
{
  if (g_strcmp0 (peer_id, self->peer_id) == 0)
    ensure_transfer_row (self, transfer_id);
}

static void
on_transfer_state_changed (NatterChatView         *self,
                           const char             *transfer_id,
                           const char             *state,
                           const char             *detail,
                           NatterMessagingService *service)
{
  NatterTransferRow *row = ensure_transfer_row (self, transfer_id);

  if (row != NULL)
    natter_transfer_row_set_state (row, state, detail);
}

static void
on_transfer_progress (NatterChatView         *self,
                      const char             *transfer_id,
                      gint64                  bytes_done,
                      gint64                  size,
                      double                  bytes_per_second,
                      NatterMessagingService *service)
{
  NatterTransferRow *row = g_hash_table_lookup (self->transfer_rows, transfer_id);

  if (row != NULL)
    natter_transfer_row_set_progress (row, bytes_done, size, bytes_per_second);
}

static void
on_file_sent (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(NatterChatView) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *transfer_id = NULL;

  transfer_id = natter_messaging_service_send_file_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  if (transfer_id == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_toast (self, error->message);
      return;
    }
  ensure_transfer_row (self, transfer_id);
}

/**
 * natter_chat_view_send_files:
 * @self: a chat view
 * @files: the files to send to the open conversation's contact
 *
 * What a drop, a paste and the file chooser do: each file is offered to the
 * contact and gets a row in the conversation.
 *
 * Returns: %TRUE when the files were offered to someone
 */
gboolean
natter_chat_view_send_files (NatterChatView *self,
                             GdkFileList    *files)
{
  g_autoptr(GSList) list = NULL;
  guint n = 0;

  g_return_val_if_fail (NATTER_IS_CHAT_VIEW (self), FALSE);
  g_return_val_if_fail (files != NULL, FALSE);

  if (self->peer_id == NULL || self->service == NULL)
    return FALSE;
  list = gdk_file_list_get_files (files);
  for (GSList *l = list; l != NULL; l = l->next)
    {
      natter_messaging_service_send_file_async (self->service, self->peer_id, l->data, NULL,
                                                on_file_sent, g_object_ref (self));
      n++;
    }
  natter_ui_trace ("send-files peer=%s count=%u", self->peer_id, n);
  return n > 0;
}

static void
set_drop_overlay_visible (NatterChatView *self,
                          gboolean        visible)
{
  if (visible)
    {
      g_autofree char *name = natter_app_dup_peer_name (self->service, self->peer_id);
      /* TRANSLATORS: shown while files are dragged over a conversation */
      g_autofree char *title = g_strdup_printf (_("Send to %s"), name);

      adw_status_page_set_title (self->drop_page, title);
      natter_ui_trace ("drop-overlay peer=%s title=%s", self->peer_id, title);
    }
  gtk_widget_set_visible (self->drop_overlay, visible);
}

static GdkDragAction
on_drop_enter (NatterChatView *self,
               double          x,
               double          y,
               GtkDropTarget  *target)
{
  if (self->peer_id == NULL)
    return 0;
  set_drop_overlay_visible (self, TRUE);
  return GDK_ACTION_COPY;
}

static void
on_drop_leave (NatterChatView *self,
               GtkDropTarget  *target)
{
  set_drop_overlay_visible (self, FALSE);
}

static gboolean
on_drop (NatterChatView *self,
         const GValue   *value,
         double          x,
         double          y,
         GtkDropTarget  *target)
{
  set_drop_overlay_visible (self, FALSE);
  if (!G_VALUE_HOLDS (value, GDK_TYPE_FILE_LIST))
    return FALSE;
  return natter_chat_view_send_files (self, g_value_get_boxed (value));
}

static void
on_clipboard_files (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(NatterChatView) self = user_data;
  g_autoptr(GError) error = NULL;
  const GValue *value;

  value = gdk_clipboard_read_value_finish (GDK_CLIPBOARD (source), result, &error);
  if (value == NULL)
    {
      show_toast (self, _("Could not paste the files"));
      g_debug ("Pasting files: %s", error->message);
      return;
    }
  natter_chat_view_send_files (self, g_value_get_boxed (value));
}

/* Files copied in a file manager are sent; anything else is pasted as
 * text, as usual. */
static void
on_composer_paste (NatterChatView *self,
                   GtkTextView    *composer)
{
  GdkClipboard *clipboard = gtk_widget_get_clipboard (GTK_WIDGET (composer));
  GdkContentFormats *formats = gdk_clipboard_get_formats (clipboard);

  if (self->peer_id == NULL || !gdk_content_formats_contain_gtype (formats, GDK_TYPE_FILE_LIST))
    return;
  g_signal_stop_emission_by_name (composer, "paste-clipboard");
  gdk_clipboard_read_value_async (clipboard, GDK_TYPE_FILE_LIST, G_PRIORITY_DEFAULT, NULL,
                                  on_clipboard_files, g_object_ref (self));
}

static void
on_chooser_response (NatterChatView       *self,
                     int                   response,
                     GtkFileChooserNative *chooser)
{
  g_autoptr(GListModel) files = NULL;
  GdkFileList *list;
  GSList *slist = NULL;

  if (response == GTK_RESPONSE_ACCEPT)
    {
      files = gtk_file_chooser_get_files (GTK_FILE_CHOOSER (chooser));
      for (guint i = g_list_model_get_n_items (files); i > 0; i--)
        slist = g_slist_prepend (slist, g_list_model_get_item (files, i - 1));
      list = gdk_file_list_new_from_list (slist);
      g_slist_free_full (slist, g_object_unref);
      natter_chat_view_send_files (self, list);
      g_boxed_free (GDK_TYPE_FILE_LIST, list);
    }
  g_clear_object (&self->chooser);
}

static void
attach_action (GtkWidget  *widget,
               const char *action_name,
               GVariant   *parameter)
{
  NatterChatView *self = NATTER_CHAT_VIEW (widget);
  g_autofree char *name = NULL;
  g_autofree char *title = NULL;

  if (self->peer_id == NULL)
    return;
  if (self->chooser != NULL)
    {
      gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
      return;
    }
  name = natter_app_dup_peer_name (self->service, self->peer_id);
  title = g_strdup_printf (_("Send Files to %s"), name);
  self->chooser = gtk_file_chooser_native_new (title, GTK_WINDOW (gtk_widget_get_root (widget)),
                                               GTK_FILE_CHOOSER_ACTION_OPEN, _("_Send"), _("_Cancel"));
  gtk_file_chooser_set_select_multiple (GTK_FILE_CHOOSER (self->chooser), TRUE);
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  g_signal_connect_object (self->chooser, "response", G_CALLBACK (on_chooser_response), self, G_CONNECT_SWAPPED);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
transfer_action (GtkWidget  *widget,
                 const char *action_name,
                 GVariant   *parameter)
{
  NatterChatView *self = NATTER_CHAT_VIEW (widget);
  const char *transfer_id = g_variant_get_string (parameter, NULL);
  g_autoptr(GError) error = NULL;
  gboolean done;

  if (g_str_equal (action_name, "chat.accept-file"))
    done = natter_messaging_service_accept_file (self->service, transfer_id, NULL, &error);
  else if (g_str_equal (action_name, "chat.decline-file"))
    done = natter_messaging_service_decline_file (self->service, transfer_id, &error);
  else
    done = natter_messaging_service_cancel_file (self->service, transfer_id, &error);
  natter_ui_trace ("%s id=%s ok=%d", action_name, transfer_id, done);
  if (!done)
    show_toast (self, error->message);
}

/* }}} */

/* {{{ Service signals */

static void
on_typing_changed (NatterChatView         *self,
                   const char             *peer_id,
                   gboolean                typing,
                   NatterMessagingService *service)
{
  if (g_strcmp0 (peer_id, self->peer_id) == 0)
    set_typing_visible (self, typing);
}

static void
on_peer_changed (NatterChatView *self,
                 const char     *peer_id)
{
  if (g_strcmp0 (peer_id, self->peer_id) == 0)
    update_header (self);
}

static void
on_message_received (NatterChatView         *self,
                     NatterMessageItem      *item,
                     NatterMessagingService *service)
{
  GtkRoot *root;

  if (g_strcmp0 (natter_message_item_get_peer_id (item), self->peer_id) != 0)
    return;
  /* The message ends the peer's typing. */
  set_typing_visible (self, FALSE);
  root = gtk_widget_get_root (GTK_WIDGET (self));
  if (root != NULL && gtk_window_is_active (GTK_WINDOW (root)) && gtk_widget_get_mapped (GTK_WIDGET (self)))
    natter_chat_view_mark_read (self);
}

static void
on_contacts_changed (NatterChatView *self)
{
  update_header (self);
}

/* }}} */

/* {{{ Message list factory */

static void
update_day_separator (GtkListItem    *list_item,
                      GParamSpec     *pspec,
                      NatterChatView *self)
{
  NatterMessageRow *row = NATTER_MESSAGE_ROW (gtk_list_item_get_child (list_item));
  NatterMessageItem *item = gtk_list_item_get_item (list_item);
  guint position = gtk_list_item_get_position (list_item);
  GListModel *model;
  gboolean show_day = TRUE;

  if (item == NULL || row == NULL)
    return;
  model = G_LIST_MODEL (gtk_list_view_get_model (self->message_list));
  if (model != NULL && position != GTK_INVALID_LIST_POSITION && position > 0)
    {
      g_autoptr(NatterMessageItem) previous = g_list_model_get_item (model, position - 1);

      show_day = previous == NULL ||
                 !natter_app_same_day (natter_message_item_get_timestamp (previous),
                                       natter_message_item_get_timestamp (item));
    }
  natter_message_row_set_show_day (row, show_day);
}

static void
message_setup (GtkSignalListItemFactory *factory,
               GtkListItem              *list_item,
               NatterChatView           *self)
{
  gtk_list_item_set_activatable (list_item, FALSE);
  gtk_list_item_set_child (list_item, GTK_WIDGET (natter_message_row_new ()));
  /* Older pages arrive above: a row's neighbour, and so its day
   * separator, changes without the row being bound again. */
  g_signal_connect_object (list_item, "notify::position", G_CALLBACK (update_day_separator), self, 0);
}

static void
message_bind (GtkSignalListItemFactory *factory,
              GtkListItem              *list_item,
              NatterChatView           *self)
{
  natter_message_row_set_item (NATTER_MESSAGE_ROW (gtk_list_item_get_child (list_item)),
                               gtk_list_item_get_item (list_item));
  update_day_separator (list_item, NULL, self);
}

static void
result_setup (GtkSignalListItemFactory *factory,
              GtkListItem              *list_item,
              NatterChatView           *self)
{
  gtk_list_item_set_child (list_item, GTK_WIDGET (natter_message_row_new ()));
}

static void
result_bind (GtkSignalListItemFactory *factory,
             GtkListItem              *list_item,
             NatterChatView           *self)
{
  NatterMessageRow *row = NATTER_MESSAGE_ROW (gtk_list_item_get_child (list_item));

  natter_message_row_set_item (row, gtk_list_item_get_item (list_item));
  natter_message_row_set_show_day (row, TRUE);
}

/* }}} */

static void
natter_chat_view_dispose (GObject *object)
{
  NatterChatView *self = NATTER_CHAT_VIEW (object);
  GtkWidget *child;

  clear_history (self);
  if (self->chooser != NULL)
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
  g_clear_object (&self->chooser);
  g_clear_pointer (&self->transfer_rows, g_hash_table_unref);
  g_cancellable_cancel (self->search_cancellable);
  g_clear_object (&self->search_cancellable);
  gtk_widget_dispose_template (GTK_WIDGET (self), NATTER_TYPE_CHAT_VIEW);
  /* The template's root box is not a bound child: unparent it too. */
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  g_clear_object (&self->service);
  g_clear_pointer (&self->peer_id, g_free);

  G_OBJECT_CLASS (natter_chat_view_parent_class)->dispose (object);
}

static void
natter_chat_view_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  NatterChatView *self = NATTER_CHAT_VIEW (object);

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
natter_chat_view_set_property (GObject      *object,
                               guint         prop_id,
                               const GValue *value,
                               GParamSpec   *pspec)
{
  NatterChatView *self = NATTER_CHAT_VIEW (object);

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
natter_chat_view_class_init (NatterChatViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = natter_chat_view_dispose;
  object_class->get_property = natter_chat_view_get_property;
  object_class->set_property = natter_chat_view_set_property;

  /* Whether the window is narrow and shows one pane at a time. */
  properties[PROP_FOLDED] =
    g_param_spec_boolean ("folded", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_template_from_resource (widget_class, "/org/natter/Natter/natter-chat-view.ui");
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, title_label);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, subtitle_label);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, verified_icon);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, search_bar);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, search_entry);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, history_stack);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, history_overlay);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, scroller);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, message_list);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, empty_page);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, results_list);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, typing_revealer);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, typing_label);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, composer);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, send_button);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, transfer_scroller);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, transfer_list);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, drop_overlay);
  gtk_widget_class_bind_template_child (widget_class, NatterChatView, drop_page);
  gtk_widget_class_bind_template_callback (widget_class, on_search_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_search_mode_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_result_activated);

  gtk_widget_class_install_action (widget_class, "chat.send", NULL, send_action);
  gtk_widget_class_install_action (widget_class, "chat.retry", "s", retry_action);
  gtk_widget_class_install_action (widget_class, "chat.search", NULL, search_action);
  gtk_widget_class_install_action (widget_class, "chat.verify", NULL, verify_action);
  gtk_widget_class_install_action (widget_class, "chat.block", NULL, block_action);
  gtk_widget_class_install_action (widget_class, "chat.attach", NULL, attach_action);
  gtk_widget_class_install_action (widget_class, "chat.accept-file", "s", transfer_action);
  gtk_widget_class_install_action (widget_class, "chat.decline-file", "s", transfer_action);
  gtk_widget_class_install_action (widget_class, "chat.cancel-file", "s", transfer_action);

  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_f, GDK_CONTROL_MASK, "chat.search", NULL);
}

static void
natter_chat_view_init (NatterChatView *self)
{
  g_autoptr(GtkListItemFactory) messages = gtk_signal_list_item_factory_new ();
  g_autoptr(GtkListItemFactory) results = gtk_signal_list_item_factory_new ();
  GtkEventController *keys;
  GtkDropTarget *drop;
  GtkAdjustment *adjustment;

  gtk_widget_init_template (GTK_WIDGET (self));
  self->transfer_rows = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  drop = gtk_drop_target_new (GDK_TYPE_FILE_LIST, GDK_ACTION_COPY);
  g_signal_connect_object (drop, "enter", G_CALLBACK (on_drop_enter), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (drop, "leave", G_CALLBACK (on_drop_leave), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (drop, "drop", G_CALLBACK (on_drop), self, G_CONNECT_SWAPPED);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drop));
  g_signal_connect_object (self->composer, "paste-clipboard", G_CALLBACK (on_composer_paste), self, G_CONNECT_SWAPPED);

  g_signal_connect (messages, "setup", G_CALLBACK (message_setup), self);
  g_signal_connect (messages, "bind", G_CALLBACK (message_bind), self);
  gtk_list_view_set_factory (self->message_list, messages);
  g_signal_connect (results, "setup", G_CALLBACK (result_setup), self);
  g_signal_connect (results, "bind", G_CALLBACK (result_bind), self);
  gtk_list_view_set_factory (self->results_list, results);

  adjustment = gtk_scrolled_window_get_vadjustment (self->scroller);
  g_signal_connect_object (adjustment, "changed", G_CALLBACK (on_adjustment_changed), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (adjustment, "value-changed", G_CALLBACK (on_adjustment_value_changed), self, G_CONNECT_SWAPPED);

  keys = gtk_event_controller_key_new ();
  gtk_event_controller_set_propagation_phase (keys, GTK_PHASE_CAPTURE);
  g_signal_connect_object (keys, "key-pressed", G_CALLBACK (on_composer_key_pressed), self, G_CONNECT_SWAPPED);
  gtk_widget_add_controller (GTK_WIDGET (self->composer), keys);
  g_signal_connect_object (gtk_text_view_get_buffer (self->composer), "changed",
                           G_CALLBACK (on_draft_changed), self, G_CONNECT_SWAPPED);

  gtk_search_bar_connect_entry (self->search_bar, GTK_EDITABLE (self->search_entry));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.send", FALSE);
  self->stick_to_bottom = TRUE;
}

void
natter_chat_view_set_service (NatterChatView         *self,
                              NatterMessagingService *service)
{
  g_return_if_fail (NATTER_IS_CHAT_VIEW (self));
  g_return_if_fail (self->service == NULL);

  self->service = g_object_ref (service);
  g_signal_connect_object (service, "typing-changed", G_CALLBACK (on_typing_changed), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (service, "presence-changed", G_CALLBACK (on_peer_changed), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (service, "peer-state-changed", G_CALLBACK (on_peer_changed), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (service, "message-received", G_CALLBACK (on_message_received), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (service, "transfer-offered", G_CALLBACK (on_transfer_offered), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (service, "transfer-state-changed", G_CALLBACK (on_transfer_state_changed), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (service, "transfer-progress", G_CALLBACK (on_transfer_progress), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (natter_messaging_service_get_contacts (service), "items-changed",
                           G_CALLBACK (on_contacts_changed), self, G_CONNECT_SWAPPED);
}

const char *
natter_chat_view_get_peer_id (NatterChatView *self)
{
  g_return_val_if_fail (NATTER_IS_CHAT_VIEW (self), NULL);
  return self->peer_id;
}

GListModel *
natter_chat_view_get_history (NatterChatView *self)
{
  g_return_val_if_fail (NATTER_IS_CHAT_VIEW (self), NULL);
  return self->history;
}

/**
 * natter_chat_view_set_peer_id:
 * @self: a chat view
 * @peer_id: the contact whose conversation to show
 *
 * Shows the newest page of the conversation at once and loads older pages
 * as the user scrolls up.
 */
void
natter_chat_view_set_peer_id (NatterChatView *self,
                              const char     *peer_id)
{
  g_return_if_fail (NATTER_IS_CHAT_VIEW (self));
  g_return_if_fail (self->service != NULL);

  if (g_strcmp0 (self->peer_id, peer_id) == 0)
    return;

  if (self->peer_id != NULL)
    natter_messaging_service_set_typing (self->service, self->peer_id, FALSE, NULL);
  clear_history (self);
  g_free (self->peer_id);
  self->peer_id = g_strdup (peer_id);
  gtk_search_bar_set_search_mode (self->search_bar, FALSE);
  set_typing_visible (self, FALSE);
  /* A draft belongs to the conversation it was written in. */
  g_signal_handlers_block_by_func (gtk_text_view_get_buffer (self->composer), on_draft_changed, self);
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->composer), "", -1);
  g_signal_handlers_unblock_by_func (gtk_text_view_get_buffer (self->composer), on_draft_changed, self);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.send", FALSE);
  update_header (self);
  set_drop_overlay_visible (self, FALSE);
  reload_transfers (self);

  if (peer_id == NULL)
    return;
  self->cancellable = g_cancellable_new ();
  natter_messaging_service_open_history_async (self->service, peer_id, self->cancellable,
                                               on_history_opened, g_object_ref (self));
}

static void
on_marked_read (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!natter_messaging_service_mark_read_finish (NATTER_MESSAGING_SERVICE (source), result, &error) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_warning ("Could not mark the conversation read: %s", error->message);
}

/**
 * natter_chat_view_mark_read:
 * @self: a chat view
 *
 * Marks what the user sees read, which sends read receipts.
 */
void
natter_chat_view_mark_read (NatterChatView *self)
{
  g_return_if_fail (NATTER_IS_CHAT_VIEW (self));

  if (self->peer_id == NULL)
    return;
  natter_messaging_service_mark_read_async (self->service, self->peer_id, NULL, on_marked_read, NULL);
}

void
natter_chat_view_focus_composer (NatterChatView *self)
{
  g_return_if_fail (NATTER_IS_CHAT_VIEW (self));
  gtk_widget_grab_focus (GTK_WIDGET (self->composer));
}

/**
 * natter_chat_view_jump_to_message:
 * @self: a chat view
 * @msg_id: a message of the open conversation
 *
 * Loads older pages until @msg_id is loaded, then scrolls to it.
 */
void
natter_chat_view_jump_to_message (NatterChatView *self,
                                  const char     *msg_id)
{
  NatterHistoryModel *history;
  NatterMessageItem *item;

  g_return_if_fail (NATTER_IS_CHAT_VIEW (self));

  if (self->history == NULL)
    return;
  history = NATTER_HISTORY_MODEL (self->history);
  item = natter_history_model_lookup (history, msg_id);
  if (item == NULL && !natter_history_model_get_complete (history))
    {
      if (self->jump_to != msg_id)
        {
          g_free (self->jump_to);
          self->jump_to = g_strdup (msg_id);
        }
      load_older (self);
      return;
    }
  g_clear_pointer (&self->jump_to, g_free);
  if (item == NULL)
    return;

  for (guint i = g_list_model_get_n_items (self->history); i > 0; i--)
    {
      g_autoptr(NatterMessageItem) candidate = g_list_model_get_item (self->history, i - 1);

      if (candidate == item)
        {
          self->stick_to_bottom = FALSE;
          gtk_widget_activate_action (GTK_WIDGET (self->message_list), "list.scroll-to-item", "u", i - 1);
          break;
        }
    }
}
