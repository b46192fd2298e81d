/* natter-loop-hub.h: many small main contexts waited on through one epoll
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A new context whose sources run on the thread that runs @parent, from
 * one source of @parent that waits for all such contexts through a single
 * epoll descriptor.  poll() on @parent then costs the same whatever the
 * number of contexts; each is looked at only when one of its descriptors
 * is ready or its next timeout is due.  Call from any thread; the caller
 * owns the returned reference. */
GMainContext *natter_loop_hub_context_new     (GMainContext *parent);
/* Stops running @context (from any thread, even from one of its own
 * sources: it takes effect once that returns).  Sources still attached
 * to it never run again. */
void          natter_loop_hub_context_release (GMainContext *context);

G_END_DECLS
