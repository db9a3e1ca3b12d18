#!/usr/bin/env bash
# Datagram loss on a client's link must not stall a VM's TCP. Topology
# (tests/netns/topo.sh): the relay bound to [::]; client host 1 on an MTU
# 1500 link with 2 % random loss each way (nftables), client host 2 on a
# clean MTU 1280 link; a wtrelay-tap on each, TAPs in VM namespaces; a test
# internet host. VM A (behind the lossy link) downloads 8 MiB through the
# TCP NAT and 8 MiB from VM B, and uploads 8 MiB through the TCP NAT. Each transfer must be byte-exact, finish
# within LOSS_BOUND_S seconds, and never go more than 2 s without a byte
# arriving (the stall meter of tcpxfer.py). Before the fix, a lost tail ACK
# with a full congestion window left ngtcp2 0.12.1 with no loss timer and
# the flow stopped for good (docs/architecture.md, "Loss recovery").
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
HERE="$(cd "$(dirname "$0")" && pwd)"
LOSS_PCT=${LOSS_PCT:-2}
LOSS_BOUND_S=${LOSS_BOUND_S:-60}
MAX_GAP_S=2
command -v python3 >/dev/null || { echo "FAIL: python3 missing (scripts/install-deps.sh)" >&2; exit 1; }

source "$HERE/topo.sh"
topo_init wl
topo_relay_host
topo_inet_host
topo_client_host 1 1500
topo_client_host 2 1280
topo_vm a
topo_vm b
topo_start_relay --egress-allow 198.18.0.0/15 --log-level debug # the counters at exit
topo_start_tap 1 vma "$NS_VMA" 52:54:00:aa:00:01 --configure
topo_start_tap 2 vmb "$NS_VMB" 52:54:00:bb:00:02 --configure
IP_A=$(topo_wait_ip "$NS_VMA" vma)
IP_B=$(topo_wait_ip "$NS_VMB" vmb)

head -c 8388608 /dev/urandom >"$TMP/blob"
want=$(sha256sum "$TMP/blob" | cut -d' ' -f1)
topo_bg "$NS_I" python3 "$HERE/tcpxfer.py" serve 198.18.0.2 8080 "$TMP/blob" >"$TMP/srv-inet.log" 2>&1
topo_bg "$NS_I" python3 "$HERE/tcpxfer.py" sink 198.18.0.2 8081 >"$TMP/sink-inet.log" 2>&1
topo_bg "$NS_VMB" python3 "$HERE/tcpxfer.py" serve "$IP_B" 8080 "$TMP/blob" >"$TMP/srv-vmb.log" 2>&1
topo_wait_listen "$NS_I" 8080
topo_wait_listen "$NS_I" 8081
topo_wait_listen "$NS_VMB" 8080
for _ in $(seq 30); do ip netns exec "$NS_VMA" ping -c 1 -W 1 "$IP_B" >/dev/null 2>&1 && break; done
ip netns exec "$NS_VMA" ping -c 1 -W 2 198.18.0.2 >/dev/null || fail "VM A cannot reach the internet host"
pass "VM A ($IP_A, client host 1) reaches VM B ($IP_B, client host 2, MTU 1280) and the internet host"

topo_loss 1 "$LOSS_PCT"
stalled() { # what the guest and the relay knew when a transfer did not finish
  ip netns exec "$NS_VMA" ss -tin >"$TMP/guest-ss.log" 2>&1 || true
  kill -TERM "$RELAY_PID" 2>/dev/null || true
  sleep 1
  fail "$1: no complete transfer within $LOSS_BOUND_S s under $LOSS_PCT % loss; relay: $(grep -o 'quic_queue_full=[0-9]*\|quic_anchors=[0-9]*\|tcp_[a-z_]*=[0-9]*' "$TMP/relay.err" | tr '\n' ' ')"
}
get() { # label addr out
  local out
  out=$(ip netns exec "$NS_VMA" timeout "$LOSS_BOUND_S" python3 "$HERE/tcpxfer.py" get "$2" 8080 "$TMP/$3") ||
    stalled "$1"
  read -r n sha secs gap <<<"$out"
  [ "$n" = 8388608 ] && [ "$sha" = "$want" ] || fail "$1: $n bytes, sha256 $sha"
  awk -v g="$gap" -v m="$MAX_GAP_S" 'BEGIN { exit !(g <= m) }' || fail "$1: stalled for $gap s (bound $MAX_GAP_S s)"
  pass "$1 under $LOSS_PCT % loss each way: 8 MiB byte-exact in $secs s, longest stall $gap s"
}
get "TCP NAT download (internet -> VM A)" 198.18.0.2 nat.bin
get "VM B -> VM A through the switch" "$IP_B" vm.bin
out=$(ip netns exec "$NS_VMA" timeout "$LOSS_BOUND_S" python3 "$HERE/tcpxfer.py" put 198.18.0.2 8081 "$TMP/blob") ||
  fail "TCP NAT upload: no complete transfer within $LOSS_BOUND_S s under $LOSS_PCT % loss"
read -r n sha secs <<<"$out"
[ "$n" = 8388608 ] && [ "$sha" = "$want" ] || fail "TCP NAT upload: the internet host saw $n bytes, sha256 $sha"
pass "TCP NAT upload (VM A -> internet) under $LOSS_PCT % loss each way: 8 MiB byte-exact in $secs s"
drops=$(topo_loss_drops 1)
[ "$drops" -gt 0 ] || fail "the loss rules dropped nothing"
pass "the link dropped $drops packets"

kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status on SIGTERM"
anchors=$(exit_counter quic_anchors)
[ "$anchors" -gt 0 ] || fail "the relay wrote no loss-recovery anchors"
pass "relay exits 0; quic_lost=$(exit_counter quic_lost) quic_anchors=$anchors"
