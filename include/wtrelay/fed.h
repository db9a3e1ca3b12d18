/*
 * fed: rooms across machines. Relays that share a NATS server (or
 * cluster) join each room's copies into one Ethernet segment.
 *
 * Owns: one NATS connection for the process (libnats, its own threads),
 * the publisher thread, the process's table of subscribed rooms, and per
 * worker an outgoing frame ring (worker -> publisher), an incoming frame
 * ring (NATS -> worker, with an eventfd doorbell the worker polls on its
 * io_uring), the worker's room wishes and its table of remote MACs.
 *
 * Wire: a frame of room R published by relay I is one NATS message,
 * payload [u8 n][I: n bytes][Ethernet frame], on
 *   <prefix>.room.<hex(R)>.flood        broadcast, multicast, unknown
 *                                       unicast, and unicast to a MAC
 *                                       whose relay is not known
 *   <prefix>.room.<hex(R)>.to.<hex(J)>  unicast to a MAC last seen in a
 *                                       frame from relay J
 * Room names and relay ids are hex-encoded (fed_token), so no '.', '*',
 * '>' or blank of a name can reach a subject. Every relay with a local
 * session in R subscribes to R's flood subject and to its own .to.
 * subject; messages carrying its own id are ignored (and the connection
 * is made with no_echo). <prefix>.relay.<hex(I)>.ping is answered by relay
 * I: a relay that gets an answer at start refuses to start (two relays
 * with one id would ignore each other's frames).
 *
 * Threads. A worker never calls libnats. Its switch hands a frame to the
 * room's federation uplink (relay_fed_ops.send -> fed_send): it is
 * copied into the worker's outgoing ring (full: dropped and counted; NATS
 * not connected: dropped and counted before the copy) and the publisher
 * thread, woken by the ring's doorbell, publishes it. libnats's delivery
 * thread runs the subscription callback, which copies the message into
 * the incoming ring of every worker with a copy of the room (under the
 * room table's lock, so each ring has one producer at a time); the worker
 * drains it (fed_drain), learns the sender's id for the frame's source MAC
 * and switches the frame from the room's federation uplink.
 *
 * Remote MACs. Each worker remembers, per (room, MAC), the relay whose
 * frame last carried that MAC as its source, and when (fed_mac_learn, on
 * every frame from NATS). A unicast the switch hands the uplink goes to
 * that relay's .to. subject only while the entry is younger than the
 * aging time (--mac-aging, as the switch's own table); an older entry is
 * forgotten at that lookup (fed_mac_find, counted) and the frame goes to
 * the flood subject, so a MAC that went quiet behind one relay and came
 * back behind another is reached wherever it is after the aging time, even
 * if the switch still thinks it is behind the uplink. Direct-mapped, one
 * entry per slot (FED_MACS): a collision forgets the older MAC, which is
 * then flooded to until its next frame.
 *
 * Rooms. A worker says which rooms it has copies of through a level
 * table (fed_room_open / fed_room_close: the room's ring id per room slot,
 * and its name), and wakes the publisher thread, which subscribes to a
 * room while any worker wants it and unsubscribes when none does. libnats
 * re-sends the subscriptions itself after a reconnect.
 *
 * Split horizon with several workers: every worker's copy of a room has
 * its own federation uplink. A frame from a local session floods to the
 * other workers' copies (worker uplinks) and to NATS once; the other
 * copies got it from an uplink and never pass it to another uplink
 * (switch.h), so it is published once per relay. A frame from NATS goes
 * into every worker's copy through its federation uplink, and none of
 * them passes it to a worker uplink or back to NATS.
 *
 * Addresses across the cluster (fed_lease.c). A JetStream key-value
 * bucket <prefix with '.' as '_'>_leases (created with TTL = --lease-time
 * when absent) holds, per room R (token r<hex(R)>):
 *   r<hex>.ip.<a_b_c_d>   "<mac hex> L|R <relay id>": the address is held
 *                         (L live, R released) by that MAC, last written
 *                         by that relay
 *   r<hex>.mac.<mac hex>  "<a.b.c.d>": the address the MAC had last
 * A Register, after the room's local pool gave it a candidate address,
 * waits for the lease thread (fed_lease_claim; the relay holds the local
 * address meanwhile): the MAC's address from the mac key if it has one,
 * else the candidate, else the pool's range scanned top-down from it, is
 * claimed on its ip key by create-if-absent, or by compare-and-set when
 * the key holds this MAC (a released address reclaimed the same way only
 * when no address is free). So two relays that allocate at once never
 * hold one key: one create wins, the other goes on to the next address.
 * The lease thread renews every live lease it holds (compare-and-set on
 * its revision) at a third of the TTL, and a release writes R and stops
 * renewing: the key expires a TTL later, so the address stays the MAC's
 * for the lease time wherever it reconnects. A claim that finds its MAC
 * live behind another relay takes the key over and publishes
 * <prefix>.relay.<hex(J)>.takeover [mac][room] to that relay, whose
 * workers end the session holding the MAC (the same-MAC takeover across
 * relays). NATS or JetStream unreachable: the claim answers UNAVAILABLE
 * at once and the relay keeps the local address (rooms keep working
 * alone); the lease is claimed when renewal finds NATS back, and when
 * another MAC took its key meanwhile (a VM on another relay got the same
 * address) the conflict is counted, logged, and the session holding it
 * here is ended, so that its VM reconnects and gets a free address.
 *
 * Never: blocks a worker, allocates after fed_start on the frame path,
 * or carries a frame of the gateway (switch.h: uplinks and the router
 * port never exchange frames).
 */
#ifndef WTRELAY_FED_H
#define WTRELAY_FED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "wtrelay/counter.h"
#include "wtrelay/fring.h"
#include "wtrelay/log.h"
#include "wtrelay/switch.h"

#define FED_ID_MAX 64
#define FED_NAME_MAX 256
#define FED_MACS 4096 /* remote MACs remembered per worker (direct-mapped) */
#define FED_RING_SLOTS 4096
#define FED_LREQ_SLOTS 1024 /* lease requests per worker waiting for the lease thread */

/* Kinds of slot in a worker's incoming ring (fring_slot.flags). */
#define FED_IN_FRAME 0u    /* [u8 n][relay id][Ethernet frame] */
#define FED_IN_LEASE 1u    /* struct fed_lease_ans */
#define FED_IN_TAKEOVER 2u /* [mac 6][room name] */
#define FED_IN_CONFLICT 3u /* [mac 6][room name]: the MAC's address is another's */

enum fed_lease_status {
  FED_LEASE_OK = 0,          /* ip is the VM's, cluster-wide */
  FED_LEASE_UNAVAILABLE = 1, /* NATS or JetStream unreachable: keep the local address */
  FED_LEASE_EXHAUSTED = 2,   /* every address of the range is held in the cluster */
};

/* A worker's request to the lease thread (one lreq slot). */
#define FED_LREQ_CLAIM 1
#define FED_LREQ_RELEASE 2
struct fed_lease_req {
  uint8_t type;
  uint8_t mac[6];
  uint32_t ip; /* claim: the local candidate (0 = none); release: the address */
  uint64_t token;
  char room[FED_NAME_MAX];
};

struct fed_lease_ans {
  uint64_t token;
  uint32_t status; /* enum fed_lease_status */
  uint32_t ip;     /* host order, FED_LEASE_OK */
};

/* What a worker's relay does with the incoming ring (fed_drain). */
struct fed_drain_ops {
  /* switches one frame of room ring_id: relay_fed_input's result (-ENOENT
   * no copy) */
  int (*input)(void *ctx, uint32_t ring_id, const uint8_t *frame, size_t len);
  void (*lease)(void *ctx, const struct fed_lease_ans *a);
  /* another relay took the MAC of room `room` over (conflict: no, its
   * address turned out to be another MAC's after NATS was unreachable) */
  void (*takeover)(void *ctx, const char *room, const uint8_t mac[6], bool conflict);
};

/* The process's counters, as /metrics and the exit log read them (a
 * snapshot of the atomics below, fed_counters_read). */
struct fed_counters {
  uint64_t frames_out, frames_in;
  uint64_t bytes_out, bytes_in;
  uint64_t frames_directed; /* out: on a .to.<relay> subject */
  uint64_t drop_down;       /* out: NATS not connected */
  uint64_t drop_ring_full;  /* out: the worker's ring to the publisher full */
  uint64_t drop_too_big;    /* out: larger than a ring slot */
  uint64_t drop_publish;    /* out: libnats refused the publish */
  uint64_t drop_in_full;    /* in: a worker's incoming ring full */
  uint64_t drop_in_bad;     /* in: malformed payload */
  uint64_t drop_in_no_room; /* in: the worker had no copy of the room any more */
  uint64_t drop_in_switch;  /* in: the switch refused it (runt, pinned source) */
  uint64_t own_ignored;     /* in: carrying this relay's id */
  uint64_t macs_learned;    /* remote MACs learned or moved to another relay */
  uint64_t macs_expired;    /* remote MACs older than the aging time at a lookup */
  uint64_t reconnects;      /* NATS reconnections */
  uint64_t disconnects;     /* NATS connection losses */
  uint64_t connected;       /* gauge: 1 when connected to NATS */
  uint64_t lease_claims;    /* claims answered OK */
  uint64_t lease_moved;     /* ... with another address than the local candidate */
  uint64_t lease_unavailable, lease_exhausted, lease_req_full;
  uint64_t lease_renewals, lease_renew_lost, lease_releases, lease_conflicts, lease_kv_errors;
  uint64_t lease_takeovers_sent, lease_takeovers_received;
  uint64_t leases_held;      /* gauge: live leases this relay renews */
  uint64_t rooms_subscribed; /* gauge: rooms subscribed now */
};

struct fed_mac {
  uint64_t seen_ns; /* the last frame from NATS with this source MAC */
  uint32_t ring_id;
  uint8_t mac[6];
  uint8_t idlen; /* 0 = unused */
  char id[FED_ID_MAX];
};

/* One worker's side. */
struct fed_worker {
  struct fring out; /* worker -> publisher */
  struct fring in;  /* NATS -> worker */
  /* wishes, per room slot: (1 << 32 | ring id) when a copy is here, 0
   * when not; names[slot] written before the wish is stored */
  _Atomic uint64_t *want;
  char (*names)[FED_NAME_MAX];
  struct fed_mac *macs; /* FED_MACS, this worker's thread only */
  struct fring lreq;    /* worker -> lease thread: struct fed_lease_req */
  /* counters this worker writes */
  _Atomic uint64_t drop_down, drop_ring_full, drop_too_big, drop_in_no_room, drop_in_switch,
      macs_learned, macs_expired, frames_in, bytes_in, drop_in_bad;
};

/* A room subscribed (the publisher thread changes it under lock). */
struct fed_room {
  bool active;
  uint32_t ring_id;
  char token[2 * FED_NAME_MAX + 1];
  void *sub_flood, *sub_to; /* natsSubscription */
  uint8_t *workers;         /* nworkers flags: copies here */
  struct fed *fed;
};

struct fed_params {
  const char *urls;   /* comma-separated */
  const char *creds;  /* "" = none */
  const char *id;     /* "" = hostname:port */
  const char *prefix; /* "wtrelay" */
  uint16_t port;      /* for the default id */
  uint32_t nworkers;
  uint32_t max_rooms;
  uint32_t max_frame;
  uint64_t aging_ns; /* remote MACs older than this are not used; 0 = never aged */
  /* cluster leases: the pool's range (host order), --lease-time, and the
   * live leases the lease thread may hold (0: no cluster leases) */
  uint32_t pool_first, pool_last;
  uint64_t lease_ns;
  uint32_t max_live;
  /* Whether ip of room `room` is live in this relay's own pool for another
   * MAC than mac (a session, or a Register's candidate waiting for the
   * cluster): the lease thread never gives such an address. May be NULL. */
  bool (*local_busy)(void *ctx, const char *room, uint32_t ip, const uint8_t mac[6]);
  /* Moves mac's local lease from its candidate `from` to `to`, the address
   * just claimed for it, under the pools' lock: 0 (moved, or nothing to
   * move), -EBUSY (another MAC holds `to` here). May be NULL. */
  int (*local_take)(void *ctx, const char *room, const uint8_t mac[6], uint32_t from, uint32_t to);
  void *local_ctx;
};

struct fed_lease_live; /* fed_lease.c */

struct fed {
  struct fed_params p;
  char id[FED_ID_MAX + 1];
  uint8_t idlen;
  char idtok[2 * FED_ID_MAX + 1];
  char prefix[128];
  bool lib_open; /* nats_Open called */
  void *nc;      /* natsConnection */
  void *sub_ping;
  struct fed_worker *ws;
  struct fed_room *rooms; /* max_rooms */
  pthread_mutex_t lock;   /* rooms, and the incoming rings' producer side */
  pthread_t thread;
  bool thread_started;
  int bell; /* eventfd: a worker changed its wishes, or stop */
  _Atomic bool dirty, stop;
  _Atomic uint64_t frames_out, bytes_out, frames_directed, drop_publish, drop_in_full, own_ignored,
      reconnects, disconnects, connected, rooms_subscribed, drop_down_pub;
  struct log_ratelimit rl_down;
  uint8_t *scratch; /* the publisher's payload buffer */
  char *subj;       /* the publisher's subject buffer */
  /* cluster leases (fed_lease.c): the lease thread's own */
  void *js, *kv, *sub_takeover; /* jsCtx, kvStore, natsSubscription */
  pthread_t lthread;
  bool lthread_started;
  int lbell; /* eventfd: stop */
  uint64_t renew_ns;
  struct fed_lease_live *live;
  uint32_t *live_head, live_free, nlive, live_mask;
  _Atomic uint64_t lease_claims, lease_moved, lease_unavailable, lease_exhausted, lease_req_full,
      lease_renewals, lease_renew_lost, lease_releases, lease_conflicts, lease_kv_errors,
      lease_takeovers_sent, lease_takeovers_received, leases_held;
  struct log_ratelimit rl_lease;
};

/* Hex of `in` (n bytes) into out (2n + 1 bytes, NUL-terminated): the
 * subject token of a room name or relay id. Returns out. */
char *fed_token(char *out, const void *in, size_t n);
/* True when s is a valid subject prefix: dot-separated tokens of
 * [A-Za-z0-9_-], none empty. */
bool fed_prefix_valid(const char *s);
/* Writes the subject of a frame of room token `room`: to relay token `to`
 * (NULL: the flood subject). Returns the length, or -ENAMETOOLONG. */
int fed_subject(char *out, size_t cap, const char *prefix, const char *room, const char *to);

/* The --nats list for a log line: every URL's user and password (or
 * token) replaced by "***". out holds cap bytes (truncated, always
 * NUL-terminated). */
void fed_urls_redact(char *out, size_t cap, const char *urls);
/* Connects, checks the id is not in use (-EADDRINUSE), subscribes to the
 * id's ping, starts the publisher thread. Errors are logged. */
int fed_start(struct fed *f, const struct fed_params *p);
/* Stops the thread, closes the connection, frees everything; safe on a
 * zeroed or failed fed. */
void fed_stop(struct fed *f);

/* Worker w's side (its thread only). */
void fed_room_open(struct fed *f, uint32_t w, uint32_t ring_id, const char *name);
void fed_room_close(struct fed *f, uint32_t w, uint32_t ring_id);
/* A frame the switch handed room ring_id's federation uplink. 0 or a
 * negative errno (dropped, counted). */
int fed_send(struct fed *f, uint32_t w, uint32_t ring_id, const struct switch_frame *fr,
             uint64_t now);
/* Once per loop turn: wakes the publisher when frames were pushed. */
void fed_turn(struct fed *f, uint32_t w);
/* The incoming ring's doorbell, to keep a read armed on. */
int fed_bell_fd(struct fed *f, uint32_t w);
/* Drains the incoming ring: frames, lease answers and takeovers. */
void fed_drain(struct fed *f, uint32_t w, const struct fed_drain_ops *ops, void *ctx, uint64_t now);

/* Cluster leases, worker w's side. fed_lease_claim asks for the lease of
 * mac in room `room` (candidate: the local pool's address); the answer
 * comes through fed_drain with `token`. 0, -ENOTSUP (no cluster leases),
 * -ENOBUFS (queue full).
 * fed_lease_release: the MAC's session or lease ended here. */
int fed_lease_claim(struct fed *f, uint32_t w, uint64_t token, const char *room,
                    const uint8_t mac[6], uint32_t candidate);
void fed_lease_release(struct fed *f, uint32_t w, const char *room, const uint8_t mac[6],
                       uint32_t ip);
/* Lease thread: started by fed_start when p->max_live (internal). */
int fed_lease_start(struct fed *f);
void fed_lease_stop(struct fed *f);
/* The bucket's keys (out: at least FED_KEY_MAX bytes). */
#define FED_KEY_MAX (2 * FED_NAME_MAX + 32)
void fed_lease_ip_key(char *out, const char *room, uint32_t ip);
void fed_lease_mac_key(char *out, const char *room, const uint8_t mac[6]);
/* Pushes into every worker's incoming ring (flags FED_IN_*), under lock. */
void fed_push_all(struct fed *f, uint32_t flags, const void *data, size_t len);
void fed_push_one(struct fed *f, uint32_t w, uint32_t flags, const void *data, size_t len);

/* A worker's table of remote MACs (fw->macs, FED_MACS entries; its thread
 * only). fed_mac_learn records that relay id (n bytes) sent a frame of
 * room ring_id with source mac at `now`; true when the MAC is new or moved
 * to another relay. fed_mac_find gives the entry of (ring_id, mac), or NULL
 * when there is none or it is older than aging_ns (0: never too old); a
 * too old entry is forgotten and counted in macs_expired. */
bool fed_mac_learn(struct fed_worker *fw, uint32_t ring_id, const uint8_t mac[6], const uint8_t *id,
                   uint8_t n, uint64_t now);
const struct fed_mac *fed_mac_find(struct fed_worker *fw, uint64_t aging_ns, uint32_t ring_id,
                                   const uint8_t mac[6], uint64_t now);

void fed_counters_read(struct fed *f, struct fed_counters *out);
extern const struct counter_table fed_counter_table;

#endif
