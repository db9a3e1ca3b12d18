#!/usr/bin/env bash
# Relays federated over a NATS server that wants TLS and a user/password
# (nats-server --tls --user --pass, a private CA made here):
# - with the CA trusted (SSL_CERT_FILE) and the password in the tls:// URL,
#   two relays connect, make the lease bucket, and VMs registering on each
#   get distinct addresses through it; no log line holds the password;
# - without the CA (the server's certificate cannot be verified) and with a
#   wrong password, a relay refuses to start, saying why.
. "$(dirname "$0")/lib.sh"
[ -x /usr/sbin/nats-server ] || fail "nats-server missing (scripts/install-deps.sh)"

# a CA and the server's certificate for 127.0.0.1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=wtrelay test CA" -keyout "$TMP/ca.key" -out "$TMP/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout "$TMP/srv.key" -out "$TMP/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$TMP/ext"
openssl x509 -req -in "$TMP/srv.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial \
  -days 2 -extfile "$TMP/ext" -out "$TMP/srv.pem" 2>/dev/null

NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SECRET=s3cr3t-pw-$$
/usr/sbin/nats-server -js -sd "$TMP/js" -a 127.0.0.1 -p "$NPORT" --tls --tlscert "$TMP/srv.pem" \
  --tlskey "$TMP/srv.key" --user relay --pass "$SECRET" >"$TMP/nats.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$NPORT),0.2)" 2>/dev/null && break
  sleep 0.05
done
NATS="tls://relay:$SECRET@127.0.0.1:$NPORT"

refused() { # what env... -- flags: the relay must exit non-zero naming the cause
  local why=$1
  shift
  local rc=0
  env "$@" --bind 127.0.0.1 --port "$(free_udp_port)" --http-listen "" \
    >"$TMP/refused.out" 2>"$TMP/refused.err" || rc=$?
  [ "$rc" -ne 0 ] || fail "relay started: $why"
  grep -q 'cannot connect to NATS' "$TMP/refused.err" || fail "no reason given: $(cat "$TMP/refused.err")"
  ! grep -q "$SECRET" "$TMP/refused.err" || fail "the password is in the log"
  pass "refused: $why ($(grep -o 'err=[^ ]*.*' "$TMP/refused.err" | head -1))"
}
refused "server certificate not verified (CA not trusted)" SSL_CERT_FILE=/nonexistent "$RELAY" \
  --nats "$NATS" --relay-id x
refused "wrong password" SSL_CERT_FILE="$TMP/ca.pem" "$RELAY" --nats "tls://relay:wrong@127.0.0.1:$NPORT" \
  --relay-id x

start_fed() { # id -> PORT_<id>, HASH_<id>, OPS_<id>
  local port ops
  port=$(free_udp_port)
  ops=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  SSL_CERT_FILE="$TMP/ca.pem" "$RELAY" --bind 127.0.0.1 --port "$port" --http-listen "127.0.0.1:$ops" \
    --nats "$NATS" --relay-id "$1" >"$TMP/$1.out" 2>"$TMP/$1.err" &
  PIDS+=("$!")
  for _ in $(seq 50); do grep -q '^Listening' "$TMP/$1.out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^Listening' "$TMP/$1.out" || fail "relay $1 did not start: $(cat "$TMP/$1.err")"
  printf -v "PORT_$1" '%s' "$port"
  printf -v "OPS_$1" '%s' "$ops"
  printf -v "HASH_$1" '%s' "$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/$1.out")"
}
start_fed A
start_fed B
grep -q 'cluster leases in NATS key-value' "$TMP/A.err" || fail "relay A made no lease bucket"
pass "two relays connected over tls:// with a password"

register() { # relay mac -> the address Assigned
  local port hash
  port=PORT_$1 hash=HASH_$1
  "$CLIENT" --url "https://127.0.0.1:${!port}/tls-room" --cert-hash "${!hash}" --mac "$2" \
    --hold 3 --timeout 10 >"$TMP/c-$2.out" 2>&1 &
  PIDS+=("$!")
}
register A 02:00:00:00:0a:01
register B 02:00:00:00:0b:01
for _ in $(seq 50); do
  [ "$(grep -c 'state=registered' "$TMP"/c-*.out 2>/dev/null | awk -F: '{s+=$2} END {print s+0}')" = 2 ] && break
  sleep 0.1
done
IPA=$(grep -o 'ip=[0-9.]*' "$TMP/c-02:00:00:00:0a:01.out" | head -1)
IPB=$(grep -o 'ip=[0-9.]*' "$TMP/c-02:00:00:00:0b:01.out" | head -1)
[ -n "$IPA" ] && [ -n "$IPB" ] || fail "not registered: $(cat "$TMP"/c-*.out)"
[ "$IPA" != "$IPB" ] || fail "both VMs got $IPA"
pass "VMs on A ($IPA) and B ($IPB): distinct addresses through the TLS connection's lease bucket"
for f in "$TMP/A.err" "$TMP/B.err" "$TMP/A.out" "$TMP/B.out"; do
  ! grep -q "$SECRET" "$f" || fail "the password is in $f"
done
grep -q 'nats="tls://\*\*\*@127.0.0.1' "$TMP/A.err" || fail "the URL is not logged redacted: $(grep federated "$TMP/A.err")"
pass "no log line holds the password (the URL is logged as tls://***@...)"
