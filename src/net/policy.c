/*
 * policy: egress CIDR table. See include/wtrelay/policy.h.
 *
 * A linear scan over at most POLICY_MAX_RULES rules: the table is small
 * and consulted once per new NAT flow, not per packet.
 */
#include "wtrelay/policy.h"

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
}

int policy_parse_cidr(const char *s, uint32_t *net, uint8_t *len)
{
  char buf[32];
  const char *slash = strchr(s, '/');
  size_t alen = slash ? (size_t)(slash - s) : strlen(s);
  if (alen == 0 || alen >= sizeof(buf))
    return -EINVAL;
  memcpy(buf, s, alen);
  buf[alen] = '\0';
  struct in_addr a;
  if (inet_pton(AF_INET, buf, &a) != 1)
    return -EINVAL;
  unsigned long l = 32;
  if (slash) {
    char *end;
    if (slash[1] < '0' || slash[1] > '9') /* no sign, no white space */
      return -EINVAL;
    l = strtoul(slash + 1, &end, 10);
    if (*end || l > 32)
      return -EINVAL;
  }
  *net = ntohl(a.s_addr);
  *len = (uint8_t)l;
  return (*net & ~mask_of(*len)) ? -EINVAL : 0;
}

int policy_add(struct policy *p, const char *cidr, bool allow)
{
  uint32_t net;
  uint8_t len;
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
