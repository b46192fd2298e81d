/* natter-transport.c: the transport thread
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include "natter-transport.h"

/* Work handed to the thread (natter_transport_invoke) waits in one queue
 * that one source drains: a burst of sends from the main thread costs one
 * wake-up and no source of its own each. */
typedef struct
{
  GSourceFunc    func;
  gpointer       data;
  GDestroyNotify destroy;
} Work;

typedef struct
{
  GSource          source;
  NatterTransport *transport;   /* borrowed: destroyed before it */
} WorkSource;

struct _NatterTransport
{
  GObject parent_instance;

  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
  NatterCryptoWorker *crypto_worker;

  GMutex work_lock;
  GQueue work;                  /* of Work, under work_lock */
  GSource *work_source;
};

G_DEFINE_FINAL_TYPE (NatterTransport, natter_transport, G_TYPE_OBJECT)

static NatterTransport *default_transport;

static gpointer
transport_thread (gpointer data)
{
  NatterTransport *self = data;

  g_main_context_push_thread_default (self->context);
  g_main_loop_run (self->loop);
  /* Let sources that were already dispatched finish their teardown
   * (closing agents and associations posts a few last callbacks). */
  while (g_main_context_pending (self->context))
    g_main_context_iteration (self->context, FALSE);
  g_main_context_pop_thread_default (self->context);
  return NULL;
}

static void
work_free (Work *work,
           gboolean run)
{
  if (run)
    work->func (work->data);
  if (work->destroy != NULL)
    work->destroy (work->data);
  g_free (work);
}

/* Runs what was queued before this dispatch began, in order; what the
 * work itself queues runs in a later iteration. */
static gboolean
work_dispatch (GSource     *source,
               GSourceFunc  callback,
               gpointer     user_data)
{
  NatterTransport *self = ((WorkSource *) source)->transport;
  GQueue batch;
  Work *work;

  g_mutex_lock (&self->work_lock);
  batch = self->work;
  g_queue_init (&self->work);
  g_source_set_ready_time (source, -1);
  g_mutex_unlock (&self->work_lock);

  while ((work = g_queue_pop_head (&batch)) != NULL)
    work_free (work, TRUE);

  return G_SOURCE_CONTINUE;
}

static gboolean
quit_loop (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

static void
natter_transport_finalize (GObject *object)
{
  NatterTransport *self = NATTER_TRANSPORT (object);

  if (self->thread != NULL)
    {
      GSource *source = g_idle_source_new ();

      /* Low priority: work queued before the last unref runs first. */
      g_source_set_priority (source, G_PRIORITY_LOW);
      g_source_set_callback (source, quit_loop, g_main_loop_ref (self->loop),
                             (GDestroyNotify) g_main_loop_unref);
      g_source_attach (source, self->context);
      g_source_unref (source);

      if (g_thread_self () == self->thread)
        g_thread_unref (self->thread);   /* cannot join ourselves */
      else
        g_thread_join (self->thread);
      self->thread = NULL;
    }

  if (self->work_source != NULL)
    {
      Work *work;

      g_source_destroy (self->work_source);
      g_clear_pointer (&self->work_source, g_source_unref);
      /* Queued after the thread's last iteration: freed, not run. */
      while ((work = g_queue_pop_head (&self->work)) != NULL)
        work_free (work, FALSE);
    }
  g_mutex_clear (&self->work_lock);

  g_clear_pointer (&self->crypto_worker, natter_crypto_worker_free);
  g_clear_pointer (&self->loop, g_main_loop_unref);
  g_clear_pointer (&self->context, g_main_context_unref);

  G_OBJECT_CLASS (natter_transport_parent_class)->finalize (object);
}

static void
natter_transport_class_init (NatterTransportClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = natter_transport_finalize;
}

static void
natter_transport_init (NatterTransport *self)
{
  static GSourceFuncs work_funcs = { .dispatch = work_dispatch };

  self->context = g_main_context_new ();
  self->loop = g_main_loop_new (self->context, FALSE);
  g_mutex_init (&self->work_lock);
  g_queue_init (&self->work);
  self->work_source = g_source_new (&work_funcs, sizeof (WorkSource));
  ((WorkSource *) self->work_source)->transport = self;
  g_source_set_static_name (self->work_source, "[natter] transport invoke");
  g_source_set_priority (self->work_source, G_PRIORITY_DEFAULT);
  g_source_attach (self->work_source, self->context);
  self->crypto_worker = natter_crypto_worker_new (self->context);
  self->thread = g_thread_new ("natter-net", transport_thread, self);
}

/**
 * natter_transport_dup_default:
 *
 * Returns: (transfer full): the process's transport thread
 */
NatterTransport *
natter_transport_dup_default (void)
{
  static gsize initialized;

  /* The default transport lives as long as the process: usrsctp's global
   * state cannot be torn down and set up again safely while another
   * thread might be starting a connection, so it is never finalized. */
  if (g_once_init_enter (&initialized))
    {
      default_transport = g_object_new (NATTER_TYPE_TRANSPORT, NULL);
      g_once_init_leave (&initialized, 1);
    }

  return g_object_ref (default_transport);
}

GMainContext *
natter_transport_get_context (NatterTransport *self)
{
  g_return_val_if_fail (NATTER_IS_TRANSPORT (self), NULL);

  return self->context;
}

NatterCryptoWorker *
natter_transport_get_crypto_worker (NatterTransport *self)
{
  g_return_val_if_fail (NATTER_IS_TRANSPORT (self), NULL);

  return self->crypto_worker;
}

gboolean
natter_transport_is_current (NatterTransport *self)
{
  g_return_val_if_fail (NATTER_IS_TRANSPORT (self), FALSE);

  return g_thread_self () == self->thread;
}

void
natter_transport_invoke (NatterTransport *self,
                         GSourceFunc      func,
                         gpointer         data,
                         GDestroyNotify   destroy)
{
  Work *work;
  gboolean was_empty;

  g_return_if_fail (NATTER_IS_TRANSPORT (self));
  g_return_if_fail (func != NULL);

  work = g_new (Work, 1);
  work->func = func;
  work->data = data;
  work->destroy = destroy;

  g_mutex_lock (&self->work_lock);
  was_empty = g_queue_is_empty (&self->work);
  g_queue_push_tail (&self->work, work);
  /* Under the lock, so that it cannot cross the dispatch emptying the
   * queue (which sets the ready time back under the same lock). */
  if (was_empty)
    g_source_set_ready_time (self->work_source, 0);
  g_mutex_unlock (&self->work_lock);
}
