/*
 * relay: bavy peers, rooms and control messages. See include/wtrelay/relay.h.
 *
 * Peers and rooms are fixed tables sized from the config. A room is made by
 * the first Register of a session that names it and dropped with its last
 * registered session (a CONNECT holds no room: see relay.h for the
 * per-client shares checked at CONNECT and again at Register); its
 * address pool remembers MAC -> IP while it lives, and the lease table
 * (lease.c) for --lease-time after it emptied and across restarts (seeded
 * into the pool when the room is made again), so a VM that reconnects gets
 * its address back. Liveness is swept every --heartbeat-interval:
 * unregistered sessions older than --register-timeout and registered peers
 * silent for --peer-timeout are closed.
 */
#include "wtrelay/relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wtrelay/bavy.h"
#include "wtrelay/container_of.h"
#include "wtrelay/counter.h"
#include "wtrelay/iov.h"
#include "wtrelay/log.h"
#include "wtrelay/net6.h"
#include "wtrelay/timeunit.h"

#define RELAY_MAX_ERRORS_SENT 16

static void ip_bytes(uint32_t ip, uint8_t out[4])
{
  out[0] = (uint8_t)(ip >> 24);
  out[1] = (uint8_t)(ip >> 16);
  out[2] = (uint8_t)(ip >> 8);
  out[3] = (uint8_t)ip;
}

static void sweep(struct timer *t, uint64_t now);
static void age(struct timer *t, uint64_t now);

static uint32_t min_u32(uint64_t a, uint64_t b)
{
  return (uint32_t)(a < b ? a : b);
}

int relay_init(struct relay *r, const struct config *cfg, struct timer_heap *timers, uint64_t *now)
{
  memset(r, 0, sizeof(*r));
  r->cfg = cfg;
  r->timers = timers;
  r->now = now;
  r->max_rooms = cfg->max_rooms;
  r->max_peers = cfg->max_sessions;
  r->rooms = calloc(r->max_rooms, sizeof(*r->rooms));
  r->peers = calloc(r->max_peers, sizeof(*r->peers));
  if (!r->rooms || !r->peers) {
    relay_fini(r);
    return -ENOMEM;
  }
  uint32_t mask = cfg->prefix ? ~0u << (32 - cfg->prefix) : 0;
  struct switch_params sp = {
      /* sessions + a gateway per room (+ a federation uplink per room) */
      .max_ports = cfg->max_sessions + cfg->max_rooms + (cfg->nats_url[0] ? cfg->max_rooms : 0),
      .max_domains = cfg->max_rooms,
      .max_macs = min_u32(min_u32((uint64_t)cfg->max_sessions * cfg->max_macs_per_port,
                                  (uint64_t)cfg->max_rooms * cfg->max_macs_per_room),
                          1u << 22),
      .max_macs_per_domain = cfg->max_macs_per_room,
      .max_macs_per_uplink = cfg->max_macs_per_uplink,
      .max_macs_per_port = cfg->max_macs_per_port,
      .aging_ns = (uint64_t)cfg->mac_aging_s * NS_PER_S,
      .subnet = cfg->subnet,
      .netmask = mask,
      .flood_rate = cfg->flood_rate,
      .flood_burst = cfg->flood_burst,
  };
  memcpy(sp.router_mac, cfg->gateway_mac, 6);
  struct chunk_params cpar = {
      .slots = min_u32((uint64_t)cfg->max_sessions * cfg->max_reassembly, 65536),
      .per_owner = cfg->max_reassembly,
      .max_frame = cfg->max_frame_size,
      .max_age_ns = 5 * NS_PER_S,
  };
  int rc = switch_init(&r->sw, &sp);
  if (rc == 0)
    rc = chunk_pool_init(&r->chunks, &cpar);
  if (rc < 0) {
    relay_fini(r);
    return rc;
  }
  for (uint32_t i = 0; i < r->max_peers; i++) {
    r->peers[i].id = i;
    r->peers[i].room = RELAY_NO_ROOM;
  }
  r->guard.gateway_ip = cfg->subnet + 2;
  r->guard.dns_ip = cfg->subnet + 3;
  memcpy(r->guard.gateway_mac, cfg->gateway_mac, 6);
  ip_bytes(cfg->subnet + 2, r->gateway);
  ip_bytes(mask, r->netmask);
  ip_bytes(cfg->dns ? cfg->dns : cfg->subnet + 3, r->dns);
  /* .10 up to the last address before the broadcast, from the top down */
  config_pool_range(cfg, &r->pool_first, &r->pool_last);
  r->rooms_per_client = cfg->max_rooms_per_client ? cfg->max_rooms_per_client
                        : cfg->max_rooms / 16     ? cfg->max_rooms / 16
                                                  : 1;
  r->sessions_per_room_client = cfg->max_client_sessions_per_room; /* 0 = no cap */
  r->room_burst = cfg->room_burst ? cfg->room_burst : 1;
  r->room_interval_ns = NS_PER_S / (cfg->room_rate ? cfg->room_rate : 1);
  /* the process's shares, counted in the room directory: a client in the
   * rate table owes a creation, so one entry per session is plenty (a
   * full table forgets the client owing least); a (client, room name)
   * count per session at most */
  r->shares = (struct roomdir_shares){
      .rooms_per_client = r->rooms_per_client,
      .room_burst = r->room_burst,
      .room_interval_ns = r->room_interval_ns,
      .max_clients = cfg->max_sessions,
      .max_sessions = cfg->max_sessions,
      .max_claims6 = (uint32_t)min_u32((uint64_t)cfg->max_sessions * RELAY_PEER_CLAIMS6, 1u << 30)};
  uint32_t fifth = (r->pool_last - r->pool_first + 1) / 5;
  r->addrs_per_client = cfg->max_client_addrs_per_room ? cfg->max_client_addrs_per_room
                        : fifth                        ? fifth
                                                       : 1;
  log_ratelimit_init(&r->rl_share, NS_PER_S, 10);
  log_ratelimit_init(&r->rl, NS_PER_S, 10);
  log_ratelimit_init(&r->rl_summary, NS_PER_S, 100);
  log_ratelimit_init(&r->rl_open, NS_PER_S, 100);
  timer_init(&r->sweep, sweep);
  timer_arm(r->timers, &r->sweep, *r->now + (uint64_t)cfg->heartbeat_interval_s * NS_PER_S);
  timer_init(&r->age_timer, age);
  timer_arm(r->timers, &r->age_timer, *r->now + NS_PER_S);
  uint64_t pool_size = r->pool_last - r->pool_first + 1;
  struct lease_params lp = {
      .max_leases =
          cfg->max_leases ? cfg->max_leases : min_u32((uint64_t)cfg->max_rooms * pool_size, 65536),
      .max_rooms = min_u32((uint64_t)cfg->max_rooms * 2, 131072),
      .lease_ns = (uint64_t)cfg->lease_time_s * NS_PER_S,
      .pool_first = r->pool_first,
      .pool_last = r->pool_last,
      /* federated (--nats), the leases live in NATS (fed.h) */
      .path = cfg->nats_url[0] ? "" : cfg->lease_file,
  };
  if ((rc = lease_init(&r->leases, &lp, r->timers, r->now)) < 0) {
    relay_fini(r);
    return rc;
  }
  /* the lease file is read by the relay that lends its table to the
   * process's directory (relay_set_roomdir): once, whatever the workers */
  r->gid_local = malloc(sizeof(*r->gid_local) * (r->max_rooms ? r->max_rooms : 1));
  if (!r->gid_local || (rc = roomdir_init(&r->own_dir, cfg->max_rooms)) < 0 ||
      (rc = roomdir_set_shares(&r->own_dir, &r->shares)) < 0) {
    relay_fini(r);
    return r->gid_local ? rc : -ENOMEM;
  }
  for (uint32_t i = 0; i < r->max_rooms; i++)
    r->gid_local[i] = RELAY_NO_ROOM;
  r->own_dir.leases = &r->leases;
  r->dir = &r->own_dir;
  r->nworkers = 1;
  return 0;
}

int relay_set_roomdir(struct relay *r, struct roomdir *d)
{
  int rc = roomdir_set_shares(d, &r->shares);
  if (rc < 0)
    return rc;
  if (!d->leases) {
    /* the lender: its writer (on this relay's ring) reads the table under
     * the directory's lock, and other workers only mark it changed */
    d->leases = &r->leases;
    lease_load_file(&r->leases);
    lease_set_lock(&r->leases, &d->lock);
  } else {
    /* another relay's table is the process's: this one's is dropped for
     * an empty one that never writes (the file is the lender's) */
    struct lease_params lp = r->leases.p;
    lp.max_leases = lp.max_rooms = 1;
    lp.path = NULL;
    r->leases.path[0] = '\0'; /* never written: the file is the lender's */
    lease_fini(&r->leases);
    if ((rc = lease_init(&r->leases, &lp, r->timers, r->now)) < 0)
      return rc;
  }
  r->dir = d;
  return 0;
}

int relay_set_uplinks(struct relay *r, uint32_t self, uint32_t n, relay_uplink_send_fn send,
                      void *ctx)
{
  free(r->uplinks);
  r->uplinks = calloc((size_t)r->max_rooms * n, sizeof(*r->uplinks));
  if (!r->uplinks)
    return -ENOMEM;
  r->self = self;
  r->nworkers = n;
  r->uplink_send = send;
  r->uplink_ctx = ctx;
  /* Peer ids name a session in the log lines: one numbering for the
   * process (worker self's slots after every lower worker's), so two
   * sessions of different workers never share one. */
  for (uint32_t i = 0; i < r->max_peers; i++)
    r->peers[i].id = self * r->max_peers + i;
  return 0;
}

void relay_fini(struct relay *r)
{
  if (r->rooms && r->dir) {
    roomdir_lock(r->dir);
    for (uint32_t i = 0; i < r->max_rooms; i++)
      if (r->rooms[i].used) {
        roomdir_copy_set(r->dir, r->rooms[i].gid, r->self, false);
        roomdir_leave(r->dir, r->rooms[i].gid, r->now ? *r->now : 0);
      }
    roomdir_unlock(r->dir);
  }
  roomdir_fini(&r->own_dir);
  free(r->uplinks);
  free(r->gid_local);
  r->uplinks = NULL;
  r->gid_local = NULL;
  lease_fini(&r->leases);
  if (r->timers) {
    timer_disarm(r->timers, &r->sweep);
    timer_disarm(r->timers, &r->age_timer);
  }
  switch_fini(&r->sw);
  chunk_pool_fini(&r->chunks);
  free(r->rooms);
  free(r->peers);
  r->rooms = NULL;
  r->peers = NULL;
}

/* Every acquire and release of a room's pool updates the lease table. */
/* The observer is the relay whose operation changes the pool (set by
 * pool_lock), so its counters count its own operations; the lease table
 * is the directory's. Called with the directory locked. */
static void pool_event(void *ctx, struct ippool *p, const struct ippool_event *ev, uint64_t now)
{
  struct relay *r = ctx;
  struct lease_table *lt = r->dir->leases;
  const char *name = container_of(p, struct roomdir_room, pool)->name;
  if (ev->type == IPPOOL_RELEASED) {
    lease_released(lt, name, ev->mac, ev->ip, now);
    if (r->fed && r->fed->lease_release)
      r->fed->lease_release(r->fed_ctx, name, ev->mac, ev->ip);
    return;
  }
  if (ev->share_recycled)
    r->ctr.share_recycled++; /* the client's own lease: no reclaim of someone else's */
  else if (ev->reclaimed)
    lease_reclaimed(lt, name, ev->ip, ev->old_mac, ev->reclaimed_expired, now);
  lease_acquired_for(lt, name, ev->mac, ev->ip, ev->client, now);
}

/* The shared pool of local room `room`, with the directory locked (until
 * pool_unlock) and r as its observer for this operation. */
static struct ippool *pool_lock(struct relay *r, uint32_t room)
{
  roomdir_lock(r->dir);
  struct ippool *p = roomdir_pool(r->dir, r->rooms[room].gid);
  ippool_observe(p, pool_event, r);
  return p;
}

static void pool_unlock(struct relay *r)
{
  roomdir_unlock(r->dir);
}

struct ippool *relay_room_pool(struct relay *r, uint32_t room)
{
  return roomdir_pool(r->dir, r->rooms[room].gid);
}

/* ---- per-client shares: rooms and their creation rate ---- */

/* The room a peer names: its room while registered, else its CONNECT's
 * :path ("/" when empty). */
static const char *peer_name(const struct relay *r, const struct relay_peer *p)
{
  if (p->room != RELAY_NO_ROOM)
    return r->rooms[p->room].name;
  if (p->sess)
    return p->sess->path[0] ? p->sess->path : "/";
  return "?";
}

static uint32_t room_find(const struct relay *r, const char *name)
{
  for (uint32_t i = 0; i < r->max_rooms; i++)
    if (r->rooms[i].used && strcmp(r->rooms[i].name, name) == 0)
      return i;
  return RELAY_NO_ROOM;
}

uint32_t relay_client_rooms(const struct relay *r, uint64_t client)
{
  roomdir_lock(r->dir);
  uint32_t n = roomdir_client_rooms(r->dir, client);
  roomdir_unlock(r->dir);
  return n;
}

/* ---- uplinks: the room's copies on other workers ---- */

static int uplink_deliver(void *ctx, const struct switch_frame *f)
{
  struct relay_uplink *u = ctx;
  struct relay *r = u->r;
  if (!roomdir_copy_has(r->dir, r->rooms[u->room].gid, u->to)) {
    r->ctr.uplink_skipped++; /* no copy there: no ring copy, no no_room drop */
    return SWITCH_DELIVER_SKIPPED;
  }
  return r->uplink_send(r->uplink_ctx, u->to, r->rooms[u->room].ring_id, f);
}

static const struct switch_port_ops uplink_port_ops = {.deliver = uplink_deliver};

/* One uplink port per other worker in local room `room`. */
static int uplinks_attach(struct relay *r, uint32_t room)
{
  for (uint32_t j = 0; r->uplinks && j < r->nworkers; j++) {
    struct relay_uplink *u = &r->uplinks[(size_t)room * r->nworkers + j];
    u->port = SWITCH_NO_PORT;
    if (j == r->self)
      continue;
    u->r = r;
    u->to = j;
    u->room = room;
    int rc = switch_uplink_attach(&r->sw, room, &uplink_port_ops, u, &u->port);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static void uplinks_detach(struct relay *r, uint32_t room)
{
  for (uint32_t j = 0; r->uplinks && j < r->nworkers; j++) {
    struct relay_uplink *u = &r->uplinks[(size_t)room * r->nworkers + j];
    if (u->port != SWITCH_NO_PORT && j != r->self)
      switch_port_detach(&r->sw, u->port);
    u->port = SWITCH_NO_PORT;
  }
}

/* ---- the federation uplink: the room on the other relays ---- */

static int fed_deliver(void *ctx, const struct switch_frame *f)
{
  struct relay_uplink *u = ctx;
  struct relay *r = u->r;
  return r->fed->send(r->fed_ctx, r->rooms[u->room].ring_id, f);
}

static const struct switch_port_ops fed_port_ops = {.deliver = fed_deliver};

void relay_set_fed(struct relay *r, const struct relay_fed_ops *ops, void *ctx)
{
  r->fed = ops;
  r->fed_ctx = ctx;
}

/* ---- packet capture: frames entering a room copy here (capture.h) ---- */

static void gw_tap(void *ctx, uint32_t room, const struct switch_frame *f)
{
  struct relay *r = ctx;
  struct relay_room *rm = &r->rooms[room];
  capture_tap(r->cap, &rm->cap, rm->name, f->iov, f->iovcnt, f->len);
}

void relay_set_capture(struct relay *r, struct capture_hub *hub)
{
  r->cap = hub;
  if (r->gw) {
    r->gw->tap = gw_tap;
    r->gw->tap_ctx = r;
  }
}

/* A frame from the other relays reaches every worker's copy: the lowest
 * worker with a copy records it. */
static void fed_tap(struct relay *r, uint32_t room, const struct iovec *iov, size_t len)
{
  struct relay_room *rm = &r->rooms[room];
  if (!capture_wanted(r->cap, &rm->cap))
    return;
  for (uint32_t j = 0; j < r->self; j++)
    if (roomdir_copy_has(r->dir, rm->gid, j))
      return;
  capture_tap_slow(r->cap, &rm->cap, rm->name, iov, 1, len);
}

static int fed_attach(struct relay *r, uint32_t room)
{
  struct relay_uplink *u = &r->rooms[room].fed;
  u->port = SWITCH_NO_PORT;
  if (!r->fed)
    return 0;
  u->r = r;
  u->to = RELAY_FED_UPLINK;
  u->room = room;
  return switch_uplink_attach(&r->sw, room, &fed_port_ops, u, &u->port);
}

static void fed_detach(struct relay *r, uint32_t room)
{
  struct relay_uplink *u = &r->rooms[room].fed;
  if (u->port != SWITCH_NO_PORT)
    switch_port_detach(&r->sw, u->port);
  u->port = SWITCH_NO_PORT;
}

int relay_fed_input(struct relay *r, uint32_t gid, const uint8_t *frame, size_t len)
{
  uint32_t slot = ROOMDIR_SLOT(gid);
  if (!r->fed || slot >= r->max_rooms)
    return -ENOENT;
  uint32_t room = r->gid_local[slot];
  if (room == RELAY_NO_ROOM || r->rooms[room].ring_id != gid)
    return -ENOENT;
  uint32_t port = r->rooms[room].fed.port;
  if (port == SWITCH_NO_PORT)
    return -ENOENT;
  struct iovec iov = {.iov_base = (void *)frame, .iov_len = len};
  struct switch_frame f = {.iov = &iov, .iovcnt = 1, .len = len};
  fed_tap(r, room, &iov, len);
  return switch_input(&r->sw, port, &f, *r->now);
}

int relay_uplink_input(struct relay *r, uint32_t from, uint32_t gid, const uint8_t *frame,
                       size_t len)
{
  uint32_t slot = ROOMDIR_SLOT(gid);
  if (slot >= r->max_rooms || from >= r->nworkers || from == r->self || !r->uplinks)
    return -EINVAL;
  uint32_t room = r->gid_local[slot];
  if (room == RELAY_NO_ROOM || r->rooms[room].ring_id != gid)
    return -ENOENT; /* no copy here, or the room ended and its slot was made again */
  uint32_t port = r->uplinks[(size_t)room * r->nworkers + from].port;
  if (port == SWITCH_NO_PORT)
    return -ENOENT;
  struct iovec iov = {.iov_base = (void *)frame, .iov_len = len};
  struct switch_frame f = {.iov = &iov, .iovcnt = 1, .len = len};
  return switch_input(&r->sw, port, &f, *r->now);
}

/* A copy of room `name` on this worker for a Register of `client`. The
 * directory decides (roomdir_open, under its lock): a room it holds, made
 * by a session on any worker, is joined without the creation checks; a
 * new one needs a room slot (-ENOSPC), the client below its rooms
 * (-EDQUOT) and a creation token (-EAGAIN, the token taken when made).
 * Else an error of the pool or the gateway. */
static int room_make(struct relay *r, const char *name, uint64_t client, uint32_t *out)
{
  uint32_t free_slot = RELAY_NO_ROOM;
  for (uint32_t i = 0; i < r->max_rooms && free_slot == RELAY_NO_ROOM; i++)
    if (!r->rooms[i].used)
      free_slot = i;
  if (free_slot == RELAY_NO_ROOM)
    return -ENOSPC; /* a copy per directory room at most: not reached */
  struct relay_room *room = &r->rooms[free_slot];
  memset(room, 0, sizeof(*room));
  /* 10.0.2.10 .. 10.0.2.254 by default, handed out from the top like the
   * seed; one pool for every copy of the room (the directory's) */
  struct roomdir_pool_params pp = {.first = r->pool_first,
                                   .last = r->pool_last,
                                   .lease_ns = (uint64_t)r->cfg->lease_time_s * NS_PER_S,
                                   .client_max = r->addrs_per_client};
  bool made, evicted = false;
  roomdir_lock(r->dir);
  int rc = roomdir_open(r->dir, name, client, &pp, *r->now, &room->gid, &made, &evicted);
  if (rc == 0) {
    room->ring_id = roomdir_ring_id(r->dir, room->gid);
    roomdir_copy_set(r->dir, room->gid, r->self, true);
  }
  roomdir_unlock(r->dir);
  if (evicted)
    r->ctr.clients_evicted++;
  if (rc < 0)
    return rc;
  room->fed.port = SWITCH_NO_PORT;
  if ((rc = uplinks_attach(r, free_slot)) < 0 || (rc = fed_attach(r, free_slot)) < 0 ||
      (r->gw && (rc = gateway_room_attach(r->gw, free_slot, gateway_subnet6_id(name))) < 0)) {
    fed_detach(r, free_slot);
    uplinks_detach(r, free_slot);
    roomdir_lock(r->dir);
    roomdir_copy_set(r->dir, room->gid, r->self, false);
    roomdir_leave(r->dir, room->gid, *r->now);
    roomdir_unlock(r->dir);
    return rc;
  }
  r->gid_local[room->gid] = free_slot;
  room->used = true;
  snprintf(room->name, sizeof(room->name), "%s", name);
  r->nrooms++;
  if (r->fed)
    r->fed->open(r->fed_ctx, room->ring_id, room->name);
  /* sessions waiting to make this room will join it instead */
  for (uint32_t i = 0; i < r->max_peers; i++) {
    struct relay_peer *o = &r->peers[i];
    if (o->used && o->new_room && strcmp(peer_name(r, o), name) == 0)
      o->new_room = false;
  }
  *out = free_slot;
  return 0;
}

/* Drops a room without registered sessions. */
static void room_drop_if_empty(struct relay *r, uint32_t idx)
{
  struct relay_room *room = &r->rooms[idx];
  if (!room->used || room->npeers)
    return;
  if (r->gw)
    gateway_room_detach(r->gw, idx);
  if (r->fed && room->fed.port != SWITCH_NO_PORT)
    r->fed->close(r->fed_ctx, room->ring_id);
  fed_detach(r, idx);
  uplinks_detach(r, idx);
  r->gid_local[room->gid] = RELAY_NO_ROOM;
  roomdir_lock(r->dir);
  roomdir_copy_set(r->dir, room->gid, r->self, false);
  roomdir_leave(r->dir, room->gid, *r->now); /* the last copy: DHCP-only leases released */
  roomdir_unlock(r->dir);
  room->used = false;
  r->nrooms--;
}

/* Keeps o's room alive across a hand-over of its MAC (the holder leaves,
 * the newcomer joins), so it is not dropped and made again in between. */
static uint32_t room_hold(struct relay *r, const struct relay_peer *o)
{
  if (!o->registered)
    return RELAY_NO_ROOM;
  r->rooms[o->room].npeers++;
  return o->room;
}

static void room_unhold(struct relay *r, uint32_t room)
{
  if (room == RELAY_NO_ROOM)
    return;
  r->rooms[room].npeers--;
  room_drop_if_empty(r, room);
}

static void share_log(struct relay *r, struct session *s, const char *name, const char *why,
                      int status)
{
  uint32_t sup;
  if (!log_ratelimit_allow(&r->rl_share, *r->now, &sup))
    return;
  char addr[64] = "?";
  session_remote_str(s, addr, sizeof(addr));
  log_info("session refused", "remote=%s room=%s reason=%s status=%d suppressed=%u", addr,
           LOG_Q(name), LOG_Q(why), status, sup);
}

/* The checks of a CONNECT by client to name (relay.h): 0, 429 or 503,
 * against the process's counts in the room directory (under its lock):
 * the client's sessions naming the room on every worker, the rooms it
 * made, its creation tokens, the rooms in use. Names waiting for their
 * first Register are this worker's (the CONNECT only looks; the Register
 * that makes the room checks again under the lock). Admitted, the session
 * is counted for (client, name) until it ends (on_session_closed).
 * *exists: name is a room; *lead: the session is its client's first one
 * waiting to make that room (it counts toward the client's rooms). */
static int share_admit(struct relay *r, struct session *s, uint64_t client, const char *name,
                       bool *exists, bool *lead)
{
  uint32_t waiting = 0;
  bool waiting_here = false;
  *lead = false;
  for (uint32_t i = 0; client && i < r->max_peers; i++) {
    const struct relay_peer *o = &r->peers[i];
    if (!o->used || o->client != client || !o->new_room)
      continue;
    waiting++;
    waiting_here |= strcmp(peer_name(r, o), name) == 0;
  }
  const char *why = NULL;
  int st = 0;
  roomdir_lock(r->dir);
  struct roomdir *d = r->dir;
  *exists = roomdir_find(d, name) != ROOMDIR_NONE;
  if (client && r->sessions_per_room_client &&
      roomdir_sessions(d, client, name) >= r->sessions_per_room_client) {
    r->ctr.sessions_refused_client_sessions++;
    why = "client sessions in the room (--max-client-sessions-per-room)";
    st = 429;
  } else if (!*exists && client && !waiting_here &&
             roomdir_client_rooms(d, client) + waiting >= d->sh.rooms_per_client) {
    r->ctr.sessions_refused_client_rooms++;
    why = "client rooms (--max-rooms-per-client)";
    st = 429;
  } else if (!*exists && client && !waiting_here &&
             !roomdir_rate_allow(d, client, *r->now, false, NULL)) {
    r->ctr.sessions_refused_client_rate++;
    why = "client room creation rate (--room-rate, --room-burst)";
    st = 429;
  } else if (!*exists && d->nrooms >= d->max_rooms) {
    r->ctr.sessions_refused_rooms++;
    why = "no room left (--max-rooms)";
    st = 503;
  } else if (roomdir_session_add(d, client, name, 0) < 0) {
    r->ctr.sessions_refused_full++; /* not reached: one count per session at most */
    why = "session share table full";
    st = 503;
  }
  roomdir_unlock(r->dir);
  if (st) {
    share_log(r, s, name, why, st);
    return st;
  }
  *lead = !*exists && !waiting_here;
  return 0;
}

/* Sends one control message (0x00 + JSON). */
static void send_ctrl(struct relay *r, struct relay_peer *p, const char *json, int len)
{
  if (len < 0 || !p->sess)
    return;
  uint8_t type = BAVY_CONTROL;
  struct iovec iov[2] = {{.iov_base = &type, .iov_len = 1},
                         {.iov_base = (void *)json, .iov_len = (size_t)len}};
  if (session_send(p->sess, iov, 2) < 0)
    r->ctr.replies_failed++;
}

static void send_error(struct relay *r, struct relay_peer *p, const char *msg)
{
  if (p->errors_sent >= RELAY_MAX_ERRORS_SENT)
    return;
  p->errors_sent++;
  char buf[256];
  send_ctrl(r, p, buf, bavy_write_error(buf, sizeof(buf), msg));
}

static void peer_log(struct relay *r, struct relay_peer *p, const char *msg, const char *detail)
{
  uint32_t sup;
  if (!log_ratelimit_allow(&r->rl, *r->now, &sup))
    return;
  char addr[64] = "?";
  if (p->sess)
    session_remote_str(p->sess, addr, sizeof(addr));
  log_info(msg, "peer=%u remote=%s room=%s detail=%s suppressed=%u", p->id, addr,
           LOG_Q(peer_name(r, p)), LOG_Q(detail), sup);
}

/* Registered sessions of a room over every worker (the directory's
 * count, read by /metrics). */
static void room_sessions_add(struct relay *r, uint32_t room, int delta)
{
  _Atomic uint32_t *n = &r->dir->rooms[r->rooms[room].gid].sessions;
  if (delta > 0)
    atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
  else
    atomic_fetch_sub_explicit(n, 1, memory_order_relaxed);
}

/* p's key in the room directory's claim table: its worker and slot (a
 * slot gives its claims back before it is reused). */
static uint64_t claim6_owner(const struct relay *r, const struct relay_peer *p)
{
  return ((uint64_t)r->self + 1) << 32 | (uint32_t)(p - r->peers);
}

static void peer_unregister(struct relay *r, struct relay_peer *p)
{
  chunk_owner_release(&r->chunks, &p->chunks);
  if (p->port != SWITCH_NO_PORT) {
    switch_port_detach(&r->sw, p->port);
    p->port = SWITCH_NO_PORT;
  }
  if (!p->registered)
    return;
  uint32_t room = p->room;
  struct ippool *pool = pool_lock(r, room);
  for (uint8_t i = 0; i < p->nclaims6; i++)
    roomdir_unclaim6(r->dir, r->rooms[room].gid, p->claims6[i], claim6_owner(r, p));
  ippool_release(pool, p->ip, *r->now);
  pool_unlock(r);
  p->nclaims6 = p->next_claim6 = 0;
  p->registered = false;
  p->room = RELAY_NO_ROOM;
  r->rooms[room].npeers--;
  room_sessions_add(r, room, -1);
  room_drop_if_empty(r, room);
}

static const struct switch_port_ops peer_port_ops;

static void handle_register(struct relay *r, struct relay_peer *p, const uint8_t mac[6]);
static void peer_close(struct relay *r, struct relay_peer *p, uint32_t code, const char *why);

/* ---- takeover ---- */

#define TAKEOVER_MIN_NS (300 * 1000000ull)
#define TAKEOVER_MAX_NS (2 * NS_PER_S)
#define TAKEOVER_MAX_PROBES 3

static uint32_t peer_ref(const struct relay *r, const struct relay_peer *p)
{
  return (uint32_t)(p - r->peers) + 1;
}

/* The registered session of `room` that holds `mac`, or NULL. */
static struct relay_peer *holder_of(struct relay *r, uint32_t room, const uint8_t mac[6])
{
  for (uint32_t i = 0; i < r->max_peers; i++) {
    struct relay_peer *o = &r->peers[i];
    if (o->used && o->registered && o->room == room && memcmp(o->mac, mac, 6) == 0)
      return o;
  }
  return NULL;
}

/* Ends a newcomer's wait (either verdict, or it went away). */
static void takeover_clear(struct relay *r, struct relay_peer *n)
{
  if (n->waiting_on) {
    struct relay_peer *o = &r->peers[n->waiting_on - 1];
    if (o->probe_for == peer_ref(r, n)) {
      o->probe_for = 0;
      o->probe_id = 0;
    }
    n->waiting_on = 0;
  }
  timer_disarm(r->timers, &n->takeover);
}

/* Sends the holder a HeartbeatAck with a fresh id (harmless to every
 * client: the real one ignores it). */
static void takeover_probe_send(struct relay *r, struct relay_peer *o)
{
  char json[64];
  int len = bavy_write_heartbeat_ack(json, sizeof(json));
  uint8_t type = BAVY_CONTROL;
  struct iovec iov[2] = {{.iov_base = &type, .iov_len = 1},
                         {.iov_base = json, .iov_len = len > 0 ? (size_t)len : 0}};
  o->probe_id = ++r->probe_seq;
  r->ctr.takeover_probes++;
  if (len <= 0 || !o->sess || session_send_id(o->sess, iov, 2, o->probe_id) < 0)
    peer_log(r, o, "takeover probe not sent", "the deadline decides");
}

static void takeover_probe(struct relay *r, struct relay_peer *n, struct relay_peer *o)
{
  n->probes++;
  takeover_probe_send(r, o);
}

/* The probe's deadline: 3 PTO of the holder's connection, clamped. */
static uint64_t takeover_wait(const struct relay_peer *o)
{
  uint64_t wait = o->sess ? 3 * session_pto(o->sess) : TAKEOVER_MIN_NS;
  if (wait < TAKEOVER_MIN_NS)
    wait = TAKEOVER_MIN_NS;
  if (wait > TAKEOVER_MAX_NS)
    wait = TAKEOVER_MAX_NS;
  return wait;
}

static void takeover_start(struct relay *r, struct relay_peer *n, struct relay_peer *o,
                           const uint8_t mac[6])
{
  if (o->closing || !o->sess) {
    /* already on its way out: hand the MAC over at once */
    uint32_t held = room_hold(r, o);
    peer_unregister(r, o);
    handle_register(r, n, mac);
    room_unhold(r, held);
    return;
  }
  if (o->probe_for || o->remote_for) {
    /* another newcomer (here or on another worker) waits for this holder's verdict already */
    r->ctr.register_refused_busy++;
    peer_log(r, n, "register refused", "MAC in use, a takeover is being decided");
    send_error(r, n, "MAC address already registered by another session");
    return;
  }
  n->waiting_on = peer_ref(r, o);
  n->probes = 0;
  n->probe_t0 = *r->now;
  memcpy(n->want_mac, mac, 6);
  o->probe_for = peer_ref(r, n);
  takeover_probe(r, n, o);
  timer_arm(r->timers, &n->takeover, *r->now + takeover_wait(o));
}

static void remote_holder_expired(struct relay *r, struct relay_peer *o, uint64_t now);
static void remote_wait_expired(struct relay *r, struct relay_peer *n);
static void lease_wait_expired(struct relay *r, struct relay_peer *p);
static void lease_wait_cancel(struct relay *r, struct relay_peer *p);

/* No acknowledgement by the deadline: the holder is gone. */
static void takeover_expired(struct timer *t, uint64_t now)
{
  struct relay_peer *n = container_of(t, struct relay_peer, takeover);
  struct relay *r = n->relay;
  if (n->used && n->remote_for) {
    remote_holder_expired(r, n, now); /* n is a holder probed for another worker */
    return;
  }
  if (n->used && n->remote_token) {
    remote_wait_expired(r, n);
    return;
  }
  if (n->used && n->lease_token) {
    lease_wait_expired(r, n);
    return;
  }
  if (!n->used || !n->waiting_on)
    return;
  struct relay_peer *o = &r->peers[n->waiting_on - 1];
  uint8_t mac[6];
  memcpy(mac, n->want_mac, 6);
  takeover_clear(r, n);
  r->ctr.takeovers++;
  char addr[64] = "?";
  if (o->sess)
    session_remote_str(o->sess, addr, sizeof(addr));
  log_info("MAC taken over",
           "peer=%u old_peer=%u old_remote=%s room=%s mac=%02x:%02x:%02x:%02x:%02x:%02x "
           "ms=%.1f probes=%u reason=\"old session did not acknowledge\"",
           n->id, o->id, addr, LOG_Q(peer_name(r, o)), mac[0], mac[1], mac[2], mac[3], mac[4],
           mac[5], (double)(now - n->probe_t0) / 1e6, n->probes);
  uint32_t held = RELAY_NO_ROOM;
  if (o->used && o->registered && memcmp(o->mac, mac, 6) == 0) {
    held = room_hold(r, o);
    peer_unregister(r, o);
    peer_close(r, o, 0, "MAC taken over by a new session");
  }
  handle_register(r, n, mac);
  room_unhold(r, held);
}

/* ---- takeover across workers ----
 *
 * The asker (the newcomer's worker) holds its room copy (so the room, its
 * pool and the MAC's address outlive a holder that was the last session
 * of its copy), sends one ask per other worker and waits on the
 * newcomer's takeover timer (TAKEOVER_REMOTE_NS, longer than the holder's
 * probe deadline plus a loop turn on each side). Asks go to every other
 * worker: the room directory does not record which worker a MAC's
 * session sits on (recording it would put a write under the directory's
 * mutex into every Register and session end), and a collision is rare
 * and costs N-1 small messages, a few microseconds each. One ALIVE or
 * RELEASED decides; NOT_HERE from every worker asked (the holder left
 * meanwhile, or the address is held by something that is no session, a
 * DHCP lease) re-runs the Register once, which is refused if the pool
 * still says -EBUSY. A token is the newcomer's index + 1 in the low half
 * and a sequence number in the high half, so a late verdict for a
 * newcomer that left (or whose slot a new session took) matches nothing. */

#define TAKEOVER_REMOTE_NS (3 * NS_PER_S)

static const char *verdict_name(enum relay_verdict v)
{
  return v == RELAY_VERDICT_RELEASED ? "released" : v == RELAY_VERDICT_ALIVE ? "alive" : "not_here";
}

static void remote_answer(struct relay *r, uint32_t to, uint64_t token, enum relay_verdict v)
{
  uint32_t sup;
  if (r->remote->answer(r->remote_ctx, to, token, v) < 0) {
    r->ctr.takeover_remote_ring_drops++;
    if (log_ratelimit_allow(&r->rl, *r->now, &sup))
      log_warn("takeover verdict dropped (control ring full)",
               "worker=%u to_worker=%u verdict=%s suppressed=%u", r->self, to, verdict_name(v),
               sup);
  }
}

/* The Register of n (unregistered, no local holder of mac in its room)
 * waits for the other workers. false when there is no one to ask. */
static bool remote_start(struct relay *r, struct relay_peer *n, uint32_t room, const uint8_t mac[6])
{
  if (!r->remote || r->nworkers < 2 || n->remote_asked || n->remote_token)
    return false;
  uint64_t token = (uint64_t)++r->remote_seq << 32 | peer_ref(r, n);
  uint32_t sent = 0;
  for (uint32_t j = 0; j < r->nworkers; j++) {
    if (j == r->self)
      continue;
    if (r->remote->ask(r->remote_ctx, j, r->rooms[room].ring_id, mac, token) == 0)
      sent++;
    else
      r->ctr.takeover_remote_ring_drops++;
  }
  if (!sent)
    return false;
  r->ctr.takeover_remote_asks++;
  uint32_t sup;
  n->remote_token = token;
  n->remote_pending = sent;
  n->remote_room = room;
  r->rooms[room].npeers++; /* held: see above */
  n->probe_t0 = *r->now;
  memcpy(n->want_mac, mac, 6);
  timer_arm(r->timers, &n->takeover, *r->now + TAKEOVER_REMOTE_NS);
  if (log_ratelimit_allow(&r->rl, *r->now, &sup))
    log_info("takeover asked of other workers",
             "peer=%u worker=%u workers_asked=%u room=%s mac=%02x:%02x:%02x:%02x:%02x:%02x "
             "suppressed=%u",
             n->id, r->self, sent, LOG_Q(r->rooms[room].name), mac[0], mac[1], mac[2], mac[3],
             mac[4], mac[5], sup);
  return true;
}

/* Ends n's wait: with retry its Register runs again (once: a pool still
 * busy refuses it), else it is refused with `why`. The room copy held for
 * the wait is let go after. */
static void remote_finish(struct relay *r, struct relay_peer *n, bool retry, const char *why)
{
  uint8_t mac[6];
  memcpy(mac, n->want_mac, 6);
  uint32_t room = n->remote_room;
  n->remote_token = 0;
  n->remote_pending = 0;
  n->remote_room = RELAY_NO_ROOM;
  timer_disarm(r->timers, &n->takeover);
  if (retry) {
    n->remote_asked = true;
    handle_register(r, n, mac);
    n->remote_asked = false;
  } else {
    r->ctr.register_refused_busy++;
    peer_log(r, n, "register refused", why);
    send_error(r, n, "MAC address already registered by another session");
  }
  room_unhold(r, room);
}

/* A newcomer that goes away stops waiting (later verdicts are unknown). */
static void remote_wait_cancel(struct relay *r, struct relay_peer *n)
{
  if (!n->remote_token)
    return;
  uint32_t room = n->remote_room;
  n->remote_token = 0;
  n->remote_pending = 0;
  n->remote_room = RELAY_NO_ROOM;
  timer_disarm(r->timers, &n->takeover);
  room_unhold(r, room);
}

static void remote_wait_expired(struct relay *r, struct relay_peer *n)
{
  r->ctr.takeover_remote_timeouts++;
  remote_finish(r, n, false, "MAC in use, no verdict from the other workers by the deadline");
}

void relay_takeover_verdict(struct relay *r, uint32_t from, uint64_t token, enum relay_verdict v)
{
  uint32_t idx = (uint32_t)token;
  struct relay_peer *n = idx && idx <= r->max_peers ? &r->peers[idx - 1] : NULL;
  if (!n || !token || !n->used || n->remote_token != token) {
    r->ctr.takeover_remote_unknown++;
    return;
  }
  uint64_t ms = (*r->now - n->probe_t0) / NS_PER_MS;
  const uint8_t *m = n->want_mac;
  uint32_t sup;
  if (v == RELAY_VERDICT_NOT_HERE) {
    if (n->remote_pending > 1) {
      n->remote_pending--;
      return;
    }
    r->ctr.takeover_remote_not_here++;
    if (log_ratelimit_allow(&r->rl, *r->now, &sup))
      log_info("takeover: no other worker holds the MAC, registering again",
               "peer=%u worker=%u mac=%02x:%02x:%02x:%02x:%02x:%02x ms=%llu suppressed=%u", n->id,
               r->self, m[0], m[1], m[2], m[3], m[4], m[5], (unsigned long long)ms, sup);
    remote_finish(r, n, true, NULL);
    return;
  }
  if (v == RELAY_VERDICT_RELEASED) {
    r->ctr.takeover_remote_released++;
    if (log_ratelimit_allow(&r->rl, *r->now, &sup))
      log_info("MAC handed over by another worker",
               "peer=%u worker=%u from_worker=%u mac=%02x:%02x:%02x:%02x:%02x:%02x ms=%llu "
               "suppressed=%u",
               n->id, r->self, from, m[0], m[1], m[2], m[3], m[4], m[5], (unsigned long long)ms,
               sup);
    remote_finish(r, n, true, NULL);
    return;
  }
  r->ctr.takeover_remote_alive++;
  if (log_ratelimit_allow(&r->rl, *r->now, &sup))
    log_info(
        "takeover: the holder on another worker is alive",
        "peer=%u worker=%u from_worker=%u mac=%02x:%02x:%02x:%02x:%02x:%02x ms=%llu suppressed=%u",
        n->id, r->self, from, m[0], m[1], m[2], m[3], m[4], m[5], (unsigned long long)ms, sup);
  remote_finish(r, n, false, "MAC in use by a live session (it acknowledged a probe)");
}

/* Ends the probe of holder o for another worker (the caller answers). */
static void remote_holder_clear(struct relay *r, struct relay_peer *o)
{
  o->remote_for = 0;
  o->probe_id = 0;
  timer_disarm(r->timers, &o->takeover);
}

static void remote_taken_log(struct relay *r, struct relay_peer *o, uint32_t asker,
                             const char *reason)
{
  char addr[64] = "?";
  if (o->sess)
    session_remote_str(o->sess, addr, sizeof(addr));
  log_info("MAC taken over",
           "old_peer=%u old_remote=%s room=%s mac=%02x:%02x:%02x:%02x:%02x:%02x ms=%.1f "
           "probes=%u worker=%u asker_worker=%u reason=%s",
           o->id, addr, LOG_Q(peer_name(r, o)), o->mac[0], o->mac[1], o->mac[2], o->mac[3],
           o->mac[4], o->mac[5], (double)(*r->now - o->probe_t0) / 1e6, o->probes, r->self, asker,
           LOG_Q(reason));
}

void relay_takeover_ask(struct relay *r, uint32_t from, uint32_t gid, const uint8_t mac[6],
                        uint64_t token)
{
  if (!r->remote || from >= r->nworkers || from == r->self)
    return;
  r->ctr.takeover_remote_asks_in++;
  uint32_t slot = ROOMDIR_SLOT(gid);
  uint32_t room = r->gid_local && slot < r->max_rooms ? r->gid_local[slot] : RELAY_NO_ROOM;
  struct relay_peer *o = NULL;
  if (room != RELAY_NO_ROOM && r->rooms[room].ring_id == gid)
    o = holder_of(r, room, mac);
  if (!o) {
    remote_answer(r, from, token, RELAY_VERDICT_NOT_HERE);
    return;
  }
  if (o->closing || !o->sess) {
    /* already on its way out: the address goes back to the pool now */
    o->probe_t0 = *r->now;
    o->probes = 0;
    r->ctr.takeovers++;
    remote_taken_log(r, o, from, "old session closing");
    peer_unregister(r, o);
    remote_answer(r, from, token, RELAY_VERDICT_RELEASED);
    return;
  }
  if (o->probe_for || o->remote_for) {
    /* another newcomer waits for this holder's verdict already */
    peer_log(r, o, "takeover asked by another worker", "a takeover of this MAC is being decided");
    remote_answer(r, from, token, RELAY_VERDICT_ALIVE);
    return;
  }
  o->remote_for = token;
  o->remote_from = from;
  o->probes = 1;
  o->probe_t0 = *r->now;
  takeover_probe_send(r, o);
  timer_arm(r->timers, &o->takeover, *r->now + takeover_wait(o));
}

/* The holder's probe for another worker was acknowledged (or lost). */
static void remote_holder_acked(struct relay *r, struct relay_peer *o, bool acked)
{
  if (!acked) {
    if (o->probes < TAKEOVER_MAX_PROBES) {
      o->probes++;
      takeover_probe_send(r, o);
    }
    return;
  }
  uint32_t to = o->remote_from;
  uint64_t token = o->remote_for;
  remote_holder_clear(r, o);
  r->ctr.takeover_refused_alive++;
  log_info("takeover refused, holder alive",
           "peer=%u room=%s mac=%02x:%02x:%02x:%02x:%02x:%02x worker=%u asker_worker=%u ms=%.1f",
           o->id, LOG_Q(peer_name(r, o)), o->mac[0], o->mac[1], o->mac[2], o->mac[3], o->mac[4],
           o->mac[5], r->self, to, (double)(*r->now - o->probe_t0) / 1e6);
  remote_answer(r, to, token, RELAY_VERDICT_ALIVE);
}

/* No acknowledgement by the deadline: the holder is gone; its address
 * goes back to the pool before the answer leaves. */
static void remote_holder_expired(struct relay *r, struct relay_peer *o, uint64_t now)
{
  (void)now;
  uint32_t to = o->remote_from;
  uint64_t token = o->remote_for;
  remote_holder_clear(r, o);
  r->ctr.takeovers++;
  remote_taken_log(r, o, to, "old session did not acknowledge");
  peer_unregister(r, o);
  peer_close(r, o, 0, "MAC taken over by a new session");
  remote_answer(r, to, token, RELAY_VERDICT_RELEASED);
}

void relay_set_remote(struct relay *r, const struct relay_remote_ops *ops, void *ctx)
{
  r->remote = ops;
  r->remote_ctx = ctx;
}

void relay_session_datagram_ack(struct relay *r, struct session *s, uint64_t id, bool acked)
{
  struct relay_peer *o = s->app_data;
  if (!o || !o->probe_id || o->probe_id != id)
    return;
  if (o->remote_for) {
    remote_holder_acked(r, o, acked);
    return;
  }
  if (!o->probe_for)
    return;
  struct relay_peer *n = &r->peers[o->probe_for - 1];
  if (!acked) {
    /* the probe's packet was lost (the peer acknowledged later ones, so it
     * is most likely there): ask again within the deadline */
    if (n->probes < TAKEOVER_MAX_PROBES)
      takeover_probe(r, n, o);
    return;
  }
  takeover_clear(r, n);
  r->ctr.register_refused_busy++;
  r->ctr.takeover_refused_alive++;
  peer_log(r, n, "register refused", "MAC in use by a live session (it acknowledged a probe)");
  send_error(r, n, "MAC address already registered by another session");
}

/* The room p's Register joins, made when missing (the checks of room_make
 * again: the CONNECT only looked). Refusals are counted and told. */
static int room_open(struct relay *r, struct relay_peer *p, uint32_t *out)
{
  if (!p->sess)
    return -ENOTCONN;
  const char *name = peer_name(r, p);
  if ((*out = room_find(r, name)) != RELAY_NO_ROOM)
    return 0;
  int rc = room_make(r, name, p->client, out);
  if (rc == -EDQUOT) {
    r->ctr.register_refused_client_rooms++;
    peer_log(r, p, "register refused", "client rooms (--max-rooms-per-client)");
    send_error(r, p, "too many rooms from this address");
  } else if (rc == -EAGAIN) {
    r->ctr.register_refused_client_rate++;
    peer_log(r, p, "register refused", "client room creation rate (--room-rate)");
    send_error(r, p, "rooms created too fast from this address");
  } else if (rc < 0) {
    r->ctr.register_refused_rooms++;
    peer_log(r, p, "register refused",
             rc == -ENOSPC ? "no room left (--max-rooms)" : "room not made");
    send_error(r, p, "relay full");
  }
  return rc;
}

static bool lease_wait_start(struct relay *r, struct relay_peer *p, uint32_t room,
                             const uint8_t mac[6], uint32_t ip);
static bool register_attach(struct relay *r, struct relay_peer *p, uint32_t room,
                            const uint8_t mac[6], uint32_t ip);
static void send_assigned(struct relay *r, struct relay_peer *p);

static void handle_register(struct relay *r, struct relay_peer *p, const uint8_t mac[6])
{
  r->ctr.registers++;
  if (p->waiting_on || p->remote_token || p->lease_token)
    return; /* a takeover verdict or the cluster's lease is pending for this Register */
  if (languard_mac_reserved(&r->guard, mac)) {
    /* broadcast, multicast, zero or the gateway's: a session holding one
     * could answer for the gateway or be every port's destination */
    r->ctr.register_refused_reserved++;
    peer_log(r, p, "register refused", "reserved MAC (group, zero or the gateway's)");
    send_error(r, p, "MAC address reserved");
    return;
  }
  if (p->mac_bound && memcmp(p->token_mac, mac, 6) != 0) {
    if (r->auth)
      r->auth->ctr.register_refused_mac++;
    peer_log(r, p, "register refused", "MAC not granted by the token");
    send_error(r, p, "MAC address not allowed by the token");
    return;
  }
  if (p->registered && memcmp(p->mac, mac, 6) != 0) {
    r->ctr.register_refused_other_mac++;
    send_error(r, p, "session already registered with another MAC");
    return;
  }
  if (!p->registered) {
    uint32_t ip, room;
    int rc = room_open(r, p, &room);
    if (rc < 0)
      return; /* refused, counted and told */
    rc = ippool_acquire_for(pool_lock(r, room), mac, p->client, &ip, *r->now);
    pool_unlock(r);
    if (rc == -EBUSY) {
      struct relay_peer *o = holder_of(r, room, mac);
      if (o && o != p && !p->waiting_on) {
        takeover_start(r, p, o, mac);
        return;
      }
      if (!o && remote_start(r, p, room, mac))
        return; /* the holder may sit on another worker: asked */
      r->ctr.register_refused_busy++;
      peer_log(r, p, "register refused", "MAC in use by a live session");
      send_error(r, p, "MAC address already registered by another session");
      room_drop_if_empty(r, room);
      return;
    }
    if (rc == -EDQUOT) {
      r->ctr.register_refused_share++;
      peer_log(r, p, "register refused",
               "every address of this client's share is live (--max-client-addrs-per-room)");
      send_error(r, p, "IP pool share of this client exhausted");
      room_drop_if_empty(r, room);
      return;
    }
    if (rc < 0) {
      r->ctr.register_refused_pool++;
      peer_log(r, p, "register refused", "IP pool exhausted");
      send_error(r, p, "IP pool exhausted");
      room_drop_if_empty(r, room);
      return;
    }
    if (lease_wait_start(r, p, room, mac, ip))
      return; /* the cluster's answer runs it on (relay_fed_lease) */
    if (!register_attach(r, p, room, mac, ip))
      return;
  }
  send_assigned(r, p);
}

/* The registration proper, with the address decided: p's switch port,
 * pinned MAC and Assigned fields. false when refused (told, counted, the
 * address released). */
static bool register_attach(struct relay *r, struct relay_peer *p, uint32_t room,
                            const uint8_t mac[6], uint32_t ip)
{
  int rc = switch_port_attach(&r->sw, room, &peer_port_ops, p, &p->port);
  if (rc < 0) {
    ippool_release(pool_lock(r, room), ip, *r->now);
    pool_unlock(r);
    r->ctr.ports_full++;
    peer_log(r, p, "register refused", "switch port table full");
    send_error(r, p, "relay full");
    room_drop_if_empty(r, room);
    return false;
  }
  switch_port_set_addr(&r->sw, p->port, mac, ip);
  /* the registered MAC never ages out of the table (frames to it are
   * never flooded as unknown unicast) nor moves to another port; a full
   * table leaves it to ordinary learning */
  switch_port_pin_mac(&r->sw, p->port, mac);
  memset(p->bindings, 0, sizeof(p->bindings));
  p->next_binding = 0;
  p->nclaims6 = p->next_claim6 = 0;
  p->registered = true;
  p->new_room = false;
  p->room = room;
  r->rooms[room].npeers++;
  room_sessions_add(r, room, 1);
  p->ip = ip;
  memcpy(p->mac, mac, 6);
  log_info("peer registered", "peer=%u room=%s mac=%02x:%02x:%02x:%02x:%02x:%02x ip=%u.%u.%u.%u",
           p->id, LOG_Q(r->rooms[room].name), mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
           ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
  return true;
}

static void send_assigned(struct relay *r, struct relay_peer *p)
{
  uint8_t ipb[4];
  ip_bytes(p->ip, ipb);
  char buf[256];
  send_ctrl(r, p, buf, bavy_write_assigned(buf, sizeof(buf), ipb, r->gateway, r->netmask, r->dns));
  r->ctr.assigned++;
  if (!p->assigned) {
    p->assigned = true;
    hist_observe(&r->register_hist, hist_bounds_fast, *r->now - p->created_ns);
  }
}

/* ---- cluster leases (relays federated) ----
 *
 * A Register whose local pool gave candidate `ip` waits for the cluster's
 * answer (the lease thread of src/fed: the MAC's address elsewhere, the
 * candidate, or another free one), holding its room copy and the
 * candidate, on the takeover timer (LEASE_WAIT_NS: past it the candidate
 * is used, as when NATS is down). The token is the newcomer's index + 1
 * and a sequence number, as for the asks across workers, so an answer for
 * a newcomer that left matches nothing. */

#define LEASE_WAIT_NS (5 * NS_PER_S)

static bool lease_wait_start(struct relay *r, struct relay_peer *p, uint32_t room,
                             const uint8_t mac[6], uint32_t ip)
{
  if (!r->fed || !r->fed->lease_claim)
    return false;
  uint64_t token = (uint64_t)++r->remote_seq << 32 | peer_ref(r, p);
  if (r->fed->lease_claim(r->fed_ctx, token, r->rooms[room].name, mac, ip) < 0)
    return false;
  r->ctr.lease_waits++;
  p->lease_token = token;
  p->lease_room = room;
  p->lease_ip = ip;
  memcpy(p->want_mac, mac, 6);
  r->rooms[room].npeers++; /* held while it waits */
  p->probe_t0 = *r->now;
  timer_arm(r->timers, &p->takeover, *r->now + LEASE_WAIT_NS);
  return true;
}

/* Ends p's wait; the room copy stays held (the caller lets it go). */
static void lease_wait_end(struct relay *r, struct relay_peer *p)
{
  p->lease_token = 0;
  timer_disarm(r->timers, &p->takeover);
}

/* A newcomer that goes away: its candidate is released (which tells the
 * cluster too, through the pool's observer). */
static void lease_wait_cancel(struct relay *r, struct relay_peer *p)
{
  if (!p->lease_token)
    return;
  lease_wait_end(r, p);
  ippool_release(pool_lock(r, p->lease_room), p->lease_ip, *r->now);
  pool_unlock(r);
  room_unhold(r, p->lease_room);
}

/* Registers p with address ip after its wait (or refuses it), and lets
 * the room copy held for the wait go. */
static void lease_finish(struct relay *r, struct relay_peer *p, uint32_t ip)
{
  uint32_t room = p->lease_room;
  if (register_attach(r, p, room, p->want_mac, ip))
    send_assigned(r, p);
  room_unhold(r, room);
}

static void lease_wait_expired(struct relay *r, struct relay_peer *p)
{
  r->ctr.lease_timeouts++;
  uint32_t sup;
  if (log_ratelimit_allow(&r->rl, *r->now, &sup))
    log_warn("no answer from the cluster's leases in time: the local address is used",
             "peer=%u suppressed=%u", p->id, sup);
  lease_wait_end(r, p);
  lease_finish(r, p, p->lease_ip);
}

void relay_fed_lease(struct relay *r, uint64_t token, int status, uint32_t ip)
{
  uint32_t idx = (uint32_t)token;
  struct relay_peer *p = idx && idx <= r->max_peers ? &r->peers[idx - 1] : NULL;
  if (!p || !token || !p->used || p->lease_token != token) {
    r->ctr.lease_unknown++;
    return;
  }
  lease_wait_end(r, p);
  uint32_t room = p->lease_room, cand = p->lease_ip;
  if (status == RELAY_LEASE_EXHAUSTED) {
    ippool_release(pool_lock(r, room), cand, *r->now);
    pool_unlock(r);
    r->ctr.register_refused_pool++;
    peer_log(r, p, "register refused", "IP pool exhausted across the relays");
    send_error(r, p, "IP pool exhausted");
    room_unhold(r, room);
    return;
  }
  if (status == RELAY_LEASE_OK && ip != cand) {
    struct ippool *pool = pool_lock(r, room);
    uint8_t holder[6];
    /* moved by the lease thread already (fed_params.local_take), or here */
    int rc = ippool_lookup_ip(pool, ip, holder) && memcmp(holder, p->want_mac, 6) == 0
                 ? 0
                 : ippool_move(pool, p->want_mac, cand, ip, *r->now);
    if (rc < 0)
      ippool_release(pool, cand, *r->now);
    pool_unlock(r);
    if (rc < 0) {
      /* here the address is another MAC's (a lease made while NATS was
       * unreachable): refused, the VM's next try gets another */
      r->ctr.lease_conflicts++;
      log_warn("address given by the cluster is live here for another MAC: register refused",
               "peer=%u ip=%u.%u.%u.%u", p->id, ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255,
               ip & 255);
      send_error(r, p, "address conflict between relays, register again");
      room_unhold(r, room);
      return;
    }
    cand = ip;
  }
  lease_finish(r, p, cand);
}

void relay_fed_takeover(struct relay *r, const char *name, const uint8_t mac[6], bool conflict)
{
  uint32_t room = room_find(r, name);
  struct relay_peer *o = room == RELAY_NO_ROOM ? NULL : holder_of(r, room, mac);
  if (!o)
    return;
  if (conflict)
    r->ctr.lease_conflicts++;
  else
    r->ctr.takeovers_fed++;
  char addr[64] = "?";
  if (o->sess)
    session_remote_str(o->sess, addr, sizeof(addr));
  log_info(conflict ? "session ended: its address is another VM's" : "MAC taken over",
           "old_peer=%u old_remote=%s room=%s mac=%02x:%02x:%02x:%02x:%02x:%02x reason=%s", o->id,
           addr, LOG_Q(name), mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
           conflict ? "\"address given on two relays while NATS was unreachable\""
                    : "\"the VM registered on another relay\"");
  uint32_t held = room_hold(r, o);
  peer_unregister(r, o);
  peer_close(r, o, 0,
             conflict ? "address conflict between relays, reconnect"
                      : "MAC taken over by a session on another relay");
  room_unhold(r, held);
}

static void peer_close(struct relay *r, struct relay_peer *p, uint32_t code, const char *why)
{
  if (p->closing || !p->sess)
    return;
  p->closing = true;
  session_close(p->sess, code, why);
}

static void handle_control(struct relay *r, struct relay_peer *p, const uint8_t *json, size_t len)
{
  struct bavy_ctrl msg;
  int rc = bavy_ctrl_parse(json, len, &msg);
  if (rc < 0) {
    if (rc == -EMSGSIZE)
      r->ctr.ctrl_oversized++;
    else if (rc == -EINVAL)
      r->ctr.ctrl_bad_mac++;
    else
      r->ctr.ctrl_bad_json++;
    peer_log(r, p, "bad control message", bavy_ctrl_strerror(rc));
    send_error(r, p, bavy_ctrl_strerror(rc));
    return;
  }
  switch (msg.type) {
  case BAVY_MSG_REGISTER:
    handle_register(r, p, msg.mac);
    break;
  case BAVY_MSG_HEARTBEAT: {
    r->ctr.heartbeats++;
    char buf[64];
    send_ctrl(r, p, buf, bavy_write_heartbeat_ack(buf, sizeof(buf)));
    break;
  }
  case BAVY_MSG_DISCONNECT:
    r->ctr.disconnects++;
    peer_unregister(r, p);
    peer_close(r, p, 0, "disconnect");
    break;
  default:
    r->ctr.ctrl_unknown_type++;
    break;
  }
}

/* ---- the frame path ---- */

/* With --allow-any-src-mac: did the gateway's DHCP lease ip to mac through
 * p's port? */
static bool peer_bound(void *ctx, const uint8_t mac[6], uint32_t ip)
{
  const struct relay_peer *p = ctx;
  for (int i = 0; i < RELAY_PEER_BINDINGS; i++)
    if (p->bindings[i].ip == ip && memcmp(p->bindings[i].mac, mac, 6) == 0)
      return true;
  return false;
}

static bool claims6_hold(const struct relay_peer *p, const uint8_t a[16])
{
  for (uint32_t i = 0; i < p->nclaims6; i++)
    if (memcmp(p->claims6[i], a, 16) == 0)
      return true;
  return false;
}

static bool peer_claimed6(void *ctx, const uint8_t a[16])
{
  return claims6_hold(ctx, a);
}

/* p's DAD for target passed the guard: remember the claim, unless the
 * MAC's EUI-64 forms it anyway or another session of the room holds it,
 * on any worker (that one defends it; the guest sees the conflict). The
 * room directory's lock is taken here, on the frame path, only for a DAD
 * that passed the guard: rare, and bounded by the flood rate DAD messages
 * count against. The oldest of a full set is given back for the new one. */
static void claim6_note(struct relay *r, struct relay_peer *p, const uint8_t target[16])
{
  uint8_t eui[16];
  net6_addr_eui64(eui, target, p->mac);
  if (claims6_hold(p, target) || memcmp(eui, target, 16) == 0)
    return;
  uint64_t owner = claim6_owner(r, p);
  uint32_t gid = r->rooms[p->room].gid;
  uint8_t slot = p->nclaims6 < RELAY_PEER_CLAIMS6 ? p->nclaims6 : p->next_claim6;
  bool replace = slot < p->nclaims6;
  roomdir_lock(r->dir);
  int rc = roomdir_claim6(r->dir, gid, target, owner);
  if (replace && rc == -ENOSPC) { /* the oldest's place, if the new one gets it */
    roomdir_unclaim6(r->dir, gid, p->claims6[slot], owner);
    if ((rc = roomdir_claim6(r->dir, gid, target, owner)) < 0)
      roomdir_claim6(r->dir, gid, p->claims6[slot], owner);
  } else if (replace && rc == 0) {
    roomdir_unclaim6(r->dir, gid, p->claims6[slot], owner);
  }
  roomdir_unlock(r->dir);
  if (rc < 0) {
    if (rc == -EEXIST)
      r->ctr.claims6_refused++;
    else
      r->ctr.claims6_full++;
    return;
  }
  if (p->nclaims6 < RELAY_PEER_CLAIMS6)
    p->nclaims6++;
  else
    p->next_claim6 = (uint8_t)((slot + 1) % RELAY_PEER_CLAIMS6);
  memcpy(p->claims6[slot], target, 16);
  r->ctr.claims6_added++;
}

/* A whole frame from peer p (iovecs borrowed): port security and the LAN
 * guards, then the switch. */
static void frame_in(struct relay *r, struct relay_peer *p, const struct iovec *iov, int iovcnt,
                     size_t len)
{
  if (len < 14) {
    r->ctr.frames_runt++;
    return;
  }
  if (len > r->cfg->max_frame_size) {
    r->ctr.frames_oversized++;
    peer_log(r, p, "frame dropped", "larger than --max-frame-size");
    return;
  }
  uint8_t head[LANGUARD_HEAD];
  size_t hlen = iov_gather(head, 0, len < sizeof(head) ? len : sizeof(head), iov, iovcnt);
  const uint8_t *src = head + 6;
  if (!r->cfg->allow_any_src_mac && memcmp(src, p->mac, 6) != 0) {
    r->ctr.frames_spoofed++;
    peer_log(r, p, "frame dropped", "source MAC is not the registered MAC");
    return;
  }
  const uint8_t *dad = NULL;
  struct languard_port gp = {.mac = p->mac,
                             .ip = p->ip,
                             .any_mac = r->cfg->allow_any_src_mac,
                             .bound = peer_bound,
                             .claimed6 = peer_claimed6,
                             .ctx = p,
                             .dad_target = &dad};
  enum languard_verdict v = languard_check(&r->guard, &gp, head, hlen);
  if (v != LANGUARD_PASS) {
    r->ctr.guard_drops[v]++;
    peer_log(r, p, "frame dropped by the LAN guard", languard_verdict_name(v));
    return;
  }
  if (dad)
    claim6_note(r, p, dad);
  r->ctr.frames_in++;
  r->ctr.frame_bytes_in += len;
  p->frames_in++;
  p->bytes_in += len;
  struct switch_frame f = {.iov = iov, .iovcnt = iovcnt, .len = len};
  struct relay_room *rm = &r->rooms[p->room];
  capture_tap(r->cap, &rm->cap, rm->name, iov, iovcnt, len);
  switch_input(&r->sw, p->port, &f, *r->now);
}

static void chunk_in(struct relay *r, struct relay_peer *p, const uint8_t *data, size_t len)
{
  struct bavy_chunk_hdr h;
  struct chunk_frame f;
  if (bavy_chunk_header_parse(data, len, &h) < 0) {
    r->ctr.chunks_bad_header++;
    return;
  }
  if (chunk_reasm_input(&r->chunks, &p->chunks, &h, *r->now, &f) != CHUNK_COMPLETE)
    return; /* pending, or a drop counted by the pool */
  frame_in(r, p, f.iov, f.iovcnt, f.len);
  chunk_reasm_release(&r->chunks, &f);
}

/* The session's switch port: one 0x01 datagram when the frame fits the
 * session's current maximum datagram payload, else chunks. Flood copies
 * go with low priority (SESSION_LOW: dropped when the receiver's queue is
 * half full, counted as flood_out_dropped). Unchunked
 * frames go from the sender's decrypted datagram straight into this
 * session's packet (h3_session_send does not copy unless it must queue). */
static int peer_deliver(void *ctx, const struct switch_frame *f)
{
  struct relay_peer *p = ctx;
  struct relay *r = p->relay;
  struct chunk_plan plan;
  int rc = 0;
  /* a flood copy must leave the receiver's queue room for unicast */
  unsigned low = f->flood ? SESSION_LOW : 0;
  if (!p->sess || p->closing)
    return -ENOTCONN;
  if (chunk_split_plan(f->len, session_max_datagram(p->sess), &plan) < 0) {
    r->ctr.frames_out_too_big++;
    return -EMSGSIZE;
  }
  if (!plan.chunked) {
    uint8_t type = BAVY_FRAME;
    struct iovec iov[1 + SWITCH_FRAME_IOV_MAX];
    iov[0].iov_base = &type;
    iov[0].iov_len = 1;
    for (int i = 0; i < f->iovcnt && i < SWITCH_FRAME_IOV_MAX; i++)
      iov[1 + i] = f->iov[i];
    rc = session_send_flags(p->sess, iov, 1 + f->iovcnt, low);
  } else {
    uint8_t buf[CHUNK_HDR + BAVY_CHUNK_DATA_MAX];
    uint16_t id = p->next_chunk_id++;
    for (uint32_t k = 0; k < plan.total && rc == 0; k++) {
      int n = chunk_split_write(buf, sizeof(buf), &plan, id, k, f->iov, f->iovcnt);
      if (n < 0) {
        rc = n;
        break;
      }
      /* only the first chunk of a flood copy is low priority: once it is
       * in, the rest follow (no half frame left at the receiver) */
      rc = session_send_flags(p->sess, &(struct iovec){.iov_base = buf, .iov_len = (size_t)n}, 1,
                              k == 0 ? low : 0);
      if (rc == 0)
        r->ctr.chunks_out++;
    }
    if (rc == 0)
      r->ctr.frames_out_chunked++;
  }
  if (rc < 0) {
    r->ctr.frames_out_failed++;
    if (low && rc == -ENOBUFS)
      r->ctr.flood_out_dropped++;
    return rc;
  }
  r->ctr.frames_out++;
  r->ctr.frame_bytes_out += f->len;
  p->frames_out++;
  p->bytes_out += f->len;
  return 0;
}

static const struct switch_port_ops peer_port_ops = {.deliver = peer_deliver};

static void age(struct timer *t, uint64_t now)
{
  struct relay *r = container_of(t, struct relay, age_timer);
  switch_age(&r->sw, now);
  chunk_reasm_expire(&r->chunks, now);
  timer_arm(r->timers, &r->age_timer, now + NS_PER_S);
}

void relay_on_datagram(struct relay *r, struct relay_peer *p, const uint8_t *data, size_t len)
{
  if (len == 0) {
    r->ctr.dgram_empty++;
    return;
  }
  p->last_seen_ns = *r->now;
  switch (data[0]) {
  case BAVY_CONTROL:
    handle_control(r, p, data + 1, len - 1);
    break;
  case BAVY_FRAME:
  case BAVY_CHUNK:
    if (!p->registered)
      r->ctr.frames_unregistered++;
    else if (data[0] == BAVY_FRAME)
      frame_in(r, p, &(struct iovec){.iov_base = (void *)(data + 1), .iov_len = len - 1}, 1,
               len - 1);
    else
      chunk_in(r, p, data + 1, len - 1);
    break;
  default:
    r->ctr.dgram_unknown_type++;
    break;
  }
}

static void sweep(struct timer *t, uint64_t now)
{
  struct relay *r = container_of(t, struct relay, sweep);
  uint64_t reg_to = (uint64_t)r->cfg->register_timeout_s * NS_PER_S;
  uint64_t peer_to = (uint64_t)r->cfg->peer_timeout_s * NS_PER_S;
  for (uint32_t i = 0; i < r->max_peers; i++) {
    struct relay_peer *p = &r->peers[i];
    if (!p->used || p->closing)
      continue;
    if (!p->registered && now - p->created_ns >= reg_to) {
      r->ctr.timeouts_register++;
      peer_log(r, p, "closing session", "registration timeout");
      send_error(r, p, "registration timeout");
      peer_close(r, p, 0, "registration timeout");
    } else if (p->registered && now - p->last_seen_ns >= peer_to) {
      r->ctr.timeouts_peer++;
      peer_log(r, p, "closing session", "peer timeout");
      peer_unregister(r, p);
      peer_close(r, p, 0, "peer timeout");
    }
  }
  /* Sweep at least every second while a registration timeout is shorter. */
  uint64_t every = (uint64_t)r->cfg->heartbeat_interval_s * NS_PER_S;
  if (reg_to < every)
    every = reg_to;
  timer_arm(r->timers, &r->sweep, now + every);
}

/* ---- h3 callbacks ---- */

/* Tokens and origins (auth.c): 0 to go on, else the refusal's status. */
static int session_auth(struct relay *r, struct session *s, const char *name,
                        struct auth_claims *cl, uint32_t *subject)
{
  *subject = 0;
  memset(cl, 0, sizeof(*cl));
  if (!r->auth)
    return 0;
  enum auth_reason why =
      auth_admit(r->auth, s->origin, s->query, name, (int64_t)time(NULL), cl, subject);
  if (why == AUTH_OK)
    return 0;
  uint32_t sup;
  if (log_ratelimit_allow(&r->rl, *r->now, &sup)) {
    char addr[64] = "?";
    session_remote_str(s, addr, sizeof(addr));
    log_info("session refused", "remote=%s origin=%s room=%s reason=%s status=%d suppressed=%u",
             addr, LOG_Q(s->origin), LOG_Q(name), auth_reason_name(why), auth_reason_status(why),
             sup);
  }
  return auth_reason_status(why);
}

int relay_session_open(struct relay *r, struct session *s, uint64_t client)
{
  uint32_t subject;
  struct auth_claims cl;
  bool exists, lead;
  const char *name = s->path[0] ? s->path : "/";
  int st = session_auth(r, s, name, &cl, &subject);
  if (st)
    return st;
  struct relay_peer *p = NULL;
  for (uint32_t i = 0; i < r->max_peers && r->npeers < r->max_peers; i++) {
    if (!r->peers[i].used) {
      p = &r->peers[i];
      break;
    }
  }
  if (!p) {
    r->ctr.sessions_refused_full++;
    auth_release(r->auth, subject);
    return 503;
  }
  if ((st = share_admit(r, s, client, name, &exists, &lead)) != 0) {
    auth_release(r->auth, subject);
    return st;
  }
  uint32_t id = p->id;
  memset(p, 0, sizeof(*p));
  p->id = id;
  p->used = true;
  p->room = RELAY_NO_ROOM; /* a room is joined (or made) by the Register */
  p->remote_room = RELAY_NO_ROOM;
  p->new_room = !exists && lead;
  p->sess = s;
  p->relay = r;
  p->port = SWITCH_NO_PORT;
  timer_init(&p->takeover, takeover_expired);
  chunk_owner_init(&p->chunks);
  p->created_ns = p->last_seen_ns = *r->now;
  p->mac_bound = cl.has_mac;
  memcpy(p->token_mac, cl.mac, 6);
  p->auth_subject = subject;
  p->client = client;
  r->npeers++;
  r->ctr.sessions++;
  s->app_data = p;
  uint32_t sup;
  if (log_ratelimit_allow(&r->rl_open, *r->now, &sup)) {
    char addr[64] = "?";
    session_remote_str(s, addr, sizeof(addr));
    log_info("session opened", "peer=%u transport=%s remote=%s room=%s origin=%s suppressed=%u",
             p->id, session_transport_name(s), addr, LOG_Q(name), LOG_Q(s->origin), sup);
  }
  return 200;
}

static int on_session_request(void *app, struct h3_session *hs)
{
  return relay_session_open(app, &hs->base, session_client_key(&hs->base));
}

static void on_session_datagram(void *app, struct h3_session *hs, const uint8_t *data, size_t len)
{
  relay_session_datagram(app, &hs->base, data, len);
}

void relay_session_datagram(struct relay *r, struct session *s, const uint8_t *data, size_t len)
{
  struct relay_peer *p = s->app_data;
  if (p)
    relay_on_datagram(r, p, data, len);
}

void relay_session_closed(struct relay *r, struct session *s, uint32_t code, const char *reason)
{
  struct relay_peer *p = s->app_data;
  if (!p)
    return;
  s->app_data = NULL;
  hist_observe(&r->session_hist, hist_bounds_long, *r->now - p->created_ns);
  uint32_t sup;
  if (log_ratelimit_allow(&r->rl_summary, *r->now, &sup)) {
    char addr[64] = "?";
    session_remote_str(s, addr, sizeof(addr));
    log_info("session ended",
             "peer=%u remote=%s origin=%s room=%s mac=%02x:%02x:%02x:%02x:%02x:%02x "
             "ip=%u.%u.%u.%u seconds=%.1f frames_in=%llu frames_out=%llu bytes_in=%llu "
             "bytes_out=%llu code=%u reason=%s suppressed=%u",
             p->id, addr, LOG_Q(s->origin), LOG_Q(peer_name(r, p)), p->mac[0], p->mac[1], p->mac[2],
             p->mac[3], p->mac[4], p->mac[5], p->ip >> 24, (p->ip >> 16) & 255, (p->ip >> 8) & 255,
             p->ip & 255, (double)(*r->now - p->created_ns) / 1e9, (unsigned long long)p->frames_in,
             (unsigned long long)p->frames_out, (unsigned long long)p->bytes_in,
             (unsigned long long)p->bytes_out, code, LOG_Q(reason), sup);
  }
  uint32_t waiter = p->probe_for;
  uint64_t remote_for = p->remote_for;
  uint32_t remote_from = p->remote_from;
  if (remote_for) {
    /* a holder probed for another worker that goes away: released */
    remote_holder_clear(r, p);
    r->ctr.takeovers++;
    remote_taken_log(r, p, remote_from, "old session ended");
  }
  takeover_clear(r, p);     /* a newcomer that goes away stops waiting */
  remote_wait_cancel(r, p); /* here or on other workers */
  lease_wait_cancel(r, p);  /* the cluster's answer will match nobody */
  uint32_t held = waiter ? room_hold(r, p) : RELAY_NO_ROOM;
  peer_unregister(r, p);
  if (remote_for)
    remote_answer(r, remote_from, remote_for, RELAY_VERDICT_RELEASED);
  if (waiter) {
    /* a holder that goes away while probed: the newcomer gets the MAC now */
    struct relay_peer *n = &r->peers[waiter - 1];
    if (n->used && n->waiting_on == peer_ref(r, p)) {
      uint8_t mac[6];
      memcpy(mac, n->want_mac, 6);
      takeover_clear(r, n);
      r->ctr.takeovers++;
      handle_register(r, n, mac);
    }
  }
  room_unhold(r, held);
  log_debug("session closed", "peer=%u code=%u reason=%s", p->id, code, LOG_Q(reason));
  /* the count share_admit took for (client, the CONNECT's room name) */
  roomdir_lock(r->dir);
  roomdir_session_del(r->dir, p->client, s->path[0] ? s->path : "/");
  roomdir_unlock(r->dir);
  auth_release(r->auth, p->auth_subject);
  p->auth_subject = 0;
  if (p->new_room && !p->registered) {
    /* the client's next session waiting for that name counts instead */
    for (uint32_t i = 0; i < r->max_peers; i++) {
      struct relay_peer *o = &r->peers[i];
      if (o != p && o->used && !o->registered && !o->new_room && o->client == p->client &&
          o->sess && strcmp(peer_name(r, o), peer_name(r, p)) == 0) {
        o->new_room = true;
        break;
      }
    }
  }
  p->new_room = false;
  p->sess = NULL;
  p->used = false;
  r->npeers--;
}

void relay_set_gateway(struct relay *r, struct gateway *gw)
{
  r->gw = gw;
  for (uint32_t i = 0; i < r->max_rooms; i++)
    if (r->rooms[i].used)
      gateway_room_attach(gw, i, gateway_subnet6_id(r->rooms[i].name));
}

void relay_set_auth(struct relay *r, struct auth *auth)
{
  r->auth = auth;
}

void relay_set_io(struct relay *r, struct io *io)
{
  lease_attach_io(&r->leases, io);
}

static uint64_t addr_client_of(void *ctx, uint32_t room, uint32_t port);

/* DHCP: a MAC of a live session in the room gets that session's address;
 * any other MAC (behind --allow-any-src-mac) a lease from the room's pool. */
static int addr_lease(void *ctx, uint32_t room, const uint8_t mac[6], uint32_t *ip)
{
  struct relay *r = ctx;
  if (room >= r->max_rooms || !r->rooms[room].used)
    return -ENOENT;
  for (uint32_t i = 0; i < r->max_peers; i++) {
    struct relay_peer *p = &r->peers[i];
    if (p->used && p->registered && p->room == room && memcmp(p->mac, mac, 6) == 0) {
      *ip = p->ip;
      return 0;
    }
  }
  /* behind --allow-any-src-mac: the client of the session the MAC was
   * learned on (0 = not known: no share) */
  uint32_t port = switch_lookup(&r->sw, room, mac, *r->now);
  uint64_t client = port != SWITCH_NO_PORT ? addr_client_of(r, room, port) : 0;
  int rc = ippool_acquire_for(pool_lock(r, room), mac, client, ip, *r->now);
  pool_unlock(r);
  return rc;
}

static void addr_release(void *ctx, uint32_t room, const uint8_t mac[6], uint32_t ip)
{
  struct relay *r = ctx;
  if (room >= r->max_rooms || !r->rooms[room].used)
    return;
  for (uint32_t i = 0; i < r->max_peers; i++) {
    struct relay_peer *p = &r->peers[i];
    if (p->used && p->registered && p->room == room && memcmp(p->mac, mac, 6) == 0)
      return; /* the session keeps its address */
  }
  /* the address may no longer speak through the port it was bound to */
  for (uint32_t i = 0; i < r->max_peers; i++) {
    struct relay_peer *p = &r->peers[i];
    if (!p->used || p->room != room)
      continue;
    for (int k = 0; k < RELAY_PEER_BINDINGS; k++)
      if (p->bindings[k].ip == ip && memcmp(p->bindings[k].mac, mac, 6) == 0)
        p->bindings[k].ip = 0;
  }
  ippool_release(pool_lock(r, room), ip, *r->now);
  pool_unlock(r);
}

/* The session behind switch port `port` of room, or NULL (the gateway's
 * port, a stale handle). */
static struct relay_peer *peer_of_port(struct relay *r, uint32_t room, uint32_t port)
{
  if (port >= r->sw.p.max_ports || !r->sw.ports[port].used ||
      r->sw.ports[port].ops != &peer_port_ops)
    return NULL;
  struct relay_peer *p = r->sw.ports[port].ctx;
  return p->used && p->registered && p->room == room ? p : NULL;
}

/* DHCP acknowledged ip for mac, asked through `port`: with
 * --allow-any-src-mac the LAN guard lets (mac, ip) speak on that port. A
 * port has RELAY_PEER_BINDINGS slots; a new lease replaces the oldest. */
static void addr_bind(void *ctx, uint32_t room, uint32_t port, const uint8_t mac[6], uint32_t ip)
{
  struct relay *r = ctx;
  struct relay_peer *p = peer_of_port(r, room, port);
  if (!p || !r->cfg->allow_any_src_mac || ip == p->ip)
    return;
  /* one address per MAC: a renewed or changed lease takes the MAC's slot */
  for (int k = 0; k < RELAY_PEER_BINDINGS; k++) {
    if (p->bindings[k].ip && memcmp(p->bindings[k].mac, mac, 6) == 0) {
      p->bindings[k].ip = ip;
      return;
    }
  }
  int slot = -1;
  for (int k = 0; k < RELAY_PEER_BINDINGS && slot < 0; k++)
    if (!p->bindings[k].ip)
      slot = k;
  if (slot < 0) {
    slot = p->next_binding;
    p->next_binding = (uint8_t)((p->next_binding + 1) % RELAY_PEER_BINDINGS);
    r->ctr.bindings_replaced++;
  }
  memcpy(p->bindings[slot].mac, mac, 6);
  p->bindings[slot].ip = ip;
  r->ctr.bindings_added++;
}

/* The NAT's per-client shares: the client key of the session behind a
 * switch port (its ctx is the peer when the port is a session's). */
static uint64_t addr_client_of(void *ctx, uint32_t room, uint32_t port)
{
  struct relay *r = ctx;
  if (port >= r->sw.p.max_ports || !r->sw.ports[port].used ||
      r->sw.ports[port].ops != &peer_port_ops)
    return 0;
  const struct relay_peer *p = r->sw.ports[port].ctx;
  return p->used && p->room == room ? p->client : 0;
}

/* Inbound forwarding: the registered session of room `name` on this
 * worker that holds mac (by MAC) or ip; its current address, so a forward
 * by MAC follows the VM to whatever address its new session got. */
static int addr_vm_lookup(void *ctx, const char *name, const uint8_t *mac, uint32_t ip,
                          uint32_t *room, uint32_t *ip_out, uint8_t mac_out[6])
{
  struct relay *r = ctx;
  uint32_t rm = room_find(r, name);
  if (rm == RELAY_NO_ROOM)
    return -ENOENT;
  for (uint32_t i = 0; i < r->max_peers; i++) {
    const struct relay_peer *p = &r->peers[i];
    if (!p->used || !p->registered || p->room != rm || !p->ip ||
        (mac ? memcmp(p->mac, mac, 6) != 0 : p->ip != ip))
      continue;
    *room = rm;
    *ip_out = p->ip;
    memcpy(mac_out, p->mac, 6);
    return 0;
  }
  return -ENOENT;
}

const struct gateway_addr_ops relay_addr_ops = {.lease = addr_lease,
                                                .release = addr_release,
                                                .client_of = addr_client_of,
                                                .bind = addr_bind,
                                                .vm_lookup = addr_vm_lookup};

static void on_session_closed(void *app, struct h3_session *hs, uint32_t code, const char *reason)
{
  relay_session_closed(app, &hs->base, code, reason);
}

static void on_session_datagram_ack(void *app, struct h3_session *hs, uint64_t id, bool acked)
{
  relay_session_datagram_ack(app, &hs->base, id, acked);
}

const struct h3_app_ops relay_h3_ops = {
    .on_session_request = on_session_request,
    .on_session_datagram = on_session_datagram,
    .on_session_closed = on_session_closed,
    .on_session_datagram_ack = on_session_datagram_ack,
};

/* ---- counters ---- */

/* The relay's counters for /metrics (metrics.c) and the exit log, in one
 * table: a field of struct relay_counters without a row fails test_relay.
 * The storm-control family is last: metrics.c appends the switch's
 * rate-limited sample to it. */
#define R(fam, help, labels, line, key, field)                                                     \
  COUNTER_DEF(struct relay_counters, fam, help, labels, line, key, field)
#define RL "relay counters"
#define FL "frame counters"
#define GL "lan guard counters"
#define GUARD(v, name)                                                                             \
  R("wtrelay_lan_guard_drops_total", NULL, "reason=\"" name "\"", GL, name, guard_drops[v])
static const struct counter_def relay_counter_defs[] = {
    R("wtrelay_sessions_accepted_total", "WebTransport sessions taken as bavy peers", NULL, RL,
      "sessions", sessions),
    R("wtrelay_control_messages_total", "bavy control messages handled", "type=\"register\"", RL,
      "registers", registers),
    R("wtrelay_control_messages_total", NULL, "type=\"assigned\"", RL, "assigned", assigned),
    R("wtrelay_control_messages_total", NULL, "type=\"heartbeat\"", RL, "heartbeats", heartbeats),
    R("wtrelay_control_messages_total", NULL, "type=\"disconnect\"", RL, "disconnects",
      disconnects),
    R("wtrelay_control_refused_total", "control messages refused or bad", "reason=\"mac_busy\"", RL,
      "refused_busy", register_refused_busy),
    R("wtrelay_control_refused_total", NULL, "reason=\"pool_exhausted\"", RL, "refused_pool",
      register_refused_pool),
    R("wtrelay_control_refused_total", NULL, "reason=\"lease_conflict\"", RL, "lease_conflicts",
      lease_conflicts),
    R("wtrelay_control_refused_total", NULL, "reason=\"other_mac\"", RL, "refused_other_mac",
      register_refused_other_mac),
    R("wtrelay_control_refused_total", NULL, "reason=\"bad_json\"", RL, "bad_json", ctrl_bad_json),
    R("wtrelay_control_refused_total", NULL, "reason=\"bad_mac\"", RL, "bad_mac", ctrl_bad_mac),
    R("wtrelay_control_refused_total", NULL, "reason=\"oversized\"", RL, "oversized",
      ctrl_oversized),
    R("wtrelay_control_refused_total", NULL, "reason=\"unknown_type\"", RL, "unknown_ctrl",
      ctrl_unknown_type),
    R("wtrelay_control_refused_total", NULL, "reason=\"switch_full\"", RL, "refused_switch_full",
      ports_full),
    R("wtrelay_control_refused_total", NULL, "reason=\"reserved_mac\"", GL, "register_reserved_mac",
      register_refused_reserved),
    R("wtrelay_control_refused_total", NULL, "reason=\"rooms_full\"", RL, "refused_rooms",
      register_refused_rooms),
    R("wtrelay_control_refused_total", NULL, "reason=\"client_rooms\"", RL, "refused_client_rooms",
      register_refused_client_rooms),
    R("wtrelay_control_refused_total", NULL, "reason=\"client_room_rate\"", RL,
      "refused_client_rate", register_refused_client_rate),
    R("wtrelay_control_refused_total", NULL, "reason=\"client_address_share\"", RL, "refused_share",
      register_refused_share),
    R("wtrelay_cluster_lease_waits_total",
      "Registers that waited for the cluster's lease (relays federated)", NULL, RL, "lease_waits",
      lease_waits),
    R("wtrelay_cluster_lease_waits_failed_total",
      "lease waits that ended otherwise than by an answer: timed out (local address used), or "
      "an answer matching no waiting session",
      "reason=\"timeout\"", RL, "lease_timeouts", lease_timeouts),
    R("wtrelay_cluster_lease_waits_failed_total", NULL, "reason=\"unknown\"", RL, "lease_unknown",
      lease_unknown),
    R("wtrelay_takeovers_other_relay_total",
      "Sessions ended because their MAC registered on another relay", NULL, RL, "takeovers_fed",
      takeovers_fed),
    R("wtrelay_control_replies_failed_total",
      "control replies (Assigned, Error, Pong) the session could not take", NULL, RL,
      "replies_failed", replies_failed),
    R("wtrelay_takeover_probes_total", "liveness probes sent to a MAC's holder", NULL, RL,
      "takeover_probes", takeover_probes),
    R("wtrelay_takeovers_total",
      "Register for a MAC held by another session: the holder probed, then",
      "result=\"taken_over\"", RL, "takeovers", takeovers),
    R("wtrelay_takeovers_total", NULL, "result=\"holder_alive\"", RL, "takeover_refused_alive",
      takeover_refused_alive),
    R("wtrelay_takeover_remote_asks_total",
      "takeovers across workers: asks this worker sent the other workers (out) and received (in)",
      "dir=\"out\"", RL, "takeover_remote_asks", takeover_remote_asks),
    R("wtrelay_takeover_remote_asks_total", NULL, "dir=\"in\"", RL, "takeover_remote_asks_in",
      takeover_remote_asks_in),
    R("wtrelay_takeover_remote_results_total",
      "how the waits of the asks sent ended: holder released, holder alive, MAC not held there, "
      "timed out",
      "result=\"released\"", RL, "takeover_remote_released", takeover_remote_released),
    R("wtrelay_takeover_remote_results_total", NULL, "result=\"holder_alive\"", RL,
      "takeover_remote_alive", takeover_remote_alive),
    R("wtrelay_takeover_remote_results_total", NULL, "result=\"not_here\"", RL,
      "takeover_remote_not_here", takeover_remote_not_here),
    R("wtrelay_takeover_remote_results_total", NULL, "result=\"timeout\"", RL,
      "takeover_remote_timeouts", takeover_remote_timeouts),
    R("wtrelay_takeover_remote_unknown_verdicts_total",
      "takeover verdicts received for no waiting session", NULL, RL, "takeover_remote_unknown",
      takeover_remote_unknown),
    R("wtrelay_takeover_control_dropped_total",
      "takeover asks and verdicts a full worker-pair control ring refused", NULL, RL,
      "takeover_remote_ring_drops", takeover_remote_ring_drops),
    R("wtrelay_sessions_ended_total", "sessions ended by the relay", "reason=\"register_timeout\"",
      RL, "timeouts_register", timeouts_register),
    R("wtrelay_sessions_ended_total", NULL, "reason=\"peer_timeout\"", RL, "timeouts_peer",
      timeouts_peer),
    R("wtrelay_sessions_ended_total", NULL, "reason=\"relay_full\"", RL, "sessions_refused_full",
      sessions_refused_full),
    R("wtrelay_sessions_ended_total", NULL, "reason=\"rooms_full\"", RL, "sessions_refused_rooms",
      sessions_refused_rooms),
    R("wtrelay_sessions_ended_total", NULL, "reason=\"client_rooms\"", RL,
      "sessions_refused_client_rooms", sessions_refused_client_rooms),
    R("wtrelay_sessions_ended_total", NULL, "reason=\"client_room_rate\"", RL,
      "sessions_refused_client_rate", sessions_refused_client_rate),
    R("wtrelay_sessions_ended_total", NULL, "reason=\"client_sessions\"", RL,
      "sessions_refused_client_sessions", sessions_refused_client_sessions),
    R("wtrelay_address_share_recycled_total",
      "Register or DHCP of a client at its address share that got its own oldest sticky lease",
      NULL, RL, "share_recycled", share_recycled),
    R("wtrelay_client_rate_evictions_total",
      "clients forgotten by the full room-creation rate table", NULL, RL, "clients_evicted",
      clients_evicted),
    R("wtrelay_uplink_frames_skipped_total",
      "frames of a room copy not sent toward a worker without a copy of the room", NULL, FL,
      "uplink_skipped", uplink_skipped),
    R("wtrelay_frames_total", "Ethernet frames through the relay", "dir=\"in\"", FL, "frames_in",
      frames_in),
    R("wtrelay_frames_total", NULL, "dir=\"out\"", FL, "frames_out", frames_out),
    R("wtrelay_frame_bytes_total", "Ethernet frame bytes", "dir=\"in\"", FL, "bytes_in",
      frame_bytes_in),
    R("wtrelay_frame_bytes_total", NULL, "dir=\"out\"", FL, "bytes_out", frame_bytes_out),
    R("wtrelay_frames_out_chunked_total", "frames sent to a session as chunks", NULL, FL,
      "out_chunked", frames_out_chunked),
    R("wtrelay_chunks_out_total", "chunks sent", NULL, FL, "chunks_out", chunks_out),
    R("wtrelay_frames_dropped_total", "frames dropped", "reason=\"unregistered\"", RL,
      "frames_unregistered", frames_unregistered),
    R("wtrelay_frames_dropped_total", NULL, "reason=\"spoofed_mac\"", FL, "spoofed",
      frames_spoofed),
    R("wtrelay_frames_dropped_total", NULL, "reason=\"runt\"", FL, "runt", frames_runt),
    R("wtrelay_frames_dropped_total", NULL, "reason=\"oversized\"", FL, "oversized",
      frames_oversized),
    R("wtrelay_frames_dropped_total", NULL, "reason=\"send_failed\"", FL, "out_failed",
      frames_out_failed),
    R("wtrelay_frames_dropped_total", NULL, "reason=\"too_big_for_session\"", FL, "out_too_big",
      frames_out_too_big),
    R("wtrelay_frames_dropped_total", NULL, "reason=\"bad_chunk_header\"", FL, "chunk_bad_header",
      chunks_bad_header),
    R("wtrelay_frames_dropped_total", NULL, "reason=\"empty_datagram\"", RL, "empty", dgram_empty),
    R("wtrelay_frames_dropped_total", NULL, "reason=\"unknown_type\"", RL, "unknown_type",
      dgram_unknown_type),
    R(NULL, NULL, NULL, NULL, NULL, guard_drops[LANGUARD_PASS]), /* never counted */
    R("wtrelay_lan_guard_drops_total", "frames from sessions the LAN guards dropped, by reason",
      "reason=\"arp_spoof\"", GL, "arp_spoof", guard_drops[LANGUARD_ARP_SPOOF]),
    GUARD(LANGUARD_ARP_MAC, "arp_mac"),
    GUARD(LANGUARD_ARP_BAD, "arp_bad"),
    GUARD(LANGUARD_IP_SPOOF, "ip_spoof"),
    GUARD(LANGUARD_IP_BAD, "ip_bad"),
    GUARD(LANGUARD_VLAN, "vlan"),
    GUARD(LANGUARD_RESERVED_SRC, "reserved_src_mac"),
    GUARD(LANGUARD_IP6_SPOOF, "ip6_spoof"),
    GUARD(LANGUARD_IP6_BAD, "ip6_bad"),
    GUARD(LANGUARD_ND_ROUTER, "nd_router"),
    R("wtrelay_lan_guard_bindings_added_total",
      "DHCP leases bound to the port they were asked through (--allow-any-src-mac)", NULL, GL,
      "bindings_added", bindings_added),
    R("wtrelay_lan_guard_bindings_replaced_total",
      "DHCP lease bindings moved to another port (--allow-any-src-mac)", NULL, GL,
      "bindings_replaced", bindings_replaced),
    R("wtrelay_lan_guard_ipv6_claims_total",
      "IPv6 addresses sessions claimed by duplicate address detection (privacy addresses)",
      "result=\"recorded\"", GL, "claims6_added", claims6_added),
    R("wtrelay_lan_guard_ipv6_claims_total", NULL, "result=\"held_by_another\"", GL,
      "claims6_refused", claims6_refused),
    R("wtrelay_lan_guard_ipv6_claims_total", NULL, "result=\"table_full\"", GL, "claims6_full",
      claims6_full),
    R("wtrelay_storm_control_drops_total",
      "flooded frames dropped by storm control: at the sender's rate limit (frames), or "
      "flood copies a receiver's half-full datagram queue refused (copies)",
      "reason=\"receiver_queue\"", GL, "flood_copies_dropped", flood_out_dropped),
};
#undef GUARD
#undef GL
#undef FL
#undef RL
#undef R

const struct counter_table relay_counter_table =
    COUNTER_TABLE(relay_counter_defs, struct relay_counters);
