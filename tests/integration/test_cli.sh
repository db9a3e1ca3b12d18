#!/usr/bin/env bash
# Command lines of wtclient and wtrelay-tap: getopt_long forms
# (--flag=value, prefixes), sleep-style durations, and usage errors that are
# one line naming the flag plus a pointer to --help, exit 2.
. "$(dirname "$0")/lib.sh"
TAP=$BUILD_DIR/wtrelay-tap

usage_error() { # program expected-text args...
  local prog=$1 want=$2 rc=0 name
  shift 2
  name=$(basename "$prog")
  "$prog" "$@" >/dev/null 2>"$TMP/e" || rc=$?
  [ "$rc" = 2 ] || fail "$name $*: exit $rc, expected 2: $(cat "$TMP/e")"
  [ "$(wc -l <"$TMP/e")" = 1 ] || fail "$name $*: not one line: $(cat "$TMP/e")"
  grep -q -- "^$name: $want" "$TMP/e" || fail "$name $*: '$want' not in: $(cat "$TMP/e")"
  grep -q "Try '$name --help'" "$TMP/e" || fail "$name $*: no pointer to --help: $(cat "$TMP/e")"
}

"$CLIENT" --help | grep -q -- '--timeout DURATION ' || fail "wtclient --help"
"$TAP" --help | grep -q -- '--heartbeat DURATION ' || fail "wtrelay-tap --help"
# wtrelay --help: the sections in order, real metavars, no placeholder
"$RELAY" --help >"$TMP/help" || fail "wtrelay --help: exit $?"
want="Network: Certificates: Rooms and addresses: Limits and shares: NAT and DNS: Access control: Operations: Federation: Workers: Logging:"
got=$(grep -E '^[A-Z][A-Za-z ]+:$' "$TMP/help" | tr '\n' ' ' | sed 's/ $//')
[ "$got" = "$want" ] || fail "wtrelay --help sections: '$got'"
for f in '-p, --port PORT ' '-b, --bind ADDR ' '--lease-time DURATION ' '--cert-pem FILE ' \
  '--http-listen ADDR:PORT ' '--retry MODE ' '--subnet CIDR ' '--allow-any-src-mac '; do
  grep -qF -- "$f" "$TMP/help" || fail "wtrelay --help lacks '$f'"
done
! grep -q '<V>\|<DUR>' "$TMP/help" || fail "wtrelay --help has a placeholder metavar"
[ "$(awk 'length > 80' "$TMP/help" | wc -l)" = 0 ] || fail "wtrelay --help has lines over 80 columns"
tr -s ' \n' ' ' <"$TMP/help" | grep -q 'default 127.0.0.1:8433)' || fail "wtrelay --help: ops port default"
pass "wtrelay --help: grouped sections, real metavars, 80 columns"
# --version: the relay's and the libraries' versions
for prog in "$RELAY" "$TAP" "$CLIENT"; do
  name=$(basename "$prog")
  "$prog" --version >"$TMP/v" || fail "$name --version: exit $?"
  grep -qx "$name [0-9][0-9.]*" "$TMP/v" || fail "$name --version: $(cat "$TMP/v")"
  for lib in ngtcp2 nghttp3 GnuTLS liburing libnats jansson; do
    grep -qE "^$lib [0-9]+\.[0-9]+" "$TMP/v" || fail "$name --version lacks $lib: $(cat "$TMP/v")"
  done
done
pass "--version of the three programs names ngtcp2, nghttp3, GnuTLS, liburing, libnats, jansson"
U=https://127.0.0.1:1/
usage_error "$CLIENT" "--timeout: .*got '5x'" --url "$U" --timeout 5x
usage_error "$CLIENT" "--timeout: .*got '-1'" --url "$U" --timeout=-1
usage_error "$CLIENT" "--timeout: .*got '0'" --url "$U" --timeout 0
usage_error "$CLIENT" "--hold: .*got ''" --url "$U" --hold=
usage_error "$CLIENT" "--hold: .*got '99999999999999999999999'" --url "$U" --hold 99999999999999999999999
usage_error "$CLIENT" "--sessions: .*got 'many'" --url "$U" --sessions many
usage_error "$CLIENT" "--sessions: .*got '2x'" --url "$U" --sessions=2x
usage_error "$CLIENT" "--heartbeats: .*got '-1'" --url "$U" --heartbeats -1
usage_error "$CLIENT" "--mac: .*got 'zz'" --url "$U" --mac zz
usage_error "$CLIENT" "--log-level: .*got 'loud'" --url "$U" --log-level=loud
usage_error "$CLIENT" "--cert-hash: .*got 'zz'" --url "$U" --cert-hash zz
usage_error "$CLIENT" "--url: missing value" --url
usage_error "$CLIENT" "--junk: takes no value" --url "$U" --junk=1
usage_error "$CLIENT" "unknown flag '--frobnicate'" --url "$U" --frobnicate
usage_error "$CLIENT" "unexpected argument 'extra'" --url "$U" extra
usage_error "$CLIENT" "--url is required"
usage_error "$TAP" "--heartbeat: .*got '0.5'" --url "$U" --heartbeat 0.5
usage_error "$TAP" "--heartbeat: .*got '2h'" --url "$U" --heartbeat=2h
usage_error "$TAP" "--heartbeat: .*got '10 s'" --url "$U" --heartbeat "10 s"
usage_error "$TAP" "--heartbeat: .*got ''" --url "$U" --heartbeat=
usage_error "$TAP" "--mac: .*got '01:00:5e:00:00:01'" --url "$U" --mac 01:00:5e:00:00:01
usage_error "$TAP" "--log-level: .*got 'loud'" --url "$U" --log-level loud
usage_error "$TAP" "--cert-hash: .*got 'zz'" --url "$U" --cert-hash=zz
usage_error "$TAP" "--tap: missing value" --url "$U" --tap
usage_error "$TAP" "--configure: takes no value" --url "$U" --configure=yes
usage_error "$TAP" "unknown flag '-x'" -x
usage_error "$TAP" "--url is required" --heartbeat 5s
pass "wtclient and wtrelay-tap: bad values are one line naming the flag, exit 2"

start_relay --heartbeat-interval=1m
out=$("$CLIENT" --url="$URL/" --cert-hash="$HASH" --timeout=10s --hold 0.5 --heartbeats=2 \
  --sess 2) || fail "wtclient with --flag=value and durations: $out"
[ "$(echo "$out" | json_field registered)" = 2 ] || fail "two sessions registered: $out"
stop_relay
pass "wtclient --url=... --timeout=10s --hold 0.5 --sess 2 (prefix) works against a relay"
