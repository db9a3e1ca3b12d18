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
  d->rooms = NULL;
  d->clients = NULL;
  d->sess = NULL;
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

/* ---- per-client shares ---- */

int roomdir_set_shares(struct roomdir *d, const struct roomdir_shares *sh)
{
  if (d->clients)
    return 0; /* set by the first relay */
  uint32_t cap = 2;
  while (cap < 2 * (uint64_t)sh->max_sessions && cap < (1u << 31))
    cap <<= 1;
  d->clients = calloc(sh->max_clients ? sh->max_clients : 1, sizeof(*d->clients));
  d->sess = calloc(cap, sizeof(*d->sess));
  if (!d->clients || !d->sess) {
    free(d->clients);
    free(d->sess);
    d->clients = NULL;
    d->sess = NULL;
    return -ENOMEM;
  }
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

/* The slot of (client, hash): its entry, or the free slot where it would
 * go (linear probing; the table is never more than half full). */
static uint32_t sess_slot(const struct roomdir *d, uint64_t client, uint64_t h)
{
  uint32_t i = (uint32_t)hash_mix64(client ^ h) & d->sess_mask;
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
  /* free the slot; move back the entries of its probe run that belong at
   * or before it (backward-shift deletion: no tombstones) */
  d->nsess--;
  uint32_t j = i;
  for (;;) {
    memset(&d->sess[i], 0, sizeof(d->sess[i]));
    for (;;) {
      j = (j + 1) & d->sess_mask;
      if (!d->sess[j].client)
        return;
      uint32_t home = (uint32_t)hash_mix64(d->sess[j].client ^ d->sess[j].name) & d->sess_mask;
      /* j's entry may move to i unless its home lies cyclically in (i, j] */
      if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
        break;
    }
    d->sess[i] = d->sess[j];
    i = j;
  }
}
