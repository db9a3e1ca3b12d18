# exit_counter KEY [LOG]: the value of KEY on the last "counters at exit"
# line of LOG (default $TMP/relay.err): the one debug line a relay run with
# --log-level debug writes as it stops, every counter as key=value (keys
# as in docs/architecture.md, "The exit line"). Fails (exit status 1, a
# message on stderr) when there is no such line or no such key.
exit_counter() {
  local key=$1 log=${2:-$TMP/relay.err} line v
  line=$(grep -a 'msg="counters at exit"' "$log" | tail -1)
  [ -n "$line" ] || { echo "FAIL: no counters at exit in $log (--log-level debug?)" >&2; return 1; }
  v=$(printf '%s\n' "$line" | tr ' ' '\n' | sed -n "s/^$key=\([0-9]*\)\$/\1/p")
  [ -n "$v" ] || { echo "FAIL: no $key in the counters at exit" >&2; return 1; }
  echo "$v"
}
