/*
 * lease: sticky addresses. Which MAC held which IP in which room, kept
 * after the room empties and, with a lease file, across restarts.
 *
 * Owns: a fixed table of leases (--max-leases) and a fixed table of room
 * names (2 x --max-rooms), both sized at init; the lease file format; the
 * writer of that file. A lease is (room name, MAC, IP) plus either "live"
 * (a session or a DHCP client holds the address: it never expires) or the
 * CLOCK_MONOTONIC time of its release (it expires lease_ns later, but stays
 * remembered until its slot is needed). Released leases sit on one list in
 * release order, so the oldest released (and thus the oldest expired) one
 * is at its head: a full table drops that one and counts it. A room name
 * with no lease left frees its slot; a full name table forgets the room
 * without live leases that was used longest ago, with all its leases.
 *
 * The file (text, one record a line, at most LEASE_LINE_MAX bytes):
 *
 *   # wtrelay leases v1
 *   room <name, percent-encoded: bytes outside 0x21..0x7e and '%'>
 *   <mac aa:bb:cc:dd:ee:ff> <ip a.b.c.d> <released: unix seconds | live>
 *
 * The client that made a lease (the per-client shares of ippool.h) is kept
 * in memory only: the file names no client addresses, and a lease read back
 * has no client (it counts toward nobody's share).
 *
 * Times are wall-clock (CLOCK_REALTIME) seconds, since monotonic time does
 * not survive a restart; a live lease read back counts as released at the
 * time it is read. Lines starting with '#' and blank lines are ignored; a
 * lease line before any valid room line, an overlong line, a last line
 * without its newline and any line that does not parse are skipped and
 * counted. Reading is bounded: at most as many bytes as the largest file
 * this table can write (the capacity of the write buffer).
 *
 * Writing: a change marks the table dirty; at most once a second the table
 * is formatted into a buffer allocated at init and written with io_uring
 * ops on the worker's ring (OPENAT of PATH.tmp, then WRITE, FSYNC, CLOSE as
 * hard-linked SQEs, then RENAMEAT over PATH, or UNLINKAT of the temporary
 * file after a failure), so the worker never blocks on the disk. The file is
 * created with mode 0600 (it names rooms and MACs). lease_fini writes a
 * last time, through the ring when there is one (the loop has ended; it
 * waits for its own completions), else with plain system calls (tests).
 *
 * Talks to: io (SQEs and completions under IO_OP_LEASE), timer, ippool
 * (seeds a new room's pool). Never: knows about sessions, DHCP or QUIC.
 */
#ifndef WTRELAY_LEASE_H
#define WTRELAY_LEASE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wtrelay/counter.h"
#include "wtrelay/io.h"
#include "wtrelay/ippool.h"
#include "wtrelay/log.h"
#include "wtrelay/timer.h"

#define LEASE_NAME_MAX 255 /* bytes of a room name (relay_room.name) */
#define LEASE_LINE_MAX 1024
#define LEASE_NONE UINT32_MAX

struct lease {
  bool used, live;
  uint8_t mac[6];
  uint32_t ip;           /* host order */
  uint32_t room;         /* index into lease_table.rooms */
  int64_t released_ns;   /* CLOCK_MONOTONIC, when !live (negative = before boot) */
  uint64_t client;       /* the client that acquired it (relay client key), 0 = none */
  uint32_t rprev, rnext; /* the room's leases */
  uint32_t oprev, onext; /* released leases oldest first; the free list through onext */
};

struct lease_room {
  bool used;
  uint32_t hash;
  uint32_t nleases, nlive;
  uint32_t head;   /* first lease of the room */
  int64_t last_ns; /* last acquire or release in this room */
  char name[LEASE_NAME_MAX + 1];
};

struct lease_counters {
  uint64_t written, write_errors, lines_skipped, load_errors;
  uint64_t reclaims_expired, reclaims_unexpired; /* pool reclaims of a released address */
  uint64_t dropped;                              /* forgotten for room: table or names full */
};

struct lease_params {
  uint32_t max_leases;            /* table size */
  uint32_t max_rooms;             /* room names remembered */
  uint64_t lease_ns;              /* lease time after a release */
  uint32_t pool_first, pool_last; /* lines with an IP outside are skipped */
  const char *path;               /* the lease file; NULL or "" = none (copied) */
};

enum lease_wstate { LEASE_W_IDLE, LEASE_W_OPEN, LEASE_W_SYNC, LEASE_W_RENAME, LEASE_W_UNLINK };

struct lease_table {
  struct lease_params p;
  struct lease *l;
  uint32_t nused, hwm;         /* leases in use; slots ever touched */
  uint32_t free_head;          /* free slots below hwm */
  uint32_t old_head, old_tail; /* released leases in release order */
  struct lease_room *rooms;
  uint32_t nrooms;
  struct lease_counters ctr;
  struct log_ratelimit rl;
  /* the file writer */
  char path[4096], tmp[4096 + 8];
  char *buf; /* formatted file; also the read buffer at load */
  size_t cap, len;
  struct io *io; /* NULL = synchronous writes (tests) */
  struct timer_heap *timers;
  uint64_t *now;
  struct timer timer;
  enum lease_wstate state;
  bool dirty;
  int fd;
  bool close_sync; /* the CLOSE SQE could not be had: close(2) after the others */
  unsigned pending;
  int res[3]; /* WRITE, FSYNC, CLOSE results */
  uint64_t last_start_ns;
  /* shared (lease_set_lock): the table is changed by other threads under
   * *lock; the writer's thread takes it to read the table and `dirty` */
  pthread_mutex_t *lock;
};

/* Allocates the tables and the file buffer. `now` is the worker's clock
 * (read on every call that takes no explicit time), timers its heap; both
 * borrowed. Returns 0 or negative errno. */
int lease_init(struct lease_table *t, const struct lease_params *p, struct timer_heap *timers,
               uint64_t *now);
/* Writes the file a last time when it changed (see above), then frees. */
void lease_fini(struct lease_table *t);
/* The table is shared by threads (the room directory's, changed by
 * every worker under `lock`, which they hold around every call below that
 * changes or reads it): a change only marks it dirty, and the writer, on
 * the thread of this table's timers and io, looks every second and takes
 * the lock to read the dirty mark and to format the file into its buffer
 * (the disk operations run without it). Call on that thread, before the
 * others run. */
void lease_set_lock(struct lease_table *t, pthread_mutex_t *lock);
/* Writes through io's ring from now on (IO_OP_LEASE). */
int lease_attach_io(struct lease_table *t, struct io *io);

/* Reads the lease file at start-up (synchronously). A missing file is an
 * empty table; anything wrong is logged once as an error, and the relay
 * goes on with what could be read. Returns the number of leases loaded. */
int lease_load_file(struct lease_table *t);
/* Parses a file's contents (the format above). now_ns: CLOCK_MONOTONIC,
 * wall_s: CLOCK_REALTIME seconds. Counts skipped lines in ctr. Returns the
 * number of leases loaded. */
int lease_parse(struct lease_table *t, const char *data, size_t len, uint64_t now_ns,
                int64_t wall_s);
/* Formats the table into buf (cap bytes, at least lease_buf_size). Returns
 * the length or -ENOBUFS. */
int lease_format(const struct lease_table *t, char *buf, size_t cap, uint64_t now_ns,
                 int64_t wall_s);
/* The size of the largest file this table can write. */
size_t lease_buf_size(uint32_t max_leases, uint32_t max_rooms);

/* mac holds ip in room (live) from now; any other lease of the room on that
 * ip or that mac is replaced. 0, or -ENOSPC when nothing can be dropped
 * for it (counted in dropped). */
int lease_acquired(struct lease_table *t, const char *room, const uint8_t mac[6], uint32_t ip,
                   uint64_t now);
/* The same, recording the client that acquired it (0 = none). */
int lease_acquired_for(struct lease_table *t, const char *room, const uint8_t mac[6], uint32_t ip,
                       uint64_t client, uint64_t now);
/* mac released ip in room at now (a lease that was not remembered is made). */
void lease_released(struct lease_table *t, const char *room, const uint8_t mac[6], uint32_t ip,
                    uint64_t now);
/* Every live lease of room is released at now (the room emptied). */
void lease_room_closed(struct lease_table *t, const char *room, uint64_t now);
/* A pool reclaimed ip of room from old_mac's released lease: counted, and
 * logged (rate-limited) when that lease had not expired yet. */
void lease_reclaimed(struct lease_table *t, const char *room, uint32_t ip, const uint8_t old_mac[6],
                     bool expired, uint64_t now);
/* Seeds a room's new pool with the leases remembered for it. Returns how
 * many were seeded. */
int lease_seed(struct lease_table *t, const char *room, struct ippool *pool, uint64_t now);

/* The lease of mac in room, or NULL. */
const struct lease *lease_find(const struct lease_table *t, const char *room, const uint8_t mac[6]);
/* Leases that hold their address: live, or released less than lease_ns ago. */
uint32_t lease_active(const struct lease_table *t, uint64_t now);

/* Percent-encodes a room name (bytes outside 0x21..0x7e, and '%'). Returns
 * the length written (NUL-terminated) or -ENOBUFS. */
int lease_name_encode(const char *name, char *out, size_t cap);
/* Decodes; the result is 1..LEASE_NAME_MAX bytes without NUL. Returns the
 * length or -EINVAL. */
int lease_name_decode(const char *in, size_t len, char *out, size_t cap);

/* Writes the file now: through the ring when attached (completes later),
 * else synchronously. Returns 0 or negative errno (synchronous errors). */
int lease_write_now(struct lease_table *t);

/* The counters' table (wtrelay/counter.h): /metrics and the exit log
 * are written from it. */
extern const struct counter_table lease_counter_table;

#endif
