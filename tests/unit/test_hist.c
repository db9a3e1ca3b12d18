#include <criterion/criterion.h>
#include <string.h>

#include "wtrelay/hist.h"
#include "wtrelay/timeunit.h"

/* Both bound sets ascend strictly: a bucket a value could fall in twice,
 * or never, would break the cumulative buckets /metrics writes. */
Test(hist, bounds_ascend)
{
  for (int i = 1; i < HIST_BUCKETS; i++) {
    cr_assert_gt(hist_bounds_fast[i], hist_bounds_fast[i - 1], "fast %d", i);
    cr_assert_gt(hist_bounds_long[i], hist_bounds_long[i - 1], "long %d", i);
  }
}

/* A value on a bound falls in that bound's bucket (le: less or equal);
 * one above the last bound is counted and summed but in no bucket. */
Test(hist, observe_buckets_count_and_sum)
{
  struct hist h;
  memset(&h, 0, sizeof(h));
  hist_observe(&h, hist_bounds_fast, 0);
  hist_observe(&h, hist_bounds_fast, hist_bounds_fast[0]);
  hist_observe(&h, hist_bounds_fast, hist_bounds_fast[0] + 1);
  hist_observe(&h, hist_bounds_fast, hist_bounds_fast[HIST_BUCKETS - 1] + 1);
  cr_assert_eq(h.n[0], 2);
  cr_assert_eq(h.n[1], 1);
  uint64_t in_buckets = 0;
  for (int i = 0; i < HIST_BUCKETS; i++)
    in_buckets += h.n[i];
  cr_assert_eq(in_buckets, 3);
  cr_assert_eq(h.count, 4);
  cr_assert_eq(h.sum_ns, 2 * hist_bounds_fast[0] + 1 + hist_bounds_fast[HIST_BUCKETS - 1] + 1);
}

/* Histograms of two workers add word by word into the histogram of both
 * (the server sums snapshots that way). */
Test(hist, sums_word_by_word)
{
  struct hist a, b, both;
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  memset(&both, 0, sizeof(both));
  uint64_t v[] = {3 * NS_PER_MS, 40 * NS_PER_MS, 2 * NS_PER_S, 90 * NS_PER_S};
  for (size_t i = 0; i < 4; i++) {
    hist_observe(i % 2 ? &a : &b, hist_bounds_fast, v[i]);
    hist_observe(&both, hist_bounds_fast, v[i]);
  }
  uint64_t *wa = (uint64_t *)&a;
  const uint64_t *wb = (const uint64_t *)&b;
  for (size_t i = 0; i < sizeof(a) / sizeof(uint64_t); i++)
    wa[i] += wb[i];
  cr_assert_eq(memcmp(&a, &both, sizeof(a)), 0);
}
