/* natter-peer-connection.c: an encrypted multi-stream connection to one peer
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>
#include <sodium.h>

#include "natter-noise.h"
#include "natter-noise-channel.h"
#include "natter-peer-connection.h"
#include "natter-peer-connection-private.h"
#include "natter-sctp.h"
#include "natter-transport.h"

/* The object is split in two halves that never share mutable state without
 * a lock or an atomic:
 *
 *   NatterPeerConnection (the outer object) lives on the creating thread's
 *   context, holds the public state and emits the signals.
 *
 *   Inner lives on the transport thread and owns the ICE session, the
 *   secure channel and the SCTP association.
 *
 * Work crosses with natter_transport_invoke() (main to transport) and
 * g_main_context_invoke_full() (transport to main), each carrying owned,
 * immutable data.  The inner half reaches the outer one through a weak
 * reference, so a connection that the application dropped receives no
 * more events. */

#define KEEPALIVE_PPID   0x4e4b0001u  /* "NK" keepalive on the control stream */
#define DATA_PPID        0x4e4b0002u
/* Keepalives, the silence timeout and the safety nets run once a second,
 * in one wake-up for every connection of the process (a seconds timeout
 * is coalesced): with 31 connections a 250 ms tick each was 124 wake-ups
 * a second of an idle transport thread, each polling every socket. */
#define TICK_S           1
#define DEFAULT_LOW_WATER (256 * 1024)
/* Datagrams up to this size skip an idle crypto worker, both ways. */
#define INLINE_MAX       1024
/* Sealed datagrams the worker sends with one call, at most. */
#define SEAL_BATCH_MAX   32

/* Received messages waiting for the main context are bounded: past the high
 * mark the transport stops reading from SCTP, the peer's window fills and
 * its sender sees back-pressure; reading resumes below the low mark. */
#define RECEIVE_HIGH_MARK (4 * 1024 * 1024)
#define RECEIVE_LOW_MARK  (1 * 1024 * 1024)

typedef struct _Inner Inner;

struct _NatterPeerConnection
{
  GObject parent_instance;

  Inner *inner;
  char *remote_peer_id;
  NatterPeerConnectionState state;
  GError *error;
  gboolean started;
  gboolean above_threshold;
  gsize threshold;
};

struct _Inner
{
  gatomicrefcount ref_count;

  /* Immutable after creation. */
  NatterTransport *transport;
  GMainContext *main_context;
  GWeakRef outer;
  /* Events for the main context, in order, delivered by one source per
   * burst (events_posted) rather than one per event. */
  GMutex events_lock;
  GQueue events;
  gboolean events_posted;
  gboolean controlling;
  guint8 *local_secret;                 /* sodium_malloc'd, 32 bytes */
  guint8 remote_public[NATTER_X25519_KEY_LEN];
  NatterIceConfig *config;

  /* Shared: atomics and a lock. */
  gssize queued_bytes;                  /* posted to the transport, not yet in SCTP (atomic) */
  gssize sctp_buffered;                 /* SCTP's buffered amount (atomic) */
  gssize low_threshold;                 /* atomic */
  gssize undelivered;                   /* received, not yet emitted on the main side (atomic) */
  gint receive_paused;                  /* atomic: SCTP reading paused for the main side */
  gint waiting_low;                     /* atomic: the main side waits for the low-water mark */
  GMutex lock;
  NatterPeerConnectionStats stats;
  NatterIcePairInfo pair;
  gboolean have_pair;

  /* Transport thread only. */
  NatterIceSession *ice;
  NatterSecureChannel *channel;
  NatterSctpAssociation *sctp;
  GQueue early_sends;                   /* Send, before SCTP exists */
  GSource *channel_timer;
  GSource *tick;
  NiceAgent *send_agent;                /* the worker sends with it; kept while seals are in flight */
  guint seals_in_flight;
  gint64 last_rx_us;
  gint64 last_tx_us;
  gboolean finished;                    /* failed or closed: tear down, emit nothing more */

  /* Tests only. */
  NatterDatagramTap tap;
  gpointer tap_data;
};

typedef struct
{
  guint16 stream;
  GBytes *bytes;
} Send;

/* A data datagram sealed or opened on the crypto worker. */
typedef struct
{
  NatterCryptoJob parent;
  Inner *inner;
  NatterNoiseChannelJob crypto;
  gboolean ok;
  /* Seal: where the worker sends the datagram, whose plaintext (SCTP's
   * packet) waits in place, after the header.  The agent is borrowed from
   * Inner::send_agent. */
  gboolean batched;
  NiceAgent *agent;
  guint stream_id;
  guint component_id;
  /* Open: when it arrived. */
  gint64 received_us;
  gsize alloc_size;
  gsize len;
  guint8 datagram[];
} DatagramJob;

G_DEFINE_FINAL_TYPE (NatterPeerConnection, natter_peer_connection, G_TYPE_OBJECT)

G_DEFINE_QUARK (natter-peer-connection-error-quark, natter_peer_connection_error)

G_DEFINE_ENUM_TYPE (NatterPeerConnectionState, natter_peer_connection_state,
  G_DEFINE_ENUM_VALUE (NATTER_PEER_CONNECTION_STATE_NEW, "new"),
  G_DEFINE_ENUM_VALUE (NATTER_PEER_CONNECTION_STATE_CONNECTING, "connecting"),
  G_DEFINE_ENUM_VALUE (NATTER_PEER_CONNECTION_STATE_CONNECTED, "connected"),
  G_DEFINE_ENUM_VALUE (NATTER_PEER_CONNECTION_STATE_FAILED, "failed"),
  G_DEFINE_ENUM_VALUE (NATTER_PEER_CONNECTION_STATE_CLOSED, "closed"))

enum {
  PROP_0,
  PROP_STATE,
  N_PROPS
};

enum {
  SIGNAL_SIGNAL,
  SIGNAL_MESSAGE,
  SIGNAL_BUFFERED_AMOUNT_LOW,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

const char *
natter_peer_connection_state_to_string (NatterPeerConnectionState state)
{
  switch (state)
    {
    case NATTER_PEER_CONNECTION_STATE_NEW: return "new";
    case NATTER_PEER_CONNECTION_STATE_CONNECTING: return "connecting";
    case NATTER_PEER_CONNECTION_STATE_CONNECTED: return "connected";
    case NATTER_PEER_CONNECTION_STATE_FAILED: return "failed";
    case NATTER_PEER_CONNECTION_STATE_CLOSED: return "closed";
    default: return "unknown";
    }
}

/* ---- Inner: lifetime --------------------------------------------------- */

static void
send_free (gpointer data)
{
  Send *send = data;

  g_bytes_unref (send->bytes);
  g_free (send);
}

static Inner *
inner_ref (Inner *inner)
{
  g_atomic_ref_count_inc (&inner->ref_count);
  return inner;
}

static void event_free_borrowed (gpointer data);

static void
inner_unref (gpointer data)
{
  Inner *inner = data;

  if (!g_atomic_ref_count_dec (&inner->ref_count))
    return;

  /* By now the transport thread has torn the stack down (inner_teardown);
   * these are only the leftovers of a connection that never started. */
  g_clear_object (&inner->sctp);
  g_clear_object (&inner->channel);
  g_clear_object (&inner->ice);
  g_clear_object (&inner->send_agent);
  g_queue_clear_full (&inner->early_sends, send_free);
  g_weak_ref_clear (&inner->outer);
  g_clear_pointer (&inner->config, natter_ice_config_free);
  sodium_free (inner->local_secret);
  sodium_memzero (inner->remote_public, sizeof inner->remote_public);
  g_mutex_clear (&inner->lock);
  g_queue_clear_full (&inner->events, event_free_borrowed);
  g_mutex_clear (&inner->events_lock);
  g_clear_pointer (&inner->main_context, g_main_context_unref);
  g_clear_object (&inner->transport);
  g_free (inner);
}

/* ---- Crossing to the main context -------------------------------------- */

typedef enum
{
  EVENT_SIGNAL,
  EVENT_STATE,
  EVENT_MESSAGE,
  EVENT_BUFFERED,
} EventKind;

typedef struct
{
  Inner *inner;
  EventKind kind;
  NatterPeerConnectionState state;
  GError *error;
  guint16 stream;
  GBytes *bytes;
} Event;

static void inner_message_consumed (Inner *inner,
                                    gsize  len);

static void outer_set_state (NatterPeerConnection      *self,
                             NatterPeerConnectionState  state,
                             const GError              *error);
static void outer_check_low_water (NatterPeerConnection *self);

static gboolean
inner_do_resume (gpointer data)
{
  Inner *inner = data;

  if (!inner->finished && inner->sctp != NULL && g_atomic_int_get (&inner->receive_paused))
    {
      g_atomic_int_set (&inner->receive_paused, FALSE);
      natter_sctp_association_set_receive_paused (inner->sctp, FALSE);
    }
  return G_SOURCE_REMOVE;
}

/* On the main side, after a received message was emitted. */
static void
inner_message_consumed (Inner *inner,
                        gsize  len)
{
  gssize before = g_atomic_pointer_add (&inner->undelivered, -(gssize) len);
  gssize after = before - (gssize) len;

  if (before > RECEIVE_LOW_MARK && after <= RECEIVE_LOW_MARK &&
      g_atomic_int_get (&inner->receive_paused))
    natter_transport_invoke (inner->transport, inner_do_resume, inner_ref (inner), inner_unref);
}

static gboolean
dispatch_event (gpointer data)
{
  Event *event = data;
  g_autoptr(NatterPeerConnection) self = g_weak_ref_get (&event->inner->outer);

  if (self == NULL || self->inner != event->inner)
    return G_SOURCE_REMOVE;

  switch (event->kind)
    {
    case EVENT_SIGNAL:
      if (self->state == NATTER_PEER_CONNECTION_STATE_CONNECTING ||
          self->state == NATTER_PEER_CONNECTION_STATE_CONNECTED)
        g_signal_emit (self, signals[SIGNAL_SIGNAL], 0, event->bytes);
      break;
    case EVENT_STATE:
      outer_set_state (self, event->state, event->error);
      break;
    case EVENT_MESSAGE:
      if (self->state == NATTER_PEER_CONNECTION_STATE_CONNECTED)
        g_signal_emit (self, signals[SIGNAL_MESSAGE], 0, (guint) event->stream, event->bytes);
      inner_message_consumed (event->inner, g_bytes_get_size (event->bytes));
      break;
    case EVENT_BUFFERED:
      outer_check_low_water (self);
      break;
    default:
      g_assert_not_reached ();
    }

  return G_SOURCE_REMOVE;
}

/* Queued events borrow the Inner: the one source that delivers them holds
 * the reference, so nothing is left in a cycle if it never runs. */
static void
event_free_borrowed (gpointer data)
{
  Event *event = data;

  g_clear_error (&event->error);
  g_clear_pointer (&event->bytes, g_bytes_unref);
  g_free (event);
}

static gboolean
dispatch_events (gpointer data)
{
  Inner *inner = data;

  for (;;)
    {
      Event *event;

      g_mutex_lock (&inner->events_lock);
      event = g_queue_pop_head (&inner->events);
      if (event == NULL)
        inner->events_posted = FALSE;
      g_mutex_unlock (&inner->events_lock);
      if (event == NULL)
        break;
      dispatch_event (event);
      event_free_borrowed (event);
    }
  return G_SOURCE_REMOVE;
}

static void
post_event (Inner *inner,
            Event *event)
{
  gboolean post;

  event->inner = inner;
  g_mutex_lock (&inner->events_lock);
  g_queue_push_tail (&inner->events, event);
  post = !inner->events_posted;
  inner->events_posted = TRUE;
  g_mutex_unlock (&inner->events_lock);
  if (post)
    g_main_context_invoke_full (inner->main_context, G_PRIORITY_DEFAULT,
                                dispatch_events, inner_ref (inner), inner_unref);
}

static void
post_signal (Inner      *inner,
             const char *text)
{
  Event *event = g_new0 (Event, 1);

  event->kind = EVENT_SIGNAL;
  event->bytes = g_bytes_new (text, strlen (text));
  post_event (inner, event);
}

static void
post_state (Inner                     *inner,
            NatterPeerConnectionState  state,
            const GError              *error)
{
  Event *event = g_new0 (Event, 1);

  event->kind = EVENT_STATE;
  event->state = state;
  event->error = error != NULL ? g_error_copy (error) : NULL;
  post_event (inner, event);
}

/* ---- Inner: the stack on the transport thread ------------------------- */

static void inner_teardown (Inner *inner);
static void inner_flush_channel (Inner *inner);

static void
inner_fail (Inner        *inner,
            gint          code,
            const char   *format,
            ...) G_GNUC_PRINTF (3, 4);

static void
inner_fail (Inner      *inner,
            gint        code,
            const char *format,
            ...)
{
  g_autoptr(GError) error = NULL;
  va_list args;

  if (inner->finished)
    return;

  va_start (args, format);
  error = g_error_new_valist (NATTER_PEER_CONNECTION_ERROR, code, format, args);
  va_end (args);

  g_debug ("peer connection failed: %s", error->message);
  inner_teardown (inner);
  post_state (inner, NATTER_PEER_CONNECTION_STATE_FAILED, error);
}

static void
inner_update_stats (Inner *inner)
{
  NatterSecureChannelStats cs = { 0 };
  NatterSctpStats ss = { 0 };

  if (inner->channel != NULL)
    natter_secure_channel_get_stats (inner->channel, &cs);
  if (inner->sctp != NULL)
    natter_sctp_association_get_stats (inner->sctp, &ss);

  g_mutex_lock (&inner->lock);
  if (inner->channel != NULL)
    {
      inner->stats.dropped_tampered = cs.dropped_tampered;
      inner->stats.dropped_replayed = cs.dropped_replayed + cs.dropped_too_old;
      inner->stats.dropped_truncated = cs.dropped_truncated;
      inner->stats.datagrams_dropped = cs.dropped_tampered + cs.dropped_replayed +
                                       cs.dropped_too_old + cs.dropped_truncated +
                                       cs.dropped_unexpected;
      inner->stats.handshake_retransmissions = cs.handshake_retransmissions;
    }
  if (inner->sctp != NULL)
    {
      inner->stats.messages_sent = ss.messages_sent;
      inner->stats.messages_received = ss.messages_received;
    }
  g_mutex_unlock (&inner->lock);
}

static void
inner_publish_buffered (Inner *inner)
{
  gsize buffered = inner->sctp != NULL ? natter_sctp_association_get_buffered_amount (inner->sctp) : 0;

  g_atomic_pointer_set (&inner->sctp_buffered, (gssize) buffered);
}

static void
inner_send_datagram (Inner  *inner,
                     GBytes *datagram)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (datagram, &len);

  if (inner->ice == NULL)
    return;
  if (G_UNLIKELY (inner->tap != NULL))
    inner->tap (datagram, inner->tap_data);
  natter_ice_session_send (inner->ice, data, len);
  inner->last_tx_us = g_get_monotonic_time ();
}

static gboolean
on_channel_timer (gpointer data)
{
  Inner *inner = data;

  g_clear_pointer (&inner->channel_timer, g_source_unref);
  if (inner->finished || inner->channel == NULL)
    return G_SOURCE_REMOVE;

  natter_secure_channel_handle_timeout (inner->channel, g_get_monotonic_time ());
  inner_flush_channel (inner);
  return G_SOURCE_REMOVE;
}

static void
inner_schedule_channel_timer (Inner *inner)
{
  gint64 deadline;
  gint64 now;

  if (inner->channel_timer != NULL)
    {
      g_source_destroy (inner->channel_timer);
      g_clear_pointer (&inner->channel_timer, g_source_unref);
    }
  if (inner->finished || inner->channel == NULL)
    return;

  deadline = natter_secure_channel_get_timeout (inner->channel);
  if (deadline < 0)
    return;

  now = g_get_monotonic_time ();
  inner->channel_timer = g_timeout_source_new (deadline > now ? (guint) ((deadline - now + 999) / 1000) : 0);
  g_source_set_static_name (inner->channel_timer, "[natter] secure channel timer");
  g_source_set_callback (inner->channel_timer, on_channel_timer, inner_ref (inner), inner_unref);
  g_source_attach (inner->channel_timer, natter_transport_get_context (inner->transport));
}

/* Data datagrams take the crypto worker whenever the channel can split its
 * work (see "Threads" in docs/architecture.md); a datagram tap, which
 * tests use to see every datagram in order, keeps them all here. */
static gboolean
inner_can_offload (Inner *inner)
{
  return inner->tap == NULL && NATTER_IS_NOISE_CHANNEL (inner->channel);
}

/* A small datagram that arrives while the worker has nothing to do (a
 * chat message, a SACK) is opened here: the hand-off would cost more than
 * the AEAD, and nothing in flight can be overtaken.  Small sends do not get
 * this shortcut: under load they are mostly SACKs, and sending them here
 * costs the transport thread a system call each. */
static gboolean
inner_open_inline (Inner *inner,
                   gsize  len)
{
  return len <= INLINE_MAX
         && natter_crypto_worker_is_idle (natter_transport_get_crypto_worker (inner->transport));
}

/* A packet sent while the worker is idle and nothing is in flight (a chat
 * message on a quiet connection, a group message to a few peers) is sealed
 * here: handing it over would cost a thread wake-up, the largest part of a
 * round trip on an idle machine, and there is nothing it could overtake.
 * Full-size packets only a few per iteration: sealed here, a bulk sender's
 * stream would keep the worker idle, every next packet would qualify
 * again, and a pure sender would never use its second thread. */
static gboolean
inner_seal_inline (Inner *inner,
                   gsize  len)
{
  NatterCryptoWorker *worker = natter_transport_get_crypto_worker (inner->transport);

  if (inner->seals_in_flight > 0 || !natter_crypto_worker_is_idle (worker))
    return FALSE;
  return len <= INLINE_MAX || natter_crypto_worker_claim_inline (worker);
}

static DatagramJob *
datagram_job_new (Inner *inner,
                  gsize  len)
{
  gsize size = sizeof (DatagramJob) + len;
  DatagramJob *job;

  job = natter_crypto_worker_alloc_job (natter_transport_get_crypto_worker (inner->transport),
                                        size);
  job->inner = inner_ref (inner);
  job->alloc_size = size;
  job->len = len;
  job->ok = FALSE;
  job->batched = FALSE;
  job->agent = NULL;
  job->received_us = 0;
  return job;
}

static void
datagram_job_free (DatagramJob *job)
{
  Inner *inner = job->inner;

  natter_crypto_worker_free_job (natter_transport_get_crypto_worker (inner->transport),
                                 job, job->alloc_size);
  inner_unref (inner);
}

static gboolean
same_destination (DatagramJob *a,
                  DatagramJob *b)
{
  return a->agent == b->agent && a->stream_id == b->stream_id
         && a->component_id == b->component_id;
}

/* Seals this datagram and those of the seal jobs right behind it in the
 * worker's batch that go the same way, then sends them all with one call:
 * their own run() finds them done. */
static void
seal_job_run (NatterCryptoJob *job)
{
  DatagramJob *self = (DatagramJob *) job;
  DatagramJob *batch[SEAL_BATCH_MAX];
  guint8 *data[SEAL_BATCH_MAX];
  gsize len[SEAL_BATCH_MAX];
  gboolean sent[SEAL_BATCH_MAX];
  guint n = 0;

  if (self->batched)
    return;

  for (NatterCryptoJob *next = job; next != NULL && n < SEAL_BATCH_MAX; next = next->next)
    {
      DatagramJob *other = (DatagramJob *) next;

      if (next->run != seal_job_run || !same_destination (self, other))
        break;

      natter_noise_channel_job_seal (&other->crypto,
                                     other->datagram + NATTER_NOISE_CHANNEL_HEADER_LEN,
                                     other->len - NATTER_NOISE_CHANNEL_OVERHEAD,
                                     other->datagram);
      natter_noise_channel_job_clear (&other->crypto);
      other->batched = TRUE;
      batch[n] = other;
      data[n] = other->datagram;
      len[n] = other->len;
      n++;
    }

  natter_ice_agent_send_batch (self->agent, self->stream_id, self->component_id,
                               data, len, sent, n);
  for (guint i = 0; i < n; i++)
    batch[i]->ok = sent[i];
}

static void
seal_job_done (NatterCryptoJob *job)
{
  DatagramJob *self = (DatagramJob *) job;
  Inner *inner = self->inner;

  if (inner->ice != NULL)
    natter_ice_session_count_send (inner->ice, self->len, self->ok);
  /* The last seal in flight after teardown lets the agent go. */
  if (--inner->seals_in_flight == 0 && inner->finished)
    g_clear_object (&inner->send_agent);
  datagram_job_free (self);
}

static gboolean
inner_offload_seal (Inner        *inner,
                    const guint8 *packet,
                    gsize         len)
{
  g_autoptr(GError) error = NULL;
  NatterNoiseChannelJob crypto;
  DatagramJob *job;
  NiceAgent *agent;
  guint stream_id, component_id;
  gint64 now = g_get_monotonic_time ();

  if (!natter_noise_channel_reserve_seal (NATTER_NOISE_CHANNEL (inner->channel), len, now,
                                          &crypto, &error))
    {
      g_debug ("cannot encrypt SCTP packet: %s", error->message);
      return TRUE;
    }
  agent = inner->ice != NULL
          ? natter_ice_session_prepare_send (inner->ice, len + NATTER_NOISE_CHANNEL_OVERHEAD,
                                             &stream_id, &component_id)
          : NULL;
  if (agent == NULL)
    {
      natter_noise_channel_job_clear (&crypto);
      return TRUE;
    }
  /* Jobs borrow the agent from here: one reference for all of them,
   * rather than one taken and dropped per datagram. */
  if (inner->send_agent != agent)
    {
      if (inner->seals_in_flight > 0)
        {
          natter_noise_channel_job_clear (&crypto);
          return FALSE;
        }
      g_set_object (&inner->send_agent, agent);
    }

  job = datagram_job_new (inner, len + NATTER_NOISE_CHANNEL_OVERHEAD);
  job->parent.run = seal_job_run;
  job->parent.done = seal_job_done;
  job->crypto = crypto;
  natter_noise_channel_job_clear (&crypto);
  /* The only copy of the packet: the worker seals it in place. */
  memcpy (job->datagram + NATTER_NOISE_CHANNEL_HEADER_LEN, packet, len);
  job->agent = agent;
  job->stream_id = stream_id;
  job->component_id = component_id;
  inner->seals_in_flight++;
  natter_crypto_worker_push (natter_transport_get_crypto_worker (inner->transport), &job->parent);
  inner->last_tx_us = now;
  return TRUE;
}

static void
on_sctp_packet_out (NatterSctpAssociation *sctp,
                    const guint8          *data,
                    gsize                  len,
                    gpointer               user_data)
{
  Inner *inner = user_data;
  g_autoptr(GBytes) datagram = NULL;
  g_autoptr(GError) error = NULL;

  if (inner->finished || inner->channel == NULL)
    return;
  if (inner_can_offload (inner) && !inner_seal_inline (inner, len) &&
      inner_offload_seal (inner, data, len))
    return;

  datagram = natter_secure_channel_encrypt (inner->channel, data, len,
                                            g_get_monotonic_time (), &error);
  if (datagram == NULL)
    {
      g_debug ("cannot encrypt SCTP packet: %s", error->message);
      return;
    }
  inner_send_datagram (inner, datagram);
}

static void
on_sctp_opened (NatterSctpAssociation *sctp,
                gpointer               user_data)
{
  Inner *inner = user_data;

  if (inner->finished)
    return;
  inner_update_stats (inner);
  post_state (inner, NATTER_PEER_CONNECTION_STATE_CONNECTED, NULL);
}

static void
on_sctp_closed (NatterSctpAssociation *sctp,
                gpointer               user_data)
{
  Inner *inner = user_data;

  /* SCTP also ends an association whose retransmissions all went
   * unanswered (COMM_LOST), sometimes before our own silence timeout: a
   * peer we have not heard from for a while is lost, not gone politely. */
  if (g_get_monotonic_time () - inner->last_rx_us > 3 * G_USEC_PER_SEC)
    inner_fail (inner, NATTER_PEER_CONNECTION_ERROR_PEER_LOST,
                "The connection to the peer was lost");
  else
    inner_fail (inner, NATTER_PEER_CONNECTION_ERROR_CLOSED,
                "The peer closed the connection");
}

static void
on_sctp_message (NatterSctpAssociation *sctp,
                 guint                  stream,
                 guint                  ppid,
                 GBytes                *message,
                 gpointer               user_data)
{
  Inner *inner = user_data;
  Event *event;

  if (inner->finished)
    return;
  if (stream == NATTER_PEER_STREAM_CONTROL && ppid == KEEPALIVE_PPID)
    return;

  g_mutex_lock (&inner->lock);
  inner->stats.messages_received++;
  g_mutex_unlock (&inner->lock);

  event = g_new0 (Event, 1);
  event->kind = EVENT_MESSAGE;
  event->stream = (guint16) stream;
  event->bytes = g_bytes_ref (message);

  if (g_atomic_pointer_add (&inner->undelivered, (gssize) g_bytes_get_size (message)) +
      (gssize) g_bytes_get_size (message) > RECEIVE_HIGH_MARK &&
      !g_atomic_int_get (&inner->receive_paused))
    {
      g_atomic_int_set (&inner->receive_paused, TRUE);
      natter_sctp_association_set_receive_paused (sctp, TRUE);
    }
  post_event (inner, event);
}

static void
on_sctp_buffered_amount_low (NatterSctpAssociation *sctp,
                             gpointer               user_data)
{
  Inner *inner = user_data;
  Event *event;

  if (inner->finished)
    return;
  inner_publish_buffered (inner);
  event = g_new0 (Event, 1);
  event->kind = EVENT_BUFFERED;
  post_event (inner, event);
}

static gboolean
inner_sctp_send (Inner   *inner,
                 guint16  stream,
                 guint32  ppid,
                 GBytes  *bytes)
{
  g_autoptr(GError) error = NULL;

  if (!natter_sctp_association_send (inner->sctp, stream, ppid, bytes, &error))
    {
      /* Size was checked before the message crossed threads, so this is a
       * closing association: the state change reports it. */
      g_debug ("SCTP refused a message: %s", error->message);
      return FALSE;
    }
  return TRUE;
}

static void
inner_start_sctp (Inner *inner)
{
  g_autoptr(GError) error = NULL;
  Send *send;

  inner->sctp = natter_sctp_association_new (natter_transport_get_context (inner->transport),
                                             NATTER_SCTP_DEFAULT_PORT, NATTER_SCTP_DEFAULT_PORT);
  natter_sctp_association_set_packet_out_func (inner->sctp, on_sctp_packet_out,
                                               inner_ref (inner), inner_unref);
  natter_sctp_association_set_buffered_amount_low_threshold (inner->sctp,
                                                             (gsize) g_atomic_pointer_get (&inner->low_threshold));
  g_signal_connect (inner->sctp, "opened", G_CALLBACK (on_sctp_opened), inner);
  g_signal_connect (inner->sctp, "closed", G_CALLBACK (on_sctp_closed), inner);
  g_signal_connect (inner->sctp, "message-received", G_CALLBACK (on_sctp_message), inner);
  g_signal_connect (inner->sctp, "buffered-amount-low", G_CALLBACK (on_sctp_buffered_amount_low), inner);

  if (!natter_sctp_association_connect (inner->sctp, &error))
    {
      inner_fail (inner, NATTER_PEER_CONNECTION_ERROR_HANDSHAKE,
                  "Could not start SCTP: %s", error->message);
      return;
    }

  while ((send = g_queue_pop_head (&inner->early_sends)) != NULL)
    {
      gsize len = g_bytes_get_size (send->bytes);

      inner_sctp_send (inner, send->stream, DATA_PPID, send->bytes);
      g_atomic_pointer_add (&inner->queued_bytes, -(gssize) len);
      send_free (send);
    }
  inner_publish_buffered (inner);
}

/* Sends what the channel wants sent, reacts to its state, re-arms its
 * timer.  Called after anything that may have changed the channel. */
static void
inner_flush_channel (Inner *inner)
{
  GBytes *out;

  if (inner->finished || inner->channel == NULL)
    return;

  while ((out = natter_secure_channel_pop_outgoing (inner->channel)) != NULL)
    {
      inner_send_datagram (inner, out);
      g_bytes_unref (out);
    }

  switch (natter_secure_channel_get_state (inner->channel))
    {
    case NATTER_SECURE_CHANNEL_STATE_ESTABLISHED:
      if (inner->sctp == NULL)
        inner_start_sctp (inner);
      break;
    case NATTER_SECURE_CHANNEL_STATE_FAILED:
      inner_fail (inner, NATTER_PEER_CONNECTION_ERROR_HANDSHAKE,
                  "The secure handshake with the peer did not complete");
      return;
    default:
      break;
    }

  inner_schedule_channel_timer (inner);
}

static void
open_job_run (NatterCryptoJob *job)
{
  DatagramJob *self = (DatagramJob *) job;

  self->ok = natter_noise_channel_job_open (&self->crypto, self->datagram, self->len);
  /* The counter is still needed, for the replay window. */
  sodium_memzero (self->crypto.key, sizeof self->crypto.key);
}

/* The replay window is only ever read and written here, on the transport
 * thread: the worker merely said whether the datagram is authentic. */
static void
open_job_done (NatterCryptoJob *job)
{
  DatagramJob *self = (DatagramJob *) job;
  Inner *inner = self->inner;

  if (!inner->finished && inner->channel != NULL
      && natter_noise_channel_commit_open (NATTER_NOISE_CHANNEL (inner->channel),
                                           self->crypto.counter, self->ok, NULL))
    {
      inner->last_rx_us = MAX (inner->last_rx_us, self->received_us);
      if (inner->sctp != NULL)
        natter_sctp_association_receive_packet (inner->sctp,
                                                self->datagram + NATTER_NOISE_CHANNEL_HEADER_LEN,
                                                self->len - NATTER_NOISE_CHANNEL_OVERHEAD);
    }
  datagram_job_free (self);
}

static gboolean
inner_offload_open (Inner        *inner,
                    const guint8 *data,
                    gsize         len,
                    gint64        now)
{
  NatterNoiseChannelJob crypto;
  DatagramJob *job;

  if (!natter_noise_channel_prepare_open (NATTER_NOISE_CHANNEL (inner->channel), data, len,
                                          &crypto))
    return FALSE;

  job = datagram_job_new (inner, len);
  job->parent.run = open_job_run;
  job->parent.done = open_job_done;
  job->crypto = crypto;
  natter_noise_channel_job_clear (&crypto);
  job->received_us = now;
  memcpy (job->datagram, data, len);
  natter_crypto_worker_push (natter_transport_get_crypto_worker (inner->transport), &job->parent);
  return TRUE;
}

static void
on_ice_datagram (NatterIceSession *session,
                 const guint8     *data,
                 gsize             len,
                 gpointer          user_data)
{
  Inner *inner = user_data;
  g_autoptr(GBytes) plaintext = NULL;
  g_autoptr(GError) error = NULL;
  gint64 now;

  if (inner->finished || inner->channel == NULL)
    return;

  now = g_get_monotonic_time ();

  /* Both sides derive the roles from the same two peer IDs, so an
   * initiator never receives a first handshake message from the peer it
   * meant: one that does is talking to someone who expects another ID. */
  if (len > 0 && data[0] == NATTER_NOISE_CHANNEL_TYPE_HANDSHAKE1 && inner->controlling &&
      natter_secure_channel_get_state (inner->channel) == NATTER_SECURE_CHANNEL_STATE_HANDSHAKING)
    {
      inner_fail (inner, NATTER_PEER_CONNECTION_ERROR_WRONG_PEER,
                  "The peer does not expect this identity");
      return;
    }

  if (inner_can_offload (inner) && !inner_open_inline (inner, len)
      && inner_offload_open (inner, data, len, now))
    return;

  if (!natter_secure_channel_handle_datagram (inner->channel, data, len, now, &plaintext, &error))
    {
      if (g_error_matches (error, NATTER_NOISE_ERROR, NATTER_NOISE_ERROR_WRONG_PEER))
        {
          inner_fail (inner, NATTER_PEER_CONNECTION_ERROR_WRONG_PEER,
                      "The peer presented a key that is not the one of the peer that was meant");
          return;
        }
      /* Tampered, replayed, truncated: dropped and counted by the channel;
       * the connection goes on. */
      inner_flush_channel (inner);
      return;
    }

  inner->last_rx_us = now;
  if (plaintext != NULL && inner->sctp != NULL)
    {
      gsize plen;
      const guint8 *pdata = g_bytes_get_data (plaintext, &plen);

      natter_sctp_association_receive_packet (inner->sctp, pdata, plen);
    }
  inner_flush_channel (inner);
}

static void
on_ice_local_candidate (NatterIceSession *session,
                        const char       *candidate,
                        gpointer          user_data)
{
  Inner *inner = user_data;
  g_autofree char *text = NULL;

  if (inner->finished)
    return;
  text = g_strdup_printf ("ice-candidate %s", candidate);
  post_signal (inner, text);
}

static void
on_ice_gathering_done (NatterIceSession *session,
                       gpointer          user_data)
{
  Inner *inner = user_data;

  if (!inner->finished)
    post_signal (inner, "ice-end-of-candidates");
}

static void
on_ice_selected_pair_changed (NatterIceSession *session,
                              gpointer          user_data)
{
  Inner *inner = user_data;
  NatterIcePairInfo info;

  if (natter_ice_session_get_selected_pair (session, &info))
    {
      g_mutex_lock (&inner->lock);
      inner->pair = info;
      inner->have_pair = TRUE;
      g_mutex_unlock (&inner->lock);
    }
}

static void
on_ice_state (NatterIceSession *session,
              GParamSpec       *pspec,
              gpointer          user_data)
{
  Inner *inner = user_data;
  g_autoptr(GError) error = NULL;

  if (inner->finished)
    return;

  switch (natter_ice_session_get_state (session))
    {
    case NATTER_ICE_STATE_CONNECTED:
      on_ice_selected_pair_changed (session, inner);
      if (inner->channel == NULL)
        {
          inner->channel = natter_noise_channel_new (inner->controlling ? NATTER_NOISE_ROLE_INITIATOR
                                                                        : NATTER_NOISE_ROLE_RESPONDER,
                                                     inner->local_secret, inner->remote_public,
                                                     &error);
          if (inner->channel == NULL ||
              !natter_secure_channel_start (inner->channel, g_get_monotonic_time (), &error))
            {
              inner_fail (inner, NATTER_PEER_CONNECTION_ERROR_HANDSHAKE,
                          "Could not start the secure channel: %s", error->message);
              return;
            }
          inner->last_rx_us = g_get_monotonic_time ();
          inner_flush_channel (inner);
        }
      break;
    case NATTER_ICE_STATE_FAILED:
      if (inner->sctp != NULL && natter_sctp_association_get_state (inner->sctp) == NATTER_SCTP_STATE_OPEN)
        inner_fail (inner, NATTER_PEER_CONNECTION_ERROR_PEER_LOST,
                    "The path to the peer was lost");
      else
        inner_fail (inner, NATTER_PEER_CONNECTION_ERROR_ICE_FAILED,
                    "No network path to the peer was found");
      break;
    default:
      break;
    }
}

static gboolean
on_tick (gpointer data)
{
  Inner *inner = data;
  gint64 now = g_get_monotonic_time ();

  if (inner->finished)
    return G_SOURCE_REMOVE;

  inner_update_stats (inner);

  if (inner->sctp == NULL || natter_sctp_association_get_state (inner->sctp) != NATTER_SCTP_STATE_OPEN)
    return G_SOURCE_CONTINUE;

  if (now - inner->last_rx_us > (gint64) NATTER_PEER_TIMEOUT_MS * 1000)
    {
      inner_fail (inner, NATTER_PEER_CONNECTION_ERROR_PEER_LOST,
                  "Nothing was heard from the peer for %d seconds",
                  NATTER_PEER_TIMEOUT_MS / 1000);
      return G_SOURCE_REMOVE;
    }

  /* Only a side that has not heard from the peer lately asks: the peer's
   * SCTP acknowledges the keepalive, so one of them a period keeps both
   * sides' silence timers quiet, and a busy sender's data does as much. */
  if (now - inner->last_rx_us >= (gint64) NATTER_PEER_KEEPALIVE_MS * 1000)
    {
      static const guint8 ping = 0;
      g_autoptr(GBytes) bytes = g_bytes_new_static (&ping, 1);

      inner_sctp_send (inner, NATTER_PEER_STREAM_CONTROL, KEEPALIVE_PPID, bytes);
    }

  inner_publish_buffered (inner);

  /* Safety nets for the two hand-offs between threads, which can race:
   * reading resumes if the main side drained while the pause was being
   * set, and a sender waiting for the low-water mark is told again (only
   * one that waits: an idle connection does not wake the main side). */
  if (g_atomic_int_get (&inner->receive_paused) &&
      g_atomic_pointer_get (&inner->undelivered) <= RECEIVE_LOW_MARK)
    {
      g_atomic_int_set (&inner->receive_paused, FALSE);
      natter_sctp_association_set_receive_paused (inner->sctp, FALSE);
    }
  if (g_atomic_int_get (&inner->waiting_low) &&
      g_atomic_pointer_get (&inner->queued_bytes) + g_atomic_pointer_get (&inner->sctp_buffered) <=
      g_atomic_pointer_get (&inner->low_threshold))
    {
      Event *event = g_new0 (Event, 1);

      event->kind = EVENT_BUFFERED;
      post_event (inner, event);
    }

  return G_SOURCE_CONTINUE;
}

static gboolean
inner_do_start (gpointer data)
{
  Inner *inner = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *ufrag = NULL;
  g_autofree char *pwd = NULL;
  g_autofree char *text = NULL;

  if (inner->finished || inner->ice != NULL)
    return G_SOURCE_REMOVE;

  inner->ice = natter_ice_session_new (natter_transport_get_context (inner->transport),
                                       inner->controlling, inner->config);
  natter_ice_session_set_datagram_func (inner->ice, on_ice_datagram, inner_ref (inner), inner_unref);
  g_signal_connect (inner->ice, "local-candidate", G_CALLBACK (on_ice_local_candidate), inner);
  g_signal_connect (inner->ice, "gathering-done", G_CALLBACK (on_ice_gathering_done), inner);
  g_signal_connect (inner->ice, "selected-pair-changed", G_CALLBACK (on_ice_selected_pair_changed), inner);
  g_signal_connect (inner->ice, "notify::state", G_CALLBACK (on_ice_state), inner);

  /* The credentials go first, so that the peer can check the candidates
   * that follow. */
  natter_ice_session_get_local_credentials (inner->ice, &ufrag, &pwd);
  text = g_strdup_printf ("ice-credentials %s %s", ufrag, pwd);
  post_signal (inner, text);

  inner->tick = g_timeout_source_new_seconds (TICK_S);
  g_source_set_static_name (inner->tick, "[natter] peer connection tick");
  g_source_set_callback (inner->tick, on_tick, inner_ref (inner), inner_unref);
  g_source_attach (inner->tick, natter_transport_get_context (inner->transport));

  if (!natter_ice_session_start (inner->ice, &error))
    inner_fail (inner, NATTER_PEER_CONNECTION_ERROR_ICE_FAILED,
                "Could not start ICE: %s", error->message);

  return G_SOURCE_REMOVE;
}

/* Teardown follows the blueprint's order: SCTP first (it may still want to
 * send an ABORT through the channel), then the channel, then ICE. */
static void
inner_teardown (Inner *inner)
{
  if (inner->finished)
    return;
  inner->finished = TRUE;

  inner_update_stats (inner);

  if (inner->tick != NULL)
    {
      g_source_destroy (inner->tick);
      g_clear_pointer (&inner->tick, g_source_unref);
    }
  if (inner->channel_timer != NULL)
    {
      g_source_destroy (inner->channel_timer);
      g_clear_pointer (&inner->channel_timer, g_source_unref);
    }
  if (inner->sctp != NULL)
    {
      g_signal_handlers_disconnect_by_data (inner->sctp, inner);
      natter_sctp_association_close (inner->sctp);
      natter_sctp_association_set_packet_out_func (inner->sctp, NULL, NULL, NULL);
      g_clear_object (&inner->sctp);
    }
  g_clear_object (&inner->channel);
  if (inner->ice != NULL)
    {
      g_signal_handlers_disconnect_by_data (inner->ice, inner);
      natter_ice_session_set_datagram_func (inner->ice, NULL, NULL, NULL);
      natter_ice_session_close (inner->ice);
      g_clear_object (&inner->ice);
    }
  if (inner->seals_in_flight == 0)
    g_clear_object (&inner->send_agent);
  g_queue_clear_full (&inner->early_sends, send_free);
  g_atomic_pointer_set (&inner->queued_bytes, 0);
  g_atomic_pointer_set (&inner->sctp_buffered, 0);
}

static gboolean
inner_do_close (gpointer data)
{
  inner_teardown (data);
  return G_SOURCE_REMOVE;
}

typedef struct
{
  Inner *inner;
  char *kind;
  char *arg1;
  char *arg2;
} SignalOp;

static void
signal_op_free (gpointer data)
{
  SignalOp *op = data;

  inner_unref (op->inner);
  g_free (op->kind);
  g_free (op->arg1);
  g_free (op->arg2);
  g_free (op);
}

static gboolean
inner_do_signal (gpointer data)
{
  SignalOp *op = data;
  Inner *inner = op->inner;
  g_autoptr(GError) error = NULL;

  if (inner->finished || inner->ice == NULL)
    return G_SOURCE_REMOVE;

  if (g_str_equal (op->kind, "ice-credentials"))
    natter_ice_session_set_remote_credentials (inner->ice, op->arg1, op->arg2, &error);
  else if (g_str_equal (op->kind, "ice-candidate"))
    natter_ice_session_add_remote_candidate (inner->ice, op->arg1, &error);
  else if (g_str_equal (op->kind, "ice-end-of-candidates"))
    natter_ice_session_remote_gathering_done (inner->ice);

  /* The blob was well formed, but ICE would not take it (a second set of
   * credentials, a candidate beyond the limit): ignoring it is safe. */
  if (error != NULL)
    g_debug ("signal ignored: %s", error->message);

  return G_SOURCE_REMOVE;
}

typedef struct
{
  Inner *inner;
  Send *send;
} SendOp;

static void
send_op_free (gpointer data)
{
  SendOp *op = data;

  if (op->send != NULL)
    send_free (op->send);
  inner_unref (op->inner);
  g_free (op);
}

static gboolean
inner_do_send (gpointer data)
{
  SendOp *op = data;
  Inner *inner = op->inner;
  gsize len = g_bytes_get_size (op->send->bytes);

  if (inner->finished)
    return G_SOURCE_REMOVE;

  if (inner->sctp == NULL)
    {
      /* Still counted as queued until SCTP takes it. */
      g_queue_push_tail (&inner->early_sends, g_steal_pointer (&op->send));
      return G_SOURCE_REMOVE;
    }

  inner_sctp_send (inner, op->send->stream, DATA_PPID, op->send->bytes);
  g_atomic_pointer_add (&inner->queued_bytes, -(gssize) len);
  inner_publish_buffered (inner);
  return G_SOURCE_REMOVE;
}

typedef struct
{
  Inner *inner;
  gsize threshold;
} ThresholdOp;

static void
threshold_op_free (gpointer data)
{
  ThresholdOp *op = data;

  inner_unref (op->inner);
  g_free (op);
}

static gboolean
inner_do_set_threshold (gpointer data)
{
  ThresholdOp *op = data;

  if (op->inner->sctp != NULL)
    natter_sctp_association_set_buffered_amount_low_threshold (op->inner->sctp, op->threshold);
  return G_SOURCE_REMOVE;
}

/* ---- Outer: the public object ------------------------------------------ */

static void
outer_set_state (NatterPeerConnection      *self,
                 NatterPeerConnectionState  state,
                 const GError              *error)
{
  if (self->state == state)
    return;
  /* Final states are final. */
  if (self->state == NATTER_PEER_CONNECTION_STATE_FAILED ||
      self->state == NATTER_PEER_CONNECTION_STATE_CLOSED)
    return;

  self->state = state;
  if (error != NULL && self->error == NULL)
    self->error = g_error_copy (error);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);

  if (state == NATTER_PEER_CONNECTION_STATE_CONNECTED)
    outer_check_low_water (self);
}

static void
outer_check_low_water (NatterPeerConnection *self)
{
  gsize buffered = natter_peer_connection_get_buffered_amount (self);

  if (self->above_threshold && buffered <= self->threshold)
    {
      self->above_threshold = FALSE;
      if (self->inner != NULL)
        g_atomic_int_set (&self->inner->waiting_low, FALSE);
      g_signal_emit (self, signals[SIGNAL_BUFFERED_AMOUNT_LOW], 0);
    }
}

static void
natter_peer_connection_dispose (GObject *object)
{
  NatterPeerConnection *self = NATTER_PEER_CONNECTION (object);

  if (self->inner != NULL)
    {
      natter_transport_invoke (self->inner->transport, inner_do_close,
                               self->inner, inner_unref);
      self->inner = NULL;
    }

  G_OBJECT_CLASS (natter_peer_connection_parent_class)->dispose (object);
}

static void
natter_peer_connection_finalize (GObject *object)
{
  NatterPeerConnection *self = NATTER_PEER_CONNECTION (object);

  g_clear_error (&self->error);
  g_free (self->remote_peer_id);

  G_OBJECT_CLASS (natter_peer_connection_parent_class)->finalize (object);
}

static void
natter_peer_connection_get_property (GObject    *object,
                                     guint       prop_id,
                                     GValue     *value,
                                     GParamSpec *pspec)
{
  NatterPeerConnection *self = NATTER_PEER_CONNECTION (object);

  switch (prop_id)
    {
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_peer_connection_class_init (NatterPeerConnectionClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = natter_peer_connection_dispose;
  object_class->finalize = natter_peer_connection_finalize;
  object_class->get_property = natter_peer_connection_get_property;

  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL,
                       NATTER_TYPE_PEER_CONNECTION_STATE,
                       NATTER_PEER_CONNECTION_STATE_NEW,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * NatterPeerConnection::signal:
   * @blob: a #GBytes to deliver to the other side's
   *   natter_peer_connection_handle_signal()
   */
  signals[SIGNAL_SIGNAL] =
    g_signal_new ("signal",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_BYTES);

  /**
   * NatterPeerConnection::message:
   * @stream: the stream it came on
   * @message: the whole message
   */
  signals[SIGNAL_MESSAGE] =
    g_signal_new ("message",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_UINT, G_TYPE_BYTES);

  /**
   * NatterPeerConnection::buffered-amount-low:
   *
   * The buffered amount fell to or below the threshold: a sender that
   * paused may go on.
   */
  signals[SIGNAL_BUFFERED_AMOUNT_LOW] =
    g_signal_new ("buffered-amount-low",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);
}

static void
natter_peer_connection_init (NatterPeerConnection *self)
{
  self->threshold = DEFAULT_LOW_WATER;
}

/**
 * natter_peer_connection_new:
 * @identity: our identity
 * @remote_peer_id: the peer that must answer
 * @config: (nullable): ICE servers and interfaces
 * @error: return location for a #GError
 *
 * Returns: (transfer full): a new connection, not started
 */
NatterPeerConnection *
natter_peer_connection_new (NatterIdentity        *identity,
                            const char            *remote_peer_id,
                            const NatterIceConfig *config,
                            GError               **error)
{
  g_autoptr(NatterPeerConnection) self = NULL;
  guint8 remote_key[NATTER_PUBLIC_KEY_LEN];
  Inner *inner;

  g_return_val_if_fail (NATTER_IS_IDENTITY (identity), NULL);
  g_return_val_if_fail (remote_peer_id != NULL, NULL);

  if (!natter_peer_id_parse (remote_peer_id, remote_key, error))
    return NULL;

  self = g_object_new (NATTER_TYPE_PEER_CONNECTION, NULL);
  self->remote_peer_id = natter_peer_id_from_public_key (remote_key);

  if (g_strcmp0 (self->remote_peer_id, natter_identity_get_peer_id (identity)) == 0)
    {
      g_set_error_literal (error, NATTER_PEER_CONNECTION_ERROR,
                           NATTER_PEER_CONNECTION_ERROR_INVALID,
                           "A peer cannot connect to itself");
      return NULL;
    }

  inner = g_new0 (Inner, 1);
  g_atomic_ref_count_init (&inner->ref_count);
  g_mutex_init (&inner->lock);
  g_mutex_init (&inner->events_lock);
  g_queue_init (&inner->events);
  g_weak_ref_init (&inner->outer, self);
  inner->transport = natter_transport_dup_default ();
  inner->main_context = g_main_context_ref_thread_default ();
  inner->controlling = strcmp (natter_identity_get_peer_id (identity), self->remote_peer_id) < 0;
  inner->local_secret = sodium_malloc (NATTER_X25519_KEY_LEN);
  memcpy (inner->local_secret, natter_identity_get_x25519_secret (identity), NATTER_X25519_KEY_LEN);
  if (!natter_public_key_to_x25519 (remote_key, inner->remote_public, error))
    {
      inner_unref (inner);
      return NULL;
    }
  inner->config = config != NULL ? natter_ice_config_copy (config) : natter_ice_config_new ();
  {
    /* NATTER_INTERFACES wins over every other setting: it is how tests and
     * cautious users keep Natter on the interfaces they choose. */
    g_auto(GStrv) from_env = natter_ice_interfaces_from_env ();

    if (from_env != NULL)
      natter_ice_config_set_interfaces (inner->config, (const char * const *) from_env);
  }
  g_atomic_pointer_set (&inner->low_threshold, (gssize) DEFAULT_LOW_WATER);
  g_queue_init (&inner->early_sends);
  self->inner = inner;

  return g_steal_pointer (&self);
}

void
natter_peer_connection_start (NatterPeerConnection *self)
{
  g_return_if_fail (NATTER_IS_PEER_CONNECTION (self));

  if (self->started || self->inner == NULL)
    return;
  self->started = TRUE;

  outer_set_state (self, NATTER_PEER_CONNECTION_STATE_CONNECTING, NULL);
  natter_transport_invoke (self->inner->transport, inner_do_start,
                           inner_ref (self->inner), inner_unref);
}

static gboolean
is_signal_token (const char *s)
{
  if (*s == '\0')
    return FALSE;
  for (; *s; s++)
    if (*s <= ' ' || *s >= 0x7f)
      return FALSE;
  return TRUE;
}

/* Signals are one line of printable ASCII: "ice-credentials UFRAG PWD",
 * "ice-candidate a=candidate:…" or "ice-end-of-candidates".  They may come
 * from a stranger through a rendezvous server or a relay, so every byte is
 * checked before anything reaches libnice. */
gboolean
natter_peer_connection_handle_signal (NatterPeerConnection  *self,
                                      GBytes                *blob,
                                      GError               **error)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) parts = NULL;
  SignalOp *op;
  gsize len;
  const char *data;

  g_return_val_if_fail (NATTER_IS_PEER_CONNECTION (self), FALSE);
  g_return_val_if_fail (blob != NULL, FALSE);

  data = g_bytes_get_data (blob, &len);
  if (len == 0 || len > NATTER_PEER_MAX_SIGNAL_LEN)
    {
      g_set_error (error, NATTER_PEER_CONNECTION_ERROR, NATTER_PEER_CONNECTION_ERROR_INVALID_SIGNAL,
                   "Signal of %" G_GSIZE_FORMAT " bytes refused (1 to %d allowed)",
                   len, NATTER_PEER_MAX_SIGNAL_LEN);
      return FALSE;
    }
  for (gsize i = 0; i < len; i++)
    {
      if (data[i] < ' ' || data[i] >= 0x7f)
        {
          g_set_error (error, NATTER_PEER_CONNECTION_ERROR, NATTER_PEER_CONNECTION_ERROR_INVALID_SIGNAL,
                       "Signal refused: byte %" G_GSIZE_FORMAT " is not printable ASCII", i);
          return FALSE;
        }
    }
  text = g_strndup (data, len);

  op = g_new0 (SignalOp, 1);
  if (g_str_has_prefix (text, "ice-credentials "))
    {
      parts = g_strsplit (text + strlen ("ice-credentials "), " ", -1);
      if (g_strv_length (parts) != 2 || !is_signal_token (parts[0]) || !is_signal_token (parts[1]))
        goto invalid;
      op->kind = g_strdup ("ice-credentials");
      op->arg1 = g_strdup (parts[0]);
      op->arg2 = g_strdup (parts[1]);
    }
  else if (g_str_has_prefix (text, "ice-candidate "))
    {
      const char *candidate = text + strlen ("ice-candidate ");

      if (!g_str_has_prefix (candidate, "a=candidate:") && !g_str_has_prefix (candidate, "candidate:"))
        goto invalid;
      op->kind = g_strdup ("ice-candidate");
      op->arg1 = g_strdup (candidate);
    }
  else if (g_str_equal (text, "ice-end-of-candidates"))
    {
      op->kind = g_strdup ("ice-end-of-candidates");
    }
  else
    goto invalid;

  if (self->inner == NULL)
    {
      g_free (op->kind);
      g_free (op->arg1);
      g_free (op->arg2);
      g_free (op);
      return TRUE;
    }

  op->inner = inner_ref (self->inner);
  natter_transport_invoke (self->inner->transport, inner_do_signal, op, signal_op_free);
  return TRUE;

invalid:
  g_free (op->kind);
  g_free (op->arg1);
  g_free (op->arg2);
  g_free (op);
  g_set_error (error, NATTER_PEER_CONNECTION_ERROR, NATTER_PEER_CONNECTION_ERROR_INVALID_SIGNAL,
               "Signal refused: not a known signal");
  return FALSE;
}

gboolean
natter_peer_connection_send (NatterPeerConnection  *self,
                             guint16                stream,
                             GBytes                *message,
                             GError               **error)
{
  SendOp *op;
  gsize len;

  g_return_val_if_fail (NATTER_IS_PEER_CONNECTION (self), FALSE);
  g_return_val_if_fail (message != NULL, FALSE);

  len = g_bytes_get_size (message);
  if (len == 0 || len > NATTER_PEER_MAX_MESSAGE_SIZE)
    {
      g_set_error (error, NATTER_PEER_CONNECTION_ERROR, NATTER_PEER_CONNECTION_ERROR_TOO_LARGE,
                   "A message of %" G_GSIZE_FORMAT " bytes cannot be sent (1 to %d bytes allowed)",
                   len, NATTER_PEER_MAX_MESSAGE_SIZE);
      return FALSE;
    }
  if (stream >= NATTER_SCTP_MAX_STREAMS)
    {
      g_set_error (error, NATTER_PEER_CONNECTION_ERROR, NATTER_PEER_CONNECTION_ERROR_INVALID,
                   "Stream %u does not exist", stream);
      return FALSE;
    }
  if (self->inner == NULL ||
      self->state == NATTER_PEER_CONNECTION_STATE_FAILED ||
      self->state == NATTER_PEER_CONNECTION_STATE_CLOSED)
    {
      g_set_error_literal (error, NATTER_PEER_CONNECTION_ERROR, NATTER_PEER_CONNECTION_ERROR_CLOSED,
                           "The connection is closed");
      return FALSE;
    }

  g_atomic_pointer_add (&self->inner->queued_bytes, (gssize) len);
  if (natter_peer_connection_get_buffered_amount (self) > self->threshold)
    {
      self->above_threshold = TRUE;
      g_atomic_int_set (&self->inner->waiting_low, TRUE);
    }

  op = g_new0 (SendOp, 1);
  op->inner = inner_ref (self->inner);
  op->send = g_new0 (Send, 1);
  op->send->stream = stream;
  op->send->bytes = g_bytes_ref (message);
  natter_transport_invoke (self->inner->transport, inner_do_send, op, send_op_free);
  return TRUE;
}

gsize
natter_peer_connection_get_buffered_amount (NatterPeerConnection *self)
{
  g_return_val_if_fail (NATTER_IS_PEER_CONNECTION (self), 0);

  if (self->inner == NULL)
    return 0;
  return (gsize) MAX (0, g_atomic_pointer_get (&self->inner->queued_bytes)) +
         (gsize) MAX (0, g_atomic_pointer_get (&self->inner->sctp_buffered));
}

void
natter_peer_connection_set_buffered_amount_low_threshold (NatterPeerConnection *self,
                                                          gsize                 threshold)
{
  ThresholdOp *op;

  g_return_if_fail (NATTER_IS_PEER_CONNECTION (self));

  self->threshold = threshold;
  if (self->inner == NULL)
    return;
  g_atomic_pointer_set (&self->inner->low_threshold, (gssize) threshold);
  op = g_new0 (ThresholdOp, 1);
  op->inner = inner_ref (self->inner);
  op->threshold = threshold;
  natter_transport_invoke (self->inner->transport, inner_do_set_threshold, op, threshold_op_free);
}

void
natter_peer_connection_close (NatterPeerConnection *self)
{
  g_autoptr(GError) error = NULL;

  g_return_if_fail (NATTER_IS_PEER_CONNECTION (self));

  if (self->inner != NULL)
    natter_transport_invoke (self->inner->transport, inner_do_close,
                             inner_ref (self->inner), inner_unref);

  error = g_error_new_literal (NATTER_PEER_CONNECTION_ERROR, NATTER_PEER_CONNECTION_ERROR_CLOSED,
                               "The connection was closed");
  outer_set_state (self, NATTER_PEER_CONNECTION_STATE_CLOSED, error);
}

NatterPeerConnectionState
natter_peer_connection_get_state (NatterPeerConnection *self)
{
  g_return_val_if_fail (NATTER_IS_PEER_CONNECTION (self), NATTER_PEER_CONNECTION_STATE_CLOSED);

  return self->state;
}

const GError *
natter_peer_connection_get_error (NatterPeerConnection *self)
{
  g_return_val_if_fail (NATTER_IS_PEER_CONNECTION (self), NULL);

  return self->error;
}

const char *
natter_peer_connection_get_remote_peer_id (NatterPeerConnection *self)
{
  g_return_val_if_fail (NATTER_IS_PEER_CONNECTION (self), NULL);

  return self->remote_peer_id;
}

gboolean
natter_peer_connection_is_controlling (NatterPeerConnection *self)
{
  g_return_val_if_fail (NATTER_IS_PEER_CONNECTION (self), FALSE);

  return self->inner != NULL && self->inner->controlling;
}

gboolean
natter_peer_connection_get_selected_pair (NatterPeerConnection *self,
                                          NatterIcePairInfo    *info)
{
  gboolean have;

  g_return_val_if_fail (NATTER_IS_PEER_CONNECTION (self), FALSE);
  g_return_val_if_fail (info != NULL, FALSE);

  if (self->inner == NULL)
    return FALSE;
  g_mutex_lock (&self->inner->lock);
  have = self->inner->have_pair;
  if (have)
    *info = self->inner->pair;
  g_mutex_unlock (&self->inner->lock);
  return have;
}

void
natter_peer_connection_get_stats (NatterPeerConnection      *self,
                                  NatterPeerConnectionStats *stats)
{
  g_return_if_fail (NATTER_IS_PEER_CONNECTION (self));
  g_return_if_fail (stats != NULL);

  memset (stats, 0, sizeof *stats);
  if (self->inner == NULL)
    return;
  g_mutex_lock (&self->inner->lock);
  *stats = self->inner->stats;
  g_mutex_unlock (&self->inner->lock);
}

typedef struct
{
  Inner *inner;
  NatterDatagramTap tap;
  gpointer tap_data;
  GBytes *datagram;
} TestOp;

static void
test_op_free (gpointer data)
{
  TestOp *op = data;

  g_clear_pointer (&op->datagram, g_bytes_unref);
  inner_unref (op->inner);
  g_free (op);
}

static gboolean
inner_do_set_tap (gpointer data)
{
  TestOp *op = data;

  op->inner->tap = op->tap;
  op->inner->tap_data = op->tap_data;
  return G_SOURCE_REMOVE;
}

static gboolean
inner_do_inject (gpointer data)
{
  TestOp *op = data;
  gsize len;
  const guint8 *bytes = g_bytes_get_data (op->datagram, &len);

  on_ice_datagram (op->inner->ice, bytes, len, op->inner);
  return G_SOURCE_REMOVE;
}

void
natter_peer_connection_set_datagram_tap (NatterPeerConnection *self,
                                         NatterDatagramTap     tap,
                                         gpointer              user_data)
{
  TestOp *op;

  g_return_if_fail (NATTER_IS_PEER_CONNECTION (self));
  if (self->inner == NULL)
    return;

  op = g_new0 (TestOp, 1);
  op->inner = inner_ref (self->inner);
  op->tap = tap;
  op->tap_data = user_data;
  natter_transport_invoke (self->inner->transport, inner_do_set_tap, op, test_op_free);
}

void
natter_peer_connection_inject_datagram (NatterPeerConnection *self,
                                        GBytes               *datagram)
{
  TestOp *op;

  g_return_if_fail (NATTER_IS_PEER_CONNECTION (self));
  if (self->inner == NULL)
    return;

  op = g_new0 (TestOp, 1);
  op->inner = inner_ref (self->inner);
  op->datagram = g_bytes_ref (datagram);
  natter_transport_invoke (self->inner->transport, inner_do_inject, op, test_op_free);
}
