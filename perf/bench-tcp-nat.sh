#!/usr/bin/env bash
# TCP NAT throughput with iperf3, for docs/perf.md (not part of make test).
# A VM namespace (guest MTU 1500) on wtrelay-tap -> relay (QUIC over the
# relay namespace's loopback) -> host TCP socket -> a test internet host
# 198.18.0.2 in its own namespace on a veth. iperf3 5 s each direction,
# RUNS times, medians. Needs root, build/ (make) and iperf3.
#   perf/bench-tcp-nat.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
B=build
command -v iperf3 >/dev/null || { echo "iperf3 missing: apt-get install iperf3" >&2; exit 1; }
TMP=$(mktemp -d)
P="wb$$"
NS_R="${P}relay" NS_I="${P}inet" NS_A="${P}vm"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "$NS_R" "$NS_I" "$NS_A"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
for ns in "$NS_R" "$NS_I" "$NS_A"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "${P}r0" netns "$NS_R" type veth peer name "${P}i0" netns "$NS_I"
ip -n "$NS_R" addr add 198.18.0.1/24 dev "${P}r0"
ip -n "$NS_I" addr add 198.18.0.2/24 dev "${P}i0"
ip -n "$NS_R" link set "${P}r0" up
ip -n "$NS_I" link set "${P}i0" up
ip netns exec "$NS_I" iperf3 -s -D -B 198.18.0.2 --logfile "$TMP/iperf.log"
ip netns exec "$NS_R" "$B/wtrelay" --bind 127.0.0.1 --port 4433 --http-listen "" \
  --egress-allow 198.18.0.0/15 --log-level warn >"$TMP/relay.out" 2>"$TMP/relay.err" &
PIDS+=("$!")
for _ in $(seq 50); do grep -q '^Listening' "$TMP/relay.out" && break; sleep 0.1; done
HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/relay.out")
ip netns exec "$NS_R" "$B/wtrelay-tap" --url https://127.0.0.1:4433/bench --cert-hash "$HASH" \
  --tap vm0 --netns "$NS_A" --configure --log-level warn 2>"$TMP/tap.err" &
PIDS+=("$!")
for _ in $(seq 100); do ip -n "$NS_A" -4 addr show dev vm0 2>/dev/null | grep -q inet && break; sleep 0.1; done
sleep 0.5
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
echo "guest MTU $(ip -n "$NS_A" link show vm0 | grep -o 'mtu [0-9]*'), iperf3 -t 5, median of $RUNS"
run() { # label, extra iperf3 args
  local label=$1; shift
  for _ in $(seq "$RUNS"); do
    ip netns exec "$NS_A" iperf3 -c 198.18.0.2 -t 5 -J "$@" 2>/dev/null |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])'
  done | python3 -c '
import statistics, sys
v = [float(l) for l in sys.stdin if l.strip()]
print("%-34s median %.2f Gbit/s  (runs: %s)" % (sys.argv[1], statistics.median(v) / 1e9,
      " ".join("%.2f" % (x / 1e9) for x in v)))' "$label"
}
run "TCP guest -> internet host"
run "TCP internet host -> guest" -R
