// Chromium through QUIC Retry: with --retry always every client must come
// back with the relay's token before the handshake goes on. The page
// registers and heartbeats as in test_chromium; the relay's counters show
// the Retry and the token that came back.
import { startRelay, startPageServer, runChromium, pageUrl, fail, pass, shutdown } from './lib.mjs';
import { checkRegisterReport } from './checks.mjs';

const relay = await startRelay(['--retry', 'always', '--log-level', 'debug']);
const pages = await startPageServer();
const report = await runChromium(pageUrl(pages.origin, relay, { scenario: 'register', room: '/retry' }), pages);
await checkRegisterReport('chromium with --retry always', report, relay);
await relay.stop();
// the process's line (with several workers each worker's is at debug level
// first, and the sums come last, tagged workers=N)
const all = [...relay.log.matchAll(/retries=(\d+) tokens_retry_ok=(\d+)/g)];
const m = all.length ? all[all.length - 1] : null;
if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) fail(`no Retry round trip in the relay's counters: ${m ? m[0] : 'none'}`);
pass(`chromium completed its handshake through Retry (${m[0]})`);
shutdown();
