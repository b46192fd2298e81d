/* natter-bench.c: the natter-bench tool
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "natter-bench.h"

typedef struct
{
  char *key;
  char *description;
  char *text;      /* NULL for a number */
  double value;
} Figure;

struct _NatterBenchReport
{
  char *subcommand;
  GPtrArray *figures;
};

static void
figure_free (gpointer data)
{
  Figure *f = data;

  g_free (f->key);
  g_free (f->description);
  g_free (f->text);
  g_free (f);
}

NatterBenchReport *
natter_bench_report_new (const char *subcommand)
{
  NatterBenchReport *report = g_new0 (NatterBenchReport, 1);

  report->subcommand = g_strdup (subcommand);
  report->figures = g_ptr_array_new_with_free_func (figure_free);
  return report;
}

void
natter_bench_report_free (NatterBenchReport *report)
{
  if (report == NULL)
    return;
  g_free (report->subcommand);
  g_ptr_array_unref (report->figures);
  g_free (report);
}

void
natter_bench_report_add (NatterBenchReport *report,
                         const char        *key,
                         double             value,
                         const char        *description)
{
  Figure *f = g_new0 (Figure, 1);

  f->key = g_strdup (key);
  f->description = g_strdup (description);
  f->value = value;
  g_ptr_array_add (report->figures, f);
}

void
natter_bench_report_add_text (NatterBenchReport *report,
                              const char        *key,
                              const char        *value,
                              const char        *description)
{
  Figure *f = g_new0 (Figure, 1);

  f->key = g_strdup (key);
  f->description = g_strdup (description);
  f->text = g_strdup (value);
  g_ptr_array_add (report->figures, f);
}

static void
print_json_string (const char *s)
{
  putchar ('"');
  for (; *s; s++)
    {
      if (*s == '"' || *s == '\\')
        printf ("\\%c", *s);
      else if ((guchar) *s < 0x20)
        printf ("\\u%04x", (guchar) *s);
      else
        putchar (*s);
    }
  putchar ('"');
}

void
natter_bench_report_print (NatterBenchReport *report,
                           gboolean           json)
{
  if (json)
    {
      printf ("{\"benchmark\":");
      print_json_string (report->subcommand);
      for (guint i = 0; i < report->figures->len; i++)
        {
          Figure *f = g_ptr_array_index (report->figures, i);

          putchar (',');
          print_json_string (f->key);
          putchar (':');
          if (f->text != NULL)
            print_json_string (f->text);
          else
            printf ("%.6g", f->value);
        }
      printf ("}\n");
    }
  else
    {
      int width = 0;

      for (guint i = 0; i < report->figures->len; i++)
        {
          Figure *f = g_ptr_array_index (report->figures, i);
          width = MAX (width, (int) strlen (f->description));
        }

      printf ("natter-bench %s\n", report->subcommand);
      for (guint i = 0; i < report->figures->len; i++)
        {
          Figure *f = g_ptr_array_index (report->figures, i);

          if (f->text != NULL)
            printf ("  %-*s  %s\n", width, f->description, f->text);
          else
            printf ("  %-*s  %14.3f  (%s)\n", width, f->description, f->value, f->key);
        }
    }
  fflush (stdout);
}

double
natter_bench_now (void)
{
  return g_get_monotonic_time () / 1e6;
}

static int
compare_doubles (gconstpointer a,
                 gconstpointer b)
{
  double x = *(const double *) a;
  double y = *(const double *) b;

  return (x > y) - (x < y);
}

double
natter_bench_percentile (double *values,
                         gsize   n_values,
                         double  percentile)
{
  gsize index;

  if (n_values == 0)
    return 0.0;
  qsort (values, n_values, sizeof (double), compare_doubles);
  index = (gsize) ((percentile / 100.0) * (double) (n_values - 1) + 0.5);
  return values[MIN (index, n_values - 1)];
}

typedef struct
{
  const char *name;
  int (*run) (int argc, char **argv, gboolean json);
  const char *help;
} Subcommand;

static const Subcommand subcommands[] = {
  { "causal", natter_bench_causal, "Messages per second through the causal delivery buffer" },
  { "codec", natter_bench_codec, "Strict decoding and signature checks of a wire message" },
  { "groups", natter_bench_groups, "Reach-all latency, sender upload against naive fan-out, and catch-up in groups of 8, 16 and 32" },
  { "files", natter_bench_files, "A 1 GiB file between two processes, next to TCP and the transport's bulk throughput, with chat beside it" },
  { "messaging", natter_bench_messaging, "Send-to-delivered latency and acknowledged messages per second between two processes" },
  { "rendezvous", natter_bench_rendezvous, "Thousands of authenticated clients and signal forwarding on a local rendezvous server" },
  { "store", natter_bench_store, "Insert rate, page load and full-text search over the SQLite store" },
  { "transport", natter_bench_transport, "Setup time, round trips and bulk throughput of two peers over loopback ICE" },
#ifdef NATTER_BENCH_UI
  { "ui", natter_bench_ui, "Opening a 100,000-message conversation in the real window, paging to the top, resident memory" },
#endif
};

static void
usage (FILE *out)
{
  fprintf (out, "Usage: natter-bench [--json] SUBCOMMAND [OPTIONS]\n\nSubcommands:\n");
  for (gsize i = 0; i < G_N_ELEMENTS (subcommands); i++)
    fprintf (out, "  %-12s %s\n", subcommands[i].name, subcommands[i].help);
  fprintf (out, "\nWith --json, each subcommand prints one JSON object whose keys name\n"
                "each figure and its unit.  'natter-bench SUBCOMMAND --help' lists its options.\n");
}

static void
print_machine (gboolean json)
{
  struct utsname u;

  if (json || uname (&u) != 0)
    return;
  printf ("# %s %s %s, %u CPUs, natter %s\n", u.sysname, u.release, u.machine,
          g_get_num_processors (), PACKAGE_VERSION);
}

int
main (int    argc,
      char **argv)
{
  gboolean json = FALSE;
  int first = 1;

  while (first < argc && argv[first][0] == '-')
    {
      if (g_str_equal (argv[first], "--json"))
        json = TRUE;
      else if (g_str_equal (argv[first], "--help") || g_str_equal (argv[first], "-h"))
        {
          usage (stdout);
          return 0;
        }
      else
        {
          fprintf (stderr, "natter-bench: unknown option %s\n", argv[first]);
          usage (stderr);
          return 2;
        }
      first++;
    }

  if (first >= argc)
    {
      usage (stderr);
      return 2;
    }

  /* Allow --json after the subcommand too. */
  for (int i = first + 1; i < argc; i++)
    if (g_str_equal (argv[i], "--json"))
      json = TRUE;

  for (gsize i = 0; i < G_N_ELEMENTS (subcommands); i++)
    {
      if (g_str_equal (argv[first], subcommands[i].name))
        {
          print_machine (json);
          return subcommands[i].run (argc - first, argv + first, json);
        }
    }

  fprintf (stderr, "natter-bench: unknown subcommand %s\n", argv[first]);
  usage (stderr);
  return 2;
}
