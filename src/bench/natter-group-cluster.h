/* natter-group-cluster.h: many messaging services in one process, for the
 * group tests and natter-bench groups
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include "natter-messaging-service.h"

G_BEGIN_DECLS

/* N NatterMessagingServices, each with a profile in a temporary folder,
 * signaled through one natter-rendezvous process on 127.0.0.1, ICE on lo
 * only: the whole group runs over loopback on this process's main
 * context. */

typedef struct
{
  char                   *dir;
  NatterProfile          *profile;
  NatterMessagingService *service;
  NatterGroups           *groups;
  char                   *peer_id;
  gboolean                stopped;
  /* msg ID -> monotonic µs when "message-received" came. */
  GHashTable             *arrivals;
  guint                   rejected_ops;
} ClusterNode;

typedef struct
{
  GSubprocess *server;
  char        *url;
  GPtrArray   *nodes;     /* ClusterNode */
  char        *group_id;
  char        *tmp;
} Cluster;

/* Iterates the default main context until done (data) or the timeout. */
gboolean  cluster_wait              (gboolean   (*done) (gpointer),
                                     gpointer     data,
                                     double       seconds);
void      cluster_sleep             (double       seconds);
/* How many times slower this build runs: 4 under AddressSanitizer, else 1.
 * The helper's own waits scale with it. */
double    cluster_slowdown          (void);

Cluster  *cluster_new               (const char  *rendezvous_path,
                                     guint        n_nodes,
                                     GError     **error);
void      cluster_free              (Cluster     *cluster);
ClusterNode *cluster_node           (Cluster     *cluster,
                                     guint        index);
/* Node @hub and every other node become mutual contacts, a few at a time
 * (the rendezvous server limits the rate of signals). */
gboolean  cluster_befriend          (Cluster     *cluster,
                                     guint        hub,
                                     double       seconds);
/* @admin creates a group of every node and waits until every member has
 * joined and is connected to every other. */
gboolean  cluster_create_group      (Cluster     *cluster,
                                     guint        admin,
                                     guint        fanout,
                                     double       seconds);
/* Whether every running member is connected to every other running member
 * of the group. */
gboolean  cluster_mesh_ready        (Cluster     *cluster);
/* Whether every member has joined and is connected to @admin. */
gboolean  cluster_star_ready        (Cluster     *cluster,
                                     guint        admin);
/* Stops and drops a node's service (it is gone, as if killed). */
void      cluster_stop_node         (Cluster     *cluster,
                                     guint        index);
/* Creates the service of a stopped node again, on the same profile (what
 * a restart of the application does), and waits until it has started. */
gboolean  cluster_restart_node      (Cluster     *cluster,
                                     guint        index,
                                     GError     **error);
/* The group history of a node as one string of message IDs, one a line. */
char     *cluster_history_string    (Cluster     *cluster,
                                     guint        index);
guint     cluster_history_length    (Cluster     *cluster,
                                     guint        index);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Cluster, cluster_free)

G_END_DECLS
