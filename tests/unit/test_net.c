/*
 * test_net: Internet checksums (full and incremental), the frame builders
 * round-tripped through the parsers, and the parsers' refusals of
 * truncated, malformed and fragmented input.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/net.h"

static const uint8_t mac_a[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t mac_b[6] = {0x02, 0x00, 0x5e, 0xaa, 0xbb, 0xcc};
static const struct net_l2 l2 = {.dst_mac = mac_b, .src_mac = mac_a};

#define IP(a, b, c, d)                                                                             \
  ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

static const uint32_t src_ip = IP(192, 0, 2, 1);
static const uint32_t dst_ip = IP(198, 51, 100, 7);

static uint16_t get16(const uint8_t *p)
{
  return (uint16_t)(p[0] << 8 | p[1]);
}

static void set16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* Recomputes the IPv4 header checksum of h (ihl bytes) after an edit, so a
 * test can reach the check it means to exercise. */
static void fix_ipcsum(uint8_t *h, size_t ihl)
{
  set16(h + 10, 0);
  set16(h + 10, net_csum_fold(net_csum_add(0, h, ihl)));
}

/* xorshift32, fixed seed: reproducible "random" cases. */
static uint32_t rng_state = 0x2545f491;

static uint32_t rnd(void)
{
  uint32_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return rng_state = x;
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(i * 31 + seed);
}

/* Builds a UDP frame and parses it down to UDP; asserts every step. */
static int build_parse_udp(uint8_t *buf, size_t cap, const uint8_t *payload, size_t len,
                           struct net_eth *e, struct net_ipv4 *ip, struct net_udp *u)
{
  int n = net_build_udp(buf, cap, &l2, src_ip, dst_ip, 5353, 53, payload, len, 0x1234);
  cr_assert_eq(n, (int)(ETH_HDR + IPV4_HDR + UDP_HDR + len));
  cr_assert_eq(net_eth_parse(buf, (size_t)n, e), 0);
  cr_assert_eq(net_ipv4_parse(e->payload, e->len, ip), 0);
  cr_assert_eq(net_udp_parse(ip, u), 0);
  return n;
}

/* ---- checksums ---- */

Test(net_csum, rfc1071_example)
{
  /* RFC 1071 section 3: the one's complement sum of these bytes is ddf2. */
  static const uint8_t b[8] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  uint32_t s = net_csum_add(0, b, sizeof(b));
  cr_assert_eq(net_csum_fold(s), (uint16_t)~0xddf2);
  /* summing in two pieces (even split) gives the same result */
  s = net_csum_add(net_csum_add(0, b, 4), b + 4, 4);
  cr_assert_eq(net_csum_fold(s), (uint16_t)~0xddf2);
}

Test(net_csum, known_ipv4_header)
{
  /* 192.168.0.1 -> 192.168.0.199, UDP, total 0x73: checksum b861. */
  uint8_t h[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                   0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  /* a valid header sums to 0xffff: folds to 0 */
  cr_assert_eq(net_csum_fold(net_csum_add(0, h, sizeof(h))), 0);
  set16(h + 10, 0);
  cr_assert_eq(net_csum_fold(net_csum_add(0, h, sizeof(h))), 0xb861);
  /* and the parser agrees */
  struct net_ipv4 ip;
  uint8_t pkt[0x73] = {0};
  memcpy(pkt, h, 20);
  set16(pkt + 10, 0xb861);
  cr_assert_eq(net_ipv4_parse(pkt, sizeof(pkt), &ip), 0);
  cr_assert_eq(ip.src, IP(192, 168, 0, 1));
  cr_assert_eq(ip.dst, IP(192, 168, 0, 199));
}

Test(net_csum, odd_length)
{
  static const uint8_t b[3] = {0x01, 0x02, 0x03};
  /* the last byte is padded with a zero on the right: 0x0102 + 0x0300 */
  cr_assert_eq(net_csum_add(0, b, 3), 0x0402);
  cr_assert_eq(net_csum_fold(net_csum_add(0, b, 3)), (uint16_t)~0x0402);
  static const uint8_t one[1] = {0xab};
  cr_assert_eq(net_csum_add(0, one, 1), 0xab00);
  cr_assert_eq(net_csum_add(7, one, 0), 7);
  /* an empty sum folds to 0xffff */
  cr_assert_eq(net_csum_fold(0), 0xffff);
}

Test(net_csum, carries_fold)
{
  /* 64 KiB of 0xff: a large sum with many end-around carries */
  static uint8_t big[65536];
  memset(big, 0xff, sizeof(big));
  cr_assert_eq(net_csum_fold(net_csum_add(0, big, sizeof(big))), 0);
  big[0] = 0xfe; /* 0xfeff + 32767 * 0xffff: one's complement sum 0xfeff */
  cr_assert_eq(net_csum_fold(net_csum_add(0, big, sizeof(big))), 0x0100);
  /* 0xffffffff as a starting sum is -0 */
  cr_assert_eq(net_csum_fold(0xffffffffu), 0);
}

/* The word-at-a-time sum against the definition (big-endian 16-bit words,
 * an odd last byte padded on the right), at every length up to 100 and
 * every alignment of the start, with a running sum carried in. */
Test(net_csum, words_match_the_definition)
{
  uint8_t buf[128];
  uint32_t x = 12345;
  for (size_t i = 0; i < sizeof(buf); i++) {
    x = x * 1103515245u + 12345u;
    buf[i] = (uint8_t)(x >> 16);
  }
  buf[5] = buf[6] = 0xff;
  for (size_t off = 0; off < 8; off++)
    for (size_t len = 0; len <= 100; len++) {
      uint64_t ref = 0xfff0;
      for (size_t k = 0; k + 1 < len; k += 2)
        ref += (uint32_t)buf[off + k] << 8 | buf[off + k + 1];
      if (len & 1)
        ref += (uint32_t)buf[off + len - 1] << 8;
      uint16_t want = net_csum_fold((uint32_t)((ref & 0xffffffffu) + (ref >> 32)));
      cr_assert_eq(net_csum_fold(net_csum_add(0xfff0, buf + off, len)), want, "off %zu len %zu",
                   off, len);
    }
}

Test(net_csum, pseudo_header)
{
  uint32_t s =
      net_csum_pseudo(IP(0xc0, 0xa8, 0x00, 0x01), IP(0xff, 0xff, 0xff, 0xff), IP_PROTO_UDP, 0x1234);
  uint8_t ph[12] = {0xc0, 0xa8, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0x00, 0x11, 0x12, 0x34};
  cr_assert_eq(net_csum_fold(s), net_csum_fold(net_csum_add(0, ph, sizeof(ph))));
}

/* A random IPv4 header with a valid checksum. Word 0 keeps version 4 so the
 * header is never all zeros (the one case where RFC 1624's equation 3 and a
 * full computation legitimately differ: 0x0000 vs 0xffff). */
static void random_header(uint8_t h[20])
{
  for (int i = 0; i < 20; i++)
    h[i] = (uint8_t)rnd();
  h[0] = 0x45;
  fix_ipcsum(h, 20);
}

static uint16_t edge_or_random(void)
{
  switch (rnd() % 4) {
  case 0:
    return 0x0000;
  case 1:
    return 0xffff;
  default:
    return (uint16_t)rnd();
  }
}

Test(net_csum, update16_matches_recompute)
{
  uint8_t h[20], full[20];
  unsigned zero_csums = 0;
  rng_state = 0x2545f491;
  for (int iter = 0; iter < 10000; iter++) {
    random_header(h);
    int w;
    do
      w = 1 + (int)(rnd() % 9); /* words 1..9, the checksum (5) excluded */
    while (w == 5);
    /* sometimes start from an edge value too */
    if (rnd() % 3 == 0) {
      set16(h + 2 * w, edge_or_random());
      fix_ipcsum(h, 20);
    }
    uint16_t old = get16(h + 2 * w), csum = get16(h + 10), nv;
    if (iter % 16 == 0) {
      /* the value that makes the new checksum exactly 0x0000 */
      uint32_t s = (uint32_t)csum + old;
      nv = (uint16_t)((s & 0xffff) + (s >> 16));
    } else {
      nv = edge_or_random();
    }
    uint16_t inc = net_csum_update16(csum, old, nv);
    memcpy(full, h, 20);
    set16(full + 2 * w, nv);
    fix_ipcsum(full, 20);
    cr_assert_eq(inc, get16(full + 10),
                 "iter %d word %d old %04x new %04x csum %04x: incremental %04x, full %04x", iter,
                 w, old, nv, csum, inc, get16(full + 10));
    set16(h + 2 * w, nv);
    set16(h + 10, inc);
    cr_assert_eq(net_csum_fold(net_csum_add(0, h, 20)), 0);
    zero_csums += inc == 0;
  }
  cr_assert_geq(zero_csums, 600u); /* the 0x0000 edge was really exercised */
  /* the unchanged field leaves the checksum unchanged */
  cr_assert_eq(net_csum_update16(0x1234, 0xabcd, 0xabcd), 0x1234);
}

Test(net_csum, update32_matches_recompute)
{
  uint8_t h[20], full[20];
  rng_state = 0x9e3779b9;
  for (int iter = 0; iter < 10000; iter++) {
    random_header(h);
    int off = (rnd() & 1) ? 12 : 16; /* src or dst address */
    uint32_t nv;
    switch (rnd() % 5) {
    case 0:
      nv = 0;
      break;
    case 1:
      nv = 0xffffffffu;
      break;
    case 2:
      nv = (uint32_t)edge_or_random() << 16 | edge_or_random();
      break;
    default:
      nv = rnd();
    }
    uint32_t old = (uint32_t)get16(h + off) << 16 | get16(h + off + 2);
    uint16_t inc = net_csum_update32(get16(h + 10), old, nv);
    memcpy(full, h, 20);
    set16(full + off, (uint16_t)(nv >> 16));
    set16(full + off + 2, (uint16_t)nv);
    fix_ipcsum(full, 20);
    cr_assert_eq(inc, get16(full + 10), "iter %d off %d old %08x new %08x: %04x vs %04x", iter, off,
                 old, nv, inc, get16(full + 10));
  }
}

Test(net_csum, update_on_udp_checksum)
{
  /* NAT-style rewrite: change the source address and port of a built UDP
   * datagram, patch both checksums incrementally, and the parser accepts it. */
  uint8_t buf[256], payload[33];
  struct net_eth e;
  struct net_ipv4 ip;
  struct net_udp u;
  fill(payload, sizeof(payload), 9);
  int n = build_parse_udp(buf, sizeof(buf), payload, sizeof(payload), &e, &ip, &u);
  uint8_t *h = buf + ETH_HDR, *uh = h + IPV4_HDR;
  uint32_t nsrc = IP(203, 0, 113, 77);
  set16(h + 10, net_csum_update32(get16(h + 10), src_ip, nsrc));
  set16(uh + 6, net_csum_update32(get16(uh + 6), src_ip, nsrc));
  set16(h + 12, (uint16_t)(nsrc >> 16));
  set16(h + 14, (uint16_t)nsrc);
  set16(uh + 6, net_csum_update16(get16(uh + 6), 5353, 40000));
  set16(uh, 40000);
  cr_assert_eq(net_eth_parse(buf, (size_t)n, &e), 0);
  cr_assert_eq(net_ipv4_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(ip.src, nsrc);
  cr_assert_eq(net_udp_parse(&ip, &u), 0);
  cr_assert_eq(u.sport, 40000);
}

/* ---- builders round-trip through the parsers ---- */

Test(net_build, udp_round_trip)
{
  uint8_t buf[1600], payload[37];
  struct net_eth e;
  struct net_ipv4 ip;
  struct net_udp u;
  fill(payload, sizeof(payload), 1);
  int n = net_build_udp(buf, sizeof(buf), &l2, src_ip, dst_ip, 5353, 53, payload, sizeof(payload),
                        0x1234);
  cr_assert_eq(n, ETH_HDR + IPV4_HDR + UDP_HDR + 37);

  cr_assert_eq(net_eth_parse(buf, (size_t)n, &e), 0);
  cr_assert_arr_eq(e.dst, mac_b, 6);
  cr_assert_arr_eq(e.src, mac_a, 6);
  cr_assert_eq(e.type, ETH_TYPE_IPV4);
  cr_assert_eq(e.payload, buf + ETH_HDR);
  cr_assert_eq(e.len, (size_t)n - ETH_HDR);

  cr_assert_eq(net_ipv4_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(ip.ihl, 20);
  cr_assert_eq(ip.tos, 0);
  cr_assert_eq(ip.ttl, 64);
  cr_assert_eq(ip.proto, IP_PROTO_UDP);
  cr_assert_eq(ip.total_len, IPV4_HDR + UDP_HDR + 37);
  cr_assert_eq(ip.id, 0x1234);
  cr_assert_eq(ip.frag, 0x4000); /* DF */
  cr_assert(!net_ip_is_fragment(&ip));
  cr_assert_eq(ip.src, src_ip);
  cr_assert_eq(ip.dst, dst_ip);
  cr_assert_eq(ip.hdr, buf + ETH_HDR);
  cr_assert_eq(ip.payload, buf + ETH_HDR + IPV4_HDR);
  cr_assert_eq(ip.len, UDP_HDR + 37);

  cr_assert_eq(net_udp_parse(&ip, &u), 0);
  cr_assert_eq(u.sport, 5353);
  cr_assert_eq(u.dport, 53);
  cr_assert_eq(u.len, 37);
  cr_assert_eq(u.payload, ip.payload + UDP_HDR);
  cr_assert_arr_eq(u.payload, payload, 37);

  /* the UDP checksum is present and verifies over pseudo-header + datagram */
  const uint8_t *uh = ip.payload;
  cr_assert_neq(get16(uh + 6), 0);
  cr_assert_eq(get16(uh + 4), UDP_HDR + 37);
  uint32_t s = net_csum_pseudo(src_ip, dst_ip, IP_PROTO_UDP, UDP_HDR + 37);
  cr_assert_eq(net_csum_fold(net_csum_add(s, uh, UDP_HDR + 37)), 0);
}

Test(net_build, udp_corruption_detected)
{
  uint8_t buf[256], payload[37];
  struct net_eth e;
  struct net_ipv4 ip;
  struct net_udp u;
  fill(payload, sizeof(payload), 2);
  int n = build_parse_udp(buf, sizeof(buf), payload, sizeof(payload), &e, &ip, &u);
  /* every single-bit flip in the ports, length-preserving bytes and payload */
  for (int off = ETH_HDR + IPV4_HDR; off < n; off++) {
    if (off == ETH_HDR + IPV4_HDR + 4 || off == ETH_HDR + IPV4_HDR + 5)
      continue; /* the length field: may fail on length instead */
    if (off == ETH_HDR + IPV4_HDR + 6 || off == ETH_HDR + IPV4_HDR + 7)
      continue; /* the checksum field itself could become 0 = "none" */
    buf[off] ^= 0x01;
    cr_assert_eq(net_ipv4_parse(buf + ETH_HDR, (size_t)n - ETH_HDR, &ip), 0);
    cr_assert_eq(net_udp_parse(&ip, &u), -EBADMSG, "flip at %d", off);
    buf[off] ^= 0x01;
  }
  /* a corrupted IP header is caught by the IPv4 header checksum */
  for (int off = ETH_HDR; off < ETH_HDR + IPV4_HDR; off++) {
    if (off == ETH_HDR)
      continue; /* version/ihl: refused as malformed before the checksum */
    buf[off] ^= 0x80;
    int rc = net_ipv4_parse(buf + ETH_HDR, (size_t)n - ETH_HDR, &ip);
    cr_assert(rc == -EBADMSG || rc == -EINVAL, "flip at %d: %d", off, rc);
    if (off != ETH_HDR + 2 && off != ETH_HDR + 3)
      cr_assert_eq(rc, -EBADMSG, "flip at %d", off);
    buf[off] ^= 0x80;
  }
  cr_assert_eq(net_ipv4_parse(buf + ETH_HDR, (size_t)n - ETH_HDR, &ip), 0);
  cr_assert_eq(net_udp_parse(&ip, &u), 0);
}

Test(net_build, udp_zero_checksum_accepted_and_never_sent)
{
  uint8_t buf[256], payload[2] = {0, 0};
  struct net_eth e;
  struct net_ipv4 ip;
  struct net_udp u;
  int n = build_parse_udp(buf, sizeof(buf), payload, 2, &e, &ip, &u);
  uint8_t *uh = buf + ETH_HDR + IPV4_HDR;

  /* checksum 0 means "none": the parser skips verification */
  set16(uh + 6, 0);
  uh[8] ^= 0x55;
  cr_assert_eq(net_udp_parse(&ip, &u), 0);

  /* a payload word equal to the checksum of the zero payload makes the
   * computed checksum 0: the builder must send 0xffff instead */
  uh[8] ^= 0x55;
  n = build_parse_udp(buf, sizeof(buf), payload, 2, &e, &ip, &u);
  uint16_t c0 = get16(buf + ETH_HDR + IPV4_HDR + 6);
  cr_assert_neq(c0, 0xffff);
  payload[0] = (uint8_t)(c0 >> 8);
  payload[1] = (uint8_t)c0;
  n = build_parse_udp(buf, sizeof(buf), payload, 2, &e, &ip, &u);
  cr_assert_eq(get16(buf + ETH_HDR + IPV4_HDR + 6), 0xffff);
  cr_assert_eq(n, ETH_HDR + IPV4_HDR + UDP_HDR + 2);
}

Test(net_build, udp_empty_payload_and_in_place)
{
  uint8_t buf[256];
  struct net_eth e;
  struct net_ipv4 ip;
  struct net_udp u;
  build_parse_udp(buf, sizeof(buf), NULL, 0, &e, &ip, &u);
  cr_assert_eq(u.len, 0);
  cr_assert_eq(u.payload, ip.payload + UDP_HDR);

  /* the payload may already sit where the builder puts it (memmove) */
  fill(buf + ETH_HDR + IPV4_HDR + UDP_HDR, 100, 7);
  uint8_t want[100];
  fill(want, 100, 7);
  build_parse_udp(buf, sizeof(buf), buf + ETH_HDR + IPV4_HDR + UDP_HDR, 100, &e, &ip, &u);
  cr_assert_arr_eq(u.payload, want, 100);
}

Test(net_build, icmp_echo_round_trip)
{
  uint8_t buf[256], data[57];
  const uint8_t rest[4] = {0x12, 0x34, 0x00, 0x07};
  struct net_eth e;
  struct net_ipv4 ip;
  struct net_icmp m;
  fill(data, sizeof(data), 3);
  int n = net_build_icmp(buf, sizeof(buf), &l2, src_ip, dst_ip, ICMP_ECHO, 0, rest, data,
                         sizeof(data), 0x4242);
  cr_assert_eq(n, ETH_HDR + IPV4_HDR + ICMP_HDR + 57);
  cr_assert_eq(net_eth_parse(buf, (size_t)n, &e), 0);
  cr_assert_eq(e.type, ETH_TYPE_IPV4);
  cr_assert_eq(net_ipv4_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(ip.proto, IP_PROTO_ICMP);
  cr_assert_eq(ip.id, 0x4242);
  cr_assert_eq(ip.frag, 0); /* no DF on ICMP */
  cr_assert_eq(ip.src, src_ip);
  cr_assert_eq(ip.dst, dst_ip);
  cr_assert_eq(net_icmp_parse(&ip, &m), 0);
  cr_assert_eq(m.type, ICMP_ECHO);
  cr_assert_eq(m.code, 0);
  cr_assert_eq(m.id, 0x1234);
  cr_assert_eq(m.seq, 7);
  cr_assert_eq(m.len, 57);
  cr_assert_eq(m.data, ip.payload + ICMP_HDR);
  cr_assert_arr_eq(m.data, data, 57);
  /* ICMP is not UDP */
  struct net_udp u;
  cr_assert_eq(net_udp_parse(&ip, &u), -EINVAL);

  /* any corrupted ICMP byte fails the ICMP checksum */
  for (int off = ETH_HDR + IPV4_HDR; off < n; off++) {
    buf[off] ^= 0x10;
    cr_assert_eq(net_icmp_parse(&ip, &m), -EBADMSG, "flip at %d", off);
    buf[off] ^= 0x10;
  }
  /* an echo reply with no data */
  n = net_build_icmp(buf, sizeof(buf), &l2, dst_ip, src_ip, ICMP_ECHO_REPLY, 0, rest, NULL, 0, 1);
  cr_assert_eq(n, ETH_HDR + IPV4_HDR + ICMP_HDR);
  cr_assert_eq(net_ipv4_parse(buf + ETH_HDR, (size_t)n - ETH_HDR, &ip), 0);
  cr_assert_eq(net_icmp_parse(&ip, &m), 0);
  cr_assert_eq(m.type, ICMP_ECHO_REPLY);
  cr_assert_eq(m.len, 0);
}

Test(net_build, arp_round_trip)
{
  uint8_t buf[64];
  const uint8_t zero[6] = {0};
  struct net_eth e;
  struct net_arp a;
  const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  struct net_l2 bl2 = {.dst_mac = bcast, .src_mac = mac_a};
  int n = net_build_arp(buf, sizeof(buf), &bl2, 1, mac_a, IP(10, 0, 0, 2), zero, IP(10, 0, 0, 1));
  cr_assert_eq(n, ETH_HDR + 28);
  cr_assert_eq(net_eth_parse(buf, (size_t)n, &e), 0);
  cr_assert_eq(e.type, ETH_TYPE_ARP);
  cr_assert_arr_eq(e.dst, bcast, 6);
  cr_assert_arr_eq(e.src, mac_a, 6);
  cr_assert_eq(e.len, 28);
  cr_assert_eq(net_arp_parse(e.payload, e.len, &a), 0);
  cr_assert_eq(a.op, 1);
  cr_assert_arr_eq(a.sha, mac_a, 6);
  cr_assert_arr_eq(a.tha, zero, 6);
  cr_assert_eq(a.spa, IP(10, 0, 0, 2));
  cr_assert_eq(a.tpa, IP(10, 0, 0, 1));

  /* a reply, padded to the 60-byte Ethernet minimum */
  memset(buf, 0xee, sizeof(buf));
  n = net_build_arp(buf, sizeof(buf), &l2, 2, mac_b, IP(10, 0, 0, 1), mac_a, IP(10, 0, 0, 2));
  cr_assert_eq(net_eth_parse(buf, 60, &e), 0);
  cr_assert_eq(e.len, 46);
  cr_assert_eq(net_arp_parse(e.payload, e.len, &a), 0);
  cr_assert_eq(a.op, 2);
  cr_assert_arr_eq(a.sha, mac_b, 6);
  cr_assert_arr_eq(a.tha, mac_a, 6);
  cr_assert_eq(a.spa, IP(10, 0, 0, 1));
  cr_assert_eq(a.tpa, IP(10, 0, 0, 2));
}

static void check_icmp_error(const uint8_t *orig_hdr, const struct net_ipv4 *orig, uint8_t type,
                             uint8_t code, uint16_t mtu, size_t want_quote)
{
  uint8_t buf[256];
  struct net_eth e;
  struct net_ipv4 ip;
  struct net_icmp m;
  uint32_t gw = IP(100, 64, 0, 1);
  int n = net_build_icmp_error(buf, sizeof(buf), &l2, gw, type, code, mtu, orig, 0x77);
  cr_assert_eq(n, (int)(ETH_HDR + IPV4_HDR + ICMP_HDR + want_quote));
  cr_assert_eq(net_eth_parse(buf, (size_t)n, &e), 0);
  cr_assert_eq(net_ipv4_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(ip.src, gw);
  cr_assert_eq(ip.dst, orig->src);
  cr_assert_eq(ip.proto, IP_PROTO_ICMP);
  cr_assert_eq(ip.id, 0x77);
  cr_assert_eq(net_icmp_parse(&ip, &m), 0);
  cr_assert_eq(m.type, type);
  cr_assert_eq(m.code, code);
  cr_assert_eq(m.id, 0); /* unused */
  cr_assert_eq(m.seq, mtu);
  cr_assert_eq(m.len, want_quote);
  cr_assert_arr_eq(m.data, orig_hdr, want_quote);
  /* explicit checksum check over the whole ICMP message */
  cr_assert_eq(net_csum_fold(net_csum_add(0, ip.payload, ip.len)), 0);
  /* the quoted header is itself a valid IPv4 header */
  cr_assert_eq(net_csum_fold(net_csum_add(0, m.data, orig->ihl)), 0);
}

Test(net_build, icmp_error_quotes_header_and_8_bytes)
{
  uint8_t buf[256], payload[40];
  struct net_eth e;
  struct net_ipv4 ip;
  struct net_udp u;
  fill(payload, sizeof(payload), 4);
  build_parse_udp(buf, sizeof(buf), payload, sizeof(payload), &e, &ip, &u);
  check_icmp_error(ip.hdr, &ip, ICMP_UNREACH, ICMP_UNREACH_PORT, 0, IPV4_HDR + 8);
  check_icmp_error(ip.hdr, &ip, ICMP_UNREACH, ICMP_UNREACH_NEEDFRAG, 1400, IPV4_HDR + 8);
  check_icmp_error(ip.hdr, &ip, ICMP_TIME_EXCEEDED, 0, 0, IPV4_HDR + 8);
}

Test(net_build, icmp_error_with_options_and_short_payload)
{
  /* ihl 6 (one option word) and only 5 payload bytes */
  uint8_t pkt[29] = {
      0x46, 0x00, 0x00, 29, 0xab, 0xcd, 0x00, 0x00, 0x40, IP_PROTO_TCP, 0,    0, 10,
      0,    0,    5,    1,  1,    1,    1,    0x01, 0x01, 0x01,         0x00, /* NOP NOP NOP EOL */
      1,    2,    3,    4,  5};
  struct net_ipv4 ip;
  fix_ipcsum(pkt, 24);
  cr_assert_eq(net_ipv4_parse(pkt, sizeof(pkt), &ip), 0);
  cr_assert_eq(ip.ihl, 24);
  cr_assert_eq(ip.len, 5);
  check_icmp_error(pkt, &ip, ICMP_UNREACH, ICMP_UNREACH_ADMIN, 0, 24 + 5);

  /* ihl 15: the largest header, 60 bytes + 8 quoted */
  uint8_t big[80];
  memset(big, 0x01, sizeof(big)); /* NOP options */
  big[0] = 0x4f;
  big[1] = 0;
  set16(big + 2, sizeof(big));
  set16(big + 4, 1);
  set16(big + 6, 0);
  big[8] = 3;
  big[9] = IP_PROTO_UDP;
  set16(big + 12, 0x0a00);
  set16(big + 14, 0x0009);
  set16(big + 16, 0x0808);
  set16(big + 18, 0x0808);
  fix_ipcsum(big, 60);
  cr_assert_eq(net_ipv4_parse(big, sizeof(big), &ip), 0);
  cr_assert_eq(ip.ihl, 60);
  check_icmp_error(big, &ip, ICMP_UNREACH, ICMP_UNREACH_HOST, 0, 68);
}

Test(net_build, enospc)
{
  static uint8_t buf[70000];
  uint8_t payload[100] = {0};
  const uint8_t rest[4] = {0};
  struct net_eth e;
  struct net_ipv4 ip;
  struct net_udp u;
  size_t need = ETH_HDR + IPV4_HDR + UDP_HDR + 100;

  cr_assert_eq(net_build_udp(buf, need - 1, &l2, 1, 2, 3, 4, payload, 100, 0), -ENOSPC);
  cr_assert_eq(net_build_udp(buf, need, &l2, 1, 2, 3, 4, payload, 100, 0), (int)need);
  cr_assert_eq(net_build_udp(buf, 0, &l2, 1, 2, 3, 4, NULL, 0, 0), -ENOSPC);
  /* an IPv4 total length over 65535 cannot be built whatever the room */
  cr_assert_eq(net_build_udp(buf, sizeof(buf), &l2, 1, 2, 3, 4, buf + 1000,
                             65535 - IPV4_HDR - UDP_HDR + 1, 0),
               -ENOSPC);
  int n =
      net_build_udp(buf, sizeof(buf), &l2, 1, 2, 3, 4, buf + 1000, 65535 - IPV4_HDR - UDP_HDR, 0);
  cr_assert_eq(n, ETH_HDR + 65535);
  cr_assert_eq(net_eth_parse(buf, (size_t)n, &e), 0);
  cr_assert_eq(net_ipv4_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(net_udp_parse(&ip, &u), 0);
  cr_assert_eq(u.len, 65535 - IPV4_HDR - UDP_HDR);

  need = ETH_HDR + IPV4_HDR + ICMP_HDR + 100;
  cr_assert_eq(net_build_icmp(buf, need - 1, &l2, 1, 2, 8, 0, rest, payload, 100, 0), -ENOSPC);
  cr_assert_eq(net_build_icmp(buf, need, &l2, 1, 2, 8, 0, rest, payload, 100, 0), (int)need);
  cr_assert_eq(net_build_icmp(buf, sizeof(buf), &l2, 1, 2, 8, 0, rest, buf + 1000,
                              65535 - IPV4_HDR - ICMP_HDR + 1, 0),
               -ENOSPC);

  cr_assert_eq(net_build_arp(buf, ETH_HDR + 27, &l2, 1, mac_a, 1, mac_b, 2), -ENOSPC);
  cr_assert_eq(net_build_arp(buf, ETH_HDR + 28, &l2, 1, mac_a, 1, mac_b, 2), ETH_HDR + 28);

  /* the ICMP error about a UDP datagram needs 14 + 20 + 8 + 28 bytes */
  uint8_t orig[256], err[128];
  build_parse_udp(orig, sizeof(orig), payload, 20, &e, &ip, &u);
  need = ETH_HDR + IPV4_HDR + ICMP_HDR + IPV4_HDR + 8;
  cr_assert_eq(net_build_icmp_error(err, need - 1, &l2, 1, 3, 3, 0, &ip, 0), -ENOSPC);
  cr_assert_eq(net_build_icmp_error(err, need, &l2, 1, 3, 3, 0, &ip, 0), (int)need);
}

Test(net_misc, ip_str)
{
  char b[16];
  cr_assert_str_eq(net_ip_str(IP(192, 0, 2, 1), b), "192.0.2.1");
  cr_assert_str_eq(net_ip_str(0, b), "0.0.0.0");
  cr_assert_str_eq(net_ip_str(0xffffffffu, b), "255.255.255.255");
}

/* ---- parser refusals ---- */

Test(net_parse, truncated_ethernet)
{
  uint8_t f[ETH_HDR] = {0};
  struct net_eth e;
  set16(f + 12, ETH_TYPE_IPV4);
  for (size_t len = 0; len < ETH_HDR; len++)
    cr_assert_eq(net_eth_parse(f, len, &e), -EINVAL, "len %zu", len);
  cr_assert_eq(net_eth_parse(NULL, 0, &e), -EINVAL);
  cr_assert_eq(net_eth_parse(f, ETH_HDR, &e), 0);
  cr_assert_eq(e.len, 0);
  cr_assert_eq(e.type, ETH_TYPE_IPV4);
}

Test(net_parse, arp_refusals)
{
  uint8_t buf[64];
  struct net_arp a;
  int n = net_build_arp(buf, sizeof(buf), &l2, 1, mac_a, 1, mac_b, 2);
  uint8_t *p = buf + ETH_HDR;
  cr_assert_eq(n, ETH_HDR + 28);
  for (size_t len = 0; len < 28; len++)
    cr_assert_eq(net_arp_parse(p, len, &a), -EINVAL, "len %zu", len);
  cr_assert_eq(net_arp_parse(p, 28, &a), 0);

  set16(p, 6); /* htype IEEE 802 */
  cr_assert_eq(net_arp_parse(p, 28, &a), -EINVAL);
  set16(p, 1);
  set16(p + 2, 0x86dd); /* ptype IPv6 */
  cr_assert_eq(net_arp_parse(p, 28, &a), -EINVAL);
  set16(p + 2, ETH_TYPE_IPV4);
  p[4] = 8; /* hlen */
  cr_assert_eq(net_arp_parse(p, 28, &a), -EINVAL);
  p[4] = 6;
  p[5] = 16; /* plen */
  cr_assert_eq(net_arp_parse(p, 28, &a), -EINVAL);
  p[5] = 4;
  cr_assert_eq(net_arp_parse(p, 28, &a), 0);
}

/* A valid IPv4/UDP packet (no Ethernet) in pkt; returns its length. */
static size_t udp_packet(uint8_t *pkt, size_t cap, size_t payload_len)
{
  uint8_t frame[2048], payload[1024];
  fill(payload, payload_len, 5);
  int n =
      net_build_udp(frame, sizeof(frame), &l2, src_ip, dst_ip, 1000, 2000, payload, payload_len, 9);
  cr_assert_gt(n, 0);
  cr_assert_leq((size_t)n - ETH_HDR, cap);
  memcpy(pkt, frame + ETH_HDR, (size_t)n - ETH_HDR);
  return (size_t)n - ETH_HDR;
}

Test(net_parse, ipv4_refusals)
{
  uint8_t pkt[128];
  struct net_ipv4 ip;
  size_t len = udp_packet(pkt, sizeof(pkt), 12);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), 0);

  for (size_t l = 0; l < IPV4_HDR; l++)
    cr_assert_eq(net_ipv4_parse(pkt, l, &ip), -EINVAL, "len %zu", l);

  /* version 6 (checksum fixed, so only the version is wrong) */
  pkt[0] = 0x65;
  fix_ipcsum(pkt, 20);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), -EINVAL);
  /* ihl < 5 */
  for (uint8_t ihl = 0; ihl < 5; ihl++) {
    pkt[0] = (uint8_t)(0x40 | ihl);
    fix_ipcsum(pkt, 20);
    cr_assert_eq(net_ipv4_parse(pkt, len, &ip), -EINVAL, "ihl %u", ihl);
  }
  pkt[0] = 0x45;
  fix_ipcsum(pkt, 20);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), 0);

  /* ihl larger than the buffer */
  pkt[0] = 0x4f;
  fix_ipcsum(pkt, 20);
  cr_assert_eq(net_ipv4_parse(pkt, 40, &ip), -EINVAL);
  pkt[0] = 0x45;

  /* total_len > buffer */
  set16(pkt + 2, (uint16_t)(len + 1));
  fix_ipcsum(pkt, 20);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), -EINVAL);
  set16(pkt + 2, 0xffff);
  fix_ipcsum(pkt, 20);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), -EINVAL);
  /* total_len < ihl */
  set16(pkt + 2, 19);
  fix_ipcsum(pkt, 20);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), -EINVAL);
  set16(pkt + 2, 0);
  fix_ipcsum(pkt, 20);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), -EINVAL);
  /* total_len == ihl: an empty payload is fine for IPv4 */
  set16(pkt + 2, 20);
  fix_ipcsum(pkt, 20);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), 0);
  cr_assert_eq(ip.len, 0);
  /* with options: ihl 6, total_len 22 < 24 */
  pkt[0] = 0x46;
  set16(pkt + 2, 22);
  fix_ipcsum(pkt, 24);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), -EINVAL);
  pkt[0] = 0x45;
  set16(pkt + 2, (uint16_t)len);
  fix_ipcsum(pkt, 20);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), 0);

  /* bad header checksum */
  pkt[11] ^= 1;
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), -EBADMSG);
  pkt[11] ^= 1;
  pkt[8] = 1; /* TTL changed without fixing the checksum */
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), -EBADMSG);
}

Test(net_parse, trailing_ethernet_padding)
{
  /* 4 bytes of UDP payload: 14 + 20 + 8 + 4 = 46, padded to 60 */
  uint8_t f[60];
  uint8_t payload[4] = {0xde, 0xad, 0xbe, 0xef};
  struct net_eth e;
  struct net_ipv4 ip;
  struct net_udp u;
  memset(f, 0xa5, sizeof(f));
  int n = net_build_udp(f, sizeof(f), &l2, src_ip, dst_ip, 67, 68, payload, 4, 3);
  cr_assert_eq(n, 46);
  cr_assert_eq(net_eth_parse(f, sizeof(f), &e), 0);
  cr_assert_eq(e.len, 46);
  cr_assert_eq(net_ipv4_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(ip.total_len, 32);
  cr_assert_eq(ip.len, 12); /* total_len - ihl, padding excluded */
  cr_assert_eq(net_udp_parse(&ip, &u), 0);
  cr_assert_eq(u.len, 4);
  cr_assert_arr_eq(u.payload, payload, 4);

  /* the same for ICMP: the checksum covers total_len, not the padding */
  const uint8_t rest[4] = {0, 1, 0, 2};
  memset(f, 0x5a, sizeof(f));
  n = net_build_icmp(f, sizeof(f), &l2, src_ip, dst_ip, ICMP_ECHO, 0, rest, payload, 4, 3);
  cr_assert_eq(n, 46);
  struct net_icmp m;
  cr_assert_eq(net_eth_parse(f, sizeof(f), &e), 0);
  cr_assert_eq(net_ipv4_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(net_icmp_parse(&ip, &m), 0);
  cr_assert_eq(m.len, 4);
}

Test(net_parse, udp_refusals)
{
  uint8_t pkt[128];
  struct net_ipv4 ip;
  struct net_udp u;
  size_t len = udp_packet(pkt, sizeof(pkt), 12);
  uint8_t *uh = pkt + IPV4_HDR;
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), 0);
  cr_assert_eq(net_udp_parse(&ip, &u), 0);

  /* checksum off so that only the length decides */
  set16(uh + 6, 0);
  for (uint16_t ul = 0; ul < UDP_HDR; ul++) {
    set16(uh + 4, ul);
    cr_assert_eq(net_udp_parse(&ip, &u), -EINVAL, "ulen %u", ul);
  }
  set16(uh + 4, UDP_HDR); /* an empty datagram, shorter than the IP payload */
  cr_assert_eq(net_udp_parse(&ip, &u), 0);
  cr_assert_eq(u.len, 0);
  set16(uh + 4, (uint16_t)(ip.len + 1)); /* longer than the IP payload */
  cr_assert_eq(net_udp_parse(&ip, &u), -EINVAL);
  set16(uh + 4, 0xffff);
  cr_assert_eq(net_udp_parse(&ip, &u), -EINVAL);
  set16(uh + 4, (uint16_t)ip.len);
  cr_assert_eq(net_udp_parse(&ip, &u), 0);
  cr_assert_eq(u.len, 12);

  /* an IP payload too short for a UDP header */
  set16(pkt + 2, IPV4_HDR + 7);
  fix_ipcsum(pkt, 20);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), 0);
  cr_assert_eq(net_udp_parse(&ip, &u), -EINVAL);
  set16(pkt + 2, (uint16_t)len);

  /* not UDP */
  pkt[9] = IP_PROTO_TCP;
  fix_ipcsum(pkt, 20);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), 0);
  cr_assert_eq(net_udp_parse(&ip, &u), -EINVAL);
  struct net_icmp m;
  cr_assert_eq(net_icmp_parse(&ip, &m), -EINVAL);
}

Test(net_parse, udp_length_shorter_than_ip_payload)
{
  /* UDP length 8 + 4 inside a 12-byte UDP payload: the checksum covers the
   * UDP length only, the rest of the IP payload is ignored */
  uint8_t frame[128], payload[4] = {1, 2, 3, 4};
  int n = net_build_udp(frame, sizeof(frame), &l2, src_ip, dst_ip, 7, 9, payload, 4, 1);
  uint8_t pkt[128];
  struct net_ipv4 ip;
  struct net_udp u;
  size_t len = (size_t)n - ETH_HDR + 8;
  memcpy(pkt, frame + ETH_HDR, (size_t)n - ETH_HDR);
  memset(pkt + n - ETH_HDR, 0x99, 8);
  set16(pkt + 2, (uint16_t)len);
  fix_ipcsum(pkt, 20);
  cr_assert_eq(net_ipv4_parse(pkt, len, &ip), 0);
  cr_assert_eq(ip.len, UDP_HDR + 12);
  cr_assert_eq(net_udp_parse(&ip, &u), 0);
  cr_assert_eq(u.len, 4);
  cr_assert_arr_eq(u.payload, payload, 4);
}

Test(net_parse, icmp_refusals)
{
  uint8_t pkt[64] = {0x45, 0, 0, 0, 0, 1, 0, 0, 64, IP_PROTO_ICMP, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
  struct net_ipv4 ip;
  struct net_icmp m;
  /* 7 bytes of ICMP: shorter than its header */
  for (size_t l = 0; l < ICMP_HDR; l++) {
    set16(pkt + 2, (uint16_t)(IPV4_HDR + l));
    fix_ipcsum(pkt, 20);
    cr_assert_eq(net_ipv4_parse(pkt, sizeof(pkt), &ip), 0);
    cr_assert_eq(net_icmp_parse(&ip, &m), -EINVAL, "icmp len %zu", l);
  }
}

Test(net_parse, fragments)
{
  uint8_t pkt[128];
  struct net_ipv4 ip;
  struct net_udp u;
  struct net_icmp m;
  size_t len = udp_packet(pkt, sizeof(pkt), 12);
  static const struct {
    uint16_t frag;
    bool is_frag;
  } cases[] = {
      {0x0000, false}, {0x4000, false}, /* DF alone */
      {0x2000, true},                   /* MF: first fragment */
      {0x0001, true},                   /* offset 8, last fragment */
      {0x2001, true},  {0x1fff, true},  {0x4000 | 0x0010, true}, {0x3fff, true},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    set16(pkt + 6, cases[i].frag);
    pkt[9] = IP_PROTO_UDP;
    fix_ipcsum(pkt, 20);
    /* fragments parse at the IP layer: the caller decides */
    cr_assert_eq(net_ipv4_parse(pkt, len, &ip), 0);
    cr_assert_eq(ip.frag, cases[i].frag);
    cr_assert_eq(net_ip_is_fragment(&ip), cases[i].is_frag, "frag %04x", cases[i].frag);
    if (cases[i].is_frag)
      cr_assert_eq(net_udp_parse(&ip, &u), -EINVAL, "frag %04x", cases[i].frag);
    else
      cr_assert_eq(net_udp_parse(&ip, &u), 0, "frag %04x", cases[i].frag);
  }
  /* an ICMP fragment is refused too */
  const uint8_t rest[4] = {0};
  uint8_t f[128];
  int n = net_build_icmp(f, sizeof(f), &l2, src_ip, dst_ip, ICMP_ECHO, 0, rest, NULL, 0, 1);
  uint8_t *h = f + ETH_HDR;
  cr_assert_eq(net_ipv4_parse(h, (size_t)n - ETH_HDR, &ip), 0);
  cr_assert_eq(net_icmp_parse(&ip, &m), 0);
  set16(h + 6, 0x2000);
  fix_ipcsum(h, 20);
  cr_assert_eq(net_ipv4_parse(h, (size_t)n - ETH_HDR, &ip), 0);
  cr_assert(net_ip_is_fragment(&ip));
  cr_assert_eq(net_icmp_parse(&ip, &m), -EINVAL);
}

Test(net, tcp_options_sack_roundtrip)
{
  uint8_t f[256];
  struct net_eth e;
  struct net_ipv4 ip;
  struct net_tcp t;
  /* SYN-ACK options: MSS, window scale, SACK permitted */
  struct net_tcp_opts o = {.mss = 1146, .wscale = 0, .sack_ok = true};
  int n = net_build_tcp_opts(f, sizeof(f), &l2, src_ip, dst_ip, 80, 40000, 1, 2, TCP_SYN | TCP_ACK,
                             65535, &o, NULL, 0, 9);
  cr_assert_gt(n, 0);
  cr_assert_eq(net_eth_parse(f, (size_t)n, &e), 0);
  cr_assert_eq(net_ipv4_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(net_tcp_parse(&ip, &t), 0);
  cr_assert_eq(t.mss, 1146);
  cr_assert_eq(t.wscale, 0);
  cr_assert(t.sack_ok);
  cr_assert_eq(t.nsack, 0);
  /* an ACK with SACK blocks, one wrapping around 2^32 */
  struct net_tcp_opts a = {.wscale = -1, .nsack = 2};
  a.sack[0][0] = 0xfffffc00u;
  a.sack[0][1] = 0x00000400u;
  a.sack[1][0] = 5000;
  a.sack[1][1] = 6000;
  n = net_build_tcp_opts(f, sizeof(f), &l2, src_ip, dst_ip, 80, 40000, 3, 4, TCP_ACK, 100, &a, NULL,
                         0, 10);
  cr_assert_eq(net_eth_parse(f, (size_t)n, &e), 0);
  cr_assert_eq(net_ipv4_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(net_tcp_parse(&ip, &t), 0);
  cr_assert_not(t.sack_ok);
  cr_assert_eq(t.nsack, 2);
  cr_assert_eq(t.sack[0][0], 0xfffffc00u);
  cr_assert_eq(t.sack[0][1], 0x400u);
  cr_assert_eq(t.sack[1][0], 5000);
  cr_assert_eq(t.sack[1][1], 6000);
  /* more blocks than 40 bytes of options hold: cut to what fits (4) */
  struct net_tcp_opts many = {.mss = 0, .wscale = -1, .nsack = 4};
  for (int i = 0; i < 4; i++) {
    many.sack[i][0] = (uint32_t)(100 * i);
    many.sack[i][1] = (uint32_t)(100 * i + 50);
  }
  struct net_tcp_opts syn_and_sack = many;
  syn_and_sack.mss = 1000;
  syn_and_sack.wscale = 3;
  n = net_build_tcp_opts(f, sizeof(f), &l2, src_ip, dst_ip, 1, 2, 3, 4, TCP_ACK, 5, &syn_and_sack,
                         NULL, 0, 11);
  cr_assert_eq(net_eth_parse(f, (size_t)n, &e), 0);
  cr_assert_eq(net_ipv4_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(net_tcp_parse(&ip, &t), 0);
  cr_assert_eq(t.mss, 1000);
  cr_assert_eq(t.nsack, 3, "MSS + window scale + 3 blocks = 36 bytes; a 4th does not fit");
  cr_assert_eq(t.sack[2][0], 200);
}

Test(net, tcp_build_parse_roundtrip)
{
  uint8_t f[256];
  const uint8_t data[] = "GET / HTTP/1.0\r\n\r\n";
  int n = net_build_tcp(f, sizeof(f), &l2, src_ip, dst_ip, 40000, 80, 0xfffffff0u, 123,
                        TCP_SYN | TCP_ACK, 29200, 1146, data, sizeof(data) - 1, 7);
  cr_assert_gt(n, 0);
  struct net_eth e;
  struct net_ipv4 ip;
  struct net_tcp t;
  cr_assert_eq(net_eth_parse(f, (size_t)n, &e), 0);
  cr_assert_eq(net_ipv4_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(net_tcp_parse(&ip, &t), 0);
  cr_assert_eq(t.sport, 40000);
  cr_assert_eq(t.dport, 80);
  cr_assert_eq(t.seq, 0xfffffff0u);
  cr_assert_eq(t.ack, 123);
  cr_assert_eq(t.flags, TCP_SYN | TCP_ACK);
  cr_assert_eq(t.window, 29200);
  cr_assert_eq(t.mss, 1146);
  cr_assert_eq(t.wscale, -1);
  cr_assert_eq(t.len, sizeof(data) - 1);
  cr_assert_arr_eq(t.payload, data, t.len);
  /* a flipped payload byte breaks the checksum */
  f[n - 1] ^= 0x40;
  cr_assert_eq(net_tcp_parse(&ip, &t), -EBADMSG);
  /* no MSS option, smaller than a header, bad data offset */
  n = net_build_tcp(f, sizeof(f), &l2, src_ip, dst_ip, 1, 2, 3, 4, TCP_ACK, 5, 0, NULL, 0, 8);
  cr_assert_eq(net_eth_parse(f, (size_t)n, &e), 0);
  cr_assert_eq(net_ipv4_parse(e.payload, e.len, &ip), 0);
  cr_assert_eq(net_tcp_parse(&ip, &t), 0);
  cr_assert_eq(t.mss, 0);
  cr_assert_eq(t.len, 0);
  ip.len = 19;
  cr_assert_eq(net_tcp_parse(&ip, &t), -EINVAL);
  cr_assert_eq(net_build_tcp(f, 40, &l2, src_ip, dst_ip, 1, 2, 3, 4, 0, 5, 0, NULL, 0, 8), -ENOSPC);
}
