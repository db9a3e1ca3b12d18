/*
 * metrics: Prometheus text exposition of every counter of the relay.
 * Application wiring (reads every module's counters); see
 * src/ops/metrics.c.
 *
 * Everything a worker counts is gathered into one struct of 64-bit words,
 * struct metrics_worker: each module's counters struct, plus the worker's
 * gauges that live outside any (struct metrics_gauges). The server
 * snapshots it per worker, sums the snapshots word by word (counters and
 * gauges alike) and hands the sum to metrics_write; the exit line (one
 * debug line, metrics_worker_line) writes the workers' sum from the same
 * tables (metrics_worker_parts), so /metrics and the log name every field
 * from one row and cannot drift.
 */
#ifndef WTRELAY_METRICS_H
#define WTRELAY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wtrelay/auth.h"
#include "wtrelay/chunk.h"
#include "wtrelay/counter.h"
#include "wtrelay/gateway.h"
#include "wtrelay/h3.h"
#include "wtrelay/hist.h"
#include "wtrelay/hostaddr.h"
#include "wtrelay/io.h"
#include "wtrelay/lease.h"
#include "wtrelay/ops.h"
#include "wtrelay/quic.h"
#include "wtrelay/relay.h"
#include "wtrelay/roomdir.h"
#include "wtrelay/switch.h"
#include "wtrelay/timer.h"
#include "wtrelay/tls.h"
#include "wtrelay/ws_listen.h"

/* A worker's gauges that are no field of a counters struct. */
struct metrics_gauges {
  uint64_t sessions;           /* bavy peers of the relay (registered or not) */
  uint64_t quic_conns;         /* QUIC connections in any state */
  uint64_t mac_entries;        /* the switch's learned MACs */
  uint64_t chunk_reassemblies; /* chunked frames being reassembled */
  uint64_t nat_udp_flows, nat_icmp_flows, nat_tcp_conns, nat_share_clients, dns_inflight;
  /* memory of the connections by owner: what ngtcp2 and nghttp3 hold
   * (their allocator hooks), our per-connection structs (in tables
   * allocated at start) and the buffers we allocate as needed */
  uint64_t mem_ngtcp2, mem_nghttp3, mem_relay, mem_relay_buffers;
  uint64_t mem_ngtcp2_slots;         /* of mem_ngtcp2: in page slots (memcount.h) */
  uint64_t sessions_wt, sessions_ws; /* of sessions, by transport */
};
extern const struct counter_table metrics_gauge_table;

/* A worker's latency histograms (fixed buckets, summed like counters):
 * QUIC accepted to handshake completed, session opened to its first
 * Assigned, session opened to its end. Not in the exit log. */
struct metrics_hists {
  struct hist handshake, reg, session;
};

/* Everything one worker counts (see the top of this file): the parts
 * (each with its table), then the histograms. */
struct metrics_worker {
  struct metrics_gauges gauges;
  struct timer_stats timers;
  struct io_counters io;
  struct quic_counters quic;
  struct h3_counters h3;
  struct auth_counters auth;
  struct relay_counters relay;
  struct switch_counters sw;
  struct switch_kind_table sw_kind;
  struct chunk_counters chunk;
  struct gateway_counters gw;
  struct hostaddr_counters hostaddr;
  struct ws_listen_counters ws;
  struct metrics_hists hist; /* last: no part of the exit log */
};

/* The parts of struct metrics_worker: each one's table and offset, in
 * order (test_counter checks that they tile the struct). */
struct metrics_part {
  const struct counter_table *t;
  size_t off;
};
extern const struct metrics_part metrics_worker_parts[];
extern const size_t metrics_worker_nparts;

/* What metrics_worker_fill reads: one worker's modules (gw, auth and
 * hostaddr may be NULL: their words stay 0). */
struct metrics_worker_src {
  const struct io *io;
  const struct timer_heap *timers;
  const struct quic_endpoint *quic;
  const struct h3_endpoint *h3;
  const struct relay *relay;
  const struct gateway *gw;
  const struct auth *auth;
  const struct hostaddr *hostaddr;
  const struct ws_listen *ws; /* NULL: no WebSocket listener */
};
void metrics_worker_fill(struct metrics_worker *mw, const struct metrics_worker_src *src);

/* Appends every part of mw to the exit line, in part order. */
void metrics_worker_line(struct counter_line *l, const struct metrics_worker *mw);

struct metrics_src {
  const struct metrics_worker *sum; /* summed over every worker */
  bool auth;                        /* token or origin checks configured: their families */
  bool hostaddr;                    /* the host's routes are followed: their families */
  uint32_t host_routes;             /* routes followed (every worker mirrors the same host) */
  /* process-wide: the room directory's lease table (the caller holds the
   * directory's lock), the ops listener (may be NULL) */
  const struct lease_table *leases;
  uint64_t now;
  const struct ops_counters *ops;
  const struct tls_cert *cert;
  uint32_t rooms;
  uint64_t start_time;
  uint64_t cert_reloads, cert_reload_failures;
  uint32_t certs_live; /* shared certificate objects (in use and retired) */
  /* the room directory (the caller holds its lock): sessions per room;
   * NULL for none */
  const struct roomdir *dir;
};

void metrics_write(struct ops_buf *b, const struct metrics_src *m);
/* Writes one more counter table's exported rows (a process-wide struct
 * such as the federation's, read once). */
void metrics_table_write(struct ops_buf *b, const struct counter_table *t, const void *ctr);

/* Writes wtrelay_build_info (the version of the relay and of the
 * libraries it runs with) and the process_* families (CPU time, resident
 * memory, open descriptors, start time) read from /proc/self now; a
 * /proc file that cannot be read leaves its family out.
 * (metrics_process.c) */
void metrics_process_write(struct ops_buf *b);

/* Copies s into dst (cap bytes, NUL-terminated) as a Prometheus label
 * value: backslash, double quote and newline escaped, each byte that is no
 * part of valid UTF-8 replaced by U+FFFD; an escape or character that does
 * not fit is left out whole. Returns the length written. */
size_t metrics_label_escape(char *dst, size_t cap, const char *s);

#endif
