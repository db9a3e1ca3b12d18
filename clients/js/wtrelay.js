// wtrelay.js: a virtual network card for web pages, on a wtrelay relay.
//
// Theory of operation. One WtRelay object is one NIC on one room (virtual
// Ethernet LAN) of the relay. It owns one WebTransport session at a time and
// speaks the bavy datagram protocol on it (docs/protocol.md): type byte 0x00
// control JSON (Register, Assigned, Heartbeat, HeartbeatAck, Error), 0x01 a
// whole Ethernet frame, 0x02 a chunk [u16 id][u8 index][u8 total] + data.
// It sends frames whole when they fit the session's maxDatagramSize and as
// chunks of equal size (at most 900 bytes) when not; it reassembles chunks in
// a bounded table with an age limit. It sends a Heartbeat on a timer and
// treats a session that brought nothing for deadMs after a Heartbeat as lost. A lost session
// is replaced with exponential backoff, registering the same MAC: the relay
// gives the MAC its old address back (or takes the MAC over from a session
// that went silent), so the page keeps its IP. It never builds or parses
// Ethernet payloads: that is the page's (or the emulator's) business.
// No dependencies, no build step; browsers only (WebTransport).

const T_CONTROL = 0x00;
const T_FRAME = 0x01;
const T_CHUNK = 0x02;
const CHUNK_HDR = 4;
const CHUNK_DATA_MAX = 900;
const REGISTER_RETRY_MS = 4000; // longer than the relay's takeover probe (at most 3 s)
const SEND_QUEUE_MAX = 256; // datagrams waiting in the browser's queue before frames are dropped
const WS_QUEUE_MAX = 256 * 1024; // bytes a WebSocket may have buffered before frames are dropped

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * @typedef {Object} ReconnectOptions
 * @property {number} [minMs=500] first delay after a lost session
 * @property {number} [maxMs=30000] longest delay (the delay doubles each failed attempt)
 */

/**
 * @typedef {Object} ConnectOptions
 * @property {string} url WebTransport URL of the relay with the room as path, e.g. "https://relay.example.org:4433/lab"
 * @property {string|Uint8Array} [certHash] SHA-256 of the relay's certificate (hex or 32 bytes), for a self-signed certificate
 * @property {string} [certHashUrl] URL answering {"sha256":"<hex>"} (the relay's /cert-hash), fetched before every connection
 * @property {string|ArrayLike<number>} [mac] "52:54:00:12:34:56" or six numbers; default a random locally administered unicast MAC
 * @property {number} [heartbeatMs=15000] time between Heartbeats (keep it well under the relay's --peer-timeout)
 * @property {number} [deadMs] time a Heartbeat may stay without any datagram from the relay after it before the session counts as lost (default 3 heartbeats + 5 s)
 * @property {ReconnectOptions|false} [reconnect] backoff of the automatic reconnect; false: a lost session closes the NIC
 * @property {number} [connectTimeoutMs=10000] limit on opening one session
 * @property {number} [registerTimeoutMs=10000] limit on getting Assigned after Register
 * @property {number} [maxFrameSize=1514] largest frame reassembled from chunks (the relay's --max-frame-size)
 * @property {number} [maxReassembly=8] chunked frames reassembled at once (the oldest is dropped beyond)
 * @property {number} [reassemblyTimeoutMs=5000] age at which a partial frame is dropped
 * @property {Transport|'auto'} [transport='auto'] 'auto': WebTransport, and the WebSocket fallback when the browser has no WebTransport or its session does not open within fallbackAfterMs (UDP blocked); or one of the two only
 * @property {string} [wsUrl] WebSocket URL of the fallback (default: url with wss: for https:); the relay's certificate must be one the browser trusts (no certificate hashes for WebSocket)
 * @property {number} [fallbackAfterMs=4000] in 'auto', how long a WebTransport session may take to open before the WebSocket is tried
 */

/**
 * @typedef {Object} Counters
 * @property {number} framesIn
 * @property {number} bytesIn
 * @property {number} framesOut
 * @property {number} bytesOut
 * @property {number} chunksIn
 * @property {number} chunksOut
 * @property {number} reassemblyDrops partial frames dropped (aged, evicted, inconsistent or too big)
 * @property {number} chunkDuplicates
 * @property {number} sendDrops frames not sent (no registered session, or too big for 255 chunks)
 * @property {number} badDatagrams datagrams with an unknown type byte, short chunks, unparsable JSON
 * @property {number} heartbeats
 * @property {number} heartbeatAcks
 * @property {number} reconnects sessions replaced after a loss
 */

/** @typedef {'connecting'|'registered'|'reconnecting'|'closed'} NicState */
/** @typedef {'webtransport'|'websocket'} Transport */

/**
 * ConnectOptions with every default filled in.
 * @typedef {Required<Omit<ConnectOptions, 'certHash'|'certHashUrl'|'mac'|'reconnect'|'wsUrl'>>
 *   & Pick<ConnectOptions, 'certHash'|'certHashUrl'|'mac'|'wsUrl'>
 *   & {reconnect: Required<ReconnectOptions>|false}} Options
 */

/**
 * One session of a NIC, over either transport.
 * @typedef {Object} Link
 * @property {Transport} transport
 * @property {(d: Uint8Array) => boolean} send queues one datagram payload; false when dropped (queue full, closed)
 * @property {() => number} maxDatagram largest payload one send carries whole
 * @property {(code: number, reason: string) => void} close
 * @property {number} lastRx performance.now() of the latest datagram from the relay
 * @property {number|null} unanswered time of the oldest Heartbeat nothing arrived after
 * @property {((err: Error|null) => void)|null} waiter the pending Register's
 * @property {boolean} lost
 * @property {number} reregisters Registers sent again on a relay's "register again"
 */

/**
 * Formats an address: four numbers as dotted IPv4, six as a MAC.
 * @param {ArrayLike<number>} bytes
 * @returns {string}
 */
export function formatAddress(bytes) {
  const a = Array.from(bytes);
  if (a.length === 4) return a.join('.');
  return a.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** @returns {Uint8Array} a random locally administered unicast MAC */
export function randomMac() {
  const m = crypto.getRandomValues(new Uint8Array(6));
  m[0] = (m[0] & 0xfc) | 0x02;
  return m;
}

/**
 * @param {string|ArrayLike<number>} mac
 * @returns {Uint8Array}
 */
function parseMac(mac) {
  const parts = typeof mac === 'string' ? mac.split(/[:-]/).map((x) => (/^[0-9a-f]{1,2}$/i.test(x) ? parseInt(x, 16) : NaN))
    : Array.from(mac);
  if (parts.length !== 6 || parts.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new TypeError(`bad MAC address ${mac}`);
  }
  if (parts[0] & 1) throw new TypeError(`MAC address ${mac} is a group address`);
  return Uint8Array.from(parts);
}

/**
 * @param {string|Uint8Array} hash
 * @returns {Uint8Array<ArrayBuffer>} a copy: WebTransport takes no view of a SharedArrayBuffer
 */
function hashBytes(hash) {
  if (hash instanceof Uint8Array) return new Uint8Array(hash);
  if (!/^[0-9a-f]{64}$/i.test(hash)) throw new TypeError('certHash must be 64 hex digits');
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hash.substr(i * 2, 2), 16);
  return out;
}

/** @param {unknown} e @returns {string} */
function errText(e) {
  const m = e && typeof e === 'object' && 'message' in e ? e.message : undefined;
  return String(m || e);
}

/**
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<T>}
 */
function withTimeout(promise, ms, what) {
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  let t;
  /** @type {Promise<never>} */
  const timeout = new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

/**
 * A virtual NIC on a wtrelay room. Create it with {@link WtRelay.connect}.
 *
 * Events (CustomEvent, payload in `detail`):
 * - `frame`: a received Ethernet frame (Uint8Array, from the destination MAC on, no FCS)
 * - `state`: {state, code?, reason?} on every state change
 * - `error`: {message} for each Error the relay sent
 * - `close`: {code, reason} once, when the NIC is closed for good
 */
export class WtRelay extends EventTarget {
  /** @type {Options} */
  #opt;
  // auto: the WebSocket worked where WebTransport did not; reconnects use it
  #preferWs = false;
  /** @type {Link|null} the live session */
  #link = null;
  /** @type {ReturnType<typeof setInterval>|undefined} */
  #heartbeat;
  #wake = () => {};
  #chunkId = 0;
  /** @type {Map<number, {total: number, parts: Uint8Array[], got: number, bytes: number, t0: number}>} */
  #reasm = new Map();

  /**
   * Opens a session, registers and resolves once the relay assigned an
   * address. Rejects when the first session cannot be opened or registered
   * (later losses are repaired by the reconnect).
   * @param {ConnectOptions} options
   * @returns {Promise<WtRelay>}
   */
  static async connect(options) {
    const nic = new WtRelay(options);
    try {
      await nic.#attempt();
    } catch (e) {
      nic.#finish(0, errText(e));
      throw e;
    }
    nic.#setState('registered', { transport: nic.transport || undefined });
    return nic;
  }

  /** @param {ConnectOptions} options */
  constructor(options) {
    super();
    if (!options || typeof options.url !== 'string') throw new TypeError('options.url is required');
    if (options.transport === 'webtransport' && typeof WebTransport === 'undefined') {
      throw new Error('this browser has no WebTransport');
    }
    /** @type {Required<ReconnectOptions>|false} */
    const reconnect = options.reconnect === false ? false : { minMs: 500, maxMs: 30000, ...(options.reconnect || {}) };
    const opt = {
      heartbeatMs: 15000, connectTimeoutMs: 10000, registerTimeoutMs: 10000,
      maxFrameSize: 1514, maxReassembly: 8, reassemblyTimeoutMs: 5000, transport: /** @type {'auto'} */ ('auto'),
      fallbackAfterMs: 4000,
      ...options, reconnect,
    };
    this.#opt = { ...opt, deadMs: opt.deadMs || 3 * opt.heartbeatMs + 5000 };
    if (this.#opt.certHash) hashBytes(this.#opt.certHash);
    /** @type {Uint8Array} this NIC's MAC, kept across reconnects */
    this.mac = options.mac ? parseMac(options.mac) : randomMac();
    /** @type {number[]|null} assigned IPv4 address */
    this.ip = null;
    /** @type {number[]|null} */
    this.gateway = null;
    /** @type {number[]|null} */
    this.netmask = null;
    /** @type {number[]|null} */
    this.dns = null;
    /** @type {NicState} */
    this.state = 'connecting';
    /** @type {Transport|null} the transport of the current (or last) session */
    this.transport = null;
    /** @type {Counters} */
    this.counters = {
      framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, chunksIn: 0, chunksOut: 0, reassemblyDrops: 0,
      chunkDuplicates: 0, sendDrops: 0, badDatagrams: 0, heartbeats: 0, heartbeatAcks: 0, reconnects: 0,
    };
    this.#heartbeat = setInterval(() => this.#tick(), this.#opt.heartbeatMs);
    // a tab shown again or a network back: check the session at once
    this.#wake = () => { if (typeof document === 'undefined' || document.visibilityState !== 'hidden') this.#tick(); };
    globalThis.addEventListener?.('online', this.#wake);
    globalThis.document?.addEventListener('visibilitychange', this.#wake);
  }

  /**
   * Sends one Ethernet frame (destination MAC first, no FCS). Returns false
   * when it was dropped: no registered session (during a reconnect), more
   * than 256 datagrams already waiting in the browser, or longer than 255
   * chunks. Datagrams are unreliable: true means handed to
   * the browser, not delivered.
   * @param {Uint8Array} frame
   * @returns {boolean}
   */
  send(frame) {
    const link = this.#link;
    if (!link || this.state !== 'registered' || frame.length === 0) {
      this.counters.sendDrops++;
      return false;
    }
    const max = link.maxDatagram();
    if (1 + frame.length <= max) {
      const d = new Uint8Array(1 + frame.length);
      d[0] = T_FRAME;
      d.set(frame, 1);
      // a page sending faster than the path carries: dropped, as a full NIC queue does
      if (!link.send(d)) {
        this.counters.sendDrops++;
        return false;
      }
    } else {
      // equal chunks (the relay wants every chunk but the last of one size)
      const stride = Math.min(CHUNK_DATA_MAX, max - 1 - CHUNK_HDR);
      const total = Math.ceil(frame.length / stride);
      if (stride <= 0 || total > 255) {
        this.counters.sendDrops++;
        return false;
      }
      const id = this.#chunkId = (this.#chunkId + 1) & 0xffff;
      for (let k = 0; k < total; k++) {
        const part = frame.subarray(k * stride, (k + 1) * stride);
        const d = new Uint8Array(1 + CHUNK_HDR + part.length);
        d[0] = T_CHUNK;
        d[1] = id >> 8;
        d[2] = id & 0xff;
        d[3] = k;
        d[4] = total;
        d.set(part, 1 + CHUNK_HDR);
        this.#write(link, d);
        this.counters.chunksOut++;
      }
    }
    this.counters.framesOut++;
    this.counters.bytesOut += frame.length;
    return true;
  }

  /**
   * Drops the current session and opens a new one at once (for example
   * when the page learns that the network changed). The MAC and, normally,
   * the IP stay.
   */
  reconnect() {
    const link = this.#link;
    if (!link || this.state === 'closed' || !this.#opt.reconnect) return;
    link.close(0, 'reconnect');
    this.#lost(link, 0, 'reconnect requested', 0);
  }

  /**
   * Closes the NIC for good: the session is closed with code and reason,
   * timers stop, `close` fires once.
   * @param {number} [code=0]
   * @param {string} [reason='']
   */
  close(code = 0, reason = '') {
    if (this.state === 'closed') return;
    const link = this.#link;
    this.#link = null;
    if (link) {
      link.lost = true;
      if (link.waiter) link.waiter(new Error('closed'));
      link.close(code, reason);
    }
    this.#finish(code, reason);
  }

  // close() may run during any await: read the state anew (a method, so
  // that the type checker does not carry an earlier comparison over it).
  #isClosed() {
    return this.state === 'closed';
  }

  // One session: open (WebTransport, the WebSocket fallback, or as the
  // transport option says), start reading, register. Throws on failure
  // with the session closed.
  async #attempt() {
    const mode = this.#opt.transport;
    const wsFirst = mode === 'websocket' || (mode === 'auto' && (typeof WebTransport === 'undefined' || this.#preferWs));
    /** @type {Link} */
    let link;
    if (wsFirst) {
      link = await this.#openWebSocket();
    } else {
      try {
        link = await this.#openWebTransport(mode === 'auto' ? this.#opt.fallbackAfterMs : this.#opt.connectTimeoutMs);
      } catch (e) {
        if (mode !== 'auto' || this.#isClosed()) throw e;
        link = await this.#openWebSocket();
        this.#preferWs = true;
      }
    }
    try {
      if (this.#isClosed()) throw new Error('closed');
      this.#link = link;
      this.#reasm.clear();
      this.transport = link.transport;
      await this.#register(link);
      if (this.#isClosed()) throw new Error('closed');
    } catch (e) {
      link.lost = true;
      if (this.#link === link) this.#link = null;
      link.close(0, 'setup failed');
      throw e;
    }
  }

  /** @param {number} timeoutMs @returns {Promise<Link>} */
  async #openWebTransport(timeoutMs) {
    let hash = this.#opt.certHash;
    if (this.#opt.certHashUrl) {
      const r = await withTimeout(fetch(this.#opt.certHashUrl, { cache: 'no-store' }), this.#opt.connectTimeoutMs,
        'certificate hash');
      if (!r.ok) throw new Error(`${this.#opt.certHashUrl}: HTTP ${r.status}`);
      hash = (await r.json()).sha256;
    }
    const init = hash ? { serverCertificateHashes: [{ algorithm: 'sha-256', value: hashBytes(hash) }] } : {};
    const wt = new WebTransport(this.#opt.url, init);
    /** @type {WritableStreamDefaultWriter<Uint8Array>|null} */
    let writer = null;
    /** @type {Link} */
    const link = {
      transport: 'webtransport',
      // a page sending faster than the path carries would queue without
      // bound in the writable stream: refused instead
      send: (d) => {
        if (!writer || (writer.desiredSize ?? 0) < -SEND_QUEUE_MAX) return false;
        writer.write(d).catch(() => { /* the session ended: closed handles it */ });
        return true;
      },
      maxDatagram: () => wt.datagrams.maxDatagramSize || 1200,
      close: (code, reason) => { try { wt.close({ closeCode: code, reason }); } catch { /* already closed */ } },
      lastRx: performance.now(), unanswered: null, waiter: null, lost: false, reregisters: 0,
    };
    wt.ready.catch(() => { /* reported by the wait below */ });
    wt.closed.then((info) => this.#lost(link, info && info.closeCode || 0, info && info.reason || ''),
      (e) => this.#lost(link, 0, errText(e)));
    try {
      await withTimeout(wt.ready, timeoutMs, 'WebTransport session');
    } catch (e) {
      link.lost = true;
      link.close(0, 'setup failed');
      throw e;
    }
    writer = wt.datagrams.writable.getWriter();
    this.#readLoop(link, wt.datagrams.readable.getReader());
    return link;
  }

  /** @returns {Promise<Link>} */
  async #openWebSocket() {
    const url = this.#opt.wsUrl || this.#opt.url.replace(/^https:/i, 'wss:');
    const ws = new WebSocket(url, 'bavy');
    ws.binaryType = 'arraybuffer';
    const max = 1 + this.#opt.maxFrameSize;
    /** @type {Link} */
    const link = {
      transport: 'websocket',
      send: (d) => {
        if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > WS_QUEUE_MAX) return false;
        ws.send(d);
        return true;
      },
      maxDatagram: () => max, // frames go whole: TCP has no datagram limit
      close: (code, reason) => {
        // the relay's codes are 0 or application codes; WebSocket allows 1000 and 3000-4999
        try { ws.close(code >= 3000 && code <= 4999 ? code : 1000, reason.slice(0, 120)); } catch { /* closed */ }
      },
      lastRx: performance.now(), unanswered: null, waiter: null, lost: false, reregisters: 0,
    };
    const opened = new Promise((resolve, reject) => {
      ws.onopen = () => resolve(undefined);
      ws.onerror = () => reject(new Error(`WebSocket ${url} failed`));
    });
    ws.onclose = (e) => this.#lost(link, e.code === 1000 ? 0 : e.code, e.reason);
    ws.onmessage = (e) => {
      link.lastRx = performance.now();
      if (e.data instanceof ArrayBuffer) this.#input(link, new Uint8Array(e.data));
      else this.counters.badDatagrams++;
    };
    try {
      await withTimeout(opened, this.#opt.connectTimeoutMs, 'WebSocket');
    } catch (e) {
      link.lost = true;
      link.close(0, 'setup failed');
      throw e;
    }
    return link;
  }

  /** @param {Link} link @returns {Promise<void>} */
  #register(link) {
    return new Promise((resolve, reject) => {
      const send = () => this.#control(link, { type: 'Register', mac: Array.from(this.mac) });
      const retry = setInterval(send, REGISTER_RETRY_MS); // a lost Register or Assigned
      const timer = setTimeout(() => link.waiter?.(new Error('no Assigned from the relay')), this.#opt.registerTimeoutMs);
      link.waiter = (err) => {
        clearInterval(retry);
        clearTimeout(timer);
        link.waiter = null;
        if (err) reject(err); else resolve();
      };
      send();
    });
  }

  /** @param {Link} link @param {ReadableStreamDefaultReader<Uint8Array>} reader */
  async #readLoop(link, reader) {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        link.lastRx = performance.now();
        this.#input(link, value);
      }
    } catch { /* the session ended */ }
    // closed settles with the code and reason; it reports the loss
  }

  /** @param {Link} link @param {Uint8Array} d */
  #input(link, d) {
    if (d.length === 0) { this.counters.badDatagrams++; return; }
    if (d[0] === T_FRAME) this.#deliver(d.subarray(1));
    else if (d[0] === T_CHUNK) this.#chunk(d);
    else if (d[0] === T_CONTROL) this.#controlIn(link, d.subarray(1));
    else this.counters.badDatagrams++;
  }

  /** @param {Link} link @param {Uint8Array} body */
  #controlIn(link, body) {
    let msg;
    try { msg = JSON.parse(dec.decode(body)); } catch { this.counters.badDatagrams++; return; }
    if (!msg || typeof msg !== 'object') { this.counters.badDatagrams++; return; }
    if (msg.type === 'Assigned') {
      this.ip = msg.ip;
      this.gateway = msg.gateway;
      this.netmask = msg.netmask;
      this.dns = msg.dns;
      if (link.waiter) link.waiter(null);
    } else if (msg.type === 'HeartbeatAck') {
      this.counters.heartbeatAcks++;
    } else if (msg.type === 'Error') {
      const message = String(msg.message);
      this.dispatchEvent(new CustomEvent('error', { detail: { message } }));
      // federated relays: the address offered is taken, the next try gets another
      if (link.waiter && /register again/.test(message) && link.reregisters++ < 3) {
        this.#control(link, { type: 'Register', mac: Array.from(this.mac) });
      } else if (link.waiter) {
        link.waiter(new Error(`relay: ${message}`));
      }
    }
  }

  /** @param {Uint8Array} d */
  #chunk(d) {
    this.counters.chunksIn++;
    if (d.length < 1 + CHUNK_HDR) { this.counters.badDatagrams++; return; }
    const id = (d[1] << 8) | d[2];
    const index = d[3];
    const total = d[4];
    const data = d.subarray(1 + CHUNK_HDR);
    const now = performance.now();
    this.#sweep(now);
    if (index >= total) { this.counters.reassemblyDrops++; return; }
    let r = this.#reasm.get(id);
    if (r && r.total !== total) {
      this.#reasm.delete(id);
      this.counters.reassemblyDrops++;
      return;
    }
    if (!r) {
      if (this.#reasm.size >= this.#opt.maxReassembly) {
        const oldest = this.#reasm.keys().next().value;
        if (oldest !== undefined) this.#reasm.delete(oldest);
        this.counters.reassemblyDrops++;
      }
      r = { total, parts: new Array(total), got: 0, bytes: 0, t0: now };
      this.#reasm.set(id, r);
    }
    if (r.parts[index]) { this.counters.chunkDuplicates++; return; }
    if (r.bytes + data.length > this.#opt.maxFrameSize) {
      this.#reasm.delete(id);
      this.counters.reassemblyDrops++;
      return;
    }
    r.parts[index] = data;
    r.got++;
    r.bytes += data.length;
    if (r.got < total) return;
    this.#reasm.delete(id);
    const frame = new Uint8Array(r.bytes);
    let off = 0;
    for (const p of r.parts) { frame.set(p, off); off += p.length; }
    this.#deliver(frame);
  }

  /** @param {number} now */
  #sweep(now) {
    for (const [id, r] of this.#reasm) {
      if (now - r.t0 < this.#opt.reassemblyTimeoutMs) break; // insertion order is age order
      this.#reasm.delete(id);
      this.counters.reassemblyDrops++;
    }
  }

  /** @param {Uint8Array} frame */
  #deliver(frame) {
    this.counters.framesIn++;
    this.counters.bytesIn += frame.length;
    this.dispatchEvent(new CustomEvent('frame', { detail: frame }));
  }

  /** @param {Link} link @param {object} obj */
  #control(link, obj) {
    const json = enc.encode(JSON.stringify(obj));
    const d = new Uint8Array(1 + json.length);
    d[0] = T_CONTROL;
    d.set(json, 1);
    this.#write(link, d);
  }

  /** @param {Link} link @param {Uint8Array} d */
  #write(link, d) {
    if (!link.send(d)) this.counters.sendDrops++;
  }

  #tick() {
    const link = this.#link;
    this.#sweep(performance.now());
    if (!link || this.state !== 'registered') return;
    // Silence is measured from the oldest Heartbeat nothing arrived after,
    // not from the last datagram: a hidden tab's timers may fire only once
    // a minute, and an idle but healthy session must not look dead then.
    const now = performance.now();
    if (link.unanswered !== null && link.lastRx >= link.unanswered) link.unanswered = null;
    if (link.unanswered !== null && now - link.unanswered > this.#opt.deadMs) {
      link.close(0, 'relay silent');
      this.#lost(link, 0, `nothing from the relay for ${this.#opt.deadMs} ms`);
      return;
    }
    this.#control(link, { type: 'Heartbeat' });
    this.counters.heartbeats++;
    if (link.unanswered === null) link.unanswered = now;
  }

  // A session ended (closed, read error, silence, or on request). Only the
  // first report of the live session counts; then reconnect or close.
  /** @param {Link} link @param {number} code @param {string} reason @param {number} [firstDelayMs] */
  #lost(link, code, reason, firstDelayMs) {
    if (link.lost) return;
    link.lost = true;
    if (link.waiter) { // still being set up: #attempt's caller decides
      link.waiter(new Error(`session closed during Register: ${reason}`));
      return;
    }
    if (this.#link !== link) return;
    this.#link = null;
    if (this.state === 'closed') return;
    // Another session registered this MAC (another tab, another relay) and
    // this one failed the relay's probe: taking it back would fight it.
    if (!this.#opt.reconnect || /^MAC taken over/.test(reason)) {
      this.#finish(code, reason);
      return;
    }
    this.#setState('reconnecting', { code, reason });
    this.#reconnectLoop(firstDelayMs);
  }

  /** @param {number} [firstDelayMs] */
  async #reconnectLoop(firstDelayMs) {
    if (!this.#opt.reconnect) return;
    const { minMs, maxMs } = this.#opt.reconnect;
    for (let attempt = 0; this.state === 'reconnecting'; attempt++) {
      const base = Math.min(maxMs, minMs * 2 ** attempt);
      const delay = attempt === 0 && firstDelayMs !== undefined ? firstDelayMs : base / 2 + Math.random() * base / 2;
      await new Promise((res) => setTimeout(res, delay));
      if (this.state !== 'reconnecting') return;
      try {
        await this.#attempt();
      } catch {
        continue;
      }
      this.counters.reconnects++;
      this.#setState('registered', { transport: this.transport || undefined });
      return;
    }
  }

  /** @param {NicState} state @param {{code?: number, reason?: string, transport?: Transport}} [extra] */
  #setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, ...extra } }));
  }

  /** @param {number} code @param {string} reason */
  #finish(code, reason) {
    clearInterval(this.#heartbeat);
    globalThis.removeEventListener?.('online', this.#wake);
    globalThis.document?.removeEventListener('visibilitychange', this.#wake);
    this.#reasm.clear();
    if (this.state === 'closed') return;
    this.#setState('closed', { code, reason });
    this.dispatchEvent(new CustomEvent('close', { detail: { code, reason } }));
  }
}

export default WtRelay;
