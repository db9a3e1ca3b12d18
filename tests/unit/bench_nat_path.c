/*
 * bench_nat_path: CPU time of the UDP NAT path per guest datagram, for the
 * flow table's before/after figures (docs/architecture.md, "The NAT flow
 * table"). Not a test (no test_ prefix: not in ctest); built by hand
 * against a build tree, the same source for the tree before the flow table
 * and after it:
 *
 *   cc -O2 -std=gnu11 -I include -I src/nat -I tests/unit tests/unit/bench_nat_path.c \
 *      -o /tmp/bench_nat_path -L build -Wl,--start-group build/libwtrelay_*.a -Wl,--end-group \
 *      $(pkg-config --libs criterion liburing gnutls libngtcp2 libnghttp3 jansson libjwt-gnutls)
 * -lm /tmp/bench_nat_path
 *
 * The real pipeline (gw_pipeline.h: io_uring, switch, policy, gateway),
 * one VM with FLOWS UDP mappings (one host socket each) to a loopback
 * sink. Each round sends one datagram per mapping through switch_input in
 * random order, turning the loop (which submits the sends) every BATCH
 * datagrams; only the switch_input calls are timed: parsing, policy, the
 * flow lookup and the copy into the send arena. Prints the median (and
 * min, max) over ROUNDS rounds of ns per datagram, and the median of the
 * whole round per datagram, the loop turns that send them included.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "gw_pipeline.h"
#include "wtrelay/net.h"

#define FLOWS 1000
#define ROUNDS 41
#define BATCH 64

static int sink_deliver(void *ctx, const struct switch_frame *f)
{
  (void)ctx;
  (void)f;
  return 0;
}
static const struct switch_port_ops sink_ops = {.deliver = sink_deliver};

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static uint8_t frames[FLOWS][128];
static size_t flen[FLOWS];
static uint32_t order[FLOWS];

Test(bench, udp_nat_path, .timeout = 600)
{
  static struct gw_pipe p;
  struct gateway_params gp;
  gw_pipe_params(&gp);
  gp.max_udp_flows = 4096;
  gp.max_udp_flows_per_vm = 0;
  gp.udp_timeout_ns = 600 * NS_PER_S;
  /* gw_pipe_init with room for FLOWS sockets */
  gw_pipe_tick(&p);
  struct io_params iop;
  io_params_default(&iop);
  iop.max_udp_socks = FLOWS + 64;
  iop.rx_bufs = 16;
  cr_assert_eq(io_init(&p.io, &iop), 0);
  cr_assert_eq(timer_heap_init(&p.heap, 64), 0);
  struct switch_params sp = {.max_ports = 8,
                             .max_domains = 2,
                             .max_macs = 64,
                             .max_macs_per_domain = 32,
                             .max_macs_per_port = 4,
                             .aging_ns = 300 * NS_PER_S,
                             .subnet = GWP_IP4(10, 0, 2, 0),
                             .netmask = 0xffffff00u};
  memcpy(sp.router_mac, GWP_GW_MAC, 6);
  cr_assert_eq(switch_init(&p.sw, &sp), 0);
  policy_init(&p.pol);
  cr_assert_eq(policy_add(&p.pol, "127.0.0.0/8", true), 0);
  gp.policy = &p.pol;
  cr_assert_eq(gateway_init(&p.gw, &gp, &p.sw, &p.io, &p.heap, &p.now, NULL, NULL), 0);
  cr_assert_eq(gateway_room_attach(&p.gw, 0, 0), 0);

  const uint8_t vm_mac[6] = {0x52, 0x54, 0, 0, 0, 9};
  uint32_t vm_ip = GWP_IP4(10, 0, 2, 15), port;
  cr_assert_eq(switch_port_attach(&p.sw, 0, &sink_ops, NULL, &port), 0);
  switch_port_set_addr(&p.sw, port, vm_mac, vm_ip);
  uint16_t sink_port;
  int sink = gw_pipe_udp_loopback(&sink_port);
  int big = 1 << 24;
  setsockopt(sink, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));

  struct net_l2 l2 = {.dst_mac = GWP_GW_MAC, .src_mac = vm_mac};
  for (uint32_t i = 0; i < FLOWS; i++) {
    int n = net_build_udp(frames[i], sizeof(frames[i]), &l2, vm_ip, GWP_IP4(127, 0, 0, 1),
                          (uint16_t)(20000 + i), sink_port, (const uint8_t *)"0123456789abcdef", 16,
                          (uint16_t)i);
    cr_assert_gt(n, 0);
    flen[i] = (size_t)n;
    order[i] = i;
  }
  uint64_t samples[ROUNDS], whole[ROUNDS];
  srand(1);
  uint8_t drain[2048];
  for (int r = -1; r < ROUNDS; r++) { /* round -1 opens the mappings, untimed */
    for (uint32_t i = FLOWS - 1; i > 0; i--) {
      uint32_t j = (uint32_t)rand() % (i + 1), t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    uint64_t spent = 0, w0 = clock_now_ns();
    for (uint32_t i = 0; i < FLOWS; i++) {
      uint32_t k = order[i];
      struct iovec iov = {.iov_base = frames[k], .iov_len = flen[k]};
      struct switch_frame f = {.iov = &iov, .iovcnt = 1, .len = flen[k]};
      uint64_t t0 = clock_now_ns();
      switch_input(&p.sw, port, &f, p.now);
      spent += clock_now_ns() - t0;
      if (i % BATCH == BATCH - 1 || i == FLOWS - 1) {
        gw_pipe_pump_once(&p, 0);
        while (recv(sink, drain, sizeof(drain), MSG_DONTWAIT) > 0)
          ;
      }
    }
    if (r >= 0) {
      samples[r] = spent;
      whole[r] = clock_now_ns() - w0;
    }
  }
  cr_assert_eq(p.gw.nudp, FLOWS);
  cr_assert_eq(p.gw.ctr.udp_send_failed, 0);
  qsort(samples, ROUNDS, sizeof(samples[0]), cmp_u64);
  qsort(whole, ROUNDS, sizeof(whole[0]), cmp_u64);
  fprintf(stderr,
          "udp_nat_path flows=%d rounds=%d median_ns_per_datagram=%.1f min=%.1f max=%.1f "
          "with_sends_median=%.1f\n",
          FLOWS, ROUNDS, (double)samples[ROUNDS / 2] / FLOWS, (double)samples[0] / FLOWS,
          (double)samples[ROUNDS - 1] / FLOWS, (double)whole[ROUNDS / 2] / FLOWS);
  close(sink);
  gateway_fini(&p.gw);
  switch_fini(&p.sw);
  io_fini(&p.io);
  timer_heap_fini(&p.heap);
}
