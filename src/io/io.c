/*
 * io: the worker's io_uring. Theory of operation is in include/wtrelay/io.h.
 *
 * Buffer ring: rx_bufs buffers of rx_buf_size bytes, registered as group 0
 * (liburing 2.3 has no io_uring_setup_buf_ring, so the ring memory is mapped
 * here and registered with io_uring_register_buf_ring). Each buffer holds an
 * io_uring_recvmsg_out header, the peer address, the control messages and
 * the payload.
 */
#include "wtrelay/io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "wtrelay/counter.h"
#include "wtrelay/log.h"
#include "wtrelay/timer.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define IO_BGID 0
#define IO_CTL_LEN 128
/* The multishot layout in a buffer is: struct io_uring_recvmsg_out (16
 * bytes), msg_namelen bytes for the peer's address, msg_controllen bytes
 * of control messages, the payload. The control messages start right after
 * the name area, so the area must keep them aligned for struct cmsghdr:
 * sizeof(struct sockaddr_in6) (28) put them at offset 44, and every read
 * of a cmsghdr field was a misaligned access (UBSan). */
#define IO_NAME_LEN CMSG_ALIGN(sizeof(struct sockaddr_in6))
_Static_assert(sizeof(struct io_uring_recvmsg_out) % _Alignof(struct cmsghdr) == 0 &&
                   IO_NAME_LEN % _Alignof(struct cmsghdr) == 0,
               "control messages of a multishot receive must start aligned");
/* A send's user_data index: arena | message << 8 (io_init checks the
 * bounds), so a failed send names the message, and so its socket. */
#define IO_TX_ARENA_BITS 8

_Static_assert(IO_OP_MAX <= 0xffff, "op must fit 16 bits of user_data");
_Static_assert(sizeof(void *) == 8, "user_data tagging assumes 64-bit");

void io_params_default(struct io_params *p)
{
  p->max_udp_socks = 64;
  p->sq_entries = 512;
  p->rx_bufs = 128;
  p->rx_buf_size = 65536;
  p->tx_arenas = 8;
  p->tx_arena_size = 256 * 1024;
  p->tx_max_pkts = 512;
}

static int arenas_init(struct io *io)
{
  io->arenas = calloc(io->p.tx_arenas, sizeof(*io->arenas));
  if (!io->arenas)
    return -ENOMEM;
  for (unsigned i = 0; i < io->p.tx_arenas; i++) {
    struct io_arena *a = &io->arenas[i];
    a->data = malloc(io->p.tx_arena_size);
    a->pkts = calloc(io->p.tx_max_pkts, sizeof(*a->pkts));
    a->msgs = calloc(io->p.tx_max_pkts, sizeof(*a->msgs));
    if (!a->data || !a->pkts || !a->msgs)
      return -ENOMEM;
  }
  return 0;
}

int io_init(struct io *io, const struct io_params *p)
{
  int rc;
  memset(io, 0, sizeof(*io));
  io->p = *p;
  io->sigfd = -1;
  if (p->rx_bufs == 0 || (p->rx_bufs & (p->rx_bufs - 1)) || p->rx_bufs > 32768 ||
      p->max_udp_socks == 0 || p->max_udp_socks > IO_UDP_SLOT_MASK || p->tx_arenas == 0 ||
      p->tx_arenas > (1u << IO_TX_ARENA_BITS) || p->tx_max_pkts > (1u << (32 - IO_TX_ARENA_BITS)))
    return -EINVAL;
  io->socks = calloc(p->max_udp_socks, sizeof(*io->socks));
  io->sock_free = calloc(p->max_udp_socks, sizeof(*io->sock_free));
  io->rearm = calloc(p->max_udp_socks, sizeof(*io->rearm));
  io->closing = calloc(p->max_udp_socks, sizeof(*io->closing));
  if (!io->socks || !io->sock_free || !io->rearm || !io->closing) {
    io_fini(io);
    return -ENOMEM;
  }

  struct io_uring_params up = {0};
  up.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
             IORING_SETUP_DEFER_TASKRUN;
  up.cq_entries = p->sq_entries * 4;
  up.flags |= IORING_SETUP_CQSIZE;
  rc = io_uring_queue_init_params(p->sq_entries, &io->ring, &up);
  if (rc < 0) {
    /* Older kernels: retry without the optional flags. */
    memset(&up, 0, sizeof(up));
    up.flags = IORING_SETUP_CQSIZE;
    up.cq_entries = p->sq_entries * 4;
    rc = io_uring_queue_init_params(p->sq_entries, &io->ring, &up);
    if (rc < 0)
      return rc;
  }

  io->br_size = (size_t)p->rx_bufs * sizeof(struct io_uring_buf);
  io->br = mmap(NULL, io->br_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (io->br == MAP_FAILED) {
    io->br = NULL;
    rc = -errno;
    goto fail;
  }
  struct io_uring_buf_reg reg = {
      .ring_addr = (unsigned long)io->br, .ring_entries = p->rx_bufs, .bgid = IO_BGID};
  rc = io_uring_register_buf_ring(&io->ring, &reg, 0);
  if (rc < 0)
    goto fail;
  io_uring_buf_ring_init(io->br);
  io->rxmem = malloc((size_t)p->rx_bufs * p->rx_buf_size);
  if (!io->rxmem) {
    rc = -ENOMEM;
    goto fail;
  }
  io->rx_mask = io_uring_buf_ring_mask(p->rx_bufs);
  for (unsigned i = 0; i < p->rx_bufs; i++)
    io_uring_buf_ring_add(io->br, io->rxmem + (size_t)i * p->rx_buf_size, p->rx_buf_size,
                          (unsigned short)i, io->rx_mask, (int)i);
  io_uring_buf_ring_advance(io->br, (int)p->rx_bufs);

  if ((rc = arenas_init(io)) < 0)
    goto fail;
  return 0;
fail:
  io_fini(io);
  return rc;
}

/* Cancels every request still in the ring and reaps the completions
 * (bounded: 200 ms). The kernel tears a ring down asynchronously after
 * io_uring_queue_exit, and until then an in-flight receive keeps its
 * socket alive: a relay restarted at once found its port still bound
 * ("Address already in use"). After this, closing the fds frees them. */
static void io_quiesce(struct io *io)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
  if (!sqe)
    return;
  io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
  io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_NOP, 0));
  for (int round = 0; round < 20; round++) {
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_submit_and_wait_timeout(&io->ring, &cqe, 1, &ts, NULL);
    if (rc < 0 && rc != -ETIME && rc != -EINTR)
      return;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&io->ring, head, cqe) n++;
    io_uring_cq_advance(&io->ring, n);
    if (!n && rc == -ETIME)
      return; /* nothing more is coming */
  }
}

void io_fini(struct io *io)
{
  if (io->ring.ring_fd > 0) {
    io_quiesce(io);
    io_uring_queue_exit(&io->ring);
  }
  io->ring.ring_fd = -1;
  for (unsigned i = 0; io->socks && i < io->nsocks; i++) {
    if (io->socks[i] && io->socks[i]->fd >= 0)
      close(io->socks[i]->fd);
    free(io->socks[i]);
  }
  io->nsocks = 0;
  free(io->socks);
  free(io->sock_free);
  free(io->rearm);
  free(io->closing);
  io->socks = NULL;
  io->sock_free = NULL;
  io->rearm = NULL;
  io->closing = NULL;
  for (unsigned i = 0; i < io->npktfds; i++) {
    struct io_pktfd *d = io->pktfds[i];
    free(d->rbuf);
    free(d->wbuf);
    free(d->wfree);
    free(d->wpend);
    free(d->wlen);
    free(d->rarmed);
    free(d);
  }
  io->npktfds = 0;
  if (io->sigfd >= 0)
    close(io->sigfd);
  io->sigfd = -1;
  if (io->br)
    munmap(io->br, io->br_size);
  io->br = NULL;
  free(io->rxmem);
  io->rxmem = NULL;
  if (io->arenas) {
    for (unsigned i = 0; i < io->p.tx_arenas; i++) {
      free(io->arenas[i].data);
      free(io->arenas[i].pkts);
      free(io->arenas[i].msgs);
    }
    free(io->arenas);
    io->arenas = NULL;
  }
}

int io_sockaddr_parse(const char *host, uint16_t port, union io_sockaddr *out, socklen_t *outlen)
{
  memset(out, 0, sizeof(*out));
  if (inet_pton(AF_INET, host, &out->in.sin_addr) == 1) {
    out->in.sin_family = AF_INET;
    out->in.sin_port = htons(port);
    *outlen = sizeof(out->in);
    return 0;
  }
  if (inet_pton(AF_INET6, host, &out->in6.sin6_addr) == 1) {
    out->in6.sin6_family = AF_INET6;
    out->in6.sin6_port = htons(port);
    *outlen = sizeof(out->in6);
    return 0;
  }
  return -EINVAL;
}

uint64_t io_sockaddr_client_key(const union io_sockaddr *a)
{
  /* IPv4 keys sit in 0xffff0001xxxxxxxx, which as an IPv6 /64 would be a
   * multicast prefix (ff00::/8): never a client's source. */
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  uint64_t k = 0;
  if (a->sa.sa_family == AF_INET) {
    return 0xffff000100000000ull | ntohl(a->in.sin_addr.s_addr);
  } else if (a->sa.sa_family == AF_INET6) {
    const uint8_t *b = a->in6.sin6_addr.s6_addr;
    if (memcmp(b, mapped, sizeof(mapped)) == 0)
      return 0xffff000100000000ull | (uint64_t)b[12] << 24 | (uint64_t)b[13] << 16 |
             (uint64_t)b[14] << 8 | b[15];
    for (int i = 0; i < 8; i++)
      k = k << 8 | b[i];
    return k ? k : 1; /* ::/64 is no client's, but keep the key nonzero */
  }
  return 0;
}

void io_sockaddr_str(const union io_sockaddr *a, char *buf, size_t cap)
{
  char host[INET6_ADDRSTRLEN] = "?";
  if (a->sa.sa_family == AF_INET) {
    inet_ntop(AF_INET, &a->in.sin_addr, host, sizeof(host));
    snprintf(buf, cap, "%s:%u", host, ntohs(a->in.sin_port));
  } else if (a->sa.sa_family == AF_INET6) {
    if (IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr))
      inet_ntop(AF_INET, &a->in6.sin6_addr.s6_addr[12], host, sizeof(host));
    else
      inet_ntop(AF_INET6, &a->in6.sin6_addr, host, sizeof(host));
    snprintf(buf, cap, IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr) ? "%s:%u" : "[%s]:%u", host,
             ntohs(a->in6.sin6_port));
  } else {
    snprintf(buf, cap, "?");
  }
}

bool io_sockaddr_equal(const union io_sockaddr *a, const union io_sockaddr *b)
{
  if (a->sa.sa_family != b->sa.sa_family)
    return false;
  if (a->sa.sa_family == AF_INET)
    return a->in.sin_port == b->in.sin_port && a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
  if (a->sa.sa_family == AF_INET6)
    return a->in6.sin6_port == b->in6.sin6_port &&
           memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0;
  return a->sa.sa_family == 0;
}

static struct io_uring_sqe *get_sqe(struct io *io)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
  if (!sqe) {
    io_uring_submit(&io->ring);
    sqe = io_uring_get_sqe(&io->ring);
  }
  return sqe;
}

struct io_uring_sqe *io_sqe(struct io *io)
{
  return get_sqe(io);
}

int io_set_handler(struct io *io, enum io_op op, io_handler_fn fn, void *ctx)
{
  if (op < IO_OP_USER_FIRST || op > IO_OP_USER_LAST)
    return -EINVAL;
  io->handler[op - IO_OP_USER_FIRST] = fn;
  io->handler_ctx[op - IO_OP_USER_FIRST] = ctx;
  return 0;
}

static int udp_arm(struct io *io, struct io_udp_sock *s)
{
  struct io_uring_sqe *sqe = get_sqe(io);
  if (!sqe)
    return -EBUSY;
  io_uring_prep_recvmsg_multishot(sqe, s->fd, &s->rmsg, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = IO_BGID;
  io_uring_sqe_set_data64(sqe,
                          IO_UD(IO_OP_UDP_RECV, s->idx | (uint32_t)s->gen << IO_UDP_GEN_SHIFT));
  s->armed = true;
  return 0;
}

int io_route_source(const union io_sockaddr *remote, socklen_t remotelen, union io_sockaddr *out)
{
  int fd = socket(remote->sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int rc = 0;
  socklen_t len = sizeof(*out);
  memset(out, 0, sizeof(*out));
  if (connect(fd, &remote->sa, remotelen) < 0 || getsockname(fd, &out->sa, &len) < 0)
    rc = -errno;
  close(fd);
  if (rc == 0) {
    if (out->sa.sa_family == AF_INET)
      out->in.sin_port = 0;
    else
      out->in6.sin6_port = 0;
  }
  return rc;
}

static void setsockopt_int(int fd, int level, int name, int val)
{
  (void)setsockopt(fd, level, name, &val, sizeof(val));
}

int io_udp_open(struct io *io, const char *bind_addr, uint16_t port, io_udp_recv_fn fn, void *ctx,
                struct io_udp_sock **out)
{
  return io_udp_open_quic(io, bind_addr, port, false, fn, ctx, out);
}

int io_udp_port_claim(const char *bind_addr, uint16_t port, bool probe)
{
  union io_sockaddr sa;
  socklen_t salen;
  int rc = io_sockaddr_parse(bind_addr, port, &sa, &salen);
  if (rc < 0)
    return rc;
  if (probe) {
    /* A plain bind (no SO_REUSEPORT) fails wherever another socket holds an
     * overlapping address: the same one, the wildcard over a specific one
     * or the reverse, as the bind of a single worker would. */
    int pfd = socket(sa.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (pfd < 0)
      return -errno;
    if (sa.sa.sa_family == AF_INET6)
      setsockopt_int(pfd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    rc = bind(pfd, &sa.sa, salen) < 0 ? -errno : 0;
    close(pfd);
    if (rc < 0)
      return rc;
  }
  char host[INET6_ADDRSTRLEN];
  const void *a =
      sa.sa.sa_family == AF_INET ? (const void *)&sa.in.sin_addr : (const void *)&sa.in6.sin6_addr;
  if (!inet_ntop(sa.sa.sa_family, a, host, sizeof(host)))
    return -errno;
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  /* sun_path[0] = 0: the abstract namespace, no file to clean up */
  int n =
      snprintf(un.sun_path + 1, sizeof(un.sun_path) - 1, "wtrelay/udp/%s/%u", host, (unsigned)port);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (bind(fd, (struct sockaddr *)&un,
           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  return fd;
}

int io_udp_open_quic(struct io *io, const char *bind_addr, uint16_t port, bool reuseport,
                     io_udp_recv_fn fn, void *ctx, struct io_udp_sock **out)
{
  struct io_udp_opts o = {.bind_addr = bind_addr,
                          .reuseport = reuseport,
                          .port = port,
                          .bufsize = 8 << 20,
                          .pktinfo = true,
                          .gro = true,
                          .gso = true,
                          .pmtu_probe = true};
  return io_udp_open_ex(io, &o, fn, ctx, out);
}

int io_udp_open_ex(struct io *io, const struct io_udp_opts *o, io_udp_recv_fn fn, void *ctx,
                   struct io_udp_sock **out)
{
  union io_sockaddr sa;
  socklen_t salen;
  int rc;
  uint32_t slot;
  if (io->nsock_free)
    slot = io->sock_free[io->nsock_free - 1];
  else if (io->nsocks < io->p.max_udp_socks)
    slot = io->nsocks;
  else
    return -ENOSPC;
  if ((rc = io_sockaddr_parse(o->bind_addr, o->port, &sa, &salen)) < 0)
    return rc;
  int fd = socket(sa.sa.sa_family, (o->raw ? SOCK_RAW : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  o->proto);
  if (fd < 0)
    return -errno;
  /* No SO_REUSEADDR/SO_REUSEPORT: a second relay on the same port must
   * fail with EADDRINUSE, not silently take half of the packets (and so
   * half of every connection). Several workers will share the port through
   * SO_REUSEPORT sockets of one process, made together at start-up
   * (o->reuseport, asked for only by the relay when --workers > 1). */
  int one = 1;
  if (o->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  if (o->bufsize) {
    setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, o->bufsize);
    setsockopt_int(fd, SOL_SOCKET, SO_SNDBUF, o->bufsize);
  }
  if (sa.sa.sa_family == AF_INET6) {
    setsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    if (o->pktinfo)
      setsockopt_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
  }
  if (o->pktinfo)
    setsockopt_int(fd, IPPROTO_IP, IP_PKTINFO, 1);
  if (o->recverr) {
    setsockopt_int(fd, IPPROTO_IP, IP_RECVERR, 1);
    if (sa.sa.sa_family == AF_INET6)
      setsockopt_int(fd, IPPROTO_IPV6, IPV6_RECVERR, 1);
  }
  if (o->pmtu_probe) {
    /* Path MTU: never fragment; ngtcp2 probes and sizes packets itself. */
    setsockopt_int(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE);
    if (sa.sa.sa_family == AF_INET6)
      setsockopt_int(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IP_PMTUDISC_PROBE);
  }
  one = 1;
  bool gro = o->gro && !o->proto && setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) == 0;
  if (!o->raw && bind(fd, &sa.sa, salen) < 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  struct io_udp_sock *s = io->socks[slot];
  uint16_t gen = s ? (uint16_t)(s->gen + 1) : 0;
  if (!s && !(s = calloc(1, sizeof(*s)))) {
    close(fd);
    return -ENOMEM;
  }
  memset(s, 0, sizeof(*s));
  s->fd = fd;
  s->family = sa.sa.sa_family;
  s->idx = slot;
  s->gen = gen & (0xffffffffu >> IO_UDP_GEN_SHIFT);
  s->gro = gro;
  s->no_gso = !o->gso || o->proto != 0;
  s->fn = fn;
  s->on_err = o->on_err;
  s->ctx = ctx;
  s->rmsg.msg_namelen = IO_NAME_LEN;
  s->rmsg.msg_controllen = IO_CTL_LEN;
  io->socks[slot] = s;
  if (slot == io->nsocks)
    io->nsocks++;
  else
    io->nsock_free--;
  io->open_socks++;
  s->port = io_udp_port(s);
  if ((rc = udp_arm(io, s)) < 0) {
    io_udp_close(io, s);
    return rc;
  }
  *out = s;
  return 0;
}

void io_udp_close(struct io *io, struct io_udp_sock *s)
{
  if (s->closing)
    return;
  s->closing = true;
  struct io_uring_sqe *sqe = get_sqe(io);
  if (sqe) {
    io_uring_prep_cancel64(sqe,
                           IO_UD(IO_OP_UDP_RECV, s->idx | (uint32_t)s->gen << IO_UDP_GEN_SHIFT), 0);
    io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_NOP, 0));
  }
  io->closing[io->nclosing++] = s;
}

/* After a dispatch: sockets closed during the last turn had their sends
 * and the cancel submitted; close their fds and free their slots. */
static void close_pending(struct io *io)
{
  for (uint32_t i = 0; i < io->nclosing; i++) {
    struct io_udp_sock *s = io->closing[i];
    close(s->fd);
    s->fd = -1;
    s->gen = (uint16_t)((s->gen + 1) & (0xffffffffu >> IO_UDP_GEN_SHIFT));
    s->fn = NULL;
    io->sock_free[io->nsock_free++] = s->idx;
    io->open_socks--;
  }
  io->nclosing = 0;
}

uint16_t io_udp_port(const struct io_udp_sock *s)
{
  union io_sockaddr sa;
  socklen_t len = sizeof(sa);
  if (getsockname(s->fd, &sa.sa, &len) < 0)
    return 0;
  return ntohs(sa.sa.sa_family == AF_INET ? sa.in.sin_port : sa.in6.sin6_port);
}

/* ---- packet devices ---- */

static int pktfd_arm(struct io *io, struct io_pktfd *d, unsigned slot)
{
  struct io_uring_sqe *sqe = get_sqe(io);
  if (!sqe)
    return -EBUSY;
  io_uring_prep_read(sqe, d->fd, d->rbuf + (size_t)slot * d->bufsize, d->bufsize, 0);
  io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_PKTFD_READ, (uint64_t)d->idx << 16 | slot));
  d->rarmed[slot] = true;
  return 0;
}

int io_pktfd_open(struct io *io, int fd, unsigned nread, unsigned nwrite, unsigned bufsize,
                  io_pktfd_recv_fn fn, void *ctx, struct io_pktfd **out)
{
  if (io->npktfds >= IO_MAX_PKTFDS)
    return -ENOSPC;
  if (!nread || !nwrite || nread > IO_PKTFD_SLOTS_MAX || nwrite > IO_PKTFD_SLOTS_MAX || !bufsize)
    return -EINVAL;
  struct io_pktfd *d = calloc(1, sizeof(*d));
  if (!d)
    return -ENOMEM;
  d->fd = fd;
  d->idx = io->npktfds;
  d->nread = nread;
  d->nwrite = nwrite;
  d->bufsize = bufsize;
  d->fn = fn;
  d->ctx = ctx;
  d->rbuf = malloc((size_t)nread * bufsize);
  d->wbuf = malloc((size_t)nwrite * bufsize);
  d->wfree = calloc(nwrite, sizeof(*d->wfree));
  d->wpend = calloc(nwrite, sizeof(*d->wpend));
  d->wlen = calloc(nwrite, sizeof(*d->wlen));
  d->rarmed = calloc(nread, sizeof(*d->rarmed));
  if (!d->rbuf || !d->wbuf || !d->wfree || !d->wpend || !d->wlen || !d->rarmed) {
    free(d->rbuf);
    free(d->wbuf);
    free(d->wfree);
    free(d->wpend);
    free(d->wlen);
    free(d->rarmed);
    free(d);
    return -ENOMEM;
  }
  for (unsigned i = 0; i < nwrite; i++)
    d->wfree[d->nwfree++] = (uint16_t)(nwrite - 1 - i);
  io->pktfds[io->npktfds++] = d;
  for (unsigned i = 0; i < nread; i++)
    pktfd_arm(io, d, i);
  *out = d;
  return 0;
}

int io_pktfd_write(struct io *io, struct io_pktfd *d, const struct iovec *iov, int iovcnt)
{
  size_t len = 0;
  for (int i = 0; i < iovcnt; i++)
    len += iov[i].iov_len;
  if (len > d->bufsize)
    return -EMSGSIZE;
  (void)io;
  if (!d->nwfree) {
    d->ctr.tx_full++;
    return -ENOBUFS;
  }
  unsigned slot = d->wfree[--d->nwfree];
  uint8_t *p = d->wbuf + (size_t)slot * d->bufsize;
  for (int i = 0; i < iovcnt; i++) {
    memcpy(p, iov[i].iov_base, iov[i].iov_len);
    p += iov[i].iov_len;
  }
  d->wlen[slot] = (uint32_t)len;
  d->wpend[d->nwpend++] = (uint16_t)slot;
  return 0;
}

/* The frames written this turn go to the ring after the turn's UDP sends
 * (io_flush, io_wait): a write to a TAP runs the receiving stack in the
 * system call, and the QUIC ACK for the datagrams that brought the frames
 * should not wait behind it (the sender's RTT, and with it how much its
 * congestion window lets it send per unit of time, would include it). */
static void pktfd_submit_writes(struct io *io)
{
  for (unsigned k = 0; k < io->npktfds; k++) {
    struct io_pktfd *d = io->pktfds[k];
    for (unsigned i = 0; i < d->nwpend; i++) {
      unsigned slot = d->wpend[i];
      struct io_uring_sqe *sqe = get_sqe(io);
      if (!sqe) {
        d->ctr.tx_full++;
        d->wfree[d->nwfree++] = (uint16_t)slot;
        continue;
      }
      io_uring_prep_write(sqe, d->fd, d->wbuf + (size_t)slot * d->bufsize, d->wlen[slot], 0);
      io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_PKTFD_WRITE, (uint64_t)d->idx << 16 | slot));
    }
    d->nwpend = 0;
  }
}

static void pktfd_complete(struct io *io, bool is_read, uint32_t idx, struct io_uring_cqe *cqe)
{
  uint32_t di = idx >> 16, slot = idx & 0xffff;
  if (di >= io->npktfds)
    return;
  struct io_pktfd *d = io->pktfds[di];
  if (!is_read) {
    if (slot < d->nwrite)
      d->wfree[d->nwfree++] = (uint16_t)slot;
    if (cqe->res < 0) {
      d->ctr.tx_errors++;
    } else {
      d->ctr.tx_pkts++;
      d->ctr.tx_bytes += (uint64_t)cqe->res;
    }
    return;
  }
  if (slot >= d->nread)
    return;
  d->rarmed[slot] = false;
  if (cqe->res > 0) {
    d->ctr.rx_pkts++;
    d->ctr.rx_bytes += (uint64_t)cqe->res;
    if (d->fn)
      d->fn(d->ctx, d, d->rbuf + (size_t)slot * d->bufsize, (size_t)cqe->res);
  } else if (cqe->res < 0 && cqe->res != -EAGAIN && cqe->res != -EINTR) {
    d->ctr.rx_errors++;
    if (cqe->res == -EBADF || cqe->res == -EIO || cqe->res == -ENODEV)
      d->dead = true;
  }
  if (!d->dead)
    pktfd_arm(io, d, slot);
}

static int signal_arm(struct io *io)
{
  struct io_uring_sqe *sqe = get_sqe(io);
  if (!sqe)
    return -EBUSY;
  io_uring_prep_read(sqe, io->sigfd, &io->siginfo, sizeof(io->siginfo), 0);
  io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_SIGNAL, 0));
  return 0;
}

int io_signals(struct io *io, const sigset_t *mask, io_signal_fn fn, void *ctx)
{
  int rc = pthread_sigmask(SIG_BLOCK, mask, NULL);
  if (rc)
    return -rc;
  io->sigfd = signalfd(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (io->sigfd < 0)
    return -errno;
  io->on_signal = fn;
  io->sig_ctx = ctx;
  return signal_arm(io);
}

/* ---- send path ---- */

static struct io_arena *arena_cur(struct io *io)
{
  return &io->arenas[io->cur];
}

uint8_t *io_tx_reserve(struct io *io, size_t maxlen)
{
  struct io_arena *a = arena_cur(io);
  if (a->inflight == 0 && a->npkts == 0)
    a->used = 0;
  if (a->inflight == 0 && a->used + maxlen <= io->p.tx_arena_size && a->npkts < io->p.tx_max_pkts)
    return a->data + a->used;
  /* Current arena is full (or still in flight): flush it and move on. */
  if (a->npkts)
    io_flush(io);
  for (unsigned i = 0; i < io->p.tx_arenas; i++) {
    unsigned n = (io->cur + 1 + i) % io->p.tx_arenas;
    struct io_arena *b = &io->arenas[n];
    if (b->inflight == 0 && b->npkts == 0) {
      io->cur = n;
      b->used = 0;
      if (maxlen > io->p.tx_arena_size)
        return NULL;
      return b->data;
    }
  }
  io->ctr.tx_arena_full++;
  return NULL;
}

void io_tx_commit(struct io *io, size_t len, struct io_udp_sock *s, const union io_sockaddr *dst,
                  socklen_t dstlen, const struct io_local *local)
{
  struct io_arena *a = arena_cur(io);
  struct io_txpkt *p = &a->pkts[a->npkts++];
  p->off = a->used;
  p->len = (uint32_t)len;
  p->sock = s;
  p->dst = *dst;
  p->dstlen = dstlen;
  if (local)
    p->local = *local;
  else
    memset(&p->local, 0, sizeof(p->local));
  a->used += (uint32_t)len;
}

static bool same_flow(const struct io_txpkt *a, const struct io_txpkt *b)
{
  return a->sock == b->sock && io_sockaddr_equal(&a->dst, &b->dst) &&
         a->local.addr.sa.sa_family == b->local.addr.sa.sa_family &&
         (a->local.addr.sa.sa_family == 0 ||
          (a->local.ifindex == b->local.ifindex &&
           (a->local.addr.sa.sa_family == AF_INET
                ? a->local.addr.in.sin_addr.s_addr == b->local.addr.in.sin_addr.s_addr
                : memcmp(&a->local.addr.in6.sin6_addr, &b->local.addr.in6.sin6_addr, 16) == 0)));
}

static size_t build_cmsg(struct io_txmsg *m, const struct io_txpkt *p, uint16_t segsz)
{
  size_t len = 0;
  struct cmsghdr *c = (struct cmsghdr *)m->ctl.buf;
  if (segsz) {
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &segsz, sizeof(segsz));
    len += CMSG_SPACE(sizeof(uint16_t));
    c = (struct cmsghdr *)(m->ctl.buf + len);
  }
  if (p->local.addr.sa.sa_family == AF_INET6 && p->sock->family == AF_INET6) {
    struct in6_pktinfo pi = {.ipi6_addr = p->local.addr.in6.sin6_addr,
                             .ipi6_ifindex = p->local.ifindex};
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(pi));
    memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    len += CMSG_SPACE(sizeof(pi));
  } else if (p->local.addr.sa.sa_family == AF_INET && p->sock->family == AF_INET) {
    struct in_pktinfo pi = {.ipi_spec_dst = p->local.addr.in.sin_addr,
                            .ipi_ifindex = (int)p->local.ifindex};
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(pi));
    memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    len += CMSG_SPACE(sizeof(pi));
  }
  return len;
}

unsigned io_flush(struct io *io)
{
  struct io_arena *a = arena_cur(io);
  unsigned nmsg = 0;
  if (a->npkts == 0) {
    pktfd_submit_writes(io);
    return 0;
  }
  io->ctr.flushes++;
  for (uint32_t i = 0; i < a->npkts;) {
    const struct io_txpkt *first = &a->pkts[i];
    uint32_t seg = first->len, total = first->len, n = 1;
    while (!first->sock->no_gso && i + n < a->npkts && n < IO_GSO_MAX_SEGS) {
      const struct io_txpkt *q = &a->pkts[i + n];
      if (!same_flow(first, q) || q->len > seg || total + q->len > IO_GSO_MAX_BYTES)
        break;
      /* A lone larger packet (ngtcp2's path MTU probe) takes no smaller one
       * along: if it is too big for the path the send fails with EMSGSIZE,
       * and everything in its sendmsg is lost with it (seen: datagrams lost
       * on an MTU 1280 link). */
      if (q->len < seg && n < 2)
        break;
      total += q->len;
      n++;
      if (q->len < seg)
        break; /* a shorter packet ends a GSO train */
    }
    struct io_txmsg *m = &a->msgs[nmsg];
    memset(&m->mh, 0, sizeof(m->mh));
    m->iov.iov_base = a->data + first->off;
    m->iov.iov_len = total;
    m->mh.msg_name = (void *)&first->dst;
    m->mh.msg_namelen = first->dstlen;
    m->mh.msg_iov = &m->iov;
    m->mh.msg_iovlen = 1;
    size_t cl = build_cmsg(m, first, n > 1 ? (uint16_t)seg : 0);
    m->mh.msg_control = cl ? m->ctl.buf : NULL;
    m->mh.msg_controllen = cl;
    m->sock_idx = first->sock->idx;
    m->sock_gen = first->sock->gen;
    m->segs = (uint16_t)n;
    struct io_uring_sqe *sqe = get_sqe(io);
    if (!sqe) {
      io->ctr.tx_errors += n;
      i += n;
      continue;
    }
    io_uring_prep_sendmsg(sqe, first->sock->fd, &m->mh, 0);
    io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_UDP_SEND, io->cur | nmsg << IO_TX_ARENA_BITS));
    a->inflight++;
    nmsg++;
    io->ctr.tx_msgs++;
    io->ctr.tx_packets += n;
    io->ctr.tx_bytes += total;
    if (n > 1)
      io->ctr.tx_gso_msgs++;
    i += n;
  }
  a->npkts = 0;
  pktfd_submit_writes(io);
  /* The arena stays busy until its sends complete; fill the next one. */
  for (unsigned k = 1; k <= io->p.tx_arenas; k++) {
    unsigned nx = (io->cur + k) % io->p.tx_arenas;
    if (io->arenas[nx].inflight == 0) {
      io->cur = nx;
      io->arenas[nx].used = 0;
      io->arenas[nx].npkts = 0;
      break;
    }
  }
  return nmsg;
}

int io_wait(struct io *io, uint64_t deadline_ns, uint64_t now_ns)
{
  struct io_uring_cqe *cqe;
  io->ctr.waits++;
  pktfd_submit_writes(io);
  if (deadline_ns == TIMER_NEVER) {
    int rc = io_uring_submit_and_wait(&io->ring, 1);
    return rc < 0 && rc != -EINTR ? rc : 0;
  }
  uint64_t d = deadline_ns > now_ns ? deadline_ns - now_ns : 0;
  if (d == 0) {
    /* With DEFER_TASKRUN, completions are only posted when the kernel is
     * asked for events: a plain submit would never see a receive. */
    int rc = io_uring_submit_and_get_events(&io->ring);
    return rc < 0 && rc != -EINTR ? rc : 0;
  }
  struct __kernel_timespec ts = {.tv_sec = (long long)(d / 1000000000ull),
                                 .tv_nsec = (long long)(d % 1000000000ull)};
  int rc = io_uring_submit_and_wait_timeout(&io->ring, &cqe, 1, &ts, NULL);
  if (rc < 0 && rc != -ETIME && rc != -EINTR)
    return rc;
  return 0;
}

/* ---- receive path ---- */

static void rx_buf_drop(struct io *io, struct io_uring_cqe *cqe)
{
  if (!(cqe->flags & IORING_CQE_F_BUFFER))
    return;
  unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
  io_uring_buf_ring_add(io->br, io->rxmem + (size_t)bid * io->p.rx_buf_size, io->p.rx_buf_size,
                        (unsigned short)bid, io->rx_mask, 0);
  io_uring_buf_ring_advance(io->br, 1);
}

static void udp_recv(struct io *io, struct io_udp_sock *s, struct io_uring_cqe *cqe)
{
  if (!(cqe->flags & IORING_CQE_F_MORE)) {
    s->armed = false;
    if (!s->in_rearm && !s->closing) {
      s->in_rearm = true;
      io->rearm[io->nrearm++] = s->idx;
    }
  }
  if (cqe->res < 0) {
    if (cqe->res == -ENOBUFS) {
      io->ctr.rx_enobufs++;
    } else {
      io->ctr.rx_errors++;
      if (s->on_err && cqe->res != -ECANCELED)
        s->on_err(s->ctx, s, cqe->res);
    }
    return;
  }
  if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
    io->ctr.rx_errors++;
    return;
  }
  unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
  uint8_t *buf = io->rxmem + (size_t)bid * io->p.rx_buf_size;
  io->ctr.rx_completions++;

  struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(buf, cqe->res, &s->rmsg);
  if (!o) {
    io->ctr.rx_errors++;
    goto give_back;
  }
  if (o->flags & MSG_TRUNC) {
    io->ctr.rx_truncated++;
    goto give_back;
  }
  uint8_t *payload = io_uring_recvmsg_payload(o, &s->rmsg);
  size_t plen = io_uring_recvmsg_payload_length(o, cqe->res, &s->rmsg);
  union io_sockaddr peer;
  socklen_t peerlen = o->namelen < sizeof(peer) ? o->namelen : sizeof(peer);
  memset(&peer, 0, sizeof(peer));
  memcpy(&peer, io_uring_recvmsg_name(o), peerlen);

  size_t seg = plen;
  struct io_local local;
  bool have_local = false;
  memset(&local, 0, sizeof(local));
  for (struct cmsghdr *c = io_uring_recvmsg_cmsg_firsthdr(o, &s->rmsg); c;
       c = io_uring_recvmsg_cmsg_nexthdr(o, &s->rmsg, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int g;
      memcpy(&g, CMSG_DATA(c), sizeof(g));
      if (g > 0)
        seg = (size_t)g;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof(pi));
      local.addr.in6.sin6_family = AF_INET6;
      local.addr.in6.sin6_addr = pi.ipi6_addr;
      local.ifindex = pi.ipi6_ifindex;
      have_local = true;
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && s->family == AF_INET) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof(pi));
      local.addr.in.sin_family = AF_INET;
      local.addr.in.sin_addr = pi.ipi_addr;
      local.ifindex = (uint32_t)pi.ipi_ifindex;
      have_local = true;
    }
  }
  if (have_local) {
    /* The local port is the socket's. */
    uint16_t port = htons(s->port);
    if (local.addr.sa.sa_family == AF_INET)
      local.addr.in.sin_port = port;
    else
      local.addr.in6.sin6_port = port;
  }
  if (seg < plen)
    io->ctr.rx_gro_batches++;
  for (size_t off = 0; off < plen; off += seg) {
    size_t n = plen - off < seg ? plen - off : seg;
    io->ctr.rx_datagrams++;
    io->ctr.rx_bytes += n;
    if (s->fn)
      s->fn(s->ctx, s, payload + off, n, &peer, peerlen, have_local ? &local : NULL);
  }
give_back:
  io_uring_buf_ring_add(io->br, buf, io->p.rx_buf_size, (unsigned short)bid, io->rx_mask, 0);
  io_uring_buf_ring_advance(io->br, 1);
}

/* A send completed. A GSO send that failed with EIO or EINVAL tells about
 * that socket and its path only (no checksum offload on its device, or a
 * segment size above a path MTU lowered by an ICMP error): that socket
 * sends one datagram per sendmsg from now on; every other socket keeps
 * GSO. The packets of the failed send are lost like any other datagram
 * (QUIC recovers them). */
static void udp_sent(struct io *io, uint32_t idx, struct io_uring_cqe *cqe)
{
  uint32_t arena = idx & ((1u << IO_TX_ARENA_BITS) - 1), mi = idx >> IO_TX_ARENA_BITS;
  if (arena >= io->p.tx_arenas)
    return;
  struct io_arena *a = &io->arenas[arena];
  if (a->inflight)
    a->inflight--;
  if (cqe->res >= 0)
    return;
  io->ctr.tx_errors++;
  if (mi >= io->p.tx_max_pkts)
    return;
  const struct io_txmsg *m = &a->msgs[mi]; /* intact until the arena's last send completes */
  struct io_udp_sock *s = m->sock_idx < io->nsocks ? io->socks[m->sock_idx] : NULL;
  if (m->segs < 2 || (cqe->res != -EIO && cqe->res != -EINVAL) || !s || s->gen != m->sock_gen ||
      s->no_gso)
    return;
  s->no_gso = true;
  io->ctr.tx_gso_fallbacks++;
  log_warn("UDP GSO send failed; this socket sends one datagram per packet from now on",
           "port=%u err=%d segments=%u", s->port, cqe->res, m->segs);
}

unsigned io_dispatch(struct io *io)
{
  struct io_uring_cqe *cqe;
  unsigned head, n = 0;
  io_uring_for_each_cqe(&io->ring, head, cqe)
  {
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    uint32_t idx = IO_UD_IDX(ud);
    switch (IO_UD_OP(ud)) {
    case IO_OP_UDP_RECV: {
      uint32_t slot = idx & IO_UDP_SLOT_MASK;
      struct io_udp_sock *s = slot < io->nsocks ? io->socks[slot] : NULL;
      if (s && s->gen == idx >> IO_UDP_GEN_SHIFT && !s->closing && s->fd >= 0)
        udp_recv(io, s, cqe);
      else
        rx_buf_drop(io, cqe); /* a socket closed meanwhile: give its buffer back */
      break;
    }
    case IO_OP_UDP_SEND:
      udp_sent(io, idx, cqe);
      break;
    case IO_OP_PKTFD_READ:
    case IO_OP_PKTFD_WRITE:
      pktfd_complete(io, IO_UD_OP(ud) == IO_OP_PKTFD_READ, idx, cqe);
      break;
    case IO_OP_SIGNAL:
      if (cqe->res == (int)sizeof(io->siginfo)) {
        io->ctr.signals++;
        if (io->on_signal)
          io->on_signal(io->sig_ctx, (int)io->siginfo.ssi_signo);
      }
      if (io->sigfd >= 0)
        signal_arm(io);
      break;
    default: {
      enum io_op op = IO_UD_OP(ud);
      if (op >= IO_OP_USER_FIRST && op <= IO_OP_USER_LAST && io->handler[op - IO_OP_USER_FIRST])
        io->handler[op - IO_OP_USER_FIRST](io->handler_ctx[op - IO_OP_USER_FIRST], idx, cqe);
      break;
    }
    }
    n++;
  }
  io_uring_cq_advance(&io->ring, n);
  for (uint32_t i = 0; i < io->nrearm; i++) {
    struct io_udp_sock *s = io->socks[io->rearm[i]];
    s->in_rearm = false;
    if (!s->armed && !s->closing && s->fd >= 0) {
      io->ctr.rx_rearms++;
      udp_arm(io, s);
    }
  }
  io->nrearm = 0;
  close_pending(io);
  return n;
}

/* ---- counters ---- */

/* The io counters for /metrics and the exit log, one row per field
 * (test_counter checks that every field has exactly one). */
#define I(fam, help, labels, key, field)                                                           \
  COUNTER_DEF(struct io_counters, fam, help, labels, "io counters", key, field)
#define UERR(dir, kind, key, field)                                                                \
  I("wtrelay_udp_errors_total", NULL, "dir=\"" dir "\",kind=\"" kind "\"", key, field)
static const struct counter_def io_counter_defs[] = {
    I("wtrelay_udp_datagrams_total", "UDP datagrams through the QUIC socket and NAT", "dir=\"in\"",
      "rx_datagrams", rx_datagrams),
    I("wtrelay_udp_datagrams_total", NULL, "dir=\"out\"", "tx_packets", tx_packets),
    I("wtrelay_udp_bytes_total", "UDP payload bytes", "dir=\"in\"", "rx_bytes", rx_bytes),
    I("wtrelay_udp_bytes_total", NULL, "dir=\"out\"", "tx_bytes", tx_bytes),
    I("wtrelay_udp_recvmsg_completions_total",
      "receive completions (datagrams per recvmsg = datagrams in / this)", NULL, "rx_completions",
      rx_completions),
    I("wtrelay_udp_sendmsg_total", "sendmsg calls (packets per sendmsg = datagrams out / this)",
      NULL, "tx_msgs", tx_msgs),
    I("wtrelay_udp_gso_sendmsg_total", "sendmsg calls carrying a GSO batch", NULL, "tx_gso_msgs",
      tx_gso_msgs),
    I("wtrelay_udp_gro_batches_total", "receive completions holding a GRO batch", NULL,
      "rx_gro_batches", rx_gro_batches),
    I("wtrelay_udp_errors_total",
      "UDP I/O errors: receive (in) out of buffers, truncated or failed; send (out) failed or "
      "out of transmit arena",
      "dir=\"in\",kind=\"enobufs\"", "rx_enobufs", rx_enobufs),
    UERR("in", "truncated", "rx_truncated", rx_truncated),
    UERR("in", "error", "rx_errors", rx_errors),
    UERR("out", "error", "tx_errors", tx_errors),
    UERR("out", "arena_full", "tx_arena_full", tx_arena_full),
    I("wtrelay_udp_gso_fallbacks_total", "GSO batches sent again without GSO", NULL,
      "tx_gso_fallbacks", tx_gso_fallbacks),
    I("wtrelay_udp_receive_rearms_total",
      "multishot receives armed again after the kernel ended them (no buffer was free)", NULL,
      "rx_rearms", rx_rearms),
    I("wtrelay_io_flushes_total", "transmit batches flushed", NULL, "flushes", flushes),
    I("wtrelay_io_waits_total", "waits on the ring", NULL, "waits", waits),
    I("wtrelay_io_signals_total", "signals read", NULL, "signals", signals),
};
#undef UERR
#undef I

const struct counter_table io_counter_table = COUNTER_TABLE(io_counter_defs, struct io_counters);

int io_parse_listen(const char *s, char *host, size_t hostcap, uint16_t *port)
{
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s)
    return -EINVAL;
  const char *h = s;
  size_t hl = (size_t)(colon - s);
  if (*s == '[') {
    if (colon[-1] != ']')
      return -EINVAL;
    h = s + 1;
    hl -= 2;
  }
  if (hl == 0 || hl >= hostcap)
    return -EINVAL;
  memcpy(host, h, hl);
  host[hl] = '\0';
  char *end;
  unsigned long p = strtoul(colon + 1, &end, 10);
  if (!colon[1] || *end || p == 0 || p > 65535)
    return -EINVAL;
  *port = (uint16_t)p;
  union io_sockaddr sa;
  socklen_t len;
  return io_sockaddr_parse(host, *port, &sa, &len);
}
