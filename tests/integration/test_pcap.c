/*
 * Packet capture end to end: the real relay with two workers, native
 * clients (the wtc library) in rooms /lab (two clients, each its own
 * socket, so the sessions may sit on different workers) and /other, and
 * GET /rooms/<room>/pcap on the ops listener read as the traffic flows.
 * The pcap is parsed here: a valid file header; ARP and ping to and from
 * the gateway for both /lab sessions, the frames between them each
 * exactly once (a frame crossing the workers is not counted twice), and
 * nothing of /other. Also the bounds (a fifth stream refused with 429, an
 * unknown room 404, seconds beyond 300 refused with 400) and --pcap.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wtrelay/log.h"
#include "wtrelay/net.h"
#include "wtrelay/timeunit.h"
#include "wtrelay/wtc.h"

#include "relay_proc.h"

#define NCLI 3 /* /lab a, /lab b, /other */

static const uint8_t BC[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t GW_MAC[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};
#define GW_IP 0x0a000202u

struct cli {
  struct wtc c;
  struct wtc_session *s;
  uint32_t frames, arp_replies, echo_replies, marked;
};

struct lan {
  struct relay_proc rp;
  struct cli cli[NCLI];
};

static void on_frame(void *user, struct wtc_session *s, const uint8_t *f, size_t len)
{
  (void)s;
  struct cli *c = user;
  c->frames++;
  struct net_eth e;
  if (net_eth_parse(f, len, &e) < 0)
    return;
  if (e.type == 0x0806 && len >= 22 && f[21] == 2)
    c->arp_replies++;
  if (e.type == 0x0800 && len >= 35 && f[23] == 1 && f[34] == 0)
    c->echo_replies++;
  if (e.type == 0x88b5)
    c->marked++;
}

static const struct wtc_ops ops = {.on_frame = on_frame};

static void mac_of(uint32_t i, uint8_t mac[6])
{
  const uint8_t m[6] = {0x52, 0x54, 0x00, 0x5c, 0x00, (uint8_t)(0x10 + i)};
  memcpy(mac, m, 6);
}

static bool registered(void *arg)
{
  return ((struct wtc_session *)arg)->state == WTC_REGISTERED;
}

static bool open_state(void *arg)
{
  return ((struct wtc_session *)arg)->state == WTC_OPEN;
}

/* Client i: its own socket, one session in its room, registered. */
static void cli_up(struct lan *l, uint32_t i)
{
  static const char *const rooms[NCLI] = {"/lab", "/lab", "/other"};
  struct cli *c = &l->cli[i];
  char url[128];
  memset(c, 0, sizeof(*c));
  snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", l->rp.port, rooms[i]);
  cr_assert_eq(wtc_init(&c->c, url, l->rp.hash, 1, &ops, c), 0);
  cr_assert_eq(wtc_open(&c->c, &c->s), 0);
  cr_assert_eq(wtc_run(&c->c, 10 * NS_PER_S, open_state, c->s), 0, "session %u did not open", i);
  uint8_t mac[6];
  mac_of(i, mac);
  cr_assert_eq(wtc_register(c->s, mac), 0);
  cr_assert_eq(wtc_run(&c->c, 10 * NS_PER_S, registered, c->s), 0, "session %u did not register",
               i);
}

/* Sessions on worker w now (/metrics). */
static long long worker_sessions(const struct relay_proc *rp, uint32_t w)
{
  static char m[1 << 17];
  char series[64];
  relay_proc_metrics(rp, m, sizeof(m));
  snprintf(series, sizeof(series), "wtrelay_worker_sessions{worker=\"%u\"}", w);
  return relay_proc_metric(m, series);
}

/* The relay with `extra` (two workers), /lab's two sessions on different
 * workers (b's client is made again, from a new socket, until the
 * kernel's hash puts it on the other worker: 16 tries), then /other's. */
static void lan_up(struct lan *l, const char *const *extra)
{
  memset(l, 0, sizeof(*l));
  log_set_level(LOG_WARN);
  relay_proc_start(&l->rp, true, extra);
  cli_up(l, 0);
  uint32_t wa = worker_sessions(&l->rp, 0) == 1 ? 0 : 1;
  bool spread = false;
  for (int t = 0; t < 16 && !spread; t++) {
    cli_up(l, 1);
    spread = worker_sessions(&l->rp, 1 - wa) == 1;
    if (spread)
      break;
    wtc_fini(&l->cli[1].c); /* closes the session: the MAC is free for the next try */
    for (int i = 0; i < 200 && worker_sessions(&l->rp, wa) != 1; i++)
      wtc_poll(&l->cli[0].c, 10 * NS_PER_MS);
  }
  cr_assert(spread, "/lab's sessions never landed on different workers");
  cli_up(l, 2);
}

/* Runs every client's loop a little, n rounds. */
static void pump(struct lan *l, uint32_t rounds)
{
  for (uint32_t r = 0; r < rounds; r++)
    for (uint32_t i = 0; i < NCLI; i++)
      wtc_poll(&l->cli[i].c, 2 * NS_PER_MS);
}

static void pump_lan(void *l)
{
  pump(l, 1);
}

static void lan_down(struct lan *l)
{
  for (uint32_t i = 0; i < NCLI; i++)
    wtc_fini(&l->cli[i].c);
  relay_proc_stop(&l->rp);
}

static uint32_t ip_of(const struct wtc_session *s)
{
  return (uint32_t)s->ip[0] << 24 | (uint32_t)s->ip[1] << 16 | (uint32_t)s->ip[2] << 8 | s->ip[3];
}

/* ARP for the gateway and a ping to it from client i. */
static void ping_gateway(struct lan *l, uint32_t i, uint16_t seq)
{
  struct cli *c = &l->cli[i];
  uint8_t f[128];
  struct net_l2 l2 = {.dst_mac = BC, .src_mac = c->s->mac};
  int n = net_build_arp(f, sizeof(f), &l2, 1, c->s->mac, ip_of(c->s), (const uint8_t[6]){0}, GW_IP);
  cr_assert_gt(n, 0);
  cr_assert_eq(wtc_send_frame(c->s, f, (size_t)n), 0);
  l2.dst_mac = GW_MAC;
  const uint8_t rest[4] = {0x12, (uint8_t)i, (uint8_t)(seq >> 8), (uint8_t)seq};
  n = net_build_icmp(f, sizeof(f), &l2, ip_of(c->s), GW_IP, 8, 0, rest, (const uint8_t *)"pcap", 4,
                     seq);
  cr_assert_gt(n, 0);
  cr_assert_eq(wtc_send_frame(c->s, f, (size_t)n), 0);
}

/* A frame of ethertype 0x88b5 from client i to dst, 60 bytes, whose byte
 * 14 is `mark`. */
static size_t marked(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint8_t mark)
{
  memset(f, 0, 60);
  memcpy(f, dst, 6);
  memcpy(f + 6, src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  f[14] = mark;
  return 60;
}

#include "pcap_read.h"

/* ICMP echo records (type 8 request, 0 reply) with these MACs. */
static uint32_t count_icmp(const struct rec *r, uint32_t n, const uint8_t *src, const uint8_t *dst,
                           uint8_t icmp_type)
{
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++)
    if (r[i].len >= 35 && r[i].p[12] == 0x08 && r[i].p[13] == 0 && r[i].p[23] == 1 &&
        r[i].p[34] == icmp_type && memcmp(r[i].p + 6, src, 6) == 0 && memcmp(r[i].p, dst, 6) == 0)
      k++;
  return k;
}

static bool lab_answered(struct lan *l)
{
  return l->cli[0].arp_replies >= 1 && l->cli[0].echo_replies >= 1 && l->cli[1].arp_replies >= 1 &&
         l->cli[1].echo_replies >= 1 && l->cli[1].marked >= 1 && l->cli[0].marked >= 1 &&
         l->cli[2].echo_replies >= 1;
}

/* The traffic: both /lab clients ping the gateway, a broadcasts a marked
 * frame (b receives it), b answers with a unicast one; /other pings the
 * gateway and broadcasts its own mark. */
static void traffic(struct lan *l)
{
  uint8_t f[64], ma[6], mb[6], mo[6];
  mac_of(0, ma);
  mac_of(1, mb);
  mac_of(2, mo);
  ping_gateway(l, 0, 1);
  ping_gateway(l, 1, 1);
  ping_gateway(l, 2, 1);
  cr_assert_eq(wtc_send_frame(l->cli[0].s, f, marked(f, BC, ma, 0xa1)), 0);
  cr_assert_eq(wtc_send_frame(l->cli[2].s, f, marked(f, BC, mo, 0xc1)), 0);
  for (int i = 0; i < 300 && l->cli[1].marked < 1; i++)
    pump(l, 1);
  cr_assert_eq(wtc_send_frame(l->cli[1].s, f, marked(f, ma, mb, 0xb1)), 0);
  for (int i = 0; i < 500 && !lab_answered(l); i++)
    pump(l, 1);
  cr_assert(lab_answered(l),
            "the traffic did not flow: a arp %u echo %u marked %u, b arp %u "
            "echo %u marked %u, other echo %u",
            l->cli[0].arp_replies, l->cli[0].echo_replies, l->cli[0].marked, l->cli[1].arp_replies,
            l->cli[1].echo_replies, l->cli[1].marked, l->cli[2].echo_replies);
}

/* What the /lab capture must hold, and /other's frames it must not. */
static void check_lab(const uint8_t *p, size_t len)
{
  static struct rec r[4096];
  uint32_t n = pcap_parse(p, len, r, 4096);
  cr_assert_leq(n, 4096);
  uint8_t ma[6], mb[6], mo[6];
  mac_of(0, ma);
  mac_of(1, mb);
  mac_of(2, mo);
  const uint8_t *lab[2] = {ma, mb};
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(count(r, n, 0x0806, lab[i], BC, -1), 1, "ARP request of %d", i);
    cr_assert_eq(count(r, n, 0x0806, GW_MAC, lab[i], -1), 1, "ARP reply to %d", i);
    cr_assert_eq(count_icmp(r, n, lab[i], GW_MAC, 8), 1, "echo request of %d", i);
    cr_assert_eq(count_icmp(r, n, GW_MAC, lab[i], 0), 1, "echo reply to %d", i);
  }
  cr_assert_eq(count(r, n, 0x88b5, ma, BC, 0xa1), 1, "a's broadcast, once");
  cr_assert_eq(count(r, n, 0x88b5, mb, ma, 0xb1), 1, "b's unicast to a, once");
  cr_assert_eq(count(r, n, 0, mo, NULL, -1), 0, "a frame of /other");
  cr_assert_eq(count(r, n, 0, NULL, mo, -1), 0, "a frame to /other");
  cr_assert_eq(count(r, n, 0x88b5, NULL, NULL, 0xc1), 0, "/other's mark");
  time_t now = time(NULL);
  for (uint32_t i = 0; i < n; i++)
    cr_assert(r[i].sec + 60 >= (uint32_t)now && r[i].sec <= (uint32_t)now + 1,
              "a wall-clock timestamp");
}

Test(pcap, lab_two_workers, .timeout = 60)
{
  struct lan l;
  const char *const extra[] = {"--workers", "2", NULL};
  lan_up(&l, extra);
  struct cap c;
  cap_start(&c, &l.rp, "/rooms/%2Flab/pcap?seconds=4"); /* slack for a loaded machine */
  cr_assert_eq(c.status, 200, "%s", c.buf);
  cr_assert(strstr((char *)c.buf, "Connection: close"));
  traffic(&l);
  cap_finish(&c, pump_lan, &l, 9000);
  check_lab(c.buf + c.body, c.len - c.body);
  cap_free(&c);
  char m[65536];
  relay_proc_metrics(&l.rp, m, sizeof(m));
  cr_assert(strstr(m, "wtrelay_captures_started_total 1\n"), "%s", m);
  cr_assert(strstr(m, "wtrelay_capture_frames_dropped_total{reason=\"slow\"} 0\n"));
  lan_down(&l);
}

static int get_status(const struct relay_proc *rp, const char *target)
{
  struct cap c;
  cap_start(&c, rp, target);
  int st = c.status;
  cap_free(&c);
  return st;
}

Test(pcap, bounds, .timeout = 60)
{
  struct relay_proc rp;
  const char *const extra[] = {"--workers", "2", NULL};
  log_set_level(LOG_WARN);
  relay_proc_start(&rp, true, extra);
  struct wtc w;
  struct cli cl = {0};
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/lab", rp.port);
  cr_assert_eq(wtc_init(&w, url, rp.hash, 1, &ops, &cl), 0);
  cr_assert_eq(wtc_open(&w, &cl.s), 0);
  cr_assert_eq(wtc_run(&w, 10 * NS_PER_S, open_state, cl.s), 0);
  uint8_t mac[6];
  mac_of(0, mac);
  cr_assert_eq(wtc_register(cl.s, mac), 0);
  cr_assert_eq(wtc_run(&w, 10 * NS_PER_S, registered, cl.s), 0);

  cr_assert_eq(get_status(&rp, "/rooms/%2Fnope/pcap"), 404, "an unknown room");
  cr_assert_eq(get_status(&rp, "/rooms/lab/pcap?seconds=301"), 400, "seconds over 300");
  cr_assert_eq(get_status(&rp, "/rooms/lab/pcap?seconds=0"), 400, "seconds 0");
  cr_assert_eq(get_status(&rp, "/rooms/lab/pcap?seconds=x"), 400, "seconds not a number");
  cr_assert_eq(get_status(&rp, "/rooms/%2/pcap"), 400, "a bad escape");
  cr_assert_eq(get_status(&rp, "/rooms/a/b/pcap"), 404, "two segments: no such path");
  struct cap c[4];
  for (int i = 0; i < 4; i++) {
    cap_start(&c[i], &rp, i % 2 ? "/rooms/lab/pcap?seconds=2" : "/rooms/%2Flab/pcap?seconds=2");
    cr_assert_eq(c[i].status, 200, "capture %d: %s", i, c[i].buf);
  }
  cr_assert_eq(get_status(&rp, "/rooms/lab/pcap?seconds=2"), 429, "a fifth capture");
  for (int i = 0; i < 4; i++) {
    wtc_run(&w, 50 * NS_PER_MS, NULL, NULL);
    cap_finish(&c[i], NULL, NULL, 5000);
    pcap_parse(c[i].buf + c[i].body, c[i].len - c[i].body, NULL, 0);
    cap_free(&c[i]);
  }
  /* the slots are free again */
  struct cap again;
  cap_start(&again, &rp, "/rooms/lab/pcap?seconds=1");
  cr_assert_eq(again.status, 200);
  cap_finish(&again, NULL, NULL, 4000);
  cap_free(&again);
  char m[65536];
  relay_proc_metrics(&rp, m, sizeof(m));
  cr_assert(strstr(m, "wtrelay_captures_started_total 5\n"), "%s", m);
  cr_assert(strstr(m, "wtrelay_captures_refused_total 1\n"), "%s", m);
  wtc_fini(&w);
  relay_proc_stop(&rp);
}

/* Reads a whole file into a malloc'd buffer. */
static uint8_t *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  cr_assert(f, "%s: %s", path, strerror(errno));
  uint8_t *b = malloc(CAP_MAX);
  *len = fread(b, 1, CAP_MAX, f);
  fclose(f);
  return b;
}

Test(pcap, file, .timeout = 60)
{
  char path[] = "/tmp/wtrelay-pcap-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  struct lan l;
  const char *const extra[] = {"--workers", "2", "--pcap", path, "--pcap-room", "lab", NULL};
  lan_up(&l, extra);
  traffic(&l);
  pump(&l, 20);
  lan_down(&l); /* SIGTERM: the writer flushes its ring */
  size_t len;
  uint8_t *b = slurp(path, &len);
  check_lab(b, len);
  free(b);

  /* --pcap-max-bytes: whole records up to the bound, then nothing */
  const char *const small[] = {"--workers",        "2",    "--pcap", path, "--pcap-room", "/lab",
                               "--pcap-max-bytes", "4096", NULL};
  lan_up(&l, small);
  traffic(&l); /* the switch learns b */
  uint8_t f[64], ma[6], mb[6];
  mac_of(0, ma);
  mac_of(1, mb);
  for (int k = 0; k < 100; k++) { /* 76 bytes each in the file */
    cr_assert_eq(wtc_send_frame(l.cli[0].s, f, marked(f, mb, ma, (uint8_t)k)), 0);
    pump(&l, 1);
  }
  for (int i = 0; i < 300 && l.cli[1].marked < 101; i++)
    pump(&l, 1);
  cr_assert_eq(l.cli[1].marked, 101);
  lan_down(&l);
  b = slurp(path, &len);
  cr_assert_leq(len, 4096);
  cr_assert_gt(len, 4096 - 76, "the file stops near its bound (%zu bytes)", len);
  pcap_parse(b, len, NULL, 0);
  free(b);
  unlink(path);
}
