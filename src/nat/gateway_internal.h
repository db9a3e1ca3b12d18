/*
 * gateway_internal: what the NAT layer's files share and nothing outside
 * it calls (the gateway's packet handle, its emit and log helpers, and the
 * per-protocol NAT entry points). Private to src/nat; white-box unit tests
 * include it through that folder. The public side is wtrelay/gateway.h.
 */
#ifndef WTRELAY_GATEWAY_INTERNAL_H
#define WTRELAY_GATEWAY_INTERNAL_H

#include "wtrelay/gateway.h"

#include "wtrelay/inany.h"
#include "wtrelay/net6.h"

#include "flowtab.h"

struct gw_pkt {
  uint32_t room;
  uint32_t src_port; /* switch port the frame came from */
  const uint8_t *src_mac;
  struct net_ipv4 ip;         /* IPv4 (when ip6 is NULL) */
  const struct net_ipv6 *ip6; /* IPv6: the packet (then ip is unused); NULL = IPv4 */
};

/* The packet's source and destination, either family. */
static inline union inany gw_pkt_src(const struct gw_pkt *pkt)
{
  return pkt->ip6 ? inany_from6(pkt->ip6->src) : inany_from4(pkt->ip.src);
}
static inline union inany gw_pkt_dst(const struct gw_pkt *pkt)
{
  return pkt->ip6 ? inany_from6(pkt->ip6->dst) : inany_from4(pkt->ip.dst);
}
/* a:port as a socket address of its family; its length. */
socklen_t gw_sockaddr(union io_sockaddr *sa, const union inany *a, uint16_t port);
/* The address and port of a socket address (IPv4 or IPv6; a v4-mapped
 * IPv6 one is IPv4). false for another family. */
bool gw_sockaddr_get(const union io_sockaddr *sa, union inany *a, uint16_t *port);
/* The gateway's address toward a guest at `to` (the router's link-local
 * address for IPv6, its IPv4 address else): the source of its errors. */
union inany gw_router_addr(const struct gateway *gw, const union inany *to);
/* Sends a frame (len bytes in gw->out) into the room from its gateway port. */
void gw_emit(struct gateway *gw, uint32_t room, size_t len);
/* The same for a frame of hlen header bytes in gw->out followed by plen
 * payload bytes elsewhere (not copied: the receivers copy what they keep).
 * Returns switch_input's result: the ports it reached (0 when the one
 * receiver could not take it, e.g. its datagram queue is full), or a
 * negative errno. */
int gw_emit_payload(struct gateway *gw, uint32_t room, size_t hlen, const uint8_t *payload,
                    size_t plen);
/* Sends an ICMP error about pkt back to its sender: type and code are
 * ICMP's (ICMP_UNREACH with ICMP_UNREACH_ADMIN/PORT, ICMP_TIME_EXCEEDED);
 * for an IPv6 packet the ICMPv6 error that means the same, from the
 * router's link-local address. */
void gw_icmp_error(struct gateway *gw, const struct gw_pkt *pkt, uint8_t type, uint8_t code);
void gw_icmp6_error(struct gateway *gw, const struct gw_pkt *pkt, uint8_t type, uint8_t code);
/* A UDP datagram from:sport -> to:dport with payload, as a frame in buf,
 * in the family of the addresses. Length or negative errno. */
int gw_build_udp(struct gateway *gw, uint8_t *buf, size_t cap, const struct net_l2 *l2,
                 const union inany *from, const union inany *to, uint16_t sport, uint16_t dport,
                 const uint8_t *payload, size_t len);
/* The headers of a TCP segment from:sport -> to:dport (its len payload
 * bytes at payload, sent after them: in the checksum), in the family of
 * the addresses (net_build_tcp_hdr / net_build_tcp6_hdr). */
int gw_build_tcp_hdr(struct gateway *gw, uint8_t *buf, size_t cap, const struct net_l2 *l2,
                     const union inany *from, const union inany *to, uint16_t sport, uint16_t dport,
                     uint32_t seq, uint32_t ack, uint8_t flags, uint16_t window,
                     const struct net_tcp_opts *o, const uint8_t *payload, size_t len);
/* An ICMP(v6) error the host received for a flow (IP_RECVERR and
 * IPV6_RECVERR: origin ICMP or ICMP6, type, code, info = next-hop MTU),
 * relayed to the guest about `orig` (a frame rebuilt like the guest's
 * packet), from `from` (the reporting router). Counted in *ctr when sent. */
void gw_relay_error(struct gateway *gw, uint32_t room, const uint8_t *guest_mac, bool icmp6,
                    uint8_t type, uint8_t code, uint32_t info, const union inany *from,
                    const uint8_t *orig, size_t orig_len, uint64_t *ctr);
uint16_t gw_next_id(struct gateway *gw);
void gw_log(struct gateway *gw, const char *msg, const char *detail);

void nat_udp_input(struct gateway *gw, const struct gw_pkt *pkt, const struct net_udp *u);
/* Filtering: may a datagram from ip:port (host order) reach the guest
 * through f? Only from an endpoint the guest sent to through f. */
bool nat_udp_peer_allowed(const struct nat_udp_flow *f, const union inany *ip, uint16_t port);
/* The guest sent to ip:port through f at `now`: remember it (replacing the
 * least recently used endpoint when all NAT_UDP_PEERS are taken; returns
 * true then). */
bool nat_udp_peer_note(struct nat_udp_flow *f, const union inany *ip, uint16_t port, uint64_t now);
void nat_udp_sweep(struct gateway *gw, uint64_t now);
void nat_udp_room_gone(struct gateway *gw, uint32_t room);
int nat_udp_init(struct gateway *gw);
void nat_udp_fini(struct gateway *gw);

void nat_icmp_input(struct gateway *gw, const struct gw_pkt *pkt, const struct net_icmp *m);
void nat_icmp_sweep(struct gateway *gw, uint64_t now);
void nat_icmp_room_gone(struct gateway *gw, uint32_t room);
int nat_icmp_init(struct gateway *gw);
void nat_icmp_fini(struct gateway *gw);

void nat_tcp_input(struct gateway *gw, const struct gw_pkt *pkt, const struct net_tcp *t);
void nat_tcp_room_gone(struct gateway *gw, uint32_t room);
/* Raw-socket ICMP mode: the echo id on the wire of flow i of worker
 * `worker` of `workers`: inside that worker's slice of the id space
 * (65536 / workers ids), at a random offset `base` in it, so every
 * worker's raw socket can tell its replies from the others'. */
uint16_t nat_icmp_slice_id(uint32_t worker, uint32_t workers, uint16_t base, uint32_t i);
int nat_tcp_init(struct gateway *gw);
/* An inbound forward's connection: fd (accepted, owned from now on, also
 * on failure) from rip:rport to the guest (room, mac, ip, port): a SYN to
 * the guest, the rest as for outbound connections. fwd: nat_fwd's
 * reference, given back through nat_fwd_tcp_closed. 0, or negative errno
 * (-EEXIST, -ENOSPC, -ENOMEM; fd closed with a reset). */
int nat_tcp_inbound(struct gateway *gw, uint32_t room, const uint8_t mac[6], uint32_t ip,
                    uint16_t port, int fd, uint32_t rip, uint16_t rport, uint32_t fwd);

/* Inbound forwarding (nat_fwd.c). */
int nat_fwd_init(struct gateway *gw);
void nat_fwd_fini(struct gateway *gw);
void nat_fwd_sweep(struct gateway *gw, uint64_t now);
void nat_fwd_room_gone(struct gateway *gw, uint32_t room);
/* A guest packet toward the outside: true when it belongs to a forward
 * (an answer on a forwarded connection or mapping), handled; the gateway
 * checks this before its egress policy. */
bool nat_fwd_guest_input(struct gateway *gw, const struct gw_pkt *pkt);
/* A forwarded TCP connection ended (fwd: its reference); established: it
 * reached the guest. */
void nat_fwd_tcp_closed(struct gateway *gw, uint32_t fwd);
void nat_fwd_tcp_established(struct gateway *gw, uint32_t fwd);
void nat_tcp_fini(struct gateway *gw);

/* Fair shares. admit: may this packet's VM (and client) open a new flow of
 * proto? 0 = yes, the accounts are taken and *client is the key the flow
 * keeps for release (0 = none); -EDQUOT = a cap, -EAGAIN = the VM's rate of
 * new flows (counted and logged; the caller answers the guest), -EBUSY = a
 * cap of TCP connects in progress (the caller drops the SYN: the guest
 * retransmits it, and it passes once a connect completes). ICMP flows
 * are only rated. release gives a flow's accounts back (pending: a TCP
 * connect still in progress); connected: a TCP connect completed. */
int nat_share_init(struct gateway *gw);
void nat_share_fini(struct gateway *gw);
uint64_t nat_share_client_of(const struct gateway *gw, const struct gw_pkt *pkt);
int nat_share_admit(struct gateway *gw, const struct gw_pkt *pkt, enum nat_share_proto proto,
                    uint64_t *client);
void nat_share_release(struct gateway *gw, enum nat_share_proto proto, uint64_t client,
                       uint32_t room, const union inany *ip, bool pending);
void nat_share_connected(struct gateway *gw, uint64_t client, uint32_t room, const union inany *ip);
void nat_share_sweep(struct gateway *gw, uint64_t now);
uint32_t nat_share_count(struct gateway *gw, uint64_t client, enum nat_share_kind k);
uint32_t nat_share_vm_count(const struct gateway *gw, uint32_t room, const union inany *ip,
                            enum nat_share_kind k);

/* IPv6 on the gateway port (gw_ip6.c): the frame e from src_mac in room;
 * to_gw_mac: sent to the gateway's MAC (not a group). */
void gw_ip6_input(struct gateway *gw, struct gw_pkt *pkt, const struct net_eth *e, bool to_gw_mac);
void gw_ip6_room_init(struct gateway *gw, uint32_t room, uint16_t subnet_id);
void gw_ip6_room_prefix(const struct gateway *gw, uint16_t subnet_id, uint8_t out[8]);
/* Does the gateway route IPv6 to the internet (the host has a route)? */
bool gw_ip6_routed(const struct gateway *gw);
/* NAT66 (nat6.c): an IPv6 packet from pkt's guest to the internet, its
 * source, destination, egress policy and the host's route checked. */
void nat6_input(struct gateway *gw, struct gw_pkt *pkt);
/* Unsolicited RAs that are due, a few rooms per call. */
void gw_ip6_sweep(struct gateway *gw, uint64_t now);

/* Who asked the DNS forwarder and where its answer goes. key: the VM in
 * the flow table's per-VM count (its address, either family). */
struct dns_guest {
  uint32_t room;
  const uint8_t *mac;
  union inany key;
  bool v6;
  uint32_t ip4;                 /* IPv4: the guest's address */
  const uint8_t *ip6, *server6; /* IPv6: the guest's and the address it asked */
  uint16_t port;
};
/* Forwards the query in u for g: 0, or -ENETUNREACH (no upstream: the
 * caller answers port unreachable), or another negative errno (refused
 * or dropped, counted; SERVFAIL already sent when over the VM's share). */
int dns_fwd_query(struct gateway *gw, const struct dns_guest *g, const struct net_udp *u);
void dns_fwd_input(struct gateway *gw, const struct gw_pkt *pkt, const struct net_udp *u);
void dns_fwd_sweep(struct gateway *gw, uint64_t now);
int dns_fwd_init(struct gateway *gw);
void dns_fwd_fini(struct gateway *gw);

#endif
