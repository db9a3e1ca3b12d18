#!/usr/bin/env bash
# The per-client shares with several workers: test_shares.sh with
# --workers 2 and then 4 (4 on a 2-core machine exercises the hand-offs
# too). The figures must be those of one worker: 8 rooms at once then 1 a
# second, 16 rooms per address, 49 addresses and 64 sessions per client
# in a room, a VM of another client unharmed.
set -euo pipefail
for n in ${SHARES_WORKERS:-2 4}; do
  echo "# --workers $n"
  WORKERS=$n bash "$(dirname "$0")/test_shares.sh"
done
