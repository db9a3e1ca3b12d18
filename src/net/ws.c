/*
 * ws: see include/wtrelay/ws.h for the theory of operation.
 */
#include "wtrelay/ws.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>
#include <wslay/wslay.h>

#include "wtrelay/rng.h"

/* RFC 6455 1.3: the GUID appended to the client's key. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- the opening handshake ---- */

/* A Sec-WebSocket-Key: base64 of 16 bytes (24 characters, "==" last). */
static bool key_valid(struct http1_str k)
{
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (k.len != 24 || k.p[22] != '=' || k.p[23] != '=')
    return false;
  for (size_t i = 0; i < 22; i++)
    if (!strchr(alphabet, k.p[i]) || !k.p[i])
      return false;
  return true;
}

static int accept_value(struct http1_str key, char out[29])
{
  char in[24 + sizeof(WS_GUID)];
  uint8_t sha[20];
  memcpy(in, key.p, 24);
  memcpy(in + 24, WS_GUID, sizeof(WS_GUID) - 1);
  if (gnutls_hash_fast(GNUTLS_DIG_SHA1, in, 24 + sizeof(WS_GUID) - 1, sha) < 0)
    return -EIO;
  gnutls_datum_t d = {.data = sha, .size = sizeof(sha)}, enc = {0};
  if (gnutls_base64_encode2(&d, &enc) < 0)
    return -ENOMEM;
  int rc = enc.size == 28 ? 0 : -EIO;
  if (rc == 0) {
    memcpy(out, enc.data, 28);
    out[28] = '\0';
  }
  gnutls_free(enc.data);
  return rc;
}

int ws_upgrade_check(const struct http1_req *r, struct ws_upgrade *u)
{
  struct http1_str up, conn, key, ver, host, proto;
  memset(u, 0, sizeof(*u));
  if (!http1_str_ieq(r->method, "GET"))
    return 405;
  if (r->minor < 1 || http1_field(r, "host", &host) != 1 || http1_field(r, "upgrade", &up) != 1 ||
      !http1_list_has(up, "websocket") || http1_field(r, "connection", &conn) != 1 ||
      !http1_list_has(conn, "upgrade") || http1_field(r, "sec-websocket-key", &key) != 1 ||
      !key_valid(key))
    return 400;
  if (http1_field(r, "sec-websocket-version", &ver) != 1 || !http1_str_ieq(ver, "13"))
    return 426;
  int n = http1_field(r, "origin", &u->origin);
  if (n < 0)
    return 400;
  /* the subprotocol list may come in several fields (RFC 6455 11.3.4) */
  for (uint32_t i = 0; i < r->nf; i++)
    if (http1_str_ieq(r->f[i].name, "sec-websocket-protocol")) {
      proto = r->f[i].value;
      u->bavy = u->bavy || http1_list_has(proto, WS_PROTOCOL);
    }
  u->target = r->target;
  return accept_value(key, u->accept) < 0 ? 500 : 0;
}

int ws_upgrade_response(char *out, size_t cap, const struct ws_upgrade *u)
{
  int n = snprintf(out, cap,
                   "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n"
                   "%s\r\n",
                   u->accept, u->bavy ? "Sec-WebSocket-Protocol: " WS_PROTOCOL "\r\n" : "");
  return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

static const char *status_text(int status)
{
  switch (status) {
  case 400:
    return "Bad Request";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 426:
    return "Upgrade Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 503:
    return "Service Unavailable";
  default:
    return "Error";
  }
}

int ws_refusal(char *out, size_t cap, int status, const char *why)
{
  int n = snprintf(out, cap,
                   "HTTP/1.1 %d %s\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: %zu\r\n"
                   "%s"
                   "Connection: close\r\n\r\n%s\n",
                   status, status_text(status), strlen(why) + 1,
                   status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "", why);
  return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

/* ---- a connection's messages ---- */

static ssize_t cb_recv(wslay_event_context_ptr ev, uint8_t *buf, size_t len, int flags, void *ud)
{
  (void)flags;
  struct ws_conn *c = ud;
  if (!c->inlen) {
    wslay_event_set_error(ev, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = len < c->inlen ? len : c->inlen;
  memcpy(buf, c->in, n);
  c->in += n;
  c->inlen -= n;
  return (ssize_t)n;
}

static ssize_t cb_send(wslay_event_context_ptr ev, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
  (void)flags;
  struct ws_conn *c = ud;
  size_t room = c->outcap - c->outlen;
  if (!room) {
    wslay_event_set_error(ev, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = len < room ? len : room;
  memcpy(c->out + c->outlen, data, n);
  c->outlen += n;
  return (ssize_t)n;
}

/* The masking keys of a client's frames (server frames are not masked). */
static int cb_genmask(wslay_event_context_ptr ev, uint8_t *buf, size_t len, void *ud)
{
  (void)ev, (void)ud;
  rng_fill(buf, len);
  return 0;
}

static void cb_msg(wslay_event_context_ptr ev, const struct wslay_event_on_msg_recv_arg *a,
                   void *ud)
{
  struct ws_conn *c = ud;
  switch (a->opcode) {
  case WSLAY_BINARY_FRAME:
    c->ctr.msgs_in++;
    c->ops->on_message(c->ctx, a->msg, a->msg_length);
    break;
  case WSLAY_TEXT_FRAME:
    c->ctr.text_refused++;
    wslay_event_queue_close(ev, WSLAY_CODE_UNSUPPORTED_DATA, (const uint8_t *)"binary only", 11);
    wslay_event_shutdown_read(ev);
    break;
  case WSLAY_PING:
    c->ctr.pings++;
    break;
  case WSLAY_PONG:
    c->ctr.pongs++;
    if (c->ops->on_pong)
      c->ops->on_pong(c->ctx);
    break;
  default: /* a close: wslay answers it */
    break;
  }
}

static int conn_init(struct ws_conn *c, const struct ws_conn_params *p,
                     const struct ws_conn_ops *ops, void *ctx, bool client)
{
  static const struct wslay_event_callbacks cbs = {
      .recv_callback = cb_recv,
      .send_callback = cb_send,
      .genmask_callback = cb_genmask,
      .on_msg_recv_callback = cb_msg,
  };
  memset(c, 0, sizeof(*c));
  c->ops = ops;
  c->ctx = ctx;
  c->p = *p;
  wslay_event_context_ptr ev;
  if ((client ? wslay_event_context_client_init(&ev, &cbs, c)
              : wslay_event_context_server_init(&ev, &cbs, c)) != 0)
    return -ENOMEM;
  wslay_event_config_set_max_recv_msg_length(ev, p->max_msg);
  c->ev = ev;
  return 0;
}

int ws_conn_init(struct ws_conn *c, const struct ws_conn_params *p, const struct ws_conn_ops *ops,
                 void *ctx)
{
  return conn_init(c, p, ops, ctx, false);
}

int ws_conn_init_client(struct ws_conn *c, const struct ws_conn_params *p,
                        const struct ws_conn_ops *ops, void *ctx)
{
  return conn_init(c, p, ops, ctx, true);
}

void ws_conn_fini(struct ws_conn *c)
{
  if (c->ev)
    wslay_event_context_free(c->ev);
  c->ev = NULL;
}

int ws_conn_input(struct ws_conn *c, const uint8_t *data, size_t len)
{
  wslay_event_context_ptr ev = c->ev;
  c->in = data;
  c->inlen = len;
  int rc = wslay_event_get_read_enabled(ev) ? wslay_event_recv(ev) : 0;
  c->in = NULL;
  c->inlen = 0;
  if (rc == WSLAY_ERR_NOMEM)
    return -ENOMEM;
  if (rc != 0) {
    /* wslay queued a close (1002, or 1009 for a message too long) */
    c->ctr.proto_errors++;
    return -EPROTO;
  }
  uint16_t sent = wslay_event_get_status_code_sent(ev);
  if (wslay_event_get_close_sent(ev) && sent != WSLAY_CODE_NORMAL_CLOSURE &&
      sent != WSLAY_CODE_NO_STATUS_RCVD && !wslay_event_get_close_received(ev))
    return -EPROTO;
  return 0;
}

int ws_conn_send(struct ws_conn *c, const uint8_t *data, size_t len)
{
  wslay_event_context_ptr ev = c->ev;
  if (wslay_event_get_close_sent(ev) || !wslay_event_get_write_enabled(ev))
    return -EPIPE;
  if (wslay_event_get_queued_msg_length(ev) + len > c->p.max_queue) {
    c->ctr.queue_full++;
    return -ENOBUFS;
  }
  struct wslay_event_msg m = {.opcode = WSLAY_BINARY_FRAME, .msg = data, .msg_length = len};
  int rc = wslay_event_queue_msg(ev, &m);
  if (rc == WSLAY_ERR_NOMEM)
    return -ENOMEM;
  if (rc != 0)
    return -EPIPE;
  c->ctr.msgs_out++;
  return 0;
}

int ws_conn_ping(struct ws_conn *c)
{
  struct wslay_event_msg m = {.opcode = WSLAY_PING};
  return wslay_event_queue_msg(c->ev, &m) == 0 ? 0 : -EPIPE;
}

int ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason)
{
  size_t n = strlen(reason);
  if (n > 123)
    n = 123; /* a control frame's payload is at most 125 bytes */
  return wslay_event_queue_close(c->ev, code, (const uint8_t *)reason, n) == 0 ? 0 : -EPIPE;
}

size_t ws_conn_output(struct ws_conn *c, uint8_t *out, size_t cap)
{
  c->out = out;
  c->outlen = 0;
  c->outcap = cap;
  wslay_event_send(c->ev);
  c->out = NULL;
  c->outcap = 0;
  return c->outlen;
}

size_t ws_conn_queued(const struct ws_conn *c)
{
  return wslay_event_get_queued_msg_length(c->ev);
}

bool ws_conn_done(const struct ws_conn *c)
{
  wslay_event_context_ptr ev = c->ev;
  return wslay_event_get_close_sent(ev) && wslay_event_get_queued_msg_count(ev) == 0 &&
         (wslay_event_get_close_received(ev) || !wslay_event_get_read_enabled(ev));
}

bool ws_conn_closing(const struct ws_conn *c)
{
  wslay_event_context_ptr ev = c->ev;
  return wslay_event_get_close_sent(ev) || wslay_event_get_close_received(ev);
}

/* ---- the client's side of the handshake ---- */

int ws_client_request(char *out, size_t cap, const char *host, const char *target, char key[25])
{
  uint8_t nonce[16];
  rng_fill(nonce, sizeof(nonce));
  gnutls_datum_t d = {.data = nonce, .size = sizeof(nonce)}, enc = {0};
  if (gnutls_base64_encode2(&d, &enc) < 0)
    return -ENOMEM;
  bool ok = enc.size == 24;
  if (ok) {
    memcpy(key, enc.data, 24);
    key[24] = '\0';
  }
  gnutls_free(enc.data);
  if (!ok)
    return -EIO;
  int n = snprintf(out, cap,
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: " WS_PROTOCOL "\r\n\r\n",
                   target, host, key);
  return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

int ws_client_check(const uint8_t *head, size_t len, const char key[25])
{
  struct http1_req r;
  struct http1_str v;
  char want[29];
  if (http1_parse_response(head, len, &r) < 0)
    return -EPROTO;
  if (r.status != 101)
    return r.status;
  if (http1_field(&r, "upgrade", &v) != 1 || !http1_list_has(v, "websocket") ||
      http1_field(&r, "sec-websocket-accept", &v) != 1 ||
      accept_value((struct http1_str){key, 24}, want) < 0)
    return -EPROTO;
  /* base64 is case-sensitive: compared exactly */
  return v.len == 28 && memcmp(v.p, want, 28) == 0 ? 0 : -EPROTO;
}
