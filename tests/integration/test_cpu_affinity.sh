#!/usr/bin/env bash
# --cpu-affinity: with --workers 2 each worker thread (named wtrelay-w0,
# wtrelay-w1) is pinned to one CPU of the process's mask, worker i to the
# i-th (wrapping around on a one-CPU machine); without the flag the worker
# threads may run anywhere the process may. The kernel's own view is read
# from /proc/PID/task/*/status (Cpus_allowed_list).
. "$(dirname "$0")/lib.sh"

# the CPUs this test may use, in order (as the relay sees its own mask)
mapfile -t CPUS < <(python3 -c 'import os; print("\n".join(str(c) for c in sorted(os.sched_getaffinity(0))))')
ALL=$(awk '/^Cpus_allowed_list:/ {print $2}' /proc/self/status)

allowed_of() { # thread name -> its Cpus_allowed_list
  local t
  for t in /proc/"$RELAY_PID"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = "$1" ] && { awk '/^Cpus_allowed_list:/ {print $2}' "$t/status"; return; }
  done
  echo "none"
}

start_relay --workers 2 --cpu-affinity
for w in 0 1; do
  want=${CPUS[$((w % ${#CPUS[@]}))]}
  got=$(allowed_of "wtrelay-w$w")
  [ "$got" = "$want" ] || fail "worker $w runs on CPUs '$got', expected '$want'"
  grep -q "msg=\"worker pinned\" worker=$w cpu=$want" "$TMP/relay.err" || fail "no 'worker pinned' line for worker $w"
done
pass "--cpu-affinity: worker 0 on CPU ${CPUS[0]}, worker 1 on CPU ${CPUS[$((1 % ${#CPUS[@]}))]}"
stop_relay

start_relay --workers 2
for w in 0 1; do
  got=$(allowed_of "wtrelay-w$w")
  [ "$got" = "$ALL" ] || fail "worker $w pinned to '$got' without --cpu-affinity (process: '$ALL')"
done
pass "without the flag the workers may run on every CPU of the process ($ALL)"
stop_relay
