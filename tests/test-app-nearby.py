#!/usr/bin/env python3
"""Two strangers on one LAN become contacts in their windows, with clicks.

Runs in a network namespace that has only lo (run-in-netns.sh: multicast
on, a route for 224.0.0.0/4), so that LAN discovery works and nothing can
leave the machine; the X server and the session bus are reached through
their sockets in /tmp.  Alice and Bob have never heard of each other: no
contacts, no rendezvous server, both "Visible to People Nearby".

Each opens Contacts.  Alice's "People Nearby" lists Bob under the handle
Bob's own window says others see; the test clicks "Introduce Yourself" on
it with xdotool.  Bob's window shows a contact request from Alice's peer
ID; the test clicks Accept.  Alice's window then lists Bob as a contact
without asking her again, and both main windows show the other online:
they connected over the LAN.  A message typed in Alice's conversation
appears in Bob's window.  Screenshots of both contact windows go to the
build folder.

Usage: run-in-netns.sh python3 test-app-nearby.py NATTER NATTER_CLI SCREENSHOT_DIR"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

natter, cli, outdir = sys.argv[1:4]

# Run by exit code (through run-in-netns.sh): 77 is a skip.
if not os.environ.get("DISPLAY"):
    print("# SKIP no display: run under xvfb-run (build-aux/test.sh does)")
    sys.exit(1 if os.environ.get("NATTER_NO_SKIP") == "1" else 77)
for tool in ("xdotool", "import"):
    if shutil.which(tool) is None:
        print(f"Bail out! {tool} is not installed (build-aux/install-deps.sh installs it)")
        sys.exit(1)
# Only lo, or this would announce on a real network.
links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
if [line.split(":")[1].strip() for line in links.splitlines()] != ["lo"]:
    print("Bail out! not in a namespace with only lo: run through tests/lan/run-in-netns.sh")
    sys.exit(1)

TESTS = 8
print(f"1..{TESTS}")
home = tempfile.mkdtemp(prefix="natter-nearby-")
env = dict(os.environ, XDG_DATA_HOME=home, NO_AT_BRIDGE="1", NATTER_INTERFACES="lo",
           G_MESSAGES_DEBUG="natter-ui", NATTER_TEST_HOOKS="1")
env.pop("G_DEBUG", None)
procs = []
number = 0


def ok(passed, what):
    global number
    number += 1
    print(("ok" if passed else "not ok") + f" {number} {what}", flush=True)
    if not passed:
        raise SystemExit(1)


def find_window(pid, name, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", name],
                           capture_output=True, text=True)
        for window in r.stdout.split():
            got = subprocess.run(["xdotool", "getwindowpid", window], capture_output=True, text=True)
            title = subprocess.run(["xdotool", "getwindowname", window], capture_output=True, text=True)
            if got.stdout.strip() == str(pid) and title.stdout.strip() == name:
                return window
        time.sleep(0.2)
    return None


class App:
    """A natter process whose natter-ui debug lines are collected."""

    def __init__(self, name):
        self.name = name
        self.lines = []
        self.lock = threading.Lock()
        wrapper = os.environ.get("NATTER_TEST_WRAPPER", "").split()
        self.proc = subprocess.Popen(
            wrapper + [natter, "--profile", name, "--interfaces", "lo"],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(self.proc)
        threading.Thread(target=self._read, daemon=True).start()
        self.window = None

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def last(self, pattern):
        with self.lock:
            for line in reversed(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
        return None

    def wait(self, pattern, timeout=30.0, start=0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for line in self.lines[start:]:
                    m = re.search(pattern, line)
                    if m:
                        return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        return None

    def mark(self):
        with self.lock:
            return len(self.lines)

    def click(self, window, x, y):
        subprocess.run(["xdotool", "windowraise", window], check=False)
        subprocess.run(["xdotool", "windowfocus", "--sync", window], check=False)
        time.sleep(0.3)
        subprocess.run(["xdotool", "mousemove", "--window", window, str(x), str(y)], check=False)
        time.sleep(0.2)
        subprocess.run(["xdotool", "click", "1"], check=False)

    def screenshot(self, window, name):
        os.makedirs(outdir, exist_ok=True)
        path = os.path.join(outdir, name)
        subprocess.run(["xdotool", "windowraise", window], check=False)
        time.sleep(0.5)
        subprocess.run(["import", "-window", window, path], check=False, timeout=30)
        print("# screenshot " + path, flush=True)


def peer_id(profile):
    r = subprocess.run([cli, "--profile", profile, "id"], env=env, capture_output=True,
                       text=True, check=True)
    return r.stdout.split()[0]


try:
    alice_id = peer_id("alice")
    bob_id = peer_id("bob")
    for profile, name in (("alice", "Alice Liddell"), ("bob", "Bob Hatter")):
        with open(os.path.join(home, "natter", profile, "settings.ini"), "w") as f:
            f.write(f"[Profile]\ndisplay-name='{name}'\ndiscoverable=true\n")

    alice = App("alice")
    bob = App("bob")
    alice.window = find_window(alice.proc.pid, "Natter")
    bob.window = find_window(bob.proc.pid, "Natter")
    ok(alice.window and bob.window, "both windows appear")

    for app in (alice, bob):
        app.command("window-action win.show-contacts")
        app.contacts = find_window(app.proc.pid, "Contacts")
    ok(alice.contacts and bob.contacts, "both open Contacts")
    subprocess.run(["xdotool", "windowmove", "--sync", alice.contacts, "0", "0"], check=False)
    subprocess.run(["xdotool", "windowmove", "--sync", bob.contacts, "640", "0"], check=False)

    bob_self = bob.wait(r"contacts nearby-self handle=([0-9a-f]+)", 30)
    alice_self = alice.wait(r"contacts nearby-self handle=([0-9a-f]+)", 30)
    seen = bob_self and alice.wait(r"contacts nearby handle=" + bob_self.group(1) +
                                   r" introduced=0 introduce-at=", 40)
    ok(bool(alice_self and seen),
       "Alice's People Nearby lists Bob under the handle Bob's window says others see")
    time.sleep(1.0)
    alice.screenshot(alice.contacts, "nearby-alice.png")

    # Alice clicks "Introduce Yourself" on Bob's row (its latest position).
    at = alice.last(r"contacts nearby handle=" + bob_self.group(1) + r" introduced=0 introduce-at=(\d+),(\d+)")
    start = bob.mark()
    alice.click(alice.contacts, int(at.group(1)), int(at.group(2)))
    request = bob.wait(r"contacts request peer=" + alice_id + r" accept-at=(\d+),(\d+)", 30, start)
    ok(request is not None, "after the click, Bob's window shows a contact request from Alice's peer ID")
    time.sleep(1.0)
    bob.screenshot(bob.contacts, "nearby-request-bob.png")

    # Bob accepts; Alice gets Bob as a contact without another question.
    request = bob.last(r"contacts request peer=" + alice_id + r" accept-at=(\d+),(\d+)")
    start_a = alice.mark()
    bob.click(bob.contacts, int(request.group(1)), int(request.group(2)))
    ok(bob.wait(r"contacts contact peer=" + alice_id + r" state=accepted", 20, start) is not None,
       "clicking Accept makes Alice a contact in Bob's window")
    ok(alice.wait(r"contacts contact peer=" + bob_id + r" state=accepted", 30, start_a) is not None and
       alice.wait(r"contacts request peer=", 0, start_a) is None,
       "Alice's window lists Bob as a contact without asking her again")
    time.sleep(1.0)
    alice.screenshot(alice.contacts, "nearby-contact-alice.png")

    # Each opens the conversation from Contacts; the main windows show each
    # other online (connected over the LAN) and the text goes across.
    contact = bob.last(r"contacts contact peer=" + alice_id + r" state=accepted at=(\d+),(\d+)")
    bob.click(bob.contacts, int(contact.group(1)), int(contact.group(2)))
    contact = alice.last(r"contacts contact peer=" + bob_id + r" state=accepted at=(\d+),(\d+)")
    alice.click(alice.contacts, int(contact.group(1)), int(contact.group(2)))
    ok(alice.wait(r"header peer=" + bob_id + r" presence=online", 60) is not None,
       "Alice's window shows Bob online: they connected over the LAN")
    subprocess.run(["xdotool", "windowraise", alice.window], check=False)
    subprocess.run(["xdotool", "mousemove", "--window", alice.window, "600", "300"], check=False)
    subprocess.run(["xdotool", "windowfocus", "--sync", alice.window], check=False)
    time.sleep(0.5)
    text = "Hello neighbour, found you on the LAN"
    subprocess.run(["xdotool", "type", "--delay", "40", text], check=True)
    subprocess.run(["xdotool", "key", "Return"], check=True)
    ok(bob.wait(r"row msg=\S+ outgoing=0 text=" + re.escape(text), 30) is not None,
       "the text typed in Alice's window appears in Bob's window")
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
