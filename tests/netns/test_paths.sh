#!/usr/bin/env bash
# QUIC paths cannot be hijacked by forged packets. Topology
# (tests/netns/topo.sh): the relay; client host 1 with a live session
# (wtclient); client host 3, the attacker, on its own link. The attacker
# learns the session's connection id (sniffed on client host 1's link, as
# an on-path observer could) and sends 300 undecryptable 57-byte
# short-header packets carrying it from its own address. Before the fix the
# relay redirected the session's next packets to the attacker; now ngtcp2
# drops them and the relay sends nothing there, the session goes on, and
# the per-address accounting (--max-sessions-per-ip 2) still counts the
# victim's address, not the attacker's.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
HERE="$(cd "$(dirname "$0")" && pwd)"

source "$HERE/topo.sh"
topo_init wp
topo_relay_host
topo_client_host 1 1500
topo_client_host 3 1500
topo_start_relay --max-sessions-per-ip 2

# sniff one short-header packet of the victim toward the relay: its DCID
# (started before the victim, which then sends only during its first
# second and after its hold)
cat >"$TMP/sniff.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))  # ETH_P_ALL: outgoing too
s.bind((sys.argv[1], 0))
s.settimeout(1)
end = time.monotonic() + 8
while time.monotonic() < end:
    try:
        f = s.recv(4096)
    except socket.timeout:
        continue
    ip = f[14:]
    if f[12:14] != b"\x08\x00" or ip[9] != 17:
        continue
    udp = ip[(ip[0] & 15) * 4:]
    if int.from_bytes(udp[2:4], "big") != 4433:
        continue
    q = udp[8:]
    if q and not q[0] & 0x80 and len(q) > 17:
        print(q[1:17].hex())
        break
PY
ip netns exec "$NS_C1" timeout 10 python3 "$TMP/sniff.py" "${TOPO_P}c1" >"$TMP/cid" 2>"$TMP/sniff.log" &
SNIFF=$!
PIDS+=("$SNIFF")
sleep 0.5

# the victim: registers, holds 6 s, then 3 more heartbeats that must be answered
ip netns exec "$NS_C1" "$BUILD_DIR/wtclient" --url "https://$RELAY_ADDR_1:4433/p" --cert-hash "$HASH" \
  --hold 6 --late-heartbeats 3 --heartbeats 1 >"$TMP/victim.out" 2>"$TMP/victim.log" &
VICTIM=$!
PIDS+=("$VICTIM")
wait "$SNIFF" || true
cid=$(cat "$TMP/cid")
[ -n "$cid" ] || fail "no short-header packet of the victim seen"
pass "the victim's connection id (seen on its link): $cid"

# the attacker: 300 forged packets with that id from 10.81.3.2, then listens
got=$(ip netns exec "$NS_C3" timeout 20 python3 - "$RELAY_ADDR_3" "$cid" <<'PY'
import os, socket, sys, time
relay, cid = sys.argv[1], bytes.fromhex(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40999))
for _ in range(300):
    s.sendto(bytes([0x40 | (os.urandom(1)[0] & 0x3f)]) + cid + os.urandom(40), (relay, 4433))
    time.sleep(0.005)
s.settimeout(0.2)
n, end = 0, time.monotonic() + 2
while time.monotonic() < end:
    try:
        n += len(s.recv(65536))
    except socket.timeout:
        pass
print(n)
PY
)
[ "$got" = 0 ] || fail "the relay sent $got bytes to the attacker's address"
pass "300 forged packets with the live connection id from another host: 0 bytes sent there"

# the victim's address still has its own count: a second session from it opens
ip netns exec "$NS_C1" "$BUILD_DIR/wtclient" --url "https://$RELAY_ADDR_1:4433/p" --cert-hash "$HASH" \
  --mac 52:54:00:12:34:99 >"$TMP/second.out" 2>&1 || fail "a second session from the victim's address was refused: $(tail -2 "$TMP/second.out")"
pass "the victim's address opens a second session (--max-sessions-per-ip 2 counts validated addresses only)"
wait "$VICTIM" || fail "the victim's session broke: $(cat "$TMP/victim.out" "$TMP/victim.log" | tail -5)"
pass "the victim's session kept working: 3 late heartbeats answered after the forged packets"
kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status"
