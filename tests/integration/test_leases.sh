#!/usr/bin/env bash
# Sticky addresses with the real relay and wtclient: a MAC keeps its IP
# after its room emptied, across a restart with --lease-file (mode 0600),
# a corrupt lease file is one error line, and a tiny pool reclaims the
# oldest released address (logged while unexpired, quietly once expired).
. "$(dirname "$0")/lib.sh"

M=52:54:00:1e:00:01
N=52:54:00:1e:00:02

# register ROOM MAC: prints the assigned address
register() {
  local out
  out=$("$CLIENT" --url "$URL$1" --cert-hash "$HASH" --mac "$2" --timeout 10) ||
    fail "register $2 in $1: $out"
  echo "$out" | sed -n 's/.* ip=\([0-9.]*\) .*/\1/p' | head -1
}

# 1. same MAC, same IP after the room emptied (another MAC in between)
start_relay
a=$(register /x $M)
[ "$a" = 10.0.2.254 ] || fail "first address $a"
b=$(register /x $N)
[ "$b" = 10.0.2.253 ] || fail "a new MAC took $b; .254 should stay leased to $M"
c=$(register /x $M)
[ "$c" = "$a" ] || fail "$M got $c after its room emptied, expected $a"
stop_relay
pass "a MAC gets its address back after the room emptied ($M -> $a, $N -> $b)"

# 2. across a restart with --lease-file; a room name with hostile bytes
LF=$TMP/state/leases
mkdir -p "$TMP/state"
ROOM='/we%20ird%0Aroom'
start_relay --lease-file "$LF"
a=$(register "$ROOM" $M)
stop_relay
[ -f "$LF" ] || fail "no lease file after shutdown"
mode=$(stat -c %a "$LF")
[ "$mode" = 600 ] || fail "lease file mode $mode, expected 600"
grep -q "^$M $a [0-9]*\$" "$LF" || fail "lease missing from the file: $(cat "$LF")"
[ ! -e "$LF.tmp" ] || fail "temporary file left behind"
RELAY_LEASE_FILE=$LF start_relay
grep -q 'msg="lease file read".*leases=1' "$TMP/relay.err" || fail "lease file not read"
b=$(register "$ROOM" $N)
[ "$b" != "$a" ] || fail "after a restart a new MAC took $M's address $a"
c=$(register "$ROOM" $M)
[ "$c" = "$a" ] || fail "after a restart $M got $c, expected $a"
stop_relay
pass "after a restart (RELAY_LEASE_FILE) the MAC gets its address back, file mode 0600"

# 3. a corrupt lease file: one error line, the relay serves
head -c 3000 /dev/urandom >"$LF"
printf '\nroom /\n52:54:00:1e:00:09 10.0.2.999 1\n' >>"$LF"
start_relay --lease-file "$LF"
errs=$(grep -c 'level=error' "$TMP/relay.err" || true)
[ "$errs" = 1 ] || fail "expected one error line for a corrupt lease file, got $errs"
grep -q 'level=error msg="lease file damaged' "$TMP/relay.err" || fail "no lease file error line"
a=$(register / $M)
[ "$a" = 10.0.2.254 ] || fail "relay with a corrupt lease file assigned $a"
stop_relay
grep -q '^room /$' "$LF" || fail "the lease file was not rewritten: $(head -c 200 "$LF" | od -c | head -3)"
pass "a corrupt lease file is one error line; the relay serves and rewrites it"

# 4. a tiny pool (/28: .10 to .14) with a short lease time (one client
# address here: its share is above the pool size, so the reclaim order between
# leases is what is seen, not a client's share)
LT=8
start_relay --subnet 10.0.2.0/28 --lease-time $LT --max-client-addrs-per-room 255 --log-level debug
for i in 1 2 3 4 5; do
  ip=$(register /t 52:54:00:2e:00:0$i)
  [ "$ip" = "10.0.2.$((15 - i))" ] || fail "MAC $i got $ip"
done
# full, nothing expired yet: the oldest released (MAC 1's .14), logged
ip=$(register /t 52:54:00:2e:00:06)
[ "$ip" = 10.0.2.14 ] || fail "before expiry the new MAC got $ip, expected the oldest released .14"
grep -q 'msg="address pool full, reclaiming an unexpired lease".*ip=10.0.2.14' "$TMP/relay.err" ||
  fail "no log line for reclaiming an unexpired lease"
sleep $((LT + 1))
# every lease expired: the oldest expired is MAC 2's .13
ip=$(register /t 52:54:00:2e:00:07)
[ "$ip" = 10.0.2.13 ] || fail "after expiry the new MAC got $ip, expected the oldest expired .13"
[ "$(grep -c 'reclaiming an unexpired lease' "$TMP/relay.err")" = 1 ] ||
  fail "an expired lease was reclaimed with the unexpired log line"
stop_relay
[ "$(exit_counter lease_reclaims_expired)" = 1 ] && [ "$(exit_counter lease_reclaims_unexpired)" = 1 ] ||
  fail "lease counters: $(grep -o 'lease_reclaims_[a-z]*=[0-9]*' "$TMP/relay.err" | tr '\n' ' ')"
pass "tiny pool: oldest released reclaimed with a log line before expiry, oldest expired after"
