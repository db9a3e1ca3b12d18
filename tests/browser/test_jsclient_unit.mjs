// clients/js/wtrelay.js in Node against a scripted WebTransport stand-in:
// the byte formats (Register, whole frames, chunk headers and sizes), the
// reassembly bounds (out of order, duplicates, bad index, changed total,
// too big, eviction, age limit), Error handling, heartbeats, the silence
// limit and the reconnect. The real sessions are in test_jsclient_*.mjs.
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = process.env.SOURCE_DIR || join(here, '../..');
const dec = new TextDecoder();
const enc = new TextEncoder();

// One fake session; the "relay" answers Register with Assigned (or
// with the Error in FakeWT.refuse) and Heartbeat with HeartbeatAck.
class FakeWT {
  static all = [];
  static maxDatagramSize = 1201;
  static refuse = null;
  static silent = false;
  static stall = false;
  static refuseTimes = Infinity;
  constructor(url, init) {
    this.url = url;
    this.init = init;
    this.sent = [];
    FakeWT.all.push(this);
    this.closed = new Promise((res) => { this.closeWith = res; });
    this.ready = Promise.resolve();
    const self = this;
    this.datagrams = {
      maxDatagramSize: FakeWT.maxDatagramSize,
      readable: new ReadableStream({ start(c) { self.ctl = c; } }),
      writable: new WritableStream({
        write(d) {
          self.sent.push(d);
          self.answer(d);
          if (FakeWT.stall) return new Promise(() => {}); // a path that carries nothing more
        },
      }),
    };
  }
  answer(d) {
    if (d[0] !== 0 || FakeWT.silent) return;
    const m = JSON.parse(dec.decode(d.subarray(1)));
    if (m.type === 'Register') {
      const refuse = FakeWT.refuse && FakeWT.refuseTimes-- > 0;
      this.control(refuse ? { type: 'Error', message: FakeWT.refuse }
        : { type: 'Assigned', ip: [10, 0, 2, 254 - FakeWT.all.indexOf(this) % 2], gateway: [10, 0, 2, 2],
          netmask: [255, 255, 255, 0], dns: [10, 0, 2, 3] });
    } else if (m.type === 'Heartbeat') {
      this.control({ type: 'HeartbeatAck' });
    }
  }
  control(obj) { this.deliver(Uint8Array.from([0, ...enc.encode(JSON.stringify(obj))])); }
  deliver(d) { this.ctl.enqueue(d); }
  close(info = {}) {
    this.closeWith({ closeCode: info.closeCode || 0, reason: info.reason || '' });
    try { this.ctl.close(); } catch { /* closed */ }
  }
}
globalThis.WebTransport = FakeWT;
const { WtRelay, randomMac, formatAddress } = await import(pathToFileURL(join(root, 'clients/js/wtrelay.js')).href);

const tick = (ms = 0) => new Promise((res) => setTimeout(res, ms));
const frames = (nic) => { const got = []; nic.addEventListener('frame', (e) => got.push(e.detail)); return got; };
const chunk = (id, index, total, data) => Uint8Array.from([2, id >> 8, id & 0xff, index, total, ...data]);
const fill = (len, seed) => Uint8Array.from({ length: len }, (_, i) => (seed + i * 7) & 0xff);
const base = { url: 'https://127.0.0.1:4433/unit', certHash: 'ab'.repeat(32), mac: '52:54:00:01:02:03' };
let n = 0;
async function test(name, fn) {
  FakeWT.all = []; FakeWT.maxDatagramSize = 1201; FakeWT.refuse = null; FakeWT.silent = false;
  FakeWT.stall = false; FakeWT.refuseTimes = Infinity;
  await fn();
  console.log(`ok ${++n} - ${name}`);
}

await test('Register carries the MAC as six numbers; Assigned fills ip, gateway, netmask, dns', async () => {
  const nic = await WtRelay.connect(base);
  const wt = FakeWT.all[0];
  assert.equal(dec.decode(wt.sent[0]), '\0{"type":"Register","mac":[82,84,0,1,2,3]}');
  assert.deepEqual(Array.from(wt.init.serverCertificateHashes[0].value), new Array(32).fill(0xab));
  assert.equal(wt.init.serverCertificateHashes[0].algorithm, 'sha-256');
  assert.deepEqual([nic.ip, nic.gateway, nic.netmask, nic.dns], [[10, 0, 2, 254], [10, 0, 2, 2], [255, 255, 255, 0], [10, 0, 2, 3]]);
  assert.equal(nic.state, 'registered');
  nic.close();
});

await test('a random MAC is locally administered unicast; a group MAC is refused', async () => {
  for (let i = 0; i < 64; i++) assert.equal(randomMac()[0] & 3, 2);
  assert.throws(() => new WtRelay({ ...base, mac: '01:00:5e:00:00:01' }), /group/);
  assert.throws(() => new WtRelay({ ...base, mac: '52:54:00:01:02' }), /bad MAC/);
  assert.equal(formatAddress([82, 84, 0, 1, 2, 255]), '52:54:00:01:02:ff');
});

await test('a frame that fits goes whole; a larger one as equal 900-byte chunks', async () => {
  const nic = await WtRelay.connect(base);
  const wt = FakeWT.all[0];
  const from = wt.sent.length;
  assert.equal(nic.send(fill(1200, 1)), true);
  assert.equal(nic.send(fill(1514, 2)), true);
  await tick();
  const out = wt.sent.slice(from);
  assert.equal(out.length, 3);
  assert.deepEqual(out[0], Uint8Array.from([1, ...fill(1200, 1)]));
  assert.deepEqual(Array.from(out[1].subarray(0, 5)), [2, 0, 1, 0, 2]);
  assert.deepEqual(Array.from(out[2].subarray(0, 5)), [2, 0, 1, 1, 2]);
  assert.equal(out[1].length, 5 + 900);
  assert.deepEqual(Uint8Array.from([...out[1].subarray(5), ...out[2].subarray(5)]), fill(1514, 2));
  assert.equal(nic.counters.chunksOut, 2);
  assert.equal(nic.send(fill(255 * 900 + 1, 3)), false);
  assert.equal(nic.counters.sendDrops, 1);
  nic.close();
});

await test('with a small maxDatagramSize the chunks shrink to fit it', async () => {
  FakeWT.maxDatagramSize = 600;
  const nic = await WtRelay.connect(base);
  const wt = FakeWT.all[0];
  const from = wt.sent.length;
  nic.send(fill(1514, 4));
  await tick();
  const out = wt.sent.slice(from);
  assert.deepEqual(out.map((d) => d.length), [600, 600, 1514 - 2 * 595 + 5]);
  assert.ok(out.every((d) => d[4] === 3));
  nic.close();
});

await test('frames are dropped, not queued without bound, when the path does not take them', async () => {
  const nic = await WtRelay.connect(base);
  FakeWT.stall = true;
  let sent = 0;
  for (let i = 0; i < 400; i++) sent += nic.send(fill(60, i)) ? 1 : 0;
  assert.ok(sent >= 256 && sent < 300, `${sent} sent`);
  assert.equal(nic.counters.sendDrops, 400 - sent);
  nic.close();
});

await test('chunks out of order, duplicates, bad index, changed total, too big', async () => {
  const nic = await WtRelay.connect(base);
  const wt = FakeWT.all[0];
  const got = frames(nic);
  const f = fill(1514, 5);
  wt.deliver(chunk(7, 1, 2, f.subarray(900)));
  wt.deliver(chunk(7, 1, 2, f.subarray(900)));
  wt.deliver(chunk(7, 0, 2, f.subarray(0, 900)));
  wt.deliver(Uint8Array.from([1, ...fill(60, 6)]));
  wt.deliver(chunk(8, 2, 2, fill(10, 0)));
  wt.deliver(chunk(9, 0, 2, fill(900, 0)));
  wt.deliver(chunk(9, 1, 3, fill(10, 0)));
  wt.deliver(chunk(10, 0, 3, fill(900, 0)));
  wt.deliver(chunk(10, 1, 3, fill(900, 0)));
  wt.deliver(Uint8Array.from([7, 1, 2]));
  await tick(10);
  assert.equal(got.length, 2);
  assert.deepEqual(got[0], f);
  assert.deepEqual(got[1], fill(60, 6));
  const c = nic.counters;
  assert.deepEqual([c.chunkDuplicates, c.reassemblyDrops, c.badDatagrams, c.framesIn], [1, 3, 1, 2]);
  nic.close();
});

await test('the reassembly table is bounded and partial frames age out', async () => {
  const nic = await WtRelay.connect({ ...base, maxReassembly: 2, reassemblyTimeoutMs: 50 });
  const wt = FakeWT.all[0];
  const got = frames(nic);
  for (const id of [1, 2, 3]) wt.deliver(chunk(id, 0, 2, fill(900, id)));
  await tick(10);
  assert.equal(nic.counters.reassemblyDrops, 1); // 1 evicted for 3
  wt.deliver(chunk(1, 1, 2, fill(5, 0)));
  await tick(80);
  wt.deliver(chunk(4, 0, 2, fill(900, 4)));
  await tick(10);
  assert.equal(nic.counters.reassemblyDrops, 4); // 2, 3 and the new 1 aged
  wt.deliver(chunk(4, 1, 2, fill(5, 9)));
  await tick(10);
  assert.equal(got.length, 1);
  assert.deepEqual(got[0], Uint8Array.from([...fill(900, 4), ...fill(5, 9)]));
  nic.close();
});

await test('an Error to Register rejects connect; a later Error is an error event', async () => {
  FakeWT.refuse = 'IP pool exhausted';
  await assert.rejects(WtRelay.connect(base), /IP pool exhausted/);
  FakeWT.refuse = null;
  const nic = await WtRelay.connect(base);
  const errors = [];
  nic.addEventListener('error', (e) => errors.push(e.detail.message));
  FakeWT.all.at(-1).control({ type: 'Error', message: 'MAC address reserved' });
  await tick();
  assert.deepEqual(errors, ['MAC address reserved']);
  assert.equal(nic.state, 'registered');
  nic.close();
});

await test('"register again" (federated relays) registers again on the same session', async () => {
  FakeWT.refuse = 'address conflict between relays, register again';
  FakeWT.refuseTimes = 2;
  const nic = await WtRelay.connect(base);
  assert.equal(FakeWT.all.length, 1);
  assert.equal(FakeWT.all[0].sent.filter((d) => dec.decode(d).includes('Register')).length, 3);
  nic.close();
  FakeWT.refuseTimes = 4; // at most 3 more tries on one session
  await assert.rejects(WtRelay.connect(base), /register again/);
});

await test('a session closed because its MAC was taken over closes the NIC (no fight for the MAC)', async () => {
  const nic = await WtRelay.connect({ ...base, reconnect: { minMs: 10, maxMs: 10 } });
  FakeWT.all[0].close({ reason: 'MAC taken over by a new session' });
  await tick(50);
  assert.equal(nic.state, 'closed');
  assert.equal(FakeWT.all.length, 1);
});

await test('heartbeats on the timer; a closed session is replaced with the same MAC', async () => {
  const nic = await WtRelay.connect({ ...base, heartbeatMs: 20, reconnect: { minMs: 10, maxMs: 20 } });
  const states = [];
  nic.addEventListener('state', (e) => states.push(e.detail));
  await tick(70);
  assert.ok(nic.counters.heartbeats >= 2 && nic.counters.heartbeatAcks >= 2, JSON.stringify(nic.counters));
  FakeWT.all[0].close({ closeCode: 7, reason: 'relay shutting down' });
  await tick(60);
  assert.deepEqual(states.slice(0, 2), [{ state: 'reconnecting', code: 7, reason: 'relay shutting down' }, { state: 'registered', transport: 'webtransport' }]);
  assert.equal(dec.decode(FakeWT.all[1].sent[0]), '\0{"type":"Register","mac":[82,84,0,1,2,3]}');
  assert.equal(nic.counters.reconnects, 1);
  assert.equal(nic.send(fill(60, 1)), true);
  nic.close();
});

await test('a relay silent for deadMs: the session is dropped and replaced', async () => {
  const nic = await WtRelay.connect({ ...base, heartbeatMs: 10, deadMs: 40, registerTimeoutMs: 50,
    reconnect: { minMs: 10, maxMs: 10 } });
  const states = [];
  nic.addEventListener('state', (e) => states.push(e.detail.state));
  FakeWT.silent = true;
  await tick(80);
  assert.equal(states[0], 'reconnecting');
  FakeWT.silent = false;
  await tick(150);
  assert.equal(nic.state, 'registered');
  assert.ok(nic.counters.reconnects >= 1);
  nic.close();
});

await test('ticks further apart than deadMs (a hidden tab) do not drop a session that answers', async () => {
  const nic = await WtRelay.connect({ ...base, heartbeatMs: 60, deadMs: 30, reconnect: { minMs: 10, maxMs: 10 } });
  await tick(260);
  assert.equal(nic.counters.reconnects, 0);
  assert.ok(nic.counters.heartbeatAcks >= 3);
  FakeWT.silent = true;
  await tick(150);
  assert.notEqual(nic.state, 'registered');
  nic.close();
});

await test('without reconnect a lost session closes the NIC; close() fires close once', async () => {
  const nic = await WtRelay.connect({ ...base, reconnect: false });
  const closes = [];
  nic.addEventListener('close', (e) => closes.push(e.detail));
  FakeWT.all[0].close({ closeCode: 3, reason: 'gone' });
  await tick(10);
  nic.close();
  assert.deepEqual(closes, [{ code: 3, reason: 'gone' }]);
  assert.equal(nic.state, 'closed');
  assert.equal(nic.send(fill(60, 1)), false);
  assert.equal(FakeWT.all.length, 1);
});
