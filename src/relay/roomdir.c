/*
 * roomdir: the process's room directory. See include/wtrelay/roomdir.h.
 */
#include "wtrelay/roomdir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  d->rooms = NULL;
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
