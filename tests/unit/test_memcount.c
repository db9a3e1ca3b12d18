#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "wtrelay/memcount.h"

static void assert_nothing_live(const struct memcount *mc)
{
  cr_assert_eq(mc->bytes, 0);
  cr_assert_eq(mc->blocks, 0);
  cr_assert_eq(mc->slot_bytes, 0);
}

Test(memcount, counts_live_bytes_and_blocks)
{
  struct memcount mc = {0};
  uint8_t *a = memcount_malloc(100, &mc);
  uint8_t *b = memcount_calloc(4, 25, &mc);
  cr_assert(a && b);
  cr_assert_eq(((uintptr_t)a | (uintptr_t)b) % _Alignof(max_align_t), 0);
  for (int i = 0; i < 100; i++)
    cr_assert_eq(b[i], 0);
  memset(a, 0xab, 100);
  cr_assert_eq(mc.bytes, 200);
  cr_assert_eq(mc.blocks, 2);
  a = memcount_realloc(a, 1000, &mc);
  cr_assert(a);
  cr_assert_eq(a[99], 0xab);
  cr_assert_eq(mc.bytes, 1100);
  cr_assert_eq(mc.blocks, 2);
  memcount_free(a, &mc);
  memcount_free(b, &mc);
  memcount_free(NULL, &mc);
  assert_nothing_live(&mc);
  cr_assert_eq(mc.peak, 1100);
  void *c = memcount_realloc(NULL, 10, &mc);
  cr_assert_eq(mc.bytes, 10);
  memcount_free(c, &mc);
}

Test(memcount, refuses_sizes_that_overflow)
{
  struct memcount mc = {0};
  cr_assert_null(memcount_malloc(SIZE_MAX - 4, &mc));
  cr_assert_null(memcount_calloc(SIZE_MAX / 2, 4, &mc));
  cr_assert_eq(mc.bytes, 0);
  cr_assert_eq(mc.blocks, 0);
}

Test(memcount, page_slots_for_blocks_over_a_page)
{
  struct memcount mc = {0};
  cr_assert_eq(memcount_slots_init(&mc, 2), 0);
  uint8_t *small = memcount_malloc(1000, &mc);
  uint8_t *a = memcount_malloc(8000, &mc);
  uint8_t *b = memcount_calloc(2, 5000, &mc);
  uint8_t *c = memcount_malloc(9000, &mc); /* both slots taken: malloc */
  uint8_t *huge = memcount_malloc(MEMCOUNT_SLOT, &mc);
  cr_assert(small && a && b && c && huge);
  cr_assert(a >= mc.slots && a < mc.slots + 2 * MEMCOUNT_SLOT);
  cr_assert(b >= mc.slots && b < mc.slots + 2 * MEMCOUNT_SLOT);
  cr_assert_eq(((uintptr_t)a | (uintptr_t)b) % _Alignof(max_align_t), 0);
  cr_assert(small < mc.slots || small >= mc.slots + 2 * MEMCOUNT_SLOT);
  cr_assert(c < mc.slots || c >= mc.slots + 2 * MEMCOUNT_SLOT);
  cr_assert_eq(mc.slot_bytes, 18000);
  cr_assert_eq(mc.bytes, 1000 + 8000 + 10000 + 9000 + MEMCOUNT_SLOT);
  for (int i = 0; i < 10000; i++)
    cr_assert_eq(b[i], 0);
  memset(a, 0x5a, 8000);
  memcount_free(a, &mc);
  cr_assert_eq(mc.slot_bytes, 10000);
  /* the slot comes back zeroed: its pages were given back */
  uint8_t *z = memcount_calloc(1, 8000, &mc);
  cr_assert_eq(z, a);
  for (int i = 0; i < 8000; i++)
    cr_assert_eq(z[i], 0);
  /* realloc out of a slot and into one keeps the bytes */
  memset(z, 0x11, 8000);
  uint8_t *r = memcount_realloc(z, 100, &mc);
  cr_assert(r < mc.slots || r >= mc.slots + 2 * MEMCOUNT_SLOT);
  cr_assert_eq(r[99], 0x11);
  r = memcount_realloc(r, 6000, &mc);
  cr_assert(r >= mc.slots && r < mc.slots + 2 * MEMCOUNT_SLOT);
  cr_assert_eq(r[0], 0x11);
  cr_assert_eq(r[99], 0x11);
  memcount_free(r, &mc);
  memcount_free(b, &mc);
  memcount_free(c, &mc);
  memcount_free(small, &mc);
  memcount_free(huge, &mc);
  assert_nothing_live(&mc);
  memcount_slots_fini(&mc);
}
