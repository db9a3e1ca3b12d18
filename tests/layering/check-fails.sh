#!/usr/bin/env bash
# The layering check must be able to fail: build layercheck_upcall (a
# library that links only the core layer but calls relay_init) and expect
# the link to stop with an undefined reference to that relay symbol.
# Usage: check-fails.sh BUILD_DIR
set -u
out=$(cmake --build "$1" --target layercheck_upcall 2>&1)
rc=$?
if [ $rc -eq 0 ]; then
  echo "FAIL: a call from core up to the relay layer linked"
  exit 1
fi
if ! grep -q "undefined reference to .relay_init" <<<"$out"; then
  echo "FAIL: the build failed for another reason:"
  echo "$out" | tail -20
  exit 1
fi
echo "ok: the upward call is a link error"
