/* natter-bench-ui.c: a long conversation in the real window
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* Fills a profile's store with one conversation of --messages messages
 * (100,000 by default) with the synchronous NatterDb layer, starts the
 * messaging service on it with no network, opens the real NatterWindow and
 * measures:
 *
 *  - open: from natter_window_open_conversation() to the first frame that
 *    shows message rows of the newest page;
 *  - paging: scrolling to the top --pages times, each older page loaded on
 *    the store's worker; the longest main-loop dispatch while it happens
 *    (what input would wait for at worst);
 *  - resident memory (VmRSS) once the conversation is open, and after
 *    paging.
 *
 * It needs a display (Xvfb is fine); GSK_RENDERER decides the renderer. */

#include "config.h"

#define UNREAD_AT_END 20

#include <adwaita.h>
#include <glib/gstdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "natter-bench.h"
#include "natter-chat-view-private.h"
#include "natter-db.h"
#include "natter-history-model.h"
#include "natter-identity.h"
#include "natter-message-row.h"
#include "natter-messaging-service.h"
#include "natter-profile.h"
#include "natter-window.h"

#define BATCH 5000

static double
rss_mib (void)
{
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return -1.0;
  line = strstr (status, "VmRSS:");
  if (line == NULL)
    return -1.0;
  return g_ascii_strtod (line + 6, NULL) / 1024.0;
}

static void
collect (GtkWidget *widget,
         GType      type,
         GPtrArray *out)
{
  if (G_TYPE_CHECK_INSTANCE_TYPE (widget, type))
    g_ptr_array_add (out, widget);
  for (GtkWidget *child = gtk_widget_get_first_child (widget); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    collect (child, type, out);
}

static guint
mapped_message_rows (GtkWidget *root)
{
  g_autoptr(GPtrArray) rows = g_ptr_array_new ();
  guint n = 0;

  collect (root, NATTER_TYPE_MESSAGE_ROW, rows);
  for (guint i = 0; i < rows->len; i++)
    if (gtk_widget_get_mapped (g_ptr_array_index (rows, i)) &&
        natter_message_row_get_item (g_ptr_array_index (rows, i)) != NULL)
      n++;
  return n;
}

static gboolean
fill_store (const char  *path,
            const char  *self_id,
            const char  *peer_id,
            guint        n_messages,
            GError     **error)
{
  NatterDb *db = natter_db_open (path, error);
  g_autoptr(NatterContact) contact = NULL;
  gint64 conversation_id;
  gint64 now = g_get_real_time () / 1000;
  gboolean ok = FALSE;

  if (db == NULL)
    return FALSE;
  contact = natter_contact_new (peer_id, "Bench Contact", NATTER_CONTACT_ACCEPTED, FALSE, now);
  if (!natter_db_upsert_contact (db, contact, error))
    goto out;
  conversation_id = natter_db_ensure_conversation (db, NATTER_CONVERSATION_DIRECT, peer_id,
                                                   "Bench Contact", error);
  if (conversation_id == 0)
    goto out;

  for (guint done = 0; done < n_messages; done += BATCH)
    {
      g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_message_free);

      for (guint i = done; i < MIN (done + BATCH, n_messages); i++)
        {
          NatterStoreMessage *m = natter_store_message_new ();
          gboolean out_dir = i % 3 == 0;

          m->msg_id = g_strdup_printf ("msg_bench_%08u", i);
          m->conversation_id = conversation_id;
          m->sender = g_strdup (out_dir ? self_id : peer_id);
          m->direction = out_dir ? NATTER_STORE_DIRECTION_OUT : NATTER_STORE_DIRECTION_IN;
          m->type = g_strdup ("text");
          m->body = g_strdup_printf ("Message %u of the long conversation: the quick brown fox "
                                     "jumps over the lazy dog%s", i,
                                     i % 7 == 0 ? ", and then it does it again, just to make the "
                                     "bubble wrap over two lines in a normal window." : ".");
          /* A hundred days, newest last: day separators along the way. */
          m->timestamp = now - (gint64) (n_messages - i) * (100 * 24 * 3600 * G_GINT64_CONSTANT (1000)) / n_messages;
          m->sequence = i + 1;
          /* A history that has been read, but for the last few messages
           * (opening it marks those read and sends their receipts). */
          m->state = out_dir || i + UNREAD_AT_END < n_messages
                     ? NATTER_STORE_MESSAGE_READ : NATTER_STORE_MESSAGE_DELIVERED;
          g_ptr_array_add (batch, m);
        }
      if (!natter_db_insert_messages (db, batch, NULL, error))
        goto out;
    }
  ok = natter_db_flush_index (db, error);
out:
  natter_db_close (db);
  return ok;
}

static void
on_done (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  gboolean *done = user_data;
  g_autoptr(GError) error = NULL;

  if (g_task_get_source_tag (G_TASK (result)) == natter_messaging_service_start_async &&
      !natter_messaging_service_start_finish (NATTER_MESSAGING_SERVICE (source), result, &error))
    g_printerr ("natter-bench ui: %s\n", error->message);
  *done = TRUE;
}

static void
on_frame (GdkFrameClock *clock,
          gpointer       user_data)
{
  guint *frames = user_data;

  (*frames)++;
}

static void
remove_tree (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);
      remove_tree (child);
    }
  g_remove (path);
}

int
natter_bench_ui (int      argc,
                 char   **argv,
                 gboolean json)
{
  int n_messages = 100000;
  int n_pages = 40;
  GOptionEntry entries[] = {
    { "messages", 'n', 0, G_OPTION_ARG_INT, &n_messages, "Messages in the conversation (100000)", "N" },
    { "pages", 'p', 0, G_OPTION_ARG_INT, &n_pages, "Older pages to scroll through (40)", "N" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterBenchReport) report = NULL;
  g_autoptr(NatterIdentity) peer = NULL;
  g_autoptr(NatterProfile) profile = NULL;
  g_autoptr(NatterMessagingService) service = NULL;
  g_autofree char *tmpdir = NULL;
  g_autofree char *profile_dir = NULL;
  NatterWindow *window;
  NatterChatView *chat = NULL;
  GdkFrameClock *clock;
  guint frames = 0;
  gulong frame_handler;
  gboolean done = FALSE;
  double start, fill_s, open_s, rss_before, rss_open, rss_paged, worst_dispatch = 0.0;
  double paging_s;
  guint loaded;

  context = g_option_context_new ("- a long conversation in the real window");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("natter-bench ui: %s\n", error->message);
      return 2;
    }
  if (n_messages < 1 || n_pages < 0)
    {
      g_printerr ("natter-bench ui: counts must be positive\n");
      return 2;
    }
  if (!gtk_init_check ())
    {
      g_printerr ("natter-bench ui: no display (run it under xvfb-run)\n");
      return 2;
    }
  adw_init ();
  g_setenv ("NATTER_INTERFACES", "lo", FALSE);

  tmpdir = g_dir_make_tmp ("natter-bench-ui-XXXXXX", &error);
  profile_dir = g_build_filename (tmpdir, "profile", NULL);
  profile = natter_profile_open (profile_dir, NULL, &error);
  if (profile == NULL)
    {
      g_printerr ("natter-bench ui: %s\n", error->message);
      return 1;
    }
  peer = natter_identity_new_random ();

  /* The store is filled by a child process, so that the memory SQLite and
   * malloc keep from filling it is not counted as the window's. */
  start = natter_bench_now ();
  {
    pid_t child = fork ();
    int wstatus = 0;

    if (child == 0)
      _exit (fill_store (natter_profile_get_database_path (profile),
                         natter_identity_get_peer_id (natter_profile_get_identity (profile)),
                         natter_identity_get_peer_id (peer), n_messages, &error) ? 0 : 1);
    if (child < 0 || waitpid (child, &wstatus, 0) < 0 || !WIFEXITED (wstatus) || WEXITSTATUS (wstatus) != 0)
      {
        g_printerr ("natter-bench ui: could not fill the store\n");
        return 1;
      }
  }
  fill_s = natter_bench_now () - start;

  service = natter_messaging_service_new (profile);
  g_object_set (service, "lan-discovery", FALSE, "relay", FALSE, NULL);
  natter_messaging_service_start_async (service, NULL, on_done, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);

  window = natter_window_new (NULL, profile, service);
  gtk_window_set_default_size (GTK_WINDOW (window), 960, 720);
  gtk_window_present (GTK_WINDOW (window));
  while (!gtk_widget_get_mapped (GTK_WIDGET (window)))
    g_main_context_iteration (NULL, TRUE);
  /* Let the first frames and the conversation list settle. */
  start = natter_bench_now ();
  while (natter_bench_now () - start < 1.0)
    g_main_context_iteration (NULL, FALSE);
  rss_before = rss_mib ();

  {
    g_autoptr(GPtrArray) views = g_ptr_array_new ();

    collect (GTK_WIDGET (window), NATTER_TYPE_CHAT_VIEW, views);
    chat = g_ptr_array_index (views, 0);
  }
  clock = gtk_widget_get_frame_clock (GTK_WIDGET (window));
  frame_handler = g_signal_connect (clock, "after-paint", G_CALLBACK (on_frame), &frames);

  /* Open: until a frame has been painted with rows of the newest page. */
  start = natter_bench_now ();
  natter_window_open_conversation (window, natter_identity_get_peer_id (peer));
  for (;;)
    {
      guint seen = frames;

      g_main_context_iteration (NULL, TRUE);
      if (frames != seen && mapped_message_rows (GTK_WIDGET (window)) > 0)
        break;
      if (natter_bench_now () - start > 30.0)
        {
          g_printerr ("natter-bench ui: the conversation did not open in 30 s\n");
          return 1;
        }
    }
  open_s = natter_bench_now () - start;
  rss_open = rss_mib ();

  /* Paging: keep the view at the top, as a user dragging the scrollbar up
   * would, until --pages more pages are in. */
  start = natter_bench_now ();
  {
    GtkAdjustment *adjustment = gtk_scrolled_window_get_vadjustment (chat->scroller);
    guint target = MIN ((guint) n_messages, NATTER_HISTORY_PAGE_SIZE * (guint) (n_pages + 1));

    while (g_list_model_get_n_items (chat->history) < target &&
           natter_bench_now () - start < 120.0)
      {
        double t0;

        gtk_adjustment_set_value (adjustment, 0.0);
        t0 = natter_bench_now ();
        g_main_context_iteration (NULL, TRUE);
        worst_dispatch = MAX (worst_dispatch, natter_bench_now () - t0);
      }
  }
  paging_s = natter_bench_now () - start;
  loaded = g_list_model_get_n_items (chat->history);
  rss_paged = rss_mib ();

  g_signal_handler_disconnect (clock, frame_handler);
  report = natter_bench_report_new ("ui");
  natter_bench_report_add (report, "messages", n_messages, "messages in the conversation");
  natter_bench_report_add (report, "fill_s", fill_s, "fill the store (s, not part of the UI)");
  natter_bench_report_add (report, "open_ms", open_s * 1000.0, "open to first painted page (ms)");
  natter_bench_report_add (report, "pages_loaded", (loaded / NATTER_HISTORY_PAGE_SIZE), "pages in the model after scrolling up");
  natter_bench_report_add (report, "paging_ms_per_page",
                           loaded > NATTER_HISTORY_PAGE_SIZE ? paging_s * 1000.0 / ((loaded / NATTER_HISTORY_PAGE_SIZE) - 1) : 0.0,
                           "scrolling up, per older page (ms)");
  natter_bench_report_add (report, "worst_dispatch_ms", worst_dispatch * 1000.0,
                           "longest main-loop dispatch while paging (ms)");
  natter_bench_report_add (report, "rss_window_mib", rss_before, "resident memory, window open (MiB)");
  natter_bench_report_add (report, "rss_open_mib", rss_open, "resident memory, conversation open (MiB)");
  natter_bench_report_add (report, "rss_paged_mib", rss_paged, "resident memory, after paging (MiB)");
  natter_bench_report_add_text (report, "renderer", g_getenv ("GSK_RENDERER") ? g_getenv ("GSK_RENDERER") : "default",
                                "GSK renderer");
  natter_bench_report_print (report, json);

  gtk_window_destroy (GTK_WINDOW (window));
  done = FALSE;
  natter_messaging_service_stop_async (service, NULL, on_done, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
  g_clear_object (&service);
  g_clear_object (&profile);
  remove_tree (tmpdir);
  return 0;
}
