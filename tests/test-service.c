/* test-service.c: two NatterMessagingServices talking through a real server
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Usage: test-service PATH-TO-natter-rendezvous [GTest options]
 * Two profiles in temporary folders, in one process, signaled through a
 * natter-rendezvous process on 127.0.0.1; ICE on lo only.
 */

#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include <glib/gstdio.h>

#include "natter-history-model.h"
#include "natter-messaging-service.h"

static const char *server_path;

static void
die_with_parent (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static gboolean
timeout_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

static gboolean
wait_for (gboolean (*done) (gpointer),
          gpointer   data,
          double     seconds)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add ((guint) (seconds * 1000), timeout_cb, &timed_out);

  while (!done (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  return done (data);
}

typedef struct
{
  GSubprocess *process;
  char        *url;
} Server;

static void
server_start (Server *server)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *line = NULL;
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);

  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  server->process = g_subprocess_launcher_spawn (launcher, &error, server_path,
                                                 "--listen", "127.0.0.1", "--port", "0", NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (server->process));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  server->url = g_strdup_printf ("ws://127.0.0.1:%s/v1", strrchr (line, ':') + 1);
}

static void
server_stop (Server *server)
{
  g_subprocess_force_exit (server->process);
  g_subprocess_wait (server->process, NULL, NULL);
  g_clear_object (&server->process);
  g_clear_pointer (&server->url, g_free);
}

/* One side: a profile, its service and what it has seen. */
typedef struct
{
  char                   *dir;
  NatterProfile          *profile;
  NatterMessagingService *service;
  GHashTable             *states;     /* msg_id -> last state */
  GHashTable             *first_states; /* msg_id -> the first state signalled */
  GPtrArray              *received;   /* NatterMessageItem */
  gboolean                typing;
  guint                   typing_events;
  NatterPresence          presence;
  NatterPeerState         peer_state;
  gboolean                done;
  char                   *result;
} Side;

static void
on_state (NatterMessagingService *service,
          const char             *msg_id,
          const char             *peer_id,
          const char             *state,
          const char             *via,
          Side                   *side)
{
  g_hash_table_insert (side->states, g_strdup (msg_id), g_strdup (state));
  if (!g_hash_table_contains (side->first_states, msg_id))
    g_hash_table_insert (side->first_states, g_strdup (msg_id), g_strdup (state));
}

static void
on_received (NatterMessagingService *service,
             NatterMessageItem      *item,
             Side                   *side)
{
  g_ptr_array_add (side->received, g_object_ref (item));
}

static void
on_typing (NatterMessagingService *service,
           const char             *peer_id,
           gboolean                typing,
           Side                   *side)
{
  side->typing = typing;
  side->typing_events++;
}

static void
on_presence (NatterMessagingService *service,
             const char             *peer_id,
             NatterPresence          presence,
             Side                   *side)
{
  side->presence = presence;
}

static void
on_peer_state (NatterMessagingService *service,
               const char             *peer_id,
               NatterPeerState         state,
               const char             *via,
               Side                   *side)
{
  side->peer_state = state;
}

static gboolean
side_done (gpointer data)
{
  return ((Side *) data)->done;
}

static void
on_started (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Side *side = user_data;
  g_autoptr(GError) error = NULL;

  g_assert_true (natter_messaging_service_start_finish (side->service, result, &error));
  g_assert_no_error (error);
  side->done = TRUE;
}

static void
side_start (Side       *side,
            const char *url)
{
  g_autoptr(GError) error = NULL;
  const char *urls[] = { url, NULL };
  const char *lo[] = { "lo", NULL };

  if (side->dir == NULL)
    {
      side->dir = g_dir_make_tmp ("natter-service-XXXXXX", &error);
      g_assert_no_error (error);
      side->states = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      side->first_states = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      side->received = g_ptr_array_new_with_free_func (g_object_unref);
    }
  side->profile = natter_profile_open (side->dir, NULL, &error);
  g_assert_no_error (error);
  side->service = natter_messaging_service_new (side->profile);
  g_object_set (side->service, "rendezvous-urls", urls, "lan-discovery", FALSE,
                "interfaces", lo, NULL);
  g_signal_connect (side->service, "message-state-changed", G_CALLBACK (on_state), side);
  g_signal_connect (side->service, "message-received", G_CALLBACK (on_received), side);
  g_signal_connect (side->service, "typing-changed", G_CALLBACK (on_typing), side);
  g_signal_connect (side->service, "presence-changed", G_CALLBACK (on_presence), side);
  g_signal_connect (side->service, "peer-state-changed", G_CALLBACK (on_peer_state), side);
  side->done = FALSE;
  natter_messaging_service_start_async (side->service, NULL, on_started, side);
  g_assert_true (wait_for (side_done, side, 10));
}

static void
on_stopped (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Side *side = user_data;
  g_autoptr(GError) error = NULL;

  g_assert_true (natter_messaging_service_stop_finish (side->service, result, &error));
  side->done = TRUE;
}

static void
side_stop (Side *side)
{
  side->done = FALSE;
  natter_messaging_service_stop_async (side->service, NULL, on_stopped, side);
  g_assert_true (wait_for (side_done, side, 10));
  g_clear_object (&side->service);
  g_clear_object (&side->profile);
}

static void
side_free (Side *side)
{
  g_autofree char *command = g_strdup_printf ("rm -rf '%s'", side->dir);

  if (side->service != NULL)
    side_stop (side);
  g_hash_table_unref (side->states);
  g_hash_table_unref (side->first_states);
  g_ptr_array_unref (side->received);
  g_assert_cmpint (system (command), ==, 0);
  g_free (side->dir);
  g_free (side->result);
}

static void
on_contact_added (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Side *side = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterContact) contact = natter_messaging_service_add_contact_finish (side->service, result, &error);

  g_assert_no_error (error);
  g_assert_nonnull (contact);
  side->done = TRUE;
}

static void
side_add_contact (Side       *side,
                  const char *peer_id)
{
  side->done = FALSE;
  natter_messaging_service_add_contact_async (side->service, peer_id, "friend", NULL,
                                              on_contact_added, side);
  g_assert_true (wait_for (side_done, side, 10));
}

static void
on_sent (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Side *side = user_data;
  g_autoptr(GError) error = NULL;

  g_free (side->result);
  side->result = natter_messaging_service_send_text_finish (side->service, result, &error);
  g_assert_no_error (error);
  side->done = TRUE;
}

static char *
side_send (Side       *side,
           const char *peer_id,
           const char *text)
{
  side->done = FALSE;
  natter_messaging_service_send_text_async (side->service, peer_id, text, NULL, on_sent, side);
  g_assert_true (wait_for (side_done, side, 10));
  return g_strdup (side->result);
}

typedef struct
{
  Side       *side;
  const char *msg_id;
  const char *state;
} StateWait;

static gboolean
state_reached (gpointer data)
{
  StateWait *wait = data;

  return g_strcmp0 (g_hash_table_lookup (wait->side->states, wait->msg_id), wait->state) == 0;
}

static void
assert_state (Side       *side,
              const char *msg_id,
              const char *state,
              double      seconds)
{
  StateWait wait = { side, msg_id, state };

  if (!wait_for (state_reached, &wait, seconds))
    g_error ("%s: state %s, expected %s", msg_id,
             (char *) g_hash_table_lookup (side->states, msg_id), state);
}

typedef struct
{
  Side *side;
  guint n;
} CountWait;

static gboolean
count_reached (gpointer data)
{
  CountWait *wait = data;

  return wait->side->received->len >= wait->n;
}

static gboolean
typing_on (gpointer data)
{
  return ((Side *) data)->typing;
}

static gboolean
typing_off (gpointer data)
{
  return !((Side *) data)->typing;
}

static gboolean
presence_away (gpointer data)
{
  return ((Side *) data)->presence == NATTER_PRESENCE_AWAY;
}

static void
on_marked (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Side *side = user_data;
  g_autoptr(GError) error = NULL;

  g_assert_true (natter_messaging_service_mark_read_finish (side->service, result, &error));
  side->done = TRUE;
}

static void
on_history_loaded (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Side *side = user_data;
  g_autoptr(GError) error = NULL;

  g_assert_true (natter_history_model_load_older_finish (NATTER_HISTORY_MODEL (source), result, NULL, &error));
  side->done = TRUE;
}

static void
on_history (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Side *side = user_data;
  g_autoptr(GError) error = NULL;
  GListModel *model = natter_messaging_service_open_history_finish (side->service, result, &error);

  g_assert_no_error (error);
  g_object_set_data_full (G_OBJECT (side->service), "history", model, g_object_unref);
  natter_history_model_load_older_async (NATTER_HISTORY_MODEL (model), 0, NULL, on_history_loaded, side);
}

static void
test_direct (void)
{
  Server server = { 0 };
  Side a = { 0 }, b = { 0 };
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  g_autofree char *a_id = NULL;
  g_autofree char *b_id = NULL;
  GListModel *history;
  g_autoptr(GError) error = NULL;

  server_start (&server);
  side_start (&a, server.url);
  side_start (&b, server.url);
  a_id = g_strdup (natter_messaging_service_get_peer_id (a.service));
  b_id = g_strdup (natter_messaging_service_get_peer_id (b.service));
  side_add_contact (&a, b_id);
  side_add_contact (&b, a_id);

  /* queued → sent → delivered, received once on the other side. */
  first = side_send (&a, b_id, "Hello B, this is A");
  /* "queued" comes first; the frame may already be out ("sent") by the
   * time the caller gets the ID, since it is sent while the row commits. */
  g_assert_cmpstr (g_hash_table_lookup (a.first_states, first), ==, "queued");
  assert_state (&a, first, "delivered", 20);
  {
    CountWait wait = { &b, 1 };

    g_assert_true (wait_for (count_reached, &wait, 5));
    g_assert_cmpstr (natter_message_item_get_text (g_ptr_array_index (b.received, 0)), ==,
                     "Hello B, this is A");
    g_assert_cmpstr (natter_message_item_get_msg_id (g_ptr_array_index (b.received, 0)), ==, first);
  }
  g_assert_cmpint (a.peer_state, ==, NATTER_PEER_STATE_DIRECT);

  /* Read receipts. */
  b.done = FALSE;
  natter_messaging_service_mark_read_async (b.service, a_id, NULL, on_marked, &b);
  g_assert_true (wait_for (side_done, &b, 5));
  assert_state (&a, first, "read", 10);

  /* Typing shows, and goes away by itself. */
  g_assert_true (natter_messaging_service_set_typing (a.service, b_id, TRUE, &error));
  g_assert_true (wait_for (typing_on, &b, 5));
  g_assert_true (wait_for (typing_off, &b, NATTER_MESSAGING_TYPING_TIMEOUT_MS / 1000.0 + 3));

  /* Presence. */
  natter_messaging_service_set_presence (b.service, NATTER_PRESENCE_AWAY);
  g_assert_true (wait_for (presence_away, &a, 5));

  /* History, paged from the store, in order. */
  second = side_send (&b, a_id, "Reply from B");
  assert_state (&b, second, "delivered", 10);
  a.done = FALSE;
  natter_messaging_service_open_history_async (a.service, b_id, NULL, on_history, &a);
  g_assert_true (wait_for (side_done, &a, 5));
  history = g_object_get_data (G_OBJECT (a.service), "history");
  g_assert_cmpuint (g_list_model_get_n_items (history), ==, 2);
  {
    g_autoptr(NatterMessageItem) item0 = g_list_model_get_item (history, 0);
    g_autoptr(NatterMessageItem) item1 = g_list_model_get_item (history, 1);

    g_assert_cmpstr (natter_message_item_get_msg_id (item0), ==, first);
    g_assert_true (natter_message_item_is_outgoing (item0));
    g_assert_cmpint (natter_message_item_get_state (item0), ==, NATTER_STORE_MESSAGE_READ);
    g_assert_cmpstr (natter_message_item_get_text (item1), ==, "Reply from B");
  }

  /* A restart of B: the connection comes back and messages flow again. */
  side_stop (&b);
  {
    g_autofree char *third = side_send (&a, b_id, "While you were away");

    side_start (&b, server.url);
    assert_state (&a, third, "delivered", 30);
  }

  side_free (&a);
  side_free (&b);
  server_stop (&server);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc < 2)
    {
      g_printerr ("usage: %s PATH-TO-natter-rendezvous\n", argv[0]);
      return 2;
    }
  server_path = argv[1];
  g_setenv ("NATTER_INTERFACES", "lo", TRUE);
  g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);

  g_test_add_func ("/service/direct", test_direct);
  return g_test_run ();
}
