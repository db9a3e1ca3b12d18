#!/usr/bin/env bash
# io_uring blocked by a seccomp filter (as in Docker's and containerd's
# default profiles): wtrelay, wtclient and wtrelay-tap exit 1 with one line
# that names the block and the remedy, for EPERM and ENOSYS and for each of
# the three io_uring system calls. The filter applies to the child only
# (build/seccomp_run); nothing machine-wide changes.
. "$(dirname "$0")/lib.sh"
RUN=$BUILD_DIR/seccomp_run
[ -x "$RUN" ] || fail "$RUN missing (built with the tests)"

# blocked PROG_NAME RULE CMD...: exit 1, nothing on stdout, one stderr line
blocked() {
  local name=$1 rule=$2
  shift 2
  local rc=0
  timeout 10 "$RUN" -r "$rule" -- "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" = 1 ] || fail "$name with $rule: exit $rc, want 1: $(cat "$TMP/err")"
  [ ! -s "$TMP/out" ] || fail "$name with $rule printed on stdout: $(cat "$TMP/out")"
  [ "$(wc -l <"$TMP/err")" = 1 ] || fail "$name with $rule: want one line, got: $(cat "$TMP/err")"
  local want_call=${rule%%=*}
  grep -q "^$name: io_uring is blocked" "$TMP/err" &&
    grep -q "$want_call" "$TMP/err" &&
    grep -q -- "--security-opt seccomp=scripts/seccomp-wtrelay.json" "$TMP/err" &&
    grep -q "kernel.io_uring_disabled=0" "$TMP/err" ||
    fail "$name with $rule: unexpected message: $(cat "$TMP/err")"
}

PORT=$(free_udp_port)
for rule in io_uring_setup=EPERM io_uring_setup=ENOSYS io_uring_enter=EPERM io_uring_register=EPERM; do
  blocked wtrelay "$rule" "$RELAY" --port "$PORT" --http-listen ''
done
grep -q "Docker's or containerd's default profile" "$TMP/err" || fail "EPERM names seccomp: $(cat "$TMP/err")"
pass "wtrelay: io_uring_setup EPERM/ENOSYS, io_uring_enter and io_uring_register EPERM: exit 1, one line with the remedy"

blocked wtclient io_uring_setup=EPERM "$CLIENT" --url "https://127.0.0.1:$PORT/" --timeout 2
blocked wtrelay-tap io_uring_setup=EPERM "$BUILD_DIR/wtrelay-tap" --url "https://127.0.0.1:$PORT/" --tap wtblk0
ip link show wtblk0 >/dev/null 2>&1 && fail "wtrelay-tap created its TAP although io_uring is blocked"
pass "wtclient and wtrelay-tap: the same one line, exit 1"

# Unfiltered, the same command line starts (the probe does not refuse a
# working io_uring).
start_relay
stop_relay
pass "without the filter the relay starts and stops cleanly"
