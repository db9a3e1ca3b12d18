/*
 * server: process-level wiring of one worker: UDP socket -> quic -> h3 ->
 * relay. Nothing here is global, so more workers are a change of count.
 *
 * Shutdown (SIGINT/SIGTERM): stop accepting, send GOAWAY and a
 * CLOSE_WEBTRANSPORT_SESSION on every session, then CONNECTION_CLOSE on
 * every connection a moment later, then leave the loop: well within a
 * second.
 *
 * The QUIC socket binds --bind, "::" (dual-stack) by default. A host
 * without IPv6 (a kernel booted with ipv6.disable=1 or built without it, a
 * sandbox that refuses AF_INET6) fails that with EAFNOSUPPORT or
 * EADDRNOTAVAIL; then the default, and only the default, falls back to
 * 0.0.0.0 with a warning. An explicit --bind :: is a request for IPv6 and
 * fails like any other address. (net.ipv6.conf.*.disable_ipv6 does not
 * count: "::" still binds there and serves IPv4 through mapped addresses.)
 */
#include "wtrelay/server.h"

#include <errno.h>
#include <ifaddrs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "wtrelay/auth.h"
#include "wtrelay/container_of.h"
#include "wtrelay/filewatch.h"
#include "wtrelay/gateway.h"
#include "wtrelay/h3.h"
#include "wtrelay/io.h"
#include "wtrelay/log.h"
#include "wtrelay/metrics.h"
#include "wtrelay/ops.h"
#include "wtrelay/quic.h"
#include "wtrelay/relay.h"
#include "wtrelay/timeunit.h"
#include "wtrelay/worker.h"

#define SHUTDOWN_STEP_NS 150000000ull

struct server {
  const struct config *cfg;
  struct worker w;
  struct io_udp_sock *udp;
  char bind[64]; /* the address udp is bound to: cfg->bind or the fallback */
  struct quic_endpoint quic;
  struct h3_endpoint h3;
  struct relay relay;
  struct policy policy;
  struct hostaddr hostaddr; /* the host's local routes, followed live */
  struct gateway gw;
  bool gw_ok;
  struct ops ops;
  bool ops_ok;
  /* the certificate new connections get: the store's reference to a
   * shared object (tls.h); each connection holds its own reference through
   * its TLS session, so a replaced certificate lives exactly as long as
   * the last connection that started with it */
  struct tls_cert *cert;
  struct stat cert_st, key_st;
  struct timer cert_timer;
  uint64_t cert_reloads, cert_reload_failures, start_time;
  struct timer shutdown_timer, shutdown_deadline;
  int shutdown_phase;
  struct auth auth; /* tokens and origins (auth.c) */
};

/* Timers, by owner (grep timer_arm): every QUIC connection has its
 * loss/idle timer (quic.c; at most max_sessions connections), every h3
 * connection its close delay (h3.c; one per QUIC connection), every relay
 * peer its takeover deadline (relay.c; max_sessions peers), every TCP NAT
 * connection its connect/RTO/idle timer (nat_tcp.c; max_tcp_conns). UDP and
 * ICMP flows and DNS queries have none: the gateway's sweep ages them.
 * Fixed: the relay's sweep and aging, the lease writer, the gateway's
 * sweep, the ops sweep, the certificate poll and the two shutdown timers
 * (8), rounded up to SERVER_FIXED_TIMERS for fixed timers to come. A
 * failed arm is counted (wtrelay_timer_arm_failures_total). */
#define SERVER_TIMERS_PER_SESSION 3
#define SERVER_TIMERS_PER_TCP_CONN 1
#define SERVER_FIXED_TIMERS 64

uint32_t server_timers_needed(const struct config *cfg)
{
  uint64_t n = (uint64_t)cfg->max_sessions * SERVER_TIMERS_PER_SESSION +
               (uint64_t)cfg->max_tcp_conns * SERVER_TIMERS_PER_TCP_CONN + SERVER_FIXED_TIMERS;
  return n > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)n;
}

/* The NAT never reaches the relay's own addresses: a /32 deny for each. */
static void deny_own_addresses(struct policy *p)
{
  struct ifaddrs *ifa = NULL;
  if (getifaddrs(&ifa) < 0)
    return;
  for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
      policy_add_addr(p, ntohl(((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr.s_addr), 32,
                      false, true);
  freeifaddrs(ifa);
}

/* Every NAT flow is a socket: allow as many descriptors as the hard limit. */
static void raise_nofile(uint32_t need)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < need)
    log_warn("file descriptor limit is lower than the NAT bounds need", "limit=%llu need=%u",
             (unsigned long long)rl.rlim_cur, need);
}

static int gateway_setup(struct server *s)
{
  const struct config *cfg = s->cfg;
  struct gateway_params gp;
  memset(&gp, 0, sizeof(gp));
  memcpy(gp.mac, cfg->gateway_mac, 6);
  gp.netmask = cfg->prefix ? ~0u << (32 - cfg->prefix) : 0;
  gp.subnet = cfg->subnet;
  gp.ip = cfg->subnet + 2;
  gp.dns_ip = cfg->subnet + 3;
  gp.announce_dns = cfg->dns ? cfg->dns : gp.dns_ip;
  gp.mtu = (uint16_t)cfg->mtu;
  gp.lease_s = 86400;
  gp.max_rooms = cfg->max_rooms;
  gp.max_udp_flows = cfg->max_udp_flows;
  gp.max_udp_flows_per_vm = cfg->max_udp_flows_per_vm;
  gp.udp_timeout_ns = (uint64_t)cfg->udp_timeout_s * 1000000000ull;
  gp.max_icmp_flows = 256;
  gp.icmp_timeout_ns = 30ull * 1000000000ull;
  gp.max_tcp_conns = cfg->max_tcp_conns;
  gp.max_tcp_conns_per_vm = cfg->max_tcp_conns_per_vm;
  gp.max_udp_flows_per_client =
      cfg->max_udp_flows_per_client ? cfg->max_udp_flows_per_client : (cfg->max_udp_flows + 3) / 4;
  gp.max_tcp_conns_per_client =
      cfg->max_tcp_conns_per_client ? cfg->max_tcp_conns_per_client : (cfg->max_tcp_conns + 3) / 4;
  gp.max_tcp_pending_per_client = cfg->max_tcp_pending_per_client;
  gp.max_tcp_pending_per_vm = cfg->max_tcp_pending_per_vm;
  gp.nat_new_rate = cfg->nat_new_rate;
  gp.nat_new_burst = cfg->nat_new_burst;
  gp.tcp_idle_ns = (uint64_t)cfg->tcp_idle_timeout_s * NS_PER_S;
  gp.tcp_connect_timeout_ns = 10 * NS_PER_S;
  gp.max_dns_inflight = 1024;
  gp.dns_timeout_ns = 5ull * 1000000000ull;
  for (uint32_t i = 0; i < cfg->ndns_upstream; i++)
    if (io_sockaddr_parse(cfg->dns_upstream[i], cfg->dns_upstream_port[i],
                          &gp.upstream[gp.nupstreams], &gp.upstream_len[gp.nupstreams]) == 0)
      gp.nupstreams++;
  if (!cfg->ndns_upstream)
    dns_fwd_load_resolv_conf(&gp, "/etc/resolv.conf");
  gp.max_dns_inflight_per_vm = cfg->max_dns_inflight_per_vm;
  gp.max_icmp_flows_per_vm = cfg->max_icmp_flows_per_vm;
  policy_init(&s->policy);
  /* the start-up snapshot stays as a floor; hostaddr follows every change */
  deny_own_addresses(&s->policy);
  hostaddr_init(&s->hostaddr);
  int hrc = hostaddr_open(&s->hostaddr, &s->w.io);
  if (hrc < 0)
    log_warn("cannot follow the host's local addresses (rtnetlink): only those of start-up "
             "are refused",
             "err=\"%s\"", strerror(-hrc));
  else
    gp.hostaddr = &s->hostaddr;
  for (uint32_t i = 0; i < cfg->negress; i++)
    policy_add(&s->policy, cfg->egress[i].cidr, cfg->egress[i].allow);
  gp.policy = &s->policy;
  raise_nofile(cfg->max_udp_flows + gp.max_icmp_flows + cfg->max_tcp_conns + gp.max_dns_inflight +
               64);
  int rc = gateway_init(&s->gw, &gp, &s->relay.sw, &s->w.io, &s->w.timers, &s->w.now,
                        &relay_addr_ops, &s->relay);
  if (rc < 0) {
    hostaddr_fini(&s->hostaddr);
    return rc;
  }
  s->gw_ok = true;
  relay_set_gateway(&s->relay, &s->gw);
  char a[16];
  log_info("gateway", "ip=%s mac=%02x:%02x:%02x:%02x:%02x:%02x dns_upstreams=%u icmp_nat=%d",
           net_ip_str(gp.ip, a), gp.mac[0], gp.mac[1], gp.mac[2], gp.mac[3], gp.mac[4], gp.mac[5],
           gp.nupstreams, s->gw.icmp_ok);
  return 0;
}

static void on_turn(void *ctx, uint64_t now)
{
  struct server *s = ctx;
  quic_endpoint_turn(&s->quic, now);
}

static void shutdown_step(struct timer *t, uint64_t now)
{
  struct server *s = container_of(t, struct server, shutdown_timer);
  s->shutdown_phase++;
  if (s->shutdown_phase == 2) {
    quic_endpoint_shutdown(&s->quic, H3_NO_ERROR);
    timer_arm(&s->w.timers, &s->shutdown_timer, now + SHUTDOWN_STEP_NS);
  } else {
    /* CONNECTION_CLOSE packets were written last turn; flush and leave. */
    s->w.stop = true;
  }
}

static void cert_check(struct server *s, bool force);

/* --shutdown-timeout: whatever is still open then, we leave. */
static void shutdown_deadline(struct timer *t, uint64_t now)
{
  struct server *s = container_of(t, struct server, shutdown_deadline);
  (void)now;
  log_warn("shutdown timeout reached, leaving", "connections=%u", quic_endpoint_active(&s->quic));
  s->w.stop = true;
}

static void on_signal(void *ctx, int signo)
{
  struct server *s = ctx;
  if (signo == SIGHUP) {
    log_info("SIGHUP: checking the certificate", "%s", "");
    cert_check(s, true);
    auth_key_check(&s->auth, true);
    return;
  }
  if (signo != SIGINT && signo != SIGTERM)
    return;
  if (s->shutdown_phase) {
    s->w.stop = true; /* second signal: leave now */
    return;
  }
  log_info("stop signal received, closing sessions", "signal=%d sessions=%u", signo,
           quic_endpoint_active(&s->quic));
  s->shutdown_phase = 1;
  s->w.stopping = true;
  timer_arm(&s->w.timers, &s->shutdown_deadline,
            s->w.now + (uint64_t)s->cfg->shutdown_timeout_s * NS_PER_S);
  s->quic.accepting = false;
  h3_endpoint_shutdown(&s->h3, 0, "relay shutting down");
  timer_arm(&s->w.timers, &s->shutdown_timer, s->w.now + SHUTDOWN_STEP_NS);
}

/* ---- certificates ---- */

static const struct tls_cert *cert_cur(const struct server *s)
{
  return s->cert;
}

/* Puts a new certificate (a filled value, taken) in use: new connections
 * get it, live ones keep the one they hold a reference to. The store's
 * reference to the old one is dropped; it is freed now, or when the last
 * connection that uses it is deleted. */
static void cert_install(struct server *s, struct tls_cert *c, const char *why)
{
  struct tls_cert *shared = tls_cert_share(c);
  if (!shared) {
    tls_cert_fini(c);
    s->cert_reload_failures++;
    log_error("cannot keep a new certificate, keeping the old one", "err=%s", LOG_Q("no memory"));
    return;
  }
  struct tls_cert *old = s->cert;
  s->cert = shared;
  s->quic.cert = shared; /* the publish: an atomic exchange once several workers share it */
  tls_cert_unref(old);
  s->cert_reloads++;
  log_info("certificate in use changed", "why=%s sha256=%s not_after=%lld certificates_live=%u",
           LOG_Q(why), shared->sha256_hex, (long long)shared->not_after, tls_cert_live());
}

/* PEM mode: reload when either file changed (or forced by SIGHUP); a pair
 * that does not load or does not match keeps the old certificate. Ephemeral
 * mode: a new self-signed certificate a day before the old one expires. */
static void cert_check(struct server *s, bool force)
{
  const struct config *cfg = s->cfg;
  if (cfg->cert_pem[0]) {
    bool a = filewatch_changed(cfg->cert_pem, &s->cert_st);
    bool b = filewatch_changed(cfg->key_pem, &s->key_st);
    if (!a && !b && !force)
      return;
    struct tls_cert c;
    char err[256];
    if (tls_cert_load_pem(&c, cfg->cert_pem, cfg->key_pem, err, sizeof(err)) < 0) {
      s->cert_reload_failures++;
      log_error("certificate reload failed, keeping the old one", "cert=%s key=%s err=%s",
                LOG_Q(cfg->cert_pem), LOG_Q(cfg->key_pem), LOG_Q(err));
      return;
    }
    if (memcmp(c.sha256, cert_cur(s)->sha256, 32) == 0) {
      tls_cert_fini(&c);
      return;
    }
    cert_install(s, &c, force ? "reload" : "files changed");
    return;
  }
  if ((int64_t)time(NULL) < cert_cur(s)->not_after - 86400 && !force)
    return;
  struct tls_cert c;
  if (tls_cert_generate(&c, 13) < 0) {
    s->cert_reload_failures++;
    log_error("cannot generate a new ephemeral certificate", "%s", "");
    return;
  }
  cert_install(s, &c, "ephemeral rotation");
}

static void cert_timer_fn(struct timer *t, uint64_t now)
{
  struct server *s = container_of(t, struct server, cert_timer);
  cert_check(s, false);
  auth_key_check(&s->auth, false);
  timer_arm(&s->w.timers, &s->cert_timer, now + (uint64_t)s->cfg->cert_poll_s * NS_PER_S);
}

/* ---- ops routes ---- */

static void route_metrics(void *ctx, struct ops_buf *b)
{
  struct server *s = ctx;
  uint32_t rooms = 0;
  for (uint32_t i = 0; i < s->relay.max_rooms; i++)
    rooms += s->relay.rooms[i].used;
  struct metrics_src m = {
      .io = &s->w.io.ctr,
      .quic = &s->quic.ctr,
      .h3 = &s->h3.ctr,
      .relay = &s->relay,
      .gw = s->gw_ok ? &s->gw : NULL,
      .ops = &s->ops.ctr,
      .timers = &s->w.timers,
      .cert = cert_cur(s),
      .quic_conns = quic_endpoint_active(&s->quic),
      .rooms = rooms,
      .start_time = s->start_time,
      .cert_reloads = s->cert_reloads,
      .cert_reload_failures = s->cert_reload_failures,
      .certs_live = tls_cert_live(),
  };
  metrics_write(b, &m);
}

static bool route_ready(void *ctx)
{
  struct server *s = ctx;
  int64_t now = (int64_t)time(NULL);
  return !s->shutdown_phase && now >= cert_cur(s)->not_before && now < cert_cur(s)->not_after;
}

static void route_cert(void *ctx, struct ops_buf *b)
{
  struct server *s = ctx;
  const struct tls_cert *c = cert_cur(s);
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char enc[48];
  size_t o = 0;
  for (size_t i = 0; i < 32; i += 3) {
    uint32_t v = (uint32_t)c->sha256[i] << 16 | (i + 1 < 32 ? (uint32_t)c->sha256[i + 1] << 8 : 0) |
                 (i + 2 < 32 ? c->sha256[i + 2] : 0);
    enc[o++] = b64[(v >> 18) & 63];
    enc[o++] = b64[(v >> 12) & 63];
    enc[o++] = i + 1 < 32 ? b64[(v >> 6) & 63] : '=';
    enc[o++] = i + 2 < 32 ? b64[v & 63] : '=';
  }
  enc[o] = '\0';
  char when[32];
  time_t t = (time_t)c->not_after;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
  ops_buf_printf(b, "{\"sha256\":\"%s\",\"sha256_b64\":\"%s\",\"not_after\":\"%s\"}\n",
                 c->sha256_hex, enc, when);
}

static const struct ops_routes routes = {
    .metrics = route_metrics, .ready = route_ready, .cert_json = route_cert};

int server_new(struct server **out, const struct config *cfg, struct tls_cert *cert)
{
  int rc;
  struct server *s = calloc(1, sizeof(*s));
  if (!s)
    return -ENOMEM;
  s->cfg = cfg;
  s->cert = tls_cert_share(cert); /* taken */
  if (!s->cert) {
    free(s);
    return -ENOMEM;
  }
  s->start_time = (uint64_t)time(NULL);
  if (cfg->cert_pem[0]) {
    stat(cfg->cert_pem, &s->cert_st);
    stat(cfg->key_pem, &s->key_st);
  }
  struct io_params iop;
  io_params_default(&iop);
  /* QUIC, UDP and ICMP NAT, a socket per DNS query in flight */
  iop.max_udp_socks = 8 + cfg->max_udp_flows + 256 + 1024;
  if ((rc = worker_init(&s->w, 0, &iop, server_timers_needed(cfg))) < 0)
    goto fail;
  snprintf(s->bind, sizeof(s->bind), "%s", cfg->bind);
  rc = io_udp_open(&s->w.io, s->bind, cfg->port, quic_endpoint_on_packet, &s->quic, &s->udp);
  if ((rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL) && !cfg->bind_given &&
      strcmp(cfg->bind, "::") == 0) {
    log_warn("no IPv6 on this host, listening on IPv4 only", "bind=:: err=\"%s\" fallback=0.0.0.0",
             strerror(-rc));
    snprintf(s->bind, sizeof(s->bind), "0.0.0.0");
    rc = io_udp_open(&s->w.io, s->bind, cfg->port, quic_endpoint_on_packet, &s->quic, &s->udp);
  }
  if (rc < 0)
    goto fail_worker;
  if ((rc = relay_init(&s->relay, cfg, &s->w.timers, &s->w.now)) < 0)
    goto fail_worker;
  relay_set_io(&s->relay, &s->w.io);
  if ((rc = auth_init(&s->auth, cfg)) < 0) {
    relay_fini(&s->relay);
    goto fail_worker;
  }
  if (cfg->auth_key[0] || cfg->nallow_origin)
    relay_set_auth(&s->relay, &s->auth);
  if ((rc = gateway_setup(s)) < 0) {
    relay_fini(&s->relay);
    goto fail_worker;
  }
  if ((rc = h3_endpoint_init(&s->h3, true, cfg->max_sessions, &s->w.timers, &relay_h3_ops,
                             &s->relay)) < 0)
    goto fail_relay;
  struct quic_params qp;
  quic_params_default(&qp);
  qp.max_conns = cfg->max_sessions;
  qp.max_conns_per_ip = cfg->max_sessions_per_ip;
  qp.retry = (enum quic_retry)cfg->retry;
  qp.retry_threshold = cfg->retry_threshold;
  qp.max_unvalidated = cfg->max_unvalidated;
  if ((rc = quic_endpoint_init(&s->quic, &s->w, s->udp, s->cert, true, &qp, &h3_quic_ops, &s->h3)) <
      0)
    goto fail_h3;
  h3_endpoint_bind(&s->h3, &s->quic);
  timer_init(&s->shutdown_timer, shutdown_step);
  timer_init(&s->shutdown_deadline, shutdown_deadline);
  timer_init(&s->cert_timer, cert_timer_fn);
  if ((rc = timer_arm(&s->w.timers, &s->cert_timer,
                      s->w.now + (uint64_t)cfg->cert_poll_s * NS_PER_S)) < 0)
    goto fail_quic;
  if (cfg->http_listen[0]) {
    if ((rc = ops_init(&s->ops, &s->w.io, &s->w.timers, &s->w.now, cfg->http_listen,
                       cfg->ops_max_conns, cfg->cors_origin, &routes, s)) < 0) {
      log_error("cannot listen for operations HTTP", "http_listen=%s err=\"%s\"",
                LOG_Q(cfg->http_listen), strerror(-rc));
      goto fail_quic;
    }
    s->ops_ok = true;
  }
  s->w.turn = on_turn;
  s->w.turn_ctx = s;

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  if ((rc = io_signals(&s->w.io, &mask, on_signal, s)) < 0)
    goto fail_quic;
  *out = s;
  return 0;
fail_quic:
  quic_endpoint_fini(&s->quic);
fail_h3:
  h3_endpoint_fini(&s->h3);
fail_relay:
  if (s->gw_ok)
    gateway_fini(&s->gw);
  if (s->gw_ok)
    hostaddr_fini(&s->hostaddr);
  relay_fini(&s->relay);
fail_worker:
  auth_fini(&s->auth);
  worker_fini(&s->w);
fail:
  tls_cert_unref(s->cert);
  free(s);
  return rc;
}

uint16_t server_port(const struct server *s)
{
  return s->udp->port;
}

const char *server_bind(const struct server *s)
{
  return s->bind;
}

const struct tls_cert *server_cert(const struct server *s)
{
  return cert_cur(s);
}

int server_run(struct server *s)
{
  return worker_run(&s->w);
}

static void log_counters(struct server *s)
{
  const struct io_counters *c = &s->w.io.ctr;
  log_info("io counters",
           "rx_datagrams=%llu rx_bytes=%llu rx_completions=%llu rx_gro_batches=%llu "
           "rx_enobufs=%llu rx_truncated=%llu tx_packets=%llu tx_msgs=%llu tx_gso_msgs=%llu "
           "tx_errors=%llu tx_arena_full=%llu",
           (unsigned long long)c->rx_datagrams, (unsigned long long)c->rx_bytes,
           (unsigned long long)c->rx_completions, (unsigned long long)c->rx_gro_batches,
           (unsigned long long)c->rx_enobufs, (unsigned long long)c->rx_truncated,
           (unsigned long long)c->tx_packets, (unsigned long long)c->tx_msgs,
           (unsigned long long)c->tx_gso_msgs, (unsigned long long)c->tx_errors,
           (unsigned long long)c->tx_arena_full);
  const struct quic_counters *q = &s->quic.ctr;
  log_info("quic counters",
           "pkts_in=%llu dropped_unknown=%llu short_unknown=%llu accepted=%llu "
           "refused_limit=%llu refused_ip=%llu failed=%llu closed=%llu idle=%llu "
           "handshakes=%llu vn=%llu resets=%llu dgrams_in=%llu dgrams_out=%llu "
           "dgrams_direct=%llu dgrams_queued=%llu queue_full=%llu too_big=%llu lost=%llu "
           "anchors=%llu retries=%llu "
           "tokens_retry_ok=%llu tokens_regular_ok=%llu tokens_bad=%llu new_tokens=%llu "
           "refused_unvalidated=%llu bytes_in_unvalidated=%llu bytes_out_unvalidated=%llu "
           "trims=%llu",
           (unsigned long long)q->pkts_in, (unsigned long long)q->pkts_dropped_unknown,
           (unsigned long long)q->pkts_short_unknown, (unsigned long long)q->conns_accepted,
           (unsigned long long)q->conns_refused_limit, (unsigned long long)q->conns_refused_ip,
           (unsigned long long)q->conns_failed, (unsigned long long)q->conns_closed,
           (unsigned long long)q->conns_idle, (unsigned long long)q->handshakes,
           (unsigned long long)q->version_negotiations, (unsigned long long)q->stateless_resets,
           (unsigned long long)q->dgrams_in, (unsigned long long)q->dgrams_out,
           (unsigned long long)q->dgrams_direct, (unsigned long long)q->dgrams_queued,
           (unsigned long long)q->dgrams_queue_full, (unsigned long long)q->dgrams_too_big,
           (unsigned long long)q->dgrams_lost, (unsigned long long)q->anchors,
           (unsigned long long)q->retries_sent, (unsigned long long)q->tokens_retry_ok,
           (unsigned long long)q->tokens_regular_ok, (unsigned long long)q->tokens_bad,
           (unsigned long long)q->new_tokens_sent, (unsigned long long)q->conns_refused_unvalidated,
           (unsigned long long)q->bytes_in_unvalidated,
           (unsigned long long)q->bytes_out_unvalidated, (unsigned long long)q->malloc_trims);
  const struct h3_counters *h = &s->h3.ctr;
  log_info("h3 counters",
           "sessions_opened=%llu sessions_closed=%llu requests_rejected=%llu dgrams_in=%llu "
           "dgrams_out=%llu unknown_session=%llu bad_prefix=%llu streams_refused=%llu "
           "unknown_streams=%llu unknown_frames=%llu protocol_errors=%llu "
           "refused_room_control=%llu refused_path_too_long=%llu refused_query_too_long=%llu",
           (unsigned long long)h->sessions_opened, (unsigned long long)h->sessions_closed,
           (unsigned long long)h->requests_rejected, (unsigned long long)h->dgrams_in,
           (unsigned long long)h->dgrams_out, (unsigned long long)h->dgrams_unknown_session,
           (unsigned long long)h->dgrams_bad_prefix, (unsigned long long)h->streams_refused,
           (unsigned long long)h->unknown_streams, (unsigned long long)h->unknown_frames,
           (unsigned long long)h->protocol_errors, (unsigned long long)h->refused_room_control,
           (unsigned long long)h->refused_path_too_long,
           (unsigned long long)h->refused_query_too_long);
  relay_log_counters(&s->relay);
  if (s->gw_ok)
    gateway_log_counters(&s->gw);
}

void server_free(struct server *s)
{
  if (!s)
    return;
  log_counters(s);
  if (s->ops_ok)
    ops_fini(&s->ops);
  quic_endpoint_fini(&s->quic);
  h3_endpoint_fini(&s->h3);
  if (s->gw_ok)
    gateway_fini(&s->gw);
  if (s->gw_ok)
    hostaddr_fini(&s->hostaddr);
  relay_fini(&s->relay);
  auth_fini(&s->auth);
  worker_fini(&s->w);
  tls_cert_unref(s->cert); /* the connections dropped theirs above */
  free(s);
}
