/*
 * LAN guards: languard_check on hand-built frames (what real guests send:
 * gratuitous ARP, RFC 5227 probes, DHCP from 0.0.0.0, IPv6; and what an
 * attacker sends: ARP claiming the gateway or another VM, forged IPv4
 * sources, VLAN-wrapped packets), and the relay around it: Register of
 * reserved MACs refused, frames dropped before the switch and counted, the
 * --allow-any-src-mac bindings made by DHCP through a port.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "wtrelay/config.h"
#include "wtrelay/languard.h"
#include "wtrelay/log.h"
#include "wtrelay/net6.h"
#include "wtrelay/relay.h"

#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

static const uint8_t GW_MAC[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};
static const uint8_t VM_MAC[6] = {0x52, 0x54, 0x00, 0xaa, 0x00, 0x01};
static const uint8_t OTHER_MAC[6] = {0x52, 0x54, 0x00, 0xbb, 0x00, 0x02};
static const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
#define VM_IP IP4(10, 0, 2, 254)
#define OTHER_IP IP4(10, 0, 2, 253)

static const struct languard_params LP = {
    .gateway_ip = IP4(10, 0, 2, 2),
    .dns_ip = IP4(10, 0, 2, 3),
    .gateway_mac = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02},
};

static void put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static size_t eth_hdr(uint8_t *b, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
  memcpy(b, dst, 6);
  memcpy(b + 6, src, 6);
  b[12] = (uint8_t)(type >> 8);
  b[13] = (uint8_t)type;
  return 14;
}

/* An ARP frame (42 bytes) from eth source esrc. */
static size_t arp(uint8_t *b, const uint8_t esrc[6], uint16_t op, const uint8_t sha[6],
                  uint32_t spa, uint32_t tpa)
{
  size_t n = eth_hdr(b, BCAST, esrc, 0x0806);
  const uint8_t fixed[8] = {0, 1, 8, 0, 6, 4, (uint8_t)(op >> 8), (uint8_t)op};
  memcpy(b + n, fixed, 8);
  memcpy(b + n + 8, sha, 6);
  put32(b + n + 14, spa);
  memset(b + n + 18, 0, 6);
  put32(b + n + 24, tpa);
  return n + 28;
}

/* An IPv4/UDP frame from eth source esrc (ihl_words 5 or more), 64 bytes. */
static size_t ipv4(uint8_t *b, const uint8_t esrc[6], uint32_t src, uint32_t dst, uint8_t proto,
                   uint16_t sport, uint16_t dport, int ihl_words)
{
  memset(b, 0, 128);
  size_t n = eth_hdr(b, BCAST, esrc, 0x0800);
  uint8_t *ip = b + n;
  ip[0] = (uint8_t)(0x40 | ihl_words);
  ip[8] = 64;
  ip[9] = proto;
  put32(ip + 12, src);
  put32(ip + 16, dst);
  uint8_t *l4 = ip + ihl_words * 4;
  l4[0] = (uint8_t)(sport >> 8);
  l4[1] = (uint8_t)sport;
  l4[2] = (uint8_t)(dport >> 8);
  l4[3] = (uint8_t)dport;
  return n + (size_t)ihl_words * 4 + 8 + 22;
}

static enum languard_verdict check(const struct languard_port *p, const uint8_t *f, size_t len)
{
  return languard_check(&LP, p, f, len);
}

static const struct languard_port STRICT = {.mac = VM_MAC, .ip = VM_IP};

Test(languard, what_a_linux_guest_sends_passes)
{
  uint8_t f[128];
  /* gratuitous ARP for its own address, request and reply */
  cr_assert_eq(check(&STRICT, f, arp(f, VM_MAC, 1, VM_MAC, VM_IP, VM_IP)), LANGUARD_PASS);
  cr_assert_eq(check(&STRICT, f, arp(f, VM_MAC, 2, VM_MAC, VM_IP, VM_IP)), LANGUARD_PASS);
  /* ARP who-has the gateway */
  cr_assert_eq(check(&STRICT, f, arp(f, VM_MAC, 1, VM_MAC, VM_IP, LP.gateway_ip)), LANGUARD_PASS);
  /* RFC 5227 probe: sender IP 0.0.0.0 */
  cr_assert_eq(check(&STRICT, f, arp(f, VM_MAC, 1, VM_MAC, 0, VM_IP)), LANGUARD_PASS);
  /* DHCP DISCOVER/REQUEST from 0.0.0.0:68 to 255.255.255.255:67 */
  cr_assert_eq(check(&STRICT, f, ipv4(f, VM_MAC, 0, 0xffffffffu, 17, 68, 67, 5)), LANGUARD_PASS);
  /* the same with IP options (ihl 6): the ports are found after them */
  cr_assert_eq(check(&STRICT, f, ipv4(f, VM_MAC, 0, 0xffffffffu, 17, 68, 67, 6)), LANGUARD_PASS);
  /* its own traffic */
  cr_assert_eq(check(&STRICT, f, ipv4(f, VM_MAC, VM_IP, OTHER_IP, 6, 4000, 80, 5)), LANGUARD_PASS);
  /* other ethertypes are not this guard's */
  size_t n = eth_hdr(f, BCAST, VM_MAC, 0x88b5);
  cr_assert_eq(check(&STRICT, f, n + 10), LANGUARD_PASS);
}

/* ---- IPv6 ---- */

static const uint8_t LL[8] = {0xfe, 0x80};
static const uint8_t ULA[8] = {0xfd, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};

#define eui64 net6_addr_eui64

/* An IPv6 frame from VM_MAC: source src, `ext` bytes of destination
 * options first (0 = none), then next header `next` with body. */
static size_t ipv6(uint8_t *b, const uint8_t src[16], size_t ext, uint8_t next, const uint8_t *body,
                   size_t blen)
{
  memset(b, 0, 256);
  size_t n = eth_hdr(b, BCAST, VM_MAC, 0x86dd);
  uint8_t *h = b + n;
  h[0] = 0x60;
  size_t plen = ext + blen;
  h[4] = (uint8_t)(plen >> 8);
  h[5] = (uint8_t)plen;
  h[6] = ext ? 60 : next;
  h[7] = 255;
  memcpy(h + 8, src, 16);
  h[24] = 0xff;
  h[25] = 2;
  h[39] = 1;
  if (ext) {
    h[40] = next;
    h[41] = (uint8_t)(ext / 8 - 1);
  }
  memcpy(h + 40 + ext, body, blen);
  return n + 40 + plen;
}

/* An ND message of type with target (NS, NA) and a link-layer option. */
static size_t nd(uint8_t *body, uint8_t type, const uint8_t target[16], const uint8_t *ll_mac)
{
  memset(body, 0, 40);
  body[0] = type;
  size_t n = 8;
  if (target) {
    memcpy(body + 8, target, 16);
    n = 24;
  }
  if (ll_mac) {
    body[n] = type == 136 ? 2 : 1;
    body[n + 1] = 1;
    memcpy(body + n + 2, ll_mac, 6);
    n += 8;
  }
  return n;
}

Test(languard, ipv6_sources_and_neighbour_discovery)
{
  uint8_t f[256], body[64], ll[16], slaac[16], other[16], other_ll[16];
  const uint8_t zero[16] = {0};
  eui64(ll, LL, VM_MAC);
  eui64(slaac, ULA, VM_MAC);
  eui64(other, ULA, OTHER_MAC);
  eui64(other_ll, LL, OTHER_MAC);
  const uint8_t udp[8] = {0x12, 0x34, 0, 53, 0, 8, 0, 0};
  /* what a Linux guest sends: traffic from its link-local and SLAAC
   * addresses, DAD's NS from ::, RS, NS and NA about itself, MLD from :: */
  cr_assert_eq(check(&STRICT, f, ipv6(f, ll, 0, 17, udp, 8)), LANGUARD_PASS);
  cr_assert_eq(check(&STRICT, f, ipv6(f, slaac, 0, 17, udp, 8)), LANGUARD_PASS);
  cr_assert_eq(check(&STRICT, f, ipv6(f, slaac, 8, 17, udp, 8)), LANGUARD_PASS, "after options");
  cr_assert_eq(check(&STRICT, f, ipv6(f, zero, 0, 58, body, nd(body, 135, slaac, NULL))),
               LANGUARD_PASS, "DAD");
  cr_assert_eq(check(&STRICT, f, ipv6(f, ll, 0, 58, body, nd(body, 133, NULL, VM_MAC))),
               LANGUARD_PASS, "RS");
  cr_assert_eq(check(&STRICT, f, ipv6(f, ll, 0, 58, body, nd(body, 135, other, VM_MAC))),
               LANGUARD_PASS, "NS for another node");
  cr_assert_eq(check(&STRICT, f, ipv6(f, slaac, 0, 58, body, nd(body, 136, slaac, VM_MAC))),
               LANGUARD_PASS, "NA for itself");
  body[0] = 143; /* MLDv2 report behind a hop-by-hop router alert */
  size_t n = ipv6(f, zero, 8, 58, body, 28);
  f[14 + 6] = 0;
  cr_assert_eq(check(&STRICT, f, n), LANGUARD_PASS, "MLD from ::");

  /* another node's addresses, as source, NA target or link-layer option */
  cr_assert_eq(check(&STRICT, f, ipv6(f, other, 0, 17, udp, 8)), LANGUARD_IP6_SPOOF);
  cr_assert_eq(check(&STRICT, f, ipv6(f, other_ll, 0, 17, udp, 8)), LANGUARD_IP6_SPOOF);
  cr_assert_eq(check(&STRICT, f, ipv6(f, zero, 0, 17, udp, 8)), LANGUARD_IP6_SPOOF, ":: UDP");
  cr_assert_eq(check(&STRICT, f, ipv6(f, slaac, 0, 58, body, nd(body, 136, other, VM_MAC))),
               LANGUARD_IP6_SPOOF, "NA for another node");
  cr_assert_eq(check(&STRICT, f, ipv6(f, slaac, 0, 58, body, nd(body, 136, slaac, OTHER_MAC))),
               LANGUARD_IP6_SPOOF, "NA with another MAC");
  cr_assert_eq(check(&STRICT, f, ipv6(f, ll, 0, 58, body, nd(body, 135, other, OTHER_MAC))),
               LANGUARD_IP6_SPOOF, "NS with another MAC");
  cr_assert_eq(check(&STRICT, f, ipv6(f, zero, 0, 58, body, nd(body, 136, slaac, VM_MAC))),
               LANGUARD_IP6_SPOOF, "NA from ::");
  /* the gateway's messages (RA guard) */
  cr_assert_eq(check(&STRICT, f, ipv6(f, ll, 0, 58, body, nd(body, 134, NULL, VM_MAC))),
               LANGUARD_ND_ROUTER, "RA");
  cr_assert_eq(check(&STRICT, f, ipv6(f, ll, 8, 58, body, nd(body, 134, NULL, VM_MAC))),
               LANGUARD_ND_ROUTER, "RA behind options");
  cr_assert_eq(check(&STRICT, f, ipv6(f, ll, 0, 58, body, nd(body, 137, other, NULL))),
               LANGUARD_ND_ROUTER, "redirect");
  /* a chain that leaves the head cannot hide an RA; broken headers */
  n = ipv6(f, ll, 8, 58, body, nd(body, 134, NULL, VM_MAC));
  f[14 + 41] = 30; /* 248 bytes of options */
  cr_assert_eq(check(&STRICT, f, n), LANGUARD_IP6_BAD);
  n = ipv6(f, ll, 0, 17, udp, 8);
  f[14] = 0x40;
  cr_assert_eq(check(&STRICT, f, n), LANGUARD_IP6_BAD, "version 4 in 86dd");
  cr_assert_eq(check(&STRICT, f, 14 + 30), LANGUARD_IP6_BAD, "a cut header");
  /* with --allow-any-src-mac a bridging VM's hosts pass */
  const struct languard_port any = {.mac = VM_MAC, .ip = VM_IP, .any_mac = true};
  cr_assert_eq(check(&any, f, ipv6(f, other, 0, 17, udp, 8)), LANGUARD_PASS);
  cr_assert_str_eq(languard_verdict_name(LANGUARD_ND_ROUTER), "nd_router");
  cr_assert_str_eq(languard_verdict_name(LANGUARD_IP6_SPOOF), "ip6_spoof");
}

static const uint8_t *claimed_addr;

static bool claimed(void *ctx, const uint8_t a[16])
{
  (void)ctx;
  return claimed_addr && memcmp(a, claimed_addr, 16) == 0;
}

Test(languard, ipv6_dad_claims)
{
  uint8_t f[256], body[64], priv[16];
  const uint8_t zero[16] = {0};
  memcpy(priv, ULA, 8);
  const uint8_t iid[8] = {0x3c, 0x91, 0x07, 0x5e, 0xa2, 0x11, 0x40, 0x9b}; /* a privacy IID */
  memcpy(priv + 8, iid, 8);
  const uint8_t *dad = NULL;
  struct languard_port port = {.mac = VM_MAC, .ip = VM_IP, .claimed6 = claimed, .dad_target = &dad};
  const uint8_t udp[8] = {0x12, 0x34, 0, 53, 0, 8, 0, 0};
  /* before the claim: refused */
  cr_assert_eq(check(&port, f, ipv6(f, priv, 0, 17, udp, 8)), LANGUARD_IP6_SPOOF);
  cr_assert_null(dad);
  /* its DAD passes and names the target for the caller to record */
  cr_assert_eq(check(&port, f, ipv6(f, zero, 0, 58, body, nd(body, 135, priv, NULL))),
               LANGUARD_PASS);
  cr_assert_not_null(dad);
  cr_assert_arr_eq(dad, priv, 16);
  /* recorded: the address is the port's now, as source and NA target */
  claimed_addr = priv;
  cr_assert_eq(check(&port, f, ipv6(f, priv, 0, 17, udp, 8)), LANGUARD_PASS);
  cr_assert_null(dad, "only a DAD names a target");
  cr_assert_eq(check(&port, f, ipv6(f, priv, 0, 58, body, nd(body, 136, priv, VM_MAC))),
               LANGUARD_PASS);
  /* an NS from an address (not DAD) names no target */
  cr_assert_eq(check(&port, f, ipv6(f, priv, 0, 58, body, nd(body, 135, priv, VM_MAC))),
               LANGUARD_PASS);
  cr_assert_null(dad);
  claimed_addr = NULL;
}

Test(languard, arp_spoofs_are_refused)
{
  uint8_t f[128];
  /* claiming the gateway or the DNS forwarder with its own MAC */
  cr_assert_eq(check(&STRICT, f, arp(f, VM_MAC, 2, VM_MAC, LP.gateway_ip, OTHER_IP)),
               LANGUARD_ARP_SPOOF);
  cr_assert_eq(check(&STRICT, f, arp(f, VM_MAC, 1, VM_MAC, LP.gateway_ip, OTHER_IP)),
               LANGUARD_ARP_SPOOF);
  cr_assert_eq(check(&STRICT, f, arp(f, VM_MAC, 1, VM_MAC, LP.dns_ip, LP.dns_ip)),
               LANGUARD_ARP_SPOOF);
  /* claiming another VM */
  cr_assert_eq(check(&STRICT, f, arp(f, VM_MAC, 2, VM_MAC, OTHER_IP, LP.gateway_ip)),
               LANGUARD_ARP_SPOOF);
  /* a "probe" that is a reply */
  cr_assert_eq(check(&STRICT, f, arp(f, VM_MAC, 2, VM_MAC, 0, OTHER_IP)), LANGUARD_ARP_SPOOF);
  /* sender MAC not the port's (the Ethernet source is) */
  cr_assert_eq(check(&STRICT, f, arp(f, VM_MAC, 1, OTHER_MAC, VM_IP, VM_IP)), LANGUARD_ARP_MAC);
  cr_assert_eq(check(&STRICT, f, arp(f, VM_MAC, 2, GW_MAC, LP.gateway_ip, VM_IP)),
               LANGUARD_ARP_MAC);
  /* malformed: wrong protocol type, unknown op, truncated */
  size_t n = arp(f, VM_MAC, 1, VM_MAC, VM_IP, VM_IP);
  f[16] = 0x86;
  cr_assert_eq(check(&STRICT, f, n), LANGUARD_ARP_BAD);
  n = arp(f, VM_MAC, 3, VM_MAC, VM_IP, VM_IP);
  cr_assert_eq(check(&STRICT, f, n), LANGUARD_ARP_BAD);
  n = arp(f, VM_MAC, 2, VM_MAC, OTHER_IP, VM_IP);
  cr_assert_eq(check(&STRICT, f, 14 + 17), LANGUARD_ARP_BAD, "cut in the sender IP");
}

Test(languard, forged_ipv4_sources_are_refused)
{
  uint8_t f[128];
  cr_assert_eq(check(&STRICT, f, ipv4(f, VM_MAC, OTHER_IP, VM_IP, 17, 5000, 9, 5)),
               LANGUARD_IP_SPOOF);
  cr_assert_eq(check(&STRICT, f, ipv4(f, VM_MAC, LP.gateway_ip, OTHER_IP, 17, 53, 9, 5)),
               LANGUARD_IP_SPOOF);
  cr_assert_eq(check(&STRICT, f, ipv4(f, VM_MAC, IP4(198, 18, 0, 2), OTHER_IP, 1, 0, 0, 5)),
               LANGUARD_IP_SPOOF);
  /* 0.0.0.0 is only for a DHCP client */
  cr_assert_eq(check(&STRICT, f, ipv4(f, VM_MAC, 0, OTHER_IP, 17, 68, 53, 5)), LANGUARD_IP_SPOOF);
  cr_assert_eq(check(&STRICT, f, ipv4(f, VM_MAC, 0, OTHER_IP, 17, 1234, 67, 5)), LANGUARD_IP_SPOOF);
  cr_assert_eq(check(&STRICT, f, ipv4(f, VM_MAC, 0, OTHER_IP, 6, 68, 67, 5)), LANGUARD_IP_SPOOF);
  size_t n = ipv4(f, VM_MAC, 0, 0xffffffffu, 17, 68, 67, 5);
  f[14 + 7] = 1; /* a later fragment: its "ports" are payload */
  cr_assert_eq(check(&STRICT, f, n), LANGUARD_IP_SPOOF);
  /* a header that cannot be read is not passed on */
  n = ipv4(f, VM_MAC, OTHER_IP, VM_IP, 17, 1, 2, 5);
  f[14] = 0x65; /* version 6 inside 0x0800 */
  cr_assert_eq(check(&STRICT, f, n), LANGUARD_IP_BAD);
  f[14] = 0x44; /* ihl 4 */
  cr_assert_eq(check(&STRICT, f, n), LANGUARD_IP_BAD);
  cr_assert_eq(check(&STRICT, f, 14 + 19), LANGUARD_IP_BAD);
  /* a DHCP-looking 0.0.0.0 packet whose ports are cut off */
  n = ipv4(f, VM_MAC, 0, 0xffffffffu, 17, 68, 67, 15); /* 60-byte header */
  cr_assert_eq(check(&STRICT, f, 14 + 60 + 2), LANGUARD_IP_SPOOF);
  cr_assert_eq(check(&STRICT, f, n), LANGUARD_PASS);
}

Test(languard, vlan_tags_only_with_any_mac)
{
  uint8_t f[128];
  /* an ARP claiming the gateway hidden in a VLAN tag */
  uint8_t a[64];
  arp(a, VM_MAC, 2, VM_MAC, LP.gateway_ip, OTHER_IP);
  eth_hdr(f, BCAST, VM_MAC, 0x8100);
  f[14] = 0; /* VLAN 5 */
  f[15] = 5;
  f[16] = 0x08; /* inner type: ARP */
  f[17] = 0x06;
  memcpy(f + 18, a + 14, 28);
  size_t n = 18 + 28;
  cr_assert_eq(check(&STRICT, f, n), LANGUARD_VLAN);
  for (uint16_t t = 0; t < 3; t++) {
    static const uint16_t types[3] = {0x8100, 0x88a8, 0x9100};
    eth_hdr(f, BCAST, VM_MAC, types[t]);
    cr_assert_eq(check(&STRICT, f, 60), LANGUARD_VLAN, "type %04x", types[t]);
  }
  struct languard_port any = {.mac = VM_MAC, .ip = VM_IP, .any_mac = true};
  eth_hdr(f, BCAST, OTHER_MAC, 0x8100);
  cr_assert_eq(check(&any, f, 60), LANGUARD_PASS);
}

struct bound_set {
  uint8_t mac[6];
  uint32_t ip;
  int calls;
};

static bool bound_one(void *ctx, const uint8_t mac[6], uint32_t ip)
{
  struct bound_set *b = ctx;
  b->calls++;
  return ip == b->ip && memcmp(mac, b->mac, 6) == 0;
}

Test(languard, any_mac_follows_the_ports_leases)
{
  uint8_t f[128];
  const uint8_t bridged[6] = {0x52, 0x54, 0x00, 0xcc, 0x00, 0x09};
  struct bound_set b = {.ip = IP4(10, 0, 2, 200)};
  memcpy(b.mac, bridged, 6);
  struct languard_port any = {
      .mac = VM_MAC, .ip = VM_IP, .any_mac = true, .bound = bound_one, .ctx = &b};
  /* the bridged guest's lease, with its own MAC */
  cr_assert_eq(check(&any, f, arp(f, bridged, 1, bridged, b.ip, b.ip)), LANGUARD_PASS);
  cr_assert_eq(check(&any, f, ipv4(f, bridged, b.ip, VM_IP, 17, 1, 2, 5)), LANGUARD_PASS);
  /* the lease claimed by another MAC behind the same port */
  cr_assert_eq(check(&any, f, ipv4(f, OTHER_MAC, b.ip, VM_IP, 17, 1, 2, 5)), LANGUARD_IP_SPOOF);
  cr_assert_eq(check(&any, f, arp(f, OTHER_MAC, 2, OTHER_MAC, b.ip, VM_IP)), LANGUARD_ARP_SPOOF);
  /* ARP sender MAC must be the frame's source */
  cr_assert_eq(check(&any, f, arp(f, OTHER_MAC, 2, bridged, b.ip, VM_IP)), LANGUARD_ARP_MAC);
  /* an address nobody leased through this port, the gateway's */
  cr_assert_eq(check(&any, f, ipv4(f, bridged, OTHER_IP, VM_IP, 17, 1, 2, 5)), LANGUARD_IP_SPOOF);
  cr_assert_eq(check(&any, f, arp(f, bridged, 2, bridged, LP.gateway_ip, VM_IP)),
               LANGUARD_ARP_SPOOF);
  /* the port's own address from its own MAC */
  cr_assert_eq(check(&any, f, ipv4(f, VM_MAC, VM_IP, OTHER_IP, 17, 1, 2, 5)), LANGUARD_PASS);
  /* reserved source MACs */
  cr_assert_eq(check(&any, f, ipv4(f, GW_MAC, VM_IP, OTHER_IP, 17, 1, 2, 5)),
               LANGUARD_RESERVED_SRC);
  static const uint8_t zero[6];
  cr_assert_eq(check(&any, f, ipv4(f, zero, VM_IP, OTHER_IP, 17, 1, 2, 5)), LANGUARD_RESERVED_SRC);
  cr_assert_gt(b.calls, 0);
}

Test(languard, reserved_macs_and_names)
{
  const uint8_t mcast[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}, zero[6] = {0};
  const uint8_t local_group[6] = {0x53, 0x54, 0x00, 0x00, 0x00, 0x01};
  cr_assert(languard_mac_reserved(&LP, BCAST));
  cr_assert(languard_mac_reserved(&LP, mcast));
  cr_assert(languard_mac_reserved(&LP, local_group));
  cr_assert(languard_mac_reserved(&LP, zero));
  cr_assert(languard_mac_reserved(&LP, GW_MAC));
  cr_assert_not(languard_mac_reserved(&LP, VM_MAC));
  cr_assert_str_eq(languard_verdict_name(LANGUARD_ARP_SPOOF), "arp_spoof");
  cr_assert_str_eq(languard_verdict_name(LANGUARD_IP_SPOOF), "ip_spoof");
  cr_assert_str_eq(languard_verdict_name(LANGUARD_VLAN), "vlan");
  for (int i = 0; i < LANGUARD_NVERDICTS; i++)
    cr_assert_not_null(languard_verdict_name((enum languard_verdict)i));
}

/* ---- the relay around the guard ---- */

struct rig {
  struct config cfg;
  struct timer_heap th;
  struct relay r;
  struct session sess[3];
  uint64_t now;
};

static struct relay_peer *open_peer(struct rig *g, int i, const uint8_t mac[6])
{
  snprintf(g->sess[i].path, sizeof(g->sess[i].path), "/");
  cr_assert_eq(relay_session_open(&g->r, &g->sess[i], 0), 200);
  char reg[96];
  int n = snprintf(reg, sizeof(reg), "%c{\"type\":\"Register\",\"mac\":[%d,%d,%d,%d,%d,%d]}", 0,
                   mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  relay_on_datagram(&g->r, g->sess[i].app_data, (const uint8_t *)reg, (size_t)n);
  return g->sess[i].app_data;
}

static void rig_init(struct rig *g, bool any_mac)
{
  memset(g, 0, sizeof(*g));
  log_set_level(LOG_ERROR);
  config_defaults(&g->cfg);
  g->cfg.max_sessions = 8;
  g->cfg.max_rooms = 2;
  g->cfg.allow_any_src_mac = any_mac;
  g->now = 1000000000ull;
  cr_assert_eq(timer_heap_init(&g->th, 64), 0);
  cr_assert_eq(relay_init(&g->r, &g->cfg, &g->th, &g->now), 0);
}

static void rig_fini(struct rig *g)
{
  for (int i = 0; i < 3; i++)
    if (g->sess[i].app_data)
      relay_session_closed(&g->r, &g->sess[i], 0, "end");
  relay_fini(&g->r);
  timer_heap_fini(&g->th);
}

/* A frame from peer p: 0x01 + frame. Returns the switch's frames_in after. */
static uint64_t send_frame(struct rig *g, struct relay_peer *p, const uint8_t *f, size_t len)
{
  uint8_t d[256];
  d[0] = 0x01;
  memcpy(d + 1, f, len);
  relay_on_datagram(&g->r, p, d, len + 1);
  return g->r.sw.ctr.frames_in;
}

Test(languard, relay_refuses_reserved_macs_at_register)
{
  struct rig g;
  rig_init(&g, false);
  /* the gateway's MAC: a session holding it could answer for 10.0.2.2 */
  struct relay_peer *p = open_peer(&g, 0, GW_MAC);
  cr_assert_not(p->registered, "the gateway's MAC registered");
  cr_assert_eq(g.r.ctr.register_refused_reserved, 1);
  relay_session_closed(&g.r, &g.sess[0], 0, "end");
  /* group and zero MACs never get that far (the control parser refuses
   * them as bad MACs) */
  const uint8_t mcast[6] = {0x33, 0x33, 0x00, 0x00, 0x00, 0x01}, zero[6] = {0};
  const uint8_t *bad[3] = {BCAST, mcast, zero};
  for (int i = 0; i < 3; i++) {
    p = open_peer(&g, 0, bad[i]);
    cr_assert_not(p->registered, "reserved MAC %d registered", i);
    cr_assert_eq(g.r.ctr.ctrl_bad_mac, (uint64_t)i + 1);
    relay_session_closed(&g.r, &g.sess[0], 0, "end");
  }
  p = open_peer(&g, 0, VM_MAC);
  cr_assert(p->registered);
  cr_assert_eq(g.r.ctr.register_refused_reserved, 1);
  rig_fini(&g);
}

Test(languard, relay_drops_before_the_switch_and_counts)
{
  struct rig g;
  rig_init(&g, false);
  struct relay_peer *a = open_peer(&g, 0, VM_MAC);
  struct relay_peer *b = open_peer(&g, 1, OTHER_MAC);
  cr_assert(a->registered && b->registered);
  uint8_t f[128];
  uint64_t in0 = g.r.sw.ctr.frames_in;
  /* a's own gratuitous ARP reaches the switch */
  cr_assert_eq(send_frame(&g, a, f, arp(f, VM_MAC, 1, VM_MAC, a->ip, a->ip)), in0 + 1);
  /* a claiming the gateway, and b's address: dropped before the switch */
  cr_assert_eq(send_frame(&g, a, f, arp(f, VM_MAC, 2, VM_MAC, LP.gateway_ip, b->ip)), in0 + 1);
  cr_assert_eq(send_frame(&g, a, f, arp(f, VM_MAC, 2, VM_MAC, b->ip, b->ip)), in0 + 1);
  cr_assert_eq(g.r.ctr.guard_drops[LANGUARD_ARP_SPOOF], 2);
  /* forged IPv4 sources: b's, the gateway's, an internet address */
  uint32_t forged[3] = {b->ip, LP.gateway_ip, IP4(198, 18, 0, 2)};
  for (int i = 0; i < 3; i++)
    cr_assert_eq(send_frame(&g, a, f, ipv4(f, VM_MAC, forged[i], b->ip, 17, 9, 9, 5)), in0 + 1);
  cr_assert_eq(g.r.ctr.guard_drops[LANGUARD_IP_SPOOF], 3);
  /* DHCP from 0.0.0.0 and a's own address pass */
  cr_assert_eq(send_frame(&g, a, f, ipv4(f, VM_MAC, 0, 0xffffffffu, 17, 68, 67, 5)), in0 + 2);
  cr_assert_eq(send_frame(&g, a, f, ipv4(f, VM_MAC, a->ip, b->ip, 17, 9, 9, 5)), in0 + 3);
  /* a VLAN tag */
  eth_hdr(f, BCAST, VM_MAC, 0x8100);
  cr_assert_eq(send_frame(&g, a, f, 60), in0 + 3);
  cr_assert_eq(g.r.ctr.guard_drops[LANGUARD_VLAN], 1);
  rig_fini(&g);
}

Test(languard, relay_any_mac_binds_dhcp_leases_to_their_port)
{
  struct rig g;
  rig_init(&g, true);
  struct relay_peer *a = open_peer(&g, 0, VM_MAC);
  struct relay_peer *b = open_peer(&g, 1, OTHER_MAC);
  const uint8_t bridged[6] = {0x52, 0x54, 0x00, 0xcc, 0x00, 0x09};
  uint32_t ip;
  /* the gateway's DHCP leases an address to a MAC behind a's port */
  cr_assert_eq(relay_addr_ops.lease(&g.r, a->room, bridged, &ip), 0);
  relay_addr_ops.bind(&g.r, a->room, a->port, bridged, ip);
  cr_assert_eq(g.r.ctr.bindings_added, 1);
  uint8_t f[128];
  uint64_t in0 = g.r.sw.ctr.frames_in;
  cr_assert_eq(send_frame(&g, a, f, ipv4(f, bridged, ip, b->ip, 17, 9, 9, 5)), in0 + 1);
  cr_assert_eq(send_frame(&g, a, f, arp(f, bridged, 1, bridged, ip, ip)), in0 + 2);
  /* the same pair through b's port: refused */
  cr_assert_eq(send_frame(&g, b, f, ipv4(f, bridged, ip, a->ip, 17, 9, 9, 5)), in0 + 2);
  cr_assert_eq(send_frame(&g, b, f, arp(f, bridged, 2, bridged, ip, a->ip)), in0 + 2);
  /* the gateway's MAC as a source, even with --allow-any-src-mac */
  cr_assert_eq(send_frame(&g, b, f, ipv4(f, GW_MAC, b->ip, a->ip, 17, 9, 9, 5)), in0 + 2);
  cr_assert_eq(g.r.ctr.guard_drops[LANGUARD_IP_SPOOF], 1);
  cr_assert_eq(g.r.ctr.guard_drops[LANGUARD_ARP_SPOOF], 1);
  cr_assert_eq(g.r.ctr.guard_drops[LANGUARD_RESERVED_SRC], 1);
  /* DHCP RELEASE: the address no longer speaks */
  relay_addr_ops.release(&g.r, a->room, bridged, ip);
  cr_assert_eq(send_frame(&g, a, f, ipv4(f, bridged, ip, b->ip, 17, 9, 9, 5)), in0 + 2);
  cr_assert_eq(g.r.ctr.guard_drops[LANGUARD_IP_SPOOF], 2);
  /* more leases than slots: the oldest is replaced, counted */
  for (int i = 0; i < RELAY_PEER_BINDINGS + 1; i++) {
    uint8_t m[6] = {0x52, 0x54, 0x00, 0xdd, 0x00, (uint8_t)i};
    relay_addr_ops.bind(&g.r, a->room, a->port, m, IP4(10, 0, 2, 100 + i));
  }
  cr_assert_eq(g.r.ctr.bindings_replaced, 1);
  rig_fini(&g);
}
