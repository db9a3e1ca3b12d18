/*
 * gateway: router port of every room, ARP, ICMP echo, DHCP, and the
 * dispatch to the NAT and the DNS forwarder. See include/wtrelay/gateway.h.
 *
 * A frame delivered to a room's gateway port is copied once into a scratch
 * buffer (the NAT path is not the switch's zero-copy path: every packet is
 * rewritten anyway), parsed, checked (anti-spoofing, egress policy, the
 * host's own addresses followed live by hostaddr, TTL),
 * and handled. Answers are built in a second scratch buffer and enter the
 * switch from the same gateway port, possibly while the switch is still
 * delivering the frame that caused them (the switch allows that).
 */
#include "gateway_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/container_of.h"
#include "wtrelay/counter.h"
#include "wtrelay/dhcp.h"
#include "wtrelay/hash.h"
#include "wtrelay/iov.h"
#include "wtrelay/net6.h"
#include "wtrelay/timeunit.h"

static const uint8_t bcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

uint16_t gw_next_id(struct gateway *gw)
{
  return ++gw->ip_id;
}

void gw_log(struct gateway *gw, const char *msg, const char *detail)
{
  uint32_t sup;
  if (log_ratelimit_allow(&gw->rl, *gw->now, &sup))
    log_info(msg, "detail=%s suppressed=%u", LOG_Q(detail), sup);
}

void gw_emit(struct gateway *gw, uint32_t room, size_t len)
{
  gw_emit_payload(gw, room, len, NULL, 0);
}

int gw_emit_payload(struct gateway *gw, uint32_t room, size_t hlen, const uint8_t *payload,
                    size_t plen)
{
  if (room >= gw->p.max_rooms || !gw->rooms[room].used)
    return -ENOENT;
  struct iovec iov[2] = {{.iov_base = gw->out, .iov_len = hlen},
                         {.iov_base = (void *)payload, .iov_len = plen}};
  struct switch_frame f = {.iov = iov, .iovcnt = plen ? 2 : 1, .len = hlen + plen};
  gw->ctr.frames_out++;
  if (gw->tap)
    gw->tap(gw->tap_ctx, room, &f);
  return switch_input(gw->sw, gw->rooms[room].port, &f, *gw->now);
}

void gw_icmp_error(struct gateway *gw, const struct gw_pkt *pkt, uint8_t type, uint8_t code)
{
  if (pkt->ip6) {
    gw_icmp6_error(gw, pkt, type, code);
    return;
  }
  struct net_l2 l2 = {.dst_mac = pkt->src_mac, .src_mac = gw->p.mac};
  int n = net_build_icmp_error(gw->out, sizeof(gw->out), &l2, gw->p.ip, type, code, 0, &pkt->ip,
                               gw_next_id(gw));
  if (n > 0)
    gw_emit(gw, pkt->room, (size_t)n);
}

/* ---- ARP and ping to the gateway ---- */

static void arp_input(struct gateway *gw, uint32_t room, const struct net_eth *e)
{
  struct net_arp a;
  if (net_arp_parse(e->payload, e->len, &a) < 0) {
    gw->ctr.bad_eth++;
    return;
  }
  if (a.op != 1 || (a.tpa != gw->p.ip && a.tpa != gw->p.dns_ip)) {
    gw->ctr.arp_ignored++;
    return;
  }
  struct net_l2 l2 = {.dst_mac = a.sha, .src_mac = gw->p.mac};
  int n = net_build_arp(gw->out, sizeof(gw->out), &l2, 2, gw->p.mac, a.tpa, a.sha, a.spa);
  if (n > 0) {
    gw->ctr.arp_replies++;
    gw_emit(gw, room, (size_t)n);
  }
}

static void echo_reply(struct gateway *gw, const struct gw_pkt *pkt, const struct net_icmp *m)
{
  uint8_t rest[4] = {(uint8_t)(m->id >> 8), (uint8_t)m->id, (uint8_t)(m->seq >> 8),
                     (uint8_t)m->seq};
  struct net_l2 l2 = {.dst_mac = pkt->src_mac, .src_mac = gw->p.mac};
  int n = net_build_icmp(gw->out, sizeof(gw->out), &l2, pkt->ip.dst, pkt->ip.src, ICMP_ECHO_REPLY,
                         0, rest, m->data, m->len, gw_next_id(gw));
  if (n > 0) {
    gw->ctr.echo_replies++;
    gw_emit(gw, pkt->room, (size_t)n);
  }
}

/* ---- DHCP ---- */

static void dhcp_input(struct gateway *gw, const struct gw_pkt *pkt, const struct net_udp *u)
{
  struct dhcp_msg m;
  gw->ctr.dhcp_in++;
  if (dhcp_parse(u->payload, u->len, &m) < 0 || memcmp(m.chaddr, pkt->src_mac, 6) != 0) {
    gw->ctr.dhcp_bad++;
    return;
  }
  if (m.has_server_id && m.server_id != gw->p.ip)
    return; /* the client chose another server */
  struct dhcp_reply r = {.xid = m.xid,
                         .flags = m.flags,
                         .server_id = gw->p.ip,
                         .netmask = gw->p.netmask,
                         .router = gw->p.ip,
                         .dns = {gw->p.announce_dns},
                         .ndns = 1,
                         .lease_s = gw->p.lease_s,
                         .mtu = gw->p.mtu};
  memcpy(r.chaddr, m.chaddr, 6);
  uint32_t ip = 0;
  switch (m.msg_type) {
  case DHCP_DISCOVER:
  case DHCP_REQUEST:
  case DHCP_INFORM:
    if (gw->addr->lease(gw->addr_ctx, pkt->room, m.chaddr, &ip) < 0) {
      gw_log(gw, "DHCP: no address for a client", "pool exhausted or MAC busy");
      r.msg_type = DHCP_NAK;
      break;
    }
    if (m.msg_type == DHCP_DISCOVER) {
      r.msg_type = DHCP_OFFER;
      r.yiaddr = ip;
    } else if (m.msg_type == DHCP_INFORM) {
      r.msg_type = DHCP_ACK;
      r.ciaddr = m.ciaddr;
    } else {
      uint32_t want = m.has_requested_ip ? m.requested_ip : m.ciaddr;
      r.msg_type = want == ip ? DHCP_ACK : DHCP_NAK;
      r.yiaddr = want == ip ? ip : 0;
      r.ciaddr = m.ciaddr;
      if (want == ip && gw->addr->bind)
        gw->addr->bind(gw->addr_ctx, pkt->room, pkt->src_port, m.chaddr, ip);
    }
    break;
  case DHCP_RELEASE:
    gw->ctr.dhcp_releases++;
    gw->addr->release(gw->addr_ctx, pkt->room, m.chaddr, m.ciaddr);
    return;
  default: /* DECLINE: nothing to do with a pool that hands out one address per MAC */
    return;
  }
  if (r.msg_type == DHCP_NAK) {
    r.netmask = r.router = r.lease_s = 0;
    r.ndns = 0;
    r.mtu = 0;
  }
  uint8_t payload[600];
  int plen = dhcp_build(payload, sizeof(payload), &r);
  if (plen < 0)
    return;
  bool bcast = r.msg_type == DHCP_NAK || (m.flags & 0x8000);
  uint32_t dst = bcast ? 0xffffffffu : (r.yiaddr ? r.yiaddr : m.ciaddr);
  struct net_l2 l2 = {.dst_mac = bcast ? bcast_mac : m.chaddr, .src_mac = gw->p.mac};
  int n = net_build_udp(gw->out, sizeof(gw->out), &l2, gw->p.ip, dst, DHCP_SERVER_PORT,
                        DHCP_CLIENT_PORT, payload, (size_t)plen, gw_next_id(gw));
  if (n < 0)
    return;
  if (r.msg_type == DHCP_OFFER)
    gw->ctr.dhcp_offers++;
  else if (r.msg_type == DHCP_ACK)
    gw->ctr.dhcp_acks++;
  else
    gw->ctr.dhcp_naks++;
  gw_emit(gw, pkt->room, (size_t)n);
}

/* ---- IPv4 ---- */

static bool in_subnet(const struct gateway *gw, uint32_t ip)
{
  return (ip & gw->p.netmask) == gw->p.subnet;
}

static void ipv4_input(struct gateway *gw, struct gw_pkt *pkt, const struct net_eth *e)
{
  if (net_ipv4_parse(e->payload, e->len, &pkt->ip) < 0) {
    gw->ctr.bad_ip++;
    return;
  }
  struct net_ipv4 *ip = &pkt->ip;
  struct net_udp u;
  struct net_icmp m;
  bool is_udp = ip->proto == IP_PROTO_UDP, is_icmp = ip->proto == IP_PROTO_ICMP;

  /* DHCP comes from 0.0.0.0 before the client has an address. */
  if (is_udp && net_udp_parse(ip, &u) == 0 && u.dport == DHCP_SERVER_PORT &&
      u.sport == DHCP_CLIENT_PORT) {
    dhcp_input(gw, pkt, &u);
    return;
  }
  if (ip->src != switch_port_ip(gw->sw, pkt->src_port)) {
    gw->ctr.spoofed++;
    gw_log(gw, "packet dropped", "source IP is not the session's address");
    return;
  }
  if (net_ip_is_fragment(ip)) {
    gw->ctr.fragments++;
    return;
  }
  /* an answer on an inbound forward's connection or mapping (to the
   * gateway's address for a client on the relay host): not egress */
  if (nat_fwd_guest_input(gw, pkt))
    return;
  if (ip->dst == gw->p.ip || ip->dst == gw->p.dns_ip) {
    if (is_icmp && net_icmp_parse(ip, &m) == 0 && m.type == ICMP_ECHO) {
      echo_reply(gw, pkt, &m);
    } else if (is_udp && net_udp_parse(ip, &u) == 0 && ip->dst == gw->p.dns_ip && u.dport == 53) {
      dns_fwd_input(gw, pkt, &u);
    } else if (!is_icmp) {
      gw_icmp_error(gw, pkt, ICMP_UNREACH, ICMP_UNREACH_PORT);
    }
    return;
  }
  if (in_subnet(gw, ip->dst) || ip->dst == 0xffffffffu) {
    /* another VM's address that no session holds (registered ones were
     * switched before reaching us), or a broadcast: not routed */
    gw->ctr.no_port++;
    return;
  }
  if (ip->ttl <= 1) {
    gw->ctr.ttl_expired++;
    gw_icmp_error(gw, pkt, ICMP_TIME_EXCEEDED, 0);
    return;
  }
  if (!policy_allows(gw->p.policy, ip->dst)) {
    gw->ctr.denied++;
    char a[16];
    gw_log(gw, "egress denied", net_ip_str(ip->dst, a));
    gw_icmp_error(gw, pkt, ICMP_UNREACH, ICMP_UNREACH_ADMIN);
    return;
  }
  /* the host would deliver it to itself: however and whenever that
   * address appeared (hostaddr.h); no --egress-allow overrides this */
  if (gw->p.hostaddr && hostaddr_is_local(gw->p.hostaddr, ip->dst)) {
    gw->ctr.local_refused++;
    char a[16];
    gw_log(gw, "egress refused: a local address of the relay host", net_ip_str(ip->dst, a));
    gw_icmp_error(gw, pkt, ICMP_UNREACH, ICMP_UNREACH_ADMIN);
    return;
  }
  if (is_udp) {
    if (net_udp_parse(ip, &u) < 0) {
      gw->ctr.bad_l4++;
      return;
    }
    nat_udp_input(gw, pkt, &u);
  } else if (is_icmp) {
    if (net_icmp_parse(ip, &m) < 0) {
      gw->ctr.bad_l4++;
      return;
    }
    if (m.type == ICMP_ECHO)
      nat_icmp_input(gw, pkt, &m);
  } else if (ip->proto == IP_PROTO_TCP) {
    struct net_tcp t;
    if (net_tcp_parse(ip, &t) < 0) {
      gw->ctr.bad_l4++;
      return;
    }
    nat_tcp_input(gw, pkt, &t);
  } else {
    gw->ctr.other_proto++;
    gw_icmp_error(gw, pkt, ICMP_UNREACH, 2 /* protocol unreachable */);
  }
}

/* The room's gateway port. */
static int gw_deliver(void *ctx, const struct switch_frame *f)
{
  struct gw_room *gr = ctx;
  struct gateway *gw = gr->gw;
  struct net_eth e;
  gw->ctr.frames_in++;
  if (f->len > sizeof(gw->frame) || iov_gather(gw->frame, 0, f->len, f->iov, f->iovcnt) != f->len ||
      net_eth_parse(gw->frame, f->len, &e) < 0) {
    gw->ctr.bad_eth++;
    return 0;
  }
  bool to_us = memcmp(e.dst, gw->p.mac, 6) == 0;
  if (!to_us && !(e.dst[0] & 1))
    return 0; /* unknown unicast flooded to every port: not ours */
  struct gw_pkt pkt = {.room = gr->room, .src_port = f->src_port, .src_mac = e.src};
  if (e.type == ETH_TYPE_ARP)
    arp_input(gw, gr->room, &e);
  else if (e.type == ETH_TYPE_IPV4)
    ipv4_input(gw, &pkt, &e);
  else if (e.type == ETH_TYPE_IPV6)
    gw_ip6_input(gw, &pkt, &e, to_us);
  else
    gw->ctr.other_ethertype++;
  return 0;
}

static const struct switch_port_ops gw_port_ops = {.deliver = gw_deliver};

/* ---- lifecycle ---- */

static void sweep(struct timer *t, uint64_t now)
{
  struct gateway *gw = container_of(t, struct gateway, sweep);
  nat_udp_sweep(gw, now);
  nat_fwd_sweep(gw, now);
  nat_icmp_sweep(gw, now);
  dns_fwd_sweep(gw, now);
  nat_share_sweep(gw, now);
  gw_ip6_sweep(gw, now);
  timer_arm(gw->timers, &gw->sweep, now + NS_PER_S);
}

/* The one flow table, sized from the three bounds (flowtab.h). */
static int nat_flows_init(struct gateway *gw)
{
  const uint32_t cap[FT_PROTOS] = {[FT_UDP] = gw->p.max_udp_flows,
                                   [FT_ICMP] = gw->p.max_icmp_flows,
                                   [FT_TCP] = gw->p.max_tcp_conns,
                                   [FT_DNS] = gw->p.max_dns_inflight};
  gw->flows = calloc(1, sizeof(*gw->flows));
  if (!gw->flows)
    return -ENOMEM;
  /* per-VM caps of echo ids and DNS queries are counted by the VM index;
   * UDP and TCP per VM by nat_share's accounts (with the per-client ones) */
  return flowtab_init(gw->flows, cap, (1u << FT_ICMP) | (1u << FT_DNS));
}

static void nat_flows_fini(struct gateway *gw)
{
  if (gw->flows)
    flowtab_fini(gw->flows);
  free(gw->flows);
  gw->flows = NULL;
}

int gateway_init(struct gateway *gw, const struct gateway_params *p, struct switch_table *sw,
                 struct io *io, struct timer_heap *timers, uint64_t *now,
                 const struct gateway_addr_ops *addr, void *addr_ctx)
{
  int rc;
  memset(gw, 0, sizeof(*gw));
  gw->p = *p;
  gw->sw = sw;
  gw->io = io;
  gw->timers = timers;
  gw->now = now;
  gw->addr = addr;
  gw->addr_ctx = addr_ctx;
  log_ratelimit_init(&gw->rl, NS_PER_S, 10);
  gw->rooms = calloc(p->max_rooms, sizeof(*gw->rooms));
  if (!gw->rooms)
    return -ENOMEM;
  timer_init(&gw->sweep, sweep); /* before anything gateway_fini may undo */
  if ((rc = nat_flows_init(gw)) < 0 || (rc = nat_share_init(gw)) < 0 ||
      (rc = nat_udp_init(gw)) < 0 || (rc = nat_icmp_init(gw)) < 0 || (rc = nat_tcp_init(gw)) < 0 ||
      (rc = dns_fwd_init(gw)) < 0 || (rc = nat_fwd_init(gw)) < 0) {
    gateway_fini(gw);
    return rc;
  }
  timer_arm(timers, &gw->sweep, *now + NS_PER_S);
  return 0;
}

void gateway_fini(struct gateway *gw)
{
  if (gw->timers)
    timer_disarm(gw->timers, &gw->sweep);
  nat_fwd_fini(gw); /* first: it closes its sockets; the TCP NAT then its connections */
  nat_udp_fini(gw);
  nat_icmp_fini(gw);
  nat_tcp_fini(gw);
  dns_fwd_fini(gw);
  nat_share_fini(gw); /* after the flows, which give their accounts back */
  nat_flows_fini(gw); /* last: the protocols' fini give their slots back */
  free(gw->rooms);
  gw->rooms = NULL;
}

uint16_t gateway_subnet6_id(const char *room_name)
{
  uint64_t h = 0x77747265u; /* FNV-1a over the name, then mixed */
  for (const unsigned char *c = (const unsigned char *)room_name; *c; c++)
    h = (h ^ *c) * UINT64_C(0x100000001b3);
  return (uint16_t)hash_mix64(h);
}

void gateway_room_prefix6(const struct gateway *gw, uint32_t room, uint8_t out[8])
{
  memcpy(out, gw->rooms[room].prefix6, 8);
}

int gateway_room_attach(struct gateway *gw, uint32_t room, uint16_t subnet6_id)
{
  if (room >= gw->p.max_rooms)
    return -EINVAL;
  struct gw_room *gr = &gw->rooms[room];
  if (gr->used)
    return 0;
  gr->gw = gw;
  gr->room = room;
  int rc = switch_port_attach(gw->sw, room, &gw_port_ops, gr, &gr->port);
  if (rc < 0)
    return rc;
  switch_port_set_addr(gw->sw, gr->port, gw->p.mac, gw->p.ip);
  /* the DNS address is the gateway's too: with uplinks, routed to it here
   * rather than to the other workers */
  switch_port_set_alias(gw->sw, gr->port, gw->p.dns_ip);
  if ((rc = switch_port_pin_mac(gw->sw, gr->port, gw->p.mac)) < 0) {
    switch_port_detach(gw->sw, gr->port);
    return rc;
  }
  /* its floods (DHCP answers, ARP) answer guests whose floods are limited */
  switch_port_flood_exempt(gw->sw, gr->port);
  gw_ip6_room_init(gw, room, subnet6_id);
  gr->used = true;
  return 0;
}

void gateway_room_detach(struct gateway *gw, uint32_t room)
{
  if (room >= gw->p.max_rooms || !gw->rooms[room].used)
    return;
  nat_udp_room_gone(gw, room);
  nat_fwd_room_gone(gw, room);
  nat_icmp_room_gone(gw, room);
  nat_tcp_room_gone(gw, room);
  switch_port_detach(gw->sw, gw->rooms[room].port);
  gw->rooms[room].used = false;
}

/* ---- counters ---- */

/* The gateway's counters for /metrics (metrics.c) and the exit log, in one
 * table: a field of struct gateway_counters without a row fails
 * test_gateway. */
#define G(fam, help, labels, line, key, field)                                                     \
  COUNTER_DEF(struct gateway_counters, fam, help, labels, line, key, field)
#define GW "gateway counters"
#define GW6 "gateway ipv6 counters"
#define NAT "nat counters"
#define TCP "tcp nat counters"
#define FWD "fwd counters"
#define SEC "nat security counters"
#define SHR "nat share counters"
#define DROP(reason, line, key, field)                                                             \
  G("wtrelay_gateway_drops_total", NULL, "reason=\"" reason "\"", line, key, field)
#define DNSD(reason, key, field)                                                                   \
  G("wtrelay_dns_dropped_total", NULL, "reason=\"" reason "\"", NAT, key, field)
#define NATR(reason, key, field)                                                                   \
  G("wtrelay_nat_refused_total", NULL, "reason=\"" reason "\"", SEC, key, field)
static const struct counter_def gateway_counter_defs[] = {
    G("wtrelay_gateway_frames_total", "frames to and from the gateway port", "dir=\"in\"", GW,
      "frames_in", frames_in),
    G("wtrelay_gateway_frames_total", NULL, "dir=\"out\"", GW, "frames_out", frames_out),
    G("wtrelay_gateway_answers_total", "answers from the gateway itself", "kind=\"arp\"", GW,
      "arp_replies", arp_replies),
    G("wtrelay_gateway_answers_total", NULL, "kind=\"echo\"", GW, "echo_replies", echo_replies),
    G("wtrelay_gateway_answers_total", NULL, "kind=\"dhcp_offer\"", GW, "offers", dhcp_offers),
    G("wtrelay_gateway_answers_total", NULL, "kind=\"dhcp_ack\"", GW, "acks", dhcp_acks),
    G("wtrelay_gateway_answers_total", NULL, "kind=\"dhcp_nak\"", GW, "naks", dhcp_naks),
    G("wtrelay_gateway_answers_total", NULL, "kind=\"router_advert\"", GW6, "ra_out", ip6_ra_out),
    G("wtrelay_gateway_answers_total", NULL, "kind=\"neighbor_advert\"", GW6, "na_out", ip6_na_out),
    G("wtrelay_gateway_answers_total", NULL, "kind=\"echo6\"", GW6, "echo_replies",
      ip6_echo_replies),
    G("wtrelay_gateway_arp_ignored_total",
      "ARP packets to the gateway port that ask for neither its address nor the DNS address", NULL,
      GW, "arp_ignored", arp_ignored),
    G("wtrelay_dhcp_messages_total", "DHCP messages received", NULL, GW, "dhcp_in", dhcp_in),
    G("wtrelay_dhcp_releases_total", "DHCP releases received", NULL, GW, "releases", dhcp_releases),
    G("wtrelay_gateway_drops_total", "packets the gateway dropped or refused",
      "reason=\"bad_ethernet\"", GW, "bad_eth", bad_eth),
    DROP("bad_ip", GW, "bad_ip", bad_ip),
    DROP("bad_l4", GW, "bad_l4", bad_l4),
    DROP("fragment", GW, "fragments", fragments),
    DROP("spoofed_ip", GW, "spoofed", spoofed),
    DROP("ttl_expired", GW, "ttl_expired", ttl_expired),
    DROP("egress_denied", GW, "denied", denied),
    DROP("other_protocol", GW, "other_proto", other_proto),
    DROP("no_such_host", GW, "no_port", no_port),
    DROP("other_ethertype", GW, "other_ethertype", other_ethertype),
    DROP("dhcp_bad", GW, "dhcp_bad", dhcp_bad),
    DROP("icmp_disabled", NAT, "icmp_disabled", icmp_disabled_drops),
    DROP("bad_ipv6", GW6, "bad", ip6_bad),
    DROP("bad_icmpv6", GW6, "bad_l4", ip6_bad_l4),
    DROP("bad_nd", GW6, "bad_nd", ip6_bad_nd),
    DROP("spoofed_ipv6", GW6, "spoofed", ip6_spoofed),
    DROP("ipv6_fragment", GW6, "fragments", ip6_fragments),
    DROP("ipv6_not_for_gateway", GW6, "ignored", ip6_ignored),
    DROP("ipv6_other_protocol", GW6, "other_proto", ip6_other_proto),
    DROP("ipv6_no_route", GW6, "no_route", ip6_no_route),
    DROP("ipv6_egress_denied", GW6, "denied", ip6_denied),
    DROP("ra_rate_limited", GW6, "ra_limited", ip6_ra_limited),
    DROP("ipv6_hop_limit_exceeded", GW6, "hlim_expired", ip6_hlim_expired),
    G("wtrelay_nat_ipv6_flows_opened_total",
      "NAT flows opened over IPv6 (NAT66; also counted in their protocol's totals)",
      "protocol=\"udp\"", GW6, "nat6_udp", nat6_udp_flows),
    G("wtrelay_nat_ipv6_flows_opened_total", NULL, "protocol=\"icmp\"", GW6, "nat6_icmp",
      nat6_icmp_flows),
    G("wtrelay_nat_ipv6_flows_opened_total", NULL, "protocol=\"tcp\"", GW6, "nat6_tcp",
      nat6_tcp_opened),
    G("wtrelay_gateway_ipv6_packets_total", "IPv6 packets the gateway port received", NULL, GW6,
      "in", ip6_in),
    G("wtrelay_gateway_ipv6_solicitations_total", "Router and Neighbor Solicitations received",
      "kind=\"router\"", GW6, "rs_in", ip6_rs_in),
    G("wtrelay_gateway_ipv6_solicitations_total", NULL, "kind=\"neighbor\"", GW6, "ns_in",
      ip6_ns_in),
    G("wtrelay_gateway_ipv6_unsolicited_ra_total",
      "periodic Router Advertisements (also in answers_total)", NULL, GW6, "ra_periodic",
      ip6_ra_periodic),
    G("wtrelay_nat_flows_opened_total", "NAT mappings opened", "protocol=\"udp\"", NAT,
      "udp_flows_opened", udp_flows_opened),
    G("wtrelay_nat_flows_opened_total", NULL, "protocol=\"icmp\"", NAT, "icmp_flows_opened",
      icmp_flows_opened),
    G("wtrelay_nat_flows_closed_total", "NAT mappings closed", "protocol=\"udp\"", NAT,
      "udp_flows_closed", udp_flows_closed),
    G("wtrelay_nat_flows_closed_total", NULL, "protocol=\"icmp\"", NAT, "icmp_flows_closed",
      icmp_flows_closed),
    G("wtrelay_nat_flows_refused_total", "NAT mappings refused: the table was full",
      "protocol=\"udp\"", NAT, "udp_flows_full", udp_flows_full),
    G("wtrelay_nat_flows_refused_total", NULL, "protocol=\"icmp\"", NAT, "icmp_flows_full",
      icmp_flows_full),
    G("wtrelay_nat_packets_total", "packets through the NAT", "protocol=\"udp\",dir=\"out\"", NAT,
      "udp_out", udp_out),
    G("wtrelay_nat_packets_total", NULL, "protocol=\"udp\",dir=\"in\"", NAT, "udp_in", udp_in),
    G("wtrelay_nat_packets_total", NULL, "protocol=\"icmp\",dir=\"out\"", NAT, "icmp_out",
      icmp_out),
    G("wtrelay_nat_packets_total", NULL, "protocol=\"icmp\",dir=\"in\"", NAT, "icmp_in", icmp_in),
    G("wtrelay_nat_packets_total", NULL, "protocol=\"icmp_error\",dir=\"in\"", NAT,
      "udp_icmp_errors", udp_icmp_errors),
    G("wtrelay_nat_send_failures_total", "NAT packets that could not be sent", NULL, NAT,
      "udp_send_failed", udp_send_failed),
    G("wtrelay_nat_udp_too_big_total",
      "UDP datagrams from the internet too big for a frame to the guest (dropped)", NULL, NAT,
      "udp_too_big", udp_too_big),
    G("wtrelay_nat_tcp_connections_opened_total", "TCP NAT connections opened by a guest's SYN",
      NULL, TCP, "tcp_opened", tcp_opened),
    G("wtrelay_nat_tcp_connections_established_total",
      "TCP NAT connections established with the host", NULL, TCP, "tcp_established",
      tcp_established),
    G("wtrelay_nat_tcp_connections_closed_total", "TCP NAT connections closed", NULL, TCP,
      "tcp_closed", tcp_closed),
    G("wtrelay_nat_tcp_connections_refused_total",
      "TCP NAT connections refused or reset for lack of resources: the table was full, no timer "
      "could be armed",
      "reason=\"table_full\"", TCP, "tcp_full", tcp_full),
    G("wtrelay_nat_tcp_connections_refused_total", NULL, "reason=\"no_timer\"", TCP, "tcp_no_timer",
      tcp_no_timer),
    G("wtrelay_nat_tcp_connects_failed_total",
      "TCP NAT connects to the internet that failed: refused by the host, or another error",
      "reason=\"refused\"", TCP, "tcp_refused", tcp_refused),
    G("wtrelay_nat_tcp_connects_failed_total", NULL, "reason=\"error\"", TCP, "tcp_connect_failed",
      tcp_connect_failed),
    G("wtrelay_nat_tcp_resets_total",
      "TCP NAT connections reset: by the guest (out), by the relay to the guest (in)",
      "dir=\"out\"", TCP, "tcp_rst_in", tcp_rst_in),
    G("wtrelay_nat_tcp_resets_total", NULL, "dir=\"in\"", TCP, "tcp_rst_out", tcp_rst_out),
    G("wtrelay_nat_tcp_host_errors_total", "TCP NAT connections ended by a socket error", NULL, TCP,
      "tcp_host_errors", tcp_host_errors),
    G("wtrelay_nat_tcp_idle_timeouts_total", "TCP NAT connections closed by the idle timeout", NULL,
      TCP, "tcp_idle_closed", tcp_idle_closed),
    G("wtrelay_nat_tcp_segments_total", "TCP segments from the guests (out) and to them (in)",
      "dir=\"out\"", TCP, "tcp_segs_in", tcp_segs_in),
    G("wtrelay_nat_tcp_segments_total", NULL, "dir=\"in\"", TCP, "tcp_segs_out", tcp_segs_out),
    G("wtrelay_nat_tcp_retransmits_total", "TCP segments retransmitted to the guests", NULL, TCP,
      "tcp_retransmits", tcp_retransmits),
    G("wtrelay_nat_tcp_tail_loss_probes_total", "TCP tail loss probes sent to the guests", NULL,
      TCP, "tcp_tail_probes", tcp_tail_probes),
    G("wtrelay_nat_tcp_out_of_order_segments_total", "TCP segments from the guests out of order",
      NULL, TCP, "tcp_out_of_order", tcp_out_of_order),
    G("wtrelay_nat_tcp_bytes_total",
      "TCP payload bytes through the NAT: to the internet (out), to the guests (in)", "dir=\"out\"",
      TCP, "tcp_bytes_out", tcp_bytes_out),
    G("wtrelay_nat_tcp_bytes_total", NULL, "dir=\"in\"", TCP, "tcp_bytes_in", tcp_bytes_in),
    G("wtrelay_forward_tcp_connections_accepted_total",
      "connections accepted on --forward TCP ports", NULL, FWD, "fwd_tcp_accepted",
      fwd_tcp_accepted),
    G("wtrelay_forward_tcp_connections_established_total",
      "forwarded TCP connections the guest answered (its SYN-ACK)", NULL, FWD,
      "fwd_tcp_established", fwd_tcp_established),
    G("wtrelay_forward_refused_total",
      "forwarded connections (tcp, reset to the remote) and datagrams (udp, dropped) refused: "
      "the VM is not connected, a bound, the guest refused or did not answer",
      "protocol=\"tcp\",reason=\"no_vm\"", FWD, "fwd_tcp_no_vm", fwd_tcp_no_vm),
    G("wtrelay_forward_refused_total", NULL, "protocol=\"tcp\",reason=\"full\"", FWD,
      "fwd_tcp_full", fwd_tcp_full),
    G("wtrelay_forward_refused_total", NULL, "protocol=\"tcp\",reason=\"vm_refused\"", FWD,
      "fwd_tcp_vm_refused", fwd_tcp_vm_refused),
    G("wtrelay_forward_refused_total", NULL, "protocol=\"udp\",reason=\"no_vm\"", FWD,
      "fwd_udp_no_vm", fwd_udp_no_vm),
    G("wtrelay_forward_refused_total", NULL, "protocol=\"udp\",reason=\"full\"", FWD,
      "fwd_udp_full", fwd_udp_full),
    G("wtrelay_forward_accept_errors_total", "accepts on a --forward TCP port that failed", NULL,
      FWD, "fwd_accept_errors", fwd_accept_errors),
    G("wtrelay_forward_handoffs_total",
      "forwarded connections and datagrams handed to another worker, whose LAN may hold the VM "
      "(passed), or not for a full control ring (failed: refused)",
      "result=\"passed\"", FWD, "fwd_passed", fwd_passed),
    G("wtrelay_forward_handoffs_total", NULL, "result=\"failed\"", FWD, "fwd_pass_failed",
      fwd_pass_failed),
    G("wtrelay_forward_udp_datagrams_total",
      "datagrams through --forward UDP ports: to the guests (in), from them (out)", "dir=\"in\"",
      FWD, "fwd_udp_in", fwd_udp_in),
    G("wtrelay_forward_udp_datagrams_total", NULL, "dir=\"out\"", FWD, "fwd_udp_out", fwd_udp_out),
    G("wtrelay_forward_udp_mappings_opened_total",
      "mappings of --forward UDP ports opened (one per remote address and port)", NULL, FWD,
      "fwd_udp_opened", fwd_udp_opened),
    G("wtrelay_forward_udp_mappings_closed_total",
      "mappings of --forward UDP ports closed (idle, the forward or the room gone)", NULL, FWD,
      "fwd_udp_closed", fwd_udp_closed),
    G("wtrelay_nat_share_refusals_total",
      "new NAT flows refused by a fair share (per client, per VM) or the rate of new flows",
      "reason=\"udp_per_client\"", SHR, "udp_per_client", share_udp_client),
    G("wtrelay_nat_share_refusals_total", NULL, "reason=\"tcp_per_client\"", SHR, "tcp_per_client",
      share_tcp_client),
    G("wtrelay_nat_share_refusals_total", NULL, "reason=\"tcp_pending_per_client\"", SHR,
      "tcp_pending_per_client", share_pending_client),
    G("wtrelay_nat_share_refusals_total", NULL, "reason=\"tcp_pending_per_vm\"", SHR,
      "tcp_pending_per_vm", share_pending_vm),
    G("wtrelay_nat_share_refusals_total", NULL, "reason=\"rate_udp\"", SHR, "rate_udp",
      rate_limited[NAT_SHARE_P_UDP]),
    G("wtrelay_nat_share_refusals_total", NULL, "reason=\"rate_tcp\"", SHR, "rate_tcp",
      rate_limited[NAT_SHARE_P_TCP]),
    G("wtrelay_nat_share_refusals_total", NULL, "reason=\"rate_icmp\"", SHR, "rate_icmp",
      rate_limited[NAT_SHARE_P_ICMP]),
    G("wtrelay_nat_share_refusals_total", NULL, "reason=\"account_table_full\"", SHR,
      "account_table_full", share_table_full),
    G("wtrelay_nat_share_vm_accounts_reused_total",
      "idle per-VM accounts reused while their new-flow bucket was still refilling", NULL, SHR,
      "vm_accounts_reused", share_vm_evicted),
    G("wtrelay_dns_queries_total", "DNS queries from the guests to the forwarder", NULL, NAT,
      "dns_queries", dns_queries),
    G("wtrelay_dns_answers_total", "DNS answers forwarded to the guests", NULL, NAT, "dns_answers",
      dns_answers),
    G("wtrelay_dns_dropped_total",
      "DNS queries or answers not forwarded: no answer in time, no free query slot, malformed or "
      "not from the upstream, matching no query, no upstream",
      "reason=\"timeout\"", NAT, "dns_timeouts", dns_timeouts),
    DNSD("full", "dns_full", dns_full),
    DNSD("bad", "dns_bad", dns_bad),
    DNSD("unmatched", "dns_unmatched", dns_unmatched),
    DNSD("no_upstream", "dns_no_upstream", dns_no_upstream),
    G("wtrelay_nat_refused_total",
      "NAT packets refused: filtered (not from the mapping's peer), to the relay's own "
      "addresses, the VM's share of DNS queries or echo ids full, no DNS socket",
      "reason=\"udp_filtered\"", SEC, "udp_filtered", udp_filtered),
    NATR("local", "local_refused", local_refused),
    NATR("dns_vm_full", "dns_vm_full", dns_vm_full),
    NATR("dns_socket_failed", "dns_sock_failed", dns_sock_failed),
    NATR("icmp_vm_full", "icmp_vm_full", icmp_vm_full),
    G("wtrelay_nat_udp_peers_replaced_total",
      "UDP NAT mappings whose peer was replaced (the guest talked to another peer)", NULL, SEC,
      "udp_peers_replaced", udp_peers_replaced),
};
#undef NATR
#undef DNSD
#undef DROP
#undef SHR
#undef SEC
#undef TCP
#undef FWD
#undef NAT
#undef GW
#undef GW6
#undef G

const struct counter_table gateway_counter_table =
    COUNTER_TABLE(gateway_counter_defs, struct gateway_counters);
