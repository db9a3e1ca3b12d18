/*
 * limitprobe: what this machine allows a relay that opens, seals and
 * forwards every datagram, measured with nothing else in the way.
 *
 *   limitprobe [--size BYTES] [--batch N] [--duration S] [--json-only]
 *
 * Three figures, each CPU time per datagram (so they hold when other
 * programs share the cores):
 *
 * aead  One AES-128-GCM seal and one open of a SIZE-byte payload (default
 *       1200) through GnuTLS's gnutls_aead_cipher_encrypt/decrypt, the calls
 *       ngtcp2's GnuTLS backend makes for a QUIC packet, with a fixed key, a
 *       nonce that changes per packet and a 24-byte associated header. Not
 *       included: QUIC header protection (one more AES block each way),
 *       key updates.
 * fwd   One datagram received and sent on by a bare io_uring loop on
 *       loopback (the forwarder thread): recvmsg with UDP_GRO, sendmsg with
 *       UDP_SEGMENT of the same buffer to a sink socket, no copy, no
 *       parsing, no timers. A second thread feeds it SIZE-byte datagrams in
 *       GSO batches of N (default 16, about the batches the relay sees at
 *       its maximum rate; on loopback a GSO send reaches a UDP_GRO socket
 *       as one batch) and drains the sink. The figure is the CPU time of
 *       every thread of this process but the feeder and the main thread
 *       (the forwarder and any io_uring worker) per datagram forwarded; on
 *       loopback the kernel's delivery into the sink's socket runs in the
 *       sender's context, so it counts, as it does for the relay.
 * limit 1e9 / (aead_ns + fwd_ns): datagrams per second and core of a relay
 *       that must open, seal and forward each datagram once; a unicast
 *       frame is received once and sent once, so this is the frames/s per
 *       core a relay could reach if QUIC, HTTP/3 and switching cost nothing.
 *
 * Prints a few lines for people, then one JSON line (the last line).
 * Not part of make test; perf/bench-switch.sh and perf/bench-tcp-nat.sh run
 * it before their measurements.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 1472 /* one datagram in a 1500-byte IPv4 packet */
#define MAX_BATCH 64  /* the kernel's UDP_MAX_SEGMENTS */
#define FWD_BUFS 32   /* receives in flight in the forwarder */
#define FWD_BUF_LEN 65536
#define AAD_LEN 24
#define TAG_LEN 16
#define ROUNDS 5 /* AEAD rounds and forwarder sampling intervals */

struct opts {
  size_t size;
  unsigned batch;
  double duration;
  bool json_only;
};

static double now_s(clockid_t c)
{
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
  qsort(v, n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* --- aead ---------------------------------------------------------------- */

/* Median over ROUNDS rounds of about 0.1 s each of the thread CPU time of
 * one seal + one open. Returns ns, or a negative errno. */
static double aead_probe(size_t size)
{
  static const uint8_t keybytes[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                                       0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
  gnutls_datum_t key = {.data = (unsigned char *)keybytes, .size = sizeof(keybytes)};
  gnutls_aead_cipher_hd_t h;
  if (gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_128_GCM, &key) < 0)
    return -ENOTSUP;
  uint8_t pt[MAX_SIZE], out[MAX_SIZE], ct[MAX_SIZE + TAG_LEN], aad[AAD_LEN], nonce[12] = {0};
  for (size_t i = 0; i < size; i++)
    pt[i] = (uint8_t)(i * 7);
  for (size_t i = 0; i < AAD_LEN; i++)
    aad[i] = (uint8_t)(0x40 + i);
  double ns[ROUNDS];
  uint64_t pn = 0;
  for (int r = 0; r < ROUNDS; r++) {
    uint64_t n = 0;
    double c0 = now_s(CLOCK_THREAD_CPUTIME_ID), t0 = now_s(CLOCK_MONOTONIC);
    while (now_s(CLOCK_MONOTONIC) - t0 < 0.1) {
      for (int k = 0; k < 256; k++, n++, pn++) {
        memcpy(nonce + 4, &pn, sizeof(pn)); /* iv XOR pn, in effect */
        size_t clen = sizeof(ct), plen = sizeof(out);
        if (gnutls_aead_cipher_encrypt(h, nonce, sizeof(nonce), aad, AAD_LEN, TAG_LEN, pt, size, ct,
                                       &clen) < 0 ||
            gnutls_aead_cipher_decrypt(h, nonce, sizeof(nonce), aad, AAD_LEN, TAG_LEN, ct, clen,
                                       out, &plen) < 0 ||
            plen != size) {
          gnutls_aead_cipher_deinit(h);
          return -EBADMSG;
        }
      }
    }
    ns[r] = (now_s(CLOCK_THREAD_CPUTIME_ID) - c0) * 1e9 / (double)n;
  }
  bool same = memcmp(out, pt, size) == 0;
  gnutls_aead_cipher_deinit(h);
  return same ? median(ns, ROUNDS) : -EBADMSG;
}

/* --- fwd ----------------------------------------------------------------- */

struct fwd {
  int in_fd;   /* the forwarder's socket (UDP_GRO) */
  int feed_fd; /* the feeder's socket, connected to in_fd */
  int sink_fd; /* where the forwarder sends (UDP_GRO, drained by the feeder) */
  struct sockaddr_in sink_addr;
  size_t size;
  unsigned batch;
  int setup_err; /* set by the forwarder before it starts */
  pid_t fwd_tid; /* the forwarder thread, for its schedstat */
  atomic_bool started;
  atomic_bool stop;
  atomic_uint_fast64_t forwarded; /* datagrams sent on (completed sends) */
  atomic_uint_fast64_t recvs;     /* receive completions with data */
  atomic_uint_fast64_t fed;       /* datagrams the feeder sent */
  atomic_uint_fast64_t sunk;      /* datagrams the sink received */
};

struct fwd_slot {
  uint8_t *buf;
  struct msghdr mh;
  struct iovec iov;
  int seg; /* segment size of the batch being sent */
  union {
    struct cmsghdr align;
    uint8_t b[CMSG_SPACE(sizeof(int)) * 2];
  } ctl;
};

enum { OP_RECV = 0, OP_SEND = 1 };

static int udp_socket(struct sockaddr_in *addr, bool gro)
{
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  int one = 1, rcvbuf = 8 << 20;
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0 ||
      (gro && setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) < 0)) {
    int e = -errno;
    close(fd);
    return e;
  }
  /* as root the larger buffer, else what rmem_max allows */
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (addr)
    *addr = a;
  return fd;
}

static bool fwd_arm_recv(struct io_uring *ring, struct fwd_slot *s, unsigned i)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
  if (!sqe)
    return false;
  s->iov = (struct iovec){.iov_base = s->buf, .iov_len = FWD_BUF_LEN};
  s->mh = (struct msghdr){.msg_iov = &s->iov,
                          .msg_iovlen = 1,
                          .msg_control = s->ctl.b,
                          .msg_controllen = sizeof(s->ctl.b)};
  io_uring_prep_recvmsg(sqe, 0, &s->mh, 0);
  sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sqe, (uint64_t)i << 1 | OP_RECV);
  return true;
}

/* The received batch goes out as it came: same buffer, same segment size. */
static bool fwd_arm_send(struct io_uring *ring, struct fwd *f, struct fwd_slot *s, unsigned i,
                         int len)
{
  int seg = len;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&s->mh); c; c = CMSG_NXTHDR(&s->mh, c))
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO)
      memcpy(&seg, CMSG_DATA(c), sizeof(seg));
  struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
  if (!sqe || seg <= 0)
    return false;
  s->seg = seg;
  s->iov.iov_len = (size_t)len;
  s->mh = (struct msghdr){.msg_name = &f->sink_addr,
                          .msg_namelen = sizeof(f->sink_addr),
                          .msg_iov = &s->iov,
                          .msg_iovlen = 1};
  if (seg < len) {
    s->mh.msg_control = s->ctl.b;
    s->mh.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
    struct cmsghdr *c = CMSG_FIRSTHDR(&s->mh);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t gso = (uint16_t)seg;
    memcpy(CMSG_DATA(c), &gso, sizeof(gso));
  }
  io_uring_prep_sendmsg(sqe, 0, &s->mh, 0);
  sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sqe, (uint64_t)i << 1 | OP_SEND);
  return true;
}

static int fwd_ring_init(struct io_uring *ring, int fd)
{
  struct io_uring_params p = {0};
  p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(4 * FWD_BUFS, ring, &p);
  if (rc == -EINVAL) { /* kernels before 6.1 */
    memset(&p, 0, sizeof(p));
    rc = io_uring_queue_init_params(4 * FWD_BUFS, ring, &p);
  }
  if (rc < 0)
    return rc;
  rc = io_uring_register_files(ring, &fd, 1);
  if (rc < 0)
    io_uring_queue_exit(ring);
  return rc;
}

static void *fwd_main(void *arg)
{
  struct fwd *f = arg;
  struct io_uring ring;
  struct fwd_slot *slots = calloc(FWD_BUFS, sizeof(*slots));
  uint8_t *mem = malloc((size_t)FWD_BUFS * FWD_BUF_LEN);
  int rc = slots && mem ? fwd_ring_init(&ring, f->in_fd) : -ENOMEM;
  if (rc < 0) {
    f->setup_err = rc;
    atomic_store(&f->started, true);
    free(slots);
    free(mem);
    return NULL;
  }
  for (unsigned i = 0; i < FWD_BUFS; i++) {
    slots[i].buf = mem + (size_t)i * FWD_BUF_LEN;
    fwd_arm_recv(&ring, &slots[i], i);
  }
  f->fwd_tid = gettid();
  atomic_store(&f->started, true);
  struct __kernel_timespec ts = {.tv_nsec = 50 * 1000 * 1000};
  uint64_t fwd = 0, recvs = 0;
  while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
    struct io_uring_cqe *cqe;
    rc = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
    if (rc < 0 && rc != -ETIME && rc != -EINTR)
      break;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe)
    {
      seen++;
      unsigned i = (unsigned)(cqe->user_data >> 1);
      struct fwd_slot *s = &slots[i];
      if ((cqe->user_data & 1) == OP_RECV) {
        if (cqe->res > 0 && fwd_arm_send(&ring, f, s, i, cqe->res)) {
          recvs++;
          continue;
        }
        fwd_arm_recv(&ring, s, i);
      } else {
        if (cqe->res > 0) {
          fwd += (uint64_t)((cqe->res + s->seg - 1) / s->seg);
        }
        fwd_arm_recv(&ring, s, i);
      }
    }
    io_uring_cq_advance(&ring, seen);
    atomic_store_explicit(&f->forwarded, fwd, memory_order_relaxed);
    atomic_store_explicit(&f->recvs, recvs, memory_order_relaxed);
  }
  io_uring_queue_exit(&ring);
  free(slots);
  free(mem);
  return NULL;
}

/* The feeder: GSO batches of f->batch datagrams toward the forwarder, as
 * fast as the socket takes them, and the sink drained between batches. */
static void *feed_main(void *arg)
{
  struct fwd *f = arg;
  size_t len = f->size * f->batch;
  uint8_t *buf = calloc(1, FWD_BUF_LEN);
  if (!buf)
    return NULL;
  union {
    struct cmsghdr align;
    uint8_t b[CMSG_SPACE(sizeof(int))];
  } ctl;
  uint64_t fed = 0, sunk = 0;
  while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
    if (send(f->feed_fd, buf, len, 0) == (ssize_t)len)
      fed += f->batch;
    for (;;) {
      struct iovec iov = {.iov_base = buf, .iov_len = FWD_BUF_LEN};
      struct msghdr mh = {
          .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
      ssize_t n = recvmsg(f->sink_fd, &mh, MSG_DONTWAIT);
      if (n <= 0)
        break;
      int seg = (int)n;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO)
          memcpy(&seg, CMSG_DATA(c), sizeof(seg));
      sunk += (uint64_t)((n + seg - 1) / (seg > 0 ? seg : 1));
    }
    atomic_store_explicit(&f->fed, fed, memory_order_relaxed);
    atomic_store_explicit(&f->sunk, sunk, memory_order_relaxed);
  }
  free(buf);
  return NULL;
}

struct fwd_result {
  double ns;        /* CPU ns per forwarded datagram (median of intervals) */
  double wall_rate; /* datagrams forwarded per second of wall time */
  double fed_rate;  /* datagrams the feeder sent per second */
  double sunk_rate; /* datagrams the sink received per second */
  double per_recv;  /* datagrams per receive completion */
  double cpu_pct;   /* the forwarder's CPU, % of a core */
  double wait_pct;  /* the forwarder thread runnable but not running, % */
};

struct snap {
  double wall, proc, feeder, self, runq;
  uint64_t fwd, recvs, fed, sunk;
};

/* Seconds the thread waited on a run queue (schedstat's second field), 0
 * when the kernel has no schedstats. */
static double runq_wait_s(pid_t tid)
{
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
  FILE *fp = fopen(path, "r");
  unsigned long long run = 0, wait = 0;
  if (!fp)
    return 0;
  if (fscanf(fp, "%llu %llu", &run, &wait) != 2)
    wait = 0;
  fclose(fp);
  return (double)wait / 1e9;
}

static void snap_take(struct snap *s, struct fwd *f, clockid_t feeder_clock)
{
  s->runq = runq_wait_s(f->fwd_tid);
  s->wall = now_s(CLOCK_MONOTONIC);
  s->proc = now_s(CLOCK_PROCESS_CPUTIME_ID);
  s->feeder = now_s(feeder_clock);
  s->self = now_s(CLOCK_THREAD_CPUTIME_ID);
  s->fwd = atomic_load(&f->forwarded);
  s->recvs = atomic_load(&f->recvs);
  s->fed = atomic_load(&f->fed);
  s->sunk = atomic_load(&f->sunk);
}

static int fwd_probe(const struct opts *o, struct fwd_result *res)
{
  struct fwd f = {.size = o->size, .batch = o->batch};
  struct sockaddr_in in_addr;
  int rc = 0;
  f.in_fd = udp_socket(&in_addr, true);
  f.sink_fd = udp_socket(&f.sink_addr, true);
  f.feed_fd = udp_socket(NULL, false);
  if (f.in_fd < 0 || f.sink_fd < 0 || f.feed_fd < 0) {
    rc = f.in_fd < 0 ? f.in_fd : f.sink_fd < 0 ? f.sink_fd : f.feed_fd;
    goto out;
  }
  int gso = (int)o->size;
  if (connect(f.feed_fd, (struct sockaddr *)&in_addr, sizeof(in_addr)) < 0 ||
      (o->batch > 1 && setsockopt(f.feed_fd, IPPROTO_UDP, UDP_SEGMENT, &gso, sizeof(gso)) < 0)) {
    rc = -errno;
    goto out;
  }
  pthread_t fwd_t, feed_t;
  if ((rc = -pthread_create(&fwd_t, NULL, fwd_main, &f)) < 0)
    goto out;
  while (!atomic_load(&f.started))
    usleep(1000);
  if (f.setup_err < 0) {
    pthread_join(fwd_t, NULL);
    rc = f.setup_err;
    goto out;
  }
  if ((rc = -pthread_create(&feed_t, NULL, feed_main, &f)) < 0) {
    atomic_store(&f.stop, true);
    pthread_join(fwd_t, NULL);
    goto out;
  }
  clockid_t feeder_clock;
  pthread_getcpuclockid(feed_t, &feeder_clock);
  usleep(300 * 1000); /* warm-up: buffers, caches, the scheduler */
  double ns[ROUNDS];
  int n = 0;
  struct snap first, a, b;
  snap_take(&first, &f, feeder_clock);
  a = first;
  for (int r = 0; r < ROUNDS; r++) {
    usleep((useconds_t)(o->duration / ROUNDS * 1e6));
    snap_take(&b, &f, feeder_clock);
    double cpu = (b.proc - a.proc) - (b.feeder - a.feeder) - (b.self - a.self);
    if (b.fwd > a.fwd)
      ns[n++] = cpu * 1e9 / (double)(b.fwd - a.fwd);
    a = b;
  }
  atomic_store(&f.stop, true);
  pthread_join(feed_t, NULL);
  pthread_join(fwd_t, NULL);
  double wall = b.wall - first.wall;
  if (n == 0 || wall <= 0) {
    rc = -EIO;
    goto out;
  }
  res->ns = median(ns, (size_t)n);
  res->wall_rate = (double)(b.fwd - first.fwd) / wall;
  res->fed_rate = (double)(b.fed - first.fed) / wall;
  res->sunk_rate = (double)(b.sunk - first.sunk) / wall;
  res->per_recv =
      (double)(b.fwd - first.fwd) / (double)(b.recvs > first.recvs ? b.recvs - first.recvs : 1);
  res->wait_pct = 100 * (b.runq - first.runq) / wall;
  res->cpu_pct =
      100 * ((b.proc - first.proc) - (b.feeder - first.feeder) - (b.self - first.self)) / wall;
out:
  if (f.in_fd >= 0)
    close(f.in_fd);
  if (f.sink_fd >= 0)
    close(f.sink_fd);
  if (f.feed_fd >= 0)
    close(f.feed_fd);
  return rc;
}

/* --- main ---------------------------------------------------------------- */

static void usage(FILE *out)
{
  fprintf(out, "usage: limitprobe [--size BYTES (1200)] [--batch N (16)] [--duration S (2)] "
               "[--json-only]\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
  *o = (struct opts){.size = 1200, .batch = 16, .duration = 2};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--json-only")) {
      o->json_only = true;
      continue;
    }
    if (!strcmp(a, "--help")) {
      usage(stdout);
      exit(0);
    }
    if (!v)
      return -EINVAL;
    char *end;
    double x = strtod(v, &end);
    if (*end || x <= 0)
      return -EINVAL;
    if (!strcmp(a, "--size"))
      o->size = (size_t)x;
    else if (!strcmp(a, "--batch"))
      o->batch = (unsigned)x;
    else if (!strcmp(a, "--duration"))
      o->duration = x;
    else
      return -EINVAL;
    i++;
  }
  if (o->size < 64 || o->size > MAX_SIZE || o->batch < 1 || o->batch > MAX_BATCH ||
      o->size * o->batch > 65000)
    return -EINVAL;
  return 0;
}

int main(int argc, char **argv)
{
  struct opts o;
  if (parse(argc, argv, &o) < 0) {
    usage(stderr);
    return 2;
  }
  if (gnutls_global_init() < 0)
    return 1;
  double aead_ns = aead_probe(o.size);
  if (aead_ns < 0) {
    fprintf(stderr, "limitprobe: AES-128-GCM through GnuTLS failed: %s\n", strerror((int)-aead_ns));
    return 1;
  }
  struct fwd_result fr = {0};
  int rc = fwd_probe(&o, &fr);
  if (rc < 0) {
    fprintf(stderr, "limitprobe: loopback forwarder failed: %s\n", strerror(-rc));
    return 1;
  }
  double limit = 1e9 / (aead_ns + fr.ns);
  if (!o.json_only) {
    printf("limit probe, %zu-byte datagrams:\n", o.size);
    printf("  aead: AES-128-GCM seal + open through GnuTLS %.0f ns (%.0f/s per core)\n", aead_ns,
           1e9 / aead_ns);
    printf("  fwd:  io_uring GRO/GSO forwarder on loopback %.0f ns/datagram (%.0f/s per core; "
           "%.0f/s at %.0f%% of a core, %.1f datagrams/recvmsg; fed %.0f/s, sunk %.0f/s; waited "
           "for a CPU %.0f%% of the time)\n",
           fr.ns, 1e9 / fr.ns, fr.wall_rate, fr.cpu_pct, fr.per_recv, fr.fed_rate, fr.sunk_rate,
           fr.wait_pct);
    printf("  limit: 1 / (aead + fwd) = %.0f frames/s per core (%.0f ns per frame, %.2f Gbit/s "
           "of %zu-byte payloads)\n",
           limit, aead_ns + fr.ns, limit * (double)o.size * 8 / 1e9, o.size);
  }
  printf("{\"size\":%zu,\"batch\":%u,\"aead_ns\":%.1f,\"aead_per_core\":%.0f,\"fwd_ns\":%.1f,"
         "\"fwd_per_core\":%.0f,\"fwd_rate\":%.0f,\"fwd_cpu_pct\":%.1f,\"fwd_per_recvmsg\":%.2f,"
         "\"fed_rate\":%.0f,\"sunk_rate\":%.0f,\"fwd_wait_pct\":%.1f,\"limit_per_core\":%.0f}\n",
         o.size, o.batch, aead_ns, 1e9 / aead_ns, fr.ns, 1e9 / fr.ns, fr.wall_rate, fr.cpu_pct,
         fr.per_recv, fr.fed_rate, fr.sunk_rate, fr.wait_pct, limit);
  gnutls_global_deinit();
  return 0;
}
