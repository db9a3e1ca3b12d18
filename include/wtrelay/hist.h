/*
 * hist: fixed-bucket latency histograms for /metrics (Prometheus
 * histograms: cumulative _bucket{le}, _sum, _count).
 *
 * Owns: struct hist (64-bit words only, so a worker's histograms are
 * summed word by word with its counters) and the two fixed sets of bucket
 * bounds. Talks to: nothing. The writer is metrics.c's.
 * Never: allocates, or keeps samples; an observation is a few adds.
 *
 * A histogram is observed by one thread (its worker's) and read through
 * the worker's snapshot like every counter; the bounds are the same for
 * every worker, so sums of histograms are histograms.
 */
#ifndef WTRELAY_HIST_H
#define WTRELAY_HIST_H

#include <stdint.h>

#define HIST_BUCKETS 14

struct hist {
  uint64_t n[HIST_BUCKETS]; /* observations in (bound[i-1], bound[i]], not cumulative */
  uint64_t count;           /* every observation, the ones over the last bound too */
  uint64_t sum_ns;
};

/* Upper bounds in nanoseconds, ascending: milliseconds to seconds
 * (handshakes, registers), seconds to a day (session durations). */
extern const uint64_t hist_bounds_fast[HIST_BUCKETS];
extern const uint64_t hist_bounds_long[HIST_BUCKETS];

/* Counts one value of ns against bounds (one of the two above). */
void hist_observe(struct hist *h, const uint64_t *bounds, uint64_t ns);

#endif
