// Headless Firefox ESR (Debian) against the real relay with only the hash it
// printed. playwright-core cannot drive stock Firefox, so the page reports
// over fetch to the test's HTTP server. Firefox opens two QUIC connections
// and runs the session on the second.
import { startRelay, startPageServer, runFirefox, pageUrl, pass, shutdown } from './lib.mjs';
import { checkRegisterReport, checkSwitchReport, checkGatewayReport } from './checks.mjs';

const relay = await startRelay(['--log-level', 'debug']);
const pages = await startPageServer();
const report = await runFirefox(pageUrl(pages.origin, relay, { scenario: 'register', room: '/ff-room' }), pages);
await checkRegisterReport('firefox', report, relay);
await relay.stop();
pass('firefox: relay exits 0 on SIGTERM');
{
  const relay = await startRelay();
  const pages = await startPageServer();
  const report = await runFirefox(pageUrl(pages.origin, relay, { scenario: 'switch', room: '/lan' }), pages);
  checkSwitchReport('firefox', report);
  await relay.stop();
}
{
  const relay = await startRelay();
  const pages = await startPageServer();
  const report = await runFirefox(pageUrl(pages.origin, relay, { scenario: 'gateway', room: '/gw' }), pages);
  checkGatewayReport('firefox', report);
  await relay.stop();
}
shutdown();
