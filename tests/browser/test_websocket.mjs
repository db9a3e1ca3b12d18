// The WebSocket fallback (issue 20) in headless Chromium against the real
// relay: a WebTransport NIC and a plain wss:// WebSocket NIC in one room
// exchange 1514-byte frames both ways, the WebSocket NIC ARPs for and pings
// the gateway and gets its heartbeat answered, and an oversized and a text
// message close their connections with 1009 and 1003. The relay's
// certificate is self-signed: a WebSocket cannot use
// serverCertificateHashes, so this test alone runs Chromium with
// --ignore-certificate-errors (a real page needs a certificate the browser
// trusts; README "WebSocket fallback").
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRelay, startPageServer, runChromium, fail, pass, shutdown, freeTcpPort } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = process.env.SOURCE_DIR || join(here, '../..');
const statics = { '/clients/': join(root, 'clients'), '/examples/': join(root, 'examples') };

const relay = await startRelay(['--log-level', 'debug']);
if (!/WebSocket fallback listening/.test(relay.log)) fail('the relay does not say it listens for WebSocket');
const pages = await startPageServer({ page: join(here, 'ws_page.js'), static: statics });
const deadPort = await freeTcpPort(); // nothing answers WebTransport there
const q = new URLSearchParams({ relay: relay.url, hash: relay.hash, ws: `wss://127.0.0.1:${relay.port}`, room: '/mixed',
  deadPort: String(deadPort) });
const r = await runChromium(`${pages.origin}/?${q}`, pages, 60000, { args: ['--ignore-certificate-errors'] });
if (!r.ok) fail(`chromium websocket: ${r.error}\nprogress:\n${pages.progress.join('\n')}\nconsole: ${(r.console || []).join('\n')}`);
pass(`chromium: WebTransport NIC ${r.ipA} and WebSocket NIC ${r.ipB} in one room, 1514-byte frames both ways`);
if (r.gatewayMac !== '52:55:0a:00:02:02') fail(`gateway ARP over WebSocket said ${r.gatewayMac}`);
pass('gateway ARP, ping and heartbeat over the WebSocket');
if (r.oversized !== 1009) fail(`an oversized message closed with ${r.oversized}, not 1009`);
if (r.text !== 1003) fail(`a text message closed with ${r.text}, not 1003`);
pass('oversized message closed with 1009, text message with 1003');
if (r.transportA !== 'webtransport' || r.transportC !== 'websocket' || r.transportD !== 'websocket') {
  fail(`transports: ${r.transportA} ${r.transportC} ${r.transportD}`);
}
if (r.chunksC !== 0) fail(`the WebSocket NIC chunked a 1514-byte frame (${r.chunksC} chunks)`);
pass('wtrelay.js: WebTransport when it opens; the WebSocket after fallbackAfterMs when it does not, and at once without WebTransport; 1514-byte frames whole over WebSocket');
if (!/session opened" peer=\d+ transport=websocket remote=127\.0\.0\.1/.test(relay.log)) fail('no session opened line for the WebSocket session');
if (!/session opened" peer=\d+ transport=webtransport /.test(relay.log)) fail('no session opened line for the WebTransport session');
await relay.stop();
const exit = /msg="counters at exit".* ws_upgrades=(\d+).* ws_msgs_in=(\d+)/.exec(relay.log);
if (!exit || Number(exit[1]) < 3 || Number(exit[2]) < 4) fail(`exit counters: ${exit ? exit[0].slice(-200) : 'none'}`);
pass(`relay counted ${exit[1]} upgrades and ${exit[2]} messages in`);
shutdown();
