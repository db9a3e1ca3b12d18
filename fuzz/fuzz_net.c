/*
 * fuzz_net: the packet parsers (net.c) on a peer's Ethernet frame, as the
 * switch and the NAT receive them: Ethernet, then ARP or IPv4, then UDP or
 * ICMP; and the builders fed with what the parsers returned.
 *
 * Invariants checked: every pointer and length a parser returns stays
 * inside the input; a parsed UDP datagram rebuilt by net_build_udp() (same
 * addresses, ports, payload) parses back to the same ports and payload with
 * a verifying checksum; a parsed ICMP message rebuilt by net_build_icmp()
 * parses back identically; net_build_icmp_error() about any parsed IPv4
 * packet parses as an ICMP error to its source quoting its header and up
 * to 8 payload bytes; an incremental checksum update of a parsed header
 * (TTL decrement, address rewrite) leaves a header that still verifies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/net.h"

#define OUT_CAP (ETH_HDR + 65535)

static uint8_t out[OUT_CAP];

static int inside(const uint8_t *base, size_t size, const uint8_t *p, size_t len)
{
  return p >= base && len <= size && (size_t)(p - base) <= size - len;
}

/* Parses a frame the builders produced down to IPv4; aborts on failure. */
static void reparse_ip(int n, struct net_eth *e, struct net_ipv4 *ip)
{
  if (n <= 0 || net_eth_parse(out, (size_t)n, e) != 0 || e->type != ETH_TYPE_IPV4 ||
      net_ipv4_parse(e->payload, e->len, ip) != 0 || net_ip_is_fragment(ip))
    abort();
}

static void check_udp(const struct net_eth *e, const struct net_ipv4 *ip)
{
  struct net_udp u, u2;
  struct net_eth e2;
  struct net_ipv4 ip2;
  struct net_l2 l2 = {.dst_mac = e->dst, .src_mac = e->src};

  if (net_udp_parse(ip, &u) != 0)
    return;
  if (!inside(ip->payload, ip->len, u.payload, u.len) || u.payload != ip->payload + UDP_HDR)
    abort();
  int n = net_build_udp(out, sizeof(out), &l2, ip->src, ip->dst, u.sport, u.dport, u.payload, u.len,
                        ip->id);
  if (n != (int)(ETH_HDR + IPV4_HDR + UDP_HDR + u.len))
    abort();
  reparse_ip(n, &e2, &ip2);
  if (ip2.src != ip->src || ip2.dst != ip->dst || ip2.proto != IP_PROTO_UDP ||
      net_udp_parse(&ip2, &u2) != 0)
    abort();
  if (u2.sport != u.sport || u2.dport != u.dport || u2.len != u.len ||
      memcmp(u2.payload, u.payload, u.len) != 0)
    abort();
  /* the checksum is always sent and verifies */
  const uint8_t *uh = ip2.payload;
  uint16_t ulen = (uint16_t)(UDP_HDR + u.len);
  if ((uh[6] | uh[7]) == 0 ||
      net_csum_fold(
          net_csum_add(net_csum_pseudo(ip2.src, ip2.dst, IP_PROTO_UDP, ulen), uh, ulen)) != 0)
    abort();
}

static void check_icmp(const struct net_eth *e, const struct net_ipv4 *ip)
{
  struct net_icmp m, m2;
  struct net_eth e2;
  struct net_ipv4 ip2;
  struct net_l2 l2 = {.dst_mac = e->dst, .src_mac = e->src};

  if (net_icmp_parse(ip, &m) != 0)
    return;
  if (!inside(ip->payload, ip->len, m.data, m.len) || m.data != ip->payload + ICMP_HDR ||
      m.len != ip->len - ICMP_HDR)
    abort();
  int n = net_build_icmp(out, sizeof(out), &l2, ip->src, ip->dst, m.type, m.code, ip->payload + 4,
                         m.data, m.len, ip->id);
  if (n != (int)(ETH_HDR + IPV4_HDR + ICMP_HDR + m.len))
    abort();
  reparse_ip(n, &e2, &ip2);
  if (net_icmp_parse(&ip2, &m2) != 0)
    abort();
  if (m2.type != m.type || m2.code != m.code || m2.id != m.id || m2.seq != m.seq ||
      m2.len != m.len || memcmp(m2.data, m.data, m.len) != 0)
    abort();
}

static void check_icmp_error(const struct net_eth *e, const struct net_ipv4 *ip)
{
  struct net_icmp m;
  struct net_eth e2;
  struct net_ipv4 ip2;
  struct net_l2 l2 = {.dst_mac = e->src, .src_mac = e->dst};
  size_t quote = ip->ihl + (ip->len < 8 ? ip->len : 8);

  int n = net_build_icmp_error(out, sizeof(out), &l2, ip->dst, ICMP_UNREACH, ICMP_UNREACH_NEEDFRAG,
                               1280, ip, 7);
  if (n != (int)(ETH_HDR + IPV4_HDR + ICMP_HDR + quote))
    abort();
  reparse_ip(n, &e2, &ip2);
  if (ip2.dst != ip->src || ip2.src != ip->dst || ip2.proto != IP_PROTO_ICMP ||
      net_icmp_parse(&ip2, &m) != 0)
    abort();
  if (m.type != ICMP_UNREACH || m.code != ICMP_UNREACH_NEEDFRAG || m.id != 0 || m.seq != 1280 ||
      m.len != quote || memcmp(m.data, ip->hdr, quote) != 0)
    abort();
}

/* Header rewrites as the NAT does them: TTL decrement and a source address
 * change with RFC 1624 updates; the result must still verify. */
static void check_csum_update(const struct net_ipv4 *ip)
{
  uint8_t h[60];
  memcpy(h, ip->hdr, ip->ihl);
  uint16_t csum = (uint16_t)(h[10] << 8 | h[11]);
  uint16_t w = (uint16_t)(h[8] << 8 | h[9]);
  uint16_t nw = (uint16_t)(w - 0x100);
  csum = net_csum_update16(csum, w, nw);
  h[8] = (uint8_t)(nw >> 8);
  uint32_t nsrc = ~ip->src ^ ((uint32_t)ip->id << 7);
  csum = net_csum_update32(csum, ip->src, nsrc);
  h[12] = (uint8_t)(nsrc >> 24);
  h[13] = (uint8_t)(nsrc >> 16);
  h[14] = (uint8_t)(nsrc >> 8);
  h[15] = (uint8_t)nsrc;
  h[10] = (uint8_t)(csum >> 8);
  h[11] = (uint8_t)csum;
  if (net_csum_fold(net_csum_add(0, h, ip->ihl)) != 0)
    abort();
}

/* TCP: pointers inside the datagram; a rebuilt segment (same header
 * fields, MSS option, payload) parses back the same. */
static void check_tcp(const struct net_eth *e, const struct net_ipv4 *ip)
{
  static uint8_t out[70000];
  struct net_tcp t, t2;
  struct net_eth e2;
  struct net_ipv4 ip2;
  if (net_tcp_parse(ip, &t) != 0)
    return;
  if (!inside(ip->payload, ip->len, t.payload, t.len) || t.wscale > 14)
    abort();
  struct net_l2 l2 = {.dst_mac = e->dst, .src_mac = e->src};
  int n = net_build_tcp(out, sizeof(out), &l2, ip->src, ip->dst, t.sport, t.dport, t.seq, t.ack,
                        t.flags, t.window, t.mss, t.payload, t.len, ip->id);
  if (n < 0)
    return;
  if (net_eth_parse(out, (size_t)n, &e2) != 0 || net_ipv4_parse(e2.payload, e2.len, &ip2) != 0 ||
      net_tcp_parse(&ip2, &t2) != 0 || t2.sport != t.sport || t2.dport != t.dport ||
      t2.seq != t.seq || t2.ack != t.ack || t2.flags != t.flags || t2.window != t.window ||
      t2.mss != t.mss || t2.len != t.len || memcmp(t2.payload, t.payload, t.len) != 0)
    abort();
}

static void check_ipv4(const struct net_eth *e)
{
  struct net_ipv4 ip;

  if (net_ipv4_parse(e->payload, e->len, &ip) != 0)
    return;
  if (ip.ihl < IPV4_HDR || ip.ihl > 60 || (ip.ihl & 3) || ip.hdr != e->payload ||
      ip.payload != e->payload + ip.ihl || ip.total_len != ip.ihl + ip.len ||
      !inside(e->payload, e->len, ip.payload, ip.len))
    abort();
  if (ip.proto == IP_PROTO_UDP)
    check_udp(e, &ip);
  else if (ip.proto == IP_PROTO_ICMP)
    check_icmp(e, &ip);
  else if (ip.proto == IP_PROTO_TCP)
    check_tcp(e, &ip);
  check_icmp_error(e, &ip);
  check_csum_update(&ip);
}

static void check_arp(const struct net_eth *e)
{
  struct net_arp a, a2;
  struct net_eth e2;
  struct net_l2 l2 = {.dst_mac = e->dst, .src_mac = e->src};

  if (net_arp_parse(e->payload, e->len, &a) != 0)
    return;
  if (e->len < 28)
    abort();
  int n = net_build_arp(out, sizeof(out), &l2, a.op, a.sha, a.spa, a.tha, a.tpa);
  if (n != ETH_HDR + 28 || net_eth_parse(out, (size_t)n, &e2) != 0 || e2.type != ETH_TYPE_ARP ||
      net_arp_parse(e2.payload, e2.len, &a2) != 0)
    abort();
  if (a2.op != a.op || a2.spa != a.spa || a2.tpa != a.tpa || memcmp(a2.sha, a.sha, 6) ||
      memcmp(a2.tha, a.tha, 6) || memcmp(e2.payload, e->payload, 28) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct net_eth e;
  /* Exact-size heap copy so ASan sees any read past the end. */
  uint8_t *copy = malloc(size ? size : 1);

  if (copy == NULL)
    return 0;
  memcpy(copy, data, size);
  if (net_eth_parse(copy, size, &e) == 0) {
    if (size < ETH_HDR || e.dst != copy || e.src != copy + 6 || e.payload != copy + ETH_HDR ||
        e.len != size - ETH_HDR)
      abort();
    if (e.type == ETH_TYPE_ARP)
      check_arp(&e);
    else if (e.type == ETH_TYPE_IPV4)
      check_ipv4(&e);
  }
  free(copy);
  return 0;
}
