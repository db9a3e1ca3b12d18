// Uses of the module that must not type-check: each line below an
// expect-error comment is an error, or tsc fails on the unused comment
// (so a .d.ts that grew too loose, an `any` say, fails test_types.mjs).
import { WtRelay, formatAddress } from '../../../clients/js/wtrelay.js';

// @ts-expect-error: url is required
void WtRelay.connect({ certHash: '00' });
// @ts-expect-error: certHash is a string or bytes
void WtRelay.connect({ url: 'https://r/lab', certHash: 42 });
// @ts-expect-error: no such option
void WtRelay.connect({ url: 'https://r/lab', heartbeat: 5 });

const nic = new WtRelay({ url: 'https://r/lab' });
// @ts-expect-error: a frame is a Uint8Array
nic.send('not a frame');
// @ts-expect-error: ip may be null before the first Assigned
formatAddress(nic.ip);
// @ts-expect-error: no such state
if (nic.state === 'open') console.log('never');
// @ts-expect-error: the mac is read-only
nic.mac = new Uint8Array(6);
nic.addEventListener('frame', (e) => {
  // @ts-expect-error: a frame's detail is bytes
  const s: string = e.detail;
  void s;
});
nic.addEventListener('close', (e) => {
  // @ts-expect-error: close's detail has code and reason
  void e.detail.message;
});
// @ts-expect-error: counters are numbers
const c: string = nic.counters.framesIn;
void c;
