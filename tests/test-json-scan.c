/* test-json-scan.c: the pre-parse scan of untrusted JSON
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include "natter-json-scan.h"

static gboolean
scan (const char  *text,
      guint        max_depth,
      guint       *members,
      const char **problem)
{
  return natter_json_scan_object ((const guint8 *) text, strlen (text), max_depth, members, problem);
}

static void
test_accepts (void)
{
  const char *problem = NULL;
  guint members = 0;

  g_assert_true (scan ("  {\"a\":1,\"b\":{\"c\":[1,2]},\"d\":\"x:y{\"}\n", 4, &members, &problem));
  /* Colons inside strings and nested objects are not the root's members. */
  g_assert_cmpuint (members, ==, 3);
  g_assert_true (scan ("{\"q\":\"\\\"}\"}", 2, &members, &problem));
  g_assert_cmpuint (members, ==, 1);
}

static void
test_refuses (void)
{
  static const struct { const char *text; const char *problem; } cases[] = {
    { "", "not a complete JSON object" },
    { "[1]", "not a single JSON object" },
    { "{} {}", "not a single JSON object" },
    { "{\"a\":1} x", "not a single JSON object" },
    { "{\"a\":[[[[1]]]]}", "nested deeper than the limit" },
    { "{\"a\":1}}", "not a single JSON object" },
    { "]", "not a single JSON object" },
    { "{\"a\":{\"b\":1}", "not a complete JSON object" },
    { "{\"a\":\"unterminated}", "not a complete JSON object" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const char *problem = NULL;

      g_test_message ("%s", cases[i].text);
      g_assert_false (scan (cases[i].text, 4, NULL, &problem));
      g_assert_cmpstr (problem, ==, cases[i].problem);
    }
}

static void
test_deep_input_is_bounded (void)
{
  /* A megabyte of '[' is refused at the limit, without recursion. */
  gsize len = 1024 * 1024;
  g_autofree char *text = g_malloc (len + 2);
  const char *problem = NULL;

  text[0] = '{';
  memset (text + 1, '[', len);
  text[len + 1] = '\0';
  g_assert_false (scan (text, 32, NULL, &problem));
  g_assert_cmpstr (problem, ==, "nested deeper than the limit");
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/json-scan/accepts", test_accepts);
  g_test_add_func ("/json-scan/refuses", test_refuses);
  g_test_add_func ("/json-scan/deep-input-is-bounded", test_deep_input_is_bounded);

  return g_test_run ();
}
