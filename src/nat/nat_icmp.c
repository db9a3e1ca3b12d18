/*
 * nat_icmp: guest ping to the internet through ICMP datagram sockets.
 *
 * One SOCK_DGRAM/IPPROTO_ICMP socket per guest (room, IP, echo id). The
 * kernel gives each socket its own echo id and matches replies to it; we
 * send the guest's echo (sequence and payload unchanged) and turn each
 * reply back into the guest's id with the checksum recomputed. No raw
 * sockets and no subprocesses (the seed ran `ping` per echo and answered
 * with a made-up payload). When the kernel does not allow ICMP datagram
 * sockets for our group (net.ipv4.ping_group_range) but the process has
 * CAP_NET_RAW, one raw ICMP socket (filtered to echo replies) carries every
 * flow instead: each flow gets its own echo id on the wire and we compute
 * the checksums. With neither, ICMP NAT is disabled with one log line at
 * start-up and echoes are dropped with a counter.
 *
 * ICMPv6 echo (NAT66, nat6.c): the same through SOCK_DGRAM/IPPROTO_ICMPV6
 * sockets (allowed by the same net.ipv4.ping_group_range), else one raw
 * ICMPv6 socket (the kernel fills ICMPv6 checksums on it) with echo ids
 * from the same per-worker slice, else IPv6 echoes are dropped and
 * counted (icmp_disabled).
 *
 * Flows live in the NAT's flow table (flowtab.h, FT_ICMP), keyed by
 * (room, VM address, guest echo id); in raw-socket mode the echo id on the
 * wire is the flow's reverse key, so a reply finds its flow in one lookup.
 * A flow ends icmp_timeout after its last echo or reply, least recently
 * used first.
 *
 * Bounds: --max-icmp-flows-per-vm echo ids per (room, VM address), so one
 * VM cycling through echo ids cannot take every flow of the table; past
 * it the echo is dropped and counted (icmp_vm_full). The VM's count comes
 * from the flow table's VM index (flowtab_vm_count).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway_internal.h"

#include "wtrelay/rng.h"

/* From linux/icmp.h, which clashes with glibc's netinet/in.h. */
#define WT_ICMP_FILTER 1
struct wt_icmp_filter {
  uint32_t data; /* bit t set = drop ICMP type t */
};

/* From linux/icmpv6.h (glibc's netinet/icmp6.h clashes with net6.h). */
#define WT_ICMP6_FILTER 1
struct wt_icmp6_filter {
  uint32_t data[8]; /* bit t set = drop ICMPv6 type t */
};

static void raw_recv(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                     const union io_sockaddr *peer, socklen_t peerlen,
                     const struct io_local *local);
static void raw6_recv(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                      const union io_sockaddr *peer, socklen_t peerlen,
                      const struct io_local *local);

/* ICMPv6 echo: datagram sockets (the same net.ipv4.ping_group_range), else
 * one raw ICMPv6 socket (CAP_NET_RAW) filtered to echo replies, else none. */
static void icmp6_init(struct gateway *gw)
{
  int fd6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMPV6);
  if (fd6 >= 0) {
    close(fd6);
    gw->icmp6_ok = true;
    return;
  }
  struct io_udp_opts o = {.bind_addr = "::", .port = 0, .proto = IPPROTO_ICMPV6, .raw = true};
  if (io_udp_open_ex(gw->io, &o, raw6_recv, gw, &gw->icmp6_raw) == 0) {
    struct wt_icmp6_filter filt;
    memset(&filt, 0xff, sizeof(filt));
    filt.data[ICMP6_ECHO_REPLY >> 5] &= ~(1u << (ICMP6_ECHO_REPLY & 31));
    setsockopt(gw->icmp6_raw->fd, IPPROTO_ICMPV6, WT_ICMP6_FILTER, &filt, sizeof(filt));
    gw->icmp6_ok = true;
    return;
  }
  log_warn("ICMPv6 echo NAT disabled: no ICMPv6 datagram sockets for this group and no "
           "CAP_NET_RAW",
           "fix=\"sysctl -w net.ipv4.ping_group_range='0 2147483647'\"");
}

int nat_icmp_init(struct gateway *gw)
{
  gw->icmp = calloc(gw->p.max_icmp_flows ? gw->p.max_icmp_flows : 1, sizeof(*gw->icmp));
  if (!gw->icmp)
    return -ENOMEM;
  rng_fill(&gw->icmp_id_base, sizeof(gw->icmp_id_base));
  icmp6_init(gw);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd >= 0) {
    close(fd);
    gw->icmp_ok = true;
    return 0;
  }
  int dgram_err = errno;
  struct io_udp_opts o = {.bind_addr = "0.0.0.0", .port = 0, .proto = IPPROTO_ICMP, .raw = true};
  if (io_udp_open_ex(gw->io, &o, raw_recv, gw, &gw->icmp_raw) == 0) {
    struct wt_icmp_filter filt = {.data = ~(1u << ICMP_ECHO_REPLY)};
    setsockopt(gw->icmp_raw->fd, SOL_RAW, WT_ICMP_FILTER, &filt, sizeof(filt));
    gw->icmp_ok = true;
    log_info("ICMP NAT uses a raw socket (ICMP datagram sockets not allowed for this group)",
             "err=\"%s\"", strerror(dgram_err));
    return 0;
  }
  log_warn("ICMP NAT disabled: no ICMP datagram sockets for this group and no CAP_NET_RAW",
           "err=\"%s\" fix=\"sysctl -w net.ipv4.ping_group_range='0 2147483647'\"",
           strerror(dgram_err));
  gw->icmp_ok = false;
  return 0;
}

static void flow_close(struct gateway *gw, struct nat_icmp_flow *f)
{
  if (!f->used)
    return;
  flowtab_free(gw->flows, FT_ICMP, (uint32_t)(f - gw->icmp));
  if (f->sock && f->sock != gw->icmp_raw && f->sock != gw->icmp6_raw)
    io_udp_close(gw->io, f->sock);
  f->sock = NULL;
  f->used = false;
  gw->nicmp--;
  gw->ctr.icmp_flows_closed++;
}

void nat_icmp_fini(struct gateway *gw)
{
  for (uint32_t i = 0; gw->icmp && i < gw->p.max_icmp_flows; i++)
    flow_close(gw, &gw->icmp[i]);
  if (gw->icmp_raw)
    io_udp_close(gw->io, gw->icmp_raw);
  if (gw->icmp6_raw)
    io_udp_close(gw->io, gw->icmp6_raw);
  gw->icmp_raw = gw->icmp6_raw = NULL;
  free(gw->icmp);
  gw->icmp = NULL;
}

/* An echo reply from the internet: back to the guest with its own id.
 * icmp = the ICMP(v6) message (header on), from `from`. */
static void reply_to_guest(struct gateway *gw, struct nat_icmp_flow *f, const union inany *from,
                           const uint8_t *icmp, size_t len)
{
  uint8_t rest[4] = {(uint8_t)(f->guest_id >> 8), (uint8_t)f->guest_id, icmp[6], icmp[7]};
  struct net_l2 l2 = {.dst_mac = f->guest_mac, .src_mac = gw->p.mac};
  int n = inany_is4(&f->guest_ip)
              ? net_build_icmp(gw->out, sizeof(gw->out), &l2, inany_v4(from),
                               inany_v4(&f->guest_ip), ICMP_ECHO_REPLY, 0, rest, icmp + ICMP_HDR,
                               len - ICMP_HDR, gw_next_id(gw))
              : net_build_icmp6(gw->out, sizeof(gw->out), &l2, from->a, f->guest_ip.a, 64,
                                ICMP6_ECHO_REPLY, 0, rest, icmp + ICMP_HDR, len - ICMP_HDR);
  if (n < 0)
    return;
  flowtab_touch(gw->flows, FT_ICMP, (uint32_t)(f - gw->icmp), *gw->now);
  gw->ctr.icmp_in++;
  gw_emit(gw, f->room, (size_t)n);
}

/* Raw-socket mode: the echo id on the wire of flow slot i, inside this
 * worker's slice of the id space (a random offset in it). */
uint16_t nat_icmp_slice_id(uint32_t worker, uint32_t workers, uint16_t base, uint32_t i)
{
  uint32_t n = workers ? workers : 1;
  uint32_t slice = 65536 / n;
  return (uint16_t)((worker % n) * slice + ((uint32_t)base + i) % slice);
}

static uint16_t raw_id(const struct gateway *gw, uint32_t i)
{
  return nat_icmp_slice_id(gw->p.icmp_worker, gw->p.icmp_workers, gw->icmp_id_base, i);
}

/* Raw-socket mode: the whole IPv4 datagram; find the flow by our echo id.
 * Every worker's raw socket sees every reply: only ids of this worker's
 * slice can be ours (raw_id), the others are left to their owner. */
static void raw_recv(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                     const union io_sockaddr *peer, socklen_t peerlen, const struct io_local *local)
{
  struct gateway *gw = ctx;
  struct net_ipv4 ip;
  struct net_icmp m;
  (void)s;
  (void)peer;
  (void)peerlen;
  (void)local;
  if (net_ipv4_parse(pkt, len, &ip) < 0 || net_icmp_parse(&ip, &m) < 0 || m.type != ICMP_ECHO_REPLY)
    return;
  uint32_t i = flowtab_lookup_rkey(gw->flows, FT_ICMP, m.id);
  union inany from = inany_from4(ip.src);
  if (i != FT_NONE && gw->icmp[i].used && gw->icmp[i].host_id == m.id &&
      gw->icmp[i].sock == gw->icmp_raw)
    reply_to_guest(gw, &gw->icmp[i], &from, ip.payload, ip.len);
}

/* Raw-socket mode, ICMPv6: the message alone (no IPv6 header on a raw
 * ICMPv6 socket), its sender in peer; found by our echo id like IPv4's. */
static void raw6_recv(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                      const union io_sockaddr *peer, socklen_t peerlen,
                      const struct io_local *local)
{
  struct gateway *gw = ctx;
  (void)s;
  (void)peerlen;
  (void)local;
  union inany from;
  uint16_t unused;
  if (len < ICMP_HDR || pkt[0] != ICMP6_ECHO_REPLY || !gw_sockaddr_get(peer, &from, &unused) ||
      inany_is4(&from))
    return;
  uint16_t id = (uint16_t)(pkt[4] << 8 | pkt[5]);
  uint32_t i = flowtab_lookup_rkey(gw->flows, FT_ICMP, id);
  if (i != FT_NONE && gw->icmp[i].used && gw->icmp[i].host_id == id &&
      gw->icmp[i].sock == gw->icmp6_raw)
    reply_to_guest(gw, &gw->icmp[i], &from, pkt, len);
}

static void flow_recv(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                      const union io_sockaddr *peer, socklen_t peerlen,
                      const struct io_local *local)
{
  struct nat_icmp_flow *f = ctx;
  struct gateway *gw = f->gw;
  (void)s;
  (void)peerlen;
  (void)local;
  union inany from;
  uint16_t unused;
  bool v4 = inany_is4(&f->guest_ip);
  if (!f->used || !gw_sockaddr_get(peer, &from, &unused) || inany_is4(&from) != v4 ||
      len < ICMP_HDR || pkt[0] != (v4 ? ICMP_ECHO_REPLY : ICMP6_ECHO_REPLY))
    return;
  reply_to_guest(gw, f, &from, pkt, len);
}

/* The guest's flow for (room, source address, echo id), opened when it
 * has none. */
static struct nat_icmp_flow *flow_get(struct gateway *gw, const struct gw_pkt *pkt, uint16_t id)
{
  union inany src = gw_pkt_src(pkt);
  struct ft_key k = {.proto = FT_ICMP, .room = pkt->room, .vip = src, .vport = id};
  uint32_t i = flowtab_lookup(gw->flows, &k);
  if (i != FT_NONE)
    return &gw->icmp[i];
  if (gw->p.max_icmp_flows_per_vm &&
      flowtab_vm_count(gw->flows, FT_ICMP, pkt->room, &src, gw->p.max_icmp_flows_per_vm) >=
          gw->p.max_icmp_flows_per_vm) {
    /* this VM's share of echo ids is taken: the others' stay free */
    gw->ctr.icmp_vm_full++;
    gw_log(gw, "ICMP NAT flow refused", "echo ids of this VM (--max-icmp-flows-per-vm)");
    return NULL;
  }
  if (flowtab_insert(gw->flows, &k, *gw->now, &i) < 0) {
    gw->ctr.icmp_flows_full++;
    return NULL;
  }
  uint64_t client; /* echo flows are rated per VM (nat_share.c), not held */
  if (nat_share_admit(gw, pkt, NAT_SHARE_P_ICMP, &client) < 0) {
    flowtab_free(gw->flows, FT_ICMP, i);
    gw_icmp_error(gw, pkt, ICMP_UNREACH, ICMP_UNREACH_ADMIN);
    return NULL;
  }
  struct nat_icmp_flow *free_f = &gw->icmp[i];
  memset(free_f, 0, sizeof(*free_f));
  free_f->gw = gw;
  struct io_udp_sock *raw = pkt->ip6 ? gw->icmp6_raw : gw->icmp_raw;
  if (raw) {
    free_f->sock = raw;
    free_f->host_id = raw_id(gw, i);
    flowtab_set_rkey(gw->flows, FT_ICMP, i, free_f->host_id);
  } else {
    struct io_udp_opts o = {.bind_addr = pkt->ip6 ? "::" : "0.0.0.0",
                            .port = 0,
                            .proto = pkt->ip6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP};
    if (io_udp_open_ex(gw->io, &o, flow_recv, free_f, &free_f->sock) < 0) {
      flowtab_free(gw->flows, FT_ICMP, i);
      gw->ctr.icmp_flows_full++;
      return NULL;
    }
  }
  free_f->used = true;
  free_f->room = pkt->room;
  free_f->guest_ip = src;
  free_f->guest_id = id;
  gw->nicmp++;
  gw->ctr.icmp_flows_opened++;
  gw->ctr.nat6_icmp_flows += pkt->ip6 != NULL;
  return free_f;
}

void nat_icmp_input(struct gateway *gw, const struct gw_pkt *pkt, const struct net_icmp *m)
{
  if (pkt->ip6 ? !gw->icmp6_ok : !gw->icmp_ok) {
    gw->ctr.icmp_disabled_drops++;
    return;
  }
  struct nat_icmp_flow *f = flow_get(gw, pkt, m->id);
  if (!f)
    return;
  flowtab_touch(gw->flows, FT_ICMP, (uint32_t)(f - gw->icmp), *gw->now);
  memcpy(f->guest_mac, pkt->src_mac, 6);
  uint8_t *buf = io_tx_reserve(gw->io, ICMP_HDR + m->len);
  if (!buf)
    return;
  /* type, code, checksum and id (the kernel fills both on a datagram
   * socket; ours on the raw socket), seq */
  buf[0] = pkt->ip6 ? ICMP6_ECHO : ICMP_ECHO;
  buf[1] = 0;
  buf[2] = buf[3] = 0;
  buf[4] = (uint8_t)(f->host_id >> 8);
  buf[5] = (uint8_t)f->host_id;
  buf[6] = (uint8_t)(m->seq >> 8);
  buf[7] = (uint8_t)m->seq;
  memcpy(buf + ICMP_HDR, m->data, m->len);
  if (f->sock == gw->icmp_raw) {
    uint16_t c = net_csum_fold(net_csum_add(0, buf, ICMP_HDR + m->len));
    buf[2] = (uint8_t)(c >> 8);
    buf[3] = (uint8_t)c;
  }
  union io_sockaddr dst;
  union inany to = gw_pkt_dst(pkt);
  socklen_t dlen = gw_sockaddr(&dst, &to, 0);
  io_tx_commit(gw->io, ICMP_HDR + m->len, f->sock, &dst, dlen, NULL);
  gw->ctr.icmp_out++;
}

/* Least recently used first, while they have expired. */
void nat_icmp_sweep(struct gateway *gw, uint64_t now)
{
  for (uint32_t i; (i = flowtab_oldest(gw->flows, FT_ICMP)) != FT_NONE;) {
    if (now - flowtab_last(gw->flows, FT_ICMP, i) < gw->p.icmp_timeout_ns)
      break;
    if (!gw->icmp[i].used) {
      flowtab_free(gw->flows, FT_ICMP, i); /* cannot happen: a slot without its flow */
      continue;
    }
    flow_close(gw, &gw->icmp[i]);
  }
}

void nat_icmp_room_gone(struct gateway *gw, uint32_t room)
{
  for (uint32_t i = 0; i < gw->p.max_icmp_flows; i++)
    if (gw->icmp[i].used && gw->icmp[i].room == room)
      flow_close(gw, &gw->icmp[i]);
}
