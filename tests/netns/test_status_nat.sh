#!/usr/bin/env bash
# /status lists each session's NAT flows (tests/netns/topo.sh; per-run
# prefix, deleted by the trap):
#   relay  - wtrelay --workers 2, the ops listener on its loopback
#   c1, c2 - one wtrelay-tap VM each (vma, vmb), in one room
#   inet   - 198.18.0.2: UDP echo on port 7, TCP port 9000 accepting and
#            holding connections (the kernel's backlog)
# VM a holds 3 UDP mappings (3 sockets, one datagram each), 2 TCP
# connections and one ping (one echo id: one ICMP flow); VM b one UDP
# mapping. Each session's row in /status must show exactly its own
# counts (nat_flows: udp, icmp, tcp), wherever the two sessions' workers
# are (the other worker's part is its 100 ms snapshot: polled); after
# VM a closes its TCP connections its row shows tcp 0.
# Traffic goes only to addresses of these namespaces (testing.md).
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
source "$(dirname "$0")/topo.sh"
topo_need ping python3 curl
topo_init wsn
topo_relay_host
topo_inet_host
topo_client_host 1 1500
topo_client_host 2 1500
topo_vm a
topo_vm b

topo_inet_servers --echo 198.18.0.2:7
topo_bg "$NS_I" python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.0.2", 9000)); s.listen(64)
while True:
    time.sleep(60)' >"$TMP/hold.log" 2>&1
topo_start_relay --workers 2 --http-listen 127.0.0.1:8433 --egress-allow 198.18.0.0/15 \
  --udp-timeout 300
topo_start_tap 1 vma "$NS_VMA" 52:54:00:aa:00:01 --configure
topo_start_tap 2 vmb "$NS_VMB" 52:54:00:bb:00:01 --configure
IP_A=$(topo_wait_ip "$NS_VMA" vma)
IP_B=$(topo_wait_ip "$NS_VMB" vmb)
echo "# VMs: a $IP_A, b $IP_B"
topo_wait_listen "$NS_I" 9000

# VM a: 3 UDP mappings and 2 TCP connections, held until $TMP/close-tcp
# appears (then the TCP sockets are reset), the UDP sockets until killed
topo_bg "$NS_VMA" python3 -c '
import os, socket, struct, sys, time
udp = []
for _ in range(3):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("198.18.0.2", 7)); udp.append(s)
tcp = [socket.create_connection(("198.18.0.2", 9000), timeout=10) for _ in range(2)]
print("open", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.1)
for s in tcp: # a reset: the NAT ends the connection at once
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
print("closed", flush=True)
time.sleep(300)' "$TMP/close-tcp" >"$TMP/vma.log" 2>&1
topo_bg "$NS_VMA" ping -i 0.5 -w 120 198.18.0.2 >"$TMP/ping.log" 2>&1
topo_bg "$NS_VMB" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"x", ("198.18.0.2", 7))
time.sleep(300)' >"$TMP/vmb.log" 2>&1
for _ in $(seq 100); do grep -q open "$TMP/vma.log" && break; sleep 0.1; done
grep -q open "$TMP/vma.log" || fail "VM a's flows did not open: $(cat "$TMP/vma.log")"

# prints "udp icmp tcp" of the session with that IP, "none" without one
flows_of() { # ip
  ip netns exec "$NS_R" curl -s --max-time 3 http://127.0.0.1:8433/status | python3 -c '
import json, sys
s = json.load(sys.stdin)
rows = [x for x in s["sessions"] if x["ip"] == sys.argv[1]]
print(" ".join(str(rows[0]["nat_flows"][k]) for k in ("udp", "icmp", "tcp")) if rows else "none",
      rows[0]["worker"] if rows else "")' "$1"
}

wait_flows() { # ip "udp icmp tcp" label
  local got="" _
  for _ in $(seq 100); do
    got=$(flows_of "$1")
    [ "${got% *}" = "$2" ] && break
    sleep 0.2
  done
  [ "${got% *}" = "$2" ] || fail "$3: /status shows udp icmp tcp = '${got% *}', expected '$2'"
  pass "$3: nat_flows udp icmp tcp = $2 (worker ${got##* })"
}

wait_flows "$IP_A" "3 1 2" "VM a (3 UDP mappings, a ping, 2 TCP connections)"
wait_flows "$IP_B" "1 0 0" "VM b (1 UDP mapping)"

touch "$TMP/close-tcp"
wait_flows "$IP_A" "3 1 0" "VM a after closing its TCP connections"

# the page shows the columns
ip netns exec "$NS_R" curl -s --max-time 3 http://127.0.0.1:8433/ | grep -q "'NAT TCP'" ||
  fail "the status page has no NAT columns"
pass "the status page has the NAT flow columns"

kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status on SIGTERM"
pass "relay exited cleanly"
