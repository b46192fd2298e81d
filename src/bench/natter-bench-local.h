/* natter-bench-local.h: services and processes shared by natter-bench subcommands
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

#include "natter-messaging-service.h"

G_BEGIN_DECLS

/* A messaging service in this process, on loopback only, signaled through
 * a natter-rendezvous at @url (see natter_bench_local_start()). */
typedef struct
{
  NatterProfile          *profile;
  NatterMessagingService *service;
  gboolean                done;
  GError                 *error;
  char                   *result;
} NatterBenchLocal;

/* Starts a service on the profile in @dir; adds @contact when not NULL;
 * with @downloads, files are accepted into that folder by themselves. */
gboolean natter_bench_local_start      (NatterBenchLocal  *local,
                                        const char        *dir,
                                        const char        *url,
                                        const char        *contact,
                                        const char        *downloads,
                                        GError           **error);
/* add_contact_async() callback: sets local->done (and local->error). */
void     natter_bench_local_on_contact (GObject           *source,
                                        GAsyncResult      *result,
                                        gpointer           user_data);

/* Iterates the main context until *@flag or @seconds pass. */
gboolean natter_bench_iterate_until    (gboolean          *flag,
                                        double             seconds);
/* A child-setup function: the child dies with natter-bench. */
void     natter_bench_die_with_parent  (gpointer           user_data);
void     natter_bench_remove_tree      (const char        *path);
/* $NATTER_RENDEZVOUS, the build tree's, the one next to @self_exe, or $PATH's. */
char    *natter_bench_find_rendezvous  (const char        *self_exe);

G_END_DECLS
