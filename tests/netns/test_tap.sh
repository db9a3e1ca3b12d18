#!/usr/bin/env bash
# Real kernels on the virtual LAN: the relay and two wtrelay-tap run in one
# namespace and talk over its loopback; each tap's TAP device lives in its
# own "VM" namespace, configured from Assigned. Checks ARP + ping between
# the VM kernels, a TCP transfer with exact bytes, and that the taps
# reconnect and ping works again after the relay restarts. Namespaces are
# created here with a per-run prefix and deleted by the trap.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
SOURCE_DIR=${SOURCE_DIR:-.}
fail() {
  echo "FAIL: $*" >&2
  for f in "$TMP"/*.err "$TMP"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }; done
  exit 1
}
pass() { echo "ok - $*"; }

[ "$(id -u)" = 0 ] || { echo "FAIL: the netns tier needs root (network namespaces, TAP devices)" >&2; exit 1; }
[ -c /dev/net/tun ] || { echo "FAIL: /dev/net/tun is missing" >&2; exit 1; }
command -v ping >/dev/null || { echo "FAIL: ping missing (scripts/install-deps.sh installs iputils-ping)" >&2; exit 1; }

TMP=$(mktemp -d)
P="wt$$"
NS_R="${P}relay" NS_A="${P}vma" NS_B="${P}vmb"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "$NS_R" "$NS_A" "$NS_B"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

for ns in "$NS_R" "$NS_A" "$NS_B"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done

# A fixed certificate, so the hash the taps pin survives a relay restart.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 10 \
  -subj /CN=localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
PORT=4433
start_relay() {
  ip netns exec "$NS_R" "$BUILD_DIR/wtrelay" --bind 127.0.0.1 --port $PORT \
    --cert-pem "$TMP/cert.pem" --key-pem "$TMP/key.pem" >"$TMP/relay.out" 2>>"$TMP/relay.err" &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
  for _ in $(seq 50); do grep -q '^Listening' "$TMP/relay.out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^Listening' "$TMP/relay.out" || fail "relay did not start"
  HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/relay.out")
}
start_tap() { # name netns mac
  ip netns exec "$NS_R" "$BUILD_DIR/wtrelay-tap" --url "https://127.0.0.1:$PORT/lan" \
    --cert-hash "$HASH" --tap "$1" --netns "$2" --mac "$3" --configure --heartbeat 2 \
    2>"$TMP/tap-$1.err" &
  PIDS+=("$!")
}
ip_of() { # netns dev
  ip -n "$1" -4 -o addr show dev "$2" 2>/dev/null | awk '{print $4}' | cut -d/ -f1
}
wait_ip() { # netns dev -> prints the address
  local a=""
  for _ in $(seq 100); do a=$(ip_of "$1" "$2"); [ -n "$a" ] && break; sleep 0.1; done
  [ -n "$a" ] || fail "$2 in $1 got no address"
  echo "$a"
}
ping_ok() { # from-netns to-ip tries
  for _ in $(seq "$3"); do ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0; done
  return 1
}

start_relay
start_tap vma "$NS_A" 52:54:00:aa:00:01
IP_A=$(wait_ip "$NS_A" vma)
start_tap vmb "$NS_B" 52:54:00:bb:00:02
IP_B=$(wait_ip "$NS_B" vmb)
[ "$IP_A" != "$IP_B" ] || fail "both VMs got $IP_A"
pass "two TAP devices configured from Assigned: $NS_A/vma=$IP_A, $NS_B/vmb=$IP_B"
[ "$(ip -n "$NS_A" link show vma | grep -o 'link/ether [0-9a-f:]*')" = "link/ether 52:54:00:aa:00:01" ] ||
  fail "vma does not carry the registered MAC"
ip -n "$NS_A" route show default | grep -q 'via 10.0.2.2 dev vma' || fail "no default route via 10.0.2.2"
pass "TAP carries the registered MAC; default route via 10.0.2.2"

ping_ok "$NS_A" "$IP_B" 10 || fail "ping $NS_A -> $IP_B"
out=$(ip netns exec "$NS_B" ping -c 5 -i 0.2 -W 2 "$IP_A") || fail "ping $NS_B -> $IP_A: $out"
pass "the VM kernels ARP and ping each other: $(echo "$out" | grep -o 'rtt.*')"
ip -n "$NS_A" neigh show "$IP_B" | grep -q 52:54:00:bb:00:02 || fail "ARP entry for $IP_B is not vmb's MAC"

# TCP: 8 MiB from A to B through the relay, sha256 compared.
head -c 8388608 /dev/urandom >"$TMP/blob"
want=$(sha256sum "$TMP/blob" | cut -d' ' -f1)
ip netns exec "$NS_B" python3 - "$IP_B" "$TMP/recv" >"$TMP/server.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001)); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(30)
with open(sys.argv[2], "wb") as f:
    while True:
        b = c.recv(65536)
        if not b: break
        f.write(b)
PY
SERVER=$!
PIDS+=("$SERVER")
sleep 0.5
t0=$(date +%s%N)
ip netns exec "$NS_A" timeout 60 python3 - "$IP_B" "$TMP/blob" >"$TMP/client.log" 2>&1 <<'PY' || fail "TCP sender failed: $(cat "$TMP/client.log")"
import socket, sys
c = socket.create_connection((sys.argv[1], 5001), timeout=30)
c.sendall(open(sys.argv[2], "rb").read()); c.shutdown(socket.SHUT_WR)
c.recv(1)
PY
wait "$SERVER" || fail "TCP receiver failed: $(cat "$TMP/server.log")"
t1=$(date +%s%N)
got=$(sha256sum "$TMP/recv" | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "TCP transfer corrupted or incomplete ($(stat -c %s "$TMP/recv") bytes)"
ms=$(( (t1 - t0) / 1000000 ))
pass "8 MiB over TCP between the VMs, exact bytes, in ${ms} ms ($(( 8 * 8 * 1000 / (ms + 1) )) Mbit/s)"

# Relay restart under running taps: they reconnect, ping works again.
kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status $? on SIGTERM"
sleep 0.5
start_relay
for _ in $(seq 100); do
  [ "$(grep -c 'msg="registered"' "$TMP/tap-vma.err")" -ge 2 ] &&
    [ "$(grep -c 'msg="registered"' "$TMP/tap-vmb.err")" -ge 2 ] && break
  sleep 0.1
done
[ "$(grep -c 'msg="registered"' "$TMP/tap-vma.err")" -ge 2 ] || fail "vma did not register again"
[ "$(grep -c 'msg="registered"' "$TMP/tap-vmb.err")" -ge 2 ] || fail "vmb did not register again"
IP_A=$(wait_ip "$NS_A" vma)
IP_B=$(wait_ip "$NS_B" vmb)
ping_ok "$NS_A" "$IP_B" 15 || fail "ping after the relay restart: A=$IP_A B=$IP_B
$(ip -n "$NS_A" addr show vma; ip -n "$NS_A" route; ip -n "$NS_A" neigh; ip -n "$NS_B" addr show vmb; ip -n "$NS_B" neigh)"
pass "relay restarted: both taps reconnected and registered again; ping $IP_A -> $IP_B works"

# Clear errors: no CAP_NET_ADMIN, a wrong hash.
set +e
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
  "$BUILD_DIR/wtrelay-tap" --url "https://127.0.0.1:$PORT/lan" --cert-hash "$HASH" 2>&1)
rc=$?
set -e
[ $rc = 1 ] && echo "$out" | grep -q CAP_NET_ADMIN || fail "without CAP_NET_ADMIN: rc=$rc $out"
pass "without CAP_NET_ADMIN: exit 1, \"$(echo "$out" | head -1)\""
bad=$(echo "$HASH" | tr '0-9a-f' '1-9a-f0')
set +e
out=$(ip netns exec "$NS_R" timeout 20 "$BUILD_DIR/wtrelay-tap" --url "https://127.0.0.1:$PORT/lan" \
  --cert-hash "$bad" --tap badhash 2>&1)
rc=$?
set -e
[ $rc = 1 ] && echo "$out" | grep -q 'does not match --cert-hash' || fail "wrong hash: rc=$rc $out"
pass "a wrong --cert-hash: exit 1, \"$(echo "$out" | grep 'does not match')\""

for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
pass "cleanup by trap"
