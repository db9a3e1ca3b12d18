// Types of wtrelay.js (the module itself is plain JavaScript with JSDoc).

export interface ReconnectOptions {
  /** first delay after a lost session, ms (default 500) */
  minMs?: number;
  /** longest delay, ms; the delay doubles after each failed attempt (default 30000) */
  maxMs?: number;
}

export interface ConnectOptions {
  /** WebTransport URL of the relay, the path naming the room: "https://relay.example.org:4433/lab" */
  url: string;
  /** SHA-256 of the relay's self-signed certificate: 64 hex digits or 32 bytes */
  certHash?: string | Uint8Array;
  /** URL answering {"sha256": "<hex>"} (the relay's /cert-hash), fetched before every connection */
  certHashUrl?: string;
  /** "52:54:00:12:34:56" or six numbers; default: a random locally administered unicast MAC */
  mac?: string | ArrayLike<number>;
  /** time between Heartbeats, ms (default 15000) */
  heartbeatMs?: number;
  /** time a Heartbeat may stay without any datagram from the relay after it before the session counts as lost, ms (default 3 heartbeats + 5 s) */
  deadMs?: number;
  /** backoff of the automatic reconnect; false: a lost session closes the NIC */
  reconnect?: ReconnectOptions | false;
  /** limit on opening one session, ms (default 10000) */
  connectTimeoutMs?: number;
  /** limit on getting Assigned after Register, ms (default 10000) */
  registerTimeoutMs?: number;
  /** largest frame reassembled from chunks (default 1514, the relay's --max-frame-size) */
  maxFrameSize?: number;
  /** chunked frames reassembled at once; the oldest is dropped beyond (default 8) */
  maxReassembly?: number;
  /** age at which a partial frame is dropped, ms (default 5000) */
  reassemblyTimeoutMs?: number;
  /** 'auto' (default): WebTransport, and the WebSocket fallback when the browser has
   * no WebTransport or its session does not open within fallbackAfterMs; or one only */
  transport?: Transport | 'auto';
  /** WebSocket URL of the fallback (default: url with wss: for https:); needs a
   * certificate the browser trusts (no certificate hashes for WebSocket) */
  wsUrl?: string;
  /** in 'auto', how long a WebTransport session may take to open before the WebSocket is tried, ms (default 4000) */
  fallbackAfterMs?: number;
}

export type Transport = 'webtransport' | 'websocket';

export type NicState = 'connecting' | 'registered' | 'reconnecting' | 'closed';

export interface Counters {
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  chunksIn: number;
  chunksOut: number;
  /** partial frames dropped: aged, evicted, inconsistent or too big */
  reassemblyDrops: number;
  chunkDuplicates: number;
  /** frames not sent: no registered session, over 256 datagrams queued, or longer than 255 chunks */
  sendDrops: number;
  /** datagrams with an unknown type byte, short chunks, unparsable control JSON */
  badDatagrams: number;
  heartbeats: number;
  heartbeatAcks: number;
  /** sessions replaced after a loss */
  reconnects: number;
}

export interface StateDetail {
  state: NicState;
  /** close code of the lost session (reconnecting, closed) */
  code?: number;
  /** why the session ended (reconnecting, closed) */
  reason?: string;
  /** the transport of the session (registered) */
  transport?: Transport;
}

export interface WtRelayEventMap {
  /** a received Ethernet frame, destination MAC first, no FCS */
  frame: CustomEvent<Uint8Array>;
  state: CustomEvent<StateDetail>;
  /** an Error message from the relay */
  error: CustomEvent<{ message: string }>;
  /** once, when the NIC is closed for good */
  close: CustomEvent<{ code: number; reason: string }>;
}

/** A NIC the relay assigned an address: what connect() resolves with. The
 * address fields are set from then on (a reconnect replaces them, never with null). */
export type AssignedWtRelay = WtRelay & {
  ip: number[];
  gateway: number[];
  netmask: number[];
  dns: number[];
};

export class WtRelay extends EventTarget {
  /** Opens a session, registers; resolves once the relay assigned an address. */
  static connect(options: ConnectOptions): Promise<AssignedWtRelay>;
  constructor(options: ConnectOptions);
  /** this NIC's MAC, kept across reconnects */
  readonly mac: Uint8Array;
  /** the assigned address and the network, as in the relay's Assigned message;
   * null until the first Assigned (never after: see AssignedWtRelay) */
  ip: number[] | null;
  gateway: number[] | null;
  netmask: number[] | null;
  dns: number[] | null;
  state: NicState;
  /** the transport of the current (or last) session; null before the first */
  transport: Transport | null;
  readonly counters: Counters;
  /** Sends one Ethernet frame (whole or chunked); false when dropped (no session, queue full, too long). */
  send(frame: Uint8Array): boolean;
  /** Replaces the session at once, keeping the MAC (and normally the IP). */
  reconnect(): void;
  /** Closes the NIC for good. */
  close(code?: number, reason?: string): void;
  addEventListener<K extends keyof WtRelayEventMap>(type: K, listener: (ev: WtRelayEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof WtRelayEventMap>(type: K, listener: (ev: WtRelayEventMap[K]) => void,
    options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions): void;
}

/** "10.0.2.15" for four numbers, "52:54:00:12:34:56" for six. */
export function formatAddress(bytes: ArrayLike<number>): string;
/** A random locally administered unicast MAC. */
export function randomMac(): Uint8Array;

export default WtRelay;
