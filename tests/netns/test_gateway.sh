#!/usr/bin/env bash
# The gateway and NAT with real kernels, across real links
# (tests/netns/topo.sh; per-run prefix, deleted by the trap):
#   relay  - wtrelay bound to [::]; a veth to "inet", 198.18.0.1/24
#   c1, c2 - client hosts running wtrelay-tap, on veth links to the relay
#            (MTU 1500 and 1280)
#   inet   - the test internet host 198.18.0.2: UDP echo (port 7), a small
#            DNS server (port 53)
#   vma    - a VM kernel on TAP vma, address by DHCP (busybox udhcpc)
#   vmb    - a VM kernel on TAP vmb, address by wtrelay-tap --configure
# Traffic goes only to addresses of these namespaces (testing.md).
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
source "$(dirname "$0")/topo.sh"
topo_need_tap
topo_need ping busybox python3
topo_init wg
topo_relay_host
topo_inet_host
topo_vm_pair 1500 1280
NS_A=$NS_VMA NS_B=$NS_VMB
# closed ping_group_range in the raw variant: the relay must use a raw socket
[ "${ICMP_MODE:-dgram}" = raw ] && ip netns exec "$NS_R" sysctl -qw net.ipv4.ping_group_range="1 0"

# the test internet: UDP echo and DNS on 198.18.0.2
topo_inet_servers --echo 198.18.0.2:7 --dns 198.18.0.2:53

topo_start_relay --egress-allow 198.18.0.0/15 --dns-upstream 198.18.0.2 --log-level debug
grep -q 'icmp_nat=1' "$TMP/relay.err" || fail "ICMP NAT not enabled"
if [ "${ICMP_MODE:-dgram}" = raw ]; then
  grep -q 'ICMP NAT uses a raw socket' "$TMP/relay.err" || fail "expected the raw-socket ICMP NAT"
  pass "ping_group_range left closed: ICMP NAT falls back to a raw socket (CAP_NET_RAW)"
fi

start_tap() { # client-host name netns mac [--configure]
  topo_start_tap "$@"
}
start_tap 1 vma "$NS_A" 52:54:00:aa:00:01
start_tap 2 vmb "$NS_B" 52:54:00:bb:00:02 --configure
for _ in $(seq 100); do grep -q 'msg="registered"' "$TMP/tap-vma.err" 2>/dev/null && break; sleep 0.1; done
REG_A=$(grep -o 'msg="registered" tap=vma ip=[0-9.]*' "$TMP/tap-vma.err" | head -1 | sed 's/.*ip=//')
[ -n "$REG_A" ] || fail "vma did not register"

# 1. DHCP: the address agrees with Register/Assigned
topo_dhcp "$NS_A" vma
env=$(cat "$TMP/dhcp.env")
IP_A=$(echo "$env" | sed 's/.*ip=\([0-9.]*\).*/\1/')
[ "$IP_A" = "$REG_A" ] || fail "DHCP gave $IP_A, Register/Assigned gave $REG_A"
echo "$env" | grep -q 'mask=24 router=10.0.2.2 dns=10.0.2.3 mtu=1500 serverid=10.0.2.2' ||
  fail "DHCP options: $env"
pass "DHCP (busybox udhcpc): $env — the same address as Assigned"

IP_B=$(topo_wait_ip "$NS_B" vmb)

# 2. ping the gateway and the DNS address
out=$(ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 2 10.0.2.2) || fail "ping 10.0.2.2: $out"
ip netns exec "$NS_B" ping -c 1 -W 2 10.0.2.3 >/dev/null || fail "ping 10.0.2.3"
ip -n "$NS_A" neigh show 10.0.2.2 | grep -q 52:55:0a:00:02:02 || fail "ARP for the gateway"
pass "ARP and ping to the gateway: $(echo "$out" | grep -o 'rtt.*')"

vm_py() { # netns, python code
  ip netns exec "$1" timeout 90 python3 -c "$2"
}
# 3. DNS through the forwarder
DNS_PY='
import socket, struct, sys
q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x04TeSt\x07example\x00" + struct.pack("!HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(q, ("10.0.2.3", 53)); a, src = s.recvfrom(4096)
assert src == ("10.0.2.3", 53), src
assert a[:2] == b"\x12\x34", "id not restored"
print(".".join(str(b) for b in a[-4:]))'
got=$(vm_py "$NS_A" "$DNS_PY") || fail "DNS query through 10.0.2.3"
[ "$got" = 198.18.0.2 ] || fail "DNS answer $got"
pass "DNS forwarder: test.example resolves to $got through 10.0.2.3 (id restored, 0x20 case)"

# 4. UDP NAT echo and ICMP NAT ping to the internet host
ECHO_PY='
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.bind(("0.0.0.0", 40000))
s.sendto(sys.argv[1].encode(), ("198.18.0.2", 7)); d, _ = s.recvfrom(4096); print(d.decode())'
got=$(ip netns exec "$NS_A" timeout 20 python3 -c "$ECHO_PY" from-a) || fail "UDP echo from A"
[ "$got" = echo:from-a ] || fail "UDP echo answer '$got'"
out=$(ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 2 198.18.0.2) || fail "ping 198.18.0.2: $out"
pass "UDP NAT echo and ICMP NAT ping to 198.18.0.2: $(echo "$out" | grep -o 'rtt.*')"

# 5. two VMs on the same source port get their own answers
ip netns exec "$NS_A" timeout 20 python3 -c "$ECHO_PY" vm-a >"$TMP/a.out" &
pa=$!
ip netns exec "$NS_B" timeout 20 python3 -c "$ECHO_PY" vm-b >"$TMP/b.out" &
pb=$!
wait $pa || fail "A echo"
wait $pb || fail "B echo"
[ "$(cat "$TMP/a.out")" = echo:vm-a ] && [ "$(cat "$TMP/b.out")" = echo:vm-b ] ||
  fail "same source port: A got '$(cat "$TMP/a.out")', B got '$(cat "$TMP/b.out")'"
pass "two VMs using source port 40000 at once each get their own answer"

# 6. denied destinations: the relay's own address, a private range
out=$(ip netns exec "$NS_A" ping -c 1 -W 2 198.18.0.1 2>&1) && fail "ping to the relay's own address passed"
echo "$out" | grep -q 'Packet filtered' || fail "no admin-prohibited for 198.18.0.1: $out"
out=$(ip netns exec "$NS_A" ping -c 1 -W 2 192.168.1.1 2>&1) && fail "ping to 192.168.1.1 passed"
echo "$out" | grep -q 'Packet filtered' || fail "no admin-prohibited for 192.168.1.1: $out"
pass "denied destinations (own address, 192.168/16) answered with ICMP admin-prohibited"

# 6b. an ICMP error the host receives (port unreachable from the internet
# host) reaches the guest, which sees ECONNREFUSED
REFUSED_PY='
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.connect(("198.18.0.2", 9))
s.send(b"anyone?")
try:
    s.recv(100); print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")'
got=$(vm_py "$NS_A" "$REFUSED_PY")
[ "$got" = refused ] || fail "port unreachable from the internet host did not reach the guest: $got"
pass "ICMP port unreachable for a NATed datagram reaches the guest (connect()ed UDP sees ECONNREFUSED)"

# 7. anti-spoofing: a packet from another source address is not NATed
SPOOF_PY='
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5)
s.bind(("10.0.2.99", 0))
s.sendto(b"spoof", ("198.18.0.2", 7))
try:
    s.recvfrom(100); print("answered")
except socket.timeout:
    print("dropped")'
ip -n "$NS_A" addr add 10.0.2.99/32 dev vma
got=$(vm_py "$NS_A" "$SPOOF_PY")
ip -n "$NS_A" addr del 10.0.2.99/32 dev vma
[ "$got" = dropped ] || fail "spoofed source address was NATed"
pass "a packet with a source address that is not the session's is dropped"

# 8. UDP NAT round trips per second (for the record, not a threshold)
RATE_PY='
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.connect(("198.18.0.2", 7)); n = 0; t0 = time.monotonic()
while time.monotonic() - t0 < 2:
    s.send(b"x" * 64); s.recv(200); n += 1
print(int(n / (time.monotonic() - t0)))'
rate=$(vm_py "$NS_A" "$RATE_PY") || fail "round-trip loop"
pass "UDP NAT: $rate sequential round trips/s between a VM namespace and the internet host"

# 9. TCP NAT (skipped in the raw-ICMP variant: the same code either way)
if [ "${ICMP_MODE:-dgram}" != raw ]; then
  head -c 52428800 /dev/urandom >"$TMP/big.bin"
  want=$(sha256sum "$TMP/big.bin" | cut -d' ' -f1)
  ip netns exec "$NS_I" python3 - "$TMP" >"$TMP/tcpsrv.log" 2>&1 <<'PY' &
import hashlib, os, socket, sys, threading
tmp = sys.argv[1]
data = open(os.path.join(tmp, "big.bin"), "rb").read()
def serve(port, handler):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("198.18.0.2", port)); s.listen(256)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()
def download(c):          # HTTP-ish: any request, then the 50 MB file
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data); c.close()
def upload(c):            # reads to EOF, answers the SHA-256
    h = hashlib.sha256()
    while True:
        b = c.recv(65536)
        if not b: break
        h.update(b)
    c.sendall(h.hexdigest().encode()); c.close()
def sized(c):             # "N\n" -> N bytes of a pattern of N
    line = b""
    while not line.endswith(b"\n"): line += c.recv(1)
    n = int(line)
    c.sendall(bytes((n + i) & 255 for i in range(n))); c.close()
for port, h in ((8080, download), (8081, upload)):
    threading.Thread(target=serve, args=(port, h), daemon=True).start()
serve(8082, sized)
PY
  PIDS+=("$!")
  sleep 0.5
  t0=$(date +%s%N)
  got=$(vm_py "$NS_A" '
import hashlib, socket
s = socket.create_connection(("198.18.0.2", 8080), timeout=30)
s.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf: buf += s.recv(65536)
head, body = buf.split(b"\r\n\r\n", 1)
h = hashlib.sha256(body); n = len(body)
out = open("'"$TMP"'/got.bin", "wb"); out.write(body)
while True:
    b = s.recv(262144)
    if not b: break
    h.update(b); n += len(b); out.write(b)
print(n, h.hexdigest())') || { kill -TERM "$RELAY_PID"; sleep 0.5; fail "TCP download failed: $(grep -o 'tcp_[a-z_]*=[0-9]*' "$TMP/relay.err" | tr '\n' ' ')"; }
  t1=$(date +%s%N)
  [ "$got" = "52428800 $want" ] || { mkdir -p /tmp/dbg; cp "$TMP/big.bin" "$TMP/got.bin" "$TMP/relay.err" /tmp/dbg/; false; } || fail "50 MB download: got '$got' $(cmp "$TMP/big.bin" "$TMP/got.bin" | head -1)"
  pass "TCP NAT: 50 MB downloaded from the internet host, SHA-256 matches ($(( 400 * 1000 / ((t1 - t0) / 1000000 + 1) )) Mbit/s)"
  head -c 20971520 /dev/urandom >"$TMP/up.bin"
  want=$(sha256sum "$TMP/up.bin" | cut -d' ' -f1)
  t0=$(date +%s%N)
  got=$(ip netns exec "$NS_A" timeout 60 python3 -c '
import socket, sys
s = socket.create_connection(("198.18.0.2", 8081), timeout=30)
s.sendall(open(sys.argv[1], "rb").read()); s.shutdown(socket.SHUT_WR)
print(s.recv(100).decode())' "$TMP/up.bin") || { kill -TERM "$RELAY_PID"; sleep 0.5; fail "TCP upload failed: $(grep -o 'tcp_[a-z_]*=[0-9]*' "$TMP/relay.err" | tr '\n' ' ') tap: $(grep -o 'to_relay[a-z_]*=[0-9]*\|from_relay[a-z_]*=[0-9]*' "$TMP/tap-vma.err" | tr '\n' ' ')"; }
  t1=$(date +%s%N)
  [ "$got" = "$want" ] || fail "20 MB upload: server saw $got"
  pass "TCP NAT: 20 MB uploaded, the server's SHA-256 matches ($(( 160 * 1000 / ((t1 - t0) / 1000000 + 1) )) Mbit/s)"
  got=$(vm_py "$NS_A" '
import socket, threading
bad = []
def one(i):
    n = 1000 + i * 997
    try:
        s = socket.create_connection(("198.18.0.2", 8082), timeout=20)
        s.sendall(b"%d\n" % n); d = b""
        while True:
            b = s.recv(65536)
            if not b: break
            d += b
        if d != bytes((n + k) & 255 for k in range(n)): bad.append(i)
    except Exception as e:
        bad.append((i, str(e)))
ts = [threading.Thread(target=one, args=(i,)) for i in range(100)]
[t.start() for t in ts]; [t.join() for t in ts]
print("bad", bad)') || fail "100 parallel connections"
  [ "$got" = "bad []" ] || fail "parallel connections: $got"
  pass "TCP NAT: 100 parallel connections each got their bytes exactly"
  # 3 % random loss each way on the VM's side (nftables; no netem here)
  ip netns exec "$NS_A" nft -f - <<'NFT'
table inet wtloss {
  chain o { type filter hook output priority 0; numgen random mod 100 < 3 drop; }
  chain i { type filter hook input priority 0; numgen random mod 100 < 3 drop; }
}
NFT
  t0=$(date +%s%N)
  got=$(vm_py "$NS_A" '
import socket
n = 4000000
s = socket.create_connection(("198.18.0.2", 8082), timeout=20)
s.sendall(b"%d\n" % n); d = bytearray()
while True:
    b = s.recv(262144)
    if not b: break
    d += b
print("ok" if bytes(d) == bytes((n + k) & 255 for k in range(n)) else "corrupt %d" % len(d))') ||
    fail "TCP under 3 % loss: $got"
  t1=$(date +%s%N)
  ip netns exec "$NS_A" nft delete table inet wtloss
  [ "$got" = ok ] || fail "TCP under 3 % loss: $got"
  pass "TCP NAT: 4 MB byte-exact with 3 % random loss each way on the VM's TAP ($(( (t1 - t0) / 1000000 )) ms)"
  got=$(vm_py "$NS_A" '
import socket, time
t = time.monotonic()
try:
    socket.create_connection(("198.18.0.2", 1), timeout=5); print("connected")
except ConnectionRefusedError:
    print("refused %.2f" % (time.monotonic() - t))
except Exception as e:
    print(type(e).__name__)')
  case "$got" in refused*) ;; *) fail "closed port: $got" ;; esac
  pass "TCP NAT: a closed port is refused at once ($got s)"
  got=$(vm_py "$NS_A" '
import socket
try:
    socket.create_connection(("198.18.0.1", 80), timeout=5); print("connected")
except OSError as e:
    print(type(e).__name__)')
  [ "$got" != connected ] && [ "$got" != TimeoutError ] || fail "denied TCP destination: $got"
  pass "TCP NAT: a denied destination is refused ($got)"
fi

kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status on SIGTERM"
udp_out=$(exit_counter nat_udp_out) || fail "no NAT counters at exit"
[ "$udp_out" -gt 0 ] || fail "no UDP NAT packet counted"
pass "relay exits 0; gateway_dhcp_in=$(exit_counter gateway_dhcp_in) gateway_offers=$(exit_counter gateway_offers) gateway_acks=$(exit_counter gateway_acks) nat_udp_out=$udp_out"
