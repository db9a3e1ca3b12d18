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
 * The per-client shares are counted here too, so that they hold for the
 * process and not per worker (a client whose sessions land on N workers
 * gets its share once, not N times):
 * - room creation (roomdir_open): a name the directory holds is joined
 *   without any creation check (a worker's first session of a room that
 *   lives on another worker makes only a local copy); a new name needs a
 *   free room slot (--max-rooms counts rooms here, not copies), its
 *   client below --max-rooms-per-client rooms alive (each room records
 *   the client whose Register made it) and a creation token of its
 *   client (--room-rate, --room-burst: a GCRA per client in a table of
 *   max_clients entries; a client owing nothing holds no entry, a full
 *   table forgets the one owing least);
 * - sessions per client per room name (--max-client-sessions-per-room):
 *   an open-addressed table of (client, name) counts, max_sessions
 *   entries (at most one per session), the name kept as a 64-bit hash
 *   keyed with a secret drawn at start (two names of one client that
 *   collide would share a count: only that client could lose by it).
 *
 * - IPv6 addresses claimed by duplicate address detection: one holder per
 *   (room, address) over every worker (roomdir_claim6).
 *
 * One mutex guards everything here. Only CONNECT, Register, DHCP, session
 * ends and room creation and removal take it, and on the frame path only
 * a DAD that passed the LAN guard (rare: bounded by the flood rate).
 * Callers lock around every call below (except init, fini and ring ids)
 * and every ippool_* call on a room's pool.
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
  uint32_t gen;     /* creations of this slot (12 bits used in the ring id) */
  uint32_t copies;  /* workers that hold a copy */
  uint64_t creator; /* client key of the Register that made it (0 = none) */
  /* the set of workers that hold a copy, bit w of word w / 64: written
   * under the lock (roomdir_copy_set), read without it by a worker's
   * uplinks (roomdir_copy_has) */
  _Atomic uint64_t copy_set[ROOMDIR_COPY_WORDS];
  char name[256];
  struct ippool pool;
  /* registered sessions over every worker (each relay adds its own,
   * relaxed); read by /metrics under the lock */
  _Atomic uint32_t sessions;
};

/* The room-creation rate of one client: a GCRA. tat_ns is the theoretical
 * arrival time of its next creation; the slot is free once tat_ns <= now
 * (a full burst at hand: the client owes nothing). */
struct roomdir_client {
  uint64_t key;
  uint64_t tat_ns;
};

/* Sessions of one client naming one room (registered or not). */
struct roomdir_sess {
  uint64_t client; /* 0 = free slot */
  uint64_t name;   /* keyed hash of the name */
  uint32_t count;
};

/* An IPv6 address a session claimed by duplicate address detection (a
 * privacy or stable-privacy address), held for the room over every
 * worker: the first session to claim it keeps it until it gives it back,
 * and another session's claim of it is refused. */
struct roomdir_claim6 {
  uint64_t owner; /* the claiming session (relay.c's key); 0 = free slot */
  uint32_t room;  /* the room's id here */
  uint8_t addr[16];
};

/* The shares (relay.h computes the defaults from the config). */
struct roomdir_shares {
  uint32_t rooms_per_client; /* --max-rooms-per-client (>= 1) */
  uint32_t room_burst;       /* --room-burst (>= 1) */
  uint64_t room_interval_ns; /* 1 s / --room-rate */
  uint32_t max_clients;      /* rate table entries */
  uint32_t max_sessions;     /* (client, name) counts: at most one per session */
  uint32_t max_claims6;      /* IPv6 DAD claims in all (sessions x claims per session) */
};

struct roomdir {
  pthread_mutex_t lock;
  struct roomdir_room *rooms;
  uint32_t max_rooms;
  uint32_t nrooms;
  struct lease_table *leases; /* borrowed: the first relay's table (worker 0's) */
  /* per-client shares (roomdir_set_shares) */
  struct roomdir_shares sh;
  struct roomdir_client *clients; /* sh.max_clients */
  struct roomdir_sess *sess;      /* sess_mask + 1 slots (a power of two >= 2 x max_sessions) */
  uint32_t sess_mask, nsess;
  struct roomdir_claim6 *claims6; /* claims6_mask + 1 slots (>= 2 x max_claims6) */
  uint32_t claims6_mask, nclaims6;
  uint64_t name_key;
};

/* Where a room's pool starts: the relay's subnet and lease time. */
struct roomdir_pool_params {
  uint32_t first, last;
  uint64_t lease_ns;
  uint32_t client_max; /* --max-client-addrs-per-room */
};

int roomdir_init(struct roomdir *d, uint32_t max_rooms);
/* The share tables and bounds, once: a directory that has them keeps them
 * (the first relay of the process sets them; every worker's relay has the
 * same config). 0 or -ENOMEM. Not locked: before the workers run. */
int roomdir_set_shares(struct roomdir *d, const struct roomdir_shares *sh);
/* Locked. The room named `name`, or ROOMDIR_NONE. */
uint32_t roomdir_find(const struct roomdir *d, const char *name);
/* Locked. Rooms alive that `client` made (0: none counted). */
uint32_t roomdir_client_rooms(const struct roomdir *d, uint64_t client);
/* Locked. Whether `client` may create a room now (client 0: always);
 * `take` charges one creation. A client taken into a full rate table
 * evicts the one owing least (*evicted set when so; may be NULL). */
bool roomdir_rate_allow(struct roomdir *d, uint64_t client, uint64_t now, bool take, bool *evicted);
/* Locked. A copy of room `name` for a Register of `client`: a room the
 * directory holds is joined (one copy more) without any check; else it is
 * made if there is a room slot (-ENOSPC), the client is below its rooms
 * (-EDQUOT) and has a creation token (-EAGAIN), which is taken, and the
 * client recorded as its creator. *made: made by this call. */
int roomdir_open(struct roomdir *d, const char *name, uint64_t client,
                 const struct roomdir_pool_params *pp, uint64_t now, uint32_t *id, bool *made,
                 bool *evicted);
/* Locked. Sessions of `client` naming `name`. */
uint32_t roomdir_sessions(const struct roomdir *d, uint64_t client, const char *name);
/* Locked. One more session of client naming name, unless it has `limit`
 * already (-EDQUOT; limit 0 = no cap) or the table is full (-ENOSPC).
 * client 0 is never counted (0). */
int roomdir_session_add(struct roomdir *d, uint64_t client, const char *name, uint32_t limit);
/* Locked. One session less (the inverse of a successful add). */
void roomdir_session_del(struct roomdir *d, uint64_t client, const char *name);
/* Locked. Session `owner` (non-zero) claims IPv6 address a in room id:
 * 0 when it holds it now (already or by this call), -EEXIST when another
 * session holds it, -ENOSPC when max_claims6 are held. O(1) expected: a
 * keyed hash of (room, address), linear probing in a table at most half
 * full. */
int roomdir_claim6(struct roomdir *d, uint32_t id, const uint8_t a[16], uint64_t owner);
/* Locked. owner gives a back (nothing when it does not hold it). */
void roomdir_unclaim6(struct roomdir *d, uint32_t id, const uint8_t a[16], uint64_t owner);
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
