// The JavaScript client's browser tests, for either browser: the page
// (jsclient_page.js) imports clients/js/wtrelay.js and examples/packets.js
// from the test's HTTP server, as a page author's page would.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRelay, startPageServer, runChromium, runFirefox, fail, pass, withDeadline, freeTcpPort, tmp } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = process.env.SOURCE_DIR || join(here, '../..');
const statics = { '/clients/': join(root, 'clients'), '/examples/': join(root, 'examples') };

async function relayWithOps(extra = []) {
  const opsPort = await freeTcpPort();
  const args = ['--http-listen', `127.0.0.1:${opsPort}`, ...extra];
  return { relay: await startRelay(args), args, certHashUrl: `http://127.0.0.1:${opsPort}/cert-hash` };
}

function run(browser, url, pages, ms) {
  return browser === 'chromium' ? runChromium(url, pages, ms) : runFirefox(url, pages, ms);
}

function waitProgress(pages, line, ms) {
  return withDeadline(new Promise((res) => {
    const iv = setInterval(() => { if (pages.progress.includes(line)) { clearInterval(iv); res(); } }, 50);
  }), ms, `page progress "${line}"`);
}

const addr = (s) => /^10\.0\.2\.(\d+)$/.exec(s || '');

// Two NICs in one page: distinct addresses, 1514-byte frames both ways
// (chunked both ways), ARP and ping of the gateway, then the relay is
// restarted on the same port with the same --lease-file (a new ephemeral
// certificate: the client fetches /cert-hash again) and both NICs must come
// back with their addresses; then a reconnect the page asks for.
export async function testNics(browser) {
  const { relay, args, certHashUrl } = await relayWithOps(['--lease-file', join(tmp, 'leases'), '--log-level', 'debug']);
  const pages = await startPageServer({ page: join(here, 'jsclient_page.js'), static: statics });
  const q = new URLSearchParams({ scenario: 'nics', relay: relay.url, room: '/js', certHashUrl });
  const running = run(browser, `${pages.origin}/?${q}`, pages, 45000);
  await Promise.race([waitProgress(pages, 'restart the relay', 30000), running.then((r) => { throw new Error(r.error); })])
    .catch((e) => fail(`${browser} nics: ${e.message}\n${pages.progress.join('\n')}`));
  await relay.stop();
  const again = await startRelay(args, { port: relay.port });
  await waitProgress(pages, 'stop the relay', 20000).catch((e) => fail(`${browser} nics: ${e.message}`));
  again.proc.kill('SIGSTOP');
  await waitProgress(pages, 'silence detected', 10000).catch((e) => fail(`${browser} nics: ${e.message}`));
  again.proc.kill('SIGCONT');
  const r = await running;
  if (!r.ok) fail(`${browser} nics: ${r.error}\nprogress:\n${pages.progress.join('\n')}\nconsole: ${(r.console || []).join('\n')}`);
  const [ma, mb] = [addr(r.ipA), addr(r.ipB)];
  if (!ma || !mb || r.ipA === r.ipB) fail(`${browser}: addresses ${r.ipA} and ${r.ipB}`);
  if ((parseInt(r.macB.slice(0, 2), 16) & 3) !== 2) fail(`${browser}: random MAC ${r.macB} is not locally administered unicast`);
  pass(`${browser}: two NICs registered: ${r.ipA} and ${r.ipB} (random MAC ${r.macB})`);
  for (const [dir, x] of [['a->b', r.ab], ['b->a', r.ba], ['a->b after restart', r.afterRestart]]) {
    if (!(x.sentChunks >= 2 && x.receivedChunks >= 2)) fail(`${browser}: 1514-byte frame ${dir} not chunked: ${JSON.stringify(x)}`);
  }
  pass(`${browser}: 1514-byte frames byte-exact both ways, sent as ${r.ab.sentChunks} chunks, received as ${r.ab.receivedChunks}`);
  if (r.gatewayMac !== '52:55:0a:00:02:02') fail(`${browser}: gateway ARP said ${r.gatewayMac}`);
  pass(`${browser}: ARP for 10.0.2.2 answered (${r.gatewayMac}) and the gateway answered ping, from both NICs`);
  if (r.restarted.a !== r.ipA || r.restarted.b !== r.ipB) fail(`${browser}: after the restart ${JSON.stringify(r.restarted)}`);
  if (!/^Certificate SHA-256 Hash: /m.test(again.log) || again.hash === relay.hash) fail(`${browser}: the restarted relay kept its hash`);
  pass(`${browser}: relay restarted (new certificate, same lease file): both NICs back with the same addresses, ` +
    `frames and ping work again (states of a: ${r.states.a.join(',')})`);
  if (r.requested !== r.ipA || r.countersA.reconnects !== 3 || r.countersB.reconnects !== 2) {
    fail(`${browser}: reconnect(): address ${r.requested}, reconnects a=${r.countersA.reconnects} b=${r.countersB.reconnects}`);
  }
  pass(`${browser}: reconnect() from the page keeps ${r.requested}`);
  if (!/^nothing from the relay/.test(r.silence) || r.afterSilence.join() !== [r.ipA, r.ipB].join()) {
    fail(`${browser}: relay stopped: ${JSON.stringify(r.silence)}, then ${r.afterSilence}`);
  }
  pass(`${browser}: relay stopped: the NIC noticed ("${r.silence}"), both NICs reconnected once it ran again, kept ${r.afterSilence.join(' and ')}`);
  if (!(r.heartbeatAcks[0] >= 2 && r.heartbeatAcks[1] >= 2)) fail(`${browser}: HeartbeatAcks ${r.heartbeatAcks}`);
  if (!r.closed || r.closed.reason !== 'done' || r.stateAfterClose !== 'closed') fail(`${browser}: close: ${JSON.stringify(r.closed)}`);
  if (r.countersA.sendDrops !== 1) fail(`${browser}: counters ${JSON.stringify(r.countersA)}`);
  pass(`${browser}: close() fires close and stops sending; counters a=${JSON.stringify(r.countersA)}`);
  await again.stop();
}

// examples/two-nics.html: its gateway and peer pings must succeed. With
// Chromium the example page is opened directly and a screenshot is saved;
// Firefox (not driven by playwright) runs it in an iframe of the test page.
export async function testExample(browser) {
  const { relay, certHashUrl } = await relayWithOps();
  const pages = await startPageServer({ page: join(here, 'jsclient_page.js'), static: statics });
  const room = '/example';
  let r;
  if (browser === 'chromium') r = await exampleInChromium(pages, relay.url + room, certHashUrl);
  else r = await run(browser, `${pages.origin}/?${new URLSearchParams({ scenario: 'example', relay: relay.url, room, certHashUrl })}`, pages, 40000);
  if (!r.ok || r.error || r.gatewayPing !== 'ok' || r.peerPing !== 'ok') fail(`${browser} example: ${JSON.stringify(r)}`);
  pass(`${browser}: examples/two-nics.html: "${r.status}" (${r.rows} frames listed)` + (r.screenshot ? `; screenshot ${r.screenshot}` : ''));
  await relay.stop();
}

async function exampleInChromium(pages, url, certHashUrl) {
  const { chromium } = await import('playwright-core').catch((e) => fail(`playwright-core missing: ${e.message}`));
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, chromiumSandbox: false,
    args: ['--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    await page.goto(`${pages.origin}/examples/two-nics.html?${new URLSearchParams({ relay: url, certHashUrl })}`);
    await page.waitForFunction(() => {
      const s = document.getElementById('status');
      return s.dataset.error || s.dataset.peerPing;
    }, null, { timeout: 20000 });
    const r = await page.evaluate(() => {
      const s = document.getElementById('status');
      return { ok: true, status: s.textContent, error: s.dataset.error || null, gatewayPing: s.dataset.gatewayPing || null,
        peerPing: s.dataset.peerPing || null, rows: document.querySelectorAll('#frames tbody tr').length };
    });
    // kept after the test (the harness's tmp is removed)
    r.screenshot = join(mkdtempSync(join(tmpdir(), 'wtrelay-jsclient-')), 'two-nics.png');
    await page.screenshot({ path: r.screenshot, fullPage: true });
    return r;
  } catch (e) {
    return { ok: false, error: e.message };
  } finally {
    await browser.close().catch(() => {});
  }
}

// examples/emulator-adapter.js with a stand-in for the emulator's bus (no
// real emulator): the guest's MAC is registered, ARP and ping of the
// gateway cross the bus both ways.
export async function testAdapter(browser) {
  const { relay, certHashUrl } = await relayWithOps();
  const pages = await startPageServer({ page: join(here, 'jsclient_page.js'), static: statics });
  const q = new URLSearchParams({ scenario: 'adapter', relay: relay.url, room: '/adapter', certHashUrl });
  const r = await run(browser, `${pages.origin}/?${q}`, pages, 30000);
  if (!r.ok || r.mac !== '52:54:00:b0:0f:01') fail(`${browser} adapter: ${JSON.stringify(r)}`);
  pass(`${browser}: emulator-adapter.js on a stand-in bus: registered the guest's MAC ${r.mac} (${r.ip}), ` +
    `ARP and ping of the gateway answered through net0-receive`);
  await relay.stop();
}
