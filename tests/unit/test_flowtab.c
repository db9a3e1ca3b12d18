/*
 * test_flowtab: the NAT's one flow table (src/nat/flowtab.c) on its own:
 * the keyed hash (SipHash reference vectors, the documented key layout),
 * insert / lookup / unlink / free, the reverse key, per-protocol bounds
 * (-ENOSPC, counted, one protocol's full part leaves the others alone),
 * least-recently-used order for expiry, chains that stay short for keys a
 * guest would choose (low bits equal, or colliding under an unkeyed hash
 * or under another instance's secret), and a secret per instance.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "flowtab.h"
#include "wtrelay/hash.h"

#define A4(ip) inany_from4(ip)

/* An IPv4 address as the table holds it, for the one call that wants a
 * pointer. */
static const union inany *p4(uint32_t ip)
{
  static union inany x;
  x = inany_from4(ip);
  return &x;
}

static struct ft_key udp_key(uint32_t room, uint32_t ip, uint16_t port)
{
  return (struct ft_key){.proto = FT_UDP, .room = room, .vip = A4(ip), .vport = port};
}

static struct ft_key tcp_key(uint32_t ip, uint16_t port, uint32_t dip, uint16_t dport)
{
  return (struct ft_key){
      .proto = FT_TCP, .room = 1, .vip = A4(ip), .vport = port, .rip = A4(dip), .rport = dport};
}

static void init3(struct flowtab *t, uint32_t udp, uint32_t icmp, uint32_t tcp)
{
  const uint32_t cap[FT_PROTOS] = {[FT_UDP] = udp, [FT_ICMP] = icmp, [FT_TCP] = tcp};
  cr_assert_eq(flowtab_init(t, cap, 1u << FT_ICMP), 0);
}

/* The reference implementation's vectors (key 00..0f, message 00..len-1)
 * for SipHash-2-4: the rounds and the last block are right. */
Test(flowtab, siphash_reference_vectors)
{
  uint8_t key[16], msg[64];
  for (int i = 0; i < 16; i++)
    key[i] = (uint8_t)i;
  for (int i = 0; i < 64; i++)
    msg[i] = (uint8_t)i;
  cr_assert_eq(flowtab_siphash(key, msg, 0, 2, 4), UINT64_C(0x726fdb47dd0e0e31));
  cr_assert_eq(flowtab_siphash(key, msg, 15, 2, 4), UINT64_C(0xa129ca6149be45e5));
}

/* flowtab_hash is SipHash-1-3 of the whole key, the 41 bytes the source
 * documents (room, vport, rport little-endian, vip, rip, proto) under the
 * table's secret, for either family. */
static void check_hash(struct flowtab *t, const struct ft_key *k)
{
  uint8_t key[16], m[41];
  for (int i = 0; i < 8; i++) {
    key[i] = (uint8_t)(t->k0 >> (8 * i));
    key[8 + i] = (uint8_t)(t->k1 >> (8 * i));
  }
  memcpy(m, &k->room, 4); /* little-endian machine, as the test vectors */
  m[4] = (uint8_t)k->vport;
  m[5] = (uint8_t)(k->vport >> 8);
  m[6] = (uint8_t)k->rport;
  m[7] = (uint8_t)(k->rport >> 8);
  memcpy(m + 8, k->vip.a, 16);
  memcpy(m + 24, k->rip.a, 16);
  m[40] = k->proto;
  cr_assert_eq(flowtab_hash(t, k), flowtab_siphash(key, m, sizeof(m), 1, 3));
}

Test(flowtab, hash_is_siphash13_of_the_key)
{
  struct flowtab t;
  init3(&t, 4, 4, 4);
  struct ft_key k = tcp_key(0x0a000205, 40000, 0xc6120002, 443);
  check_hash(&t, &k);
  static const uint8_t g[16] = {0xfd, 1,    2, 3,    4,    5,    0,    7,
                                0x50, 0x54, 0, 0xff, 0xfe, 0x12, 0x34, 0x56};
  static const uint8_t r[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 0x99};
  struct ft_key k6 = {.proto = FT_TCP,
                      .room = 3,
                      .vip = inany_from6(g),
                      .vport = 40000,
                      .rip = inany_from6(r),
                      .rport = 443};
  check_hash(&t, &k6);
  flowtab_fini(&t);
}

/* The address union: IPv4 as ::ffff:a.b.c.d, never equal to an IPv6
 * address; an IPv4 flow and an IPv6 one with the same low bits are two
 * keys; IPv6 flows are found by every byte of both addresses. */
Test(flowtab, ipv4_and_ipv6_keys)
{
  union inany a = inany_from4(0x0a000205);
  static const uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff, 10, 0, 2, 5};
  cr_assert_arr_eq(a.a, mapped, 16);
  cr_assert(inany_is4(&a));
  cr_assert_eq(inany_v4(&a), 0x0a000205);
  uint8_t v6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 2, 5};
  union inany b = inany_from6(v6);
  cr_assert_not(inany_is4(&b));
  cr_assert_not(inany_eq(&a, &b));
  struct flowtab t;
  init3(&t, 8, 8, 8);
  struct ft_key k4 = udp_key(0, 0x0a000205, 53), k6 = k4;
  k6.vip = b;
  uint32_t s4, s6;
  cr_assert_eq(flowtab_insert(&t, &k4, 1, &s4), 0);
  cr_assert_eq(flowtab_insert(&t, &k6, 1, &s6), 0);
  cr_assert_neq(s4, s6);
  cr_assert_eq(flowtab_lookup(&t, &k4), s4);
  cr_assert_eq(flowtab_lookup(&t, &k6), s6);
  for (int i = 0; i < 16; i++) {
    struct ft_key v = k6;
    v.vip.a[i] ^= 0x40;
    cr_assert_eq(flowtab_lookup(&t, &v), FT_NONE, "vip byte %d", i);
    v = k6;
    v.rip.a[i] ^= 0x40;
    cr_assert_eq(flowtab_lookup(&t, &v), FT_NONE, "rip byte %d", i);
  }
  flowtab_fini(&t);
}

Test(flowtab, insert_lookup_unlink_free)
{
  struct flowtab t;
  init3(&t, 8, 8, 8);
  struct ft_key a = udp_key(0, 0x0a000205, 5353), b = tcp_key(0x0a000205, 5353, 0x01020304, 80);
  uint32_t sa, sb, s;
  cr_assert_eq(flowtab_lookup(&t, &a), FT_NONE);
  cr_assert_eq(flowtab_insert(&t, &a, 10, &sa), 0);
  cr_assert_eq(flowtab_insert(&t, &b, 11, &sb), 0);
  cr_assert_lt(sa, 8);
  cr_assert_lt(sb, 8);
  cr_assert_eq(flowtab_lookup(&t, &a), sa);
  cr_assert_eq(flowtab_lookup(&t, &b), sb);
  cr_assert_eq(flowtab_insert(&t, &a, 12, &s), -EEXIST);
  cr_assert_eq(flowtab_live(&t, FT_UDP), 1);
  cr_assert_eq(flowtab_live(&t, FT_TCP), 1);
  cr_assert_eq(flowtab_key(&t, FT_TCP, sb)->rport, 80);
  /* every field is part of the key */
  struct ft_key v[] = {a, a, a, a, a, a};
  v[0].room = 1;
  v[1].vip.a[15]++;
  v[2].vport++;
  v[3].rip = A4(1);
  v[4].rport = 1;
  v[5].proto = FT_ICMP;
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
    cr_assert_eq(flowtab_lookup(&t, &v[i]), FT_NONE, "variant %zu", i);
  /* unlinked: not found, slot still taken */
  flowtab_unlink(&t, FT_TCP, sb);
  cr_assert_eq(flowtab_lookup(&t, &b), FT_NONE);
  cr_assert_eq(flowtab_live(&t, FT_TCP), 0);
  cr_assert_eq(t.part[FT_TCP].taken, 1);
  flowtab_free(&t, FT_TCP, sb);
  cr_assert_eq(t.part[FT_TCP].taken, 0);
  flowtab_free(&t, FT_UDP, sa);
  cr_assert_eq(flowtab_lookup(&t, &a), FT_NONE);
  cr_assert_eq(flowtab_live(&t, FT_UDP), 0);
  flowtab_free(&t, FT_UDP, sa); /* twice: no effect */
  cr_assert_eq(t.part[FT_UDP].taken, 0);
  /* slots are reused first in, first out: the 6 never used come before
   * the two freed, in the order they were freed */
  uint32_t got[8];
  for (uint16_t i = 0; i < 8; i++) {
    struct ft_key k = tcp_key(0x0a000205, (uint16_t)(6000 + i), 0x01020304, 80);
    cr_assert_eq(flowtab_insert(&t, &k, 13, &got[i]), 0);
    cr_assert_eq(flowtab_lookup(&t, &k), got[i]);
  }
  cr_assert_eq(got[7], sb, "the freed slot is taken last");
  cr_assert_eq(flowtab_insert(&t, &b, 14, &s), -ENOSPC);
  flowtab_fini(&t);
}

Test(flowtab, reverse_key_scoped_by_protocol)
{
  struct flowtab t;
  init3(&t, 4, 4, 4);
  struct ft_key e1 = {.proto = FT_ICMP, .room = 0, .vip = A4(0x0a000205), .vport = 7};
  struct ft_key e2 = e1;
  e2.vport = 8;
  struct ft_key u = udp_key(0, 0x0a000205, 7);
  uint32_t s1, s2, su;
  cr_assert_eq(flowtab_insert(&t, &e1, 1, &s1), 0);
  cr_assert_eq(flowtab_insert(&t, &e2, 1, &s2), 0);
  cr_assert_eq(flowtab_insert(&t, &u, 1, &su), 0);
  cr_assert_eq(flowtab_lookup_rkey(&t, FT_ICMP, 0x1234), FT_NONE);
  flowtab_set_rkey(&t, FT_ICMP, s1, 0x1234);
  flowtab_set_rkey(&t, FT_ICMP, s2, 0x5678);
  cr_assert_eq(flowtab_lookup_rkey(&t, FT_ICMP, 0x1234), s1);
  cr_assert_eq(flowtab_lookup_rkey(&t, FT_ICMP, 0x5678), s2);
  cr_assert_eq(flowtab_lookup_rkey(&t, FT_UDP, 0x1234), FT_NONE, "another protocol's key");
  /* replaced by a second call */
  flowtab_set_rkey(&t, FT_ICMP, s2, 0x9999);
  cr_assert_eq(flowtab_lookup_rkey(&t, FT_ICMP, 0x5678), FT_NONE);
  cr_assert_eq(flowtab_lookup_rkey(&t, FT_ICMP, 0x9999), s2);
  /* gone with the flow */
  flowtab_free(&t, FT_ICMP, s1);
  cr_assert_eq(flowtab_lookup_rkey(&t, FT_ICMP, 0x1234), FT_NONE);
  cr_assert_eq(flowtab_lookup_rkey(&t, FT_ICMP, 0x9999), s2);
  flowtab_fini(&t);
}

/* A full part refuses with -ENOSPC and counts it; the other protocols'
 * parts are unaffected; a freed slot is taken again. */
Test(flowtab, bound_enospc_counted_per_protocol)
{
  struct flowtab t;
  init3(&t, 3, 0, 2);
  uint32_t s[3], x;
  for (uint16_t i = 0; i < 3; i++) {
    struct ft_key k = udp_key(0, 0x0a000205, (uint16_t)(1000 + i));
    cr_assert_eq(flowtab_insert(&t, &k, i, &s[i]), 0);
  }
  struct ft_key k4 = udp_key(0, 0x0a000205, 2000);
  cr_assert_eq(flowtab_insert(&t, &k4, 5, &x), -ENOSPC);
  cr_assert_eq(flowtab_insert(&t, &k4, 6, &x), -ENOSPC);
  cr_assert_eq(t.part[FT_UDP].full, 2);
  cr_assert_eq(flowtab_live(&t, FT_UDP), 3);
  cr_assert_eq(flowtab_lookup(&t, &k4), FT_NONE);
  /* TCP still has its own slots; ICMP has none */
  struct ft_key kt = tcp_key(0x0a000205, 1000, 0x01020304, 80);
  cr_assert_eq(flowtab_insert(&t, &kt, 7, &x), 0);
  struct ft_key ki = {.proto = FT_ICMP, .vip = A4(1), .vport = 1};
  cr_assert_eq(flowtab_insert(&t, &ki, 7, &x), -ENOSPC);
  cr_assert_eq(t.part[FT_ICMP].full, 1);
  cr_assert_eq(flowtab_lookup(&t, &ki), FT_NONE);
  cr_assert_eq(t.part[FT_TCP].full, 0);
  /* a TCP slot held after unlink still counts against the bound */
  struct ft_key kt2 = tcp_key(0x0a000205, 1001, 0x01020304, 80);
  uint32_t st2;
  cr_assert_eq(flowtab_insert(&t, &kt2, 8, &st2), 0);
  flowtab_unlink(&t, FT_TCP, st2);
  struct ft_key kt3 = tcp_key(0x0a000205, 1002, 0x01020304, 80);
  cr_assert_eq(flowtab_insert(&t, &kt3, 9, &x), -ENOSPC);
  flowtab_free(&t, FT_TCP, st2);
  cr_assert_eq(flowtab_insert(&t, &kt3, 9, &x), 0);
  /* UDP: free one, the fourth key fits */
  flowtab_free(&t, FT_UDP, s[1]);
  cr_assert_eq(flowtab_insert(&t, &k4, 10, &x), 0);
  cr_assert_eq(x, s[1]);
  cr_assert_eq(flowtab_lookup(&t, &k4), x);
  flowtab_fini(&t);
}

/* Expiry walks from the least recently used flow: insertion order, a
 * touch makes a flow the newest, a freed one leaves the order. */
Test(flowtab, lru_order_for_expiry)
{
  struct flowtab t;
  init3(&t, 8, 8, 0);
  uint32_t s[4];
  for (uint16_t i = 0; i < 4; i++) {
    struct ft_key k = udp_key(0, 0x0a000205, (uint16_t)(100 + i));
    cr_assert_eq(flowtab_insert(&t, &k, 10 + i, &s[i]), 0);
  }
  cr_assert_eq(flowtab_oldest(&t, FT_ICMP), FT_NONE, "ICMP has its own list");
  cr_assert_eq(flowtab_oldest(&t, FT_UDP), s[0]);
  cr_assert_eq(flowtab_last(&t, FT_UDP, s[0]), 10);
  flowtab_touch(&t, FT_UDP, s[0], 20); /* 1 2 3 0 */
  cr_assert_eq(flowtab_oldest(&t, FT_UDP), s[1]);
  cr_assert_eq(flowtab_last(&t, FT_UDP, s[0]), 20);
  flowtab_touch(&t, FT_UDP, s[2], 21); /* 1 3 0 2 */
  flowtab_free(&t, FT_UDP, s[1]);      /* 3 0 2 */
  uint32_t order[] = {s[3], s[0], s[2]};
  uint64_t last[] = {13, 20, 21};
  for (int i = 0; i < 3; i++) {
    uint32_t o = flowtab_oldest(&t, FT_UDP);
    cr_assert_eq(o, order[i], "position %d", i);
    cr_assert_eq(flowtab_last(&t, FT_UDP, o), last[i]);
    flowtab_free(&t, FT_UDP, o);
  }
  cr_assert_eq(flowtab_oldest(&t, FT_UDP), FT_NONE);
  /* an unlinked flow leaves the order too */
  struct ft_key k = udp_key(0, 1, 1);
  uint32_t x;
  cr_assert_eq(flowtab_insert(&t, &k, 30, &x), 0);
  flowtab_unlink(&t, FT_UDP, x);
  cr_assert_eq(flowtab_oldest(&t, FT_UDP), FT_NONE);
  flowtab_fini(&t);
}

/* Keys a guest controls: 4096 mappings of one VM whose ports (and
 * addresses) differ only in high bits, then keys chosen to collide in the
 * low bits of the earlier unkeyed hash: every chain stays short. */
Test(flowtab, colliding_low_bits_chains_stay_short)
{
  struct flowtab t;
  init3(&t, 4096, 0, 4096);
  uint32_t s;
  for (uint32_t i = 0; i < 4096; i++) {
    struct ft_key k = udp_key(0, 0x0a000205 + ((i & 15) << 24), (uint16_t)((i >> 4) << 8));
    cr_assert_eq(flowtab_insert(&t, &k, i, &s), 0);
  }
  uint32_t longest = flowtab_longest_chain(&t);
  cr_assert_leq(longest, 10, "4096 keys in 16384 buckets, longest chain %u", longest);
  /* the earlier UDP hash was hash_mix64 of the key, unkeyed: anyone can
   * search for keys that share its low bits offline */
  uint32_t found = 0, mask = t.mask;
  for (uint32_t i = 0; found < 256 && i < 1u << 24; i++) {
    uint32_t ip = 0xc6120000 + (i >> 16);
    uint16_t port = (uint16_t)i;
    /* nat_tcp.c's tuple_hash before the flow table */
    uint64_t old = ((uint64_t)1 << 48) ^ ((uint64_t)0x0a000206 << 16) ^ port;
    old ^= ((uint64_t)ip << 20) ^ ((uint64_t)443 << 3);
    if ((hash_mix64(old) & mask) != 0)
      continue;
    struct ft_key k = tcp_key(0x0a000206, port, ip, 443);
    if (flowtab_insert(&t, &k, i, &s) == 0)
      found++;
  }
  cr_assert_eq(found, 256, "256 keys colliding under an unkeyed hash");
  longest = flowtab_longest_chain(&t);
  cr_assert_leq(longest, 10, "longest chain %u", longest);
  /* and lookups still find every one */
  cr_assert_eq(flowtab_live(&t, FT_TCP), 256);
  flowtab_fini(&t);
}

/* Two instances draw their own secrets: keys found to collide in one
 * (an attacker who learnt that worker's buckets by timing) spread in the
 * other. */
Test(flowtab, secret_differs_between_instances)
{
  struct flowtab a, b;
  init3(&a, 1024, 0, 0);
  init3(&b, 1024, 0, 0);
  cr_assert(a.k0 != b.k0 || a.k1 != b.k1);
  struct ft_key k = udp_key(0, 0x0a000205, 53);
  cr_assert_neq(flowtab_hash(&a, &k), flowtab_hash(&b, &k));
  /* 64 keys that share a bucket of a */
  uint32_t n = 0, s;
  for (uint32_t i = 0; n < 64 && i < 1u << 24; i++) {
    struct ft_key c = udp_key(i >> 16, 0x0a000205, (uint16_t)i);
    if ((flowtab_hash(&a, &c) & a.mask) != 0)
      continue;
    cr_assert_eq(flowtab_insert(&a, &c, i, &s), 0);
    cr_assert_eq(flowtab_insert(&b, &c, i, &s), 0);
    n++;
  }
  cr_assert_eq(n, 64);
  cr_assert_eq(flowtab_longest_chain(&a), 64, "a: one chain of 64");
  cr_assert_leq(flowtab_longest_chain(&b), 6, "b: spread");
  /* a lookup at the end of a's long chain still finds its key */
  cr_assert_eq(flowtab_live(&a, FT_UDP), 64);
  flowtab_fini(&a);
  flowtab_fini(&b);
}

Test(flowtab, empty_parts)
{
  struct flowtab t;
  init3(&t, 0, 0, 0);
  struct ft_key k = udp_key(0, 1, 1);
  uint32_t s;
  cr_assert_eq(flowtab_lookup(&t, &k), FT_NONE);
  cr_assert_eq(flowtab_insert(&t, &k, 1, &s), -ENOSPC);
  cr_assert_eq(flowtab_oldest(&t, FT_UDP), FT_NONE);
  cr_assert_eq(flowtab_lookup_rkey(&t, FT_ICMP, 1), FT_NONE);
  flowtab_free(&t, FT_UDP, 0); /* out of range: ignored */
  flowtab_fini(&t);
}

/* The VM index counts a VM's live flows of a protocol in it (the per-VM
 * caps of echo ids and DNS queries): by room and address, up to a limit,
 * without the flows that left; a protocol outside by_vm counts 0. */
Test(flowtab, vm_index_counts)
{
  struct flowtab t;
  const uint32_t cap[FT_PROTOS] = {[FT_UDP] = 8, [FT_ICMP] = 16, [FT_DNS] = 16};
  cr_assert_eq(flowtab_init(&t, cap, (1u << FT_ICMP) | (1u << FT_DNS)), 0);
  uint32_t s[6], x;
  for (uint16_t i = 0; i < 6; i++) {
    struct ft_key k = {.proto = FT_ICMP, .room = 0, .vip = A4(0x0a000205), .vport = i};
    cr_assert_eq(flowtab_insert(&t, &k, i, &s[i]), 0);
  }
  struct ft_key other_room = {.proto = FT_ICMP, .room = 1, .vip = A4(0x0a000205), .vport = 1};
  struct ft_key other_vm = {.proto = FT_ICMP, .room = 0, .vip = A4(0x0a000206), .vport = 1};
  struct ft_key dns = {
      .proto = FT_DNS, .room = 0, .vip = A4(0x0a000205), .vport = 5353, .rip = A4(7)};
  struct ft_key udp = udp_key(0, 0x0a000205, 1);
  cr_assert_eq(flowtab_insert(&t, &other_room, 9, &x), 0);
  cr_assert_eq(flowtab_insert(&t, &other_vm, 9, &x), 0);
  cr_assert_eq(flowtab_insert(&t, &dns, 9, &x), 0);
  cr_assert_eq(flowtab_insert(&t, &udp, 9, &x), 0);
  cr_assert_eq(flowtab_vm_count(&t, FT_ICMP, 0, p4(0x0a000205), 100), 6);
  cr_assert_eq(flowtab_vm_count(&t, FT_ICMP, 0, p4(0x0a000205), 4), 4,
               "the walk stops at the limit");
  cr_assert_eq(flowtab_vm_count(&t, FT_ICMP, 1, p4(0x0a000205), 100), 1);
  cr_assert_eq(flowtab_vm_count(&t, FT_ICMP, 0, p4(0x0a000206), 100), 1);
  cr_assert_eq(flowtab_vm_count(&t, FT_DNS, 0, p4(0x0a000205), 100), 1);
  cr_assert_eq(flowtab_vm_count(&t, FT_UDP, 0, p4(0x0a000205), 100), 0, "UDP is not in by_vm");
  flowtab_free(&t, FT_ICMP, s[2]);
  flowtab_unlink(&t, FT_ICMP, s[4]);
  cr_assert_eq(flowtab_vm_count(&t, FT_ICMP, 0, p4(0x0a000205), 100), 4);
  flowtab_free(&t, FT_ICMP, s[4]);
  for (int i = 0; i < 6; i++)
    flowtab_free(&t, FT_ICMP, s[i]);
  cr_assert_eq(flowtab_vm_count(&t, FT_ICMP, 0, p4(0x0a000205), 100), 0);
  cr_assert_eq(flowtab_vm_count(&t, FT_ICMP, 1, p4(0x0a000205), 100), 1);
  flowtab_fini(&t);
}
