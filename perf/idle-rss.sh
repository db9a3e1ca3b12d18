#!/usr/bin/env bash
# Memory of an idle relay: VmRSS (and VmSize) one second after it printed
# "Listening", for each --workers count given (default 1 2 4), with the
# default flags otherwise. Not a test: prints one line a count.
#
#   BUILD_DIR=build perf/idle-rss.sh 1 2 4
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
PORT=${PORT:-24433}
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 2 4)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in "${counts[@]}"; do
  "$BUILD_DIR/wtrelay" --port "$PORT" --http-listen '' --workers "$n" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 100); do grep -q '^Listening' "$tmp/out" 2>/dev/null && break; sleep 0.05; done
  grep -q '^Listening' "$tmp/out" || { kill "$pid"; cat "$tmp/err" >&2; exit 1; }
  sleep 1
  rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")
  size=$(awk '/^VmSize/{print $2}' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid" || true
  printf 'workers=%s rss_kib=%s (%.1f MiB) vmsize_kib=%s\n' "$n" "$rss" "$(echo "$rss/1024" | bc -l)" "$size"
done
