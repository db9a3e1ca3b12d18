#!/usr/bin/env bash
# Sticky addresses across a restart with several workers (--workers 2,
# --lease-file): the lease table is the room directory's, changed by every
# worker under its lock and written by worker 0's ring. Eight sessions
# (eight client processes, so eight sockets: the kernel's hash spreads
# them, checked on /metrics: both workers hold sessions) register in two
# rooms and stay; SIGTERM (exit 0) writes every lease; after a restart with
# 2 workers a new MAC first, then the eight MACs in reverse order get
# exactly their old addresses. A change while the relay runs reaches the
# file within the writer's second.
. "$(dirname "$0")/lib.sh"

WORKERS=${WORKERS:-2}
LF=$TMP/leases
OPS=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metric() {
  sleep 0.25 # other workers publish every 100 ms
  curl -s --max-time 5 "http://127.0.0.1:$OPS/metrics" |
    awk -v k="$1" '$1 == k {print $2; f = 1} END {if (!f) print "missing"}'
}
macs=()
rooms=()
for i in 1 2 3 4 5 6 7 8; do
  macs+=("52:54:00:3e:00:0$i")
  rooms+=("/w$((i % 2))")
done

# 1. eight held sessions on both workers
start_relay --workers "$WORKERS" --lease-file "$LF" --http-listen "127.0.0.1:$OPS"
declare -A ip
for i in "${!macs[@]}"; do
  out=$TMP/hold$i.out
  "$CLIENT" --url "$URL${rooms[$i]}" --cert-hash "$HASH" --mac "${macs[$i]}" --timeout 10 \
    --go-silent 60 >"$out" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 200); do grep -q '^{' "$out" 2>/dev/null && break; sleep 0.05; done
  grep -q '"registered":1' "$out" || fail "session $i did not register: $(cat "$out")"
  ip[$i]=$(sed -n 's/.* ip=\([0-9.]*\) .*/\1/p' "$out" | head -1)
  [ -n "${ip[$i]}" ] || fail "no address for session $i: $(cat "$out")"
done
for w in $(seq 0 $((WORKERS - 1))); do
  n=$(metric "wtrelay_worker_sessions{worker=\"$w\"}")
  [ "$n" != missing ] && [ "$n" -gt 0 ] || fail "worker $w holds no session ($n): the test did not spread"
done
# the writer sees changes made on every worker (at most a second late)
for _ in $(seq 40); do
  [ -f "$LF" ] && [ "$(grep -c '^52:54:00:3e:00:0[1-8] .* live$' "$LF")" = 8 ] && break
  sleep 0.1
done
[ "$(grep -c '^52:54:00:3e:00:0[1-8] .* live$' "$LF" 2>/dev/null)" = 8 ] ||
  fail "the running relay's lease file lacks live leases: $(cat "$LF" 2>/dev/null)"
pass "8 sessions on $WORKERS workers; the lease file has their 8 live leases while they run"

stop_relay
mode=$(stat -c %a "$LF")
[ "$mode" = 600 ] || fail "lease file mode $mode"
for i in "${!macs[@]}"; do
  grep -q "^${macs[$i]} ${ip[$i]} " "$LF" || fail "lease of ${macs[$i]} (${ip[$i]}) missing: $(cat "$LF")"
done
[ ! -e "$LF.tmp" ] || fail "temporary file left behind"

# 2. after a restart: a new MAC first, then the old ones in reverse order
# (9 clients one after the other, each making its room again: more room
# creations than the default burst of one address)
start_relay --workers "$WORKERS" --lease-file "$LF" --http-listen "127.0.0.1:$OPS" --room-burst 64
grep -q 'msg="lease file read".*leases=8' "$TMP/relay.err" ||
  fail "lease file not read: $(grep 'lease file' "$TMP/relay.err")"
reg() { # room mac -> ip
  local out
  out=$("$CLIENT" --url "$URL$1" --cert-hash "$HASH" --mac "$2" --timeout 10) || fail "register $2 in $1: $out"
  echo "$out" | sed -n 's/.* ip=\([0-9.]*\) .*/\1/p' | head -1
}
new=$(reg /w0 52:54:00:3e:00:99)
for i in "${!macs[@]}"; do
  [ "${rooms[$i]}" = /w0 ] && [ "$new" = "${ip[$i]}" ] && fail "a new MAC took ${macs[$i]}'s address $new"
done
for ((i = ${#macs[@]} - 1; i >= 0; i--)); do
  got=$(reg "${rooms[$i]}" "${macs[$i]}")
  [ "$got" = "${ip[$i]}" ] || fail "after a restart ${macs[$i]} got $got, expected ${ip[$i]}"
done
stop_relay
[ "$(grep -c 'level=error' "$TMP/relay.err" || true)" = 0 ] || fail "errors: $(grep level=error "$TMP/relay.err")"
pass "after a restart with $WORKERS workers every MAC gets its address back (a new MAC gets $new)"
