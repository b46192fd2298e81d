#!/usr/bin/env python3
# host-test.py: LAN discovery between processes on one host
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Usage: run-in-netns.sh /usr/bin/python3 host-test.py PATH/TO/natter-lan-peer
#
# Runs in the fresh network namespace that run-in-netns.sh makes (only lo,
# with multicast on there), and refuses to run anywhere else: it would
# otherwise announce on a real network.  Prints TAP for people; run by exit
# code so that 77 is a skip (1 instead when NATTER_NO_SKIP=1).
#
# 1. Two natter-lan-peer processes, the way two profiles of one user run on
#    one machine: no options, the default group and port, only
#    NATTER_INTERFACES=lo (the test suite's network rule).  They find each
#    other by multicast, connect with signaling over the LAN path, and a
#    message goes each way.
# 2. A third process, a stranger to both (and, when it can, run as another
#    user of the host, who shares the port), hears their announcements and
#    recognises none: not while they connect, not when one of them is
#    discoverable (it sees a handle), and not when it adds one of them as a
#    contact on its side only.  No peer ID or key of anyone appears in its
#    output, nor in any discovery datagram captured on lo: neither by a
#    plain listener on the group (which also shows a third program can
#    share the port) nor by a packet socket that sees the unicast signaling.
# 3. With NATTER_INTERFACES unset, the product's default (every interface
#    that is up and not loopback): a veth pair inside the namespace stands
#    for the host's network card, and two processes find each other at its
#    address and connect.  Its other end stays in the namespace.
#
# Every wait is bounded; every process is killed on the way out.

import fcntl
import os
import pwd
import queue
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

TIMEOUT = 30
GROUP = '239.255.78.84'
PORT = 51843
MAGICS = (b'NTLA', b'NTLS', b'NTLR')
IFF_MULTICAST = 0x1000
SIOCGIFFLAGS = 0x8913
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
LAN_SUBNET = '10.78.85'

TESTS = [
    'two processes find each other on lo at ephemeral ports, with the default group and port',
    'they connect with signaling over the LAN path',
    'a message goes each way',
    'the stranger hears announcements and recognises none',
    'a discoverable peer is a handle to the stranger, without its peer ID',
    'a contact on the stranger\'s side only is not enough to find anyone',
    'no peer ID or key in the stranger\'s output',
    'a listener on the group gets announcements and no peer ID or key',
    'captured discovery datagrams, signaling included, hold no peer ID or key',
    'the processes on lo exit cleanly',
    'with no NATTER_INTERFACES, two processes find each other on the network card and connect',
]


def skip(reason):
    print(f'# {reason}', file=sys.stderr)
    sys.exit(1 if os.environ.get('NATTER_NO_SKIP') == '1' else 77)


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


class Peer:
    def __init__(self, name, tool, env, user=None):
        self.name = name
        self.log = []
        args = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        try:
            self.proc = subprocess.Popen([tool], **args, **(user or {}))
            if user:
                print(f'# {name}: runs as uid {user["user"]}', flush=True)
        except OSError as e:
            # Say, a build directory that other users cannot read.
            print(f'# {name}: cannot run as {user}: {e}; running as root', flush=True)
            self.proc = subprocess.Popen([tool], **args)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.peer_id = self.expect('id ').split()[1]
        keys = self.expect('keys ').split()
        self.keys = [bytes.fromhex(keys[1]), bytes.fromhex(keys[2])]

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
                raise TimeoutError(f'{self.name}: no "{prefix}" line')
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise EOFError(f'{self.name} exited before "{prefix}"')
            self.log.append(line)
            print(f'# {self.name}: {line[:120]}', flush=True)
            if line.startswith('failed '):
                raise RuntimeError(line)
            if line.startswith(prefix):
                return line

    def stats(self):
        self.send('stats')
        return {k: int(v) for k, v in (f.split('=') for f in self.expect('stats ').split()[1:])}

    def wait_stats(self, name, at_least, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats[name] >= at_least or time.monotonic() > deadline:
                return stats
            time.sleep(0.5)

    def secrets(self):
        """What must not leak: the peer ID and both public keys."""
        return [self.peer_id.encode(), self.keys[0], self.keys[1]]

    def quit(self):
        try:
            self.send('quit')
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = -9
        # Whatever it printed after the last wait counts too.
        try:
            while (line := self.lines.get(timeout=5)) is not None:
                self.log.append(line)
        except queue.Empty:
            pass
        return code


class Listener:
    """A program of a stranger listening on the group, as anyone on the
    host may: bound to the port with address reuse, joined on lo."""

    def __init__(self):
        self.datagrams = []
        self.stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((GROUP, PORT))
        mreq = socket.inet_aton(GROUP) + socket.inet_aton('127.0.0.1')
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            if select.select([self.sock], [], [], 0.2)[0]:
                self.datagrams.append(self.sock.recv(65536))

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


class Capture:
    """Every UDP datagram on lo, seen by a packet socket: announcements,
    and the unicast signaling a listener on the group cannot see."""

    def __init__(self, ifname):
        self.payloads = []
        self.stop = threading.Event()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((ifname, 0))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            if not select.select([self.sock], [], [], 0.2)[0]:
                continue
            frame, info = self.sock.recvfrom(65536)
            if info[2] == socket.PACKET_OUTGOING:
                continue  # on lo, every frame also comes back in
            if len(frame) < 14 + 20 or struct.unpack('!H', frame[12:14])[0] != ETH_P_IP:
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0f) * 4
            if ip[9] != socket.IPPROTO_UDP or len(ip) < ihl + 8:
                continue
            dst = socket.inet_ntoa(ip[16:20])
            dport = struct.unpack('!H', ip[ihl + 2:ihl + 4])[0]
            self.payloads.append((dst, dport, ip[ihl + 8:]))

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


def other_user():
    """Another user of this host, for the stranger: the port is shared
    between users too."""
    try:
        nobody = pwd.getpwnam('nobody')
    except KeyError:
        return None
    return dict(user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])


def leaks(blobs, peers):
    """The names of the peers whose peer ID or keys occur in blobs."""
    return sorted({p.name for p in peers for s in p.secrets() for b in blobs if s in b})


def check(results, fn):
    try:
        ok = bool(fn())
    except Exception as e:
        print(f'# {type(e).__name__}: {e}', flush=True)
        ok = False
    results.append(ok)
    return ok


def found_at(peer, other, subnet):
    line = peer.expect(f'found {other.peer_id}')
    host, port = line.split()[2].rsplit(':', 1)
    return host.startswith(subnet) and int(port) not in (0, PORT)


def connect_and_talk(a, b):
    a.expect(f'connected {b.peer_id}')
    b.expect(f'connected {a.peer_id}')
    return True


def exchange(a, b):
    a.send(f'send hello-from-{a.name}')
    b.send(f'send hello-from-{b.name}')
    return (b.expect('message ') == f'message hello-from-{a.name}' and
            a.expect('message ') == f'message hello-from-{b.name}')


def on_lo(tool, results):
    env = dict(os.environ, NATTER_INTERFACES='lo')
    listener = Listener()
    capture = Capture('lo')
    peers = []
    try:
        c = Peer('c', tool, env, other_user())
        peers.append(c)
        c.send('start')
        a = Peer('a', tool, env)
        peers.append(a)
        b = Peer('b', tool, env)
        peers.append(b)
        a.send(f'contact {b.peer_id}')
        b.send(f'contact {a.peer_id}')

        check(results, lambda: found_at(a, b, '127.0.0.1') and found_at(b, a, '127.0.0.1'))
        connected = check(results, lambda: connect_and_talk(a, b))
        check(results, lambda: connected and exchange(a, b))

        def stranger_hears():
            stats = c.wait_stats('announcements-received', 4)
            return stats['announcements-received'] >= 4 and stats['announcements-recognised'] == 0
        check(results, stranger_hears)

        def discoverable_is_a_handle():
            a.send('discoverable on')
            handle = c.expect('nearby ').split()[1]
            return len(handle) == 16 and all(x in '0123456789abcdef' for x in handle)
        check(results, discoverable_is_a_handle)

        def one_sided():
            before = c.stats()['announcements-received']
            c.send(f'contact {a.peer_id}')
            stats = c.wait_stats('announcements-received', before + 2)
            return (stats['announcements-received'] >= before + 2 and
                    stats['announcements-recognised'] == 0 and
                    stats['signals-received'] == 0)
        check(results, one_sided)

        stats_a, stats_b = a.stats(), b.stats()
        codes = [p.quit() for p in peers]
        peers = []
        print(f'# exit codes {codes}; a: {stats_a}; b: {stats_b}', flush=True)

        # The stranger's own command 'contact A' is not in its output: what
        # it printed is what it learnt.
        def stranger_output():
            text = '\n'.join(c.log)
            named = [line for line in c.log if line.split()[0] in ('found', 'revealed', 'connected')]
            secrets = [s for p in (a, b) for s in [p.peer_id] + [k.hex() for k in p.keys]]
            return not named and not any(s in text for s in secrets)
        check(results, stranger_output)
    finally:
        for p in peers:
            p.proc.kill()
        listener.close()
        capture.close()

    def group_listener():
        grams = listener.datagrams
        print(f'# the listener got {len(grams)} datagrams', flush=True)
        return (len(grams) >= 6 and all(g[:4] == b'NTLA' for g in grams) and
                not leaks(grams, [a, b, c]))
    check(results, group_listener)

    def captured():
        ours = [p for dst, port, p in capture.payloads if p[:4] in MAGICS]
        kinds = {m.decode(): sum(1 for p in ours if p[:4] == m) for m in MAGICS}
        everything = [p for dst, port, p in capture.payloads]
        print(f'# captured {len(capture.payloads)} UDP datagrams on lo, discovery ones {kinds}; '
              f'peer IDs or keys in any: {leaks(everything, [a, b, c]) or "none"}', flush=True)
        return kinds['NTLA'] >= 6 and kinds['NTLS'] >= 2 and not leaks(ours, [a, b, c])
    check(results, captured)

    results.append(all(code == 0 for code in codes))


def on_network_card(tool, results):
    env = {k: v for k, v in os.environ.items() if k != 'NATTER_INTERFACES'}
    run('ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1')
    run('ip', 'addr', 'add', f'{LAN_SUBNET}.1/24', 'dev', 'eth0')
    run('ip', 'link', 'set', 'eth0', 'up')
    run('ip', 'link', 'set', 'eth1', 'up')
    peers = []
    try:
        a = Peer('a2', tool, env)
        peers.append(a)
        b = Peer('b2', tool, env)
        peers.append(b)
        a.send(f'contact {b.peer_id}')
        b.send(f'contact {a.peer_id}')

        def find_and_connect():
            return (found_at(a, b, LAN_SUBNET) and found_at(b, a, LAN_SUBNET) and
                    connect_and_talk(a, b) and exchange(a, b))
        ok = check(results, find_and_connect)
        codes = [p.quit() for p in peers]
        peers = []
        print(f'# exit codes {codes}', flush=True)
        results[-1] = ok and all(code == 0 for code in codes)
    finally:
        for p in peers:
            p.proc.kill()
        subprocess.run(['ip', 'link', 'del', 'eth0'], stderr=subprocess.DEVNULL)


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: run-in-netns.sh /usr/bin/python3 host-test.py PATH/TO/natter-lan-peer')
    tool = sys.argv[1]
    if os.geteuid() != 0:
        skip('needs root for a network namespace')
    if shutil.which('ip') is None:
        skip('no ip (iproute2)')
    # Announcing here must not reach any real network.
    names = sorted(name for _, name in socket.if_nameindex())
    if names != ['lo']:
        skip(f'not in a network namespace with only lo (found {", ".join(names)}): '
             'run through tests/lan/run-in-netns.sh')
    # Not /sys/class/net: sysfs shows the namespace it was mounted in.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack('16sH14x', b'lo', 0))
    if not struct.unpack('16sH14x', ifreq)[1] & IFF_MULTICAST:
        skip('no multicast on lo: run through tests/lan/run-in-netns.sh')

    print(f'1..{len(TESTS)}', flush=True)
    results = []
    try:
        on_lo(tool, results)
        on_network_card(tool, results)
    except Exception as e:
        print(f'# {type(e).__name__}: {e}', flush=True)

    for i, (name, ok) in enumerate(zip(TESTS, results + [False] * len(TESTS)), 1):
        print(f'{"ok" if ok else "not ok"} {i} {name}', flush=True)
    sys.exit(0 if len(results) == len(TESTS) and all(results) else 1)


if __name__ == '__main__':
    main()
