/*
 * hostaddr: the host's local IPv4 routes, mirrored from rtnetlink. See
 * include/wtrelay/hostaddr.h.
 *
 * Every netlink byte goes through hostaddr_input(), which walks messages
 * and attributes with the length checks of NLMSG_OK / RTA_OK and copies
 * headers out before reading them, so a short or odd buffer is an error,
 * never a read outside it.
 */
#include "wtrelay/hostaddr.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>

#include "wtrelay/counter.h"
#include "wtrelay/io.h"
#include "wtrelay/log.h"
#include "wtrelay/net6.h"

static uint32_t mask_of(uint8_t len)
{
  return len ? ~0u << (32 - len) : 0;
}

void hostaddr_init(struct hostaddr *h)
{
  memset(h, 0, sizeof(*h));
  h->fd = -1;
}

bool hostaddr_is_local(const struct hostaddr *h, uint32_t ip)
{
  for (uint32_t i = 0; i < h->n; i++)
    if (h->r[i].family == AF_INET && h->r[i].type != RTN_UNICAST &&
        (ip & h->r[i].mask) == h->r[i].net)
      return true;
  return false;
}

bool hostaddr_is_local6(const struct hostaddr *h, const uint8_t a[16])
{
  for (uint32_t i = 0; i < h->n; i++)
    if (h->r[i].family == AF_INET6 && h->r[i].type != RTN_UNICAST &&
        net6_in_prefix(a, h->r[i].net6, h->r[i].len))
      return true;
  return false;
}

bool hostaddr_has_route6(const struct hostaddr *h)
{
  for (uint32_t i = 0; i < h->n; i++)
    if (h->r[i].family == AF_INET6 && h->r[i].type == RTN_UNICAST)
      return true;
  return false;
}

/* An IPv6 unicast route of the main table toward the internet: the
 * default route, or one that covers all of 2000::/3. Only these are kept
 * (a handful), never the host's other routes (a full routing table would
 * not fit, nor does the gateway need it). */
static bool route6_to_internet(const struct hostaddr_route *k)
{
  static const uint8_t global[16] = {0x20};
  return k->table == RT_TABLE_MAIN && net6_in_prefix(global, k->net6, k->len) && k->len <= 3;
}

static struct hostaddr_route *find(struct hostaddr *h, const struct hostaddr_route *k)
{
  for (uint32_t i = 0; i < h->n; i++) {
    struct hostaddr_route *r = &h->r[i];
    if (r->family == k->family && r->net == k->net && memcmp(r->net6, k->net6, 16) == 0 &&
        r->len == k->len && r->type == k->type && r->table == k->table && r->oif == k->oif)
      return r;
  }
  return NULL;
}

static void route_add(struct hostaddr *h, const struct hostaddr_route *k)
{
  struct hostaddr_route *r = find(h, k);
  if (r) {
    r->stale = false;
    return;
  }
  if (h->n >= HOSTADDR_MAX) {
    h->ctr.full++;
    log_warn("local route table full: a local destination may not be refused", "max=%u",
             HOSTADDR_MAX);
    return;
  }
  h->r[h->n++] = *k;
  h->ctr.added++;
}

static void route_del(struct hostaddr *h, const struct hostaddr_route *k)
{
  struct hostaddr_route *r = find(h, k);
  if (!r)
    return;
  *r = h->r[--h->n];
  h->ctr.removed++;
}

/* One RTM_NEWROUTE / RTM_DELROUTE message body (after the nlmsghdr). */
static int route_msg(struct hostaddr *h, uint16_t type, const uint8_t *p, size_t len)
{
  struct rtmsg rtm;
  if (len < NLMSG_ALIGN(sizeof(rtm)))
    return -EINVAL;
  memcpy(&rtm, p, sizeof(rtm));
  bool v6 = rtm.rtm_family == AF_INET6;
  if (rtm.rtm_family != AF_INET && !v6)
    return 0;
  if (rtm.rtm_type != RTN_LOCAL && rtm.rtm_type != RTN_BROADCAST && rtm.rtm_type != RTN_ANYCAST &&
      !(v6 && rtm.rtm_type == RTN_UNICAST))
    return 0;
  size_t alen_want = v6 ? 16 : 4;
  if (rtm.rtm_dst_len > alen_want * 8)
    return -EINVAL;
  struct hostaddr_route k = {.family = rtm.rtm_family,
                             .len = rtm.rtm_dst_len,
                             .type = rtm.rtm_type,
                             .table = rtm.rtm_table};
  uint8_t dst[16] = {0};
  int alen = (int)(len - NLMSG_ALIGN(sizeof(rtm))); /* int: RTA_NEXT may step below 0 */
  /* RTA_OK / RTA_NEXT check every attribute length against what is left */
  for (const struct rtattr *a = (const struct rtattr *)(const void *)(p + NLMSG_ALIGN(sizeof(rtm)));
       RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
    size_t plen = (size_t)RTA_PAYLOAD(a);
    if (a->rta_type == RTA_DST && plen == alen_want) {
      memcpy(dst, RTA_DATA(a), plen);
    } else if (a->rta_type == RTA_TABLE && plen == 4) {
      memcpy(&k.table, RTA_DATA(a), 4);
    } else if (a->rta_type == RTA_OIF && plen == 4) {
      memcpy(&k.oif, RTA_DATA(a), 4);
    }
  }
  if (v6) {
    for (unsigned i = k.len; i < 128; i++) /* host bits off */
      dst[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
    memcpy(k.net6, dst, 16);
    if (k.type == RTN_UNICAST && !route6_to_internet(&k))
      return 0;
  } else {
    uint32_t d;
    memcpy(&d, dst, 4);
    k.mask = mask_of(k.len);
    k.net = ntohl(d) & k.mask;
  }
  if (type == RTM_NEWROUTE)
    route_add(h, &k);
  else
    route_del(h, &k);
  return 0;
}

int hostaddr_input(struct hostaddr *h, const uint8_t *buf, size_t len, uint32_t dump_seq)
{
  int done = 0;
  if (len > HOSTADDR_BUF || ((uintptr_t)buf & (NLMSG_ALIGNTO - 1)))
    return -EINVAL;
  /* Each message's length is checked against what is left before its body
   * is read; the next one starts at the aligned end (a short tail ends the
   * walk). */
  for (size_t off = 0; len - off >= NLMSG_HDRLEN;) {
    const struct nlmsghdr *m = (const struct nlmsghdr *)(const void *)(buf + off);
    if (m->nlmsg_len < NLMSG_HDRLEN || m->nlmsg_len > len - off)
      break;
    const uint8_t *body = NLMSG_DATA(m);
    size_t blen = m->nlmsg_len - NLMSG_HDRLEN;
    size_t step = NLMSG_ALIGN(m->nlmsg_len);
    off = step < len - off ? off + step : len;
    switch (m->nlmsg_type) {
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      if (route_msg(h, m->nlmsg_type, body, blen) < 0)
        return -EINVAL;
      break;
    case NLMSG_DONE:
    case NLMSG_ERROR: /* a failed dump ends it too: the stale entries stay */
      if (!dump_seq || m->nlmsg_seq == dump_seq)
        done = m->nlmsg_type == NLMSG_DONE ? 1 : done;
      break;
    default:
      break;
    }
  }
  return done;
}

static int request_dump(struct hostaddr *h, int flags)
{
  struct {
    struct nlmsghdr n;
    struct rtmsg r;
  } req;
  memset(&req, 0, sizeof(req));
  req.n.nlmsg_len = NLMSG_LENGTH(sizeof(req.r));
  req.n.nlmsg_type = RTM_GETROUTE;
  req.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.n.nlmsg_seq = ++h->seq;
  req.r.rtm_family = AF_UNSPEC; /* every family: IPv4 and IPv6 */
  struct sockaddr_nl k = {.nl_family = AF_NETLINK};
  if (sendto(h->fd, &req, req.n.nlmsg_len, flags, (struct sockaddr *)&k, sizeof(k)) < 0)
    return -errno;
  return (int)h->seq;
}

static void arm(struct hostaddr *h)
{
  struct io_uring_sqe *sqe = io_sqe(h->io);
  if (!sqe) {
    h->ctr.errors++;
    h->armed = false;
    return;
  }
  io_uring_prep_recv(sqe, h->fd, h->buf, sizeof(h->buf), 0);
  io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_HOSTADDR, 0));
  h->armed = true;
}

/* Notifications were lost: refuse everything known until a fresh dump
 * says which entries still exist. */
void hostaddr_mark_stale(struct hostaddr *h)
{
  for (uint32_t i = 0; i < h->n; i++)
    h->r[i].stale = true;
}

void hostaddr_sweep_stale(struct hostaddr *h)
{
  for (uint32_t i = 0; i < h->n;) {
    if (h->r[i].stale) {
      h->r[i] = h->r[--h->n];
      h->ctr.removed++;
    } else {
      i++;
    }
  }
}

static void resync(struct hostaddr *h)
{
  hostaddr_mark_stale(h);
  int seq = request_dump(h, MSG_DONTWAIT);
  if (seq < 0) {
    h->ctr.errors++;
    log_warn("cannot request the local routes again", "err=\"%s\"", strerror(-seq));
    return;
  }
  h->dump_seq = (uint32_t)seq;
}

static void on_recv(void *ctx, uint32_t idx, struct io_uring_cqe *cqe)
{
  struct hostaddr *h = ctx;
  (void)idx;
  h->armed = false;
  if (h->fd < 0)
    return;
  if (cqe->res > 0) {
    int rc = hostaddr_input(h, h->buf, (size_t)cqe->res, h->dump_seq);
    if (rc < 0)
      h->ctr.errors++;
    if (rc == 1 && h->dump_seq) {
      hostaddr_sweep_stale(h);
      h->dump_seq = 0;
      h->ctr.resyncs++;
    }
  } else if (cqe->res == -ENOBUFS) {
    h->ctr.overruns++;
    log_warn("rtnetlink overrun: re-reading the local routes", "overruns=%llu",
             (unsigned long long)h->ctr.overruns);
    resync(h);
  } else if (cqe->res < 0 && cqe->res != -EINTR && cqe->res != -EAGAIN) {
    h->ctr.errors++;
    if (cqe->res == -EBADF || cqe->res == -ECANCELED)
      return;
  }
  arm(h);
}

int hostaddr_open(struct hostaddr *h, struct io *io)
{
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0)
    return -errno;
  int rcv = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK,
                           .nl_groups = RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE};
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  h->fd = fd;
  h->io = io;
  /* start-up: read the whole table before the first guest packet */
  int seq = request_dump(h, 0);
  if (seq < 0)
    goto fail;
  for (int turns = 0; turns < 100000; turns++) {
    ssize_t n = recv(fd, h->buf, sizeof(h->buf), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      seq = -errno;
      goto fail;
    }
    int rc = hostaddr_input(h, h->buf, (size_t)n, (uint32_t)seq);
    if (rc < 0) {
      seq = rc;
      goto fail;
    }
    if (rc == 1)
      break;
  }
  int rc = io_set_handler(io, IO_OP_HOSTADDR, on_recv, h);
  if (rc < 0) {
    seq = rc;
    goto fail;
  }
  arm(h);
  return h->armed ? 0 : -EBUSY;
fail:
  close(fd);
  h->fd = -1;
  return seq;
}

void hostaddr_fini(struct hostaddr *h)
{
  if (h->fd >= 0) {
    if (h->io)
      io_set_handler(h->io, IO_OP_HOSTADDR, NULL, NULL);
    close(h->fd);
  }
  h->fd = -1;
}

/* ---- counters ---- */

/* The route mirror's counters for /metrics and the exit log, one row per
 * field (test_counter checks that every field has exactly one). */
#define H(fam, help, labels, key, field)                                                           \
  COUNTER_DEF(struct hostaddr_counters, fam, help, labels, "hostaddr counters", key, field)
#define PROB(kind, key, field)                                                                     \
  H("wtrelay_host_route_monitor_problems_total", NULL, "kind=\"" kind "\"", key, field)
static const struct counter_def hostaddr_counter_defs[] = {
    H("wtrelay_host_local_routes_added_total", "local routes the mirror added (rtnetlink)", NULL,
      "added", added),
    H("wtrelay_host_local_routes_removed_total", "local routes the mirror removed (rtnetlink)",
      NULL, "removed", removed),
    H("wtrelay_host_route_monitor_problems_total",
      "problems of the local route mirror: rtnetlink overruns, full resyncs after them, a full "
      "table, read errors",
      "kind=\"overrun\"", "overruns", overruns),
    PROB("resync", "resyncs", resyncs),
    PROB("full", "full", full),
    PROB("error", "errors", errors),
};
#undef PROB
#undef H

const struct counter_table hostaddr_counter_table =
    COUNTER_TABLE(hostaddr_counter_defs, struct hostaddr_counters);
