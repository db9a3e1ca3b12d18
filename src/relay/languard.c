/*
 * languard: LAN guards of a session port. See include/wtrelay/languard.h.
 *
 * Every read goes through a cursor over the gathered head, so a short or
 * lying frame ends in a verdict, never in a read past the head. A tagged
 * frame is not looked into: without any_mac its tag alone drops it, with
 * any_mac it passes whatever it carries.
 */
#include "wtrelay/languard.h"

#include <string.h>

#include "wtrelay/cursor.h"

#define ETHT_IPV4 0x0800
#define ETHT_ARP 0x0806
#define ETHT_IPV6 0x86dd
#define ETHT_VLAN 0x8100
#define ETHT_QINQ 0x88a8
#define ETHT_QINQ_OLD 0x9100

static const uint8_t zero_mac[6];

bool languard_mac_reserved(const struct languard_params *lp, const uint8_t mac[6])
{
  return (mac[0] & 1) || memcmp(mac, zero_mac, 6) == 0 || memcmp(mac, lp->gateway_mac, 6) == 0;
}

const char *languard_verdict_name(enum languard_verdict v)
{
  static const char *const names[LANGUARD_NVERDICTS] = {
      [LANGUARD_PASS] = "pass",           [LANGUARD_ARP_SPOOF] = "arp_spoof",
      [LANGUARD_ARP_MAC] = "arp_mac",     [LANGUARD_ARP_BAD] = "arp_bad",
      [LANGUARD_IP_SPOOF] = "ip_spoof",   [LANGUARD_IP_BAD] = "ip_bad",
      [LANGUARD_VLAN] = "vlan",           [LANGUARD_RESERVED_SRC] = "reserved_src_mac",
      [LANGUARD_IP6_SPOOF] = "ip6_spoof", [LANGUARD_IP6_BAD] = "ip6_bad",
      [LANGUARD_ND_ROUTER] = "nd_router",
  };
  return (unsigned)v < LANGUARD_NVERDICTS ? names[v] : "?";
}

/* May `src` (seen with source MAC `mac`) speak on this port? */
static bool addr_ok(const struct languard_port *port, const uint8_t mac[6], uint32_t src)
{
  if (src == port->ip)
    return true;
  return port->any_mac && port->bound && src != 0 && port->bound(port->ctx, mac, src);
}

static enum languard_verdict arp_check(const struct languard_params *lp,
                                       const struct languard_port *port, const uint8_t *eth_src,
                                       struct cursor *c)
{
  uint16_t htype, ptype, op;
  uint8_t hlen, plen;
  const uint8_t *sha;
  uint32_t spa;
  if (cursor_u16be(c, &htype) < 0 || cursor_u16be(c, &ptype) < 0 || cursor_u8(c, &hlen) < 0 ||
      cursor_u8(c, &plen) < 0 || cursor_u16be(c, &op) < 0 || cursor_bytes(c, 6, &sha) < 0 ||
      cursor_u32be(c, &spa) < 0)
    return LANGUARD_ARP_BAD;
  if (htype != 1 || ptype != ETHT_IPV4 || hlen != 6 || plen != 4 || (op != 1 && op != 2))
    return LANGUARD_ARP_BAD;
  /* the sender MAC is what a receiver's neighbour table will learn */
  if (memcmp(sha, port->any_mac ? eth_src : port->mac, 6) != 0)
    return LANGUARD_ARP_MAC;
  if (spa == lp->gateway_ip || spa == lp->dns_ip)
    return LANGUARD_ARP_SPOOF;
  if (spa == 0) /* RFC 5227 probe: a request that claims nothing */
    return op == 1 ? LANGUARD_PASS : LANGUARD_ARP_SPOOF;
  return addr_ok(port, sha, spa) ? LANGUARD_PASS : LANGUARD_ARP_SPOOF;
}

static enum languard_verdict ipv4_check(const struct languard_port *port, const uint8_t *eth_src,
                                        struct cursor *c)
{
  const uint8_t *h;
  if (cursor_peek(c, 20, &h) < 0 || (h[0] >> 4) != 4 || (h[0] & 15) < 5)
    return LANGUARD_IP_BAD;
  size_t ihl = (size_t)(h[0] & 15) * 4;
  uint32_t src = (uint32_t)h[12] << 24 | (uint32_t)h[13] << 16 | (uint32_t)h[14] << 8 | h[15];
  if (addr_ok(port, eth_src, src))
    return LANGUARD_PASS;
  if (src != 0)
    return LANGUARD_IP_SPOOF;
  /* 0.0.0.0: only a DHCP client (UDP 68 -> 67, first fragment) */
  const uint8_t *ports;
  bool first_frag = ((h[6] & 0x1f) | h[7]) == 0;
  if (h[9] != 17 || !first_frag || cursor_skip(c, ihl) < 0 || cursor_bytes(c, 4, &ports) < 0)
    return LANGUARD_IP_SPOOF;
  uint16_t sport = (uint16_t)(ports[0] << 8 | ports[1]),
           dport = (uint16_t)(ports[2] << 8 | ports[3]);
  return sport == 68 && dport == 67 ? LANGUARD_PASS : LANGUARD_IP_SPOOF;
}

/* Does a (16 bytes) carry mac's modified EUI-64 interface identifier? */
static bool iid_of(const uint8_t *a, const uint8_t mac[6])
{
  return a[8] == (mac[0] ^ 0x02) && a[9] == mac[1] && a[10] == mac[2] && a[11] == 0xff &&
         a[12] == 0xfe && a[13] == mac[3] && a[14] == mac[4] && a[15] == mac[5];
}

/* May the port speak from (or advertise) the IPv6 address a? */
static bool own6(const struct languard_port *port, const uint8_t *a)
{
  return iid_of(a, port->mac) || (port->claimed6 && port->claimed6(port->ctx, a));
}

static bool unspecified6(const uint8_t *a)
{
  static const uint8_t zero[16];
  return memcmp(a, zero, 16) == 0;
}

/* ND messages: no RA or Redirect; an NA's target formed from the port's
 * MAC; a link-layer address option (first option) that is the port's
 * MAC. c is at the ICMPv6 header. */
static enum languard_verdict nd_check(const struct languard_port *port, struct cursor *c,
                                      bool src_unspecified, size_t msg_len)
{
  const uint8_t *m;
  if (cursor_peek(c, 4, &m) < 0)
    return LANGUARD_IP6_BAD;
  uint8_t type = m[0];
  if (type == 134 || type == 137)
    return LANGUARD_ND_ROUTER;
  if (src_unspecified && type != 133 && type != 135 && type != 143 && type != 131)
    return LANGUARD_IP6_SPOOF; /* :: only asks (RS, DAD's NS) or joins groups (MLD) */
  if (type != 133 && type != 135 && type != 136)
    return LANGUARD_PASS;
  /* past the 8-byte header (RS: options follow; NS, NA: the target) */
  if (cursor_skip(c, 8) < 0)
    return LANGUARD_IP6_BAD;
  if (type != 133) {
    const uint8_t *target;
    if (cursor_bytes(c, 16, &target) < 0)
      return LANGUARD_IP6_BAD;
    if (type == 136 && !own6(port, target))
      return LANGUARD_IP6_SPOOF;
    if (type == 135 && src_unspecified && port->dad_target)
      *port->dad_target = target;
  }
  const uint8_t *o;
  size_t fixed = type == 133 ? 8 : 24;
  if (msg_len <= fixed)
    return LANGUARD_PASS; /* no option */
  if (cursor_peek(c, 8, &o) < 0)
    return LANGUARD_IP6_BAD; /* an option past the head could name any MAC */
  if ((o[0] == 1 || o[0] == 2) && o[1] == 1 && memcmp(o + 2, port->mac, 6) != 0)
    return LANGUARD_IP6_SPOOF;
  return LANGUARD_PASS;
}

static enum languard_verdict ipv6_check(const struct languard_port *port, struct cursor *c)
{
  const uint8_t *h;
  if (cursor_bytes(c, 40, &h) < 0 || (h[0] >> 4) != 6)
    return LANGUARD_IP6_BAD;
  const uint8_t *src = h + 8;
  bool unspec = unspecified6(src);
  if (!unspec && !own6(port, src))
    return LANGUARD_IP6_SPOOF;
  uint8_t next = h[6];
  size_t left = (size_t)(h[4] << 8 | h[5]); /* payload bytes after what was walked */
  for (int n = 0;; n++) {
    const uint8_t *x;
    if (next == 58)
      return nd_check(port, c, unspec, left);
    if (next != 0 && next != 43 && next != 60 && next != 44 && next != 51)
      return unspec ? LANGUARD_IP6_SPOOF : LANGUARD_PASS; /* an upper layer */
    if (n >= 8 || cursor_peek(c, 8, &x) < 0)
      return LANGUARD_IP6_BAD;
    if (next == 44 && ((x[2] << 8 | x[3]) & 0xfff8) != 0)
      return unspec ? LANGUARD_IP6_SPOOF : LANGUARD_PASS; /* a later fragment */
    size_t len = next == 44 ? 8 : next == 51 ? ((size_t)x[1] + 2) * 4 : ((size_t)x[1] + 1) * 8;
    next = x[0];
    if (len > left || cursor_skip(c, len) < 0)
      return LANGUARD_IP6_BAD;
    left -= len;
  }
}

enum languard_verdict languard_check(const struct languard_params *lp,
                                     const struct languard_port *port, const uint8_t *head,
                                     size_t hlen)
{
  struct cursor c;
  const uint8_t *eth;
  uint16_t type;
  cursor_init(&c, head, hlen < LANGUARD_HEAD ? hlen : LANGUARD_HEAD);
  if (port->dad_target)
    *port->dad_target = NULL;
  if (cursor_bytes(&c, 12, &eth) < 0 || cursor_u16be(&c, &type) < 0)
    return LANGUARD_PASS; /* runts are the caller's (and the switch's) to drop */
  const uint8_t *src = eth + 6;
  if (port->any_mac && (memcmp(src, zero_mac, 6) == 0 || memcmp(src, lp->gateway_mac, 6) == 0))
    return LANGUARD_RESERVED_SRC;
  if (type == ETHT_VLAN || type == ETHT_QINQ || type == ETHT_QINQ_OLD) {
    if (!port->any_mac)
      return LANGUARD_VLAN;
    return LANGUARD_PASS;
  }
  if (type == ETHT_ARP)
    return arp_check(lp, port, src, &c);
  if (type == ETHT_IPV4)
    return ipv4_check(port, src, &c);
  if (type == ETHT_IPV6 && !port->any_mac)
    return ipv6_check(port, &c);
  return LANGUARD_PASS;
}
