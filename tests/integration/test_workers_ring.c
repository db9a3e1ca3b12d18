/*
 * The worker-pair frame rings end to end (the real relay, --workers 2),
 * with sessions placed on chosen workers: a client endpoint (one socket)
 * is made again with a new source port until the relay worker named in
 * the first byte of the connection ID it chose (quic.c) is the wanted one.
 *
 * - A room that lives on one worker floods without touching a ring: no
 *   frame pushed toward the idle worker, none dropped there as no_room
 *   (the directory's copy set; before it, every flood cost one ring copy
 *   per other worker, dropped by the consumer as no_room).
 * - A ring filled to its bound (--worker-ring-slots 4) by a flood from a
 *   session on worker 0 to one on worker 1 drops and counts
 *   (wtrelay_worker_ring_frames_dropped_total{reason="push_failed"}), the relay keeps
 *   running, the flooding sessions stay up, other sessions across the
 *   same workers exchange frames afterwards, and SIGTERM exits 0.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wtrelay/log.h"
#include "wtrelay/tls.h"
#include "wtrelay/wtc.h"

#include "relay_proc.h"

#define PLACE_TRIES 64

struct client {
  struct wtc c;
  struct wtc_session *s;
  uint8_t mac[6];
  uint32_t got; /* frames of the test's ethertype received */
};

static const uint8_t BC[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static void on_frame(void *user, struct wtc_session *s, const uint8_t *f, size_t len)
{
  struct client *cl = user;
  (void)s;
  if (len >= 14 && f[12] == 0x88 && f[13] == 0xb5)
    cl->got++;
}

static const struct wtc_ops ops = {.on_frame = on_frame};

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void poll_all(struct client **cl, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    wtc_poll(&cl[i]->c, 0);
}

static bool settled(void *arg)
{
  const struct wtc_session *s = arg;
  return s->state != WTC_CONNECTING;
}

static bool registered(void *arg)
{
  const struct wtc_session *s = arg;
  return s->state == WTC_REGISTERED || s->state == WTC_FAILED || s->state == WTC_CLOSED;
}

/* Opens a session to `path` on relay worker `want`, registered with MAC
 * 52:54:00:88:00:id. */
static void place(struct client *cl, const struct relay_proc *rp, const char *path, uint32_t want,
                  uint8_t id)
{
  char url[160];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", rp->port, path);
  for (int t = 0; t < PLACE_TRIES; t++) {
    cr_assert_eq(wtc_init(&cl->c, url, rp->hash, 1, &ops, cl), 0);
    cr_assert_eq(wtc_open(&cl->c, &cl->s), 0);
    cr_assert_eq(wtc_run(&cl->c, 10ull * 1000000000, settled, cl->s), 0, "no handshake");
    cr_assert_eq(cl->s->state, WTC_OPEN, "session refused (%d)", cl->s->status);
    const ngtcp2_cid *d = ngtcp2_conn_get_dcid(cl->s->qc->conn);
    if (d->datalen && d->data[0] == want) {
      const uint8_t m[6] = {0x52, 0x54, 0x00, 0x88, 0x00, id};
      memcpy(cl->mac, m, 6);
      cr_assert_eq(wtc_register(cl->s, cl->mac), 0);
      cr_assert_eq(wtc_run(&cl->c, 10ull * 1000000000, registered, cl->s), 0);
      cr_assert_eq(cl->s->state, WTC_REGISTERED, "not registered: %s", cl->s->last_error);
      return;
    }
    wtc_close(cl->s, 0, "placement");
    wtc_run(&cl->c, 20000000ull, NULL, NULL);
    wtc_fini(&cl->c);
  }
  cr_assert_fail("no connection landed on worker %u in %d tries", want, PLACE_TRIES);
}

static int send_to(struct client *cl, const uint8_t dst[6], size_t len, uint32_t seq)
{
  uint8_t f[1514];
  memcpy(f, dst, 6);
  memcpy(f + 6, cl->mac, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  for (size_t i = 14; i < len; i++)
    f[i] = (uint8_t)(seq + i);
  return wtc_send_frame(cl->s, f, len);
}

/* Worker w's ring frames: "pushed" (dir out), "popped" (dir in), or
 * dropped: "dropped" (not pushed), "no_room". */
static long long ring(const char *m, uint32_t w, const char *what)
{
  char series[128];
  if (strcmp(what, "pushed") == 0 || strcmp(what, "popped") == 0)
    snprintf(series, sizeof(series), "wtrelay_worker_ring_frames_total{worker=\"%u\",dir=\"%s\"}",
             w, what[1] == 'u' ? "out" : "in");
  else
    snprintf(series, sizeof(series),
             "wtrelay_worker_ring_frames_dropped_total{worker=\"%u\",reason=\"%s\"}", w,
             strcmp(what, "dropped") == 0 ? "push_failed" : what);
  return relay_proc_metric(m, series);
}

static char m[1 << 20];

/* A room on worker 0 only, worker 1 idle: 50 broadcasts reach the other
 * session, no frame enters a ring, worker 1 counts no no_room. */
Test(workers_ring, flood_in_a_room_on_one_worker_skips_the_idle_worker, .timeout = 120)
{
  struct relay_proc rp;
  log_set_level(LOG_WARN);
  const char *argv[] = {"--workers", "2", "--flood-rate", "0", NULL};
  relay_proc_start(&rp, true, argv);
  struct client *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
  place(a, &rp, "/lan", 0, 1);
  place(b, &rp, "/lan", 0, 2);
  struct client *all[] = {a, b};
  for (uint32_t k = 0; k < 50; k++) {
    cr_assert_eq(send_to(a, BC, 200, k), 0);
    poll_all(all, 2);
    usleep(1000);
  }
  uint64_t end = now_ms() + 5000;
  while (b->got < 50 && now_ms() < end) {
    poll_all(all, 2);
    usleep(500);
  }
  cr_assert_eq(b->got, 50, "broadcasts delivered on the worker: %u of 50", b->got);
  usleep(300000); /* the workers publish their counters every 100 ms */
  relay_proc_metrics(&rp, m, sizeof(m));
  cr_assert_eq(ring(m, 0, "pushed"), 0, "a flood was copied toward the idle worker");
  cr_assert_eq(ring(m, 1, "no_room"), 0, "the idle worker dropped frames of a room it lacks");
  cr_assert_geq(relay_proc_metric(m, "wtrelay_uplink_frames_skipped_total"), 50,
                "skipped uplink copies not counted");
  cr_assert_eq(
      relay_proc_metric(m, "wtrelay_switch_port_frames_total{kind=\"uplink\",dir=\"out\"}"), 0,
      "the switch counted skipped copies as frames out to an uplink");
  relay_proc_stop(&rp);
  wtc_fini(&a->c);
  wtc_fini(&b->c);
  free(a);
  free(b);
}

/* A 4-slot ring between the workers, flooded from worker 0 to worker 1
 * faster than worker 1 drains it. */
Test(workers_ring, full_ring_drops_counts_and_the_relay_carries_on, .timeout = 120)
{
  struct relay_proc rp;
  log_set_level(LOG_WARN);
  const char *argv[] = {"--workers", "2", "--worker-ring-slots", "4", "--flood-rate", "0", NULL};
  relay_proc_start(&rp, true, argv);
  struct client *cl[4];
  for (int i = 0; i < 4; i++)
    cr_assert_not_null(cl[i] = calloc(1, sizeof(struct client)));
  place(cl[0], &rp, "/lan", 0, 1);   /* the flooder */
  place(cl[1], &rp, "/lan", 1, 2);   /* its receiver across the ring */
  place(cl[2], &rp, "/other", 0, 3); /* another room on the same two workers */
  place(cl[3], &rp, "/other", 1, 4);

  /* bursts of broadcasts, many to one loop turn of worker 0 (GRO), each a
   * ring copy toward worker 1, until the ring has dropped some */
  uint32_t sent = 0;
  long long dropped = 0;
  uint64_t end = now_ms() + 20000, next_look = 0;
  while (now_ms() < end) {
    for (int k = 0; k < 64; k++)
      if (send_to(cl[0], BC, 1000, sent) == 0)
        sent++;
    poll_all(cl, 4);
    if (now_ms() >= next_look) {
      next_look = now_ms() + 250;
      relay_proc_metrics(&rp, m, sizeof(m));
      if ((dropped = ring(m, 0, "dropped")) > 0)
        break;
    }
  }
  cr_assert_gt(dropped, 0, "the full ring dropped nothing after %u frames", sent);
  long long pushed = ring(m, 0, "pushed");
  cr_assert_gt(pushed, 0, "nothing crossed the ring");
  /* drain, then: what crossed arrived, what did not was counted */
  end = now_ms() + 2000;
  while (now_ms() < end) {
    poll_all(cl, 4);
    usleep(500);
  }
  usleep(300000);
  relay_proc_metrics(&rp, m, sizeof(m));
  dropped = ring(m, 0, "dropped");
  pushed = ring(m, 0, "pushed");
  cr_assert_eq(ring(m, 1, "popped"), pushed, "pushed %lld, popped %lld", pushed,
               ring(m, 1, "popped"));
  cr_assert_gt(cl[1]->got, 0, "no broadcast crossed to worker 1");
  cr_assert_leq((long long)cl[1]->got, pushed, "more received than crossed the ring");
  cr_assert_lt(cl[1]->got, sent, "every frame arrived: the ring was never full");
  cr_assert_eq(relay_proc_metric(m, "wtrelay_workers"), 2);

  /* the flooding sessions are up, and other sessions across the same
   * workers exchange frames both ways, every one delivered */
  cr_assert_eq(cl[0]->s->state, WTC_REGISTERED);
  cr_assert_eq(cl[1]->s->state, WTC_REGISTERED);
  uint32_t got2 = cl[2]->got, got3 = cl[3]->got;
  for (uint32_t k = 0; k < 20; k++) {
    cr_assert_eq(send_to(cl[2], BC, 300, k), 0);
    cr_assert_eq(send_to(cl[3], BC, 300, k), 0);
    poll_all(cl, 4);
    usleep(2000);
  }
  end = now_ms() + 5000;
  while ((cl[3]->got - got3 < 20 || cl[2]->got - got2 < 20) && now_ms() < end) {
    poll_all(cl, 4);
    usleep(500);
  }
  cr_assert_eq(cl[3]->got - got3, 20, "worker 0 -> 1 after the flood: %u of 20", cl[3]->got - got3);
  cr_assert_eq(cl[2]->got - got2, 20, "worker 1 -> 0 after the flood: %u of 20", cl[2]->got - got2);
  relay_proc_stop(&rp);
  for (int i = 0; i < 4; i++) {
    wtc_fini(&cl[i]->c);
    free(cl[i]);
  }
}
