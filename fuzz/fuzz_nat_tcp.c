/*
 * fuzz_nat_tcp: the TCP NAT's state machine fed arbitrary guest segments,
 * through the real gateway, switch and io_uring, against a listener on
 * 127.0.0.1 in this process (loopback only, testing.md).
 *
 * Input: records of 12 bytes plus payload:
 *   [port 1][flags 1][seq delta 4][ack delta 4][window 2] [len 1][len bytes]
 * The port byte picks one of four guest ports; seq is the guest's running
 * sequence number plus the delta (0 = in order), ack is the last sequence
 * number the gateway sent to that port plus the delta, so segments are
 * near the connection's real state as often as not. After each record the
 * ring is driven once without waiting and the host side accepts, reads and
 * writes without blocking. Between inputs every guest port is reset.
 * Invariants: the connection count never exceeds the table, every frame
 * the gateway sends the guest parses (IPv4 + TCP or ICMP, checksums), and
 * nothing crashes (ASan/UBSan).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wtrelay/gateway.h"
#include "wtrelay/iov.h"

#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))
#define VM_IP IP4(10, 0, 2, 10)
#define NPORTS 4

static const uint8_t GW_MAC[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};
static const uint8_t VM_MAC[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x0a};

struct env {
  struct io io;
  struct timer_heap heap;
  struct switch_table sw;
  struct policy pol;
  struct gateway gw;
  uint64_t now;
  uint32_t vm_port;
  int lfd;
  uint16_t lport;
  int hosts[64];
  uint32_t guest_seq[NPORTS], last_from_gw[NPORTS];
};

static struct env *E;

static int vm_deliver(void *ctx, const struct switch_frame *f)
{
  struct env *e = ctx;
  uint8_t buf[GW_FRAME_MAX];
  struct net_eth eth;
  struct net_ipv4 ip;
  struct net_tcp t;
  struct net_icmp m;
  if (f->len > sizeof(buf))
    abort();
  iov_gather(buf, 0, f->len, f->iov, f->iovcnt);
  if (net_eth_parse(buf, f->len, &eth) < 0 || net_ipv4_parse(eth.payload, eth.len, &ip) < 0)
    abort(); /* the gateway only ever sends well-formed IPv4 to a guest */
  if (ip.proto == IP_PROTO_TCP) {
    if (net_tcp_parse(&ip, &t) < 0)
      abort();
    uint16_t p = t.dport - 40000;
    if (p < NPORTS)
      e->last_from_gw[p] = t.seq + (uint32_t)t.len + ((t.flags & (TCP_SYN | TCP_FIN)) ? 1 : 0);
  } else if (ip.proto == IP_PROTO_ICMP) {
    if (net_icmp_parse(&ip, &m) < 0)
      abort();
  }
  return 0;
}

static const struct switch_port_ops vm_ops = {.deliver = vm_deliver};

static int lease(void *c, uint32_t r, const uint8_t m[6], uint32_t *ip)
{
  (void)c;
  (void)r;
  (void)m;
  *ip = VM_IP;
  return 0;
}
static void release(void *c, uint32_t r, const uint8_t m[6], uint32_t ip)
{
  (void)c;
  (void)r;
  (void)m;
  (void)ip;
}
static const struct gateway_addr_ops addr_ops = {.lease = lease, .release = release};

static void setup(void)
{
  E = calloc(1, sizeof(*E));
  struct io_params iop;
  io_params_default(&iop);
  iop.max_udp_socks = 16;
  iop.rx_bufs = 16;
  if (!E || io_init(&E->io, &iop) < 0 || timer_heap_init(&E->heap, 128) < 0)
    abort();
  struct switch_params sp = {.max_ports = 4,
                             .max_domains = 1,
                             .max_macs = 16,
                             .max_macs_per_domain = 16,
                             .max_macs_per_port = 4,
                             .aging_ns = 300ull * 1000000000ull,
                             .subnet = IP4(10, 0, 2, 0),
                             .netmask = 0xffffff00u};
  memcpy(sp.router_mac, GW_MAC, 6);
  if (switch_init(&E->sw, &sp) < 0)
    abort();
  policy_init(&E->pol);
  policy_add(&E->pol, "127.0.0.0/8", true);
  struct gateway_params gp;
  memset(&gp, 0, sizeof(gp));
  memcpy(gp.mac, GW_MAC, 6);
  gp.subnet = IP4(10, 0, 2, 0);
  gp.netmask = 0xffffff00u;
  gp.ip = IP4(10, 0, 2, 2);
  gp.dns_ip = gp.announce_dns = IP4(10, 0, 2, 3);
  gp.max_rooms = 1;
  gp.max_udp_flows = gp.max_udp_flows_per_vm = 2;
  gp.udp_timeout_ns = gp.icmp_timeout_ns = 1000000000ull;
  gp.max_icmp_flows = 2;
  gp.max_tcp_conns = 8;
  gp.max_tcp_conns_per_vm = 6;
  gp.tcp_idle_ns = 5000000000ull;
  gp.tcp_connect_timeout_ns = 1000000000ull;
  gp.max_dns_inflight = 4;
  gp.policy = &E->pol;
  E->now = clock_now_ns();
  if (gateway_init(&E->gw, &gp, &E->sw, &E->io, &E->heap, &E->now, &addr_ops, NULL) < 0 ||
      gateway_room_attach(&E->gw, 0, 0) < 0 ||
      switch_port_attach(&E->sw, 0, &vm_ops, E, &E->vm_port) < 0)
    abort();
  switch_port_set_addr(&E->sw, E->vm_port, VM_MAC, VM_IP);
  E->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(IP4(127, 0, 0, 1))};
  socklen_t al = sizeof(a);
  if (bind(E->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(E->lfd, 64) < 0 ||
      getsockname(E->lfd, (struct sockaddr *)&a, &al) < 0)
    abort();
  E->lport = ntohs(a.sin_port);
  for (int i = 0; i < 64; i++)
    E->hosts[i] = -1;
}

/* One turn of the ring, and the host side: accept, drain, answer. */
static void turn(void)
{
  E->now = clock_now_ns();
  timer_run(&E->heap, E->now);
  io_flush(&E->io);
  io_wait(&E->io, E->now, E->now);
  io_dispatch(&E->io);
  int fd;
  while ((fd = accept4(E->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
    int k = 0;
    while (k < 64 && E->hosts[k] >= 0)
      k++;
    if (k == 64)
      close(fd);
    else
      E->hosts[k] = fd;
  }
  for (int k = 0; k < 64; k++) {
    if (E->hosts[k] < 0)
      continue;
    char buf[4096];
    ssize_t n = recv(E->hosts[k], buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
      close(E->hosts[k]);
      E->hosts[k] = -1;
    } else if (n > 0) {
      send(E->hosts[k], buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL); /* echo */
    }
  }
}

static void inject(uint16_t port, uint8_t flags, uint32_t seq, uint32_t ack, uint16_t wnd,
                   const uint8_t *data, size_t len)
{
  uint8_t f[GW_FRAME_MAX];
  struct net_l2 l2 = {.dst_mac = GW_MAC, .src_mac = VM_MAC};
  int n = net_build_tcp(f, sizeof(f), &l2, VM_IP, IP4(127, 0, 0, 1), (uint16_t)(40000 + port),
                        E->lport, seq, ack, flags, wnd, (flags & TCP_SYN) ? 1460 : 0, data, len, 1);
  if (n < 0)
    return;
  struct iovec iov = {.iov_base = f, .iov_len = (size_t)n};
  struct switch_frame fr = {.iov = &iov, .iovcnt = 1, .len = (size_t)n};
  switch_input(&E->sw, E->vm_port, &fr, E->now);
}

static uint32_t rd32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!E)
    setup();
  size_t off = 0;
  while (off + 13 <= size) {
    uint8_t port = data[off] % NPORTS, flags = data[off + 1] & 0x3f;
    uint32_t sd = rd32(data + off + 2), ad = rd32(data + off + 6);
    uint16_t wnd = (uint16_t)(data[off + 10] << 8 | data[off + 11]);
    size_t len = data[off + 12];
    off += 13;
    if (len > size - off)
      len = size - off;
    /* deltas: small ones most of the time */
    if (sd & 0x80000000u)
      sd &= 0xff;
    if (ad & 0x80000000u)
      ad &= 0xff;
    uint32_t seq = E->guest_seq[port] + sd;
    inject(port, flags, seq, E->last_from_gw[port] + ad, wnd, data + off, len);
    if (sd == 0)
      E->guest_seq[port] += (uint32_t)len + ((flags & (TCP_SYN | TCP_FIN)) ? 1 : 0);
    off += len;
    turn();
    if (E->gw.ntcp > E->gw.p.max_tcp_conns)
      abort();
  }
  /* leave nothing behind for the next input */
  for (uint16_t p = 0; p < NPORTS; p++) {
    inject(p, TCP_RST, E->guest_seq[p], 0, 0, NULL, 0);
    E->guest_seq[p] += 100000;
  }
  for (int i = 0; i < 3; i++)
    turn();
  return 0;
}
