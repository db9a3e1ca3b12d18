#!/usr/bin/env bash
# Inbound forwarding against the outbound TCP NAT, in the same run (not
# part of make test): 64 MiB byte-exact (tcpxfer.py) each way between a
# server or sink in the VM namespace (wtrelay-tap, room /lan) and the test
# internet host (198.18.0.2), once through --forward on the relay host's
# 198.18.0.1 and once through the NAT from the VM; RUNS repetitions
# interleaved, medians and the ratios forward/outbound per direction.
# Needs root and build/ (make). Run under the bench lock:
#   flock /tmp/wtrelay-bench.lock perf/bench-forward.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
BUILD_DIR=${BUILD_DIR:-build}
HERE=$PWD/tests/netns
source "$HERE/topo.sh"
topo_init fb
topo_relay_host
topo_inet_host
topo_client_host 1 1500
topo_vm a
MAC=52:54:00:aa:00:07
topo_start_relay --workers 1 --egress-allow 198.18.0.0/15 \
  --forward "tcp:8081=[$MAC]:5002@/lan" --forward "tcp:8082=[$MAC]:5003@/lan"
topo_start_tap 1 vma "$NS_VMA" $MAC --configure
IP_A=$(topo_wait_ip "$NS_VMA" vma)
echo "VM at $IP_A"
N=67108864
head -c $N /dev/urandom >"$TMP/blob"
want=$(sha256sum "$TMP/blob" | cut -d' ' -f1)
topo_bg "$NS_VMA" python3 "$HERE/tcpxfer.py" serve 0.0.0.0 5002 "$TMP/blob" >/dev/null 2>&1
topo_bg "$NS_VMA" python3 "$HERE/tcpxfer.py" sink 0.0.0.0 5003 >/dev/null 2>&1
topo_bg "$NS_I" python3 "$HERE/tcpxfer.py" serve 198.18.0.2 8080 "$TMP/blob" >/dev/null 2>&1
topo_bg "$NS_I" python3 "$HERE/tcpxfer.py" sink 198.18.0.2 9090 >/dev/null 2>&1
for p in 5002 5003; do topo_wait_listen "$NS_VMA" $p; done
for p in 8080 9090; do topo_wait_listen "$NS_I" $p; done
# one transfer: ns mode addr port -> seconds (fails unless byte-exact)
xfer() {
  topo_tcp_run "$1" 120 $N "$want" "$2 $3:$4" "$2" "$3" "$4" "$TMP/got"
  echo "$TOPO_XFER_S"
}
fwd_out=() nat_out=() fwd_in=() nat_in=()
for r in $(seq "$RUNS"); do
  fwd_out+=("$(xfer "$NS_I" get 198.18.0.1 8081)")   # VM -> internet through the forward
  nat_out+=("$(topo_tcp_run "$NS_VMA" 120 $N "$want" put put 198.18.0.2 9090 "$TMP/blob"; echo "$TOPO_XFER_S")")
  topo_tcp_run "$NS_I" 120 $N "$want" "put fwd" put 198.18.0.1 8082 "$TMP/blob"
  fwd_in+=("$TOPO_XFER_S")                          # internet -> VM through the forward
  nat_in+=("$(xfer "$NS_VMA" get 198.18.0.2 8080)")  # internet -> VM through the NAT
  echo "run $r: VM->internet forward ${fwd_out[-1]} s, NAT ${nat_out[-1]} s;" \
    "internet->VM forward ${fwd_in[-1]} s, NAT ${nat_in[-1]} s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
report() { # what forward-median nat-median
  awk -v d="$1" -v f="$2" -v n="$3" -v b=$N 'BEGIN {
    printf "%s: forward %.3f s (%.0f Mbit/s), outbound NAT %.3f s (%.0f Mbit/s), forward/NAT time %.2f\n",
      d, f, b * 8 / f / 1e6, n, b * 8 / n / 1e6, f / n }'
}
report "VM->internet" "$(median "${fwd_out[@]}")" "$(median "${nat_out[@]}")"
report "internet->VM" "$(median "${fwd_in[@]}")" "$(median "${nat_in[@]}")"
