#!/usr/bin/python3
# nearby.py: strangers on one LAN become contacts with two clicks
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Usage: nearby.py PATH-TO-natter-cli.  TAP.
#
# A network namespace with only lo (multicast on, a route for 224.0.0.0/4
# there), so nothing leaves the machine.  Three "natter-cli run" processes,
# no rendezvous server, LAN discovery only:
#
#   - A and B are discoverable; each lists the other as someone nearby,
#     under the handle the other shows as its own, and neither knows the
#     other's peer ID;
#   - C is not discoverable: it sees A and B, nobody sees it;
#   - introducing ourselves to a handle nobody has is a clear error;
#   - A introduces itself to B: B gets a pending contact request with A's
#     peer ID; A has no contact yet;
#   - B accepts: B introduces itself back, and A gets B as an accepted
#     contact without being asked again (A asked first);
#   - they connect and a message goes each way, delivered;
#   - C never learns A's or B's peer ID;
#   - once contacts, A and B no longer list each other as strangers;
#   - when B quits, A sees its contact go offline and C sees it leave.
#
# Root (network namespaces) or it skips ("1..0 # SKIP"; a failure with
# NATTER_NO_SKIP=1).

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nshelper  # noqa: E402
from nshelper import Bail, Peer, Tap, on_exit, run  # noqa: E402

CLI = sys.argv[1]
LOST_TIMEOUT = 40      # 3 announcement intervals of 5 s (±20 %) and margin


def make_namespace():
    ns = f'ntnear{os.getpid()}'
    run('ip', 'netns', 'add', ns)
    on_exit(lambda: subprocess.run(['ip', 'netns', 'del', ns], capture_output=True))
    for cmd in (['ip', 'link', 'set', 'lo', 'up'],
                ['ip', 'link', 'set', 'lo', 'multicast', 'on'],
                ['ip', 'route', 'add', '224.0.0.0/4', 'dev', 'lo']):
        run('ip', 'netns', 'exec', ns, *cmd)
    return ns


def nearby_of(peer):
    reply = peer.request('nearby')
    if reply is None or reply['event'] != 'reply':
        return None, []
    return reply.get('handle'), [n['handle'] for n in reply.get('nearby', [])]


def wait_nearby(peer, handle, present, timeout, start=0):
    return peer.wait_for(lambda e: e['event'] == 'nearby-changed' and e.get('handle') == handle
                         and e.get('present') is present, timeout, start)


def main():
    tap = Tap()
    nshelper.require([CLI])
    ns = make_namespace()
    work = nshelper.workdir('natter-nearby-')
    lan = ['--lan', '--no-relay']
    a = Peer('A', CLI, ns, os.path.join(work, 'a'), work, lan + ['--discoverable'], interfaces='lo')
    b = Peer('B', CLI, ns, os.path.join(work, 'b'), work, lan + ['--discoverable'], interfaces='lo')
    c = Peer('C', CLI, ns, os.path.join(work, 'c'), work, lan, interfaces='lo')
    tap.dumpers = [a.dump, b.dump, c.dump]
    bailed = False
    try:
        for p in (a, b, c):
            tap.must(p.ready(), f'{p.name} starts with LAN discovery on lo')

        a_handle, _ = nearby_of(a)
        b_handle, _ = nearby_of(b)
        c_handle, _ = nearby_of(c)
        tap.must(a_handle and b_handle and a_handle != b_handle,
                 'A and B, discoverable, have handles of their own', f'{a_handle} {b_handle}')
        tap.ok(c_handle is None, 'C, not discoverable, shows no handle', c_handle)

        tap.must(wait_nearby(a, b_handle, True, 20) is not None, 'A lists B as someone nearby')
        tap.must(wait_nearby(b, a_handle, True, 20) is not None, 'B lists A as someone nearby')
        tap.ok(wait_nearby(c, a_handle, True, 20) is not None and
               wait_nearby(c, b_handle, True, 20) is not None, 'C lists A and B')
        # Several announcement rounds: C must still be unseen.
        _, a_list = nearby_of(a)
        _, b_list = nearby_of(b)
        tap.ok(a_list == [b_handle] and b_list == [a_handle],
               'nobody lists C, who is not discoverable', f'A: {a_list} B: {b_list}')

        reply = a.request('reveal', handle='00' * 16)
        tap.ok(reply is not None and reply['event'] == 'error' and reply.get('code') == 'unknown-nearby',
               'introducing ourselves to a handle nobody has is refused', reply)

        for p in (a, b):
            contacts = p.request('contacts')
            tap.ok(contacts is not None and contacts.get('contacts') == [],
                   f'{p.name} has no contact yet', contacts)

        mark_a = a.mark()
        reply = a.request('reveal', handle=b_handle)
        tap.must(reply is not None and reply['event'] == 'reply', 'A introduces itself to B', reply)
        request = b.wait_for(lambda e: e['event'] == 'contact-request', 20)
        tap.must(request is not None and request.get('peer') == a.peer_id and
                 request.get('state') == 'pending',
                 "B gets a pending contact request with A's peer ID", request)
        tap.ok(a.wait_for(lambda e: e['event'] == 'contact-added', 2, mark_a) is None,
               'A has no contact before B answers')
        _, b_list = nearby_of(b)
        tap.ok(b_list == [], "B lists A under the request, no longer as a stranger", b_list)

        reply = b.request('set-contact-state', peer=a.peer_id, state='accepted')
        tap.must(reply is not None and reply['event'] == 'reply', 'B accepts the request', reply)
        added = a.wait_for(lambda e: e['event'] == 'contact-added' and e.get('peer') == b.peer_id,
                           20, mark_a)
        tap.must(added is not None and added.get('state') == 'accepted',
                 'A gets B as an accepted contact without being asked again', added)
        tap.ok(a.wait_for(lambda e: e['event'] == 'contact-request', 0, mark_a) is None,
               'A saw no request: the answer to its own introduction')

        _, a_list = nearby_of(a)
        _, b_list = nearby_of(b)
        tap.ok(a_list == [] and b_list == [],
               'A and B no longer list each other as strangers: they are contacts', f'{a_list} {b_list}')

        tap.must(nshelper.wait_direct(a, b.peer_id, 30) and nshelper.wait_direct(b, a.peer_id, 30),
                 'A and B connect directly over the LAN')
        m1 = a.send(b.peer_id, 'hello from across the room')
        m2 = b.send(a.peer_id, 'hi, nice to meet you')
        tap.ok(m1 and a.wait_state(m1, 'delivered', 30) and
               b.wait_for(nshelper.is_received(m1), 30) is not None, 'a message from A is delivered to B')
        tap.ok(m2 and b.wait_state(m2, 'delivered', 30) and
               a.wait_for(nshelper.is_received(m2), 30) is not None, 'a message from B is delivered to A')

        c_text = '\n'.join(str(e) for e in c.events) + c.stderr_text()
        tap.ok(a.peer_id not in c_text and b.peer_id not in c_text,
               "C never learned A's or B's peer ID")

        mark_a, mark_c = a.mark(), c.mark()
        code, stopped, bad = b.stop()
        tap.ok(code == 0 and stopped and not bad, 'B quits cleanly', (code, stopped, bad))
        tap.ok(a.wait_for(nshelper.is_presence(b.peer_id, 'offline'), LOST_TIMEOUT, mark_a) is not None,
               'A sees its new contact B go offline')
        tap.ok(wait_nearby(c, b_handle, False, LOST_TIMEOUT, mark_c) is not None,
               'C sees B leave')
        for p in (a, c):
            code, stopped, bad = p.stop()
            tap.ok(code == 0 and stopped and not bad, f'{p.name} quits cleanly', (code, stopped, bad))
    except Bail:
        bailed = True
    return tap.finish(bailed)


if __name__ == '__main__':
    sys.exit(main())
