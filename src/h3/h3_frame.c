/*
 * h3_frame: HTTP/3 frame codec. See include/wtrelay/h3_frame.h.
 *
 * The streaming reader is a small state machine: gather a frame header
 * (at most 16 bytes, kept in r->hdr when it straddles slices), then either
 * buffer the payload into the caller's buffer (HEADERS, SETTINGS, ...),
 * pass DATA payload through slice by slice, skip an unknown frame by
 * counting, or, after a WEBTRANSPORT_STREAM signal, pass everything through
 * as raw data. Memory use is fixed: no allocation anywhere.
 */
#include "wtrelay/h3_frame.h"

#include <errno.h>
#include <string.h>

#include "wtrelay/cursor.h"
#include "wtrelay/varint.h"

enum {
  RS_HDR,  /* reading a frame header */
  RS_BUF,  /* buffering a payload */
  RS_DATA, /* passing DATA payload through */
  RS_SKIP, /* skipping an unknown frame */
  RS_RAW,  /* after WEBTRANSPORT_STREAM: raw bytes to FIN */
  RS_FAILED,
};

/* What data points at for an empty payload: never NULL, so callbacks may
 * memcpy(dst, ev->data, ev->len) unconditionally. */
static const uint8_t empty_payload[1];

/* Frame types that HTTP/2 had and HTTP/3 reserved (RFC 9114 section 7.2.8). */
static bool is_h2_only_frame(uint64_t type)
{
  return type == 0x02 || type == 0x06 || type == 0x08 || type == 0x09;
}

int h3_frame_header_parse(const uint8_t *buf, size_t len, uint64_t *type, uint64_t *length)
{
  struct cursor c;
  uint64_t t, l;

  cursor_init(&c, buf, len);
  if (cursor_varint(&c, &t) < 0 || cursor_varint(&c, &l) < 0)
    return -ENODATA;
  if (is_h2_only_frame(t))
    return -EINVAL;
  *type = t;
  *length = l;
  return (int)c.off;
}

int h3_frame_header_write(uint8_t *buf, size_t cap, uint64_t type, uint64_t length)
{
  int a, b;

  if (!varint_len(type) || !varint_len(length))
    return -ERANGE;
  a = varint_write(buf, cap, type);
  if (a < 0)
    return a;
  b = varint_write(buf + a, cap - (size_t)a, length);
  if (b < 0)
    return b;
  return a + b;
}

int h3_goaway_encode(uint8_t *buf, size_t cap, uint64_t id)
{
  size_t idlen = varint_len(id);
  int hl;

  if (!idlen)
    return -ERANGE;
  hl = h3_frame_header_write(buf, cap, H3_FRAME_GOAWAY, idlen);
  if (hl < 0)
    return hl;
  if (cap - (size_t)hl < idlen)
    return -ENOSPC;
  varint_write(buf + hl, cap - (size_t)hl, id);
  return hl + (int)idlen;
}

int h3_frame_id_parse(const uint8_t *payload, size_t len, uint64_t *id)
{
  struct cursor c;

  cursor_init(&c, payload, len);
  if (cursor_varint(&c, id) < 0 || cursor_left(&c) != 0)
    return -EINVAL;
  return 0;
}

/* --- streaming reader --------------------------------------------------- */

static bool is_buffered_frame(uint64_t type)
{
  switch (type) {
  case H3_FRAME_HEADERS:
  case H3_FRAME_CANCEL_PUSH:
  case H3_FRAME_SETTINGS:
  case H3_FRAME_PUSH_PROMISE:
  case H3_FRAME_GOAWAY:
  case H3_FRAME_MAX_PUSH_ID:
    return true;
  default:
    return false;
  }
}

static bool is_id_frame(uint64_t type)
{
  return type == H3_FRAME_CANCEL_PUSH || type == H3_FRAME_GOAWAY || type == H3_FRAME_MAX_PUSH_ID;
}

void h3_frame_reader_release(struct h3_frame_reader *r)
{
  if (r->mc && r->buf) {
    memcount_free(r->buf, r->mc);
    r->buf = NULL;
  }
}

static int reader_fail(struct h3_frame_reader *r, int err, uint64_t code)
{
  h3_frame_reader_release(r); /* a failed reader reads nothing more */
  r->state = RS_FAILED;
  r->err = err;
  r->error_code = code;
  return err;
}

static int reader_emit(struct h3_frame_reader *r, const struct h3_frame_event *ev)
{
  int rv = r->cb(r->user, ev);

  if (rv < 0)
    return reader_fail(r, rv, 0);
  return 0;
}

void h3_frame_reader_init(struct h3_frame_reader *r, uint8_t *buf, size_t cap, h3_frame_cb cb,
                          void *user)
{
  memset(r, 0, sizeof(*r));
  r->cb = cb;
  r->user = user;
  r->buf = buf;
  r->cap = buf ? cap : 0;
  r->state = RS_HDR;
}

void h3_frame_reader_init_heap(struct h3_frame_reader *r, size_t cap, struct memcount *mc,
                               h3_frame_cb cb, void *user)
{
  h3_frame_reader_init(r, NULL, 0, cb, user);
  r->cap = cap;
  r->mc = mc;
}

/* A header is complete: choose how the payload is read. Zero-length frames
 * are emitted here, since no payload byte will come to trigger them. */
static int reader_begin_frame(struct h3_frame_reader *r, uint64_t type, uint64_t length)
{
  struct h3_frame_event ev = {.type = type, .length = length, .data = empty_payload};

  r->type = type;
  r->length = length;
  r->done = 0;
  r->frames++;

  if (type == H3_FRAME_WEBTRANSPORT_STREAM) {
    r->state = RS_RAW;
    ev.kind = H3_FRAME_EV_WT_STREAM;
    ev.length = 0;
    ev.session_id = length;
    return reader_emit(r, &ev);
  }
  if (type == H3_FRAME_DATA) {
    r->state = length ? RS_DATA : RS_HDR;
    if (length)
      return 0;
    ev.kind = H3_FRAME_EV_DATA;
    ev.end = true;
    return reader_emit(r, &ev);
  }
  if (is_buffered_frame(type)) {
    if (is_id_frame(type) && (length == 0 || length > VARINT_MAXLEN))
      return reader_fail(r, -EINVAL, H3_FRAME_ERROR);
    if (length > r->cap)
      return reader_fail(r, -EMSGSIZE, H3_EXCESSIVE_LOAD);
    r->state = length ? RS_BUF : RS_HDR;
    if (length)
      return 0;
    ev.kind = H3_FRAME_EV_FRAME;
    return reader_emit(r, &ev);
  }
  r->skipped++;
  r->state = length ? RS_SKIP : RS_HDR;
  ev.kind = H3_FRAME_EV_SKIP;
  return reader_emit(r, &ev);
}

/* Reads a header from c, using r->hdr for a header split across slices. */
static int reader_header(struct h3_frame_reader *r, struct cursor *c)
{
  size_t take = sizeof(r->hdr) - r->hdr_len;
  const uint8_t *p = NULL;
  uint64_t type, length;
  int rv;

  if (take > cursor_left(c))
    take = cursor_left(c);
  cursor_peek(c, take, &p);
  memcpy(r->hdr + r->hdr_len, p, take);
  rv = h3_frame_header_parse(r->hdr, r->hdr_len + take, &type, &length);
  if (rv == -ENODATA) {
    /* 16 bytes always hold a header, so take was all of c. */
    r->hdr_len = (uint8_t)(r->hdr_len + take);
    cursor_skip(c, take);
    return 0;
  }
  if (rv < 0)
    return reader_fail(r, -EINVAL, H3_FRAME_UNEXPECTED);
  cursor_skip(c, (size_t)rv - r->hdr_len);
  r->hdr_len = 0;
  return reader_begin_frame(r, type, length);
}

static size_t payload_take(const struct h3_frame_reader *r, const struct cursor *c)
{
  uint64_t want = r->length - r->done;

  return want < cursor_left(c) ? (size_t)want : cursor_left(c);
}

int h3_frame_reader_feed(struct h3_frame_reader *r, const uint8_t *data, size_t len)
{
  struct h3_frame_event ev;
  struct cursor c;
  const uint8_t *p = NULL;
  size_t n;
  int rv = 0;

  if (r->state == RS_FAILED)
    return r->err;
  cursor_init(&c, data, len);
  while (rv == 0 && cursor_left(&c) > 0) {
    switch (r->state) {
    case RS_HDR:
      rv = reader_header(r, &c);
      break;
    case RS_BUF:
      n = payload_take(r, &c);
      cursor_bytes(&c, n, &p);
      if (r->done == 0 && n == r->length) {
        /* whole in this slice: no copy */
        r->state = RS_HDR;
        ev = (struct h3_frame_event){
            .kind = H3_FRAME_EV_FRAME, .type = r->type, .length = r->length, .data = p, .len = n};
        rv = reader_emit(r, &ev);
        break;
      }
      if (r->mc && !r->buf && !(r->buf = memcount_malloc((size_t)r->length, r->mc))) {
        rv = reader_fail(r, -ENOMEM, H3_EXCESSIVE_LOAD);
        break;
      }
      memcpy(r->buf + r->done, p, n);
      r->done += n;
      if (r->done < r->length)
        break;
      r->state = RS_HDR;
      ev = (struct h3_frame_event){.kind = H3_FRAME_EV_FRAME,
                                   .type = r->type,
                                   .length = r->length,
                                   .data = r->buf,
                                   .len = (size_t)r->length};
      rv = reader_emit(r, &ev);
      h3_frame_reader_release(r);
      break;
    case RS_DATA:
      n = payload_take(r, &c);
      cursor_bytes(&c, n, &p);
      ev = (struct h3_frame_event){.kind = H3_FRAME_EV_DATA,
                                   .type = r->type,
                                   .length = r->length,
                                   .offset = r->done,
                                   .data = p,
                                   .len = n};
      r->done += n;
      ev.end = r->done == r->length;
      if (ev.end)
        r->state = RS_HDR;
      rv = reader_emit(r, &ev);
      break;
    case RS_SKIP:
      n = payload_take(r, &c);
      cursor_skip(&c, n);
      r->done += n;
      if (r->done == r->length)
        r->state = RS_HDR;
      break;
    case RS_RAW:
      n = cursor_left(&c);
      cursor_bytes(&c, n, &p);
      ev = (struct h3_frame_event){.kind = H3_FRAME_EV_RAW, .data = p, .len = n};
      rv = reader_emit(r, &ev);
      break;
    default:
      return r->err;
    }
  }
  return rv;
}

int h3_frame_reader_fin(struct h3_frame_reader *r)
{
  if (r->state == RS_FAILED)
    return r->err;
  if (r->state == RS_RAW || (r->state == RS_HDR && r->hdr_len == 0))
    return 0;
  return reader_fail(r, -EINVAL, H3_FRAME_ERROR);
}

/* --- SETTINGS ----------------------------------------------------------- */

int h3_settings_encode(uint8_t *buf, size_t cap, const struct h3_setting *s, size_t n)
{
  uint64_t plen = 0;
  int off, rv;

  for (size_t i = 0; i < n; i++) {
    size_t a = varint_len(s[i].id), b = varint_len(s[i].value);
    if (!a || !b)
      return -ERANGE;
    plen += a + b;
  }
  off = h3_frame_header_write(buf, cap, H3_FRAME_SETTINGS, plen);
  if (off < 0)
    return off;
  if (cap - (size_t)off < plen)
    return -ENOSPC;
  for (size_t i = 0; i < n; i++) {
    rv = varint_write(buf + off, cap - (size_t)off, s[i].id);
    off += rv;
    rv = varint_write(buf + off, cap - (size_t)off, s[i].value);
    off += rv;
  }
  return off;
}

/* Setting ids HTTP/2 had and HTTP/3 reserved (RFC 9114 section 7.2.4.1). */
static bool is_h2_only_setting(uint64_t id)
{
  return id == 0x00 || (id >= 0x02 && id <= 0x05);
}

/* Inserts id into the sorted array ids[0..*n); false if already there. */
static bool id_insert_unique(uint64_t *ids, size_t *n, uint64_t id)
{
  size_t lo = 0, hi = *n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ids[mid] == id)
      return false;
    if (ids[mid] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  memmove(ids + lo + 1, ids + lo, (*n - lo) * sizeof(*ids));
  ids[lo] = id;
  (*n)++;
  return true;
}

static int settings_fail(uint64_t *h3_error, int err, uint64_t code)
{
  if (h3_error)
    *h3_error = code;
  return err;
}

int h3_settings_parse(const uint8_t *payload, size_t len, struct h3_peer_settings *out,
                      uint64_t *h3_error)
{
  uint64_t ids[H3_SETTINGS_MAX_PAIRS];
  size_t nids = 0;
  struct cursor c;
  uint64_t id, v;

  *out = (struct h3_peer_settings){.max_field_section_size = UINT64_MAX};
  cursor_init(&c, payload, len);
  while (cursor_left(&c) > 0) {
    if (cursor_varint(&c, &id) < 0 || cursor_varint(&c, &v) < 0)
      return settings_fail(h3_error, -EINVAL, H3_FRAME_ERROR);
    if (is_h2_only_setting(id))
      return settings_fail(h3_error, -EINVAL, H3_SETTINGS_ERROR);
    if (nids == H3_SETTINGS_MAX_PAIRS)
      return settings_fail(h3_error, -EMSGSIZE, H3_EXCESSIVE_LOAD);
    if (!id_insert_unique(ids, &nids, id))
      return settings_fail(h3_error, -EINVAL, H3_SETTINGS_ERROR);

    switch (id) {
    case H3_SETTINGS_QPACK_MAX_TABLE_CAPACITY:
      out->qpack_max_table_capacity = v;
      break;
    case H3_SETTINGS_MAX_FIELD_SECTION_SIZE:
      out->max_field_section_size = v;
      break;
    case H3_SETTINGS_QPACK_BLOCKED_STREAMS:
      out->qpack_blocked_streams = v;
      break;
    case H3_SETTINGS_ENABLE_CONNECT_PROTOCOL:
      if (v > 1)
        return settings_fail(h3_error, -EINVAL, H3_SETTINGS_ERROR);
      out->connect_protocol = v == 1;
      break;
    case H3_SETTINGS_H3_DATAGRAM:
      if (v > 1)
        return settings_fail(h3_error, -EINVAL, H3_SETTINGS_ERROR);
      out->h3_datagram |= v == 1;
      break;
    case H3_SETTINGS_H3_DATAGRAM_DRAFT04:
      if (v > 1)
        return settings_fail(h3_error, -EINVAL, H3_SETTINGS_ERROR);
      out->h3_datagram_draft04 = v == 1;
      out->h3_datagram |= v == 1;
      break;
    case H3_SETTINGS_ENABLE_WEBTRANSPORT:
      out->webtransport = v;
      out->enable_webtransport = v == 1;
      break;
    case H3_SETTINGS_WEBTRANSPORT_MAX_SESSIONS:
      out->webtransport_max_sessions = v;
      break;
    default:
      break; /* unknown or GREASE: ignored */
    }
  }
  return 0;
}

/* A fixed GREASE id (4-byte varint). Fixed rather than random keeps this
 * module pure; the point of GREASE, that peers must skip unknown ids, holds
 * either way. */
#define SETTINGS_GREASE_ID H3_GREASE(0x2f1d)

int h3_settings_build_server(uint8_t *buf, size_t cap)
{
  static const struct h3_setting s[] = {
      {H3_SETTINGS_QPACK_MAX_TABLE_CAPACITY, 0},  {H3_SETTINGS_QPACK_BLOCKED_STREAMS, 0},
      {H3_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},   {H3_SETTINGS_H3_DATAGRAM, 1},
      {H3_SETTINGS_H3_DATAGRAM_DRAFT04, 1},       {H3_SETTINGS_ENABLE_WEBTRANSPORT, 1},
      {H3_SETTINGS_WEBTRANSPORT_MAX_SESSIONS, 1}, {SETTINGS_GREASE_ID, 0},
  };

  return h3_settings_encode(buf, cap, s, sizeof(s) / sizeof(s[0]));
}

int h3_settings_build_client(uint8_t *buf, size_t cap)
{
  static const struct h3_setting s[] = {
      {H3_SETTINGS_QPACK_MAX_TABLE_CAPACITY, 0},
      {H3_SETTINGS_QPACK_BLOCKED_STREAMS, 0},
      {H3_SETTINGS_H3_DATAGRAM, 1},
      {H3_SETTINGS_H3_DATAGRAM_DRAFT04, 1},
      {H3_SETTINGS_ENABLE_WEBTRANSPORT, 1},
      {SETTINGS_GREASE_ID, 0},
  };

  return h3_settings_encode(buf, cap, s, sizeof(s) / sizeof(s[0]));
}
