/*
 * roomdir: the process's rooms as every worker shares them: one pool per
 * room whatever the number of copies, the room freed with its last copy,
 * and ring ids that change when a slot is made again (a frame of an ended
 * room still in a worker ring never reaches the room that took its slot).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/roomdir.h"

#define FIRST 0x0a00020au /* 10.0.2.10 */
#define LAST 0x0a0002feu  /* 10.0.2.254 */

static uint32_t join(struct roomdir *d, const char *name, bool *made)
{
  uint32_t id;
  cr_assert_eq(roomdir_join(d, name, FIRST, LAST, 0, 0, 1, &id, made), 0);
  return id;
}

Test(roomdir, copies_share_one_pool)
{
  struct roomdir d;
  bool made;
  cr_assert_eq(roomdir_init(&d, 4), 0);
  roomdir_lock(&d);
  uint32_t a = join(&d, "/lan", &made);
  cr_assert(made);
  uint32_t b = join(&d, "/lan", &made); /* a second worker's copy */
  cr_assert_not(made);
  cr_assert_eq(a, b);
  cr_assert_eq(d.nrooms, 1);
  /* an address taken through one copy is taken for the other */
  const uint8_t mac1[6] = {0x52, 0x54, 0, 0, 0, 1}, mac2[6] = {0x52, 0x54, 0, 0, 0, 2};
  uint32_t ip1, ip2, again;
  cr_assert_eq(ippool_acquire_for(roomdir_pool(&d, a), mac1, 1, &ip1, 1), 0);
  cr_assert_eq(ippool_acquire_for(roomdir_pool(&d, b), mac2, 1, &ip2, 1), 0);
  cr_assert_neq(ip1, ip2);
  cr_assert_eq(ippool_acquire_for(roomdir_pool(&d, b), mac1, 1, &again, 1), -EBUSY,
               "a MAC live through one copy must be busy for the other");
  roomdir_leave(&d, a, 2);
  cr_assert_eq(d.nrooms, 1, "one copy left: the room stays");
  cr_assert(d.rooms[a].used);
  roomdir_leave(&d, b, 3);
  cr_assert_eq(d.nrooms, 0);
  cr_assert_not(d.rooms[a].used);
  roomdir_unlock(&d);
  roomdir_fini(&d);
}

Test(roomdir, ring_id_changes_when_a_slot_is_made_again)
{
  struct roomdir d;
  bool made;
  cr_assert_eq(roomdir_init(&d, 1), 0);
  uint32_t a = join(&d, "/one", &made);
  uint32_t id1 = roomdir_ring_id(&d, a);
  cr_assert_eq(ROOMDIR_SLOT(id1), a);
  roomdir_leave(&d, a, 2);
  uint32_t b = join(&d, "/two", &made);
  cr_assert_eq(b, a, "the only slot is reused");
  uint32_t id2 = roomdir_ring_id(&d, b);
  cr_assert_eq(ROOMDIR_SLOT(id2), b);
  cr_assert_neq(id1, id2, "a frame of /one must not match /two");
  /* a full directory refuses a new name, joins an existing one */
  uint32_t x;
  cr_assert_eq(roomdir_join(&d, "/three", FIRST, LAST, 0, 0, 3, &x, &made), -ENOSPC);
  cr_assert_eq(join(&d, "/two", &made), b);
  roomdir_leave(&d, b, 4);
  roomdir_leave(&d, b, 4);
  roomdir_fini(&d);
}

/* ---- the per-client shares, counted once for the process ---- */

#define NS 1000000000ull
#define CA 0xffff00010a510102ull
#define CB 0xffff00010a510202ull

static const struct roomdir_pool_params PP = {.first = FIRST, .last = LAST};

static void shares(struct roomdir *d, uint32_t max_rooms, uint32_t rooms, uint32_t burst,
                   uint32_t clients, uint32_t sessions)
{
  cr_assert_eq(roomdir_init(d, max_rooms), 0);
  struct roomdir_shares sh = {.rooms_per_client = rooms,
                              .room_burst = burst,
                              .room_interval_ns = NS,
                              .max_clients = clients,
                              .max_sessions = sessions};
  cr_assert_eq(roomdir_set_shares(d, &sh), 0);
  /* a second relay's shares do not replace the first's */
  struct roomdir_shares other = sh;
  other.rooms_per_client = 99;
  cr_assert_eq(roomdir_set_shares(d, &other), 0);
  cr_assert_eq(d->sh.rooms_per_client, rooms);
}

static int open_r(struct roomdir *d, const char *name, uint64_t client, uint64_t now, uint32_t *id,
                  bool *made)
{
  bool evicted = false;
  return roomdir_open(d, name, client, &PP, now, id, made, &evicted);
}

/* A room the directory holds is joined without the creation checks: a
 * worker's first session of a room made on another worker is no creation
 * (neither the client's rooms nor its tokens are charged). */
Test(roomdir_shares, joining_a_room_is_no_creation)
{
  struct roomdir d;
  uint32_t a, b, x;
  bool made;
  shares(&d, 8, 1, 1, 16, 16);
  cr_assert_eq(open_r(&d, "/a", CA, 10 * NS, &a, &made), 0);
  cr_assert(made);
  cr_assert_eq(d.rooms[a].creator, CA);
  cr_assert_eq(roomdir_client_rooms(&d, CA), 1);
  /* CA is at its one room and has no token left: another worker's copy
   * of /a is still made, and charges nothing */
  cr_assert_eq(open_r(&d, "/a", CA, 10 * NS, &b, &made), 0);
  cr_assert_not(made);
  cr_assert_eq(b, a);
  cr_assert_eq(d.rooms[a].copies, 2);
  cr_assert_eq(roomdir_client_rooms(&d, CA), 1);
  cr_assert_eq(d.nrooms, 1, "rooms, not copies");
  /* a new name is a creation: over CA's rooms */
  cr_assert_eq(open_r(&d, "/b", CA, 20 * NS, &x, &made), -EDQUOT);
  /* the room ends with its last copy; then CA may make another */
  roomdir_leave(&d, a, 30 * NS);
  cr_assert_eq(roomdir_client_rooms(&d, CA), 1, "one copy left");
  roomdir_leave(&d, a, 30 * NS);
  cr_assert_eq(roomdir_client_rooms(&d, CA), 0);
  cr_assert_eq(open_r(&d, "/b", CA, 30 * NS, &x, &made), 0);
  cr_assert(made);
  roomdir_leave(&d, x, 31 * NS);
  roomdir_fini(&d);
}

/* The creation rate: a burst, then one an interval, whichever worker asks
 * (one table); ended rooms give no token back; per client. */
Test(roomdir_shares, creation_rate_burst_then_one_an_interval)
{
  struct roomdir d;
  uint32_t id[8];
  bool made;
  uint64_t now = 100 * NS;
  shares(&d, 8, 8, 3, 16, 16);
  char name[8];
  for (int i = 0; i < 3; i++) {
    snprintf(name, sizeof(name), "/r%d", i);
    cr_assert_eq(open_r(&d, name, CA, now, &id[i], &made), 0);
    roomdir_leave(&d, id[i], now);
  }
  cr_assert_eq(d.nrooms, 0);
  cr_assert_not(roomdir_rate_allow(&d, CA, now, false, NULL));
  cr_assert_eq(open_r(&d, "/r3", CA, now, &id[3], &made), -EAGAIN);
  cr_assert_eq(open_r(&d, "/r3", CB, now, &id[3], &made), 0, "the rate is per client");
  cr_assert_eq(d.rooms[id[3]].creator, CB);
  cr_assert_eq(open_r(&d, "/r4", CA, now + NS - 1, &id[4], &made), -EAGAIN);
  cr_assert_eq(open_r(&d, "/r4", CA, now + NS, &id[4], &made), 0);
  cr_assert_eq(open_r(&d, "/r5", CA, now + NS, &id[5], &made), -EAGAIN);
  /* a look takes nothing */
  cr_assert(roomdir_rate_allow(&d, CA, now + 2 * NS, false, NULL));
  cr_assert(roomdir_rate_allow(&d, CA, now + 2 * NS, false, NULL));
  cr_assert(roomdir_rate_allow(&d, CA, now + 2 * NS, true, NULL));
  cr_assert_not(roomdir_rate_allow(&d, CA, now + 2 * NS, false, NULL));
  cr_assert(roomdir_rate_allow(&d, 0, now, true, NULL), "client 0 is never limited");
  roomdir_fini(&d);
}

/* --max-rooms counts rooms, not copies; a full directory still joins. */
Test(roomdir_shares, max_rooms_counts_rooms)
{
  struct roomdir d;
  uint32_t a, b, x;
  bool made;
  shares(&d, 2, 8, 8, 16, 16);
  cr_assert_eq(open_r(&d, "/a", CA, NS, &a, &made), 0);
  cr_assert_eq(open_r(&d, "/a", CB, NS, &x, &made), 0); /* copies on three workers */
  cr_assert_eq(open_r(&d, "/a", CB, NS, &x, &made), 0);
  cr_assert_eq(open_r(&d, "/b", CB, NS, &b, &made), 0);
  cr_assert_eq(d.nrooms, 2);
  cr_assert_eq(open_r(&d, "/c", CB, NS, &x, &made), -ENOSPC);
  cr_assert_eq(open_r(&d, "/b", CA, NS, &x, &made), 0, "a full directory joins");
  cr_assert_eq(roomdir_find(&d, "/b"), b);
  cr_assert_eq(roomdir_find(&d, "/c"), ROOMDIR_NONE);
  roomdir_fini(&d);
}

/* The rate table is bounded: full of owing clients, a new one forgets the
 * client owing least, and says so. */
Test(roomdir_shares, rate_table_bounded)
{
  struct roomdir d;
  bool ev = false;
  shares(&d, 8, 8, 4, 2, 16);
  cr_assert(roomdir_rate_allow(&d, CA, NS, true, &ev));
  cr_assert(roomdir_rate_allow(&d, CA, NS, true, &ev));
  cr_assert(roomdir_rate_allow(&d, CB, NS, true, &ev));
  cr_assert_not(ev);
  cr_assert(roomdir_rate_allow(&d, 0x1234, NS, true, &ev));
  cr_assert(ev, "a third client in a table of two evicts one");
  /* CB owed least (one creation): forgotten, its burst is whole again;
   * CA still owes two */
  cr_assert_eq(d.clients[0].key == CA || d.clients[1].key == CA, true);
  cr_assert_eq(d.clients[0].key == CB || d.clients[1].key == CB, false);
  roomdir_fini(&d);
}

/* Sessions per client and room name: one count for every worker. */
Test(roomdir_shares, sessions_per_client_and_name)
{
  struct roomdir d;
  shares(&d, 8, 8, 8, 16, 8);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(roomdir_session_add(&d, CA, "/lan", 3), 0);
  cr_assert_eq(roomdir_session_add(&d, CA, "/lan", 3), -EDQUOT);
  cr_assert_eq(roomdir_sessions(&d, CA, "/lan"), 3);
  cr_assert_eq(roomdir_session_add(&d, CB, "/lan", 3), 0, "per client");
  cr_assert_eq(roomdir_session_add(&d, CA, "/lan2", 3), 0, "per name");
  cr_assert_eq(roomdir_session_add(&d, 0, "/lan", 1), 0, "client 0 is not counted");
  cr_assert_eq(roomdir_sessions(&d, 0, "/lan"), 0);
  roomdir_session_del(&d, CA, "/lan");
  cr_assert_eq(roomdir_sessions(&d, CA, "/lan"), 2);
  cr_assert_eq(roomdir_session_add(&d, CA, "/lan", 3), 0);
  cr_assert_eq(d.nsess, 3);
  for (int i = 0; i < 3; i++)
    roomdir_session_del(&d, CA, "/lan");
  roomdir_session_del(&d, CB, "/lan");
  roomdir_session_del(&d, CA, "/lan2");
  cr_assert_eq(d.nsess, 0);
  cr_assert_eq(roomdir_sessions(&d, CA, "/lan"), 0);
  roomdir_fini(&d);
}

/* The (client, name) table against a plain model under many adds and
 * deletes in a small table (collisions and backward-shift deletion), and
 * its bound: max_sessions distinct pairs. */
Test(roomdir_shares, session_table_model)
{
  enum { PAIRS = 12, MAX = 8 };
  struct roomdir d;
  shares(&d, 8, 8, 8, 16, MAX);
  uint32_t model[PAIRS] = {0};
  uint32_t distinct = 0;
  char name[16];
  uint32_t seed = 12345;
  for (int step = 0; step < 20000; step++) {
    seed = seed * 1103515245u + 12345u;
    uint32_t k = (seed >> 16) % PAIRS;
    uint64_t client = 0x100 + k % 3;
    snprintf(name, sizeof(name), "/n%u", k / 3);
    if ((seed >> 8) & 1) {
      int rc = roomdir_session_add(&d, client, name, 5);
      if (model[k] >= 5)
        cr_assert_eq(rc, -EDQUOT);
      else if (!model[k] && distinct >= MAX)
        cr_assert_eq(rc, -ENOSPC);
      else {
        cr_assert_eq(rc, 0);
        distinct += model[k] == 0;
        model[k]++;
      }
    } else if (model[k]) {
      roomdir_session_del(&d, client, name);
      model[k]--;
      distinct -= model[k] == 0;
    }
    cr_assert_eq(d.nsess, distinct);
    for (uint32_t j = 0; j < PAIRS; j++) {
      snprintf(name, sizeof(name), "/n%u", j / 3);
      cr_assert_eq(roomdir_sessions(&d, 0x100 + j % 3, name), model[j], "step %d pair %u", step, j);
    }
  }
  roomdir_fini(&d);
}

/* The set of workers holding a copy: one bit per worker over several
 * words, set and cleared independently, empty again when a slot is made
 * anew, and "has a copy" for a worker the set cannot name. */
Test(roomdir, copy_set_per_worker)
{
  struct roomdir d;
  bool made;
  cr_assert_eq(roomdir_init(&d, 2), 0);
  uint32_t a = join(&d, "/lan", &made);
  const uint32_t ws[] = {0, 1, 63, 64, 130, 255};
  for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++)
    cr_assert_not(roomdir_copy_has(&d, a, ws[i]), "worker %u in a new room's set", ws[i]);
  roomdir_copy_set(&d, a, 64, true);
  roomdir_copy_set(&d, a, 1, true);
  roomdir_copy_set(&d, a, 255, true);
  for (uint32_t w = 0; w < ROOMDIR_MAX_WORKERS; w++)
    cr_assert_eq(roomdir_copy_has(&d, a, w), w == 1 || w == 64 || w == 255, "worker %u", w);
  roomdir_copy_set(&d, a, 64, false);
  cr_assert_not(roomdir_copy_has(&d, a, 64));
  cr_assert(roomdir_copy_has(&d, a, 1));
  cr_assert(roomdir_copy_has(&d, a, 255));
  cr_assert(roomdir_copy_has(&d, a, ROOMDIR_MAX_WORKERS), "beyond the set: always a copy");
  /* another room's set is its own */
  uint32_t b = join(&d, "/other", &made);
  cr_assert_neq(a, b);
  cr_assert_not(roomdir_copy_has(&d, b, 1));
  /* the slot made again starts empty */
  roomdir_leave(&d, a, 2);
  uint32_t c = join(&d, "/third", &made);
  cr_assert_eq(c, a);
  cr_assert_not(roomdir_copy_has(&d, c, 1));
  cr_assert_not(roomdir_copy_has(&d, c, 255));
  roomdir_leave(&d, b, 3);
  roomdir_leave(&d, c, 3);
  roomdir_fini(&d);
}

/* IPv6 DAD claims: one holder per (room, address) whichever session asks;
 * the same address in another room is another claim; a full table
 * refuses; giving back needs the holder; and a random model of claims and
 * releases over colliding probe runs (a table of 8 slots for 4 claims)
 * stays exact through backward-shift deletions. */
Test(roomdir_shares, ipv6_claims)
{
  struct roomdir d;
  cr_assert_eq(roomdir_init(&d, 4), 0);
  struct roomdir_shares sh = {.max_clients = 1, .max_sessions = 1, .max_claims6 = 4};
  cr_assert_eq(roomdir_set_shares(&d, &sh), 0);
  uint8_t a[16] = {0xfd, 1, 2, 3, 4, 5, 6, 7, 0x11, 0x22};
  cr_assert_eq(roomdir_claim6(&d, 0, a, 7), 0);
  cr_assert_eq(roomdir_claim6(&d, 0, a, 7), 0, "the holder's second claim");
  cr_assert_eq(roomdir_claim6(&d, 0, a, 8), -EEXIST, "another session's claim");
  cr_assert_eq(roomdir_claim6(&d, 1, a, 8), 0, "the same address in another room");
  roomdir_unclaim6(&d, 0, a, 8); /* not the holder: nothing */
  cr_assert_eq(roomdir_claim6(&d, 0, a, 8), -EEXIST);
  roomdir_unclaim6(&d, 0, a, 7);
  cr_assert_eq(roomdir_claim6(&d, 0, a, 8), 0, "given back, another may claim it");
  cr_assert_eq(d.nclaims6, 2);
  roomdir_unclaim6(&d, 0, a, 8);
  roomdir_unclaim6(&d, 1, a, 8);
  cr_assert_eq(d.nclaims6, 0);

  enum { ADDRS = 10 };
  uint64_t model[ADDRS] = {0};
  uint32_t held = 0, seed = 777;
  for (int step = 0; step < 20000; step++) {
    seed = seed * 1103515245u + 12345u;
    uint32_t k = (seed >> 16) % ADDRS;
    uint64_t owner = 1 + ((seed >> 8) & 1);
    a[15] = (uint8_t)k;
    if ((seed >> 4) & 1) {
      int rc = roomdir_claim6(&d, k & 1, a, owner);
      if (model[k])
        cr_assert_eq(rc, model[k] == owner ? 0 : -EEXIST, "step %d", step);
      else if (held >= 4)
        cr_assert_eq(rc, -ENOSPC, "step %d", step);
      else {
        cr_assert_eq(rc, 0, "step %d", step);
        model[k] = owner;
        held++;
      }
    } else {
      roomdir_unclaim6(&d, k & 1, a, owner);
      if (model[k] == owner) {
        model[k] = 0;
        held--;
      }
    }
    cr_assert_eq(d.nclaims6, held);
    for (uint32_t j = 0; j < ADDRS; j++) {
      a[15] = (uint8_t)j;
      if (model[j])
        cr_assert_eq(roomdir_claim6(&d, j & 1, a, model[j]), 0, "step %d addr %u lost", step, j);
    }
  }
  roomdir_fini(&d);
}
