/*
 * dns_fwd: the DNS forwarder at 10.0.2.3.
 *
 * Guest queries (UDP to 10.0.2.3:53) go to the host's resolvers
 * (/etc/resolv.conf, or --dns-upstream), round robin. Each query in flight
 * holds a slot of a bounded table (--max-dns-inflight) and, following
 * RFC 5452 (resilience against forged answers), gets
 *   - a fresh random 16-bit id (rng_fill), not derived from the slot;
 *   - a socket of its own, bound to an ephemeral port that the kernel picks
 *     at random from the local port range, opened for this query and
 *     closed when it is answered or times out; so both the id and the
 *     source port of every query are unpredictable (about 16 + 15 bits for
 *     a blind forger to guess instead of 16).
 * An answer counts only when it arrives on that query's socket, from the
 * exact address and port the query went to, with the query's id and its
 * question (name, type, class; case-insensitive). The guest's own id is
 * restored and the answer goes back from 10.0.2.3:53 to the guest's
 * address and port. Queries time out (--dns-timeout) and are dropped with
 * a counter: the guest's resolver retries.
 *
 * Queries in flight are entries of the NAT's flow table (flowtab.h,
 * FT_DNS; the slot indexes gw->dns), keyed by the guest's (room, address,
 * port), its query id and our random id: a free slot without a search
 * (the one freed longest ago: a late answer to an old query meets a fresh
 * socket rarely), expiry from the oldest query on (every query has the
 * same timeout, so insertion order is deadline order), and the VM's count
 * from the table's VM index. An answer needs no lookup: it arrives on the
 * query's own socket, whose context is the slot.
 *
 * Shares: a VM (room, address) holds at most --max-dns-inflight-per-vm
 * slots; a query beyond its share is answered SERVFAIL at once (counted,
 * dns_vm_full) and never takes or evicts another VM's slot, so a VM that
 * floods unanswerable queries cannot starve the others' DNS. A full table
 * drops the query (dns_full); a socket that cannot be opened (descriptor
 * limit) too (dns_sock_failed). Upstreams are the operator's choice and are
 * not subject to the guests' egress policy.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway_internal.h"

#include "wtrelay/net6.h"

#include "wtrelay/rng.h"

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

/* The exact address and port the query was sent to. */
static bool from_upstream(const union io_sockaddr *up, const union io_sockaddr *a)
{
  if (up->sa.sa_family != a->sa.sa_family)
    return false;
  if (up->sa.sa_family == AF_INET)
    return up->in.sin_port == a->in.sin_port && up->in.sin_addr.s_addr == a->in.sin_addr.s_addr;
  return up->in6.sin6_port == a->in6.sin6_port &&
         memcmp(&up->in6.sin6_addr, &a->in6.sin6_addr, sizeof(a->in6.sin6_addr)) == 0;
}

static void slot_free(struct gateway *gw, struct dns_pending *d)
{
  if (!d->used)
    return;
  flowtab_free(gw->flows, FT_DNS, (uint32_t)(d - gw->dns));
  if (d->sock)
    io_udp_close(gw->io, d->sock);
  d->sock = NULL;
  d->used = false;
  gw->dns_inflight--;
}

/* A DNS message from the forwarder's address to the guest (IPv4 or IPv6,
 * from the address it asked); 0 or -ENOSPC (larger than a frame). */
static int reply(struct gateway *gw, const struct dns_guest *g, const uint8_t *msg, size_t len)
{
  struct net_l2 l2 = {.dst_mac = g->mac, .src_mac = gw->p.mac};
  int n = g->v6 ? net_build_udp6(gw->out, sizeof(gw->out), &l2, g->server6, g->ip6, 53, g->port,
                                 msg, len)
                : net_build_udp(gw->out, sizeof(gw->out), &l2, gw->p.dns_ip, g->ip4, 53, g->port,
                                msg, len, gw_next_id(gw));
  if (n < 0)
    return n;
  gw_emit(gw, g->room, (size_t)n);
  return 0;
}

static void answer_recv(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                        const union io_sockaddr *peer, socklen_t peerlen,
                        const struct io_local *local)
{
  struct dns_pending *d = ctx;
  struct gateway *gw = d->gw;
  struct dns_question q;
  (void)peerlen;
  (void)local;
  if (!d->used || d->sock != s) {
    gw->ctr.dns_unmatched++;
    return;
  }
  if (!from_upstream(&gw->p.upstream[d->up], peer)) {
    gw->ctr.dns_bad++; /* somebody else found the port: not an answer */
    return;
  }
  if (dns_parse_question(pkt, len, &q) < 0 || !dns_is_response(&q)) {
    gw->ctr.dns_bad++;
    return;
  }
  if (q.id != d->q.id || !dns_same_question(&d->q, &q)) {
    gw->ctr.dns_unmatched++;
    return;
  }
  dns_set_id(pkt, d->guest_id);
  struct dns_guest g = {.room = d->room,
                        .mac = d->guest_mac,
                        .v6 = d->v6,
                        .ip4 = d->guest_ip,
                        .ip6 = d->guest_ip6,
                        .server6 = d->server6,
                        .port = d->guest_port};
  int rc = reply(gw, &g, pkt, len);
  slot_free(gw, d);
  if (rc < 0) {
    /* larger than a frame: the guest retries over TCP (TC is the upstream's
     * business; we cannot fragment) */
    gw->ctr.dns_bad++;
    return;
  }
  gw->ctr.dns_answers++;
}

int dns_fwd_init(struct gateway *gw)
{
  uint32_t m = gw->p.max_dns_inflight;
  if (m == 0 || m > 32768)
    return -EINVAL;
  gw->dns = calloc(m, sizeof(*gw->dns));
  if (!gw->dns)
    return -ENOMEM;
  for (uint32_t i = 0; i < m; i++)
    gw->dns[i].gw = gw;
  if (gw->p.nupstreams == 0)
    log_warn("DNS forwarder has no upstream: guests' queries to the DNS address fail",
             "fix=\"--dns-upstream ADDR or a nameserver in /etc/resolv.conf\"");
  return 0;
}

void dns_fwd_fini(struct gateway *gw)
{
  for (uint32_t i = 0; gw->dns && i < gw->p.max_dns_inflight; i++)
    slot_free(gw, &gw->dns[i]);
  free(gw->dns);
  gw->dns = NULL;
}

/* A VM beyond its share: SERVFAIL now (header and question of the query,
 * QR and RA set, RCODE 2), so its resolver fails fast instead of retrying
 * into a table it cannot have more of. */
static void servfail(struct gateway *gw, const struct dns_guest *g, const struct net_udp *u,
                     const struct dns_question *q)
{
  uint8_t msg[12 + DNS_NAME_MAX + 4];
  if (q->end > sizeof(msg) || q->end > u->len)
    return;
  memcpy(msg, u->payload, q->end);
  uint16_t flags = (uint16_t)((q->flags & 0x7900) | 0x8000 | 0x0080 | 2); /* opcode, RD kept */
  msg[2] = (uint8_t)(flags >> 8);
  msg[3] = (uint8_t)flags;
  msg[4] = 0;
  msg[5] = 1;
  memset(msg + 6, 0, 6);
  reply(gw, g, msg, q->end);
}

static uint16_t random_id(struct gateway *gw)
{
  uint16_t r;
  rng_fill(&r, sizeof(r));
  return r;
}

void dns_fwd_input(struct gateway *gw, const struct gw_pkt *pkt, const struct net_udp *u)
{
  struct dns_guest g = {.room = pkt->room,
                        .mac = pkt->src_mac,
                        .key = inany_from4(pkt->ip.src),
                        .ip4 = pkt->ip.src,
                        .port = u->sport};
  if (dns_fwd_query(gw, &g, u) == -ENETUNREACH)
    gw_icmp_error(gw, pkt, ICMP_UNREACH, ICMP_UNREACH_PORT);
}

int dns_fwd_query(struct gateway *gw, const struct dns_guest *g, const struct net_udp *u)
{
  struct dns_question q;
  gw->ctr.dns_queries++;
  if (dns_parse_question(u->payload, u->len, &q) < 0 || dns_is_response(&q)) {
    gw->ctr.dns_bad++;
    return -EBADMSG;
  }
  if (gw->p.nupstreams == 0) {
    gw->ctr.dns_no_upstream++;
    return -ENETUNREACH;
  }
  if (gw->p.max_dns_inflight_per_vm &&
      flowtab_vm_count(gw->flows, FT_DNS, g->room, &g->key, gw->p.max_dns_inflight_per_vm) >=
          gw->p.max_dns_inflight_per_vm) {
    gw->ctr.dns_vm_full++;
    gw_log(gw, "DNS query refused (SERVFAIL)",
           "queries in flight of this VM (--max-dns-inflight-per-vm)");
    servfail(gw, g, u, &q);
    return -EDQUOT;
  }
  /* the slot, under a fresh random id (drawn again in the rare case that
   * the same guest query already went out under it) */
  struct ft_key k = {.proto = FT_DNS, .room = g->room, .vip = g->key, .vport = u->sport};
  uint32_t slot;
  uint16_t id;
  int rc;
  for (int tries = 0;; tries++) {
    id = random_id(gw);
    k.rip.w[0] = ((uint32_t)q.id << 16) | id; /* not an address: the two ids */
    if ((rc = flowtab_insert(gw->flows, &k, *gw->now, &slot)) != -EEXIST || tries == 3)
      break;
  }
  if (rc < 0) {
    gw->ctr.dns_full++;
    gw_log(gw, "DNS query dropped", "forwarder table full (--max-dns-inflight)");
    return -ENOSPC;
  }
  struct dns_pending *d = &gw->dns[slot];
  uint32_t upi = gw->dns_rr++ % gw->p.nupstreams;
  const union io_sockaddr *up = &gw->p.upstream[upi];
  struct io_udp_opts o = {.bind_addr = up->sa.sa_family == AF_INET ? "0.0.0.0" : "::", .port = 0};
  struct io_udp_sock *sock;
  if (io_udp_open_ex(gw->io, &o, answer_recv, d, &sock) < 0) {
    flowtab_free(gw->flows, FT_DNS, slot);
    gw->ctr.dns_sock_failed++;
    gw_log(gw, "DNS query dropped", "cannot open a socket for it (descriptor limit?)");
    return -EMFILE;
  }
  uint8_t *buf = io_tx_reserve(gw->io, u->len);
  if (!buf) {
    io_udp_close(gw->io, sock);
    flowtab_free(gw->flows, FT_DNS, slot);
    gw->ctr.dns_full++;
    return -ENOBUFS;
  }
  memcpy(buf, u->payload, u->len);
  dns_set_id(buf, id);
  socklen_t uplen = up->sa.sa_family == AF_INET ? sizeof(up->in) : sizeof(up->in6);
  io_tx_commit(gw->io, u->len, sock, up, uplen, NULL);
  d->used = true;
  d->sock = sock;
  d->up = upi;
  d->room = g->room;
  d->v6 = g->v6;
  d->guest_ip = g->ip4;
  if (g->v6) {
    memcpy(d->guest_ip6, g->ip6, 16);
    memcpy(d->server6, g->server6, 16);
  }
  d->guest_port = g->port;
  d->guest_id = q.id;
  memcpy(d->guest_mac, g->mac, 6);
  d->deadline_ns = *gw->now + gw->p.dns_timeout_ns;
  d->q = q;
  d->q.id = id;
  gw->dns_inflight++;
  return 0;
}

/* From the oldest query on, while they are past their deadline. */
void dns_fwd_sweep(struct gateway *gw, uint64_t now)
{
  for (uint32_t i; gw->dns && (i = flowtab_oldest(gw->flows, FT_DNS)) != FT_NONE;) {
    struct dns_pending *d = &gw->dns[i];
    if (!d->used) {
      flowtab_free(gw->flows, FT_DNS, i); /* cannot happen: a slot without its query */
      continue;
    }
    if (now < d->deadline_ns)
      break;
    slot_free(gw, d);
    gw->ctr.dns_timeouts++;
  }
}
