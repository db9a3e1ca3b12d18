/*
 * fuzz_net6: the IPv6 parsers (net6.c) on a peer's Ethernet frame, as the
 * gateway receives it: IPv6 with its extension-header chain, ICMPv6,
 * Neighbor Discovery options; and the builders fed with what they
 * returned.
 *
 * Invariants checked: every pointer and length a parser returns stays
 * inside the input, the chain never walks more than NET6_MAX_EXT headers;
 * a parsed UDP datagram rebuilt by net_build_udp6() parses back to the
 * same ports and payload with a verifying (never zero) checksum;
 * a parsed ICMPv6 message rebuilt by net_build_icmp6() (same addresses,
 * type, code, rest and data) parses back identically with a verifying
 * checksum; a parsed TCP segment rebuilt by net_build_tcp6_hdr() (same
 * addresses, ports, numbers, flags, window, MSS/scale/SACK options and
 * payload) parses back identically; an ICMPv6 error about any parsed packet parses, goes to its
 * source, quotes its first bytes and stays within the IPv6 minimum MTU;
 * an ND message's target and link-layer option lie inside its data; an RA
 * and an NA built from parsed addresses parse back as ND messages; the
 * text form of any address is at most 39 characters and round-trips
 * through inet_pton.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/net6.h"

#define OUT_CAP (ETH_HDR + 65535)

static uint8_t out[OUT_CAP];

static int inside(const uint8_t *base, size_t size, const uint8_t *p, size_t len)
{
  return p >= base && len <= size && (size_t)(p - base) <= size - len;
}

static void reparse(int n, struct net_ipv6 *ip, struct net_icmp6 *m)
{
  struct net_eth e;
  if (n <= 0 || net_eth_parse(out, (size_t)n, &e) != 0 || e.type != ETH_TYPE_IPV6 ||
      net_ipv6_parse(e.payload, e.len, ip) != 0 || net_icmp6_parse(ip, m) != 0)
    abort();
}

static void check_text(const uint8_t a[16])
{
  char s[46];
  struct in6_addr back;
  net6_str(a, s);
  if (strlen(s) > 39 || inet_pton(AF_INET6, s, &back) != 1 || memcmp(back.s6_addr, a, 16) != 0)
    abort();
}

static void check_nd(const struct net_eth *e, const struct net_icmp6 *m)
{
  struct net_nd nd;
  if (net_nd_parse(m, &nd) != 0)
    return;
  if ((nd.target && !inside(m->data, m->len, nd.target, 16)) ||
      (nd.lladdr && !inside(m->data, m->len, nd.lladdr, 6)))
    abort();
  struct net_l2 l2 = {.dst_mac = e->src, .src_mac = e->dst};
  uint8_t src[16], dst[16], target[16];
  memcpy(src, e->payload + 24, 16);
  memcpy(dst, e->payload + 8, 16);
  memcpy(target, nd.target ? nd.target : src, 16);
  struct net_ipv6 ip;
  struct net_icmp6 m2;
  struct net_nd nd2;
  int n = net_build_na(out, sizeof(out), &l2, src, dst, target, e->dst, true, true, true);
  reparse(n, &ip, &m2);
  if (m2.type != ND_NEIGHBOR_ADVERT || net_nd_parse(&m2, &nd2) != 0 ||
      memcmp(nd2.target, target, 16) != 0 || !nd2.lladdr || memcmp(nd2.lladdr, e->dst, 6) != 0)
    abort();
  struct net_ra ra = {.cur_hlim = 64,
                      .mac = e->dst,
                      .mtu = nd.mtu,
                      .prefix = target,
                      .valid_s = 1,
                      .preferred_s = 1,
                      .rdnss = src,
                      .rdnss_s = 1};
  n = net_build_ra(out, sizeof(out), &l2, src, dst, &ra);
  reparse(n, &ip, &m2);
  if (m2.type != ND_ROUTER_ADVERT || ip.hlim != 255 || net_nd_parse(&m2, &nd2) != 0 ||
      nd2.mtu != nd.mtu || !nd2.lladdr)
    abort();
}

static void check_icmp6(const struct net_eth *e, const struct net_ipv6 *ip)
{
  struct net_icmp6 m, m2;
  struct net_ipv6 ip2;
  if (net_icmp6_parse(ip, &m) != 0)
    return;
  if (!inside(ip->payload, ip->len, m.data, m.len) || m.len + ICMP_HDR != ip->len)
    abort();
  struct net_l2 l2 = {.dst_mac = e->dst, .src_mac = e->src};
  uint8_t src[16], dst[16];
  memcpy(src, ip->src, 16);
  memcpy(dst, ip->dst, 16);
  int n = net_build_icmp6(out, sizeof(out), &l2, src, dst, ip->hlim, m.type, m.code, m.rest, m.data,
                          m.len);
  reparse(n, &ip2, &m2);
  if (m2.type != m.type || m2.code != m.code || memcmp(m2.rest, m.rest, 4) != 0 ||
      m2.len != m.len || memcmp(m2.data, m.data, m.len) != 0 || ip2.hlim != ip->hlim)
    abort();
  check_nd(e, &m);
}

static void check_udp6(const struct net_eth *e, const struct net_ipv6 *ip)
{
  struct net_udp u, u2;
  if (net_udp6_parse(ip, &u) != 0)
    return;
  if (!inside(ip->payload, ip->len, u.payload, u.len) || u.payload != ip->payload + UDP_HDR)
    abort();
  struct net_l2 l2 = {.dst_mac = e->dst, .src_mac = e->src};
  uint8_t src[16], dst[16];
  memcpy(src, ip->src, 16);
  memcpy(dst, ip->dst, 16);
  int n = net_build_udp6(out, sizeof(out), &l2, src, dst, u.sport, u.dport, u.payload, u.len);
  struct net_eth e2;
  struct net_ipv6 ip2;
  if (n != (int)(ETH_HDR + IPV6_HDR + UDP_HDR + u.len) || net_eth_parse(out, (size_t)n, &e2) != 0 ||
      net_ipv6_parse(e2.payload, e2.len, &ip2) != 0 || net_udp6_parse(&ip2, &u2) != 0)
    abort();
  if (u2.sport != u.sport || u2.dport != u.dport || u2.len != u.len ||
      memcmp(u2.payload, u.payload, u.len) != 0 ||
      (out[ETH_HDR + IPV6_HDR + 6] == 0 && out[ETH_HDR + IPV6_HDR + 7] == 0))
    abort();
}

static void check_tcp6(const struct net_eth *e, const struct net_ipv6 *ip)
{
  struct net_tcp t, t2;
  if (net_tcp6_parse(ip, &t) != 0)
    return;
  if (!inside(ip->payload, ip->len, t.payload, t.len))
    abort();
  struct net_l2 l2 = {.dst_mac = e->dst, .src_mac = e->src};
  uint8_t src[16], dst[16];
  memcpy(src, ip->src, 16);
  memcpy(dst, ip->dst, 16);
  struct net_tcp_opts o = {.mss = t.mss, .wscale = t.wscale, .sack_ok = t.sack_ok};
  int h = net_build_tcp6_hdr(out, sizeof(out) - t.len, &l2, src, dst, t.sport, t.dport, t.seq,
                             t.ack, t.flags, t.window, &o, t.payload, t.len);
  if (h <= 0)
    abort();
  memcpy(out + h, t.payload, t.len);
  struct net_eth e2;
  struct net_ipv6 ip2;
  if (net_eth_parse(out, (size_t)h + t.len, &e2) != 0 ||
      net_ipv6_parse(e2.payload, e2.len, &ip2) != 0 || net_tcp6_parse(&ip2, &t2) != 0)
    abort();
  if (t2.sport != t.sport || t2.dport != t.dport || t2.seq != t.seq || t2.ack != t.ack ||
      t2.flags != t.flags || t2.window != t.window || t2.mss != t.mss || t2.wscale != t.wscale ||
      t2.sack_ok != t.sack_ok || t2.len != t.len || memcmp(t2.payload, t.payload, t.len) != 0)
    abort();
}

static void check_error(const struct net_eth *e, const struct net_ipv6 *ip)
{
  struct net_l2 l2 = {.dst_mac = e->src, .src_mac = e->dst};
  static const uint8_t gw[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  uint8_t orig_src[16];
  memcpy(orig_src, ip->src, 16);
  size_t whole = (size_t)(ip->payload - ip->hdr) + ip->len;
  uint8_t first[48];
  size_t cmp = whole < sizeof(first) ? whole : sizeof(first);
  memcpy(first, ip->hdr, cmp);
  int n = net_build_icmp6_error(out, sizeof(out), &l2, gw, ICMP6_UNREACH, 0, 0, ip);
  struct net_ipv6 ip2;
  struct net_icmp6 m;
  reparse(n, &ip2, &m);
  if ((size_t)n - ETH_HDR > 1280 || memcmp(ip2.dst, orig_src, 16) != 0 || m.type != ICMP6_UNREACH ||
      m.len < cmp || memcmp(m.data, first, cmp) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct net_eth e;
  struct net_ipv6 ip;
  if (net_eth_parse(data, size, &e) != 0)
    return 0;
  if (net_ipv6_parse(e.payload, e.len, &ip) != 0)
    return 0;
  if (ip.hdr != e.payload || ip.nexts > NET6_MAX_EXT ||
      !inside(e.payload, e.len, ip.payload, ip.len) || !inside(e.payload, e.len, ip.src, 16) ||
      !inside(e.payload, e.len, ip.dst, 16))
    abort();
  check_text(ip.src);
  check_text(ip.dst);
  if (ip.next == IP_PROTO_ICMPV6 && !ip.fragment)
    check_icmp6(&e, &ip);
  if (ip.next == IP_PROTO_UDP && !ip.fragment)
    check_udp6(&e, &ip);
  if (ip.next == IP_PROTO_TCP && !ip.fragment)
    check_tcp6(&e, &ip);
  check_error(&e, &ip);
  return 0;
}
