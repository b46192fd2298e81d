#!/usr/bin/python3
# files-netns.py: a file transfer survives a link cut for 20 seconds
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Issue #6, Done-when 4.  Two hosts, A and B, are network namespaces with
# one veth each on a bridge in a third namespace, which also runs
# natter-rendezvous.  Nothing is attached to the root namespace and no
# namespace has a default route, so no packet leaves the machine.  A sends
# B a 150 MB file (B accepts automatically); in the middle, every packet on
# A's eth0 is dropped (nftables, both ways) for 20 s, then let through
# again.  The connection is lost and comes back, and the transfer resumes
# and completes with the right hash.
#
# Usage: files-netns.py PATH/TO/natter-cli PATH/TO/natter-rendezvous.
# TAP; "1..0 # SKIP reason" when it cannot run here (not root, no ip or
# nft), a failure instead with NATTER_NO_SKIP=1.

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location('files', os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                      'files.py'))
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)

CLI, SERVER = sys.argv[1], sys.argv[2]
SIZE = 150 * 1000 * 1000
CUT_SECONDS = 20


def skip(reason):
    if os.environ.get('NATTER_NO_SKIP') == '1':
        print(f'Bail out! cannot run: {reason} (NATTER_NO_SKIP=1)', flush=True)
        sys.exit(1)
    print(f'1..0 # SKIP {reason}', flush=True)
    sys.exit(0)


def run(*args, check=True, **kw):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30, **kw)
    if check and proc.returncode != 0:
        raise F.Bail(f'{" ".join(args)}: {proc.stderr.strip()}')
    return proc


class Net:
    def __init__(self):
        self.tag = f'nf{os.getpid()}'
        self.namespaces = []
        self.hub = self.ns('hub')
        run('ip', '-n', self.hub, 'link', 'add', 'br0', 'type', 'bridge')
        run('ip', '-n', self.hub, 'addr', 'add', '10.78.0.1/24', 'dev', 'br0')
        run('ip', '-n', self.hub, 'link', 'set', 'br0', 'up')
        self.hosts = {}
        for i, name in enumerate(('A', 'B')):
            ns = self.ns(name)
            run('ip', '-n', self.hub, 'link', 'add', f'v{name}', 'type', 'veth', 'peer', 'name', 'eth0',
                'netns', ns)
            run('ip', '-n', self.hub, 'link', 'set', f'v{name}', 'master', 'br0')
            run('ip', '-n', self.hub, 'link', 'set', f'v{name}', 'up')
            run('ip', '-n', ns, 'addr', 'add', f'10.78.0.{11 + i}/24', 'dev', 'eth0')
            run('ip', '-n', ns, 'link', 'set', 'eth0', 'up')
            self.hosts[name] = ns

    def ns(self, role):
        name = f'{self.tag}-{role}'
        subprocess.run(['ip', 'netns', 'del', name], capture_output=True)
        run('ip', 'netns', 'add', name)
        self.namespaces.append(name)
        run('ip', '-n', name, 'link', 'set', 'lo', 'up')
        return name

    def cut(self, name):
        rules = ('table inet natter_cut {\n'
                 ' chain i { type filter hook input priority -20; iifname "eth0" drop; }\n'
                 ' chain o { type filter hook output priority -20; oifname "eth0" drop; }\n}\n')
        run('ip', 'netns', 'exec', self.hosts[name], 'nft', '-f', '-', input=rules)

    def restore(self, name):
        run('ip', 'netns', 'exec', self.hosts[name], 'nft', 'delete', 'table', 'inet', 'natter_cut')

    def down(self):
        for ns in reversed(self.namespaces):
            pids = subprocess.run(['ip', 'netns', 'pids', ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(['ip', 'netns', 'del', ns], capture_output=True)


def main():
    if os.geteuid() != 0:
        skip('not root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)')
    for tool in ('ip', 'nft'):
        if shutil.which(tool) is None:
            skip(f"'{tool}' not found (iproute2, nftables)")
    if subprocess.run(['ip', 'netns', 'add', f'nfprobe{os.getpid()}'], capture_output=True).returncode != 0:
        skip("'ip netns add' does not work here")
    subprocess.run(['ip', 'netns', 'del', f'nfprobe{os.getpid()}'], capture_output=True)

    work = tempfile.mkdtemp(prefix='natter-files-netns-')
    os.chmod(work, 0o755)
    net = None
    server = None
    bailed = False
    try:
        net = Net()
        log = open(os.path.join(work, 'rendezvous.log'), 'wb')
        server = subprocess.Popen(['ip', 'netns', 'exec', net.hub, SERVER, '--listen', '10.78.0.1',
                                   '--port', '0'], stdout=subprocess.PIPE, stderr=log, text=True)
        line = server.stdout.readline()
        F.must('listening on ' in line, 'natter-rendezvous listens in the hub namespace', line)
        url = line.split('listening on ', 1)[1].strip()
        a = F.Peer('A', work, url, prefix=('ip', 'netns', 'exec', net.hosts['A']), interfaces='eth0')
        b = F.Peer('B', work, url, prefix=('ip', 'netns', 'exec', net.hosts['B']), interfaces='eth0',
                   extra=('--auto-accept',))
        for me, other in ((a, b), (b, a)):
            reply = me.request('add-contact', peer=other.peer_id, name=other.name)
            F.must(reply is not None and reply['event'] == 'reply', f'{me.name} adds {other.name}')
        s = F.Session.__new__(F.Session)
        s.a, s.b, s.work = a, b, work
        s.connected(a, b)

        src = F.make_file(os.path.join(work, 'cut.bin'), SIZE)
        reply = a.request('send-file', peer=b.peer_id, path=src)
        F.must(reply is not None and reply['event'] == 'reply', 'A offers 150 MB to B')
        tid = reply['transferId']
        seen = b.wait_for(lambda e: e['event'] == 'transfer-progress' and e['transferId'] == tid and
                          e['bytes'] >= 40 * 1000 * 1000, 300)
        F.must(seen is not None, 'B has received 40 MB')
        mark_a, mark_b = a.mark(), b.mark()
        net.cut('A')
        cut_at = time.monotonic()
        paused = b.wait_for(lambda e: e['event'] == 'transfer-state-changed' and e['transferId'] == tid and
                            e['state'] == 'paused', CUT_SECONDS + 5, mark_b)
        F.ok(paused is not None, f'link cut: B pauses the transfer ({time.monotonic() - cut_at:.1f} s)')
        time.sleep(max(0, CUT_SECONDS - (time.monotonic() - cut_at)))
        before = b.transfer(tid)
        F.ok(before is not None and before['state'] != 'complete',
             f'after {CUT_SECONDS} s cut the transfer is not complete ({before and before["bytes"]} bytes)')
        net.restore('A')
        restored_at = time.monotonic()
        path = s.completed(a, b, tid, src, 'after the link came back', timeout=300)
        F.ok(path is not None, f'the transfer completed {time.monotonic() - restored_at:.1f} s after the '
             'link came back')
        bt = b.transfer(tid)
        F.ok(bt is not None and bt['duplicateBytes'] <= F.ACK_WINDOW,
             f'B received {bt and bt["duplicateBytes"]} bytes twice (at most one window)', bt)
        codes = [a.stop(), b.stop()]
        F.ok(all(c == 0 for c in codes), f'both processes exit cleanly {codes}')
        bad = [line for p in F.peers for line in p.bad_log()]
        F.ok(not bad, 'no critical warning or sanitizer report', '\n'.join(bad[:20]))
    except F.Bail as e:
        bailed = True
        print(f'# bailed out: {e}', flush=True)
    finally:
        for p in F.peers:
            if p.proc.poll() is None:
                p.proc.kill()
        if server is not None and server.poll() is None:
            server.kill()
        if net is not None:
            net.down()
        shutil.rmtree(work, ignore_errors=True)
    print(f'1..{len(F.results)}', flush=True)
    return 0 if not bailed and all(F.results) else 1


if __name__ == '__main__':
    sys.exit(main())
