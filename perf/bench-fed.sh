#!/usr/bin/env bash
# Federation benchmark for docs/perf.md (issue 16): one pair of sessions
# exchanging 1000-byte frames, on one relay and across two relays federated
# through one local nats-server, in the same run. Not part of make test.
# Usage (after `make`):
#   perf/bench-fed.sh [RUNS] [DURATION_S]
# Each of RUNS repetitions (default 5) starts a fresh nats-server (Debian's,
# JetStream on in a temp dir, as in production) and two relays in one room
# (--nats, --relay-id bench-a/bench-b, each its own part of the pool, one
# worker each: WORKERS=N to change), then runs build/wtbench for every load
# (the maximum rate, then RATES, default "2000 10000 40000" frames/s in all) in
# both configurations, their order alternating from one repetition to the
# next:
#   one     both sessions on relay A; the client is the same as across
#           (two endpoints, --url2 = --url), only the relay differs;
#   across  session 2k on relay A, 2k+1 on relay B (--url2): every frame
#           goes A -> NATS -> B or back.
# Figures per run: frames/s delivered, loss, one-way latency p50/p99, the
# relays' CPU per delivered frame (every thread of the relay processes, so
# the federation's publisher and libnats threads count: summed over A and
# B across, A alone for one), nats-server's CPU per frame apart, and the
# frames the relays' federation dropped (wtrelay_fed_dropped_total, from
# /metrics before and after). Printed: medians over the repetitions, and
# the ratios across/one (and the added latency, across - one) taken within
# each repetition, then their median; last, a Markdown table to paste.
# relay, nats-server and wtbench share the machine's cores, as the rates
# then do; CPU per frame is the figure that holds. KEEP_ROWS=file keeps the
# raw rows (one JSON line per run); RELAY_BIN=path runs another build of
# the relay (a before/after).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
DUR=${2:-3}
RATES=${RATES:-"2000 10000 40000"}
WORKERS=${WORKERS:-1}
NATS_BIN=${NATS_BIN:-nats-server}
B=build
TMP=$(mktemp -d)
PIDS=()

stop_all() { # every process this script started, by its pid
  local p
  for p in "${PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
}
trap 'stop_all; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

command -v "$NATS_BIN" >/dev/null || {
  echo "nats-server missing (Debian: apt-get install nats-server)" >&2
  exit 1
}
if [ ! -x "${RELAY_BIN:-$B/wtrelay}" ] || [ ! -x $B/wtbench ]; then
  echo "build/wtrelay and build/wtbench missing: run make first" >&2
  exit 1
fi

free_port() { # udp|tcp
  python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"
}

nats_start() { # sets NATS_PID, NATS_URL
  local port
  port=$(free_port tcp)
  rm -rf "$TMP/js"
  "$NATS_BIN" -js -sd "$TMP/js" -a 127.0.0.1 -p "$port" >"$TMP/nats.log" 2>&1 &
  NATS_PID=$!
  PIDS+=("$NATS_PID")
  NATS_URL="nats://127.0.0.1:$port"
  for _ in $(seq 100); do
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' \
      "$port" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nats-server did not listen on $port:" >&2
  tail -5 "$TMP/nats.log" >&2
  exit 1
}

relay_start() { # name, pool first, pool last; sets R_PID, R_PORT, R_HASH, R_OPS
  local n=$1 port ops pid
  port=$(free_port udp)
  ops=$(free_port tcp)
  ${RELAY_BIN:-$B/wtrelay} --bind 127.0.0.1 --port "$port" --http-listen "127.0.0.1:$ops" --log-level info \
    --workers "$WORKERS" --flood-rate 0 --max-sessions 1000 --max-sessions-per-ip 1000 \
    --max-client-sessions-per-room 1000 --max-client-addrs-per-room 65536 --lease-time 1 \
    --nats "$NATS_URL" --relay-id "bench-$n" --pool-first "$2" --pool-last "$3" \
    >"$TMP/$n.out" 2>"$TMP/$n.err" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do grep -q '^Listening' "$TMP/$n.out" && break; sleep 0.1; done
  if ! grep -q '^Listening' "$TMP/$n.out"; then
    echo "relay $n did not start:" >&2
    tail -5 "$TMP/$n.err" >&2
    exit 1
  fi
  R_PID=$pid R_PORT=$port R_OPS=$ops
  R_HASH=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/$n.out")
}

# Drops so far: the relays' federation (wtrelay_fed_dropped_total) and
# frame path (wtrelay_frames_dropped_total), summed over A and B, and the
# machine's UDP receive errors (/proc/net/snmp InErrors: full socket
# buffers; every process's, the run's own in practice).
drops() {
  python3 - "$OPS_a" "$OPS_b" <<'PY'
import re, sys, urllib.request
fed = frames = 0
for port in sys.argv[1:]:
    try:
        text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5).read().decode()
    except OSError:
        continue
    for l in text.splitlines():
        m = re.match(r'wtrelay_(fed|frames)_dropped_total\{[^}]*\} (\d+)', l)
        if m and m.group(1) == "fed":
            fed += int(m.group(2))
        elif m:
            frames += int(m.group(2))
udp = [l.split() for l in open("/proc/net/snmp") if l.startswith("Udp:")]
print(fed, frames, int(udp[1][udp[0].index("InErrors")]))
PY
}

run_one() { # rep, config (one|across), rate (0 = max)
  local rep=$1 cfg=$2 rate=$3 d0 d1 try
  local args=(--url "https://127.0.0.1:$PORT_a/bench" --cert-hash "$HASH_a" --relay-pid "$PID_a"
    --broker-pid "$NATS_PID" --duration "$DUR" --sessions 2 --size 1000 --rate "$rate")
  if [ "$cfg" = across ]; then
    args+=(--url2 "https://127.0.0.1:$PORT_b/bench" --cert-hash2 "$HASH_b" --relay-pid2 "$PID_b")
  else
    args+=(--url2 "https://127.0.0.1:$PORT_a/bench")
  fi
  for try in 1 2; do # once more when wtbench gave no result
    d0=$(drops)
    $B/wtbench "${args[@]}" >"$TMP/wtbench.out" 2>"$TMP/wtbench.err" || true
    d1=$(drops)
    if grep -q '^{' "$TMP/wtbench.out"; then
      python3 - "$TMP/wtbench.out" "$rep" "$cfg" "$d0" "$d1" >>"$TMP/rows" <<'PY'
import json, sys
row = json.loads([l for l in open(sys.argv[1]) if l.startswith("{")][-1])
d = [int(b) - int(a) for a, b in zip(sys.argv[4].split(), sys.argv[5].split())]
row.update(rep=int(sys.argv[2]), config=sys.argv[3], fed_dropped=d[0], relay_dropped=d[1],
           udp_dropped=d[2])
print(json.dumps(row))
PY
      return 0
    fi
    echo "no result (rep $rep, $cfg, rate $rate, try $try):" >&2
    tail -3 "$TMP/wtbench.err" >&2
  done
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "nats-server $("$NATS_BIN" --version 2>&1 | sed 's/^nats-server: //'), relays with --workers $WORKERS"
echo "federation: one pair of 1000-byte frames, $RUNS repetitions of ${DUR}s per load and configuration"
: >"$TMP/rows"
for rep in $(seq "$RUNS"); do
  nats_start
  relay_start a 10.0.2.10 10.0.2.127
  PID_a=$R_PID PORT_a=$R_PORT OPS_a=$R_OPS HASH_a=$R_HASH
  relay_start b 10.0.2.128 10.0.2.254
  PID_b=$R_PID PORT_b=$R_PORT OPS_b=$R_OPS HASH_b=$R_HASH
  cfgs="one across"
  [ $((rep % 2)) = 0 ] && cfgs="across one"
  for rate in 0 $RATES; do
    for cfg in $cfgs; do
      run_one "$rep" "$cfg" "$rate"
    done
  done
  stop_all
  echo "repetition $rep done" >&2
done
[ -z "${KEEP_ROWS:-}" ] || cp "$TMP/rows" "$KEEP_ROWS"

python3 - "$TMP/rows" "$RATES" <<'PY'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
loads = [0] + [float(r) for r in sys.argv[2].split()]
reps = sorted({r["rep"] for r in rows})
def of(rate, cfg, rep=None):
    return [r for r in rows if r["rate"] == rate and r["config"] == cfg and (rep is None or r["rep"] == rep)]
def med(xs):
    xs = list(xs)
    return st.median(xs) if xs else float("nan")
def lname(rate):
    return "maximum" if rate == 0 else "%.0f/s" % rate
def drop_pct(r, k="fed_dropped"):
    return 100.0 * r[k] / max(r["sent"], 1)
md = []
md.append("| load | relays | delivered frames/s | loss | p50 | p99 | relay CPU/frame | of it workers | nats-server CPU/frame | fed drops |")
md.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
ratio_md = []
ratio_md.append("| load | delivered across/one | p50 across/one | p99 across/one | added p50 | added p99 | relay CPU/frame across/one |")
ratio_md.append("|---|---:|---:|---:|---:|---:|---:|")
for rate in loads:
    print("== %s (%d runs per configuration)" % (
        "maximum rate" if rate == 0 else "%.0f frames/s offered" % rate, len(of(rate, "one"))))
    for cfg, label in (("one", "one relay"), ("across", "across two relays")):
        rs = of(rate, cfg)
        if not rs:
            continue
        m = lambda k: med(r[k] for r in rs)
        print("  %-18s delivered %8.0f/s loss %6.2f%% p50 %7.0fus p99 %7.0fus relays %6.1f%% cpu %6.2f us/frame"
              " (workers %5.2f) nats-server %5.1f%% %5.2f us/frame; dropped (%% of sent): fed %.2f%%,"
              " relay frame path %.2f%%, UDP receive %.2f%%" % (
              label, m("delivered_fps"), m("loss_pct"), m("lat_p50_us"), m("lat_p99_us"), m("relay_cpu_pct"),
              m("relay_proc_us_per_frame"), m("relay_us_per_frame"), m("broker_cpu_pct"),
              m("broker_us_per_frame"), med(drop_pct(r) for r in rs),
              med(drop_pct(r, "relay_dropped") for r in rs), med(drop_pct(r, "udp_dropped") for r in rs)))
        md.append("| %s | %s | %.0f | %.2f %% | %.0f µs | %.0f µs | %.2f µs | %.2f µs | %.2f µs | %.2f %% |" % (
            lname(rate), "one" if cfg == "one" else "two (NATS)", m("delivered_fps"), m("loss_pct"),
            m("lat_p50_us"), m("lat_p99_us"), m("relay_proc_us_per_frame"), m("relay_us_per_frame"),
            m("broker_us_per_frame"), med(drop_pct(r) for r in rs)))
    q = {k: [] for k in ("fps", "p50", "p99", "d50", "d99", "cpu")}
    for rep in reps:
        a, b = of(rate, "one", rep), of(rate, "across", rep)
        if not a or not b:
            continue
        a, b = a[0], b[0]
        if a["delivered_fps"] > 0:
            q["fps"].append(b["delivered_fps"] / a["delivered_fps"])
        if a["lat_p50_us"] > 0 and a["lat_p99_us"] > 0:
            q["p50"].append(b["lat_p50_us"] / a["lat_p50_us"])
            q["p99"].append(b["lat_p99_us"] / a["lat_p99_us"])
        q["d50"].append(b["lat_p50_us"] - a["lat_p50_us"])
        q["d99"].append(b["lat_p99_us"] - a["lat_p99_us"])
        if a["relay_proc_us_per_frame"] > 0:
            q["cpu"].append(b["relay_proc_us_per_frame"] / a["relay_proc_us_per_frame"])
    runs = lambda k, f: " ".join(f % x for x in q[k])
    print("  across / one, median of the per-repetition ratios: delivered %.2f (%s), p50 %.1f (%s), p99 %.1f (%s),"
          " relay CPU per frame %.2f (%s)" % (med(q["fps"]), runs("fps", "%.2f"), med(q["p50"]), runs("p50", "%.1f"),
          med(q["p99"]), runs("p99", "%.1f"), med(q["cpu"]), runs("cpu", "%.2f")))
    print("  added latency (across - one): p50 %.0f us (%s), p99 %.0f us (%s)" % (
          med(q["d50"]), runs("d50", "%.0f"), med(q["d99"]), runs("d99", "%.0f")))
    ratio_md.append("| %s | %.2f | %.1f | %.1f | %.0f µs | %.0f µs | %.2f |" % (
        lname(rate), med(q["fps"]), med(q["p50"]), med(q["p99"]), med(q["d50"]), med(q["d99"]), med(q["cpu"])))
print()
print("\n".join(md))
print()
print("\n".join(ratio_md))
PY
