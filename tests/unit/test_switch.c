#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "wtrelay/switch.h"
#include "wtrelay/timeunit.h"

/* A port that records what it got. */
struct rec {
  int frames;
  size_t last_len;
  uint8_t last[2048];
  int fail;
  int floods;                     /* frames delivered marked as flood copies */
  struct switch_table *detach_sw; /* detach `detach_port` when delivered to */
  uint32_t detach_port;
};

static int rec_deliver(void *ctx, const struct switch_frame *f)
{
  struct rec *r = ctx;
  if (r->fail)
    return -ENOBUFS;
  size_t off = 0;
  for (int i = 0; i < f->iovcnt; i++) {
    memcpy(r->last + off, f->iov[i].iov_base, f->iov[i].iov_len);
    off += f->iov[i].iov_len;
  }
  cr_assert_eq(off, f->len);
  r->last_len = off;
  r->frames++;
  r->floods += f->flood;
  if (r->detach_sw)
    switch_port_detach(r->detach_sw, r->detach_port);
  return 0;
}

static const struct switch_port_ops rec_ops = {.deliver = rec_deliver};

static struct switch_params params(void)
{
  struct switch_params p = {
      .max_ports = 16,
      .max_domains = 4,
      .max_macs = 64,
      .max_macs_per_domain = 32,
      .max_macs_per_port = 4,
      .aging_ns = 300 * NS_PER_S,
      .router_mac = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02},
      .subnet = 0x0a000200,
      .netmask = 0xffffff00,
  };
  return p;
}

static size_t eth(uint8_t *b, const uint8_t dst[6], const uint8_t src[6], uint16_t type, size_t len)
{
  memset(b, 0xab, len);
  memcpy(b, dst, 6);
  memcpy(b + 6, src, 6);
  b[12] = (uint8_t)(type >> 8);
  b[13] = (uint8_t)type;
  return len;
}

static int input(struct switch_table *sw, uint32_t port, const uint8_t *b, size_t len, uint64_t now)
{
  struct iovec iov = {.iov_base = (void *)b, .iov_len = len};
  struct switch_frame f = {.iov = &iov, .iovcnt = 1, .len = len};
  return switch_input(sw, port, &f, now);
}

static const uint8_t BC[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t MA[6] = {0x52, 0x54, 0, 0, 0, 0x0a};
static const uint8_t MB[6] = {0x52, 0x54, 0, 0, 0, 0x0b};
static const uint8_t MC[6] = {0x52, 0x54, 0, 0, 0, 0x0c};
static const uint8_t GMAC[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};

Test(switch, broadcast_floods_to_all_but_sender_and_only_in_domain)
{
  struct switch_table sw;
  struct rec ra = {0}, rb = {0}, rc = {0}, rd = {0};
  uint32_t a, b, c, d;
  struct switch_params p = params();
  cr_assert_eq(switch_init(&sw, &p), 0);
  cr_assert_eq(switch_port_attach(&sw, 0, &rec_ops, &ra, &a), 0);
  cr_assert_eq(switch_port_attach(&sw, 0, &rec_ops, &rb, &b), 0);
  cr_assert_eq(switch_port_attach(&sw, 0, &rec_ops, &rc, &c), 0);
  cr_assert_eq(switch_port_attach(&sw, 1, &rec_ops, &rd, &d), 0);
  uint8_t f[64];
  cr_assert_eq(input(&sw, a, f, eth(f, BC, MA, 0x0806, 42), 0), 2);
  cr_assert_eq(ra.frames, 0);
  cr_assert_eq(rb.frames, 1);
  cr_assert_eq(rc.frames, 1);
  cr_assert_eq(rd.frames, 0, "another room must never see the broadcast");
  cr_assert_eq(rb.last_len, 42);
  cr_assert_arr_eq(rb.last, f, 42);
  /* multicast floods too */
  const uint8_t mc[6] = {0x01, 0x00, 0x5e, 0, 0, 1};
  cr_assert_eq(input(&sw, b, f, eth(f, mc, MB, 0x0800, 60), 0), 2);
  cr_assert_eq(sw.ctr.floods, 2);
  switch_fini(&sw);
}

Test(switch, unicast_after_learning_reaches_only_target)
{
  struct switch_table sw;
  struct rec ra = {0}, rb = {0}, rc = {0};
  uint32_t a, b, c;
  struct switch_params p = params();
  switch_init(&sw, &p);
  switch_port_attach(&sw, 0, &rec_ops, &ra, &a);
  switch_port_attach(&sw, 0, &rec_ops, &rb, &b);
  switch_port_attach(&sw, 0, &rec_ops, &rc, &c);
  uint8_t f[64];
  /* unknown unicast floods */
  cr_assert_eq(input(&sw, a, f, eth(f, MB, MA, 0x0800, 60), 1 * NS_PER_S), 2);
  /* b answers: a is known now, so only a gets it */
  cr_assert_eq(input(&sw, b, f, eth(f, MA, MB, 0x0800, 60), 2 * NS_PER_S), 1);
  cr_assert_eq(ra.frames, 1);
  cr_assert_eq(rc.frames, 1); /* only the first flood */
  /* and a -> b is unicast now */
  cr_assert_eq(input(&sw, a, f, eth(f, MB, MA, 0x0800, 60), 3 * NS_PER_S), 1);
  cr_assert_eq(rb.frames, 2);
  cr_assert_eq(rc.frames, 1);
  cr_assert_eq(sw.ctr.unicast, 2);
  cr_assert_eq(switch_lookup(&sw, 0, MA, 3 * NS_PER_S), a);
  cr_assert_eq(switch_lookup(&sw, 1, MA, 3 * NS_PER_S), SWITCH_NO_PORT, "MACs are per domain");
  /* a frame to a MAC learned on the sender's own port is not sent back */
  cr_assert_eq(input(&sw, a, f, eth(f, MA, MA, 0x0800, 60), 3 * NS_PER_S), 0);
  cr_assert_eq(sw.ctr.drop_same_port, 1);
  cr_assert_eq(ra.frames, 1);
  switch_fini(&sw);
}

Test(switch, aging_and_moves)
{
  struct switch_table sw;
  struct rec ra = {0}, rb = {0}, rc = {0};
  uint32_t a, b, c;
  struct switch_params p = params();
  p.aging_ns = 10 * NS_PER_S;
  switch_init(&sw, &p);
  switch_port_attach(&sw, 0, &rec_ops, &ra, &a);
  switch_port_attach(&sw, 0, &rec_ops, &rb, &b);
  switch_port_attach(&sw, 0, &rec_ops, &rc, &c);
  uint8_t f[64];
  input(&sw, a, f, eth(f, BC, MA, 0x0806, 60), 0);
  cr_assert_eq(switch_lookup(&sw, 0, MA, 9 * NS_PER_S), a);
  cr_assert_eq(switch_lookup(&sw, 0, MA, 10 * NS_PER_S), SWITCH_NO_PORT, "aged out on lookup");
  cr_assert_eq(switch_age(&sw, 10 * NS_PER_S), 1);
  cr_assert_eq(sw.nmacs, 0);
  cr_assert_eq(sw.ports[a].nmacs, 0);
  /* a MAC that moves to another port follows it */
  input(&sw, a, f, eth(f, BC, MA, 0x0806, 60), 20 * NS_PER_S);
  input(&sw, c, f, eth(f, BC, MA, 0x0806, 60), 21 * NS_PER_S);
  cr_assert_eq(switch_lookup(&sw, 0, MA, 21 * NS_PER_S), c);
  cr_assert_eq(sw.ctr.moved, 1);
  cr_assert_eq(sw.ports[a].nmacs, 0);
  cr_assert_eq(sw.ports[c].nmacs, 1);
  input(&sw, b, f, eth(f, MA, MB, 0x0800, 60), 22 * NS_PER_S);
  cr_assert_eq(rc.frames, 3); /* two floods from a, then the unicast to MA */
  switch_fini(&sw);
}

Test(switch, limits_per_port_domain_and_table)
{
  struct switch_table sw;
  struct rec r[6] = {0};
  uint32_t pt[6];
  struct switch_params p = params();
  p.max_macs_per_port = 2;
  p.max_macs_per_domain = 3;
  p.max_macs = 4;
  switch_init(&sw, &p);
  for (int i = 0; i < 3; i++)
    switch_port_attach(&sw, 0, &rec_ops, &r[i], &pt[i]);
  for (int i = 3; i < 6; i++)
    switch_port_attach(&sw, 1, &rec_ops, &r[i], &pt[i]);
  uint8_t f[64], m[6] = {0x02, 0, 0, 0, 0, 0};
  for (int i = 0; i < 3; i++) { /* port 0: three MACs, two learned */
    m[5] = (uint8_t)(i + 1);
    input(&sw, pt[0], f, eth(f, BC, m, 0x0806, 60), 0);
  }
  cr_assert_eq(sw.ports[pt[0]].nmacs, 2);
  cr_assert_eq(sw.ctr.learn_full_port, 1);
  cr_assert_eq(r[1].frames, 3, "frames still flow when a MAC is not learned");
  m[5] = 0x10;
  input(&sw, pt[1], f, eth(f, BC, m, 0x0806, 60), 0);
  m[5] = 0x11;
  input(&sw, pt[2], f, eth(f, BC, m, 0x0806, 60), 0);
  cr_assert_eq(sw.domains[0].nmacs, 3);
  cr_assert_eq(sw.ctr.learn_full_domain, 1);
  m[5] = 0x20;
  input(&sw, pt[3], f, eth(f, BC, m, 0x0806, 60), 0);
  m[5] = 0x21;
  input(&sw, pt[4], f, eth(f, BC, m, 0x0806, 60), 0);
  cr_assert_eq(sw.nmacs, 4);
  cr_assert_eq(sw.ctr.learn_full_table, 1);
  /* detach frees the port's entries and its slot */
  switch_port_detach(&sw, pt[0]);
  cr_assert_eq(sw.nmacs, 2);
  cr_assert_eq(sw.domains[0].nmacs, 1);
  m[5] = 0x22;
  input(&sw, pt[5], f, eth(f, BC, m, 0x0806, 60), 0);
  cr_assert_eq(sw.nmacs, 3);
  switch_fini(&sw);
}

Test(switch, port_table_full_and_bad_frames)
{
  struct switch_table sw;
  struct rec r = {0};
  uint32_t pt;
  struct switch_params p = params();
  p.max_ports = 2;
  switch_init(&sw, &p);
  cr_assert_eq(switch_port_attach(&sw, 0, &rec_ops, &r, &pt), 0);
  cr_assert_eq(switch_port_attach(&sw, 0, &rec_ops, &r, &pt), 0);
  cr_assert_eq(switch_port_attach(&sw, 0, &rec_ops, &r, &pt), -ENOSPC);
  cr_assert_eq(switch_port_attach(&sw, 9, &rec_ops, &r, &pt), -EINVAL);
  uint8_t f[64];
  cr_assert_eq(input(&sw, pt, f, 13, 0), -EINVAL);
  cr_assert_eq(sw.ctr.drop_runt, 1);
  const uint8_t msrc[6] = {0x01, 0, 0, 0, 0, 1};
  cr_assert_eq(input(&sw, pt, f, eth(f, BC, msrc, 0x0806, 60), 0), -EINVAL);
  cr_assert_eq(sw.ctr.drop_src_multicast, 1);
  cr_assert_eq(input(&sw, 7, f, eth(f, BC, MA, 0x0806, 60), 0), -EINVAL);
  switch_fini(&sw);
}

Test(switch, many_macs_survive_deletes)
{
  /* Exercise backward-shift deletion: learn many, detach every other port,
   * and every remaining MAC must still be found. */
  struct switch_table sw;
  struct rec r = {0};
  uint32_t pt[16];
  struct switch_params p = params();
  p.max_macs = 64;
  p.max_macs_per_domain = 64;
  switch_init(&sw, &p);
  for (int i = 0; i < 16; i++)
    switch_port_attach(&sw, 0, &rec_ops, &r, &pt[i]);
  uint8_t f[64], m[6] = {0x02, 0, 0, 0, 0, 0};
  for (int i = 0; i < 16; i++)
    for (int k = 0; k < 4; k++) {
      m[4] = (uint8_t)i;
      m[5] = (uint8_t)k;
      input(&sw, pt[i], f, eth(f, BC, m, 0x0806, 60), 0);
    }
  cr_assert_eq(sw.nmacs, 64);
  for (int i = 0; i < 16; i += 2)
    switch_port_detach(&sw, pt[i]);
  cr_assert_eq(sw.nmacs, 32);
  for (int i = 0; i < 16; i++)
    for (int k = 0; k < 4; k++) {
      m[4] = (uint8_t)i;
      m[5] = (uint8_t)k;
      cr_assert_eq(switch_lookup(&sw, 0, m, 1), i % 2 ? pt[i] : SWITCH_NO_PORT);
    }
  switch_fini(&sw);
}

Test(switch, routes_ipv4_to_gateway_mac_for_a_peer_address)
{
  struct switch_table sw;
  struct rec ra = {0}, rb = {0}, rc = {0};
  uint32_t a, b, c;
  struct switch_params p = params();
  switch_init(&sw, &p);
  switch_port_attach(&sw, 0, &rec_ops, &ra, &a);
  switch_port_attach(&sw, 0, &rec_ops, &rb, &b);
  switch_port_attach(&sw, 0, &rec_ops, &rc, &c);
  switch_port_set_addr(&sw, a, MA, 0x0a0002fe);
  switch_port_set_addr(&sw, b, MB, 0x0a0002fd);
  switch_port_set_addr(&sw, c, MC, 0x0a0002fc);
  uint8_t f[80];
  eth(f, p.router_mac, MA, 0x0800, 80);
  f[14] = 0x45;
  memcpy(f + 30, (uint8_t[]){10, 0, 2, 0xfd}, 4);
  cr_assert_eq(input(&sw, a, f, 80, 0), 1);
  cr_assert_eq(rb.frames, 1);
  cr_assert_eq(rc.frames, 0);
  cr_assert_arr_eq(rb.last, MB, 6, "destination rewritten to the peer's MAC");
  cr_assert_arr_eq(rb.last + 6, p.router_mac, 6, "source is the router");
  cr_assert_arr_eq(rb.last + 12, f + 12, 80 - 12, "the rest unchanged");
  cr_assert_eq(sw.ctr.routed, 1);
  /* outside the subnet: not routed (the gateway will take it) */
  memcpy(f + 30, (uint8_t[]){198, 18, 0, 1}, 4);
  input(&sw, a, f, 80, 0);
  cr_assert_eq(sw.ctr.routed, 1);
  switch_fini(&sw);
}

Test(switch, port_detached_during_flood)
{
  struct switch_table sw;
  struct rec ra = {0}, rb = {0}, rc = {0}, rd = {0};
  uint32_t a, b, c, d;
  struct switch_params p = params();
  switch_init(&sw, &p);
  switch_port_attach(&sw, 0, &rec_ops, &ra, &a);
  switch_port_attach(&sw, 0, &rec_ops, &rb, &b);
  switch_port_attach(&sw, 0, &rec_ops, &rc, &c);
  switch_port_attach(&sw, 0, &rec_ops, &rd, &d);
  /* delivering to the first port in flood order detaches another one */
  uint32_t first = sw.domains[0].head == a ? sw.ports[a].next : sw.domains[0].head;
  struct rec *fr = first == b ? &rb : first == c ? &rc : &rd;
  fr->detach_sw = &sw;
  fr->detach_port = first == d ? c : d;
  uint8_t f[64];
  int n = input(&sw, a, f, eth(f, BC, MA, 0x0806, 60), 0);
  cr_assert_eq(n, 2, "the detached port is skipped");
  cr_assert_eq(sw.domains[0].nports, 3);
  rb.fail = 1;
  fr->detach_sw = NULL;
  input(&sw, a, f, eth(f, BC, MA, 0x0806, 60), 0);
  cr_assert_geq(sw.ctr.deliver_failed, 1);
  switch_fini(&sw);
}

Test(switch, flood_copies_are_marked_unicast_is_not)
{
  struct switch_table sw;
  struct rec ra = {0}, rb = {0}, rc = {0};
  uint32_t a, b, c;
  struct switch_params p = params();
  switch_init(&sw, &p);
  switch_port_attach(&sw, 0, &rec_ops, &ra, &a);
  switch_port_attach(&sw, 0, &rec_ops, &rb, &b);
  switch_port_attach(&sw, 0, &rec_ops, &rc, &c);
  uint8_t f[64];
  cr_assert_eq(input(&sw, a, f, eth(f, BC, MA, 0x0806, 42), 0), 2);
  cr_assert_eq(rb.floods, 1);
  cr_assert_eq(rc.floods, 1);
  /* unknown unicast is a flood copy too */
  cr_assert_eq(input(&sw, b, f, eth(f, MC, MB, 0x0800, 60), 0), 2);
  cr_assert_eq(ra.floods, 1);
  cr_assert_eq(rc.floods, 2);
  /* unicast to a learned MAC is not */
  cr_assert_eq(input(&sw, a, f, eth(f, MB, MA, 0x0800, 60), 0), 1);
  cr_assert_eq(rb.frames, 2);
  cr_assert_eq(rb.floods, 1);
  /* a frame handed in marked is not taken as marked */
  struct iovec iov = {.iov_base = f, .iov_len = 60};
  struct switch_frame in = {.iov = &iov, .iovcnt = 1, .len = 60, .flood = true};
  eth(f, MB, MA, 0x0800, 60);
  cr_assert_eq(switch_input(&sw, a, &in, 0), 1);
  cr_assert_eq(rb.frames, 3);
  cr_assert_eq(rb.floods, 1);
  switch_fini(&sw);
}

Test(switch, storm_control_token_bucket)
{
  struct switch_table sw;
  struct rec ra = {0}, rb = {0}, rg = {0};
  uint32_t a, b, g;
  struct switch_params p = params();
  p.flood_rate = 10; /* a frame every 100 ms */
  p.flood_burst = 5;
  switch_init(&sw, &p);
  switch_port_attach(&sw, 0, &rec_ops, &ra, &a);
  switch_port_attach(&sw, 0, &rec_ops, &rb, &b);
  switch_port_attach(&sw, 0, &rec_ops, &rg, &g);
  switch_port_flood_exempt(&sw, g);
  uint8_t f[64];
  uint64_t t = 5 * NS_PER_S;
  /* the burst, then nothing */
  for (int i = 0; i < 5; i++)
    cr_assert_eq(input(&sw, a, f, eth(f, BC, MA, 0x0806, 42), t), 2, "frame %d of the burst", i);
  cr_assert_eq(input(&sw, a, f, eth(f, BC, MA, 0x0806, 42), t), -ENOBUFS);
  cr_assert_eq(rb.frames, 5);
  cr_assert_eq(sw.ctr.flood_limited, 1);
  cr_assert_eq(sw.ports[a].floods_limited, 1);
  /* unknown unicast and multicast draw from the same bucket */
  const uint8_t mc[6] = {0x33, 0x33, 0, 0, 0, 1};
  cr_assert_eq(input(&sw, a, f, eth(f, mc, MA, 0x86dd, 60), t), -ENOBUFS);
  cr_assert_eq(input(&sw, a, f, eth(f, MC, MA, 0x0800, 60), t), -ENOBUFS);
  /* unicast to a learned MAC is never limited */
  input(&sw, b, f, eth(f, BC, MB, 0x0806, 42), t); /* b's own bucket; teaches MB */
  cr_assert_eq(input(&sw, a, f, eth(f, MB, MA, 0x0800, 60), t), 1);
  /* 99 ms later still nothing; at 100 ms one frame */
  cr_assert_eq(input(&sw, a, f, eth(f, BC, MA, 0x0806, 42), t + 99 * NS_PER_S / 1000), -ENOBUFS);
  cr_assert_eq(input(&sw, a, f, eth(f, BC, MA, 0x0806, 42), t + 100 * NS_PER_S / 1000), 2);
  cr_assert_eq(input(&sw, a, f, eth(f, BC, MA, 0x0806, 42), t + 100 * NS_PER_S / 1000), -ENOBUFS);
  /* a long pause refills only the burst */
  t += 3600 * NS_PER_S;
  int passed = 0;
  for (int i = 0; i < 20; i++)
    passed += input(&sw, a, f, eth(f, BC, MA, 0x0806, 42), t) > 0;
  cr_assert_eq(passed, 5);
  /* over 10 s at 100 frames/s offered: rate x time + burst at most */
  passed = 0;
  for (int i = 1; i <= 1000; i++)
    passed += input(&sw, a, f, eth(f, BC, MA, 0x0806, 42), t + (uint64_t)i * NS_PER_S / 100) > 0;
  cr_assert(passed >= 99 && passed <= 101, "%d of 1000 passed in 10 s at 10/s", passed);
  /* the exempt port (the gateway) floods freely */
  for (int i = 0; i < 50; i++)
    cr_assert_eq(input(&sw, g, f, eth(f, BC, GMAC, 0x0806, 42), t), 2);
  cr_assert_eq(sw.ports[g].floods_limited, 0);
  switch_fini(&sw);
}

Test(switch, storm_control_off_with_rate_zero)
{
  struct switch_table sw;
  struct rec ra = {0}, rb = {0};
  uint32_t a, b;
  struct switch_params p = params();
  p.flood_rate = 0;
  p.flood_burst = 1;
  switch_init(&sw, &p);
  switch_port_attach(&sw, 0, &rec_ops, &ra, &a);
  switch_port_attach(&sw, 0, &rec_ops, &rb, &b);
  uint8_t f[64];
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(input(&sw, a, f, eth(f, BC, MA, 0x0806, 42), 0), 1);
  cr_assert_eq(sw.ctr.flood_limited, 0);
  switch_fini(&sw);
}
