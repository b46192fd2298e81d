/* natter-ice.h: one ICE session (libnice) towards one remote peer
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>
#include <nice/agent.h>

G_BEGIN_DECLS

/* A NatterIceSession is the bottom of a peer's transport stack: one
 * NiceAgent with one stream of one component, speaking RFC 5245 with
 * trickle.  It carries unreliable datagrams for the secure channel above.
 *
 * Threading: a session lives on the transport thread.  It is created,
 * used, closed and released on the thread that runs the GMainContext it
 * was given, and every callback and signal it emits runs there.
 *
 * Signaling is plain strings, ready to go into JSON:
 *   - natter_ice_session_get_local_credentials() (ufrag, pwd);
 *   - "local-candidate" (one "a=candidate:..." SDP attribute each) and
 *     "gathering-done" (end of candidates);
 *   - for the other side: natter_ice_session_set_remote_credentials(),
 *     natter_ice_session_add_remote_candidate() (untrusted input, checked)
 *     and natter_ice_session_remote_gathering_done().
 *
 * Connect to the signals before natter_ice_session_start(): libnice finds
 * host candidates inside that call and reports them at once. */

#define NATTER_ICE_ERROR (natter_ice_error_quark ())

typedef enum
{
  NATTER_ICE_ERROR_INVALID_CANDIDATE,    /* malformed, oversized or unusable candidate */
  NATTER_ICE_ERROR_INVALID_CREDENTIALS,  /* malformed ufrag/pwd, or a change of them */
  NATTER_ICE_ERROR_TOO_MANY_CANDIDATES,  /* over NATTER_ICE_MAX_REMOTE_CANDIDATES */
  NATTER_ICE_ERROR_STATE,                /* not valid now (closed, failed, started twice) */
  NATTER_ICE_ERROR_NO_INTERFACE,         /* no usable address on the allowed interfaces */
  NATTER_ICE_ERROR_INVALID_CONFIG,       /* bad server entry */
  NATTER_ICE_ERROR_FAILED,               /* libnice refused the call */
} NatterIceError;

GQuark natter_ice_error_quark (void);

/* Limits on what a remote peer may send us. */
#define NATTER_ICE_MAX_CANDIDATE_LEN        512
#define NATTER_ICE_MAX_REMOTE_CANDIDATES    64
/* libnice holds at most this many TURN servers per component. */
#define NATTER_ICE_MAX_TURN_SERVERS         8
/* The largest datagram natter_ice_session_send() accepts. */
#define NATTER_ICE_MAX_DATAGRAM_LEN         65507

typedef enum
{
  NATTER_ICE_STATE_NEW,         /* created; natter_ice_session_start() not called */
  NATTER_ICE_STATE_GATHERING,   /* finding local candidates */
  NATTER_ICE_STATE_CONNECTING,  /* connectivity checks running */
  NATTER_ICE_STATE_CONNECTED,   /* a working pair carries datagrams */
  NATTER_ICE_STATE_FAILED,      /* every pair failed, or consent was lost: final */
  NATTER_ICE_STATE_CLOSED,      /* closed or released: final */
} NatterIceState;

#define NATTER_TYPE_ICE_STATE (natter_ice_state_get_type ())
GType natter_ice_state_get_type (void);
const char *natter_ice_state_to_string (NatterIceState state);

typedef enum
{
  NATTER_ICE_CANDIDATE_HOST,
  NATTER_ICE_CANDIDATE_SRFLX,   /* server reflexive: our address as a STUN server sees it */
  NATTER_ICE_CANDIDATE_PRFLX,   /* peer reflexive: learnt from a connectivity check */
  NATTER_ICE_CANDIDATE_RELAY,   /* allocated on a TURN server */
} NatterIceCandidateType;

/* "host", "srflx", "prflx" or "relay", as in SDP. */
const char *natter_ice_candidate_type_to_string (NatterIceCandidateType type);

/* ---- Configuration ----------------------------------------------------- */

/* What a session may use.  There are no default servers: with none set,
 * only host candidates are gathered.  A session copies the configuration
 * it is given, so a configuration can be changed and reused afterwards. */
typedef struct _NatterIceConfig NatterIceConfig;

#define NATTER_TYPE_ICE_CONFIG (natter_ice_config_get_type ())
GType natter_ice_config_get_type (void);

NatterIceConfig *natter_ice_config_new  (void);
NatterIceConfig *natter_ice_config_copy (const NatterIceConfig *config);
void             natter_ice_config_free (NatterIceConfig       *config);

/* The STUN server, by IP address or host name (resolved asynchronously by
 * libnice); @host NULL removes it. */
gboolean natter_ice_config_set_stun_server (NatterIceConfig  *config,
                                            const char       *host,
                                            guint16           port,
                                            GError          **error);
/* Adds a TURN server reached over UDP (at most NATTER_ICE_MAX_TURN_SERVERS). */
gboolean natter_ice_config_add_turn_server (NatterIceConfig  *config,
                                            const char       *host,
                                            guint16           port,
                                            const char       *username,
                                            const char       *password,
                                            GError          **error);
void     natter_ice_config_clear_turn_servers (NatterIceConfig *config);

/* The interfaces ICE may gather on, by name ("eth0", "lo"); NULL or empty
 * means all of them.  When the list is not empty, the session adds the
 * addresses of exactly these interfaces and libnice gathers nowhere else;
 * with "lo" alone only 127.0.0.1 (and ::1 when IPv6 is on) is used.  An
 * interface that has no usable address makes natter_ice_session_start()
 * fail rather than fall back to every interface.
 *
 * Precedence, resolved by the caller: NATTER_INTERFACES (see
 * natter_ice_interfaces_from_env()) over the command-line option over
 * GSettings. */
void                natter_ice_config_set_interfaces (NatterIceConfig    *config,
                                                      const char * const *interfaces);
const char * const *natter_ice_config_get_interfaces (const NatterIceConfig *config);

/* IPv6 host addresses (default on).  Link-local IPv6 addresses are never
 * used: a candidate cannot carry their scope. */
void natter_ice_config_set_ipv6        (NatterIceConfig *config,
                                        gboolean         ipv6);
/* ICE-TCP candidates, local and remote (default off). */
void natter_ice_config_set_ice_tcp     (NatterIceConfig *config,
                                        gboolean         ice_tcp);
/* Relay candidates only, to hide our addresses from the peer (default off). */
void natter_ice_config_set_force_relay (NatterIceConfig *config,
                                        gboolean         force_relay);
/* How quickly a dead path is given up: @check_retransmissions STUN
 * retransmissions per connectivity check (libnice's first timeout is
 * 500 ms and doubles) and @idle_timeout_ms of grace once no check is left
 * before the state becomes FAILED.  0 keeps the default (3 and 3000 ms).
 * Tests shorten these; the defaults suit real networks. */
void natter_ice_config_set_check_timing (NatterIceConfig *config,
                                         guint            check_retransmissions,
                                         guint            idle_timeout_ms);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterIceConfig, natter_ice_config_free)

/* The interfaces named by the NATTER_INTERFACES environment variable
 * (comma-separated, blanks around names ignored), or NULL when it is unset
 * or names none.  When it is set it overrides the command line and
 * GSettings. */
char **natter_ice_interfaces_from_env (void);

/* ---- Session ----------------------------------------------------------- */

#define NATTER_TYPE_ICE_SESSION (natter_ice_session_get_type ())
G_DECLARE_FINAL_TYPE (NatterIceSession, natter_ice_session, NATTER, ICE_SESSION, GObject)

/* Called for every datagram that arrives, on the session's context, with a
 * buffer that is only valid during the call.  It may close or release the
 * session. */
typedef void (*NatterIceDatagramFunc) (NatterIceSession *session,
                                       const guint8     *data,
                                       gsize             len,
                                       gpointer          user_data);

typedef struct
{
  NatterIceCandidateType local_type;
  NatterIceCandidateType remote_type;
  char                   local_ip[48];    /* numeric, no brackets */
  guint16                local_port;
  char                   remote_ip[48];
  guint16                remote_port;
} NatterIcePairInfo;

typedef struct
{
  guint64 datagrams_sent;
  guint64 bytes_sent;
  guint64 datagrams_received;
  guint64 bytes_received;
  guint64 dropped_not_connected;   /* send() before CONNECTED or after FAILED/CLOSED */
  guint64 dropped_send_error;      /* libnice or the socket refused it, or too large */
  guint64 dropped_no_handler;      /* received with no datagram function set */
  guint   remote_candidates;       /* accepted so far */
} NatterIceStats;

/* @context: the transport thread's context; the agent and all its sources
 * live there.  @controlling: whether this side nominates the pair (one
 * side TRUE, the other FALSE).  @config may be NULL for the defaults. */
NatterIceSession *natter_ice_session_new (GMainContext          *context,
                                          gboolean               controlling,
                                          const NatterIceConfig *config);

/* Begins gathering; "local-candidate" may be emitted before this returns. */
gboolean natter_ice_session_start (NatterIceSession  *self,
                                   GError           **error);

NatterIceState natter_ice_session_get_state       (NatterIceSession *self);
gboolean       natter_ice_session_get_controlling (NatterIceSession *self);

/* Our ufrag and password, to send to the peer.  Available from creation. */
gboolean natter_ice_session_get_local_credentials  (NatterIceSession  *self,
                                                    char             **ufrag,
                                                    char             **pwd);
gboolean natter_ice_session_set_remote_credentials (NatterIceSession  *self,
                                                    const char        *ufrag,
                                                    const char        *pwd,
                                                    GError           **error);
/* One candidate from the peer: "a=candidate:..." or "candidate:...". */
gboolean natter_ice_session_add_remote_candidate   (NatterIceSession  *self,
                                                    const char        *candidate,
                                                    GError           **error);
/* The peer has sent all its candidates: once every pair has failed, the
 * state may become FAILED. */
void     natter_ice_session_remote_gathering_done  (NatterIceSession  *self);

/* The pair in use, or FALSE when there is none yet. */
gboolean natter_ice_session_get_selected_pair (NatterIceSession  *self,
                                               NatterIcePairInfo *info);

void     natter_ice_session_set_datagram_func (NatterIceSession      *self,
                                               NatterIceDatagramFunc  func,
                                               gpointer               user_data,
                                               GDestroyNotify         destroy);
/* Sends one datagram; FALSE (and counted) when it was dropped. */
gboolean natter_ice_session_send              (NatterIceSession      *self,
                                               const guint8          *data,
                                               gsize                  len);

/* natter_ice_session_send() in three steps, for sending from another
 * thread (libnice's agent takes its own lock).  On the session's thread:
 * the agent (borrowed: take a reference, released on that thread, to use
 * it elsewhere) and where to send, or NULL (counted as dropped) when the
 * session cannot send @len bytes now.  On any thread:
 * natter_ice_agent_send(), or natter_ice_agent_send_batch() for several
 * datagrams at once (one lock of the agent, one sendmmsg() where libnice
 * can).  Then, again on the session's thread, count each result. */
NiceAgent *natter_ice_session_prepare_send     (NatterIceSession      *self,
                                                gsize                  len,
                                                guint                 *stream_id,
                                                guint                 *component_id);
gboolean   natter_ice_agent_send               (NiceAgent             *agent,
                                                guint                  stream_id,
                                                guint                  component_id,
                                                const guint8          *data,
                                                gsize                  len);
/* Sends @n datagrams in order; @sent[i] says whether datagram i went out.
 * One that fails is dropped and the rest still go. */
void       natter_ice_agent_send_batch         (NiceAgent             *agent,
                                                guint                  stream_id,
                                                guint                  component_id,
                                                guint8 * const        *data,
                                                const gsize           *len,
                                                gboolean              *sent,
                                                guint                  n);
void       natter_ice_session_count_send       (NatterIceSession      *self,
                                                gsize                  len,
                                                gboolean               sent);
void     natter_ice_session_get_stats         (NatterIceSession      *self,
                                               NatterIceStats        *stats);

/* Stops the session at once (state CLOSED, no more callbacks) and lets the
 * agent release its TURN allocations in the background.  Releasing the
 * last reference does the same. */
void     natter_ice_session_close        (NatterIceSession     *self);
/* As natter_ice_session_close(), and completes once the agent has released
 * everything it holds on servers, for an orderly shutdown. */
void     natter_ice_session_close_async  (NatterIceSession     *self,
                                          GCancellable         *cancellable,
                                          GAsyncReadyCallback   callback,
                                          gpointer              user_data);
gboolean natter_ice_session_close_finish (NatterIceSession     *self,
                                          GAsyncResult         *result,
                                          GError              **error);

/* The agent, for diagnostics and tests; NULL once closed.  Do not change
 * its settings. */
NiceAgent *natter_ice_session_get_agent (NatterIceSession *self);

G_END_DECLS
