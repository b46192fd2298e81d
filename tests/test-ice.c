/* test-ice.c: two ICE sessions in one process, over loopback only
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include <gio/gio.h>

#include "natter-ice.h"

/* Every session here gathers on "lo" alone and has UPnP off, so no packet
 * leaves the machine.  The test owns a private context and iterates it;
 * the default context is never used. */

#define WAIT_MS          5000
#define N_DATAGRAMS      1000
#define BATCH            50

typedef struct _Pair Pair;

typedef struct
{
  Pair             *pair;
  guint             index;
  NatterIceSession *session;
  GPtrArray        *pending;            /* local candidates not yet relayed */
  gboolean          gathering_done;
  gboolean          ever_connected;
  gboolean          failed;
  gint64            connected_us;
  guint             n_candidates;
  /* Datagrams received from the other side, by sequence number. */
  guint8           *seen;
  guint             received;
  gboolean          close_on_first_datagram;
} Side;

struct _Pair
{
  GMainContext *context;
  Side          sides[2];
  gboolean      relay_now;              /* relay as soon as emitted */
  gboolean      ipv6;
  gboolean      bad_content;
};

static gboolean
flag_cb (gpointer data)
{
  gboolean *flag = data;

  *flag = TRUE;
  return G_SOURCE_REMOVE;
}

typedef gboolean (*Condition) (gpointer data);

/* Iterates @context until @cond holds or @timeout_ms passed. */
static gboolean
iterate_until (GMainContext *context,
               Condition     cond,
               gpointer      data,
               guint         timeout_ms)
{
  gboolean timed_out = FALSE;
  GSource *timeout = g_timeout_source_new (timeout_ms);

  g_source_set_callback (timeout, flag_cb, &timed_out, NULL);
  g_source_attach (timeout, context);
  while (!cond (data) && !timed_out)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (timeout);
  g_source_unref (timeout);

  return cond (data);
}

static void
iterate_for (GMainContext *context,
             guint         ms)
{
  gboolean done = FALSE;
  GSource *timeout = g_timeout_source_new (ms);

  g_source_set_callback (timeout, flag_cb, &done, NULL);
  g_source_attach (timeout, context);
  while (!done)
    g_main_context_iteration (context, TRUE);
  g_source_unref (timeout);
}

static gboolean
pointer_is_null (gpointer data)
{
  return *(gpointer *) data == NULL;
}

/* Waits until the agent behind a released or closed session is gone: its
 * close completes on the context, and only then is everything freed. */
static void
wait_agent_gone (GMainContext  *context,
                 NiceAgent    **agent)
{
  g_assert_true (iterate_until (context, pointer_is_null, agent, WAIT_MS));
}

static NatterIceConfig *
loopback_config (gboolean ipv6)
{
  NatterIceConfig *config = natter_ice_config_new ();
  const char *lo[] = { "lo", NULL };

  natter_ice_config_set_interfaces (config, lo);
  natter_ice_config_set_ipv6 (config, ipv6);

  return config;
}

static char *
candidate_address (const char *sdp)
{
  g_auto(GStrv) tokens = g_strsplit (sdp, " ", -1);

  g_assert_cmpuint (g_strv_length (tokens), >=, 8);
  return g_strdup (tokens[4]);
}

static void
on_local_candidate (NatterIceSession *session,
                    const char       *sdp,
                    Side             *side)
{
  Pair *pair = side->pair;
  Side *other = &pair->sides[!side->index];
  g_autofree char *address = candidate_address (sdp);

  g_assert_true (g_str_has_prefix (sdp, "a=candidate:"));
  /* Nothing but loopback may ever be offered. */
  if (!g_str_equal (address, "127.0.0.1"))
    {
      g_assert_true (pair->ipv6);
      g_assert_cmpstr (address, ==, "::1");
    }
  side->n_candidates++;

  if (pair->relay_now)
    {
      g_autoptr(GError) error = NULL;

      natter_ice_session_add_remote_candidate (other->session, sdp, &error);
      g_assert_no_error (error);
    }
  else
    {
      g_ptr_array_add (side->pending, g_strdup (sdp));
    }
}

static void
on_gathering_done (NatterIceSession *session,
                   Side             *side)
{
  Pair *pair = side->pair;

  side->gathering_done = TRUE;
  if (pair->relay_now)
    natter_ice_session_remote_gathering_done (pair->sides[!side->index].session);
}

static void
on_state (NatterIceSession *session,
          GParamSpec       *pspec,
          Side             *side)
{
  switch (natter_ice_session_get_state (session))
    {
    case NATTER_ICE_STATE_CONNECTED:
      if (!side->ever_connected)
        side->connected_us = g_get_monotonic_time ();
      side->ever_connected = TRUE;
      break;
    case NATTER_ICE_STATE_FAILED:
      side->failed = TRUE;
      break;
    case NATTER_ICE_STATE_NEW:
    case NATTER_ICE_STATE_GATHERING:
    case NATTER_ICE_STATE_CONNECTING:
    case NATTER_ICE_STATE_CLOSED:
    default:
      break;
    }
}

static void
fill_payload (guint8 *buf,
              gsize   len,
              guint   seq,
              guint   from)
{
  buf[0] = seq >> 24;
  buf[1] = seq >> 16;
  buf[2] = seq >> 8;
  buf[3] = seq;
  for (gsize i = 4; i < len; i++)
    buf[i] = (guint8) (seq * 7 + i * 13 + from * 101);
}

static gsize
payload_len (guint seq)
{
  /* 16 to 1199 bytes: below the path MTU the layers above will use. */
  return 16 + (seq * 37) % 1184;
}

static void
on_datagram (NatterIceSession *session,
             const guint8     *data,
             gsize             len,
             gpointer          user_data)
{
  Side *side = user_data;
  Pair *pair = side->pair;
  guint8 expected[2048];
  guint seq;

  if (side->close_on_first_datagram)
    {
      side->received++;
      natter_ice_session_close (session);
      return;
    }

  if (len < 4)
    {
      pair->bad_content = TRUE;
      return;
    }
  seq = (guint) data[0] << 24 | (guint) data[1] << 16 | (guint) data[2] << 8 | data[3];
  if (seq >= N_DATAGRAMS || len != payload_len (seq) || side->seen[seq])
    {
      pair->bad_content = TRUE;
      return;
    }
  fill_payload (expected, len, seq, !side->index);
  if (memcmp (expected, data, len) != 0)
    {
      pair->bad_content = TRUE;
      return;
    }
  side->seen[seq] = 1;
  side->received++;
}

static Pair *
pair_new (GMainContext          *context,
          const NatterIceConfig *config,
          gboolean               relay_now)
{
  Pair *pair = g_new0 (Pair, 1);
  const char * const *interfaces = natter_ice_config_get_interfaces (config);

  /* The point of these tests: loopback only. */
  g_assert_nonnull (interfaces);
  g_assert_cmpstr (interfaces[0], ==, "lo");
  g_assert_null (interfaces[1]);

  pair->context = context;
  pair->relay_now = relay_now;
  for (guint i = 0; i < 2; i++)
    {
      Side *side = &pair->sides[i];
      gboolean upnp = TRUE;

      side->pair = pair;
      side->index = i;
      side->pending = g_ptr_array_new_with_free_func (g_free);
      side->seen = g_new0 (guint8, N_DATAGRAMS);
      side->session = natter_ice_session_new (context, i == 0, config);
      g_assert_cmpint (natter_ice_session_get_state (side->session), ==, NATTER_ICE_STATE_NEW);
      g_assert_cmpint (natter_ice_session_get_controlling (side->session), ==, i == 0);

      g_object_get (natter_ice_session_get_agent (side->session), "upnp", &upnp, NULL);
      g_assert_false (upnp);

      g_signal_connect (side->session, "local-candidate", G_CALLBACK (on_local_candidate), side);
      g_signal_connect (side->session, "gathering-done", G_CALLBACK (on_gathering_done), side);
      g_signal_connect (side->session, "notify::state", G_CALLBACK (on_state), side);
      natter_ice_session_set_datagram_func (side->session, on_datagram, side, NULL);
    }

  return pair;
}

static void
relay_credentials (Pair *pair)
{
  for (guint i = 0; i < 2; i++)
    {
      g_autofree char *ufrag = NULL;
      g_autofree char *pwd = NULL;
      g_autoptr(GError) error = NULL;

      g_assert_true (natter_ice_session_get_local_credentials (pair->sides[i].session, &ufrag, &pwd));
      natter_ice_session_set_remote_credentials (pair->sides[!i].session, ufrag, pwd, &error);
      g_assert_no_error (error);
    }
}

/* Hands over everything held back, newest first. */
static void
relay_pending_reversed (Pair *pair)
{
  for (guint i = 0; i < 2; i++)
    {
      Side *side = &pair->sides[i];

      for (guint j = side->pending->len; j > 0; j--)
        {
          g_autoptr(GError) error = NULL;

          natter_ice_session_add_remote_candidate (pair->sides[!i].session,
                                                   g_ptr_array_index (side->pending, j - 1),
                                                   &error);
          g_assert_no_error (error);
        }
      g_ptr_array_set_size (side->pending, 0);
    }
}

static void
pair_start (Pair *pair)
{
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(GError) error = NULL;

      natter_ice_session_start (pair->sides[i].session, &error);
      g_assert_no_error (error);
      g_assert_cmpint (natter_ice_session_get_state (pair->sides[i].session), !=, NATTER_ICE_STATE_NEW);
    }
}

static gboolean
both_connected (gpointer data)
{
  Pair *pair = data;

  return pair->sides[0].ever_connected && pair->sides[1].ever_connected;
}

static gboolean
both_failed (gpointer data)
{
  Pair *pair = data;

  return pair->sides[0].failed && pair->sides[1].failed;
}

/* Releases both sessions and waits until their agents are gone. */
static void
pair_free (Pair *pair)
{
  NiceAgent *agents[2] = { NULL, NULL };

  for (guint i = 0; i < 2; i++)
    {
      Side *side = &pair->sides[i];

      if (side->session == NULL)
        continue;
      agents[i] = natter_ice_session_get_agent (side->session);
      if (agents[i] != NULL)
        g_object_add_weak_pointer (G_OBJECT (agents[i]), (gpointer *) &agents[i]);
      g_clear_object (&side->session);
    }
  for (guint i = 0; i < 2; i++)
    {
      wait_agent_gone (pair->context, &agents[i]);
      g_ptr_array_unref (pair->sides[i].pending);
      g_free (pair->sides[i].seen);
    }
  g_free (pair);
}

static void
assert_loopback_host_pair (NatterIceSession *session,
                           gboolean          ipv6)
{
  NatterIcePairInfo info;

  g_assert_true (natter_ice_session_get_selected_pair (session, &info));
  g_assert_cmpint (info.local_type, ==, NATTER_ICE_CANDIDATE_HOST);
  g_assert_cmpint (info.remote_type, ==, NATTER_ICE_CANDIDATE_HOST);
  g_assert_cmpstr (natter_ice_candidate_type_to_string (info.local_type), ==, "host");
  if (ipv6 && g_str_equal (info.local_ip, "::1"))
    {
      g_assert_cmpstr (info.remote_ip, ==, "::1");
    }
  else
    {
      g_assert_cmpstr (info.local_ip, ==, "127.0.0.1");
      g_assert_cmpstr (info.remote_ip, ==, "127.0.0.1");
    }
  g_assert_cmpuint (info.local_port, !=, 0);
  g_assert_cmpuint (info.remote_port, !=, 0);
}

typedef struct
{
  Pair *pair;
  guint target;
} ReceiveWait;

static gboolean
both_received (gpointer data)
{
  ReceiveWait *wait = data;

  return wait->pair->sides[0].received >= wait->target
    && wait->pair->sides[1].received >= wait->target;
}

static void
exchange_datagrams (Pair *pair)
{
  guint8 buf[2048];

  for (guint start = 0; start < N_DATAGRAMS; start += BATCH)
    {
      ReceiveWait wait = { pair, start + BATCH };

      for (guint seq = start; seq < start + BATCH; seq++)
        {
          for (guint from = 0; from < 2; from++)
            {
              gsize len = payload_len (seq);

              fill_payload (buf, len, seq, from);
              g_assert_true (natter_ice_session_send (pair->sides[from].session, buf, len));
            }
        }
      /* In batches, so that the loopback socket buffers never overflow. */
      g_assert_true (iterate_until (pair->context, both_received, &wait, WAIT_MS));
    }

  g_assert_false (pair->bad_content);
  for (guint i = 0; i < 2; i++)
    {
      NatterIceStats stats;

      g_assert_cmpuint (pair->sides[i].received, ==, N_DATAGRAMS);
      for (guint seq = 0; seq < N_DATAGRAMS; seq++)
        g_assert_cmpuint (pair->sides[i].seen[seq], ==, 1);
      natter_ice_session_get_stats (pair->sides[i].session, &stats);
      g_assert_cmpuint (stats.datagrams_sent, ==, N_DATAGRAMS);
      g_assert_cmpuint (stats.datagrams_received, ==, N_DATAGRAMS);
      g_assert_cmpuint (stats.dropped_send_error, ==, 0);
    }
}

static GMainContext *
test_context (void)
{
  return g_main_context_new ();
}

/* Both sides trickle and the test relays each string the moment it
 * appears. */
static void
test_connect_immediate (void)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(NatterIceConfig) config = loopback_config (FALSE);
  Pair *pair = pair_new (context, config, TRUE);
  gint64 start_us;

  relay_credentials (pair);
  start_us = g_get_monotonic_time ();
  pair_start (pair);
  g_assert_true (iterate_until (context, both_connected, pair, WAIT_MS));
  g_test_message ("connected in %.1f ms",
                  (MAX (pair->sides[0].connected_us, pair->sides[1].connected_us) - start_us) / 1000.0);

  for (guint i = 0; i < 2; i++)
    {
      g_assert_cmpint (natter_ice_session_get_state (pair->sides[i].session), ==, NATTER_ICE_STATE_CONNECTED);
      g_assert_true (pair->sides[i].gathering_done);
      g_assert_cmpuint (pair->sides[i].n_candidates, >=, 1);
      assert_loopback_host_pair (pair->sides[i].session, FALSE);
    }

  exchange_datagrams (pair);
  pair_free (pair);
}

typedef struct
{
  Pair     *pair;
  gboolean  relayed;
} DelayedRelay;

static gboolean
delayed_relay_cb (gpointer data)
{
  DelayedRelay *relay = data;

  /* Reversed: candidates first (newest first), credentials after them,
   * end-of-candidates last. */
  relay_pending_reversed (relay->pair);
  relay_credentials (relay->pair);
  natter_ice_session_remote_gathering_done (relay->pair->sides[0].session);
  natter_ice_session_remote_gathering_done (relay->pair->sides[1].session);
  relay->relayed = TRUE;

  return G_SOURCE_REMOVE;
}

static gboolean
both_gathered (gpointer data)
{
  Pair *pair = data;

  return pair->sides[0].gathering_done && pair->sides[1].gathering_done;
}

/* The signaling path is slow and delivers out of order. */
static void
test_connect_delayed_reversed (void)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(NatterIceConfig) config = loopback_config (FALSE);
  Pair *pair = pair_new (context, config, FALSE);
  DelayedRelay relay = { pair, FALSE };
  GSource *source;

  pair_start (pair);
  g_assert_true (iterate_until (context, both_gathered, pair, WAIT_MS));

  source = g_timeout_source_new (50);
  g_source_set_callback (source, delayed_relay_cb, &relay, NULL);
  g_source_attach (source, context);
  g_source_unref (source);

  g_assert_true (iterate_until (context, both_connected, pair, WAIT_MS));
  g_assert_true (relay.relayed);
  for (guint i = 0; i < 2; i++)
    assert_loopback_host_pair (pair->sides[i].session, FALSE);

  exchange_datagrams (pair);
  pair_free (pair);
}

/* With IPv6 on, "lo" still yields loopback addresses only. */
static void
test_connect_ipv6 (void)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(NatterIceConfig) config = loopback_config (TRUE);
  Pair *pair = pair_new (context, config, TRUE);

  pair->ipv6 = TRUE;
  relay_credentials (pair);
  pair_start (pair);
  g_assert_true (iterate_until (context, both_connected, pair, WAIT_MS));
  for (guint i = 0; i < 2; i++)
    assert_loopback_host_pair (pair->sides[i].session, TRUE);

  pair_free (pair);
}

/* Credentials that are well formed but not the peer's: no check can be
 * authenticated, so neither side ever connects, and both give up. */
static void
test_wrong_credentials (void)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(NatterIceConfig) config = loopback_config (FALSE);
  Pair *pair;
  gint64 start_us;

  /* One retransmission and 100 ms of grace: about a second to FAILED. */
  natter_ice_config_set_check_timing (config, 1, 100);
  pair = pair_new (context, config, TRUE);
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(GError) error = NULL;

      natter_ice_session_set_remote_credentials (pair->sides[i].session,
                                                 "wrongufrag", "wrongpasswordwrongpassword",
                                                 &error);
      g_assert_no_error (error);
    }

  start_us = g_get_monotonic_time ();
  pair_start (pair);
  g_assert_true (iterate_until (context, both_failed, pair, WAIT_MS));
  g_test_message ("wrong credentials: FAILED after %.0f ms",
                  (g_get_monotonic_time () - start_us) / 1000.0);
  for (guint i = 0; i < 2; i++)
    {
      NatterIcePairInfo info;
      guint8 byte = 0;

      g_assert_false (pair->sides[i].ever_connected);
      g_assert_cmpint (natter_ice_session_get_state (pair->sides[i].session), ==, NATTER_ICE_STATE_FAILED);
      g_assert_false (natter_ice_session_get_selected_pair (pair->sides[i].session, &info));
      g_assert_false (natter_ice_session_send (pair->sides[i].session, &byte, 1));
    }

  /* FAILED is final: nothing more is taken. */
  {
    g_autoptr(GError) error = NULL;

    g_assert_false (natter_ice_session_add_remote_candidate (pair->sides[0].session,
                                                             "a=candidate:1 1 UDP 2013266431 127.0.0.1 9 typ host",
                                                             &error));
    g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_STATE);
  }

  pair_free (pair);
}

G_GNUC_UNUSED static gboolean
side0_failed (gpointer data)
{
  Pair *pair = data;

  return pair->sides[0].failed;
}

/* Only one side has the wrong credentials: still nobody connects. */
static void
test_wrong_credentials_one_side (void)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(NatterIceConfig) config = loopback_config (FALSE);
  g_autofree char *ufrag = NULL;
  g_autofree char *pwd = NULL;
  g_autoptr(GError) error = NULL;
  Pair *pair;

  natter_ice_config_set_check_timing (config, 1, 100);
  pair = pair_new (context, config, TRUE);
  g_assert_true (natter_ice_session_get_local_credentials (pair->sides[0].session, &ufrag, &pwd));
  natter_ice_session_set_remote_credentials (pair->sides[1].session, ufrag, pwd, &error);
  g_assert_no_error (error);
  natter_ice_session_set_remote_credentials (pair->sides[0].session,
                                             "wrongufrag", "wrongpasswordwrongpassword",
                                             &error);
  g_assert_no_error (error);

  pair_start (pair);
  g_assert_true (iterate_until (context, both_failed, pair, WAIT_MS));
  g_assert_false (pair->sides[0].ever_connected);
  /* The other side's checks are answered (a response needs only the
   * responder's own password), yet the pair is never valid both ways, so
   * it does not connect either. */
  g_assert_false (pair->sides[1].ever_connected);

  pair_free (pair);
}

static NatterIceSession *
unstarted_session (GMainContext *context)
{
  g_autoptr(NatterIceConfig) config = loopback_config (FALSE);

  return natter_ice_session_new (context, TRUE, config);
}

/* Untrusted input from the peer is refused with an error, never a crash
 * or a warning. */
static void
test_bad_remote_input (void)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(NatterIceSession) session = unstarted_session (context);
  g_autofree char *oversized = NULL;
  g_autofree char *long_foundation = NULL;
  NiceAgent *agent = natter_ice_session_get_agent (session);
  const char *bad[] = {
    "",
    "garbage",
    "a=candidate:",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 5000",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 5000 typ",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 5000 typ bogus",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 5000 foo host",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 5000 raddr 1.2.3.4 typ host",
    "a=candidate:1 2 UDP 2013266431 127.0.0.1 5000 typ host",
    "a=candidate:1 1 SCTP 2013266431 127.0.0.1 5000 typ host",
    "a=candidate:1 1 TCP 2013266431 127.0.0.1 5000 typ host tcptype passive",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 70000 typ host",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 0 typ host",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 -5 typ host",
    "a=candidate:1 1 UDP 99999999999 127.0.0.1 5000 typ host",
    "a=candidate:1 1 UDP +1 127.0.0.1 5000 typ host",
    "a=candidate:1 1 UDP 2013266431 example.org 5000 typ host",
    "a=candidate:1 1 UDP 2013266431 host.local 5000 typ host",
    "a=candidate:1 1 UDP 2013266431 0.0.0.0 5000 typ host",
    "a=candidate:1 1 UDP 2013266431 :: 5000 typ host",
    "a=candidate:1 1 UDP 2013266431 224.0.0.251 5353 typ host",
    "a=candidate:1 1 UDP 2013266431 ff02::fb 5353 typ host",
    "a=candidate:1 1 UDP 2013266431 255.255.255.255 5000 typ host",
    "a=candidate:1 1 UDP 2013266431 300.1.1.1 5000 typ host",
    "a=candidate:1  1 UDP 2013266431 127.0.0.1 5000 typ host",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 5000 typ host ",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 5000 typ host rport 99999",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 5000 typ srflx raddr x rport 9",
    "a=candidate:f\xc3\xa9 1 UDP 2013266431 127.0.0.1 5000 typ host",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 5000 typ host\r\n",
    "a=candidate:1 1 UDP 2013266431 127.0.0.1\t5000 typ host",
  };
  const char *good[] = {
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 5000 typ host",
    "candidate:2 1 udp 2013266431 127.0.0.1 5001 typ host generation 0 ufrag abcd network-id 1",
    "a=candidate:3 1 UDP 1677721855 127.0.0.1 5002 typ srflx raddr 127.0.0.1 rport 5000",
    "a=candidate:4 1 UDP 16777215 ::1 5003 typ relay raddr ::1 rport 5000",
  };
  const char *bad_credentials[][2] = {
    { NULL, "0123456789012345678901" },
    { "abcd", NULL },
    { "abc", "0123456789012345678901" },                 /* ufrag too short */
    { "abcd", "012345678901234567890" },                 /* password too short */
    { "ab:d", "0123456789012345678901" },                /* not an ice-char */
    { "abcd", "01234567890123456789 1" },
    { "abcd", "0123456789012345678901\n" },
  };
  NatterIceStats stats;

  g_assert_nonnull (agent);

  oversized = g_strnfill (NATTER_ICE_MAX_CANDIDATE_LEN + 100, 'x');
  memcpy (oversized, "a=candidate:", strlen ("a=candidate:"));
  long_foundation = g_strdup_printf ("a=candidate:%s 1 UDP 1 127.0.0.1 5000 typ host",
                                     "0123456789012345678901234567890123456789");

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;

      g_test_message ("refusing “%s”", bad[i]);
      g_assert_false (natter_ice_session_add_remote_candidate (session, bad[i], &error));
      g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CANDIDATE);
    }
  for (guint n = 0; n < 2; n++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_false (natter_ice_session_add_remote_candidate (session,
                                                               n == 0 ? oversized : long_foundation,
                                                               &error));
      g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CANDIDATE);
    }

  for (gsize i = 0; i < G_N_ELEMENTS (bad_credentials); i++)
    {
      g_autoptr(GError) error = NULL;

      /* NULL too is refused as input, not as a programming error: it may
       * come straight from a JSON field that was missing. */
      g_assert_false (natter_ice_session_set_remote_credentials (session, bad_credentials[i][0],
                                                                 bad_credentials[i][1], &error));
      g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CREDENTIALS);
    }

  /* Credentials are set once; the same ones again are fine. */
  {
    g_autoptr(GError) error = NULL;

    g_assert_true (natter_ice_session_set_remote_credentials (session, "abcd", "0123456789012345678901", &error));
    g_assert_no_error (error);
    g_assert_true (natter_ice_session_set_remote_credentials (session, "abcd", "0123456789012345678901", &error));
    g_assert_no_error (error);
    g_assert_false (natter_ice_session_set_remote_credentials (session, "efgh", "0123456789012345678901", &error));
    g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CREDENTIALS);
  }

  /* The session was never started, so libnice stores these and sends
   * nothing. */
  for (gsize i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (natter_ice_session_add_remote_candidate (session, good[i], &error));
      g_assert_no_error (error);
    }
  natter_ice_session_get_stats (session, &stats);
  g_assert_cmpuint (stats.remote_candidates, ==, G_N_ELEMENTS (good));

  /* The cap. */
  for (guint port = 6000; stats.remote_candidates < NATTER_ICE_MAX_REMOTE_CANDIDATES; port++)
    {
      g_autofree char *sdp = g_strdup_printf ("a=candidate:9 1 UDP 2013266431 127.0.0.1 %u typ host", port);
      g_autoptr(GError) error = NULL;

      g_assert_true (natter_ice_session_add_remote_candidate (session, sdp, &error));
      g_assert_no_error (error);
      natter_ice_session_get_stats (session, &stats);
    }
  {
    g_autoptr(GError) error = NULL;

    g_assert_false (natter_ice_session_add_remote_candidate (session, good[0], &error));
    g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_TOO_MANY_CANDIDATES);
  }

  g_object_add_weak_pointer (G_OBJECT (agent), (gpointer *) &agent);
  g_clear_object (&session);
  wait_agent_gone (context, &agent);
}

/* ICE-TCP, once allowed, takes TCP candidates with a tcptype. */
static void
test_ice_tcp_candidates (void)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(NatterIceConfig) config = loopback_config (FALSE);
  g_autoptr(NatterIceSession) session = NULL;
  g_autoptr(GError) error = NULL;
  NiceAgent *agent;
  gboolean ice_tcp = FALSE;

  natter_ice_config_set_ice_tcp (config, TRUE);
  session = natter_ice_session_new (context, FALSE, config);
  agent = natter_ice_session_get_agent (session);
  g_object_get (agent, "ice-tcp", &ice_tcp, NULL);
  g_assert_true (ice_tcp);

  g_assert_true (natter_ice_session_add_remote_candidate (session,
                                                          "a=candidate:1 1 TCP 1015021823 127.0.0.1 9 typ host tcptype active",
                                                          &error));
  g_assert_no_error (error);
  g_assert_false (natter_ice_session_add_remote_candidate (session,
                                                           "a=candidate:1 1 TCP 1015021823 127.0.0.1 9 typ host",
                                                           &error));
  g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CANDIDATE);

  g_object_add_weak_pointer (G_OBJECT (agent), (gpointer *) &agent);
  g_clear_object (&session);
  wait_agent_gone (context, &agent);
}

static void
test_defaults (void)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(NatterIceConfig) config = loopback_config (FALSE);
  g_autoptr(NatterIceSession) session = natter_ice_session_new (context, TRUE, config);
  NiceAgent *agent = natter_ice_session_get_agent (session);
  g_autofree char *stun_server = NULL;
  g_autofree char *ufrag = NULL;
  g_autofree char *pwd = NULL;
  gboolean upnp = TRUE;
  gboolean ice_tcp = TRUE;
  gboolean trickle = FALSE;
  gboolean consent = FALSE;
  gboolean controlling = FALSE;
  GMainContext *agent_context = NULL;

  g_object_get (agent,
                "upnp", &upnp,
                "ice-tcp", &ice_tcp,
                "ice-trickle", &trickle,
                "consent-freshness", &consent,
                "controlling-mode", &controlling,
                "stun-server", &stun_server,
                "main-context", &agent_context,
                NULL);
  g_assert_false (upnp);
  g_assert_false (ice_tcp);
  g_assert_true (trickle);
  g_assert_cmpint (consent, ==, NATTER_NICE_CONSENT_FRESHNESS);
  g_assert_true (controlling);
  /* No server is built in. */
  g_assert_null (stun_server);
  /* The agent runs in a context of its own, which the loop hub drives
   * from the session's (natter-loop-hub.c): never the session's itself,
   * and its sources run on this thread, from this context. */
  g_assert_nonnull (agent_context);
  g_assert_true (agent_context != context);

  /* Credentials exist from the start, for the first signaling message. */
  g_assert_true (natter_ice_session_get_local_credentials (session, &ufrag, &pwd));
  g_assert_cmpuint (strlen (ufrag), >=, 4);
  g_assert_cmpuint (strlen (pwd), >=, 22);

  g_object_add_weak_pointer (G_OBJECT (agent), (gpointer *) &agent);
  g_clear_object (&session);
  wait_agent_gone (context, &agent);
}

static void
test_config (void)
{
  g_autoptr(NatterIceConfig) config = natter_ice_config_new ();
  g_autoptr(NatterIceConfig) copy = NULL;
  g_autoptr(GError) error = NULL;
  const char *names[] = { "lo", "", "eth0", NULL };

  g_assert_null (natter_ice_config_get_interfaces (config)[0]);
  natter_ice_config_set_interfaces (config, names);
  g_assert_cmpstr (natter_ice_config_get_interfaces (config)[0], ==, "lo");
  g_assert_cmpstr (natter_ice_config_get_interfaces (config)[1], ==, "eth0");
  g_assert_null (natter_ice_config_get_interfaces (config)[2]);

  g_assert_true (natter_ice_config_set_stun_server (config, "127.0.0.1", 3478, &error));
  g_assert_no_error (error);
  g_assert_false (natter_ice_config_set_stun_server (config, "", 3478, &error));
  g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CONFIG);
  g_clear_error (&error);
  g_assert_false (natter_ice_config_set_stun_server (config, "stun.example.org", 0, &error));
  g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CONFIG);
  g_clear_error (&error);
  g_assert_false (natter_ice_config_set_stun_server (config, "a b", 3478, &error));
  g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CONFIG);
  g_clear_error (&error);

  for (guint i = 0; i < NATTER_ICE_MAX_TURN_SERVERS; i++)
    {
      g_assert_true (natter_ice_config_add_turn_server (config, "127.0.0.1", 3478 + i, "user", "secret", &error));
      g_assert_no_error (error);
    }
  g_assert_false (natter_ice_config_add_turn_server (config, "127.0.0.1", 4000, "user", "secret", &error));
  g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_INVALID_CONFIG);
  g_clear_error (&error);

  copy = natter_ice_config_copy (config);
  g_assert_cmpstr (natter_ice_config_get_interfaces (copy)[1], ==, "eth0");
  natter_ice_config_clear_turn_servers (config);
  g_assert_true (natter_ice_config_add_turn_server (config, "127.0.0.1", 4000, "user", "secret", &error));
  g_assert_no_error (error);
}

static void
test_interfaces_from_env (void)
{
  g_auto(GStrv) names = NULL;
  g_autofree char *saved = g_strdup (g_getenv ("NATTER_INTERFACES"));

  g_setenv ("NATTER_INTERFACES", " lo , eth0,,wlan0 ", TRUE);
  names = natter_ice_interfaces_from_env ();
  g_assert_nonnull (names);
  g_assert_cmpuint (g_strv_length (names), ==, 3);
  g_assert_cmpstr (names[0], ==, "lo");
  g_assert_cmpstr (names[1], ==, "eth0");
  g_assert_cmpstr (names[2], ==, "wlan0");
  g_clear_pointer (&names, g_strfreev);

  g_setenv ("NATTER_INTERFACES", " , ", TRUE);
  g_assert_null (natter_ice_interfaces_from_env ());
  g_unsetenv ("NATTER_INTERFACES");
  g_assert_null (natter_ice_interfaces_from_env ());

  if (saved != NULL)
    g_setenv ("NATTER_INTERFACES", saved, TRUE);
}

static void
count_candidate (NatterIceSession *session,
                 const char       *sdp,
                 guint            *count)
{
  (*count)++;
}

/* A named interface that does not exist must not widen gathering to every
 * interface. */
static void
test_missing_interface (void)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(NatterIceConfig) config = natter_ice_config_new ();
  g_autoptr(NatterIceSession) session = NULL;
  g_autoptr(GError) error = NULL;
  const char *names[] = { "natter-none0", NULL };
  NiceAgent *agent;
  guint count = 0;

  natter_ice_config_set_interfaces (config, names);
  session = natter_ice_session_new (context, TRUE, config);
  g_signal_connect (session, "local-candidate", G_CALLBACK (count_candidate), &count);
  g_assert_false (natter_ice_session_start (session, &error));
  g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_NO_INTERFACE);
  g_assert_cmpuint (count, ==, 0);
  g_assert_cmpint (natter_ice_session_get_state (session), ==, NATTER_ICE_STATE_NEW);

  agent = natter_ice_session_get_agent (session);
  g_object_add_weak_pointer (G_OBJECT (agent), (gpointer *) &agent);
  g_clear_object (&session);
  wait_agent_gone (context, &agent);
}

/* A STUN and a TURN "server" on loopback that never answer keep gathering
 * going for seconds. */
static GSocket *
silent_udp_socket (guint16 *port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) bind_address = g_inet_socket_address_new (lo, 0);
  g_autoptr(GSocketAddress) local = NULL;
  GSocket *socket;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  g_socket_bind (socket, bind_address, FALSE, &error);
  g_assert_no_error (error);
  local = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));

  return socket;
}

static void
run_close_while_gathering (gboolean explicit_close)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(NatterIceConfig) config = loopback_config (FALSE);
  g_autoptr(GSocket) server = NULL;
  g_autoptr(GError) error = NULL;
  NatterIceSession *session;
  NiceAgent *agent;
  guint16 port;
  gboolean gathered = FALSE;

  server = silent_udp_socket (&port);
  g_assert_true (natter_ice_config_set_stun_server (config, "127.0.0.1", port, &error));
  g_assert_no_error (error);
  g_assert_true (natter_ice_config_add_turn_server (config, "127.0.0.1", port, "user", "secret", &error));
  g_assert_no_error (error);

  session = natter_ice_session_new (context, TRUE, config);
  g_signal_connect_swapped (session, "gathering-done", G_CALLBACK (flag_cb), &gathered);
  g_assert_true (natter_ice_session_start (session, &error));
  g_assert_no_error (error);
  iterate_for (context, 30);
  g_assert_false (gathered);
  g_assert_cmpint (natter_ice_session_get_state (session), ==, NATTER_ICE_STATE_GATHERING);

  agent = natter_ice_session_get_agent (session);
  g_object_add_weak_pointer (G_OBJECT (agent), (gpointer *) &agent);
  if (explicit_close)
    {
      natter_ice_session_close (session);
      g_assert_cmpint (natter_ice_session_get_state (session), ==, NATTER_ICE_STATE_CLOSED);
      g_assert_null (natter_ice_session_get_agent (session));
    }
  g_object_unref (session);
  wait_agent_gone (context, &agent);
  g_assert_false (gathered);
}

static void
test_close_while_gathering (void)
{
  run_close_while_gathering (TRUE);
}

static void
test_release_while_gathering (void)
{
  run_close_while_gathering (FALSE);
}

/* Side 0 is told of a peer that never answers (a silent socket, with side
 * 1's credentials), so it keeps checking for seconds. */
static Pair *
connecting_pair (GMainContext  *context,
                 GSocket      **silent)
{
  g_autoptr(NatterIceConfig) config = loopback_config (FALSE);
  Pair *pair = pair_new (context, config, FALSE);
  g_autofree char *ufrag = NULL;
  g_autofree char *pwd = NULL;
  g_autofree char *sdp = NULL;
  g_autoptr(GError) error = NULL;
  guint16 port;

  *silent = silent_udp_socket (&port);
  pair_start (pair);
  g_assert_true (natter_ice_session_get_local_credentials (pair->sides[1].session, &ufrag, &pwd));
  g_assert_true (natter_ice_session_set_remote_credentials (pair->sides[0].session, ufrag, pwd, &error));
  g_assert_no_error (error);
  sdp = g_strdup_printf ("a=candidate:1 1 UDP 2013266431 127.0.0.1 %u typ host", port);
  g_assert_true (natter_ice_session_add_remote_candidate (pair->sides[0].session, sdp, &error));
  g_assert_no_error (error);
  iterate_for (context, 50);
  g_assert_cmpint (natter_ice_session_get_state (pair->sides[0].session), ==, NATTER_ICE_STATE_CONNECTING);
  g_assert_false (pair->sides[0].ever_connected);

  return pair;
}

static void
test_close_while_connecting (void)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(GSocket) silent = NULL;
  Pair *pair = connecting_pair (context, &silent);

  for (guint i = 0; i < 2; i++)
    {
      natter_ice_session_close (pair->sides[i].session);
      g_assert_cmpint (natter_ice_session_get_state (pair->sides[i].session), ==, NATTER_ICE_STATE_CLOSED);
    }
  /* Closing twice is harmless. */
  natter_ice_session_close (pair->sides[0].session);
  iterate_for (context, 50);
  pair_free (pair);
}

static void
test_release_while_connecting (void)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(GSocket) silent = NULL;
  Pair *pair = connecting_pair (context, &silent);

  pair_free (pair);
}

static Pair *
connected_pair (GMainContext *context)
{
  g_autoptr(NatterIceConfig) config = loopback_config (FALSE);
  Pair *pair = pair_new (context, config, TRUE);

  relay_credentials (pair);
  pair_start (pair);
  g_assert_true (iterate_until (context, both_connected, pair, WAIT_MS));

  return pair;
}

static void
on_closed (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  gboolean *closed = user_data;
  g_autoptr(GError) error = NULL;

  g_assert_true (natter_ice_session_close_finish (NATTER_ICE_SESSION (source), result, &error));
  g_assert_no_error (error);
  *closed = TRUE;
}

static gboolean
is_true (gpointer data)
{
  return *(gboolean *) data;
}

static void
test_close_when_connected (void)
{
  g_autoptr(GMainContext) context = test_context ();
  Pair *pair = connected_pair (context);
  gboolean closed = FALSE;
  guint8 byte = 1;
  NatterIceStats stats;
  g_autoptr(GError) error = NULL;

  natter_ice_session_close_async (pair->sides[0].session, NULL, on_closed, &closed);
  g_assert_cmpint (natter_ice_session_get_state (pair->sides[0].session), ==, NATTER_ICE_STATE_CLOSED);
  g_assert_true (iterate_until (context, is_true, &closed, WAIT_MS));

  g_assert_false (natter_ice_session_send (pair->sides[0].session, &byte, 1));
  natter_ice_session_get_stats (pair->sides[0].session, &stats);
  g_assert_cmpuint (stats.dropped_not_connected, ==, 1);
  g_assert_false (natter_ice_session_add_remote_candidate (pair->sides[0].session,
                                                           "a=candidate:1 1 UDP 2013266431 127.0.0.1 9 typ host",
                                                           &error));
  g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_STATE);

  /* The other side still thinks it is connected; its datagrams go nowhere
   * and nothing calls back into the closed session. */
  for (guint i = 0; i < 10; i++)
    natter_ice_session_send (pair->sides[1].session, &byte, 1);
  iterate_for (context, 50);
  g_assert_cmpuint (pair->sides[0].received, ==, 0);

  closed = FALSE;
  natter_ice_session_close_async (pair->sides[1].session, NULL, on_closed, &closed);
  g_assert_true (iterate_until (context, is_true, &closed, WAIT_MS));
  /* Once closed, close_async completes at once. */
  closed = FALSE;
  natter_ice_session_close_async (pair->sides[1].session, NULL, on_closed, &closed);
  g_assert_true (iterate_until (context, is_true, &closed, WAIT_MS));

  pair_free (pair);
}

static void
test_release_when_connected (void)
{
  g_autoptr(GMainContext) context = test_context ();
  Pair *pair = connected_pair (context);
  guint8 byte = 1;

  /* Traffic in flight when both go away. */
  for (guint i = 0; i < 10; i++)
    {
      natter_ice_session_send (pair->sides[0].session, &byte, 1);
      natter_ice_session_send (pair->sides[1].session, &byte, 1);
    }
  pair_free (pair);
  iterate_for (context, 20);
}

static gboolean
side1_received (gpointer data)
{
  Pair *pair = data;

  return pair->sides[1].received > 0;
}

/* The datagram function may close the session that called it. */
static void
test_close_from_datagram (void)
{
  g_autoptr(GMainContext) context = test_context ();
  Pair *pair = connected_pair (context);
  guint8 bytes[8] = { 0 };

  pair->sides[1].close_on_first_datagram = TRUE;
  for (guint i = 0; i < 20; i++)
    g_assert_true (natter_ice_session_send (pair->sides[0].session, bytes, sizeof bytes));
  g_assert_true (iterate_until (context, side1_received, pair, WAIT_MS));
  iterate_for (context, 50);
  g_assert_cmpuint (pair->sides[1].received, ==, 1);
  g_assert_cmpint (natter_ice_session_get_state (pair->sides[1].session), ==, NATTER_ICE_STATE_CLOSED);

  pair_free (pair);
}

/* A quiet pair stays alive for longer than a consent interval; with
 * consent freshness, a peer that vanished is noticed too. */
static void
test_consent (void)
{
  g_autoptr(GMainContext) context = NULL;
  Pair *pair;
  gint64 closed_us;

  context = test_context ();
  pair = connected_pair (context);
  /* Longer than one consent interval (5 s) with no traffic at all. */
  iterate_for (context, 7000);
  g_assert_false (pair->sides[0].failed);
  g_assert_false (pair->sides[1].failed);
  g_assert_cmpint (natter_ice_session_get_state (pair->sides[0].session), ==, NATTER_ICE_STATE_CONNECTED);

#if NATTER_NICE_CONSENT_FRESHNESS
  natter_ice_session_close (pair->sides[1].session);
  closed_us = g_get_monotonic_time ();
  g_assert_true (iterate_until (context, side0_failed, pair, 60000));
  g_test_message ("peer gone: FAILED after %.1f s", (g_get_monotonic_time () - closed_us) / 1e6);
#else
  /* Without consent freshness (libnice < 0.1.22) a vanished peer is the
   * peer connection's to notice: see /peer-connection tests and
   * tests/netns/transport-test.py. */
  (void) closed_us;
  g_test_message ("libnice < 0.1.22: consent freshness off, liveness is checked above ICE");
#endif

  pair_free (pair);
}

static void
test_send_before_connected (void)
{
  g_autoptr(GMainContext) context = test_context ();
  g_autoptr(NatterIceSession) session = unstarted_session (context);
  NiceAgent *agent = natter_ice_session_get_agent (session);
  guint8 byte = 0;
  NatterIceStats stats;
  g_autoptr(GError) error = NULL;

  g_assert_false (natter_ice_session_send (session, &byte, 1));
  natter_ice_session_get_stats (session, &stats);
  g_assert_cmpuint (stats.dropped_not_connected, ==, 1);
  g_assert_cmpuint (stats.datagrams_sent, ==, 0);

  g_assert_true (natter_ice_session_start (session, &error));
  g_assert_no_error (error);
  g_assert_false (natter_ice_session_start (session, &error));
  g_assert_error (error, NATTER_ICE_ERROR, NATTER_ICE_ERROR_STATE);

  g_object_add_weak_pointer (G_OBJECT (agent), (gpointer *) &agent);
  g_clear_object (&session);
  wait_agent_gone (context, &agent);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/ice/config", test_config);
  g_test_add_func ("/ice/interfaces-from-env", test_interfaces_from_env);
  g_test_add_func ("/ice/defaults", test_defaults);
  g_test_add_func ("/ice/missing-interface", test_missing_interface);
  g_test_add_func ("/ice/bad-remote-input", test_bad_remote_input);
  g_test_add_func ("/ice/ice-tcp-candidates", test_ice_tcp_candidates);
  g_test_add_func ("/ice/send-before-connected", test_send_before_connected);
  g_test_add_func ("/ice/connect/immediate", test_connect_immediate);
  g_test_add_func ("/ice/connect/delayed-reversed", test_connect_delayed_reversed);
  g_test_add_func ("/ice/connect/ipv6", test_connect_ipv6);
  g_test_add_func ("/ice/connect/consent", test_consent);
  g_test_add_func ("/ice/wrong-credentials/both", test_wrong_credentials);
  g_test_add_func ("/ice/wrong-credentials/one-side", test_wrong_credentials_one_side);
  g_test_add_func ("/ice/close/gathering", test_close_while_gathering);
  g_test_add_func ("/ice/close/connecting", test_close_while_connecting);
  g_test_add_func ("/ice/close/connected", test_close_when_connected);
  g_test_add_func ("/ice/close/from-datagram", test_close_from_datagram);
  g_test_add_func ("/ice/release/gathering", test_release_while_gathering);
  g_test_add_func ("/ice/release/connecting", test_release_while_connecting);
  g_test_add_func ("/ice/release/connected", test_release_when_connected);

  return g_test_run ();
}
