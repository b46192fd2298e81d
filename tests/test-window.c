/* test-window.c: the main window shows what the user needs to see
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <adwaita.h>
#include <glib/gstdio.h>

#include "natter-app-util.h"
#include "natter-chat-view.h"
#include "natter-conversation.h"
#include "natter-db.h"
#include "natter-identity.h"
#include "natter-invite.h"
#include "natter-messaging-service.h"
#include "natter-profile.h"
#include "natter-window.h"

typedef struct
{
  char *dir;
  NatterProfile *profile;
  NatterMessagingService *service;
  gboolean done;
  /* With fixture_set_up_long(): the contact with a long history, and when
   * its first message was written. */
  char *peer_id;
  gint64 oldest_ms;
} Fixture;

static void
spin_until_done (Fixture *fixture)
{
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

  while (!fixture->done && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (fixture->done);
  fixture->done = FALSE;
}

static void
on_started (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Fixture *fixture = user_data;
  g_autoptr(GError) error = NULL;

  g_assert_true (natter_messaging_service_start_finish (NATTER_MESSAGING_SERVICE (source), result, &error));
  g_assert_no_error (error);
  fixture->done = TRUE;
}

static void
on_stopped (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Fixture *fixture = user_data;

  natter_messaging_service_stop_finish (NATTER_MESSAGING_SERVICE (source), result, NULL);
  fixture->done = TRUE;
}

static void
open_profile (Fixture *fixture)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *profile_dir = NULL;

  fixture->dir = g_dir_make_tmp ("natter-window-XXXXXX", &error);
  g_assert_no_error (error);
  profile_dir = g_build_filename (fixture->dir, "profile", NULL);
  fixture->profile = natter_profile_open (profile_dir, NULL, &error);
  g_assert_no_error (error);
  g_settings_set_string (natter_profile_get_settings (fixture->profile),
                         "display-name", "Ada Lovelace");
}

static void
start_service (Fixture *fixture)
{
  /* A real service with no network: no LAN, no server, loopback only. */
  fixture->service = natter_messaging_service_new (fixture->profile);
  g_object_set (fixture->service, "lan-discovery", FALSE, "relay", FALSE, NULL);
  natter_messaging_service_start_async (fixture->service, NULL, on_started, fixture);
  spin_until_done (fixture);
}

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
{
  open_profile (fixture);
  start_service (fixture);
}

#define LONG_HISTORY 100

/* A contact whose conversation already holds LONG_HISTORY messages, "Note 0"
 * to "Note 99", a third of them ours: the first half two days ago, the rest
 * in the last two minutes.  Written to the store before the service starts,
 * as a history kept from earlier runs would be. */
static void
fixture_set_up_long (Fixture       *fixture,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterIdentity) other = natter_identity_new_random ();
  g_autoptr(NatterContact) contact = NULL;
  g_autoptr(GPtrArray) messages = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_message_free);
  gint64 now = g_get_real_time () / 1000;
  const char *self_id;
  gint64 conversation_id;
  NatterDb *db;

  open_profile (fixture);
  self_id = natter_identity_get_peer_id (natter_profile_get_identity (fixture->profile));
  fixture->peer_id = g_strdup (natter_identity_get_peer_id (other));
  fixture->oldest_ms = now - 2 * 24 * 3600 * G_GINT64_CONSTANT (1000);

  db = natter_db_open (natter_profile_get_database_path (fixture->profile), &error);
  g_assert_no_error (error);
  contact = natter_contact_new (fixture->peer_id, "Charles Babbage", NATTER_CONTACT_ACCEPTED, FALSE, now);
  g_assert_true (natter_db_upsert_contact (db, contact, &error));
  conversation_id = natter_db_ensure_conversation (db, NATTER_CONVERSATION_DIRECT, fixture->peer_id,
                                                   "Charles Babbage", &error);
  g_assert_no_error (error);
  for (guint i = 0; i < LONG_HISTORY; i++)
    {
      NatterStoreMessage *message = natter_store_message_new ();
      gboolean ours = i % 3 == 0;

      message->msg_id = g_strdup_printf ("msg_long_%03u", i);
      message->conversation_id = conversation_id;
      message->sender = g_strdup (ours ? self_id : fixture->peer_id);
      message->direction = ours ? NATTER_STORE_DIRECTION_OUT : NATTER_STORE_DIRECTION_IN;
      message->type = g_strdup ("text");
      message->body = g_strdup_printf ("Note %u", i);
      message->timestamp = i < LONG_HISTORY / 2 ? fixture->oldest_ms + i * 1000
                                                : now - (LONG_HISTORY - i) * 1000;
      message->sequence = i + 1;
      message->state = NATTER_STORE_MESSAGE_READ;
      g_ptr_array_add (messages, message);
    }
  g_assert_true (natter_db_insert_messages (db, messages, NULL, &error));
  g_assert_no_error (error);
  natter_db_close (db);

  start_service (fixture);
}

static void
remove_tree (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          remove_tree (child);
        }
    }
  g_remove (path);
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  data)
{
  natter_messaging_service_stop_async (fixture->service, NULL, on_stopped, fixture);
  spin_until_done (fixture);
  g_clear_object (&fixture->service);
  g_clear_object (&fixture->profile);
  remove_tree (fixture->dir);
  g_free (fixture->dir);
  g_free (fixture->peer_id);
}

static void
collect_widgets (GtkWidget *widget,
                 GType      type,
                 GPtrArray *out)
{
  if (G_TYPE_CHECK_INSTANCE_TYPE (widget, type))
    g_ptr_array_add (out, widget);
  for (GtkWidget *child = gtk_widget_get_first_child (widget);
       child != NULL;
       child = gtk_widget_get_next_sibling (child))
    collect_widgets (child, type, out);
}

/* Finds a label that is on screen (mapped) with exactly @text. */
static GtkLabel *
find_visible_label (GtkWidget  *root,
                    const char *text)
{
  g_autoptr(GPtrArray) labels = g_ptr_array_new ();

  collect_widgets (root, GTK_TYPE_LABEL, labels);
  for (guint i = 0; i < labels->len; i++)
    {
      GtkLabel *label = g_ptr_array_index (labels, i);

      if (g_strcmp0 (gtk_label_get_label (label), text) == 0 &&
          gtk_widget_get_mapped (GTK_WIDGET (label)))
        return label;
    }
  return NULL;
}

static GtkWidget *
find_button_with_action (GtkWidget  *root,
                         const char *action)
{
  g_autoptr(GPtrArray) buttons = g_ptr_array_new ();

  collect_widgets (root, GTK_TYPE_BUTTON, buttons);
  for (guint i = 0; i < buttons->len; i++)
    {
      GtkWidget *button = g_ptr_array_index (buttons, i);

      if (g_strcmp0 (gtk_actionable_get_action_name (GTK_ACTIONABLE (button)), action) == 0)
        return button;
    }
  return NULL;
}

static void
spin_until (gboolean (*done) (gpointer), gpointer data)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

  while (!done (data) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, FALSE);
}

static gboolean
widget_is_mapped (gpointer data)
{
  return gtk_widget_get_mapped (data);
}

static void
test_window_identity (Fixture       *fixture,
                      gconstpointer  data)
{
  NatterIdentity *identity = natter_profile_get_identity (fixture->profile);
  const char *peer_id = natter_identity_get_peer_id (identity);
  NatterWindow *window;
  GtkWidget *copy_button;

  window = natter_window_new (NULL, fixture->profile, fixture->service);
  gtk_window_present (GTK_WINDOW (window));
  spin_until (widget_is_mapped, window);
  g_assert_true (gtk_widget_get_mapped (GTK_WIDGET (window)));

  /* The user sees their name and their full peer ID. */
  g_assert_nonnull (find_visible_label (GTK_WIDGET (window), "Ada Lovelace"));
  g_assert_nonnull (find_visible_label (GTK_WIDGET (window), peer_id));

  /* With no conversations, the sidebar says so instead of showing nothing. */
  g_assert_nonnull (find_visible_label (GTK_WIDGET (window), "No Conversations"));

  /* The copy button puts the peer ID on the clipboard. */
  copy_button = find_button_with_action (GTK_WIDGET (window), "win.copy-peer-id");
  g_assert_nonnull (copy_button);
  g_assert_true (gtk_widget_get_mapped (copy_button));
  /* An icon-only button needs a name for screen readers. */
  gtk_test_accessible_assert_property (GTK_ACCESSIBLE (copy_button),
                                       GTK_ACCESSIBLE_PROPERTY_LABEL, "Copy Peer ID");
  g_assert_true (gtk_widget_is_sensitive (copy_button));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.copy-peer-id", NULL));
  {
    GdkClipboard *clipboard = gtk_widget_get_clipboard (GTK_WIDGET (window));
    GdkContentProvider *content = gdk_clipboard_get_content (clipboard);
    g_auto(GValue) value = G_VALUE_INIT;
    g_autoptr(GError) error = NULL;

    /* The window now offers the peer ID as text.  This is checked at once:
     * an activation without an input event carries no X timestamp, so the
     * X server may hand the selection back later; test-app-launch.py clicks
     * the real button and reads the clipboard from another X client. */
    g_assert_true (gdk_clipboard_is_local (clipboard));
    g_assert_nonnull (content);
    g_value_init (&value, G_TYPE_STRING);
    g_assert_true (gdk_content_provider_get_value (content, &value, &error));
    g_assert_no_error (error);
    g_assert_cmpstr (g_value_get_string (&value), ==, peer_id);
  }

  /* A change of display name shows at once. */
  g_settings_set_string (natter_profile_get_settings (fixture->profile),
                         "display-name", "Grace Hopper");
  g_assert_nonnull (find_visible_label (GTK_WIDGET (window), "Grace Hopper"));

  gtk_window_destroy (GTK_WINDOW (window));
}

static gboolean
label_visible (gpointer data)
{
  gpointer *args = data;

  return find_visible_label (args[0], args[1]) != NULL;
}

static void
on_contact_added (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Fixture *fixture = user_data;
  g_autoptr(NatterContact) contact = NULL;
  g_autoptr(GError) error = NULL;

  contact = natter_messaging_service_add_contact_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  g_assert_no_error (error);
  g_assert_nonnull (contact);
  fixture->done = TRUE;
}

static void
on_text_sent (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Fixture *fixture = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *msg_id = NULL;

  msg_id = natter_messaging_service_send_text_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  g_assert_no_error (error);
  fixture->done = TRUE;
}

static GtkTextView *
find_text_view (GtkWidget *root)
{
  g_autoptr(GPtrArray) views = g_ptr_array_new ();

  collect_widgets (root, GTK_TYPE_TEXT_VIEW, views);
  for (guint i = 0; i < views->len; i++)
    if (gtk_widget_get_mapped (g_ptr_array_index (views, i)))
      return g_ptr_array_index (views, i);
  return NULL;
}

static gboolean
accessible_label_visible (gpointer data)
{
  gpointer *args = data;
  g_autoptr(GPtrArray) images = g_ptr_array_new ();

  collect_widgets (args[0], GTK_TYPE_IMAGE, images);
  for (guint i = 0; i < images->len; i++)
    {
      GtkWidget *image = g_ptr_array_index (images, i);

      if (gtk_widget_get_mapped (image) &&
          g_strcmp0 (gtk_widget_get_tooltip_text (image), args[1]) == 0)
        return TRUE;
    }
  return FALSE;
}

static void
test_window_conversations (Fixture       *fixture,
                           gconstpointer  data)
{
  g_autoptr(NatterIdentity) other = natter_identity_new_random ();
  const char *peer_id = natter_identity_get_peer_id (other);
  NatterWindow *window;
  GtkTextView *composer;
  gpointer args[2];

  window = natter_window_new (NULL, fixture->profile, fixture->service);
  gtk_window_present (GTK_WINDOW (window));
  spin_until (widget_is_mapped, window);

  natter_messaging_service_add_contact_async (fixture->service, peer_id, "Charles Babbage",
                                              NULL, on_contact_added, fixture);
  spin_until_done (fixture);
  natter_messaging_service_send_text_async (fixture->service, peer_id, "The engine is ready",
                                            NULL, on_text_sent, fixture);
  spin_until_done (fixture);

  /* The list replaces the empty page and shows the conversation, with the
   * last message as its preview. */
  args[0] = window;
  args[1] = (gpointer) "Charles Babbage";
  spin_until (label_visible, args);
  g_assert_nonnull (find_visible_label (GTK_WIDGET (window), "Charles Babbage"));
  g_assert_nonnull (find_visible_label (GTK_WIDGET (window), "The engine is ready"));
  g_assert_null (find_visible_label (GTK_WIDGET (window), "No Conversations"));

  /* Opening it shows the message in a bubble, waiting: the peer is offline. */
  natter_window_open_conversation (window, peer_id);
  args[1] = (gpointer) "Waiting to be sent";
  spin_until (accessible_label_visible, args);
  g_assert_true (accessible_label_visible (args));
  args[1] = (gpointer) "Today";
  spin_until (label_visible, args);
  g_assert_nonnull (find_visible_label (GTK_WIDGET (window), "Today"));

  /* Enter in the composer sends; what was typed appears as a bubble. */
  composer = find_text_view (GTK_WIDGET (window));
  g_assert_nonnull (composer);
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (composer), "Second line", -1);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (composer), "chat.send", NULL));
  args[1] = (gpointer) "Second line";
  spin_until (label_visible, args);
  {
    GtkTextIter start, end;
    g_autofree char *left = NULL;

    gtk_text_buffer_get_bounds (gtk_text_view_get_buffer (composer), &start, &end);
    left = gtk_text_buffer_get_text (gtk_text_view_get_buffer (composer), &start, &end, FALSE);
    g_assert_cmpstr (left, ==, "");
  }

  gtk_window_destroy (GTK_WINDOW (window));
}

/* Whether the message @text is within the list's view, at the end of the
 * line (ours) or at its start (theirs), left to right. */
static gboolean
bubble_on_side (GtkWidget  *list,
                const char *text,
                gboolean    ours)
{
  GtkLabel *label = find_visible_label (list, text);
  graphene_rect_t bounds;
  float middle = gtk_widget_get_width (list) / 2.0f;

  if (label == NULL || !gtk_widget_compute_bounds (GTK_WIDGET (label), list, &bounds) ||
      bounds.size.width <= 0 || bounds.origin.y < 0 ||
      bounds.origin.y + bounds.size.height > gtk_widget_get_height (list))
    return FALSE;
  return ours ? bounds.origin.x > middle : bounds.origin.x + bounds.size.width < middle;
}

static gboolean
bubble_on_side_cb (gpointer data)
{
  gpointer *args = data;

  return bubble_on_side (args[0], args[1], GPOINTER_TO_INT (args[2]));
}

static void
assert_bubble_side (GtkWidget  *list,
                    const char *text,
                    gboolean    ours)
{
  gpointer args[3] = { list, (gpointer) text, GINT_TO_POINTER (ours) };

  /* A row is on screen before the frame that lays it out. */
  spin_until (bubble_on_side_cb, args);
  if (!bubble_on_side (list, text, ours))
    g_error ("“%s” is not on screen at the %s of the line", text, ours ? "end" : "start");
}

static void
test_window_long_conversation (Fixture       *fixture,
                               gconstpointer  data)
{
  g_autoptr(GPtrArray) lists = g_ptr_array_new ();
  g_autoptr(GPtrArray) views = g_ptr_array_new ();
  g_autofree char *oldest_day = natter_app_format_day (fixture->oldest_ms);
  NatterWindow *window;
  GtkWidget *list = NULL;
  GtkAdjustment *adjustment;
  GListModel *history;
  gpointer args[2];
  gint64 deadline;

  window = natter_window_new (NULL, fixture->profile, fixture->service);
  gtk_window_set_default_size (GTK_WINDOW (window), 900, 600);
  gtk_window_present (GTK_WINDOW (window));
  spin_until (widget_is_mapped, window);

  collect_widgets (GTK_WIDGET (window), GTK_TYPE_LIST_VIEW, lists);
  /* The first of the chat view's lists (the second one is for search
   * results), not the group view's. */
  for (guint i = lists->len; i > 0; i--)
    if (gtk_widget_has_css_class (g_ptr_array_index (lists, i - 1), "chat-history") &&
        gtk_widget_get_ancestor (g_ptr_array_index (lists, i - 1), NATTER_TYPE_CHAT_VIEW) != NULL)
      list = g_ptr_array_index (lists, i - 1);
  g_assert_nonnull (list);

  /* The newest messages show first, at the bottom. */
  natter_window_open_conversation (window, fixture->peer_id);
  args[0] = list;
  args[1] = (gpointer) "Note 99";
  spin_until (label_visible, args);
  assert_bubble_side (list, "Note 99", TRUE);
  assert_bubble_side (list, "Note 98", FALSE);
  g_assert_null (find_visible_label (list, "Note 0"));

  /* Holding the view at the top brings the older pages one after the
   * other, down to the first message under its day. */
  adjustment = gtk_scrollable_get_vadjustment (GTK_SCROLLABLE (list));
  deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  while (!bubble_on_side (list, "Note 0", TRUE) && g_get_monotonic_time () < deadline)
    {
      gtk_adjustment_set_value (adjustment, 0.0);
      g_main_context_iteration (NULL, FALSE);
    }
  assert_bubble_side (list, "Note 0", TRUE);
  g_assert_nonnull (find_visible_label (list, oldest_day));
  assert_bubble_side (list, "Note 1", FALSE);

  /* Each message once, oldest first. */
  collect_widgets (GTK_WIDGET (window), NATTER_TYPE_CHAT_VIEW, views);
  g_assert_cmpuint (views->len, ==, 1);
  history = natter_chat_view_get_history (g_ptr_array_index (views, 0));
  g_assert_cmpuint (g_list_model_get_n_items (history), ==, LONG_HISTORY);
  for (guint i = 0; i < LONG_HISTORY; i++)
    {
      g_autoptr(NatterMessageItem) item = g_list_model_get_item (history, i);
      g_autofree char *text = g_strdup_printf ("Note %u", i);

      g_assert_cmpstr (natter_message_item_get_text (item), ==, text);
    }

  gtk_window_destroy (GTK_WINDOW (window));
}

static void
test_invite_links (void)
{
  g_autoptr(NatterIdentity) identity = natter_identity_new_random ();
  const char *peer_id = natter_identity_get_peer_id (identity);
  g_autofree char *link = natter_invite_build (peer_id, "Ada Lovelace & co");
  g_autofree char *parsed = NULL;
  g_autofree char *name = NULL;
  g_autofree char *bad = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (g_str_has_prefix (link, "natter:"));
  g_assert_true (natter_invite_parse (link, &parsed, &name, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (parsed, ==, peer_id);
  g_assert_cmpstr (name, ==, "Ada Lovelace & co");
  g_clear_pointer (&parsed, g_free);
  g_clear_pointer (&name, g_free);

  /* A bare peer ID works as well, upper case and all. */
  {
    g_autofree char *upper = g_ascii_strup (peer_id, -1);

    g_assert_true (natter_invite_parse (upper, &parsed, &name, NULL));
    g_assert_cmpstr (parsed, ==, peer_id);
    g_assert_null (name);
    g_clear_pointer (&parsed, g_free);
  }

  /* A mistyped character fails the checksum. */
  bad = g_strdup (link);
  bad[10] = bad[10] == 'a' ? 'b' : 'a';
  g_assert_false (natter_invite_parse (bad, &parsed, NULL, &error));
  g_assert_error (error, NATTER_INVITE_ERROR, NATTER_INVITE_ERROR_INVALID);
  g_assert_null (parsed);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  if (g_getenv ("DISPLAY") == NULL && g_getenv ("WAYLAND_DISPLAY") == NULL)
    {
      /* Counted as skipped, and CI (which runs under Xvfb) refuses skips. */
      g_print ("1..0 # SKIP no display: run under xvfb-run (build-aux/test.sh does)\n");
      return 77;
    }

  adw_init ();

  g_test_add ("/window/identity", Fixture, NULL,
              fixture_set_up, test_window_identity, fixture_tear_down);
  g_test_add ("/window/conversations", Fixture, NULL,
              fixture_set_up, test_window_conversations, fixture_tear_down);
  g_test_add ("/window/long-conversation", Fixture, NULL,
              fixture_set_up_long, test_window_long_conversation, fixture_tear_down);
  g_test_add_func ("/window/invite-links", test_invite_links);

  return g_test_run ();
}
