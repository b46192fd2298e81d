/* natter-crypto-worker.h: a thread for the secure channels' AEAD work
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _NatterCryptoWorker NatterCryptoWorker;
typedef struct _NatterCryptoJob NatterCryptoJob;

typedef void (*NatterCryptoJobFunc) (NatterCryptoJob *job);

/* Embed as the first member of a larger struct.  run() is called on the
 * worker thread, then done() on the worker's context; both in the order
 * the jobs were pushed.  done() owns the job.  While run() runs, @next is
 * the job that runs after it in the same batch (or NULL): run() may do
 * the work of the jobs that follow, which the worker owns as well, as
 * long as their own run() then knows. */
struct _NatterCryptoJob
{
  NatterCryptoJob     *next;
  NatterCryptoJobFunc  run;
  NatterCryptoJobFunc  done;
};

NatterCryptoWorker *natter_crypto_worker_new  (GMainContext       *context);
/* Waits for the thread; jobs not yet finished get neither callback and
 * must not be pending: only for a context that is going away. */
void                natter_crypto_worker_free (NatterCryptoWorker *self);
/* On the worker's context.  The job reaches the worker with the others
 * pushed in the same dispatch of the context, at the latest when the
 * context next polls. */
void                natter_crypto_worker_push (NatterCryptoWorker *self,
                                               NatterCryptoJob    *job);

/* On the worker's context: TRUE when no job is queued, running or waiting
 * for done().  Work done inline while it is TRUE stays in order with the
 * jobs. */
gboolean            natter_crypto_worker_is_idle   (NatterCryptoWorker *self);
/* On the worker's context: TRUE, at most a few times per iteration of
 * the context, when the worker is idle; for full-size datagrams, which
 * are worth doing inline when they come alone but not in a stream. */
gboolean            natter_crypto_worker_claim_inline (NatterCryptoWorker *self);

/* On the worker's context: memory for a job of @size bytes, recycled
 * from earlier jobs when it is small (as a datagram is). */
gpointer            natter_crypto_worker_alloc_job (NatterCryptoWorker *self,
                                                    gsize               size);
void                natter_crypto_worker_free_job  (NatterCryptoWorker *self,
                                                    gpointer            job,
                                                    gsize               size);

G_END_DECLS
