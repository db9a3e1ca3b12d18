#!/usr/bin/env bash
# A real path change still works: the client's NAT rebinds its port in the
# middle of a session (nftables rewrites the source port of its QUIC
# packets on client host 1, statelessly, and the destination port of the
# answers back). The relay sees the session come from a new address and
# port; ngtcp2 validates the new path (PATH_CHALLENGE/RESPONSE) and the
# connection follows it: the session keeps answering heartbeats, and its
# "session ended" line names the new port. (A forged packet, by contrast,
# moves nothing: test_paths.sh.)
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
HERE="$(cd "$(dirname "$0")" && pwd)"

source "$HERE/topo.sh"
topo_init wb
topo_relay_host
topo_client_host 1 1500
topo_start_relay

ip netns exec "$NS_C1" "$BUILD_DIR/wtclient" --url "https://$RELAY_ADDR_1:4433/rebind" --cert-hash "$HASH" \
  --heartbeats 2 --hold 4 --late-heartbeats 3 >"$TMP/client.out" 2>"$TMP/client.log" &
CLIENT=$!
PIDS+=("$CLIENT")
port=""
for _ in $(seq 50); do
  port=$(ip netns exec "$NS_C1" ss -Huanp 2>/dev/null | awk '/wtclient/ {n = split($4, a, ":"); print a[n]; exit}')
  [ -n "$port" ] && grep -q 'msg="peer registered"' "$TMP/relay.err" && break
  sleep 0.1
done
[ -n "$port" ] || fail "the client's UDP port not found"
NEW=40777
ip netns exec "$NS_C1" nft -f - <<NFT
table ip rebind {
  chain out { type filter hook output priority -300; udp sport $port notrack udp sport set $NEW; }
  chain in { type filter hook prerouting priority -300; udp dport $NEW notrack udp dport set $port; }
}
NFT
pass "client port $port now appears to the relay as $NEW (stateless nftables rewrite on the client host)"
wait "$CLIENT" || fail "the session did not survive the rebinding: $(tail -3 "$TMP/client.out")"
pass "the session kept working across the new path: 3 late heartbeats answered"
kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status"
grep -q "msg=\"session ended\".*remote=$RELAY_ADDR_1:$NEW\|msg=\"session ended\".*remote=10.81.1.2:$NEW" "$TMP/relay.err" ||
  fail "the relay's session did not follow the new port: $(grep 'session ended' "$TMP/relay.err")"
pass "the relay followed the validated path to port $NEW"
