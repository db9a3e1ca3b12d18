#!/usr/bin/env bash
# What the packet capture hook costs the frame path (docs/perf.md, "Packet
# capture cost"). Three relays, A/B in alternating order, a fresh relay per
# run, the unicast benchmark of bench-switch.sh (wtbench, 2 sessions, one
# pair, at the maximum rate) on one worker (no placement noise):
#   hook      build/wtrelay as it is (the hook reads one atomic per frame);
#   no hook   the same tree built with -DWTRELAY_BENCH_NO_CAPTURE_TAP in
#             build-nocapture/ (capture_wanted is constant false, the
#             compiler drops the hook from the frame path);
#   other     build/wtrelay while a capture of another room (/other, two
#             idle sessions) streams from the ops listener for the whole run.
# Every configuration has the /other sessions, so they differ only in the
# hook and the capture. Prints per configuration the medians of delivered
# frames/s and of the relay's worker CPU per delivered frame, and the
# ratios to "hook" taken within one repetition (median and each run).
# Not part of make test. Usage (after `make`):
#   perf/bench-capture.sh [RUNS] [DURATION_S] [SIZES]
# (defaults 9, 5, "1000 100"); wrap in flock /tmp/wtrelay-bench.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-9}
DUR=${2:-5}
SIZES=${3:-1000 100}
B=build
NB=build-nocapture
TMP=$(mktemp -d)
RELAY="" IDLE="" CAP=""
cleanup() {
  for p in $CAP $IDLE $RELAY; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

# both relays from the tree as it is now
cmake --build "$B" --target wtrelay wtbench -j"$(nproc)" >/dev/null
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$B/CMakeCache.txt")
cmake -S . -B "$NB" -DCMAKE_BUILD_TYPE="${build_type:-RelWithDebInfo}" -DBUILD_TESTING=OFF \
  -DCMAKE_C_FLAGS=-DWTRELAY_BENCH_NO_CAPTURE_TAP >/dev/null
cmake --build "$NB" --target wtrelay -j"$(nproc)" >/dev/null

free_port() { # udp|tcp
  python3 -c 'import socket, sys; t = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, t); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"
}

relay_start() { # binary
  PORT=$(free_port udp)
  OPS=$(free_port tcp)
  "$1" --bind 127.0.0.1 --port "$PORT" --http-listen "127.0.0.1:$OPS" --log-level info \
    --workers 1 --flood-rate 0 >"$TMP/out" 2>"$TMP/err" &
  RELAY=$!
  for _ in $(seq 100); do grep -q '^Listening' "$TMP/out" && break; sleep 0.1; done
  grep -q '^Listening' "$TMP/out" || { tail -5 "$TMP/err" >&2; return 1; }
  HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/out")
}

stop() { # pid variable names...
  for v in "$@"; do
    [ -n "${!v}" ] || continue
    kill -TERM "${!v}" 2>/dev/null || true
    wait "${!v}" 2>/dev/null || true
    printf -v "$v" '%s' ""
  done
}

run_one() { # config, size, rep
  local cfg=$1 size=$2 rep=$3 bin=$B/wtrelay
  [ "$cfg" = nohook ] && bin=$NB/wtrelay
  relay_start "$bin" || return 1
  $B/wtbench --url "https://127.0.0.1:$PORT/other" --cert-hash "$HASH" --sessions 2 \
    --pattern idle --duration $((DUR + 30)) >/dev/null 2>&1 &
  IDLE=$!
  # the room exists once its session registered (a capture names a room)
  local ok=0
  for _ in $(seq 100); do
    python3 -c 'import json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1], timeout=2))
sys.exit(0 if any(r["name"] == "/other" for r in s["rooms"]) else 1)' "http://127.0.0.1:$OPS/status" 2>/dev/null && { ok=1; break; }
    sleep 0.1
  done
  if [ "$ok" = 0 ]; then
    echo "the /other sessions did not register" >&2
    stop IDLE RELAY
    return 1
  fi
  if [ "$cfg" = other ]; then
    python3 -c 'import sys, urllib.request
r = urllib.request.urlopen(sys.argv[1], timeout=60)
n = 0
while True:
    b = r.read(65536)
    if not b:
        break
    n += len(b)
print(n)' "http://127.0.0.1:$OPS/rooms/%2Fother/pcap?seconds=$((DUR + 25))" >"$TMP/cap" 2>&1 &
    CAP=$!
    for _ in $(seq 50); do
      curl -s "http://127.0.0.1:$OPS/metrics" | grep -q '^wtrelay_capture.*started.* [1-9]' && break
      sleep 0.1
    done
  fi
  $B/wtbench --url "https://127.0.0.1:$PORT/bench" --cert-hash "$HASH" --duration "$DUR" \
    --relay-pid "$RELAY" --sessions 2 --size "$size" | tail -1 >"$TMP/json"
  if [ "$cfg" = other ] && ! kill -0 "$CAP" 2>/dev/null; then
    echo "the capture of /other ended before the run did: $(cat "$TMP/cap")" >&2
    stop CAP IDLE RELAY
    return 1
  fi
  stop CAP IDLE RELAY
  grep -q '^{' "$TMP/json" || return 1
  python3 - "$cfg" "$size" "$rep" "$TMP/json" >>"$TMP/rows" <<'PY'
import json, sys
r = json.load(open(sys.argv[4]))
r.update(cfg=sys.argv[1], size=int(sys.argv[2]), rep=int(sys.argv[3]))
print(json.dumps(r))
PY
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
echo "unicast pair at the maximum rate, 1 worker, $RUNS repetitions of ${DUR}s, configurations in rotating order"
: >"$TMP/rows"
CFGS=(hook nohook other)
for rep in $(seq "$RUNS"); do
  for size in $SIZES; do
    for k in 0 1 2; do
      cfg=${CFGS[$(((rep + k) % 3))]}
      run_one "$cfg" "$size" "$rep" || run_one "$cfg" "$size" "$rep" ||
        echo "no result: $cfg $size B rep $rep" >&2
    done
  done
done
python3 - "$TMP/rows" <<'PY'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = {"hook": "hook (build/wtrelay)", "nohook": "no hook (compiled out)",
         "other": "hook, another room captured"}
for size in sorted({r["size"] for r in rows}, reverse=True):
    rs = [r for r in rows if r["size"] == size]
    print("== %d-byte frames" % size)
    print("%-30s %12s %12s %14s %8s" % ("configuration", "delivered/s", "relay cpu", "us/frame", "p50"))
    for c in ("hook", "nohook", "other"):
        x = [r for r in rs if r["cfg"] == c]
        if not x:
            continue
        med = lambda k: st.median(r[k] for r in x)
        print("%-30s %12.0f %11.1f%% %14.3f %6.0fus" % (names[c], med("delivered_fps"), med("relay_workers_cpu_pct"),
              med("relay_us_per_frame"), med("lat_p50_us")))
    by = {(r["cfg"], r["rep"]): r for r in rs}
    for c in ("nohook", "other"):
        for key, label in (("relay_us_per_frame", "relay CPU per frame"), ("delivered_fps", "delivered frames/s")):
            q = [by[(c, i)][key] / by[("hook", i)][key] for i in sorted({r["rep"] for r in rs})
                 if (c, i) in by and ("hook", i) in by and by[("hook", i)][key] > 0]
            if q:
                print("  %s / hook, %s: median %.3f (runs: %s)" % (names[c], label, st.median(q),
                      " ".join("%.2f" % v for v in q)))
PY
