/* test-groups.c: group conversations between many messaging services
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Usage: test-groups PATH-TO-natter-rendezvous [GTest options]
 * Every case runs 4 to 16 NatterMessagingServices in this process, each
 * with its own profile in a temporary folder, signaled through one
 * natter-rendezvous process on 127.0.0.1; ICE on lo only.  Faults (loss,
 * delay, partitions) are injected in front of the connections by
 * natter_groups_set_faults() and natter_groups_set_blocked().
 */

#include "config.h"

#include <string.h>

#include <sqlite3.h>

#include "natter-crypto.h"
#include "natter-group-cluster.h"
#include "natter-groups-private.h"
#include "natter-message.h"

static const char *server_path;

/* A warning the test provokes on purpose (a pattern), and how many came.
 * g_test_expect_message() does not see structured logging, which the
 * project uses, so a writer sets such a warning aside. */
static const char *expected_warning;
static gint expected_seen;

static GLogWriterOutput
log_writer (GLogLevelFlags   level,
            const GLogField *fields,
            gsize            n_fields,
            gpointer         user_data)
{
  const char *pattern = g_atomic_pointer_get (&expected_warning);

  if (pattern != NULL && (level & G_LOG_LEVEL_WARNING) != 0)
    for (gsize i = 0; i < n_fields; i++)
      if (strcmp (fields[i].key, "MESSAGE") == 0 && fields[i].length < 0 &&
          g_pattern_match_simple (pattern, fields[i].value))
        {
          g_atomic_int_inc (&expected_seen);
          return G_LOG_WRITER_HANDLED;
        }
  return g_log_writer_default (level, fields, n_fields, user_data);
}

/* Sanitizer builds run several times slower: every wait scales. */
#define SLOW (cluster_slowdown ())

static Cluster *
start_cluster (guint n,
               guint fanout)
{
  g_autoptr(GError) error = NULL;
  Cluster *cluster = cluster_new (server_path, n, &error);

  g_assert_no_error (error);
  g_assert_nonnull (cluster);
  g_assert_true (cluster_befriend (cluster, 0, 60 * SLOW));
  if (!cluster_create_group (cluster, 0, fanout, 90))
    {
      /* Sanitizer builds: one transport thread for hundreds of sockets is
       * too slow for every connection of the mesh to come up.  The
       * protocol does not need them all (trees skip missing links, sync
       * fills in), but every member must have joined and reach the
       * admin. */
      g_assert_true (SLOW > 1.0);
      g_assert_true (cluster_star_ready (cluster, 0));
      g_test_message ("partial mesh: going on with every member connected to the admin");
    }
  return cluster;
}

typedef struct
{
  Cluster *cluster;
  guint    expected;
} Expect;

static gboolean
all_have (gpointer data)
{
  Expect *expect = data;

  for (guint i = 0; i < expect->cluster->nodes->len; i++)
    if (!cluster_node (expect->cluster, i)->stopped &&
        cluster_history_length (expect->cluster, i) < expect->expected)
      return FALSE;
  return TRUE;
}

static gboolean
all_equal (gpointer data)
{
  Cluster *cluster = data;
  g_autofree char *reference = NULL;

  for (guint i = 0; i < cluster->nodes->len; i++)
    {
      g_autofree char *history = NULL;

      if (cluster_node (cluster, i)->stopped)
        continue;
      history = cluster_history_string (cluster, i);
      if (reference == NULL)
        reference = g_steal_pointer (&history);
      else if (strcmp (reference, history) != 0)
        return FALSE;
    }
  return TRUE;
}

static NatterMessage *
decode_wire (ClusterNode *node,
             const char  *group_id,
             const char  *msg_id)
{
  g_autoptr(GBytes) wire = natter_groups_dup_wire (node->groups, group_id, msg_id);
  g_autoptr(GError) error = NULL;
  NatterMessage *message;

  g_assert_nonnull (wire);
  message = natter_message_decode (wire, NATTER_MESSAGE_DECODE_VERIFY, &error);
  g_assert_no_error (error);
  return message;
}

/* Every message once, and no message before one that happened before it. */
static void
check_causal (Cluster *cluster,
              guint    index)
{
  ClusterNode *node = cluster_node (cluster, index);
  g_autoptr(GPtrArray) history = natter_groups_get_history (node->groups, cluster->group_id);
  g_autoptr(GPtrArray) clocks = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_message_unref);
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);

  for (guint i = 0; i < history->len; i++)
    {
      NatterGroupMessage *message = g_ptr_array_index (history, i);

      g_assert_false (g_hash_table_contains (seen, message->msg_id));
      g_hash_table_add (seen, message->msg_id);
      g_ptr_array_add (clocks, decode_wire (node, cluster->group_id, message->msg_id));
    }
  for (guint j = 0; j < clocks->len; j++)
    {
      NatterMessage *later = g_ptr_array_index (clocks, j);

      for (guint i = 0; i < j; i++)
        {
          NatterMessage *earlier = g_ptr_array_index (clocks, i);
          GHashTableIter iter;
          gpointer key, value;
          gboolean later_le_earlier = TRUE;

          /* "later" must not happen before "earlier": not VC(later) <= VC(earlier). */
          g_hash_table_iter_init (&iter, later->vector_clock);
          while (g_hash_table_iter_next (&iter, &key, &value))
            if (*(guint64 *) value > natter_message_get_clock (earlier, key))
              later_le_earlier = FALSE;
          g_assert_false (later_le_earlier);
        }
    }
}

/* Done when 1: twelve members, random delays, loss and a partition; every
 * member ends with the same history, exactly once, in causal order. */
static void
test_convergence (void)
{
  g_autoptr(Cluster) cluster = start_cluster (12, 3);
  guint per_member = 15;
  guint n = cluster->nodes->len;
  Expect expect = { cluster, n * per_member };

  for (guint i = 0; i < n; i++)
    natter_groups_set_faults (cluster_node (cluster, i)->groups, 0.05, 0, 40);

  for (guint round = 0; round < per_member; round++)
    {
      /* Members 10 and 11 are cut off from everyone in rounds 4 to 9. */
      if (round == 4 || round == 10)
        for (guint i = 0; i < n; i++)
          for (guint j = 10; j < 12; j++)
            if (i != j)
              {
                gboolean blocked = round == 4;

                natter_groups_set_blocked (cluster_node (cluster, i)->groups,
                                           cluster_node (cluster, j)->peer_id, blocked);
                natter_groups_set_blocked (cluster_node (cluster, j)->groups,
                                           cluster_node (cluster, i)->peer_id, blocked);
              }
      for (guint i = 0; i < n; i++)
        {
          g_autoptr(GError) error = NULL;
          g_autofree char *text = g_strdup_printf ("m%u r%u", i, round);
          g_autofree char *msg_id = natter_groups_send_text (cluster_node (cluster, i)->groups,
                                                             cluster->group_id, text, &error);

          g_assert_no_error (error);
          g_assert_nonnull (msg_id);
          if (g_random_int_range (0, 3) == 0)
            cluster_sleep (0.01);
        }
      cluster_sleep (0.15);
    }
  for (guint i = 0; i < n; i++)
    natter_groups_set_faults (cluster_node (cluster, i)->groups, 0.0, 0, 0);

  g_assert_true (cluster_wait (all_have, &expect, 90 * SLOW));
  g_assert_true (cluster_wait (all_equal, cluster, 30 * SLOW));
  for (guint i = 0; i < n; i++)
    g_assert_cmpuint (cluster_history_length (cluster, i), ==, n * per_member);
  check_causal (cluster, 0);
  {
    NatterGroupsStats stats;

    natter_groups_get_stats (cluster_node (cluster, 11)->groups, &stats);
    g_test_message ("member 11: %" G_GUINT64_FORMAT " pulled, %" G_GUINT64_FORMAT " duplicates",
                    stats.pulled, stats.duplicates);
    g_assert_cmpuint (stats.pulled, >, 0);
  }
}

static gboolean
groups_has_key (NatterGroups *groups,
                       const char   *group_id,
                       const char   *key_id)
{
  g_autoptr(GBytes) key = natter_groups_dup_key (groups, group_id, key_id);

  return key != NULL;
}

typedef struct
{
  Cluster    *cluster;
  guint       index;
  const char *peer;
  gboolean    member;
} MemberCheck;

static gboolean
membership_is (gpointer data)
{
  MemberCheck *check = data;
  ClusterNode *node = cluster_node (check->cluster, check->index);
  g_autoptr(NatterGroupInfo) info = natter_groups_get_info (node->groups, check->cluster->group_id);

  return info != NULL &&
         g_strv_contains ((const char * const *) info->members, check->peer) == check->member;
}

static gboolean
removed_is_set (gpointer data)
{
  MemberCheck *check = data;
  ClusterNode *node = cluster_node (check->cluster, check->index);
  g_autoptr(NatterGroupInfo) info = natter_groups_get_info (node->groups, check->cluster->group_id);

  return info != NULL && info->removed;
}

typedef struct
{
  Cluster *cluster;
  guint    expected;
} Rejected;

static gboolean
all_rejected (gpointer data)
{
  Rejected *rejected = data;

  for (guint i = 0; i < rejected->cluster->nodes->len; i++)
    if (!cluster_node (rejected->cluster, i)->stopped &&
        cluster_node (rejected->cluster, i)->rejected_ops < rejected->expected)
      return FALSE;
  return TRUE;
}

/* Done when 2 and 3: a forged operation from a non-admin is rejected by
 * every member; a removed member cannot read what is sent after. */
static void
test_membership (void)
{
  g_autoptr(Cluster) cluster = start_cluster (5, 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterGroupInfo) before = NULL;
  g_autoptr(NatterGroupInfo) after = NULL;
  g_autoptr(GBytes) old_key = NULL;
  g_autoptr(GBytes) wire = NULL;
  g_autoptr(NatterMessage) message = NULL;
  g_autofree char *forged = NULL;
  g_autofree char *secret = NULL;
  g_autofree char *first = NULL;
  ClusterNode *admin = cluster_node (cluster, 0);
  ClusterNode *mallory = cluster_node (cluster, 4);
  ClusterNode *bob = cluster_node (cluster, 1);
  Rejected rejected = { cluster, 1 };
  Expect expect = { cluster, 1 };

  /* Everyone sees a first message. */
  first = natter_groups_send_text (admin->groups, cluster->group_id, "hello", &error);
  g_assert_no_error (error);
  g_assert_true (cluster_wait (all_have, &expect, 20 * SLOW));

  /* Done when 3: member 4 forges the removal of member 1. */
  g_assert_false (natter_groups_remove (mallory->groups, cluster->group_id, bob->peer_id, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED);
  g_clear_error (&error);
  forged = natter_groups_forge_op (mallory->groups, cluster->group_id, "remove", bob->peer_id, &error);
  g_assert_no_error (error);
  g_assert_true (cluster_wait (all_rejected, &rejected, 20 * SLOW));
  for (guint i = 0; i < cluster->nodes->len; i++)
    {
      g_autoptr(NatterGroupInfo) info = natter_groups_get_info (cluster_node (cluster, i)->groups,
                                                                cluster->group_id);

      g_assert_true (g_strv_contains ((const char * const *) info->members, bob->peer_id));
      g_assert_cmpstr (info->admin, ==, admin->peer_id);
    }
  /* And a forged handover. */
  g_free (natter_groups_forge_op (mallory->groups, cluster->group_id, "admin", mallory->peer_id, &error));
  g_assert_no_error (error);
  rejected.expected = 2;
  g_assert_true (cluster_wait (all_rejected, &rejected, 20 * SLOW));

  /* Done when 2: the admin removes member 4; the key rotates. */
  before = natter_groups_get_info (mallory->groups, cluster->group_id);
  old_key = natter_groups_dup_key (mallory->groups, cluster->group_id, before->key_id);
  g_assert_nonnull (old_key);
  g_assert_true (natter_groups_remove (admin->groups, cluster->group_id, mallory->peer_id, &error));
  g_assert_no_error (error);
  {
    MemberCheck gone = { cluster, 4, mallory->peer_id, TRUE };

    g_assert_true (cluster_wait (removed_is_set, &gone, 20 * SLOW));
    for (guint i = 0; i < 4; i++)
      {
        MemberCheck check = { cluster, i, mallory->peer_id, FALSE };

        g_assert_true (cluster_wait (membership_is, &check, 20 * SLOW));
      }
  }
  after = natter_groups_get_info (admin->groups, cluster->group_id);
  g_assert_cmpstr (after->key_id, !=, before->key_id);
  /* The new key reaches the remaining members pairwise. */
  {
    gboolean done = FALSE;

    for (guint tries = 0; tries < 200 && !done; tries++)
      {
        done = TRUE;
        for (guint i = 0; i < 4; i++)
          done &= groups_has_key (cluster_node (cluster, i)->groups, cluster->group_id, after->key_id);
        if (!done)
          cluster_sleep (0.05);
      }
    g_assert_true (done);
  }

  /* Bob writes after the removal. */
  secret = natter_groups_send_text (bob->groups, cluster->group_id, "after the removal", &error);
  g_assert_no_error (error);
  expect.expected = cluster_history_length (cluster, 1);
  {
    /* The remaining four get it; member 4 does not. */
    gboolean done = FALSE;

    for (guint tries = 0; tries < 200 && !done; tries++)
      {
        done = TRUE;
        for (guint i = 0; i < 4; i++)
          if (natter_groups_dup_wire (cluster_node (cluster, i)->groups, cluster->group_id, secret) == NULL)
            done = FALSE;
          else
            g_bytes_unref (natter_groups_dup_wire (cluster_node (cluster, i)->groups, cluster->group_id, secret));
        if (!done)
          cluster_sleep (0.1);
      }
    g_assert_true (done);
  }
  g_assert_null (natter_groups_dup_wire (mallory->groups, cluster->group_id, secret));

  /* The removed member tries the captured ciphertext with its old key. */
  wire = natter_groups_dup_wire (admin->groups, cluster->group_id, secret);
  message = natter_message_decode (wire, NATTER_MESSAGE_DECODE_VERIFY, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (message->key_id, ==, after->key_id);
  g_assert_false (natter_message_decrypt_for_group (message, g_bytes_get_data (old_key, NULL),
                                                    g_bytes_get_size (old_key), before->key_id, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED);
  g_clear_error (&error);
  g_assert_false (natter_message_decrypt_for_group (message, g_bytes_get_data (old_key, NULL),
                                                    g_bytes_get_size (old_key), after->key_id, &error));
  g_assert_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_DECRYPT_FAILED);
  g_clear_error (&error);
  /* It holds no key but the old one. */
  g_assert_null (natter_groups_dup_key (mallory->groups, cluster->group_id, after->key_id));
  /* And it can no longer send. */
  g_assert_null (natter_groups_send_text (mallory->groups, cluster->group_id, "still here?", &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED);
  g_clear_error (&error);

  /* Receipts: bob's message is delivered to the three others. */
  {
    gboolean done = FALSE;

    for (guint tries = 0; tries < 100 && !done; tries++)
      {
        g_auto(GStrv) delivered = NULL;
        g_auto(GStrv) read = NULL;
        guint total = 0;

        g_assert_true (natter_groups_get_receipts (bob->groups, cluster->group_id, secret,
                                                   &delivered, &read, &total));
        g_assert_cmpuint (total, ==, 3);
        done = g_strv_length (delivered) == 3;
        if (!done)
          cluster_sleep (0.1);
      }
    g_assert_true (done);
  }
  /* Read by one after member 2 marks the group read. */
  g_assert_true (natter_groups_mark_read (cluster_node (cluster, 2)->groups, cluster->group_id, &error));
  {
    gboolean done = FALSE;

    for (guint tries = 0; tries < 100 && !done; tries++)
      {
        g_auto(GStrv) read = NULL;

        natter_groups_get_receipts (bob->groups, cluster->group_id, secret, NULL, &read, NULL);
        done = g_strv_length (read) == 1 &&
               g_strcmp0 (read[0], cluster_node (cluster, 2)->peer_id) == 0;
        if (!done)
          cluster_sleep (0.1);
      }
    g_assert_true (done);
  }
  /* Typing shows who types. */
  g_assert_true (natter_groups_set_typing (cluster_node (cluster, 3)->groups, cluster->group_id, TRUE, &error));
  {
    gboolean done = FALSE;

    for (guint tries = 0; tries < 100 && !done; tries++)
      {
        g_auto(GStrv) typing = natter_groups_get_typing (admin->groups, cluster->group_id);

        done = g_strv_length (typing) == 1 && g_strcmp0 (typing[0], cluster_node (cluster, 3)->peer_id) == 0;
        if (!done)
          cluster_sleep (0.1);
      }
    g_assert_true (done);
  }

  /* Admin handover, then member 3 leaves: the key rotates again. */
  g_assert_true (natter_groups_set_admin (admin->groups, cluster->group_id, bob->peer_id, &error));
  g_assert_no_error (error);
  {
    gboolean done = FALSE;

    for (guint tries = 0; tries < 100 && !done; tries++)
      {
        g_autoptr(NatterGroupInfo) info = natter_groups_get_info (cluster_node (cluster, 3)->groups, cluster->group_id);

        done = g_strcmp0 (info->admin, bob->peer_id) == 0;
        if (!done)
          cluster_sleep (0.1);
      }
    g_assert_true (done);
  }
  g_assert_true (natter_groups_leave (cluster_node (cluster, 3)->groups, cluster->group_id, &error));
  g_assert_no_error (error);
  {
    gboolean done = FALSE;

    for (guint tries = 0; tries < 100 && !done; tries++)
      {
        g_autoptr(NatterGroupInfo) a = natter_groups_get_info (admin->groups, cluster->group_id);
        g_autoptr(NatterGroupInfo) b = natter_groups_get_info (bob->groups, cluster->group_id);

        done = g_strv_length (a->members) == 3 && g_strcmp0 (a->key_id, b->key_id) == 0 &&
               g_strcmp0 (a->key_id, after->key_id) != 0 &&
               groups_has_key (admin->groups, cluster->group_id, a->key_id);
        if (!done)
          cluster_sleep (0.1);
      }
    g_assert_true (done);
  }
  g_free (natter_groups_send_text (admin->groups, cluster->group_id, "three of us", &error));
  g_assert_no_error (error);
  {
    Cluster view = *cluster;
    g_autoptr(GPtrArray) three = g_ptr_array_new ();

    for (guint i = 0; i < 3; i++)
      g_ptr_array_add (three, cluster_node (cluster, i));
    view.nodes = three;
    g_assert_true (cluster_wait (all_equal, &view, 20 * SLOW));
  }
}

typedef struct
{
  Cluster    *cluster;
  const char *msg_id;
} Reach;

static gboolean
all_reached (gpointer data)
{
  Reach *reach = data;

  for (guint i = 1; i < reach->cluster->nodes->len; i++)
    {
      ClusterNode *node = cluster_node (reach->cluster, i);

      if (!node->stopped && !g_hash_table_contains (node->arrivals, reach->msg_id))
        return FALSE;
    }
  return TRUE;
}

/* Done when 4: sixteen members, fan-out 3; the sender uploads 3 copies per
 * message, and everyone gets everything when an interior forwarder dies. */
static void
test_fanout (void)
{
  g_autoptr(Cluster) cluster = start_cluster (16, 3);
  g_autoptr(GError) error = NULL;
  ClusterNode *sender = cluster_node (cluster, 0);
  NatterGroupsStats before, after;
  g_autoptr(GPtrArray) sent = g_ptr_array_new_with_free_func (g_free);
  g_auto(GStrv) probe = NULL;
  guint victim = G_MAXUINT;
  guint n_steady = 30;
  Expect expect;

  natter_groups_get_stats (sender->groups, &before);
  for (guint i = 0; i < n_steady; i++)
    {
      g_autofree char *text = g_strdup_printf ("steady %u", i);
      char *msg_id = natter_groups_send_text (sender->groups, cluster->group_id, text, &error);
      Reach reach = { cluster, msg_id };

      g_assert_no_error (error);
      g_ptr_array_add (sent, msg_id);
      g_assert_true (cluster_wait (all_reached, &reach, 10 * SLOW));
    }
  natter_groups_get_stats (sender->groups, &after);
  g_test_message ("%u messages: %" G_GUINT64_FORMAT " copies, %" G_GUINT64_FORMAT " bytes uploaded",
                  n_steady, after.own_copies - before.own_copies, after.own_bytes - before.own_bytes);
  if (SLOW == 1.0)
    {
      g_assert_cmpuint (after.own_copies - before.own_copies, <=, 3 * n_steady);
      g_assert_cmpuint (after.own_copies - before.own_copies, ==, 3 * n_steady);
    }
  else
    /* Sanitizer builds are slow enough for acknowledgements to time out,
     * and every repair adds copies: only the first hop is bounded. */
    g_test_message ("sanitizer build: %" G_GUINT64_FORMAT " copies with %" G_GUINT64_FORMAT " repairs",
                    after.own_copies - before.own_copies, after.repairs - before.repairs);

  /* The first child of the sender in the last tree is an interior node. */
  probe = natter_groups_dup_tree (sender->groups, cluster->group_id, g_ptr_array_index (sent, sent->len - 1));
  g_assert_nonnull (probe);
  g_assert_cmpuint (g_strv_length (probe), ==, cluster->nodes->len - 1);
  for (guint i = 0; i < cluster->nodes->len; i++)
    if (strcmp (cluster_node (cluster, i)->peer_id, probe[0]) == 0)
      victim = i;
  g_assert_cmpuint (victim, !=, G_MAXUINT);
  g_test_message ("killing interior forwarder %u mid-run", victim);

  for (guint i = 0; i < 40; i++)
    {
      g_autofree char *text = g_strdup_printf ("run %u", i);

      g_ptr_array_add (sent, natter_groups_send_text (sender->groups, cluster->group_id, text, &error));
      g_assert_no_error (error);
      if (i == 10)
        cluster_stop_node (cluster, victim);
      cluster_sleep (0.02);
    }
  expect.cluster = cluster;
  expect.expected = sent->len;
  g_assert_true (cluster_wait (all_have, &expect, 60 * SLOW));
  for (guint i = 0; i < cluster->nodes->len; i++)
    if (!cluster_node (cluster, i)->stopped)
      for (guint j = 0; j < sent->len; j++)
        {
          g_autoptr(GBytes) wire = natter_groups_dup_wire (cluster_node (cluster, i)->groups, cluster->group_id,
                                                           g_ptr_array_index (sent, j));

          g_assert_nonnull (wire);
        }
  g_assert_true (cluster_wait (all_equal, cluster, 20 * SLOW));
  {
    NatterGroupsStats stats;

    natter_groups_get_stats (sender->groups, &stats);
    g_test_message ("repairs by the sender: %" G_GUINT64_FORMAT, stats.repairs);
  }
}

static void
set_isolated (Cluster *cluster,
              guint    index,
              gboolean isolated)
{
  ClusterNode *node = cluster_node (cluster, index);

  for (guint i = 0; i < cluster->nodes->len; i++)
    {
      ClusterNode *other = cluster_node (cluster, i);

      if (i == index || other->stopped)
        continue;
      natter_groups_set_blocked (other->groups, node->peer_id, isolated);
      natter_groups_set_blocked (node->groups, other->peer_id, isolated);
    }
}

/* Done when 5: member 3 misses 500 messages of member 1 and catches up from
 * member 2 alone, member 1 being gone. */
static void
test_catch_up (void)
{
  g_autoptr(Cluster) cluster = start_cluster (4, 0);
  g_autoptr(GError) error = NULL;
  ClusterNode *late = cluster_node (cluster, 3);
  Expect expect = { cluster, 500 };
  gboolean saw_syncing = FALSE;
  NatterGroupsStats stats;
  gint64 start;

  set_isolated (cluster, 3, TRUE);
  for (guint i = 0; i < 500; i++)
    {
      g_autofree char *text = g_strdup_printf ("missed %u", i);

      g_free (natter_groups_send_text (cluster_node (cluster, 1)->groups, cluster->group_id, text, &error));
      g_assert_no_error (error);
      if (i % 50 == 49)
        cluster_sleep (0.05);
    }
  {
    Cluster view = *cluster;
    g_autoptr(GPtrArray) three = g_ptr_array_new ();

    for (guint i = 0; i < 3; i++)
      g_ptr_array_add (three, cluster_node (cluster, i));
    view.nodes = three;
    g_assert_true (cluster_wait (all_have, &(Expect) { &view, 500 }, 60));
  }
  g_assert_cmpuint (cluster_history_length (cluster, 3), ==, 0);

  /* The sender and member 0 go away; only member 2 is left to help. */
  cluster_stop_node (cluster, 1);
  cluster_stop_node (cluster, 0);
  start = g_get_monotonic_time ();
  set_isolated (cluster, 3, FALSE);
  while (cluster_history_length (cluster, 3) < 500 &&
         g_get_monotonic_time () - start < 60 * G_USEC_PER_SEC)
    {
      g_autoptr(NatterGroupInfo) info = natter_groups_get_info (late->groups, cluster->group_id);

      saw_syncing |= info->syncing;
      g_main_context_iteration (NULL, TRUE);
    }
  g_test_message ("caught up with 500 messages in %.0f ms",
                  (g_get_monotonic_time () - start) / 1000.0);
  g_assert_true (cluster_wait (all_have, &expect, 1 * SLOW));
  g_assert_true (saw_syncing);
  g_assert_true (cluster_wait (all_equal, cluster, 10 * SLOW));
  natter_groups_get_stats (late->groups, &stats);
  g_assert_cmpuint (stats.pulled, >=, 500);
  {
    g_autoptr(NatterGroupInfo) info = natter_groups_get_info (late->groups, cluster->group_id);

    cluster_sleep (0.3);
    g_clear_pointer (&info, natter_group_info_free);
    info = natter_groups_get_info (late->groups, cluster->group_id);
    g_assert_false (info->syncing);
  }
}

static void
send_or_fail (Cluster    *cluster,
              guint       index,
              const char *text,
              char      **out_msg_id)
{
  g_autoptr(GError) error = NULL;
  char *msg_id = natter_groups_send_text (cluster_node (cluster, index)->groups, cluster->group_id,
                                          text, &error);

  g_assert_no_error (error);
  g_assert_nonnull (msg_id);
  if (out_msg_id != NULL)
    *out_msg_id = msg_id;
  else
    g_free (msg_id);
}

/* A member's service stops and is created again on the same profile: it
 * shows the same group and history at once, gets what was sent while it
 * was away through sync, and what it sends next (its counter going on) is
 * taken by everyone. */
static void
test_restart (void)
{
  g_autoptr(Cluster) cluster = start_cluster (4, 0);
  g_autoptr(GError) error = NULL;
  ClusterNode *member = cluster_node (cluster, 3);
  g_autoptr(NatterGroupInfo) before = NULL;
  g_autoptr(NatterGroupInfo) after = NULL;
  g_autoptr(NatterMessage) first = NULL;
  g_autoptr(NatterMessage) next = NULL;
  g_autoptr(GPtrArray) history = NULL;
  g_autofree char *shown = NULL;
  g_autofree char *mine = NULL;
  g_autofree char *again = NULL;
  NatterGroupsStats stats;
  Expect expect = { cluster, 3 };
  gboolean found = FALSE;

  send_or_fail (cluster, 0, "before 1", NULL);
  send_or_fail (cluster, 3, "before 2", &mine);
  send_or_fail (cluster, 2, "before 3", NULL);
  g_assert_true (cluster_wait (all_have, &expect, 20 * SLOW));
  g_assert_true (cluster_wait (all_equal, cluster, 20 * SLOW));
  g_assert_true (natter_groups_mark_read (member->groups, cluster->group_id, &error));
  before = natter_groups_get_info (member->groups, cluster->group_id);
  shown = cluster_history_string (cluster, 3);

  cluster_stop_node (cluster, 3);
  send_or_fail (cluster, 1, "while away 1", NULL);
  send_or_fail (cluster, 2, "while away 2", NULL);
  expect.expected = 5;
  g_assert_true (cluster_wait (all_have, &expect, 20 * SLOW));

  g_assert_true (cluster_restart_node (cluster, 3, &error));
  g_assert_no_error (error);

  /* (a) The same group, members and admin, and the history it had. */
  after = natter_groups_get_info (member->groups, cluster->group_id);
  g_assert_nonnull (after);
  g_assert_cmpstr (after->name, ==, before->name);
  g_assert_cmpstr (after->admin, ==, before->admin);
  g_assert_cmpstr (after->key_id, ==, before->key_id);
  g_assert_cmpuint (after->fanout, ==, before->fanout);
  g_assert_false (after->removed);
  g_assert_true (g_strv_equal ((const char * const *) after->members, (const char * const *) before->members));
  {
    g_autofree char *now = cluster_history_string (cluster, 3);

    g_assert_true (g_str_has_prefix (now, shown));
  }
  history = natter_groups_get_history (member->groups, cluster->group_id);
  for (guint i = 0; i < history->len; i++)
    {
      NatterGroupMessage *message = g_ptr_array_index (history, i);

      if (g_strcmp0 (message->msg_id, mine) == 0)
        {
          g_assert_cmpstr (message->text, ==, "before 2");
          g_assert_cmpstr (message->kind, ==, "text");
          g_assert_true (message->outgoing);
          found = TRUE;
        }
    }
  g_assert_true (found);

  /* (b) What was sent meanwhile comes through sync. */
  g_assert_true (cluster_wait (all_have, &expect, 60 * SLOW));
  g_assert_true (cluster_wait (all_equal, cluster, 20 * SLOW));
  natter_groups_get_stats (member->groups, &stats);
  g_test_message ("after the restart: %" G_GUINT64_FORMAT " pulled", stats.pulled);
  check_causal (cluster, 3);

  /* (c) Its counter goes on, and the others take the new message. */
  send_or_fail (cluster, 3, "after the restart", &again);
  first = decode_wire (member, cluster->group_id, mine);
  next = decode_wire (member, cluster->group_id, again);
  g_assert_cmpuint (next->sequence, ==, first->sequence + 1);
  expect.expected = 6;
  g_assert_true (cluster_wait (all_have, &expect, 30 * SLOW));
  g_assert_true (cluster_wait (all_equal, cluster, 20 * SLOW));
  for (guint i = 0; i < 3; i++)
    g_assert_true (g_hash_table_contains (cluster_node (cluster, i)->arrivals, again));

  /* Disk data is not trusted: a stored text that is not what its author
   * sealed leaves the group out, with a warning that says why. */
  cluster_stop_node (cluster, 3);
  {
    sqlite3 *raw = NULL;

    g_assert_cmpint (sqlite3_open (natter_profile_get_database_path (member->profile), &raw), ==, SQLITE_OK);
    g_assert_cmpint (sqlite3_exec (raw, "UPDATE group_messages SET body = 'forged' WHERE kind = 'text'",
                                   NULL, NULL, NULL), ==, SQLITE_OK);
    g_assert_cmpint (sqlite3_changes (raw), >, 0);
    sqlite3_close (raw);
  }
  g_atomic_pointer_set (&expected_warning, "*not loaded*does not show what its author wrote*");
  g_assert_true (cluster_restart_node (cluster, 3, &error));
  g_atomic_pointer_set (&expected_warning, NULL);
  g_assert_no_error (error);
  g_assert_cmpuint (g_atomic_int_get (&expected_seen), ==, 1);
  g_assert_null (natter_groups_get_info (member->groups, cluster->group_id));
}

/* Control frames (typing here) travel unsigned: the session vouches for
 * their author, so one that names another member as its author is
 * refused.  Stream frames still need their author's signature, whoever
 * passes them on. */
static guint64
rejected_count (ClusterNode *node)
{
  NatterGroupsStats stats;

  natter_groups_get_stats (node->groups, &stats);
  return stats.rejected;
}

static void
test_control_frames (void)
{
  g_autoptr(Cluster) cluster = start_cluster (3, 0);
  g_autoptr(GError) error = NULL;
  ClusterNode *alice = cluster_node (cluster, 0);
  ClusterNode *bob = cluster_node (cluster, 1);
  ClusterNode *carol = cluster_node (cluster, 2);
  g_autoptr(NatterMessage) typing = natter_message_new (NATTER_MESSAGE_TYPE_TYPING_INDICATOR);
  g_autoptr(NatterMessage) decoded = NULL;
  g_autoptr(NatterMessage) stream = NULL;
  g_autoptr(GBytes) wire = NULL;
  g_autoptr(GBytes) stripped = NULL;
  g_autofree char *msg_id = NULL;
  g_auto(GStrv) shown = NULL;
  guint64 rejected;

  /* Carol's typing, unsigned, as her own connection would bring it. */
  typing->from = g_strdup (carol->peer_id);
  g_strfreev (typing->to);
  typing->to = g_new0 (char *, 2);
  typing->to[0] = g_strdup (alice->peer_id);
  typing->group = g_strdup (cluster->group_id);
  typing->ttl = 60000;
  json_object_set_boolean_member (typing->content, "typing", TRUE);
  wire = natter_message_encode (typing, &error);
  g_assert_no_error (error);
  decoded = natter_message_decode (wire, NATTER_MESSAGE_DECODE_NONE, &error);
  g_assert_no_error (error);
  g_assert_false (decoded->has_signature);

  /* Brought by Bob: refused, nobody shows as typing. */
  rejected = rejected_count (alice);
  g_assert_true (natter_groups_receive (alice->groups, bob->peer_id, decoded, wire));
  g_assert_cmpuint (rejected_count (alice), ==, rejected + 1);
  shown = natter_groups_get_typing (alice->groups, cluster->group_id);
  g_assert_cmpuint (g_strv_length (shown), ==, 0);
  g_clear_pointer (&shown, g_strfreev);

  /* Brought by Carol: taken. */
  g_assert_true (natter_groups_receive (alice->groups, carol->peer_id, decoded, wire));
  g_assert_cmpuint (rejected_count (alice), ==, rejected + 1);
  shown = natter_groups_get_typing (alice->groups, cluster->group_id);
  g_assert_cmpuint (g_strv_length (shown), ==, 1);
  g_assert_cmpstr (shown[0], ==, carol->peer_id);

  /* A stream frame of Bob's without its signature is refused, even
   * from Bob himself. */
  msg_id = natter_groups_send_text (bob->groups, cluster->group_id, "signed", &error);
  g_assert_no_error (error);
  g_clear_pointer (&wire, g_bytes_unref);
  wire = natter_groups_dup_wire (bob->groups, cluster->group_id, msg_id);
  g_assert_nonnull (wire);
  stream = natter_message_decode (wire, NATTER_MESSAGE_DECODE_VERIFY, &error);
  g_assert_no_error (error);
  stream->has_signature = FALSE;
  stripped = natter_message_encode (stream, &error);
  g_assert_no_error (error);
  g_clear_pointer (&stream, natter_message_unref);
  stream = natter_message_decode (stripped, NATTER_MESSAGE_DECODE_NONE, &error);
  g_assert_no_error (error);
  rejected = rejected_count (carol);
  g_assert_true (natter_groups_receive (carol->groups, bob->peer_id, stream, stripped));
  g_assert_cmpuint (rejected_count (carol), ==, rejected + 1);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  if (argc < 2)
    {
      g_printerr ("Usage: %s PATH-TO-natter-rendezvous [GTest options]\n", argv[0]);
      return 2;
    }
  server_path = argv[1];
  g_log_set_writer_func (log_writer, NULL, NULL);

  g_test_add_func ("/groups/membership", test_membership);
  g_test_add_func ("/groups/convergence", test_convergence);
  g_test_add_func ("/groups/fanout", test_fanout);
  g_test_add_func ("/groups/catch-up", test_catch_up);
  g_test_add_func ("/groups/restart", test_restart);
  g_test_add_func ("/groups/control-frames", test_control_frames);
  return g_test_run ();
}
