#!/usr/bin/env bash
# make demo: runs build/wtrelay (UDP RELAY_PORT, ops listener with
# /cert-hash on OPS_PORT) and a static web server for clients/ and
# examples/ on http://localhost:WEB_PORT, and prints the example's URL.
# Ctrl-C stops both. localhost is a secure context, so plain HTTP is enough
# for WebTransport.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
RELAY_PORT=${RELAY_PORT:-4433}
OPS_PORT=${OPS_PORT:-8433}
WEB_PORT=${WEB_PORT:-8080}

command -v python3 >/dev/null || { echo "demo: python3 is needed for the web server" >&2; exit 1; }
[[ -x $BUILD_DIR/wtrelay ]] || { echo "demo: $BUILD_DIR/wtrelay missing (make build)" >&2; exit 1; }

WWW=$(mktemp -d "${TMPDIR:-/tmp}/wtrelay-demo.XXXXXX")
ln -s "$ROOT/clients" "$WWW/clients"
ln -s "$ROOT/examples" "$WWW/examples"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WWW"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

"$BUILD_DIR/wtrelay" --bind 127.0.0.1 --port "$RELAY_PORT" --http-listen "127.0.0.1:$OPS_PORT" &
pids+=($!)
python3 -m http.server "$WEB_PORT" --bind 127.0.0.1 --directory "$WWW" >/dev/null 2>&1 &
pids+=($!)

for _ in $(seq 50); do
  if curl -fsS "http://127.0.0.1:$OPS_PORT/cert-hash" >/dev/null 2>&1 &&
    curl -fsS "http://127.0.0.1:$WEB_PORT/examples/two-nics.html" >/dev/null 2>&1; then
    ready=1
    break
  fi
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "demo: a server exited (port in use?)" >&2; exit 1; }; done
  sleep 0.2
done
[[ ${ready:-} ]] || { echo "demo: servers not ready" >&2; exit 1; }

query="relay=https://127.0.0.1:$RELAY_PORT/demo&certHashUrl=http://127.0.0.1:$OPS_PORT/cert-hash"
echo
echo "Open http://localhost:$WEB_PORT/examples/two-nics.html?$query"
echo "(Ctrl-C stops the relay and the web server)"
wait
