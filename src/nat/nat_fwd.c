/*
 * nat_fwd: inbound port forwarding (include/wtrelay/nat_fwd.h).
 *
 * A gateway holds the forwards it was given (--forward at start, the ops
 * API at run time) in a fixed table of FWD_MAX. For each:
 *
 * TCP: a listening socket with a multishot accept on the worker's ring.
 * An accepted connection is bounded (per forward, in all), its VM looked
 * up through gateway_addr_ops.vm_lookup (by MAC: the session that holds
 * the MAC now, so a forward follows a VM that reconnected; by address:
 * the session with that address), and handed to the TCP NAT
 * (nat_tcp_inbound), which sends the guest a SYN from the remote's address
 * and port and carries the connection as it carries outbound ones: the
 * guest's data is acknowledged only once the kernel took it, the remote's
 * is peeked and discarded only when the guest acknowledged it. Refused
 * (no VM, a bound, no slot): the accepted socket is closed with SO_LINGER
 * 0, a reset to the remote, counted and logged (rate-limited).
 *
 * UDP: one socket bound to the host port. A datagram from a remote
 * address and port with no mapping makes one (bounded per forward and in
 * all, VM looked up as for TCP; no VM: dropped and counted); the datagram
 * goes to the guest from the remote's address and port. The guest's
 * datagrams from VM_PORT to that remote go out of the forward's socket
 * (nat_fwd_guest_input, called by the gateway before its egress policy:
 * they are answers). A mapping lives --udp-timeout after its last datagram
 * either way. Lookups scan the live mappings (at most
 * max_fwd_conns), only while there are any.
 */
#include "wtrelay/nat_fwd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway_internal.h"

/* ---- the spec ---- */

static int bad(char *err, size_t errlen, const char *what, const char *s)
{
  if (err && errlen)
    snprintf(err, errlen, "%s in '%s' (expected PROTO:[BIND_ADDR:]HOST_PORT=VM:VM_PORT[@ROOM])",
             what, s);
  return -EINVAL;
}

/* A port 1..65535 in [p, end). */
static int port_parse(const char *p, const char *end, uint16_t *out)
{
  if (p >= end || end - p > 5)
    return -EINVAL;
  uint32_t v = 0;
  for (; p < end; p++) {
    if (*p < '0' || *p > '9')
      return -EINVAL;
    v = v * 10 + (uint32_t)(*p - '0');
  }
  if (v == 0 || v > 65535)
    return -EINVAL;
  *out = (uint16_t)v;
  return 0;
}

/* An IPv4 address in [p, end), host order. */
static int ip_parse(const char *p, const char *end, uint32_t *out)
{
  char a[16];
  struct in_addr in;
  if (p >= end || (size_t)(end - p) >= sizeof(a))
    return -EINVAL;
  memcpy(a, p, (size_t)(end - p));
  a[end - p] = '\0';
  if (inet_pton(AF_INET, a, &in) != 1)
    return -EINVAL;
  *out = ntohl(in.s_addr);
  return 0;
}

int fwd_spec_parse(const char *s, struct fwd_spec *out, char *err, size_t errlen)
{
  memset(out, 0, sizeof(*out));
  if (!s)
    return bad(err, errlen, "no forward", "");
  if (strncmp(s, "tcp:", 4) == 0)
    out->proto = IPPROTO_TCP;
  else if (strncmp(s, "udp:", 4) == 0)
    out->proto = IPPROTO_UDP;
  else
    return bad(err, errlen, "the protocol must be tcp or udp", s);
  const char *host = s + 4;
  const char *eq = strchr(host, '=');
  if (!eq)
    return bad(err, errlen, "no '='", s);
  /* host side: [BIND_ADDR:]HOST_PORT */
  const char *colon = memchr(host, ':', (size_t)(eq - host));
  if (colon) {
    if (ip_parse(host, colon, &out->bind_ip) < 0)
      return bad(err, errlen, "the bind address is not an IPv4 address", s);
    host = colon + 1;
  }
  if (port_parse(host, eq, &out->host_port) < 0)
    return bad(err, errlen, "the host port must be 1 to 65535", s);
  /* VM side: VM:VM_PORT[@ROOM] */
  const char *vm = eq + 1;
  const char *at = strchr(vm, '@');
  const char *vend = at ? at : vm + strlen(vm);
  const char *pc;
  if (*vm == '[') {
    const char *rb = memchr(vm, ']', (size_t)(vend - vm));
    char mac[18];
    if (!rb || rb - vm - 1 != 17)
      return bad(err, errlen, "the VM's MAC must be in brackets, [52:54:00:12:34:56]", s);
    memcpy(mac, vm + 1, 17);
    mac[17] = '\0';
    if (net_mac_parse(mac, out->mac) < 0 || (out->mac[0] & 1))
      return bad(err, errlen, "the VM's MAC is not a unicast MAC", s);
    out->by_mac = true;
    pc = rb + 1;
    if (pc >= vend || *pc != ':')
      return bad(err, errlen, "no ':' before the VM port", s);
  } else {
    pc = memchr(vm, ':', (size_t)(vend - vm));
    if (!pc)
      return bad(err, errlen, "no ':' before the VM port", s);
    if (ip_parse(vm, pc, &out->vm_ip) < 0 || out->vm_ip == 0 || out->vm_ip == 0xffffffffu ||
        (out->vm_ip >> 28) == 14)
      return bad(err, errlen, "the VM must be a unicast IPv4 address or a MAC in brackets", s);
  }
  if (port_parse(pc + 1, vend, &out->vm_port) < 0)
    return bad(err, errlen, "the VM port must be 1 to 65535", s);
  if (!at) {
    snprintf(out->room, sizeof(out->room), "/");
    return 0;
  }
  const char *room = at + 1;
  size_t rl = strlen(room);
  if (room[0] != '/' || rl >= sizeof(out->room))
    return bad(err, errlen, "the room must be a URL path starting with '/' (at most 255 bytes)", s);
  for (size_t i = 0; i < rl; i++)
    if ((unsigned char)room[i] <= ' ' || room[i] == '"' || room[i] == '\\' || room[i] == 0x7f)
      return bad(err, errlen, "the room has a blank, quote or control character", s);
  memcpy(out->room, room, rl + 1);
  return 0;
}

void fwd_spec_format(const struct fwd_spec *f, char *buf, size_t cap)
{
  char bind[20] = "", vm[24], a[16];
  if (f->bind_ip)
    snprintf(bind, sizeof(bind), "%s:", net_ip_str(f->bind_ip, a));
  if (f->by_mac)
    snprintf(vm, sizeof(vm), "[%02x:%02x:%02x:%02x:%02x:%02x]", f->mac[0], f->mac[1], f->mac[2],
             f->mac[3], f->mac[4], f->mac[5]);
  else
    snprintf(vm, sizeof(vm), "%s", net_ip_str(f->vm_ip, a));
  snprintf(buf, cap, "%s:%s%u=%s:%u@%s", f->proto == IPPROTO_UDP ? "udp" : "tcp", bind,
           f->host_port, vm, f->vm_port, f->room);
}

bool fwd_spec_same_socket(const struct fwd_spec *a, const struct fwd_spec *b)
{
  return a->proto == b->proto && a->host_port == b->host_port &&
         (a->bind_ip == b->bind_ip || !a->bind_ip || !b->bind_ip);
}

/* ---- the forwards of a gateway ---- */

#define K_ACCEPT 0u
#define K_CLOSE 1u
#define K_CANCEL 2u
/* user_data index: kind, generation, slot */
#define FUDX(kind, gen, slot) (((uint32_t)(kind) << 24) | ((uint32_t)((gen)&0xffff) << 8) | (slot))

struct fwd_ent {
  bool used;
  bool closing; /* deleted: its listening socket waits for its accept to come back */
  uint16_t gen;
  uint32_t id;
  struct fwd_spec spec;
  int lfd; /* TCP: listening */
  bool accept_armed;
  struct io_udp_sock *usock; /* UDP */
  struct gateway *gw;        /* its counts: fwd_counts, at its slot */
};

/* A UDP mapping: one remote address and port of a forward, and the guest
 * it reaches. */
struct fwd_map {
  bool used;
  uint32_t ref; /* the forward's slot and generation (tcp_ref) */
  int fd;       /* answers go out of: -1 = the owner's socket of the forward (io), else a
                 * duplicate of it (a mapping on another worker's gateway), sent synchronously */
  uint32_t room, vm_ip, rip;
  uint32_t seen; /* the remote's address as the guest sees it (remote_seen) */
  uint16_t vm_port, rport;
  uint8_t vm_mac[6];
  uint64_t last_ns;
};

struct nat_fwd {
  struct fwd_ent ents[FWD_MAX]; /* the owner's forwards (none on other workers' gateways) */
  uint32_t next_id;
  struct fwd_counts own;  /* the counts when no one shares them */
  struct fwd_counts *cnt; /* the counts: shared by the workers' gateways, or &own */
  uint32_t local;         /* forwarded connections and mappings this gateway carries */
  struct fwd_map *maps;
  uint32_t nmaps_hi; /* maps[0..nmaps_hi) may be used */
  uint32_t nmaps;
};

_Static_assert(FWD_MAX <= 255, "a forward's slot must fit the user_data index and fwd_map.fwd");

static uint32_t tcp_ref(const struct fwd_ent *e, uint32_t slot)
{
  return (slot + 1) | ((uint32_t)e->gen << 16);
}

/* Takes a count of forward `slot` within the bounds: false at one. */
static bool count_take(struct gateway *gw, uint32_t slot)
{
  struct fwd_counts *k = gw->fwd->cnt;
  if (atomic_fetch_add_explicit(&k->total, 1, memory_order_relaxed) >= gw->p.max_fwd_conns) {
    atomic_fetch_sub_explicit(&k->total, 1, memory_order_relaxed);
    return false;
  }
  if (atomic_fetch_add_explicit(&k->active[slot], 1, memory_order_relaxed) >=
      gw->p.max_fwd_conns_per_fwd) {
    atomic_fetch_sub_explicit(&k->active[slot], 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&k->total, 1, memory_order_relaxed);
    return false;
  }
  return true;
}

/* Notes a connection (UDP: a mapping) of the forward named by ref as
 * served or refused, for the API's list. */
static void count_note(struct gateway *gw, uint32_t ref, bool served)
{
  struct fwd_counts *k = gw->fwd->cnt;
  uint32_t slot = (ref & 0xffff) - 1;
  if (slot < FWD_MAX && atomic_load_explicit(&k->gen[slot], memory_order_relaxed) == (ref >> 16))
    atomic_fetch_add_explicit(served ? &k->served[slot] : &k->refused[slot], 1,
                              memory_order_relaxed);
}

/* Gives back the count of the forward named by ref (its own slot's
 * count only while the slot holds that forward). */
static void count_give(struct gateway *gw, uint32_t ref)
{
  struct fwd_counts *k = gw->fwd->cnt;
  uint32_t slot = (ref & 0xffff) - 1;
  atomic_fetch_sub_explicit(&k->total, 1, memory_order_relaxed);
  if (slot < FWD_MAX && atomic_load_explicit(&k->gen[slot], memory_order_relaxed) == (ref >> 16) &&
      atomic_load_explicit(&k->active[slot], memory_order_relaxed) > 0)
    atomic_fetch_sub_explicit(&k->active[slot], 1, memory_order_relaxed);
}

static void fwd_log(struct gateway *gw, const char *msg, const struct fwd_spec *s)
{
  char spec[400];
  fwd_spec_format(s, spec, sizeof(spec));
  gw_log(gw, msg, spec);
}

/* The address a remote is shown to the guest with: its own, but for the
 * relay host's loopback (a client on the relay host itself), which a
 * guest's kernel would drop as martian: the gateway's address then, as
 * passt does. */
static uint32_t remote_seen(const struct gateway *gw, uint32_t rip)
{
  return (rip >> 24) == 127 ? gw->p.ip : rip;
}

/* Where the forward's VM is now, on this gateway's LAN. */
static int vm_find(struct gateway *gw, const struct fwd_spec *s, uint32_t *room, uint32_t *ip,
                   uint8_t mac[6])
{
  if (!gw->addr || !gw->addr->vm_lookup)
    return -ENOENT;
  return gw->addr->vm_lookup(gw->addr_ctx, s->room, s->by_mac ? s->mac : NULL, s->vm_ip, room, ip,
                             mac);
}

/* A reset to the remote: the accepted socket closed at once, no FIN. */
static void refuse_fd(int fd)
{
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(fd);
}

static void arm_accept(struct gateway *gw, struct fwd_ent *e)
{
  if (e->accept_armed || e->closing || e->lfd < 0)
    return;
  struct io_uring_sqe *sqe = io_sqe(gw->io);
  if (!sqe)
    return; /* the sweep tries again */
  io_uring_prep_multishot_accept(sqe, e->lfd, NULL, NULL, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(
      sqe, IO_UD(IO_OP_NAT_FWD, FUDX(K_ACCEPT, e->gen, (uint32_t)(e - gw->fwd->ents))));
  e->accept_armed = true;
}

static void ent_free(struct gateway *gw, struct fwd_ent *e)
{
  uint32_t slot = (uint32_t)(e - gw->fwd->ents);
  e->used = false;
  e->closing = false;
  e->gen++;
  /* connections still open give their counts to no one now */
  atomic_store_explicit(&gw->fwd->cnt->gen[slot], e->gen, memory_order_relaxed);
  atomic_store_explicit(&gw->fwd->cnt->active[slot], 0, memory_order_relaxed);
  atomic_store_explicit(&gw->fwd->cnt->served[slot], 0, memory_order_relaxed);
  atomic_store_explicit(&gw->fwd->cnt->refused[slot], 0, memory_order_relaxed);
}

/* A reset to the remote for a handoff nobody can serve, its count given back. */
static void handoff_refuse(struct gateway *gw, struct fwd_handoff *h)
{
  refuse_fd(h->fd);
  count_note(gw, h->ref, false);
  count_give(gw, h->ref);
  free(h);
}

/* Serves h on this gateway when the VM is on its LAN: true when done
 * (served, or refused for want of a NAT slot), false when the VM is not
 * here. Takes h when true. */
static bool handoff_serve(struct gateway *gw, struct fwd_handoff *h)
{
  uint32_t room, ip;
  uint8_t mac[6];
  if (vm_find(gw, &h->spec, &room, &ip, mac) < 0)
    return false;
  gw->fwd->local++;
  int rc = nat_tcp_inbound(gw, room, mac, ip, h->spec.vm_port, h->fd, remote_seen(gw, h->rip),
                           h->rport, h->ref);
  if (rc < 0) {
    /* fd closed with a reset by nat_tcp_inbound; no connection to end */
    gw->fwd->local--;
    count_note(gw, h->ref, false);
    count_give(gw, h->ref);
    gw->ctr.fwd_tcp_full++;
    fwd_log(gw, "forwarded connection refused: no TCP NAT slot (--max-tcp-conns)", &h->spec);
  } else {
    count_note(gw, h->ref, true);
  }
  free(h);
  return true;
}

/* To the next gateway while some were not asked: true when passed (h is
 * that gateway's now). */
static bool handoff_pass(struct gateway *gw, struct fwd_handoff *h)
{
  if (h->asked >= gw->p.ngateways || !gw->p.fwd_pass)
    return false;
  if (gw->p.fwd_pass->pass(gw->p.fwd_pass_ctx, h) < 0) {
    gw->ctr.fwd_pass_failed++;
    return false;
  }
  gw->ctr.fwd_passed++;
  return true;
}

/* Not here: to the next gateway while some were not asked, else refused. */
static void handoff_next(struct gateway *gw, struct fwd_handoff *h)
{
  if (handoff_pass(gw, h))
    return;
  gw->ctr.fwd_tcp_no_vm++;
  fwd_log(gw, "forwarded connection refused: the VM is not connected", &h->spec);
  handoff_refuse(gw, h);
}

static void udp_take(struct gateway *gw, struct fwd_handoff *h);

void gateway_fwd_take(struct gateway *gw, struct fwd_handoff *h)
{
  if (!gw->fwd) {
    refuse_fd(h->fd); /* no forwarding here: cannot happen with the process's wiring */
    free(h);
    return;
  }
  if (h->spec.proto == IPPROTO_UDP) {
    udp_take(gw, h);
    return;
  }
  h->asked++;
  if (!handoff_serve(gw, h))
    handoff_next(gw, h);
}

static void tcp_accepted(struct gateway *gw, struct fwd_ent *e, int fd)
{
  struct nat_fwd *nf = gw->fwd;
  struct sockaddr_in peer;
  socklen_t plen = sizeof(peer);
  uint32_t slot = (uint32_t)(e - nf->ents);
  gw->ctr.fwd_tcp_accepted++;
  if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0 || peer.sin_family != AF_INET) {
    gw->ctr.fwd_accept_errors++;
    refuse_fd(fd);
    return;
  }
  if (!count_take(gw, slot)) {
    gw->ctr.fwd_tcp_full++;
    count_note(gw, tcp_ref(e, slot), false);
    fwd_log(gw, "forwarded connection refused: too many (--max-forward-conns)", &e->spec);
    refuse_fd(fd);
    return;
  }
  struct fwd_handoff *h = malloc(sizeof(*h));
  if (!h) {
    gw->ctr.fwd_tcp_full++;
    count_note(gw, tcp_ref(e, slot), false);
    refuse_fd(fd);
    count_give(gw, tcp_ref(e, slot));
    return;
  }
  *h = (struct fwd_handoff){.fd = fd,
                            .ref = tcp_ref(e, slot),
                            .rip = ntohl(peer.sin_addr.s_addr),
                            .rport = ntohs(peer.sin_port),
                            .asked = 1,
                            .spec = e->spec};
  if (!handoff_serve(gw, h))
    handoff_next(gw, h); /* its VM on another worker's LAN, or none */
}

void nat_fwd_tcp_closed(struct gateway *gw, uint32_t ref)
{
  struct nat_fwd *nf = gw->fwd;
  if (!nf)
    return;
  nf->local--;
  count_give(gw, ref);
}

void nat_fwd_tcp_established(struct gateway *gw, uint32_t ref)
{
  (void)ref;
  gw->ctr.fwd_tcp_established++;
}

static void on_cqe(void *ctx, uint32_t idx, struct io_uring_cqe *cqe)
{
  struct gateway *gw = ctx;
  struct nat_fwd *nf = gw->fwd;
  uint32_t kind = idx >> 24, gen = (idx >> 8) & 0xffff, slot = idx & 0xff;
  if (kind != K_ACCEPT || slot >= FWD_MAX)
    return;
  struct fwd_ent *e = &nf->ents[slot];
  if (!e->used || e->gen != gen) {
    if (cqe->res >= 0)
      refuse_fd(cqe->res);
    return;
  }
  if (!(cqe->flags & IORING_CQE_F_MORE))
    e->accept_armed = false;
  if (e->closing) {
    if (cqe->res >= 0)
      refuse_fd(cqe->res);
    if (!e->accept_armed) {
      close(e->lfd); /* the accept is back: the socket can go */
      e->lfd = -1;
      ent_free(gw, e);
    }
    return;
  }
  if (cqe->res < 0) {
    if (cqe->res != -ECANCELED) {
      /* (EMFILE, ENOBUFS...): armed again by the next sweep, within a
       * second, not at once, which would spin while the cause lasts */
      gw->ctr.fwd_accept_errors++;
      fwd_log(gw, "forward accept failed (armed again within 1 s)", &e->spec);
      return;
    }
  } else {
    tcp_accepted(gw, e, cqe->res);
  }
  arm_accept(gw, e);
}

/* ---- UDP ---- */

static void map_close(struct gateway *gw, struct fwd_map *m)
{
  struct nat_fwd *nf = gw->fwd;
  m->used = false;
  if (m->fd >= 0)
    close(m->fd);
  nf->nmaps--;
  nf->local--;
  count_give(gw, m->ref);
  gw->ctr.fwd_udp_closed++;
  while (nf->nmaps_hi && !nf->maps[nf->nmaps_hi - 1].used)
    nf->nmaps_hi--;
}

static struct fwd_map *map_by_remote(struct nat_fwd *nf, uint32_t ref, uint32_t rip, uint16_t rport)
{
  for (uint32_t i = 0; i < nf->nmaps_hi; i++) {
    struct fwd_map *m = &nf->maps[i];
    if (m->used && m->ref == ref && m->rip == rip && m->rport == rport)
      return m;
  }
  return NULL;
}

/* A datagram of the forward (spec, ref) from rip:rport to its VM when the
 * VM is on this gateway's LAN, through the remote's mapping (made when
 * there is none: *fd, when not -1, is the socket the mapping answers from,
 * taken then and set to -1). 1: delivered, or dropped at a bound (counted);
 * 0: the VM is not here. */
static int udp_deliver(struct gateway *gw, const struct fwd_spec *spec, uint32_t ref, uint32_t rip,
                       uint16_t rport, const uint8_t *pkt, size_t len, int *fd)
{
  struct nat_fwd *nf = gw->fwd;
  struct fwd_map *m = map_by_remote(nf, ref, rip, rport);
  if (!m) {
    uint32_t room, ip;
    uint8_t mac[6];
    if (vm_find(gw, spec, &room, &ip, mac) < 0)
      return 0;
    if (!count_take(gw, (ref & 0xffff) - 1)) {
      gw->ctr.fwd_udp_full++;
      count_note(gw, ref, false);
      fwd_log(gw, "forwarded datagram dropped: too many mappings (--max-forward-conns)", spec);
      return 1;
    }
    for (uint32_t i = 0; i < gw->p.max_fwd_conns && !m; i++)
      if (!nf->maps[i].used)
        m = &nf->maps[i];
    if (!m) {
      count_give(gw, ref);
      return 1; /* cannot happen: count_take counted every used one */
    }
    *m = (struct fwd_map){.used = true,
                          .ref = ref,
                          .fd = *fd,
                          .room = room,
                          .vm_ip = ip,
                          .rip = rip,
                          .seen = remote_seen(gw, rip),
                          .vm_port = spec->vm_port,
                          .rport = rport};
    *fd = -1;
    memcpy(m->vm_mac, mac, 6);
    uint32_t i = (uint32_t)(m - nf->maps);
    if (i >= nf->nmaps_hi)
      nf->nmaps_hi = i + 1;
    nf->nmaps++;
    nf->local++;
    gw->ctr.fwd_udp_opened++;
    count_note(gw, ref, true);
  }
  m->last_ns = *gw->now;
  struct net_l2 l2 = {.dst_mac = m->vm_mac, .src_mac = gw->p.mac};
  int n = net_build_udp(gw->out, sizeof(gw->out), &l2, m->seen, m->vm_ip, rport, m->vm_port, pkt,
                        len, gw_next_id(gw));
  if (n < 0) {
    gw->ctr.udp_too_big++;
    return 1;
  }
  gw->ctr.fwd_udp_in++;
  gw_emit(gw, m->room, (size_t)n);
  return 1;
}

/* A UDP handoff nobody has served yet: on to the next gateway, or dropped
 * once every one was asked. Takes h. */
static void udp_handoff_next(struct gateway *gw, struct fwd_handoff *h)
{
  if (handoff_pass(gw, h))
    return;
  gw->ctr.fwd_udp_no_vm++;
  count_note(gw, h->ref, false);
  fwd_log(gw, "forwarded datagram dropped: the VM is not connected", &h->spec);
  if (h->fd >= 0)
    close(h->fd);
  free(h);
}

static void udp_take(struct gateway *gw, struct fwd_handoff *h)
{
  h->asked++;
  if (!udp_deliver(gw, &h->spec, h->ref, h->rip, h->rport, h->data, h->len, &h->fd)) {
    udp_handoff_next(gw, h);
    return;
  }
  if (h->fd >= 0)
    close(h->fd); /* a mapping here had its own */
  free(h);
}

/* remote -> guest, on the owner's socket of the forward */
static void udp_recv(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                     const union io_sockaddr *peer, socklen_t peerlen, const struct io_local *local)
{
  struct fwd_ent *e = ctx;
  struct gateway *gw = e->gw;
  struct nat_fwd *nf = gw->fwd;
  (void)peerlen;
  (void)local;
  if (!e->used || e->closing || peer->sa.sa_family != AF_INET)
    return;
  uint32_t ref = tcp_ref(e, (uint32_t)(e - nf->ents));
  uint32_t rip = ntohl(peer->in.sin_addr.s_addr);
  uint16_t rport = ntohs(peer->in.sin_port);
  int own = -1;
  if (udp_deliver(gw, &e->spec, ref, rip, rport, pkt, len, &own))
    return;
  /* not on this LAN: another worker's, maybe (each datagram asks in turn
   * while this worker has no mapping for the remote) */
  struct fwd_handoff *h = gw->p.fwd_pass ? malloc(sizeof(*h) + len) : NULL;
  if (h) {
    *h = (struct fwd_handoff){.fd = -1,
                              .ref = ref,
                              .rip = rip,
                              .rport = rport,
                              .asked = 1,
                              .spec = e->spec,
                              .len = (uint16_t)len};
    memcpy(h->data, pkt, len);
    h->fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0); /* the answers' socket, alive while a mapping is */
    if (h->fd >= 0) {
      udp_handoff_next(gw, h);
      return;
    }
    free(h);
  }
  gw->ctr.fwd_udp_no_vm++;
  count_note(gw, ref, false);
  fwd_log(gw, "forwarded datagram dropped: the VM is not connected", &e->spec);
}

/* guest -> remote, from the forward's socket */
static bool udp_from_guest(struct gateway *gw, const struct gw_pkt *pkt)
{
  struct nat_fwd *nf = gw->fwd;
  struct net_udp u;
  if (!nf->nmaps || net_udp_parse(&pkt->ip, &u) < 0)
    return false;
  for (uint32_t i = 0; i < nf->nmaps_hi; i++) {
    struct fwd_map *m = &nf->maps[i];
    if (!m->used || m->room != pkt->room || m->vm_ip != pkt->ip.src || m->vm_port != u.sport ||
        m->seen != pkt->ip.dst || m->rport != u.dport)
      continue;
    m->last_ns = *gw->now;
    if (m->fd >= 0) {
      /* a mapping handed over by the owner: its duplicate of the socket */
      union io_sockaddr to = {.in = {.sin_family = AF_INET,
                                     .sin_addr.s_addr = htonl(m->rip),
                                     .sin_port = htons(m->rport)}};
      if (sendto(m->fd, u.payload, u.len, MSG_DONTWAIT, &to.sa, sizeof(to.in)) < 0)
        gw->ctr.udp_send_failed++;
      else
        gw->ctr.fwd_udp_out++;
      return true;
    }
    struct fwd_ent *e = &nf->ents[(m->ref & 0xffff) - 1];
    uint8_t *buf = io_tx_reserve(gw->io, u.len ? u.len : 1);
    if (!buf || !e->usock) {
      gw->ctr.udp_send_failed++;
      return true;
    }
    memcpy(buf, u.payload, u.len);
    union io_sockaddr dst;
    memset(&dst, 0, sizeof(dst));
    dst.in.sin_family = AF_INET;
    dst.in.sin_addr.s_addr = htonl(m->rip);
    dst.in.sin_port = htons(m->rport);
    io_tx_commit(gw->io, u.len, e->usock, &dst, sizeof(dst.in), NULL);
    gw->ctr.fwd_udp_out++;
    return true;
  }
  return false;
}

static bool tcp_from_guest(struct gateway *gw, const struct gw_pkt *pkt)
{
  struct net_tcp t;
  if (!gw->tcp || net_tcp_parse(&pkt->ip, &t) < 0)
    return false;
  struct ft_key k = {.proto = FT_TCP,
                     .room = pkt->room,
                     .vip = inany_from4(pkt->ip.src),
                     .vport = t.sport,
                     .rip = inany_from4(pkt->ip.dst),
                     .rport = t.dport};
  uint32_t i = flowtab_lookup(gw->flows, &k);
  if (i == FT_NONE || !gw->tcp[i].fwd)
    return false;
  nat_tcp_input(gw, pkt, &t);
  return true;
}

bool nat_fwd_guest_input(struct gateway *gw, const struct gw_pkt *pkt)
{
  if (!gw->fwd || !gw->fwd->local)
    return false;
  if (pkt->ip.proto == IP_PROTO_TCP)
    return tcp_from_guest(gw, pkt);
  if (pkt->ip.proto == IP_PROTO_UDP)
    return udp_from_guest(gw, pkt);
  return false;
}

void nat_fwd_sweep(struct gateway *gw, uint64_t now)
{
  struct nat_fwd *nf = gw->fwd;
  if (!nf)
    return;
  for (uint32_t i = 0; i < nf->nmaps_hi; i++)
    if (nf->maps[i].used && now - nf->maps[i].last_ns >= gw->p.udp_timeout_ns)
      map_close(gw, &nf->maps[i]);
  for (uint32_t i = 0; i < FWD_MAX; i++)
    if (nf->ents[i].used && !nf->ents[i].closing && nf->ents[i].lfd >= 0)
      arm_accept(gw, &nf->ents[i]); /* one that found no SQE */
}

void nat_fwd_room_gone(struct gateway *gw, uint32_t room)
{
  struct nat_fwd *nf = gw->fwd;
  for (uint32_t i = 0; nf && i < nf->nmaps_hi; i++)
    if (nf->maps[i].used && nf->maps[i].room == room)
      map_close(gw, &nf->maps[i]);
}

/* ---- adding and removing ---- */

static int open_socket(struct gateway *gw, struct fwd_ent *e)
{
  char a[16];
  net_ip_str(e->spec.bind_ip, a);
  if (e->spec.proto == IPPROTO_UDP) {
    struct io_udp_opts o = {.bind_addr = a, .port = e->spec.host_port};
    return io_udp_open_ex(gw->io, &o, udp_recv, e, &e->usock);
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons(e->spec.host_port),
                           .sin_addr.s_addr = htonl(e->spec.bind_ip)};
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  e->lfd = fd;
  arm_accept(gw, e);
  return 0;
}

int gateway_fwd_add(struct gateway *gw, const struct fwd_spec *spec, uint32_t *id)
{
  struct nat_fwd *nf = gw->fwd;
  if (!nf || !gw->addr || !gw->addr->vm_lookup)
    return -ENOTSUP;
  struct fwd_ent *e = NULL;
  for (uint32_t i = 0; i < FWD_MAX; i++) {
    struct fwd_ent *x = &nf->ents[i];
    if (x->used && !x->closing && fwd_spec_same_socket(&x->spec, spec))
      return -EEXIST;
    if (!x->used && !e)
      e = x;
  }
  if (!e)
    return -ENOSPC;
  uint16_t gen = e->gen;
  memset(e, 0, sizeof(*e));
  e->gen = gen;
  e->gw = gw;
  e->spec = *spec;
  e->lfd = -1;
  e->used = true;
  int rc = open_socket(gw, e);
  if (rc < 0) {
    ent_free(gw, e);
    return rc;
  }
  e->id = ++nf->next_id;
  *id = e->id;
  fwd_log(gw, "forward opened", spec);
  return 0;
}

static void ent_close(struct gateway *gw, struct fwd_ent *e)
{
  struct nat_fwd *nf = gw->fwd;
  uint32_t slot = (uint32_t)(e - nf->ents);
  for (uint32_t i = 0; i < nf->nmaps_hi; i++)
    if (nf->maps[i].used && nf->maps[i].ref == tcp_ref(e, slot))
      map_close(gw, &nf->maps[i]);
  if (e->usock) {
    io_udp_close(gw->io, e->usock);
    e->usock = NULL;
  }
  if (e->lfd >= 0 && e->accept_armed) {
    /* the accept holds the socket: cancel it, close when it is back */
    struct io_uring_sqe *sqe = io_sqe(gw->io);
    if (sqe) {
      e->closing = true;
      io_uring_prep_cancel_fd(sqe, e->lfd, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_NAT_FWD, FUDX(K_CANCEL, 0, 0xff)));
      return;
    }
    shutdown(e->lfd, SHUT_RDWR); /* the accept fails and comes back */
    e->closing = true;
    return;
  }
  if (e->lfd >= 0)
    close(e->lfd);
  e->lfd = -1;
  ent_free(gw, e);
}

int gateway_fwd_del(struct gateway *gw, uint32_t id)
{
  struct nat_fwd *nf = gw->fwd;
  for (uint32_t i = 0; nf && i < FWD_MAX; i++) {
    struct fwd_ent *e = &nf->ents[i];
    if (e->used && !e->closing && e->id == id) {
      fwd_log(gw, "forward closed", &e->spec);
      ent_close(gw, e);
      return 0;
    }
  }
  return -ENOENT;
}

uint32_t gateway_fwd_list(const struct gateway *gw, struct fwd_info *out, uint32_t cap)
{
  const struct nat_fwd *nf = gw->fwd;
  uint32_t n = 0;
  for (uint32_t i = 0; nf && i < FWD_MAX; i++) {
    const struct fwd_ent *e = &nf->ents[i];
    if (!e->used || e->closing)
      continue;
    if (n < cap)
      out[n] = (struct fwd_info){
          .id = e->id,
          .spec = e->spec,
          .active = atomic_load_explicit(&nf->cnt->active[i], memory_order_relaxed),
          .accepted = atomic_load_explicit(&nf->cnt->served[i], memory_order_relaxed),
          .refused = atomic_load_explicit(&nf->cnt->refused[i], memory_order_relaxed)};
    n++;
  }
  return n;
}

int nat_fwd_init(struct gateway *gw)
{
  if (!gw->addr || !gw->addr->vm_lookup || !gw->p.max_fwd_conns)
    return 0; /* no forwarding on this gateway */
  struct nat_fwd *nf = calloc(1, sizeof(*nf));
  if (!nf)
    return -ENOMEM;
  nf->maps = calloc(gw->p.max_fwd_conns, sizeof(*nf->maps));
  if (!nf->maps) {
    free(nf);
    return -ENOMEM;
  }
  for (uint32_t i = 0; i < FWD_MAX; i++)
    nf->ents[i].lfd = -1;
  nf->cnt = gw->p.fwd_counts ? gw->p.fwd_counts : &nf->own;
  gw->fwd = nf;
  int rc = io_set_handler(gw->io, IO_OP_NAT_FWD, on_cqe, gw);
  for (uint32_t i = 0; rc == 0 && i < gw->p.nforwards; i++) {
    uint32_t id;
    if ((rc = gateway_fwd_add(gw, &gw->p.forwards[i], &id)) < 0) {
      char spec[400];
      fwd_spec_format(&gw->p.forwards[i], spec, sizeof(spec));
      log_emit(LOG_ERROR, "forward cannot be opened", "forward=%s error=%s", LOG_Q(spec),
               LOG_Q(strerror(-rc)));
    }
  }
  return rc;
}

void nat_fwd_fini(struct gateway *gw)
{
  struct nat_fwd *nf = gw->fwd;
  if (!nf)
    return;
  for (uint32_t i = 0; i < FWD_MAX; i++) {
    struct fwd_ent *e = &nf->ents[i];
    if (e->lfd >= 0)
      close(e->lfd);
    if (e->usock)
      io_udp_close(gw->io, e->usock);
  }
  free(nf->maps);
  free(nf);
  gw->fwd = NULL;
}
