# shellcheck shell=bash
# Test topology for the netns tier: the relay, its clients, their VMs and a
# test internet host each in a network namespace of their own, joined by
# veth links, as users deploy it (the relay is never on a client's
# loopback). Sourced by tests/netns/test_*.sh and perf/ scripts.
#
#   client host cN (10.81.N.2/30) ==veth, MTU, loss== relay host (10.81.N.1/30)
#   relay host (198.18.0.1/24) ==veth== inet (198.18.0.2/24)
#   VM namespaces: empty; wtrelay-tap (running in a client host) moves its
#   TAP device into one (--netns).
#
# Every namespace and process is made here with a per-run prefix, recorded,
# and removed by the EXIT trap, also when the test fails. Traffic goes only
# to addresses of these namespaces (docs: testing.md). Loss is nftables
# `numgen random` on one link's interface in the client host, each way
# (this kernel has no netem).
#
# Use:
#   source tests/netns/topo.sh
#   topo_init wl                   # prefix, TMP, trap
#   topo_relay_host                # NS_R
#   topo_client_host 1 1500        # NS_C1, link 10.81.1.0/30, RELAY_ADDR_1=10.81.1.1
#   topo_client_host 2 1280        # a second client host with MTU 1280
#   topo_inet_host                 # NS_I 198.18.0.2
#   topo_vm a                      # NS_VMA (empty namespace for a TAP)
#   topo_loss 1 2                  # 2 % random loss each way on client 1's link
#   topo_bg NS cmd...              # background process in NS, PID recorded
#   topo_vm_pair 1500 1280         # client hosts 1, 2 (MTUs) and VMs a, b
#   topo_inet_servers --echo 198.18.0.2:7 ...  # inetsrv.py in NS_I
#   topo_tcp_put NS_A NS_B ADDR 5001 8388608   # upload to a sink, bytes checked
#   topo_tcp_serve NS_I ADDR 8080 4194304; topo_tcp_get NS_A ADDR 8080

# Fails early when a tool the script needs is missing.
topo_need() { # tool...
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "FAIL: $t missing (scripts/install-deps.sh)" >&2; exit 1; }
  done
}

# Fails early without root or without /dev/net/tun (TAP devices).
topo_need_tap() {
  [ "$(id -u)" = 0 ] || { echo "FAIL: the netns tier needs root (network namespaces, TAP devices)" >&2; exit 1; }
  [ -c /dev/net/tun ] || { echo "FAIL: /dev/net/tun is missing" >&2; exit 1; }
}

topo_fail() {
  echo "FAIL: $*" >&2
  for f in "$TMP"/*.err "$TMP"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}
# The tests' own names for them.
fail() { topo_fail "$@"; }
pass() { echo "ok - $*"; }
source "$(dirname "${BASH_SOURCE[0]}")/../common/exit_counters.sh"

topo_init() { # prefix
  [ "$(id -u)" = 0 ] || { echo "FAIL: the netns tier needs root (network namespaces, veth, TAP)" >&2; exit 1; }
  command -v nft >/dev/null || { echo "FAIL: nft missing (Debian package nftables; scripts/install-deps.sh)" >&2; exit 1; }
  TOPO_P="${1}$$"
  TMP=$(mktemp -d)
  TOPO_NS=()
  PIDS=()
  trap topo_cleanup EXIT
}

TOPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

topo_cleanup() {
  exec 2>/dev/null # no job-control noise about the processes killed below
  local p ns
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "${TOPO_NS[@]:-}"; do [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true; done
  # resolv.conf files of wtrelay-tap --configure --netns
  for ns in "${TOPO_NS[@]:-}"; do [ -n "$ns" ] && rm -rf "/etc/netns/$ns"; done
  rm -rf "$TMP"
}

topo_ns() { # name -> creates ${TOPO_P}name
  local ns="${TOPO_P}$1"
  ip netns add "$ns"
  TOPO_NS+=("$ns")
  ip -n "$ns" link set lo up
}

topo_relay_host() {
  topo_ns relay
  NS_R="${TOPO_P}relay"
  # ICMP NAT through unprivileged ICMP sockets (per namespace).
  ip netns exec "$NS_R" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
}

topo_client_host() { # index mtu
  local n=$1 mtu=$2 ns="${TOPO_P}c$1"
  topo_ns "c$n"
  ip link add "${TOPO_P}r$n" netns "$NS_R" type veth peer name "${TOPO_P}c$n" netns "$ns"
  ip -n "$NS_R" link set "${TOPO_P}r$n" mtu "$mtu"
  ip -n "$ns" link set "${TOPO_P}c$n" mtu "$mtu"
  ip -n "$NS_R" addr add "10.81.$n.1/30" dev "${TOPO_P}r$n"
  ip -n "$ns" addr add "10.81.$n.2/30" dev "${TOPO_P}c$n"
  ip -n "$NS_R" link set "${TOPO_P}r$n" up
  ip -n "$ns" link set "${TOPO_P}c$n" up
  ip -n "$ns" route add default via "10.81.$n.1"
  printf -v "NS_C$n" '%s' "$ns"
  printf -v "RELAY_ADDR_$n" '%s' "10.81.$n.1"
}

topo_inet_host() {
  topo_ns inet
  NS_I="${TOPO_P}inet"
  ip link add "${TOPO_P}ri" netns "$NS_R" type veth peer name "${TOPO_P}i0" netns "$NS_I"
  ip -n "$NS_R" addr add 198.18.0.1/24 dev "${TOPO_P}ri"
  ip -n "$NS_I" addr add 198.18.0.2/24 dev "${TOPO_P}i0"
  ip -n "$NS_R" link set "${TOPO_P}ri" up
  ip -n "$NS_I" link set "${TOPO_P}i0" up
}

topo_vm() { # name -> NS_VM<NAME upper>
  topo_ns "vm$1"
  printf -v "NS_VM${1^^}" '%s' "${TOPO_P}vm$1"
}

# Client hosts 1 and 2 with the given link MTUs, and VM namespaces a and b.
topo_vm_pair() { # mtu1 mtu2
  topo_client_host 1 "$1"
  topo_client_host 2 "$2"
  topo_vm a
  topo_vm b
}

# The fake internet servers of tests/netns/inetsrv.py in namespace ns
# (default NS_I), output in $TMP/inet.log; PID recorded.
topo_servers() { # ns inetsrv-args...
  local ns=$1
  shift
  ip netns exec "$ns" python3 "$TOPO_DIR/inetsrv.py" "$@" >>"$TMP/${ns#"$TOPO_P"}.log" 2>&1 &
  PIDS+=("$!")
}
topo_inet_servers() { topo_servers "$NS_I" "$@"; }

# From namespace ns, `count` UDP sockets each send one datagram (`gap`
# seconds apart) to addr:port (a UDP mapping each); after `wait` seconds,
# prints how many got an answer, then holds the sockets `hold` seconds.
topo_udp_mappings() { # ns addr port count gap-s wait-s hold-s
  ip netns exec "$1" timeout 60 python3 -c '
import socket, sys, time
addr, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
gap, wait, hold = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
socks = []
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setblocking(False)
    s.sendto(b"x", (addr, port)); socks.append(s)
    time.sleep(gap)
time.sleep(wait)
n = 0
for s in socks:
    try:
        s.recv(100); n += 1
    except OSError:
        pass
print(n, flush=True)
time.sleep(hold)' "${@:2}"
}

# From namespace ns, `count` datagrams each on a new socket to a UDP echo
# server (inetsrv.py --echo); prints how many echoes came back.
topo_udp_echoes() { # ns addr port count timeout-s payload
  ip netns exec "$1" timeout 60 python3 -c '
import socket, sys
addr, port, count, wait, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5].encode()
ok = 0
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(wait)
    s.sendto(data, (addr, port))
    try:
        ok += s.recv(100) == b"echo:" + data
    except OSError:
        pass
print(ok)' "${@:2}"
}

# Random loss of pct % each way on client host n's link (0 removes it).
topo_loss() { # n pct
  local ns="${TOPO_P}c$1" dev="${TOPO_P}c$1"
  ip netns exec "$ns" nft delete table inet topoloss 2>/dev/null || true
  [ "$2" = 0 ] && return 0
  ip netns exec "$ns" nft -f - <<NFT
table inet topoloss {
  chain o { type filter hook output priority 0; oifname "$dev" numgen random mod 100 < $2 counter drop; }
  chain i { type filter hook input priority 0; iifname "$dev" numgen random mod 100 < $2 counter drop; }
}
NFT
}

# Packets the loss rules dropped on client host n's link (both ways).
topo_loss_drops() { # n
  ip netns exec "${TOPO_P}c$1" nft list table inet topoloss 2>/dev/null |
    grep -o 'packets [0-9]*' | awk '{s += $2} END {print s + 0}'
}

topo_bg() { # ns cmd... (stdout/stderr as redirected by the caller)
  local ns=$1
  shift
  ip netns exec "$ns" "$@" &
  PIDS+=("$!")
}

# A certificate that survives relay restarts (taps pin its hash).
topo_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 10 \
    -subj /CN=localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
}

# Starts wtrelay in the relay host bound to the wildcard address; sets
# RELAY_PID and HASH. Extra arguments go to the relay.
topo_start_relay() {
  [ -f "$TMP/cert.pem" ] || topo_cert
  # no stale "Listening" of an earlier relay: the shell truncates the file
  # only when the background job starts, maybe after the wait below looks
  rm -f "$TMP/relay.out"
  ip netns exec "$NS_R" "$BUILD_DIR/wtrelay" --port 4433 --http-listen '' \
    --cert-pem "$TMP/cert.pem" --key-pem "$TMP/key.pem" "$@" >"$TMP/relay.out" 2>>"$TMP/relay.err" &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
  local _
  for _ in $(seq 50); do grep -q '^Listening' "$TMP/relay.out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^Listening' "$TMP/relay.out" || topo_fail "relay did not start"
  HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/relay.out")
}

# wtrelay-tap in client host n, TAP `tap` moved into namespace vmns.
topo_start_tap() { # n tap vmns mac [extra args...]
  local n=$1 tap=$2 vmns=$3 mac=$4 addr
  shift 4
  addr="10.81.$n.1"
  # WebTransport unless the caller says otherwise (a later --transport
  # wins): a slow handshake must not move a test's tap to the WebSocket
  ip netns exec "${TOPO_P}c$n" "$BUILD_DIR/wtrelay-tap" --url "https://$addr:4433/lan" \
    --cert-hash "$HASH" --tap "$tap" --netns "$vmns" --mac "$mac" --transport wt "$@" \
    2>>"$TMP/tap-$tap.err" &
  PIDS+=("$!")
}

topo_ip_of() { # ns dev
  ip -n "$1" -4 -o addr show dev "$2" 2>/dev/null | awk '{print $4}' | cut -d/ -f1
}

topo_wait_ip() { # ns dev -> prints the address
  local a="" _
  for _ in $(seq 150); do a=$(topo_ip_of "$1" "$2"); [ -n "$a" ] && break; sleep 0.1; done
  [ -n "$a" ] || topo_fail "$2 in $1 got no address"
  echo "$a"
}

# Waits (at most 10 s) until a TCP listener on `port` exists in `ns`.
# TCP through whatever path joins two namespaces (tcpxfer.py): BYTES random
# bytes uploaded from namespace src to a sink on addr:port in namespace dst;
# fails unless the sink saw every byte, exact. TOPO_XFER_S = seconds taken.
topo_tcp_put() { # src_ns dst_ns addr port bytes [timeout_s]
  local src=$1 dst=$2 addr=$3 port=$4 bytes=$5 limit=${6:-60} blob want
  blob="$TMP/put-$port.bin"
  head -c "$bytes" /dev/urandom >"$blob"
  want=$(sha256sum "$blob" | cut -d' ' -f1)
  topo_bg "$dst" python3 "$TOPO_DIR/tcpxfer.py" sink "$addr" "$port" >>"$TMP/sink-$port.log" 2>&1
  topo_wait_listen "$dst" "$port"
  topo_tcp_run "$src" "$limit" "$bytes" "$want" "TCP upload to $addr:$port" put "$addr" "$port" "$blob"
}

# Runs tcpxfer.py MODE ARGS in namespace ns and checks its answer
# "<bytes> <sha256> <seconds>" against the bytes and sha256 wanted.
topo_tcp_run() { # ns timeout_s bytes sha256 what mode args...
  local ns=$1 limit=$2 bytes=$3 want=$4 what=$5 out
  shift 5
  out=$(ip netns exec "$ns" timeout "$limit" python3 "$TOPO_DIR/tcpxfer.py" "$@" 2>&1) ||
    topo_fail "$what: $out"
  read -r -a got <<<"$out"
  [ "${got[0]} ${got[1]}" = "$bytes $want" ] ||
    topo_fail "$what: ${got[0]} bytes (sha256 ${got[1]}), want $bytes"
  TOPO_XFER_S=${got[2]}
}

# A download server in namespace ns on addr:port serving BYTES random bytes
# to every connection; TOPO_SERVE_SHA = their sha256.
topo_tcp_serve() { # ns addr port bytes
  local blob="$TMP/serve-$3.bin"
  head -c "$4" /dev/urandom >"$blob"
  TOPO_SERVE_SHA=$(sha256sum "$blob" | cut -d' ' -f1)
  TOPO_SERVE_BYTES=$4
  topo_bg "$1" python3 "$TOPO_DIR/tcpxfer.py" serve "$2" "$3" "$blob" >>"$TMP/serve-$3.log" 2>&1
  topo_wait_listen "$1" "$3"
}

# Downloads from topo_tcp_serve's server in namespace ns; fails unless
# every byte arrived, exact. TOPO_XFER_S = seconds taken.
topo_tcp_get() { # ns addr port [timeout_s]
  topo_tcp_run "$1" "${4:-60}" "$TOPO_SERVE_BYTES" "$TOPO_SERVE_SHA" "TCP download from $2:$3 in $1" \
    get "$2" "$3" "$TMP/got-$3.bin"
}

# A series of the relay's /metrics (ops listener 127.0.0.1:port in NS_R,
# default 8433), 0 when absent; waits first for the workers' 100 ms
# counter snapshots.
topo_metric() { # 'name{labels}' [port]
  local v
  sleep 0.25
  v=$(ip netns exec "$NS_R" curl -s --max-time 5 "http://127.0.0.1:${2:-8433}/metrics" |
    awk -v k="$1" '$1 == k {print $2}')
  echo "${v:-0}"
}

topo_wait_listen() { # ns port
  local _
  for _ in $(seq 100); do
    ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  topo_fail "nothing listens on TCP port $2 in $1"
}

# DHCP in namespace ns on dev through busybox udhcpc: the lease applied
# (address, default route) and written to $TMP/dhcp.env as
# "ip=.. mask=.. router=.. dns=.. mtu=.. serverid=..".
topo_dhcp() { # ns dev
  cat >"$TMP/udhcpc.sh" <<EOF
#!/bin/sh
case "\$1" in
  bound|renew)
    ip addr flush dev "\$interface"
    ip addr add "\$ip/\$mask" dev "\$interface"
    ip route replace default via "\$router" dev "\$interface"
    echo "ip=\$ip mask=\$mask router=\$router dns=\$dns mtu=\$mtu serverid=\$serverid" >"$TMP/dhcp.env"
    ;;
esac
EOF
  chmod +x "$TMP/udhcpc.sh"
  ip netns exec "$1" busybox udhcpc -i "$2" -n -q -f -t 5 -T 1 -O mtu -s "$TMP/udhcpc.sh" \
    >"$TMP/udhcpc.log" 2>&1 || topo_fail "udhcpc: $(cat "$TMP/udhcpc.log")"
}
