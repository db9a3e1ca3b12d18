#!/usr/bin/env bash
# Inbound forwarding on loopback, no VM: a --forward whose port is taken
# stops the start; the API is 404 without --ops-api and refused off
# loopback without a token; with it, a forward added at run time resets
# connections while no VM is there (counted), is listed, removed, and the
# listener answers bodies it cannot take with 411 and 413.
. "$(dirname "$0")/lib.sh"

free_tcp_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# A connection to 127.0.0.1:port: prints reset, refused, eof or data.
probe() { # port
  timeout 20 python3 -c '
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
    s.settimeout(10)
    print("data" if s.recv(1) else "eof")
except ConnectionResetError:
    print("reset")
except ConnectionRefusedError:
    print("refused")' "$1"
}
OPS_PORT=$(free_tcp_port)
OPS="http://127.0.0.1:$OPS_PORT"
req() { # method path [curl args...] -> status code, body in $TMP/body
  local m=$1 p=$2
  shift 2
  curl -s --max-time 5 -o "$TMP/body" -w '%{http_code}' -X "$m" "$@" "$OPS$p"
}

# a port someone holds: the relay does not start, and says why
busy=$(free_tcp_port)
python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(1); time.sleep(30)' "$busy" &
PIDS+=("$!")
sleep 0.3
rc=0
"$RELAY" --bind 127.0.0.1 --port "$(free_udp_port)" --http-listen "" \
  --forward "tcp:127.0.0.1:$busy=10.0.2.15:80" >"$TMP/busy.out" 2>"$TMP/busy.err" || rc=$?
[ "$rc" = 1 ] || fail "a forward on a busy port: exit $rc"
grep -F 'msg="forward cannot be opened"' "$TMP/busy.err" | grep -F 'Address already in use' >/dev/null ||
  fail "no reason for the failed start: $(cat "$TMP/busy.err")"
pass "a --forward on a port in use stops the start (exit 1, 'forward cannot be opened')"

rc=0
"$RELAY" --ops-api --http-listen 0.0.0.0:1 >/dev/null 2>"$TMP/usage.err" || rc=$?
if [ "$rc" != 2 ] || ! grep -F -- '--ops-token' "$TMP/usage.err" >/dev/null; then
  fail "--ops-api off loopback without a token: exit $rc $(cat "$TMP/usage.err")"
fi
pass "--ops-api on a non-loopback listener without --ops-token is a usage error"

start_relay --http-listen "127.0.0.1:$OPS_PORT"
code=$(req GET /forwards)
[ "$code" = 404 ] || fail "GET /forwards without --ops-api: $code"
code=$(req POST /forwards --data '{"forward":"tcp:1=10.0.2.15:80"}')
[ "$code" = 405 ] || fail "POST /forwards without --ops-api: $code"
stop_relay
pass "without --ops-api: GET /forwards 404, POST 405"

start_relay --http-listen "127.0.0.1:$OPS_PORT" --ops-api
fport=$(free_tcp_port)
code=$(req POST /forwards --data "{\"forward\":\"tcp:127.0.0.1:$fport=[52:54:00:12:34:56]:80@/lab\"}")
[ "$code" = 201 ] || fail "POST /forwards: $code $(cat "$TMP/body")"
id=$(json_field id <"$TMP/body")
got=$(probe "$fport")
[ "$got" = reset ] || fail "a connection to the forward with no VM: $got"
code=$(req GET /forwards)
[ "$code" = 200 ] || fail "GET /forwards: $code"
python3 - "$TMP/body" "$fport" <<'PY' || fail "GET /forwards: $(cat "$TMP/body")"
import json, sys
f = json.load(open(sys.argv[1]))["forwards"]
assert len(f) == 1 and f[0]["forward"] == "tcp:127.0.0.1:%s=[52:54:00:12:34:56]:80@/lab" % sys.argv[2], f
assert f[0]["refused"] == 1 and f[0]["active"] == 0, f
PY
code=$(req POST /forwards -H 'Transfer-Encoding: chunked' --data '{}')
[ "$code" = 411 ] || fail "a chunked body: $code"
head -c 5000 /dev/zero | tr '\0' 'x' >"$TMP/big"
code=$(req POST /forwards --data-binary "@$TMP/big")
[ "$code" = 413 ] || fail "a 5000-byte body: $code"
code=$(req GET /healthz)
[ "$code" = 200 ] || fail "/healthz after the refusals: $code"
code=$(req DELETE "/forwards/$id")
[ "$code" = 200 ] || fail "DELETE /forwards/$id: $code"
got=$(probe "$fport")
[ "$got" = refused ] || fail "the port after DELETE: $got"
stop_relay
pass "--ops-api on loopback: a forward added (201), a connection reset with no VM (refused 1 in the list), 411 for a chunked body, 413 for 5000 bytes, removed (200, then the kernel refuses the port)"
