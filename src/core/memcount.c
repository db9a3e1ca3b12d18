/*
 * memcount: see include/wtrelay/memcount.h.
 */
#include "wtrelay/memcount.h"

#include <stdlib.h>
#include <string.h>

/* The header before every block: its requested size, padded to malloc's
 * alignment so the caller's pointer stays aligned for any type. */
#define MC_HDR 16
_Static_assert(MC_HDR >= sizeof(size_t) && MC_HDR % _Alignof(max_align_t) == 0,
               "header keeps the alignment of malloc");

static void *mc_take(struct memcount *mc, unsigned char *p, size_t size)
{
  memcpy(p, &size, sizeof(size));
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
  return p;
}

void *memcount_malloc(size_t size, void *user)
{
  if (size > SIZE_MAX - MC_HDR)
    return NULL;
  unsigned char *p = malloc(size + MC_HDR);
  return p ? mc_take(user, p, size) : NULL;
}

void memcount_free(void *ptr, void *user)
{
  if (ptr)
    free(mc_give(user, ptr));
}

void *memcount_calloc(size_t nmemb, size_t size, void *user)
{
  if (size && nmemb > (SIZE_MAX - MC_HDR) / size)
    return NULL;
  unsigned char *p = calloc(1, nmemb * size + MC_HDR);
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
  unsigned char *p = realloc(old, size + MC_HDR);
  if (!p)
    return NULL; /* the old block stays, still counted */
  mc->bytes -= was;
  mc->blocks--;
  return mc_take(mc, p, size);
}
