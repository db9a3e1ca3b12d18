/*
 * fed's subjects: no room name or relay id can inject a token, a wildcard
 * or a blank into a NATS subject (a property test over hostile and random
 * names), the encoding is one-to-one, and the prefix check; the table of
 * remote MACs (which relay a unicast goes to) and its aging.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/fed.h"

#define SUBJ 2048

/* The subject of name (n bytes) as <prefix>.room.<tok>.flood or .to.<id>:
 * checks its shape and that the token decodes back to the name. */
static void check_subject(const uint8_t *name, size_t n, const char *to_id)
{
  char tok[2 * FED_NAME_MAX + 1], to[2 * FED_ID_MAX + 1], subj[SUBJ];
  cr_assert_leq(n, FED_NAME_MAX - 1);
  fed_token(tok, name, n);
  if (to_id)
    fed_token(to, to_id, strlen(to_id));
  int len = fed_subject(subj, sizeof(subj), "wtrelay", tok, to_id ? to : NULL);
  cr_assert_gt(len, 0);
  cr_assert_eq((size_t)len, strlen(subj));
  /* nothing but [0-9a-z.] and exactly the expected tokens */
  size_t dots = 0;
  for (int i = 0; i < len; i++) {
    char c = subj[i];
    cr_assert(c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'),
              "byte 0x%02x in subject %s", (unsigned char)c, subj);
    dots += c == '.';
    cr_assert(c != '.' || (i > 0 && subj[i - 1] != '.'), "empty token in %s", subj);
  }
  cr_assert_eq(dots, to_id ? 4u : 3u, "subject %s", subj);
  char *save = NULL, *copy = strdup(subj);
  cr_assert_str_eq(strtok_r(copy, ".", &save), "wtrelay");
  cr_assert_str_eq(strtok_r(NULL, ".", &save), "room");
  const char *t = strtok_r(NULL, ".", &save);
  cr_assert_eq(strlen(t), 2 * n);
  uint8_t back[FED_NAME_MAX];
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    cr_assert_eq(sscanf(t + 2 * i, "%2x", &v), 1);
    back[i] = (uint8_t)v;
  }
  cr_assert_arr_eq(back, name, n, "the token does not decode to the name");
  if (to_id) {
    cr_assert_str_eq(strtok_r(NULL, ".", &save), "to");
    cr_assert_str_eq(strtok_r(NULL, ".", &save), to);
  } else {
    cr_assert_str_eq(strtok_r(NULL, ".", &save), "flood");
  }
  cr_assert_null(strtok_r(NULL, ".", &save));
  free(copy);
}

Test(fed, hostile_room_names)
{
  static const char *const names[] = {
      "/",          "/lan",       "/a.b",        "/*",          "/>",         "/a.*.>",
      "/room.>",    "/ x",        "/\t\r\n",     "/..",         ".",          "*",
      ">",          "/a b.c*d>e", "/\xff\xfe",   "/room.flood", "/x.to.evil", "/%2e%2a",
      "/\x7f\x01.", "/ünïcödé.*", "/a\x00hidden"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    check_subject((const uint8_t *)names[i], strlen(names[i]), NULL);
    check_subject((const uint8_t *)names[i], strlen(names[i]), "relay.*>");
    check_subject((const uint8_t *)names[i], strlen(names[i]), "host:4433");
  }
  /* the longest name a room can have */
  uint8_t longest[FED_NAME_MAX - 1];
  memset(longest, '.', sizeof(longest));
  check_subject(longest, sizeof(longest), "r");
}

Test(fed, random_names_never_inject)
{
  uint64_t x = 0x243f6a8885a308d3ull;
  uint8_t name[FED_NAME_MAX - 1];
  for (int round = 0; round < 20000; round++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    size_t n = 1 + x % (sizeof(name) - 1);
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      /* half the bytes from the dangerous set */
      static const uint8_t bad[] = {'.', '*', '>', ' ', '\t', '\n', '\r', 0, 0xff};
      name[i] = (x & 1) ? bad[(x >> 8) % sizeof(bad)] : (uint8_t)(x >> 16);
    }
    check_subject(name, n, (x & 2) ? "B" : NULL);
  }
}

Test(fed, distinct_names_distinct_subjects)
{
  char a[SUBJ], b[SUBJ], ta[64], tb[64];
  /* names that a careless escape would merge */
  cr_assert_gt(fed_subject(a, sizeof(a), "p", fed_token(ta, "a.b", 3), NULL), 0);
  cr_assert_gt(fed_subject(b, sizeof(b), "p", fed_token(tb, "a_b", 3), NULL), 0);
  cr_assert_str_neq(a, b);
  cr_assert_gt(fed_subject(a, sizeof(a), "p", fed_token(ta, "ab", 2), NULL), 0);
  cr_assert_gt(fed_subject(b, sizeof(b), "p", fed_token(tb, "a", 1), NULL), 0);
  cr_assert_str_neq(a, b);
}

/* The lease bucket's keys: only [A-Za-z0-9_.] whatever the room's name,
 * exactly the three tokens r<hex>.ip.<a_b_c_d> or r<hex>.mac.<12 hex>,
 * distinct rooms give distinct keys, and the longest name fits. */
static void check_key(const char *key, const char *kind)
{
  for (const char *c = key; *c; c++)
    cr_assert((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '_',
              "byte %02x in key %s", (uint8_t)*c, key);
  char copy[FED_KEY_MAX], *save = NULL;
  snprintf(copy, sizeof(copy), "%s", key);
  cr_assert_eq(strtok_r(copy, ".", &save)[0], 'r');
  cr_assert_str_eq(strtok_r(NULL, ".", &save), kind);
  cr_assert_not_null(strtok_r(NULL, ".", &save));
  cr_assert_null(strtok_r(NULL, ".", &save));
}

Test(fed, lease_keys_safe)
{
  char k[FED_KEY_MAX], k2[FED_KEY_MAX];
  static const char *const names[] = {"/", "/a.b", "/*", "/>", "/ x", "/room.ip.1_2_3_4", ""};
  const uint8_t m[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    fed_lease_ip_key(k, names[i], 0x0a0002fe);
    check_key(k, "ip");
    cr_assert(strstr(k, ".ip.10_0_2_254"), "%s", k);
    fed_lease_mac_key(k, names[i], m);
    check_key(k, "mac");
    cr_assert(strstr(k, ".mac.525400abcdef"), "%s", k);
    for (size_t j = 0; j < i; j++) {
      fed_lease_ip_key(k, names[i], 1);
      fed_lease_ip_key(k2, names[j], 1);
      cr_assert_str_neq(k, k2);
    }
  }
  char longest[FED_NAME_MAX];
  memset(longest, '.', sizeof(longest) - 1);
  longest[sizeof(longest) - 1] = '\0';
  fed_lease_ip_key(k, longest, 0xffffffff);
  check_key(k, "ip");
  cr_assert(strstr(k, ".ip.255_255_255_255"));
}

/* Passwords and tokens in --nats never reach a log line. */
Test(fed, urls_redacted_for_logs)
{
  char out[256];
  static const char *const cases[][2] = {
      {"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
      {"tls://u:p@127.0.0.1:4222", "tls://***@127.0.0.1:4222"},
      {"nats://tok3n@h1:4222,nats://a:b@c@h2:4222,h3:4222",
       "nats://***@h1:4222,nats://***@h2:4222,h3:4222"},
      {"u:secret@host:4222", "***@host:4222"},
      {"nats://host:4222/p@th", "nats://host:4222/p@th"},
      {"", ""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    fed_urls_redact(out, sizeof(out), cases[i][0]);
    cr_assert_str_eq(out, cases[i][1]);
  }
  /* truncated, never past the buffer, never the secret's tail */
  char small[12];
  fed_urls_redact(small, sizeof(small), "nats://user:pw@host:4222");
  cr_assert_lt(strlen(small), sizeof(small));
  cr_assert_null(strstr(small, "pw"));
}

Test(fed, subject_too_long)
{
  char small[16], tok[16];
  cr_assert_eq(fed_subject(small, sizeof(small), "wtrelay", fed_token(tok, "lan", 3), NULL),
               -ENAMETOOLONG);
}

Test(fed, prefix_check)
{
  cr_assert(fed_prefix_valid("wtrelay"));
  cr_assert(fed_prefix_valid("org.example-1.wt_relay"));
  static const char *const bad[] = {"",    ".",   "a.",   ".a", "a..b", "a.*",
                                    "a.>", "a b", "a\tb", ">",  "*",    "a/b"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_assert_not(fed_prefix_valid(bad[i]), "accepted %s", bad[i]);
}

/* ---- remote MACs ---- */

#define S_NS 1000000000ull

static struct fed_worker *mac_worker(void)
{
  static struct fed_worker fw;
  memset(&fw, 0, sizeof(fw));
  fw.macs = calloc(FED_MACS, sizeof(*fw.macs));
  cr_assert_not_null(fw.macs);
  return &fw;
}

static void id_is(const struct fed_mac *m, const char *id)
{
  cr_assert_not_null(m, "no entry, expected relay %s", id);
  cr_assert_eq(m->idlen, strlen(id));
  cr_assert_arr_eq(m->id, id, strlen(id));
}

/* A MAC moves from relay B to relay C without a frame (B died, the VM
 * reconnected to C and is quiet): before the aging time unicast still goes
 * to B's subject, after it the entry is no longer used (the frame is
 * flooded, so C gets it), and a frame from C puts the MAC behind C. */
Test(fed, remote_mac_ages_out)
{
  struct fed_worker *fw = mac_worker();
  const uint64_t aging = 2 * S_NS, t0 = 1000 * S_NS;
  const uint8_t mac[6] = {0x52, 0x54, 0, 0, 0, 7};
  cr_assert(fed_mac_learn(fw, 5, mac, (const uint8_t *)"relay-b", 7, t0));
  cr_assert_not(fed_mac_learn(fw, 5, mac, (const uint8_t *)"relay-b", 7, t0), "not new");
  id_is(fed_mac_find(fw, aging, 5, mac, t0 + aging), "relay-b");
  cr_assert_eq(fw->macs_expired, 0);
  /* older than the aging time: not used, forgotten, counted once */
  cr_assert_null(fed_mac_find(fw, aging, 5, mac, t0 + aging + 1), "a stale entry was used");
  cr_assert_eq(fw->macs_expired, 1);
  cr_assert_null(fed_mac_find(fw, aging, 5, mac, t0 + aging + 2));
  cr_assert_eq(fw->macs_expired, 1);
  /* C's frame: behind C, young again */
  cr_assert(fed_mac_learn(fw, 5, mac, (const uint8_t *)"relay-c", 7, t0 + 10 * S_NS));
  id_is(fed_mac_find(fw, aging, 5, mac, t0 + 11 * S_NS), "relay-c");
  free(fw->macs);
}

/* Every frame refreshes the entry: a MAC that keeps talking never ages;
 * another room's copy of the same MAC is another entry; aging 0 never
 * ages. */
Test(fed, remote_mac_refreshed_by_frames)
{
  struct fed_worker *fw = mac_worker();
  const uint64_t aging = 2 * S_NS, t0 = 50 * S_NS;
  const uint8_t mac[6] = {0x52, 0x54, 0, 0, 1, 9};
  for (uint64_t t = t0; t < t0 + 20 * S_NS; t += S_NS) {
    (void)fed_mac_learn(fw, 3, mac, (const uint8_t *)"b", 1, t);
    id_is(fed_mac_find(fw, aging, 3, mac, t + S_NS), "b");
  }
  cr_assert_null(fed_mac_find(fw, aging, 4, mac, t0 + 20 * S_NS), "another room");
  cr_assert_eq(fw->macs_expired, 0);
  id_is(fed_mac_find(fw, 0, 3, mac, t0 + 100000 * S_NS), "b");
  free(fw->macs);
}
