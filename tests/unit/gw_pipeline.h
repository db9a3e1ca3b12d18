/*
 * gw_pipeline: the in-process gateway pipeline the gateway and TCP NAT
 * unit tests share: a real io_uring, timer heap, switch (10.0.2.0/24, the
 * gateway MAC as router), the egress policy with 127.0.0.0/8 allowed (so
 * the NAT may reach the tests' own loopback sockets), and the gateway with
 * room 0 attached. Tests add their own VM ports and fill the gateway
 * parameters they care about. Also what their fakes share: the recording
 * port's frame copy, a fake relay's leases, loopback sockets for the
 * "internet" and a receive that turns the loop. Header-only, for Criterion
 * tests.
 */
#ifndef WTRELAY_TEST_GW_PIPELINE_H
#define WTRELAY_TEST_GW_PIPELINE_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "wtrelay/gateway.h"
#include "wtrelay/io.h"
#include "wtrelay/policy.h"
#include "wtrelay/switch.h"
#include "wtrelay/timer.h"
#include "wtrelay/timeunit.h"

#define GWP_IP4(a, b, c, d)                                                                        \
  ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

static const uint8_t GWP_GW_MAC[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};

struct gw_pipe {
  struct io io;
  struct timer_heap heap;
  struct switch_table sw;
  struct policy pol;
  struct gateway gw;
  uint64_t now;  /* what the gateway reads */
  uint64_t skew; /* added to CLOCK_MONOTONIC: tests jump ahead with it */
};

static inline void gw_pipe_tick(struct gw_pipe *p)
{
  p->now = clock_now_ns() + p->skew;
}

/* The parameters both tests start from (small bounds, 10.0.2.0/24). */
static inline void gw_pipe_params(struct gateway_params *gp)
{
  memset(gp, 0, sizeof(*gp));
  memcpy(gp->mac, GWP_GW_MAC, 6);
  gp->subnet = GWP_IP4(10, 0, 2, 0);
  gp->netmask = 0xffffff00u;
  gp->ip = GWP_IP4(10, 0, 2, 2);
  gp->dns_ip = gp->announce_dns = GWP_IP4(10, 0, 2, 3);
  gp->mtu = 1400;
  gp->lease_s = 3600;
  gp->max_rooms = 2;
  gp->max_udp_flows = 4;
  gp->max_udp_flows_per_vm = 2;
  gp->max_icmp_flows = 4;
  gp->max_dns_inflight = 4;
}

static inline void gw_pipe_init(struct gw_pipe *p, unsigned timers, struct gateway_params *gp,
                                const struct gateway_addr_ops *ops, void *ctx)
{
  gw_pipe_tick(p);
  struct io_params iop;
  io_params_default(&iop);
  iop.max_udp_socks = 64;
  iop.rx_bufs = 16;
  int rc = io_init(&p->io, &iop);
  cr_assert_eq(rc, 0, "io_init: %s (io_uring needed)", strerror(-rc));
  cr_assert_eq(timer_heap_init(&p->heap, timers), 0);
  struct switch_params sp = {
      .max_ports = 8,
      .max_domains = 2,
      .max_macs = 64,
      .max_macs_per_domain = 32,
      .max_macs_per_port = 4,
      .aging_ns = 300 * NS_PER_S,
      .subnet = GWP_IP4(10, 0, 2, 0),
      .netmask = 0xffffff00u,
  };
  memcpy(sp.router_mac, GWP_GW_MAC, 6);
  cr_assert_eq(switch_init(&p->sw, &sp), 0);
  policy_init(&p->pol);
  cr_assert_eq(policy_add(&p->pol, "127.0.0.0/8", true), 0);
  gp->policy = &p->pol;
  rc = gateway_init(&p->gw, gp, &p->sw, &p->io, &p->heap, &p->now, ops, ctx);
  cr_assert_eq(rc, 0, "gateway_init: %s", strerror(-rc));
  cr_assert_eq(gateway_room_attach(&p->gw, 0, 0), 0);
}

static inline void gw_pipe_fini(struct gw_pipe *p)
{
  gateway_fini(&p->gw);
  switch_fini(&p->sw);
  io_fini(&p->io);
  timer_heap_fini(&p->heap);
}

/* A recording VM port's copy of a delivered frame: the iovecs into `buf`
 * (GW_FRAME_MAX bytes), checked to add up to the frame's length. */
static inline size_t gw_pipe_copy_frame(uint8_t *buf, const struct switch_frame *f)
{
  cr_assert_leq(f->len, (size_t)GW_FRAME_MAX, "frame of %zu bytes", f->len);
  size_t off = 0;
  for (int i = 0; i < f->iovcnt; i++) {
    cr_assert_leq(off + f->iov[i].iov_len, (size_t)GW_FRAME_MAX);
    memcpy(buf + off, f->iov[i].iov_base, f->iov[i].iov_len);
    off += f->iov[i].iov_len;
  }
  cr_assert_eq(off, f->len, "iovecs add up to %zu, frame says %zu", off, f->len);
  return off;
}

/* A recording port: keeps the first GWP_REC_FRAMES frames delivered to it
 * and counts them all. Attach with gw_pipe_rec_ops and the recorder as ctx. */
#define GWP_REC_FRAMES 16
struct gw_pipe_rec {
  uint32_t port;
  unsigned nframes;
  size_t len[GWP_REC_FRAMES];
  uint8_t frame[GWP_REC_FRAMES][GW_FRAME_MAX];
};

/* A recording port's deliver: keeps frame f as frames[*n] while *n < max
 * and counts it in *n either way. */
static inline void gw_pipe_keep_frame(unsigned *n, size_t *lens, uint8_t (*frames)[GW_FRAME_MAX],
                                      unsigned max, const struct switch_frame *f)
{
  if (*n < max)
    lens[*n] = gw_pipe_copy_frame(frames[*n], f);
  (*n)++;
}

static inline int gw_pipe_rec_deliver(void *ctx, const struct switch_frame *f)
{
  struct gw_pipe_rec *r = ctx;
  gw_pipe_keep_frame(&r->nframes, r->len, r->frame, GWP_REC_FRAMES, f);
  return 0;
}

static const struct switch_port_ops gw_pipe_rec_ops = {.deliver = gw_pipe_rec_deliver};

/* The fake relay's leases: 10.0.2.200 plus the MAC's last 5 bits; releases
 * ignored. */
static inline int gw_pipe_fake_lease(void *ctx, uint32_t room, const uint8_t mac[6], uint32_t *ip)
{
  (void)ctx;
  (void)room;
  *ip = GWP_IP4(10, 0, 2, 200) + (mac[5] & 0x1f);
  return 0;
}

static inline void gw_pipe_no_release(void *ctx, uint32_t room, const uint8_t mac[6], uint32_t ip)
{
  (void)ctx;
  (void)room;
  (void)mac;
  (void)ip;
}

/* The tests' "internet": sockets of their own on 127.0.0.1, port chosen by
 * the kernel (*port). */
static inline int gw_pipe_loopback_socket(int type, uint16_t *port)
{
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(GWP_IP4(127, 0, 0, 1))};
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind: %s", strerror(errno));
  socklen_t al = sizeof(a);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

static inline int gw_pipe_udp_loopback(uint16_t *port)
{
  return gw_pipe_loopback_socket(SOCK_DGRAM, port);
}

/* A non-blocking TCP listener on 127.0.0.1. */
static inline int gw_pipe_tcp_listener(uint16_t *port, int backlog)
{
  int fd = gw_pipe_loopback_socket(SOCK_STREAM | SOCK_NONBLOCK, port);
  cr_assert_eq(listen(fd, backlog), 0);
  return fd;
}

/* One turn of a worker loop: timers, sends, a short bounded wait,
 * completions. */
static inline void gw_pipe_pump_once(struct gw_pipe *p, uint64_t wait_ns)
{
  gw_pipe_tick(p);
  timer_run(&p->heap, p->now);
  io_flush(&p->io);
  uint64_t t = clock_now_ns();
  cr_assert_geq(io_wait(&p->io, t + wait_ns, t), 0);
  gw_pipe_tick(p);
  io_dispatch(&p->io);
}

/* Turns the loop for `ns` (things that must not happen get their chance). */
static inline void gw_pipe_pump_for(struct gw_pipe *p, uint64_t ns)
{
  uint64_t end = clock_now_ns() + ns;
  for (unsigned turns = 0; clock_now_ns() < end && turns < 10000; turns++)
    gw_pipe_pump_once(p, 10 * NS_PER_MS);
}

/* Receives one datagram on the test's own socket fd while turning the loop
 * (the gateway's sends only leave when the ring is submitted). Returns its
 * length, or -ETIMEDOUT. */
static inline ssize_t gw_pipe_sock_recv(struct gw_pipe *p, int fd, uint8_t *buf, size_t cap,
                                        struct sockaddr_in *from, uint64_t timeout_ns)
{
  uint64_t end = clock_now_ns() + timeout_ns;
  for (unsigned turns = 0; turns < 10000; turns++) {
    socklen_t fl = sizeof(*from);
    ssize_t n = recvfrom(fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)from, &fl);
    if (n >= 0)
      return n;
    cr_assert(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR, "recvfrom: %s",
              strerror(errno));
    if (clock_now_ns() >= end)
      break;
    gw_pipe_pump_once(p, 10 * NS_PER_MS);
  }
  return -ETIMEDOUT;
}

#endif
