/* natter-test-peer.c: one peer connection driven by line commands, for scripts
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixinputstream.h>
#include <sodium.h>

#include "natter-identity.h"
#include "natter-peer-connection.h"
#include "natter-rendezvous-client.h"

/* A headless peer for transport tests across network namespaces, and a
 * handy manual tool.  It runs one NatterPeerConnection with a fresh random
 * identity, takes commands on stdin and reports events on stdout, one line
 * each (flushed at once).  A script starts one in each namespace and copies
 * every "signal" line of one to the other's stdin.
 *
 * With --rendezvous ws://HOST:PORT/v1 it registers with that
 * natter-rendezvous server instead, and signaling goes through the server:
 * "signal" lines are neither printed nor needed.  "connect PEER-ID" adds
 * PEER-ID to the contact list; presence and delivery need both sides to
 * list each other ("contact PEER-ID" does it before connecting), so a
 * script waits for "presence PEER-ID online" before "connect"; a blob the
 * client cannot send is reported as "error signal: ...".
 *
 * Output:
 *   id PEER-ID                    first line: our identity
 *   signal BASE64                 a signaling blob for the other side
 *   state connecting
 *   state connected LTYPE RTYPE LADDR:LPORT RADDR:RPORT MS
 *                                 the selected ICE pair ("host", "srflx",
 *                                 "prflx", "relay") and the time since
 *                                 "connect" in ms
 *   state failed|closed CODE TEXT CODE is the error: invalid-signal,
 *                                 ice-failed, handshake, wrong-peer,
 *                                 peer-lost, closed, too-large, invalid
 *   lost MS                       after "state failed peer-lost": ms since the
 *                                 last message received (or since connected)
 *   sending HANDED TOTAL BUFFERED every second while a "send" runs
 *   sent COUNT BYTES MS           every message of a "send" was acknowledged
 *                                 by the peer, MS after the command
 *   send-aborted HANDED TOTAL     the connection ended during a "send"
 *   progress RECEIVED EXPECTED IN-ORDER CORRUPT
 *                                 every second while messages arrive, and
 *                                 before "done"; EXPECTED 0 is unknown,
 *                                 IN-ORDER is yes or no
 *   done RECEIVED IN-ORDER CORRUPT BYTES MS
 *                                 all expected messages arrived; MS from the
 *                                 first message to the last
 *   status STATE BUFFERED SENT RECEIVED DROPPED [LTYPE RTYPE]
 *   rendezvous registered|connecting|disconnected
 *                                 the rendezvous client's state changed
 *   presence PEER-ID online|offline
 *                                 a mutual contact came online or left
 *   undeliverable PEER-ID         the server did not deliver a signal
 *   error TEXT                    a command was refused
 *
 * Commands:
 *   connect PEER-ID       (re)connect to that peer; replaces any connection
 *   signal BASE64         a blob from the other side's "signal" line; kept
 *                         for the next "connect" while there is no live
 *                         connection
 *   send COUNT MAX-SIZE   send COUNT messages of random sizes on the chat
 *                         stream, HEADER_LEN..MAX-SIZE bytes, respecting
 *                         back-pressure; starts once connected
 *   expect COUNT          reset the receive counters and expect COUNT
 *                         messages (otherwise learnt from the first message)
 *   status                print a "status" line
 *   contact PEER-ID       with --rendezvous: add PEER-ID to the contacts
 *   close                 close the connection
 *   quit                  close and exit (so does end of input)
 *
 * Each test message is: "NTP1", run id, sequence number and run length
 * (32-bit big-endian each), a BLAKE2b-128 checksum of the rest of the
 * message, then random bytes.  The receiver checks the checksum and that
 * sequence numbers follow each other within a run. */

#define MAGIC             "NTP1"
#define HEADER_LEN        32
#define CHECKSUM_OFFSET   16
#define CHECKSUM_LEN      16
#define SEND_HIGH_WATER   (1024 * 1024)
#define SEND_LOW_WATER    (256 * 1024)
#define TICK_MS           100
#define REPORT_MS         1000
#define MAX_PENDING       256

typedef struct
{
  GMainLoop *loop;
  NatterIdentity *identity;
  NatterIceConfig *config;
  NatterPeerConnection *pc;
  GPtrArray *pending_signals;      /* GBytes that came while no connection was live */
  NatterRendezvousClient *rendezvous;  /* NULL: signaling over stdin/stdout */
  GPtrArray *contacts;             /* canonical peer IDs, NULL-terminated */

  GDataInputStream *input;
  GCancellable *cancellable;
  guint tick_id;
  gint64 last_report_us;

  gint64 connect_us;               /* when "connect" was given */
  gint64 last_message_us;          /* last message received, or connected */

  /* Sending. */
  gboolean sending;
  guint32 send_run;
  guint send_total;
  guint send_next;
  gsize send_max_size;
  guint64 send_bytes;
  gint64 send_start_us;

  /* Receiving. */
  guint32 recv_run;                /* 0: none yet */
  guint recv_expected;             /* 0: unknown */
  guint recv_expected_next;        /* from "expect", for the next run */
  guint recv_count;
  guint recv_corrupt;
  gboolean recv_in_order;
  gboolean recv_done;
  guint64 recv_bytes;
  gint64 recv_first_us;
  gint64 recv_last_us;
  guint recv_reported;
  guint recv_corrupt_reported;
} Peer;

static void peer_read_next (Peer *peer);

/* ---- Output -------------------------------------------------------------- */

static void emit (const char *format,
                  ...) G_GNUC_PRINTF (1, 2);

static void
emit (const char *format,
      ...)
{
  g_autofree char *line = NULL;
  va_list args;

  va_start (args, format);
  line = g_strdup_vprintf (format, args);
  va_end (args);

  /* One event, one line: no control characters from error messages. */
  for (char *p = line; *p; p++)
    if ((guchar) *p < ' ' || *p == 0x7f)
      *p = ' ';
  fputs (line, stdout);
  fputc ('\n', stdout);
  fflush (stdout);
}

static const char *
error_code_to_string (const GError *error)
{
  if (error == NULL || error->domain != NATTER_PEER_CONNECTION_ERROR)
    return "unknown";

  switch ((NatterPeerConnectionError) error->code)
    {
    case NATTER_PEER_CONNECTION_ERROR_INVALID_SIGNAL: return "invalid-signal";
    case NATTER_PEER_CONNECTION_ERROR_ICE_FAILED:     return "ice-failed";
    case NATTER_PEER_CONNECTION_ERROR_HANDSHAKE:      return "handshake";
    case NATTER_PEER_CONNECTION_ERROR_WRONG_PEER:     return "wrong-peer";
    case NATTER_PEER_CONNECTION_ERROR_PEER_LOST:      return "peer-lost";
    case NATTER_PEER_CONNECTION_ERROR_CLOSED:         return "closed";
    case NATTER_PEER_CONNECTION_ERROR_TOO_LARGE:      return "too-large";
    case NATTER_PEER_CONNECTION_ERROR_INVALID:        return "invalid";
    default:                                          return "unknown";
    }
}

static gint64
ms_since (gint64 then_us)
{
  return (g_get_monotonic_time () - then_us) / 1000;
}

/* ---- Test messages ------------------------------------------------------- */

static void
message_checksum (const guint8 *data,
                  gsize         len,
                  guint8        out[CHECKSUM_LEN])
{
  crypto_generichash_state state;

  crypto_generichash_init (&state, NULL, 0, CHECKSUM_LEN);
  crypto_generichash_update (&state, data, CHECKSUM_OFFSET);
  crypto_generichash_update (&state, data + HEADER_LEN, len - HEADER_LEN);
  crypto_generichash_final (&state, out, CHECKSUM_LEN);
}

static GBytes *
message_new (guint32 run,
             guint32 seq,
             guint32 total,
             gsize   len)
{
  guint8 *data = g_malloc (len);
  guint32 be;

  memcpy (data, MAGIC, 4);
  be = GUINT32_TO_BE (run);
  memcpy (data + 4, &be, 4);
  be = GUINT32_TO_BE (seq);
  memcpy (data + 8, &be, 4);
  be = GUINT32_TO_BE (total);
  memcpy (data + 12, &be, 4);
  randombytes_buf (data + HEADER_LEN, len - HEADER_LEN);
  message_checksum (data, len, data + CHECKSUM_OFFSET);

  return g_bytes_new_take (data, len);
}

static guint32
read_be32 (const guint8 *p)
{
  guint32 be;

  memcpy (&be, p, 4);
  return GUINT32_FROM_BE (be);
}

/* ---- Receiving ----------------------------------------------------------- */

static void
peer_report_progress (Peer *peer)
{
  peer->recv_reported = peer->recv_count;
  peer->recv_corrupt_reported = peer->recv_corrupt;
  emit ("progress %u %u %s %u", peer->recv_count, peer->recv_expected,
        peer->recv_in_order ? "yes" : "no", peer->recv_corrupt);
}

static void
peer_reset_receive (Peer  *peer,
                    guint  expected)
{
  peer->recv_run = 0;
  peer->recv_expected = 0;
  peer->recv_expected_next = expected;
  peer->recv_count = 0;
  peer->recv_corrupt = 0;
  peer->recv_in_order = TRUE;
  peer->recv_done = FALSE;
  peer->recv_bytes = 0;
  peer->recv_reported = 0;
  peer->recv_corrupt_reported = 0;
}

static void
on_message (NatterPeerConnection *pc,
            guint                 stream,
            GBytes               *message,
            Peer                 *peer)
{
  guint8 checksum[CHECKSUM_LEN];
  gsize len;
  const guint8 *data = g_bytes_get_data (message, &len);
  guint32 run;
  guint32 seq;
  guint32 total;
  gint64 now = g_get_monotonic_time ();

  peer->last_message_us = now;
  if (stream != NATTER_PEER_STREAM_CHAT)
    return;

  if (len < HEADER_LEN || memcmp (data, MAGIC, 4) != 0)
    {
      peer->recv_corrupt++;
      return;
    }
  message_checksum (data, len, checksum);
  if (sodium_memcmp (checksum, data + CHECKSUM_OFFSET, CHECKSUM_LEN) != 0)
    {
      peer->recv_corrupt++;
      return;
    }

  run = read_be32 (data + 4);
  seq = read_be32 (data + 8);
  total = read_be32 (data + 12);

  if (run != peer->recv_run)
    {
      guint expected = peer->recv_expected_next != 0 ? peer->recv_expected_next : total;
      guint corrupt = peer->recv_run == 0 ? peer->recv_corrupt : 0;

      /* A new run; corrupt messages that came before its first one count
       * for it unless an earlier run was going. */
      peer_reset_receive (peer, 0);
      peer->recv_run = run;
      peer->recv_expected = expected;
      peer->recv_corrupt = corrupt;
      peer->recv_first_us = now;
    }

  if (seq != peer->recv_count)
    peer->recv_in_order = FALSE;
  peer->recv_count++;
  peer->recv_bytes += len;
  peer->recv_last_us = now;

  if (!peer->recv_done && peer->recv_expected != 0 && peer->recv_count >= peer->recv_expected)
    {
      peer->recv_done = TRUE;
      peer_report_progress (peer);
      emit ("done %u %s %u %" G_GUINT64_FORMAT " %" G_GINT64_FORMAT,
            peer->recv_count, peer->recv_in_order ? "yes" : "no", peer->recv_corrupt,
            peer->recv_bytes, (peer->recv_last_us - peer->recv_first_us) / 1000);
    }
}

/* ---- Sending ------------------------------------------------------------- */

static void
peer_pump (Peer *peer)
{
  if (!peer->sending || peer->pc == NULL ||
      natter_peer_connection_get_state (peer->pc) != NATTER_PEER_CONNECTION_STATE_CONNECTED)
    return;

  while (peer->send_next < peer->send_total &&
         natter_peer_connection_get_buffered_amount (peer->pc) < SEND_HIGH_WATER)
    {
      gsize len = HEADER_LEN + g_random_int_range (0, (gint32) (peer->send_max_size - HEADER_LEN + 1));
      g_autoptr(GBytes) message = message_new (peer->send_run, peer->send_next, peer->send_total, len);
      g_autoptr(GError) error = NULL;

      if (!natter_peer_connection_send (peer->pc, NATTER_PEER_STREAM_CHAT, message, &error))
        {
          emit ("error send: %s", error->message);
          emit ("send-aborted %u %u", peer->send_next, peer->send_total);
          peer->sending = FALSE;
          return;
        }
      peer->send_next++;
      peer->send_bytes += len;
    }
}

static void
on_buffered_amount_low (NatterPeerConnection *pc,
                        Peer                 *peer)
{
  peer_pump (peer);
}

static void
peer_check_sent (Peer *peer)
{
  if (!peer->sending || peer->send_next < peer->send_total ||
      natter_peer_connection_get_buffered_amount (peer->pc) > 0)
    return;

  peer->sending = FALSE;
  emit ("sent %u %" G_GUINT64_FORMAT " %" G_GINT64_FORMAT,
        peer->send_total, peer->send_bytes, ms_since (peer->send_start_us));
}

/* ---- The connection ------------------------------------------------------ */

static void
on_signal (NatterPeerConnection *pc,
           GBytes               *blob,
           Peer                 *peer)
{
  gsize len;
  const guint8 *data;
  g_autofree char *text = NULL;

  if (peer->rendezvous != NULL)
    {
      g_autoptr(GError) error = NULL;

      if (!natter_rendezvous_client_send_signal (peer->rendezvous,
                                                 natter_peer_connection_get_remote_peer_id (pc),
                                                 blob, &error))
        emit ("error signal: %s", error->message);
      return;
    }

  data = g_bytes_get_data (blob, &len);
  text = g_base64_encode (data, len);
  emit ("signal %s", text);
}

static void
on_state (NatterPeerConnection *pc,
          GParamSpec           *pspec,
          Peer                 *peer)
{
  NatterPeerConnectionState state = natter_peer_connection_get_state (pc);
  const GError *error = natter_peer_connection_get_error (pc);
  NatterIcePairInfo info;

  switch (state)
    {
    case NATTER_PEER_CONNECTION_STATE_CONNECTED:
      peer->last_message_us = g_get_monotonic_time ();
      if (natter_peer_connection_get_selected_pair (pc, &info))
        emit ("state connected %s %s %s:%u %s:%u %" G_GINT64_FORMAT,
              natter_ice_candidate_type_to_string (info.local_type),
              natter_ice_candidate_type_to_string (info.remote_type),
              info.local_ip, info.local_port, info.remote_ip, info.remote_port,
              ms_since (peer->connect_us));
      else
        emit ("state connected unknown unknown - - %" G_GINT64_FORMAT, ms_since (peer->connect_us));
      peer_pump (peer);
      break;

    case NATTER_PEER_CONNECTION_STATE_FAILED:
    case NATTER_PEER_CONNECTION_STATE_CLOSED:
      emit ("state %s %s %s", natter_peer_connection_state_to_string (state),
            error_code_to_string (error), error != NULL ? error->message : "-");
      if (g_error_matches (error, NATTER_PEER_CONNECTION_ERROR, NATTER_PEER_CONNECTION_ERROR_PEER_LOST))
        emit ("lost %" G_GINT64_FORMAT, ms_since (peer->last_message_us));
      if (peer->sending)
        {
          emit ("send-aborted %u %u", peer->send_next, peer->send_total);
          peer->sending = FALSE;
        }
      break;

    case NATTER_PEER_CONNECTION_STATE_NEW:
    case NATTER_PEER_CONNECTION_STATE_CONNECTING:
    default:
      emit ("state %s", natter_peer_connection_state_to_string (state));
      break;
    }
}

static gboolean
peer_is_live (Peer *peer)
{
  NatterPeerConnectionState state;

  if (peer->pc == NULL)
    return FALSE;
  state = natter_peer_connection_get_state (peer->pc);
  return state == NATTER_PEER_CONNECTION_STATE_CONNECTING ||
         state == NATTER_PEER_CONNECTION_STATE_CONNECTED;
}

/* Drops the connection without reporting anything more about it. */
static void
peer_drop_connection (Peer *peer)
{
  if (peer->pc == NULL)
    return;

  g_signal_handlers_disconnect_by_data (peer->pc, peer);
  natter_peer_connection_close (peer->pc);
  g_clear_object (&peer->pc);
  if (peer->sending)
    {
      emit ("send-aborted %u %u", peer->send_next, peer->send_total);
      peer->sending = FALSE;
    }
}

static void
peer_connect (Peer       *peer,
              const char *remote_peer_id)
{
  g_autoptr(NatterPeerConnection) pc = NULL;
  g_autoptr(GError) error = NULL;

  pc = natter_peer_connection_new (peer->identity, remote_peer_id, peer->config, &error);
  if (pc == NULL)
    {
      emit ("error connect: %s", error->message);
      return;
    }

  peer_drop_connection (peer);
  peer->pc = g_steal_pointer (&pc);
  peer->connect_us = g_get_monotonic_time ();
  natter_peer_connection_set_buffered_amount_low_threshold (peer->pc, SEND_LOW_WATER);
  g_signal_connect (peer->pc, "signal", G_CALLBACK (on_signal), peer);
  g_signal_connect (peer->pc, "notify::state", G_CALLBACK (on_state), peer);
  g_signal_connect (peer->pc, "message", G_CALLBACK (on_message), peer);
  g_signal_connect (peer->pc, "buffered-amount-low", G_CALLBACK (on_buffered_amount_low), peer);
  natter_peer_connection_start (peer->pc);

  /* Blobs the other side sent before we were ready. */
  for (guint i = 0; i < peer->pending_signals->len; i++)
    {
      g_autoptr(GError) signal_error = NULL;

      if (!natter_peer_connection_handle_signal (peer->pc, g_ptr_array_index (peer->pending_signals, i),
                                                 &signal_error))
        emit ("error signal: %s", signal_error->message);
    }
  g_ptr_array_set_size (peer->pending_signals, 0);
}

/* ---- Rendezvous ---------------------------------------------------------- */

static void
peer_take_signal (Peer   *peer,
                  GBytes *blob)
{
  g_autoptr(GError) error = NULL;

  if (peer_is_live (peer))
    {
      if (!natter_peer_connection_handle_signal (peer->pc, blob, &error))
        emit ("error signal: %s", error->message);
    }
  else if (peer->pending_signals->len < MAX_PENDING)
    g_ptr_array_add (peer->pending_signals, g_bytes_ref (blob));
  else
    emit ("error signal: too many signals waiting for a connection");
}

static void
on_rendezvous_state (NatterRendezvousClient *client,
                     GParamSpec             *pspec,
                     Peer                   *peer)
{
  switch (natter_rendezvous_client_get_state (client))
    {
    case NATTER_RENDEZVOUS_CLIENT_STATE_REGISTERED:
      emit ("rendezvous registered");
      break;
    case NATTER_RENDEZVOUS_CLIENT_STATE_CONNECTING:
      emit ("rendezvous connecting");
      break;
    case NATTER_RENDEZVOUS_CLIENT_STATE_DISCONNECTED:
    default:
      emit ("rendezvous disconnected");
      break;
    }
}

static void
on_presence_changed (NatterRendezvousClient *client,
                     const char             *peer_id,
                     gboolean                online,
                     Peer                   *peer)
{
  emit ("presence %s %s", peer_id, online ? "online" : "offline");
}

static void
on_signal_received (NatterRendezvousClient *client,
                    const char             *from,
                    GBytes                 *blob,
                    Peer                   *peer)
{
  /* Only blobs from the peer we are connected (or connecting) to reach
   * the live connection; any contact's blob waits for a "connect". */
  if (peer_is_live (peer) &&
      !g_str_equal (from, natter_peer_connection_get_remote_peer_id (peer->pc)))
    {
      emit ("error signal: from %s, not the connected peer", from);
      return;
    }
  peer_take_signal (peer, blob);
}

static void
on_undeliverable (NatterRendezvousClient *client,
                  const char             *peer_id,
                  Peer                   *peer)
{
  emit ("undeliverable %s", peer_id);
}

/* Adds @text to the contact list; FALSE with an "error" line if invalid. */
static gboolean
peer_add_contact (Peer       *peer,
                  const char *command,
                  const char *text)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *peer_id = natter_peer_id_normalize (text, &error);

  if (peer_id == NULL)
    {
      emit ("error %s: %s", command, error->message);
      return FALSE;
    }
  for (guint i = 0; i + 1 < peer->contacts->len; i++)
    if (g_str_equal (g_ptr_array_index (peer->contacts, i), peer_id))
      return TRUE;

  /* Keep the NULL terminator last. */
  g_ptr_array_insert (peer->contacts, (gint) peer->contacts->len - 1, g_steal_pointer (&peer_id));
  if (!natter_rendezvous_client_set_contacts (peer->rendezvous,
                                              (const char * const *) peer->contacts->pdata, &error))
    {
      emit ("error %s: %s", command, error->message);
      return FALSE;
    }
  return TRUE;
}

static gboolean
peer_start_rendezvous (Peer        *peer,
                       const char  *url,
                       GError     **error)
{
  peer->rendezvous = natter_rendezvous_client_new (url, peer->identity, NULL, error);
  if (peer->rendezvous == NULL)
    return FALSE;

  peer->contacts = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (peer->contacts, NULL);
  g_signal_connect (peer->rendezvous, "notify::state", G_CALLBACK (on_rendezvous_state), peer);
  g_signal_connect (peer->rendezvous, "presence-changed", G_CALLBACK (on_presence_changed), peer);
  g_signal_connect (peer->rendezvous, "signal-received", G_CALLBACK (on_signal_received), peer);
  g_signal_connect (peer->rendezvous, "undeliverable", G_CALLBACK (on_undeliverable), peer);
  natter_rendezvous_client_start (peer->rendezvous);
  return TRUE;
}

static void
peer_stop_rendezvous (Peer *peer)
{
  if (peer->rendezvous == NULL)
    return;

  g_signal_handlers_disconnect_by_data (peer->rendezvous, peer);
  natter_rendezvous_client_stop (peer->rendezvous);
  g_clear_object (&peer->rendezvous);
  g_clear_pointer (&peer->contacts, g_ptr_array_unref);
}

/* ---- Commands ------------------------------------------------------------ */

static gboolean
parse_count (const char *text,
             guint64     min,
             guint64     max,
             guint      *out)
{
  guint64 value;

  if (text == NULL || !g_ascii_string_to_unsigned (text, 10, min, max, &value, NULL))
    return FALSE;
  *out = (guint) value;
  return TRUE;
}

static void
peer_quit (Peer *peer)
{
  peer_drop_connection (peer);
  peer_stop_rendezvous (peer);
  g_main_loop_quit (peer->loop);
}

static void
peer_command (Peer       *peer,
              const char *line)
{
  g_auto(GStrv) argv = g_strsplit_set (line, " \t", -1);
  g_autoptr(GPtrArray) words = g_ptr_array_new ();
  const char *command;
  guint argc;

  for (guint i = 0; argv[i] != NULL; i++)
    if (*argv[i] != '\0')
      g_ptr_array_add (words, argv[i]);
  argc = words->len;
  if (argc == 0)
    return;
  command = g_ptr_array_index (words, 0);

  if (g_str_equal (command, "connect") && argc == 2)
    {
      if (peer->rendezvous == NULL ||
          peer_add_contact (peer, command, g_ptr_array_index (words, 1)))
        peer_connect (peer, g_ptr_array_index (words, 1));
    }
  else if (g_str_equal (command, "contact") && argc == 2)
    {
      if (peer->rendezvous == NULL)
        emit ("error contact: needs --rendezvous");
      else
        peer_add_contact (peer, command, g_ptr_array_index (words, 1));
    }
  else if (g_str_equal (command, "signal") && argc == 2)
    {
      gsize len;
      g_autofree guchar *data = g_base64_decode (g_ptr_array_index (words, 1), &len);
      g_autoptr(GBytes) blob = g_bytes_new_take (g_steal_pointer (&data), len);

      if (len == 0)
        emit ("error signal: not base64");
      else
        peer_take_signal (peer, blob);
    }
  else if (g_str_equal (command, "send") && argc == 3)
    {
      guint count;
      guint max_size;

      if (!parse_count (g_ptr_array_index (words, 1), 1, G_MAXUINT32, &count) ||
          !parse_count (g_ptr_array_index (words, 2), HEADER_LEN, NATTER_PEER_MAX_MESSAGE_SIZE, &max_size))
        emit ("error send: COUNT must be 1 or more, MAX-SIZE %d to %d", HEADER_LEN,
              NATTER_PEER_MAX_MESSAGE_SIZE);
      else if (peer->sending)
        emit ("error send: a send is already running");
      else if (!peer_is_live (peer))
        emit ("error send: not connected");
      else
        {
          peer->sending = TRUE;
          do
            peer->send_run = randombytes_random ();
          while (peer->send_run == 0);
          peer->send_total = count;
          peer->send_next = 0;
          peer->send_max_size = max_size;
          peer->send_bytes = 0;
          peer->send_start_us = g_get_monotonic_time ();
          peer_pump (peer);
        }
    }
  else if (g_str_equal (command, "expect") && argc == 2)
    {
      guint count;

      if (!parse_count (g_ptr_array_index (words, 1), 1, G_MAXUINT32, &count))
        emit ("error expect: COUNT must be 1 or more");
      else
        peer_reset_receive (peer, count);
    }
  else if (g_str_equal (command, "status") && argc == 1)
    {
      NatterPeerConnectionStats stats = { 0 };
      NatterIcePairInfo info;
      NatterPeerConnectionState state = NATTER_PEER_CONNECTION_STATE_NEW;

      if (peer->pc != NULL)
        {
          state = natter_peer_connection_get_state (peer->pc);
          natter_peer_connection_get_stats (peer->pc, &stats);
        }
      if (peer->pc != NULL && natter_peer_connection_get_selected_pair (peer->pc, &info))
        emit ("status %s %" G_GSIZE_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %s %s",
              natter_peer_connection_state_to_string (state),
              natter_peer_connection_get_buffered_amount (peer->pc),
              stats.messages_sent, stats.messages_received, stats.datagrams_dropped,
              natter_ice_candidate_type_to_string (info.local_type),
              natter_ice_candidate_type_to_string (info.remote_type));
      else
        emit ("status %s %" G_GSIZE_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
              natter_peer_connection_state_to_string (state),
              peer->pc != NULL ? natter_peer_connection_get_buffered_amount (peer->pc) : 0,
              stats.messages_sent, stats.messages_received, stats.datagrams_dropped);
    }
  else if (g_str_equal (command, "close") && argc == 1)
    {
      g_ptr_array_set_size (peer->pending_signals, 0);
      if (peer->pc != NULL)
        natter_peer_connection_close (peer->pc);
    }
  else if (g_str_equal (command, "quit") && argc == 1)
    {
      peer_quit (peer);
    }
  else
    emit ("error unknown command or wrong arguments: %s", command);
}

static void
on_line (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Peer *peer = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  gsize len;

  line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result, &len, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (line == NULL)
    {
      if (error != NULL)
        g_printerr ("natter-test-peer: cannot read commands: %s\n", error->message);
      peer_quit (peer);
      return;
    }

  g_strchomp (line);
  peer_command (peer, line);
  if (g_main_loop_is_running (peer->loop))
    peer_read_next (peer);
}

static void
peer_read_next (Peer *peer)
{
  g_data_input_stream_read_line_async (peer->input, G_PRIORITY_DEFAULT, peer->cancellable,
                                       on_line, peer);
}

static gboolean
on_tick (gpointer data)
{
  Peer *peer = data;
  gint64 now = g_get_monotonic_time ();
  gboolean report = now - peer->last_report_us >= (gint64) REPORT_MS * 1000;

  if (peer->sending)
    {
      peer_pump (peer);
      peer_check_sent (peer);
    }

  if (!report)
    return G_SOURCE_CONTINUE;
  peer->last_report_us = now;

  if (peer->sending && peer->pc != NULL)
    emit ("sending %u %u %" G_GSIZE_FORMAT, peer->send_next, peer->send_total,
          natter_peer_connection_get_buffered_amount (peer->pc));
  if (!peer->recv_done &&
      (peer->recv_count != peer->recv_reported || peer->recv_corrupt != peer->recv_corrupt_reported))
    peer_report_progress (peer);

  return G_SOURCE_CONTINUE;
}

static gboolean
on_grace_over (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

/* ---- Options ------------------------------------------------------------- */

/* Splits "HOST:PORT" or "[V6]:PORT". */
static gboolean
parse_host_port (const char  *text,
                 char       **host,
                 guint16     *port,
                 GError     **error)
{
  g_autoptr(GSocketConnectable) address = g_network_address_parse (text, 0, error);

  if (address == NULL)
    return FALSE;
  if (g_network_address_get_port (G_NETWORK_ADDRESS (address)) == 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "No port in '%s'", text);
      return FALSE;
    }
  *host = g_strdup (g_network_address_get_hostname (G_NETWORK_ADDRESS (address)));
  *port = g_network_address_get_port (G_NETWORK_ADDRESS (address));
  return TRUE;
}

static NatterIceConfig *
build_config (const char          *stun,
              const char * const  *turns,
              const char          *interfaces,
              gboolean             relay_only,
              gboolean             no_ipv6,
              GError             **error)
{
  g_autoptr(NatterIceConfig) config = natter_ice_config_new ();
  g_auto(GStrv) names = natter_ice_interfaces_from_env ();

  if (stun != NULL)
    {
      g_autofree char *host = NULL;
      guint16 port;

      if (!parse_host_port (stun, &host, &port, error) ||
          !natter_ice_config_set_stun_server (config, host, port, error))
        return NULL;
    }

  for (guint i = 0; turns != NULL && turns[i] != NULL; i++)
    {
      /* HOST:PORT:USER:PASS, parsed from the right. */
      g_autofree char *spec = g_strdup (turns[i]);
      g_autofree char *host = NULL;
      char *user;
      char *password;
      guint16 port;

      password = strrchr (spec, ':');
      if (password == NULL)
        goto bad_turn;
      *password++ = '\0';
      user = strrchr (spec, ':');
      if (user == NULL)
        goto bad_turn;
      *user++ = '\0';
      if (!parse_host_port (spec, &host, &port, error) ||
          !natter_ice_config_add_turn_server (config, host, port, user, password, error))
        return NULL;
      continue;

    bad_turn:
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--turn wants HOST:PORT:USER:PASSWORD");
      return NULL;
    }

  /* The project's precedence: NATTER_INTERFACES over the command line. */
  if (names == NULL && interfaces != NULL)
    {
      g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
      g_auto(GStrv) parts = g_strsplit (interfaces, ",", -1);

      for (guint i = 0; parts[i] != NULL; i++)
        if (*g_strstrip (parts[i]) != '\0')
          g_strv_builder_add (builder, parts[i]);
      names = g_strv_builder_end (builder);
      if (names[0] == NULL)
        g_clear_pointer (&names, g_strfreev);
    }
  if (names != NULL)
    natter_ice_config_set_interfaces (config, (const char * const *) names);

  natter_ice_config_set_force_relay (config, relay_only);
  natter_ice_config_set_ipv6 (config, !no_ipv6);

  return g_steal_pointer (&config);
}

int
main (int    argc,
      char **argv)
{
  g_autofree char *stun = NULL;
  g_auto(GStrv) turns = NULL;
  g_autofree char *interfaces = NULL;
  g_autofree char *rendezvous = NULL;
  gboolean relay_only = FALSE;
  gboolean no_ipv6 = FALSE;
  const GOptionEntry entries[] = {
    { "stun", 0, 0, G_OPTION_ARG_STRING, &stun, "STUN server", "HOST:PORT" },
    { "turn", 0, 0, G_OPTION_ARG_STRING_ARRAY, &turns, "TURN server over UDP (repeatable)",
      "HOST:PORT:USER:PASSWORD" },
    { "interfaces", 0, 0, G_OPTION_ARG_STRING, &interfaces,
      "Interfaces to gather on (default: all; NATTER_INTERFACES overrides this)", "IF[,IF…]" },
    { "relay-only", 0, 0, G_OPTION_ARG_NONE, &relay_only, "Relay candidates only", NULL },
    { "no-ipv6", 0, 0, G_OPTION_ARG_NONE, &no_ipv6, "No IPv6 host candidates", NULL },
    { "rendezvous", 0, 0, G_OPTION_ARG_STRING, &rendezvous,
      "Signal through this natter-rendezvous server instead of stdin/stdout", "ws://HOST:PORT/v1" },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) stdin_stream = NULL;
  Peer peer = { 0 };
  int status = 0;

  context = g_option_context_new ("- a peer connection driven from stdin");
  g_option_context_set_summary (context,
                                "Reads commands (connect, contact, signal, send, expect, status, close,\n"
                                "quit) on stdin and reports events on stdout, one line each.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("natter-test-peer: %s\n", error->message);
      return 2;
    }
  /* stdout carries the protocol: logging, G_MESSAGES_DEBUG included,
   * goes to stderr. */
  g_log_writer_default_set_use_stderr (TRUE);

  if (sodium_init () < 0)
    {
      g_printerr ("natter-test-peer: libsodium failed to start\n");
      return 1;
    }

  peer.config = build_config (stun, (const char * const *) turns, interfaces,
                              relay_only, no_ipv6, &error);
  if (peer.config == NULL)
    {
      g_printerr ("natter-test-peer: %s\n", error->message);
      return 2;
    }

  peer.loop = g_main_loop_new (NULL, FALSE);
  peer.identity = natter_identity_new_random ();
  peer.pending_signals = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  peer.cancellable = g_cancellable_new ();
  peer_reset_receive (&peer, 0);

  stdin_stream = g_unix_input_stream_new (STDIN_FILENO, FALSE);
  peer.input = g_data_input_stream_new (stdin_stream);
  g_data_input_stream_set_newline_type (peer.input, G_DATA_STREAM_NEWLINE_TYPE_ANY);

  emit ("id %s", natter_identity_get_peer_id (peer.identity));
  if (rendezvous != NULL && !peer_start_rendezvous (&peer, rendezvous, &error))
    {
      g_printerr ("natter-test-peer: --rendezvous: %s\n", error->message);
      status = 2;
    }
  else
    {
      peer.last_report_us = g_get_monotonic_time ();
      peer.tick_id = g_timeout_add (TICK_MS, on_tick, &peer);
      peer_read_next (&peer);
      g_main_loop_run (peer.loop);

      g_cancellable_cancel (peer.cancellable);
      g_source_remove (peer.tick_id);
      peer_drop_connection (&peer);
      peer_stop_rendezvous (&peer);

      /* Let the transport thread finish tearing the connection down. */
      g_timeout_add (300, on_grace_over, peer.loop);
      g_main_loop_run (peer.loop);
    }

  g_clear_object (&peer.input);
  g_clear_object (&peer.cancellable);
  g_clear_pointer (&peer.pending_signals, g_ptr_array_unref);
  g_clear_object (&peer.identity);
  g_clear_pointer (&peer.config, natter_ice_config_free);
  g_clear_pointer (&peer.loop, g_main_loop_unref);

  return status;
}
