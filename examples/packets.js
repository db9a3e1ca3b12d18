// packets.js: just enough Ethernet, ARP, IPv4 and ICMP to ARP for and ping
// hosts from a page (the two-NIC example and the client's browser tests use
// it). Builders return whole frames (destination MAC first, no FCS); parse()
// describes any frame for display and answers to match. Addresses are arrays
// of numbers, as the relay's Assigned message gives them.

export const BROADCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
export const ETH_ARP = 0x0806;
export const ETH_IPV4 = 0x0800;

const same = (a, b) => a.length === b.length && Array.from(a).every((v, i) => v === b[i]);
export { same as sameBytes };

/** Internet checksum (RFC 1071) of bytes. */
export function checksum(b) {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] || 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

/** An Ethernet frame of dst, src, type and payload. */
export function ethernet(dst, src, type, payload) {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  f.set(payload, 14);
  return f;
}

/** ARP request (op 1, broadcast) or reply (op 2, to the asker). */
export function arp(op, srcMac, srcIp, dstMac, dstIp) {
  const a = new Uint8Array(28);
  a.set([0, 1, 8, 0, 6, 4, 0, op]);
  a.set(srcMac, 8);
  a.set(srcIp, 14);
  a.set(op === 2 ? dstMac : [0, 0, 0, 0, 0, 0], 18);
  a.set(dstIp, 24);
  return ethernet(op === 1 ? BROADCAST : dstMac, srcMac, ETH_ARP, a);
}

/** IPv4 ICMP echo request (type 8) or reply (type 0) with id, seq and data. */
export function icmpEcho(type, srcMac, srcIp, dstMac, dstIp, id, seq, data) {
  const icmp = new Uint8Array(8 + data.length);
  icmp.set([type, 0, 0, 0, id >> 8, id & 0xff, seq >> 8, seq & 0xff]);
  icmp.set(data, 8);
  const ic = checksum(icmp);
  icmp[2] = ic >> 8;
  icmp[3] = ic & 0xff;
  const ip = new Uint8Array(20 + icmp.length);
  ip.set([0x45, 0, ip.length >> 8, ip.length & 0xff, 0, 0, 0x40, 0, 64, 1, 0, 0]);
  ip.set(srcIp, 12);
  ip.set(dstIp, 16);
  const hc = checksum(ip.subarray(0, 20));
  ip[10] = hc >> 8;
  ip[11] = hc & 0xff;
  ip.set(icmp, 20);
  return ethernet(dstMac, srcMac, ETH_IPV4, ip);
}

/**
 * Describes a frame: {dst, src, type, kind, ...}. kind is 'arp' (op, senderMac,
 * senderIp, targetIp), 'icmp' (srcIp, dstIp, icmpType, id, seq, data,
 * checksumOk), 'ipv4' (srcIp, dstIp, proto) or 'other'.
 */
export function parse(f) {
  const d = { dst: Array.from(f.subarray(0, 6)), src: Array.from(f.subarray(6, 12)), type: (f[12] << 8) | f[13],
    length: f.length, kind: 'other' };
  if (d.type === ETH_ARP && f.length >= 42) {
    return { ...d, kind: 'arp', op: (f[20] << 8) | f[21], senderMac: Array.from(f.subarray(22, 28)),
      senderIp: Array.from(f.subarray(28, 32)), targetIp: Array.from(f.subarray(38, 42)) };
  }
  if (d.type === ETH_IPV4 && f.length >= 34 && (f[14] >> 4) === 4) {
    const ihl = (f[14] & 0x0f) * 4;
    const total = Math.min((f[16] << 8) | f[17], f.length - 14);
    const ip = { ...d, kind: 'ipv4', srcIp: Array.from(f.subarray(26, 30)), dstIp: Array.from(f.subarray(30, 34)),
      proto: f[23] };
    const icmp = f.subarray(14 + ihl, 14 + total);
    if (ip.proto !== 1 || icmp.length < 8) return ip;
    return { ...ip, kind: 'icmp', icmpType: icmp[0], id: (icmp[4] << 8) | icmp[5], seq: (icmp[6] << 8) | icmp[7],
      data: icmp.subarray(8), checksumOk: checksum(icmp) === 0 };
  }
  return d;
}

/**
 * What a host answers to a frame: the ARP reply for a request for myIp, the
 * echo reply for an echo request to myIp, else null.
 */
export function answer(f, myMac, myIp) {
  const p = parse(f);
  if (p.kind === 'arp' && p.op === 1 && same(p.targetIp, myIp)) return arp(2, myMac, myIp, p.senderMac, p.senderIp);
  if (p.kind === 'icmp' && p.icmpType === 8 && same(p.dstIp, myIp) && same(p.dst, myMac)) {
    return icmpEcho(0, myMac, myIp, p.src, p.srcIp, p.id, p.seq, p.data);
  }
  return null;
}
