/* test-loop-hub.c: contexts run from another context through one epoll
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>

#include "net/natter-loop-hub.h"

#define TIMEOUT_US (10 * G_USEC_PER_SEC)

/* Iterates @parent until *@flag or the timeout. */
static gboolean
iterate_until (GMainContext *parent,
               gboolean     *flag)
{
  gint64 deadline = g_get_monotonic_time () + TIMEOUT_US;

  while (!*flag && g_get_monotonic_time () < deadline)
    g_main_context_iteration (parent, FALSE), g_usleep (200);
  return *flag;
}

typedef struct
{
  GMainContext *context;
  gboolean fired;
  gboolean owned;            /* the hub runs it: we own its context there */
  guint count;
} Hit;

static gboolean
on_hit (gpointer data)
{
  Hit *hit = data;

  hit->fired = TRUE;
  hit->count++;
  hit->owned = g_main_context_is_owner (hit->context);
  return G_SOURCE_REMOVE;
}

static void
test_timeout (void)
{
  g_autoptr(GMainContext) parent = g_main_context_new ();
  g_autoptr(GMainContext) context = natter_loop_hub_context_new (parent);
  g_autoptr(GSource) source = g_timeout_source_new (20);
  Hit hit = { context };

  g_main_context_push_thread_default (parent);
  g_source_set_callback (source, on_hit, &hit, NULL);
  g_source_attach (source, context);
  g_assert_true (iterate_until (parent, &hit.fired));
  g_assert_cmpuint (hit.count, ==, 1);
  g_assert_true (hit.owned);
  natter_loop_hub_context_release (context);
  g_main_context_pop_thread_default (parent);
}

typedef struct
{
  int fd;
  gboolean fired;
  char got[16];
} Readable;

static gboolean
on_readable (gint         fd,
             GIOCondition condition,
             gpointer     data)
{
  Readable *readable = data;
  ssize_t n = read (fd, readable->got, sizeof readable->got - 1);

  readable->fired = n > 0;
  return G_SOURCE_CONTINUE;
}

/* Fifty contexts with a socket each: a datagram wakes exactly its own. */
static void
test_many (void)
{
  g_autoptr(GMainContext) parent = g_main_context_new ();
  GMainContext *contexts[50];
  int pairs[50][2];
  Readable readables[50] = { { 0 } };
  gboolean all = FALSE;

  for (guint i = 0; i < G_N_ELEMENTS (contexts); i++)
    {
      g_autoptr(GSource) source = NULL;

      g_assert_cmpint (socketpair (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pairs[i]), ==, 0);
      contexts[i] = natter_loop_hub_context_new (parent);
      readables[i].fd = pairs[i][0];
      source = g_unix_fd_source_new (pairs[i][0], G_IO_IN);
      g_source_set_callback (source, G_SOURCE_FUNC (on_readable), &readables[i], NULL);
      g_source_attach (source, contexts[i]);
    }
  for (guint i = 0; i < G_N_ELEMENTS (contexts); i += 3)
    g_assert_cmpint (write (pairs[i][1], "ping", 4), ==, 4);

  for (gint64 deadline = g_get_monotonic_time () + TIMEOUT_US;
       !all && g_get_monotonic_time () < deadline;)
    {
      g_main_context_iteration (parent, FALSE);
      all = TRUE;
      for (guint i = 0; i < G_N_ELEMENTS (contexts); i += 3)
        all = all && readables[i].fired;
    }
  g_assert_true (all);
  /* A few more turns: nothing wakes the others. */
  for (guint turn = 0; turn < 20; turn++)
    g_main_context_iteration (parent, FALSE);
  for (guint i = 0; i < G_N_ELEMENTS (contexts); i++)
    {
      if (i % 3 == 0)
        g_assert_cmpstr (readables[i].got, ==, "ping");
      else
        g_assert_false (readables[i].fired);
      natter_loop_hub_context_release (contexts[i]);
      g_main_context_unref (contexts[i]);
      close (pairs[i][0]);
      close (pairs[i][1]);
    }
  /* Released contexts are let go on the parent's next turn. */
  g_main_context_iteration (parent, FALSE);
}

typedef struct
{
  GMainContext *context;
  Hit *hit;
} Attach;

static gpointer
attach_from_thread (gpointer data)
{
  Attach *attach = data;
  g_autoptr(GSource) source = g_idle_source_new ();

  g_source_set_callback (source, on_hit, attach->hit, NULL);
  g_source_attach (source, attach->context);
  return NULL;
}

/* A source attached from another thread runs on the parent's thread. */
static void
test_other_thread (void)
{
  g_autoptr(GMainContext) parent = g_main_context_new ();
  g_autoptr(GMainContext) context = natter_loop_hub_context_new (parent);
  Hit hit = { context };
  Attach attach = { context, &hit };
  GThread *thread;

  /* Let the hub take the context first, as it is idle, then wake it from
   * elsewhere. */
  for (guint turn = 0; turn < 5; turn++)
    g_main_context_iteration (parent, FALSE);
  thread = g_thread_new ("attach", attach_from_thread, &attach);
  g_thread_join (thread);
  g_assert_true (iterate_until (parent, &hit.fired));
  g_assert_true (hit.owned);
  natter_loop_hub_context_release (context);
}

typedef struct
{
  GMainContext *context;
  gboolean released;
} Releaser;

static gboolean
on_release (gpointer data)
{
  Releaser *releaser = data;

  natter_loop_hub_context_release (releaser->context);
  releaser->released = TRUE;
  return G_SOURCE_REMOVE;
}

/* A context released from one of its own sources runs nothing more. */
static void
test_release_inside (void)
{
  g_autoptr(GMainContext) parent = g_main_context_new ();
  g_autoptr(GMainContext) context = natter_loop_hub_context_new (parent);
  g_autoptr(GSource) first = g_timeout_source_new (5);
  g_autoptr(GSource) later = g_timeout_source_new (60);
  Releaser releaser = { context };
  Hit hit = { context };

  g_source_set_callback (first, on_release, &releaser, NULL);
  g_source_attach (first, context);
  g_source_set_callback (later, on_hit, &hit, NULL);
  g_source_attach (later, context);
  g_assert_true (iterate_until (parent, &releaser.released));
  for (gint64 end = g_get_monotonic_time () + 200 * 1000; g_get_monotonic_time () < end;)
    g_main_context_iteration (parent, FALSE), g_usleep (1000);
  g_assert_false (hit.fired);
  g_source_destroy (later);
}

/* A socket read through @old_context is closed, and its descriptor number
 * comes back as another socket read through @new_context (the same
 * context, or another one), after @turns turns of the hub: the new socket
 * must still be polled. */
static void
check_fd_reuse (GMainContext *parent,
                GMainContext *old_context,
                GMainContext *new_context,
                guint         turns)
{
  g_autoptr(GSource) old_source = NULL;
  g_autoptr(GSource) new_source = NULL;
  Readable first = { 0 }, second = { 0 };
  int a[2], b[2];

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, a), ==, 0);
  old_source = g_unix_fd_source_new (a[0], G_IO_IN);
  g_source_set_callback (old_source, G_SOURCE_FUNC (on_readable), &first, NULL);
  g_source_attach (old_source, old_context);
  g_assert_cmpint (write (a[1], "one", 3), ==, 3);
  g_assert_true (iterate_until (parent, &first.fired));

  /* Same number, another socket. */
  g_source_destroy (old_source);
  close (a[0]);
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, b), ==, 0);
  if (b[0] != a[0])
    {
      int moved = dup2 (b[0], a[0]);

      g_assert_cmpint (moved, ==, a[0]);
      close (b[0]);
      b[0] = moved;
    }
  new_source = g_unix_fd_source_new (b[0], G_IO_IN);
  g_source_set_callback (new_source, G_SOURCE_FUNC (on_readable), &second, NULL);
  g_source_attach (new_source, new_context);
  for (guint turn = 0; turn < turns; turn++)
    g_main_context_iteration (parent, FALSE);
  g_assert_cmpint (write (b[1], "two", 3), ==, 3);
  g_assert_true (iterate_until (parent, &second.fired));
  g_assert_cmpstr (second.got, ==, "two");

  g_source_destroy (new_source);
  close (a[1]);
  close (b[0]);
  close (b[1]);
}

/* Inside one context, with no turn of the hub in between. */
static void
test_fd_reuse (void)
{
  g_autoptr(GMainContext) parent = g_main_context_new ();
  g_autoptr(GMainContext) context = natter_loop_hub_context_new (parent);

  check_fd_reuse (parent, context, context, 0);
  natter_loop_hub_context_release (context);
}

/* Across two contexts, in the same turn: the first must not take the
 * second's registration away when it notices its own is gone. */
static void
test_fd_reuse_across (void)
{
  g_autoptr(GMainContext) parent = g_main_context_new ();
  /* "later" is run first by the hub: it arrived first. */
  g_autoptr(GMainContext) later = natter_loop_hub_context_new (parent);
  g_autoptr(GMainContext) first = natter_loop_hub_context_new (parent);

  /* Five turns for both to notice before the datagram. */
  check_fd_reuse (parent, first, later, 5);
  natter_loop_hub_context_release (first);
  natter_loop_hub_context_release (later);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/loop-hub/timeout", test_timeout);
  g_test_add_func ("/loop-hub/many", test_many);
  g_test_add_func ("/loop-hub/other-thread", test_other_thread);
  g_test_add_func ("/loop-hub/release-inside", test_release_inside);
  g_test_add_func ("/loop-hub/fd-reuse", test_fd_reuse);
  g_test_add_func ("/loop-hub/fd-reuse-across", test_fd_reuse_across);

  return g_test_run ();
}
