/* natter-bench.h: shared reporting for natter-bench subcommands
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A report collects named figures.  Keys name the figure and end in its unit
 * (for example "delivered_per_s", "page_load_ms"); they become the keys of
 * the JSON object printed with --json, and the rows of the human table. */
typedef struct _NatterBenchReport NatterBenchReport;

NatterBenchReport *natter_bench_report_new      (const char        *subcommand);
void               natter_bench_report_free     (NatterBenchReport *report);
/* @description is the human-readable row label; @key the JSON key. */
void               natter_bench_report_add      (NatterBenchReport *report,
                                                 const char        *key,
                                                 double             value,
                                                 const char        *description);
void               natter_bench_report_add_text (NatterBenchReport *report,
                                                 const char        *key,
                                                 const char        *value,
                                                 const char        *description);
/* Prints the report to stdout: a table, or one JSON object when @json. */
void               natter_bench_report_print    (NatterBenchReport *report,
                                                 gboolean           json);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterBenchReport, natter_bench_report_free)

/* Monotonic time in seconds, as a double, for measuring. */
double             natter_bench_now             (void);
/* The value at @percentile (0..100) of @values (sorted in place). */
double             natter_bench_percentile      (double            *values,
                                                 gsize              n_values,
                                                 double             percentile);

/* Subcommands.  Each parses its own options from argv (argv[0] is the
 * subcommand name) and returns an exit status. */
int natter_bench_causal    (int argc, char **argv, gboolean json);
int natter_bench_codec     (int argc, char **argv, gboolean json);
int natter_bench_groups    (int argc, char **argv, gboolean json);
int natter_bench_files     (int argc, char **argv, gboolean json);
int natter_bench_messaging (int argc, char **argv, gboolean json);
int natter_bench_rendezvous (int argc, char **argv, gboolean json);
int natter_bench_store     (int argc, char **argv, gboolean json);
#ifdef NATTER_BENCH_UI
int natter_bench_ui        (int argc, char **argv, gboolean json);
#endif
int natter_bench_transport (int argc, char **argv, gboolean json);

G_END_DECLS
