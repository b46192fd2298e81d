/* natter-sctp.c: an SCTP association (usrsctp, AF_CONN) over a datagram path
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <usrsctp.h>

#include "natter-sctp.h"

/* How it fits together
 *
 * usrsctp runs in AF_CONN mode: it never touches a real socket.  Each
 * association registers an opaque address with usrsctp; packets for that
 * address come out of conn_output(), and packets from the peer go in with
 * usrsctp_conninput().  The address is a number handed out once per
 * association, never a pointer to it, so a closing association that usrsctp
 * still remembers can never be mistaken for a new object that happens to
 * live at the same place in memory.  A table of live addresses (owned by
 * the single stack thread) maps them back to associations; a packet or
 * upcall for an address that is not there any more is dropped.
 *
 * usrsctp calls back into us from inside its own functions (conn_output,
 * the socket upcall).  Calling into usrsctp from there would re-enter its
 * locks and state, so callbacks only record that there is work and wake the
 * association's "pump" source, which reads, flushes and emits signals later
 * on the context.  The one exception is conn_output handing the packet to
 * the packet-out function, whose contract forbids re-entering.
 *
 * CRC32c: SCTP's checksum is redundant under the secure channel's AEAD, but
 * a standard stack on the other end (a browser, later, over DTLS) verifies
 * it.  usrsctp 0.9.5 has no SCTP_ACCEPT_ZERO_CHECKSUM, so we turn on its
 * "CRC32c offload" switch, which makes it neither compute the checksum on
 * output nor verify it on input (usrsctp_conninput passes compute_crc = 0),
 * and compute it ourselves in conn_output.  Output stays standard; input
 * costs nothing. */

#define SCTP_COMMON_HEADER_LEN   12
#define SCTP_CHECKSUM_OFFSET     8

#define SCTP_BUFFER_SIZE         (1024 * 1024)
#define EARLY_PACKETS_MAX        16
/* How much one dispatch of the pump reads before yielding the context. */
#define READ_BUDGET_BYTES        (1024 * 1024)
#define STACK_TICK_MS            10
/* With every association established and nothing in flight, the only
 * timers left are heartbeats (seconds apart): the stack ticks this
 * rarely, and any packet in or out brings the fast tick back. */
#define STACK_IDLE_TICK_MS       250
#define STACK_IDLE_AFTER_MS      50      /* past the delayed SACK (20 ms) */
/* Whole messages at least this large are delivered in the buffer they
 * were read into. */
#define STEAL_READ_BUF_MIN       (16 * 1024)

/* usrsctp 0.9.5 implements this socket option (sctp_usrreq.c) but leaves it
 * out of usrsctp.h.  It reports the bytes the association holds for
 * sending: queued, and sent but not yet acknowledged. */
#ifndef SCTP_GET_SNDBUF_USE
#define SCTP_GET_SNDBUF_USE 0x00001101
struct sctp_sockstat
{
  sctp_assoc_t ss_assoc_id;
  uint32_t ss_total_sndbuf;
  uint32_t ss_total_recv_buf;
};
#endif

G_DEFINE_QUARK (natter-sctp-error-quark, natter_sctp_error)

G_DEFINE_ENUM_TYPE (NatterSctpState, natter_sctp_state,
  G_DEFINE_ENUM_VALUE (NATTER_SCTP_STATE_NEW, "new"),
  G_DEFINE_ENUM_VALUE (NATTER_SCTP_STATE_CONNECTING, "connecting"),
  G_DEFINE_ENUM_VALUE (NATTER_SCTP_STATE_OPEN, "open"),
  G_DEFINE_ENUM_VALUE (NATTER_SCTP_STATE_CLOSING, "closing"),
  G_DEFINE_ENUM_VALUE (NATTER_SCTP_STATE_CLOSED, "closed"))

static const char * const state_names[] = {
  "new", "connecting", "open", "closing", "closed",
};

typedef struct
{
  GBytes *message;
  guint32 ppid;
  guint16 stream;
} PendingMessage;

struct _NatterSctpAssociation
{
  GObject parent_instance;

  GMainContext *context;
  guint16 local_port;
  guint16 remote_port;
  guint mtu;

  gpointer addr;                  /* our AF_CONN address: a token, never dereferenced */
  gboolean holds_stack;
  gboolean registered;            /* usrsctp_register_address() done */
  struct socket *sock;
  NatterSctpState state;
  guint n_streams;

  NatterSctpPacketOutFunc packet_out_func;
  gpointer packet_out_data;
  GDestroyNotify packet_out_destroy;

  GSource *pump;
  gboolean pump_scheduled;
  GSource *close_timeout;

  GQueue early_packets;           /* GBytes fed before connect() */
  GQueue send_queue;              /* PendingMessage: priority streams first, then in send order */
  guint8 low_priority_set[NATTER_SCTP_MAX_STREAMS / 8];   /* SCTP_SS_VALUE done */
  gsize queued_bytes;
  gsize low_threshold;
  gboolean above_threshold;

  gboolean receive_paused;
  gboolean shutdown_wanted;
  gboolean shutdown_sent;

  guint8 *read_buf;               /* NATTER_SCTP_MAX_MESSAGE_SIZE bytes */
  GHashTable *partial_messages;   /* stream -> GByteArray, until MSG_EOR */
  GByteArray *partial_notification;

  NatterSctpStats stats;
};

G_DEFINE_FINAL_TYPE (NatterSctpAssociation, natter_sctp_association, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_CONTEXT,
  PROP_LOCAL_PORT,
  PROP_REMOTE_PORT,
  PROP_MTU,
  PROP_STATE,
  PROP_BUFFERED_AMOUNT_LOW_THRESHOLD,
  PROP_RECEIVE_PAUSED,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_OPENED,
  SIGNAL_CLOSED,
  SIGNAL_MESSAGE_RECEIVED,
  SIGNAL_BUFFERED_AMOUNT_LOW,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void mark_closed (NatterSctpAssociation *self);

/* The usrsctp stack: process-wide, driven from one thread. */

typedef struct
{
  struct socket *sock;
  gpointer addr;
} Grave;

static struct
{
  gboolean running;          /* usrsctp_init_nothreads() done, usrsctp_finish() not yet */
  guint n_associations;      /* not yet finalized */
  GThread *thread;           /* the one thread allowed to call usrsctp */
  GSource *timer;            /* borrowed; cleared by its destroy notify */
  gint64 last_tick_us;
  gint64 last_activity_us;   /* a packet in or out */
  gboolean slow;             /* ticking every STACK_IDLE_TICK_MS */
  gint64 next_quiescent_check_us;
  GHashTable *live;          /* addr -> NatterSctpAssociation (borrowed) */
  guintptr next_addr;
  guint callback_depth;      /* > 0 while inside conn_output's packet-out call */
  GSList *graveyard;         /* Grave: sockets to close once out of callbacks */
} stack = { .next_addr = 1 };

/* Guards the fields above against the one cross-thread event: a context
 * being destroyed elsewhere, which runs the timer's destroy notify.  Never
 * held while usrsctp or a user callback runs. */
G_LOCK_DEFINE_STATIC (stack);

static inline gboolean
on_stack_thread (void)
{
  return stack.thread == g_thread_self ();
}

/* Brings usrsctp's clock (its `ticks`, which only our calls advance) up
 * to now, firing what is due. */
static void
stack_advance (gint64 now)
{
  gint64 elapsed_ms = (now - stack.last_tick_us) / 1000;

  if (elapsed_ms > 0)
    {
      /* Keep the remainder, so that ticks do not drift behind the clock. */
      stack.last_tick_us += elapsed_ms * 1000;
      usrsctp_handle_timers ((guint32) MIN (elapsed_ms, G_MAXUINT32));
    }
}

/* Called before anything that enters usrsctp from outside (a packet in,
 * a send, a connect, a shutdown) and on every packet out: timers (delayed
 * SACK, retransmission) may now be due within milliseconds, so the fast
 * tick comes back at once.  Coming out of the slow tick, the stack's
 * clock (up to STACK_IDLE_TICK_MS behind) is brought up to date first,
 * so that the timers started next count from now. */
static inline void
stack_wake (gboolean outside)
{
  stack.last_activity_us = g_get_monotonic_time ();
  if (G_UNLIKELY (stack.slow) && stack.timer != NULL)
    {
      stack.slow = FALSE;
      if (outside)
        stack_advance (stack.last_activity_us);
      g_source_set_ready_time (stack.timer, stack.last_tick_us + STACK_TICK_MS * 1000);
    }
}

/* Before we call into usrsctp (never from inside it). */
static inline void
stack_kick (void)
{
  stack_wake (stack.callback_depth == 0);
}

/* The SCTP checksum (CRC32c, RFC 4960 appendix B) of @len bytes, in the
 * byte order it takes in the packet.  usrsctp's own is a table-driven
 * loop that showed as a tenth of the bulk-transfer profile; x86-64 has an
 * instruction for it since SSE 4.2. */
#if defined(__x86_64__) && G_BYTE_ORDER == G_LITTLE_ENDIAN && (defined(__GNUC__) || defined(__clang__))
__attribute__((target ("sse4.2")))
static guint32
crc32c_sse42 (const guint8 *data,
              gsize         len)
{
  guint64 crc = 0xffffffff;

  for (; len >= 8; data += 8, len -= 8)
    {
      guint64 word;

      memcpy (&word, data, sizeof word);
      crc = __builtin_ia32_crc32di (crc, word);
    }
  for (; len > 0; data++, len--)
    crc = __builtin_ia32_crc32qi ((guint32) crc, *data);

  /* Little-endian storage of the complement is the wire order. */
  return ~(guint32) crc;
}

static guint32
packet_crc32c (guint8 *data,
               gsize   len)
{
  static gsize have_sse42;

  if (g_once_init_enter (&have_sse42))
    g_once_init_leave (&have_sse42, __builtin_cpu_supports ("sse4.2") ? 2 : 1);

  if (have_sse42 == 2)
    return crc32c_sse42 (data, len);
  /* A pure function of the bytes; it does not enter the stack. */
  return usrsctp_crc32c (data, len);
}
#else
static guint32
packet_crc32c (guint8 *data,
               gsize   len)
{
  /* A pure function of the bytes; it does not enter the stack. */
  return usrsctp_crc32c (data, len);
}
#endif

static int
conn_output (void    *addr,
             void    *buffer,
             size_t   length,
             uint8_t  tos,
             uint8_t  set_df)
{
  NatterSctpAssociation *self;
  guint8 *data = buffer;

  self = stack.live != NULL ? g_hash_table_lookup (stack.live, addr) : NULL;
  /* usrsctp may still emit packets (a retransmitted SHUTDOWN, an ABORT) for
   * an association we have let go of: usrsctp issue #405. */
  if (self == NULL || self->packet_out_func == NULL)
    return -1;

  /* @buffer is a copy that usrsctp allocated for this call and frees
   * after it (sctp_lowlevel_chunk_output), so the checksum goes straight
   * into it and the packet is handed on without another copy. */
  if (length >= SCTP_COMMON_HEADER_LEN)
    {
      guint32 crc;

      memset (data + SCTP_CHECKSUM_OFFSET, 0, sizeof crc);
      crc = packet_crc32c (data, length);
      memcpy (data + SCTP_CHECKSUM_OFFSET, &crc, sizeof crc);
    }

  self->stats.packets_out++;
  stack_wake (FALSE);   /* inside usrsctp: no timers from here */
  stack.callback_depth++;
  /* @self may be finalized by the time this returns: do not touch it. */
  self->packet_out_func (self, data, length, self->packet_out_data);
  stack.callback_depth--;

  return 0;
}

#define STACK_SYSCTL(name, value) \
  G_STMT_START { \
    if (usrsctp_sysctl_set_##name (value) != 0) \
      g_warning ("usrsctp: could not set %s to %u", #name, (guint) (value)); \
  } G_STMT_END

/* Called after each usrsctp_init_nothreads(), which resets the sysctls.
 * The values follow libdatachannel's tuning. */
static void
stack_configure (void)
{
  usrsctp_enable_crc32c_offload ();

  /* The default 256 KiB windows are too small for real round-trip times. */
  STACK_SYSCTL (sctp_sendspace, SCTP_BUFFER_SIZE);
  STACK_SYSCTL (sctp_recvspace, SCTP_BUFFER_SIZE);
  STACK_SYSCTL (sctp_max_chunks_on_queue, 10 * 1024);
  /* RFC 6928: an initial window of 10 packets. */
  STACK_SYSCTL (sctp_initial_cwnd, 10);
  STACK_SYSCTL (sctp_max_burst_default, 10);
  /* Standard RFC 4960 congestion control. */
  STACK_SYSCTL (sctp_default_cc_module, 0);
  /* 20 ms rather than RFC 4960's 200 ms: a late SACK stalls a small window. */
  STACK_SYSCTL (sctp_delayed_sack_time_default, 20);
  STACK_SYSCTL (sctp_rto_min_default, 200);
  STACK_SYSCTL (sctp_rto_max_default, 10000);
  STACK_SYSCTL (sctp_init_rto_max_default, 10000);
  STACK_SYSCTL (sctp_rto_initial_default, 1000);
  /* Five retransmissions, not eight: a dead peer is noticed sooner. */
  STACK_SYSCTL (sctp_init_rtx_max_default, 5);
  STACK_SYSCTL (sctp_assoc_rtx_max_default, 5);
  STACK_SYSCTL (sctp_path_rtx_max_default, 5);
  STACK_SYSCTL (sctp_heartbeat_interval_default, 10000);
  STACK_SYSCTL (sctp_nr_outgoing_streams_default, NATTER_SCTP_MAX_STREAMS);
  /* The secure channel below already does what these would: browsers turn
   * them off too.  ASCONF depends on AUTH, so it goes first. */
  STACK_SYSCTL (sctp_ecn_enable, 0);
  STACK_SYSCTL (sctp_asconf_enable, 0);
  STACK_SYSCTL (sctp_auth_enable, 0);
}

static void
stack_bury_graves (void)
{
  while (stack.graveyard != NULL && stack.callback_depth == 0)
    {
      Grave *grave = stack.graveyard->data;

      stack.graveyard = g_slist_delete_link (stack.graveyard, stack.graveyard);
      if (grave->sock != NULL)
        usrsctp_close (grave->sock);
      usrsctp_deregister_address (grave->addr);
      g_free (grave);
    }
}

/* usrsctp_finish() fails while closed sockets still linger in the stack
 * (an ABORT or SHUTDOWN being processed): the timer keeps ticking and
 * retries until it succeeds, or until a new association needs the stack. */
static gboolean
stack_try_finish (void)
{
  GSource *timer = NULL;
  gboolean finished = FALSE;

  G_LOCK (stack);
  if (stack.running && stack.n_associations == 0 && stack.graveyard == NULL
      && stack.callback_depth == 0 && usrsctp_finish () == 0)
    {
      stack.running = FALSE;
      g_clear_pointer (&stack.live, g_hash_table_unref);
      stack.thread = NULL;
      timer = g_steal_pointer (&stack.timer);
      finished = TRUE;
    }
  G_UNLOCK (stack);

  if (timer != NULL)
    g_source_destroy (timer);

  return finished;
}

/* Whether no association has anything under way that a timer serves:
 * all established, no data unacknowledged or waiting, nothing queued. */
static gboolean
stack_quiescent (void)
{
  GHashTableIter iter;
  gpointer value;

  if (stack.graveyard != NULL || stack.live == NULL)
    return FALSE;
  g_hash_table_iter_init (&iter, stack.live);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      NatterSctpAssociation *self = value;
      struct sctp_status status = { 0 };
      socklen_t len = sizeof status;

      if (self->sock == NULL || self->state != NATTER_SCTP_STATE_OPEN ||
          self->send_queue.length > 0 || self->shutdown_wanted)
        return FALSE;
      if (usrsctp_getsockopt (self->sock, IPPROTO_SCTP, SCTP_STATUS, &status, &len) < 0 ||
          status.sstat_state != SCTP_ESTABLISHED || status.sstat_unackdata > 0 ||
          status.sstat_penddata > 0)
        return FALSE;
    }
  return TRUE;
}

static gboolean
stack_tick (gpointer data)
{
  GSource *timer = data;
  gint64 now;

  stack_advance (g_get_monotonic_time ());
  stack_bury_graves ();

  if (stack_try_finish ())
    return G_SOURCE_REMOVE;

  now = g_get_monotonic_time ();
  /* Asking every association costs a socket option each: once per quiet
   * spell of STACK_IDLE_AFTER_MS, not every tick. */
  if (!stack.slow && now - stack.last_activity_us >= STACK_IDLE_AFTER_MS * 1000 &&
      now >= stack.next_quiescent_check_us)
    {
      stack.next_quiescent_check_us = now + STACK_IDLE_AFTER_MS * 1000;
      stack.slow = stack_quiescent ();
    }
  g_source_set_ready_time (timer, stack.last_tick_us +
                           (stack.slow ? STACK_IDLE_TICK_MS : STACK_TICK_MS) * 1000);
  return G_SOURCE_CONTINUE;
}

static gboolean
stack_tick_dispatch (GSource     *source,
                     GSourceFunc  callback,
                     gpointer     user_data)
{
  return callback (user_data);
}

/* Runs when the timer is destroyed, also when its context is finalized
 * from whichever thread.  With no association left, the thread that
 * owned the stack has nothing more to do with it, so another may take
 * it over (the stack stays initialised until the next finish). */
static void
stack_timer_destroyed (gpointer data)
{
  G_LOCK (stack);
  if (stack.timer == data)
    {
      stack.timer = NULL;
      if (stack.n_associations == 0)
        stack.thread = NULL;
    }
  G_UNLOCK (stack);
}

static gboolean
stack_acquire (GMainContext *context,
               gpointer     *addr_out)
{
  GSource *stale_timer = NULL;

  G_LOCK (stack);

  if (stack.thread != NULL && stack.thread != g_thread_self ())
    {
      G_UNLOCK (stack);
      g_critical ("usrsctp is driven from another thread: all SCTP associations "
                  "of a process must live on one thread");
      return FALSE;
    }

  if (stack.n_associations > 0 && stack.timer != NULL
      && g_source_get_context (stack.timer) != context)
    {
      G_UNLOCK (stack);
      g_critical ("All SCTP associations alive at once must share one GMainContext");
      return FALSE;
    }

  if (!stack.running)
    {
      usrsctp_init_nothreads (0, conn_output, NULL);
      stack_configure ();
      stack.live = g_hash_table_new (NULL, NULL);
      stack.running = TRUE;
    }

  stack.thread = g_thread_self ();
  stack.n_associations++;

  /* A finish still pending on an older context moves to this one. */
  if (stack.timer != NULL && g_source_get_context (stack.timer) != context)
    stale_timer = g_steal_pointer (&stack.timer);

  if (stack.timer == NULL)
    {
      static GSourceFuncs tick_funcs = { .dispatch = stack_tick_dispatch };
      GSource *timer = g_source_new (&tick_funcs, sizeof (GSource));

      g_source_set_static_name (timer, "[natter] usrsctp timers");
      g_source_set_ready_time (timer, g_get_monotonic_time () + STACK_TICK_MS * 1000);
      stack.slow = FALSE;
      g_source_set_callback (timer, stack_tick, timer, stack_timer_destroyed);
      g_source_attach (timer, context);
      g_source_unref (timer);
      stack.timer = timer;
      stack.last_tick_us = g_get_monotonic_time ();
    }

  *addr_out = GSIZE_TO_POINTER (stack.next_addr++);

  G_UNLOCK (stack);

  if (stale_timer != NULL)
    g_source_destroy (stale_timer);

  return TRUE;
}

static void
stack_release (void)
{
  G_LOCK (stack);
  stack.n_associations--;
  G_UNLOCK (stack);

  if (stack.callback_depth == 0)
    {
      stack_bury_graves ();
      stack_try_finish ();
    }
}

/**
 * natter_sctp_stack_is_running:
 *
 * Returns: whether usrsctp is initialised
 */
gboolean
natter_sctp_stack_is_running (void)
{
  gboolean running;

  G_LOCK (stack);
  running = stack.running;
  G_UNLOCK (stack);

  return running;
}

/**
 * natter_sctp_stack_get_tick_ms:
 *
 * How often usrsctp's timers run now: every 10 ms while anything is under
 * way, every 250 ms while every association is quiet.
 *
 * Returns: the interval in milliseconds, or 0 when usrsctp is not running
 */
guint
natter_sctp_stack_get_tick_ms (void)
{
  guint tick;

  G_LOCK (stack);
  tick = !stack.running || stack.timer == NULL ? 0 : stack.slow ? STACK_IDLE_TICK_MS : STACK_TICK_MS;
  G_UNLOCK (stack);

  return tick;
}

/**
 * natter_sctp_stack_get_next_tick_us:
 *
 * When usrsctp's timers run next, on the monotonic clock (for tests that
 * time a send against the tick).
 *
 * Returns: the time in microseconds, or -1 when usrsctp is not running
 */
gint64
natter_sctp_stack_get_next_tick_us (void)
{
  gint64 next;

  G_LOCK (stack);
  next = !stack.running || stack.timer == NULL ? -1 : g_source_get_ready_time (stack.timer);
  G_UNLOCK (stack);

  return next;
}

/* The association */

static void
pending_message_free (gpointer data)
{
  PendingMessage *pending = data;

  g_bytes_unref (pending->message);
  g_free (pending);
}

static void
destroy_source (GSource *source)
{
  g_source_destroy (source);
  g_source_unref (source);
}

static void
set_state (NatterSctpAssociation *self,
           NatterSctpState        state)
{
  if (self->state == state)
    return;

  g_debug ("SCTP association %p: %s -> %s", self,
           state_names[self->state], state_names[state]);
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}

static void
schedule_pump (NatterSctpAssociation *self)
{
  if (self->pump != NULL && !self->pump_scheduled)
    {
      self->pump_scheduled = TRUE;
      g_source_set_ready_time (self->pump, 0);
    }
}

static void
on_upcall (struct socket *sock,
           void          *arg,
           int            flags)
{
  NatterSctpAssociation *self;

  self = stack.live != NULL ? g_hash_table_lookup (stack.live, arg) : NULL;
  if (self == NULL || self->sock != sock)
    return;

  /* Readable, writable or failed: the pump finds out which, outside usrsctp. */
  schedule_pump (self);
}

/* Closes our socket and gives our address back.  Inside a usrsctp callback
 * that would re-enter the stack, so the socket waits in the graveyard for
 * the next timer tick instead. */
static void
release_socket (NatterSctpAssociation *self)
{
  struct socket *sock = g_steal_pointer (&self->sock);

  if (sock == NULL && !self->registered)
    return;

  if (stack.callback_depth > 0)
    {
      Grave *grave = g_new0 (Grave, 1);

      grave->sock = sock;
      grave->addr = self->addr;
      stack.graveyard = g_slist_prepend (stack.graveyard, grave);
    }
  else
    {
      /* SO_LINGER is {1, 0}: an association still up is aborted. */
      if (sock != NULL)
        usrsctp_close (sock);
      usrsctp_deregister_address (self->addr);
    }
  self->registered = FALSE;
}

static gsize
read_usrsctp_buffered (NatterSctpAssociation *self)
{
  struct sctp_sockstat ss = { 0 };
  socklen_t len = sizeof ss;

  if (self->sock == NULL || stack.callback_depth > 0
      || (self->state != NATTER_SCTP_STATE_OPEN && self->state != NATTER_SCTP_STATE_CLOSING))
    return 0;

  if (usrsctp_getsockopt (self->sock, IPPROTO_SCTP, SCTP_GET_SNDBUF_USE, &ss, &len) < 0)
    return 0;

  return ss.ss_total_sndbuf;
}

/* Re-reads the buffered amount; emits "buffered-amount-low" (when @may_emit)
 * on the way down through the threshold. */
static void
update_buffered (NatterSctpAssociation *self,
                 gboolean               may_emit)
{
  gsize amount = self->queued_bytes + read_usrsctp_buffered (self);

  if (amount > self->low_threshold)
    self->above_threshold = TRUE;
  else if (self->above_threshold && may_emit)
    {
      self->above_threshold = FALSE;
      g_signal_emit (self, signals[SIGNAL_BUFFERED_AMOUNT_LOW], 0);
    }
}

typedef enum
{
  SEND_OK,
  SEND_WOULD_BLOCK,
  SEND_FAILED,
} SendResult;

static gboolean
queue_has_stream (NatterSctpAssociation *self,
                  guint16                stream)
{
  for (GList *l = self->send_queue.head; l != NULL; l = l->next)
    if (((PendingMessage *) l->data)->stream == stream)
      return TRUE;
  return FALSE;
}

static SendResult
try_send (NatterSctpAssociation  *self,
          guint16                 stream,
          guint32                 ppid,
          GBytes                 *message,
          GError                **error)
{
  struct sctp_sendv_spa spa = { 0 };
  gsize size;
  const guint8 *data = g_bytes_get_data (message, &size);
  ssize_t sent;
  int saved_errno;

  if (stream >= NATTER_SCTP_PRIORITY_STREAMS &&
      !(self->low_priority_set[stream / 8] & (1u << (stream % 8))))
    {
      struct sctp_stream_value value = { 0 };

      value.assoc_id = SCTP_FUTURE_ASSOC;
      value.stream_id = stream;
      value.stream_value = 1;
      if (usrsctp_setsockopt (self->sock, IPPROTO_SCTP, SCTP_SS_VALUE, &value, sizeof value) < 0)
        g_debug ("SCTP stream %u priority not set: %s", stream, g_strerror (errno));
      self->low_priority_set[stream / 8] |= 1u << (stream % 8);
    }

  spa.sendv_flags = SCTP_SEND_SNDINFO_VALID;
  spa.sendv_sndinfo.snd_sid = stream;
  spa.sendv_sndinfo.snd_ppid = htonl (ppid);
  /* Each send is one whole message; SCTP_EXPLICIT_EOR stays off. */
  spa.sendv_sndinfo.snd_flags = SCTP_EOR;

  stack_kick ();
  sent = usrsctp_sendv (self->sock, data, size, NULL, 0, &spa, sizeof spa,
                        SCTP_SENDV_SPA, 0);
  saved_errno = errno;

  if (sent < 0)
    {
      if (saved_errno == EWOULDBLOCK || saved_errno == EAGAIN)
        return SEND_WOULD_BLOCK;

      g_set_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_FAILED,
                   "SCTP could not send on stream %u: %s", stream,
                   g_strerror (saved_errno));
      return SEND_FAILED;
    }

  /* A non-blocking socket takes a message whole or not at all. */
  if ((gsize) sent != size)
    {
      g_set_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_FAILED,
                   "SCTP took %zd of %zu bytes", sent, size);
      return SEND_FAILED;
    }

  self->stats.messages_sent++;
  self->stats.bytes_sent += size;
  return SEND_OK;
}

static void
flush_queue (NatterSctpAssociation *self)
{
  PendingMessage *pending;

  if (self->state != NATTER_SCTP_STATE_OPEN && self->state != NATTER_SCTP_STATE_CLOSING)
    return;

  while (self->sock != NULL && (pending = g_queue_peek_head (&self->send_queue)) != NULL)
    {
      g_autoptr(GError) error = NULL;
      SendResult result;

      result = try_send (self, pending->stream, pending->ppid, pending->message, &error);
      if (result == SEND_WOULD_BLOCK)
        break;

      g_queue_pop_head (&self->send_queue);
      self->queued_bytes -= g_bytes_get_size (pending->message);
      pending_message_free (pending);

      /* The association is going away (or the peer granted fewer streams
       * than the message asked for); ASSOC_CHANGE tells the rest. */
      if (result == SEND_FAILED)
        g_debug ("Dropping a queued message: %s", error->message);
    }
}

static void
clear_send_queue (NatterSctpAssociation *self)
{
  g_queue_clear_full (&self->send_queue, pending_message_free);
  self->queued_bytes = 0;
  self->above_threshold = FALSE;
}

static void
deliver_message (NatterSctpAssociation *self,
                 guint16                stream,
                 guint32                ppid,
                 GBytes                *message)
{
  self->stats.messages_received++;
  self->stats.bytes_received += g_bytes_get_size (message);
  g_signal_emit (self, signals[SIGNAL_MESSAGE_RECEIVED], 0,
                 (guint) stream, (guint) ppid, message);
}

static void
handle_data (NatterSctpAssociation     *self,
             const struct sctp_rcvinfo *info,
             gsize                      len,
             gboolean                   eor)
{
  guint16 stream = info->rcv_sid;
  guint32 ppid = ntohl (info->rcv_ppid);
  GByteArray *partial = NULL;

  if (g_hash_table_size (self->partial_messages) > 0)
    partial = g_hash_table_lookup (self->partial_messages, GUINT_TO_POINTER (stream));

  if (partial == NULL && eor)
    {
      g_autoptr(GBytes) message = NULL;

      /* A large message keeps the buffer it was read into (shrunk to
       * size), and reading goes on in a fresh one: a copy of each byte
       * costs more than an allocation per message. */
      if (len >= STEAL_READ_BUF_MIN)
        {
          guint8 *data = g_steal_pointer (&self->read_buf);

          if (len < NATTER_SCTP_MAX_MESSAGE_SIZE)
            data = g_realloc (data, len);
          message = g_bytes_new_take (data, len);
          self->read_buf = g_malloc (NATTER_SCTP_MAX_MESSAGE_SIZE);
        }
      else
        message = g_bytes_new (self->read_buf, len);

      deliver_message (self, stream, ppid, message);
      return;
    }

  if (partial == NULL)
    {
      partial = g_byte_array_sized_new (NATTER_SCTP_MAX_MESSAGE_SIZE);
      g_hash_table_insert (self->partial_messages, GUINT_TO_POINTER (stream), partial);
    }

  /* A peer that sends more than it may breaks the contract both ends
   * follow; cutting the message short or skipping it would break ordered
   * delivery silently, so the association ends. */
  if (partial->len + len > NATTER_SCTP_MAX_MESSAGE_SIZE)
    {
      g_warning ("SCTP peer sent a message over %d bytes on stream %u: aborting",
                 NATTER_SCTP_MAX_MESSAGE_SIZE, stream);
      mark_closed (self);
      return;
    }

  g_byte_array_append (partial, self->read_buf, len);

  if (eor)
    {
      g_autoptr(GBytes) message = NULL;

      g_hash_table_steal (self->partial_messages, GUINT_TO_POINTER (stream));
      message = g_byte_array_free_to_bytes (partial);
      deliver_message (self, stream, ppid, message);
    }
}

static void
arm_close_timeout (NatterSctpAssociation *self);

static void
handle_notification (NatterSctpAssociation          *self,
                     const union sctp_notification  *notification,
                     gsize                           len)
{
  if (len < sizeof notification->sn_header
      || notification->sn_header.sn_length != len)
    return;

  switch (notification->sn_header.sn_type)
    {
    case SCTP_ASSOC_CHANGE:
      {
        const struct sctp_assoc_change *change = &notification->sn_assoc_change;

        if (len < sizeof *change)
          return;

        switch (change->sac_state)
          {
          case SCTP_COMM_UP:
            self->n_streams = MIN (change->sac_outbound_streams, NATTER_SCTP_MAX_STREAMS);
            if (self->state == NATTER_SCTP_STATE_CONNECTING)
              {
                set_state (self, NATTER_SCTP_STATE_OPEN);
                g_signal_emit (self, signals[SIGNAL_OPENED], 0);
              }
            break;

          case SCTP_COMM_LOST:
          case SCTP_SHUTDOWN_COMP:
          case SCTP_CANT_STR_ASSOC:
            mark_closed (self);
            break;

          default:
            break;
          }
      }
      break;

    case SCTP_SHUTDOWN_EVENT:
      /* The peer closes: it takes no new data, and usrsctp finishes the
       * SHUTDOWN exchange on its own. */
      if (self->state == NATTER_SCTP_STATE_OPEN)
        {
          set_state (self, NATTER_SCTP_STATE_CLOSING);
          arm_close_timeout (self);
        }
      break;

    case SCTP_SENDER_DRY_EVENT:
      /* Everything is acknowledged: the pump re-reads the buffered amount
       * right after this. */
      break;

    default:
      break;
    }
}

static void
read_messages (NatterSctpAssociation *self)
{
  gsize budget = READ_BUDGET_BYTES;

  while (self->sock != NULL && !self->receive_paused)
    {
      struct sctp_rcvinfo info = { 0 };
      socklen_t infolen = sizeof info;
      socklen_t fromlen = 0;
      unsigned int infotype = 0;
      int flags = 0;
      ssize_t len;
      gboolean eor;

      if (budget == 0)
        {
          /* Let the rest of the context run; carry on next dispatch. */
          schedule_pump (self);
          break;
        }

      len = usrsctp_recvv (self->sock, self->read_buf, NATTER_SCTP_MAX_MESSAGE_SIZE,
                           NULL, &fromlen, &info, &infolen, &infotype, &flags);
      if (len < 0)
        {
          if (errno == EWOULDBLOCK || errno == EAGAIN)
            break;
          /* ECONNRESET, ENOTCONN: the association is gone. */
          mark_closed (self);
          break;
        }
      if (len == 0)
        {
          /* End of stream: the association has ended. */
          mark_closed (self);
          break;
        }

      budget -= MIN (budget, (gsize) len);
      eor = (flags & MSG_EOR) != 0;

      if (flags & MSG_NOTIFICATION)
        {
          g_byte_array_append (self->partial_notification, self->read_buf, len);
          if (eor)
            {
              g_autoptr(GByteArray) notification = g_steal_pointer (&self->partial_notification);

              self->partial_notification = g_byte_array_new ();
              handle_notification (self, (const union sctp_notification *) notification->data,
                                   notification->len);
            }
          else if (self->partial_notification->len > NATTER_SCTP_MAX_MESSAGE_SIZE)
            {
              g_byte_array_set_size (self->partial_notification, 0);
            }
        }
      else if (infotype == SCTP_RECVV_RCVINFO)
        {
          handle_data (self, &info, len, eor);
        }
      else
        {
          /* SCTP_RECVRCVINFO is on: data always comes with its stream. */
          g_warning ("SCTP data without receive info: aborting");
          mark_closed (self);
        }
    }
}

static void
start_shutdown (NatterSctpAssociation *self)
{
  self->shutdown_sent = TRUE;
  stack_kick ();
  if (usrsctp_shutdown (self->sock, SHUT_WR) < 0 && errno != ENOTCONN)
    {
      g_debug ("SCTP shutdown failed: %s", g_strerror (errno));
      mark_closed (self);
    }
}

static gboolean
pump_run (gpointer data)
{
  g_autoptr(NatterSctpAssociation) self = g_object_ref (data);

  self->pump_scheduled = FALSE;
  g_source_set_ready_time (self->pump, -1);

  if (self->sock != NULL && !self->receive_paused)
    read_messages (self);
  else if (self->sock != NULL && (usrsctp_get_events (self->sock) & SCTP_EVENT_ERROR))
    {
      /* Paused, notifications wait behind unread messages; an aborted or
       * lost association still has to be noticed. */
      mark_closed (self);
    }

  if (self->sock != NULL)
    flush_queue (self);

  if (self->sock != NULL && self->shutdown_wanted && !self->shutdown_sent
      && g_queue_is_empty (&self->send_queue))
    start_shutdown (self);

  /* Reading the amount costs a getsockopt; only a sender above its
   * threshold is waiting for it to fall. */
  if (self->above_threshold)
    update_buffered (self, TRUE);

  return G_SOURCE_CONTINUE;
}

static gboolean
pump_dispatch (GSource     *source,
               GSourceFunc  callback,
               gpointer     user_data)
{
  return callback (user_data);
}

static GSourceFuncs pump_funcs = {
  .dispatch = pump_dispatch,
};

static gboolean
close_timeout_cb (gpointer data)
{
  NatterSctpAssociation *self = data;

  g_clear_pointer (&self->close_timeout, g_source_unref);
  g_debug ("SCTP association %p: graceful close timed out, aborting", self);
  mark_closed (self);

  return G_SOURCE_REMOVE;
}

static void
arm_close_timeout (NatterSctpAssociation *self)
{
  if (self->close_timeout != NULL)
    return;

  self->close_timeout = g_timeout_source_new (NATTER_SCTP_CLOSE_TIMEOUT_MS);
  g_source_set_static_name (self->close_timeout, "[natter] SCTP close timeout");
  g_source_set_callback (self->close_timeout, close_timeout_cb, self, NULL);
  g_source_attach (self->close_timeout, self->context);
}

/* The end, whichever way it came: drops what was queued, closes the socket
 * (aborting an association still up) and emits "closed" once. */
static void
mark_closed (NatterSctpAssociation *self)
{
  g_autoptr(NatterSctpAssociation) hold = NULL;

  if (self->state == NATTER_SCTP_STATE_CLOSED)
    return;

  hold = g_object_ref (self);
  clear_send_queue (self);
  g_hash_table_remove_all (self->partial_messages);
  g_clear_pointer (&self->close_timeout, destroy_source);
  release_socket (self);
  set_state (self, NATTER_SCTP_STATE_CLOSED);
  g_signal_emit (self, signals[SIGNAL_CLOSED], 0);
}

static gboolean
set_option (NatterSctpAssociation  *self,
            int                     level,
            int                     name,
            const void             *value,
            socklen_t               len,
            const char             *what,
            GError                **error)
{
  if (usrsctp_setsockopt (self->sock, level, name, value, len) < 0)
    {
      int saved_errno = errno;

      g_set_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_FAILED,
                   "Could not set SCTP option %s: %s", what, g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

static struct sockaddr_conn
make_address (NatterSctpAssociation *self,
              guint16                port)
{
  struct sockaddr_conn sconn = { 0 };

  sconn.sconn_family = AF_CONN;
  sconn.sconn_port = htons (port);
  sconn.sconn_addr = self->addr;
  return sconn;
}

static gboolean
open_socket (NatterSctpAssociation  *self,
             GError                **error)
{
  static const uint16_t events[] = {
    SCTP_ASSOC_CHANGE,
    SCTP_SHUTDOWN_EVENT,
    SCTP_SENDER_DRY_EVENT,
  };
  struct linger linger = { .l_onoff = 1, .l_linger = 0 };
  struct sctp_initmsg initmsg = { 0 };
  struct sctp_sack_info sack = { 0 };
  struct sctp_paddrparams params = { 0 };
  struct sockaddr_conn local, remote;
  int buffer_size = SCTP_BUFFER_SIZE;
  int on = 1;
  int level = 0;

  usrsctp_register_address (self->addr);
  self->registered = TRUE;

  self->sock = usrsctp_socket (AF_CONN, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
  if (self->sock == NULL)
    {
      int saved_errno = errno;

      g_set_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_FAILED,
                   "Could not create an SCTP socket: %s", g_strerror (saved_errno));
      return FALSE;
    }

  usrsctp_set_upcall (self->sock, on_upcall, self->addr);

  if (usrsctp_set_non_blocking (self->sock, 1) < 0)
    {
      g_set_error_literal (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_FAILED,
                           "Could not make the SCTP socket non-blocking");
      return FALSE;
    }

  /* No lingering: once we let go, nothing more may go out. */
  if (!set_option (self, SOL_SOCKET, SO_LINGER, &linger, sizeof linger, "SO_LINGER", error)
      || !set_option (self, SOL_SOCKET, SO_SNDBUF, &buffer_size, sizeof buffer_size, "SO_SNDBUF", error)
      || !set_option (self, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof buffer_size, "SO_RCVBUF", error)
      /* Latency over packing: no Nagle (RFC 8831 6.6). */
      || !set_option (self, IPPROTO_SCTP, SCTP_NODELAY, &on, sizeof on, "SCTP_NODELAY", error)
      || !set_option (self, IPPROTO_SCTP, SCTP_RECVRCVINFO, &on, sizeof on, "SCTP_RECVRCVINFO", error)
      /* Whole messages one after another, notifications between them. */
      || !set_option (self, IPPROTO_SCTP, SCTP_FRAGMENT_INTERLEAVE, &level, sizeof level,
                      "SCTP_FRAGMENT_INTERLEAVE", error))
    return FALSE;

  for (gsize i = 0; i < G_N_ELEMENTS (events); i++)
    {
      struct sctp_event event = { 0 };

      event.se_assoc_id = SCTP_ALL_ASSOC;
      event.se_type = events[i];
      event.se_on = 1;
      if (!set_option (self, IPPROTO_SCTP, SCTP_EVENT, &event, sizeof event, "SCTP_EVENT", error))
        return FALSE;
    }

  initmsg.sinit_num_ostreams = NATTER_SCTP_MAX_STREAMS;
  initmsg.sinit_max_instreams = NATTER_SCTP_MAX_STREAMS;
  if (!set_option (self, IPPROTO_SCTP, SCTP_INITMSG, &initmsg, sizeof initmsg, "SCTP_INITMSG", error))
    return FALSE;

  sack.sack_assoc_id = SCTP_FUTURE_ASSOC;
  sack.sack_delay = 20;
  if (!set_option (self, IPPROTO_SCTP, SCTP_DELAYED_SACK, &sack, sizeof sack, "SCTP_DELAYED_SACK", error))
    return FALSE;

  /* The priority stream scheduler: a chat message is chunked before the
   * bulk data queued ahead of it (bulk streams get a lower priority when
   * first used; lower values go first). */
  {
    struct sctp_assoc_value scheduler = { 0 };

    scheduler.assoc_id = SCTP_FUTURE_ASSOC;
    scheduler.assoc_value = SCTP_SS_PRIORITY;
    if (usrsctp_setsockopt (self->sock, IPPROTO_SCTP, SCTP_PLUGGABLE_SS, &scheduler, sizeof scheduler) < 0)
      g_debug ("SCTP priority scheduler not available: %s", g_strerror (errno));
  }

  /* usrsctp does no path MTU discovery without ICMP, and the datagram
   * budget under the secure channel is fixed, so the size is too.
   * spp_pathmtu excludes the 12-byte common header: usrsctp adds it back
   * for AF_CONN (sctp_usrreq.c), and packets then never exceed self->mtu. */
  params.spp_assoc_id = SCTP_FUTURE_ASSOC;
  params.spp_flags = SPP_PMTUD_DISABLE | SPP_HB_ENABLE;
  params.spp_pathmtu = self->mtu - SCTP_COMMON_HEADER_LEN;
  if (!set_option (self, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &params, sizeof params,
                   "SCTP_PEER_ADDR_PARAMS", error))
    return FALSE;

  local = make_address (self, self->local_port);
  if (usrsctp_bind (self->sock, (struct sockaddr *) &local, sizeof local) < 0)
    {
      int saved_errno = errno;

      g_set_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_FAILED,
                   "Could not bind the SCTP socket: %s", g_strerror (saved_errno));
      return FALSE;
    }

  /* Both ends connect (simultaneous open, RFC 8841 9.3); this sends the
   * INIT at once, through conn_output. */
  remote = make_address (self, self->remote_port);
  stack_kick ();
  if (usrsctp_connect (self->sock, (struct sockaddr *) &remote, sizeof remote) < 0
      && errno != EINPROGRESS)
    {
      int saved_errno = errno;

      g_set_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_FAILED,
                   "Could not start the SCTP handshake: %s", g_strerror (saved_errno));
      return FALSE;
    }

  return TRUE;
}

static void
clear_packet_out (NatterSctpAssociation *self)
{
  GDestroyNotify destroy = g_steal_pointer (&self->packet_out_destroy);
  gpointer data = g_steal_pointer (&self->packet_out_data);

  self->packet_out_func = NULL;
  if (destroy != NULL)
    destroy (data);
}

static void
natter_sctp_association_constructed (GObject *object)
{
  NatterSctpAssociation *self = NATTER_SCTP_ASSOCIATION (object);

  G_OBJECT_CLASS (natter_sctp_association_parent_class)->constructed (object);

  g_assert (self->context != NULL);

  self->holds_stack = stack_acquire (self->context, &self->addr);
  if (!self->holds_stack)
    {
      /* Unusable: connect() reports it. */
      self->state = NATTER_SCTP_STATE_CLOSED;
      return;
    }
  g_hash_table_insert (stack.live, self->addr, self);

  self->pump = g_source_new (&pump_funcs, sizeof (GSource));
  g_source_set_static_name (self->pump, "[natter] SCTP pump");
  g_source_set_callback (self->pump, pump_run, self, NULL);
  g_source_set_ready_time (self->pump, -1);
  g_source_attach (self->pump, self->context);
}

static void
natter_sctp_association_dispose (GObject *object)
{
  NatterSctpAssociation *self = NATTER_SCTP_ASSOCIATION (object);

  g_clear_pointer (&self->close_timeout, destroy_source);
  g_clear_pointer (&self->pump, destroy_source);

  /* Closing aborts an association still up; the ABORT goes out through
   * the packet-out function, still set, and the address is still live. */
  release_socket (self);

  if (self->holds_stack && stack.live != NULL)
    g_hash_table_remove (stack.live, self->addr);

  clear_packet_out (self);
  clear_send_queue (self);
  g_queue_clear_full (&self->early_packets, (GDestroyNotify) g_bytes_unref);
  g_hash_table_remove_all (self->partial_messages);

  G_OBJECT_CLASS (natter_sctp_association_parent_class)->dispose (object);
}

static void
natter_sctp_association_finalize (GObject *object)
{
  NatterSctpAssociation *self = NATTER_SCTP_ASSOCIATION (object);

  g_clear_pointer (&self->partial_messages, g_hash_table_unref);
  g_clear_pointer (&self->partial_notification, g_byte_array_unref);
  g_clear_pointer (&self->read_buf, g_free);
  g_clear_pointer (&self->context, g_main_context_unref);

  if (self->holds_stack)
    stack_release ();

  G_OBJECT_CLASS (natter_sctp_association_parent_class)->finalize (object);
}

static void
natter_sctp_association_get_property (GObject    *object,
                                      guint       prop_id,
                                      GValue     *value,
                                      GParamSpec *pspec)
{
  NatterSctpAssociation *self = NATTER_SCTP_ASSOCIATION (object);

  switch (prop_id)
    {
    case PROP_CONTEXT:
      g_value_set_boxed (value, self->context);
      break;

    case PROP_LOCAL_PORT:
      g_value_set_uint (value, self->local_port);
      break;

    case PROP_REMOTE_PORT:
      g_value_set_uint (value, self->remote_port);
      break;

    case PROP_MTU:
      g_value_set_uint (value, self->mtu);
      break;

    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;

    case PROP_BUFFERED_AMOUNT_LOW_THRESHOLD:
      g_value_set_uint64 (value, self->low_threshold);
      break;

    case PROP_RECEIVE_PAUSED:
      g_value_set_boolean (value, self->receive_paused);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_sctp_association_set_property (GObject      *object,
                                      guint         prop_id,
                                      const GValue *value,
                                      GParamSpec   *pspec)
{
  NatterSctpAssociation *self = NATTER_SCTP_ASSOCIATION (object);

  switch (prop_id)
    {
    case PROP_CONTEXT:
      self->context = g_value_dup_boxed (value);
      break;

    case PROP_LOCAL_PORT:
      self->local_port = g_value_get_uint (value);
      break;

    case PROP_REMOTE_PORT:
      self->remote_port = g_value_get_uint (value);
      break;

    case PROP_MTU:
      natter_sctp_association_set_mtu (self, g_value_get_uint (value));
      break;

    case PROP_BUFFERED_AMOUNT_LOW_THRESHOLD:
      natter_sctp_association_set_buffered_amount_low_threshold (self, g_value_get_uint64 (value));
      break;

    case PROP_RECEIVE_PAUSED:
      natter_sctp_association_set_receive_paused (self, g_value_get_boolean (value));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_sctp_association_class_init (NatterSctpAssociationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = natter_sctp_association_constructed;
  object_class->dispose = natter_sctp_association_dispose;
  object_class->finalize = natter_sctp_association_finalize;
  object_class->get_property = natter_sctp_association_get_property;
  object_class->set_property = natter_sctp_association_set_property;

  /**
   * NatterSctpAssociation:context:
   *
   * The transport thread's context: every source of the association is
   * attached there.
   */
  properties[PROP_CONTEXT] =
    g_param_spec_boxed ("context", NULL, NULL,
                        G_TYPE_MAIN_CONTEXT,
                        (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  properties[PROP_LOCAL_PORT] =
    g_param_spec_uint ("local-port", NULL, NULL,
                       0, G_MAXUINT16, NATTER_SCTP_DEFAULT_PORT,
                       (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  properties[PROP_REMOTE_PORT] =
    g_param_spec_uint ("remote-port", NULL, NULL,
                       0, G_MAXUINT16, NATTER_SCTP_DEFAULT_PORT,
                       (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  /**
   * NatterSctpAssociation:mtu:
   *
   * The largest SCTP packet handed out, header included; fixed at connect().
   */
  properties[PROP_MTU] =
    g_param_spec_uint ("mtu", NULL, NULL,
                       NATTER_SCTP_MIN_MTU, G_MAXUINT16, NATTER_SCTP_DEFAULT_MTU,
                       (G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_EXPLICIT_NOTIFY
                        | G_PARAM_STATIC_STRINGS));

  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL,
                       NATTER_TYPE_SCTP_STATE, NATTER_SCTP_STATE_NEW,
                       (G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS));

  properties[PROP_BUFFERED_AMOUNT_LOW_THRESHOLD] =
    g_param_spec_uint64 ("buffered-amount-low-threshold", NULL, NULL,
                         0, G_MAXSIZE, 0,
                         (G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS));

  properties[PROP_RECEIVE_PAUSED] =
    g_param_spec_boolean ("receive-paused", NULL, NULL,
                          FALSE,
                          (G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * NatterSctpAssociation::opened:
   *
   * The handshake completed; queued messages go out now.
   */
  signals[SIGNAL_OPENED] =
    g_signal_new ("opened",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);

  /**
   * NatterSctpAssociation::closed:
   *
   * The association ended (shut down, aborted by either side, or failed
   * to connect).  Emitted once; nothing more is sent or received.
   */
  signals[SIGNAL_CLOSED] =
    g_signal_new ("closed",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);

  /**
   * NatterSctpAssociation::message-received:
   * @stream: the stream it came on
   * @ppid: its payload protocol identifier
   * @message: the whole message
   */
  signals[SIGNAL_MESSAGE_RECEIVED] =
    g_signal_new ("message-received",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 3,
                  G_TYPE_UINT, G_TYPE_UINT, G_TYPE_BYTES | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * NatterSctpAssociation::buffered-amount-low:
   *
   * The buffered amount fell to or below
   * #NatterSctpAssociation:buffered-amount-low-threshold: a sender that
   * stopped can go on.
   */
  signals[SIGNAL_BUFFERED_AMOUNT_LOW] =
    g_signal_new ("buffered-amount-low",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);
}

static void
natter_sctp_association_init (NatterSctpAssociation *self)
{
  self->mtu = NATTER_SCTP_DEFAULT_MTU;
  self->local_port = NATTER_SCTP_DEFAULT_PORT;
  self->remote_port = NATTER_SCTP_DEFAULT_PORT;
  g_queue_init (&self->early_packets);
  g_queue_init (&self->send_queue);
  self->partial_messages = g_hash_table_new_full (NULL, NULL, NULL,
                                                  (GDestroyNotify) g_byte_array_unref);
  self->partial_notification = g_byte_array_new ();
}

/**
 * natter_sctp_association_new:
 * @context: the context of the thread that drives all SCTP work
 * @local_port: our SCTP port
 * @remote_port: the peer's SCTP port
 *
 * Returns: (transfer full): a new association, in state NEW
 */
NatterSctpAssociation *
natter_sctp_association_new (GMainContext *context,
                             guint16       local_port,
                             guint16       remote_port)
{
  g_return_val_if_fail (context != NULL, NULL);

  /* The caller must be the thread that runs @context: that thread already
   * owns it, or can take it because nobody else iterates it. */
  if (!g_main_context_is_owner (context))
    {
      if (!g_main_context_acquire (context))
        {
          g_critical ("natter_sctp_association_new() called off the thread "
                      "that runs its GMainContext");
          return NULL;
        }
      g_main_context_release (context);
    }

  return g_object_new (NATTER_TYPE_SCTP_ASSOCIATION,
                       "context", context,
                       "local-port", (guint) local_port,
                       "remote-port", (guint) remote_port,
                       NULL);
}

/**
 * natter_sctp_association_set_mtu:
 * @self: a #NatterSctpAssociation
 * @mtu: the largest SCTP packet to hand out
 *
 * Sets the path MTU; only before connect().
 */
void
natter_sctp_association_set_mtu (NatterSctpAssociation *self,
                                 guint                  mtu)
{
  g_return_if_fail (NATTER_IS_SCTP_ASSOCIATION (self));
  g_return_if_fail (mtu >= NATTER_SCTP_MIN_MTU && mtu <= G_MAXUINT16);
  g_return_if_fail (self->state == NATTER_SCTP_STATE_NEW);

  if (self->mtu == mtu)
    return;
  self->mtu = mtu;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MTU]);
}

guint
natter_sctp_association_get_mtu (NatterSctpAssociation *self)
{
  g_return_val_if_fail (NATTER_IS_SCTP_ASSOCIATION (self), 0);

  return self->mtu;
}

/**
 * natter_sctp_association_set_packet_out_func:
 * @self: a #NatterSctpAssociation
 * @func: (nullable): called with every packet to send
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data
 *
 * Sets where outgoing packets go.
 */
void
natter_sctp_association_set_packet_out_func (NatterSctpAssociation   *self,
                                             NatterSctpPacketOutFunc  func,
                                             gpointer                 user_data,
                                             GDestroyNotify           destroy)
{
  g_return_if_fail (NATTER_IS_SCTP_ASSOCIATION (self));
  g_return_if_fail (stack.callback_depth == 0);

  clear_packet_out (self);
  self->packet_out_func = func;
  self->packet_out_data = user_data;
  self->packet_out_destroy = destroy;
}

/**
 * natter_sctp_association_connect:
 * @self: a #NatterSctpAssociation
 * @error: return location for a #GError
 *
 * Starts the handshake; "opened" follows when it completes.
 *
 * Returns: %TRUE if the INIT went out
 */
gboolean
natter_sctp_association_connect (NatterSctpAssociation  *self,
                                 GError                **error)
{
  g_autoptr(NatterSctpAssociation) hold = NULL;
  GBytes *packet;

  g_return_val_if_fail (NATTER_IS_SCTP_ASSOCIATION (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_return_val_if_fail (on_stack_thread (), FALSE);
  g_return_val_if_fail (stack.callback_depth == 0, FALSE);

  if (self->state != NATTER_SCTP_STATE_NEW)
    {
      g_set_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_STATE,
                   "The SCTP association is %s, not new",
                   state_names[self->state]);
      return FALSE;
    }

  hold = g_object_ref (self);
  self->read_buf = g_malloc (NATTER_SCTP_MAX_MESSAGE_SIZE);

  if (!open_socket (self, error))
    {
      mark_closed (self);
      return FALSE;
    }

  set_state (self, NATTER_SCTP_STATE_CONNECTING);

  /* Our INIT has gone out; what the peer sent meanwhile can follow. */
  while (self->sock != NULL && (packet = g_queue_pop_head (&self->early_packets)) != NULL)
    {
      gsize len;
      const guint8 *data = g_bytes_get_data (packet, &len);

      usrsctp_conninput (self->addr, data, len, 0);
      g_bytes_unref (packet);
    }

  return TRUE;
}

/**
 * natter_sctp_association_receive_packet:
 * @self: a #NatterSctpAssociation
 * @data: (array length=len): one SCTP packet from the peer
 * @len: its length
 *
 * Feeds a packet in.  Resulting messages and state changes follow as
 * signals, from the context.
 */
void
natter_sctp_association_receive_packet (NatterSctpAssociation *self,
                                        const guint8          *data,
                                        gsize                  len)
{
  g_return_if_fail (NATTER_IS_SCTP_ASSOCIATION (self));
  g_return_if_fail (data != NULL || len == 0);
  g_return_if_fail (on_stack_thread ());
  g_return_if_fail (stack.callback_depth == 0);

  /* Shorter than a common header and one chunk header: not SCTP. */
  if (len < SCTP_COMMON_HEADER_LEN + 4)
    return;

  self->stats.packets_in++;
  stack_kick ();

  if (self->state == NATTER_SCTP_STATE_NEW)
    {
      /* The peer's INIT can beat our connect(); SCTP would answer it with
       * an ABORT, so keep a few packets for later. */
      if (g_queue_get_length (&self->early_packets) < EARLY_PACKETS_MAX)
        g_queue_push_tail (&self->early_packets, g_bytes_new (data, len));
      return;
    }

  if (self->sock == NULL)
    return;

  /* Nothing of @self is touched after this: the packet-out function may
   * have dropped the last reference to it meanwhile. */
  usrsctp_conninput (self->addr, data, len, 0);
}

/**
 * natter_sctp_association_send:
 * @self: a #NatterSctpAssociation
 * @stream: the stream to send on
 * @ppid: the payload protocol identifier
 * @message: the whole message, 1 to NATTER_SCTP_MAX_MESSAGE_SIZE bytes
 * @error: return location for a #GError
 *
 * Sends @message, or queues it behind what is already waiting.
 *
 * Returns: %TRUE if the message was taken, %FALSE if refused
 */
gboolean
natter_sctp_association_send (NatterSctpAssociation  *self,
                              guint16                 stream,
                              guint32                 ppid,
                              GBytes                 *message,
                              GError                **error)
{
  g_autoptr(NatterSctpAssociation) hold = NULL;
  PendingMessage *pending;
  gsize size;
  guint max_streams;

  g_return_val_if_fail (NATTER_IS_SCTP_ASSOCIATION (self), FALSE);
  g_return_val_if_fail (message != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_return_val_if_fail (on_stack_thread (), FALSE);
  g_return_val_if_fail (stack.callback_depth == 0, FALSE);

  size = g_bytes_get_size (message);
  if (size > NATTER_SCTP_MAX_MESSAGE_SIZE)
    {
      g_set_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_TOO_LARGE,
                   "A message of %zu bytes is over the limit of %d bytes",
                   size, NATTER_SCTP_MAX_MESSAGE_SIZE);
      return FALSE;
    }
  if (size == 0)
    {
      g_set_error_literal (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_EMPTY,
                           "SCTP cannot carry an empty message");
      return FALSE;
    }

  max_streams = self->n_streams > 0 ? self->n_streams : NATTER_SCTP_MAX_STREAMS;
  if (stream >= max_streams)
    {
      g_set_error (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_INVALID_STREAM,
                   "Stream %u is beyond the %u streams of the association",
                   stream, max_streams);
      return FALSE;
    }

  if (self->state == NATTER_SCTP_STATE_NEW)
    {
      g_set_error_literal (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_STATE,
                           "The SCTP association is not connecting yet");
      return FALSE;
    }
  if (self->state == NATTER_SCTP_STATE_CLOSING
      || self->state == NATTER_SCTP_STATE_CLOSED
      || self->shutdown_wanted)
    {
      g_set_error_literal (error, NATTER_SCTP_ERROR, NATTER_SCTP_ERROR_CLOSED,
                           "The SCTP association is closing");
      return FALSE;
    }

  /* The packet-out function may drop the last reference meanwhile. */
  hold = g_object_ref (self);

  /* Straight to usrsctp only if nothing of the same stream waits before
   * it: a priority stream (control, chat) does not wait behind bulk data,
   * and per-stream order holds either way. */
  if (self->state == NATTER_SCTP_STATE_OPEN &&
      (g_queue_is_empty (&self->send_queue) ||
       (stream < NATTER_SCTP_PRIORITY_STREAMS && !queue_has_stream (self, stream))))
    {
      switch (try_send (self, stream, ppid, message, error))
        {
        case SEND_OK:
          update_buffered (self, FALSE);
          return TRUE;

        case SEND_FAILED:
          return FALSE;

        case SEND_WOULD_BLOCK:
        default:
          break;
        }
    }

  pending = g_new (PendingMessage, 1);
  pending->message = g_bytes_ref (message);
  pending->ppid = ppid;
  pending->stream = stream;
  if (stream < NATTER_SCTP_PRIORITY_STREAMS)
    {
      /* After the priority messages already waiting, before any bulk. */
      GList *l = self->send_queue.head;

      while (l != NULL && ((PendingMessage *) l->data)->stream < NATTER_SCTP_PRIORITY_STREAMS)
        l = l->next;
      if (l != NULL)
        g_queue_insert_before (&self->send_queue, l, pending);
      else
        g_queue_push_tail (&self->send_queue, pending);
    }
  else
    g_queue_push_tail (&self->send_queue, pending);
  self->queued_bytes += size;
  self->stats.queued_peak_bytes = MAX (self->stats.queued_peak_bytes, self->queued_bytes);
  update_buffered (self, FALSE);

  return TRUE;
}

/**
 * natter_sctp_association_get_buffered_amount:
 * @self: a #NatterSctpAssociation
 *
 * Returns: the bytes sent but not yet acknowledged
 */
gsize
natter_sctp_association_get_buffered_amount (NatterSctpAssociation *self)
{
  g_return_val_if_fail (NATTER_IS_SCTP_ASSOCIATION (self), 0);
  g_return_val_if_fail (on_stack_thread () || self->sock == NULL, 0);

  return self->queued_bytes + read_usrsctp_buffered (self);
}

void
natter_sctp_association_set_buffered_amount_low_threshold (NatterSctpAssociation *self,
                                                           gsize                  threshold)
{
  g_return_if_fail (NATTER_IS_SCTP_ASSOCIATION (self));

  if (self->low_threshold == threshold)
    return;
  self->low_threshold = threshold;
  /* The signal marks a fall through the threshold, not being below it. */
  self->above_threshold = natter_sctp_association_get_buffered_amount (self) > threshold;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUFFERED_AMOUNT_LOW_THRESHOLD]);
}

gsize
natter_sctp_association_get_buffered_amount_low_threshold (NatterSctpAssociation *self)
{
  g_return_val_if_fail (NATTER_IS_SCTP_ASSOCIATION (self), 0);

  return self->low_threshold;
}

/**
 * natter_sctp_association_set_receive_paused:
 * @self: a #NatterSctpAssociation
 * @paused: whether to stop reading messages
 *
 * Stops or resumes delivering messages.
 */
void
natter_sctp_association_set_receive_paused (NatterSctpAssociation *self,
                                            gboolean               paused)
{
  g_return_if_fail (NATTER_IS_SCTP_ASSOCIATION (self));

  paused = !!paused;
  if (self->receive_paused == paused)
    return;
  self->receive_paused = paused;
  /* Whatever arrived meanwhile waits in usrsctp; read it now. */
  if (!paused)
    schedule_pump (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_RECEIVE_PAUSED]);
}

gboolean
natter_sctp_association_get_receive_paused (NatterSctpAssociation *self)
{
  g_return_val_if_fail (NATTER_IS_SCTP_ASSOCIATION (self), FALSE);

  return self->receive_paused;
}

/**
 * natter_sctp_association_close:
 * @self: a #NatterSctpAssociation
 *
 * Shuts the association down after what is queued has been delivered, or
 * aborts it if it is not open.
 */
void
natter_sctp_association_close (NatterSctpAssociation *self)
{
  g_return_if_fail (NATTER_IS_SCTP_ASSOCIATION (self));
  g_return_if_fail (on_stack_thread () || self->sock == NULL);
  g_return_if_fail (stack.callback_depth == 0);

  switch (self->state)
    {
    case NATTER_SCTP_STATE_NEW:
    case NATTER_SCTP_STATE_CONNECTING:
      mark_closed (self);
      break;

    case NATTER_SCTP_STATE_OPEN:
    case NATTER_SCTP_STATE_CLOSING:
      set_state (self, NATTER_SCTP_STATE_CLOSING);
      self->shutdown_wanted = TRUE;
      arm_close_timeout (self);
      schedule_pump (self);
      break;

    case NATTER_SCTP_STATE_CLOSED:
    default:
      break;
    }
}

NatterSctpState
natter_sctp_association_get_state (NatterSctpAssociation *self)
{
  g_return_val_if_fail (NATTER_IS_SCTP_ASSOCIATION (self), NATTER_SCTP_STATE_CLOSED);

  return self->state;
}

guint
natter_sctp_association_get_n_streams (NatterSctpAssociation *self)
{
  g_return_val_if_fail (NATTER_IS_SCTP_ASSOCIATION (self), 0);

  return self->n_streams;
}

void
natter_sctp_association_get_stats (NatterSctpAssociation *self,
                                   NatterSctpStats       *stats)
{
  g_return_if_fail (NATTER_IS_SCTP_ASSOCIATION (self));
  g_return_if_fail (stats != NULL);

  *stats = self->stats;
  stats->rto_ms = 0;
  stats->cwnd_bytes = 0;
  if (self->sock != NULL && stack.callback_depth == 0 && on_stack_thread () &&
      (self->state == NATTER_SCTP_STATE_OPEN || self->state == NATTER_SCTP_STATE_CLOSING))
    {
      struct sctp_status status = { 0 };
      socklen_t len = sizeof status;

      if (usrsctp_getsockopt (self->sock, IPPROTO_SCTP, SCTP_STATUS, &status, &len) == 0)
        {
          stats->rto_ms = status.sstat_primary.spinfo_rto;
          stats->cwnd_bytes = status.sstat_primary.spinfo_cwnd;
        }
    }
}
