/*
 * net6: IPv6, its extension-header chain, ICMPv6 and Neighbor Discovery
 * (RFC 8200, 4443, 4861, 4862, 8106) on the wire: parsers and builders. No
 * I/O, no state; the companion of net.h (same rules).
 *
 * Parsers read peer bytes through struct cursor and return borrowed
 * pointers into the frame; a parse either fully validates what it covers
 * (version, payload length within the frame, every extension header within
 * the payload, at most NET6_MAX_EXT of them, ICMPv6 checksum over the
 * pseudo-header, every ND option's length nonzero and within the message)
 * or fails with a negative errno. Addresses are 16 network-order bytes.
 * Builders write a complete frame (Ethernet header on) with correct
 * lengths and checksums and return its length or -ENOSPC.
 */
#ifndef WTRELAY_NET6_H
#define WTRELAY_NET6_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wtrelay/net.h"

#define ETH_TYPE_IPV6 0x86dd
#define IPV6_HDR 40
#define IP_PROTO_ICMPV6 58
#define NET6_MAX_EXT 8 /* extension headers walked before giving up */

#define ICMP6_UNREACH 1
#define ICMP6_TOO_BIG 2
#define ICMP6_TIME_EXCEEDED 3
#define ICMP6_PARAM_PROB 4
#define ICMP6_ECHO 128
#define ICMP6_ECHO_REPLY 129
#define ND_ROUTER_SOLICIT 133
#define ND_ROUTER_ADVERT 134
#define ND_NEIGHBOR_SOLICIT 135
#define ND_NEIGHBOR_ADVERT 136
#define ND_REDIRECT 137

#define ICMP6_UNREACH_NOROUTE 0
#define ICMP6_UNREACH_ADMIN 1
#define ICMP6_UNREACH_ADDR 3
#define ICMP6_UNREACH_PORT 4

#define ND_OPT_SRC_LLADDR 1
#define ND_OPT_TGT_LLADDR 2
#define ND_OPT_PREFIX 3
#define ND_OPT_MTU 5
#define ND_OPT_RDNSS 25

struct net_ipv6 {
  uint8_t tclass, hlim;
  uint32_t flow;
  const uint8_t *src, *dst; /* 16 bytes each, in the frame */
  uint8_t next;             /* the upper-layer protocol after the chain */
  bool fragment;            /* a fragment header was in the chain */
  uint8_t nexts;            /* extension headers walked */
  const uint8_t *hdr;
  const uint8_t *payload; /* the upper-layer header */
  size_t len;             /* its bytes (to the payload length's end) */
};

struct net_icmp6 {
  uint8_t type, code;
  uint8_t rest[4];     /* id/seq for echo, MTU for too-big, flags for NA */
  const uint8_t *data; /* after the 8-byte header */
  size_t len;
};

/* What a Neighbor Discovery message says (RS, RA, NS, NA): the target of
 * NS/NA and the options read. */
struct net_nd {
  const uint8_t *target; /* NS, NA; NULL otherwise */
  const uint8_t *lladdr; /* the source (RS, RA, NS) or target (NA) link-layer option */
  uint32_t mtu;          /* RA's MTU option, 0 = absent */
};

/* Version 6, payload length within len (trailing padding allowed), the
 * extension chain walked (hop-by-hop only first; routing, destination
 * options, fragment, AH lengths followed; ESP and no-next-header end it)
 * to the upper-layer header. */
int net_ipv6_parse(const uint8_t *p, size_t len, struct net_ipv6 *ip);

/* ICMPv6 over ip (not a fragment): at least the 8-byte header, checksum
 * verified over the pseudo-header. */
int net_icmp6_parse(const struct net_ipv6 *ip, struct net_icmp6 *m);

/* UDP over ip (not a fragment): the length field within the payload,
 * the checksum present (0 is not allowed over IPv6, RFC 8200 8.1) and
 * verified over the pseudo-header. */
int net_udp6_parse(const struct net_ipv6 *ip, struct net_udp *u);

/* TCP over ip (not a fragment): the checksum verified over the
 * pseudo-header, header and options read (net_tcp_seg). */
int net_tcp6_parse(const struct net_ipv6 *ip, struct net_tcp *t);

/* The ND fields of an RS/RA/NS/NA already parsed as m: the fixed part's
 * length checked, options walked (each length nonzero, within the
 * message); hop limit 255 is the caller's check (RFC 4861 7.1). */
int net_nd_parse(const struct net_icmp6 *m, struct net_nd *nd);

/* Pseudo-header sum for an upper-layer protocol over IPv6. */
uint32_t net6_csum_pseudo(const uint8_t src[16], const uint8_t dst[16], uint8_t next, uint32_t len);

/* ---- addresses ---- */

static inline bool net6_is_unspecified(const uint8_t a[16])
{
  for (int i = 0; i < 16; i++)
    if (a[i])
      return false;
  return true;
}

static inline bool net6_is_multicast(const uint8_t a[16])
{
  return a[0] == 0xff;
}

static inline bool net6_is_link_local(const uint8_t a[16])
{
  return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

/* Does a lie in net/len (len <= 128, net's host bits zero)? */
static inline bool net6_in_prefix(const uint8_t a[16], const uint8_t net[16], uint8_t len)
{
  uint8_t whole = len / 8, bits = len % 8;
  for (uint8_t i = 0; i < whole; i++)
    if (a[i] != net[i])
      return false;
  return !bits || (a[whole] & (uint8_t)(0xff << (8 - bits))) == net[whole];
}

/* prefix (first 8 bytes) + the modified EUI-64 interface identifier of mac
 * (RFC 4291 appendix A). */
void net6_addr_eui64(uint8_t out[16], const uint8_t prefix[8], const uint8_t mac[6]);

/* The solicited-node multicast address of a: ff02::1:ff00:0/104 plus the
 * last 24 bits of a (RFC 4291 2.7.1). */
void net6_solicited_node(uint8_t out[16], const uint8_t a[16]);

/* 33:33 + the last 4 bytes of multicast address a (RFC 2464 7). */
void net6_multicast_mac(uint8_t out[6], const uint8_t a[16]);

/* Formats a (compressed, RFC 5952) into out (46 bytes). */
const char *net6_str(const uint8_t a[16], char out[46]);

/* ---- builders ---- */

/* IPv6 (hop limit hlim) + ICMPv6 type/code, the 4 "rest" bytes and data,
 * checksum filled. */
int net_build_icmp6(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                    const uint8_t dst[16], uint8_t hlim, uint8_t type, uint8_t code,
                    const uint8_t rest[4], const uint8_t *data, size_t len);

/* IPv6 (hop limit 64) + UDP + payload, checksum filled. */
int net_build_udp6(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                   const uint8_t dst[16], uint16_t sport, uint16_t dport, const uint8_t *payload,
                   size_t len);

/* The headers only (Ethernet, IPv6 with hop limit 64, TCP with the
 * options in o) of a segment whose len payload bytes stay at `payload`
 * and are sent after them: the checksum covers them. Returns the header
 * length, or -ENOSPC. */
int net_build_tcp6_hdr(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                       const uint8_t dst[16], uint16_t sport, uint16_t dport, uint32_t seq,
                       uint32_t ack, uint8_t flags, uint16_t window, const struct net_tcp_opts *o,
                       const uint8_t *payload, size_t len);

/* An ICMPv6 error (type/code, rest = MTU for too-big else 0) about orig,
 * quoting as much of it as fits the minimum MTU (1280, RFC 4443 2.4). */
int net_build_icmp6_error(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                          uint8_t type, uint8_t code, uint32_t mtu, const struct net_ipv6 *orig);

/* What a router advertises (RFC 4861 4.2, RFC 8106). */
struct net_ra {
  uint8_t cur_hlim;
  uint16_t lifetime_s;   /* 0: not a default router */
  const uint8_t *mac;    /* source link-layer option */
  uint32_t mtu;          /* 0 = no MTU option */
  const uint8_t *prefix; /* 8 bytes, a /64 on-link and autonomous; NULL = none */
  uint32_t valid_s, preferred_s;
  const uint8_t *rdnss; /* 16 bytes; NULL = none */
  uint32_t rdnss_s;
};

/* A Router Advertisement from src (link-local) to dst, hop limit 255. */
int net_build_ra(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                 const uint8_t dst[16], const struct net_ra *ra);

/* A Neighbor Advertisement for target from src to dst, hop limit 255:
 * router, solicited and override flags as given, the target link-layer
 * option with mac. */
int net_build_na(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                 const uint8_t dst[16], const uint8_t target[16], const uint8_t mac[6], bool router,
                 bool solicited, bool override);

#endif
