#!/usr/bin/env bash
# Per-client shares of the relay, across real links (tests/netns/topo.sh),
# with the default flags: client host 1 (one address, 10.81.1.2) exhausts
# its share of rooms (the creation burst, then --max-rooms-per-client) and
# of a room's addresses (live sessions, and sticky leases of MACs it
# registered and dropped), while a VM behind client host 2 (wtrelay-tap with
# a Linux kernel in a namespace) still gets a room and an address, and a
# second session of host 2 still registers. Refusals are checked by status
# (429 at CONNECT, Error at Register) and by the /metrics counters.
#
# WORKERS=N (test_shares_workers.sh runs 2 and 4): the relay runs N
# workers and the figures must be the same, so the shares hold for the
# process and not per worker. Each wtclient process is one UDP socket, so
# its sessions land on one worker; the sessions of a share are then spread
# over several processes (and the check that every worker holds sessions
# of client 1 makes sure the spread happened).
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
WORKERS=${WORKERS:-}

source "$(dirname "$0")/topo.sh"
topo_need_tap
topo_need curl
topo_init sh
topo_relay_host
topo_client_host 1 1500
topo_client_host 2 1500
topo_vm b
topo_cert
topo_start_relay --http-listen 127.0.0.1:8433 ${WORKERS:+--workers "$WORKERS"}
CLIENT="$BUILD_DIR/wtclient"

metric() { # name{labels} -> value
  # other workers publish their counters every 100 ms (and the default
  # worker count is the CPUs: several even without WORKERS)
  sleep 0.25
  ip netns exec "$NS_R" curl -s --max-time 5 http://127.0.0.1:8433/metrics |
    awk -v k="$1" '$1 == k {print $2; f = 1} END {if (!f) print "missing"}'
}

# One wtclient in client host n that prints its result after Register and
# then holds its sessions without a word (--go-silent; the relay's peer
# timeout is 150 s). Waits for the result; prints the JSON summary line.
N=0
try() { # host room sessions mac [args...]
  local n=$1 room=$2 k=$3 mac=$4 out _
  shift 4
  N=$((N + 1))
  out="$TMP/try$N.out"
  topo_bg "${TOPO_P}c$n" "$CLIENT" --url "https://10.81.$n.1:4433$room" --cert-hash "$HASH" \
    --sessions "$k" --mac "$mac" --timeout 10 --go-silent 300 "$@" >"$out" 2>&1
  for _ in $(seq 200); do grep -q '^{' "$out" 2>/dev/null && break; sleep 0.05; done
  R=$(grep '^{' "$out") || topo_fail "no result from wtclient ($room): $(cat "$out")"
  OUT=$out
}
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
status_of() { sed -n 's/^session=0 .* status=\([0-9]*\) .*/\1/p' "$OUT"; }

# 1. rooms: a burst of 8 creations, then the rate refuses (429)
for i in $(seq 8); do
  try 1 "/r$i" 1 "52:54:00:a1:00:0$i"
  r=$R
  [ "$(echo "$r" | field registered)" = 1 ] || fail "room /r$i of client 1: $r $(cat "$OUT")"
done
try 1 /r9 1 52:54:00:a1:00:09
[ "$(status_of)" = 429 ] || fail "the 9th room in a burst: status $(status_of), expected 429"
[ "$(metric 'wtrelay_sessions_ended_total{reason="client_room_rate"}')" = 1 ] ||
  fail "client_room_rate counter: $(metric 'wtrelay_sessions_ended_total{reason="client_room_rate"}')"
pass "one client: 8 rooms in a burst, the 9th gets 429 (creation rate)"

# 2. rooms: one a second after the burst, up to 16 rooms; the 17th is 429
sleep 8.2
for i in $(seq 9 16); do
  try 1 "/r$i" 1 "$(printf '52:54:00:a1:00:%02x' "$i")"
  r=$R
  [ "$(echo "$r" | field registered)" = 1 ] || fail "room /r$i of client 1: $r"
done
try 1 /r17 1 52:54:00:a1:00:71
[ "$(status_of)" = 429 ] || fail "the 17th room: status $(status_of), expected 429"
[ "$(metric 'wtrelay_sessions_ended_total{reason="client_rooms"}')" = 1 ] ||
  fail "client_rooms counter: $(metric 'wtrelay_sessions_ended_total{reason="client_rooms"}')"
[ "$(metric wtrelay_rooms)" = 16 ] || fail "rooms in use: $(metric wtrelay_rooms), expected 16"
spread() { # what: with several workers, at least two hold sessions (the share is split)
  local w n busy=0
  [ "${WORKERS:-1}" -gt 1 ] || return 0
  for ((w = 0; w < WORKERS; w++)); do
    n=$(metric "wtrelay_worker_sessions{worker=\"$w\"}")
    [ "$n" != missing ] && [ "$n" -gt 0 ] && busy=$((busy + 1))
  done
  [ "$busy" -ge 2 ] || fail "$1: sessions on $busy worker(s) of $WORKERS"
}
spread "16 rooms of client 1"
# an unregistered CONNECT holds no room
try 1 /r3 1 52:54:00:a1:01:01 --no-register
[ "$(metric wtrelay_rooms)" = 16 ] || fail "an unregistered session changed the rooms: $(metric wtrelay_rooms)"
pass "one client: 16 rooms (--max-rooms-per-client), the 17th gets 429; unregistered sessions hold no room"

# 3. client 2's VM (a kernel behind wtrelay-tap) gets a room and an address
topo_start_tap 2 vmb "$NS_VMB" 52:54:00:bb:00:02 --configure --heartbeat 2
IP_B=$(topo_wait_ip "$NS_VMB" vmb)
[ "$(metric wtrelay_rooms)" = 17 ] || fail "rooms in use: $(metric wtrelay_rooms), expected 17"
pass "client 2's VM made room /lan and got $IP_B while client 1 holds its 16 rooms"

# 4. addresses: client 1 registers 49 MACs in /lan and leaves (sticky
# leases), then 64 sessions with new MACs: 49 addresses (its own leases
# come back; the default share is a fifth of 245), 15 refused with an
# Error; a 65th session gets 429.
ip netns exec "${TOPO_P}c1" "$CLIENT" --url "https://10.81.1.1:4433/lan" --cert-hash "$HASH" \
  --sessions 49 --mac 52:54:00:e1:00:00 --timeout 20 >"$TMP/sticky.out" 2>&1 ||
  fail "49 sessions of client 1: $(tail -1 "$TMP/sticky.out")"
if [ "${WORKERS:-1}" -gt 1 ]; then
  # 8 processes of 8 sessions: the 64 sessions over the workers
  reg=0 errs=0 outs=()
  for k in $(seq 0 7); do
    try 1 /lan 8 "52:54:00:e2:0$k:00" --timeout 20
    reg=$((reg + $(echo "$R" | field registered)))
    errs=$((errs + $(echo "$R" | field errors)))
    outs+=("$OUT")
  done
  r="registered=$reg errors=$errs"
else
  try 1 /lan 64 52:54:00:e2:00:00 --timeout 20
  r=$R
  reg=$(echo "$r" | field registered)
  errs=$(echo "$r" | field errors)
  outs=("$OUT")
fi
[ "$reg" = 49 ] || fail "client 1 got $reg addresses, expected 49: $r"
[ "$errs" = 15 ] || fail "client 1: $errs Errors, expected 15: $r"
grep -q 'last_error="IP pool share of this client exhausted"' "${outs[@]}" ||
  fail "no share Error: $(grep -h -v -m3 "errors=0" "${outs[@]}")"
[ "$(metric 'wtrelay_control_refused_total{reason="client_address_share"}')" = 15 ] ||
  fail "client_address_share counter: $(metric 'wtrelay_control_refused_total{reason="client_address_share"}')"
[ "$(metric wtrelay_address_share_recycled_total)" = 49 ] ||
  fail "recycled: $(metric wtrelay_address_share_recycled_total), expected 49"
# the 65th (with several workers: 4 more tries, from 4 processes, so
# they reach every worker)
extra=1
[ "${WORKERS:-1}" -gt 1 ] && extra=4
for k in $(seq "$extra"); do
  try 1 /lan 1 "52:54:00:e3:00:0$k"
  [ "$(status_of)" = 429 ] || fail "client 1's session $((64 + k)) in /lan: status $(status_of), expected 429"
done
[ "$(metric 'wtrelay_sessions_ended_total{reason="client_sessions"}')" = "$extra" ] ||
  fail "client_sessions counter: $(metric 'wtrelay_sessions_ended_total{reason="client_sessions"}')"
pass "one client in /lan: 49 addresses of 245 (its 49 sticky leases recycled), 15 Errors, the 65th session 429"

# 5. client 2 is unharmed: its VM still talks to the gateway, and a new
# session of client 2 registers in /lan
ip netns exec "$NS_VMB" ping -c 3 -i 0.2 -W 2 10.0.2.2 >/dev/null || fail "VM b cannot ping the gateway"
try 2 /lan 1 52:54:00:bb:00:03
r=$R
[ "$(echo "$r" | field registered)" = 1 ] || fail "client 2's second session: $r $(cat "$OUT")"
pass "client 2: its VM pings 10.0.2.2, a new session gets $(sed -n 's/^session=0 .* ip=\([0-9.]*\) .*/\1/p' "$OUT")"
