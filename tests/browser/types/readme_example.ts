// The example of clients/js/README.md, as a TypeScript page would write
// it: type-checked against wtrelay.d.ts by test_types.mjs (strict).
import { WtRelay, formatAddress, type AssignedWtRelay, type StateDetail } from '../../../clients/js/wtrelay.js';

const nic: AssignedWtRelay = await WtRelay.connect({
  url: 'https://127.0.0.1:4433/lab',
  certHashUrl: 'http://127.0.0.1:8433/cert-hash',
});
console.log(`MAC ${formatAddress(nic.mac)} got ${formatAddress(nic.ip)}`);

nic.addEventListener('frame', (e) => {
  const frame: Uint8Array = e.detail;
  console.log(`${frame.length} bytes from ${formatAddress(frame.subarray(6, 12))}`);
});
nic.addEventListener('state', (e) => {
  const d: StateDetail = e.detail;
  console.log('state', d.state, d.code ?? 0, d.reason ?? '');
});
nic.addEventListener('error', (e) => console.warn('relay:', e.detail.message));
nic.addEventListener('close', (e) => console.log('closed', e.detail.code, e.detail.reason));

const f = new Uint8Array(42);
f.set([255, 255, 255, 255, 255, 255, ...nic.mac, 8, 6, 0, 1, 8, 0, 6, 4, 0, 1, ...nic.mac, ...nic.ip]);
f.set(nic.gateway, 38);
const sent: boolean = nic.send(f);
console.log(sent, nic.counters.framesOut, nic.state === 'registered');
nic.close(1000, 'done');
