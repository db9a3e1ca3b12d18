/*
 * steer: the SK_REUSEPORT program on a real reuseport group of four UDP
 * sockets on one loopback port (worker i = socket i), driven with forged
 * QUIC headers from many source ports. Needs CAP_BPF (the unit tier runs
 * as root): a refused load fails the test, it is never skipped.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wtrelay/quic.h"
#include "wtrelay/steer.h"

#define NSOCK 4
#define NSENDERS 48

struct group {
  int fd[NSOCK];
  unsigned int n;
  struct sockaddr_in addr;
};

static uint32_t seq;

/* n UDP sockets with SO_REUSEPORT on one ephemeral port of 127.0.0.1. */
static void group_open(struct group *g, unsigned int n)
{
  memset(g, 0, sizeof(*g));
  g->n = n;
  g->addr.sin_family = AF_INET;
  g->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (unsigned int i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int one = 1;
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&g->addr, sizeof(g->addr)), 0, "bind: %s",
                 strerror(errno));
    if (i == 0) {
      socklen_t len = sizeof(g->addr);
      cr_assert_eq(getsockname(fd, (struct sockaddr *)&g->addr, &len), 0);
    }
    g->fd[i] = fd;
  }
}

static void group_close(struct group *g)
{
  for (unsigned int i = 0; i < g->n; i++)
    close(g->fd[i]);
}

/* A client socket on its own ephemeral source port. */
static int sender_open(void)
{
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  return fd;
}

static uint16_t sender_port(int fd)
{
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  return ntohs(a.sin_port);
}

static void fill_random(uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)rand();
}

/* A 1-RTT packet: DCID (16 bytes) from byte 1, its first byte `worker`. */
static size_t pkt_short(uint8_t *b, uint8_t worker)
{
  size_t len = 64;
  fill_random(b, len);
  b[0] = 0x40 | (b[0] & 0x1f);
  b[1] = worker;
  memcpy(b + 1 + QUIC_SCID_LEN, &seq, sizeof(seq));
  seq++;
  return len;
}

/* A long-header packet of `type` and `version`, DCID of dcidlen bytes
 * starting with dcid0. Initials are padded to 1200 bytes, as clients do. */
static size_t pkt_long(uint8_t *b, unsigned int type, uint32_t version, uint8_t dcidlen,
                       uint8_t dcid0)
{
  size_t len = type == STEER_LONG_INITIAL ? 1200 : 96;
  fill_random(b, len);
  b[0] = (uint8_t)(0xc0 | type << 4 | (b[0] & 0x0f));
  b[1] = (uint8_t)(version >> 24);
  b[2] = (uint8_t)(version >> 16);
  b[3] = (uint8_t)(version >> 8);
  b[4] = (uint8_t)version;
  b[5] = dcidlen;
  b[6] = dcid0;
  b[6 + dcidlen] = 8; /* SCID length */
  memcpy(b + 7 + dcidlen + 8, &seq, sizeof(seq));
  seq++;
  return len;
}

/* Sends pkt from `from` to the group; returns the index of the one socket
 * that received it (each socket is drained, nonblocking). */
static int deliver(const struct group *g, int from, const uint8_t *pkt, size_t len)
{
  ssize_t s = sendto(from, pkt, len, 0, (const struct sockaddr *)&g->addr, sizeof(g->addr));
  cr_assert_eq(s, (ssize_t)len, "sendto: %s", strerror(errno));
  struct pollfd pfd[NSOCK];
  for (unsigned int i = 0; i < g->n; i++)
    pfd[i] = (struct pollfd){.fd = g->fd[i], .events = POLLIN};
  cr_assert_gt(poll(pfd, g->n, 2000), 0, "datagram reached no socket of the group");
  int got = -1;
  for (unsigned int i = 0; i < g->n; i++) {
    uint8_t buf[2048];
    ssize_t m;
    while ((m = recv(g->fd[i], buf, sizeof(buf), MSG_DONTWAIT)) >= 0) {
      if ((size_t)m == len && memcmp(buf, pkt, len) == 0) {
        cr_assert_eq(got, -1, "one datagram delivered twice");
        got = (int)i;
      }
    }
    cr_assert_eq(errno, EAGAIN);
  }
  cr_assert_neq(got, -1, "the datagram that was sent was not among those received");
  return got;
}

static int deliver_short(const struct group *g, int from, uint8_t worker)
{
  uint8_t b[2048];
  return deliver(g, from, b, pkt_short(b, worker));
}

static void senders_open(int *s, int n)
{
  for (int i = 0; i < n; i++)
    s[i] = sender_open();
}

static void senders_close(int *s, int n)
{
  for (int i = 0; i < n; i++)
    close(s[i]);
}

/* How many sockets of the group received short headers for worker 0 from
 * NSENDERS source ports: 1 when steered, more when the kernel hash picks. */
static int spread_of_worker0(const struct group *g)
{
  int s[NSENDERS], hit[NSOCK] = {0}, used = 0;
  senders_open(s, NSENDERS);
  for (int k = 0; k < NSENDERS; k++)
    hit[deliver_short(g, s[k], 0)]++;
  senders_close(s, NSENDERS);
  for (int i = 0; i < NSOCK; i++)
    used += hit[i] > 0;
  return used;
}

/* ---- the choice itself (no kernel) ---- */

Test(steer_pick, short_header_names_the_worker)
{
  uint8_t b[64];
  pkt_short(b, 3);
  cr_assert_eq(steer_pick(b, 2), 3);
  cr_assert_eq(steer_pick(b, sizeof(b)), 3);
  b[1] = 255;
  cr_assert_eq(steer_pick(b, sizeof(b)), 255, "any byte; the caller bounds it");
  cr_assert_eq(steer_pick(b, 1), STEER_ANY, "no DCID byte");
  cr_assert_eq(steer_pick(b, 0), STEER_ANY);
}

Test(steer_pick, handshake_with_a_server_cid)
{
  uint8_t b[128];
  pkt_long(b, STEER_LONG_HANDSHAKE, STEER_QUIC_V1, QUIC_SCID_LEN, 2);
  cr_assert_eq(steer_pick(b, sizeof(b)), 2);
  cr_assert_eq(steer_pick(b, STEER_HDR_LEN), 2);
  cr_assert_eq(steer_pick(b, STEER_HDR_LEN - 1), STEER_ANY, "truncated before DCID[0]");
  pkt_long(b, STEER_LONG_HANDSHAKE, STEER_QUIC_V1, 8, 2);
  cr_assert_eq(steer_pick(b, sizeof(b)), STEER_ANY, "an 8-byte DCID is not one of ours");
  pkt_long(b, STEER_LONG_HANDSHAKE, STEER_QUIC_V1, 0, 0);
  cr_assert_eq(steer_pick(b, sizeof(b)), STEER_ANY);
}

Test(steer_pick, initial_0rtt_retry_and_other_versions_go_to_the_hash)
{
  uint8_t b[1200];
  pkt_long(b, STEER_LONG_INITIAL, STEER_QUIC_V1, QUIC_SCID_LEN, 1);
  cr_assert_eq(steer_pick(b, sizeof(b)), STEER_ANY, "Initial: the client's DCID");
  pkt_long(b, STEER_LONG_0RTT, STEER_QUIC_V1, QUIC_SCID_LEN, 1);
  cr_assert_eq(steer_pick(b, sizeof(b)), STEER_ANY, "0-RTT: may carry the client's DCID");
  pkt_long(b, STEER_LONG_RETRY, STEER_QUIC_V1, QUIC_SCID_LEN, 1);
  cr_assert_eq(steer_pick(b, sizeof(b)), STEER_ANY);
  pkt_long(b, STEER_LONG_HANDSHAKE, 0x6b3343cf, QUIC_SCID_LEN, 1);
  cr_assert_eq(steer_pick(b, sizeof(b)), STEER_ANY, "QUIC v2 is not served");
  pkt_long(b, STEER_LONG_HANDSHAKE, 0, QUIC_SCID_LEN, 1);
  cr_assert_eq(steer_pick(b, sizeof(b)), STEER_ANY, "version negotiation");
}

/* ---- the fallback: no program, the kernel's 4-tuple hash ---- */

Test(steer, env_switch_forces_the_fallback_and_sockets_still_receive)
{
  setenv("WTRELAY_NO_BPF", "1", 1);
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s = (struct steer *)&g; /* must be overwritten */
  cr_assert_eq(steer_attach(g.fd, g.n, &s), -EOPNOTSUPP);
  cr_assert_null(s);
  /* every datagram still reaches one socket, chosen by the kernel's hash
   * of the 4-tuple: a DCID naming worker 0 lands on several sockets */
  cr_assert_gt(spread_of_worker0(&g), 1, "the kernel hash should spread source ports");
  group_close(&g);
}

Test(steer, fallback_without_steering_loses_the_owner_on_migration)
{
  /* What the hand-off of the fallback path is for: a client that changes
   * its source port is hashed to another socket most of the time. */
  setenv("WTRELAY_NO_BPF", "1", 1);
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s;
  cr_assert_eq(steer_attach(g.fd, g.n, &s), -EOPNOTSUPP);
  int prev = sender_open(), first = deliver_short(&g, prev, 2), moved = 0;
  for (int k = 0; k < 16; k++) {
    int next = sender_open(); /* bound while prev is open: a new port */
    cr_assert_neq(sender_port(next), sender_port(prev));
    close(prev);
    prev = next;
    moved += deliver_short(&g, prev, 2) != first;
  }
  close(prev);
  cr_assert_gt(moved, 0, "16 port changes all hashed to one socket");
  group_close(&g);
}

#ifdef WTRELAY_BPF

/* ---- steering with the program ---- */

static int deliver_long(const struct group *g, int from, unsigned int type, uint8_t dcidlen,
                        uint8_t dcid0)
{
  uint8_t b[2048];
  return deliver(g, from, b, pkt_long(b, type, STEER_QUIC_V1, dcidlen, dcid0));
}

static struct steer *attach_or_fail(const struct group *g)
{
  unsetenv("WTRELAY_NO_BPF");
  struct steer *s = NULL;
  int rv = steer_attach(g->fd, g->n, &s);
  if (rv == -EPERM)
    cr_assert_fail("steer_attach: EPERM: loading the SK_REUSEPORT program needs CAP_BPF (or "
                   "CAP_SYS_ADMIN); the unit tier must run as root");
  cr_assert_eq(rv, 0, "steer_attach: %s", strerror(-rv));
  cr_assert_not_null(s);
  return s;
}

static struct steer_stats stats_of(struct steer *s)
{
  struct steer_stats st;
  cr_assert_eq(steer_stats(s, &st), 0);
  return st;
}

Test(steer, short_header_reaches_the_worker_in_its_dcid)
{
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s = attach_or_fail(&g);
  int snd[NSENDERS];
  senders_open(snd, NSENDERS);
  for (int k = 0; k < NSENDERS; k++)
    for (int w = 0; w < NSOCK; w++)
      cr_assert_eq(deliver_short(&g, snd[k], (uint8_t)w), w, "source port %u, worker %d",
                   sender_port(snd[k]), w);
  senders_close(snd, NSENDERS);
  struct steer_stats st = stats_of(s);
  cr_assert_eq(st.n[STEER_STAT_SHORT], NSENDERS * NSOCK);
  cr_assert_eq(st.n[STEER_STAT_HANDSHAKE] + st.n[STEER_STAT_HASH] + st.n[STEER_STAT_NO_SOCKET], 0);
  steer_detach(s);
  group_close(&g);
}

Test(steer, handshake_with_a_server_cid_reaches_its_worker)
{
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s = attach_or_fail(&g);
  int snd[NSENDERS];
  senders_open(snd, NSENDERS);
  for (int k = 0; k < NSENDERS; k++)
    for (int w = 0; w < NSOCK; w++)
      cr_assert_eq(deliver_long(&g, snd[k], STEER_LONG_HANDSHAKE, QUIC_SCID_LEN, (uint8_t)w), w);
  /* a DCID of another length is not ours: hashed, one socket per 4-tuple */
  for (int k = 0; k < NSENDERS; k++) {
    int first = deliver_long(&g, snd[k], STEER_LONG_HANDSHAKE, 8, 0);
    cr_assert_eq(deliver_long(&g, snd[k], STEER_LONG_HANDSHAKE, 8, 3), first);
  }
  senders_close(snd, NSENDERS);
  struct steer_stats st = stats_of(s);
  cr_assert_eq(st.n[STEER_STAT_HANDSHAKE], NSENDERS * NSOCK);
  cr_assert_eq(st.n[STEER_STAT_HASH], NSENDERS * 2);
  steer_detach(s);
  group_close(&g);
}

Test(steer, initials_and_0rtt_follow_the_hash_of_their_4_tuple)
{
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s = attach_or_fail(&g);
  int snd[NSENDERS], hit[NSOCK] = {0}, used = 0;
  senders_open(snd, NSENDERS);
  for (int k = 0; k < NSENDERS; k++) {
    /* the client's random DCID (8 to 20 bytes) says nothing: even one of
     * 16 bytes whose first byte is a worker index is not followed */
    int owner = deliver_long(&g, snd[k], STEER_LONG_INITIAL, 8, 0);
    hit[owner]++;
    for (uint8_t b = 0; b < NSOCK; b++)
      cr_assert_eq(deliver_long(&g, snd[k], STEER_LONG_INITIAL, QUIC_SCID_LEN, b), owner);
    cr_assert_eq(deliver_long(&g, snd[k], STEER_LONG_INITIAL, 20, 1), owner);
    /* 0-RTT sent with the Initial carries the client's DCID too */
    cr_assert_eq(deliver_long(&g, snd[k], STEER_LONG_0RTT, QUIC_SCID_LEN, (owner + 1) % NSOCK),
                 owner, "0-RTT must reach the socket that took the Initial");
    /* and once the owner has answered, its CID takes the client there */
    cr_assert_eq(deliver_long(&g, snd[k], STEER_LONG_HANDSHAKE, QUIC_SCID_LEN, (uint8_t)owner),
                 owner);
    cr_assert_eq(deliver_short(&g, snd[k], (uint8_t)owner), owner);
  }
  senders_close(snd, NSENDERS);
  for (int i = 0; i < NSOCK; i++)
    used += hit[i] > 0;
  cr_assert_gt(used, 1, "Initials from %d source ports all hashed to one socket", NSENDERS);
  struct steer_stats st = stats_of(s);
  cr_assert_eq(st.n[STEER_STAT_HASH], NSENDERS * (2 + NSOCK + 1));
  cr_assert_eq(st.n[STEER_STAT_HANDSHAKE], NSENDERS);
  cr_assert_eq(st.n[STEER_STAT_SHORT], NSENDERS);
  steer_detach(s);
  group_close(&g);
}

Test(steer, a_worker_without_a_socket_falls_back_to_the_hash)
{
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s = attach_or_fail(&g);
  int snd[NSENDERS];
  senders_open(snd, NSENDERS);
  for (int k = 0; k < NSENDERS; k++) {
    int first = deliver_short(&g, snd[k], 7); /* delivered at all: no drop */
    cr_assert_eq(deliver_short(&g, snd[k], 255), first, "the same 4-tuple, the same hash");
    cr_assert_eq(deliver_long(&g, snd[k], STEER_LONG_HANDSHAKE, QUIC_SCID_LEN, 4), first);
  }
  senders_close(snd, NSENDERS);
  struct steer_stats st = stats_of(s);
  cr_assert_eq(st.n[STEER_STAT_NO_SOCKET], NSENDERS * 3);
  cr_assert_eq(st.n[STEER_STAT_SHORT] + st.n[STEER_STAT_HANDSHAKE], 0);
  steer_detach(s);
  group_close(&g);
}

Test(steer, migration_keeps_reaching_the_owner)
{
  /* A client whose source port changes mid-connection (NAT rebinding, a
   * new path) keeps its DCID, so it keeps reaching its worker. */
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s = attach_or_fail(&g);
  for (int w = 0; w < NSOCK; w++) {
    int prev = sender_open();
    cr_assert_eq(deliver_short(&g, prev, (uint8_t)w), w);
    for (int k = 0; k < 16; k++) {
      int next = sender_open();
      cr_assert_neq(sender_port(next), sender_port(prev));
      close(prev);
      prev = next;
      cr_assert_eq(deliver_short(&g, prev, (uint8_t)w), w, "worker %d after move %d to port %u", w,
                   k, sender_port(prev));
    }
    close(prev);
  }
  steer_detach(s);
  group_close(&g);
}

Test(steer, a_closed_worker_socket_leaves_its_slot)
{
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s = attach_or_fail(&g);
  close(g.fd[3]);
  g.n = 3; /* the group is sockets 0..2 now */
  int snd[NSENDERS];
  senders_open(snd, NSENDERS);
  for (int k = 0; k < NSENDERS; k++) {
    cr_assert_eq(deliver_short(&g, snd[k], 1), 1);
    cr_assert_lt(deliver_short(&g, snd[k], 3), 3, "delivered to a live socket");
  }
  senders_close(snd, NSENDERS);
  cr_assert_eq(stats_of(s).n[STEER_STAT_NO_SOCKET], NSENDERS);
  steer_detach(s);
  group_close(&g);
}

Test(steer, detach_gives_the_group_back_to_the_hash)
{
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s = attach_or_fail(&g);
  cr_assert_eq(spread_of_worker0(&g), 1, "steered: worker 0 only");
  steer_detach(s);
  cr_assert_gt(spread_of_worker0(&g), 1, "detached: the kernel hash again");
  /* and attaching again works */
  s = attach_or_fail(&g);
  cr_assert_eq(spread_of_worker0(&g), 1);
  steer_detach(s);
  steer_detach(NULL);
  group_close(&g);
}

Test(steer, env_switch_set_to_0_does_not_disable)
{
  struct group g;
  group_open(&g, NSOCK);
  setenv("WTRELAY_NO_BPF", "0", 1);
  struct steer *s = NULL;
  cr_assert_eq(steer_attach(g.fd, g.n, &s), 0);
  cr_assert_eq(spread_of_worker0(&g), 1);
  steer_detach(s);
  group_close(&g);
}

Test(steer, bad_arguments)
{
  unsetenv("WTRELAY_NO_BPF");
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s;
  cr_assert_eq(steer_attach(g.fd, 0, &s), -EINVAL);
  cr_assert_eq(steer_attach(g.fd, STEER_MAX_WORKERS + 1, &s), -EINVAL);
  cr_assert_eq(steer_attach(NULL, 1, &s), -EINVAL);
  /* a socket without SO_REUSEPORT cannot join the array */
  int lone = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(lone, (struct sockaddr *)&a, sizeof(a)), 0);
  int fds[2] = {g.fd[0], lone};
  int rv = steer_attach(fds, 2, &s);
  cr_assert_lt(rv, 0);
  cr_assert_neq(rv, -EPERM, "needs CAP_BPF: run as root");
  cr_assert_null(s);
  /* not a socket */
  int bad[1] = {STDIN_FILENO};
  cr_assert_lt(steer_attach(bad, 1, &s), 0);
  close(lone);
  /* nothing was left attached: worker 0's DCIDs are hashed */
  cr_assert_gt(spread_of_worker0(&g), 1);
  group_close(&g);
}

/* ---- what the kernel requires ---- */

static void drop_caps(const int *caps, int n)
{
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
  struct __user_cap_data_struct d[2];
  cr_assert_eq(syscall(SYS_capget, &h, d), 0);
  for (int i = 0; i < n; i++) {
    uint32_t bit = 1u << (caps[i] % 32);
    d[caps[i] / 32].effective &= ~bit;
    d[caps[i] / 32].permitted &= ~bit;
    d[caps[i] / 32].inheritable &= ~bit;
  }
  cr_assert_eq(syscall(SYS_capset, &h, d), 0, "capset: %s", strerror(errno));
}

Test(steer, cap_bpf_alone_is_enough)
{
  /* Every capability but CAP_BPF dropped: loading needs CAP_BPF; filling
   * the array and SO_ATTACH_REUSEPORT_EBPF need no capability at all (not
   * CAP_NET_ADMIN, not CAP_SYS_ADMIN). */
  int caps[CAP_LAST_CAP + 1], n = 0;
  for (int c = 0; c <= CAP_LAST_CAP; c++)
    if (c != CAP_BPF)
      caps[n++] = c;
  drop_caps(caps, n);
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s = attach_or_fail(&g);
  cr_assert_eq(spread_of_worker0(&g), 1);
  int snd = sender_open();
  for (int w = 0; w < NSOCK; w++)
    cr_assert_eq(deliver_short(&g, snd, (uint8_t)w), w);
  close(snd);
  steer_detach(s);
  group_close(&g);
}

Test(steer, without_cap_bpf_attach_says_eperm_and_leaves_the_hash)
{
  const int caps[] = {CAP_BPF, CAP_SYS_ADMIN};
  drop_caps(caps, 2);
  unsetenv("WTRELAY_NO_BPF");
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s = (struct steer *)&g;
  cr_assert_eq(steer_attach(g.fd, g.n, &s), -EPERM);
  cr_assert_null(s);
  cr_assert_gt(spread_of_worker0(&g), 1);
  group_close(&g);
}

#else /* built with -DBPF=OFF */

Test(steer, built_without_bpf_says_eopnotsupp)
{
  unsetenv("WTRELAY_NO_BPF");
  struct group g;
  group_open(&g, NSOCK);
  struct steer *s = (struct steer *)&g;
  cr_assert_eq(steer_attach(g.fd, g.n, &s), -EOPNOTSUPP);
  cr_assert_null(s);
  struct steer_stats st;
  cr_assert_eq(steer_stats(NULL, &st), -EOPNOTSUPP);
  steer_detach(NULL);
  cr_assert_gt(spread_of_worker0(&g), 1);
  group_close(&g);
}

#endif
