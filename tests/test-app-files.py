#!/usr/bin/env python3
"""Two real natter windows send each other files, driven by synthetic X input.

Alice and Bob each run `natter --profile` under the same X server with
NATTER_TEST_HOOKS=1 and signal through a real natter-rendezvous on
127.0.0.1.  A "drop-file PATH" line on Alice's standard input activates her
window's app.test-drop-file action, which hands a GdkFileList of PATH to the
same function the conversation's GtkDropTarget calls on a drop.  Bob's window
shows the offer; the test clicks its Accept button with xdotool (the row
prints where the button is) and checks, through the natter-ui debug lines,
that both rows end complete, that Bob's copy has the same SHA-256 as the
file sent, and that the image got a thumbnail.  Screenshots of both windows
go to the build folder.

Usage: test-app-files.py NATTER NATTER_CLI NATTER_RENDEZVOUS SCREENSHOT_DIR"""
import hashlib
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

TESTS = 8
print(f"1..{TESTS}")
if not os.environ.get("DISPLAY"):
    print(f"1..0 # SKIP no display: run under xvfb-run (build-aux/test.sh does)")
    sys.exit(0)
for tool in ("xdotool", "import"):
    if shutil.which(tool) is None:
        print(f"Bail out! {tool} is not installed (build-aux/install-deps.sh installs it)")
        sys.exit(1)

home = tempfile.mkdtemp(prefix="natter-files-")
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


class App:
    """A natter process whose natter-ui debug lines are collected."""

    def __init__(self, name, peer, url):
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
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.find(pattern, start)
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        return None

    def wait_window(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            # "search --pid P --name N" matches either: check the PID of each.
            r = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "Natter"],
                               capture_output=True, text=True)
            for window in r.stdout.split():
                pid = subprocess.run(["xdotool", "getwindowpid", window], capture_output=True, text=True)
                if pid.stdout.strip() == str(self.proc.pid):
                    self.window = window
                    return True
            time.sleep(0.2)
        return False

    def focus(self):
        # No window manager under Xvfb: raise the window, put the pointer
        # on it and give it the focus by hand.
        subprocess.run(["xdotool", "windowraise", self.window], check=False)
        subprocess.run(["xdotool", "mousemove", "--window", self.window, "200", "300"], check=False)
        subprocess.run(["xdotool", "windowfocus", "--sync", self.window], check=False)
        time.sleep(0.5)



    def command(self, line):
        """A NATTER_TEST_HOOKS command on the process's standard input."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def click(self, x, y):
        self.focus()
        subprocess.run(["xdotool", "mousemove", "--window", self.window, str(x), str(y)], check=False)
        time.sleep(0.3)
        subprocess.run(["xdotool", "click", "1"], check=False)

    def place(self, x, y, width, height):
        subprocess.run(["xdotool", "windowsize", "--sync", self.window, str(width), str(height)], check=False)
        subprocess.run(["xdotool", "windowmove", "--sync", self.window, str(x), str(y)], check=False)

    def screenshot(self, name):
        os.makedirs(outdir, exist_ok=True)
        path = os.path.join(outdir, name)
        subprocess.run(["xdotool", "windowraise", self.window], check=False)
        time.sleep(0.5)
        subprocess.run(["import", "-window", self.window, path], check=False, timeout=30)
        print("# screenshot " + path, flush=True)
        return path


def peer_id(profile):
    r = subprocess.run([cli, "--profile", profile, "id"], env=env, capture_output=True,
                       text=True, check=True)
    return r.stdout.split()[0]




def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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

    alice_id = peer_id("alice")
    bob_id = peer_id("bob")
    downloads = {}
    for profile, name in (("alice", "Alice Liddell"), ("bob", "Bob Hatter")):
        downloads[profile] = os.path.join(home, profile + "-downloads")
        os.makedirs(downloads[profile])
        with open(os.path.join(home, "natter", profile, "settings.ini"), "w") as f:
            f.write(f"[Profile]\ndisplay-name='{name}'\ndownload-folder='{downloads[profile]}'\n")
    subprocess.run([cli, "--profile", "alice", "add-contact", bob_id, "--name", "Bob Hatter"],
                   env=env, check=True, capture_output=True)
    subprocess.run([cli, "--profile", "bob", "add-contact", alice_id, "--name", "Alice Liddell"],
                   env=env, check=True, capture_output=True)

    # What Alice sends: a picture and 3 MiB of random bytes.
    outbox = os.path.join(home, "outbox")
    os.makedirs(outbox)
    picture = os.path.join(outbox, "tea-party.png")
    subprocess.run(["convert", "-size", "640x400", "gradient:#3584e4-#f6d32d",
                    "-fill", "white", "-draw", "circle 320,200 320,80", picture], check=True)
    blob = os.path.join(outbox, "minutes.bin")
    with open(blob, "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024))
    sent = {picture: sha256(picture), blob: sha256(blob)}

    alice = App("alice", bob_id, url)
    bob = App("bob", alice_id, url)
    ok(alice.wait_window() and bob.wait_window(), "both windows appear")
    alice.place(0, 0, 630, 700)
    bob.place(640, 0, 630, 700)
    connected = (alice.wait(r"header peer=" + bob_id + r" presence=online", 60) and
                 bob.wait(r"header peer=" + alice_id + r" presence=online", 60))
    ok(bool(connected), "each window shows the other online")

    # The drop, through the drop target's own function.
    offers = {}
    for path in (picture, blob):
        start = len(alice.lines)
        alice.command("drop-file " + path)
        dropped = alice.wait(r"send-files peer=" + bob_id + r" count=1", 15, start)
        row = alice.wait(r"transfer-row id=(\S+) outgoing=1 state=\w+ name=" + re.escape(os.path.basename(path)),
                         15, start)
        if dropped is None or row is None:
            ok(False, "a drop on Alice's conversation makes an outgoing transfer row")
        offers[path] = row[1].group(1)
    ok(True, "each drop on Alice's conversation makes an outgoing transfer row")

    offered = all(bob.wait(r"transfer-row id=" + re.escape(tid) + r" outgoing=0 state=offered", 60)
                  for tid in offers.values())
    ok(offered, "Bob's window shows both offers with Accept buttons")
    time.sleep(1.5)
    bob.screenshot("files-offer-bob.png")

    # Bob clicks Accept on each row.
    for path, tid in offers.items():
        at = None
        with bob.lock:
            for line in bob.lines:
                m = re.search(r"transfer-row id=" + re.escape(tid) + r" accept-at=(\d+),(\d+)", line)
                if m:
                    at = (int(m.group(1)), int(m.group(2)))
        if at is None:
            ok(False, "Bob's Accept button has a position")
        start = len(bob.lines)
        bob.click(*at)
        if bob.wait(r"chat.accept-file id=" + re.escape(tid) + r" ok=1", 10, start) is None:
            ok(False, "clicking Accept accepts " + os.path.basename(path))
        time.sleep(0.5)
    ok(True, "clicking Accept in Bob's window accepts both files")

    received = {}
    for path, tid in offers.items():
        done = bob.wait(r"transfer-row id=" + re.escape(tid) + r" outgoing=0 state=complete path=(.+)$", 120)
        if done is None:
            ok(False, "Bob's row for " + os.path.basename(path) + " completes")
        received[path] = done[1].group(1)
    alice_done = all(alice.wait(r"transfer-row id=" + re.escape(tid) + r" outgoing=1 state=complete", 60)
                     for tid in offers.values())
    same = all(os.path.exists(received[p]) and sha256(received[p]) == sent[p] for p in sent)
    ok(alice_done and same,
       "both rows end complete and Bob's copies have the sent SHA-256: " +
       ", ".join(f"{os.path.basename(received[p])}={sent[p][:16]}" for p in sent))

    thumb = bob.wait(r"transfer-row id=" + re.escape(offers[picture]) + r" thumbnail=(\d+)x(\d+)", 30)
    ok(thumb is not None and max(int(thumb[1].group(1)), int(thumb[1].group(2))) <= 160,
       "the received picture shows a thumbnail")

    time.sleep(1.0)
    bob.place(0, 0, 960, 640)
    bob.screenshot("files-bob.png")
    alice.place(0, 0, 960, 640)
    alice.focus()
    time.sleep(1.0)
    alice.screenshot("files-alice.png")
    ok(True, "screenshots of both windows with the transfer rows")
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
