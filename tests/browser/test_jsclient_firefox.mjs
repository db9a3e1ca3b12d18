// The JavaScript client (clients/js/wtrelay.js) in headless Firefox ESR
// against the real relay: the same checks as test_jsclient_chromium.mjs;
// the example page runs in an iframe of the test page (no screenshot).
import { shutdown } from './lib.mjs';
import { testNics, testExample } from './jsclient_run.mjs';

await testNics('firefox');
await testExample('firefox');
shutdown();
