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
};

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
