#!/usr/bin/env bash
# With several workers every worker numbers its sessions from its own
# table: the "peer=" of the relay's log lines (peer registered, session
# ended, MAC taken over) must still name one session of the process, not
# one per worker, or two live sessions on different workers share a name
# and a "session ended" cannot be told apart. Sessions (one wtclient each,
# so each its own UDP socket and 4-tuple) are opened until both workers of
# --workers 2 hold one (wtrelay_worker_sessions), then the peer ids of the
# live sessions' "peer registered" lines must all differ. The start-up
# lines name the worker count ("relay started") and each gateway's worker;
# each session's "session opened" line carries the same peer id.
. "$(dirname "$0")/lib.sh"

MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_relay --workers 2 --http-listen "127.0.0.1:$MPORT"
metric() { # series -> value (0 when absent)
  curl -s --max-time 3 "http://127.0.0.1:$MPORT/metrics" |
    awk -v s="$1" 'index($0, s " ") == 1 {print $2; found=1} END {if (!found) print 0}'
}
# the start-up lines say how many workers and whose gateway
grep -q 'msg="relay started" .* workers=2' "$TMP/relay.err" || fail "no workers=2 on the start line"
[ "$(grep -c 'msg="gateway" .* worker=[01]$' "$TMP/relay.err")" = 2 ] &&
  grep -q 'msg="gateway" .* worker=1$' "$TMP/relay.err" || fail "gateway lines without their worker"
pass "the start-up lines name the worker count and each gateway's worker"
CLIENTS=()
n=0
for k in $(seq 1 16); do
  "$CLIENT" --url "$URL/ids" --cert-hash "$HASH" --mac "52:54:00:1d:00:$(printf %02x "$k")" \
    --hold 20 --tick 1 --timeout 30 >"$TMP/c$k.out" 2>&1 &
  CLIENTS+=("$!")
  PIDS+=("$!")
  n=$k
  for _ in $(seq 50); do
    [ $(($(metric 'wtrelay_worker_sessions{worker="0"}') + $(metric 'wtrelay_worker_sessions{worker="1"}'))) = "$k" ] &&
      grep -c 'msg="peer registered"' "$TMP/relay.err" | grep -qx "$k" && break
    sleep 0.1
  done
  [ "$(metric 'wtrelay_worker_sessions{worker="0"}')" -gt 0 ] &&
    [ "$(metric 'wtrelay_worker_sessions{worker="1"}')" -gt 0 ] && break
done
w0=$(metric 'wtrelay_worker_sessions{worker="0"}')
w1=$(metric 'wtrelay_worker_sessions{worker="1"}')
[ "$w0" -gt 0 ] && [ "$w1" -gt 0 ] || fail "16 sessions and not one on each worker ($w0, $w1)"
ids=$(grep -o 'msg="peer registered" peer=[0-9]*' "$TMP/relay.err" | grep -o '[0-9]*$' | sort)
[ "$(echo "$ids" | wc -l)" = "$n" ] || fail "expected $n peer registered lines: $ids"
dups=$(echo "$ids" | uniq -d | tr '\n' ' ')
[ -z "$dups" ] || fail "$n live sessions ($w0 on worker 0, $w1 on worker 1) share peer ids: $dups"
pass "$n live sessions over 2 workers ($w0 + $w1): every peer id in the log names one session ($(echo "$ids" | tr '\n' ' '))"
# each session's "session opened" line names it by the same peer id, with
# its remote address, room and origin
for id in $ids; do
  grep -qE "msg=\"session opened\" peer=$id transport=webtransport remote=127\.0\.0\.1:[0-9]+ room=\"/ids\" origin=\"https://127\.0\.0\.1:$PORT\"" "$TMP/relay.err" ||
    fail "no session opened line for peer=$id"
done
pass "every session's opened line names its peer id, remote address, room and origin"
for c in "${CLIENTS[@]}"; do kill -TERM "$c" 2>/dev/null || true; done
stop_relay
pass "relay exits 0"
