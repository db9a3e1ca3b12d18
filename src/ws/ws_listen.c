/*
 * ws_listen: see include/wtrelay/ws_listen.h for the theory of operation.
 *
 * A connection's bytes: recv lands in its TLS stream's receive buffer;
 * the handshake runs until done; then plaintext is read a record at a
 * time into the listener's shared buffer and goes to the request head
 * (before the Upgrade) or to the WebSocket framing (after). Whatever a
 * step produced to send (handshake flights, the 101, frames) is encrypted
 * into the stream's send buffer and one send is put in flight; its
 * completion sends the rest. A connection ends once its close frames are
 * out (or at once after a TLS failure), and its socket is closed when no
 * operation of it is in flight.
 */
#include "wtrelay/ws_listen.h"

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wtrelay/container_of.h"
#include "wtrelay/relay.h"
#include "wtrelay/timeunit.h"

#define K_ACCEPT 0u
#define K_RECV 1u
#define K_SEND 2u
#define K_CLOSE 3u
/* user_data index: kind (2 bits), generation (14), slot (16) */
#define UDX(kind, gen, slot) (((uint32_t)(kind) << 30) | ((uint32_t)((gen)&0x3fff) << 16) | (slot))

static const struct session_ops ws_session_ops;
static void flush(struct ws_lconn *c);
static void conn_end(struct ws_lconn *c, const char *why);

static void submit(struct ws_listen *l, struct io_uring_sqe *sqe, uint32_t kind, struct ws_lconn *c)
{
  uint32_t slot = c ? (uint32_t)(c - l->conns) : 0;
  io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_WS, UDX(kind, c ? c->gen : 0, slot)));
}

static void close_fd(struct ws_listen *l, int fd)
{
  struct io_uring_sqe *sqe = io_sqe(l->io);
  if (sqe) {
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_WS, UDX(K_CLOSE, 0x3fff, 0xffff)));
  } else {
    close(fd);
  }
}

static void arm_accept(struct ws_listen *l)
{
  struct io_uring_sqe *sqe = io_sqe(l->io);
  if (!sqe)
    return;
  io_uring_prep_multishot_accept(sqe, l->lfd, NULL, NULL, SOCK_CLOEXEC);
  submit(l, sqe, K_ACCEPT, NULL);
  l->accept_armed = true;
}

static void peer_log(struct ws_lconn *c, const char *msg, const char *why)
{
  uint32_t sup;
  if (!log_ratelimit_allow(&c->l->rl, *c->l->now, &sup))
    return;
  char addr[64];
  io_sockaddr_str(&c->peer, addr, sizeof(addr));
  log_info(msg, "transport=websocket remote=%s why=%s suppressed=%u", addr, LOG_Q(why), sup);
}

/* Frees what the connection holds once nothing of it is in flight. */
static void conn_maybe_free(struct ws_lconn *c)
{
  struct ws_listen *l = c->l;
  if (!c->used || !c->closing_fd || c->reading || c->sending)
    return;
  close_fd(l, c->fd);
  tls_stream_fini(&c->tls);
  if (c->ws_ok) {
    l->ctr.text_refused += c->ws.ctr.text_refused;
    ws_conn_fini(&c->ws);
  }
  free(c->req);
  c->req = NULL;
  c->ws_ok = false;
  c->used = false;
  c->gen++;
  l->nconns--;
  l->ctr.closed++;
}

/* The connection is over: the relay is told (once), the socket shut. */
static void conn_end(struct ws_lconn *c, const char *why)
{
  if (!c->used || c->closing_fd)
    return;
  if (c->sess_open) {
    c->sess_open = false;
    relay_session_closed(c->l->relay, &c->sess, 0, why);
  }
  c->closing_fd = true;
  if (c->reading || c->sending)
    shutdown(c->fd, SHUT_RDWR); /* the ops in flight complete; then it is freed */
  conn_maybe_free(c);
}

static void arm_recv(struct ws_lconn *c)
{
  if (c->reading || c->closing_fd)
    return;
  size_t room;
  uint8_t *tail = tls_stream_in_tail(&c->tls, &room);
  if (!room) {
    conn_end(c, "receive buffer full");
    return;
  }
  struct io_uring_sqe *sqe = io_sqe(c->l->io);
  if (!sqe) {
    conn_end(c, "ring full");
    return;
  }
  io_uring_prep_recv(sqe, c->fd, tail, room, 0);
  submit(c->l, sqe, K_RECV, c);
  c->reading = true;
}

/* Encrypts what the framing has to send (as the TLS buffer takes it)
 * and puts one send in flight. */
static void flush(struct ws_lconn *c)
{
  struct ws_listen *l = c->l;
  if (c->sending || c->closing_fd)
    return;
  while (c->ws_ok) {
    size_t room = tls_stream_writable(&c->tls);
    if (room > 16384)
      room = 16384;
    if (!room)
      break;
    size_t n = ws_conn_output(&c->ws, l->plain, room);
    if (!n)
      break;
    if (tls_stream_write(&c->tls, l->plain, n) != (ssize_t)n) {
      conn_end(c, "TLS write failed");
      return;
    }
    l->ctr.bytes_out += n;
  }
  if (!c->tls.outlen) {
    if (c->st == WS_ST_CLOSING && (!c->ws_ok || ws_conn_done(&c->ws)))
      conn_end(c, "closed");
    return;
  }
  struct io_uring_sqe *sqe = io_sqe(l->io);
  if (!sqe) {
    conn_end(c, "ring full");
    return;
  }
  io_uring_prep_send(sqe, c->fd, c->tls.out, c->tls.outlen, MSG_NOSIGNAL);
  submit(l, sqe, K_SEND, c);
  c->sending = true;
}

/* Plaintext answers before the Upgrade (the 101, a refusal). */
static void send_plain(struct ws_lconn *c, const char *text, size_t len)
{
  if (tls_stream_write(&c->tls, (const uint8_t *)text, len) != (ssize_t)len)
    conn_end(c, "TLS write failed");
}

static void refuse(struct ws_lconn *c, int status, const char *why)
{
  if (c->ws_ok) {
    ws_conn_fini(&c->ws);
    c->ws_ok = false;
  }
  char out[512];
  int n = ws_refusal(out, sizeof(out), status, why);
  c->l->ctr.upgrade_refused++;
  peer_log(c, "websocket upgrade refused", why);
  if (n > 0)
    send_plain(c, out, (size_t)n);
  tls_stream_bye(&c->tls);
  c->st = WS_ST_CLOSING;
  c->deadline_ns = *c->l->now + WS_CLOSE_TIMEOUT_NS;
}

static void on_message(void *ctx, const uint8_t *data, size_t len)
{
  struct ws_lconn *c = ctx;
  c->l->ctr.msgs_in++;
  if (c->sess_open)
    relay_session_datagram(c->l->relay, &c->sess, data, len);
}

static void on_pong(void *ctx)
{
  struct ws_lconn *c = ctx;
  c->ping_out = false;
  if (c->probe_id && c->sess_open) {
    uint64_t id = c->probe_id;
    c->probe_id = 0;
    relay_session_datagram_ack(c->l->relay, &c->sess, id, true);
  }
}

static const struct ws_conn_ops conn_ops = {.on_message = on_message, .on_pong = on_pong};

static const char *status_why(int st)
{
  switch (st) {
  case 400:
    return "not a WebSocket upgrade";
  case 403:
    return "forbidden";
  case 404:
    return "no such room";
  case 405:
    return "only GET";
  case 414:
    return "path or query too long";
  case 426:
    return "WebSocket version 13 only";
  case 429:
    return "too many sessions or rooms";
  case 503:
    return "relay full";
  default:
    return "refused";
  }
}

/* The whole request head is in c->req[0..hlen). */
static void upgrade(struct ws_lconn *c, size_t hlen)
{
  struct ws_listen *l = c->l;
  struct http1_req r;
  struct ws_upgrade u;
  int st = http1_parse((const uint8_t *)c->req, hlen, &r) < 0 ? 400 : ws_upgrade_check(&r, &u);
  if (st == 0 && session_set_target(&c->sess, u.target.p, u.target.len) < 0)
    st = 414;
  if (st == 0 && c->sess.path[0] != '/')
    st = 400;
  if (st == 0 && u.origin.len >= sizeof(c->sess.origin))
    st = 400;
  if (st != 0) {
    refuse(c, st, status_why(st));
    return;
  }
  if (u.origin.len)
    memcpy(c->sess.origin, u.origin.p, u.origin.len);
  c->sess.origin[u.origin.len] = '\0';
  c->sess.ops = &ws_session_ops;
  c->sess.transport = SESSION_WEBSOCKET;
  struct ws_conn_params wp = {.max_msg = l->p.max_msg, .max_queue = l->p.max_queue};
  if (ws_conn_init(&c->ws, &wp, &conn_ops, c) < 0) {
    refuse(c, 503, "out of memory");
    return;
  }
  c->ws_ok = true;
  st = relay_session_open(l->relay, &c->sess, c->client);
  if (st != 200) {
    c->sess.app_data = NULL;
    refuse(c, st, status_why(st));
    return;
  }
  c->sess_open = true;
  char out[512];
  int n = ws_upgrade_response(out, sizeof(out), &u);
  if (n < 0) {
    conn_end(c, "response too long");
    return;
  }
  send_plain(c, out, (size_t)n);
  c->st = WS_ST_OPEN;
  c->deadline_ns = 0;
  l->ctr.upgrades++;
  free(c->req); /* the head's bytes are no longer needed */
  c->req = NULL;
}

/* Plaintext from the peer. */
static void plain_in(struct ws_lconn *c, const uint8_t *p, size_t n)
{
  struct ws_listen *l = c->l;
  if (c->st == WS_ST_HTTP) {
    size_t before = c->reqlen;
    size_t take = n < WS_REQ_MAX - before ? n : WS_REQ_MAX - before;
    memcpy(c->req + before, p, take);
    c->reqlen += take;
    size_t hlen = http1_head_len((const uint8_t *)c->req, c->reqlen);
    if (!hlen) {
      if (c->reqlen == WS_REQ_MAX) {
        l->ctr.req_too_large++;
        refuse(c, 431, "request head too large");
      }
      return;
    }
    size_t used = hlen - before; /* the bytes of p that were the head's */
    upgrade(c, hlen);
    if (c->st == WS_ST_OPEN && used < n)
      plain_in(c, p + used, n - used); /* the first frames came with the head */
    return;
  }
  if (c->st != WS_ST_OPEN || !c->ws_ok) {
    if (c->st == WS_ST_CLOSING && c->ws_ok)
      ws_conn_input(&c->ws, p, n); /* the peer's answer to our close */
    return;
  }
  if (ws_conn_input(&c->ws, p, n) < 0) {
    l->ctr.proto_errors++;
    peer_log(c, "websocket connection closed", "protocol error or message too long");
    c->st = WS_ST_CLOSING;
    c->deadline_ns = *l->now + WS_CLOSE_TIMEOUT_NS;
  } else if (ws_conn_closing(&c->ws)) {
    c->st = WS_ST_CLOSING; /* the peer closed: our answer is queued */
    c->deadline_ns = *l->now + WS_CLOSE_TIMEOUT_NS;
  }
  if (c->st == WS_ST_CLOSING && c->sess_open) {
    c->sess_open = false;
    relay_session_closed(l->relay, &c->sess, 0, "websocket closed");
  }
}

static void on_recv(struct ws_lconn *c, int res)
{
  struct ws_listen *l = c->l;
  c->reading = false;
  if (c->closing_fd || res <= 0) {
    conn_end(c, res == 0 ? "peer closed" : "receive failed");
    return;
  }
  tls_stream_in_commit(&c->tls, (size_t)res);
  c->last_rx_ns = *l->now;
  if (!c->tls.handshake_done) {
    int rc = tls_stream_handshake(&c->tls);
    if (rc == -EPROTO) {
      l->ctr.tls_failed++;
      char why[128];
      snprintf(why, sizeof(why), "TLS handshake failed: %s (alert %d)",
               c->tls.error ? c->tls.error : "?", c->tls.alert);
      peer_log(c, "websocket TLS failed", why);
      conn_end(c, "TLS failed");
      return;
    }
    if (rc == 0)
      c->st = WS_ST_HTTP;
  }
  while (c->tls.handshake_done && !c->closing_fd) {
    ssize_t n = tls_stream_read(&c->tls, l->plain, 16384 + 256);
    if (n == -EAGAIN)
      break;
    if (n <= 0) {
      conn_end(c, n == 0 ? "peer closed" : "TLS error");
      return;
    }
    l->ctr.bytes_in += (size_t)n;
    plain_in(c, l->plain, (size_t)n);
  }
  if (c->closing_fd)
    return;
  flush(c);
  if (!c->closing_fd && c->st != WS_ST_CLOSING)
    arm_recv(c);
  else if (!c->closing_fd && c->ws_ok && !ws_conn_done(&c->ws))
    arm_recv(c); /* the peer's close frame is still to come */
}

static void on_sent(struct ws_lconn *c, int res)
{
  c->sending = false;
  if (c->closing_fd || res <= 0) {
    conn_end(c, "send failed");
    return;
  }
  tls_stream_consumed(&c->tls, (size_t)res);
  flush(c);
}

static uint32_t conns_of(const struct ws_listen *l, uint64_t client)
{
  uint32_t n = 0;
  for (uint32_t i = 0; i < l->nslots; i++)
    n += l->conns[i].used && !l->conns[i].closing_fd && l->conns[i].client == client;
  return n;
}

static void on_accept(struct ws_listen *l, struct io_uring_cqe *cqe)
{
  if (!(cqe->flags & IORING_CQE_F_MORE))
    l->accept_armed = false;
  if (cqe->res < 0)
    return;
  int fd = cqe->res;
  union io_sockaddr peer;
  socklen_t plen = sizeof(peer);
  memset(&peer, 0, sizeof(peer));
  getpeername(fd, &peer.sa, &plen);
  uint64_t client = io_sockaddr_client_key(&peer);
  struct ws_lconn *c = NULL;
  for (uint32_t i = 0; i < l->nslots && !c; i++)
    if (!l->conns[i].used)
      c = &l->conns[i];
  if (!c) {
    l->ctr.refused_full++;
    close_fd(l, fd);
    return;
  }
  if (l->p.max_conns_per_ip && client && conns_of(l, client) >= l->p.max_conns_per_ip) {
    l->ctr.refused_per_ip++;
    close_fd(l, fd);
    return;
  }
  uint16_t gen = c->gen;
  memset(c, 0, sizeof(*c));
  c->gen = gen;
  c->l = l;
  c->fd = fd;
  c->peer = peer;
  c->client = client;
  c->st = WS_ST_TLS;
  c->req = malloc(WS_REQ_MAX);
  if (!c->req || tls_stream_server_new(&c->tls, *l->cert, WS_TLS_IN, WS_TLS_OUT) < 0) {
    free(c->req);
    c->req = NULL;
    l->ctr.refused_full++;
    close_fd(l, fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  c->used = true;
  c->deadline_ns = *l->now + WS_UPGRADE_TIMEOUT_NS;
  c->last_rx_ns = *l->now;
  l->nconns++;
  l->ctr.accepted++;
  arm_recv(c);
}

static void on_cqe(void *ctx, uint32_t idx, struct io_uring_cqe *cqe)
{
  struct ws_listen *l = ctx;
  uint32_t kind = idx >> 30, gen = (idx >> 16) & 0x3fff, slot = idx & 0xffff;
  if (kind == K_ACCEPT) {
    on_accept(l, cqe);
    if (!l->accept_armed && l->lfd >= 0)
      arm_accept(l);
    return;
  }
  if (kind == K_CLOSE || slot >= l->nslots)
    return;
  struct ws_lconn *c = &l->conns[slot];
  if (!c->used || (c->gen & 0x3fff) != gen)
    return;
  if (kind == K_RECV)
    on_recv(c, cqe->res);
  else
    on_sent(c, cqe->res);
  conn_maybe_free(c);
}

/* Deadlines, keep-alive pings and idle connections, once a second. */
static void sweep(struct timer *t, uint64_t now)
{
  struct ws_listen *l = container_of(t, struct ws_listen, sweep);
  for (uint32_t i = 0; i < l->nslots; i++) {
    struct ws_lconn *c = &l->conns[i];
    if (!c->used || c->closing_fd)
      continue;
    if (c->deadline_ns && now >= c->deadline_ns) {
      if (c->st == WS_ST_HTTP) { /* answered, then closed at the next deadline */
        l->ctr.upgrade_timeouts++;
        refuse(c, 408, "request timeout");
        flush(c);
      } else {
        l->ctr.tls_timeouts += c->st == WS_ST_TLS;
        conn_end(c, "timeout");
      }
      continue;
    }
    if (c->st != WS_ST_OPEN)
      continue;
    if (now - c->last_rx_ns >= WS_IDLE_TIMEOUT_NS) {
      l->ctr.idle_closed++;
      conn_end(c, "idle");
    } else if (now - c->last_rx_ns >= WS_PING_IDLE_NS && !c->ping_out) {
      if (ws_conn_ping(&c->ws) == 0) {
        c->ping_out = true;
        l->ctr.pings_sent++;
        flush(c);
      }
    }
  }
  timer_arm(l->timers, &l->sweep, now + NS_PER_S);
}

/* ---- the session operations (what the relay calls) ---- */

static struct ws_lconn *of_sess(const struct session *s)
{
  return container_of(s, struct ws_lconn, sess);
}

static int ops_send(struct session *s, const struct iovec *iov, int iovcnt, unsigned flags,
                    uint64_t id)
{
  struct ws_lconn *c = of_sess(s);
  struct ws_listen *l = c->l;
  if (c->st != WS_ST_OPEN || !c->ws_ok)
    return -ENOTCONN;
  size_t len = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > l->p.max_msg - len)
      return -EMSGSIZE;
    memcpy(l->msg + len, iov[i].iov_base, iov[i].iov_len);
    len += iov[i].iov_len;
  }
  if ((flags & SESSION_LOW) && ws_conn_queued(&c->ws) + len > l->p.max_queue / 2) {
    l->ctr.send_dropped++;
    return -ENOBUFS;
  }
  int rc = ws_conn_send(&c->ws, l->msg, len);
  if (rc == -ENOBUFS)
    l->ctr.send_dropped++;
  if (rc < 0)
    return rc;
  l->ctr.msgs_out++;
  if (id && ws_conn_ping(&c->ws) == 0) {
    c->probe_id = id;
    c->ping_out = true;
  }
  flush(c);
  return 0;
}

static uint64_t ops_pto(const struct session *s)
{
  (void)s;
  return 300 * NS_PER_MS; /* the relay waits three of these for a probe's pong */
}

static size_t ops_max_datagram(const struct session *s)
{
  return of_sess(s)->l->p.max_msg;
}

static void ops_close(struct session *s, uint32_t code, const char *reason)
{
  struct ws_lconn *c = of_sess(s);
  if (!c->used || c->closing_fd || c->st != WS_ST_OPEN)
    return;
  uint16_t wc = code == 0 ? 1000 : (uint16_t)(4000 + code % 1000);
  if (reason && strcmp(reason, "relay shutting down") == 0)
    wc = 1001;
  ws_conn_close(&c->ws, wc, reason ? reason : "");
  c->st = WS_ST_CLOSING;
  c->deadline_ns = *c->l->now + WS_CLOSE_TIMEOUT_NS;
  flush(c);
}

static void ops_remote_str(const struct session *s, char *buf, size_t cap)
{
  io_sockaddr_str(&of_sess(s)->peer, buf, cap);
}

static uint64_t ops_client_key(const struct session *s)
{
  return of_sess(s)->client;
}

static const struct session_ops ws_session_ops = SESSION_OPS(ops);

/* ---- set-up ---- */

int ws_listen_init(struct ws_listen *l, struct io *io, struct timer_heap *timers, uint64_t *now,
                   struct relay *relay, struct tls_cert **cert, const struct ws_listen_params *p)
{
  char host[128];
  uint16_t port;
  union io_sockaddr sa;
  socklen_t salen;
  memset(l, 0, sizeof(*l));
  l->lfd = -1;
  timer_init(&l->sweep, sweep);
  if (p->max_conns == 0 || p->max_conns > 0xfffe || p->max_msg < 16 || p->max_queue < p->max_msg)
    return -EINVAL;
  if (io_parse_listen(p->listen, host, sizeof(host), &port) < 0 ||
      io_sockaddr_parse(host, port, &sa, &salen) < 0)
    return -EINVAL;
  l->io = io;
  l->timers = timers;
  l->now = now;
  l->relay = relay;
  l->cert = cert;
  l->p = *p;
  l->p.listen = NULL; /* borrowed only for the bind */
  l->nslots = p->max_conns;
  log_ratelimit_init(&l->rl, NS_PER_S, 10);
  l->conns = calloc(l->nslots, sizeof(*l->conns));
  l->plain = malloc(16384 + 256);
  l->msg = malloc(p->max_msg);
  if (!l->conns || !l->plain || !l->msg) {
    ws_listen_fini(l);
    return -ENOMEM;
  }
  int fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 && errno == EAFNOSUPPORT && sa.sa.sa_family == AF_INET6 &&
      IN6_IS_ADDR_UNSPECIFIED(&sa.in6.sin6_addr)) {
    /* a kernel without IPv6: the wildcard is IPv4's, as for QUIC's socket */
    io_sockaddr_parse("0.0.0.0", port, &sa, &salen);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) {
    int rc = -errno;
    ws_listen_fini(l);
    return rc;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)); /* one socket per worker */
  if (bind(fd, &sa.sa, salen) < 0 || listen(fd, 512) < 0) {
    int rc = -errno;
    close(fd);
    ws_listen_fini(l);
    return rc;
  }
  union io_sockaddr bound;
  socklen_t blen = sizeof(bound);
  if (getsockname(fd, &bound.sa, &blen) == 0)
    l->port = ntohs(bound.sa.sa_family == AF_INET6 ? bound.in6.sin6_port : bound.in.sin_port);
  l->lfd = fd;
  int rc = io_set_handler(io, IO_OP_WS, on_cqe, l);
  if (rc < 0 || (rc = timer_arm(timers, &l->sweep, *now + NS_PER_S)) < 0) {
    ws_listen_fini(l);
    return rc;
  }
  arm_accept(l);
  return 0;
}

void ws_listen_shutdown(struct ws_listen *l)
{
  for (uint32_t i = 0; l->conns && i < l->nslots; i++) {
    struct ws_lconn *c = &l->conns[i];
    if (c->used && c->sess_open)
      ops_close(&c->sess, 0, "relay shutting down");
  }
}

void ws_listen_fini(struct ws_listen *l)
{
  if (l->timers)
    timer_disarm(l->timers, &l->sweep);
  for (uint32_t i = 0; l->conns && i < l->nslots; i++) {
    struct ws_lconn *c = &l->conns[i];
    if (!c->used)
      continue;
    if (c->sess_open) {
      c->sess_open = false;
      relay_session_closed(l->relay, &c->sess, 0, "relay stopped");
    }
    close(c->fd);
    tls_stream_fini(&c->tls);
    if (c->ws_ok)
      ws_conn_fini(&c->ws);
    free(c->req);
  }
  if (l->lfd >= 0)
    close(l->lfd);
  free(l->conns);
  free(l->plain);
  free(l->msg);
  l->conns = NULL;
  l->plain = NULL;
  l->msg = NULL;
  l->lfd = -1;
}

uint32_t ws_listen_sessions(const struct ws_listen *l)
{
  uint32_t n = 0;
  for (uint32_t i = 0; l->conns && i < l->nslots; i++)
    n += l->conns[i].used && l->conns[i].sess_open;
  return n;
}

/* ---- counters ---- */

#define W(fam, help, labels, key, field)                                                           \
  COUNTER_DEF(struct ws_listen_counters, fam, help, labels, "ws counters", key, field)
static const struct counter_def ws_counter_defs[] = {
    W("wtrelay_ws_connections_total", "WebSocket fallback TCP connections, by outcome",
      "result=\"accepted\"", "accepted", accepted),
    W("wtrelay_ws_connections_total", NULL, "result=\"refused_full\"", "refused_full",
      refused_full),
    W("wtrelay_ws_connections_total", NULL, "result=\"refused_per_ip\"", "refused_per_ip",
      refused_per_ip),
    W("wtrelay_ws_connections_closed_total", "WebSocket fallback connections closed", NULL,
      "closed", closed),
    W("wtrelay_ws_tls_failures_total", "WebSocket fallback TLS handshakes that failed or timed out",
      "why=\"failed\"", "tls_failed", tls_failed),
    W("wtrelay_ws_tls_failures_total", NULL, "why=\"timeout\"", "tls_timeouts", tls_timeouts),
    W("wtrelay_ws_upgrades_total", "WebSocket Upgrade requests, by outcome", "result=\"accepted\"",
      "upgrades", upgrades),
    W("wtrelay_ws_upgrades_total", NULL, "result=\"refused\"", "upgrade_refused", upgrade_refused),
    W("wtrelay_ws_upgrades_total", NULL, "result=\"timeout\"", "upgrade_timeouts",
      upgrade_timeouts),
    W("wtrelay_ws_upgrades_total", NULL, "result=\"too_large\"", "req_too_large", req_too_large),
    W("wtrelay_ws_messages_received_total",
      "WebSocket binary messages (bavy datagrams) from clients", NULL, "msgs_in", msgs_in),
    W("wtrelay_ws_messages_sent_total", "WebSocket binary messages (bavy datagrams) to clients",
      NULL, "msgs_out", msgs_out),
    W("wtrelay_ws_bytes_received_total",
      "WebSocket plaintext bytes from clients (frames with their headers)", NULL, "bytes_in",
      bytes_in),
    W("wtrelay_ws_bytes_sent_total",
      "WebSocket plaintext bytes to clients (frames with their headers)", NULL, "bytes_out",
      bytes_out),
    W("wtrelay_ws_send_dropped_total",
      "frames toward a WebSocket client dropped because its send queue was full", NULL,
      "send_dropped", send_dropped),
    W("wtrelay_ws_pings_sent_total", "keep-alive pings sent to idle WebSocket clients", NULL,
      "pings_sent", pings_sent),
    W("wtrelay_ws_closed_idle_total", "WebSocket connections closed after no traffic", NULL,
      "idle_closed", idle_closed),
    W("wtrelay_ws_protocol_errors_total",
      "WebSocket connections closed for a protocol error or an oversized message", NULL,
      "proto_errors", proto_errors),
    W("wtrelay_ws_text_refused_total", "WebSocket text messages refused (bavy is binary)", NULL,
      "text_refused", text_refused),
};
const struct counter_table ws_listen_counter_table =
    COUNTER_TABLE(ws_counter_defs, struct ws_listen_counters);
