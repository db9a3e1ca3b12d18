#!/usr/bin/env bash
# A flood of forged QUIC Initials (2 500/s from random addresses of
# 10.82.0.0/16, tests/netns/qflood.c on client host 1: real client Initials) must not lock a
# real client out (client host 2), and the relay's memory must come back
# after it. Address validation: with --retry auto the relay answers
# Initials with a stateless Retry once --retry-threshold handshakes are in
# progress, so forged sources never get a connection slot; the client that
# comes back with the token is validated. Also: --retry always works for
# the native client, and bytes sent to unvalidated addresses stay within
# 3x of what they sent (anti-amplification).
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
HERE="$(cd "$(dirname "$0")" && pwd)"
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$RELAY_PID/status"; }

source "$HERE/topo.sh"
topo_init wf
topo_relay_host
topo_client_host 1 1500
topo_client_host 2 1500
# answers to the forged sources go back toward client host 1 (where they die)
ip -n "$NS_R" route add 10.82.0.0/16 via 10.81.1.2
ip netns exec "$NS_R" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
ip netns exec "$NS_R" sysctl -qw "net.ipv4.conf.${TOPO_P}r1.rp_filter=0"

client() { # label, extra wtclient args: 10 sessions from client host 2
  local label=$1
  shift
  ip netns exec "$NS_C2" "$BUILD_DIR/wtclient" --url "https://$RELAY_ADDR_2:4433/flood" \
    --cert-hash "$HASH" --sessions 10 --heartbeats 1 --timeout 15 "$@" >"$TMP/client-$label.out" 2>&1 ||
    fail "$label: the real client did not get its 10 sessions: $(tail -2 "$TMP/client-$label.out")"
  sed -n 's/.*"open_ms":\([0-9.]*\).*/\1/p' "$TMP/client-$label.out"
}

# --retry always: every client proves its address first
topo_start_relay --retry always --log-level debug # the counters at exit
ms=$(client always)
kill -TERM "$RELAY_PID"; wait "$RELAY_PID" || fail "relay exit status"
[ "$(exit_counter quic_retries)" -gt 0 ] || fail "--retry always sent no Retry"
[ "$(exit_counter quic_tokens_retry_ok)" -gt 0 ] || fail "no Retry token came back"
pass "--retry always: 10 native sessions through Retry in $ms ms"
mv "$TMP/relay.err" "$TMP/relay-always.log"

# --retry auto under a flood
topo_start_relay --log-level debug
ms0=$(client before)
sleep 1
rss0=$(rss_kb)
topo_bg "$NS_C1" "$BUILD_DIR/qflood" "$RELAY_ADDR_1" 4433 2500 10 10.82.0.0/16 >"$TMP/flood.log" 2>&1
FLOOD=$!
sleep 3
ms1=$(client during)
rss1=$(rss_kb)
wait "$FLOOD" || fail "the flood tool failed: $(cat "$TMP/flood.log")"
sent=$(tail -1 "$TMP/flood.log")
[ "$sent" -gt 20000 ] || fail "the flood sent only $sent packets"
# unvalidated handshakes time out after 3 s; memory is trimmed after that
sleep 6
ms2=$(client after)
sleep 1
rss2=$(rss_kb)
kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status"
# the counters at exit: summed over the workers
retries=$(exit_counter quic_retries)
[ "$retries" -gt 1000 ] || fail "the relay sent $retries Retry packets during the flood"
in=$(exit_counter quic_bytes_in_unvalidated)
out=$(exit_counter quic_bytes_out_unvalidated)
ratio=$(awk -v i="$in" -v o="$out" 'BEGIN { printf "%.3f", o / i }')
awk -v r="$ratio" 'BEGIN { exit !(r <= 3.0) }' || fail "sent $out bytes to unvalidated addresses for $in received ($ratio x)"
pass "flood of $sent forged Initials at 2 500/s: a real client's 10 sessions opened in $ms1 ms during it ($ms0 ms before, $ms2 ms after); $retries Retry packets; $ratio bytes out per byte in to unvalidated addresses"
# RSS: back near where it was (allow 32 MiB of slack for allocator state)
[ "$rss2" -le $((rss0 + 32768)) ] || fail "RSS $rss0 kB before, $rss1 kB during, $rss2 kB after the flood"
pass "relay RSS $((rss0 / 1024)) MiB before, $((rss1 / 1024)) MiB during, $((rss2 / 1024)) MiB after the flood"
