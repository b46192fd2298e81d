/* natter-loop-hub.c: many small main contexts waited on through one epoll
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "natter-loop-hub.h"

/* Every peer connection has an ICE agent with a socket per local address
 * and timers of its own.  On the transport context they were all polled on
 * every wake-up: with 31 peers, some 60 sockets and 100 sources checked to
 * handle one datagram.  Here each agent gets a context of its own; the hub
 * (one source on the transport context) keeps every descriptor of every
 * such context in one epoll set, each descriptor marked as its context's,
 * and the earliest timeout for its prepare function.  A wake-up then
 * looks only at the contexts that have something to do, driving each
 * through prepare, query, check and dispatch as g_main_context_iteration()
 * would.
 *
 * The contexts are created with G_MAIN_CONTEXT_FLAGS_OWNERLESS_POLLING, so
 * that a source attached to one, or whose ready time changes, always
 * signals its wake-up descriptor, even from the thread that runs it: the
 * hub sees that descriptor and prepares the context again.  The hub owns
 * (acquires) each context for as long as it runs it. */

#define MAX_EVENTS 64
/* A descriptor closed and its number reused would not show as a change in
 * the context's list: every context is run and its set rebuilt this often
 * (on whole seconds, all in one turn).  Rebuilding whenever the context's
 * wake-up fired caught it at once, but that fires every few datagrams
 * under load, and the epoll calls cost the bulk transport a tenth. */
#define RESYNC_US  G_USEC_PER_SEC

typedef struct _Hub Hub;

typedef struct
{
  Hub *hub;
  GMainContext *context;
  GPollFD *fds;
  gint n_fds;
  gint cap;
  GPollFD *old_fds;            /* the previous list, to spot changes */
  gint old_cap;
  gint max_priority;
  gint64 deadline_us;          /* -1: none */
  gint64 resync_us;
  gboolean ready;
  gint released;               /* atomic */
} Entry;

struct _Hub
{
  GSource source;
  GMainContext *parent;
  int epfd;
  gpointer epfd_tag;
  GMutex lock;
  GPtrArray *entries;          /* Entry, the parent's thread only */
  GPtrArray *arriving;         /* Entry, under the lock */
  GPtrArray *leaving;          /* GMainContext, under the lock */
  gint pending;                /* atomic: arriving or leaving not empty */
  GHashTable *owners;          /* descriptor -> Entry that registered it */
  gboolean running;            /* in hub_dispatch() */
  gint64 next_us;              /* earliest timeout of the contexts, or -1 */
};

G_LOCK_DEFINE_STATIC (hubs);
static GHashTable *hubs;       /* parent -> Hub */
static GHashTable *entries;    /* context -> Entry */

/* Descriptors are numbers: one closed by a context may come back, another
 * socket, in this context or another.  Each registration is marked with
 * the context that made it, and a context removes only its own. */
static void
entry_unregister (Entry   *entry,
                  GPollFD *fds,
                  gint     n_fds)
{
  Hub *hub = entry->hub;

  for (gint i = 0; i < n_fds; i++)
    if (g_hash_table_lookup (hub->owners, GINT_TO_POINTER (fds[i].fd)) == entry)
      {
        epoll_ctl (hub->epfd, EPOLL_CTL_DEL, fds[i].fd, NULL);
        g_hash_table_remove (hub->owners, GINT_TO_POINTER (fds[i].fd));
      }
}

static void
entry_sync_fds (Entry   *entry,
                GPollFD *old,
                gint     n_old,
                gint64   now)
{
  Hub *hub = entry->hub;
  gboolean same = n_old == entry->n_fds && now < entry->resync_us;

  for (gint i = 0; same && i < n_old; i++)
    same = old[i].fd == entry->fds[i].fd && old[i].events == entry->fds[i].events;
  if (same)
    return;

  entry_unregister (entry, old, n_old);
  for (gint i = 0; i < entry->n_fds; i++)
    {
      struct epoll_event ev = { 0 };
      guint events = 0;

      /* query() may list a descriptor once per source: one registration
       * with all the events asked for. */
      for (gint j = 0; j < entry->n_fds; j++)
        if (entry->fds[j].fd == entry->fds[i].fd)
          events |= entry->fds[j].events;
      ev.events = events & (EPOLLIN | EPOLLPRI | EPOLLOUT);
      ev.data.fd = entry->fds[i].fd;
      if (epoll_ctl (hub->epfd, EPOLL_CTL_ADD, entry->fds[i].fd, &ev) < 0 && errno == EEXIST)
        epoll_ctl (hub->epfd, EPOLL_CTL_MOD, entry->fds[i].fd, &ev);
      g_hash_table_insert (hub->owners, GINT_TO_POINTER (entry->fds[i].fd), entry);
    }
  /* On whole seconds, so that all contexts come due in the same turn. */
  entry->resync_us = (now / RESYNC_US + 1) * RESYNC_US;
}

/* prepare + query: what the context waits for next. */
static void
entry_prepare (Entry *entry)
{
  gint n_old = entry->n_fds;
  gint timeout = -1;
  gint64 now;

  if (entry->old_cap < n_old)
    {
      entry->old_cap = entry->cap;
      entry->old_fds = g_renew (GPollFD, entry->old_fds, entry->old_cap);
    }
  if (n_old > 0)
    memcpy (entry->old_fds, entry->fds, sizeof (GPollFD) * (gsize) n_old);

  g_main_context_prepare (entry->context, &entry->max_priority);
  for (;;)
    {
      gint n = g_main_context_query (entry->context, entry->max_priority, &timeout,
                                     entry->fds, entry->cap);

      if (n <= entry->cap)
        {
          entry->n_fds = n;
          break;
        }
      entry->cap = n + 4;
      entry->fds = g_renew (GPollFD, entry->fds, entry->cap);
    }
  now = g_get_monotonic_time ();
  entry_sync_fds (entry, entry->old_fds, n_old, now);
  entry->deadline_us = timeout < 0 ? entry->resync_us
                                   : MIN (now + (gint64) timeout * 1000, entry->resync_us);
}

/* check + dispatch with the events the hub put in, then prepare again. */
static void
entry_run (Entry *entry)
{
  if (g_main_context_check (entry->context, entry->max_priority, entry->fds, entry->n_fds))
    g_main_context_dispatch (entry->context);
  if (!g_atomic_int_get (&entry->released))
    entry_prepare (entry);
}

/* An event of the hub's set for descriptor @fd of @entry. */
static void
entry_note_event (Entry  *entry,
                  int     fd,
                  guint32 events)
{
  entry->ready = TRUE;
  for (gint i = 0; i < entry->n_fds; i++)
    if (entry->fds[i].fd == fd)
      entry->fds[i].revents |= (gushort) (events & (entry->fds[i].events | G_IO_ERR | G_IO_HUP));
}

static void
entry_free (Entry *entry)
{
  entry_unregister (entry, entry->fds, entry->n_fds);
  g_main_context_release (entry->context);
  g_main_context_unref (entry->context);
  g_free (entry->fds);
  g_free (entry->old_fds);
  g_free (entry);
}

static void
hub_take_arrivals (Hub *hub)
{
  g_autoptr(GPtrArray) arriving = NULL;
  g_autoptr(GPtrArray) leaving = NULL;

  if (!g_atomic_int_get (&hub->pending))
    return;
  g_mutex_lock (&hub->lock);
  arriving = g_steal_pointer (&hub->arriving);
  hub->arriving = g_ptr_array_new ();
  leaving = g_steal_pointer (&hub->leaving);
  hub->leaving = g_ptr_array_new ();
  g_atomic_int_set (&hub->pending, FALSE);
  g_mutex_unlock (&hub->lock);

  for (guint i = 0; i < arriving->len; i++)
    {
      Entry *entry = g_ptr_array_index (arriving, i);

      if (!g_main_context_acquire (entry->context))
        g_error ("natter-loop-hub: a context was acquired by another thread");
      g_ptr_array_add (hub->entries, entry);
      entry_prepare (entry);
    }
  for (guint i = 0; i < leaving->len; i++)
    for (guint j = 0; j < hub->entries->len; j++)
      {
        Entry *entry = g_ptr_array_index (hub->entries, j);

        if (entry->context == g_ptr_array_index (leaving, i))
          {
            g_ptr_array_remove_index_fast (hub->entries, j);
            entry_free (entry);
            break;
          }
      }
}

/* The earliest timeout of the contexts, for hub_prepare().  (Not the
 * source's ready time: setting that signals the parent's wake-up every
 * time, an extra turn of the parent after each of ours.) */
static void
hub_schedule (Hub *hub)
{
  gint64 next = -1;

  for (guint i = 0; i < hub->entries->len; i++)
    {
      Entry *entry = g_ptr_array_index (hub->entries, i);

      if (entry->deadline_us >= 0 && (next < 0 || entry->deadline_us < next))
        next = entry->deadline_us;
    }
  hub->next_us = next;
}

static gboolean
hub_prepare (GSource *source,
             gint    *timeout)
{
  Hub *hub = (Hub *) source;
  gint64 now;

  /* Arrivals and releases from other threads (they woke the parent). */
  if (g_atomic_int_get (&hub->pending))
    {
      *timeout = 0;
      return TRUE;
    }
  if (hub->next_us < 0)
    {
      *timeout = -1;
      return FALSE;
    }
  now = g_get_monotonic_time ();
  if (hub->next_us <= now)
    {
      *timeout = 0;
      return TRUE;
    }
  *timeout = (gint) MIN ((hub->next_us - now + 999) / 1000, G_MAXINT);
  return FALSE;
}

static gboolean
hub_check (GSource *source)
{
  Hub *hub = (Hub *) source;

  /* The epoll descriptor's readiness is checked by GLib on its own. */
  return g_atomic_int_get (&hub->pending) ||
         (hub->next_us >= 0 && hub->next_us <= g_get_monotonic_time ());
}

static gboolean
hub_dispatch (GSource     *source,
              GSourceFunc  callback,
              gpointer     user_data)
{
  Hub *hub = (Hub *) source;
  struct epoll_event events[MAX_EVENTS];
  gint64 now;
  int n;

  hub->running = TRUE;
  hub_take_arrivals (hub);

  n = epoll_wait (hub->epfd, events, MAX_EVENTS, 0);
  for (int e = 0; e < n; e++)
    {
      Entry *entry = g_hash_table_lookup (hub->owners, GINT_TO_POINTER (events[e].data.fd));

      if (entry != NULL)
        entry_note_event (entry, events[e].data.fd, events[e].events);
    }
  now = g_get_monotonic_time ();
  for (guint i = 0; i < hub->entries->len; i++)
    {
      Entry *entry = g_ptr_array_index (hub->entries, i);

      if (entry->deadline_us >= 0 && entry->deadline_us <= now)
        entry->ready = TRUE;
    }
  /* Entries only leave in hub_take_arrivals(), so the array is stable
   * while sources run; one released meanwhile is not run again. */
  for (guint i = 0; i < hub->entries->len; i++)
    {
      Entry *entry = g_ptr_array_index (hub->entries, i);

      if (!entry->ready)
        continue;
      entry->ready = FALSE;
      if (!g_atomic_int_get (&entry->released))
        entry_run (entry);
    }

  hub_take_arrivals (hub);
  hub->running = FALSE;
  hub_schedule (hub);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs hub_funcs = {
  .prepare = hub_prepare,
  .check = hub_check,
  .dispatch = hub_dispatch,
};

static Hub *
hub_get (GMainContext *parent)
{
  Hub *hub;

  if (hubs == NULL)
    {
      hubs = g_hash_table_new (NULL, NULL);
      entries = g_hash_table_new (NULL, NULL);
    }
  hub = g_hash_table_lookup (hubs, parent);
  if (hub != NULL)
    return hub;

  hub = (Hub *) g_source_new (&hub_funcs, sizeof (Hub));
  g_source_set_static_name (&hub->source, "natter-loop-hub");
  g_source_set_priority (&hub->source, G_PRIORITY_DEFAULT);
  hub->parent = g_main_context_ref (parent);
  hub->epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (hub->epfd < 0)
    g_error ("natter-loop-hub: epoll_create1: %s", g_strerror (errno));
  hub->epfd_tag = g_source_add_unix_fd (&hub->source, hub->epfd, G_IO_IN);
  g_mutex_init (&hub->lock);
  hub->entries = g_ptr_array_new ();
  hub->owners = g_hash_table_new (NULL, NULL);
  hub->next_us = -1;
  hub->arriving = g_ptr_array_new ();
  hub->leaving = g_ptr_array_new ();
  /* Lives as long as the process: the transport thread's context does. */
  g_source_attach (&hub->source, parent);
  g_hash_table_insert (hubs, parent, hub);
  return hub;
}

GMainContext *
natter_loop_hub_context_new (GMainContext *parent)
{
  Entry *entry;
  Hub *hub;

  g_return_val_if_fail (parent != NULL, NULL);

  entry = g_new0 (Entry, 1);
  entry->context = g_main_context_new_with_flags (G_MAIN_CONTEXT_FLAGS_OWNERLESS_POLLING);
  entry->deadline_us = -1;
  G_LOCK (hubs);
  hub = hub_get (parent);
  entry->hub = hub;
  g_hash_table_insert (entries, entry->context, entry);
  g_mutex_lock (&hub->lock);
  g_ptr_array_add (hub->arriving, entry);
  g_atomic_int_set (&hub->pending, TRUE);
  g_mutex_unlock (&hub->lock);
  G_UNLOCK (hubs);

  if (g_main_context_is_owner (parent) && !hub->running)
    {
      hub_take_arrivals (hub);
      hub_schedule (hub);
    }
  else
    g_main_context_wakeup (parent);
  return g_main_context_ref (entry->context);
}

void
natter_loop_hub_context_release (GMainContext *context)
{
  Entry *entry;
  Hub *hub;

  g_return_if_fail (context != NULL);

  G_LOCK (hubs);
  entry = entries != NULL ? g_hash_table_lookup (entries, context) : NULL;
  if (entry == NULL)
    {
      G_UNLOCK (hubs);
      g_critical ("natter_loop_hub_context_release: not a hub context");
      return;
    }
  g_hash_table_remove (entries, context);
  hub = entry->hub;
  g_atomic_int_set (&entry->released, TRUE);
  g_mutex_lock (&hub->lock);
  if (g_ptr_array_remove (hub->arriving, entry))
    {
      /* Never taken by the hub: nothing to undo on its thread. */
      g_mutex_unlock (&hub->lock);
      G_UNLOCK (hubs);
      g_main_context_unref (entry->context);
      g_free (entry);
      return;
    }
  g_ptr_array_add (hub->leaving, entry->context);
  g_atomic_int_set (&hub->pending, TRUE);
  g_mutex_unlock (&hub->lock);
  G_UNLOCK (hubs);
  g_main_context_wakeup (hub->parent);
}
