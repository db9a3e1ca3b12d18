// The WebSocket fallback in a browser: one NIC over WebTransport
// (clients/js/wtrelay.js) and one over a plain WebSocket (wss://, the
// `bavy` subprotocol, one datagram payload per binary message) in the
// same room; 1514-byte frames both ways (chunked on the WebTransport side,
// whole on the WebSocket side), ARP and ping of the gateway over the
// WebSocket, then an oversized message and a text message, each closing
// its connection with its code. Reports to the test server (POST /report).
import { WtRelay, formatAddress } from '/clients/js/wtrelay.js';
import { arp, icmpEcho, parse } from '/examples/packets.js';

const q = new URLSearchParams(location.search);
const log = (line) => {
  document.getElementById('log').textContent += line + '\n';
  fetch('/progress', { method: 'POST', body: line }).catch(() => {});
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

function wsOpen(url) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(url, 'bavy');
    ws.binaryType = 'arraybuffer';
    const t = setTimeout(() => rej(new Error('websocket open timeout')), 10000);
    ws.onopen = () => { clearTimeout(t); res(ws); };
    ws.onerror = () => { clearTimeout(t); rej(new Error('websocket error')); };
  });
}

function control(obj) {
  const j = new TextEncoder().encode(JSON.stringify(obj));
  const b = new Uint8Array(1 + j.length);
  b.set(j, 1);
  return b;
}

function frameMsg(f) {
  const b = new Uint8Array(1 + f.length);
  b[0] = 1;
  b.set(f, 1);
  return b;
}

// Messages of a WebSocket as a queue: next(pred) waits for one that matches.
function inbox(ws) {
  const q = [], waiters = [];
  ws.onmessage = (e) => {
    const d = new Uint8Array(e.data);
    const w = waiters.findIndex((x) => x.pred(d));
    if (w >= 0) waiters.splice(w, 1)[0].res(d); else q.push(d);
  };
  return (pred, ms = 8000, what = 'message') => new Promise((res, rej) => {
    const i = q.findIndex(pred);
    if (i >= 0) { res(q.splice(i, 1)[0]); return; }
    const t = setTimeout(() => rej(new Error(`timeout waiting for ${what}`)), ms);
    waiters.push({ pred, res: (d) => { clearTimeout(t); res(d); } });
  });
}

function closed(ws) {
  return new Promise((res) => { ws.onclose = (e) => res({ code: e.code, reason: e.reason }); });
}

async function run() {
  const wsUrl = q.get('ws'), room = q.get('room');
  const a = await WtRelay.connect({ url: q.get('relay') + room, certHash: q.get('hash'), mac: '52:54:00:aa:00:01' });
  log(`webtransport NIC ${formatAddress(a.ip)}`);
  const ws = await wsOpen(wsUrl + room);
  if (ws.protocol !== 'bavy') throw new Error(`subprotocol ${ws.protocol}`);
  const next = inbox(ws);
  const macB = [0x52, 0x54, 0x00, 0xbb, 0x00, 0x02];
  ws.send(control({ type: 'Register', mac: macB }));
  const assigned = JSON.parse(new TextDecoder().decode((await next((d) => d[0] === 0, 8000, 'Assigned')).subarray(1)));
  if (assigned.type !== 'Assigned') throw new Error(`register: ${JSON.stringify(assigned)}`);
  const ipB = assigned.ip;
  log(`websocket NIC ${ipB.join('.')}`);

  // 1514-byte frames both ways
  const big = (dst, src, seed) => {
    const f = new Uint8Array(1514);
    f.set(dst, 0); f.set(src, 6); f[12] = 0x88; f[13] = 0xb5;
    for (let i = 14; i < f.length; i++) f[i] = (i * seed) & 255;
    return f;
  };
  const ab = big(macB, a.mac, 7), ba = big(a.mac, macB, 13);
  const gotA = new Promise((res) => a.addEventListener('frame', (e) => { if (e.detail.length === 1514) res(e.detail); }));
  a.send(ab);
  const atB = await next((d) => d[0] === 1 && d.length === 1515, 8000, '1514-byte frame from the WebTransport NIC');
  if (!same(Array.from(atB.subarray(1)), Array.from(ab))) throw new Error('frame a->b differs');
  ws.send(frameMsg(ba));
  const atA = await Promise.race([gotA, sleep(8000).then(() => { throw new Error('frame b->a not received'); })]);
  if (!same(Array.from(atA), Array.from(ba))) throw new Error('frame b->a differs');
  log('1514-byte frames both ways');

  // ARP and ping of the gateway over the WebSocket
  ws.send(frameMsg(arp(1, macB, ipB, null, assigned.gateway)));
  const arpReply = parse((await next((d) => d[0] === 1 && parse(d.subarray(1)).kind === 'arp' && parse(d.subarray(1)).op === 2, 8000, 'ARP reply')).subarray(1));
  const gwMac = arpReply.senderMac;
  ws.send(frameMsg(icmpEcho(8, macB, ipB, gwMac, assigned.gateway, 77, 1, new Uint8Array(56).fill(9))));
  const echo = parse((await next((d) => d[0] === 1 && parse(d.subarray(1)).kind === 'icmp', 8000, 'echo reply')).subarray(1));
  if (echo.icmpType !== 0 || echo.id !== 77 || !echo.checksumOk) throw new Error(`echo: ${JSON.stringify(echo)}`);
  log('gateway answered ARP and ping over the WebSocket');

  // heartbeat answered
  ws.send(control({ type: 'Heartbeat' }));
  await next((d) => d[0] === 0 && /HeartbeatAck/.test(new TextDecoder().decode(d.subarray(1))), 8000, 'HeartbeatAck');

  // an oversized message closes with 1009, a text message with 1003
  const big2 = await wsOpen(wsUrl + room);
  const c1 = closed(big2);
  big2.send(new Uint8Array(4000));
  const r1 = await Promise.race([c1, sleep(8000).then(() => ({ code: 'none' }))]);
  const txt = await wsOpen(wsUrl + room);
  const c2 = closed(txt);
  txt.send('hello');
  const r2 = await Promise.race([c2, sleep(8000).then(() => ({ code: 'none' }))]);
  log(`closes: oversized ${r1.code}, text ${r2.code}`);
  ws.close(1000, 'done');

  // the module's fallback: a WebTransport URL nothing answers (UDP blocked)
  // falls back to the WebSocket after fallbackAfterMs ...
  const c = await WtRelay.connect({ url: `https://127.0.0.1:${q.get('deadPort')}${room}`, wsUrl: wsUrl + room,
    fallbackAfterMs: 2000, mac: '52:54:00:cc:00:03' });
  // ... and a browser without WebTransport goes to wss: on the same host and port
  const saved = globalThis.WebTransport;
  // @ts-ignore: a browser without WebTransport
  delete globalThis.WebTransport;
  let d;
  try {
    d = await WtRelay.connect({ url: q.get('relay') + room, mac: '52:54:00:dd:00:04' });
  } finally {
    globalThis.WebTransport = saved;
  }
  log(`fallback NICs: ${c.transport} ${formatAddress(c.ip)}, ${d.transport} ${formatAddress(d.ip)}, first NIC ${a.transport}`);
  const cd = big(d.mac, c.mac, 5);
  const gotD = new Promise((res) => d.addEventListener('frame', (e) => { if (e.detail.length === 1514) res(e.detail); }));
  if (!c.send(cd)) throw new Error('a 1514-byte frame over the WebSocket NIC was dropped');
  const atD = await Promise.race([gotD, sleep(8000).then(() => { throw new Error('frame c->d not received'); })]);
  if (!same(Array.from(atD), Array.from(cd))) throw new Error('frame c->d differs');
  const sentC = c.counters.chunksOut;
  c.close();
  d.close();
  a.close();
  return { ipA: formatAddress(a.ip), ipB: ipB.join('.'), gatewayMac: formatAddress(gwMac), oversized: r1.code, text: r2.code,
    transportA: a.transport, transportC: c.transport, transportD: d.transport, chunksC: sentC };
}

(async () => {
  let report;
  try {
    report = { ok: true, userAgent: navigator.userAgent, ...(await run()) };
  } catch (e) {
    report = { ok: false, error: String(e && e.stack || e), userAgent: navigator.userAgent };
  }
  log(`report: ${JSON.stringify(report)}`);
  await fetch('/report', { method: 'POST', body: JSON.stringify(report) });
})();
