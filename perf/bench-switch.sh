#!/usr/bin/env bash
# Frame-path benchmark: starts build/wtrelay on a free loopback port and runs
# build/wtbench over a small matrix, RUNS times each, printing the median of
# each figure. Not part of make test. Usage:
#   perf/bench-switch.sh [RUNS] [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
DUR=${2:-5}
B=build
PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
OUT=$(mktemp)
$B/wtrelay --bind 127.0.0.1 --port "$PORT" --log-level warn --max-sessions-per-ip 100000 >"$OUT" 2>/dev/null &
RELAY=$!
trap 'kill $RELAY 2>/dev/null; rm -f "$OUT"' EXIT
for _ in $(seq 50); do grep -q '^Listening' "$OUT" && break; sleep 0.1; done
HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$OUT")
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
echo "relay and wtbench on the same machine, loopback; median of $RUNS runs of ${DUR}s"
run() { # label, wtbench args...
  local label=$1; shift
  for _ in $(seq "$RUNS"); do
    $B/wtbench --url "https://127.0.0.1:$PORT/bench" --cert-hash "$HASH" --duration "$DUR" \
      --relay-pid "$RELAY" "$@" | tail -1
  done | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
m = lambda k: statistics.median(r[k] for r in rows)
print(f"%-28s offered %9.0f/s delivered %9.0f/s loss %5.2f%% p50 %7.0fus p99 %7.0fus relay cpu %5.1f%% rss %6.0f KiB" % (
  sys.argv[1], m("offered_fps"), m("delivered_fps"), m("loss_pct"), m("lat_p50_us"), m("lat_p99_us"),
  m("relay_cpu_pct"), m("relay_rss_kb")))' "$label"
}
run "pair 2 x 100 B max"      --sessions 2 --size 100
run "pair 2 x 1000 B max"     --sessions 2 --size 1000
run "pair 2 x 1400 B max"     --sessions 2 --size 1400
run "pair 2 x 1514 B (chunked)" --sessions 2 --size 1514
run "pair 200 x 1000 B max"   --sessions 200 --size 1000
run "echo 2 x 100 B 10k/s"    --sessions 2 --pattern echo --size 100 --rate 10000
run "broadcast 20 x 500 B 5k/s" --sessions 20 --pattern broadcast --size 500 --rate 5000
