/*
 * gw_pipeline: the in-process gateway pipeline the gateway and TCP NAT
 * unit tests share: a real io_uring, timer heap, switch (10.0.2.0/24, the
 * gateway MAC as router), the egress policy with 127.0.0.0/8 allowed (so
 * the NAT may reach the tests' own loopback sockets), and the gateway with
 * room 0 attached. Tests add their own VM ports and fill the gateway
 * parameters they care about. Header-only, for Criterion tests.
 */
#ifndef WTRELAY_TEST_GW_PIPELINE_H
#define WTRELAY_TEST_GW_PIPELINE_H

#include <criterion/criterion.h>
#include <string.h>

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
  cr_assert_eq(gateway_room_attach(&p->gw, 0), 0);
}

static inline void gw_pipe_fini(struct gw_pipe *p)
{
  gateway_fini(&p->gw);
  switch_fini(&p->sw);
  io_fini(&p->io);
  timer_heap_fini(&p->heap);
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

#endif
