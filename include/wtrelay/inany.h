/*
 * inany: one 16-byte address of either family, for the NAT's flow keys,
 * its flows' endpoints and its per-VM accounts. An IPv6 address is kept as
 * its 16 network-order bytes; an IPv4 address as the IPv4-mapped IPv6
 * address ::ffff:a.b.c.d (RFC 4291 2.5.5.2), so the two families never
 * compare equal and code that only compares or hashes addresses needs no
 * family branch. Guests never reach the NAT from a v4-mapped IPv6 source
 * or destination (the IPv6 egress policy refuses ::ffff:0:0/96), so the
 * mapped range means IPv4 and nothing else here. Header-only.
 */
#ifndef WTRELAY_INANY_H
#define WTRELAY_INANY_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

union inany {
  uint8_t a[16];
  uint32_t w[4]; /* for hashing and aligned copies; not a numeric view */
};

static inline bool inany_is4(const union inany *x)
{
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return memcmp(x->a, mapped, 12) == 0;
}

/* From an IPv4 address in host order. */
static inline union inany inany_from4(uint32_t ip)
{
  union inany x = {.a = {[10] = 0xff,
                         [11] = 0xff,
                         [12] = (uint8_t)(ip >> 24),
                         [13] = (uint8_t)(ip >> 16),
                         [14] = (uint8_t)(ip >> 8),
                         [15] = (uint8_t)ip}};
  return x;
}

/* The IPv4 address (host order) of a mapped x; meaningless otherwise. */
static inline uint32_t inany_v4(const union inany *x)
{
  return (uint32_t)x->a[12] << 24 | (uint32_t)x->a[13] << 16 | (uint32_t)x->a[14] << 8 | x->a[15];
}

static inline union inany inany_from6(const uint8_t a[16])
{
  union inany x;
  memcpy(x.a, a, 16);
  return x;
}

static inline bool inany_eq(const union inany *x, const union inany *y)
{
  return memcmp(x->a, y->a, 16) == 0;
}

#endif
