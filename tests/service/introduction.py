#!/usr/bin/python3
# introduction.py: two peers connect without a server, introduced by a third
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Issue #4, Done-when 4 (the server-less path).  Hosts A, B and C on one
# bridge (nshelper.Hub), natter-rendezvous in the switch namespace, one
# "natter-cli run" each (--interfaces eth0, --no-lan: no LAN discovery).
#
#   - A-B and B-C are contacts and connect through the rendezvous server;
#   - the server is killed (SIGKILL);
#   - only then do A and C add each other (run add-contact): they had never
#     connected, and no server and no LAN can carry their signals;
#   - they connect directly (peer-state direct, via null, never relayed)
#     through B's introduction (connection_request / peer_introduction),
#     and a message goes each way directly (via null on both sides).
#
# Usage: introduction.py PATH/TO/natter-cli PATH/TO/natter-rendezvous.
# TAP; "1..0 # SKIP reason" when it cannot run here, a failure instead
# with NATTER_NO_SKIP=1.

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nshelper as nh  # noqa: E402

CLI, SERVER = sys.argv[1], sys.argv[2]
CONNECT_TIMEOUT = 60
INTRODUCTION_TIMEOUT = 120
DELIVERY_TIMEOUT = 60


def direct_message(tap, sender, receiver, s, r):
    text = nh.random_marker(f'direct-{s}-to-{r}')
    msg_id = sender.send(receiver.peer_id, text)
    tap.must(msg_id is not None, f'{s} sends a message to {r}')
    tap.ok(sender.wait_state(msg_id, 'delivered', DELIVERY_TIMEOUT), f'{s} sees it delivered',
           sender.states_of(msg_id))
    vias = {e.get('via') for e in sender.state_events(msg_id)}
    tap.ok(vias == {None}, f'{s}: every state of it is direct (via null)', vias)
    got = receiver.wait_for(nh.is_received(msg_id), DELIVERY_TIMEOUT)
    tap.ok(got is not None and got.get('text') == text and got.get('via') is None,
           f'{r} receives it directly (via null)', got)


def main():
    nh.require([CLI, SERVER])
    tap = nh.Tap()
    tap.dumpers.append(nh.dump_live_peers)
    work = nh.workdir('natter-introduction-')
    bailed = False
    try:
        hub = nh.Hub(['A', 'B', 'C'])
        server = nh.Server(SERVER, hub.hub, hub.server_ip, work)
        tap.ok(True, f'natter-rendezvous listens at {server.url}')
        args = ['--rendezvous', server.url]
        a = nh.Peer('A', CLI, hub.ns('A'), os.path.join(work, 'A'), work, args)
        b = nh.Peer('B', CLI, hub.ns('B'), os.path.join(work, 'B'), work, args)
        c = nh.Peer('C', CLI, hub.ns('C'), os.path.join(work, 'C'), work, args)
        tap.must(all(p.ready() is not None for p in (a, b, c)), 'A, B and C are ready')
        nh.add_contacts(tap, a, [('B', b.peer_id)])
        nh.add_contacts(tap, b, [('A', a.peer_id), ('C', c.peer_id)])
        nh.add_contacts(tap, c, [('B', b.peer_id)])
        tap.must(nh.wait_direct(a, b.peer_id, CONNECT_TIMEOUT)
                 and nh.wait_direct(b, a.peer_id, CONNECT_TIMEOUT)
                 and nh.wait_direct(b, c.peer_id, CONNECT_TIMEOUT)
                 and nh.wait_direct(c, b.peer_id, CONNECT_TIMEOUT),
                 'A-B and B-C connect through the rendezvous server')

        server.kill()
        tap.ok(server.proc.returncode is not None, 'natter-rendezvous is killed (SIGKILL)')
        time.sleep(2)

        since_a, since_c = a.mark(), c.mark()
        started = time.monotonic()
        nh.add_contacts(tap, c, [('A', a.peer_id)])
        nh.add_contacts(tap, a, [('C', c.peer_id)])
        ok = (nh.wait_direct(a, c.peer_id, INTRODUCTION_TIMEOUT, since_a)
              and nh.wait_direct(c, a.peer_id, INTRODUCTION_TIMEOUT, since_c))
        tap.ok(ok, f'without the server, A and C connect directly through B\'s introduction '
                   f'({time.monotonic() - started:.1f} s)')
        if ok:
            reply = a.request('peer', peer=c.peer_id)
            tap.ok(reply is not None and reply.get('peerState') == 'direct' and reply.get('via') is None,
                   'A\'s "peer" command: C direct, via null', reply)
        relayed = a.find(nh.is_state(c.peer_id, 'relayed', any_via=True)) + \
            c.find(nh.is_state(a.peer_id, 'relayed', any_via=True))
        tap.ok(not relayed, 'A and C were never relayed to each other', relayed)
        tap.ok(b.proc.poll() is None and nh.direct_now(b, a.peer_id) and nh.direct_now(b, c.peer_id),
               'B, the introducer, is still connected to both')
        if ok:
            direct_message(tap, a, c, 'A', 'C')
            direct_message(tap, c, a, 'C', 'A')
            relays = b.find(lambda e: e['event'] == 'relay-event')
            tap.ok(not relays, 'B relayed nothing between them (no relay-event)', relays)

        for p in (a, b, c):
            nh.check_clean_exit(tap, p, p.stop())
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
