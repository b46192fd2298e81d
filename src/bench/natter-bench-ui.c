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
 *    shows message rows of the newest page; the first time (cold caches),
 *    then --opens more times, switching to a short second conversation in
 *    between, for the spread;
 *  - paging: scrolling to the top --pages times, each older page loaded on
 *    the store's worker; the longest main-loop dispatch while it happens
 *    (what input would wait for at worst; waiting in poll() is not counted),
 *    in wall-clock and in main-thread CPU time, and how many took over
 *    50 ms;
 *  - resident memory (VmRSS) once the conversation is open, and after
 *    paging;
 *  - a baseline in the same run: the same measurements on a bare
 *    GtkListView whose rows are plain wrapping GtkLabels with the same
 *    texts, in a window of the same size, pages inserted at its top as
 *    soon as the view comes near it.  What GTK itself needs for as many
 *    rows, on this machine at this moment.
 *
 * It needs a display (Xvfb is fine); GSK_RENDERER decides the renderer. */

#include "config.h"

#define UNREAD_AT_END 20

#include <adwaita.h>
#include <glib/gstdio.h>
#include <sys/wait.h>
#include <time.h>
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
/* Where the chat view asks for an older page (LOAD_AHEAD_PX there). */
#define BASELINE_LOAD_AHEAD_PX 600
#define STALL_MS 50.0

static char *
message_text (guint i)
{
  return g_strdup_printf ("Message %u of the long conversation: the quick brown fox "
                          "jumps over the lazy dog%s", i,
                          i % 7 == 0 ? ", and then it does it again, just to make the "
                          "bubble wrap over two lines in a normal window." : ".");
}

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

/* CPU time of the calling thread, in seconds: what the main loop itself
 * spent, whatever else the machine was doing. */
static double
thread_cpu_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Message rows (or, for the baseline, labels) shown with content. */
static guint
mapped_rows (GtkWidget *root,
             GType      type)
{
  g_autoptr(GPtrArray) rows = g_ptr_array_new ();
  guint n = 0;

  collect (root, type, rows);
  for (guint i = 0; i < rows->len; i++)
    {
      GtkWidget *row = g_ptr_array_index (rows, i);

      if (!gtk_widget_get_mapped (row))
        continue;
      if (type == NATTER_TYPE_MESSAGE_ROW ? natter_message_row_get_item (NATTER_MESSAGE_ROW (row)) != NULL
                                          : gtk_label_get_text (GTK_LABEL (row))[0] != '\0')
        n++;
    }
  return n;
}

/* A short conversation to switch to between two opens of the long one. */
static gboolean
fill_other (NatterDb    *db,
            const char  *self_id,
            const char  *other_id,
            gint64       now,
            GError     **error)
{
  g_autoptr(NatterContact) contact = natter_contact_new (other_id, "Other Contact",
                                                         NATTER_CONTACT_ACCEPTED, FALSE, now);
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_message_free);
  gint64 conversation_id;

  if (!natter_db_upsert_contact (db, contact, error))
    return FALSE;
  conversation_id = natter_db_ensure_conversation (db, NATTER_CONVERSATION_DIRECT, other_id,
                                                   "Other Contact", error);
  if (conversation_id == 0)
    return FALSE;
  for (guint i = 0; i < 3; i++)
    {
      NatterStoreMessage *m = natter_store_message_new ();

      m->msg_id = g_strdup_printf ("msg_other_%u", i);
      m->conversation_id = conversation_id;
      m->sender = g_strdup (i == 1 ? self_id : other_id);
      m->direction = i == 1 ? NATTER_STORE_DIRECTION_OUT : NATTER_STORE_DIRECTION_IN;
      m->type = g_strdup ("text");
      m->body = g_strdup_printf ("A short conversation, message %u.", i);
      m->timestamp = now - (3 - i) * 60000;
      m->sequence = i + 1;
      m->state = NATTER_STORE_MESSAGE_READ;
      g_ptr_array_add (batch, m);
    }
  return natter_db_insert_messages (db, batch, NULL, error);
}

static gboolean
fill_store (const char  *path,
            const char  *self_id,
            const char  *peer_id,
            const char  *other_id,
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
  if (!natter_db_upsert_contact (db, contact, error) ||
      !fill_other (db, self_id, other_id, now, error))
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
          m->body = message_text (i);
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

/* Runs the main loop until a frame has been painted that shows rows of
 * @type under @root; returns the seconds since @start, or a negative value
 * after 30 s.  *@cpu gets the main thread's CPU seconds since @cpu_start. */
static double
wait_for_rows (GtkWidget *root,
               GType      type,
               double     start,
               double     cpu_start,
               double    *cpu)
{
  GdkFrameClock *clock = gtk_widget_get_frame_clock (root);
  guint frames = 0;
  gulong handler = g_signal_connect (clock, "after-paint", G_CALLBACK (on_frame), &frames);
  double elapsed = -1.0;

  for (;;)
    {
      guint seen = frames;

      g_main_context_iteration (NULL, TRUE);
      if (frames != seen && mapped_rows (root, type) > 0)
        {
          elapsed = natter_bench_now () - start;
          *cpu = thread_cpu_now () - cpu_start;
          break;
        }
      if (natter_bench_now () - start > 30.0)
        break;
    }
  g_signal_handler_disconnect (clock, handler);
  return elapsed;
}

static void
settle (double seconds)
{
  double start = natter_bench_now ();

  while (natter_bench_now () - start < seconds)
    g_main_context_iteration (NULL, FALSE);
}

typedef struct
{
  double   seconds;
  double   worst_dispatch_s;
  double   worst_dispatch_cpu_s;  /* the most CPU one dispatch took */
  guint    stalls;             /* dispatches longer than STALL_MS */
  guint    loaded;
} Paging;

/* One iteration of the default main context, as g_main_context_iteration()
 * does it, but timing only the dispatch: the time spent waiting in poll()
 * for something to happen (a page from the store's worker) is time input
 * would be handled at once, not a stall. */
static void
dispatch_once (double *wall_s,
               double *cpu_s)
{
  GMainContext *context = g_main_context_default ();
  GPollFD fds[64];
  int max_priority, timeout, n_fds;
  double t0, cpu0;

  if (!g_main_context_acquire (context))
    g_error ("natter-bench ui: the main context belongs to another thread");
  g_main_context_prepare (context, &max_priority);
  n_fds = g_main_context_query (context, max_priority, &timeout, fds, G_N_ELEMENTS (fds));
  if (n_fds > (int) G_N_ELEMENTS (fds))
    g_error ("natter-bench ui: %d file descriptors to poll", n_fds);
  g_main_context_get_poll_func (context) (fds, n_fds, timeout);
  g_main_context_check (context, max_priority, fds, n_fds);
  t0 = natter_bench_now ();
  cpu0 = thread_cpu_now ();
  g_main_context_dispatch (context);
  *wall_s = natter_bench_now () - t0;
  *cpu_s = thread_cpu_now () - cpu0;
  g_main_context_release (context);
}

/* Keeps @scroller at the top, as a user dragging the scrollbar up would,
 * until @model holds @target items; @feed (if not NULL) is called before
 * each main-loop iteration, to insert pages itself (counted with that
 * iteration's dispatch). */
static Paging
page_to_top (GtkScrolledWindow *scroller,
             GListModel        *model,
             guint              target,
             void             (*feed) (GtkAdjustment *, gpointer),
             gpointer           feed_data)
{
  GtkAdjustment *adjustment = gtk_scrolled_window_get_vadjustment (scroller);
  Paging paging = { 0 };
  double start = natter_bench_now ();

  while (g_list_model_get_n_items (model) < target && natter_bench_now () - start < 120.0)
    {
      double t0, cpu0, fed = 0.0, fed_cpu = 0.0, dispatch, dispatch_cpu;

      gtk_adjustment_set_value (adjustment, 0.0);
      if (feed != NULL)
        {
          t0 = natter_bench_now ();
          cpu0 = thread_cpu_now ();
          feed (adjustment, feed_data);
          fed = natter_bench_now () - t0;
          fed_cpu = thread_cpu_now () - cpu0;
        }
      dispatch_once (&dispatch, &dispatch_cpu);
      dispatch += fed;
      dispatch_cpu += fed_cpu;
      paging.worst_dispatch_s = MAX (paging.worst_dispatch_s, dispatch);
      paging.worst_dispatch_cpu_s = MAX (paging.worst_dispatch_cpu_s, dispatch_cpu);
      if (dispatch * 1000.0 > STALL_MS)
        paging.stalls++;
    }
  paging.seconds = natter_bench_now () - start;
  paging.loaded = g_list_model_get_n_items (model);
  return paging;
}

/* {{{ Baseline: a bare GtkListView of wrapping labels */

typedef struct
{
  GtkStringList *strings;
  guint          next;         /* the message whose text comes next, going back */
} Baseline;

static void
baseline_setup (GtkSignalListItemFactory *factory,
                GtkListItem              *list_item,
                gpointer                  user_data)
{
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_list_item_set_child (list_item, label);
}

static void
baseline_bind (GtkSignalListItemFactory *factory,
               GtkListItem              *list_item,
               gpointer                  user_data)
{
  gtk_label_set_label (GTK_LABEL (gtk_list_item_get_child (list_item)),
                       gtk_string_object_get_string (gtk_list_item_get_item (list_item)));
}

/* The next older page, at the top. */
static void
baseline_prepend_page (Baseline *baseline)
{
  g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  guint first = baseline->next > NATTER_HISTORY_PAGE_SIZE ? baseline->next - NATTER_HISTORY_PAGE_SIZE : 0;

  for (guint i = first; i < baseline->next; i++)
    g_ptr_array_add (texts, message_text (i));
  g_ptr_array_add (texts, NULL);
  gtk_string_list_splice (baseline->strings, 0, 0, (const char * const *) texts->pdata);
  baseline->next = first;
}

static void
baseline_feed (GtkAdjustment *adjustment,
               gpointer       user_data)
{
  Baseline *baseline = user_data;

  if (baseline->next > 0 && gtk_adjustment_get_value (adjustment) < BASELINE_LOAD_AHEAD_PX)
    baseline_prepend_page (baseline);
}

/* }}} */

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

/* Median, 95th percentile and worst of @n figures (sorted in place). */
static void
add_spread (NatterBenchReport *report,
            const char        *key,
            const char        *what,
            double            *values,
            guint              n)
{
  g_autofree char *median_key = g_strdup_printf ("%s_median_ms", key);
  g_autofree char *p95_key = g_strdup_printf ("%s_p95_ms", key);
  g_autofree char *max_key = g_strdup_printf ("%s_max_ms", key);
  g_autofree char *median_what = g_strdup_printf ("%s, median of %u (ms)", what, n);
  g_autofree char *p95_what = g_strdup_printf ("%s, 95th percentile (ms)", what);
  g_autofree char *max_what = g_strdup_printf ("%s, worst (ms)", what);

  natter_bench_report_add (report, median_key, natter_bench_percentile (values, n, 50.0), median_what);
  natter_bench_report_add (report, p95_key, natter_bench_percentile (values, n, 95.0), p95_what);
  natter_bench_report_add (report, max_key, natter_bench_percentile (values, n, 100.0), max_what);
}

int
natter_bench_ui (int      argc,
                 char   **argv,
                 gboolean json)
{
  int n_messages = 100000;
  int n_pages = 40;
  int n_opens = 20;
  GOptionEntry entries[] = {
    { "messages", 'n', 0, G_OPTION_ARG_INT, &n_messages, "Messages in the conversation (100000)", "N" },
    { "pages", 'p', 0, G_OPTION_ARG_INT, &n_pages, "Older pages to scroll through (40)", "N" },
    { "opens", 'o', 0, G_OPTION_ARG_INT, &n_opens, "Opens after the first one, for the spread (20)", "N" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterBenchReport) report = NULL;
  g_autoptr(NatterIdentity) peer = NULL;
  g_autoptr(NatterIdentity) other = NULL;
  g_autoptr(NatterProfile) profile = NULL;
  g_autoptr(NatterMessagingService) service = NULL;
  g_autofree char *tmpdir = NULL;
  g_autofree char *profile_dir = NULL;
  g_autofree double *opens = NULL;
  g_autofree double *baseline_opens = NULL;
  g_autofree double *open_cpus = NULL;
  g_autofree double *baseline_open_cpus = NULL;
  NatterWindow *window;
  NatterChatView *chat = NULL;
  gboolean done = FALSE;
  double start, cpu_start, cpu = 0.0, fill_s, first_open_s, first_open_cpu_s = 0.0;
  double rss_before, rss_open, rss_paged;
  Paging paging, baseline_paging;
  guint target;

  context = g_option_context_new ("- a long conversation in the real window");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("natter-bench ui: %s\n", error->message);
      return 2;
    }
  if (n_messages < 1 || n_pages < 0 || n_opens < 1 || n_opens > 1000)
    {
      g_printerr ("natter-bench ui: counts must be positive (and --opens at most 1000)\n");
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
  other = natter_identity_new_random ();

  /* The store is filled by a child process, so that the memory SQLite and
   * malloc keep from filling it is not counted as the window's. */
  start = natter_bench_now ();
  {
    pid_t child = fork ();
    int wstatus = 0;

    if (child == 0)
      _exit (fill_store (natter_profile_get_database_path (profile),
                         natter_identity_get_peer_id (natter_profile_get_identity (profile)),
                         natter_identity_get_peer_id (peer), natter_identity_get_peer_id (other),
                         n_messages, &error) ? 0 : 1);
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
  settle (1.0);
  rss_before = rss_mib ();

  {
    g_autoptr(GPtrArray) views = g_ptr_array_new ();

    collect (GTK_WIDGET (window), NATTER_TYPE_CHAT_VIEW, views);
    chat = g_ptr_array_index (views, 0);
  }

  /* Open: until a frame has been painted with rows of the newest page.
   * The first time finds every cache cold. */
  start = natter_bench_now ();
  cpu_start = thread_cpu_now ();
  natter_window_open_conversation (window, natter_identity_get_peer_id (peer));
  first_open_s = wait_for_rows (GTK_WIDGET (window), NATTER_TYPE_MESSAGE_ROW, start, cpu_start, &first_open_cpu_s);
  if (first_open_s < 0)
    {
      g_printerr ("natter-bench ui: the conversation did not open in 30 s\n");
      return 1;
    }
  rss_open = rss_mib ();

  /* Then again, from the short conversation each time. */
  opens = g_new0 (double, n_opens);
  open_cpus = g_new0 (double, n_opens);
  for (int i = 0; i < n_opens; i++)
    {
      natter_window_open_conversation (window, natter_identity_get_peer_id (other));
      if (wait_for_rows (GTK_WIDGET (window), NATTER_TYPE_MESSAGE_ROW, natter_bench_now (), thread_cpu_now (), &cpu) < 0)
        {
          g_printerr ("natter-bench ui: the short conversation did not open in 30 s\n");
          return 1;
        }
      settle (0.1);
      start = natter_bench_now ();
      cpu_start = thread_cpu_now ();
      natter_window_open_conversation (window, natter_identity_get_peer_id (peer));
      opens[i] = wait_for_rows (GTK_WIDGET (window), NATTER_TYPE_MESSAGE_ROW, start, cpu_start, &cpu) * 1000.0;
      open_cpus[i] = cpu * 1000.0;
      if (opens[i] < 0)
        {
          g_printerr ("natter-bench ui: the conversation did not open in 30 s\n");
          return 1;
        }
      settle (0.1);
    }

  /* Paging up from the newest page. */
  target = MIN ((guint) n_messages, NATTER_HISTORY_PAGE_SIZE * (guint) (n_pages + 1));
  paging = page_to_top (chat->scroller, chat->history, target, NULL, NULL);
  rss_paged = rss_mib ();

  gtk_window_destroy (GTK_WINDOW (window));
  settle (0.2);

  /* The baseline, in a window of its own of the same size. */
  baseline_opens = g_new0 (double, n_opens + 1);
  baseline_open_cpus = g_new0 (double, n_opens + 1);
  {
    g_autoptr(GtkListItemFactory) factory = gtk_signal_list_item_factory_new ();
    GtkWidget *bare = gtk_window_new ();
    GtkWidget *scroller = gtk_scrolled_window_new ();
    GtkWidget *list = gtk_list_view_new (NULL, g_object_ref (factory));
    Baseline baseline = { NULL, 0 };

    g_signal_connect (factory, "setup", G_CALLBACK (baseline_setup), NULL);
    g_signal_connect (factory, "bind", G_CALLBACK (baseline_bind), NULL);
    gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scroller), GTK_POLICY_NEVER, GTK_POLICY_AUTOMATIC);
    gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (scroller), list);
    gtk_window_set_child (GTK_WINDOW (bare), scroller);
    gtk_window_set_default_size (GTK_WINDOW (bare), 960, 720);
    gtk_window_present (GTK_WINDOW (bare));
    while (!gtk_widget_get_mapped (bare))
      g_main_context_iteration (NULL, TRUE);
    settle (0.5);

    for (int i = 0; i <= n_opens; i++)
      {
        g_autoptr(GtkNoSelection) selection = NULL;

        gtk_list_view_set_model (GTK_LIST_VIEW (list), NULL);
        settle (0.1);
        g_clear_object (&baseline.strings);
        baseline.strings = gtk_string_list_new (NULL);
        baseline.next = (guint) n_messages;
        start = natter_bench_now ();
        cpu_start = thread_cpu_now ();
        baseline_prepend_page (&baseline);
        selection = gtk_no_selection_new (g_object_ref (G_LIST_MODEL (baseline.strings)));
        gtk_list_view_set_model (GTK_LIST_VIEW (list), GTK_SELECTION_MODEL (selection));
        baseline_opens[i] = wait_for_rows (list, GTK_TYPE_LABEL, start, cpu_start, &cpu) * 1000.0;
        baseline_open_cpus[i] = cpu * 1000.0;
        if (baseline_opens[i] < 0)
          {
            g_printerr ("natter-bench ui: the baseline list did not show in 30 s\n");
            return 1;
          }
        /* Newest at the bottom, as in the chat view. */
        gtk_adjustment_set_value (gtk_scrolled_window_get_vadjustment (GTK_SCROLLED_WINDOW (scroller)),
                                  G_MAXDOUBLE);
        settle (0.1);
      }
    baseline_paging = page_to_top (GTK_SCROLLED_WINDOW (scroller), G_LIST_MODEL (baseline.strings),
                                   target, baseline_feed, &baseline);
    gtk_window_destroy (GTK_WINDOW (bare));
    g_clear_object (&baseline.strings);
  }

  report = natter_bench_report_new ("ui");
  natter_bench_report_add (report, "messages", n_messages, "messages in the conversation");
  natter_bench_report_add (report, "fill_s", fill_s, "fill the store (s, not part of the UI)");
  natter_bench_report_add (report, "open_ms", first_open_s * 1000.0, "open to first painted page, first time (ms)");
  natter_bench_report_add (report, "open_cpu_ms", first_open_cpu_s * 1000.0,
                           "main thread's CPU for it (ms)");
  add_spread (report, "open", "open again", opens, n_opens);
  add_spread (report, "open_cpu", "main thread's CPU for it", open_cpus, n_opens);
  natter_bench_report_add (report, "baseline_open_first_ms", baseline_opens[0],
                           "baseline: bare list of labels shows a page, first time (ms)");
  add_spread (report, "baseline_open", "baseline: bare list again", baseline_opens + 1, n_opens);
  add_spread (report, "baseline_open_cpu", "baseline: main thread's CPU for it", baseline_open_cpus + 1, n_opens);
  natter_bench_report_add (report, "pages_loaded", (paging.loaded / NATTER_HISTORY_PAGE_SIZE), "pages in the model after scrolling up");
  natter_bench_report_add (report, "paging_ms_per_page",
                           paging.loaded > NATTER_HISTORY_PAGE_SIZE ? paging.seconds * 1000.0 / ((paging.loaded / NATTER_HISTORY_PAGE_SIZE) - 1) : 0.0,
                           "scrolling up, per older page (ms)");
  natter_bench_report_add (report, "worst_dispatch_ms", paging.worst_dispatch_s * 1000.0,
                           "longest main-loop dispatch while paging (ms)");
  natter_bench_report_add (report, "worst_dispatch_cpu_ms", paging.worst_dispatch_cpu_s * 1000.0,
                           "most CPU in one dispatch while paging (ms)");
  natter_bench_report_add (report, "stalls", paging.stalls, "dispatches over 50 ms while paging");
  natter_bench_report_add (report, "baseline_worst_dispatch_ms", baseline_paging.worst_dispatch_s * 1000.0,
                           "baseline: longest dispatch, pages inserted at the top (ms)");
  natter_bench_report_add (report, "baseline_worst_dispatch_cpu_ms", baseline_paging.worst_dispatch_cpu_s * 1000.0,
                           "baseline: most CPU in one dispatch (ms)");
  natter_bench_report_add (report, "baseline_stalls", baseline_paging.stalls,
                           "baseline: dispatches over 50 ms while paging");
  natter_bench_report_add (report, "rss_window_mib", rss_before, "resident memory, window open (MiB)");
  natter_bench_report_add (report, "rss_open_mib", rss_open, "resident memory, conversation open (MiB)");
  natter_bench_report_add (report, "rss_paged_mib", rss_paged, "resident memory, after paging (MiB)");
  natter_bench_report_add_text (report, "renderer", g_getenv ("GSK_RENDERER") ? g_getenv ("GSK_RENDERER") : "default",
                                "GSK renderer");
  natter_bench_report_print (report, json);

  done = FALSE;
  natter_messaging_service_stop_async (service, NULL, on_done, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
  g_clear_object (&service);
  g_clear_object (&profile);
  remove_tree (tmpdir);
  return 0;
}
