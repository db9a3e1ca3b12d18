/*
 * hostaddr: the addresses the relay host would deliver to itself, followed
 * live through rtnetlink, so that the NAT refuses them whenever and however
 * they appeared (an address added after start, an AnyIP `ip route add
 * local`, a subnet broadcast address).
 *
 * The kernel keeps a route of type local (or broadcast, anycast) for every
 * such destination; hostaddr mirrors exactly those IPv4 and IPv6 routes
 * (and the host's IPv6 routes to the internet, hostaddr_has_route6) in
 * a fixed table: one dump (RTM_GETROUTE, every family) at start-up, then
 * the RTM_NEWROUTE / RTM_DELROUTE notifications of the RTMGRP_IPV4_ROUTE
 * and RTMGRP_IPV6_ROUTE groups, read by a
 * receive on the worker's io_uring (never a blocking call in the loop).
 * When the socket overruns (ENOBUFS: notifications were lost) every entry
 * is marked stale, a new dump is requested, and stale entries that the dump
 * does not confirm are removed when it ends; until then they stay refused
 * (the table errs on the side of refusing). A lookup is a scan of a handful
 * of prefixes, cheap enough for every packet.
 *
 * Why routes and not addresses (RTMGRP_IPV4_IFADDR): an address is one of
 * several ways a destination becomes local; the local routes are what the
 * kernel's delivery decision actually reads. Why not a RTM_GETROUTE lookup
 * per destination: that is a system call per new destination on the hot
 * path, and a cache of its answers is stale exactly in the window an
 * attacker needs.
 *
 * Talks to: the kernel (AF_NETLINK), io (one user op). Never: decides
 * policy; the gateway asks hostaddr_is_local() and refuses.
 */
#ifndef WTRELAY_HOSTADDR_H
#define WTRELAY_HOSTADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wtrelay/counter.h"

#define HOSTADDR_MAX 1024  /* local/broadcast/anycast routes mirrored, both families */
#define HOSTADDR_BUF 32768 /* one netlink read */

struct io;

struct hostaddr_route {
  uint8_t family;     /* AF_INET or AF_INET6 */
  uint32_t net, mask; /* IPv4, host order */
  uint8_t net6[16];   /* IPv6, network order, host bits zero */
  uint8_t len, type;  /* prefix length, RTN_LOCAL / RTN_BROADCAST / RTN_ANYCAST */
  uint32_t table, oif;
  bool stale; /* awaiting confirmation by a resync dump */
};

struct hostaddr_counters {
  uint64_t added, removed; /* routes mirrored / dropped */
  uint64_t overruns;       /* ENOBUFS: notifications lost, a resync followed */
  uint64_t resyncs;        /* dumps completed after start-up */
  uint64_t full;           /* routes that did not fit the table */
  uint64_t errors;         /* failed reads or requests */
};

struct hostaddr {
  struct hostaddr_route r[HOSTADDR_MAX];
  uint32_t n;
  int fd;
  struct io *io;
  uint32_t seq, dump_seq; /* dump_seq: the resync dump in progress, 0 = none */
  bool armed;
  struct hostaddr_counters ctr;
  _Alignas(8) uint8_t buf[HOSTADDR_BUF]; /* netlink messages are read in place */
};

/* An empty table, no socket (tests feed it with hostaddr_input). */
void hostaddr_init(struct hostaddr *h);
/* Opens the rtnetlink socket, joins RTMGRP_IPV4_ROUTE, reads the current
 * routes (a blocking dump: start-up only), then keeps reading on io's ring
 * (user op IO_OP_HOSTADDR). 0 or negative errno. */
int hostaddr_open(struct hostaddr *h, struct io *io);
void hostaddr_fini(struct hostaddr *h);
/* Applies a buffer of netlink messages (route notifications or dump
 * parts; at most HOSTADDR_BUF bytes, 4-byte aligned). Returns 1 when it held the NLMSG_DONE of the
 * dump `dump_seq` (0 = any), else 0; -EINVAL on a malformed buffer (what was valid before the fault
 * is applied). */
int hostaddr_input(struct hostaddr *h, const uint8_t *buf, size_t len, uint32_t dump_seq);
/* Resync after lost notifications: every entry stale (still refused)
 * until a dump confirms it (hostaddr_input clears the mark); at the dump's
 * end, the entries still stale are dropped. */
void hostaddr_mark_stale(struct hostaddr *h);
void hostaddr_sweep_stale(struct hostaddr *h);
/* True when the host would deliver ip (host order) to itself. */
bool hostaddr_is_local(const struct hostaddr *h, uint32_t ip);
/* The same for an IPv6 address (16 bytes, network order). */
bool hostaddr_is_local6(const struct hostaddr *h, const uint8_t a[16]);

/* Does the host have an IPv6 route to the internet (a unicast default
 * route of the main table, or one covering 2000::/3)? Followed live like
 * the local routes (kept in the same table with type RTN_UNICAST, never
 * taken for local ones): the gateway advertises itself as a default
 * router and translates IPv6 only while it holds. */
bool hostaddr_has_route6(const struct hostaddr *h);

/* The counters' table (wtrelay/counter.h): /metrics and the exit log
 * are written from it. */
extern const struct counter_table hostaddr_counter_table;

#endif
