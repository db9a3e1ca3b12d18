#!/usr/bin/env bash
# The issue's table attacks at the relay's default bounds (not part of make
# test: 18 wtrelay-tap VMs, a minute of run time). tests/netns/topo.sh:
#   c1   - the attacker's client host: 17 VMs (17 sessions, one address)
#   c2   - the victim's client host: one VM
#   inet - 198.18.0.2: UDP echo on 7, a greeter on TCP 8080, TCP 9999
#          silent (nftables drops its SYNs)
# 1. every attacker VM opens 256 UDP mappings (the per-VM cap; 17 x 256 >
#    the 4 096 of the table); the victim then tries 5 new mappings;
# 2. the attacker's VMs send ~500 SYN/s in all to the silent port for 15 s
#    (each connect pending for the NAT's 10 s); from 10.5 s on the victim
#    connects to 8080 8 times, 0.4 s apart.
# Prints the figures; BUILD_DIR selects the build (e.g. an older one for
# the "before" figures). Traffic goes only to these namespaces.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
NVM=${NVM:-17}
source "$(dirname "$0")/../tests/netns/topo.sh"
topo_init wd
topo_relay_host
topo_inet_host
topo_client_host 1 1500
topo_client_host 2 1500
ip netns exec "$NS_I" nft add table inet natshare
ip netns exec "$NS_I" nft add chain inet natshare in '{ type filter hook input priority 0; }'
ip netns exec "$NS_I" nft add rule inet natshare in tcp dport 9999 counter drop
topo_inet_servers --echo 198.18.0.2:7 --greet 198.18.0.2:8080
topo_start_relay --egress-allow 198.18.0.0/15 --log-level debug # the counters at exit
for i in $(seq "$NVM"); do
  topo_vm "a$i"
  topo_start_tap 1 "va$i" "${TOPO_P}vma$i" "52:54:00:aa:00:$(printf %02x "$i")" --configure
done
topo_vm b
topo_start_tap 2 vb "$NS_VMB" 52:54:00:bb:00:01 --configure
for i in $(seq "$NVM"); do x=$(topo_wait_ip "${TOPO_P}vma$i" "va$i"); done
x=$(topo_wait_ip "$NS_VMB" vb)
topo_wait_listen "$NS_I" 8080

for i in $(seq "$NVM"); do
  topo_udp_mappings "${TOPO_P}vma$i" 198.18.0.2 7 256 0.02 2 30 >"$TMP/udp-$i.out" &
  PIDS+=("$!")
done
sleep 9 # 256 x 20 ms, then 2 s
for _ in $(seq 20); do [ "$(cat "$TMP"/udp-*.out | wc -l)" -ge "$NVM" ] && break; sleep 1; done
udp_attacker=$(cat "$TMP"/udp-*.out | awk '{s += $1} END {print s + 0}')
udp_victim=$(topo_udp_echoes "$NS_VMB" 198.18.0.2 7 5 2 v)
echo "UDP: $NVM attacker sessions from one address got $udp_attacker mappings answered;" \
  "the victim got $udp_victim of 5 new mappings answered"
sleep 3 # the VMs' new-flow buckets refill (the TCP table is apart from the UDP one)

SYN_PY='
import socket, time
socks, t = [], time.monotonic()
while time.monotonic() - t < 15:
    s = socket.socket(); s.setblocking(False); s.connect_ex(("198.18.0.2", 9999)); socks.append(s)
    time.sleep(1 / 30)
print(len(socks))'
for i in $(seq "$NVM"); do
  ip netns exec "${TOPO_P}vma$i" timeout 30 python3 -c "$SYN_PY" >"$TMP/syn-$i.out" &
  PIDS+=("$!")
done
sleep 10.5
tcp_victim=$(ip netns exec "$NS_VMB" timeout 30 python3 -c '
import socket, time
ok = 0
for i in range(8):
    try:
        s = socket.create_connection(("198.18.0.2", 8080), timeout=1); ok += s.recv(10) == b"hello"
    except OSError:
        pass
    time.sleep(0.4)
print("%d of 8 connects" % ok)')
for _ in $(seq 30); do [ "$(cat "$TMP"/syn-*.out | wc -l)" -ge "$NVM" ] && break; sleep 1; done
syns=$(cat "$TMP"/syn-*.out | awk '{s += $1} END {print s + 0}')
at_host=$(ip netns exec "$NS_I" nft list chain inet natshare in | grep -o 'packets [0-9]*' | awk '{print $2}')
echo "TCP: the attacker's VMs started $syns connects to a silent port in 15 s ($((syns / 15))/s);" \
  "$at_host SYNs reached the silent host; the victim's connects between 10.5 and 14 s: $tcp_victim"
kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || true
grep -a 'msg="counters at exit"' "$TMP/relay.err" | tr ' ' '\n' |
  grep -E '^(nat_share_[a-z_]*|nat_udp_flows_full|tcp_nat_tcp_full|tcp_full)=' || true
