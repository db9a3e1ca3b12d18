/*
 * wsc: see include/wtrelay/wsc.h for the theory of operation.
 *
 * A connection's life: connect (on the ring), the TLS handshake over the
 * stream's buffers, the Upgrade request, the answer's head read and
 * checked, then frames. Received bytes land in the TLS stream's receive
 * buffer; what any step has to send is encrypted into its send buffer
 * and one send is put in flight, whose completion sends the rest. The
 * descriptor is closed once no operation of it is in flight.
 */
#include "wtrelay/wsc.h"

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
#include "wtrelay/timeunit.h"

#define K_CONNECT 0u
#define K_RECV 1u
#define K_SEND 2u
#define K_CLOSE 3u
#define UDX(kind, gen, slot) (((uint32_t)(kind) << 30) | ((uint32_t)((gen)&0x3fff) << 16) | (slot))
#define PLAIN_MAX (16384 + 256)

static const struct session_ops wsc_session_ops;

static void submit(struct wsc *w, struct io_uring_sqe *sqe, uint32_t kind)
{
  uint32_t slot = (uint32_t)(w - w->t->w);
  io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_WSC, UDX(kind, w->gen, slot)));
}

/* The connection's buffers and framing (not its descriptor). */
static void release(struct wsc *w)
{
  if (w->tls_ok)
    tls_stream_fini(&w->tls);
  if (w->ws_ok)
    ws_conn_fini(&w->ws);
  free(w->head);
  w->head = NULL;
  w->tls_ok = w->ws_ok = false;
}

/* Frees the connection once nothing of it is in flight. */
static void maybe_free(struct wsc *w)
{
  if (w->st == WSC_FREE || !w->ending || w->reading || w->sending || w->connecting)
    return;
  struct io_uring_sqe *sqe = w->fd >= 0 ? io_sqe(w->t->io) : NULL;
  if (sqe) {
    io_uring_prep_close(sqe, w->fd);
    io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_WSC, UDX(K_CLOSE, 0x3fff, 0xffff)));
  } else if (w->fd >= 0) {
    close(w->fd);
  }
  release(w);
  w->fd = -1;
  w->st = WSC_FREE;
  w->gen++;
}

/* The end: the owner hears of it (opened, or refused) unless told not. */
static void end(struct wsc *w, int status, const char *why, bool tell)
{
  if (w->st == WSC_FREE || w->ending)
    return;
  w->ending = true;
  if (tell && w->reported_open)
    w->t->ops->on_closed(w->t->ctx, w, 0, why);
  else if (tell)
    w->t->ops->on_open(w->t->ctx, w, status && status != 200 ? status : -EPROTO);
  if (w->fd >= 0 && (w->reading || w->sending || w->connecting))
    shutdown(w->fd, SHUT_RDWR);
  maybe_free(w);
}

void wsc_abort(struct wsc *w)
{
  end(w, -ECANCELED, "aborted", false);
}

static void arm_recv(struct wsc *w)
{
  if (w->reading || w->ending)
    return;
  size_t room;
  uint8_t *tail = tls_stream_in_tail(&w->tls, &room);
  struct io_uring_sqe *sqe = room ? io_sqe(w->t->io) : NULL;
  if (!sqe) {
    end(w, -ENOBUFS, "receive buffer or ring full", true);
    return;
  }
  io_uring_prep_recv(sqe, w->fd, tail, room, 0);
  submit(w, sqe, K_RECV);
  w->reading = true;
}

static void flush(struct wsc *w)
{
  struct wsc_table *t = w->t;
  if (w->sending || w->ending)
    return;
  while (w->ws_ok) {
    size_t room = tls_stream_writable(&w->tls);
    if (room > 16384)
      room = 16384;
    size_t n = room ? ws_conn_output(&w->ws, t->plain, room) : 0;
    if (!n)
      break;
    if (tls_stream_write(&w->tls, t->plain, n) != (ssize_t)n) {
      end(w, -EPROTO, "TLS write failed", true);
      return;
    }
  }
  if (!w->tls.outlen) {
    if (w->st == WSC_CLOSING && ws_conn_done(&w->ws))
      end(w, 0, "closed", true);
    return;
  }
  struct io_uring_sqe *sqe = io_sqe(t->io);
  if (!sqe) {
    end(w, -ENOBUFS, "ring full", true);
    return;
  }
  io_uring_prep_send(sqe, w->fd, w->tls.out, w->tls.outlen, MSG_NOSIGNAL);
  submit(w, sqe, K_SEND);
  w->sending = true;
}

static void on_message(void *ctx, const uint8_t *data, size_t len)
{
  struct wsc *w = ctx;
  if (w->st == WSC_OPEN)
    w->t->ops->on_message(w->t->ctx, w, data, len);
}

static const struct ws_conn_ops conn_ops = {.on_message = on_message};

/* Plaintext from the relay. */
static void plain_in(struct wsc *w, const uint8_t *p, size_t n)
{
  struct wsc_table *t = w->t;
  if (w->st == WSC_UPGRADE) {
    size_t before = w->headlen;
    size_t take = n < WSC_HEAD_MAX - before ? n : WSC_HEAD_MAX - before;
    memcpy(w->head + before, p, take);
    w->headlen += take;
    size_t hlen = http1_head_len(w->head, w->headlen);
    if (!hlen) {
      if (w->headlen == WSC_HEAD_MAX)
        end(w, -EPROTO, "answer head too large", true);
      return;
    }
    int st = ws_client_check(w->head, hlen, w->key);
    struct ws_conn_params wp = {.max_msg = WSC_MSG_MAX, .max_queue = 1u << 20};
    if (st != 0 || ws_conn_init_client(&w->ws, &wp, &conn_ops, w) < 0) {
      end(w, st ? st : -ENOMEM, "upgrade refused", true);
      return;
    }
    w->ws_ok = true;
    w->st = WSC_OPEN;
    w->deadline_ns = 0;
    w->reported_open = true;
    t->ops->on_open(t->ctx, w, 200);
    size_t used = hlen - before;
    if (w->st == WSC_OPEN && !w->ending && used < n)
      plain_in(w, p + used, n - used);
    return;
  }
  if ((w->st != WSC_OPEN && w->st != WSC_CLOSING) || !w->ws_ok)
    return;
  if (ws_conn_input(&w->ws, p, n) < 0 || ws_conn_closing(&w->ws)) {
    if (w->st == WSC_OPEN) {
      w->st = WSC_CLOSING;
      w->deadline_ns = *t->now + 2 * NS_PER_S;
    }
  }
}

static void on_recv(struct wsc *w, int res)
{
  struct wsc_table *t = w->t;
  w->reading = false;
  if (w->ending || res <= 0) {
    end(w, res < 0 ? res : -ECONNRESET, "connection closed", true);
    return;
  }
  tls_stream_in_commit(&w->tls, (size_t)res);
  if (!w->tls.handshake_done) {
    int rc = tls_stream_handshake(&w->tls);
    if (rc == -EPROTO) {
      end(w, -EACCES, "TLS handshake failed", true);
      return;
    }
    if (rc == 0) {
      char req[1024];
      int n = ws_client_request(req, sizeof(req), w->host, w->target, w->key);
      if (n < 0 || tls_stream_write(&w->tls, (const uint8_t *)req, (size_t)n) != n) {
        end(w, -ENOSPC, "request", true);
        return;
      }
      w->st = WSC_UPGRADE;
    }
  }
  while (w->tls.handshake_done && !w->ending) {
    ssize_t n = tls_stream_read(&w->tls, t->plain, PLAIN_MAX);
    if (n == -EAGAIN)
      break;
    if (n <= 0) {
      end(w, -ECONNRESET, n == 0 ? "relay closed" : "TLS error", true);
      return;
    }
    plain_in(w, t->plain, (size_t)n);
  }
  if (w->ending)
    return;
  flush(w);
  arm_recv(w);
}

static void on_connected(struct wsc *w, int res)
{
  w->connecting = false;
  if (w->ending || res < 0) {
    end(w, res < 0 ? res : -ECANCELED, "connect failed", true);
    return;
  }
  int one = 1;
  setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  w->st = WSC_TLS;
  tls_stream_handshake(&w->tls); /* the ClientHello */
  flush(w);
  arm_recv(w);
}

static void on_cqe(void *ctx, uint32_t idx, struct io_uring_cqe *cqe)
{
  struct wsc_table *t = ctx;
  uint32_t kind = idx >> 30, gen = (idx >> 16) & 0x3fff, slot = idx & 0xffff;
  if (kind == K_CLOSE || slot >= t->n)
    return;
  struct wsc *w = &t->w[slot];
  if (w->st == WSC_FREE || (w->gen & 0x3fff) != gen)
    return;
  if (kind == K_CONNECT) {
    on_connected(w, cqe->res);
  } else if (kind == K_RECV) {
    on_recv(w, cqe->res);
  } else {
    w->sending = false;
    if (cqe->res <= 0 || w->ending) {
      end(w, -ECONNRESET, "send failed", true);
    } else {
      tls_stream_consumed(&w->tls, (size_t)cqe->res);
      flush(w);
    }
  }
  maybe_free(w);
}

static void sweep(struct timer *tm, uint64_t now)
{
  struct wsc_table *t = container_of(tm, struct wsc_table, sweep);
  for (uint32_t i = 0; i < t->n; i++) {
    struct wsc *w = &t->w[i];
    if (w->st != WSC_FREE && !w->ending && w->deadline_ns && now >= w->deadline_ns)
      end(w, -ETIMEDOUT, "timeout", true);
  }
  timer_arm(t->timers, &t->sweep, now + 250 * NS_PER_MS);
}

int wsc_connect(struct wsc_table *t, uint32_t idx, const union io_sockaddr *remote,
                socklen_t remotelen, const char *server_name, const char *host, const char *target,
                const uint8_t *pin, void *user)
{
  if (idx >= t->n || t->w[idx].st != WSC_FREE)
    return -EBUSY;
  struct wsc *w = &t->w[idx];
  uint16_t gen = w->gen;
  memset(w, 0, sizeof(*w));
  w->gen = gen;
  w->t = t;
  w->user = user;
  w->fd = -1;
  w->remote = *remote;
  w->remotelen = remotelen;
  if (strlen(host) >= sizeof(w->host) || strlen(target) >= sizeof(w->target))
    return -ENAMETOOLONG;
  snprintf(w->host, sizeof(w->host), "%s", host);
  snprintf(w->target, sizeof(w->target), "%s", target);
  size_t plen = strcspn(target, "?");
  if (session_set_target(&w->sess, target, strlen(target)) < 0 || plen == 0)
    return -EINVAL;
  w->sess.ops = &wsc_session_ops;
  w->sess.transport = SESSION_WEBSOCKET;
  w->head = malloc(WSC_HEAD_MAX);
  if (!w->head)
    return -ENOMEM;
  int rc = tls_stream_client_new(&w->tls, server_name, pin, NULL, 34816, 32768);
  if (rc < 0) {
    free(w->head);
    w->head = NULL;
    return rc;
  }
  w->tls_ok = true;
  w->fd = socket(remote->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct io_uring_sqe *sqe = w->fd >= 0 ? io_sqe(t->io) : NULL;
  if (!sqe) {
    rc = w->fd < 0 ? -errno : -ENOBUFS;
    if (w->fd >= 0)
      close(w->fd);
    tls_stream_fini(&w->tls);
    free(w->head);
    w->head = NULL;
    w->tls_ok = false;
    w->fd = -1;
    return rc;
  }
  io_uring_prep_connect(sqe, w->fd, &w->remote.sa, w->remotelen);
  w->st = WSC_CONNECTING;
  submit(w, sqe, K_CONNECT);
  w->connecting = true;
  w->deadline_ns = *t->now + WSC_TIMEOUT_NS;
  return 0;
}

/* ---- the session operations ---- */

static struct wsc *of_sess(const struct session *s)
{
  return container_of(s, struct wsc, sess);
}

static int ops_send(struct session *s, const struct iovec *iov, int iovcnt, unsigned flags,
                    uint64_t id)
{
  (void)flags, (void)id;
  struct wsc *w = of_sess(s);
  if (w->st != WSC_OPEN || w->ending)
    return -ENOTCONN;
  size_t len = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > WSC_MSG_MAX - len)
      return -EMSGSIZE;
    if (iov[i].iov_len)
      memcpy(w->t->msg + len, iov[i].iov_base, iov[i].iov_len);
    len += iov[i].iov_len;
  }
  int rc = ws_conn_send(&w->ws, w->t->msg, len);
  if (rc == 0)
    flush(w);
  return rc;
}

static uint64_t ops_pto(const struct session *s)
{
  (void)s;
  return 300 * NS_PER_MS;
}

static size_t ops_max_datagram(const struct session *s)
{
  (void)s;
  return WSC_MSG_MAX;
}

static void ops_close(struct session *s, uint32_t code, const char *reason)
{
  struct wsc *w = of_sess(s);
  if (w->st != WSC_OPEN || w->ending)
    return;
  ws_conn_close(&w->ws, code ? (uint16_t)(4000 + code % 1000) : 1000, reason ? reason : "");
  w->st = WSC_CLOSING;
  w->deadline_ns = *w->t->now + 2 * NS_PER_S;
  flush(w);
}

static void ops_remote_str(const struct session *s, char *buf, size_t cap)
{
  io_sockaddr_str(&of_sess(s)->remote, buf, cap);
}

static uint64_t ops_client_key(const struct session *s)
{
  return io_sockaddr_client_key(&of_sess(s)->remote);
}

static const struct session_ops wsc_session_ops = SESSION_OPS(ops);

/* ---- the table ---- */

int wsc_table_init(struct wsc_table *t, struct io *io, struct timer_heap *timers, uint64_t *now,
                   uint32_t n, const struct wsc_ops *ops, void *ctx)
{
  memset(t, 0, sizeof(*t));
  timer_init(&t->sweep, sweep);
  if (n == 0 || n > 0xffff)
    return -EINVAL;
  t->io = io;
  t->timers = timers;
  t->now = now;
  t->ops = ops;
  t->ctx = ctx;
  t->n = n;
  t->w = calloc(n, sizeof(*t->w));
  t->plain = malloc(PLAIN_MAX);
  t->msg = malloc(WSC_MSG_MAX);
  if (!t->w || !t->plain || !t->msg) {
    wsc_table_fini(t);
    return -ENOMEM;
  }
  for (uint32_t i = 0; i < n; i++)
    t->w[i].fd = -1;
  int rc = io_set_handler(io, IO_OP_WSC, on_cqe, t);
  if (rc < 0 || (rc = timer_arm(timers, &t->sweep, *now + 250 * NS_PER_MS)) < 0) {
    wsc_table_fini(t);
    return rc;
  }
  return 0;
}

void wsc_table_fini(struct wsc_table *t)
{
  if (t->timers)
    timer_disarm(t->timers, &t->sweep);
  for (uint32_t i = 0; t->w && i < t->n; i++) {
    struct wsc *w = &t->w[i];
    if (w->st == WSC_FREE)
      continue;
    if (w->fd >= 0)
      close(w->fd);
    release(w);
  }
  free(t->w);
  free(t->plain);
  free(t->msg);
  memset(t, 0, sizeof(*t));
}
