/*
 * h3: HTTP/3 + WebTransport per connection. See include/wtrelay/h3.h.
 *
 * State lives in struct h3_conn, one per QUIC connection slot (indexed by
 * the quic handle, so no second pool). Peer uni streams are classified by
 * their type varint in a small table; the peer's control stream and request
 * streams get a frame reader with a fixed buffer, which bounds what one
 * peer can make us hold. Errors that RFC 9114 calls connection errors close
 * the QUIC connection with the H3 code; stream errors reset the stream.
 */
#include "wtrelay/h3.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/container_of.h"
#include "wtrelay/counter.h"
#include "wtrelay/log.h"
#include "wtrelay/varint.h"

static const struct session_ops h3_session_ops;

#define H3_UNI_SLOTS 16
#define H3_REQ_SLOTS 4
#define H3_FRAME_BUF 4096
#define H3_CLOSE_DELAY_NS 300000000ull

enum uni_kind {
  UNI_FREE = 0,
  UNI_PENDING, /* type varint not complete yet */
  UNI_CONTROL,
  UNI_QPACK_ENC,
  UNI_DISCARD, /* QPACK decoder stream: read and drop */
};

struct h3_uni {
  int64_t sid;
  uint8_t kind;
  uint8_t typelen;
  uint8_t typebuf[8];
};

struct h3_req {
  bool used;
  bool headers_seen;
  int64_t sid;
  struct h3_conn *hc;
  struct h3_frame_reader rd; /* heap mode: holds a buffer only inside a split frame */
};

struct h3_conn {
  struct h3_endpoint *h3;
  struct quic_conn *qc;
  bool used;
  bool ctrl_opened;
  bool peer_ctrl_seen, peer_settings_seen, peer_ctrl_failed;
  bool session_ended;
  bool goaway_sent;
  int64_t ctrl_sid;
  int64_t peer_ctrl_sid;
  struct h3_peer_settings peer;
  struct h3_frame_reader ctrl_rd; /* heap mode, as the requests' */
  struct h3_uni uni[H3_UNI_SLOTS];
  struct h3_req req[H3_REQ_SLOTS];
  struct h3_qpack qpack;
  bool has_session;
  struct h3_session sess;
  struct capsule_reader cap;
  struct timer close_timer;
};

static uint64_t h3_now(const struct h3_endpoint *h3)
{
  return h3->quic->w->now;
}

int h3_endpoint_init(struct h3_endpoint *h3, bool is_server, uint32_t max_conns,
                     struct timer_heap *timers, const struct h3_app_ops *ops, void *app)
{
  memset(h3, 0, sizeof(*h3));
  h3->is_server = is_server;
  h3->ops = ops;
  h3->app = app;
  h3->timers = timers;
  h3->nconns = max_conns;
  h3->nghttp3_mem = (nghttp3_mem)MEMCOUNT_HOOKS(&h3->nghttp3_bytes);
  h3->conns = calloc(max_conns, sizeof(*h3->conns));
  if (!h3->conns)
    return -ENOMEM;
  log_ratelimit_init(&h3->rl, 1000000000ull, 10);
  return 0;
}

size_t h3_conn_size(void)
{
  return sizeof(struct h3_conn);
}

uint64_t h3_buffer_bytes(const struct h3_endpoint *h3)
{
  return h3->buf_bytes.bytes;
}

void h3_endpoint_bind(struct h3_endpoint *h3, struct quic_endpoint *quic)
{
  h3->quic = quic;
}

/* A request stream is gone: its slot and any frame half gathered. */
static void req_release(struct h3_req *rq)
{
  if (rq->used)
    h3_frame_reader_release(&rq->rd);
  rq->used = false;
}

static void conn_free(struct h3_conn *hc)
{
  if (!hc->used)
    return;
  timer_disarm(hc->h3->timers, &hc->close_timer);
  h3_qpack_fini(&hc->qpack);
  h3_frame_reader_release(&hc->ctrl_rd);
  capsule_reader_release(&hc->cap);
  for (int i = 0; i < H3_REQ_SLOTS; i++)
    req_release(&hc->req[i]);
  hc->used = false;
  if (hc->qc)
    hc->qc->app_data = NULL;
  hc->qc = NULL;
}

void h3_endpoint_fini(struct h3_endpoint *h3)
{
  if (h3->conns)
    for (uint32_t i = 0; i < h3->nconns; i++)
      conn_free(&h3->conns[i]);
  free(h3->conns);
  h3->conns = NULL;
}

struct quic_conn *h3_session_quic(const struct h3_session *s)
{
  return s->hc ? s->hc->qc : NULL;
}

void h3_session_remote_str(const struct h3_session *s, char *buf, size_t cap)
{
  if (s->hc && s->hc->qc)
    quic_conn_remote_str(s->hc->qc, buf, cap);
  else
    snprintf(buf, cap, "?");
}

uint64_t h3_session_client_key(const struct h3_session *s)
{
  return s->hc && s->hc->qc ? quic_conn_client_key(s->hc->qc) : 0;
}

/* Connection error: close the QUIC connection with an H3 code. */
static int conn_error(struct h3_conn *hc, uint64_t code, const char *why)
{
  struct h3_endpoint *h3 = hc->h3;
  h3->ctr.protocol_errors++;
  uint32_t sup;
  if (log_ratelimit_allow(&h3->rl, h3_now(h3), &sup)) {
    char addr[64];
    quic_conn_remote_str(hc->qc, addr, sizeof(addr));
    log_info("HTTP/3 connection error", "remote=%s code=0x%llx why=%s suppressed=%u", addr,
             (unsigned long long)code, LOG_Q(why), sup);
  }
  quic_conn_close(hc->qc, code);
  return -EPROTO;
}

static void session_end(struct h3_conn *hc, uint32_t code, const char *reason)
{
  if (!hc->has_session || hc->session_ended)
    return;
  hc->session_ended = true;
  hc->sess.closed = true;
  hc->h3->ctr.sessions_closed++;
  if (hc->sess.open && hc->h3->ops->on_session_closed)
    hc->h3->ops->on_session_closed(hc->h3->app, &hc->sess, code, reason);
}

/* The session ended from the peer's side (close capsule, FIN or reset):
 * close the QUIC connection a moment later, not at once. An immediate
 * CONNECTION_CLOSE can overtake the close the peer is still delivering to
 * its page (Chromium then reports "Connection lost" instead of the close
 * code), and when we started the close, the peer's FIN is just its answer. */
static void session_end_by_peer(struct h3_conn *hc, uint32_t code, const char *reason)
{
  session_end(hc, code, reason);
  if (!timer_armed(&hc->close_timer))
    timer_arm(hc->h3->timers, &hc->close_timer, h3_now(hc->h3) + H3_CLOSE_DELAY_NS);
}

static void close_timer_fn(struct timer *t, uint64_t now)
{
  struct h3_conn *hc = container_of(t, struct h3_conn, close_timer);
  if (hc->used && hc->qc)
    quic_conn_close(hc->qc, H3_NO_ERROR);
}

/* ---- sending helpers ---- */

static int send_headers(struct h3_conn *hc, int64_t sid, const uint8_t *section, size_t len,
                        bool fin)
{
  uint8_t buf[QUIC_SOUT_SIZE];
  int n = h3_frame_header_write(buf, sizeof(buf), H3_FRAME_HEADERS, len);
  if (n < 0 || (size_t)n + len > sizeof(buf))
    return -ENOBUFS;
  memcpy(buf + n, section, len);
  return quic_conn_stream_send(hc->qc, sid, buf, (size_t)n + len, fin);
}

static int send_status(struct h3_conn *hc, int64_t sid, int status, bool fin)
{
  uint8_t section[128];
  int n = h3_qpack_encode_response(&hc->qpack, section, sizeof(section), status, status == 200);
  if (n < 0)
    return n;
  return send_headers(hc, sid, section, (size_t)n, fin);
}

/* The quic layer's loss-recovery anchor (include/wtrelay/quic.h): an HTTP/3
 * frame of a reserved type (0x21 = 0x1f * 0 + 0x21, RFC 9114 section
 * 7.2.8), empty, on our control stream; every peer must ignore it. */
static const uint8_t h3_anchor_frame[2] = {0x21, 0x00};

static int open_control(struct h3_conn *hc)
{
  uint8_t buf[128];
  int n;
  if (hc->ctrl_opened)
    return 0;
  if (quic_conn_open_uni(hc->qc, &hc->ctrl_sid) < 0)
    return -EAGAIN;
  buf[0] = H3_STREAM_CONTROL;
  n = hc->h3->is_server ? h3_settings_build_server(buf + 1, sizeof(buf) - 1)
                        : h3_settings_build_client(buf + 1, sizeof(buf) - 1);
  if (n < 0)
    return n;
  hc->ctrl_opened = true;
  int rc = quic_conn_stream_send(hc->qc, hc->ctrl_sid, buf, (size_t)n + 1, false);
  if (rc == 0)
    quic_conn_set_anchor(hc->qc, hc->ctrl_sid, h3_anchor_frame, sizeof(h3_anchor_frame));
  return rc;
}

/* ---- capsules on the CONNECT stream ---- */

static int on_capsule(void *user, const struct capsule_event *ev)
{
  struct h3_conn *hc = user;
  char reason[CAPSULE_CLOSE_REASON_MAX + 1];
  switch (ev->kind) {
  case CAPSULE_EV_CLOSE: {
    log_debug("close capsule received", "code=%u len=%zu", ev->code, ev->len);
    size_t n = ev->len < CAPSULE_CLOSE_REASON_MAX ? ev->len : CAPSULE_CLOSE_REASON_MAX;
    memcpy(reason, ev->data, n);
    reason[n] = '\0';
    hc->h3->ctr.close_capsules_in++;
    /* Chromium abandons the connection without CONNECTION_CLOSE: close it. */
    session_end_by_peer(hc, ev->code, reason);
    return -ECANCELED;
  }
  case CAPSULE_EV_DRAIN:
  case CAPSULE_EV_DATAGRAM:
  default:
    hc->h3->ctr.capsules_skipped++;
    return 0;
  }
}

/* ---- request streams ---- */

/* Server requests passed request_target_status, so nothing is cut there;
 * a client's own record of a long target may be. */
static void split_path(struct h3_session *s, const char *path)
{
  size_t plen = strcspn(path, "?");
  if (plen >= sizeof(s->base.path))
    plen = sizeof(s->base.path) - 1;
  memcpy(s->base.path, path, plen);
  s->base.path[plen] = '\0';
  const char *q = strchr(path, '?');
  snprintf(s->base.query, sizeof(s->base.query), "%s", q ? q + 1 : "");
}

/* The origin is copied whole: the QPACK decoder refuses (400) a value that
 * does not fit its buffer, and the session's buffer is not smaller. */
_Static_assert(sizeof(((struct h3_request *)0)->origin) <=
                   sizeof(((struct h3_session *)0)->base.origin),
               "an origin the decoder accepts must fit the session");

/* The :path of an extended CONNECT as the relay will use it: the room (up to
 * '?') and the query must fit the session's buffers whole, never truncated
 * (two long paths with one prefix would share a room): 414 otherwise. A
 * room with a control byte (below 0x20, or 0x7f) is refused with 400: it
 * can only be an attack on whatever prints or stores room names. (The
 * decoder already refuses NUL, CR and LF anywhere in a field, and a :path
 * of 1024 bytes or more, with 400.) Counts each refusal. */
static int request_target_status(struct h3_endpoint *h3, const char *path)
{
  size_t plen = strcspn(path, "?");
  size_t qlen = path[plen] ? strlen(path + plen + 1) : 0;
  if (plen >= sizeof(((struct h3_session *)0)->base.path)) {
    h3->ctr.refused_path_too_long++;
    return 414;
  }
  if (qlen >= sizeof(((struct h3_session *)0)->base.query)) {
    h3->ctr.refused_query_too_long++;
    return 414;
  }
  for (size_t i = 0; i < plen; i++) {
    unsigned char c = (unsigned char)path[i];
    if (c < 0x20 || c == 0x7f) {
      h3->ctr.refused_room_control++;
      return 400;
    }
  }
  return 200;
}

static int request_status(struct h3_conn *hc, const struct h3_request *rq)
{
  if (strcmp(rq->method, "CONNECT") != 0)
    return 405;
  if (!rq->has_protocol || strcmp(rq->protocol, "webtransport") != 0)
    return 400;
  if (!rq->has_scheme || !rq->has_path || !rq->has_authority || rq->path[0] != '/')
    return 400;
  if (hc->has_session)
    return 429;
  return request_target_status(hc->h3, rq->path);
}

static int server_on_headers(struct h3_req *rq, const uint8_t *data, size_t len)
{
  struct h3_conn *hc = rq->hc;
  struct h3_endpoint *h3 = hc->h3;
  struct h3_request req;
  if (rq->headers_seen)
    return 0; /* trailers: ignored */
  rq->headers_seen = true;
  int rc = h3_qpack_decode_request(&hc->qpack, data, len, &req);
  int status = rc < 0 ? 400 : request_status(hc, &req);
  if (status == 200) {
    struct h3_session *s = &hc->sess;
    memset(s, 0, sizeof(*s));
    s->base.ops = &h3_session_ops;
    s->hc = hc;
    s->sid = rq->sid;
    split_path(s, req.path);
    snprintf(s->base.origin, sizeof(s->base.origin), "%s", req.has_origin ? req.origin : "");
    hc->has_session = true;
    hc->session_ended = false;
    capsule_reader_release(&hc->cap);
    capsule_reader_init_counted(&hc->cap, on_capsule, hc, &hc->h3->buf_bytes);
    status = h3->ops->on_session_request ? h3->ops->on_session_request(h3->app, s) : 404;
    if (status == 200) {
      s->open = true;
      h3->ctr.sessions_opened++;
    } else {
      hc->has_session = false;
    }
  }
  if (status != 200)
    h3->ctr.requests_rejected++;
  rc = send_status(hc, rq->sid, status, status != 200);
  h3_qpack_fini(&hc->qpack); /* answered: idle until another header block */
  return rc;
}

static int client_on_headers(struct h3_req *rq, const uint8_t *data, size_t len)
{
  struct h3_conn *hc = rq->hc;
  int status = 0;
  if (rq->headers_seen)
    return 0;
  if (h3_qpack_decode_response_status(&hc->qpack, data, len, &status) < 0)
    status = 0;
  if (status >= 100 && status < 200)
    return 0; /* interim response; wait for the final one */
  rq->headers_seen = true;
  if (!hc->has_session)
    return 0;
  hc->sess.open = status >= 200 && status < 300;
  if (hc->sess.open)
    hc->h3->ctr.sessions_opened++;
  if (hc->h3->ops->on_session_ready)
    hc->h3->ops->on_session_ready(hc->h3->app, &hc->sess, status);
  return 0;
}

static int on_req_frame(void *user, const struct h3_frame_event *ev)
{
  struct h3_req *rq = user;
  struct h3_conn *hc = rq->hc;
  switch (ev->kind) {
  case H3_FRAME_EV_FRAME:
    if (ev->type == H3_FRAME_HEADERS)
      return hc->h3->is_server ? server_on_headers(rq, ev->data, ev->len)
                               : client_on_headers(rq, ev->data, ev->len);
    if (ev->type == H3_FRAME_SETTINGS || ev->type == H3_FRAME_GOAWAY ||
        ev->type == H3_FRAME_MAX_PUSH_ID || ev->type == H3_FRAME_CANCEL_PUSH)
      return conn_error(hc, H3_FRAME_UNEXPECTED, "control frame on a request stream");
    return 0;
  case H3_FRAME_EV_DATA:
    if (hc->has_session && hc->sess.sid == rq->sid && !hc->session_ended && ev->len)
      return capsule_reader_feed(&hc->cap, ev->data, ev->len) < 0 ? -ECANCELED : 0;
    return 0;
  case H3_FRAME_EV_WT_STREAM:
    /* The bavy protocol uses datagrams only: refuse WebTransport streams. */
    hc->h3->ctr.streams_refused++;
    quic_conn_stream_reset(hc->qc, rq->sid, H3_WEBTRANSPORT_BUFFERED_STREAM_REJECTED);
    return -ECANCELED;
  case H3_FRAME_EV_SKIP:
    hc->h3->ctr.unknown_frames++;
    return 0;
  case H3_FRAME_EV_RAW:
    return 0;
  }
  return 0;
}

static struct h3_req *req_find(struct h3_conn *hc, int64_t sid, bool create)
{
  struct h3_req *free_rq = NULL;
  for (int i = 0; i < H3_REQ_SLOTS; i++) {
    if (hc->req[i].used && hc->req[i].sid == sid)
      return &hc->req[i];
    if (!hc->req[i].used && !free_rq)
      free_rq = &hc->req[i];
  }
  if (!create || !free_rq)
    return NULL;
  free_rq->used = true;
  free_rq->headers_seen = false;
  free_rq->sid = sid;
  free_rq->hc = hc;
  h3_frame_reader_init_heap(&free_rq->rd, H3_FRAME_BUF, &hc->h3->buf_bytes, on_req_frame, free_rq);
  return free_rq;
}

/* ---- control stream ---- */

static int on_ctrl_frame(void *user, const struct h3_frame_event *ev)
{
  struct h3_conn *hc = user;
  if (!hc->peer_settings_seen) {
    if (ev->kind != H3_FRAME_EV_FRAME || ev->type != H3_FRAME_SETTINGS)
      return conn_error(hc, H3_MISSING_SETTINGS, "first control frame is not SETTINGS");
    uint64_t code = 0;
    if (h3_settings_parse(ev->data, ev->len, &hc->peer, &code) < 0)
      return conn_error(hc, code ? code : H3_SETTINGS_ERROR, "bad SETTINGS");
    hc->peer_settings_seen = true;
    return 0;
  }
  switch (ev->kind) {
  case H3_FRAME_EV_FRAME:
    if (ev->type == H3_FRAME_SETTINGS)
      return conn_error(hc, H3_FRAME_UNEXPECTED, "second SETTINGS");
    if (ev->type == H3_FRAME_HEADERS || ev->type == H3_FRAME_PUSH_PROMISE)
      return conn_error(hc, H3_FRAME_UNEXPECTED, "request frame on the control stream");
    if (ev->type == H3_FRAME_GOAWAY)
      hc->h3->ctr.goaways_in++;
    return 0;
  case H3_FRAME_EV_DATA:
    return conn_error(hc, H3_FRAME_UNEXPECTED, "DATA on the control stream");
  case H3_FRAME_EV_WT_STREAM:
    return conn_error(hc, H3_FRAME_UNEXPECTED, "stream signal on the control stream");
  case H3_FRAME_EV_SKIP:
    hc->h3->ctr.unknown_frames++;
    return 0;
  case H3_FRAME_EV_RAW:
    return 0;
  }
  return 0;
}

/* ---- quic callbacks ---- */

static struct h3_conn *conn_get(struct h3_endpoint *h3, struct quic_conn *qc)
{
  struct h3_conn *hc = qc->app_data;
  if (hc)
    return hc;
  hc = &h3->conns[qc->handle];
  memset(hc, 0, offsetof(struct h3_conn, ctrl_rd));
  memset(hc->uni, 0, sizeof(hc->uni));
  for (int i = 0; i < H3_REQ_SLOTS; i++)
    hc->req[i].used = false;
  hc->has_session = false;
  hc->session_ended = false;
  hc->h3 = h3;
  hc->qc = qc;
  if (h3_qpack_init(&hc->qpack, &h3->nghttp3_mem) < 0)
    return NULL;
  h3_frame_reader_init_heap(&hc->ctrl_rd, H3_FRAME_BUF, &h3->buf_bytes, on_ctrl_frame, hc);
  timer_init(&hc->close_timer, close_timer_fn);
  hc->used = true;
  qc->app_data = hc;
  return hc;
}

static int client_start(struct h3_conn *hc)
{
  struct h3_endpoint *h3 = hc->h3;
  int64_t sid;
  uint8_t section[900];
  const char *path = h3->ops->client_path ? h3->ops->client_path(h3->app, hc->qc) : NULL;
  if (!path)
    path = h3->target.path;
  if (quic_conn_open_bidi(hc->qc, &sid) < 0)
    return -EAGAIN;
  int n = h3_qpack_encode_connect_request(&hc->qpack, section, sizeof(section),
                                          h3->target.authority, path, h3->target.origin);
  if (n < 0)
    return n;
  struct h3_req *rq = req_find(hc, sid, true);
  if (!rq)
    return -ENOSPC;
  struct h3_session *s = &hc->sess;
  memset(s, 0, sizeof(*s));
  s->base.ops = &h3_session_ops;
  s->hc = hc;
  s->sid = sid;
  split_path(s, path);
  hc->has_session = true;
  hc->session_ended = false;
  capsule_reader_release(&hc->cap);
  capsule_reader_init_counted(&hc->cap, on_capsule, hc, &hc->h3->buf_bytes);
  return send_headers(hc, sid, section, (size_t)n, false);
}

static int q_on_handshake_done(void *app, struct quic_conn *qc)
{
  struct h3_endpoint *h3 = app;
  struct h3_conn *hc = conn_get(h3, qc);
  if (!hc)
    return -ENOMEM;
  if (open_control(hc) < 0)
    return -EPROTO;
  if (!h3->is_server && client_start(hc) < 0)
    return -EPROTO;
  return 0;
}

static int uni_data(struct h3_conn *hc, int64_t sid, const uint8_t *data, size_t len, bool fin)
{
  struct h3_endpoint *h3 = hc->h3;
  if (hc->peer_ctrl_seen && sid == hc->peer_ctrl_sid) {
    if (h3_frame_reader_feed(&hc->ctrl_rd, data, len) < 0 && hc->qc->state == QUIC_CONN_ACTIVE &&
        !hc->qc->close_pending)
      return conn_error(hc, hc->ctrl_rd.error_code ? hc->ctrl_rd.error_code : H3_FRAME_ERROR,
                        "control stream");
    if (fin)
      return conn_error(hc, H3_CLOSED_CRITICAL_STREAM, "control stream closed");
    return 0;
  }
  struct h3_uni *u = NULL, *free_u = NULL;
  for (int i = 0; i < H3_UNI_SLOTS; i++) {
    if (hc->uni[i].kind != UNI_FREE && hc->uni[i].sid == sid) {
      u = &hc->uni[i];
      break;
    }
    if (hc->uni[i].kind == UNI_FREE && !free_u)
      free_u = &hc->uni[i];
  }
  if (!u) {
    if (!free_u) {
      h3->ctr.streams_refused++;
      quic_conn_stream_reset(hc->qc, sid, H3_EXCESSIVE_LOAD);
      return 0;
    }
    u = free_u;
    memset(u, 0, sizeof(*u));
    u->sid = sid;
    u->kind = UNI_PENDING;
  }
  if (u->kind == UNI_PENDING) {
    while (len && u->typelen < sizeof(u->typebuf)) {
      u->typebuf[u->typelen++] = *data++;
      len--;
      if (u->typelen == varint_len_first(u->typebuf[0]))
        break;
    }
    uint64_t type;
    if (varint_read(u->typebuf, u->typelen, &type) < 0)
      return 0; /* need more bytes */
    switch (type) {
    case H3_STREAM_CONTROL:
      if (hc->peer_ctrl_seen)
        return conn_error(hc, H3_STREAM_CREATION_ERROR, "second control stream");
      hc->peer_ctrl_seen = true;
      hc->peer_ctrl_sid = sid;
      u->kind = UNI_FREE; /* tracked by peer_ctrl_sid from now on */
      return uni_data(hc, sid, data, len, fin);
    case H3_STREAM_QPACK_ENCODER:
      u->kind = UNI_QPACK_ENC;
      break;
    case H3_STREAM_QPACK_DECODER:
      u->kind = UNI_DISCARD;
      break;
    case H3_STREAM_PUSH:
      if (h3->is_server)
        return conn_error(hc, H3_STREAM_CREATION_ERROR, "push stream from a client");
      /* we never asked for pushes: treat as unknown */
      __attribute__((fallthrough));
    default:
      /* WebTransport uni streams (0x54): refused, datagrams only.
       * Unknown or GREASE types: abort reading (RFC 9114 6.2). */
      if (type == H3_STREAM_WEBTRANSPORT_UNI)
        h3->ctr.streams_refused++;
      else
        h3->ctr.unknown_streams++;
      u->kind = UNI_FREE;
      quic_conn_stream_reset(hc->qc, sid,
                             type == H3_STREAM_WEBTRANSPORT_UNI
                                 ? H3_WEBTRANSPORT_BUFFERED_STREAM_REJECTED
                                 : H3_STREAM_CREATION_ERROR);
      return 0;
    }
  }
  if (u->kind == UNI_QPACK_ENC && len && h3_qpack_read_encoder_stream(&hc->qpack, data, len) < 0)
    return conn_error(hc, H3_QPACK_ENCODER_STREAM_ERROR, "QPACK encoder stream");
  if (fin)
    return conn_error(hc, H3_CLOSED_CRITICAL_STREAM, "QPACK stream closed");
  return 0;
}

static int bidi_data(struct h3_conn *hc, int64_t sid, const uint8_t *data, size_t len, bool fin)
{
  struct h3_endpoint *h3 = hc->h3;
  struct h3_req *rq = req_find(hc, sid, h3->is_server);
  if (!rq) {
    if (h3->is_server) {
      h3->ctr.requests_rejected++;
      quic_conn_stream_reset(hc->qc, sid, H3_REQUEST_REJECTED);
    }
    return 0;
  }
  if (len && h3_frame_reader_feed(&rq->rd, data, len) < 0) {
    if (rq->rd.error_code && hc->qc->state == QUIC_CONN_ACTIVE && !hc->qc->close_pending)
      return conn_error(hc, rq->rd.error_code, "request stream");
    req_release(rq);
    return 0;
  }
  if (fin) {
    if (hc->has_session && hc->sess.sid == sid)
      session_end_by_peer(hc, 0, "");
    req_release(rq);
  }
  return 0;
}

static int q_on_stream_data(void *app, struct quic_conn *qc, int64_t sid, const uint8_t *data,
                            size_t len, bool fin)
{
  struct h3_endpoint *h3 = app;
  struct h3_conn *hc = conn_get(h3, qc);
  if (!hc)
    return -ENOMEM;
  quic_conn_stream_consumed(qc, sid, len);
  log_debug("stream data", "sid=%lld len=%zu fin=%d", (long long)sid, len, fin);
  if (qc->close_pending)
    return 0;
  bool uni = (sid & 0x2) != 0;
  return uni ? uni_data(hc, sid, data, len, fin) : bidi_data(hc, sid, data, len, fin);
}

static void q_on_stream_close(void *app, struct quic_conn *qc, int64_t sid, uint64_t err)
{
  struct h3_conn *hc = qc->app_data;
  if (!hc)
    return;
  if (hc->has_session && hc->sess.sid == sid && !hc->session_ended)
    session_end_by_peer(hc, 0, "CONNECT stream reset");
  for (int i = 0; i < H3_REQ_SLOTS; i++)
    if (hc->req[i].used && hc->req[i].sid == sid)
      req_release(&hc->req[i]);
  for (int i = 0; i < H3_UNI_SLOTS; i++)
    if (hc->uni[i].kind != UNI_FREE && hc->uni[i].sid == sid)
      hc->uni[i].kind = UNI_FREE;
}

static void q_on_datagram(void *app, struct quic_conn *qc, const uint8_t *data, size_t len)
{
  struct h3_endpoint *h3 = app;
  struct h3_conn *hc = qc->app_data;
  uint64_t qsid;
  int n = varint_read(data, len, &qsid);
  if (n < 0) {
    h3->ctr.dgrams_bad_prefix++;
    return;
  }
  if (!hc || !hc->has_session || !hc->sess.open || hc->session_ended ||
      qsid != (uint64_t)hc->sess.sid / 4) {
    h3->ctr.dgrams_unknown_session++;
    return;
  }
  h3->ctr.dgrams_in++;
  if (h3->ops->on_session_datagram)
    h3->ops->on_session_datagram(h3->app, &hc->sess, data + n, len - (size_t)n);
}

static void q_on_conn_closed(void *app, struct quic_conn *qc)
{
  struct h3_endpoint *h3 = app;
  struct h3_conn *hc = qc->app_data;
  if (hc && hc->has_session && hc->sess.open) {
    session_end(hc, 0, "connection closed");
  } else if (!h3->is_server && h3->ops->on_conn_failed) {
    h3->ops->on_conn_failed(h3->app, qc);
  }
  if (hc)
    conn_free(hc);
}

static void q_on_datagram_ack(void *app, struct quic_conn *qc, uint64_t id, bool acked)
{
  struct h3_endpoint *h3 = app;
  struct h3_conn *hc = qc->app_data;
  if (!hc || !hc->has_session || hc->session_ended || !h3->ops->on_session_datagram_ack)
    return;
  h3->ops->on_session_datagram_ack(h3->app, &hc->sess, id, acked);
}

const struct quic_app_ops h3_quic_ops = {
    .on_datagram_ack = q_on_datagram_ack,
    .on_handshake_done = q_on_handshake_done,
    .on_stream_data = q_on_stream_data,
    .on_stream_close = q_on_stream_close,
    .on_datagram = q_on_datagram,
    .on_conn_closed = q_on_conn_closed,
};

/* ---- session API ---- */

static int h3_session_send_ex(struct h3_session *s, const struct iovec *iov, int iovcnt,
                              uint64_t id, unsigned flags);

int h3_session_send(struct h3_session *s, const struct iovec *iov, int iovcnt)
{
  return h3_session_send_id(s, iov, iovcnt, 0);
}

uint64_t h3_session_pto(const struct h3_session *s)
{
  return s->hc && s->hc->qc ? quic_conn_pto(s->hc->qc) : 0;
}

int h3_session_send_id(struct h3_session *s, const struct iovec *iov, int iovcnt, uint64_t id)
{
  return h3_session_send_ex(s, iov, iovcnt, id, 0);
}

int h3_session_send_flags(struct h3_session *s, const struct iovec *iov, int iovcnt, unsigned flags)
{
  return h3_session_send_ex(s, iov, iovcnt, 0, flags);
}

static int h3_session_send_ex(struct h3_session *s, const struct iovec *iov, int iovcnt,
                              uint64_t id, unsigned flags)
{
  struct h3_conn *hc = s->hc;
  if (!hc || !hc->qc || !s->open || s->closed)
    return -ENOTCONN;
  uint8_t prefix[8];
  int n = varint_write(prefix, sizeof(prefix), (uint64_t)s->sid / 4);
  if (n < 0 || iovcnt > H3_DGRAM_IOV_MAX)
    return -EINVAL;
  struct iovec v[H3_DGRAM_IOV_MAX + 1];
  v[0].iov_base = prefix;
  v[0].iov_len = (size_t)n;
  for (int i = 0; i < iovcnt; i++)
    v[i + 1] = iov[i];
  int rc = quic_conn_send_datagram_flags(hc->qc, v, iovcnt + 1, id, flags);
  if (rc < 0)
    hc->h3->ctr.dgrams_send_failed++;
  else
    hc->h3->ctr.dgrams_out++;
  return rc;
}

size_t h3_session_max_datagram(const struct h3_session *s)
{
  if (!s->hc || !s->hc->qc)
    return 0;
  size_t m = quic_conn_max_datagram(s->hc->qc);
  size_t p = varint_len((uint64_t)s->sid / 4);
  return m > p ? m - p : 0;
}

void h3_session_close(struct h3_session *s, uint32_t code, const char *reason)
{
  struct h3_conn *hc = s->hc;
  if (!hc || !hc->qc || s->closed)
    return;
  s->closed = true;
  uint8_t cap[CAPSULE_CLOSE_REASON_MAX + 32];
  uint8_t buf[QUIC_SOUT_SIZE];
  int clen = capsule_close_encode(cap, sizeof(cap), code, reason ? reason : "");
  if (clen > 0 && (size_t)clen + 16 <= sizeof(buf)) {
    int hl = h3_frame_header_write(buf, sizeof(buf), H3_FRAME_DATA, (uint64_t)clen);
    if (hl > 0) {
      memcpy(buf + hl, cap, (size_t)clen);
      int src = quic_conn_stream_send(hc->qc, s->sid, buf, (size_t)(hl + clen), true);
      log_debug("close capsule sent", "sid=%lld rc=%d", (long long)s->sid, src);
    }
  }
  /* Give the capsule a moment to arrive, then close the connection. */
  timer_arm(hc->h3->timers, &hc->close_timer, h3_now(hc->h3) + H3_CLOSE_DELAY_NS);
}

/* The relay's view (wtrelay/session.h): the same calls on the base. */
static struct h3_session *of_base(const struct session *b)
{
  return container_of(b, struct h3_session, base);
}

static int ops_send(struct session *b, const struct iovec *iov, int iovcnt, unsigned flags,
                    uint64_t id)
{
  return h3_session_send_ex(of_base(b), iov, iovcnt, id, flags & SESSION_LOW ? H3_DGRAM_LOW : 0);
}

static uint64_t ops_pto(const struct session *b)
{
  return h3_session_pto(of_base(b));
}

static size_t ops_max_datagram(const struct session *b)
{
  return h3_session_max_datagram(of_base(b));
}

static void ops_close(struct session *b, uint32_t code, const char *reason)
{
  h3_session_close(of_base(b), code, reason);
}

static void ops_remote_str(const struct session *b, char *buf, size_t cap)
{
  h3_session_remote_str(of_base(b), buf, cap);
}

static uint64_t ops_client_key(const struct session *b)
{
  return h3_session_client_key(of_base(b));
}

static const struct session_ops h3_session_ops = SESSION_OPS(ops);

void h3_endpoint_shutdown(struct h3_endpoint *h3, uint32_t code, const char *reason)
{
  for (uint32_t i = 0; i < h3->nconns; i++) {
    struct h3_conn *hc = &h3->conns[i];
    if (!hc->used || !hc->qc)
      continue;
    if (h3->is_server && hc->ctrl_opened && !hc->goaway_sent) {
      uint8_t buf[32];
      uint64_t id = hc->has_session ? (uint64_t)hc->sess.sid + 4 : 0;
      int n = h3_goaway_encode(buf, sizeof(buf), id);
      if (n > 0)
        quic_conn_stream_send(hc->qc, hc->ctrl_sid, buf, (size_t)n, false);
      hc->goaway_sent = true;
    }
    if (hc->has_session && hc->sess.open && !hc->sess.closed)
      h3_session_close(&hc->sess, code, reason);
  }
}

/* ---- counters ---- */

/* The HTTP/3 counters for /metrics and the exit log, one row per field
 * (test_counter checks that every field has exactly one). */
#define H(fam, help, labels, key, field)                                                           \
  COUNTER_DEF(struct h3_counters, fam, help, labels, "h3 counters", key, field)
#define IGN(what, key, field) H("wtrelay_h3_ignored_total", NULL, "what=\"" what "\"", key, field)
static const struct counter_def h3_counter_defs[] = {
    H("wtrelay_webtransport_sessions_opened_total", "WebTransport sessions opened", NULL,
      "sessions_opened", sessions_opened),
    H("wtrelay_webtransport_sessions_closed_total", "WebTransport sessions closed", NULL,
      "sessions_closed", sessions_closed),
    H("wtrelay_webtransport_requests_rejected_total", "extended CONNECT requests rejected", NULL,
      "requests_rejected", requests_rejected),
    H("wtrelay_h3_datagrams_total", "HTTP datagrams of WebTransport sessions", "dir=\"in\"",
      "dgrams_in", dgrams_in),
    H("wtrelay_h3_datagrams_total", NULL, "dir=\"out\"", "dgrams_out", dgrams_out),
    H("wtrelay_h3_datagrams_dropped_total", "HTTP datagrams dropped", "reason=\"unknown_session\"",
      "unknown_session", dgrams_unknown_session),
    H("wtrelay_h3_datagrams_dropped_total", NULL, "reason=\"bad_prefix\"", "bad_prefix",
      dgrams_bad_prefix),
    H("wtrelay_h3_datagrams_dropped_total", NULL, "reason=\"send_failed\"", "send_failed",
      dgrams_send_failed),
    H("wtrelay_h3_streams_refused_total", "HTTP/3 streams refused (no slot)", NULL,
      "streams_refused", streams_refused),
    H("wtrelay_h3_ignored_total", "HTTP/3 input skipped: unknown streams, unknown frames, capsules",
      "what=\"unknown_stream\"", "unknown_streams", unknown_streams),
    IGN("unknown_frame", "unknown_frames", unknown_frames),
    IGN("capsule", "capsules_skipped", capsules_skipped),
    H("wtrelay_h3_protocol_errors_total", "HTTP/3 protocol errors of a peer", NULL,
      "protocol_errors", protocol_errors),
    H("wtrelay_h3_close_signals_received_total",
      "session ends announced by the peer: CLOSE_WEBTRANSPORT_SESSION capsules, GOAWAY frames",
      "kind=\"close_capsule\"", "close_capsules_in", close_capsules_in),
    H("wtrelay_h3_close_signals_received_total", NULL, "kind=\"goaway\"", "goaways_in", goaways_in),
    H("wtrelay_h3_requests_refused_total",
      "extended CONNECTs refused for their :path (also counted as rejected)",
      "reason=\"room_control_chars\"", "refused_room_control", refused_room_control),
    H("wtrelay_h3_requests_refused_total", NULL, "reason=\"path_too_long\"",
      "refused_path_too_long", refused_path_too_long),
    H("wtrelay_h3_requests_refused_total", NULL, "reason=\"query_too_long\"",
      "refused_query_too_long", refused_query_too_long),
};
#undef IGN
#undef H

const struct counter_table h3_counter_table = COUNTER_TABLE(h3_counter_defs, struct h3_counters);
