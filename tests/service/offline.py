#!/usr/bin/python3
# offline.py: store-and-forward through a third peer, its quota and TTL
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Issue #5, Done-when 4.  Hosts A, B and C on one bridge (nshelper.Hub),
# natter-rendezvous in the switch namespace, "natter-cli run" processes
# started and stopped on them (--interfaces eth0, --no-lan); all three are
# mutual contacts.  Checked from their JSON events and "history" replies:
#
#   1. A sends to C while C is offline and B online: B holds it
#      (relay-event stored; A sees "sent" via B).  A goes offline; C comes
#      online and receives it from B (via = B; B emits handed-over); A
#      comes back and sees it delivered;
#   2. B started with --relay-quota (a little more than one message):
#      the first message for the offline C is held, the second is refused,
#      and both sides say so (relay-event refused with a "quota…" detail on
#      B, refused-by from B with detail "quota" on A), while A keeps the
#      message queued: it is not lost, and is delivered when C comes back;
#   3. A started with --ttl 15: a message held by B for the offline C
#      fails on A when the TTL runs out, and C, coming back after that,
#      never gets it.
#
# Usage: offline.py PATH/TO/natter-cli PATH/TO/natter-rendezvous.  TAP;
# "1..0 # SKIP reason" when it cannot run here, a failure instead with
# NATTER_NO_SKIP=1.

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nshelper as nh  # noqa: E402

CLI, SERVER = sys.argv[1], sys.argv[2]
CONNECT_TIMEOUT = 60
DELIVERY_TIMEOUT = 90
EVENT_TIMEOUT = 30
QUOTA_TEXT = 1500           # characters: a wire message of about 2.7 KB
QUOTA = 4000                # bytes: one such message fits, two do not
TTL = 15


def relay_event(kind, msg_id):
    return lambda e: e['event'] == 'relay-event' and e.get('kind') == kind and e.get('msgId') == msg_id


class World:
    def __init__(self, tap, work):
        self.tap, self.work = tap, work
        self.hub = nh.Hub(['A', 'B', 'C'])
        self.server = nh.Server(SERVER, self.hub.hub, self.hub.server_ip, work)
        tap.ok(True, f'natter-rendezvous listens at {self.server.url}')
        self.profiles = {n: os.path.join(work, n) for n in 'ABC'}
        self.runs = {n: 0 for n in 'ABC'}
        self.peers = {}
        self.ids = {}

    def start(self, name, *extra):
        self.runs[name] += 1
        peer = nh.Peer(f'{name}{self.runs[name]}', CLI, self.hub.ns(name), self.profiles[name],
                       self.work, ['--rendezvous', self.server.url, *extra])
        self.tap.must(peer.ready() is not None, f'{peer.name} is ready' + (f' ({" ".join(extra)})' if extra else ''))
        self.peers[name] = peer
        self.ids[name] = peer.peer_id
        return peer

    def stop(self, name):
        peer = self.peers.pop(name)
        nh.check_clean_exit(self.tap, peer, peer.stop())

    def connected(self, x, y):
        return (nh.wait_direct(self.peers[x], self.ids[y], CONNECT_TIMEOUT)
                and nh.wait_direct(self.peers[y], self.ids[x], CONNECT_TIMEOUT))

    def wait_offline(self, x, y, since=0):
        """@x no longer reaches @y: the "peer" command says offline or
        connecting (a peer-state-changed event may have come before
        @since, or not at all when they were not connected)."""
        deadline = time.monotonic() + EVENT_TIMEOUT
        while time.monotonic() < deadline:
            reply = self.peers[x].request('peer', peer=self.ids[y])
            if reply is not None and reply.get('peerState') in ('offline', 'connecting'):
                return True
            time.sleep(0.5)
        return False


def main():
    nh.require([CLI, SERVER])
    tap = nh.Tap()
    tap.dumpers.append(nh.dump_live_peers)
    work = nh.workdir('natter-offline-')
    bailed = False
    try:
        w = World(tap, work)
        a, b, c = w.start('A'), w.start('B'), w.start('C')
        nh.add_contacts(tap, a, [('B', b.peer_id), ('C', c.peer_id)])
        nh.add_contacts(tap, b, [('A', a.peer_id), ('C', c.peer_id)])
        nh.add_contacts(tap, c, [('A', a.peer_id), ('B', b.peer_id)])
        tap.must(w.connected('A', 'B') and w.connected('B', 'C'), 'A-B and B-C connect')
        A, B, C = w.ids['A'], w.ids['B'], w.ids['C']

        # ---- 1. store-and-forward ------------------------------------
        since_a, since_b = a.mark(), b.mark()
        w.stop('C')
        tap.ok(w.wait_offline('A', 'C', since_a) and w.wait_offline('B', 'C', since_b),
               'C goes offline: A and B see it offline')
        text = nh.random_marker('held-for-C')
        m1 = a.send(C, text)
        tap.must(m1 is not None, '[store-and-forward] A sends to the offline C')
        stored = b.wait_for(relay_event('stored', m1), DELIVERY_TIMEOUT)
        tap.ok(stored is not None and stored.get('from') == A and stored.get('to') == C,
               '[store-and-forward] B holds it (relay-event stored, from A to C)', stored)
        sent = a.wait_for(lambda e: e['event'] == 'message-state-changed' and e.get('msgId') == m1
                          and e.get('state') == 'sent', EVENT_TIMEOUT)
        tap.ok(sent is not None and sent.get('via') == B, '[store-and-forward] A sees it sent via B', sent)
        w.stop('A')
        c = w.start('C')
        got = c.wait_for(nh.is_received(m1), DELIVERY_TIMEOUT)
        tap.ok(got is not None and got.get('text') == text and got.get('sender') == A
               and got.get('via') == B,
               '[store-and-forward] C comes online with A offline and receives it from B (via B)', got)
        tap.ok(b.wait_for(relay_event('handed-over', m1), EVENT_TIMEOUT) is not None,
               '[store-and-forward] B hands it over (relay-event handed-over)')
        tap.ok(not c.find(nh.is_state(A, 'direct')), '[store-and-forward] C never reached A itself')
        a = w.start('A')
        tap.ok(a.wait_state(m1, 'delivered', DELIVERY_TIMEOUT),
               '[store-and-forward] A comes back and sees it delivered', a.states_of(m1))

        # ---- 2. quota ------------------------------------------------
        since_a, since_b = a.mark(), b.mark()
        w.stop('C')
        tap.ok(w.wait_offline('A', 'C', since_a) and w.wait_offline('B', 'C', since_b),
               '[quota] C goes offline again (A and B see it offline)')
        w.stop('B')
        b = w.start('B', '--relay-quota', str(QUOTA))
        tap.must(w.connected('A', 'B'), '[quota] A and B connect again')
        q1 = a.send(C, 'q1 ' + 'x' * QUOTA_TEXT)
        tap.must(q1 is not None, f'[quota] A sends a first message of {QUOTA_TEXT} characters')
        tap.ok(b.wait_for(relay_event('stored', q1), DELIVERY_TIMEOUT) is not None,
               '[quota] B holds the first one (relay-event stored)')
        q2 = a.send(C, 'q2 ' + 'y' * QUOTA_TEXT)
        tap.must(q2 is not None, '[quota] A sends a second one')
        refused = b.wait_for(relay_event('refused', q2), DELIVERY_TIMEOUT)
        tap.ok(refused is not None and str(refused.get('detail') or '').startswith('quota'),
               f'[quota] B refuses the second, saying why (relay-event refused: '
               f'"{refused.get("detail") if refused else None}")', refused)
        told = a.wait_for(relay_event('refused-by', q2), EVENT_TIMEOUT)
        tap.ok(told is not None and told.get('from') == B and 'quota' in str(told.get('detail')),
               '[quota] A is told (relay-event refused-by from B, detail quota)', told)
        time.sleep(2)
        row = [m for m in (a.history(C) or []) if m.get('msgId') == q2]
        tap.ok(row and row[0].get('state') == 'queued' and 'failed' not in a.states_of(q2)
               and 'sent' not in a.states_of(q2),
               '[quota] A keeps the second message queued (history state queued, never sent or failed)',
               f'{row[:1]}; states {a.states_of(q2)}')
        stats = (a.request('stats') or {}).get('stats', {})
        tap.ok(stats.get('outboxLength', 0) >= 1, f'[quota] it is in A\'s outbox ({stats.get("outboxLength")})', stats)
        c = w.start('C')
        got = c.wait_for(nh.is_received(q2), DELIVERY_TIMEOUT)
        tap.ok(got is not None and got.get('text', '').startswith('q2 '),
               '[quota] not lost: when C comes back it receives the refused message', got)
        tap.ok(c.wait_for(nh.is_received(q1), DELIVERY_TIMEOUT) is not None,
               '[quota] and the one B held')
        tap.ok(a.wait_state(q2, 'delivered', DELIVERY_TIMEOUT) and a.wait_state(q1, 'delivered', DELIVERY_TIMEOUT),
               '[quota] A sees both delivered')

        # ---- 3. TTL --------------------------------------------------
        since_a, since_b = a.mark(), b.mark()
        w.stop('C')
        tap.ok(w.wait_offline('A', 'C', since_a) and w.wait_offline('B', 'C', since_b),
               '[ttl] C goes offline again (A and B see it offline)')
        w.stop('A')
        a = w.start('A', '--ttl', str(TTL))
        tap.must(w.connected('A', 'B'), '[ttl] A (with --ttl) and B connect')
        ttl_text = nh.random_marker('expires')
        t1 = a.send(C, ttl_text)
        sent_at = time.monotonic()
        tap.must(t1 is not None, f'[ttl] A sends a message with a TTL of {TTL} s to the offline C')
        tap.ok(b.wait_for(relay_event('stored', t1), DELIVERY_TIMEOUT) is not None,
               '[ttl] B holds it (relay-event stored)')
        failed = a.wait_state(t1, 'failed', TTL + 30)
        waited = time.monotonic() - sent_at
        tap.ok(failed and waited >= TTL - 1,
               f'[ttl] A sees it failed once the TTL ran out ({waited:.1f} s after sending)',
               a.states_of(t1))
        row = [m for m in (a.history(C) or []) if m.get('msgId') == t1]
        tap.ok(row and row[0].get('state') == 'failed', '[ttl] A\'s history says failed', row)
        c = w.start('C')
        tap.must(w.connected('B', 'C'), '[ttl] C comes back after the TTL and connects to B')
        w.connected('A', 'C')
        time.sleep(10)
        tap.ok(not c.find(nh.is_received(t1)) and not c.find(nh.is_received(text=ttl_text)),
               '[ttl] C does not get the expired message')
        tap.ok(not [m for m in (c.history(A) or []) if m.get('msgId') == t1],
               '[ttl] C\'s history does not have it')
        tap.ok(not b.find(relay_event('handed-over', t1)), '[ttl] B did not hand it over')

        for name in ('A', 'B', 'C'):
            w.stop(name)
        code = w.server.stop()
        tap.ok(code == 0, f'natter-rendezvous stops cleanly (status {code})')
    except nh.Bail as e:
        print(f'Bail out! {e}', flush=True)
        bailed = True
    status = tap.finish(bailed)
    if status == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f'# logs kept in {work}', flush=True)
    return status


if __name__ == '__main__':
    sys.exit(main())
