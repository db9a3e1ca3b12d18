# Shared helpers for integration tests: start/stop a relay on a free
# loopback port, bounded waits, cleanup by PID in a trap.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
RELAY=$BUILD_DIR/wtrelay
CLIENT=$BUILD_DIR/wtclient
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  local rc=$?
  exec 2>/dev/null # no job-control noise about the processes killed below
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  # Sanitizer tier (build-asan): a report any program of this test wrote
  # (the relay's stderr, a client's output) fails the test, whatever the
  # test itself concluded.
  local reports
  reports=$(grep -rlE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|LeakSanitizer has encountered' "$TMP" 2>/dev/null | head -3 || true)
  if [ -n "$reports" ]; then
    echo "FAIL: sanitizer report(s) in $reports:"
    for f in $reports; do grep -E -A25 'ERROR: |runtime error:|LeakSanitizer' "$f" | head -60; done
    rc=1
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$TMP/relay.err" ] && tail -20 "$TMP/relay.err" >&2; exit 1; }
pass() { echo "ok - $*"; }
source "$(dirname "${BASH_SOURCE[0]}")/../common/exit_counters.sh"

free_udp_port() {
  python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
}

# start_relay [flags...]: sets RELAY_PID, PORT, HASH
start_relay() {
  PORT=$(free_udp_port)
  rm -f "$TMP/relay.out" # no stale "Listening" of an earlier relay for the wait below
  "$RELAY" --bind 127.0.0.1 --port "$PORT" --http-listen "" "$@" >"$TMP/relay.out" 2>"$TMP/relay.err" &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
  for _ in $(seq 1 50); do
    grep -q '^Listening on' "$TMP/relay.out" 2>/dev/null && break
    sleep 0.1
  done
  grep -q '^Listening on' "$TMP/relay.out" || fail "relay did not start"
  HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/relay.out")
  URL="https://127.0.0.1:$PORT"
}

# stop_relay: SIGTERM, must exit 0 within 1 s
stop_relay() {
  local t0 t1
  t0=$(date +%s%N)
  kill -TERM "$RELAY_PID"
  local rc=0
  for _ in $(seq 1 30); do kill -0 "$RELAY_PID" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$RELAY_PID" 2>/dev/null && fail "relay still running 1.5 s after SIGTERM"
  wait "$RELAY_PID" || rc=$?
  t1=$(date +%s%N)
  [ "$rc" = 0 ] || fail "relay exit code $rc after SIGTERM"
  STOP_MS=$(( (t1 - t0) / 1000000 ))
}

json_field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
