#!/usr/bin/env bash
# Certificate reload with sessions on every worker (--workers 2): the
# process thread loads the new pair on SIGHUP and rings every worker's
# doorbell; each worker takes the new certificate for its new connections
# and its live sessions keep the old one. Sessions are added until both
# workers hold some; after the reload every one of them still answers,
# 12 new clients (spread over both workers by the kernel's hash) all get
# the new certificate, none gets the old one, and SIGTERM exits 0.
# Under load: two pairs of sessions placed across both workers (wtbench
# --workers 2 --placement cross: every frame crosses a worker ring) send
# unicast frames at a fixed rate through three reloads (new pair, old
# pair, new pair again); none of their sessions drops and the frames keep
# flowing: at most 2 % lost over the run, and frames delivered in every
# second of it (a session that dropped at a reload would stop its pair).
. "$(dirname "$0")/lib.sh"

OPS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metric() { # series -> value (0 when absent)
  python3 - "http://127.0.0.1:$OPS_PORT/metrics" "$1" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    for line in r.read().decode().splitlines():
        if line.startswith(sys.argv[2] + " "):
            print(line.split()[1]); break
    else:
        print(0)
PY
}
newpair() { # dir
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 10 \
    -subj /CN=localhost -keyout "$1/k.pem" -out "$1/c.pem" 2>/dev/null
}
mkdir -p "$TMP/a" "$TMP/b" "$TMP/live"
newpair "$TMP/a"
newpair "$TMP/b"
cp "$TMP/a/c.pem" "$TMP/live/c.pem"
cp "$TMP/a/k.pem" "$TMP/live/k.pem"
# --room-burst: the 12 short-lived clients below (one address) make and
# drop /fresh again and again; each time is a room creation of that
# client, counted for the process (not per worker), and this test is
# about certificates, not the creation rate
start_relay --workers 2 --cert-pem "$TMP/live/c.pem" --key-pem "$TMP/live/k.pem" \
  --http-listen "127.0.0.1:$OPS_PORT" --room-burst 64
old=$HASH

HOLDS=()
for i in $(seq 1 16); do
  "$CLIENT" --url "$URL/reload" --cert-hash "$old" --mac "52:54:00:12:00:$(printf %02x "$i")" \
    --hold 5 --tick 0.5 --late-heartbeats 1 --timeout 20 >"$TMP/hold$i.out" 2>&1 &
  HOLDS+=("$!")
  PIDS+=("$!")
  for _ in $(seq 30); do
    [ $(($(metric 'wtrelay_worker_sessions{worker="0"}') + $(metric 'wtrelay_worker_sessions{worker="1"}'))) -ge "$i" ] && break
    sleep 0.1
  done
  [ "$(metric 'wtrelay_worker_sessions{worker="0"}')" -gt 0 ] &&
    [ "$(metric 'wtrelay_worker_sessions{worker="1"}')" -gt 0 ] && [ "$i" -ge 4 ] && break
done
w0=$(metric 'wtrelay_worker_sessions{worker="0"}')
w1=$(metric 'wtrelay_worker_sessions{worker="1"}')
[ "$w0" -gt 0 ] && [ "$w1" -gt 0 ] || fail "sessions not on both workers: $w0 and $w1"
pass "${#HOLDS[@]} live sessions: $w0 on worker 0, $w1 on worker 1"

# traffic across the workers for the whole of the reloads below
BENCH=$BUILD_DIR/wtbench
[ -x "$BENCH" ] || fail "$BENCH missing (built by make)"
RATE=2000
BENCH_S=9
"$BENCH" --url "$URL/load" --cert-hash "$old" --sessions 4 --size 600 --rate "$RATE" \
  --duration "$BENCH_S" --workers 2 --placement cross --per-second \
  >"$TMP/bench.out" 2>"$TMP/bench.err" &
BENCH_PID=$!
PIDS+=("$BENCH_PID")
for _ in $(seq 100); do grep -q measuring "$TMP/bench.err" 2>/dev/null && break; sleep 0.1; done
grep -q measuring "$TMP/bench.err" || fail "wtbench did not start its traffic: $(tail -2 "$TMP/bench.err")"
pass "traffic: 2 pairs across the 2 workers, $RATE frames/s"

reload() { # dir: install its pair, SIGHUP, wait until the relay uses it
  local want n
  cp "$1/c.pem" "$TMP/live/c.pem"
  cp "$1/k.pem" "$TMP/live/k.pem"
  want=$(openssl x509 -in "$1/c.pem" -outform DER | sha256sum | cut -d' ' -f1)
  n=$(grep -c "certificate in use changed.*sha256=$want" "$TMP/relay.err" || true)
  kill -HUP "$RELAY_PID"
  for _ in $(seq 30); do
    [ "$(grep -c "certificate in use changed.*sha256=$want" "$TMP/relay.err" || true)" -gt "$n" ] && return 0
    sleep 0.1
  done
  fail "SIGHUP did not install the pair of $1"
}
reload "$TMP/b"
want=$(openssl x509 -in "$TMP/b/c.pem" -outform DER | sha256sum | cut -d' ' -f1)
sleep 0.3
NEW=()
for i in $(seq 1 12); do
  "$CLIENT" --url "$URL/fresh" --cert-hash "$want" --mac "52:54:00:13:00:$(printf %02x "$i")" \
    --timeout 10 >"$TMP/new$i.out" 2>&1 &
  NEW+=("$!")
  PIDS+=("$!")
done
for p in "${NEW[@]}"; do wait "$p" || fail "a new client did not get the new certificate"; done
pass "12 new clients after SIGHUP all got the new certificate"
for i in 1 2 3 4 5 6; do
  if "$CLIENT" --url "$URL/fresh" --cert-hash "$old" --timeout 3 >/dev/null 2>&1; then
    fail "a new connection still got the old certificate"
  fi
done
pass "6 new connections with the old hash all refused"
sleep 0.5
reload "$TMP/a"
sleep 0.5
reload "$TMP/b"
pass "3 reloads under load"
wait "$BENCH_PID" || fail "wtbench failed: $(tail -3 "$TMP/bench.err")"
python3 - "$TMP/bench.out" "$RATE" "$BENCH_S" <<'PY' || fail "frames stopped or were lost under the reloads: $(tail -1 "$TMP/bench.out")"
import json, sys
rows = [l for l in open(sys.argv[1]) if l.startswith("{")]
r = json.loads(rows[-1])
rate, secs = float(sys.argv[2]), float(sys.argv[3])
print("wtbench: sent %d delivered %d loss %.2f%% per second %s" % (r["sent"], r["delivered"], r["loss_pct"], r["per_second"]))
assert r["sent"] >= 0.9 * rate * secs, "the load generator fell behind"
assert r["loss_pct"] <= 2.0, "loss over the reloads"
# every whole second of the run delivered frames, each at least half the rate
assert len(r["per_second"]) >= int(secs), "seconds missing"
assert min(r["per_second"][: int(secs)]) >= rate / 2, "a second with too few frames"
PY
pass "frames kept flowing across the workers through the reloads ($(python3 -c 'import json,sys; r=json.loads([l for l in open(sys.argv[1]) if l.startswith("{")][-1]); print("%d of %d, %.2f %% lost" % (r["delivered"], r["sent"], r["loss_pct"]))' "$TMP/bench.out"))"
for i in "${!HOLDS[@]}"; do
  wait "${HOLDS[$i]}" || fail "a session opened before the reload stopped answering: $(tail -1 "$TMP/hold$((i + 1)).out")"
done
pass "every session opened before the reload kept answering heartbeats (on both workers)"
stop_relay
pass "SIGTERM: exit 0 in ${STOP_MS} ms"
