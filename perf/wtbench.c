/*
 * wtbench: load generator for the relay's frame path.
 *
 *   wtbench --url https://127.0.0.1:4433/bench --cert-hash HEX
 *           [--sessions N] [--pattern pair|broadcast|echo] [--size BYTES]
 *           [--rate FRAMES_PER_S] [--duration S] [--relay-pid PID] [--rooms K]
 *           [--workers W --placement same|cross|one] [--per-second]
 *           [--url2 URL --cert-hash2 HEX --relay-pid2 PID] [--broker-pid PID]
 *
 * N sessions from one process (one io_uring loop, one UDP socket), each a
 * registered bavy peer with its own MAC. Patterns:
 *   pair       session 2k and 2k+1 send to each other (unicast, learned);
 *   broadcast  session 0 sends broadcasts, every other session receives;
 *   echo       2k sends to 2k+1, which sends each frame back; latency is
 *              the round trip;
 *   idle       no traffic: sessions stay registered for --duration and the
 *              relay's RSS per session is reported (with --relay-pid);
 *              --heartbeat S sends a Heartbeat every S seconds on each
 *              (as the page does, every 15 s).
 * A room holds at most 245 registered sessions (its address pool): with more
 * sessions they are spread over rooms PATH-0, PATH-1, ... (--rooms K sets
 * the count; pairs always share a room).
 * --rate is the total offered frames/s (0 = as fast as the client's QUIC
 * connections accept them). Frames carry a sequence number and a send
 * timestamp (CLOCK_MONOTONIC, same host) after the Ethernet header, so
 * delivery and one-way latency are measured per frame.
 *
 * Placement on the relay's workers (--workers W, the relay's --workers):
 * one client endpoint (UDP socket, ring) per relay worker, carrying the
 * sessions placed there. The kernel's 4-tuple hash (or the relay's
 * steering program, which leaves Initials to that hash) picks the worker
 * of a connection, so every session of one endpoint lands on the same
 * worker. The worker that took a connection is the first byte of the
 * connection ID the relay chose (quic.c), the client's destination CID
 * once the handshake is done: an endpoint whose first session is on the
 * wrong worker is closed and made again with a new socket (a new source
 * port) until it lands where it should, at most PLACE_TRIES times.
 * --placement same puts both sessions of pair k on worker k mod W; cross
 * puts session 2k on worker k mod W and 2k+1 on the next one, so every
 * frame crosses a worker ring; one puts every session on worker 0 (the
 * others idle). At most 64 sessions.
 *
 * Reports offered and delivered frames/s, loss, latency p50/p99/p99.9, the
 * relay's CPU time and RSS from /proc/PID (with --relay-pid), and datagrams
 * per syscall on the client side; a table for people and one JSON line.
 * --per-second (for tests): "wtbench: measuring" on stderr when the
 * measured period starts, and the frames delivered in each whole second
 * of it in the JSON line ("per_second", at most MAX_SECONDS).
 * Two relays (--url2): session 2k+1 of each pair connects to the second
 * URL from a second client endpoint (its own socket and ring), session 2k
 * to the first; --cert-hash2 pins the second relay's certificate (default
 * --cert-hash). Give both URLs the same room path: the pair meets only if
 * the relays federate that room (--nats). --url2 equal to --url is the
 * same client (two endpoints, waited on together) with the pair on one
 * relay, the baseline to compare with. --relay-pid2 adds the second
 * relay's CPU to the relay figures (counted once when it is --relay-pid),
 * --broker-pid measures the NATS server's apart; with any of the three the
 * JSON line also has relay1_cpu_pct, relay2_cpu_pct, broker_cpu_pct,
 * broker_us_per_frame and relay_proc_us_per_frame (the CPU of every thread
 * of the relays per delivered frame: the federation's threads are not
 * workers). Without them nothing changes.
 * With --relay-pid the relay's worker threads (named wtrelay-wN) are
 * measured one by one from /proc/PID/task/TID/stat: their CPU in all and
 * per worker, and CPU microseconds per delivered frame (the relay's work
 * per frame, which holds when the load generator and the relay compete
 * for the same cores and the rates do not).
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wtrelay/log.h"
#include "wtrelay/tls.h"
#include "wtrelay/wtc.h"

#define MAGIC 0x5754424eu      /* "WTBN" */
#define ETHERTYPE_BENCH 0x88b5 /* IEEE local experimental */
#define HDR 14
#define PAYLOAD_MIN (HDR + 24)
#define MAX_SAMPLES (1u << 21)
#define MAX_PLACED 64   /* sessions with --workers: each has its own endpoint */
#define PLACE_TRIES 64  /* new source ports per session before giving up */
#define MAX_WTHREADS 64 /* relay worker threads measured */
#define MAX_SECONDS 600 /* --per-second buckets */

enum pattern { P_PAIR, P_BROADCAST, P_ECHO, P_IDLE };

struct bench {
  struct wtc c;
  /* the client endpoints polled: &c alone, or one per session (--workers) */
  struct wtc **cs;
  uint32_t ncs;
  uint32_t workers; /* --workers: 0 = no placement */
  bool cross, one;
  /* --url2: the second relay's endpoint, carrying the odd sessions */
  struct wtc c2;
  struct wtc *two[2];
  struct wtc_session **s;
  uint32_t n;
  enum pattern pattern;
  size_t size;
  uint8_t (*mac)[6];
  uint64_t *seq_out; /* per sender */
  uint64_t sent, send_blocked, delivered, echoed, foreign;
  bool measuring;
  uint64_t t0;                   /* start of the measured period */
  uint64_t per_sec[MAX_SECONDS]; /* frames delivered in each second of it */
  uint64_t *lat;                 /* ns samples (reservoir beyond MAX_SAMPLES) */
  uint64_t nlat, lat_seen;
  uint64_t rng;
};

static uint64_t rnd(struct bench *b)
{
  b->rng ^= b->rng << 13;
  b->rng ^= b->rng >> 7;
  b->rng ^= b->rng << 17;
  return b->rng;
}

static void put32(uint8_t *p, uint32_t v)
{
  memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v)
{
  memcpy(p, &v, 8);
}
static uint32_t get32(const uint8_t *p)
{
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static uint64_t get64(const uint8_t *p)
{
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static void lat_add(struct bench *b, uint64_t ns)
{
  b->lat_seen++;
  if (b->nlat < MAX_SAMPLES) {
    b->lat[b->nlat++] = ns;
  } else {
    uint64_t k = rnd(b) % b->lat_seen;
    if (k < MAX_SAMPLES)
      b->lat[k] = ns;
  }
}

static void on_frame(void *user, struct wtc_session *s, const uint8_t *f, size_t len)
{
  struct bench *b = user;
  if (len < PAYLOAD_MIN || get32(f + HDR) != MAGIC) {
    b->foreign++;
    return;
  }
  uint32_t from = get32(f + HDR + 4);
  uint64_t ts = get64(f + HDR + 16);
  /* several endpoints: a session's index in its endpoint is not its own */
  uint32_t me = b->workers || b->ncs > 1 ? (uint32_t)(uintptr_t)s->user : s->idx;
  if (b->pattern == P_ECHO && (me & 1)) {
    /* the echo side: send it back unchanged but for the MACs */
    uint8_t out[WTC_MAX_FRAME];
    memcpy(out, f, len);
    memcpy(out, f + 6, 6);
    memcpy(out + 6, b->mac[me], 6);
    if (wtc_send_frame(s, out, len) == 0)
      b->echoed++;
    return;
  }
  if (from >= b->n || !b->measuring)
    return;
  b->delivered++;
  uint64_t now = clock_now_ns();
  if (now > b->t0 && (now - b->t0) / 1000000000u < MAX_SECONDS)
    b->per_sec[(now - b->t0) / 1000000000u]++;
  if (now > ts)
    lat_add(b, now - ts);
}

static const struct wtc_ops ops = {.on_frame = on_frame};

static int send_one(struct bench *b, uint32_t i)
{
  static const uint8_t bc[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  uint8_t f[WTC_MAX_FRAME];
  const uint8_t *dst = b->pattern == P_BROADCAST ? bc : b->mac[i ^ 1];
  memcpy(f, dst, 6);
  memcpy(f + 6, b->mac[i], 6);
  f[12] = ETHERTYPE_BENCH >> 8;
  f[13] = ETHERTYPE_BENCH & 0xff;
  put32(f + HDR, MAGIC);
  put32(f + HDR + 4, i);
  put64(f + HDR + 8, b->seq_out[i]);
  put64(f + HDR + 16, clock_now_ns());
  memset(f + PAYLOAD_MIN, 0x5a, b->size - PAYLOAD_MIN);
  int rc = wtc_send_frame(b->s[i], f, b->size);
  if (rc == 0) {
    b->seq_out[i]++;
    if (b->measuring)
      b->sent++;
  } else if (b->measuring) {
    b->send_blocked++;
  }
  return rc;
}

static bool is_sender(const struct bench *b, uint32_t i)
{
  if (b->pattern == P_BROADCAST)
    return i == 0;
  if (b->pattern == P_ECHO)
    return (i & 1) == 0;
  return b->pattern == P_PAIR;
}

struct proc_stat {
  double cpu_s;
  long rss_kb;
};

static int proc_read(int pid, struct proc_stat *ps)
{
  char path[64], buf[4096];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -errno;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return -EINVAL;
  ps->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
  snprintf(path, sizeof(path), "/proc/%d/status", pid);
  f = fopen(path, "r");
  ps->rss_kb = 0;
  while (f && fgets(buf, sizeof(buf), f))
    if (sscanf(buf, "VmRSS: %ld", &ps->rss_kb) == 1)
      break;
  if (f)
    fclose(f);
  return 0;
}

/* CPU seconds of the relay's worker threads (comm "wtrelay-wN"), indexed
 * by N; the number of such threads found (0: an older relay, or not
 * readable: the caller falls back to the process's CPU). */
static uint32_t proc_workers_read(int pid, double *cpu_s)
{
  char path[96], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/task", pid);
  DIR *d = opendir(path);
  uint32_t found = 0;
  for (uint32_t i = 0; i < MAX_WTHREADS; i++)
    cpu_s[i] = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/%d/task/%.16s/stat", pid, e->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *l = strchr(buf, '('), *r = strrchr(buf, ')');
    unsigned w, ut = 0, st = 0;
    if (!l || !r || sscanf(l + 1, "wtrelay-w%u", &w) != 1 || w >= MAX_WTHREADS ||
        sscanf(r + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %u %u", &ut, &st) != 2)
      continue;
    cpu_s[w] = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    if (w + 1 > found)
      found = w + 1;
  }
  if (d)
    closedir(d);
  return found;
}

/* Another process measured over the run (--relay-pid2, --broker-pid):
 * its CPU in all and, for a relay, its worker threads'. */
struct probe {
  int pid;
  struct proc_stat p0, p1;
  double wk0[MAX_WTHREADS], wk1[MAX_WTHREADS];
  uint32_t nwk;
};

static int probe_start(struct probe *pr)
{
  if (!pr->pid)
    return 0;
  pr->nwk = proc_workers_read(pr->pid, pr->wk0);
  return proc_read(pr->pid, &pr->p0);
}

/* CPU seconds of the run: in all, and of the worker threads (*wcpu_s,
 * the process's when none were found). */
static double probe_stop(struct probe *pr, double *wcpu_s)
{
  *wcpu_s = 0;
  if (!pr->pid || proc_read(pr->pid, &pr->p1) < 0)
    return 0;
  if (pr->nwk && proc_workers_read(pr->pid, pr->wk1) != pr->nwk)
    pr->nwk = 0;
  for (uint32_t i = 0; i < pr->nwk; i++)
    *wcpu_s += pr->wk1[i] - pr->wk0[i];
  double all = pr->p1.cpu_s - pr->p0.cpu_s;
  if (!pr->nwk)
    *wcpu_s = all;
  return all;
}

/* --url2: waits (at most max_wait_ns, less when a timer of an endpoint
 * is due sooner) until a datagram reaches either endpoint's socket. Its
 * ring's receive is armed on that socket too, and wtc_poll then asks the
 * ring for it (DEFER_TASKRUN), so the frame is taken as soon as with one
 * ring to wait on: the two relays' latencies compare with the one relay's
 * measured the same way. */
static void wait_two(struct bench *b, uint64_t max_wait_ns)
{
  uint64_t now = clock_now_ns(), wait = max_wait_ns;
  struct pollfd fds[2];
  for (uint32_t i = 0; i < 2; i++) {
    uint64_t next = timer_next(&b->cs[i]->w.timers);
    if (next <= now)
      return;
    if (next - now < wait)
      wait = next - now;
    fds[i] = (struct pollfd){.fd = b->cs[i]->udp->fd, .events = POLLIN};
  }
  struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000u),
                        .tv_nsec = (long)(wait % 1000000000u)};
  ppoll(fds, 2, &ts, NULL);
}

/* One loop turn of every client endpoint, waiting (at most max_wait_ns)
 * only when there is one. */
static void poll_all(struct bench *b, uint64_t max_wait_ns)
{
  for (uint32_t i = 0; i < b->ncs; i++)
    if (b->cs[i]->sess) /* an endpoint with no session placed is never made */
      wtc_poll(b->cs[i], b->ncs == 1 ? max_wait_ns : 0);
  if (b->ncs > 1 && !b->workers && max_wait_ns) {
    wait_two(b, max_wait_ns);
    return;
  }
  /* several endpoints: no one ring to wait on; a short sleep instead of
   * spinning on a core the relay needs */
  if (b->ncs > 1 && max_wait_ns)
    usleep(50);
}

/* Runs every endpoint until done(arg) or timeout_ns: 0, or -ETIMEDOUT. */
static int run_all(struct bench *b, uint64_t timeout_ns, bool (*done)(void *), void *arg)
{
  if (b->ncs == 1)
    return wtc_run(b->cs[0], timeout_ns, done, arg);
  uint64_t end = clock_now_ns() + timeout_ns;
  while (clock_now_ns() < end) {
    if (done && done(arg))
      return 0;
    if (!b->workers) { /* --url2: wait on both sockets, 1 ms at most */
      poll_all(b, 1000000);
      continue;
    }
    poll_all(b, 0);
    usleep(100);
  }
  return done && !done(arg) ? -ETIMEDOUT : 0;
}

/* The relay worker that holds session s: the first byte of the CID the
 * relay chose, the client's destination CID after the handshake. */
static uint32_t session_worker(const struct wtc_session *s)
{
  const ngtcp2_cid *d = ngtcp2_conn_get_dcid(s->qc->conn);
  return d->datalen ? d->data[0] : UINT32_MAX;
}

static bool one_open(void *arg)
{
  const struct wtc_session *s = arg;
  return s->state == WTC_OPEN || s->state == WTC_FAILED || s->state == WTC_CLOSED;
}

/* The worker session i should sit on (--placement). */
static uint32_t placed_worker(const struct bench *b, uint32_t i)
{
  uint32_t k = i / 2;
  if (b->one)
    return 0;
  return (k + (b->cross && (i & 1))) % b->workers;
}

struct opened {
  struct wtc_session **s;
  uint32_t n;
};

static bool all_opened(void *arg)
{
  struct opened *o = arg;
  for (uint32_t i = 0; i < o->n; i++)
    if (!one_open(o->s[i]))
      return false;
  return true;
}

/* --workers: endpoint w (one socket, so one 4-tuple) carries every session
 * placed on worker w. Its first session is opened from new sockets until
 * the relay puts it on w; the others follow it there (same 4-tuple, same
 * choice). 0 or negative errno; *tries counts the endpoints made. */
static int place_endpoint(struct bench *b, uint32_t w, const char *url, const uint8_t *pin,
                          uint32_t *tries)
{
  static const struct wtc_ops placed_ops = {.on_frame = on_frame};
  uint32_t mine[MAX_PLACED], n = 0;
  for (uint32_t i = 0; i < b->n; i++)
    if (placed_worker(b, i) == w)
      mine[n++] = i;
  if (!n)
    return 0;
  struct wtc *c = b->cs[w];
  for (uint32_t t = 1; t <= PLACE_TRIES; t++) {
    int rc = wtc_init(c, url, pin, n, &placed_ops, b);
    if (rc < 0)
      return rc;
    (*tries)++;
    struct wtc_session *s;
    if ((rc = wtc_open_path(c, NULL, &s)) < 0)
      return rc;
    s->user = (void *)(uintptr_t)mine[0];
    if (wtc_run(c, 10000000000ull, one_open, s) < 0 || s->state != WTC_OPEN) {
      fprintf(stderr, "wtbench: placement: session %s (HTTP %d, %s), trying again\n",
              wtc_state_name(s->state), s->status, s->close_reason);
      wtc_fini(c);
      continue;
    }
    if (session_worker(s) != w) {
      wtc_close(s, 0, "wtbench placement");
      wtc_run(c, 20000000ull, NULL, NULL);
      wtc_fini(c);
      continue;
    }
    b->s[mine[0]] = s;
    for (uint32_t k = 1; k < n; k++) {
      if ((rc = wtc_open_path(c, NULL, &b->s[mine[k]])) < 0)
        return rc;
      b->s[mine[k]]->user = (void *)(uintptr_t)mine[k];
    }
    struct wtc_session *all[MAX_PLACED];
    for (uint32_t k = 0; k < n; k++)
      all[k] = b->s[mine[k]];
    struct opened o = {all, n};
    if (wtc_run(c, 10000000000ull, all_opened, &o) < 0)
      return -ETIMEDOUT;
    for (uint32_t k = 0; k < n; k++)
      if (all[k]->state != WTC_OPEN || session_worker(all[k]) != w)
        return -EXDEV; /* the same 4-tuple went elsewhere: not the kernel's hash? */
    return 0;
  }
  return -EAGAIN;
}

/* Everything main allocated, once the endpoints are finished. */
static void bench_free(struct bench *b)
{
  if (b->workers) {
    for (uint32_t i = 0; i < b->ncs; i++)
      free(b->cs[i]);
    free(b->cs);
  }
  free(b->s);
  free(b->mac);
  free(b->seq_out);
  free(b->lat);
}

static double per_frame_us(double cpu_s, uint64_t frames)
{
  return frames ? cpu_s * 1e6 / (double)frames : 0;
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, uint64_t n, double p)
{
  if (!n)
    return 0;
  uint64_t k = (uint64_t)ceil(p * (double)n) - 1;
  if (k >= n)
    k = n - 1;
  return (double)v[k] / 1000.0;
}

static void usage(void)
{
  fprintf(stderr, "usage: wtbench --url URL [--cert-hash HEX] [--sessions N]\n"
                  "               [--pattern pair|broadcast|echo] [--size BYTES]\n"
                  "               [--rate FRAMES_PER_S] [--duration S] [--relay-pid PID]\n"
                  "               [--rooms K] [--workers W --placement same|cross|one]\n"
                  "               [--url2 URL [--cert-hash2 HEX] [--relay-pid2 PID]]\n"
                  "               [--broker-pid PID] [--transport wt|ws]\n"
                  "               (patterns: pair broadcast echo idle)\n");
}

struct want {
  struct bench *b;
  enum wtc_state st;
  uint32_t lo, hi;
};

static bool all_in(void *arg)
{
  struct want *w = arg;
  for (uint32_t i = w->lo; i < w->hi; i++)
    if (w->b->s[i]->state != w->st)
      return false;
  return true;
}

int main(int argc, char **argv)
{
  const char *url = NULL, *hash = NULL, *pat = "pair";
  const char *url2 = NULL, *hash2 = NULL;
  struct probe relay2 = {0}, broker = {0};
  uint32_t sessions = 2, rooms = 0;
  double rate = 0, duration = 5, heartbeat = 0;
  long size = 1000;
  int relay_pid = 0;
  uint32_t workers = 0;
  const char *placement = "same";
  enum wtc_transport transport = WTC_WT;
  bool per_second = false;
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--per-second")) {
      per_second = true;
      i--;
      continue;
    }
    if (!v) {
      usage();
      return 2;
    }
    if (!strcmp(a, "--url"))
      url = v;
    else if (!strcmp(a, "--cert-hash"))
      hash = v;
    else if (!strcmp(a, "--sessions"))
      sessions = (uint32_t)atoi(v);
    else if (!strcmp(a, "--pattern"))
      pat = v;
    else if (!strcmp(a, "--size"))
      size = atol(v);
    else if (!strcmp(a, "--rate"))
      rate = atof(v);
    else if (!strcmp(a, "--duration"))
      duration = atof(v);
    else if (!strcmp(a, "--heartbeat"))
      heartbeat = atof(v);
    else if (!strcmp(a, "--relay-pid"))
      relay_pid = atoi(v);
    else if (!strcmp(a, "--rooms"))
      rooms = (uint32_t)atoi(v);
    else if (!strcmp(a, "--workers"))
      workers = (uint32_t)atoi(v);
    else if (!strcmp(a, "--placement"))
      placement = v;
    else if (!strcmp(a, "--url2"))
      url2 = v;
    else if (!strcmp(a, "--cert-hash2"))
      hash2 = v;
    else if (!strcmp(a, "--relay-pid2"))
      relay2.pid = atoi(v);
    else if (!strcmp(a, "--broker-pid"))
      broker.pid = atoi(v);
    else if (!strcmp(a, "--transport") && (!strcmp(v, "wt") || !strcmp(v, "ws")))
      transport = !strcmp(v, "ws") ? WTC_WS : WTC_WT;
    else {
      usage();
      return 2;
    }
  }
  struct bench b;
  memset(&b, 0, sizeof(b));
  b.pattern = !strcmp(pat, "pair")        ? P_PAIR
              : !strcmp(pat, "broadcast") ? P_BROADCAST
              : !strcmp(pat, "echo")      ? P_ECHO
              : !strcmp(pat, "idle")      ? P_IDLE
                                          : (enum pattern) - 1;
  if (!url || (int)b.pattern < 0 || sessions < 2 || sessions > 10000 ||
      ((b.pattern == P_PAIR || b.pattern == P_ECHO) && sessions % 2) || size < PAYLOAD_MIN ||
      size > 1514 || duration <= 0 || rate < 0 || workers > 256 ||
      (workers && (sessions > MAX_PLACED || b.pattern == P_IDLE)) || (workers && url2) ||
      (strcmp(placement, "same") && strcmp(placement, "cross") && strcmp(placement, "one"))) {
    usage();
    return 2;
  }
  uint8_t pin[32];
  if (hash && tls_hash_parse_hex(hash, pin) < 0) {
    fprintf(stderr, "wtbench: --cert-hash: expected 64 hex digits\n");
    return 2;
  }
  uint8_t pin2[32];
  if (hash2 && tls_hash_parse_hex(hash2, pin2) < 0) {
    fprintf(stderr, "wtbench: --cert-hash2: expected 64 hex digits\n");
    return 2;
  }
  if (relay2.pid == relay_pid) /* one relay: count it once */
    relay2.pid = 0;
  /* the new figures in the JSON line only when asked for */
  bool more = url2 || relay2.pid || broker.pid;
  log_set_level(LOG_WARN);
  b.n = sessions;
  b.size = (size_t)size;
  b.rng = 0x9e3779b97f4a7c15ull;
  b.s = calloc(sessions, sizeof(*b.s));
  b.mac = calloc(sessions, sizeof(*b.mac));
  b.seq_out = calloc(sessions, sizeof(*b.seq_out));
  b.lat = calloc(MAX_SAMPLES, sizeof(*b.lat));
  if (!b.s || !b.mac || !b.seq_out || !b.lat)
    return 1;
  struct wtc *only = &b.c;
  b.workers = workers;
  b.cross = !strcmp(placement, "cross");
  b.one = !strcmp(placement, "one");
  int rc = 0;
  if (workers) {
    b.ncs = workers;
    b.cs = calloc(workers, sizeof(*b.cs));
    for (uint32_t i = 0; b.cs && i < workers; i++)
      if (!(b.cs[i] = calloc(1, sizeof(struct wtc))))
        return 1;
    if (!b.cs || rooms > 1)
      return 1;
  } else {
    b.ncs = 1;
    b.cs = &only;
    rc = wtc_init(&b.c, url, hash ? pin : NULL, sessions, &ops, &b);
    if (rc == 0)
      wtc_set_transport(&b.c, transport);
    if (rc == 0 && url2) {
      b.two[0] = &b.c;
      b.two[1] = &b.c2;
      b.cs = b.two;
      b.ncs = 2;
      rc = wtc_init(&b.c2, url2, hash2 ? pin2 : hash ? pin : NULL, sessions, &ops, &b);
    }
  }
  if (rc < 0) {
    fprintf(stderr, "wtbench: cannot start: %s\n", strerror(-rc));
    return 1;
  }
  if (!rooms)
    rooms = (sessions + 239) / 240;
  if (b.pattern == P_BROADCAST && rooms > 1) {
    fprintf(stderr, "wtbench: broadcast needs one room: at most 240 sessions\n");
    return 2;
  }
  uint32_t per_room = (sessions + rooms - 1) / rooms;
  per_room += per_room & 1;
  struct proc_stat p_idle0 = {0};
  if (relay_pid && proc_read(relay_pid, &p_idle0) < 0) {
    fprintf(stderr, "wtbench: cannot read /proc/%d\n", relay_pid);
    return 1;
  }
  uint64_t t_open0 = clock_now_ns();
  uint32_t place_tries = 0;
  for (uint32_t i = 0; workers && i < sessions; i++) {
    uint32_t pid = (uint32_t)getpid();
    const uint8_t m[6] = {0x02, (uint8_t)(pid >> 8), (uint8_t)pid, 0, 0, (uint8_t)i};
    memcpy(b.mac[i], m, 6);
  }
  for (uint32_t w = 0; w < workers; w++)
    if ((rc = place_endpoint(&b, w, url, hash ? pin : NULL, &place_tries)) < 0) {
      fprintf(stderr, "wtbench: sessions not placed on worker %u: %s\n", w, strerror(-rc));
      return 1;
    }
  for (uint32_t i = 0; workers && i < sessions; i++)
    wtc_register(b.s[i], b.mac[i]);
  struct want wreg = {&b, WTC_REGISTERED, 0, sessions};
  if (workers && run_all(&b, 30000000000ull, all_in, &wreg) < 0) {
    fprintf(stderr, "wtbench: placed sessions did not register\n");
    return 1;
  }
  /* Open and register in waves, so thousands of handshakes do not all
   * start at once and outlive the handshake timeout. */
  const uint32_t wave = 256;
  for (uint32_t lo = 0; !workers && lo < sessions; lo += wave) {
    uint32_t hi = lo + wave < sessions ? lo + wave : sessions;
    for (uint32_t i = lo; i < hi; i++) {
      char path[600];
      /* --url2: the second session of each pair on the second relay */
      struct wtc *c = url2 && (i & 1) ? &b.c2 : &b.c;
      const char *base = c->h3.target.path;
      if (rooms > 1)
        snprintf(path, sizeof(path), "%s-%u", base, i / per_room);
      /* locally administered, unique per process: a run never collides
       * with sessions of an earlier run that the relay still holds */
      uint32_t pid = (uint32_t)getpid();
      const uint8_t m[6] = {
          0x02,      (uint8_t)(pid >> 8), (uint8_t)pid, (uint8_t)(i >> 16), (uint8_t)(i >> 8),
          (uint8_t)i};
      memcpy(b.mac[i], m, 6);
      if ((rc = wtc_open_path(c, rooms > 1 ? path : NULL, &b.s[i])) < 0) {
        fprintf(stderr, "wtbench: open: %s\n", strerror(-rc));
        return 1;
      }
      b.s[i]->user = (void *)(uintptr_t)i;
    }
    struct want w = {&b, WTC_OPEN, lo, hi};
    if (run_all(&b, 30000000000ull, all_in, &w) < 0) {
      fprintf(stderr, "wtbench: sessions %u..%u did not open\n", lo, hi - 1);
      return 1;
    }
    for (uint32_t i = lo; i < hi; i++)
      if (heartbeat > 0) /* registers, then a Heartbeat every --heartbeat s */
        wtc_keep(b.s[i], b.mac[i], (uint64_t)(heartbeat * 1e9));
      else
        wtc_register(b.s[i], b.mac[i]);
    w.st = WTC_REGISTERED;
    if (run_all(&b, 30000000000ull, all_in, &w) < 0) {
      fprintf(stderr, "wtbench: sessions %u..%u did not register\n", lo, hi - 1);
      return 1;
    }
  }
  double setup_s = (double)(clock_now_ns() - t_open0) / 1e9;
  if (b.pattern == P_IDLE) {
    struct proc_stat pi = {0};
    run_all(&b, (uint64_t)(duration * 1e9), NULL, NULL);
    if (relay_pid)
      proc_read(relay_pid, &pi);
    double per = (double)(pi.rss_kb - p_idle0.rss_kb) / sessions;
    printf("wtbench pattern=idle sessions=%u rooms=%u\n", sessions, rooms);
    printf("  open + register all   %10.2f s\n", setup_s);
    if (relay_pid)
      printf("  relay RSS             %10ld KiB before, %ld KiB with the sessions: %.1f KiB per "
             "session\n",
             p_idle0.rss_kb, pi.rss_kb, per);
    printf("{\"pattern\":\"idle\",\"sessions\":%u,\"rooms\":%u,\"setup_s\":%.3f,"
           "\"relay_rss_before_kb\":%ld,\"relay_rss_kb\":%ld,\"relay_rss_per_session_kb\":%.2f}\n",
           sessions, rooms, setup_s, p_idle0.rss_kb, pi.rss_kb, per);
    for (uint32_t i = 0; i < sessions; i++)
      wtc_close(b.s[i], 0, "wtbench done");
    run_all(&b, 300000000ull, NULL, NULL);
    for (uint32_t i = 0; i < b.ncs; i++)
      wtc_fini(b.cs[i]);
    bench_free(&b);
    return 0;
  }
  /* warm-up: one frame each way so the switch learns every MAC */
  for (uint32_t i = 0; i < sessions; i++)
    send_one(&b, i);
  run_all(&b, 300000000ull, NULL, NULL);

  struct proc_stat p0 = {0}, p1 = {0};
  double wk0[MAX_WTHREADS], wk1[MAX_WTHREADS];
  uint32_t nwk = relay_pid ? proc_workers_read(relay_pid, wk0) : 0;
  if (relay_pid && proc_read(relay_pid, &p0) < 0) {
    fprintf(stderr, "wtbench: cannot read /proc/%d\n", relay_pid);
    return 1;
  }
  if (probe_start(&relay2) < 0 || probe_start(&broker) < 0) {
    fprintf(stderr, "wtbench: cannot read /proc/%d\n", relay2.pid ? relay2.pid : broker.pid);
    return 1;
  }
  struct io_counters io0 = {0}, io1 = {0};
  for (uint32_t i = 0; i < b.ncs; i++) {
    io0.rx_datagrams += b.cs[i]->w.io.ctr.rx_datagrams;
    io0.rx_completions += b.cs[i]->w.io.ctr.rx_completions;
    io0.tx_packets += b.cs[i]->w.io.ctr.tx_packets;
    io0.tx_msgs += b.cs[i]->w.io.ctr.tx_msgs;
  }
  uint64_t t0 = clock_now_ns(), end = t0 + (uint64_t)(duration * 1e9);
  b.t0 = t0;
  b.measuring = true;
  if (per_second)
    fprintf(stderr, "wtbench: measuring\n");
  uint32_t next_sender = 0;
  /* --workers at a fixed rate: frames leave in ticks of TICK_NS whatever
   * the number of endpoints, so every configuration offers the relay the
   * same bursts (and so the same batching) */
  const uint64_t TICK_NS = 200000;
  uint64_t next_tick = t0;
  for (uint64_t now = t0; now < end; now = clock_now_ns()) {
    if (rate > 0 && workers && now < next_tick) {
      poll_all(&b, next_tick - now);
      continue;
    }
    next_tick = now + TICK_NS;
    if (rate > 0) {
      uint64_t due = (uint64_t)((double)(now - t0) * rate / 1e9);
      for (uint32_t guard = 0;
           b.sent + b.send_blocked < due && guard < (workers ? 16 : 4) * sessions; guard++) {
        while (!is_sender(&b, next_sender))
          next_sender = (next_sender + 1) % sessions;
        send_one(&b, next_sender);
        next_sender = (next_sender + 1) % sessions;
      }
    } else {
      for (uint32_t i = 0; i < sessions; i++)
        for (int k = 0; k < 16 && is_sender(&b, i); k++)
          if (send_one(&b, i) < 0)
            break;
    }
    poll_all(&b, rate > 0 ? 200000 : 0);
  }
  double secs = (double)(clock_now_ns() - t0) / 1e9;
  if (relay_pid)
    proc_read(relay_pid, &p1);
  if (nwk)
    nwk = proc_workers_read(relay_pid, wk1) == nwk ? nwk : 0;
  double relay2_wcpu_s, broker_wcpu_s;
  double relay2_cpu_s = probe_stop(&relay2, &relay2_wcpu_s);
  double broker_cpu_s = probe_stop(&broker, &broker_wcpu_s);
  for (uint32_t i = 0; i < b.ncs; i++) {
    io1.rx_datagrams += b.cs[i]->w.io.ctr.rx_datagrams;
    io1.rx_completions += b.cs[i]->w.io.ctr.rx_completions;
    io1.tx_packets += b.cs[i]->w.io.ctr.tx_packets;
    io1.tx_msgs += b.cs[i]->w.io.ctr.tx_msgs;
  }
  /* drain what is in flight, then stop counting */
  run_all(&b, 500000000ull, NULL, NULL);
  b.measuring = false;

  uint64_t expected = b.pattern == P_BROADCAST ? b.sent * (sessions - 1) : b.sent;
  double loss = expected ? 100.0 * (double)(expected > b.delivered ? expected - b.delivered : 0) /
                               (double)expected
                         : 0;
  qsort(b.lat, b.nlat, sizeof(*b.lat), cmp_u64);
  double p50 = pct(b.lat, b.nlat, 0.5), p99 = pct(b.lat, b.nlat, 0.99),
         p999 = pct(b.lat, b.nlat, 0.999);
  double rx_per = (double)(io1.rx_datagrams - io0.rx_datagrams) /
                  (double)(io1.rx_completions - io0.rx_completions +
                           !(io1.rx_completions - io0.rx_completions));
  double tx_per = (double)(io1.tx_packets - io0.tx_packets) /
                  (double)(io1.tx_msgs - io0.tx_msgs + !(io1.tx_msgs - io0.tx_msgs));
  double cpu = relay_pid ? 100.0 * (p1.cpu_s - p0.cpu_s) / secs : -1;
  /* the worker threads' CPU, in all and each (else the process's) */
  double wcpu_s = 0;
  char wlist[MAX_WTHREADS * 12] = "";
  size_t wl = 0;
  for (uint32_t i = 0; i < nwk; i++) {
    wcpu_s += wk1[i] - wk0[i];
    wl += (size_t)snprintf(wlist + wl, sizeof(wlist) - wl, "%s%.1f", i ? "," : "",
                           100.0 * (wk1[i] - wk0[i]) / secs);
  }
  if (!nwk && relay_pid)
    wcpu_s = p1.cpu_s - p0.cpu_s;
  /* --relay-pid2: the second relay's CPU added, its workers after the
   * first's in the list */
  double cpu1 = cpu;
  if (relay2.pid) {
    cpu = (relay_pid ? cpu : 0) + 100.0 * relay2_cpu_s / secs;
    wcpu_s += relay2_wcpu_s;
    for (uint32_t i = 0; i < relay2.nwk; i++)
      wl += (size_t)snprintf(wlist + wl, sizeof(wlist) - wl, "%s%.1f", wl ? "," : "",
                             100.0 * (relay2.wk1[i] - relay2.wk0[i]) / secs);
  }
  double us_per_frame = b.delivered ? wcpu_s * 1e6 / (double)b.delivered : 0;

  printf("wtbench pattern=%s sessions=%u size=%zu rate=%s duration=%.1fs\n", pat, sessions, b.size,
         rate > 0 ? "fixed" : "max", secs);
  if (rate > 0)
    printf("  target rate          %12.0f frames/s\n", rate);
  printf(
      "  offered              %12.0f frames/s  (%llu frames, %llu refused by full send queues)\n",
      (double)b.sent / secs, (unsigned long long)b.sent, (unsigned long long)b.send_blocked);
  printf("  delivered            %12.0f frames/s  (%llu frames)\n", (double)b.delivered / secs,
         (unsigned long long)b.delivered);
  printf("  delivered bandwidth  %12.1f Mbit/s of frames\n",
         (double)b.delivered * (double)b.size * 8 / secs / 1e6);
  printf("  loss                 %12.2f %%\n", loss);
  printf("  latency %s p50/p99/p99.9  %.0f / %.0f / %.0f us\n",
         b.pattern == P_ECHO ? "(round trip)" : "(one way)", p50, p99, p999);
  if (relay_pid)
    printf("  relay                %12.1f %% of one core, RSS %ld KiB\n", cpu1, p1.rss_kb);
  if (relay2.pid)
    printf("  second relay         %12.1f %% of one core; both: %.2f us per delivered frame\n",
           100.0 * relay2_cpu_s / secs, per_frame_us(cpu / 100 * secs, b.delivered));
  if (broker.pid)
    printf("  broker               %12.1f %% of one core, %.2f us per delivered frame\n",
           100.0 * broker_cpu_s / secs, per_frame_us(broker_cpu_s, b.delivered));
  if (relay_pid)
    printf("  relay workers        %12.1f %% of one core (each: %s), %.2f us per delivered frame\n",
           100.0 * wcpu_s / secs, nwk ? wlist : "-", us_per_frame);
  if (workers)
    printf("  placement            %12s on %u workers, %.1f sockets tried per worker\n", placement,
           workers, (double)place_tries / workers);
  printf("  client batching      %12.2f datagrams/recvmsg, %.2f packets/sendmsg\n", rx_per, tx_per);
  printf("{\"pattern\":\"%s\",\"sessions\":%u,\"size\":%zu,\"rate\":%.0f,\"duration_s\":%.3f,"
         "\"sent\":%llu,\"send_blocked\":%llu,\"delivered\":%llu,\"offered_fps\":%.0f,"
         "\"delivered_fps\":%.0f,\"loss_pct\":%.3f,\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,"
         "\"lat_p999_us\":%.1f,\"relay_cpu_pct\":%.1f,\"relay_rss_kb\":%ld,"
         "\"client_rx_per_recvmsg\":%.2f,\"client_tx_per_sendmsg\":%.2f,"
         "\"relay_workers_cpu_pct\":%.1f,\"relay_worker_cpu_pct\":[%s],"
         "\"relay_us_per_frame\":%.3f,\"workers\":%u,\"placement\":\"%s\"",
         pat, sessions, b.size, rate, secs, (unsigned long long)b.sent,
         (unsigned long long)b.send_blocked, (unsigned long long)b.delivered, (double)b.sent / secs,
         (double)b.delivered / secs, loss, p50, p99, p999, cpu, p1.rss_kb, rx_per, tx_per,
         100.0 * wcpu_s / secs, wlist, us_per_frame, workers, workers ? placement : "");
  /* relay_proc_us_per_frame: every thread of the relays (the federation's
   * publisher and libnats threads are not workers) */
  if (more)
    printf(",\"relays\":%d,\"relay1_cpu_pct\":%.1f,\"relay2_cpu_pct\":%.1f,"
           "\"relay_proc_us_per_frame\":%.3f,\"broker_cpu_pct\":%.1f,"
           "\"broker_us_per_frame\":%.3f",
           1 + (relay2.pid != 0), cpu1, 100.0 * relay2_cpu_s / secs,
           relay_pid ? per_frame_us(cpu / 100 * secs, b.delivered) : 0, 100.0 * broker_cpu_s / secs,
           per_frame_us(broker_cpu_s, b.delivered));
  if (per_second) {
    printf(",\"per_second\":[");
    for (uint32_t i = 0; i < MAX_SECONDS && i < (uint32_t)secs; i++)
      printf("%s%llu", i ? "," : "", (unsigned long long)b.per_sec[i]);
    printf("]");
  }
  printf("}\n");
  for (uint32_t i = 0; i < sessions; i++)
    wtc_close(b.s[i], 0, "wtbench done");
  run_all(&b, 200000000ull, NULL, NULL);
  for (uint32_t i = 0; i < b.ncs; i++)
    wtc_fini(b.cs[i]);
  bench_free(&b);
  return 0;
}
