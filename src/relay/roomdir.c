/*
 * roomdir: the process's room directory. See include/wtrelay/roomdir.h.
 */
#include "wtrelay/roomdir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/hash.h"
#include "wtrelay/rng.h"

int roomdir_init(struct roomdir *d, uint32_t max_rooms)
{
  memset(d, 0, sizeof(*d));
  d->rooms = calloc(max_rooms ? max_rooms : 1, sizeof(*d->rooms));
  if (!d->rooms)
    return -ENOMEM;
  d->max_rooms = max_rooms;
  pthread_mutex_init(&d->lock, NULL);
  return 0;
}

void roomdir_fini(struct roomdir *d)
{
  if (!d->rooms)
    return;
  for (uint32_t i = 0; i < d->max_rooms; i++)
    if (d->rooms[i].used)
      ippool_fini(&d->rooms[i].pool);
  free(d->rooms);
  free(d->clients);
  free(d->sess);
  free(d->claims6);
  d->rooms = NULL;
  d->clients = NULL;
  d->sess = NULL;
  d->claims6 = NULL;
  pthread_mutex_destroy(&d->lock);
}

void roomdir_lock(struct roomdir *d)
{
  pthread_mutex_lock(&d->lock);
}

void roomdir_unlock(struct roomdir *d)
{
  pthread_mutex_unlock(&d->lock);
}

int roomdir_join(struct roomdir *d, const char *name, uint32_t first, uint32_t last,
                 uint64_t lease_ns, uint32_t client_max, uint64_t now, uint32_t *id, bool *made)
{
  uint32_t free_slot = ROOMDIR_NONE;
  *made = false;
  for (uint32_t i = 0; i < d->max_rooms; i++) {
    struct roomdir_room *r = &d->rooms[i];
    if (r->used && strcmp(r->name, name) == 0) {
      r->copies++;
      *id = i;
      return 0;
    }
    if (!r->used && free_slot == ROOMDIR_NONE)
      free_slot = i;
  }
  if (free_slot == ROOMDIR_NONE)
    return -ENOSPC;
  struct roomdir_room *r = &d->rooms[free_slot];
  uint32_t gen = r->gen + 1;
  memset(r, 0, sizeof(*r));
  r->gen = gen;
  int rc = ippool_init(&r->pool, first, last);
  if (rc < 0)
    return rc;
  r->pool.lease_ns = lease_ns;
  r->pool.client_max = client_max;
  snprintf(r->name, sizeof(r->name), "%s", name);
  if (d->leases)
    lease_seed(d->leases, name, &r->pool, now);
  r->used = true;
  r->copies = 1;
  r->creator = 0;
  d->nrooms++;
  *id = free_slot;
  *made = true;
  return 0;
}

void roomdir_leave(struct roomdir *d, uint32_t id, uint64_t now)
{
  if (id >= d->max_rooms || !d->rooms[id].used)
    return;
  struct roomdir_room *r = &d->rooms[id];
  if (--r->copies > 0)
    return;
  if (d->leases)
    lease_room_closed(d->leases, r->name, now); /* DHCP leases without a session */
  ippool_fini(&r->pool);
  r->used = false;
  d->nrooms--;
}

struct ippool *roomdir_pool(struct roomdir *d, uint32_t id)
{
  return &d->rooms[id].pool;
}

const char *roomdir_name(const struct roomdir *d, uint32_t id)
{
  return d->rooms[id].name;
}

uint32_t roomdir_ring_id(const struct roomdir *d, uint32_t id)
{
  return id | (d->rooms[id].gen & 0xfffu) << ROOMDIR_SLOT_BITS;
}

void roomdir_copy_set(struct roomdir *d, uint32_t id, uint32_t w, bool has)
{
  if (id >= d->max_rooms || w >= ROOMDIR_MAX_WORKERS)
    return;
  _Atomic uint64_t *word = &d->rooms[id].copy_set[w / 64];
  uint64_t bit = UINT64_C(1) << (w % 64);
  if (has)
    atomic_fetch_or_explicit(word, bit, memory_order_relaxed);
  else
    atomic_fetch_and_explicit(word, ~bit, memory_order_relaxed);
}

bool roomdir_copy_has(const struct roomdir *d, uint32_t id, uint32_t w)
{
  if (id >= d->max_rooms || w >= ROOMDIR_MAX_WORKERS)
    return true;
  uint64_t v = atomic_load_explicit(&d->rooms[id].copy_set[w / 64], memory_order_relaxed);
  return (v >> (w % 64)) & 1;
}

/* ---- open-addressed tables (linear probing, at most half full) ---- */

/* Slots for n entries: a power of two >= 2 n (>= 2). */
static uint32_t half_full_cap(uint32_t n)
{
  uint32_t cap = 2;
  while (cap < 2 * (uint64_t)n && cap < (1u << 31))
    cap <<= 1;
  return cap;
}

/* Every entry of these tables starts with a 64-bit word that is 0 in a
 * free slot. */
static bool oa_used(const void *e)
{
  uint64_t w;
  memcpy(&w, e, sizeof(w));
  return w != 0;
}

/* Frees slot i of a table of esz-byte entries and moves back the entries
 * of its probe run that belong at or before it (backward-shift deletion:
 * no tombstones); home gives an entry's first slot. */
static void oa_remove(const struct roomdir *d, void *tab, size_t esz, uint32_t mask, uint32_t i,
                      uint32_t (*home)(const struct roomdir *, const void *))
{
  uint8_t *t = tab;
  uint32_t j = i;
  for (;;) {
    memset(t + (size_t)i * esz, 0, esz);
    for (;;) {
      j = (j + 1) & mask;
      if (!oa_used(t + (size_t)j * esz))
        return;
      uint32_t h = home(d, t + (size_t)j * esz) & mask;
      /* j's entry may move to i unless its home lies cyclically in (i, j] */
      if (i <= j ? (h <= i || h > j) : (h <= i && h > j))
        break;
    }
    memcpy(t + (size_t)i * esz, t + (size_t)j * esz, esz);
    i = j;
  }
}

/* ---- per-client shares ---- */

int roomdir_set_shares(struct roomdir *d, const struct roomdir_shares *sh)
{
  if (d->clients)
    return 0; /* set by the first relay */
  uint32_t cap = half_full_cap(sh->max_sessions);
  uint32_t ccap = half_full_cap(sh->max_claims6);
  d->clients = calloc(sh->max_clients ? sh->max_clients : 1, sizeof(*d->clients));
  d->sess = calloc(cap, sizeof(*d->sess));
  d->claims6 = calloc(ccap, sizeof(*d->claims6));
  if (!d->clients || !d->sess || !d->claims6) {
    free(d->clients);
    free(d->sess);
    free(d->claims6);
    d->clients = NULL;
    d->sess = NULL;
    d->claims6 = NULL;
    return -ENOMEM;
  }
  d->claims6_mask = ccap - 1;
  d->nclaims6 = 0;
  d->sh = *sh;
  if (!d->sh.max_clients)
    d->sh.max_clients = 1;
  if (!d->sh.room_burst)
    d->sh.room_burst = 1;
  if (!d->sh.rooms_per_client)
    d->sh.rooms_per_client = 1;
  d->sess_mask = cap - 1;
  d->nsess = 0;
  rng_fill(&d->name_key, sizeof(d->name_key));
  return 0;
}

uint32_t roomdir_find(const struct roomdir *d, const char *name)
{
  for (uint32_t i = 0; i < d->max_rooms; i++)
    if (d->rooms[i].used && strcmp(d->rooms[i].name, name) == 0)
      return i;
  return ROOMDIR_NONE;
}

uint32_t roomdir_client_rooms(const struct roomdir *d, uint64_t client)
{
  uint32_t n = 0;
  for (uint32_t i = 0; client && i < d->max_rooms; i++)
    n += d->rooms[i].used && d->rooms[i].creator == client;
  return n;
}

/* The client's slot in the rate table: the one owing for key, else (make)
 * a free one, else the one owing least, forgotten (*evicted). */
static struct roomdir_client *client_slot(struct roomdir *d, uint64_t key, uint64_t now, bool make,
                                          bool *evicted)
{
  struct roomdir_client *free_c = NULL, *least = NULL;
  for (uint32_t i = 0; i < d->sh.max_clients; i++) {
    struct roomdir_client *c = &d->clients[i];
    if (c->tat_ns <= now) {
      if (!free_c)
        free_c = c;
      continue;
    }
    if (c->key == key)
      return c;
    if (!least || c->tat_ns < least->tat_ns)
      least = c;
  }
  if (!make)
    return NULL;
  if (!free_c) {
    free_c = least;
    if (evicted)
      *evicted = true;
  }
  free_c->key = key;
  free_c->tat_ns = now;
  return free_c;
}

/* GCRA: a creation is allowed while the client's theoretical arrival time
 * is at most burst - 1 intervals ahead; `take` charges one interval. */
bool roomdir_rate_allow(struct roomdir *d, uint64_t client, uint64_t now, bool take, bool *evicted)
{
  if (!client || !d->clients)
    return true;
  struct roomdir_client *c = client_slot(d, client, now, false, NULL);
  uint64_t tat = c ? c->tat_ns : now;
  if (tat > now + (uint64_t)(d->sh.room_burst - 1) * d->sh.room_interval_ns)
    return false;
  if (take) {
    if (!c)
      c = client_slot(d, client, now, true, evicted);
    c->tat_ns = (tat > now ? tat : now) + d->sh.room_interval_ns;
  }
  return true;
}

int roomdir_open(struct roomdir *d, const char *name, uint64_t client,
                 const struct roomdir_pool_params *pp, uint64_t now, uint32_t *id, bool *made,
                 bool *evicted)
{
  *made = false;
  uint32_t i = roomdir_find(d, name);
  if (i != ROOMDIR_NONE) {
    d->rooms[i].copies++;
    *id = i;
    return 0;
  }
  if (d->nrooms >= d->max_rooms)
    return -ENOSPC;
  if (client && d->clients && roomdir_client_rooms(d, client) >= d->sh.rooms_per_client)
    return -EDQUOT;
  if (!roomdir_rate_allow(d, client, now, false, NULL))
    return -EAGAIN;
  int rc = roomdir_join(d, name, pp->first, pp->last, pp->lease_ns, pp->client_max, now, id, made);
  if (rc < 0)
    return rc;
  d->rooms[*id].creator = client;
  roomdir_rate_allow(d, client, now, true, evicted);
  return 0;
}

static uint64_t name_hash(const struct roomdir *d, const char *name)
{
  uint64_t h = d->name_key;
  for (const unsigned char *c = (const unsigned char *)name; *c; c++)
    h = hash_mix64(h ^ *c) + 0x9e3779b97f4a7c15ull;
  return hash_mix64(h ^ strlen(name));
}

static uint32_t sess_home(const struct roomdir *d, const void *e)
{
  (void)d;
  const struct roomdir_sess *s = e;
  return (uint32_t)hash_mix64(s->client ^ s->name);
}

/* The slot of (client, hash): its entry, or the free slot where it would
 * go (linear probing; the table is never more than half full). */
static uint32_t sess_slot(const struct roomdir *d, uint64_t client, uint64_t h)
{
  uint32_t i = sess_home(d, &(struct roomdir_sess){.client = client, .name = h}) & d->sess_mask;
  while (d->sess[i].client && (d->sess[i].client != client || d->sess[i].name != h))
    i = (i + 1) & d->sess_mask;
  return i;
}

uint32_t roomdir_sessions(const struct roomdir *d, uint64_t client, const char *name)
{
  if (!client || !d->sess)
    return 0;
  const struct roomdir_sess *e = &d->sess[sess_slot(d, client, name_hash(d, name))];
  return e->client ? e->count : 0;
}

int roomdir_session_add(struct roomdir *d, uint64_t client, const char *name, uint32_t limit)
{
  if (!client || !d->sess)
    return 0;
  uint64_t h = name_hash(d, name);
  uint32_t i = sess_slot(d, client, h);
  struct roomdir_sess *e = &d->sess[i];
  if (limit && e->count >= limit)
    return -EDQUOT;
  if (!e->client) {
    if (d->nsess >= d->sh.max_sessions)
      return -ENOSPC;
    e->client = client;
    e->name = h;
    e->count = 0;
    d->nsess++;
  }
  e->count++;
  return 0;
}

void roomdir_session_del(struct roomdir *d, uint64_t client, const char *name)
{
  if (!client || !d->sess)
    return;
  uint32_t i = sess_slot(d, client, name_hash(d, name));
  if (!d->sess[i].client || --d->sess[i].count > 0)
    return;
  d->nsess--;
  oa_remove(d, d->sess, sizeof(*d->sess), d->sess_mask, i, sess_home);
}

/* ---- IPv6 DAD claims ---- */

/* Keyed with the name secret: guests choose the addresses. */
static uint32_t claim6_hash(const struct roomdir *d, uint32_t id, const uint8_t a[16])
{
  uint64_t w[2];
  memcpy(w, a, 16);
  uint64_t h = hash_mix64(d->name_key ^ id);
  h = hash_mix64(h ^ w[0]) + 0x9e3779b97f4a7c15ull;
  return (uint32_t)hash_mix64(h ^ w[1]);
}

static uint32_t claim6_home(const struct roomdir *d, const void *e)
{
  const struct roomdir_claim6 *c = e;
  return claim6_hash(d, c->room, c->addr);
}

/* The slot of (id, a): its entry, or the free slot where it would go. */
static uint32_t claim6_slot(const struct roomdir *d, uint32_t id, const uint8_t a[16])
{
  uint32_t i = claim6_hash(d, id, a) & d->claims6_mask;
  while (d->claims6[i].owner &&
         (d->claims6[i].room != id || memcmp(d->claims6[i].addr, a, 16) != 0))
    i = (i + 1) & d->claims6_mask;
  return i;
}

int roomdir_claim6(struct roomdir *d, uint32_t id, const uint8_t a[16], uint64_t owner)
{
  if (!d->claims6 || !owner)
    return -ENOSPC;
  struct roomdir_claim6 *c = &d->claims6[claim6_slot(d, id, a)];
  if (c->owner)
    return c->owner == owner ? 0 : -EEXIST;
  if (d->nclaims6 >= d->sh.max_claims6)
    return -ENOSPC;
  c->owner = owner;
  c->room = id;
  memcpy(c->addr, a, 16);
  d->nclaims6++;
  return 0;
}

void roomdir_unclaim6(struct roomdir *d, uint32_t id, const uint8_t a[16], uint64_t owner)
{
  if (!d->claims6)
    return;
  uint32_t i = claim6_slot(d, id, a);
  if (!d->claims6[i].owner || d->claims6[i].owner != owner)
    return;
  d->nclaims6--;
  oa_remove(d, d->claims6, sizeof(*d->claims6), d->claims6_mask, i, claim6_home);
}
