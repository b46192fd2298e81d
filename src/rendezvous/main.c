/* main.c: natter-rendezvous, the optional signaling and presence server
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <locale.h>
#include <stdio.h>

#include <glib-unix.h>

#include "natter-rendezvous-protocol.h"
#include "natter-rendezvous-server.h"

static gboolean
on_signal (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_REMOVE;
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *listen = NULL;
  g_autofree char *tls_cert = NULL;
  g_autofree char *tls_key = NULL;
  int port = 8787;
  int max_connections = NATTER_RENDEZVOUS_DEFAULT_MAX_CONNECTIONS;
  int idle_timeout = NATTER_RENDEZVOUS_DEFAULT_IDLE_TIMEOUT;
  gboolean verbose = FALSE;
  gboolean dump_frames = FALSE;
  gboolean version = FALSE;
  const GOptionEntry entries[] = {
    { "listen", 'l', 0, G_OPTION_ARG_STRING, &listen,
      "Address to listen on (default 127.0.0.1)", "ADDRESS" },
    { "port", 'p', 0, G_OPTION_ARG_INT, &port,
      "Port to listen on, 0 for any free one (default 8787)", "PORT" },
    { "tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &tls_cert,
      "PEM certificate (chain) for TLS", "FILE" },
    { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &tls_key,
      "PEM private key for TLS", "FILE" },
    { "max-connections", 0, 0, G_OPTION_ARG_INT, &max_connections,
      "Most connections at once (default 10000)", "N" },
    { "idle-timeout", 0, 0, G_OPTION_ARG_INT, &idle_timeout,
      "Seconds without a message before a client is closed (default 120)", "SECONDS" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
      "Log connections, registrations and closes", NULL },
    { "dump-frames", 0, 0, G_OPTION_ARG_NONE, &dump_frames,
      "Log every incoming frame (debugging)", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version,
      "Print the version and exit", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) address = NULL;
  g_autoptr(GTlsCertificate) certificate = NULL;
  g_autoptr(NatterRendezvousServer) server = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autofree char *host = NULL;
  guint bound;

  setlocale (LC_ALL, "");
  g_set_prgname ("natter-rendezvous");

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context,
    "Forwards sealed signaling blobs between authenticated Natter peers and\n"
    "tells mutual contacts when each other is online.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("natter-rendezvous: %s\n", error->message);
      return 2;
    }
  if (version)
    {
      g_print ("natter-rendezvous %s\n", PACKAGE_VERSION);
      return 0;
    }
  if (port < 0 || port > G_MAXUINT16)
    {
      g_printerr ("natter-rendezvous: --port must be between 0 and 65535\n");
      return 2;
    }
  if (max_connections < 1)
    {
      g_printerr ("natter-rendezvous: --max-connections must be at least 1\n");
      return 2;
    }
  if (idle_timeout < 1 || idle_timeout > 24 * 3600)
    {
      g_printerr ("natter-rendezvous: --idle-timeout must be between 1 and 86400\n");
      return 2;
    }
  if ((tls_cert == NULL) != (tls_key == NULL))
    {
      g_printerr ("natter-rendezvous: --tls-cert and --tls-key go together\n");
      return 2;
    }

  /* Never a public default: listening beyond this host is a choice. */
  address = g_inet_address_new_from_string (listen != NULL ? listen : "127.0.0.1");
  if (address == NULL)
    {
      g_printerr ("natter-rendezvous: “%s” is not an IP address\n", listen);
      return 2;
    }

  if (tls_cert != NULL)
    {
      certificate = g_tls_certificate_new_from_files (tls_cert, tls_key, &error);
      if (certificate == NULL)
        {
          g_printerr ("natter-rendezvous: %s\n", error->message);
          return 1;
        }
    }

  /* Standard output carries only the "listening on" line. */
  g_log_writer_default_set_use_stderr (TRUE);
  if (verbose || dump_frames)
    g_log_set_debug_enabled (TRUE);

  server = g_object_new (NATTER_TYPE_RENDEZVOUS_SERVER,
                         "max-connections", (guint) max_connections,
                         "idle-timeout", (guint) idle_timeout,
                         "dump-frames", dump_frames,
                         NULL);

  bound = natter_rendezvous_server_listen (server, address, port, certificate, &error);
  if (bound == 0)
    {
      g_printerr ("natter-rendezvous: %s\n", error->message);
      return 1;
    }

  host = g_inet_address_to_string (address);
  g_print ("natter-rendezvous: listening on %s://%s%s%s:%u%s\n",
           certificate != NULL ? "wss" : "ws",
           g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV6 ? "[" : "", host,
           g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV6 ? "]" : "",
           bound, NATTER_RENDEZVOUS_PATH);
  fflush (stdout);

  loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGINT, on_signal, loop);
  g_unix_signal_add (SIGTERM, on_signal, loop);
  g_main_loop_run (loop);

  return 0;
}
