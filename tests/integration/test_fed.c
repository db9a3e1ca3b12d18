/*
 * Rooms across relays (--nats): two relays on loopback (two workers each)
 * share one nats-server (Debian's, started here on a free port with
 * JetStream in a temporary directory). Native clients (the wtc library) on
 * both relays in one room exchange broadcasts and unicasts, 1514-byte
 * chunked frames included, byte-exact and exactly once; another room
 * stays isolated across the relays; NATS stopped and restarted leaves
 * local traffic alone and cross-relay traffic resumes; a second relay with
 * the same --relay-id refuses to start.
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
#include <unistd.h>

#include "wtrelay/log.h"
#include "wtrelay/timeunit.h"
#include "wtrelay/tls.h"
#include "wtrelay/wtc.h"

#include "pcap_read.h"
#include "relay_proc.h"

#define NATS_BIN "/usr/sbin/nats-server" /* Debian's package */
#define MAXS 4

/* ---- nats-server ---- */

struct nats_proc {
  pid_t pid;
  uint16_t port;
  char dir[64];
  char url[64];
};

static bool tcp_up(uint16_t port)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {
      .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

/* Starts nats-server on n->port (a free one when 0) with JetStream in n->dir. */
static void nats_start(struct nats_proc *n)
{
  cr_assert_eq(access(NATS_BIN, X_OK), 0, "nats-server missing: scripts/install-deps.sh");
  if (!n->port) {
    n->port = relay_proc_free_port(SOCK_STREAM);
    snprintf(n->dir, sizeof(n->dir), "/tmp/wtrelay-nats-XXXXXX");
    cr_assert_not_null(mkdtemp(n->dir));
    snprintf(n->url, sizeof(n->url), "nats://127.0.0.1:%u", n->port);
  }
  char port[16];
  snprintf(port, sizeof(port), "%u", n->port);
  n->pid = fork();
  cr_assert_geq(n->pid, 0);
  if (n->pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int devnull = open("/dev/null", 1);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl(NATS_BIN, NATS_BIN, "-js", "-sd", n->dir, "-a", "127.0.0.1", "-p", port, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 500 && !tcp_up(n->port); i++)
    usleep(10000);
  cr_assert(tcp_up(n->port), "nats-server did not listen on %u", n->port);
}

static void nats_stop(struct nats_proc *n)
{
  if (n->pid <= 0)
    return;
  kill(n->pid, SIGTERM);
  int st;
  waitpid(n->pid, &st, 0);
  n->pid = 0;
}

static void nats_cleanup(struct nats_proc *n)
{
  nats_stop(n);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", n->dir);
  cr_assert_eq(system(cmd), 0);
}

/* ---- relays and clients ---- */

struct got {
  uint32_t frames;
  size_t last_len;
  uint8_t last[WTC_MAX_FRAME];
};

static void on_frame(void *user, struct wtc_session *s, const uint8_t *frame, size_t len)
{
  struct got *g = &((struct got *)user)[s->idx];
  g->frames++;
  g->last_len = len;
  memcpy(g->last, frame, len < sizeof(g->last) ? len : sizeof(g->last));
}

static const struct wtc_ops ops = {.on_frame = on_frame};

/* One client library instance: sessions in one room on one relay. */
struct side {
  struct wtc c;
  struct wtc_session *s[MAXS];
  struct got got[MAXS];
  uint32_t n;
};

static void mac_of(uint32_t i, uint8_t mac[6])
{
  const uint8_t m[6] = {0x52, 0x54, 0x00, 0x6f, 0x00, (uint8_t)(0x10 + i)};
  memcpy(mac, m, 6);
}

struct want {
  struct side *sd;
  enum wtc_state st;
};

static bool all_in(void *arg)
{
  struct want *w = arg;
  for (uint32_t i = 0; i < w->sd->n; i++)
    if (w->sd->s[i]->state != w->st)
      return false;
  return true;
}

/* n sessions on relay rp in room; session i gets mac_of(base + i). */
static void side_up(struct side *sd, const struct relay_proc *rp, const char *room, uint32_t n,
                    uint32_t base)
{
  char url[128];
  memset(sd, 0, sizeof(*sd));
  snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", rp->port, room);
  cr_assert_eq(wtc_init(&sd->c, url, rp->hash, MAXS, &ops, sd->got), 0);
  sd->n = n;
  for (uint32_t i = 0; i < n; i++)
    cr_assert_eq(wtc_open(&sd->c, &sd->s[i]), 0);
  struct want w = {sd, WTC_OPEN};
  cr_assert_eq(wtc_run(&sd->c, 10000 * NS_PER_MS, all_in, &w), 0, "sessions did not open");
  for (uint32_t i = 0; i < n; i++) {
    uint8_t mac[6];
    mac_of(base + i, mac);
    cr_assert_eq(wtc_register(sd->s[i], mac), 0);
  }
  w.st = WTC_REGISTERED;
  cr_assert_eq(wtc_run(&sd->c, 10000 * NS_PER_MS, all_in, &w), 0, "sessions did not register");
}

#define NSIDES 4

/* Runs every side's loop in turns for ms milliseconds, or until pred. */
static bool run_all(struct side **sides, uint64_t ms, bool (*pred)(void *), void *arg)
{
  for (uint64_t t = 0; t < ms; t += 10 * NSIDES) {
    for (int i = 0; i < NSIDES; i++)
      if (sides[i])
        wtc_run(&sides[i]->c, 10 * NS_PER_MS, NULL, NULL);
    if (pred && pred(arg))
      return true;
  }
  return pred ? pred(arg) : true;
}

struct at_least {
  struct side *sd;
  uint32_t idx, n;
};

static bool reached(void *arg)
{
  struct at_least *a = arg;
  return a->sd->got[a->idx].frames >= a->n;
}

/* The relays of the running test, for a failure's report. */
static const struct relay_proc *relays[2];
static void relay_dump(const struct relay_proc *rp);

static void wait_frames(struct side **all, struct side *sd, uint32_t idx, uint32_t n)
{
  struct at_least a = {sd, idx, n};
  if (!run_all(all, 5000, reached, &a))
    for (int i = 0; i < 2; i++)
      if (relays[i])
        relay_dump(relays[i]);
  cr_assert(reached(&a), "session %u got %u frames, expected %u", idx, sd->got[idx].frames, n);
}

static size_t frame(uint8_t *b, const uint8_t dst[6], const uint8_t src[6], size_t len,
                    uint8_t seed)
{
  memcpy(b, dst, 6);
  memcpy(b + 6, src, 6);
  b[12] = 0x88;
  b[13] = 0xb5;
  for (size_t i = 14; i < len; i++)
    b[i] = (uint8_t)(seed + i * 31);
  return len;
}

static const uint8_t BC[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* --mac-aging for the relays of the next world_up (NULL: the default). */
static const char *mac_aging;

static void relay_fed_start(struct relay_proc *rp, const struct nats_proc *n, const char *id)
{
  /* two workers each, unless FED_WORKERS says otherwise (test_fed_w1) */
  const char *workers = getenv("FED_WORKERS") ? getenv("FED_WORKERS") : "2";
  const char *argv[] = {"--nats",
                        n->url,
                        "--relay-id",
                        id,
                        "--workers",
                        workers,
                        "--flood-rate",
                        "0",
                        mac_aging ? "--mac-aging" : NULL,
                        mac_aging,
                        NULL};
  relay_proc_start(rp, true, argv);
}

static long long metric(const struct relay_proc *rp, const char *series)
{
  static char buf[1 << 20];
  relay_proc_metrics(rp, buf, sizeof(buf));
  return relay_proc_metric(buf, series);
}

/* The federation's and the switch's counters, to stderr. */
static void relay_dump(const struct relay_proc *rp)
{
  static char buf[1 << 20];
  relay_proc_metrics(rp, buf, sizeof(buf));
  fprintf(stderr, "relay on port %u:\n", rp->port);
  for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
    if (l[0] != '#' && (strstr(l, "fed_") || strstr(l, "nats_") || strstr(l, "dropped")) &&
        !strstr(l, " 0"))
      fprintf(stderr, "  %s\n", l);
}

/* Waits until the relay's metric reaches v (the subscriptions are made by
 * the relay's NATS thread a moment after the room). */
static void wait_metric(struct side **all, const struct relay_proc *rp, const char *series,
                        long long v)
{
  for (int i = 0; i < 100 && metric(rp, series) < v; i++)
    run_all(all, 50, NULL, NULL);
  cr_assert_geq(metric(rp, series), v, "%s on relay port %u", series, rp->port);
  run_all(all, 300, NULL, NULL); /* the SUB reaches the server */
}

static uint32_t total(const struct side *sd)
{
  uint32_t t = 0;
  for (uint32_t i = 0; i < sd->n; i++)
    t += sd->got[i].frames;
  return t;
}

struct world {
  struct nats_proc nats;
  struct relay_proc ra, rb;
  struct side a, b, oa, ob; /* room /lan on A and B; room /other on A and B */
  struct side *all[NSIDES];
};

static void world_up(struct world *w)
{
  memset(w, 0, sizeof(*w));
  log_set_level(LOG_WARN);
  nats_start(&w->nats);
  relay_fed_start(&w->ra, &w->nats, "relay-a");
  relay_fed_start(&w->rb, &w->nats, "relay-b");
  relays[0] = &w->ra;
  relays[1] = &w->rb;
  side_up(&w->a, &w->ra, "/lan", 2, 0);
  side_up(&w->b, &w->rb, "/lan", 2, 2);
  side_up(&w->oa, &w->ra, "/other", 1, 8);
  side_up(&w->ob, &w->rb, "/other", 1, 9);
  w->all[0] = &w->a;
  w->all[1] = &w->b;
  w->all[2] = &w->oa;
  w->all[3] = &w->ob;
  wait_metric(w->all, &w->ra, "wtrelay_fed_rooms", 2);
  wait_metric(w->all, &w->rb, "wtrelay_fed_rooms", 2);
}

static void world_down(struct world *w)
{
  wtc_fini(&w->a.c);
  wtc_fini(&w->b.c);
  wtc_fini(&w->oa.c);
  wtc_fini(&w->ob.c);
  relay_proc_stop(&w->ra);
  relay_proc_stop(&w->rb);
  nats_cleanup(&w->nats);
}

Test(fed_e2e, broadcast_unicast_chunked_rooms, .timeout = 120)
{
  struct world w;
  world_up(&w);
  uint8_t f[1514], m0[6], m1[6], m2[6], m3[6], m8[6];
  mac_of(0, m0);
  mac_of(1, m1);
  mac_of(2, m2);
  mac_of(3, m3);
  mac_of(8, m8);

  /* a broadcast from A's session 0 reaches A1, B0 and B1 once, byte-exact */
  size_t len = frame(f, BC, m0, 60, 1);
  cr_assert_eq(wtc_send_frame(w.a.s[0], f, len), 0);
  wait_frames(w.all, &w.a, 1, 1);
  wait_frames(w.all, &w.b, 0, 1);
  wait_frames(w.all, &w.b, 1, 1);
  run_all(w.all, 300, NULL, NULL);
  cr_assert_eq(w.a.got[0].frames, 0, "the sender got its own broadcast back");
  cr_assert_eq(w.a.got[1].frames, 1);
  cr_assert_eq(w.b.got[0].frames, 1, "a broadcast crossed twice (duplicated)");
  cr_assert_eq(w.b.got[1].frames, 1);
  cr_assert_eq(w.b.got[0].last_len, 60);
  cr_assert_arr_eq(w.b.got[0].last, f, 60);
  cr_assert_eq(total(&w.oa) + total(&w.ob), 0, "a broadcast crossed rooms");

  /* B's session 0 answers A0 (learned behind B's uplink): only A0 gets it */
  len = frame(f, m0, m2, 60, 2);
  cr_assert_eq(wtc_send_frame(w.b.s[0], f, len), 0);
  wait_frames(w.all, &w.a, 0, 1);
  run_all(w.all, 300, NULL, NULL);
  cr_assert_arr_eq(w.a.got[0].last, f, 60);
  cr_assert_eq(w.a.got[1].frames, 1, "unicast to a remote MAC reached another session");
  cr_assert_eq(w.b.got[1].frames, 1, "unicast to a remote MAC was flooded locally");

  /* B1 announces itself; then 1514-byte frames both ways, chunked on every
   * QUIC leg, byte-exact, to the one session they are for */
  len = frame(f, BC, m3, 60, 3);
  cr_assert_eq(wtc_send_frame(w.b.s[1], f, len), 0);
  wait_frames(w.all, &w.a, 1, 2);
  wait_frames(w.all, &w.a, 0, 2);
  len = frame(f, m3, m1, 1514, 4);
  cr_assert_eq(wtc_send_frame(w.a.s[1], f, len), 0);
  cr_assert_gt(w.a.s[1]->chunks_out, 0, "the client should have chunked 1514 bytes");
  wait_frames(w.all, &w.b, 1, 2);
  cr_assert_eq(w.b.got[1].last_len, 1514);
  cr_assert_arr_eq(w.b.got[1].last, f, 1514);
  len = frame(f, m1, m2, 1514, 5);
  cr_assert_eq(wtc_send_frame(w.b.s[0], f, len), 0);
  wait_frames(w.all, &w.a, 1, 3);
  cr_assert_eq(w.a.got[1].last_len, 1514);
  cr_assert_arr_eq(w.a.got[1].last, f, 1514);
  for (int k = 0; k < 20; k++) { /* a burst, each exactly once */
    len = frame(f, m0, m3, 1514, (uint8_t)(6 + k));
    cr_assert_eq(wtc_send_frame(w.b.s[1], f, len), 0);
  }
  wait_frames(w.all, &w.a, 0, 2 + 20);
  cr_assert_arr_eq(w.a.got[0].last, f, 1514);
  run_all(w.all, 300, NULL, NULL);
  cr_assert_eq(w.a.got[0].frames, 22);
  cr_assert_eq(w.a.got[1].frames, 3);
  cr_assert_eq(w.b.got[0].frames, 2);
  cr_assert_eq(w.b.got[1].frames, 2);

  /* the other room: its broadcast crosses to its own sessions only */
  len = frame(f, BC, m8, 60, 40);
  cr_assert_eq(wtc_send_frame(w.oa.s[0], f, len), 0);
  wait_frames(w.all, &w.ob, 0, 1);
  run_all(w.all, 300, NULL, NULL);
  cr_assert_arr_eq(w.ob.got[0].last, f, 60);
  cr_assert_eq(total(&w.a) + total(&w.b), 22 + 3 + 2 + 2, "a broadcast crossed rooms");
  cr_assert_eq(w.oa.got[0].frames, 0);

  cr_assert_gt(metric(&w.ra, "wtrelay_fed_frames_total{dir=\"out\"}"), 0);
  cr_assert_gt(metric(&w.rb, "wtrelay_fed_frames_total{dir=\"in\"}"), 0);
  cr_assert_gt(metric(&w.ra, "wtrelay_fed_remote_macs_learned_total"), 0);
  /* the unicasts to learned remote MACs went to the one relay: B sent 22
   * (to A0 once, to A1 once, the burst of 20), A one (to B1) */
  cr_assert_eq(metric(&w.rb, "wtrelay_fed_directed_total"), 22, "directed from B: %lld",
               metric(&w.rb, "wtrelay_fed_directed_total"));
  cr_assert_eq(metric(&w.ra, "wtrelay_fed_directed_total"), 1);
  cr_assert_eq(metric(&w.ra, "wtrelay_nats_connected"), 1);
  /* no frame came back to the relay that sent it (no echo, own id
   * ignored): the switch refused none as claiming a MAC of its own */
  for (int i = 0; i < 2; i++)
    cr_assert_eq(metric(relays[i], "wtrelay_fed_dropped_total{reason=\"switch\"}"), 0,
                 "relay %d: frames from NATS refused by its switch (its own echoed back?)", i);
  world_down(&w);
}

static void pump_world(void *w)
{
  run_all(((struct world *)w)->all, 10, NULL, NULL);
}

/* A capture on one relay holds what its switch handles of the room,
 * including the frames that came from the other relay over NATS (its
 * broadcast, its unicast to a session here, chunked 1514-byte frames
 * reassembled), each once, and what this relay sent there; never the
 * other room's frames nor unicasts between two sessions on the other
 * relay (those never reach this one). */
Test(fed_e2e, capture_holds_frames_from_other_relays, .timeout = 120)
{
  struct world w;
  world_up(&w);
  struct cap c;
  cap_start(&c, &w.ra, "/rooms/%2Flan/pcap?seconds=4");
  cr_assert_eq(c.status, 200, "%s", c.buf);
  uint8_t f[1514], m0[6], m2[6], m3[6], m9[6];
  mac_of(0, m0);
  mac_of(2, m2);
  mac_of(3, m3);
  mac_of(9, m9);

  size_t len = frame(f, BC, m2, 60, 1); /* B0's broadcast reaches A */
  f[14] = 0xe1;
  cr_assert_eq(wtc_send_frame(w.b.s[0], f, len), 0);
  wait_frames(w.all, &w.a, 0, 1);
  len = frame(f, BC, m3, 60, 2); /* B1 announces itself */
  f[14] = 0xe5;
  cr_assert_eq(wtc_send_frame(w.b.s[1], f, len), 0);
  wait_frames(w.all, &w.a, 0, 2);
  len = frame(f, m2, m0, 1514, 3); /* A0 to B0, chunked */
  f[14] = 0xe2;
  cr_assert_eq(wtc_send_frame(w.a.s[0], f, len), 0);
  wait_frames(w.all, &w.b, 0, 2);
  len = frame(f, m0, m2, 1514, 4); /* B0 to A0, chunked */
  f[14] = 0xe3;
  cr_assert_eq(wtc_send_frame(w.b.s[0], f, len), 0);
  wait_frames(w.all, &w.a, 0, 3);
  len = frame(f, m3, m2, 60, 5); /* B0 to B1: stays on B */
  f[14] = 0xe4;
  cr_assert_eq(wtc_send_frame(w.b.s[0], f, len), 0);
  wait_frames(w.all, &w.b, 1, 2);
  len = frame(f, BC, m9, 60, 6); /* the other room, on B */
  f[14] = 0xe6;
  cr_assert_eq(wtc_send_frame(w.ob.s[0], f, len), 0);
  wait_frames(w.all, &w.oa, 0, 1);

  cap_finish(&c, pump_world, &w, 9000);
  static struct rec r[1024];
  uint32_t n = pcap_parse(c.buf + c.body, c.len - c.body, r, 1024);
  cr_assert_eq(count(r, n, 0x88b5, m2, BC, 0xe1), 1, "B0's broadcast, once");
  cr_assert_eq(count(r, n, 0x88b5, m3, BC, 0xe5), 1, "B1's broadcast, once");
  cr_assert_eq(count(r, n, 0x88b5, m0, m2, 0xe2), 1, "A0's frame to B0, once");
  cr_assert_eq(count(r, n, 0x88b5, m2, m0, 0xe3), 1, "B0's frame to A0, once");
  for (uint32_t i = 0; i < n && i < 1024; i++)
    if (r[i].len >= 15 && r[i].p[14] == 0xe3)
      cr_assert_eq(r[i].len, 1514, "the chunked frame from B recorded whole");
  cr_assert_eq(count(r, n, 0x88b5, NULL, NULL, 0xe4), 0, "a unicast between B's sessions");
  cr_assert_eq(count(r, n, 0, m9, NULL, -1), 0, "a frame of the other room");
  cap_free(&c);
  world_down(&w);
}

/* The routing shortcut across relays: A0 sends IPv4 for B0's address to
 * the gateway's MAC (as a VM whose route to its own subnet goes through
 * the gateway does); relay A holds no port with that address and hands
 * it to its uplinks, relay B's switch delivers it to B0 with the header a
 * router writes (B0's MAC, from the gateway's). */
Test(fed_e2e, routed_across_relays, .timeout = 120)
{
  struct world w;
  world_up(&w);
  static const uint8_t gw[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};
  uint8_t f[200], m0[6], m2[6];
  mac_of(0, m0);
  mac_of(2, m2);
  memset(f, 0, sizeof(f));
  memcpy(f, gw, 6);
  memcpy(f + 6, m0, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t *ip = f + 14;
  ip[0] = 0x45;
  ip[2] = 0;
  ip[3] = (uint8_t)(sizeof(f) - 14);
  ip[8] = 64;
  ip[9] = 17; /* UDP */
  memcpy(ip + 12, w.a.s[0]->ip, 4);
  memcpy(ip + 16, w.b.s[0]->ip, 4);
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2)
    sum += (uint32_t)ip[i] << 8 | ip[i + 1];
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = (uint8_t)(~sum >> 8);
  ip[11] = (uint8_t)~sum;
  for (size_t i = 34; i < sizeof(f); i++)
    f[i] = (uint8_t)(i * 7);
  cr_assert_eq(wtc_send_frame(w.a.s[0], f, sizeof(f)), 0);
  wait_frames(w.all, &w.b, 0, 1);
  cr_assert_eq(w.b.got[0].last_len, sizeof(f));
  cr_assert_arr_eq(w.b.got[0].last, m2, 6, "not rewritten to B0's MAC");
  cr_assert_arr_eq(w.b.got[0].last + 6, gw, 6, "not from the gateway's MAC");
  cr_assert_arr_eq(w.b.got[0].last + 12, f + 12, sizeof(f) - 12);
  run_all(w.all, 300, NULL, NULL);
  cr_assert_eq(w.b.got[1].frames, 0, "B1 got the routed frame too");
  cr_assert_eq(w.a.got[1].frames, 0, "A1 got the routed frame");
  world_down(&w);
}

Test(fed_e2e, nats_restart, .timeout = 120)
{
  struct world w;
  world_up(&w);
  uint8_t f[1514], m0[6], m1[6], m2[6];
  mac_of(0, m0);
  mac_of(1, m1);
  mac_of(2, m2);
  size_t len = frame(f, BC, m0, 60, 1);
  cr_assert_eq(wtc_send_frame(w.a.s[0], f, len), 0);
  wait_frames(w.all, &w.b, 0, 1);

  nats_stop(&w.nats);
  for (int i = 0; i < 100 && metric(&w.ra, "wtrelay_nats_connected") != 0; i++)
    run_all(w.all, 50, NULL, NULL);
  cr_assert_eq(metric(&w.ra, "wtrelay_nats_connected"), 0);
  /* local traffic goes on: A0 <-> A1, while frames toward B are dropped */
  for (int k = 0; k < 10; k++) {
    len = frame(f, m1, m0, 1514, (uint8_t)(10 + k));
    cr_assert_eq(wtc_send_frame(w.a.s[0], f, len), 0);
    wait_frames(w.all, &w.a, 1, 2 + (uint32_t)k);
    cr_assert_arr_eq(w.a.got[1].last, f, 1514);
  }
  len = frame(f, BC, m0, 60, 30);
  cr_assert_eq(wtc_send_frame(w.a.s[0], f, len), 0);
  wait_frames(w.all, &w.a, 1, 12);
  run_all(w.all, 300, NULL, NULL);
  cr_assert_eq(w.b.got[0].frames, 1, "a frame crossed without NATS?");
  cr_assert_gt(metric(&w.ra, "wtrelay_fed_dropped_total{reason=\"nats_down\"}"), 0);
  /* readiness does not depend on NATS */
  char buf[4096];
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons(w.ra.ops_port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  const char req[] = "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  cr_assert_eq(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
  ssize_t r = recv(fd, buf, sizeof(buf) - 1, MSG_WAITALL);
  close(fd);
  cr_assert_gt(r, 12);
  buf[r] = '\0';
  cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "/readyz with NATS down: %.40s", buf);
  /* a new VM on A meanwhile gets A's local candidate: the address of one
   * of B's VMs, which A's pool cannot know */
  struct side nv;
  side_up(&nv, &w.ra, "/lan", 1, 20);
  cr_assert(memcmp(nv.s[0]->ip, w.b.s[0]->ip, 4) == 0 || memcmp(nv.s[0]->ip, w.b.s[1]->ip, 4) == 0,
            "expected the local candidate to be one of B's addresses");
  cr_assert_geq(metric(&w.ra, "wtrelay_fed_lease_claims_total{result=\"unavailable\"}"), 1);

  /* NATS back (same port and store): both relays reconnect by themselves
   * and their subscriptions are back */
  nats_start(&w.nats);
  for (int i = 0; i < 200 && (metric(&w.ra, "wtrelay_nats_connected") != 1 ||
                              metric(&w.rb, "wtrelay_nats_connected") != 1);
       i++)
    run_all(w.all, 50, NULL, NULL);
  cr_assert_eq(metric(&w.ra, "wtrelay_nats_connected"), 1);
  cr_assert_eq(metric(&w.rb, "wtrelay_nats_connected"), 1);
  cr_assert_geq(metric(&w.ra, "wtrelay_nats_reconnects_total"), 1);
  /* A claims the address it gave while NATS was down, finds it B's VM's:
   * the conflict is counted and A's session ended, to reconnect */
  for (int i = 0; i < 200 && nv.s[0]->state == WTC_REGISTERED; i++) {
    run_all(w.all, 40, NULL, NULL);
    wtc_run(&nv.c, 10 * NS_PER_MS, NULL, NULL);
  }
  cr_assert_eq(nv.s[0]->state, WTC_CLOSED, "the conflicting session was not ended");
  cr_assert(strstr(nv.s[0]->close_reason, "conflict"), "close reason: %s", nv.s[0]->close_reason);
  for (int i = 0; i < 50 && metric(&w.ra, "wtrelay_fed_lease_conflicts_total") < 1; i++)
    run_all(w.all, 20, NULL, NULL);
  cr_assert_eq(metric(&w.ra, "wtrelay_fed_lease_conflicts_total"), 1);
  cr_assert_eq(metric(&w.rb, "wtrelay_fed_lease_conflicts_total"), 0);
  wtc_fini(&nv.c);
  run_all(w.all, 500, NULL, NULL);
  len = frame(f, m0, m2, 1514, 50);
  cr_assert_eq(wtc_send_frame(w.b.s[0], f, len), 0);
  wait_frames(w.all, &w.a, 0, 1);
  cr_assert_arr_eq(w.a.got[0].last, f, 1514);
  len = frame(f, m2, m0, 1514, 51);
  cr_assert_eq(wtc_send_frame(w.a.s[0], f, len), 0);
  wait_frames(w.all, &w.b, 0, 2);
  cr_assert_arr_eq(w.b.got[0].last, f, 1514);
  world_down(&w);
}

Test(fed_e2e, duplicate_relay_id_refused, .timeout = 60)
{
  struct nats_proc n;
  memset(&n, 0, sizeof(n));
  log_set_level(LOG_WARN);
  nats_start(&n);
  struct relay_proc ra;
  relay_fed_start(&ra, &n, "same-id");
  char port[16];
  snprintf(port, sizeof(port), "%u", relay_proc_free_port(SOCK_DGRAM));
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int devnull = open("/dev/null", 1);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl(WTRELAY_BIN, WTRELAY_BIN, "--bind", "127.0.0.1", "--port", port, "--http-listen", "",
          "--nats", n.url, "--relay-id", "same-id", (char *)NULL);
    _exit(127);
  }
  int st = 0;
  for (int i = 0; i < 1000 && waitpid(pid, &st, WNOHANG) != pid; i++)
    usleep(10000);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 127,
            "a second relay with the same id started (status %d)", st);
  /* another id is fine */
  struct relay_proc rb;
  relay_fed_start(&rb, &n, "other-id");
  relay_proc_stop(&rb);
  relay_proc_stop(&ra);
  nats_cleanup(&n);
}

Test(fed_e2e, relay_killed, .timeout = 120)
{
  struct world w;
  mac_aging = "2";
  world_up(&w);
  uint8_t f[1514], m0[6], m1[6], m2[6];
  mac_of(0, m0);
  mac_of(1, m1);
  mac_of(2, m2);
  /* B0 makes itself known; A0's unicast to it goes to B's own subject */
  size_t len = frame(f, BC, m2, 60, 1);
  cr_assert_eq(wtc_send_frame(w.b.s[0], f, len), 0);
  wait_frames(w.all, &w.a, 0, 1);
  len = frame(f, m2, m0, 60, 2);
  cr_assert_eq(wtc_send_frame(w.a.s[0], f, len), 0);
  wait_frames(w.all, &w.b, 0, 1);
  cr_assert_eq(metric(&w.ra, "wtrelay_fed_directed_total"), 1);
  uint8_t b0_ip[4];
  memcpy(b0_ip, w.b.s[0]->ip, 4);

  /* B dies without a word */
  kill(w.rb.pid, SIGKILL);
  int st;
  waitpid(w.rb.pid, &st, 0);
  wtc_fini(&w.b.c);
  wtc_fini(&w.ob.c);
  w.all[1] = w.all[3] = NULL;
  relays[1] = NULL;
  /* A keeps serving its sessions */
  for (int k = 0; k < 5; k++) {
    len = frame(f, m1, m0, 1514, (uint8_t)(10 + k));
    cr_assert_eq(wtc_send_frame(w.a.s[0], f, len), 0);
    wait_frames(w.all, &w.a, 1, 2 + (uint32_t)k);
    cr_assert_arr_eq(w.a.got[1].last, f, 1514);
  }
  /* B's MAC ages out behind A's uplinks (--mac-aging 2, swept every
   * second): a unicast to it is then an unknown unicast, flooded (the
   * room's flood subject), no longer sent to B's own subject (3 s at
   * most; 6 s leave room for a loaded machine's late timers) */
  run_all(w.all, 6000, NULL, NULL);
  long long out = metric(&w.ra, "wtrelay_fed_frames_total{dir=\"out\"}");
  len = frame(f, m2, m0, 60, 3);
  cr_assert_eq(wtc_send_frame(w.a.s[0], f, len), 0);
  wait_frames(w.all, &w.a, 1, 7); /* flooded locally too: A1 gets it */
  for (int i = 0; i < 20 && metric(&w.ra, "wtrelay_fed_frames_total{dir=\"out\"}") == out; i++)
    run_all(w.all, 50, NULL, NULL);
  cr_assert_eq(metric(&w.ra, "wtrelay_fed_frames_total{dir=\"out\"}"), out + 1);
  cr_assert_eq(metric(&w.ra, "wtrelay_fed_directed_total"), 1,
               "a unicast to an aged MAC went to B");
  len = frame(f, m0, m1, 60, 4);
  cr_assert_eq(wtc_send_frame(w.a.s[1], f, len), 0);
  wait_frames(w.all, &w.a, 0, 2);
  /* B0 reconnects to A: the cluster's lease gives it its address on B */
  struct side back;
  side_up(&back, &w.ra, "/lan", 1, 2);
  cr_assert_arr_eq(back.s[0]->ip, b0_ip, 4, "B0 on A got %u.%u.%u.%u, had %u.%u.%u.%u on B",
                   back.s[0]->ip[0], back.s[0]->ip[1], back.s[0]->ip[2], back.s[0]->ip[3], b0_ip[0],
                   b0_ip[1], b0_ip[2], b0_ip[3]);
  wtc_fini(&back.c);
  wtc_fini(&w.a.c);
  wtc_fini(&w.oa.c);
  relay_proc_stop(&w.ra);
  nats_cleanup(&w.nats);
  mac_aging = NULL;
}

/* ---- addresses across the relays (JetStream key-value leases) ---- */

#define LN 25 /* per relay: 50 new MACs at once; one client address may hold 49 */

struct lside {
  struct wtc c;
  struct wtc_session *s[LN];
  uint32_t n;
};

static struct got lgot[LN];

static void lside_open(struct lside *l, const struct relay_proc *rp, uint32_t n)
{
  char url[128];
  memset(l, 0, sizeof(*l));
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/lease", rp->port);
  cr_assert_eq(wtc_init(&l->c, url, rp->hash, LN, &ops, lgot), 0);
  l->n = n;
  for (uint32_t i = 0; i < n; i++)
    cr_assert_eq(wtc_open(&l->c, &l->s[i]), 0);
}

static void lmac(uint32_t i, uint8_t mac[6])
{
  const uint8_t m[6] = {0x02, 0x1e, 0x00, 0x00, (uint8_t)(i >> 8), (uint8_t)i};
  memcpy(mac, m, 6);
}

struct lwant {
  struct lside **ls;
  int nls;
  enum wtc_state st;
};

static bool lall(void *arg)
{
  struct lwant *w = arg;
  for (int k = 0; k < w->nls; k++)
    for (uint32_t i = 0; i < w->ls[k]->n; i++)
      if (w->ls[k]->s[i]->state != w->st)
        return false;
  return true;
}

/* Runs the sides' loops in turns until every session is in state st. */
static bool lrun(struct lside **ls, int nls, enum wtc_state st, uint64_t ms)
{
  struct lwant w = {ls, nls, st};
  for (uint64_t t = 0; t < ms && !lall(&w); t += 10 * (uint64_t)nls)
    for (int k = 0; k < nls; k++)
      wtc_run(&ls[k]->c, 10 * NS_PER_MS, NULL, NULL);
  return lall(&w);
}

static uint32_t ip_u32(const uint8_t ip[4])
{
  return (uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 | (uint32_t)ip[2] << 8 | ip[3];
}

/* Two relays allocate for 25 new MACs each at once: no address twice.
 * A MAC that registers on the other relay keeps its address and ends its
 * old session there; a MAC whose session ended on one relay gets its
 * address back on the other. */
Test(fed_e2e, leases_across_relays, .timeout = 120)
{
  struct nats_proc n;
  memset(&n, 0, sizeof(n));
  log_set_level(LOG_WARN);
  nats_start(&n);
  struct relay_proc ra, rb;
  relay_fed_start(&ra, &n, "lease-a");
  relay_fed_start(&rb, &n, "lease-b");
  relays[0] = &ra;
  relays[1] = &rb;
  static struct lside a, b;
  lside_open(&a, &ra, LN);
  lside_open(&b, &rb, LN);
  struct lside *both[2] = {&a, &b};
  cr_assert(lrun(both, 2, WTC_OPEN, 20000), "sessions did not open");
  for (uint32_t i = 0; i < LN; i++) {
    uint8_t m[6];
    lmac(i, m);
    cr_assert_eq(wtc_register(a.s[i], m), 0);
    lmac(0x100 + i, m);
    cr_assert_eq(wtc_register(b.s[i], m), 0);
  }
  if (!lrun(both, 2, WTC_REGISTERED, 30000)) {
    relay_dump(&ra);
    relay_dump(&rb);
    for (int k = 0; k < 2; k++)
      for (uint32_t i = 0; i < LN; i++)
        if (both[k]->s[i]->state != WTC_REGISTERED)
          fprintf(stderr, "relay %c session %u: state %d last error \"%s\" close \"%s\"\n", 'A' + k,
                  i, both[k]->s[i]->state, both[k]->s[i]->last_error, both[k]->s[i]->close_reason);
    cr_assert_fail("not every session registered");
  }
  uint32_t ips[2 * LN];
  for (uint32_t i = 0; i < LN; i++) {
    ips[i] = ip_u32(a.s[i]->ip);
    ips[LN + i] = ip_u32(b.s[i]->ip);
  }
  for (uint32_t i = 0; i < 2 * LN; i++) {
    cr_assert(ips[i] >= 0x0a00020a && ips[i] <= 0x0a0002fe, "address %08x outside the pool",
              ips[i]);
    for (uint32_t j = 0; j < i; j++)
      cr_assert_neq(ips[i], ips[j], "sessions %u and %u both got %u.%u.%u.%u", j, i, ips[i] >> 24,
                    (ips[i] >> 16) & 255, (ips[i] >> 8) & 255, ips[i] & 255);
  }
  cr_assert_gt(metric(&ra, "wtrelay_fed_lease_claims_total{result=\"address\"}") +
                   metric(&rb, "wtrelay_fed_lease_claims_total{result=\"address\"}"),
               2 * LN - 1);

  /* A's session 0 moves to B: same address, the old session ended */
  static struct lside mv;
  lside_open(&mv, &rb, 1);
  struct lside *three[3] = {&a, &b, &mv};
  cr_assert(lrun(&three[2], 1, WTC_OPEN, 10000));
  uint8_t m[6];
  lmac(0, m);
  cr_assert_eq(wtc_register(mv.s[0], m), 0);
  cr_assert(lrun(&three[2], 1, WTC_REGISTERED, 10000), "the moved MAC did not register");
  cr_assert_eq(ip_u32(mv.s[0]->ip), ips[0], "the moved MAC got another address");
  for (int i = 0; i < 100 && a.s[0]->state == WTC_REGISTERED; i++)
    lrun(three, 3, WTC_CLOSED, 30);
  cr_assert_eq(a.s[0]->state, WTC_CLOSED, "the old session on A was not ended");
  cr_assert(strstr(a.s[0]->close_reason, "another relay"), "close reason: %s",
            a.s[0]->close_reason);
  /* the workers' counters reach /metrics in 100 ms snapshots */
  for (int i = 0; i < 50 && metric(&ra, "wtrelay_takeovers_other_relay_total") < 1; i++)
    lrun(three, 3, WTC_FREE, 20);
  cr_assert_eq(metric(&ra, "wtrelay_takeovers_other_relay_total"), 1);
  cr_assert_eq(metric(&rb, "wtrelay_fed_takeovers_total{dir=\"out\"}"), 1);

  /* B's session 1 ends; its MAC comes back on A, which never saw it */
  cr_assert_eq(wtc_disconnect(b.s[1]), 0);
  lrun(three, 3, WTC_CLOSED, 500);
  for (int i = 0; i < 100 && metric(&rb, "wtrelay_fed_lease_releases_total") < 1; i++)
    lrun(three, 3, WTC_CLOSED, 30);
  static struct lside back;
  lside_open(&back, &ra, 1);
  struct lside *bk = &back;
  cr_assert(lrun(&bk, 1, WTC_OPEN, 10000));
  lmac(0x101, m);
  cr_assert_eq(wtc_register(back.s[0], m), 0);
  cr_assert(lrun(&bk, 1, WTC_REGISTERED, 10000), "the returning MAC did not register");
  cr_assert_eq(ip_u32(back.s[0]->ip), ips[LN + 1], "the returning MAC got another address");
  cr_assert_eq(metric(&ra, "wtrelay_fed_lease_conflicts_total"), 0);
  cr_assert_eq(metric(&rb, "wtrelay_fed_lease_conflicts_total"), 0);
  wtc_fini(&back.c);
  wtc_fini(&mv.c);
  wtc_fini(&a.c);
  wtc_fini(&b.c);
  relay_proc_stop(&ra);
  relay_proc_stop(&rb);
  relays[0] = relays[1] = NULL;
  nats_cleanup(&n);
}
