/*
 * test_net6: IPv6, ICMPv6 and Neighbor Discovery parsing and building
 * (net6.c): the extension-header walk and its bounds, checksums, ND
 * options, address helpers and text form.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "wtrelay/net6.h"

static const uint8_t A[16] = {0xfe, 0x80, 0, 0,    0,    0,    0,    0,
                              0x50, 0x54, 0, 0xff, 0xfe, 0x12, 0x34, 0x56};
static const uint8_t B[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

/* An IPv6 header with payload length plen and first next header nh. */
static size_t hdr(uint8_t *p, uint16_t plen, uint8_t nh)
{
  memset(p, 0, 40);
  p[0] = 0x60;
  p[4] = (uint8_t)(plen >> 8);
  p[5] = (uint8_t)plen;
  p[6] = nh;
  p[7] = 255;
  memcpy(p + 8, A, 16);
  memcpy(p + 24, B, 16);
  return 40;
}

Test(net6, extension_chain_is_walked_to_the_upper_layer)
{
  uint8_t p[200];
  /* hop-by-hop (8) -> destination options (16) -> fragment (8) -> UDP (8) */
  size_t n = hdr(p, 8 + 16 + 8 + 8, 0);
  memset(p + n, 0, 40);
  p[n] = 60;
  p[n + 1] = 0;
  p[n + 8] = 44;
  p[n + 9] = 1;
  p[n + 24] = 17;
  struct net_ipv6 ip;
  cr_assert_eq(net_ipv6_parse(p, n + 40, &ip), 0);
  cr_assert_eq(ip.next, 17);
  cr_assert_eq(ip.nexts, 3);
  cr_assert(ip.fragment);
  cr_assert_eq(ip.len, 8);
  cr_assert_eq(ip.payload, p + 40 + 32);
  cr_assert_eq(ip.hlim, 255);
  /* trailing Ethernet padding past the payload length is allowed */
  cr_assert_eq(net_ipv6_parse(p, n + 40 + 6, &ip), 0);
  cr_assert_eq(ip.len, 8);
}

Test(net6, malformed_headers_are_refused)
{
  uint8_t p[400];
  struct net_ipv6 ip;
  size_t n = hdr(p, 8, 17);
  cr_assert_eq(net_ipv6_parse(p, 39, &ip), -EMSGSIZE, "shorter than a header");
  cr_assert_eq(net_ipv6_parse(p, n + 7, &ip), -EMSGSIZE, "payload length past the frame");
  p[0] = 0x40;
  cr_assert_eq(net_ipv6_parse(p, n + 8, &ip), -EPROTO, "version 4");
  /* hop-by-hop after another extension header */
  n = hdr(p, 24, 60);
  memset(p + n, 0, 24);
  p[n] = 0;
  p[n + 8] = 17;
  cr_assert_eq(net_ipv6_parse(p, n + 24, &ip), -EPROTO);
  /* an extension header longer than the payload */
  n = hdr(p, 8, 60);
  memset(p + n, 0, 8);
  p[n] = 17;
  p[n + 1] = 4;
  cr_assert_eq(net_ipv6_parse(p, n + 8, &ip), -EMSGSIZE);
  /* more extension headers than NET6_MAX_EXT: refused, not walked forever */
  n = hdr(p, (NET6_MAX_EXT + 2) * 8, 60);
  memset(p + n, 0, (NET6_MAX_EXT + 2) * 8);
  for (int i = 0; i < NET6_MAX_EXT + 2; i++)
    p[n + 8 * i] = 60;
  cr_assert_eq(net_ipv6_parse(p, n + (NET6_MAX_EXT + 2) * 8, &ip), -ELOOP);
}

Test(net6, icmp6_built_then_parsed_and_checksum_guarded)
{
  uint8_t f[200], mac1[6] = {2, 0, 0, 0, 0, 1}, mac2[6] = {2, 0, 0, 0, 0, 2};
  struct net_l2 l2 = {.dst_mac = mac1, .src_mac = mac2};
  const uint8_t rest[4] = {0, 1, 0, 2};
  int n =
      net_build_icmp6(f, sizeof(f), &l2, A, B, 64, ICMP6_ECHO, 0, rest, (const uint8_t *)"abc", 3);
  cr_assert_eq(n, 14 + 40 + 8 + 3);
  struct net_eth e;
  struct net_ipv6 ip;
  struct net_icmp6 m;
  cr_assert_eq(net_eth_parse(f, (size_t)n, &e), 0);
  cr_assert_eq(e.type, ETH_TYPE_IPV6);
  cr_assert_eq(net_ipv6_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(net_icmp6_parse(&ip, &m), 0);
  cr_assert_eq(m.type, ICMP6_ECHO);
  cr_assert_arr_eq(m.rest, rest, 4);
  cr_assert_eq(m.len, 3);
  f[n - 1] ^= 1;
  cr_assert_eq(net_icmp6_parse(&ip, &m), -EBADMSG);
  cr_assert_eq(net_build_icmp6(f, 60, &l2, A, B, 64, ICMP6_ECHO, 0, rest, NULL, 0), -ENOSPC);
}

/* The ones' complement sum of TCP over IPv6 computed here on its own:
 * the pseudo-header (addresses, upper-layer length, next header 6) and
 * the segment. 0xffff (folded, before the final inversion) when right. */
static uint16_t tcp6_sum_indep(const uint8_t *ip6, const uint8_t *seg, size_t n)
{
  uint32_t s = 0;
  for (int i = 8; i < 40; i += 2)
    s += (uint32_t)ip6[i] << 8 | ip6[i + 1];
  s += (uint32_t)(n >> 16) + (uint32_t)(n & 0xffff) + 6;
  for (size_t i = 0; i + 1 < n; i += 2)
    s += (uint32_t)seg[i] << 8 | seg[i + 1];
  if (n & 1)
    s += (uint32_t)seg[n - 1] << 8;
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

/* TCP over IPv6: headers built for a payload that follows them, the
 * checksum over the IPv6 pseudo-header (checked here independently),
 * options and flags read back, a flipped bit refused. */
Test(net6, tcp6_built_with_pseudo_header_checksum_and_parsed)
{
  uint8_t f[300], mac1[6] = {2, 0, 0, 0, 0, 1}, mac2[6] = {2, 0, 0, 0, 0, 2};
  struct net_l2 l2 = {.dst_mac = mac1, .src_mac = mac2};
  struct net_tcp_opts o = {.mss = 1126, .wscale = 7, .sack_ok = true};
  const char *data = "odd-sized payload";
  size_t dlen = strlen(data);
  int h = net_build_tcp6_hdr(f, sizeof(f) - dlen, &l2, A, B, 443, 40000, 0x01020304, 0x0a0b0c0d,
                             TCP_SYN | TCP_ACK, 65535, &o, (const uint8_t *)data, dlen);
  cr_assert_eq(h, 14 + 40 + 20 + 12);
  memcpy(f + h, data, dlen);
  size_t n = (size_t)h + dlen;
  cr_assert_eq(tcp6_sum_indep(f + 14, f + 14 + 40, n - 54), 0xffff, "independent checksum");
  struct net_eth e;
  struct net_ipv6 ip;
  struct net_tcp t;
  cr_assert_eq(net_eth_parse(f, n, &e), 0);
  cr_assert_eq(net_ipv6_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(ip.next, IP_PROTO_TCP);
  cr_assert_eq(ip.len, 32 + dlen);
  cr_assert_eq(net_tcp6_parse(&ip, &t), 0);
  cr_assert_eq(t.sport, 443);
  cr_assert_eq(t.dport, 40000);
  cr_assert_eq(t.seq, 0x01020304);
  cr_assert_eq(t.ack, 0x0a0b0c0d);
  cr_assert_eq(t.flags, TCP_SYN | TCP_ACK);
  cr_assert_eq(t.mss, 1126);
  cr_assert_eq(t.wscale, 7);
  cr_assert(t.sack_ok);
  cr_assert_eq(t.len, dlen);
  cr_assert_eq(memcmp(t.payload, data, dlen), 0);
  f[n - 1] ^= 1;
  cr_assert_eq(net_tcp6_parse(&ip, &t), -EBADMSG);
  cr_assert_eq(net_build_tcp6_hdr(f, 60, &l2, A, B, 1, 2, 0, 0, TCP_ACK, 0, NULL, NULL, 0),
               -ENOSPC);
}

Test(net6, nd_options_are_bounded)
{
  uint8_t f[200], mac[6] = {2, 0, 0, 0, 0, 1};
  struct net_l2 l2 = {.dst_mac = mac, .src_mac = mac};
  int n = net_build_na(f, sizeof(f), &l2, B, A, B, mac, true, true, false);
  cr_assert_gt(n, 0);
  struct net_ipv6 ip;
  struct net_icmp6 m;
  struct net_nd nd;
  cr_assert_eq(net_ipv6_parse(f + 14, (size_t)n - 14, &ip), 0);
  cr_assert_eq(net_icmp6_parse(&ip, &m), 0);
  cr_assert_eq(net_nd_parse(&m, &nd), 0);
  cr_assert_arr_eq(nd.target, B, 16);
  cr_assert_arr_eq(nd.lladdr, mac, 6);
  cr_assert_eq(m.rest[0], 0xc0);
  /* an option of length 0 would loop: refused */
  uint8_t data[24];
  memcpy(data, B, 16);
  data[16] = 2;
  data[17] = 0;
  struct net_icmp6 bad = {.type = ND_NEIGHBOR_ADVERT, .data = data, .len = 24};
  cr_assert_eq(net_nd_parse(&bad, &nd), -EBADMSG);
  /* an option running past the message */
  data[17] = 2;
  cr_assert_eq(net_nd_parse(&bad, &nd), -EMSGSIZE);
  /* a target cut short; a code other than 0 */
  bad.len = 10;
  cr_assert_eq(net_nd_parse(&bad, &nd), -EMSGSIZE);
  bad.len = 16;
  bad.code = 1;
  cr_assert_eq(net_nd_parse(&bad, &nd), -EPROTO);
}

Test(net6, addresses_and_text)
{
  const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  const uint8_t ll[8] = {0xfe, 0x80};
  uint8_t a[16], sn[16], m[6];
  net6_addr_eui64(a, ll, mac);
  cr_assert_arr_eq(a, A, 16, "universal/local bit flipped, ff:fe inserted");
  net6_solicited_node(sn, a);
  const uint8_t want_sn[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0x12, 0x34, 0x56};
  cr_assert_arr_eq(sn, want_sn, 16);
  net6_multicast_mac(m, sn);
  const uint8_t want_m[6] = {0x33, 0x33, 0xff, 0x12, 0x34, 0x56};
  cr_assert_arr_eq(m, want_m, 6);
  char s[46];
  cr_assert_str_eq(net6_str(A, s), "fe80::5054:ff:fe12:3456");
  cr_assert_str_eq(net6_str(B, s), "fe80::2");
  const uint8_t zero[16] = {0};
  cr_assert_str_eq(net6_str(zero, s), "::");
  const uint8_t one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  cr_assert_str_eq(net6_str(one, s), "::1");
  const uint8_t mid[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
  cr_assert_str_eq(net6_str(mid, s), "2001:db8:0:1::1");
  const uint8_t full[16] = {0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8};
  cr_assert_str_eq(net6_str(full, s), "1:2:3:4:5:6:7:8");
  cr_assert(net6_is_link_local(A));
  cr_assert(!net6_is_link_local(mid));
  cr_assert(net6_is_multicast(sn));
  cr_assert(net6_is_unspecified(zero));
}
