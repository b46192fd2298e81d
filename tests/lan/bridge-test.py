#!/usr/bin/env python3
# bridge-test.py: LAN discovery between two hosts on one bridge
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Usage: bridge-test.py PATH/TO/natter-lan-peer
#
# Builds three throw-away network namespaces: a "switch" holding a bridge,
# and two hosts, each with one veth (eth0) plugged into it, on 10.78.84.0/24.
# Nothing is created in, or attached to, the host's own namespace.  Runs
# one natter-lan-peer per host with NATTER_INTERFACES=eth0, tells each about
# the other, and checks, printing TAP, that they find each other by
# multicast, connect with signaling over the LAN path only, and exchange a
# message each way.  Exits 77 when it cannot run here (not root, no ip),
# or 1 instead when NATTER_NO_SKIP=1.  Every wait is bounded, and the
# namespaces are removed on the way out, whatever happens.

import os
import queue
import shutil
import subprocess
import sys
import threading
import time

TIMEOUT = 30
SUBNET = '10.78.84'

TESTS = [
    'each host finds the other by multicast, at its eth0 address',
    'the hosts connect with signaling over the LAN path',
    'a message goes each way',
    'both natter-lan-peer processes exit cleanly',
]


def skip(reason):
    print(f'# {reason}', file=sys.stderr)
    sys.exit(1 if os.environ.get('NATTER_NO_SKIP') == '1' else 77)


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


class Peer:
    def __init__(self, netns, tool):
        env = dict(os.environ, NATTER_INTERFACES='eth0')
        self.proc = subprocess.Popen(['ip', 'netns', 'exec', netns, tool],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.peer_id = self.expect('id ').split()[1]

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip('\n'))
        self.lines.put(None)

    def send(self, line):
        self.proc.stdin.write(line + '\n')
        self.proc.stdin.flush()

    def expect(self, prefix, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'no "{prefix}" line')
            line = self.lines.get(timeout=left)
            if line is None:
                raise EOFError(f'peer exited before "{prefix}"')
            print(f'# {line[:120]}', flush=True)
            if line.startswith('failed '):
                raise RuntimeError(line)
            if line.startswith(prefix):
                return line

    def quit(self):
        try:
            self.send('quit')
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: bridge-test.py PATH/TO/natter-lan-peer')
    tool = sys.argv[1]
    if os.geteuid() != 0:
        skip('needs root for network namespaces')
    if shutil.which('ip') is None:
        skip('no ip (iproute2)')

    tag = f'natter-lan-{os.getpid()}'
    sw, hosts = f'{tag}-sw', [f'{tag}-h1', f'{tag}-h2']
    made = []
    peers = []
    results = []
    try:
        try:
            for ns in [sw] + hosts:
                run('ip', 'netns', 'add', ns)
                made.append(ns)
        except (subprocess.CalledProcessError, OSError) as e:
            skip(f'cannot create network namespaces: {e}')
        run('ip', '-n', sw, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0')
        run('ip', '-n', sw, 'link', 'set', 'br0', 'up')
        for i, ns in enumerate(hosts, 1):
            run('ip', '-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', f'port{i}', 'netns', sw)
            run('ip', '-n', sw, 'link', 'set', f'port{i}', 'master', 'br0', 'up')
            run('ip', '-n', ns, 'addr', 'add', f'{SUBNET}.{i}/24', 'dev', 'eth0')
            run('ip', '-n', ns, 'link', 'set', 'eth0', 'up')
            run('ip', '-n', ns, 'link', 'set', 'lo', 'up')

        print(f'1..{len(TESTS)}', flush=True)
        peers = [Peer(ns, tool) for ns in hosts]
        a, b = peers
        a.send(f'contact {b.peer_id}')
        b.send(f'contact {a.peer_id}')

        try:
            found_a = a.expect(f'found {b.peer_id}')
            found_b = b.expect(f'found {a.peer_id}')
            ok = found_a.split()[2].startswith(f'{SUBNET}.2:') and found_b.split()[2].startswith(f'{SUBNET}.1:')
        except Exception as e:
            print(f'# {e}')
            ok = False
        results.append(ok)

        try:
            a.expect(f'connected {b.peer_id}')
            b.expect(f'connected {a.peer_id}')
            ok = True
        except Exception as e:
            print(f'# {e}')
            ok = False
        results.append(ok)

        if ok:
            try:
                a.send('send hello-from-a')
                b.send('send hello-from-b')
                ok = (b.expect('message ') == 'message hello-from-a' and
                      a.expect('message ') == 'message hello-from-b')
            except Exception as e:
                print(f'# {e}')
                ok = False
        results.append(ok)

        codes = [p.quit() for p in peers]
        peers = []
        print(f'# exit codes {codes}')
        results.append(all(c == 0 for c in codes))
    finally:
        for p in peers:
            p.proc.kill()
        for ns in reversed(made):
            subprocess.run(['ip', 'netns', 'del', ns], stderr=subprocess.DEVNULL)

    for i, (name, ok) in enumerate(zip(TESTS, results + [False] * len(TESTS)), 1):
        print(f'{"ok" if ok else "not ok"} {i} {name}', flush=True)
    sys.exit(0 if len(results) == len(TESTS) and all(results) else 1)


if __name__ == '__main__':
    main()
