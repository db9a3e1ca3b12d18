#!/usr/bin/env bash
# Operations: /metrics (promtool), /healthz, /readyz, /cert-hash, certificate
# reload without dropping a live session (file change and SIGHUP), a broken
# replacement keeps the old certificate, the listener survives a slow
# client, an oversized request and 1000 connections, --healthcheck.
. "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null || fail "promtool missing (Debian package prometheus; scripts/install-deps.sh)"

OPS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
OPS="http://127.0.0.1:$OPS_PORT"
get() { # path -> body on stdout; fails on non-200
  python3 - "$OPS$1" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    sys.stdout.write(r.read().decode())
PY
}
hash_now() { get /cert-hash | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])'; }
newpair() { # dir
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 10 \
    -subj /CN=localhost -keyout "$1/k.pem" -out "$1/c.pem" 2>/dev/null
}
mkdir -p "$TMP/a" "$TMP/b" "$TMP/live"
newpair "$TMP/a"
newpair "$TMP/b"
cp "$TMP/a/c.pem" "$TMP/live/c.pem"
cp "$TMP/a/k.pem" "$TMP/live/k.pem"

start_relay --cert-pem "$TMP/live/c.pem" --key-pem "$TMP/live/k.pem" --cert-poll-interval 1 \
  --http-listen "127.0.0.1:$OPS_PORT" --max-sessions-per-ip 1000
[ "$(get /healthz)" = ok ] || fail "/healthz"
[ "$(get /readyz)" = ready ] || fail "/readyz"
[ "$(hash_now)" = "$HASH" ] || fail "/cert-hash $(hash_now) != printed $HASH"
hdrs=$(python3 - "$OPS/cert-hash" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    print(r.headers.get("Access-Control-Allow-Origin"), r.headers.get("Content-Type"))
PY
)
[ "$hdrs" = "* application/json" ] || fail "/cert-hash headers: $hdrs"
get /cert-hash | python3 -c '
import base64, json, sys
j = json.load(sys.stdin)
assert base64.b64decode(j["sha256_b64"]).hex() == j["sha256"], j
assert j["not_after"].endswith("Z") and "T" in j["not_after"], j' || fail "/cert-hash JSON"
pass "/healthz, /readyz, /cert-hash (equals the printed hash, base64 agrees, CORS *)"

# /metrics with live sessions, checked by promtool
"$CLIENT" --url "$URL/ops" --cert-hash "$HASH" --sessions 3 --hold 3 --late-heartbeats 1 \
  --timeout 15 >"$TMP/hold.out" 2>&1 &
HOLD=$!
PIDS+=("$HOLD")
for _ in $(seq 50); do get /metrics | grep -q '^wtrelay_sessions 3$' && break; sleep 0.1; done
get /metrics >"$TMP/metrics.txt"
grep -q '^wtrelay_sessions 3$' "$TMP/metrics.txt" || fail "wtrelay_sessions is not 3: $(grep wtrelay_sessions "$TMP/metrics.txt")"
promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool.out" 2>&1 || fail "promtool: $(cat "$TMP/promtool.out")"
pass "promtool check metrics accepts /metrics with 3 live sessions ($(grep -c '^# TYPE' "$TMP/metrics.txt") families)"

# Reload by file change while the sessions live; they keep working.
old=$HASH
cp "$TMP/b/c.pem" "$TMP/live/c.pem.new" && cp "$TMP/b/k.pem" "$TMP/live/k.pem.new"
mv "$TMP/live/k.pem.new" "$TMP/live/k.pem" && mv "$TMP/live/c.pem.new" "$TMP/live/c.pem"
want=$(openssl x509 -in "$TMP/b/c.pem" -outform DER | sha256sum | cut -d' ' -f1)
for _ in $(seq 40); do [ "$(hash_now)" = "$want" ] && break; sleep 0.1; done
[ "$(hash_now)" = "$want" ] || fail "hash did not change after the files were replaced"
wait "$HOLD" || fail "sessions opened before the reload failed: $(cat "$TMP/hold.out")"
grep -q '"heartbeats_ok":3' "$TMP/hold.out" || fail "live sessions lost their heartbeats: $(tail -1 "$TMP/hold.out")"
pass "PEM files replaced: /cert-hash changed within the poll interval; 3 sessions opened before kept answering"
out=$("$CLIENT" --url "$URL/" --cert-hash "$want" --timeout 10) || fail "new client with the new hash: $out"
if "$CLIENT" --url "$URL/" --cert-hash "$old" --timeout 5 >/dev/null 2>&1; then
  fail "a new connection still got the old certificate"
fi
pass "new connections get the new certificate (old hash refused)"

# A broken replacement keeps the current certificate.
echo "not a certificate" >"$TMP/live/c.pem"
sleep 2.2
[ "$(hash_now)" = "$want" ] || fail "a broken certificate replaced the good one"
grep -q 'certificate reload failed, keeping the old one' "$TMP/relay.err" || fail "no log line for the broken reload"
"$CLIENT" --url "$URL/" --cert-hash "$want" --timeout 10 >/dev/null || fail "relay unusable after a broken reload"
pass "a corrupt certificate file is refused, the old one stays in use"

# SIGHUP reloads at once (the pair from a/ again).
cp "$TMP/a/c.pem" "$TMP/live/c.pem"
cp "$TMP/a/k.pem" "$TMP/live/k.pem"
kill -HUP "$RELAY_PID"
for _ in $(seq 20); do [ "$(hash_now)" = "$old" ] && break; sleep 0.05; done
[ "$(hash_now)" = "$old" ] || fail "SIGHUP did not reload"
get /metrics | grep -q 'wtrelay_certificate_reloads_total{result="failed"} [1-9]' || fail "failed reload not counted"
pass "SIGHUP reloads at once; reloads are counted in /metrics"

# The listener survives a slow client, an oversized request, 1000 connections.
python3 - "$OPS_PORT" <<'PY' || fail "ops listener robustness"
import socket, sys, time, urllib.request
port = int(sys.argv[1])
def get(path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.read()
# slow client: half a request, kept open
slow = socket.create_connection(("127.0.0.1", port)); slow.sendall(b"GET /metr")
assert get("/healthz") == (200, b"ok\n")
# oversized request head: 431 and the connection closes
big = socket.create_connection(("127.0.0.1", port), timeout=5)
big.sendall(b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
resp = big.recv(200)
assert resp.startswith(b"HTTP/1.1 431"), resp
# 1000 connections at once (more than --ops-max-conns): extra ones are closed,
# the listener keeps answering
conns = []
for _ in range(1000):
    try:
        conns.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError:
        pass
time.sleep(0.3)
for c in conns: c.close()
time.sleep(0.3)
assert get("/healthz") == (200, b"ok\n")
# keep-alive and pipelining on one connection
k = socket.create_connection(("127.0.0.1", port), timeout=5)
k.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
while data.count(b"HTTP/1.1 200") < 2:
    d = k.recv(4096)
    assert d, data
    data += d
assert get("/nope")[0] == 200 if False else True
slow.close()
print(len(conns), "connections opened")
PY
st=$(python3 -c "
import urllib.request, urllib.error
try: urllib.request.urlopen('$OPS/nope', timeout=5)
except urllib.error.HTTPError as e: print(e.code)")
[ "$st" = 404 ] || fail "unknown path: $st"
pass "ops listener survives a slow client, a 20 kB request head (431), 1000 connections; keep-alive and pipelining work; 404"

# Probes get in while half-sent requests hold every slot (--ops-max-conns,
# 256 by default) and the holder opens a new one before each probe: for
# each newcomer the connection waiting longest is evicted.
evicted() { get /metrics | awk '/^wtrelay_ops_http_connections_dropped_total\{reason="evicted"\}/{print $2}'; }
before=$(evicted)
python3 - "$OPS_PORT" 256 <<'PY' || fail "probes while the ops listener is full"
import socket, sys, time, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
def hold():  # a slowloris: a request head that never ends
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    held.append(s)
for _ in range(n):
    hold()
time.sleep(0.3)  # every one of them accepted and waiting
probes = ["/healthz", "/readyz", "/healthz", "/readyz", "/healthz"]
for path in probes:
    hold()  # the table is full again before each probe
    time.sleep(0.05)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        body = r.read()
        assert r.status == 200, (path, r.status)
        assert body in (b"ok\n", b"ready\n"), (path, body)
time.sleep(0.2)
closed = []
for i, s in enumerate(held):  # one non-blocking look each: well inside the 10 s request timeout
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            closed.append(i)
    except BlockingIOError:
        pass
    except ConnectionResetError:
        closed.append(i)
# the oldest half-sent requests made room, and only they
assert set(range(len(probes))) <= set(closed), closed
assert max(closed) < 2 * len(probes) + 1, closed
for s in held:
    s.close()
print(f"{len(probes)} probes answered 200 with {n} half-sent requests held; evicted {closed}")
PY
after=$(evicted)
[ -n "$after" ] && [ "$((after - ${before:-0}))" -ge 5 ] ||
  fail "evictions not counted: before=$before after=$after"
pass "/healthz and /readyz answer 200 while 256 half-sent requests hold the ops listener (evicted $((after - ${before:-0})))"

"$RELAY" --healthcheck "$OPS/healthz" || fail "--healthcheck against a live relay"
if "$RELAY" --healthcheck "http://127.0.0.1:1/healthz" 2>/dev/null; then fail "--healthcheck of nothing succeeded"; fi
pass "--healthcheck: 0 for a live relay, 1 for nothing listening"
# no URL: the /healthz of the ops listener the same flags or environment name
"$RELAY" --healthcheck --http-listen "127.0.0.1:$OPS_PORT" || fail "--healthcheck --http-listen"
"$RELAY" --http-listen "127.0.0.1:$OPS_PORT" --healthcheck= || fail "--http-listen ... --healthcheck="
RELAY_HTTP_LISTEN="127.0.0.1:$OPS_PORT" "$RELAY" --healthcheck || fail "RELAY_HTTP_LISTEN --healthcheck"
# a wildcard address is probed at 127.0.0.1 (where this relay listens)
"$RELAY" --healthcheck --http-listen "0.0.0.0:$OPS_PORT" || fail "--http-listen 0.0.0.0: not probed at 127.0.0.1"
"$RELAY" --healthcheck --http-listen "[::]:$OPS_PORT" || fail "--http-listen [::]: not probed at 127.0.0.1"
rc=0 # an IPv6 listener in brackets (nothing listens on ::1 here): 1, not a usage error
"$RELAY" --healthcheck --http-listen "[::1]:$OPS_PORT" 2>"$TMP/hc.err" || rc=$?
[ "$rc" = 1 ] && grep -q "http://\[::1\]:$OPS_PORT/healthz: no answer" "$TMP/hc.err" ||
  fail "--http-listen [::1]: exit $rc, $(cat "$TMP/hc.err")"
rc=0
"$RELAY" --healthcheck --http-listen "" 2>"$TMP/hc.err" || rc=$?
[ "$rc" = 2 ] && grep -q 'ops listener is off' "$TMP/hc.err" || fail "--healthcheck with no listener: exit $rc, $(cat "$TMP/hc.err")"

stop_relay
pass "SIGTERM exit 0 in ${STOP_MS} ms"
rc=0
"$RELAY" --healthcheck --http-listen "127.0.0.1:$OPS_PORT" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "--healthcheck of a stopped relay: exit $rc"
pass "--healthcheck without a URL: the ops listener of --http-listen or RELAY_HTTP_LISTEN (a wildcard as 127.0.0.1), 1 once the relay stopped, 2 without a listener"
