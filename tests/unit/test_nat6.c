/*
 * test_nat6: NAT66 through the real pipeline (gw_pipeline.h) with ::1 as
 * the "internet" (the test's policy allows ::1/128; the host's IPv6 route
 * to the internet is a route put in the gateway's hostaddr table by hand):
 * UDP both ways, an ICMPv6 port unreachable relayed from the host's error
 * queue (IPV6_RECVERR), ICMPv6 echo, a TCP handshake and data both ways
 * with the IPv6 pseudo-header checksums and the smaller MSS, the router
 * lifetime of the RAs following the route, refusals (no route,
 * v4-mapped, hop limit), and a packet too big relayed with the path MTU
 * (clamped to the gateway's MTU and IPv6's minimum).
 *
 * Frames toward the gateway are built with net6.c's builders; what comes
 * back is read with its parsers, which verify every checksum.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wtrelay/gateway.h"
#include "wtrelay/hostaddr.h"
#include "wtrelay/net6.h"
#include "wtrelay/timeunit.h"

#include "gateway_internal.h"
#include "gw_pipeline.h"

static const uint8_t VM_MAC[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x0b};
static const uint8_t LOOP6[16] = {[15] = 1};
#define WAIT (2 * NS_PER_S)

struct env {
  struct gw_pipe p;
  struct gw_pipe_rec vm;
  struct hostaddr ha;
  uint8_t me[16]; /* the VM's SLAAC address in room 0's prefix */
};

static void route6(struct env *e, bool on)
{
  e->ha.n = 0;
  if (on)
    e->ha.r[e->ha.n++] = (struct hostaddr_route){
        .family = AF_INET6, .type = RTN_UNICAST, .table = RT_TABLE_MAIN, .len = 0};
}

static struct env *env_new(void)
{
  struct env *e = calloc(1, sizeof(*e));
  cr_assert(e);
  hostaddr_init(&e->ha);
  route6(e, true);
  struct gateway_params gp;
  gw_pipe_params(&gp);
  gp.max_tcp_conns = 4;
  gp.udp_timeout_ns = 30 * NS_PER_S;
  gp.icmp_timeout_ns = 30 * NS_PER_S;
  gp.tcp_connect_timeout_ns = 5 * NS_PER_S;
  gp.tcp_idle_ns = 30 * NS_PER_S;
  gp.hostaddr = &e->ha;
  gw_pipe_init(&e->p, 64, &gp, NULL, NULL);
  cr_assert_eq(policy_add(&e->p.pol, "::1/128", true), 0);
  cr_assert_eq(switch_port_attach(&e->p.sw, 0, &gw_pipe_rec_ops, &e->vm, &e->vm.port), 0);
  switch_port_set_addr(&e->p.sw, e->vm.port, VM_MAC, GWP_IP4(10, 0, 2, 11));
  uint8_t prefix[8];
  gateway_room_prefix6(&e->p.gw, 0, prefix);
  net6_addr_eui64(e->me, prefix, VM_MAC);
  return e;
}

static void env_free(struct env *e)
{
  gw_pipe_fini(&e->p);
  free(e);
}

static void send_frame(struct env *e, const uint8_t *f, size_t n)
{
  cr_assert_gt(n, 0);
  gw_pipe_tick(&e->p);
  struct iovec iov = {.iov_base = (void *)f, .iov_len = n};
  struct switch_frame sf = {.iov = &iov, .iovcnt = 1, .len = n};
  switch_input(&e->p.sw, e->vm.port, &sf, e->p.now);
}

static const struct net_l2 to_gw = {.dst_mac = GWP_GW_MAC, .src_mac = VM_MAC};

static void send_udp(struct env *e, const uint8_t dst[16], uint16_t sport, uint16_t dport,
                     const char *msg)
{
  uint8_t f[512];
  int n = net_build_udp6(f, sizeof(f), &to_gw, e->me, dst, sport, dport, (const uint8_t *)msg,
                         strlen(msg));
  send_frame(e, f, (size_t)n);
}

static void pump_until_frames(struct env *e, unsigned n)
{
  for (uint64_t end = clock_now_ns() + WAIT; e->vm.nframes < n && clock_now_ns() < end;)
    gw_pipe_pump_once(&e->p, 10 * NS_PER_MS);
  cr_assert_geq(e->vm.nframes, n, "%u frames of %u", e->vm.nframes, n);
}

/* The VM's frame i as IPv6 from the gateway's MAC to the VM's. */
static void frame_ip6(struct env *e, unsigned i, struct net_ipv6 *ip)
{
  cr_assert_lt(i, e->vm.nframes);
  struct net_eth eth;
  cr_assert_eq(net_eth_parse(e->vm.frame[i], e->vm.len[i], &eth), 0);
  cr_assert_arr_eq(eth.src, GWP_GW_MAC, 6);
  cr_assert_arr_eq(eth.dst, VM_MAC, 6);
  cr_assert_eq(eth.type, ETH_TYPE_IPV6);
  cr_assert_eq(net_ipv6_parse(eth.payload, eth.len, ip), 0);
  cr_assert_arr_eq(ip->dst, e->me, 16);
}

static void frame_icmp6(struct env *e, unsigned i, struct net_ipv6 *ip, struct net_icmp6 *m)
{
  frame_ip6(e, i, ip);
  cr_assert_eq(net_icmp6_parse(ip, m), 0, "an ICMPv6 message with a good checksum");
}

/* A socket of the test on ::1, port chosen by the kernel. */
static int loop6_socket(int type, uint16_t *port)
{
  int fd = socket(AF_INET6, type | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind ::1: %s", strerror(errno));
  socklen_t al = sizeof(a);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  *port = ntohs(a.sin6_port);
  return fd;
}

/* ---- UDP ---- */

Test(nat6, udp_round_trip_through_ipv6_loopback)
{
  struct env *e = env_new();
  uint16_t port;
  int fd = loop6_socket(SOCK_DGRAM, &port);
  send_udp(e, LOOP6, 40000, port, "hello6");
  uint8_t buf[64];
  struct sockaddr_in6 from;
  ssize_t n = -1;
  for (uint64_t end = clock_now_ns() + WAIT; n < 0 && clock_now_ns() < end;) {
    gw_pipe_pump_once(&e->p, 10 * NS_PER_MS);
    socklen_t fl = sizeof(from);
    n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
  }
  cr_assert_eq(n, 6, "the datagram reaches ::1");
  cr_assert_eq(memcmp(buf, "hello6", 6), 0);
  cr_assert_eq(from.sin6_family, AF_INET6, "sent from an IPv6 socket");
  cr_assert_eq(e->p.gw.ctr.nat6_udp_flows, 1);
  cr_assert_eq(e->p.gw.ctr.udp_flows_opened, 1);
  cr_assert_eq(sendto(fd, "back", 4, 0, (struct sockaddr *)&from, sizeof(from)), 4);
  pump_until_frames(e, 1);
  struct net_ipv6 ip;
  struct net_udp u;
  frame_ip6(e, 0, &ip);
  cr_assert_eq(net_udp6_parse(&ip, &u), 0, "UDP over IPv6 with its pseudo-header checksum");
  cr_assert_arr_eq(ip.src, LOOP6, 16);
  cr_assert_eq(u.sport, port);
  cr_assert_eq(u.dport, 40000);
  cr_assert_eq(u.len, 4);
  cr_assert_eq(memcmp(u.payload, "back", 4), 0);
  close(fd);
  env_free(e);
}

Test(nat6, udp_port_unreachable_relayed_as_icmpv6)
{
  struct env *e = env_new();
  uint16_t closed;
  close(loop6_socket(SOCK_DGRAM, &closed)); /* a port nobody listens on */
  send_udp(e, LOOP6, 40001, closed, "anyone?");
  pump_until_frames(e, 1);
  struct net_ipv6 ip;
  struct net_icmp6 m;
  frame_icmp6(e, 0, &ip, &m);
  cr_assert_eq(m.type, ICMP6_UNREACH);
  cr_assert_eq(m.code, ICMP6_UNREACH_PORT);
  cr_assert_arr_eq(ip.src, LOOP6, 16, "from the reporting node");
  /* the quote: the guest's datagram, its addresses and ports */
  cr_assert_geq(m.len, IPV6_HDR + UDP_HDR);
  cr_assert_eq(m.data[0] >> 4, 6);
  cr_assert_eq(m.data[6], IP_PROTO_UDP);
  cr_assert_arr_eq(m.data + 8, e->me, 16);
  cr_assert_arr_eq(m.data + 24, LOOP6, 16);
  cr_assert_eq(m.data[40] << 8 | m.data[41], 40001);
  cr_assert_eq(m.data[42] << 8 | m.data[43], closed);
  cr_assert_eq(e->p.gw.ctr.udp_icmp_errors, 1);
  env_free(e);
}

/* ---- ICMPv6 echo ---- */

Test(nat6, echo_through_ipv6_loopback)
{
  struct env *e = env_new();
  if (!e->p.gw.icmp6_ok) {
    env_free(e);
    cr_skip_test("no ICMPv6 datagram sockets for this group and no CAP_NET_RAW");
  }
  uint8_t f[256];
  const uint8_t rest[4] = {0x12, 0x34, 0, 7};
  const uint8_t data[5] = {'p', 'i', 'n', 'g', '6'};
  int n = net_build_icmp6(f, sizeof(f), &to_gw, e->me, LOOP6, 64, ICMP6_ECHO, 0, rest, data, 5);
  send_frame(e, f, (size_t)n);
  pump_until_frames(e, 1);
  struct net_ipv6 ip;
  struct net_icmp6 m;
  frame_icmp6(e, 0, &ip, &m);
  cr_assert_eq(m.type, ICMP6_ECHO_REPLY);
  cr_assert_arr_eq(ip.src, LOOP6, 16);
  cr_assert_arr_eq(m.rest, rest, 4, "the guest's own id and sequence");
  cr_assert_eq(m.len, 5);
  cr_assert_arr_eq(m.data, data, 5);
  cr_assert_eq(e->p.gw.ctr.nat6_icmp_flows, 1);
  env_free(e);
}

/* ---- TCP ---- */

static void send_tcp(struct env *e, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                     uint8_t flags, const struct net_tcp_opts *o, const char *data)
{
  uint8_t f[512];
  size_t len = data ? strlen(data) : 0;
  int h = net_build_tcp6_hdr(f, sizeof(f) - len, &to_gw, e->me, LOOP6, sport, dport, seq, ack,
                             flags, 65535, o, (const uint8_t *)data, len);
  cr_assert_gt(h, 0);
  if (len)
    memcpy(f + h, data, len);
  send_frame(e, f, (size_t)h + len);
}

static void frame_tcp(struct env *e, unsigned i, struct net_tcp *t)
{
  struct net_ipv6 ip;
  frame_ip6(e, i, &ip);
  cr_assert_arr_eq(ip.src, LOOP6, 16);
  cr_assert_eq(net_tcp6_parse(&ip, t), 0, "TCP over IPv6 with its pseudo-header checksum");
}

Test(nat6, tcp_handshake_and_data_both_ways)
{
  struct env *e = env_new();
  uint16_t port;
  int lfd = loop6_socket(SOCK_STREAM | SOCK_NONBLOCK, &port);
  cr_assert_eq(listen(lfd, 4), 0);
  struct net_tcp_opts syn_o = {.mss = 1460, .wscale = -1};
  send_tcp(e, 41000, port, 1000, 0, TCP_SYN, &syn_o, NULL);
  pump_until_frames(e, 1);
  struct net_tcp t;
  frame_tcp(e, 0, &t);
  cr_assert_eq(t.flags, TCP_SYN | TCP_ACK);
  cr_assert_eq(t.ack, 1001);
  cr_assert_eq(t.sport, port);
  cr_assert_eq(t.dport, 41000);
  cr_assert_eq(t.mss, TCP_MSS_ADV - 20, "the MSS 20 bytes below IPv4's: the same frame size");
  cr_assert_eq(e->p.gw.ctr.nat6_tcp_opened, 1);
  uint32_t isn = t.seq;
  int cfd = accept(lfd, NULL, NULL);
  cr_assert_geq(cfd, 0, "the host connection was made over IPv6");
  send_tcp(e, 41000, port, 1001, isn + 1, TCP_ACK | TCP_PSH, NULL, "hello");
  char buf[16];
  ssize_t n = -1;
  for (uint64_t end = clock_now_ns() + WAIT; n < 0 && clock_now_ns() < end;) {
    gw_pipe_pump_once(&e->p, 10 * NS_PER_MS);
    n = recv(cfd, buf, sizeof(buf), MSG_DONTWAIT);
  }
  cr_assert_eq(n, 5);
  cr_assert_eq(memcmp(buf, "hello", 5), 0);
  cr_assert_eq(send(cfd, "world", 5, 0), 5);
  /* the ACK of "hello", then "world" (in either order of arrival) */
  bool got = false;
  for (uint64_t end = clock_now_ns() + WAIT; !got && clock_now_ns() < end;) {
    gw_pipe_pump_once(&e->p, 10 * NS_PER_MS);
    for (unsigned i = 1; i < e->vm.nframes && i < GWP_REC_FRAMES && !got; i++) {
      frame_tcp(e, i, &t);
      got = t.len == 5 && memcmp(t.payload, "world", 5) == 0;
    }
  }
  cr_assert(got, "the host's bytes reach the guest");
  cr_assert_eq(t.seq, isn + 1);
  cr_assert_eq(t.ack, 1006);
  close(cfd);
  close(lfd);
  env_free(e);
}

/* ---- routes and refusals ---- */

static uint16_t ra_lifetime(struct env *e, unsigned i)
{
  struct net_ipv6 ip;
  struct net_icmp6 m;
  struct net_eth eth;
  cr_assert_eq(net_eth_parse(e->vm.frame[i], e->vm.len[i], &eth), 0);
  cr_assert_eq(net_ipv6_parse(eth.payload, eth.len, &ip), 0);
  cr_assert_eq(net_icmp6_parse(&ip, &m), 0);
  cr_assert_eq(m.type, ND_ROUTER_ADVERT);
  return (uint16_t)(m.rest[2] << 8 | m.rest[3]);
}

static void send_rs(struct env *e)
{
  static const uint8_t all_routers[16] = {0xff, 2, [15] = 2};
  const struct net_l2 l2 = {.dst_mac = (const uint8_t[6]){0x33, 0x33, 0, 0, 0, 2},
                            .src_mac = VM_MAC};
  uint8_t f[256], ll[16];
  const uint8_t llp[8] = {0xfe, 0x80};
  net6_addr_eui64(ll, llp, VM_MAC);
  const uint8_t rest[4] = {0};
  int n =
      net_build_icmp6(f, sizeof(f), &l2, ll, all_routers, 255, ND_ROUTER_SOLICIT, 0, rest, NULL, 0);
  send_frame(e, f, (size_t)n);
}

Test(nat6, router_lifetime_follows_the_hosts_ipv6_route)
{
  struct env *e = env_new();
  send_rs(e);
  cr_assert_eq(e->vm.nframes, 1);
  cr_assert_eq(ra_lifetime(e, 0), 1800, "a default router while the host has a route");
  route6(e, false);
  send_rs(e);
  cr_assert_eq(e->vm.nframes, 2);
  cr_assert_eq(ra_lifetime(e, 1), 0, "not a default router without one");
  env_free(e);
}

Test(nat6, no_route_v4_mapped_and_hop_limit_answered_at_once)
{
  struct env *e = env_new();
  route6(e, false);
  send_udp(e, LOOP6, 40002, 9, "x");
  cr_assert_eq(e->vm.nframes, 1, "answered at once");
  struct net_ipv6 ip;
  struct net_icmp6 m;
  frame_icmp6(e, 0, &ip, &m);
  cr_assert_eq(m.type, ICMP6_UNREACH);
  cr_assert_eq(m.code, ICMP6_UNREACH_NOROUTE);
  cr_assert_eq(e->p.gw.ctr.ip6_no_route, 1);
  cr_assert_eq(e->p.gw.ctr.udp_flows_opened, 0);
  route6(e, true);
  /* ::ffff:127.0.0.1 would be IPv4 to the NAT: refused even if allowed */
  cr_assert_eq(policy_add(&e->p.pol, "::ffff:0:0/96", true), 0);
  const uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff, 127, 0, 0, 1};
  send_udp(e, mapped, 40003, 9, "x");
  cr_assert_eq(e->vm.nframes, 2);
  frame_icmp6(e, 1, &ip, &m);
  cr_assert_eq(m.code, ICMP6_UNREACH_ADMIN);
  cr_assert_eq(e->p.gw.ctr.ip6_denied, 1);
  /* hop limit 1: time exceeded, nothing sent */
  uint8_t f[256];
  int n = net_build_udp6(f, sizeof(f), &to_gw, e->me, LOOP6, 40004, 9, (const uint8_t *)"x", 1);
  f[ETH_HDR + 7] = 1;
  send_frame(e, f, (size_t)n);
  cr_assert_eq(e->vm.nframes, 3);
  frame_icmp6(e, 2, &ip, &m);
  cr_assert_eq(m.type, ICMP6_TIME_EXCEEDED);
  cr_assert_eq(e->p.gw.ctr.ip6_hlim_expired, 1);
  cr_assert_eq(e->p.gw.ctr.udp_flows_opened, 0);
  env_free(e);
}

/* ---- errors the host reports ---- */

/* Packet too big from a router on the host's path: relayed to the guest
 * with the path MTU (the headers are the same size on both sides), never
 * above the gateway's link MTU nor below 1280; an IPv4 error keeps its
 * type, code and next-hop MTU. */
Test(nat6, packet_too_big_relayed_with_the_path_mtu)
{
  struct env *e = env_new();
  struct gateway *gw = &e->p.gw;
  static const uint8_t router[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 9, [15] = 1};
  union inany from = inany_from6(router), me = inany_from6(e->me), far = inany_from6(LOOP6);
  uint8_t orig[ETH_HDR + IPV6_HDR + UDP_HDR];
  const struct net_l2 l2 = {.dst_mac = GWP_GW_MAC, .src_mac = VM_MAC};
  int on = gw_build_udp(gw, orig, sizeof(orig), &l2, &me, &far, 40005, 4433, NULL, 0);
  cr_assert_eq(on, (int)sizeof(orig));
  const uint32_t path[3] = {1300, 9000, 1000}, want[3] = {1300, 1400, 1280};
  uint64_t ctr = 0;
  for (unsigned i = 0; i < 3; i++) {
    gw_relay_error(gw, 0, VM_MAC, true, ICMP6_TOO_BIG, 0, path[i], &from, orig + ETH_HDR,
                   sizeof(orig) - ETH_HDR, &ctr);
    cr_assert_eq(e->vm.nframes, i + 1);
    struct net_ipv6 ip;
    struct net_icmp6 m;
    frame_icmp6(e, i, &ip, &m);
    cr_assert_eq(m.type, ICMP6_TOO_BIG);
    cr_assert_arr_eq(ip.src, router, 16, "from the reporting router");
    uint32_t mtu = (uint32_t)m.rest[0] << 24 | (uint32_t)m.rest[1] << 16 |
                   (uint32_t)m.rest[2] << 8 | m.rest[3];
    cr_assert_eq(mtu, want[i], "path MTU %u relayed as %u", path[i], mtu);
    cr_assert_arr_eq(m.data + 24, LOOP6, 16, "quoting the guest's datagram");
  }
  cr_assert_eq(ctr, 3);
  /* IPv4: fragmentation needed with its next-hop MTU */
  union inany me4 = inany_from4(GWP_IP4(10, 0, 2, 11)), far4 = inany_from4(GWP_IP4(127, 0, 0, 1));
  union inany r4 = inany_from4(GWP_IP4(198, 18, 0, 1));
  on = gw_build_udp(gw, orig, sizeof(orig), &l2, &me4, &far4, 40006, 53, NULL, 0);
  cr_assert_gt(on, ETH_HDR);
  gw_relay_error(gw, 0, VM_MAC, false, ICMP_UNREACH, ICMP_UNREACH_NEEDFRAG, 1200, &r4,
                 orig + ETH_HDR, (size_t)on - ETH_HDR, &ctr);
  cr_assert_eq(e->vm.nframes, 4);
  struct net_eth eth;
  struct net_ipv4 ip4;
  struct net_icmp m4;
  cr_assert_eq(net_eth_parse(e->vm.frame[3], e->vm.len[3], &eth), 0);
  cr_assert_eq(eth.type, ETH_TYPE_IPV4);
  cr_assert_eq(net_ipv4_parse(eth.payload, eth.len, &ip4), 0);
  cr_assert_eq(net_icmp_parse(&ip4, &m4), 0);
  cr_assert_eq(ip4.src, GWP_IP4(198, 18, 0, 1));
  cr_assert_eq(m4.type, ICMP_UNREACH);
  cr_assert_eq(m4.code, ICMP_UNREACH_NEEDFRAG);
  cr_assert_eq(m4.seq, 1200, "the next-hop MTU");
  cr_assert_eq(ctr, 4);
  env_free(e);
}
