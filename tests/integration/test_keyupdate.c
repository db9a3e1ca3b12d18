/*
 * The relay frees a connection's TLS session once the handshake is done
 * (quic.c, conn_release_tls): end to end, a session whose relay side has
 * no TLS session left still does QUIC key updates (two in a row: the
 * second is refused by ngtcp2 until the relay has answered in the first
 * one's key phase), still answers heartbeats after each, and still closes
 * cleanly both ways: a client close, and the relay's shutdown closing a
 * second session (the relay must exit 0). No timing assertions: waits are
 * generous bounds on events.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wtrelay/log.h"
#include "wtrelay/quic.h"
#include "wtrelay/wtc.h"

#include "relay_proc.h"

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const struct wtc_ops ops = {0};

struct cl {
  struct wtc c;
  struct wtc_session *s;
};

/* Turns the client until done(s) or 10 s; true when done. */
static bool run_until(struct cl *cl, bool (*done)(const struct wtc_session *, uint32_t),
                      uint32_t arg)
{
  uint64_t end = now_ms() + 10000;
  while (now_ms() < end) {
    if (done(cl->s, arg))
      return true;
    wtc_poll(&cl->c, 0);
    usleep(500);
  }
  return done(cl->s, arg);
}

static bool is_open(const struct wtc_session *s, uint32_t unused)
{
  (void)unused;
  return s->state == WTC_OPEN;
}
static bool is_registered(const struct wtc_session *s, uint32_t unused)
{
  (void)unused;
  return s->state == WTC_REGISTERED;
}
static bool is_closed(const struct wtc_session *s, uint32_t unused)
{
  (void)unused;
  return s->state == WTC_CLOSED || s->state == WTC_FAILED;
}

static void open_registered(struct cl *cl, const struct relay_proc *rp, uint8_t k)
{
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/keys", rp->port);
  memset(cl, 0, sizeof(*cl));
  cr_assert_eq(wtc_init(&cl->c, url, rp->hash, 1, &ops, cl), 0);
  cr_assert_eq(wtc_open_path(&cl->c, NULL, &cl->s), 0);
  cr_assert(run_until(cl, is_open, 0), "session %u did not open", k);
  const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x6b, 0x00, k};
  cr_assert_eq(wtc_register(cl->s, mac), 0);
  cr_assert(run_until(cl, is_registered, 0), "session %u did not register", k);
}

static long long metric(const struct relay_proc *rp, const char *series)
{
  static char text[1 << 17];
  relay_proc_metrics(rp, text, sizeof(text));
  return relay_proc_metric(text, series);
}

/* The workers' counters reach /metrics in 100 ms snapshots: poll. */
static long long metric_at_least(const struct relay_proc *rp, const char *series, long long want)
{
  long long v = 0;
  for (uint64_t end = now_ms() + 10000; now_ms() < end; usleep(20000))
    if ((v = metric(rp, series)) >= want)
      break;
  return v;
}

Test(keyupdate, without_tls_session_key_update_and_clean_close)
{
  struct relay_proc rp;
  relay_proc_start(&rp, true, NULL);
  static struct cl a, b;
  open_registered(&a, &rp, 1);
  open_registered(&b, &rp, 2);
  cr_assert_eq(metric_at_least(&rp, "wtrelay_quic_tls_sessions_released_total", 2), 2,
               "the relay still holds the TLS sessions");

  for (uint32_t round = 1; round <= 2; round++) {
    /* ngtcp2 allows the next update 3 PTOs after the last one was
     * confirmed, with its keys made when a packet is read or written:
     * heartbeats keep packets going meanwhile */
    int rc = -EAGAIN;
    uint64_t next_hb = 0;
    for (uint64_t end = now_ms() + 10000; rc == -EAGAIN && now_ms() < end;) {
      rc = quic_conn_key_update(a.s->qc);
      if (rc == -EAGAIN && now_ms() >= next_hb) {
        wtc_heartbeat(a.s);
        next_hb = now_ms() + 50;
      }
      wtc_poll(&a.c, 0);
      usleep(500);
    }
    cr_assert_eq(rc, 0, "key update %u not started: %s", round, strerror(-rc));
    /* control messages are datagrams, which may be lost: repeat */
    uint32_t acks = a.s->heartbeat_acks;
    bool answered = false;
    for (uint64_t end = now_ms() + 10000; !answered && now_ms() < end;) {
      cr_assert_eq(wtc_heartbeat(a.s), 0);
      for (uint64_t next = now_ms() + 200; !answered && now_ms() < next; usleep(500)) {
        wtc_poll(&a.c, 0);
        answered = a.s->heartbeat_acks > acks;
      }
    }
    cr_assert(answered, "no HeartbeatAck after key update %u", round);
  }
  /* the second one could only start once the relay used the first one's
   * keys: the relay updated both directions without GnuTLS */

  /* a clean close from the client */
  wtc_close(a.s, 0, "done");
  cr_assert(run_until(&a, is_closed, 0), "the client's close did not finish");
  cr_assert_geq(metric_at_least(&rp, "wtrelay_quic_connections_closed_total", 1), 1);
  cr_assert_eq(metric(&rp, "wtrelay_quic_connections_failed_total"), 0);

  /* the relay's close: shutdown closes b, the relay exits 0 */
  kill(rp.pid, SIGTERM);
  cr_assert(run_until(&b, is_closed, 0), "the relay's close did not reach the client");
  relay_proc_stop(&rp);
  wtc_fini(&a.c);
  wtc_fini(&b.c);
}
