/*
 * nat_udp: guest UDP to the internet through ordinary host sockets.
 *
 * One host UDP socket per guest (room, IP, port) mapping, bound to an
 * ephemeral port, read by a multishot recvmsg on the worker's ring; the
 * mapping's key, slot and last use are in the NAT's flow table (flowtab.h,
 * FT_UDP), its state in gw->udp at the same slot. So two
 * guests that use the same source port never see each other's answers
 * (the seed shared one socket among all VMs). A guest datagram is sent
 * from the flow's socket to its destination (egress policy already
 * checked); a datagram that comes back on that socket is rebuilt as an
 * Ethernet/IPv4/UDP frame from the remote address to the guest. Flows end
 * after --udp-timeout seconds without a datagram from the guest. Bounds:
 * flows in all, per guest and per client, and the guest's rate of new
 * flows (nat_share.c); a refused flow is counted and the guest gets ICMP
 * "communication administratively prohibited" (type 3 code 13), as from a
 * router's filter.
 *
 * Filtering (RFC 4787 REQ-8, address- and port-dependent): the mapping
 * remembers the last NAT_UDP_PEERS remote endpoints (address and port) the
 * guest sent to through it; a datagram from any other endpoint is dropped
 * and counted (udp_filtered). The socket is never connect()ed (a mapping
 * may talk to several endpoints); the source address that the multishot
 * recvmsg reports is checked instead. Only the guest's datagrams refresh
 * the mapping: inbound traffic cannot keep a mapping alive, so a remote
 * host cannot hold a socket (and a slot of the guest's share) open.
 *
 * IPv6 (NAT66, nat6.c): the same, with an AF_INET6 socket per mapping and
 * addresses held as union inany (the key, the peers); the mapping's family
 * is its guest address's.
 *
 * ICMP errors the host receives for a flow (port unreachable, host
 * unreachable, fragmentation needed, ICMPv6 unreachable and packet too
 * big...) are reported through IP_RECVERR / IPV6_RECVERR:
 * the failed receive calls flow_error(), which drains the socket's error
 * queue (a plain non-blocking recvmsg(MSG_ERRQUEUE): the one synchronous
 * socket call of the NAT, on the error path only) and sends the guest the
 * same ICMP error about the datagram it sent.
 */
#include <errno.h>
#include <time.h> /* before linux/errqueue.h, which uses struct timespec */

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway_internal.h"

/* A mapping is endpoint-independent (RFC 4787 REQ-1): its key is the
 * guest's (room, address, port) alone. */
static struct ft_key flow_key(uint32_t room, const union inany *ip, uint16_t port)
{
  return (struct ft_key){.proto = FT_UDP, .room = room, .vip = *ip, .vport = port};
}

int nat_udp_init(struct gateway *gw)
{
  gw->udp = calloc(gw->p.max_udp_flows ? gw->p.max_udp_flows : 1, sizeof(*gw->udp));
  if (!gw->udp)
    return -ENOMEM;
  return 0;
}

static void flow_close(struct gateway *gw, struct nat_udp_flow *f)
{
  if (!f->used)
    return;
  flowtab_free(gw->flows, FT_UDP, (uint32_t)(f - gw->udp));
  if (f->sock)
    io_udp_close(gw->io, f->sock);
  f->sock = NULL;
  f->used = false;
  nat_share_release(gw, NAT_SHARE_P_UDP, f->client, f->room, &f->guest_ip, false);
  gw->nudp--;
  gw->ctr.udp_flows_closed++;
}

void nat_udp_fini(struct gateway *gw)
{
  for (uint32_t i = 0; gw->udp && i < gw->p.max_udp_flows; i++)
    flow_close(gw, &gw->udp[i]);
  free(gw->udp);
  gw->udp = NULL;
}

bool nat_udp_peer_allowed(const struct nat_udp_flow *f, const union inany *ip, uint16_t port)
{
  for (uint32_t i = 0; i < f->npeers; i++)
    if (f->peers[i].port == port && inany_eq(&f->peers[i].ip, ip))
      return true;
  return false;
}

bool nat_udp_peer_note(struct nat_udp_flow *f, const union inany *ip, uint16_t port, uint64_t now)
{
  struct nat_udp_peer *lru = NULL;
  for (uint32_t i = 0; i < f->npeers; i++) {
    struct nat_udp_peer *p = &f->peers[i];
    if (p->port == port && inany_eq(&p->ip, ip)) {
      p->last_ns = now;
      return false;
    }
    if (!lru || p->last_ns < lru->last_ns)
      lru = p;
  }
  bool replaced = f->npeers >= NAT_UDP_PEERS;
  struct nat_udp_peer *p = replaced ? lru : &f->peers[f->npeers++];
  *p = (struct nat_udp_peer){.ip = *ip, .port = port, .last_ns = now};
  return replaced;
}

/* host -> guest */
static void flow_recv(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                      const union io_sockaddr *peer, socklen_t peerlen,
                      const struct io_local *local)
{
  struct nat_udp_flow *f = ctx;
  struct gateway *gw = f->gw;
  (void)s;
  (void)peerlen;
  (void)local;
  union inany from;
  uint16_t port;
  if (!f->used || !gw_sockaddr_get(peer, &from, &port))
    return;
  if (!nat_udp_peer_allowed(f, &from, port)) {
    gw->ctr.udp_filtered++;
    gw_log(gw, "UDP NAT datagram dropped", "from an endpoint the guest has not sent to");
    return;
  }
  struct net_l2 l2 = {.dst_mac = f->guest_mac, .src_mac = gw->p.mac};
  int n = gw_build_udp(gw, gw->out, sizeof(gw->out), &l2, &from, &f->guest_ip, port, f->guest_port,
                       pkt, len);
  if (n < 0) {
    gw->ctr.udp_too_big++;
    return;
  }
  gw->ctr.udp_in++;
  gw_emit(gw, f->room, (size_t)n);
}

/* Error queue -> ICMP(v6) error toward the guest, quoting a datagram
 * shaped like the one the guest sent (its address and port to the
 * destination). IPv4 flows read IP_RECVERR (ICMP), IPv6 ones IPV6_RECVERR
 * (ICMPv6: destination unreachable, packet too big with the path MTU). */
static void flow_error(void *ctx, struct io_udp_sock *s, int err)
{
  struct nat_udp_flow *f = ctx;
  struct gateway *gw = f->gw;
  (void)err;
  for (int n = 0; n < 8 && f->used; n++) {
    union io_sockaddr dst;
    uint8_t data[64];
    union {
      char buf[512];
      struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
    struct msghdr m = {.msg_name = &dst,
                       .msg_namelen = sizeof(dst),
                       .msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = ctl.buf,
                       .msg_controllen = sizeof(ctl.buf)};
    if (recvmsg(s->fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
      return;
    union inany to;
    uint16_t dport;
    if (!gw_sockaddr_get(&dst, &to, &dport))
      continue;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
      if (!v6 && (c->cmsg_level != IPPROTO_IP || c->cmsg_type != IP_RECVERR))
        continue;
      struct sock_extended_err ee;
      memcpy(&ee, CMSG_DATA(c), sizeof(ee));
      if (ee.ee_origin != (v6 ? SO_EE_ORIGIN_ICMP6 : SO_EE_ORIGIN_ICMP) ||
          v6 == inany_is4(&f->guest_ip))
        continue;
      /* the reporting router (SO_EE_OFFENDER), else the destination */
      union io_sockaddr off;
      size_t offlen = c->cmsg_len - CMSG_LEN(sizeof(ee));
      memset(&off, 0, sizeof(off));
      memcpy(&off, (const uint8_t *)CMSG_DATA(c) + sizeof(ee),
             offlen < sizeof(off) ? offlen : sizeof(off));
      union inany from;
      uint16_t unused;
      if (!gw_sockaddr_get(&off, &from, &unused) || inany_is4(&from) != inany_is4(&to))
        from = to;
      /* the quoted original: guest -> destination, UDP, no payload */
      uint8_t orig[ETH_HDR + IPV6_HDR + UDP_HDR];
      struct net_l2 l2o = {.dst_mac = gw->p.mac, .src_mac = f->guest_mac};
      int olen = gw_build_udp(gw, orig, sizeof(orig), &l2o, &f->guest_ip, &to, f->guest_port, dport,
                              NULL, 0);
      if (olen > ETH_HDR)
        gw_relay_error(gw, f->room, f->guest_mac, v6, ee.ee_type, ee.ee_code, ee.ee_info, &from,
                       orig + ETH_HDR, (size_t)olen - ETH_HDR, &gw->ctr.udp_icmp_errors);
    }
  }
}

/* The guest's mapping for (room, source address, sport), opened when it
 * has none. *slot = its slot in gw->udp and the flow table. */
static struct nat_udp_flow *flow_get(struct gateway *gw, const struct gw_pkt *pkt, uint16_t sport,
                                     uint32_t *slot)
{
  union inany src = gw_pkt_src(pkt);
  struct ft_key k = flow_key(pkt->room, &src, sport);
  uint32_t i = flowtab_lookup(gw->flows, &k);
  if (i != FT_NONE) {
    *slot = i;
    return &gw->udp[i];
  }
  /* the slot first (a full table is refused before any account is
   * taken), then the per-VM and per-client caps and the VM's rate of new
   * flows (nat_share.c), then the host socket */
  if (flowtab_insert(gw->flows, &k, *gw->now, &i) < 0) {
    gw->ctr.udp_flows_full++;
    gw_log(gw, "UDP NAT flow refused", "flow table full (--max-udp-flows)");
    gw_icmp_error(gw, pkt, ICMP_UNREACH, ICMP_UNREACH_ADMIN);
    return NULL;
  }
  uint64_t client;
  if (nat_share_admit(gw, pkt, NAT_SHARE_P_UDP, &client) < 0) {
    flowtab_free(gw->flows, FT_UDP, i);
    gw_icmp_error(gw, pkt, ICMP_UNREACH, ICMP_UNREACH_ADMIN);
    return NULL;
  }
  struct nat_udp_flow *f = &gw->udp[i];
  memset(f, 0, sizeof(*f));
  f->gw = gw;
  struct io_udp_opts o = {
      .bind_addr = pkt->ip6 ? "::" : "0.0.0.0", .port = 0, .recverr = true, .on_err = flow_error};
  int rc = io_udp_open_ex(gw->io, &o, flow_recv, f, &f->sock);
  if (rc < 0) {
    flowtab_free(gw->flows, FT_UDP, i);
    nat_share_release(gw, NAT_SHARE_P_UDP, client, pkt->room, &src, false);
    gw->ctr.udp_flows_full++;
    gw_log(gw, "UDP NAT flow refused", "cannot open a host socket (fd limit?)");
    return NULL;
  }
  f->used = true;
  f->client = client;
  f->room = pkt->room;
  f->guest_ip = src;
  f->guest_port = sport;
  memcpy(f->guest_mac, pkt->src_mac, 6);
  gw->nudp++;
  gw->ctr.udp_flows_opened++;
  gw->ctr.nat6_udp_flows += pkt->ip6 != NULL;
  *slot = i;
  return f;
}

/* guest -> host */
void nat_udp_input(struct gateway *gw, const struct gw_pkt *pkt, const struct net_udp *u)
{
  if (u->dport == 0) {
    gw->ctr.bad_l4++;
    return;
  }
  uint32_t slot;
  struct nat_udp_flow *f = flow_get(gw, pkt, u->sport, &slot);
  if (!f)
    return;
  flowtab_touch(gw->flows, FT_UDP, slot, *gw->now);
  memcpy(f->guest_mac, pkt->src_mac, 6);
  union inany to = gw_pkt_dst(pkt);
  if (nat_udp_peer_note(f, &to, u->dport, *gw->now))
    gw->ctr.udp_peers_replaced++;
  uint8_t *buf = io_tx_reserve(gw->io, u->len ? u->len : 1);
  if (!buf) {
    gw->ctr.udp_send_failed++;
    return;
  }
  memcpy(buf, u->payload, u->len);
  union io_sockaddr dst;
  socklen_t dlen = gw_sockaddr(&dst, &to, u->dport);
  io_tx_commit(gw->io, u->len, f->sock, &dst, dlen, NULL);
  gw->ctr.udp_out++;
}

/* From the least recently used mapping on, while they have expired: a
 * sweep looks at the mappings it closes and one more. */
void nat_udp_sweep(struct gateway *gw, uint64_t now)
{
  for (uint32_t i; (i = flowtab_oldest(gw->flows, FT_UDP)) != FT_NONE;) {
    if (now - flowtab_last(gw->flows, FT_UDP, i) < gw->p.udp_timeout_ns)
      break;
    if (!gw->udp[i].used) {
      flowtab_free(gw->flows, FT_UDP, i); /* cannot happen: a slot without its flow */
      continue;
    }
    flow_close(gw, &gw->udp[i]);
  }
}

void nat_udp_room_gone(struct gateway *gw, uint32_t room)
{
  for (uint32_t i = 0; i < gw->p.max_udp_flows; i++)
    if (gw->udp[i].used && gw->udp[i].room == room)
      flow_close(gw, &gw->udp[i]);
}
