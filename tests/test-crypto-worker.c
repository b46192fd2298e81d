/* test-crypto-worker.c: the secure channels' AEAD thread
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib.h>

#include "net/natter-crypto-worker.h"

typedef struct
{
  NatterCryptoJob     parent;
  NatterCryptoWorker *worker;
  GThread            *ran_on;
  guint               index;
  GArray             *done_order;
} TestJob;

static void
test_job_run (NatterCryptoJob *job)
{
  ((TestJob *) job)->ran_on = g_thread_self ();
}

static void
test_job_done (NatterCryptoJob *job)
{
  TestJob *self = (TestJob *) job;

  g_assert_true (self->ran_on != NULL);
  g_assert_true (self->ran_on != g_thread_self ());
  g_array_append_val (self->done_order, self->index);
  natter_crypto_worker_free_job (self->worker, self, sizeof *self);
}

static void
push_job (NatterCryptoWorker *worker,
          guint               index,
          GArray             *done_order)
{
  TestJob *job = natter_crypto_worker_alloc_job (worker, sizeof *job);

  job->parent.run = test_job_run;
  job->parent.done = test_job_done;
  job->worker = worker;
  job->ran_on = NULL;
  job->index = index;
  job->done_order = done_order;
  natter_crypto_worker_push (worker, &job->parent);
}

static void
wait_idle (GMainContext       *context,
           NatterCryptoWorker *worker)
{
  while (!natter_crypto_worker_is_idle (worker))
    g_main_context_iteration (context, TRUE);
}

/* Jobs run on the worker's thread and come back in the order pushed,
 * across several hand-overs. */
static void
test_order (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GArray) done_order = g_array_new (FALSE, FALSE, sizeof (guint));
  NatterCryptoWorker *worker;

  g_main_context_push_thread_default (context);
  worker = natter_crypto_worker_new (context);
  g_assert_true (natter_crypto_worker_is_idle (worker));
  for (guint i = 0; i < 1000; i++)
    {
      push_job (worker, i, done_order);
      g_assert_false (natter_crypto_worker_is_idle (worker));
      if (i % 37 == 0)
        g_main_context_iteration (context, FALSE);
    }
  wait_idle (context, worker);
  g_assert_cmpuint (done_order->len, ==, 1000);
  for (guint i = 0; i < done_order->len; i++)
    g_assert_cmpuint (g_array_index (done_order, guint, i), ==, i);
  natter_crypto_worker_free (worker);
  g_main_context_pop_thread_default (context);
}

/* Full-size datagrams may be done inline only a few at a time: a stream
 * of them must reach the worker, or a bulk sender never uses it.  None
 * while a job is in flight, which they could overtake. */
static void
test_claim_inline (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GArray) done_order = g_array_new (FALSE, FALSE, sizeof (guint));
  NatterCryptoWorker *worker;
  guint claimed = 0;

  g_main_context_push_thread_default (context);
  worker = natter_crypto_worker_new (context);

  while (natter_crypto_worker_claim_inline (worker))
    {
      claimed++;
      g_assert_cmpuint (claimed, <=, 64);
    }
  g_assert_cmpuint (claimed, >=, 1);
  g_assert_cmpuint (claimed, <, 64);
  g_assert_false (natter_crypto_worker_claim_inline (worker));

  /* The next iteration of the context has its own allowance. */
  g_main_context_iteration (context, FALSE);
  g_assert_true (natter_crypto_worker_claim_inline (worker));

  push_job (worker, 0, done_order);
  g_main_context_iteration (context, FALSE);
  g_assert_false (natter_crypto_worker_claim_inline (worker));
  wait_idle (context, worker);
  g_assert_cmpuint (done_order->len, ==, 1);
  g_main_context_iteration (context, FALSE);
  g_assert_true (natter_crypto_worker_claim_inline (worker));

  natter_crypto_worker_free (worker);
  g_main_context_pop_thread_default (context);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/crypto-worker/order", test_order);
  g_test_add_func ("/crypto-worker/claim-inline", test_claim_inline);

  return g_test_run ();
}
