/* natter-ice.c: one ICE session (libnice) towards one remote peer
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <errno.h>
#include <string.h>

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "natter-ice.h"
#include "natter-loop-hub.h"

/* Timers.  libnice's defaults are written for RTP over the Internet; ours:
 *
 * - Ta ("stun-pacing-timer") 10 ms instead of 20: the pace of connectivity
 *   checks, and with trickle the delay before the first check after a
 *   remote candidate arrives.  A session has one component and few pairs,
 *   so the burst stays small, and RFC 8445 allows down to 5 ms for non-RTP
 *   traffic.  It halves connection setup.
 * - "stun-initial-timeout" stays at libnice's 500 ms (RFC 5389's floor for
 *   an unknown path).  It only governs STUN/TURN gathering and TURN
 *   refreshes, and trickle hides gathering latency: host candidates flow
 *   while the servers answer.
 * - "stun-max-retransmissions" 3 (libnice's 500 ms first timeout for a
 *   check, doubling, the last halved: a check gives up after 4.5 s) and
 *   "idle-timeout" 3 s instead of 5 s: a pair nobody answers is declared
 *   FAILED about 7.5 s after the last candidate, not 10 s.
 * - Consent freshness (RFC 7675) replaces plain keepalives where libnice
 *   implements it well (0.1.22 and later: a 30 s consent timeout).
 *   libnice 0.1.21 gives up consent 10 s after the last answer, asks only
 *   every 4-6 s and never retransmits, so at 10% loss a healthy path fails
 *   (measured in tests/netns/transport-test.py); with that version consent
 *   freshness stays off and NatterPeerConnection's 1 s keepalive and 10 s
 *   silence timeout judge liveness. */
#define PACING_TIMER_MS               10
#define DEFAULT_CHECK_RETRANSMISSIONS 3
#define DEFAULT_IDLE_TIMEOUT_MS       3000
/* libnice's accepted range for "idle-timeout". */
#define MIN_IDLE_TIMEOUT_MS           50
#define MAX_IDLE_TIMEOUT_MS           60000
#define MAX_CHECK_RETRANSMISSIONS     99

#define COMPONENT_ID                  1
#define SOCKET_BUFFER_SIZE            (4 * 1024 * 1024)

/* RFC 8445 15.4: ufrag 4..256 and password 22..256 ice-chars. */
#define MIN_UFRAG_LEN                 4
#define MIN_PWD_LEN                   22
#define MAX_CREDENTIAL_LEN            256
#define MAX_FOUNDATION_LEN            32
#define MAX_HOST_LEN                  253
#define MAX_TURN_SECRET_LEN           512

G_DEFINE_QUARK (natter-ice-error-quark, natter_ice_error)

G_DEFINE_ENUM_TYPE (NatterIceState, natter_ice_state,
                    G_DEFINE_ENUM_VALUE (NATTER_ICE_STATE_NEW, "new"),
                    G_DEFINE_ENUM_VALUE (NATTER_ICE_STATE_GATHERING, "gathering"),
                    G_DEFINE_ENUM_VALUE (NATTER_ICE_STATE_CONNECTING, "connecting"),
                    G_DEFINE_ENUM_VALUE (NATTER_ICE_STATE_CONNECTED, "connected"),
                    G_DEFINE_ENUM_VALUE (NATTER_ICE_STATE_FAILED, "failed"),
                    G_DEFINE_ENUM_VALUE (NATTER_ICE_STATE_CLOSED, "closed"))

const char *
natter_ice_state_to_string (NatterIceState state)
{
  switch (state)
    {
    case NATTER_ICE_STATE_NEW:        return "new";
    case NATTER_ICE_STATE_GATHERING:  return "gathering";
    case NATTER_ICE_STATE_CONNECTING: return "connecting";
    case NATTER_ICE_STATE_CONNECTED:  return "connected";
    case NATTER_ICE_STATE_FAILED:     return "failed";
    case NATTER_ICE_STATE_CLOSED:     return "closed";
    default:                          return "unknown";
    }
}

const char *
natter_ice_candidate_type_to_string (NatterIceCandidateType type)
{
  switch (type)
    {
    case NATTER_ICE_CANDIDATE_HOST:  return "host";
    case NATTER_ICE_CANDIDATE_SRFLX: return "srflx";
    case NATTER_ICE_CANDIDATE_PRFLX: return "prflx";
    case NATTER_ICE_CANDIDATE_RELAY: return "relay";
    default:                         return "unknown";
    }
}

static NatterIceCandidateType
candidate_type_from_nice (NiceCandidateType type)
{
  switch (type)
    {
    case NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE: return NATTER_ICE_CANDIDATE_SRFLX;
    case NICE_CANDIDATE_TYPE_PEER_REFLEXIVE:   return NATTER_ICE_CANDIDATE_PRFLX;
    case NICE_CANDIDATE_TYPE_RELAYED:          return NATTER_ICE_CANDIDATE_RELAY;
    case NICE_CANDIDATE_TYPE_HOST:
    default:                                   return NATTER_ICE_CANDIDATE_HOST;
    }
}

/* ---- Configuration ----------------------------------------------------- */

typedef struct
{
  char    *host;
  guint16  port;
  char    *username;
  char    *password;
} TurnServer;

struct _NatterIceConfig
{
  char      *stun_host;
  guint16    stun_port;
  GPtrArray *turn_servers;      /* of TurnServer */
  char     **interfaces;        /* NULL-terminated, never NULL */
  gboolean   ipv6;
  gboolean   ice_tcp;
  gboolean   force_relay;
  guint      check_retransmissions;
  guint      idle_timeout_ms;
};

G_DEFINE_BOXED_TYPE (NatterIceConfig, natter_ice_config,
                     natter_ice_config_copy, natter_ice_config_free)

static void
turn_server_free (gpointer data)
{
  TurnServer *turn = data;

  g_free (turn->host);
  g_free (turn->username);
  /* A TURN password is a long-lived secret. */
  if (turn->password != NULL)
    memset (turn->password, 0, strlen (turn->password));
  g_free (turn->password);
  g_free (turn);
}

NatterIceConfig *
natter_ice_config_new (void)
{
  NatterIceConfig *config = g_new0 (NatterIceConfig, 1);

  config->turn_servers = g_ptr_array_new_with_free_func (turn_server_free);
  config->interfaces = g_new0 (char *, 1);
  config->ipv6 = TRUE;
  config->check_retransmissions = DEFAULT_CHECK_RETRANSMISSIONS;
  config->idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;

  return config;
}

NatterIceConfig *
natter_ice_config_copy (const NatterIceConfig *config)
{
  NatterIceConfig *copy;

  g_return_val_if_fail (config != NULL, NULL);

  copy = natter_ice_config_new ();
  copy->stun_host = g_strdup (config->stun_host);
  copy->stun_port = config->stun_port;
  for (guint i = 0; i < config->turn_servers->len; i++)
    {
      const TurnServer *turn = g_ptr_array_index (config->turn_servers, i);
      TurnServer *dup = g_new0 (TurnServer, 1);

      dup->host = g_strdup (turn->host);
      dup->port = turn->port;
      dup->username = g_strdup (turn->username);
      dup->password = g_strdup (turn->password);
      g_ptr_array_add (copy->turn_servers, dup);
    }
  g_strfreev (copy->interfaces);
  copy->interfaces = g_strdupv (config->interfaces);
  copy->ipv6 = config->ipv6;
  copy->ice_tcp = config->ice_tcp;
  copy->force_relay = config->force_relay;
  copy->check_retransmissions = config->check_retransmissions;
  copy->idle_timeout_ms = config->idle_timeout_ms;

  return copy;
}

void
natter_ice_config_free (NatterIceConfig *config)
{
  if (config == NULL)
    return;

  g_free (config->stun_host);
  g_ptr_array_unref (config->turn_servers);
  g_strfreev (config->interfaces);
  g_free (config);
}

/* Host names and numeric addresses only: the value ends up in libnice's
 * resolver and in log lines. */
static gboolean
check_server (const char  *host,
              guint16      port,
              GError     **error)
{
  gsize len = host != NULL ? strlen (host) : 0;

  if (len == 0 || len > MAX_HOST_LEN)
    {
      g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CONFIG,
                   "Server host must be 1 to %d characters long", MAX_HOST_LEN);
      return FALSE;
    }
  for (gsize i = 0; i < len; i++)
    {
      char c = host[i];

      if (!g_ascii_isalnum (c) && c != '.' && c != '-' && c != ':' && c != '_')
        {
          g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CONFIG,
                       "Server host “%s” is not a host name or IP address", host);
          return FALSE;
        }
    }
  if (port == 0)
    {
      g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CONFIG,
                   "Server “%s” needs a port", host);
      return FALSE;
    }

  return TRUE;
}

gboolean
natter_ice_config_set_stun_server (NatterIceConfig  *config,
                                   const char       *host,
                                   guint16           port,
                                   GError          **error)
{
  g_return_val_if_fail (config != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (host != NULL && !check_server (host, port, error))
    return FALSE;

  g_free (config->stun_host);
  config->stun_host = g_strdup (host);
  config->stun_port = host != NULL ? port : 0;

  return TRUE;
}

gboolean
natter_ice_config_add_turn_server (NatterIceConfig  *config,
                                   const char       *host,
                                   guint16           port,
                                   const char       *username,
                                   const char       *password,
                                   GError          **error)
{
  TurnServer *turn;

  g_return_val_if_fail (config != NULL, FALSE);
  g_return_val_if_fail (username != NULL, FALSE);
  g_return_val_if_fail (password != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_server (host, port, error))
    return FALSE;
  if (strlen (username) > MAX_TURN_SECRET_LEN || strlen (password) > MAX_TURN_SECRET_LEN)
    {
      g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CONFIG,
                   "TURN credentials for “%s” are longer than %d bytes",
                   host, MAX_TURN_SECRET_LEN);
      return FALSE;
    }
  if (config->turn_servers->len >= NATTER_ICE_MAX_TURN_SERVERS)
    {
      g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CONFIG,
                   "At most %d TURN servers can be used", NATTER_ICE_MAX_TURN_SERVERS);
      return FALSE;
    }

  turn = g_new0 (TurnServer, 1);
  turn->host = g_strdup (host);
  turn->port = port;
  turn->username = g_strdup (username);
  turn->password = g_strdup (password);
  g_ptr_array_add (config->turn_servers, turn);

  return TRUE;
}

void
natter_ice_config_clear_turn_servers (NatterIceConfig *config)
{
  g_return_if_fail (config != NULL);

  g_ptr_array_set_size (config->turn_servers, 0);
}

void
natter_ice_config_set_interfaces (NatterIceConfig    *config,
                                  const char * const *interfaces)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();

  g_return_if_fail (config != NULL);

  for (gsize i = 0; interfaces != NULL && interfaces[i] != NULL; i++)
    {
      /* An empty name would match nothing and only confuse the "empty list
       * means all" rule. */
      if (interfaces[i][0] != '\0')
        g_strv_builder_add (builder, interfaces[i]);
    }

  g_strfreev (config->interfaces);
  config->interfaces = g_strv_builder_end (builder);
}

const char * const *
natter_ice_config_get_interfaces (const NatterIceConfig *config)
{
  g_return_val_if_fail (config != NULL, NULL);

  return (const char * const *) config->interfaces;
}

void
natter_ice_config_set_ipv6 (NatterIceConfig *config,
                            gboolean         ipv6)
{
  g_return_if_fail (config != NULL);

  config->ipv6 = !!ipv6;
}

void
natter_ice_config_set_ice_tcp (NatterIceConfig *config,
                               gboolean         ice_tcp)
{
  g_return_if_fail (config != NULL);

  config->ice_tcp = !!ice_tcp;
}

void
natter_ice_config_set_force_relay (NatterIceConfig *config,
                                   gboolean         force_relay)
{
  g_return_if_fail (config != NULL);

  config->force_relay = !!force_relay;
}

void
natter_ice_config_set_check_timing (NatterIceConfig *config,
                                    guint            check_retransmissions,
                                    guint            idle_timeout_ms)
{
  g_return_if_fail (config != NULL);

  config->check_retransmissions = check_retransmissions == 0
    ? DEFAULT_CHECK_RETRANSMISSIONS
    : MIN (check_retransmissions, MAX_CHECK_RETRANSMISSIONS);
  config->idle_timeout_ms = idle_timeout_ms == 0
    ? DEFAULT_IDLE_TIMEOUT_MS
    : CLAMP (idle_timeout_ms, MIN_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS);
}

char **
natter_ice_interfaces_from_env (void)
{
  const char *value = g_getenv ("NATTER_INTERFACES");
  g_auto(GStrv) parts = NULL;
  g_autoptr(GStrvBuilder) builder = NULL;
  gboolean any = FALSE;

  if (value == NULL)
    return NULL;

  parts = g_strsplit (value, ",", -1);
  builder = g_strv_builder_new ();
  for (gsize i = 0; parts[i] != NULL; i++)
    {
      char *name = g_strstrip (parts[i]);

      /* Names are kept even when they look wrong: an interface that does
       * not exist makes the session fail, where dropping the name could
       * silently widen the choice to every interface. */
      if (name[0] != '\0')
        {
          g_strv_builder_add (builder, name);
          any = TRUE;
        }
    }

  if (!any)
    return NULL;

  return g_strv_builder_end (builder);
}

/* ---- Session ----------------------------------------------------------- */

struct _NatterIceSession
{
  GObject                parent_instance;

  GMainContext          *context;
  /* The agent's own context, run from the transport context by the loop
   * hub (natter-loop-hub.c); released when the agent is finalized. */
  GMainContext          *agent_context;
  NatterIceConfig       *config;
  gboolean               controlling;

  NiceAgent             *agent;         /* NULL once closed */
  guint                  stream_id;
  NatterIceState         state;

  char                  *remote_ufrag;
  char                  *remote_pwd;

  NatterIceDatagramFunc  datagram_func;
  gpointer               datagram_data;
  GDestroyNotify         datagram_destroy;

  NatterIceStats         stats;
};

G_DEFINE_FINAL_TYPE (NatterIceSession, natter_ice_session, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_MAIN_CONTEXT,
  PROP_CONTROLLING,
  PROP_CONFIG,
  PROP_STATE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  LOCAL_CANDIDATE,
  GATHERING_DONE,
  SELECTED_PAIR_CHANGED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void
set_state (NatterIceSession *self,
           NatterIceState    state)
{
  if (self->state == state)
    return;

  g_debug ("ICE session %p: %s -> %s", self,
           natter_ice_state_to_string (self->state),
           natter_ice_state_to_string (state));
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}

static gboolean
state_is_final (NatterIceState state)
{
  return state == NATTER_ICE_STATE_FAILED || state == NATTER_ICE_STATE_CLOSED;
}

/* libnice's component states, folded into ours.  CONNECTED already has a
 * working pair that libnice sends on, so it counts as connected, as in
 * webrtcbin; READY only adds that nomination is over.  Once connected we
 * stay connected until FAILED: libnice can step back to CONNECTING while
 * it checks late candidates, yet the selected pair keeps working.  FAILED
 * is final because libnice only reports it once every pair has failed and
 * the peer has no candidates left (or consent was lost); a new session,
 * with fresh credentials, is the way to try again. */
static void
on_component_state_changed (NiceAgent *agent,
                            guint      stream_id,
                            guint      component_id,
                            guint      nice_state,
                            gpointer   user_data)
{
  NatterIceSession *self = user_data;
  NatterIceState state;

  if (stream_id != self->stream_id || component_id != COMPONENT_ID)
    return;
  if (state_is_final (self->state))
    return;

  switch ((NiceComponentState) nice_state)
    {
    case NICE_COMPONENT_STATE_GATHERING:
      state = NATTER_ICE_STATE_GATHERING;
      break;
    case NICE_COMPONENT_STATE_CONNECTING:
      state = NATTER_ICE_STATE_CONNECTING;
      break;
    case NICE_COMPONENT_STATE_CONNECTED:
    case NICE_COMPONENT_STATE_READY:
      state = NATTER_ICE_STATE_CONNECTED;
      break;
    case NICE_COMPONENT_STATE_FAILED:
      state = NATTER_ICE_STATE_FAILED;
      break;
    case NICE_COMPONENT_STATE_DISCONNECTED:
    case NICE_COMPONENT_STATE_LAST:
    default:
      return;
    }

  if (self->state == NATTER_ICE_STATE_CONNECTED && state != NATTER_ICE_STATE_FAILED)
    return;

  set_state (self, state);
}

static void
on_new_candidate (NiceAgent     *agent,
                  NiceCandidate *candidate,
                  gpointer       user_data)
{
  NatterIceSession *self = user_data;
  g_autoptr(NatterIceSession) hold = NULL;
  g_autofree char *sdp = NULL;

  if (candidate->stream_id != self->stream_id || candidate->component_id != COMPONENT_ID)
    return;
  /* A local peer-reflexive candidate is learnt from the peer's own checks;
   * trickle ICE never signals it. */
  if (candidate->type == NICE_CANDIDATE_TYPE_PEER_REFLEXIVE)
    return;

  sdp = nice_agent_generate_local_candidate_sdp (agent, candidate);
  if (sdp == NULL)
    return;

  /* A handler may close or release the session. */
  hold = g_object_ref (self);
  g_signal_emit (self, signals[LOCAL_CANDIDATE], 0, sdp);
}

static void
on_gathering_done (NiceAgent *agent,
                   guint      stream_id,
                   gpointer   user_data)
{
  NatterIceSession *self = user_data;
  g_autoptr(NatterIceSession) hold = NULL;

  if (stream_id != self->stream_id)
    return;

  hold = g_object_ref (self);
  g_signal_emit (self, signals[GATHERING_DONE], 0);
}

/* A burst of datagrams (an SCTP window of them) must fit the socket's
 * queue while the transport thread is busy, or the kernel drops them and
 * SCTP backs off.  The kernel caps the value at net.core.rmem_max. */
static void
grow_socket_buffers (NatterIceSession *self)
{
  g_autoptr(GSocket) socket = nice_agent_get_selected_socket (self->agent, self->stream_id,
                                                              COMPONENT_ID);

  if (socket == NULL)
    return;
  if (!g_socket_set_option (socket, SOL_SOCKET, SO_RCVBUF, SOCKET_BUFFER_SIZE, NULL))
    g_debug ("ICE session %p: cannot grow the receive buffer", self);
}

static void
on_new_selected_pair (NiceAgent     *agent,
                      guint          stream_id,
                      guint          component_id,
                      NiceCandidate *local,
                      NiceCandidate *remote,
                      gpointer       user_data)
{
  NatterIceSession *self = user_data;
  g_autoptr(NatterIceSession) hold = NULL;

  if (stream_id != self->stream_id || component_id != COMPONENT_ID)
    return;

  g_debug ("ICE session %p: selected pair %s/%s", self,
           natter_ice_candidate_type_to_string (candidate_type_from_nice (local->type)),
           natter_ice_candidate_type_to_string (candidate_type_from_nice (remote->type)));

  grow_socket_buffers (self);
  hold = g_object_ref (self);
  g_signal_emit (self, signals[SELECTED_PAIR_CHANGED], 0);
}

static void
release_agent_context (gpointer  data,
                       GObject  *agent)
{
  GMainContext *context = data;

  natter_loop_hub_context_release (context);
  g_main_context_unref (context);
}

/* The hot path: one call per datagram, straight from libnice's socket
 * source on the agent's context (run on the session's thread by the loop
 * hub). */
static void
on_recv (NiceAgent *agent,
         guint      stream_id,
         guint      component_id,
         guint      len,
         gchar     *buf,
         gpointer   user_data)
{
  NatterIceSession *self = user_data;

  if (self->datagram_func == NULL)
    {
      self->stats.dropped_no_handler++;
      return;
    }

  self->stats.datagrams_received++;
  self->stats.bytes_received += len;
  /* The function may release the session: nothing touches self after it. */
  self->datagram_func (self, (const guint8 *) buf, len, self->datagram_data);
}

/* Owns the agent reference it is given (source_object) and the optional
 * close task of natter_ice_session_close_async(). */
static void
on_agent_closed (GObject      *source_object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;

  g_object_unref (source_object);

  if (task != NULL)
    g_task_return_boolean (task, TRUE);
}

typedef struct
{
  NiceAgent    *agent;
  GMainContext *context;
  GTask        *task;
} CloseData;

static void
close_agent (NiceAgent    *agent,
             GMainContext *context,
             GTask        *task)
{
  /* nice_agent_close_async() completes on the thread-default context of
   * its caller; make that the transport context even when the caller left
   * another one pushed. */
  g_main_context_push_thread_default (context);
  nice_agent_close_async (agent, on_agent_closed, task);
  g_main_context_pop_thread_default (context);
}

static gboolean
close_agent_in_context (gpointer user_data)
{
  CloseData *data = user_data;

  close_agent (data->agent, data->context, data->task);
  g_main_context_unref (data->context);
  g_free (data);

  return G_SOURCE_REMOVE;
}

/* The teardown order of ARCHITECTURE.md: detach the receive callback,
 * remove the stream, close the agent.  The agent, and @task if any, go to
 * the close operation, which drops them when libnice has released its TURN
 * allocations; nothing of it points back at the session. */
static void
shutdown_agent (NatterIceSession *self,
                GTask            *task)
{
  NiceAgent *agent = g_steal_pointer (&self->agent);

  g_assert (agent != NULL);

  nice_agent_attach_recv (agent, self->stream_id, COMPONENT_ID, self->agent_context, NULL, NULL);
  g_signal_handlers_disconnect_by_data (agent, self);
  nice_agent_remove_stream (agent, self->stream_id);

  if (g_main_context_acquire (self->context))
    {
      close_agent (agent, self->context, task);
      g_main_context_release (self->context);
    }
  else
    {
      CloseData *data = g_new0 (CloseData, 1);

      /* Released on a thread that does not run the transport context (a
       * misuse, but not one to crash on): finish the close there. */
      g_critical ("NatterIceSession %p released outside its context's thread", self);
      data->agent = agent;
      data->context = g_main_context_ref (self->context);
      data->task = task;
      g_main_context_invoke_full (self->context, G_PRIORITY_DEFAULT,
                                  close_agent_in_context, data, NULL);
    }
}

static void
clear_datagram_func (NatterIceSession *self)
{
  GDestroyNotify destroy = self->datagram_destroy;
  gpointer data = self->datagram_data;

  self->datagram_func = NULL;
  self->datagram_data = NULL;
  self->datagram_destroy = NULL;

  if (destroy != NULL)
    destroy (data);
}

static void
natter_ice_session_constructed (GObject *object)
{
  NatterIceSession *self = NATTER_ICE_SESSION (object);
  const NatterIceConfig *config = self->config;
  NiceAgentOption options;

  G_OBJECT_CLASS (natter_ice_session_parent_class)->constructed (object);

  if (self->context == NULL)
    self->context = g_main_context_ref_thread_default ();
  if (self->config == NULL)
    self->config = natter_ice_config_new ();
  config = self->config;

  /* Regular nomination, as webrtcbin and RFC 8445 (which dropped
   * aggressive nomination); trickle, so that candidates flow as found;
   * consent freshness, see the timers above. */
  options = NICE_AGENT_OPTION_ICE_TRICKLE
          | NICE_AGENT_OPTION_REGULAR_NOMINATION;
#if NATTER_NICE_CONSENT_FRESHNESS
  options |= NICE_AGENT_OPTION_CONSENT_FRESHNESS;
#endif
  self->agent_context = natter_loop_hub_context_new (self->context);
  self->agent = nice_agent_new_full (self->agent_context, NICE_COMPATIBILITY_RFC5245, options);
  /* The agent may outlive us (its close completes later): the context
   * goes when the agent does. */
  g_object_weak_ref (G_OBJECT (self->agent), release_agent_context,
                     g_main_context_ref (self->agent_context));

  /* UPnP is on by default in libnice and would send SSDP multicast to the
   * LAN and ask the router for a port.  It only starts while gathering, so
   * turning it off here, before anything else, means it never runs. */
  g_object_set (self->agent,
                "upnp", FALSE,
                "controlling-mode", self->controlling,
                "ice-udp", TRUE,
                "ice-tcp", config->ice_tcp,
                "force-relay", config->force_relay,
                "stun-pacing-timer", (guint) PACING_TIMER_MS,
                "stun-max-retransmissions", config->check_retransmissions,
                "idle-timeout", config->idle_timeout_ms,
                NULL);
  if (config->stun_host != NULL)
    g_object_set (self->agent,
                  "stun-server", config->stun_host,
                  "stun-server-port", (guint) config->stun_port,
                  NULL);

  self->stream_id = nice_agent_add_stream (self->agent, 1);
  g_assert (self->stream_id > 0);

  for (guint i = 0; i < config->turn_servers->len; i++)
    {
      const TurnServer *turn = g_ptr_array_index (config->turn_servers, i);

      if (!nice_agent_set_relay_info (self->agent, self->stream_id, COMPONENT_ID,
                                      turn->host, turn->port,
                                      turn->username, turn->password,
                                      NICE_RELAY_TYPE_TURN_UDP))
        g_warning ("libnice refused TURN server %s:%u", turn->host, turn->port);
    }

  g_signal_connect (self->agent, "component-state-changed",
                    G_CALLBACK (on_component_state_changed), self);
  g_signal_connect (self->agent, "new-candidate-full",
                    G_CALLBACK (on_new_candidate), self);
  g_signal_connect (self->agent, "candidate-gathering-done",
                    G_CALLBACK (on_gathering_done), self);
  g_signal_connect (self->agent, "new-selected-pair-full",
                    G_CALLBACK (on_new_selected_pair), self);

  /* Attached before gathering, so that every socket libnice opens is
   * polled on the agent's context from the start (STUN answers included). */
  nice_agent_attach_recv (self->agent, self->stream_id, COMPONENT_ID,
                          self->agent_context, on_recv, self);
}

static void
natter_ice_session_dispose (GObject *object)
{
  NatterIceSession *self = NATTER_ICE_SESSION (object);

  if (self->agent != NULL)
    shutdown_agent (self, NULL);
  /* No notification: nobody should hear from an object being released. */
  self->state = NATTER_ICE_STATE_CLOSED;

  clear_datagram_func (self);

  G_OBJECT_CLASS (natter_ice_session_parent_class)->dispose (object);
}

static void
natter_ice_session_finalize (GObject *object)
{
  NatterIceSession *self = NATTER_ICE_SESSION (object);

  g_clear_pointer (&self->config, natter_ice_config_free);
  g_clear_pointer (&self->remote_ufrag, g_free);
  g_clear_pointer (&self->remote_pwd, g_free);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_clear_pointer (&self->agent_context, g_main_context_unref);

  G_OBJECT_CLASS (natter_ice_session_parent_class)->finalize (object);
}

static void
natter_ice_session_get_property (GObject    *object,
                                 guint       prop_id,
                                 GValue     *value,
                                 GParamSpec *pspec)
{
  NatterIceSession *self = NATTER_ICE_SESSION (object);

  switch (prop_id)
    {
    case PROP_MAIN_CONTEXT:
      g_value_set_boxed (value, self->context);
      break;
    case PROP_CONTROLLING:
      g_value_set_boolean (value, self->controlling);
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_ice_session_set_property (GObject      *object,
                                 guint         prop_id,
                                 const GValue *value,
                                 GParamSpec   *pspec)
{
  NatterIceSession *self = NATTER_ICE_SESSION (object);

  switch (prop_id)
    {
    case PROP_MAIN_CONTEXT:
      self->context = g_value_dup_boxed (value);
      break;
    case PROP_CONTROLLING:
      self->controlling = g_value_get_boolean (value);
      break;
    case PROP_CONFIG:
      self->config = g_value_dup_boxed (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_ice_session_class_init (NatterIceSessionClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = natter_ice_session_constructed;
  object_class->dispose = natter_ice_session_dispose;
  object_class->finalize = natter_ice_session_finalize;
  object_class->get_property = natter_ice_session_get_property;
  object_class->set_property = natter_ice_session_set_property;

  /**
   * NatterIceSession:main-context:
   *
   * The transport thread's context, where the agent runs; the thread
   * default one when unset.
   */
  properties[PROP_MAIN_CONTEXT] =
    g_param_spec_boxed ("main-context", NULL, NULL,
                        G_TYPE_MAIN_CONTEXT,
                        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * NatterIceSession:controlling:
   *
   * Whether this side is the controlling ICE agent.
   */
  properties[PROP_CONTROLLING] =
    g_param_spec_boolean ("controlling", NULL, NULL,
                          FALSE,
                          G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * NatterIceSession:config:
   *
   * Servers, interfaces and timers; copied at construction.
   */
  properties[PROP_CONFIG] =
    g_param_spec_boxed ("config", NULL, NULL,
                        NATTER_TYPE_ICE_CONFIG,
                        G_PARAM_WRITABLE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * NatterIceSession:state:
   *
   * Where the session stands; see #NatterIceState.
   */
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL,
                       NATTER_TYPE_ICE_STATE, NATTER_ICE_STATE_NEW,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * NatterIceSession::local-candidate:
   * @self: the session
   * @candidate: an SDP attribute, "a=candidate:..."
   *
   * A local candidate to send to the peer.
   */
  signals[LOCAL_CANDIDATE] =
    g_signal_new ("local-candidate",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_STRING);

  /**
   * NatterIceSession::gathering-done:
   * @self: the session
   *
   * Every local candidate has been emitted (end-of-candidates).
   */
  signals[GATHERING_DONE] =
    g_signal_new ("gathering-done",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);

  /**
   * NatterIceSession::selected-pair-changed:
   * @self: the session
   *
   * Datagrams now take another pair; see
   * natter_ice_session_get_selected_pair().
   */
  signals[SELECTED_PAIR_CHANGED] =
    g_signal_new ("selected-pair-changed",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);
}

static void
natter_ice_session_init (NatterIceSession *self)
{
  self->state = NATTER_ICE_STATE_NEW;
}

NatterIceSession *
natter_ice_session_new (GMainContext          *context,
                        gboolean               controlling,
                        const NatterIceConfig *config)
{
  g_return_val_if_fail (context != NULL, NULL);

  return g_object_new (NATTER_TYPE_ICE_SESSION,
                       "main-context", context,
                       "controlling", controlling,
                       "config", config,
                       NULL);
}

static gboolean
interface_allowed (const NatterIceConfig *config,
                   const char            *name)
{
  return g_strv_contains ((const char * const *) config->interfaces, name);
}

/* Adds the addresses of the allowed interfaces; libnice then gathers on
 * those alone instead of discovering every interface itself. */
static gboolean
add_local_addresses (NatterIceSession  *self,
                     GError           **error)
{
  const NatterIceConfig *config = self->config;
  struct ifaddrs *ifaddrs = NULL;
  guint n_added = 0;

  if (getifaddrs (&ifaddrs) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_NO_INTERFACE,
                   "Cannot list network interfaces: %s", g_strerror (saved_errno));
      return FALSE;
    }

  for (struct ifaddrs *ifa = ifaddrs; ifa != NULL; ifa = ifa->ifa_next)
    {
      NiceAddress address;

      if (ifa->ifa_addr == NULL || ifa->ifa_name == NULL)
        continue;
      /* As libnice's own discovery: an interface without carrier has
       * nothing to offer. */
      if ((ifa->ifa_flags & (IFF_UP | IFF_RUNNING)) != (IFF_UP | IFF_RUNNING))
        continue;
      if (!interface_allowed (config, ifa->ifa_name))
        continue;

      if (ifa->ifa_addr->sa_family == AF_INET6)
        {
          const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) ifa->ifa_addr;

          if (!config->ipv6)
            continue;
          /* The scope of a link-local address cannot travel in a candidate,
           * so the peer could not use it. */
          if (IN6_IS_ADDR_LINKLOCAL (&sin6->sin6_addr))
            continue;
        }
      else if (ifa->ifa_addr->sa_family != AF_INET)
        {
          continue;
        }

      nice_address_init (&address);
      nice_address_set_from_sockaddr (&address, ifa->ifa_addr);
      nice_address_set_port (&address, 0);
      if (nice_agent_add_local_address (self->agent, &address))
        n_added++;
    }

  freeifaddrs (ifaddrs);

  if (n_added == 0)
    {
      g_autofree char *names = g_strjoinv (", ", config->interfaces);

      /* Never fall back to libnice's own discovery: that would gather on
       * every interface, which is what the setting forbids. */
      g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_NO_INTERFACE,
                   "No usable address on the allowed interfaces (%s)", names);
      return FALSE;
    }

  return TRUE;
}

gboolean
natter_ice_session_start (NatterIceSession  *self,
                          GError           **error)
{
  g_autoptr(NatterIceSession) hold = NULL;

  g_return_val_if_fail (NATTER_IS_ICE_SESSION (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->state != NATTER_ICE_STATE_NEW)
    {
      g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_STATE,
                   "The ICE session was already started (%s)",
                   natter_ice_state_to_string (self->state));
      return FALSE;
    }

  if (self->config->interfaces[0] != NULL && !add_local_addresses (self, error))
    return FALSE;

  /* Handlers of the signals emitted during gathering may close or release
   * the session. */
  hold = g_object_ref (self);
  set_state (self, NATTER_ICE_STATE_GATHERING);

  if (self->agent == NULL)
    return TRUE;

  if (!nice_agent_gather_candidates (self->agent, self->stream_id))
    {
      g_set_error_literal (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_FAILED,
                           "Could not gather ICE candidates (no local address could be bound)");
      set_state (self, NATTER_ICE_STATE_FAILED);
      return FALSE;
    }

  return TRUE;
}

NatterIceState
natter_ice_session_get_state (NatterIceSession *self)
{
  g_return_val_if_fail (NATTER_IS_ICE_SESSION (self), NATTER_ICE_STATE_CLOSED);

  return self->state;
}

gboolean
natter_ice_session_get_controlling (NatterIceSession *self)
{
  g_return_val_if_fail (NATTER_IS_ICE_SESSION (self), FALSE);

  return self->controlling;
}

gboolean
natter_ice_session_get_local_credentials (NatterIceSession  *self,
                                          char             **ufrag,
                                          char             **pwd)
{
  g_return_val_if_fail (NATTER_IS_ICE_SESSION (self), FALSE);
  g_return_val_if_fail (ufrag != NULL && pwd != NULL, FALSE);

  *ufrag = NULL;
  *pwd = NULL;

  if (self->agent == NULL)
    return FALSE;

  return nice_agent_get_local_credentials (self->agent, self->stream_id, ufrag, pwd);
}

static gboolean
is_ice_char (char c)
{
  return g_ascii_isalnum (c) || c == '+' || c == '/';
}

static gboolean
check_ice_string (const char *value,
                  gsize       min_len,
                  gsize       max_len)
{
  gsize len;

  if (value == NULL)
    return FALSE;

  len = strnlen (value, max_len + 1);
  if (len < min_len || len > max_len)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    {
      if (!is_ice_char (value[i]))
        return FALSE;
    }

  return TRUE;
}

gboolean
natter_ice_session_set_remote_credentials (NatterIceSession  *self,
                                           const char        *ufrag,
                                           const char        *pwd,
                                           GError           **error)
{
  g_return_val_if_fail (NATTER_IS_ICE_SESSION (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->agent == NULL || state_is_final (self->state))
    {
      g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_STATE,
                   "The ICE session is %s", natter_ice_state_to_string (self->state));
      return FALSE;
    }

  if (!check_ice_string (ufrag, MIN_UFRAG_LEN, MAX_CREDENTIAL_LEN))
    {
      g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CREDENTIALS,
                   "The remote ICE ufrag must be %d to %d characters of A-Z a-z 0-9 + /",
                   MIN_UFRAG_LEN, MAX_CREDENTIAL_LEN);
      return FALSE;
    }
  if (!check_ice_string (pwd, MIN_PWD_LEN, MAX_CREDENTIAL_LEN))
    {
      g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CREDENTIALS,
                   "The remote ICE password must be %d to %d characters of A-Z a-z 0-9 + /",
                   MIN_PWD_LEN, MAX_CREDENTIAL_LEN);
      return FALSE;
    }

  if (self->remote_ufrag != NULL)
    {
      /* The same credentials again are a harmless duplicate; new ones
       * would be an ICE restart, which takes a new session. */
      if (g_str_equal (self->remote_ufrag, ufrag) && g_str_equal (self->remote_pwd, pwd))
        return TRUE;

      g_set_error_literal (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CREDENTIALS,
                           "The remote ICE credentials cannot change during a session");
      return FALSE;
    }

  if (!nice_agent_set_remote_credentials (self->agent, self->stream_id, ufrag, pwd))
    {
      g_set_error_literal (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_FAILED,
                           "libnice refused the remote ICE credentials");
      return FALSE;
    }

  self->remote_ufrag = g_strdup (ufrag);
  self->remote_pwd = g_strdup (pwd);

  return TRUE;
}

static gboolean
parse_uint (const char *token,
            guint64     max,
            guint64    *out)
{
  guint64 value;

  /* g_ascii_string_to_unsigned() takes a sign or leading blanks; a
   * candidate field is bare digits. */
  for (const char *p = token; *p != '\0'; p++)
    {
      if (!g_ascii_isdigit (*p))
        return FALSE;
    }

  if (!g_ascii_string_to_unsigned (token, 10, 0, max, &value, NULL))
    return FALSE;

  *out = value;
  return TRUE;
}

static gboolean
candidate_error (GError     **error,
                 const char  *reason)
{
  g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CANDIDATE,
               "Invalid remote ICE candidate: %s", reason);
  return FALSE;
}

/* Checks a candidate attribute (RFC 8839 section 5.1) before libnice sees
 * it: libnice's parser truncates numbers silently and dereferences a
 * missing "tcptype".  Returns it with the "a=" prefix libnice wants. */
static char *
check_candidate_sdp (const char  *candidate,
                     gboolean     allow_tcp,
                     GError     **error)
{
  g_autofree char *normalized = NULL;
  g_auto(GStrv) tokens = NULL;
  gsize len;
  guint n_tokens;
  guint64 value;
  const char *type = NULL;
  const char *tcptype = NULL;
  gboolean is_tcp;

  len = strnlen (candidate, NATTER_ICE_MAX_CANDIDATE_LEN + 1);
  if (len > NATTER_ICE_MAX_CANDIDATE_LEN)
    {
      candidate_error (error, "longer than 512 bytes");
      return NULL;
    }
  for (gsize i = 0; i < len; i++)
    {
      if (candidate[i] < 0x20 || candidate[i] > 0x7e)
        {
          candidate_error (error, "not printable ASCII");
          return NULL;
        }
    }

  if (g_str_has_prefix (candidate, "a=candidate:"))
    normalized = g_strdup (candidate);
  else if (g_str_has_prefix (candidate, "candidate:"))
    normalized = g_strconcat ("a=", candidate, NULL);
  else
    {
      candidate_error (error, "does not start with “candidate:”");
      return NULL;
    }

  tokens = g_strsplit (normalized + strlen ("a=candidate:"), " ", -1);
  n_tokens = g_strv_length (tokens);
  /* foundation component transport priority address port "typ" type, then
   * name/value pairs. */
  if (n_tokens < 8 || (n_tokens - 6) % 2 != 0)
    {
      candidate_error (error, "wrong number of fields");
      return NULL;
    }
  for (guint i = 0; i < n_tokens; i++)
    {
      if (tokens[i][0] == '\0')
        {
          candidate_error (error, "empty field");
          return NULL;
        }
    }

  if (!check_ice_string (tokens[0], 1, MAX_FOUNDATION_LEN))
    {
      candidate_error (error, "bad foundation");
      return NULL;
    }
  if (!g_str_equal (tokens[1], "1"))
    {
      candidate_error (error, "not for component 1");
      return NULL;
    }
  is_tcp = g_ascii_strcasecmp (tokens[2], "tcp") == 0;
  if (g_ascii_strcasecmp (tokens[2], "udp") != 0 && !is_tcp)
    {
      candidate_error (error, "transport is neither UDP nor TCP");
      return NULL;
    }
  if (is_tcp && !allow_tcp)
    {
      candidate_error (error, "ICE-TCP is not enabled");
      return NULL;
    }
  if (!parse_uint (tokens[3], G_MAXUINT32, &value) || value == 0)
    {
      candidate_error (error, "bad priority");
      return NULL;
    }
  /* The address itself is checked after libnice parsed it. */
  if (!parse_uint (tokens[5], G_MAXUINT16, &value) || value == 0)
    {
      candidate_error (error, "bad port");
      return NULL;
    }

  for (guint i = 6; i + 1 < n_tokens; i += 2)
    {
      const char *name = tokens[i];
      const char *val = tokens[i + 1];

      if (g_str_equal (name, "typ"))
        {
          if (!g_str_equal (val, "host") && !g_str_equal (val, "srflx")
              && !g_str_equal (val, "prflx") && !g_str_equal (val, "relay"))
            {
              candidate_error (error, "unknown candidate type");
              return NULL;
            }
          type = val;
        }
      else if (g_str_equal (name, "rport"))
        {
          if (!parse_uint (val, G_MAXUINT16, &value))
            {
              candidate_error (error, "bad rport");
              return NULL;
            }
        }
      else if (g_str_equal (name, "tcptype"))
        {
          if (!g_str_equal (val, "active") && !g_str_equal (val, "passive")
              && !g_str_equal (val, "so"))
            {
              candidate_error (error, "bad tcptype");
              return NULL;
            }
          tcptype = val;
        }
      /* raddr is parsed by libnice; other extensions (generation, ufrag,
       * network-id...) are ignored, as RFC 8839 asks. */
    }

  if (type == NULL || !g_str_equal (tokens[6], "typ"))
    {
      candidate_error (error, "no “typ” after the port");
      return NULL;
    }
  if (is_tcp && tcptype == NULL)
    {
      candidate_error (error, "TCP candidate without tcptype");
      return NULL;
    }

  return g_steal_pointer (&normalized);
}

/* Addresses a peer has no business asking us to send to. */
static gboolean
check_candidate_address (const NiceCandidate  *candidate,
                         GError              **error)
{
  char text[NICE_ADDRESS_STRING_LEN];
  g_autoptr(GInetAddress) address = NULL;

  if (!nice_address_is_valid (&candidate->addr) || nice_address_get_port (&candidate->addr) == 0)
    return candidate_error (error, "bad address");

  nice_address_to_string (&candidate->addr, text);
  address = g_inet_address_new_from_string (text);
  if (address == NULL)
    return candidate_error (error, "bad address");
  if (g_inet_address_get_is_any (address) || g_inet_address_get_is_multicast (address)
      || g_str_equal (text, "255.255.255.255"))
    return candidate_error (error, "unspecified, multicast or broadcast address");

  return TRUE;
}

gboolean
natter_ice_session_add_remote_candidate (NatterIceSession  *self,
                                         const char        *candidate,
                                         GError           **error)
{
  g_autofree char *sdp = NULL;
  NiceCandidate *parsed;
  GSList list = { NULL, NULL };
  int added;

  g_return_val_if_fail (NATTER_IS_ICE_SESSION (self), FALSE);
  g_return_val_if_fail (candidate != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->agent == NULL || state_is_final (self->state))
    {
      g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_STATE,
                   "The ICE session is %s", natter_ice_state_to_string (self->state));
      return FALSE;
    }
  if (self->stats.remote_candidates >= NATTER_ICE_MAX_REMOTE_CANDIDATES)
    {
      g_set_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_TOO_MANY_CANDIDATES,
                   "The peer sent more than %d ICE candidates",
                   NATTER_ICE_MAX_REMOTE_CANDIDATES);
      return FALSE;
    }

  sdp = check_candidate_sdp (candidate, self->config->ice_tcp, error);
  if (sdp == NULL)
    return FALSE;

  parsed = nice_agent_parse_remote_candidate_sdp (self->agent, self->stream_id, sdp);
  if (parsed == NULL)
    return candidate_error (error, "libnice could not parse it (address not numeric?)");

  if (!check_candidate_address (parsed, error))
    {
      nice_candidate_free (parsed);
      return FALSE;
    }

  list.data = parsed;
  added = nice_agent_set_remote_candidates (self->agent, self->stream_id, COMPONENT_ID, &list);
  nice_candidate_free (parsed);
  if (added < 0)
    {
      g_set_error_literal (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_FAILED,
                           "libnice refused the remote ICE candidate");
      return FALSE;
    }

  self->stats.remote_candidates++;

  return TRUE;
}

void
natter_ice_session_remote_gathering_done (NatterIceSession *self)
{
  g_return_if_fail (NATTER_IS_ICE_SESSION (self));

  if (self->agent == NULL)
    return;

  nice_agent_peer_candidate_gathering_done (self->agent, self->stream_id);
}

gboolean
natter_ice_session_get_selected_pair (NatterIceSession  *self,
                                      NatterIcePairInfo *info)
{
  NiceCandidate *local = NULL;
  NiceCandidate *remote = NULL;

  g_return_val_if_fail (NATTER_IS_ICE_SESSION (self), FALSE);
  g_return_val_if_fail (info != NULL, FALSE);

  memset (info, 0, sizeof *info);

  if (self->agent == NULL)
    return FALSE;

  /* Asked anew each time: a remote peer-reflexive candidate becomes the
   * signaled host candidate when that arrives late. */
  if (!nice_agent_get_selected_pair (self->agent, self->stream_id, COMPONENT_ID,
                                     &local, &remote))
    return FALSE;

  G_STATIC_ASSERT (sizeof info->local_ip >= NICE_ADDRESS_STRING_LEN);
  G_STATIC_ASSERT (sizeof info->remote_ip >= NICE_ADDRESS_STRING_LEN);

  info->local_type = candidate_type_from_nice (local->type);
  info->remote_type = candidate_type_from_nice (remote->type);
  nice_address_to_string (&local->addr, info->local_ip);
  nice_address_to_string (&remote->addr, info->remote_ip);
  info->local_port = nice_address_get_port (&local->addr);
  info->remote_port = nice_address_get_port (&remote->addr);

  return TRUE;
}

void
natter_ice_session_set_datagram_func (NatterIceSession      *self,
                                      NatterIceDatagramFunc  func,
                                      gpointer               user_data,
                                      GDestroyNotify         destroy)
{
  g_return_if_fail (NATTER_IS_ICE_SESSION (self));

  clear_datagram_func (self);

  /* Once closed nothing would ever call it; release the data at once. */
  if (self->agent == NULL)
    {
      if (destroy != NULL)
        destroy (user_data);
      return;
    }

  self->datagram_func = func;
  self->datagram_data = user_data;
  self->datagram_destroy = destroy;
}

gboolean
natter_ice_session_send (NatterIceSession *self,
                         const guint8     *data,
                         gsize             len)
{
  int sent;

  g_return_val_if_fail (NATTER_IS_ICE_SESSION (self), FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);

  if (self->state != NATTER_ICE_STATE_CONNECTED)
    {
      self->stats.dropped_not_connected++;
      return FALSE;
    }
  if (len == 0 || len > NATTER_ICE_MAX_DATAGRAM_LEN)
    {
      self->stats.dropped_send_error++;
      return FALSE;
    }

  sent = nice_agent_send (self->agent, self->stream_id, COMPONENT_ID,
                          (guint) len, (const gchar *) data);
  if (sent < 0 || (gsize) sent != len)
    {
      self->stats.dropped_send_error++;
      return FALSE;
    }

  self->stats.datagrams_sent++;
  self->stats.bytes_sent += len;

  return TRUE;
}

NiceAgent *
natter_ice_session_prepare_send (NatterIceSession *self,
                                 gsize             len,
                                 guint            *stream_id,
                                 guint            *component_id)
{
  g_return_val_if_fail (NATTER_IS_ICE_SESSION (self), NULL);
  g_return_val_if_fail (stream_id != NULL && component_id != NULL, NULL);

  if (self->state != NATTER_ICE_STATE_CONNECTED)
    {
      self->stats.dropped_not_connected++;
      return NULL;
    }
  if (len == 0 || len > NATTER_ICE_MAX_DATAGRAM_LEN)
    {
      self->stats.dropped_send_error++;
      return NULL;
    }

  *stream_id = self->stream_id;
  *component_id = COMPONENT_ID;
  return self->agent;
}

gboolean
natter_ice_agent_send (NiceAgent    *agent,
                       guint         stream_id,
                       guint         component_id,
                       const guint8 *data,
                       gsize         len)
{
  int sent = nice_agent_send (agent, stream_id, component_id, (guint) len, (const gchar *) data);

  return sent >= 0 && (gsize) sent == len;
}

#define SEND_BATCH_MAX 64

void
natter_ice_agent_send_batch (NiceAgent     *agent,
                             guint          stream_id,
                             guint          component_id,
                             guint8 * const *data,
                             const gsize   *len,
                             gboolean      *sent,
                             guint          n)
{
  GOutputVector vectors[SEND_BATCH_MAX];
  NiceOutputMessage messages[SEND_BATCH_MAX];
  guint done = 0;

  while (done < n)
    {
      guint count = MIN (n - done, SEND_BATCH_MAX);
      gint result;

      for (guint i = 0; i < count; i++)
        {
          vectors[i].buffer = data[done + i];
          vectors[i].size = len[done + i];
          messages[i].buffers = &vectors[i];
          messages[i].n_buffers = 1;
        }

      /* libnice sends a batch with g_socket_send_messages() (sendmmsg()),
       * and stops at the first datagram the socket refuses: that one is
       * lost, as a single send would have lost it, and the rest go on. */
      result = nice_agent_send_messages_nonblocking (agent, stream_id, component_id,
                                                     messages, count, NULL, NULL);
      if (result <= 0)
        {
          sent[done++] = FALSE;
          continue;
        }
      for (gint i = 0; i < result; i++)
        sent[done++] = TRUE;
    }
}

void
natter_ice_session_count_send (NatterIceSession *self,
                               gsize             len,
                               gboolean          sent)
{
  g_return_if_fail (NATTER_IS_ICE_SESSION (self));

  if (!sent)
    {
      self->stats.dropped_send_error++;
      return;
    }
  self->stats.datagrams_sent++;
  self->stats.bytes_sent += len;
}

void
natter_ice_session_get_stats (NatterIceSession *self,
                              NatterIceStats   *stats)
{
  g_return_if_fail (NATTER_IS_ICE_SESSION (self));
  g_return_if_fail (stats != NULL);

  *stats = self->stats;
}

void
natter_ice_session_close_async (NatterIceSession    *self,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (NATTER_IS_ICE_SESSION (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  /* Complete on the transport context, whatever the caller has pushed. */
  g_main_context_push_thread_default (self->context);
  task = g_task_new (self, cancellable, callback, user_data);
  g_main_context_pop_thread_default (self->context);
  g_task_set_source_tag (task, natter_ice_session_close_async);

  if (self->agent == NULL)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }

  shutdown_agent (self, g_steal_pointer (&task));
  set_state (self, NATTER_ICE_STATE_CLOSED);
}

gboolean
natter_ice_session_close_finish (NatterIceSession  *self,
                                 GAsyncResult      *result,
                                 GError           **error)
{
  g_return_val_if_fail (NATTER_IS_ICE_SESSION (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == natter_ice_session_close_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

void
natter_ice_session_close (NatterIceSession *self)
{
  g_return_if_fail (NATTER_IS_ICE_SESSION (self));

  if (self->agent == NULL)
    {
      set_state (self, NATTER_ICE_STATE_CLOSED);
      return;
    }

  shutdown_agent (self, NULL);
  set_state (self, NATTER_ICE_STATE_CLOSED);
}

NiceAgent *
natter_ice_session_get_agent (NatterIceSession *self)
{
  g_return_val_if_fail (NATTER_IS_ICE_SESSION (self), NULL);

  return self->agent;
}
