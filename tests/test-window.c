/* test-window.c: the main window shows what the user needs to see
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <adwaita.h>
#include <glib/gstdio.h>

#include "natter-conversation.h"
#include "natter-profile.h"
#include "natter-window.h"

typedef struct
{
  char *dir;
  NatterProfile *profile;
} Fixture;

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
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
  g_clear_object (&fixture->profile);
  remove_tree (fixture->dir);
  g_free (fixture->dir);
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
  g_autoptr(GListStore) conversations = g_list_store_new (NATTER_TYPE_CONVERSATION);
  NatterIdentity *identity = natter_profile_get_identity (fixture->profile);
  const char *peer_id = natter_identity_get_peer_id (identity);
  NatterWindow *window;
  GtkWidget *copy_button;

  window = natter_window_new (NULL, fixture->profile, G_LIST_MODEL (conversations));
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
test_window_conversations (Fixture       *fixture,
                           gconstpointer  data)
{
  g_autoptr(GListStore) conversations = g_list_store_new (NATTER_TYPE_CONVERSATION);
  g_autoptr(NatterConversation) conversation = NULL;
  NatterWindow *window;
  gpointer args[2];

  window = natter_window_new (NULL, fixture->profile, G_LIST_MODEL (conversations));
  gtk_window_present (GTK_WINDOW (window));
  spin_until (widget_is_mapped, window);

  conversation = g_object_new (NATTER_TYPE_CONVERSATION, "title", "Charles Babbage", NULL);
  g_list_store_append (conversations, conversation);

  /* The list replaces the empty page and shows the conversation. */
  args[0] = window;
  args[1] = (gpointer) "Charles Babbage";
  spin_until (label_visible, args);
  g_assert_nonnull (find_visible_label (GTK_WIDGET (window), "Charles Babbage"));
  g_assert_null (find_visible_label (GTK_WIDGET (window), "No Conversations"));

  gtk_window_destroy (GTK_WINDOW (window));
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

  return g_test_run ();
}
