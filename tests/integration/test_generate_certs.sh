#!/usr/bin/env bash
# scripts/generate-certs.sh (openssl, and the certtool fallback): a 10-day
# ECDSA P-256 pair under the seed's names in CERT_DIR; the relay started
# with it prints the same hash as the script, and a client pinning that
# hash connects.
. "$(dirname "$0")/lib.sh"
SOURCE_DIR=${SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

for tool in openssl certtool; do
  command -v "$tool" >/dev/null || fail "$tool missing (scripts/install-deps.sh)"
  dir=$TMP/certs-$tool
  CERT_DIR=$dir CERT_TOOL=$tool bash "$SOURCE_DIR/scripts/generate-certs.sh" >"$TMP/gen.out" ||
    fail "generate-certs with $tool"
  [ -s "$dir/relay-cert.pem" ] && [ -s "$dir/relay-key.pem" ] || fail "$tool: files missing"
  [ "$(stat -c %a "$dir/relay-key.pem")" = 600 ] || fail "$tool: key mode $(stat -c %a "$dir/relay-key.pem")"
  openssl x509 -in "$dir/relay-cert.pem" -noout -text >"$TMP/x509.txt"
  grep -q "NIST CURVE: P-256" "$TMP/x509.txt" || fail "$tool: not P-256"
  days=$(python3 - "$dir/relay-cert.pem" <<'PY'
import subprocess, sys, datetime
def date(opt):
    s = subprocess.run(["openssl", "x509", "-in", sys.argv[1], "-noout", opt],
                       capture_output=True, text=True, check=True).stdout.split("=", 1)[1].strip()
    return datetime.datetime.strptime(s, "%b %d %H:%M:%S %Y %Z")
print(round((date("-enddate") - date("-startdate")).total_seconds() / 86400))
PY
  )
  [ "$days" = 10 ] || fail "$tool: valid $days days, want 10"
  want=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/gen.out")
  [[ $want =~ ^[0-9a-f]{64}$ ]] || fail "$tool: printed hash: $(cat "$TMP/gen.out")"

  start_relay --cert-pem "$dir/relay-cert.pem" --key-pem "$dir/relay-key.pem"
  [ "$HASH" = "$want" ] || fail "$tool: relay prints $HASH, script printed $want"
  out=$("$CLIENT" --url "$URL/" --cert-hash "$want" --timeout 10) || fail "$tool: client: $out"
  stop_relay
  pass "$tool: 10-day P-256 pair, key 0600; the relay prints the script's hash and a pinned client connects"
done
