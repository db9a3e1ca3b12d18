#!/usr/bin/env bash
# The WebSocket fallback for real kernels where UDP is blocked (issue 20),
# across real links (tests/netns/topo.sh): client host 1 sits on an MTU
# 1280 link and its UDP to the relay is dropped by nftables (the download
# also runs with 2 % random loss on that link); its wtrelay-tap with --transport ws gives a VM
# kernel DHCP, ping of the gateway and an 8 MiB TCP download from the test
# internet host through the NAT, byte-exact. Then --transport auto: on that
# host it settles on the WebSocket (after its WebTransport attempt), on
# client host 2 (a clean link) on WebTransport; the relay's status says
# which session is which, and the two VMs ping each other with full-size
# frames across the two transports. Namespaces: per-run prefix, deleted by the trap.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
SOURCE_DIR=${SOURCE_DIR:-.}

source "$(dirname "$0")/topo.sh"
topo_need_tap
topo_need ping busybox python3 nft curl
topo_init wf
topo_relay_host
topo_vm_pair 1280 1500
topo_inet_host
topo_start_relay --egress-allow 198.18.0.0/15 --http-listen 127.0.0.1:8433 --log-level debug
NS_A=$NS_VMA NS_B=$NS_VMB

# client host 1: no UDP to the relay at all (QUIC blocked), TCP open
ip netns exec "$NS_C1" nft -f - <<'NFT'
table inet wtblock {
  chain out { type filter hook output priority 0; udp dport 4433 counter drop; }
}
NFT

# 1. --transport ws: the tap registers over the WebSocket
topo_start_tap 1 vma "$NS_A" 52:54:00:aa:00:01 --transport ws --heartbeat 2
TAP1=${PIDS[-1]}
for _ in $(seq 100); do grep -q 'msg="registered"' "$TMP/tap-vma.err" 2>/dev/null && break; sleep 0.1; done
grep -q 'msg="registered".*transport=websocket' "$TMP/tap-vma.err" ||
  fail "the tap did not register over the WebSocket: $(cat "$TMP/tap-vma.err")"
pass "UDP to the relay dropped on client host 1: wtrelay-tap --transport ws registered over the WebSocket"

# 2. DHCP through the WebSocket session
topo_dhcp "$NS_A" vma
grep -q 'ip=10\.0\.2\.[0-9]* mask=[0-9.]* router=10\.0\.2\.2' "$TMP/dhcp.env" || fail "DHCP: $(cat "$TMP/dhcp.env")"
pass "DHCP over the WebSocket: $(cat "$TMP/dhcp.env")"

# 3. ping the gateway and the internet host; 8 MiB TCP download through the NAT
out=$(ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 2 10.0.2.2) || fail "ping 10.0.2.2: $out"
out=$(ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 2 198.18.0.2) || fail "ping 198.18.0.2: $out"
pass "ping of the gateway and through the ICMP NAT over the WebSocket"
topo_tcp_serve "$NS_I" 198.18.0.2 5002 8388608
topo_loss 1 2 # and 2 % random loss each way on client host 1's MTU 1280 link
topo_tcp_get "$NS_A" 198.18.0.2 5002 90
lost=$(topo_loss_drops 1)
topo_loss 1 0
[ "$lost" -gt 0 ] || fail "the loss rules dropped nothing"
pass "8 MiB TCP download through the NAT over the WebSocket across an MTU 1280 link with 2 % loss ($lost packets dropped), exact bytes, in $TOPO_XFER_S s"
drops=$(ip netns exec "$NS_C1" nft list chain inet wtblock out | grep -o 'packets [0-9]*' | cut -d' ' -f2)
[ "$drops" = 0 ] || fail "the ws tap sent $drops UDP datagrams to the relay"

# 4. --transport auto: WebSocket on the blocked host, WebTransport on the clean one
kill -TERM "$TAP1"
wait "$TAP1" 2>/dev/null || true
: >"$TMP/tap-vma.err"
topo_start_tap 1 vma "$NS_A" 52:54:00:aa:00:01 --transport auto --heartbeat 2 --configure
topo_start_tap 2 vmb "$NS_B" 52:54:00:bb:00:02 --transport auto --heartbeat 2 --configure
for _ in $(seq 150); do
  grep -q 'msg="registered"' "$TMP/tap-vma.err" 2>/dev/null &&
    grep -q 'msg="registered"' "$TMP/tap-vmb.err" 2>/dev/null && break
  sleep 0.1
done
grep -q 'msg="registered".*transport=websocket' "$TMP/tap-vma.err" ||
  fail "auto on the blocked host: $(cat "$TMP/tap-vma.err")"
grep -q 'msg="registered".*transport=webtransport' "$TMP/tap-vmb.err" ||
  fail "auto on the clean host: $(cat "$TMP/tap-vmb.err")"
drops=$(ip netns exec "$NS_C1" nft list chain inet wtblock out | grep -o 'packets [0-9]*' | cut -d' ' -f2)
[ "$drops" -gt 0 ] || fail "auto never tried WebTransport on the blocked host"
pass "--transport auto: the WebSocket where UDP is blocked (after $drops dropped datagrams), WebTransport on a clean link"
# (each worker fills its part of /status once someone asks: ask again)
for _ in $(seq 30); do
  st=$(ip netns exec "$NS_R" curl -s http://127.0.0.1:8433/status)
  echo "$st" | python3 -c '
import json, sys
s = json.load(sys.stdin)["sessions"]
t = sorted((x["mac"], x["transport"]) for x in s if x["state"] == "registered")
assert t == [("52:54:00:aa:00:01", "websocket"), ("52:54:00:bb:00:02", "webtransport")], t
' 2>/dev/null && break
  sleep 0.2
done
echo "$st" | grep '"transport":"websocket"' >/dev/null && echo "$st" | grep '"transport":"webtransport"' >/dev/null ||
  fail "status: $st"
pass "/status names each session's transport"
IP_A=$(topo_wait_ip "$NS_A" vma)
IP_B=$(topo_wait_ip "$NS_B" vmb)
out=$(ip netns exec "$NS_B" ping -c 3 -i 0.2 -W 2 -s 1472 "$IP_A") || fail "ping B -> A: $out"
pass "full-size frames between a WebTransport VM ($IP_B) and a WebSocket VM ($IP_A) of one room: $(echo "$out" | grep -o '[0-9]* received')"

for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
pass "cleanup by trap"
