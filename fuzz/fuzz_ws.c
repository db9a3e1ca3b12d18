/*
 * fuzz_ws: the WebSocket listener's parsers of peer bytes: the HTTP/1.1
 * request head (http1.c) and the opening handshake check (ws.c) on any
 * head, and a connection's framing (wslay through ws.c) on any byte
 * stream, fed in pieces whose sizes the input chooses.
 *
 * Input: byte 0 even = a request head (the rest), odd = a stream of
 * client frames (byte 1: the piece size, the rest: the stream).
 * Invariants checked: a head that parses has at most HTTP1_MAX_HEADERS
 * fields, each within the input; an accepted handshake has a 28-character
 * accept value and a response that fits; a delivered message is never
 * longer than max_msg; output never exceeds the buffer given; after a
 * protocol error nothing more is delivered.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/ws.h"

#define MAX_MSG 1515

static size_t delivered;
static bool too_long;

static void on_message(void *ctx, const uint8_t *d, size_t len)
{
  (void)ctx, (void)d;
  delivered++;
  if (len > MAX_MSG)
    too_long = true;
}

static const struct ws_conn_ops OPS = {.on_message = on_message};

static void head(const uint8_t *data, size_t size)
{
  struct http1_req r;
  if (http1_parse(data, size, &r) < 0)
    return;
  if (r.nf > HTTP1_MAX_HEADERS)
    abort();
  for (uint32_t i = 0; i < r.nf; i++)
    if ((const uint8_t *)r.f[i].value.p < data ||
        (const uint8_t *)r.f[i].value.p + r.f[i].value.len > data + size)
      abort();
  struct ws_upgrade u;
  if (ws_upgrade_check(&r, &u) != 0)
    return;
  char out[512];
  if (strlen(u.accept) != 28 || ws_upgrade_response(out, sizeof(out), &u) <= 0)
    abort();
}

static void stream(const uint8_t *data, size_t size)
{
  if (size < 1)
    return;
  size_t piece = data[0] ? data[0] : 1;
  data++, size--;
  struct ws_conn c;
  struct ws_conn_params p = {.max_msg = MAX_MSG, .max_queue = 8192};
  if (ws_conn_init(&c, &p, &OPS, NULL) < 0)
    return;
  delivered = 0;
  too_long = false;
  uint8_t out[700];
  for (size_t off = 0; off < size; off += piece) {
    size_t n = size - off < piece ? size - off : piece;
    int rc = ws_conn_input(&c, data + off, n);
    if (ws_conn_output(&c, out, sizeof(out)) > sizeof(out))
      abort();
    if (rc < 0) {
      size_t before = delivered;
      ws_conn_input(&c, data + off, n);
      if (delivered != before)
        abort();
      break;
    }
    (void)ws_conn_send(&c, data + off, n);
  }
  while (ws_conn_output(&c, out, sizeof(out)) > 0)
    ;
  if (too_long)
    abort();
  ws_conn_fini(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  if (data[0] & 1)
    stream(data + 1, size - 1);
  else
    head(data + 1, size - 1);
  return 0;
}
