// The two-NIC example: two WtRelay NICs in one page, each a tiny host that
// answers ARP and ping for its own address, ARP for and ping the gateway and
// each other. Progress shows in #status; data-gateway-ping and
// data-peer-ping become "ok" when every ping of that kind was answered.
import { WtRelay, formatAddress } from '../clients/js/wtrelay.js';
import * as pk from './packets.js';

const q = new URLSearchParams(location.search);
const url = q.get('relay') || 'https://127.0.0.1:4433/demo';
const certHash = q.get('certHash') || undefined;
const certHashUrl = certHash ? undefined : q.get('certHashUrl') || 'http://127.0.0.1:8433/cert-hash';
const status = document.getElementById('status');
const MAX_ROWS = 60;

function row(cells, cls) {
  const tr = document.createElement('tr');
  if (cls) tr.className = cls;
  for (const c of cells) {
    const td = document.createElement('td');
    td.textContent = c;
    tr.append(td);
  }
  return tr;
}

function describe(p) {
  if (p.kind === 'arp') {
    return p.op === 1 ? `ARP who-has ${formatAddress(p.targetIp)} tell ${formatAddress(p.senderIp)}`
      : `ARP ${formatAddress(p.senderIp)} is-at ${formatAddress(p.senderMac)}`;
  }
  if (p.kind === 'icmp') {
    const what = p.icmpType === 8 ? 'echo request' : p.icmpType === 0 ? 'echo reply' : `ICMP type ${p.icmpType}`;
    return `${what} ${formatAddress(p.srcIp)} > ${formatAddress(p.dstIp)} id ${p.id} seq ${p.seq}`;
  }
  if (p.kind === 'ipv4') return `IPv4 proto ${p.proto} ${formatAddress(p.srcIp)} > ${formatAddress(p.dstIp)}`;
  return `ethertype 0x${p.type.toString(16).padStart(4, '0')}`;
}

function showFrame(name, dir, frame) {
  const p = pk.parse(frame);
  const body = /** @type {HTMLTableSectionElement} */ (document.querySelector('#frames tbody'));
  const t = new Date().toISOString().slice(11, 23);
  body.prepend(row([t, name, dir, formatAddress(p.src), formatAddress(p.dst), describe(p), String(p.length)], dir));
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
}

// One NIC and the host behind it: an ARP cache, replies to ARP and ping,
// waiters for the frames a ping or an ARP request expects.
class Host {
  constructor(name, nic) {
    this.name = name;
    this.nic = nic;
    this.arpCache = new Map();
    this.waiters = new Set();
    this.seq = 0;
    nic.addEventListener('frame', (e) => this.#onFrame(e.detail));
  }

  #onFrame(frame) {
    showFrame(this.name, 'in', frame);
    const reply = pk.answer(frame, this.nic.mac, this.nic.ip);
    if (reply) this.send(reply);
    const p = pk.parse(frame);
    if (p.kind === 'arp') this.arpCache.set(formatAddress(p.senderIp), p.senderMac);
    for (const w of this.waiters) w(p);
  }

  send(frame) {
    showFrame(this.name, 'out', frame);
    this.nic.send(frame);
  }

  // The first frame for which pred(parsed) is true, sending `frame` every
  // second until then (datagrams can be lost).
  exchange(frame, pred, ms, what) {
    return new Promise((resolve, reject) => {
      const done = (err, p) => {
        this.waiters.delete(waiter);
        clearInterval(resend);
        clearTimeout(timer);
        if (err) reject(err); else resolve(p);
      };
      const waiter = (p) => { if (pred(p)) done(null, p); };
      const resend = setInterval(() => this.send(frame), 1000);
      const timer = setTimeout(() => done(new Error(`${this.name}: no answer to ${what} in ${ms} ms`)), ms);
      this.waiters.add(waiter);
      this.send(frame);
    });
  }

  async resolve(ip) {
    const key = formatAddress(ip);
    if (this.arpCache.has(key)) return this.arpCache.get(key);
    const req = pk.arp(1, this.nic.mac, this.nic.ip, pk.BROADCAST, ip);
    const p = await this.exchange(req, (x) => x.kind === 'arp' && x.op === 2 && pk.sameBytes(x.senderIp, ip), 5000,
      `ARP for ${key}`);
    return p.senderMac;
  }

  // Pings ip once with size bytes of ICMP data (1472 makes a full
  // 1514-byte frame, which travels as chunks); resolves with the
  // round-trip time in ms.
  async ping(ip, size = 56) {
    const mac = await this.resolve(ip);
    const seq = ++this.seq;
    const id = 0x5700 + this.name.charCodeAt(0);
    const data = new Uint8Array(size);
    data.set(new TextEncoder().encode(`wtrelay example ping ${this.name} ${seq}`).subarray(0, size));
    const t0 = performance.now();
    const req = pk.icmpEcho(8, this.nic.mac, this.nic.ip, mac, ip, id, seq, data);
    await this.exchange(req, (x) => x.kind === 'icmp' && x.icmpType === 0 && x.id === id && x.seq === seq &&
      pk.sameBytes(x.srcIp, ip) && x.checksumOk && pk.sameBytes(x.data, data), 5000, `ping ${formatAddress(ip)}`);
    return performance.now() - t0;
  }
}

function showNics(hosts) {
  const body = document.querySelector('#nics tbody');
  body.replaceChildren(...hosts.map((h) => {
    const n = h.nic, c = n.counters;
    return row([h.name, formatAddress(n.mac), n.ip ? formatAddress(n.ip) : '-', n.state,
      `${c.framesIn}/${c.framesOut}`, `${c.chunksIn}/${c.chunksOut}`, String(c.reconnects)]);
  }));
}

async function pingAll(hosts) {
  const body = document.querySelector('#pings tbody');
  const results = { gateway: true, peer: true };
  const jobs = [];
  for (const h of hosts) {
    const peer = hosts.find((x) => x !== h);
    for (const [kind, ip, size] of [['gateway', h.nic.gateway, 56], ['peer', peer.nic.ip, 1472]]) {
      const to = `${kind} ${formatAddress(ip)}, ${size} bytes`;
      jobs.push(h.ping(ip, size).then((ms) => {
        body.append(row([h.name, to, `reply in ${ms.toFixed(1)} ms`]));
      }, (e) => {
        results[kind] = false;
        body.append(row([h.name, to, String(e.message)]));
      }));
    }
  }
  await Promise.all(jobs);
  return results;
}

async function main() {
  const connect = (name) => WtRelay.connect({ url, certHash, certHashUrl, heartbeatMs: 5000 })
    .then((nic) => new Host(name, nic));
  const hosts = await Promise.all([connect('A'), connect('B')]);
  for (const h of hosts) {
    h.nic.addEventListener('state', () => showNics(hosts));
    h.nic.addEventListener('error', (e) => { status.textContent = `${h.name}: relay error: ${e.detail.message}`; });
  }
  setInterval(() => showNics(hosts), 1000);
  showNics(hosts);
  status.textContent = `registered: A ${formatAddress(hosts[0].nic.ip)}, B ${formatAddress(hosts[1].nic.ip)}; pinging…`;
  const round = async () => {
    const r = await pingAll(hosts);
    status.dataset.gatewayPing = r.gateway ? 'ok' : 'failed';
    status.dataset.peerPing = r.peer ? 'ok' : 'failed';
    status.textContent = `gateway ping: ${status.dataset.gatewayPing}, ping between the NICs: ${status.dataset.peerPing}`;
    showNics(hosts);
  };
  const again = /** @type {HTMLButtonElement} */ (document.getElementById('again'));
  again.onclick = () => { again.disabled = true; round().finally(() => { again.disabled = false; }); };
  await round();
  again.disabled = false;
}

main().catch((e) => {
  status.dataset.error = String(e.message || e);
  status.textContent = `failed: ${status.dataset.error}`;
});
