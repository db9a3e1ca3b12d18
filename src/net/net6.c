/*
 * net6: IPv6, ICMPv6 and Neighbor Discovery parsers and builders. See
 * include/wtrelay/net6.h.
 */
#include "wtrelay/net6.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/cursor.h"

/* extension headers (RFC 8200 4) */
#define EXT_HOPOPTS 0
#define EXT_ROUTING 43
#define EXT_FRAGMENT 44
#define EXT_ESP 50
#define EXT_AH 51
#define EXT_NONE 59
#define EXT_DSTOPTS 60

int net_ipv6_parse(const uint8_t *p, size_t len, struct net_ipv6 *ip)
{
  struct cursor c;
  uint32_t w;
  uint16_t plen;
  uint8_t next, hlim;
  const uint8_t *src, *dst;
  cursor_init(&c, p, len);
  if (cursor_u32be(&c, &w) < 0 || cursor_u16be(&c, &plen) < 0 || cursor_u8(&c, &next) < 0 ||
      cursor_u8(&c, &hlim) < 0 || cursor_bytes(&c, 16, &src) < 0 || cursor_bytes(&c, 16, &dst) < 0)
    return -EMSGSIZE;
  if (w >> 28 != 6)
    return -EPROTO;
  if (plen > cursor_left(&c))
    return -EMSGSIZE; /* jumbograms (length 0 + hop-by-hop option) are not for a LAN */
  memset(ip, 0, sizeof(*ip));
  ip->tclass = (uint8_t)(w >> 20);
  ip->flow = w & 0xfffff;
  ip->hlim = hlim;
  ip->src = src;
  ip->dst = dst;
  ip->hdr = p;
  cursor_init(&c, p + IPV6_HDR, plen);
  for (;;) {
    switch (next) {
    case EXT_HOPOPTS:
      if (ip->nexts)
        return -EPROTO; /* only first (RFC 8200 4.1) */
      /* fall through */
    case EXT_ROUTING:
    case EXT_DSTOPTS:
    case EXT_FRAGMENT:
    case EXT_AH: {
      const uint8_t *h;
      if (ip->nexts >= NET6_MAX_EXT)
        return -ELOOP;
      if (cursor_peek(&c, 2, &h) < 0)
        return -EMSGSIZE;
      size_t hl = next == EXT_FRAGMENT ? 8
                  : next == EXT_AH     ? ((size_t)h[1] + 2) * 4
                                       : ((size_t)h[1] + 1) * 8;
      if (next == EXT_FRAGMENT)
        ip->fragment = true;
      next = h[0];
      if (cursor_skip(&c, hl) < 0)
        return -EMSGSIZE;
      ip->nexts++;
      continue;
    }
    default:
      break;
    }
    break;
  }
  ip->next = next; /* EXT_NONE and EXT_ESP end the walk too: the caller sees them */
  ip->len = cursor_left(&c);
  ip->payload = p + IPV6_HDR + (plen - ip->len);
  return 0;
}

uint32_t net6_csum_pseudo(const uint8_t src[16], const uint8_t dst[16], uint8_t next, uint32_t len)
{
  uint8_t tail[8];
  net_put32(tail, len);
  tail[4] = tail[5] = tail[6] = 0;
  tail[7] = next;
  uint32_t s = net_csum_add(0, src, 16);
  s = net_csum_add(s, dst, 16);
  return net_csum_add(s, tail, 8);
}

int net_icmp6_parse(const struct net_ipv6 *ip, struct net_icmp6 *m)
{
  if (ip->next != IP_PROTO_ICMPV6 || ip->fragment)
    return -EPROTO;
  if (ip->len < ICMP_HDR)
    return -EMSGSIZE;
  uint32_t s = net6_csum_pseudo(ip->src, ip->dst, IP_PROTO_ICMPV6, (uint32_t)ip->len);
  if (net_csum_fold(net_csum_add(s, ip->payload, ip->len)) != 0)
    return -EBADMSG;
  m->type = ip->payload[0];
  m->code = ip->payload[1];
  memcpy(m->rest, ip->payload + 4, 4);
  m->data = ip->payload + ICMP_HDR;
  m->len = ip->len - ICMP_HDR;
  return 0;
}

int net_udp6_parse(const struct net_ipv6 *ip, struct net_udp *u)
{
  uint16_t csum;
  if (ip->next != IP_PROTO_UDP || ip->fragment)
    return -EPROTO;
  int rc = net_udp_hdr(ip->payload, ip->len, u, &csum);
  if (rc < 0)
    return rc;
  if (csum == 0)
    return -EBADMSG;
  uint32_t ulen = (uint32_t)(u->len + UDP_HDR);
  uint32_t s = net6_csum_pseudo(ip->src, ip->dst, IP_PROTO_UDP, ulen);
  if (net_csum_fold(net_csum_add(s, ip->payload, ulen)) != 0)
    return -EBADMSG;
  return 0;
}

int net_tcp6_parse(const struct net_ipv6 *ip, struct net_tcp *t)
{
  if (ip->next != IP_PROTO_TCP || ip->fragment)
    return -EPROTO;
  return net_tcp_seg(ip->payload, ip->len,
                     net6_csum_pseudo(ip->src, ip->dst, IP_PROTO_TCP, (uint32_t)ip->len), t);
}

int net_nd_parse(const struct net_icmp6 *m, struct net_nd *nd)
{
  memset(nd, 0, sizeof(*nd));
  size_t fixed; /* after the 8-byte ICMPv6 header */
  switch (m->type) {
  case ND_ROUTER_SOLICIT:
    fixed = 0;
    break;
  case ND_ROUTER_ADVERT:
    fixed = 8; /* reachable time, retrans timer */
    break;
  case ND_NEIGHBOR_SOLICIT:
  case ND_NEIGHBOR_ADVERT:
    fixed = 16; /* target */
    break;
  default:
    return -EPROTO;
  }
  if (m->code != 0)
    return -EPROTO;
  struct cursor c;
  cursor_init(&c, m->data, m->len);
  if (fixed == 16) {
    if (cursor_bytes(&c, 16, &nd->target) < 0)
      return -EMSGSIZE;
  } else if (cursor_skip(&c, fixed) < 0) {
    return -EMSGSIZE;
  }
  while (cursor_left(&c)) {
    const uint8_t *o;
    if (cursor_peek(&c, 2, &o) < 0 || o[1] == 0)
      return -EBADMSG; /* a zero length would loop (RFC 4861 4.6) */
    size_t olen = (size_t)o[1] * 8;
    if (cursor_bytes(&c, olen, &o) < 0)
      return -EMSGSIZE;
    bool want_src = m->type != ND_NEIGHBOR_ADVERT;
    if (o[0] == (want_src ? ND_OPT_SRC_LLADDR : ND_OPT_TGT_LLADDR) && olen == 8)
      nd->lladdr = o + 2;
    else if (o[0] == ND_OPT_MTU && olen == 8 && m->type == ND_ROUTER_ADVERT)
      nd->mtu = (uint32_t)o[4] << 24 | (uint32_t)o[5] << 16 | (uint32_t)o[6] << 8 | o[7];
  }
  return 0;
}

/* ---- addresses ---- */

void net6_addr_eui64(uint8_t out[16], const uint8_t prefix[8], const uint8_t mac[6])
{
  memcpy(out, prefix, 8);
  out[8] = mac[0] ^ 0x02;
  out[9] = mac[1];
  out[10] = mac[2];
  out[11] = 0xff;
  out[12] = 0xfe;
  out[13] = mac[3];
  out[14] = mac[4];
  out[15] = mac[5];
}

void net6_solicited_node(uint8_t out[16], const uint8_t a[16])
{
  static const uint8_t head[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff};
  memcpy(out, head, 13);
  memcpy(out + 13, a + 13, 3);
}

void net6_multicast_mac(uint8_t out[6], const uint8_t a[16])
{
  out[0] = 0x33;
  out[1] = 0x33;
  memcpy(out + 2, a + 12, 4);
}

const char *net6_str(const uint8_t a[16], char out[46])
{
  uint16_t g[8];
  for (int i = 0; i < 8; i++)
    g[i] = (uint16_t)(a[2 * i] << 8 | a[2 * i + 1]);
  int best = -1, best_len = 1; /* the longest run of two or more zero groups */
  for (int i = 0; i < 8;) {
    int j = i;
    while (j < 8 && g[j] == 0)
      j++;
    if (j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j > i ? j : i + 1;
  }
  size_t n = 0;
  for (int i = 0; i < 8; i++) {
    if (i == best) {
      n += (size_t)snprintf(out + n, 46 - n, "::");
      i += best_len - 1;
      continue;
    }
    n += (size_t)snprintf(out + n, 46 - n, "%s%x", n && out[n - 1] != ':' ? ":" : "", g[i]);
  }
  return out;
}

/* ---- builders ---- */

/* The Ethernet and IPv6 headers for an upper-layer payload of plen bytes;
 * returns where the payload goes, or NULL when it does not fit cap. */
static uint8_t *ip6_hdr(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                        const uint8_t dst[16], uint8_t next, uint8_t hlim, size_t plen)
{
  if (plen > 65535 || cap < ETH_HDR + IPV6_HDR + plen)
    return NULL;
  uint8_t *h = net_eth_hdr(buf, l2, ETH_TYPE_IPV6);
  net_put32(h, 6u << 28);
  net_put16(h + 4, (uint16_t)plen);
  h[6] = next;
  h[7] = hlim;
  memcpy(h + 8, src, 16);
  memcpy(h + 24, dst, 16);
  return h + IPV6_HDR;
}

/* Fills the ICMPv6 checksum of the message m of len bytes. */
static void icmp6_csum(uint8_t *m, size_t len, const uint8_t src[16], const uint8_t dst[16])
{
  net_put16(m + 2, 0);
  uint32_t s = net6_csum_pseudo(src, dst, IP_PROTO_ICMPV6, (uint32_t)len);
  net_put16(m + 2, net_csum_fold(net_csum_add(s, m, len)));
}

int net_build_icmp6(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                    const uint8_t dst[16], uint8_t hlim, uint8_t type, uint8_t code,
                    const uint8_t rest[4], const uint8_t *data, size_t len)
{
  uint8_t *m = ip6_hdr(buf, cap, l2, src, dst, IP_PROTO_ICMPV6, hlim, ICMP_HDR + len);
  if (!m)
    return -ENOSPC;
  m[0] = type;
  m[1] = code;
  memcpy(m + 4, rest, 4);
  if (len)
    memmove(m + ICMP_HDR, data, len);
  icmp6_csum(m, ICMP_HDR + len, src, dst);
  return (int)(ETH_HDR + IPV6_HDR + ICMP_HDR + len);
}

int net_build_udp6(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                   const uint8_t dst[16], uint16_t sport, uint16_t dport, const uint8_t *payload,
                   size_t len)
{
  uint8_t *u = ip6_hdr(buf, cap, l2, src, dst, IP_PROTO_UDP, 64, UDP_HDR + len);
  if (!u)
    return -ENOSPC;
  net_udp_fill(u, sport, dport, payload, len,
               net6_csum_pseudo(src, dst, IP_PROTO_UDP, (uint32_t)(UDP_HDR + len)));
  return (int)(ETH_HDR + IPV6_HDR + UDP_HDR + len);
}

int net_build_tcp6_hdr(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                       const uint8_t dst[16], uint16_t sport, uint16_t dport, uint32_t seq,
                       uint32_t ack, uint8_t flags, uint16_t window, const struct net_tcp_opts *o,
                       const uint8_t *payload, size_t len)
{
  size_t hl = net_tcp_hdr_len(o);
  if (hl + len > 65535 || cap < ETH_HDR + IPV6_HDR + hl)
    return -ENOSPC;
  /* the IPv6 header for the whole segment, of which only the header is here */
  uint8_t *t =
      ip6_hdr(buf, ETH_HDR + IPV6_HDR + hl + len, l2, src, dst, IP_PROTO_TCP, 64, hl + len);
  net_tcp_fill(t, sport, dport, seq, ack, flags, window, o, payload, len,
               net6_csum_pseudo(src, dst, IP_PROTO_TCP, (uint32_t)(hl + len)));
  return (int)(ETH_HDR + IPV6_HDR + hl);
}

int net_build_icmp6_error(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                          uint8_t type, uint8_t code, uint32_t mtu, const struct net_ipv6 *orig)
{
  /* the whole error within 1280 bytes: 40 + 8 + the quote */
  size_t qlen = IPV6_HDR + (size_t)(orig->payload - orig->hdr - IPV6_HDR) + orig->len;
  if (qlen > 1280 - IPV6_HDR - ICMP_HDR)
    qlen = 1280 - IPV6_HDR - ICMP_HDR;
  uint8_t rest[4];
  net_put32(rest, mtu);
  return net_build_icmp6(buf, cap, l2, src, orig->src, 64, type, code, rest, orig->hdr, qlen);
}

int net_build_ra(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                 const uint8_t dst[16], const struct net_ra *ra)
{
  size_t len = ICMP_HDR + 8 + 8 + (ra->mtu ? 8 : 0) + (ra->prefix ? 32 : 0) + (ra->rdnss ? 24 : 0);
  uint8_t *m = ip6_hdr(buf, cap, l2, src, dst, IP_PROTO_ICMPV6, 255, len);
  if (!m)
    return -ENOSPC;
  memset(m, 0, len);
  m[0] = ND_ROUTER_ADVERT;
  m[4] = ra->cur_hlim;
  net_put16(m + 6, ra->lifetime_s);
  uint8_t *o = m + ICMP_HDR + 8; /* reachable time and retrans timer: 0, unspecified */
  o[0] = ND_OPT_SRC_LLADDR;
  o[1] = 1;
  memcpy(o + 2, ra->mac, 6);
  o += 8;
  if (ra->mtu) {
    o[0] = ND_OPT_MTU;
    o[1] = 1;
    net_put32(o + 4, ra->mtu);
    o += 8;
  }
  if (ra->prefix) {
    o[0] = ND_OPT_PREFIX;
    o[1] = 4;
    o[2] = 64;
    o[3] = 0xc0; /* on-link, autonomous */
    net_put32(o + 4, ra->valid_s);
    net_put32(o + 8, ra->preferred_s);
    memcpy(o + 16, ra->prefix, 8);
    o += 32;
  }
  if (ra->rdnss) {
    o[0] = ND_OPT_RDNSS;
    o[1] = 3;
    net_put32(o + 4, ra->rdnss_s);
    memcpy(o + 8, ra->rdnss, 16);
  }
  icmp6_csum(m, len, src, dst);
  return (int)(ETH_HDR + IPV6_HDR + len);
}

int net_build_na(uint8_t *buf, size_t cap, const struct net_l2 *l2, const uint8_t src[16],
                 const uint8_t dst[16], const uint8_t target[16], const uint8_t mac[6], bool router,
                 bool solicited, bool override)
{
  size_t len = ICMP_HDR + 16 + 8;
  uint8_t *m = ip6_hdr(buf, cap, l2, src, dst, IP_PROTO_ICMPV6, 255, len);
  if (!m)
    return -ENOSPC;
  memset(m, 0, len);
  m[0] = ND_NEIGHBOR_ADVERT;
  m[4] = (uint8_t)((router ? 0x80 : 0) | (solicited ? 0x40 : 0) | (override ? 0x20 : 0));
  memcpy(m + ICMP_HDR, target, 16);
  uint8_t *o = m + ICMP_HDR + 16;
  o[0] = ND_OPT_TGT_LLADDR;
  o[1] = 1;
  memcpy(o + 2, mac, 6);
  icmp6_csum(m, len, src, dst);
  return (int)(ETH_HDR + IPV6_HDR + len);
}
