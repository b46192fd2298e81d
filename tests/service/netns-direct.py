#!/usr/bin/python3
# netns-direct.py: two natter-cli peers behind NAT routers talk directly
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Issue #5, Done-when 1 (the NAT part).  Builds tests/netns/topology.sh's
# topology (peerA and peerB each behind its own NAT router, "preserving"
# masquerade, coturn in the public namespace), runs natter-rendezvous in
# the public namespace and one "natter-cli run" in each peer namespace
# (--interfaces eth0, --no-lan, the topology's STUN and TURN), and checks
# from their JSON events (docs/cli.md):
#
#   - they connect through the server's signaling: peer-state "direct";
#   - a message each way goes queued -> sent -> delivered -> read on its
#     sender, and arrives once, with the exact text, on the other side;
#   - typing true shows on the other side and expires by itself;
#   - presence: away and back online, and offline when the peer quits.
#
# Usage: netns-direct.py PATH/TO/natter-cli PATH/TO/natter-rendezvous.
# TAP; "1..0 # SKIP reason" when it cannot run here (not root, no
# namespaces, nftables or coturn), a failure instead with NATTER_NO_SKIP=1.

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nshelper as nh  # noqa: E402

CLI, SERVER = sys.argv[1], sys.argv[2]
CONNECT_TIMEOUT = 60
DELIVERY_TIMEOUT = 60
EVENT_TIMEOUT = 20
TYPING_EXPIRY_MAX = 15      # the service's timeout is 6 s


def message_both_states(tap, sender, receiver, sender_name, receiver_name, text):
    """A message from @sender: every state on the sender, once on the
    receiver, then read."""
    msg_id = sender.send(receiver.peer_id, text)
    tap.must(msg_id is not None, f'{sender_name} sends a message (reply with its msgId)')
    tap.ok(sender.wait_state(msg_id, 'delivered', DELIVERY_TIMEOUT),
           f'{sender_name} sees its message delivered')
    received = receiver.wait_for(nh.is_received(msg_id), DELIVERY_TIMEOUT)
    tap.ok(received is not None and received.get('text') == text
           and received.get('sender') == sender.peer_id and received.get('outgoing') is False
           and received.get('via') is None,
           f'{receiver_name} receives it, with the exact text, from {sender_name}, not relayed',
           received)
    reply = receiver.request('mark-read', peer=sender.peer_id)
    tap.ok(reply is not None and reply['event'] == 'reply', f'{receiver_name} marks it read', reply)
    tap.ok(sender.wait_state(msg_id, 'read', DELIVERY_TIMEOUT), f'{sender_name} sees it read')
    states = sender.states_of(msg_id)
    distinct = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    tap.ok(distinct == ['queued', 'sent', 'delivered', 'read'],
           f'{sender_name} saw every transition in order: queued -> sent -> delivered -> read '
           f'({" -> ".join(states)})', states)
    vias = {e.get('via') for e in sender.state_events(msg_id)}
    tap.ok(vias == {None}, f'{sender_name}: no state names a relay (direct path)', vias)
    time.sleep(1)
    count = len([i for i in receiver.received_ids() if i == msg_id])
    tap.ok(count == 1, f'{receiver_name} reports the message exactly once ({count})')
    return msg_id


def main():
    nh.require([CLI, SERVER], need_topology=True)
    tap = nh.Tap()
    tap.dumpers.append(nh.dump_live_peers)
    work = nh.workdir('natter-netns-direct-')
    bailed = False
    try:
        topo = nh.Topology('preserving', 'preserving')
        tap.diag(f'topology {topo.tag}: peers {topo["NATTER_PEER_A_ADDR"]} and '
                 f'{topo["NATTER_PEER_B_ADDR"]} behind NATs {topo["NATTER_NAT_A_WAN_ADDR"]} and '
                 f'{topo["NATTER_NAT_B_WAN_ADDR"]}')
        server = nh.Server(SERVER, topo['NATTER_NS_PUBLIC'], topo['NATTER_STUN_HOST'], work)
        tap.ok(True, f'natter-rendezvous listens at {server.url} in the public namespace')
        args = ['--rendezvous', server.url, *topo.peer_args()]
        a = nh.Peer('A', CLI, topo['NATTER_NS_PEER_A'], os.path.join(work, 'alice'), work, args)
        b = nh.Peer('B', CLI, topo['NATTER_NS_PEER_B'], os.path.join(work, 'bob'), work, args)
        tap.must(a.ready() is not None and b.ready() is not None,
                 'both natter-cli run processes are ready')

        nh.add_contacts(tap, a, [('Bob', b.peer_id)])
        nh.add_contacts(tap, b, [('Alice', a.peer_id)])
        started = time.monotonic()
        tap.must(nh.wait_direct(a, b.peer_id, CONNECT_TIMEOUT)
                 and nh.wait_direct(b, a.peer_id, CONNECT_TIMEOUT),
                 'A and B, each behind its NAT, connect (peer-state direct on both sides)')
        tap.diag(f'connected after {time.monotonic() - started:.1f} s')
        online = (a.wait_for(nh.is_presence(b.peer_id, 'online'), EVENT_TIMEOUT) is not None
                  and b.wait_for(nh.is_presence(a.peer_id, 'online'), EVENT_TIMEOUT) is not None)
        tap.ok(online, 'each sees the other online (presence-changed online)')
        connecting = a.find(nh.is_state(b.peer_id, 'connecting'))
        tap.ok(len(connecting) >= 1, 'A went through "connecting" before "direct"')

        message_both_states(tap, a, b, 'A', 'B', 'Hello Bob, through two NATs \u2713')
        message_both_states(tap, b, a, 'B', 'A', 'Hi Alice!\nsecond line')

        # Typing, and its expiry.
        since = b.mark()
        reply = a.request('typing', peer=b.peer_id, typing=True)
        tap.ok(reply is not None and reply['event'] == 'reply', 'A says it is typing', reply)
        on = b.wait_for(lambda e: e['event'] == 'typing-changed' and e.get('peer') == a.peer_id
                        and e.get('typing') is True, EVENT_TIMEOUT, since)
        t_on = time.monotonic()
        tap.ok(on is not None, 'B sees A typing (typing-changed true)')
        off = b.wait_for(lambda e: e['event'] == 'typing-changed' and e.get('peer') == a.peer_id
                         and e.get('typing') is False, TYPING_EXPIRY_MAX, since)
        waited = time.monotonic() - t_on
        tap.ok(on is not None and off is not None,
               f'the indicator expires on B by itself (typing-changed false after {waited:.1f} s)')

        # Presence: away, online again.
        since = b.mark()
        a.request('presence', presence='away')
        tap.ok(b.wait_for(nh.is_presence(a.peer_id, 'away'), EVENT_TIMEOUT, since) is not None,
               'B sees A away')
        since = b.mark()
        a.request('presence', presence='online')
        tap.ok(b.wait_for(nh.is_presence(a.peer_id, 'online'), EVENT_TIMEOUT, since) is not None,
               'B sees A online again')

        # A leaves: B sees it offline.
        since = b.mark()
        nh.check_clean_exit(tap, a, a.stop())
        tap.ok(b.wait_for(nh.is_presence(a.peer_id, 'offline'), EVENT_TIMEOUT, since) is not None,
               'when A quits, B sees it offline (presence-changed offline)')
        nh.check_clean_exit(tap, b, b.stop())
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
