// Access control with Chromium: a relay with --auth-key lets a page with a
// valid token in its URL register and refuses one without (the page sees
// its session fail); --allow-origin refuses the test page's origin
// (http://127.0.0.1:PORT) when it is not listed and accepts it when it is.
import { startRelay, startPageServer, pageUrl, runChromium, fail, pass, shutdown, tmp } from './lib.mjs';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const bin = join(process.env.BUILD_DIR || join(here, '../../build'), 'wtrelay');
const keyFile = join(tmp, 'auth-key');
writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n');
const token = execFileSync(bin, ['token', '--key', keyFile, '--room', '/lab', '--ttl', '10m']).toString().trim();

async function visit(relay, room) {
  const pages = await startPageServer();
  const report = await runChromium(pageUrl(pages.origin, relay, { scenario: 'claim', room }), pages, 40000);
  return { report, origin: pages.origin };
}

// 1. tokens
let relay = await startRelay(['--auth-key', keyFile]);
let v = await visit(relay, `/lab?token=${token}`);
if (!v.report.ok) fail(`chromium with a valid token: ${v.report.error}`);
pass(`chromium with a valid token registered and got ${v.report.assigned.ip.join('.')}`);
v = await visit(relay, '/lab');
if (v.report.ok) fail('chromium without a token registered');
if (!/reason=missing_token status=401/.test(relay.log)) fail('no 401 refusal in the relay log');
pass(`chromium without a token: session failed (${v.report.error.split('\n')[0].slice(0, 100)}); relay answered 401`);
await relay.stop();

// 2. origins: the page's origin is http://127.0.0.1:PORT
relay = await startRelay(['--allow-origin', 'https://allowed.example']);
v = await visit(relay, '/');
if (v.report.ok) fail(`chromium from ${v.origin} registered although only https://allowed.example is allowed`);
const esc = v.origin.replace(/[.:/]/g, (c) => `\\${c}`);
if (!new RegExp(`session refused.*origin=\\"${esc}\\".*reason=origin_not_allowed status=403`).test(relay.log)) {
  fail(`no origin refusal naming ${v.origin} in the relay log`);
}
pass(`chromium from ${v.origin}, not in --allow-origin: refused (403, logged with its origin)`);
await relay.stop();

// The page server's port is known only once it listens: start it first.
const pages = await startPageServer();
relay = await startRelay(['--allow-origin', 'https://allowed.example', '--allow-origin', pages.origin]);
const report = await runChromium(pageUrl(pages.origin, relay, { scenario: 'claim', room: '/' }), pages, 40000);
if (!report.ok) fail(`chromium from the allowed ${pages.origin}: ${report.error}`);
pass(`chromium from ${pages.origin}, listed in --allow-origin: registered`);
await relay.stop();
shutdown();
