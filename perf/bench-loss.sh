#!/usr/bin/env bash
# Guest TCP through the relay across a real link with random loss, for
# docs/perf.md (not part of make test). Topology from tests/netns/topo.sh:
# the relay host; client host 1 (MTU 1500, LOSS % random loss each way on
# its link, nftables) with VM A behind wtrelay-tap; client host 2 (clean,
# MTU 1500) with VM B; a test internet host. For each loss level, RUNS
# transfers of SIZE_MB each, medians of goodput in Mbit/s:
#   inet->A   download from the internet host through the TCP NAT
#   A->inet   upload through the TCP NAT
#   B->A      VM to VM through the switch (the guests' own TCP end to end)
#   veth      reference: the same Linux TCP between two namespaces on a plain
#             veth with the same loss each way (what TCP itself achieves)
# Needs root and build/ (make).
#   perf/bench-loss.sh [RUNS] [SIZE_MB] [LOSS LEVELS...]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SIZE_MB=${2:-8}
shift 2 2>/dev/null || shift $#
LEVELS=("$@")
[ ${#LEVELS[@]} -gt 0 ] || LEVELS=(0 1 2 5)
BUILD_DIR=${BUILD_DIR:-build}
XFER="$PWD/tests/netns/tcpxfer.py"
LIMIT=${LIMIT:-120} # seconds per transfer; a stalled run counts as 0

source tests/netns/topo.sh
topo_init bl
topo_relay_host
topo_inet_host
topo_vm_pair 1500 1500
# the plain-veth reference: two namespaces on one link, loss on one side
topo_ns refc
topo_ns refs
ip link add "${TOPO_P}x0" netns "${TOPO_P}refc" type veth peer name "${TOPO_P}x1" netns "${TOPO_P}refs"
ip -n "${TOPO_P}refc" addr add 10.82.0.2/30 dev "${TOPO_P}x0"
ip -n "${TOPO_P}refs" addr add 10.82.0.1/30 dev "${TOPO_P}x1"
ip -n "${TOPO_P}refc" link set "${TOPO_P}x0" up
ip -n "${TOPO_P}refs" link set "${TOPO_P}x1" up

topo_start_relay --egress-allow 198.18.0.0/15 --log-level warn
topo_start_tap 1 vma "$NS_VMA" 52:54:00:aa:00:01 --configure --log-level warn
topo_start_tap 2 vmb "$NS_VMB" 52:54:00:bb:00:02 --configure --log-level warn
IP_A=$(topo_wait_ip "$NS_VMA" vma)
IP_B=$(topo_wait_ip "$NS_VMB" vmb)
head -c $((SIZE_MB * 1048576)) /dev/urandom >"$TMP/blob"
topo_bg "$NS_I" python3 "$XFER" serve 198.18.0.2 8080 "$TMP/blob" >/dev/null 2>&1
topo_bg "$NS_I" python3 "$XFER" sink 198.18.0.2 8081 >/dev/null 2>&1
topo_bg "$NS_VMB" python3 "$XFER" serve "$IP_B" 8080 "$TMP/blob" >/dev/null 2>&1
topo_bg "${TOPO_P}refs" python3 "$XFER" serve 10.82.0.1 8080 "$TMP/blob" >/dev/null 2>&1
sleep 0.5
for _ in $(seq 30); do ip netns exec "$NS_VMA" ping -c 1 -W 1 "$IP_B" >/dev/null 2>&1 && break; done

ref_loss() { # pct: loss each way on the reference link
  ip netns exec "${TOPO_P}refc" nft delete table inet refloss 2>/dev/null || true
  [ "$1" = 0 ] && return 0
  ip netns exec "${TOPO_P}refc" nft -f - <<NFT
table inet refloss {
  chain o { type filter hook output priority 0; oifname "${TOPO_P}x0" numgen random mod 100 < $1 drop; }
  chain i { type filter hook input priority 0; iifname "${TOPO_P}x0" numgen random mod 100 < $1 drop; }
}
NFT
}
mbps() { # seconds -> Mbit/s for SIZE_MB
  awk -v s="$1" -v m="$SIZE_MB" 'BEGIN { printf "%.0f", m * 8 * 1.048576 / s }'
}
one() { # ns kind addr -> Mbit/s, 0 when it did not finish
  local out secs
  case $2 in
  get) out=$(ip netns exec "$1" timeout "$LIMIT" python3 "$XFER" get "$3" 8080 /dev/null) || { echo 0; return; }
    secs=$(echo "$out" | awk '{print $3}') ;;
  put) out=$(ip netns exec "$1" timeout "$LIMIT" python3 "$XFER" put "$3" 8081 "$TMP/blob") || { echo 0; return; }
    secs=$(echo "$out" | awk '{print $3}') ;;
  esac
  mbps "$secs"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $SIZE_MB MiB per transfer, medians of $RUNS"
printf '%-8s %10s %10s %10s %10s\n' "loss" "inet->A" "A->inet" "B->A" "veth"
for loss in "${LEVELS[@]}"; do
  topo_loss 1 "$loss"
  ref_loss "$loss"
  d=() u=() v=() r=()
  for _ in $(seq "$RUNS"); do
    d+=("$(one "$NS_VMA" get 198.18.0.2)")
    u+=("$(one "$NS_VMA" put 198.18.0.2)")
    v+=("$(one "$NS_VMA" get "$IP_B")")
    r+=("$(one "${TOPO_P}refc" get 10.82.0.1)")
  done
  printf '%-8s %10s %10s %10s %10s\n' "${loss}%" "$(median "${d[@]}")" "$(median "${u[@]}")" \
    "$(median "${v[@]}")" "$(median "${r[@]}")"
  echo "  runs: inet->A ${d[*]} | A->inet ${u[*]} | B->A ${v[*]} | veth ${r[*]}"
done
