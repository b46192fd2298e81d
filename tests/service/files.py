#!/usr/bin/python3
# files.py: file transfers between two natter-cli processes
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Issue #6.  natter-rendezvous on 127.0.0.1 and two "natter-cli run"
# processes, A and B, each with its own profile in a temporary folder,
# --interfaces lo and --no-lan.  Checked from their JSON lines (docs/cli.md)
# and from the files on disk (BLAKE2b, as the protocol hashes them):
#
#   sizes       files of 0 bytes, 1 byte, exactly one chunk, one chunk plus
#               one byte, and 200 MB, A to B, each verified on disk;
#   concurrent  three transfers each way at once, with chat messages
#               delivered while they run;
#   kill        A is killed with SIGKILL in the middle of a 200 MB
#               transfer and started again: the transfer completes, A
#               resumes at or after the offset B had acknowledged to the
#               killed A, and B received at most one acknowledgement
#               window (NATTER_FILE_ACK_WINDOW) twice;
#   restart     B is killed in the middle of a transfer and started again:
#               it resumes from its last checkpoint and completes;
#   hostile     names from the network (path separators, "..", absolute
#               paths, control characters, reserved and over-long names)
#               are sanitised and never overwrite a file; data frames for
#               an unknown, a never-accepted and a declined transfer, and
#               beyond the offered size, are counted and ignored; a wrong
#               hash fails the transfer on both sides and keeps no file;
#               with every free name taken, the finished file pauses and
#               completes after accept-file once a name is free ("crowded",
#               also a part of its own); a full disk (a small tmpfs in B's
#               own mount namespace, root only) pauses the transfer with
#               the error, keeps the partial file, and it completes after
#               accept-file once there is room.
#
# Usage: files.py PATH/TO/natter-cli PATH/TO/natter-rendezvous [PART…].
# TAP.  Only the Python standard library; nothing leaves 127.0.0.1.

import base64
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

CLI = sys.argv[1]
SERVER = sys.argv[2]
PARTS = sys.argv[3:] or ['sizes', 'concurrent', 'kill', 'restart', 'hostile']

CHUNK = 65536 - 24
ACK_WINDOW = 16 * 1024 * 1024
BIG = 200 * 1000 * 1000
CONNECT_TIMEOUT = 60
TRANSFER_TIMEOUT = float(os.environ.get('NATTER_FILES_TIMEOUT', '300'))
BAD_LOG = ('CRITICAL', 'runtime error:', 'AddressSanitizer', 'LeakSanitizer')

results = []
peers = []


class Bail(Exception):
    pass


def ok(cond, name, diag=None):
    results.append(bool(cond))
    print(f"{'ok' if cond else 'not ok'} {len(results)} - {name}", flush=True)
    if not cond:
        for line in str(diag or '').splitlines():
            print(f'# {line}', flush=True)
        for p in peers[-3:]:
            p.dump()
    return bool(cond)


def must(cond, name, diag=None):
    if not ok(cond, name, diag):
        raise Bail(name)


def skip(name, reason):
    results.append(True)
    print(f'ok {len(results)} - {name} # SKIP {reason}', flush=True)


def b2(path):
    h = hashlib.blake2b(digest_size=32)
    with open(path, 'rb') as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def make_file(path, size):
    with open(path, 'wb') as f:
        left = size
        while left > 0:
            n = min(left, 4 << 20)
            f.write(os.urandom(n))
            left -= n
    return path


def tag_of(file_id):
    return hashlib.blake2b(file_id.encode(), digest_size=16).digest()[:8]


def data_frame(file_id, offset, data):
    return bytes([1]) + bytes(7) + tag_of(file_id) + struct.pack('>Q', offset) + data


class Server:
    def __init__(self, work):
        self.log = open(os.path.join(work, 'rendezvous.log'), 'wb')
        self.proc = subprocess.Popen([SERVER, '--listen', '127.0.0.1', '--port', '0'],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if 'listening on ' not in line:
            raise Bail(f'natter-rendezvous did not start: {line!r}')
        self.url = line.split('listening on ', 1)[1].strip()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Peer:
    def __init__(self, name, work, url, extra=(), prefix=(), interfaces='lo'):
        self.name = name
        self.profile = os.path.join(work, name)
        self.downloads = os.path.join(work, f'{name}-downloads')
        os.makedirs(self.downloads, exist_ok=True)
        self.stderr_path = os.path.join(work, f'{name}-{time.monotonic_ns()}.log')
        self.stderr = open(self.stderr_path, 'wb')
        self.events = []
        self.cond = threading.Condition()
        self.next_id = 1
        self.eof = False
        env = dict(os.environ, NATTER_TEST_HOOKS='1', NATTER_INTERFACES=interfaces)
        self.proc = subprocess.Popen([*prefix, CLI, '--profile', self.profile, '--no-lan',
                                      '--interfaces', interfaces, '--rendezvous', url,
                                      '--download-folder', self.downloads, *extra, 'run'],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env)
        threading.Thread(target=self._read, daemon=True).start()
        peers.append(self)
        ready = self.wait_for(lambda e: e['event'] == 'ready', 30)
        must(ready is not None, f'{name}: natter-cli run is ready')
        self.peer_id = ready['peerId']

    def _read(self):
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            with self.cond:
                self.events.append(event)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def command(self, cmd, **members):
        tag = f'{self.name}-{self.next_id}'
        self.next_id += 1
        try:
            self.proc.stdin.write((json.dumps({'cmd': cmd, 'id': tag, **members}) + '\n').encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass
        return tag

    def wait_for(self, predicate, timeout, start=0):
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.events):
                    if predicate(self.events[i]):
                        return self.events[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return None
                self.cond.wait(min(left, 1.0))

    def request(self, cmd, timeout=30, **members):
        tag = self.command(cmd, **members)
        return self.wait_for(lambda e: e.get('id') == tag and e['event'] in ('reply', 'error'), timeout)

    def mark(self):
        with self.cond:
            return len(self.events)

    def find(self, predicate):
        with self.cond:
            return [e for e in self.events if predicate(e)]

    def state_of(self, transfer_id, states, timeout):
        return self.wait_for(lambda e: e['event'] == 'transfer-state-changed' and
                             e['transferId'] == transfer_id and e['state'] in states, timeout)

    def transfer(self, transfer_id):
        reply = self.request('transfers')
        for t in (reply or {}).get('transfers', []):
            if t['transferId'] == transfer_id:
                return t
        return None

    def rejected(self):
        return self.request('transfers')['rejectedFrames']

    def stop(self):
        self.command('quit')
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = 'hung'
        self.stderr.close()
        return code

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.stderr.close()

    def bad_log(self):
        with open(self.stderr_path, 'rb') as f:
            text = f.read().decode(errors='replace')
        return [line for line in text.splitlines() if any(m in line for m in BAD_LOG)]

    def dump(self, lines=15):
        with self.cond:
            tail = [e for e in self.events if e['event'] != 'transfer-progress'][-lines:]
        print(f'# --- {self.name}: last events', flush=True)
        for e in tail:
            print(f'#   {json.dumps(e)[:300]}', flush=True)
        try:
            with open(self.stderr_path, 'rb') as f:
                err = f.read().decode(errors='replace').splitlines()[-lines:]
        except OSError:
            err = []
        for line in err:
            print(f'#   stderr: {line[:300]}', flush=True)


class Session:
    def __init__(self, work):
        self.work = work
        self.server = Server(work)
        self.url = self.server.url
        self.b_prefix = ()
        self.small = None
        if os.geteuid() == 0 and shutil.which('unshare'):
            # B lives in a mount namespace of its own with a small tmpfs:
            # the full disk of the "hostile" part, invisible to everyone else.
            self.small = os.path.join(work, 'small')
            os.makedirs(self.small)
            self.b_prefix = ('unshare', '-m', '--propagation', 'private', 'sh', '-c',
                             f'mount -t tmpfs -o size=8m natter-test "{self.small}" && exec "$@"',
                             'sh')
        self.a = Peer('A', work, self.url)
        self.b = Peer('B', work, self.url, prefix=self.b_prefix)
        for me, other in ((self.a, self.b), (self.b, self.a)):
            reply = me.request('add-contact', peer=other.peer_id, name=other.name)
            must(reply is not None and reply['event'] == 'reply', f'{me.name} adds {other.name}')
        self.connected(self.a, self.b)

    def connected(self, x, y, timeout=CONNECT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r1 = x.request('peer', peer=y.peer_id)
            r2 = y.request('peer', peer=x.peer_id)
            if r1 and r2 and r1.get('peerState') == 'direct' and r2.get('peerState') == 'direct':
                return True
            time.sleep(0.3)
        must(False, f'{x.name} and {y.name} connect')

    def restart(self, name):
        if name == 'A':
            self.a = Peer('A', self.work, self.url)
        else:
            self.b = Peer('B', self.work, self.url, prefix=self.b_prefix)
        self.connected(self.a, self.b)

    def offer(self, sender, receiver, path, **hooks):
        mark = receiver.mark()
        reply = sender.request('send-file', peer=receiver.peer_id, path=path, **hooks)
        must(reply is not None and reply['event'] == 'reply', f'{sender.name} offers {os.path.basename(path)}',
             reply)
        tid = reply['transferId']
        offered = receiver.wait_for(lambda e: e['event'] == 'transfer-offered' and e['transferId'] == tid,
                                    60, mark)
        must(offered is not None, f'{receiver.name} is offered {tid}')
        return tid, offered

    def transfer(self, sender, receiver, path, folder=None, **hooks):
        tid, offered = self.offer(sender, receiver, path, **hooks)
        members = {'folder': folder} if folder else {}
        reply = receiver.request('accept-file', transferId=tid, **members)
        must(reply is not None and reply['event'] == 'reply', f'{receiver.name} accepts {tid}', reply)
        return tid, offered

    def completed(self, sender, receiver, tid, source, label, timeout=TRANSFER_TIMEOUT):
        done_r = receiver.state_of(tid, ('complete', 'failed', 'cancelled'), timeout)
        done_s = sender.state_of(tid, ('complete', 'failed', 'cancelled'), 60 if done_r else 1)
        good = (done_r is not None and done_r['state'] == 'complete' and
                done_s is not None and done_s['state'] == 'complete')
        if not ok(good, f'{label}: complete on both sides', (done_r, done_s)):
            return None
        path = done_r['detail']
        ok(os.path.exists(path) and os.path.getsize(path) == os.path.getsize(source) and
           b2(path) == b2(source), f'{label}: the received file has the offered BLAKE2b hash', path)
        return path

    def close(self):
        codes = []
        for p in (self.a, self.b):
            if p.proc.poll() is None:
                codes.append(p.stop())
        self.server.stop()
        return codes


def part_sizes(s):
    for size, label in ((0, '0 bytes'), (1, '1 byte'), (CHUNK, 'one chunk'),
                        (CHUNK + 1, 'one chunk + 1'), (BIG, '200 MB')):
        src = make_file(os.path.join(s.work, f'size-{size}.bin'), size)
        start = time.monotonic()
        tid, offered = s.transfer(s.a, s.b, src)
        ok(offered['size'] == size and offered['name'] == os.path.basename(src),
           f'{label}: the offer names the file and its size', offered)
        path = s.completed(s.a, s.b, tid, src, label)
        if size == BIG and path:
            secs = time.monotonic() - start
            print(f'# 200 MB in {secs:.1f} s ({size / secs / 1e6:.0f} MB/s)', flush=True)
            os.unlink(path)


def part_concurrent(s):
    sources = {}
    for who in ('A', 'B'):
        for i in range(3):
            sources[(who, i)] = make_file(os.path.join(s.work, f'conc-{who}{i}.bin'),
                                          (30 + 7 * i) * 1000 * 1000)
    tids = {}
    for (who, i), src in sources.items():
        sender, receiver = (s.a, s.b) if who == 'A' else (s.b, s.a)
        tids[(who, i)] = s.offer(sender, receiver, src)[0]
    mark_a, mark_b = s.a.mark(), s.b.mark()
    for (who, i), tid in tids.items():
        receiver = s.b if who == 'A' else s.a
        receiver.command('accept-file', transferId=tid)
    # Chat both ways while the six run.
    chat = []
    deadline = time.monotonic() + TRANSFER_TIMEOUT
    n = 0

    def all_done():
        return all(p.find(lambda e: e['event'] == 'transfer-state-changed' and e['transferId'] == tid and
                          e['state'] in ('complete', 'failed'))
                   for tid in tids.values() for p in (s.a, s.b))

    while not all_done() and time.monotonic() < deadline:
        for sender, receiver in ((s.a, s.b), (s.b, s.a)):
            reply = sender.request('send', peer=receiver.peer_id, text=f'chat {n} during transfers')
            if reply and reply['event'] == 'reply':
                chat.append((receiver, reply['msgId'], n))
            n += 1
        time.sleep(0.1)
    for (who, i), tid in tids.items():
        sender, receiver = (s.a, s.b) if who == 'A' else (s.b, s.a)
        s.completed(sender, receiver, tid, sources[(who, i)], f'concurrent {who}{i}', timeout=60)

    # Interleaving: chat arrived on each side while transfers to it were
    # still running (before the last of them completed).
    for receiver, mark in ((s.b, mark_b), (s.a, mark_a)):
        with receiver.cond:
            events = receiver.events[mark:]
        done_at = [k for k, e in enumerate(events) if e['event'] == 'transfer-state-changed' and
                   e['state'] == 'complete']
        received_at = [k for k, e in enumerate(events) if e['event'] == 'message-received']
        during = [k for k in received_at if done_at and k < max(done_at)]
        ok(len(during) >= 3, f'concurrent: {len(during)} chat messages reached {receiver.name} '
           f'while the transfers ran', f'received at {received_at[:10]}, completes at {done_at}')


def progress_bytes(peer, tid):
    got = peer.find(lambda e: e['event'] == 'transfer-progress' and e['transferId'] == tid)
    return got[-1]['bytes'] if got else 0


def part_kill(s):
    src = make_file(os.path.join(s.work, 'kill.bin'), BIG)
    tid, _ = s.transfer(s.a, s.b, src)
    seen = s.b.wait_for(lambda e: e['event'] == 'transfer-progress' and e['transferId'] == tid and
                        e['bytes'] >= 60 * 1000 * 1000, TRANSFER_TIMEOUT)
    must(seen is not None, 'kill: B has received 60 MB')
    s.a.kill()
    acked_by_a1 = progress_bytes(s.a, tid)
    b_before = s.b.transfer(tid)
    ok(b_before is not None and b_before['state'] != 'complete',
       f'kill: A killed with SIGKILL at {acked_by_a1} bytes acknowledged, B has {b_before and b_before["bytes"]}')
    s.restart('A')
    path = s.completed(s.a, s.b, tid, src, 'kill: after A restarted')
    a_t = s.a.transfer(tid)
    b_t = s.b.transfer(tid)
    ok(a_t is not None and a_t['resumedFrom'] >= acked_by_a1,
       f'kill: the restarted A resumed at {a_t and a_t["resumedFrom"]}, not before the '
       f'{acked_by_a1} bytes B had acknowledged to the killed A', a_t)
    repeated = b_t['bytesReceived'] - BIG if b_t else None
    ok(b_t is not None and b_t['duplicateBytes'] <= ACK_WINDOW and repeated <= ACK_WINDOW,
       f'kill: bytes B received twice: {b_t and b_t["duplicateBytes"]} duplicate, '
       f'{repeated} beyond the size (at most one window, {ACK_WINDOW})', b_t)
    if path:
        os.unlink(path)


def part_restart(s):
    src = make_file(os.path.join(s.work, 'restart.bin'), 120 * 1000 * 1000)
    tid, _ = s.transfer(s.a, s.b, src)
    seen = s.b.wait_for(lambda e: e['event'] == 'transfer-progress' and e['transferId'] == tid and
                        e['bytes'] >= 70 * 1000 * 1000, TRANSFER_TIMEOUT)
    must(seen is not None, 'restart: B has received 70 MB')
    s.b.kill()
    s.restart('B')
    path = s.completed(s.a, s.b, tid, src, 'restart: after B restarted')
    b_t = s.b.transfer(tid)
    ok(b_t is not None and b_t['resumedFrom'] == 0 and b_t['bytesReceived'] < 120 * 1000 * 1000,
       f'restart: B resumed from its checkpoint ({b_t and 120 * 1000 * 1000 - b_t["bytesReceived"]} '
       f'bytes not received again)', b_t)
    if path:
        os.unlink(path)


def part_hostile(s):
    # Names.
    src = make_file(os.path.join(s.work, 'hostile.txt'), 1000)
    long_name = 'x' * 250 + '.txt'
    cases = [('../../etc/passwd', 'passwd'), ('/etc/shadow', 'shadow'), ('..', 'file'),
             ('C:\\Windows\\evil.exe', 'evil.exe'), ('bell\x07and\nnewline.txt', 'bell_and_newline.txt'),
             ('.hidden', 'hidden'), ('CON.txt', '_CON.txt'), ('a\u202egnp.exe', 'a_gnp.exe'),
             (long_name, 'x' * 196 + '.txt'), ('same.txt', 'same.txt'), ('same.txt', 'same (1).txt')]
    for offered, expected in cases:
        tid, _ = s.transfer(s.a, s.b, src, name=offered)
        done = s.b.state_of(tid, ('complete', 'failed'), 60)
        path = done and done.get('detail')
        ok(done is not None and done['state'] == 'complete' and
           path == os.path.join(s.b.downloads, expected) and b2(path) == b2(src),
           f'name {offered[:40]!r} is saved as {expected[:40]!r}', done)
    ok(sorted(os.listdir(os.path.join(s.work, 'B-downloads'))) ==
       sorted(set(e for _, e in cases) | {'same (1).txt'}) and
       not os.path.exists('/etc/passwd.natter'),
       'nothing was written outside the download folder, nothing overwritten')

    # Frames for an unknown transfer.
    before = s.b.rejected()
    s.a.request('send-raw-bulk', peer=s.b.peer_id, stream=7,
                data=base64.b64encode(data_frame('file_unknown_0123456789', 0, b'x' * 100)).decode())
    time.sleep(1)
    after = s.b.rejected()
    ok(after['unknown'] == before['unknown'] + 1, 'a data frame for an unknown transfer is refused',
       (before, after))

    # Never accepted, then declined.
    src2 = make_file(os.path.join(s.work, 'never.bin'), 5000)
    tid, _ = s.offer(s.a, s.b, src2)
    s.a.request('send-raw-bulk', peer=s.b.peer_id, stream=2,
                data=base64.b64encode(data_frame(tid, 0, b'y' * 100)).decode())
    time.sleep(1)
    after2 = s.b.rejected()
    ok(after2['notAccepted'] == after['notAccepted'] + 1 and
       not any(tid in f for f in os.listdir(s.b.downloads)),
       'a data frame for an offer never accepted is refused, no file is made', after2)
    reply = s.b.request('decline-file', transferId=tid)
    declined = s.a.state_of(tid, ('rejected',), 30)
    ok(reply and reply['event'] == 'reply' and declined is not None, 'decline: the sender sees "rejected"',
       declined)
    s.a.request('send-raw-bulk', peer=s.b.peer_id, stream=2,
                data=base64.b64encode(data_frame(tid, 0, b'y' * 100)).decode())
    time.sleep(1)
    after3 = s.b.rejected()
    ok(after3['notAccepted'] == after2['notAccepted'] + 1 and
       not any(tid in f for f in os.listdir(s.b.downloads)),
       'a data frame for a declined transfer is refused, no file is made', after3)

    # Beyond the offered size, in the middle of a running transfer.
    src3 = make_file(os.path.join(s.work, 'beyond.bin'), 100 * 1000 * 1000)
    tid, _ = s.transfer(s.a, s.b, src3)
    s.b.wait_for(lambda e: e['event'] == 'transfer-state-changed' and e['transferId'] == tid and
                 e['state'] == 'active', 60)
    s.a.request('send-raw-bulk', peer=s.b.peer_id, stream=1000,
                data=base64.b64encode(data_frame(tid, 100 * 1000 * 1000 - 10, b'z' * 100)).decode())
    s.completed(s.a, s.b, tid, src3, 'beyond the size')
    after4 = s.b.rejected()
    ok(after4['beyondSize'] >= after3['beyondSize'] + 1,
       'a data frame beyond the offered size is refused, and the file is still intact', after4)

    # A wrong final hash.
    src4 = make_file(os.path.join(s.work, 'wronghash.bin'), 3 * CHUNK + 5)
    tid, _ = s.transfer(s.a, s.b, src4, hash=base64.b64encode(os.urandom(32)).decode())
    failed_b = s.b.state_of(tid, ('complete', 'failed'), 60)
    failed_a = s.a.state_of(tid, ('complete', 'failed'), 30)
    ok(failed_b is not None and failed_b['state'] == 'failed' and 'hash' in (failed_b['detail'] or ''),
       'a wrong hash: the receiver fails the transfer, saying so', failed_b)
    ok(failed_a is not None and failed_a['state'] == 'failed', 'a wrong hash: the sender sees it fail',
       failed_a)
    ok(not os.path.exists(os.path.join(s.b.downloads, 'wronghash.bin')) and
       not any(tid in f for f in os.listdir(s.b.downloads)),
       'a wrong hash: nothing is kept under the final name or as a partial file')

    part_crowded(s)

    # A full disk.
    if s.small is None:
        skip('full disk', 'needs root and unshare for a tmpfs in a mount namespace')
        return
    src5 = make_file(os.path.join(s.work, 'full.bin'), 20 * 1000 * 1000)
    tid, _ = s.transfer(s.a, s.b, src5, folder=s.small)
    paused = s.b.state_of(tid, ('paused', 'complete', 'failed'), 120)
    ok(paused is not None and paused['state'] == 'paused' and
       'No space left on device' in (paused['detail'] or ''),
       'full disk: the transfer pauses with "No space left on device"', paused)
    inside = f'/proc/{s.b.proc.pid}/root'
    part = os.path.join(inside + s.small, f'.natter-{tid}.part')
    size = os.path.getsize(part) if os.path.exists(part) else -1
    ok(0 < size < 20 * 1000 * 1000 and not os.path.exists(os.path.join(inside + s.small, 'full.bin')),
       f'full disk: the partial file is kept ({size} bytes), nothing under the final name')
    a_paused = s.a.state_of(tid, ('paused',), 30)
    ok(a_paused is not None, 'full disk: the sender pauses', a_paused)
    subprocess.run(['nsenter', '-t', str(s.b.proc.pid), '-m', 'mount', '-o', 'remount,size=64m',
                    s.small], check=False)
    reply = s.b.request('accept-file', transferId=tid)
    ok(reply is not None and reply['event'] == 'reply', 'full disk: accept-file again once there is room',
       reply)
    done = s.b.state_of(tid, ('complete', 'failed'), 120)
    ok(done is not None and done['state'] == 'complete', 'full disk: the transfer then completes', done)
    if done and done['state'] == 'complete':
        ok(b2(inside + done['detail']) == b2(src5), 'full disk: the resumed file has the right hash')


def part_crowded(s):
    # A finish that fails after the hash was checked (every free name is
    # taken, so the rename fails), held, then accepted again once a name
    # is free: the second finish must not judge the file by a spent hash.
    crowd = os.path.join(s.work, 'crowded')
    os.makedirs(crowd)
    for n in range(10000):
        open(os.path.join(crowd, 'crowded.bin' if n == 0 else f'crowded ({n}).bin'), 'wb').close()
    src6 = make_file(os.path.join(s.work, 'crowded.bin'), 3 * CHUNK + 7)
    tid, _ = s.transfer(s.a, s.b, src6, folder=crowd)
    held = s.b.state_of(tid, ('paused', 'complete', 'failed'), 60)
    ok(held is not None and held['state'] == 'paused' and 'name' in (held['detail'] or ''),
       'no free name: the transfer pauses, saying why', held)
    os.unlink(os.path.join(crowd, 'crowded (5000).bin'))
    reply = s.b.request('accept-file', transferId=tid)
    ok(reply is not None and reply['event'] == 'reply', 'no free name: accept-file again once one is free',
       reply)
    done = s.b.state_of(tid, ('complete', 'failed'), 60)
    ok(done is not None and done['state'] == 'complete' and
       done['detail'] == os.path.join(crowd, 'crowded (5000).bin') and b2(done['detail']) == b2(src6),
       'no free name: the file is then kept under the free name, verified', done)
    shutil.rmtree(crowd, ignore_errors=True)


def main():
    work = tempfile.mkdtemp(prefix='natter-files-')
    s = None
    bailed = False
    try:
        s = Session(work)
        for part in PARTS:
            globals()[f'part_{part}'](s)
        codes = s.close()
        ok(all(c == 0 for c in codes), f'both processes exit cleanly {codes}')
        bad = [line for p in peers for line in p.bad_log()]
        ok(not bad, 'no critical warning or sanitizer report', '\n'.join(bad[:20]))
    except Bail as e:
        bailed = True
        print(f'# bailed out: {e}', flush=True)
    finally:
        for p in peers:
            if p.proc.poll() is None:
                p.proc.kill()
        if s is not None and s.server.proc.poll() is None:
            s.server.proc.kill()
        if os.environ.get('NATTER_KEEP_TMP') != '1':
            shutil.rmtree(work, ignore_errors=True)
    print(f'1..{len(results)}', flush=True)
    return 0 if not bailed and all(results) else 1


if __name__ == '__main__':
    sys.exit(main())
