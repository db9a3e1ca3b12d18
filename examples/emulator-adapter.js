// emulator-adapter.js: a template that plugs a wtrelay NIC into an
// emulator's network device. UNTESTED in a real emulator: it follows the
// shape of v86's network adapters (a bus with "net0-send" for frames the
// guest sends and "net0-receive" for frames given to it), checked only
// against that description, not run with v86. Adapt the names to your
// emulator; the wtrelay side (WtRelay) is what the browser tests cover.
//
// What it does:
// - waits for the guest's MAC: from the bus's "net0-mac" event when the
//   emulator sends one, else from the source MAC of the guest's first frame
//   (the relay lets a session send only from its registered MAC, so the NIC
//   must register the guest's own MAC, not a random one);
// - then connects (WtRelay.connect) and passes frames both ways; frames the
//   guest sends before the session is up wait in a short queue;
// - reconnects are the client's: the guest keeps its MAC and, through the
//   relay's leases, its IP (the guest gets it by DHCP from the relay's
//   gateway, or sets the address of the Assigned message, `nic.ip`).
//
// Usage with v86 (network_adapter takes a function of the bus):
//
//   import { WtRelayAdapter } from './emulator-adapter.js';
//   const emulator = new V86({
//     ...,
//     network_adapter: (bus) => new WtRelayAdapter(bus, {
//       url: 'https://relay.example.org:4433/lab',
//       certHashUrl: 'https://relay.example.org/cert-hash',
//     }),
//   });
import { WtRelay, formatAddress } from '../clients/js/wtrelay.js';

const QUEUE_MAX = 64;
const RETRY_MS = 5000; // after a failed first connection

export class WtRelayAdapter {
  /**
   * @param {{register: Function, send: Function}} bus the emulator's bus
   * @param {import('../clients/js/wtrelay.js').ConnectOptions} options WtRelay options (mac taken from the guest)
   * @param {string} [device='net0'] the emulator's device name
   */
  constructor(bus, options, device = 'net0') {
    this.bus = bus;
    this.options = options;
    this.device = device;
    /** @type {WtRelay|null} */
    this.nic = null;
    this.queue = [];
    this.connecting = null;
    this.closed = false;
    this.retryAt = 0;
    bus.register(`${device}-send`, (frame) => this.fromGuest(frame), this);
    bus.register(`${device}-mac`, (mac) => this.start(mac), this);
  }

  /** A frame the guest sent: to the relay, or queued until registered. */
  fromGuest(data) {
    const frame = data instanceof Uint8Array ? data : new Uint8Array(data);
    if (this.nic && this.nic.state === 'registered') {
      this.nic.send(frame);
      return;
    }
    if (this.queue.length < QUEUE_MAX) this.queue.push(frame);
    if (frame.length >= 14) this.start(Array.from(frame.subarray(6, 12)));
  }

  /** Connects once, registering the guest's MAC (string or six numbers). */
  start(mac) {
    if (this.connecting || this.closed || Date.now() < this.retryAt) return;
    this.connecting = WtRelay.connect({ ...this.options, mac }).then((nic) => {
      if (this.closed) { nic.close(0, 'adapter destroyed'); return; }
      this.nic = nic;
      nic.addEventListener('frame', (e) => this.bus.send(`${this.device}-receive`, e.detail));
      nic.addEventListener('error', (e) => console.warn(`wtrelay: ${e.detail.message}`));
      nic.addEventListener('state', (e) => console.info(`wtrelay: ${e.detail.state}`, e.detail.reason || ''));
      console.info(`wtrelay: guest ${formatAddress(nic.mac)} has ${formatAddress(nic.ip)}`);
      for (const f of this.queue.splice(0)) nic.send(f);
    }, (e) => {
      console.error(`wtrelay: ${e.message}`);
      this.connecting = null; // a later frame of the guest tries again
      this.retryAt = Date.now() + RETRY_MS;
    });
  }

  /** The emulator is going away. */
  destroy() {
    this.closed = true;
    if (this.nic) this.nic.close(0, 'adapter destroyed');
  }
}
