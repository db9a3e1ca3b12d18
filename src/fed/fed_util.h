/*
 * fed_util: small helpers the federation's files share (atomics, clock).
 */
#ifndef WTRELAY_FED_UTIL_H
#define WTRELAY_FED_UTIL_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void add(_Atomic uint64_t *c, uint64_t v)
{
  atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static inline uint64_t ld(_Atomic uint64_t *c)
{
  return atomic_load_explicit(c, memory_order_relaxed);
}

#endif
