// Chromium on a client host, across a real link to the relay: run by
// tests/netns/test_browser_link.sh inside the client host's namespace (this
// process, its page server and Chromium all live there; the relay is in the
// relay host's namespace, reached over a veth link). The page is on
// localhost and the relay on a private address, so Chromium's local network
// access checks are turned off for the test page
// (--disable-features=LocalNetworkAccessChecks, testing.md).
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { externalRelay, startPageServer, runChromium, runFirefox, pageUrl, pass, fail, shutdown } from './lib.mjs';
import { checkRegisterReport, checkSwitchReport, checkGatewayReport } from './checks.mjs';

const relay = externalRelay();
const args = ['--disable-features=LocalNetworkAccessChecks'];
{
  const pages = await startPageServer();
  const report = await runChromium(pageUrl(pages.origin, relay, { scenario: 'register', room: '/link?token=t' }), pages, 60000, { args });
  await checkRegisterReport('chromium across a link', report, relay);
}
{
  const pages = await startPageServer();
  const report = await runChromium(pageUrl(pages.origin, relay, { scenario: 'switch', room: '/link-lan' }), pages, 60000, { args });
  checkSwitchReport('chromium across a link', report);
}
{
  const pages = await startPageServer();
  const report = await runChromium(pageUrl(pages.origin, relay, { scenario: 'gateway', room: '/link-gw' }), pages, 60000, { args });
  checkGatewayReport('chromium across a link', report);
}
// the JavaScript client (clients/js/wtrelay.js) as a page author uses it,
// in both browsers
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
for (const [name, run] of [['chromium', (u, p) => runChromium(u, p, 60000, { args })], ['firefox', (u, p) => runFirefox(u, p, 90000)]]) {
  const pages = await startPageServer({ page: join(here, 'jsclient_page.js'),
    static: { '/clients/': join(root, 'clients'), '/examples/': join(root, 'examples') } });
  const q = new URLSearchParams({ scenario: 'link', relay: relay.url, room: `/link-js-${name}`, certHash: relay.hash });
  const r = await run(`${pages.origin}/?${q}`, pages);
  if (!r.ok) fail(`${name}: js client across a link: ${r.error}\nprogress:\n${pages.progress.join('\n')}`);
  if (r.ipA === r.ipB || r.reconnected !== r.ipA) fail(`${name}: js client across a link: addresses ${JSON.stringify(r)}`);
  for (const [dir, x] of [['a->b', r.ab], ['b->a', r.ba], ['b->a after reconnect', r.again]]) {
    if (!(x.sentChunks >= 2 && x.receivedChunks >= 2)) fail(`${name}: js client across a link: 1514-byte frame ${dir} not chunked: ${JSON.stringify(x)}`);
  }
  pass(`${name}: js client across the link: ${r.ipA} and ${r.ipB}, 1514-byte frames byte-exact both ways in ` +
    `${r.ab.sentChunks} chunks, gateway ARP and ping from both, reconnect kept ${r.reconnected}`);
}
pass('chromium on a client host: register, switch and gateway across the link');
shutdown();
