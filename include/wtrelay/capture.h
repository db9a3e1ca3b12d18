/*
 * capture: packet capture of a room's Ethernet frames in the classic pcap
 * format (LINKTYPE_ETHERNET, microsecond timestamps, snaplen 65535), for
 * operators: streamed on the ops listener (GET /rooms/<room>/pcap) or
 * written to a file (--pcap FILE --pcap-room ROOM).
 *
 * Owns: a fixed table of captures (CAPTURE_SLOTS: CAPTURE_HTTP_MAX streams
 * and one file), each a byte ring allocated when it starts and freed when
 * it stops, holding pcap bytes (the file header, then one record per
 * frame) that its one consumer drains; the file capture's writer thread;
 * the counters. One mutex guards the table and every ring.
 *
 * Producers are the workers: each taps the frames entering its room copy
 * at a local port (sessions, after the LAN guards; the gateway) and from
 * the federation uplink, never from a worker uplink, so a frame is
 * captured once per relay whatever the number of workers. A tap copies
 * the frame once, into the ring, as a pcap record; a ring without room for
 * it drops the frame (counted): a slow reader never stalls a worker, which
 * holds the mutex only for that copy.
 *
 * The cost when nobody captures the room: capture_tap is inline and reads
 * one relaxed atomic (the table's generation, bumped at every start and
 * stop) and compares it with the room copy's cached one; only when it
 * changed, or the room is captured, does it take the mutex.
 *
 * Consumers: the ops listener (capture_peek/capture_consume on worker 0's
 * ring: it sends straight from the ring) or the file writer thread.
 * Never: blocks a worker on I/O, allocates on a worker, knows HTTP.
 */
#ifndef WTRELAY_CAPTURE_H
#define WTRELAY_CAPTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "wtrelay/counter.h"

#define CAPTURE_HTTP_MAX 4 /* concurrent streams on the ops listener */
#define CAPTURE_SLOTS (CAPTURE_HTTP_MAX + 1)
#define CAPTURE_SNAPLEN 65535u
#define CAPTURE_HTTP_RING (4u << 20)         /* bytes buffered per stream */
#define CAPTURE_HTTP_MAX_BYTES (64ull << 20) /* bytes per stream */
#define CAPTURE_FILE_RING (8u << 20)         /* bytes buffered for the file */
#define CAPTURE_DEFAULT_SECONDS 10
#define CAPTURE_MAX_SECONDS 300
#define CAPTURE_ROOM_MAX 256

struct capture {
  bool used;
  bool file;   /* the --pcap capture */
  bool closed; /* its time is over: takes no more frames */
  bool full;   /* its byte bound is reached: takes no more frames */
  char room[CAPTURE_ROOM_MAX];
  uint8_t *ring;
  size_t size;
  uint64_t head, tail; /* bytes ever written and released: head - tail are buffered */
  uint64_t bytes, max_bytes;
  uint64_t end_ns; /* CLOCK_MONOTONIC; 0 = until stopped */
};

/* Process-wide, summed by nobody: read once (under the mutex). */
struct capture_counters {
  uint64_t started, refused_busy;
  uint64_t frames, bytes;
  uint64_t dropped_slow;  /* the ring was full: its reader is slow */
  uint64_t dropped_limit; /* the capture reached its byte bound */
};

/* A room copy's view of the table (struct relay_room holds one). Zeroed
 * it is stale, so the first frame looks the room up. */
struct capture_room {
  uint32_t gen;
  bool on; /* some capture names the room */
};

struct capture_hub {
  pthread_mutex_t mu;
  _Atomic uint32_t gen; /* bumped at every start and stop, under mu; never 0 */
  struct capture slots[CAPTURE_SLOTS];
  struct capture_counters ctr;
  /* the file capture (capture_file_start) */
  struct capture *fcap;
  int fd;
  bool thread_on;
  _Atomic bool stop;
  pthread_t thread;
};

/* 0 or a negative errno (pthread_mutex_init). */
int capture_hub_init(struct capture_hub *h);
/* Stops the file capture (its writer flushes what the ring holds) and
 * frees every capture. Streams must have been closed by their consumer. */
void capture_hub_fini(struct capture_hub *h);

/* Starts a capture of room `room` (its name: "/lab") for `seconds`
 * (0 = until stopped), at most max_bytes of pcap, buffered in a ring of
 * ring_size bytes; the pcap file header is its first bytes. A stream
 * (file false) is refused with -EBUSY at CAPTURE_HTTP_MAX streams. 0 with
 * *out, -EBUSY, -EINVAL (a name too long), -ENOMEM. */
int capture_start(struct capture_hub *h, const char *room, uint32_t seconds, uint64_t max_bytes,
                  size_t ring_size, bool file, struct capture **out);
/* Ends the capture and frees its ring; the consumer's pointers from
 * capture_peek are void. */
void capture_stop(struct capture_hub *h, struct capture *c);

/* Consumer: the next buffered bytes, contiguous, at *p (valid until
 * capture_consume or capture_stop); 0 when none. *done is set when none
 * will come: the time is over or the byte bound reached, and all is
 * drained. */
size_t capture_peek(struct capture_hub *h, struct capture *c, const uint8_t **p, bool *done);
/* Consumer: gives back n bytes of what capture_peek returned. */
void capture_consume(struct capture_hub *h, struct capture *c, size_t n);

/* Writes room `room`'s frames to `path` (created or truncated) until
 * capture_hub_fini, at most max_bytes (then logs and stops), from a thread
 * of its own. 0, or a negative errno (open, thread, capture_start). */
int capture_file_start(struct capture_hub *h, const char *path, const char *room,
                       uint64_t max_bytes);

/* Producer (a worker): true when room copy `rc` may be captured, so
 * capture_tap_slow must look (the generation changed, or a capture names
 * the room). h may be NULL (no capture in this process). */
static inline bool capture_wanted(struct capture_hub *h, const struct capture_room *rc)
{
#ifdef WTRELAY_BENCH_NO_CAPTURE_TAP
  /* perf/bench-capture.sh's baseline: the frame path without the hook */
  (void)h;
  (void)rc;
  return false;
#else
  return h && (atomic_load_explicit(&h->gen, memory_order_relaxed) != rc->gen || rc->on);
#endif
}

/* Producer: records the frame iov[0..iovcnt-1] (len bytes, borrowed)
 * entering room copy `room` (its name; rc its view, refreshed here) in
 * every capture of that room. */
void capture_tap_slow(struct capture_hub *h, struct capture_room *rc, const char *room,
                      const struct iovec *iov, int iovcnt, size_t len);

static inline void capture_tap(struct capture_hub *h, struct capture_room *rc, const char *room,
                               const struct iovec *iov, int iovcnt, size_t len)
{
  if (capture_wanted(h, rc))
    capture_tap_slow(h, rc, room, iov, iovcnt, len);
}

/* The counters now (under the mutex). */
void capture_counters_read(struct capture_hub *h, struct capture_counters *out);
extern const struct counter_table capture_counter_table;

#endif
