/* natter-group-cluster.c: many messaging services in one process
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include <glib/gstdio.h>

#include "natter-group-cluster.h"

#define BEFRIEND_WAVE (g_getenv ("NATTER_WAVE") ? atoi (g_getenv ("NATTER_WAVE")) : 8)

static gboolean
flag_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

gboolean
cluster_wait (gboolean (*done) (gpointer),
              gpointer   data,
              double     seconds)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add ((guint) (seconds * 1000), flag_cb, &timed_out);

  while (!done (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  return done (data);
}

static gboolean
never (gpointer data)
{
  return FALSE;
}

void
cluster_sleep (double seconds)
{
  cluster_wait (never, NULL, seconds);
}

static void
die_with_parent (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static void
on_group_message (NatterGroups       *groups,
                  NatterGroupMessage *message,
                  ClusterNode        *node)
{
  gint64 now = g_get_monotonic_time ();

  g_hash_table_insert (node->arrivals, g_strdup (message->msg_id), g_memdup2 (&now, sizeof now));
}

static void
on_rejected (NatterGroups *groups,
             const char   *group_id,
             const char   *author,
             const char   *reason,
             ClusterNode  *node)
{
  node->rejected_ops++;
}

/* Outstanding asynchronous calls.  On the heap and shared with every
 * callback: a wait that gives up returns while callbacks are still due, and
 * they must not write into a stack frame that is gone (a late
 * stop_async() completion used to decrement a saved frame pointer of
 * whatever ran there next, and the next stack unwind crashed). */
typedef struct
{
  guint   pending;
  GError *error;
} Counter;

static void
counter_clear (Counter *counter)
{
  g_clear_error (&counter->error);
}

static Counter *
counter_new (void)
{
  return g_rc_box_new0 (Counter);
}

static void
counter_unref (Counter *counter)
{
  g_rc_box_release_full (counter, (GDestroyNotify) counter_clear);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Counter, counter_unref)

/* One more call to wait for; the callback gets a reference. */
static gpointer
counter_expect (Counter *counter)
{
  counter->pending++;
  return g_rc_box_acquire (counter);
}

/* Called by each callback, with @error (taken) if it failed. */
static void
counter_complete (Counter *counter,
                  GError  *error)
{
  if (error != NULL && counter->error == NULL)
    counter->error = error;
  else
    g_clear_error (&error);
  counter->pending--;
  counter_unref (counter);
}

static gboolean
counter_done (gpointer data)
{
  return ((Counter *) data)->pending == 0;
}

double
cluster_slowdown (void)
{
#if defined(__SANITIZE_ADDRESS__)
  return 4.0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return 4.0;
#else
  return 1.0;
#endif
#else
  return 1.0;
#endif
}

static void
on_started (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  GError *error = NULL;

  natter_messaging_service_start_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  counter_complete (user_data, error);
}

/* Creates the node's service on its profile and starts it. */
static void
node_start (Cluster     *cluster,
            ClusterNode *node,
            Counter     *counter)
{
  const char *urls[] = { cluster->url, NULL };
  const char *lo[] = { "lo", NULL };

  node->service = natter_messaging_service_new (node->profile);
  g_object_set (node->service, "rendezvous-urls", urls, "lan-discovery", FALSE,
                "interfaces", lo, NULL);
  natter_messaging_service_start_async (node->service, NULL, on_started, counter_expect (counter));
}

static void
node_watch (ClusterNode *node)
{
  node->groups = natter_messaging_service_get_groups (node->service);
  g_signal_connect (node->groups, "message-received", G_CALLBACK (on_group_message), node);
  g_signal_connect (node->groups, "operation-rejected", G_CALLBACK (on_rejected), node);
}

Cluster *
cluster_new (const char  *rendezvous_path,
             guint        n_nodes,
             GError     **error)
{
  g_autoptr(Cluster) cluster = g_new0 (Cluster, 1);
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *line = NULL;
  const char *tmp;
  g_autoptr(Counter) counter = counter_new ();

  cluster->nodes = g_ptr_array_new ();
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  cluster->server = g_subprocess_launcher_spawn (launcher, error, rendezvous_path,
                                                 "--listen", "127.0.0.1", "--port", "0", NULL);
  if (cluster->server == NULL)
    return NULL;
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (cluster->server));
  line = g_data_input_stream_read_line (out, NULL, NULL, error);
  if (line == NULL || strstr (line, "ws://") == NULL)
    {
      if (error != NULL && *error == NULL)
        g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "natter-rendezvous did not start");
      return NULL;
    }
  cluster->url = g_strdup (strstr (line, "ws://"));

  tmp = cluster->tmp = g_dir_make_tmp ("natter-groups-XXXXXX", error);
  if (tmp == NULL)
    return NULL;
  for (guint i = 0; i < n_nodes; i++)
    {
      ClusterNode *node = g_new0 (ClusterNode, 1);

      g_ptr_array_add (cluster->nodes, node);
      node->dir = g_strdup_printf ("%s/m%02u", tmp, i);
      node->arrivals = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      node->profile = natter_profile_open (node->dir, NULL, error);
      if (node->profile == NULL)
        return NULL;
      node_start (cluster, node, counter);
      node->peer_id = g_strdup (natter_messaging_service_get_peer_id (node->service));
    }
  if (!cluster_wait (counter_done, counter, 60 * cluster_slowdown ()) || counter->error != NULL)
    {
      if (counter->error != NULL)
        g_propagate_error (error, g_steal_pointer (&counter->error));
      else
        g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "The services did not start");
      return NULL;
    }
  for (guint i = 0; i < n_nodes; i++)
    node_watch (g_ptr_array_index (cluster->nodes, i));
  return g_steal_pointer (&cluster);
}

ClusterNode *
cluster_node (Cluster *cluster,
              guint    index)
{
  return g_ptr_array_index (cluster->nodes, index);
}

static void
on_stopped (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  GError *error = NULL;

  natter_messaging_service_stop_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  counter_complete (user_data, error);
}

gboolean
cluster_restart_node (Cluster  *cluster,
                      guint     index,
                      GError  **error)
{
  ClusterNode *node = cluster_node (cluster, index);
  g_autoptr(Counter) counter = counter_new ();

  g_return_val_if_fail (node->stopped && node->service == NULL, FALSE);

  node_start (cluster, node, counter);
  if (!cluster_wait (counter_done, counter, 60 * cluster_slowdown ()) || counter->error != NULL)
    {
      if (counter->error != NULL)
        g_propagate_error (error, g_steal_pointer (&counter->error));
      else
        g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "The service did not start");
      g_clear_object (&node->service);
      return FALSE;
    }
  node_watch (node);
  node->stopped = FALSE;
  return TRUE;
}

static void
node_free (ClusterNode *node)
{
  if (node->service != NULL)
    g_signal_handlers_disconnect_by_data (node->groups, node);
  g_clear_object (&node->service);
  g_clear_object (&node->profile);
  g_hash_table_unref (node->arrivals);
  g_free (node->peer_id);
  g_free (node->dir);
  g_free (node);
}

void
cluster_stop_node (Cluster *cluster,
                   guint    index)
{
  ClusterNode *node = cluster_node (cluster, index);
  g_autoptr(Counter) counter = counter_new ();
  double limit = 30 * cluster_slowdown ();

  if (node->stopped)
    return;
  node->stopped = TRUE;
  g_signal_handlers_disconnect_by_data (node->groups, node);
  natter_messaging_service_stop_async (node->service, NULL, on_stopped, counter_expect (counter));
  if (!cluster_wait (counter_done, counter, limit))
    g_printerr ("node %u did not stop within %.0f s\n", index, limit);
  else if (counter->error != NULL)
    g_printerr ("node %u: stop: %s\n", index, counter->error->message);
  g_clear_object (&node->service);
  node->groups = NULL;
}

void
cluster_free (Cluster *cluster)
{
  g_autoptr(Counter) counter = counter_new ();

  if (cluster->nodes != NULL)
    {
      for (guint i = 0; i < cluster->nodes->len; i++)
        {
          ClusterNode *node = cluster_node (cluster, i);

          if (node->service != NULL && !node->stopped)
            natter_messaging_service_stop_async (node->service, NULL, on_stopped, counter_expect (counter));
        }
      if (!cluster_wait (counter_done, counter, 30 * cluster_slowdown ()))
        g_printerr ("%u services did not stop in time\n", counter->pending);
      for (guint i = 0; i < cluster->nodes->len; i++)
        node_free (cluster_node (cluster, i));
      g_ptr_array_unref (cluster->nodes);
    }
  if (cluster->server != NULL)
    {
      g_subprocess_force_exit (cluster->server);
      g_subprocess_wait (cluster->server, NULL, NULL);
      g_object_unref (cluster->server);
    }
  if (cluster->tmp != NULL)
    {
      const char *argv[] = { "rm", "-rf", "--", cluster->tmp, NULL };

      g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
    }
  g_free (cluster->tmp);
  g_free (cluster->url);
  g_free (cluster->group_id);
  g_free (cluster);
}

static void
on_contact (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(NatterContact) contact = NULL;
  GError *error = NULL;

  contact = natter_messaging_service_add_contact_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  counter_complete (user_data, error);
}

typedef struct
{
  Cluster *cluster;
  guint    hub;
  guint    first;
  guint    last;
} Wave;

static gboolean
wave_connected (gpointer data)
{
  Wave *wave = data;
  NatterMessagingService *hub = cluster_node (wave->cluster, wave->hub)->service;

  for (guint i = wave->first; i < wave->last; i++)
    if (i != wave->hub &&
        natter_messaging_service_get_peer_state (hub, cluster_node (wave->cluster, i)->peer_id, NULL) !=
        NATTER_PEER_STATE_DIRECT)
      return FALSE;
  return TRUE;
}

gboolean
cluster_befriend (Cluster *cluster,
                  guint    hub,
                  double   seconds)
{
  ClusterNode *center = cluster_node (cluster, hub);
  gint64 deadline = g_get_monotonic_time () + (gint64) (seconds * G_USEC_PER_SEC);

  for (guint first = 0; first < cluster->nodes->len; first += BEFRIEND_WAVE)
    {
      Wave wave = { cluster, hub, first, MIN (first + BEFRIEND_WAVE, cluster->nodes->len) };
      g_autoptr(Counter) counter = counter_new ();

      /* The member lists the hub first, so that the server knows both
       * lists when the hub starts to connect. */
      for (guint i = wave.first; i < wave.last; i++)
        {
          ClusterNode *node = cluster_node (cluster, i);

          if (i == hub)
            continue;
          natter_messaging_service_add_contact_async (node->service, center->peer_id, NULL, NULL,
                                                      on_contact, counter_expect (counter));
        }
      if (!cluster_wait (counter_done, counter, 30 * cluster_slowdown ()) || counter->error != NULL)
        {
          if (counter->error != NULL)
            g_warning ("add-contact: %s", counter->error->message);
          return FALSE;
        }
      cluster_sleep (0.2);
      for (guint i = wave.first; i < wave.last; i++)
        {
          ClusterNode *node = cluster_node (cluster, i);

          if (i == hub)
            continue;
          natter_messaging_service_add_contact_async (center->service, node->peer_id, NULL, NULL,
                                                      on_contact, counter_expect (counter));
        }
      if (!cluster_wait (counter_done, counter, 30 * cluster_slowdown ()) || counter->error != NULL)
        {
          if (counter->error != NULL)
            g_warning ("add-contact: %s", counter->error->message);
          return FALSE;
        }
      if (!cluster_wait (wave_connected, &wave,
                         MAX (1.0, (deadline - g_get_monotonic_time ()) / (double) G_USEC_PER_SEC)))
        return FALSE;
    }
  return TRUE;
}

gboolean
cluster_mesh_ready (Cluster *cluster)
{
  for (guint i = 0; i < cluster->nodes->len; i++)
    {
      ClusterNode *node = cluster_node (cluster, i);
      g_autoptr(NatterGroupInfo) info = NULL;

      if (node->stopped)
        continue;
      info = natter_groups_get_info (node->groups, cluster->group_id);
      if (info == NULL || info->removed)
        return FALSE;
      for (guint j = 0; j < cluster->nodes->len; j++)
        {
          ClusterNode *other = cluster_node (cluster, j);

          if (j == i || other->stopped || !g_strv_contains ((const char * const *) info->members, other->peer_id))
            continue;
          if (natter_messaging_service_get_peer_state (node->service, other->peer_id, NULL) !=
              NATTER_PEER_STATE_DIRECT)
            return FALSE;
        }
    }
  return TRUE;
}

gboolean
cluster_star_ready (Cluster *cluster,
                    guint    admin)
{
  ClusterNode *center = cluster_node (cluster, admin);

  for (guint i = 0; i < cluster->nodes->len; i++)
    {
      ClusterNode *node = cluster_node (cluster, i);
      g_autoptr(NatterGroupInfo) info = NULL;

      if (node->stopped || i == admin)
        continue;
      info = natter_groups_get_info (node->groups, cluster->group_id);
      if (info == NULL || info->removed ||
          natter_messaging_service_get_peer_state (center->service, node->peer_id, NULL) !=
          NATTER_PEER_STATE_DIRECT)
        return FALSE;
    }
  return TRUE;
}

static gboolean
mesh_ready_cb (gpointer data)
{
  return cluster_mesh_ready (data);
}

gboolean
cluster_create_group (Cluster *cluster,
                      guint    admin,
                      guint    fanout,
                      double   seconds)
{
  g_autoptr(GPtrArray) members = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < cluster->nodes->len; i++)
    if (i != admin)
      g_ptr_array_add (members, cluster_node (cluster, i)->peer_id);
  g_ptr_array_add (members, NULL);
  cluster->group_id = natter_messaging_service_group_create (cluster_node (cluster, admin)->service,
                                                             "cluster", (const char * const *) members->pdata,
                                                             fanout, &error);
  if (cluster->group_id == NULL)
    {
      g_warning ("group-create: %s", error->message);
      return FALSE;
    }
  if (cluster_wait (mesh_ready_cb, cluster, seconds))
    return TRUE;
  for (guint i = 0; i < cluster->nodes->len; i++)
    {
      ClusterNode *node = cluster_node (cluster, i);
      g_autoptr(NatterGroupInfo) info = natter_groups_get_info (node->groups, cluster->group_id);
      GString *missing = g_string_new (NULL);

      for (guint j = 0; j < cluster->nodes->len; j++)
        if (j != i && natter_messaging_service_get_peer_state (node->service, cluster_node (cluster, j)->peer_id,
                                                               NULL) != NATTER_PEER_STATE_DIRECT)
          g_string_append_printf (missing, " %u(%s)", j,
                                  natter_peer_state_to_string (natter_messaging_service_get_peer_state (node->service, cluster_node (cluster, j)->peer_id, NULL)));
      g_printerr ("node %u: %s; not connected to%s\n", i, info != NULL ? "joined" : "NOT JOINED", missing->str);
      g_string_free (missing, TRUE);
    }
  return FALSE;
}

char *
cluster_history_string (Cluster *cluster,
                        guint    index)
{
  ClusterNode *node = cluster_node (cluster, index);
  g_autoptr(GPtrArray) history = natter_groups_get_history (node->groups, cluster->group_id);
  GString *out = g_string_new (NULL);

  for (guint i = 0; i < history->len; i++)
    {
      NatterGroupMessage *message = g_ptr_array_index (history, i);

      g_string_append_printf (out, "%s\n", message->msg_id);
    }
  return g_string_free (out, FALSE);
}

guint
cluster_history_length (Cluster *cluster,
                        guint    index)
{
  ClusterNode *node = cluster_node (cluster, index);
  g_autoptr(GPtrArray) history = natter_groups_get_history (node->groups, cluster->group_id);

  return history->len;
}
