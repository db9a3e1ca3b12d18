// The WebSocket fallback's bounds against hostile or broken clients (no
// browser: raw TLS sockets from Node): a client that never sends its
// Upgrade gets 408 and is closed; an oversized request head gets 431; a
// client that stops reading while a room-mate floods it with frames keeps at
// most its queue (frames beyond it are dropped and counted) while the
// room-mate keeps full service (every ping of the gateway answered); the
// per-address connection cap refuses the next connection; takeover, origins,
// tokens and certificate reloads work for WebSocket sessions.
import { connect } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync, copyFileSync, renameSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startRelay, fail, pass, shutdown, withDeadline, freeTcpPort, tmp, certPair } from './lib.mjs';

const opsPort = await freeTcpPort();
const relay = await startRelay(['--http-listen', `127.0.0.1:${opsPort}`, '--ws-max-queue', '65536',
  '--ws-max-conns-per-ip', '6', '--workers', '1', '--log-level', 'debug']);

function tlsOpen(port = relay.port) {
  return withDeadline(new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] },
      () => res(s));
    s.on('error', rej);
  }), 5000, 'TLS connect');
}

function readAll(s, ms) {
  return withDeadline(new Promise((res) => {
    let buf = '';
    s.on('data', (d) => { buf += d.toString('latin1'); });
    s.on('close', () => res(buf));
  }), ms, 'connection close');
}

// A WebSocket client over a TLS socket: frames out masked, frames in parsed.
// opts.origin: an Origin header; opts.status: the refusal expected instead
// of 101 (the promise then resolves with the answer's head).
async function wsOpen(room, opts = {}, port = relay.port) {
  const s = await tlsOpen(port);
  const key = randomBytes(16).toString('base64');
  s.write(`GET ${room} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
    + `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: bavy\r\n`
    + (opts.origin ? `Origin: ${opts.origin}\r\n` : '') + '\r\n');
  if (opts.status) {
    const got = await readAll(s, 5000);
    if (!got.startsWith(`HTTP/1.1 ${opts.status} `)) fail(`${room}: ${JSON.stringify(got.slice(0, 60))}, not ${opts.status}`);
    return null;
  }
  let buf = Buffer.alloc(0);
  const msgs = [], waiters = [];
  let upgraded = false;
  const c = { s, msgs, closed: false, pong: true };
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString();
      if (!/^HTTP\/1\.1 101 /.test(head)) fail(`upgrade: ${head}`);
      upgraded = true;
      buf = buf.subarray(end + 4);
    }
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (buf.length < off + len) return;
      const op = buf[0] & 0x0f, payload = buf.subarray(off, off + len);
      buf = buf.subarray(off + len);
      if (op === 2) {
        msgs.push(payload);
        for (const w of waiters.splice(0)) w();
      } else if (op === 9 && c.pong) {
        c.send(payload, 10); // a browser answers every ping
      }
    }
  });
  s.on('close', () => { c.closed = true; for (const w of waiters.splice(0)) w(); });
  c.send = (payload, op = 2) => {
    const mask = randomBytes(4);
    const hdr = payload.length < 126 ? Buffer.from([0x80 | op, 0x80 | payload.length])
      : Buffer.from([0x80 | op, 0x80 | 126, payload.length >> 8, payload.length & 255]);
    const body = Buffer.from(payload);
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
    return s.write(Buffer.concat([hdr, mask, body]));
  };
  c.next = (pred, ms = 8000) => withDeadline(new Promise((res) => {
    const look = () => {
      const i = msgs.findIndex(pred);
      if (i >= 0) { res(msgs.splice(i, 1)[0]); return; }
      waiters.push(look);
    };
    look();
  }), ms, 'websocket message');
  return c;
}

const ctrl = (o) => Buffer.concat([Buffer.from([0]), Buffer.from(JSON.stringify(o))]);
async function register(c, mac) {
  c.send(ctrl({ type: 'Register', mac }));
  const m = await c.next((d) => d[0] === 0);
  const a = JSON.parse(m.subarray(1).toString());
  if (a.type !== 'Assigned') fail(`register: ${JSON.stringify(a)}`);
  return a;
}

function csum(b) {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i] << 8) | b[i + 1];
  if (b.length & 1) s += b[b.length - 1] << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}
function echoFrame(mac, ip, gwMac, gw, seq) {
  const icmp = Buffer.alloc(8 + 32, 7);
  icmp[0] = 8; icmp[1] = 0; icmp.writeUInt16BE(0, 2); icmp.writeUInt16BE(99, 4); icmp.writeUInt16BE(seq, 6);
  icmp.writeUInt16BE(csum(icmp), 2);
  const iph = Buffer.alloc(20);
  iph[0] = 0x45; iph.writeUInt16BE(20 + icmp.length, 2); iph[8] = 64; iph[9] = 1;
  Buffer.from(ip).copy(iph, 12); Buffer.from(gw).copy(iph, 16);
  iph.writeUInt16BE(csum(iph), 10);
  return Buffer.concat([Buffer.from([1]), Buffer.from(gwMac), Buffer.from(mac), Buffer.from([8, 0]), iph, icmp]);
}

async function metric(name) {
  const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

// 1. no Upgrade within the deadline: 408, closed
{
  const s = await tlsOpen();
  const got = await readAll(s, 20000).catch((e) => fail(e.message));
  if (!/^HTTP\/1\.1 408 /.test(got)) fail(`a silent client got ${JSON.stringify(got.slice(0, 40))}, not 408`);
  pass('a client that sends no Upgrade request gets 408 and is closed');
}
// 2. an oversized request head: 431
{
  const s = await tlsOpen();
  s.write(`GET /x HTTP/1.1\r\nHost: a\r\nX-Pad: ${'a'.repeat(6000)}\r\n\r\n`);
  const got = await readAll(s, 10000).catch((e) => fail(e.message));
  if (!/^HTTP\/1\.1 431 /.test(got)) fail(`an oversized head got ${JSON.stringify(got.slice(0, 40))}, not 431`);
  pass('an oversized request head gets 431');
}
// 3. a reader that never reads, and a room-mate that floods and pings
{
  const slow = await wsOpen('/bounded');
  const macA = [0x52, 0x54, 0, 0xcc, 0, 1], macB = [0x52, 0x54, 0, 0xcc, 0, 2];
  await register(slow, macA);
  slow.s.pause(); // stops reading: TCP fills, then the relay's queue
  const fast = await wsOpen('/bounded');
  const a = await register(fast, macB);
  const st = await (await fetch(`http://127.0.0.1:${opsPort}/status`)).json();
  const mine = st.sessions.filter((x) => x.room === '/bounded' && x.transport === 'websocket' && x.state === 'registered');
  if (mine.length !== 2) fail(`/status lists ${mine.length} registered websocket sessions of /bounded: ${JSON.stringify(st.sessions)}`);
  pass('/status lists both sessions with transport "websocket"');
  const before = await metric('wtrelay_ws_send_dropped_total');
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${relay.proc.pid}/status`, 'utf8'))[1]);
  const rss0 = rss();
  // unicast to the non-reader (storm control would hold back broadcasts)
  const bcast = Buffer.alloc(1 + 1400, 3);
  bcast[0] = 1; Buffer.from(macA).copy(bcast, 1); Buffer.from(macB).copy(bcast, 7);
  bcast[13] = 0x88; bcast[14] = 0xb5;
  const gwMac = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
  let answered = 0;
  const ROUNDS = 100; // 10 000 frames of 1.4 KB: more than the kernel's socket buffers hold
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < 100; i++) fast.send(bcast);
    fast.send(echoFrame(macB, a.ip, gwMac, a.gateway, round));
    await fast.next((d) => d[0] === 1 && d.length > 35 && d[13] === 8 && d[24] === 1 && d[35] === 0
      && d.readUInt16BE(41) === round, 5000).catch(() => fail(`echo ${round} not answered while a room-mate does not read`));
    answered++;
    fast.msgs.length = 0;
  }
  pass(`a room-mate that reads kept full service: ${answered}/${ROUNDS} pings answered while it sent ${ROUNDS * 100} frames to the non-reader`);
  const dropped = await metric('wtrelay_ws_send_dropped_total');
  if (!(dropped > before)) fail(`no frame toward the non-reader was dropped (${before} -> ${dropped})`);
  const grew = rss() - rss0;
  // the bound: its 64 KiB queue and 32 KiB of TLS, whatever the sender sent
  // (not under AddressSanitizer, whose quarantine keeps freed memory)
  const asan = /libasan/.test(readFileSync(`/proc/${relay.proc.pid}/maps`, 'utf8'));
  if (!asan && grew > 16 * 1024) fail(`relay RSS grew by ${grew} KiB with one stalled reader`);
  pass(`frames toward the non-reader dropped and counted (${dropped - before}), relay RSS grew ${grew} KiB`);
  slow.s.destroy();
  fast.s.destroy();
}
// 4. connections per address: the 7th is refused
{
  const held = [];
  for (let i = 0; i < 6; i++) held.push(await tlsOpen());
  const refusedBefore = await metric('wtrelay_ws_connections_total{result="refused_per_ip"}');
  const extra = await tlsOpen().then((s) => readAll(s, 5000)).then(() => 'closed', (e) => `error ${e.message}`);
  const refused = await metric('wtrelay_ws_connections_total{result="refused_per_ip"}');
  if (!(refused > refusedBefore)) fail(`the 7th connection from one address was not refused (${extra})`);
  pass('the 7th connection from one address is refused (--ws-max-conns-per-ip 6)');
  for (const s of held) s.destroy();
}
// 5. takeover over WebSocket: a live holder (it answers the relay's probe,
// a ping) keeps its MAC; a silent one loses it to the newcomer, who gets
// the same address
{
  const mac = [0x52, 0x54, 0, 0xdd, 0, 9];
  const holder = await wsOpen('/take');
  const a = await register(holder, mac);
  const newcomer = await wsOpen('/take');
  newcomer.send(ctrl({ type: 'Register', mac }));
  const m = await newcomer.next((d) => d[0] === 0, 8000);
  const e = JSON.parse(m.subarray(1).toString());
  if (e.type !== 'Error' || !/already registered/.test(e.message)) fail(`a live holder's MAC: ${JSON.stringify(e)}`);
  pass('takeover: a holder that answers the probe (a ping) keeps its MAC; the newcomer gets an Error');
  holder.pong = false; // silent from now on
  newcomer.send(ctrl({ type: 'Register', mac }));
  const m2 = await newcomer.next((d) => d[0] === 0, 8000);
  const a2 = JSON.parse(m2.subarray(1).toString());
  if (a2.type !== 'Assigned' || a2.ip.join('.') !== a.ip.join('.')) fail(`takeover of a silent holder: ${JSON.stringify(a2)}`);
  await withDeadline(new Promise((res) => { const iv = setInterval(() => { if (holder.closed) { clearInterval(iv); res(); } }, 50); }),
    5000, 'the silent holder closed');
  pass(`takeover: a silent holder is released and closed; the newcomer gets its MAC and address ${a2.ip.join('.')}`);
  newcomer.s.destroy();
}
await relay.stop();

// 6. origins and tokens apply to WebSocket sessions as to WebTransport ones
{
  const r2 = await startRelay(['--allow-origin', 'https://vm.example', '--workers', '1']);
  await wsOpen('/o', { origin: 'https://evil.example', status: 403 }, r2.port);
  const ok = await wsOpen('/o', { origin: 'https://vm.example' }, r2.port);
  await register(ok, [0x52, 0x54, 0, 0xee, 0, 1]);
  ok.s.destroy();
  await r2.stop();
  pass('--allow-origin: a foreign Origin is refused with 403, the allowed one opens a session');
  const keyFile = join(tmp, 'auth.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'));
  const r3 = await startRelay(['--auth-key', keyFile, '--workers', '1']);
  const token = execFileSync(join(process.env.BUILD_DIR || 'build', 'wtrelay'), ['token', '--key', keyFile, '--room', '/auth'])
    .toString().trim();
  await wsOpen('/auth', { status: 401 }, r3.port);
  await wsOpen(`/other?token=${token}`, { status: 403 }, r3.port);
  const ok3 = await wsOpen(`/auth?token=${token}`, {}, r3.port);
  await register(ok3, [0x52, 0x54, 0, 0xee, 0, 2]);
  ok3.s.destroy();
  await r3.stop();
  pass('--auth-key: no token 401, a token for another room 403, the token in the query opens the session');
}

// 7. certificate reload: new WebSocket connections get the new certificate,
// an open one keeps working
{
  const a = join(tmp, 'ca'), b = join(tmp, 'cb'), live = join(tmp, 'clive');
  certPair(a); certPair(b); mkdirSync(live);
  copyFileSync(join(a, 'c.pem'), join(live, 'c.pem'));
  copyFileSync(join(a, 'k.pem'), join(live, 'k.pem'));
  const ops4 = await freeTcpPort();
  const r4 = await startRelay(['--cert-pem', join(live, 'c.pem'), '--key-pem', join(live, 'k.pem'),
    '--cert-poll-interval', '1', '--http-listen', `127.0.0.1:${ops4}`, '--workers', '1']);
  const fp = (c) => c.s.getPeerCertificate().fingerprint256.replace(/:/g, '').toLowerCase();
  const before = await wsOpen('/cert', {}, r4.port);
  await register(before, [0x52, 0x54, 0, 0xfa, 0, 1]);
  if (fp(before) !== r4.hash) fail(`the WebSocket's certificate ${fp(before)} is not the relay's ${r4.hash}`);
  copyFileSync(join(b, 'k.pem'), join(live, 'k.pem.new'));
  copyFileSync(join(b, 'c.pem'), join(live, 'c.pem.new'));
  renameSync(join(live, 'k.pem.new'), join(live, 'k.pem'));
  renameSync(join(live, 'c.pem.new'), join(live, 'c.pem'));
  let fresh = r4.hash;
  for (let i = 0; i < 50 && fresh === r4.hash; i++) {
    await new Promise((r) => setTimeout(r, 100));
    fresh = (await (await fetch(`http://127.0.0.1:${ops4}/cert-hash`)).json()).sha256;
  }
  if (fresh === r4.hash) fail('the certificate was not reloaded');
  const after = await wsOpen('/cert', {}, r4.port);
  if (fp(after) !== fresh) fail(`a new WebSocket got ${fp(after)}, not the reloaded ${fresh}`);
  before.send(ctrl({ type: 'Heartbeat' }));
  await before.next((d) => d[0] === 0 && /HeartbeatAck/.test(d.subarray(1).toString()), 5000)
    .catch(() => fail('the open WebSocket session stopped working after the reload'));
  pass('certificate reload: a new WebSocket connection gets the new certificate, the open one keeps working');
  before.s.destroy();
  after.s.destroy();
  await r4.stop();
}
shutdown();
