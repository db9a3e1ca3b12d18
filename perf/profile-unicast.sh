#!/usr/bin/env bash
# Profiles the relay during the unicast benchmark (2 sessions, 1000-byte
# frames, max rate) with perf (cpu-clock sampling: these VMs have no
# hardware counters) and DWARF call stacks, then draws the flame graph with
# perf/flamegraph.py. Not part of make test. Needs linux-perf (Debian).
#   perf/profile-unicast.sh [OUT_SVG]
set -euo pipefail
cd "$(dirname "$0")/.."
SVG=${1:-docs/flamegraph-unicast.svg}
command -v perf >/dev/null || { echo "perf missing: apt-get install linux-perf" >&2; exit 1; }
B=build
TMP=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$B/wtrelay --bind 127.0.0.1 --port "$PORT" --http-listen "" --log-level warn >"$TMP/out" 2>/dev/null &
RELAY=$!
trap 'kill $RELAY 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do grep -q '^Listening' "$TMP/out" && break; sleep 0.1; done
HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/out")
$B/wtbench --url "https://127.0.0.1:$PORT/prof" --cert-hash "$HASH" --sessions 2 --size 1000 \
  --duration 12 --relay-pid "$RELAY" >"$TMP/bench" &
BENCH=$!
sleep 3
perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$RELAY" -o "$TMP/perf.data" -- sleep 6 \
  2>/dev/null
wait $BENCH
head -8 "$TMP/bench"
perf script -i "$TMP/perf.data" 2>/dev/null | python3 perf/flamegraph.py --svg "$SVG" --top 25
echo "flame graph: $SVG"
