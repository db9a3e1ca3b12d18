#!/usr/bin/env bash
# Log safety and certificate lifetime:
# - hostile room names (quote + fake fields, ESC sequences, raw high bytes)
#   and hostile close reasons (newline + fake line, ESC, quotes) leave
#   exactly one parseable logfmt record per event and never a forged field;
# - a room with a control byte is refused with 400, a room of 256 bytes or
#   more with 414 (never truncated: two long rooms with one prefix do not
#   share a room), both counted in /metrics;
# - more than 8 certificate reloads while a connection opened before the
#   first one stays alive: it keeps answering heartbeats, and its
#   certificate is not kept for it (wtrelay_certificates_live): the relay
#   freed the connection's TLS session, and with it its reference to the
#   certificate, once the handshake was done.
. "$(dirname "$0")/lib.sh"

OPS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
OPS="http://127.0.0.1:$OPS_PORT"
get() {
  python3 - "$OPS$1" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    sys.stdout.write(r.read().decode())
PY
}
metric() { sleep 0.25; get /metrics | awk -v k="$1" '$1 == k {print $2}'; }
hash_now() { get /cert-hash | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])'; }
newpair() { # dir
  mkdir -p "$1"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 10 \
    -subj /CN=localhost -keyout "$1/k.pem" -out "$1/c.pem" 2>/dev/null
}
pair_hash() { openssl x509 -in "$1/c.pem" -outform DER | sha256sum | cut -d' ' -f1; }

# Every line of the relay's stderr must be one logfmt record: key=value
# pairs, values bare (no space, no quote) or quoted with only \" \\ \n \r
# \t \xNN escapes, printable ASCII only; no forged level=error field.
check_logs() { # file -> prints the number of records
  python3 - "$1" <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read()
assert data.endswith(b"\n"), "last line not terminated"
val = r'(?:"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\nrt]|\\x[0-9a-f]{2})*"|[^\s"=]*)'
field = r'[A-Za-z_][A-Za-z0-9_.]*=' + val
line_re = re.compile(r'ts=\S+ level=(error|warn|info|debug) msg=' + val + r'(?: ' + field + r')*')
keys_re = re.compile(r'(?:^| )([A-Za-z_][A-Za-z0-9_.]*)=' + val)
n = 0
for raw in data.split(b"\n")[:-1]:
    line = raw.decode("latin-1")
    if not line_re.fullmatch(line):
        sys.exit("not one logfmt record: %r" % line)
    keys = [m.group(1) for m in keys_re.finditer(line)]
    if len(keys) != len(set(keys)):
        sys.exit("a key appears twice (forged field): %r" % line)
    n += 1
print(n)
PY
}

mkdir -p "$TMP/live"
for i in $(seq 0 10); do newpair "$TMP/p$i"; done
cp "$TMP/p0/c.pem" "$TMP/live/c.pem"
cp "$TMP/p0/k.pem" "$TMP/live/k.pem"
# debug: the counters at exit (and the debug records) are checked too
start_relay --cert-pem "$TMP/live/c.pem" --key-pem "$TMP/live/k.pem" --cert-poll-interval 3600 \
  --http-listen "127.0.0.1:$OPS_PORT" --log-level debug

# ---- certificate lifetime: a connection opened before the first reload ----
"$CLIENT" --url "$URL/held" --cert-hash "$HASH" --heartbeats 1 --hold 25 --late-heartbeats 3 \
  --timeout 10 >"$TMP/held.out" 2>&1 &
HELD=$!
PIDS+=("$HELD")
for _ in $(seq 50); do [ "$(metric wtrelay_sessions)" = 1 ] && break; sleep 0.1; done
[ "$(metric wtrelay_sessions)" = 1 ] || fail "the held session did not open"
[ "$(metric wtrelay_certificates_live)" = 1 ] || fail "certificates_live before reloads: $(metric wtrelay_certificates_live)"
t0=$(date +%s)
for i in $(seq 1 10); do
  cp "$TMP/p$i/c.pem" "$TMP/live/c.pem.new" && cp "$TMP/p$i/k.pem" "$TMP/live/k.pem.new"
  mv "$TMP/live/k.pem.new" "$TMP/live/k.pem" && mv "$TMP/live/c.pem.new" "$TMP/live/c.pem"
  kill -HUP "$RELAY_PID"
  want=$(pair_hash "$TMP/p$i")
  for _ in $(seq 40); do [ "$(hash_now)" = "$want" ] && break; sleep 0.05; done
  [ "$(hash_now)" = "$want" ] || fail "reload $i did not take"
done
[ "$(metric 'wtrelay_certificate_reloads_total{result="ok"}')" = 10 ] || fail "reloads counted: $(metric 'wtrelay_certificate_reloads_total{result="ok"}')"
# (the held client holds 25 s: 10 reloads take 5 to 15 s, more under ASan)
kill -0 "$HELD" 2>/dev/null || fail "the held client ended before the reloads were done ($(($(date +%s) - t0)) s): $(cat "$TMP/held.out")"
live=$(metric wtrelay_certificates_live)
[ "$live" = 1 ] || fail "after 10 reloads with one old connection: certificates_live=$live, want 1 (the current one: the held connection's TLS session is freed after its handshake)"
wait "$HELD" || fail "the session opened before 10 reloads failed: $(cat "$TMP/held.out")"
grep -q '"heartbeats_ok":1' "$TMP/held.out" && grep -q 'acks=4 ' "$TMP/held.out" ||
  fail "heartbeats after the 10th reload not answered: $(cat "$TMP/held.out")"
for _ in $(seq 60); do [ "$(metric wtrelay_certificates_live)" = 1 ] && break; sleep 0.1; done
[ "$(metric wtrelay_certificates_live)" = 1 ] || fail "the old certificate was not freed after its connection closed: $(metric wtrelay_certificates_live)"
pass "10 reloads while a connection lived: its heartbeats answered after the 10th, no old certificate kept for it (live 1)"
HASH=$(hash_now)

# ---- hostile room names and close reasons ----
run() { # expected-status url-path [wtclient flags...]
  local want=$1 path=$2
  shift 2
  local out
  out=$("$CLIENT" --url "$URL$path" --cert-hash "$HASH" --timeout 5 "$@" 2>&1) || true
  echo "$out" | grep -q "status=$want " || fail "room $(printf %q "$path"): want status $want, got: $out"
  echo "$out"
}
run 200 '/x" level=error msg="forged' >/dev/null
run 200 "/hi"$'\xff\xfe'"é"'\"' >/dev/null
run 200 '/plain' --close-reason $'bye\nts=2026-01-01T00:00:00.000Z level=error msg="forged"' >/dev/null
run 200 '/esc' --close-reason $'\x1b[2J\x1b[H\x1b]0;title\x07"\\ level=error msg="forged"\xff' >/dev/null
run 400 $'/a\x1b[31mred\x1b[0m' --no-register >/dev/null
run 400 $'/tab\tx' --no-register >/dev/null
run 400 $'/del\x7f' --no-register >/dev/null
# a newline cannot even be sent (RFC 9114 forbids it in a field value: the
# client refuses to encode it and the relay's decoder would answer 400)
out=$("$CLIENT" --url "$URL"$'/nl\nts=1 level=error msg="forged"' --cert-hash "$HASH" --timeout 3 --no-register 2>&1) || true
echo "$out" | grep -q 'status=200 ' && fail "a room with a newline was accepted: $out"
pass "hostile rooms: quotes and high bytes accepted, ESC, tab and DEL refused with 400, newline never sent"

# ---- long rooms: refused, never truncated ----
prefix=/$(printf 'r%.0s' $(seq 253)) # 254 bytes
# (one room would give the second MAC the next address, .253)
"$CLIENT" --url "$URL${prefix}a" --cert-hash "$HASH" --timeout 5 --mac 52:54:00:00:0a:01 --hold 2 \
  >"$TMP/a.out" 2>&1 &
A=$!
PIDS+=("$A")
for _ in $(seq 50); do grep -q 'room="/rrr' "$TMP/relay.err" && break; sleep 0.1; done
out_b=$(run 200 "${prefix}b" --mac 52:54:00:00:0a:02)
wait "$A" || fail "first long room: $(cat "$TMP/a.out")"
grep -q 'status=200 .*ip=10.0.2.254 ' "$TMP/a.out" || fail "first long room: $(cat "$TMP/a.out")"
echo "$out_b" | grep -q 'ip=10.0.2.254 ' || fail "two 255-byte rooms that differ in the last byte shared a room: $out_b"
long=${prefix}rr # 256 bytes
run 414 "${long}a" --no-register >/dev/null
run 414 "${long}b" --no-register >/dev/null
run 414 "${long}a?token=x" --no-register >/dev/null
pass "a 255-byte room is kept whole (two that differ in the last byte are two rooms); 256 bytes and more: 414"

m=$(get /metrics)
echo "$m" | grep -q '^wtrelay_h3_requests_refused_total{reason="room_control_chars"} 3$' ||
  fail "room_control_chars counter: $(echo "$m" | grep requests_refused)"
echo "$m" | grep -q '^wtrelay_h3_requests_refused_total{reason="path_too_long"} 3$' ||
  fail "path_too_long counter: $(echo "$m" | grep requests_refused)"
pass "refusals counted in wtrelay_h3_requests_refused_total"

stop_relay
n=$(check_logs "$TMP/relay.err") || fail "relay log: $n"
[ "$(exit_counter h3_refused_room_control)" = 3 ] && [ "$(exit_counter h3_refused_path_too_long)" = 3 ] ||
  fail "the counters at exit lack the refusals"
# one record per event, each hostile value inside its own field
ended=$(grep -c 'msg="session ended"' "$TMP/relay.err")
opened=$(exit_counter h3_sessions_opened)
[ "$ended" = "$opened" ] || fail "session ended records $ended != sessions opened $opened"
sopened=$(grep -c 'msg="session opened"' "$TMP/relay.err")
[ "$sopened" = "$opened" ] || fail "session opened records $sopened != sessions opened $opened"
[ "$(grep -c 'room="/x\\" level=error msg=\\"forged"' "$TMP/relay.err")" = 3 ] ||
  fail "the quote room is not escaped in exactly its opened, registered and ended records"
grep -q 'reason="bye\\nts=2026-01-01T00:00:00.000Z level=error msg=\\"forged\\""' "$TMP/relay.err" ||
  fail "newline close reason not escaped"
grep -q 'reason="\\x1b\[2J\\x1b\[H\\x1b\]0;title\\x07\\"\\\\ level=error msg=\\"forged\\"\\xff"' "$TMP/relay.err" ||
  fail "ESC close reason not escaped: $(grep -a 'room="/esc"' "$TMP/relay.err")"
grep -q 'room="/hi\\xff\\xfe\\xc3\\xa9\\\\\\""' "$TMP/relay.err" || fail "high bytes not escaped"
if grep -a -E '(^| )level=error msg="forged' "$TMP/relay.err"; then fail "a forged field got through"; fi
pass "relay log: $n lines, each one logfmt record; hostile values escaped in their own field"
