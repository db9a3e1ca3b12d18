/*
 * relay.c: the per-client shares (rooms only once registered, rooms per
 * client, their creation rate, sessions per room, addresses per room, the
 * bounded rate table). Sessions are stand-ins without a transport (as in
 * fuzz/fuzz_relay_datagram.c): replies fail quietly, the client key is
 * passed to relay_session_open as on_session_request would.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/config.h"
#include "wtrelay/log.h"
#include "wtrelay/relay.h"
#include "wtrelay/timeunit.h"

#define NSESS 64
#define A 0xffff00010a510102ull /* 10.81.1.2 */
#define B 0xffff00010a510202ull /* 10.81.2.2 */
#define C 0xffff00010a510302ull /* 10.81.3.2 */

static struct config cfg;
static struct timer_heap th;
static struct relay r;
static struct h3_session sess[NSESS];
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
      relay_h3_ops.on_session_closed(&r, &sess[i], 0, "end");
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
  relay_h3_ops.on_session_closed(&r, &sess[i], 0, "bye");
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
