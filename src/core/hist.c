/*
 * hist: fixed-bucket histograms. See include/wtrelay/hist.h.
 */
#include "wtrelay/hist.h"

#include "wtrelay/timeunit.h"

#define MS NS_PER_MS
#define S NS_PER_S

const uint64_t hist_bounds_fast[HIST_BUCKETS] = {
    MS,       5 * MS / 2, 5 * MS, 10 * MS,   25 * MS, 50 * MS, 100 * MS,
    250 * MS, 500 * MS,   S,      5 * S / 2, 5 * S,   10 * S,  30 * S,
};

const uint64_t hist_bounds_long[HIST_BUCKETS] = {
    S,        10 * S,       30 * S,       60 * S,       300 * S,       600 * S,   1800 * S,
    3600 * S, 2 * 3600 * S, 4 * 3600 * S, 8 * 3600 * S, 12 * 3600 * S, 86400 * S, 7 * 86400 * S,
};

void hist_observe(struct hist *h, const uint64_t *bounds, uint64_t ns)
{
  h->count++;
  h->sum_ns += ns;
  for (int i = 0; i < HIST_BUCKETS; i++) {
    if (ns <= bounds[i]) {
      h->n[i]++;
      return;
    }
  }
}
