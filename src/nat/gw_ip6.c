/*
 * gw_ip6: the gateway's IPv6 side on every room's LAN (issue 19, first
 * part): Router Advertisements (solicited and periodic) announcing the
 * room's /64 for SLAAC with the MTU, Neighbor Advertisements for the
 * gateway's two addresses (fe80::2 and <prefix>::2), and echo replies from
 * them, and the DNS forwarder at <prefix>::3 (announced as RDNSS,
 * RFC 8106; queries of any type forwarded as over IPv4) (periodic RAs only in rooms where an IPv6
 * packet was seen, so an IPv4-only LAN hears none). Every IPv6 packet the gateway port receives is
 * counted, and every one it drops is counted by its reason.
 *
 * The room's prefix: --subnet6 for every room, or fd + the relay's random
 * 40-bit global id + a 16-bit subnet id from the room's name (RFC 4193),
 * the same on every worker of the process. The gateway is a default router
 * (router lifetime 1800 s in its RAs) only while the host has an IPv6
 * route to the internet (hostaddr_has_route6, followed live); then a
 * guest's packet for elsewhere goes to NAT66 (nat6.c). A packet for
 * elsewhere that the gateway does not translate is answered at once with
 * ICMPv6 destination unreachable rather than left to time out:
 * administratively prohibited when the destination is the relay host's
 * own (hostaddr.h) or the IPv6 egress policy denies it (policy.h), else
 * (no IPv6 route on the host; the RAs said lifetime 0) no route.
 *
 * Sources the gateway accepts: link-local addresses (answers go to the
 * frame's source MAC only), the unspecified address for duplicate address
 * detection, and addresses in the room's prefix (which ones a session may
 * use, its MAC's EUI-64 or DAD-claimed addresses, the LAN guard checked
 * before the switch). Never the gateway's own addresses.
 */
#include "gateway_internal.h"

#include <errno.h>
#include <string.h>

#include "wtrelay/hostaddr.h"
#include "wtrelay/net6.h"
#include "wtrelay/policy.h"
#include "wtrelay/timeunit.h"

#define RA_PERIOD_NS (300 * NS_PER_S) /* unsolicited RAs (RFC 4861: 4 to 1800 s) */
#define RA_PER_SWEEP 8                /* periodic RAs sent per sweep, at most */
#define RA_BURST 5                    /* solicited RAs a room may get at once ... */
#define RA_RATE_NS (200 * NS_PER_MS)  /* ... and one per 200 ms after that */
#define PREFIX_VALID_S 86400
#define PREFIX_PREFERRED_S 14400

static const uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t all_routers[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
static const uint8_t ll_prefix[8] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0};

void gw_ip6_room_prefix(const struct gateway *gw, uint16_t subnet_id, uint8_t out[8])
{
  if (gw->p.subnet6_fixed) {
    memcpy(out, gw->p.subnet6, 8);
    return;
  }
  out[0] = 0xfd;
  memcpy(out + 1, gw->p.ula_global_id, 5);
  out[6] = (uint8_t)(subnet_id >> 8);
  out[7] = (uint8_t)subnet_id;
}

/* The gateway's address ::host in prefix (2: the router, 3: DNS). */
static void gw_addr(uint8_t out[16], const uint8_t prefix[8], uint8_t host)
{
  memset(out, 0, 16);
  memcpy(out, prefix, 8);
  out[15] = host;
}

#define RDNSS_S 1800           /* RFC 8106: at least MaxRtrAdvInterval */
#define ROUTER_LIFETIME_S 1800 /* RFC 4861: 3 x MaxRtrAdvInterval at most; ours is 300 s */

static bool same16(const uint8_t *a, const uint8_t *b)
{
  return memcmp(a, b, 16) == 0;
}

bool gw_ip6_routed(const struct gateway *gw)
{
  return gw->p.hostaddr && hostaddr_has_route6(gw->p.hostaddr);
}

/* An RA to dst (MAC dst_mac): the room's prefix, the MTU, and a default
 * router only while the host has an IPv6 route to the internet (see the
 * top). */
static void send_ra(struct gateway *gw, uint32_t room, const uint8_t dst_mac[6],
                    const uint8_t dst[16])
{
  struct gw_room *gr = &gw->rooms[room];
  uint8_t ll[16], dns[16];
  gw_addr(ll, ll_prefix, 2);
  gw_addr(dns, gr->prefix6, 3);
  struct net_ra ra = {.cur_hlim = 64,
                      .lifetime_s = gw_ip6_routed(gw) ? ROUTER_LIFETIME_S : 0,
                      .mac = gw->p.mac,
                      .mtu = gw->p.mtu >= 1280 ? gw->p.mtu : 0,
                      .prefix = gr->prefix6,
                      .valid_s = PREFIX_VALID_S,
                      .preferred_s = PREFIX_PREFERRED_S,
                      .rdnss = dns,
                      .rdnss_s = RDNSS_S};
  struct net_l2 l2 = {.dst_mac = dst_mac, .src_mac = gw->p.mac};
  int n = net_build_ra(gw->out, sizeof(gw->out), &l2, ll, dst, &ra);
  if (n > 0) {
    gw->ctr.ip6_ra_out++;
    gw_emit(gw, room, (size_t)n);
  }
}

/* The room's solicited-RA budget: RA_BURST at once, then one per RA_RATE_NS. */
static bool ra_allowed(struct gateway *gw, struct gw_room *gr)
{
  uint64_t now = *gw->now;
  if (gr->ra_tokens < RA_BURST) {
    uint64_t earned = (now - gr->ra_refill) / RA_RATE_NS;
    if (earned) {
      gr->ra_tokens =
          (uint32_t)(gr->ra_tokens + earned > RA_BURST ? RA_BURST : gr->ra_tokens + earned);
      gr->ra_refill = now;
    }
  } else {
    gr->ra_refill = now;
  }
  if (!gr->ra_tokens)
    return false;
  gr->ra_tokens--;
  return true;
}

void gw_ip6_room_init(struct gateway *gw, uint32_t room, uint16_t subnet_id)
{
  struct gw_room *gr = &gw->rooms[room];
  gw_ip6_room_prefix(gw, subnet_id, gr->prefix6);
  gr->ra_tokens = RA_BURST;
  gr->ra_refill = *gw->now;
  gr->ip6_seen = false;
}

void gw_ip6_sweep(struct gateway *gw, uint64_t now)
{
  uint32_t sent = 0;
  uint8_t mac[6];
  net6_multicast_mac(mac, all_nodes);
  for (uint32_t i = 0; i < gw->p.max_rooms && sent < RA_PER_SWEEP; i++) {
    struct gw_room *gr = &gw->rooms[i];
    if (!gr->used || !gr->ip6_seen || gr->ra_next > now)
      continue;
    send_ra(gw, i, mac, all_nodes);
    gw->ctr.ip6_ra_periodic++;
    gr->ra_next = now + RA_PERIOD_NS;
    sent++;
  }
}

/* May a packet from src reach the gateway? Link-local, or in the room's
 * prefix; which of those addresses a session may use (its MAC's EUI-64
 * ones, or those it claimed by DAD) is the LAN guard's check, made before
 * the switch saw the frame. */
static bool source_ok(const struct gw_room *gr, const uint8_t src[16], const uint8_t own[16])
{
  if (net6_is_link_local(src))
    return !same16(src, own);
  return memcmp(src, gr->prefix6, 8) == 0;
}

static void echo_reply(struct gateway *gw, uint32_t room, const uint8_t *src_mac,
                       const struct net_ipv6 *ip, const struct net_icmp6 *m)
{
  struct net_l2 l2 = {.dst_mac = src_mac, .src_mac = gw->p.mac};
  uint8_t from[16], to[16];
  memcpy(from, ip->dst, 16);
  memcpy(to, ip->src, 16);
  int n = net_build_icmp6(gw->out, sizeof(gw->out), &l2, from, to, 64, ICMP6_ECHO_REPLY, 0, m->rest,
                          m->data, m->len);
  if (n > 0) {
    gw->ctr.ip6_echo_replies++;
    gw_emit(gw, room, (size_t)n);
  }
}

/* Neighbor Solicitation for target (one of ours): a solicited NA to the
 * asker, or to all nodes when it is doing duplicate address detection. */
static void neighbor_advert(struct gateway *gw, uint32_t room, const uint8_t *src_mac,
                            const struct net_ipv6 *ip, const uint8_t target[16])
{
  bool dad = net6_is_unspecified(ip->src);
  uint8_t mcast_mac[6];
  net6_multicast_mac(mcast_mac, all_nodes);
  struct net_l2 l2 = {.dst_mac = dad ? mcast_mac : src_mac, .src_mac = gw->p.mac};
  uint8_t from[16], to[16];
  memcpy(from, target, 16);
  memcpy(to, dad ? all_nodes : ip->src, 16);
  int n =
      net_build_na(gw->out, sizeof(gw->out), &l2, from, to, target, gw->p.mac, true, !dad, true);
  if (n > 0) {
    gw->ctr.ip6_na_out++;
    gw_emit(gw, room, (size_t)n);
  }
}

/* One of the gateway's unicast addresses (fe80::2, <prefix>::2, ::3)? */
static bool is_ours(const uint8_t a[16], const uint8_t ll[16], const uint8_t global[16],
                    const uint8_t dns[16])
{
  return same16(a, ll) || same16(a, global) || same16(a, dns);
}

static void port_unreachable(struct gateway *gw, uint32_t room, const uint8_t *src_mac,
                             const struct net_ipv6 *ip)
{
  struct net_l2 l2 = {.dst_mac = src_mac, .src_mac = gw->p.mac};
  uint8_t from[16];
  memcpy(from, ip->dst, 16);
  int n = net_build_icmp6_error(gw->out, sizeof(gw->out), &l2, from, ICMP6_UNREACH,
                                ICMP6_UNREACH_PORT, 0, ip);
  if (n > 0)
    gw_emit(gw, room, (size_t)n);
}

/* UDP to one of our addresses: DNS at ::3 port 53, else port unreachable. */
static void udp6_input(struct gateway *gw, uint32_t room, const uint8_t *src_mac,
                       const struct net_ipv6 *ip, const uint8_t dns[16])
{
  struct net_udp u;
  if (net_udp6_parse(ip, &u) < 0) {
    gw->ctr.ip6_bad_l4++;
    return;
  }
  if (!same16(ip->dst, dns) || u.dport != 53) {
    gw->ctr.ip6_other_proto++;
    port_unreachable(gw, room, src_mac, ip);
    return;
  }
  struct dns_guest g = {.room = room,
                        .mac = src_mac,
                        .key = inany_from6(ip->src),
                        .v6 = true,
                        .ip6 = ip->src,
                        .server6 = ip->dst,
                        .port = u.sport};
  if (dns_fwd_query(gw, &g, &u) == -ENETUNREACH)
    port_unreachable(gw, room, src_mac, ip);
}

static void icmp6_input(struct gateway *gw, uint32_t room, const uint8_t *src_mac,
                        const struct net_ipv6 *ip, bool to_gw, const uint8_t ll[16],
                        const uint8_t global[16], const uint8_t dns[16])
{
  struct net_icmp6 m;
  if (net_icmp6_parse(ip, &m) < 0) {
    gw->ctr.ip6_bad_l4++;
    return;
  }
  struct net_nd nd;
  switch (m.type) {
  case ICMP6_ECHO:
    if (to_gw)
      echo_reply(gw, room, src_mac, ip, &m);
    else
      gw->ctr.ip6_ignored++; /* a multicast echo: not answered */
    return;
  case ND_ROUTER_SOLICIT:
    if (ip->hlim != 255 || net_nd_parse(&m, &nd) < 0) {
      gw->ctr.ip6_bad_nd++;
      return;
    }
    gw->ctr.ip6_rs_in++;
    if (!ra_allowed(gw, &gw->rooms[room])) {
      gw->ctr.ip6_ra_limited++;
      return;
    }
    /* unicast to the asker (RFC 4861 6.2.6 allows it); from :: to all nodes */
    send_ra(gw, room, src_mac, net6_is_unspecified(ip->src) ? all_nodes : ip->src);
    return;
  case ND_NEIGHBOR_SOLICIT:
    if (ip->hlim != 255 || net_nd_parse(&m, &nd) < 0 || net6_is_multicast(nd.target)) {
      gw->ctr.ip6_bad_nd++;
      return;
    }
    gw->ctr.ip6_ns_in++;
    if (is_ours(nd.target, ll, global, dns))
      neighbor_advert(gw, room, src_mac, ip, nd.target);
    else
      gw->ctr.ip6_ignored++; /* another node's address (their DAD, their neighbours) */
    return;
  default:
    /* RAs, NAs, redirects and MLD from guests, errors: nothing to do */
    gw->ctr.ip6_ignored++;
    return;
  }
}

void gw_ip6_input(struct gateway *gw, struct gw_pkt *pkt, const struct net_eth *e, bool to_gw_mac)
{
  uint32_t room = pkt->room;
  const uint8_t *src_mac = pkt->src_mac;
  struct gw_room *gr = &gw->rooms[room];
  struct net_ipv6 ip;
  gw->ctr.ip6_in++;
  if (!gr->ip6_seen) {
    /* unsolicited RAs only where IPv6 speaks: an IPv4-only LAN hears none */
    gr->ip6_seen = true;
    gr->ra_next = *gw->now + RA_PERIOD_NS;
  }
  if (net_ipv6_parse(e->payload, e->len, &ip) < 0) {
    gw->ctr.ip6_bad++;
    return;
  }
  uint8_t ll[16], global[16], dns[16], sn2[16], sn3[16];
  gw_addr(ll, ll_prefix, 2);
  gw_addr(global, gr->prefix6, 2);
  gw_addr(dns, gr->prefix6, 3);
  net6_solicited_node(sn2, ll); /* ::2 in both prefixes: one solicited-node group */
  net6_solicited_node(sn3, dns);
  bool to_gw = is_ours(ip.dst, ll, global, dns);
  bool to_group = same16(ip.dst, all_nodes) || same16(ip.dst, all_routers) || same16(ip.dst, sn2) ||
                  same16(ip.dst, sn3);
  if (!to_gw && !to_group) {
    if (net6_is_multicast(ip.dst) || !to_gw_mac) {
      gw->ctr.ip6_ignored++; /* MLD, mDNS, other groups; another node's unicast */
      return;
    }
    /* sent to the gateway's MAC for elsewhere: refused by the egress
     * policy (administratively prohibited), not routed when the host has
     * no IPv6 route to the internet, else translated (nat6.c) */
    if (net6_is_unspecified(ip.src) || !source_ok(gr, ip.src, ll) || net6_is_multicast(ip.src)) {
      gw->ctr.ip6_spoofed++;
      return;
    }
    union inany dst = inany_from6(ip.dst);
    bool local = gw->p.hostaddr && hostaddr_is_local6(gw->p.hostaddr, ip.dst);
    /* a v4-mapped destination would be IPv4 to the NAT: never, whatever
     * the policy says (it denies ::ffff:0:0/96 by default too) */
    bool denied =
        local || inany_is4(&dst) || (gw->p.policy && !policy_allows6(gw->p.policy, ip.dst));
    pkt->ip6 = &ip;
    /* the NAT speaks for addresses in the prefix, not link-local ones */
    if (!denied && gw_ip6_routed(gw) && !net6_is_link_local(ip.src)) {
      nat6_input(gw, pkt);
      return;
    }
    if (local)
      gw->ctr.local_refused++; /* the relay host's own: whatever the policy says */
    else if (denied)
      gw->ctr.ip6_denied++;
    else
      gw->ctr.ip6_no_route++;
    struct net_l2 l2 = {.dst_mac = src_mac, .src_mac = gw->p.mac};
    int n = net_build_icmp6_error(gw->out, sizeof(gw->out), &l2, ll, ICMP6_UNREACH,
                                  denied ? ICMP6_UNREACH_ADMIN : ICMP6_UNREACH_NOROUTE, 0, &ip);
    if (n > 0)
      gw_emit(gw, room, (size_t)n);
    return;
  }
  bool unspecified = net6_is_unspecified(ip.src);
  if (!unspecified && (net6_is_multicast(ip.src) || !source_ok(gr, ip.src, ll) ||
                       same16(ip.src, global) || same16(ip.src, dns))) {
    gw->ctr.ip6_spoofed++;
    gw_log(gw, "packet dropped", "IPv6 source is not the session's (link-local or SLAAC)");
    return;
  }
  if (ip.fragment) {
    gw->ctr.ip6_fragments++;
    return;
  }
  if (ip.next == IP_PROTO_ICMPV6) {
    /* :: may only ask whether an address is taken (DAD) */
    if (unspecified && !(ip.len >= 1 && (ip.payload[0] == ND_NEIGHBOR_SOLICIT ||
                                         ip.payload[0] == ND_ROUTER_SOLICIT))) {
      gw->ctr.ip6_spoofed++;
      return;
    }
    icmp6_input(gw, room, src_mac, &ip, to_gw, ll, global, dns);
    return;
  }
  if (to_gw && !unspecified && ip.next == IP_PROTO_UDP) {
    udp6_input(gw, room, src_mac, &ip, dns);
    return;
  }
  gw->ctr.ip6_other_proto++;
  if (to_gw && !unspecified)
    port_unreachable(gw, room, src_mac, &ip); /* TCP and others: no service here */
}
