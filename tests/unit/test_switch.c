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

/* A switch with params `p` and three recording ports in room 0. */
static void switch_with_3_ports(struct switch_table *sw, const struct switch_params *p,
                                struct rec *r0, uint32_t *p0, struct rec *r1, uint32_t *p1,
                                struct rec *r2, uint32_t *p2)
{
  switch_init(sw, p);
  switch_port_attach(sw, 0, &rec_ops, r0, p0);
  switch_port_attach(sw, 0, &rec_ops, r1, p1);
  switch_port_attach(sw, 0, &rec_ops, r2, p2);
}

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
  switch_with_3_ports(&sw, &p, &ra, &a, &rb, &b, &rc, &c);
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
  switch_with_3_ports(&sw, &p, &ra, &a, &rb, &b, &rc, &c);
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
  switch_with_3_ports(&sw, &p, &ra, &a, &rb, &b, &rc, &c);
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
  switch_with_3_ports(&sw, &p, &ra, &a, &rb, &b, &rc, &c);
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
  switch_with_3_ports(&sw, &p, &ra, &a, &rb, &b, &rg, &g);
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

/* ---- uplink ports ---- */

/* An IPv4 frame of 80 bytes from `src` to `dst` for address `ip`. */
static size_t ipv4(uint8_t *b, const uint8_t dst[6], const uint8_t src[6], uint32_t ip)
{
  eth(b, dst, src, 0x0800, 80);
  b[14] = 0x45;
  b[30] = (uint8_t)(ip >> 24);
  b[31] = (uint8_t)(ip >> 16);
  b[32] = (uint8_t)(ip >> 8);
  b[33] = (uint8_t)ip;
  return 80;
}

static uint8_t mac_n(uint8_t m[6], int n)
{
  memcpy(m, (uint8_t[]){0x02, 0x77, 0, 0, 0, 0}, 6);
  m[4] = (uint8_t)(n >> 8);
  m[5] = (uint8_t)n;
  return m[5];
}

/* Two local ports a, b and two uplinks u1, u2 in room 0. */
struct lan {
  struct switch_table sw;
  struct rec ra, rb, r1, r2;
  uint32_t a, b, u1, u2;
};

static void lan_init(struct lan *l, const struct switch_params *p)
{
  memset(l, 0, sizeof(*l));
  cr_assert_eq(switch_init(&l->sw, p), 0);
  cr_assert_eq(switch_port_attach(&l->sw, 0, &rec_ops, &l->ra, &l->a), 0);
  cr_assert_eq(switch_port_attach(&l->sw, 0, &rec_ops, &l->rb, &l->b), 0);
  cr_assert_eq(switch_uplink_attach(&l->sw, 0, &rec_ops, &l->r1, &l->u1), 0);
  cr_assert_eq(switch_uplink_attach(&l->sw, 0, &rec_ops, &l->r2, &l->u2), 0);
  cr_assert_eq(switch_port_kind(&l->sw, l->a), SWITCH_PORT_LOCAL);
  cr_assert_eq(switch_port_kind(&l->sw, l->u1), SWITCH_PORT_UPLINK);
  cr_assert_eq(l->sw.domains[0].nuplinks, 2);
}

Test(switch_uplink, local_flood_goes_once_to_each_uplink)
{
  struct lan l;
  struct switch_params p = params();
  lan_init(&l, &p);
  uint8_t f[64];
  cr_assert_eq(input(&l.sw, l.a, f, eth(f, BC, MA, 0x0806, 42), 0), 3);
  cr_assert_eq(l.r1.frames, 1);
  cr_assert_eq(l.r2.frames, 1);
  cr_assert_eq(l.rb.frames, 1);
  cr_assert_eq(l.r1.floods, 1, "a flood copy is marked on the uplink too");
  cr_assert_arr_eq(l.r1.last, f, 42);
  /* unknown unicast: once each as well */
  cr_assert_eq(input(&l.sw, l.a, f, eth(f, MC, MA, 0x0800, 60), 0), 3);
  cr_assert_eq(l.r1.frames, 2);
  cr_assert_eq(l.r2.frames, 2);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_UPLINK].frames_out, 4);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_UPLINK].flood_copies, 4);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_LOCAL].frames_out, 2);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_LOCAL].frames_in, 2);
  cr_assert_eq(l.sw.ctr.split_horizon, 0);
  switch_fini(&l.sw);
}

Test(switch_uplink, split_horizon_with_two_uplinks)
{
  struct lan l;
  struct switch_params p = params();
  lan_init(&l, &p);
  uint8_t f[64];
  /* a broadcast from u1 reaches the local ports, never u2 (nor u1) */
  cr_assert_eq(input(&l.sw, l.u1, f, eth(f, BC, MB, 0x0806, 42), 0), 2);
  cr_assert_eq(l.ra.frames, 1);
  cr_assert_eq(l.rb.frames, 1);
  cr_assert_eq(l.r1.frames, 0);
  cr_assert_eq(l.r2.frames, 0);
  cr_assert_eq(l.sw.ctr.split_horizon, 1);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_UPLINK].frames_in, 1);
  /* unknown unicast from u1: the local ports only */
  cr_assert_eq(input(&l.sw, l.u1, f, eth(f, MA, MB, 0x0800, 60), 0), 2);
  cr_assert_eq(l.r2.frames, 0);
  cr_assert_eq(l.sw.ctr.split_horizon, 2);
  /* MC is learned behind u2; unicast from u1 to it is not forwarded */
  cr_assert_eq(input(&l.sw, l.u2, f, eth(f, BC, MC, 0x0806, 42), 0), 2);
  cr_assert_eq(switch_lookup(&l.sw, 0, MC, 0), l.u2);
  cr_assert_eq(input(&l.sw, l.u1, f, eth(f, MC, MB, 0x0800, 60), 0), 0);
  cr_assert_eq(l.r2.frames, 0);
  cr_assert_eq(l.r1.frames, 0);
  cr_assert_eq(l.sw.ctr.split_horizon, 4);
  /* but a local port reaches MC through u2 only */
  cr_assert_eq(input(&l.sw, l.a, f, eth(f, MC, MA, 0x0800, 60), 0), 1);
  cr_assert_eq(l.r2.frames, 1);
  cr_assert_eq(l.r1.frames, 0);
  cr_assert_eq(l.r2.floods, 0, "a learned unicast is not a flood copy");
  switch_fini(&l.sw);
}

Test(switch_uplink, learning_behind_an_uplink_and_its_bound)
{
  struct lan l;
  struct switch_params p = params();
  p.max_macs_per_uplink = 6; /* max_macs_per_port is 4 */
  lan_init(&l, &p);
  uint8_t f[64], m[6];
  for (int i = 0; i < 10; i++) {
    mac_n(m, i);
    cr_assert_eq(input(&l.sw, l.u1, f, eth(f, BC, m, 0x0806, 42), 0), 2,
                 "frames flow when the bound is reached");
  }
  cr_assert_eq(l.sw.ports[l.u1].nmacs, 6);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_UPLINK].learned, 6);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_UPLINK].learn_full, 4);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_UPLINK].macs, 6);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_LOCAL].learn_full, 0);
  /* unicast to a MAC behind u1 goes to u1 only */
  mac_n(m, 3);
  cr_assert_eq(input(&l.sw, l.a, f, eth(f, m, MA, 0x0800, 60), 0), 1);
  cr_assert_eq(l.r1.frames, 1);
  cr_assert_eq(l.r2.frames, 0);
  /* the session's bound is still 4 */
  for (int i = 20; i < 26; i++)
    input(&l.sw, l.b, f, eth(f, BC, (mac_n(m, i), m), 0x0806, 42), 0);
  cr_assert_eq(l.sw.ports[l.b].nmacs, 4);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_LOCAL].learn_full, 2);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_UPLINK].macs + l.sw.kind[SWITCH_PORT_LOCAL].macs, l.sw.nmacs);
  /* detaching the uplink forgets what was behind it */
  switch_port_detach(&l.sw, l.u1);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_UPLINK].macs, 0);
  cr_assert_eq(l.sw.domains[0].nuplinks, 1);
  mac_n(m, 3);
  cr_assert_eq(switch_lookup(&l.sw, 0, m, 0), SWITCH_NO_PORT);
  switch_fini(&l.sw);
}

Test(switch_uplink, bound_defaults_to_the_room)
{
  struct lan l;
  struct switch_params p = params();
  p.max_macs_per_domain = 12;
  lan_init(&l, &p);
  uint8_t f[64], m[6];
  for (int i = 0; i < 20; i++)
    input(&l.sw, l.u1, f, eth(f, BC, (mac_n(m, i), m), 0x0806, 42), 0);
  cr_assert_eq(l.sw.ports[l.u1].nmacs, 12);
  cr_assert_eq(l.sw.ctr.learn_full_port + l.sw.ctr.learn_full_domain, 8);
  switch_fini(&l.sw);
}

Test(switch_uplink, macs_move_between_uplink_and_local_port)
{
  struct lan l;
  struct switch_params p = params();
  lan_init(&l, &p);
  uint8_t f[64];
  input(&l.sw, l.u1, f, eth(f, BC, MC, 0x0806, 42), 1 * NS_PER_S);
  cr_assert_eq(switch_lookup(&l.sw, 0, MC, 1 * NS_PER_S), l.u1);
  /* the host comes here: its MAC follows it */
  input(&l.sw, l.a, f, eth(f, BC, MC, 0x0806, 42), 2 * NS_PER_S);
  cr_assert_eq(switch_lookup(&l.sw, 0, MC, 2 * NS_PER_S), l.a);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_LOCAL].moved_in, 1);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_UPLINK].macs, 0);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_LOCAL].macs, 1);
  cr_assert_eq(l.sw.ports[l.u1].nmacs, 0);
  /* and leaves again, behind the other uplink */
  input(&l.sw, l.u2, f, eth(f, BC, MC, 0x0806, 42), 3 * NS_PER_S);
  cr_assert_eq(switch_lookup(&l.sw, 0, MC, 3 * NS_PER_S), l.u2);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_UPLINK].moved_in, 1);
  cr_assert_eq(l.sw.ports[l.a].nmacs, 0);
  cr_assert_eq(l.sw.ports[l.u2].nmacs, 1);
  cr_assert_eq(l.sw.ctr.moved, 2);
  /* unicast follows */
  int before = l.r2.frames;
  cr_assert_eq(input(&l.sw, l.b, f, eth(f, MC, MB, 0x0800, 60), 3 * NS_PER_S), 1);
  cr_assert_eq(l.r2.frames, before + 1);
  cr_assert_eq(l.r1.frames, 1, "u1 saw only the flood from a");
  /* a move into a full uplink is refused like a new MAC */
  switch_fini(&l.sw);
  p.max_macs_per_uplink = 1;
  lan_init(&l, &p);
  input(&l.sw, l.u1, f, eth(f, BC, MC, 0x0806, 42), 1 * NS_PER_S);
  input(&l.sw, l.a, f, eth(f, BC, MB, 0x0806, 42), 1 * NS_PER_S);
  input(&l.sw, l.u1, f, eth(f, BC, MB, 0x0806, 42), 2 * NS_PER_S);
  cr_assert_eq(switch_lookup(&l.sw, 0, MB, 2 * NS_PER_S), l.a);
  cr_assert_eq(l.sw.kind[SWITCH_PORT_UPLINK].learn_full, 1);
  switch_fini(&l.sw);
}

Test(switch_uplink, pinned_mac_is_not_stolen_from_an_uplink)
{
  struct lan l;
  struct switch_params p = params();
  lan_init(&l, &p);
  cr_assert_eq(switch_port_pin_mac(&l.sw, l.a, MA), 0);
  uint8_t f[64];
  cr_assert_eq(input(&l.sw, l.u1, f, eth(f, BC, MA, 0x0806, 42), 1 * NS_PER_S), -EPERM);
  cr_assert_eq(input(&l.sw, l.u1, f, eth(f, MB, MA, 0x0800, 60), 1 * NS_PER_S), -EPERM);
  cr_assert_eq(l.rb.frames + l.ra.frames + l.r2.frames, 0, "nothing forwarded");
  cr_assert_eq(l.sw.ctr.drop_uplink_pinned_src, 2);
  cr_assert_eq(switch_lookup(&l.sw, 0, MA, 1000 * NS_PER_S), l.a, "still pinned to its session");
  cr_assert_eq(l.sw.ctr.moved, 0);
  /* an unpinned local MAC does move (the host went elsewhere) */
  input(&l.sw, l.b, f, eth(f, BC, MB, 0x0806, 42), 1 * NS_PER_S);
  cr_assert_eq(input(&l.sw, l.u1, f, eth(f, BC, MB, 0x0806, 42), 2 * NS_PER_S), 2);
  cr_assert_eq(switch_lookup(&l.sw, 0, MB, 2 * NS_PER_S), l.u1);
  switch_fini(&l.sw);
}

Test(switch_uplink, no_storm_bucket_on_an_uplink)
{
  struct lan l;
  struct switch_params p = params();
  p.flood_rate = 10;
  p.flood_burst = 5;
  lan_init(&l, &p);
  uint8_t f[64];
  for (int i = 0; i < 100; i++)
    cr_assert_eq(input(&l.sw, l.u1, f, eth(f, BC, MC, 0x0806, 42), 5 * NS_PER_S), 2);
  cr_assert(switch_flood_allowed(&l.sw, l.u2, 5 * NS_PER_S));
  cr_assert_eq(l.sw.ports[l.u1].floods_limited, 0);
  cr_assert_eq(l.sw.ctr.flood_limited, 0);
  /* a session still has its bucket */
  int passed = 0;
  for (int i = 0; i < 100; i++)
    passed += input(&l.sw, l.a, f, eth(f, BC, MA, 0x0806, 42), 5 * NS_PER_S) > 0;
  cr_assert_eq(passed, 5);
  cr_assert_eq(l.r1.frames, 5);
  switch_fini(&l.sw);
}

/* Room 0 on two switches ("workers"): here a, the gateway g and the uplink
 * u; there b and its uplink v. The routing shortcut across them. */
Test(switch_uplink, routing_shortcut_across_an_uplink)
{
  struct switch_params p = params();
  struct switch_table here, there;
  struct rec ra = {0}, rg = {0}, ru = {0}, rb = {0}, rv = {0};
  uint32_t a, g, u, b, v;
  cr_assert_eq(switch_init(&here, &p), 0);
  cr_assert_eq(switch_init(&there, &p), 0);
  switch_port_attach(&here, 0, &rec_ops, &ra, &a);
  switch_port_attach(&here, 0, &rec_ops, &rg, &g);
  switch_uplink_attach(&here, 0, &rec_ops, &ru, &u);
  switch_port_set_addr(&here, a, MA, 0x0a0002fe);
  switch_port_set_addr(&here, g, GMAC, 0x0a000202);
  switch_port_pin_mac(&here, g, GMAC);
  switch_port_attach(&there, 0, &rec_ops, &rb, &b);
  switch_uplink_attach(&there, 0, &rec_ops, &rv, &v);
  switch_port_set_addr(&there, b, MB, 0x0a0002fd);
  /* an uplink has no address of its own */
  switch_port_set_addr(&here, u, MC, 0x0a0002fd);
  cr_assert_eq(switch_port_ip(&here, u), 0);
  uint8_t f[80];
  /* a -> router MAC for b's address: not here, so unchanged to the uplink */
  cr_assert_eq(input(&here, a, f, ipv4(f, GMAC, MA, 0x0a0002fd), 0), 1);
  cr_assert_eq(ru.frames, 1);
  cr_assert_eq(rg.frames, 0, "not to the gateway");
  cr_assert_arr_eq(ru.last, f, 80, "unchanged");
  cr_assert_eq(here.ctr.routed_uplink, 1);
  /* there, from the uplink: the shortcut rewrites it for b */
  cr_assert_eq(input(&there, v, ru.last, ru.last_len, 0), 1);
  cr_assert_eq(rb.frames, 1);
  cr_assert_arr_eq(rb.last, MB, 6);
  cr_assert_arr_eq(rb.last + 6, GMAC, 6);
  cr_assert_arr_eq(rb.last + 12, f + 12, 80 - 12);
  cr_assert_eq(there.ctr.routed, 1);
  cr_assert_eq(rv.frames, 0);
  /* b answers the same way, and a gets it rewritten */
  cr_assert_eq(input(&there, b, f, ipv4(f, GMAC, MB, 0x0a0002fe), 0), 1);
  cr_assert_eq(input(&here, u, rv.last, rv.last_len, 0), 1);
  cr_assert_eq(ra.frames, 1);
  cr_assert_arr_eq(ra.last, MA, 6);
  /* from an uplink, an address nobody holds here goes nowhere (never to
   * the gateway, never back out) */
  cr_assert_eq(input(&here, u, f, ipv4(f, GMAC, MB, 0x0a000277), 0), 0);
  cr_assert_eq(input(&here, u, f, ipv4(f, GMAC, MB, 0x0a000202), 0), 0);
  cr_assert_eq(rg.frames, 0);
  cr_assert_eq(ru.frames, 1);
  cr_assert_eq(here.ctr.drop_uplink_router, 2);
  /* without an uplink, an unknown address goes to the gateway as before */
  switch_port_detach(&here, u);
  cr_assert_eq(input(&here, a, f, ipv4(f, GMAC, MA, 0x0a0002fd), 0), 1);
  cr_assert_eq(rg.frames, 1);
  switch_fini(&here);
  switch_fini(&there);
}

Test(switch_uplink, routed_to_uplinks_costs_a_flood_token)
{
  struct lan l;
  struct switch_params p = params();
  p.flood_rate = 10;
  p.flood_burst = 3;
  lan_init(&l, &p);
  switch_port_set_addr(&l.sw, l.a, MA, 0x0a0002fe);
  uint8_t f[80];
  int passed = 0;
  for (int i = 0; i < 10; i++) {
    int rc = input(&l.sw, l.a, f, ipv4(f, GMAC, MA, 0x0a000250), 5 * NS_PER_S);
    cr_assert(rc == 2 || rc == -ENOBUFS, "rc %d", rc);
    passed += rc == 2;
  }
  cr_assert_eq(passed, 3);
  cr_assert_eq(l.r1.frames, 3);
  cr_assert_eq(l.r2.frames, 3);
  switch_fini(&l.sw);
}

Test(switch_uplink, gateway_and_uplinks_never_meet)
{
  struct lan l;
  struct switch_params p = params();
  lan_init(&l, &p);
  struct rec rg = {0};
  uint32_t g;
  switch_port_attach(&l.sw, 0, &rec_ops, &rg, &g);
  switch_port_set_addr(&l.sw, g, GMAC, 0x0a000202);
  switch_port_pin_mac(&l.sw, g, GMAC);
  switch_port_flood_exempt(&l.sw, g);
  uint8_t f[80];
  /* a DHCP DISCOVER or an ARP request from elsewhere: answered there */
  cr_assert_eq(input(&l.sw, l.u1, f, eth(f, BC, MC, 0x0800, 60), 0), 2);
  cr_assert_eq(rg.frames, 0);
  /* our gateway's broadcasts stay here */
  cr_assert_eq(input(&l.sw, g, f, eth(f, BC, GMAC, 0x0806, 42), 0), 2);
  cr_assert_eq(l.r1.frames + l.r2.frames, 0);
  cr_assert_eq(l.ra.frames, 2);
  /* unicast either way: dropped */
  cr_assert_eq(input(&l.sw, l.u1, f, eth(f, GMAC, MC, 0x0806, 42), 0), 0);
  cr_assert_eq(input(&l.sw, g, f, eth(f, MC, GMAC, 0x0806, 42), 0), 0);
  cr_assert_eq(rg.frames + l.r1.frames + l.r2.frames, 0);
  /* the gateway's MAC from an uplink (a gateway elsewhere) is pinned here */
  cr_assert_eq(input(&l.sw, l.u1, f, eth(f, BC, GMAC, 0x0806, 42), 0), -EPERM);
  cr_assert_eq(switch_lookup(&l.sw, 0, GMAC, 0), g);
  cr_assert_eq(l.sw.ctr.split_horizon, 1);
  cr_assert_geq(l.sw.ctr.drop_uplink_router, 5);
  switch_fini(&l.sw);
}

Test(switch_uplink, gateway_alias_address_stays_here)
{
  /* the gateway answers for its DNS address too (10.0.2.3): a ping or
   * query to it from a local port is the local gateway's, not the other
   * workers' (their switches would drop it: drop_uplink_router) */
  struct lan l;
  struct switch_params p = params();
  lan_init(&l, &p);
  struct rec rg = {0};
  uint32_t g;
  switch_port_attach(&l.sw, 0, &rec_ops, &rg, &g);
  switch_port_set_addr(&l.sw, g, GMAC, 0x0a000202);
  switch_port_pin_mac(&l.sw, g, GMAC);
  switch_port_set_addr(&l.sw, l.a, MA, 0x0a0002fe);
  uint8_t f[80];
  /* before the alias: routed to the uplinks, as an address held elsewhere */
  cr_assert_eq(input(&l.sw, l.a, f, ipv4(f, GMAC, MA, 0x0a000203), 0), 2);
  cr_assert_eq(rg.frames, 0);
  cr_assert_eq(l.r1.frames, 1);
  switch_port_set_alias(&l.sw, g, 0x0a000203);
  cr_assert_eq(switch_port_ip(&l.sw, g), 0x0a000202, "the source address is unchanged");
  cr_assert_eq(input(&l.sw, l.a, f, ipv4(f, GMAC, MA, 0x0a000203), 0), 1);
  cr_assert_eq(rg.frames, 1);
  cr_assert_arr_eq(rg.last, f, 80, "as it is");
  cr_assert_eq(l.r1.frames + l.r2.frames, 2, "not to the uplinks");
  /* the gateway's own address as before */
  cr_assert_eq(input(&l.sw, l.a, f, ipv4(f, GMAC, MA, 0x0a000202), 0), 1);
  cr_assert_eq(rg.frames, 2);
  /* an uplink never gets an alias; a zero alias never matches */
  switch_port_set_alias(&l.sw, l.u1, 0x0a000204);
  cr_assert_eq(l.sw.ports[l.u1].alias, 0);
  switch_fini(&l.sw);
}
