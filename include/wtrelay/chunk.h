/*
 * chunk: the bavy protocol's chunking of large Ethernet frames (0x02
 * datagrams, protocol.md section 1), both directions, no I/O.
 *
 * Reassembly. A fixed pool of slots, sized at start-up, is shared by all
 * sessions of a worker; each session (an "owner") may hold at most
 * per_owner slots at once. A slot is keyed by (owner, chunk_id). Chunks
 * 0..total-2 must all have the same length (the stride, 900 for the seed)
 * and are written once, straight from the datagram, to index * stride of
 * the slot's buffer; the last chunk (any length up to the stride) goes to a
 * side buffer, so a complete frame is two iovecs and costs exactly one copy
 * of its bytes. Every other case is a counted drop: a duplicate chunk is
 * ignored, a total that changes within a chunk_id or an inconsistent stride
 * drops the reassembly, a frame over max_frame is dropped, slots older than
 * max_age are expired (on the owner's next chunk and by chunk_reasm_expire),
 * an owner at its cap evicts its oldest slot, and an empty pool drops the
 * new chunk.
 *
 * Splitting. chunk_split_plan() decides whether a frame fits one 0x01
 * datagram of a destination's current maximum payload or how to chunk it;
 * chunk_split_write() gathers chunk k into a caller's buffer.
 *
 * Never: knows about sessions, QUIC or the switch; owners are opaque.
 */
#ifndef WTRELAY_CHUNK_H
#define WTRELAY_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "wtrelay/bavy.h"
#include "wtrelay/counter.h"

#define CHUNK_PER_OWNER_MAX 16
#define CHUNK_HDR 5 /* type byte + chunk_id u16 + index + total */

struct chunk_params {
  uint32_t slots;     /* pool size, shared by all owners */
  uint32_t per_owner; /* frames in flight per owner (1..CHUNK_PER_OWNER_MAX) */
  uint32_t max_frame; /* largest reassembled frame, bytes */
  uint64_t max_age_ns;
};

struct chunk_owner {
  uint32_t slot[CHUNK_PER_OWNER_MAX]; /* slot indices */
  uint32_t n;
};

struct chunk_slot {
  struct chunk_owner *owner; /* NULL = free */
  uint32_t next_free;
  uint16_t chunk_id;
  uint8_t total, nrecv;
  uint16_t stride;   /* 0 until a non-last chunk arrived */
  uint16_t last_len; /* 0 until the last chunk arrived */
  uint64_t started_ns;
  uint32_t have[8]; /* bitmap of received indices */
  uint8_t *buf;     /* max_frame bytes: chunks 0..total-2 */
  uint8_t last[BAVY_CHUNK_DATA_MAX];
};

struct chunk_counters {
  uint64_t chunks_in, frames_done, single, duplicates, bad_total, bad_stride, too_big;
  uint64_t expired, evicted, pool_empty;
};

struct chunk_pool {
  struct chunk_params p;
  struct chunk_slot *slots;
  uint8_t *bufs;
  uint32_t free_head; /* index + 1, 0 = empty */
  uint32_t used;
  struct chunk_counters ctr;
};

/* A complete frame: iov[0..iovcnt-1], valid until chunk_reasm_release()
 * (slot != UINT32_MAX) or, for a single-chunk frame (slot == UINT32_MAX),
 * as long as the datagram it came from. */
struct chunk_frame {
  struct iovec iov[2];
  int iovcnt;
  size_t len;
  uint32_t slot;
};

enum {
  CHUNK_PENDING = 0,
  CHUNK_COMPLETE = 1,
};

int chunk_pool_init(struct chunk_pool *cp, const struct chunk_params *p);
void chunk_pool_fini(struct chunk_pool *cp);

void chunk_owner_init(struct chunk_owner *o);
/* Frees every slot the owner holds (its session ended). */
void chunk_owner_release(struct chunk_pool *cp, struct chunk_owner *o);

/* Takes one parsed chunk header (its data borrowed). Returns CHUNK_PENDING,
 * CHUNK_COMPLETE with *out filled, or a negative errno for a dropped chunk
 * (-EALREADY duplicate, -EPROTO bad total/stride, -EMSGSIZE over max_frame,
 * -ENOBUFS pool empty); each is also counted in cp->ctr. */
int chunk_reasm_input(struct chunk_pool *cp, struct chunk_owner *o, const struct bavy_chunk_hdr *h,
                      uint64_t now, struct chunk_frame *out);
/* Frees the slot of a completed frame once it has been delivered. */
void chunk_reasm_release(struct chunk_pool *cp, struct chunk_frame *f);
/* Frees every slot older than max_age. Returns how many. */
uint32_t chunk_reasm_expire(struct chunk_pool *cp, uint64_t now);

struct chunk_plan {
  bool chunked;   /* false: one 0x01 datagram of 1 + len bytes */
  uint32_t size;  /* data bytes per chunk */
  uint32_t total; /* number of chunks */
};

/* Decides how a frame of `len` bytes goes to a destination whose current
 * maximum datagram payload is `max_dgram`. Chunks carry at most 900 bytes
 * (what the seed's receivers expect) and fewer when the datagram is
 * smaller. -EMSGSIZE when it cannot be sent at all (max_dgram too small, or
 * more than 255 chunks). */
int chunk_split_plan(size_t len, size_t max_dgram, struct chunk_plan *plan);
/* Writes chunk k (0x02 header + data gathered from iov) to buf. Returns its
 * length, or -ENOSPC. */
int chunk_split_write(uint8_t *buf, size_t cap, const struct chunk_plan *plan, uint16_t chunk_id,
                      uint32_t k, const struct iovec *iov, int iovcnt);

/* The counters' table (wtrelay/counter.h): /metrics and the exit log
 * are written from it. */
extern const struct counter_table chunk_counter_table;

#endif
