// The page of the JavaScript client's tests: uses clients/js/wtrelay.js as a
// page author would and reports to the test's HTTP server (POST /report).
// Scenarios: "link" (two NICs across a real link: frames chunked by the
// session's maxDatagramSize, ARP and ping of the gateway, a reconnect
// keeping the address), "nics" (two NICs: distinct addresses, 1514-byte frames both
// ways, ARP and ping of the gateway, a relay restart and a page-requested
// reconnect keeping the addresses), "example" (examples/two-nics.html in
// an iframe: its gateway and peer pings must succeed) and "adapter"
// (examples/emulator-adapter.js on a stand-in bus).
import { WtRelay, formatAddress } from '/clients/js/wtrelay.js';
import * as pk from '/examples/packets.js';

const params = new URLSearchParams(location.search);
const scenario = params.get('scenario') || 'nics';
const url = params.get('relay') + (params.get('room') || '/js');
const certHashUrl = params.get('certHashUrl');
const certHash = params.get('certHash');

function log(line) {
  document.getElementById('log').textContent += line + '\n';
  fetch('/progress', { method: 'POST', body: line }).catch(() => {});
}

// Keeps every frame a NIC receives; next() waits for one matching pred.
function inbox(nic) {
  const frames = [];
  const waiters = new Set();
  nic.addEventListener('frame', (e) => { frames.push(e.detail); for (const w of waiters) w(); });
  return {
    next(pred, ms, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const i = frames.findIndex(pred);
          if (i < 0) return;
          done();
          resolve(frames.splice(i, 1)[0]);
        };
        const done = () => { waiters.delete(check); clearTimeout(t); };
        const t = setTimeout(() => { done(); reject(new Error(`${formatAddress(nic.mac)}: no ${what} in ${ms} ms`)); }, ms);
        waiters.add(check);
        check();
      });
    },
  };
}

function nextState(nic, state, ms) {
  if (nic.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const on = (e) => { if (e.detail.state === state) { clearTimeout(t); nic.removeEventListener('state', on); resolve(); } };
    const t = setTimeout(() => reject(new Error(`${formatAddress(nic.mac)}: not ${state} after ${ms} ms (${nic.state})`)), ms);
    nic.addEventListener('state', on);
  });
}

function pattern(len, seed) {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (seed + i * 31) & 0xff;
  return b;
}

// A full-size frame from one NIC to the other, compared byte for byte.
async function crossFrame(from, to, toInbox, seed) {
  const frame = pk.ethernet(to.mac, from.mac, 0x88b5, pattern(1500, seed));
  const chunksOut = from.counters.chunksOut, chunksIn = to.counters.chunksIn;
  if (!from.send(frame)) throw new Error('send refused a 1514-byte frame');
  const got = await toInbox.next((f) => f.length === frame.length && f[14] === frame[14] && f[15] === frame[15],
    5000, '1514-byte frame');
  if (!pk.sameBytes(got, frame)) throw new Error('1514-byte frame arrived changed');
  return { sentChunks: from.counters.chunksOut - chunksOut, receivedChunks: to.counters.chunksIn - chunksIn };
}

async function pingGateway(nic, box, seq) {
  nic.send(pk.arp(1, nic.mac, nic.ip, pk.BROADCAST, nic.gateway));
  const arp = pk.parse(await box.next((f) => {
    const p = pk.parse(f);
    return p.kind === 'arp' && p.op === 2 && pk.sameBytes(p.senderIp, nic.gateway);
  }, 5000, 'ARP reply from the gateway'));
  const data = new TextEncoder().encode(`wtrelay js client ping ${seq}`);
  nic.send(pk.icmpEcho(8, nic.mac, nic.ip, arp.senderMac, nic.gateway, 0x4a53, seq, data));
  const echo = pk.parse(await box.next((f) => {
    const p = pk.parse(f);
    return p.kind === 'icmp' && p.icmpType === 0 && p.seq === seq;
  }, 5000, 'echo reply'));
  if (!pk.sameBytes(echo.srcIp, nic.gateway) || echo.id !== 0x4a53 || !pk.sameBytes(echo.data, data) ||
    !echo.checksumOk) throw new Error(`bad echo reply ${JSON.stringify(echo)}`);
  return formatAddress(arp.senderMac);
}

async function scenarioNics() {
  const opts = { url, certHashUrl, heartbeatMs: 400, deadMs: 2000, connectTimeoutMs: 3000,
    reconnect: { minMs: 200, maxMs: 1000 } };
  const a = await WtRelay.connect({ ...opts, mac: '52:54:00:b0:0e:01' });
  const b = await WtRelay.connect(opts); // a random MAC
  const boxA = inbox(a), boxB = inbox(b);
  const ipA = formatAddress(a.ip), ipB = formatAddress(b.ip);
  log(`registered: a ${formatAddress(a.mac)} ${ipA}, b ${formatAddress(b.mac)} ${ipB}`);
  const states = { a: [], b: [] };
  a.addEventListener('state', (e) => states.a.push(e.detail.state));
  b.addEventListener('state', (e) => states.b.push(e.detail.state));

  const ab = await crossFrame(a, b, boxB, 1);
  const ba = await crossFrame(b, a, boxA, 2);
  log(`1514-byte frames crossed: a->b ${JSON.stringify(ab)}, b->a ${JSON.stringify(ba)}`);
  const gatewayMac = await pingGateway(a, boxA, 1);
  await pingGateway(b, boxB, 1);
  log(`gateway ${gatewayMac} answered ARP and ping from both`);
  for (let i = 0; i < 50 && (a.counters.heartbeatAcks < 2 || b.counters.heartbeatAcks < 2); i++) {
    await new Promise((res) => setTimeout(res, 100));
  }
  const heartbeatAcks = [a.counters.heartbeatAcks, b.counters.heartbeatAcks];

  // The test restarts the relay (SIGTERM, same port, certificate and lease
  // file): both NICs must come back with their addresses.
  log('restart the relay');
  await Promise.all([nextState(a, 'reconnecting', 10000), nextState(b, 'reconnecting', 10000)]);
  await Promise.all([nextState(a, 'registered', 15000), nextState(b, 'registered', 15000)]);
  const restarted = { a: formatAddress(a.ip), b: formatAddress(b.ip) };
  log(`back after the restart: a ${restarted.a}, b ${restarted.b}`);
  const afterRestart = await crossFrame(a, b, boxB, 3);
  await pingGateway(b, boxB, 2);

  // A reconnect the page asks for: the relay sees the old session close.
  a.reconnect();
  if (a.state !== 'reconnecting') throw new Error(`reconnect(): state ${a.state}`);
  await nextState(a, 'registered', 10000);
  const requested = formatAddress(a.ip);
  await crossFrame(b, a, boxA, 4);
  await pingGateway(a, boxA, 2);

  // The test stops the relay (SIGSTOP): a NIC hearing nothing for deadMs
  // drops the session and reconnects; once the relay runs again (SIGCONT)
  // it must be back with its address.
  let silence = null;
  const onSilence = (e) => { if (e.detail.state === 'reconnecting') silence = e.detail.reason; };
  b.addEventListener('state', onSilence);
  log('stop the relay');
  await Promise.all([nextState(a, 'reconnecting', 10000), nextState(b, 'reconnecting', 10000)]);
  log('silence detected');
  await Promise.all([nextState(a, 'registered', 15000), nextState(b, 'registered', 15000)]);
  b.removeEventListener('state', onSilence);
  const afterSilence = [formatAddress(a.ip), formatAddress(b.ip)];
  await crossFrame(b, a, boxA, 5);

  let closed = null;
  a.addEventListener('close', (e) => { closed = e.detail; });
  a.close(0, 'done');
  b.close(0, 'done');
  if (a.send(new Uint8Array(60))) throw new Error('send after close was accepted');
  return {
    ipA, ipB, macB: formatAddress(b.mac), ab, ba, afterRestart, gatewayMac, restarted, requested, closed,
    heartbeatAcks, silence, afterSilence,
    states, countersA: a.counters, countersB: b.counters, stateAfterClose: a.state,
  };
}

// Two NICs across a real link (tests/netns/test_browser_link.sh): the
// relay's hash is given, not fetched; frames cross both ways chunked by
// whatever maxDatagramSize the link's path MTU gives, both NICs reach the
// gateway, and a reconnect keeps the address.
async function scenarioLink() {
  const opts = { url, certHash, heartbeatMs: 1000, connectTimeoutMs: 10000, reconnect: { minMs: 200, maxMs: 1000 } };
  const a = await WtRelay.connect({ ...opts, mac: '52:54:00:b0:0e:11' });
  const b = await WtRelay.connect(opts);
  const boxA = inbox(a), boxB = inbox(b);
  const ipA = formatAddress(a.ip), ipB = formatAddress(b.ip);
  log(`registered across the link: a ${ipA}, b ${ipB}`);
  const ab = await crossFrame(a, b, boxB, 11);
  const ba = await crossFrame(b, a, boxA, 12);
  await pingGateway(a, boxA, 1);
  await pingGateway(b, boxB, 1);
  a.reconnect();
  await nextState(a, 'registered', 15000);
  const reconnected = formatAddress(a.ip);
  const again = await crossFrame(b, a, boxA, 13);
  await pingGateway(a, boxA, 2);
  a.close(0, 'done');
  b.close(0, 'done');
  return { ipA, ipB, ab, ba, again, reconnected, countersA: a.counters, countersB: b.counters };
}

// examples/two-nics.html in an iframe: waits for its status.
async function scenarioExample() {
  const frame = document.createElement('iframe');
  frame.width = 1000;
  frame.height = 700;
  const q = new URLSearchParams({ relay: url, certHashUrl });
  frame.src = `/examples/two-nics.html?${q}`;
  document.body.append(frame);
  const deadline = Date.now() + 20000;
  for (;;) {
    const s = frame.contentDocument && frame.contentDocument.getElementById('status');
    if (s && (s.dataset.error || s.dataset.peerPing)) {
      return { status: s.textContent, error: s.dataset.error || null, gatewayPing: s.dataset.gatewayPing || null,
        peerPing: s.dataset.peerPing || null, rows: frame.contentDocument.querySelectorAll('#frames tbody tr').length };
    }
    if (Date.now() > deadline) throw new Error(`example page: ${s ? s.textContent : 'not loaded'}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

// examples/emulator-adapter.js on a stand-in for an emulator's bus: the
// "guest" sends an ARP probe (which starts the session with the guest's
// MAC), then ARP for the gateway and a ping through "net0-send"; the answers
// must come back through "net0-receive".
async function scenarioAdapter() {
  const { WtRelayAdapter } = await import('/examples/emulator-adapter.js');
  const handlers = new Map();
  const received = [];
  const bus = {
    register(name, fn, ctx) { handlers.set(name, fn.bind(ctx)); },
    send(name, data) { if (name === 'net0-receive') received.push(data); },
  };
  const adapter = new WtRelayAdapter(bus, { url, certHashUrl });
  const guestMac = [0x52, 0x54, 0x00, 0xb0, 0x0f, 0x01];
  handlers.get('net0-send')(pk.arp(1, guestMac, [0, 0, 0, 0], pk.BROADCAST, [10, 0, 2, 99]));
  for (let i = 0; i < 100 && !(adapter.nic && adapter.nic.state === 'registered'); i++) {
    await new Promise((res) => setTimeout(res, 50));
  }
  if (!adapter.nic) throw new Error('the adapter never registered');
  const ip = adapter.nic.ip, gw = adapter.nic.gateway;
  const wait = async (pred, what) => {
    for (let i = 0; i < 100; i++) {
      const f = received.map((x) => pk.parse(x)).find(pred);
      if (f) return f;
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error(`adapter: no ${what}`);
  };
  handlers.get('net0-send')(pk.arp(1, guestMac, ip, pk.BROADCAST, gw));
  const arp = await wait((p) => p.kind === 'arp' && p.op === 2 && pk.sameBytes(p.senderIp, gw), 'ARP reply');
  handlers.get('net0-send')(pk.icmpEcho(8, guestMac, ip, arp.senderMac, gw, 0x7601, 1, new Uint8Array(32)));
  await wait((p) => p.kind === 'icmp' && p.icmpType === 0 && p.id === 0x7601, 'echo reply');
  const mac = formatAddress(adapter.nic.mac);
  adapter.destroy();
  return { mac, ip: formatAddress(ip), received: received.length };
}

const scenarios = { link: scenarioLink, nics: scenarioNics, example: scenarioExample, adapter: scenarioAdapter };

(async () => {
  let report;
  try {
    report = { ok: true, userAgent: navigator.userAgent, ...(await scenarios[scenario]()) };
  } catch (e) {
    report = { ok: false, error: String(e && e.stack || e), userAgent: navigator.userAgent };
  }
  log(`report: ${JSON.stringify(report)}`);
  await fetch('/report', { method: 'POST', body: JSON.stringify(report) });
})();
