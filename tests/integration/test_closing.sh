#!/usr/bin/env bash
# Closing without a packet storm: when a client and the relay close a
# connection at about the same time, each one's CONNECTION_CLOSE reaches the
# other in its closing period. An endpoint that answered every packet with
# its close again ping-ponged at line rate for the whole closing period
# (70 000 packets for 10 sessions); the answers are now limited (1st, 2nd,
# 4th, ... packet). 10 sessions open, register, heartbeat and close; the
# relay must have seen a small number of packets.
source "$(dirname "$0")/lib.sh"

start_relay --log-level debug # the counters at exit
"$CLIENT" --url "$URL/close" --cert-hash "$HASH" --sessions 10 --heartbeats 1 >"$TMP/c.out" 2>&1 ||
  fail "client: $(tail -2 "$TMP/c.out")"
sleep 1
stop_relay
pkts=$(exit_counter quic_pkts_in)
[ -n "$pkts" ] && [ "$pkts" -lt 2000 ] || fail "the relay received $pkts packets for 10 short sessions"
pass "10 sessions opened, registered and closed: the relay received $pkts packets (no close ping-pong)"
