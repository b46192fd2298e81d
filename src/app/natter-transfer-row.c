/* natter-transfer-row.c: one file transfer in a conversation
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>
#include <gdk-pixbuf/gdk-pixbuf.h>

#include "natter-app-util.h"
#include "natter-db.h"
#include "natter-transfer-row.h"

/* The longest side of an image's thumbnail, in pixels. */
#define THUMBNAIL_SIZE 160
/* Images larger than this are not decoded for a thumbnail. */
#define THUMBNAIL_MAX_BYTES (64 * 1024 * 1024)

struct _NatterTransferRow
{
  GtkListBoxRow parent_instance;

  char *id;
  char *name;
  char *path;
  char *state;
  gboolean outgoing;
  gint64 size;
  gint64 done;
  GCancellable *cancellable;
  gboolean thumbnail_requested;
  int accept_x;
  int accept_y;

  GtkImage *icon;
  GtkPicture *thumbnail;
  GtkLabel *name_label;
  GtkLabel *status_label;
  GtkProgressBar *progress;
  GtkWidget *accept_button;
  GtkWidget *decline_button;
  GtkWidget *cancel_button;
  GtkWidget *open_button;
  GtkWidget *show_button;
};

G_DEFINE_FINAL_TYPE (NatterTransferRow, natter_transfer_row, GTK_TYPE_LIST_BOX_ROW)

static gboolean
state_is (NatterTransferRow *self,
          const char        *state)
{
  return g_strcmp0 (self->state, state) == 0;
}

static gboolean
is_finished (NatterTransferRow *self)
{
  return state_is (self, "complete") || state_is (self, "failed") ||
         state_is (self, "cancelled") || state_is (self, "rejected");
}

static char *
format_time_left (double seconds)
{
  gint64 s = (gint64) (seconds + 0.5);

  if (s < 60)
    return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%d second left", "%d seconds left", (gulong) s), (int) s);
  if (s < 3600)
    return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%d minute left", "%d minutes left", (gulong) (s / 60)),
                            (int) (s / 60));
  return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%d hour left", "%d hours left", (gulong) (s / 3600)),
                          (int) (s / 3600));
}

static void
update_status (NatterTransferRow *self,
               double             bytes_per_second)
{
  g_autofree char *size = natter_app_format_size (self->size);
  g_autofree char *text = NULL;

  if (state_is (self, "offered"))
    text = g_strdup_printf (self->outgoing ? _("%s — waiting for the contact to accept") : _("%s — offered to you"), size);
  else if (state_is (self, "accepted"))
    text = g_strdup_printf (_("%s — starting…"), size);
  else if (state_is (self, "paused"))
    {
      g_autofree char *done = natter_app_format_size (self->done);

      /* TRANSLATORS: "1.2 MB of 5.0 MB — paused" */
      text = g_strdup_printf (_("%s of %s — paused, resumes when the contact is back"), done, size);
    }
  else if (state_is (self, "active"))
    {
      g_autofree char *done = natter_app_format_size (self->done);

      if (bytes_per_second > 0)
        {
          g_autofree char *rate = natter_app_format_size ((gint64) bytes_per_second);
          g_autofree char *left = format_time_left ((self->size - self->done) / bytes_per_second);

          /* TRANSLATORS: "1.2 MB of 5.0 MB — 300 kB/s — 10 seconds left" */
          text = g_strdup_printf (_("%s of %s — %s/s — %s"), done, size, rate, left);
        }
      else
        text = g_strdup_printf (_("%s of %s"), done, size);
    }
  else if (state_is (self, "complete"))
    text = g_strdup_printf (self->outgoing ? _("%s — sent") : _("%s — received"), size);
  else if (state_is (self, "failed"))
    text = g_strdup_printf (_("%s — failed"), size);
  else if (state_is (self, "cancelled"))
    text = g_strdup_printf (_("%s — cancelled"), size);
  else if (state_is (self, "rejected"))
    text = g_strdup_printf (_("%s — declined"), size);
  else
    text = g_strdup (size);

  gtk_label_set_label (self->status_label, text);
}

/* {{{ Thumbnail */

static void
load_thumbnail_in_thread (GTask        *task,
                          gpointer      source_object,
                          gpointer      task_data,
                          GCancellable *cancellable)
{
  const char *path = task_data;
  GError *error = NULL;
  GdkPixbuf *pixbuf;

  pixbuf = gdk_pixbuf_new_from_file_at_scale (path, THUMBNAIL_SIZE, THUMBNAIL_SIZE, TRUE, &error);
  if (pixbuf == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  g_task_return_pointer (task, pixbuf, g_object_unref);
}

static void
on_thumbnail_loaded (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  NatterTransferRow *self = NATTER_TRANSFER_ROW (source);
  g_autoptr(GdkPixbuf) pixbuf = NULL;
  g_autoptr(GdkTexture) texture = NULL;
  g_autoptr(GError) error = NULL;

  pixbuf = g_task_propagate_pointer (G_TASK (result), &error);
  if (pixbuf == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("No thumbnail for %s: %s", self->path, error->message);
      return;
    }
  texture = gdk_texture_new_for_pixbuf (pixbuf);
  gtk_picture_set_paintable (self->thumbnail, GDK_PAINTABLE (texture));
  gtk_widget_set_size_request (GTK_WIDGET (self->thumbnail),
                               gdk_pixbuf_get_width (pixbuf), gdk_pixbuf_get_height (pixbuf));
  gtk_widget_set_visible (GTK_WIDGET (self->thumbnail), TRUE);
  gtk_widget_set_visible (GTK_WIDGET (self->icon), FALSE);
  natter_ui_trace ("transfer-row id=%s thumbnail=%dx%d", self->id,
                   gdk_pixbuf_get_width (pixbuf), gdk_pixbuf_get_height (pixbuf));
}

static void
maybe_load_thumbnail (NatterTransferRow *self)
{
  g_autofree char *content_type = NULL;
  g_autoptr(GTask) task = NULL;

  if (self->thumbnail_requested || self->path == NULL || !state_is (self, "complete") ||
      self->size > THUMBNAIL_MAX_BYTES)
    return;
  content_type = g_content_type_guess (self->path, NULL, 0, NULL);
  if (!g_content_type_is_a (content_type, "image/*"))
    return;

  self->thumbnail_requested = TRUE;
  task = g_task_new (self, self->cancellable, on_thumbnail_loaded, NULL);
  g_task_set_source_tag (task, maybe_load_thumbnail);
  g_task_set_task_data (task, g_strdup (self->path), g_free);
  g_task_run_in_thread (task, load_thumbnail_in_thread);
}

/* }}} */

/* {{{ Opening */

static void
on_launched (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!g_app_info_launch_default_for_uri_finish (result, &error))
    g_warning ("Could not open the file: %s", error->message);
}

static void
launch_uri (NatterTransferRow *self,
            const char        *uri)
{
  g_autoptr(GAppLaunchContext) context = NULL;

  context = G_APP_LAUNCH_CONTEXT (gdk_display_get_app_launch_context (gtk_widget_get_display (GTK_WIDGET (self))));
  g_app_info_launch_default_for_uri_async (uri, context, NULL, on_launched, NULL);
}

static void
on_open_clicked (NatterTransferRow *self)
{
  g_autoptr(GFile) file = NULL;
  g_autofree char *uri = NULL;

  if (self->path == NULL)
    return;
  file = g_file_new_for_path (self->path);
  uri = g_file_get_uri (file);
  launch_uri (self, uri);
}

static void
on_show_items_done (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(NatterTransferRow) self = user_data;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  if (reply == NULL && self->path != NULL)
    {
      g_autoptr(GFile) file = g_file_new_for_path (self->path);
      g_autoptr(GFile) folder = g_file_get_parent (file);
      g_autofree char *uri = g_file_get_uri (folder);

      /* No file manager that implements FileManager1: open the folder. */
      g_debug ("ShowItems failed (%s): opening the folder", error->message);
      launch_uri (self, uri);
    }
}

static void
on_bus_got (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(NatterTransferRow) self = user_data;
  g_autoptr(GDBusConnection) bus = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GFile) file = NULL;
  g_autofree char *uri = NULL;
  const char *uris[2] = { NULL, NULL };

  bus = g_bus_get_finish (result, &error);
  if (self->path == NULL)
    return;
  file = g_file_new_for_path (self->path);
  if (bus == NULL)
    {
      g_autoptr(GFile) folder = g_file_get_parent (file);
      g_autofree char *folder_uri = g_file_get_uri (folder);

      launch_uri (self, folder_uri);
      return;
    }
  uri = g_file_get_uri (file);
  uris[0] = uri;
  g_dbus_connection_call (bus, "org.freedesktop.FileManager1", "/org/freedesktop/FileManager1",
                          "org.freedesktop.FileManager1", "ShowItems",
                          g_variant_new ("(^ass)", uris, ""), NULL,
                          G_DBUS_CALL_FLAGS_NONE, 5000, NULL,
                          on_show_items_done, g_object_ref (self));
}

static void
on_show_clicked (NatterTransferRow *self)
{
  if (self->path == NULL)
    return;
  g_bus_get (G_BUS_TYPE_SESSION, NULL, on_bus_got, g_object_ref (self));
}

/* }}} */

/* {{{ Test support */

/* Where the accept button is, in the window's X coordinates, for the UI
 * tests that click it (G_MESSAGES_DEBUG=natter-ui): traced after each
 * layout that moves it. */
static void
trace_accept_position (NatterTransferRow *self)
{
  int x, y;

  if (!natter_app_widget_center (self->accept_button, &x, &y))
    return;
  if (x == self->accept_x && y == self->accept_y)
    return;
  self->accept_x = x;
  self->accept_y = y;
  natter_ui_trace ("transfer-row id=%s accept-at=%d,%d", self->id, x, y);
}

/* The row lays out its one child itself (a list box row has a layout
 * manager, which would keep size_allocate from being called). */
static void
natter_transfer_row_measure (GtkWidget      *widget,
                             GtkOrientation  orientation,
                             int             for_size,
                             int            *minimum,
                             int            *natural,
                             int            *minimum_baseline,
                             int            *natural_baseline)
{
  GtkWidget *child = gtk_list_box_row_get_child (GTK_LIST_BOX_ROW (widget));

  *minimum = *natural = 0;
  if (child != NULL && gtk_widget_get_visible (child))
    gtk_widget_measure (child, orientation, for_size, minimum, natural, minimum_baseline, natural_baseline);
}

static void
natter_transfer_row_size_allocate (GtkWidget *widget,
                                   int        width,
                                   int        height,
                                   int        baseline)
{
  NatterTransferRow *self = NATTER_TRANSFER_ROW (widget);
  GtkWidget *child = gtk_list_box_row_get_child (GTK_LIST_BOX_ROW (widget));

  if (child != NULL && gtk_widget_get_visible (child))
    gtk_widget_allocate (child, width, height, baseline, NULL);
  if (gtk_widget_get_visible (self->accept_button) &&
      !g_log_writer_default_would_drop (G_LOG_LEVEL_DEBUG, NATTER_UI_LOG_DOMAIN))
    trace_accept_position (self);
}

/* }}} */

static void
update_buttons (NatterTransferRow *self)
{
  gboolean incoming_offer = !self->outgoing && state_is (self, "offered");
  gboolean can_open = !self->outgoing ? state_is (self, "complete") && self->path != NULL
                                      : self->path != NULL;

  gtk_widget_set_visible (self->accept_button, incoming_offer);
  gtk_widget_set_visible (self->decline_button, incoming_offer);
  gtk_widget_set_visible (self->cancel_button, !incoming_offer && !is_finished (self));
  gtk_widget_set_visible (self->open_button, can_open && !state_is (self, "failed"));
  gtk_widget_set_visible (self->show_button, can_open && !state_is (self, "failed"));
  gtk_widget_set_visible (GTK_WIDGET (self->progress),
                          state_is (self, "accepted") || state_is (self, "active") || state_is (self, "paused"));
}

static GtkWidget *
icon_button (const char *icon_name,
             const char *label)
{
  GtkWidget *button = gtk_button_new_from_icon_name (icon_name);

  gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
  gtk_widget_set_tooltip_text (button, label);
  gtk_accessible_update_property (GTK_ACCESSIBLE (button), GTK_ACCESSIBLE_PROPERTY_LABEL, label, -1);
  gtk_widget_add_css_class (button, "flat");
  gtk_widget_add_css_class (button, "circular");
  return button;
}

static void
natter_transfer_row_dispose (GObject *object)
{
  NatterTransferRow *self = NATTER_TRANSFER_ROW (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);

  G_OBJECT_CLASS (natter_transfer_row_parent_class)->dispose (object);
}

static void
natter_transfer_row_finalize (GObject *object)
{
  NatterTransferRow *self = NATTER_TRANSFER_ROW (object);

  g_free (self->id);
  g_free (self->name);
  g_free (self->path);
  g_free (self->state);

  G_OBJECT_CLASS (natter_transfer_row_parent_class)->finalize (object);
}

static void
natter_transfer_row_class_init (NatterTransferRowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = natter_transfer_row_dispose;
  widget_class->measure = natter_transfer_row_measure;
  widget_class->size_allocate = natter_transfer_row_size_allocate;
  object_class->finalize = natter_transfer_row_finalize;
}

static void
natter_transfer_row_init (NatterTransferRow *self)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  GtkWidget *text = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
  GtkWidget *media = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 0);

  self->cancellable = g_cancellable_new ();
  self->accept_x = self->accept_y = -1;
  gtk_widget_set_layout_manager (GTK_WIDGET (self), NULL);
  gtk_list_box_row_set_activatable (GTK_LIST_BOX_ROW (self), FALSE);
  gtk_widget_add_css_class (GTK_WIDGET (self), "transfer-row");

  gtk_widget_set_valign (media, GTK_ALIGN_CENTER);
  self->icon = GTK_IMAGE (gtk_image_new ());
  gtk_image_set_icon_size (self->icon, GTK_ICON_SIZE_LARGE);
  gtk_box_append (GTK_BOX (media), GTK_WIDGET (self->icon));
  self->thumbnail = GTK_PICTURE (gtk_picture_new ());
  gtk_picture_set_can_shrink (self->thumbnail, TRUE);
  gtk_widget_set_visible (GTK_WIDGET (self->thumbnail), FALSE);
  gtk_widget_add_css_class (GTK_WIDGET (self->thumbnail), "transfer-thumbnail");
  gtk_box_append (GTK_BOX (media), GTK_WIDGET (self->thumbnail));
  gtk_box_append (GTK_BOX (box), media);

  gtk_widget_set_hexpand (text, TRUE);
  gtk_widget_set_valign (text, GTK_ALIGN_CENTER);
  self->name_label = GTK_LABEL (gtk_label_new (NULL));
  gtk_label_set_xalign (self->name_label, 0);
  gtk_label_set_ellipsize (self->name_label, PANGO_ELLIPSIZE_MIDDLE);
  gtk_widget_add_css_class (GTK_WIDGET (self->name_label), "heading");
  gtk_box_append (GTK_BOX (text), GTK_WIDGET (self->name_label));
  self->status_label = GTK_LABEL (gtk_label_new (NULL));
  gtk_label_set_xalign (self->status_label, 0);
  gtk_label_set_ellipsize (self->status_label, PANGO_ELLIPSIZE_END);
  gtk_widget_add_css_class (GTK_WIDGET (self->status_label), "caption");
  gtk_widget_add_css_class (GTK_WIDGET (self->status_label), "dim-label");
  gtk_box_append (GTK_BOX (text), GTK_WIDGET (self->status_label));
  self->progress = GTK_PROGRESS_BAR (gtk_progress_bar_new ());
  gtk_box_append (GTK_BOX (text), GTK_WIDGET (self->progress));
  gtk_box_append (GTK_BOX (box), text);

  self->accept_button = gtk_button_new_with_mnemonic (_("_Accept"));
  gtk_widget_set_valign (self->accept_button, GTK_ALIGN_CENTER);
  gtk_widget_add_css_class (self->accept_button, "suggested-action");
  gtk_actionable_set_action_name (GTK_ACTIONABLE (self->accept_button), "chat.accept-file");
  gtk_box_append (GTK_BOX (box), self->accept_button);

  self->decline_button = gtk_button_new_with_mnemonic (_("_Decline"));
  gtk_widget_set_valign (self->decline_button, GTK_ALIGN_CENTER);
  gtk_actionable_set_action_name (GTK_ACTIONABLE (self->decline_button), "chat.decline-file");
  gtk_box_append (GTK_BOX (box), self->decline_button);

  self->open_button = gtk_button_new_with_mnemonic (_("_Open"));
  gtk_widget_set_valign (self->open_button, GTK_ALIGN_CENTER);
  gtk_widget_set_tooltip_text (self->open_button, _("Open File"));
  g_signal_connect_swapped (self->open_button, "clicked", G_CALLBACK (on_open_clicked), self);
  gtk_box_append (GTK_BOX (box), self->open_button);

  self->show_button = icon_button ("folder-symbolic", _("Show in Folder"));
  g_signal_connect_swapped (self->show_button, "clicked", G_CALLBACK (on_show_clicked), self);
  gtk_box_append (GTK_BOX (box), self->show_button);

  self->cancel_button = icon_button ("process-stop-symbolic", _("Cancel Transfer"));
  gtk_actionable_set_action_name (GTK_ACTIONABLE (self->cancel_button), "chat.cancel-file");
  gtk_box_append (GTK_BOX (box), self->cancel_button);

  gtk_list_box_row_set_child (GTK_LIST_BOX_ROW (self), box);
}

NatterTransferRow *
natter_transfer_row_new (const NatterStoreTransfer *transfer)
{
  NatterTransferRow *self;
  g_autofree char *content_type = NULL;
  g_autoptr(GIcon) icon = NULL;

  g_return_val_if_fail (transfer != NULL && transfer->id != NULL, NULL);

  self = g_object_new (NATTER_TYPE_TRANSFER_ROW, NULL);
  self->id = g_strdup (transfer->id);
  self->name = g_strdup (transfer->name != NULL ? transfer->name : "");
  self->path = g_strdup (transfer->path);
  self->outgoing = transfer->direction == NATTER_STORE_DIRECTION_OUT;
  self->size = transfer->size;
  self->done = transfer->offset;
  self->state = g_strdup (natter_store_transfer_state_to_string (transfer->state));

  content_type = g_content_type_guess (self->name, NULL, 0, NULL);
  icon = g_content_type_get_symbolic_icon (content_type);
  gtk_image_set_from_gicon (self->icon, icon);
  gtk_label_set_label (self->name_label, self->name);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->name_label), self->name);
  gtk_actionable_set_action_target (GTK_ACTIONABLE (self->accept_button), "s", self->id);
  gtk_actionable_set_action_target (GTK_ACTIONABLE (self->decline_button), "s", self->id);
  gtk_actionable_set_action_target (GTK_ACTIONABLE (self->cancel_button), "s", self->id);
  if (self->size > 0)
    gtk_progress_bar_set_fraction (self->progress, (double) self->done / self->size);

  update_status (self, 0);
  update_buttons (self);
  maybe_load_thumbnail (self);
  natter_ui_trace ("transfer-row id=%s outgoing=%d state=%s name=%s", self->id, self->outgoing,
                   self->state, self->name);
  return self;
}

const char *
natter_transfer_row_get_id (NatterTransferRow *self)
{
  g_return_val_if_fail (NATTER_IS_TRANSFER_ROW (self), NULL);
  return self->id;
}

/**
 * natter_transfer_row_set_state:
 * @self: a transfer row
 * @state: the transfer's state, as the service names it
 * @detail: (nullable): the file's path when complete, the reason when failed
 */
void
natter_transfer_row_set_state (NatterTransferRow *self,
                               const char        *state,
                               const char        *detail)
{
  g_return_if_fail (NATTER_IS_TRANSFER_ROW (self));

  g_free (self->state);
  self->state = g_strdup (state);
  if (g_strcmp0 (state, "complete") == 0)
    {
      if (detail != NULL)
        {
          g_free (self->path);
          self->path = g_strdup (detail);
        }
      self->done = self->size;
    }
  update_status (self, 0);
  if (g_strcmp0 (state, "failed") == 0 && detail != NULL)
    gtk_widget_set_tooltip_text (GTK_WIDGET (self->status_label), detail);
  update_buttons (self);
  maybe_load_thumbnail (self);
  natter_ui_trace ("transfer-row id=%s outgoing=%d state=%s path=%s", self->id, self->outgoing,
                   self->state, self->path != NULL ? self->path : "");
}

void
natter_transfer_row_set_progress (NatterTransferRow *self,
                                  gint64             bytes_done,
                                  gint64             size,
                                  double             bytes_per_second)
{
  g_return_if_fail (NATTER_IS_TRANSFER_ROW (self));

  self->done = bytes_done;
  if (size > 0)
    self->size = size;
  if (!is_finished (self) && !state_is (self, "paused"))
    {
      g_free (self->state);
      self->state = g_strdup ("active");
      update_buttons (self);
    }
  if (self->size > 0)
    gtk_progress_bar_set_fraction (self->progress, CLAMP ((double) bytes_done / self->size, 0.0, 1.0));
  update_status (self, bytes_per_second);
}
