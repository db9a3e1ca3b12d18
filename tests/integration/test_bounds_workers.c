/*
 * The process's QUIC bounds with several workers (--workers 2): they hold
 * for the process, not per worker.
 *
 * - --max-unvalidated: 16 client sockets, each on its own port (the
 *   kernel's 4-tuple hash spreads them over the workers: checked, every
 *   worker read packets), send one real Initial each and never answer
 *   (handshakes that stay unvalidated for the 3 s timeout). With
 *   --retry never and --max-unvalidated 4, exactly 4 connections are
 *   accepted and 12 refused (wtrelay_quic_connections_accepted_total,
 *   wtrelay_quic_connections_refused_total{reason="unvalidated_full"},
 *   summed over the workers). Per worker it would be up to 8.
 * - --max-sessions: 12 native clients (12 sockets) against --max-sessions
 *   6: exactly 6 sessions open (per worker it would be up to 12), the
 *   others refused (refused_limit > 0), and packets read on every worker.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wtrelay/log.h"
#include "wtrelay/rng.h"
#include "wtrelay/tls.h"
#include "wtrelay/wtc.h"

#include "../common/quic_initial.h"
#include "relay_proc.h"

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Every worker read packets (the clients reached each of them). */
static void assert_every_worker_read(const char *m, unsigned workers)
{
  for (unsigned i = 0; i < workers; i++) {
    char series[96];
    snprintf(series, sizeof(series), "wtrelay_worker_packets_in_total{worker=\"%u\"}", i);
    cr_assert_gt(relay_proc_metric(m, series), 0,
                 "worker %u read no packet: the test did not spread", i);
  }
}

Test(bounds_workers, max_unvalidated_over_workers, .timeout = 60)
{
  enum { N = 16, BOUND = 4, WORKERS = 2 };
  struct relay_proc rp;
  log_set_level(LOG_WARN);
  const char *argv[] = {"--workers", "2", "--retry", "never", "--max-unvalidated", "4", NULL};
  relay_proc_start(&rp, true, argv);
  struct sockaddr_in relay = {
      .sin_family = AF_INET, .sin_port = htons(rp.port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int fds[N];
  for (int i = 0; i < N; i++) {
    fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(local);
    cr_assert_eq(bind(fds[i], (struct sockaddr *)&local, sizeof(local)), 0);
    getsockname(fds[i], (struct sockaddr *)&local, &l);
    uint8_t pkt[1500];
    size_t n = quic_client_initial(pkt, sizeof(pkt), &local, &relay);
    cr_assert_gt(n, 0);
    cr_assert_eq(sendto(fds[i], pkt, n, 0, (struct sockaddr *)&relay, sizeof(relay)), (ssize_t)n);
  }
  usleep(600 * 1000); /* well within the 3 s handshake timeout; snapshots every 100 ms */
  static char m[1 << 20];
  relay_proc_metrics(&rp, m, sizeof(m));
  assert_every_worker_read(m, WORKERS);
  long long acc = relay_proc_metric(m, "wtrelay_quic_connections_accepted_total");
  long long ref =
      relay_proc_metric(m, "wtrelay_quic_connections_refused_total{reason=\"unvalidated_full\"}");
  cr_assert_eq(acc, BOUND, "%lld unvalidated connections accepted over %d workers, bound %d", acc,
               WORKERS, BOUND);
  cr_assert_eq(ref, N - BOUND, "%lld refused, expected %d", ref, N - BOUND);
  for (int i = 0; i < N; i++)
    close(fds[i]);
  relay_proc_stop(&rp);
}

Test(bounds_workers, max_sessions_over_workers, .timeout = 60)
{
  enum { N = 12, BOUND = 6, WORKERS = 2 };
  struct relay_proc rp;
  log_set_level(LOG_WARN);
  const char *argv[] = {
      "--workers", "2", "--max-sessions", "6", "--max-sessions-per-ip", "64", "--max-unvalidated",
      "6",         NULL};
  relay_proc_start(&rp, true, argv);
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/lan", rp.port);
  struct wtc *c = calloc(N, sizeof(*c));
  struct wtc_session **s = calloc(N, sizeof(*s));
  cr_assert(c && s);
  for (int i = 0; i < N; i++) {
    cr_assert_eq(wtc_init(&c[i], url, rp.hash, 1, NULL, NULL), 0);
    cr_assert_eq(wtc_open(&c[i], &s[i]), 0);
  }
  uint64_t end = now_ns() + 4000000000ull;
  while (now_ns() < end) {
    for (int i = 0; i < N; i++)
      wtc_poll(&c[i], 0);
    usleep(500);
  }
  int open = 0;
  for (int i = 0; i < N; i++)
    open += s[i]->state == WTC_OPEN;
  static char m[1 << 20];
  relay_proc_metrics(&rp, m, sizeof(m));
  assert_every_worker_read(m, WORKERS);
  cr_assert_eq(open, BOUND, "%d sessions open over %d workers, --max-sessions %d", open, WORKERS,
               BOUND);
  long long live = relay_proc_metric(m, "wtrelay_worker_sessions{worker=\"0\"}") +
                   relay_proc_metric(m, "wtrelay_worker_sessions{worker=\"1\"}");
  cr_assert_eq(live, BOUND, "the workers hold %lld connections", live);
  cr_assert_gt(relay_proc_metric(m, "wtrelay_quic_connections_refused_total{reason=\"limit\"}"), 0);
  relay_proc_stop(&rp);
  for (int i = 0; i < N; i++)
    wtc_fini(&c[i]);
  free(c);
  free(s);
}
