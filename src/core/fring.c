/*
 * fring: worker-to-worker frame ring. See include/wtrelay/fring.h.
 *
 * Head and tail are free-running 32-bit counters (slot = index & mask):
 * head - tail is the fill level, also across the wrap of the counters,
 * because nslots is at most 2^20. Each side keeps a cached copy of the
 * other's index and reloads it (acquire) only when the cache says full
 * (producer) or empty (consumer), so the shared lines move only when they
 * must. The only stores the other side reads are the two indices, with
 * release ordering: a slot's bytes are written before the head that
 * publishes them, and read before the tail that frees them.
 */
#include "wtrelay/fring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void count(_Atomic uint64_t *c)
{
  /* one writer: a relaxed load and store, no locked instruction */
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
}

static struct fring_slot *slot_at(const struct fring *r, uint32_t i)
{
  return (struct fring_slot *)(r->mem + (size_t)(i & r->mask) * r->stride);
}

int fring_init(struct fring *r, uint32_t slots, uint32_t max_frame)
{
  memset(r, 0, sizeof(*r));
  r->efd = -1;
  if (!slots || slots > FRING_MAX_SLOTS || !max_frame || max_frame > FRING_MAX_FRAME)
    return -EINVAL;
  uint32_t n = 1;
  while (n < slots)
    n <<= 1;
  size_t stride = sizeof(struct fring_slot) + max_frame;
  stride = (stride + FRING_CACHE_LINE - 1) & ~(size_t)(FRING_CACHE_LINE - 1);
  r->mem = aligned_alloc(FRING_CACHE_LINE, (size_t)n * stride);
  if (!r->mem)
    return -ENOMEM;
  r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (r->efd < 0) {
    int e = -errno;
    fring_fini(r);
    return e;
  }
  r->nslots = n;
  r->mask = n - 1;
  r->stride = (uint32_t)stride;
  r->max_frame = max_frame;
  atomic_init(&r->head, 0);
  atomic_init(&r->tail, 0);
  return 0;
}

void fring_fini(struct fring *r)
{
  free(r->mem);
  r->mem = NULL;
  if (r->efd >= 0)
    close(r->efd);
  r->efd = -1;
}

/* ---- producer ---- */

int fring_push(struct fring *r, uint32_t domain, uint32_t flags, const struct iovec *iov,
               int iovcnt)
{
  size_t len = 0;
  for (int i = 0; i < iovcnt; i++)
    len += iov[i].iov_len;
  if (len > r->max_frame) {
    count(&r->ctr.dropped_big);
    return -EMSGSIZE;
  }
  uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
  if (h - r->tail_cache >= r->nslots) {
    r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (h - r->tail_cache >= r->nslots) {
      count(&r->ctr.dropped_full);
      return -ENOBUFS;
    }
  }
  struct fring_slot *s = slot_at(r, h);
  s->domain = domain;
  s->len = (uint32_t)len;
  s->flags = flags;
  s->seq = (uint32_t)atomic_load_explicit(&r->ctr.pushed, memory_order_relaxed);
  size_t off = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len)
      memcpy(s->data + off, iov[i].iov_base, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  atomic_store_explicit(&r->head, h + 1, memory_order_release);
  count(&r->ctr.pushed);
  r->dirty = true;
  return 0;
}

bool fring_doorbell_pending(const struct fring *r)
{
  return r->dirty;
}

int fring_doorbell_ring(struct fring *r)
{
  if (!r->dirty)
    return 0;
  uint64_t one = 1;
  if (write(r->efd, &one, sizeof(one)) != (ssize_t)sizeof(one)) {
    if (errno != EAGAIN)
      return -errno;
    /* EAGAIN: the counter is near 2^64, the consumer is already called */
    r->dirty = false;
    return 0;
  }
  r->dirty = false;
  count(&r->ctr.rings);
  return 1;
}

/* ---- consumer ---- */

const struct fring_slot *fring_peek(struct fring *r)
{
  uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
  if (t == r->head_cache) {
    r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
    if (t == r->head_cache)
      return NULL;
  }
  return slot_at(r, t);
}

void fring_release(struct fring *r)
{
  uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
  if (t == r->head_cache)
    return; /* nothing was peeked */
  atomic_store_explicit(&r->tail, t + 1, memory_order_release);
  count(&r->ctr.popped);
}

int fring_doorbell_fd(const struct fring *r)
{
  return r->efd;
}

int64_t fring_doorbell_ack(struct fring *r)
{
  uint64_t v;
  if (read(r->efd, &v, sizeof(v)) != (ssize_t)sizeof(v))
    return errno == EAGAIN ? 0 : -errno;
  return (int64_t)v;
}

uint32_t fring_count(const struct fring *r)
{
  uint32_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
  uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
  return h - t;
}
