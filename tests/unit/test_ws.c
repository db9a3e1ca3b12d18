/*
 * test_ws: the WebSocket opening handshake (RFC 6455's own example key,
 * every refusal) and a connection's messages through wslay, fed with
 * frames a browser would send (masked) split anywhere: whole binary
 * messages delivered once, pings answered, text and oversized messages
 * closed with their codes, the send queue bounded, output bounded by the
 * caller's buffer, the close handshake.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "wtrelay/ws.h"

static int check(const char *req, struct ws_upgrade *u)
{
  struct http1_req r;
  cr_assert_eq(http1_parse((const uint8_t *)req, strlen(req), &r), 0, "%s", req);
  return ws_upgrade_check(&r, u);
}

#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define BASE "Host: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"

Test(ws_upgrade, rfc6455_example_and_subprotocol)
{
  struct ws_upgrade u;
  cr_assert_eq(check("GET /lab?t=1 HTTP/1.1\r\n" BASE KEY "Sec-WebSocket-Version: 13\r\n"
                     "Origin: https://vm.example\r\nSec-WebSocket-Protocol: chat\r\n"
                     "Sec-WebSocket-Protocol: x, bavy\r\n\r\n",
                     &u),
               0);
  cr_assert_str_eq(u.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  cr_assert(u.bavy);
  cr_assert_eq(u.target.len, 8);
  cr_assert_eq(u.origin.len, 18);
  char out[512];
  int n = ws_upgrade_response(out, sizeof(out), &u);
  cr_assert_gt(n, 0);
  cr_assert(strstr(out, "HTTP/1.1 101 ") == out);
  cr_assert(strstr(out, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  cr_assert(strstr(out, "Sec-WebSocket-Protocol: bavy\r\n"));
  cr_assert(strcmp(out + n - 4, "\r\n\r\n") == 0);
  cr_assert_eq(ws_upgrade_response(out, 40, &u), -ENOSPC);
  /* not offered: not answered */
  cr_assert_eq(check("GET / HTTP/1.1\r\n" BASE KEY "Sec-WebSocket-Version: 13\r\n\r\n", &u), 0);
  cr_assert_not(u.bavy);
  ws_upgrade_response(out, sizeof(out), &u);
  cr_assert_null(strstr(out, "Sec-WebSocket-Protocol"));
}

Test(ws_upgrade, refusals)
{
  struct ws_upgrade u;
  cr_assert_eq(check("POST / HTTP/1.1\r\n" BASE KEY "Sec-WebSocket-Version: 13\r\n\r\n", &u), 405);
  cr_assert_eq(check("GET / HTTP/1.0\r\n" BASE KEY "Sec-WebSocket-Version: 13\r\n\r\n", &u), 400);
  cr_assert_eq(check("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n" KEY
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     &u),
               400, "no Upgrade");
  cr_assert_eq(check("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: close\r\n" KEY
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     &u),
               400, "Connection without upgrade");
  cr_assert_eq(check("GET / HTTP/1.1\r\n" BASE "Sec-WebSocket-Key: c2hvcnQ=\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     &u),
               400, "a key that is not 16 bytes");
  cr_assert_eq(check("GET / HTTP/1.1\r\n" BASE KEY KEY "Sec-WebSocket-Version: 13\r\n\r\n", &u),
               400, "two keys");
  cr_assert_eq(check("GET / HTTP/1.1\r\n" BASE KEY "Sec-WebSocket-Version: 8\r\n\r\n", &u), 426);
  cr_assert_eq(check("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" KEY
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     &u),
               400, "no Host");
  char out[512];
  int n = ws_refusal(out, sizeof(out), 426, "use version 13");
  cr_assert_gt(n, 0);
  cr_assert(strstr(out, "HTTP/1.1 426 Upgrade Required\r\n") == out);
  cr_assert(strstr(out, "Sec-WebSocket-Version: 13\r\n"));
  cr_assert(strstr(out, "Connection: close\r\n"));
  cr_assert(strstr(out, "Content-Length: 15\r\n"));
  cr_assert(strcmp(out + n - 19, "\r\n\r\nuse version 13\n") == 0);
}

/* ---- a connection ---- */

static uint8_t got[8][2048];
static size_t got_len[8];
static int ngot;

static void on_message(void *ctx, const uint8_t *d, size_t len)
{
  (void)ctx;
  cr_assert_lt(ngot, 8);
  cr_assert_leq(len, sizeof(got[0]));
  memcpy(got[ngot], d, len);
  got_len[ngot++] = len;
}

static const struct ws_conn_ops OPS = {.on_message = on_message};

/* A client frame (masked, final) of opcode op carrying len bytes. */
static size_t client_frame(uint8_t *out, uint8_t op, const uint8_t *data, size_t len, bool mask)
{
  static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
  size_t n = 0;
  out[n++] = (uint8_t)(0x80 | op);
  uint8_t m = mask ? 0x80 : 0;
  if (len < 126) {
    out[n++] = (uint8_t)(m | len);
  } else {
    out[n++] = m | 126;
    out[n++] = (uint8_t)(len >> 8);
    out[n++] = (uint8_t)len;
  }
  if (mask) {
    memcpy(out + n, key, 4);
    n += 4;
  }
  for (size_t i = 0; i < len; i++)
    out[n + i] = mask ? data[i] ^ key[i % 4] : data[i];
  return n + len;
}

static struct ws_conn c;

static void conn_start(size_t max_msg, size_t max_queue)
{
  ngot = 0;
  struct ws_conn_params p = {.max_msg = max_msg, .max_queue = max_queue};
  cr_assert_eq(ws_conn_init(&c, &p, &OPS, NULL), 0);
}

/* The close frame in out[0..n): its code. */
static uint16_t close_code(const uint8_t *out, size_t n)
{
  for (size_t i = 0; i + 4 <= n;) {
    uint8_t op = out[i] & 0x0f;
    size_t len = out[i + 1] & 0x7f;
    cr_assert_lt(len, 126);
    if (op == 0x8)
      return (uint16_t)(out[i + 2] << 8 | out[i + 3]);
    i += 2 + len;
  }
  return 0;
}

Test(ws_conn, frames_split_anywhere_delivered_whole)
{
  conn_start(1515, 1 << 16);
  uint8_t frame[1514], wire[4096];
  for (size_t i = 0; i < sizeof(frame); i++)
    frame[i] = (uint8_t)(i * 7);
  size_t n = client_frame(wire, 0x2, frame, sizeof(frame), true);
  n += client_frame(wire + n, 0x2, (const uint8_t *)"\x01hi", 3, true);
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(ws_conn_input(&c, wire + i, 1), 0);
  cr_assert_eq(ngot, 2);
  cr_assert_eq(got_len[0], 1514);
  cr_assert_eq(memcmp(got[0], frame, 1514), 0);
  cr_assert_eq(got_len[1], 3);
  cr_assert_eq(c.ctr.msgs_in, 2);
  /* both again in one input */
  ngot = 0;
  cr_assert_eq(ws_conn_input(&c, wire, n), 0);
  cr_assert_eq(ngot, 2);
  ws_conn_fini(&c);
}

Test(ws_conn, ping_answered_with_pong)
{
  conn_start(1515, 1 << 16);
  uint8_t wire[64], out[64];
  size_t n = client_frame(wire, 0x9, (const uint8_t *)"abc", 3, true);
  cr_assert_eq(ws_conn_input(&c, wire, n), 0);
  cr_assert_eq(c.ctr.pings, 1);
  size_t o = ws_conn_output(&c, out, sizeof(out));
  cr_assert_eq(o, 5);
  cr_assert_eq(out[0], 0x8a, "not a pong");
  cr_assert_eq(out[1], 3, "a server frame is not masked");
  cr_assert_eq(memcmp(out + 2, "abc", 3), 0);
  ws_conn_fini(&c);
}

Test(ws_conn, text_oversized_unmasked_closed_with_their_codes)
{
  uint8_t wire[4096], out[256], big[1600] = {0};
  struct {
    uint8_t op;
    size_t len;
    bool mask;
    uint16_t code;
  } cases[] = {{0x1, 3, true, 1003}, {0x2, 1600, true, 1009}, {0x2, 3, false, 1002}};
  for (size_t k = 0; k < 3; k++) {
    conn_start(1515, 1 << 16);
    size_t n = client_frame(wire, cases[k].op, big, cases[k].len, cases[k].mask);
    ws_conn_input(&c, wire, n);
    cr_assert_eq(ngot, 0, "case %zu delivered", k);
    size_t o = ws_conn_output(&c, out, sizeof(out));
    cr_assert_eq(close_code(out, o), cases[k].code, "case %zu", k);
    cr_assert(ws_conn_done(&c), "case %zu: not done after its close", k);
    cr_assert_eq(ws_conn_send(&c, big, 10), -EPIPE);
    ws_conn_fini(&c);
  }
}

Test(ws_conn, send_queue_bounded_and_output_bounded)
{
  conn_start(1515, 4000);
  uint8_t frame[1514], out[8192];
  memset(frame, 0xab, sizeof(frame));
  cr_assert_eq(ws_conn_send(&c, frame, sizeof(frame)), 0);
  frame[0] = 0xcd; /* the queued message is a copy */
  cr_assert_eq(ws_conn_send(&c, frame, sizeof(frame)), 0);
  cr_assert_eq(ws_conn_send(&c, frame, sizeof(frame)), -ENOBUFS);
  cr_assert_eq(c.ctr.queue_full, 1);
  cr_assert_eq(ws_conn_queued(&c), 2 * 1514);
  /* a small buffer takes part of it; the rest stays queued */
  size_t o = ws_conn_output(&c, out, 100);
  cr_assert_eq(o, 100);
  cr_assert_eq(out[0], 0x82);
  cr_assert_eq(out[1], 126);
  cr_assert_eq(out[2] << 8 | out[3], 1514);
  cr_assert_eq(out[4], 0xab);
  o += ws_conn_output(&c, out + o, sizeof(out) - o);
  cr_assert_eq(o, 2 * (4 + 1514));
  cr_assert_eq(out[4 + 1514 + 4], 0xcd);
  cr_assert_eq(ws_conn_queued(&c), 0);
  cr_assert_eq(ws_conn_send(&c, frame, sizeof(frame)), 0, "drained, yet still full");
  ws_conn_fini(&c);
}

Test(ws_conn, close_handshake)
{
  conn_start(1515, 1 << 16);
  uint8_t wire[64], out[64];
  size_t n = client_frame(wire, 0x8, (const uint8_t *)"\x03\xe8", 2, true);
  cr_assert_eq(ws_conn_input(&c, wire, n), 0, "a normal close is no error");
  size_t o = ws_conn_output(&c, out, sizeof(out));
  cr_assert_eq(close_code(out, o), 1000, "the close was not answered");
  cr_assert(ws_conn_done(&c));
  ws_conn_fini(&c);
  /* the relay closes first: done once the peer answers */
  conn_start(1515, 1 << 16);
  cr_assert_eq(ws_conn_close(&c, 1001, "going away"), 0);
  o = ws_conn_output(&c, out, sizeof(out));
  cr_assert_eq(close_code(out, o), 1001);
  cr_assert_not(ws_conn_done(&c));
  n = client_frame(wire, 0x8, (const uint8_t *)"\x03\xe9", 2, true);
  cr_assert_eq(ws_conn_input(&c, wire, n), 0);
  cr_assert(ws_conn_done(&c));
  ws_conn_fini(&c);
}

/* ---- the client's side ---- */

/* The client's request passes the server's check, and the server's
 * answer passes the client's; a wrong accept value or another status
 * does not. */
Test(ws_upgrade, client_request_and_answer_round_trip)
{
  char req[512], key[25];
  int n = ws_client_request(req, sizeof(req), "127.0.0.1:4433", "/lab?token=x", key);
  cr_assert_gt(n, 0);
  cr_assert_eq(strlen(key), 24);
  struct http1_req r;
  cr_assert_eq(http1_parse((const uint8_t *)req, (size_t)n, &r), 0);
  struct ws_upgrade u;
  cr_assert_eq(ws_upgrade_check(&r, &u), 0);
  cr_assert(u.bavy);
  char resp[512];
  int m = ws_upgrade_response(resp, sizeof(resp), &u);
  cr_assert_gt(m, 0);
  cr_assert_eq(ws_client_check((const uint8_t *)resp, (size_t)m, key), 0);
  char other[25];
  memcpy(other, key, 25);
  other[0] = other[0] == 'A' ? 'B' : 'A';
  cr_assert_eq(ws_client_check((const uint8_t *)resp, (size_t)m, other), -EPROTO,
               "wrong key accepted");
  int k = ws_refusal(resp, sizeof(resp), 403, "no");
  cr_assert_eq(ws_client_check((const uint8_t *)resp, (size_t)k, key), 403);
  cr_assert_eq(ws_client_check((const uint8_t *)"garbage\r\n\r\n", 11, key), -EPROTO);
}

static uint8_t cgot[4][2048];
static size_t cgot_len[4];
static int ncgot;
static void on_client_message(void *ctx, const uint8_t *d, size_t len)
{
  (void)ctx;
  cr_assert_lt(ncgot, 4);
  memcpy(cgot[ncgot], d, len);
  cgot_len[ncgot++] = len;
}
static const struct ws_conn_ops COPS = {.on_message = on_client_message};

/* A client and a server connection pumped into each other: masked
 * frames from the client, unmasked from the server, both ways. */
Test(ws_conn, client_and_server_talk)
{
  conn_start(1515, 1 << 16);
  struct ws_conn cl;
  struct ws_conn_params p = {.max_msg = 1515, .max_queue = 1 << 16};
  ncgot = 0;
  cr_assert_eq(ws_conn_init_client(&cl, &p, &COPS, NULL), 0);
  uint8_t frame[1514], wire[4096];
  for (size_t i = 0; i < sizeof(frame); i++)
    frame[i] = (uint8_t)(i * 3);
  cr_assert_eq(ws_conn_send(&cl, frame, sizeof(frame)), 0);
  size_t n = ws_conn_output(&cl, wire, sizeof(wire));
  cr_assert_eq(wire[1] & 0x80, 0x80, "a client frame must be masked");
  cr_assert_eq(ws_conn_input(&c, wire, n), 0);
  cr_assert_eq(ngot, 1);
  cr_assert_eq(memcmp(got[0], frame, sizeof(frame)), 0);
  cr_assert_eq(ws_conn_send(&c, frame, 100), 0);
  n = ws_conn_output(&c, wire, sizeof(wire));
  cr_assert_eq(ws_conn_input(&cl, wire, n), 0);
  cr_assert_eq(ncgot, 1);
  cr_assert_eq(cgot_len[0], 100);
  cr_assert_eq(memcmp(cgot[0], frame, 100), 0);
  ws_conn_fini(&cl);
  ws_conn_fini(&c);
}
