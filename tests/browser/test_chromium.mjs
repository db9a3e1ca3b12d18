// Headless Chromium (Debian, via playwright-core) against the real relay
// with only the hash it printed: WebTransport session, Register ->
// Assigned, two heartbeats, close from the page. Then a second page holds a
// session while the relay gets SIGTERM: the page must see the relay's
// CLOSE_WEBTRANSPORT_SESSION and the relay must exit 0.
import { startRelay, startPageServer, runChromium, pageUrl, fail, pass, shutdown, withDeadline } from './lib.mjs';
import { checkRegisterReport, checkSwitchReport, checkGatewayReport } from './checks.mjs';

{
  const relay = await startRelay(['--log-level', 'debug']);
  const pages = await startPageServer();
  const report = await runChromium(pageUrl(pages.origin, relay, { scenario: 'register', room: '/browser-room?token=t' }), pages);
  await checkRegisterReport('chromium', report, relay);
  await relay.stop();
  pass('chromium: relay exits 0 on SIGTERM');
}
{
  const relay = await startRelay();
  const pages = await startPageServer();
  const running = runChromium(pageUrl(pages.origin, relay, { scenario: 'hold' }), pages);
  await withDeadline(new Promise((res) => {
    const iv = setInterval(() => { if (pages.progress.includes('registered')) { clearInterval(iv); res(); } }, 50);
  }), 30000, 'page registered').catch((e) => fail(`chromium hold: ${e.message}`));
  await relay.stop();
  const report = await running;
  if (!report.ok) fail(`chromium hold: ${report.error}`);
  if (report.closed.reason !== 'relay shutting down') fail(`chromium hold: closed with ${JSON.stringify(report.closed)}`);
  pass(`chromium: SIGTERM ends the live session with ${JSON.stringify(report.closed)}; relay exits 0`);
}
{
  const relay = await startRelay();
  const pages = await startPageServer();
  const report = await runChromium(pageUrl(pages.origin, relay, { scenario: 'switch', room: '/lan' }), pages);
  checkSwitchReport('chromium', report);
  await relay.stop();
}
{
  const relay = await startRelay();
  const pages = await startPageServer();
  const report = await runChromium(pageUrl(pages.origin, relay, { scenario: 'gateway', room: '/gw' }), pages);
  checkGatewayReport('chromium', report);
  await relay.stop();
}
shutdown();
