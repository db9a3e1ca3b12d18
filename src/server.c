/*
 * server: process-level wiring of one worker: UDP socket -> quic -> h3 ->
 * relay. Nothing here is global, so more workers are a change of count.
 *
 * Shutdown (SIGINT/SIGTERM): stop accepting, send GOAWAY and a
 * CLOSE_WEBTRANSPORT_SESSION on every session, then CONNECTION_CLOSE on
 * every connection a moment later, then leave the loop: well within a
 * second.
 */
#include "wtrelay/server.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/h3.h"
#include "wtrelay/io.h"
#include "wtrelay/log.h"
#include "wtrelay/quic.h"
#include "wtrelay/relay.h"
#include "wtrelay/worker.h"

#define container_of(p, T, m) ((T *)(void *)((char *)(p) - offsetof(T, m)))
#define SHUTDOWN_STEP_NS 150000000ull

struct server {
  const struct config *cfg;
  const struct tls_cert *cert;
  struct worker w;
  struct io_udp_sock *udp;
  struct quic_endpoint quic;
  struct h3_endpoint h3;
  struct relay relay;
  struct timer shutdown_timer;
  int shutdown_phase;
};

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

static void on_signal(void *ctx, int signo)
{
  struct server *s = ctx;
  if (signo != SIGINT && signo != SIGTERM)
    return; /* SIGHUP: certificate reload arrives with the operations issue */
  if (s->shutdown_phase) {
    s->w.stop = true; /* second signal: leave now */
    return;
  }
  log_info("stop signal received, closing sessions", "signal=%d sessions=%u", signo,
           quic_endpoint_active(&s->quic));
  s->shutdown_phase = 1;
  s->w.stopping = true;
  s->quic.accepting = false;
  h3_endpoint_shutdown(&s->h3, 0, "relay shutting down");
  timer_arm(&s->w.timers, &s->shutdown_timer, s->w.now + SHUTDOWN_STEP_NS);
}

int server_new(struct server **out, const struct config *cfg, const struct tls_cert *cert)
{
  int rc;
  struct server *s = calloc(1, sizeof(*s));
  if (!s)
    return -ENOMEM;
  s->cfg = cfg;
  s->cert = cert;
  struct io_params iop;
  io_params_default(&iop);
  if ((rc = worker_init(&s->w, 0, &iop, cfg->max_sessions * 3 + 16)) < 0)
    goto fail;
  if ((rc = io_udp_open(&s->w.io, cfg->bind, cfg->port, quic_endpoint_on_packet, &s->quic,
                        &s->udp)) < 0)
    goto fail_worker;
  if ((rc = relay_init(&s->relay, cfg, &s->w.timers, &s->w.now)) < 0)
    goto fail_worker;
  if ((rc = h3_endpoint_init(&s->h3, true, cfg->max_sessions, &s->w.timers, &relay_h3_ops,
                             &s->relay)) < 0)
    goto fail_relay;
  struct quic_params qp;
  quic_params_default(&qp);
  qp.max_conns = cfg->max_sessions;
  qp.max_conns_per_ip = cfg->max_sessions_per_ip;
  if ((rc = quic_endpoint_init(&s->quic, &s->w, s->udp, cert, true, &qp, &h3_quic_ops,
                               &s->h3)) < 0)
    goto fail_h3;
  h3_endpoint_bind(&s->h3, &s->quic);
  timer_init(&s->shutdown_timer, shutdown_step);
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
  relay_fini(&s->relay);
fail_worker:
  worker_fini(&s->w);
fail:
  free(s);
  return rc;
}

uint16_t server_port(const struct server *s) { return s->udp->port; }

int server_run(struct server *s) { return worker_run(&s->w); }

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
           "dgrams_direct=%llu dgrams_queued=%llu queue_full=%llu too_big=%llu lost=%llu",
           (unsigned long long)q->pkts_in, (unsigned long long)q->pkts_dropped_unknown,
           (unsigned long long)q->pkts_short_unknown, (unsigned long long)q->conns_accepted,
           (unsigned long long)q->conns_refused_limit, (unsigned long long)q->conns_refused_ip,
           (unsigned long long)q->conns_failed, (unsigned long long)q->conns_closed,
           (unsigned long long)q->conns_idle, (unsigned long long)q->handshakes,
           (unsigned long long)q->version_negotiations, (unsigned long long)q->stateless_resets,
           (unsigned long long)q->dgrams_in, (unsigned long long)q->dgrams_out,
           (unsigned long long)q->dgrams_direct, (unsigned long long)q->dgrams_queued,
           (unsigned long long)q->dgrams_queue_full, (unsigned long long)q->dgrams_too_big,
           (unsigned long long)q->dgrams_lost);
  const struct h3_counters *h = &s->h3.ctr;
  log_info("h3 counters",
           "sessions_opened=%llu sessions_closed=%llu requests_rejected=%llu dgrams_in=%llu "
           "dgrams_out=%llu unknown_session=%llu bad_prefix=%llu streams_refused=%llu "
           "unknown_streams=%llu unknown_frames=%llu protocol_errors=%llu",
           (unsigned long long)h->sessions_opened, (unsigned long long)h->sessions_closed,
           (unsigned long long)h->requests_rejected, (unsigned long long)h->dgrams_in,
           (unsigned long long)h->dgrams_out, (unsigned long long)h->dgrams_unknown_session,
           (unsigned long long)h->dgrams_bad_prefix, (unsigned long long)h->streams_refused,
           (unsigned long long)h->unknown_streams, (unsigned long long)h->unknown_frames,
           (unsigned long long)h->protocol_errors);
  relay_log_counters(&s->relay);
}

void server_free(struct server *s)
{
  if (!s)
    return;
  log_counters(s);
  quic_endpoint_fini(&s->quic);
  h3_endpoint_fini(&s->h3);
  relay_fini(&s->relay);
  worker_fini(&s->w);
  free(s);
}
