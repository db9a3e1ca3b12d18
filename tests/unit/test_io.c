#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/udp.h>
#include <string.h>
#include <unistd.h>

#include "wtrelay/io.h"
#include "wtrelay/timer.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

struct rx {
  unsigned n;
  size_t sizes[256];
  uint8_t first[256];
};

static void on_rx(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                  const union io_sockaddr *peer, socklen_t peerlen, const struct io_local *l)
{
  struct rx *r = ctx;
  if (r->n < 256) {
    r->sizes[r->n] = len;
    r->first[r->n] = pkt[0];
  }
  r->n++;
}

static void pump(struct io *io, struct rx *r, unsigned want)
{
  uint64_t end = clock_now_ns() + 2000000000ull;
  while (r->n < want && clock_now_ns() < end) {
    io_flush(io);
    io_wait(io, clock_now_ns() + 50000000ull, clock_now_ns());
    io_dispatch(io);
  }
}

Test(io, datagrams_and_gso_superpacket_are_received)
{
  struct io io;
  struct io_params p;
  io_params_default(&p);
  p.rx_bufs = 8;
  cr_assert_eq(io_init(&io, &p), 0);
  struct rx r = {0};
  struct io_udp_sock *s;
  cr_assert_eq(io_udp_open(&io, "127.0.0.1", 0, on_rx, &r, &s), 0);
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(s->port)};
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  for (int i = 0; i < 3; i++) {
    uint8_t b[100];
    memset(b, i + 1, sizeof(b));
    cr_assert_eq(sendto(fd, b, 50 + (size_t)i, 0, (struct sockaddr *)&dst, sizeof(dst)), 50 + i);
  }
  pump(&io, &r, 3);
  cr_assert_eq(r.n, 3);
  cr_assert_eq(r.sizes[2], 52);
  cr_assert_eq(r.first[1], 2);

  /* A GSO super-packet of 10 x 1200 bytes arrives as 10 datagrams. */
  uint8_t big[12000];
  for (int i = 0; i < 10; i++)
    memset(big + i * 1200, 0x10 + i, 1200);
  struct iovec iov = {.iov_base = big, .iov_len = sizeof(big)};
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctl;
  struct msghdr mh = {.msg_name = &dst,
                      .msg_namelen = sizeof(dst),
                      .msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = ctl.buf,
                      .msg_controllen = sizeof(ctl.buf)};
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  uint16_t seg = 1200;
  memcpy(CMSG_DATA(c), &seg, sizeof(seg));
  cr_assert_eq(sendmsg(fd, &mh, 0), (ssize_t)sizeof(big));
  pump(&io, &r, 13);
  cr_assert_eq(r.n, 13);
  for (int i = 0; i < 10; i++) {
    cr_assert_eq(r.sizes[3 + i], 1200);
    cr_assert_eq(r.first[3 + i], 0x10 + i);
  }
  cr_assert_eq(io.ctr.rx_datagrams, 13);
  /* The receive path is built on UDP_GRO (Linux >= 5.0): a kernel without
   * it fails here by name, it does not pass by skipping the check. */
  cr_assert(s->gro, "setsockopt(UDP_GRO) failed: this kernel lacks UDP GRO (Linux 5.0 or later "
                    "is required)");
  cr_assert_geq(io.ctr.rx_gro_batches, 1, "the GSO super-packet did not arrive as a GRO batch");
  close(fd);
  io_fini(&io);
}

/* An io with a receiving and a sending socket on loopback. */
struct txenv {
  struct io io;
  struct rx r;
  struct io_udp_sock *rxs, *txs;
  union io_sockaddr dst;
  socklen_t dl;
};

static void txenv_init(struct txenv *t)
{
  struct io_params p;
  io_params_default(&p);
  memset(t, 0, sizeof(*t));
  cr_assert_eq(io_init(&t->io, &p), 0);
  cr_assert_eq(io_udp_open(&t->io, "127.0.0.1", 0, on_rx, &t->r, &t->rxs), 0);
  cr_assert_eq(io_udp_open(&t->io, "127.0.0.1", 0, NULL, NULL, &t->txs), 0);
  cr_assert_eq(io_sockaddr_parse("127.0.0.1", t->rxs->port, &t->dst, &t->dl), 0);
}

Test(io, tx_batches_equal_packets_with_gso)
{
  static struct txenv t;
  txenv_init(&t);
  for (int i = 0; i < 20; i++) {
    uint8_t *b = io_tx_reserve(&t.io, 1500);
    cr_assert(b);
    memset(b, i, 1000);
    io_tx_commit(&t.io, 1000, t.txs, &t.dst, t.dl, NULL);
  }
  uint8_t *b = io_tx_reserve(&t.io, 1500);
  memset(b, 0x77, 300);
  io_tx_commit(&t.io, 300, t.txs, &t.dst, t.dl, NULL);
  pump(&t.io, &t.r, 21);
  cr_assert_eq(t.r.n, 21);
  cr_assert_eq(t.r.sizes[20], 300);
  cr_assert_eq(t.r.first[7], 7);
  cr_assert_eq(t.io.ctr.tx_packets, 21);
  cr_assert_lt(t.io.ctr.tx_msgs, t.io.ctr.tx_packets, "GSO grouped packets: %llu msgs",
               (unsigned long long)t.io.ctr.tx_msgs);
  io_fini(&t.io);
}

/* A lone larger packet (a path MTU probe) is sent alone: [1406, 1200] are
 * two sendmsg, so a probe too big for the path (EMSGSIZE on an MTU 1280
 * link) loses nothing else with it; [1200, 1200, 1000] stays one GSO
 * train. */
Test(io, a_lone_larger_packet_is_sent_alone)
{
  static struct txenv t;
  txenv_init(&t);
  const size_t sizes[] = {1406, 1200};
  for (int i = 0; i < 2; i++) {
    uint8_t *b = io_tx_reserve(&t.io, 1500);
    cr_assert(b);
    memset(b, 0x30 + i, sizes[i]);
    io_tx_commit(&t.io, sizes[i], t.txs, &t.dst, t.dl, NULL);
  }
  cr_assert_eq(io_flush(&t.io), 2, "the probe-sized packet took the next one into its sendmsg");
  pump(&t.io, &t.r, 2);
  cr_assert_eq(t.r.n, 2);
  const size_t train[] = {1200, 1200, 1000};
  for (int i = 0; i < 3; i++) {
    uint8_t *b = io_tx_reserve(&t.io, 1500);
    memset(b, 0x40 + i, train[i]);
    io_tx_commit(&t.io, train[i], t.txs, &t.dst, t.dl, NULL);
  }
  cr_assert_eq(io_flush(&t.io), 1, "equal packets and a shorter last one: one train");
  pump(&t.io, &t.r, 5);
  cr_assert_eq(t.r.n, 5);
  cr_assert_eq(t.r.sizes[4], 1000);
  io_fini(&t.io);
}

/* One train of n packets of size len from s to t's receiver, flushed. */
static unsigned train(struct txenv *t, struct io_udp_sock *s, int n, size_t len, uint8_t mark)
{
  for (int i = 0; i < n; i++) {
    uint8_t *b = io_tx_reserve(&t->io, 1500);
    cr_assert(b);
    memset(b, mark, len);
    io_tx_commit(&t->io, len, s, &t->dst, t->dl, NULL);
  }
  return io_flush(&t->io);
}

/* A GSO send that fails (here: SO_NO_CHECK, which the kernel refuses for
 * UDP_SEGMENT with EINVAL, as it does for a segment above a lowered path
 * MTU) turns GSO off for that socket only, counted; the other socket keeps
 * its trains, and the failing one still delivers packet by packet. */
Test(io, a_failed_gso_send_turns_gso_off_for_that_socket_only)
{
  static struct txenv t;
  txenv_init(&t);
  struct io_udp_sock *bad;
  cr_assert_eq(io_udp_open(&t.io, "127.0.0.1", 0, NULL, NULL, &bad), 0);
  int one = 1;
  cr_assert_eq(setsockopt(bad->fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof(one)), 0);
  cr_assert_eq(train(&t, bad, 4, 1000, 0x51), 1, "four equal packets: one GSO sendmsg");
  for (int i = 0; i < 20 && t.io.ctr.tx_errors == 0; i++) {
    io_wait(&t.io, clock_now_ns() + 50000000ull, clock_now_ns());
    io_dispatch(&t.io);
  }
  cr_assert_eq(t.io.ctr.tx_errors, 1, "the GSO send on the SO_NO_CHECK socket did not fail");
  cr_assert_eq(t.io.ctr.tx_gso_fallbacks, 1);
  cr_assert(bad->no_gso);
  cr_assert_not(t.txs->no_gso, "the failure turned GSO off for another socket");
  cr_assert_eq(train(&t, t.txs, 4, 1000, 0x52), 1, "the other socket lost its GSO trains");
  cr_assert_eq(train(&t, bad, 4, 1000, 0x53), 4, "the failing socket still groups packets");
  pump(&t.io, &t.r, 8);
  cr_assert_eq(t.r.n, 8, "packets after the fallback: %u of 8 arrived", t.r.n);
  cr_assert_eq(t.io.ctr.tx_errors, 1);
  cr_assert_eq(t.io.ctr.tx_gso_fallbacks, 1);
  io_fini(&t.io);
}

/* NAT sockets (io_udp_open_ex without .gso) send one datagram per
 * sendmsg. */
Test(io, sockets_without_gso_send_packet_by_packet)
{
  static struct txenv t;
  txenv_init(&t);
  struct io_udp_opts o = {.bind_addr = "127.0.0.1"};
  struct io_udp_sock *nat;
  cr_assert_eq(io_udp_open_ex(&t.io, &o, NULL, NULL, &nat), 0);
  cr_assert(nat->no_gso);
  cr_assert_eq(train(&t, nat, 3, 800, 0x61), 3);
  pump(&t.io, &t.r, 3);
  cr_assert_eq(t.r.n, 3);
  cr_assert_eq(t.io.ctr.tx_gso_msgs, 0);
  io_fini(&t.io);
}

/* Per-client shares key a client by its IPv4 address (also IPv4-mapped, as
 * a dual-stack socket reports it) or by its IPv6 /64. */
Test(io, client_key_is_the_ipv4_address_or_the_ipv6_slash_64)
{
  union io_sockaddr a, b;
  socklen_t l;
  cr_assert_eq(io_sockaddr_parse("192.0.2.7", 1, &a, &l), 0);
  cr_assert_eq(io_sockaddr_parse("::ffff:192.0.2.7", 2, &b, &l), 0);
  cr_assert_neq(io_sockaddr_client_key(&a), 0);
  cr_assert_eq(io_sockaddr_client_key(&a), io_sockaddr_client_key(&b));
  cr_assert_eq(io_sockaddr_parse("192.0.2.8", 1, &b, &l), 0);
  cr_assert_neq(io_sockaddr_client_key(&a), io_sockaddr_client_key(&b));
  cr_assert_eq(io_sockaddr_parse("2001:db8:1:2::1", 1, &a, &l), 0);
  cr_assert_eq(io_sockaddr_parse("2001:db8:1:2:ffff::9", 1, &b, &l), 0);
  cr_assert_eq(io_sockaddr_client_key(&a), io_sockaddr_client_key(&b));
  cr_assert_eq(io_sockaddr_parse("2001:db8:1:3::1", 1, &b, &l), 0);
  cr_assert_neq(io_sockaddr_client_key(&a), io_sockaddr_client_key(&b));
}

/* The port claim of several workers is the address's: a second claim of
 * the same address and port is refused, another address of the host shares
 * the port number, and the probe refuses an address overlapping a socket
 * already bound (the wildcard over a specific address, or the reverse),
 * even one with SO_REUSEPORT as the workers' sockets are. */
Test(io, port_claim_is_per_address_and_probes_overlaps)
{
  /* a free port on 127.0.0.1, held by a SO_REUSEPORT socket like a worker's */
  int w = socket(AF_INET, SOCK_DGRAM, 0);
  cr_assert_geq(w, 0);
  int one = 1;
  cr_assert_eq(setsockopt(w, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(w, (struct sockaddr *)&a, sizeof(a)), 0);
  socklen_t alen = sizeof(a);
  cr_assert_eq(getsockname(w, (struct sockaddr *)&a, &alen), 0);
  uint16_t port = ntohs(a.sin_port);

  int c1 = io_udp_port_claim("127.0.0.1", port, false);
  cr_assert_geq(c1, 0, "claim: %d", c1);
  cr_assert_eq(io_udp_port_claim("127.0.0.1", port, false), -EADDRINUSE);
  int c2 = io_udp_port_claim("127.0.0.2", port, true);
  cr_assert_geq(c2, 0, "another address of the host: %d", c2);
  cr_assert_eq(io_udp_port_claim("0.0.0.0", port, true), -EADDRINUSE, "wildcard over 127.0.0.1");
  cr_assert_eq(io_udp_port_claim("127.0.0.1", port, true), -EADDRINUSE, "probe of a bound address");
  close(c2);
  close(c1);
  close(w);

  /* a wildcard socket: a specific address on its port is refused */
  w = socket(AF_INET, SOCK_DGRAM, 0);
  cr_assert_eq(setsockopt(w, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
  struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons(port)};
  cr_assert_eq(bind(w, (struct sockaddr *)&any, sizeof(any)), 0);
  cr_assert_eq(io_udp_port_claim("127.0.0.2", port, true), -EADDRINUSE, "127.0.0.2 under 0.0.0.0");
  close(w);
  c1 = io_udp_port_claim("127.0.0.2", port, true);
  cr_assert_geq(c1, 0, "once the wildcard socket is gone: %d", c1);
  close(c1);
}

static void no_frame(void *ctx, struct io_pktfd *d, const uint8_t *pkt, size_t len)
{
  (void)ctx;
  (void)d;
  (void)pkt;
  (void)len;
}

/* Frames written to a packet device go to the ring when the turn's UDP
 * sends do (io_flush or io_wait), after them and in the order written; the
 * write slots come back when the writes complete. */
Test(io, packet_device_writes_wait_for_the_flush_and_keep_their_order)
{
  static struct txenv t;
  txenv_init(&t);
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  struct io_pktfd *d;
  cr_assert_eq(io_pktfd_open(&t.io, sv[0], 1, 4, 256, no_frame, NULL, &d), 0);
  unsigned ready = io_uring_sq_ready(&t.io.ring);
  for (uint8_t i = 0; i < 3; i++) {
    uint8_t f[60];
    memset(f, 0x10 + i, sizeof(f));
    struct iovec iov = {.iov_base = f, .iov_len = 40u + i};
    cr_assert_eq(io_pktfd_write(&t.io, d, &iov, 1), 0);
  }
  uint8_t *b = io_tx_reserve(&t.io, 1500);
  memset(b, 0x55, 100);
  io_tx_commit(&t.io, 100, t.txs, &t.dst, t.dl, NULL);
  cr_assert_eq(io_uring_sq_ready(&t.io.ring), ready, "a write reached the ring before the flush");
  uint8_t got[256];
  cr_assert_lt(recv(sv[1], got, sizeof(got), MSG_DONTWAIT), 0, "a frame went out before the flush");
  io_flush(&t.io);
  /* the submission queue's last four entries: the UDP send, then the writes */
  unsigned tail = t.io.ring.sq.sqe_tail, mask = t.io.ring.sq.ring_mask;
  cr_assert_eq(io_uring_sq_ready(&t.io.ring), ready + 4);
  cr_assert_eq(t.io.ring.sq.sqes[(tail - 4) & mask].opcode, IORING_OP_SENDMSG);
  for (unsigned k = 1; k <= 3; k++)
    cr_assert_eq(t.io.ring.sq.sqes[(tail - k) & mask].opcode, IORING_OP_WRITE);
  pump(&t.io, &t.r, 1);
  cr_assert_eq(t.r.n, 1);
  for (uint8_t i = 0; i < 3; i++) {
    ssize_t n = recv(sv[1], got, sizeof(got), MSG_DONTWAIT);
    cr_assert_eq(n, 40 + i, "frame %u: %zd bytes", i, n);
    cr_assert_eq(got[0], 0x10 + i, "frame %u out of order", i);
  }
  uint64_t end = clock_now_ns() + 2000000000ull;
  while (d->nwfree < 4 && clock_now_ns() < end) {
    io_wait(&t.io, clock_now_ns() + 10000000ull, clock_now_ns());
    io_dispatch(&t.io);
  }
  cr_assert_eq(d->nwfree, 4, "write slots not returned");
  cr_assert_eq(d->ctr.tx_pkts, 3);
  io_fini(&t.io);
  close(sv[0]);
  close(sv[1]);
}
