/*
 * metrics: Prometheus text exposition of every counter of a worker.
 * Application wiring (reads every module's counters); see src/metrics.c.
 */
#ifndef WTRELAY_METRICS_H
#define WTRELAY_METRICS_H

#include <stdint.h>

#include "wtrelay/gateway.h"
#include "wtrelay/h3.h"
#include "wtrelay/io.h"
#include "wtrelay/ops.h"
#include "wtrelay/quic.h"
#include "wtrelay/relay.h"
#include "wtrelay/timer.h"
#include "wtrelay/tls.h"

struct metrics_src {
  const struct io_counters *io;
  const struct quic_counters *quic;
  const struct h3_counters *h3;
  const struct relay *relay;
  const struct gateway *gw; /* may be NULL */
  /* with several workers: the counters summed over every worker (NULL:
   * relay->ctr and gw->ctr, one worker's) */
  const struct relay_counters *relay_ctr;
  const struct gateway_counters *gw_ctr;
  const struct ops_counters *ops; /* may be NULL */
  const struct timer_heap *timers;
  const struct tls_cert *cert;
  uint32_t quic_conns, rooms;
  uint64_t start_time;
  uint64_t cert_reloads, cert_reload_failures;
  uint32_t certs_live; /* shared certificate objects (in use and retired) */
};

void metrics_write(struct ops_buf *b, const struct metrics_src *m);

#endif
