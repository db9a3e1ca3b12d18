// The status page (GET / on the ops listener) in headless Chromium: a
// native session in a room whose name is markup is shown in the session
// table as text (no element made from it), with its MAC and no NAT flows
// (tests/netns/test_status_nat.sh makes real ones); when the session
// ends, the page's own refresh (it fetches /status every few seconds)
// drops the row.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRelay, fail, pass, shutdown, withDeadline, requireFile } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const buildDir = process.env.BUILD_DIR || join(here, '../../build');
const ROOM = '/<b id="inj">x</b>';
const MAC = '52:54:00:5b:00:01';

const srv = createServer();
await new Promise((res) => srv.listen(0, '127.0.0.1', res));
const opsPort = srv.address().port;
await new Promise((res) => srv.close(res));

const relay = await startRelay(['--http-listen', `127.0.0.1:${opsPort}`, '--workers', '2']);
const client = spawn(join(buildDir, 'wtclient'), ['--url', `${relay.url}${ROOM}`, '--cert-hash', relay.hash,
  '--mac', MAC, '--hold', '8', '--tick', '1', '--timeout', '20'], { stdio: 'ignore' });
process.on('exit', () => { if (client.exitCode === null) client.kill('SIGKILL'); });
await withDeadline(new Promise((res) => {
  const iv = setInterval(() => { if (/msg="peer registered"/.test(relay.log)) { clearInterval(iv); res(); } }, 50);
}), 10000, 'session registered').catch((e) => fail(e.message));

requireFile('/usr/bin/chromium', 'Debian chromium');
let chromium;
try { ({ chromium } = await import('playwright-core')); } catch (e) { fail(`playwright-core missing (npm ci in tests/browser): ${e.message}`); }
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium', headless: true, chromiumSandbox: false,
  args: ['--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(`http://127.0.0.1:${opsPort}/`)) external.push(r.url()); });
  await page.goto(`http://127.0.0.1:${opsPort}/`);
  const row = page.locator('#sessions tr', { hasText: MAC });
  await row.waitFor({ timeout: 10000 }).catch(() => fail(`no session row with ${MAC}`));
  const cells = await row.locator('td').allTextContents();
  if (cells[0] !== ROOM) fail(`room cell ${JSON.stringify(cells[0])}, expected ${JSON.stringify(ROOM)}`);
  if (await page.locator('#inj').count() !== 0) fail('the room name became markup');
  // the NAT flow columns, 0 for a session that made none
  const heads = await page.locator('#sessions th').allTextContents();
  const nat = ['NAT UDP', 'NAT ICMP', 'NAT TCP'].map((h) => heads.indexOf(h));
  if (nat.some((i) => i < 0)) fail(`no NAT flow columns in ${JSON.stringify(heads)}`);
  if (nat.some((i) => cells[i] !== '0')) fail(`NAT flows ${JSON.stringify(nat.map((i) => cells[i]))}, expected 0`);
  const summary = await page.locator('#summary').textContent();
  if (!/version \S+, up \d+ s, certificate [0-9a-f]{64} until .*1 sessions in 1 rooms/.test(summary)) fail(`summary: ${summary}`);
  pass(`chromium renders the status page: session row ${JSON.stringify(cells.slice(0, 7))}`);
  // the client ends its session after --hold; the page refreshes itself
  await row.waitFor({ state: 'detached', timeout: 15000 }).catch(() => fail('the ended session stays on the page'));
  if (errors.length || external.length) fail(`page errors ${JSON.stringify(errors)}, external requests ${JSON.stringify(external)}`);
  pass('the page refreshed itself: the ended session left the table; no errors, no external requests');
} finally {
  await browser.close().catch(() => {});
}
await relay.stop();
shutdown();
