#!/usr/bin/env bash
# Profiles the relay during the unicast benchmark (2 sessions, 1000-byte
# frames) with perf (cpu-clock sampling: these VMs have no hardware
# counters) and DWARF call stacks, then draws the flame graph with
# perf/flamegraph.py and prints the relay's CPU per delivered frame split
# by where it goes (GnuTLS, ngtcp2, our code, libc, the kernel's UDP path,
# waiting and waking on the ring). Not part of make test. Needs linux-perf
# (Debian).
#   perf/profile-unicast.sh [--rate FRAMES_PER_S | --half] [OUT_SVG]
# Without an option the load generator sends as fast as it can (the
# maximum rate). --rate offers that many frames/s. --half profiles twice
# in the same run: at the maximum rate into OUT_SVG, then at half of the
# rate the first run delivered into OUT_SVG with -half before .svg.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=0 HALF=0
case ${1:-} in
--rate)
  RATE=$2
  shift 2
  ;;
--half)
  HALF=1
  shift
  ;;
esac
SVG=${1:-docs/flamegraph-unicast.svg}
command -v perf >/dev/null || { echo "perf missing: apt-get install linux-perf" >&2; exit 1; }
B=build
TMP=$(mktemp -d)
RELAY=
trap '[ -z "$RELAY" ] || kill $RELAY 2>/dev/null; rm -rf "$TMP"' EXIT

# profile RATE SVG: one relay, 12 s of load, 6 s of samples in the middle
profile() {
  local rate=$1 svg=$2 port hash bench
  port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  $B/wtrelay --bind 127.0.0.1 --port "$port" --http-listen "" --log-level warn >"$TMP/out" 2>/dev/null &
  RELAY=$!
  for _ in $(seq 50); do grep -q '^Listening' "$TMP/out" && break; sleep 0.1; done
  hash=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/out")
  $B/wtbench --url "https://127.0.0.1:$port/prof" --cert-hash "$hash" --sessions 2 --size 1000 \
    --rate "$rate" --duration 12 --relay-pid "$RELAY" >"$TMP/bench" &
  bench=$!
  sleep 3
  perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$RELAY" -o "$TMP/perf.data" -- sleep 6 \
    2>/dev/null
  wait $bench
  kill $RELAY 2>/dev/null || true
  wait $RELAY 2>/dev/null || true
  RELAY=
  # delivered frames/s and the relay's share of a core, from wtbench
  DELIVERED=$(awk '/^  delivered  /{print $2}' "$TMP/bench")
  local cpu ns
  cpu=$(awk '/^  relay  /{print $2}' "$TMP/bench")
  ns=$(python3 -c "import sys; print(float(sys.argv[1]) / 100 / float(sys.argv[2]) * 1e9)" "$cpu" "$DELIVERED")
  echo "== offered: $([ "$rate" = 0 ] && echo "maximum" || echo "$rate frames/s");" \
    "delivered $DELIVERED frames/s, relay $cpu % of a core: $(printf %.0f "$ns") ns per delivered frame"
  grep -E '^  (relay|p50|p99|latency)' "$TMP/bench" || true
  perf script -i "$TMP/perf.data" 2>/dev/null |
    python3 perf/flamegraph.py --svg "$svg" --top 25 --per-frame-ns "$ns"
  echo "flame graph: $svg"
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
$B/limitprobe | sed '$d'
profile "$RATE" "$SVG"
if [ "$HALF" = 1 ]; then
  profile "$(python3 -c "import sys; print(int(float(sys.argv[1]) / 2))" "$DELIVERED")" "${SVG%.svg}-half.svg"
fi
