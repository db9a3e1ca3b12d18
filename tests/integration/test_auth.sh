#!/usr/bin/env bash
# Access control with the real relay and wtclient: --auth-key (HS256 and
# ES256 tokens from `wtrelay token`, one minted with Python's standard
# library as a backend would), a missing, expired or wrong-room token, the
# mac claim at Register, max_sessions per sub, the key file replaced while
# running (new tokens valid, old-key tokens refused within the poll
# interval), --allow-origin, and the refusal counters in /metrics.
source "$(dirname "$0")/lib.sh"

OPS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metrics() {
  sleep 0.25 # the other workers publish their counters every 100 ms
  python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$OPS_PORT/metrics', timeout=5).read().decode())"
}
metric() { metrics | awk -v k="$1" '$1 == k {print $2}'; }
token() { "$RELAY" token "$@"; }
# mint SECRET_FILE ROOM EXP_OFFSET: HS256 with the standard library only
mint() {
  python3 - "$@" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret = open(sys.argv[1], 'rb').read().rstrip(b'\n')
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode()
head = b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())
body = b64(json.dumps({'room': sys.argv[2], 'exp': int(time.time()) + int(sys.argv[3])}).encode())
sig = hmac.new(secret, f'{head}.{body}'.encode(), hashlib.sha256).digest()
print(f'{head}.{body}.{b64(sig)}')
PY
}
status_of() { sed -n 's/^session=0 .* status=\([0-9]*\) .*/\1/p' "$1" | head -1; }

head -c 32 /dev/urandom | base64 >"$TMP/key"
start_relay --auth-key "$TMP/key" --cert-poll-interval 1 --http-listen "127.0.0.1:$OPS_PORT"

T=$(token --key "$TMP/key" --room /lab --ttl 10m)
"$CLIENT" --url "$URL/lab?token=$T" --cert-hash "$HASH" --timeout 10 >"$TMP/ok.out" 2>&1 ||
  fail "a valid token was refused: $(cat "$TMP/ok.out")"
pass "valid HS256 token from 'wtrelay token': Assigned"
T2=$(mint "$TMP/key" /lab 600)
"$CLIENT" --url "$URL/lab?jwt=$T2" --cert-hash "$HASH" --timeout 10 >"$TMP/py.out" 2>&1 ||
  fail "a token minted with Python's hmac was refused: $(cat "$TMP/py.out")"
pass "token minted with Python's standard library (jwt=): Assigned"

check_refused() { # what url status
  if "$CLIENT" --url "$2" --cert-hash "$HASH" --timeout 5 >"$TMP/r.out" 2>&1; then
    fail "$1: the session opened"
  fi
  [ "$(status_of "$TMP/r.out")" = "$3" ] || fail "$1: expected status $3: $(cat "$TMP/r.out")"
  pass "$1: CONNECT answered $3, session failed"
}
check_refused "no token" "$URL/lab" 401
check_refused "expired token (past the 60 s skew)" "$URL/lab?token=$(mint "$TMP/key" /lab -120)" 401
check_refused "garbage token" "$URL/lab?token=abc.def.ghi" 401
check_refused "token for /lab used on /other" "$URL/other?token=$T" 403
P=$(token --key "$TMP/key" --room '/lab/*')
"$CLIENT" --url "$URL/lab/a?token=$P" --cert-hash "$HASH" --timeout 10 >/dev/null 2>&1 ||
  fail "prefix grant /lab/* refused /lab/a"
check_refused "prefix grant /lab/* on /labx" "$URL/labx?token=$P" 403
grep -q 'msg="session refused".*origin=.*reason=room_not_granted status=403' "$TMP/relay.err" ||
  fail "no refusal log line with origin and reason"
pass "refusals logged with remote, origin, room and reason"

# mac claim
M=$(token --key "$TMP/key" --room /lab --mac 52:54:00:ab:00:01)
"$CLIENT" --url "$URL/lab?token=$M" --cert-hash "$HASH" --mac 52:54:00:ab:00:02 --expect-error \
  --timeout 10 >"$TMP/mac.out" 2>&1 || fail "another MAC than the token's got no Error: $(cat "$TMP/mac.out")"
grep -q 'last_error="MAC address not allowed by the token"' "$TMP/mac.out" ||
  fail "wrong Error text: $(cat "$TMP/mac.out")"
"$CLIENT" --url "$URL/lab?token=$M" --cert-hash "$HASH" --mac 52:54:00:ab:00:01 --timeout 10 \
  >/dev/null 2>&1 || fail "the token's own MAC was refused"
pass "mac claim: another MAC gets an Error, the token's MAC is Assigned"

# max_sessions per sub: 3 sessions with one token, 2 allowed
S=$(token --key "$TMP/key" --room /lab --sub alice --max-sessions 2)
"$CLIENT" --url "$URL/lab?token=$S" --cert-hash "$HASH" --sessions 3 --timeout 8 >"$TMP/sub.out" 2>&1 || true
[ "$(grep -c 'status=200' "$TMP/sub.out")" = 2 ] || fail "max_sessions 2: $(cat "$TMP/sub.out")"
[ "$(grep -c 'status=429' "$TMP/sub.out")" = 1 ] || fail "max_sessions 2, third not 429: $(cat "$TMP/sub.out")"
"$CLIENT" --url "$URL/lab?token=$S" --cert-hash "$HASH" --sessions 2 --timeout 10 >/dev/null 2>&1 ||
  fail "sub's sessions not given back after they ended"
pass "sub with max_sessions 2: the third live session gets 429; slots come back"

# key replaced: new tokens valid, old-key tokens refused, within the poll interval
OLD=$(token --key "$TMP/key" --room /lab)
head -c 32 /dev/urandom | base64 >"$TMP/key.new"
NEW=$(token --key "$TMP/key.new" --room /lab)
mv "$TMP/key.new" "$TMP/key"
ok=""
for _ in $(seq 30); do
  if "$CLIENT" --url "$URL/lab?token=$NEW" --cert-hash "$HASH" --timeout 3 >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.2
done
[ -n "$ok" ] || fail "the new key was not loaded"
check_refused "old-key token after the key was replaced" "$URL/lab?token=$OLD" 401
echo "-----BEGIN PUBLIC KEY-----" >"$TMP/key.bad" && mv "$TMP/key.bad" "$TMP/key"
sleep 2.2
grep -q 'token key reload failed, keeping the old one' "$TMP/relay.err" || fail "no log line for a broken key"
"$CLIENT" --url "$URL/lab?token=$NEW" --cert-hash "$HASH" --timeout 10 >/dev/null 2>&1 ||
  fail "a broken key file replaced the good key"
pass "key file replaced: new tokens valid within the poll interval, old ones 401; a broken file keeps the key"

# /metrics
for r in missing_token expired malformed room_not_granted bad_signature subject_limit; do
  v=$(metric "wtrelay_auth_refused_total{reason=\"$r\"}")
  [ -n "$v" ] && [ "$v" -ge 1 ] || fail "wtrelay_auth_refused_total{reason=\"$r\"} is '$v'"
done
[ "$(metric wtrelay_auth_register_refused_mac_total)" = 1 ] || fail "register_refused_mac: $(metrics | grep auth_)"
[ "$(metric 'wtrelay_auth_key_reloads_total{result="ok"}')" = 1 ] || fail "key reloads: $(metrics | grep reloads)"
[ "$(metric 'wtrelay_auth_key_reloads_total{result="failed"}')" -ge 1 ] || fail "key reload failures"
pass "/metrics counts refusals by reason, the MAC refusal and the key reloads"
stop_relay

# ES256: the relay holds the public key, 'wtrelay token' the private one
openssl ecparam -genkey -name prime256v1 -noout -out "$TMP/ec.pem" 2>/dev/null
openssl ec -in "$TMP/ec.pem" -pubout -out "$TMP/ec.pub" 2>/dev/null
start_relay --auth-key "$TMP/ec.pub"
E=$(token --key "$TMP/ec.pem" --room /lab)
"$CLIENT" --url "$URL/lab?token=$E" --cert-hash "$HASH" --timeout 10 >/dev/null 2>&1 || fail "ES256 token refused"
check_refused "HS256 token offered to an ES256 key" "$URL/lab?token=$T" 401
stop_relay
if "$RELAY" --auth-key "$TMP/ec.pem" --port 1 >/dev/null 2>"$TMP/priv.err"; then fail "the relay started with a private key"; fi
grep -q 'give the relay the public key' "$TMP/priv.err" || fail "private key: $(cat "$TMP/priv.err")"
pass "ES256: valid with the public key; HS256 refused; a private key refused at start"

# --allow-origin without a key: wtclient's Origin is https://127.0.0.1:PORT
start_relay --allow-origin https://allowed.example --allow-origin 'https://*.example.org'
check_refused "origin outside --allow-origin" "$URL/" 403
grep -q 'reason=origin_not_allowed status=403' "$TMP/relay.err" || fail "no origin refusal log line"
stop_relay
"$RELAY" --allow-origin https://a.example/path 2>"$TMP/o.err" >/dev/null && fail "a path in --allow-origin accepted"
grep -q -- '--allow-origin' "$TMP/o.err" || fail "bad --allow-origin message: $(cat "$TMP/o.err")"
pass "--allow-origin: another origin gets 403; a malformed pattern exits 2"
