#!/usr/bin/env bash
# A VM's TCP connection through the NAT survives its client reconnecting.
# Topology (tests/netns/topo.sh): the relay; client host 1 running
# wtrelay-tap (heartbeat 1 s) with its TAP in VM A; a test internet host
# serving 16 MiB at 2 MiB/s. While VM A downloads, the client host's QUIC
# path is blocked (nftables) until the tap gives the relay up and starts a
# new connection; then it is opened again. The new connection registers the
# same MAC while the relay still holds the old session: the relay probes
# it, takes the MAC over (same address, same switch port, the NAT's flows
# keyed by room and address carry on) and the download completes
# byte-exact. With several workers (RELAY_WORKERS=2, ctest
# netns/test_reconnect_w2) the tap reconnects from the same socket, so the
# kernel's 4-tuple hash puts the new connection on the old one's worker:
# the takeover is local there and the NAT flows (per worker) carry on.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
HERE="$(cd "$(dirname "$0")" && pwd)"

source "$HERE/topo.sh"
topo_init wr
topo_relay_host
topo_inet_host
topo_client_host 1 1500
topo_vm a
topo_start_relay --egress-allow 198.18.0.0/15 --log-level debug # the counters at exit
topo_start_tap 1 vma "$NS_VMA" 52:54:00:aa:00:07 --configure --heartbeat 1
IP_A=$(topo_wait_ip "$NS_VMA" vma)
head -c 16777216 /dev/urandom >"$TMP/blob"
want=$(sha256sum "$TMP/blob" | cut -d' ' -f1)
topo_bg "$NS_I" python3 "$HERE/tcpxfer.py" serve 198.18.0.2 8080 "$TMP/blob" 2097152 >"$TMP/srv.log" 2>&1
topo_wait_listen "$NS_I" 8080
ip netns exec "$NS_VMA" ping -c 1 -W 2 198.18.0.2 >/dev/null || fail "VM A cannot reach the internet host"

ip netns exec "$NS_VMA" timeout 90 python3 "$HERE/tcpxfer.py" get 198.18.0.2 8080 "$TMP/got" >"$TMP/get.out" 2>"$TMP/get.log" &
GET=$!
PIDS+=("$GET")
sleep 2
ip netns exec "$NS_C1" nft -f - <<NFT
table inet blk {
  chain o { type filter hook output priority 0; udp dport 4433 drop; }
  chain i { type filter hook input priority 0; udp sport 4433 drop; }
}
NFT
t0=$(date +%s%N)
for _ in $(seq 150); do grep -q 'relay not answering heartbeats' "$TMP/tap-vma.err" && break; sleep 0.1; done
grep -q 'relay not answering heartbeats' "$TMP/tap-vma.err" || fail "the tap did not notice the dead path"
sleep 1
ip netns exec "$NS_C1" nft delete table inet blk
t1=$(date +%s%N)
pass "QUIC path of client host 1 blocked for $(( (t1 - t0) / 1000000 )) ms: the tap gave the old connection up"

for _ in $(seq 300); do [ "$(grep -c 'msg="registered"' "$TMP/tap-vma.err")" -ge 2 ] && break; sleep 0.1; done
[ "$(grep -c 'msg="registered"' "$TMP/tap-vma.err")" -ge 2 ] || fail "the tap did not register again"
grep -q 'msg="MAC taken over".*mac=52:54:00:aa:00:07' "$TMP/relay.err" ||
  fail "the relay did not take the MAC over: $(grep -E 'register|taken' "$TMP/relay.err" | tail -5)"
ip2=$(grep 'msg="registered"' "$TMP/tap-vma.err" | tail -1 | sed 's/.* ip=\([0-9.]*\).*/\1/')
[ "$ip2" = "$IP_A" ] || fail "the new connection got $ip2, the VM has $IP_A"
where="on one worker"
grep -q 'msg="MAC taken over".*asker_worker=' "$TMP/relay.err" && where="across workers"
# the relay's own count (the default is one per CPU, not RELAY_WORKERS):
relay_workers() { grep -o 'msg="relay started".* workers=[0-9]*' "$TMP/relay.err" | grep -o '[0-9]*$' | head -1; }
pass "the new connection registered the same MAC and got the same address $ip2 ($(grep -o 'msg="MAC taken over".*' "$TMP/relay.err" | grep -o 'ms=[0-9.]*'), $where, workers=$(relay_workers))"

wait "$GET" || fail "the download did not complete: $(cat "$TMP/get.out" "$TMP/get.log")"
read -r n sha secs gap <"$TMP/get.out"
[ "$n" = 16777216 ] && [ "$sha" = "$want" ] || fail "download: $n bytes, sha256 $sha"
pass "the VM's TCP download through the NAT survived the reconnect: 16 MiB byte-exact in $secs s (longest stall $gap s)"
kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status on SIGTERM"
opened=$(exit_counter tcp_opened)
[ "$opened" = 1 ] || fail "the NAT opened $opened connections"
pass "one NAT connection from start to end; relay exits 0"
