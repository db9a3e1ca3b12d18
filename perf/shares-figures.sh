#!/usr/bin/env bash
# Figures for the per-client shares (issue 14, "Fair shares", relay side):
# with the relay's default flags, how many rooms and how many addresses of
# one room one client address takes, and 4 client addresses together, and
# whether a VM of another client (a kernel behind wtrelay-tap) then gets a
# room and an address. Not a test (no pass/fail): prints one line a figure.
#
#   sudo BUILD_DIR=build perf/shares-figures.sh
#   sudo BUILD_DIR=build WORKERS=2 perf/shares-figures.sh   (the relay with --workers 2)
#
# With WORKERS, every figure must be the one of a single worker: the
# shares are counted for the process (the room directory, roomdir.h).
#
# Runs in namespaces of its own (tests/netns/topo.sh): client hosts 1..4
# are the attackers (10.81.N.2), client host 5 the other client. Each room
# is held by one wtclient session that goes silent after its Register (the
# relay's peer timeout, 150 s, is longer than a phase). A client keeps
# opening rooms for ROOM_BUDGET seconds (default 25: the default creation
# rate refills 1 a second, so 16 rooms need about 9 s).
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
ROOM_BUDGET=${ROOM_BUDGET:-25}
WORKERS=${WORKERS:-}
source "$(dirname "$0")/../tests/netns/topo.sh"
topo_init sf
topo_relay_host
for n in 1 2 3 4 5; do topo_client_host "$n" 1500; done
topo_vm v
topo_cert
CLIENT="$BUILD_DIR/wtclient"
touch "$TMP/pids"
kill_clients() {
  local p
  while read -r p; do kill "$p" 2>/dev/null || true; done <"$TMP/pids"
  : >"$TMP/pids"
}
trap 'kill_clients; topo_cleanup' EXIT

# One silent session in client host n to room: 0 when it registered.
hold() { # n room mac out
  ip netns exec "${TOPO_P}c$1" "$CLIENT" --url "https://10.81.$1.1:4433$2" --cert-hash "$HASH" \
    --sessions 1 --mac "$3" --timeout 5 --go-silent 600 >"$4" 2>&1 &
  echo $! >>"$TMP/pids"
  local _
  for _ in $(seq 120); do grep -q '^{' "$4" 2>/dev/null && break; sleep 0.05; done
  grep -q '"registered":1' "$4"
}

# Rooms client host n makes within the budget (at most `max`).
rooms_of() { # n max -> count
  local n=$1 max=$2 ok=0 i=0 end=$(($(date +%s) + ROOM_BUDGET))
  while [ "$(date +%s)" -lt "$end" ] && [ "$ok" -lt "$max" ]; do
    i=$((i + 1))
    if hold "$n" "/c$n-r$i" "$(printf '52:54:%02x:00:%02x:%02x' "$n" $((i >> 8)) $((i & 255)))" \
      "$TMP/r-$n-$i.out"; then ok=$((ok + 1)); else sleep 0.2; fi
  done
  echo "$ok"
}

relay() {
  [ -n "${RELAY_PID:-}" ] && { kill "$RELAY_PID" 2>/dev/null || true; wait "$RELAY_PID" 2>/dev/null || true; }
  kill_clients
  topo_start_relay --http-listen 127.0.0.1:8433 ${WORKERS:+--workers "$WORKERS"}
}
rooms_in_use() {
  ip netns exec "$NS_R" curl -s --max-time 5 http://127.0.0.1:8433/metrics | awk '$1 == "wtrelay_rooms" {print $2}'
}

victim_room() { # -> "yes IP" / "no"
  topo_start_tap 5 vmv "$NS_VMV" 52:54:00:55:00:05 --configure --heartbeat 2
  local a="" _
  for _ in $(seq 100); do a=$(topo_ip_of "$NS_VMV" vmv); [ -n "$a" ] && break; sleep 0.1; done
  kill "${PIDS[-1]}" 2>/dev/null || true
  wait "${PIDS[-1]}" 2>/dev/null || true
  [ -n "$a" ] && echo "yes ($a)" || echo "no"
}

echo "build: $BUILD_DIR ($("$BUILD_DIR/wtrelay" --version 2>&1 | head -1)) workers: ${WORKERS:-default}"

# rooms, one client
relay
n1=$(rooms_of 1 300)
echo "figure: rooms one client address takes (of 256): $n1 (relay: wtrelay_rooms $(rooms_in_use))"
echo "figure: rooms, another client's VM then gets a room and an address: $(victim_room)"

# rooms, 4 clients at once
relay
loops=()
for n in 1 2 3 4; do
  rooms_of "$n" 300 >"$TMP/rooms-$n" &
  loops+=("$!")
done
for p in "${loops[@]}"; do wait "$p" || true; done
total=0
for n in 1 2 3 4; do total=$((total + $(cat "$TMP/rooms-$n"))); done
echo "figure: rooms 4 client addresses take (of 256): $total ($(cat "$TMP"/rooms-{1,2,3,4} | tr '\n' ' ')as the clients saw it; relay: wtrelay_rooms $(rooms_in_use))"
echo "figure: rooms, another client's VM then gets a room and an address: $(victim_room)"

# addresses of one room, one client: 250 sessions at once
relay
hold 5 /lan 52:54:00:55:00:01 "$TMP/owner.out" || true # the room exists before the attack
# (with several workers: 10 processes of 25, since one process's sessions
# share one socket and so one worker)
parts=1
[ "${WORKERS:-1}" -gt 1 ] && parts=10
for k in $(seq 0 $((parts - 1))); do
  ip netns exec "${TOPO_P}c1" "$CLIENT" --url "https://10.81.1.1:4433/lan" --cert-hash "$HASH" \
    --sessions $((250 / parts)) --mac "$(printf '52:54:00:a1:%02x:00' "$k")" --timeout 20 \
    --go-silent 600 >"$TMP/a1-$k.out" 2>&1 &
  echo $! >>"$TMP/pids"
done
total=0
for k in $(seq 0 $((parts - 1))); do
  for _ in $(seq 400); do grep -q '^{' "$TMP/a1-$k.out" 2>/dev/null && break; sleep 0.05; done
  total=$((total + $(sed -n 's/.*"registered":\([0-9]*\).*/\1/p' "$TMP/a1-$k.out")))
done
echo "figure: addresses of /lan one client address takes (of 245): $total (in $parts process(es))"
echo "figure: addresses, another client's VM then gets an address in /lan: $(victim_room)"

# addresses of one room, 4 clients
relay
hold 5 /lan 52:54:00:55:00:01 "$TMP/owner.out" || true
parts=1
[ "${WORKERS:-1}" -gt 1 ] && parts=8 # 8 processes of 8 sessions each
for n in 1 2 3 4; do
  for k in $(seq 0 $((parts - 1))); do
    ip netns exec "${TOPO_P}c$n" "$CLIENT" --url "https://10.81.$n.1:4433/lan" --cert-hash "$HASH" \
      --sessions $((64 / parts)) --mac "$(printf '52:54:%02x:a1:%02x:00' "$n" "$k")" \
      --timeout 20 --go-silent 600 >"$TMP/a-$n-$k.out" 2>&1 &
    echo $! >>"$TMP/pids"
  done
done
total=0
for n in 1 2 3 4; do
  for k in $(seq 0 $((parts - 1))); do
    for _ in $(seq 400); do grep -q '^{' "$TMP/a-$n-$k.out" 2>/dev/null && break; sleep 0.05; done
    total=$((total + $(sed -n 's/.*"registered":\([0-9]*\).*/\1/p' "$TMP/a-$n-$k.out")))
  done
done
echo "figure: addresses of /lan 4 client addresses take with 64 sessions each (of 245, one held by another client): $total"
echo "figure: addresses, another client's VM then gets an address in /lan: $(victim_room)"
