// Chromium on a client host, across a real link to the relay: run by
// tests/netns/test_browser_link.sh inside the client host's namespace (this
// process, its page server and Chromium all live there; the relay is in the
// relay host's namespace, reached over a veth link). The page is on
// localhost and the relay on a private address, so Chromium's local network
// access checks are turned off for the test page
// (--disable-features=LocalNetworkAccessChecks, testing.md).
import { externalRelay, startPageServer, runChromium, pageUrl, pass, shutdown } from './lib.mjs';
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
pass('chromium on a client host: register, switch and gateway across the link');
shutdown();
