/* natter-crypto-worker.c: a thread for the secure channels' AEAD work
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include "natter-crypto-worker.h"

/* Jobs are handed over in batches both ways.  The context's thread
 * collects the jobs it pushes in a list of its own, without a lock, and
 * passes the list on when it holds FLUSH_BATCH jobs or when the context
 * is about to poll (a source's prepare(), which runs at the start of every
 * iteration): every job queued during one dispatch goes over with one lock
 * and at most one wake-up.  The worker takes everything queued at each
 * wake-up and returns everything it finished with one wake-up of the
 * context.  The return path is one GSource that is made ready, never a new
 * source per batch. */

typedef struct
{
  NatterCryptoJob *head;
  NatterCryptoJob *tail;
} JobList;

typedef struct
{
  GSource             parent;
  NatterCryptoWorker *worker;
} DoneSource;

typedef DoneSource FlushSource;

/* Every datagram job fits: the path MTU keeps datagrams near 1200 bytes. */
#define SMALL_JOB_SIZE   2048
#define MAX_SPARE_JOBS   1024
/* Jobs collected before they are handed over even within a dispatch: the
 * worker must not wait for a long burst of input to end. */
#define FLUSH_BATCH      8
/* Full-size datagrams done inline per iteration of the context, at most:
 * a message to a few peers, not a bulk sender's stream. */
#define INLINE_PER_ITERATION 8

typedef struct _SpareJob SpareJob;
struct _SpareJob
{
  SpareJob *next;
};

struct _NatterCryptoWorker
{
  GThread  *thread;
  GSource  *done_source;
  GSource  *flush_source;

  /* The context's thread only. */
  guint     in_flight;
  JobList   outgoing;            /* pushed, not yet handed over */
  guint     n_outgoing;
  guint     n_inline;            /* claimed in this iteration */
  SpareJob *spare;
  guint     n_spare;

  GMutex    lock;
  GCond     cond;
  JobList   pending;             /* for run() */
  JobList   finished;            /* for done() */
  gboolean  waiting;             /* the thread sleeps on cond */
  gboolean  quit;
};

static void
job_list_append (JobList         *list,
                 NatterCryptoJob *head,
                 NatterCryptoJob *tail)
{
  if (list->tail != NULL)
    list->tail->next = head;
  else
    list->head = head;
  list->tail = tail;
}

static gpointer
worker_thread (gpointer data)
{
  NatterCryptoWorker *self = data;

  g_mutex_lock (&self->lock);
  for (;;)
    {
      JobList batch;
      gboolean wake;

      while (self->pending.head == NULL && !self->quit)
        {
          self->waiting = TRUE;
          g_cond_wait (&self->cond, &self->lock);
          self->waiting = FALSE;
        }
      if (self->quit)
        break;

      batch = self->pending;
      self->pending.head = self->pending.tail = NULL;
      g_mutex_unlock (&self->lock);

      for (NatterCryptoJob *job = batch.head; job != NULL; job = job->next)
        job->run (job);

      g_mutex_lock (&self->lock);
      wake = self->finished.head == NULL;
      job_list_append (&self->finished, batch.head, batch.tail);
      if (wake)
        g_source_set_ready_time (self->done_source, 0);
    }
  g_mutex_unlock (&self->lock);

  return NULL;
}

static gboolean
done_source_dispatch (GSource     *source,
                      GSourceFunc  callback,
                      gpointer     user_data)
{
  NatterCryptoWorker *self = ((DoneSource *) source)->worker;
  NatterCryptoJob *job;

  g_source_set_ready_time (source, -1);

  g_mutex_lock (&self->lock);
  job = self->finished.head;
  self->finished.head = self->finished.tail = NULL;
  g_mutex_unlock (&self->lock);

  while (job != NULL)
    {
      NatterCryptoJob *next = job->next;

      job->next = NULL;
      self->in_flight--;
      job->done (job);
      job = next;
    }

  return G_SOURCE_CONTINUE;
}

static GSourceFuncs done_source_funcs = {
  .dispatch = done_source_dispatch,
};

static void
flush_outgoing (NatterCryptoWorker *self)
{
  gboolean wake;

  if (self->outgoing.head == NULL)
    return;

  g_mutex_lock (&self->lock);
  job_list_append (&self->pending, self->outgoing.head, self->outgoing.tail);
  wake = self->waiting;
  g_mutex_unlock (&self->lock);
  if (wake)
    g_cond_signal (&self->cond);

  self->outgoing.head = self->outgoing.tail = NULL;
  self->n_outgoing = 0;
}

static gboolean
flush_source_prepare (GSource *source,
                      gint    *timeout)
{
  NatterCryptoWorker *self = ((FlushSource *) source)->worker;

  flush_outgoing (self);
  self->n_inline = 0;
  *timeout = -1;
  return FALSE;
}

static GSourceFuncs flush_source_funcs = {
  .prepare = flush_source_prepare,
};

NatterCryptoWorker *
natter_crypto_worker_new (GMainContext *context)
{
  NatterCryptoWorker *self = g_new0 (NatterCryptoWorker, 1);

  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);

  self->done_source = g_source_new (&done_source_funcs, sizeof (DoneSource));
  ((DoneSource *) self->done_source)->worker = self;
  g_source_set_static_name (self->done_source, "[natter] crypto results");
  g_source_attach (self->done_source, context);

  /* Prepared before the sources of default priority, which GLib skips
   * preparing once one of higher priority is ready. */
  self->flush_source = g_source_new (&flush_source_funcs, sizeof (FlushSource));
  ((FlushSource *) self->flush_source)->worker = self;
  g_source_set_priority (self->flush_source, G_PRIORITY_HIGH);
  g_source_set_static_name (self->flush_source, "[natter] crypto hand-over");
  g_source_attach (self->flush_source, context);

  self->thread = g_thread_new ("natter-crypto", worker_thread, self);
  return self;
}

void
natter_crypto_worker_free (NatterCryptoWorker *self)
{
  g_mutex_lock (&self->lock);
  self->quit = TRUE;
  g_cond_signal (&self->cond);
  g_mutex_unlock (&self->lock);
  g_thread_join (self->thread);

  while (self->spare != NULL)
    {
      SpareJob *next = self->spare->next;

      g_free (self->spare);
      self->spare = next;
    }
  g_source_destroy (self->done_source);
  g_source_unref (self->done_source);
  g_source_destroy (self->flush_source);
  g_source_unref (self->flush_source);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  g_free (self);
}

void
natter_crypto_worker_push (NatterCryptoWorker *self,
                           NatterCryptoJob    *job)
{
  job->next = NULL;
  self->in_flight++;
  job_list_append (&self->outgoing, job, job);
  if (++self->n_outgoing >= FLUSH_BATCH)
    flush_outgoing (self);
}

gboolean
natter_crypto_worker_is_idle (NatterCryptoWorker *self)
{
  return self->in_flight == 0;
}

gboolean
natter_crypto_worker_claim_inline (NatterCryptoWorker *self)
{
  if (self->in_flight > 0 || self->n_inline >= INLINE_PER_ITERATION)
    return FALSE;
  self->n_inline++;
  return TRUE;
}

gpointer
natter_crypto_worker_alloc_job (NatterCryptoWorker *self,
                                gsize               size)
{
  SpareJob *job;

  if (size > SMALL_JOB_SIZE)
    return g_malloc (size);
  if (self->spare == NULL)
    return g_malloc (SMALL_JOB_SIZE);
  job = self->spare;
  self->spare = job->next;
  self->n_spare--;
  return job;
}

void
natter_crypto_worker_free_job (NatterCryptoWorker *self,
                               gpointer            job,
                               gsize               size)
{
  SpareJob *spare = job;

  if (size > SMALL_JOB_SIZE || self->n_spare >= MAX_SPARE_JOBS)
    {
      g_free (job);
      return;
    }
  spare->next = self->spare;
  self->spare = spare;
  self->n_spare++;
}
