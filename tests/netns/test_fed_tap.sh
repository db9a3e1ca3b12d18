#!/usr/bin/env bash
# Two real kernels, one per relay, in one room: relays A (port 4433) and B
# (port 4434) run in the relay host with two workers each and share a
# nats-server there (127.0.0.1, JetStream in a temporary directory). VM a's
# wtrelay-tap connects to A, VM b's to B; their addresses come from the
# leases the relays share (JetStream key-value): one pool, distinct
# addresses, the Assigned address equal to DHCP's. Across NATS: ARP and ping between the VMs, 10 MiB
# of TCP between them byte-exact; each VM pings its gateway 10.0.2.2 (the
# one of its own relay: gateway frames never cross the uplink) and reaches
# the test internet host through its own relay's NAT (ping, a 4 MiB TCP
# download), which each relay's NAT counters show. SIGTERM exits 0.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
source "$(dirname "$0")/topo.sh"
topo_need_tap
topo_need ping python3 curl
[ -x /usr/sbin/nats-server ] || fail "nats-server missing (Debian package nats-server; scripts/install-deps.sh)"
topo_init wf
topo_relay_host
topo_inet_host
# VM b's client host sits behind an MTU 1280 link (its 1514-byte frames
# travel as chunks) with random loss during the VM-to-VM transfer
topo_vm_pair 1500 1280
FED_LOSS_PCT=${FED_LOSS_PCT:-1}
NS_A=$NS_VMA NS_B=$NS_VMB

ip netns exec "$NS_R" /usr/sbin/nats-server -js -sd "$TMP/js" -a 127.0.0.1 -p 4222 \
  >"$TMP/nats.log" 2>&1 &
PIDS+=("$!")
topo_wait_listen "$NS_R" 4222 || fail "nats-server did not listen"
topo_cert

start_relay() { # name port ops-port
  ip netns exec "$NS_R" "$BUILD_DIR/wtrelay" --port "$2" --http-listen "127.0.0.1:$3" \
    --cert-pem "$TMP/cert.pem" --key-pem "$TMP/key.pem" --workers 2 \
    --egress-allow 198.18.0.0/15 --dns-upstream 198.18.0.2 \
    --nats nats://127.0.0.1:4222 --relay-id "$1" \
    >"$TMP/relay-$1.out" 2>>"$TMP/relay-$1.err" &
  PIDS+=("$!")
  printf -v "RELAY_$1" '%s' "$!"
  local _
  for _ in $(seq 50); do grep -q '^Listening' "$TMP/relay-$1.out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^Listening' "$TMP/relay-$1.out" || fail "relay $1 did not start: $(cat "$TMP/relay-$1.err")"
}
start_relay A 4433 8433
start_relay B 4434 8434
HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/relay-A.out")

metric() { # ops-port series -> value (0 when absent)
  ip netns exec "$NS_R" curl -s --max-time 3 "http://127.0.0.1:$1/metrics" |
    awk -v s="$2" 'index($0, s " ") == 1 {print $2; found=1} END {if (!found) print 0}'
}
start_tap() { # client tap vmns mac relay-port
  ip netns exec "${TOPO_P}c$1" "$BUILD_DIR/wtrelay-tap" --transport wt --url "https://10.81.$1.1:$5/lan" \
    --cert-hash "$HASH" --tap "$2" --netns "$3" --mac "$4" --configure --heartbeat 2 \
    2>>"$TMP/tap-$2.err" &
  PIDS+=("$!")
}
start_tap 1 vma "$NS_A" 52:54:00:fa:00:01 4433
start_tap 2 vmb "$NS_B" 52:54:00:fb:00:01 4434
IP_A=$(topo_wait_ip "$NS_A" vma)
IP_B=$(topo_wait_ip "$NS_B" vmb)
in_range() { # ip lo hi (last octet)
  local o=${1##*.}
  [ "${1%.*}" = 10.0.2 ] && [ "$o" -ge "$2" ] && [ "$o" -le "$3" ]
}
in_range "$IP_A" 10 254 || fail "vma got $IP_A, outside the pool"
in_range "$IP_B" 10 254 || fail "vmb got $IP_B, outside the pool"
[ "$IP_A" != "$IP_B" ] || fail "both VMs got $IP_A"
[ "$(metric 8433 'wtrelay_fed_lease_claims_total{result="address"}')" -ge 1 ] &&
  [ "$(metric 8434 'wtrelay_fed_lease_claims_total{result="address"}')" -ge 1 ] ||
  fail "the addresses were not claimed in the shared leases"
pass "vma=$IP_A from relay A, vmb=$IP_B from relay B (one pool, shared leases)"
for _ in $(seq 50); do
  [ "$(metric 8433 wtrelay_fed_rooms)" = 1 ] && [ "$(metric 8434 wtrelay_fed_rooms)" = 1 ] && break
  sleep 0.1
done
[ "$(metric 8433 wtrelay_fed_rooms)" = 1 ] || fail "relay A did not subscribe to the room"

ping_ok() { # from-netns to-ip tries
  for _ in $(seq "$3"); do ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0; done
  return 1
}
ping_ok "$NS_A" "$IP_B" 10 || fail "ping $NS_A -> $IP_B across the relays"
out=$(ip netns exec "$NS_B" ping -c 5 -i 0.2 -W 2 "$IP_A") || fail "ping $NS_B -> $IP_A: $out"
! echo "$out" | grep -q DUP || fail "duplicate echo replies across the relays: $out"
pass "the VM kernels ARP and ping each other across two relays: $(echo "$out" | grep -o 'rtt.*')"
mac_b=$(ip -n "$NS_A" neigh show "$IP_B" | awk '{print $5}')
[ "$mac_b" = 52:54:00:fb:00:01 ] || fail "vma resolved $IP_B to '$mac_b'"
pass "ARP across the relays: vma has $IP_B at $mac_b"

for ns in "$NS_A" "$NS_B"; do
  out=$(ip netns exec "$ns" ping -c 3 -i 0.2 -W 2 10.0.2.2) || fail "ping gateway from $ns: $out"
  ! echo "$out" | grep -q DUP || fail "two gateways answered $ns: $out"
done
pass "each VM pings its gateway 10.0.2.2, one answer each (its own relay's)"

topo_loss 2 "$FED_LOSS_PCT"
topo_tcp_put "$NS_A" "$NS_B" "$IP_B" 5001 10485760 90
drops=$(topo_loss_drops 2)
topo_loss 2 0
[ "$FED_LOSS_PCT" = 0 ] || [ "$drops" -gt 0 ] || fail "the loss rules dropped nothing"
pass "10 MiB over TCP from vma (relay A) to vmb (relay B, MTU 1280 link, $FED_LOSS_PCT % loss each way: $drops datagrams dropped), exact bytes, $TOPO_XFER_S s"
[ "$(metric 8433 'wtrelay_fed_frames_total{dir="out"}')" -gt 1000 ] ||
  fail "relay A published too few frames: $(metric 8433 'wtrelay_fed_frames_total{dir="out"}')"
[ "$(metric 8434 'wtrelay_fed_frames_total{dir="in"}')" -gt 1000 ] ||
  fail "relay B switched too few frames from NATS"
[ "$(metric 8433 wtrelay_fed_directed_total)" -gt 1000 ] ||
  fail "unicast to vmb did not go to relay B's own subject"

# the internet host: a 4 MiB download server
topo_tcp_serve "$NS_I" 198.18.0.2 8080 4194304
for pair in "$NS_A 8433" "$NS_B 8434"; do
  set -- $pair
  ns=$1 port=$2 other=$((8433 + 8434 - $2))
  out=$(ip netns exec "$ns" ping -c 3 -i 0.2 -W 2 198.18.0.2) || fail "ping inet from $ns: $out"
  before_own=$(metric "$port" 'wtrelay_nat_tcp_connections_opened_total')
  before_other=$(metric "$other" 'wtrelay_nat_tcp_connections_opened_total')
  topo_tcp_get "$ns" 198.18.0.2 8080
  sleep 0.3
  [ "$(metric "$port" 'wtrelay_nat_tcp_connections_opened_total')" -gt "$before_own" ] ||
    fail "the download from $ns did not go through its own relay's NAT (ops port $port)"
  [ "$(metric "$other" 'wtrelay_nat_tcp_connections_opened_total')" = "$before_other" ] ||
    fail "the download from $ns went through the other relay's NAT"
done
pass "each VM reaches the internet host through its own relay's NAT: ping, 4 MiB TCP"

for r in A B; do
  pid_var="RELAY_$r"
  kill -TERM "${!pid_var}"
  wait "${!pid_var}" || fail "relay $r exit status on SIGTERM"
done
pass "SIGTERM: both relays exit 0"
