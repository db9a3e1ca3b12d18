#!/usr/bin/env bash
# /metrics as operators use it: a relay with two workers, sessions in a
# room with a hostile name registered and exchanging heartbeats; promtool
# check metrics finds no problem (lint warnings included); the build and
# process families are there; the handshake, register and session-duration
# histograms count every session, summed over the workers, with cumulative
# buckets; the per-room gauge escapes the room name; no family keeps a
# catch-all event= label or a direction= label.
. "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null || fail "promtool missing (Debian package prometheus; scripts/install-deps.sh)"

OPS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
get_metrics() { # -> $TMP/metrics.txt
  python3 - "http://127.0.0.1:$OPS_PORT/metrics" >"$TMP/metrics.txt" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    sys.stdout.write(r.read().decode())
PY
}
metric() { # series -> value ("" when absent); ENVIRON: awk -v would unescape
  S="$1" awk 'index($0, ENVIRON["S"] " ") == 1 {print $2}' "$TMP/metrics.txt"
}
lint() {
  local rc=0
  promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool.out" 2>&1 || rc=$?
  [ "$rc" = 0 ] && [ ! -s "$TMP/promtool.out" ] || fail "promtool ($1, rc $rc): $(cat "$TMP/promtool.out")"
}

start_relay --workers 2 --http-listen "127.0.0.1:$OPS_PORT"
ROOM='we"ird\room'
N=4
# one client process (own UDP socket) per session: the kernel's hash
# spreads their Initials over the workers
CLS=()
for i in $(seq "$N"); do
  "$CLIENT" --url "$URL/$ROOM" --cert-hash "$HASH" --mac "52:54:00:00:10:0$i" --heartbeats 2 --hold 3 --tick 0.5 \
    --timeout 15 >"$TMP/client$i.out" 2>&1 &
  CLS+=($!)
  PIDS+=($!)
done
want_room='wtrelay_room_sessions{room="/we\"ird\\room"}'
for _ in $(seq 50); do
  get_metrics
  [ "$(metric "$want_room")" = "$N" ] && break
  sleep 0.1
done
[ "$(metric "$want_room")" = "$N" ] || fail "no $want_room $N: $(grep room_sessions "$TMP/metrics.txt")"
# the room gauge is read at once, the workers' counters reach /metrics in
# 100 ms snapshots: wait for those too
for _ in $(seq 50); do
  [ "$(metric wtrelay_quic_connections_accepted_total)" -ge "$N" ] 2>/dev/null &&
    [ "$(metric wtrelay_register_duration_seconds_count)" = "$N" ] && break
  sleep 0.1
  get_metrics
done
spread="$(metric 'wtrelay_worker_sessions{worker="0"}')+$(metric 'wtrelay_worker_sessions{worker="1"}')"
pass "wtrelay_room_sessions counts the room's $N sessions (workers: $spread), name escaped"

lint "$N live sessions"
pass "promtool check metrics: no problem with live sessions ($(grep -c '^# TYPE' "$TMP/metrics.txt") families)"

grep -qE '^wtrelay_build_info\{version="[^"]+",ngtcp2="[0-9][^"]*",nghttp3="[0-9][^"]*",gnutls="[0-9][^"]*",liburing="[0-9][^"]*"\} 1$' \
  "$TMP/metrics.txt" || fail "wtrelay_build_info: $(grep build_info "$TMP/metrics.txt")"
v=$(metric process_cpu_seconds_total)
python3 -c "import sys; assert float(sys.argv[1]) >= 0" "$v" 2>/dev/null || fail "process_cpu_seconds_total: '$v'"
for f in process_resident_memory_bytes process_open_fds process_start_time_seconds; do
  v=$(metric "$f")
  python3 -c "import sys; assert float(sys.argv[1]) > 0" "$v" 2>/dev/null || fail "$f: '$v'"
done
start=$(metric process_start_time_seconds)
python3 -c "import sys,time; assert abs(float(sys.argv[1]) - time.time()) < 120" "$start" ||
  fail "process_start_time_seconds $start is not about now"
pass "wtrelay_build_info and process_* present"

# No label that mixes meanings, one direction vocabulary.
bad=$(grep -vE '^#' "$TMP/metrics.txt" | grep -E '\{([^}]*,)?(event|direction)=' || true)
[ -z "$bad" ] || fail "catch-all labels left: $bad"
bad=$(grep -vE '^#' "$TMP/metrics.txt" | grep -oE 'dir="[^"]*"' | sort -u | grep -vE 'dir="(in|out)"' || true)
[ -z "$bad" ] || fail "dir values other than in/out: $bad"
[ "$(metric wtrelay_quic_connections_accepted_total)" -ge "$N" ] || fail "connections accepted"
pass "no event=/direction= labels; dir is in|out only"

# The dashboard (docs/grafana-wtrelay.json): valid JSON, every query
# parses (promtool check rules on them as recording rules), and every
# family it reads is one /metrics serves (federation's only with NATS).
SOURCE_DIR=${SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
python3 - "$SOURCE_DIR/docs/grafana-wtrelay.json" "$TMP/metrics.txt" >"$TMP/rules.yml" 2>"$TMP/dash.err" <<'PY' ||
import json, re, sys
d = json.load(open(sys.argv[1]))
served = {l.split()[2] for l in open(sys.argv[2]) if l.startswith("# TYPE ")}
exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
assert len(exprs) >= 20, "only %d queries" % len(exprs)
print("groups:\n- name: dashboard\n  rules:")
for i, e in enumerate(exprs):
    for m in re.findall(r"\b((?:wtrelay|process)_[a-z0-9_]+)", e):
        fam = re.sub(r"_bucket$", "", m)
        assert fam in served or re.match(r"wtrelay_(fed|nats)_", fam), "not served: " + m
    e = e.replace("$__rate_interval", "5m").replace("$instance", ".*")
    print("  - record: dashboard:q%d\n    expr: %s" % (i, json.dumps(e)))
PY
  fail "dashboard: $(cat "$TMP/dash.err")"
promtool check rules "$TMP/rules.yml" >"$TMP/rules.out" 2>&1 || fail "dashboard queries: $(cat "$TMP/rules.out")"
pass "docs/grafana-wtrelay.json: valid JSON, $(grep -c record: "$TMP/rules.yml") queries parse, all read served families"

# histogram: name -> checks cumulative buckets, +Inf = _count; prints _count
histogram() {
  python3 - "$1" "$TMP/metrics.txt" <<'PY'
import re, sys
name, path = sys.argv[1], sys.argv[2]
buckets, count = [], None
for l in open(path):
    m = re.match(re.escape(name) + r'_bucket\{le="([^"]+)"\} (\d+)$', l.strip())
    if m:
        buckets.append((float(m.group(1)), int(m.group(2))))
    if l.startswith(name + "_count "):
        count = int(l.split()[1])
assert buckets and count is not None, "no histogram " + name
les = [b[0] for b in buckets]
assert les == sorted(les) and les[-1] == float("inf"), les
vals = [b[1] for b in buckets]
assert vals == sorted(vals), "not cumulative: %s" % vals
assert vals[-1] == count, "+Inf %d != count %d" % (vals[-1], count)
print(count)
PY
}
reg=$(histogram wtrelay_register_duration_seconds) || fail "register histogram"
hs=$(histogram wtrelay_quic_handshake_duration_seconds) || fail "handshake histogram"
[ "$reg" = "$N" ] || fail "register histogram counted $reg, want $N"
[ "$hs" -ge "$N" ] || fail "handshake histogram counted $hs, want >= $N"
pass "handshake ($hs) and register ($reg) histograms count every session, summed over the workers"

for i in $(seq "$N"); do
  wait "${CLS[$((i - 1))]}" || fail "client $i: $(tail -3 "$TMP/client$i.out")"
  grep -q '"heartbeats_ok":1' "$TMP/client$i.out" || fail "client $i heartbeats: $(tail -1 "$TMP/client$i.out")"
done
for _ in $(seq 50); do
  get_metrics
  [ "$(histogram wtrelay_session_duration_seconds)" = "$N" ] && break
  sleep 0.1
done
ended=$(histogram wtrelay_session_duration_seconds) || fail "session histogram"
[ "$ended" = "$N" ] || fail "session-duration histogram counted $ended, want $N"
sum=$(metric wtrelay_session_duration_seconds_sum)
python3 -c "import sys; assert float(sys.argv[1]) >= 3 * int(sys.argv[2]) * 0.9" "$sum" "$N" ||
  fail "session durations sum $sum for $N sessions held 3 s"
grep -q '^wtrelay_room_sessions{' "$TMP/metrics.txt" && fail "a room gauge outlived its room"
lint "after the sessions ended"
pass "session-duration histogram: $N sessions, ${sum}s; the room's gauge gone with the room; promtool clean"
stop_relay
