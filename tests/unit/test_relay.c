/*
 * relay.c: the per-client shares (rooms only once registered, rooms per
 * client, their creation rate, sessions per room, addresses per room, the
 * bounded rate table). Sessions are stand-ins without a transport (as in
 * fuzz/fuzz_relay_datagram.c): replies fail quietly, the client key is
 * passed to relay_session_open as on_session_request would.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/config.h"
#include "wtrelay/log.h"
#include "wtrelay/net6.h"
#include "wtrelay/relay.h"
#include "wtrelay/timeunit.h"

#define NSESS 64
#define A 0xffff00010a510102ull /* 10.81.1.2 */
#define B 0xffff00010a510202ull /* 10.81.2.2 */
#define C 0xffff00010a510302ull /* 10.81.3.2 */

static struct config cfg;
static struct timer_heap th;
static struct relay r;
static struct session sess[NSESS];
static uint64_t now;

static void setup(void)
{
  log_set_level(LOG_ERROR);
  config_defaults(&cfg);
  cfg.max_sessions = NSESS;
  now = 1000 * NS_PER_S;
  memset(sess, 0, sizeof(sess));
}

static void start(void)
{
  cr_assert_eq(timer_heap_init(&th, 1024), 0);
  cr_assert_eq(relay_init(&r, &cfg, &th, &now), 0);
}

static void stop(void)
{
  for (int i = 0; i < NSESS; i++)
    if (sess[i].app_data)
      relay_session_closed(&r, &sess[i], 0, "end");
  cr_assert_eq(r.nrooms, 0, "rooms left after every session ended: %u", r.nrooms);
  relay_fini(&r);
  timer_heap_fini(&th);
}

/* CONNECT of session i to path from client: the status. */
static int open_s(int i, const char *path, uint64_t client)
{
  memset(&sess[i], 0, sizeof(sess[i]));
  snprintf(sess[i].path, sizeof(sess[i].path), "%s", path);
  return relay_session_open(&r, &sess[i], client);
}

/* Register of session i with MAC 52:54:00:00:hi:lo: whether it got an
 * address. */
static bool reg(int i, int mac)
{
  char m[80];
  struct relay_peer *p = sess[i].app_data;
  cr_assert_not_null(p);
  int n = snprintf(m, sizeof(m), "%c{\"type\":\"Register\",\"mac\":[82,84,0,0,%d,%d]}", 0,
                   (mac >> 8) & 255, mac & 255);
  relay_on_datagram(&r, p, (const uint8_t *)m, (size_t)n);
  return p->registered;
}

static void end(int i)
{
  cr_assert_not_null(sess[i].app_data);
  relay_session_closed(&r, &sess[i], 0, "bye");
  cr_assert_null(sess[i].app_data);
}

TestSuite(relay_share, .init = setup);

/* Unregistered CONNECTs to new names hold no room: another client still
 * makes one (before: 4 CONNECTs took the 4 rooms and the next got 503). */
Test(relay_share, unregistered_connects_hold_no_room)
{
  cfg.max_rooms = 4;
  cfg.max_rooms_per_client = 4;
  start();
  char name[16];
  for (int i = 0; i < 4; i++) {
    snprintf(name, sizeof(name), "/a%d", i);
    cr_assert_eq(open_s(i, name, A), 200);
  }
  cr_assert_eq(r.nrooms, 0);
  /* a fifth name of A: its share of rooms is waiting already */
  cr_assert_eq(open_s(4, "/a4", A), 429);
  cr_assert_eq(r.ctr.sessions_refused_client_rooms, 1);
  /* a second session to a name A waits for is no new room */
  cr_assert_eq(open_s(5, "/a0", A), 200);
  cr_assert_eq(open_s(10, "/b", B), 200);
  cr_assert(reg(10, 1));
  cr_assert_eq(r.nrooms, 1);
  cr_assert_eq(relay_client_rooms(&r, B), 1);
  cr_assert_eq(relay_client_rooms(&r, A), 0);
  stop();
}

/* Rooms per client (429) against the relay being full (503); a client at
 * its share still joins other rooms. */
Test(relay_share, client_rooms_429_relay_full_503)
{
  cfg.max_rooms = 3;
  cfg.max_rooms_per_client = 2;
  start();
  cr_assert_eq(open_s(0, "/a1", A), 200);
  cr_assert(reg(0, 1));
  cr_assert_eq(open_s(1, "/a2", A), 200);
  cr_assert(reg(1, 2));
  cr_assert_eq(relay_client_rooms(&r, A), 2);
  cr_assert_eq(open_s(2, "/a3", A), 429);
  cr_assert_eq(r.ctr.sessions_refused_client_rooms, 1);
  cr_assert_eq(open_s(3, "/b1", B), 200);
  cr_assert(reg(3, 3));
  cr_assert_eq(r.nrooms, 3);
  cr_assert_eq(open_s(4, "/c1", C), 503);
  cr_assert_eq(r.ctr.sessions_refused_rooms, 1);
  cr_assert_eq(open_s(5, "/b1", A), 200); /* joining is not making */
  cr_assert(reg(5, 5));
  /* the room goes with its last registered session; the slot is free */
  end(3);
  cr_assert_eq(r.nrooms, 3); /* A's session is still in /b1 */
  end(5);
  cr_assert_eq(r.nrooms, 2);
  cr_assert_eq(open_s(6, "/c1", C), 200);
  cr_assert(reg(6, 6));
  stop();
}

/* Two sessions of A wait for the same room X; one more may still wait for
 * another; when the first goes, the other counts instead. */
Test(relay_share, waiting_session_hands_its_count_over)
{
  cfg.max_rooms_per_client = 1;
  start();
  cr_assert_eq(open_s(0, "/x", A), 200);
  cr_assert_eq(open_s(1, "/x", A), 200);
  cr_assert_eq(open_s(2, "/y", A), 429);
  end(0);
  cr_assert_eq(open_s(3, "/y", A), 429, "the second session of /x still counts");
  cr_assert(reg(1, 1));
  cr_assert_eq(relay_client_rooms(&r, A), 1);
  cr_assert_eq(open_s(4, "/y", A), 429);
  stop();
}

/* Made at Register, the checks are made again: two clients waiting for
 * the last slot, the second Register is refused with an Error. */
Test(relay_share, register_rechecks_room_slot)
{
  cfg.max_rooms = 1;
  start();
  cr_assert_eq(open_s(0, "/a", A), 200);
  cr_assert_eq(open_s(1, "/b", B), 200);
  cr_assert(reg(0, 1));
  cr_assert_not(reg(1, 2));
  cr_assert_eq(r.ctr.register_refused_rooms, 1);
  cr_assert_eq(r.nrooms, 1);
  stop();
}

/* Creation rate: a burst, then one a second; rooms that end do not give
 * their tokens back. */
Test(relay_share, creation_rate_token_bucket)
{
  cfg.room_rate = 1;
  cfg.room_burst = 3;
  start();
  char name[16];
  int k = 0;
  for (; k < 3; k++) {
    snprintf(name, sizeof(name), "/r%d", k);
    cr_assert_eq(open_s(k, name, A), 200);
    cr_assert(reg(k, k + 1));
    end(k);
  }
  cr_assert_eq(r.nrooms, 0);
  cr_assert_eq(open_s(k, "/r3", A), 429);
  cr_assert_eq(r.ctr.sessions_refused_client_rate, 1);
  cr_assert_eq(open_s(k, "/r3", B), 200, "the rate is per client");
  end(k);
  now += NS_PER_S;
  cr_assert_eq(open_s(k, "/r3", A), 200);
  cr_assert(reg(k, 9));
  cr_assert_eq(open_s(k + 1, "/r4", A), 429);
  /* a whole burst later the client owes nothing: its slot is free */
  now += 3 * NS_PER_S;
  uint32_t owing = 0;
  for (uint32_t i = 0; i < r.dir->sh.max_clients; i++)
    owing += r.dir->clients[i].tat_ns > now;
  cr_assert_eq(owing, 0);
  stop();
}

/* The rate table is bounded (--max-sessions entries): full, it forgets
 * the client owing least, counted. */
Test(relay_share, rate_table_bounded)
{
  cfg.max_sessions = 2;
  cfg.room_burst = 8;
  start();
  cr_assert_eq(r.dir->sh.max_clients, 2);
  cr_assert_eq(open_s(0, "/a", A), 200);
  cr_assert(reg(0, 1));
  end(0);
  cr_assert_eq(open_s(0, "/b", B), 200);
  cr_assert(reg(0, 2));
  end(0);
  cr_assert_eq(r.ctr.clients_evicted, 0);
  cr_assert_eq(open_s(0, "/c", C), 200);
  cr_assert(reg(0, 3));
  end(0);
  cr_assert_eq(r.ctr.clients_evicted, 1);
  stop();
}

/* Sessions per room from one client, registered or not. */
Test(relay_share, client_sessions_per_room)
{
  cfg.max_client_sessions_per_room = 3;
  start();
  cr_assert_eq(open_s(0, "/x", A), 200);
  cr_assert(reg(0, 1));
  cr_assert_eq(open_s(1, "/x", A), 200);
  cr_assert_eq(open_s(2, "/x", A), 200);
  cr_assert_eq(open_s(3, "/x", A), 429);
  cr_assert_eq(r.ctr.sessions_refused_client_sessions, 1);
  cr_assert_eq(open_s(4, "/x", B), 200);
  cr_assert_eq(open_s(5, "/y", A), 200);
  stop();
}

/* Addresses per client in a room's pool: refused at Register while all
 * of them are live; own sticky leases recycled after; another client
 * still gets an address. */
Test(relay_share, client_address_share)
{
  cfg.prefix = 28; /* pool .10 .. .14: 5 addresses */
  cfg.max_client_addrs_per_room = 2;
  start();
  cr_assert_eq(open_s(0, "/x", A), 200);
  cr_assert(reg(0, 1));
  cr_assert_eq(open_s(1, "/x", A), 200);
  cr_assert(reg(1, 2));
  cr_assert_eq(open_s(2, "/x", A), 200);
  cr_assert_not(reg(2, 3));
  cr_assert_eq(r.ctr.register_refused_share, 1);
  cr_assert_eq(open_s(3, "/x", B), 200);
  cr_assert(reg(3, 4));
  /* A leaves two sticky leases and comes back with new MACs */
  end(0);
  end(1);
  end(2);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(open_s(10 + i, "/x", A), 200);
    cr_assert(reg(10 + i, 100 + i));
  }
  cr_assert_eq(r.ctr.share_recycled, 2);
  uint32_t room = ((struct relay_peer *)sess[3].app_data)->room;
  cr_assert_eq(ippool_client_held(relay_room_pool(&r, room), A), 2);
  /* two addresses never used are left for others */
  cr_assert_eq(open_s(12, "/x", C), 200);
  cr_assert(reg(12, 200));
  cr_assert_eq(open_s(13, "/x", C), 200);
  cr_assert(reg(13, 201));
  stop();
}

/* The defaults let a school behind one NAT address work: 30 students
 * (and their teacher) in one room, reconnecting with new MACs. */
Test(relay_share, school_behind_one_address_defaults)
{
  cfg.max_sessions = NSESS;
  start();
  for (int i = 0; i < 31; i++) {
    cr_assert_eq(open_s(i, "/class", A), 200, "session %d", i);
    cr_assert(reg(i, i + 1), "session %d", i);
  }
  /* everyone reloads: new sessions, new MACs, the old leases are sticky */
  for (int i = 0; i < 31; i++)
    end(i);
  for (int i = 0; i < 31; i++) {
    cr_assert_eq(open_s(i, "/class", A), 200, "session %d", i);
    cr_assert(reg(i, 1000 + i), "session %d", i);
  }
  stop();
}

/* --max-macs-per-uplink reaches the switch (0: the room's bound). */
Test(relay, max_macs_per_uplink_reaches_the_switch, .init = setup)
{
  cfg.max_macs_per_uplink = 9;
  start();
  cr_assert_eq(r.sw.p.max_macs_per_uplink, 9);
  relay_fini(&r);
  timer_heap_fini(&th);
}

/* ---- takeover across workers: two relays (workers 0 and 1) sharing one
 * room directory, wired by a fake of the process layer's control rings (a
 * queue the test delivers by hand, so every step is visible); no threads.
 * Sessions are stand-ins: a probe is "acknowledged" by calling the h3
 * datagram-ack hook with the holder's probe id, and never acknowledged by
 * letting the deadline pass. */

#define W_SESS 16
#define W_QUEUE 32

struct wmsg {
  bool ask;
  uint32_t from, to, gid;
  uint8_t mac[6];
  uint64_t token;
  enum relay_verdict v;
};

static struct relay wr[2];
static struct timer_heap wth[2];
static struct roomdir wdir;
static struct session wsess[2][W_SESS];
static struct wmsg wq[W_QUEUE];
static uint32_t wq_n;
static bool wq_full; /* the fake ring refuses every message */
static uint32_t wself[2] = {0, 1};

static int w_uplink(void *ctx, uint32_t to, uint32_t gid, const struct switch_frame *f)
{
  (void)ctx, (void)to, (void)gid, (void)f;
  return 0;
}

static int w_push(const struct wmsg *m)
{
  if (wq_full || wq_n == W_QUEUE)
    return -ENOBUFS;
  wq[wq_n++] = *m;
  return 0;
}

static int w_ask(void *ctx, uint32_t to, uint32_t gid, const uint8_t mac[6], uint64_t token)
{
  struct wmsg m = {.ask = true, .from = *(uint32_t *)ctx, .to = to, .gid = gid, .token = token};
  memcpy(m.mac, mac, 6);
  return w_push(&m);
}

static int w_answer(void *ctx, uint32_t to, uint64_t token, enum relay_verdict v)
{
  struct wmsg m = {.from = *(uint32_t *)ctx, .to = to, .token = token, .v = v};
  return w_push(&m);
}

static const struct relay_remote_ops w_ops = {.ask = w_ask, .answer = w_answer};

/* Delivers every queued message (and those they cause); the number delivered. */
static uint32_t w_pump(void)
{
  uint32_t n = 0;
  while (wq_n) {
    struct wmsg m = wq[0];
    memmove(wq, wq + 1, (--wq_n) * sizeof(wq[0]));
    if (m.ask)
      relay_takeover_ask(&wr[m.to], m.from, m.gid, m.mac, m.token);
    else
      relay_takeover_verdict(&wr[m.to], m.from, m.token, m.v);
    n++;
  }
  return n;
}

static void w_start(void)
{
  wq_n = 0;
  wq_full = false;
  memset(wsess, 0, sizeof(wsess));
  cr_assert_eq(roomdir_init(&wdir, cfg.max_rooms), 0);
  for (int w = 0; w < 2; w++) {
    cr_assert_eq(timer_heap_init(&wth[w], 1024), 0);
    cr_assert_eq(relay_init(&wr[w], &cfg, &wth[w], &now), 0);
    relay_set_roomdir(&wr[w], &wdir);
    cr_assert_eq(relay_set_uplinks(&wr[w], (uint32_t)w, 2, w_uplink, NULL), 0);
    relay_set_remote(&wr[w], &w_ops, &wself[w]);
  }
}

static void w_stop(void)
{
  for (int w = 1; w >= 0; w--) {
    for (int i = 0; i < W_SESS; i++)
      if (wsess[w][i].app_data)
        relay_session_closed(&wr[w], &wsess[w][i], 0, "end");
    w_pump();
  }
  for (int w = 1; w >= 0; w--) {
    cr_assert_eq(wr[w].nrooms, 0, "worker %d: rooms left: %u", w, wr[w].nrooms);
    relay_fini(&wr[w]);
    timer_heap_fini(&wth[w]);
  }
  cr_assert_eq(wdir.nrooms, 0, "directory rooms left: %u", wdir.nrooms);
  roomdir_fini(&wdir);
}

static struct relay_peer *w_peer(int w, int i)
{
  return wsess[w][i].app_data;
}

static int w_open(int w, int i)
{
  memset(&wsess[w][i], 0, sizeof(wsess[w][i]));
  snprintf(wsess[w][i].path, sizeof(wsess[w][i].path), "/lan");
  return relay_session_open(&wr[w], &wsess[w][i], A);
}

static void w_reg(int w, int i, int mac)
{
  char m[80];
  int n = snprintf(m, sizeof(m), "%c{\"type\":\"Register\",\"mac\":[82,84,0,0,%d,%d]}", 0,
                   (mac >> 8) & 255, mac & 255);
  relay_on_datagram(&wr[w], w_peer(w, i), (const uint8_t *)m, (size_t)n);
}

static void w_advance(uint64_t ns)
{
  now += ns;
  timer_run(&wth[0], now);
  timer_run(&wth[1], now);
}

/* The holder (worker 1, session 0) and a newcomer for its MAC on worker 0
 * (session 0), waiting: the holder's address. */
static uint32_t w_collide(void)
{
  cr_assert_eq(w_open(1, 0), 200);
  w_reg(1, 0, 7);
  cr_assert(w_peer(1, 0)->registered);
  uint32_t ip = w_peer(1, 0)->ip;
  cr_assert_eq(w_open(0, 0), 200);
  w_reg(0, 0, 7);
  struct relay_peer *n = w_peer(0, 0);
  cr_assert_not(n->registered);
  cr_assert_neq(n->remote_token, 0, "the newcomer does not wait for the other worker");
  cr_assert_eq(wq_n, 1, "one ask (to the one other worker)");
  cr_assert(wq[0].ask);
  cr_assert_eq(wq[0].to, 1);
  cr_assert_eq(wr[0].ctr.takeover_remote_asks, 1);
  return ip;
}

TestSuite(relay_takeover_workers, .init = setup);

/* The holder on the other worker does not acknowledge: it is unregistered
 * and closed there, the answer is "released", and the newcomer gets the
 * MAC and the same address. */
Test(relay_takeover_workers, dead_holder_released)
{
  w_start();
  uint32_t ip = w_collide();
  cr_assert_eq(w_pump(), 1);
  struct relay_peer *o = w_peer(1, 0);
  cr_assert_neq(o->probe_id, 0, "the holder was not probed");
  cr_assert_eq(wr[1].ctr.takeover_probes, 1);
  cr_assert_eq(wr[1].ctr.takeover_remote_asks_in, 1);
  cr_assert_eq(wq_n, 0, "answered before the probe's deadline");
  w_advance(299 * NS_PER_MS);
  cr_assert_eq(wq_n, 0, "answered before the probe's deadline (300 ms)");
  cr_assert(o->registered);
  w_advance(2 * NS_PER_MS);
  cr_assert_not(o->registered, "the old session still holds the MAC");
  cr_assert(o->closing, "the old session was not closed");
  cr_assert_eq(wr[1].ctr.takeovers, 1);
  cr_assert_eq(wq_n, 1);
  cr_assert_eq(wq[0].v, RELAY_VERDICT_RELEASED);
  w_pump();
  struct relay_peer *n = w_peer(0, 0);
  cr_assert(n->registered, "the newcomer did not get the MAC");
  cr_assert_eq(n->ip, ip, "the newcomer got another address");
  cr_assert_eq(n->remote_token, 0);
  cr_assert_eq(wr[0].ctr.takeover_remote_released, 1);
  cr_assert_eq(wr[0].ctr.register_refused_busy, 0);
  w_stop();
}

/* The holder acknowledges the probe: it keeps everything and the newcomer
 * is refused (its room copy let go). */
Test(relay_takeover_workers, live_holder_refuses)
{
  w_start();
  w_collide();
  w_pump();
  struct relay_peer *o = w_peer(1, 0);
  relay_session_datagram_ack(&wr[1], &wsess[1][0], o->probe_id, true);
  cr_assert_eq(wq_n, 1);
  cr_assert_eq(wq[0].v, RELAY_VERDICT_ALIVE);
  w_pump();
  struct relay_peer *n = w_peer(0, 0);
  cr_assert_not(n->registered);
  cr_assert_eq(n->remote_token, 0);
  cr_assert_eq(wr[0].ctr.takeover_remote_alive, 1);
  cr_assert_eq(wr[0].ctr.register_refused_busy, 1);
  cr_assert_eq(wr[0].nrooms, 0, "the waiting newcomer's room copy was kept");
  cr_assert(o->registered && !o->closing);
  cr_assert_eq(wr[1].ctr.takeover_refused_alive, 1);
  /* the probe's deadline passes: nothing more happens */
  w_advance(3 * NS_PER_S);
  cr_assert(o->registered);
  cr_assert_eq(wq_n, 0);
  w_stop();
}

/* A lost probe is sent again; an acknowledgement of an old probe id does
 * not decide. */
Test(relay_takeover_workers, lost_probe_again)
{
  w_start();
  w_collide();
  w_pump();
  struct relay_peer *o = w_peer(1, 0);
  uint64_t first = o->probe_id;
  relay_session_datagram_ack(&wr[1], &wsess[1][0], first, false);
  cr_assert_neq(o->probe_id, first);
  cr_assert_eq(wr[1].ctr.takeover_probes, 2);
  relay_session_datagram_ack(&wr[1], &wsess[1][0], first, true);
  cr_assert_eq(wq_n, 0, "an old probe's ack decided");
  relay_session_datagram_ack(&wr[1], &wsess[1][0], o->probe_id, true);
  cr_assert_eq(wq_n, 1);
  cr_assert_eq(wq[0].v, RELAY_VERDICT_ALIVE);
  w_stop();
}

/* The newcomer goes away while it waits: the verdict that comes later
 * matches nothing (counted), and nothing is left behind. */
Test(relay_takeover_workers, newcomer_leaves_then_verdict_unknown)
{
  w_start();
  w_collide();
  w_pump();
  relay_session_closed(&wr[0], &wsess[0][0], 0, "gone");
  cr_assert_eq(wr[0].nrooms, 0);
  w_advance(400 * NS_PER_MS);
  cr_assert_eq(wq_n, 1);
  w_pump();
  cr_assert_eq(wr[0].ctr.takeover_remote_unknown, 1);
  cr_assert_eq(wr[0].ctr.takeover_remote_released, 0);
  /* a made-up token too */
  relay_takeover_verdict(&wr[0], 1, 0x1234500000003ull, RELAY_VERDICT_RELEASED);
  cr_assert_eq(wr[0].ctr.takeover_remote_unknown, 2);
  w_stop();
}

/* The holder's session ends while probed: released at once. */
Test(relay_takeover_workers, holder_ends_while_probed)
{
  w_start();
  uint32_t ip = w_collide();
  w_pump();
  relay_session_closed(&wr[1], &wsess[1][0], 0, "gone");
  cr_assert_eq(wq_n, 1);
  cr_assert_eq(wq[0].v, RELAY_VERDICT_RELEASED);
  w_pump();
  cr_assert(w_peer(0, 0)->registered);
  cr_assert_eq(w_peer(0, 0)->ip, ip);
  w_stop();
}

/* A holder already closing hands the MAC over without a probe. */
Test(relay_takeover_workers, closing_holder_at_once)
{
  w_start();
  uint32_t ip = w_collide();
  w_peer(1, 0)->closing = true;
  w_pump();
  cr_assert_eq(wr[1].ctr.takeover_probes, 0);
  cr_assert(w_peer(0, 0)->registered, "the newcomer waited for a closing holder");
  cr_assert_eq(w_peer(0, 0)->ip, ip);
  w_stop();
}

/* No verdict (the other worker never answers): refused at the deadline. */
Test(relay_takeover_workers, deadline_refuses)
{
  w_start();
  w_collide();
  wq_n = 0; /* the ask is lost */
  w_advance(2999 * NS_PER_MS);
  cr_assert_neq(w_peer(0, 0)->remote_token, 0);
  w_advance(2 * NS_PER_MS);
  cr_assert_eq(w_peer(0, 0)->remote_token, 0);
  cr_assert_not(w_peer(0, 0)->registered);
  cr_assert_eq(wr[0].ctr.takeover_remote_timeouts, 1);
  cr_assert_eq(wr[0].ctr.register_refused_busy, 1);
  cr_assert(w_peer(1, 0)->registered);
  w_stop();
}

/* A full control ring: the ask is dropped and counted, the Register is
 * refused at once as before. */
Test(relay_takeover_workers, full_ring_refuses_and_counts)
{
  w_start();
  cr_assert_eq(w_open(1, 0), 200);
  w_reg(1, 0, 7);
  wq_full = true;
  cr_assert_eq(w_open(0, 0), 200);
  w_reg(0, 0, 7);
  cr_assert_eq(w_peer(0, 0)->remote_token, 0);
  cr_assert_eq(wr[0].ctr.takeover_remote_ring_drops, 1);
  cr_assert_eq(wr[0].ctr.register_refused_busy, 1);
  wq_full = false;
  w_stop();
}

/* The other worker has no session with the MAC (the holder left before
 * the ask arrived): "not here" from every worker re-runs the Register,
 * which now succeeds; a worker without the room answers "not here" too. */
Test(relay_takeover_workers, not_here_registers_again)
{
  w_start();
  uint32_t ip = w_collide();
  /* the holder leaves; its release reaches the pool before the ask */
  relay_session_closed(&wr[1], &wsess[1][0], 0, "gone");
  cr_assert_eq(wq_n, 1, "a holder not probed yet answered something");
  w_pump();
  cr_assert_eq(wr[0].ctr.takeover_remote_not_here, 1);
  cr_assert(w_peer(0, 0)->registered);
  cr_assert_eq(w_peer(0, 0)->ip, ip);
  w_stop();
}

/* The same MAC on the same worker keeps the local takeover (no ask). */
Test(relay_takeover_workers, same_worker_stays_local)
{
  w_start();
  cr_assert_eq(w_open(0, 0), 200);
  w_reg(0, 0, 9);
  cr_assert_eq(w_open(0, 1), 200);
  w_reg(0, 1, 9);
  cr_assert_eq(wq_n, 0, "asked another worker for a local holder");
  cr_assert_neq(w_peer(0, 1)->waiting_on, 0);
  w_advance(301 * NS_PER_MS);
  cr_assert(w_peer(0, 1)->registered);
  cr_assert_eq(wr[0].ctr.takeovers, 1);
  w_stop();
}

/* ---- IPv6 DAD claims across workers ---- */

/* A frame from session (w, i), whose MAC is 52:54:00:00:00:<mac>, of an
 * ICMPv6 message from src to dst (a DAD NS when src is ::). */
static void w_icmp6(int w, int i, int mac, const uint8_t src[16], const uint8_t dst[16],
                    uint8_t type, const uint8_t *data, size_t len)
{
  uint8_t f[256], emac[6] = {0x52, 0x54, 0, 0, 0, (uint8_t)mac}, dmac[6];
  net6_multicast_mac(dmac, dst);
  struct net_l2 l2 = {.dst_mac = dmac, .src_mac = emac};
  int n = net_build_icmp6(f + 1, sizeof(f) - 1, &l2, src, dst, 255, type, 0, (const uint8_t[4]){0},
                          data, len);
  cr_assert_gt(n, 0);
  f[0] = 0x01;
  relay_on_datagram(&wr[w], w_peer(w, i), f, (size_t)n + 1);
}

static void w_join(int w, int i, int mac)
{
  cr_assert_eq(w_open(w, i), 200);
  w_reg(w, i, mac);
  cr_assert(w_peer(w, i)->registered);
}

static void w_dad(int w, int i, int mac, const uint8_t target[16])
{
  uint8_t any[16] = {0}, snm[16];
  net6_solicited_node(snm, target);
  w_icmp6(w, i, mac, any, snm, 135, target, 16);
}

static void w_ping_from(int w, int i, int mac, const uint8_t src[16])
{
  const uint8_t all[16] = {0xff, 2, [15] = 1};
  w_icmp6(w, i, mac, src, all, 128, (const uint8_t *)"ping", 4);
}

/* Two sessions of one room on two workers: a privacy address claimed by
 * DAD on worker 0 is refused to the session on worker 1, whose frames
 * from it are dropped as spoofed, until the holder's session ends and
 * gives it back; then worker 1's DAD for it takes it. */
Test(relay_takeover_workers, ipv6_dad_claims_unique_across_workers)
{
  w_start();
  w_join(0, 0, 1);
  w_join(1, 0, 2);
  const uint8_t priv[16] = {0xfe, 0x80, [8] = 0x3c, 0x91, 0x07, 0x5e, 0xa2, 0x44, 0x18, 0x6b};
  w_dad(0, 0, 1, priv);
  cr_assert_eq(wr[0].ctr.claims6_added, 1);
  w_dad(1, 0, 2, priv);
  cr_assert_eq(wr[1].ctr.claims6_refused, 1, "held on the other worker, yet claimed here");
  cr_assert_eq(wr[1].ctr.claims6_added, 0);
  uint64_t spoof = wr[1].ctr.guard_drops[LANGUARD_IP6_SPOOF];
  w_ping_from(1, 0, 2, priv);
  cr_assert_eq(wr[1].ctr.guard_drops[LANGUARD_IP6_SPOOF], spoof + 1);
  uint64_t in0 = wr[0].ctr.frames_in;
  w_ping_from(0, 0, 1, priv);
  cr_assert_eq(wr[0].ctr.frames_in, in0 + 1, "the holder's frame from its address was dropped");
  /* the holder's session ends: the address is free for the other */
  relay_session_closed(&wr[0], &wsess[0][0], 0, "end");
  cr_assert_eq(wdir.nclaims6, 0, "the ended session's claim is still held");
  w_dad(1, 0, 2, priv);
  cr_assert_eq(wr[1].ctr.claims6_added, 1);
  uint64_t in1 = wr[1].ctr.frames_in;
  w_ping_from(1, 0, 2, priv);
  cr_assert_eq(wr[1].ctr.frames_in, in1 + 1);
  cr_assert_eq(wdir.nclaims6, 1);
  /* four more claims: the oldest (priv) is given back for the newest */
  uint8_t more[16];
  memcpy(more, priv, 16);
  for (int k = 0; k < 4; k++) {
    more[15] = (uint8_t)(0x70 + k);
    w_dad(1, 0, 2, more);
  }
  cr_assert_eq(wr[1].ctr.claims6_added, 5);
  cr_assert_eq(wdir.nclaims6, 4, "a session holds more than its 4 claims");
  w_join(0, 1, 3);
  w_dad(0, 1, 3, priv);
  cr_assert_eq(wr[0].ctr.claims6_added, 2, "the replaced claim was not given back");
  relay_session_closed(&wr[1], &wsess[1][0], 0, "end");
  relay_session_closed(&wr[0], &wsess[0][1], 0, "end");
  cr_assert_eq(wdir.nclaims6, 0);
  w_stop();
}
