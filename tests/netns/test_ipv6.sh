#!/usr/bin/env bash
# IPv6 on the virtual LAN with real kernels (tests/netns/topo.sh): two VM
# namespaces behind wtrelay-tap on client hosts across veth links (MTU
# 1500 and 1280) with IPv6 on, as a Linux guest has it. The gateway's
# Router Advertisement gives each kernel a SLAAC address in the room's ULA
# /64 (fd + the relay's random global id + the room's subnet id); the
# kernels ping fe80::2 and <prefix>::2 and each other; DNS at <prefix>::3
# is forwarded; a packet for
# elsewhere sent to the gateway gets ICMPv6 "no route" at once; a source
# in the prefix that is not the MAC's SLAAC address gets no answer and is
# counted. Namespaces are created with a per-run prefix and deleted by the
# trap.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}

source "$(dirname "$0")/topo.sh"
topo_need_tap
topo_need ping curl
topo_init w6
topo_relay_host
topo_vm_pair 1500 1280
topo_inet_host
NS_A=$NS_VMA NS_B=$NS_VMB
topo_inet_servers --dns 198.18.0.2:53
topo_start_relay --http-listen 127.0.0.1:8433 --dns-upstream 198.18.0.2 --egress-allow 198.18.0.0/15 \
  --egress-allow 2001:db8:1::/48
for ns in "$NS_A" "$NS_B"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
    net.ipv6.conf.default.accept_ra=1 net.ipv6.conf.default.addr_gen_mode=0
done
topo_start_tap 1 vma "$NS_A" 52:54:00:aa:00:01 --configure --heartbeat 2
topo_start_tap 2 vmb "$NS_B" 52:54:00:bb:00:02 --configure --heartbeat 2
IP_A=$(topo_wait_ip "$NS_A" vma)
IP_B=$(topo_wait_ip "$NS_B" vmb)
pass "both taps registered: $IP_A and $IP_B"

global6() { # ns dev -> the global IPv6 address (empty until SLAAC made it)
  ip -n "$1" -6 -o addr show dev "$2" scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1
}
wait6() { # ns dev
  local a="" _
  for _ in $(seq 100); do
    a=$(global6 "$1" "$2")
    [ -n "$a" ] && ! ip -n "$1" -6 -o addr show dev "$2" scope global | grep tentative >/dev/null && break
    a=""
    sleep 0.1
  done
  [ -n "$a" ] || fail "$1/$2 got no SLAAC address: $(ip -n "$1" -6 addr show dev "$2")"
  echo "$a"
}
A6=$(wait6 "$NS_A" vma)
B6=$(wait6 "$NS_B" vmb)
case "$A6" in fd*:5054:ff:feaa:1) ;; *) fail "vma's SLAAC address $A6 is not a ULA with vma's EUI-64" ;; esac
PREFIX=$(echo "$A6" | cut -d: -f1-4)
case "$B6" in "$PREFIX":5054:ff:febb:2) ;; *) fail "vmb's address $B6 is not in vma's prefix $PREFIX::/64" ;; esac
ip -n "$NS_A" -6 route show | grep "^$PREFIX::/64 dev vma" >/dev/null || fail "no on-link route for $PREFIX::/64: $(ip -n "$NS_A" -6 route show)"
mtu=$(ip netns exec "$NS_A" cat /proc/sys/net/ipv6/conf/vma/mtu)
pass "SLAAC from the gateway's RA: vma $A6, vmb $B6 in the room's /64 $PREFIX::/64 (link MTU $mtu)"

out=$(ip netns exec "$NS_A" ping -6 -c 2 -i 0.2 -W 2 fe80::2%vma) || fail "ping fe80::2: $out"
out=$(ip netns exec "$NS_A" ping -6 -c 2 -i 0.2 -W 2 "$PREFIX::2") || fail "ping $PREFIX::2: $out"
ip -n "$NS_A" -6 neigh show "$PREFIX::2" | grep "lladdr 52:55:0a:00:02:02 router" >/dev/null ||
  fail "neighbour entry of $PREFIX::2: $(ip -n "$NS_A" -6 neigh show)"
pass "vma pings fe80::2 and $PREFIX::2; the gateway answers Neighbor Discovery as a router"
out=$(ip netns exec "$NS_A" ping -6 -c 2 -i 0.2 -W 2 "$B6") || fail "ping vmb $B6: $out"
pass "vma pings vmb over IPv6 across the switch ($(echo "$out" | grep -o 'rtt.*'))"

# a privacy address (RFC 8981): vmb claims it by DAD, the LAN guard records
# the claim, and vmb may then speak from it
ip -n "$NS_B" -6 addr add "$PREFIX:3c91:75e:a211:409b/64" dev vmb
for _ in $(seq 50); do
  ip -n "$NS_B" -6 -o addr show dev vmb | grep "$PREFIX:3c91:75e:a211:409b" | grep tentative >/dev/null || break
  sleep 0.1
done
out=$(ip netns exec "$NS_B" ping -6 -c 2 -i 0.2 -W 2 -I "$PREFIX:3c91:75e:a211:409b" "$A6") ||
  fail "ping from vmb's claimed privacy address: $out"
out=$(ip netns exec "$NS_B" ping -6 -c 1 -W 2 -I "$PREFIX:3c91:75e:a211:409b" "$PREFIX::2") ||
  fail "ping of the gateway from vmb's claimed privacy address: $out"
[ "$(topo_metric 'wtrelay_lan_guard_ipv6_claims_total{result="recorded"}')" -ge 1 ] || fail "the DAD claim was not recorded"
pass "vmb claims a privacy address by DAD and pings vma and the gateway from it"

# DNS at <prefix>::3 (what the RA's RDNSS option names), forwarded to the
# relay's upstream over IPv4; an AAAA query is forwarded like any other
dns6() { # qtype -> "rcode answers first-answer-rdata-hex"
  ip netns exec "$NS_A" timeout 10 python3 - "$PREFIX::3" "$1" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(3)
q = struct.pack("!HHHHHH", 0x6a6a, 0x0100, 1, 0, 0, 0) + b"\x04test\x07example\x00" + struct.pack("!HH", int(sys.argv[2]), 1)
s.sendto(q, (sys.argv[1], 53)); a, src = s.recvfrom(2048)
assert src[0] == sys.argv[1] and src[1] == 53 and a[:2] == b"\x6a\x6a" and a[2] & 0x80, (src, a)
print(a[3] & 15, struct.unpack("!H", a[6:8])[0], a[-4:].hex())
PY
}
out=$(dns6 1) || fail "DNS over IPv6 to $PREFIX::3: $out"
[ "$out" = "0 1 c6120002" ] || fail "DNS A over IPv6: $out (want NOERROR, 1 answer, 198.18.0.2)"
out=$(dns6 28) || fail "AAAA over IPv6 to $PREFIX::3: $out"
pass "DNS over IPv6 at $PREFIX::3: test.example A 198.18.0.2 forwarded and answered from ::3; AAAA forwarded (answer: $out)"

# for elsewhere through the gateway: the relay host has no IPv6 route here
# (no NAT66: test_nat66.sh), so "no route" at once;
# a destination the IPv6 egress policy denies (the documentation prefix
# outside the --egress-allow above): administratively prohibited
ip -n "$NS_A" -6 route add default via fe80::2 dev vma
t0=$(date +%s%N)
out=$(ip netns exec "$NS_A" ping -6 -c 1 -W 3 2001:db8:1::1 2>&1 || true)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "$out" | grep "Destination unreachable: No route" >/dev/null || fail "ping 2001:db8:1::1 through the gateway: $out"
out=$(ip netns exec "$NS_A" ping -6 -c 1 -W 3 2001:db8:2::1 2>&1 || true)
echo "$out" | grep "Destination unreachable: Administratively prohibited" >/dev/null ||
  fail "ping 2001:db8:2::1 (denied by the egress policy): $out"
[ "$(topo_metric 'wtrelay_gateway_drops_total{reason="ipv6_egress_denied"}')" = 1 ] || fail "the denied ping was not counted"
# an address of the relay host itself, added while it runs, inside the
# allowed prefix: refused all the same (followed through rtnetlink)
ip -n "$NS_R" -6 addr add 2001:db8:1::99/128 dev lo
ip -n "$NS_R" link set lo up
sleep 0.3
out=$(ip netns exec "$NS_A" ping -6 -c 1 -W 3 2001:db8:1::99 2>&1 || true)
echo "$out" | grep "Destination unreachable: Administratively prohibited" >/dev/null ||
  fail "ping of the relay host's own 2001:db8:1::99: $out"
[ "$(topo_metric 'wtrelay_nat_refused_total{reason="local"}')" -ge 1 ] ||
  fail "the relay host's own address was not counted as local: $(ip netns exec "$NS_R" curl -s http://127.0.0.1:8433/metrics | grep drops_total)"
pass "sent to the gateway for elsewhere: 2001:db8:1::1 (allowed) gets ICMPv6 no route at once ($ms ms); 2001:db8:2::1 (policy) and the relay host's own 2001:db8:1::99 (added while it runs) administratively prohibited"

# a source in the prefix that is not vma's SLAAC address: dropped by the
# LAN guard before the switch, counted
before=$(topo_metric 'wtrelay_lan_guard_drops_total{reason="ip6_spoof"}')
ip -n "$NS_A" -6 addr add "$PREFIX::99/64" dev vma nodad
! ip netns exec "$NS_A" ping -6 -c 1 -W 1 -I "$PREFIX::99" "$PREFIX::2" >/dev/null 2>&1 ||
  fail "the gateway answered a source that is not the session's"
! ip netns exec "$NS_A" ping -6 -c 1 -W 1 -I "$PREFIX::99" "$B6" >/dev/null 2>&1 ||
  fail "vmb answered a source that is not vma's"
after=$(topo_metric 'wtrelay_lan_guard_drops_total{reason="ip6_spoof"}')
[ "$after" -ge $((before + 2)) ] || fail "spoofed IPv6 source not counted ($before -> $after)"
for k in router_advert neighbor_advert echo6; do
  v=$(topo_metric "wtrelay_gateway_answers_total{kind=\"$k\"}")
  [ "$v" -gt 0 ] || fail "wtrelay_gateway_answers_total{kind=\"$k\"} is $v"
done
pass "a forged source in the prefix reaches neither the gateway nor vmb (ip6_spoof $before -> $after); RA, NA and echo answers counted"

# a rogue Router Advertisement from vma (RA guard): vmb must not learn its
# prefix nor take vma as a router
ip netns exec "$NS_A" python3 "$TOPO_DIR/rawframes.py" ra vma 2001:db8:bad:: 5 >/dev/null ||
  fail "could not send the rogue RAs"
sleep 1
! ip -n "$NS_B" -6 addr show dev vmb | grep 2001:db8:bad >/dev/null || fail "vmb took the rogue RA's prefix"
! ip -n "$NS_B" -6 route show default | grep . >/dev/null || fail "vmb took vma as its default router"
v=$(topo_metric 'wtrelay_lan_guard_drops_total{reason="nd_router"}')
[ "$v" -ge 5 ] || fail "rogue RAs counted $v, sent 5"
pass "5 rogue Router Advertisements from vma dropped and counted (nd_router $v); vmb kept its prefix and routes"

kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status on SIGTERM"
pass "relay exits 0"
