#!/usr/bin/env bash
# Frame-path benchmark for docs/perf.md. For each configuration it starts a
# fresh build/wtrelay on a free loopback port, runs build/wtbench RUNS times
# (medians are printed), then stops the relay and reads its own io counters
# (datagrams per recvmsg, packets per sendmsg) from its exit log.
# Not part of make test. Usage (after `make`):
#   perf/bench-switch.sh [RUNS] [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
DUR=${2:-5}
B=build
TMP=$(mktemp -d)
RELAY=""
trap '[ -n "$RELAY" ] && kill $RELAY 2>/dev/null; rm -rf "$TMP"' EXIT

relay_start() {
  PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  $B/wtrelay --bind 127.0.0.1 --port "$PORT" --http-listen "" --log-level info --max-sessions 10500 \
    --max-sessions-per-ip 10500 --max-client-sessions-per-room 10500 \
    --max-client-addrs-per-room 65536 --flood-rate 0 >"$TMP/out" 2>"$TMP/err" &
  RELAY=$!
  for _ in $(seq 50); do grep -q '^Listening' "$TMP/out" && break; sleep 0.1; done
  HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/out")
}
relay_stop() { # prints the relay's batching
  kill -TERM "$RELAY"
  wait "$RELAY" || true
  RELAY=""
  python3 - "$TMP/err" <<'PY'
import re, sys
line = [l for l in open(sys.argv[1]) if 'msg="io counters"' in l][-1]
kv = dict(re.findall(r"(\w+)=(\d+)", line))
g = lambda k: int(kv.get(k, 0))
print("    relay batching: %.2f datagrams/recvmsg, %.2f packets/sendmsg (%d GSO sendmsg of %d)" % (
    g("rx_datagrams") / max(g("rx_completions"), 1), g("tx_packets") / max(g("tx_msgs"), 1),
    g("tx_gso_msgs"), g("tx_msgs")))
PY
}
bench() { # label, wtbench args... ; sets MEDIAN_FPS
  local label=$1; shift
  for _ in $(seq "$RUNS"); do
    $B/wtbench --url "https://127.0.0.1:$PORT/bench" --cert-hash "$HASH" --duration "$DUR" \
      --relay-pid "$RELAY" "$@" | tail -1
  done >"$TMP/runs"
  MEDIAN_FPS=$(python3 - "$label" "$TMP/runs" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
m = lambda k: statistics.median(r[k] for r in rows)
cpu = m("relay_cpu_pct")
per_core = m("delivered_fps") / (cpu / 100) if cpu > 0 else 0
print("%-34s offered %8.0f/s delivered %8.0f/s (%8.0f/s per relay core) loss %5.2f%%"
      " p50 %6.0fus p99 %6.0fus relay cpu %5.1f%% rss %7.0f KiB client %.1f dg/recvmsg %.1f pkt/sendmsg" % (
    sys.argv[1], m("offered_fps"), m("delivered_fps"), per_core, m("loss_pct"), m("lat_p50_us"),
    m("lat_p99_us"), cpu, m("relay_rss_kb"), m("client_rx_per_recvmsg"), m("client_tx_per_sendmsg")),
    file=sys.stderr)
print(int(m("delivered_fps")))
PY
)
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
echo "relay and wtbench share the machine (loopback); medians of $RUNS runs of ${DUR}s"

relay_start; bench "unicast, 2 sessions, 1000 B, max" --sessions 2 --size 1000; MAX=$MEDIAN_FPS; relay_stop
relay_start; bench "unicast, 2 sessions, 1000 B, half max" --sessions 2 --size 1000 --rate $((MAX / 2)); relay_stop
relay_start; bench "unicast, 2 sessions, 100 B, max" --sessions 2 --size 100; relay_stop
relay_start; bench "unicast, 2 sessions, 1514 B chunked, max" --sessions 2 --size 1514; relay_stop
relay_start; bench "pairwise, 100 sessions, 1000 B, max" --sessions 100 --size 1000; relay_stop
relay_start; bench "broadcast, 50-port room, 500 B, max" --sessions 50 --pattern broadcast --size 500; relay_stop
relay_start; bench "echo RTT, 2 sessions, 100 B, 10k/s" --sessions 2 --pattern echo --size 100 --rate 10000; relay_stop
for n in 1000 10000; do
  relay_start
  $B/wtbench --url "https://127.0.0.1:$PORT/idle" --cert-hash "$HASH" --sessions $n --pattern idle \
    --duration 2 --relay-pid "$RELAY" | sed -n '2,3p'
  relay_stop
done
