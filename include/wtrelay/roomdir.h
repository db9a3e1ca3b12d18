/*
 * roomdir: the rooms of a process, as every worker shares them.
 *
 * A room has a copy (switch domain, gateway port, sessions) on every
 * worker that has a session of it; what the copies must agree on lives
 * here, once: the room's address pool (one MAC -> one IP in the room,
 * whichever worker its session sits on; a client's address share counted
 * over all of them) and, through the pool's observer, the lease table
 * (sticky addresses). Each room has a process-wide id (its index here),
 * which the worker rings carry so the other side finds its own copy.
 *
 * One mutex guards everything here. Only Register, DHCP, session ends
 * and room creation and removal take it, never the frame path. Callers
 * lock around every call below and every ippool_* call on a room's pool.
 *
 * Never: touches a worker's switch, sessions or gateway.
 */
#ifndef WTRELAY_ROOMDIR_H
#define WTRELAY_ROOMDIR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "wtrelay/ippool.h"
#include "wtrelay/lease.h"

#define ROOMDIR_NONE UINT32_MAX

/* A room's id on the worker rings: its slot and the slot's generation
 * (bumped at every creation), so a frame still in a ring when its room
 * ended and the slot was reused for another room is never switched into
 * the new one. Slots < 2^20 (--max-rooms is at most 65536). */
#define ROOMDIR_SLOT_BITS 20
#define ROOMDIR_SLOT(id) ((id) & ((1u << ROOMDIR_SLOT_BITS) - 1))

/* Workers a room's copy set can name (--workers is at most 256); a worker
 * beyond it is always taken to have a copy. */
#define ROOMDIR_MAX_WORKERS 256
#define ROOMDIR_COPY_WORDS (ROOMDIR_MAX_WORKERS / 64)

struct roomdir_room {
  bool used;
  uint32_t gen;    /* creations of this slot (12 bits used in the ring id) */
  uint32_t copies; /* workers that hold a copy */
  /* the set of workers that hold a copy, bit w of word w / 64: written
   * under the lock (roomdir_copy_set), read without it by a worker's
   * uplinks (roomdir_copy_has) */
  _Atomic uint64_t copy_set[ROOMDIR_COPY_WORDS];
  char name[256];
  struct ippool pool;
};

struct roomdir {
  pthread_mutex_t lock;
  struct roomdir_room *rooms;
  uint32_t max_rooms;
  uint32_t nrooms;
  struct lease_table *leases; /* borrowed: the first relay's table (worker 0's) */
};

int roomdir_init(struct roomdir *d, uint32_t max_rooms);
void roomdir_fini(struct roomdir *d);
void roomdir_lock(struct roomdir *d);
void roomdir_unlock(struct roomdir *d);
/* Locked. The room named `name`, made when missing (its pool over
 * first..last, seeded from the lease table); one more copy counted. 0 and
 * *id, -ENOSPC no room slot, or the pool's error. `made` tells whether it
 * was made by this call. */
int roomdir_join(struct roomdir *d, const char *name, uint32_t first, uint32_t last,
                 uint64_t lease_ns, uint32_t client_max, uint64_t now, uint32_t *id, bool *made);
/* Locked. One copy less; the last one frees the room (its DHCP-only
 * leases released in the lease table). */
void roomdir_leave(struct roomdir *d, uint32_t id, uint64_t now);
/* Locked. The room's pool. */
struct ippool *roomdir_pool(struct roomdir *d, uint32_t id);
/* The ring id of room slot `id` as made now (slot | generation << 20). */
uint32_t roomdir_ring_id(const struct roomdir *d, uint32_t id);
const char *roomdir_name(const struct roomdir *d, uint32_t id);

/*
 * Which workers hold a copy of a room: what lets a copy send a flood only
 * to the workers that have the room, instead of one ring copy per other
 * worker that the consumer would drop (no_room). The joining or leaving
 * worker updates its bit under the lock, next to roomdir_join/leave; a
 * worker's uplink reads it without the lock (one relaxed load), which is
 * safe because the reader holds a copy of the room itself, so the slot is
 * not freed or made again under it. A bit read a moment late costs one
 * frame at most: toward a copy just made (the frame is lost, as it would
 * have been before the copy was there) or one just dropped (the consumer
 * counts it as no_room, as before).
 */
/* Locked. Worker w holds a copy of room `id` now (has) or no longer. */
void roomdir_copy_set(struct roomdir *d, uint32_t id, uint32_t w, bool has);
/* Lock-free, by a worker holding a copy of room `id`: whether worker w has
 * one too. True for a worker beyond ROOMDIR_MAX_WORKERS. */
bool roomdir_copy_has(const struct roomdir *d, uint32_t id, uint32_t w);

#endif
