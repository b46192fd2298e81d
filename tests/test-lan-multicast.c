/* test-lan-multicast.c: three LAN discovery instances on one loopback
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Needs multicast on lo, which the host's namespace must not be changed
 * for: run it through tests/lan/run-in-netns.sh, which gives it a fresh
 * network namespace with only lo.
 */

#define _GNU_SOURCE
#include "config.h"

#include <string.h>
#include <sodium.h>

#include "natter-identity.h"
#include "natter-lan-discovery.h"
#include "natter-peer-connection.h"

#define INTERVAL_MS 200

typedef struct
{
  NatterIdentity       *identity;
  NatterLanDiscovery   *discovery;
  NatterPeerConnection *connection;
  char                 *found_peer;
  guint                 found;
  guint                 lost;
  guint                 nearby;
  char                 *nearby_handle;
  char                 *revealed;
  guint                 signals;
  GBytes               *message;
} Node;

static const char *lo[] = { "lo", NULL };

static gboolean
timeout_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

static gboolean
wait_for (gboolean (*done) (gpointer),
          gpointer   data,
          guint      seconds)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add_seconds (seconds, timeout_cb, &timed_out);

  while (!done (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  return done (data);
}

static void
spin (guint ms)
{
  gboolean done = FALSE;

  g_timeout_add (ms, timeout_cb, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
}

/* ---- Wiring a peer connection to the LAN path ---------------------------- */

static void
connection_signal_cb (NatterPeerConnection *connection,
                      GBytes               *blob,
                      Node                 *node)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (natter_lan_discovery_send_signal (node->discovery,
                                                   natter_peer_connection_get_remote_peer_id (connection),
                                                   blob, &error));
  g_assert_no_error (error);
}

static void
connection_message_cb (NatterPeerConnection *connection,
                       guint                 stream,
                       GBytes               *message,
                       Node                 *node)
{
  if (stream == NATTER_PEER_STREAM_CHAT)
    {
      g_clear_pointer (&node->message, g_bytes_unref);
      node->message = g_bytes_ref (message);
    }
}

static void
ensure_connection (Node       *node,
                   const char *peer_id)
{
  g_autoptr(NatterIceConfig) config = NULL;
  g_autoptr(GError) error = NULL;

  if (node->connection != NULL)
    return;
  config = natter_ice_config_new ();
  natter_ice_config_set_interfaces (config, lo);
  natter_ice_config_set_ipv6 (config, FALSE);
  node->connection = natter_peer_connection_new (node->identity, peer_id, config, &error);
  g_assert_no_error (error);
  g_signal_connect (node->connection, "signal", G_CALLBACK (connection_signal_cb), node);
  g_signal_connect (node->connection, "message", G_CALLBACK (connection_message_cb), node);
  natter_peer_connection_start (node->connection);
}

static void
contact_found_cb (NatterLanDiscovery *discovery,
                  const char         *peer_id,
                  GInetSocketAddress *address,
                  Node               *node)
{
  g_autofree char *ip = g_inet_address_to_string (g_inet_socket_address_get_address (address));

  g_assert_cmpstr (ip, ==, "127.0.0.1");
  g_free (node->found_peer);
  node->found_peer = g_strdup (peer_id);
  node->found++;
}

static void
contact_lost_cb (NatterLanDiscovery *discovery,
                 const char         *peer_id,
                 Node               *node)
{
  node->lost++;
}

static void
nearby_found_cb (NatterLanDiscovery *discovery,
                 const char         *handle,
                 GInetSocketAddress *address,
                 Node               *node)
{
  node->nearby++;
  g_free (node->nearby_handle);
  node->nearby_handle = g_strdup (handle);
}

static void
nearby_revealed_cb (NatterLanDiscovery *discovery,
                    const char         *peer_id,
                    GInetSocketAddress *address,
                    Node               *node)
{
  g_free (node->revealed);
  node->revealed = g_strdup (peer_id);
}

static void
signal_received_cb (NatterLanDiscovery *discovery,
                    const char         *peer_id,
                    GBytes             *blob,
                    Node               *node)
{
  g_autoptr(GError) error = NULL;

  node->signals++;
  ensure_connection (node, peer_id);
  g_assert_true (natter_peer_connection_handle_signal (node->connection, blob, &error));
  g_assert_no_error (error);
}

static void
node_init (Node                *node,
           const char * const  *contacts)
{
  g_autoptr(GError) error = NULL;

  node->discovery = natter_lan_discovery_new (NULL, node->identity, lo);
  natter_lan_discovery_set_interval (node->discovery, INTERVAL_MS);
  natter_lan_discovery_set_contacts (node->discovery, contacts);
  g_signal_connect (node->discovery, "contact-found", G_CALLBACK (contact_found_cb), node);
  g_signal_connect (node->discovery, "contact-lost", G_CALLBACK (contact_lost_cb), node);
  g_signal_connect (node->discovery, "nearby-found", G_CALLBACK (nearby_found_cb), node);
  g_signal_connect (node->discovery, "nearby-revealed", G_CALLBACK (nearby_revealed_cb), node);
  g_signal_connect (node->discovery, "signal-received", G_CALLBACK (signal_received_cb), node);
  g_assert_true (natter_lan_discovery_start (node->discovery, &error));
  g_assert_no_error (error);
}

static void
node_clear (Node *node)
{
  if (node->connection != NULL)
    natter_peer_connection_close (node->connection);
  g_clear_object (&node->connection);
  g_clear_object (&node->discovery);
  g_clear_object (&node->identity);
  g_clear_pointer (&node->found_peer, g_free);
  g_clear_pointer (&node->nearby_handle, g_free);
  g_clear_pointer (&node->revealed, g_free);
  g_clear_pointer (&node->message, g_bytes_unref);
}

/* ---- A raw listener, as a stranger's packet capture ------------------------ */

static gboolean
capture_cb (GSocket      *socket,
            GIOCondition  condition,
            GByteArray   *captured)
{
  guint8 buffer[2048];
  gssize n;

  while ((n = g_socket_receive (socket, (char *) buffer, sizeof buffer, NULL, NULL)) > 0)
    {
      g_byte_array_append (captured, buffer, n);
      /* A separator nothing can match across. */
      g_byte_array_append (captured, (const guint8 *) "\0\0\0\0\0\0\0\0", 8);
    }
  return G_SOURCE_CONTINUE;
}

static GSocket *
open_capture (GByteArray *captured,
              GSource   **source)
{
  g_autoptr(GInetAddress) group = g_inet_address_new_from_string (NATTER_LAN_DISCOVERY_GROUP);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (group, NATTER_LAN_DISCOVERY_PORT);
  g_autoptr(GError) error = NULL;
  GSocket *socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                  G_SOCKET_PROTOCOL_UDP, &error);

  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);
  g_assert_true (g_socket_bind (socket, address, TRUE, &error));
  g_assert_true (g_socket_join_multicast_group (socket, group, FALSE, "lo", &error));
  g_assert_no_error (error);
  *source = g_socket_create_source (socket, G_IO_IN, NULL);
  g_source_set_callback (*source, G_SOURCE_FUNC (capture_cb), captured, NULL);
  g_source_attach (*source, NULL);
  return socket;
}

static gboolean
contains (GByteArray *haystack,
          const void *needle,
          gsize       len)
{
  return memmem (haystack->data, haystack->len, needle, len) != NULL;
}

static void
assert_not_captured (GByteArray     *captured,
                     NatterIdentity *identity)
{
  const char *peer_id = natter_identity_get_peer_id (identity);

  g_assert_false (contains (captured, peer_id, strlen (peer_id)));
  g_assert_false (contains (captured, natter_identity_get_public_key (identity), NATTER_PUBLIC_KEY_LEN));
  g_assert_false (contains (captured, natter_identity_get_x25519_public (identity), NATTER_X25519_KEY_LEN));
}

/* ---- The test -------------------------------------------------------------- */

typedef struct
{
  Node a, b, c;
} Trio;

static gboolean
both_found (gpointer data)
{
  Trio *trio = data;

  return trio->a.found > 0 && trio->b.found > 0;
}

static gboolean
both_connected (gpointer data)
{
  Trio *trio = data;

  return trio->a.connection != NULL && trio->b.connection != NULL &&
         natter_peer_connection_get_state (trio->a.connection) == NATTER_PEER_CONNECTION_STATE_CONNECTED &&
         natter_peer_connection_get_state (trio->b.connection) == NATTER_PEER_CONNECTION_STATE_CONNECTED;
}

static gboolean
both_have_message (gpointer data)
{
  Trio *trio = data;

  return trio->a.message != NULL && trio->b.message != NULL;
}

static gboolean
c_sees_nearby (gpointer data)
{
  return ((Trio *) data)->c.nearby > 0;
}

static gboolean
a_sees_nearby (gpointer data)
{
  return ((Trio *) data)->a.nearby > 0;
}

static gboolean
c_has_reveal (gpointer data)
{
  return ((Trio *) data)->c.revealed != NULL;
}

static gboolean
a_lost_b (gpointer data)
{
  return ((Trio *) data)->a.lost > 0;
}

static void
send_text (Node       *node,
           const char *text)
{
  g_autoptr(GBytes) message = g_bytes_new (text, strlen (text));
  g_autoptr(GError) error = NULL;

  g_assert_true (natter_peer_connection_send (node->connection, NATTER_PEER_STREAM_CHAT, message, &error));
  g_assert_no_error (error);
}

static void
test_find_and_connect (void)
{
  Trio trio = { 0 };
  g_autoptr(NatterIdentity) d = natter_identity_new_random ();
  g_autoptr(GByteArray) captured = g_byte_array_new ();
  GSource *capture_source = NULL;
  g_autoptr(GSocket) capture = open_capture (captured, &capture_source);
  const char *a_contacts[2], *b_contacts[2], *c_contacts[2];
  NatterLanDiscoveryStats stats;
  gint64 lost_from;

  trio.a.identity = natter_identity_new_random ();
  trio.b.identity = natter_identity_new_random ();
  trio.c.identity = natter_identity_new_random ();
  a_contacts[0] = natter_identity_get_peer_id (trio.b.identity);
  b_contacts[0] = natter_identity_get_peer_id (trio.a.identity);
  c_contacts[0] = natter_identity_get_peer_id (d);
  a_contacts[1] = b_contacts[1] = c_contacts[1] = NULL;

  node_init (&trio.a, a_contacts);
  node_init (&trio.b, b_contacts);
  node_init (&trio.c, c_contacts);

  /* A and B find each other. */
  g_assert_true (wait_for (both_found, &trio, 10));
  g_assert_cmpstr (trio.a.found_peer, ==, natter_identity_get_peer_id (trio.b.identity));
  g_assert_cmpstr (trio.b.found_peer, ==, natter_identity_get_peer_id (trio.a.identity));

  /* A connects to B, signaling over the LAN path only: no server. */
  ensure_connection (&trio.a, trio.a.found_peer);
  g_assert_true (wait_for (both_connected, &trio, 30));
  g_assert_cmpuint (trio.a.signals, >, 0);
  g_assert_cmpuint (trio.b.signals, >, 0);
  send_text (&trio.a, "hello from a");
  send_text (&trio.b, "hello from b");
  g_assert_true (wait_for (both_have_message, &trio, 10));
  g_assert_cmpmem (g_bytes_get_data (trio.b.message, NULL), g_bytes_get_size (trio.b.message), "hello from a", 12);
  g_assert_cmpmem (g_bytes_get_data (trio.a.message, NULL), g_bytes_get_size (trio.a.message), "hello from b", 12);

  /* A few more rounds of announcements for the stranger to look at. */
  spin (3 * INTERVAL_MS);

  /* C heard everything and learnt nobody. */
  g_assert_cmpuint (trio.c.found, ==, 0);
  g_assert_cmpuint (trio.c.nearby, ==, 0);
  natter_lan_discovery_get_stats (trio.c.discovery, &stats);
  g_assert_cmpuint (stats.announcements_received, >=, 6);
  g_assert_cmpuint (stats.announcements_recognised, ==, 0);
  g_assert_cmpuint (captured->len, >, 0);
  assert_not_captured (captured, trio.a.identity);
  assert_not_captured (captured, trio.b.identity);
  assert_not_captured (captured, trio.c.identity);

  /* A discoverable instance shows up at C as someone nearby, still
   * without its identity. */
  natter_lan_discovery_set_discoverable (trio.a.discovery, TRUE);
  g_assert_true (wait_for (c_sees_nearby, &trio, 5));
  g_assert_cmpuint (trio.c.found, ==, 0);
  assert_not_captured (captured, trio.a.identity);

  /* C becomes discoverable too; A chooses to tell it who A is. */
  natter_lan_discovery_set_discoverable (trio.c.discovery, TRUE);
  g_assert_true (wait_for (a_sees_nearby, &trio, 5));
  g_assert_true (natter_lan_discovery_reveal_to_nearby (trio.a.discovery, trio.a.nearby_handle, NULL));
  g_assert_true (wait_for (c_has_reveal, &trio, 5));
  g_assert_cmpstr (trio.c.revealed, ==, natter_identity_get_peer_id (trio.a.identity));
  g_assert_null (trio.b.revealed);

  /* B goes away: A notices within the lost interval and a bit (the bit
   * leaves room for a sanitizer build on a loaded machine; a loss found
   * by any longer timeout would still be far beyond it). */
  natter_peer_connection_close (trio.a.connection);
  natter_peer_connection_close (trio.b.connection);
  lost_from = g_get_monotonic_time ();
  natter_lan_discovery_stop (trio.b.discovery);
  g_assert_true (wait_for (a_lost_b, &trio, 5));
  g_assert_cmpint (g_get_monotonic_time () - lost_from, <=,
                   (NATTER_LAN_DISCOVERY_LOST_INTERVALS + 5) * INTERVAL_MS * 1000);

  g_source_destroy (capture_source);
  g_source_unref (capture_source);
  node_clear (&trio.a);
  node_clear (&trio.b);
  node_clear (&trio.c);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);

  g_test_add_func ("/lan/multicast/find-and-connect", test_find_and_connect);

  return g_test_run ();
}
