#!/usr/bin/env bash
# Frame-path benchmark for docs/perf.md. For each configuration it starts a
# fresh build/wtrelay on a free loopback port, runs build/wtbench RUNS times
# (medians are printed), then stops the relay and reads its own io counters
# (datagrams per recvmsg, packets per sendmsg) from its counters at exit
# (the one debug line, every counter summed over the workers).
# Not part of make test. Usage (after `make`):
#   perf/bench-switch.sh [RUNS] [DURATION_S]
#   perf/bench-switch.sh --workers [RUNS] [DURATION_S] [PAIRS]
# --workers: the worker benchmarks of issue 15 instead (see workers_bench
# below): PAIRS unicast pairs (default 2) of 1000-byte frames at the
# maximum rate, on a relay with 1 worker, with 2 workers and every pair on
# one worker (pair k on worker k mod 2), and with 2 workers and every pair
# split over both (every frame crosses a worker ring); RUNS repetitions
# (default 5) of the three, each on a fresh relay, medians of each figure
# and of the ratios taken within one repetition. Two loads: the maximum
# (as fast as the client's QUIC connections take frames) and a fixed rate
# the relay carries without loss (RATE, default 40000 frames/s in all),
# with one more configuration there: 1 worker at RATE / 2, the load each of
# 2 workers carries at RATE (batching depends on the load per worker).
# Then the flood fan-out: a 10-session room whose sessions all sit on
# worker 0 of 2, 2000 broadcasts/s of 500 bytes: ring copies toward the
# idle worker, its no_room drops and its CPU (RELAY_BIN=path runs another
# build of the relay for a before/after).
# Both modes first run build/limitprobe (perf/limitprobe.c: AES-128-GCM seal
# + open through GnuTLS and a bare io_uring GRO/GSO forwarder, 1200-byte
# datagrams) and print its limit, frames/s per core for a relay that must
# open, seal and forward each frame; every 1000-byte unicast figure per
# relay core is then also printed as a fraction of that limit.
#   perf/bench-switch.sh --curve [RUNS] [DURATION_S]
# --curve: CPU versus load (see curve_bench below).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=switch
if [ "${1:-}" = "--workers" ] || [ "${1:-}" = "--curve" ]; then
  MODE=${1#--}
  shift
fi
RUNS=${1:-3}
[ "$MODE" = workers ] && RUNS=${1:-5}
DUR=${2:-5}
B=build
TMP=$(mktemp -d)
RELAY=""
trap '[ -n "$RELAY" ] && kill $RELAY 2>/dev/null; rm -rf "$TMP"' EXIT

limit_probe() { # prints the probe's lines; sets LIMIT (frames/s per core)
  $B/limitprobe >"$TMP/probe"
  sed '$d' "$TMP/probe"
  LIMIT=$(tail -1 "$TMP/probe" | python3 -c 'import json, sys; print(json.load(sys.stdin)["limit_per_core"])')
}

relay_start() { # [extra relay flags...]
  PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ${RELAY_BIN:-$B/wtrelay} --bind 127.0.0.1 --port "$PORT" --http-listen "" --log-level debug --max-sessions 10500 \
    --max-sessions-per-ip 10500 --max-client-sessions-per-room 10500 \
    --max-client-addrs-per-room 65536 --flood-rate 0 "$@" >"$TMP/out" 2>"$TMP/err" &
  RELAY=$!
  for _ in $(seq 100); do grep -q '^Listening' "$TMP/out" && break; sleep 0.1; done
  if ! grep -q '^Listening' "$TMP/out"; then
    echo "relay did not start:" >&2
    tail -5 "$TMP/err" >&2
    exit 1
  fi
  HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/out")
}
relay_stop() { # prints the relay's batching
  kill -TERM "$RELAY"
  wait "$RELAY" || true
  RELAY=""
  python3 - "$TMP/err" <<'PY'
import re, sys
line = [l for l in open(sys.argv[1]) if 'msg="counters at exit"' in l][-1]
kv = dict(re.findall(r"(\w+)=(\d+)", line))
g = lambda k: int(kv.get("io_" + k, 0))
print("    relay batching: %.2f datagrams/recvmsg, %.2f packets/sendmsg (%d GSO sendmsg of %d)" % (
    g("rx_datagrams") / max(g("rx_completions"), 1), g("tx_packets") / max(g("tx_msgs"), 1),
    g("tx_gso_msgs"), g("tx_msgs")))
PY
}
bench() { # label, wtbench args... ; sets MEDIAN_FPS
  local label=$1; shift
  for _ in $(seq "$RUNS"); do
    $B/wtbench --url "https://127.0.0.1:$PORT/bench" --cert-hash "$HASH" --duration "$DUR" \
      --relay-pid "$RELAY" "$@" | tail -1
  done >"$TMP/runs"
  MEDIAN_FPS=$(python3 - "$label" "$TMP/runs" "$LIMIT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
m = lambda k: statistics.median(r[k] for r in rows)
cpu = m("relay_cpu_pct")
per_core = m("delivered_fps") / (cpu / 100) if cpu > 0 else 0
print("%-34s offered %8.0f/s delivered %8.0f/s (%8.0f/s per relay core) loss %5.2f%%"
      " p50 %6.0fus p99 %6.0fus relay cpu %5.1f%% rss %7.0f KiB client %.1f dg/recvmsg %.1f pkt/sendmsg" % (
    sys.argv[1], m("offered_fps"), m("delivered_fps"), per_core, m("loss_pct"), m("lat_p50_us"),
    m("lat_p99_us"), cpu, m("relay_rss_kb"), m("client_rx_per_recvmsg"), m("client_tx_per_sendmsg")),
    file=sys.stderr)
if "1000 B" in sys.argv[1] and not "broadcast" in sys.argv[1]: # a frame in once, out once
    print("%-34s per relay core = %.1f %% of the limit probe's %.0f/s" % (
        "", 100 * per_core / float(sys.argv[3]), float(sys.argv[3])), file=sys.stderr)
print(int(m("delivered_fps")))
PY
)
}

# One row per (repetition, configuration) in $TMP/rows: wtbench's JSON line
# plus the relay's io counters (summed over its workers) from its counters at exit.
workers_run() { # rep, workers, placement, rate (0 = max) [wtbench args...]
  # once more on a fresh relay when wtbench gave no result (a port another
  # program took between our pick and the bind, a placement that failed)
  workers_try "$@" || workers_try "$@" || echo "no result: workers=$2 placement=$3 rate=$4" >&2
}

workers_try() {
  local rep=$1 w=$2 place=$3 rate=$4 ops
  shift 4
  ops=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  relay_start --workers "$w" --worker-ring-slots 1024 --http-listen "127.0.0.1:$ops"
  $B/wtbench --url "https://127.0.0.1:$PORT/bench" --cert-hash "$HASH" --duration "$DUR" \
    --relay-pid "$RELAY" --sessions $((2 * PAIRS)) --size 1000 --rate "$rate" \
    --workers "$w" --placement "$place" "$@" | tail -1 >"$TMP/json"
  sleep 0.2 # the workers publish their counters every 100 ms
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$ops/metrics" >"$TMP/metrics" || : >"$TMP/metrics"
  kill -TERM "$RELAY"
  wait "$RELAY" || true
  RELAY=""
  grep -q '^{' "$TMP/json" || return 1
  python3 - "$rep" "$TMP/json" "$TMP/err" "$TMP/metrics" >>"$TMP/rows" <<'PY'
import json, re, sys
row = json.loads(open(sys.argv[2]).read())
row["rep"] = int(sys.argv[1])
io = {}
row["relay_frames_in"] = row["relay_out_failed"] = 0
for l in open(sys.argv[3]):
    kv = dict(re.findall(r"(\w+)=(\d+)", l))
    if 'msg="counters at exit"' in l:
        # the process's sum over its workers (workers=N)
        io[-1] = {k[3:]: int(v) for k, v in kv.items() if k.startswith("io_")}
        row["relay_frames_in"] = int(kv.get("frame_frames_in", 0))
        row["relay_out_failed"] = int(kv.get("frame_out_failed", 0))
row["io"] = [io[k] for k in sorted(io) if k >= 0] or [io[k] for k in sorted(io)]
ring = dict(pushed=0, dropped=0, no_room=0)
for l in open(sys.argv[4]):
    m = re.match(r'wtrelay_worker_ring_frames(_dropped)?_total\{worker="\d+",(dir|reason)="(out|push_failed|no_room)"\} (\d+)', l)
    if m:
        ring[{"out": "pushed", "push_failed": "dropped"}.get(m.group(3), m.group(3))] += int(m.group(4))
row["ring_no_room"] = ring["no_room"]
row["ring_pushed"], row["ring_dropped"] = ring["pushed"], ring["dropped"]
print(json.dumps(row))
PY
}

workers_bench() {
  PAIRS=${PAIRS:-2}
  echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
  echo "workers: $PAIRS pairs of 1000-byte frames, $RUNS repetitions of ${DUR}s, at the maximum rate and at $RATE/s;"
  echo "relay and wtbench (one thread) share the machine's cores: the relay's work per frame"
  echo "(CPU of its worker threads / delivered frames) is the robust figure; us/in: the same per"
  echo "frame the relay took in; shed: frames it dropped at a receiver's full queue or a full worker"
  echo "ring (relay counters; ring: of which at a full worker ring); limit: per core as a"
  echo "fraction of the limit probe's frames/s per core (below)"
  limit_probe
  : >"$TMP/rows"
  for rep in $(seq "$RUNS"); do
    for rate in 0 "$RATE"; do
      workers_run "$rep" 1 same "$rate"
      workers_run "$rep" 2 same "$rate"
      workers_run "$rep" 2 cross "$rate"
    done
    workers_run "$rep" 1 same $((RATE / 2))
    workers_run "$rep" 2 one 2000 --pattern broadcast --sessions 10 --size 500
  done
  for rate in 0 "$RATE"; do
    [ "$rate" = 0 ] && echo "== maximum rate" || echo "== $rate frames/s offered"
    workers_summary "$rate" "$LIMIT"
  done
  python3 - "$TMP/rows" <<'PY'
import json, statistics as st, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
rs = [r for r in rs if r["placement"] == "one"]
if rs:
    med = lambda f: st.median(f(r) for r in rs)
    print("== flood fan-out: a 10-session room on worker 0 of 2, 2000 broadcasts/s of 500 B")
    print("delivered %.0f/s, worker 0 %.1f%%, worker 1 (idle) %.1f%% of a core; ring copies %.0f, no_room drops %.0f (per run of %gs)" % (
        med(lambda r: r["delivered_fps"]), med(lambda r: r["relay_worker_cpu_pct"][0]),
        med(lambda r: r["relay_worker_cpu_pct"][1]), med(lambda r: r["ring_pushed"]),
        med(lambda r: r["ring_no_room"]), med(lambda r: r["duration_s"])))
PY
  [ -z "${KEEP_ROWS:-}" ] || cp "$TMP/rows" "$KEEP_ROWS"
}

workers_summary() { # rate, limit probe's frames/s per core
  python3 - "$TMP/rows" "$1" "$2" <<'PY'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rate = float(sys.argv[2])
limit = float(sys.argv[3])
half = [r for r in rows if rate and r["rate"] == rate // 2 and r["workers"] == 1]
for r in half:
    r["placement"] = "half"
rows = [r for r in rows if r["rate"] == rate] + half
cfgs = [(1, "same", "1 worker"), (2, "same", "2 workers, pairs on one worker"),
        (2, "cross", "2 workers, pairs across workers"),
        (1, "half", "1 worker at half the rate")]
def of(w, p): return [r for r in rows if r["workers"] == w and r["placement"] == p]
def per_core(r): return r["delivered_fps"] / (r["relay_workers_cpu_pct"] / 100) if r["relay_workers_cpu_pct"] > 0 else 0
def us_in(r): # relay CPU per frame it took in (delivered or shed)
    return r["relay_workers_cpu_pct"] / 100 * r["duration_s"] * 1e6 / max(r["relay_frames_in"], 1)
def shed(r): return 100.0 * (r["relay_out_failed"] + r["ring_dropped"]) / max(r["relay_frames_in"], 1)
def ringd(r): return 100.0 * r["ring_dropped"] / max(r["relay_frames_in"], 1)
print("%-32s %10s %10s %12s %6s %9s %9s %6s %6s %7s %6s  %s" % ("configuration", "delivered", "relay cpu",
      "per core", "limit", "us/frame", "us/in", "shed", "ring", "loss", "p50", "per worker: cpu %, dgrams/recvmsg, pkts/sendmsg"))
for w, p, label in cfgs:
    rs = of(w, p)
    if not rs:
        continue
    med = lambda f: st.median(f(r) for r in rs)
    per_w = []
    for i in range(min(len(r["io"]) for r in rs)):
        cpu = st.median(r["relay_worker_cpu_pct"][i] if i < len(r["relay_worker_cpu_pct"]) else 0 for r in rs)
        rx = st.median(r["io"][i]["rx_datagrams"] / max(r["io"][i]["rx_completions"], 1) for r in rs)
        tx = st.median(r["io"][i]["tx_packets"] / max(r["io"][i]["tx_msgs"], 1) for r in rs)
        if len(rs[0]["io"]) != w: # the relay logged only the sum over its workers
            cpu = st.median(r["relay_workers_cpu_pct"] for r in rs)
        per_w.append("%s %.0f%% %.1f %.1f" % ("w%d" % i if len(rs[0]["io"]) == w else "all", cpu, rx, tx))
    print("%-32s %9.0f/s %9.1f%% %10.0f/s %5.1f%% %9.2f %9.2f %5.1f%% %5.1f%% %6.2f%% %4.0fus  %s" % (label, med(lambda r: r["delivered_fps"]),
          med(lambda r: r["relay_workers_cpu_pct"]), med(per_core), 100 * med(per_core) / limit,
          med(lambda r: r["relay_us_per_frame"]),
          med(us_in), med(shed), med(ringd), med(lambda r: r["loss_pct"]), med(lambda r: r["lat_p50_us"]), "; ".join(per_w)))
reps = sorted({r["rep"] for r in rows})
def one(rep, w, p):
    x = [r for r in of(w, p) if r["rep"] == rep]
    return x[0] if x else None
same_ratio, cross_ratio, cross_in, half_ratio = [], [], [], []
for rep in reps:
    a, b, c = one(rep, 1, "same"), one(rep, 2, "same"), one(rep, 2, "cross")
    if a and b and per_core(a) > 0:
        same_ratio.append(per_core(b) / per_core(a))
    h = one(rep, 1, "half")
    if h and b and per_core(h) > 0:
        half_ratio.append(per_core(b) / per_core(h))
    if b and c and b["relay_us_per_frame"] > 0:
        cross_ratio.append(c["relay_us_per_frame"] / b["relay_us_per_frame"])
        cross_in.append(us_in(c) / us_in(b))
if same_ratio:
    m = st.median(same_ratio)
    print("per-core rate, 2 workers (pairs on one worker) / 1 worker: median %.2f (runs: %s) target >= 0.90: %s" % (
        m, " ".join("%.2f" % x for x in same_ratio), "met" if m >= 0.9 else "MISSED"))
if half_ratio:
    print("  the same at equal load per worker (2 workers at the rate / 1 worker at half of it): median %.2f (runs: %s)" % (
        st.median(half_ratio), " ".join("%.2f" % x for x in half_ratio)))
if cross_ratio:
    m = st.median(cross_ratio)
    print("relay CPU per frame, across workers / on one worker (2 workers): median %.2f (runs: %s) target <= 1.30: %s" % (
        m, " ".join("%.2f" % x for x in cross_ratio), "met" if m <= 1.3 else "MISSED"))
    print("  the same per frame taken in (delivered or shed at a receiver's queue): median %.2f (runs: %s)" % (
        st.median(cross_in), " ".join("%.2f" % x for x in cross_in)))
PY
}

# CPU versus load: a unicast pair of 1000-byte frames offered at FRACTIONS
# (percent, default "10 25 50 75 100") of the maximum rate, on relays with
# each of CURVE_FLAGS ('|'-separated relay flag sets, default one set: no
# extra flag; RELAY_BIN=path runs another build), a fresh relay with one
# worker per point. Each
# repetition first measures the maximum (rate 0) on the first flag set; every
# point of that repetition offers a fraction of it, so all flag sets see the
# same offered rates. Prints per flag set and fraction the medians of the
# relay's worker CPU per delivered frame, that figure over the same flag
# set's at the maximum in the same repetition, p50/p99 one-way latency, and
# the relay's datagrams per receive completion and waits on its ring per
# delivered frame (its wake-ups).
curve_run() { # rep, flags, fraction, rate
  relay_start --workers 1 $2
  $B/wtbench --url "https://127.0.0.1:$PORT/bench" --cert-hash "$HASH" --duration "$DUR" \
    --relay-pid "$RELAY" --sessions 2 --size 1000 --rate "$4" | tail -1 >"$TMP/json"
  kill -TERM "$RELAY"
  wait "$RELAY" || true
  RELAY=""
  grep -q '^{' "$TMP/json" || return 0
  python3 - "$1" "$2" "$3" "$TMP/json" "$TMP/err" >>"$TMP/rows" <<'PY'
import json, re, sys
row = json.loads(open(sys.argv[4]).read())
row.update(rep=int(sys.argv[1]), flags=sys.argv[2], frac=int(sys.argv[3]))
for l in open(sys.argv[5]):
    if 'msg="counters at exit"' in l:
        row["io"] = {k[3:]: int(v) for k, v in re.findall(r"(\w+)=(\d+)", l) if k.startswith("io_")}
print(json.dumps(row))
PY
}

curve_bench() {
  FRACTIONS=${FRACTIONS:-10 25 50 75 100}
  CURVE_FLAGS=${CURVE_FLAGS:- }
  IFS='|' read -r -a SETS <<<"$CURVE_FLAGS"
  echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
  echo "CPU versus load: unicast pair, 1000 B, $RUNS repetitions of ${DUR}s per point, medians"
  : >"$TMP/rows"
  for rep in $(seq "$RUNS"); do
    curve_run "$rep" "${SETS[0]}" 100 0
    MAX=$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(int(r[-1]["delivered_fps"]))' "$TMP/rows")
    for i in "${!SETS[@]}"; do
      [ "$i" = 0 ] || curve_run "$rep" "${SETS[$i]}" 100 0
      for f in $FRACTIONS; do
        [ "$f" = 100 ] || curve_run "$rep" "${SETS[$i]}" "$f" $((MAX * f / 100))
      done
    done
  done
  python3 - "$TMP/rows" <<'PY'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("%-24s %5s %10s %10s %9s %8s %8s %8s %9s %9s" % ("relay flags", "load", "offered", "delivered",
      "us/frame", "vs max", "p50 us", "p99 us", "dg/recv", "waits/fr"))
for flags in dict.fromkeys(r["flags"] for r in rows):
    mine = [r for r in rows if r["flags"] == flags]
    for frac in sorted({r["frac"] for r in mine}):
        rs = [r for r in mine if r["frac"] == frac]
        med = lambda f: st.median(f(r) for r in rs)
        ratios = []
        for r in rs:
            top = [m for m in mine if m["rep"] == r["rep"] and m["frac"] == 100]
            if top and top[0]["relay_us_per_frame"] > 0:
                ratios.append(r["relay_us_per_frame"] / top[0]["relay_us_per_frame"])
        io = lambda r, k: r.get("io", {}).get(k, 0)
        print("%-24s %4d%% %9.0f/s %9.0f/s %9.2f %8s %8.0f %8.0f %9.2f %9.2f" % (flags.strip() or "(defaults)", frac,
              med(lambda r: r["offered_fps"]), med(lambda r: r["delivered_fps"]),
              med(lambda r: r["relay_us_per_frame"]), "%.2f" % st.median(ratios) if ratios else "-",
              med(lambda r: r["lat_p50_us"]), med(lambda r: r["lat_p99_us"]),
              med(lambda r: io(r, "rx_datagrams") / max(io(r, "rx_completions"), 1)),
              med(lambda r: io(r, "waits") / max(r["delivered"], 1))))
PY
  [ -z "${KEEP_ROWS:-}" ] || cp "$TMP/rows" "$KEEP_ROWS"
}

if [ "$MODE" = curve ]; then
  curve_bench
  exit 0
fi

if [ "$MODE" = workers ]; then
  PAIRS=${3:-2}
  RATE=${RATE:-40000}
  workers_bench
  exit 0
fi

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
echo "relay and wtbench share the machine (loopback); medians of $RUNS runs of ${DUR}s"
limit_probe

relay_start; bench "unicast, 2 sessions, 1000 B, max" --sessions 2 --size 1000; MAX=$MEDIAN_FPS; relay_stop
relay_start; bench "unicast, 2 sessions, 1000 B, half max" --sessions 2 --size 1000 --rate $((MAX / 2)); relay_stop
relay_start; bench "unicast, 2 sessions, 100 B, max" --sessions 2 --size 100; relay_stop
relay_start; bench "unicast, 2 sessions, 1514 B chunked, max" --sessions 2 --size 1514; relay_stop
relay_start; bench "pairwise, 100 sessions, 1000 B, max" --sessions 100 --size 1000; relay_stop
relay_start; bench "broadcast, 50-port room, 500 B, max" --sessions 50 --pattern broadcast --size 500; relay_stop
relay_start; bench "echo RTT, 2 sessions, 100 B, 10k/s" --sessions 2 --pattern echo --size 100 --rate 10000; relay_stop
for n in 1000 10000; do
  # the room-creation limits a public relay has would stop wtbench's
  # sessions at 2048 (as in perf/idle-mem.sh)
  relay_start --room-rate 1000 --room-burst 64 --max-rooms-per-client 256
  $B/wtbench --url "https://127.0.0.1:$PORT/idle" --cert-hash "$HASH" --sessions $n --pattern idle \
    --duration 2 --relay-pid "$RELAY" | sed -n '2,3p'
  relay_stop
done
