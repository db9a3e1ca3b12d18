/*
 * status: the operator's view of the sessions (/status as JSON, / as a
 * small HTML page that fetches it), private to src/app.
 *
 * Owns: one struct status_snap per worker: a copy of that worker's
 * sessions (id, room, remote address, origin, MAC, IP, age, frames and
 * bytes each way, the NAT flows of its IP in the worker's gateway) and
 * of its rooms, written by the worker, read by the
 * ops listener on worker 0. Nothing is copied while nobody looks: a
 * /status request marks every snapshot wanted for STATUS_WANT_NS, and a
 * worker fills its snapshot (at its metrics snapshot, every 100 ms) only
 * while it is wanted.
 * Threads: the owner fills under the snapshot's mutex taken with trylock
 * (a worker never waits: when the reader holds it, the fill is skipped
 * and made at the next snapshot); the reader holds every snapshot's
 * mutex while it writes the response. Worker 0's own snapshot is filled
 * by the request itself, so its sessions are always current; another
 * worker's are as old as its snapshot_age_ms says (at most about 100 ms
 * while someone looks; the first request after a quiet time may see an
 * old or empty one).
 * Talks to: the relay's peers (read by their own worker only), h3 for a
 * session's remote address and origin, the worker's gateway for the
 * NAT flows of a session's IP (room and address: the NAT knows no
 * sessions), ops for the response buffer.
 * Never: reads another worker's relay; allocates while nobody looks.
 */
#ifndef WTRELAY_APP_STATUS_H
#define WTRELAY_APP_STATUS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "wtrelay/ops.h"
#include "wtrelay/relay.h"

#define STATUS_LIMIT_DEFAULT 500u
#define STATUS_LIMIT_MAX 5000u
/* A request keeps the snapshots filled this long (the page asks every
 * few seconds). */
#define STATUS_WANT_NS (10ull * 1000000000ull)

/* One session as its worker saw it at the fill. */
struct status_session {
  uint32_t id; /* the relay's peer id (peer= in the log) */
  bool registered;
  uint8_t transport; /* enum session_transport */
  uint8_t mac[6];
  uint32_t ip; /* host order, 0 = none yet */
  uint64_t created_ns;
  uint64_t frames_in, bytes_in, frames_out, bytes_out; /* in: from the client */
  /* the NAT flows of its guest address in its worker's gateway */
  uint32_t nat_udp, nat_icmp, nat_tcp;
  char room[256];   /* the room, or the CONNECT's :path while unregistered */
  char remote[64];  /* address:port */
  char origin[256]; /* the CONNECT's Origin header, "" = none */
};

struct status_room {
  char name[256];
  uint32_t sessions; /* registered sessions in this worker's copy */
};

struct status_snap {
  pthread_mutex_t lock;
  _Atomic uint64_t wanted_until; /* the monotonic clock (ns) */
  /* under lock */
  struct status_session *sess;
  uint32_t nsess, cap;
  struct status_room *rooms;
  uint32_t nrooms, room_cap;
  uint64_t at_ns;   /* the fill's clock, 0 = never filled */
  uint32_t missing; /* sessions left out: an allocation failed */
};

/* What /status says about the process (the caller's values). */
struct status_info {
  const char *version;
  uint64_t uptime_s;
  const char *cert_sha256; /* hex */
  int64_t cert_not_after;  /* unix seconds */
  uint64_t now_ns;         /* the reader's monotonic clock */
};

int status_snap_init(struct status_snap *s);
void status_snap_fini(struct status_snap *s);
/* Someone looked at now_ns: keep filling for STATUS_WANT_NS. */
void status_snap_want(struct status_snap *s, uint64_t now_ns);
bool status_snap_wanted(struct status_snap *s, uint64_t now_ns);
/* The owner of r copies its sessions and rooms in (r's thread only).
 * 0; -EBUSY when the reader holds the snapshot (skipped); -ENOMEM when
 * the copy could not grow (the sessions that fit are kept, the rest
 * counted as missing). */
int status_snap_fill(struct status_snap *s, const struct relay *r, uint64_t now_ns);

/* Parses "offset=N&limit=M" (either may be absent; other keys ignored).
 * 0 or -EINVAL (not a number, limit 0). limit is clamped to
 * STATUS_LIMIT_MAX. */
int status_query_parse(const char *query, uint32_t *offset, uint32_t *limit);
/* Writes the /status JSON over snaps[0..n) (worker i's is snaps[i]),
 * holding every snapshot's lock meanwhile: sessions offset..offset+limit
 * in the order of workers then peer ids, stopped early (truncated,
 * next_offset) before the response could outgrow b->max. */
void status_write_json(struct ops_buf *b, const struct status_info *in,
                       struct status_snap *const *snaps, uint32_t n, uint32_t offset,
                       uint32_t limit);
/* Writes the HTML page (self-contained: its script fetches /status). */
void status_write_page(struct ops_buf *b);
/* Writes s as a JSON string: quotes, escapes, invalid UTF-8 as U+FFFD. */
void status_json_str(struct ops_buf *b, const char *s);

#endif
