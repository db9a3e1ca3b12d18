// A page that pins a stale certificate hash (serverCertificateHashes with
// a hash the relay does not serve), in Chromium and in Firefox: the
// browser refuses the handshake, and the relay says so in its log (a
// warning naming the client's TLS alert and the likely cause) instead of
// counting a normal close.
import { startRelay, startPageServer, runChromium, runFirefox, pageUrl, fail, pass, shutdown } from './lib.mjs';

const stale = 'ab'.repeat(32);
for (const [name, run] of [['chromium', runChromium], ['firefox', runFirefox]]) {
  const relay = await startRelay();
  const pages = await startPageServer();
  const report = await run(pageUrl(pages.origin, { url: relay.url, hash: stale }, { scenario: 'register' }), pages);
  if (report.ok) fail(`${name}: a session opened with a stale hash`);
  let line = '';
  for (let i = 0; i < 50 && !line; i++) {
    line = relay.log.split('\n').find((l) => l.includes('level=warn') && l.includes('client rejected our certificate')) || '';
    if (!line) await new Promise((r) => setTimeout(r, 100));
  }
  if (!line) fail(`${name}: no warning about the rejected certificate in the relay's log:\n${relay.log.slice(-2000)}`);
  if (!/alert=\d+ alert_name=[a-z_]+/.test(line)) fail(`${name}: the warning names no alert: ${line}`);
  pass(`${name}: stale hash refused by the browser (${report.error}); relay: ${line.replace(/^.*msg=/, '')}`);
  await relay.stop();
}
shutdown();
