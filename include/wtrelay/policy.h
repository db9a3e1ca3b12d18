/*
 * policy: the NAT's egress policy, a longest-prefix-match table of IPv4
 * CIDRs, each allow or deny, no I/O.
 *
 * Built-in denies (the defaults of a safe relay): 0.0.0.0/8, 127.0.0.0/8,
 * 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, 169.254.0.0/16
 * (cloud metadata among them), 224.0.0.0/4, 240.0.0.0/4 (which holds
 * 255.255.255.255), plus /32 denies for the relay's own addresses at
 * start-up (a floor: hostaddr.h follows the host's local routes live).
 * Operators add --egress-allow / --egress-deny CIDRs; the most specific
 * prefix that contains an address decides, an operator rule wins over a
 * built-in one of the same prefix, and an address no rule contains is
 * allowed.
 *
 * IPv6 has a table of its own, same rules, with built-in denies for ::/96
 * (unspecified, loopback, IPv4-compatible), ::ffff:0:0/96 (IPv4-mapped),
 * 64:ff9b::/96 and 64:ff9b:1::/48 (NAT64), 100::/64 (discard),
 * 2001:db8::/32 and 3fff::/20 (documentation), fc00::/7 (unique local),
 * fe80::/10 (link-local), fec0::/10 (old site-local), ff00::/8
 * (multicast). An IPv4-mapped address is also judged by the IPv4 table
 * and must pass both: allowing ::ffff:0:0/96 never opens an IPv4 address
 * the IPv4 rules deny.
 */
#ifndef WTRELAY_POLICY_H
#define WTRELAY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POLICY_MAX_RULES 256

struct policy_rule {
  uint32_t net, mask; /* host order, net & mask == net */
  uint8_t len;
  bool allow;
  bool builtin;
};

struct policy_rule6 {
  uint8_t net[16]; /* network order, host bits zero */
  uint8_t len;
  bool allow;
  bool builtin;
};

struct policy {
  struct policy_rule r[POLICY_MAX_RULES];
  uint32_t n;
  struct policy_rule6 r6[POLICY_MAX_RULES];
  uint32_t n6;
};

/* The built-in denies. */
void policy_init(struct policy *p);
/* "a.b.c.d/len" or "a.b.c.d" (= /32), or an IPv6 CIDR ("2001:db8::/32",
 * an address alone = /128). 0, -EINVAL (bad CIDR, or host bits set),
 * -ENOSPC (table full). Replaces a rule of the same prefix. */
int policy_add(struct policy *p, const char *cidr, bool allow);
int policy_add_addr(struct policy *p, uint32_t net, uint8_t len, bool allow, bool builtin);
bool policy_allows(const struct policy *p, uint32_t ip);
/* Parses a CIDR; host order. */
int policy_parse_cidr(const char *s, uint32_t *net, uint8_t *len);

/* The same for IPv6 (network order). */
int policy_add_addr6(struct policy *p, const uint8_t net[16], uint8_t len, bool allow,
                     bool builtin);
bool policy_allows6(const struct policy *p, const uint8_t a[16]);
int policy_parse_cidr6(const char *s, uint8_t net[16], uint8_t *len);

#endif
