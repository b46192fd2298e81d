#!/bin/bash
# Builds Natter and runs every test.  Installs missing Debian packages first.
#
#   build-aux/test.sh              the normal build (build/)
#   build-aux/test.sh --sanitize   AddressSanitizer + UBSan build (build-sanitize/)
#   build-aux/test.sh --fuzz SECS  builds the libFuzzer targets with clang
#                                  (build-fuzz/) and runs each for SECS seconds
#
# Each run ends with a line "N passed, N failed, N skipped".  A test that
# cannot run here (for example without root for network namespaces) says why
# and counts as skipped; with NATTER_NO_SKIP=1 (set by CI) a skip fails.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

mode=normal
fuzz_seconds=60
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) mode=sanitize ;;
    --fuzz) mode=fuzz; fuzz_seconds=${2:-60}; shift ;;
    *) echo "usage: $0 [--sanitize | --fuzz SECONDS]" >&2; exit 2 ;;
  esac
  shift
done

"$top/build-aux/install-deps.sh"

setup () {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@"
  fi
}

summary () {
  python3 "$top/build-aux/test-summary.py" "$@"
}

case "$mode" in
  normal)
    setup build
    ninja -C build
    status=0
    dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" \
      meson test -C build --print-errorlogs --num-processes 2 || status=$?
    summary build/meson-logs/testlog.json || status=1
    exit $status
    ;;
  sanitize)
    setup build-sanitize -Db_sanitize=address,undefined -Db_lundef=false \
      -Dbuildtype=debug
    ninja -C build-sanitize
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0"
    export LSAN_OPTIONS="suppressions=$top/build-aux/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
    status=0
    dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" \
      meson test -C build-sanitize --print-errorlogs --num-processes 2 \
        --timeout-multiplier 3 || status=$?
    summary build-sanitize/meson-logs/testlog.json || status=1
    exit $status
    ;;
  fuzz)
    if [ ! -f build-fuzz/build.ninja ]; then
      CC=clang meson setup build-fuzz -Dfuzzing=true -Dapp=disabled
    fi
    ninja -C build-fuzz
    passed=0; failed=0
    for target in build-fuzz/tests/fuzz/fuzz-*; do
      [ -f "$target" ] && [ -x "$target" ] || continue
      name=$(basename "$target")
      corpus="tests/fuzz/corpus/${name#fuzz-}"
      work=$(mktemp -d)
      [ -d "$corpus" ] && cp -r "$corpus/." "$work/"
      echo "== $name for ${fuzz_seconds}s"
      if "$target" -max_total_time="$fuzz_seconds" -max_len=300000 \
           -rss_limit_mb=4096 -print_final_stats=1 "$work" > "build-fuzz/$name.log" 2>&1; then
        echo "ok: $name ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "build-fuzz/$name.log" | grep -o '[0-9]*$') runs)"
        passed=$((passed + 1))
      else
        echo "FAIL: $name"; tail -n 60 "build-fuzz/$name.log"
        failed=$((failed + 1))
      fi
      rm -rf "$work"
    done
    echo "fuzz: $passed passed, $failed failed"
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    ;;
esac
