/*
 * switch: the virtual Ethernet switch, one L2 domain per room.
 *
 * Owns: a fixed table of ports (32-bit handles), each a member of one
 * domain; a MAC learning table keyed by (domain, MAC) with aging and
 * bounds per port, per domain and in all; flooding of broadcast, multicast
 * and unknown unicast to every other port of the domain; never a frame back
 * to the port it came from. Also the seed's routing shortcut: an IPv4 frame
 * sent to the router's MAC whose destination is the address of a port of
 * the same domain goes to that port, its Ethernet header rewritten as a
 * router would (destination = the port's MAC, source = the router's MAC).
 *
 * Storm control: every port (but those exempted: the gateway's, uplinks) has a
 * token bucket for the frames it makes the switch flood (broadcast,
 * multicast, unknown unicast): flood_rate frames a second, flood_burst at
 * once; a frame past it is dropped before any copy is made (counted per
 * port and as flood_limited). Each flood copy is marked (switch_frame.flood)
 * so the receiving port can give it less room than unicast; what a port
 * does with that mark is its own business.
 *
 * Uplink ports: a port of kind SWITCH_PORT_UPLINK stands for "the rest of
 * the LAN elsewhere" (the same room on another worker, later on another
 * relay). It is a port like the others (the switch calls its deliver op and
 * learns the MACs behind it), with these rules:
 *  - the MACs behind it are bounded by max_macs_per_uplink, not
 *    max_macs_per_port (the domain and table bounds still apply);
 *  - it has no storm-control bucket: the frame's sender was limited on the
 *    port where it entered the LAN;
 *  - split horizon: a frame that came in from an uplink never leaves
 *    through an uplink (flood, unicast or routed): in a full mesh every
 *    side floods to every other once, and a re-flood would loop;
 *  - the router port (the gateway: the port whose own MAC is router_mac)
 *    and uplinks never exchange frames: every side answers ARP, DHCP and
 *    NAT for its own sessions, and the gateways share one MAC;
 *  - a frame from an uplink whose source MAC is pinned to a local port is
 *    dropped (that address belongs here; it is never moved);
 *  - it has no address of its own (switch_port_set_addr refuses it, and
 *    switch_port_ip is 0): it stands for many hosts. The routing shortcut
 *    instead hands a frame whose destination IP no local port holds,
 *    unchanged, to every uplink of the domain (a flood: it costs the
 *    sender a token), and the far side's shortcut, which knows the port of
 *    that address, rewrites and delivers it.
 *
 * Talks to: ports through struct switch_port_ops (one operation: deliver
 * this frame). A WebTransport session is a port; the gateway will be one.
 * Never: knows QUIC, WebTransport or the bavy protocol; never copies frame
 * bytes (a frame is a list of borrowed iovecs; only a rewritten 12-byte
 * header is new).
 */
#ifndef WTRELAY_SWITCH_H
#define WTRELAY_SWITCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "wtrelay/counter.h"

#define SWITCH_FRAME_IOV_MAX 3
#define SWITCH_NO_PORT UINT32_MAX
#define SWITCH_MAX_DEPTH 3

/* A frame: the concatenation of iov[0..iovcnt-1] (borrowed, valid during
 * the call), len bytes in all, from the destination MAC on. */
struct switch_frame {
  const struct iovec *iov;
  int iovcnt;
  size_t len;
  uint32_t src_port; /* set by switch_input: the port the frame came from */
  bool flood;        /* set by the switch: a flood copy (broadcast, multicast, unknown unicast) */
};

/* What a port stands for. Local: one session, or the gateway. Uplink: the
 * rest of the room elsewhere (another worker or relay). */
enum switch_port_kind {
  SWITCH_PORT_LOCAL,
  SWITCH_PORT_UPLINK,
  SWITCH_PORT_KINDS,
};

/* What a port's deliver returns when it had nothing to do with the frame
 * by design (an uplink toward a worker without a copy of the room): not
 * counted as delivered, nor as failed. */
#define SWITCH_DELIVER_SKIPPED 1

struct switch_port_ops {
  /* Delivers one frame to the port. Returns 0, SWITCH_DELIVER_SKIPPED, or
   * a negative errno when the port dropped it (counted by the switch as
   * deliver_failed). The port may
   * be deleted from inside this call (its connection failed), and may
   * call switch_input itself (the gateway answers at once), up to
   * SWITCH_MAX_DEPTH levels. */
  int (*deliver)(void *ctx, const struct switch_frame *f);
};

struct switch_params {
  uint32_t max_ports;
  uint32_t max_domains;
  uint32_t max_macs; /* whole table */
  uint32_t max_macs_per_domain;
  uint32_t max_macs_per_port;
  uint32_t max_macs_per_uplink; /* MACs behind one uplink; 0 = max_macs_per_domain */
  uint64_t aging_ns;
  uint8_t router_mac[6];
  uint32_t subnet, netmask; /* host order; the routing shortcut's range */
  uint32_t flood_rate;      /* floods a port may cause per second, 0 = unlimited */
  uint32_t flood_burst;     /* ... at once (the bucket's depth), at least 1 when limited */
};

struct switch_port {
  bool used;
  uint8_t kind; /* enum switch_port_kind */
  bool router;  /* its own MAC is router_mac: the gateway */
  uint32_t domain;
  uint32_t prev, next; /* domain list, SWITCH_NO_PORT ends */
  uint32_t nmacs;
  uint8_t mac[6]; /* the port's own address (routing shortcut) */
  uint32_t ip;    /* host order, 0 = none */
  uint32_t alias; /* a second address of the port (the gateway's DNS address), 0 = none */
  const struct switch_port_ops *ops;
  void *ctx;
  uint64_t frames_in, frames_out;
  /* storm control: a token bucket in 1e-9 frame units */
  bool flood_exempt;
  bool flood_started;
  uint64_t flood_tokens, flood_last_ns;
  uint64_t floods_limited;
};

struct switch_domain {
  uint32_t head;
  uint32_t nports;
  uint32_t nuplinks;
  uint32_t nmacs;
};

struct switch_mac {
  uint8_t mac[6];
  bool used;
  bool fixed; /* never ages, never moves (the gateway's MAC) */
  uint32_t domain;
  uint32_t port;
  uint64_t seen_ns;
};

struct switch_counters {
  uint64_t frames_in, unicast, floods, flood_copies, routed, delivered, deliver_failed;
  uint64_t drop_runt, drop_bad_port, drop_same_port, drop_src_multicast, drop_too_deep;
  uint64_t flood_limited; /* frames not flooded: their port's bucket was empty */
  uint64_t learned, moved, aged, learn_full_port, learn_full_domain, learn_full_table;
  /* uplinks */
  uint64_t split_horizon;          /* copies not made, frames not sent: uplink to uplink */
  uint64_t drop_uplink_router;     /* frames between an uplink and the router port */
  uint64_t drop_uplink_pinned_src; /* frames from an uplink claiming a MAC pinned here */
  uint64_t routed_uplink;          /* routing-shortcut frames handed to the uplinks */
};

/* Per port kind (index enum switch_port_kind). */
struct switch_kind_counters {
  uint64_t frames_in;    /* frames that entered through a port of this kind */
  uint64_t frames_out;   /* frames delivered to a port of this kind */
  uint64_t flood_copies; /* of which flood copies */
  uint64_t learned;      /* MACs learned new on a port of this kind */
  uint64_t moved_in;     /* MACs moved to a port of this kind from another port */
  uint64_t learn_full;   /* MACs not learned: the port's own bound */
  uint64_t macs;         /* gauge: MACs learned on ports of this kind now */
};

struct switch_table {
  struct switch_params p;
  struct switch_port *ports;
  struct switch_domain *domains;
  struct switch_mac *macs; /* open addressing, linear probing */
  uint32_t mac_mask;       /* capacity - 1 */
  uint32_t nmacs;
  uint32_t *scratch; /* flood snapshots, max_ports entries per depth */
  uint32_t depth;    /* nested switch_input calls */
  struct switch_counters ctr;
  struct switch_kind_counters kind[SWITCH_PORT_KINDS];
};

int switch_init(struct switch_table *sw, const struct switch_params *p);
void switch_fini(struct switch_table *sw);

/* Adds a port to `domain`. *port is its handle. -ENOSPC when the table is
 * full, -EINVAL for a domain out of range. */
int switch_port_attach(struct switch_table *sw, uint32_t domain, const struct switch_port_ops *ops,
                       void *ctx, uint32_t *port);
/* Adds an uplink port to `domain` (see the rules above): flood-exempt,
 * MACs behind it bounded by max_macs_per_uplink. Errors as
 * switch_port_attach. */
int switch_uplink_attach(struct switch_table *sw, uint32_t domain,
                         const struct switch_port_ops *ops, void *ctx, uint32_t *port);
/* The port's kind (SWITCH_PORT_LOCAL for a port not in use). */
enum switch_port_kind switch_port_kind(const struct switch_table *sw, uint32_t port);
/* Removes the port and forgets every MAC learned on it. */
void switch_port_detach(struct switch_table *sw, uint32_t port);
/* The port's IPv4 address (host order, 0 = none; always 0 for an uplink). */
uint32_t switch_port_ip(const struct switch_table *sw, uint32_t port);
/* The port's own MAC and IPv4 address (host order), for the routing
 * shortcut. Ignored for an uplink, which stands for many hosts. */
void switch_port_set_addr(struct switch_table *sw, uint32_t port, const uint8_t mac[6],
                          uint32_t ip);

/* A second IPv4 address the routing shortcut delivers to the port as it
 * is (the gateway's DNS address beside its own); 0 removes it. Not
 * switch_port_ip, which stays the port's one source address. */
void switch_port_set_alias(struct switch_table *sw, uint32_t port, uint32_t ip);

/* Exempts the port from storm control (the gateway: its floods answer
 * guests whose own floods are limited). */
void switch_port_flood_exempt(struct switch_table *sw, uint32_t port);
/* Takes one flood token of the port at `now`: true when the port may
 * flood a frame now (exempt ports and flood_rate 0 always may). */
bool switch_flood_allowed(struct switch_table *sw, uint32_t port, uint64_t now);

/* Pins mac to port: it never ages and frames from another port claiming it
 * do not move it (the gateway's address). 0 or -ENOSPC. */
int switch_port_pin_mac(struct switch_table *sw, uint32_t port, const uint8_t mac[6]);

/* Switches one frame that arrived on `port`: learns its source, delivers
 * it. Returns the number of ports it was delivered to (0 when a rule such
 * as split horizon refused it, counted), or a negative errno when dropped
 * (-EINVAL runt or bad port, -ENOBUFS a flood past the port's storm control
 * bucket, -EPERM a frame from an uplink whose source MAC is pinned here). */
int switch_input(struct switch_table *sw, uint32_t port, const struct switch_frame *f,
                 uint64_t now);
/* The port that (domain, mac) was learned on and is not aged, or
 * SWITCH_NO_PORT. */
uint32_t switch_lookup(struct switch_table *sw, uint32_t domain, const uint8_t mac[6],
                       uint64_t now);
/* Forgets every entry older than the aging time. Returns how many. */
uint32_t switch_age(struct switch_table *sw, uint64_t now);

/* switch_table.kind seen as one struct, for its counter table. */
struct switch_kind_table {
  struct switch_kind_counters kind[SWITCH_PORT_KINDS];
};

/* The counters' tables (wtrelay/counter.h): /metrics and the exit log are
 * written from them. switch_kind_counter_table describes sw->kind as a
 * struct switch_kind_table. */
extern const struct counter_table switch_counter_table;
extern const struct counter_table switch_kind_counter_table;

#endif
