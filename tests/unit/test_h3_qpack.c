/*
 * Unit tests for h3_qpack.c: request/response field sections through
 * nghttp3's QPACK codec, and our validation of them.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp3/nghttp3.h>

#include "wtrelay/h3_qpack.h"
#include "wtrelay/memcount.h"

/* Encodes arbitrary name/value pairs (static table only) with nghttp3
 * directly, to build inputs our own encoders would never produce. */
static size_t encode_raw(uint8_t *out, size_t cap, const char *const *pairs, size_t npairs)
{
  const nghttp3_mem *mem = nghttp3_mem_default();
  nghttp3_qpack_encoder *enc;
  nghttp3_nv nva[32];
  nghttp3_buf p, r, e;
  size_t len;

  cr_assert_leq(npairs, 32);
  for (size_t i = 0; i < npairs; i++) {
    const char *n = pairs[2 * i], *v = pairs[2 * i + 1];
    nva[i] = (nghttp3_nv){(uint8_t *)(uintptr_t)n, (uint8_t *)(uintptr_t)v, strlen(n), strlen(v),
                          NGHTTP3_NV_FLAG_NONE};
  }
  cr_assert_eq(nghttp3_qpack_encoder_new(&enc, 0, mem), 0);
  nghttp3_buf_init(&p);
  nghttp3_buf_init(&r);
  nghttp3_buf_init(&e);
  cr_assert_eq(nghttp3_qpack_encoder_encode(enc, &p, &r, &e, 0, nva, npairs), 0);
  cr_assert_eq(nghttp3_buf_len(&e), 0);
  len = nghttp3_buf_len(&p) + nghttp3_buf_len(&r);
  cr_assert_leq(len, cap);
  memcpy(out, p.pos, nghttp3_buf_len(&p));
  memcpy(out + nghttp3_buf_len(&p), r.pos, nghttp3_buf_len(&r));
  nghttp3_buf_free(&p, mem);
  nghttp3_buf_free(&r, mem);
  nghttp3_buf_free(&e, mem);
  nghttp3_qpack_encoder_del(enc);
  return len;
}

#define ENC(buf, ...)                                                                              \
  encode_raw(buf, sizeof(buf), (const char *const[]){__VA_ARGS__},                                 \
             sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *) / 2)

static int decode_pairs_req(const char *const *pairs, size_t n, struct h3_request *req)
{
  uint8_t b[8192];
  size_t len = encode_raw(b, sizeof(b), pairs, n);
  return h3_qpack_decode_request(NULL, b, len, req);
}

#define DEC_REQ(req, ...)                                                                          \
  decode_pairs_req((const char *const[]){__VA_ARGS__},                                             \
                   sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *) / 2, req)

/* Chromium's CONNECT (protocol.md section 2), hand-encoded with the static
 * table and plain literals, independent of nghttp3's encoder. */
static const uint8_t chromium_connect[] = {
    0x00, 0x00, /* RIC 0, base 0 */
    0xd7,       /* :scheme https (23) */
    0xcf,       /* :method CONNECT (15) */
    0x50, 0x0e, '1', '2', '7', '.', '0', '.', '0', '.', '1', ':',  '4', '4',  '3',  '3', 0x51,
    0x07, '/',  'w', 't', '?', 'x', '=', '1',                /* :path (1) */
    0x27, 0x02, ':', 'p', 'r', 'o', 't', 'o', 'c', 'o', 'l', /* literal name */
    0x0c, 'w',  'e', 'b', 't', 'r', 'a', 'n', 's', 'p', 'o', 'r',  't', 0x27, 0x17, 's', 'e',
    'c',  '-',  'w', 'e', 'b', 't', 'r', 'a', 'n', 's', 'p', 'o',  'r', 't',  '-',  'h', 't',
    't',  'p',  '3', '-', 'd', 'r', 'a', 'f', 't', '0', '2', 0x01, '1', 0x5f, 0x4b, /* origin (90)
                                                                                     */
    0x15, 'h',  't', 't', 'p', ':', '/', '/', '1', '2', '7', '.',  '0', '.',  '0',  '.', '1',
    ':',  '8',  '0', '0', '0',
};

Test(h3_qpack, chromium_connect_request)
{
  struct h3_request req;

  cr_assert_eq(h3_qpack_decode_request(NULL, chromium_connect, sizeof(chromium_connect), &req), 0);
  cr_assert_str_eq(req.method, "CONNECT");
  cr_assert_str_eq(req.scheme, "https");
  cr_assert_str_eq(req.authority, "127.0.0.1:4433");
  cr_assert_str_eq(req.path, "/wt?x=1");
  cr_assert(req.has_protocol);
  cr_assert_str_eq(req.protocol, "webtransport");
  cr_assert(req.has_origin);
  cr_assert_str_eq(req.origin, "http://127.0.0.1:8000");
  cr_assert(req.wt_draft02);

  /* A prefix that ends inside a field line is a QPACK error; one that ends
   * between lines before :protocol is complete lacks pseudo-headers; after
   * it (53: + draft02, 87: + origin) it is a shorter valid request. */
  cr_assert_eq(sizeof(chromium_connect), 111);
  for (size_t n = 0; n < sizeof(chromium_connect); n++) {
    int rv = h3_qpack_decode_request(NULL, chromium_connect, n, &req);
    bool boundary = n == 2 || n == 3 || n == 4 || n == 20 || n == 29 || n == 53 || n == 87;
    int want = n >= 53 && boundary ? 0 : boundary ? -EINVAL : -EPROTO;
    cr_assert_eq(rv, want, "prefix %zu: %d", n, rv);
  }
}

/* The state is made on use and given back by fini; q works again after. */
Test(h3_qpack, state_made_on_use_and_released)
{
  struct memcount mc = {0};
  nghttp3_mem mem = MEMCOUNT_HOOKS(&mc);
  struct h3_qpack q;
  struct h3_request req;
  uint8_t b[2048];
  cr_assert_eq(h3_qpack_init(&q, &mem), 0);
  cr_assert_eq(mc.blocks, 0, "nothing before the first header block");
  for (int round = 0; round < 2; round++) {
    int n = h3_qpack_encode_connect_request(&q, b, sizeof(b), "a:1", "/r", NULL);
    cr_assert_gt(n, 0);
    cr_assert_eq(h3_qpack_decode_request(&q, b, (size_t)n, &req), 0);
    cr_assert_str_eq(req.path, "/r");
    cr_assert_gt(mc.bytes, 0);
    h3_qpack_fini(&q);
    cr_assert_eq(mc.bytes, 0, "round %d: all given back", round);
    cr_assert_eq(mc.blocks, 0);
  }
  const uint8_t set_capacity_0 = 0x20;
  cr_assert_eq(h3_qpack_read_encoder_stream(&q, &set_capacity_0, 1), 0);
  h3_qpack_fini(&q);
  cr_assert_eq(mc.blocks, 0);
}

Test(h3_qpack, connect_request_roundtrip)
{
  struct h3_qpack q;
  struct h3_request req;
  uint8_t b[2048];
  int n;

  cr_assert_eq(h3_qpack_init(&q, NULL), 0);
  for (int pass = 0; pass < 2; pass++) {
    struct h3_qpack *qp = pass ? &q : NULL;
    n = h3_qpack_encode_connect_request(qp, b, sizeof(b), "relay.example:4433", "/room/1?token=abc",
                                        "https://vm.example");
    cr_assert_gt(n, 0);
    cr_assert_eq(h3_qpack_decode_request(qp, b, (size_t)n, &req), 0);
    cr_assert_str_eq(req.method, "CONNECT");
    cr_assert_str_eq(req.scheme, "https");
    cr_assert_str_eq(req.authority, "relay.example:4433");
    cr_assert_str_eq(req.path, "/room/1?token=abc");
    cr_assert_str_eq(req.protocol, "webtransport");
    cr_assert_str_eq(req.origin, "https://vm.example");
    cr_assert(req.has_method && req.has_scheme && req.has_authority && req.has_path);
    cr_assert(req.wt_draft02);
  }
  /* no origin */
  n = h3_qpack_encode_connect_request(&q, b, sizeof(b), "a:1", "/", NULL);
  cr_assert_gt(n, 0);
  cr_assert_eq(h3_qpack_decode_request(&q, b, (size_t)n, &req), 0);
  cr_assert_not(req.has_origin);
  /* argument checks */
  cr_assert_eq(h3_qpack_encode_connect_request(&q, b, sizeof(b), "", "/", NULL), -EINVAL);
  cr_assert_eq(h3_qpack_encode_connect_request(&q, b, sizeof(b), "a", "x", NULL), -EINVAL);
  cr_assert_eq(h3_qpack_encode_connect_request(&q, b, sizeof(b), "a", NULL, NULL), -EINVAL);
  cr_assert_eq(h3_qpack_encode_connect_request(&q, b, sizeof(b), "a\r\nx: y", "/", NULL), -EINVAL);
  cr_assert_eq(h3_qpack_encode_connect_request(&q, b, 10, "a:1", "/", NULL), -ENOSPC);
  h3_qpack_fini(&q);
  h3_qpack_fini(&q); /* idempotent */
}

Test(h3_qpack, response_roundtrip)
{
  struct h3_qpack q;
  uint8_t b[256];
  int n, status = 0;

  cr_assert_eq(h3_qpack_init(&q, NULL), 0);
  n = h3_qpack_encode_response(&q, b, sizeof(b), 200, false);
  cr_assert_gt(n, 0);
  /* static-table :status 200 is index 25: 00 00 d9 */
  cr_assert_eq(n, 3);
  cr_assert_eq(b[2], 0xd9);
  cr_assert_eq(h3_qpack_decode_response_status(&q, b, (size_t)n, &status), 0);
  cr_assert_eq(status, 200);

  n = h3_qpack_encode_response(&q, b, sizeof(b), 200, true);
  cr_assert_gt(n, 3);
  status = 0;
  cr_assert_eq(h3_qpack_decode_response_status(NULL, b, (size_t)n, &status), 0);
  cr_assert_eq(status, 200);

  n = h3_qpack_encode_response(NULL, b, sizeof(b), 429, false);
  cr_assert_gt(n, 0);
  cr_assert_eq(h3_qpack_decode_response_status(&q, b, (size_t)n, &status), 0);
  cr_assert_eq(status, 429);

  cr_assert_eq(h3_qpack_encode_response(&q, b, sizeof(b), 99, false), -EINVAL);
  cr_assert_eq(h3_qpack_encode_response(&q, b, sizeof(b), 600, false), -EINVAL);
  cr_assert_eq(h3_qpack_encode_response(&q, b, 2, 200, false), -ENOSPC);
  h3_qpack_fini(&q);
}

Test(h3_qpack, response_validation)
{
  uint8_t b[512];
  size_t len;
  int status;

  len = ENC(b, "server", "x");
  cr_assert_eq(h3_qpack_decode_response_status(NULL, b, len, &status), -EINVAL, "no :status");
  len = ENC(b, ":status", "20");
  cr_assert_eq(h3_qpack_decode_response_status(NULL, b, len, &status), -EINVAL);
  len = ENC(b, ":status", "2x0");
  cr_assert_eq(h3_qpack_decode_response_status(NULL, b, len, &status), -EINVAL);
  len = ENC(b, ":status", "200", ":status", "200");
  cr_assert_eq(h3_qpack_decode_response_status(NULL, b, len, &status), -EINVAL);
  len = ENC(b, ":status", "200", ":path", "/");
  cr_assert_eq(h3_qpack_decode_response_status(NULL, b, len, &status), -EINVAL);
  len = ENC(b, "server", "x", ":status", "200");
  cr_assert_eq(h3_qpack_decode_response_status(NULL, b, len, &status), -EINVAL, "pseudo last");
  len = ENC(b, ":status", "200", "Server", "x");
  cr_assert_eq(h3_qpack_decode_response_status(NULL, b, len, &status), -EINVAL, "uppercase");
  len = ENC(b, ":status", "103", "sec-webtransport-http3-draft", "draft02");
  cr_assert_eq(h3_qpack_decode_response_status(NULL, b, len, &status), 0);
  cr_assert_eq(status, 103);
}

Test(h3_qpack, firefox_like_request_extra_fields_ignored)
{
  struct h3_request req;

  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority",
                       "127.0.0.1:4433", ":path", "/wt", ":protocol", "webtransport", "user-agent",
                       "Mozilla/5.0 (X11; Linux x86_64; rv:153.0) Firefox/153.0", "accept", "*/*",
                       "sec-fetch-dest", "webtransport", "sec-fetch-mode", "cors", "priority",
                       "u=4", "pragma", "no-cache", "cache-control", "no-cache", "origin",
                       "http://127.0.0.1:8000", "te", "trailers"),
               0);
  cr_assert_str_eq(req.protocol, "webtransport");
  cr_assert_str_eq(req.origin, "http://127.0.0.1:8000");
  cr_assert_not(req.wt_draft02);
}

Test(h3_qpack, missing_pseudo_headers)
{
  struct h3_request req;

  cr_assert_eq(
      DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a", ":path", "/wt"),
      -EINVAL, "missing :protocol (CONNECT with :scheme/:path)");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":path", "/wt", ":protocol",
                       "webtransport"),
               -EINVAL, "missing :authority");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a",
                       ":protocol", "webtransport"),
               -EINVAL, "missing :path");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":authority", "a", ":path", "/", ":protocol",
                       "webtransport"),
               -EINVAL, "missing :scheme");
  cr_assert_eq(DEC_REQ(&req, ":scheme", "https", ":authority", "a", ":path", "/", ":protocol",
                       "webtransport"),
               -EINVAL, "missing :method");
  cr_assert_eq(DEC_REQ(&req, ":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/",
                       ":protocol", "webtransport"),
               -EINVAL, ":protocol needs CONNECT");
  cr_assert_eq(DEC_REQ(&req, ":method", "GET", ":authority", "a"), -EINVAL, "GET needs :path");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a", ":path",
                       "", ":protocol", "webtransport"),
               -EINVAL, "empty :path");
  cr_assert_eq(h3_qpack_decode_request(NULL, (const uint8_t *)"\x00\x00", 2, &req), -EINVAL,
               "empty section");
}

Test(h3_qpack, other_well_formed_requests)
{
  struct h3_request req;

  cr_assert_eq(DEC_REQ(&req, ":method", "GET", ":scheme", "https", ":authority", "a", ":path",
                       "/index.html"),
               0);
  cr_assert_not(req.has_protocol);
  cr_assert_str_eq(req.method, "GET");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":authority", "example.com:443"), 0,
               "classic CONNECT");
  cr_assert_not(req.has_path);
}

Test(h3_qpack, malformed_fields)
{
  struct h3_request req;
  static char longpath[1100];

  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":method", "CONNECT", ":scheme", "https",
                       ":authority", "a", ":path", "/", ":protocol", "webtransport"),
               -EINVAL, "duplicated :method");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a", ":path",
                       "/", ":protocol", "webtransport", ":protocol", "webtransport"),
               -EINVAL, "duplicated :protocol");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a", ":path",
                       "/", ":protocol", "webtransport", "Origin", "http://x"),
               -EINVAL, "uppercase name");
  cr_assert_eq(DEC_REQ(&req, ":Method", "CONNECT", ":scheme", "https", ":authority", "a", ":path",
                       "/", ":protocol", "webtransport"),
               -EINVAL, "uppercase pseudo name");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a", "origin",
                       "http://x", ":path", "/", ":protocol", "webtransport"),
               -EINVAL, "pseudo after regular");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a", ":path",
                       "/", ":protocol", "webtransport", ":foo", "x"),
               -EINVAL, "unknown pseudo");
  cr_assert_eq(DEC_REQ(&req, ":status", "200", ":method", "GET", ":scheme", "https", ":path", "/"),
               -EINVAL, ":status in request");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a", ":path",
                       "/", ":protocol", "webtransport", "origin", "http://x", "origin",
                       "http://y"),
               -EINVAL, "two origins");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a", ":path",
                       "/", ":protocol", "webtransport", "x-a", "b\r\nc"),
               -EINVAL, "CR/LF in a value");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", " a", ":path",
                       "/", ":protocol", "webtransport"),
               -EINVAL, "whitespace around a value we use");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a", ":path",
                       "/", ":protocol", "webtransport", "connection", "close"),
               -EINVAL, "connection-specific field");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a", ":path",
                       "/", ":protocol", "webtransport", "bad name", "x"),
               -EINVAL, "space in a name");
  cr_assert_eq(DEC_REQ(&req, ":method", "CON NECT", ":authority", "a"), -EINVAL, "bad method");

  /* over-long values: path[1024] holds 1023 characters */
  longpath[0] = '/';
  memset(longpath + 1, 'p', 1022);
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a", ":path",
                       longpath, ":protocol", "webtransport"),
               0);
  cr_assert_eq(strlen(req.path), 1023);
  longpath[1023] = 'p';
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECT", ":scheme", "https", ":authority", "a", ":path",
                       longpath, ":protocol", "webtransport"),
               -EINVAL, "1024-byte :path");
  cr_assert_eq(DEC_REQ(&req, ":method", "CONNECTCONNECTCON", ":authority", "a"), -EINVAL,
               "17-byte :method");
}

Test(h3_qpack, bad_bytes_rejected_without_crash)
{
  static const uint8_t cases[][8] = {
      {0xff},                                     /* prefix varint runs off */
      {0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff}, /* index overflows */
      {0x00, 0x00, 0xc0 | 60},                    /* static index 60 */
      {0x00, 0x00, 0xff, 0x45},                   /* static index 63+69=132 > 98 */
      {0x02, 0x00, 0xd1},                         /* needs a dynamic table */
      {0x00, 0x00, 0x80},                         /* dynamic index */
      {0x00, 0x00, 0x10},                         /* post-base index */
      {0x00, 0x00, 0x2f, 0xff, 0xff, 0xff},       /* literal name too long */
  };
  struct h3_request req;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int rv = h3_qpack_decode_request(NULL, cases[i], sizeof(cases[i]), &req);
    cr_assert_eq(rv, -EPROTO, "case %zu: %d", i, rv);
  }
  cr_assert_eq(h3_qpack_decode_request(NULL, NULL, 0, &req), -EPROTO, "nothing at all");

  /* random bytes: only the return value is checked, under ASan in CI */
  srand(1);
  for (int i = 0; i < 2000; i++) {
    uint8_t b[64];
    size_t len = (size_t)(rand() % (int)sizeof(b));
    int status;
    for (size_t k = 0; k < len; k++)
      b[k] = (uint8_t)rand();
    if (i % 2)
      b[0] = b[1] = 0; /* valid prefix, random lines */
    int rv = h3_qpack_decode_request(NULL, b, len, &req);
    cr_assert(rv == 0 || rv == -EINVAL || rv == -EPROTO, "rv %d", rv);
    rv = h3_qpack_decode_response_status(NULL, b, len, &status);
    cr_assert(rv == 0 || rv == -EINVAL || rv == -EPROTO, "rv %d", rv);
  }
}

Test(h3_qpack, connection_decoder_fails_for_good_after_qpack_error)
{
  static const uint8_t bad[] = {0x00, 0x00, 0x80};
  struct h3_qpack q;
  struct h3_request req;

  cr_assert_eq(h3_qpack_init(&q, NULL), 0);
  cr_assert_eq(h3_qpack_decode_request(&q, chromium_connect, sizeof(chromium_connect), &req), 0);
  /* a malformed request (-EINVAL) does not poison the decoder */
  uint8_t b[256];
  size_t len = ENC(b, ":method", "GET");
  cr_assert_eq(h3_qpack_decode_request(&q, b, len, &req), -EINVAL);
  cr_assert_eq(h3_qpack_decode_request(&q, chromium_connect, sizeof(chromium_connect), &req), 0);
  /* a QPACK error does: the connection is closing anyway */
  cr_assert_eq(h3_qpack_decode_request(&q, bad, sizeof(bad), &req), -EPROTO);
  cr_assert_eq(h3_qpack_decode_request(&q, chromium_connect, sizeof(chromium_connect), &req),
               -EPROTO);
  h3_qpack_fini(&q);
}

Test(h3_qpack, encoder_stream_input)
{
  struct h3_qpack q;
  static const uint8_t set_cap0[] = {0x20};
  static const uint8_t set_cap4096[] = {0x3f, 0xe1, 0x1f};
  static const uint8_t insert[] = {0xc0 | 0x0f, 0x01, 'x'}; /* insert with static name ref */

  cr_assert_eq(h3_qpack_init(&q, NULL), 0);
  cr_assert_eq(h3_qpack_read_encoder_stream(&q, set_cap0, sizeof(set_cap0)), 0);
  cr_assert_eq(h3_qpack_read_encoder_stream(&q, NULL, 0), 0);
  cr_assert_eq(h3_qpack_read_encoder_stream(&q, set_cap4096, sizeof(set_cap4096)), -EPROTO);
  h3_qpack_fini(&q);

  cr_assert_eq(h3_qpack_init(&q, NULL), 0);
  cr_assert_eq(h3_qpack_read_encoder_stream(&q, insert, sizeof(insert)), -EPROTO);
  h3_qpack_fini(&q);
}
