#!/usr/bin/env bash
# Real kernels on the virtual LAN, across real links (tests/netns/topo.sh):
# the relay in its own namespace bound to [::]; two client hosts on veth
# links to it (MTU 1500 and 1280), each running a wtrelay-tap whose TAP
# device lives in a "VM" namespace, configured from Assigned. Checks ARP +
# ping between the VM kernels, a TCP transfer with exact bytes, and that the
# taps reconnect and ping works again after the relay restarts. Namespaces
# are created with a per-run prefix and deleted by the trap.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
SOURCE_DIR=${SOURCE_DIR:-.}

source "$(dirname "$0")/topo.sh"
topo_need_tap
topo_need ping
topo_init wt
# relay host; client host 1 on an MTU 1500 link, client host 2 on MTU 1280;
# each client host runs a wtrelay-tap whose TAP sits in a VM namespace.
topo_relay_host
topo_vm_pair 1500 1280
NS_A=$NS_VMA NS_B=$NS_VMB
topo_cert
start_relay() { topo_start_relay; }
start_tap() { # client-host name netns mac [extra args]
  topo_start_tap "$@" --configure --heartbeat 2
}
ip_of() { topo_ip_of "$@"; }
wait_ip() { topo_wait_ip "$@"; }
ping_ok() { # from-netns to-ip tries
  for _ in $(seq "$3"); do ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0; done
  return 1
}

start_relay
grep -q "^Listening on https://\[::\]:4433$" "$TMP/relay.out" || fail "relay not on the wildcard address: $(cat "$TMP/relay.out")"
# Both VM namespaces have another default route (a veth pair) and lo
# down: A's tap may replace the route, B's must leave it and warn.
for ns in "$NS_A" "$NS_B"; do
  ip -n "$ns" link add other0 type veth peer name other1
  ip -n "$ns" link set other1 up
  ip -n "$ns" addr add 192.0.2.2/24 dev other0
  ip -n "$ns" link set other0 up
  ip -n "$ns" route add default via 192.0.2.1
  ip -n "$ns" link set lo down
done
start_tap 1 vma "$NS_A" 52:54:00:aa:00:01 --replace-default-route
IP_A=$(wait_ip "$NS_A" vma)
start_tap 2 vmb "$NS_B" 52:54:00:bb:00:02
IP_B=$(wait_ip "$NS_B" vmb)
[ "$IP_A" != "$IP_B" ] || fail "both VMs got $IP_A"
pass "two taps on client hosts across veth links (MTU 1500 and 1280) to a relay bound to [::]: $NS_A/vma=$IP_A, $NS_B/vmb=$IP_B"
[ "$(ip -n "$NS_A" link show vma | grep -o 'link/ether [0-9a-f:]*')" = "link/ether 52:54:00:aa:00:01" ] ||
  fail "vma does not carry the registered MAC"
ip -n "$NS_A" route show default | grep -q 'via 10.0.2.2 dev vma' || fail "no default route via 10.0.2.2"
[ "$(ip -n "$NS_A" route show default | wc -l)" = 1 ] || fail "$NS_A: the old default route is left"
pass "TAP carries the registered MAC; default route via 10.0.2.2 (--replace-default-route)"
for _ in $(seq 50); do grep -q 'default route exists' "$TMP/tap-vmb.err" && break; sleep 0.1; done
grep -q 'default route exists and was left in place.*route="dev other0 via 192.0.2.1"' \
  "$TMP/tap-vmb.err" || fail "no warning about the kept default route: $(cat "$TMP/tap-vmb.err")"
[ "$(ip -n "$NS_B" route show default)" = "default via 192.0.2.1 dev other0 " ] ||
  [ "$(ip -n "$NS_B" route show default)" = "default via 192.0.2.1 dev other0" ] ||
  fail "$NS_B: default route changed: $(ip -n "$NS_B" route show default)"
pass "without --replace-default-route another default route is left, with a warning"
for ns in "$NS_A" "$NS_B"; do
  ip -n "$ns" link show lo | grep -q '<LOOPBACK,UP' || fail "lo is not up in $ns"
  want="nameserver 10.0.2.3"
  got=$(grep -v '^#' "/etc/netns/$ns/resolv.conf" 2>/dev/null) || fail "no /etc/netns/$ns/resolv.conf"
  [ "$got" = "$want" ] || fail "/etc/netns/$ns/resolv.conf: '$got', want '$want'"
  [ "$(ip netns exec "$ns" cat /etc/resolv.conf | grep -v '^#')" = "$want" ] ||
    fail "ip netns exec $ns does not see the resolv.conf"
done
pass "--configure --netns: lo up, /etc/netns/NAME/resolv.conf names the relay's DNS (10.0.2.3)"

ping_ok "$NS_A" "$IP_B" 10 || fail "ping $NS_A -> $IP_B"
out=$(ip netns exec "$NS_B" ping -c 5 -i 0.2 -W 2 "$IP_A") || fail "ping $NS_B -> $IP_A: $out"
pass "the VM kernels ARP and ping each other: $(echo "$out" | grep -o 'rtt.*')"
ip -n "$NS_A" neigh show "$IP_B" | grep -q 52:54:00:bb:00:02 || fail "ARP entry for $IP_B is not vmb's MAC"

# TCP: 8 MiB from A to B through the relay, sha256 compared.
topo_tcp_put "$NS_A" "$NS_B" "$IP_B" 5001 8388608
pass "8 MiB over TCP between the VMs, exact bytes, in $TOPO_XFER_S s"

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
out=$(ip netns exec "$NS_C1" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
  --bounding-set=-all "$BUILD_DIR/wtrelay-tap" --url "https://$RELAY_ADDR_1:4433/lan" --cert-hash "$HASH" 2>&1)
rc=$?
set -e
[ $rc = 1 ] && echo "$out" | grep -q CAP_NET_ADMIN || fail "without CAP_NET_ADMIN: rc=$rc $out"
pass "without CAP_NET_ADMIN: exit 1, \"$(echo "$out" | head -1)\""
bad=$(echo "$HASH" | tr '0-9a-f' '1-9a-f0')
set +e
out=$(ip netns exec "$NS_C1" timeout 20 "$BUILD_DIR/wtrelay-tap" --url "https://$RELAY_ADDR_1:4433/lan" \
  --cert-hash "$bad" --tap badhash 2>&1)
rc=$?
set -e
[ $rc = 1 ] && echo "$out" | grep -q 'does not match --cert-hash' || fail "wrong hash: rc=$rc $out"
pass "a wrong --cert-hash: exit 1, \"$(echo "$out" | grep 'does not match')\""

for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
pass "cleanup by trap"
