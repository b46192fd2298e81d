#!/usr/bin/env python3
"""Two real natter windows talk to each other, driven by synthetic X input.

Alice and Bob each run `natter --profile` under the same X server, signal
through a real natter-rendezvous on 127.0.0.1 and keep every connection on
the loopback interface.  The test types into Alice's window with xdotool and
checks, through the debug lines the widgets print (G_MESSAGES_DEBUG=natter-ui:
what a row or an indicator shows, not what the service said), that Bob's
window shows the typing indicator and then the text, and that the ticks of
Alice's bubble go from sent to delivered, and to read once Bob's window is
the one in front.  Screenshots of both windows go to the build folder.

Usage: test-app-chat.py NATTER NATTER_CLI NATTER_RENDEZVOUS SCREENSHOT_DIR"""
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

TESTS = 7
print(f"1..{TESTS}")
if not os.environ.get("DISPLAY"):
    print(f"1..0 # SKIP no display: run under xvfb-run (build-aux/test.sh does)")
    sys.exit(0)
for tool in ("xdotool", "import"):
    if shutil.which(tool) is None:
        print(f"Bail out! {tool} is not installed (build-aux/install-deps.sh installs it)")
        sys.exit(1)

home = tempfile.mkdtemp(prefix="natter-chat-")
env = dict(os.environ, XDG_DATA_HOME=home, NO_AT_BRIDGE="1", NATTER_INTERFACES="lo",
           G_MESSAGES_DEBUG="natter-ui")
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
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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

    # The profiles, names and contacts are set up before the windows open
    # (the profile lock allows natter-cli then).
    alice_id = peer_id("alice")
    bob_id = peer_id("bob")
    for profile, name in (("alice", "Alice Liddell"), ("bob", "Bob Hatter")):
        with open(os.path.join(home, "natter", profile, "settings.ini"), "w") as f:
            f.write(f"[Profile]\ndisplay-name='{name}'\n")
    subprocess.run([cli, "--profile", "alice", "add-contact", bob_id, "--name", "Bob Hatter"],
                   env=env, check=True, capture_output=True)
    subprocess.run([cli, "--profile", "bob", "add-contact", alice_id, "--name", "Alice Liddell"],
                   env=env, check=True, capture_output=True)

    # Each opens the other's invite link: the conversation opens at once.
    alice = App("alice", bob_id, url)
    bob = App("bob", alice_id, url)
    ok(alice.wait_window() and bob.wait_window(), "both windows appear")
    # Side by side, so that typing into one never lands in the other.
    alice.place(0, 0, 630, 700)
    bob.place(640, 0, 630, 700)

    connected = (alice.wait(r"header peer=" + bob_id + r" presence=online", 60) and
                 bob.wait(r"header peer=" + alice_id + r" presence=online", 60))
    ok(bool(connected), "each window shows the other online (connected through the rendezvous server)")

    # Alice types; Bob's window shows the typing indicator before she sends.
    alice.focus()
    typing_from = len(bob.lines)
    text = "Hello Bob, the tea is ready"
    subprocess.run(["xdotool", "type", "--delay", "60", text], check=True)
    typing = bob.wait(r"typing peer=" + alice_id + r" visible=1", 15, typing_from)
    ok(typing is not None, "Bob's window shows that Alice is typing")
    bob.screenshot("chat-typing-bob.png")
    alice.focus()

    # Enter sends; the bubble appears in Bob's window with the same text.
    subprocess.run(["xdotool", "key", "Return"], check=True)
    sent = alice.wait(r"row msg=(\S+) outgoing=1 text=" + re.escape(text), 15)
    received = bob.wait(r"row msg=(\S+) outgoing=0 text=" + re.escape(text), 30)
    ok(sent is not None and received is not None and sent[1].group(1) == received[1].group(1),
       "the text typed in Alice's window appears in Bob's window")
    msg_id = sent[1].group(1)

    # Alice's ticks: sent (or relayed), then delivered while Bob's window is
    # behind, then read once Bob's window is in front.
    state_re = r"row msg=" + re.escape(msg_id) + r" state=(\w+)"
    delivered = alice.wait(state_re.replace(r"(\w+)", "delivered"), 30)
    states = []
    with alice.lock:
        for line in alice.lines:
            m = re.search(state_re, line)
            if m and (not states or states[-1] != m.group(1)):
                states.append(m.group(1))
    ok(delivered is not None and "read" not in states and
       any(s in states for s in ("sent", "relayed")) and
       states.index("delivered") > max(states.index(s) for s in ("sent", "relayed") if s in states),
       "Alice's bubble goes from sent to delivered: " + " -> ".join(states))

    bob.focus()
    read = alice.wait(state_re.replace(r"(\w+)", "read"), 30)
    ok(read is not None, "the bubble shows read once Bob's window shows the message")

    # Bob answers, so that both windows have a conversation to show.
    reply = "Thank you, Alice! On my way."
    subprocess.run(["xdotool", "type", "--delay", "40", reply], check=True)
    subprocess.run(["xdotool", "key", "Return"], check=True)
    answered = alice.wait(r"row msg=\S+ outgoing=0 text=" + re.escape(reply), 30)
    ok(answered is not None, "Bob's answer appears in Alice's window")
    time.sleep(1.5)
    # Narrow windows show one pane; the screenshots show both panes.
    bob.place(0, 0, 960, 640)
    bob.screenshot("chat-bob.png")
    alice.place(0, 0, 960, 640)
    alice.focus()
    time.sleep(1.0)
    alice.screenshot("chat-alice.png")
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
