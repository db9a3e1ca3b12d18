/*
 * The virtual switch end to end: the real relay binary and several native
 * clients (the wtc library) in one test process. Rooms, flooding, learning,
 * chunking both ways, port security, and a receiver that stops reading.
 * Every wait is bounded; the relay is started per test and stopped with
 * SIGTERM (it must exit 0).
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

#include "wtrelay/gateway.h"
#include "wtrelay/log.h"
#include "wtrelay/timeunit.h"
#include "wtrelay/tls.h"
#include "wtrelay/wtc.h"

#include "relay_proc.h"

#define MAXS 8

static void relay_start(struct relay_proc *rp, const char *extra)
{
  const char *argv[] = {extra, NULL};
  relay_proc_start(rp, false, argv);
}

/* What each session received. */
struct got {
  uint32_t frames;
  size_t last_len;
  uint8_t last[WTC_MAX_FRAME];
};

struct net {
  struct relay_proc rp;
  struct wtc c;
  struct wtc_session *s[MAXS];
  struct got got[MAXS];
  uint32_t n;
};

static void on_frame(void *user, struct wtc_session *s, const uint8_t *frame, size_t len)
{
  struct got *g = &((struct got *)user)[s->idx];
  g->frames++;
  g->last_len = len;
  memcpy(g->last, frame, len < sizeof(g->last) ? len : sizeof(g->last));
}

static const struct wtc_ops ops = {.on_frame = on_frame};

static void mac_of(uint32_t i, uint8_t mac[6])
{
  const uint8_t m[6] = {0x52, 0x54, 0x00, 0x5e, 0x00, (uint8_t)(0x10 + i)};
  memcpy(mac, m, 6);
}

struct want {
  struct wtc_session **s;
  uint32_t n;
  enum wtc_state st;
};

static bool all_in(void *arg)
{
  struct want *w = arg;
  for (uint32_t i = 0; i < w->n; i++)
    if (w->s[i]->state != w->st)
      return false;
  return true;
}

/* Opens and registers n sessions on `c` to url; session i gets mac_of(base + i). */
static void open_sessions(struct wtc *c, struct wtc_session **s, uint32_t n, uint32_t base)
{
  for (uint32_t i = 0; i < n; i++)
    cr_assert_eq(wtc_open(c, &s[i]), 0);
  struct want w = {s, n, WTC_OPEN};
  cr_assert_eq(wtc_run(c, 10000 * NS_PER_MS, all_in, &w), 0, "sessions did not open");
  for (uint32_t i = 0; i < n; i++) {
    uint8_t mac[6];
    mac_of(base + i, mac);
    cr_assert_eq(wtc_register(s[i], mac), 0);
  }
  w.st = WTC_REGISTERED;
  cr_assert_eq(wtc_run(c, 10000 * NS_PER_MS, all_in, &w), 0, "sessions did not register");
}

static void net_up(struct net *nt, const char *room, uint32_t n, const char *extra)
{
  char url[128];
  memset(nt, 0, sizeof(*nt));
  log_set_level(LOG_WARN);
  relay_start(&nt->rp, extra);
  snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", nt->rp.port, room);
  cr_assert_eq(wtc_init(&nt->c, url, nt->rp.hash, MAXS, &ops, nt->got), 0);
  nt->n = n;
  open_sessions(&nt->c, nt->s, n, 0);
}

static void net_down(struct net *nt)
{
  wtc_fini(&nt->c);
  relay_proc_stop(&nt->rp);
}

/* An Ethernet frame of len bytes; payload bytes are a pattern of `seed`. */
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

static const uint8_t BC[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

struct frames_at_least {
  struct got *g;
  uint32_t idx, n;
};

static bool frames_reached(void *arg)
{
  struct frames_at_least *f = arg;
  return f->g[f->idx].frames >= f->n;
}

static void settle(struct wtc *c, uint64_t ms)
{
  wtc_run(c, ms * NS_PER_MS, NULL, NULL);
}

static void wait_frames(struct net *nt, uint32_t idx, uint32_t n)
{
  struct frames_at_least f = {nt->got, idx, n};
  cr_assert_eq(wtc_run(&nt->c, 5000 * NS_PER_MS, frames_reached, &f), 0,
               "session %u got %u frames, expected %u", idx, nt->got[idx].frames, n);
}

Test(switch_e2e, broadcast_unicast_and_rooms, .timeout = 60)
{
  struct net nt;
  uint8_t f[1514], ma[6], mb[6];
  net_up(&nt, "/lan", 3, NULL);
  /* a fourth session in another room */
  struct wtc other;
  struct got other_got[MAXS] = {0};
  struct wtc_session *os[1];
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/other", nt.rp.port);
  cr_assert_eq(wtc_init(&other, url, nt.rp.hash, 1, &ops, other_got), 0);
  open_sessions(&other, os, 1, 7);

  mac_of(0, ma);
  mac_of(1, mb);
  /* ARP broadcast from 0 reaches 1 and 2, not 0, not the other room */
  size_t len = frame(f, BC, ma, 0x88b5, 42, 1);
  cr_assert_eq(wtc_send_frame(nt.s[0], f, len), 0);
  wait_frames(&nt, 1, 1);
  wait_frames(&nt, 2, 1);
  settle(&nt.c, 200);
  settle(&other, 100);
  cr_assert_eq(nt.got[0].frames, 0, "the sender got its own broadcast");
  cr_assert_eq(other_got[0].frames, 0, "a broadcast crossed rooms");
  cr_assert_eq(nt.got[1].last_len, 42);
  cr_assert_arr_eq(nt.got[1].last, f, 42);

  /* unicast reply 1 -> 0 after learning reaches only 0 */
  len = frame(f, ma, mb, 0x88b5, 42, 2);
  cr_assert_eq(wtc_send_frame(nt.s[1], f, len), 0);
  wait_frames(&nt, 0, 1);
  settle(&nt.c, 200);
  cr_assert_eq(nt.got[2].frames, 1, "unicast to a learned MAC was flooded");
  cr_assert_arr_eq(nt.got[0].last, f, 42);

  /* and 0 -> 1 now goes only to 1 */
  len = frame(f, mb, ma, 0x88b6, 100, 3);
  cr_assert_eq(wtc_send_frame(nt.s[0], f, len), 0);
  wait_frames(&nt, 1, 2);
  settle(&nt.c, 200);
  cr_assert_eq(nt.got[2].frames, 1);
  cr_assert_eq(nt.got[0].frames, 1);

  /* the other room's broadcast never reaches this one */
  uint8_t mo[6];
  mac_of(7, mo);
  len = frame(f, BC, mo, 0x88b5, 42, 4);
  cr_assert_eq(wtc_send_frame(os[0], f, len), 0);
  settle(&other, 100);
  settle(&nt.c, 200);
  cr_assert_eq(nt.got[0].frames + nt.got[1].frames + nt.got[2].frames, 1 + 2 + 1);
  wtc_fini(&other);
  net_down(&nt);
}

Test(switch_e2e, large_frames_chunked_both_ways, .timeout = 60)
{
  struct net nt;
  uint8_t f[1514], ma[6], mb[6];
  net_up(&nt, "/", 2, NULL);
  mac_of(0, ma);
  mac_of(1, mb);
  /* teach the switch where 0 and 1 are */
  size_t len = frame(f, BC, mb, 0x88b5, 42, 0);
  wtc_send_frame(nt.s[1], f, len);
  wait_frames(&nt, 0, 1);

  /* 1514 bytes: chunked by the client, reassembled by the relay, chunked
   * again toward 1 (it does not fit one datagram), reassembled there */
  len = frame(f, mb, ma, 0x88b6, 1514, 9);
  uint64_t chunks_before = nt.s[1]->chunks_in;
  cr_assert_eq(wtc_send_frame(nt.s[0], f, len), 0);
  cr_assert_gt(nt.s[0]->chunks_out, 0, "the client should have chunked 1514 bytes");
  wait_frames(&nt, 1, 1);
  cr_assert_eq(nt.got[1].last_len, 1514);
  cr_assert_arr_eq(nt.got[1].last, f, 1514);
  cr_assert_gt(nt.s[1]->chunks_in, chunks_before, "relay should chunk 1514 bytes toward 1");

  /* 1380 bytes sent as the seed and browsers do (900 + 480 chunks): the
   * relay reassembles it and sends it whole, because it fits (a path MTU
   * of 1444 toward this client leaves 1404 bytes for a datagram beside a
   * 16-byte connection id, minus the QUIC layer's 10-byte anchor room) */
  len = frame(f, mb, ma, 0x88b6, 1380, 10);
  uint8_t c0[5 + 900], c1[5 + 480];
  c0[0] = c1[0] = 0x02;
  memcpy(c0 + 1, (uint8_t[]){0x12, 0x34, 0, 2}, 4);
  memcpy(c1 + 1, (uint8_t[]){0x12, 0x34, 1, 2}, 4);
  memcpy(c0 + 5, f, 900);
  memcpy(c1 + 5, f + 900, 480);
  chunks_before = nt.s[1]->chunks_in;
  cr_assert_eq(wtc_send_raw(nt.s[0], c1, sizeof(c1)), 0); /* out of order */
  cr_assert_eq(wtc_send_raw(nt.s[0], c0, sizeof(c0)), 0);
  wait_frames(&nt, 1, 2);
  cr_assert_eq(nt.got[1].last_len, 1380);
  cr_assert_arr_eq(nt.got[1].last, f, 1380);
  cr_assert_eq(nt.s[1]->chunks_in, chunks_before, "1380 bytes fit one datagram: no chunks");

  /* so does the TCP NAT's full segment toward a guest (54 bytes of
   * Ethernet, IPv4 and TCP headers before TCP_MSS_TO_GUEST bytes): a
   * segment that had to be chunked would cost two datagrams */
  len = frame(f, mb, ma, 0x88b6, 54 + TCP_MSS_TO_GUEST, 12);
  cr_assert_eq(wtc_send_frame(nt.s[0], f, len), 0);
  wait_frames(&nt, 1, 3);
  cr_assert_eq(nt.got[1].last_len, len);
  cr_assert_eq(nt.s[1]->chunks_in, chunks_before, "a full TCP NAT segment must fit one datagram");

  /* a frame over --max-frame-size (1514) is dropped, the next one passes */
  uint8_t big[5 + 900];
  big[0] = 0x02;
  memset(big + 5, 0x55, 900);
  for (uint8_t k = 0; k < 2; k++) {
    memcpy(big + 1, (uint8_t[]){0x00, 0x77, k, 2}, 4);
    memcpy(big + 5, f, 14);
    wtc_send_raw(nt.s[0], big, sizeof(big)); /* 2 x 900 = 1800 bytes */
  }
  len = frame(f, mb, ma, 0x88b6, 60, 11);
  wtc_send_frame(nt.s[0], f, len);
  wait_frames(&nt, 1, 4);
  cr_assert_eq(nt.got[1].last_len, 60, "the oversized frame must not arrive");
  net_down(&nt);
}

Test(switch_e2e, spoofed_source_mac_dropped, .timeout = 60)
{
  struct net nt;
  uint8_t f[100], ma[6], mx[6];
  net_up(&nt, "/", 2, NULL);
  mac_of(0, ma);
  mac_of(5, mx); /* not 0's registered MAC */
  size_t len = frame(f, BC, mx, 0x88b5, 60, 1);
  cr_assert_eq(wtc_send_frame(nt.s[0], f, len), 0);
  len = frame(f, BC, ma, 0x88b5, 61, 2);
  cr_assert_eq(wtc_send_frame(nt.s[0], f, len), 0);
  wait_frames(&nt, 1, 1);
  settle(&nt.c, 200);
  cr_assert_eq(nt.got[1].frames, 1, "the spoofed frame was delivered");
  cr_assert_eq(nt.got[1].last_len, 61);
  net_down(&nt);
}

Test(switch_e2e, allow_any_src_mac_flag, .timeout = 60)
{
  struct net nt;
  uint8_t f[100], mx[6];
  net_up(&nt, "/", 2, "--allow-any-src-mac");
  mac_of(5, mx);
  size_t len = frame(f, BC, mx, 0x88b5, 60, 1);
  cr_assert_eq(wtc_send_frame(nt.s[0], f, len), 0);
  wait_frames(&nt, 1, 1);
  net_down(&nt);
}

Test(switch_e2e, stalled_receiver_does_not_stall_others, .timeout = 120)
{
  struct net nt;
  uint8_t f[1000], ma[6];
  /* 3000 broadcasts as fast as the client sends them: storm control off,
   * this is about a receiver that stops reading */
  net_up(&nt, "/", 2, "--flood-rate=0");
  /* the stalled receiver: its own client endpoint, never run again after
   * registering, so it neither reads nor acknowledges */
  struct wtc stalled;
  struct got stalled_got[MAXS] = {0};
  struct wtc_session *ss[1];
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/", nt.rp.port);
  cr_assert_eq(wtc_init(&stalled, url, nt.rp.hash, 1, &ops, stalled_got), 0);
  open_sessions(&stalled, ss, 1, 6);

  mac_of(0, ma);
  uint32_t sent = 0;
  const uint32_t total = 3000;
  for (uint32_t i = 0; i < total / 10; i++) {
    for (int k = 0; k < 10; k++) {
      size_t len = frame(f, BC, ma, 0x88b6, sizeof(f), (uint8_t)k);
      if (wtc_send_frame(nt.s[0], f, len) == 0)
        sent++;
    }
    settle(&nt.c, 1);
  }
  struct frames_at_least want = {nt.got, 1, sent};
  wtc_run(&nt.c, 3000 * NS_PER_MS, frames_reached, &want);
  cr_log_info("sent %u broadcasts, live receiver got %u (the stalled one not reading)", sent,
              nt.got[1].frames);
  cr_assert_geq(sent, total * 9 / 10, "the sender itself was throttled: %u of %u", sent, total);
  cr_assert_geq(nt.got[1].frames, sent * 95 / 100,
                "the live receiver got %u of %u while another stalled", nt.got[1].frames, sent);
  /* Now the stalled client reads again. What waits in its socket is what
   * the relay's congestion window let out without acknowledgements: some
   * of the flood, far from all of it (the relay dropped for it instead of
   * queueing without bound, and the sender and the live receiver never
   * noticed). Its session survived the stall: a unicast frame sent to it
   * now arrives whole. */
  settle(&stalled, 300);
  uint32_t during = stalled_got[0].frames;
  cr_log_info("the stalled receiver, reading again, found %u of %u broadcasts", during, sent);
  cr_assert_gt(during, 0, "nothing was ever sent to the stalled receiver");
  cr_assert_lt(during, sent / 2, "the relay queued %u of %u frames for a receiver that never read",
               during, sent);
  uint8_t ms[6];
  mac_of(6, ms);
  size_t len = frame(f, ms, ma, 0x88b5, 200, 0x42); /* not IPv4: the LAN guard would drop it */
  cr_assert_eq(wtc_send_frame(nt.s[0], f, len), 0);
  for (int i = 0; i < 100 && !(stalled_got[0].frames > during && stalled_got[0].last_len == 200);
       i++) {
    settle(&nt.c, 5);
    settle(&stalled, 45);
  }
  cr_assert_gt(stalled_got[0].frames, during, "the stalled receiver's session did not recover");
  cr_assert_eq(stalled_got[0].last_len, 200, "the unicast frame did not arrive last");
  cr_assert_arr_eq(stalled_got[0].last, f, 200);
  wtc_fini(&stalled);
  net_down(&nt);
}

/* What a receiver got, by kind: broadcast (flood copies) or unicast. */
struct kinds {
  uint32_t bcast, unicast;
};

static void count_kind(void *user, struct wtc_session *s, const uint8_t *fr, size_t len)
{
  struct kinds *k = user;
  if (len >= 6 && memcmp(fr, BC, 6) == 0)
    k->bcast++;
  else
    k->unicast++;
}

static const struct wtc_ops kind_ops = {.on_frame = count_kind};

static bool kinds_reached(void *arg)
{
  const uint32_t *want = arg;
  const struct kinds *k = (const struct kinds *)(want + 1);
  return k->unicast >= want[0];
}

/* Storm control at the receiver: flood copies may take at most half of a
 * session's datagram queue (64), so unicast to a receiver that stopped
 * reading still finds room after a flood filled what floods may take. The
 * receiver stalls (never runs, so it neither reads nor acknowledges), 200
 * broadcasts reach the relay, then 200 unicast frames to the receiver;
 * when it runs again it gets what the relay had sent or queued for it. */
Test(switch_e2e, flood_copies_leave_the_queue_to_unicast, .timeout = 120)
{
  struct net nt;
  uint8_t f[1000], ma[6], ms[6];
  net_up(&nt, "/", 1, "--flood-rate=0");
  struct {
    uint32_t want;
    struct kinds k;
  } st = {0};
  struct wtc stalled;
  struct wtc_session *ss[1];
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/", nt.rp.port);
  cr_assert_eq(wtc_init(&stalled, url, nt.rp.hash, 1, &kind_ops, &st.k), 0);
  open_sessions(&stalled, ss, 1, 6);
  mac_of(0, ma);
  mac_of(6, ms);
  /* the receiver makes itself known, then stalls */
  wtc_send_frame(ss[0], f, frame(f, BC, ms, 0x88b5, 60, 1));
  settle(&stalled, 100);
  settle(&nt.c, 100);
  for (uint32_t i = 0; i < 200; i++) {
    wtc_send_frame(nt.s[0], f, frame(f, BC, ma, 0x88b6, sizeof(f), (uint8_t)i));
    if (i % 20 == 19)
      settle(&nt.c, 5);
  }
  settle(&nt.c, 100);
  for (uint32_t i = 0; i < 200; i++) {
    wtc_send_frame(nt.s[0], f, frame(f, ms, ma, 0x88b6, sizeof(f), (uint8_t)i));
    if (i % 20 == 19)
      settle(&nt.c, 5);
  }
  settle(&nt.c, 100);
  /* the receiver reads again */
  st.want = 200;
  wtc_run(&stalled, 4000 * NS_PER_MS, kinds_reached, &st);
  cr_log_info("stalled receiver got %u flood copies and %u unicast frames", st.k.bcast,
              st.k.unicast);
  cr_assert_leq(st.k.bcast, 60,
                "flood copies took more than half the queue (plus the congestion window)");
  cr_assert_geq(st.k.unicast, 28, "unicast found no room behind %u flood copies", st.k.bcast);
  wtc_fini(&stalled);
  net_down(&nt);
}
