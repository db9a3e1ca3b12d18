#!/usr/bin/env bash
# Development certificate for the relay, as the seed's script makes it: a
# self-signed ECDSA P-256 pair valid 10 days (browsers accept a pinned
# serverCertificateHashes certificate for at most 14), written to
# certs/relay-cert.pem and certs/relay-key.pem (key mode 0600), then the
# SHA-256 of the DER certificate printed the way the relay prints it.
#
#   scripts/generate-certs.sh
#   CERT_DIR=/some/dir CERT_NAME=relay.example scripts/generate-certs.sh
#
# CERT_DIR: output directory (default certs/ beside scripts/); CERT_NAME:
# the DNS name in the certificate besides 127.0.0.1 and ::1 (default
# localhost); CERT_TOOL=openssl|certtool picks the tool (default openssl,
# GnuTLS's certtool when openssl is missing).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${CERT_DIR:-$here/certs}
name=${CERT_NAME:-localhost}
tool=${CERT_TOOL:-}
if [ -z "$tool" ]; then
  if command -v openssl >/dev/null; then tool=openssl; elif command -v certtool >/dev/null; then tool=certtool; fi
fi
mkdir -p "$dir"
cert=$dir/relay-cert.pem
key=$dir/relay-key.pem
umask 077
case $tool in
openssl)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 10 \
    -subj "/CN=$name" -addext "subjectAltName=DNS:$name,IP:127.0.0.1,IP:::1" \
    -keyout "$key" -out "$cert" 2>/dev/null
  hash=$(openssl x509 -in "$cert" -outform DER | sha256sum | cut -d' ' -f1)
  ;;
certtool)
  tmpl=$(mktemp)
  trap 'rm -f "$tmpl"' EXIT
  printf 'cn = "%s"\ndns_name = "%s"\nip_address = "127.0.0.1"\nip_address = "::1"\nexpiration_days = 10\nsigning_key\ntls_www_server\n' \
    "$name" "$name" >"$tmpl"
  certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --no-text --outfile "$key" 2>/dev/null
  certtool --generate-self-signed --load-privkey "$key" --template "$tmpl" --outfile "$cert" 2>/dev/null
  hash=$(certtool --certificate-info --infile "$cert" --outder | sha256sum | cut -d' ' -f1)
  ;;
*)
  echo "generate-certs: needs openssl or certtool (apt-get install openssl)" >&2
  exit 1
  ;;
esac
chmod 0644 "$cert"
echo "Certificate: $cert"
echo "Key:         $key"
echo "Certificate SHA-256 Hash: $hash"
