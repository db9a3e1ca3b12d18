#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/dns.h"

/* What `dig Example.COM A` sends: id 0x1234, RD and AD, one question, one
 * additional record (EDNS OPT, 1232-byte UDP payload). */
/* clang-format off */
static const uint8_t query[] = {
    0x12, 0x34, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    7, 'E', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'C', 'O', 'M', 0,
    0x00, 0x01, 0x00, 0x01,
    0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

/* An upstream answer to a 0x20-randomised copy of that query: question
 * "eXaMPlE.cOm", a CNAME and an A record whose names are compression
 * pointers back into the question. */
static const uint8_t answer[] = {
    0xbe, 0xef, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
    7, 'e', 'X', 'a', 'M', 'P', 'l', 'E', 3, 'c', 'O', 'm', 0,
    0x00, 0x01, 0x00, 0x01,
    /* example.com CNAME www.example.com */
    0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x06,
    3, 'w', 'w', 'w', 0xc0, 0x0c,
    /* www.example.com A 93.184.215.14 */
    0xc0, 0x29, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x04,
    93, 184, 215, 14,
};
/* clang-format on */

static const uint8_t example_com[] = {7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0};

/* Parses an exact-size heap copy, so an ASan build sees any overread. */
static int parse(const uint8_t *p, size_t len, struct dns_question *q)
{
  uint8_t *copy = malloc(len ? len : 1);
  cr_assert_not_null(copy);
  memcpy(copy, p, len);
  int rc = dns_parse_question(copy, len, q);
  free(copy);
  return rc;
}

/* A query with a 12-byte header (id 1, RD, qdcount 1) and the given QNAME in
 * wire form, type A, class IN. Returns the length. */
static size_t mkquery(uint8_t *b, const uint8_t *qname, size_t qlen)
{
  static const uint8_t hdr[12] = {0, 1, 1, 0, 0, 1};
  memcpy(b, hdr, sizeof(hdr));
  memcpy(b + 12, qname, qlen);
  memcpy(b + 12 + qlen, "\0\1\0\1", 4);
  return 12 + qlen + 4;
}

/* A wire-form name of labels of the given lengths, letters 'a'; returns
 * its length, final 0 included. */
static size_t mkname(uint8_t *out, const int *labels, size_t n)
{
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    out[off++] = (uint8_t)labels[i];
    memset(out + off, 'a', (size_t)labels[i]);
    off += (size_t)labels[i];
  }
  out[off++] = 0;
  return off;
}

Test(dns, real_query)
{
  struct dns_question q;

  cr_assert_eq(parse(query, sizeof(query), &q), 0);
  cr_assert_eq(q.id, 0x1234);
  cr_assert_eq(q.flags, 0x0120);
  cr_assert_eq(q.qdcount, 1);
  cr_assert_eq(q.ancount, 0);
  cr_assert_eq(q.qname_len, sizeof(example_com));
  cr_assert_arr_eq(q.qname, example_com, sizeof(example_com));
  cr_assert_eq(q.qtype, 1);
  cr_assert_eq(q.qclass, 1);
  cr_assert_eq(q.end, 29);
  cr_assert_not(dns_is_response(&q));
}

Test(dns, answer_with_pointers)
{
  struct dns_question q, a;

  cr_assert_eq(parse(answer, sizeof(answer), &a), 0);
  cr_assert_eq(a.id, 0xbeef);
  cr_assert_eq(a.flags, 0x8180);
  cr_assert_eq(a.ancount, 2);
  cr_assert_eq(a.end, 29);
  cr_assert(dns_is_response(&a));
  cr_assert_arr_eq(a.qname, example_com, sizeof(example_com));
  cr_assert_eq(parse(query, sizeof(query), &q), 0);
  cr_assert(dns_same_question(&q, &a));
  cr_assert(dns_same_question(&a, &q));
  cr_assert(dns_same_question(&q, &q));
}

Test(dns, different_questions)
{
  struct dns_question q, o;
  uint8_t b[sizeof(query)];

  cr_assert_eq(parse(query, sizeof(query), &q), 0);

  memcpy(b, query, sizeof(b));
  b[26] = 28; /* AAAA */
  cr_assert_eq(parse(b, sizeof(b), &o), 0);
  cr_assert_not(dns_same_question(&q, &o));

  memcpy(b, query, sizeof(b));
  b[28] = 3; /* class CH */
  cr_assert_eq(parse(b, sizeof(b), &o), 0);
  cr_assert_not(dns_same_question(&q, &o));

  memcpy(b, query, sizeof(b));
  b[23] = 'N'; /* example.CON */
  cr_assert_eq(parse(b, sizeof(b), &o), 0);
  cr_assert_not(dns_same_question(&q, &o));

  /* example.co: a prefix of the name is another name. */
  static const uint8_t co[] = {7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 2, 'c', 'o', 0};
  uint8_t b2[64];
  cr_assert_eq(parse(b2, mkquery(b2, co, sizeof(co)), &o), 0);
  cr_assert_not(dns_same_question(&q, &o));

  /* Only A-Z fold: '@' (0x40) and '`' (0x60) differ, as do 0xc1 and 0xe1. */
  static const uint8_t n1[] = {2, '@', 0xc1, 0};
  static const uint8_t n2[] = {2, '`', 0xe1, 0};
  static const uint8_t n3[] = {2, '@', 0xe1, 0};
  struct dns_question q1, q2, q3;
  cr_assert_eq(parse(b2, mkquery(b2, n1, sizeof(n1)), &q1), 0);
  cr_assert_eq(parse(b2, mkquery(b2, n2, sizeof(n2)), &q2), 0);
  cr_assert_eq(parse(b2, mkquery(b2, n3, sizeof(n3)), &q3), 0);
  cr_assert_arr_eq(q1.qname, n1, sizeof(n1));
  cr_assert_not(dns_same_question(&q1, &q2));
  cr_assert_not(dns_same_question(&q1, &q3));
  cr_assert_not(dns_same_question(&q2, &q3));
}

Test(dns, root_name)
{
  struct dns_question q;
  uint8_t b[32];
  static const uint8_t root[] = {0};

  cr_assert_eq(parse(b, mkquery(b, root, 1), &q), 0);
  cr_assert_eq(q.qname_len, 1);
  cr_assert_eq(q.qname[0], 0);
  cr_assert_eq(q.end, 17);
}

Test(dns, compressed_question_rejected)
{
  struct dns_question q;
  uint8_t b[64];
  static const uint8_t ptr[] = {0xc0, 0x0c};
  static const uint8_t www_ptr[] = {3, 'w', 'w', 'w', 0xc0, 0x0c};
  static const uint8_t ptr_max[] = {0xff, 0xff};

  cr_assert_eq(parse(b, mkquery(b, ptr, sizeof(ptr)), &q), -EINVAL);
  cr_assert_eq(parse(b, mkquery(b, www_ptr, sizeof(www_ptr)), &q), -EINVAL);
  cr_assert_eq(parse(b, mkquery(b, ptr_max, sizeof(ptr_max)), &q), -EINVAL);
}

Test(dns, label_lengths)
{
  struct dns_question q;
  uint8_t name[300], b[400];
  size_t n;

  n = mkname(name, (int[]){63}, 1);
  cr_assert_eq(parse(b, mkquery(b, name, n), &q), 0);
  cr_assert_eq(q.qname_len, 65);
  /* 64..191: reserved label types (0x40 extended, 0x80 unassigned). */
  const int bad[] = {64, 65, 127, 128, 191};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    n = mkname(name, &bad[i], 1);
    cr_assert_eq(parse(b, mkquery(b, name, n), &q), -EINVAL, "label %d", bad[i]);
  }
}

Test(dns, name_length_limit)
{
  struct dns_question q;
  uint8_t name[300], b[400];
  size_t n;

  /* 63+63+63+61: 255 bytes on the wire with the final 0, the maximum. */
  n = mkname(name, (int[]){63, 63, 63, 61}, 4);
  cr_assert_eq(n, 255);
  cr_assert_eq(parse(b, mkquery(b, name, n), &q), 0);
  cr_assert_eq(q.qname_len, 255);
  cr_assert_arr_eq(q.qname, name, 255);
  cr_assert_eq(q.end, 12 + 255 + 4);

  n = mkname(name, (int[]){63, 63, 63, 62}, 4);
  cr_assert_eq(n, 256);
  cr_assert_eq(parse(b, mkquery(b, name, n), &q), -EINVAL);
  n = mkname(name, (int[]){63, 63, 63, 63}, 4);
  cr_assert_eq(parse(b, mkquery(b, name, n), &q), -EINVAL);
  /* Many one-letter labels: 127 of them is 255 bytes, 128 is too many. */
  int ones[128];
  for (int i = 0; i < 128; i++)
    ones[i] = 1;
  n = mkname(name, ones, 127);
  cr_assert_eq(parse(b, mkquery(b, name, n), &q), 0);
  cr_assert_eq(q.qname_len, 255);
  n = mkname(name, ones, 128);
  cr_assert_eq(parse(b, mkquery(b, name, n), &q), -EINVAL);
}

Test(dns, truncated)
{
  struct dns_question q;

  for (size_t n = 0; n < 29; n++)
    cr_assert_eq(parse(query, n, &q), -EINVAL, "len %zu", n);
  cr_assert_eq(parse(query, 29, &q), 0);
  cr_assert_eq(q.end, 29);
  cr_assert_eq(dns_parse_question(NULL, 0, &q), -EINVAL);
  cr_assert_eq(dns_parse_question(NULL, 100, &q), -EINVAL);
}

Test(dns, qdcount_zero)
{
  struct dns_question q;
  uint8_t b[sizeof(query)];

  memcpy(b, query, sizeof(b));
  b[4] = 0;
  b[5] = 0;
  cr_assert_eq(parse(b, sizeof(b), &q), -EINVAL);
  /* Header alone with qdcount 0 (e.g. a NOTIMP reply): same. */
  cr_assert_eq(parse(b, DNS_HDR_LEN, &q), -EINVAL);
  b[4] = 0x01; /* qdcount 256: only the first question is read */
  cr_assert_eq(parse(b, sizeof(b), &q), 0);
  cr_assert_eq(q.qdcount, 256);
}

Test(dns, id_get_set)
{
  uint8_t b[sizeof(answer)];
  struct dns_question q;

  memcpy(b, answer, sizeof(b));
  cr_assert_eq(dns_get_id(b), 0xbeef);
  dns_set_id(b, 0x1234);
  cr_assert_eq(b[0], 0x12);
  cr_assert_eq(b[1], 0x34);
  cr_assert_eq(dns_get_id(b), 0x1234);
  cr_assert_arr_eq(b + 2, answer + 2, sizeof(b) - 2);
  cr_assert_eq(parse(b, sizeof(b), &q), 0);
  cr_assert_eq(q.id, 0x1234);
  dns_set_id(b, 0);
  cr_assert_eq(dns_get_id(b), 0);
  dns_set_id(b, 0xffff);
  cr_assert_eq(dns_get_id(b), 0xffff);
  uint8_t two[2];
  dns_set_id(two, 0xa55a);
  cr_assert_eq(dns_get_id(two), 0xa55a);
}

Test(dns, is_response)
{
  struct dns_question q;
  uint8_t b[sizeof(query)];

  memcpy(b, query, sizeof(b));
  cr_assert_eq(parse(b, sizeof(b), &q), 0);
  cr_assert_not(dns_is_response(&q));
  b[2] |= 0x80;
  cr_assert_eq(parse(b, sizeof(b), &q), 0);
  cr_assert(dns_is_response(&q));
  /* Other flag bits do not count. */
  b[2] = 0x7f;
  b[3] = 0xff;
  cr_assert_eq(parse(b, sizeof(b), &q), 0);
  cr_assert_not(dns_is_response(&q));
}
