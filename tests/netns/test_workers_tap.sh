#!/usr/bin/env bash
# Two real kernels whose sessions sit on different workers of one relay
# (--workers 2): each VM namespace is bridged by its own wtrelay-tap on its
# own client host; the second tap is restarted (new source port, new MAC)
# until the kernel's 4-tuple hash put it on the other worker
# (wtrelay_worker_sessions on /metrics). Then across the room's two copies
# (uplink ports and worker rings): ARP and ping between the VMs, 8 MiB of
# TCP between them byte-exact; each VM pings its gateway (its worker's
# copy answers) and reaches the test internet host through its worker's
# NAT: ping, UDP echo, a 4 MiB TCP download. SIGTERM exits 0.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
source "$(dirname "$0")/topo.sh"
topo_need_tap
topo_need ping python3 curl
topo_init ww
topo_relay_host
topo_inet_host
topo_vm_pair 1500 1500
NS_A=$NS_VMA NS_B=$NS_VMB
topo_inet_servers --echo 198.18.0.2:7
# ICMP_MODE=raw (test_workers_tap_raw.sh): ping sockets refused, so every
# worker's ICMP NAT uses a raw socket that sees every echo reply; the echo
# ids are split per worker, so each takes only its own
[ "${ICMP_MODE:-dgram}" = raw ] && ip netns exec "$NS_R" sysctl -qw net.ipv4.ping_group_range="1 0"
topo_start_relay --workers 2 --http-listen 127.0.0.1:8433 --egress-allow 198.18.0.0/15 \
  --dns-upstream 198.18.0.2
if [ "${ICMP_MODE:-dgram}" = raw ]; then
  [ "$(grep -c 'ICMP NAT uses a raw socket' "$TMP/relay.err")" = 2 ] ||
    fail "expected the raw-socket ICMP NAT on both workers"
  pass "ping_group_range closed: both workers' ICMP NAT use a raw socket"
fi

metric() { # series -> value (0 when absent)
  ip netns exec "$NS_R" curl -s --max-time 3 http://127.0.0.1:8433/metrics |
    awk -v s="$1" 'index($0, s " ") == 1 {print $2; found=1} END {if (!found) print 0}'
}
sessions() { metric "wtrelay_worker_sessions{worker=\"$1\"}"; }
ping_ok() { # from-netns to-ip tries
  for _ in $(seq "$3"); do ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0; done
  return 1
}

topo_start_tap 1 vma "$NS_A" 52:54:00:aa:00:01 --configure --heartbeat 2
IP_A=$(topo_wait_ip "$NS_A" vma)
placed=""
for k in 1 2 3 4 5 6 7 8 9; do
  topo_start_tap 2 vmb "$NS_B" "52:54:00:bb:00:0$k" --configure --heartbeat 2
  TAP_B=${PIDS[-1]}
  IP_B=$(topo_wait_ip "$NS_B" vmb)
  for _ in $(seq 30); do [ $(($(sessions 0) + $(sessions 1))) = 2 ] && break; sleep 0.1; done
  if [ "$(sessions 0)" = 1 ] && [ "$(sessions 1)" = 1 ]; then
    placed=$k
    break
  fi
  kill -TERM "$TAP_B"
  wait "$TAP_B" 2>/dev/null || true
  for _ in $(seq 50); do [ $(($(sessions 0) + $(sessions 1))) = 1 ] && break; sleep 0.1; done
done
[ -n "$placed" ] || fail "the second tap never landed on the other worker in 9 tries"
pass "vma=$IP_A and vmb=$IP_B on different workers (try $placed): one session on each"
[ "$IP_A" != "$IP_B" ] || fail "both VMs got $IP_A (one pool per room)"

ping_ok "$NS_A" "$IP_B" 10 || fail "ping $NS_A -> $IP_B"
out=$(ip netns exec "$NS_B" ping -c 5 -i 0.2 -W 2 "$IP_A") || fail "ping $NS_B -> $IP_A: $out"
pass "the VM kernels ARP and ping each other across workers: $(echo "$out" | grep -o 'rtt.*')"
for ns in "$NS_A" "$NS_B"; do
  out=$(ip netns exec "$ns" ping -c 2 -i 0.2 -W 2 10.0.2.2) || fail "ping gateway from $ns: $out"
done
pass "each VM pings its gateway 10.0.2.2"

topo_tcp_put "$NS_A" "$NS_B" "$IP_B" 5001 8388608
pass "8 MiB over TCP between the VMs across workers, exact bytes"
[ "$(metric 'wtrelay_worker_ring_frames_total{worker="0",dir="out"}')" -gt 0 ] &&
  [ "$(metric 'wtrelay_worker_ring_frames_total{worker="1",dir="out"}')" -gt 0 ] ||
  fail "frames did not cross the worker rings both ways"

# the internet host: a 4 MiB download server
topo_tcp_serve "$NS_I" 198.18.0.2 8080 4194304
ip netns exec "$NS_A" ping -c 20 -i 0.05 -W 2 198.18.0.2 >"$TMP/ping-a.log" 2>&1 &
PING_A=$!
ip netns exec "$NS_B" ping -c 20 -i 0.05 -W 2 198.18.0.2 >"$TMP/ping-b.log" 2>&1 ||
  fail "pings from $NS_B at the same time as $NS_A's: $(tail -2 "$TMP/ping-b.log")"
wait "$PING_A" || fail "pings from $NS_A at the same time as $NS_B's: $(tail -2 "$TMP/ping-a.log")"
grep -q ' 0% packet loss' "$TMP/ping-a.log" && grep -q ' 0% packet loss' "$TMP/ping-b.log" ||
  fail "echo replies lost or stolen: $(grep loss "$TMP/ping-a.log" "$TMP/ping-b.log")"
! grep -q 'DUP' "$TMP/ping-a.log" "$TMP/ping-b.log" || fail "duplicate echo replies"
pass "both VMs ping the internet host at once, each gets exactly its 20 replies"
for ns in "$NS_A" "$NS_B"; do
  echo_out=$(ip netns exec "$ns" timeout 10 python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b"hello", ("198.18.0.2", 7)); d, _ = s.recvfrom(4096); print(d.decode())') ||
    fail "UDP echo from $ns"
  [ "$echo_out" = echo:hello ] || fail "UDP echo from $ns: $echo_out"
  topo_tcp_get "$ns" 198.18.0.2 8080
done
pass "both VMs reach the internet host through their worker's NAT: ping, UDP echo, 4 MiB TCP"

kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status on SIGTERM"
pass "SIGTERM with a session on each worker: exit 0"
