/*
 * gateway_internal: what the NAT layer's files share and nothing outside
 * it calls (the gateway's packet handle, its emit and log helpers, and the
 * per-protocol NAT entry points). Private to src/nat; white-box unit tests
 * include it through that folder. The public side is wtrelay/gateway.h.
 */
#ifndef WTRELAY_GATEWAY_INTERNAL_H
#define WTRELAY_GATEWAY_INTERNAL_H

#include "wtrelay/gateway.h"

#include "flowtab.h"

struct gw_pkt {
  uint32_t room;
  uint32_t src_port; /* switch port the frame came from */
  const uint8_t *src_mac;
  struct net_ipv4 ip;
};
/* Sends a frame (len bytes in gw->out) into the room from its gateway port. */
void gw_emit(struct gateway *gw, uint32_t room, size_t len);
/* The same for a frame of hlen header bytes in gw->out followed by plen
 * payload bytes elsewhere (not copied: the receivers copy what they keep).
 * Returns switch_input's result: the ports it reached (0 when the one
 * receiver could not take it, e.g. its datagram queue is full), or a
 * negative errno. */
int gw_emit_payload(struct gateway *gw, uint32_t room, size_t hlen, const uint8_t *payload,
                    size_t plen);
/* Sends an ICMP error about pkt back to its sender. */
void gw_icmp_error(struct gateway *gw, const struct gw_pkt *pkt, uint8_t type, uint8_t code);
uint16_t gw_next_id(struct gateway *gw);
void gw_log(struct gateway *gw, const char *msg, const char *detail);

void nat_udp_input(struct gateway *gw, const struct gw_pkt *pkt, const struct net_udp *u);
/* Filtering: may a datagram from ip:port (host order) reach the guest
 * through f? Only from an endpoint the guest sent to through f. */
bool nat_udp_peer_allowed(const struct nat_udp_flow *f, uint32_t ip, uint16_t port);
/* The guest sent to ip:port through f at `now`: remember it (replacing the
 * least recently used endpoint when all NAT_UDP_PEERS are taken; returns
 * true then). */
bool nat_udp_peer_note(struct nat_udp_flow *f, uint32_t ip, uint16_t port, uint64_t now);
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
                       uint32_t room, uint32_t ip, bool pending);
void nat_share_connected(struct gateway *gw, uint64_t client, uint32_t room, uint32_t ip);
void nat_share_sweep(struct gateway *gw, uint64_t now);
uint32_t nat_share_count(struct gateway *gw, uint64_t client, enum nat_share_kind k);
uint32_t nat_share_vm_count(const struct gateway *gw, uint32_t room, uint32_t ip,
                            enum nat_share_kind k);

/* IPv6 on the gateway port (gw_ip6.c): the frame e from src_mac in room;
 * to_gw_mac: sent to the gateway's MAC (not a group). */
void gw_ip6_input(struct gateway *gw, uint32_t room, const uint8_t *src_mac,
                  const struct net_eth *e, bool to_gw_mac);
void gw_ip6_room_init(struct gateway *gw, uint32_t room, uint16_t subnet_id);
void gw_ip6_room_prefix(const struct gateway *gw, uint16_t subnet_id, uint8_t out[8]);
/* Unsolicited RAs that are due, a few rooms per call. */
void gw_ip6_sweep(struct gateway *gw, uint64_t now);

/* Who asked the DNS forwarder and where its answer goes. key: the VM in
 * the flow table's per-VM count (its IPv4 address, or the low 32 bits of
 * its IPv6 one). */
struct dns_guest {
  uint32_t room;
  const uint8_t *mac;
  uint32_t key;
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
