/* natter-json-scan.h: a bounded look at untrusted JSON before parsing
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* json-glib 1.6 recurses without bound, accepts a second document after the
 * first and keeps only the last of two members with one name.  Before it
 * sees untrusted text, this scan checks that @data is exactly one JSON
 * object (whitespace around it), nested at most @max_depth deep, and counts
 * the root object's members, so that a caller can compare the count with
 * what json-glib kept and refuse duplicates.
 *
 * Returns %TRUE, or %FALSE with *@problem set to a static English
 * description ("nested deeper than the limit", …) for the caller's own
 * error domain.  Strings are skipped with their escapes; everything else
 * (numbers, literals, UTF-8) is left to the parser. */
gboolean natter_json_scan_object (const guint8  *data,
                                  gsize          len,
                                  guint          max_depth,
                                  guint         *root_members,
                                  const char   **problem);

G_END_DECLS
