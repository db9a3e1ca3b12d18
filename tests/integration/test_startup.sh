#!/usr/bin/env bash
# Start-up, flags, certificates and signals of the real binary.
. "$(dirname "$0")/lib.sh"

"$RELAY" --help >"$TMP/help" && grep -q -- '--cert-pem' "$TMP/help" || fail "--help"
# A usage error is one line on stderr: what is wrong, naming the flag, and a
# pointer to --help (not the whole usage text); exit 2.
one_line_usage_error() { # expected-text args...
  local want=$1 rc=0
  shift
  "$RELAY" "$@" >/dev/null 2>"$TMP/e" || rc=$?
  [ "$rc" = 2 ] || fail "$*: exit $rc, expected 2"
  [ "$(wc -l <"$TMP/e")" = 1 ] || fail "$*: more than one line: $(cat "$TMP/e")"
  grep -q -- "$want" "$TMP/e" && grep -q "Try 'wtrelay --help'" "$TMP/e" || fail "$*: $(cat "$TMP/e")"
}
one_line_usage_error "unknown flag '--frobnicate'" --frobnicate
one_line_usage_error "^wtrelay: --port: .*got 'abc'" -pabc
one_line_usage_error "^wtrelay: --port: .*got 'abc'" --port=abc
one_line_usage_error "^wtrelay: --peer-timeout: .*got '1y'" --peer-timeout 1y
CERT_POLL_INTERVAL=-5 one_line_usage_error "^wtrelay: CERT_POLL_INTERVAL: .*got '-5'"
rc=0; "$RELAY" --cert-pem /x.pem >/dev/null 2>"$TMP/e" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--key-pem" "$TMP/e" || fail "half cert pair: rc=$rc"
rc=0; "$RELAY" --port 0 >/dev/null 2>"$TMP/e" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--port" "$TMP/e" || fail "bad port: rc=$rc"
rc=0; "$RELAY" --cert-pem "$TMP/missing.pem" --key-pem "$TMP/missing.key" --port 1 >/dev/null 2>"$TMP/e" || rc=$?
[ "$rc" = 1 ] && grep -q "missing.pem" "$TMP/e" || fail "missing PEM: rc=$rc $(cat "$TMP/e")"
pass "flags: help, unknown flag (2), one-line bad values (2), half cert pair (2), bad port (2), missing PEM (1)"

# The default bind "::" prints a URL with brackets (or, on a host without
# IPv6, falls back to 0.0.0.0 with a warning); -pPORT and durations work;
# RUST_LOG is honoured with a warning about module targets.
PORT=$(free_udp_port)
RUST_LOG="warn,bavy_relay=debug" "$RELAY" -p"$PORT" --http-listen= --heartbeat-interval 1m \
  --peer-timeout=1h >"$TMP/relay.out" 2>"$TMP/relay.err" &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
for _ in $(seq 1 50); do grep -q '^Listening on' "$TMP/relay.out" 2>/dev/null && break; sleep 0.1; done
if ! grep -q "^Listening on https://\[::\]:$PORT\$" "$TMP/relay.out"; then
  grep -q "^Listening on https://0.0.0.0:$PORT\$" "$TMP/relay.out" &&
    grep -q 'no IPv6 on this host' "$TMP/relay.err" || fail "default bind listening line: $(cat "$TMP/relay.out")"
fi
grep -q 'level=warn msg="RUST_LOG partly ignored".*bavy_relay' "$TMP/relay.err" || fail "RUST_LOG warning"
HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/relay.out")
out=$("$CLIENT" --url "https://127.0.0.1:$PORT/" --cert-hash "$HASH" --timeout 10) ||
  fail "client over IPv4 to the default bind: $out"
grep -q 'level=debug' "$TMP/relay.err" || fail "RUST_LOG=bavy_relay=debug did not enable debug logs"
stop_relay
pass "default bind: $(sed -n 's/^Listening on //p' "$TMP/relay.out"), -pPORT, durations, RUST_LOG"

# --max-sessions-per-ip defaults to 256 and the QUIC layer follows it: 100
# sessions from one address are accepted; with a limit of 2 the third is not.
# (They all go to one room: the relay's per-client share of a room, 64 by
# default, is raised so that the QUIC layer's limit is what is measured.)
start_relay --max-client-sessions-per-room 128
out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --sessions 100 --no-register --timeout 20s | tail -1)
[ "$(echo "$out" | json_field open)" = 100 ] || fail "100 sessions from one IP by default: $out"
stop_relay
start_relay --max-sessions-per-ip 2
out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --sessions 3 --no-register --timeout 3s | tail -1) || true
[ "$(echo "$out" | json_field open)" = 2 ] || fail "--max-sessions-per-ip 2: $out"
stop_relay
pass "per-IP session limit: default admits 100 from one address, --max-sessions-per-ip 2 admits 2"

start_relay
grep -Eq '^Certificate SHA-256 Hash: [0-9a-f]{64}$' "$TMP/relay.out" || fail "hash line"
grep -q "^Listening on https://127.0.0.1:$PORT\$" "$TMP/relay.out" || fail "listening line"
python3 - "$PORT" <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst = ("127.0.0.1", int(sys.argv[1]))
for n in (1, 20, 1200, 1500, 60000):
    s.sendto(b"\xff" * n, dst)  # long header, unknown version
for n in (25, 60, 1200):
    s.sendto(b"\x40" + os.urandom(n), dst)  # short header, unknown connection
# Initials (QUIC v1, DCID 8 bytes) with a garbage body, and a truncated one
for n in (1200, 1300):
    s.sendto(b"\xc0\x00\x00\x00\x01\x08" + os.urandom(8) + b"\x00" + os.urandom(n), dst)
s.sendto(b"\xc0\x00\x00\x00\x01\x14", dst)
PY
sleep 0.2
kill -0 "$RELAY_PID" || fail "relay died on junk UDP"
# alive means serving: a new client completes the handshake and registers
out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --timeout 10) || fail "no handshake after junk: $out"
echo "$out" | grep -q 'state=registered' || fail "no registration after junk: $out"
stop_relay
pass "ephemeral certificate lines printed; after junk UDP a client handshakes and registers; SIGTERM exit 0 in ${STOP_MS} ms"

# --max-tcp-conns 0 is the TCP NAT off, not a usage error
start_relay --max-tcp-conns 0
out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --timeout 10) || fail "--max-tcp-conns 0: $out"
stop_relay
pass "--max-tcp-conns 0 (TCP NAT off) starts and serves"

# getrandom failing for good (ENOSYS from a seccomp filter): every random
# byte comes from GnuTLS's generator (include/wtrelay/rng.h), which then
# seeds itself from /dev/urandom, so the relay starts and stops as usual.
# (A generator that fails outright is logged and aborts at the first draw;
# nothing retries, so nothing can spin.)
NR_GETRANDOM=$(printf '#include <sys/syscall.h>\nSYS_getrandom\n' | cpp -P - | tail -1)
"$BUILD_DIR/seccomp_run" -r "$NR_GETRANDOM=ENOSYS" -- "$RELAY" --bind 127.0.0.1 \
  --port "$(free_udp_port)" --http-listen '' >"$TMP/rnd.out" 2>"$TMP/rnd.err" &
rnd_pid=$!
for _ in $(seq 100); do
  grep -q '^Listening on' "$TMP/rnd.out" && break
  sleep 0.1
done
if ! grep -q '^Listening on' "$TMP/rnd.out"; then
  kill -KILL "$rnd_pid" 2>/dev/null
  fail "getrandom failing: the relay did not listen within 10 s: $(tail -3 "$TMP/rnd.err")"
fi
kill -TERM "$rnd_pid"
rc=0
wait "$rnd_pid" || rc=$?
[ "$rc" = 0 ] || fail "getrandom failing: SIGTERM exit $rc: $(tail -3 "$TMP/rnd.err")"
pass "getrandom failing for good: GnuTLS's generator seeds from /dev/urandom; the relay listens and exits 0"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 10 \
  -subj /CN=localhost -keyout "$TMP/k.pem" -out "$TMP/c.pem" 2>/dev/null
want=$(openssl x509 -in "$TMP/c.pem" -outform DER | sha256sum | cut -d' ' -f1)
RELAY_CERT_PEM="$TMP/c.pem" RELAY_KEY_PEM="$TMP/k.pem" start_relay
[ "$HASH" = "$want" ] || fail "PEM hash $HASH != openssl $want"
out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --timeout 10) || fail "client with PEM cert: $out"
kill -INT "$RELAY_PID"
rc=0; for _ in $(seq 1 30); do kill -0 "$RELAY_PID" 2>/dev/null || break; sleep 0.05; done
wait "$RELAY_PID" || rc=$?
[ "$rc" = 0 ] || fail "SIGINT exit $rc"
pass "PEM from env: hash equals openssl's, client connects; SIGINT exit 0"

# A second relay on a port in use fails clearly instead of sharing it.
start_relay
set +e
out=$(timeout 5 "$RELAY" --bind 127.0.0.1 --port "$PORT" 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] && echo "$out" | grep -q 'Address already in use' || fail "second relay on port $PORT: rc=$rc $out"
stop_relay
# ... whatever the worker counts: several workers share the port through
# SO_REUSEPORT, which a second relay of the same user could join
for w in "2 2" "1 2" "2 1" "4 3"; do
  set -- $w
  start_relay --workers "$1"
  set +e
  out=$(timeout 5 "$RELAY" --bind 127.0.0.1 --port "$PORT" --http-listen "" --workers "$2" 2>&1)
  rc=$?
  set -e
  [ "$rc" = 1 ] && echo "$out" | grep -q 'Address already in use' ||
    fail "second relay (--workers $2) on the port of one with --workers $1: rc=$rc $out"
  out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --timeout 10) ||
    fail "the first relay (--workers $1) after the second one's attempt: $out"
  stop_relay
done
pass "a second relay on the same port exits 1: address already in use (workers 1, 2, 4 against 1, 2, 3)"
# ... but the claim is the address's, as a bind is: relays on two addresses
# of one host share a port number (as they do with one worker each), while
# an overlapping address (the wildcard against a specific one, in either
# order) is still refused
for w in 2 1; do
  start_relay --workers 2
  "$RELAY" --bind 127.0.0.2 --port "$PORT" --http-listen "" --workers "$w" \
    >"$TMP/second.out" 2>"$TMP/second.err" &
  second=$!
  PIDS+=("$second")
  for _ in $(seq 1 50); do
    grep -q '^Listening on' "$TMP/second.out" 2>/dev/null && break
    kill -0 "$second" 2>/dev/null || break
    sleep 0.1
  done
  grep -q '^Listening on' "$TMP/second.out" ||
    fail "a relay (--workers $w) on 127.0.0.2:$PORT beside one (--workers 2) on 127.0.0.1: $(tail -2 "$TMP/second.err")"
  hash2=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/second.out")
  out=$("$CLIENT" --url "https://127.0.0.2:$PORT/" --cert-hash "$hash2" --timeout 10) ||
    fail "the relay on 127.0.0.2: $out"
  out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --timeout 10) || fail "the relay on 127.0.0.1: $out"
  kill -TERM "$second"
  wait "$second" || fail "the relay on 127.0.0.2: SIGTERM exit status"
  set +e
  out=$(timeout 5 "$RELAY" --bind 0.0.0.0 --port "$PORT" --http-listen "" --workers "$w" 2>&1)
  rc=$?
  set -e
  [ "$rc" = 1 ] && echo "$out" | grep -q 'Address already in use' ||
    fail "a wildcard relay (--workers $w) over one on 127.0.0.1:$PORT: rc=$rc $out"
  stop_relay
done
start_relay --bind 0.0.0.0 --workers 2
set +e
out=$(timeout 5 "$RELAY" --bind 127.0.0.2 --port "$PORT" --http-listen "" --workers 2 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] && echo "$out" | grep -q 'Address already in use' ||
  fail "a relay on 127.0.0.2 over a wildcard one on port $PORT: rc=$rc $out"
out=$("$CLIENT" --url "$URL/" --cert-hash "$HASH" --timeout 10) || fail "the wildcard relay: $out"
stop_relay
pass "relays on 127.0.0.1 and 127.0.0.2 share a port number (workers 2 beside 2 and 1); the wildcard against a specific address is refused both ways"
