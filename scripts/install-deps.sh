#!/usr/bin/env bash
# Installs the Debian packages (and the npm packages of tests/browser) that
# building and testing wtrelay need. Idempotent: asks dpkg-query first and
# runs apt-get update only when something is missing.
#
#   scripts/install-deps.sh            everything `make test` needs
#   scripts/install-deps.sh --runtime  only what building and running the
#                                      relay needs (`make run`)
set -euo pipefail

RUNTIME_PKGS=(
  # build
  cmake make gcc clang pkg-config
  liburing-dev libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev
  libgnutls28-dev libjansson-dev libjwt-gnutls-dev
  # rooms across relays (fed.c): the NATS C client
  libnats-dev
  # WebSocket framing (ws.c, the fallback transport over TCP)
  libwslay-dev
  # BPF steering (steer.c): libbpf, and the kernel's uapi headers for the
  # program that clang compiles for the bpf target (llvm: llvm-strip)
  libbpf-dev linux-libc-dev llvm
)
TEST_PKGS=(
  # the server the federation tests start on loopback
  nats-server
  # man pages (groff renders them in integration/test_manpages)
  groff-base man-db
  # unit tests and fuzzing (clang's libFuzzer + sanitizer runtime)
  libcriterion-dev libclang-rt-14-dev
  # integration tests: certificate checks, namespaces, packet tools
  openssl gnutls-bin iproute2 procps python3
  # seccomp profile test: strace lists the relay's system calls
  strace
  # netns tier: ping between the VM namespaces, a DHCP client (udhcpc),
  # packet loss (nftables: the kernel here has no netem)
  iputils-ping busybox nftables
  # ops tier: promtool checks /metrics
  prometheus
  # perf/: iperf3 through the TCP NAT, beside slirp4netns and pasta (passt)
  # as references (benchmark, not make test)
  iperf3 slirp4netns passt
  # browser tier
  chromium firefox-esr
)

runtime=0
case "${1:-}" in
  --runtime) runtime=1 ;;
  "") ;;
  *) echo "usage: $0 [--runtime]" >&2; exit 2 ;;
esac
PKGS=("${RUNTIME_PKGS[@]}")
if [ "$runtime" = 0 ]; then PKGS+=("${TEST_PKGS[@]}"); fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js (browser tier) may come from outside Debian (it does on these
# machines); only ask apt for it when there is no node/npm at all.
if [ "$runtime" = 0 ] && ! command -v node >/dev/null 2>&1; then missing+=(nodejs); fi
if [ "$runtime" = 0 ] && ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "$runtime" = 1 ] && exit 0
# playwright-core drives Debian's chromium; it never downloads a browser.
# typescript (a devDependency) checks the JS client's types (test_types).
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$here/tests/browser/package.json" ] &&
  { [ ! -d "$here/tests/browser/node_modules/playwright-core" ] || [ ! -d "$here/tests/browser/node_modules/typescript" ]; }; then
  echo "install-deps: npm ci in tests/browser" >&2
  (cd "$here/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
fi
