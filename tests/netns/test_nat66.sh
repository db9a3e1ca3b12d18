#!/usr/bin/env bash
# NAT66 with real kernels (tests/netns/topo.sh): a VM namespace behind
# wtrelay-tap with IPv6 on, and an IPv6 "test internet" host in a
# namespace of its own (2001:db8:1::2, the relay host 2001:db8:1::1 with
# its default route through it; --egress-allow opens 2001:db8:1::/48 in
# the documentation prefix the IPv6 policy denies). The gateway's RA makes
# it the VM's default router (the relay host has an IPv6 route); the
# kernel pings the internet host, does a UDP echo and downloads 10 MB over
# TCP byte-exact, all translated onto the relay host's IPv6 sockets. A far
# host behind the internet host (a router, link MTU 1280; 2001:db8:2::2):
# the router's packet too big for a UDP flow reaches the VM's kernel as
# ICMPv6 with MTU 1280 (it caches that path MTU).
# Destinations the policy refuses (ULA, loopback, link-local, v4-mapped)
# get ICMPv6 administratively prohibited at once; a global multicast is
# not routed. Then the relay host loses its IPv6 route: the gateway stops
# translating and a TCP connect from the VM fails fast with ICMPv6 "no
# route" (a host without IPv6 routes). Namespaces use a per-run prefix and
# are deleted by the trap.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}

source "$(dirname "$0")/topo.sh"
topo_need_tap
topo_need ping
topo_init n66
topo_relay_host
topo_client_host 1 1280
topo_vm a
topo_inet_host
for ns in "$NS_R" "$NS_I" "$NS_VMA"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
done
ip netns exec "$NS_VMA" sysctl -qw net.ipv6.conf.default.accept_ra=1 net.ipv6.conf.default.addr_gen_mode=0
ip -n "$NS_R" -6 addr add 2001:db8:1::1/64 dev "${TOPO_P}ri" nodad
ip -n "$NS_I" -6 addr add 2001:db8:1::2/64 dev "${TOPO_P}i0" nodad
ip -n "$NS_R" -6 route add default via 2001:db8:1::2
INET6=2001:db8:1::2
# a far host behind the internet host (a router), on a link of MTU 1280
topo_ns far
NS_F="${TOPO_P}far"
ip netns exec "$NS_F" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
ip link add "${TOPO_P}if" netns "$NS_I" type veth peer name "${TOPO_P}f0" netns "$NS_F"
ip -n "$NS_I" link set "${TOPO_P}if" mtu 1280 up
ip -n "$NS_F" link set "${TOPO_P}f0" mtu 1280 up
ip -n "$NS_I" -6 addr add 2001:db8:2::1/64 dev "${TOPO_P}if" nodad
ip -n "$NS_F" -6 addr add 2001:db8:2::2/64 dev "${TOPO_P}f0" nodad
ip -n "$NS_F" -6 route add default via 2001:db8:2::1
ip netns exec "$NS_I" sysctl -qw net.ipv6.conf.all.forwarding=1
FAR6=2001:db8:2::2

topo_start_relay --http-listen 127.0.0.1:8433 --egress-allow 2001:db8:1::/48 --egress-allow 2001:db8:2::/48
topo_start_tap 1 vma "$NS_VMA" 52:54:00:aa:66:01 --configure --heartbeat 2
IP_A=$(topo_wait_ip "$NS_VMA" vma)

A6=""
for _ in $(seq 100); do
  A6=$(ip -n "$NS_VMA" -6 -o addr show dev vma scope global 2>/dev/null | grep -v tentative |
    awk '{print $4}' | cut -d/ -f1 | head -1 || true)
  [ -n "$A6" ] && break
  sleep 0.1
done
[ -n "$A6" ] || fail "vma got no SLAAC address: $(ip -n "$NS_VMA" -6 addr show dev vma)"
for _ in $(seq 50); do
  ip -n "$NS_VMA" -6 route show default | grep "via fe80::2 dev vma" >/dev/null && break
  sleep 0.1
done
ip -n "$NS_VMA" -6 route show default | grep "via fe80::2 dev vma" >/dev/null ||
  fail "the RA did not make the gateway vma's default router: $(ip -n "$NS_VMA" -6 route show)"
pass "vma $IP_A and $A6: the gateway's RA carries a router lifetime (the relay host has an IPv6 route): default via fe80::2"

out=$(ip netns exec "$NS_VMA" ping -6 -c 3 -i 0.2 -W 2 "$INET6") || fail "ping $INET6: $out"
[ "$(topo_metric 'wtrelay_nat_ipv6_flows_opened_total{protocol="icmp"}')" = 1 ] ||
  fail "the echo flow was not counted as NAT66"
pass "vma pings the IPv6 internet host $INET6 through NAT66 ($(echo "$out" | grep -o 'rtt.*'))"

# UDP echo: a server on the internet host, a client in the VM
ip netns exec "$NS_I" timeout 60 python3 -c '
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("2001:db8:1::2", 7777))
while True:
    d, a = s.recvfrom(2048); s.sendto(b"echo:" + d, a)' >/dev/null 2>&1 &
PIDS+=("$!")
sleep 0.3
out=$(ip netns exec "$NS_VMA" timeout 20 python3 -c '
import socket
ok = 0
for i in range(5):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(3)
    s.sendto(b"udp6-%d" % i, ("2001:db8:1::2", 7777))
    d, a = s.recvfrom(2048)
    ok += d == b"echo:udp6-%d" % i and a[0] == "2001:db8:1::2" and a[1] == 7777
print(ok)') || fail "UDP echo over IPv6: $out"
[ "$out" = 5 ] || fail "UDP echo over IPv6: $out of 5 answered"
pass "5 UDP echoes over IPv6 from vma to [$INET6]:7777 and back"

topo_tcp_serve "$NS_I" "$INET6" 8080 10485760
topo_loss 1 2 # 2 % random loss each way on the tap's MTU 1280 link (testing.md, real links)
topo_tcp_get "$NS_VMA" "$INET6" 8080 120
lost=$(topo_loss_drops 1)
topo_loss 1 0
[ "$(topo_metric 'wtrelay_nat_ipv6_flows_opened_total{protocol="tcp"}')" -ge 1 ] ||
  fail "the TCP connection was not counted as NAT66"
pass "10 MB downloaded over TCP from [$INET6]:8080 to vma byte-exact in ${TOPO_XFER_S}s, across an MTU 1280 link with 2 % loss ($lost packets dropped)"

# packet too big on the relay host's path (the router before the far host,
# link MTU 1280): relayed to the guest with that MTU, and its kernel
# learns the path MTU to the far host
ip netns exec "$NS_VMA" timeout 10 python3 -c '
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for i in range(3):
    s.sendto(b"x" * 1300, ("2001:db8:2::2", 9)); time.sleep(0.3)' 2>/dev/null || true
pmtu=""
for _ in $(seq 30); do
  pmtu=$(ip -n "$NS_VMA" -6 route get "$FAR6" 2>/dev/null | grep -o 'mtu [0-9]*' || true)
  [ "$pmtu" = "mtu 1280" ] && break
  sleep 0.1
done
[ "$pmtu" = "mtu 1280" ] ||
  fail "vma did not learn the path MTU 1280 to $FAR6: $(ip -n "$NS_VMA" -6 route get "$FAR6")"
[ "$(topo_metric 'wtrelay_nat_packets_total{protocol="icmp_error",dir="in"}')" -ge 1 ] ||
  fail "the relayed packet too big was not counted"
pass "a router's packet too big (MTU 1280) on the relay host's path reaches vma as ICMPv6: its kernel caches $pmtu to $FAR6"

# refused destinations: a ULA outside the room's prefix through the
# kernel's default route; loopback, link-local and v4-mapped as frames to
# the gateway's MAC (a kernel never routes those); each answered at once
# with ICMPv6 administratively prohibited, nothing sent out
out=$(ip netns exec "$NS_VMA" ping -6 -c 1 -W 3 fc00::1 2>&1 || true)
echo "$out" | grep "Destination unreachable: Administratively prohibited" >/dev/null ||
  fail "ping fc00::1 (ULA): $out"
probe() { # dst -> the ICMPv6 type/code the gateway answers a UDP datagram to dst with, or "none"
  ip netns exec "$NS_VMA" timeout 10 python3 - "$A6" "$1" <<'PY'
import socket, struct, sys, time
src, dst = (socket.inet_pton(socket.AF_INET6, a) for a in sys.argv[1:3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))
s.bind(("vma", 0)); s.settimeout(0.2)
mac = open("/sys/class/net/vma/address").read().strip()
me = bytes(int(x, 16) for x in mac.split(":"))
udp = struct.pack("!HHHH", 40000, 9, 12, 0) + b"prob"
ip6 = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + src + dst
s.send(bytes.fromhex("52550a000202") + me + b"\x86\xdd" + ip6 + udp)
end = time.time() + 3
while time.time() < end:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    if f[12:14] == b"\x86\xdd" and f[20] == 58 and f[38:54] == src and f[54] in (1, 3):
        print("%d/%d" % (f[54], f[55])); sys.exit(0)
print("none")
PY
}
for dst in ::1 fe80::1234 ::ffff:198.18.0.2; do
  got=$(probe "$dst") || fail "probe of $dst: $got"
  [ "$got" = 1/1 ] || fail "$dst: answered $got, want ICMPv6 1/1 (administratively prohibited)"
done
# (::1 is also the relay host's own: counted as local, not by the policy)
denied=$(($(topo_metric 'wtrelay_gateway_drops_total{reason="ipv6_egress_denied"}') +
  $(topo_metric 'wtrelay_nat_refused_total{reason="local"}')))
[ "$denied" -ge 4 ] || fail "refusals counted $denied, want 4"
# a global multicast group: not the gateway's to route (ignored, counted)
ign=$(topo_metric 'wtrelay_gateway_drops_total{reason="ipv6_not_for_gateway"}')
ip netns exec "$NS_VMA" python3 -c '
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex("vma"))
s.sendto(b"x", ("ff0e::1234", 9))'
ign2=$(topo_metric 'wtrelay_gateway_drops_total{reason="ipv6_not_for_gateway"}')
[ "$ign2" -gt "$ign" ] || fail "the multicast datagram was not counted as ignored ($ign -> $ign2)"
[ "$(topo_metric 'wtrelay_nat_ipv6_flows_opened_total{protocol="udp"}')" = 6 ] ||
  fail "a refused destination opened a UDP flow"
pass "fc00::1, ::1, fe80::1234 and ::ffff:198.18.0.2 refused at once (administratively prohibited, $denied counted); ff0e::1234 not routed"

# the relay host loses its IPv6 route: no more translation; the VM still
# has its default route (the RA's lifetime runs), and a TCP connect fails
# fast on the gateway's ICMPv6 no route instead of timing out
ip -n "$NS_R" -6 route del default via 2001:db8:1::2
sleep 0.3
out=$(ip netns exec "$NS_VMA" timeout 20 python3 -c '
import errno, socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.settimeout(10)
t = time.time()
try:
    s.connect(("2001:db8:1::2", 8080)); print("connected")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), int((time.time() - t) * 1000))') || fail "connect: $out"
read -r err ms <<<"$out"
case "$err" in ENETUNREACH | EHOSTUNREACH) ;; *) fail "TCP connect without a route on the relay host: $out" ;; esac
[ "$ms" -lt 3000 ] || fail "the connect took $ms ms to fail"
[ "$(topo_metric 'wtrelay_gateway_drops_total{reason="ipv6_no_route"}')" -ge 1 ] || fail "no_route not counted"
pass "relay host without an IPv6 route: vma's TCP connect to [$INET6]:8080 fails with $err in $ms ms (ICMPv6 no route)"

kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status on SIGTERM"
pass "relay exits 0"
