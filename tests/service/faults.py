#!/usr/bin/python3
# faults.py: delivery survives killed processes, packet loss and cut links
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Issue #5, Done-when 2.  Two hosts, A and B, in network namespaces on one
# bridge (nshelper.Hub), natter-rendezvous in the switch namespace, one
# "natter-cli run" per host (--interfaces eth0, --no-lan).  Checked from
# the JSON events and "history" replies (docs/cli.md):
#
#   1. a sender killed with SIGKILL right after "send" replied (the
#      message committed, "queued") delivers it exactly once after it
#      restarts: B's history has it once, and the restarted A sees it
#      delivered.  Twice: with the link up (the frame may well be out
#      before the kill) and with A's link cut (it cannot be);
#   2. a receiver killed with SIGKILL in the middle of a stream of 300
#      messages loses none and shows no duplicate once it restarts: its
#      history holds exactly the 300 IDs, each once, and A sees all 300
#      delivered;
#   3. cutting A's link (nftables drop on its eth0, both ways) shows the
#      peer offline on both sides within 15 s (measured), and they connect
#      again once the link is back;
#   4. with 20 % random loss both ways (nftables numgen on A's eth0, in and
#      out), 1,000 messages each way are all delivered, and each receiver's
#      history has the other's messages exactly once, in the sender's
#      order (by the number in the text).
#
# Usage: faults.py PATH/TO/natter-cli PATH/TO/natter-rendezvous.  TAP;
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
STREAM = 300
STREAM_KILL_AT = 60          # kill B once it has shown this many
STREAM_TIMEOUT = 180
LOSS_PERCENT = 20
LOSS_COUNT = 1000
LOSS_TIMEOUT = 900
OFFLINE_LIMIT = 15.0


class Faults:
    def __init__(self, tap, work):
        self.tap = tap
        self.work = work
        self.hub = nh.Hub(['A', 'B'])
        self.server = nh.Server(SERVER, self.hub.hub, self.hub.server_ip, work)
        tap.ok(True, f'natter-rendezvous listens at {self.server.url} in {self.hub.hub}')
        self.args = ['--rendezvous', self.server.url]
        self.profiles = {n: os.path.join(work, n) for n in ('A', 'B')}
        self.runs = {'A': 0, 'B': 0}
        self.a = self.start('A')
        self.b = self.start('B')
        nh.add_contacts(tap, self.a, [('B', self.b.peer_id)])
        nh.add_contacts(tap, self.b, [('A', self.a.peer_id)])
        self.a_id, self.b_id = self.a.peer_id, self.b.peer_id
        tap.must(nh.wait_direct(self.a, self.b_id, CONNECT_TIMEOUT)
                 and nh.wait_direct(self.b, self.a_id, CONNECT_TIMEOUT),
                 'A and B connect (peer-state direct on both sides)')
        self.b_runs = [self.b]      # every B process, for duplicate counting

    def start(self, name):
        self.runs[name] += 1
        peer = nh.Peer(f'{name}{self.runs[name]}', CLI, self.hub.ns(name), self.profiles[name],
                       self.work, self.args)
        self.tap.must(peer.ready() is not None, f'{peer.name}: natter-cli run is ready')
        return peer

    def b_received_count(self, msg_id):
        return sum(p.received_ids().count(msg_id) for p in self.b_runs)

    # -- 1 ---------------------------------------------------------------

    def sender_killed(self, cut):
        tap, label = self.tap, ('link cut' if cut else 'link up')
        text = nh.random_marker(f'kill-sender-{"cut" if cut else "up"}')
        if cut:
            self.hub.cut('A')
        msg_id = self.a.send(self.b_id, text)
        tap.must(msg_id is not None, f'[{label}] A sends a message: "send" replies with its msgId')
        self.a.kill()
        tap.diag(f'[{label}] A killed (SIGKILL) right after the reply; its states: '
                 f'{self.a.states_of(msg_id)}')
        if cut:
            time.sleep(2)
            self.hub.restore('A')
        self.a = self.start('A')
        delivered = self.a.wait_state(msg_id, 'delivered', DELIVERY_TIMEOUT)
        history_a = self.a.history(self.b_id) or []
        row = [m for m in history_a if m.get('msgId') == msg_id]
        tap.ok(delivered or (row and row[0].get('state') in ('delivered', 'read')),
               f'[{label}] the restarted A sees the message delivered',
               f'states after restart: {self.a.states_of(msg_id)}; history: {row}')
        time.sleep(2)          # room for a duplicate to show
        history_b = self.b.history(self.a_id) or []
        copies = [m for m in history_b if m.get('msgId') == msg_id]
        tap.ok(len(copies) == 1 and copies[0].get('text') == text,
               f'[{label}] B\'s history has it exactly once ({len(copies)})', copies)
        n = self.b_received_count(msg_id)
        tap.ok(n == 1, f'[{label}] B showed it once (message-received x{n})')

    # -- 2 ---------------------------------------------------------------

    def receiver_killed(self):
        tap = self.tap
        texts = [f'stream-{i:04d}' for i in range(STREAM)]
        tags = []
        killed_at = None
        b = self.b

        def shown():
            return sum(1 for e in b.received if (e.get('text') or '').startswith('stream-'))

        # In chunks, so that B dies while messages are still coming.
        for start in range(0, STREAM, 10):
            tags += self.a.commands('send', [{'peer': self.b_id, 'text': t}
                                             for t in texts[start:start + 10]])
            if killed_at is None:
                with b.cond:
                    count = shown()
                if count >= STREAM_KILL_AT:
                    b.kill()
                    killed_at = (count, start + 10)
            time.sleep(0.05)
        if killed_at is None:
            b.wait_until(lambda: shown() >= STREAM_KILL_AT, 30)
            with b.cond:
                count = shown()
            b.kill()
            killed_at = (count, STREAM)
        tap.ok(0 < killed_at[0] < STREAM,
               f'B killed (SIGKILL) mid-stream: {killed_at[0]} of {STREAM} shown, '
               f'{killed_at[1]} sent so far')
        tap.must(self.a.wait_until(lambda: all(t in self.a.replies for t in tags), 60),
                 f'A committed all {STREAM} messages ("send" replies)')
        ids = [self.a.replies[t].get('msgId') for t in tags]
        tap.ok(all(self.a.replies[t]['event'] == 'reply' for t in tags) and None not in ids,
               'every send succeeded')
        time.sleep(3)
        self.b = self.start('B')
        self.b_runs.append(self.b)
        pending = set(ids)

        def all_delivered():
            for i in list(pending):
                if self.a._has_state_locked(i, 'delivered'):
                    pending.discard(i)
            return not pending
        started = time.monotonic()
        ok = self.a.wait_until(all_delivered, STREAM_TIMEOUT)
        tap.ok(ok, f'A sees all {STREAM} delivered after B restarts '
                   f'({STREAM - len(pending)} in {time.monotonic() - started:.1f} s)')
        time.sleep(2)
        history = self.b.history(self.a_id) or []
        got = [m.get('msgId') for m in history if (m.get('text') or '').startswith('stream-')]
        missing = set(ids) - set(got)
        dupes = len(got) - len(set(got))
        tap.ok(len(got) == STREAM and not missing and dupes == 0,
               f'B\'s history holds exactly the {STREAM} IDs, each once '
               f'({len(got)} rows, {len(missing)} missing, {dupes} duplicates)')
        shown_total = {}
        for p in self.b_runs:
            for e in p.received:
                if e.get('msgId') in pending or e.get('msgId') in set(ids):
                    shown_total[e['msgId']] = shown_total.get(e['msgId'], 0) + 1
        twice = [k for k, v in shown_total.items() if v > 1]
        tap.ok(not twice and len(shown_total) == STREAM,
               f'B showed each of them once over both runs ({len(shown_total)} shown, '
               f'{len(twice)} more than once)')
        order = [m.get('text') for m in history if (m.get('text') or '').startswith('stream-')]
        tap.diag(f'B\'s history in the sender\'s order: {order == sorted(order)}')

    # -- 3 ---------------------------------------------------------------

    def link_cut(self):
        tap = self.tap
        since_a, since_b = self.a.mark(), self.b.mark()

        def offline(other):
            return lambda e: ((e['event'] == 'peer-state-changed' and e.get('peer') == other
                               and e.get('state') == 'offline')
                              or (e['event'] == 'presence-changed' and e.get('peer') == other
                                  and e.get('presence') == 'offline'))
        cut_at = time.monotonic()
        self.hub.cut('A')
        seen_b = self.b.wait_for(offline(self.a_id), 40, since_b)
        t_b = time.monotonic() - cut_at
        seen_a = self.a.wait_for(offline(self.b_id), max(0.1, 40 - t_b), since_a)
        t_a = time.monotonic() - cut_at
        tap.ok(seen_b is not None and t_b <= OFFLINE_LIMIT,
               f'link cut: B shows A offline within {OFFLINE_LIMIT:.0f} s ({t_b:.1f} s)', seen_b)
        tap.ok(seen_a is not None and t_a <= OFFLINE_LIMIT,
               f'link cut: A shows B offline within {OFFLINE_LIMIT:.0f} s ({t_a:.1f} s)', seen_a)
        since_a, since_b = self.a.mark(), self.b.mark()
        self.hub.restore('A')
        ok = (nh.wait_direct(self.a, self.b_id, CONNECT_TIMEOUT, since_a)
              and nh.wait_direct(self.b, self.a_id, CONNECT_TIMEOUT, since_b))
        tap.ok(ok, 'link restored: A and B connect again (direct)')

    # -- 4 ---------------------------------------------------------------

    def lossy(self):
        tap = self.tap
        self.hub.loss('A', LOSS_PERCENT)
        tap.diag(f'{LOSS_PERCENT} % loss on A\'s eth0, in and out')
        sides = [(self.a, self.b, 'A', 'B'), (self.b, self.a, 'B', 'A')]
        tags = {}
        for start in range(0, LOSS_COUNT, 50):
            for sender, receiver, s, r in sides:
                tags.setdefault(s, [])
                tags[s] += sender.commands('send', [{'peer': receiver.peer_id,
                                                     'text': f'loss-{s}-{i:04d}'}
                                                    for i in range(start, min(start + 50, LOSS_COUNT))])
            time.sleep(0.2)
        started = time.monotonic()
        ids = {}
        for sender, receiver, s, r in sides:
            tap.must(sender.wait_until(lambda: all(t in sender.replies for t in tags[s]), 120),
                     f'{s} committed its {LOSS_COUNT} messages')
            ids[s] = [sender.replies[t].get('msgId') for t in tags[s]]
            tap.ok(None not in ids[s], f'every send on {s} succeeded')
        for sender, receiver, s, r in sides:
            pending = set(ids[s])

            def all_delivered(sender=sender, pending=pending):
                for i in list(pending):
                    if sender._has_state_locked(i, 'delivered'):
                        pending.discard(i)
                return not pending
            left = max(1, LOSS_TIMEOUT - (time.monotonic() - started))
            ok = sender.wait_until(all_delivered, left)
            tap.ok(ok, f'{LOSS_PERCENT} % loss: {s} sees all {LOSS_COUNT} delivered '
                       f'({LOSS_COUNT - len(pending)} after {time.monotonic() - started:.0f} s)')
        tap.diag(self.hub.counters('A'))
        self.hub.loss('A', 0)
        for sender, receiver, s, r in sides:
            history = receiver.history(sender.peer_id) or []
            texts = [m.get('text') for m in history if (m.get('text') or '').startswith(f'loss-{s}-')]
            expected = [f'loss-{s}-{i:04d}' for i in range(LOSS_COUNT)]
            tap.ok(sorted(set(texts)) == expected and len(texts) == LOSS_COUNT,
                   f'{r}\'s history has each of {s}\'s {LOSS_COUNT} messages exactly once '
                   f'({len(texts)} rows, {len(set(texts))} distinct)')
            misplaced = sum(1 for x, y in zip(texts, texts[1:]) if x > y)
            tap.ok(texts == expected,
                   f'{r}\'s history has them in {s}\'s order ({misplaced} out of order)',
                   None if texts == expected else f'first rows: {texts[:20]}')
            events = [e.get('text') for e in receiver.received
                      if (e.get('text') or '').startswith(f'loss-{s}-')]
            tap.diag(f'{r} showed {len(events)} of them, in order: {events == sorted(events)}')

    def stop(self):
        for p in (self.a, self.b):
            nh.check_clean_exit(self.tap, p, p.stop())
        code = self.server.stop()
        self.tap.ok(code == 0, f'natter-rendezvous stops cleanly (status {code})')


def main():
    nh.require([CLI, SERVER])
    tap = nh.Tap()
    tap.dumpers.append(nh.dump_live_peers)
    work = nh.workdir('natter-faults-')
    bailed = False
    try:
        f = Faults(tap, work)
        f.sender_killed(cut=False)
        f.sender_killed(cut=True)
        f.receiver_killed()
        f.link_cut()
        f.lossy()
        f.stop()
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
