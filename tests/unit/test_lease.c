/*
 * lease.c (table, file format, writer) and the ippool seeding and reclaim
 * order it relies on.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wtrelay/config.h"
#include "wtrelay/io.h"
#include "wtrelay/ippool.h"
#include "wtrelay/lease.h"
#include "wtrelay/timer.h"
#include "wtrelay/timeunit.h"

#include "tmpdir.h"

#define FIRST 0x0a00020a /* 10.0.2.10 */
#define LAST 0x0a0002fe  /* 10.0.2.254 */
#define WALL 1700000000ll

static uint64_t now_ns = 1000 * NS_PER_S;

static void mk(struct lease_table *t, uint32_t max_leases, uint32_t max_rooms, uint64_t lease_ns,
               const char *path)
{
  struct lease_params p = {.max_leases = max_leases,
                           .max_rooms = max_rooms,
                           .lease_ns = lease_ns,
                           .pool_first = FIRST,
                           .pool_last = LAST,
                           .path = path};
  cr_assert_eq(lease_init(t, &p, NULL, &now_ns), 0);
}

static const uint8_t *mac(uint8_t last)
{
  static uint8_t m[8][6];
  static int k;
  uint8_t *r = m[k++ % 8];
  memcpy(r, (uint8_t[]){0x52, 0x54, 0, 0, 0, last}, 6);
  return r;
}

/* Formats t and returns a static copy. */
static const char *fmt(struct lease_table *t, uint64_t now, int64_t wall)
{
  static char buf[1 << 20];
  int n = lease_format(t, buf, sizeof(buf), now, wall);
  cr_assert_geq(n, 0);
  buf[n] = '\0';
  return buf;
}

Test(lease, insert_update_release)
{
  struct lease_table t;
  mk(&t, 16, 4, 10 * NS_PER_S, NULL);
  cr_assert_eq(lease_acquired(&t, "/x", mac(1), FIRST + 5, 10 * NS_PER_S), 0);
  const struct lease *l = lease_find(&t, "/x", mac(1));
  cr_assert(l && l->live && l->ip == FIRST + 5);
  cr_assert_null(lease_find(&t, "/y", mac(1)));
  /* the same MAC moves: one lease per MAC per room */
  cr_assert_eq(lease_acquired(&t, "/x", mac(1), FIRST + 6, 11 * NS_PER_S), 0);
  cr_assert_eq(t.nused, 1);
  cr_assert_eq(lease_find(&t, "/x", mac(1))->ip, FIRST + 6);
  /* another MAC takes that IP: one lease per IP per room */
  cr_assert_eq(lease_acquired(&t, "/x", mac(2), FIRST + 6, 12 * NS_PER_S), 0);
  cr_assert_eq(t.nused, 1);
  cr_assert_null(lease_find(&t, "/x", mac(1)));
  lease_released(&t, "/x", mac(2), FIRST + 6, 13 * NS_PER_S);
  l = lease_find(&t, "/x", mac(2));
  cr_assert(l && !l->live && l->released_ns == (int64_t)(13 * NS_PER_S));
  /* the same MAC in another room is another lease */
  cr_assert_eq(lease_acquired(&t, "/y", mac(2), FIRST + 6, 14 * NS_PER_S), 0);
  cr_assert_eq(t.nused, 2);
  cr_assert_eq(t.nrooms, 2);
  lease_fini(&t);
}

Test(lease, expiry_and_room_closed)
{
  struct lease_table t;
  mk(&t, 16, 4, 10 * NS_PER_S, NULL);
  lease_acquired(&t, "/x", mac(1), FIRST, 1 * NS_PER_S);
  lease_acquired(&t, "/x", mac(2), FIRST + 1, 1 * NS_PER_S);
  lease_released(&t, "/x", mac(1), FIRST, 2 * NS_PER_S);
  cr_assert_eq(lease_active(&t, 11 * NS_PER_S), 2);
  cr_assert_eq(lease_active(&t, 12 * NS_PER_S), 1);   /* released 10 s ago: expired */
  cr_assert_eq(lease_active(&t, 1000 * NS_PER_S), 1); /* a live lease never expires */
  lease_room_closed(&t, "/x", 20 * NS_PER_S);         /* DHCP leases when the room empties */
  cr_assert_not(lease_find(&t, "/x", mac(2))->live);
  cr_assert_eq(lease_active(&t, 29 * NS_PER_S), 1);
  cr_assert_eq(lease_active(&t, 30 * NS_PER_S), 0);
  cr_assert_eq(t.nused, 2); /* expired leases stay remembered */
  lease_fini(&t);
}

Test(lease, table_full_drops_oldest_released)
{
  struct lease_table t;
  mk(&t, 3, 4, 100 * NS_PER_S, NULL);
  lease_acquired(&t, "/x", mac(1), FIRST, 1 * NS_PER_S);
  lease_acquired(&t, "/x", mac(2), FIRST + 1, 1 * NS_PER_S);
  lease_acquired(&t, "/y", mac(3), FIRST + 2, 1 * NS_PER_S);
  lease_released(&t, "/x", mac(2), FIRST + 1, 2 * NS_PER_S);
  lease_released(&t, "/y", mac(3), FIRST + 2, 3 * NS_PER_S);
  cr_assert_eq(lease_acquired(&t, "/x", mac(4), FIRST + 3, 4 * NS_PER_S), 0);
  cr_assert_eq(t.ctr.dropped, 1);
  cr_assert_null(lease_find(&t, "/x", mac(2))); /* the oldest released went */
  cr_assert_not_null(lease_find(&t, "/y", mac(3)));
  /* /y's only lease goes next, with its room slot */
  cr_assert_eq(lease_acquired(&t, "/z", mac(5), FIRST + 4, 5 * NS_PER_S), 0);
  cr_assert_null(lease_find(&t, "/y", mac(3)));
  cr_assert_eq(t.nrooms, 2);
  /* every lease live: nothing can go */
  cr_assert_eq(lease_acquired(&t, "/x", mac(6), FIRST + 5, 6 * NS_PER_S), -ENOSPC);
  cr_assert_eq(t.nused, 3);
  lease_fini(&t);
}

Test(lease, room_names_full_forgets_least_recent_room)
{
  struct lease_table t;
  mk(&t, 16, 2, 100 * NS_PER_S, NULL);
  lease_acquired(&t, "/a", mac(1), FIRST, 1 * NS_PER_S);
  lease_released(&t, "/a", mac(1), FIRST, 2 * NS_PER_S);
  lease_acquired(&t, "/b", mac(2), FIRST, 3 * NS_PER_S);
  lease_released(&t, "/b", mac(2), FIRST, 4 * NS_PER_S);
  cr_assert_eq(lease_acquired(&t, "/c", mac(3), FIRST, 5 * NS_PER_S), 0);
  cr_assert_null(lease_find(&t, "/a", mac(1)));
  cr_assert_not_null(lease_find(&t, "/b", mac(2)));
  /* a room with a live lease is never forgotten */
  cr_assert_eq(lease_acquired(&t, "/d", mac(4), FIRST, 6 * NS_PER_S), 0);
  cr_assert_null(lease_find(&t, "/b", mac(2)));
  cr_assert_eq(lease_acquired(&t, "/e", mac(5), FIRST, 7 * NS_PER_S), -ENOSPC);
  lease_fini(&t);
}

/* ---- ippool: seeding and reclaim order ---- */

struct seen {
  int n;
  struct ippool_event ev;
};

static void observe(void *ctx, struct ippool *p, const struct ippool_event *ev, uint64_t now)
{
  struct seen *s = ctx;
  s->n++;
  s->ev = *ev;
}

Test(ippool, seed_and_reclaim_expired_first)
{
  struct ippool p;
  struct seen s = {0};
  uint32_t ip;
  cr_assert_eq(ippool_init(&p, FIRST, FIRST + 2), 0); /* 3 addresses */
  p.lease_ns = 10 * NS_PER_S;
  ippool_observe(&p, observe, &s);
  cr_assert_eq(ippool_seed(&p, mac(1), FIRST + 2, 5 * NS_PER_S), 0);
  cr_assert_eq(ippool_seed(&p, mac(1), FIRST + 1, 5 * NS_PER_S), -EEXIST); /* MAC known */
  cr_assert_eq(ippool_seed(&p, mac(2), FIRST + 2, 5 * NS_PER_S), -EEXIST); /* IP taken */
  cr_assert_eq(ippool_seed(&p, mac(2), FIRST + 9, 5 * NS_PER_S), -ERANGE);
  cr_assert_eq(ippool_seed(&p, mac(2), FIRST + 1, -(int64_t)(100 * NS_PER_S)), 0); /* before boot */
  /* a new MAC takes a fresh address, not a remembered one */
  cr_assert_eq(ippool_acquire(&p, mac(3), &ip, 6 * NS_PER_S), 0);
  cr_assert_eq(ip, FIRST);
  cr_assert_eq(s.n, 1);
  cr_assert_not(s.ev.reclaimed);
  /* the seeded MAC gets its address back */
  cr_assert_eq(ippool_acquire(&p, mac(1), &ip, 7 * NS_PER_S), 0);
  cr_assert_eq(ip, FIRST + 2);
  cr_assert_not(s.ev.reclaimed);
  ippool_release(&p, FIRST + 2, 8 * NS_PER_S);
  cr_assert_eq(s.ev.type, IPPOOL_RELEASED);
  ippool_release(&p, FIRST, 9 * NS_PER_S);
  /* exhausted: the expired lease (mac 2, before boot) goes first */
  cr_assert_eq(ippool_acquire(&p, mac(4), &ip, 10 * NS_PER_S), 0);
  cr_assert_eq(ip, FIRST + 1);
  cr_assert(s.ev.reclaimed && s.ev.reclaimed_expired);
  cr_assert_arr_eq(s.ev.old_mac, mac(2), 6);
  /* none expired: the oldest released (mac 1 at 8 s), flagged unexpired */
  cr_assert_eq(ippool_acquire(&p, mac(5), &ip, 11 * NS_PER_S), 0);
  cr_assert_eq(ip, FIRST + 2);
  cr_assert(s.ev.reclaimed && !s.ev.reclaimed_expired);
  /* every address live: exhausted, a live one is never taken */
  cr_assert_eq(ippool_acquire(&p, mac(6), &ip, 12 * NS_PER_S),
               0); /* mac 3's, expired? no: oldest */
  cr_assert_eq(ip, FIRST);
  cr_assert_eq(ippool_acquire(&p, mac(7), &ip, 13 * NS_PER_S), -ENOSPC);
  ippool_fini(&p);
}

/* The cluster gave the MAC another address than the local candidate
 * (relays federated): the lease moves, the candidate is forgotten, a
 * released lease of another MAC there is reclaimed, a live one refuses. */
Test(ippool, move_to_the_clusters_address)
{
  struct ippool p;
  struct seen s = {0};
  uint32_t ip, ip2;
  cr_assert_eq(ippool_init(&p, FIRST, FIRST + 3), 0);
  p.lease_ns = 10 * NS_PER_S;
  ippool_observe(&p, observe, &s);
  cr_assert_eq(ippool_acquire_for(&p, mac(1), 7, &ip, 1), 0);
  cr_assert_eq(ip, FIRST + 3);
  cr_assert_eq(ippool_move(&p, mac(1), ip, FIRST + 1, 2), 0);
  cr_assert_eq(s.ev.type, IPPOOL_ACQUIRED);
  cr_assert_eq(s.ev.ip, FIRST + 1);
  cr_assert_eq(s.ev.client, 7);
  cr_assert_not(s.ev.reclaimed);
  cr_assert(ippool_lookup_ip(&p, FIRST + 1, NULL));
  cr_assert_not(ippool_lookup_ip(&p, FIRST + 3, NULL));
  cr_assert(ippool_lookup_mac(&p, mac(1), &ip2) && ip2 == FIRST + 1);
  cr_assert_eq(ippool_client_held(&p, 7), 1, "the candidate still counts to the client's share");
  /* the candidate is fresh again: the next new MAC gets it */
  cr_assert_eq(ippool_acquire(&p, mac(2), &ip, 3), 0);
  cr_assert_eq(ip, FIRST + 3);
  /* onto a live address: refused; not from the MAC's own address: refused */
  cr_assert_eq(ippool_move(&p, mac(2), FIRST + 3, FIRST + 1, 4), -EBUSY);
  cr_assert_eq(ippool_move(&p, mac(2), FIRST + 2, FIRST + 0, 4), -ENOENT);
  cr_assert_eq(ippool_move(&p, mac(2), FIRST + 3, FIRST + 9, 4), -ERANGE);
  /* onto another MAC's released lease: reclaimed */
  ippool_release(&p, FIRST + 1, 5);
  cr_assert_eq(ippool_move(&p, mac(2), FIRST + 3, FIRST + 1, 6), 0);
  cr_assert(s.ev.reclaimed && !s.ev.reclaimed_expired);
  cr_assert_arr_eq(s.ev.old_mac, mac(1), 6);
  /* mac 1 is forgotten: it gets a fresh address next time */
  cr_assert_eq(ippool_acquire(&p, mac(1), &ip, 7), 0);
  cr_assert_eq(ip, FIRST + 3);
  ippool_fini(&p);
}

Test(ippool, expired_preferred_over_older_unexpired_order)
{
  struct ippool p;
  uint32_t ip;
  cr_assert_eq(ippool_init(&p, FIRST, FIRST + 1), 0);
  p.lease_ns = 10 * NS_PER_S;
  cr_assert_eq(ippool_acquire(&p, mac(1), &ip, 1 * NS_PER_S), 0);
  cr_assert_eq(ippool_acquire(&p, mac(2), &ip, 1 * NS_PER_S), 0);
  ippool_release(&p, FIRST + 1, 2 * NS_PER_S);
  ippool_release(&p, FIRST, 3 * NS_PER_S);
  /* at 12.5 s only the first release (2 s) has expired: it is taken */
  cr_assert_eq(ippool_acquire(&p, mac(3), &ip, 12 * NS_PER_S + NS_PER_S / 2), 0);
  cr_assert_eq(ip, FIRST + 1);
  ippool_fini(&p);
}

/* Per-client shares: a client at its share recycles its own oldest released
 * address, is refused only when all it holds is live, and others are not
 * touched by its cap. */
Test(ippool, client_share_recycles_own_oldest_lease)
{
  struct ippool p;
  struct seen s = {0};
  uint32_t ip, ips[3];
  const uint64_t A = 0xa, B = 0xb;
  cr_assert_eq(ippool_init(&p, FIRST, FIRST + 7), 0); /* 8 addresses */
  p.lease_ns = 100 * NS_PER_S;
  p.client_max = 3;
  ippool_observe(&p, observe, &s);
  for (uint8_t i = 0; i < 3; i++)
    cr_assert_eq(ippool_acquire_for(&p, mac(10 + i), A, &ips[i], 1 * NS_PER_S), 0);
  cr_assert_eq(ippool_client_held(&p, A), 3);
  /* all three live: a fourth MAC of A is refused, B is not */
  cr_assert_eq(ippool_acquire_for(&p, mac(13), A, &ip, 2 * NS_PER_S), -EDQUOT);
  cr_assert_eq(ippool_acquire_for(&p, mac(20), B, &ip, 2 * NS_PER_S), 0);
  cr_assert_eq(s.ev.client, B);
  /* A's sessions end (sticky leases, unexpired); new MACs of A take A's
   * own addresses, oldest release first, and never a fresh one */
  ippool_release(&p, ips[1], 3 * NS_PER_S);
  ippool_release(&p, ips[0], 4 * NS_PER_S);
  ippool_release(&p, ips[2], 5 * NS_PER_S);
  cr_assert_eq(ippool_acquire_for(&p, mac(13), A, &ip, 6 * NS_PER_S), 0);
  cr_assert_eq(ip, ips[1]);
  cr_assert(s.ev.reclaimed && s.ev.share_recycled && !s.ev.reclaimed_expired);
  cr_assert_arr_eq(s.ev.old_mac, mac(11), 6);
  cr_assert_eq(ippool_acquire_for(&p, mac(14), A, &ip, 7 * NS_PER_S), 0);
  cr_assert_eq(ip, ips[0]);
  cr_assert_eq(ippool_client_held(&p, A), 3);
  /* a remembered MAC of A comes back to its own address without recycling */
  cr_assert_eq(ippool_acquire_for(&p, mac(12), A, &ip, 8 * NS_PER_S), 0);
  cr_assert_eq(ip, ips[2]);
  cr_assert_not(s.ev.reclaimed);
  cr_assert_eq(ippool_acquire_for(&p, mac(15), A, &ip, 9 * NS_PER_S), -EDQUOT);
  /* client 0 (e.g. leases read from the file) is never capped */
  for (uint8_t i = 0; i < 4; i++)
    cr_assert_eq(ippool_acquire_for(&p, mac(30 + i), 0, &ip, 10 * NS_PER_S), 0);
  cr_assert_eq(ippool_client_held(&p, A), 3);
  ippool_fini(&p);
}

/* A MAC remembered for another client moves to a client at its share: its
 * old entry is forgotten (no MAC twice in the pool), the client's own
 * oldest released address is reused. */
Test(ippool, client_share_takes_mac_from_other_client)
{
  struct ippool p;
  uint32_t ip, a0, a1, b0;
  const uint64_t A = 0xa, B = 0xb;
  cr_assert_eq(ippool_init(&p, FIRST, FIRST + 7), 0);
  p.lease_ns = 100 * NS_PER_S;
  p.client_max = 2;
  cr_assert_eq(ippool_acquire_for(&p, mac(1), A, &a0, 1 * NS_PER_S), 0);
  cr_assert_eq(ippool_acquire_for(&p, mac(2), A, &a1, 1 * NS_PER_S), 0);
  cr_assert_eq(ippool_acquire_for(&p, mac(9), B, &b0, 1 * NS_PER_S), 0);
  ippool_release(&p, a0, 2 * NS_PER_S);
  ippool_release(&p, b0, 3 * NS_PER_S);
  /* mac 9 (B's) registers from A, which holds 2 already */
  cr_assert_eq(ippool_acquire_for(&p, mac(9), A, &ip, 4 * NS_PER_S), 0);
  cr_assert_eq(ip, a0);
  cr_assert_eq(ippool_client_held(&p, A), 2);
  cr_assert_eq(ippool_client_held(&p, B), 0);
  uint32_t other;
  cr_assert(ippool_lookup_mac(&p, mac(9), &other));
  cr_assert_eq(other, a0);
  /* b0 is fresh again: a new MAC gets it first (it is the top address) */
  cr_assert_eq(ippool_acquire_for(&p, mac(3), B, &ip, 5 * NS_PER_S), 0);
  cr_assert_eq(ip, b0);
  ippool_fini(&p);
}

/* A pool full of one client's abandoned leases gives way to another
 * client: the least recently released address is reclaimed. */
Test(ippool, full_pool_of_abandoned_leases_gives_way)
{
  struct ippool p;
  uint32_t ip;
  const uint64_t A = 0xa, B = 0xb;
  cr_assert_eq(ippool_init(&p, FIRST, FIRST + 3), 0);
  p.lease_ns = 100 * NS_PER_S;
  p.client_max = 0; /* no cap: the worst case for the pool */
  for (uint8_t i = 0; i < 4; i++) {
    cr_assert_eq(ippool_acquire_for(&p, mac(i), A, &ip, 1 * NS_PER_S), 0);
    ippool_release(&p, ip, (2 + i) * NS_PER_S);
  }
  cr_assert_eq(ippool_acquire_for(&p, mac(9), B, &ip, 10 * NS_PER_S), 0);
  cr_assert_eq(ip, FIRST + 3); /* mac 0's, released first (index 0 = top) */
  cr_assert_eq(ippool_client_held(&p, B), 1);
  cr_assert_eq(ippool_client_held(&p, A), 3);
  ippool_fini(&p);
}

/* The lease table records the client of a live lease, keeps it over the
 * release, and seeds it back; the file never names it. */
Test(lease, client_recorded_and_seeded_not_written)
{
  struct lease_table t;
  struct ippool p;
  uint32_t ip;
  mk(&t, 16, 4, 100 * NS_PER_S, NULL);
  cr_assert_eq(lease_acquired_for(&t, "/x", mac(1), LAST, 0xffff00010a510102ull, 1 * NS_PER_S), 0);
  lease_released(&t, "/x", mac(1), LAST, 2 * NS_PER_S);
  const struct lease *l = lease_find(&t, "/x", mac(1));
  cr_assert_not_null(l);
  cr_assert_eq(l->client, 0xffff00010a510102ull);
  cr_assert_eq(ippool_init(&p, FIRST, LAST), 0);
  cr_assert_eq(lease_seed(&t, "/x", &p, 3 * NS_PER_S), 1);
  cr_assert_eq(ippool_client_held(&p, 0xffff00010a510102ull), 1);
  p.client_max = 1;
  /* the seeded lease is that client's: a new MAC of it recycles it */
  cr_assert_eq(ippool_acquire_for(&p, mac(2), 0xffff00010a510102ull, &ip, 4 * NS_PER_S), 0);
  cr_assert_eq(ip, LAST);
  const char *f = fmt(&t, 5 * NS_PER_S, WALL);
  /* one line per lease: MAC, IP, release time; no client */
  const char *line = strstr(f, "52:54:00:00:00:01 10.0.2.254 ");
  cr_assert_not_null(line, "%s", f);
  cr_assert_eq(strchr(line, '\n') - line, (long)strlen("52:54:00:00:00:01 10.0.2.254 ") + 10, "%s",
               f);
  ippool_fini(&p);
  lease_fini(&t);
}

Test(lease, seed_pool_from_table)
{
  struct lease_table t;
  struct ippool p;
  uint32_t ip;
  mk(&t, 16, 4, 10 * NS_PER_S, NULL);
  lease_acquired(&t, "/x", mac(1), LAST, 1 * NS_PER_S);
  lease_released(&t, "/x", mac(1), LAST, 2 * NS_PER_S);
  lease_acquired(&t, "/y", mac(2), LAST, 1 * NS_PER_S);
  cr_assert_eq(ippool_init(&p, FIRST, LAST), 0);
  cr_assert_eq(lease_seed(&t, "/x", &p, 3 * NS_PER_S), 1);
  cr_assert_eq(ippool_acquire(&p, mac(3), &ip, 4 * NS_PER_S), 0);
  cr_assert_eq(ip, LAST - 1); /* .254 is remembered for mac 1 */
  cr_assert_eq(ippool_acquire(&p, mac(1), &ip, 4 * NS_PER_S), 0);
  cr_assert_eq(ip, LAST);
  ippool_fini(&p);
  lease_fini(&t);
}

/* ---- the file format ---- */

static const char *hostile[] = {
    "/",          "/a b",
    "/100%",      "/%41",
    "/x\ny",      "/room 52:54:00:00:00:01 10.0.2.10 live",
    "/#c",        "/\x01\x7f\xff\xfe",
    "/tab\there", "/\"q\"\\",
};

Test(lease_file, round_trip_hostile_names)
{
  struct lease_table t, u;
  char longname[LEASE_NAME_MAX + 1];
  memset(longname, '%', LEASE_NAME_MAX);
  longname[LEASE_NAME_MAX] = '\0';
  mk(&t, 64, 16, 10 * NS_PER_S, NULL);
  size_t n = sizeof(hostile) / sizeof(hostile[0]);
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(lease_acquired(&t, hostile[i], mac((uint8_t)i), FIRST + (uint32_t)i, 1 * NS_PER_S),
                 0);
    lease_released(&t, hostile[i], mac((uint8_t)i), FIRST + (uint32_t)i, (2 + i) * NS_PER_S);
  }
  lease_acquired(&t, longname, mac(99), LAST, 1 * NS_PER_S); /* live */
  char *a = strdup(fmt(&t, 100 * NS_PER_S, WALL));
  cr_assert_null(strstr(a, "\t"));
  mk(&u, 64, 16, 10 * NS_PER_S, NULL);
  cr_assert_eq(lease_parse(&u, a, strlen(a), 100 * NS_PER_S, WALL), (int)n + 1);
  cr_assert_eq(u.ctr.lines_skipped, 0);
  for (size_t i = 0; i < n; i++) {
    const struct lease *l = lease_find(&u, hostile[i], mac((uint8_t)i));
    cr_assert_not_null(l, "%s", hostile[i]);
    cr_assert_eq(l->ip, FIRST + i);
    cr_assert_eq(l->released_ns, (int64_t)((2 + i) * NS_PER_S));
  }
  /* a live lease comes back released at the time it is read */
  const struct lease *l = lease_find(&u, longname, mac(99));
  cr_assert(l && !l->live && l->released_ns == (int64_t)(100 * NS_PER_S));
  lease_fini(&t);
  lease_fini(&u);
  free(a);
}

Test(lease_file, wall_clock_times)
{
  struct lease_table t, u;
  mk(&t, 8, 4, 10 * NS_PER_S, NULL);
  lease_acquired(&t, "/x", mac(1), FIRST, 1 * NS_PER_S);
  lease_released(&t, "/x", mac(1), FIRST, 40 * NS_PER_S);
  cr_assert_not_null(
      strstr(fmt(&t, 100 * NS_PER_S, WALL), "52:54:00:00:00:01 10.0.2.10 1699999940\n"));
  /* after a restart: another monotonic clock, the same age */
  mk(&u, 8, 4, 10 * NS_PER_S, NULL);
  const char *f = "room /x\n52:54:00:00:00:01 10.0.2.10 1699999940\n";
  cr_assert_eq(lease_parse(&u, f, strlen(f), 5 * NS_PER_S, WALL + 30), 1);
  cr_assert_eq(lease_find(&u, "/x", mac(1))->released_ns,
               (int64_t)(5 * NS_PER_S) - 90 * (int64_t)NS_PER_S);
  lease_fini(&t);
  lease_fini(&u);
}

Test(lease_file, corrupt_lines_skipped)
{
  struct lease_table t;
  mk(&t, 16, 4, 10 * NS_PER_S, NULL);
  const char *f = "# wtrelay leases v1\n"
                  "52:54:00:00:00:09 10.0.2.20 1699999990\n" /* before any room */
                  "room /x\n"
                  "52:54:00:00:00:01 10.0.2.10 1699999990\n"
                  "52:54:00:00:00:02 10.0.2.11\n"             /* field missing */
                  "52:54:00:00:00:03 10.0.2.300 1699999990\n" /* bad IP */
                  "52:54:00:00:00:0g 10.0.2.12 1699999990\n"  /* bad MAC */
                  "52:54:00:00:00:04 10.0.2.13 -5\n"          /* bad time */
                  "52:54:00:00:00:05  10.0.2.14 1\n"          /* two blanks */
                  "52:54:00:00:00:06 10.0.2.15 1 extra\n"
                  "52:54:00:00:00:07 10.0.3.1 1699999990\n"  /* outside the pool */
                  "room \n"                                  /* empty name */
                  "room /y%00\n"                             /* NUL */
                  "room /y%4\n"                              /* short escape */
                  "52:54:00:00:00:08 10.0.2.16 1699999990\n" /* after a bad room */
                  "\n"
                  "room /z\n"
                  "52:54:00:00:00:0a 10.0.2.17 live\n";
  cr_assert_eq(lease_parse(&t, f, strlen(f), 100 * NS_PER_S, WALL), 2);
  cr_assert_eq(t.ctr.lines_skipped, 12);
  cr_assert_not_null(lease_find(&t, "/x", mac(1)));
  cr_assert_not_null(lease_find(&t, "/z", mac(10)));
  cr_assert_eq(t.nrooms, 2);
  lease_fini(&t);
}

Test(lease_file, truncated_overlong_empty)
{
  struct lease_table t;
  mk(&t, 16, 4, 10 * NS_PER_S, NULL);
  const char *f = "room /x\n52:54:00:00:00:01 10.0.2.10 1699999990\n52:54:00:00:00:02 10.0.2.1";
  cr_assert_eq(lease_parse(&t, f, strlen(f), 100 * NS_PER_S, WALL), 1);
  cr_assert_eq(t.ctr.lines_skipped, 1);
  lease_fini(&t);

  mk(&t, 16, 4, 10 * NS_PER_S, NULL);
  char *big = malloc(4096);
  int n = snprintf(big, 4096, "room /x\n");
  memset(big + n, 'a', 2000);
  n += 2000;
  n += snprintf(big + n, 4096 - (size_t)n, "\n52:54:00:00:00:01 10.0.2.10 1699999990\n");
  cr_assert_eq(lease_parse(&t, big, (size_t)n, 100 * NS_PER_S, WALL), 1);
  cr_assert_eq(t.ctr.lines_skipped, 1);
  free(big);
  lease_fini(&t);

  mk(&t, 16, 4, 10 * NS_PER_S, NULL);
  cr_assert_eq(lease_parse(&t, "", 0, 100 * NS_PER_S, WALL), 0);
  cr_assert_eq(t.ctr.lines_skipped, 0);
  cr_assert_eq(t.nused, 0);
  lease_fini(&t);
}

Test(lease_file, more_lines_than_the_table_keeps_the_newest)
{
  struct lease_table t;
  mk(&t, 2, 4, 10 * NS_PER_S, NULL);
  const char *f = "room /x\n52:54:00:00:00:01 10.0.2.10 1699999993\n"
                  "52:54:00:00:00:02 10.0.2.11 1699999991\n"
                  "room /y\n52:54:00:00:00:03 10.0.2.12 1699999992\n";
  lease_parse(&t, f, strlen(f), 100 * NS_PER_S, WALL);
  cr_assert_eq(t.nused, 2);
  cr_assert_null(lease_find(&t, "/x", mac(2)));
  cr_assert_not_null(lease_find(&t, "/x", mac(1)));
  cr_assert_not_null(lease_find(&t, "/y", mac(3)));
  lease_fini(&t);
}

static char dir[TEST_TMPDIR_MAX];

static void setup_dir(void)
{
  test_tmpdir(dir, sizeof(dir), "lease");
}

static void teardown_dir(void)
{
  test_tmpdir_rm(dir);
}

Test(lease_file, missing_unreadable_and_sync_write, .init = setup_dir, .fini = teardown_dir)
{
  struct lease_table t;
  char path[256];
  snprintf(path, sizeof(path), "%s/leases", dir);
  mk(&t, 16, 4, 10 * NS_PER_S, path);
  cr_assert_eq(lease_load_file(&t), 0); /* missing: not an error */
  cr_assert_eq(t.ctr.load_errors, 0);
  lease_acquired(&t, "/a b", mac(1), FIRST, 1 * NS_PER_S);
  lease_released(&t, "/a b", mac(1), FIRST, 2 * NS_PER_S);
  lease_fini(&t); /* the last write, synchronous without a ring */
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600);
  mk(&t, 16, 4, 10 * NS_PER_S, path);
  cr_assert_eq(lease_load_file(&t), 1);
  cr_assert_not_null(lease_find(&t, "/a b", mac(1)));
  cr_assert_eq(t.ctr.written, 0);
  lease_fini(&t); /* nothing changed: no write */

  /* a directory where the file should be: one error, empty table */
  snprintf(path, sizeof(path), "%s", dir);
  mk(&t, 16, 4, 10 * NS_PER_S, path);
  cr_assert_eq(lease_load_file(&t), 0);
  cr_assert_eq(t.ctr.load_errors, 1);
  lease_fini(&t);
}

Test(lease_file, garbage_file_loads_what_it_can, .init = setup_dir, .fini = teardown_dir)
{
  struct lease_table t;
  char path[256];
  snprintf(path, sizeof(path), "%s/leases", dir);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  for (int i = 0; i < 5000; i++)
    fputc((i * 7919) & 0xff, f);
  fputs("\nroom /ok\n52:54:00:00:00:01 10.0.2.10 1699999990\n", f);
  fclose(f);
  mk(&t, 256, 4, 10 * NS_PER_S, path);
  cr_assert_eq(lease_load_file(&t), 1);
  cr_assert_eq(t.ctr.load_errors, 1);
  cr_assert_gt(t.ctr.lines_skipped, 0);
  lease_fini(&t);

  /* larger than the largest file the table writes: read up to that bound */
  mk(&t, 16, 4, 10 * NS_PER_S, path);
  cr_assert_eq(lease_load_file(&t), 0);
  cr_assert_eq(t.ctr.load_errors, 1);
  lease_fini(&t);
}

/* The writer on a real ring: OPENAT, WRITE/FSYNC/CLOSE, RENAMEAT; at most
 * one write a second; the final write in lease_fini. */
Test(lease_file, uring_writer, .init = setup_dir, .fini = teardown_dir)
{
  struct io io;
  struct io_params iop;
  struct timer_heap th;
  struct lease_table t;
  char path[256];
  snprintf(path, sizeof(path), "%s/leases", dir);
  io_params_default(&iop);
  cr_assert_eq(io_init(&io, &iop), 0);
  cr_assert_eq(timer_heap_init(&th, 16), 0);
  now_ns = clock_now_ns();
  struct lease_params p = {.max_leases = 16,
                           .max_rooms = 4,
                           .lease_ns = 10 * NS_PER_S,
                           .pool_first = FIRST,
                           .pool_last = LAST,
                           .path = path};
  cr_assert_eq(lease_init(&t, &p, &th, &now_ns), 0);
  cr_assert_eq(lease_attach_io(&t, &io), 0);
  lease_acquired(&t, "/x", mac(1), FIRST, now_ns);
  uint64_t end = now_ns + 3 * NS_PER_S;
  while (t.ctr.written < 1 && now_ns < end) {
    io_wait(&io,
            timer_next(&th) < now_ns + NS_PER_S / 20 ? timer_next(&th) : now_ns + NS_PER_S / 20,
            now_ns);
    now_ns = clock_now_ns();
    io_dispatch(&io);
    timer_run(&th, now_ns);
  }
  cr_assert_eq(t.ctr.written, 1);
  cr_assert_eq(t.ctr.write_errors, 0);
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600);
  /* two changes within the second: coalesced into the next write */
  uint64_t first = t.last_start_ns;
  lease_released(&t, "/x", mac(1), FIRST, now_ns);
  lease_acquired(&t, "/x", mac(2), FIRST + 1, now_ns);
  end = now_ns + 3 * NS_PER_S;
  while (t.ctr.written < 2 && now_ns < end) {
    io_wait(&io, now_ns + NS_PER_S / 20, now_ns);
    now_ns = clock_now_ns();
    io_dispatch(&io);
    timer_run(&th, now_ns);
  }
  cr_assert_eq(t.ctr.written, 2);
  cr_assert_geq(t.last_start_ns - first, NS_PER_S);
  lease_released(&t, "/x", mac(2), FIRST + 1, now_ns);
  lease_fini(&t); /* the final write through the ring */
  cr_assert_eq(t.ctr.written, 3);
  char buf[512];
  int fd = open(path, O_RDONLY);
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  cr_assert_gt(n, 0);
  buf[n] = '\0';
  cr_assert_not_null(strstr(buf, "52:54:00:00:00:02 10.0.2.11 "));
  cr_assert_null(strstr(buf, "live"));
  cr_assert_neq(access(t.tmp, F_OK), 0);
  timer_heap_fini(&th);
  io_fini(&io);
}

/* A table shared by threads (lease_set_lock): another thread (a worker)
 * changes it under the lock and only marks it dirty (it never touches the
 * writer's timer heap: one timer in it, the writer's own, re-armed every
 * second); the writer, on this thread's ring, reads the table under the
 * lock and writes every lease the other thread made. */
struct sharer {
  struct lease_table *t;
  pthread_mutex_t *lock;
  uint64_t now;
};

static void *sharer_main(void *arg)
{
  struct sharer *sh = arg;
  for (int i = 0; i < 100; i++) {
    uint8_t m[6] = {0x52, 0x54, 0, 0, 1, (uint8_t)i};
    pthread_mutex_lock(sh->lock);
    lease_acquired(sh->t, "/shared", m, FIRST + (uint32_t)i, sh->now);
    pthread_mutex_unlock(sh->lock);
    usleep(2000);
  }
  return NULL;
}

Test(lease_file, shared_table_writer, .init = setup_dir, .fini = teardown_dir)
{
  struct io io;
  struct io_params iop;
  struct timer_heap th;
  struct lease_table t;
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  char path[256];
  snprintf(path, sizeof(path), "%s/leases", dir);
  io_params_default(&iop);
  cr_assert_eq(io_init(&io, &iop), 0);
  cr_assert_eq(timer_heap_init(&th, 16), 0);
  now_ns = clock_now_ns();
  struct lease_params p = {.max_leases = 256,
                           .max_rooms = 4,
                           .lease_ns = 10 * NS_PER_S,
                           .pool_first = FIRST,
                           .pool_last = LAST,
                           .path = path};
  cr_assert_eq(lease_init(&t, &p, &th, &now_ns), 0);
  cr_assert_eq(lease_attach_io(&t, &io), 0);
  lease_set_lock(&t, &lock);
  cr_assert(timer_armed(&t.timer), "a shared table's writer looks every second");
  struct sharer sh = {.t = &t, .lock = &lock, .now = now_ns};
  pthread_t th2;
  cr_assert_eq(pthread_create(&th2, NULL, sharer_main, &sh), 0);
  uint64_t end = now_ns + 5 * NS_PER_S;
  bool joined = false;
  uint32_t nused = 0;
  for (;;) {
    io_wait(&io, now_ns + NS_PER_S / 20, now_ns);
    now_ns = clock_now_ns();
    io_dispatch(&io);
    timer_run(&th, now_ns);
    cr_assert_leq(th.len, 1, "a change from another thread armed a timer");
    if (!joined && pthread_tryjoin_np(th2, NULL) == 0) {
      joined = true;
      pthread_mutex_lock(&lock);
      nused = t.nused;
      pthread_mutex_unlock(&lock);
      /* the last change: written by the next look at the latest */
      end = now_ns + 3 * NS_PER_S;
    }
    pthread_mutex_lock(&lock);
    bool dirty = t.dirty;
    pthread_mutex_unlock(&lock);
    if ((joined && !dirty && t.state == LEASE_W_IDLE && t.ctr.written > 0) || now_ns > end)
      break;
  }
  cr_assert(joined);
  cr_assert_eq(nused, 100);
  cr_assert_gt(t.ctr.written, 0);
  cr_assert_eq(t.ctr.write_errors, 0);
  static char buf[1 << 16];
  int fd = open(path, O_RDONLY);
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  cr_assert_gt(n, 0);
  buf[n] = '\0';
  int lines = 0;
  for (char *q = buf; (q = strstr(q, " live\n")); q++)
    lines++;
  cr_assert_eq(lines, 100, "the file has %d of the other thread's 100 leases", lines);
  lease_fini(&t);
  timer_heap_fini(&th);
  io_fini(&io);
}

static const char *env_lease(const char *name)
{
  if (strcmp(name, "RELAY_LEASE_TIME") == 0)
    return "1h";
  if (strcmp(name, "RELAY_LEASE_FILE") == 0)
    return "/var/lib/wtrelay/leases";
  return NULL;
}

Test(lease_config, flags_and_environment)
{
  struct config c;
  char err[256];
  config_defaults(&c);
  cr_assert_eq(c.lease_time_s, 86400);
  cr_assert_eq(c.lease_file[0], '\0');
  cr_assert_eq(c.max_leases, 0);
  char *argv[] = {"wtrelay", "--max-leases", "100", NULL};
  cr_assert_eq(config_parse(&c, 3, argv, env_lease, err, sizeof(err)), CONFIG_OK, "%s", err);
  cr_assert_eq(c.lease_time_s, 3600);
  cr_assert_str_eq(c.lease_file, "/var/lib/wtrelay/leases");
  cr_assert_eq(c.max_leases, 100);
  config_defaults(&c);
  char *argv2[] = {"wtrelay", "--lease-time=2s", "--lease-file", "/tmp/l", NULL};
  cr_assert_eq(config_parse(&c, 4, argv2, env_lease, err, sizeof(err)), CONFIG_OK, "%s", err);
  cr_assert_eq(c.lease_time_s, 2);
  cr_assert_str_eq(c.lease_file, "/tmp/l");
  config_defaults(&c);
  char *argv3[] = {"wtrelay", "--lease-time", "1.5", NULL};
  cr_assert_eq(config_parse(&c, 3, argv3, NULL, err, sizeof(err)), -EINVAL);
  cr_assert(strstr(err, "--lease-time"));
}
