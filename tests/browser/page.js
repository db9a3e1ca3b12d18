// The test page: speaks the bavy datagram protocol to the relay over
// WebTransport exactly as a browser VM does, then reports to the test's
// HTTP server (POST /report), which works the same for every browser.
const params = new URLSearchParams(location.search);
const relay = params.get('relay');
const hashHex = params.get('hash');
const scenario = params.get('scenario') || 'register';
const room = params.get('room') || '/';
const enc = new TextEncoder();
const dec = new TextDecoder();

function log(line) {
  document.getElementById('log').textContent += line + '\n';
  fetch('/progress', { method: 'POST', body: line }).catch(() => {});
}

function hexBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timeout: ${what}`)), ms); })])
    .finally(() => clearTimeout(t));
}

// One WebTransport session carrying the bavy protocol.
class Session {
  constructor(name, path, mac) {
    this.name = name;
    this.mac = mac;
    this.url = relay + path;
    this.queue = [];
    this.waiters = [];
  }

  async open() {
    this.wt = new WebTransport(this.url, {
      serverCertificateHashes: [{ algorithm: 'sha-256', value: hexBytes(hashHex) }],
    });
    await withTimeout(this.wt.ready, 15000, `${this.name} ready`);
    this.writer = this.wt.datagrams.writable.getWriter();
    this.reader = this.wt.datagrams.readable.getReader();
    this.readLoop();
    log(`${this.name}: session ready, maxDatagramSize=${this.wt.datagrams.maxDatagramSize}`);
  }

  async readLoop() {
    try {
      for (;;) {
        const { value, done } = await this.reader.read();
        if (done) break;
        this.queue.push(value);
        for (const w of this.waiters.splice(0)) w();
      }
    } catch (e) { this.readError = String(e); }
    for (const w of this.waiters.splice(0)) w();
  }

  // Next datagram for which pred(bytes) is true; others are kept.
  async next(pred, ms, what) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.queue.findIndex(pred);
      if (i >= 0) return this.queue.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: timeout waiting for ${what}`);
      await new Promise((res) => { this.waiters.push(res); setTimeout(res, left); });
    }
  }

  async send(bytes) { await this.writer.write(bytes); }

  async control(obj) {
    const json = enc.encode(JSON.stringify(obj));
    const b = new Uint8Array(1 + json.length);
    b[0] = 0x00; b.set(json, 1);
    await this.send(b);
  }

  async nextControl(type, ms) {
    const b = await this.next((d) => d[0] === 0x00 && dec.decode(d.subarray(1)).includes(`"type":"${type}"`), ms, type);
    return JSON.parse(dec.decode(b.subarray(1)));
  }

  async register() {
    await this.control({ type: 'Register', mac: this.mac });
    const a = await this.nextControl('Assigned', 10000);
    log(`${this.name}: Assigned ${JSON.stringify(a)}`);
    return a;
  }

  async close(code, reason) {
    this.wt.close({ closeCode: code, reason });
    return withTimeout(this.wt.closed, 10000, `${this.name} closed`);
  }
}

async function expectStreamError(writer, what) {
  try {
    for (let i = 0; i < 20; i++) {
      await withTimeout(writer.write(enc.encode('stream data the relay must refuse\n')), 2000, what);
      await new Promise((res) => setTimeout(res, 50));
    }
    await withTimeout(writer.close(), 3000, `${what} close`);
  } catch (e) {
    return String(e.name || e);
  }
  return null;
}

async function refuseStreams(s) {
  const uni = await withTimeout(s.wt.createUnidirectionalStream(), 5000, 'uni stream');
  const bidi = await withTimeout(s.wt.createBidirectionalStream(), 5000, 'bidi stream');
  return {
    uni: await expectStreamError(uni.getWriter(), 'uni stream'),
    bidi: await expectStreamError(bidi.writable.getWriter(), 'bidi stream'),
  };
}

async function scenarioRegister() {
  const s = new Session('s1', room, [82, 84, 0, 0xb0, 0x0b, 0x01]);
  await s.open();
  const maxDatagramSize = s.wt.datagrams.maxDatagramSize;
  const assigned = await s.register();
  let acks = 0;
  for (let i = 0; i < 2; i++) {
    await s.control({ type: 'Heartbeat' });
    await s.nextControl('HeartbeatAck', 5000);
    acks++;
  }
  // This protocol is datagrams only: streams the page opens are refused
  // (stream reset / stop sending), and the session lives on.
  const refused = await refuseStreams(s);
  await s.control({ type: 'Heartbeat' });
  await s.nextControl('HeartbeatAck', 5000);
  acks++;
  const closed = await s.close(0, 'bye');
  return { assigned, acks, maxDatagramSize, refused, closed: { closeCode: closed.closeCode, reason: closed.reason } };
}

// Registers, then waits for the relay to end the session (the test sends
// SIGTERM to the relay once it sees "registered" in the progress lines).
async function scenarioHold() {
  const s = new Session('s1', room, [82, 84, 0, 0xb0, 0x0b, 0x02]);
  await s.open();
  const assigned = await s.register();
  log('registered');
  const closed = await withTimeout(s.wt.closed, 20000, 'relay-initiated close');
  return { assigned, closed: { closeCode: closed.closeCode, reason: closed.reason } };
}

// Registers the MAC a reconnecting VM keeps for life and reports at once,
// leaving the session open (the test then kills this browser, and a second
// browser claims the same MAC: the relay's takeover).
async function scenarioClaim() {
  const s = new Session('s1', room, [82, 84, 0, 0xb0, 0x0b, 0x03]);
  await s.open();
  const t0 = performance.now();
  const assigned = await s.register();
  const registerMs = Math.round((performance.now() - t0) * 10) / 10;
  log(`registered ${assigned.ip.join('.')}`);
  return { assigned, registerMs };
}

// Ethernet helpers for the switch scenario.
const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
function ethFrame(dst, src, type, len, seed) {
  const f = new Uint8Array(len);
  f.set(dst, 0); f.set(src, 6);
  f[12] = type >> 8; f[13] = type & 0xff;
  for (let i = 14; i < len; i++) f[i] = (seed + i * 31) & 0xff;
  return f;
}
function arp(op, dst, src, srcIp, dstIp) {
  const f = ethFrame(dst, src, 0x0806, 42, 0);
  f.set([0, 1, 8, 0, 6, 4, 0, op], 14);
  f.set(src, 22); f.set(srcIp, 28);
  f.set(op === 2 ? dst : [0, 0, 0, 0, 0, 0], 32); f.set(dstIp, 38);
  return f;
}
const withType = (t, b) => { const d = new Uint8Array(1 + b.length); d[0] = t; d.set(b, 1); return d; };
const sameBytes = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
const srcIs = (d, mac) => mac.every((v, i) => d[1 + 6 + i] === v);

// Waits for a whole frame from `mac`: a 0x01 datagram, or 0x02 chunks
// reassembled the way BAVY clients do. Returns [frame, howItCame].
async function nextFrameFrom(s, mac, ms) {
  const deadline = Date.now() + ms;
  const parts = new Map();
  for (;;) {
    const d = await s.next((x) => x[0] === 0x01 || x[0] === 0x02, deadline - Date.now(), 'frame');
    if (d[0] === 0x01) {
      if (srcIs(d, mac)) return [d.subarray(1), 'whole'];
      continue;
    }
    const id = (d[1] << 8) | d[2], index = d[3], total = d[4];
    if (!parts.has(id)) parts.set(id, new Array(total));
    const p = parts.get(id);
    p[index] = d.subarray(5);
    if (p.filter(Boolean).length === total) {
      const len = p.reduce((n, c) => n + c.length, 0);
      const f = new Uint8Array(len);
      let off = 0;
      for (const c of p) { f.set(c, off); off += c.length; }
      if (mac.every((v, i) => f[6 + i] === v)) return [f, `chunks(${total})`];
    }
  }
}

// Two sessions on one virtual LAN: ARP broadcast one way, unicast reply the
// other, then a 1400-byte frame sent as the seed's 900-byte chunks.
async function scenarioSwitch() {
  const ma = [82, 84, 0, 0xb0, 0x0c, 0x01], mb = [82, 84, 0, 0xb0, 0x0c, 0x02];
  const a = new Session('a', room, ma), b = new Session('b', room, mb);
  await a.open(); await b.open();
  const ipa = (await a.register()).ip, ipb = (await b.register()).ip;

  const req = arp(1, BCAST, ma, ipa, ipb);
  await a.send(withType(0x01, req));
  const [gotReq] = await nextFrameFrom(b, ma, 5000);
  if (!sameBytes(gotReq, req)) throw new Error('ARP request arrived changed');
  log('b: got the broadcast ARP request');

  const rep = arp(2, ma, mb, ipb, ipa);
  await b.send(withType(0x01, rep));
  const [gotRep] = await nextFrameFrom(a, mb, 5000);
  if (!sameBytes(gotRep, rep)) throw new Error('ARP reply arrived changed');
  log('a: got the unicast ARP reply');

  const sendSeedChunks = async (s, frame, id) => {
    for (let index = 0, off = 0; off < frame.length; index++, off += 900) {
      const part = frame.subarray(off, off + 900);
      const d = new Uint8Array(5 + part.length);
      d.set([0x02, id >> 8, id & 0xff, index, Math.ceil(frame.length / 900)]); d.set(part, 5);
      await s.send(d);
    }
  };
  const big = ethFrame(mb, ma, 0x88b6, 1400, 7);
  await sendSeedChunks(a, big, 0x4242);
  const [gotBig, how] = await nextFrameFrom(b, ma, 5000);
  if (!sameBytes(gotBig, big)) throw new Error(`1400-byte frame arrived changed (${gotBig.length} bytes)`);
  log(`b: got the 1400-byte frame as ${how}`);

  // A full 1514-byte frame never fits a datagram toward a browser: the
  // relay chunks it for the receiver.
  const full = ethFrame(ma, mb, 0x88b6, 1514, 9);
  await sendSeedChunks(b, full, 0x0101);
  const [gotFull, howFull] = await nextFrameFrom(a, mb, 5000);
  if (!sameBytes(gotFull, full)) throw new Error(`1514-byte frame arrived changed (${gotFull.length} bytes)`);
  log(`a: got the 1514-byte frame as ${howFull}`);

  const echoed = a.queue.some((d) => (d[0] === 0x01 && srcIs(d, ma)));
  await a.close(0, 'done'); await b.close(0, 'done');
  return { arp: true, bigFrame: gotBig.length, bigFrameArrivedAs: how, fullFrame: gotFull.length,
    fullFrameArrivedAs: howFull, senderGotOwnFrame: echoed };
}

// Internet checksum of bytes (RFC 1071).
function csum(b) {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] || 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

// The gateway: ARP for 10.0.2.2, then ping it.
async function scenarioGateway() {
  const mac = [82, 84, 0, 0xb0, 0x0d, 0x01];
  const s = new Session('g', room, mac);
  await s.open();
  const a = await s.register();
  const gwIp = a.gateway;
  await s.send(withType(0x01, arp(1, BCAST, mac, a.ip, gwIp)));
  const rep = await s.next((d) => d[0] === 0x01 && d[13] === 0x08 && d[14] === 0x06 && d[22] === 2, 5000, 'ARP reply');
  const gwMac = Array.from(rep.subarray(1 + 22, 1 + 28));
  if (!gwIp.every((v, i) => rep[1 + 28 + i] === v)) throw new Error('ARP reply for another address');
  log(`g: gateway ${gwIp.join('.')} is at ${gwMac.map((x) => x.toString(16).padStart(2, '0')).join(':')}`);

  const payload = enc.encode('wtrelay browser ping');
  const icmp = new Uint8Array(8 + payload.length);
  icmp.set([8, 0, 0, 0, 0x12, 0x34, 0, 1]); icmp.set(payload, 8);
  const ic = csum(icmp); icmp[2] = ic >> 8; icmp[3] = ic & 0xff;
  const ip = new Uint8Array(20 + icmp.length);
  ip.set([0x45, 0, (ip.length >> 8) & 0xff, ip.length & 0xff, 0, 1, 0, 0, 64, 1, 0, 0]);
  ip.set(a.ip, 12); ip.set(gwIp, 16);
  const hc = csum(ip.subarray(0, 20)); ip[10] = hc >> 8; ip[11] = hc & 0xff;
  ip.set(icmp, 20);
  const frame = new Uint8Array(14 + ip.length);
  frame.set(gwMac, 0); frame.set(mac, 6); frame[12] = 0x08; frame[13] = 0x00; frame.set(ip, 14);
  const t0 = performance.now();
  await s.send(withType(0x01, frame));
  const r = await s.next((d) => d[0] === 0x01 && d[13] === 0x08 && d[14] === 0x00 && d[1 + 23] === 1 &&
    d[1 + 34] === 0, 5000, 'echo reply');
  const rtt = performance.now() - t0;
  const body = r.subarray(1 + 34);
  if (body[4] !== 0x12 || body[5] !== 0x34 || body[7] !== 1) throw new Error('echo reply id/seq differ');
  if (!sameBytes(body.subarray(8), payload)) throw new Error('echo reply payload differs');
  if (csum(body) !== 0) throw new Error('echo reply checksum wrong');
  await s.close(0, 'done');
  return { gatewayMac: gwMac, pingRttMs: Math.round(rtt * 100) / 100 };
}

const scenarios = { register: scenarioRegister, hold: scenarioHold, switch: scenarioSwitch,
  gateway: scenarioGateway, claim: scenarioClaim };

(async () => {
  let report;
  try {
    if (typeof WebTransport === 'undefined') throw new Error('WebTransport is not available in this browser');
    const fn = scenarios[scenario];
    if (!fn) throw new Error(`unknown scenario ${scenario}`);
    report = { ok: true, userAgent: navigator.userAgent, ...(await fn()) };
  } catch (e) {
    report = { ok: false, error: String(e && e.stack || e), userAgent: navigator.userAgent };
  }
  log(`report: ${JSON.stringify(report)}`);
  await fetch('/report', { method: 'POST', body: JSON.stringify(report) });
})();
