/*
 * relay: the bavy protocol's peers and rooms (virtual LANs).
 *
 * Owns: one peer per WebTransport session (registration, MAC, IP, liveness),
 * rooms chosen by the CONNECT :path (each with its own address pool), the
 * control messages (Register/Assigned, Heartbeat/HeartbeatAck, Disconnect,
 * Error), the registration and peer timeouts, and the frame path of the
 * bavy protocol: 0x01 frames and 0x02 chunks in (reassembled in a shared
 * chunk pool), port security (a session sends only from its registered MAC
 * unless --allow-any-src-mac), each registered session attached to the
 * switch as a port of its room's domain, and frames out of that port as one
 * 0x01 datagram when they fit the session's current maximum datagram
 * payload, else as chunks with chunk ids of that destination session.
 * Address pools remember MAC -> IP beyond a room's life through the lease
 * table (lease.c): a new room's pool is seeded from the leases of its
 * name, and every acquire and release of a pool updates them.
 * Takeover: a Register for a MAC another live session of the room holds
 * (the real client reconnects after a network change without closing the
 * old connection, and never retries a refused Register) probes the holder
 * with a HeartbeatAck sent with an id; if the holder's QUIC stack
 * acknowledges it within clamp(3 PTO, 300 ms, 2 s) the newcomer gets the
 * Error as before, else the old session is closed and the newcomer gets
 * the MAC, its address and its switch port; the NAT's flows are keyed by
 * room and address, so they carry on. Only the Register waits.
 * With several workers the holder may sit on another worker: the pool
 * says the MAC is live, no local session holds it, so the newcomer asks
 * the other workers (struct relay_remote_ops) and the holder's worker
 * runs the same probe there and answers.
 * LAN guards (languard.c): Register of a reserved MAC (group bit, zero,
 * the gateway's) gets an Error; every frame a session sends passes the
 * guard before the switch sees it (ARP and IPv4 sources must be the
 * session's address, or with --allow-any-src-mac a DHCP lease made through
 * the session's port; VLAN tags only with --allow-any-src-mac), drops
 * counted per verdict. The guard sits here, at the session side of the
 * port, because only the relay knows a session's MAC, address and leases;
 * the switch stays an L2 bridge that knows nothing of sessions.
 * Storm control, the receiving side: a frame the switch flooded (struct
 * switch_frame.flood) is sent with low priority, so it may take at most
 * half of the receiver's datagram queue and unicast keeps the rest.
 * Per-client shares (the client is the key of the session's address at
 * CONNECT: an IPv4 address or an IPv6 /64): a room exists, and counts
 * toward --max-rooms and its creator's --max-rooms-per-client, only while
 * a session is registered in it; it is made by the first Register and
 * dropped with the last registered session. A CONNECT holds no room: one to
 * a name that is no room is only checked (the client's rooms alive plus its
 * distinct names waiting for a Register below its share, a creation token
 * at hand, a free room slot) and the checks are made again when its
 * Register makes the room, which takes a token (--room-rate, --room-burst;
 * a GCRA per client in a table of --max-sessions entries that holds a
 * client only while it is below a full burst). These counts are the
 * process's, in the room directory (roomdir.h), whatever the number of
 * workers: a room another worker made is joined without the creation
 * checks. A client has at most
 * --max-client-sessions-per-room sessions per room name, registered or not,
 * and holds at most --max-client-addrs-per-room addresses of a room's pool
 * (ippool.h: its own sticky leases are recycled first). Refusals: 429 at
 * CONNECT for a client over its share or rate, 503 when the relay is full,
 * an Error at Register; each counted by reason, logged rate-limited.
 * Talks to: h3 below through struct h3_app_ops (sends with
 * h3_session_send), the switch beside it through its port interface.
 * Never: touches QUIC or HTTP/3 state directly.
 */
#ifndef WTRELAY_RELAY_H
#define WTRELAY_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "wtrelay/auth.h"
#include "wtrelay/capture.h"
#include "wtrelay/chunk.h"
#include "wtrelay/config.h"
#include "wtrelay/counter.h"
#include "wtrelay/gateway.h"
#include "wtrelay/h3.h"
#include "wtrelay/hist.h"
#include "wtrelay/ippool.h"
#include "wtrelay/languard.h"
#include "wtrelay/lease.h"
#include "wtrelay/roomdir.h"
#include "wtrelay/session.h"
#include "wtrelay/switch.h"
#include "wtrelay/timer.h"

#define RELAY_NO_ROOM UINT32_MAX

/* An uplink port of a room copy: the room on worker `to` (or, for the
 * federation uplink, on the other relays: `to` is RELAY_FED_UPLINK). */
struct relay_uplink {
  struct relay *r;
  uint32_t to;   /* the worker */
  uint32_t room; /* the local room slot */
  uint32_t port; /* the switch port */
};

#define RELAY_FED_UPLINK UINT32_MAX

struct relay_room {
  bool used;
  char name[256];
  uint32_t npeers;  /* registered sessions */
  uint32_t gid;     /* the room in the process's directory (its pool, its id across workers) */
  uint32_t ring_id; /* gid with its generation: the id frames carry between workers */
  struct relay_uplink fed; /* the federation uplink (relay_set_fed); port SWITCH_NO_PORT = none */
  struct capture_room cap; /* packet capture's view of this copy (relay_set_capture) */
};

/* Sends a frame of room `gid` (process-wide id) from this worker's copy
 * toward the copy on worker `to` (one copy into the worker-pair ring). */
typedef int (*relay_uplink_send_fn)(void *ctx, uint32_t to, uint32_t gid,
                                    const struct switch_frame *f);

/* Federation (other relays, e.g. over NATS: src/fed). When set, every
 * room copy gets one more uplink port, "the same room on the other relays":
 * open is called when the copy is made (after its ports), close when it is
 * dropped, send for each frame the switch hands that port (on the worker's
 * thread; it must not block: a full queue drops and counts). The relay
 * knows no NATS: the process layer carries the frames. */
struct relay_fed_ops {
  void (*open)(void *ctx, uint32_t ring_id, const char *name);
  void (*close)(void *ctx, uint32_t ring_id);
  int (*send)(void *ctx, uint32_t ring_id, const struct switch_frame *f);
  /* Cluster leases (may be NULL). lease_claim asks for the address of mac
   * in room `name`, the local pool's candidate held meanwhile; 0 when
   * asked (the answer comes to relay_fed_lease with `token`), < 0 when
   * there is no one to ask (the local address is used at once).
   * lease_release: the MAC's local lease ended (any worker's release). */
  int (*lease_claim)(void *ctx, uint64_t token, const char *name, const uint8_t mac[6],
                     uint32_t candidate);
  void (*lease_release)(void *ctx, const char *name, const uint8_t mac[6], uint32_t ip);
};

/* The cluster's answer to a lease claim (values of enum fed_lease_status). */
enum relay_lease_answer {
  RELAY_LEASE_OK = 0,          /* ip is the MAC's */
  RELAY_LEASE_UNAVAILABLE = 1, /* keep the local candidate */
  RELAY_LEASE_EXHAUSTED = 2,   /* no address left in the cluster */
};

/* Takeover across workers. A Register whose MAC the room's pool says is
 * live (-EBUSY) while no session of this worker holds it waits (the same
 * deadline timer as a local takeover, TAKEOVER_REMOTE_NS) and asks every
 * other worker through `ask`; a worker whose session holds the MAC probes
 * it like a local holder and answers through `answer`: RELEASED after
 * unregistering and closing a holder that did not acknowledge (or was
 * closing already), ALIVE when it acknowledged (or another takeover of it
 * is being decided), NOT_HERE without such a session. The relay knows no
 * thread or ring: the process layer carries the messages and calls
 * relay_takeover_ask / relay_takeover_verdict on the receiving worker. */
enum relay_verdict {
  RELAY_VERDICT_RELEASED = 1,
  RELAY_VERDICT_ALIVE = 2,
  RELAY_VERDICT_NOT_HERE = 3,
};
struct relay_remote_ops {
  /* Asks worker `to` about `mac` in room `gid` (ring id); token names the
   * waiting session. 0, or a negative errno when the message was dropped
   * (counted by the relay). */
  int (*ask)(void *ctx, uint32_t to, uint32_t gid, const uint8_t mac[6], uint64_t token);
  /* Answers worker `to`'s ask `token`. 0 or a negative errno (dropped). */
  int (*answer)(void *ctx, uint32_t to, uint64_t token, enum relay_verdict v);
};

/* With --allow-any-src-mac: an address the gateway's DHCP leased to a MAC
 * that asked through this session's port (the LAN guard lets exactly
 * these speak besides the session's own address). */
struct relay_binding {
  uint8_t mac[6];
  uint32_t ip; /* host order, 0 = unused */
};
#define RELAY_PEER_BINDINGS 8
#define RELAY_PEER_CLAIMS6 4 /* IPv6 addresses a session may claim by DAD (privacy addresses) */

struct relay_peer {
  bool used;
  bool registered;
  bool closing;
  uint32_t id;
  uint32_t room; /* while registered, else RELAY_NO_ROOM */
  bool new_room; /* unregistered, and its name was no room (a creation in waiting) */
  uint8_t mac[6];
  uint32_t ip; /* host order */
  uint64_t created_ns, last_seen_ns;
  bool assigned; /* an Assigned was sent (register_hist counted it) */
  uint32_t errors_sent;
  struct session *sess;
  struct relay *relay;
  uint32_t port;          /* switch port while registered */
  uint16_t next_chunk_id; /* chunk ids toward this session */
  uint64_t frames_in, frames_out, bytes_in, bytes_out;
  struct chunk_owner chunks;
  /* Takeover of a MAC held by another session of the room (a client that
   * reconnected while its old connection looks alive): the holder is
   * probed; the newcomer's Register waits for the verdict. */
  uint64_t probe_id;     /* holder: the probe datagram in flight, 0 = none */
  uint32_t probe_for;    /* holder: the waiting newcomer's index + 1 */
  uint32_t waiting_on;   /* newcomer: the holder's index + 1 */
  uint32_t probes;       /* newcomer: probes sent for this verdict */
  uint8_t want_mac[6];   /* newcomer: the MAC asked for */
  uint64_t probe_t0;     /* newcomer: when the first probe was sent */
  struct timer takeover; /* newcomer: the verdict's deadline; holder probed for
                          * another worker: the probe's deadline */
  /* Takeover across workers (relay_set_remote): the newcomer asks the
   * other workers; the holder's worker probes the holder. */
  uint64_t remote_token;   /* newcomer: the asks' token while it waits, 0 = none */
  uint32_t remote_pending; /* newcomer: asks not answered yet */
  uint32_t remote_room;    /* newcomer: its room copy, held while it waits */
  bool remote_asked;       /* newcomer: its Register asked already (no second round) */
  uint64_t remote_for;     /* holder: the asker's token while probed for it, 0 = none */
  uint32_t remote_from;    /* holder: the asking worker */
  /* Cluster lease (relay_fed_ops.lease_claim): the Register waits for the
   * address the cluster gives the MAC, the local candidate held. */
  uint64_t lease_token; /* newcomer: 0 = not waiting */
  uint32_t lease_room, lease_ip;
  /* access control: what the session's token grants */
  bool mac_bound; /* the token names the only MAC it may register */
  uint8_t token_mac[6];
  uint32_t auth_subject; /* auth subject slot + 1, 0 = none */
  uint64_t client;       /* io_sockaddr_client_key of the session's address at CONNECT */
  struct relay_binding bindings[RELAY_PEER_BINDINGS]; /* DHCP leases made through this port */
  /* IPv6 addresses claimed by duplicate address detection that no other
   * session of the room on this worker held: sources the LAN guard lets
   * through besides the MAC's EUI-64 ones (oldest replaced) */
  uint8_t claims6[RELAY_PEER_CLAIMS6][16];
  uint8_t nclaims6, next_claim6;
  uint8_t next_binding; /* the slot replaced when all are used */
};

struct relay_counters {
  uint64_t sessions, sessions_refused_rooms, sessions_refused_full;
  uint64_t registers, assigned, register_refused_busy, register_refused_pool;
  uint64_t register_refused_other_mac, heartbeats, disconnects;
  uint64_t ctrl_bad_json, ctrl_bad_mac, ctrl_oversized, ctrl_unknown_type;
  uint64_t dgram_empty, dgram_unknown_type, frames_unregistered;
  uint64_t timeouts_register, timeouts_peer, replies_failed;
  /* frame path */
  uint64_t frames_in, frame_bytes_in, frames_out, frame_bytes_out, frames_out_chunked;
  uint64_t chunks_out, frames_spoofed, frames_runt, frames_oversized, frames_out_failed;
  uint64_t frames_out_too_big, chunks_bad_header, ports_full;
  /* takeover */
  uint64_t takeover_probes, takeovers, takeover_refused_alive;
  /* takeover across workers: the asker's side (Registers that asked, and
   * how their wait ended), the holder's (asks received), and control
   * messages the worker-pair ring refused (full) */
  uint64_t takeover_remote_asks, takeover_remote_released, takeover_remote_alive;
  uint64_t takeover_remote_not_here, takeover_remote_timeouts, takeover_remote_unknown;
  uint64_t takeover_remote_asks_in, takeover_remote_ring_drops;
  /* cluster leases: Registers that waited, answers that came too late or
   * for nobody, waits that timed out (local address kept), addresses the
   * local pool had given another MAC, takeovers told by another relay */
  uint64_t lease_waits, lease_unknown, lease_timeouts, lease_conflicts, takeovers_fed;
  /* LAN guards (languard.c) and storm control */
  uint64_t guard_drops[LANGUARD_NVERDICTS]; /* frames dropped, by verdict */
  uint64_t register_refused_reserved;       /* Register of a reserved MAC */
  uint64_t bindings_added, bindings_replaced;
  /* IPv6 DAD claims recorded / held by another session / the room
   * directory's claim table full */
  uint64_t claims6_added, claims6_refused, claims6_full;
  uint64_t flood_out_dropped; /* flood copies a receiver's queue refused (low priority) */
  /* per-client shares: at CONNECT (429), at Register (Error) */
  uint64_t sessions_refused_client_rooms, sessions_refused_client_rate;
  uint64_t sessions_refused_client_sessions;
  uint64_t register_refused_rooms, register_refused_client_rooms, register_refused_client_rate;
  uint64_t register_refused_share; /* the client's addresses in the pool are all live */
  uint64_t share_recycled;         /* a client at its share got back its own oldest lease */
  uint64_t clients_evicted;        /* rate table full: the client owing least forgotten */
  /* rooms across workers: frames an uplink did not copy into the ring toward a worker that
   * has no copy of the room (roomdir_copy_has) */
  uint64_t uplink_skipped;
};

struct relay {
  const struct config *cfg;
  struct timer_heap *timers;
  uint64_t *now; /* the worker's clock of this turn */
  struct relay_room *rooms;
  uint32_t max_rooms;
  struct relay_peer *peers;
  uint32_t max_peers;
  uint32_t npeers;
  struct timer sweep;
  struct log_ratelimit rl;
  struct log_ratelimit rl_summary; /* one line per session end */
  struct log_ratelimit rl_open;    /* one line per session opened */
  struct relay_counters ctr;
  /* session opened to its first Assigned; session opened to its end */
  struct hist register_hist, session_hist;
  struct switch_table sw;
  struct chunk_pool chunks;
  struct timer age_timer; /* MAC aging and chunk expiry, every second */
  struct gateway *gw;     /* the rooms' router port; NULL = none (tests) */
  uint8_t gateway[4], netmask[4], dns[4];
  uint32_t pool_first, pool_last;
  struct lease_table leases;    /* sticky addresses (lease.c), shared by every room */
  uint64_t probe_seq;           /* ids of takeover probes */
  struct auth *auth;            /* tokens and origins (borrowed); NULL = open to all */
  struct languard_params guard; /* the rooms' reserved addresses for the LAN guards */
  /* per-client shares */
  uint32_t nrooms; /* room copies here (each with a registered session) */
  /* the bounds below are counted process-wide in the room directory
   * (roomdir.h: rooms and their creators, the creation-rate table, the
   * sessions per client and room name) */
  struct roomdir_shares shares;
  uint32_t rooms_per_client, sessions_per_room_client, addrs_per_client, room_burst;
  uint64_t room_interval_ns; /* 1 s / --room-rate */
  struct log_ratelimit rl_share;
  /* the process's rooms: own_dir when alone, else the server's */
  struct roomdir own_dir;
  struct roomdir *dir;
  /* room copies on other workers (relay_set_uplinks): uplinks[room * nworkers + worker],
   * gid_local[gid] = the local room slot of a process-wide room, or RELAY_NO_ROOM */
  uint32_t self, nworkers;
  struct relay_uplink *uplinks;
  uint32_t *gid_local;
  relay_uplink_send_fn uplink_send;
  void *uplink_ctx;
  /* federation (relay_set_fed); NULL = this relay alone */
  const struct relay_fed_ops *fed;
  void *fed_ctx;
  /* takeover across workers (relay_set_remote); NULL = this worker alone */
  const struct relay_remote_ops *remote;
  void *remote_ctx;
  uint32_t remote_seq; /* the high half of the asks' tokens */
  /* packet capture (relay_set_capture); NULL = none */
  struct capture_hub *cap;
};

/* The address pool of local room `room` (the directory's; lock it with
 * roomdir_lock(r->dir) when other workers run). */
struct ippool *relay_room_pool(struct relay *r, uint32_t room);
/* Shares the process's room directory (pools, leases, per-client shares)
 * with other workers' relays; before the first session. The first relay
 * to join a directory lends it its lease table (reads --lease-file into
 * it now, writes it through that relay's ring, reads it under the
 * directory's lock) and sets its shares; the others drop their own
 * tables. A relay that never joins a directory reads no lease file.
 * 0 or -ENOMEM. */
int relay_set_roomdir(struct relay *r, struct roomdir *d);
/* This relay is worker `self` of n: every room copy gets an uplink port
 * toward each other worker, whose frames go to send; its peers' ids (the
 * log's peer=) become self * max_peers + slot, unique in the process.
 * Before the first session. 0 or -ENOMEM. */
int relay_set_uplinks(struct relay *r, uint32_t self, uint32_t n, relay_uplink_send_fn send,
                      void *ctx);
/* A frame of room gid (its ring id: slot and generation) from worker `from`'s copy: switched in the
 * local copy from its uplink port toward `from`. The number of ports it reached, -ENOENT when this
 * worker has no copy of the room, or switch_input's error. */
int relay_uplink_input(struct relay *r, uint32_t from, uint32_t gid, const uint8_t *frame,
                       size_t len);

/* Federation (see struct relay_fed_ops): before the first room. */
void relay_set_fed(struct relay *r, const struct relay_fed_ops *ops, void *ctx);
/* Taps the frames entering this worker's room copies for packet capture
 * (capture.h; borrowed, shared by every worker): from its sessions after
 * the LAN guards, from its gateway (set r->gw first), and from the
 * federation uplink on the lowest worker with a copy of the room, never
 * from a worker uplink, so the process records each frame once. Before
 * the first session. */
void relay_set_capture(struct relay *r, struct capture_hub *hub);
/* A frame of room gid (ring id) from another relay: switched in the local
 * copy from its federation uplink. The number of ports it reached, -ENOENT
 * when this worker has no copy of the room (or no federation), or
 * switch_input's error. */
int relay_fed_input(struct relay *r, uint32_t gid, const uint8_t *frame, size_t len);
/* The cluster's answer to lease_claim `token` (enum relay_lease_answer). */
void relay_fed_lease(struct relay *r, uint64_t token, int status, uint32_t ip);
/* Another relay took over the MAC of room `name` (conflict: the MAC's
 * address is another VM's, given while NATS was unreachable): the local
 * session that holds it (if any) is ended. */
void relay_fed_takeover(struct relay *r, const char *name, const uint8_t mac[6], bool conflict);

/* Takeover across workers (see struct relay_remote_ops); after
 * relay_set_uplinks (the asks go to its other workers). */
void relay_set_remote(struct relay *r, const struct relay_remote_ops *ops, void *ctx);
/* Worker `from` asks whether a session here holds `mac` in room `gid`
 * (ring id): the answer goes back through ops->answer, at once or after
 * the probe. */
void relay_takeover_ask(struct relay *r, uint32_t from, uint32_t gid, const uint8_t mac[6],
                        uint64_t token);
/* Worker `from`'s answer to this relay's ask `token`; an unknown or stale
 * token (the newcomer went away or was decided) is counted and ignored. */
void relay_takeover_verdict(struct relay *r, uint32_t from, uint64_t token, enum relay_verdict v);

/* Address leases for the gateway's DHCP server (ctx = the relay). */
extern const struct gateway_addr_ops relay_addr_ops;
/* Attaches the gateway to every room from now on (rooms made later get a
 * gateway port when they are made). */
void relay_set_gateway(struct relay *r, struct gateway *gw);
/* Checks every CONNECT with auth (borrowed) from now on: tokens, origins. */
void relay_set_auth(struct relay *r, struct auth *auth);
/* Lets the lease file be written through io's ring (else synchronously). */
void relay_set_io(struct relay *r, struct io *io);

extern const struct h3_app_ops relay_h3_ops;

int relay_init(struct relay *r, const struct config *cfg, struct timer_heap *timers, uint64_t *now);
void relay_fini(struct relay *r);
/* The relay's side of a session of any transport (wtrelay/session.h);
 * relay_h3_ops calls these for WebTransport sessions, the WebSocket
 * listener for its own. A request of s by `client` (0 = unknown: no
 * per-client shares): the HTTP status to answer; 200 made s->app_data the
 * session's peer. */
int relay_session_open(struct relay *r, struct session *s, uint64_t client);
/* One datagram payload of s (type byte + body), borrowed for the call. */
void relay_session_datagram(struct relay *r, struct session *s, const uint8_t *data, size_t len);
/* s ended (called once; the relay drops its references to s). */
void relay_session_closed(struct relay *r, struct session *s, uint32_t code, const char *reason);
/* A send with a nonzero id was acknowledged by the peer (acked) or lost. */
void relay_session_datagram_ack(struct relay *r, struct session *s, uint64_t id, bool acked);
/* Rooms alive that `client` made (exposed for tests). */
uint32_t relay_client_rooms(const struct relay *r, uint64_t client);
/* Handles one datagram payload from a peer (exposed for tests/fuzzing). */
void relay_on_datagram(struct relay *r, struct relay_peer *p, const uint8_t *data, size_t len);
/* Names every field of struct relay_counters for /metrics and the exit
 * log (wtrelay/counter.h). */
extern const struct counter_table relay_counter_table;

#endif
