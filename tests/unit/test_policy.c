/*
 * test_policy: the egress CIDR table: built-in denies, operator allows and
 * denies, longest-prefix match, operator-over-builtin precedence, CIDR
 * parsing and a full table.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/policy.h"

#define IP(a, b, c, d)                                                                             \
  ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

static struct policy pol;

static void expect(const struct policy *p, uint32_t ip, bool allowed)
{
  cr_assert_eq(policy_allows(p, ip), allowed, "%u.%u.%u.%u: expected %s", ip >> 24,
               (ip >> 16) & 255, (ip >> 8) & 255, ip & 255, allowed ? "allow" : "deny");
}

Test(policy, builtin_denies)
{
  policy_init(&pol);
  expect(&pol, IP(127, 0, 0, 1), false);
  expect(&pol, IP(10, 1, 2, 3), false);
  expect(&pol, IP(172, 16, 5, 5), false);
  expect(&pol, IP(172, 31, 255, 255), false);
  expect(&pol, IP(172, 32, 0, 1), true);
  expect(&pol, IP(172, 15, 255, 255), true);
  expect(&pol, IP(192, 168, 1, 1), false);
  expect(&pol, IP(192, 169, 1, 1), true);
  expect(&pol, IP(100, 64, 0, 1), false);
  expect(&pol, IP(100, 127, 255, 255), false);
  expect(&pol, IP(100, 128, 0, 1), true);
  expect(&pol, IP(100, 63, 255, 255), true);
  expect(&pol, IP(169, 254, 169, 254), false);
  expect(&pol, IP(224, 0, 0, 1), false);
  expect(&pol, IP(239, 255, 255, 250), false);
  expect(&pol, IP(240, 0, 0, 1), false);
  expect(&pol, IP(255, 255, 255, 255), false);
  expect(&pol, IP(0, 1, 2, 3), false);
  expect(&pol, IP(0, 0, 0, 0), false);
  expect(&pol, IP(1, 1, 1, 1), true);
  expect(&pol, IP(8, 8, 8, 8), true);
  expect(&pol, IP(198, 18, 0, 2), true);
  expect(&pol, IP(223, 255, 255, 255), true);
  expect(&pol, IP(11, 0, 0, 0), true);
  expect(&pol, IP(9, 255, 255, 255), true);
  for (uint32_t i = 0; i < pol.n; i++)
    cr_assert(pol.r[i].builtin && !pol.r[i].allow);
}

Test(policy, empty_table_allows)
{
  memset(&pol, 0, sizeof(pol));
  expect(&pol, IP(127, 0, 0, 1), true);
  expect(&pol, 0, true);
}

Test(policy, allow_sub_range_of_denied)
{
  policy_init(&pol);
  cr_assert_eq(policy_add(&pol, "198.18.0.0/15", true), 0);
  expect(&pol, IP(198, 18, 0, 2), true);
  expect(&pol, IP(198, 19, 255, 255), true);

  cr_assert_eq(policy_add(&pol, "10.9.0.0/16", true), 0);
  expect(&pol, IP(10, 9, 1, 1), true);
  expect(&pol, IP(10, 9, 255, 255), true);
  expect(&pol, IP(10, 8, 1, 1), false);
  expect(&pol, IP(10, 10, 0, 0), false);
  /* a deny inside that allow: more specific again */
  cr_assert_eq(policy_add(&pol, "10.9.8.0/24", false), 0);
  expect(&pol, IP(10, 9, 8, 1), false);
  expect(&pol, IP(10, 9, 9, 1), true);
}

Test(policy, most_specific_wins_in_any_order)
{
  policy_init(&pol);
  cr_assert_eq(policy_add(&pol, "1.2.0.0/16", false), 0);
  cr_assert_eq(policy_add(&pol, "1.2.3.0/24", true), 0);
  expect(&pol, IP(1, 2, 3, 4), true);
  expect(&pol, IP(1, 2, 4, 4), false);
  expect(&pol, IP(1, 3, 0, 0), true);

  /* the same rules added the other way round */
  policy_init(&pol);
  cr_assert_eq(policy_add(&pol, "1.2.3.0/24", true), 0);
  cr_assert_eq(policy_add(&pol, "1.2.0.0/16", false), 0);
  expect(&pol, IP(1, 2, 3, 4), true);
  expect(&pol, IP(1, 2, 4, 4), false);
}

Test(policy, operator_overrides_builtin_of_same_prefix)
{
  policy_init(&pol);
  uint32_t n0 = pol.n;
  cr_assert_eq(policy_add(&pol, "10.0.0.0/8", true), 0);
  cr_assert_eq(pol.n, n0); /* replaced, not added */
  expect(&pol, IP(10, 1, 2, 3), true);

  /* a built-in of that prefix arriving later does not undo the operator */
  cr_assert_eq(policy_add_addr(&pol, IP(10, 0, 0, 0), 8, false, true), 0);
  cr_assert_eq(pol.n, n0);
  expect(&pol, IP(10, 1, 2, 3), true);

  /* nor a new built-in for an operator-only prefix */
  cr_assert_eq(policy_add(&pol, "1.2.3.0/24", false), 0);
  cr_assert_eq(policy_add_addr(&pol, IP(1, 2, 3, 0), 24, true, true), 0);
  expect(&pol, IP(1, 2, 3, 9), false);

  /* the operator may change its mind */
  cr_assert_eq(policy_add(&pol, "10.0.0.0/8", false), 0);
  expect(&pol, IP(10, 1, 2, 3), false);

  /* a built-in replaces a built-in (e.g. the relay's own /32 re-added) */
  cr_assert_eq(policy_add_addr(&pol, IP(203, 0, 113, 5), 32, false, true), 0);
  expect(&pol, IP(203, 0, 113, 5), false);
  cr_assert_eq(policy_add_addr(&pol, IP(203, 0, 113, 5), 32, true, true), 0);
  expect(&pol, IP(203, 0, 113, 5), true);
}

Test(policy, host_and_default_rules)
{
  policy_init(&pol);
  /* /32 deny of a public address */
  cr_assert_eq(policy_add(&pol, "203.0.113.5/32", false), 0);
  expect(&pol, IP(203, 0, 113, 5), false);
  expect(&pol, IP(203, 0, 113, 4), true);
  expect(&pol, IP(203, 0, 113, 6), true);
  /* bare address = /32, allow inside a denied range */
  cr_assert_eq(policy_add(&pol, "10.0.0.5", true), 0);
  expect(&pol, IP(10, 0, 0, 5), true);
  expect(&pol, IP(10, 0, 0, 6), false);

  /* /0 deny: everything not more specifically allowed is denied */
  cr_assert_eq(policy_add(&pol, "0.0.0.0/0", false), 0);
  expect(&pol, IP(1, 1, 1, 1), false);
  expect(&pol, IP(198, 18, 0, 2), false);
  expect(&pol, IP(10, 0, 0, 5), true);
  cr_assert_eq(policy_add(&pol, "1.1.1.0/24", true), 0);
  expect(&pol, IP(1, 1, 1, 1), true);
  expect(&pol, IP(1, 1, 2, 1), false);
  /* /0 allow does not open the built-in denies: they are more specific */
  cr_assert_eq(policy_add(&pol, "0.0.0.0/0", true), 0);
  expect(&pol, IP(8, 8, 8, 8), true);
  expect(&pol, IP(127, 0, 0, 1), false);
  expect(&pol, IP(203, 0, 113, 5), false);

  /* policy_add_addr validates too */
  cr_assert_eq(policy_add_addr(&pol, IP(10, 0, 0, 1), 8, true, false), -EINVAL);
  cr_assert_eq(policy_add_addr(&pol, 0, 33, true, false), -EINVAL);
  cr_assert_eq(policy_add_addr(&pol, 1, 0, true, false), -EINVAL);
  cr_assert_eq(policy_add_addr(&pol, 0xffffffffu, 32, false, false), 0);
  expect(&pol, 0xffffffffu, false);
}

Test(policy, parse_cidr)
{
  uint32_t net = 0;
  uint8_t len = 0;
  cr_assert_eq(policy_parse_cidr("1.2.3.4", &net, &len), 0);
  cr_assert_eq(net, IP(1, 2, 3, 4));
  cr_assert_eq(len, 32);
  cr_assert_eq(policy_parse_cidr("10.0.0.0/8", &net, &len), 0);
  cr_assert_eq(net, IP(10, 0, 0, 0));
  cr_assert_eq(len, 8);
  cr_assert_eq(policy_parse_cidr("0.0.0.0/0", &net, &len), 0);
  cr_assert_eq(net, 0);
  cr_assert_eq(len, 0);
  cr_assert_eq(policy_parse_cidr("255.255.255.255/32", &net, &len), 0);
  cr_assert_eq(net, 0xffffffffu);
  cr_assert_eq(len, 32);
  cr_assert_eq(policy_parse_cidr("198.18.0.0/15", &net, &len), 0);
  cr_assert_eq(net, IP(198, 18, 0, 0));
  cr_assert_eq(len, 15);

  static const char *const bad[] = {
      "10.0.0.1/8", /* host bits set */
      "198.19.0.0/15",
      "1.2.3.5/31",
      "0.0.0.1/0",
      "1.2.3.0/33",
      "1.2.3.0/-1",
      "1.2.3.0/",
      "1.2.3.0/+24",
      "1.2.3.0/24x",
      "1.2.3.0/x",
      "1.2.3.0/24/8",
      "1.2.3.0/4294967320",
      "1.2.3.0/18446744073709551640",
      "/8",
      "/",
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "a.b.c.d",
      "1.2.3.4 ",
      " 1.2.3.4",
      "::1",
      "111111111111111111111111111111111111111.1.1.1/8",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_expect_eq(policy_parse_cidr(bad[i], &net, &len), -EINVAL, "\"%s\" accepted", bad[i]);

  /* policy_add reports the parse error and adds nothing */
  policy_init(&pol);
  uint32_t n0 = pol.n;
  cr_assert_eq(policy_add(&pol, "10.0.0.1/8", true), -EINVAL);
  cr_assert_eq(policy_add(&pol, "1.2.3.0/33", true), -EINVAL);
  cr_assert_eq(pol.n, n0);
}

/* The prefix length must start with a digit: strtoul() alone would skip
 * leading white space ("1.2.3.0/ 24"). */
Test(policy, parse_cidr_whitespace_length)
{
  uint32_t net = 0;
  uint8_t len = 0;
  cr_expect_eq(policy_parse_cidr("1.2.3.0/ 24", &net, &len), -EINVAL);
  cr_expect_eq(policy_parse_cidr("1.2.3.0/\t24", &net, &len), -EINVAL);
  cr_expect_eq(policy_parse_cidr("1.2.3.0/\n24", &net, &len), -EINVAL);
}

Test(policy, table_full)
{
  char cidr[32];
  policy_init(&pol);
  uint32_t added = 0;
  int rc = 0;
  for (uint32_t i = 0; i < 1000; i++) {
    snprintf(cidr, sizeof(cidr), "203.0.%u.%u", i / 256, i % 256);
    rc = policy_add(&pol, cidr, false);
    if (rc < 0)
      break;
    added++;
  }
  cr_assert_eq(rc, -ENOSPC);
  cr_assert_eq(pol.n, POLICY_MAX_RULES);
  cr_assert_eq(added, POLICY_MAX_RULES - 9); /* nine built-ins */
  cr_assert_eq(policy_add_addr(&pol, IP(1, 0, 0, 0), 8, false, true), -ENOSPC);
  /* the table still answers, and a rule of an existing prefix can change */
  expect(&pol, IP(203, 0, 0, 7), false);
  expect(&pol, IP(203, 0, 5, 7), true);
  cr_assert_eq(policy_add(&pol, "203.0.0.7", true), 0);
  expect(&pol, IP(203, 0, 0, 7), true);
  cr_assert_eq(policy_add(&pol, "10.0.0.0/8", true), 0);
  expect(&pol, IP(10, 0, 0, 1), true);
  cr_assert_eq(pol.n, POLICY_MAX_RULES);
}

/* ---- IPv6 ---- */

static void expect6(const struct policy *p, const char *addr, bool allowed)
{
  struct in6_addr a;
  cr_assert_eq(inet_pton(AF_INET6, addr, &a), 1, "%s", addr);
  cr_assert_eq(policy_allows6(p, a.s6_addr), allowed, "%s: expected %s", addr,
               allowed ? "allow" : "deny");
}

Test(policy, ipv6_builtin_denies)
{
  policy_init(&pol);
  const char *denied[] = {
      "::",           "::1",       "::ffff:8.8.8.8", "::ffff:10.0.0.1", "64:ff9b::808:808",
      "64:ff9b:1::1", "100::1",    "2001:db8::1",    "3fff::1",         "fc00::1",
      "fd12:3456::1", "fe80::1",   "febf::1",        "fec0::1",         "ff02::1",
      "ff0e::1",      "::10.0.0.1"};
  for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
    expect6(&pol, denied[i], false);
  expect6(&pol, "2606:4700:4700::1111", true);
  expect6(&pol, "2001:4860:4860::8888", true);
  expect6(&pol, "2001:db9::1", true);
  expect6(&pol, "64:ff9b:0:1::1", true);
  for (uint32_t i = 0; i < pol.n6; i++)
    cr_assert(pol.r6[i].builtin && !pol.r6[i].allow);
}

Test(policy, ipv6_operator_rules_and_mapped_addresses)
{
  policy_init(&pol);
  cr_assert_eq(policy_add(&pol, "2001:db8:1::/48", true), 0);
  expect6(&pol, "2001:db8:1::5", true);
  expect6(&pol, "2001:db8:2::5", false);
  cr_assert_eq(policy_add(&pol, "2001:db8:1:2::/64", false), 0);
  expect6(&pol, "2001:db8:1:2::5", false);
  expect6(&pol, "2001:db8:1:3::5", true);
  cr_assert_eq(policy_add(&pol, "2606:4700::/32", false), 0);
  expect6(&pol, "2606:4700::1111", false);
  /* allowing IPv4-mapped addresses never opens what the IPv4 rules deny */
  cr_assert_eq(policy_add(&pol, "::ffff:0:0/96", true), 0);
  expect6(&pol, "::ffff:8.8.8.8", true);
  expect6(&pol, "::ffff:127.0.0.1", false);
  expect6(&pol, "::ffff:169.254.169.254", false);
  cr_assert_eq(policy_add(&pol, "8.8.8.0/24", false), 0);
  expect6(&pol, "::ffff:8.8.8.8", false);
  /* an operator allow of the same prefix as a built-in deny wins */
  cr_assert_eq(policy_add(&pol, "fc00::/7", true), 0);
  expect6(&pol, "fd00::1", true);
}

Test(policy, ipv6_parse_cidr)
{
  uint8_t net[16], len;
  cr_assert_eq(policy_parse_cidr6("2001:db8::/32", net, &len), 0);
  cr_assert_eq(len, 32);
  cr_assert_eq(net[0], 0x20);
  cr_assert_eq(policy_parse_cidr6("2001:db8::1", net, &len), 0);
  cr_assert_eq(len, 128);
  cr_assert_eq(policy_parse_cidr6("::/0", net, &len), 0);
  cr_assert_eq(len, 0);
  cr_assert_eq(policy_parse_cidr6("2001:db8::1/32", net, &len), -EINVAL, "host bits");
  cr_assert_eq(policy_parse_cidr6("2001:db8::/129", net, &len), -EINVAL);
  cr_assert_eq(policy_parse_cidr6("2001:db8::/-1", net, &len), -EINVAL);
  cr_assert_eq(policy_parse_cidr6("2001:db8::/ 32", net, &len), -EINVAL);
  cr_assert_eq(policy_parse_cidr6("2001:db8:::/32", net, &len), -EINVAL);
  cr_assert_eq(policy_parse_cidr6("10.0.0.0/8", net, &len), -EINVAL);
  cr_assert_eq(policy_parse_cidr6("fe80::1%eth0/64", net, &len), -EINVAL);
  cr_assert_eq(policy_add(&pol, "2001:db8::1/32", true), -EINVAL);
}
