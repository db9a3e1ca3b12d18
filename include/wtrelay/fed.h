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

/* The process's counters, as /metrics and the exit log read them (a
 * snapshot of the atomics below, fed_counters_read). */
struct fed_counters {
  uint64_t frames_out, frames_in;
  uint64_t bytes_out, bytes_in;
  uint64_t frames_directed;  /* out: on a .to.<relay> subject */
  uint64_t drop_down;        /* out: NATS not connected */
  uint64_t drop_ring_full;   /* out: the worker's ring to the publisher full */
  uint64_t drop_too_big;     /* out: larger than a ring slot */
  uint64_t drop_publish;     /* out: libnats refused the publish */
  uint64_t drop_in_full;     /* in: a worker's incoming ring full */
  uint64_t drop_in_bad;      /* in: malformed payload */
  uint64_t drop_in_no_room;  /* in: the worker had no copy of the room any more */
  uint64_t drop_in_switch;   /* in: the switch refused it (runt, pinned source) */
  uint64_t own_ignored;      /* in: carrying this relay's id */
  uint64_t macs_learned;     /* remote MACs learned or moved to another relay */
  uint64_t macs_expired;     /* remote MACs older than the aging time at a lookup */
  uint64_t reconnects;       /* NATS reconnections */
  uint64_t disconnects;      /* NATS connection losses */
  uint64_t connected;        /* gauge: 1 when connected to NATS */
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
};

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
/* Drains the incoming ring: input(ctx, ring_id, frame, len) switches one
 * frame (relay_fed_input's result: -ENOENT no copy). */
void fed_drain(struct fed *f, uint32_t w,
               int (*input)(void *ctx, uint32_t ring_id, const uint8_t *frame, size_t len),
               void *ctx, uint64_t now);

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
