#!/usr/bin/env bash
# The NAT against hosts and VMs that are not the guest's peers, with real
# kernels across real links (tests/netns/topo.sh; per-run prefix, deleted
# by the trap):
#   relay  - wtrelay, defaults except --egress-allow 198.18.0.0/15,
#            --dns-upstream 198.18.0.2 and --udp-timeout 3
#   inet   - 198.18.0.2 (the host the VMs talk to: UDP on 7000, a fake DNS
#            upstream on 53 that logs each query's id and source port and
#            never answers *.flood.example) and 198.18.0.3 (an unrelated
#            host on the same namespace)
#   vma, vmb - VM kernels behind wtrelay-tap --configure on client hosts 1, 2
# Measured, printed as "figure:" lines, then asserted:
#   1. injection: datagrams the unrelated host (198.18.0.3) and another
#      port of the peer (198.18.0.2:7001) send into VM a's mapping that
#      reach VM a (the peer's own answer must arrive);
#   2. refresh: datagrams from the peer that reach VM a more than
#      --udp-timeout + 2 s after VM a's only datagram;
#   3. own address added after start: 198.18.0.9/32 on lo in the relay's
#      namespace with UDP and TCP listeners; reached from VM a by UDP, TCP,
#      ping;
#   4. DNS: ids and source ports of 20 queries of VM b at the upstream;
#   5. DNS flood: VM a sends 1 500 unanswered queries/s for 9 s; VM b
#      resolves 8 names during the flood (2 s each, one try).
# FIGURES_ONLY=1 prints the figures and skips the assertions (used to
# measure an older build: BUILD_DIR=... FIGURES_ONLY=1).
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
source "$(dirname "$0")/topo.sh"
topo_need_tap
topo_need ping python3
topo_init wn
topo_relay_host
topo_inet_host
topo_vm_pair 1500 1500
ip -n "$NS_I" addr add 198.18.0.3/24 dev "${TOPO_P}i0"

check() { # condition-as-exit-status message
  if [ "${FIGURES_ONLY:-0}" = 1 ]; then return 0; fi
  "$@"
}

# the test internet: the fake DNS upstream on 53 (inetsrv.py), the peer on
# 7000 (answers, then the injections)
topo_inet_servers --dns 198.18.0.2:53 --dns-log "$TMP/dns.log" --dns-silent flood.example
ip netns exec "$NS_I" python3 - "$TMP" >"$TMP/peer.log" 2>&1 <<'PY' &
import socket, sys, time
tmp = sys.argv[1]
def peer():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.18.0.2", 7000))
    other_port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); other_port.bind(("198.18.0.2", 7001))
    other_host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); other_host.bind(("198.18.0.3", 0))
    while True:
        d, a = s.recvfrom(2048)
        if d == b"inject-me":
            open(tmp + "/mapping", "w").write("%s %d\n" % a)
            s.sendto(b"legit", a)
            time.sleep(0.2)
            for i in range(20):
                other_host.sendto(b"inject-host", a)
                other_port.sendto(b"inject-port", a)
        elif d == b"keep-me":
            for i in range(16):   # 8 s of inbound traffic, none from the guest
                s.sendto(b"keep %.1f" % (i * 0.5), a)
                time.sleep(0.5)
peer()
PY
PIDS+=("$!")

topo_start_relay --egress-allow 198.18.0.0/15 --dns-upstream 198.18.0.2 --udp-timeout 3 \
  --http-listen 127.0.0.1:9099 --log-level debug
topo_start_tap 1 vma "$NS_VMA" 52:54:00:aa:00:01 --configure
topo_start_tap 2 vmb "$NS_VMB" 52:54:00:bb:00:02 --configure
IP_A=$(topo_wait_ip "$NS_VMA" vma)
IP_B=$(topo_wait_ip "$NS_VMB" vmb)
vm_py() { # netns, python code, args...
  local ns=$1 code=$2
  shift 2
  ip netns exec "$ns" timeout 90 python3 -c "$code" "$@"
}

# 1. injection into a UDP mapping
got=$(vm_py "$NS_VMA" '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 40000)); s.settimeout(0.3)
s.sendto(b"inject-me", ("198.18.0.2", 7000))
legit = host = port = 0; end = time.monotonic() + 3
while time.monotonic() < end:
    try:
        d, a = s.recvfrom(100)
    except socket.timeout:
        continue
    if d == b"legit": legit += 1
    elif d == b"inject-host": host += 1
    elif d == b"inject-port": port += 1
print(legit, host, port)') || fail "injection probe"
read -r legit inj_host inj_port <<<"$got"
echo "figure: injection: the peer's answer reached VM a $legit of 1; injected by 198.18.0.3: $inj_host of 20; by 198.18.0.2:7001: $inj_port of 20"
check [ "$legit" = 1 ] || fail "the peer's answer did not reach the VM"
check [ "$inj_host" = 0 ] || fail "an unrelated host injected $inj_host datagrams into the mapping"
check [ "$inj_port" = 0 ] || fail "another port of the peer injected $inj_port datagrams"
check pass "UDP filtering: the peer's answer arrives, 0 of 40 injected datagrams do"

# 2. inbound traffic does not keep a mapping alive (--udp-timeout 3)
got=$(vm_py "$NS_VMA" '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 40001)); s.settimeout(0.3)
t0 = time.monotonic()
s.sendto(b"keep-me", ("198.18.0.2", 7000))
early = late = 0; end = t0 + 9
while time.monotonic() < end:
    try:
        d, a = s.recvfrom(100)
    except socket.timeout:
        continue
    if time.monotonic() - t0 > 5: late += 1
    else: early += 1
print(early, late)') || fail "refresh probe"
read -r early late <<<"$got"
echo "figure: refresh: of 16 inbound datagrams over 8 s after VM a's only one, $early arrived within 5 s, $late later (udp-timeout 3 s)"
check [ "$early" -ge 4 ] || fail "the mapping did not carry the peer's first answers ($early)"
check [ "$late" = 0 ] || fail "inbound traffic kept the mapping alive: $late datagrams after the timeout"
check pass "UDP mapping refreshed only by the guest: $early answers early, none after the timeout"

# 3. an address added to the relay host after start
ip -n "$NS_R" addr add 198.18.0.9/32 dev lo
topo_servers "$NS_R" --greet 198.18.0.9:8090:local-tcp --answer 198.18.0.9:7:local-udp
topo_wait_listen "$NS_R" 8090
sleep 0.5
got=$(vm_py "$NS_VMA" '
import socket
n = 0
try:
    c = socket.create_connection(("198.18.0.9", 8090), timeout=3)
    n += c.recv(100) == b"local-tcp"
except OSError:
    pass
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
u.sendto(b"x", ("198.18.0.9", 7))
try:
    n += u.recvfrom(100)[0] == b"local-udp"
except OSError:
    pass
print(n)') || fail "own-address probe"
ping_ok=0
ip netns exec "$NS_VMA" ping -c 1 -W 2 198.18.0.9 >/dev/null 2>&1 && ping_ok=1
reached=$((got + ping_ok))
echo "figure: own address added after start (198.18.0.9): reached from VM a by $reached of 3 (TCP, UDP, ping)"
check [ "$reached" = 0 ] || fail "an address added after start was reached $reached of 3 times"
out=$(ip netns exec "$NS_VMA" ping -c 1 -W 2 198.18.0.9 2>&1) || true
check grep -q 'Packet filtered' <<<"$out" || fail "no admin-prohibited for 198.18.0.9: $out"
# and one removed again is reachable by nobody still (the listener stops)
check pass "own address added after start: refused (0 of 3), ICMP admin prohibited"

# 4. ids and source ports of forwarded queries
: >"$TMP/dns.log"
got=$(vm_py "$NS_VMB" '
import socket, struct
ok = 0
for i in range(20):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    q = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x04test\x07example\x00" + struct.pack("!HH", 1, 1)
    s.sendto(q, ("10.0.2.3", 53))
    try:
        a, _ = s.recvfrom(4096); ok += a[:2] == b"\x42\x42"
    except socket.timeout:
        pass
print(ok)') || fail "DNS probe"
read -r ids ports seq <<<"$(python3 - "$TMP/dns.log" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
ids = [int(r[0]) for r in rows]; ports = [int(r[1]) for r in rows]
# ids whose low 10 bits follow the previous id's (a slot counter shows through)
seq = sum(1 for a, b in zip(ids, ids[1:]) if (b & 1023) == ((a + 1) & 1023))
print(len(set(ids)), len(set(ports)), seq)
PY
)"
echo "figure: DNS: of 20 queries ($got answered), $ids distinct ids, $ports distinct source ports, $seq ids following the previous one in their low 10 bits"
check [ "$got" = 20 ] || fail "only $got of 20 queries answered"
check [ "$ids" -ge 19 ] || fail "ids repeat: $ids distinct of 20"
check [ "$ports" -ge 19 ] || fail "source ports repeat: $ports distinct of 20"
check [ "$seq" -le 2 ] || fail "$seq ids are predictable from the previous one"
check pass "DNS forwarder: ids and source ports vary ($ids and $ports distinct of 20)"

# 5. one VM floods unanswered queries, another resolves
vm_py "$NS_VMA" '
import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setblocking(False)
t0 = time.monotonic(); n = 0
while time.monotonic() - t0 < 9:
    q = struct.pack("!HHHHHH", n & 0xffff, 0x0100, 1, 0, 0, 0) + b"\x01" + bytes([97 + n % 26]) + \
        b"\x05flood\x07example\x00" + struct.pack("!HH", 1, 1)
    try:
        s.sendto(q, ("10.0.2.3", 53)); n += 1
    except BlockingIOError:
        pass
    try:
        while s.recv(4096): pass
    except BlockingIOError:
        pass
    target = t0 + n / 1500.0
    d = target - time.monotonic()
    if d > 0: time.sleep(d)
print(n)' >"$TMP/flood.out" &
FLOOD=$!
PIDS+=("$FLOOD")
sleep 3 # the table has filled (before: 1 024 slots of 5 s) by now
got=$(vm_py "$NS_VMB" '
import socket, struct, time
ok = 0
for i in range(8):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    q = struct.pack("!HHHHHH", 0x5000 + i, 0x0100, 1, 0, 0, 0) + b"\x04test\x07example\x00" + struct.pack("!HH", 1, 1)
    t = time.monotonic()
    s.sendto(q, ("10.0.2.3", 53))
    try:
        a, _ = s.recvfrom(4096); ok += a[:2] == struct.pack("!H", 0x5000 + i) and a[-4:] == bytes([198, 18, 0, 2])
    except socket.timeout:
        pass
    time.sleep(max(0, 0.6 - (time.monotonic() - t)))
print(ok)') || fail "resolver during the flood"
wait "$FLOOD" || true
sent=$(cat "$TMP/flood.out")
echo "figure: DNS flood: VM a sent $sent unanswered queries in 9 s; VM b resolved $got of 8 during the flood"
check [ "$got" = 8 ] || fail "VM b resolved only $got of 8 during VM a's flood"
check pass "DNS share: VM b resolves 8 of 8 while VM a floods ($sent queries)"

ip netns exec "$NS_R" python3 -c '
import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:9099/metrics", timeout=5).read().decode())' \
  >"$TMP/metrics.txt" || fail "/metrics"
grep -E '^wtrelay_(nat_refused_total|host_local_routes|host_route_monitor)' "$TMP/metrics.txt" || true
check grep -q '^wtrelay_nat_refused_total{reason="udp_filtered"} [1-9]' "$TMP/metrics.txt" ||
  fail "/metrics: no udp_filtered"
check grep -q '^wtrelay_nat_refused_total{reason="local"} [1-9]' "$TMP/metrics.txt" ||
  fail "/metrics: no local_refused"
check grep -q '^wtrelay_host_local_routes [1-9]' "$TMP/metrics.txt" || fail "/metrics: no local routes"
kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status on SIGTERM"
counted=$(grep -a 'msg="counters at exit"' "$TMP/relay.err" | grep -o 'nat_security_[a-z_]*=[0-9]*' | tr '\n' ' ')
echo "$counted"
check [ "$(exit_counter nat_security_udp_filtered)" -gt 0 ] || fail "no udp_filtered counted"
check [ "$(exit_counter nat_security_local_refused)" -gt 0 ] || fail "no local_refused counted"
check [ "$(exit_counter nat_security_dns_vm_full)" -gt 0 ] || fail "no dns_vm_full counted"
check pass "counted: $counted"
