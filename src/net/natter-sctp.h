/* natter-sctp.h: an SCTP association (usrsctp, AF_CONN) over a datagram path
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

/* An association carries whole messages of at most this many bytes.  Each
 * send is one SCTP user message (SCTP_EXPLICIT_EOR is never set), so a
 * message is never split across sends nor merged with another. */
#define NATTER_SCTP_MAX_MESSAGE_SIZE 65536

/* The largest SCTP packet an association hands to its packet-out function,
 * common header included.  The default keeps the encrypted datagram within
 * 1200 bytes of UDP payload, which crosses any path that carries IPv6
 * (1280 - 40 - 8, with room left for a TURN ChannelData header):
 * 1200 minus the 25 bytes of secure-channel framing
 * (NATTER_NOISE_CHANNEL_OVERHEAD: type, 64-bit counter, 16-byte tag). */
#define NATTER_SCTP_DEFAULT_MTU      (1200 - 25)
#define NATTER_SCTP_MIN_MTU          576

/* Streams asked for in both directions at INIT; the peer may grant fewer. */
#define NATTER_SCTP_MAX_STREAMS      1024
/* Streams below this one (control, chat) go before bulk streams. */
#define NATTER_SCTP_PRIORITY_STREAMS 2
#define NATTER_SCTP_DEFAULT_PORT     5000

/* Stream numbers: control and chat are fixed; every file transfer (or other
 * bulk channel) uses a stream of its own from NATTER_SCTP_STREAM_FIRST_BULK
 * on.  Every stream is reliable and ordered within itself; streams are
 * independent of each other. */
#define NATTER_SCTP_STREAM_CONTROL    0
#define NATTER_SCTP_STREAM_CHAT       1
#define NATTER_SCTP_STREAM_FIRST_BULK 2

#define NATTER_SCTP_ERROR (natter_sctp_error_quark ())
GQuark natter_sctp_error_quark (void);

typedef enum
{
  NATTER_SCTP_ERROR_TOO_LARGE,       /* message over NATTER_SCTP_MAX_MESSAGE_SIZE */
  NATTER_SCTP_ERROR_EMPTY,           /* SCTP cannot carry an empty user message */
  NATTER_SCTP_ERROR_INVALID_STREAM,  /* stream not granted by the peer */
  NATTER_SCTP_ERROR_STATE,           /* call not valid in this state */
  NATTER_SCTP_ERROR_CLOSED,          /* closing or closed: nothing more is sent */
  NATTER_SCTP_ERROR_FAILED,          /* usrsctp refused; the message says why */
} NatterSctpError;

typedef enum
{
  NATTER_SCTP_STATE_NEW,         /* connect() not called yet */
  NATTER_SCTP_STATE_CONNECTING,  /* handshake under way */
  NATTER_SCTP_STATE_OPEN,
  NATTER_SCTP_STATE_CLOSING,     /* a graceful shutdown, from either side */
  NATTER_SCTP_STATE_CLOSED,      /* final */
} NatterSctpState;

#define NATTER_TYPE_SCTP_STATE (natter_sctp_state_get_type ())
GType natter_sctp_state_get_type (void);

typedef struct
{
  guint64 messages_sent;         /* accepted by usrsctp */
  guint64 bytes_sent;
  guint64 messages_received;
  guint64 bytes_received;
  guint64 packets_out;           /* handed to the packet-out function */
  guint64 packets_in;            /* fed to receive_packet() */
  gsize   queued_peak_bytes;     /* largest our own send queue has been */
  guint   rto_ms;                /* retransmission timeout now (0 if unknown) */
  guint   cwnd_bytes;            /* congestion window now (0 if unknown) */
} NatterSctpStats;

#define NATTER_TYPE_SCTP_ASSOCIATION (natter_sctp_association_get_type ())
G_DECLARE_FINAL_TYPE (NatterSctpAssociation, natter_sctp_association,
                      NATTER, SCTP_ASSOCIATION, GObject)

/* Called with each SCTP packet to put on the wire (encrypt it, send it).
 * It runs from inside usrsctp, so it must not call back into this or any
 * other association, nor into usrsctp: hand the packet on, and schedule
 * anything else.  @packet (@len bytes, CRC32c filled in) is usrsctp's
 * own buffer, valid only during the call: copy what must be kept.  No
 * allocation happens per packet on this path. */
typedef void (*NatterSctpPacketOutFunc) (NatterSctpAssociation *self,
                                         const guint8          *packet,
                                         gsize                  len,
                                         gpointer               user_data);

/* An association is pure transport logic: it opens no socket and reads no
 * clock of its own.  Packets go out through the packet-out function and
 * come in through natter_sctp_association_receive_packet().
 *
 * Threads: usrsctp keeps process-wide state and runs without threads of its
 * own (usrsctp_init_nothreads), so every association of a process must be
 * created, driven and finalized on ONE thread, the one that iterates
 * @context, and all associations alive at the same time must share that
 * context.  usrsctp's 10 ms timer runs as a source on it while any
 * association exists (and a little after, until usrsctp_finish() succeeds).
 * Once natter_sctp_stack_is_running() is FALSE, another thread may start
 * over.
 *
 * Signals are emitted on @context, never from inside usrsctp, so handlers
 * may call any function here (send more, close, drop the last reference). */
NatterSctpAssociation *natter_sctp_association_new (GMainContext *context,
                                                    guint16       local_port,
                                                    guint16       remote_port);

/* Before connect(): the path MTU (see NATTER_SCTP_DEFAULT_MTU). */
void     natter_sctp_association_set_mtu            (NatterSctpAssociation   *self,
                                                     guint                    mtu);
guint    natter_sctp_association_get_mtu            (NatterSctpAssociation   *self);

/* Sets where packets go.  May be changed or cleared (NULL) at any time, but
 * not from inside the function itself; @destroy frees @user_data when it is
 * replaced or the association is disposed. */
void     natter_sctp_association_set_packet_out_func (NatterSctpAssociation   *self,
                                                      NatterSctpPacketOutFunc  func,
                                                      gpointer                 user_data,
                                                      GDestroyNotify           destroy);

/* Starts the handshake.  Both ends call it (SCTP simultaneous open, as in
 * RFC 8841), so there is no client or server role.  Packets received
 * before it are kept (a few) and fed to usrsctp once it has sent its INIT. */
gboolean natter_sctp_association_connect            (NatterSctpAssociation   *self,
                                                     GError                 **error);

/* Feeds one packet from the peer (decrypted, so already authenticated:
 * its CRC32c is not checked again). */
void     natter_sctp_association_receive_packet     (NatterSctpAssociation   *self,
                                                     const guint8            *data,
                                                     gsize                    len);

/* Queues @message (1..NATTER_SCTP_MAX_MESSAGE_SIZE bytes) on @stream with
 * payload protocol identifier @ppid.  Allowed from connect() on; messages
 * sent before "opened" go out once it is.  Messages usrsctp cannot take yet
 * wait in the association's own queue, in order, and count in the buffered
 * amount: the caller bounds memory by not sending while
 * get_buffered_amount() is high and resuming on "buffered-amount-low".
 * Fails, sending nothing, for an oversized or empty message, a stream the
 * peer did not grant, or once closing. */
gboolean natter_sctp_association_send               (NatterSctpAssociation   *self,
                                                     guint16                  stream,
                                                     guint32                  ppid,
                                                     GBytes                  *message,
                                                     GError                 **error);

/* Bytes sent but not yet acknowledged by the peer: our queue plus what
 * usrsctp holds (its per-chunk headers included, so a little more than the
 * payload). */
gsize    natter_sctp_association_get_buffered_amount (NatterSctpAssociation  *self);
/* "buffered-amount-low" is emitted when the buffered amount falls to or
 * below @threshold after having been above it. */
void     natter_sctp_association_set_buffered_amount_low_threshold (NatterSctpAssociation *self,
                                                                    gsize                  threshold);
gsize    natter_sctp_association_get_buffered_amount_low_threshold (NatterSctpAssociation *self);

/* While paused, messages stay in usrsctp: its receive window fills and the
 * peer's buffered amount grows.  This is how a slow reader pushes back.
 * A graceful close by the peer is seen after the messages before it are
 * read; an abort or a lost peer is seen at once. */
void     natter_sctp_association_set_receive_paused (NatterSctpAssociation   *self,
                                                     gboolean                 paused);
gboolean natter_sctp_association_get_receive_paused (NatterSctpAssociation   *self);

/* Closes gracefully once everything queued has been sent and acknowledged
 * (SCTP SHUTDOWN), or aborts at once if not open yet or after
 * NATTER_SCTP_CLOSE_TIMEOUT_MS.  "closed" may be emitted before this
 * returns.  Dropping the last reference aborts (ABORT chunk) instead. */
#define NATTER_SCTP_CLOSE_TIMEOUT_MS 5000
void     natter_sctp_association_close              (NatterSctpAssociation   *self);

NatterSctpState natter_sctp_association_get_state   (NatterSctpAssociation   *self);
/* Outgoing streams the peer granted (0 before "opened"). */
guint    natter_sctp_association_get_n_streams      (NatterSctpAssociation   *self);
void     natter_sctp_association_get_stats          (NatterSctpAssociation   *self,
                                                     NatterSctpStats         *stats);

/* TRUE while usrsctp is initialised: from the first association until
 * usrsctp_finish() succeeds after the last one is gone (closing
 * associations linger in usrsctp for a few timer ticks). */
gboolean natter_sctp_stack_is_running (void);
/* How often usrsctp's timers run now (ms); 0 when it is not running. */
guint    natter_sctp_stack_get_tick_ms (void);
gint64   natter_sctp_stack_get_next_tick_us (void);

G_END_DECLS
