#!/bin/sh
# run-in-netns.sh: run a test in a fresh network namespace with only lo
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Usage: run-in-netns.sh PROGRAM [ARGS...]
#
# Multicast on loopback needs lo's MULTICAST flag and a route for
# 224.0.0.0/4, which must not be changed on the host.  The namespace made
# here has nothing but its own lo, so nothing can leave the machine, and it
# disappears with the test.  Exits 77 (skip) when it cannot run here: not
# root, or no unshare/ip; 1 instead when NATTER_NO_SKIP=1.

skip () {
  echo "run-in-netns: $1" >&2
  if [ "${NATTER_NO_SKIP:-0}" = 1 ]; then
    exit 1
  fi
  exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root for a network namespace"
command -v unshare >/dev/null 2>&1 || skip "no unshare"
command -v ip >/dev/null 2>&1 || skip "no ip (iproute2)"
unshare --net true 2>/dev/null || skip "cannot create a network namespace"

exec unshare --net -- sh -c '
  set -e
  ip link set lo up
  ip link set lo multicast on
  ip route add 224.0.0.0/4 dev lo
  exec "$@"
' run-in-netns "$@"
