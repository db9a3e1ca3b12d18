/*
 * flowtab: the NAT's one flow table (theory of operation in flowtab.h).
 *
 * Layout: e[] holds every slot, UDP first, then ICMP, then TCP
 * (part[p].base); a slot is FREE (on its part's free list, threaded
 * through `next`), HELD (taken, in no index: flowtab_unlink) or LINKED (in
 * the forward chain of its key's bucket, in the reverse chain of its
 * reverse key if it has one, and in its part's LRU list). All links are
 * global index + 1, 0 = none. Every operation is O(1) plus the length of
 * one chain; with the keyed hash and half-full buckets a chain is short
 * whatever keys the guests choose (test_flowtab checks the bound).
 */
#include "flowtab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/rng.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                   \
  do {                                                                                             \
    v0 += v1;                                                                                      \
    v1 = ROTL(v1, 13);                                                                             \
    v1 ^= v0;                                                                                      \
    v0 = ROTL(v0, 32);                                                                             \
    v2 += v3;                                                                                      \
    v3 = ROTL(v3, 16);                                                                             \
    v3 ^= v2;                                                                                      \
    v0 += v3;                                                                                      \
    v3 = ROTL(v3, 21);                                                                             \
    v3 ^= v0;                                                                                      \
    v2 += v1;                                                                                      \
    v1 = ROTL(v1, 17);                                                                             \
    v1 ^= v2;                                                                                      \
    v2 = ROTL(v2, 32);                                                                             \
  } while (0)

/* SipHash over nm whole 64-bit words m and the last block b (the length
 * byte on top, the trailing bytes below), c compression and d finalisation
 * rounds (Aumasson and Bernstein, 2012). */
static inline uint64_t sip(uint64_t k0, uint64_t k1, const uint64_t *m, size_t nm, uint64_t b,
                           int c, int d)
{
  uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
  uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
  uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
  uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);
  for (size_t i = 0; i <= nm; i++) {
    uint64_t w = i < nm ? m[i] : b;
    v3 ^= w;
    for (int r = 0; r < c; r++)
      SIPROUND;
    v0 ^= w;
  }
  v2 ^= 0xff;
  for (int r = 0; r < d; r++)
    SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t le64(const uint8_t *p, size_t n)
{
  uint64_t w = 0;
  for (size_t i = 0; i < n; i++)
    w |= (uint64_t)p[i] << (8 * i);
  return w;
}

uint64_t flowtab_siphash(const uint8_t key[16], const void *msg, size_t len, int c, int d)
{
  const uint8_t *p = msg;
  uint64_t m[8];
  size_t nm = len / 8;
  if (nm > 8)
    return 0; /* the table hashes 41 bytes; the test vectors stay below 64 */
  for (size_t i = 0; i < nm; i++)
    m[i] = le64(p + 8 * i, 8);
  uint64_t b = ((uint64_t)len << 56) | le64(p + 8 * nm, len % 8);
  return sip(le64(key, 8), le64(key + 8, 8), m, nm, b, c, d);
}

/* Two address words (8 bytes of x from off) as the machine reads them:
 * the hash is never stored nor compared across machines. */
static inline uint64_t word(const union inany *x, int off)
{
  uint64_t w;
  memcpy(&w, x->a + off, 8);
  return w;
}

/* The whole key, 41 bytes: room, vport, rport (little-endian), vip, rip
 * and proto: five words and the last block. */
uint64_t flowtab_hash(const struct flowtab *t, const struct ft_key *k)
{
  uint64_t m[5] = {(uint64_t)k->room | ((uint64_t)k->vport << 32) | ((uint64_t)k->rport << 48),
                   word(&k->vip, 0), word(&k->vip, 8), word(&k->rip, 0), word(&k->rip, 8)};
  return sip(t->k0, t->k1, m, 5, ((uint64_t)41 << 56) | k->proto, 1, 3);
}

/* The reverse key: 5 bytes, rkey and the protocol. */
static uint64_t rhash(const struct flowtab *t, enum ft_proto p, uint32_t rkey)
{
  return sip(t->k0, t->k1, NULL, 0, ((uint64_t)5 << 56) | ((uint64_t)p << 32) | rkey, 1, 3);
}

/* The VM index: (protocol, room, VM address), 21 bytes. */
static uint64_t vhash(const struct flowtab *t, uint8_t p, uint32_t room, const union inany *vip)
{
  uint64_t m[3] = {(uint64_t)room | ((uint64_t)p << 32), word(vip, 0), word(vip, 8)};
  return sip(t->k0, t->k1, m, 3, (uint64_t)21 << 56, 1, 3);
}

static bool key_eq(const struct ft_key *a, const struct ft_key *b)
{
  return a->room == b->room && a->vport == b->vport && a->rport == b->rport &&
         a->proto == b->proto && inany_eq(&a->vip, &b->vip) && inany_eq(&a->rip, &b->rip);
}

int flowtab_init(struct flowtab *t, const uint32_t cap[FT_PROTOS], uint32_t by_vm)
{
  memset(t, 0, sizeof(*t));
  t->by_vm = by_vm;
  uint64_t total = 0;
  for (int p = 0; p < FT_PROTOS; p++) {
    t->part[p].base = (uint32_t)total;
    t->part[p].cap = cap[p];
    total += cap[p];
  }
  if (total > (1u << 30))
    return -EINVAL;
  uint32_t nb = 16;
  while (nb < 2 * total)
    nb <<= 1;
  t->cap = (uint32_t)total;
  t->mask = nb - 1;
  t->e = calloc(total ? total : 1, sizeof(*t->e));
  t->fwd = calloc(nb, sizeof(*t->fwd));
  t->rev = calloc(nb, sizeof(*t->rev));
  t->vm = by_vm ? calloc(nb, sizeof(*t->vm)) : NULL;
  if (!t->e || !t->fwd || !t->rev || (by_vm && !t->vm)) {
    flowtab_fini(t);
    return -ENOMEM;
  }
  /* free lists in slot order: the first flows take the first slots; freed
   * slots queue at the tail (FIFO) */
  for (int p = 0; p < FT_PROTOS; p++) {
    struct ft_part *pt = &t->part[p];
    for (uint32_t i = 0; i < pt->cap; i++)
      t->e[pt->base + i].next = i + 1 < pt->cap ? pt->base + i + 2 : 0;
    pt->free_head = pt->cap ? pt->base + 1 : 0;
    pt->free_tail = pt->cap ? pt->base + pt->cap : 0;
  }
  uint64_t secret[2];
  rng_fill(secret, sizeof(secret));
  t->k0 = secret[0];
  t->k1 = secret[1];
  return 0;
}

void flowtab_fini(struct flowtab *t)
{
  free(t->e);
  free(t->fwd);
  free(t->rev);
  free(t->vm);
  memset(t, 0, sizeof(*t));
}

/* The live entry with key k in bucket b, as a global index, or FT_NONE. */
static uint32_t find(const struct flowtab *t, const struct ft_key *k, uint32_t b)
{
  for (uint32_t i = t->fwd[b]; i; i = t->e[i - 1].next)
    if (key_eq(&t->e[i - 1].key, k))
      return i - 1;
  return FT_NONE;
}

uint32_t flowtab_lookup(const struct flowtab *t, const struct ft_key *k)
{
  if (k->proto >= FT_PROTOS || !t->part[k->proto].cap)
    return FT_NONE;
  uint32_t g = find(t, k, (uint32_t)(flowtab_hash(t, k) & t->mask));
  return g == FT_NONE ? FT_NONE : g - t->part[k->proto].base;
}

enum chain { CH_FWD, CH_REV, CH_VM };

static uint32_t *link_of(struct ft_ent *e, enum chain c)
{
  return c == CH_FWD ? &e->next : c == CH_REV ? &e->rnext : &e->vnext;
}

/* Takes global index g out of the chain starting at *head. */
static void chain_del(struct flowtab *t, uint32_t *head, uint32_t g, enum chain c)
{
  uint32_t idx = g + 1;
  uint32_t *pp = head;
  while (*pp && *pp != idx)
    pp = link_of(&t->e[*pp - 1], c);
  if (*pp == idx)
    *pp = *link_of(&t->e[g], c);
}

static void lru_del(struct flowtab *t, struct ft_part *pt, uint32_t g)
{
  struct ft_ent *e = &t->e[g];
  if (e->older)
    t->e[e->older - 1].newer = e->newer;
  else
    pt->oldest = e->newer;
  if (e->newer)
    t->e[e->newer - 1].older = e->older;
  else
    pt->newest = e->older;
  e->older = e->newer = 0;
}

static void lru_add(struct flowtab *t, struct ft_part *pt, uint32_t g)
{
  struct ft_ent *e = &t->e[g];
  e->older = pt->newest;
  e->newer = 0;
  if (pt->newest)
    t->e[pt->newest - 1].newer = g + 1;
  else
    pt->oldest = g + 1;
  pt->newest = g + 1;
}

int flowtab_insert(struct flowtab *t, const struct ft_key *k, uint64_t now, uint32_t *slot)
{
  if (k->proto >= FT_PROTOS)
    return -EINVAL;
  struct ft_part *pt = &t->part[k->proto];
  if (!pt->free_head) {
    pt->full++;
    return -ENOSPC;
  }
  uint32_t b = (uint32_t)(flowtab_hash(t, k) & t->mask);
  if (find(t, k, b) != FT_NONE)
    return -EEXIST;
  uint32_t g = pt->free_head - 1;
  struct ft_ent *e = &t->e[g];
  pt->free_head = e->next;
  if (!pt->free_head)
    pt->free_tail = 0;
  memset(e, 0, sizeof(*e));
  e->key = *k;
  e->state = FT_LINKED;
  e->last_ns = now;
  uint32_t *head = &t->fwd[b];
  e->next = *head;
  *head = g + 1;
  if (t->by_vm & (1u << k->proto)) {
    uint32_t *vh = &t->vm[vhash(t, k->proto, k->room, &k->vip) & t->mask];
    e->vnext = *vh;
    *vh = g + 1;
  }
  lru_add(t, pt, g);
  pt->live++;
  pt->taken++;
  *slot = g - pt->base;
  return 0;
}

void flowtab_unlink(struct flowtab *t, enum ft_proto p, uint32_t slot)
{
  struct ft_part *pt = &t->part[p];
  if (slot >= pt->cap)
    return;
  uint32_t g = pt->base + slot;
  struct ft_ent *e = &t->e[g];
  if (e->state != FT_LINKED)
    return;
  chain_del(t, &t->fwd[flowtab_hash(t, &e->key) & t->mask], g, CH_FWD);
  if (e->has_rkey)
    chain_del(t, &t->rev[rhash(t, p, e->rkey) & t->mask], g, CH_REV);
  if (t->by_vm & (1u << p))
    chain_del(t, &t->vm[vhash(t, p, e->key.room, &e->key.vip) & t->mask], g, CH_VM);
  e->has_rkey = false;
  e->next = e->rnext = e->vnext = 0;
  lru_del(t, pt, g);
  e->state = FT_HELD;
  pt->live--;
}

void flowtab_free(struct flowtab *t, enum ft_proto p, uint32_t slot)
{
  struct ft_part *pt = &t->part[p];
  if (slot >= pt->cap)
    return;
  uint32_t g = pt->base + slot;
  struct ft_ent *e = &t->e[g];
  if (e->state == FT_FREE)
    return;
  flowtab_unlink(t, p, slot);
  /* at the tail: the slot freed longest ago is taken first, so a late
   * completion or reply that still names a slot rarely finds it reused */
  e->state = FT_FREE;
  e->next = 0;
  if (pt->free_tail)
    t->e[pt->free_tail - 1].next = g + 1;
  else
    pt->free_head = g + 1;
  pt->free_tail = g + 1;
  pt->taken--;
}

void flowtab_touch(struct flowtab *t, enum ft_proto p, uint32_t slot, uint64_t now)
{
  struct ft_part *pt = &t->part[p];
  if (slot >= pt->cap)
    return;
  uint32_t g = pt->base + slot;
  struct ft_ent *e = &t->e[g];
  if (e->state != FT_LINKED)
    return;
  /* the list stays ordered by last use: a flow used again in the same
   * loop turn (same now) is in order where it is */
  if (e->last_ns == now || pt->newest == g + 1) {
    e->last_ns = now;
    return;
  }
  e->last_ns = now;
  lru_del(t, pt, g);
  lru_add(t, pt, g);
}

uint32_t flowtab_oldest(const struct flowtab *t, enum ft_proto p)
{
  const struct ft_part *pt = &t->part[p];
  return pt->oldest ? pt->oldest - 1 - pt->base : FT_NONE;
}

uint64_t flowtab_last(const struct flowtab *t, enum ft_proto p, uint32_t slot)
{
  return slot < t->part[p].cap ? t->e[t->part[p].base + slot].last_ns : 0;
}

void flowtab_set_rkey(struct flowtab *t, enum ft_proto p, uint32_t slot, uint32_t rkey)
{
  struct ft_part *pt = &t->part[p];
  if (slot >= pt->cap)
    return;
  uint32_t g = pt->base + slot;
  struct ft_ent *e = &t->e[g];
  if (e->state != FT_LINKED)
    return;
  if (e->has_rkey)
    chain_del(t, &t->rev[rhash(t, p, e->rkey) & t->mask], g, CH_REV);
  e->rkey = rkey;
  e->has_rkey = true;
  /* at the tail of its chain: the first flow linked under a shared key is
   * the one found */
  uint32_t *pp = &t->rev[rhash(t, p, rkey) & t->mask];
  while (*pp)
    pp = &t->e[*pp - 1].rnext;
  e->rnext = 0;
  *pp = g + 1;
}

uint32_t flowtab_lookup_rkey(const struct flowtab *t, enum ft_proto p, uint32_t rkey)
{
  if (p >= FT_PROTOS || !t->part[p].cap)
    return FT_NONE;
  const struct ft_part *pt = &t->part[p];
  for (uint32_t i = t->rev[rhash(t, p, rkey) & t->mask]; i; i = t->e[i - 1].rnext) {
    const struct ft_ent *e = &t->e[i - 1];
    if (e->rkey == rkey && i - 1 >= pt->base && i - 1 < pt->base + pt->cap)
      return i - 1 - pt->base;
  }
  return FT_NONE;
}

uint32_t flowtab_vm_count(const struct flowtab *t, enum ft_proto p, uint32_t room,
                          const union inany *vip, uint32_t limit)
{
  if (p >= FT_PROTOS || !(t->by_vm & (1u << p)))
    return 0;
  uint32_t n = 0;
  for (uint32_t i = t->vm[vhash(t, p, room, vip) & t->mask]; i && n < limit;
       i = t->e[i - 1].vnext) {
    const struct ft_key *k = &t->e[i - 1].key;
    n += k->proto == p && k->room == room && inany_eq(&k->vip, vip);
  }
  return n;
}

uint32_t flowtab_longest_chain(const struct flowtab *t)
{
  uint32_t best = 0;
  for (uint32_t b = 0; t->fwd && b <= t->mask; b++) {
    uint32_t n = 0;
    for (uint32_t i = t->fwd[b]; i; i = t->e[i - 1].next)
      n++;
    if (n > best)
      best = n;
  }
  return best;
}
