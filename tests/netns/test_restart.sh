#!/usr/bin/env bash
# A relay restarted at once gets its port back: 20 rounds of start, three
# sessions, SIGTERM, start again on the same port (in a namespace of the
# test's own). The kernel tears an io_uring down asynchronously after the
# process exits, and an in-flight receive kept the UDP socket bound for a
# moment: 9 of 30 restarts failed with "Address already in use" before the
# relay cancelled and reaped its ring's requests at exit (io.c io_quiesce).
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/topo.sh"
topo_init wr
topo_relay_host
for i in $(seq 20); do
  rm -f "$TMP/out" "$TMP/err" # nothing stale for the wait below (the job truncates them later)
  ip netns exec "$NS_R" "$BUILD_DIR/wtrelay" --port 4433 --http-listen '' >"$TMP/out" 2>"$TMP/err" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 200); do grep -q "^Listening" "$TMP/out" 2>/dev/null && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  grep -q '^Listening' "$TMP/out" || fail "round $i: the relay did not start: $(cat "$TMP/err")"
  hash=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/out")
  ip netns exec "$NS_R" "$BUILD_DIR/wtclient" --url https://127.0.0.1:4433/r --cert-hash "$hash" \
    --sessions 3 >/dev/null 2>&1 || fail "round $i: the client failed"
  kill -TERM "$pid"
  wait "$pid" || fail "round $i: exit status $? on SIGTERM"
done
pass "20 immediate restarts on the same port: every one bound it"
