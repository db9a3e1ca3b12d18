// Certificate reload with a browser: the relay runs on PEM files; the files
// are replaced; /cert-hash shows the new hash within the poll interval, and
// headless Chromium connects using only that new hash (what a page that
// fetches /cert-hash does).
import { copyFileSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { startRelay, startPageServer, runChromium, pageUrl, fail, pass, shutdown, tmp, freeTcpPort, certPair } from './lib.mjs';
import { checkRegisterReport } from './checks.mjs';

const a = join(tmp, 'a'), b = join(tmp, 'b'), live = join(tmp, 'live');
certPair(a); certPair(b); mkdirSync(live);
copyFileSync(join(a, 'c.pem'), join(live, 'c.pem'));
copyFileSync(join(a, 'k.pem'), join(live, 'k.pem'));
const opsPort = await freeTcpPort();
const relay = await startRelay(['--cert-pem', join(live, 'c.pem'), '--key-pem', join(live, 'k.pem'),
  '--cert-poll-interval', '1', '--http-listen', `127.0.0.1:${opsPort}`, '--log-level', 'debug']);
const certHash = async () => (await (await fetch(`http://127.0.0.1:${opsPort}/cert-hash`)).json()).sha256;
if (await certHash() !== relay.hash) fail('/cert-hash differs from the printed hash');

copyFileSync(join(b, 'k.pem'), join(live, 'k.pem.new'));
copyFileSync(join(b, 'c.pem'), join(live, 'c.pem.new'));
renameSync(join(live, 'k.pem.new'), join(live, 'k.pem'));
renameSync(join(live, 'c.pem.new'), join(live, 'c.pem'));
let fresh = relay.hash;
for (let i = 0; i < 40 && fresh === relay.hash; i++) {
  await new Promise((r) => setTimeout(r, 100));
  fresh = await certHash();
}
if (fresh === relay.hash) fail('the hash did not change after the PEM files were replaced');
pass(`PEM files replaced: /cert-hash now ${fresh.slice(0, 16)}...`);

const pages = await startPageServer();
const report = await runChromium(pageUrl(pages.origin, { url: relay.url, hash: fresh }, { scenario: 'register' }), pages);
await checkRegisterReport('chromium (new certificate)', report, relay);
await relay.stop();
shutdown();
