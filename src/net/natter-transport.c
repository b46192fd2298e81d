/* natter-transport.c: the transport thread
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include "natter-transport.h"

struct _NatterTransport
{
  GObject parent_instance;

  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
  NatterCryptoWorker *crypto_worker;
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
  self->context = g_main_context_new ();
  self->loop = g_main_loop_new (self->context, FALSE);
  self->crypto_worker = natter_crypto_worker_new (self->context);
  self->thread = g_thread_new ("natter-transport", transport_thread, self);
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
  GSource *source;

  g_return_if_fail (NATTER_IS_TRANSPORT (self));

  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, func, data, destroy);
  g_source_set_static_name (source, "[natter] transport invoke");
  g_source_attach (source, self->context);
  g_source_unref (source);
}
