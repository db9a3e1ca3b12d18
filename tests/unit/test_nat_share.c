/*
 * test_nat_share: the NAT's fair shares (nat_share.c) driven through the
 * real pipeline (gw_pipeline.h: io_uring, timers, switch, policy with
 * 127.0.0.0/8 allowed, the gateway), as test_gateway.c and test_nat_tcp.c
 * do. Three "VMs" are recording switch ports in room 0; the fake relay's
 * client_of says which client each port belongs to: A1 and A2 are two VMs
 * of client A (one address, several sessions), B1 is client B's VM.
 * The "internet" is loopback: UDP sockets and a TCP listener of the test,
 * and a closed TCP port (refused at once).
 *
 * Each test sets the caps it exercises and checks the refusal (counter,
 * the answer the guest gets: RST or ICMP administratively prohibited),
 * that nothing left for a refused flow, that another client is unaffected,
 * and that the accounts come back when the flows end. Connects in
 * progress are held by not turning the ring: a guest SYN's connect is
 * only submitted on the next turn, so until then it is pending.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway_internal.h"
#include "wtrelay/io.h"
#include "wtrelay/net.h"
#include "wtrelay/policy.h"
#include "wtrelay/switch.h"
#include "wtrelay/timer.h"
#include "wtrelay/timeunit.h"

#include "gw_pipeline.h"

#define IP4 GWP_IP4
#define GW_IP IP4(10, 0, 2, 2)
#define LOOP_IP IP4(127, 0, 0, 1)
#define KEY_A 0xa0a0a0a0ull
#define KEY_B 0xb0b0b0b0ull
#define NVM 3
#define VM_FRAMES 8

struct vm {
  uint32_t port, ip;
  uint8_t mac[6];
  uint64_t client;
  unsigned nframes;
  size_t len[VM_FRAMES];
  uint8_t frame[VM_FRAMES][GW_FRAME_MAX];
};

struct env {
  struct gw_pipe p;
  struct vm vm[NVM]; /* A1, A2, B1 */
  int lfd;           /* TCP listener on 127.0.0.1 */
  uint16_t lport, closed_port;
  bool frozen;   /* guest frames arrive at vnow, whatever the real time */
  uint64_t vnow; /* (the loop's turns in between run on from it) */
};

static int vm_deliver(void *ctx, const struct switch_frame *f)
{
  struct vm *vm = ctx;
  gw_pipe_keep_frame(&vm->nframes, vm->len, vm->frame, VM_FRAMES, f);
  return 0;
}

static const struct switch_port_ops vm_ops = {.deliver = vm_deliver};

/* The relay's answer: the client behind a VM's port; 0 for any other. */
static uint64_t fake_client_of(void *ctx, uint32_t room, uint32_t port)
{
  struct env *e = ctx;
  for (unsigned i = 0; i < NVM && room == 0; i++)
    if (e->vm[i].port == port)
      return e->vm[i].client;
  return 0;
}

static const struct gateway_addr_ops fake_ops = {
    .lease = gw_pipe_fake_lease, .release = gw_pipe_no_release, .client_of = fake_client_of};

/* gp: the parameters after gw_pipe_params; tests set their caps in it. */
static struct env *env_new(struct gateway_params *gp)
{
  struct env *e = calloc(1, sizeof(*e));
  cr_assert(e);
  gp->udp_timeout_ns = 30 * NS_PER_S;
  gp->icmp_timeout_ns = 30 * NS_PER_S;
  gp->tcp_idle_ns = 600 * NS_PER_S;
  gp->tcp_connect_timeout_ns = 5 * NS_PER_S;
  gp->dns_timeout_ns = 3 * NS_PER_S;
  gw_pipe_init(&e->p, 512, gp, &fake_ops, e);
  static const uint64_t keys[NVM] = {KEY_A, KEY_A, KEY_B};
  static const uint8_t last[NVM] = {10, 11, 20};
  for (unsigned i = 0; i < NVM; i++) {
    struct vm *vm = &e->vm[i];
    memcpy(vm->mac, (uint8_t[]){0x52, 0x54, 0x00, 0x12, 0x34, last[i]}, 6);
    vm->ip = IP4(10, 0, 2, last[i]);
    vm->client = keys[i];
    cr_assert_eq(switch_port_attach(&e->p.sw, 0, &vm_ops, vm, &vm->port), 0);
    switch_port_set_addr(&e->p.sw, vm->port, vm->mac, vm->ip);
  }
  e->lfd = gw_pipe_tcp_listener(&e->lport, 64);
  close(gw_pipe_tcp_listener(&e->closed_port, 64)); /* a port nobody listens on */
  return e;
}

static void env_free(struct env *e)
{
  gw_pipe_fini(&e->p);
  close(e->lfd);
  free(e);
}

static struct gateway_params base_params(void)
{
  struct gateway_params gp;
  gw_pipe_params(&gp);
  gp.max_udp_flows = 16;
  gp.max_udp_flows_per_vm = 16;
  gp.max_tcp_conns = 200;
  gp.max_tcp_conns_per_vm = 200;
  return gp;
}

static void inject(struct env *e, struct vm *vm, const uint8_t *f, int n)
{
  cr_assert_gt(n, 0);
  gw_pipe_tick(&e->p);
  if (e->frozen) {
    e->p.skew = e->vnow - clock_now_ns(); /* modular: the loop's turns run on from vnow */
    e->p.now = e->vnow;
  }
  struct iovec iov = {.iov_base = (void *)f, .iov_len = (size_t)n};
  struct switch_frame sf = {.iov = &iov, .iovcnt = 1, .len = (size_t)n};
  switch_input(&e->p.sw, vm->port, &sf, e->p.now);
}

static void vm_udp(struct env *e, struct vm *vm, uint16_t sport, uint16_t dport)
{
  uint8_t f[GW_FRAME_MAX];
  struct net_l2 l2 = {.dst_mac = GWP_GW_MAC, .src_mac = vm->mac};
  inject(
      e, vm, f,
      net_build_udp(f, sizeof(f), &l2, vm->ip, LOOP_IP, sport, dport, (const uint8_t *)"q", 1, 1));
}

static void vm_tcp(struct env *e, struct vm *vm, uint16_t sport, uint16_t dport, uint8_t flags,
                   uint32_t seq)
{
  uint8_t f[GW_FRAME_MAX];
  struct net_l2 l2 = {.dst_mac = GWP_GW_MAC, .src_mac = vm->mac};
  inject(e, vm, f,
         net_build_tcp(f, sizeof(f), &l2, vm->ip, LOOP_IP, sport, dport, seq, 0, flags, 65535,
                       flags & TCP_SYN ? 1460 : 0, NULL, 0, 1));
}

static void vm_echo(struct env *e, struct vm *vm, uint16_t id)
{
  uint8_t f[GW_FRAME_MAX];
  struct net_l2 l2 = {.dst_mac = GWP_GW_MAC, .src_mac = vm->mac};
  uint8_t rest[4] = {(uint8_t)(id >> 8), (uint8_t)id, 0, 1};
  inject(e, vm, f,
         net_build_icmp(f, sizeof(f), &l2, vm->ip, LOOP_IP, ICMP_ECHO, 0, rest,
                        (const uint8_t *)"ping", 4, 1));
}

/* The last frame vm received, as IPv4 from the gateway's MAC. */
static void last_ip(struct vm *vm, struct net_ipv4 *ip)
{
  cr_assert_gt(vm->nframes, 0u, "the guest got an answer");
  unsigned i = (vm->nframes < VM_FRAMES ? vm->nframes : VM_FRAMES) - 1;
  struct net_eth eth;
  cr_assert_eq(net_eth_parse(vm->frame[i], vm->len[i], &eth), 0);
  cr_assert_arr_eq(eth.dst, vm->mac, 6);
  cr_assert_arr_eq(eth.src, GWP_GW_MAC, 6);
  cr_assert_eq(net_ipv4_parse(eth.payload, eth.len, ip), 0);
  cr_assert_eq(ip->dst, vm->ip);
}

/* The guest's last answer is ICMP destination unreachable, communication
 * administratively prohibited (3/13), from the gateway. */
static void expect_admin_prohibited(struct vm *vm)
{
  struct net_ipv4 ip;
  struct net_icmp m;
  last_ip(vm, &ip);
  cr_assert_eq(ip.proto, IP_PROTO_ICMP, "protocol %u", ip.proto);
  cr_assert_eq(ip.src, GW_IP);
  cr_assert_eq(net_icmp_parse(&ip, &m), 0);
  cr_assert_eq(m.type, ICMP_UNREACH);
  cr_assert_eq(m.code, ICMP_UNREACH_ADMIN, "code %u", m.code);
}

/* The guest's last answer is a RST for its SYN from sport. */
static void expect_rst(struct vm *vm, uint16_t sport, uint32_t seq)
{
  struct net_ipv4 ip;
  struct net_tcp t;
  last_ip(vm, &ip);
  cr_assert_eq(ip.proto, IP_PROTO_TCP);
  cr_assert_eq(net_tcp_parse(&ip, &t), 0);
  cr_assert_eq(t.dport, sport);
  cr_assert(t.flags & TCP_RST, "RST expected, flags %#x", t.flags);
  cr_assert_eq(t.ack, seq + 1);
}

static bool sock_has_datagram(struct env *e, int fd, uint64_t timeout_ns)
{
  uint8_t b[64];
  uint64_t end = clock_now_ns() + timeout_ns;
  for (unsigned turns = 0; turns < 10000; turns++) {
    if (recv(fd, b, sizeof(b), MSG_DONTWAIT) > 0)
      return true;
    if (clock_now_ns() >= end)
      return false;
    gw_pipe_pump_once(&e->p, 10 * NS_PER_MS);
  }
  return false;
}

/* The account of IPv4 guest ip in room 0. */
static uint32_t vm_count(struct gateway *gw, uint32_t ip, enum nat_share_kind k)
{
  union inany a = inany_from4(ip);
  return nat_share_vm_count(gw, 0, &a, k);
}

static uint32_t client_count(struct env *e, uint64_t key, enum nat_share_kind k)
{
  return nat_share_count(&e->p.gw, key, k);
}

/* ---- UDP mappings per client ---- */

Test(nat_share, udp_mappings_per_client)
{
  struct gateway_params gp = base_params();
  gp.max_udp_flows_per_vm = 3;
  gp.max_udp_flows_per_client = 4;
  struct env *e = env_new(&gp);
  struct gateway *gw = &e->p.gw;
  struct vm *a1 = &e->vm[0], *a2 = &e->vm[1], *b1 = &e->vm[2];
  uint16_t tport;
  int tfd = gw_pipe_udp_loopback(&tport);

  /* A1: three mappings (its per-VM cap), the fourth refused per VM */
  for (uint16_t i = 0; i < 3; i++) {
    vm_udp(e, a1, (uint16_t)(5000 + i), tport);
    cr_assert(sock_has_datagram(e, tfd, 2 * NS_PER_S), "A1 mapping %u", i);
  }
  vm_udp(e, a1, 5003, tport);
  cr_assert_eq(gw->ctr.udp_flows_full, 1, "per-VM cap");
  expect_admin_prohibited(a1);

  /* A2, the same client: one more, then the client's share is used up */
  vm_udp(e, a2, 6000, tport);
  cr_assert(sock_has_datagram(e, tfd, 2 * NS_PER_S));
  cr_assert_eq(client_count(e, KEY_A, NAT_SHARE_UDP), 4);
  unsigned before = a2->nframes;
  vm_udp(e, a2, 6001, tport);
  cr_assert_eq(gw->ctr.share_udp_client, 1, "per-client cap");
  cr_assert_eq(a2->nframes, before + 1, "the refusal is answered");
  expect_admin_prohibited(a2);
  cr_assert_not(sock_has_datagram(e, tfd, 200 * NS_PER_MS), "a refused mapping sends nothing");
  cr_assert_eq(gw->nudp, 4);

  /* client B is not affected */
  vm_udp(e, b1, 7000, tport);
  cr_assert(sock_has_datagram(e, tfd, 2 * NS_PER_S), "client B's datagram went out");
  cr_assert_eq(client_count(e, KEY_B, NAT_SHARE_UDP), 1);
  cr_assert_eq(gw->ctr.share_udp_client, 1);

  /* the mappings end: every account comes back, and A2 may open again */
  e->p.skew += 31 * NS_PER_S;
  gw_pipe_tick(&e->p);
  timer_run(&e->p.heap, e->p.now);
  cr_assert_eq(gw->nudp, 0);
  cr_assert_eq(client_count(e, KEY_A, NAT_SHARE_UDP), 0);
  cr_assert_eq(gw->share_clients.nused, 0, "no account without a flow");
  cr_assert_eq(gw->share_vms.nused, 0, "no per-VM account without a flow (no rate set)");
  gw_pipe_pump_once(&e->p, 10 * NS_PER_MS);
  vm_udp(e, a2, 6001, tport);
  cr_assert(sock_has_datagram(e, tfd, 2 * NS_PER_S));
  cr_assert_eq(gw->ctr.share_udp_client, 1);
  close(tfd);
  env_free(e);
}

/* ---- TCP connects in progress, per VM and per client; connections per client ---- */

Test(nat_share, tcp_pending_and_connections_per_client)
{
  struct gateway_params gp = base_params();
  gp.max_tcp_pending_per_vm = 2;
  gp.max_tcp_pending_per_client = 3;
  gp.max_tcp_conns_per_client = 4;
  struct env *e = env_new(&gp);
  struct gateway *gw = &e->p.gw;
  struct vm *a1 = &e->vm[0], *a2 = &e->vm[1], *b1 = &e->vm[2];

  /* no turn of the ring: every admitted SYN stays a connect in progress */
  vm_tcp(e, a1, 40001, e->lport, TCP_SYN, 100);
  vm_tcp(e, a1, 40002, e->lport, TCP_SYN, 100);
  cr_assert_eq(a1->nframes, 0);
  vm_tcp(e, a1, 40003, e->lport, TCP_SYN, 100);
  cr_assert_eq(gw->ctr.share_pending_vm, 1, "per-VM connects in progress");
  cr_assert_eq(a1->nframes, 0, "dropped, no RST: the guest retries the SYN");
  vm_tcp(e, a2, 40004, e->lport, TCP_SYN, 100);
  cr_assert_eq(client_count(e, KEY_A, NAT_SHARE_PENDING), 3);
  vm_tcp(e, a2, 40005, e->lport, TCP_SYN, 100);
  cr_assert_eq(gw->ctr.share_pending_client, 1, "per-client connects in progress");
  cr_assert_eq(a2->nframes, 0, "dropped, no RST");
  cr_assert_eq(gw->ntcp, 3, "a dropped SYN holds no slot");
  /* another client still connects */
  vm_tcp(e, b1, 40006, e->lport, TCP_SYN, 100);
  cr_assert_eq(b1->nframes, 0, "client B's SYN is not refused");
  cr_assert_eq(gw->ntcp, 4);
  cr_assert_eq(gw->ctr.tcp_opened, 4);

  /* the connects complete: SYN-ACKs, no longer pending, still connections */
  for (uint64_t end = clock_now_ns() + 2 * NS_PER_S;
       gw->ctr.tcp_established < 4 && clock_now_ns() < end;)
    gw_pipe_pump_once(&e->p, 10 * NS_PER_MS);
  cr_assert_eq(gw->ctr.tcp_established, 4);
  cr_assert_eq(client_count(e, KEY_A, NAT_SHARE_PENDING), 0);
  cr_assert_eq(client_count(e, KEY_A, NAT_SHARE_TCP), 3);
  cr_assert_eq(vm_count(gw, a1->ip, NAT_SHARE_PENDING), 0);
  cr_assert_eq(vm_count(gw, a1->ip, NAT_SHARE_TCP), 2);
  /* the dropped SYN, retransmitted now that the connects completed: let in */
  vm_tcp(e, a1, 40003, e->lport, TCP_SYN, 100);
  cr_assert_eq(gw->ctr.share_pending_vm, 1, "not refused again");
  for (uint64_t end = clock_now_ns() + 2 * NS_PER_S;
       gw->ctr.tcp_established < 5 && clock_now_ns() < end;)
    gw_pipe_pump_once(&e->p, 10 * NS_PER_MS);
  cr_assert_eq(gw->ctr.tcp_established, 5, "the retried connect completes");
  vm_tcp(e, a1, 40003, e->lport, TCP_RST, 101);
  cr_assert_eq(vm_count(gw, a1->ip, NAT_SHARE_TCP), 2);

  /* connections per client: one more, then the share is used up */
  vm_tcp(e, a2, 40007, e->lport, TCP_SYN, 100);
  cr_assert_eq(client_count(e, KEY_A, NAT_SHARE_TCP), 4);
  unsigned before = a2->nframes;
  vm_tcp(e, a2, 40008, e->lport, TCP_SYN, 100);
  cr_assert_eq(gw->ctr.share_tcp_client, 1, "per-client connections");
  cr_assert_eq(a2->nframes, before + 1);
  expect_rst(a2, 40008, 100);

  /* the guest resets one: its accounts come back and a new one is let in */
  vm_tcp(e, a1, 40001, e->lport, TCP_RST, 101);
  cr_assert_eq(client_count(e, KEY_A, NAT_SHARE_TCP), 3);
  cr_assert_eq(vm_count(gw, a1->ip, NAT_SHARE_TCP), 1);
  before = a2->nframes;
  vm_tcp(e, a2, 40009, e->lport, TCP_SYN, 100);
  cr_assert_eq(a2->nframes, before, "admitted: no RST");
  cr_assert_eq(gw->ctr.share_tcp_client, 1);

  /* the room goes: every account with it */
  gw_pipe_pump_for(&e->p, 100 * NS_PER_MS);
  gateway_room_detach(gw, 0);
  cr_assert_eq(client_count(e, KEY_A, NAT_SHARE_TCP), 0);
  cr_assert_eq(client_count(e, KEY_A, NAT_SHARE_PENDING), 0);
  cr_assert_eq(client_count(e, KEY_B, NAT_SHARE_TCP), 0);
  cr_assert_eq(gw->share_clients.nused, 0);
  gw_pipe_pump_for(&e->p, 100 * NS_PER_MS);
  env_free(e);
}

/* A connect that times out or is refused gives its pending account back. */
Test(nat_share, failed_connects_give_their_accounts_back)
{
  struct gateway_params gp = base_params();
  gp.max_tcp_pending_per_vm = 2;
  gp.max_tcp_pending_per_client = 2;
  struct env *e = env_new(&gp);
  struct gateway *gw = &e->p.gw;
  struct vm *a1 = &e->vm[0];
  for (unsigned round = 0; round < 3; round++) {
    vm_tcp(e, a1, (uint16_t)(41000 + 2 * round), e->closed_port, TCP_SYN, 7);
    vm_tcp(e, a1, (uint16_t)(41001 + 2 * round), e->closed_port, TCP_SYN, 7);
    cr_assert_eq(client_count(e, KEY_A, NAT_SHARE_PENDING), 2);
    for (uint64_t end = clock_now_ns() + 2 * NS_PER_S; gw->ntcp && clock_now_ns() < end;)
      gw_pipe_pump_once(&e->p, 10 * NS_PER_MS);
    cr_assert_eq(gw->ntcp, 0);
    cr_assert_eq(client_count(e, KEY_A, NAT_SHARE_PENDING), 0, "round %u", round);
    cr_assert_eq(client_count(e, KEY_A, NAT_SHARE_TCP), 0);
  }
  cr_assert_eq(gw->ctr.tcp_refused, 6, "every connect reached the host and was refused there");
  cr_assert_eq(gw->ctr.share_pending_client + gw->ctr.share_pending_vm, 0);
  cr_assert_eq(gw->share_clients.nused, 0);
  gw_pipe_pump_for(&e->p, 50 * NS_PER_MS);
  env_free(e);
}

/* ---- the rate of new flows per VM ---- */

Test(nat_share, new_flow_rate_per_vm)
{
  struct gateway_params gp = base_params();
  gp.nat_new_rate = 1;
  gp.nat_new_burst = 5;
  struct env *e = env_new(&gp);
  struct gateway *gw = &e->p.gw;
  struct vm *a1 = &e->vm[0], *b1 = &e->vm[2];
  uint16_t tport;
  int tfd = gw_pipe_udp_loopback(&tport);

  /* the burst: five new mappings at once */
  for (uint16_t i = 0; i < 5; i++)
    vm_udp(e, a1, (uint16_t)(5000 + i), tport);
  cr_assert_eq(gw->ctr.udp_flows_opened, 5);
  cr_assert_eq(a1->nframes, 0);
  /* then nothing new of any protocol until the bucket refills */
  vm_udp(e, a1, 5005, tport);
  cr_assert_eq(gw->ctr.rate_limited[NAT_SHARE_P_UDP], 1);
  expect_admin_prohibited(a1);
  vm_tcp(e, a1, 42000, e->lport, TCP_SYN, 9);
  cr_assert_eq(gw->ctr.rate_limited[NAT_SHARE_P_TCP], 1);
  expect_rst(a1, 42000, 9);
  cr_assert_eq(gw->ctr.tcp_opened, 0);
  if (gw->icmp_ok) {
    vm_echo(e, a1, 77);
    cr_assert_eq(gw->ctr.rate_limited[NAT_SHARE_P_ICMP], 1);
    expect_admin_prohibited(a1);
    cr_assert_eq(gw->ctr.icmp_flows_opened, 0);
  }
  /* existing mappings go on */
  vm_udp(e, a1, 5000, tport);
  cr_assert_eq(gw->ctr.udp_out, 6);
  /* another VM has its own bucket */
  vm_udp(e, b1, 7000, tport);
  cr_assert_eq(gw->ctr.udp_flows_opened, 6);
  cr_assert_eq(b1->nframes, 0);

  /* one second: one more */
  e->p.skew += 1 * NS_PER_S;
  vm_udp(e, a1, 5006, tport);
  cr_assert_eq(gw->ctr.udp_flows_opened, 7);
  vm_udp(e, a1, 5007, tport);
  cr_assert_eq(gw->ctr.rate_limited[NAT_SHARE_P_UDP], 2);

  /* long idle: the burst again, never more */
  e->p.skew += 60 * NS_PER_S;
  gw_pipe_pump_once(&e->p, 10 * NS_PER_MS); /* the sweep: the old mappings expire */
  for (uint16_t i = 0; i < 5; i++)
    vm_udp(e, a1, (uint16_t)(5100 + i), tport);
  cr_assert_eq(gw->ctr.rate_limited[NAT_SHARE_P_UDP], 2);
  vm_udp(e, a1, 5105, tport);
  cr_assert_eq(gw->ctr.rate_limited[NAT_SHARE_P_UDP], 3);
  close(tfd);
  env_free(e);
}

/* The defaults (50/s, burst 100): a page's worth of connections at once
 * passes; a scan gets the burst and then 50 a second. */
Test(nat_share, default_rate_lets_a_page_through_and_slows_a_scan)
{
  struct gateway_params gp = base_params();
  gp.nat_new_rate = 50;
  gp.nat_new_burst = 100;
  struct env *e = env_new(&gp);
  struct gateway *gw = &e->p.gw;
  struct vm *a1 = &e->vm[0];
  uint16_t dport = e->closed_port;
  e->vnow = clock_now_ns();
  e->frozen = true; /* turns of the loop take real time; the bucket must not see it */
  uint16_t sport = 43000;
  for (unsigned batch = 0; batch < 10; batch++) {
    for (unsigned i = 0; i < 10; i++)
      vm_tcp(e, a1, sport++, dport, TCP_SYN, 1);
    for (uint64_t end = clock_now_ns() + 2 * NS_PER_S; gw->ntcp && clock_now_ns() < end;)
      gw_pipe_pump_once(&e->p, 10 * NS_PER_MS);
  }
  cr_assert_eq(gw->ctr.tcp_opened, 100,
               "a burst of 100 connections all reach the host: %llu, rate %llu, full %llu",
               (unsigned long long)gw->ctr.tcp_opened, (unsigned long long)gw->ctr.rate_limited[1],
               (unsigned long long)gw->ctr.tcp_full);
  cr_assert_eq(gw->ctr.rate_limited[NAT_SHARE_P_TCP], 0);
  vm_tcp(e, a1, sport++, dport, TCP_SYN, 1);
  cr_assert_eq(gw->ctr.rate_limited[NAT_SHARE_P_TCP], 1, "the 101st at once is refused");
  /* one second later: 50 more (one every 20 ms), not 51 */
  e->vnow += 1 * NS_PER_S;
  unsigned ok = 0;
  for (unsigned i = 0; i < 60; i++) {
    uint64_t before = gw->ctr.tcp_opened;
    vm_tcp(e, a1, sport++, dport, TCP_SYN, 1);
    ok += gw->ctr.tcp_opened > before;
    if (i % 10 == 9)
      for (uint64_t end = clock_now_ns() + 2 * NS_PER_S; gw->ntcp && clock_now_ns() < end;)
        gw_pipe_pump_once(&e->p, 10 * NS_PER_MS);
  }
  cr_assert_eq(ok, 50u, "%u let through", ok);
  cr_assert_eq(gw->ctr.rate_limited[NAT_SHARE_P_TCP], 11);
  gw_pipe_pump_for(&e->p, 50 * NS_PER_MS);
  env_free(e);
}

/* The per-VM account table is bounded: when VMs that hold nothing still
 * refill their buckets and the table is full, the account closest to full
 * is reused (that VM starts again with a full bucket); the sweep frees the
 * accounts once their buckets are full. Driven through nat_share_admit
 * with packets of many guest addresses (no ports: no client). */
Test(nat_share, vm_accounts_are_bounded_and_reused)
{
  struct gateway_params gp = base_params();
  gp.max_udp_flows = 2;
  gp.max_tcp_conns = 2;
  gp.max_tcp_conns_per_vm = 2;
  gp.max_icmp_flows = 4;
  gp.nat_new_rate = 1;
  gp.nat_new_burst = 1;
  struct env *e = env_new(&gp);
  struct gateway *gw = &e->p.gw;
  uint32_t cap = gw->share_vms.cap;
  cr_assert_eq(cap, 2 + 2 + 4 + 16u);
  e->vnow = clock_now_ns();
  struct gw_pkt pkt = {.room = 0, .src_port = 0xffff, .src_mac = e->vm[0].mac};
  uint64_t client;
  for (uint32_t i = 0; i < cap + 6; i++) {
    e->p.now = e->vnow + i; /* each one a nanosecond later: a strict order of fullness */
    pkt.ip.src = IP4(10, 0, 3, 0) + i;
    cr_assert_eq(nat_share_admit(gw, &pkt, NAT_SHARE_P_ICMP, &client), 0, "VM %u", i);
    cr_assert_eq(client, 0);
  }
  cr_assert_eq(gw->share_vms.nused, cap, "never more accounts than the table");
  cr_assert_eq(gw->ctr.share_vm_evicted, 6);
  cr_assert_eq(gw->ctr.share_table_full, 0);
  /* the last VM is still in the table with an empty bucket: refused */
  e->p.now = e->vnow + cap + 6;
  pkt.ip.src = IP4(10, 0, 3, 0) + cap + 5;
  cr_assert_eq(nat_share_admit(gw, &pkt, NAT_SHARE_P_ICMP, &client), -EAGAIN);
  cr_assert_eq(gw->ctr.rate_limited[NAT_SHARE_P_ICMP], 1);
  /* the first VM's account was reused: it starts with a full bucket */
  pkt.ip.src = IP4(10, 0, 3, 0);
  cr_assert_eq(nat_share_admit(gw, &pkt, NAT_SHARE_P_ICMP, &client), 0);
  cr_assert_eq(gw->ctr.share_vm_evicted, 7);
  /* buckets full again: the sweep frees every account */
  nat_share_sweep(gw, e->vnow + 3 * NS_PER_S);
  cr_assert_eq(gw->share_vms.nused, 0);
  env_free(e);
}

/* ---- one client over two workers: the client accounts shared ---- */

Test(nat_share, client_share_spans_gateways_that_share_accounts)
{
  /* two gateways (two workers' NATs) with one table of client accounts:
   * client A's VMs sit one on each; its share counts over both */
  struct nat_share_clients shared;
  cr_assert_eq(nat_share_clients_init(&shared, 64), 0);
  struct gateway_params g1 = base_params(), g2 = base_params();
  g1.max_udp_flows_per_vm = g2.max_udp_flows_per_vm = 3;
  g1.max_udp_flows_per_client = g2.max_udp_flows_per_client = 4;
  g1.shared_clients = g2.shared_clients = &shared;
  g1.report_shared = true;
  struct env *e1 = env_new(&g1), *e2 = env_new(&g2);
  uint16_t tport;
  int tfd = gw_pipe_udp_loopback(&tport);

  for (uint16_t i = 0; i < 3; i++) {
    vm_udp(e1, &e1->vm[0], (uint16_t)(5000 + i), tport);
    cr_assert(sock_has_datagram(e1, tfd, 2 * NS_PER_S), "A1 mapping %u on worker 1", i);
  }
  /* A2 on the other worker: one more, then the share (4) is used up */
  vm_udp(e2, &e2->vm[1], 6000, tport);
  cr_assert(sock_has_datagram(e2, tfd, 2 * NS_PER_S));
  cr_assert_eq(client_count(e1, KEY_A, NAT_SHARE_UDP), 4, "counted over both");
  cr_assert_eq(client_count(e2, KEY_A, NAT_SHARE_UDP), 4);
  vm_udp(e2, &e2->vm[1], 6001, tport);
  cr_assert_eq(e2->p.gw.ctr.share_udp_client, 1, "refused on worker 2: the share is global");
  expect_admin_prohibited(&e2->vm[1]);
  cr_assert_not(sock_has_datagram(e2, tfd, 200 * NS_PER_MS));
  /* without the shared table worker 2 would have had a share of its own */
  cr_assert_eq(e2->p.gw.nudp, 1);
  /* client B, on worker 2: unaffected */
  vm_udp(e2, &e2->vm[2], 7000, tport);
  cr_assert(sock_has_datagram(e2, tfd, 2 * NS_PER_S));
  /* the gauge: once, by the reporting gateway */
  cr_assert_eq(gateway_share_clients(&e1->p.gw), 2);
  cr_assert_eq(gateway_share_clients(&e2->p.gw), 0);
  cr_assert_eq(e1->p.gw.share_clients.nused + e2->p.gw.share_clients.nused, 0,
               "the gateways' own tables unused");

  /* every mapping ends: every account comes back to the shared table */
  e1->p.skew += 31 * NS_PER_S;
  e2->p.skew += 31 * NS_PER_S;
  gw_pipe_tick(&e1->p);
  gw_pipe_tick(&e2->p);
  timer_run(&e1->p.heap, e1->p.now);
  timer_run(&e2->p.heap, e2->p.now);
  cr_assert_eq(e1->p.gw.nudp + e2->p.gw.nudp, 0);
  cr_assert_eq(shared.tab.nused, 0, "no account without a flow");
  close(tfd);
  env_free(e1);
  env_free(e2);
  nat_share_clients_fini(&shared);
}
