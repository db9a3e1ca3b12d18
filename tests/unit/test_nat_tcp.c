/*
 * test_nat_tcp: the TCP NAT (nat_tcp.c) driven through the real pipeline in
 * one process, as test_gateway.c does for UDP: a real io_uring, a timer
 * heap, the switch, the egress policy (127.0.0.0/8 allowed) and
 * gateway_init with a small TCP table (4 in all, 2 per VM). The "guest" is
 * this file: it builds TCP segments with net_build_tcp from 10.0.2.10 and
 * injects them from a recording switch port; the gateway's answers are
 * parsed with net.c's parsers. The "internet" is a TCP listener the test
 * opens on 127.0.0.1:0; its accepted sockets are non-blocking and read or
 * written by the test between turns of the loop.
 *
 * The io loop is driven by hand, every wait with a deadline; the gateway's
 * clock (*now) is CLOCK_MONOTONIC plus a skew the tests advance to reach
 * the RTO without sleeping.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wtrelay/gateway.h"
#include "wtrelay/io.h"
#include "wtrelay/net.h"
#include "wtrelay/policy.h"
#include "wtrelay/switch.h"
#include "wtrelay/timer.h"
#include "wtrelay/timeunit.h"

#include "gw_pipeline.h"

#define IP4 GWP_IP4

#define GW_IP IP4(10, 0, 2, 2)
#define DNS_IP IP4(10, 0, 2, 3)
#define VM_IP IP4(10, 0, 2, 10)
#define LOOP_IP IP4(127, 0, 0, 1)
#define REPLY_WAIT (2 * NS_PER_S)      /* how long a test waits for something that must come */
#define SILENCE_WAIT (200 * NS_PER_MS) /* how long it listens for something that must not */
#define GUEST_WND 60000

#define GW_MAC GWP_GW_MAC
static const uint8_t VM_MAC[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x0a};

/* ---- the recording VM port ---- */

#define VM_MAX_FRAMES 512

struct vm {
  uint32_t port;
  unsigned nframes; /* every frame delivered */
  unsigned rd;      /* the next frame the test has not looked at */
  int room;         /* frames the port takes before it refuses (a full datagram queue); -1 = any */
  size_t len[VM_MAX_FRAMES];
  uint8_t frame[VM_MAX_FRAMES][GW_FRAME_MAX];
};

static int vm_deliver(void *ctx, const struct switch_frame *f)
{
  struct vm *vm = ctx;
  if (vm->room == 0)
    return -ENOBUFS;
  if (vm->room > 0)
    vm->room--;
  cr_assert_lt(vm->nframes, (unsigned)VM_MAX_FRAMES, "more frames than the test keeps");
  gw_pipe_keep_frame(&vm->nframes, vm->len, vm->frame, VM_MAX_FRAMES, f);
  return 0;
}

static const struct switch_port_ops vm_ops = {.deliver = vm_deliver};

static const struct gateway_addr_ops fake_ops = {.lease = gw_pipe_fake_lease,
                                                 .release = gw_pipe_no_release};

/* ---- the pipeline ---- */

struct env {
  struct gw_pipe p;
  struct vm vm;
  int lfd; /* the test's listener on 127.0.0.1 */
  uint16_t lport;
};

static void tick(struct env *e)
{
  gw_pipe_tick(&e->p);
}

/* The pipeline with a timer heap of `timers` slots (the gateway's sweep
 * takes one). */
static struct env *env_new_ex(unsigned timers, uint32_t max_tcp_conns)
{
  struct env *e = calloc(1, sizeof(*e));
  cr_assert(e);
  struct gateway_params gp;
  gw_pipe_params(&gp);
  gp.udp_timeout_ns = 30 * NS_PER_S;
  gp.icmp_timeout_ns = 30 * NS_PER_S;
  gp.max_tcp_conns = max_tcp_conns;
  gp.max_tcp_conns_per_vm = 2;
  gp.tcp_idle_ns = 600 * NS_PER_S;
  gp.tcp_connect_timeout_ns = 5 * NS_PER_S;
  gp.dns_timeout_ns = 3 * NS_PER_S;
  gw_pipe_init(&e->p, timers, &gp, &fake_ops, NULL);
  e->vm.room = -1;
  cr_assert_eq(switch_port_attach(&e->p.sw, 0, &vm_ops, &e->vm, &e->vm.port), 0);
  switch_port_set_addr(&e->p.sw, e->vm.port, VM_MAC, VM_IP);
  e->lfd = gw_pipe_tcp_listener(&e->lport, 16);
  return e;
}

static struct env *env_new_timers(unsigned timers)
{
  return env_new_ex(timers, 4);
}

static struct env *env_new(void)
{
  return env_new_timers(64);
}

static void env_free(struct env *e)
{
  gw_pipe_fini(&e->p);
  close(e->lfd);
  free(e);
}

static void pump_once(struct env *e, uint64_t wait_ns)
{
  gw_pipe_pump_once(&e->p, wait_ns);
}

static void pump_for(struct env *e, uint64_t ns)
{
  gw_pipe_pump_for(&e->p, ns);
}

/* Jumps the gateway's clock ahead and runs what became due. */
static void advance(struct env *e, uint64_t ns)
{
  e->p.skew += ns;
  tick(e);
  timer_run(&e->p.heap, e->p.now);
}

/* ---- the guest ---- */

static void guest_seg(struct env *e, uint16_t sport, uint32_t dst, uint16_t dport, uint32_t seq,
                      uint32_t ack, uint8_t flags, uint16_t window, uint16_t mss, const void *p,
                      size_t len)
{
  uint8_t f[GW_FRAME_MAX];
  struct net_l2 l2 = {.dst_mac = GW_MAC, .src_mac = VM_MAC};
  int n = net_build_tcp(f, sizeof(f), &l2, VM_IP, dst, sport, dport, seq, ack, flags, window, mss,
                        p, len, 0x4242);
  cr_assert_gt(n, 0);
  tick(e);
  struct iovec iov = {.iov_base = f, .iov_len = (size_t)n};
  struct switch_frame sf = {.iov = &iov, .iovcnt = 1, .len = (size_t)n};
  switch_input(&e->p.sw, e->vm.port, &sf, e->p.now);
}

/* Parses frame i of the VM as an IPv4/TCP frame from the gateway. */
static void parse_frame(struct env *e, unsigned i, struct net_tcp *t, struct net_ipv4 *ip)
{
  struct net_eth eth;
  cr_assert_eq(net_eth_parse(e->vm.frame[i], e->vm.len[i], &eth), 0);
  cr_assert_arr_eq(eth.dst, VM_MAC, 6, "destination MAC");
  cr_assert_arr_eq(eth.src, GW_MAC, 6, "source MAC is the gateway's");
  cr_assert_eq(eth.type, ETH_TYPE_IPV4);
  cr_assert_eq(net_ipv4_parse(eth.payload, eth.len, ip), 0, "IPv4 header or checksum");
  cr_assert_eq(ip->dst, VM_IP);
  if (t) {
    cr_assert_eq(ip->proto, IP_PROTO_TCP, "protocol %u, expected TCP", ip->proto);
    cr_assert_eq(net_tcp_parse(ip, t), 0, "TCP header or checksum");
  }
}

/* The next segment the gateway sent to the guest (pumping up to timeout),
 * checked to come from 127.0.0.1:sport to the guest's gport. */
static bool next_seg(struct env *e, uint16_t sport, uint16_t gport, struct net_tcp *t,
                     uint64_t timeout)
{
  uint64_t end = clock_now_ns() + timeout;
  for (unsigned turns = 0; e->vm.rd == e->vm.nframes && clock_now_ns() < end && turns < 10000;
       turns++)
    pump_once(e, 10 * NS_PER_MS);
  if (e->vm.rd == e->vm.nframes)
    return false;
  struct net_ipv4 ip;
  parse_frame(e, e->vm.rd++, t, &ip);
  cr_assert_eq(ip.src, LOOP_IP, "segment from %08x", ip.src);
  cr_assert_eq(t->sport, sport, "source port %u, expected %u", t->sport, sport);
  cr_assert_eq(t->dport, gport, "destination port %u, expected %u", t->dport, gport);
  return true;
}

static void must_seg(struct env *e, uint16_t sport, uint16_t gport, struct net_tcp *t)
{
  cr_assert(next_seg(e, sport, gport, t, REPLY_WAIT), "no segment to the guest");
}

/* A guest SYN from `sport` (sequence `isn`) to the test's listener is
 * refused by the NAT: an RST acking it comes back, and the listener never
 * gets a connection. `what` names the SYN in the messages. */
static void expect_syn_refused(struct env *e, uint16_t sport, uint32_t isn, const char *what)
{
  guest_seg(e, sport, LOOP_IP, e->lport, isn, 0, TCP_SYN, GUEST_WND, 1460, NULL, 0);
  struct net_tcp t;
  must_seg(e, e->lport, sport, &t);
  cr_assert(t.flags & TCP_RST, "RST expected for %s, flags %#x", what, t.flags);
  cr_assert_eq(t.ack, isn + 1);
  pump_for(e, SILENCE_WAIT);
  cr_assert_lt(accept4(e->lfd, NULL, NULL, SOCK_NONBLOCK), 0, "%s connected", what);
}

/* Nothing more reaches the guest for SILENCE_WAIT. */
static void guest_silent(struct env *e)
{
  pump_for(e, SILENCE_WAIT);
  cr_assert_eq(e->vm.nframes, e->vm.rd, "%u unexpected frames to the guest",
               e->vm.nframes - e->vm.rd);
}

/* A guest connection: what the guest sends next and expects next. */
struct conn {
  uint16_t gport, dport;
  uint32_t gnxt; /* the guest's next sequence number */
  uint32_t hnxt; /* the next sequence number the guest expects from the gateway */
  uint16_t wnd;  /* the window the guest advertises */
  int afd;       /* the accepted socket, -1 before */
};

static int accept_one(struct env *e, uint64_t timeout)
{
  uint64_t end = clock_now_ns() + timeout;
  for (unsigned turns = 0; turns < 10000; turns++) {
    int fd = accept4(e->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
      return fd;
    cr_assert(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR, "accept: %s",
              strerror(errno));
    if (clock_now_ns() >= end)
      break;
    pump_once(e, 10 * NS_PER_MS);
  }
  return -1;
}

/* SYN (MSS 1460) -> SYN-ACK checked -> final ACK -> accepted. */
static void conn_open(struct env *e, struct conn *c, uint16_t gport, uint32_t isn, uint16_t wnd)
{
  c->gport = gport;
  c->dport = e->lport;
  c->wnd = wnd;
  c->afd = -1;
  guest_seg(e, gport, LOOP_IP, e->lport, isn, 0, TCP_SYN, wnd, 1460, NULL, 0);
  struct net_tcp t;
  must_seg(e, e->lport, gport, &t);
  cr_assert_eq(t.flags, TCP_SYN | TCP_ACK, "SYN-ACK expected, flags %#x", t.flags);
  cr_assert_eq(t.ack, isn + 1, "SYN-ACK acks %u, expected %u", t.ack, isn + 1);
  cr_assert_eq(t.mss, TCP_MSS_ADV, "SYN-ACK MSS %u", t.mss);
  cr_assert_gt(t.window, 0);
  cr_assert_eq(t.len, 0);
  c->gnxt = isn + 1;
  c->hnxt = t.seq + 1;
  guest_seg(e, gport, LOOP_IP, e->lport, c->gnxt, c->hnxt, TCP_ACK, wnd, 0, NULL, 0);
  c->afd = accept_one(e, REPLY_WAIT);
  cr_assert_geq(c->afd, 0, "the listener accepted nothing");
}

/* A fresh pipeline with one open connection whose guest window is GUEST_WND. */
static struct env *env_open(struct conn *c, uint16_t gport, uint32_t isn)
{
  struct env *e = env_new();
  conn_open(e, c, gport, isn, GUEST_WND);
  return e;
}

static void conn_ack(struct env *e, struct conn *c, uint32_t ack)
{
  guest_seg(e, c->gport, LOOP_IP, c->dport, c->gnxt, ack, TCP_ACK, c->wnd, 0, NULL, 0);
}

static void conn_data(struct env *e, struct conn *c, uint32_t seq, const uint8_t *p, size_t len)
{
  guest_seg(e, c->gport, LOOP_IP, c->dport, seq, c->hnxt, TCP_ACK | TCP_PSH, c->wnd, 0, p, len);
}

/* Reads exactly want bytes from the host socket fd (pumping), or fails. */
static void host_read(struct env *e, int fd, uint8_t *buf, size_t want)
{
  size_t got = 0;
  uint64_t end = clock_now_ns() + REPLY_WAIT;
  for (unsigned turns = 0; got < want && turns < 10000; turns++) {
    ssize_t n = recv(fd, buf + got, want - got, MSG_DONTWAIT);
    if (n > 0) {
      got += (size_t)n;
      continue;
    }
    cr_assert_neq(n, 0, "EOF after %zu of %zu bytes", got, want);
    cr_assert(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR, "recv: %s",
              strerror(errno));
    if (clock_now_ns() >= end)
      break;
    pump_once(e, 10 * NS_PER_MS);
  }
  cr_assert_eq(got, want, "host read %zu of %zu bytes", got, want);
}

static bool host_nothing(int fd)
{
  uint8_t b[64];
  return recv(fd, b, sizeof(b), MSG_DONTWAIT | MSG_PEEK) < 0 &&
         (errno == EAGAIN || errno == EWOULDBLOCK);
}

static int host_queued(int fd)
{
  int q = 0;
  cr_assert_eq(ioctl(fd, FIONREAD, &q), 0);
  return q;
}

static void fill(uint8_t *p, size_t n, unsigned salt)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(i * 7 + salt + (i >> 8));
}

/* ---- 1. handshake ---- */

Test(nat_tcp, handshake_and_syn_retransmission)
{
  struct env *e = env_new();
  struct conn c;
  const uint32_t isn = 1000000;
  /* a retransmitted SYN while the connect runs: sent before any turn of
   * the loop, so the connect cannot have completed */
  guest_seg(e, 40000, LOOP_IP, e->lport, isn, 0, TCP_SYN, GUEST_WND, 1460, NULL, 0);
  guest_seg(e, 40000, LOOP_IP, e->lport, isn, 0, TCP_SYN, GUEST_WND, 1460, NULL, 0);
  cr_assert_eq(e->p.gw.ntcp, 1, "one connection for a SYN and its retransmission");
  struct net_tcp t;
  must_seg(e, e->lport, 40000, &t);
  cr_assert_eq(t.flags, TCP_SYN | TCP_ACK, "flags %#x", t.flags);
  cr_assert_eq(t.ack, isn + 1);
  cr_assert_eq(t.mss, TCP_MSS_ADV);
  cr_assert_gt(t.window, 0);
  uint32_t gw_isn = t.seq;
  c.gport = 40000;
  c.dport = e->lport;
  c.wnd = GUEST_WND;
  c.gnxt = isn + 1;
  c.hnxt = gw_isn + 1;
  c.afd = accept_one(e, REPLY_WAIT);
  cr_assert_geq(c.afd, 0);

  /* a SYN retransmitted after the SYN-ACK (it was lost): the same SYN-ACK
   * again, no second host connection */
  guest_seg(e, 40000, LOOP_IP, e->lport, isn, 0, TCP_SYN, GUEST_WND, 1460, NULL, 0);
  must_seg(e, e->lport, 40000, &t);
  cr_assert_eq(t.flags, TCP_SYN | TCP_ACK);
  cr_assert_eq(t.seq, gw_isn, "the same ISN");
  cr_assert_eq(t.ack, isn + 1);
  cr_assert_eq(t.mss, TCP_MSS_ADV);

  /* the final ACK completes it; nothing answers an ACK */
  conn_ack(e, &c, c.hnxt);
  guest_silent(e);
  pump_for(e, SILENCE_WAIT);
  cr_assert_lt(accept4(e->lfd, NULL, NULL, SOCK_NONBLOCK), 0, "a second host connection");
  cr_assert_eq(e->p.gw.ctr.tcp_opened, 1);
  cr_assert_eq(e->p.gw.ctr.tcp_established, 1);
  cr_assert_eq(e->p.gw.ntcp, 1);

  /* and it works: one byte each way */
  conn_data(e, &c, c.gnxt, (const uint8_t *)"g", 1);
  uint8_t b[4];
  host_read(e, c.afd, b, 1);
  cr_assert_eq(b[0], 'g');
  must_seg(e, e->lport, 40000, &t);
  cr_assert_eq(t.ack, c.gnxt + 1);
  c.gnxt++;
  cr_assert_eq(send(c.afd, "h", 1, 0), 1);
  must_seg(e, e->lport, 40000, &t);
  cr_assert_eq(t.seq, c.hnxt);
  cr_assert_eq(t.len, 1);
  cr_assert_eq(t.payload[0], 'h');
  close(c.afd);
  env_free(e);
}

/* ---- 2. guest -> host ---- */

/* Waits for the gateway's ACK of `want`, checking on every ACK that it
 * never covers more than the host socket has received (read + queued). */
static void await_ack(struct env *e, struct conn *c, uint32_t base, uint32_t want,
                      size_t host_read_so_far)
{
  struct net_tcp t;
  for (unsigned i = 0; i < 64; i++) {
    must_seg(e, c->dport, c->gport, &t);
    cr_assert(t.flags & TCP_ACK);
    cr_assert_eq(t.len, 0, "no data expected from the host");
    uint32_t acked = t.ack - base;
    size_t have = host_read_so_far + (size_t)host_queued(c->afd);
    cr_assert_leq(acked, have, "ACK covers %u bytes, the host has %zu", acked, have);
    cr_assert_gt(t.window, 0);
    if (t.ack == want)
      return;
  }
  cr_assert_fail("no ACK of %u", want);
}

Test(nat_tcp, guest_to_host_in_order_and_gap)
{
  struct conn c;
  struct env *e = env_open(&c, 40001, 5000);
  const uint32_t base = c.gnxt;
  static uint8_t data[16000], got[16000];
  fill(data, sizeof(data), 3);

  /* in order: 4 full segments of our MSS and a short one */
  size_t off = 0;
  for (unsigned i = 0; i < 5; i++) {
    size_t n = i < 4 ? TCP_MSS_ADV : 1000;
    conn_data(e, &c, base + (uint32_t)off, data + off, n);
    off += n;
  }
  await_ack(e, &c, base, base + (uint32_t)off, 0);
  host_read(e, c.afd, got, off);
  cr_assert_arr_eq(got, data, off, "bytes at the host differ");
  size_t delivered = off;

  /* a gap: [off, off+1000) is missing, [off+1000, off+2000) arrives */
  conn_data(e, &c, base + (uint32_t)(off + 1000), data + off + 1000, 1000);
  struct net_tcp t;
  must_seg(e, c.dport, c.gport, &t);
  cr_assert_eq(t.flags & (TCP_SYN | TCP_FIN | TCP_RST), 0);
  cr_assert_eq(t.ack, base + (uint32_t)off, "duplicate ACK of the last in-order byte");
  cr_assert_eq(e->p.gw.ctr.tcp_out_of_order, 1);
  pump_for(e, SILENCE_WAIT);
  cr_assert(host_nothing(c.afd), "an out-of-order segment reached the host");

  /* the missing one: the held segment goes on with it, and one ACK covers
   * both (the guest need not resend what came after the hole) */
  conn_data(e, &c, base + (uint32_t)off, data + off, 1000);
  await_ack(e, &c, base, base + (uint32_t)(off + 2000), delivered);
  host_read(e, c.afd, got + off, 2000);
  cr_assert_arr_eq(got, data, off + 2000, "bytes at the host differ after the gap");
  delivered = off + 2000;

  /* two holes: segments 2 and 4 of 5 arrive first, then 1, then 3 */
  size_t b = off + 2000;
  conn_data(e, &c, base + (uint32_t)(b + 1000), data + b + 1000, 1000);
  conn_data(e, &c, base + (uint32_t)(b + 3000), data + b + 3000, 1000);
  pump_for(e, SILENCE_WAIT);
  cr_assert(host_nothing(c.afd), "held segments reached the host before the hole was filled");
  conn_data(e, &c, base + (uint32_t)b, data + b, 1000);
  await_ack(e, &c, base, base + (uint32_t)(b + 2000), delivered);
  conn_data(e, &c, base + (uint32_t)(b + 2000), data + b + 2000, 1000);
  await_ack(e, &c, base, base + (uint32_t)(b + 4000), delivered + 2000);
  host_read(e, c.afd, got + b, 4000);
  cr_assert_arr_eq(got, data, b + 4000, "bytes at the host differ after two holes");
  /* the guest's retransmission of a held segment is an old duplicate */
  conn_data(e, &c, base + (uint32_t)(b + 3000), data + b + 3000, 1000);
  pump_for(e, SILENCE_WAIT);
  cr_assert(host_nothing(c.afd), "a retransmitted held segment reached the host twice");
  off = b + 2000; /* what the checks below call the delivered total, minus 2000 */

  /* an old duplicate (already acknowledged) is not delivered twice */
  conn_data(e, &c, base, data, 500);
  pump_for(e, SILENCE_WAIT);
  cr_assert(host_nothing(c.afd), "a duplicate reached the host");
  cr_assert_eq(e->p.gw.ctr.tcp_bytes_out, off + 2000);
  close(c.afd);
  env_free(e);
}

/* ---- 3. host -> guest ---- */

/* Collects data segments to the guest until max bytes are outstanding,
 * `limit` bytes were collected, or the gateway stops; checks consecutive sequence numbers, the MSS,
 * and that no more than max is unacknowledged. Returns the bytes collected. */
static size_t collect(struct env *e, struct conn *c, uint32_t una, uint32_t max, uint8_t *out,
                      size_t limit)
{
  size_t n = 0;
  struct net_tcp t;
  /* stopping at limit matters: waiting longer than the RTO (1 s) for data
   * that never comes would see a legitimate retransmission */
  while (c->hnxt - una < max && n < limit && next_seg(e, c->dport, c->gport, &t, REPLY_WAIT)) {
    if (!t.len)
      continue;
    cr_assert_eq(t.seq, c->hnxt, "segment at %u, expected %u", t.seq, c->hnxt);
    cr_assert_leq(t.len, (size_t)TCP_MSS_TO_GUEST, "segment of %zu bytes", t.len);
    cr_assert_eq(t.flags & (TCP_SYN | TCP_RST | TCP_FIN), 0);
    cr_assert_eq(t.ack, c->gnxt);
    memcpy(out + n, t.payload, t.len);
    n += t.len;
    c->hnxt += (uint32_t)t.len;
    cr_assert_leq(c->hnxt - una, max, "%u bytes outstanding, window %u", c->hnxt - una, max);
  }
  return n;
}

Test(nat_tcp, host_to_guest_window)
{
  struct env *e = env_new();
  struct conn c;
  const uint16_t wnd = 3000;
  conn_open(e, &c, 40002, 77, wnd);
  static uint8_t data[8000], got[8000];
  fill(data, sizeof(data), 11);
  cr_assert_eq(send(c.afd, data, sizeof(data), 0), (ssize_t)sizeof(data));

  size_t total = 0;
  uint32_t una = c.hnxt;
  for (unsigned round = 0; total < sizeof(data) && round < 8; round++) {
    size_t n = collect(e, &c, una, wnd, got + total, sizeof(data) - total);
    cr_assert_gt(n, 0, "nothing sent in round %u", round);
    if (round == 0)
      cr_assert_eq(n, wnd, "the first flight fills the window exactly");
    total += n;
    if (c.hnxt - una == wnd) {
      /* the window is full: nothing more until the guest acknowledges */
      guest_silent(e);
    }
    una = c.hnxt;
    conn_ack(e, &c, una); /* reopens the window */
  }
  cr_assert_eq(total, sizeof(data));
  cr_assert_arr_eq(got, data, sizeof(data), "bytes at the guest differ");
  guest_silent(e);
  cr_assert_eq(e->p.gw.ctr.tcp_bytes_in, sizeof(data));
  cr_assert_eq(e->p.gw.ctr.tcp_retransmits, 0);
  close(c.afd);
  env_free(e);
}

/* A guest port that cannot take a segment (its session's datagram queue
 * is full) holds the rest of the flight back until the guest's next ACK:
 * nothing is lost, so nothing is resent and the window is not halved. */
Test(nat_tcp, a_full_guest_port_holds_segments_until_the_next_ack)
{
  struct conn c;
  struct env *e = env_open(&c, 40003, 91);
  const uint32_t M = TCP_MSS_TO_GUEST;
  static uint8_t data[6 * TCP_MSS_TO_GUEST], got[6 * TCP_MSS_TO_GUEST];
  fill(data, sizeof(data), 5);
  e->vm.room = 3;
  cr_assert_eq(send(c.afd, data, sizeof(data), 0), (ssize_t)sizeof(data));
  uint32_t una = c.hnxt;
  cr_assert_eq(collect(e, &c, una, 3 * M, got, 3 * M), 3 * M);
  guest_silent(e); /* held: neither sent on nor resent */
  cr_assert_eq(e->p.gw.ctr.tcp_retransmits, 0);

  /* the queue drained; the guest's ACK resumes from the first held byte */
  e->vm.room = -1;
  conn_ack(e, &c, c.hnxt);
  cr_assert_eq(collect(e, &c, una, 6 * M, got + 3 * M, 3 * M), 3 * M);
  cr_assert_arr_eq(got, data, sizeof(data), "bytes at the guest differ");
  conn_ack(e, &c, c.hnxt);
  guest_silent(e);
  cr_assert_eq(e->p.gw.ctr.tcp_retransmits, 0);
  cr_assert_eq(e->p.gw.ctr.tcp_bytes_in, sizeof(data));
  close(c.afd);
  env_free(e);
}

/* ---- 4. retransmission ---- */

/* For SILENCE_WAIT: whatever reaches the guest is the segment at `seq`
 * again (a tail-loss probe may repeat it), never any other data. */
static void only_resends_of(struct env *e, struct conn *c, uint32_t seq)
{
  struct net_tcp t;
  uint64_t end = clock_now_ns() + SILENCE_WAIT;
  while (clock_now_ns() < end)
    if (next_seg(e, c->dport, c->gport, &t, 10 * NS_PER_MS))
      cr_assert(t.len == 0 || t.seq == seq, "segment at %u (len %u), only %u may be resent", t.seq,
                (unsigned)t.len, seq);
}

/* A flight of n bytes from the host, delivered to the guest once in
 * order (nothing acknowledged yet); returns its first sequence number. */
static uint32_t flight(struct env *e, struct conn *c, const uint8_t *data, size_t n)
{
  static uint8_t got[32 * TCP_MSS_TO_GUEST];
  cr_assert_leq(n, sizeof(got));
  cr_assert_eq(send(c->afd, data, n, 0), (ssize_t)n);
  uint32_t una = c->hnxt;
  cr_assert_eq(collect(e, c, una, n, got, n), n);
  cr_assert_arr_eq(got, data, n);
  return una;
}

Test(nat_tcp, fast_recovery_resends_one_segment_per_hole)
{
  struct conn c;
  struct env *e = env_open(&c, 40013, 9);
  const uint32_t M = TCP_MSS_TO_GUEST;
  static uint8_t data[5 * TCP_MSS_TO_GUEST];
  fill(data, sizeof(data), 7);
  uint32_t una = flight(e, &c, data, sizeof(data));

  /* segments 2 and 4 were lost: the guest acknowledges segment 1, then
   * reports segment 2 missing three times (segments 3 and 5 arrived) */
  conn_ack(e, &c, una + M);
  pump_for(e, 20 * NS_PER_MS);
  for (unsigned i = 0; i < 3; i++)
    conn_ack(e, &c, una + M);
  struct net_tcp t;
  must_seg(e, c.dport, c.gport, &t);
  cr_assert_eq(t.seq, una + M, "fast retransmission at %u, expected %u", t.seq, una + M);
  cr_assert_eq(t.len, M, "one full segment");
  cr_assert_arr_eq(t.payload, data + M, M);
  only_resends_of(e, &c, una + M); /* not the rest of the window (no go-back-N) */

  /* the hole filled: a partial ACK up to segment 4 resends segment 4 at once */
  conn_ack(e, &c, una + 3 * M);
  must_seg(e, c.dport, c.gport, &t);
  cr_assert_eq(t.seq, una + 3 * M, "partial-ACK retransmission at %u, expected %u", t.seq,
               una + 3 * M);
  cr_assert_eq(t.len, M);
  cr_assert_arr_eq(t.payload, data + 3 * M, M);
  only_resends_of(e, &c, una + 3 * M);

  /* everything in: recovery ends without another retransmission */
  conn_ack(e, &c, una + 5 * M);
  guest_silent(e);
  cr_assert_geq(e->p.gw.ctr.tcp_retransmits, 2);
  close(c.afd);
  env_free(e);
}

/* A guest's duplicate ACK with SACK blocks whose window shrank (Linux
 * advertises less while it holds out-of-order data). */
static void sack_dupack(struct env *e, struct conn *c, uint32_t ack, uint16_t wnd, uint32_t l,
                        uint32_t r)
{
  uint8_t f[GW_FRAME_MAX];
  struct net_l2 l2 = {.dst_mac = GW_MAC, .src_mac = VM_MAC};
  struct net_tcp_opts o = {.wscale = -1, .nsack = 1};
  o.sack[0][0] = l;
  o.sack[0][1] = r;
  int n = net_build_tcp_opts(f, sizeof(f), &l2, VM_IP, LOOP_IP, c->gport, c->dport, c->gnxt, ack,
                             TCP_ACK, wnd, &o, NULL, 0, 0x4244);
  cr_assert_gt(n, 0);
  tick(e);
  struct iovec iov = {.iov_base = f, .iov_len = (size_t)n};
  struct switch_frame sf = {.iov = &iov, .iovcnt = 1, .len = (size_t)n};
  switch_input(&e->p.sw, e->vm.port, &sf, e->p.now);
}

Test(nat_tcp, sack_duplicate_acks_count_while_the_window_shrinks)
{
  struct conn c;
  struct env *e = env_open(&c, 40016, 9);
  const uint32_t M = TCP_MSS_TO_GUEST;
  static uint8_t data[5 * TCP_MSS_TO_GUEST];
  fill(data, sizeof(data), 13);
  uint32_t una = flight(e, &c, data, sizeof(data));
  conn_ack(e, &c, una + M);
  pump_for(e, 20 * NS_PER_MS);
  /* segment 2 lost; 3, 4, 5 arrive: three duplicate ACKs, each with a SACK
   * block and a window smaller by what the guest now holds */
  for (uint32_t k = 1; k <= 3; k++)
    sack_dupack(e, &c, una + M, (uint16_t)(GUEST_WND - k * M), una + 2 * M, una + (2 + k) * M);
  struct net_tcp t;
  must_seg(e, c.dport, c.gport, &t);
  cr_assert_eq(t.seq, una + M, "fast retransmission at %u, expected %u", t.seq, una + M);
  cr_assert_eq(t.len, M);
  cr_assert_eq(e->p.gw.ctr.tcp_tail_probes, 0, "resent by fast retransmit, not by the probe");
  close(c.afd);
  env_free(e);
}

/* The test's one connection in the NAT, once no receive operation of it
 * is in flight. */
static struct nat_tcp_conn *rx_idle(struct env *e)
{
  struct nat_tcp_conn *nc = NULL;
  for (uint32_t k = 0; k < e->p.gw.p.max_tcp_conns; k++)
    if (e->p.gw.tcp[k].used)
      nc = &e->p.gw.tcp[k];
  cr_assert_not_null(nc);
  for (unsigned turns = 0; turns < 200 && (nc->peek_busy || nc->discard_busy); turns++)
    pump_once(e, 10 * NS_PER_MS);
  cr_assert(!nc->peek_busy && !nc->discard_busy, "the connection stays busy");
  return nc;
}

Test(nat_tcp, a_partial_ack_during_a_resend_never_shifts_its_bytes)
{
  struct conn c;
  struct env *e = env_open(&c, 40017, 9);
  const uint32_t M = TCP_MSS_TO_GUEST;
  static uint8_t data[5 * TCP_MSS_TO_GUEST];
  fill(data, sizeof(data), 17);
  uint32_t una = flight(e, &c, data, sizeof(data));
  conn_ack(e, &c, una + M);
  /* wait until no receive operation of the connection is in flight, so the
   * third duplicate ACK submits the resend's peek at once */
  struct nat_tcp_conn *nc = rx_idle(e);
  /* three duplicate ACKs: the resend of segment 2 gets its peek (after a
   * normal peek the first one started completes) */
  for (unsigned i = 0; i < 3; i++)
    conn_ack(e, &c, una + M);
  for (unsigned turns = 0; turns < 200 && !nc->retx_busy; turns++)
    pump_once(e, 10 * NS_PER_MS);
  cr_assert(nc->retx_busy, "the resend's peek was never started");
  /* One loop turn by hand: the peek runs at submission and its completion
   * waits in the ring, while a partial ACK that came in the same batch of
   * packets moves the hole to segment 4. The resend must still go out at
   * the sequence number it read, segment 2's. */
  tick(e);
  io_flush(&e->p.io);
  uint64_t now = clock_now_ns();
  cr_assert_geq(io_wait(&e->p.io, now, now), 0);
  conn_ack(e, &c, una + 3 * M);
  tick(e);
  io_dispatch(&e->p.io);
  /* whatever is sent now, every byte is the byte of its sequence number */
  struct net_tcp t;
  unsigned segs = 0;
  uint64_t end = clock_now_ns() + SILENCE_WAIT;
  while (clock_now_ns() < end)
    if (next_seg(e, c.dport, c.gport, &t, 10 * NS_PER_MS) && t.len) {
      uint32_t off = t.seq - una;
      cr_assert_leq(off + t.len, sizeof(data), "segment beyond the data: seq %u len %u", t.seq,
                    (unsigned)t.len);
      cr_assert_arr_eq(t.payload, data + off, t.len, "bytes at seq %u (una+%u) are not that seq's",
                       t.seq, off);
      segs++;
    }
  cr_assert_geq(segs, 1, "the hole at segment 4 was not resent");
  close(c.afd);
  env_free(e);
}

/* The discard of newly acknowledged bytes and the resend's peek go to the
 * ring together: the peek offset is set before the discard runs, relative
 * to the first byte the kernel still holds, and the kernel moves it back
 * by what the discard consumes. The resend must carry the hole's bytes,
 * and new data after it the bytes of their own sequence numbers. */
Test(nat_tcp, a_resend_that_goes_with_a_discard_reads_the_hole)
{
  struct conn c;
  struct env *e = env_open(&c, 40018, 9);
  const uint32_t M = TCP_MSS_TO_GUEST;
  static uint8_t all[62 * TCP_MSS_TO_GUEST];
  fill(all, sizeof(all), 23);
  /* slow start: two flights acknowledged segment by segment take the
   * congestion window from 10 to 40 segments */
  for (uint32_t k = 0, una0 = flight(e, &c, all, 10 * M); k < 10; k++)
    conn_ack(e, &c, una0 + (k + 1) * M);
  for (uint32_t k = 0, una0 = flight(e, &c, all + 10 * M, 20 * M); k < 20; k++)
    conn_ack(e, &c, una0 + (k + 1) * M);
  const uint8_t *data = all + 30 * M;
  const size_t first = 30 * M; /* within GUEST_WND */
  cr_assert_eq(rx_idle(e)->discard_pending, 0, "acknowledged bytes left, nothing in flight");
  uint32_t una = flight(e, &c, data, first);
  struct nat_tcp_conn *nc = rx_idle(e);
  /* 13 segments acknowledged (more than a discard batch): their discard
   * (and a peek for new data) goes to the ring; before it comes back, 13
   * more are acknowledged and segment 27 is reported missing three times */
  conn_ack(e, &c, una + 13 * M);
  cr_assert(nc->discard_busy, "the first discard was not submitted");
  conn_ack(e, &c, una + 26 * M);
  for (unsigned i = 0; i < 3; i++)
    conn_ack(e, &c, una + 26 * M);
  cr_assert_eq(nc->discard_pending, 13 * M, "the second ACK's bytes wait for the next discard");
  cr_assert(nc->retx_pending, "no fast retransmit after three duplicate ACKs");
  /* the first turn comes back; the next one carries the discard and the
   * resend's peek together */
  for (unsigned turns = 0; turns < 200 && !nc->retx_busy; turns++)
    pump_once(e, 10 * NS_PER_MS);
  cr_assert(nc->retx_busy && nc->discard_busy, "the resend did not go with the discard");
  struct net_tcp t;
  must_seg(e, c.dport, c.gport, &t);
  cr_assert_eq(t.seq, una + 26 * M, "resend at %u, expected %u", t.seq, una + 26 * M);
  cr_assert_eq(t.len, M);
  cr_assert_arr_eq(t.payload, data + 26 * M, M, "the resend carries other bytes");
  /* everything acknowledged; new data from the host comes at its own offset */
  conn_ack(e, &c, una + (uint32_t)first);
  only_resends_of(e, &c, una + 26 * M);
  static uint8_t got[2 * TCP_MSS_TO_GUEST];
  cr_assert_eq(send(c.afd, data + first, sizeof(got), 0), (ssize_t)sizeof(got));
  c.hnxt = una + (uint32_t)first;
  cr_assert_eq(collect(e, &c, c.hnxt, sizeof(got), got, sizeof(got)), sizeof(got));
  cr_assert_arr_eq(got, data + first, sizeof(got), "new data after the resend differs");
  conn_ack(e, &c, c.hnxt);
  rx_idle(e);
  cr_assert_eq(nc->discard_pending, 0, "acknowledged bytes left once nothing is in flight");
  cr_assert_eq(host_queued(c.afd), 0);
  cr_assert_eq(e->p.gw.ctr.tcp_bytes_in, sizeof(all));
  close(c.afd);
  env_free(e);
}

Test(nat_tcp, tail_loss_probe_resends_the_first_hole_before_the_rto)
{
  struct conn c;
  struct env *e = env_open(&c, 40014, 9);
  const uint32_t M = TCP_MSS_TO_GUEST;
  static uint8_t data[3 * TCP_MSS_TO_GUEST];
  fill(data, sizeof(data), 9);
  uint32_t una = flight(e, &c, data, sizeof(data));
  /* the guest has segment 1 only: no duplicate ACKs will ever come */
  conn_ack(e, &c, una + M);
  uint64_t t0 = clock_now_ns();
  struct net_tcp t;
  must_seg(e, c.dport, c.gport, &t);
  uint64_t ms = (clock_now_ns() - t0) / NS_PER_MS;
  cr_assert_eq(t.seq, una + M, "probe at %u, expected the first hole %u", t.seq, una + M);
  cr_assert_eq(t.len, M);
  cr_assert_arr_eq(t.payload, data + M, M);
  (void)ms;
  cr_assert_eq(e->p.gw.ctr.tcp_tail_probes, 1, "resent by the tail-loss probe, not the RTO");
  close(c.afd);
  env_free(e);
}

Test(nat_tcp, sack_permitted_and_blocks_name_the_held_ranges)
{
  struct env *e = env_new();
  const uint16_t gport = 40015;
  const uint32_t isn = 77;
  /* a SYN that offers SACK */
  uint8_t f[GW_FRAME_MAX];
  struct net_l2 l2 = {.dst_mac = GW_MAC, .src_mac = VM_MAC};
  struct net_tcp_opts so = {.mss = 1460, .wscale = -1, .sack_ok = true};
  int n = net_build_tcp_opts(f, sizeof(f), &l2, VM_IP, LOOP_IP, gport, e->lport, isn, 0, TCP_SYN,
                             GUEST_WND, &so, NULL, 0, 0x4243);
  cr_assert_gt(n, 0);
  tick(e);
  struct iovec iov = {.iov_base = f, .iov_len = (size_t)n};
  struct switch_frame sf = {.iov = &iov, .iovcnt = 1, .len = (size_t)n};
  switch_input(&e->p.sw, e->vm.port, &sf, e->p.now);
  struct net_tcp t;
  must_seg(e, e->lport, gport, &t);
  cr_assert_eq(t.flags, TCP_SYN | TCP_ACK);
  cr_assert(t.sack_ok, "SYN-ACK without SACK permitted although the guest offered it");
  struct conn c = {
      .gport = gport, .dport = e->lport, .wnd = GUEST_WND, .gnxt = isn + 1, .hnxt = t.seq + 1};
  conn_ack(e, &c, c.hnxt);
  c.afd = accept_one(e, REPLY_WAIT);
  cr_assert_geq(c.afd, 0);
  static uint8_t data[5000];
  fill(data, sizeof(data), 11);
  const uint32_t b = c.gnxt;
  /* [0,1000) in order; [2000,3000) held: the duplicate ACK names it */
  conn_data(e, &c, b, data, 1000);
  await_ack(e, &c, b, b + 1000, 0);
  conn_data(e, &c, b + 2000, data + 2000, 1000);
  must_seg(e, c.dport, c.gport, &t);
  cr_assert_eq(t.ack, b + 1000);
  cr_assert_eq(t.nsack, 1);
  cr_assert_eq(t.sack[0][0], b + 2000);
  cr_assert_eq(t.sack[0][1], b + 3000);
  /* [4000,5000) held too: the latest first, then the older one */
  conn_data(e, &c, b + 4000, data + 4000, 1000);
  must_seg(e, c.dport, c.gport, &t);
  cr_assert_eq(t.nsack, 2);
  cr_assert_eq(t.sack[0][0], b + 4000);
  cr_assert_eq(t.sack[0][1], b + 5000);
  cr_assert_eq(t.sack[1][0], b + 2000);
  cr_assert_eq(t.sack[1][1], b + 3000);
  /* the first hole filled: the ACK jumps over the held range, one block left */
  conn_data(e, &c, b + 1000, data + 1000, 1000);
  await_ack(e, &c, b, b + 3000, 0);
  conn_data(e, &c, b + 3000, data + 3000, 1000);
  await_ack(e, &c, b, b + 5000, 0);
  uint8_t got[5000];
  host_read(e, c.afd, got, 5000);
  cr_assert_arr_eq(got, data, 5000);
  close(c.afd);
  env_free(e);
}

Test(nat_tcp, retransmit_on_rto_and_dupacks)
{
  struct conn c;
  struct env *e = env_open(&c, 40003, 9);
  static uint8_t data[3000], got[3000];
  fill(data, sizeof(data), 5);

  /* RTO: 1000 bytes never acknowledged */
  cr_assert_eq(send(c.afd, data, 1000, 0), 1000);
  uint32_t una = c.hnxt;
  cr_assert_eq(collect(e, &c, una, 1000, got, 1000), 1000);
  guest_silent(e);
  advance(e, 1500 * NS_PER_MS); /* the first RTO is 1 s */
  struct net_tcp t;
  must_seg(e, c.dport, c.gport, &t);
  cr_assert_eq(t.seq, una, "retransmission at %u, expected %u", t.seq, una);
  cr_assert_eq(t.len, 1000);
  cr_assert_arr_eq(t.payload, data, 1000);
  cr_assert_eq(e->p.gw.ctr.tcp_retransmits, 1);
  conn_ack(e, &c, c.hnxt);
  una = c.hnxt;
  guest_silent(e);

  /* three duplicate ACKs: 2000 more sent, the first segment acknowledged,
   * then its successor reported missing three times */
  cr_assert_eq(send(c.afd, data + 1000, 2000, 0), 2000);
  cr_assert_eq(collect(e, &c, una, 2000, got + 1000, 2000), 2000);
  cr_assert_arr_eq(got, data, 3000);
  uint32_t first = una + TCP_MSS_TO_GUEST;
  conn_ack(e, &c, first);
  pump_for(e, 20 * NS_PER_MS);
  cr_assert_eq(e->vm.nframes, e->vm.rd, "a new ACK alone sends nothing");
  for (unsigned i = 0; i < 3; i++)
    conn_ack(e, &c, first);
  must_seg(e, c.dport, c.gport, &t);
  cr_assert_eq(t.seq, first, "fast retransmission at %u, expected %u", t.seq, first);
  cr_assert_gt(t.len, 0);
  cr_assert_leq(t.len, 2000 - TCP_MSS_TO_GUEST);
  cr_assert_arr_eq(t.payload, data + 1000 + TCP_MSS_TO_GUEST, t.len);
  cr_assert_eq(e->p.gw.ctr.tcp_retransmits, 2);
  close(c.afd);
  env_free(e);
}

/* ---- 5. FIN and half-close ---- */

Test(nat_tcp, fin_half_close)
{
  struct conn c;
  struct env *e = env_open(&c, 40004, 123456);
  conn_data(e, &c, c.gnxt, (const uint8_t *)"bye", 3);
  uint8_t b[64];
  host_read(e, c.afd, b, 3);
  c.gnxt += 3;

  /* the guest's FIN: acknowledged, EOF at the host */
  guest_seg(e, c.gport, LOOP_IP, c.dport, c.gnxt, c.hnxt, TCP_FIN | TCP_ACK, c.wnd, 0, NULL, 0);
  c.gnxt++;
  struct net_tcp t;
  bool acked = false;
  for (unsigned i = 0; i < 8 && !acked; i++) {
    must_seg(e, c.dport, c.gport, &t);
    cr_assert_eq(t.flags & (TCP_RST | TCP_FIN), 0);
    acked = t.ack == c.gnxt;
  }
  cr_assert(acked, "the guest's FIN is acknowledged");
  ssize_t n = -1;
  for (uint64_t end = clock_now_ns() + REPLY_WAIT; clock_now_ns() < end;) {
    n = recv(c.afd, b, sizeof(b), MSG_DONTWAIT);
    if (n >= 0)
      break;
    pump_once(e, 10 * NS_PER_MS);
  }
  cr_assert_eq(n, 0, "the host reads EOF (got %zd)", n);

  /* the other direction still works */
  cr_assert_eq(send(c.afd, "still here", 10, 0), 10);
  must_seg(e, c.dport, c.gport, &t);
  cr_assert_eq(t.seq, c.hnxt);
  cr_assert_eq(t.len, 10);
  cr_assert_arr_eq(t.payload, "still here", 10);
  cr_assert_eq(t.ack, c.gnxt, "the FIN stays acknowledged");
  c.hnxt += 10;
  conn_ack(e, &c, c.hnxt);
  pump_for(e, 50 * NS_PER_MS);
  cr_assert_eq(e->p.gw.ntcp, 1, "half-closed, not gone");

  /* the host closes: FIN to the guest */
  close(c.afd);
  must_seg(e, c.dport, c.gport, &t);
  cr_assert(t.flags & TCP_FIN, "FIN expected, flags %#x", t.flags);
  cr_assert_eq(t.flags & TCP_RST, 0);
  cr_assert_eq(t.seq, c.hnxt);
  cr_assert_eq(t.len, 0);
  c.hnxt++;
  conn_ack(e, &c, c.hnxt);
  for (uint64_t end = clock_now_ns() + REPLY_WAIT; e->p.gw.ntcp && clock_now_ns() < end;)
    pump_once(e, 10 * NS_PER_MS);
  cr_assert_eq(e->p.gw.ntcp, 0, "the connection is gone");
  cr_assert_eq(e->p.gw.ctr.tcp_closed, 1);
  cr_assert_eq(e->p.gw.ctr.tcp_rst_out, 0);
  pump_for(e, 50 * NS_PER_MS);
  env_free(e);
}

/* ---- 6. RST ---- */

Test(nat_tcp, rst_both_ways)
{
  struct env *e = env_new();
  struct conn c, d;
  conn_open(e, &c, 40005, 1, GUEST_WND);
  conn_open(e, &d, 40006, 2, GUEST_WND);
  cr_assert_eq(e->p.gw.ntcp, 2);

  /* guest RST: the host sees a reset (or EOF) */
  guest_seg(e, c.gport, LOOP_IP, c.dport, c.gnxt, c.hnxt, TCP_RST | TCP_ACK, c.wnd, 0, NULL, 0);
  cr_assert_eq(e->p.gw.ntcp, 1);
  cr_assert_eq(e->p.gw.ctr.tcp_rst_in, 1);
  ssize_t n = -1;
  int err = 0;
  uint8_t b[64];
  for (uint64_t end = clock_now_ns() + REPLY_WAIT; clock_now_ns() < end;) {
    n = recv(c.afd, b, sizeof(b), MSG_DONTWAIT);
    err = errno;
    if (n >= 0 || (err != EAGAIN && err != EWOULDBLOCK))
      break;
    pump_once(e, 10 * NS_PER_MS);
  }
  cr_assert(n == 0 || (n < 0 && err == ECONNRESET), "host recv: %zd (%s)", n, strerror(err));
  close(c.afd);
  guest_silent(e); /* no answer to an RST */

  /* host abort: the guest gets RST */
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  cr_assert_eq(setsockopt(d.afd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  close(d.afd);
  struct net_tcp t;
  must_seg(e, d.dport, d.gport, &t);
  cr_assert(t.flags & TCP_RST, "RST expected, flags %#x", t.flags);
  cr_assert_eq(t.seq, d.hnxt, "RST at %u, expected %u", t.seq, d.hnxt);
  for (uint64_t end = clock_now_ns() + REPLY_WAIT; e->p.gw.ntcp && clock_now_ns() < end;)
    pump_once(e, 10 * NS_PER_MS);
  cr_assert_eq(e->p.gw.ntcp, 0);
  cr_assert_eq(e->p.gw.ctr.tcp_closed, 2);

  /* a segment for the dead connection: RST */
  conn_ack(e, &d, d.hnxt);
  must_seg(e, d.dport, d.gport, &t);
  cr_assert(t.flags & TCP_RST);
  pump_for(e, 50 * NS_PER_MS);
  env_free(e);
}

/* ---- 7. sequence wrap-around ---- */

Test(nat_tcp, guest_sequence_wraps)
{
  struct env *e = env_new();
  struct conn c;
  conn_open(e, &c, 40007, 0xfffffff0u, GUEST_WND);
  cr_assert_eq(c.gnxt, 0xfffffff1u);
  static uint8_t data[4000], got[4000];
  fill(data, sizeof(data), 99);
  const uint32_t base = c.gnxt;
  for (size_t off = 0; off < sizeof(data); off += 1000)
    conn_data(e, &c, base + (uint32_t)off, data + off, 1000);
  await_ack(e, &c, base, base + (uint32_t)sizeof(data), 0);
  host_read(e, c.afd, got, sizeof(data));
  cr_assert_arr_eq(got, data, sizeof(data));
  c.gnxt = base + (uint32_t)sizeof(data);
  cr_assert_lt(c.gnxt, 0x10000u, "the sequence space wrapped");

  /* and back the other way after the wrap */
  cr_assert_eq(send(c.afd, data, 2000, 0), 2000);
  uint32_t una = c.hnxt;
  cr_assert_eq(collect(e, &c, una, 2000, got, 2000), 2000);
  cr_assert_arr_eq(got, data, 2000);
  close(c.afd);
  env_free(e);
}

/* ---- 8. refused and full ---- */

Test(nat_tcp, refused_and_table_full)
{
  struct env *e = env_new();
  uint16_t closed;
  close(gw_pipe_tcp_listener(&closed, 16)); /* a port nobody listens on */
  guest_seg(e, 41000, LOOP_IP, closed, 555, 0, TCP_SYN, GUEST_WND, 1460, NULL, 0);
  struct net_tcp t;
  must_seg(e, closed, 41000, &t);
  cr_assert_eq(t.flags, TCP_RST | TCP_ACK, "RST|ACK expected, flags %#x", t.flags);
  cr_assert_eq(t.ack, 556u);
  cr_assert_eq(e->p.gw.ctr.tcp_refused, 1);
  for (uint64_t end = clock_now_ns() + REPLY_WAIT; e->p.gw.ntcp && clock_now_ns() < end;)
    pump_once(e, 10 * NS_PER_MS);
  cr_assert_eq(e->p.gw.ntcp, 0);

  /* two per VM: the third is refused at once */
  struct conn a, b;
  conn_open(e, &a, 41001, 10, GUEST_WND);
  conn_open(e, &b, 41002, 20, GUEST_WND);
  expect_syn_refused(e, 41003, 30, "the refused SYN");
  cr_assert_eq(e->p.gw.ctr.tcp_full, 1);
  cr_assert_eq(e->p.gw.ntcp, 2);
  cr_assert_eq(e->p.gw.ctr.tcp_opened, 3);
  close(a.afd);
  close(b.afd);
  pump_for(e, 50 * NS_PER_MS);
  env_free(e);
}

/* ---- 9. never a connection without its timer ---- */

/* The connection of guest port gport, or NULL. */
static struct nat_tcp_conn *find_conn(struct env *e, uint16_t gport)
{
  for (uint32_t i = 0; i < e->p.gw.p.max_tcp_conns; i++)
    if (e->p.gw.tcp[i].used && e->p.gw.tcp[i].state != TCP_S_DEAD &&
        e->p.gw.tcp[i].guest_port == gport)
      return &e->p.gw.tcp[i];
  return NULL;
}

/* A heap with room for the gateway's sweep and one connection: the second
 * SYN cannot get a timer (no connect timeout, RTO or idle timeout would
 * ever end it), so it is refused with RST before any connect, and
 * counted; the first connection keeps working. */
Test(nat_tcp, a_connection_that_cannot_get_its_timer_is_refused)
{
  struct env *e = env_new_timers(2);
  struct conn a;
  conn_open(e, &a, 43001, 100, GUEST_WND);
  struct nat_tcp_conn *ca = find_conn(e, 43001);
  cr_assert(ca);
  cr_assert(timer_armed(&ca->timer), "an open connection without its timer");
  cr_assert_eq(e->p.heap.len, e->p.heap.cap, "the heap should be full now");

  /* a SYN-ACK instead of the RST: connected without a timer */
  expect_syn_refused(e, 43002, 200, "the timerless SYN");
  cr_assert_null(find_conn(e, 43002), "a connection without its timer is in the table");
  cr_assert_eq(e->p.gw.ntcp, 1);
  cr_assert_eq(e->p.gw.ctr.tcp_no_timer, 1);
  cr_assert_geq(e->p.heap.arm_failures, 1);

  /* the first one is untouched: data flows both ways */
  const uint8_t msg[] = "still here";
  conn_data(e, &a, a.gnxt, msg, sizeof(msg));
  uint8_t got[sizeof(msg)];
  host_read(e, a.afd, got, sizeof(got));
  cr_assert_arr_eq(got, msg, sizeof(msg));
  cr_assert(timer_armed(&ca->timer));
  close(a.afd);
  pump_for(e, 50 * NS_PER_MS);
  env_free(e);
}

/* --max-tcp-conns 0: the TCP NAT is off, every SYN is answered with RST
 * and nothing connects. */
Test(nat_tcp, zero_connections_turns_the_tcp_nat_off)
{
  struct env *e = env_new_ex(64, 0);
  cr_assert_null(e->p.gw.tcp);
  expect_syn_refused(e, 43100, 900, "a SYN with the NAT off");
  cr_assert_eq(e->p.gw.ntcp, 0);
  env_free(e);
}

/* ---- 10. egress policy ---- */

Test(nat_tcp, egress_denied_before_nat)
{
  struct env *e = env_new();
  const uint32_t dst = IP4(192, 168, 1, 1);
  guest_seg(e, 42000, dst, 80, 1, 0, TCP_SYN, GUEST_WND, 1460, NULL, 0);
  pump_for(e, 50 * NS_PER_MS);
  cr_assert_eq(e->vm.nframes, 1, "one answer");
  struct net_ipv4 ip;
  parse_frame(e, 0, NULL, &ip);
  cr_assert_eq(ip.proto, IP_PROTO_ICMP);
  cr_assert_eq(ip.src, GW_IP);
  struct net_icmp m;
  cr_assert_eq(net_icmp_parse(&ip, &m), 0);
  cr_assert_eq(m.type, ICMP_UNREACH);
  cr_assert_eq(m.code, ICMP_UNREACH_ADMIN);
  cr_assert_geq(m.len, (size_t)IPV4_HDR + 8);
  cr_assert_eq(m.data[9], IP_PROTO_TCP, "the quoted datagram is the SYN");
  cr_assert_eq(e->p.gw.ctr.denied, 1);
  cr_assert_eq(e->p.gw.ctr.tcp_opened, 0);
  cr_assert_eq(e->p.gw.ctr.tcp_segs_in, 0);
  cr_assert_eq(e->p.gw.ntcp, 0);
  env_free(e);
}
