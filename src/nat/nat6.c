/*
 * nat6: NAT66, a guest's IPv6 to the internet through the same flow table,
 * host sockets and io_uring paths as its IPv4 (nat_udp.c, nat_icmp.c,
 * nat_tcp.c), and what those modules share to speak either family.
 *
 * The modules hold every address as a union inany (wtrelay/inany.h: IPv4
 * as ::ffff:a.b.c.d), so a flow's key, its remote endpoint and its VM's
 * share account are the same code for both families; only the edges
 * differ: the host socket's family (AF_INET6 for an IPv6 flow: ping
 * sockets of IPPROTO_ICMPV6, UDP and TCP sockets), the frames built toward
 * the guest (net6.h, IPv6 pseudo-header checksums) and the errors (ICMPv6,
 * and IPV6_RECVERR on the UDP sockets).
 *
 * What reaches nat6_input was checked by gw_ip6.c: the source is the
 * session's (the LAN guard) and in the room's prefix, the destination is
 * not the relay host's own (hostaddr) and the IPv6 egress policy allows it
 * (policy_allows6: loopback, ULA, link-local, multicast, v4-mapped, NAT64
 * and documentation prefixes denied by default), and the host has an IPv6
 * route to the internet (hostaddr_has_route6; else the guest was answered
 * "no route" at once). Fragments are dropped and counted (as over IPv4);
 * a hop limit of 1 gets "hop limit exceeded"; ICMPv6 other than echo
 * requests (errors, ND for elsewhere) is not forwarded.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "gateway_internal.h"

socklen_t gw_sockaddr(union io_sockaddr *sa, const union inany *a, uint16_t port)
{
  memset(sa, 0, sizeof(*sa));
  if (inany_is4(a)) {
    sa->in.sin_family = AF_INET;
    sa->in.sin_addr.s_addr = htonl(inany_v4(a));
    sa->in.sin_port = htons(port);
    return sizeof(sa->in);
  }
  sa->in6.sin6_family = AF_INET6;
  memcpy(&sa->in6.sin6_addr, a->a, 16);
  sa->in6.sin6_port = htons(port);
  return sizeof(sa->in6);
}

bool gw_sockaddr_get(const union io_sockaddr *sa, union inany *a, uint16_t *port)
{
  if (sa->sa.sa_family == AF_INET) {
    *a = inany_from4(ntohl(sa->in.sin_addr.s_addr));
    *port = ntohs(sa->in.sin_port);
    return true;
  }
  if (sa->sa.sa_family == AF_INET6) {
    /* a v4-mapped address reads as IPv4: the same union */
    *a = inany_from6(sa->in6.sin6_addr.s6_addr);
    *port = ntohs(sa->in6.sin6_port);
    return true;
  }
  return false;
}

union inany gw_router_addr(const struct gateway *gw, const union inany *to)
{
  static const uint8_t ll[16] = {0xfe, 0x80, [15] = 2}; /* fe80::2 */
  return inany_is4(to) ? inany_from4(gw->p.ip) : inany_from6(ll);
}

int gw_build_udp(struct gateway *gw, uint8_t *buf, size_t cap, const struct net_l2 *l2,
                 const union inany *from, const union inany *to, uint16_t sport, uint16_t dport,
                 const uint8_t *payload, size_t len)
{
  if (inany_is4(from))
    return net_build_udp(buf, cap, l2, inany_v4(from), inany_v4(to), sport, dport, payload, len,
                         gw_next_id(gw));
  return net_build_udp6(buf, cap, l2, from->a, to->a, sport, dport, payload, len);
}

int gw_build_tcp_hdr(struct gateway *gw, uint8_t *buf, size_t cap, const struct net_l2 *l2,
                     const union inany *from, const union inany *to, uint16_t sport, uint16_t dport,
                     uint32_t seq, uint32_t ack, uint8_t flags, uint16_t window,
                     const struct net_tcp_opts *o, const uint8_t *payload, size_t len)
{
  if (inany_is4(from))
    return net_build_tcp_hdr(buf, cap, l2, inany_v4(from), inany_v4(to), sport, dport, seq, ack,
                             flags, window, o, payload, len, gw_next_id(gw));
  return net_build_tcp6_hdr(buf, cap, l2, from->a, to->a, sport, dport, seq, ack, flags, window, o,
                            payload, len);
}

/* ICMP's error, in ICMPv6's terms. */
static void icmp6_of(uint8_t type, uint8_t code, uint8_t *type6, uint8_t *code6)
{
  *type6 = ICMP6_UNREACH;
  *code6 = ICMP6_UNREACH_NOROUTE;
  if (type == ICMP_TIME_EXCEEDED) {
    *type6 = ICMP6_TIME_EXCEEDED;
    *code6 = 0;
  } else if (type == ICMP_UNREACH && code == ICMP_UNREACH_ADMIN) {
    *code6 = ICMP6_UNREACH_ADMIN;
  } else if (type == ICMP_UNREACH && code == ICMP_UNREACH_PORT) {
    *code6 = ICMP6_UNREACH_PORT;
  } else if (type == ICMP_UNREACH && code == ICMP_UNREACH_HOST) {
    *code6 = ICMP6_UNREACH_ADDR;
  }
}

void gw_icmp6_error(struct gateway *gw, const struct gw_pkt *pkt, uint8_t type, uint8_t code)
{
  uint8_t t6, c6;
  icmp6_of(type, code, &t6, &c6);
  union inany to = gw_pkt_src(pkt);
  union inany from = gw_router_addr(gw, &to);
  struct net_l2 l2 = {.dst_mac = pkt->src_mac, .src_mac = gw->p.mac};
  int n = net_build_icmp6_error(gw->out, sizeof(gw->out), &l2, from.a, t6, c6, 0, pkt->ip6);
  if (n > 0)
    gw_emit(gw, pkt->room, (size_t)n);
}

void gw_relay_error(struct gateway *gw, uint32_t room, const uint8_t *guest_mac, bool icmp6,
                    uint8_t type, uint8_t code, uint32_t info, const union inany *from,
                    const uint8_t *orig, size_t orig_len, uint64_t *ctr)
{
  struct net_l2 l2 = {.dst_mac = guest_mac, .src_mac = gw->p.mac};
  int n;
  if (icmp6) {
    struct net_ipv6 oip;
    if (net_ipv6_parse(orig, orig_len, &oip) < 0)
      return;
    uint32_t mtu = 0;
    if (type == ICMP6_TOO_BIG) {
      /* the host's path MTU is the guest's: the headers are the same
       * size on both sides; never above our link's, never below IPv6's */
      mtu = info;
      if (gw->p.mtu && mtu > gw->p.mtu)
        mtu = gw->p.mtu;
      if (mtu < 1280)
        mtu = 1280;
    }
    n = net_build_icmp6_error(gw->out, sizeof(gw->out), &l2, from->a, type, code, mtu, &oip);
  } else {
    struct net_ipv4 oip;
    if (net_ipv4_parse(orig, orig_len, &oip) < 0)
      return;
    n = net_build_icmp_error(gw->out, sizeof(gw->out), &l2, inany_v4(from), type, code,
                             (uint16_t)info, &oip, gw_next_id(gw));
  }
  if (n > 0) {
    (*ctr)++;
    gw_emit(gw, room, (size_t)n);
  }
}

/* A guest's ICMPv6 for elsewhere: echo requests to the ICMP NAT (in its
 * terms: id, sequence, data); errors and ND are not forwarded. */
static void echo_out(struct gateway *gw, const struct gw_pkt *pkt, const struct net_icmp6 *m6)
{
  if (m6->type != ICMP6_ECHO) {
    gw->ctr.ip6_ignored++;
    return;
  }
  struct net_icmp m = {.type = ICMP_ECHO,
                       .id = (uint16_t)(m6->rest[0] << 8 | m6->rest[1]),
                       .seq = (uint16_t)(m6->rest[2] << 8 | m6->rest[3]),
                       .data = m6->data,
                       .len = m6->len};
  nat_icmp_input(gw, pkt, &m);
}

void nat6_input(struct gateway *gw, struct gw_pkt *pkt)
{
  const struct net_ipv6 *ip = pkt->ip6;
  if (ip->fragment) {
    gw->ctr.ip6_fragments++;
    return;
  }
  if (ip->hlim <= 1) {
    gw->ctr.ip6_hlim_expired++;
    gw_icmp_error(gw, pkt, ICMP_TIME_EXCEEDED, 0);
    return;
  }
  struct net_udp u;
  struct net_tcp t;
  struct net_icmp6 m6;
  int rc;
  switch (ip->next) {
  case IP_PROTO_UDP:
    if ((rc = net_udp6_parse(ip, &u)) == 0)
      nat_udp_input(gw, pkt, &u);
    break;
  case IP_PROTO_TCP:
    if ((rc = net_tcp6_parse(ip, &t)) == 0)
      nat_tcp_input(gw, pkt, &t);
    break;
  case IP_PROTO_ICMPV6:
    if ((rc = net_icmp6_parse(ip, &m6)) == 0)
      echo_out(gw, pkt, &m6);
    break;
  default:
    gw->ctr.ip6_other_proto++;
    if (!ip->nexts) {
      /* parameter problem, unrecognized next header: the header's own
       * next-header field (behind extension headers: not answered) */
      struct net_l2 l2 = {.dst_mac = pkt->src_mac, .src_mac = gw->p.mac};
      union inany to = gw_pkt_src(pkt), from = gw_router_addr(gw, &to);
      int n =
          net_build_icmp6_error(gw->out, sizeof(gw->out), &l2, from.a, ICMP6_PARAM_PROB, 1, 6, ip);
      if (n > 0)
        gw_emit(gw, pkt->room, (size_t)n);
    }
    return;
  }
  if (rc < 0)
    gw->ctr.ip6_bad_l4++;
}
