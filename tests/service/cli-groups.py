#!/usr/bin/python3
# cli-groups.py: three natter-cli peers in a group, through natter-rendezvous
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Starts natter-rendezvous on 127.0.0.1 and three "natter-cli run"
# processes, A, B and C, with profiles of their own (NATTER_INTERFACES=lo,
# --no-lan).  A and B, and A and C, are contacts; B and C are not, and meet
# as members of the group.  Checked from the JSON lines (docs/cli.md,
# "Groups"): group-create, the group-changed events, group-send and the
# group-message-received events, equal group-history on all three,
# receipts, typing, group-remove (C sees it was removed and gets nothing
# sent after), errors for bad group commands, clean exits, and B started
# again on its profile showing the same group and history.
#
# Usage: cli-groups.py PATH-TO-natter-cli PATH-TO-natter-rendezvous.  TAP.

import importlib.util
import os
import shutil
import sys
import tempfile

spec = importlib.util.spec_from_file_location(
    "cli_basic", os.path.join(os.path.dirname(os.path.abspath(__file__)), "cli-basic.py"))
basic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(basic)

ok, must, Peer, Server, Bail = basic.ok, basic.must, basic.Peer, basic.Server, basic.Bail
TIMEOUT = 60


def is_reply(event):
    return event is not None and event["event"] == "reply" and event.get("ok") is True


def history_ids(peer, group):
    reply = peer.request("group-history", group=group, limit=1000)
    if not is_reply(reply):
        return None
    return [m["msgId"] for m in reply["messages"]]


def main():
    workdir = tempfile.mkdtemp(prefix="natter-cli-groups-")
    env = dict(os.environ)
    env["NATTER_INTERFACES"] = "lo"
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[var] = os.path.join(workdir, var.lower())
    env.pop("G_MESSAGES_DEBUG", None)
    server = None
    peers = []
    try:
        server = Server(workdir)
        net = ["--rendezvous", server.url, "--no-lan", "--interfaces", "lo"]
        a, b, c = (Peer(name, workdir, os.path.join(workdir, name.lower()), env, net)
                   for name in ("A", "B", "C"))
        peers = [a, b, c]
        ids = {}
        for p in peers:
            ready = p.wait_for(lambda e: e["event"] == "ready", basic.EVENT_TIMEOUT)
            must(ready is not None, f"{p.name} is ready", ready)
            ids[p.name] = ready["peerId"]

        for x, y in (("A", "B"), ("A", "C")):
            px, py = {"A": a, "B": b, "C": c}[x], {"A": a, "B": b, "C": c}[y]
            must(is_reply(py.request("add-contact", peer=ids[x])), f"{y} adds {x}")
            must(is_reply(px.request("add-contact", peer=ids[y])), f"{x} adds {y}")

        reply = a.request("group-create", name="Trio", members=[ids["B"], ids["C"]], fanout=2)
        must(is_reply(reply) and isinstance(reply.get("group"), str), "A creates a group", reply)
        group = reply["group"]

        for p in (b, c):
            joined = p.wait_for(lambda e: e["event"] == "group-changed"
                                and e["info"]["group"] == group, TIMEOUT)
            must(joined is not None and joined["info"]["admin"] == ids["A"]
                 and sorted(joined["info"]["members"]) == sorted(ids.values())
                 and joined["info"]["fanout"] == 2,
                 f"{p.name} joins the group (group-changed with admin, members, fan-out)", joined)

        reply = b.request("group-info", group=group)
        ok(is_reply(reply) and reply["info"]["name"] == "Trio", "group-info on B", reply)

        # B and C are not contacts, but members: they connect to each other.
        state = b.wait_for(lambda e: e["event"] == "peer-state-changed" and e["peer"] == ids["C"]
                           and e["state"] == "direct", TIMEOUT)
        ok(state is not None, "B and C connect as members of one group", state)

        first = a.request("group-send", group=group, text="hello group")
        must(is_reply(first) and first.get("msgId"), "A sends to the group", first)
        second = b.request("group-send", group=group, text="hi from B")
        must(is_reply(second), "B sends to the group", second)
        for p, wanted in ((c, {first["msgId"], second["msgId"]}), (b, {first["msgId"]}),
                          (a, {second["msgId"]})):
            for msg_id in wanted:
                got = p.wait_for(lambda e: e["event"] == "group-message-received"
                                 and e.get("msgId") == msg_id, TIMEOUT)
                ok(got is not None and got["group"] == group and got["outgoing"] is False,
                   f"{p.name} receives {msg_id}", got)

        histories = [history_ids(p, group) for p in peers]
        ok(histories[0] is not None and len(histories[0]) == 2
           and histories[0] == histories[1] == histories[2],
           "the three group histories are equal", histories)

        delivered = a.wait_for(lambda e: e["event"] == "group-receipts-changed"
                               and e["msgId"] == first["msgId"] and e["delivered"] == 2, TIMEOUT)
        ok(delivered is not None and delivered["total"] == 2,
           "A sees its message delivered to 2 of 2", delivered)
        reply = a.request("group-receipts", group=group, msgId=first["msgId"])
        ok(is_reply(reply) and sorted(reply["deliveredTo"]) == sorted([ids["B"], ids["C"]]),
           "group-receipts lists who has it", reply)

        must(is_reply(c.request("group-read", group=group)), "C marks the group read")
        read = a.wait_for(lambda e: e["event"] == "group-receipts-changed"
                          and e["msgId"] == first["msgId"] and e["read"] >= 1, TIMEOUT)
        ok(read is not None, "A sees its message read by 1", read)

        must(is_reply(b.request("group-typing", group=group, typing=True)), "B types")
        typing = a.wait_for(lambda e: e["event"] == "group-typing-changed"
                            and e["peer"] == ids["B"] and e["typing"] is True, TIMEOUT)
        ok(typing is not None and typing["group"] == group, "A sees B typing", typing)

        # Errors.
        err = b.request("group-remove", group=group, peer=ids["C"])
        ok(err is not None and err["event"] == "error" and err["code"] == "not-allowed",
           "a member that is not admin cannot remove (not-allowed)", err)
        err = a.request("group-send", group="grp_unknown_group", text="x")
        ok(err is not None and err["event"] == "error" and err["code"] == "not-found",
           "an unknown group is not-found", err)
        err = a.request("group-send", text="x")
        ok(err is not None and err["event"] == "error" and err["code"] == "bad-request",
           "a missing group member is a bad-request", err)
        err = a.request("group-frobnicate", group=group)
        ok(err is not None and err["event"] == "error" and err["code"] == "unknown-command",
           "an unknown group command is unknown-command", err)

        # Removal.
        mark = c.mark()
        must(is_reply(a.request("group-remove", group=group, peer=ids["C"])), "A removes C")
        removed = c.wait_for(lambda e: e["event"] == "group-changed"
                             and e["info"]["removed"] is True, TIMEOUT, start=mark)
        ok(removed is not None, "C learns it was removed", removed)
        rotated = b.wait_for(lambda e: e["event"] == "group-changed"
                             and ids["C"] not in e["info"]["members"], TIMEOUT)
        ok(rotated is not None, "B sees C removed", rotated)
        after = a.request("group-send", group=group, text="after C left")
        must(is_reply(after), "A sends after the removal", after)
        got = b.wait_for(lambda e: e["event"] == "group-message-received"
                         and e.get("msgId") == after["msgId"], TIMEOUT)
        ok(got is not None and got["text"] == "after C left", "B receives it", got)
        leaked = c.wait_for(lambda e: e["event"] == "group-message-received"
                            and e.get("msgId") == after["msgId"], 2)
        ok(leaked is None, "C does not", leaked)
        err = c.request("group-send", group=group, text="still here?")
        ok(err is not None and err["event"] == "error" and err["code"] == "not-allowed",
           "C can no longer send", err)

        final = {p.name: history_ids(p, group) for p in (a, b)}
        for p in peers:
            basic.clean_exit(p, p.stop("quit"))

        # A restart keeps the group: B runs again on its profile, alone.
        b2 = Peer("B", workdir, os.path.join(workdir, "b"), env, net)
        peers = [b2]
        ready = b2.wait_for(lambda e: e["event"] == "ready", basic.EVENT_TIMEOUT)
        must(ready is not None and ready["peerId"] == ids["B"], "B starts again", ready)
        reply = b2.request("group-info", group=group)
        ok(is_reply(reply) and reply["info"]["name"] == "Trio" and reply["info"]["admin"] == ids["A"]
           and sorted(reply["info"]["members"]) == sorted([ids["A"], ids["B"]]),
           "after the restart B still has the group, its admin and members", reply)
        again = history_ids(b2, group)
        ok(again is not None and again == final["B"] and final["B"] == final["A"],
           "after the restart B shows the same history", again)
        sent = b2.request("group-send", group=group, text="back again")
        ok(is_reply(sent), "B can send after the restart", sent)
        basic.clean_exit(b2, b2.stop("quit"))
    except Bail:
        for p in peers:
            p.kill()
    finally:
        if server is not None:
            server.stop()
    print(f"1..{len(basic.results)}", flush=True)
    if all(basic.results) and basic.results:
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    print(f"# logs kept in {workdir}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
