/*
 * fring: a bounded single-producer/single-consumer ring of Ethernet frames
 * between two workers (one ring per ordered worker pair).
 *
 * Owns: a fixed array of slots allocated at fring_init (a slot is a small
 * header, struct fring_slot, then room for max_frame bytes), the head and
 * tail indices (each on its own cache line), the counters, and an eventfd
 * (the doorbell).
 *
 * One thread pushes, one thread pops; nothing else touches the ring while
 * they run. The producer copies each frame once, from the iovec list the
 * switch handed its port (struct switch_frame.iov), into the next free
 * slot, and publishes it with a release store of the head. The consumer
 * sees it with an acquire load of the head, reads the slot in place (no
 * copy: it may hand the bytes straight to its own switch) and gives the
 * slot back with fring_release (a release store of the tail). A full ring
 * drops the frame and counts it; a push never blocks or waits.
 *
 * Doorbell: the producer does not wake the consumer per frame. It notes
 * that it pushed (fring_doorbell_pending) and, once per loop turn, calls
 * fring_doorbell_ring, which writes the eventfd once if anything was pushed
 * since the last ring. The consumer keeps one read of the eventfd armed on
 * its io_uring (fring_doorbell_fd); when it completes it drains the ring
 * and re-arms the read. A frame pushed after the consumer's drain is never
 * lost: the producer rings after it, and the eventfd counter stays set
 * until read.
 *
 * Counters are _Atomic and written by their one owner only (relaxed), so
 * another thread (the ops listener) may read them at any time.
 *
 * Never: allocates after init, blocks, or knows what a frame means (room,
 * flags and length are carried for the switch on the other side).
 */
#ifndef WTRELAY_FRING_H
#define WTRELAY_FRING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define FRING_CACHE_LINE 64
#define FRING_MAX_SLOTS (1u << 20)
#define FRING_MAX_FRAME (1u << 16)

/* fring_slot.flags */
#define FRING_F_FLOOD 0x1u /* a flood copy (struct switch_frame.flood) */

/* A frame in the ring: header, then len bytes. */
struct fring_slot {
  uint32_t domain; /* the room's switch domain on the consumer's side */
  uint32_t len;    /* bytes in data */
  uint32_t flags;  /* FRING_F_* */
  uint32_t seq;    /* the producer's push count at this frame (wraps) */
  uint8_t data[];
};

struct fring_counters {
  _Atomic uint64_t pushed;       /* producer: frames copied in */
  _Atomic uint64_t dropped_full; /* producer: refused, ring full */
  _Atomic uint64_t dropped_big;  /* producer: refused, larger than max_frame */
  _Atomic uint64_t rings;        /* producer: doorbell writes */
  _Atomic uint64_t popped;       /* consumer: slots released */
};

/* Cache-line aligned: embed it in a struct, or allocate it with
 * aligned_alloc(alignof(struct fring), ...), not plain malloc. */
struct fring {
  /* the producer's line: its index, and its last view of the tail */
  alignas(FRING_CACHE_LINE) _Atomic uint32_t head;
  uint32_t tail_cache;
  bool dirty; /* pushed since the last ring */
  /* the consumer's line */
  alignas(FRING_CACHE_LINE) _Atomic uint32_t tail;
  uint32_t head_cache;
  /* read-only after init */
  alignas(FRING_CACHE_LINE) uint8_t *mem;
  uint32_t nslots, mask; /* nslots a power of two */
  uint32_t stride;       /* bytes per slot, a multiple of the cache line */
  uint32_t max_frame;
  int efd;
  struct fring_counters ctr;
};

/* Allocates at least `slots` slots (rounded up to a power of two) for
 * frames of up to max_frame bytes, and the doorbell eventfd (non-blocking,
 * close-on-exec). 0, -EINVAL (0 or too large), -ENOMEM, or the eventfd's
 * -errno. */
int fring_init(struct fring *r, uint32_t slots, uint32_t max_frame);
/* Frees the slots and closes the eventfd; safe on a zeroed or failed ring
 * and twice. */
void fring_fini(struct fring *r);

/* Producer: copies the frame iov[0..iovcnt-1] (borrowed, only read during
 * the call) into a free slot with its room and flags and publishes it.
 * 0, -EMSGSIZE when longer than max_frame, -ENOBUFS when the ring is full:
 * both counted, the frame dropped. */
int fring_push(struct fring *r, uint32_t domain, uint32_t flags, const struct iovec *iov,
               int iovcnt);
/* Producer: true when something was pushed since the last ring. */
bool fring_doorbell_pending(const struct fring *r);
/* Producer, once per loop turn: writes the eventfd when something was
 * pushed since the last ring. 1 rung, 0 nothing to ring, or -errno from
 * write(2) (the pending mark is kept, to ring next turn). */
int fring_doorbell_ring(struct fring *r);

/* Consumer: the oldest frame not yet released, in place, or NULL when the
 * ring is empty. Valid until fring_release; peeking again without
 * releasing returns the same slot. */
const struct fring_slot *fring_peek(struct fring *r);
/* Consumer: gives the slot fring_peek returned back to the producer. Only
 * after a fring_peek that returned a slot. */
void fring_release(struct fring *r);
/* Consumer: the eventfd to keep a read armed on. */
int fring_doorbell_fd(const struct fring *r);
/* Consumer: reads the eventfd without blocking (for a consumer that polls
 * instead of keeping a read armed). The number of rings since the last
 * read, 0 when none, or -errno. */
int64_t fring_doorbell_ack(struct fring *r);

/* Frames in the ring now, seen from either side (a snapshot). */
uint32_t fring_count(const struct fring *r);

#endif
