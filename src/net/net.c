/*
 * net: packet parsers, builders and checksums. See include/wtrelay/net.h.
 */
#include "wtrelay/net.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/cursor.h"

/* ---- checksums ---- */

/* The one's complement sum does not depend on byte order (RFC 1071,
 * section 2): the words are summed as the machine loads them, 32 bits at
 * a time into 64, folded to 16 bits and swapped into network order once
 * at the end. Each call sums its bytes as if they started on an even
 * offset (an odd last byte padded with a zero). */
uint32_t net_csum_add(uint32_t sum, const void *p, size_t len)
{
  const uint8_t *b = p;
  uint64_t s0 = 0, s1 = 0;
  for (; len >= 16; b += 16, len -= 16) {
    uint32_t w[4];
    memcpy(w, b, sizeof(w));
    s0 += (uint64_t)w[0] + w[1];
    s1 += (uint64_t)w[2] + w[3];
  }
  for (; len >= 4; b += 4, len -= 4) {
    uint32_t w;
    memcpy(&w, b, sizeof(w));
    s0 += w;
  }
  uint8_t tail[4] = {0};
  memcpy(tail, b, len);
  uint32_t w;
  memcpy(&w, tail, sizeof(w));
  uint64_t s = (s0 & 0xffffffffu) + (s0 >> 32) + (s1 & 0xffffffffu) + (s1 >> 32) + w;
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  uint16_t v = (uint16_t)s;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  v = (uint16_t)(v << 8 | v >> 8);
#endif
  uint64_t t = (uint64_t)sum + v;
  return (uint32_t)((t & 0xffffffffu) + (t >> 32));
}

uint16_t net_csum_fold(uint32_t sum)
{
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

uint32_t net_csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len)
{
  uint64_t s = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
  while (s >> 32)
    s = (s & 0xffffffffu) + (s >> 32);
  return (uint32_t)s;
}

uint16_t net_csum_update16(uint16_t csum, uint16_t old, uint16_t new_)
{
  /* HC' = ~(~HC + ~m + m') */
  uint32_t s = (uint16_t)~csum + (uint16_t)~old + (uint32_t)new_;
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

uint16_t net_csum_update32(uint16_t csum, uint32_t old, uint32_t new_)
{
  csum = net_csum_update16(csum, (uint16_t)(old >> 16), (uint16_t)(new_ >> 16));
  return net_csum_update16(csum, (uint16_t)old, (uint16_t)new_);
}

/* ---- parsers ---- */

int net_eth_parse(const uint8_t *p, size_t len, struct net_eth *e)
{
  struct cursor c;
  cursor_init(&c, p, len);
  if (cursor_bytes(&c, 6, &e->dst) < 0 || cursor_bytes(&c, 6, &e->src) < 0 ||
      cursor_u16be(&c, &e->type) < 0)
    return -EINVAL;
  e->payload = c.p + c.off;
  e->len = cursor_left(&c);
  return 0;
}

int net_arp_parse(const uint8_t *p, size_t len, struct net_arp *a)
{
  struct cursor c;
  uint16_t htype, ptype;
  uint8_t hlen, plen;
  const uint8_t *sha, *tha;
  cursor_init(&c, p, len);
  if (cursor_u16be(&c, &htype) < 0 || cursor_u16be(&c, &ptype) < 0 || cursor_u8(&c, &hlen) < 0 ||
      cursor_u8(&c, &plen) < 0 || cursor_u16be(&c, &a->op) < 0 || cursor_bytes(&c, 6, &sha) < 0 ||
      cursor_u32be(&c, &a->spa) < 0 || cursor_bytes(&c, 6, &tha) < 0 ||
      cursor_u32be(&c, &a->tpa) < 0)
    return -EINVAL;
  if (htype != 1 || ptype != ETH_TYPE_IPV4 || hlen != 6 || plen != 4)
    return -EINVAL;
  memcpy(a->sha, sha, 6);
  memcpy(a->tha, tha, 6);
  return 0;
}

int net_ipv4_parse(const uint8_t *p, size_t len, struct net_ipv4 *ip)
{
  struct cursor c;
  uint8_t vihl;
  uint16_t csum;
  cursor_init(&c, p, len);
  if (cursor_u8(&c, &vihl) < 0 || (vihl >> 4) != 4 || (vihl & 15) < 5)
    return -EINVAL;
  ip->ihl = (uint8_t)((vihl & 15) * 4);
  if (len < ip->ihl)
    return -EINVAL;
  if (cursor_u8(&c, &ip->tos) < 0 || cursor_u16be(&c, &ip->total_len) < 0 ||
      cursor_u16be(&c, &ip->id) < 0 || cursor_u16be(&c, &ip->frag) < 0 ||
      cursor_u8(&c, &ip->ttl) < 0 || cursor_u8(&c, &ip->proto) < 0 || cursor_u16be(&c, &csum) < 0 ||
      cursor_u32be(&c, &ip->src) < 0 || cursor_u32be(&c, &ip->dst) < 0)
    return -EINVAL;
  if (ip->total_len < ip->ihl || ip->total_len > len)
    return -EINVAL;
  if (net_csum_fold(net_csum_add(0, p, ip->ihl)) != 0)
    return -EBADMSG;
  ip->hdr = p;
  ip->payload = p + ip->ihl;
  ip->len = (size_t)ip->total_len - ip->ihl;
  return 0;
}

int net_udp_hdr(const uint8_t *p, size_t len, struct net_udp *u, uint16_t *csum)
{
  struct cursor c;
  uint16_t ulen;
  cursor_init(&c, p, len);
  if (cursor_u16be(&c, &u->sport) < 0 || cursor_u16be(&c, &u->dport) < 0 ||
      cursor_u16be(&c, &ulen) < 0 || cursor_u16be(&c, csum) < 0)
    return -EMSGSIZE;
  if (ulen < UDP_HDR || ulen > len)
    return -EMSGSIZE;
  u->payload = p + UDP_HDR;
  u->len = (size_t)ulen - UDP_HDR;
  return 0;
}

int net_udp_parse(const struct net_ipv4 *ip, struct net_udp *u)
{
  uint16_t csum;
  if (ip->proto != IP_PROTO_UDP || net_ip_is_fragment(ip) ||
      net_udp_hdr(ip->payload, ip->len, u, &csum) < 0)
    return -EINVAL;
  uint16_t ulen = (uint16_t)(u->len + UDP_HDR);
  if (csum) {
    uint32_t s = net_csum_pseudo(ip->src, ip->dst, IP_PROTO_UDP, ulen);
    if (net_csum_fold(net_csum_add(s, ip->payload, ulen)) != 0)
      return -EBADMSG;
  }
  return 0;
}

int net_icmp_parse(const struct net_ipv4 *ip, struct net_icmp *m)
{
  struct cursor c;
  uint16_t csum;
  if (ip->proto != IP_PROTO_ICMP || net_ip_is_fragment(ip))
    return -EINVAL;
  cursor_init(&c, ip->payload, ip->len);
  if (cursor_u8(&c, &m->type) < 0 || cursor_u8(&c, &m->code) < 0 || cursor_u16be(&c, &csum) < 0 ||
      cursor_u16be(&c, &m->id) < 0 || cursor_u16be(&c, &m->seq) < 0)
    return -EINVAL;
  if (net_csum_fold(net_csum_add(0, ip->payload, ip->len)) != 0)
    return -EBADMSG;
  m->data = ip->payload + ICMP_HDR;
  m->len = ip->len - ICMP_HDR;
  return 0;
}

int net_tcp_parse(const struct net_ipv4 *ip, struct net_tcp *t)
{
  if (ip->proto != IP_PROTO_TCP || net_ip_is_fragment(ip))
    return -EINVAL;
  return net_tcp_seg(ip->payload, ip->len,
                     net_csum_pseudo(ip->src, ip->dst, IP_PROTO_TCP, (uint16_t)ip->len), t);
}

int net_tcp_seg(const uint8_t *p, size_t plen, uint32_t pseudo, struct net_tcp *t)
{
  struct cursor c;
  uint8_t off, flags;
  uint16_t csum, urg;
  cursor_init(&c, p, plen);
  if (cursor_u16be(&c, &t->sport) < 0 || cursor_u16be(&c, &t->dport) < 0 ||
      cursor_u32be(&c, &t->seq) < 0 || cursor_u32be(&c, &t->ack) < 0 || cursor_u8(&c, &off) < 0 ||
      cursor_u8(&c, &flags) < 0 || cursor_u16be(&c, &t->window) < 0 ||
      cursor_u16be(&c, &csum) < 0 || cursor_u16be(&c, &urg) < 0)
    return -EINVAL;
  size_t hl = (size_t)(off >> 4) * 4;
  if (hl < TCP_HDR || hl > plen)
    return -EINVAL;
  if (net_csum_fold(net_csum_add(pseudo, p, plen)) != 0)
    return -EBADMSG;
  t->flags = flags;
  t->mss = 0;
  t->wscale = -1;
  t->sack_ok = false;
  t->nsack = 0;
  struct cursor o;
  cursor_init(&o, p + TCP_HDR, hl - TCP_HDR);
  for (;;) {
    uint8_t kind, len;
    const uint8_t *v;
    if (cursor_u8(&o, &kind) < 0 || kind == 0)
      break;
    if (kind == 1)
      continue;
    if (cursor_u8(&o, &len) < 0 || len < 2 || cursor_bytes(&o, (size_t)len - 2, &v) < 0)
      break; /* malformed options: ignore the rest */
    if (kind == 2 && len == 4)
      t->mss = (uint16_t)(v[0] << 8 | v[1]);
    else if (kind == 3 && len == 3)
      t->wscale = (int8_t)(v[0] > 14 ? 14 : v[0]);
    else if (kind == 4 && len == 2)
      t->sack_ok = true;
    else if (kind == 5 && len >= 10 && (len - 2) % 8 == 0 && (len - 2) / 8 <= 4) {
      t->nsack = (uint8_t)((len - 2) / 8);
      for (unsigned i = 0; i < t->nsack; i++) {
        const uint8_t *b = v + 8 * i;
        t->sack[i][0] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        t->sack[i][1] = (uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7];
      }
    }
  }
  t->payload = p + hl;
  t->len = plen - hl;
  return 0;
}

/* ---- builders ---- */

uint8_t *net_eth_hdr(uint8_t *buf, const struct net_l2 *l2, uint16_t type)
{
  memcpy(buf, l2->dst_mac, 6);
  memcpy(buf + 6, l2->src_mac, 6);
  net_put16(buf + 12, type);
  return buf + ETH_HDR;
}

static void ipv4_hdr(uint8_t *h, uint32_t src, uint32_t dst, uint8_t proto, uint16_t total,
                     uint16_t id, bool df)
{
  h[0] = 0x45;
  h[1] = 0;
  net_put16(h + 2, total);
  net_put16(h + 4, id);
  net_put16(h + 6, df ? 0x4000 : 0);
  h[8] = 64;
  h[9] = proto;
  net_put16(h + 10, 0);
  net_put32(h + 12, src);
  net_put32(h + 16, dst);
  net_put16(h + 10, net_csum_fold(net_csum_add(0, h, IPV4_HDR)));
}

int net_build_arp(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint16_t op,
                  const uint8_t sha[6], uint32_t spa, const uint8_t tha[6], uint32_t tpa)
{
  const size_t len = ETH_HDR + 28;
  if (cap < len)
    return -ENOSPC;
  uint8_t *a = net_eth_hdr(buf, l2, ETH_TYPE_ARP);
  net_put16(a, 1);
  net_put16(a + 2, ETH_TYPE_IPV4);
  a[4] = 6;
  a[5] = 4;
  net_put16(a + 6, op);
  memcpy(a + 8, sha, 6);
  net_put32(a + 14, spa);
  memcpy(a + 18, tha, 6);
  net_put32(a + 24, tpa);
  return (int)len;
}

int net_build_udp(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src, uint32_t dst,
                  uint16_t sport, uint16_t dport, const uint8_t *payload, size_t len, uint16_t id)
{
  size_t total = IPV4_HDR + UDP_HDR + len;
  if (total > 65535 || cap < ETH_HDR + total)
    return -ENOSPC;
  uint8_t *ip = net_eth_hdr(buf, l2, ETH_TYPE_IPV4);
  ipv4_hdr(ip, src, dst, IP_PROTO_UDP, (uint16_t)total, id, true);
  net_udp_fill(ip + IPV4_HDR, sport, dport, payload, len,
               net_csum_pseudo(src, dst, IP_PROTO_UDP, (uint16_t)(UDP_HDR + len)));
  return (int)(ETH_HDR + total);
}

void net_udp_fill(uint8_t *u, uint16_t sport, uint16_t dport, const uint8_t *payload, size_t len,
                  uint32_t pseudo)
{
  net_put16(u, sport);
  net_put16(u + 2, dport);
  net_put16(u + 4, (uint16_t)(UDP_HDR + len));
  net_put16(u + 6, 0);
  if (len)
    memmove(u + UDP_HDR, payload, len);
  uint16_t c = net_csum_fold(net_csum_add(pseudo, u, UDP_HDR + len));
  net_put16(u + 6, c ? c : 0xffff); /* 0 means "no checksum" */
}

int net_build_icmp(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src, uint32_t dst,
                   uint8_t type, uint8_t code, const uint8_t rest[4], const uint8_t *data,
                   size_t len, uint16_t id)
{
  size_t total = IPV4_HDR + ICMP_HDR + len;
  if (total > 65535 || cap < ETH_HDR + total)
    return -ENOSPC;
  uint8_t *ip = net_eth_hdr(buf, l2, ETH_TYPE_IPV4);
  ipv4_hdr(ip, src, dst, IP_PROTO_ICMP, (uint16_t)total, id, false);
  uint8_t *m = ip + IPV4_HDR;
  m[0] = type;
  m[1] = code;
  net_put16(m + 2, 0);
  memcpy(m + 4, rest, 4);
  if (len)
    memmove(m + ICMP_HDR, data, len);
  net_put16(m + 2, net_csum_fold(net_csum_add(0, m, ICMP_HDR + len)));
  return (int)(ETH_HDR + total);
}

int net_build_icmp_error(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src,
                         uint8_t type, uint8_t code, uint16_t mtu, const struct net_ipv4 *orig,
                         uint16_t id)
{
  uint8_t quote[60 + 8];
  size_t qlen = orig->ihl + (orig->len < 8 ? orig->len : 8);
  if (qlen > sizeof(quote))
    return -EINVAL;
  memcpy(quote, orig->hdr, qlen);
  uint8_t rest[4] = {0, 0, (uint8_t)(mtu >> 8), (uint8_t)mtu};
  return net_build_icmp(buf, cap, l2, src, orig->src, type, code, rest, quote, qlen, id);
}

int net_build_tcp(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src, uint32_t dst,
                  uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                  uint16_t window, uint16_t mss, const uint8_t *payload, size_t len, uint16_t id)
{
  return net_build_tcp_ws(buf, cap, l2, src, dst, sport, dport, seq, ack, flags, window, mss, -1,
                          payload, len, id);
}

int net_build_tcp_ws(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src, uint32_t dst,
                     uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                     uint16_t window, uint16_t mss, int wscale, const uint8_t *payload, size_t len,
                     uint16_t id)
{
  struct net_tcp_opts o = {.mss = mss, .wscale = (int8_t)(wscale > 14 ? 14 : wscale)};
  return net_build_tcp_opts(buf, cap, l2, src, dst, sport, dport, seq, ack, flags, window, &o,
                            payload, len, id);
}

int net_build_tcp_hdr(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src, uint32_t dst,
                      uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                      uint16_t window, const struct net_tcp_opts *op, const uint8_t *payload,
                      size_t len, uint16_t id)
{
  size_t hl = net_tcp_hdr_len(op);
  size_t total = IPV4_HDR + hl + len;
  if (total > 65535 || cap < ETH_HDR + IPV4_HDR + hl)
    return -ENOSPC;
  uint8_t *ip = net_eth_hdr(buf, l2, ETH_TYPE_IPV4);
  ipv4_hdr(ip, src, dst, IP_PROTO_TCP, (uint16_t)total, id, true);
  net_tcp_fill(ip + IPV4_HDR, sport, dport, seq, ack, flags, window, op, payload, len,
               net_csum_pseudo(src, dst, IP_PROTO_TCP, (uint16_t)(hl + len)));
  return (int)(ETH_HDR + IPV4_HDR + hl);
}

static const struct net_tcp_opts no_opts = {.wscale = -1};

/* The SACK blocks that fit beside the other options (40 bytes at most). */
static unsigned tcp_nsack(const struct net_tcp_opts *op, size_t base)
{
  unsigned nsack = op->nsack > NET_TCP_SACK_MAX ? NET_TCP_SACK_MAX : op->nsack;
  while (nsack && base + 4 + 8 * nsack > 40)
    nsack--;
  return nsack;
}

static size_t tcp_opts_base(const struct net_tcp_opts *op)
{
  return (op->mss ? 4 : 0) + (op->wscale >= 0 ? 4 : 0) + (op->sack_ok ? 4 : 0);
}

size_t net_tcp_hdr_len(const struct net_tcp_opts *op)
{
  if (!op)
    op = &no_opts;
  size_t base = tcp_opts_base(op);
  unsigned nsack = tcp_nsack(op, base);
  return TCP_HDR + base + (nsack ? 4 + 8 * nsack : 0);
}

size_t net_tcp_fill(uint8_t *t, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                    uint8_t flags, uint16_t window, const struct net_tcp_opts *op,
                    const uint8_t *payload, size_t len, uint32_t pseudo)
{
  if (!op)
    op = &no_opts;
  unsigned nsack = tcp_nsack(op, tcp_opts_base(op));
  size_t hl = net_tcp_hdr_len(op);
  net_put16(t, sport);
  net_put16(t + 2, dport);
  net_put32(t + 4, seq);
  net_put32(t + 8, ack);
  t[12] = (uint8_t)((hl / 4) << 4);
  t[13] = flags;
  net_put16(t + 14, window);
  net_put16(t + 16, 0);
  net_put16(t + 18, 0);
  uint8_t *o = t + TCP_HDR;
  if (op->mss) {
    o[0] = 2;
    o[1] = 4;
    net_put16(o + 2, op->mss);
    o += 4;
  }
  if (op->wscale >= 0) {
    o[0] = 1; /* NOP, for alignment */
    o[1] = 3;
    o[2] = 3;
    o[3] = (uint8_t)(op->wscale > 14 ? 14 : op->wscale);
    o += 4;
  }
  if (op->sack_ok) {
    o[0] = 1;
    o[1] = 1;
    o[2] = 4;
    o[3] = 2;
    o += 4;
  }
  if (nsack) {
    o[0] = 1;
    o[1] = 1;
    o[2] = 5;
    o[3] = (uint8_t)(2 + 8 * nsack);
    o += 4;
    for (unsigned i = 0; i < nsack; i++, o += 8) {
      net_put32(o, op->sack[i][0]);
      net_put32(o + 4, op->sack[i][1]);
    }
  }
  uint32_t s = net_csum_add(pseudo, t, hl);
  if (len) /* an odd-length header cannot happen: hl is a multiple of 4 */
    s = net_csum_add(s, payload, len);
  net_put16(t + 16, net_csum_fold(s));
  return hl;
}

int net_build_tcp_opts(uint8_t *buf, size_t cap, const struct net_l2 *l2, uint32_t src,
                       uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                       uint8_t flags, uint16_t window, const struct net_tcp_opts *op,
                       const uint8_t *payload, size_t len, uint16_t id)
{
  if (len > cap)
    return -ENOSPC;
  int h = net_build_tcp_hdr(buf, cap - len, l2, src, dst, sport, dport, seq, ack, flags, window, op,
                            payload, len, id);
  if (h < 0)
    return h;
  if (len)
    memmove(buf + h, payload, len);
  return h + (int)len;
}

int net_mac_parse(const char *s, uint8_t mac[6])
{
  unsigned v[6];
  char tail;
  if (strlen(s) != 17 ||
      sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) !=
          6 ||
      (v[0] & 1))
    return -EINVAL;
  for (int i = 0; i < 6; i++)
    mac[i] = (uint8_t)v[i];
  return 0;
}

const char *net_ip_str(uint32_t ip, char buf[16])
{
  snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
  return buf;
}
