#!/usr/bin/env bash
# Fair shares of the NAT across real links (tests/netns/topo.sh; per-run
# prefix, deleted by the trap):
#   relay  - wtrelay, small NAT tables so two VMs can fill them: 64 UDP
#            mappings (32 per VM), 64 TCP connections (32 per VM); client
#            shares: the default quarter of each table (16), 8 connects in
#            progress per client
#   c1     - the attacker's client host: two wtrelay-tap VMs (vma1, vma2),
#            one client address, so one client
#   c2     - the victim's client host: one VM (vmb)
#   inet   - 198.18.0.2: UDP echo on port 7, a TCP greeter on 8080, and
#            TCP port 9999 silent (nftables drops its SYNs)
# 1. the attacker's VMs open as many UDP mappings as they can (40 sockets
#    each): they get their client's share, and the victim still gets its
#    UDP echo answered;
# 2. the attacker's VMs start 40 connects each to the silent port: they get
#    8 connects in progress, the rest are dropped (counted, no RST: a guest
#    retries a SYN), and the victim's connect to 8080 goes through meanwhile;
# 3. the scan rate: the victim's VM connect()s 5 000 closed ports of the
#    internet host in a row; the SYNs that reach it are counted there
#    (nftables): the burst (100), then 50 a second.
# NATSHARE_BEFORE=1 runs the same attacks against a relay without fair
# shares (BUILD_DIR of an older build; the share flags left out) and only
# prints what happened, for the before/after figures.
# Traffic goes only to addresses of these namespaces (testing.md).
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
BEFORE=${NATSHARE_BEFORE:-0}
source "$(dirname "$0")/topo.sh"
topo_need python3 nft
topo_init wn
topo_relay_host
topo_inet_host
topo_client_host 1 1500
topo_client_host 2 1500
topo_vm a1
topo_vm a2
topo_vm b

# the internet host: UDP echo, a greeter, a silent port, a SYN counter
ip netns exec "$NS_I" nft -f - <<'NFT'
table inet natshare {
  counter scan_syns {}
  chain in {
    type filter hook input priority 0;
    tcp dport 9999 drop
    tcp dport 10000-14999 tcp flags & (syn | ack) == syn counter name scan_syns
  }
}
NFT
topo_inet_servers --echo 198.18.0.2:7 --greet 198.18.0.2:8080

share_flags=(--max-tcp-pending-per-client 8)
[ "$BEFORE" = 1 ] && share_flags=()
topo_start_relay --egress-allow 198.18.0.0/15 --max-udp-flows 64 --max-udp-flows-per-vm 32 \
  --udp-timeout 300 --max-tcp-conns 64 --max-tcp-conns-per-vm 32 "${share_flags[@]}" --log-level debug
topo_start_tap 1 vma1 "$NS_VMA1" 52:54:00:aa:00:01 --configure
topo_start_tap 1 vma2 "$NS_VMA2" 52:54:00:aa:00:02 --configure
topo_start_tap 2 vmb "$NS_VMB" 52:54:00:bb:00:01 --configure
IP_A1=$(topo_wait_ip "$NS_VMA1" vma1)
IP_A2=$(topo_wait_ip "$NS_VMA2" vma2)
IP_B=$(topo_wait_ip "$NS_VMB" vmb)
echo "# VMs: attacker $IP_A1 and $IP_A2 (client host 1), victim $IP_B (client host 2)"
topo_wait_listen "$NS_I" 8080

vm_py() { # netns, python code, args...
  local ns=$1 code=$2
  shift 2
  ip netns exec "$ns" timeout 60 python3 -c "$code" "$@"
}

# 1. UDP mappings: 40 sockets per attacker VM, one datagram each; how many answered
topo_udp_mappings "$NS_VMA1" 198.18.0.2 7 40 0.005 1.5 0 >"$TMP/udp-a1.out" &
p1=$!
topo_udp_mappings "$NS_VMA2" 198.18.0.2 7 40 0.005 1.5 0 >"$TMP/udp-a2.out" &
p2=$!
wait $p1 || fail "attacker VM 1's UDP flood"
wait $p2 || fail "attacker VM 2's UDP flood"
udp_attacker=$(($(cat "$TMP/udp-a1.out") + $(cat "$TMP/udp-a2.out")))
udp_victim=$(topo_udp_echoes "$NS_VMB" 198.18.0.2 7 5 1 victim)
echo "# UDP: the attacker (2 VMs x 40 sockets, one client) got $udp_attacker mappings answered;" \
  "the victim's VM got $udp_victim of 5 echoes (new mappings) answered"
if [ "$BEFORE" != 1 ]; then
  [ "$udp_attacker" -le 16 ] || fail "the attacker got $udp_attacker UDP mappings, its share is 16"
  [ "$udp_attacker" -ge 12 ] || fail "the attacker got only $udp_attacker UDP mappings of its 16"
  [ "$udp_victim" = 5 ] || fail "the victim got $udp_victim of 5 UDP echoes"
  pass "UDP: one client holds at most its share (16 of 64 mappings); another client's VM is answered"
fi

# 2. connects in progress to the silent port, held while the victim connects
SYN_FLOOD_PY='
import errno, socket, time
socks, refused = [], 0
for i in range(40):
    s = socket.socket(); s.setblocking(False)
    s.connect_ex(("198.18.0.2", 9999)); socks.append(s)
    time.sleep(0.005)
time.sleep(1.0)
for s in socks:
    e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    refused += e in (errno.ECONNREFUSED, errno.EHOSTUNREACH)
print(refused, flush=True)
time.sleep(6)'
vm_py "$NS_VMA1" "$SYN_FLOOD_PY" >"$TMP/syn-a1.out" &
p1=$!
vm_py "$NS_VMA2" "$SYN_FLOOD_PY" >"$TMP/syn-a2.out" &
p2=$!
sleep 2
TCP_PY='
import socket, time
t = time.monotonic()
try:
    s = socket.create_connection(("198.18.0.2", 8080), timeout=4)
    d = s.recv(10)
    print("%s %.2f" % (d.decode() or "empty", time.monotonic() - t))
except OSError as e:
    print("%s %.2f" % (type(e).__name__, time.monotonic() - t))'
tcp_victim=$(vm_py "$NS_VMB" "$TCP_PY")
wait $p1 || fail "attacker VM 1's SYN flood"
wait $p2 || fail "attacker VM 2's SYN flood"
refused=$(($(head -1 "$TMP/syn-a1.out") + $(head -1 "$TMP/syn-a2.out")))
echo "# TCP: the attacker started 80 connects to a silent port, $refused refused at once;" \
  "the victim's connect during the flood: $tcp_victim (answer, seconds)"
if [ "$BEFORE" != 1 ]; then
  # beyond its 8 connects in progress the attacker's SYNs are dropped (no
  # RST: a guest's own retransmission passes once a connect completes);
  # how many were dropped is checked in the exit counters below
  [ "$refused" = 0 ] || fail "$refused of the attacker's connects were reset; SYNs over the pending share are dropped"
  case "$tcp_victim" in hello*) ;; *) fail "the victim's connect during the SYN flood: $tcp_victim" ;; esac
  pass "TCP: one client holds at most 8 connects in progress (the rest dropped, none reset); another client's VM connects ($tcp_victim s)"
fi

# 3. scan rate: 5 000 closed ports in a row from one VM; SYNs that reach the host
sleep 4 # the attacker's connects in progress end (10 s connect timeout): a table of its own
SCAN_PY='
import socket, time
t = time.monotonic()
for p in range(10000, 15000):
    s = socket.socket(); s.settimeout(2)
    s.connect_ex(("198.18.0.2", p)); s.close()
print("%.2f" % (time.monotonic() - t))'
scan_s=$(vm_py "$NS_VMB" "$SCAN_PY")
reached=$(ip netns exec "$NS_I" nft list counter inet natshare scan_syns | grep -o 'packets [0-9]*' | awk '{print $2}')
sleep 5
SCAN5_PY='
import socket, time
t, n, p = time.monotonic(), 0, 10000
while time.monotonic() - t < 5:
    s = socket.socket(); s.settimeout(2)
    s.connect_ex(("198.18.0.2", p)); s.close(); p = 10000 + (p - 9999) % 5000; n += 1
print(n)'
before5=$reached
tried5=$(vm_py "$NS_VMB" "$SCAN5_PY")
after5=$(ip netns exec "$NS_I" nft list counter inet natshare scan_syns | grep -o 'packets [0-9]*' | awk '{print $2}')
reached5=$((after5 - before5))
echo "# scan: 5000 ports connect()ed in ${scan_s} s, $reached SYNs reached the internet host;" \
  "then 5 s of scanning: $tried5 ports tried, $reached5 reached it ($((reached5 / 5)) ports/s)"
if [ "$BEFORE" != 1 ]; then
  # the burst (100) plus 50/s over the scan's own duration, with some slack
  max=$(python3 -c "print(int(100 + 50 * $scan_s + 10))")
  [ "$reached" -le "$max" ] || fail "$reached ports reached in ${scan_s} s (at most $max)"
  [ "$reached" -ge 100 ] || fail "only $reached ports reached (the burst is 100)"
  [ "$reached5" -le 360 ] || fail "$reached5 ports reached in 5 s after an idle 5 s (at most 100 + 250)"
  pass "scan rate: $reached of 5000 ports reached in ${scan_s} s; then $reached5 in 5 s"
fi

kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status on SIGTERM"
if [ "$BEFORE" != 1 ]; then
  line=$(grep -a 'msg="counters at exit"' "$TMP/relay.err" | grep -o 'nat_share_[a-z_]*=[0-9]*' | tr '\n' ' ')
  [ "$(exit_counter nat_share_udp_per_client)" -gt 0 ] || fail "udp_per_client not counted: $line"
  dropped=$(exit_counter nat_share_tcp_pending_per_client)
  [ "$dropped" -ge 72 ] || fail "only $dropped SYNs over the pending share dropped (80 connects, share 8): $line"
  [ "$(exit_counter nat_share_rate_tcp)" -gt 0 ] || fail "rate_tcp not counted: $line"
  pass "counters: $line"
fi
