#!/usr/bin/env python3
"""Starts the real natter binary the way a user does and checks what they see:
a window titled Natter appears, a second process on the same profile is
refused with a clear error naming the first one's PID, and a second profile
runs side by side.  Screenshots go to the build folder."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

natter = sys.argv[1]
outdir = sys.argv[2]

print("1..4")
if not os.environ.get("DISPLAY"):
    print("1..0 # SKIP no display: run under xvfb-run (build-aux/test.sh does)")
    sys.exit(0)
for tool in ("xdotool", "import", "xclip"):
    if shutil.which(tool) is None:
        print(f"Bail out! {tool} is not installed (build-aux/install-deps.sh installs it)")
        sys.exit(1)

home = tempfile.mkdtemp(prefix="natter-launch-")
env = dict(os.environ, XDG_DATA_HOME=home, NO_AT_BRIDGE="1")


def wait_for_window(pid, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = subprocess.run(["xdotool", "search", "--onlyvisible", "--pid", str(pid), "--name", "Natter"],
                           capture_output=True, text=True)
        ids = r.stdout.split()
        if ids:
            return ids[0]
        time.sleep(0.2)
    return None


def screenshot(name):
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, name)
    subprocess.run(["import", "-window", "root", path], check=False)
    return path


procs = []
try:
    first = subprocess.Popen([natter, "--profile", "alice"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(first)
    win = wait_for_window(first.pid)
    if win is None:
        print("not ok 1 the window of the first profile appears")
        sys.exit(1)
    print("ok 1 the window of the first profile appears")
    time.sleep(1.0)
    print("# screenshot " + screenshot("launch-window.png"))

    # Ctrl+Shift+C copies the peer ID; another X client reads it back.
    subprocess.run(["xdotool", "windowactivate", "--sync", win], check=False)
    subprocess.run(["xdotool", "key", "--clearmodifiers", "ctrl+shift+c"], check=True)
    copied = ""
    deadline = time.time() + 10
    while time.time() < deadline and not re.fullmatch(r"n[a-z2-7]{58}", copied):
        time.sleep(0.2)
        r = subprocess.run(["xclip", "-o", "-selection", "clipboard"],
                           capture_output=True, text=True, timeout=5)
        copied = r.stdout.strip()
    if re.fullmatch(r"n[a-z2-7]{58}", copied):
        print("ok 2 the peer ID can be copied to the clipboard: " + copied)
    else:
        print(f"not ok 2 the peer ID can be copied to the clipboard (got {copied!r})")
        sys.exit(1)

    second = subprocess.Popen([natter, "--profile", "alice"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(second)
    line = ""
    deadline = time.time() + 20
    while time.time() < deadline and "already in use" not in line:
        line = second.stderr.readline()
        if not line and second.poll() is not None:
            break
    expected = f"PID {first.pid}"
    if "already in use" in line and expected in line:
        print("ok 3 a second process on the same profile is refused: " + line.strip())
    else:
        print(f"not ok 3 a second process on the same profile is refused (got {line!r})")
        sys.exit(1)
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=10)

    other = subprocess.Popen([natter, "--profile", "bob"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(other)
    if wait_for_window(other.pid) is not None and first.poll() is None:
        print("ok 4 a second profile runs side by side")
    else:
        print("not ok 4 a second profile runs side by side")
        sys.exit(1)
    time.sleep(1.0)
    print("# screenshot " + screenshot("launch-two-profiles.png"))
finally:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(home, ignore_errors=True)
