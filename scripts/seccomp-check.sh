#!/usr/bin/env bash
# Checks scripts/seccomp-wtrelay.json against what the relay really calls.
#
#   scripts/seccomp-check.sh trace   [BUILD_DIR]  strace a short run, print the calls seen
#   scripts/seccomp-check.sh missing [BUILD_DIR]  traced calls the profile lacks (exit 1 if any)
#   scripts/seccomp-check.sh enforce [BUILD_DIR]  the same run under the profile's allow-list
#                                                 (BUILD_DIR/seccomp_run, default EPERM)
#
# The run: the relay with a PEM pair and the ops listener; three wtclient
# sessions register and heartbeat; the pair is replaced and SIGHUP reloads
# it; /metrics and /cert-hash are fetched; `wtrelay --healthcheck` probes
# /healthz (traced or filtered too: the container's HEALTHCHECK runs under
# the same profile); SIGTERM must end the relay with exit 0. The NAT's
# system calls need guest traffic, which only the netns tier makes; see
# docs/seccomp.md for tracing that one.
set -euo pipefail
mode=${1:?usage: seccomp-check.sh trace|missing|enforce [BUILD_DIR]}
here=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$(cd "${2:-${BUILD_DIR:-$here/build}}" && pwd)
PROFILE=${PROFILE:-$here/scripts/seccomp-wtrelay.json}
TMP=$(mktemp -d)
RELAY_PID=""
cleanup() {
  [ -n "$RELAY_PID" ] && kill -9 "$RELAY_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
die() { echo "seccomp-check ($mode): $*" >&2; [ -f "$TMP/relay.err" ] && tail -5 "$TMP/relay.err" >&2; exit 1; }

# The profile's rules as "NUMBER ACTION" lines for seccomp_run, numbers
# from this machine's C headers; names this architecture lacks are skipped.
profile_rules() {
  echo '#include <sys/syscall.h>' | gcc -dM -E - >"$TMP/nr.h"
  python3 - "$PROFILE" "$TMP/nr.h" <<'PY'
import json, re, sys
prof = json.load(open(sys.argv[1]))
nr = {m.group(1): int(m.group(2)) for m in
      re.finditer(r"#define __NR_(\w+) (\d+)", open(sys.argv[2]).read())}
assert prof["defaultAction"] == "SCMP_ACT_ERRNO", "defaultAction"
for rule in prof["syscalls"]:
    act = rule["action"]
    if act == "SCMP_ACT_ALLOW":
        a = "allow"
    elif act == "SCMP_ACT_ERRNO":
        a = str(rule.get("errnoRet", 1))
    else:
        sys.exit("unexpected action " + act)
    for n in rule["names"]:
        if n in nr:
            print(nr[n], a)
PY
}

# prefix NAME: P=(the command prefix that traces or filters a run)
prefix() {
  case $mode in
  trace | missing) P=(strace -f -qq -c -o "$TMP/strace-$1.txt") ;;
  enforce) P=("$BUILD_DIR/seccomp_run" -d EPERM -f "$TMP/rules" --) ;;
  esac
}

newpair() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 10 \
    -subj /CN=localhost -keyout "$1/k.pem" -out "$1/c.pem" 2>/dev/null
}
free_port() { # udp|tcp
  python3 -c "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1]=='udp' else socket.SOCK_STREAM); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])" "$1"
}
get() { python3 -c "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())" "$1"; }

run() {
  mkdir -p "$TMP/a" "$TMP/b" "$TMP/live"
  newpair "$TMP/a"
  newpair "$TMP/b"
  cp "$TMP/a/c.pem" "$TMP/a/k.pem" "$TMP/live/"
  local port ops
  port=$(free_port udp)
  ops=$(free_port tcp)
  prefix relay
  "${P[@]}" "$BUILD_DIR/wtrelay" --bind 127.0.0.1 --port "$port" \
    --cert-pem "$TMP/live/c.pem" --key-pem "$TMP/live/k.pem" --cert-poll-interval 1 \
    --http-listen "127.0.0.1:$ops" >"$TMP/relay.out" 2>"$TMP/relay.err" &
  local wpid=$!
  for _ in $(seq 100); do grep -q '^Listening' "$TMP/relay.out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^Listening' "$TMP/relay.out" || die "relay did not start"
  # strace blocks fatal signals while it runs a command: signal the relay
  # (strace's child); seccomp_run has become the relay.
  RELAY_PID=$(cat "/proc/$wpid/task/$wpid/children" 2>/dev/null || true)
  RELAY_PID=${RELAY_PID:-$wpid}
  RELAY_PID=${RELAY_PID%% *}
  local hash
  hash=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/relay.out")
  "$BUILD_DIR/wtclient" --url "https://127.0.0.1:$port/seccomp" --cert-hash "$hash" \
    --sessions 3 --heartbeats 2 --timeout 15 >"$TMP/client.out" 2>&1 ||
    die "sessions failed: $(tail -1 "$TMP/client.out")"
  # (into a variable first: grep -q ending a pipe early breaks it under pipefail)
  local body
  body=$(get "http://127.0.0.1:$ops/metrics") && [[ $body == *wtrelay_sessions* ]] || die "/metrics"
  cp "$TMP/b/c.pem" "$TMP/b/k.pem" "$TMP/live/"
  kill -HUP "$RELAY_PID"
  local want
  want=$(openssl x509 -in "$TMP/b/c.pem" -outform DER | sha256sum | cut -d' ' -f1)
  for _ in $(seq 50); do
    body=$(get "http://127.0.0.1:$ops/cert-hash") && [[ $body == *"$want"* ]] && break
    sleep 0.1
  done
  [[ $body == *"$want"* ]] || die "SIGHUP did not reload: $body"
  "$BUILD_DIR/wtclient" --url "https://127.0.0.1:$port/seccomp" --cert-hash "$want" \
    --timeout 15 >"$TMP/client2.out" 2>&1 || die "session after reload failed: $(tail -2 "$TMP/client2.out")"
  prefix health
  "${P[@]}" "$BUILD_DIR/wtrelay" --healthcheck "http://127.0.0.1:$ops/healthz" ||
    die "--healthcheck failed"
  kill -TERM "$RELAY_PID"
  local rc=0
  wait "$wpid" || rc=$?
  RELAY_PID=""
  [ "$rc" = 0 ] || die "relay exit $rc after SIGTERM"
}

# Names in strace -c tables (the last column of each row).
traced_names() {
  cat "$TMP"/strace-*.txt | awk '$NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $NF != "syscall" {print $NF}' | sort -u
}

case $mode in
trace)
  command -v strace >/dev/null || die "strace missing (apt-get install strace)"
  run
  traced_names
  ;;
missing)
  command -v strace >/dev/null || die "strace missing (apt-get install strace)"
  run
  traced_names >"$TMP/seen"
  # allowed, or refused on purpose by a rule of its own (clone3 ENOSYS:
  # glibc's pthread_create falls back to clone, whose flags the profile
  # checks; bpf EPERM: the relay steers without its BPF program)
  python3 -c 'import json,sys; print("\n".join(n for r in json.load(open(sys.argv[1]))["syscalls"] if r["action"]=="SCMP_ACT_ALLOW" or "errnoRet" in r for n in r["names"]))' "$PROFILE" | sort -u >"$TMP/allowed"
  missing=$(comm -23 "$TMP/seen" "$TMP/allowed")
  [ -z "$missing" ] || die "the relay called, the profile does not allow: $(echo $missing)"
  echo "all $(wc -l <"$TMP/seen") system calls seen are allowed"
  ;;
enforce)
  [ -x "$BUILD_DIR/seccomp_run" ] || die "$BUILD_DIR/seccomp_run missing (cmake --build)"
  profile_rules >"$TMP/rules"
  run
  # several workers (the default on a machine with several CPUs): the BPF
  # program is refused (EPERM) and the relay says it steers without it
  if grep -q 'msg="steering"' "$TMP/relay.err"; then
    grep -q 'msg="steering" mode=reuseport_hash+handoff' "$TMP/relay.err" ||
      die "bpf refused, yet: $(grep 'msg="steering"' "$TMP/relay.err")"
  fi
  echo "sessions, SIGHUP reload, --healthcheck and SIGTERM work under the profile ($(wc -l <"$TMP/rules") rules)"
  ;;
*) die "unknown mode $mode" ;;
esac
