/*
 * fed_util: small helpers the federation's files share (atomics, clock).
 */
#ifndef WTRELAY_FED_UTIL_H
#define WTRELAY_FED_UTIL_H

#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "wtrelay/fed.h"

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

/* A thread's poll set: bell, then the doorbell of the ring at byte offset
 * `ring` of every worker's struct fed_worker (e.g. offsetof(struct
 * fed_worker, out)). NULL when out of memory; free() it. */
static inline struct pollfd *fed_pollfds(struct fed *f, int bell, size_t ring)
{
  uint32_t n = f->p.nworkers;
  struct pollfd *pf = calloc(n + 1, sizeof(*pf));
  if (!pf)
    return NULL;
  pf[0].fd = bell;
  pf[0].events = POLLIN;
  for (uint32_t w = 0; w < n; w++) {
    pf[1 + w].fd = fring_doorbell_fd((const struct fring *)((const char *)&f->ws[w] + ring));
    pf[1 + w].events = POLLIN;
  }
  return pf;
}

#endif
