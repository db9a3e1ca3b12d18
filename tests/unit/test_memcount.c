#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "wtrelay/memcount.h"

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
  cr_assert_eq(mc.bytes, 0);
  cr_assert_eq(mc.blocks, 0);
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
