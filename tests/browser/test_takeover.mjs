// Takeover with real browsers: Chromium A registers MAC M and keeps its
// session; A's whole process group is killed (SIGKILL: no close reaches the
// relay, the connection just goes silent, as when a laptop's network dies);
// Chromium B registers M and must get Assigned with the same address, by
// the relay's takeover (log line "MAC taken over"), within 2 s.
import { startRelay, startPageServer, pageUrl, fail, pass, shutdown, withDeadline, tmp } from './lib.mjs';
import { join } from 'node:path';

let chromium;
try { ({ chromium } = await import('playwright-core')); } catch (e) { fail(`playwright-core missing (npm ci in tests/browser): ${e.message}`); }

async function claim(relay, name) {
  const pages = await startPageServer();
  // launchServer: the browser's process is ours to kill.
  const server = await chromium.launchServer({
    executablePath: '/usr/bin/chromium', headless: true, chromiumSandbox: false,
    args: ['--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', `--log-net-log=${join(tmp, `netlog-${name}.json`)}`],
  });
  const browser = await chromium.connect(server.wsEndpoint());
  const page = await browser.newPage();
  await page.goto(pageUrl(pages.origin, relay, { scenario: 'claim', room: '/takeover' }));
  const report = await withDeadline(pages.report, 30000, `${name} report`).catch((e) => ({ ok: false, error: e.message }));
  return { server, browser, report };
}

// With several workers (RELAY_WORKERS, e.g. 2) B's connection lands on
// A's worker or on another one as the kernel's hash (or the steering
// program) decides: rounds are played (B closed, its session ended, A again)
// until one crossed workers (the relay's "MAC taken over" line then names
// worker= and asker_worker=), at most 12; each round must pass.
const workers = Number(process.env.RELAY_WORKERS || 1);
const relay = await startRelay();
let crossed = 0;
let local = 0;
for (let round = 1; round <= (workers > 1 ? 12 : 1) && !crossed; round++) {
  const from = relay.log.length;
  const since = () => relay.log.slice(from);
  const a = await claim(relay, `A${round}`);
  if (!a.report.ok) fail(`chromium A: ${a.report.error}`);
  const ipA = a.report.assigned.ip.join('.');
  pass(`round ${round}: chromium A registered 52:54:00:b0:0b:03 and got ${ipA}`);

  // The browser runs in its own process group (playwright starts it detached):
  // kill every process of it at once, so nothing can send a close.
  const pid = a.server.process().pid;
  try { process.kill(-pid, 'SIGKILL'); } catch (e) { fail(`cannot kill chromium A's process group: ${e.message}`); }
  await new Promise((res) => setTimeout(res, 300));
  if (/session ended.*mac=52:54:00:b0:0b:03/.test(since())) fail('the relay saw A\'s session end: the kill was not silent');

  const b = await claim(relay, `B${round}`);
  if (!b.report.ok) fail(`chromium B: ${b.report.error}`);
  const ipB = b.report.assigned.ip.join('.');
  if (ipB !== ipA) fail(`chromium B got ${ipB}, A had ${ipA}`);
  const m = /msg="MAC taken over".*mac=52:54:00:b0:0b:03 ms=([0-9.]+)(.*)/.exec(since());
  if (!m) fail(`no takeover in the relay's log:\n${since().split('\n').filter((l) => /register|taken|session|takeover/.test(l)).join('\n')}`);
  if (b.report.registerMs > 2000) fail(`B's Register took ${b.report.registerMs} ms`);
  const x = / worker=(\d+) asker_worker=(\d+)/.exec(m[2]);
  if (x) crossed++; else local++;
  const where = x ? `across workers: holder on worker ${x[1]}, newcomer on worker ${x[2]}` : 'on one worker';
  pass(`round ${round}: chromium B registered the same MAC and got the same ${ipB} in ${b.report.registerMs} ms (relay verdict after ${m[1]} ms: old session silent; ${where})`);
  await b.browser.close().catch(() => {});
  await b.server.close().catch(() => {});
  if (workers > 1 && !crossed) {
    // the MAC is free again once the relay ended both sessions
    const t0 = Date.now();
    while ((since().match(/session ended.*mac=52:54:00:b0:0b:03/g) || []).length < 2 && Date.now() - t0 < 10000)
      await new Promise((res) => setTimeout(res, 100));
  }
}
if (workers > 1 && !crossed) fail(`${local} rounds, none crossed workers`);
await relay.stop();
shutdown();
