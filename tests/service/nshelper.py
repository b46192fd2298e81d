# nshelper.py: shared code of the service tests in network namespaces
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Used by netns-direct.py, faults.py, relay.py, offline.py and
# introduction.py (tests/service/).  It provides:
#
#   - Tap: TAP output, with the plan printed at the end, and skip(), which
#     prints "1..0 # SKIP reason" (or fails with NATTER_NO_SKIP=1);
#   - require(): root, iproute2, nftables, the binaries: or skip;
#   - Hub: a throw-away switch namespace holding a bridge (and the
#     rendezvous server's address) and one host namespace per peer, each
#     with one veth "eth0" on the bridge.  Nothing is created in, or
#     attached to, the root namespace, and no namespace has a default
#     route, so no packet can leave the machine.  Per-host nftables rules
#     block an address, add random loss, or cut everything;
#   - Topology: tests/netns/topology.sh (two peers behind NAT routers, a
#     public namespace with coturn);
#   - Server: natter-rendezvous inside a namespace;
#   - Peer: one "natter-cli run" process inside a namespace, with its
#     JSON events (docs/cli.md) recorded by a reader thread;
#   - cleanup of every process and namespace on the way out, on failure,
#     SIGTERM (meson's timeout) or SIGINT too.
#
# Only the Python standard library.  Run as root.

import atexit
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOPOLOGY = os.path.join(HERE, '..', 'netns', 'topology.sh')

STATE_RANK = {"queued": 0, "sent": 1, "failed": 2, "delivered": 3, "read": 4}
BAD_LOG = ("CRITICAL", "runtime error:", "AddressSanitizer", "LeakSanitizer")


class Bail(Exception):
    pass


# ---- TAP -----------------------------------------------------------------

class Tap:
    def __init__(self):
        self.results = []
        self.dumpers = []          # callables printing diagnostics on failure

    def diag(self, text):
        for line in str(text).splitlines() or ['']:
            print(f'# {line}', flush=True)

    def ok(self, cond, name, diag=None):
        self.results.append(bool(cond))
        print(f"{'ok' if cond else 'not ok'} {len(self.results)} - {name}", flush=True)
        if not cond:
            if diag is not None:
                self.diag(diag)
            for dump in self.dumpers:
                try:
                    dump()
                except Exception as e:          # diagnostics must not hide the failure
                    self.diag(f'(dump failed: {e})')
        return bool(cond)

    def must(self, cond, name, diag=None):
        if not self.ok(cond, name, diag):
            raise Bail(name)

    def passed(self):
        return all(self.results)

    def finish(self, bailed):
        print(f'1..{len(self.results)}', flush=True)
        return 0 if not bailed and self.results and all(self.results) else 1


def skip(reason):
    if os.environ.get('NATTER_NO_SKIP') == '1':
        print(f'Bail out! cannot run: {reason} (NATTER_NO_SKIP=1)', flush=True)
        sys.exit(1)
    print(f'1..0 # SKIP {reason}', flush=True)
    sys.exit(0)


def require(binaries, need_topology=False):
    """Skips unless this machine can build namespaces and run @binaries."""
    if os.geteuid() != 0:
        skip('not root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)')
    for tool in ('ip', 'nft'):
        if shutil.which(tool) is None:
            skip(f"'{tool}' not found (iproute2, nftables)")
    for path in binaries:
        if not os.access(path, os.X_OK):
            skip(f'{path} is not built')
    if need_topology:
        proc = subprocess.run([TOPOLOGY, 'check'], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            skip(proc.stderr.strip().replace('\n', ' ') or 'topology.sh check failed')
        return
    probe = f'ntsprobe{os.getpid()}'
    if subprocess.run(['ip', 'netns', 'add', probe], capture_output=True).returncode != 0:
        skip("'ip netns add' does not work here")
    try:
        rules = ('table inet probe {\n chain c {\n type filter hook input priority 0;\n'
                 ' numgen random mod 100 < 20 drop\n }\n}\n')
        if subprocess.run(['ip', 'netns', 'exec', probe, 'nft', '-f', '-'], input=rules,
                          text=True, capture_output=True).returncode != 0:
            skip('nftables (numgen) not usable inside a network namespace')
    finally:
        subprocess.run(['ip', 'netns', 'del', probe], capture_output=True)


def run(*args, check=True, timeout=30):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise Bail(f'{" ".join(args)}: {proc.stderr.strip()}')
    return proc


# ---- Cleanup -------------------------------------------------------------

_cleanups = []


def on_exit(fn):
    _cleanups.append(fn)


def _cleanup_all():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:
            print(f'# cleanup: {e}', flush=True)


def _on_signal(signum, frame):
    # meson's timeout sends SIGTERM: tear everything down on the way out.
    raise SystemExit(f'signal {signum}')


atexit.register(_cleanup_all)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def _kill_namespace_processes(ns):
    proc = subprocess.run(['ip', 'netns', 'pids', ns], capture_output=True, text=True)
    pids = [int(p) for p in proc.stdout.split() if p.isdigit()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        proc = subprocess.run(['ip', 'netns', 'pids', ns], capture_output=True, text=True)
        pids = [int(p) for p in proc.stdout.split() if p.isdigit()]
        if pids:
            time.sleep(0.1)


# ---- A switch and hosts --------------------------------------------------

class Hub:
    """A bridge in namespace <tag>-hub (address .1, for the rendezvous
    server) and host namespaces <tag>-<name> with eth0 at .11, .12, …"""

    SUBNET = '10.79.0'

    def __init__(self, names):
        self.tag = f'nts{os.getpid()}'
        self.namespaces = []
        on_exit(self.down)
        self.hub = self._ns('hub')
        run('ip', '-n', self.hub, 'link', 'add', 'br0', 'type', 'bridge')
        run('ip', '-n', self.hub, 'addr', 'add', f'{self.SUBNET}.1/24', 'dev', 'br0')
        run('ip', '-n', self.hub, 'link', 'set', 'br0', 'up')
        self.server_ip = f'{self.SUBNET}.1'
        self.hosts = {}
        for i, name in enumerate(names):
            ns = self._ns(name)
            ip = f'{self.SUBNET}.{11 + i}'
            run('ip', '-n', self.hub, 'link', 'add', f'v{name}', 'type', 'veth',
                'peer', 'name', 'eth0', 'netns', ns)
            run('ip', '-n', self.hub, 'link', 'set', f'v{name}', 'master', 'br0')
            run('ip', '-n', self.hub, 'link', 'set', f'v{name}', 'up')
            run('ip', '-n', ns, 'addr', 'add', f'{ip}/24', 'dev', 'eth0')
            run('ip', '-n', ns, 'link', 'set', 'eth0', 'up')
            self.hosts[name] = (ns, ip)
            # The firewall of the host, empty for now: block(), loss(), cut().
            self._nft(name, '''
table inet nt_fw {
    chain input { type filter hook input priority filter; policy accept; }
    chain output { type filter hook output priority filter; policy accept; }
    chain loss_in { type filter hook input priority -10; policy accept; }
    chain loss_out { type filter hook output priority -10; policy accept; }
    chain cut_in { type filter hook input priority -20; policy accept; }
    chain cut_out { type filter hook output priority -20; policy accept; }
}
''')

    def _ns(self, role):
        ns = f'{self.tag}-{role}'
        subprocess.run(['ip', 'netns', 'del', ns], capture_output=True)   # a stale one
        run('ip', 'netns', 'add', ns)
        self.namespaces.append(ns)
        run('ip', '-n', ns, 'link', 'set', 'lo', 'up')
        for key in ('all', 'default'):
            subprocess.run(['ip', 'netns', 'exec', ns, 'sysctl', '-qw',
                            f'net.ipv6.conf.{key}.disable_ipv6=1'], capture_output=True)
        return ns

    def ns(self, name):
        return self.hosts[name][0]

    def ip(self, name):
        return self.hosts[name][1]

    def _nft(self, name, text):
        proc = subprocess.run(['ip', 'netns', 'exec', self.ns(name), 'nft', '-f', '-'],
                              input=text, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise Bail(f'nft in {self.ns(name)}: {proc.stderr.strip()}')

    def block(self, name, address):
        """Drops all traffic between host @name and @address, both ways."""
        self._nft(name, f'add rule inet nt_fw input ip saddr {address} counter drop\n'
                        f'add rule inet nt_fw output ip daddr {address} counter drop\n')

    def loss(self, name, percent):
        """Drops @percent % of the packets that host @name sends and of
        those it receives (numgen random); 0 removes the loss."""
        text = 'flush chain inet nt_fw loss_in\nflush chain inet nt_fw loss_out\n'
        if percent > 0:
            text += (f'add rule inet nt_fw loss_in iifname "eth0" numgen random mod 100 < {percent} counter drop\n'
                     f'add rule inet nt_fw loss_out oifname "eth0" numgen random mod 100 < {percent} counter drop\n')
        self._nft(name, text)

    def cut(self, name):
        """Drops everything on host @name's eth0, both ways."""
        self._nft(name, 'add rule inet nt_fw cut_in iifname "eth0" counter drop\n'
                        'add rule inet nt_fw cut_out oifname "eth0" counter drop\n')

    def restore(self, name):
        self._nft(name, 'flush chain inet nt_fw cut_in\nflush chain inet nt_fw cut_out\n')

    def counters(self, name):
        return run('ip', 'netns', 'exec', self.ns(name), 'nft', 'list', 'table', 'inet', 'nt_fw',
                   check=False).stdout

    def down(self):
        for ns in reversed(self.namespaces):
            _kill_namespace_processes(ns)
            subprocess.run(['ip', 'netns', 'del', ns], capture_output=True)
        self.namespaces = []


# ---- topology.sh ---------------------------------------------------------

class Topology:
    """Two peers behind NAT routers, public namespace with coturn
    (tests/netns/topology.sh)."""

    def __init__(self, kind_a='preserving', kind_b='preserving'):
        env = dict(os.environ, NATTER_NETNS_OWNER=str(os.getpid()))
        env.pop('NATTER_NETNS_TAG', None)
        proc = subprocess.run([TOPOLOGY, 'up', kind_a, kind_b], env=env,
                              capture_output=True, text=True, timeout=120)
        self.vars = dict(line.split('=', 1) for line in proc.stdout.splitlines() if '=' in line)
        self.tag = self.vars.get('NATTER_NETNS_TAG')
        if self.tag:
            on_exit(self.down)
        if proc.returncode != 0 or not self.tag:
            raise Bail(f'topology.sh up {kind_a} {kind_b} failed ({proc.returncode}): '
                       f'{proc.stderr.strip()}')
        self._route_public_namespace()

    def _route_public_namespace(self):
        # As in tests/netns/transport-test.py: a default route into a sink
        # (a veth with a permanent neighbour nobody has), so that coturn can
        # send towards private addresses (and lose the packets) instead of
        # failing with ENETUNREACH and dropping the allocation.
        pub = self['NATTER_NS_PUBLIC']
        for args in (['link', 'add', 'sink', 'type', 'veth', 'peer', 'name', 'sink-end'],
                     ['link', 'set', 'sink-end', 'up'],
                     ['link', 'set', 'sink', 'up'],
                     ['neigh', 'add', '192.0.2.1', 'lladdr', '02:00:00:00:00:01',
                      'dev', 'sink', 'nud', 'permanent'],
                     ['route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'sink', 'onlink']):
            run('ip', '-n', pub, *args)

    def __getitem__(self, name):
        return self.vars[name]

    def peer_args(self):
        return ['--stun', f'{self["NATTER_STUN_HOST"]}:{self["NATTER_STUN_PORT"]}',
                '--turn', f'{self["NATTER_TURN_USER"]}:{self["NATTER_TURN_PASSWORD"]}@'
                          f'{self["NATTER_TURN_HOST"]}:{self["NATTER_TURN_PORT"]}']

    def down(self):
        if self.tag:
            subprocess.run([TOPOLOGY, 'down', self.tag], capture_output=True, timeout=60)
            self.tag = None


# ---- natter-rendezvous ---------------------------------------------------

class Server:
    def __init__(self, binary, ns, address, workdir):
        self.log_path = os.path.join(workdir, f'rendezvous-{time.monotonic_ns()}.log')
        self.log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(['ip', 'netns', 'exec', ns, binary, '--listen', address,
                                      '--port', '0'],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        on_exit(self.kill)
        box = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(15)
        line = box[0] if box else ''
        if 'listening on ' not in line:
            self.kill()
            raise Bail(f'natter-rendezvous did not start: {line!r}')
        self.url = line.split('listening on ', 1)[1].strip()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.log.closed:
            self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return code


# ---- natter-cli run ------------------------------------------------------

class Peer:
    """One "natter-cli run" in a namespace, and every JSON line it printed."""

    all = []

    def __init__(self, name, cli, ns, profile, workdir, args, env_extra=None, interfaces='eth0'):
        self.name = name
        self.stderr_path = os.path.join(workdir, f'{name}-{time.monotonic_ns()}.log')
        self.stderr = open(self.stderr_path, 'wb')
        self.events = []
        self.garbage = []
        self.cond = threading.Condition()
        self.next_id = 1
        self.eof = False
        self.replies = {}             # tag -> reply or error event
        self.states = {}              # msgId -> set of states seen
        self.received = []            # message-received events, in order
        env = dict(os.environ)
        for var in ('XDG_DATA_HOME', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'XDG_STATE_HOME'):
            env[var] = os.path.join(workdir, var.lower())
        # NATTER_INTERFACES wins over --interfaces: set it to the namespace's.
        env['NATTER_INTERFACES'] = interfaces
        if os.environ.get('NATTER_SERVICE_TEST_DEBUG') == '1':
            env['G_MESSAGES_DEBUG'] = 'all'
        else:
            env.pop('G_MESSAGES_DEBUG', None)
        env.update(env_extra or {})
        self.profile = profile
        self.proc = subprocess.Popen(['ip', 'netns', 'exec', ns, cli, '--profile', profile,
                                      '--no-lan', '--interfaces', interfaces, *args, 'run'],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env)
        self.pid = self.proc.pid      # ip netns exec execs natter-cli: same process
        on_exit(self.kill)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        Peer.all.append(self)
        self.peer_id = None

    def _read(self):
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
                if not isinstance(event, dict) or 'event' not in event:
                    raise ValueError('not an event')
            except ValueError:
                with self.cond:
                    self.garbage.append(raw)
                    self.cond.notify_all()
                continue
            with self.cond:
                self.events.append(event)
                kind = event['event']
                if kind in ('reply', 'error') and isinstance(event.get('id'), str):
                    self.replies[event['id']] = event
                elif kind == 'message-state-changed':
                    self.states.setdefault(event.get('msgId'), set()).add(event.get('state'))
                elif kind == 'message-received':
                    self.received.append(event)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def write(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    def command(self, cmd, **members):
        tag = f'{self.name}-{self.next_id}'
        self.next_id += 1
        self.write((json.dumps({'cmd': cmd, 'id': tag, **members}) + '\n').encode())
        return tag

    def commands(self, cmd, members_list):
        """Many commands in one write; returns their tags."""
        tags, lines = [], []
        for members in members_list:
            tag = f'{self.name}-{self.next_id}'
            self.next_id += 1
            tags.append(tag)
            lines.append(json.dumps({'cmd': cmd, 'id': tag, **members}))
        self.write(('\n'.join(lines) + '\n').encode())
        return tags

    def wait_until(self, condition, timeout):
        """Waits until condition() (called with the lock held) is true."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if condition():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.eof:
                    return condition()
                self.cond.wait(min(remaining, 1.0))

    def wait_for(self, predicate, timeout, start=0):
        """The first event (from index @start) that satisfies @predicate."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.events):
                    if predicate(self.events[i]):
                        return self.events[i]
                    i += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.eof:
                    return None
                self.cond.wait(min(remaining, 1.0))

    def request(self, cmd, timeout=30, **members):
        tag = self.command(cmd, **members)
        if not self.wait_until(lambda: tag in self.replies, timeout):
            return None
        return self.replies[tag]

    def ready(self, timeout=30):
        event = self.wait_for(lambda e: e['event'] == 'ready', timeout)
        if event is not None:
            self.peer_id = event.get('peerId')
        return event

    def mark(self):
        with self.cond:
            return len(self.events)

    def send(self, peer, text, timeout=30):
        """Sends a text; returns its msgId, or None."""
        reply = self.request('send', timeout=timeout, peer=peer, text=text)
        if reply is None or reply['event'] != 'reply':
            return None
        return reply.get('msgId')

    def has_state(self, msg_id, state):
        """Whether @msg_id reached @state or a later one (read implies
        delivered); "failed" only itself."""
        with self.cond:
            return self._has_state_locked(msg_id, state)

    def wait_state(self, msg_id, state, timeout):
        return self.wait_until(lambda: self._has_state_locked(msg_id, state), timeout)

    def _has_state_locked(self, msg_id, state):
        seen = self.states.get(msg_id, set())
        if state == 'delivered':
            return 'delivered' in seen or 'read' in seen
        return state in seen

    def states_of(self, msg_id):
        with self.cond:
            return [e.get('state') for e in self.events
                    if e['event'] == 'message-state-changed' and e.get('msgId') == msg_id]

    def state_events(self, msg_id):
        with self.cond:
            return [e for e in self.events
                    if e['event'] == 'message-state-changed' and e.get('msgId') == msg_id]

    def received_ids(self):
        with self.cond:
            return [e.get('msgId') for e in self.received]

    def find(self, predicate):
        with self.cond:
            return [e for e in self.events if predicate(e)]

    def history(self, peer, limit=100000, timeout=60):
        reply = self.request('history', timeout=timeout, peer=peer, limit=limit)
        if reply is None or reply['event'] != 'reply':
            return None
        return reply.get('messages')

    def stop(self, timeout=60):
        """quit; returns (exit status, whether "stopped" was printed, bad log lines)."""
        if self.proc.poll() is None:
            self.command('quit')
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = f'hung, killed ({self.proc.wait()})'
        self.reader.join(timeout=5)
        if not self.stderr.closed:
            self.stderr.close()
        stopped = self.wait_for(lambda e: e['event'] == 'stopped', 0) is not None
        return code, stopped, self.bad_log()

    def kill(self):
        """SIGKILL, as a crash or a power cut would."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(timeout=5)
        if not self.stderr.closed:
            self.stderr.close()

    def stderr_text(self):
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.stderr_path, 'rb') as f:
            return f.read().decode(errors='replace')

    def bad_log(self):
        return [line for line in self.stderr_text().splitlines() if any(m in line for m in BAD_LOG)]

    def dump(self, lines=25):
        with self.cond:
            tail = self.events[-lines:]
            garbage = self.garbage[-5:]
            n = len(self.events)
        print(f'# --- {self.name} (pid {self.pid}, exit {self.proc.poll()}): '
              f'last {len(tail)} events of {n}', flush=True)
        for e in tail:
            print(f'#   {json.dumps(e, ensure_ascii=False)[:400]}', flush=True)
        for g in garbage:
            print(f'#   not an event: {g[:200]!r}', flush=True)
        err = self.stderr_text().splitlines()[-lines:]
        print(f'# --- {self.name}: last {len(err)} lines of stderr ({self.stderr_path})', flush=True)
        for line in err:
            print(f'#   {line[:400]}', flush=True)


def dump_live_peers(limit=8):
    # The latest processes are the interesting ones.
    for p in Peer.all[-limit:]:
        p.dump()


# ---- Helpers for the tests ------------------------------------------------

def workdir(prefix):
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    return path


def is_state(peer_id, state, via=None, any_via=False):
    def predicate(e):
        return (e['event'] == 'peer-state-changed' and e.get('peer') == peer_id
                and e.get('state') == state and (any_via or e.get('via') == via))
    return predicate


def is_presence(peer_id, presence):
    return lambda e: (e['event'] == 'presence-changed' and e.get('peer') == peer_id
                      and e.get('presence') == presence)


def is_received(msg_id=None, text=None):
    return lambda e: (e['event'] == 'message-received'
                      and (msg_id is None or e.get('msgId') == msg_id)
                      and (text is None or e.get('text') == text))


def add_contacts(tap, peer, others, timeout=30):
    """@peer adds each (name, peer ID) of @others as an accepted contact."""
    for name, other_id in others:
        reply = peer.request('add-contact', timeout=timeout, peer=other_id, name=name)
        tap.must(reply is not None and reply['event'] == 'reply'
                 and reply.get('contact', {}).get('state') == 'accepted',
                 f'{peer.name} adds {name} as a contact', reply)


def direct_now(peer, other_id, timeout=30):
    """Whether @peer reports @other_id direct now (the "peer" command)."""
    reply = peer.request('peer', timeout=timeout, peer=other_id)
    return reply is not None and reply.get('peerState') == 'direct'


def wait_direct(peer, other_id, timeout, start=0):
    """Waits until @peer is connected to @other_id: the latest
    peer-state-changed for it says direct (checked with "peer")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = peer.wait_for(is_state(other_id, 'direct'), deadline - time.monotonic(), start)
        if event is None:
            return False
        if direct_now(peer, other_id):
            return True
        start = peer.events.index(event) + 1
    return False


def check_clean_exit(tap, peer, result):
    code, stopped, bad = result
    tap.ok(code == 0 and stopped and not bad,
           f'{peer.name} stops cleanly ("stopped", status 0, no critical or sanitizer log)',
           f'exit status {code}, stopped printed: {stopped}\n' + '\n'.join(bad[-10:]))


def random_marker(label):
    return f'{label}-{random.SystemRandom().getrandbits(96):024x}'


# ---- Looking for plaintext -----------------------------------------------

def process_memory_contains(pid, needles):
    """Which of @needles (bytes) occur in the readable memory of @pid
    (/proc/PID/maps and /proc/PID/mem; root)."""
    found = set()
    scanned = 0
    with open(f'/proc/{pid}/maps') as maps, open(f'/proc/{pid}/mem', 'rb', 0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split('-'))
            name = fields[5] if len(fields) > 5 else ''
            if 'r' not in fields[1] or name in ('[vvar]', '[vsyscall]', '[vvar_vclock]'):
                continue
            # Mappings of many GiB are sparse reservations, such as
            # AddressSanitizer's shadow memory, not data: the process's
            # heap and stacks are far smaller.  Others are read in chunks
            # that overlap by the longest needle.
            if end - start > 4 << 30:
                continue
            overlap = max(len(n) for n in needles)
            chunk = 64 << 20
            position = start
            tail = b''
            while position < end:
                try:
                    mem.seek(position)
                    data = mem.read(min(chunk, end - position))
                except (OSError, ValueError, OverflowError):
                    break
                if not data:
                    break
                scanned += len(data)
                window = tail + data
                for n in needles:
                    if n in window:
                        found.add(n)
                tail = window[-overlap:]
                position += len(data)
    return found, scanned


def files_contain(paths, needles):
    """Which of @needles occur in the files @paths that exist."""
    found = set()
    for path in paths:
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except FileNotFoundError:
            continue
        for n in needles:
            if n in data:
                found.add(n)
    return found


def database_files(profile):
    base = os.path.join(profile, 'natter.db')
    return [base, base + '-wal', base + '-shm', base + '-journal']


# ---- Wire messages made here (docs/protocol.md) ---------------------------

def canonical_bytes(message):
    """Section 4: "natter-message-v1\\n" and the canonical JSON of the
    message without route, hops, retryCount and signature."""
    signed = {k: v for k, v in message.items() if k not in ('route', 'hops', 'retryCount', 'signature')}
    return b'natter-message-v1\n' + json.dumps(signed, sort_keys=True, separators=(',', ':'),
                                               ensure_ascii=False).encode()


def identity_seed(profile):
    """The Ed25519 seed of a profile's identity.key (src/core/natter-identity.c)."""
    with open(os.path.join(profile, 'identity.key'), 'rb') as f:
        record = f.read()
    if len(record) != 48 or record[:8] != b'NATTERID' or record[8] != 1:
        raise Bail(f'{profile}/identity.key is not a version 1 identity file')
    return record[12:44]


def direct_message(author, recipient, text, sequence=1000000):
    now = int(time.time() * 1000)
    return {
        'id': f'msg_{now}_{random.SystemRandom().getrandbits(64):016x}',
        'type': 'direct_message',
        'version': '1.0',
        'from': author,
        'to': [recipient],
        'route': [],
        'hops': 0,
        'content': {'text': text},
        'timestamp': now,
        'sequence': sequence,
        'vectorClock': {},
        'requiresAck': True,
        'ttl': 600000,
        'encrypted': False,
    }


def sign(message, seed):
    import base64
    import nacl.signing
    key = nacl.signing.SigningKey(seed)
    signature = key.sign(canonical_bytes(message)).signature
    message['signature'] = base64.b64encode(signature).decode()
    return message
