#!/usr/bin/env python3
"""Counts the results in a meson testlog.json and prints the closing line.

Exits non-zero when a test failed, when nothing ran, or when a test was
skipped while NATTER_NO_SKIP=1 (CI has root and every tool, so nothing may
skip there)."""
import json
import os
import sys

passed = failed = skipped = 0
skipped_names = []
with open(sys.argv[1], encoding="utf-8") as log:
    for line in log:
        line = line.strip()
        if not line:
            continue
        entry = json.loads(line)
        result = entry.get("result")
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
            skipped_names.append(entry.get("name"))
        else:
            failed += 1

if skipped_names:
    print("skipped: " + ", ".join(skipped_names))
print(f"{passed} passed, {failed} failed, {skipped} skipped")
no_skip = os.environ.get("NATTER_NO_SKIP") == "1"
sys.exit(1 if failed or passed == 0 or (no_skip and skipped) else 0)
