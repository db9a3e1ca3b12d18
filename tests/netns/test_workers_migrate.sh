#!/usr/bin/env bash
# Connection migration on either steering path. STEER=hash (the default):
# the fallback path (WTRELAY_NO_BPF=1, as without CAP_BPF). STEER=bpf
# (test_workers_steer.sh): the SK_REUSEPORT program steers by the DCID, so
# a migrated client's packets reach their owner with no hand-off at all.
# The fallback: a relay
# with --workers 4, whose sockets share the port through SO_REUSEPORT, and
# a client whose source port changes mid-session (nftables rewrites it on
# the client host, as a NAT rebinding would). The kernel's 4-tuple hash
# sends the new port's packets to some worker; when that is not the
# connection's owner (the first byte of the DCID names it), the packet is
# handed to the owner through the worker-pair ring and never answered by
# the wrong worker (no stateless reset). The port is changed until a
# hand-off happened (each new port has a 3 in 4 chance of another worker);
# the session must keep answering heartbeats, the hand-off counters must
# show the fallback path in use, and SIGTERM must exit 0.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
HERE="$(cd "$(dirname "$0")" && pwd)"

source "$HERE/topo.sh"
topo_init wm
topo_relay_host
topo_client_host 1 1500
STEER=${STEER:-hash}
if [ "$STEER" = hash ]; then
  WTRELAY_NO_BPF=1 topo_start_relay --workers 4 --http-listen 127.0.0.1:8433 --log-level debug
  grep -q 'msg="steering" mode=reuseport_hash+handoff' "$TMP/relay.err" || fail "not on the fallback path"
else
  topo_start_relay --workers 4 --http-listen 127.0.0.1:8433 --log-level debug
  grep -q 'msg="steering" mode=bpf+handoff' "$TMP/relay.err" ||
    fail "the SK_REUSEPORT program was not attached: $(grep 'msg="steering"' "$TMP/relay.err")"
fi
pass "steering: $(grep -o 'mode=[^ ]*' "$TMP/relay.err" | head -1)"

metric() { # series -> value (0 when absent)
  ip netns exec "$NS_R" curl -s --max-time 3 http://127.0.0.1:8433/metrics |
    awk -v s="$1" 'index($0, s " ") == 1 {print $2; found=1} END {if (!found) print 0}'
}
handoffs() { # dir -> sum over workers
  local dir=$1 sum=0 w v
  for w in 0 1 2 3; do
    v=$(metric "wtrelay_worker_handoffs_total{worker=\"$w\",dir=\"$dir\"}")
    sum=$((sum + v))
  done
  echo "$sum"
}

ip netns exec "$NS_C1" "$BUILD_DIR/wtclient" --url "https://$RELAY_ADDR_1:4433/migrate" --cert-hash "$HASH" \
  --heartbeats 2 --hold 10 --tick 0.2 --late-heartbeats 3 >"$TMP/client.out" 2>"$TMP/client.log" &
CLIENT=$!
PIDS+=("$CLIENT")
port=""
for _ in $(seq 50); do
  port=$(ip netns exec "$NS_C1" ss -Huanp 2>/dev/null | awk '/wtclient/ {n = split($4, a, ":"); print a[n]; exit}')
  [ -n "$port" ] && grep -q 'msg="peer registered"' "$TMP/relay.err" && break
  sleep 0.1
done
[ -n "$port" ] || fail "the client's UDP port not found"
[ "$(handoffs out)" = 0 ] || fail "hand-offs before any migration: $(handoffs out)"
pass "session registered from port $port, no hand-off yet"

NEW=""
for cand in 40771 40772 40773 40774 40775 40776 40777 40778 40779 40780; do
  ip netns exec "$NS_C1" nft delete table ip rebind 2>/dev/null || true
  ip netns exec "$NS_C1" nft -f - <<NFT
table ip rebind {
  chain out { type filter hook output priority -300; udp sport $port notrack udp sport set $cand; }
  chain in { type filter hook prerouting priority -300; udp dport $cand notrack udp dport set $port; }
}
NFT
  NEW=$cand
  sleep 0.6
  # the fallback: until a new port hashed to another worker; BPF: 4 ports
  if [ "$STEER" = hash ]; then [ "$(handoffs in)" -gt 0 ] && break; else [ "$cand" = 40774 ] && break; fi
done
out=$(handoffs out)
in=$(handoffs in)
if [ "$STEER" = hash ]; then
  [ "$out" -gt 0 ] || fail "no packet was handed off after 10 port changes"
  [ "$in" -gt 0 ] || fail "handed off $out packets, none read by the owner"
  pass "client now appears from port $NEW; $out packets handed off, $in read by their owner"
else
  [ "$out" = 0 ] || fail "$out packets were handed off although the program steers by the DCID"
  pass "client moved through 4 ports to $NEW; every packet reached its owner directly (0 hand-offs)"
fi
wait "$CLIENT" || fail "the session did not survive the migration: $(tail -3 "$TMP/client.out")"
pass "the session kept working on the new path: 3 late heartbeats answered"
kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status"
[ "$(exit_counter workers)" = 4 ] || fail "expected the counters at exit summed over 4 workers"
resets=$(exit_counter quic_resets)
[ "$resets" = 0 ] || fail "the workers sent $resets stateless resets"
pass "no worker sent a stateless reset (none answered another worker's connection)"
grep -q "msg=\"session ended\".*remote=$RELAY_ADDR_1:$NEW\|msg=\"session ended\".*remote=10.81.1.2:$NEW" "$TMP/relay.err" ||
  fail "the relay's session did not follow the new port: $(grep 'session ended' "$TMP/relay.err")"
pass "the relay followed the validated path to port $NEW and exited 0"
