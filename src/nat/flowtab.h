/*
 * flowtab: the NAT's one flow table, shared by UDP mappings, ICMP echo
 * flows and TCP connections. Private to src/nat.
 *
 * Owns: a fixed array of entries, one per flow slot of every protocol,
 * allocated once at start-up (capacity = --max-udp-flows + the ICMP bound
 * + --max-tcp-conns); the entries of a protocol are a contiguous part of
 * it, so each protocol keeps its own per-flow state in its own array
 * indexed by the same protocol-local slot (gw->udp[slot], gw->tcp[slot]...)
 * and a full part refuses only that protocol (-ENOSPC, counted). Each part
 * has a free list (no search for a free slot; first in, first out, so a
 * slot is reused as late as possible) and a list of its flows from
 * least to most recently used (flowtab_touch), so expiry looks only at the
 * flows that expire.
 *
 * Lookups: a forward index by the flow's key (protocol, room, VM address
 * and port or echo id, and for TCP the remote address and port; a protocol
 * that maps endpoint-independently leaves the remote part 0) and a reverse
 * index by a 32-bit key scoped by protocol (the echo id put on the wire in
 * ICMP raw-socket mode). Both are chained hash tables with twice as many
 * buckets as slots, chains threaded through the entries (32-bit index + 1),
 * nothing allocated after flowtab_init.
 *
 * The bucket is chosen by SipHash-1-3 under a 128-bit secret drawn from
 * rng_fill for each table (each gateway, so each worker): guests choose
 * their ports, echo ids and destinations, and with an unkeyed hash (the
 * earlier hash_mix64 of the key) a guest could pick keys that all land in
 * one chain and make every lookup of the worker walk it. SipHash is a PRF
 * built for exactly this (hash-flooding resistance); the 1-3 round variant
 * is what Rust's standard HashMap and CPython's str hash use for it, at
 * half the cost of 2-4 (a few tens of nanoseconds for our 41-byte key). The secret
 * never leaves the process and differs between instances, so keys that
 * collide in one worker (found by timing, say) do not collide in another
 * or after a restart.
 *
 * Never: touches sockets, counters of the gateway or nat_share accounts;
 * the protocol modules do that around these calls.
 */
#ifndef WTRELAY_NAT_FLOWTAB_H
#define WTRELAY_NAT_FLOWTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wtrelay/inany.h"

enum ft_proto { FT_UDP, FT_ICMP, FT_TCP, FT_DNS, FT_PROTOS };

#define FT_NONE UINT32_MAX

/* A flow's key: ports in host order, addresses of either family
 * (wtrelay/inany.h: IPv4 as ::ffff:a.b.c.d, so an IPv4 flow and an IPv6
 * one never share a key). Fill every field (0 where a protocol has no such
 * part): equality is field by field. 41 bytes of content, 44 in memory. */
struct ft_key {
  uint32_t room;
  uint16_t vport, rport; /* VM port (UDP, TCP) or echo id (ICMP); remote port */
  union inany vip, rip;  /* VM address, remote address */
  uint8_t proto;         /* enum ft_proto */
};

enum ft_state { FT_FREE, FT_HELD, FT_LINKED };

struct ft_ent {
  struct ft_key key;
  uint32_t next, rnext;  /* forward and reverse chains, global index + 1 */
  uint32_t vnext;        /* the VM index's chain (protocols in by_vm) */
  uint32_t older, newer; /* the part's LRU list, global index + 1 */
  uint32_t rkey;
  uint8_t state; /* enum ft_state */
  bool has_rkey;
  uint64_t last_ns; /* flowtab_touch */
};

/* One protocol's part of the table. */
struct ft_part {
  uint32_t base, cap;
  uint32_t live;                 /* linked: found by lookups */
  uint32_t taken;                /* slots not free (live + held after flowtab_unlink) */
  uint32_t free_head, free_tail; /* FIFO, global index + 1 */
  uint32_t oldest, newest;       /* LRU ends, global index + 1 */
  uint64_t full;                 /* inserts refused with -ENOSPC */
};

struct flowtab {
  struct ft_ent *e;
  uint32_t *fwd, *rev; /* bucket heads, global index + 1 */
  uint32_t *vm;        /* the VM index's bucket heads (NULL: no by_vm) */
  uint32_t by_vm;      /* bit p: protocol p is in the VM index */
  uint32_t mask, cap;
  uint64_t k0, k1; /* the SipHash secret */
  struct ft_part part[FT_PROTOS];
};

/* Allocates cap[p] slots for each protocol p (0 = none) and draws the
 * secret; the protocols whose bit is set in by_vm are also indexed by
 * (room, VM address) for flowtab_vm_count. 0 or -ENOMEM/-EINVAL (more
 * than 2^30 slots in all). */
int flowtab_init(struct flowtab *t, const uint32_t cap[FT_PROTOS], uint32_t by_vm);
void flowtab_fini(struct flowtab *t);

/* The protocol-local slot of the live flow with key k, or FT_NONE. */
uint32_t flowtab_lookup(const struct flowtab *t, const struct ft_key *k);
/* Takes a free slot of k->proto for k, linked and newest in its LRU list
 * with last use `now`; *slot = its protocol-local index. -ENOSPC when the
 * part is full (counted in part.full), -EEXIST when k is live already. */
int flowtab_insert(struct flowtab *t, const struct ft_key *k, uint64_t now, uint32_t *slot);
/* Takes the flow out of both indexes and the LRU list (no lookup finds it
 * any more, live-1) but keeps its slot taken until flowtab_free: for a TCP
 * connection that waits for its ring operations to come back. */
void flowtab_unlink(struct flowtab *t, enum ft_proto p, uint32_t slot);
/* Gives the slot back (unlinking it first if it is still linked). */
void flowtab_free(struct flowtab *t, enum ft_proto p, uint32_t slot);
/* The flow was used at `now`: it becomes the newest of its part. */
void flowtab_touch(struct flowtab *t, enum ft_proto p, uint32_t slot, uint64_t now);
/* The least recently used live flow of p, or FT_NONE; and its last use. */
uint32_t flowtab_oldest(const struct flowtab *t, enum ft_proto p);
uint64_t flowtab_last(const struct flowtab *t, enum ft_proto p, uint32_t slot);
/* Reverse key: a 32-bit value (an id on the wire) under which the linked
 * flow is also found, scoped by protocol; one per flow, replaced by a
 * second call. Several flows may share one (the first linked is found). */
void flowtab_set_rkey(struct flowtab *t, enum ft_proto p, uint32_t slot, uint32_t rkey);
uint32_t flowtab_lookup_rkey(const struct flowtab *t, enum ft_proto p, uint32_t rkey);

/* Live flows of p with this room and VM address, counted up to limit (the
 * walk stops there: a per-VM cap needs no more): O(limit + the chain's
 * other VMs). 0 for a protocol not in by_vm. */
uint32_t flowtab_vm_count(const struct flowtab *t, enum ft_proto p, uint32_t room,
                          const union inany *vip, uint32_t limit);

static inline uint32_t flowtab_live(const struct flowtab *t, enum ft_proto p)
{
  return t->part[p].live;
}
static inline const struct ft_key *flowtab_key(const struct flowtab *t, enum ft_proto p,
                                               uint32_t slot)
{
  return &t->e[t->part[p].base + slot].key;
}

/* The keyed hash of k (the bucket is its low bits). */
uint64_t flowtab_hash(const struct flowtab *t, const struct ft_key *k);
/* The longest forward chain: what a lookup may walk at worst. A scan of
 * every bucket: for tests and diagnostics, not the hot path. */
uint32_t flowtab_longest_chain(const struct flowtab *t);
/* SipHash-c-d of len bytes under a 16-byte key (little-endian, as in the
 * reference): exposed for its test vectors. */
uint64_t flowtab_siphash(const uint8_t key[16], const void *msg, size_t len, int c, int d);

#endif
