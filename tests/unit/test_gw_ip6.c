/*
 * test_gw_ip6: the gateway's IPv6 side (gw_ip6.c) through the real
 * pipeline (gw_pipeline.h): Router Solicitation -> Advertisement with the
 * room's prefix and MTU, Neighbor Solicitation -> Advertisement for the
 * gateway's two addresses (also during a guest's DAD), echo replies,
 * anti-spoofing, the RA budget, periodic RAs only where IPv6 was heard,
 * a packet for elsewhere refused at once, and every drop counted.
 *
 * Frames sent by the test are built here with their own checksum routine
 * (not net6.c's builders); answers are read with net6.c's parsers and
 * checked again with that routine.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wtrelay/gateway.h"
#include "wtrelay/net6.h"
#include "wtrelay/timeunit.h"

#include "gw_pipeline.h"

#define GW_MAC GWP_GW_MAC
static const uint8_t VM_MAC[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x0a};
static const uint8_t GID[5] = {0x11, 0x22, 0x33, 0x44, 0x55};
#define SUBNET_ID 0x6677
static const uint8_t PREFIX[8] = {0xfd, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
static const uint8_t GW_LL[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
static const uint8_t ALL_NODES[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t ALL_ROUTERS[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
static const uint8_t UNSPEC[16] = {0};

struct env {
  struct gw_pipe p;
  struct gw_pipe_rec vm;
};

static struct env *env_new_up(bool fixed, int *up_fd)
{
  struct env *e = calloc(1, sizeof(*e));
  cr_assert(e);
  struct gateway_params gp;
  gw_pipe_params(&gp);
  gp.dns_timeout_ns = 3 * NS_PER_S;
  if (up_fd) {
    uint16_t port;
    *up_fd = gw_pipe_udp_loopback(&port);
    cr_assert_eq(io_sockaddr_parse("127.0.0.1", port, &gp.upstream[0], &gp.upstream_len[0]), 0);
    gp.nupstreams = 1;
  }
  memcpy(gp.ula_global_id, GID, 5);
  if (fixed) {
    static const uint8_t s6[8] = {0xfd, 0, 0x77, 0x72, 0, 0, 0, 0x42};
    gp.subnet6_fixed = true;
    memcpy(gp.subnet6, s6, 8);
  }
  gw_pipe_init(&e->p, 16, &gp, NULL, NULL);
  /* room 0 was attached with subnet id 0: attach room 1 with ours */
  cr_assert_eq(gateway_room_attach(&e->p.gw, 1, SUBNET_ID), 0);
  cr_assert_eq(switch_port_attach(&e->p.sw, 1, &gw_pipe_rec_ops, &e->vm, &e->vm.port), 0);
  switch_port_set_addr(&e->p.sw, e->vm.port, VM_MAC, GWP_IP4(10, 0, 2, 10));
  return e;
}

static struct env *env_new(bool fixed)
{
  return env_new_up(fixed, NULL);
}

static void env_free(struct env *e)
{
  gw_pipe_fini(&e->p);
  free(e);
}

/* ---- frames built independently ---- */

static uint32_t sum16(uint32_t s, const uint8_t *p, size_t n)
{
  for (size_t i = 0; i + 1 < n; i += 2)
    s += (uint32_t)p[i] << 8 | p[i + 1];
  if (n & 1)
    s += (uint32_t)p[n - 1] << 8;
  return s;
}

static uint16_t l4_sum(const uint8_t *ip6, const uint8_t *msg, size_t n, uint8_t next)
{
  uint32_t s = sum16(0, ip6 + 8, 32);
  s += (uint32_t)(n >> 16) + (uint32_t)(n & 0xffff) + next;
  s = sum16(s, msg, n);
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

static uint16_t icmp6_sum(const uint8_t *ip6, const uint8_t *msg, size_t n)
{
  return l4_sum(ip6, msg, n, 58);
}

/* An Ethernet + IPv6 frame carrying body (next header `next`); for
 * ICMPv6 the checksum at body[2..3] is filled, for UDP at body[6..7]. */
static size_t frame6(uint8_t *f, const uint8_t dmac[6], const uint8_t src[16],
                     const uint8_t dst[16], uint8_t hlim, uint8_t next, const uint8_t *body,
                     size_t blen)
{
  memcpy(f, dmac, 6);
  memcpy(f + 6, VM_MAC, 6);
  f[12] = 0x86;
  f[13] = 0xdd;
  uint8_t *h = f + 14;
  memset(h, 0, 40);
  h[0] = 0x60;
  h[4] = (uint8_t)(blen >> 8);
  h[5] = (uint8_t)blen;
  h[6] = next;
  h[7] = hlim;
  memcpy(h + 8, src, 16);
  memcpy(h + 24, dst, 16);
  memcpy(h + 40, body, blen);
  size_t at = next == 58 ? 2 : next == 17 ? 6 : 0;
  if (at) {
    h[40 + at] = h[41 + at] = 0;
    uint16_t c = l4_sum(h, h + 40, blen, next);
    if (next == 17 && c == 0)
      c = 0xffff;
    h[40 + at] = (uint8_t)(c >> 8);
    h[41 + at] = (uint8_t)c;
  }
  return 14 + 40 + blen;
}

static void send_frame(struct env *e, const uint8_t *f, size_t n)
{
  gw_pipe_tick(&e->p);
  struct iovec iov = {.iov_base = (void *)f, .iov_len = n};
  struct switch_frame sf = {.iov = &iov, .iovcnt = 1, .len = n};
  switch_input(&e->p.sw, e->vm.port, &sf, e->p.now);
}

static void ll_of_vm(uint8_t a[16])
{
  static const uint8_t ll[8] = {0xfe, 0x80};
  net6_addr_eui64(a, ll, VM_MAC);
}

static void slaac_of_vm(uint8_t a[16])
{
  net6_addr_eui64(a, PREFIX, VM_MAC);
}

/* <PREFIX>::host: the gateway (2) and its DNS forwarder (3) */
static void in_prefix(uint8_t a[16], uint8_t host)
{
  memset(a, 0, 16);
  memcpy(a, PREFIX, 8);
  a[15] = host;
}

static void gw_global(uint8_t a[16])
{
  in_prefix(a, 2);
}

static void send_rs(struct env *e, const uint8_t src[16], uint8_t hlim)
{
  uint8_t body[16] = {133, 0, 0, 0, 0, 0, 0, 0, 1, 1};
  memcpy(body + 10, VM_MAC, 6);
  uint8_t f[256], mac[6] = {0x33, 0x33, 0, 0, 0, 2};
  send_frame(e, f,
             frame6(f, mac, src, ALL_ROUTERS, hlim, 58, body, net6_is_unspecified(src) ? 8 : 16));
}

static void send_ns(struct env *e, const uint8_t src[16], const uint8_t target[16])
{
  uint8_t body[24] = {135};
  memcpy(body + 8, target, 16);
  uint8_t dst[16], mac[6];
  net6_solicited_node(dst, target);
  net6_multicast_mac(mac, dst);
  uint8_t f[256];
  send_frame(e, f, frame6(f, mac, src, dst, 255, 58, body, sizeof(body)));
}

/* Parses the VM's frame i as IPv6/ICMPv6 from the gateway, the checksum
 * checked by both routines. */
static void parse6(struct env *e, unsigned i, struct net_ipv6 *ip, struct net_icmp6 *m)
{
  cr_assert_lt(i, e->vm.nframes, "frame %u of %u", i, e->vm.nframes);
  struct net_eth eth;
  cr_assert_eq(net_eth_parse(e->vm.frame[i], e->vm.len[i], &eth), 0);
  cr_assert_arr_eq(eth.src, GW_MAC, 6);
  cr_assert_eq(eth.type, ETH_TYPE_IPV6);
  cr_assert_eq(net_ipv6_parse(eth.payload, eth.len, ip), 0);
  cr_assert_eq(net_icmp6_parse(ip, m), 0, "ICMPv6 checksum (net6)");
  cr_assert_eq(icmp6_sum(ip->hdr, ip->payload, ip->len), 0, "ICMPv6 checksum (independent)");
}

/* ---- tests ---- */

Test(gw_ip6, router_solicitation_gets_the_rooms_prefix_and_mtu)
{
  struct env *e = env_new(false);
  uint8_t ll[16];
  ll_of_vm(ll);
  send_rs(e, ll, 255);
  cr_assert_eq(e->vm.nframes, 1, "one RA");
  struct net_ipv6 ip;
  struct net_icmp6 m;
  parse6(e, 0, &ip, &m);
  struct net_eth eth;
  net_eth_parse(e->vm.frame[0], e->vm.len[0], &eth);
  cr_assert_arr_eq(eth.dst, VM_MAC, 6, "unicast to the asker");
  cr_assert_arr_eq(ip.src, GW_LL, 16, "from fe80::2");
  cr_assert_arr_eq(ip.dst, ll, 16);
  cr_assert_eq(ip.hlim, 255);
  cr_assert_eq(m.type, ND_ROUTER_ADVERT);
  cr_assert_eq(m.rest[0], 64, "cur hop limit");
  cr_assert_eq(m.rest[2] << 8 | m.rest[3], 0, "not a default router (no NAT66 yet)");
  struct net_nd nd;
  cr_assert_eq(net_nd_parse(&m, &nd), 0);
  cr_assert_arr_eq(nd.lladdr, GW_MAC, 6);
  cr_assert_eq(nd.mtu, 1400);
  /* the prefix option: find it by hand */
  const uint8_t *o = m.data + 8, *end = m.data + m.len, *pio = NULL;
  while (o + 2 <= end && o[1]) {
    if (o[0] == ND_OPT_PREFIX)
      pio = o;
    o += o[1] * 8;
  }
  cr_assert(pio, "a prefix information option");
  const uint8_t *rdnss = NULL;
  for (o = m.data + 8; o + 2 <= end && o[1]; o += o[1] * 8)
    if (o[0] == ND_OPT_RDNSS)
      rdnss = o;
  cr_assert(rdnss, "an RDNSS option");
  uint8_t dns[16];
  in_prefix(dns, 3);
  cr_assert_arr_eq(rdnss + 8, dns, 16, "the forwarder at <prefix>::3");
  cr_assert_eq(pio[2], 64);
  cr_assert_eq(pio[3], 0xc0, "on-link and autonomous");
  cr_assert_arr_eq(pio + 16, PREFIX, 8, "fd + global id + the room's subnet id");
  uint8_t p0[8];
  gateway_room_prefix6(&e->p.gw, 1, p0);
  cr_assert_arr_eq(p0, PREFIX, 8);
  cr_assert_eq(e->p.gw.ctr.ip6_rs_in, 1);
  cr_assert_eq(e->p.gw.ctr.ip6_ra_out, 1);

  /* from :: (before the guest has an address): to all nodes */
  send_rs(e, UNSPEC, 255);
  cr_assert_eq(e->vm.nframes, 2);
  parse6(e, 1, &ip, &m);
  cr_assert_arr_eq(ip.dst, ALL_NODES, 16);
  /* a hop limit other than 255 was forwarded by a router: refused */
  send_rs(e, ll, 64);
  cr_assert_eq(e->vm.nframes, 2);
  cr_assert_eq(e->p.gw.ctr.ip6_bad_nd, 1);
  env_free(e);
}

Test(gw_ip6, subnet6_gives_every_room_one_prefix)
{
  struct env *e = env_new(true);
  uint8_t p0[8], p1[8];
  gateway_room_prefix6(&e->p.gw, 0, p0);
  gateway_room_prefix6(&e->p.gw, 1, p1);
  const uint8_t want[8] = {0xfd, 0, 0x77, 0x72, 0, 0, 0, 0x42};
  cr_assert_arr_eq(p0, want, 8);
  cr_assert_arr_eq(p1, want, 8);
  cr_assert_neq(gateway_subnet6_id("/lab"), gateway_subnet6_id("/lab2"));
  cr_assert_eq(gateway_subnet6_id("/lab"), gateway_subnet6_id("/lab"));
  env_free(e);
}

Test(gw_ip6, neighbor_solicitations_for_the_gateway_are_answered)
{
  struct env *e = env_new(false);
  uint8_t ll[16], global[16], other[16];
  ll_of_vm(ll);
  gw_global(global);
  memcpy(other, global, 16);
  other[15] = 9;
  const uint8_t *targets[2] = {GW_LL, global};
  for (unsigned i = 0; i < 2; i++) {
    send_ns(e, ll, targets[i]);
    cr_assert_eq(e->vm.nframes, i + 1);
    struct net_ipv6 ip;
    struct net_icmp6 m;
    struct net_nd nd;
    parse6(e, i, &ip, &m);
    cr_assert_eq(m.type, ND_NEIGHBOR_ADVERT);
    cr_assert_eq(ip.hlim, 255);
    cr_assert_arr_eq(ip.src, targets[i], 16);
    cr_assert_arr_eq(ip.dst, ll, 16);
    cr_assert_eq(m.rest[0], 0xe0, "router, solicited, override");
    cr_assert_eq(net_nd_parse(&m, &nd), 0);
    cr_assert_arr_eq(nd.target, targets[i], 16);
    cr_assert_arr_eq(nd.lladdr, GW_MAC, 6);
  }
  /* another node's address (its solicited-node group is not ours): not
   * ours to answer */
  send_ns(e, ll, other);
  cr_assert_eq(e->vm.nframes, 2);
  cr_assert_eq(e->p.gw.ctr.ip6_ignored, 1);
  /* a guest's DAD for the gateway's address: defended to all nodes */
  send_ns(e, UNSPEC, global);
  cr_assert_eq(e->vm.nframes, 3);
  struct net_ipv6 ip;
  struct net_icmp6 m;
  parse6(e, 2, &ip, &m);
  cr_assert_arr_eq(ip.dst, ALL_NODES, 16);
  cr_assert_eq(m.rest[0], 0xa0, "router, override, not solicited");
  cr_assert_eq(e->p.gw.ctr.ip6_ns_in, 3);
  cr_assert_eq(e->p.gw.ctr.ip6_na_out, 3);
  env_free(e);
}

Test(gw_ip6, echo_from_slaac_and_link_local_answered_foreign_sources_dropped)
{
  struct env *e = env_new(false);
  uint8_t slaac[16], ll[16], global[16];
  slaac_of_vm(slaac);
  ll_of_vm(ll);
  gw_global(global);
  /* outside the room's prefix and not link-local (which addresses inside
   * the prefix a session may use is the LAN guard's check) */
  const uint8_t forged[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5};
  uint8_t body[12] = {128, 0, 0, 0, 0x12, 0x34, 0, 7, 'p', 'i', 'n', 'g'};
  uint8_t f[256];
  send_frame(e, f, frame6(f, GW_MAC, slaac, global, 64, 58, body, sizeof(body)));
  send_frame(e, f, frame6(f, GW_MAC, ll, GW_LL, 64, 58, body, sizeof(body)));
  cr_assert_eq(e->vm.nframes, 2);
  for (unsigned i = 0; i < 2; i++) {
    struct net_ipv6 ip;
    struct net_icmp6 m;
    parse6(e, i, &ip, &m);
    cr_assert_eq(m.type, ICMP6_ECHO_REPLY);
    cr_assert_arr_eq(m.rest, body + 4, 4, "id and sequence");
    cr_assert_eq(m.len, 4);
    cr_assert_arr_eq(m.data, "ping", 4);
    cr_assert_arr_eq(ip.dst, i ? ll : slaac, 16);
  }
  send_frame(e, f, frame6(f, GW_MAC, forged, global, 64, 58, body, sizeof(body)));
  send_frame(e, f, frame6(f, GW_MAC, global, global, 64, 58, body, sizeof(body)));
  send_frame(e, f, frame6(f, GW_MAC, UNSPEC, global, 64, 58, body, sizeof(body)));
  cr_assert_eq(e->vm.nframes, 2, "no answer to a forged source");
  cr_assert_eq(e->p.gw.ctr.ip6_spoofed, 3);
  cr_assert_eq(e->p.gw.ctr.ip6_echo_replies, 2);
  /* a bad checksum, a truncated header */
  uint8_t n = (uint8_t)frame6(f, GW_MAC, slaac, global, 64, 58, body, sizeof(body));
  f[n - 1] ^= 0xff;
  send_frame(e, f, n);
  send_frame(e, f, 14 + 30);
  cr_assert_eq(e->p.gw.ctr.ip6_bad_l4, 1);
  cr_assert_eq(e->p.gw.ctr.ip6_bad, 1);
  cr_assert_eq(e->vm.nframes, 2);
  env_free(e);
}

Test(gw_ip6, elsewhere_refused_at_once_udp_to_gateway_port_unreachable)
{
  struct env *e = env_new(false);
  uint8_t slaac[16], global[16];
  slaac_of_vm(slaac);
  gw_global(global);
  const uint8_t far[16] = {0x26, 0x06, 0x47, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x11};
  uint8_t udp[12] = {0x30, 0x39, 0, 54, 0, 12, 0, 0, 'a', 'b', 'c', 'd'};
  uint8_t f[256];
  const uint8_t doc[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  send_frame(e, f, frame6(f, GW_MAC, slaac, far, 64, 17, udp, sizeof(udp)));
  cr_assert_eq(e->vm.nframes, 1);
  struct net_ipv6 ip;
  struct net_icmp6 m;
  parse6(e, 0, &ip, &m);
  cr_assert_eq(m.type, ICMP6_UNREACH);
  cr_assert_eq(m.code, ICMP6_UNREACH_NOROUTE);
  cr_assert_arr_eq(ip.dst, slaac, 16);
  cr_assert_arr_eq(m.data + 24, far, 16, "the quoted packet's destination");
  cr_assert_eq(e->p.gw.ctr.ip6_no_route, 1);
  /* a destination the IPv6 egress policy denies (documentation prefix) */
  send_frame(e, f, frame6(f, GW_MAC, slaac, doc, 64, 17, udp, sizeof(udp)));
  cr_assert_eq(e->vm.nframes, 2);
  parse6(e, 1, &ip, &m);
  cr_assert_eq(m.code, ICMP6_UNREACH_ADMIN, "administratively prohibited");
  cr_assert_eq(e->p.gw.ctr.ip6_denied, 1);
  send_frame(e, f, frame6(f, GW_MAC, slaac, global, 64, 17, udp, sizeof(udp)));
  cr_assert_eq(e->vm.nframes, 3);
  parse6(e, 2, &ip, &m);
  cr_assert_eq(m.type, ICMP6_UNREACH);
  cr_assert_eq(m.code, ICMP6_UNREACH_PORT);
  cr_assert_eq(e->p.gw.ctr.ip6_other_proto, 1);
  /* multicast the gateway is not in (MLD, mDNS): ignored, counted */
  const uint8_t mdns[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfb};
  uint8_t mac[6] = {0x33, 0x33, 0, 0, 0, 0xfb};
  send_frame(e, f, frame6(f, mac, slaac, mdns, 255, 17, udp, sizeof(udp)));
  cr_assert_eq(e->vm.nframes, 3);
  cr_assert_eq(e->p.gw.ctr.ip6_ignored, 1);
  /* not IPv4, ARP or IPv6 */
  memcpy(f, GW_MAC, 6);
  memcpy(f + 6, VM_MAC, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  memset(f + 14, 0, 46);
  send_frame(e, f, 60);
  cr_assert_eq(e->p.gw.ctr.other_ethertype, 1);
  env_free(e);
}

Test(gw_ip6, solicited_ras_are_rate_limited_per_room)
{
  struct env *e = env_new(false);
  uint8_t ll[16];
  ll_of_vm(ll);
  for (int i = 0; i < 20; i++)
    send_rs(e, ll, 255);
  cr_assert_eq(e->vm.nframes, 5, "the burst, then nothing");
  cr_assert_eq(e->p.gw.ctr.ip6_ra_limited, 15);
  e->p.skew += 250 * NS_PER_MS;
  send_rs(e, ll, 255);
  cr_assert_eq(e->vm.nframes, 6, "one more after 200 ms");
  env_free(e);
}

Test(gw_ip6, periodic_ras_only_where_ipv6_was_heard)
{
  struct env *e = env_new(false);
  e->p.skew += 301 * NS_PER_S;
  gw_pipe_pump_for(&e->p, 1100 * NS_PER_MS);
  cr_assert_eq(e->vm.nframes, 0, "an IPv4-only LAN hears no RA");
  uint8_t ll[16];
  ll_of_vm(ll);
  send_rs(e, ll, 255);
  cr_assert_eq(e->vm.nframes, 1);
  e->p.skew += 301 * NS_PER_S;
  gw_pipe_pump_for(&e->p, 1100 * NS_PER_MS);
  cr_assert_eq(e->vm.nframes, 2, "a periodic RA");
  struct net_ipv6 ip;
  struct net_icmp6 m;
  parse6(e, 1, &ip, &m);
  cr_assert_eq(m.type, ND_ROUTER_ADVERT);
  cr_assert_arr_eq(ip.dst, ALL_NODES, 16);
  struct net_eth eth;
  net_eth_parse(e->vm.frame[1], e->vm.len[1], &eth);
  const uint8_t mac[6] = {0x33, 0x33, 0, 0, 0, 1};
  cr_assert_arr_eq(eth.dst, mac, 6);
  cr_assert_eq(e->p.gw.ctr.ip6_ra_periodic, 1);
  env_free(e);
}

static size_t dns_query(uint8_t *b, uint16_t id)
{
  static const uint8_t q[] = {0,   0, 1,   0,   0,   1,   0,   0,   0,   0, 0, 0,  4, 't', 'e', 's',
                              't', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 28, 0, 1}; /* AAAA */
  memcpy(b, q, sizeof(q));
  b[0] = (uint8_t)(id >> 8);
  b[1] = (uint8_t)id;
  return sizeof(q);
}

/* The VM (from its SLAAC address, port 40000) asks <prefix>::3 an AAAA
 * query with id; slaac, dns and msg (UDP header + query) are filled.
 * Returns the query's length. */
static size_t send_dns6(struct env *e, uint8_t slaac[16], uint8_t dns[16], uint8_t *msg,
                        uint16_t id)
{
  slaac_of_vm(slaac);
  in_prefix(dns, 3);
  size_t qn = dns_query(msg + 8, id);
  const uint8_t hdr[8] = {0x9c, 0x40, 0, 53, 0, (uint8_t)(8 + qn), 0, 0};
  memcpy(msg, hdr, 8);
  uint8_t f[256];
  send_frame(e, f, frame6(f, GW_MAC, slaac, dns, 64, 17, msg, 8 + qn));
  return qn;
}

Test(gw_ip6, dns_over_ipv6_is_forwarded_and_answered_from_the_address_asked)
{
  int up;
  struct env *e = env_new_up(false, &up);
  uint8_t slaac[16], dns[16], msg[8 + 64];
  size_t qn = send_dns6(e, slaac, dns, msg, 0xbeef);
  uint8_t got[512];
  struct sockaddr_in from;
  ssize_t n = gw_pipe_sock_recv(&e->p, up, got, sizeof(got), &from, 2 * NS_PER_S);
  cr_assert_eq(n, (ssize_t)qn, "the AAAA query reaches the upstream over IPv4");
  cr_assert_arr_eq(got + 2, msg + 10, qn - 2);
  /* the answer: the query with QR set */
  got[2] |= 0x80;
  cr_assert_eq(sendto(up, got, (size_t)n, 0, (struct sockaddr *)&from, sizeof(from)), n);
  for (int i = 0; i < 100 && e->vm.nframes == 0; i++)
    gw_pipe_pump_once(&e->p, 20 * NS_PER_MS);
  cr_assert_eq(e->vm.nframes, 1, "the answer reaches the VM");
  struct net_eth eth;
  struct net_ipv6 ip;
  struct net_udp u;
  cr_assert_eq(net_eth_parse(e->vm.frame[0], e->vm.len[0], &eth), 0);
  cr_assert_eq(net_ipv6_parse(eth.payload, eth.len, &ip), 0);
  cr_assert_eq(net_udp6_parse(&ip, &u), 0, "UDP checksum over IPv6");
  cr_assert_eq(l4_sum(ip.hdr, ip.payload, ip.len, 17), 0, "UDP checksum (independent)");
  cr_assert_arr_eq(ip.src, dns, 16, "from <prefix>::3");
  cr_assert_arr_eq(ip.dst, slaac, 16);
  cr_assert_eq(u.sport, 53);
  cr_assert_eq(u.dport, 40000);
  cr_assert_eq(u.payload[0] << 8 | u.payload[1], 0xbeef, "the guest's id restored");
  cr_assert_eq(e->p.gw.ctr.dns_answers, 1);
  /* ::3 answers Neighbor Discovery and ping too */
  uint8_t ll[16];
  ll_of_vm(ll);
  send_ns(e, ll, dns);
  cr_assert_eq(e->vm.nframes, 2);
  struct net_icmp6 m;
  parse6(e, 1, &ip, &m);
  cr_assert_eq(m.type, ND_NEIGHBOR_ADVERT);
  close(up);
  env_free(e);
}

Test(gw_ip6, dns_over_ipv6_without_upstream_is_port_unreachable)
{
  struct env *e = env_new(false);
  uint8_t slaac[16], dns[16], msg[8 + 64], f[256];
  size_t qn = send_dns6(e, slaac, dns, msg, 1);
  cr_assert_eq(e->vm.nframes, 1);
  struct net_ipv6 ip;
  struct net_icmp6 m;
  parse6(e, 0, &ip, &m);
  cr_assert_eq(m.type, ICMP6_UNREACH);
  cr_assert_eq(m.code, ICMP6_UNREACH_PORT);
  cr_assert_arr_eq(ip.src, dns, 16);
  cr_assert_eq(e->p.gw.ctr.dns_no_upstream, 1);
  /* a UDP checksum of 0 is not allowed over IPv6 */
  size_t n = frame6(f, GW_MAC, slaac, dns, 64, 17, msg, 8 + qn);
  f[14 + 40 + 6] = f[14 + 40 + 7] = 0;
  send_frame(e, f, n);
  cr_assert_eq(e->p.gw.ctr.ip6_bad_l4, 1);
  cr_assert_eq(e->vm.nframes, 1);
  env_free(e);
}
