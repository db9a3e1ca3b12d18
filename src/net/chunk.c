/*
 * chunk: bavy chunk reassembly and splitting. See include/wtrelay/chunk.h.
 *
 * Slots are taken from a free list, else from a high-water mark, so pool
 * pages that were never needed are never touched (the pool is sized for the
 * worst case but costs memory only as it is used).
 */
#include "wtrelay/chunk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/counter.h"
#include "wtrelay/iov.h"

static uint32_t pool_hwm(const struct chunk_pool *cp)
{
  return cp->used;
}

int chunk_pool_init(struct chunk_pool *cp, const struct chunk_params *p)
{
  memset(cp, 0, sizeof(*cp));
  if (p->slots == 0 || p->per_owner == 0 || p->per_owner > CHUNK_PER_OWNER_MAX ||
      p->max_frame == 0 || p->max_frame > 255u * BAVY_CHUNK_DATA_MAX)
    return -EINVAL;
  cp->p = *p;
  cp->slots = calloc(p->slots, sizeof(*cp->slots));
  cp->bufs = calloc(p->slots, p->max_frame);
  if (!cp->slots || !cp->bufs) {
    chunk_pool_fini(cp);
    return -ENOMEM;
  }
  return 0;
}

void chunk_pool_fini(struct chunk_pool *cp)
{
  free(cp->slots);
  free(cp->bufs);
  cp->slots = NULL;
  cp->bufs = NULL;
}

void chunk_owner_init(struct chunk_owner *o)
{
  memset(o, 0, sizeof(*o));
}

static struct chunk_slot *slot_alloc(struct chunk_pool *cp, uint32_t *idx)
{
  uint32_t i;
  if (cp->free_head) {
    i = cp->free_head - 1;
    cp->free_head = cp->slots[i].next_free;
  } else if (pool_hwm(cp) < cp->p.slots) {
    i = cp->used++;
  } else {
    return NULL;
  }
  struct chunk_slot *s = &cp->slots[i];
  uint8_t *buf = cp->bufs + (size_t)i * cp->p.max_frame;
  memset(s, 0, offsetof(struct chunk_slot, last));
  s->buf = buf;
  *idx = i;
  return s;
}

/* Unlinks slot i from its owner and puts it on the free list. */
static void slot_free(struct chunk_pool *cp, uint32_t i)
{
  struct chunk_slot *s = &cp->slots[i];
  struct chunk_owner *o = s->owner;
  if (!o)
    return;
  for (uint32_t k = 0; k < o->n; k++) {
    if (o->slot[k] == i) {
      o->slot[k] = o->slot[--o->n];
      break;
    }
  }
  s->owner = NULL;
  s->next_free = cp->free_head;
  cp->free_head = i + 1;
}

void chunk_owner_release(struct chunk_pool *cp, struct chunk_owner *o)
{
  while (o->n)
    slot_free(cp, o->slot[o->n - 1]);
}

static bool bit_test(const uint32_t *m, uint8_t i)
{
  return m[i >> 5] & (1u << (i & 31));
}
static void bit_set(uint32_t *m, uint8_t i)
{
  m[i >> 5] |= 1u << (i & 31);
}

/* The owner's slot for chunk_id; expires the owner's old slots on the way. */
static struct chunk_slot *owner_find(struct chunk_pool *cp, struct chunk_owner *o,
                                     uint16_t chunk_id, uint64_t now, uint32_t *idx)
{
  struct chunk_slot *found = NULL;
  for (uint32_t k = 0; k < o->n;) {
    uint32_t i = o->slot[k];
    struct chunk_slot *s = &cp->slots[i];
    if (now - s->started_ns >= cp->p.max_age_ns) {
      cp->ctr.expired++;
      slot_free(cp, i); /* moved the last entry into k: look at k again */
      continue;
    }
    if (s->chunk_id == chunk_id) {
      found = s;
      *idx = i;
    }
    k++;
  }
  return found;
}

static struct chunk_slot *owner_new(struct chunk_pool *cp, struct chunk_owner *o,
                                    const struct bavy_chunk_hdr *h, uint64_t now, uint32_t *idx)
{
  if (o->n >= cp->p.per_owner) {
    uint32_t oldest = 0;
    for (uint32_t k = 1; k < o->n; k++)
      if (cp->slots[o->slot[k]].started_ns < cp->slots[o->slot[oldest]].started_ns)
        oldest = k;
    cp->ctr.evicted++;
    slot_free(cp, o->slot[oldest]);
  }
  struct chunk_slot *s = slot_alloc(cp, idx);
  if (!s) {
    cp->ctr.pool_empty++;
    return NULL;
  }
  s->owner = o;
  s->chunk_id = h->chunk_id;
  s->total = h->total;
  s->started_ns = now;
  o->slot[o->n++] = *idx;
  return s;
}

/* Checks the slot's geometry once stride and/or last length are known. */
static int geometry_ok(const struct chunk_pool *cp, const struct chunk_slot *s)
{
  if (s->stride && s->last_len > s->stride)
    return -EPROTO;
  size_t body = (size_t)(s->total - 1) * s->stride;
  size_t last = s->last_len ? s->last_len : 1;
  if (s->stride && body + last > cp->p.max_frame)
    return -EMSGSIZE;
  if (!s->stride && s->last_len > cp->p.max_frame)
    return -EMSGSIZE;
  return 0;
}

int chunk_reasm_input(struct chunk_pool *cp, struct chunk_owner *o, const struct bavy_chunk_hdr *h,
                      uint64_t now, struct chunk_frame *out)
{
  uint32_t idx = UINT32_MAX;
  cp->ctr.chunks_in++;
  if (h->total == 1) {
    /* A frame in one chunk: nothing to keep. */
    if (h->len > cp->p.max_frame) {
      cp->ctr.too_big++;
      return -EMSGSIZE;
    }
    out->iov[0].iov_base = (void *)h->data;
    out->iov[0].iov_len = h->len;
    out->iovcnt = 1;
    out->len = h->len;
    out->slot = UINT32_MAX;
    cp->ctr.single++;
    cp->ctr.frames_done++;
    return CHUNK_COMPLETE;
  }
  struct chunk_slot *s = owner_find(cp, o, h->chunk_id, now, &idx);
  if (s && s->total != h->total) {
    cp->ctr.bad_total++;
    slot_free(cp, idx);
    return -EPROTO;
  }
  if (s && bit_test(s->have, h->index)) {
    cp->ctr.duplicates++;
    return -EALREADY;
  }
  if (!s && !(s = owner_new(cp, o, h, now, &idx)))
    return -ENOBUFS;

  bool last = h->index == h->total - 1;
  if (last) {
    s->last_len = (uint16_t)h->len;
  } else if (!s->stride) {
    s->stride = (uint16_t)h->len;
  } else if (s->stride != h->len) {
    cp->ctr.bad_stride++;
    slot_free(cp, idx);
    return -EPROTO;
  }
  int rc = geometry_ok(cp, s);
  if (rc < 0) {
    if (rc == -EMSGSIZE)
      cp->ctr.too_big++;
    else
      cp->ctr.bad_stride++;
    slot_free(cp, idx);
    return rc;
  }
  if (last)
    memcpy(s->last, h->data, h->len);
  else
    memcpy(s->buf + (size_t)h->index * s->stride, h->data, h->len);
  bit_set(s->have, h->index);
  if (++s->nrecv < s->total)
    return CHUNK_PENDING;

  out->iov[0].iov_base = s->buf;
  out->iov[0].iov_len = (size_t)(s->total - 1) * s->stride;
  out->iov[1].iov_base = s->last;
  out->iov[1].iov_len = s->last_len;
  out->iovcnt = 2;
  out->len = out->iov[0].iov_len + out->iov[1].iov_len;
  out->slot = idx;
  cp->ctr.frames_done++;
  return CHUNK_COMPLETE;
}

void chunk_reasm_release(struct chunk_pool *cp, struct chunk_frame *f)
{
  if (f->slot != UINT32_MAX && f->slot < cp->p.slots)
    slot_free(cp, f->slot);
  f->slot = UINT32_MAX;
}

uint32_t chunk_reasm_expire(struct chunk_pool *cp, uint64_t now)
{
  uint32_t n = 0;
  for (uint32_t i = 0; i < pool_hwm(cp); i++) {
    struct chunk_slot *s = &cp->slots[i];
    if (s->owner && now - s->started_ns >= cp->p.max_age_ns) {
      slot_free(cp, i);
      n++;
    }
  }
  cp->ctr.expired += n;
  return n;
}

int chunk_split_plan(size_t len, size_t max_dgram, struct chunk_plan *plan)
{
  memset(plan, 0, sizeof(*plan));
  if (len == 0)
    return -EINVAL;
  if (1 + len <= max_dgram) {
    plan->total = 1;
    plan->size = (uint32_t)len;
    return 0;
  }
  if (max_dgram <= CHUNK_HDR)
    return -EMSGSIZE;
  size_t size = max_dgram - CHUNK_HDR;
  if (size > BAVY_CHUNK_DATA_MAX)
    size = BAVY_CHUNK_DATA_MAX;
  size_t total = (len + size - 1) / size;
  if (total > 255)
    return -EMSGSIZE;
  plan->chunked = true;
  plan->size = (uint32_t)size;
  plan->total = (uint32_t)total;
  return 0;
}

int chunk_split_write(uint8_t *buf, size_t cap, const struct chunk_plan *plan, uint16_t chunk_id,
                      uint32_t k, const struct iovec *iov, int iovcnt)
{
  if (!plan->chunked || k >= plan->total || cap < CHUNK_HDR + plan->size)
    return -ENOSPC;
  buf[0] = BAVY_CHUNK;
  if (bavy_chunk_header_write(buf + 1, cap - 1, chunk_id, (uint8_t)k, (uint8_t)plan->total) != 4)
    return -ENOSPC;
  size_t n = iov_gather(buf + CHUNK_HDR, (size_t)k * plan->size, plan->size, iov, iovcnt);
  if (n == 0)
    return -ENOSPC;
  return (int)(CHUNK_HDR + n);
}

/* ---- counters ---- */

/* The reassembly counters for /metrics and the exit log, one row per
 * field (test_counter checks that every field has exactly one). */
#define C(fam, help, labels, key, field)                                                           \
  COUNTER_DEF(struct chunk_counters, fam, help, labels, "chunk counters", key, field)
#define DROP(reason, key, field)                                                                   \
  C("wtrelay_chunks_dropped_total", NULL, "reason=\"" reason "\"", key, field)
#define GONE(reason, key, field)                                                                   \
  C("wtrelay_chunk_reassemblies_abandoned_total", NULL, "reason=\"" reason "\"", key, field)
static const struct counter_def chunk_counter_defs[] = {
    C("wtrelay_chunks_received_total", "chunks of chunked frames received", NULL, "chunks_in",
      chunks_in),
    C("wtrelay_chunk_frames_completed_total", "frames completed from chunks (single ones too)",
      NULL, "frames_done", frames_done),
    C("wtrelay_chunk_single_frames_total", "frames sent in one chunk (a part of the completed)",
      NULL, "single", single),
    C("wtrelay_chunks_dropped_total",
      "chunks dropped: seen before, a total or stride disagreeing with the frame's first chunks, "
      "a frame over the bound, no free reassembly slot",
      "reason=\"duplicate\"", "duplicates", duplicates),
    DROP("bad_total", "bad_total", bad_total),
    DROP("bad_stride", "bad_stride", bad_stride),
    DROP("too_big", "too_big", too_big),
    DROP("pool_empty", "pool_empty", pool_empty),
    C("wtrelay_chunk_reassemblies_abandoned_total",
      "reassemblies given up: timed out, or evicted by a newer one of the same sender",
      "reason=\"expired\"", "expired", expired),
    GONE("evicted", "evicted", evicted),
};
#undef GONE
#undef DROP
#undef C

const struct counter_table chunk_counter_table =
    COUNTER_TABLE(chunk_counter_defs, struct chunk_counters);
