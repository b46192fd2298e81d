#!/usr/bin/env python3
"""Checks po/POTFILES.in against the sources: every file with a translatable
string is listed, every listed file exists, and the list is sorted."""
import os
import re
import sys

top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
top = os.path.abspath(top)

marks = re.compile(r'(\b_\(|\bN_\(|\bC_\(|\bNC_\(|\bngettext\s*\(|translatable="yes")')

listed = []
with open(os.path.join(top, "po", "POTFILES.in"), encoding="utf-8") as f:
    for line in f:
        line = line.strip()
        if line and not line.startswith("#"):
            listed.append(line)

needed = set()
for folder in ("src",):
    for root, _dirs, files in os.walk(os.path.join(top, folder)):
        for name in files:
            if not name.endswith((".c", ".ui")):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as f:
                if marks.search(f.read()):
                    needed.add(os.path.relpath(path, top))
for root, _dirs, files in os.walk(os.path.join(top, "data")):
    for name in files:
        if name.endswith((".desktop.in", ".metainfo.xml.in", ".gschema.xml")):
            needed.add(os.path.relpath(os.path.join(root, name), top))

errors = []
for path in sorted(needed - set(listed)):
    errors.append(f"missing from po/POTFILES.in: {path}")
for path in listed:
    if not os.path.exists(os.path.join(top, path)):
        errors.append(f"listed in po/POTFILES.in but does not exist: {path}")
if listed != sorted(listed):
    errors.append("po/POTFILES.in is not sorted")

for e in errors:
    print(e)
print(f"{len(listed)} files listed, {len(needed)} with translatable strings")
sys.exit(1 if errors else 0)
