#!/usr/bin/python3
# relay.py: A reaches C only through B, and B learns nothing it should not
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Issue #5, Done-when 3.  Hosts A, B and C on one bridge (nshelper.Hub),
# natter-rendezvous in the switch namespace, one "natter-cli run" each
# (--interfaces eth0, --no-lan; NATTER_TEST_HOOKS=1 on A for "send-raw").
# nftables on A and on C drops all traffic between their two addresses;
# both reach B and the server.  All three are mutual contacts.  Checked:
#
#   - A and C never connect directly, A and B and B and C do;
#   - A's message to C goes through B: A sees "sent" with via = B, then
#     "delivered"; B emits relay-event forwarded (or stored); C receives
#     it, relayed by B; C's reply comes back the same way;
#   - B's database (natter.db with its -wal and -shm, read while B runs and
#     again after it stopped) and B's process memory (/proc/PID/mem) do not
#     contain the texts (random markers), while A's own database and memory
#     do (the control that shows the search would find them);
#   - a forged relayed message (claiming to be from A, signed by another
#     key) and a tampered one (signed with A's key from its identity.key,
#     then its text changed), sent raw from A to B for C, are refused by B
#     (relay-event refused, detail "invalid"), and C never shows them.  The
#     untampered one is checked with "natter-cli inspect-message" first, so
#     the signing here is known to be right.
#
# Usage: relay.py PATH/TO/natter-cli PATH/TO/natter-rendezvous.  TAP;
# "1..0 # SKIP reason" when it cannot run here, a failure instead with
# NATTER_NO_SKIP=1.

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nshelper as nh  # noqa: E402

CLI, SERVER = sys.argv[1], sys.argv[2]
CONNECT_TIMEOUT = 60
DELIVERY_TIMEOUT = 90
EVENT_TIMEOUT = 20


def relayed_message(tap, sender, receiver, relay, s, r, text):
    msg_id = sender.send(receiver.peer_id, text)
    tap.must(msg_id is not None, f'{s} sends a message to {r}')
    sent = sender.wait_for(lambda e: e['event'] == 'message-state-changed' and e.get('msgId') == msg_id
                           and e.get('state') == 'sent', DELIVERY_TIMEOUT)
    tap.ok(sent is not None and sent.get('via') == relay.peer_id,
           f'{s} sees it "sent" with via = B', sent)
    tap.ok(sender.wait_state(msg_id, 'delivered', DELIVERY_TIMEOUT), f'{s} sees it delivered',
           sender.states_of(msg_id))
    event = relay.wait_for(lambda e: e['event'] == 'relay-event' and e.get('msgId') == msg_id
                           and e.get('kind') in ('forwarded', 'stored'), EVENT_TIMEOUT)
    tap.ok(event is not None and event.get('from') == sender.peer_id
           and event.get('to') == receiver.peer_id,
           f'B emits relay-event {event.get("kind") if event else "forwarded/stored"} for it, '
           f'from {s} to {r}', event)
    got = receiver.wait_for(nh.is_received(msg_id), DELIVERY_TIMEOUT)
    tap.ok(got is not None and got.get('text') == text and got.get('sender') == sender.peer_id
           and got.get('via') == relay.peer_id,
           f'{r} receives it, with the exact text, relayed by B', got)
    return msg_id


def main():
    nh.require([CLI, SERVER])
    try:
        import nacl.signing  # noqa: F401
    except ImportError:
        nh.skip('python3-nacl is not installed')
    tap = nh.Tap()
    tap.dumpers.append(nh.dump_live_peers)
    work = nh.workdir('natter-relay-')
    bailed = False
    try:
        hub = nh.Hub(['A', 'B', 'C'])
        hub.block('A', hub.ip('C'))
        hub.block('C', hub.ip('A'))
        server = nh.Server(SERVER, hub.hub, hub.server_ip, work)
        tap.ok(True, f'natter-rendezvous listens at {server.url}; A ({hub.ip("A")}) and '
                     f'C ({hub.ip("C")}) block each other')
        args = ['--rendezvous', server.url]
        profiles = {n: os.path.join(work, n) for n in 'ABC'}
        a = nh.Peer('A', CLI, hub.ns('A'), profiles['A'], work, args, {'NATTER_TEST_HOOKS': '1'})
        b = nh.Peer('B', CLI, hub.ns('B'), profiles['B'], work, args)
        c = nh.Peer('C', CLI, hub.ns('C'), profiles['C'], work, args)
        tap.must(all(p.ready() is not None for p in (a, b, c)), 'A, B and C are ready')
        nh.add_contacts(tap, a, [('B', b.peer_id), ('C', c.peer_id)])
        nh.add_contacts(tap, b, [('A', a.peer_id), ('C', c.peer_id)])
        nh.add_contacts(tap, c, [('A', a.peer_id), ('B', b.peer_id)])
        tap.must(nh.wait_direct(a, b.peer_id, CONNECT_TIMEOUT)
                 and nh.wait_direct(b, a.peer_id, CONNECT_TIMEOUT)
                 and nh.wait_direct(b, c.peer_id, CONNECT_TIMEOUT)
                 and nh.wait_direct(c, b.peer_id, CONNECT_TIMEOUT),
                 'A-B and B-C connect directly')

        marker_a = nh.random_marker('relay-A-to-C')
        marker_c = nh.random_marker('relay-C-to-A')
        relayed_message(tap, a, c, b, 'A', 'C', f'secret from A {marker_a}')
        relayed_message(tap, c, a, b, 'C', 'A', f'secret from C {marker_c}')
        relayed_to_c = a.find(nh.is_state(c.peer_id, 'relayed', b.peer_id))
        tap.ok(relayed_to_c, 'A shows C as relayed via B (peer-state-changed)')
        tap.ok(not a.find(nh.is_state(c.peer_id, 'direct')) and not c.find(nh.is_state(a.peer_id, 'direct')),
               'A and C never connected directly')

        # B must not hold the texts, in its files or its memory.
        needles = {marker_a.encode(), marker_c.encode()}
        found, scanned = nh.process_memory_contains(b.pid, needles)
        tap.ok(not found, f'B\'s process memory ({scanned // 1024} KiB read from /proc/{b.pid}/mem) '
                          f'holds neither text', found)
        found = nh.files_contain(nh.database_files(profiles['B']), needles)
        tap.ok(not found and os.path.exists(os.path.join(profiles['B'], 'natter.db')),
               'B\'s database (natter.db, -wal, -shm), read while B runs, holds neither text', found)
        found, scanned = nh.process_memory_contains(a.pid, needles)
        tap.ok(found == needles, f'control: A\'s process memory ({scanned // 1024} KiB) holds both '
                                 f'texts, so the search works', found)
        found = nh.files_contain(nh.database_files(profiles['A']), needles)
        tap.ok(found == needles, 'control: A\'s database files hold both texts', found)

        # Forged and tampered messages, raw from A to B, for C.
        c_ready = c.mark()
        seed = nh.identity_seed(profiles['A'])
        good = nh.sign(nh.direct_message(a.peer_id, c.peer_id, nh.random_marker('untampered')), seed)
        with tempfile.NamedTemporaryFile('w', suffix='.json', dir=work, delete=False) as f:
            json.dump(good, f)
        check = subprocess.run([CLI, 'inspect-message', f.name], capture_output=True, text=True,
                               timeout=30, stdin=subprocess.DEVNULL)
        tap.ok(check.returncode == 0 and 'signature verified' in check.stdout,
               'control: a message signed here with A\'s key from identity.key is valid '
               '(natter-cli inspect-message)', check.stdout + check.stderr)

        import nacl.signing
        wrong = nacl.signing.SigningKey.generate().encode()
        forged_text = nh.random_marker('forged')
        forged = nh.sign(nh.direct_message(a.peer_id, c.peer_id, forged_text), wrong)
        tampered_text = nh.random_marker('tampered')
        tampered = nh.sign(nh.direct_message(a.peer_id, c.peer_id, nh.random_marker('original')), seed)
        tampered['content']['text'] = tampered_text

        for name, message in (('forged', forged), ('tampered', tampered)):
            since = b.mark()
            reply = a.request('send-raw', peer=b.peer_id, wire=json.dumps(message))
            tap.ok(reply is not None and reply['event'] == 'reply',
                   f'A puts the {name} message on the wire to B (send-raw)', reply)
            refused = b.wait_for(lambda e: e['event'] == 'relay-event' and e.get('msgId') == message['id'],
                                 EVENT_TIMEOUT, since)
            tap.ok(refused is not None and refused.get('kind') == 'refused'
                   and refused.get('detail') == 'invalid',
                   f'B refuses the {name} message (relay-event refused, detail invalid)', refused)
        time.sleep(5)
        shown = c.find(lambda e: e['event'] == 'message-received'
                       and (e.get('msgId') in (forged['id'], tampered['id'])
                            or e.get('text') in (forged_text, tampered_text)))
        tap.ok(not shown, 'C never shows the forged or the tampered message', shown)
        history = c.history(a.peer_id) or []
        tap.ok(not [m for m in history if m.get('msgId') in (forged['id'], tampered['id'])],
               'C\'s history holds neither')
        del c_ready

        b_pid = b.pid
        for p in (a, c, b):
            nh.check_clean_exit(tap, p, p.stop())
        found = nh.files_contain(nh.database_files(profiles['B']), needles)
        tap.ok(not found, f'B\'s database files after it stopped (pid {b_pid}) hold neither text', found)
        code = server.stop()
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
