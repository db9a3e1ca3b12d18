#!/usr/bin/env bash
# TCP NAT throughput with iperf3, for docs/perf.md (not part of make test).
# A VM namespace (guest MTU 1500) on wtrelay-tap -> relay (QUIC over the
# relay namespace's loopback) -> host TCP socket -> a test internet host
# 198.18.0.2 in its own namespace on a veth. iperf3 5 s each direction,
# RUNS times, medians. Needs root, build/ (make) and iperf3.
# In the same run, as references with the same iperf3 and guest MTU 1500,
# two user-mode stacks that also terminate the guest's TCP and open host
# sockets in the relay's namespace (no QUIC in their path): slirp4netns
# (guest namespace on its tap, 10.0.2.100) and pasta (package passt; the
# guest gets the relay namespace's address, as pasta does); each is
# skipped when not installed (scripts/install-deps.sh installs both). The
# repetitions interleave the three stacks, and the ratios relay/slirp4netns
# and relay/pasta are printed per direction. build/limitprobe runs first
# (perf/limitprobe.c: the machine's AES-GCM and io_uring forwarding limit).
# The relay also runs over IPv6 (NAT66: the same VM, its SLAAC address, to
# the test host's 2001:db8:1::2 through the relay namespace's IPv6 route),
# interleaved with the rest; the ratio relay6/relay is printed. relayws: a
# second VM on the same relay through the WebSocket fallback (wtrelay-tap
# --transport ws), ratio relayws/relay.
# BEFORE=DIR (a build directory of another commit, with its wtrelay and
# wtrelay-tap) adds that build as a fourth stack, "before", with its own
# relay (port 4434) and VM namespace, interleaved with the others: an A/B
# of two builds in the same run, printed as relay/before.
#   [BEFORE=DIR] perf/bench-tcp-nat.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
B=${BUILD_DIR:-build}
command -v iperf3 >/dev/null || { echo "iperf3 missing: apt-get install iperf3" >&2; exit 1; }
TMP=$(mktemp -d)
P="wb$$"
NS_R="${P}relay" NS_I="${P}inet" NS_A="${P}vm" NS_S="${P}slirp" NS_P="${P}pasta" NS_B="${P}before"
NS_W="${P}vmws"
STACKS=(relay relay6 relayws)
BEFORE=${BEFORE:-}
[ -z "$BEFORE" ] || STACKS+=(before)
SLIRP=0 PASTA=0
command -v slirp4netns >/dev/null && STACKS+=(slirp4netns) || echo "slirp4netns missing: skipped" >&2
command -v pasta >/dev/null && STACKS+=(pasta) || echo "pasta (package passt) missing: skipped" >&2
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "$NS_R" "$NS_I" "$NS_A" "$NS_S" "$NS_P" "$NS_B" "$NS_W"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
for ns in "$NS_R" "$NS_I" "$NS_A" "$NS_S" "$NS_P" "$NS_B" "$NS_W"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "${P}r0" netns "$NS_R" type veth peer name "${P}i0" netns "$NS_I"
ip -n "$NS_R" addr add 198.18.0.1/24 dev "${P}r0"
ip -n "$NS_I" addr add 198.18.0.2/24 dev "${P}i0"
ip -n "$NS_R" link set "${P}r0" up
ip -n "$NS_I" link set "${P}i0" up
for ns in "$NS_R" "$NS_I" "$NS_A"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
done
ip netns exec "$NS_A" sysctl -qw net.ipv6.conf.default.accept_ra=1
ip -n "$NS_R" -6 addr add 2001:db8:1::1/64 dev "${P}r0" nodad
ip -n "$NS_I" -6 addr add 2001:db8:1::2/64 dev "${P}i0" nodad
ip -n "$NS_R" -6 route add default via 2001:db8:1::2
# Not -D: a daemon would outlive the script, and with it the benchmark lock
# (flock /tmp/wtrelay-bench.lock) whose descriptor it inherits.
ip netns exec "$NS_I" iperf3 -s -B 198.18.0.2 --logfile "$TMP/iperf.log" &
PIDS+=("$!")
ip netns exec "$NS_I" iperf3 -s -B 2001:db8:1::2 -p 5202 --logfile "$TMP/iperf6.log" &
PIDS+=("$!")
for _ in $(seq 50); do ip netns exec "$NS_I" ss -Hltn | grep -q ':5201 ' && break; sleep 0.1; done
for _ in $(seq 50); do ip netns exec "$NS_I" ss -Hltn | grep ':5202 ' >/dev/null && break; sleep 0.1; done
# relay_pair BUILD PORT TAP NETNS NAME: a relay and its wtrelay-tap
relay_pair() {
  ip netns exec "$NS_R" "$1/wtrelay" --bind 127.0.0.1 --port "$2" --http-listen "" \
    --egress-allow 198.18.0.0/15 --egress-allow 2001:db8:1::/48 --log-level warn >"$TMP/$5.out" 2>"$TMP/$5.err" &
  PIDS+=("$!")
  for _ in $(seq 50); do grep -q '^Listening' "$TMP/$5.out" && break; sleep 0.1; done
  local hash
  hash=$(awk '/^Certificate SHA-256 Hash:/{print $4}' "$TMP/$5.out")
  ip netns exec "$NS_R" "$1/wtrelay-tap" --url "https://127.0.0.1:$2/bench" --cert-hash "$hash" \
    --tap "$3" --netns "$4" --configure --transport wt --log-level warn 2>"$TMP/$5-tap.err" &
  PIDS+=("$!")
  RELAY_HASH=$hash
}
relay_pair "$B" 4433 vm0 "$NS_A" relay
# relayws: a second VM on the same relay through the WebSocket fallback
ip netns exec "$NS_R" "$B/wtrelay-tap" --url "https://127.0.0.1:4433/bench" --cert-hash "$RELAY_HASH" \
  --tap vmw --netns "$NS_W" --configure --transport ws --log-level warn 2>"$TMP/relayws-tap.err" &
PIDS+=("$!")
[ -z "$BEFORE" ] || relay_pair "$BEFORE" 4434 vm1 "$NS_B" before
# The references run beside the relay's namespace, so their host sockets
# take the same veth to the test host.
if [[ " ${STACKS[*]} " = *" slirp4netns "* ]]; then
  ip netns exec "$NS_R" slirp4netns --configure --mtu=1500 --netns-type=path "/run/netns/$NS_S" sl0 \
    >"$TMP/slirp.log" 2>&1 &
  PIDS+=("$!")
  SLIRP=$!
fi
if [[ " ${STACKS[*]} " = *" pasta "* ]]; then
  # --runas 0: as root pasta would drop to nobody, which cannot enter the
  # namespace; -g: the relay namespace has no default route to copy
  ip netns exec "$NS_R" pasta --config-net --netns "/run/netns/$NS_P" --runas 0 -i "${P}r0" -I pt0 \
    -g 198.18.0.254 --no-map-gw -m 1500 -t none -u none -T none -U none -f -q >"$TMP/pasta.log" 2>&1 &
  PIDS+=("$!")
  PASTA=$!
fi
for _ in $(seq 100); do
  ip -n "$NS_A" -4 addr show dev vm0 2>/dev/null | grep -q inet &&
    ip -n "$NS_W" -4 addr show dev vmw 2>/dev/null | grep -q inet &&
    { [ -z "$BEFORE" ] || ip -n "$NS_B" -4 addr show dev vm1 2>/dev/null | grep -q inet; } && break
  sleep 0.1
done
# IPv6: SLAAC and the default route from the gateway's RA
for _ in $(seq 100); do ip -n "$NS_A" -6 route show default 2>/dev/null | grep 'via fe80::2' >/dev/null && break; sleep 0.1; done
for _ in $(seq 50); do
  { [ ! -e "/proc/$SLIRP" ] || ip -n "$NS_S" -4 addr show dev sl0 2>/dev/null | grep -q inet; } &&
    { [ ! -e "/proc/$PASTA" ] || ip -n "$NS_P" -4 addr show dev pt0 2>/dev/null | grep -q inet; } && break
  sleep 0.1
done
sleep 0.5
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r)"
$B/limitprobe | sed '$d'
mtu() { ip -n "$1" link show "$2" 2>/dev/null | grep -o 'mtu [0-9]*' || echo "not up"; }
echo "guest MTU: relay $(mtu "$NS_A" vm0), slirp4netns $(mtu "$NS_S" sl0), pasta $(mtu "$NS_P" pt0);" \
  "iperf3 $(iperf3 --version | head -1 | cut -d' ' -f2) -t 5, median of $RUNS, repetitions interleaved"
guest_ns() { case $1 in relay | relay6) echo "$NS_A" ;; relayws) echo "$NS_W" ;; before) echo "$NS_B" ;; slirp4netns) echo "$NS_S" ;; pasta) echo "$NS_P" ;; esac; }
target() { case $1 in relay6) echo "2001:db8:1::2 -p 5202" ;; *) echo 198.18.0.2 ;; esac; }
# One line per run in $TMP/runs: stack, direction, rep, bits/s (0: failed,
# or stalled past 30 s).
: >"$TMP/runs"
for rep in $(seq "$RUNS"); do
  for dir in up down; do
    for st in "${STACKS[@]}"; do
      timeout 30 ip netns exec "$(guest_ns "$st")" iperf3 -c $(target "$st") -t 5 -J $([ "$dir" = down ] && echo -R) 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])' \
          2>/dev/null | sed "s/^/$st $dir $rep /" >>"$TMP/runs" || echo "$st $dir $rep 0" >>"$TMP/runs"
    done
  done
done
python3 - "$TMP/runs" <<'PY'
import collections, statistics as st, sys
runs = collections.defaultdict(dict)
for l in open(sys.argv[1]):
    stack, d, rep, bps = l.split()
    if float(bps) > 0: # else iperf3 failed: counted apart
        runs[(stack, d)][int(rep)] = float(bps)
    runs[(stack, d, "tried")][int(rep)] = 1
label = {"up": "TCP guest -> internet host", "down": "TCP internet host -> guest"}
for d in ("up", "down"):
    for stack in ("relay", "relay6", "relayws", "before", "slirp4netns", "pasta"):
        v = runs.get((stack, d))
        if v:
            failed = len(runs[(stack, d, "tried")]) - len(v)
            print("%-28s %-12s median %.2f Gbit/s  (runs: %s)%s" % (label[d], stack, st.median(v.values()) / 1e9,
                  " ".join("%.2f" % (x / 1e9) for x in v.values()), " %d failed" % failed if failed else ""))
        elif runs.get((stack, d, "tried")):
            print("%-28s %-12s every run failed" % (label[d], stack))
    for (me, ref) in (("relay6", "relay"), ("relayws", "relay"), ("relay", "before"), ("relay", "slirp4netns"), ("relay", "pasta")):
        r, o = runs.get((me, d), {}), runs.get((ref, d), {})
        per = [r[k] / o[k] for k in sorted(r) if k in o and o[k] > 0]
        if per:
            print("%-28s %s/%-6s %.2f (ratio of the medians); median of the ratios per repetition %.2f (%s)" % (
                "", me, ref, st.median(r.values()) / st.median(o.values()), st.median(per),
                " ".join("%.2f" % x for x in per)))
PY
