/*
 * capsule: streaming capsule reader and encoders. See
 * include/wtrelay/capsule.h.
 *
 * Same shape as h3_frame's reader: gather the header (split headers kept in
 * r->hdr), then buffer the value of a capsule we report, or count past any
 * other. Lengths are checked at the header, before a byte is buffered.
 */
#include "wtrelay/capsule.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/cursor.h"
#include "wtrelay/h3_frame.h"
#include "wtrelay/varint.h"

enum {
  CS_HDR,
  CS_BUF,  /* buffering a value to report */
  CS_SKIP, /* counting past a value */
  CS_FAILED,
};

void capsule_reader_release(struct capsule_reader *r)
{
  if (!r->buf)
    return;
  if (r->mc)
    memcount_free(r->buf, r->mc);
  else
    free(r->buf);
  r->buf = NULL;
}

static int reader_fail(struct capsule_reader *r, int err, uint64_t code)
{
  capsule_reader_release(r); /* a failed reader reads nothing more */
  r->state = CS_FAILED;
  r->err = err;
  r->error_code = code;
  return err;
}

void capsule_reader_init_counted(struct capsule_reader *r, capsule_cb cb, void *user,
                                 struct memcount *mc)
{
  capsule_reader_init(r, cb, user);
  r->mc = mc;
}

void capsule_reader_init(struct capsule_reader *r, capsule_cb cb, void *user)
{
  r->buf = NULL;
  r->mc = NULL;
  r->cb = cb;
  r->user = user;
  r->type = r->length = r->done = 0;
  r->hdr_len = 0;
  r->state = CS_HDR;
  r->err = 0;
  r->error_code = 0;
  r->capsules = r->skipped = r->datagrams_dropped = 0;
}

int capsule_close_parse(const uint8_t *value, size_t len, uint32_t *code, const uint8_t **reason,
                        size_t *reason_len)
{
  struct cursor c;

  cursor_init(&c, value, len);
  if (cursor_u32be(&c, code) < 0 || cursor_left(&c) > CAPSULE_CLOSE_REASON_MAX)
    return -EINVAL;
  *reason_len = cursor_left(&c);
  cursor_bytes(&c, *reason_len, reason);
  return 0;
}

/* The whole value of the current capsule is at value: report it. */
static int reader_report(struct capsule_reader *r, const uint8_t *value)
{
  struct capsule_event ev = {.data = value, .len = (size_t)r->length};
  int rv;

  r->state = CS_HDR;
  switch (r->type) {
  case CAPSULE_CLOSE_WEBTRANSPORT_SESSION:
    ev.kind = CAPSULE_EV_CLOSE;
    if (capsule_close_parse(value, (size_t)r->length, &ev.code, &ev.data, &ev.len) < 0)
      return reader_fail(r, -EINVAL, H3_MESSAGE_ERROR);
    break;
  case CAPSULE_DATAGRAM:
    ev.kind = CAPSULE_EV_DATAGRAM;
    break;
  default:
    return 0;
  }
  rv = r->cb(r->user, &ev);
  if (rv < 0)
    return reader_fail(r, rv, 0);
  return 0;
}

static int reader_begin(struct capsule_reader *r, uint64_t type, uint64_t length)
{
  r->type = type;
  r->length = length;
  r->done = 0;
  r->capsules++;

  switch (type) {
  case CAPSULE_CLOSE_WEBTRANSPORT_SESSION:
    if (length < 4 || length > 4 + CAPSULE_CLOSE_REASON_MAX)
      return reader_fail(r, -EINVAL, H3_MESSAGE_ERROR);
    break;
  case CAPSULE_DRAIN_WEBTRANSPORT_SESSION: {
    struct capsule_event ev = {.kind = CAPSULE_EV_DRAIN, .data = (const uint8_t *)""};
    int rv;
    r->state = length ? CS_SKIP : CS_HDR;
    rv = r->cb(r->user, &ev);
    return rv < 0 ? reader_fail(r, rv, 0) : 0;
  }
  case CAPSULE_DATAGRAM:
    if (length > CAPSULE_BUF_MAX) {
      r->datagrams_dropped++;
      r->state = CS_SKIP;
      return 0;
    }
    break;
  default:
    r->skipped++;
    r->state = length ? CS_SKIP : CS_HDR;
    return 0;
  }
  r->state = CS_BUF;
  return length ? 0 : reader_report(r, (const uint8_t *)"");
}

static int reader_header(struct capsule_reader *r, struct cursor *c)
{
  size_t take = sizeof(r->hdr) - r->hdr_len;
  const uint8_t *p = NULL;
  struct cursor h;
  uint64_t type, length;

  if (take > cursor_left(c))
    take = cursor_left(c);
  cursor_peek(c, take, &p);
  memcpy(r->hdr + r->hdr_len, p, take);
  cursor_init(&h, r->hdr, r->hdr_len + take);
  if (cursor_varint(&h, &type) < 0 || cursor_varint(&h, &length) < 0) {
    /* 16 bytes always hold a header, so take was all of c. */
    r->hdr_len = (uint8_t)(r->hdr_len + take);
    cursor_skip(c, take);
    return 0;
  }
  cursor_skip(c, h.off - r->hdr_len);
  r->hdr_len = 0;
  return reader_begin(r, type, length);
}

int capsule_reader_feed(struct capsule_reader *r, const uint8_t *data, size_t len)
{
  struct cursor c;
  const uint8_t *p = NULL;
  uint64_t want;
  size_t n;
  int rv = 0;

  if (r->state == CS_FAILED)
    return r->err;
  cursor_init(&c, data, len);
  while (rv == 0 && cursor_left(&c) > 0) {
    if (r->state == CS_HDR) {
      rv = reader_header(r, &c);
      continue;
    }
    want = r->length - r->done;
    n = want < cursor_left(&c) ? (size_t)want : cursor_left(&c);
    if (r->state == CS_BUF && r->done == 0 && n == r->length) {
      cursor_bytes(&c, n, &p); /* whole in this slice: no copy */
      r->done = n;
      rv = reader_report(r, p);
      continue;
    }
    if (r->state == CS_BUF) {
      if (!r->buf) {
        size_t sz = (size_t)r->length; /* at most CAPSULE_BUF_MAX + 4 (reader_begin) */
        r->buf = r->mc ? memcount_malloc(sz, r->mc) : malloc(sz);
        if (!r->buf) {
          rv = reader_fail(r, -ENOMEM, H3_EXCESSIVE_LOAD);
          continue;
        }
      }
      cursor_bytes(&c, n, &p);
      memcpy(r->buf + r->done, p, n);
    } else {
      cursor_skip(&c, n);
    }
    r->done += n;
    if (r->done < r->length)
      continue;
    if (r->state == CS_BUF) {
      rv = reader_report(r, r->buf);
      capsule_reader_release(r);
    } else {
      r->state = CS_HDR;
    }
  }
  return rv;
}

int capsule_reader_fin(struct capsule_reader *r)
{
  if (r->state == CS_FAILED)
    return r->err;
  if (r->state == CS_HDR && r->hdr_len == 0)
    return 0;
  return reader_fail(r, -EINVAL, H3_MESSAGE_ERROR);
}

int capsule_close_encode(uint8_t *buf, size_t cap, uint32_t code, const char *reason)
{
  size_t rlen = reason ? strnlen(reason, CAPSULE_CLOSE_REASON_MAX + 1) : 0;
  int off, n;

  if (rlen > CAPSULE_CLOSE_REASON_MAX)
    return -EINVAL;
  off = varint_write(buf, cap, CAPSULE_CLOSE_WEBTRANSPORT_SESSION);
  if (off < 0)
    return off;
  n = varint_write(buf + off, cap - (size_t)off, 4 + rlen);
  if (n < 0)
    return n;
  off += n;
  if (cap - (size_t)off < 4 + rlen)
    return -ENOSPC;
  buf[off++] = (uint8_t)(code >> 24);
  buf[off++] = (uint8_t)(code >> 16);
  buf[off++] = (uint8_t)(code >> 8);
  buf[off++] = (uint8_t)code;
  if (rlen)
    memcpy(buf + off, reason, rlen);
  return off + (int)rlen;
}

int capsule_drain_encode(uint8_t *buf, size_t cap)
{
  int off = varint_write(buf, cap, CAPSULE_DRAIN_WEBTRANSPORT_SESSION);
  int n;

  if (off < 0)
    return off;
  n = varint_write(buf + off, cap - (size_t)off, 0);
  if (n < 0)
    return n;
  return off + n;
}
