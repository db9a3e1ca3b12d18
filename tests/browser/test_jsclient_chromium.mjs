// The JavaScript client (clients/js/wtrelay.js) in headless Chromium against
// the real relay: two NICs in one page, chunked full-size frames both ways,
// ARP and ping of the gateway, reconnects keeping the addresses (relay
// restart, page request, relay silent), then examples/two-nics.html with
// a screenshot, and examples/emulator-adapter.js on a stand-in bus.
import { shutdown } from './lib.mjs';
import { testNics, testExample, testAdapter } from './jsclient_run.mjs';

await testNics('chromium');
await testExample('chromium');
await testAdapter('chromium');
shutdown();
