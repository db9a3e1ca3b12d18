/*
 * memcount: a counting allocator for the libraries that take allocator
 * hooks (ngtcp2_mem, nghttp3_mem). Their four functions have the same
 * shape in both libraries (size, user_data), so one set serves both:
 * user_data is the struct memcount the bytes are counted in.
 *
 * Owns: the counts of one owner on one worker (a worker's QUIC endpoint
 * has one for ngtcp2, its HTTP/3 endpoint one for nghttp3). Every block
 * carries its requested size in a 16-byte header, so free knows what to
 * take off; the header keeps malloc's alignment.
 * Never: shared between threads. A struct memcount is written only by the
 * worker whose connections allocate through it; the metrics snapshot reads
 * it on that worker.
 */
#ifndef WTRELAY_MEMCOUNT_H
#define WTRELAY_MEMCOUNT_H

#include <stddef.h>
#include <stdint.h>

struct memcount {
  uint64_t bytes;  /* requested bytes live now */
  uint64_t blocks; /* blocks live now */
  uint64_t peak;   /* highest bytes so far */
  /* Optional page slots (memcount_slots_init): a block larger than a page
   * gets a slot of its own, page-aligned, MEMCOUNT_SLOT bytes, so only the
   * pages the library writes become resident (ngtcp2 allocates pools of
   * 64 objects or 8 list blocks at once and an idle connection uses one
   * or two), and a freed slot gives its pages back to the kernel
   * (MADV_DONTNEED), which also makes calloc free of a memset. A block
   * larger than a slot, or any when every slot is taken, goes to malloc. */
  uint8_t *slots;      /* the reserved region, nslots * MEMCOUNT_SLOT bytes */
  uint32_t nslots;     /* bound: slots in the region */
  uint32_t slots_next; /* slots below it have been handed out once */
  uint32_t nfree;      /* slots on the free stack */
  uint32_t *free_slots;
  uint64_t slot_bytes; /* of bytes: requested bytes living in slots */
};

#define MEMCOUNT_SLOT (16u * 1024)

/* Reserves nslots page slots for mc (address space only, MAP_NORESERVE:
 * memory is used as written). 0 or -ENOMEM. */
int memcount_slots_init(struct memcount *mc, uint32_t nslots);
/* Unmaps the slots; every block from them must be freed already. */
void memcount_slots_fini(struct memcount *mc);

/* The initializer of an ngtcp2_mem or nghttp3_mem counting in *mc:
 *   ep->mem = (ngtcp2_mem)MEMCOUNT_HOOKS(&ep->mc); */
#define MEMCOUNT_HOOKS(mc)                                                                         \
  {                                                                                                \
    .user_data = (mc), .malloc = memcount_malloc, .free = memcount_free,                           \
    .calloc = memcount_calloc, .realloc = memcount_realloc                                         \
  }

void *memcount_malloc(size_t size, void *user);
void memcount_free(void *ptr, void *user);
void *memcount_calloc(size_t nmemb, size_t size, void *user);
void *memcount_realloc(void *ptr, size_t size, void *user);

#endif
