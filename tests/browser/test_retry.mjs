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
// the counters at exit: one debug line, summed over the workers
const line = relay.log.split('\n').find((l) => l.includes('msg="counters at exit"')) || '';
const ctr = (k) => Number((line.match(new RegExp(` ${k}=(\\d+)`)) || [])[1]);
const retries = ctr('quic_retries'), tokens = ctr('quic_tokens_retry_ok');
if (!(retries >= 1 && tokens >= 1)) fail(`no Retry round trip in the relay's counters at exit: quic_retries=${retries} quic_tokens_retry_ok=${tokens}`);
pass(`chromium completed its handshake through Retry (quic_retries=${retries} quic_tokens_retry_ok=${tokens})`);
shutdown();
