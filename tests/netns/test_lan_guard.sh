#!/usr/bin/env bash
# LAN guards and storm control with real kernels (tests/netns/topo.sh):
# three VMs, each a namespace whose TAP is bridged to the relay by its own
# wtrelay-tap on its own client host: A and B are victims, C the attacker,
# who sends raw frames (AF_PACKET, tests/netns/rawframes.py) from its VM:
#   1. ARP spoof of the gateway: C claims 10.0.2.2 with its own MAC toward
#      A while A pings 10.0.2.2: no loss, A's neighbour entry stays the
#      gateway's MAC, every spoof counted (arp_spoof);
#   2. ARP spoof of B toward A while A pings B: the same;
#   3. forged IPv4 sources (B's address, 10.0.2.2, an internet address)
#      from C to a UDP listener in A: none arrives (C's own address does),
#      counted (ip_spoof);
#   4. a session registering the gateway's MAC (wtclient) gets an Error,
#      counted (reserved_mac);
#   5. C floods 1514-byte broadcasts as fast as it can into a room of 23
#      sessions (20 idle wtclient sessions besides A, B, C) while A and B
#      ping each other 500 times at 10 ms: at most 1 % loss; floods past
#      --flood-rate are counted (rate_limited).
# Every figure is printed as "figure: ..." for the issue's closing note;
# every check is made even after one failed (so a run against an older
# build, BUILD_DIR=build-before, prints the figures "before"), and the test
# fails at the end if any did.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/topo.sh"
topo_need_tap
topo_need ping
topo_init wg
topo_relay_host
topo_client_host 1 1500
topo_client_host 2 1500
topo_client_host 3 1500
topo_vm a
topo_vm b
topo_vm c
MAC_A=52:54:00:aa:00:01 MAC_B=52:54:00:bb:00:02 MAC_C=52:54:00:cc:00:03
GW_IP=10.0.2.2 GW_MAC=52:55:0a:00:02:02

FAILED=0
expect() { # 1|0 message
  if [ "$1" = 1 ]; then pass "${*:2}"; else echo "FAIL: ${*:2}" >&2; FAILED=$((FAILED + 1)); fi
}
figure() { echo "figure: $*"; }
metric() { # 'name{labels}' -> value (0 when absent, e.g. an older relay)
  local v
  sleep 0.25 # the other workers publish their counters every 100 ms
  v=$(ip netns exec "$NS_R" curl -s --max-time 5 http://127.0.0.1:8433/metrics | awk -v k="$1" '$1 == k {print $2}')
  echo "${v:-0}"
}
loss_of() { grep -o '[0-9.]*% packet loss' | cut -d% -f1; }
neigh_mac() { # ns ip -> the MAC of ip in ns's neighbour table
  ip -n "$1" neigh show "$2" | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }' && echo 1 || echo 0; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }' && echo 1 || echo 0; }

topo_start_relay --http-listen 127.0.0.1:8433
topo_start_tap 1 vma "$NS_VMA" $MAC_A --configure --heartbeat 5
topo_start_tap 2 vmb "$NS_VMB" $MAC_B --configure --heartbeat 5
topo_start_tap 3 vmc "$NS_VMC" $MAC_C --configure --heartbeat 5
IP_A=$(topo_wait_ip "$NS_VMA" vma)
IP_B=$(topo_wait_ip "$NS_VMB" vmb)
IP_C=$(topo_wait_ip "$NS_VMC" vmc)
ip netns exec "$NS_VMA" ping -c 2 -W 2 "$IP_B" >/dev/null || fail "A cannot ping B"
ip netns exec "$NS_VMA" ping -c 2 -W 2 $GW_IP >/dev/null || fail "A cannot ping the gateway"
ip netns exec "$NS_VMC" ping -c 1 -W 2 "$IP_A" >/dev/null || fail "C cannot ping A"
[ "$(neigh_mac "$NS_VMA" $GW_IP)" = $GW_MAC ] || fail "A's entry for $GW_IP is not the gateway's MAC"
pass "three VMs on the LAN: A=$IP_A B=$IP_B C=$IP_C (attacker)"

# 1 and 2: ARP spoofs toward A while A pings the claimed address.
arp_spoof() { # label claimed-ip real-mac
  local label=$1 claim=$2 real=$3 before sent loss got after
  before=$(metric 'wtrelay_lan_guard_drops_total{reason="arp_spoof"}')
  ip netns exec "$NS_VMC" timeout 30 python3 "$HERE/rawframes.py" arp vmc $MAC_A "$claim" "$IP_A" 50 8 \
    >"$TMP/arp-$label.out" 2>&1 &
  local spoofer=$!
  PIDS+=("$spoofer")
  sleep 1
  loss=$(ip netns exec "$NS_VMA" ping -i 0.05 -c 100 -W 1 "$claim" 2>&1 | loss_of || true)
  wait "$spoofer" || fail "the ARP spoofer failed: $(cat "$TMP/arp-$label.out")"
  sent=$(tail -1 "$TMP/arp-$label.out")
  got=$(neigh_mac "$NS_VMA" "$claim")
  after=$(metric 'wtrelay_lan_guard_drops_total{reason="arp_spoof"}')
  figure "ARP spoof of $label ($claim) from C toward A: $sent spoofed ARP frames at 100/s; A's ping loss to $claim ${loss:-?} %; A's entry for $claim: $got (real $real); arp_spoof counted $((after - before))"
  expect "$(le "${loss:-100}" 2)" "ARP spoof of $label: A's ping loss ${loss:-?} % (at most 2 %)"
  expect "$([ "$got" = "$real" ] && echo 1 || echo 0)" "ARP spoof of $label: A's neighbour entry for $claim is $got, the real $real"
  expect "$(ge $((after - before)) "$sent")" "ARP spoof of $label: $((after - before)) of $sent spoofed frames counted as arp_spoof"
}
arp_spoof gateway $GW_IP $GW_MAC
arp_spoof "VM B" "$IP_B" $MAC_B
# what a spoof left behind (an older relay) must not spoil the next steps
ip -n "$NS_VMA" neigh flush dev vma

# 3: forged IPv4 sources from C to a UDP listener in A.
before=$(metric 'wtrelay_lan_guard_drops_total{reason="ip_spoof"}')
topo_bg "$NS_VMA" python3 "$HERE/rawframes.py" listen 0.0.0.0 7777 6 "$TMP/udp.got"
sleep 0.5
sent=$(ip netns exec "$NS_VMC" python3 "$HERE/rawframes.py" udp vmc $MAC_A "$IP_A" 7777 \
  "$IP_B" $GW_IP 198.18.0.2 "$IP_B" $GW_IP 198.18.0.2 "$IP_C")
sleep 6
after=$(metric 'wtrelay_lan_guard_drops_total{reason="ip_spoof"}')
forged=0
for src in "$IP_B" $GW_IP 198.18.0.2; do grep -qx "from $src" "$TMP/udp.got" && forged=$((forged + 1)); done
own=$(grep -cx "from $IP_C" "$TMP/udp.got" || true)
figure "forged IPv4 sources from C to A (B's $IP_B, $GW_IP, 198.18.0.2; each twice): $forged of 3 forged sources reached A ($(grep -c . "$TMP/udp.got" || true) datagrams in all, C's own address $own of 1); ip_spoof counted $((after - before))"
expect "$([ "$forged" = 0 ] && echo 1 || echo 0)" "forged sources: $forged of 3 reached A"
expect "$([ "$own" = 1 ] && echo 1 || echo 0)" "C's datagram from its own address reached A ($own of 1)"
expect "$(ge $((after - before)) 6)" "forged sources: $((after - before)) of 6 counted as ip_spoof"

# 4: the gateway's MAC at Register.
before=$(metric 'wtrelay_control_refused_total{reason="reserved_mac"}')
set +e
out=$(ip netns exec "$NS_C1" "$BUILD_DIR/wtclient" --url "https://$RELAY_ADDR_1:4433/lan" --cert-hash "$HASH" \
  --mac $GW_MAC --expect-error --timeout 10 2>&1)
rc=$?
set -e
after=$(metric 'wtrelay_control_refused_total{reason="reserved_mac"}')
figure "Register of the gateway's MAC $GW_MAC: wtclient --expect-error exit $rc; $(echo "$out" | grep -o '"registered":[0-9]*\|"errors":[0-9]*\|last_error="[^"]*"' | tr '\n' ' ')"
expect "$([ $rc = 0 ] && echo 1 || echo 0)" "Register of the gateway's MAC refused with an Error (wtclient exit $rc)"
expect "$([ $((after - before)) = 1 ] && echo 1 || echo 0)" "reserved_mac counted $((after - before))"
ip netns exec "$NS_VMA" ping -c 3 -i 0.2 -W 1 $GW_IP >/dev/null 2>&1 && gw_ok=1 || gw_ok=0
expect "$gw_ok" "A still reaches the gateway after the attempt"

# 5: broadcast storm from C in a room of 23 while A and B ping each other.
topo_bg "$NS_C3" "$BUILD_DIR/wtclient" --url "https://$RELAY_ADDR_3:4433/lan" --cert-hash "$HASH" \
  --sessions 20 --mac 52:54:00:ee:00:00 --hold 40 --timeout 60 >"$TMP/idle.out" 2>&1
for _ in $(seq 100); do
  [ "$(metric wtrelay_sessions)" -ge 23 ] && break
  sleep 0.2
done
sessions=$(metric wtrelay_sessions)
[ "$sessions" -ge 23 ] || fail "only $sessions sessions in the room"
ip netns exec "$NS_VMA" ping -c 100 -i 0.01 -W 1 "$IP_B" >"$TMP/ping-quiet.out" 2>&1 || true
quiet_loss=$(loss_of <"$TMP/ping-quiet.out" || true)
quiet_rtt=$(grep -o 'rtt [^=]*= [0-9.]*/[0-9.]*' "$TMP/ping-quiet.out" | awk -F/ '{print $NF}' || true)
limited0=$(metric 'wtrelay_storm_control_drops_total{reason="rate_limited"}')
copies0=$(metric 'wtrelay_switch_flood_copies_total')
qfull0=$(metric 'wtrelay_quic_datagrams_dropped_total{reason="queue_full"}')
ip netns exec "$NS_VMC" timeout 40 python3 "$HERE/rawframes.py" storm vmc 9 >"$TMP/storm.out" 2>&1 &
STORM=$!
PIDS+=("$STORM")
sleep 2
ip netns exec "$NS_VMA" ping -c 500 -i 0.01 -W 1 "$IP_B" >"$TMP/ping-storm.out" 2>&1 || true
wait "$STORM" || fail "the storm failed: $(cat "$TMP/storm.out")"
storm_sent=$(tail -1 "$TMP/storm.out")
storm_loss=$(loss_of <"$TMP/ping-storm.out" || true)
storm_rtt=$(grep -o 'rtt [^=]*= [0-9.]*/[0-9.]*' "$TMP/ping-storm.out" | awk -F/ '{print $NF}' || true)
limited=$(( $(metric 'wtrelay_storm_control_drops_total{reason="rate_limited"}') - limited0 ))
copies=$(( $(metric 'wtrelay_switch_flood_copies_total') - copies0 ))
qfull=$(( $(metric 'wtrelay_quic_datagrams_dropped_total{reason="queue_full"}') - qfull0 ))
figure "broadcast storm: C wrote $storm_sent 1514-byte broadcasts in 9 s into a room of $sessions sessions; A->B ping -i 0.01 -c 500: loss ${storm_loss:-?} %, avg rtt ${storm_rtt:-?} ms (before the storm: loss $quiet_loss %, avg rtt $quiet_rtt ms); flood copies made $copies, floods rate-limited $limited, datagrams dropped at full queues $qfull"
expect "$(le "${storm_loss:-100}" 1)" "A<->B ping under C's storm: ${storm_loss:-?} % loss (at most 1 %)"
expect "$(ge "$limited" 1)" "the storm was rate-limited ($limited floods dropped at C's port)"
expect "$(ge "$storm_sent" 10000)" "the storm was a storm ($storm_sent frames written)"

[ "$FAILED" = 0 ] || topo_fail "$FAILED checks failed"
pass "LAN guards and storm control"
