/*
 * roomdir: the process's rooms as every worker shares them: one pool per
 * room whatever the number of copies, the room freed with its last copy,
 * and ring ids that change when a slot is made again (a frame of an ended
 * room still in a worker ring never reaches the room that took its slot).
 */
#include <criterion/criterion.h>
#include <errno.h>
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
