/* natter-json-scan.c: a bounded look at untrusted JSON before parsing
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include "natter-json-scan.h"

static gboolean
is_space (guint8 c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

gboolean
natter_json_scan_object (const guint8  *data,
                         gsize          len,
                         guint          max_depth,
                         guint         *root_members,
                         const char   **problem)
{
  gboolean in_string = FALSE;
  gboolean seen_root = FALSE;
  guint depth = 0;
  guint members = 0;

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (problem != NULL, FALSE);

  for (gsize i = 0; i < len; i++)
    {
      guint8 c = data[i];

      if (in_string)
        {
          if (c == '\\')
            i++;
          else if (c == '"')
            in_string = FALSE;
          continue;
        }

      /* Outside the root object only whitespace is allowed. */
      if (depth == 0 && !is_space (c))
        {
          if (c != '{' || seen_root)
            {
              *problem = "not a single JSON object";
              return FALSE;
            }
          seen_root = TRUE;
        }

      switch (c)
        {
        case '"':
          in_string = TRUE;
          break;
        case '{':
        case '[':
          if (++depth > max_depth)
            {
              *problem = "nested deeper than the limit";
              return FALSE;
            }
          break;
        case '}':
        case ']':
          /* depth > 0 here: at depth 0 only '{' gets this far.  Whether
           * the brackets match in kind is the parser's to check. */
          depth--;
          break;
        case ':':
          if (depth == 1)
            members++;
          break;
        default:
          break;
        }
    }

  if (!seen_root || depth != 0 || in_string)
    {
      *problem = "not a complete JSON object";
      return FALSE;
    }

  if (root_members != NULL)
    *root_members = members;
  return TRUE;
}
