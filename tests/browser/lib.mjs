// Shared harness of the browser tier: start the real relay on a free
// loopback port, serve the test page over HTTP, collect the page's report
// (POST /report), run Chromium (playwright-core) or Firefox ESR (plain
// process, the page reports over fetch). Every process is started here,
// recorded, and killed at the end; every wait has a deadline.
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createSocket } from 'node:dgram';
import { createServer as createNetServer } from 'node:net';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve, sep, extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const buildDir = process.env.BUILD_DIR || join(here, '../../build');

export const tmp = mkdtempSync(join(tmpdir(), 'wtrelay-browser-'));
const children = [];
const cleanups = [];

export function fail(msg) {
  console.error(`FAIL: ${msg}`);
  for (const c of children) if (c.log) console.error(`--- ${c.name} (last lines)\n${c.log.slice(-3000)}`);
  shutdown();
  process.exit(1);
}
export function pass(msg) { console.log(`ok - ${msg}`); }

export function shutdown() {
  for (const f of cleanups.splice(0)) { try { f(); } catch { /* best effort */ } }
  for (const c of children) if (c.proc.exitCode === null) { try { c.proc.kill('SIGKILL'); } catch { } }
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', () => { for (const c of children) if (c.proc.exitCode === null) try { c.proc.kill('SIGKILL'); } catch { } });

export function requireFile(path, what) {
  if (!existsSync(path)) fail(`${what} not found at ${path} (run scripts/install-deps.sh)`);
}

// A UDP port whose TCP port of the same number is free too: the relay's
// WebSocket fallback listens there (--ws-listen's default).
async function freeUdpPort() {
  for (let i = 0; ; i++) {
    const s = createSocket('udp4');
    await new Promise((res) => s.bind(0, '127.0.0.1', res));
    const port = s.address().port;
    s.close();
    const t = createNetServer();
    const ok = await new Promise((res) => { t.once('error', () => res(false)); t.listen(port, '127.0.0.1', () => res(true)); });
    if (ok) await new Promise((res) => t.close(res));
    if (ok || i === 20) return port;
  }
}

export async function freeTcpPort() {
  const s = createNetServer();
  await new Promise((res) => s.listen(0, '127.0.0.1', res));
  const port = s.address().port;
  await new Promise((res) => s.close(res));
  return port;
}

function track(name, proc) {
  const c = { name, proc, log: '' };
  const add = (d) => { c.log += d.toString(); if (c.log.length > 200000) c.log = c.log.slice(-100000); };
  proc.stdout?.on('data', add);
  proc.stderr?.on('data', add);
  children.push(c);
  return c;
}

export async function withDeadline(promise, ms, what) {
  let t;
  const timeout = new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timeout after ${ms} ms: ${what}`)), ms); });
  try { return await Promise.race([promise, timeout]); } finally { clearTimeout(t); }
}

// Starts build/wtrelay on 127.0.0.1:<free port> (opts.port: that port, to
// restart a relay where its clients expect it); resolves when it printed
// its hash and "Listening on".
export async function startRelay(args = [], opts = {}) {
  const bin = join(buildDir, 'wtrelay');
  requireFile(bin, 'relay binary');
  const port = opts.port || await freeUdpPort();
  const proc = spawn(bin, ['--bind', '127.0.0.1', '--port', String(port), '--http-listen', '', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const c = track('relay', proc);
  const hash = await withDeadline(new Promise((res, rej) => {
    const check = () => {
      const m = /^Certificate SHA-256 Hash: ([0-9a-f]{64})$/m.exec(c.log);
      if (m && /^Listening on /m.test(c.log)) { clearInterval(iv); res(m[1]); }
      if (proc.exitCode !== null) { clearInterval(iv); rej(new Error(`relay exited ${proc.exitCode}`)); }
    };
    const iv = setInterval(check, 50);
  }), 10000, 'relay start').catch((e) => fail(e.message));
  return {
    port, hash, proc, get log() { return c.log; },
    url: `https://127.0.0.1:${port}`,
    // SIGTERM; must exit 0 within 3 s.
    async stop() {
      proc.kill('SIGTERM');
      const code = await withDeadline(new Promise((res) => {
        if (proc.exitCode !== null) res(proc.exitCode); else proc.on('exit', (code) => res(code));
      }), 3000, 'relay exit after SIGTERM').catch((e) => fail(e.message));
      if (code !== 0) fail(`relay exited ${code} after SIGTERM`);
    },
  };
}

// A relay started by someone else (a netns test runs it in the relay host's
// namespace and this script in a client host's): RELAY_URL, RELAY_HASH and
// RELAY_LOG (the relay's stderr file) from the environment.
export function externalRelay() {
  const url = process.env.RELAY_URL, hash = process.env.RELAY_HASH, logFile = process.env.RELAY_LOG;
  if (!url || !/^[0-9a-f]{64}$/.test(hash || '')) fail('RELAY_URL and RELAY_HASH must name the relay');
  return { url, hash, get log() { return logFile && existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''; } };
}

const contentTypes = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.css': 'text/css' };

// Answers GET urlPath from opts.static ({'/prefix/': directory}); false
// when no prefix matches. Paths leaving the directory are refused.
function serveStatic(statics, urlPath, res) {
  for (const [prefix, dir] of Object.entries(statics || {})) {
    if (!urlPath.startsWith(prefix)) continue;
    const file = resolve(dir, '.' + decodeURIComponent(urlPath.slice(prefix.length - 1)));
    if (!file.startsWith(resolve(dir) + sep) || !existsSync(file)) { res.writeHead(404); res.end(); return true; }
    res.writeHead(200, { 'content-type': `${contentTypes[extname(file)] || 'application/octet-stream'}; charset=utf-8`,
      'cache-control': 'no-store' });
    res.end(readFileSync(file));
    return true;
  }
  return false;
}

// Serves the page (index.html loads page.js, or opts.page, with the same
// query string) and the files of opts.static (see serveStatic), and
// receives the page's JSON report and progress lines.
export async function startPageServer(opts = {}) {
  const pageJs = readFileSync(opts.page || join(here, 'page.js'));
  const html = '<!doctype html><meta charset="utf-8"><title>wtrelay browser test</title>'
    + '<pre id="log"></pre><script type="module" src="/page.js"></script>';
  let resolveReport;
  const report = new Promise((res) => { resolveReport = res; });
  const progress = [];
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/' || req.url.startsWith('/?'))) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    } else if (req.method === 'GET' && req.url === '/page.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
      res.end(pageJs);
    } else if (req.method === 'GET' && serveStatic(opts.static, req.url.split('?')[0], res)) {
      // served
    } else if (req.method === 'POST' && (req.url === '/report' || req.url === '/progress')) {
      let body = '';
      req.on('data', (d) => { if (body.length < 1 << 20) body += d; });
      req.on('end', () => {
        res.writeHead(204); res.end();
        if (req.url === '/progress') { progress.push(body); if (process.env.VERBOSE) console.log(`page: ${body}`); return; }
        try { resolveReport(JSON.parse(body)); } catch (e) { resolveReport({ ok: false, error: `bad report: ${e}` }); }
      });
    } else {
      res.writeHead(404); res.end();
    }
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  cleanups.push(() => server.close());
  return { origin: `http://127.0.0.1:${server.address().port}`, report, progress };
}

// Runs the page in Debian's Chromium through playwright-core and returns
// the page's report.
// opts.args: extra Chromium flags.
export async function runChromium(pageUrl, pageServer, timeoutMs = 60000, opts = {}) {
  requireFile('/usr/bin/chromium', 'Debian chromium');
  let chromium;
  try { ({ chromium } = await import('playwright-core')); } catch (e) { fail(`playwright-core missing (npm ci in tests/browser): ${e.message}`); }
  const netlog = join(tmp, 'chromium-netlog.json');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    chromiumSandbox: false,
    args: ['--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', `--log-net-log=${netlog}`, '--net-log-capture-mode=Everything',
      ...(opts.args || [])],
  });
  cleanups.unshift(() => browser.close().catch(() => {}));
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(pageUrl);
  let report;
  try {
    report = await withDeadline(pageServer.report, timeoutMs, 'chromium page report');
  } catch (e) {
    report = { ok: false, error: e.message };
  }
  report.console = consoleLines;
  report.netlog = netlog;
  await browser.close().catch(() => {});
  return report;
}

// Runs the page in Debian's Firefox ESR, headless with a fresh profile; the
// page reports over fetch.
export async function runFirefox(pageUrl, pageServer, timeoutMs = 90000) {
  requireFile('/usr/bin/firefox-esr', 'Debian firefox-esr');
  const profile = join(tmp, 'ff-profile');
  rmSync(profile, { recursive: true, force: true });
  const prefs = {
    'browser.shell.checkDefaultBrowser': false,
    'browser.startup.homepage_override.mstone': '"ignore"',
    'datareporting.policy.dataSubmissionEnabled': false,
    'toolkit.telemetry.reportingpolicy.firstRun': false,
    'app.update.enabled': false,
    'browser.aboutwelcome.enabled': false,
    'network.http.http3.enable': true,
    'network.webtransport.enabled': true,
    'network.webtransport.datagrams.enabled': true,
    'browser.safebrowsing.malware.enabled': false,
    'browser.safebrowsing.phishing.enabled': false,
    'extensions.update.enabled': false,
    'network.captive-portal-service.enabled': false,
    'network.connectivity-service.enabled': false,
  };
  await import('node:fs').then((fs) => fs.mkdirSync(profile, { recursive: true }));
  writeFileSync(join(profile, 'user.js'),
    Object.entries(prefs).map(([k, v]) => `user_pref("${k}", ${v});`).join('\n') + '\n');
  const proc = spawn('/usr/bin/firefox-esr', ['--headless', '--no-remote', '--profile', profile, pageUrl],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MOZ_HEADLESS: '1' } });
  track('firefox', proc);
  let report;
  try {
    report = await withDeadline(pageServer.report, timeoutMs, 'firefox page report');
  } catch (e) {
    report = { ok: false, error: e.message };
  }
  proc.kill('SIGTERM');
  await withDeadline(new Promise((res) => { if (proc.exitCode !== null) res(); else proc.on('exit', res); }), 5000, 'firefox exit')
    .catch(() => proc.kill('SIGKILL'));
  return report;
}

export function pageUrl(origin, relay, params) {
  const q = new URLSearchParams({ relay: relay.url, hash: relay.hash, ...params });
  return `${origin}/?${q}`;
}

// A self-signed ECDSA P-256 pair (c.pem, k.pem) in dir, made with openssl.
export function certPair(dir) {
  mkdirSync(dir, { recursive: true });
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-days', '10', '-subj', '/CN=localhost', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')],
  { stdio: 'ignore' });
}
