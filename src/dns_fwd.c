/*
 * dns_fwd: the DNS forwarder at 10.0.2.3.
 *
 * Guest queries (UDP to 10.0.2.3:53) go to the host's resolvers
 * (/etc/resolv.conf, or --dns-upstream) from one socket on the worker's
 * ring, round robin. Each query in flight holds a slot of a bounded table
 * (--max-dns-inflight, a power of two); its upstream id is the slot number
 * in the low bits and random high bits, so answers find their slot at once,
 * and an answer counts only when its id, its question (name, type, class;
 * case-insensitive) and its source (one of the upstreams) all match. The
 * guest's own id is restored and the answer goes back from 10.0.2.3:53 to
 * the guest's address and port. Queries time out (--dns-timeout) and are
 * dropped with a counter: the guest's resolver retries. A full table drops
 * the query. Upstreams are the operator's choice and are not subject to the
 * guests' egress policy.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "wtrelay/gateway.h"

int dns_fwd_load_resolv_conf(struct gateway_params *p, const char *path)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return -errno;
  char line[512], addr[256];
  while (fgets(line, sizeof(line), f) && p->nupstreams < GW_MAX_UPSTREAMS) {
    if (sscanf(line, " nameserver %255s", addr) != 1)
      continue;
    char *pct = strchr(addr, '%'); /* fe80::1%eth0: scope ids are not supported */
    if (pct)
      continue;
    if (io_sockaddr_parse(addr, 53, &p->upstream[p->nupstreams], &p->upstream_len[p->nupstreams]) ==
        0)
      p->nupstreams++;
  }
  fclose(f);
  return (int)p->nupstreams;
}

static bool upstream_known(const struct gateway *gw, const union io_sockaddr *a)
{
  for (uint32_t i = 0; i < gw->p.nupstreams; i++) {
    const union io_sockaddr *u = &gw->p.upstream[i];
    if (io_sockaddr_equal(u, a))
      return true;
    /* an IPv4 upstream answers on the dual-stack socket as ::ffff:a.b.c.d */
    if (u->sa.sa_family == AF_INET && a->sa.sa_family == AF_INET6 &&
        IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr) && u->in.sin_port == a->in6.sin6_port &&
        memcmp(&a->in6.sin6_addr.s6_addr[12], &u->in.sin_addr, 4) == 0)
      return true;
  }
  return false;
}

static void answer_recv(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                        const union io_sockaddr *peer, socklen_t peerlen,
                        const struct io_local *local)
{
  struct gateway *gw = ctx;
  struct dns_question q;
  (void)s;
  (void)peerlen;
  (void)local;
  if (!upstream_known(gw, peer) || dns_parse_question(pkt, len, &q) < 0 || !dns_is_response(&q)) {
    gw->ctr.dns_bad++;
    return;
  }
  uint32_t slot = q.id & (gw->p.max_dns_inflight - 1);
  struct dns_pending *d = &gw->dns[slot];
  if (!d->used || d->q.id != q.id || !dns_same_question(&d->q, &q)) {
    gw->ctr.dns_unmatched++;
    return;
  }
  dns_set_id(pkt, d->guest_id);
  struct net_l2 l2 = {.dst_mac = d->guest_mac, .src_mac = gw->p.mac};
  int n = net_build_udp(gw->out, sizeof(gw->out), &l2, gw->p.dns_ip, d->guest_ip, 53, d->guest_port,
                        pkt, len, gw_next_id(gw));
  d->used = false;
  gw->dns_inflight--;
  if (n < 0) {
    /* larger than a frame: the guest retries over TCP (TC is the upstream's
     * business; we cannot fragment) */
    gw->ctr.dns_bad++;
    return;
  }
  gw->ctr.dns_answers++;
  gw_emit(gw, d->room, (size_t)n);
}

int dns_fwd_init(struct gateway *gw)
{
  uint32_t m = gw->p.max_dns_inflight;
  if (m == 0 || (m & (m - 1)) || m > 32768)
    return -EINVAL;
  gw->dns = calloc(m, sizeof(*gw->dns));
  if (!gw->dns)
    return -ENOMEM;
  if (gw->p.nupstreams == 0) {
    log_warn("DNS forwarder has no upstream: guests' queries to the DNS address fail",
             "fix=\"--dns-upstream ADDR or a nameserver in /etc/resolv.conf\"");
    return 0;
  }
  struct io_udp_opts o = {.bind_addr = "::", .port = 0, .bufsize = 1 << 20};
  int rc = io_udp_open_ex(gw->io, &o, answer_recv, gw, &gw->dns_sock);
  if (rc < 0) {
    o.bind_addr = "0.0.0.0"; /* no IPv6 on this host */
    rc = io_udp_open_ex(gw->io, &o, answer_recv, gw, &gw->dns_sock);
  }
  return rc;
}

void dns_fwd_fini(struct gateway *gw)
{
  if (gw->dns_sock)
    io_udp_close(gw->io, gw->dns_sock);
  gw->dns_sock = NULL;
  free(gw->dns);
  gw->dns = NULL;
}

void dns_fwd_input(struct gateway *gw, const struct gw_pkt *pkt, const struct net_udp *u)
{
  struct dns_question q;
  gw->ctr.dns_queries++;
  if (dns_parse_question(u->payload, u->len, &q) < 0 || dns_is_response(&q)) {
    gw->ctr.dns_bad++;
    return;
  }
  if (!gw->dns_sock) {
    gw->ctr.dns_no_upstream++;
    gw_icmp_error(gw, pkt, ICMP_UNREACH, ICMP_UNREACH_PORT);
    return;
  }
  uint32_t m = gw->p.max_dns_inflight, slot = UINT32_MAX;
  for (uint32_t k = 0; k < m; k++) {
    uint32_t i = (gw->dns_next + k) & (m - 1);
    if (!gw->dns[i].used) {
      slot = i;
      break;
    }
  }
  if (slot == UINT32_MAX) {
    gw->ctr.dns_full++;
    return;
  }
  gw->dns_next = slot + 1;
  uint16_t r;
  if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
    r = gw_next_id(gw);
  uint16_t id = (uint16_t)((r & ~(m - 1)) | slot);
  const union io_sockaddr *up = &gw->p.upstream[gw->dns_rr++ % gw->p.nupstreams];
  socklen_t uplen = up->sa.sa_family == AF_INET ? sizeof(up->in) : sizeof(up->in6);
  union io_sockaddr dst = *up;
  if (up->sa.sa_family == AF_INET && gw->dns_sock->family == AF_INET6) {
    /* the dual-stack socket reaches IPv4 as ::ffff:a.b.c.d */
    memset(&dst, 0, sizeof(dst));
    dst.in6.sin6_family = AF_INET6;
    dst.in6.sin6_port = up->in.sin_port;
    dst.in6.sin6_addr.s6_addr[10] = dst.in6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&dst.in6.sin6_addr.s6_addr[12], &up->in.sin_addr, 4);
    uplen = sizeof(dst.in6);
  }
  uint8_t *buf = io_tx_reserve(gw->io, u->len);
  if (!buf) {
    gw->ctr.dns_full++;
    return;
  }
  memcpy(buf, u->payload, u->len);
  dns_set_id(buf, id);
  io_tx_commit(gw->io, u->len, gw->dns_sock, &dst, uplen, NULL);
  struct dns_pending *d = &gw->dns[slot];
  d->used = true;
  d->room = pkt->room;
  d->guest_ip = pkt->ip.src;
  d->guest_port = u->sport;
  d->guest_id = q.id;
  memcpy(d->guest_mac, pkt->src_mac, 6);
  d->deadline_ns = *gw->now + gw->p.dns_timeout_ns;
  d->q = q;
  d->q.id = id;
  gw->dns_inflight++;
}

void dns_fwd_sweep(struct gateway *gw, uint64_t now)
{
  for (uint32_t i = 0; gw->dns && i < gw->p.max_dns_inflight; i++) {
    struct dns_pending *d = &gw->dns[i];
    if (d->used && now >= d->deadline_ns) {
      d->used = false;
      gw->dns_inflight--;
      gw->ctr.dns_timeouts++;
    }
  }
}
