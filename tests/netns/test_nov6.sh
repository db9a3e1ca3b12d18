#!/usr/bin/env bash
# The relay on hosts without IPv6, in a network namespace of its own (per-run
# prefix, deleted by the trap):
#  1. IPv6 disabled by sysctl (net.ipv6.conf.{all,default,lo}.disable_ipv6):
#     "::" still binds there (the kernel keeps AF_INET6 sockets) and serves
#     IPv4 through mapped addresses, so the default bind just works;
#  2. no IPv6 in the kernel at all (ipv6.disable=1 at boot, or a sandbox that
#     refuses AF_INET6): socket(AF_INET6) fails with EAFNOSUPPORT. A boot
#     parameter cannot be set from a test, so a small LD_PRELOAD shim makes
#     socket(AF_INET6) fail exactly that way for the relay only. The default
#     bind falls back to 0.0.0.0 with a warning and prints
#     "Listening on https://0.0.0.0:4433"; an explicit --bind :: fails (exit 1);
# in every case a native client connects to 127.0.0.1 inside the namespace.
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
fail() {
  echo "FAIL: $*" >&2
  for f in "$TMP"/*.out "$TMP"/*.err; do [ -f "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }; done
  exit 1
}
pass() { echo "ok - $*"; }

[ "$(id -u)" = 0 ] || { echo "FAIL: the netns tier needs root (network namespaces)" >&2; exit 1; }
command -v cc >/dev/null || { echo "FAIL: cc missing (builds the no-IPv6 shim)" >&2; exit 1; }

TMP=$(mktemp -d)
NS="wt$$nov6"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$NS"
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv6.conf.lo.disable_ipv6=1
[ -z "$(ip -n "$NS" -6 addr show)" ] || fail "$NS still has IPv6 addresses"

cat >"$TMP/nov6.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>
/* A kernel without IPv6: AF_INET6 sockets do not exist. */
int socket(int domain, int type, int protocol)
{
  static int (*real)(int, int, int);
  if (domain == AF_INET6) {
    errno = EAFNOSUPPORT;
    return -1;
  }
  if (!real)
    real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
  return real(domain, type, protocol);
}
C
cc -shared -fPIC -o "$TMP/nov6.so" "$TMP/nov6.c" -ldl || fail "cannot build the no-IPv6 shim"

# start NAME [env...] -- [flags...]: relay on port 4433 in $NS, waits for the
# Listening line; sets RELAY_PID and HASH
start() {
  local name=$1
  shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  ip netns exec "$NS" env "${envs[@]}" "$BUILD_DIR/wtrelay" --http-listen '' "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
  for _ in $(seq 50); do grep -q '^Listening' "$TMP/$name.out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^Listening' "$TMP/$name.out" || fail "$name: relay did not start"
  HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/$name.out")
}
stop() {
  kill -TERM "$RELAY_PID"
  local rc=0
  wait "$RELAY_PID" || rc=$?
  [ "$rc" = 0 ] || fail "relay exit $rc after SIGTERM"
  # io_uring releases the socket after the process is gone: wait for it
  for _ in $(seq 50); do
    [ -z "$(ip netns exec "$NS" ss -Hlun 'sport = :4433')" ] && return 0
    sleep 0.1
  done
  fail "port 4433 still bound 5 s after the relay exited"
}
client_ok() { # name
  local out
  out=$(ip netns exec "$NS" "$BUILD_DIR/wtclient" --url https://127.0.0.1:4433/ --cert-hash "$HASH" \
    --heartbeats 1 --timeout 10s 2>"$TMP/$1-client.err") || fail "$1: client did not connect: $out"
}

start sysctl --
grep -q '^Listening on https://\[::\]:4433$' "$TMP/sysctl.out" || fail "sysctl: listening line"
client_ok sysctl
stop
pass "IPv6 disabled by sysctl: default bind [::] still serves IPv4, client connected to 127.0.0.1"

start nov6 LD_PRELOAD="$TMP/nov6.so" --
grep -q '^Listening on https://0.0.0.0:4433$' "$TMP/nov6.out" || fail "no IPv6: listening line"
grep -q 'level=warn msg="no IPv6 on this host, listening on IPv4 only".*fallback=0.0.0.0' \
  "$TMP/nov6.err" || fail "no IPv6: no fallback warning"
client_ok nov6
stop
pass "no IPv6 in the kernel: default bind falls back to 0.0.0.0 with a warning, client connected"

rc=0
timeout 10 ip netns exec "$NS" env LD_PRELOAD="$TMP/nov6.so" "$BUILD_DIR/wtrelay" --http-listen '' \
  --bind :: >"$TMP/explicit.out" 2>"$TMP/explicit.err" || rc=$?
[ "$rc" = 1 ] || fail "explicit --bind :: without IPv6: exit $rc, expected 1"
grep -q 'cannot start relay.*bind="::".*not supported' "$TMP/explicit.err" || fail "explicit --bind :: message"
! grep -q '^Listening' "$TMP/explicit.out" || fail "explicit --bind :: must not listen"
pass "no IPv6 in the kernel: an explicit --bind :: fails (exit 1) instead of falling back"
