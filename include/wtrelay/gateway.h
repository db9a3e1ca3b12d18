/*
 * gateway: the router of every room, a port on the switch, and the
 * user-space NAT behind it.
 *
 * Owns, per room, one switch port with the gateway's MAC pinned to it; and
 * for the whole worker: ARP answers for the gateway (10.0.2.2) and the DNS
 * address (10.0.2.3), ICMP echo answers for both, a DHCP server (addresses
 * come from the room's pool through gateway_addr_ops, so DHCP and
 * Register/Assigned agree), the DNS forwarder at 10.0.2.3 (dns_fwd.c), UDP
 * NAT (nat_udp.c: one host socket per guest (room, IP, port)), ICMP echo
 * NAT (nat_icmp.c: ICMP datagram sockets), one flow table of every NAT
 * flow and DNS query in flight (flowtab.c: keyed hash, fixed slots per
 * protocol, least-recently-used expiry), fair shares of the NAT's tables
 * per client and per VM and a rate of new flows per VM (nat_share.c),
 * inbound port forwarding (nat_fwd.c, wtrelay/nat_fwd.h),
 * the egress policy (policy.c)
 * and anti-spoofing (a guest's packets must carry the address of the
 * session they came from). Replies are built as Ethernet frames and enter
 * the switch from the room's gateway port.
 * Talks to: the switch (port interface, switch_input), io (NAT sockets on
 * the worker's ring), the relay through gateway_addr_ops.
 * Never: knows WebTransport, QUIC or the bavy protocol.
 */
#ifndef WTRELAY_GATEWAY_H
#define WTRELAY_GATEWAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <netinet/in.h>

#include "wtrelay/counter.h"
#include "wtrelay/dns.h"
#include "wtrelay/hostaddr.h"
#include "wtrelay/inany.h"
#include "wtrelay/io.h"
#include "wtrelay/log.h"
#include "wtrelay/nat_fwd.h"
#include "wtrelay/net.h"
#include "wtrelay/policy.h"
#include "wtrelay/switch.h"
#include "wtrelay/timer.h"

#define GW_MAX_UPSTREAMS 4
#define GW_FRAME_MAX 1600

/* Addresses for DHCP, implemented by the relay (it owns the pools). */
struct gateway_addr_ops {
  /* The address of mac in room: a live session's, or a pool lease. */
  int (*lease)(void *ctx, uint32_t room, const uint8_t mac[6], uint32_t *ip);
  void (*release)(void *ctx, uint32_t room, const uint8_t mac[6], uint32_t ip);
  /* An opaque nonzero key of the client (its address; IPv6 by /64) behind
   * switch port `port` of room, for the NAT's per-client shares; 0 = not a
   * client's port (or unknown). May be NULL (tests): no client shares. */
  uint64_t (*client_of)(void *ctx, uint32_t room, uint32_t port);
  /* DHCP acknowledged ip for mac, asked from switch port `port` (the LAN
   * guard of that port may let the pair speak). May be NULL. */
  void (*bind)(void *ctx, uint32_t room, uint32_t port, const uint8_t mac[6], uint32_t ip);
  /* Inbound forwarding (nat_fwd.c): the VM of room `room_name` that holds
   * mac (when mac is not NULL) or address ip, with a session on this
   * gateway's LAN: *room, *ip_out and mac_out are written. -ENOENT: no
   * such room here, or no such VM in it. May be NULL: no forwarding. */
  int (*vm_lookup)(void *ctx, const char *room_name, const uint8_t *mac, uint32_t ip,
                   uint32_t *room, uint32_t *ip_out, uint8_t mac_out[6]);
};

struct gateway_params {
  uint8_t mac[6];
  uint32_t subnet, netmask, ip, dns_ip; /* host order */
  uint32_t announce_dns;                /* what DHCP hands out (and Assigned): dns_ip by default */
  uint16_t mtu;                         /* DHCP option 26 */
  uint32_t lease_s;
  uint32_t max_rooms;
  uint32_t max_udp_flows, max_udp_flows_per_vm;
  uint64_t udp_timeout_ns;
  uint32_t max_icmp_flows;
  uint64_t icmp_timeout_ns;
  /* This gateway is worker icmp_worker of icmp_workers (0 and 0: alone):
   * with the raw-socket fallback every worker's raw socket sees every echo
   * reply, so the echo ids on the wire are split in slices of 65536 /
   * icmp_workers, one per worker, and a worker takes only replies to ids
   * of its own slice (ICMP datagram sockets need none: the kernel gives
   * each socket its own id). */
  uint32_t icmp_worker, icmp_workers;
  uint32_t max_tcp_conns, max_tcp_conns_per_vm;
  uint64_t tcp_idle_ns, tcp_connect_timeout_ns;
  /* Fair shares (nat_share.c); 0 = no such limit. */
  uint32_t max_udp_flows_per_client, max_tcp_conns_per_client;
  uint32_t max_tcp_pending_per_client, max_tcp_pending_per_vm;
  uint32_t nat_new_rate, nat_new_burst; /* new flows per second per VM, and the burst */
  /* The client accounts of several gateways (one per worker): a client
   * whose sessions sit on several workers has one share over all of them.
   * NULL = this gateway's own table. report_shared: this gateway's gauge
   * (wtrelay_nat_share_clients) counts the shared table (one of them). */
  struct nat_share_clients *shared_clients;
  bool report_shared;
  uint32_t max_dns_inflight;
  /* inbound forwarding (nat_fwd.h): opened at init; TCP connections and
   * UDP mappings of every forward together and of one */
  const struct fwd_spec *forwards;
  uint32_t nforwards;
  uint32_t max_fwd_conns, max_fwd_conns_per_fwd;
  /* With several workers: the counts every gateway shares (NULL = this
   * gateway's own), and the hand-off of a connection to the gateway of
   * another worker, one of ngateways (pass NULL = none) */
  struct fwd_counts *fwd_counts;
  const struct fwd_pass_ops *fwd_pass;
  void *fwd_pass_ctx;
  uint32_t ngateways;
  uint64_t dns_timeout_ns;
  uint32_t max_dns_inflight_per_vm; /* queries in flight per (room, VM address) */
  uint32_t max_icmp_flows_per_vm;   /* echo ids per (room, VM address) */
  /* the host's local (and broadcast) routes, followed through rtnetlink:
   * a destination the host would deliver itself is refused; NULL = none */
  const struct hostaddr *hostaddr;
  union io_sockaddr upstream[GW_MAX_UPSTREAMS];
  socklen_t upstream_len[GW_MAX_UPSTREAMS];
  uint32_t nupstreams;
  const struct policy *policy;
  /* IPv6: every room's /64 is fd + ula_global_id + the room's subnet id
   * (RFC 4193), or subnet6 when subnet6_fixed (--subnet6) */
  uint8_t ula_global_id[5];
  bool subnet6_fixed;
  uint8_t subnet6[8];
};

struct gateway_counters {
  uint64_t frames_in, frames_out, arp_replies, arp_ignored, echo_replies;
  uint64_t dhcp_in, dhcp_offers, dhcp_acks, dhcp_naks, dhcp_releases, dhcp_bad;
  uint64_t bad_eth, bad_ip, bad_l4, fragments, spoofed, ttl_expired, denied;
  uint64_t other_proto, no_port, other_ethertype;
  /* IPv6 (gw_ip6.c) */
  uint64_t ip6_in, ip6_bad, ip6_bad_l4, ip6_bad_nd, ip6_spoofed, ip6_fragments, ip6_ignored;
  uint64_t ip6_other_proto, ip6_no_route, ip6_rs_in, ip6_ns_in, ip6_ra_out, ip6_ra_periodic;
  uint64_t ip6_ra_limited, ip6_na_out, ip6_echo_replies, ip6_denied;
  /* NAT66 (nat6.c): flows opened over IPv6 (also in the protocols' totals) */
  uint64_t ip6_hlim_expired, nat6_udp_flows, nat6_icmp_flows, nat6_tcp_opened;
  uint64_t udp_flows_opened, udp_flows_closed, udp_flows_full, udp_out, udp_in;
  uint64_t udp_send_failed, udp_too_big, udp_icmp_errors;
  uint64_t icmp_flows_opened, icmp_flows_closed, icmp_flows_full, icmp_out, icmp_in;
  uint64_t icmp_disabled_drops;
  uint64_t dns_queries, dns_answers, dns_bad, dns_timeouts, dns_full, dns_unmatched;
  uint64_t dns_no_upstream;
  uint64_t tcp_opened, tcp_established, tcp_closed, tcp_full, tcp_refused, tcp_connect_failed;
  uint64_t tcp_rst_in, tcp_rst_out, tcp_segs_in, tcp_segs_out, tcp_bytes_in, tcp_bytes_out;
  uint64_t tcp_retransmits, tcp_out_of_order, tcp_host_errors, tcp_idle_closed;
  uint64_t tcp_tail_probes;
  /* NAT filtering, own addresses, DNS and echo shares */
  uint64_t udp_filtered, udp_peers_replaced, local_refused;
  uint64_t dns_vm_full, dns_sock_failed, icmp_vm_full;
  /* refusals by nat_share.c (per-VM caps count in udp_flows_full, tcp_full) */
  uint64_t share_udp_client, share_tcp_client, share_pending_client, share_pending_vm;
  uint64_t share_table_full, share_vm_evicted;
  uint64_t rate_limited[3]; /* by enum nat_share_proto */
  uint64_t tcp_no_timer;    /* connections reset (or refused) because no timer could be armed */
  /* inbound forwarding (nat_fwd.c) */
  uint64_t fwd_tcp_accepted, fwd_tcp_established, fwd_tcp_no_vm, fwd_tcp_full, fwd_tcp_vm_refused;
  uint64_t fwd_accept_errors, fwd_passed, fwd_pass_failed;
  uint64_t fwd_udp_in, fwd_udp_out, fwd_udp_no_vm, fwd_udp_full, fwd_udp_opened, fwd_udp_closed;
};

struct flowtab;

struct gw_room {
  bool used;
  uint32_t port; /* switch port */
  struct gateway *gw;
  uint32_t room;
  /* IPv6 (gw_ip6.c): the room's /64, its solicited-RA budget and when
   * its next unsolicited RA is due */
  uint8_t prefix6[8];
  bool ip6_seen;
  uint32_t ra_tokens;
  uint64_t ra_refill, ra_next;
};

/* Remote endpoints a UDP mapping accepts datagrams from (address- and
 * port-dependent filtering, RFC 4787 REQ-8): the last NAT_UDP_PEERS the
 * guest sent to through it, least recently used replaced first. */
#define NAT_UDP_PEERS 8

struct nat_udp_peer {
  union inany ip;
  uint16_t port;
  uint64_t last_ns; /* the guest's latest datagram to it */
};

/* Accounts of the NAT's fair shares (nat_share.c). */
enum nat_share_kind { NAT_SHARE_UDP, NAT_SHARE_TCP, NAT_SHARE_PENDING, NAT_SHARE_KINDS };
enum nat_share_proto { NAT_SHARE_P_UDP, NAT_SHARE_P_TCP, NAT_SHARE_P_ICMP };

/* An account's key: a client (client != 0, the rest zero) or a VM (room
 * and guest address, either family; client 0). */
struct nat_share_key {
  uint64_t client;
  uint32_t room;
  union inany ip;
};

struct nat_share_ent {
  bool used;
  struct nat_share_key key;
  uint32_t n[NAT_SHARE_KINDS]; /* what it holds */
  uint64_t tat;                /* VM accounts: when the new-flow bucket is full again */
  uint32_t next;               /* hash chain or free list, index + 1 */
};

struct nat_share_tab {
  struct nat_share_ent *e;
  uint32_t *hash, mask, cap, nused, free_head;
};

struct gateway;

/* Client accounts shared by the gateways of one process (one mutex: taken
 * when a NAT flow is admitted, connects or ends, never per packet). */
struct nat_share_clients {
  pthread_mutex_t lock;
  struct nat_share_tab tab;
};
/* cap: the accounts at most (every worker's UDP and TCP flows). */
int nat_share_clients_init(struct nat_share_clients *c, uint32_t cap);
void nat_share_clients_fini(struct nat_share_clients *c);
/* Clients holding NAT flows: the shared table's, when this gateway reports
 * it, else its own (0 for the others sharing it). */
uint32_t gateway_share_clients(const struct gateway *gw);

struct nat_udp_flow {
  bool used;
  uint32_t room;
  union inany guest_ip; /* either family: the flow's socket is of the same */
  uint64_t client;      /* nat_share key of the client that opened it, 0 = none */
  uint16_t guest_port;
  uint8_t guest_mac[6];
  /* its key and last use (only the guest's datagrams refresh it) are in
   * the flow table (gw->flows, FT_UDP, same slot) */
  struct nat_udp_peer peers[NAT_UDP_PEERS];
  uint8_t npeers;
  struct io_udp_sock *sock;
  struct gateway *gw;
};

struct nat_icmp_flow {
  bool used;
  uint32_t room;
  union inany guest_ip; /* IPv4: ICMP echo; IPv6: ICMPv6 echo */
  uint16_t guest_id;
  uint16_t host_id; /* raw-socket mode: the echo id we put on the wire */
  uint8_t guest_mac[6];
  /* last use: in the flow table (FT_ICMP, same slot) */
  struct io_udp_sock *sock;
  struct gateway *gw;
};

#define TCP_STAGE_CAP 65535u /* guest -> host staging: one window */
#define TCP_PEEK_CAP 65535u  /* host -> guest: one window peeked at a time */
#define TCP_MSS_ADV 1146 /* our SYN-ACK's MSS: guest segments fit a 1201-byte browser datagram */
#define TCP_MSS_TO_GUEST                                                                           \
  1338 /* our segments (1392-byte frames) fit one datagram toward a browser                        \
        * at a path MTU of 1444 with room for a QUIC loss-recovery anchor */
#define TCP_CWND_MAX (4u << 20) /* bytes in flight toward a guest, at most */
#define TCP_OOO_MAX 8           /* out-of-order ranges held in the staging buffer */

/* SYN_SENT: an inbound forward's connection, our SYN sent to the guest */
enum tcp_state { TCP_S_CONNECTING = 1, TCP_S_OPEN, TCP_S_DEAD, TCP_S_SYN_SENT };

struct nat_tcp_conn {
  bool used;
  uint8_t state;
  uint16_t gen;
  uint32_t room;
  union inany guest_ip, dst_ip; /* both of one family */
  uint16_t guest_port, dst_port;
  uint8_t guest_mac[6];
  uint64_t client; /* nat_share key of the client that opened it, 0 = none */
  uint32_t fwd;    /* an inbound forward's connection: nat_fwd's reference, 0 = outbound */
  int fd;
  union io_sockaddr sa;
  socklen_t salen;
  uint32_t ops; /* ring operations in flight */
  /* guest -> host */
  uint32_t rcv_nxt; /* acknowledged to the guest: in the kernel */
  uint8_t *stage;
  uint32_t staged; /* in-order bytes at the start of stage, not yet in the kernel */
  /* out-of-order guest data held in stage: [ooo_lo, ooo_hi) offsets from
   * rcv_nxt, sorted, disjoint, all beyond `staged` */
  uint32_t ooo_lo[TCP_OOO_MAX], ooo_hi[TCP_OOO_MAX];
  uint32_t ooo_recent; /* offset of the latest held segment (first SACK block) */
  uint8_t nooo;
  bool sack_ok; /* the guest offered SACK: our ACKs name the held ranges */
  bool send_busy, guest_fin, host_shut;
  /* host -> guest */
  uint32_t snd_una, snd_nxt, snd_max, fin_seq, g_wnd, cwnd, ssthresh;
  uint32_t discard_pending; /* acknowledged by the guest, not yet discarded nor being */
  uint32_t discard_n;       /* the discard in flight: bytes asked */
  bool fin_ever;
  int8_t g_wscale; /* the guest's window shift, -1 = no scaling */
  uint16_t mss;
  uint8_t *peekbuf;
  bool peek_busy, poll_busy, discard_busy, host_eof, fin_sent, need_rewind;
  bool tx_held;      /* a segment the guest's port could not take waits for its next ACK */
  uint32_t peek_cap; /* bytes a peek asks at most after a hold, 0 = TCP_PEEK_CAP */
  uint32_t peek_epoch, peek_epoch_sent;
  uint32_t dupacks, rto_count;
  /* fast recovery (NewReno, RFC 6582): one segment resent per hole */
  uint32_t recover, retx_seq;
  uint32_t retx_peek_seq; /* the sequence number the retransmission peek in flight reads */
  uint64_t retx_t;        /* when the hole was last resent */
  uint64_t rto_at;        /* the RTO proper, after a tail-loss probe */
  bool tlp_done;          /* the probe of this flight was sent */
  bool in_recovery, retx_pending, retx_busy;
  uint64_t rto_ns, srtt, rttvar, rtt_t, last_ns;
  uint32_t rtt_seq;
  bool rtt_seq_valid;
  struct timer timer;
  struct gateway *gw;
};

struct dns_pending {
  bool used;
  bool v6; /* asked over IPv6: answered from server6 to guest_ip6 */
  uint32_t room, guest_ip;
  uint8_t guest_ip6[16], server6[16];
  uint16_t guest_port, guest_id;
  uint8_t guest_mac[6];
  uint64_t deadline_ns;
  struct dns_question q;    /* q.id: the random id sent upstream */
  uint32_t up;              /* the upstream it went to (index of p.upstream) */
  struct io_udp_sock *sock; /* its own socket: a fresh random source port */
  struct gateway *gw;
};

struct gateway {
  struct gateway_params p;
  struct switch_table *sw;
  struct io *io;
  struct timer_heap *timers;
  uint64_t *now;
  const struct gateway_addr_ops *addr;
  void *addr_ctx;
  struct gw_room *rooms;
  /* the one flow table of UDP, ICMP and TCP (src/nat/flowtab.h): keys,
   * lookups, slots, LRU; each protocol's state below, by the same slot */
  struct flowtab *flows;
  /* UDP NAT */
  struct nat_udp_flow *udp;
  uint32_t nudp;
  /* ICMP NAT */
  struct nat_icmp_flow *icmp;
  uint32_t nicmp;
  bool icmp_ok, icmp6_ok;        /* ICMP / ICMPv6 echo can be translated */
  struct io_udp_sock *icmp_raw;  /* raw-socket mode (CAP_NET_RAW), else NULL */
  struct io_udp_sock *icmp6_raw; /* the same for ICMPv6 */
  uint16_t icmp_id_base;
  /* TCP NAT */
  struct nat_tcp_conn *tcp;
  uint32_t ntcp;
  uint8_t *tcp_scratch;
  /* fair shares: per-client and per-VM accounts */
  struct nat_share_tab share_clients, share_vms;
  /* inbound forwarding (nat_fwd.c), NULL = none */
  struct nat_fwd *fwd;
  /* DNS forwarder */
  struct dns_pending *dns; /* each query in flight, with its own socket */
  uint32_t dns_inflight, dns_rr;
  struct timer sweep;
  uint16_t ip_id;
  struct log_ratelimit rl;
  struct gateway_counters ctr;
  uint8_t frame[GW_FRAME_MAX]; /* scratch for frames in and out */
  uint8_t out[GW_FRAME_MAX];
  /* sees every frame the gateway sends into a room, before the switch
   * (packet capture); NULL = none */
  void (*tap)(void *ctx, uint32_t room, const struct switch_frame *f);
  void *tap_ctx;
};

int gateway_init(struct gateway *gw, const struct gateway_params *p, struct switch_table *sw,
                 struct io *io, struct timer_heap *timers, uint64_t *now,
                 const struct gateway_addr_ops *addr, void *addr_ctx);
void gateway_fini(struct gateway *gw);
/* A room came to life / went away: attach / detach its gateway port.
 * subnet6_id: the room's 16-bit IPv6 subnet id (gateway_subnet6_id of its
 * name: the same on every worker). */
int gateway_room_attach(struct gateway *gw, uint32_t room, uint16_t subnet6_id);
/* The IPv6 subnet id of a room's name (a hash; rooms may share one: the
 * LANs stay apart, only their prefixes look alike). */
uint16_t gateway_subnet6_id(const char *room_name);
/* The room's IPv6 /64 (8 bytes) as its RAs announce it. */
void gateway_room_prefix6(const struct gateway *gw, uint32_t room, uint8_t out[8]);
void gateway_room_detach(struct gateway *gw, uint32_t room);
/* Names every field of struct gateway_counters for /metrics and the exit
 * log (wtrelay/counter.h). */
extern const struct counter_table gateway_counter_table;

/* The NAT flows guest `ip` (IPv4, host order) of room `room` holds in
 * this gateway now: UDP mappings, ICMP echo flows, TCP connections
 * (connecting or open). For a status view; the gateway's own thread
 * only, no lock: two account lookups and a walk of the guest's ICMP
 * flows (at most --max-icmp-flows-per-vm). */
struct gateway_vm_flows {
  uint32_t udp, icmp, tcp;
};
void gateway_vm_flows(const struct gateway *gw, uint32_t room, uint32_t ip,
                      struct gateway_vm_flows *out);

/* Reads nameserver lines of a resolv.conf into p->upstream (IPv4 and IPv6). */
int dns_fwd_load_resolv_conf(struct gateway_params *p, const char *path);

#endif
