#!/usr/bin/env bash
# Inbound port forwarding (--forward): the test internet host reaches
# servers in a VM through the relay host's ports.
# Topology (tests/netns/topo.sh): the relay (198.18.0.1 toward the test
# internet), client host 1 running wtrelay-tap with its TAP in VM A
# (room /lan, MAC 52:54:00:aa:00:07), the test internet host 198.18.0.2.
# Forwards name the VM by its MAC, so they follow it to a new session.
#  - VM absent: a connection to a forwarded port is reset, and counted;
#  - 10 MiB up and 10 MiB down byte-exact through TCP forwards, then 50
#    downloads at once;
#  - UDP echo through a UDP forward;
#  - both from the relay host's loopback too (the guest sees the gateway);
#  - the tap is killed and started again (a new session, same MAC): the
#    forward reaches the VM again;
#  - the ops API (--ops-api, token) lists, adds (by address) and removes a
#    forward, and refuses requests without the token.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
HERE="$(cd "$(dirname "$0")" && pwd)"

source "$HERE/topo.sh"
topo_init wf
topo_relay_host
topo_inet_host
topo_client_host 1 1280
topo_vm a
MAC=52:54:00:aa:00:07
TOKEN=fwd-test-token-$$
RELAY_OPS_TOKEN=$TOKEN topo_start_relay --http-listen 127.0.0.1:8433 --log-level debug \
  --workers "${RELAY_WORKERS:-2}" \
  --heartbeat-interval 1 --peer-timeout 3 --ops-api \
  --forward "tcp:8080=[$MAC]:5001@/lan" --forward "tcp:8081=[$MAC]:5002@/lan" \
  --forward "tcp:198.18.0.1:8083=[$MAC]:5003@/lan" --forward "udp:7007=[$MAC]:7@/lan"
RELAY=198.18.0.1

# A connection to addr:port from namespace ns: prints reset, eof or data.
probe() { # ns addr port
  ip netns exec "$1" timeout 20 python3 -c '
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)
    s.settimeout(15)
    print("data" if s.recv(1) else "eof")
except ConnectionResetError:
    print("reset")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print("error", e)' "$2" "$3"
}

# --- the VM is not connected: reset, counted
got=$(probe "$NS_I" $RELAY 8080)
[ "$got" = reset ] || fail "a forward to an absent VM answered '$got', want a reset"
n=$(topo_metric 'wtrelay_forward_refused_total{protocol="tcp",reason="no_vm"}')
[ "$n" = 1 ] || fail "no_vm refusals: $n"
pass "forward to an absent VM: the connection is reset, wtrelay_forward_refused_total{reason=no_vm} = 1"

# --- the VM and its servers
topo_start_tap 1 vma "$NS_VMA" $MAC --configure --heartbeat 1
TAP_PID=${PIDS[-1]}
IP_A=$(topo_wait_ip "$NS_VMA" vma)
topo_bg "$NS_VMA" python3 "$HERE/tcpxfer.py" sink 0.0.0.0 5001 >>"$TMP/sink.log" 2>&1
topo_wait_listen "$NS_VMA" 5001
topo_tcp_serve "$NS_VMA" 0.0.0.0 5002 10485760
topo_servers "$NS_VMA" --echo 0.0.0.0:7

# --- TCP, 10 MiB each way
head -c 10485760 /dev/urandom >"$TMP/up.bin"
want=$(sha256sum "$TMP/up.bin" | cut -d' ' -f1)
topo_loss 1 2 # 2 % random loss each way on the tap's MTU 1280 link (testing.md, real links)
topo_tcp_run "$NS_I" 120 10485760 "$want" "upload through tcp:8080" put $RELAY 8080 "$TMP/up.bin"
pass "10 MiB from the test internet to the VM ($IP_A) through tcp:8080, byte-exact in $TOPO_XFER_S s"
topo_tcp_get "$NS_I" $RELAY 8081 120
lost=$(topo_loss_drops 1)
topo_loss 1 0
pass "10 MiB from the VM to the test internet through tcp:8081, byte-exact in $TOPO_XFER_S s (both ways across an MTU 1280 link with 2 % loss: $lost packets dropped)"

# --- 50 connections at once (the forward bound to 198.18.0.1)
head -c 262144 /dev/urandom >"$TMP/small.bin"
small=$(sha256sum "$TMP/small.bin" | cut -d' ' -f1)
topo_bg "$NS_VMA" python3 "$HERE/tcpxfer.py" serve 0.0.0.0 5003 "$TMP/small.bin" >>"$TMP/small.log" 2>&1
topo_wait_listen "$NS_VMA" 5003
getters=()
for i in $(seq 50); do
  ip netns exec "$NS_I" timeout 120 python3 "$HERE/tcpxfer.py" get $RELAY 8083 "$TMP/p$i.bin" >"$TMP/p$i.out" 2>&1 &
  getters+=("$!")
done
for p in "${getters[@]}"; do wait "$p" || true; done
okn=0
for i in $(seq 50); do
  read -r b s _ <"$TMP/p$i.out" || true
  [ "$b $s" = "262144 $small" ] && okn=$((okn + 1))
done
[ "$okn" = 50 ] || fail "parallel downloads: $okn of 50 byte-exact ($(head -c 300 "$TMP/p1.out"))"
pass "50 connections at once through tcp:198.18.0.1:8083, each 256 KiB byte-exact"

# --- UDP echo
n=$(topo_udp_echoes "$NS_I" $RELAY 7007 20 2 hello-fwd)
[ "$n" -ge 19 ] || fail "UDP echoes through udp:7007: $n of 20"
pass "UDP echo through udp:7007: $n of 20 answered (a mapping per remote port)"

# --- a client on the relay host itself (loopback): shown to the guest as
# the gateway (a guest drops 127/8 from its wire as martian)
topo_tcp_get "$NS_R" 127.0.0.1 8081 120
n=$(topo_udp_echoes "$NS_R" 127.0.0.1 7007 5 2 hello-lo)
[ "$n" -ge 4 ] || fail "UDP echoes from the relay host's loopback: $n of 5"
pass "from the relay host's loopback: 10 MiB byte-exact through tcp:8081 in $TOPO_XFER_S s, UDP echo $n of 5"

# --- the VM reconnects: a new session with the same MAC
kill "$TAP_PID"
wait "$TAP_PID" 2>/dev/null || true
sleep 4 # the relay's --peer-timeout drops the old session
got=$(probe "$NS_I" $RELAY 8081)
[ "$got" = reset ] || fail "a forward to a VM gone answered '$got', want a reset"
topo_start_tap 1 vma "$NS_VMA" $MAC --configure --heartbeat 1
IP_A2=$(topo_wait_ip "$NS_VMA" vma)
topo_tcp_get "$NS_I" $RELAY 8081 120
regs=$(grep -c 'msg="registered"' "$TMP/tap-vma.err")
pass "after the VM's reconnect (session $regs, address $IP_A -> $IP_A2) the forward by MAC reaches it again: 10 MiB byte-exact"

# --- the ops API
api() { # method path [body] [token]
  local auth=()
  [ -n "${4-}" ] && auth=(-H "Authorization: Bearer $4")
  ip netns exec "$NS_R" curl -s --max-time 5 -o "$TMP/api.out" -w '%{http_code}' -X "$1" \
    "${auth[@]}" ${3:+--data "$3"} "http://127.0.0.1:8433$2"
}
code=$(api GET /forwards "" "")
[ "$code" = 401 ] || fail "GET /forwards without the token: $code"
code=$(api POST /forwards "{\"forward\":\"tcp:8090=$IP_A2:5002@/lan\"}" wrong-token)
[ "$code" = 401 ] || fail "POST /forwards with a wrong token: $code"
code=$(api GET /forwards "" "$TOKEN")
[ "$code" = 200 ] || fail "GET /forwards: $code"
grep -F "\"tcp:8080=[$MAC]:5001@/lan\"" "$TMP/api.out" >/dev/null || fail "GET /forwards: $(cat "$TMP/api.out")"
code=$(api POST /forwards "{\"forward\":\"tcp:8090=$IP_A2:5002@/lan\"}" "$TOKEN")
[ "$code" = 201 ] || fail "POST /forwards: $code $(cat "$TMP/api.out")"
id=$(grep -o '"id":[0-9]*' "$TMP/api.out" | cut -d: -f2)
code=$(api POST /forwards '{"forward":"tcp:8090=10.0.2.99:1"}' "$TOKEN")
[ "$code" = 409 ] || fail "a second forward of port 8090: $code"
code=$(api POST /forwards '{"forward":"tcp:8091=nowhere:1"}' "$TOKEN")
[ "$code" = 400 ] || fail "a bad spec: $code"
topo_tcp_get "$NS_I" $RELAY 8090 120
code=$(api DELETE "/forwards/$id" "" "$TOKEN")
[ "$code" = 200 ] || fail "DELETE /forwards/$id: $code"
got=$(probe "$NS_I" $RELAY 8090)
[ "$got" = refused ] || fail "port 8090 after DELETE: $got"
code=$(api DELETE "/forwards/$id" "" "$TOKEN")
[ "$code" = 404 ] || fail "DELETE of a forward gone: $code"
pass "ops API: 401 without the token; a forward by address added (201, 10 MiB byte-exact through it), refused twice (409) and malformed (400), removed (200, then refused by the kernel, then 404)"

kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status on SIGTERM"
est=$(exit_counter fwd_tcp_established)
[ "$est" -ge 55 ] || fail "established forwarded connections: $est"
pass "relay exits 0 (workers=$(exit_counter workers)); $est forwarded connections established, $(exit_counter fwd_tcp_no_vm) refused for an absent VM, $(exit_counter fwd_passed) handed to another worker"
