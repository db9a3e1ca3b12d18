#!/usr/bin/env bash
# Takeover of a MAC whose old session is dead (the real client reconnects
# after a network change without closing the old connection and never
# retries a refused Register): the relay probes the holder and hands the
# MAC, the same address and its switch port to the newcomer when the probe
# is not acknowledged; a holder that is alive keeps everything and the
# newcomer gets the Error. Native clients (wtclient --go-silent: registered,
# then neither reads nor sends). The takeover time over 20 rounds is printed
# (median, max); each must be under 2 s.
source "$(dirname "$0")/lib.sh"

start_relay --log-level debug # the counters at exit
ipof() { sed -n 's/^session=0 .* ip=\([0-9.]*\) .*/\1/p' "$1" | head -1; }

# 1. dead holder, 20 rounds, each with a MAC of its own
times=()
for i in $(seq 20); do
  mac=$(printf '52:54:00:7a:00:%02x' "$i")
  "$CLIENT" --url "$URL/take" --cert-hash "$HASH" --mac "$mac" --go-silent 6 >"$TMP/old$i.out" 2>"$TMP/old$i.err" &
  PIDS+=("$!")
  for _ in $(seq 100); do grep -q '^{' "$TMP/old$i.out" 2>/dev/null && break; sleep 0.05; done
  old_ip=$(ipof "$TMP/old$i.out")
  [ -n "$old_ip" ] && [ "$old_ip" != 0.0.0.0 ] || fail "round $i: the first client did not register: $(cat "$TMP/old$i.out" "$TMP/old$i.err")"
  t0=$(date +%s%N)
  "$CLIENT" --url "$URL/take" --cert-hash "$HASH" --mac "$mac" --timeout 5 >"$TMP/new$i.out" 2>&1 ||
    fail "round $i: the newcomer was not assigned: $(cat "$TMP/new$i.out")"
  t1=$(date +%s%N)
  new_ip=$(ipof "$TMP/new$i.out")
  [ "$new_ip" = "$old_ip" ] || fail "round $i: the newcomer got $new_ip, the old session had $old_ip"
  ms=$(awk -F'register_ms":' '/^\{/{split($2, a, "}"); print a[1]}' "$TMP/new$i.out")
  awk -v m="$ms" 'BEGIN { exit !(m < 2000) }' || fail "round $i: Register answered after $ms ms"
  times+=("$ms")
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR] = $1} END {print (a[10] + a[11]) / 2}')
max=$(echo "$sorted" | tail -1)
n=$(grep -c 'msg="MAC taken over"' "$TMP/relay.err")
[ "$n" = 20 ] || fail "$n takeovers logged, expected 20"
pass "dead holder: 20 of 20 newcomers got the MAC and the same address; Register -> Assigned median $median ms, max $max ms"
grep -q 'msg="MAC taken over".*reason="old session did not acknowledge"' "$TMP/relay.err" ||
  fail "the takeover log line does not say why"

# 2. live holder: keeps its MAC and keeps working; the newcomer gets Error
"$CLIENT" --url "$URL/take" --cert-hash "$HASH" --mac 52:54:00:7a:01:01 --hold 3 \
  --late-heartbeats 2 >"$TMP/alive.out" 2>&1 &
alive=$!
PIDS+=("$alive")
for _ in $(seq 100); do grep -q 'msg="peer registered".*mac=52:54:00:7a:01:01' "$TMP/relay.err" && break; sleep 0.05; done
grep -q 'msg="peer registered".*mac=52:54:00:7a:01:01' "$TMP/relay.err" || fail "the live holder did not register"
"$CLIENT" --url "$URL/take" --cert-hash "$HASH" --mac 52:54:00:7a:01:01 --expect-error >"$TMP/refused.out" 2>&1 ||
  fail "the newcomer was not refused while the holder lives: $(cat "$TMP/refused.out")"
grep -q 'last_error="MAC address already registered by another session"' "$TMP/refused.out" ||
  fail "refusal text: $(cat "$TMP/refused.out")"
wait "$alive" || fail "the live holder stopped working after the probe: $(cat "$TMP/alive.out")"
grep -q 'detail="MAC in use by a live session (it acknowledged a probe)"' "$TMP/relay.err" ||
  fail "no log line for the acknowledged probe"
pass "live holder: acknowledged the probe, kept its MAC and answered heartbeats afterwards; the newcomer got the Error"

stop_relay
# the counters at exit: summed over the workers (RELAY_WORKERS)
sum() { exit_counter "relay_$1"; }
[ "$(sum takeovers)" = 20 ] && [ "$(sum takeover_refused_alive)" = 1 ] ||
  fail "counters: $(grep -o 'relay_takeover[a-z_]*=[0-9]*' "$TMP/relay.err" | tr '\n' ' ')"
pass "counters: takeover_probes=$(sum takeover_probes) takeovers=$(sum takeovers) takeover_refused_alive=$(sum takeover_refused_alive)"
if [ "${RELAY_WORKERS:-1}" -gt 1 ]; then
  # the newcomers' client sockets are spread by the kernel's hash: some
  # holders sat on another worker than their newcomer
  cross=$(grep -c 'msg="MAC taken over".*asker_worker=' "$TMP/relay.err" || true)
  [ "$cross" -gt 0 ] || fail "$RELAY_WORKERS workers: no takeover crossed workers in 20 rounds"
  [ "$(sum takeover_remote_released)" = "$cross" ] ||
    fail "released verdicts $(sum takeover_remote_released), takeovers across workers $cross"
  pass "$RELAY_WORKERS workers: $cross of 20 takeovers across workers, $((20 - cross)) on one worker"
fi
