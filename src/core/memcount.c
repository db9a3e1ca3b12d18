/*
 * memcount: see include/wtrelay/memcount.h.
 */
#include "wtrelay/memcount.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The header before every block: its requested size, padded to malloc's
 * alignment so the caller's pointer stays aligned for any type. */
#define MC_HDR 16
_Static_assert(MC_HDR >= sizeof(size_t) && MC_HDR % _Alignof(max_align_t) == 0,
               "header keeps the alignment of malloc");

static bool in_slots(const struct memcount *mc, const unsigned char *p)
{
  return mc->slots && p >= mc->slots && p < mc->slots + (size_t)mc->nslots * MEMCOUNT_SLOT;
}

static void *mc_take(struct memcount *mc, unsigned char *p, size_t size)
{
  memcpy(p, &size, sizeof(size));
  if (in_slots(mc, p))
    mc->slot_bytes += size;
  mc->bytes += size;
  mc->blocks++;
  if (mc->bytes > mc->peak)
    mc->peak = mc->bytes;
  return p + MC_HDR;
}

static unsigned char *mc_give(struct memcount *mc, void *ptr)
{
  unsigned char *p = (unsigned char *)ptr - MC_HDR;
  size_t size;
  memcpy(&size, p, sizeof(size));
  mc->bytes -= size;
  mc->blocks--;
  if (in_slots(mc, p))
    mc->slot_bytes -= size;
  return p;
}

int memcount_slots_init(struct memcount *mc, uint32_t nslots)
{
  size_t len = (size_t)nslots * MEMCOUNT_SLOT;
  void *r =
      mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED)
    return -ENOMEM;
  /* a huge page would make a whole 2 MiB resident for one slot's page */
  madvise(r, len, MADV_NOHUGEPAGE);
  mc->free_slots = calloc(nslots ? nslots : 1, sizeof(*mc->free_slots));
  if (!mc->free_slots) {
    munmap(r, len);
    return -ENOMEM;
  }
  mc->slots = r;
  mc->nslots = nslots;
  mc->slots_next = 0;
  mc->nfree = 0;
  return 0;
}

void memcount_slots_fini(struct memcount *mc)
{
  if (mc->slots)
    munmap(mc->slots, (size_t)mc->nslots * MEMCOUNT_SLOT);
  free(mc->free_slots);
  mc->slots = NULL;
  mc->free_slots = NULL;
  mc->nslots = mc->slots_next = mc->nfree = 0;
}

/* Whether a block of `total` bytes (header included) gets a slot: more
 * than a page (smaller ones share pages in malloc's heap), at most a slot,
 * and one is left. */
static bool slot_get_would(const struct memcount *mc, size_t total)
{
  return mc->slots && total > 4096 && total <= MEMCOUNT_SLOT &&
         (mc->nfree || mc->slots_next < mc->nslots);
}

/* A slot for such a block, or NULL. Its pages are zero: never written, or
 * given back when it was last freed. */
static unsigned char *slot_get(struct memcount *mc, size_t total)
{
  if (!slot_get_would(mc, total))
    return NULL;
  uint32_t i = mc->nfree ? mc->free_slots[--mc->nfree] : mc->slots_next++;
  return mc->slots + (size_t)i * MEMCOUNT_SLOT;
}

static void block_free(struct memcount *mc, unsigned char *p)
{
  if (!in_slots(mc, p)) {
    free(p);
    return;
  }
  madvise(p, MEMCOUNT_SLOT, MADV_DONTNEED);
  mc->free_slots[mc->nfree++] = (uint32_t)((size_t)(p - mc->slots) / MEMCOUNT_SLOT);
}

void *memcount_malloc(size_t size, void *user)
{
  if (size > SIZE_MAX - MC_HDR)
    return NULL;
  unsigned char *p = slot_get(user, size + MC_HDR);
  if (!p)
    p = malloc(size + MC_HDR);
  return p ? mc_take(user, p, size) : NULL;
}

void memcount_free(void *ptr, void *user)
{
  if (ptr)
    block_free(user, mc_give(user, ptr));
}

void *memcount_calloc(size_t nmemb, size_t size, void *user)
{
  if (size && nmemb > (SIZE_MAX - MC_HDR) / size)
    return NULL;
  unsigned char *p = slot_get(user, nmemb * size + MC_HDR); /* zero already */
  if (!p)
    p = calloc(1, nmemb * size + MC_HDR);
  return p ? mc_take(user, p, nmemb * size) : NULL;
}

void *memcount_realloc(void *ptr, size_t size, void *user)
{
  if (!ptr)
    return memcount_malloc(size, user);
  if (size > SIZE_MAX - MC_HDR)
    return NULL;
  struct memcount *mc = user;
  unsigned char *old = (unsigned char *)ptr - MC_HDR;
  size_t was;
  memcpy(&was, old, sizeof(was));
  if (in_slots(mc, old) || slot_get_would(mc, size + MC_HDR)) {
    /* in or into a slot: a new block, the bytes copied */
    unsigned char *n = memcount_malloc(size, mc);
    if (!n)
      return NULL;
    memcpy(n, ptr, was < size ? was : size);
    memcount_free(ptr, mc);
    return n;
  }
  unsigned char *p = realloc(old, size + MC_HDR);
  if (!p)
    return NULL; /* the old block stays, still counted */
  mc->bytes -= was;
  mc->blocks--;
  return mc_take(mc, p, size);
}
