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
#include "wtrelay/dhcp.h"
#include "wtrelay/iov.h"
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
  if (room >= gw->p.max_rooms || !gw->rooms[room].used)
    return;
  struct iovec iov = {.iov_base = gw->out, .iov_len = len};
  struct switch_frame f = {.iov = &iov, .iovcnt = 1, .len = len};
  gw->ctr.frames_out++;
  switch_input(gw->sw, gw->rooms[room].port, &f, *gw->now);
}

void gw_icmp_error(struct gateway *gw, const struct gw_pkt *pkt, uint8_t type, uint8_t code)
{
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
  return 0;
}

static const struct switch_port_ops gw_port_ops = {.deliver = gw_deliver};

/* ---- lifecycle ---- */

static void sweep(struct timer *t, uint64_t now)
{
  struct gateway *gw = container_of(t, struct gateway, sweep);
  nat_udp_sweep(gw, now);
  nat_icmp_sweep(gw, now);
  dns_fwd_sweep(gw, now);
  nat_share_sweep(gw, now);
  timer_arm(gw->timers, &gw->sweep, now + NS_PER_S);
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
  if ((rc = nat_share_init(gw)) < 0 || (rc = nat_udp_init(gw)) < 0 ||
      (rc = nat_icmp_init(gw)) < 0 || (rc = nat_tcp_init(gw)) < 0 || (rc = dns_fwd_init(gw)) < 0) {
    gateway_fini(gw);
    return rc;
  }
  timer_init(&gw->sweep, sweep);
  timer_arm(timers, &gw->sweep, *now + NS_PER_S);
  return 0;
}

void gateway_fini(struct gateway *gw)
{
  if (gw->timers)
    timer_disarm(gw->timers, &gw->sweep);
  nat_udp_fini(gw);
  nat_icmp_fini(gw);
  nat_tcp_fini(gw);
  dns_fwd_fini(gw);
  nat_share_fini(gw); /* after the flows, which give their accounts back */
  free(gw->rooms);
  gw->rooms = NULL;
}

int gateway_room_attach(struct gateway *gw, uint32_t room)
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
  if ((rc = switch_port_pin_mac(gw->sw, gr->port, gw->p.mac)) < 0) {
    switch_port_detach(gw->sw, gr->port);
    return rc;
  }
  /* its floods (DHCP answers, ARP) answer guests whose floods are limited */
  switch_port_flood_exempt(gw->sw, gr->port);
  gr->used = true;
  return 0;
}

void gateway_room_detach(struct gateway *gw, uint32_t room)
{
  if (room >= gw->p.max_rooms || !gw->rooms[room].used)
    return;
  nat_udp_room_gone(gw, room);
  nat_icmp_room_gone(gw, room);
  nat_tcp_room_gone(gw, room);
  switch_port_detach(gw->sw, gw->rooms[room].port);
  gw->rooms[room].used = false;
}

void gateway_log_counters(const struct gateway *gw)
{
  const struct gateway_counters *c = &gw->ctr;
#define U(x) ((unsigned long long)(x))
  log_info("gateway counters",
           "frames_in=%llu frames_out=%llu arp_replies=%llu echo_replies=%llu dhcp_in=%llu "
           "offers=%llu acks=%llu naks=%llu releases=%llu dhcp_bad=%llu bad_ip=%llu "
           "spoofed=%llu fragments=%llu denied=%llu ttl_expired=%llu",
           U(c->frames_in), U(c->frames_out), U(c->arp_replies), U(c->echo_replies), U(c->dhcp_in),
           U(c->dhcp_offers), U(c->dhcp_acks), U(c->dhcp_naks), U(c->dhcp_releases), U(c->dhcp_bad),
           U(c->bad_ip), U(c->spoofed), U(c->fragments), U(c->denied), U(c->ttl_expired));
  log_info("nat counters",
           "udp_flows_opened=%llu udp_flows_closed=%llu udp_flows_full=%llu udp_out=%llu "
           "udp_in=%llu udp_send_failed=%llu udp_icmp_errors=%llu icmp_flows_opened=%llu "
           "icmp_flows_full=%llu "
           "icmp_out=%llu icmp_in=%llu icmp_disabled=%llu dns_queries=%llu dns_answers=%llu "
           "dns_timeouts=%llu dns_full=%llu dns_bad=%llu dns_unmatched=%llu",
           U(c->udp_flows_opened), U(c->udp_flows_closed), U(c->udp_flows_full), U(c->udp_out),
           U(c->udp_in), U(c->udp_send_failed), U(c->udp_icmp_errors), U(c->icmp_flows_opened),
           U(c->icmp_flows_full), U(c->icmp_out), U(c->icmp_in), U(c->icmp_disabled_drops),
           U(c->dns_queries), U(c->dns_answers), U(c->dns_timeouts), U(c->dns_full), U(c->dns_bad),
           U(c->dns_unmatched));
  log_info("tcp nat counters",
           "tcp_opened=%llu tcp_established=%llu tcp_closed=%llu tcp_full=%llu tcp_refused=%llu "
           "tcp_connect_failed=%llu tcp_rst_in=%llu tcp_rst_out=%llu tcp_segs_in=%llu "
           "tcp_segs_out=%llu tcp_bytes_in=%llu tcp_bytes_out=%llu tcp_retransmits=%llu "
           "tcp_out_of_order=%llu tcp_host_errors=%llu tcp_idle_closed=%llu tcp_tail_probes=%llu",
           U(c->tcp_opened), U(c->tcp_established), U(c->tcp_closed), U(c->tcp_full),
           U(c->tcp_refused), U(c->tcp_connect_failed), U(c->tcp_rst_in), U(c->tcp_rst_out),
           U(c->tcp_segs_in), U(c->tcp_segs_out), U(c->tcp_bytes_in), U(c->tcp_bytes_out),
           U(c->tcp_retransmits), U(c->tcp_out_of_order), U(c->tcp_host_errors),
           U(c->tcp_idle_closed), U(c->tcp_tail_probes));
  log_info("nat security counters",
           "udp_filtered=%llu udp_peers_replaced=%llu local_refused=%llu dns_vm_full=%llu "
           "dns_sock_failed=%llu icmp_vm_full=%llu",
           U(c->udp_filtered), U(c->udp_peers_replaced), U(c->local_refused), U(c->dns_vm_full),
           U(c->dns_sock_failed), U(c->icmp_vm_full));
  log_info("nat share counters",
           "udp_per_client=%llu tcp_per_client=%llu tcp_pending_per_client=%llu "
           "tcp_pending_per_vm=%llu rate_udp=%llu rate_tcp=%llu rate_icmp=%llu "
           "account_table_full=%llu vm_accounts_reused=%llu",
           U(c->share_udp_client), U(c->share_tcp_client), U(c->share_pending_client),
           U(c->share_pending_vm), U(c->rate_limited[NAT_SHARE_P_UDP]),
           U(c->rate_limited[NAT_SHARE_P_TCP]), U(c->rate_limited[NAT_SHARE_P_ICMP]),
           U(c->share_table_full), U(c->share_vm_evicted));
#undef U
}
