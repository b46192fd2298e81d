/* natter-contacts-window.c: contacts, requests and blocked peers
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-app-util.h"
#include "natter-contacts-window.h"
#include "natter-window.h"

struct _NatterContactsWindow
{
  AdwWindow parent_instance;

  NatterMessagingService *service;
  gboolean lan;
  GPtrArray *rows;

  GPtrArray *nearby_rows;

  GtkStack *stack;
  AdwPreferencesGroup *nearby_group;
  GtkSwitch *discoverable_switch;
  AdwPreferencesGroup *requests_group;
  AdwPreferencesGroup *contacts_group;
  AdwPreferencesGroup *blocked_group;
};

G_DEFINE_FINAL_TYPE (NatterContactsWindow, natter_contacts_window, ADW_TYPE_WINDOW)

static void
on_state_set (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!natter_messaging_service_set_contact_state_finish (NATTER_MESSAGING_SERVICE (source), result, &error))
    g_warning ("Could not change the contact: %s", error->message);
}

static void
set_state_action (GtkWidget  *widget,
                  const char *action_name,
                  GVariant   *parameter)
{
  NatterContactsWindow *self = NATTER_CONTACTS_WINDOW (widget);
  const char *peer_id;
  const char *state_name;
  NatterContactState state;

  g_variant_get (parameter, "(&s&s)", &peer_id, &state_name);
  if (!natter_contact_state_from_string (state_name, &state))
    return;
  natter_messaging_service_set_contact_state_async (self->service, peer_id, state, NULL,
                                                    on_state_set, NULL);
}

static void
message_action (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  GtkWindow *parent = gtk_window_get_transient_for (GTK_WINDOW (widget));

  if (NATTER_IS_WINDOW (parent))
    natter_window_open_conversation (NATTER_WINDOW (parent), g_variant_get_string (parameter, NULL));
  gtk_window_destroy (GTK_WINDOW (widget));
}

static void
add_action (GtkWidget  *widget,
            const char *action_name,
            GVariant   *parameter)
{
  GtkWindow *parent = gtk_window_get_transient_for (GTK_WINDOW (widget));

  if (NATTER_IS_WINDOW (parent))
    natter_window_open_invite (NATTER_WINDOW (parent), NULL, NULL);
}

static void rebuild_nearby (NatterContactsWindow *self);

/* What people see for a handle: "Nearby" and four characters of it, so
 * that two people can tell which of several rows is the other. */
static char *
nearby_name (const char *handle)
{
  g_autofree char *code = g_ascii_strup (handle, MIN (strlen (handle), 4));

  /* Translators: %s is a short code such as 3F9A */
  return g_strdup_printf (_("Nearby %s"), code);
}


/* {{{ Test support: where things are (G_MESSAGES_DEBUG=natter-ui) */

/* @row is traced as "@what=X,Y", the centre of @target, after each layout
 * that moves it. */
static void
set_trace (GtkWidget *row,
           char      *what,
           GtkWidget *target)
{
  g_object_set_data_full (G_OBJECT (row), "natter-trace", what, g_free);
  g_object_set_data (G_OBJECT (row), "natter-trace-target", target);
}

static void
trace_rows (GPtrArray *rows)
{
  for (guint i = 0; rows != NULL && i < rows->len; i++)
    {
      GObject *row = g_ptr_array_index (rows, i);
      const char *what = g_object_get_data (row, "natter-trace");
      GtkWidget *target = g_object_get_data (row, "natter-trace-target");
      g_autofree char *line = NULL;
      int x, y;

      if (what == NULL || !natter_app_widget_center (target, &x, &y))
        continue;
      line = g_strdup_printf ("%s=%d,%d", what, x, y);
      if (g_strcmp0 (line, g_object_get_data (row, "natter-traced")) == 0)
        continue;
      natter_ui_trace ("%s", line);
      g_object_set_data_full (row, "natter-traced", g_steal_pointer (&line), g_free);
    }
}

static gboolean
trace_tick (GtkWidget     *widget,
            GdkFrameClock *clock,
            gpointer       user_data)
{
  NatterContactsWindow *self = NATTER_CONTACTS_WINDOW (widget);

  trace_rows (self->rows);
  trace_rows (self->nearby_rows);
  return G_SOURCE_CONTINUE;
}

/* }}} */

static GtkWidget *
make_button (const char *label,
             const char *action,
             GVariant   *target,
             const char *style)
{
  GtkWidget *button = gtk_button_new_with_mnemonic (label);

  gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
  gtk_actionable_set_action_name (GTK_ACTIONABLE (button), action);
  gtk_actionable_set_action_target_value (GTK_ACTIONABLE (button), target);
  if (style != NULL)
    gtk_widget_add_css_class (button, style);
  return button;
}

static GtkWidget *
make_row (NatterContactsWindow *self,
          NatterContact        *contact)
{
  const char *peer_id = natter_contact_get_peer_id (contact);
  g_autofree char *name = natter_app_dup_peer_name (self->service, peer_id);
  GtkWidget *row = adw_action_row_new ();
  GtkWidget *avatar = adw_avatar_new (32, name, TRUE);

  g_autofree char *handle = natter_messaging_service_dup_request_handle (self->service, peer_id);

  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), name);
  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  if (handle != NULL && natter_contact_get_state (contact) == NATTER_CONTACT_PENDING)
    {
      g_autofree char *nearby = nearby_name (handle);
      /* Translators: “Nearby 3F9A · <peer ID>” */
      g_autofree char *subtitle = g_strdup_printf (_("%s · %s"), nearby, peer_id);

      adw_action_row_set_subtitle (ADW_ACTION_ROW (row), subtitle);
    }
  else
    adw_action_row_set_subtitle (ADW_ACTION_ROW (row), peer_id);
  adw_action_row_set_subtitle_lines (ADW_ACTION_ROW (row), 1);
  adw_action_row_add_prefix (ADW_ACTION_ROW (row), avatar);

  switch (natter_contact_get_state (contact))
    {
    case NATTER_CONTACT_PENDING:
      {
        GtkWidget *accept = make_button (_("_Accept"), "contacts.set-state",
                                         g_variant_new ("(ss)", peer_id, "accepted"), "suggested-action");

        adw_action_row_add_suffix (ADW_ACTION_ROW (row),
                                   make_button (_("_Block"), "contacts.set-state",
                                                g_variant_new ("(ss)", peer_id, "blocked"), "destructive-action"));
        adw_action_row_add_suffix (ADW_ACTION_ROW (row), accept);
        set_trace (row, g_strdup_printf ("contacts request peer=%s accept-at", peer_id), accept);
      }
      break;
    case NATTER_CONTACT_BLOCKED:
      adw_action_row_add_suffix (ADW_ACTION_ROW (row),
                                 make_button (_("_Unblock"), "contacts.set-state",
                                              g_variant_new ("(ss)", peer_id, "accepted"), NULL));
      break;
    case NATTER_CONTACT_ACCEPTED:
    default:
      if (natter_contact_get_verified (contact))
        {
          GtkWidget *badge = gtk_image_new_from_icon_name ("natter-verified-symbolic");

          gtk_widget_add_css_class (badge, "verified-badge");
          gtk_widget_set_tooltip_text (badge, _("Verified"));
          gtk_accessible_update_property (GTK_ACCESSIBLE (badge),
                                          GTK_ACCESSIBLE_PROPERTY_LABEL, _("Verified"), -1);
          adw_action_row_add_suffix (ADW_ACTION_ROW (row), badge);
        }
      {
        GtkWidget *button = gtk_button_new_from_icon_name ("chat-message-new-symbolic");

        gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
        gtk_widget_add_css_class (button, "flat");
        gtk_actionable_set_action_name (GTK_ACTIONABLE (button), "contacts.message");
        gtk_actionable_set_action_target (GTK_ACTIONABLE (button), "s", peer_id);
        gtk_widget_set_tooltip_text (button, _("Send Message"));
        gtk_accessible_update_property (GTK_ACCESSIBLE (button),
                                        GTK_ACCESSIBLE_PROPERTY_LABEL, _("Send Message"), -1);
        adw_action_row_add_suffix (ADW_ACTION_ROW (row), button);
        adw_action_row_set_activatable_widget (ADW_ACTION_ROW (row), button);
        set_trace (row, g_strdup_printf ("contacts contact peer=%s state=accepted at", peer_id), button);
      }
      break;
    }
  return row;
}

static void
on_introduced (NatterContactsWindow *self)
{
  rebuild_nearby (self);
}

static void
introduce_action (GtkWidget  *widget,
                  const char *action_name,
                  GVariant   *parameter)
{
  NatterContactsWindow *self = NATTER_CONTACTS_WINDOW (widget);
  g_autoptr(GError) error = NULL;

  if (!natter_messaging_service_reveal_to_nearby (self->service, g_variant_get_string (parameter, NULL), &error))
    {
      g_warning ("Could not introduce ourselves: %s", error->message);
      return;
    }
  on_introduced (self);
}

static GtkWidget *
make_nearby_row (NatterContactsWindow *self,
                 const char           *handle)
{
  g_autofree char *name = nearby_name (handle);
  GtkWidget *row = adw_action_row_new ();
  GtkWidget *avatar = adw_avatar_new (32, NULL, FALSE);

  adw_avatar_set_icon_name (ADW_AVATAR (avatar), "network-wireless-symbolic");
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), name);
  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_action_row_add_prefix (ADW_ACTION_ROW (row), avatar);
  if (natter_messaging_service_get_introduced (self->service, handle))
    {
      adw_action_row_set_subtitle (ADW_ACTION_ROW (row), _("Introduced: waiting for them to accept"));
      set_trace (row, g_strdup_printf ("contacts nearby handle=%s introduced=1 at", handle), row);
    }
  else
    {
      GtkWidget *button = make_button (_("_Introduce Yourself"), "contacts.introduce",
                                       g_variant_new_string (handle), NULL);

      adw_action_row_set_subtitle (ADW_ACTION_ROW (row), _("Someone on this network"));
      adw_action_row_add_suffix (ADW_ACTION_ROW (row), button);
      set_trace (row, g_strdup_printf ("contacts nearby handle=%s introduced=0 introduce-at", handle), button);
    }
  return row;
}

static void
rebuild_nearby (NatterContactsWindow *self)
{
  g_auto(GStrv) handles = natter_messaging_service_list_nearby (self->service);
  g_autofree char *own = natter_messaging_service_dup_nearby_handle (self->service);
  g_autofree char *description = NULL;

  for (guint i = 0; i < self->nearby_rows->len; i++)
    adw_preferences_group_remove (self->nearby_group, g_ptr_array_index (self->nearby_rows, i));
  g_ptr_array_set_size (self->nearby_rows, 0);

  if (natter_app_tracing ())
    natter_ui_trace ("contacts nearby-self handle=%s", own != NULL ? own : "none");
  if (own != NULL)
    {
      g_autofree char *name = nearby_name (own);

      /* Translators: %s is the name others see, such as “Nearby 3F9A” */
      description = g_strdup_printf (_("Others on this network see you as “%s”. Introduce yourself to someone, "
                                       "and once they accept, you are contacts."), name);
    }
  else
    description = g_strdup (_("Turn on “Visible to People Nearby” on both computers to introduce yourselves "
                              "without a peer ID or invite link."));
  adw_preferences_group_set_description (self->nearby_group, description);

  for (guint i = 0; handles[i] != NULL; i++)
    {
      GtkWidget *row = make_nearby_row (self, handles[i]);

      adw_preferences_group_add (self->nearby_group, row);
      g_ptr_array_add (self->nearby_rows, row);
    }
  if (handles[0] == NULL && own != NULL)
    {
      GtkWidget *row = adw_action_row_new ();

      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), _("Nobody nearby is visible yet"));
      gtk_widget_add_css_class (row, "dim-label");
      adw_preferences_group_add (self->nearby_group, row);
      g_ptr_array_add (self->nearby_rows, row);
    }
}

static void
on_nearby_changed (NatterContactsWindow *self)
{
  rebuild_nearby (self);
}

static void
rebuild (NatterContactsWindow *self)
{
  GListModel *contacts = natter_messaging_service_get_contacts (self->service);
  guint n = g_list_model_get_n_items (contacts);
  guint counts[3] = { 0, 0, 0 };

  for (guint i = 0; i < self->rows->len; i++)
    {
      GtkWidget *row = g_ptr_array_index (self->rows, i);
      GtkWidget *group = gtk_widget_get_ancestor (row, ADW_TYPE_PREFERENCES_GROUP);

      if (group != NULL)
        adw_preferences_group_remove (ADW_PREFERENCES_GROUP (group), row);
    }
  g_ptr_array_set_size (self->rows, 0);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(NatterContact) contact = g_list_model_get_item (contacts, i);
      NatterContactState state = natter_contact_get_state (contact);
      AdwPreferencesGroup *group;
      GtkWidget *row = make_row (self, contact);

      group = state == NATTER_CONTACT_PENDING ? self->requests_group
            : state == NATTER_CONTACT_BLOCKED ? self->blocked_group
            : self->contacts_group;
      counts[MIN ((guint) state, 2)]++;
      adw_preferences_group_add (group, row);
      g_ptr_array_add (self->rows, row);
    }

  gtk_widget_set_visible (GTK_WIDGET (self->requests_group), counts[NATTER_CONTACT_PENDING] > 0);
  gtk_widget_set_visible (GTK_WIDGET (self->contacts_group), counts[NATTER_CONTACT_ACCEPTED] > 0);
  gtk_widget_set_visible (GTK_WIDGET (self->blocked_group), counts[NATTER_CONTACT_BLOCKED] > 0);
  gtk_stack_set_visible_child_name (self->stack, n > 0 || self->lan ? "list" : "empty");
}

static void
natter_contacts_window_dispose (GObject *object)
{
  NatterContactsWindow *self = NATTER_CONTACTS_WINDOW (object);

  g_clear_pointer (&self->rows, g_ptr_array_unref);
  g_clear_pointer (&self->nearby_rows, g_ptr_array_unref);
  g_clear_object (&self->service);

  G_OBJECT_CLASS (natter_contacts_window_parent_class)->dispose (object);
}

static void
natter_contacts_window_class_init (NatterContactsWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = natter_contacts_window_dispose;

  gtk_widget_class_set_template_from_resource (widget_class, "/org/natter/Natter/natter-contacts-window.ui");
  gtk_widget_class_bind_template_child (widget_class, NatterContactsWindow, stack);
  gtk_widget_class_bind_template_child (widget_class, NatterContactsWindow, nearby_group);
  gtk_widget_class_bind_template_child (widget_class, NatterContactsWindow, discoverable_switch);
  gtk_widget_class_bind_template_child (widget_class, NatterContactsWindow, requests_group);
  gtk_widget_class_bind_template_child (widget_class, NatterContactsWindow, contacts_group);
  gtk_widget_class_bind_template_child (widget_class, NatterContactsWindow, blocked_group);
  gtk_widget_class_install_action (widget_class, "contacts.set-state", "(ss)", set_state_action);
  gtk_widget_class_install_action (widget_class, "contacts.message", "s", message_action);
  gtk_widget_class_install_action (widget_class, "contacts.add", NULL, add_action);
  gtk_widget_class_install_action (widget_class, "contacts.introduce", "s", introduce_action);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
natter_contacts_window_init (NatterContactsWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->rows = g_ptr_array_new ();
  self->nearby_rows = g_ptr_array_new ();
  if (natter_app_tracing ())
    gtk_widget_add_tick_callback (GTK_WIDGET (self), trace_tick, NULL, NULL);
}

NatterContactsWindow *
natter_contacts_window_new (NatterMessagingService *service)
{
  NatterContactsWindow *self = g_object_new (NATTER_TYPE_CONTACTS_WINDOW, NULL);

  self->service = g_object_ref (service);
  g_object_get (service, "lan-discovery", &self->lan, NULL);
  gtk_widget_set_visible (GTK_WIDGET (self->nearby_group), self->lan);
  g_settings_bind (natter_profile_get_settings (natter_messaging_service_get_profile (service)),
                   "discoverable", self->discoverable_switch, "active", G_SETTINGS_BIND_DEFAULT);
  g_signal_connect_object (natter_messaging_service_get_contacts (service), "items-changed",
                           G_CALLBACK (rebuild), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (service, "nearby-changed", G_CALLBACK (on_nearby_changed), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (service, "notify::discoverable", G_CALLBACK (on_nearby_changed), self,
                           G_CONNECT_SWAPPED);
  rebuild (self);
  rebuild_nearby (self);
  return self;
}
