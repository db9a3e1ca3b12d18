#!/usr/bin/env bash
# scripts/seccomp-wtrelay.json: parses, denies by default with EPERM, allows
# io_uring's three calls; the relay serves sessions, reloads on SIGHUP,
# answers --healthcheck and stops on SIGTERM under exactly that allow-list
# (build/seccomp_run); and every system call strace sees in the same run is
# in the list.
. "$(dirname "$0")/lib.sh"
SOURCE_DIR=${SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
PROFILE=$SOURCE_DIR/scripts/seccomp-wtrelay.json

python3 - "$PROFILE" <<'PY' || fail "profile structure"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p.get("defaultErrnoRet") == 1, "default EPERM"
allowed = {n for r in p["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
for n in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
    assert n in allowed, n
for n in ("ptrace", "mount", "unshare", "setns", "bpf", "keyctl", "kexec_load", "init_module"):
    assert n not in allowed, n + " must stay denied"
assert len(allowed) < 120, "tighter than Docker's default"
PY
pass "profile parses: default EPERM, io_uring allowed, ptrace/mount/unshare/setns/bpf denied"

out=$(bash "$SOURCE_DIR/scripts/seccomp-check.sh" enforce "$BUILD_DIR" 2>&1) || fail "under the profile: $out"
pass "$out"

command -v strace >/dev/null || fail "strace missing (scripts/install-deps.sh installs it)"
out=$(bash "$SOURCE_DIR/scripts/seccomp-check.sh" missing "$BUILD_DIR" 2>&1) || fail "strace: $out"
pass "strace: $out"
