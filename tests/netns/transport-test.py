#!/usr/bin/env python3
# transport-test.py: peer connections across NATs, in network namespaces
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Usage: transport-test.py PATH/TO/natter-test-peer PATH/TO/natter-rendezvous
#
# Builds throw-away topologies with topology.sh (see README.md), runs one
# natter-test-peer in each peer namespace, relays their "signal" lines and
# checks, printing TAP:
#   (a) preserving/preserving NATs: the peers connect through server- or
#       peer-reflexive candidates, not a relay and not host to host;
#   (b) preserving/symmetric and symmetric/symmetric: they connect through
#       the TURN relay;
#   (c) 10 % random loss each way: 10,000 messages arrive in order, intact;
#   (d) the link cut for 20 s: each side declares the peer lost within 15 s,
#       and a new connection works once the link is back;
#   (e) the Internet path: natter-rendezvous runs in the public namespace,
#       the peers (natter-test-peer --rendezvous) register through their
#       NATs, see each other online, and connect with the signaling carried
#       only by the server (this script relays nothing), under
#       preserving/preserving and preserving/symmetric (through TURN).
# NATTER_TRANSPORT_LOG_DIR=DIR keeps every peer's debug log in DIR.
# Skips (TAP plan 1..0 # SKIP, exit 0) when it cannot run here (not root, no namespaces, no coturn), or
# 1 instead when NATTER_NO_SKIP=1.  Every wait is bounded, and every
# topology is torn down on the way out, whatever happens.

import os
import queue
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOPOLOGY = os.path.join(HERE, 'topology.sh')

CONNECT_TIMEOUT = 30        # s, from "connect" to connected on both sides
LOSS_PERCENT = 10
LOSS_MESSAGES = 10000
LOSS_MAX_SIZE = 4096
LOSS_TIMEOUT = 150          # s, for the 10,000 messages
CUT_SECONDS = 20
LOST_LIMIT = 15.0           # s, from the cut to "peer lost" on each side
SMALL_RUN = 200             # messages checked over every new connection
SMALL_RUN_TIMEOUT = 30
REGISTER_TIMEOUT = 20       # s, from start to registered and presence on both sides
RENDEZVOUS_KINDS = (('preserving', 'preserving'), ('preserving', 'symmetric'))

TESTS = [
    'preserving/preserving: the peers connect',
    'preserving/preserving: the selected pair is server/peer reflexive, not relayed, not host to host',
    f'{LOSS_PERCENT} % loss each way: {LOSS_MESSAGES} messages arrive, in order and intact',
    f'link cut: each side declares the peer lost within {LOST_LIMIT:.0f} s',
    'link restored: a new connection succeeds and carries messages',
    'preserving/symmetric: the peers connect',
    'preserving/symmetric: the selected pair goes through the TURN relay, and carries messages',
    'symmetric/symmetric: the peers connect',
    'symmetric/symmetric: the selected pair goes through the TURN relay, and carries messages',
    'rendezvous, preserving/preserving: both peers register through their NATs and see each other online',
    'rendezvous, preserving/preserving: the peers connect, signaled only through the server',
    'rendezvous, preserving/preserving: reflexive pair, and messages arrive each way',
    'rendezvous, preserving/symmetric: both peers register through their NATs and see each other online',
    'rendezvous, preserving/symmetric: the peers connect, signaled only through the server',
    'rendezvous, preserving/symmetric: the selected pair goes through the TURN relay, and messages arrive each way',
    'every natter-rendezvous stopped cleanly on SIGTERM (status 0)',
    'every natter-test-peer exited cleanly (status 0: no crash, no sanitizer report)',
]


class Failure(Exception):
    pass


# ---- TAP -----------------------------------------------------------------

class Tap:
    def __init__(self, names):
        self.names = names
        self.next = 0
        self.failed = 0
        print(f'1..{len(names)}', flush=True)

    def diag(self, text):
        for line in str(text).splitlines() or ['']:
            print(f'# {line}', flush=True)

    def result(self, ok, detail=None):
        name = self.names[self.next]
        self.next += 1
        if not ok:
            self.failed += 1
        suffix = f' ({detail})' if detail else ''
        print(f'{"ok" if ok else "not ok"} {self.next} - {name}{suffix}', flush=True)
        return ok

    def fail_rest(self, count, reason):
        for _ in range(count):
            self.result(False, reason)


def skip(reason):
    if os.environ.get('NATTER_NO_SKIP') == '1':
        print(f'Bail out! cannot run: {reason}', flush=True)
        sys.exit(1)
    # meson reads a TAP test's skip from the plan, with exit status 0.
    print(f'1..0 # SKIP {reason}', flush=True)
    sys.exit(0)


# ---- Topologies ----------------------------------------------------------

class Topology:
    live = []

    def __init__(self, kind_a, kind_b):
        env = dict(os.environ, NATTER_NETNS_OWNER=str(os.getpid()))
        env.pop('NATTER_NETNS_TAG', None)
        proc = subprocess.run([TOPOLOGY, 'up', kind_a, kind_b], env=env,
                              capture_output=True, text=True, timeout=120)
        self.vars = dict(line.split('=', 1) for line in proc.stdout.splitlines() if '=' in line)
        self.tag = self.vars.get('NATTER_NETNS_TAG')
        if proc.returncode != 0 or not self.tag:
            raise Failure(f'topology.sh up {kind_a} {kind_b} failed ({proc.returncode}): '
                          f'{proc.stderr.strip()}')
        Topology.live.append(self)
        self.kinds = f'{kind_a}/{kind_b}'
        self._route_public_namespace()

    def _route_public_namespace(self):
        """Gives the public namespace a default route into a sink.

        Without one, coturn's sendto() towards an address outside
        203.0.113.0/24 (a peer's private host candidate, which ICE pairs
        with the relay) fails with ENETUNREACH, and coturn then tears down
        the whole allocation: no relayed pair can work.  A server on the
        Internet has a default route, and such packets are just lost.  The
        sink is a veth pair inside the namespace with a permanent neighbour
        entry: frames go to a MAC address nobody has and are dropped there,
        so nothing leaves the namespace."""
        pub = self['NATTER_NS_PUBLIC']
        shown = subprocess.run(['ip', '-n', pub, 'route', 'show', 'default'],
                               capture_output=True, text=True, timeout=10)
        if shown.returncode == 0 and shown.stdout.strip():
            return
        for args in (['link', 'add', 'sink', 'type', 'veth', 'peer', 'name', 'sink-end'],
                     ['link', 'set', 'sink-end', 'up'],
                     ['link', 'set', 'sink', 'up'],
                     ['neigh', 'add', '192.0.2.1', 'lladdr', '02:00:00:00:00:01',
                      'dev', 'sink', 'nud', 'permanent'],
                     ['route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'sink', 'onlink']):
            proc = subprocess.run(['ip', '-n', pub, *args], capture_output=True, text=True, timeout=10)
            if proc.returncode != 0:
                self.down()
                raise Failure(f'ip -n {pub} {" ".join(args)}: {proc.stderr.strip()}')

    def __getitem__(self, name):
        return self.vars[name]

    def run(self, *args):
        proc = subprocess.run([TOPOLOGY, '-t', self.tag, *args],
                              capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise Failure(f'topology.sh {" ".join(args)} failed: {proc.stderr.strip()}')

    def down(self):
        if self in Topology.live:
            Topology.live.remove(self)
            subprocess.run([TOPOLOGY, 'down', self.tag], capture_output=True, timeout=60)

    @classmethod
    def down_all(cls):
        for topology in list(cls.live):
            try:
                topology.down()
            except Exception as e:  # keep tearing down the others
                print(f'# teardown of {topology.tag}: {e}', flush=True)

    def peer_args(self):
        return ['--stun', f'{self["NATTER_STUN_HOST"]}:{self["NATTER_STUN_PORT"]}',
                '--turn', ':'.join([self['NATTER_TURN_HOST'], self['NATTER_TURN_PORT'],
                                    self['NATTER_TURN_USER'], self['NATTER_TURN_PASSWORD']])]


# ---- Peers ---------------------------------------------------------------

class Peer:
    """One natter-test-peer in a namespace, and what it last reported."""

    count = 0

    def __init__(self, name, namespace, binary, args, events):
        env = dict(os.environ)
        # The unit tests' NATTER_INTERFACES=lo would confine ICE to loopback,
        # and NATTER_INTERFACES overrides the command line: drop it, so that
        # the peer gathers on its namespace's own interfaces.
        env.pop('NATTER_INTERFACES', None)
        self.name = name
        self.events = events
        self.stderr_tail = []
        log_dir = os.environ.get('NATTER_TRANSPORT_LOG_DIR')
        if log_dir:
            # Full debug logs of every peer, for looking into a failure.
            env['G_MESSAGES_DEBUG'] = 'all'
            Peer.count += 1
            stderr = open(os.path.join(log_dir, f'{namespace}-{Peer.count}.log'), 'w')
        else:
            stderr = subprocess.PIPE
        self.proc = subprocess.Popen(['ip', 'netns', 'exec', namespace, binary, *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=stderr, text=True, bufsize=1, env=env)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        if log_dir:
            stderr.close()
            self.stderr_reader = None
        else:
            self.stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
            self.stderr_reader.start()
        self.peer_id = None
        self.registered = None      # time of the first "rendezvous registered"
        self.presence = {}          # peer ID -> (time, online)
        self.signal_lines = 0       # "signal" lines printed (none with --rendezvous)
        self.reset()

    def reset(self):
        self.state = None           # (time, words) of the last "state" line
        self.connected = None       # (time, words)
        self.final = None           # (time, words): failed or closed
        self.lost = None
        self.progress = None
        self.done = None
        self.sent = None
        self.aborted = None
        self.errors = []

    def _read_stdout(self):
        for line in self.proc.stdout:
            self.events.put((time.monotonic(), self, line.rstrip('\n')))
        self.events.put((time.monotonic(), self, None))

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr_tail = (self.stderr_tail + [line.rstrip('\n')])[-20:]

    def write(self, line):
        try:
            self.proc.stdin.write(line + '\n')
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise Failure(f'peer {self.name} has exited')

    def stop(self):
        """Asks the peer to quit; returns its exit status (killed if it hangs)."""
        try:
            self.write('quit')
            self.proc.stdin.close()
        except (Failure, OSError):
            pass
        try:
            status = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            status = 'hung, killed'
        if self.stderr_reader:
            self.stderr_reader.join(timeout=5)
        return status


class Session:
    """Two peers, A in peerA and B in peerB, with signaling relayed by this
    script, or carried by a rendezvous server when rendezvous is its URL."""

    def __init__(self, topology, binary, rendezvous=None):
        self.events = queue.Queue()
        self.log = []
        self.kinds = topology.kinds
        self.relay = rendezvous is None
        args = topology.peer_args()
        if rendezvous:
            args += ['--rendezvous', rendezvous]
        self.started = time.monotonic()
        self.a = Peer('A', topology['NATTER_NS_PEER_A'], binary, args, self.events)
        self.b = Peer('B', topology['NATTER_NS_PEER_B'], binary, args, self.events)
        self.a.other, self.b.other = self.b, self.a
        self.peers = (self.a, self.b)
        self.wait(lambda: self.a.peer_id and self.b.peer_id, 10, 'the peers to start')

    def _handle(self, when, peer, line):
        if line is None:
            self.log.append(f'{when:.3f} {peer.name} <exited {peer.proc.poll()}>')
            raise Failure(f'peer {peer.name} exited unexpectedly ({peer.proc.poll()}); '
                          f'stderr: {" | ".join(peer.stderr_tail[-5:])}')
        words = line.split(' ')
        kind = words[0]
        if kind == 'signal':
            peer.signal_lines += 1
            if self.relay:
                peer.other.write(line)
                return
        self.log.append(f'{when:.3f} {peer.name} {line}')
        if kind == 'id':
            peer.peer_id = words[1]
        elif kind == 'state':
            peer.state = (when, words[1:])
            if words[1] == 'connected':
                peer.connected = (when, words[2:])
            elif words[1] in ('failed', 'closed'):
                peer.final = (when, words[1:])
        elif kind == 'lost':
            peer.lost = (when, int(words[1]))
        elif kind == 'progress':
            peer.progress = (when, words[1:])
        elif kind == 'done':
            peer.done = (when, words[1:])
        elif kind == 'sent':
            peer.sent = (when, words[1:])
        elif kind == 'send-aborted':
            peer.aborted = (when, words[1:])
        elif kind == 'error':
            peer.errors.append(line)
        elif kind == 'rendezvous' and words[1:2] == ['registered']:
            peer.registered = peer.registered or when
        elif kind == 'presence' and len(words) == 3:
            peer.presence[words[1]] = (when, words[2] == 'online')

    def wait(self, condition, timeout, what):
        """Relays and records events until condition() holds; False on timeout."""
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                when, peer, line = self.events.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self._handle(when, peer, line)
        return True

    def sleep(self, seconds):
        self.wait(lambda: False, seconds, 'time to pass')

    def connect(self):
        """Starts a new connection on both sides; returns (ok, detail)."""
        for peer in self.peers:
            peer.reset()
        started = time.monotonic()
        self.a.write(f'connect {self.b.peer_id}')
        self.b.write(f'connect {self.a.peer_id}')
        both = self.wait(lambda: (all(p.connected for p in self.peers) or
                                  any(p.final for p in self.peers)),
                         CONNECT_TIMEOUT, 'connected')
        if not both:
            return False, f'not connected after {CONNECT_TIMEOUT} s'
        failed = [p for p in self.peers if p.final]
        if failed:
            return False, f'{failed[0].name}: state {" ".join(failed[0].final[1])}'
        elapsed = max(p.connected[0] for p in self.peers) - started
        return True, f'{elapsed * 1000:.0f} ms'

    def transfer(self, sender, count, max_size, timeout):
        """Sends count messages; returns (ok, detail, seconds)."""
        receiver = sender.other
        receiver.done = receiver.progress = None
        sender.sent = sender.aborted = None
        sender.errors = []
        # The receiver learns the count from the first message (its run id
        # starts a new count), so it needs no "expect".
        started = time.monotonic()
        sender.write(f'send {count} {max_size}')
        finished = self.wait(lambda: ((receiver.done and sender.sent) or sender.aborted or
                                      any(p.final for p in self.peers) or sender.errors),
                             timeout, 'the messages')
        elapsed = time.monotonic() - started
        if not finished:
            progress = ' '.join(receiver.progress[1]) if receiver.progress else 'none'
            return False, f'timed out after {timeout} s (last progress: {progress})', elapsed
        if sender.errors:
            return False, sender.errors[-1], elapsed
        if not receiver.done:
            why = (f'send-aborted {" ".join(sender.aborted[1])}' if sender.aborted else
                   next(f'{p.name}: state {" ".join(p.final[1])}' for p in self.peers if p.final))
            return False, why, elapsed
        received, in_order, corrupt = receiver.done[1][:3]
        if int(received) != count or in_order != 'yes' or int(corrupt) != 0:
            return False, f'received {received}/{count}, in order {in_order}, corrupt {corrupt}', elapsed
        return True, f'{count} messages, {receiver.done[1][3]} bytes', elapsed

    exits = []                      # (peer, status) of every peer stopped

    def stop(self):
        for peer in self.peers:
            status = peer.stop()
            Session.exits.append((f'{self.kinds} {peer.name}', status, peer.stderr_tail))

    def dump(self, tap, lines=40):
        tap.diag('last events:')
        for line in self.log[-lines:]:
            tap.diag(f'  {line}')
        for peer in self.peers:
            if peer.stderr_tail:
                tap.diag(f'peer {peer.name} stderr:')
                for line in peer.stderr_tail[-10:]:
                    tap.diag(f'  {line}')


# ---- Cases ---------------------------------------------------------------

def pair_of(peer):
    """(local type, remote type, local address, remote address)."""
    words = peer.connected[1]
    return words[0], words[1], words[2], words[3]


def describe_pairs(session):
    return '; '.join(f'{p.name}: {" ".join(pair_of(p)[:2])} {pair_of(p)[2]} -> {pair_of(p)[3]}'
                     for p in session.peers)


def case_reflexive(tap, session, topology):
    ok, detail = session.connect()
    if not tap.result(ok, detail):
        tap.fail_rest(1, 'not connected')
        session.dump(tap)
        return False
    tap.diag(f'preserving/preserving: time to connect {detail}')
    tap.diag(f'pairs: {describe_pairs(session)}')
    good = True
    reflexive = ('srflx', 'prflx')
    for peer in session.peers:
        local, remote = pair_of(peer)[:2]
        if 'relay' in (local, remote) or (local not in reflexive and remote not in reflexive):
            good = False
    tap.result(good, describe_pairs(session))
    return True


def case_relayed(tap, topology, binary):
    session = None
    try:
        session = Session(topology, binary)
        ok, detail = session.connect()
        if not tap.result(ok, detail):
            tap.fail_rest(1, 'not connected')
            session.dump(tap)
            return
        tap.diag(f'{topology.kinds}: time to connect {detail}')
        pairs = describe_pairs(session)
        tap.diag(f'pairs: {pairs}')
        relayed = all('relay' in pair_of(p)[:2] for p in session.peers)
        ok_ab, detail_ab, _ = session.transfer(session.a, SMALL_RUN, 1024, SMALL_RUN_TIMEOUT)
        ok_ba, detail_ba, _ = session.transfer(session.b, SMALL_RUN, 1024, SMALL_RUN_TIMEOUT)
        if not tap.result(relayed and ok_ab and ok_ba,
                          f'{pairs}; A->B {detail_ab}; B->A {detail_ba}'):
            session.dump(tap)
    finally:
        if session:
            session.stop()


def case_loss(tap, session, topology):
    if not all(p.connected and not p.final for p in session.peers):
        ok, detail = session.connect()
        if not ok:
            tap.result(False, f'could not connect: {detail}')
            return
    topology.run('loss', 'natA', str(LOSS_PERCENT), 'both')
    try:
        ok, detail, elapsed = session.transfer(session.a, LOSS_MESSAGES, LOSS_MAX_SIZE, LOSS_TIMEOUT)
    finally:
        topology.run('loss', 'natA', '0')
    if ok:
        nbytes = int(session.b.done[1][3])
        tap.diag(f'{LOSS_PERCENT} % loss each way (natA): {LOSS_MESSAGES} messages in {elapsed:.1f} s, '
                 f'{LOSS_MESSAGES / elapsed:.0f} messages/s, {nbytes / elapsed / 1e6:.2f} MB/s')
    if not tap.result(ok, detail):
        session.dump(tap)


def case_cut(tap, session, topology):
    if not all(p.connected and not p.final for p in session.peers):
        ok, detail = session.connect()
        if not ok:
            tap.fail_rest(2, f'could not connect before the cut: {detail}')
            return
    cut_at = time.monotonic()
    topology.run('cut', 'natA')
    try:
        # "lost" follows "state failed ... peer-lost" on the same peer.
        session.wait(lambda: all(p.final and (p.lost or p.final[1][1:2] != ['peer-lost'])
                                 for p in session.peers),
                     CUT_SECONDS, 'peer lost')
        results = []
        good = True
        for peer in session.peers:
            if not peer.final:
                good = False
                results.append(f'{peer.name}: still {" ".join(peer.state[1]) if peer.state else "?"}')
                continue
            after = peer.final[0] - cut_at
            code = peer.final[1][1] if len(peer.final[1]) > 1 else '?'
            if peer.final[1][0] != 'failed' or code != 'peer-lost' or after > LOST_LIMIT:
                good = False
            results.append(f'{peer.name}: {" ".join(peer.final[1])} after {after:.2f} s')
            tap.diag(f'link cut: {peer.name} detected the loss {after:.2f} s after the cut '
                     f'(reported {peer.lost[1] if peer.lost else "?"} ms since the last message)')
        if not tap.result(good, '; '.join(results)):
            session.dump(tap)
        # The link stays down for the whole CUT_SECONDS.
        session.sleep(max(0.0, cut_at + CUT_SECONDS - time.monotonic()))
    finally:
        topology.run('restore', 'natA')
    tap.diag(f'link restored after {time.monotonic() - cut_at:.1f} s')

    ok, detail = session.connect()
    if ok:
        tap.diag(f'reconnected in {detail}; pairs: {describe_pairs(session)}')
        ok, detail, _ = session.transfer(session.a, SMALL_RUN, 1024, SMALL_RUN_TIMEOUT)
        if ok:
            ok, detail, _ = session.transfer(session.b, SMALL_RUN, 1024, SMALL_RUN_TIMEOUT)
    if not tap.result(ok, detail):
        session.dump(tap)


class RendezvousServer:
    """natter-rendezvous in the public namespace, on the STUN host's address."""

    stops = []                      # (kinds, status) of every server stopped

    def __init__(self, topology, binary):
        self.kinds = topology.kinds
        self.stderr_tail = []
        self.proc = subprocess.Popen(['ip', 'netns', 'exec', topology['NATTER_NS_PUBLIC'], binary,
                                      '--listen', topology['NATTER_STUN_HOST'], '--port', '0'],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        lines = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        try:
            line = lines.get(timeout=10)
        except queue.Empty:
            line = ''
        # "natter-rendezvous: listening on ws://203.0.113.1:PORT/v1"
        self.url = line.split()[-1] if line.startswith('natter-rendezvous: listening on ws://') else None
        if not self.url:
            self.stop()
            raise Failure(f'natter-rendezvous did not start ({line.strip() or "no output"}); '
                          f'stderr: {" | ".join(self.stderr_tail[-5:])}')

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr_tail = (self.stderr_tail + [line.rstrip('\n')])[-20:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            status = 'hung, killed'
        RendezvousServer.stops.append((self.kinds, status, self.stderr_tail))
        return status


def case_rendezvous(tap, topology, binary, server_binary):
    """(e): three points; the server and the peers are stopped on the way out."""
    server = None
    session = None
    try:
        server = RendezvousServer(topology, server_binary)
        tap.diag(f'rendezvous, {topology.kinds}: natter-rendezvous at {server.url} in '
                 f'{topology["NATTER_NS_PUBLIC"]}')
        session = Session(topology, binary, server.url)
        a, b = session.peers
        # Both list each other: presence and delivery are between mutual contacts.
        a.write(f'contact {b.peer_id}')
        b.write(f'contact {a.peer_id}')
        session.wait(lambda: (all(p.registered for p in session.peers) and
                              a.presence.get(b.peer_id, (0, False))[1] and
                              b.presence.get(a.peer_id, (0, False))[1]),
                     REGISTER_TIMEOUT, 'registration and presence')
        registered = [p.registered - session.started for p in session.peers if p.registered]
        online = [p.presence[p.other.peer_id][0] - session.started for p in session.peers
                  if p.presence.get(p.other.peer_id, (0, False))[1]]
        if len(registered) == 2:
            tap.diag(f'rendezvous, {topology.kinds}: time to register '
                     f'{max(registered) * 1000:.0f} ms (A {registered[0] * 1000:.0f} ms, '
                     f'B {registered[1] * 1000:.0f} ms, from the start of the processes)')
        if len(online) == 2:
            tap.diag(f'rendezvous, {topology.kinds}: both online to each other after '
                     f'{max(online) * 1000:.0f} ms')
        if not tap.result(len(registered) == 2 and len(online) == 2,
                          f'registered {len(registered)}/2, online {len(online)}/2 '
                          f'within {REGISTER_TIMEOUT} s'):
            session.dump(tap)
            tap.fail_rest(2, 'not registered')
            return

        ok, detail = session.connect()
        relayed_lines = sum(p.signal_lines for p in session.peers)
        if ok and relayed_lines:
            ok, detail = False, f'{relayed_lines} "signal" lines on stdout'
        if not tap.result(ok, detail):
            session.dump(tap)
            tap.fail_rest(1, 'not connected')
            return
        pairs = describe_pairs(session)
        tap.diag(f'rendezvous, {topology.kinds}: time to connect {detail}')
        tap.diag(f'pairs: {pairs}')
        if 'symmetric' in topology.kinds:
            good_pair = all('relay' in pair_of(p)[:2] for p in session.peers)
        else:
            good_pair = all('relay' not in pair_of(p)[:2] and
                            ('srflx' in pair_of(p)[:2] or 'prflx' in pair_of(p)[:2])
                            for p in session.peers)
        ok_ab, detail_ab, _ = session.transfer(session.a, SMALL_RUN, 1024, SMALL_RUN_TIMEOUT)
        ok_ba, detail_ba, _ = session.transfer(session.b, SMALL_RUN, 1024, SMALL_RUN_TIMEOUT)
        if not tap.result(good_pair and ok_ab and ok_ba,
                          f'{pairs}; A->B {detail_ab}; B->A {detail_ba}'):
            session.dump(tap)
    finally:
        if session:
            session.stop()
        if server:
            status = server.stop()
            tap.diag(f'rendezvous, {topology.kinds}: natter-rendezvous stopped ({status})')


# ---- Main ----------------------------------------------------------------

def on_terminate(signum, frame):
    raise SystemExit(128 + signum)


def main():
    if len(sys.argv) != 3:
        print('usage: transport-test.py PATH/TO/natter-test-peer PATH/TO/natter-rendezvous',
              file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    server_binary = os.path.abspath(sys.argv[2])
    for path in (binary, server_binary):
        if not os.access(path, os.X_OK):
            print(f'Bail out! {path} is not executable', flush=True)
            return 1

    if os.geteuid() != 0:
        skip('needs root for network namespaces')
    check = subprocess.run([TOPOLOGY, 'check'], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, NATTER_NO_SKIP='0'))
    if check.returncode != 0:
        reason = (check.stderr.strip() or check.stdout.strip() or 'topology.sh check failed')
        skip(' '.join(reason.split()))

    signal.signal(signal.SIGTERM, on_terminate)
    signal.signal(signal.SIGINT, on_terminate)
    signal.signal(signal.SIGHUP, on_terminate)

    tap = Tap(TESTS)
    started = time.monotonic()
    try:
        # (a), (c) and (d) share a preserving/preserving topology.
        session = None
        try:
            topology = Topology('preserving', 'preserving')
            session = Session(topology, binary)
            if case_reflexive(tap, session, topology):
                case_loss(tap, session, topology)
                case_cut(tap, session, topology)
            else:
                tap.fail_rest(3, 'no connection under preserving/preserving')
        except Failure as e:
            tap.diag(f'preserving/preserving: {e}')
            if session:
                session.dump(tap)
            tap.fail_rest(5 - tap.next, str(e))
        finally:
            if session:
                session.stop()
            Topology.down_all()

        # (b): a symmetric NAT on one side, then on both.
        for kinds in (('preserving', 'symmetric'), ('symmetric', 'symmetric')):
            first = tap.next
            try:
                case_relayed(tap, Topology(*kinds), binary)
            except Failure as e:
                tap.diag(f'{"/".join(kinds)}: {e}')
                tap.fail_rest(first + 2 - tap.next, str(e))
            finally:
                Topology.down_all()

        # (e): through the rendezvous server.
        for kinds in RENDEZVOUS_KINDS:
            first = tap.next
            try:
                case_rendezvous(tap, Topology(*kinds), binary, server_binary)
            except Failure as e:
                tap.diag(f'rendezvous, {"/".join(kinds)}: {e}')
                tap.fail_rest(first + 3 - tap.next, str(e))
            finally:
                Topology.down_all()
    finally:
        Topology.down_all()

    unclean_servers = [(kinds, status, tail) for kinds, status, tail in RendezvousServer.stops
                       if status != 0]
    for kinds, status, tail in unclean_servers:
        tap.diag(f'natter-rendezvous ({kinds}) exited with {status}')
        for line in tail[-10:]:
            tap.diag(f'  {line}')
    tap.result(not unclean_servers and len(RendezvousServer.stops) == len(RENDEZVOUS_KINDS),
               f'{len(RendezvousServer.stops) - len(unclean_servers)} of {len(RENDEZVOUS_KINDS)}')

    unclean = [(name, status, tail) for name, status, tail in Session.exits if status != 0]
    for name, status, tail in unclean:
        tap.diag(f'{name} exited with {status}')
        for line in tail[-10:]:
            tap.diag(f'  {line}')
    tap.result(not unclean and len(Session.exits) > 0,
               f'{len(Session.exits) - len(unclean)} of {len(Session.exits)}')

    tap.diag(f'total {time.monotonic() - started:.1f} s')
    return 1 if tap.failed else 0


if __name__ == '__main__':
    sys.exit(main())
