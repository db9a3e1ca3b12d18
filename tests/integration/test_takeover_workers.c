/*
 * Takeover of a MAC across workers, end to end: the real relay with
 * --workers 2 and 4. Client A (a child process) registers MAC m; client B
 * opens sessions (each from a new client socket, so the kernel's hash or
 * the steering program places it afresh) until the relay puts it on
 * another worker than A (the first byte of the server's connection ID
 * names the worker), then registers m.
 *
 * - dead holder: A is SIGKILLed (no CONNECTION_CLOSE, like a client whose
 *   network changed): B gets Assigned with A's address within 3 s, and the
 *   relay counts one takeover by the holder's worker (A's session closed)
 *   and one "released" verdict on B's.
 * - live holder: A keeps turning its loop (it acknowledges the probe): B
 *   gets the Error "MAC address already registered by another session",
 *   and A keeps its session (heartbeats answered after the refusal).
 *
 * Before this, B was refused at once in both cases (no local holder to
 * probe) until A's session timed out.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include "wtrelay/quic.h"
#include "wtrelay/timeunit.h"
#include "wtrelay/tls.h"
#include "wtrelay/wtc.h"

#include "relay_proc.h"

static const uint8_t MAC[6] = {0x52, 0x54, 0x00, 0x7b, 0x00, 0x01};

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Turns c's loop until s reaches `want` (or fails, or gets an Error when
 * stop_on_error), at most timeout_ms. */
static bool run_until(struct wtc *c, struct wtc_session *s, enum wtc_state want, bool stop_on_error,
                      uint64_t timeout_ms)
{
  uint64_t end = now_ms() + timeout_ms;
  while (now_ms() < end) {
    if (s->state == want || s->state == WTC_FAILED || s->state == WTC_CLOSED)
      break;
    if (stop_on_error && s->errors)
      break;
    wtc_poll(c, 2 * NS_PER_MS);
  }
  return s->state == want;
}

/* The worker the relay put s on (the first byte of its connection ID). */
static int worker_of(struct wtc_session *s)
{
  uint8_t cid[32];
  size_t n = quic_conn_dcid(s->qc, cid, sizeof(cid));
  return n == QUIC_SCID_LEN ? cid[0] : -1;
}

/* Client A in a child process: registers MAC, reports "worker ip" on
 * `out`, then turns its loop (acknowledging everything) and, for every
 * byte read on `cmd`, sends a heartbeat and reports "acks state" once it
 * is answered (or after 2 s). */
struct holder {
  pid_t pid;
  int cmd, out;
  int worker;
  uint8_t ip[4];
};

static void holder_main(const char *url, const uint8_t *hash, int cmd, int out)
{
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  static struct wtc c;
  struct wtc_session *s;
  if (wtc_init(&c, url, hash, 1, NULL, NULL) < 0 || wtc_open(&c, &s) < 0)
    _exit(2);
  if (!run_until(&c, s, WTC_OPEN, false, 10000))
    _exit(3);
  int w = worker_of(s);
  wtc_register(s, MAC);
  if (!run_until(&c, s, WTC_REGISTERED, true, 10000))
    _exit(4);
  dprintf(out, "%d %u.%u.%u.%u\n", w, s->ip[0], s->ip[1], s->ip[2], s->ip[3]);
  fcntl(cmd, F_SETFL, O_NONBLOCK);
  for (;;) {
    wtc_poll(&c, 2 * NS_PER_MS);
    char b;
    if (read(cmd, &b, 1) == 1) {
      uint32_t acks = s->heartbeat_acks;
      wtc_heartbeat(s);
      uint64_t end = now_ms() + 2000;
      while (s->heartbeat_acks == acks && now_ms() < end)
        wtc_poll(&c, 2 * NS_PER_MS);
      dprintf(out, "%u %s\n", s->heartbeat_acks - acks, wtc_state_name(s->state));
    }
  }
}

static void holder_start(struct holder *h, const char *url, const uint8_t *hash)
{
  int c[2], o[2];
  cr_assert_eq(pipe(c), 0);
  cr_assert_eq(pipe(o), 0);
  h->pid = fork();
  cr_assert_geq(h->pid, 0);
  if (h->pid == 0) {
    close(c[1]);
    close(o[0]);
    holder_main(url, hash, c[0], o[1]);
  }
  close(c[0]);
  close(o[1]);
  h->cmd = c[1];
  h->out = o[0];
  char line[128] = "";
  struct pollfd pf = {.fd = h->out, .events = POLLIN};
  cr_assert_eq(poll(&pf, 1, 15000), 1, "client A did not register");
  ssize_t n = read(h->out, line, sizeof(line) - 1);
  cr_assert_gt(n, 0, "client A did not register");
  line[n] = '\0';
  unsigned a, b, cc, d;
  cr_assert_eq(sscanf(line, "%d %u.%u.%u.%u", &h->worker, &a, &b, &cc, &d), 5, "A said: %s", line);
  h->ip[0] = (uint8_t)a, h->ip[1] = (uint8_t)b, h->ip[2] = (uint8_t)cc, h->ip[3] = (uint8_t)d;
  cr_assert_geq(h->worker, 0);
}

/* Heartbeats A got answered after a poke: > 0 while its session lives. */
static unsigned holder_poke(struct holder *h, char *state, size_t cap)
{
  cr_assert_eq(write(h->cmd, "x", 1), 1);
  char line[128] = "";
  struct pollfd pf = {.fd = h->out, .events = POLLIN};
  cr_assert_eq(poll(&pf, 1, 5000), 1, "client A did not answer");
  ssize_t n = read(h->out, line, sizeof(line) - 1);
  cr_assert_gt(n, 0);
  line[n] = '\0';
  unsigned acks = 0;
  char st[32] = "";
  sscanf(line, "%u %31s", &acks, st);
  snprintf(state, cap, "%s", st);
  return acks;
}

/* Opens B's session on a worker other than `avoid`: a new client socket
 * per attempt until the relay places it elsewhere. */
static struct wtc_session *open_elsewhere(struct wtc *c, const char *url, const uint8_t *hash,
                                          int avoid, int *worker)
{
  for (int attempt = 0; attempt < 64; attempt++) {
    struct wtc_session *s;
    cr_assert_eq(wtc_init(c, url, hash, 1, NULL, NULL), 0);
    cr_assert_eq(wtc_open(c, &s), 0);
    cr_assert(run_until(c, s, WTC_OPEN, false, 10000), "client B did not open");
    *worker = worker_of(s);
    cr_assert_geq(*worker, 0);
    if (*worker != avoid)
      return s;
    wtc_close(s, 0, "same worker");
    for (int i = 0; i < 20; i++)
      wtc_poll(c, NS_PER_MS);
    wtc_fini(c);
  }
  cr_assert_fail("64 client sockets all landed on worker %d", avoid);
  return NULL;
}

static void relay_start_workers(struct relay_proc *rp, unsigned workers)
{
  char nw[16];
  snprintf(nw, sizeof(nw), "%u", workers);
  const char *argv[] = {"--workers", nw, NULL};
  relay_proc_start(rp, true, argv);
}

static void dead_holder(unsigned workers)
{
  struct relay_proc rp;
  log_set_level(LOG_WARN);
  relay_start_workers(&rp, workers);
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/take", rp.port);
  struct holder a;
  holder_start(&a, url, rp.hash);
  static struct wtc c;
  int wb;
  struct wtc_session *b = open_elsewhere(&c, url, rp.hash, a.worker, &wb);
  cr_log_info("workers=%u: A on worker %d, B on worker %d", workers, a.worker, wb);

  kill(a.pid, SIGKILL);
  waitpid(a.pid, NULL, 0);
  uint64_t t0 = now_ms();
  cr_assert_eq(wtc_register(b, MAC), 0);
  bool ok = run_until(&c, b, WTC_REGISTERED, true, 5000);
  uint64_t ms = now_ms() - t0;
  cr_assert(ok, "B was not assigned after %llu ms (state %s, error \"%s\")", (unsigned long long)ms,
            wtc_state_name(b->state), b->last_error);
  cr_assert_lt(ms, 3000, "Register -> Assigned took %llu ms", (unsigned long long)ms);
  cr_assert_eq(memcmp(b->ip, a.ip, 4), 0, "B got %u.%u.%u.%u, A had %u.%u.%u.%u", b->ip[0],
               b->ip[1], b->ip[2], b->ip[3], a.ip[0], a.ip[1], a.ip[2], a.ip[3]);
  cr_log_info("workers=%u: dead holder taken over in %llu ms", workers, (unsigned long long)ms);

  /* counted: one Register asked, one released verdict, the holder's
   * worker took the MAC over (closed A's session); snapshots are at most
   * 100 ms old */
  static char m[1 << 20];
  uint64_t end = now_ms() + 2000;
  do {
    for (int i = 0; i < 50; i++)
      wtc_poll(&c, 2 * NS_PER_MS);
    relay_proc_metrics(&rp, m, sizeof(m));
  } while (relay_proc_metric(m, "wtrelay_takeovers_total{result=\"taken_over\"}") < 1 &&
           now_ms() < end);
  cr_assert_eq(relay_proc_metric(m, "wtrelay_takeover_remote_asks_total{dir=\"out\"}"), 1);
  cr_assert_eq(relay_proc_metric(m, "wtrelay_takeover_remote_results_total{result=\"released\"}"),
               1);
  cr_assert_eq(relay_proc_metric(m, "wtrelay_takeover_remote_asks_total{dir=\"in\"}"), workers - 1);
  cr_assert_eq(relay_proc_metric(m, "wtrelay_takeovers_total{result=\"taken_over\"}"), 1,
               "A's session was not taken over on its worker");
  cr_assert_eq(relay_proc_metric(m, "wtrelay_takeover_control_dropped_total"), 0);
  cr_assert_eq(relay_proc_metric(m, "wtrelay_control_refused_total{reason=\"mac_busy\"}"), 0);

  /* B works: a heartbeat is answered */
  uint32_t acks = b->heartbeat_acks;
  wtc_heartbeat(b);
  end = now_ms() + 2000;
  while (b->heartbeat_acks == acks && now_ms() < end)
    wtc_poll(&c, 2 * NS_PER_MS);
  cr_assert_gt(b->heartbeat_acks, acks, "B's heartbeat was not answered");
  wtc_fini(&c);
  relay_proc_stop(&rp);
}

static void live_holder(unsigned workers)
{
  struct relay_proc rp;
  log_set_level(LOG_WARN);
  relay_start_workers(&rp, workers);
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/take", rp.port);
  struct holder a;
  holder_start(&a, url, rp.hash);
  static struct wtc c;
  int wb;
  struct wtc_session *b = open_elsewhere(&c, url, rp.hash, a.worker, &wb);
  cr_log_info("workers=%u: A on worker %d, B on worker %d", workers, a.worker, wb);

  uint64_t t0 = now_ms();
  cr_assert_eq(wtc_register(b, MAC), 0);
  run_until(&c, b, WTC_REGISTERED, true, 5000);
  uint64_t ms = now_ms() - t0;
  cr_assert_neq(b->state, WTC_REGISTERED, "B took the MAC of a live session");
  cr_assert_gt(b->errors, 0, "B got no Error in %llu ms", (unsigned long long)ms);
  cr_assert_str_eq(b->last_error, "MAC address already registered by another session");
  cr_assert_lt(ms, 3000, "refused after %llu ms", (unsigned long long)ms);

  char st[32];
  unsigned n = holder_poke(&a, st, sizeof(st));
  cr_assert_gt(n, 0, "A's heartbeat was not answered after the probe");
  cr_assert_str_eq(st, "registered", "A is %s", st);

  static char m[1 << 20];
  uint64_t end = now_ms() + 2000;
  do {
    for (int i = 0; i < 50; i++)
      wtc_poll(&c, 2 * NS_PER_MS);
    relay_proc_metrics(&rp, m, sizeof(m));
  } while (relay_proc_metric(m, "wtrelay_takeover_remote_results_total{result=\"holder_alive\"}") <
               1 &&
           now_ms() < end);
  cr_assert_eq(
      relay_proc_metric(m, "wtrelay_takeover_remote_results_total{result=\"holder_alive\"}"), 1);
  cr_assert_eq(relay_proc_metric(m, "wtrelay_takeovers_total{result=\"holder_alive\"}"), 1);
  cr_assert_eq(relay_proc_metric(m, "wtrelay_takeovers_total{result=\"taken_over\"}"), 0);
  cr_assert_eq(relay_proc_metric(m, "wtrelay_control_refused_total{reason=\"mac_busy\"}"), 1);

  /* after the probe's deadline A still holds its session */
  usleep(2500 * 1000);
  n = holder_poke(&a, st, sizeof(st));
  cr_assert_gt(n, 0, "A's heartbeat was not answered 2.5 s after the refusal");
  cr_assert_str_eq(st, "registered");
  kill(a.pid, SIGKILL);
  waitpid(a.pid, NULL, 0);
  wtc_fini(&c);
  relay_proc_stop(&rp);
}

Test(takeover_workers, dead_holder_two_workers, .timeout = 90)
{
  dead_holder(2);
}

Test(takeover_workers, dead_holder_four_workers, .timeout = 90)
{
  dead_holder(4);
}

Test(takeover_workers, live_holder_two_workers, .timeout = 90)
{
  live_holder(2);
}

Test(takeover_workers, live_holder_four_workers, .timeout = 90)
{
  live_holder(4);
}
