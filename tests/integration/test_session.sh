#!/usr/bin/env bash
# Native client against the real relay: register, heartbeat, junk, duplicate
# MAC, rooms, registration timeout, many sessions, SIGTERM.
. "$(dirname "$0")/lib.sh"

start_relay --register-timeout 2 --heartbeat-interval 1
kill -0 "$RELAY_PID" || fail "relay died"

# 1. register + heartbeats
out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --heartbeats 3 --timeout 10) || fail "register: $out"
echo "$out" | grep -q 'state=registered status=200 ip=10.0.2.254 gateway=10.0.2.2 acks=3' ||
  fail "unexpected register output: $out"
pass "register gets Assigned 10.0.2.254, 3 heartbeats acknowledged"

# 2. same MAC again after the first session ended: same address back
out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --timeout 10) || fail "re-register: $out"
echo "$out" | grep -q 'ip=10.0.2.254' || fail "MAC did not get its old IP back: $out"
pass "a MAC whose session ended gets its old address"

# 3. junk datagrams are dropped, the session stays alive
out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --junk --heartbeats 2 --mac 52:54:00:ab:01:01 --timeout 10) ||
  fail "junk: $out"
echo "$out" | grep -q 'state=registered.*acks=2' || fail "session did not survive junk: $out"
pass "empty, unknown-type and broken-JSON datagrams ignored; session alive"

# 4. duplicate MAC held by a live session is refused with Error
out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --sessions 2 --same-mac --expect-error --timeout 10) ||
  fail "duplicate MAC: $out"
echo "$out" | grep -q 'last_error="MAC address already registered' || fail "no Error for duplicate MAC: $out"
[ "$(echo "$out" | json_field registered)" = 1 ] || fail "expected exactly one registration: $out"
pass "duplicate MAC refused with Error, never hijacked"

# 5. rooms have separate pools
out=$("$CLIENT" --url "$URL/room-b?token=x" --cert-hash "$HASH" --mac 52:54:00:ab:02:01 --timeout 10) ||
  fail "room: $out"
echo "$out" | grep -q 'ip=10.0.2.254' || fail "room-b should start its own pool at .254: $out"
pass "a second room has its own address pool"

# 6. wrong certificate hash fails the handshake
bad=0000000000000000000000000000000000000000000000000000000000000000
if "$CLIENT" --url "$URL/" --cert-hash "$bad" --timeout 5 >"$TMP/bad.out" 2>&1; then
  fail "handshake with a wrong pinned hash succeeded"
fi
grep -q 'state=failed' "$TMP/bad.out" || fail "wrong hash: $(cat "$TMP/bad.out")"
pass "a wrong pinned certificate hash is rejected"

# 7. registration timeout closes an unregistered session
out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --no-register --until-closed --timeout 8) ||
  fail "registration timeout: $out"
echo "$out" | grep -q 'state=closed' || fail "unregistered session not closed: $out"
pass "unregistered session closed after --register-timeout"

# 8. 200 concurrent sessions register (a fresh relay with default timeouts;
# one address here, so the per-client shares of a room are raised)
stop_relay
start_relay --max-sessions-per-ip 256 --max-client-sessions-per-room 256 --max-client-addrs-per-room 245
out=$("$CLIENT" --url "$URL/many" --cert-hash "$HASH" --sessions 200 --mac 52:54:00:cd:00:00 --timeout 30) ||
  fail "200 sessions: $(echo "$out" | tail -1)"
[ "$(echo "$out" | json_field registered)" = 200 ] || fail "200 sessions: $(echo "$out" | tail -1)"
rss=$(awk '/VmRSS/{print $2}' /proc/"$RELAY_PID"/status)
pass "200 sessions registered: $(echo "$out" | tail -1) relay_rss_kb=$rss"

# 9. SIGTERM with open sessions: clients see a clean close, exit 0 in < 1 s
"$CLIENT" --url "$URL/" --cert-hash "$HASH" --sessions 3 --mac 52:54:00:ef:00:00 \
  --hold 8 --until-closed --timeout 10 >"$TMP/term.out" 2>&1 &
cpid=$!
PIDS+=("$cpid")
sleep 1.5
stop_relay
crc=0
wait "$cpid" || crc=$?
[ "$crc" = 0 ] || fail "clients did not see the close: $(cat "$TMP/term.out")"
[ "$(grep -c 'state=closed' "$TMP/term.out")" = 3 ] || fail "not all sessions closed: $(cat "$TMP/term.out")"
grep -q 'close_reason="relay shutting down"' "$TMP/term.out" || fail "no close capsule: $(cat "$TMP/term.out")"
[ "$STOP_MS" -lt 1000 ] || fail "SIGTERM took ${STOP_MS} ms"
pass "SIGTERM closes every session (capsule) and exits 0 in ${STOP_MS} ms"

# 10. a full connection table: the newcomer's packets are dropped, counted
# as table_full (and the connection as refused_limit)
OPS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metric() { sleep 0.25; python3 -c "
import sys, urllib.request
for l in urllib.request.urlopen('http://127.0.0.1:$OPS_PORT/metrics', timeout=5).read().decode().splitlines():
    if l.startswith(sys.argv[1] + ' '): print(int(float(l.split()[1])))" "$1"; }
start_relay --max-sessions 1 --http-listen "127.0.0.1:$OPS_PORT"
"$CLIENT" --url "$URL/" --cert-hash "$HASH" --mac 52:54:00:ef:01:00 --hold 6 --timeout 10 \
  >"$TMP/hold1.out" 2>&1 &
PIDS+=("$!")
for _ in $(seq 50); do [ "$(metric wtrelay_sessions)" = 1 ] && break; sleep 0.1; done
[ "$(metric wtrelay_sessions)" = 1 ] || fail "the first session did not come up: $(cat "$TMP/hold1.out")"
if "$CLIENT" --url "$URL/" --cert-hash "$HASH" --mac 52:54:00:ef:01:01 --timeout 2 >/dev/null 2>&1; then
  fail "a second session got in with --max-sessions 1"
fi
full=$(metric 'wtrelay_quic_packets_dropped_total{reason="table_full"}')
limit=$(metric 'wtrelay_quic_connections_refused_total{reason="limit"}')
[ "${full:-0}" -ge 1 ] || fail "packets dropped at a full table not counted: table_full=$full refused_limit=$limit"
[ "${limit:-0}" -ge 1 ] || fail "refused_limit=$limit"
stop_relay
pass "--max-sessions 1: a second client is refused; its packets counted as table_full ($full), refused_limit ($limit)"
