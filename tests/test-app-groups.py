#!/usr/bin/env python3
"""A group conversation across two natter windows and a natter-cli member.

Alice and Bob each run `natter --profile` under the same X server with
NATTER_TEST_HOOKS=1; Carol is a `natter-cli run` process.  All three are
contacts of each other, signal through a real natter-rendezvous on
127.0.0.1 and keep every connection on the loopback interface.

Alice creates the group in her window with real input: Ctrl+Shift+N opens
the New Group dialog, the name is typed, and the members' check buttons and
Create are clicked with xdotool (the widgets print where they are).  The
test then checks, through the debug lines the widgets print
(G_MESSAGES_DEBUG=natter-ui: what a row, a header or an indicator shows),
that Bob's sidebar lists the group, that a text typed in Alice's window
shows in Bob's with Alice's name, that Alice's bubble goes from "delivered
to 2 of 2" to "read by 1 of 2" (Carol marks it read) and "read by 2 of 2"
(Bob's window comes to the front), that Bob's window shows Carol typing and
her message with her name, that Bob's header says "Syncing…" while it
catches up after a partition (the app.test-group-block hook drops his group
frames), and that the members window lists everyone with presence, lets the
admin remove Carol and add her back with a click and is read-only for Bob,
that no GTK warning was printed and that both windows quit cleanly (under
ASan: without a leak report).  Screenshots go to the build folder.

Usage: test-app-groups.py NATTER NATTER_CLI NATTER_RENDEZVOUS SCREENSHOT_DIR"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

natter, cli, rendezvous, outdir = sys.argv[1:5]

TESTS = 17
print(f"1..{TESTS}")
if not os.environ.get("DISPLAY"):
    print(f"1..0 # SKIP no display: run under xvfb-run (build-aux/test.sh does)")
    sys.exit(0)
for tool in ("xdotool", "import"):
    if shutil.which(tool) is None:
        print(f"Bail out! {tool} is not installed (build-aux/install-deps.sh installs it)")
        sys.exit(1)

# Sanitizer builds run several times slower.
SLOW = 3 if os.environ.get("ASAN_OPTIONS") else 1
home = tempfile.mkdtemp(prefix="natter-groups-")
env = dict(os.environ, XDG_DATA_HOME=home, NO_AT_BRIDGE="1", NATTER_INTERFACES="lo",
           G_MESSAGES_DEBUG="natter-ui", NATTER_TEST_HOOKS="1")
env.pop("G_DEBUG", None)  # a GTK warning must not abort a window the user would keep
procs = []
number = 0


def ok(passed, what):
    global number
    number += 1
    print(("ok" if passed else "not ok") + f" {number} {what}", flush=True)
    if not passed:
        raise SystemExit(1)


def find_window(pid, name, timeout=30.0):
    """The visible X window of process @pid whose title matches @name."""
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        # "search --pid P --name N" matches either: check the PID of each.
        r = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", name],
                           capture_output=True, text=True)
        for window in r.stdout.split():
            found = subprocess.run(["xdotool", "getwindowpid", window], capture_output=True, text=True)
            if found.stdout.strip() == str(pid):
                return window
        time.sleep(0.2)
    return None


class App:
    """A natter process whose natter-ui debug lines are collected."""

    def __init__(self, name, url, peer):
        self.name = name
        self.lines = []
        self.lock = threading.Lock()
        # NATTER_TEST_WRAPPER="gdb -batch -ex run -ex bt --args" helps debugging.
        wrapper = os.environ.get("NATTER_TEST_WRAPPER", "").split()
        self.proc = subprocess.Popen(
            wrapper + [natter, "--profile", name, "--rendezvous", url, "--no-lan", "--interfaces", "lo",
                       "natter:" + peer],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(self.proc)
        threading.Thread(target=self._read, daemon=True).start()
        self.window = None

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def find(self, pattern, start=0):
        with self.lock:
            for i, line in enumerate(self.lines[start:], start):
                m = re.search(pattern, line)
                if m:
                    return i, m
        return None

    def wait(self, pattern, timeout=30.0, start=0):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            found = self.find(pattern, start)
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        return None

    def mark(self):
        with self.lock:
            return len(self.lines)

    def command(self, line):
        """A NATTER_TEST_HOOKS command on the process's standard input."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def focus(self, window=None):
        # No window manager under Xvfb: raise the window, put the pointer
        # on it and give it the focus by hand.
        window = window or self.window
        subprocess.run(["xdotool", "windowraise", window], check=False)
        subprocess.run(["xdotool", "mousemove", "--window", window, "200", "300"], check=False)
        subprocess.run(["xdotool", "windowfocus", "--sync", window], check=False)
        time.sleep(0.5)

    def click(self, x, y, window=None):
        window = window or self.window
        self.focus(window)
        # Out of the window and back, as a hand would move.
        subprocess.run(["xdotool", "mousemove", "1279", "799"], check=False)
        time.sleep(0.2)
        subprocess.run(["xdotool", "mousemove", "--window", window, str(x), str(y)], check=False)
        time.sleep(0.3)
        subprocess.run(["xdotool", "mousedown", "1"], check=False)
        time.sleep(0.15)
        subprocess.run(["xdotool", "mouseup", "1"], check=False)

    def click_traced(self, what, window=None, start=0):
        """Clicks the widget that printed "@what at=X,Y"."""
        found = self.wait(re.escape(what) + r" at=(-?\d+),(-?\d+)", 15, start)
        if found is None:
            return False
        self.click(int(found[1].group(1)), int(found[1].group(2)), window)
        return True

    def place(self, x, y, width, height, window=None):
        window = window or self.window
        subprocess.run(["xdotool", "windowsize", "--sync", window, str(width), str(height)], check=False)
        subprocess.run(["xdotool", "windowmove", "--sync", window, str(x), str(y)], check=False)

    def screenshot_screen(self, name):
        """The window with its popovers, which are windows of their own."""
        os.makedirs(outdir, exist_ok=True)
        path = os.path.join(outdir, name)
        geometry = subprocess.run(["xdotool", "getwindowgeometry", "--shell", self.window],
                                  capture_output=True, text=True).stdout
        g = dict(line.split("=", 1) for line in geometry.split())
        time.sleep(0.5)
        subprocess.run(["import", "-window", "root", "-crop",
                        f"{g['WIDTH']}x{g['HEIGHT']}+{g['X']}+{g['Y']}", "+repage", path],
                       check=False, timeout=30)
        print("# screenshot " + path, flush=True)
        return path

    def screenshot(self, name, window=None):
        window = window or self.window
        os.makedirs(outdir, exist_ok=True)
        path = os.path.join(outdir, name)
        subprocess.run(["xdotool", "windowraise", window], check=False)
        time.sleep(0.5)
        subprocess.run(["import", "-window", window, path], check=False, timeout=30)
        print("# screenshot " + path, flush=True)
        return path


class Cli:
    """A natter-cli run process: JSON commands in, JSON events out."""

    def __init__(self, name, url):
        self.name = name
        self.events = []
        self.lock = threading.Lock()
        self.next_id = 1
        self.proc = subprocess.Popen(
            [cli, "--profile", name, "--rendezvous", url, "--no-lan", "--interfaces", "lo", "run"],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(self.proc)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.events.append(event)

    def command(self, cmd, **members):
        tag = f"{self.name}-{self.next_id}"
        self.next_id += 1
        self.proc.stdin.write(json.dumps({"cmd": cmd, "id": tag, **members}) + "\n")
        self.proc.stdin.flush()
        return tag

    def wait(self, predicate, timeout=30.0):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            with self.lock:
                for event in self.events:
                    if predicate(event):
                        return event
            time.sleep(0.1)
        return None


def peer_id(profile):
    r = subprocess.run([cli, "--profile", profile, "id"], env=env, capture_output=True,
                       text=True, check=True)
    return r.stdout.split()[0]


try:
    server = subprocess.Popen([rendezvous, "--listen", "127.0.0.1", "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(server)
    url = None
    deadline = time.time() + 10
    while url is None and time.time() < deadline:
        line = server.stdout.readline()
        m = re.search(r"(ws://\S+)", line)
        if m:
            url = m.group(1)
    if url is None:
        print("Bail out! natter-rendezvous did not print its URL")
        sys.exit(1)

    # The profiles, names and contacts are set up before the processes
    # start (the profile lock allows natter-cli then).
    names = {"alice": "Alice Liddell", "bob": "Bob Hatter", "carol": "Carol Dormouse"}
    ids = {profile: peer_id(profile) for profile in names}
    for profile, name in names.items():
        with open(os.path.join(home, "natter", profile, "settings.ini"), "w") as f:
            f.write(f"[Profile]\ndisplay-name='{name}'\n")
        for other in names:
            if other != profile:
                subprocess.run([cli, "--profile", profile, "add-contact", ids[other], "--name", names[other]],
                               env=env, check=True, capture_output=True)
    alice_id, bob_id, carol_id = ids["alice"], ids["bob"], ids["carol"]

    # Each window opens the other's conversation, whose header says when
    # they are connected.
    alice = App("alice", url, bob_id)
    bob = App("bob", url, alice_id)
    carol = Cli("carol", url)
    alice.window = find_window(alice.proc.pid, "Natter")
    bob.window = find_window(bob.proc.pid, "Natter")
    ok(alice.window is not None and bob.window is not None, "both windows appear")
    # Side by side, so that typing into one never lands in the other;
    # Alice's wide enough for the sidebar and the conversation.
    alice.place(0, 0, 800, 640)
    bob.place(810, 0, 470, 700)
    connected = (alice.wait(r"header peer=" + bob_id + r" presence=online", 60) and
                 bob.wait(r"header peer=" + alice_id + r" presence=online", 60))
    ok(bool(connected), "the windows are connected through the rendezvous server")

    # Alice: Ctrl+Shift+N, the name, both members, Create.
    alice.focus()
    start = alice.mark()
    subprocess.run(["xdotool", "key", "ctrl+shift+n"], check=True)
    dialog = find_window(alice.proc.pid, "New Group")
    if dialog is None:
        ok(False, "Ctrl+Shift+N opens the New Group dialog")
    alice.focus(dialog)
    subprocess.run(["xdotool", "type", "--delay", "60", "Tea Party"], check=True)
    clicked = all(alice.click_traced("new-group member peer=" + peer, dialog, start)
                  for peer in (bob_id, carol_id))
    valid = alice.wait(r"new-group members=2 valid=1", 10, start)
    ok(clicked and valid is not None, "the New Group dialog takes the name and two members")
    alice.click_traced("new-group create", dialog, start)
    created = alice.wait(r"new-group created group=(grp_\S+) name=Tea Party", 15, start)
    ok(created is not None, "Create in the dialog creates the group")
    group = created[1].group(1)
    header = alice.wait(r"group-header group=" + re.escape(group) + r" name=Tea Party members=3 ", 15, start)
    ok(header is not None, "Alice's window opens the group: Tea Party, 3 members")

    # Bob's sidebar lists the group with the group icon; Alt+Down opens the
    # newest conversation, which is the group.
    listed = bob.wait(r"conversation-row group=" + re.escape(group) + r" title=Tea Party", 60)
    carol_joined = carol.wait(lambda e: e.get("event") == "group-changed" and
                              e.get("info", {}).get("group") == group, 60)
    bob.focus()
    start_bob = bob.mark()
    subprocess.run(["xdotool", "key", "alt+Down"], check=True)
    opened = bob.wait(r"group-header group=" + re.escape(group) + r" name=Tea Party", 15, start_bob)
    ok(listed is not None and carol_joined is not None and opened is not None,
       "Bob's sidebar lists the group and Bob opens it; Carol (natter-cli) joined")

    # Alice writes; Bob's window shows the text with her name.
    alice.focus()
    text = "Welcome to the tea party"
    subprocess.run(["xdotool", "type", "--delay", "50", text], check=True)
    subprocess.run(["xdotool", "key", "Return"], check=True)
    sent = alice.wait(r"row msg=(\S+) outgoing=1 text=" + re.escape(text), 15)
    msg_id = sent[1].group(1) if sent else "-"
    shown = bob.wait(r"row msg=" + re.escape(msg_id) + r" outgoing=0 text=" + re.escape(text), 30)
    named = bob.wait(r"row msg=" + re.escape(msg_id) + r" sender=Alice Liddell", 30)
    ok(sent is not None and shown is not None and named is not None,
       "Alice's message shows in Bob's window with her name")

    # Receipts: delivered to both while Bob's window is behind; Carol reads
    # it (1 of 2), then Bob's window comes to the front (2 of 2).
    receipts = r"row msg=" + re.escape(msg_id) + r" receipts delivered=(\d) read=(\d) total=2"
    delivered = alice.wait(receipts.replace(r"delivered=(\d) read=(\d)", r"delivered=2 read=0"), 30)
    got = carol.wait(lambda e: e.get("event") == "group-message-received" and e.get("msgId") == msg_id, 30)
    carol.command("group-read", group=group)
    read_one = alice.wait(receipts.replace(r"read=(\d)", "read=1"), 30)
    bob.focus()
    read_two = alice.wait(receipts.replace(r"read=(\d)", "read=2"), 30)
    ok(delivered is not None and got is not None and read_one is not None and read_two is not None,
       "Alice's bubble: delivered to 2 of 2, read by 1 of 2, read by 2 of 2")

    # A click on "Read by 2 of 2" lists who.
    alice.focus()
    start = alice.mark()
    alice.click_traced("row msg=" + msg_id + " receipts-button", None, read_two[0])
    details = alice.wait(r"row msg=" + re.escape(msg_id) + r" receipts-details=Read by\|(.*)\|\|Delivered to\|(.*)",
                         10, start)
    ok(details is not None and
       all(name in details[1].group(g) for name in ("Bob Hatter", "Carol Dormouse") for g in (1, 2)),
       "the receipts popover lists Bob and Carol under read by and delivered to")
    alice.screenshot_screen("group-receipts-alice.png")
    subprocess.run(["xdotool", "key", "Escape"], check=False)

    # Carol types, then writes: Bob's window shows who.
    start_bob = bob.mark()
    carol.command("group-typing", group=group, typing=True)
    typing = bob.wait(r"group-typing group=" + re.escape(group) + r" text=Carol Dormouse is typing", 30, start_bob)
    bob.screenshot("group-typing-bob.png")
    carol.command("group-send", group=group, text="Hello from the dormouse")
    carol_row = bob.wait(r"row msg=(\S+) outgoing=0 text=Hello from the dormouse", 30, start_bob)
    carol_named = carol_row and bob.wait(r"row msg=" + re.escape(carol_row[1].group(1)) +
                                         r" sender=Carol Dormouse", 10, start_bob)
    stopped = bob.wait(r"group-typing group=" + re.escape(group) + r" text=$", 30, start_bob)
    ok(typing is not None and carol_named and stopped is not None,
       "Bob's window shows Carol typing, then her message with her name")

    # A partition: Bob's window drops group frames to and from the others
    # while Alice writes; once it ends, Bob's header says "Syncing…" until
    # the messages are there.
    bob.command("group-block " + alice_id + " 1")
    bob.command("group-block " + carol_id + " 1")
    time.sleep(1)
    alice.focus()
    start_bob = bob.mark()
    missed = "Did you miss this one?"
    subprocess.run(["xdotool", "type", "--delay", "40", missed], check=True)
    subprocess.run(["xdotool", "key", "Return"], check=True)
    alice.wait(r"row msg=\S+ outgoing=1 text=" + re.escape(missed), 15)
    time.sleep(2 * SLOW)
    early = bob.find(r"row msg=\S+ outgoing=0 text=" + re.escape(missed), start_bob)
    bob.command("group-block " + alice_id + " 0")
    bob.command("group-block " + carol_id + " 0")
    syncing = bob.wait(r"group-header group=" + re.escape(group) + r" .*syncing=1", 30, start_bob)
    caught_up = bob.wait(r"row msg=\S+ outgoing=0 text=" + re.escape(missed), 30, start_bob)
    synced = syncing and bob.wait(r"group-header group=" + re.escape(group) + r" .*syncing=0", 30, syncing[0])
    ok(early is None and syncing is not None and caught_up is not None and synced,
       "after a partition Bob's header shows Syncing… until the message arrives")

    # The members window: everyone with presence; Alice (the admin) removes
    # Carol with a click.
    alice.focus()
    start = alice.mark()
    alice.click_traced("group-view members", None, 0)
    members = find_window(alice.proc.pid, "Members")
    listed = members and all(alice.wait(r"group-members group=" + re.escape(group) + r" peer=" + peer +
                                        r" presence=(online|away) admin=" + admin, 15, start)
                             for peer, admin in ((alice_id, "1"), (bob_id, "0"), (carol_id, "0")))
    editable = alice.wait(r"group-members group=" + re.escape(group) + r" editable=1", 10, start)
    ok(bool(listed) and editable is not None,
       "Alice's members window lists the three members online, and she may edit it")
    alice.place(0, 0, 440, 560, members)
    start_bob = bob.mark()
    alice.click_traced("group-members remove peer=" + carol_id, members, start)
    removed = carol.wait(lambda e: e.get("event") == "group-changed" and
                         e.get("info", {}).get("removed") is True, 30)
    two_left = bob.wait(r"group-header group=" + re.escape(group) + r" name=Tea Party members=2 ", 30, start_bob)
    ok(removed is not None and two_left is not None,
       "removing Carol in Alice's members window removes her everywhere")

    # Carol is a contact again under "Add Members": a click invites her back.
    start = alice.mark()
    start_bob = bob.mark()
    # (A fresh members window: under Xvfb without a window manager, a
    # second click in the window whose rows were rebuilt after the first
    # does not reach its button; the cause is not known yet.)
    alice.focus(members)
    subprocess.run(["xdotool", "key", "Escape"], check=False)
    time.sleep(1)
    alice.click_traced("group-view members", None, 0)
    members = find_window(alice.proc.pid, "Members")
    clicked = alice.click_traced("group-members invite peer=" + carol_id, members, start)
    back = bob.wait(r"group-header group=" + re.escape(group) + r" name=Tea Party members=3 ", 30, start_bob)
    listed_again = alice.wait(r"group-members group=" + re.escape(group) + r" peer=" + carol_id +
                              r" presence=\w+ admin=0 removable=1", 15, start)
    ok(clicked and back is not None and listed_again is not None,
       "adding Carol back in Alice's members window makes three members again")
    time.sleep(1)
    alice.screenshot("group-members-alice.png", members)
    alice.focus(members)
    subprocess.run(["xdotool", "key", "Escape"], check=False)

    # Bob's members window is read-only.
    start_bob = bob.mark()
    bob.click_traced("group-view members", None, 0)
    bob_members = find_window(bob.proc.pid, "Members")
    read_only = bob.wait(r"group-members group=" + re.escape(group) + r" editable=0 invitable=0", 15, start_bob)
    ok(bob_members is not None and read_only is not None, "Bob's members window is read-only")
    if bob_members:
        bob.focus(bob_members)
        subprocess.run(["xdotool", "key", "Escape"], check=False)

    # GTK and GLib said nothing wrong along the way.  Complaints about the
    # test's session bus (no notification server, no accessibility bus, a
    # bus that went away) are the environment's, not the window's.
    expected = ("org.freedesktop.Notifications", "accessibility bus", "Unable to register the application")
    problems = [line for app in (alice, bob) for line in app.lines
                if re.search(r"-(WARNING|CRITICAL) \*\*", line) and not any(e in line for e in expected)]
    for line in problems[:10]:
        print("# " + line)
    ok(not problems, "no GTK or GLib warnings in either window")

    # Wide windows show the sidebar next to the group.
    time.sleep(1)
    bob.place(0, 0, 960, 640)
    bob.screenshot("group-bob.png")
    alice.place(0, 0, 960, 640)
    alice.focus()
    time.sleep(1.0)
    alice.screenshot("group-alice.png")

    # Both quit cleanly (under ASan: no leak or error report).
    for app in (alice, bob):
        app.proc.send_signal(signal.SIGTERM)
    statuses = []
    for app in (alice, bob):
        try:
            statuses.append(app.proc.wait(timeout=30 * SLOW))
        except subprocess.TimeoutExpired:
            statuses.append(None)
    time.sleep(0.5)
    reports = [line for app in (alice, bob) for line in app.lines if "Sanitizer" in line]
    for line in reports[:10]:
        print("# " + line)
    ok(statuses == [0, 0] and not reports, f"both windows quit cleanly on SIGTERM: {statuses}")
except SystemExit:
    for app in [a for a in (globals().get("alice"), globals().get("bob")) if a is not None]:
        with app.lock:
            for line in app.lines[-40:]:
                print(f"# {app.name}: {line}")
        print(f"# {app.name}: exit status {app.proc.poll()}")
    raise
finally:
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(home, ignore_errors=True)
