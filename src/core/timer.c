/*
 * timer: binary min-heap of intrusive timers. See include/wtrelay/timer.h.
 * O(log n) arm/disarm, O(1) next deadline; no allocation after init.
 */
#include "wtrelay/timer.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "wtrelay/counter.h"

uint64_t clock_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int timer_heap_init(struct timer_heap *h, uint32_t cap)
{
  h->heap = calloc(cap ? cap : 1, sizeof(*h->heap));
  if (!h->heap)
    return -ENOMEM;
  h->len = 0;
  h->cap = cap;
  h->arm_failures = 0;
  return 0;
}

void timer_heap_fini(struct timer_heap *h)
{
  free(h->heap);
  h->heap = NULL;
  h->len = h->cap = 0;
}

void timer_init(struct timer *t, timer_fn fn)
{
  t->deadline = TIMER_NEVER;
  t->heap_idx = UINT32_MAX;
  t->fn = fn;
}

static void place(struct timer_heap *h, uint32_t i, struct timer *t)
{
  h->heap[i] = t;
  t->heap_idx = i;
}

static void sift_up(struct timer_heap *h, uint32_t i)
{
  struct timer *t = h->heap[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (h->heap[parent]->deadline <= t->deadline)
      break;
    place(h, i, h->heap[parent]);
    i = parent;
  }
  place(h, i, t);
}

static void sift_down(struct timer_heap *h, uint32_t i)
{
  struct timer *t = h->heap[i];
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    uint64_t md = t->deadline;
    if (l < h->len && h->heap[l]->deadline < md) {
      m = l;
      md = h->heap[l]->deadline;
    }
    if (r < h->len && h->heap[r]->deadline < md)
      m = r;
    if (m == i)
      break;
    place(h, i, h->heap[m]);
    i = m;
  }
  place(h, i, t);
}

void timer_disarm(struct timer_heap *h, struct timer *t)
{
  uint32_t i = t->heap_idx;
  if (i == UINT32_MAX)
    return;
  t->heap_idx = UINT32_MAX;
  t->deadline = TIMER_NEVER;
  struct timer *last = h->heap[--h->len];
  if (i == h->len)
    return;
  place(h, i, last);
  sift_up(h, i);
  sift_down(h, last->heap_idx);
}

int timer_arm(struct timer_heap *h, struct timer *t, uint64_t deadline)
{
  if (deadline == TIMER_NEVER) {
    timer_disarm(h, t);
    return 0;
  }
  if (t->heap_idx != UINT32_MAX) {
    uint64_t old = t->deadline;
    t->deadline = deadline;
    if (deadline < old)
      sift_up(h, t->heap_idx);
    else
      sift_down(h, t->heap_idx);
    return 0;
  }
  if (h->len >= h->cap) {
    h->arm_failures++;
    return -ENOSPC;
  }
  t->deadline = deadline;
  place(h, h->len++, t);
  sift_up(h, t->heap_idx);
  return 0;
}

uint64_t timer_next(const struct timer_heap *h)
{
  return h->len ? h->heap[0]->deadline : TIMER_NEVER;
}

unsigned timer_run(struct timer_heap *h, uint64_t now)
{
  unsigned n = 0;
  while (h->len && h->heap[0]->deadline <= now) {
    struct timer *t = h->heap[0];
    timer_disarm(h, t);
    n++;
    if (t->fn)
      t->fn(t, now);
  }
  return n;
}

void timer_heap_stats(const struct timer_heap *h, struct timer_stats *st)
{
  st->armed = h->len;
  st->capacity = h->cap;
  st->arm_failures = h->arm_failures;
}

/* The heap's figures for /metrics and the exit log, one row per field
 * (test_counter checks that every field has exactly one). */
#define T(fam, help, key, field)                                                                   \
  COUNTER_DEF(struct timer_stats, fam, help, NULL, "timer counters", key, field)
#define TG(fam, help, key, field)                                                                  \
  COUNTER_GAUGE(struct timer_stats, fam, help, NULL, "timer counters", key, field)
static const struct counter_def timer_counter_defs[] = {
    TG("wtrelay_timers", "timers armed", "armed", armed),
    TG("wtrelay_timers_capacity", "timers the heap holds (sized from every bound)", "capacity",
       capacity),
    T("wtrelay_timer_arm_failures_total",
      "timers that could not be armed: the heap was full (a sizing defect)", "arm_failures",
      arm_failures),
};
#undef TG
#undef T

const struct counter_table timer_counter_table =
    COUNTER_TABLE(timer_counter_defs, struct timer_stats);
