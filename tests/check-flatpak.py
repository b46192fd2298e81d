#!/usr/bin/env python3
"""Checks the structure of the Flatpak manifest (it cannot be built here:
the GNOME runtime comes from Flathub, which this machine cannot reach).

The app ID matches, the GNOME runtime is used, finish-args are the minimal
set (network, ipc, wayland, fallback-x11, dri; files only through portals),
and every third-party module is a release archive pinned by sha256."""
import json
import re
import sys

path = sys.argv[1]
errors = []
with open(path, encoding="utf-8") as f:
    manifest = json.load(f)

if manifest.get("id") != "org.natter.Natter":
    errors.append("id is not org.natter.Natter")
if manifest.get("runtime") != "org.gnome.Platform" or manifest.get("sdk") != "org.gnome.Sdk":
    errors.append("not the GNOME runtime and SDK")
if manifest.get("command") != "natter":
    errors.append("command is not natter")

allowed = {"--share=network", "--share=ipc", "--socket=wayland", "--socket=fallback-x11", "--device=dri"}
args = set(manifest.get("finish-args", []))
if args != allowed:
    errors.append(f"finish-args differ from the minimal set: extra {sorted(args - allowed)}, missing {sorted(allowed - args)}")
if any(a.startswith("--filesystem") for a in args):
    errors.append("files must go through portals, not --filesystem")

modules = {m.get("name"): m for m in manifest.get("modules", [])}
for name in ("libsodium", "usrsctp", "libnice"):
    module = modules.get(name)
    if module is None:
        errors.append(f"module {name} is missing")
        continue
    for source in module.get("sources", []):
        if source.get("type") != "archive":
            errors.append(f"{name}: source is not a release archive")
        if not re.fullmatch(r"[0-9a-f]{64}", source.get("sha256", "")):
            errors.append(f"{name}: archive not pinned by sha256")
        if not source.get("url", "").startswith("https://"):
            errors.append(f"{name}: archive not fetched over https")
libnice = modules.get("libnice", {})
if "-Dgupnp=disabled" not in libnice.get("config-opts", []):
    errors.append("libnice must be built without UPnP")
if list(modules)[-1:] != ["natter"]:
    errors.append("natter must be the last module")

for e in errors:
    print(e)
print(f"{path}: {len(modules)} modules, {len(errors)} problems")
sys.exit(1 if errors else 0)
