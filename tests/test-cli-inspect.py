#!/usr/bin/python3
# test-cli-inspect.py: natter-cli inspect-message on the malformed-message table
#
# Copyright 2026 The Natter developers
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Runs "natter-cli inspect-message FILE" on every file of
# tests/fixtures/malformed/manifest.txt (docs/protocol.md, section 6) and
# checks the outcome against the manifest: exit status 0 and the
# normalised message for OK, exit status 6 and "error: CODE: message" on
# stderr for every error code.  The valid controls are also printed with
# --json and fed back through stdin ("-"), which must decode to the same
# bytes.  Usage: test-cli-inspect.py PATH-TO-natter-cli FIXTURES-DIR.  TAP.

import json
import os
import re
import subprocess
import sys

CLI = sys.argv[1]
FIXTURES = sys.argv[2]
EXIT_INVALID_MESSAGE = 6
TIMEOUT = 30

# Whatever the outcome, these never belong on stderr.
BAD_LOG = ("CRITICAL", "WARNING", "runtime error:", "AddressSanitizer", "LeakSanitizer")

results = []


def ok(cond, name, diag=None):
    results.append(bool(cond))
    print(f"{'ok' if cond else 'not ok'} {len(results)} - {name}", flush=True)
    if not cond and diag:
        for line in str(diag).splitlines():
            print(f"# {line}", flush=True)


def inspect(*args, stdin=None):
    return subprocess.run([CLI, "inspect-message", *args], input=stdin,
                          capture_output=True, timeout=TIMEOUT)


def describe(proc):
    return (f"exit status {proc.returncode}\n"
            f"stdout: {proc.stdout[:2000].decode(errors='replace')}\n"
            f"stderr: {proc.stderr[:2000].decode(errors='replace')}")


def read_manifest():
    cases = []
    with open(os.path.join(FIXTURES, "manifest.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, expected = line.split()
            cases.append((name, expected))
    return cases


def check_valid(name, path):
    proc = inspect(path)
    stderr = proc.stderr.decode(errors="replace")
    good = (proc.returncode == 0 and proc.stdout.startswith(b"valid ")
            and b"signature verified" in proc.stdout
            and not any(m in stderr for m in BAD_LOG))
    ok(good, f"{name}: OK, summary printed", describe(proc))

    proc = inspect("--json", path)
    try:
        lines = proc.stdout.decode().splitlines()
        message = json.loads(lines[0]) if len(lines) == 1 else None
    except (UnicodeDecodeError, ValueError):
        message = None
    ok(proc.returncode == 0 and isinstance(message, dict) and "signature" in message,
       f"{name}: --json prints the normalised message on one line", describe(proc))
    if proc.returncode != 0:
        return

    again = inspect("--json", "-", stdin=proc.stdout)
    ok(again.returncode == 0 and again.stdout == proc.stdout,
       f"{name}: the normalised message decodes again from stdin, unchanged", describe(again))


def check_invalid(name, path, expected):
    proc = inspect(path)
    stderr = proc.stderr.decode(errors="replace")
    first = stderr.splitlines()[0] if stderr else ""
    match = re.fullmatch(r"error: ([A-Z0-9_]+): (.+)", first)
    good = (proc.returncode == EXIT_INVALID_MESSAGE and match is not None
            and match.group(1) == expected and len(match.group(2).strip()) > 0
            and proc.stdout == b""
            and not any(m in stderr for m in BAD_LOG))
    ok(good, f"{name}: {expected}" + (f" ({match.group(2)})" if match else ""),
       f"expected exit status {EXIT_INVALID_MESSAGE} and 'error: {expected}: ...'\n" + describe(proc))


def check_cli_errors(some_fixture):
    proc = inspect(os.path.join(FIXTURES, "no-such-file.json"))
    ok(proc.returncode == 1 and b"no-such-file.json" in proc.stderr,
       "a missing file is an error (status 1), not an invalid message", describe(proc))

    proc = subprocess.run([CLI, "inspect-message"], capture_output=True, timeout=TIMEOUT)
    ok(proc.returncode == 2 and b"usage" in proc.stderr,
       "inspect-message without FILE is a usage error (status 2)", describe(proc))

    proc = subprocess.run([CLI, "inspect-message", "--wait", "sent", some_fixture],
                          capture_output=True, timeout=TIMEOUT)
    ok(proc.returncode == 2, "an option of another command is a usage error (status 2)", describe(proc))

    proc = inspect("--json", os.path.join(FIXTURES, "unsigned.json"))
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = None
    ok(proc.returncode == EXIT_INVALID_MESSAGE and report is not None
       and report.get("valid") is False and report.get("code") == "BAD_SIGNATURE"
       and report.get("message"),
       "with --json an invalid message is also reported on stdout", describe(proc))


def main():
    cases = read_manifest()
    if not cases:
        print("1..0 # SKIP the manifest lists no fixtures")
        return 0
    if len({name for name, _ in cases}) != len(cases):
        ok(False, "the manifest lists each file once")

    for name, expected in cases:
        path = os.path.join(FIXTURES, name)
        if not os.path.exists(path):
            ok(False, f"{name}: the fixture exists")
            continue
        if expected == "OK":
            check_valid(name, path)
        else:
            check_invalid(name, path, expected)

    check_cli_errors(os.path.join(FIXTURES, cases[0][0]))

    print(f"1..{len(results)}", flush=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
