/*
 * worker: the per-thread event loop. See include/wtrelay/worker.h.
 */
#include "wtrelay/worker.h"

#include <errno.h>
#include <string.h>

int worker_init(struct worker *w, uint32_t index, const struct io_params *iop, uint32_t max_timers)
{
  int rc;
  memset(w, 0, sizeof(*w));
  w->index = index;
  if ((rc = io_init(&w->io, iop)) < 0)
    return rc;
  if ((rc = timer_heap_init(&w->timers, max_timers)) < 0) {
    io_fini(&w->io);
    return rc;
  }
  w->now = clock_now_ns();
  return 0;
}

void worker_fini(struct worker *w)
{
  io_fini(&w->io);
  timer_heap_fini(&w->timers);
}

int worker_run(struct worker *w)
{
  w->now = clock_now_ns();
  while (!w->stop) {
    /* One clock read per turn, taken after waking, so completions and
     * timers of this turn see the same, current time. */
    timer_run(&w->timers, w->now);
    if (w->turn)
      w->turn(w->turn_ctx, w->now);
    if (w->stop)
      break;
    io_flush(&w->io);
    uint64_t t = clock_now_ns();
    w->busy_ns += t - w->now;
    int rc = io_wait(&w->io, timer_next(&w->timers), w->now);
    if (rc < 0)
      return rc;
    w->now = clock_now_ns();
    w->wait_ns += w->now - t;
    io_dispatch(&w->io);
    w->turns++;
  }
  /* Push out whatever the last turn produced (e.g. CONNECTION_CLOSE). */
  io_flush(&w->io);
  io_wait(&w->io, 0, 0);
  io_dispatch(&w->io);
  return 0;
}
