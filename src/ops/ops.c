/*
 * ops: HTTP/1.1 operations listener on the worker's ring. See
 * include/wtrelay/ops.h.
 *
 * user_data index of our op: kind (2 bits) << 30 | generation (14 bits) << 16
 * | connection slot (16 bits); a completion whose generation is not the
 * slot's current one belongs to an earlier connection and is ignored.
 * A connection has at most one recv or send in flight. Closing waits until
 * nothing is in flight, then submits IORING_OP_CLOSE. Timeouts use
 * shutdown(2), which makes the pending recv complete with 0.
 *
 * A full table never locks out a probe: at --ops-max-conns live
 * connections, a new one takes the place of the live connection that has
 * waited longest for a request (an idle keep-alive connection or a request
 * still arriving: a slowloris), which is closed (evicted, counted). So
 * /healthz and /readyz stay answerable while every slot is held by
 * half-sent requests: the probe is the newest connection, and it would
 * take max_conns newer ones to push it out before its few bytes arrive.
 * Connections sending a response are evicted only when no connection is
 * waiting. An evicted slot is free once its pending receive came back, so
 * the table has OPS_SPARE_SLOTS slots beyond max_conns for connections
 * that are closing; a burst that finds those busy too is refused.
 */
#include "wtrelay/ops.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wtrelay/container_of.h"
#include "wtrelay/counter.h"
#include "wtrelay/log.h"

#define K_ACCEPT 0u
#define K_RECV 1u
#define K_SEND 2u
#define K_CLOSE 3u
#define UDX(kind, gen, slot) (((uint32_t)(kind) << 30) | ((uint32_t)((gen)&0x3fff) << 16) | (slot))

void ops_buf_printf(struct ops_buf *b, const char *fmt, ...)
{
  if (b->overflow)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->overflow = true;
      return;
    }
    if (b->p && b->len + (size_t)n < b->cap) {
      b->len += (size_t)n;
      return;
    }
    size_t want = b->cap ? b->cap * 2 : 4096;
    while (want < b->len + (size_t)n + 1)
      want *= 2;
    if (want > b->max) {
      b->overflow = true;
      return;
    }
    char *np = realloc(b->p, want);
    if (!np) {
      b->overflow = true;
      return;
    }
    b->p = np;
    b->cap = want;
  }
}

static void buf_reset(struct ops_buf *b)
{
  free(b->p);
  memset(b, 0, sizeof(*b));
  b->max = OPS_RESP_MAX;
}

int ops_parse_listen(const char *s, char *host, size_t hostcap, uint16_t *port)
{
  return io_parse_listen(s, host, hostcap, port);
}

static void submit(struct ops *o, struct io_uring_sqe *sqe, uint32_t kind, struct ops_conn *c)
{
  uint32_t slot = c ? (uint32_t)(c - o->conns) : 0;
  io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_OPS_HTTP, UDX(kind, c ? c->gen : 0, slot)));
}

static void arm_accept(struct ops *o)
{
  struct io_uring_sqe *sqe = io_sqe(o->io);
  if (!sqe)
    return;
  io_uring_prep_multishot_accept(sqe, o->lfd, NULL, NULL, SOCK_CLOEXEC);
  submit(o, sqe, K_ACCEPT, NULL);
  o->accept_armed = true;
}

static void conn_maybe_close(struct ops *o, struct ops_conn *c)
{
  if (!c->closing || c->reading || c->sending || !c->used)
    return;
  struct io_uring_sqe *sqe = io_sqe(o->io);
  if (sqe) {
    io_uring_prep_close(sqe, c->fd);
    io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_OPS_HTTP, UDX(K_CLOSE, 0x3fff, 0xffff)));
  } else {
    close(c->fd);
  }
  buf_reset(&c->out);
  if (c->stream) {
    o->routes->stream->close(o->ctx, c->stream);
    c->stream = NULL;
    o->nstreams--;
  }
  c->used = false;
  c->gen++;
  o->nconns--;
}

static void conn_close(struct ops *o, struct ops_conn *c)
{
  if (c->used && !c->closing)
    o->nlive--;
  c->closing = true;
  if (c->reading || c->sending)
    shutdown(c->fd, SHUT_RDWR); /* the pending op completes; then we close */
  conn_maybe_close(o, c);
}

static void arm_recv(struct ops *o, struct ops_conn *c)
{
  struct io_uring_sqe *sqe = io_sqe(o->io);
  if (!sqe) {
    conn_close(o, c);
    return;
  }
  io_uring_prep_recv(sqe, c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
  submit(o, sqe, K_RECV, c);
  c->reading = true;
}

static void arm_send(struct ops *o, struct ops_conn *c)
{
  struct io_uring_sqe *sqe = io_sqe(o->io);
  if (!sqe) {
    conn_close(o, c);
    return;
  }
  io_uring_prep_send(sqe, c->fd, c->out.p + c->outoff, c->out.len - c->outoff, MSG_NOSIGNAL);
  submit(o, sqe, K_SEND, c);
  c->sending = true;
}

static void respond(struct ops *o, struct ops_conn *c, int status, const char *ctype,
                    const struct ops_buf *body, bool head, bool cors)
{
  const char *reason = status == 200   ? "OK"
                       : status == 201 ? "Created"
                       : status == 401 ? "Unauthorized"
                       : status == 409 ? "Conflict"
                       : status == 411 ? "Length Required"
                       : status == 413 ? "Content Too Large"
                       : status == 404 ? "Not Found"
                       : status == 405 ? "Method Not Allowed"
                       : status == 400 ? "Bad Request"
                       : status == 429 ? "Too Many Requests"
                       : status == 431 ? "Request Header Fields Too Large"
                       : status == 503 ? "Service Unavailable"
                                       : "Internal Server Error";
  size_t blen = body && !body->overflow ? body->len : 0;
  buf_reset(&c->out);
  ops_buf_printf(&c->out,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Cache-Control: no-store\r\nConnection: %s\r\n%s%s%s\r\n",
                 status, reason, ctype, blen, c->close_after ? "close" : "keep-alive",
                 cors ? "Access-Control-Allow-Origin: " : "", cors ? o->cors : "",
                 cors ? "\r\n" : "");
  if (blen && !head)
    ops_buf_printf(&c->out, "%.*s", (int)blen, body->p);
  if (c->out.overflow) {
    conn_close(o, c);
    return;
  }
  if (status < 300)
    o->ctr.responses_2xx++;
  else if (status < 500)
    o->ctr.responses_4xx++;
  else
    o->ctr.responses_5xx++;
  c->outoff = 0;
  arm_send(o, c);
}

static void simple(struct ops *o, struct ops_conn *c, int status, const char *text, bool head)
{
  struct ops_buf b = {.max = 4096};
  ops_buf_printf(&b, "%s\n", text);
  respond(o, c, status, "text/plain; charset=utf-8", &b, head, false);
  free(b.p);
}

/* ---- streamed responses (ops_stream_ops) ----
 * The head goes out of c->out like any response; then each send comes
 * straight from the source's bytes (peek), given back on completion
 * (consume). The connection closes when the source is done. */

static void stream_pump(struct ops *o, struct ops_conn *c)
{
  if (!c->stream || !c->stream_body || c->sending || c->closing)
    return;
  const uint8_t *p;
  bool done = false;
  size_t n = o->routes->stream->peek(o->ctx, c->stream, &p, &done);
  if (n == 0) {
    if (done)
      conn_close(o, c);
    return; /* more at the next tick */
  }
  struct io_uring_sqe *sqe = io_sqe(o->io);
  if (!sqe)
    return;
  io_uring_prep_send(sqe, c->fd, p, n, MSG_NOSIGNAL);
  submit(o, sqe, K_SEND, c);
  c->sending = true;
}

static void stream_sent(struct ops *o, struct ops_conn *c, size_t n)
{
  if (c->stream_body) {
    o->routes->stream->consume(o->ctx, c->stream, n);
  } else {
    c->outoff += n;
    if (c->outoff < c->out.len) {
      arm_send(o, c);
      return;
    }
    buf_reset(&c->out);
    c->stream_body = true;
  }
  stream_pump(o, c);
}

static void stream_tick(struct timer *t, uint64_t now)
{
  struct ops *o = container_of(t, struct ops, stream_tick);
  for (uint32_t i = 0; i < o->nslots; i++)
    if (o->conns[i].used)
      stream_pump(o, &o->conns[i]);
  if (o->nstreams)
    timer_arm(o->timers, &o->stream_tick, now + OPS_STREAM_TICK_NS);
}

/* Offers the path to the application's streams: false when none claims
 * it; else the stream started, or the refusal answered. */
static bool stream_start(struct ops *o, struct ops_conn *c, const char *path, const char *query,
                         struct ops_buf *b)
{
  const char *ctype = "application/octet-stream";
  uint64_t max_ns = OPS_IDLE_TIMEOUT_NS;
  void *st = NULL;
  int status = o->routes->stream->open(o->ctx, path, query, &st, &ctype, &max_ns, b);
  if (status == 0)
    return false;
  if (status != 200 || !st) {
    respond(o, c, status == 200 ? 500 : status, "text/plain; charset=utf-8", b, false, false);
    return true;
  }
  c->stream = st;
  c->stream_body = false;
  c->close_after = true;
  if (o->nstreams++ == 0)
    timer_arm(o->timers, &o->stream_tick, *o->now + OPS_STREAM_TICK_NS);
  buf_reset(&c->out);
  ops_buf_printf(&c->out,
                 "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
                 "Connection: close\r\n\r\n",
                 ctype);
  o->ctr.responses_2xx++;
  c->deadline_ns = *o->now + max_ns;
  c->outoff = 0;
  arm_send(o, c);
  return true;
}

/* The value of header `name` (lower case, with its colon) in the head
 * in[0..hlen), blanks before it skipped, into out (cap bytes, cut); false
 * when absent. */
static bool header_value(const uint8_t *in, size_t hlen, const char *name, char *out, size_t cap)
{
  size_t nl = strlen(name);
  const char *p = memchr(in, '\n', hlen);
  const char *end = (const char *)in + hlen;
  for (p = p ? p + 1 : end; p < end;) {
    const char *e = memchr(p, '\r', (size_t)(end - p));
    if (!e)
      break;
    if ((size_t)(e - p) >= nl && strncasecmp(p, name, nl) == 0) {
      const char *v = p + nl;
      while (v < e && (*v == ' ' || *v == '\t'))
        v++;
      size_t n = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
      memcpy(out, v, n);
      out[n] = '\0';
      return true;
    }
    p = e + 2;
  }
  return false;
}

/* The body a request head announces: 0 without Content-Length, -1 when
 * malformed or chunked (the listener reads no chunked bodies). */
static long body_len(const uint8_t *in, size_t hlen)
{
  char v[32];
  if (header_value(in, hlen, "transfer-encoding:", v, sizeof(v)))
    return -1;
  if (!header_value(in, hlen, "content-length:", v, sizeof(v)))
    return 0;
  char *e;
  long n = strtol(v, &e, 10);
  return (*v < '0' || *v > '9' || *e || n < 0) ? -1 : n;
}

static bool api_path(const char *target)
{
  return strncmp(target, "/forwards", 9) == 0 && (target[9] == '\0' || target[9] == '/');
}

/* One whole request head is in c->in[0..hlen), its body (blen bytes)
 * after it. */
static void handle(struct ops *o, struct ops_conn *c, size_t hlen, size_t blen)
{
  char line[512];
  const char *eol = memchr(c->in, '\r', hlen);
  size_t ll = eol ? (size_t)(eol - (const char *)c->in) : 0;
  o->ctr.requests++;
  if (ll == 0 || ll >= sizeof(line)) {
    o->ctr.bad_requests++;
    c->close_after = true;
    simple(o, c, 400, "bad request", false);
    return;
  }
  memcpy(line, c->in, ll);
  line[ll] = '\0';
  char method[16], target[400], version[16];
  if (sscanf(line, "%15s %399s %15s", method, target, version) != 3 ||
      strncmp(version, "HTTP/1.", 7) != 0) {
    o->ctr.bad_requests++;
    c->close_after = true;
    simple(o, c, 400, "bad request", false);
    return;
  }
  /* Connection: close, or HTTP/1.0 without keep-alive */
  c->close_after = strcmp(version, "HTTP/1.0") == 0;
  for (const char *p = (const char *)c->in + ll + 2; p < (const char *)c->in + hlen;) {
    const char *e = memchr(p, '\r', (size_t)((const char *)c->in + hlen - p));
    if (!e)
      break;
    if ((size_t)(e - p) >= 11 && strncasecmp(p, "connection:", 11) == 0) {
      const char *v = p + 11;
      while (v < e && *v == ' ')
        v++;
      if ((size_t)(e - v) >= 5 && strncasecmp(v, "close", 5) == 0)
        c->close_after = true;
      if ((size_t)(e - v) >= 10 && strncasecmp(v, "keep-alive", 10) == 0)
        c->close_after = false;
    }
    p = e + 2;
  }
  bool head = strcmp(method, "HEAD") == 0;
  if (o->routes->api && api_path(target)) {
    char auth[256] = "";
    struct ops_buf b = {.max = OPS_RESP_MAX};
    header_value(c->in, hlen, "authorization:", auth, sizeof(auth));
    char *q = strchr(target, '?');
    if (q)
      *q = '\0';
    int st = o->routes->api(o->ctx, method, target, auth, (const char *)c->in + hlen, blen, &b);
    respond(o, c, b.overflow ? 500 : st, "application/json; charset=utf-8", &b, head, false);
    free(b.p);
    return;
  }
  if (!head && strcmp(method, "GET") != 0) {
    simple(o, c, 405, "only GET and HEAD", false);
    return;
  }
  char *q = strchr(target, '?');
  if (q)
    *q = '\0';
  struct ops_buf b = {.max = OPS_RESP_MAX};
  if (strcmp(target, "/metrics") == 0) {
    o->routes->metrics(o->ctx, &b);
    respond(o, c, b.overflow ? 500 : 200, "text/plain; version=0.0.4; charset=utf-8", &b, head,
            false);
  } else if (strcmp(target, "/healthz") == 0) {
    bool h = !o->routes->healthy || o->routes->healthy(o->ctx);
    simple(o, c, h ? 200 : 503, h ? "ok" : "a worker stopped turning", head);
  } else if (strcmp(target, "/readyz") == 0) {
    bool r = o->routes->ready(o->ctx);
    simple(o, c, r ? 200 : 503, r ? "ready" : "not ready", head);
  } else if (strcmp(target, "/cert-hash") == 0) {
    o->routes->cert_json(o->ctx, &b);
    respond(o, c, 200, "application/json", &b, head, true);
  } else if (o->routes->status && (strcmp(target, "/status") == 0 || strcmp(target, "/") == 0)) {
    bool page = target[1] == '\0';
    int st = o->routes->status(o->ctx, page, q ? q + 1 : "", &b);
    respond(o, c, b.overflow ? 500 : st,
            page ? "text/html; charset=utf-8" : "application/json; charset=utf-8", &b, head, false);
  } else if (!head && o->routes->stream && stream_start(o, c, target, q ? q + 1 : "", &b)) {
    /* streaming, or refused */
  } else {
    simple(o, c, 404, "not found", head);
  }
  free(b.p);
}

/* Looks for a complete request head in the buffer; handles it. */
static void process(struct ops *o, struct ops_conn *c)
{
  for (size_t i = 3; i < c->inlen; i++) {
    if (c->in[i - 3] == '\r' && c->in[i - 2] == '\n' && c->in[i - 1] == '\r' && c->in[i] == '\n') {
      size_t hlen = i + 1;
      long blen = body_len(c->in, hlen);
      if (blen < 0 || blen > OPS_BODY_MAX || hlen + (size_t)blen > sizeof(c->in)) {
        o->ctr.bad_requests++;
        c->close_after = true;
        c->inlen = 0;
        simple(o, c, blen < 0 ? 411 : 413, blen < 0 ? "Content-Length required" : "body too large",
               false);
        return;
      }
      if (c->inlen < hlen + (size_t)blen)
        break; /* the rest of the body */
      handle(o, c, hlen, (size_t)blen);
      /* keep pipelined bytes for after the response */
      memmove(c->in, c->in + hlen + blen, c->inlen - hlen - (size_t)blen);
      c->inlen -= hlen + (size_t)blen;
      return;
    }
  }
  if (c->inlen == sizeof(c->in)) {
    o->ctr.too_large++;
    c->close_after = true;
    c->inlen = 0;
    simple(o, c, 431, "request too large", false);
    return;
  }
  arm_recv(o, c);
}

/* The live connection to close for a newcomer at a full table: the one
 * waiting longest for a request, else the one sending longest; NULL when
 * none is live. */
static struct ops_conn *evict_candidate(struct ops *o)
{
  struct ops_conn *best = NULL;
  for (uint32_t i = 0; i < o->nslots; i++) {
    struct ops_conn *c = &o->conns[i];
    if (!c->used || c->closing || c->stream)
      continue; /* streams are few (the application bounds them) and never idle */
    if (!best || (best->sending && !c->sending) ||
        (best->sending == c->sending && c->since_ns < best->since_ns))
      best = c;
  }
  return best;
}

static void refuse(struct ops *o, int fd)
{
  o->ctr.refused_full++;
  struct io_uring_sqe *sqe = io_sqe(o->io);
  if (sqe) {
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_OPS_HTTP, UDX(K_CLOSE, 0x3fff, 0xffff)));
  } else {
    close(fd);
  }
}

static void on_accept(struct ops *o, struct io_uring_cqe *cqe)
{
  if (!(cqe->flags & IORING_CQE_F_MORE))
    o->accept_armed = false;
  if (cqe->res < 0)
    return;
  int fd = cqe->res;
  struct ops_conn *c = NULL;
  for (uint32_t i = 0; i < o->nslots && !c; i++)
    if (!o->conns[i].used)
      c = &o->conns[i];
  if (!c) {
    refuse(o, fd); /* max_conns live and every spare slot still closing */
    return;
  }
  if (o->nlive >= o->max_conns) {
    struct ops_conn *victim = evict_candidate(o);
    if (!victim) {
      refuse(o, fd);
      return;
    }
    o->ctr.evicted++;
    conn_close(o, victim);
  }
  uint16_t gen = c->gen;
  struct ops_buf keep = c->out;
  memset(c, 0, offsetof(struct ops_conn, in));
  c->out = keep;
  buf_reset(&c->out);
  c->gen = gen;
  c->fd = fd;
  c->used = true;
  c->stream = NULL;
  c->stream_body = false;
  c->inlen = 0;
  c->deadline_ns = *o->now + OPS_REQ_TIMEOUT_NS;
  c->since_ns = *o->now;
  o->nconns++;
  o->nlive++;
  o->ctr.accepted++;
  arm_recv(o, c);
}

static void on_cqe(void *ctx, uint32_t idx, struct io_uring_cqe *cqe)
{
  struct ops *o = ctx;
  uint32_t kind = idx >> 30, gen = (idx >> 16) & 0x3fff, slot = idx & 0xffff;
  if (kind == K_ACCEPT) {
    on_accept(o, cqe);
    if (!o->accept_armed && o->lfd >= 0)
      arm_accept(o);
    return;
  }
  if (kind == K_CLOSE || slot >= o->nslots)
    return;
  struct ops_conn *c = &o->conns[slot];
  if (!c->used || (c->gen & 0x3fff) != gen)
    return;
  if (kind == K_RECV) {
    c->reading = false;
    if (c->closing || cqe->res <= 0) {
      conn_close(o, c);
      return;
    }
    if (c->inlen == 0)
      c->deadline_ns = *o->now + OPS_REQ_TIMEOUT_NS;
    c->inlen += (size_t)cqe->res;
    process(o, c);
  } else if (kind == K_SEND) {
    c->sending = false;
    if (c->closing || cqe->res <= 0) {
      conn_close(o, c);
      return;
    }
    if (c->stream) {
      stream_sent(o, c, (size_t)cqe->res);
      return;
    }
    c->outoff += (size_t)cqe->res;
    if (c->outoff < c->out.len) {
      arm_send(o, c);
      return;
    }
    buf_reset(&c->out);
    if (c->close_after) {
      conn_close(o, c);
      return;
    }
    c->deadline_ns = *o->now + (c->inlen ? OPS_REQ_TIMEOUT_NS : OPS_IDLE_TIMEOUT_NS);
    c->since_ns = *o->now; /* waiting for the next request from now */
    if (c->inlen)
      process(o, c);
    else
      arm_recv(o, c);
  }
}

static void sweep(struct timer *t, uint64_t now)
{
  struct ops *o = container_of(t, struct ops, sweep);
  for (uint32_t i = 0; i < o->nslots; i++) {
    struct ops_conn *c = &o->conns[i];
    if (c->used && !c->closing && now >= c->deadline_ns) {
      o->ctr.timeouts++;
      conn_close(o, c);
    }
  }
  timer_arm(o->timers, &o->sweep, now + 1000000000ull);
}

int ops_init(struct ops *o, struct io *io, struct timer_heap *timers, uint64_t *now,
             const char *listen_addr, uint32_t max_conns, const char *cors_origin,
             const struct ops_routes *routes, void *ctx)
{
  char host[128];
  uint16_t port;
  union io_sockaddr sa;
  socklen_t salen;
  memset(o, 0, sizeof(*o));
  o->lfd = -1;
  timer_init(&o->sweep, sweep); /* disarmed: ops_fini may disarm it on any failure below */
  timer_init(&o->stream_tick, stream_tick);
  if (max_conns == 0 || max_conns + OPS_SPARE_SLOTS > 0xfffe)
    return -EINVAL;
  int rc = ops_parse_listen(listen_addr, host, sizeof(host), &port);
  if (rc < 0 || (rc = io_sockaddr_parse(host, port, &sa, &salen)) < 0)
    return -EINVAL;
  o->io = io;
  o->timers = timers;
  o->now = now;
  o->max_conns = max_conns;
  o->nslots = max_conns + OPS_SPARE_SLOTS;
  o->routes = routes;
  o->ctx = ctx;
  snprintf(o->cors, sizeof(o->cors), "%s", cors_origin);
  o->conns = calloc(o->nslots, sizeof(*o->conns));
  if (!o->conns)
    return -ENOMEM;
  for (uint32_t i = 0; i < o->nslots; i++)
    o->conns[i].out.max = OPS_RESP_MAX;
  int fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    rc = -errno;
    ops_fini(o);
    return rc;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, &sa.sa, salen) < 0 || listen(fd, 512) < 0) {
    rc = -errno;
    close(fd);
    ops_fini(o);
    return rc;
  }
  o->lfd = fd;
  if ((rc = io_set_handler(io, IO_OP_OPS_HTTP, on_cqe, o)) < 0) {
    ops_fini(o);
    return rc;
  }
  if ((rc = timer_arm(timers, &o->sweep, *now + 1000000000ull)) < 0) {
    ops_fini(o);
    return rc; /* without its sweep, no connection would ever time out */
  }
  arm_accept(o);
  return 0;
}

void ops_fini(struct ops *o)
{
  if (o->timers) {
    timer_disarm(o->timers, &o->sweep);
    timer_disarm(o->timers, &o->stream_tick);
  }
  for (uint32_t i = 0; o->conns && i < o->nslots; i++) {
    if (o->conns[i].used)
      close(o->conns[i].fd);
    if (o->conns[i].stream)
      o->routes->stream->close(o->ctx, o->conns[i].stream);
    free(o->conns[i].out.p);
  }
  free(o->conns);
  o->conns = NULL;
  if (o->lfd >= 0)
    close(o->lfd);
  o->lfd = -1;
}

/* ---- counters ---- */

/* The listener's counters for /metrics and the exit log, one row per
 * field (test_counter checks that every field has exactly one). */
#define O(fam, help, labels, key, field)                                                           \
  COUNTER_DEF(struct ops_counters, fam, help, labels, "ops counters", key, field)
#define OERR(reason, key, field)                                                                   \
  O("wtrelay_ops_http_connections_dropped_total", NULL, "reason=\"" reason "\"", key, field)
static const struct counter_def ops_counter_defs[] = {
    O("wtrelay_ops_http_connections_accepted_total", "operations HTTP connections accepted", NULL,
      "accepted", accepted),
    O("wtrelay_ops_http_connections_refused_total",
      "operations HTTP connections refused: every slot busy", NULL, "refused_full", refused_full),
    O("wtrelay_ops_http_requests_total", "operations HTTP requests read", NULL, "requests",
      requests),
    O("wtrelay_ops_http_responses_total", "operations HTTP responses by status class",
      "code=\"2xx\"", "responses_2xx", responses_2xx),
    O("wtrelay_ops_http_responses_total", NULL, "code=\"4xx\"", "responses_4xx", responses_4xx),
    O("wtrelay_ops_http_responses_total", NULL, "code=\"5xx\"", "responses_5xx", responses_5xx),
    O("wtrelay_ops_http_connections_dropped_total",
      "operations HTTP connections closed early: request too large, timed out, malformed, "
      "evicted to make room for a new one",
      "reason=\"too_large\"", "too_large", too_large),
    OERR("timeout", "timeouts", timeouts),
    OERR("bad_request", "bad_requests", bad_requests),
    OERR("evicted", "evicted", evicted),
};
#undef OERR
#undef O

const struct counter_table ops_counter_table = COUNTER_TABLE(ops_counter_defs, struct ops_counters);
