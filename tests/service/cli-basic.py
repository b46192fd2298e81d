#!/usr/bin/python3
# cli-basic.py: two natter-cli peers talk through a real natter-rendezvous
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Starts natter-rendezvous on 127.0.0.1 with a free port and two
# "natter-cli run" processes, A and B, each with a profile of its own in a
# temporary folder, NATTER_INTERFACES=lo and --no-lan (multicast does not
# work on the host's lo), signaling through the server.  Everything is
# checked from the JSON lines they print (docs/cli.md):
#
#   - a message from A goes queued -> sent -> delivered on A and arrives
#     on B; B marks it read and A sees "read";
#   - typing on A shows on B, and expires there by itself;
#   - presence "away" on A shows on B;
#   - bad input lines give error events, never a crash;
#   - a second process on an open profile exits with status 5;
#   - the one-shot commands (contacts, history, send --wait delivered) and
#     "serve" with SIGTERM;
#   - every process exits cleanly.
#
# Usage: cli-basic.py PATH-TO-natter-cli PATH-TO-natter-rendezvous.  TAP.
# Only the Python standard library; nothing leaves 127.0.0.1.

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

CLI = sys.argv[1]
SERVER = sys.argv[2]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_TIMEOUT, EXIT_FAILED, EXIT_LOCKED = 0, 1, 2, 3, 4, 5

CONNECT_TIMEOUT = 60     # ICE + Noise through the rendezvous server on lo
DELIVERY_TIMEOUT = 60
EVENT_TIMEOUT = 20
STATE_RANK = {"queued": 0, "sent": 1, "failed": 2, "delivered": 3, "read": 4}
# Never acceptable on stderr.
BAD_LOG = ("CRITICAL", "runtime error:", "AddressSanitizer", "LeakSanitizer")

results = []
processes = []


class Bail(Exception):
    pass


def ok(cond, name, diag=None):
    results.append(bool(cond))
    print(f"{'ok' if cond else 'not ok'} {len(results)} - {name}", flush=True)
    if not cond:
        if diag:
            for line in str(diag).splitlines():
                print(f"# {line}", flush=True)
        for p in processes:
            p.dump()
    return bool(cond)


def must(cond, name, diag=None):
    if not ok(cond, name, diag):
        raise Bail(name)


class Server:
    def __init__(self, workdir):
        self.log_path = os.path.join(workdir, "rendezvous.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([SERVER, "--listen", "127.0.0.1", "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            raise Bail(f"natter-rendezvous did not start: {line!r}")
        self.url = line.split("listening on ", 1)[1].strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code


class Peer:
    """One natter-cli run (or serve) process and every JSON line it printed."""

    def __init__(self, name, workdir, profile, env, args, command="run"):
        self.name = name
        self.stderr_path = os.path.join(workdir, f"{name}-{command}-{time.monotonic_ns()}.log")
        self.stderr = open(self.stderr_path, "wb")
        self.events = []
        self.garbage = []
        self.cond = threading.Condition()
        self.next_id = 1
        self.eof = False
        self.proc = subprocess.Popen([CLI, "--profile", profile, *args, command],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        processes.append(self)

    def _read(self):
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
                if not isinstance(event, dict) or "event" not in event:
                    raise ValueError("not an event")
            except ValueError:
                with self.cond:
                    self.garbage.append(raw)
                    self.cond.notify_all()
                continue
            with self.cond:
                self.events.append(event)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def write(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def command(self, cmd, **members):
        tag = f"{self.name}-{self.next_id}"
        self.next_id += 1
        self.write((json.dumps({"cmd": cmd, "id": tag, **members}) + "\n").encode())
        return tag

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
                self.cond.wait(remaining)

    def request(self, cmd, timeout=EVENT_TIMEOUT, **members):
        tag = self.command(cmd, **members)
        return self.wait_for(lambda e: e.get("id") == tag and e["event"] in ("reply", "error"),
                             timeout)

    def mark(self):
        with self.cond:
            return len(self.events)

    def stop(self, how="quit", timeout=30):
        if how == "quit":
            self.command("quit")
        elif how == "eof":
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        elif how == "sigterm":
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.reader.join(timeout=5)
        self.stderr.close()
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.stderr.closed:
            self.stderr.close()

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def dump(self, lines=25):
        with self.cond:
            tail = self.events[-lines:]
            garbage = self.garbage[-5:]
        print(f"# --- {self.name}: last {len(tail)} events (of {len(self.events)})", flush=True)
        for e in tail:
            print(f"#   {json.dumps(e, ensure_ascii=False)[:400]}", flush=True)
        for g in garbage:
            print(f"#   not an event: {g[:200]!r}", flush=True)
        if not self.stderr.closed:
            self.stderr.flush()
        err = self.stderr_text().splitlines()[-lines:]
        print(f"# --- {self.name}: last {len(err)} lines of stderr", flush=True)
        for line in err:
            print(f"#   {line[:400]}", flush=True)


def one_shot(profile, env, *args, timeout=120):
    return subprocess.run([CLI, "--profile", profile, *args], capture_output=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def describe(proc):
    return (f"exit status {proc.returncode}\n"
            f"stdout: {proc.stdout.decode(errors='replace')[-1500:]}\n"
            f"stderr: {proc.stderr.decode(errors='replace')[-1500:]}")


def states_of(peer, msg_id):
    with peer.cond:
        return [e["state"] for e in peer.events
                if e["event"] == "message-state-changed" and e.get("msgId") == msg_id]


def clean_exit(peer, code):
    log = peer.stderr_text()
    bad = [line for line in log.splitlines() if any(m in line for m in BAD_LOG)]
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    stopped = peer.wait_for(lambda e: e["event"] == "stopped", 0)
    ok(code == 0 and not bad and stopped is not None,
       f"{peer.name} printed \"stopped\" and exited with status 0, no critical log",
       f"exit status {code}, stopped event {stopped}\n" + "\n".join(bad[-10:]))
    if warnings:
        print(f"# {peer.name} logged {len(warnings)} warning(s):", flush=True)
        for line in warnings[-10:]:
            print(f"#   {line[:300]}", flush=True)


def conversation(a, b, a_id, b_id):
    # Contacts, both ways.
    reply = a.request("add-contact", peer=b_id, name="Bob")
    must(reply is not None and reply["event"] == "reply" and reply.get("ok") is True
         and reply.get("contact", {}).get("peer") == b_id
         and reply["contact"].get("name") == "Bob"
         and reply["contact"].get("state") == "accepted",
         "A adds B as a contact (reply with the contact, accepted)", reply)
    reply = b.request("add-contact", peer=a_id, name="Alice")
    must(reply is not None and reply["event"] == "reply",
         "B adds A as a contact", reply)

    direct = lambda peer_id: (lambda e: e["event"] == "peer-state-changed"
                              and e.get("peer") == peer_id and e.get("state") == "direct")
    ok(a.wait_for(direct(b_id), CONNECT_TIMEOUT) is not None
       and b.wait_for(direct(a_id), CONNECT_TIMEOUT) is not None,
       "A and B connect directly (peer-state-changed \"direct\" on both sides)")

    # A message, and its states on A.
    text = "Hello, Bob! \u2713 \"quoted\"\nsecond line"
    reply = a.request("send", peer=b_id, text=text)
    must(reply is not None and reply["event"] == "reply" and isinstance(reply.get("msgId"), str),
         "A sends a message: the reply carries its msgId", reply)
    msg_id = reply["msgId"]

    delivered = a.wait_for(lambda e: e["event"] == "message-state-changed"
                           and e.get("msgId") == msg_id and e.get("state") == "delivered",
                           DELIVERY_TIMEOUT)
    states = states_of(a, msg_id)
    ranks = [STATE_RANK.get(s, -1) for s in states]
    ok(delivered is not None and "sent" in states and ranks == sorted(ranks)
       and "failed" not in states and (states[0] in ("queued", "sent")),
       f"A sees its message go queued -> sent -> delivered ({' -> '.join(states)})",
       f"states on A: {states}")
    ok(delivered is not None and delivered.get("peer") == b_id and delivered.get("via") is None,
       "the delivered event names B, and no relay", delivered)

    received = b.wait_for(lambda e: e["event"] == "message-received" and e.get("msgId") == msg_id,
                          DELIVERY_TIMEOUT)
    must(received is not None and received.get("text") == text
         and received.get("sender") == a_id and received.get("peer") == a_id
         and received.get("outgoing") is False and isinstance(received.get("timestamp"), int),
         "B receives it: message-received with A as sender and the exact text", received)
    dupes = [e for e in b.events if e["event"] == "message-received" and e.get("msgId") == msg_id]
    ok(len(dupes) == 1, "B reports the message once", f"{len(dupes)} message-received events")

    # Read receipt.
    reply = b.request("mark-read", peer=a_id)
    ok(reply is not None and reply["event"] == "reply", "B marks the conversation read", reply)
    read = a.wait_for(lambda e: e["event"] == "message-state-changed"
                      and e.get("msgId") == msg_id and e.get("state") == "read",
                      DELIVERY_TIMEOUT)
    ok(read is not None, "A sees its message read")

    # Typing, and its expiry on B.
    since = b.mark()
    reply = a.request("typing", peer=b_id, typing=True)
    ok(reply is not None and reply["event"] == "reply", "A says it is typing", reply)
    typing_on = b.wait_for(lambda e: e["event"] == "typing-changed" and e.get("peer") == a_id
                           and e.get("typing") is True, EVENT_TIMEOUT, since)
    t_on = time.monotonic()
    ok(typing_on is not None, "B sees A typing (typing-changed true)")
    if typing_on is not None:
        typing_off = b.wait_for(lambda e: e["event"] == "typing-changed" and e.get("peer") == a_id
                                and e.get("typing") is False, 12, since)
        waited = time.monotonic() - t_on
        ok(typing_off is not None,
           f"the indicator expires on B by itself (typing-changed false after ~{waited:.1f} s)")

    # Presence.
    since = b.mark()
    reply = a.request("presence", presence="away")
    ok(reply is not None and reply["event"] == "reply", "A sets its presence to away", reply)
    away = b.wait_for(lambda e: e["event"] == "presence-changed" and e.get("peer") == a_id
                      and e.get("presence") == "away", EVENT_TIMEOUT, since)
    ok(away is not None, "B sees A away (presence-changed)")

    reply = b.request("peer", peer=a_id)
    ok(reply is not None and reply["event"] == "reply" and reply.get("peerState") == "direct"
       and reply.get("presence") == "away",
       "B's \"peer\" command reports A direct and away", reply)

    # History and stats through run.
    reply = b.request("history", peer=a_id, limit=10)
    msgs = reply.get("messages", []) if reply else []
    ok(reply is not None and reply["event"] == "reply" and len(msgs) == 1
       and msgs[0].get("msgId") == msg_id and msgs[0].get("text") == text
       and msgs[0].get("outgoing") is False,
       "B's history holds the message", reply)
    reply = a.request("stats")
    stats = reply.get("stats", {}) if reply else {}
    ok(reply is not None and stats.get("messagesSent", 0) >= 1 and stats.get("connections", 0) >= 1,
       "A's stats count a message sent and a connection", reply)
    reply = a.request("contacts")
    contacts = reply.get("contacts", []) if reply else []
    ok(len(contacts) == 1 and contacts[0].get("peer") == b_id and contacts[0].get("name") == "Bob"
       and contacts[0].get("peerState") == "direct",
       "A's contacts: B, named Bob, direct", reply)
    return msg_id, text


def bad_input(a, b_id):
    since = a.mark()
    a.write(b"this is not json\n")
    e = a.wait_for(lambda e: e["event"] == "error", EVENT_TIMEOUT, since)
    ok(e is not None and e.get("code") == "bad-json" and e.get("id") is None and e.get("message"),
       "a line that is not JSON gives an error event (bad-json, id null)", e)

    since = a.mark()
    a.write(b'{"cmd":"fly","id":7}\n')
    e = a.wait_for(lambda e: e["event"] == "error", EVENT_TIMEOUT, since)
    ok(e is not None and e.get("code") == "unknown-command" and e.get("id") == 7,
       "an unknown command gives unknown-command, with the client's id", e)

    since = a.mark()
    a.write(b'{"cmd":"send","id":8,"peer":"' + b_id.encode() + b'"}\n')
    e = a.wait_for(lambda e: e["event"] == "error", EVENT_TIMEOUT, since)
    ok(e is not None and e.get("code") == "bad-request" and e.get("id") == 8,
       "a command without a required member gives bad-request", e)

    since = a.mark()
    a.write(b'{"cmd":"send","id":9,"peer":"nnotapeer","text":"x"}\n')
    e = a.wait_for(lambda e: e["event"] == "error", EVENT_TIMEOUT, since)
    ok(e is not None and e.get("code") == "invalid-peer-id" and e.get("id") == 9,
       "an invalid peer ID gives invalid-peer-id", e)

    since = a.mark()
    a.write(b'{"cmd":"stats","cmd":"quit"}\n')
    e = a.wait_for(lambda e: e["event"] == "error", EVENT_TIMEOUT, since)
    ok(e is not None and e.get("code") == "bad-json",
       "a command with a duplicate member is refused (it does not quit)", e)

    since = a.mark()
    a.write(b"[" * 100000 + b"\n")
    e = a.wait_for(lambda e: e["event"] == "error", EVENT_TIMEOUT, since)
    ok(e is not None and e.get("code") == "bad-json", "deep nesting gives bad-json, no crash", e)

    since = a.mark()
    a.write(b'{"cmd":"send","text":"' + b"x" * (300 * 1024) + b'"}\n')
    e = a.wait_for(lambda e: e["event"] == "error", EVENT_TIMEOUT, since)
    ok(e is not None and e.get("code") == "line-too-long",
       "a 300 KiB line gives line-too-long", e)

    since = a.mark()
    a.write(b"\xff\xfe{}\n")
    e = a.wait_for(lambda e: e["event"] == "error", EVENT_TIMEOUT, since)
    ok(e is not None and e.get("code") == "bad-json", "invalid UTF-8 gives bad-json", e)

    reply = a.request("stats")
    ok(reply is not None and reply["event"] == "reply" and a.proc.poll() is None,
       "after all that, A still answers", reply)


def main():
    workdir = tempfile.mkdtemp(prefix="natter-cli-basic-")
    env = dict(os.environ)
    env["NATTER_INTERFACES"] = "lo"
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[var] = os.path.join(workdir, var.lower())
    env.pop("G_MESSAGES_DEBUG", None)
    profile_a = os.path.join(workdir, "alice")
    profile_b = os.path.join(workdir, "bob")
    server = None
    status = 0
    try:
        server = Server(workdir)
        ok(True, f"natter-rendezvous listens at {server.url}")
        net = ["--rendezvous", server.url, "--no-lan", "--interfaces", "lo"]

        a = Peer("A", workdir, profile_a, env, net)
        b = Peer("B", workdir, profile_b, env, net)
        ready_a = a.wait_for(lambda e: e["event"] == "ready", EVENT_TIMEOUT)
        ready_b = b.wait_for(lambda e: e["event"] == "ready", EVENT_TIMEOUT)
        must(ready_a is not None and ready_b is not None
             and isinstance(ready_a.get("peerId"), str) and len(ready_a["peerId"]) == 59
             and isinstance(ready_b.get("peerId"), str) and ready_a["peerId"] != ready_b["peerId"],
             "both natter-cli run processes print \"ready\" with their peer IDs",
             f"A: {ready_a}\nB: {ready_b}")
        a_id, b_id = ready_a["peerId"], ready_b["peerId"]

        locked = one_shot(profile_a, env, "id")
        ok(locked.returncode == EXIT_LOCKED and b"natter-cli:" in locked.stderr,
           "a second process on A's profile exits with status 5 (locked)", describe(locked))

        msg_id, text = conversation(a, b, a_id, b_id)
        bad_input(a, b_id)

        clean_exit(a, a.stop("quit"))
        clean_exit(b, b.stop("eof"))

        # One-shot commands on the closed profiles.
        ident = one_shot(profile_a, env, "id", "--json")
        try:
            ident_json = json.loads(ident.stdout)
        except ValueError:
            ident_json = {}
        ok(ident.returncode == 0 and ident_json.get("peerId") == a_id,
           "natter-cli id --json prints A's peer ID", describe(ident))

        contacts = one_shot(profile_a, env, "contacts")
        ok(contacts.returncode == 0 and contacts.stdout.decode().split("\t")[0] == b_id
           and "Bob" in contacts.stdout.decode(),
           "natter-cli contacts lists B (peer ID, state, name)", describe(contacts))

        history = one_shot(profile_a, env, "history", b_id, "--json")
        try:
            items = [json.loads(line) for line in history.stdout.decode().splitlines()]
        except ValueError:
            items = []
        ok(history.returncode == 0 and len(items) == 1 and items[0].get("msgId") == msg_id
           and items[0].get("text") == text and items[0].get("outgoing") is True
           and items[0].get("state") == "read" and items[0].get("sender") == a_id,
           "natter-cli history --json: A's message, outgoing, read", describe(history))

        plain = one_shot(profile_a, env, "history", b_id, "--limit", "5")
        fields = plain.stdout.decode().rstrip("\n").split("\t")
        ok(plain.returncode == 0 and len(fields) == 4 and fields[1] == "out" and fields[2] == "read"
           and fields[3] == text.replace("\n", "\\n"),
           "natter-cli history: time, direction, state, text on one line", describe(plain))

        # Usage errors and refusals.
        bad = one_shot(profile_a, env, "send", "nnotapeer", "x")
        ok(bad.returncode == EXIT_USAGE, "send to an invalid peer ID: status 2", describe(bad))
        bad = one_shot(profile_a, env, "send", b_id, "x", "--wait", "soon")
        ok(bad.returncode == EXIT_USAGE, "send --wait soon: status 2", describe(bad))
        bad = one_shot(profile_a, env, "frobnicate")
        ok(bad.returncode == EXIT_USAGE, "an unknown command: status 2", describe(bad))
        stranger = json.loads(one_shot(os.path.join(workdir, "carol"), env, "id", "--json").stdout)["peerId"]
        bad = one_shot(profile_a, env, "send", stranger, "x", "--no-lan")
        ok(bad.returncode == EXIT_ERROR and b"natter-cli:" in bad.stderr,
           "send to someone who is not a contact: status 1 with a message", describe(bad))

        # A one-shot send that waits for delivery, B running again.
        b2 = Peer("B2", workdir, profile_b, env, net)
        must(b2.wait_for(lambda e: e["event"] == "ready", EVENT_TIMEOUT) is not None,
             "B runs again")
        sent = one_shot(profile_a, env, *net, "send", b_id, "one-shot", "--wait", "delivered",
                        "--timeout", str(DELIVERY_TIMEOUT), "--json",
                        timeout=DELIVERY_TIMEOUT + 60)
        try:
            sent_json = json.loads(sent.stdout)
        except ValueError:
            sent_json = {}
        ok(sent.returncode == 0 and sent_json.get("state") in ("delivered", "read")
           and isinstance(sent_json.get("msgId"), str),
           "natter-cli send --wait delivered returns 0 once B has it", describe(sent))
        got = b2.wait_for(lambda e: e["event"] == "message-received" and e.get("text") == "one-shot",
                          EVENT_TIMEOUT)
        ok(got is not None and got.get("msgId") == sent_json.get("msgId"),
           "B received the one-shot message", got)
        clean_exit(b2, b2.stop("eof"))

        # Nobody to deliver to: the wait times out with status 3, the
        # message stays queued.
        late = one_shot(profile_a, env, *net, "send", b_id, "later", "--wait", "delivered",
                        "--timeout", "3", timeout=60)
        ok(late.returncode == EXIT_TIMEOUT and late.stdout.strip() != b"",
           "send --wait delivered to an offline peer times out with status 3 and prints the ID",
           describe(late))

        # serve until SIGTERM.
        s = Peer("serve", workdir, profile_b, env, net, command="serve")
        ready = s.wait_for(lambda e: e["event"] == "ready", EVENT_TIMEOUT)
        ok(ready is not None and ready.get("peerId") == b_id, "serve prints ready", ready)
        clean_exit(s, s.stop("sigterm"))
    except Bail as e:
        print(f"Bail out! {e}", flush=True)
        status = 1
    finally:
        for p in processes:
            p.kill()
        if server is not None:
            code = server.stop()
            with open(server.log_path, "rb") as f:
                log = f.read()
            ok(code == 0 and b"CRITICAL" not in log, "natter-rendezvous exits cleanly on SIGTERM",
               f"exit status {code}\n" + log[-2000:].decode(errors="replace"))
        if status == 0 and all(results):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"# logs kept in {workdir}", flush=True)
    print(f"1..{len(results)}", flush=True)
    return 0 if status == 0 and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
