#!/usr/bin/env bash
# The WebSocket fallback beside WebTransport in one run: unicast between two
# sessions (wtbench --pattern pair, 1000-byte frames, maximum rate) over
# each transport, alternating, RUNS repetitions of DUR seconds, a fresh
# relay (--workers 1) per run; medians of delivered frames/s, relay CPU per
# delivered frame and p50/p99 latency, and the ratios ws/wt.
#   perf/bench-ws.sh [RUNS] [DUR]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5} DUR=${2:-4}
B=${BUILD_DIR:-build}
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
port=$((20000 + RANDOM % 20000))
: >"$TMP/runs"
for rep in $(seq "$RUNS"); do
  for t in wt ws; do
    "$B/wtrelay" --bind 127.0.0.1 --port "$port" --http-listen "" --workers 1 --log-level warn \
      >"$TMP/relay.out" 2>"$TMP/relay.err" &
    pid=$!
    for _ in $(seq 50); do grep -q '^Listening' "$TMP/relay.out" && break; sleep 0.1; done
    hash=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/relay.out")
    "$B/wtbench" --url "https://127.0.0.1:$port/b" --cert-hash "$hash" --sessions 2 --pattern pair \
      --size 1000 --duration "$DUR" --relay-pid "$pid" --transport "$t" 2>/dev/null | grep '^{' |
      sed "s/^/$t $rep /" >>"$TMP/runs"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    port=$((port + 1))
  done
done
python3 - "$TMP/runs" <<'PY'
import json, statistics as st, sys
runs = {"wt": [], "ws": []}
for line in open(sys.argv[1]):
    t, rep, js = line.split(" ", 2)
    runs[t].append(json.loads(js))
def med(t, k):
    return st.median(r[k] for r in runs[t])
print("unicast, 2 sessions, 1000 B, max rate, relay --workers 1; medians of %d" % len(runs["wt"]))
print("%-14s %12s %14s %10s %10s" % ("transport", "delivered/s", "relay us/frame", "p50 us", "p99 us"))
for t, name in (("wt", "WebTransport"), ("ws", "WebSocket")):
    print("%-14s %12.0f %14.2f %10.0f %10.0f" % (name, med(t, "delivered_fps"), med(t, "relay_us_per_frame"),
                                                  med(t, "lat_p50_us"), med(t, "lat_p99_us")))
print("ws/wt: delivered %.2f, relay CPU per frame %.2f" % (
    med("ws", "delivered_fps") / med("wt", "delivered_fps"),
    med("ws", "relay_us_per_frame") / med("wt", "relay_us_per_frame")))
PY
