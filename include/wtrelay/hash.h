/*
 * hash: the one 64-bit mixing step every fixed hash table of the worker
 * uses on its key (switch MAC table, UDP and TCP NAT tables): a xor-shift
 * multiply finaliser, so keys that differ in a few bits spread evenly.
 * Header-only.
 */
#ifndef WTRELAY_HASH_H
#define WTRELAY_HASH_H

#include <stdint.h>

static inline uint64_t hash_mix64(uint64_t k)
{
  k ^= k >> 33;
  k *= UINT64_C(0xff51afd7ed558ccd);
  k ^= k >> 33;
  return k;
}

#endif
