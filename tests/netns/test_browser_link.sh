#!/usr/bin/env bash
# Chromium across a real link (tests/netns/topo.sh): the relay in its own
# namespace bound to [::]; Chromium, its test page server and the
# playwright driver in a client host's namespace on a veth link with MTU
# 1280. The page registers, switches frames between two sessions and talks
# to the gateway (tests/browser/link_client.mjs); then the JavaScript client
# (clients/js) in Chromium and in Firefox: two NICs, 1514-byte frames
# chunked both ways by the link's datagram size, gateway ARP and ping, a
# reconnect keeping the address. No random loss here: the
# page sends each test frame once (loss is the native tests' subject:
# test_loss.sh).
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
HERE="$(cd "$(dirname "$0")" && pwd)"
BROWSER_DIR="$(cd "$HERE/../browser" && pwd)"
[ -x /usr/bin/chromium ] || { echo "FAIL: /usr/bin/chromium missing (scripts/install-deps.sh)" >&2; exit 1; }
[ -d "$BROWSER_DIR/node_modules/playwright-core" ] || { echo "FAIL: playwright-core missing (npm ci in tests/browser; scripts/install-deps.sh)" >&2; exit 1; }
BUILD_ABS="$(cd "$BUILD_DIR" && pwd)"

source "$HERE/topo.sh"
topo_init wb
topo_relay_host
topo_client_host 1 1280
topo_start_relay --log-level debug
pass "relay on [::] in $NS_R; client host $NS_C1 on an MTU 1280 link"
ip netns exec "$NS_C1" env BUILD_DIR="$BUILD_ABS" RELAY_URL="https://$RELAY_ADDR_1:4433" \
  RELAY_HASH="$HASH" RELAY_LOG="$TMP/relay.err" HOME="$TMP" \
  timeout 300 node "$BROWSER_DIR/link_client.mjs" || fail "Chromium across the link"
kill -TERM "$RELAY_PID"
wait "$RELAY_PID" || fail "relay exit status on SIGTERM"
pass "relay exits 0"
