/* natter-app-util.c: small helpers shared by the widgets
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "natter-app-util.h"

/**
 * natter_app_find_contact:
 * @service: the messaging service
 * @peer_id: a peer ID
 *
 * Returns: (transfer full) (nullable): the contact with @peer_id
 */
NatterContact *
natter_app_find_contact (NatterMessagingService *service,
                         const char             *peer_id)
{
  GListModel *contacts = natter_messaging_service_get_contacts (service);
  guint n = g_list_model_get_n_items (contacts);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(NatterContact) contact = g_list_model_get_item (contacts, i);

      if (g_strcmp0 (natter_contact_get_peer_id (contact), peer_id) == 0)
        return g_steal_pointer (&contact);
    }
  return NULL;
}

/**
 * natter_app_dup_peer_name:
 * @service: the messaging service
 * @peer_id: a peer ID
 *
 * Returns: (transfer full): the contact's name, or the start of the peer
 *   ID when the contact has none
 */
char *
natter_app_dup_peer_name (NatterMessagingService *service,
                          const char             *peer_id)
{
  g_autoptr(NatterContact) contact = natter_app_find_contact (service, peer_id);
  const char *name = contact != NULL ? natter_contact_get_display_name (contact) : NULL;

  if (name != NULL && name[0] != '\0')
    return g_strdup (name);
  return g_strndup (peer_id, 12);
}

char *
natter_app_format_time (gint64 timestamp_ms)
{
  g_autoptr(GDateTime) utc = g_date_time_new_from_unix_utc (timestamp_ms / 1000);
  g_autoptr(GDateTime) local = utc != NULL ? g_date_time_to_local (utc) : NULL;

  if (local == NULL)
    return g_strdup ("");
  /* Translators: the time of a message, see g_date_time_format() */
  return g_date_time_format (local, _("%H:%M"));
}

static GDateTime *
local_day (gint64 timestamp_ms)
{
  g_autoptr(GDateTime) utc = g_date_time_new_from_unix_utc (timestamp_ms / 1000);
  g_autoptr(GDateTime) local = utc != NULL ? g_date_time_to_local (utc) : NULL;

  if (local == NULL)
    return NULL;
  return g_date_time_new_local (g_date_time_get_year (local), g_date_time_get_month (local),
                                g_date_time_get_day_of_month (local), 0, 0, 0);
}

gboolean
natter_app_same_day (gint64 a_ms,
                     gint64 b_ms)
{
  g_autoptr(GDateTime) a = local_day (a_ms);
  g_autoptr(GDateTime) b = local_day (b_ms);

  return a != NULL && b != NULL && g_date_time_equal (a, b);
}

char *
natter_app_format_day (gint64 timestamp_ms)
{
  g_autoptr(GDateTime) day = local_day (timestamp_ms);
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autoptr(GDateTime) today = NULL;
  GTimeSpan ago;

  if (day == NULL)
    return g_strdup ("");
  today = g_date_time_new_local (g_date_time_get_year (now), g_date_time_get_month (now),
                                 g_date_time_get_day_of_month (now), 0, 0, 0);
  ago = g_date_time_difference (today, day);
  if (ago == 0)
    return g_strdup (_("Today"));
  if (ago > 0 && ago <= G_TIME_SPAN_DAY + G_TIME_SPAN_HOUR)
    return g_strdup (_("Yesterday"));
  if (ago > 0 && ago < 6 * G_TIME_SPAN_DAY)
    /* Translators: a day of this week, see g_date_time_format() */
    return g_date_time_format (day, _("%A"));
  if (g_date_time_get_year (day) == g_date_time_get_year (now))
    /* Translators: a day of this year, see g_date_time_format() */
    return g_date_time_format (day, _("%A, %B %e"));
  /* Translators: a day of another year, see g_date_time_format() */
  return g_date_time_format (day, _("%B %e, %Y"));
}

char *
natter_app_format_size (gint64 bytes)
{
  return g_format_size (MAX (bytes, 0));
}

const char *
natter_app_presence_label (NatterPresence presence)
{
  switch (presence)
    {
    case NATTER_PRESENCE_ONLINE:
      return _("Online");
    case NATTER_PRESENCE_AWAY:
      return _("Away");
    case NATTER_PRESENCE_OFFLINE:
    default:
      return _("Offline");
    }
}

gboolean
natter_app_tracing (void)
{
  return !g_log_writer_default_would_drop (G_LOG_LEVEL_DEBUG, NATTER_UI_LOG_DOMAIN);
}

gboolean
natter_app_widget_center (GtkWidget *widget,
                          int       *x,
                          int       *y)
{
  GtkNative *native = gtk_widget_get_native (widget);
  graphene_point_t point;
  double dx = 0, dy = 0;

  if (native == NULL || !gtk_widget_get_mapped (widget) || gtk_widget_get_width (widget) <= 0 ||
      !gtk_widget_compute_point (widget, GTK_WIDGET (native),
                                 &GRAPHENE_POINT_INIT (gtk_widget_get_width (widget) / 2.f,
                                                       gtk_widget_get_height (widget) / 2.f),
                                 &point))
    return FALSE;
  gtk_native_get_surface_transform (native, &dx, &dy);
  *x = (int) (point.x + dx);
  *y = (int) (point.y + dy);
  return TRUE;
}

/**
 * natter_app_dup_member_name:
 * @service: the messaging service
 * @peer_id: a member of a group
 *
 * Returns: (transfer full): "You" for ourselves, else the peer's name
 */
char *
natter_app_dup_member_name (NatterMessagingService *service,
                            const char             *peer_id)
{
  if (g_strcmp0 (peer_id, natter_messaging_service_get_peer_id (service)) == 0)
    return g_strdup (_("You"));
  return natter_app_dup_peer_name (service, peer_id);
}

/**
 * natter_app_dup_group_event:
 * @service: the messaging service
 * @author: who made the membership operation
 * @event: the event text of a group history entry ("invite PEER", "remove
 *   PEER", "admin PEER", "leave" or "rotate")
 *
 * Returns: (transfer full) (nullable): the event as the user reads it, or
 *   %NULL for a key rotation, which the user need not see
 */
char *
natter_app_dup_group_event (NatterMessagingService *service,
                            const char             *author,
                            const char             *event)
{
  g_autofree char *who = natter_app_dup_member_name (service, author);
  g_autofree char *whom = NULL;
  const char *space = event != NULL ? strchr (event, ' ') : NULL;

  if (event == NULL || g_str_equal (event, "rotate"))
    return NULL;
  if (g_str_equal (event, "leave"))
    /* Translators: a member left a group */
    return g_strdup_printf (_("%s left"), who);
  if (space == NULL)
    return g_strdup (event);
  /* "You" as the object reads "you". */
  if (g_str_equal (space + 1, natter_messaging_service_get_peer_id (service)))
    {
      if (g_str_has_prefix (event, "invite "))
        /* Translators: the group's admin added us */
        return g_strdup_printf (_("%s added you"), who);
      if (g_str_has_prefix (event, "remove "))
        /* Translators: the group's admin removed us */
        return g_strdup_printf (_("%s removed you"), who);
      if (g_str_has_prefix (event, "admin "))
        /* Translators: the group's admin handed the role over to us */
        return g_strdup_printf (_("%s made you the admin"), who);
    }
  whom = natter_app_dup_peer_name (service, space + 1);
  if (g_str_has_prefix (event, "invite "))
    /* Translators: the group's admin added a member */
    return g_strdup_printf (_("%s added %s"), who, whom);
  if (g_str_has_prefix (event, "remove "))
    /* Translators: the group's admin removed a member */
    return g_strdup_printf (_("%s removed %s"), who, whom);
  if (g_str_has_prefix (event, "admin "))
    /* Translators: the group's admin handed the role over */
    return g_strdup_printf (_("%s made %s the admin"), who, whom);
  return g_strdup (event);
}

static gboolean
trace_position_tick (GtkWidget     *widget,
                     GdkFrameClock *clock,
                     gpointer       user_data)
{
  const char *what = user_data;
  int x, y;

  if (!natter_app_widget_center (widget, &x, &y))
    return G_SOURCE_CONTINUE;
  natter_ui_trace ("%s at=%d,%d", what, x, y);
  return G_SOURCE_REMOVE;
}

void
natter_app_trace_position (GtkWidget  *widget,
                           const char *what)
{
  g_return_if_fail (GTK_IS_WIDGET (widget));

  if (natter_app_tracing ())
    gtk_widget_add_tick_callback (widget, trace_position_tick, g_strdup (what), g_free);
}
