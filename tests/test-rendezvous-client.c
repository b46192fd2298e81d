/* test-rendezvous-client.c: rendezvous clients against the real server
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Usage: test-rendezvous-client PATH-TO-natter-rendezvous [GTest options]
 * Everything runs on 127.0.0.1.
 */

#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include "natter-identity.h"
#include "natter-peer-connection.h"
#include "natter-rendezvous-client.h"

static const char *server_path;

/* A server outlives no failed test. */
static void
die_with_parent (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/* ---- Helpers ------------------------------------------------------------ */

static gboolean
timeout_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the main context until @done or @seconds pass. */
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

static gboolean
never (gpointer data)
{
  return FALSE;
}

static void
spin (double seconds)
{
  wait_for (never, NULL, seconds);
}

typedef struct
{
  GSubprocess *process;
  guint port;
  char *url;
} Server;

/* Starts natter-rendezvous on 127.0.0.1:@port (0: any free port) and reads
 * the port it printed. */
static void
server_start (Server *server,
              guint   port)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *port_text = g_strdup_printf ("%u", port);
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *line = NULL;
  const char *colon;

  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);

  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  server->process = g_subprocess_launcher_spawn (launcher, &error,
                                                 server_path, "--listen", "127.0.0.1",
                                                 "--port", port_text, NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (server->process));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "natter-rendezvous: listening on ws://127.0.0.1:"));
  colon = strrchr (line, ':');
  server->port = (guint) g_ascii_strtoull (colon + 1, NULL, 10);
  g_assert_cmpuint (server->port, >, 0);
  if (port != 0)
    g_assert_cmpuint (server->port, ==, port);
  g_free (server->url);
  server->url = g_strdup_printf ("ws://127.0.0.1:%u/v1", server->port);
}

static void
server_kill (Server *server)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_force_exit (server->process);
  g_subprocess_wait (server->process, NULL, &error);
  g_assert_no_error (error);
  g_clear_object (&server->process);
}

static void
server_clear (Server *server)
{
  if (server->process != NULL)
    server_kill (server);
  g_clear_pointer (&server->url, g_free);
}

typedef struct
{
  NatterIdentity *identity;
  NatterRendezvousClient *client;
  GHashTable *online;           /* peer ID -> presence events seen */
  GPtrArray *signals;           /* GBytes received */
  GPtrArray *senders;           /* their "from" */
  guint n_presence;
} Peer;

static void
on_presence (NatterRendezvousClient *client,
             const char             *peer_id,
             gboolean                online,
             Peer                   *peer)
{
  peer->n_presence++;
  if (online)
    g_hash_table_add (peer->online, g_strdup (peer_id));
  else
    g_hash_table_remove (peer->online, peer_id);
}

static void
on_signal_received (NatterRendezvousClient *client,
                    const char             *from,
                    GBytes                 *blob,
                    Peer                   *peer)
{
  g_ptr_array_add (peer->signals, g_bytes_ref (blob));
  g_ptr_array_add (peer->senders, g_strdup (from));
}

static void
peer_init (Peer                *peer,
           const char          *url,
           const char * const  *contacts)
{
  g_autoptr(GError) error = NULL;

  if (peer->identity == NULL)
    peer->identity = natter_identity_new_random ();
  peer->client = natter_rendezvous_client_new (url, peer->identity, contacts, &error);
  g_assert_no_error (error);
  peer->online = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  peer->signals = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  peer->senders = g_ptr_array_new_with_free_func (g_free);
  g_signal_connect (peer->client, "presence-changed", G_CALLBACK (on_presence), peer);
  g_signal_connect (peer->client, "signal-received", G_CALLBACK (on_signal_received), peer);
}

static void
peer_clear (Peer *peer)
{
  if (peer->client != NULL)
    natter_rendezvous_client_stop (peer->client);
  g_clear_object (&peer->client);
  g_clear_object (&peer->identity);
  g_clear_pointer (&peer->online, g_hash_table_unref);
  g_clear_pointer (&peer->signals, g_ptr_array_unref);
  g_clear_pointer (&peer->senders, g_ptr_array_unref);
}

static const char *
peer_id (Peer *peer)
{
  return natter_identity_get_peer_id (peer->identity);
}

typedef struct
{
  Peer *a;
  Peer *b;
} Two;

static gboolean
both_registered (gpointer data)
{
  Two *two = data;

  return natter_rendezvous_client_get_state (two->a->client) == NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED &&
         natter_rendezvous_client_get_state (two->b->client) == NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED;
}

static gboolean
both_see_each_other (gpointer data)
{
  Two *two = data;

  return g_hash_table_contains (two->a->online, peer_id (two->b)) &&
         g_hash_table_contains (two->b->online, peer_id (two->a));
}

static gboolean
b_got_signal (gpointer data)
{
  Two *two = data;

  return two->b->signals->len > 0;
}

static gboolean
both_got_signal (gpointer data)
{
  Two *two = data;

  return two->a->signals->len > 0 && two->b->signals->len > 0;
}

static gboolean
a_sees_b_offline (gpointer data)
{
  Two *two = data;

  return !g_hash_table_contains (two->a->online, peer_id (two->b));
}

/* ---- Argument checks ----------------------------------------------------- */

static void
test_bad_arguments (void)
{
  g_autoptr(NatterIdentity) identity = natter_identity_new_random ();
  const char *bad_contacts[] = { "not a peer id", NULL };
  const char *bad_urls[] = { "http://127.0.0.1:1/v1", "ws://", "nonsense", "" };

  for (gsize i = 0; i < G_N_ELEMENTS (bad_urls); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(NatterRendezvousClient) client =
        natter_rendezvous_client_new (bad_urls[i], identity, NULL, &error);

      g_assert_null (client);
      g_assert_error (error, NATTER_RENDEZVOUS_CLIENT_ERROR, NATTER_RENDEZVOUS_CLIENT_ERROR_INVALID);
    }

  {
    g_autoptr(GError) error = NULL;
    g_autoptr(NatterRendezvousClient) client =
      natter_rendezvous_client_new ("ws://127.0.0.1:1/v1", identity, bad_contacts, &error);

    g_assert_null (client);
    g_assert_nonnull (error);
  }
}

/* ---- Presence and signals ------------------------------------------------- */

static void
test_presence_and_signals (void)
{
  Server server = { 0 };
  Peer a = { 0 };
  Peer b = { 0 };
  Two two = { &a, &b };
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) hello = g_bytes_new_static ("hello from a", 12);
  g_autoptr(GBytes) reply = g_bytes_new_static ("and from b", 10);

  server_start (&server, 0);
  a.identity = natter_identity_new_random ();
  b.identity = natter_identity_new_random ();

  /* A lists B; B lists nobody yet. */
  {
    const char *a_contacts[] = { peer_id (&b), NULL };

    peer_init (&a, server.url, a_contacts);
    peer_init (&b, server.url, NULL);
  }
  natter_rendezvous_client_start (a.client);
  natter_rendezvous_client_start (b.client);
  g_assert_true (wait_for (both_registered, &two, 10));

  /* Not mutual: nobody sees anybody, and a signal is refused. */
  spin (0.5);
  g_assert_cmpuint (a.n_presence, ==, 0);
  g_assert_cmpuint (b.n_presence, ==, 0);
  g_assert_false (natter_rendezvous_client_is_online (a.client, peer_id (&b)));
  g_assert_false (natter_rendezvous_client_send_signal (b.client, peer_id (&a), hello, &error));
  g_assert_error (error, NATTER_RENDEZVOUS_CLIENT_ERROR, NATTER_RENDEZVOUS_CLIENT_ERROR_NOT_CONTACT);
  g_clear_error (&error);

  /* B lists A: both see each other. */
  {
    const char *b_contacts[] = { peer_id (&a), NULL };

    g_assert_true (natter_rendezvous_client_set_contacts (b.client, b_contacts, &error));
    g_assert_no_error (error);
  }
  g_assert_true (wait_for (both_see_each_other, &two, 5));
  g_assert_true (natter_rendezvous_client_is_online (a.client, peer_id (&b)));

  /* Signals both ways arrive opened, from the right sender. */
  g_assert_true (natter_rendezvous_client_send_signal (a.client, peer_id (&b), hello, &error));
  g_assert_no_error (error);
  g_assert_true (natter_rendezvous_client_send_signal (b.client, peer_id (&a), reply, &error));
  g_assert_no_error (error);
  g_assert_true (wait_for (both_got_signal, &two, 5));
  g_assert_true (g_bytes_equal (g_ptr_array_index (b.signals, 0), hello));
  g_assert_cmpstr (g_ptr_array_index (b.senders, 0), ==, peer_id (&a));
  g_assert_true (g_bytes_equal (g_ptr_array_index (a.signals, 0), reply));
  g_assert_cmpstr (g_ptr_array_index (a.senders, 0), ==, peer_id (&b));

  /* B goes away: A sees it offline. */
  natter_rendezvous_client_stop (b.client);
  g_assert_true (wait_for (a_sees_b_offline, &two, 5));

  peer_clear (&a);
  peer_clear (&b);
  server_clear (&server);
}

/* ---- Peer connections signaled through the server ------------------------ */

typedef struct
{
  NatterRendezvousClient *via;
  char *to;
} Route;

static void
route_out (NatterPeerConnection *connection,
           GBytes               *blob,
           Route                *route)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (natter_rendezvous_client_send_signal (route->via, route->to, blob, &error));
  g_assert_no_error (error);
}

static void
route_in (NatterRendezvousClient *client,
          const char             *from,
          GBytes                 *blob,
          NatterPeerConnection   *connection)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpstr (from, ==, natter_peer_connection_get_remote_peer_id (connection));
  g_assert_true (natter_peer_connection_handle_signal (connection, blob, &error));
  g_assert_no_error (error);
}

typedef struct
{
  NatterPeerConnection *a;
  NatterPeerConnection *b;
  GBytes *got_a;
  GBytes *got_b;
} Connections;

static gboolean
connections_up (gpointer data)
{
  Connections *c = data;

  return natter_peer_connection_get_state (c->a) == NATTER_PEER_CONNECTION_STATE_CONNECTED &&
         natter_peer_connection_get_state (c->b) == NATTER_PEER_CONNECTION_STATE_CONNECTED;
}

static gboolean
messages_in (gpointer data)
{
  Connections *c = data;

  return c->got_a != NULL && c->got_b != NULL;
}

static void
on_message (NatterPeerConnection *connection,
            guint                 stream,
            GBytes               *message,
            GBytes              **slot)
{
  if (stream == NATTER_PEER_STREAM_CHAT && *slot == NULL)
    *slot = g_bytes_ref (message);
}

static void
test_peer_connection (void)
{
  Server server = { 0 };
  Peer a = { 0 };
  Peer b = { 0 };
  Two two = { &a, &b };
  Connections c = { 0 };
  Route to_b = { 0 };
  Route to_a = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) ping = g_bytes_new_static ("ping over ICE", 13);
  g_autoptr(GBytes) pong = g_bytes_new_static ("pong over ICE", 13);

  server_start (&server, 0);
  a.identity = natter_identity_new_random ();
  b.identity = natter_identity_new_random ();
  {
    const char *a_contacts[] = { peer_id (&b), NULL };
    const char *b_contacts[] = { peer_id (&a), NULL };

    peer_init (&a, server.url, a_contacts);
    peer_init (&b, server.url, b_contacts);
  }
  natter_rendezvous_client_start (a.client);
  natter_rendezvous_client_start (b.client);
  g_assert_true (wait_for (both_registered, &two, 10));
  g_assert_true (wait_for (both_see_each_other, &two, 5));

  /* NULL config: host candidates on NATTER_INTERFACES (lo in the tests). */
  c.a = natter_peer_connection_new (a.identity, peer_id (&b), NULL, &error);
  g_assert_no_error (error);
  c.b = natter_peer_connection_new (b.identity, peer_id (&a), NULL, &error);
  g_assert_no_error (error);

  to_b.via = a.client;
  to_b.to = g_strdup (peer_id (&b));
  to_a.via = b.client;
  to_a.to = g_strdup (peer_id (&a));
  g_signal_connect (c.a, "signal", G_CALLBACK (route_out), &to_b);
  g_signal_connect (c.b, "signal", G_CALLBACK (route_out), &to_a);
  g_signal_connect (a.client, "signal-received", G_CALLBACK (route_in), c.a);
  g_signal_connect (b.client, "signal-received", G_CALLBACK (route_in), c.b);
  g_signal_connect (c.a, "message", G_CALLBACK (on_message), &c.got_a);
  g_signal_connect (c.b, "message", G_CALLBACK (on_message), &c.got_b);

  natter_peer_connection_start (c.a);
  natter_peer_connection_start (c.b);
  g_assert_true (wait_for (connections_up, &c, 20));

  g_assert_true (natter_peer_connection_send (c.a, NATTER_PEER_STREAM_CHAT, ping, &error));
  g_assert_no_error (error);
  g_assert_true (natter_peer_connection_send (c.b, NATTER_PEER_STREAM_CHAT, pong, &error));
  g_assert_no_error (error);
  g_assert_true (wait_for (messages_in, &c, 10));
  g_assert_true (g_bytes_equal (c.got_b, ping));
  g_assert_true (g_bytes_equal (c.got_a, pong));
  /* Every blob went through the server, sealed. */
  g_assert_cmpuint (a.signals->len, >, 0);
  g_assert_cmpuint (b.signals->len, >, 0);

  g_signal_handlers_disconnect_by_data (a.client, c.a);
  g_signal_handlers_disconnect_by_data (b.client, c.b);
  natter_peer_connection_close (c.a);
  natter_peer_connection_close (c.b);
  g_clear_object (&c.a);
  g_clear_object (&c.b);
  g_clear_pointer (&c.got_a, g_bytes_unref);
  g_clear_pointer (&c.got_b, g_bytes_unref);
  g_free (to_a.to);
  g_free (to_b.to);
  peer_clear (&a);
  peer_clear (&b);
  server_clear (&server);
}

/* ---- Reconnecting --------------------------------------------------------- */

typedef struct
{
  Two two;
  guint registrations;
} Rereg;

static gboolean
both_registered_again (gpointer data)
{
  Rereg *r = data;

  return both_registered (&r->two) &&
         natter_rendezvous_client_get_n_registrations (r->two.a->client) > r->registrations &&
         natter_rendezvous_client_get_n_registrations (r->two.b->client) > r->registrations;
}

static gboolean
both_disconnected (gpointer data)
{
  Two *two = data;

  return natter_rendezvous_client_get_state (two->a->client) != NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED &&
         natter_rendezvous_client_get_state (two->b->client) != NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED;
}

static void
test_reconnect (void)
{
  Server server = { 0 };
  Peer a = { 0 };
  Peer b = { 0 };
  Rereg r = { { &a, &b }, 1 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) hello = g_bytes_new_static ("again", 5);
  guint port;
  gint64 down_us;
  double took;

  server_start (&server, 0);
  port = server.port;
  a.identity = natter_identity_new_random ();
  b.identity = natter_identity_new_random ();
  {
    const char *a_contacts[] = { peer_id (&b), NULL };
    const char *b_contacts[] = { peer_id (&a), NULL };

    peer_init (&a, server.url, a_contacts);
    peer_init (&b, server.url, b_contacts);
  }
  natter_rendezvous_client_start (a.client);
  natter_rendezvous_client_start (b.client);
  g_assert_true (wait_for (both_registered, &r.two, 10));
  g_assert_true (wait_for (both_see_each_other, &r.two, 5));

  /* The server dies: both notice, and presence goes with it. */
  server_kill (&server);
  down_us = g_get_monotonic_time ();
  g_assert_true (wait_for (both_disconnected, &r.two, 5));
  g_assert_false (natter_rendezvous_client_is_online (a.client, peer_id (&b)));
  g_assert_cmpuint (g_hash_table_size (a.online), ==, 0);

  /* Down for 2 s: attempts at about 0.5, 1 and 2 s fail meanwhile, so the
   * backoff reaches 4 s; after the restart, the next attempt is at most
   * 0.5 + 1 + 2 + 4 s = 7.5 s after the kill (with jitter, less). */
  spin (2.0);
  server_start (&server, port);
  g_assert_true (wait_for (both_registered_again, &r, 10));
  took = (g_get_monotonic_time () - down_us) / 1e6;
  g_test_message ("re-registered %.2f s after the server died", took);
  g_assert_cmpfloat (took, <=, 0.5 + 1 + 2 + 4 + 1);

  /* The contact lists went again: presence and signals work as before. */
  g_assert_true (wait_for (both_see_each_other, &r.two, 5));
  g_assert_true (natter_rendezvous_client_send_signal (a.client, peer_id (&b), hello, &error));
  g_assert_no_error (error);
  g_assert_true (wait_for (b_got_signal, &r.two, 5));
  g_assert_true (g_bytes_equal (g_ptr_array_index (b.signals, 0), hello));

  peer_clear (&a);
  peer_clear (&b);
  server_clear (&server);
}

/* ---- A hostile server ----------------------------------------------------- */

typedef struct
{
  GPtrArray *connections;       /* SoupWebsocketConnection, kept open */
  const char *script;           /* sent on connect; NULL: see below */
  gboolean binary;
  gsize huge;                   /* a text frame of this many bytes */
  gboolean challenge_first;     /* a valid challenge, then @script */
} Hostile;

static void
on_hostile_connection (SoupServer              *soup,
                       SoupServerMessage       *msg,
                       const char              *path,
                       SoupWebsocketConnection *ws,
                       gpointer                 user_data)
{
  Hostile *hostile = user_data;

  g_ptr_array_add (hostile->connections, g_object_ref (ws));
  if (hostile->challenge_first)
    soup_websocket_connection_send_text (ws,
      "{\"type\":\"challenge\",\"challenge\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\","
      "\"context\":\"natter-rendezvous-register-v1\"}");
  if (hostile->binary)
    soup_websocket_connection_send_binary (ws, "\x00\x01", 2);
  else if (hostile->huge > 0)
    {
      g_autofree char *text = g_strnfill (hostile->huge, ' ');

      text[0] = '{';
      text[hostile->huge - 1] = '}';
      soup_websocket_connection_send_text (ws, text);
    }
  else
    {
      /* Not send_text(): it copies a C string; the length is given here. */
      g_autoptr(GBytes) bytes = g_bytes_new_static (hostile->script, strlen (hostile->script));

      soup_websocket_connection_send_message (ws, SOUP_WEBSOCKET_DATA_TEXT, bytes);
    }
}

static gboolean
reconnected_twice (gpointer data)
{
  return ((Hostile *) data)->connections->len >= 2;
}

static void
test_hostile_server (void)
{
  static const char *scripts[] = {
    "not json",
    "[1]",
    "{\"type\":\"challenge\"} {\"type\":\"pong\"}",
    "{\"a\":{\"b\":{\"c\":[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]}}}",
    "{\"type\":\"pong\",\"type\":\"pong\"}",
    "{\"type\":\"whatever\"}",
    "{\"type\":42}",
    "{\"type\":\"challenge\",\"challenge\":\"AAAA\",\"context\":\"natter-rendezvous-register-v1\"}",
    "{\"type\":\"challenge\",\"challenge\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"context\":\"other\"}",
    "{\"type\":\"challenge\",\"challenge\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"context\":\"natter-rendezvous-register-v1\"}",
    "{\"type\":\"registered\",\"peer\":\"nobody\"}",
    "{\"type\":\"presence\",\"peer\":\"x\",\"online\":true}",
    "{\"type\":\"signal\",\"from\":\"x\",\"blob\":\"!!!!\"}",
    "{\"type\":\"pong\",\"extra\":1}",
    "",
  };
  /* After a valid challenge: replies that must not register us. */
  static const char *after_challenge[] = {
    "{\"type\":\"registered\",\"peer\":\"n" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
    "{\"type\":\"presence\",\"peer\":\"n" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"online\":true}",
    "{\"type\":\"signal\",\"from\":\"n" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"blob\":\"AAAA\"}",
    "{\"type\":\"challenge\",\"challenge\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"context\":\"natter-rendezvous-register-v1\"}",
  };
  g_autoptr(NatterIdentity) identity = natter_identity_new_random ();
  g_autoptr(NatterIdentity) other = natter_identity_new_random ();
  /* A valid peer ID, but not ours. */
  g_autofree char *registered_other =
    g_strdup_printf ("{\"type\":\"registered\",\"peer\":\"%s\"}", natter_identity_get_peer_id (other));
  const guint n_cases = G_N_ELEMENTS (scripts) + G_N_ELEMENTS (after_challenge) + 3;
  GLogLevelFlags fatal;

  /* The client warns about each broken message; that is expected here. */
  fatal = g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);

  for (guint i = 0; i < n_cases; i++)
    {
      g_autoptr(SoupServer) soup = soup_server_new (NULL, NULL);
      g_autoptr(GError) error = NULL;
      g_autoptr(NatterRendezvousClient) client = NULL;
      g_autofree char *url = NULL;
      Hostile hostile = { 0 };
      GSList *uris;

      hostile.connections = g_ptr_array_new_with_free_func (g_object_unref);
      if (i < G_N_ELEMENTS (scripts))
        hostile.script = scripts[i];
      else if (i < G_N_ELEMENTS (scripts) + G_N_ELEMENTS (after_challenge))
        {
          hostile.challenge_first = TRUE;
          hostile.script = after_challenge[i - G_N_ELEMENTS (scripts)];
        }
      else if (i == n_cases - 3)
        {
          hostile.challenge_first = TRUE;
          hostile.script = registered_other;
        }
      else if (i == n_cases - 2)
        hostile.binary = TRUE;
      else
        hostile.huge = 200 * 1024;

      soup_server_add_websocket_handler (soup, "/v1", NULL, NULL,
                                         on_hostile_connection, &hostile, NULL);
      g_assert_true (soup_server_listen_local (soup, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error));
      g_assert_no_error (error);
      uris = soup_server_get_uris (soup);
      url = g_strdup_printf ("ws://127.0.0.1:%d/v1", g_uri_get_port (uris->data));
      g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);

      client = natter_rendezvous_client_new (url, identity, NULL, &error);
      g_assert_no_error (error);
      natter_rendezvous_client_start (client);

      /* The client drops the connection and comes back after its backoff,
       * never registered, never crashed. */
      g_assert_true (wait_for (reconnected_twice, &hostile, 5));
      g_assert_cmpuint (natter_rendezvous_client_get_n_registrations (client), ==, 0);
      g_assert_cmpint (natter_rendezvous_client_get_state (client), !=,
                       NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED);

      natter_rendezvous_client_stop (client);
      g_clear_object (&client);
      soup_server_disconnect (soup);
      g_ptr_array_unref (hostile.connections);
    }
  g_log_set_always_fatal (fatal);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  if (argc < 2)
    {
      g_printerr ("usage: %s PATH-TO-natter-rendezvous\n", argv[0]);
      return 2;
    }
  server_path = argv[1];
  signal (SIGPIPE, SIG_IGN);

  g_test_add_func ("/rendezvous-client/bad-arguments", test_bad_arguments);
  g_test_add_func ("/rendezvous-client/presence-and-signals", test_presence_and_signals);
  g_test_add_func ("/rendezvous-client/peer-connection", test_peer_connection);
  g_test_add_func ("/rendezvous-client/reconnect", test_reconnect);
  g_test_add_func ("/rendezvous-client/hostile-server", test_hostile_server);

  return g_test_run ();
}
