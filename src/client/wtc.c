/*
 * wtc: native WebTransport client. See include/wtrelay/wtc.h.
 */
#include "wtrelay/wtc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/container_of.h"
#include "wtrelay/iov.h"
#include "wtrelay/log.h"

const char *wtc_state_name(enum wtc_state st)
{
  switch (st) {
  case WTC_FREE:
    return "free";
  case WTC_CONNECTING:
    return "connecting";
  case WTC_OPEN:
    return "open";
  case WTC_REGISTERED:
    return "registered";
  case WTC_CLOSED:
    return "closed";
  case WTC_FAILED:
    return "failed";
  }
  return "?";
}

int wtc_url_parse(const char *url, char *host, size_t hostcap, uint16_t *port, char *path_out,
                  size_t pathcap)
{
  const char *p = url;
  if (strncmp(p, "https://", 8) != 0)
    return -EINVAL;
  p += 8;
  const char *hend;
  const char *after;
  if (*p == '[') {
    hend = strchr(p, ']');
    if (!hend)
      return -EINVAL;
    p++;
    after = hend + 1;
  } else {
    hend = p + strcspn(p, ":/?");
    after = hend;
  }
  size_t hlen = (size_t)(hend - p);
  if (hlen == 0 || hlen >= hostcap)
    return -EINVAL;
  memcpy(host, p, hlen);
  host[hlen] = '\0';
  *port = 443;
  if (*after == ':') {
    char *end;
    unsigned long v = strtoul(after + 1, &end, 10);
    if (end == after + 1 || v == 0 || v > 65535)
      return -EINVAL;
    *port = (uint16_t)v;
    after = end;
  }
  if (*after && *after != '/' && *after != '?')
    return -EINVAL;
  const char *path = *after ? after : "/";
  if (*path == '?') {
    if (strlen(path) + 2 > pathcap)
      return -EINVAL;
    snprintf(path_out, pathcap, "/%s", path);
    return 0;
  }
  if (strlen(path) + 1 > pathcap)
    return -EINVAL;
  snprintf(path_out, pathcap, "%s", path);
  return 0;
}

static struct wtc_session *sess_of_quic(struct wtc *c, struct quic_conn *qc)
{
  for (uint32_t i = 0; i < c->max_sess; i++)
    if (c->sess[i].state != WTC_FREE && c->sess[i].qc == qc)
      return &c->sess[i];
  return NULL;
}

#define BACKOFF_MIN_NS 250000000ull
#define BACKOFF_MAX_NS 30000000000ull

static void sess_down(struct wtc_session *s);

static void notify(struct wtc_session *s)
{
  if (s->state == WTC_CLOSED || s->state == WTC_FAILED)
    sess_down(s);
  if (s->c->ops && s->c->ops->on_state)
    s->c->ops->on_state(s->c->user, s);
}

/* A kept session went down: try again after the backoff. */
static void sess_down(struct wtc_session *s)
{
  struct wtc *c = s->c;
  timer_disarm(&c->w.timers, &s->hb_timer);
  timer_disarm(&c->w.timers, &s->fallback_timer);
  if (!s->keep || timer_armed(&s->retry_timer))
    return;
  if (s->backoff_ns < BACKOFF_MIN_NS)
    s->backoff_ns = BACKOFF_MIN_NS;
  log_info("session down, reconnecting", "session=%u in_ms=%llu reason=%s", s->idx,
           (unsigned long long)(s->backoff_ns / 1000000), LOG_Q(s->close_reason));
  timer_arm(&c->w.timers, &s->retry_timer, c->w.now + s->backoff_ns);
  s->backoff_ns *= 2;
  if (s->backoff_ns > BACKOFF_MAX_NS)
    s->backoff_ns = BACKOFF_MAX_NS;
}

static int sess_connect(struct wtc *c, struct wtc_session *s);
static int ws_connect(struct wtc *c, struct wtc_session *s);

static void retry_fn(struct timer *t, uint64_t now)
{
  struct wtc_session *s = container_of(t, struct wtc_session, retry_timer);
  struct wtc *c = s->c;
  (void)now;
  if (!s->keep || (s->state != WTC_CLOSED && s->state != WTC_FAILED))
    return;
  chunk_owner_release(&c->chunks, &s->chunks);
  s->hs = NULL;
  s->qc = NULL;
  s->wc = NULL;
  s->sx = NULL;
  s->status = 0;
  s->reconnects++;
  if (sess_connect(c, s) < 0) {
    s->state = WTC_FAILED;
    sess_down(s);
  }
}

static void hb_fn(struct timer *t, uint64_t now)
{
  struct wtc_session *s = container_of(t, struct wtc_session, hb_timer);
  if (s->state != WTC_REGISTERED || !s->heartbeat_ns)
    return;
  /* Three heartbeats in a row unanswered: the relay is gone without a
   * close (killed, or the path broke). Drop the connection, reconnect. */
  if (s->hb_sent - s->heartbeat_acks >= 3) {
    log_info("relay not answering heartbeats", "session=%u sent=%u acked=%u", s->idx, s->hb_sent,
             s->heartbeat_acks);
    if (s->qc)
      quic_conn_close(s->qc, 0);
    if (s->hs)
      s->hs->base.app_data = NULL;
    if (s->wc)
      wsc_abort(s->wc);
    s->hs = NULL;
    s->qc = NULL;
    s->wc = NULL;
    s->sx = NULL;
    s->state = WTC_FAILED;
    snprintf(s->close_reason, sizeof(s->close_reason), "heartbeats unanswered");
    notify(s);
    return;
  }
  s->hb_sent++;
  wtc_heartbeat(s);
  timer_arm(&s->c->w.timers, &s->hb_timer, now + s->heartbeat_ns);
}

static void on_session_ready(void *app, struct h3_session *hs, int status)
{
  struct wtc *c = app;
  struct wtc_session *s = sess_of_quic(c, h3_session_quic(hs));
  if (!s)
    return;
  s->hs = hs;
  hs->base.app_data = s;
  s->status = status;
  timer_disarm(&c->w.timers, &s->fallback_timer);
  if (status >= 200 && status < 300) {
    s->sx = &hs->base;
    s->state = WTC_OPEN;
    s->t_open_ns = c->w.now;
    if (s->keep)
      wtc_register(s, s->keep_mac);
  } else {
    s->state = WTC_FAILED;
  }
  notify(s);
}

static void on_conn_failed(void *app, struct quic_conn *qc)
{
  struct wtc *c = app;
  struct wtc_session *s = sess_of_quic(c, qc);
  if (!s)
    return;
  s->qc = NULL;
  if (c->transport == WTC_AUTO && s->state == WTC_CONNECTING) {
    /* WebTransport failed before it opened: the WebSocket at once */
    timer_disarm(&c->w.timers, &s->fallback_timer);
    if (ws_connect(c, s) == 0)
      return;
  }
  s->state = WTC_FAILED;
  notify(s);
}

/* One datagram payload from the relay, over either transport. */
static void sess_input(struct wtc *c, struct wtc_session *s, const uint8_t *data, size_t len)
{
  if (!s || len == 0)
    return;
  if (data[0] == BAVY_CONTROL) {
    struct bavy_server_msg m;
    s->ctrl_in++;
    if (bavy_ctrl_parse_server(data + 1, len - 1, &m) < 0)
      return;
    switch (m.type) {
    case BAVY_SMSG_ASSIGNED:
      memcpy(s->ip, m.ip, 4);
      memcpy(s->gateway, m.gateway, 4);
      memcpy(s->netmask, m.netmask, 4);
      memcpy(s->dns, m.dns, 4);
      s->assigned++;
      s->state = WTC_REGISTERED;
      s->t_assigned_ns = c->w.now;
      s->backoff_ns = 0;
      s->hb_sent = s->heartbeat_acks;
      if (s->keep && s->heartbeat_ns && !timer_armed(&s->hb_timer))
        timer_arm(&c->w.timers, &s->hb_timer, c->w.now + s->heartbeat_ns);
      break;
    case BAVY_SMSG_HEARTBEAT_ACK:
      s->heartbeat_acks++;
      break;
    case BAVY_SMSG_ERROR:
      s->errors++;
      snprintf(s->last_error, sizeof(s->last_error), "%s", m.message);
      break;
    default:
      break;
    }
    notify(s);
  } else if (data[0] == BAVY_FRAME) {
    s->frames_in++;
    if (c->ops && c->ops->on_frame)
      c->ops->on_frame(c->user, s, data + 1, len - 1);
  } else if (data[0] == BAVY_CHUNK) {
    struct bavy_chunk_hdr h;
    struct chunk_frame f;
    s->chunks_in++;
    if (bavy_chunk_header_parse(data + 1, len - 1, &h) < 0 ||
        chunk_reasm_input(&c->chunks, &s->chunks, &h, c->w.now, &f) != CHUNK_COMPLETE)
      return;
    size_t n = iov_gather(c->frame_buf, 0, sizeof(c->frame_buf), f.iov, f.iovcnt);
    chunk_reasm_release(&c->chunks, &f);
    s->frames_in++;
    if (c->ops && c->ops->on_frame)
      c->ops->on_frame(c->user, s, c->frame_buf, n);
  }
}

/* s's session (of either transport) ended with code and reason. */
static void sess_closed(struct wtc *c, struct wtc_session *s, uint32_t code, const char *reason)
{
  s->sx = NULL;
  chunk_owner_release(&c->chunks, &s->chunks);
  s->close_code = code;
  snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason ? reason : "");
  if (s->state != WTC_FAILED)
    s->state = WTC_CLOSED;
  notify(s);
}

static void on_session_datagram(void *app, struct h3_session *hs, const uint8_t *data, size_t len)
{
  sess_input(app, hs->base.app_data, data, len);
}

static void on_session_closed(void *app, struct h3_session *hs, uint32_t code, const char *reason)
{
  struct wtc *c = app;
  for (uint32_t i = 0; i < c->max_sess; i++) {
    struct wtc_session *s = &c->sess[i];
    if (s->state != WTC_FREE && (s->hs == hs || (s->qc && s->qc == h3_session_quic(hs)))) {
      s->hs = NULL;
      s->qc = NULL;
      sess_closed(c, s, code, reason);
    }
  }
}

static const char *client_path(void *app, struct quic_conn *qc)
{
  struct wtc_session *s = sess_of_quic(app, qc);
  return s && s->path[0] ? s->path : NULL;
}

static const struct h3_app_ops wtc_h3_ops = {
    .client_path = client_path,
    .on_session_ready = on_session_ready,
    .on_session_datagram = on_session_datagram,
    .on_session_closed = on_session_closed,
    .on_conn_failed = on_conn_failed,
};

/* ---- the WebSocket fallback ---- */

static void ws_on_open(void *ctx, struct wsc *w, int status)
{
  struct wtc *c = ctx;
  struct wtc_session *s = w->user;
  if (!s || s->wc != w)
    return;
  s->status = status;
  if (status == 200) {
    s->sx = &w->sess;
    s->state = WTC_OPEN;
    s->t_open_ns = c->w.now;
    if (c->transport == WTC_AUTO)
      c->prefer_ws = true;
    if (s->keep)
      wtc_register(s, s->keep_mac);
  } else {
    s->wc = NULL;
    s->state = WTC_FAILED;
    snprintf(s->close_reason, sizeof(s->close_reason), "websocket: %s",
             status < 0 ? strerror(-status) : "refused");
  }
  notify(s);
}

static void ws_on_message(void *ctx, struct wsc *w, const uint8_t *data, size_t len)
{
  struct wtc_session *s = w->user;
  if (s && s->wc == w)
    sess_input(ctx, s, data, len);
}

static void ws_on_closed(void *ctx, struct wsc *w, uint32_t code, const char *reason)
{
  struct wtc *c = ctx;
  struct wtc_session *s = w->user;
  if (!s || s->wc != w)
    return;
  s->wc = NULL;
  sess_closed(c, s, code, reason);
}

static const struct wsc_ops wtc_wsc_ops = {
    .on_open = ws_on_open, .on_message = ws_on_message, .on_closed = ws_on_closed};

static int ws_connect(struct wtc *c, struct wtc_session *s)
{
  const char *target = s->path[0] ? s->path : c->h3.target.path;
  int rc = wsc_connect(&c->wsc, s->idx, &c->remote, c->remotelen, c->host, c->hostport, target,
                       c->has_pin ? c->pin : NULL, s);
  if (rc < 0)
    return rc;
  s->wc = &c->wsc.w[s->idx];
  s->state = WTC_CONNECTING;
  return 0;
}

/* auto: the WebTransport session did not open in time (UDP blocked?):
 * the WebSocket instead. */
static void fallback_fn(struct timer *t, uint64_t now)
{
  struct wtc_session *s = container_of(t, struct wtc_session, fallback_timer);
  (void)now;
  if (s->state != WTC_CONNECTING || !s->qc)
    return;
  log_info("WebTransport did not open, trying the WebSocket fallback", "session=%u", s->idx);
  quic_conn_close(s->qc, 0);
  s->qc = NULL;
  if (ws_connect(s->c, s) < 0) {
    s->state = WTC_FAILED;
    notify(s);
  }
}

/* Opens s by the transport the client is set to. */
static int sess_connect(struct wtc *c, struct wtc_session *s)
{
  if (c->transport == WTC_WS || (c->transport == WTC_AUTO && c->prefer_ws))
    return ws_connect(c, s);
  int rc = quic_client_connect(&c->quic, &c->remote, c->remotelen, c->host,
                               c->has_pin ? c->pin : NULL, &s->qc);
  if (rc < 0)
    return rc;
  s->state = WTC_CONNECTING;
  if (c->transport == WTC_AUTO)
    timer_arm(&c->w.timers, &s->fallback_timer, c->w.now + WTC_FALLBACK_NS);
  return 0;
}

void wtc_set_transport(struct wtc *c, enum wtc_transport t)
{
  c->transport = t;
}

const char *wtc_session_transport(const struct wtc_session *s)
{
  return s->sx ? session_transport_name(s->sx) : "none";
}

static int resolve(const char *host, uint16_t port, union io_sockaddr *out, socklen_t *len)
{
  if (io_sockaddr_parse(host, port, out, len) == 0)
    return 0;
  struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;
  if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
    return -EHOSTUNREACH;
  memset(out, 0, sizeof(*out));
  memcpy(out, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  if (out->sa.sa_family == AF_INET)
    out->in.sin_port = htons(port);
  else
    out->in6.sin6_port = htons(port);
  freeaddrinfo(res);
  return 0;
}

int wtc_init(struct wtc *c, const char *url, const uint8_t *pin, uint32_t max_sessions,
             const struct wtc_ops *ops, void *user)
{
  int rc;
  char path[512];
  uint16_t port;
  memset(c, 0, sizeof(*c));
  if ((rc = wtc_url_parse(url, c->host, sizeof(c->host), &port, path, sizeof(path))) < 0)
    return rc;
  if ((rc = resolve(c->host, port, &c->remote, &c->remotelen)) < 0)
    return rc;
  if (pin) {
    memcpy(c->pin, pin, 32);
    c->has_pin = true;
  }
  c->ops = ops;
  c->user = user;
  c->max_sess = max_sessions;
  c->sess = calloc(max_sessions, sizeof(*c->sess));
  if (!c->sess)
    return -ENOMEM;
  struct chunk_params cpar = {.slots = max_sessions * 4,
                              .per_owner = 4,
                              .max_frame = WTC_MAX_FRAME,
                              .max_age_ns = 5000000000ull};
  if ((rc = chunk_pool_init(&c->chunks, &cpar)) < 0)
    goto fail_sess;
  struct io_params iop;
  io_params_default(&iop);
  iop.rx_bufs = 64;
  /* per session: quic timer, h3 close timer, retry, heartbeat and fallback
   * timers; the WebSocket table's sweep */
  if ((rc = worker_init(&c->w, 0, &iop, max_sessions * 5 + 17)) < 0)
    goto fail_sess;
  if ((rc = tls_global_init()) < 0)
    goto fail_worker;
  const char *bind = c->remote.sa.sa_family == AF_INET ? "0.0.0.0" : "::";
  if ((rc = io_udp_open(&c->w.io, bind, 0, quic_endpoint_on_packet, &c->quic, &c->udp)) < 0)
    goto fail_worker;
  if ((rc = h3_endpoint_init(&c->h3, false, max_sessions, &c->w.timers, &wtc_h3_ops, c)) < 0)
    goto fail_worker;
  char hostport[240];
  if (strchr(c->host, ':'))
    snprintf(hostport, sizeof(hostport), "[%.200s]:%u", c->host, port);
  else
    snprintf(hostport, sizeof(hostport), "%.200s:%u", c->host, port);
  snprintf(c->h3.target.authority, sizeof(c->h3.target.authority), "%s", hostport);
  snprintf(c->hostport, sizeof(c->hostport), "%s", hostport);
  snprintf(c->h3.target.path, sizeof(c->h3.target.path), "%s", path);
  snprintf(c->h3.target.origin, sizeof(c->h3.target.origin), "https://%s", hostport);
  struct quic_params qp;
  quic_params_default(&qp);
  qp.max_conns = max_sessions;
  qp.max_conns_per_ip = max_sessions;
  qp.dgram_pool = max_sessions * 8 + 64;
  if ((rc = quic_endpoint_init(&c->quic, &c->w, c->udp, NULL, false, &qp, &h3_quic_ops, &c->h3)) <
      0)
    goto fail_h3;
  h3_endpoint_bind(&c->h3, &c->quic);
  if ((rc = wsc_table_init(&c->wsc, &c->w.io, &c->w.timers, &c->w.now, max_sessions, &wtc_wsc_ops,
                           c)) < 0) {
    quic_endpoint_fini(&c->quic);
    goto fail_h3;
  }
  c->w.turn = (worker_turn_fn)quic_endpoint_turn;
  c->w.turn_ctx = &c->quic;
  return 0;
fail_h3:
  h3_endpoint_fini(&c->h3);
fail_worker:
  worker_fini(&c->w);
fail_sess:
  chunk_pool_fini(&c->chunks);
  free(c->sess);
  c->sess = NULL;
  return rc;
}

void wtc_fini(struct wtc *c)
{
  if (!c->sess)
    return;
  wsc_table_fini(&c->wsc);
  quic_endpoint_fini(&c->quic);
  h3_endpoint_fini(&c->h3);
  worker_fini(&c->w);
  chunk_pool_fini(&c->chunks);
  free(c->sess);
  c->sess = NULL;
}

int wtc_open(struct wtc *c, struct wtc_session **out)
{
  return wtc_open_path(c, NULL, out);
}

int wtc_open_path(struct wtc *c, const char *path, struct wtc_session **out)
{
  if (path && strlen(path) >= sizeof(((struct wtc_session *)0)->path))
    return -ENAMETOOLONG;
  struct wtc_session *s = NULL;
  for (uint32_t i = 0; i < c->max_sess && !s; i++)
    if (c->sess[i].state == WTC_FREE)
      s = &c->sess[i];
  if (!s)
    return -ENOSPC;
  memset(s, 0, sizeof(*s));
  s->c = c;
  s->idx = (uint32_t)(s - c->sess);
  timer_init(&s->retry_timer, retry_fn);
  timer_init(&s->hb_timer, hb_fn);
  timer_init(&s->fallback_timer, fallback_fn);
  if (path)
    snprintf(s->path, sizeof(s->path), "%s", path);
  c->w.now = clock_now_ns();
  /* Over WebTransport the h3 layer creates the session when the handshake
   * completes and reports it through on_session_ready; we find it by its
   * connection. */
  int rc = sess_connect(c, s);
  if (rc < 0)
    return rc;
  *out = s;
  return 0;
}

static int send_ctrl(struct wtc_session *s, const char *json, int len)
{
  if (len < 0)
    return len;
  if (!s->sx || (s->state != WTC_OPEN && s->state != WTC_REGISTERED))
    return -ENOTCONN;
  uint8_t type = BAVY_CONTROL;
  struct iovec iov[2] = {{.iov_base = &type, .iov_len = 1},
                         {.iov_base = (void *)json, .iov_len = (size_t)len}};
  return session_send(s->sx, iov, 2);
}

int wtc_register(struct wtc_session *s, const uint8_t mac[6])
{
  char buf[128];
  memcpy(s->mac, mac, 6);
  return send_ctrl(s, buf, bavy_write_register(buf, sizeof(buf), mac));
}

int wtc_heartbeat(struct wtc_session *s)
{
  char buf[64];
  return send_ctrl(s, buf, bavy_write_heartbeat(buf, sizeof(buf)));
}

int wtc_disconnect(struct wtc_session *s)
{
  char buf[64];
  return send_ctrl(s, buf, bavy_write_disconnect(buf, sizeof(buf)));
}

int wtc_send_raw(struct wtc_session *s, const uint8_t *data, size_t len)
{
  if (!s->sx)
    return -ENOTCONN;
  struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
  return session_send(s->sx, &iov, len ? 1 : 0);
}

int wtc_send_frame(struct wtc_session *s, const uint8_t *frame, size_t len)
{
  if (!s->sx)
    return -ENOTCONN;
  struct chunk_plan plan;
  struct iovec fv = {.iov_base = (void *)frame, .iov_len = len};
  int rc = chunk_split_plan(len, session_max_datagram(s->sx), &plan);
  if (rc < 0)
    return rc;
  if (!plan.chunked) {
    uint8_t type = BAVY_FRAME;
    struct iovec iov[2] = {{.iov_base = &type, .iov_len = 1}, fv};
    rc = session_send(s->sx, iov, 2);
    if (rc == 0)
      s->frames_out++;
    return rc;
  }
  uint8_t buf[CHUNK_HDR + BAVY_CHUNK_DATA_MAX];
  uint16_t id = s->next_chunk_id++;
  for (uint32_t k = 0; k < plan.total; k++) {
    int n = chunk_split_write(buf, sizeof(buf), &plan, id, k, &fv, 1);
    if (n < 0)
      return n;
    rc = session_send(s->sx, &(struct iovec){.iov_base = buf, .iov_len = (size_t)n}, 1);
    if (rc < 0)
      return rc;
    s->chunks_out++;
  }
  s->frames_out++;
  return 0;
}

void wtc_keep(struct wtc_session *s, const uint8_t mac[6], uint64_t heartbeat_ns)
{
  s->keep = true;
  memcpy(s->keep_mac, mac, 6);
  s->heartbeat_ns = heartbeat_ns;
  if (s->state == WTC_OPEN)
    wtc_register(s, mac);
  else if (s->state == WTC_CLOSED || s->state == WTC_FAILED)
    sess_down(s);
}

void wtc_close(struct wtc_session *s, uint32_t code, const char *reason)
{
  s->keep = false;
  timer_disarm(&s->c->w.timers, &s->retry_timer);
  timer_disarm(&s->c->w.timers, &s->hb_timer);
  timer_disarm(&s->c->w.timers, &s->fallback_timer);
  if (s->sx)
    session_close(s->sx, code, reason);
}

int wtc_poll(struct wtc *c, uint64_t max_wait_ns)
{
  c->w.now = clock_now_ns();
  timer_run(&c->w.timers, c->w.now);
  quic_endpoint_turn(&c->quic, c->w.now);
  io_flush(&c->w.io);
  uint64_t next = timer_next(&c->w.timers);
  if (next > c->w.now + max_wait_ns)
    next = c->w.now + max_wait_ns;
  int rc = io_wait(&c->w.io, next, c->w.now);
  if (rc < 0)
    return rc;
  c->w.now = clock_now_ns();
  io_dispatch(&c->w.io);
  return 0;
}

int wtc_run(struct wtc *c, uint64_t timeout_ns, bool (*done)(void *arg), void *arg)
{
  uint64_t deadline = clock_now_ns() + timeout_ns;
  for (;;) {
    uint64_t now = clock_now_ns();
    if (done && done(arg))
      return 0;
    if (now >= deadline)
      return -ETIMEDOUT;
    /* Wake at least every 50 ms so done() is polled. */
    uint64_t wait = deadline - now;
    int rc = wtc_poll(c, wait < 50000000ull ? wait : 50000000ull);
    if (rc < 0)
      return rc;
  }
}
