/*
 * test_http1: the HTTP/1.1 request head parser: a valid head's parts,
 * and every malformation that a lenient parser could read differently
 * refused.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/http1.h"

static int parse(const char *s, struct http1_req *r)
{
  size_t n = strlen(s);
  cr_assert_eq(http1_head_len((const uint8_t *)s, n), n, "not one whole head: %s", s);
  return http1_parse((const uint8_t *)s, n, r);
}

Test(http1, head_length)
{
  const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\nextra";
  cr_assert_eq(http1_head_len((const uint8_t *)s, strlen(s)), strlen(s) - 5);
  cr_assert_eq(http1_head_len((const uint8_t *)s, 20), 0, "incomplete");
  cr_assert_eq(http1_head_len((const uint8_t *)"\r\n\r", 3), 0);
}

Test(http1, parts_and_fields)
{
  struct http1_req r;
  cr_assert_eq(parse("GET /lab?token=x HTTP/1.1\r\nHost: relay\r\nUpgrade:websocket\r\n"
                     "Connection:  keep-alive, Upgrade \t\r\nX-Empty:\r\n\r\n",
                     &r),
               0);
  cr_assert(http1_str_ieq(r.method, "GET"));
  cr_assert_eq(r.target.len, 12);
  cr_assert_eq(memcmp(r.target.p, "/lab?token=x", 12), 0);
  cr_assert_eq(r.minor, 1);
  cr_assert_eq(r.nf, 4);
  struct http1_str v;
  cr_assert_eq(http1_field(&r, "HOST", &v), 1);
  cr_assert(http1_str_ieq(v, "relay"));
  cr_assert_eq(http1_field(&r, "connection", &v), 1);
  cr_assert(http1_list_has(v, "upgrade"), "list element with blanks around it");
  cr_assert(http1_list_has(v, "keep-alive"));
  cr_assert_not(http1_list_has(v, "close"));
  cr_assert_not(http1_list_has(v, "upgrad"));
  cr_assert_eq(http1_field(&r, "x-empty", &v), 1);
  cr_assert_eq(v.len, 0);
  cr_assert_eq(http1_field(&r, "origin", &v), 0);
}

Test(http1, duplicate_field)
{
  struct http1_req r;
  cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", &r), 0);
  struct http1_str v;
  cr_assert_eq(http1_field(&r, "host", &v), -EEXIST);
}

Test(http1, malformed_refused)
{
  static const char *bad[] = {
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n",      /* blank before the colon */
      "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", /* obsolete folding */
      "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", /* bare LF */
      "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", /* bare CR */
      "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",   /* control byte in a value */
      "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n",      /* not a token */
      "GET / HTTP/1.1\r\nNoColon\r\n\r\n",       /* no colon */
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",      /* two spaces */
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",       /* version */
      "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",      /* trailing blank */
      "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n",  /* DEL in the target */
      "GE\"T / HTTP/1.1\r\nHost: a\r\n\r\n",     /* method not a token */
      "GET HTTP/1.1\r\nHost: a\r\n\r\n",         /* no target */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct http1_req r;
    cr_assert_eq(parse(bad[i], &r), -EINVAL, "accepted #%zu", i);
  }
}

Test(http1, too_many_fields)
{
  char s[2048] = "GET / HTTP/1.1\r\n";
  for (int i = 0; i <= HTTP1_MAX_HEADERS; i++)
    snprintf(s + strlen(s), sizeof(s) - strlen(s), "X-%d: v\r\n", i);
  strcat(s, "\r\n");
  struct http1_req r;
  cr_assert_eq(parse(s, &r), -E2BIG);
}
