/*
 * ippool: the IPv4 address pool of one room (virtual LAN).
 *
 * A fixed table, one entry per address of the range, allocated at init.
 * Addresses are handed out from the top of the range downward, as the seed
 * does. A MAC keeps its address after its lease ends for as long as nobody
 * else needs it, so a VM that reconnects gets the same IP; when every
 * address has been used, a released one is reclaimed: the one released
 * longest ago among those whose lease time (lease_ns) has passed, else the
 * one released longest ago. A MAC with a live lease is refused (-EBUSY):
 * no session hijacks another, and a live address is never reclaimed.
 * Shared by Register/Assigned and DHCP.
 *
 * Per-client shares: every address records the client (the relay's client
 * key of the session's address; 0 = none, e.g. a lease read back from the
 * lease file) that last acquired it. With client_max set, a client holds
 * at most that many addresses of the pool, live or released: a client at
 * its share that acquires for a new MAC gets back its own address released
 * longest ago (that lease is forgotten), and is refused (-EDQUOT) only when
 * every address it holds is live. So one client cannot fill a pool with
 * abandoned leases, and a full pool still gives way to anyone through the
 * reclaim of released addresses above. Client 0 is never capped.
 *
 * The pool knows nothing of files or other rooms: a room made again is
 * seeded (ippool_seed) with the MACs it remembered, and an optional
 * observer hears every acquire and release (the relay keeps the lease
 * table, lease.c, in step with it that way).
 */
#ifndef WTRELAY_IPPOOL_H
#define WTRELAY_IPPOOL_H

#include <stdbool.h>
#include <stdint.h>

struct ippool_entry {
  uint8_t mac[6];
  bool used_ever; /* mac is meaningful */
  bool live;
  int64_t released_ns; /* CLOCK_MONOTONIC; may be negative for a lease released before boot */
  uint64_t client;     /* who acquired it last (0 = none); meaningful while used_ever */
};

enum ippool_event_type { IPPOOL_ACQUIRED = 1, IPPOOL_RELEASED = 2 };

struct ippool_event {
  enum ippool_event_type type;
  const uint8_t *mac; /* the MAC now holding (or releasing) ip */
  uint32_t ip;
  bool reclaimed;         /* ACQUIRED: ip was taken from old_mac's released lease */
  bool reclaimed_expired; /* ... whose lease time had passed */
  bool share_recycled;    /* ... which was the acquiring client's own (it was at its share) */
  uint8_t old_mac[6];
  uint64_t client; /* ACQUIRED: the acquiring client (0 = none) */
};

struct ippool;
typedef void (*ippool_observer_fn)(void *ctx, struct ippool *p, const struct ippool_event *ev,
                                   uint64_t now);

struct ippool {
  uint32_t first, last; /* host order, inclusive */
  uint32_t n;
  uint64_t lease_ns;   /* lease time after a release; 0 = expires at once */
  uint32_t client_max; /* addresses one client may hold; 0 = no cap */
  struct ippool_entry *e;
  ippool_observer_fn observer; /* may be NULL */
  void *observer_ctx;
};

int ippool_init(struct ippool *p, uint32_t first_host, uint32_t last_host);
void ippool_fini(struct ippool *p);
/* Sets the observer (called after every successful acquire and release). */
void ippool_observe(struct ippool *p, ippool_observer_fn fn, void *ctx);
/* Remembers that mac held ip until released_ns (a released lease). Returns
 * 0, -ERANGE (ip outside the pool), -EEXIST (ip or mac already taken). */
int ippool_seed(struct ippool *p, const uint8_t mac[6], uint32_t ip, int64_t released_ns);
/* The same, for a lease that `client` made (0 = none). */
int ippool_seed_for(struct ippool *p, const uint8_t mac[6], uint32_t ip, int64_t released_ns,
                    uint64_t client);
/* 0 with *ip_out, -EBUSY (MAC holds a live lease), -ENOSPC (exhausted). */
int ippool_acquire(struct ippool *p, const uint8_t mac[6], uint32_t *ip_out, uint64_t now);
/* The same for `client` (0 = none, never capped); also -EDQUOT: the client
 * holds client_max addresses and all of them are live. */
int ippool_acquire_for(struct ippool *p, const uint8_t mac[6], uint64_t client, uint32_t *ip_out,
                       uint64_t now);
/* Addresses `client` holds in the pool (live or released). */
uint32_t ippool_client_held(const struct ippool *p, uint64_t client);
void ippool_release(struct ippool *p, uint32_t ip, uint64_t now);
/* Moves mac's live lease from address `from` to `to` (the address the
 * cluster gave the MAC, relays federated): the entry at `from` is
 * forgotten (it was a candidate, never the VM's), a released lease of
 * another MAC at `to` is reclaimed; the observer hears an acquire of `to`.
 * 0, -ENOENT (mac holds no live lease at from), -EBUSY (`to` is live for
 * another MAC), -ERANGE. */
int ippool_move(struct ippool *p, const uint8_t mac[6], uint32_t from, uint32_t to, uint64_t now);
/* Whether ip holds a live lease (its MAC in mac_out, may be NULL). */
bool ippool_lookup_ip(const struct ippool *p, uint32_t ip, uint8_t mac_out[6]);
/* Whether mac holds a live lease (its address in *ip). */
bool ippool_lookup_mac(const struct ippool *p, const uint8_t mac[6], uint32_t *ip);

#endif
