/*
 * policy: egress CIDR table. See include/wtrelay/policy.h.
 *
 * A linear scan over at most POLICY_MAX_RULES rules: the table is small
 * and consulted once per new NAT flow, not per packet.
 */
#include "wtrelay/policy.h"

#include "wtrelay/net6.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t mask_of(uint8_t len)
{
  return len ? ~0u << (32 - len) : 0;
}

int policy_add_addr(struct policy *p, uint32_t net, uint8_t len, bool allow, bool builtin)
{
  if (len > 32 || (net & ~mask_of(len)))
    return -EINVAL;
  for (uint32_t i = 0; i < p->n; i++) {
    struct policy_rule *r = &p->r[i];
    if (r->len == len && r->net == net) {
      if (builtin && !r->builtin)
        return 0; /* the operator's rule stays */
      r->allow = allow;
      r->builtin = builtin;
      return 0;
    }
  }
  if (p->n >= POLICY_MAX_RULES)
    return -ENOSPC;
  p->r[p->n++] = (struct policy_rule){net, mask_of(len), len, allow, builtin};
  return 0;
}

/* ---- IPv6 ---- */

static bool host_bits6(const uint8_t net[16], uint8_t len)
{
  for (unsigned i = len; i < 128; i++)
    if (net[i / 8] & (0x80 >> (i % 8)))
      return true;
  return false;
}

int policy_add_addr6(struct policy *p, const uint8_t net[16], uint8_t len, bool allow, bool builtin)
{
  if (len > 128 || host_bits6(net, len))
    return -EINVAL;
  for (uint32_t i = 0; i < p->n6; i++) {
    struct policy_rule6 *r = &p->r6[i];
    if (r->len == len && memcmp(r->net, net, 16) == 0) {
      if (builtin && !r->builtin)
        return 0;
      r->allow = allow;
      r->builtin = builtin;
      return 0;
    }
  }
  if (p->n6 >= POLICY_MAX_RULES)
    return -ENOSPC;
  struct policy_rule6 *r = &p->r6[p->n6++];
  memcpy(r->net, net, 16);
  r->len = len;
  r->allow = allow;
  r->builtin = builtin;
  return 0;
}

/* "ADDR/LEN" or "ADDR" of family af into out (network order), the length
 * at most max (= max when absent). 0 or -EINVAL. */
static int parse_cidr(const char *s, int af, void *out, uint8_t max, uint8_t *len)
{
  char buf[64];
  const char *slash = strchr(s, '/');
  size_t alen = slash ? (size_t)(slash - s) : strlen(s);
  if (alen == 0 || alen >= sizeof(buf))
    return -EINVAL;
  memcpy(buf, s, alen);
  buf[alen] = '\0';
  if (inet_pton(af, buf, out) != 1)
    return -EINVAL;
  unsigned long l = max;
  if (slash) {
    char *end;
    if (slash[1] < '0' || slash[1] > '9') /* no sign, no white space */
      return -EINVAL;
    l = strtoul(slash + 1, &end, 10);
    if (*end || l > max)
      return -EINVAL;
  }
  *len = (uint8_t)l;
  return 0;
}

int policy_parse_cidr6(const char *s, uint8_t net[16], uint8_t *len)
{
  if (parse_cidr(s, AF_INET6, net, 128, len) < 0)
    return -EINVAL;
  return host_bits6(net, *len) ? -EINVAL : 0;
}

bool policy_allows6(const struct policy *p, const uint8_t a[16])
{
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(a, mapped, 12) == 0 &&
      !policy_allows(p,
                     (uint32_t)a[12] << 24 | (uint32_t)a[13] << 16 | (uint32_t)a[14] << 8 | a[15]))
    return false; /* never around the IPv4 rules */
  const struct policy_rule6 *best = NULL;
  for (uint32_t i = 0; i < p->n6; i++) {
    const struct policy_rule6 *r = &p->r6[i];
    if (!net6_in_prefix(a, r->net, r->len))
      continue;
    if (!best || r->len > best->len || (r->len == best->len && !r->builtin))
      best = r;
  }
  return best ? best->allow : true;
}

static void init6(struct policy *p)
{
  static const struct {
    uint8_t net[16];
    uint8_t len;
  } deny[] = {
      {{0}, 96},
      {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96},
      {{0, 0x64, 0xff, 0x9b}, 96},
      {{0, 0x64, 0xff, 0x9b, 0, 1}, 48},
      {{0x01, 0x00}, 64},
      {{0x20, 0x01, 0x0d, 0xb8}, 32},
      {{0x3f, 0xff}, 20},
      {{0xfc}, 7},
      {{0xfe, 0x80}, 10},
      {{0xfe, 0xc0}, 10},
      {{0xff}, 8},
  };
  for (size_t i = 0; i < sizeof(deny) / sizeof(deny[0]); i++)
    policy_add_addr6(p, deny[i].net, deny[i].len, false, true);
}

void policy_init(struct policy *p)
{
  static const struct {
    uint32_t net;
    uint8_t len;
  } deny[] = {
      {0x00000000, 8},  {0x7f000000, 8},  {0x0a000000, 8}, {0xac100000, 12}, {0xc0a80000, 16},
      {0x64400000, 10}, {0xa9fe0000, 16}, {0xe0000000, 4}, {0xf0000000, 4},
  };
  memset(p, 0, sizeof(*p));
  for (size_t i = 0; i < sizeof(deny) / sizeof(deny[0]); i++)
    policy_add_addr(p, deny[i].net, deny[i].len, false, true);
  init6(p);
}

int policy_parse_cidr(const char *s, uint32_t *net, uint8_t *len)
{
  struct in_addr a;
  if (parse_cidr(s, AF_INET, &a, 32, len) < 0)
    return -EINVAL;
  *net = ntohl(a.s_addr);
  return (*net & ~mask_of(*len)) ? -EINVAL : 0;
}

int policy_add(struct policy *p, const char *cidr, bool allow)
{
  uint32_t net;
  uint8_t len;
  if (strchr(cidr, ':')) {
    uint8_t net6[16];
    int rc = policy_parse_cidr6(cidr, net6, &len);
    return rc < 0 ? rc : policy_add_addr6(p, net6, len, allow, false);
  }
  int rc = policy_parse_cidr(cidr, &net, &len);
  if (rc < 0)
    return rc;
  return policy_add_addr(p, net, len, allow, false);
}

bool policy_allows(const struct policy *p, uint32_t ip)
{
  const struct policy_rule *best = NULL;
  for (uint32_t i = 0; i < p->n; i++) {
    const struct policy_rule *r = &p->r[i];
    if ((ip & r->mask) != r->net)
      continue;
    if (!best || r->len > best->len || (r->len == best->len && !r->builtin))
      best = r;
  }
  return best ? best->allow : true;
}
