/* natter-message-row.c: one message bubble of a conversation
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-app-util.h"
#include "natter-message-row.h"

struct _NatterMessageRow
{
  GtkWidget parent_instance;

  NatterMessageItem *item;
  GSignalGroup *item_signals;

  gboolean show_receipts;

  GtkLabel *day_label;
  GtkLabel *event_label;
  GtkLabel *sender_label;
  GtkWidget *bubble;
  GtkLabel *text_label;
  GtkLabel *time_label;
  GtkImage *state_icon;
  GtkButton *retry_button;
  GtkMenuButton *receipts_button;
  GtkLabel *receipts_label;
  GtkImage *receipts_icon;
  GtkLabel *receipts_details;
  /* Sent messages go at the end of the line. */
  gboolean at_end;
};

G_DEFINE_FINAL_TYPE (NatterMessageRow, natter_message_row, GTK_TYPE_WIDGET)

/* The narrowest a long message's text may wrap to, in characters.  A
 * label that wraps by characters (word-char) and has no width-chars finds
 * its minimum width by laying its text out one character per line: about
 * 1.5 ms for a message of a hundred characters here, against 0.2 ms with
 * this.  No window is narrow enough to wrap a bubble tighter anyway.
 * Shorter messages keep the default, which is cheap for them and leaves
 * their natural width alone. */
#define MIN_WRAP_CHARS 10

/* The delivery state as the user sees it: a message handed to a relay is
 * "relayed" until its recipient confirms it. */
static const char *
displayed_state (NatterMessageItem *item)
{
  NatterStoreMessageState state = natter_message_item_get_state (item);

  if (state == NATTER_STORE_MESSAGE_SENT && natter_message_item_get_relay_via (item) != NULL)
    return "relayed";
  return natter_store_message_state_to_string (state);
}

static void
update_state (NatterMessageRow *self)
{
  static const struct {
    const char *state;
    const char *icon;
    const char *label;
  } states[] = {
    { "queued", "natter-queued-symbolic", N_("Waiting to be sent") },
    { "sent", "natter-sent-symbolic", N_("Sent") },
    { "relayed", "natter-relayed-symbolic", N_("Sent through another contact") },
    { "delivered", "natter-delivered-symbolic", N_("Delivered") },
    { "read", "natter-read-symbolic", N_("Read") },
    { "failed", "dialog-error-symbolic", N_("Not sent") },
  };
  const char *state;
  gboolean outgoing;

  if (self->item == NULL)
    return;

  /* A group message shows its receipts instead. */
  outgoing = natter_message_item_is_outgoing (self->item) && !self->show_receipts;
  state = displayed_state (self->item);
  gtk_widget_set_visible (GTK_WIDGET (self->state_icon), outgoing);
  gtk_widget_set_visible (GTK_WIDGET (self->retry_button),
                          outgoing && g_strcmp0 (state, "failed") == 0);
  gtk_widget_remove_css_class (GTK_WIDGET (self->state_icon), "read");
  gtk_widget_remove_css_class (GTK_WIDGET (self->state_icon), "failed");
  if (!outgoing)
    return;

  for (guint i = 0; i < G_N_ELEMENTS (states); i++)
    if (g_strcmp0 (states[i].state, state) == 0)
      {
        gtk_image_set_from_icon_name (self->state_icon, states[i].icon);
        gtk_widget_set_tooltip_text (GTK_WIDGET (self->state_icon), _(states[i].label));
        gtk_accessible_update_property (GTK_ACCESSIBLE (self->state_icon),
                                        GTK_ACCESSIBLE_PROPERTY_LABEL, _(states[i].label), -1);
        break;
      }
  if (g_strcmp0 (state, "read") == 0)
    gtk_widget_add_css_class (GTK_WIDGET (self->state_icon), "read");
  else if (g_strcmp0 (state, "failed") == 0)
    gtk_widget_add_css_class (GTK_WIDGET (self->state_icon), "failed");

  natter_ui_trace ("row msg=%s state=%s", natter_message_item_get_msg_id (self->item), state);
}

static void
update (NatterMessageRow *self)
{
  g_autofree char *time = NULL;
  g_autofree char *day = NULL;
  const char *text;
  gboolean outgoing;
  gboolean event;
  gint64 timestamp;

  if (self->item == NULL)
    return;

  /* A group's membership events are a line of their own, not a bubble. */
  event = g_strcmp0 (natter_message_item_get_kind (self->item), "event") == 0;
  gtk_widget_set_visible (GTK_WIDGET (self->event_label), event);
  gtk_widget_set_visible (self->bubble, !event);
  gtk_label_set_label (self->event_label, event ? natter_message_item_get_text (self->item) : "");

  outgoing = natter_message_item_is_outgoing (self->item);
  timestamp = natter_message_item_get_timestamp (self->item);
  time = natter_app_format_time (timestamp);
  day = natter_app_format_day (timestamp);

  text = natter_message_item_get_text (self->item);
  gtk_label_set_label (self->text_label, text);
  gtk_label_set_width_chars (self->text_label,
                             text != NULL && g_utf8_strlen (text, -1) > MIN_WRAP_CHARS
                             ? MIN_WRAP_CHARS : -1);
  gtk_label_set_label (self->time_label, time);
  gtk_label_set_label (self->day_label, day);
  if (self->at_end != outgoing)
    {
      self->at_end = outgoing;
      gtk_widget_queue_allocate (GTK_WIDGET (self));
    }
  if (outgoing)
    gtk_widget_add_css_class (self->bubble, "outgoing");
  else
    gtk_widget_remove_css_class (self->bubble, "outgoing");
  /* The target first: an action name without its target warns. */
  gtk_actionable_set_action_target (GTK_ACTIONABLE (self->retry_button), "s",
                                    natter_message_item_get_msg_id (self->item));
  gtk_actionable_set_action_name (GTK_ACTIONABLE (self->retry_button), "chat.retry");

  natter_ui_trace ("row msg=%s outgoing=%d text=%s", natter_message_item_get_msg_id (self->item),
                   outgoing, natter_message_item_get_text (self->item));
  update_state (self);
}

/* {{{ Layout
 *
 * The row places its children itself: the day separator across the top,
 * then the bubble at the start (received) or the end (sent), the retry
 * button beside it; or, for a group's membership event, its line across
 * the row instead of the bubble.  A horizontal GtkBox around the bubble would do
 * the same, but it measures its children's widths for its height, and for
 * a height the wrapping label searches its width with a Pango layout per
 * step: about 60 layouts a row, most of what showing a page cost.  Here
 * the bubble is only asked its width for no height, and its height for a
 * width. */

#define RETRY_SPACING 6

typedef struct
{
  int day_height;
  int bubble_width;
  int bubble_height;
  int retry_width;       /* 0: hidden */
  int retry_height;
} Geometry;

static void
measure_width (GtkWidget *child,
               int       *minimum,
               int       *natural)
{
  *minimum = *natural = 0;
  if (gtk_widget_should_layout (child))
    gtk_widget_measure (child, GTK_ORIENTATION_HORIZONTAL, -1, minimum, natural, NULL, NULL);
}

/* Where everything goes in a row @width wide (-1: as wide as it likes). */
static void
compute_geometry (NatterMessageRow *self,
                  int               width,
                  Geometry         *geometry,
                  int              *minimum_height)
{
  int bubble_min, bubble_nat, retry_min, retry_nat, min, nat;

  *geometry = (Geometry) { 0 };
  *minimum_height = 0;
  if (gtk_widget_should_layout (GTK_WIDGET (self->day_label)))
    {
      gtk_widget_measure (GTK_WIDGET (self->day_label), GTK_ORIENTATION_VERTICAL, width,
                          &min, &nat, NULL, NULL);
      geometry->day_height = nat;
      *minimum_height += min;
    }

  measure_width (GTK_WIDGET (self->retry_button), &retry_min, &retry_nat);
  if (gtk_widget_should_layout (GTK_WIDGET (self->retry_button)))
    {
      geometry->retry_width = retry_nat;
      gtk_widget_measure (GTK_WIDGET (self->retry_button), GTK_ORIENTATION_VERTICAL, retry_nat,
                          &geometry->retry_height, NULL, NULL, NULL);
    }

  if (!gtk_widget_should_layout (self->bubble))
    {
      /* A group event: one line across the row, centred by its label. */
      if (gtk_widget_should_layout (GTK_WIDGET (self->event_label)))
        {
          measure_width (GTK_WIDGET (self->event_label), &bubble_min, &bubble_nat);
          geometry->bubble_width = width >= 0 ? MAX (width, bubble_min) : bubble_nat;
          gtk_widget_measure (GTK_WIDGET (self->event_label), GTK_ORIENTATION_VERTICAL,
                              geometry->bubble_width, &min, &geometry->bubble_height, NULL, NULL);
          *minimum_height += min;
        }
      return;
    }

  measure_width (self->bubble, &bubble_min, &bubble_nat);
  geometry->bubble_width = bubble_nat;
  if (width >= 0)
    {
      int room = width - (geometry->retry_width > 0 ? geometry->retry_width + RETRY_SPACING : 0);

      geometry->bubble_width = MAX (MIN (room, bubble_nat), bubble_min);
    }
  gtk_widget_measure (self->bubble, GTK_ORIENTATION_VERTICAL, geometry->bubble_width,
                      &min, &geometry->bubble_height, NULL, NULL);
  *minimum_height += MAX (min, geometry->retry_height);
}

static GtkSizeRequestMode
natter_message_row_get_request_mode (GtkWidget *widget)
{
  return GTK_SIZE_REQUEST_HEIGHT_FOR_WIDTH;
}

static void
natter_message_row_measure (GtkWidget      *widget,
                            GtkOrientation  orientation,
                            int             for_size,
                            int            *minimum,
                            int            *natural,
                            int            *minimum_baseline,
                            int            *natural_baseline)
{
  NatterMessageRow *self = NATTER_MESSAGE_ROW (widget);

  if (orientation == GTK_ORIENTATION_HORIZONTAL)
    {
      /* Never for a height: see above. */
      int day_min, day_nat, bubble_min, bubble_nat, retry_min, retry_nat;
      int extra;

      measure_width (GTK_WIDGET (self->day_label), &day_min, &day_nat);
      if (gtk_widget_should_layout (self->bubble))
        measure_width (self->bubble, &bubble_min, &bubble_nat);
      else
        measure_width (GTK_WIDGET (self->event_label), &bubble_min, &bubble_nat);
      measure_width (GTK_WIDGET (self->retry_button), &retry_min, &retry_nat);
      extra = gtk_widget_should_layout (GTK_WIDGET (self->retry_button)) ? RETRY_SPACING : 0;
      *minimum = MAX (day_min, bubble_min + retry_min + extra);
      *natural = MAX (day_nat, bubble_nat + retry_nat + extra);
    }
  else
    {
      Geometry geometry;

      compute_geometry (self, for_size, &geometry, minimum);
      *natural = geometry.day_height + MAX (geometry.bubble_height, geometry.retry_height);
      *natural = MAX (*natural, *minimum);
    }
}

static void
place (GtkWidget *widget,
       GtkWidget *child,
       int        row_width,
       int        x,
       int        y,
       int        width,
       int        height)
{
  /* Right to left, the start is on the right. */
  if (gtk_widget_get_direction (widget) == GTK_TEXT_DIR_RTL)
    x = row_width - x - width;
  gtk_widget_allocate (child, width, height, -1,
                       gsk_transform_translate (NULL, &GRAPHENE_POINT_INIT (x, y)));
}

static void
natter_message_row_size_allocate (GtkWidget *widget,
                                  int        width,
                                  int        height,
                                  int        baseline)
{
  NatterMessageRow *self = NATTER_MESSAGE_ROW (widget);
  Geometry geometry;
  int minimum_height, line_height, bubble_x, retry_x;

  compute_geometry (self, width, &geometry, &minimum_height);
  if (gtk_widget_should_layout (GTK_WIDGET (self->day_label)))
    place (widget, GTK_WIDGET (self->day_label), width, 0, 0, width, geometry.day_height);

  line_height = MAX (height - geometry.day_height, 0);
  if (!gtk_widget_should_layout (self->bubble))
    {
      if (gtk_widget_should_layout (GTK_WIDGET (self->event_label)))
        place (widget, GTK_WIDGET (self->event_label), width, 0, geometry.day_height, width, line_height);
      return;
    }
  if (self->at_end)
    {
      bubble_x = width - geometry.bubble_width;
      retry_x = bubble_x - RETRY_SPACING - geometry.retry_width;
    }
  else
    {
      bubble_x = 0;
      retry_x = geometry.bubble_width + RETRY_SPACING;
    }
  place (widget, self->bubble, width, bubble_x, geometry.day_height, geometry.bubble_width, line_height);
  if (geometry.retry_width > 0)
    place (widget, GTK_WIDGET (self->retry_button), width, retry_x, geometry.day_height,
           geometry.retry_width, line_height);
}

/* }}} */

static void
on_receipts_shown (NatterMessageRow *self,
                   GParamSpec       *pspec,
                   GtkPopover       *popover)
{
  g_autofree char *details = NULL;

  if (self->item == NULL || !gtk_widget_get_visible (GTK_WIDGET (popover)))
    return;
  details = g_strdelimit (g_strdup (gtk_label_get_text (self->receipts_details)), "\n", '|');
  natter_ui_trace ("row msg=%s receipts-details=%s", natter_message_item_get_msg_id (self->item), details);
}

static void
natter_message_row_dispose (GObject *object)
{
  NatterMessageRow *self = NATTER_MESSAGE_ROW (object);
  GtkWidget *child;

  gtk_widget_dispose_template (GTK_WIDGET (self), NATTER_TYPE_MESSAGE_ROW);
  /* The template's root box is not a bound child: unparent it too. */
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  g_clear_object (&self->item_signals);
  g_clear_object (&self->item);

  G_OBJECT_CLASS (natter_message_row_parent_class)->dispose (object);
}

static void
natter_message_row_class_init (NatterMessageRowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = natter_message_row_dispose;

  gtk_widget_class_set_css_name (widget_class, "messagerow");
  widget_class->get_request_mode = natter_message_row_get_request_mode;
  widget_class->measure = natter_message_row_measure;
  widget_class->size_allocate = natter_message_row_size_allocate;
  gtk_widget_class_set_template_from_resource (widget_class, "/org/natter/Natter/natter-message-row.ui");
  gtk_widget_class_bind_template_child (widget_class, NatterMessageRow, day_label);
  gtk_widget_class_bind_template_child (widget_class, NatterMessageRow, event_label);
  gtk_widget_class_bind_template_child (widget_class, NatterMessageRow, sender_label);
  gtk_widget_class_bind_template_child (widget_class, NatterMessageRow, bubble);
  gtk_widget_class_bind_template_child (widget_class, NatterMessageRow, text_label);
  gtk_widget_class_bind_template_child (widget_class, NatterMessageRow, time_label);
  gtk_widget_class_bind_template_child (widget_class, NatterMessageRow, state_icon);
  gtk_widget_class_bind_template_child (widget_class, NatterMessageRow, retry_button);
  gtk_widget_class_bind_template_child (widget_class, NatterMessageRow, receipts_button);
  gtk_widget_class_bind_template_child (widget_class, NatterMessageRow, receipts_label);
  gtk_widget_class_bind_template_child (widget_class, NatterMessageRow, receipts_icon);
  gtk_widget_class_bind_template_child (widget_class, NatterMessageRow, receipts_details);
}

static void
natter_message_row_init (NatterMessageRow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));

  g_signal_connect_object (gtk_menu_button_get_popover (self->receipts_button), "notify::visible",
                           G_CALLBACK (on_receipts_shown), self, G_CONNECT_SWAPPED);
  self->item_signals = g_signal_group_new (NATTER_TYPE_MESSAGE_ITEM);
  g_signal_group_connect_swapped (self->item_signals, "notify::state", G_CALLBACK (update_state), self);
  g_signal_group_connect_swapped (self->item_signals, "notify::relay-via", G_CALLBACK (update_state), self);
}

NatterMessageRow *
natter_message_row_new (void)
{
  return g_object_new (NATTER_TYPE_MESSAGE_ROW, NULL);
}

NatterMessageItem *
natter_message_row_get_item (NatterMessageRow *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ROW (self), NULL);
  return self->item;
}

void
natter_message_row_set_item (NatterMessageRow  *self,
                             NatterMessageItem *item)
{
  g_return_if_fail (NATTER_IS_MESSAGE_ROW (self));

  if (!g_set_object (&self->item, item))
    return;
  g_signal_group_set_target (self->item_signals, item);
  update (self);
}

void
natter_message_row_set_show_day (NatterMessageRow *self,
                                 gboolean          show_day)
{
  g_return_if_fail (NATTER_IS_MESSAGE_ROW (self));
  gtk_widget_set_visible (GTK_WIDGET (self->day_label), show_day);
}

/**
 * natter_message_row_set_sender:
 * @self: a row
 * @name: (nullable): who wrote the message, shown above its text in a
 *   group; %NULL hides it
 */
void
natter_message_row_set_sender (NatterMessageRow *self,
                               const char       *name)
{
  g_return_if_fail (NATTER_IS_MESSAGE_ROW (self));

  gtk_label_set_label (self->sender_label, name != NULL ? name : "");
  gtk_widget_set_visible (GTK_WIDGET (self->sender_label), name != NULL);
  if (name != NULL && self->item != NULL)
    natter_ui_trace ("row msg=%s sender=%s", natter_message_item_get_msg_id (self->item), name);
}

static char *
dup_name_list (NatterMessagingService *service,
               const char * const     *peers)
{
  g_autoptr(GString) list = g_string_new (NULL);

  for (guint i = 0; peers != NULL && peers[i] != NULL; i++)
    {
      g_autofree char *name = natter_app_dup_peer_name (service, peers[i]);
      g_autofree char *escaped = g_markup_escape_text (name, -1);

      g_string_append_printf (list, "\n%s", escaped);
    }
  return g_string_free (g_steal_pointer (&list), FALSE);
}

/**
 * natter_message_row_set_receipts:
 * @self: a row of one of our group messages
 * @service: (nullable): the messaging service, for the members' names;
 *   %NULL hides the receipts (a message of another member)
 * @delivered_to: (nullable): the members that have the message
 * @read_by: (nullable): the members that read it
 * @total: the other members of the group
 *
 * Shows "delivered to N of M" or "read by N of M" instead of the
 * direct chat's ticks, with the names in a popover.
 */
void
natter_message_row_set_receipts (NatterMessageRow       *self,
                                 NatterMessagingService *service,
                                 const char * const     *delivered_to,
                                 const char * const     *read_by,
                                 guint                   total)
{
  guint n_delivered = delivered_to != NULL ? g_strv_length ((char **) delivered_to) : 0;
  guint n_read = read_by != NULL ? g_strv_length ((char **) read_by) : 0;
  g_autofree char *summary = NULL;
  g_autofree char *read_names = NULL;
  g_autofree char *delivered_names = NULL;
  g_autofree char *details = NULL;
  const char *icon;

  g_return_if_fail (NATTER_IS_MESSAGE_ROW (self));

  self->show_receipts = TRUE;
  gtk_widget_set_visible (GTK_WIDGET (self->state_icon), FALSE);
  gtk_widget_set_visible (GTK_WIDGET (self->receipts_button), service != NULL);
  if (service == NULL)
    return;

  if (n_read > 0)
    /* Translators: a group message was read by N of the M other members */
    summary = g_strdup_printf (_("Read by %u of %u"), n_read, total);
  else if (n_delivered > 0)
    /* Translators: a group message reached N of the M other members */
    summary = g_strdup_printf (_("Delivered to %u of %u"), n_delivered, total);
  else
    summary = g_strdup (_("Sent"));
  if (total > 0 && n_read == total)
    icon = "natter-read-symbolic";
  else if (total > 0 && n_delivered == total)
    icon = "natter-delivered-symbolic";
  else
    icon = "natter-sent-symbolic";
  gtk_label_set_label (self->receipts_label, summary);
  gtk_image_set_from_icon_name (self->receipts_icon, icon);
  if (total > 0 && n_read == total)
    gtk_widget_add_css_class (GTK_WIDGET (self->receipts_icon), "read");
  else
    gtk_widget_remove_css_class (GTK_WIDGET (self->receipts_icon), "read");

  read_names = dup_name_list (service, read_by);
  delivered_names = dup_name_list (service, delivered_to);
  details = g_strdup_printf ("<b>%s</b>%s\n\n<b>%s</b>%s",
                             _("Read by"), n_read > 0 ? read_names : "\n—",
                             _("Delivered to"), n_delivered > 0 ? delivered_names : "\n—");
  gtk_label_set_markup (self->receipts_details, details);

  if (self->item != NULL)
    {
      g_autofree char *what = g_strdup_printf ("row msg=%s receipts-button",
                                               natter_message_item_get_msg_id (self->item));

      natter_ui_trace ("row msg=%s receipts delivered=%u read=%u total=%u",
                       natter_message_item_get_msg_id (self->item), n_delivered, n_read, total);
      natter_app_trace_position (GTK_WIDGET (self->receipts_button), what);
    }
}
