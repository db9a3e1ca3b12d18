/*
 * worker: one thread, one io_uring, and everything that thread owns.
 *
 * The worker runs the loop: read the clock once, run due timers, let the
 * protocol layers write what they have (the `turn` hook), flush the tx batch
 * in as few sendmsg calls as possible, wait on the ring until the earliest
 * timer, dispatch completions. It owns the io state and the timer heap and
 * lends them to the layers above; no state is shared between workers.
 */
#ifndef WTRELAY_WORKER_H
#define WTRELAY_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "wtrelay/io.h"
#include "wtrelay/timer.h"

struct worker;
typedef void (*worker_turn_fn)(void *ctx, uint64_t now);

struct worker {
  uint32_t index;
  struct io io;
  struct timer_heap timers;
  uint64_t now;
  bool stopping; /* a stop was requested (SIGINT/SIGTERM) */
  bool stop;     /* leave the loop at the end of this turn */
  worker_turn_fn turn;
  void *turn_ctx;
  uint64_t turns;
  /* Loop utilisation: time from waking to the next wait on the ring
   * (timers, completions, the turn hook, the tx flush) and time blocked in
   * io_wait, which also submits the turn's SQEs (their inline work counts
   * as waiting). Two clock reads per turn. */
  uint64_t busy_ns, wait_ns;
};

int worker_init(struct worker *w, uint32_t index, const struct io_params *iop, uint32_t max_timers);
void worker_fini(struct worker *w);
/* Runs the loop until w->stop is set. Returns 0 or negative errno. */
int worker_run(struct worker *w);

#endif
