/*
 * The process's QUIC bounds with several workers (--workers 2): they hold
 * for the process, not per worker.
 *
 * - --max-unvalidated: 16 client sockets, each on its own port (the
 *   kernel's 4-tuple hash spreads them over the workers: checked, every
 *   worker read packets), send one real Initial each and never answer
 *   (handshakes that stay unvalidated for the 3 s timeout). With
 *   --retry never and --max-unvalidated 4, exactly 4 connections are
 *   accepted and 12 refused (wtrelay_quic_connections_total{accepted},
 *   wtrelay_quic_address_validation_total{refused_unvalidated_full},
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

#include "relay_proc.h"

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* GET /metrics into buf (NUL-terminated). */
static void metrics_get(const struct relay_proc *rp, char *buf, size_t cap)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(rp->ops_port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  cr_assert_eq(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = recv(fd, buf + n, cap - 1 - n, 0)) > 0)
    n += (size_t)r;
  buf[n] = '\0';
  close(fd);
}

/* The value of the sample line "series value", or -1. */
static long long metric(const char *text, const char *series)
{
  char pat[256];
  snprintf(pat, sizeof(pat), "\n%s ", series);
  const char *p = strstr(text, pat);
  return p ? atoll(p + strlen(pat)) : -1;
}

/* Every worker read packets (the clients reached each of them). */
static void assert_every_worker_read(const char *m, unsigned workers)
{
  for (unsigned i = 0; i < workers; i++) {
    char series[96];
    snprintf(series, sizeof(series), "wtrelay_worker_packets_in_total{worker=\"%u\"}", i);
    cr_assert_gt(metric(m, series), 0, "worker %u read no packet: the test did not spread", i);
  }
}

/* ---- one client Initial (a ClientHello nobody will follow up) ---- */

static void cb_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
  (void)ctx;
  rng_fill(dest, len);
}

static int cb_new_cid(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *u)
{
  (void)conn;
  (void)u;
  uint8_t b[NGTCP2_MAX_CIDLEN];
  rng_fill(b, cidlen);
  ngtcp2_cid_init(cid, b, cidlen);
  rng_fill(token, NGTCP2_STATELESS_RESET_TOKENLEN);
  return 0;
}

struct initial_conn {
  ngtcp2_conn *conn;
  ngtcp2_crypto_conn_ref ref;
};

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
  return ((struct initial_conn *)ref->user_data)->conn;
}

/* The first flight of a client from local to remote into buf: its length. */
static size_t initial(uint8_t *buf, size_t cap, const struct sockaddr_in *local,
                      const struct sockaddr_in *remote)
{
  ngtcp2_callbacks cb = {
      .client_initial = ngtcp2_crypto_client_initial_cb,
      .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
      .encrypt = ngtcp2_crypto_encrypt_cb,
      .decrypt = ngtcp2_crypto_decrypt_cb,
      .hp_mask = ngtcp2_crypto_hp_mask_cb,
      .recv_retry = ngtcp2_crypto_recv_retry_cb,
      .update_key = ngtcp2_crypto_update_key_cb,
      .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
      .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
      .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
      .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
      .rand = cb_rand,
      .get_new_connection_id = cb_new_cid,
  };
  uint8_t d[16], s[16];
  rng_fill(d, sizeof(d));
  rng_fill(s, sizeof(s));
  ngtcp2_cid dcid, scid;
  ngtcp2_cid_init(&dcid, d, sizeof(d));
  ngtcp2_cid_init(&scid, s, sizeof(s));
  ngtcp2_settings st;
  ngtcp2_settings_default(&st);
  st.initial_ts = now_ns();
  ngtcp2_transport_params tp;
  ngtcp2_transport_params_default(&tp);
  tp.initial_max_streams_uni = 3;
  tp.initial_max_data = 1 << 20;
  tp.max_datagram_frame_size = 65535;
  ngtcp2_path path = {.local = {.addr = (ngtcp2_sockaddr *)local, .addrlen = sizeof(*local)},
                      .remote = {.addr = (ngtcp2_sockaddr *)remote, .addrlen = sizeof(*remote)}};
  struct initial_conn o = {0};
  o.ref.get_conn = get_conn;
  o.ref.user_data = &o;
  cr_assert_eq(ngtcp2_conn_client_new(&o.conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &st,
                                      &tp, NULL, &o),
               0);
  gnutls_session_t tls = NULL;
  static const uint8_t pin[32];
  cr_assert_eq(tls_client_session_new(&tls, "localhost", pin, &o.ref), 0);
  ngtcp2_conn_set_tls_native_handle(o.conn, tls);
  ngtcp2_ssize w = ngtcp2_conn_write_pkt(o.conn, NULL, NULL, buf, cap, now_ns());
  ngtcp2_conn_del(o.conn);
  tls_session_free(tls);
  cr_assert_gt(w, 0);
  return (size_t)w;
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
    size_t n = initial(pkt, sizeof(pkt), &local, &relay);
    cr_assert_eq(sendto(fds[i], pkt, n, 0, (struct sockaddr *)&relay, sizeof(relay)), (ssize_t)n);
  }
  usleep(600 * 1000); /* well within the 3 s handshake timeout; snapshots every 100 ms */
  static char m[1 << 20];
  metrics_get(&rp, m, sizeof(m));
  assert_every_worker_read(m, WORKERS);
  long long acc = metric(m, "wtrelay_quic_connections_total{event=\"accepted\"}");
  long long ref =
      metric(m, "wtrelay_quic_address_validation_total{event=\"refused_unvalidated_full\"}");
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
  metrics_get(&rp, m, sizeof(m));
  assert_every_worker_read(m, WORKERS);
  cr_assert_eq(open, BOUND, "%d sessions open over %d workers, --max-sessions %d", open, WORKERS,
               BOUND);
  long long live = metric(m, "wtrelay_worker_sessions{worker=\"0\"}") +
                   metric(m, "wtrelay_worker_sessions{worker=\"1\"}");
  cr_assert_eq(live, BOUND, "the workers hold %lld connections", live);
  cr_assert_gt(metric(m, "wtrelay_quic_connections_total{event=\"refused_limit\"}"), 0);
  relay_proc_stop(&rp);
  for (int i = 0; i < N; i++)
    wtc_fini(&c[i]);
  free(c);
  free(s);
}
