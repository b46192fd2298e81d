/* natter-bench-baselines.h: what the machine's loopback can do without Natter
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Baselines for `natter-bench transport`: the same measurements with the
 * layers of Natter taken away, so that its figures can be read against
 * what this machine's loopback, kernel and usrsctp allow.  Everything runs
 * on 127.0.0.1 in this process and is bounded in time; nothing leaves the
 * machine.  A figure is negative when the measurement could not run (the
 * reason is logged with g_warning()). */

/* Raw UDP ping-pong of @size-byte datagrams (the transport benchmark uses
 * 200), @n_messages round trips, echoed by a second thread.  Returns the
 * median round trip in microseconds; *@p99_out (if not NULL) gets the
 * 99th percentile. */
double natter_bench_baseline_udp_rtt_us     (guint   n_messages,
                                             gsize   size,
                                             double *p99_out);

/* Raw TCP throughput: @total_bytes written in 64 KiB writes to a reader
 * thread.  Returns MB/s (1 MB = 1e6 bytes). */
double natter_bench_baseline_tcp_mbps       (gsize   total_bytes);

/* Plain SCTP: two NatterSctpAssociations on one thread (usrsctp without
 * threads is process-wide), their packets over a pair of real UDP sockets
 * on 127.0.0.1, no ICE and no encryption; 64 KiB messages sent as fast as
 * back-pressure allows.  @total_bytes 0 means
 * NATTER_BENCH_BASELINE_SCTP_DEFAULT_BYTES.  Returns MB/s.
 *
 * It drives usrsctp from the calling thread on a private context, so no
 * other SCTP association may exist in the process meanwhile (run it before
 * the transport thread opens any); it waits for usrsctp to wind down
 * before returning, so that another thread can use it afterwards. */
#define NATTER_BENCH_BASELINE_SCTP_DEFAULT_BYTES ((gsize) 512 * 1000 * 1000)
double natter_bench_baseline_sctp_udp_mbps  (gsize   total_bytes);

/* The same with the packets handed over in memory (no sockets): the
 * ceiling of usrsctp itself on this machine, for reference. */
double natter_bench_baseline_sctp_memory_mbps (gsize total_bytes);

G_END_DECLS
