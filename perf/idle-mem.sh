#!/usr/bin/env bash
# Memory per idle session, by owner: N sessions (registered, a Heartbeat
# every HB seconds) held open by wtbench on one relay worker; the relay's
# /metrics and VmRSS are read before the sessions and once they have all
# registered and heartbeated a few times. Per session:
#   ngtcp2    wtrelay_memory_bytes{owner="ngtcp2"} (its allocator hooks)
#   nghttp3   wtrelay_memory_bytes{owner="nghttp3"}
#   relay     wtrelay_memory_bytes{owner="relay"}: our per-connection
#             structs (in tables allocated at start) and heap buffers
#   ng.slots  resident pages of ngtcp2's page slots (quic.c: its blocks
#             over a page each get page-aligned slots outside the heap)
#   heap      wtrelay_heap_bytes (mallinfo2: every malloc of the process)
#   rest      heap - ngtcp2's heap part - nghttp3 - our buffers: GnuTLS (which
#             has no allocator hooks since 3.3), ngtcp2's crypto glue and
#             malloc's own overhead (16-byte count headers included)
#   RSS       VmRSS; other = RSS - heap - ng.slots (our tables' pages)
# Not a test: prints one table. Run it alone (flock), after `make`:
#
#   flock /tmp/wtrelay-bench.lock perf/idle-mem.sh [N...]   (default 1000 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD_DIR:-build}
HB=${HB:-2}
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1000 10000)
TMP=$(mktemp -d)
RELAY=""
BENCH=""
cleanup() {
  if [ -n "$BENCH" ]; then kill "$BENCH" 2>/dev/null || true; fi
  if [ -n "$RELAY" ]; then kill "$RELAY" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_'"$1"'); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

scrape() { # file
  curl -fsS "http://127.0.0.1:$OPS/metrics" >"$1"
  awk '/^VmRSS/{print "rss_kib", $2}' "/proc/$RELAY/status" >>"$1"
  # ngtcp2's page slots: one mapping of max-sessions * 16 slots of 16 KiB
  python3 - "$RELAY" $((10500 * 16 * 16)) >>"$1" <<'PY'
import re, sys
kb = rss = 0
for l in open("/proc/%s/smaps" % sys.argv[1]):
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", l)
    if m:
        kb = (int(m.group(2), 16) - int(m.group(1), 16)) // 1024
    elif l.startswith("Rss:") and kb == int(sys.argv[2]):
        rss += int(l.split()[1])
print("slots_rss_kib", rss)
PY
}
metric() { # file, sample name with labels
  awk -v k="$2" '$1 == k {print $2}' "$1"
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
printf '%8s %9s %9s %9s %9s %9s %9s %9s %9s %8s\n' sessions ngtcp2 ng.slots nghttp3 relay rest heap RSS other setup_s
for n in "${counts[@]}"; do
  PORT=$(freeport DGRAM)
  OPS=$(freeport STREAM)
  $B/wtrelay --bind 127.0.0.1 --port "$PORT" --http-listen "127.0.0.1:$OPS" --workers 1 \
    --log-level warn --max-sessions 10500 --max-sessions-per-ip 10500 \
    --max-client-sessions-per-room 10500 --max-client-addrs-per-room 65536 --flood-rate 0 \
    --room-rate 1000 --room-burst 64 --max-rooms-per-client 256 \
    >"$TMP/out" 2>"$TMP/err" &
  RELAY=$!
  for _ in $(seq 100); do grep -q '^Listening' "$TMP/out" && break; sleep 0.1; done
  grep -q '^Listening' "$TMP/out" || { tail -5 "$TMP/err" >&2; exit 1; }
  HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/out")
  sleep 1
  scrape "$TMP/m0"
  t0=$(date +%s.%N)
  # held long enough for the wait below; killed once measured
  $B/wtbench --url "https://127.0.0.1:$PORT/idle" --cert-hash "$HASH" --sessions "$n" \
    --pattern idle --heartbeat "$HB" --duration 600 >"$TMP/bench" 2>&1 &
  BENCH=$!
  while :; do
    s=$(curl -fsS "http://127.0.0.1:$OPS/metrics" | awk '$1 == "wtrelay_sessions" {print $2}')
    [ "${s:-0}" -ge "$n" ] && break
    kill -0 "$BENCH" 2>/dev/null || { cat "$TMP/bench" >&2; exit 1; }
    sleep 0.5
  done
  setup=$(echo "$(date +%s.%N) - $t0" | bc -l)
  sleep $((HB * 3)) # three heartbeats each
  scrape "$TMP/m1"
  kill -KILL "$BENCH" 2>/dev/null || true
  wait "$BENCH" 2>/dev/null || true
  BENCH=""
  kill -TERM "$RELAY"
  wait "$RELAY" || true
  RELAY=""
  python3 - "$n" "$TMP/m0" "$TMP/m1" "$setup" <<'PY'
import sys
n = int(sys.argv[1])
def load(p):
    d = {}
    for l in open(p):
        if l.startswith("#") or not l.strip():
            continue
        k, v = l.rsplit(None, 1)
        d[k] = float(v)
    return d
a, b = load(sys.argv[2]), load(sys.argv[3])
per = lambda k: (b.get(k, 0) - a.get(k, 0)) / n
ng = per('wtrelay_memory_bytes{owner="ngtcp2"}')
nh = per('wtrelay_memory_bytes{owner="nghttp3"}')
rl = per('wtrelay_memory_bytes{owner="relay"}')
rb = per('wtrelay_memory_bytes{owner="relay_buffers"}')
slots = per('wtrelay_memory_page_slot_bytes{owner="ngtcp2"}')
slots_rss = per("slots_rss_kib") * 1024
heap = per("wtrelay_heap_bytes")
rss = per("rss_kib") * 1024
rest = heap - (ng - slots) - nh - rb
k = lambda x: "%8.1fK" % (x / 1024)
print("%8d %s %s %s %s %s %s %s %s %8.1f" % (n, k(ng), k(slots_rss), k(nh), k(rl + rb), k(rest), k(heap), k(rss),
                                             k(rss - heap - slots_rss), float(sys.argv[4])))
PY
done
echo "(KiB per session; ngtcp2 = bytes it asked for; ng.slots = resident pages of ngtcp2's page slots (blocks over a"
echo " page, outside the heap); relay = our structs + buffers; rest = GnuTLS, ngtcp2's crypto glue, malloc overhead;"
echo " heap = malloc'd bytes (not the slots); other = RSS - heap - ng.slots: our tables' touched pages, allocator slack)"
