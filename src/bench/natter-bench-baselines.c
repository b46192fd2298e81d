/* natter-bench-baselines.c: what the machine's loopback can do without Natter
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <glib-unix.h>

#include "natter-bench.h"
#include "natter-bench-baselines.h"
#include "net/natter-sctp.h"

#define TCP_WRITE_SIZE       (64 * 1024)
/* No socket call may hang a benchmark: each gives up after this. */
#define SOCKET_TIMEOUT_S     5
#define UDP_RTT_WARMUP       100
#define UDP_RTT_DEADLINE_S   30
#define SCTP_DEADLINE_S      120
#define SCTP_OPEN_DEADLINE_S 5
/* The SCTP sender stops above this much buffered and resumes below the
 * low-water mark: enough to keep usrsctp's 1 MiB window full. */
#define SCTP_HIGH_WATER      (4 * 1024 * 1024)
#define SCTP_LOW_WATER       (1024 * 1024)
#define SCTP_BENCH_PPID      53
#define UDP_SOCKET_BUFFER    (4 * 1024 * 1024)
#define UDP_READ_BATCH       512

/* Nanoseconds: loopback round trips are a few microseconds, below what
 * g_get_monotonic_time() resolves. */
static gint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

static void
set_timeouts (int fd)
{
  struct timeval tv = { .tv_sec = SOCKET_TIMEOUT_S };

  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A socket of @type bound to 127.0.0.1 on a free port, or -1. */
static int
loopback_socket (int                 type,
                 struct sockaddr_in *addr_out)
{
  struct sockaddr_in addr = { 0 };
  socklen_t len = sizeof addr;
  int fd = socket (AF_INET, type | SOCK_CLOEXEC, 0);

  if (fd < 0)
    {
      g_warning ("socket: %s", g_strerror (errno));
      return -1;
    }

  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind (fd, (struct sockaddr *) &addr, sizeof addr) < 0
      || getsockname (fd, (struct sockaddr *) &addr, &len) < 0)
    {
      g_warning ("bind to 127.0.0.1: %s", g_strerror (errno));
      close (fd);
      return -1;
    }

  *addr_out = addr;
  return fd;
}

/* UDP round trips */

typedef struct
{
  int fd;
  gint stop;
} UdpEcho;

static gpointer
udp_echo_thread (gpointer data)
{
  UdpEcho *echo = data;
  g_autofree guint8 *buf = g_malloc (65536);

  while (!g_atomic_int_get (&echo->stop))
    {
      struct sockaddr_in from;
      socklen_t from_len = sizeof from;
      ssize_t n = recvfrom (echo->fd, buf, 65536, 0, (struct sockaddr *) &from, &from_len);

      /* A timeout only makes the loop look at @stop again. */
      if (n < 0)
        continue;
      sendto (echo->fd, buf, n, 0, (struct sockaddr *) &from, from_len);
    }

  return NULL;
}

/**
 * natter_bench_baseline_udp_rtt_us:
 * @n_messages: round trips to time
 * @size: bytes per datagram (at least 4)
 * @p99_out: (out) (optional): the 99th percentile
 *
 * Returns: the median round trip in microseconds, or -1
 */
double
natter_bench_baseline_udp_rtt_us (guint   n_messages,
                                  gsize   size,
                                  double *p99_out)
{
  struct sockaddr_in echo_addr, client_addr;
  struct timeval short_timeout = { .tv_usec = 100 * 1000 };
  UdpEcho echo = { -1, 0 };
  GThread *thread;
  g_autofree guint8 *buf = NULL;
  g_autofree guint8 *reply = NULL;
  g_autofree double *rtts = NULL;
  gsize n_rtts = 0;
  guint lost = 0;
  gint64 deadline;
  double p50;
  int fd;

  g_return_val_if_fail (n_messages > 0, -1);
  size = CLAMP (size, sizeof (guint32), 65000);

  echo.fd = loopback_socket (SOCK_DGRAM, &echo_addr);
  if (echo.fd < 0)
    return -1;
  fd = loopback_socket (SOCK_DGRAM, &client_addr);
  if (fd < 0 || connect (fd, (struct sockaddr *) &echo_addr, sizeof echo_addr) < 0)
    {
      g_warning ("UDP baseline: no client socket");
      if (fd >= 0)
        close (fd);
      close (echo.fd);
      return -1;
    }
  /* The echo thread wakes up often enough to notice the end. */
  setsockopt (echo.fd, SOL_SOCKET, SO_RCVTIMEO, &short_timeout, sizeof short_timeout);
  set_timeouts (fd);

  thread = g_thread_new ("udp-echo", udp_echo_thread, &echo);

  buf = g_malloc0 (size);
  reply = g_malloc (65536);
  rtts = g_new (double, n_messages);
  deadline = g_get_monotonic_time () + UDP_RTT_DEADLINE_S * G_USEC_PER_SEC;

  for (guint32 i = 0; i < UDP_RTT_WARMUP + n_messages; i++)
    {
      gint64 start;
      ssize_t n;

      if (g_get_monotonic_time () > deadline)
        break;

      /* The sequence number tells a late reply from the awaited one. */
      memcpy (buf, &i, sizeof i);
      start = now_ns ();
      if (send (fd, buf, size, 0) < 0)
        continue;

      for (;;)
        {
          guint32 seq;

          n = recv (fd, reply, 65536, 0);
          if (n < (ssize_t) sizeof seq)
            break;
          memcpy (&seq, reply, sizeof seq);
          if (seq == i)
            break;
        }

      if (n < (ssize_t) sizeof (guint32))
        {
          lost++;
          continue;
        }
      if (i >= UDP_RTT_WARMUP)
        rtts[n_rtts++] = (now_ns () - start) / 1000.0;
    }

  g_atomic_int_set (&echo.stop, 1);
  g_thread_join (thread);
  close (fd);
  close (echo.fd);

  if (lost > 0)
    g_debug ("UDP baseline: %u datagrams lost", lost);
  if (n_rtts == 0)
    {
      g_warning ("UDP baseline: no round trip completed");
      return -1;
    }

  p50 = natter_bench_percentile (rtts, n_rtts, 50);
  if (p99_out != NULL)
    *p99_out = natter_bench_percentile (rtts, n_rtts, 99);
  return p50;
}

/* TCP throughput */

typedef struct
{
  int listen_fd;
  gsize total;
  gsize received;
  gint64 end_us;
} TcpReader;

static gpointer
tcp_reader_thread (gpointer data)
{
  TcpReader *reader = data;
  g_autofree guint8 *buf = g_malloc (256 * 1024);
  int fd = accept (reader->listen_fd, NULL, NULL);

  if (fd < 0)
    return NULL;
  set_timeouts (fd);

  while (reader->received < reader->total)
    {
      ssize_t n = read (fd, buf, 256 * 1024);

      if (n <= 0)
        break;
      reader->received += n;
    }
  reader->end_us = g_get_monotonic_time ();
  close (fd);

  return NULL;
}

/**
 * natter_bench_baseline_tcp_mbps:
 * @total_bytes: how much to send
 *
 * Returns: loopback TCP throughput in MB/s, or -1
 */
double
natter_bench_baseline_tcp_mbps (gsize total_bytes)
{
  struct sockaddr_in addr;
  TcpReader reader = { -1, total_bytes, 0, 0 };
  g_autofree guint8 *chunk = g_malloc0 (TCP_WRITE_SIZE);
  GThread *thread;
  gsize written = 0;
  gint64 start;
  int fd;

  g_return_val_if_fail (total_bytes > 0, -1);

  reader.listen_fd = loopback_socket (SOCK_STREAM, &addr);
  if (reader.listen_fd < 0)
    return -1;
  if (listen (reader.listen_fd, 1) < 0)
    {
      g_warning ("TCP baseline: listen: %s", g_strerror (errno));
      close (reader.listen_fd);
      return -1;
    }
  set_timeouts (reader.listen_fd);

  thread = g_thread_new ("tcp-reader", tcp_reader_thread, &reader);

  fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *) &addr, sizeof addr) < 0)
    {
      g_warning ("TCP baseline: connect: %s", g_strerror (errno));
      if (fd >= 0)
        close (fd);
      g_thread_join (thread);
      close (reader.listen_fd);
      return -1;
    }
  set_timeouts (fd);

  start = g_get_monotonic_time ();
  while (written < total_bytes)
    {
      gsize want = MIN (TCP_WRITE_SIZE, total_bytes - written);
      ssize_t n = write (fd, chunk, want);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      written += n;
    }
  shutdown (fd, SHUT_WR);

  g_thread_join (thread);
  close (fd);
  close (reader.listen_fd);

  if (reader.received < total_bytes || reader.end_us <= start)
    {
      g_warning ("TCP baseline: %zu of %zu bytes arrived", reader.received, total_bytes);
      return -1;
    }

  return total_bytes / ((reader.end_us - start) / 1e6) / 1e6;
}

/* SCTP over UDP or memory */

typedef struct _SctpBench SctpBench;

typedef struct
{
  SctpBench *bench;
  guint side;
} SctpSide;

struct _SctpBench
{
  gboolean over_udp;
  GMainContext *context;
  NatterSctpAssociation *assoc[2];
  SctpSide sides[2];

  int fd[2];                     /* over UDP: side i's socket */
  GSource *watch[2];
  guint8 *datagram;

  GQueue in_memory[2];           /* in memory: packets on their way to side i */
  GSource *memory_source;

  GBytes *payload;
  gsize total;
  gsize sent;
  gsize received;
  gboolean blocked;
  guint64 send_failures;
};

static void
sctp_bench_udp_out (NatterSctpAssociation *assoc,
                    const guint8          *data,
                    gsize                  len,
                    gpointer               user_data)
{
  SctpSide *side = user_data;

  /* A full socket buffer loses the packet, as a congested path would;
   * SCTP retransmits it. */
  if (send (side->bench->fd[side->side], data, len, MSG_DONTWAIT) < 0)
    side->bench->send_failures++;
}

static gboolean
sctp_bench_udp_in (gint         fd,
                   GIOCondition condition,
                   gpointer     user_data)
{
  SctpSide *side = user_data;
  SctpBench *bench = side->bench;

  for (guint i = 0; i < UDP_READ_BATCH; i++)
    {
      ssize_t n = recv (fd, bench->datagram, 65536, MSG_DONTWAIT);

      if (n <= 0)
        break;
      natter_sctp_association_receive_packet (bench->assoc[side->side], bench->datagram, n);
    }

  return G_SOURCE_CONTINUE;
}

static void
sctp_bench_memory_out (NatterSctpAssociation *assoc,
                       const guint8          *data,
                       gsize                  len,
                       gpointer               user_data)
{
  SctpSide *side = user_data;
  SctpBench *bench = side->bench;

  /* Delivered later from the context, never from inside usrsctp. */
  g_queue_push_tail (&bench->in_memory[1 - side->side], g_bytes_new (data, len));
  g_source_set_ready_time (bench->memory_source, 0);
}

static gboolean
sctp_bench_memory_deliver (gpointer data)
{
  SctpBench *bench = data;

  g_source_set_ready_time (bench->memory_source, -1);
  for (guint to = 0; to < 2; to++)
    {
      guint n = g_queue_get_length (&bench->in_memory[to]);

      for (guint i = 0; i < n; i++)
        {
          g_autoptr(GBytes) packet = g_queue_pop_head (&bench->in_memory[to]);
          gsize len;
          const guint8 *bytes = g_bytes_get_data (packet, &len);

          natter_sctp_association_receive_packet (bench->assoc[to], bytes, len);
        }
    }

  return G_SOURCE_CONTINUE;
}

static gboolean
ready_dispatch (GSource     *source,
                GSourceFunc  callback,
                gpointer     user_data)
{
  return callback (user_data);
}

static GSourceFuncs ready_funcs = {
  .dispatch = ready_dispatch,
};

static void
sctp_bench_pump (SctpBench *bench)
{
  NatterSctpAssociation *sender = bench->assoc[0];

  while (bench->sent < bench->total)
    {
      g_autoptr(GError) error = NULL;

      if (natter_sctp_association_get_buffered_amount (sender) > SCTP_HIGH_WATER)
        {
          bench->blocked = TRUE;
          return;
        }
      if (!natter_sctp_association_send (sender, NATTER_SCTP_STREAM_FIRST_BULK,
                                         SCTP_BENCH_PPID, bench->payload, &error))
        {
          g_warning ("SCTP baseline: %s", error->message);
          bench->sent = bench->total;
          return;
        }
      bench->sent += g_bytes_get_size (bench->payload);
    }
}

static void
sctp_bench_low (NatterSctpAssociation *assoc,
                gpointer               user_data)
{
  SctpBench *bench = user_data;

  if (bench->blocked)
    {
      bench->blocked = FALSE;
      sctp_bench_pump (bench);
    }
}

static void
sctp_bench_message (NatterSctpAssociation *assoc,
                    guint                  stream,
                    guint                  ppid,
                    GBytes                *message,
                    gpointer               user_data)
{
  SctpBench *bench = user_data;

  bench->received += g_bytes_get_size (message);
}

static gboolean
sctp_bench_open_udp (SctpBench *bench)
{
  struct sockaddr_in addr[2];

  for (guint i = 0; i < 2; i++)
    {
      int size = UDP_SOCKET_BUFFER;

      bench->fd[i] = loopback_socket (SOCK_DGRAM, &addr[i]);
      if (bench->fd[i] < 0)
        return FALSE;
      /* Bursts of a full window must not overflow the kernel's default
       * buffers; the FORCE variants pass rmem_max when permitted. */
      if (setsockopt (bench->fd[i], SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
        setsockopt (bench->fd[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
      if (setsockopt (bench->fd[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
        setsockopt (bench->fd[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    }

  for (guint i = 0; i < 2; i++)
    {
      if (connect (bench->fd[i], (struct sockaddr *) &addr[1 - i], sizeof addr[0]) < 0)
        {
          g_warning ("SCTP baseline: connect: %s", g_strerror (errno));
          return FALSE;
        }
      bench->watch[i] = g_unix_fd_source_new (bench->fd[i], G_IO_IN);
      g_source_set_callback (bench->watch[i], G_SOURCE_FUNC (sctp_bench_udp_in),
                             &bench->sides[i], NULL);
      g_source_attach (bench->watch[i], bench->context);
    }

  return TRUE;
}

static gboolean
sctp_bench_both_open (SctpBench *bench)
{
  return natter_sctp_association_get_state (bench->assoc[0]) == NATTER_SCTP_STATE_OPEN
         && natter_sctp_association_get_state (bench->assoc[1]) == NATTER_SCTP_STATE_OPEN;
}

static void
sctp_bench_close (SctpBench *bench)
{
  gint64 deadline;

  for (guint i = 0; i < 2; i++)
    {
      if (bench->assoc[i] != NULL)
        natter_sctp_association_set_packet_out_func (bench->assoc[i], NULL, NULL, NULL);
      g_clear_object (&bench->assoc[i]);
      if (bench->watch[i] != NULL)
        {
          g_source_destroy (bench->watch[i]);
          g_clear_pointer (&bench->watch[i], g_source_unref);
        }
      if (bench->fd[i] >= 0)
        close (bench->fd[i]);
      g_queue_clear_full (&bench->in_memory[i], (GDestroyNotify) g_bytes_unref);
    }
  if (bench->memory_source != NULL)
    {
      g_source_destroy (bench->memory_source);
      g_clear_pointer (&bench->memory_source, g_source_unref);
    }

  /* usrsctp finishes on its timer, which runs on our context: give it the
   * few ticks it needs, so that another thread may use usrsctp next. */
  deadline = g_get_monotonic_time () + SOCKET_TIMEOUT_S * G_USEC_PER_SEC;
  while (natter_sctp_stack_is_running () && g_get_monotonic_time () < deadline)
    g_main_context_iteration (bench->context, TRUE);

  g_clear_pointer (&bench->payload, g_bytes_unref);
  g_clear_pointer (&bench->datagram, g_free);
  g_clear_pointer (&bench->context, g_main_context_unref);
}

static double
sctp_bench_run (gboolean over_udp,
                gsize    total_bytes)
{
  SctpBench bench = { 0 };
  g_autofree guint8 *payload = NULL;
  gint64 deadline, start, end;
  double mbps = -1;

  if (total_bytes == 0)
    total_bytes = NATTER_BENCH_BASELINE_SCTP_DEFAULT_BYTES;

  if (natter_sctp_stack_is_running ())
    {
      g_warning ("SCTP baseline: usrsctp is in use in this process already");
      return -1;
    }

  bench.over_udp = over_udp;
  bench.fd[0] = bench.fd[1] = -1;
  bench.context = g_main_context_new ();
  bench.total = total_bytes;
  payload = g_malloc (NATTER_SCTP_MAX_MESSAGE_SIZE);
  for (gsize i = 0; i < NATTER_SCTP_MAX_MESSAGE_SIZE; i++)
    payload[i] = (guint8) (i * 31 + 7);
  bench.payload = g_bytes_new (payload, NATTER_SCTP_MAX_MESSAGE_SIZE);
  bench.datagram = g_malloc (65536);
  g_queue_init (&bench.in_memory[0]);
  g_queue_init (&bench.in_memory[1]);

  for (guint i = 0; i < 2; i++)
    {
      bench.sides[i].bench = &bench;
      bench.sides[i].side = i;
      bench.assoc[i] = natter_sctp_association_new (bench.context, 5000, 5000);
      if (bench.assoc[i] == NULL)
        goto out;
      natter_sctp_association_set_packet_out_func (bench.assoc[i],
                                                   over_udp ? sctp_bench_udp_out
                                                            : sctp_bench_memory_out,
                                                   &bench.sides[i], NULL);
    }

  if (over_udp)
    {
      if (!sctp_bench_open_udp (&bench))
        goto out;
    }
  else
    {
      bench.memory_source = g_source_new (&ready_funcs, sizeof (GSource));
      g_source_set_callback (bench.memory_source, sctp_bench_memory_deliver, &bench, NULL);
      g_source_set_ready_time (bench.memory_source, -1);
      g_source_attach (bench.memory_source, bench.context);
    }

  natter_sctp_association_set_buffered_amount_low_threshold (bench.assoc[0], SCTP_LOW_WATER);
  g_signal_connect (bench.assoc[0], "buffered-amount-low", G_CALLBACK (sctp_bench_low), &bench);
  g_signal_connect (bench.assoc[1], "message-received", G_CALLBACK (sctp_bench_message), &bench);

  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(GError) error = NULL;

      if (!natter_sctp_association_connect (bench.assoc[i], &error))
        {
          g_warning ("SCTP baseline: %s", error->message);
          goto out;
        }
    }

  deadline = g_get_monotonic_time () + SCTP_OPEN_DEADLINE_S * G_USEC_PER_SEC;
  while (!sctp_bench_both_open (&bench) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (bench.context, TRUE);
  if (!sctp_bench_both_open (&bench))
    {
      g_warning ("SCTP baseline: the handshake did not complete");
      goto out;
    }

  start = g_get_monotonic_time ();
  deadline = start + SCTP_DEADLINE_S * G_USEC_PER_SEC;
  sctp_bench_pump (&bench);
  while (bench.received < bench.total && g_get_monotonic_time () < deadline)
    g_main_context_iteration (bench.context, TRUE);
  end = g_get_monotonic_time ();

  if (bench.received < bench.total)
    g_warning ("SCTP baseline: only %zu of %zu bytes within %d s",
               bench.received, bench.total, SCTP_DEADLINE_S);
  if (bench.send_failures > 0)
    g_debug ("SCTP baseline: %" G_GUINT64_FORMAT " packets lost to full socket buffers",
             bench.send_failures);

  mbps = bench.received / ((end - start) / 1e6) / 1e6;

out:
  sctp_bench_close (&bench);
  return mbps;
}

/**
 * natter_bench_baseline_sctp_udp_mbps:
 * @total_bytes: how much to send, or 0 for the default
 *
 * Returns: SCTP throughput over loopback UDP in MB/s, or -1
 */
double
natter_bench_baseline_sctp_udp_mbps (gsize total_bytes)
{
  return sctp_bench_run (TRUE, total_bytes);
}

/**
 * natter_bench_baseline_sctp_memory_mbps:
 * @total_bytes: how much to send, or 0 for the default
 *
 * Returns: SCTP throughput with packets passed in memory, in MB/s, or -1
 */
double
natter_bench_baseline_sctp_memory_mbps (gsize total_bytes)
{
  return sctp_bench_run (FALSE, total_bytes);
}
