/* natter-lan-peer.c: a LAN discovery instance driven by line commands
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * For the network-namespace tests.  Prints "id PEER_ID" and
 * "keys ED25519_HEX X25519_HEX" (its public keys, for tests that look for
 * them in captured traffic) at once, then reads commands on stdin:
 *   contact PEER_ID   look for this contact, start discovery if needed,
 *                     and connect to it (signaling over the LAN) once found
 *   start             start discovery, with the contacts given so far
 *   discoverable on|off
 *   send TEXT         send TEXT on the chat stream of the connection
 *   stats             print the discovery counters
 *   quit              exit (so does end of input)
 * and reports on stdout:
 *   found PEER_ID ADDRESS, lost PEER_ID, connected PEER_ID,
 *   nearby HANDLE ADDRESS, nearby-lost HANDLE, revealed PEER_ID ADDRESS,
 *   message TEXT, stats NAME=VALUE..., failed REASON
 * Interfaces come from NATTER_INTERFACES, as in the product: with it unset,
 * every interface that is up and not loopback.
 */

#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sodium.h>
#include <gio/gunixinputstream.h>

#include "natter-identity.h"
#include "natter-lan-discovery.h"
#include "natter-peer-connection.h"

typedef struct
{
  GMainLoop            *loop;
  NatterIdentity       *identity;
  NatterLanDiscovery   *discovery;
  NatterPeerConnection *connection;
  GDataInputStream     *input;
  GPtrArray            *contacts;
  gboolean              started;
  int                   status;
} Peer;

static void
say (const char *format,
     ...)
{
  va_list args;

  va_start (args, format);
  vprintf (format, args);
  va_end (args);
  putchar ('\n');
  fflush (stdout);
}

static void
say_keys (NatterIdentity *identity)
{
  char ed25519_hex[2 * NATTER_PUBLIC_KEY_LEN + 1];
  char x25519_hex[2 * NATTER_X25519_KEY_LEN + 1];

  sodium_bin2hex (ed25519_hex, sizeof ed25519_hex,
                  natter_identity_get_public_key (identity), NATTER_PUBLIC_KEY_LEN);
  sodium_bin2hex (x25519_hex, sizeof x25519_hex,
                  natter_identity_get_x25519_public (identity), NATTER_X25519_KEY_LEN);
  say ("keys %s %s", ed25519_hex, x25519_hex);
}

static void
fail (Peer       *peer,
      const char *reason)
{
  say ("failed %s", reason);
  peer->status = 1;
  g_main_loop_quit (peer->loop);
}

static void
connection_signal_cb (NatterPeerConnection *connection,
                      GBytes               *blob,
                      Peer                 *peer)
{
  g_autoptr(GError) error = NULL;

  if (!natter_lan_discovery_send_signal (peer->discovery,
                                         natter_peer_connection_get_remote_peer_id (connection),
                                         blob, &error))
    fail (peer, error->message);
}

static void
connection_message_cb (NatterPeerConnection *connection,
                       guint                 stream,
                       GBytes               *message,
                       Peer                 *peer)
{
  gsize len;
  const char *data = g_bytes_get_data (message, &len);

  if (stream == NATTER_PEER_STREAM_CHAT)
    say ("message %.*s", (int) len, data);
}

static void
connection_state_cb (NatterPeerConnection *connection,
                     GParamSpec           *pspec,
                     Peer                 *peer)
{
  NatterPeerConnectionState state = natter_peer_connection_get_state (connection);

  if (state == NATTER_PEER_CONNECTION_STATE_CONNECTED)
    say ("connected %s", natter_peer_connection_get_remote_peer_id (connection));
  else if (state == NATTER_PEER_CONNECTION_STATE_FAILED)
    {
      const GError *error = natter_peer_connection_get_error (connection);

      fail (peer, error != NULL ? error->message : "connection failed");
    }
}

static void
ensure_connection (Peer       *peer,
                   const char *peer_id)
{
  g_autoptr(NatterIceConfig) config = natter_ice_config_new ();
  g_autoptr(GError) error = NULL;

  if (peer->connection != NULL)
    return;
  natter_ice_config_set_ipv6 (config, FALSE);
  peer->connection = natter_peer_connection_new (peer->identity, peer_id, config, &error);
  if (peer->connection == NULL)
    {
      fail (peer, error->message);
      return;
    }
  g_signal_connect (peer->connection, "signal", G_CALLBACK (connection_signal_cb), peer);
  g_signal_connect (peer->connection, "message", G_CALLBACK (connection_message_cb), peer);
  g_signal_connect (peer->connection, "notify::state", G_CALLBACK (connection_state_cb), peer);
  natter_peer_connection_start (peer->connection);
}

static void
contact_found_cb (NatterLanDiscovery *discovery,
                  const char         *peer_id,
                  GInetSocketAddress *address,
                  Peer               *peer)
{
  g_autofree char *text = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (address));

  say ("found %s %s", peer_id, text);
  ensure_connection (peer, peer_id);
}

static void
contact_lost_cb (NatterLanDiscovery *discovery,
                 const char         *peer_id,
                 Peer               *peer)
{
  say ("lost %s", peer_id);
}

static void
signal_received_cb (NatterLanDiscovery *discovery,
                    const char         *peer_id,
                    GBytes             *blob,
                    Peer               *peer)
{
  g_autoptr(GError) error = NULL;

  ensure_connection (peer, peer_id);
  if (peer->connection != NULL && !natter_peer_connection_handle_signal (peer->connection, blob, &error))
    say ("bad-signal %s", error->message);
}

static void
nearby_found_cb (NatterLanDiscovery *discovery,
                 const char         *handle,
                 GInetSocketAddress *address,
                 Peer               *peer)
{
  g_autofree char *text = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (address));

  say ("nearby %s %s", handle, text);
}

static void
nearby_lost_cb (NatterLanDiscovery *discovery,
                const char         *handle,
                Peer               *peer)
{
  say ("nearby-lost %s", handle);
}

static void
nearby_revealed_cb (NatterLanDiscovery *discovery,
                    const char         *peer_id,
                    GInetSocketAddress *address,
                    Peer               *peer)
{
  g_autofree char *text = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (address));

  say ("revealed %s %s", peer_id, text);
}

static void
say_stats (Peer *peer)
{
  NatterLanDiscoveryStats stats;

  natter_lan_discovery_get_stats (peer->discovery, &stats);
  say ("stats announcements-sent=%" G_GUINT64_FORMAT
       " announcements-received=%" G_GUINT64_FORMAT
       " announcements-recognised=%" G_GUINT64_FORMAT
       " dropped-malformed=%" G_GUINT64_FORMAT
       " dropped-oversized=%" G_GUINT64_FORMAT
       " dropped-rate=%" G_GUINT64_FORMAT
       " reveals-received=%" G_GUINT64_FORMAT
       " signals-sent=%" G_GUINT64_FORMAT
       " signals-received=%" G_GUINT64_FORMAT
       " signals-dropped-malformed=%" G_GUINT64_FORMAT
       " signals-dropped-rejected=%" G_GUINT64_FORMAT
       " signals-dropped-rate=%" G_GUINT64_FORMAT
       " send-errors=%" G_GUINT64_FORMAT,
       stats.announcements_sent, stats.announcements_received,
       stats.announcements_recognised, stats.dropped_malformed,
       stats.dropped_oversized, stats.dropped_rate, stats.reveals_received,
       stats.signals_sent, stats.signals_received,
       stats.signals_dropped_malformed, stats.signals_dropped_rejected,
       stats.signals_dropped_rate, stats.send_errors);
}

static void
start_discovery (Peer *peer)
{
  g_autoptr(GError) error = NULL;

  if (peer->started)
    return;
  if (!natter_lan_discovery_start (peer->discovery, &error))
    {
      fail (peer, error->message);
      return;
    }
  peer->started = TRUE;
}

static void read_next_line (Peer *peer);

static void
handle_command (Peer       *peer,
                const char *line)
{
  g_autoptr(GError) error = NULL;

  if (g_str_has_prefix (line, "contact "))
    {
      g_ptr_array_remove_index (peer->contacts, peer->contacts->len - 1);
      g_ptr_array_add (peer->contacts, g_strdup (line + strlen ("contact ")));
      g_ptr_array_add (peer->contacts, NULL);
      natter_lan_discovery_set_contacts (peer->discovery, (const char * const *) peer->contacts->pdata);
      start_discovery (peer);
    }
  else if (g_str_equal (line, "start"))
    start_discovery (peer);
  else if (g_str_equal (line, "discoverable on") || g_str_equal (line, "discoverable off"))
    natter_lan_discovery_set_discoverable (peer->discovery, g_str_equal (line, "discoverable on"));
  else if (g_str_equal (line, "stats"))
    say_stats (peer);
  else if (g_str_has_prefix (line, "send "))
    {
      g_autoptr(GBytes) message = g_bytes_new (line + 5, strlen (line + 5));

      if (peer->connection == NULL ||
          !natter_peer_connection_send (peer->connection, NATTER_PEER_STREAM_CHAT, message, &error))
        fail (peer, error != NULL ? error->message : "no connection");
    }
  else if (g_str_equal (line, "quit"))
    g_main_loop_quit (peer->loop);
  else
    say ("unknown-command");
}

static void
line_read_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Peer *peer = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = g_data_input_stream_read_line_finish_utf8 (peer->input, result, NULL, &error);

  if (line == NULL)
    {
      g_main_loop_quit (peer->loop);
      return;
    }
  handle_command (peer, g_strstrip (line));
  if (g_main_loop_is_running (peer->loop))
    read_next_line (peer);
}

static void
read_next_line (Peer *peer)
{
  g_data_input_stream_read_line_async (peer->input, G_PRIORITY_DEFAULT, NULL, line_read_cb, peer);
}

int
main (int   argc,
      char *argv[])
{
  Peer peer = { 0 };
  g_autoptr(GInputStream) stdin_stream = NULL;

  if (sodium_init () < 0)
    return 1;

  peer.loop = g_main_loop_new (NULL, FALSE);
  peer.identity = natter_identity_new_random ();
  peer.discovery = natter_lan_discovery_new (NULL, peer.identity, NULL);
  peer.contacts = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (peer.contacts, NULL);
  g_signal_connect (peer.discovery, "contact-found", G_CALLBACK (contact_found_cb), &peer);
  g_signal_connect (peer.discovery, "contact-lost", G_CALLBACK (contact_lost_cb), &peer);
  g_signal_connect (peer.discovery, "signal-received", G_CALLBACK (signal_received_cb), &peer);
  g_signal_connect (peer.discovery, "nearby-found", G_CALLBACK (nearby_found_cb), &peer);
  g_signal_connect (peer.discovery, "nearby-lost", G_CALLBACK (nearby_lost_cb), &peer);
  g_signal_connect (peer.discovery, "nearby-revealed", G_CALLBACK (nearby_revealed_cb), &peer);

  stdin_stream = g_unix_input_stream_new (0, FALSE);
  peer.input = g_data_input_stream_new (stdin_stream);
  say ("id %s", natter_identity_get_peer_id (peer.identity));
  say_keys (peer.identity);
  read_next_line (&peer);
  g_main_loop_run (peer.loop);

  if (peer.connection != NULL)
    natter_peer_connection_close (peer.connection);
  g_clear_object (&peer.connection);
  natter_lan_discovery_stop (peer.discovery);
  g_clear_object (&peer.discovery);
  g_clear_object (&peer.input);
  g_clear_pointer (&peer.contacts, g_ptr_array_unref);
  g_clear_object (&peer.identity);
  g_main_loop_unref (peer.loop);
  return peer.status;
}
