/*
 * test_natsec: the NAT's defences against other hosts and other VMs,
 * through the real gateway pipeline (gw_pipeline.h: io_uring, timers,
 * switch, gateway; the "internet" is the test's own sockets on 127.0.0.1):
 *   - UDP filtering: only endpoints the guest sent to may answer through a
 *     mapping; only the guest's datagrams keep the mapping alive;
 *   - the host's own addresses (hostaddr): a local route makes its
 *     destination refused, at once, even when the egress policy allows it;
 *   - the DNS forwarder: random ids and a fresh source port per query,
 *     answers matched on socket, upstream address and port, id and
 *     question; one VM's share of the table bounded (SERVFAIL beyond it)
 *     while another VM's queries still go out;
 *   - the ICMP NAT: echo ids per VM bounded.
 * Each test asserts on what the VM receives, what the test's sockets
 * receive, and the gateway's counters.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway_internal.h"
#include "wtrelay/hostaddr.h"
#include "wtrelay/net.h"
#include "wtrelay/timeunit.h"

#include "gw_pipeline.h"

#define IP4 GWP_IP4
#define VM_IP IP4(10, 0, 2, 10)
#define VM2_IP IP4(10, 0, 2, 11)
#define DNS_IP IP4(10, 0, 2, 3)
#define LOOP_IP IP4(127, 0, 0, 1)
#define REPLY_WAIT (2 * NS_PER_S)
#define SILENCE_WAIT (200 * NS_PER_MS)
#define UDP_TIMEOUT (3 * NS_PER_S)

static const uint8_t VM_MAC[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x0a};
static const uint8_t VM2_MAC[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x0b};

#define VM_MAX_FRAMES 32

struct vm {
  uint32_t port, ip;
  uint8_t mac[6];
  unsigned nframes;
  size_t len[VM_MAX_FRAMES];
  uint8_t frame[VM_MAX_FRAMES][GW_FRAME_MAX];
};

static int vm_deliver(void *ctx, const struct switch_frame *f)
{
  struct vm *vm = ctx;
  gw_pipe_keep_frame(&vm->nframes, vm->len, vm->frame, VM_MAX_FRAMES, f);
  return 0;
}

static const struct switch_port_ops vm_ops = {.deliver = vm_deliver};

static int no_lease(void *ctx, uint32_t room, const uint8_t mac[6], uint32_t *ip)
{
  (void)ctx, (void)room, (void)mac, (void)ip;
  return -ENOSPC;
}

static const struct gateway_addr_ops addr_ops = {.lease = no_lease, .release = gw_pipe_no_release};

struct env {
  struct gw_pipe p;
  struct vm vm[2];
  int up_fd; /* the fake DNS upstream on 127.0.0.1, -1 = none */
  uint16_t up_port;
  struct hostaddr ha;
};

/* tweak (may be NULL) adjusts the parameters before gateway_init. */
static struct env *env_new(void (*tweak)(struct gateway_params *, struct env *))
{
  struct env *e = calloc(1, sizeof(*e));
  cr_assert(e);
  hostaddr_init(&e->ha);
  struct gateway_params gp;
  gw_pipe_params(&gp);
  gp.udp_timeout_ns = UDP_TIMEOUT;
  gp.icmp_timeout_ns = 3 * NS_PER_S;
  gp.dns_timeout_ns = 3 * NS_PER_S;
  e->up_fd = gw_pipe_udp_loopback(&e->up_port);
  cr_assert_eq(io_sockaddr_parse("127.0.0.1", e->up_port, &gp.upstream[0], &gp.upstream_len[0]), 0);
  gp.nupstreams = 1;
  if (tweak)
    tweak(&gp, e);
  gw_pipe_init(&e->p, 16, &gp, &addr_ops, NULL);
  const uint8_t *macs[2] = {VM_MAC, VM2_MAC};
  uint32_t ips[2] = {VM_IP, VM2_IP};
  for (unsigned i = 0; i < 2; i++) {
    struct vm *vm = &e->vm[i];
    memcpy(vm->mac, macs[i], 6);
    vm->ip = ips[i];
    cr_assert_eq(switch_port_attach(&e->p.sw, 0, &vm_ops, vm, &vm->port), 0);
    switch_port_set_addr(&e->p.sw, vm->port, vm->mac, vm->ip);
  }
  return e;
}

static void env_free(struct env *e)
{
  gw_pipe_fini(&e->p);
  close(e->up_fd);
  free(e);
}

static void vm_udp(struct env *e, struct vm *vm, uint16_t sport, uint32_t dst, uint16_t dport,
                   const void *p, size_t len)
{
  uint8_t f[GW_FRAME_MAX];
  struct net_l2 l2 = {.dst_mac = GWP_GW_MAC, .src_mac = vm->mac};
  int n = net_build_udp(f, sizeof(f), &l2, vm->ip, dst, sport, dport, p, len, 7);
  cr_assert_gt(n, 0);
  gw_pipe_tick(&e->p);
  struct iovec iov = {.iov_base = f, .iov_len = (size_t)n};
  struct switch_frame sf = {.iov = &iov, .iovcnt = 1, .len = (size_t)n};
  switch_input(&e->p.sw, vm->port, &sf, e->p.now);
}

static ssize_t sock_recv(struct env *e, int fd, uint8_t *buf, size_t cap, struct sockaddr_in *from)
{
  return gw_pipe_sock_recv(&e->p, fd, buf, cap, from, REPLY_WAIT);
}

static void pump_until_frames(struct env *e, struct vm *vm, unsigned want)
{
  uint64_t end = clock_now_ns() + REPLY_WAIT;
  for (unsigned t = 0; vm->nframes < want && clock_now_ns() < end && t < 10000; t++)
    gw_pipe_pump_once(&e->p, 20 * NS_PER_MS);
}

/* The UDP payload of frame i of vm, checked to come from src:sport. */
static struct net_udp frame_udp(struct vm *vm, unsigned i, uint32_t src, uint16_t sport)
{
  struct net_eth eth;
  struct net_ipv4 ip;
  struct net_udp u;
  cr_assert_lt(i, vm->nframes);
  cr_assert_eq(net_eth_parse(vm->frame[i], vm->len[i], &eth), 0);
  cr_assert_eq(net_ipv4_parse(eth.payload, eth.len, &ip), 0);
  cr_assert_eq(ip.proto, IP_PROTO_UDP);
  cr_assert_eq(ip.src, src, "from %08x, expected %08x", ip.src, src);
  cr_assert_eq(ip.dst, vm->ip);
  cr_assert_eq(net_udp_parse(&ip, &u), 0);
  cr_assert_eq(u.sport, sport);
  return u;
}

/* The VM sends `len` bytes from `sport` to the test's socket `fd` on
 * 127.0.0.1:`dport`; they arrive there, from the mapping (`*from`). */
static void vm_udp_reaches(struct env *e, struct vm *vm, uint16_t sport, int fd, uint16_t dport,
                           const void *p, size_t len, struct sockaddr_in *from)
{
  vm_udp(e, vm, sport, LOOP_IP, dport, p, len);
  uint8_t buf[2048];
  cr_assert_eq(sock_recv(e, fd, buf, sizeof(buf), from), (ssize_t)len);
}

/* ---- UDP filtering ---- */

Test(natsec, udp_inbound_only_from_endpoints_the_guest_sent_to)
{
  struct env *e = env_new(NULL);
  struct vm *vm = &e->vm[0];
  uint16_t tport, oport;
  int tfd = gw_pipe_udp_loopback(&tport);   /* the host the VM talks to */
  int other = gw_pipe_udp_loopback(&oport); /* an unrelated host (same address, another port) */
  struct sockaddr_in map;
  vm_udp_reaches(e, vm, 5000, tfd, tport, "hi", 2, &map);

  /* the unrelated endpoint injects into the mapping: dropped, counted */
  for (int i = 0; i < 3; i++)
    cr_assert_eq(sendto(other, "inject", 6, 0, (struct sockaddr *)&map, sizeof(map)), 6);
  for (uint64_t end = clock_now_ns() + REPLY_WAIT;
       e->p.gw.ctr.udp_filtered < 3 && clock_now_ns() < end;)
    gw_pipe_pump_once(&e->p, 20 * NS_PER_MS);
  cr_assert_eq(e->p.gw.ctr.udp_filtered, 3, "3 injected datagrams filtered");
  cr_assert_eq(vm->nframes, 0, "nothing injected reaches the VM");

  /* the host the VM talks to answers: delivered */
  cr_assert_eq(sendto(tfd, "answer", 6, 0, (struct sockaddr *)&map, sizeof(map)), 6);
  pump_until_frames(e, vm, 1);
  cr_assert_eq(vm->nframes, 1);
  struct net_udp u = frame_udp(vm, 0, LOOP_IP, tport);
  cr_assert_eq(u.len, 6);
  cr_assert_arr_eq(u.payload, "answer", 6);

  /* once the VM sends to the other endpoint too, it may answer */
  vm_udp_reaches(e, vm, 5000, other, oport, "you too", 7, &map);
  cr_assert_eq(sendto(other, "ok", 2, 0, (struct sockaddr *)&map, sizeof(map)), 2);
  pump_until_frames(e, vm, 2);
  cr_assert_eq(vm->nframes, 2);
  frame_udp(vm, 1, LOOP_IP, oport);
  cr_assert_eq(e->p.gw.ctr.udp_filtered, 3);
  close(tfd);
  close(other);
  env_free(e);
}

Test(natsec, udp_mapping_refreshed_only_by_outbound)
{
  struct env *e = env_new(NULL);
  struct vm *vm = &e->vm[0];
  uint16_t tport;
  int tfd = gw_pipe_udp_loopback(&tport);
  struct sockaddr_in map;
  vm_udp_reaches(e, vm, 5001, tfd, tport, "x", 1, &map);
  /* the remote keeps talking, the guest is silent */
  for (int i = 0; i < 3; i++) {
    e->p.skew += UDP_TIMEOUT / 2;
    cr_assert_eq(sendto(tfd, "keep", 4, 0, (struct sockaddr *)&map, sizeof(map)), 4);
    pump_until_frames(e, vm, (unsigned)i + 1);
    if (e->p.gw.ctr.udp_flows_closed)
      break;
  }
  gw_pipe_pump_once(&e->p, 10 * NS_PER_MS); /* the sweep */
  cr_assert_eq(e->p.gw.ctr.udp_flows_closed, 1,
               "inbound traffic must not keep the mapping alive past --udp-timeout");
  cr_assert_eq(e->p.gw.nudp, 0);
  close(tfd);
  env_free(e);
}

/* An IPv4 endpoint as the flow holds it (wtrelay/inany.h). */
#define P4(w, x, y, z) (&(union inany){.a = {[10] = 0xff, [11] = 0xff, w, x, y, z}})

Test(natsec, udp_remote_endpoints_bounded_lru)
{
  struct nat_udp_flow f;
  memset(&f, 0, sizeof(f));
  for (uint32_t i = 0; i < NAT_UDP_PEERS; i++)
    cr_assert_not(nat_udp_peer_note(&f, P4(198, 18, 0, 2), (uint16_t)(1000 + i), 10 + i));
  cr_assert_eq(f.npeers, NAT_UDP_PEERS);
  /* the first endpoint is used again: now the least recent is the second */
  cr_assert_not(nat_udp_peer_note(&f, P4(198, 18, 0, 2), 1000, 100));
  cr_assert(nat_udp_peer_note(&f, P4(198, 18, 0, 3), 53, 101), "a 9th endpoint replaces one");
  cr_assert_eq(f.npeers, NAT_UDP_PEERS);
  cr_assert(nat_udp_peer_allowed(&f, P4(198, 18, 0, 2), 1000));
  cr_assert_not(nat_udp_peer_allowed(&f, P4(198, 18, 0, 2), 1001), "LRU entry replaced");
  cr_assert(nat_udp_peer_allowed(&f, P4(198, 18, 0, 3), 53));
  /* address and port both matter */
  cr_assert_not(nat_udp_peer_allowed(&f, P4(198, 18, 0, 3), 54));
  cr_assert_not(nat_udp_peer_allowed(&f, P4(198, 18, 0, 4), 53));
}

/* ---- the host's own addresses ---- */

/* A netlink RTM_NEWROUTE / RTM_DELROUTE of an IPv4 route to net/len. */
/* A route message of family af for dst (4 or 16 bytes, network order). */
static size_t route_msg_af(uint8_t *b, uint16_t type, uint8_t rtype, int af, const void *dst,
                           uint8_t len, uint32_t seq)
{
  memset(b, 0, 64);
  struct nlmsghdr *n = (struct nlmsghdr *)(void *)b;
  struct rtmsg *r = NLMSG_DATA(n);
  r->rtm_family = (uint8_t)af;
  r->rtm_dst_len = len;
  r->rtm_table = RT_TABLE_LOCAL;
  r->rtm_type = rtype;
  struct rtattr *a = (struct rtattr *)(void *)((uint8_t *)r + NLMSG_ALIGN(sizeof(*r)));
  a->rta_type = RTA_DST;
  size_t alen = af == AF_INET6 ? 16 : 4;
  a->rta_len = (unsigned short)RTA_LENGTH(alen);
  memcpy(RTA_DATA(a), dst, alen);
  n->nlmsg_len = NLMSG_LENGTH(NLMSG_ALIGN(sizeof(*r)) + RTA_ALIGN(a->rta_len));
  n->nlmsg_type = type;
  n->nlmsg_seq = seq;
  return NLMSG_ALIGN(n->nlmsg_len);
}

static size_t route_msg(uint8_t *b, uint16_t type, uint8_t rtype, uint32_t net, uint8_t len,
                        uint32_t seq)
{
  uint32_t be = htonl(net);
  return route_msg_af(b, type, rtype, AF_INET, &be, len, seq);
}

Test(natsec, hostaddr_follows_ipv6_local_routes)
{
  static struct hostaddr h;
  hostaddr_init(&h);
  struct in6_addr own, any, other, v4in6;
  inet_pton(AF_INET6, "2001:db8:1::99", &own);
  inet_pton(AF_INET6, "2001:db8:77::", &any);
  inet_pton(AF_INET6, "2001:db8:1::1", &other);
  inet_pton(AF_INET6, "::ffff:198.18.0.9", &v4in6);
  _Alignas(8) uint8_t b[256];
  size_t n = route_msg_af(b, RTM_NEWROUTE, RTN_LOCAL, AF_INET6, own.s6_addr, 128, 0);
  n += route_msg_af(b + n, RTM_NEWROUTE, RTN_LOCAL, AF_INET6, any.s6_addr, 48, 0); /* AnyIP */
  n += route_msg_af(b + n, RTM_NEWROUTE, RTN_UNICAST, AF_INET6, other.s6_addr, 64, 0);
  cr_assert_eq(hostaddr_input(&h, b, n, 0), 0);
  cr_assert_eq(h.n, 2);
  cr_assert(hostaddr_is_local6(&h, own.s6_addr));
  struct in6_addr in_any;
  inet_pton(AF_INET6, "2001:db8:77:5::1", &in_any);
  cr_assert(hostaddr_is_local6(&h, in_any.s6_addr), "inside a local /48");
  cr_assert_not(hostaddr_is_local6(&h, other.s6_addr), "a unicast route is not local");
  /* the families stay apart: an IPv6 entry never answers for IPv4 */
  cr_assert_not(hostaddr_is_local(&h, IP4(198, 18, 0, 9)));
  n = route_msg(b, RTM_NEWROUTE, RTN_LOCAL, IP4(198, 18, 0, 9), 32, 0);
  cr_assert_eq(hostaddr_input(&h, b, n, 0), 0);
  cr_assert(hostaddr_is_local(&h, IP4(198, 18, 0, 9)));
  cr_assert_not(hostaddr_is_local6(&h, v4in6.s6_addr), "an IPv4 entry never answers for IPv6");
  /* the address goes away; a prefix longer than 128 is malformed */
  n = route_msg_af(b, RTM_DELROUTE, RTN_LOCAL, AF_INET6, own.s6_addr, 128, 0);
  cr_assert_eq(hostaddr_input(&h, b, n, 0), 0);
  cr_assert_not(hostaddr_is_local6(&h, own.s6_addr));
  n = route_msg_af(b, RTM_NEWROUTE, RTN_LOCAL, AF_INET6, own.s6_addr, 129, 0);
  cr_assert_eq(hostaddr_input(&h, b, n, 0), -EINVAL);
}

/* The host's IPv6 route to the internet: a unicast default route (or one
 * covering 2000::/3) of the main table, followed like the local routes,
 * and never taken for a local one; other unicast routes are not kept. */
Test(natsec, hostaddr_follows_the_ipv6_default_route)
{
  static struct hostaddr h;
  hostaddr_init(&h);
  struct in6_addr any, global, site;
  inet_pton(AF_INET6, "::", &any);
  inet_pton(AF_INET6, "2000::", &global);
  inet_pton(AF_INET6, "2001:db8:1::", &site);
  _Alignas(8) uint8_t b[256];
  size_t n = route_msg_af(b, RTM_NEWROUTE, RTN_UNICAST, AF_INET6, site.s6_addr, 48, 0);
  ((struct rtmsg *)NLMSG_DATA((struct nlmsghdr *)(void *)b))->rtm_table = RT_TABLE_MAIN;
  cr_assert_eq(hostaddr_input(&h, b, n, 0), 0);
  cr_assert_eq(h.n, 0, "a route to one network is not kept");
  cr_assert_not(hostaddr_has_route6(&h));
  n = route_msg_af(b, RTM_NEWROUTE, RTN_UNICAST, AF_INET6, any.s6_addr, 0, 0);
  cr_assert_eq(hostaddr_input(&h, b, n, 0), 0);
  cr_assert_not(hostaddr_has_route6(&h), "a default route of another table does not count");
  ((struct rtmsg *)NLMSG_DATA((struct nlmsghdr *)(void *)b))->rtm_table = RT_TABLE_MAIN;
  cr_assert_eq(hostaddr_input(&h, b, n, 0), 0);
  cr_assert(hostaddr_has_route6(&h));
  cr_assert_not(hostaddr_is_local6(&h, site.s6_addr), "the default route is not local");
  size_t m = route_msg_af(b + n, RTM_NEWROUTE, RTN_UNICAST, AF_INET6, global.s6_addr, 3, 0);
  ((struct rtmsg *)NLMSG_DATA((struct nlmsghdr *)(void *)(b + n)))->rtm_table = RT_TABLE_MAIN;
  cr_assert_eq(hostaddr_input(&h, b + n, m, 0), 0);
  cr_assert_eq(h.n, 2, "2000::/3 is kept too");
  ((struct nlmsghdr *)(void *)b)->nlmsg_type = RTM_DELROUTE;
  ((struct nlmsghdr *)(void *)(b + n))->nlmsg_type = RTM_DELROUTE;
  cr_assert_eq(hostaddr_input(&h, b, n + m, 0), 0);
  cr_assert_not(hostaddr_has_route6(&h), "both gone");
  cr_assert_eq(h.n, 0);
}

Test(natsec, hostaddr_follows_local_routes)
{
  static struct hostaddr h;
  hostaddr_init(&h);
  _Alignas(8) uint8_t b[256];
  size_t n = route_msg(b, RTM_NEWROUTE, RTN_LOCAL, IP4(198, 18, 0, 9), 32, 0);
  n += route_msg(b + n, RTM_NEWROUTE, RTN_BROADCAST, IP4(198, 18, 0, 255), 32, 0);
  n += route_msg(b + n, RTM_NEWROUTE, RTN_UNICAST, IP4(198, 18, 0, 0), 24, 0);
  cr_assert_eq(hostaddr_input(&h, b, n, 0), 0);
  cr_assert(hostaddr_is_local(&h, IP4(198, 18, 0, 9)));
  cr_assert(hostaddr_is_local(&h, IP4(198, 18, 0, 255)), "broadcast is delivered locally too");
  cr_assert_not(hostaddr_is_local(&h, IP4(198, 18, 0, 2)), "a unicast route is not local");
  cr_assert_eq(h.n, 2);
  /* AnyIP: a whole local prefix */
  n = route_msg(b, RTM_NEWROUTE, RTN_LOCAL, IP4(203, 0, 113, 0), 24, 0);
  cr_assert_eq(hostaddr_input(&h, b, n, 0), 0);
  cr_assert(hostaddr_is_local(&h, IP4(203, 0, 113, 77)));
  /* the address goes away */
  n = route_msg(b, RTM_DELROUTE, RTN_LOCAL, IP4(198, 18, 0, 9), 32, 0);
  cr_assert_eq(hostaddr_input(&h, b, n, 0), 0);
  cr_assert_not(hostaddr_is_local(&h, IP4(198, 18, 0, 9)));
  cr_assert_eq(h.ctr.added, 3);
  cr_assert_eq(h.ctr.removed, 1);
  /* the end of dump 7 is reported only for dump 7 */
  struct nlmsghdr done = {.nlmsg_len = NLMSG_LENGTH(4), .nlmsg_type = NLMSG_DONE, .nlmsg_seq = 7};
  _Alignas(8) uint8_t db[NLMSG_LENGTH(4)];
  memset(db, 0, sizeof(db));
  memcpy(db, &done, sizeof(done));
  cr_assert_eq(hostaddr_input(&h, db, sizeof(db), 6), 0);
  cr_assert_eq(hostaddr_input(&h, db, sizeof(db), 7), 1);
  /* malformed: a route message too short for its rtmsg */
  n = route_msg(b, RTM_NEWROUTE, RTN_LOCAL, IP4(192, 0, 2, 1), 32, 0);
  ((struct nlmsghdr *)(void *)b)->nlmsg_len = NLMSG_LENGTH(4);
  cr_assert_eq(hostaddr_input(&h, b, NLMSG_LENGTH(4), 0), -EINVAL);
  cr_assert_not(hostaddr_is_local(&h, IP4(192, 0, 2, 1)));
  /* a truncated buffer is ignored, never read past */
  n = route_msg(b, RTM_NEWROUTE, RTN_LOCAL, IP4(192, 0, 2, 2), 32, 0);
  cr_assert_eq(hostaddr_input(&h, b, n - 4, 0), 0);
  cr_assert_not(hostaddr_is_local(&h, IP4(192, 0, 2, 2)));
}

/* Notifications were lost: a dump confirms what still exists, the rest
 * goes when it ends, and until then everything known stays refused. */
Test(natsec, hostaddr_resync_after_overrun)
{
  static struct hostaddr h;
  hostaddr_init(&h);
  _Alignas(8) uint8_t b[256];
  size_t n = route_msg(b, RTM_NEWROUTE, RTN_LOCAL, IP4(198, 18, 0, 9), 32, 0);
  n += route_msg(b + n, RTM_NEWROUTE, RTN_LOCAL, IP4(198, 18, 0, 10), 32, 0);
  cr_assert_eq(hostaddr_input(&h, b, n, 0), 0);
  hostaddr_mark_stale(&h);
  cr_assert(hostaddr_is_local(&h, IP4(198, 18, 0, 9)), "stale entries are still refused");
  cr_assert(hostaddr_is_local(&h, IP4(198, 18, 0, 10)));
  /* the dump (seq 5) holds .10 and a new .11, not .9 (deleted meanwhile) */
  n = route_msg(b, RTM_NEWROUTE, RTN_LOCAL, IP4(198, 18, 0, 10), 32, 5);
  n += route_msg(b + n, RTM_NEWROUTE, RTN_LOCAL, IP4(198, 18, 0, 11), 32, 5);
  struct nlmsghdr done = {.nlmsg_len = NLMSG_LENGTH(4), .nlmsg_type = NLMSG_DONE, .nlmsg_seq = 5};
  memset(b + n, 0, NLMSG_LENGTH(4));
  memcpy(b + n, &done, sizeof(done));
  n += NLMSG_LENGTH(4);
  cr_assert_eq(hostaddr_input(&h, b, n, 5), 1, "the dump's end is seen");
  hostaddr_sweep_stale(&h);
  cr_assert_not(hostaddr_is_local(&h, IP4(198, 18, 0, 9)));
  cr_assert(hostaddr_is_local(&h, IP4(198, 18, 0, 10)));
  cr_assert(hostaddr_is_local(&h, IP4(198, 18, 0, 11)));
  cr_assert_eq(h.n, 2);
}

/* An attribute whose aligned length runs past the message: parsing stops
 * there (no wrap-around of the remaining length). */
Test(natsec, hostaddr_odd_attribute_lengths)
{
  static struct hostaddr h;
  hostaddr_init(&h);
  _Alignas(8) uint8_t b[128];
  size_t n = route_msg(b, RTM_NEWROUTE, RTN_LOCAL, IP4(198, 18, 0, 9), 32, 0);
  struct nlmsghdr *m = (struct nlmsghdr *)(void *)b;
  struct rtattr *a =
      (struct rtattr *)(void *)(b + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct rtmsg)));
  /* the message ends 2 bytes into a 5-byte attribute (aligned 8) */
  a->rta_type = RTA_OIF;
  a->rta_len = 5;
  m->nlmsg_len = (uint32_t)(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct rtmsg)) + 6);
  cr_assert_geq(hostaddr_input(&h, b, m->nlmsg_len, 0), 0);
  (void)n;
  /* the route itself (no RTA_DST: 0.0.0.0/32) is the only effect */
  cr_assert_leq(h.n, 1);
  cr_assert_not(hostaddr_is_local(&h, IP4(198, 18, 0, 9)));
}

Test(natsec, hostaddr_reads_the_kernel_table)
{
  static struct hostaddr h;
  struct io io;
  struct io_params iop;
  io_params_default(&iop);
  iop.rx_bufs = 16;
  cr_assert_eq(io_init(&io, &iop), 0);
  hostaddr_init(&h);
  int rc = hostaddr_open(&h, &io);
  cr_assert_eq(rc, 0, "hostaddr_open: %s", strerror(-rc));
  /* loopback is up in every network namespace: 127.0.0.0/8 is local */
  cr_assert(hostaddr_is_local(&h, IP4(127, 0, 0, 1)));
  cr_assert(hostaddr_is_local(&h, IP4(127, 3, 2, 1)), "the whole loopback prefix is local");
  cr_assert_not(hostaddr_is_local(&h, IP4(198, 51, 100, 1)));
  hostaddr_fini(&h);
  io_fini(&io);
}

static void with_hostaddr(struct gateway_params *gp, struct env *e)
{
  gp->hostaddr = &e->ha;
}

Test(natsec, local_destination_refused_although_policy_allows)
{
  struct env *e = env_new(with_hostaddr);
  struct vm *vm = &e->vm[0];
  uint16_t tport;
  int tfd = gw_pipe_udp_loopback(&tport);
  /* before the address appears: through (the policy allows 127/8 here) */
  struct sockaddr_in from;
  vm_udp_reaches(e, vm, 6000, tfd, tport, "a", 1, &from);
  cr_assert_eq(e->p.gw.ctr.local_refused, 0);
  /* the address appears (as rtnetlink reports it) */
  _Alignas(8) uint8_t b[64];
  size_t n = route_msg(b, RTM_NEWROUTE, RTN_LOCAL, LOOP_IP, 32, 0);
  cr_assert_eq(hostaddr_input(&e->ha, b, n, 0), 0);
  vm_udp(e, vm, 6000, LOOP_IP, tport, "b", 1);
  gw_pipe_pump_for(&e->p, SILENCE_WAIT);
  uint8_t buf[64];
  cr_assert(recv(tfd, buf, sizeof(buf), MSG_DONTWAIT) < 0, "a local destination was reached");
  cr_assert_eq(e->p.gw.ctr.local_refused, 1);
  /* the VM is told: ICMP admin prohibited */
  pump_until_frames(e, vm, 1);
  cr_assert_eq(vm->nframes, 1);
  struct net_eth eth;
  struct net_ipv4 ip;
  struct net_icmp m;
  cr_assert_eq(net_eth_parse(vm->frame[0], vm->len[0], &eth), 0);
  cr_assert_eq(net_ipv4_parse(eth.payload, eth.len, &ip), 0);
  cr_assert_eq(net_icmp_parse(&ip, &m), 0);
  cr_assert_eq(m.type, ICMP_UNREACH);
  cr_assert_eq(m.code, ICMP_UNREACH_ADMIN);
  close(tfd);
  env_free(e);
}

/* ---- DNS forwarder ---- */

static size_t dns_query(uint8_t *b, uint16_t id, const char *label)
{
  static const uint8_t tail[] = {7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1};
  memset(b, 0, 12);
  b[0] = (uint8_t)(id >> 8);
  b[1] = (uint8_t)id;
  b[2] = 0x01; /* RD */
  b[5] = 1;
  size_t l = strlen(label);
  b[12] = (uint8_t)l;
  memcpy(b + 13, label, l);
  memcpy(b + 13 + l, tail, sizeof(tail));
  return 13 + l + sizeof(tail);
}

static void wide_dns(struct gateway_params *gp, struct env *e)
{
  (void)e;
  gp->max_dns_inflight = 32;
  gp->max_dns_inflight_per_vm = 20;
}

Test(natsec, dns_ids_and_source_ports_vary)
{
  struct env *e = env_new(wide_dns);
  uint8_t q[128], up[512];
  uint16_t ids[16], ports[16];
  for (unsigned i = 0; i < 16; i++) {
    size_t n = dns_query(q, 0x1111, "same"); /* the guest repeats itself */
    vm_udp(e, &e->vm[0], (uint16_t)(41000 + i), DNS_IP, 53, q, n);
  }
  struct sockaddr_in from;
  for (unsigned i = 0; i < 16; i++) {
    cr_assert_gt(sock_recv(e, e->up_fd, up, sizeof(up), &from), 12, "query %u", i);
    ids[i] = (uint16_t)(up[0] << 8 | up[1]);
    ports[i] = ntohs(from.sin_port);
  }
  unsigned dup_ids = 0, dup_ports = 0;
  for (unsigned i = 0; i < 16; i++)
    for (unsigned j = 0; j < i; j++) {
      dup_ids += ids[i] == ids[j];
      dup_ports += ports[i] == ports[j];
    }
  /* random 16-bit ids and kernel-random ports: a repeat among 16 is rare */
  cr_assert_leq(dup_ids, 1, "%u repeated ids among 16 queries", dup_ids);
  cr_assert_leq(dup_ports, 1, "%u repeated source ports among 16 queries", dup_ports);
  /* and the id is not the slot: ids above the table size occur */
  unsigned high = 0;
  for (unsigned i = 0; i < 16; i++)
    high += ids[i] >= 32;
  cr_assert_geq(high, 12);

  /* an answer with the right id sent to another query's port: unmatched */
  uint8_t a[128];
  struct sockaddr_in to0 = from;
  size_t an = dns_query(a, ids[0], "same");
  a[2] |= 0x80;
  to0.sin_port = htons(ports[1] == ports[0] ? ports[2] : ports[1]);
  cr_assert_eq(sendto(e->up_fd, a, an, 0, (struct sockaddr *)&to0, sizeof(to0)), (ssize_t)an);
  for (uint64_t end = clock_now_ns() + REPLY_WAIT;
       e->p.gw.ctr.dns_unmatched == 0 && clock_now_ns() < end;)
    gw_pipe_pump_once(&e->p, 20 * NS_PER_MS);
  cr_assert_eq(e->p.gw.ctr.dns_unmatched, 1);
  /* the right port and id, from the upstream's address but another port */
  uint16_t xport;
  int x = gw_pipe_udp_loopback(&xport);
  to0.sin_port = htons(ports[0]);
  cr_assert_eq(sendto(x, a, an, 0, (struct sockaddr *)&to0, sizeof(to0)), (ssize_t)an);
  for (uint64_t end = clock_now_ns() + REPLY_WAIT;
       e->p.gw.ctr.dns_bad == 0 && clock_now_ns() < end;)
    gw_pipe_pump_once(&e->p, 20 * NS_PER_MS);
  cr_assert_eq(e->p.gw.ctr.dns_bad, 1);
  cr_assert_eq(e->vm[0].nframes, 0);
  /* everything right: answered */
  cr_assert_eq(sendto(e->up_fd, a, an, 0, (struct sockaddr *)&to0, sizeof(to0)), (ssize_t)an);
  pump_until_frames(e, &e->vm[0], 1);
  cr_assert_eq(e->vm[0].nframes, 1);
  struct net_udp u = frame_udp(&e->vm[0], 0, DNS_IP, 53);
  cr_assert_eq(u.payload[0] << 8 | u.payload[1], 0x1111, "the guest's id restored");
  close(x);
  env_free(e);
}

static void small_dns_share(struct gateway_params *gp, struct env *e)
{
  (void)e;
  gp->max_dns_inflight = 8;
  gp->max_dns_inflight_per_vm = 3;
}

Test(natsec, dns_share_per_vm)
{
  struct env *e = env_new(small_dns_share);
  struct vm *a = &e->vm[0], *b = &e->vm[1];
  uint8_t q[128], up[512];
  struct sockaddr_in from;
  /* VM a floods: 3 go out, the other 7 are SERVFAIL at once */
  for (unsigned i = 0; i < 10; i++) {
    size_t n = dns_query(q, (uint16_t)(0x200 + i), "flood");
    vm_udp(e, a, (uint16_t)(42000 + i), DNS_IP, 53, q, n);
  }
  cr_assert_eq(e->p.gw.dns_inflight, 3);
  cr_assert_eq(e->p.gw.ctr.dns_vm_full, 7);
  pump_until_frames(e, a, 7);
  cr_assert_eq(a->nframes, 7, "each refused query is answered SERVFAIL");
  struct net_udp u = frame_udp(a, 0, DNS_IP, 53);
  cr_assert_eq(u.payload[0] << 8 | u.payload[1], 0x203, "the 4th query's id");
  cr_assert_eq(u.payload[2] & 0x80, 0x80, "QR");
  cr_assert_eq(u.payload[3] & 0x0f, 2, "RCODE SERVFAIL");
  cr_assert_eq(u.payload[5], 1, "the question is kept");
  cr_assert_eq(u.payload[7], 0, "no answers");
  /* VM b still resolves: its queries go out while a's are pending */
  for (unsigned i = 0; i < 3; i++) {
    size_t n = dns_query(q, (uint16_t)(0x300 + i), "other");
    vm_udp(e, b, (uint16_t)(43000 + i), DNS_IP, 53, q, n);
  }
  cr_assert_eq(e->p.gw.dns_inflight, 6);
  cr_assert_eq(e->p.gw.ctr.dns_vm_full, 7, "b is within its share");
  unsigned seen_other = 0;
  for (unsigned i = 0; i < 6; i++) {
    ssize_t n = sock_recv(e, e->up_fd, up, sizeof(up), &from);
    cr_assert_gt(n, 12);
    if (memcmp(up + 13, "other", 5) == 0) {
      seen_other++;
      up[2] |= 0x80;
      cr_assert_eq(sendto(e->up_fd, up, (size_t)n, 0, (struct sockaddr *)&from, sizeof(from)), n);
    }
  }
  cr_assert_eq(seen_other, 3);
  pump_until_frames(e, b, 3);
  cr_assert_eq(b->nframes, 3, "b's three answers arrive during a's flood");
  cr_assert_eq(e->p.gw.ctr.dns_answers, 3);
  env_free(e);
}

/* ---- ICMP NAT ---- */

static void small_icmp_share(struct gateway_params *gp, struct env *e)
{
  (void)e;
  gp->max_icmp_flows = 4;
  gp->max_icmp_flows_per_vm = 2;
}

static void vm_echo(struct env *e, struct vm *vm, uint16_t id)
{
  uint8_t f[GW_FRAME_MAX];
  struct net_l2 l2 = {.dst_mac = GWP_GW_MAC, .src_mac = vm->mac};
  uint8_t rest[4] = {(uint8_t)(id >> 8), (uint8_t)id, 0, 1};
  int n = net_build_icmp(f, sizeof(f), &l2, vm->ip, LOOP_IP, ICMP_ECHO, 0, rest,
                         (const uint8_t *)"ping", 4, 9);
  cr_assert_gt(n, 0);
  gw_pipe_tick(&e->p);
  struct iovec iov = {.iov_base = f, .iov_len = (size_t)n};
  struct switch_frame sf = {.iov = &iov, .iovcnt = 1, .len = (size_t)n};
  switch_input(&e->p.sw, vm->port, &sf, e->p.now);
}

Test(natsec, icmp_echo_ids_per_vm)
{
  struct env *e = env_new(small_icmp_share);
  cr_assert(e->p.gw.icmp_ok, "ICMP NAT needs ping_group_range or CAP_NET_RAW (run as root, or "
                             "sysctl net.ipv4.ping_group_range)");
  for (uint16_t id = 1; id <= 5; id++)
    vm_echo(e, &e->vm[0], id);
  cr_assert_eq(e->p.gw.ctr.icmp_flows_opened, 2);
  cr_assert_eq(e->p.gw.ctr.icmp_vm_full, 3);
  /* the same id again reuses its flow, within the share */
  vm_echo(e, &e->vm[0], 2);
  cr_assert_eq(e->p.gw.ctr.icmp_vm_full, 3);
  /* the other VM still gets echo flows */
  vm_echo(e, &e->vm[1], 1);
  vm_echo(e, &e->vm[1], 2);
  cr_assert_eq(e->p.gw.ctr.icmp_flows_opened, 4);
  cr_assert_eq(e->p.gw.ctr.icmp_vm_full, 3);
  env_free(e);
}

/* Echo flows expire least recently used first (the flow table's LRU list
 * of ICMP), each giving its place in the VM's share back: an id used
 * again lives on, the VM opens a new id in the freed place, and when the
 * last flow ends its per-VM account is gone. */
Test(natsec, icmp_flows_expire_lru_and_give_the_share_back)
{
  struct env *e = env_new(small_icmp_share);
  cr_assert(e->p.gw.icmp_ok, "ICMP NAT needs ping_group_range or CAP_NET_RAW (run as root, or "
                             "sysctl net.ipv4.ping_group_range)");
  struct gateway *gw = &e->p.gw;
  union inany vm = inany_from4(e->vm[0].ip);
  vm_echo(e, &e->vm[0], 1);
  vm_echo(e, &e->vm[0], 2);
  cr_assert_eq(flowtab_vm_count(gw->flows, FT_ICMP, 0, &vm, 100), 2);
  vm_echo(e, &e->vm[0], 3);
  cr_assert_eq(gw->ctr.icmp_vm_full, 1);
  /* two seconds on, id 1 is used again; id 2 is not */
  e->p.skew += 2 * NS_PER_S;
  vm_echo(e, &e->vm[0], 1);
  /* past id 2's timeout (3 s), not id 1's */
  e->p.skew += 3 * NS_PER_S / 2;
  gw_pipe_tick(&e->p);
  nat_icmp_sweep(gw, e->p.now);
  cr_assert_eq(gw->ctr.icmp_flows_closed, 1, "only the least recently used flow expired");
  cr_assert_eq(gw->nicmp, 1);
  cr_assert_eq(flowtab_vm_count(gw->flows, FT_ICMP, 0, &vm, 100), 1);
  vm_echo(e, &e->vm[0], 3);
  cr_assert_eq(gw->ctr.icmp_vm_full, 1, "the freed place is taken by a new id");
  cr_assert_eq(gw->ctr.icmp_flows_opened, 3);
  /* everything idle past the timeout: all gone, and the VM's account */
  e->p.skew += 10 * NS_PER_S;
  gw_pipe_tick(&e->p);
  nat_icmp_sweep(gw, e->p.now);
  cr_assert_eq(gw->nicmp, 0);
  cr_assert_eq(gw->ctr.icmp_flows_closed, 3);
  cr_assert_eq(flowtab_vm_count(gw->flows, FT_ICMP, 0, &vm, 100), 0);
  env_free(e);
}

/* Raw-socket ICMP with several workers: each worker's echo ids on the wire
 * stay inside its own slice, whatever its random base, so a reply seen by
 * every worker's raw socket is taken by exactly one (its owner). */
Test(natsec, raw_icmp_id_slices_never_overlap)
{
  static const uint32_t counts[] = {1, 2, 3, 4, 7, 16, 64, 256};
  static const uint16_t bases[] = {0, 1, 255, 4095, 32768, 65535};
  for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
    uint32_t n = counts[c], slice = 65536 / n;
    for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
      for (uint32_t w = 0; w < n; w++) {
        /* the whole flow table (256 echo flows) and beyond the slice */
        for (uint32_t i = 0; i < 256 + slice; i += (i < 300 ? 1 : 97)) {
          uint16_t id = nat_icmp_slice_id(w, n, bases[b], i);
          cr_assert_eq(id / slice, w, "n=%u base=%u worker %u flow %u: id %u outside its slice", n,
                       bases[b], w, i, id);
        }
        /* distinct ids for the flows of one worker (up to the slice) */
        uint32_t flows = slice < 256 ? slice : 256;
        uint8_t seen[65536 / 8] = {0};
        for (uint32_t i = 0; i < flows; i++) {
          uint16_t id = nat_icmp_slice_id(w, n, bases[b], i);
          cr_assert_not(seen[id / 8] & (1u << (id % 8)), "n=%u worker %u: id %u twice", n, w, id);
          seen[id / 8] |= (uint8_t)(1u << (id % 8));
        }
      }
    }
  }
  /* one worker: the whole id space, starting at the base */
  cr_assert_eq(nat_icmp_slice_id(0, 1, 65535, 1), 0);
  cr_assert_eq(nat_icmp_slice_id(0, 0, 7, 0), 7, "0 workers is one");
}
