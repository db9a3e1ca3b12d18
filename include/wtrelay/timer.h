/*
 * timer: one min-heap of deadlines per worker.
 *
 * Timers are intrusive (embedded in their owner, e.g. a connection) and the
 * heap holds pointers to them, bounded by a capacity fixed at init. The
 * worker reads the earliest deadline once per loop turn and waits on the
 * ring for at most that long (one ring timeout for every timer). Times are
 * CLOCK_MONOTONIC nanoseconds.
 */
#ifndef WTRELAY_TIMER_H
#define WTRELAY_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include "wtrelay/counter.h"

#define TIMER_NEVER UINT64_MAX

struct timer;
typedef void (*timer_fn)(struct timer *t, uint64_t now);

struct timer {
  uint64_t deadline;
  uint32_t heap_idx; /* UINT32_MAX when not armed */
  timer_fn fn;
};

struct timer_heap {
  struct timer **heap;
  uint32_t len, cap;
  uint64_t arm_failures; /* timer_arm calls refused with -ENOSPC (a sizing defect) */
};

int timer_heap_init(struct timer_heap *h, uint32_t cap);
void timer_heap_fini(struct timer_heap *h);
void timer_init(struct timer *t, timer_fn fn);
/* Arms or re-arms t. -ENOSPC when the heap is full (counted in
 * arm_failures): the heap is sized from every bound that owns a timer
 * (server_timers_needed), so this is a defect, and every caller handles it
 * (an owner left without its timer would wait for ever). Re-arming an
 * armed timer never fails. deadline TIMER_NEVER disarms. */
int timer_arm(struct timer_heap *h, struct timer *t, uint64_t deadline);
void timer_disarm(struct timer_heap *h, struct timer *t);
static inline bool timer_armed(const struct timer *t)
{
  return t->heap_idx != UINT32_MAX;
}
uint64_t timer_next(const struct timer_heap *h);
/* Runs every timer whose deadline <= now (each disarmed before its fn runs;
 * fn may re-arm). Returns how many ran. */
unsigned timer_run(struct timer_heap *h, uint64_t now);

/* CLOCK_MONOTONIC in ns. */
uint64_t clock_now_ns(void);

/* The heap's figures as 64-bit words, for its counter table. */
struct timer_stats {
  uint64_t armed, capacity; /* gauges */
  uint64_t arm_failures;
};
void timer_heap_stats(const struct timer_heap *h, struct timer_stats *st);
/* The table (wtrelay/counter.h) of struct timer_stats: /metrics and the
 * exit log are written from it. */
extern const struct counter_table timer_counter_table;

#endif
