#!/bin/bash
# Installs missing Debian packages, builds Natter and starts the window.
# Arguments are passed to natter (for example --profile alice).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/build-aux/install-deps.sh"
[ -f build/build.ninja ] || meson setup build
ninja -C build

# Run from the build tree: the settings schema is compiled there.
export GSETTINGS_SCHEMA_DIR="$top/build/data${GSETTINGS_SCHEMA_DIR:+:$GSETTINGS_SCHEMA_DIR}"
exec "$top/build/src/app/natter" "$@"
