#!/bin/sh
# Installs the Debian 12 packages that building, running and testing Natter
# need.  Does nothing when they are all present already.
set -eu

PKGS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev gettext
  libglib2.0-dev libglib2.0-bin libgtk-4-dev libadwaita-1-dev libnice-dev
  libusrsctp-dev libjson-glib-dev libsodium-dev libsqlite3-dev sqlite3
  libsoup-3.0-dev python3-nacl xvfb xauth xdotool xclip imagemagick desktop-file-utils
  appstream python3 python3-websockets iproute2 nftables coturn
  dbus dbus-x11 at-spi2-core fonts-cantarell adwaita-icon-theme systemd"

missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi

echo "Installing:$missing"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
