/*
 * Several workers end to end: the real relay with --workers 2 and 4, and
 * 40 native sessions in one room, each from its own client socket so the
 * kernel's 4-tuple hash spreads them over every worker (checked on
 * /metrics: wtrelay_worker_sessions{worker="i"} > 0 for each). Every
 * session receives a broadcast from every other one (flooded across the
 * room's copies through the uplink ports and worker rings), unicast after
 * learning reaches exactly its destination, a 1514-byte frame (chunked
 * both ways) arrives byte-exact at sessions on other workers, addresses
 * come from one pool (40 distinct), and SIGTERM with sessions on every
 * worker exits 0. /metrics sums every worker: the switch's and the chunk
 * reassembly's counters equal what the clients sent, wherever their
 * sessions sit; each worker reports its loop (turns, busy time,
 * utilisation) and the steering mode is named. A worker that stops
 * turning its loop (the WTRELAY_TEST_STALL hook) fails /healthz and
 * /readyz until it turns again.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wtrelay/log.h"
#include "wtrelay/timeunit.h"
#include "wtrelay/tls.h"
#include "wtrelay/wtc.h"

#include "relay_proc.h"

#define NSESS 40

static void relay_start(struct relay_proc *rp, unsigned workers, const char *per_ip)
{
  char nw[16];
  snprintf(nw, sizeof(nw), "%u", workers);
  const char *argv[] = {"--workers", nw, "--max-sessions-per-ip", per_ip ? per_ip : "64", NULL};
  relay_proc_start(rp, true, argv);
}

/* The value of a sample that may be fractional, or -1. */
static double metric_f(const char *text, const char *series)
{
  char pat[256];
  snprintf(pat, sizeof(pat), "\n%s ", series);
  const char *p = strstr(text, pat);
  if (!p)
    return -1;
  return strtod(p + strlen(pat), NULL);
}

/* The sum of every worker's sample of a per-worker family: family{worker="i"<rest>}. */
static long long per_worker_sum(const char *text, const char *family, const char *rest,
                                unsigned workers)
{
  long long sum = 0;
  for (unsigned w = 0; w < workers; w++) {
    char series[160];
    snprintf(series, sizeof(series), "%s{worker=\"%u\"%s}", family, w, rest);
    long long v = relay_proc_metric(text, series);
    cr_assert_geq(v, 0, "no %s", series);
    sum += v;
  }
  return sum;
}

/* The status code of GET path on the ops listener, 0 when it does not
 * answer within 2 s. */
static int http_status(const struct relay_proc *rp, const char *path)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval tv = {.tv_sec = 2};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(rp->ops_port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int code = 0;
  char req[128], resp[256];
  int n =
      snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && send(fd, req, (size_t)n, 0) == n) {
    ssize_t r = recv(fd, resp, sizeof(resp) - 1, 0);
    if (r > 0) {
      resp[r] = '\0';
      sscanf(resp, "HTTP/1.1 %d", &code);
    }
  }
  close(fd);
  return code;
}

/* What each session received: broadcasts by source, unicasts, the last frame. */
struct got {
  uint8_t from[NSESS];
  uint32_t bcast, ucast, big;
  size_t last_len;
  uint8_t last[WTC_MAX_FRAME];
};

struct client {
  struct wtc c;
  struct wtc_session *s;
  struct got got;
};

static void mac_of(uint32_t i, uint8_t mac[6])
{
  const uint8_t m[6] = {0x52, 0x54, 0x00, 0x77, 0x00, (uint8_t)(0x10 + i)};
  memcpy(mac, m, 6);
}

static const uint8_t BC[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static void on_frame(void *user, struct wtc_session *s, const uint8_t *f, size_t len)
{
  struct got *g = user;
  (void)s;
  if (len < 14)
    return;
  g->last_len = len;
  memcpy(g->last, f, len < sizeof(g->last) ? len : sizeof(g->last));
  uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
  if (type == 0x88b5 && memcmp(f, BC, 6) == 0 && f[11] >= 0x10 && f[11] < 0x10 + NSESS) {
    if (!g->from[f[11] - 0x10]++)
      g->bcast++;
  } else if (type == 0x88b6) {
    g->ucast++;
  } else if (type == 0x88b7) {
    g->big++;
  }
}

static const struct wtc_ops ops = {.on_frame = on_frame};

static size_t frame(uint8_t *b, const uint8_t dst[6], const uint8_t src[6], uint16_t type,
                    size_t len, uint8_t seed)
{
  memcpy(b, dst, 6);
  memcpy(b + 6, src, 6);
  b[12] = (uint8_t)(type >> 8);
  b[13] = (uint8_t)type;
  for (size_t i = 14; i < len; i++)
    b[i] = (uint8_t)(seed + i * 31);
  return len;
}

/* Turns every client's loop until done() or timeout_ms. */
static bool run_all(struct client *cl, uint32_t n, uint64_t timeout_ms,
                    bool (*done)(struct client *, uint32_t))
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t end = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + timeout_ms;
  for (;;) {
    if (done && done(cl, n))
      return true;
    for (uint32_t i = 0; i < n; i++)
      wtc_poll(&cl[i].c, 0);
    usleep(500);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 >= end)
      return done ? done(cl, n) : true;
  }
}

static bool all_open(struct client *cl, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    if (cl[i].s->state != WTC_OPEN && cl[i].s->state != WTC_REGISTERED)
      return false;
  return true;
}

static bool all_registered(struct client *cl, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    if (cl[i].s->state != WTC_REGISTERED)
      return false;
  return true;
}

static bool all_broadcasts(struct client *cl, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    if (cl[i].got.bcast < n - 1)
      return false;
  return true;
}

static bool all_unicasts(struct client *cl, uint32_t n)
{
  for (uint32_t i = 1; i < n; i++)
    if (cl[i].got.ucast < 1)
      return false;
  return true;
}

static bool all_big(struct client *cl, uint32_t n)
{
  for (uint32_t i = 1; i < n; i++)
    if (cl[i].got.big < 1)
      return false;
  return true;
}

static void room_across_workers(unsigned workers)
{
  struct relay_proc rp;
  log_set_level(LOG_WARN);
  relay_start(&rp, workers, NULL);
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/lan", rp.port);
  struct client *cl = calloc(NSESS, sizeof(*cl));
  cr_assert_not_null(cl);
  for (uint32_t i = 0; i < NSESS; i++) {
    cr_assert_eq(wtc_init(&cl[i].c, url, rp.hash, 1, &ops, &cl[i].got), 0);
    cr_assert_eq(wtc_open(&cl[i].c, &cl[i].s), 0);
  }
  cr_assert(run_all(cl, NSESS, 15000, all_open), "sessions did not open");
  for (uint32_t i = 0; i < NSESS; i++) {
    uint8_t mac[6];
    mac_of(i, mac);
    cr_assert_eq(wtc_register(cl[i].s, mac), 0);
  }
  cr_assert(run_all(cl, NSESS, 15000, all_registered), "sessions did not register");

  /* one pool for the room: 40 distinct addresses */
  for (uint32_t i = 0; i < NSESS; i++)
    for (uint32_t j = i + 1; j < NSESS; j++)
      cr_assert(memcmp(cl[i].s->ip, cl[j].s->ip, 4) != 0, "sessions %u and %u share an address", i,
                j);

  /* sessions on every worker; the common families sum every worker's
   * counters (snapshots at most 100 ms old) */
  static char m[1 << 20];
  run_all(cl, NSESS, 300, NULL);
  relay_proc_metrics(&rp, m, sizeof(m));
  cr_assert_eq(relay_proc_metric(m, "wtrelay_quic_connections_accepted_total"), NSESS,
               "accepted connections summed over workers");
  cr_assert_eq(relay_proc_metric(m, "wtrelay_quic_connections"), NSESS,
               "live connections over workers");
  long long total = 0;
  for (unsigned w = 0; w < workers; w++) {
    char series[64];
    snprintf(series, sizeof(series), "wtrelay_worker_sessions{worker=\"%u\"}", w);
    long long v = relay_proc_metric(m, series);
    cr_assert_gt(v, 0, "no session on worker %u (%lld)", w, v);
    total += v;
  }
  cr_assert_eq(total, NSESS);

  /* a broadcast from every session reaches every other one */
  uint8_t f[1514], src[6], dst[6];
  for (uint32_t i = 0; i < NSESS; i++) {
    mac_of(i, src);
    size_t len = frame(f, BC, src, 0x88b5, 60, (uint8_t)i);
    cr_assert_eq(wtc_send_frame(cl[i].s, f, len), 0);
  }
  cr_assert(run_all(cl, NSESS, 10000, all_broadcasts), "not every broadcast arrived");
  for (uint32_t i = 0; i < NSESS; i++) {
    cr_assert_eq(cl[i].got.from[i], 0, "session %u got its own broadcast", i);
    for (uint32_t j = 0; j < NSESS; j++)
      cr_assert_leq(cl[i].got.from[j], 1, "session %u got %u copies from %u", i, cl[i].got.from[j],
                    j);
  }

  /* unicast after learning: 0 -> every other session, each gets exactly its own */
  mac_of(0, src);
  for (uint32_t j = 1; j < NSESS; j++) {
    mac_of(j, dst);
    size_t len = frame(f, dst, src, 0x88b6, 100, (uint8_t)j);
    cr_assert_eq(wtc_send_frame(cl[0].s, f, len), 0);
    if (j % 8 == 0)
      run_all(cl, NSESS, 20, NULL);
  }
  cr_assert(run_all(cl, NSESS, 10000, all_unicasts), "not every unicast arrived");
  run_all(cl, NSESS, 200, NULL);
  for (uint32_t j = 1; j < NSESS; j++)
    cr_assert_eq(cl[j].got.ucast, 1, "session %u got %u unicasts", j, cl[j].got.ucast);
  cr_assert_eq(cl[0].got.ucast, 0);

  /* 1514 bytes, chunked both ways, to every session (some on other workers): byte-exact */
  for (uint32_t j = 1; j < NSESS; j++) {
    mac_of(j, dst);
    frame(f, dst, src, 0x88b7, 1514, (uint8_t)(j + 100));
    cr_assert_eq(wtc_send_frame(cl[0].s, f, 1514), 0);
    if (j % 4 == 0)
      run_all(cl, NSESS, 20, NULL);
  }
  cr_assert(run_all(cl, NSESS, 10000, all_big), "not every 1514-byte frame arrived");
  run_all(cl, NSESS, 200, NULL);
  for (uint32_t j = 1; j < NSESS; j++) {
    mac_of(j, dst);
    frame(f, dst, src, 0x88b7, 1514, (uint8_t)(j + 100));
    cr_assert_eq(cl[j].got.big, 1);
    cr_assert_eq(cl[j].got.last_len, 1514, "session %u: %zu bytes", j, cl[j].got.last_len);
    cr_assert_arr_eq(cl[j].got.last, f, 1514, "session %u: the 1514-byte frame differs", j);
  }
  cr_assert_gt(cl[0].s->chunks_out, 0, "the client should have chunked 1514 bytes");

  /* frames crossed workers: the rings carried them, none dropped */
  relay_proc_metrics(&rp, m, sizeof(m));
  long long pushed = 0, popped = 0;
  for (unsigned w = 0; w < workers; w++) {
    char series[96];
    snprintf(series, sizeof(series), "wtrelay_worker_ring_frames_total{worker=\"%u\",dir=\"out\"}",
             w);
    pushed += relay_proc_metric(m, series);
    snprintf(series, sizeof(series), "wtrelay_worker_ring_frames_total{worker=\"%u\",dir=\"in\"}",
             w);
    popped += relay_proc_metric(m, series);
    snprintf(series, sizeof(series),
             "wtrelay_worker_ring_frames_dropped_total{worker=\"%u\",reason=\"push_failed\"}", w);
    cr_assert_eq(relay_proc_metric(m, series), 0, "worker %u dropped ring frames", w);
  }
  cr_assert_gt(pushed, 0, "no frame crossed a worker ring");
  cr_assert_eq(pushed, popped);

  /* the switch and the reassembly summed over workers: every frame the
   * clients sent entered a switch through a session's (local) port once,
   * 40 broadcasts + 39 unicasts + 39 chunked frames; every frame popped
   * from a ring entered its room's copy through an uplink port; the
   * 1514-byte frames were reassembled from exactly the chunks client 0
   * sent. (Snapshots are at most 100 ms old: wait a little.) */
  run_all(cl, NSESS, 300, NULL);
  relay_proc_metrics(&rp, m, sizeof(m));
  const long long sent = NSESS + 2 * (NSESS - 1);
  long long no_room =
      per_worker_sum(m, "wtrelay_worker_ring_frames_dropped_total", ",reason=\"no_room\"", workers);
  cr_assert_eq(relay_proc_metric(m, "wtrelay_switch_port_frames_total{kind=\"local\",dir=\"in\"}"),
               sent, "frames from sessions into the switches, summed over workers");
  cr_assert_eq(relay_proc_metric(m, "wtrelay_switch_port_frames_total{kind=\"uplink\",dir=\"in\"}"),
               popped - no_room, "frames from other workers' copies");
  cr_assert_eq(relay_proc_metric(m, "wtrelay_switch_frames_total{dir=\"in\"}"),
               sent + popped - no_room, "frames switched, summed over workers");
  cr_assert_eq(relay_proc_metric(m, "wtrelay_frames_total{dir=\"in\"}"), sent);
  cr_assert_eq(relay_proc_metric(m, "wtrelay_chunk_frames_completed_total"), NSESS - 1,
               "chunked frames reassembled, summed over workers");
  cr_assert_eq(relay_proc_metric(m, "wtrelay_chunks_received_total"),
               (long long)cl[0].s->chunks_out, "chunks in over workers vs chunks sent");
  cr_assert_eq(relay_proc_metric(m, "wtrelay_sessions"), NSESS, "bavy sessions over workers");
  cr_assert_geq(relay_proc_metric(m, "wtrelay_switch_mac_entries"), NSESS,
                "MACs learned over workers");
  cr_assert_eq(relay_proc_metric(m, "wtrelay_timers_capacity") % workers, 0,
               "every worker's heap counted");
  /* each worker's loop */
  for (unsigned w = 0; w < workers; w++) {
    char series[96];
    snprintf(series, sizeof(series), "wtrelay_worker_turns_total{worker=\"%u\"}", w);
    cr_assert_gt(relay_proc_metric(m, series), 0);
    snprintf(series, sizeof(series), "wtrelay_worker_busy_seconds_total{worker=\"%u\"}", w);
    cr_assert_gt(metric_f(m, series), 0, "worker %u: no busy time", w);
    snprintf(series, sizeof(series), "wtrelay_worker_loop_utilisation{worker=\"%u\"}", w);
    double u = metric_f(m, series);
    cr_assert(u >= 0 && u <= 1, "worker %u utilisation %f", w, u);
  }
  /* one steering mode, a multi-worker one */
  cr_assert_eq(relay_proc_metric(m, "wtrelay_steer_mode{mode=\"single\"}"), 0);
  cr_assert_eq(relay_proc_metric(m, "wtrelay_steer_mode{mode=\"bpf\"}") +
                   relay_proc_metric(m, "wtrelay_steer_mode{mode=\"reuseport_hash\"}"),
               1);
  cr_assert_eq(relay_proc_metric(m, "wtrelay_steer_handoffs_total{dir=\"out\"}"),
               per_worker_sum(m, "wtrelay_worker_handoffs_total", ",dir=\"out\"", workers));

  /* SIGTERM with sessions on every worker: exit 0 */
  relay_proc_stop(&rp);
  for (uint32_t i = 0; i < NSESS; i++)
    wtc_fini(&cl[i].c);
  free(cl);
}

Test(workers_e2e, room_across_two_workers, .timeout = 120)
{
  room_across_workers(2);
}

Test(workers_e2e, room_across_four_workers, .timeout = 120)
{
  room_across_workers(4);
}

static bool all_settled(struct client *cl, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    if (cl[i].s->state == WTC_CONNECTING)
      return false;
  return true;
}

/* --max-sessions-per-ip counts one address's connections over every
 * worker: 12 client sockets from 127.0.0.1 (spread by the kernel's hash),
 * a bound of 5: exactly 5 sessions open. */
Test(workers_e2e, per_address_bound_over_workers, .timeout = 60)
{
  enum { N = 12, BOUND = 5 };
  struct relay_proc rp;
  log_set_level(LOG_WARN);
  relay_start(&rp, 2, "5");
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/lan", rp.port);
  struct client *cl = calloc(N, sizeof(*cl));
  cr_assert_not_null(cl);
  for (uint32_t i = 0; i < N; i++) {
    cr_assert_eq(wtc_init(&cl[i].c, url, rp.hash, 1, &ops, &cl[i].got), 0);
    cr_assert_eq(wtc_open(&cl[i].c, &cl[i].s), 0);
  }
  cr_assert(run_all(cl, N, 15000, all_settled), "connections did not settle");
  run_all(cl, N, 500, NULL);
  uint32_t open = 0;
  for (uint32_t i = 0; i < N; i++)
    open += cl[i].s->state == WTC_OPEN;
  cr_assert_eq(open, BOUND, "%u sessions open from one address, bound %u", open, BOUND);
  static char m[1 << 20];
  run_all(cl, N, 300, NULL);
  relay_proc_metrics(&rp, m, sizeof(m));
  cr_assert_eq(relay_proc_metric(m, "wtrelay_quic_connections_refused_total{reason=\"per_ip\"}"),
               N - BOUND);
  relay_proc_stop(&rp);
  for (uint32_t i = 0; i < N; i++)
    wtc_fini(&cl[i].c);
  free(cl);
}

/* /healthz and /readyz with a stuck worker: worker 1 blocks its thread for
 * 4 s, 2 s after start (WTRELAY_TEST_STALL, read at start). Both probes
 * answer 200 before, 503 once it has not turned for 2 s, and 200 again
 * when it turns; its loop utilisation over the window of the stall shows
 * it busy. */
Test(workers_e2e, stalled_worker_fails_healthz_then_recovers, .timeout = 60)
{
  struct relay_proc rp;
  log_set_level(LOG_WARN);
  setenv("WTRELAY_TEST_STALL", "1:4000:2", 1);
  relay_start(&rp, 2, NULL);
  unsetenv("WTRELAY_TEST_STALL");
  cr_assert_eq(http_status(&rp, "/healthz"), 200, "healthy before the stall");
  cr_assert_eq(http_status(&rp, "/readyz"), 200, "ready before the stall");
  int code = 0, ready = 0;
  for (int i = 0; i < 80 && code != 503; i++) {
    usleep(100000);
    code = http_status(&rp, "/healthz");
  }
  cr_assert_eq(code, 503, "/healthz did not fail while worker 1 stalled");
  ready = http_status(&rp, "/readyz");
  cr_assert_eq(ready, 503, "/readyz should fail with a worker stalled");
  for (int i = 0; i < 80 && code != 200; i++) {
    usleep(100000);
    code = http_status(&rp, "/healthz");
  }
  cr_assert_eq(code, 200, "/healthz did not recover once worker 1 turned again");
  cr_assert_eq(http_status(&rp, "/readyz"), 200, "/readyz did not recover");
  static char m[1 << 20];
  double u = -1;
  for (int i = 0; i < 20 && u < 0.5; i++) {
    relay_proc_metrics(&rp, m, sizeof(m));
    u = metric_f(m, "wtrelay_worker_loop_utilisation{worker=\"1\"}");
    usleep(100000);
  }
  cr_assert_geq(u, 0.5, "worker 1's utilisation over the stall: %f", u);
  cr_assert_lt(metric_f(m, "wtrelay_worker_loop_utilisation{worker=\"0\"}"), 0.5);
  relay_proc_stop(&rp);
}
