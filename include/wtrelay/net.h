/*
 * net: Ethernet, ARP, IPv4, ICMP and UDP on the wire: parsers, builders and
 * Internet checksums (RFC 1071, incremental RFC 1624). No I/O, no state.
 *
 * Parsers read peer bytes through struct cursor and return borrowed
 * pointers into the frame; a parse either fully validates its header
 * (lengths, version, header checksum for IPv4, UDP checksum when present)
 * or fails with a negative errno, and never reads outside [p, p+len).
 * Builders write a complete frame (Ethernet header on) into a caller's
 * buffer with correct lengths and checksums and return its length or
 * -ENOSPC. Addresses are host byte order in every struct.
 */
#ifndef WTRELAY_NET_H
#define WTRELAY_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ETH_HDR 14
#define ETH_TYPE_IPV4 0x0800
#define ETH_TYPE_ARP 0x0806
#define IPV4_HDR 20
#define UDP_HDR 8
#define ICMP_HDR 8
#define IP_PROTO_ICMP 1
#define IP_PROTO_TCP 6
#define IP_PROTO_UDP 17

#define ICMP_ECHO_REPLY 0
#define ICMP_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_UNREACH_NET 0
#define ICMP_UNREACH_HOST 1
#define ICMP_UNREACH_PORT 3
#define ICMP_UNREACH_NEEDFRAG 4
#define ICMP_UNREACH_ADMIN 13

struct net_eth {
  const uint8_t *dst, *src;
  uint16_t type;
  const uint8_t *payload;
  size_t len;
};

struct net_arp {
  uint16_t op; /* 1 request, 2 reply */
  uint8_t sha[6], tha[6];
  uint32_t spa, tpa;
};

struct net_ipv4 {
  uint8_t ihl; /* header bytes */
  uint8_t tos, ttl, proto;
  uint16_t total_len, id, frag; /* frag: flags + offset as on the wire */
  uint32_t src, dst;
  const uint8_t *hdr;
  const uint8_t *payload;
  size_t len; /* payload bytes (total_len - ihl) */
};

struct net_udp {
  uint16_t sport, dport;
  const uint8_t *payload;
  size_t len;
};

#define TCP_HDR 20
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

struct net_tcp {
  uint16_t sport, dport;
  uint32_t seq, ack;
  uint8_t flags;
  uint16_t window;
  uint16_t mss;  /* option 2, 0 = absent */
  int8_t wscale; /* option 3, -1 = absent */
  bool sack_ok;  /* option 4, SACK permitted */
  uint8_t nsack; /* option 5: SACK blocks [left, right), at most 4 */
  uint32_t sack[4][2];
  const uint8_t *payload;
  size_t len;
};

struct net_icmp {
  uint8_t type, code;
  uint16_t id, seq;    /* echo only */
  const uint8_t *data; /* after the 8-byte header */
  size_t len;
};

int net_eth_parse(const uint8_t *p, size_t len, struct net_eth *e);
/* Ethernet/IPv4 ARP only (htype 1, ptype 0x0800, 6/4). */
int net_arp_parse(const uint8_t *p, size_t len, struct net_arp *a);
/* Version 4, ihl >= 5, total length within len (trailing padding allowed),
 * valid header checksum. Fragments parse; the caller decides. */
int net_ipv4_parse(const uint8_t *p, size_t len, struct net_ipv4 *ip);
/* UDP over ip: length field within the IP payload; the checksum is
 * verified unless it is 0. */
int net_udp_parse(const struct net_ipv4 *ip, struct net_udp *u);
/* The UDP header at p (len bytes of IP payload): ports, the length field
 * within len, payload and its length; *csum as on the wire (the caller
 * checks it over its family's pseudo-header). 0 or -EMSGSIZE. */
int net_udp_hdr(const uint8_t *p, size_t len, struct net_udp *u, uint16_t *csum);
/* ICMP over ip, checksum verified. */
int net_icmp_parse(const struct net_ipv4 *ip, struct net_icmp *m);

static inline bool net_ip_is_fragment(const struct net_ipv4 *ip)
{
  return (ip->frag & 0x3fff) != 0; /* MF or an offset */
}

/* TCP over ip: data offset within the segment, checksum verified, MSS and
 * window-scale options read (others skipped). */
int net_tcp_parse(const struct net_ipv4 *ip, struct net_tcp *t);
/* A TCP segment of plen bytes at p, either family: its checksum verified
 * over pseudo (the family's pseudo-header sum), header and options read. */
int net_tcp_seg(const uint8_t *p, size_t plen, uint32_t pseudo, struct net_tcp *t);

/* ---- checksums ---- */
uint32_t net_csum_add(uint32_t sum, const void *p, size_t len);
uint16_t net_csum_fold(uint32_t sum);
/* Pseudo-header sum for UDP/TCP over IPv4. */
uint32_t net_csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len);
/* RFC 1624: the checksum after a 16-bit field changed from old to new. */
uint16_t net_csum_update16(uint16_t csum, uint16_t old, uint16_t new_);
/* The same for a 32-bit field (an address). */
uint16_t net_csum_update32(uint16_t csum, uint32_t old, uint32_t new_);

/* ---- builders (frame = Ethernet header on) ---- */

static inline void net_put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static inline void net_put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
struct net_l2 {
  const uint8_t *dst_mac, *src_mac;
};

/* Writes the Ethernet header (l2's addresses, type) at buf; returns where
 * the payload goes. */
uint8_t *net_eth_hdr(uint8_t *buf, const struct net_l2 *l2, uint16_t type);

int net_build_arp(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint16_t op,
                  const uint8_t sha[6], uint32_t spa, const uint8_t tha[6], uint32_t tpa);
/* IPv4 header (ttl 64, DF unless df == false, id) + UDP + payload. */
int net_build_udp(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src, uint32_t dst,
                  uint16_t sport, uint16_t dport, const uint8_t *payload, size_t len, uint16_t id);
/* A UDP header and payload at u (the payload may already be there),
 * checksummed over pseudo (the family's pseudo-header sum); a computed 0
 * is sent as 0xffff. */
void net_udp_fill(uint8_t *u, uint16_t sport, uint16_t dport, const uint8_t *payload, size_t len,
                  uint32_t pseudo);
/* IPv4 + ICMP: type, code, the 4 "rest of header" bytes (id/seq for echo,
 * unused/MTU for errors) and data. */
int net_build_icmp(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src, uint32_t dst,
                   uint8_t type, uint8_t code, const uint8_t rest[4], const uint8_t *data,
                   size_t len, uint16_t id);
/* An ICMP error (type/code) about the datagram `orig` (its IPv4 header and
 * the first 8 bytes of its payload, RFC 792), from src to orig's source. */
int net_build_icmp_error(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src,
                         uint8_t type, uint8_t code, uint16_t mtu, const struct net_ipv4 *orig,
                         uint16_t id);

/* IPv4 + TCP segment; mss != 0 adds the MSS option (SYN segments). */
int net_build_tcp(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src, uint32_t dst,
                  uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                  uint16_t window, uint16_t mss, const uint8_t *payload, size_t len, uint16_t id);

/* TCP options we write. */
struct net_tcp_opts {
  uint16_t mss;        /* 0 = none */
  int8_t wscale;       /* -1 = none */
  bool sack_ok;        /* SACK permitted (SYN segments) */
  uint8_t nsack;       /* SACK blocks, at most NET_TCP_SACK_MAX */
  uint32_t sack[4][2]; /* [left, right) sequence numbers */
};
#define NET_TCP_SACK_MAX 4

/* IPv4 + TCP segment with the options in o (NULL = none). */
int net_build_tcp_opts(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src,
                       uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                       uint8_t flags, uint16_t window, const struct net_tcp_opts *o,
                       const uint8_t *payload, size_t len, uint16_t id);
/* The headers only (Ethernet, IPv4, TCP with the options in o) of a
 * segment whose len payload bytes stay at `payload` and are sent after
 * them (an iovec of their own): the checksum covers them. Returns the
 * header length, or -ENOSPC. */
int net_build_tcp_hdr(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src, uint32_t dst,
                      uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                      uint16_t window, const struct net_tcp_opts *o, const uint8_t *payload,
                      size_t len, uint16_t id);
/* The TCP header length (20 + options) net_tcp_fill writes for o. */
size_t net_tcp_hdr_len(const struct net_tcp_opts *o);
/* A TCP header with the options in o (NULL = none) at t, its checksum over
 * pseudo (the family's pseudo-header sum), the header and the len payload
 * bytes at `payload` (sent after it). Returns the header length. */
size_t net_tcp_fill(uint8_t *t, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                    uint8_t flags, uint16_t window, const struct net_tcp_opts *o,
                    const uint8_t *payload, size_t len, uint32_t pseudo);

/* The same with a window-scale option too (wscale >= 0), for a SYN-ACK. */
int net_build_tcp_ws(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src, uint32_t dst,
                     uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                     uint16_t window, uint16_t mss, int wscale, const uint8_t *payload, size_t len,
                     uint16_t id);

/* "52:54:00:12:34:56" (exactly six two-digit hex bytes) to a unicast
 * MAC. 0, or -EINVAL for another form or a multicast address. */
int net_mac_parse(const char *s, uint8_t mac[6]);

/* "a.b.c.d" of a host-order address into buf (16 bytes). */
const char *net_ip_str(uint32_t ip, char buf[16]);

#endif
