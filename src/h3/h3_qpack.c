/*
 * h3_qpack: QPACK glue over nghttp3 (static table only) and HTTP/3 field
 * validation. See include/wtrelay/h3_qpack.h.
 *
 * Decoding walks the field section with nghttp3_qpack_decoder_read_request
 * (one field line per call) and hands each (name, value) to a small
 * validator for requests or responses; every rcbuf is released right after
 * its field is looked at. Encoding builds an nghttp3_nv array, lets nghttp3
 * write prefix and field lines into its own buffers, and copies them out.
 */
#include "wtrelay/h3_qpack.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <nghttp3/nghttp3.h>

#include "wtrelay/cursor.h"
#include "wtrelay/log.h"

/* Stream id passed to nghttp3: only used for blocked-stream bookkeeping,
 * which cannot happen with a table capacity of 0. */
#define QPACK_STREAM_ID 0

int h3_qpack_init(struct h3_qpack *q, const nghttp3_mem *mem)
{
  q->enc = NULL;
  q->dec = NULL;
  q->mem = mem ? mem : nghttp3_mem_default();
  return 0;
}

/* The encoder and decoder are made on first use: with a table capacity of
 * 0 they hold nothing between header blocks, so an idle connection (its
 * CONNECT answered) holds none (h3_qpack_fini, then made again if a header
 * block or an encoder instruction comes). */
static int need_enc(struct h3_qpack *q)
{
  if (!q->enc && nghttp3_qpack_encoder_new(&q->enc, 0, q->mem) != 0) {
    q->enc = NULL;
    log_error("qpack init failed", "err=%s", "nomem");
    return -ENOMEM;
  }
  return 0;
}

static int need_dec(struct h3_qpack *q)
{
  if (!q->dec && nghttp3_qpack_decoder_new(&q->dec, 0, 0, q->mem) != 0) {
    q->dec = NULL;
    log_error("qpack init failed", "err=%s", "nomem");
    return -ENOMEM;
  }
  return 0;
}

void h3_qpack_fini(struct h3_qpack *q)
{
  if (q->enc)
    nghttp3_qpack_encoder_del(q->enc);
  if (q->dec)
    nghttp3_qpack_decoder_del(q->dec);
  q->enc = NULL;
  q->dec = NULL;
}

static int map_decode_error(nghttp3_ssize rv)
{
  return rv == NGHTTP3_ERR_NOMEM ? -ENOMEM : -EPROTO;
}

int h3_qpack_read_encoder_stream(struct h3_qpack *q, const uint8_t *data, size_t len)
{
  nghttp3_ssize n;

  if (len == 0)
    return 0;
  if (need_dec(q) < 0)
    return -ENOMEM;
  n = nghttp3_qpack_decoder_read_encoder(q->dec, data, len);
  return n < 0 ? map_decode_error(n) : 0;
}

/* --- decoding ----------------------------------------------------------- */

typedef int (*field_fn)(void *ctx, const uint8_t *name, size_t nlen, const uint8_t *value,
                        size_t vlen);

/* Runs fn on every field line of a complete field section. Returns 0, fn's
 * error, -EPROTO (QPACK error) or -ENOMEM. */
static int qpack_decode(struct h3_qpack *q, const uint8_t *fs, size_t len, field_fn fn, void *ctx)
{
  const nghttp3_mem *mem = q ? q->mem : nghttp3_mem_default();
  nghttp3_qpack_decoder *tmp = NULL, *dec;
  nghttp3_qpack_stream_context *sctx = NULL;
  struct cursor c;
  int rv;

  if (q) {
    if (need_dec(q) < 0)
      return -ENOMEM;
    dec = q->dec;
  } else {
    if (nghttp3_qpack_decoder_new(&tmp, 0, 0, mem) != 0)
      return -ENOMEM;
    dec = tmp;
  }
  if (nghttp3_qpack_stream_context_new(&sctx, QPACK_STREAM_ID, mem) != 0) {
    rv = -ENOMEM;
    goto out;
  }

  cursor_init(&c, fs, len);
  for (;;) {
    nghttp3_qpack_nv nv;
    uint8_t flags = 0;
    const uint8_t *p = NULL;
    nghttp3_ssize n;

    cursor_peek(&c, cursor_left(&c), &p);
    n = nghttp3_qpack_decoder_read_request(dec, sctx, &nv, &flags, p, cursor_left(&c), 1);
    if (n < 0) {
      rv = map_decode_error(n);
      goto out;
    }
    cursor_skip(&c, (size_t)n);
    if (flags & NGHTTP3_QPACK_DECODE_FLAG_EMIT) {
      nghttp3_vec name = nghttp3_rcbuf_get_buf(nv.name);
      nghttp3_vec value = nghttp3_rcbuf_get_buf(nv.value);
      rv = fn(ctx, name.base, name.len, value.base, value.len);
      nghttp3_rcbuf_decref(nv.name);
      nghttp3_rcbuf_decref(nv.value);
      if (rv < 0)
        goto out;
    }
    if (flags & NGHTTP3_QPACK_DECODE_FLAG_FINAL) {
      rv = cursor_left(&c) ? -EPROTO : 0;
      goto out;
    }
    /* Blocked cannot happen with capacity 0; no progress would loop. */
    if ((flags & NGHTTP3_QPACK_DECODE_FLAG_BLOCKED) ||
        (n == 0 && !(flags & NGHTTP3_QPACK_DECODE_FLAG_EMIT))) {
      rv = -EPROTO;
      goto out;
    }
  }

out:
  if (sctx)
    nghttp3_qpack_stream_context_del(sctx);
  if (tmp)
    nghttp3_qpack_decoder_del(tmp);
  return rv;
}

/* tchar of RFC 9110 section 5.6.2, without uppercase letters. */
static bool is_lower_tchar(uint8_t ch)
{
  if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
    return true;
  return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool token_ok(const uint8_t *s, size_t len)
{
  if (len == 0)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!is_lower_tchar(s[i]))
      return false;
  return true;
}

/* No NUL, CR, LF anywhere (RFC 9114 section 4.2); `trimmed` also refuses
 * leading or trailing whitespace, for the values we act on. */
static bool value_ok(const uint8_t *v, size_t len, bool trimmed)
{
  for (size_t i = 0; i < len; i++)
    if (v[i] == 0 || v[i] == '\r' || v[i] == '\n')
      return false;
  if (trimmed && len > 0) {
    if (v[0] == ' ' || v[0] == '\t' || v[len - 1] == ' ' || v[len - 1] == '\t')
      return false;
  }
  return true;
}

static bool name_is(const uint8_t *name, size_t nlen, const char *lit)
{
  return nlen == strlen(lit) && memcmp(name, lit, nlen) == 0;
}

static bool str_eq(const uint8_t *v, size_t len, const char *lit)
{
  return name_is(v, len, lit);
}

/* Fields HTTP/3 forbids (RFC 9114 section 4.2); "te" is checked apart. */
static bool is_connection_specific(const uint8_t *name, size_t nlen)
{
  return name_is(name, nlen, "connection") || name_is(name, nlen, "keep-alive") ||
         name_is(name, nlen, "proxy-connection") || name_is(name, nlen, "transfer-encoding") ||
         name_is(name, nlen, "upgrade");
}

/* Copies a captured value; -EINVAL if already set or too long. */
static int capture(char *dst, size_t cap, bool *has, const uint8_t *v, size_t len)
{
  if (*has || len >= cap || !value_ok(v, len, true))
    return -EINVAL;
  memcpy(dst, v, len);
  dst[len] = '\0';
  *has = true;
  return 0;
}

/* Checks a regular (non-pseudo) field common to requests and responses. */
static int regular_field_ok(const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
  if (!token_ok(name, nlen) || !value_ok(value, vlen, false))
    return -EINVAL;
  if (is_connection_specific(name, nlen))
    return -EINVAL;
  if (name_is(name, nlen, "te") && !str_eq(value, vlen, "trailers"))
    return -EINVAL;
  return 0;
}

struct req_ctx {
  struct h3_request *req;
  bool regular_seen;
};

static int req_pseudo(struct h3_request *r, const uint8_t *name, size_t nlen, const uint8_t *v,
                      size_t vlen)
{
  if (name_is(name, nlen, ":method"))
    return capture(r->method, sizeof(r->method), &r->has_method, v, vlen);
  if (name_is(name, nlen, ":scheme"))
    return capture(r->scheme, sizeof(r->scheme), &r->has_scheme, v, vlen);
  if (name_is(name, nlen, ":authority"))
    return capture(r->authority, sizeof(r->authority), &r->has_authority, v, vlen);
  if (name_is(name, nlen, ":path"))
    return capture(r->path, sizeof(r->path), &r->has_path, v, vlen);
  if (name_is(name, nlen, ":protocol"))
    return capture(r->protocol, sizeof(r->protocol), &r->has_protocol, v, vlen);
  return -EINVAL; /* :status or unknown pseudo-header */
}

static int req_field(void *ctx, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
  struct req_ctx *rc = ctx;
  struct h3_request *r = rc->req;
  int rv;

  if (nlen > 0 && name[0] == ':') {
    if (rc->regular_seen || !token_ok(name + 1, nlen - 1))
      return -EINVAL;
    return req_pseudo(r, name, nlen, value, vlen);
  }
  rv = regular_field_ok(name, nlen, value, vlen);
  if (rv < 0)
    return rv;
  rc->regular_seen = true;
  if (name_is(name, nlen, "origin"))
    return capture(r->origin, sizeof(r->origin), &r->has_origin, value, vlen);
  if (name_is(name, nlen, "sec-webtransport-http3-draft02"))
    r->wt_draft02 = true;
  return 0;
}

/* Method tokens are case-sensitive and usually uppercase, so they are
 * checked as tchar of either case. */
static bool method_ok(const char *m)
{
  for (; *m; m++) {
    uint8_t ch = (uint8_t)*m;
    if (!is_lower_tchar(ch) && !(ch >= 'A' && ch <= 'Z'))
      return false;
  }
  return true;
}

/* RFC 9114 section 4.3.1 and RFC 9220 section 3. */
static int req_complete_ok(const struct h3_request *r)
{
  if (!r->has_method || !r->method[0] || !method_ok(r->method))
    return -EINVAL;
  if (r->has_protocol) {
    if (strcmp(r->method, "CONNECT") != 0 || !r->has_scheme || !r->has_path || !r->has_authority)
      return -EINVAL;
  } else if (strcmp(r->method, "CONNECT") == 0) {
    return r->has_authority && !r->has_scheme && !r->has_path ? 0 : -EINVAL;
  } else if (!r->has_scheme || !r->has_path) {
    return -EINVAL;
  }
  if (!r->scheme[0] || (r->has_protocol && !r->protocol[0]))
    return -EINVAL;
  if (r->has_authority && !r->authority[0])
    return -EINVAL;
  if (r->path[0] != '/' && !(strcmp(r->path, "*") == 0 && strcmp(r->method, "OPTIONS") == 0))
    return -EINVAL;
  return 0;
}

int h3_qpack_decode_request(struct h3_qpack *q, const uint8_t *field_section, size_t len,
                            struct h3_request *out)
{
  struct req_ctx rc = {.req = out};
  int rv;

  memset(out, 0, sizeof(*out));
  rv = qpack_decode(q, field_section, len, req_field, &rc);
  if (rv < 0)
    return rv;
  return req_complete_ok(out);
}

struct resp_ctx {
  int status;
  bool has_status;
  bool regular_seen;
};

static int resp_field(void *ctx, const uint8_t *name, size_t nlen, const uint8_t *value,
                      size_t vlen)
{
  struct resp_ctx *rc = ctx;

  if (nlen > 0 && name[0] == ':') {
    if (rc->regular_seen || rc->has_status || !name_is(name, nlen, ":status"))
      return -EINVAL;
    if (vlen != 3 || value[0] < '1' || value[0] > '5' || value[1] < '0' || value[1] > '9' ||
        value[2] < '0' || value[2] > '9')
      return -EINVAL;
    rc->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    rc->has_status = true;
    return 0;
  }
  rc->regular_seen = true;
  return regular_field_ok(name, nlen, value, vlen);
}

int h3_qpack_decode_response_status(struct h3_qpack *q, const uint8_t *field_section, size_t len,
                                    int *status)
{
  struct resp_ctx rc = {0};
  int rv;

  rv = qpack_decode(q, field_section, len, resp_field, &rc);
  if (rv < 0)
    return rv;
  if (!rc.has_status)
    return -EINVAL;
  *status = rc.status;
  return 0;
}

/* --- encoding ----------------------------------------------------------- */

static nghttp3_nv mknv(const char *name, const char *value)
{
  nghttp3_nv nv = {
      .name = (uint8_t *)(uintptr_t)name,
      .value = (uint8_t *)(uintptr_t)value,
      .namelen = strlen(name),
      .valuelen = strlen(value),
      .flags = NGHTTP3_NV_FLAG_NONE,
  };
  return nv;
}

/* Encodes nva into buf as prefix + field lines. */
static int qpack_encode(struct h3_qpack *q, uint8_t *buf, size_t cap, const nghttp3_nv *nva,
                        size_t n)
{
  const nghttp3_mem *mem = q ? q->mem : nghttp3_mem_default();
  nghttp3_qpack_encoder *tmp = NULL, *enc;
  nghttp3_buf pbuf, rbuf, ebuf;
  size_t plen, rlen;
  int rv;

  if (q) {
    if (need_enc(q) < 0)
      return -ENOMEM;
    enc = q->enc;
  } else {
    if (nghttp3_qpack_encoder_new(&tmp, 0, mem) != 0) {
      log_error("qpack encode failed", "err=%s", "nomem");
      return -ENOMEM;
    }
    enc = tmp;
  }
  nghttp3_buf_init(&pbuf);
  nghttp3_buf_init(&rbuf);
  nghttp3_buf_init(&ebuf);

  rv = nghttp3_qpack_encoder_encode(enc, &pbuf, &rbuf, &ebuf, QPACK_STREAM_ID, nva, n);
  if (rv != 0) {
    log_error("qpack encode failed", "err=\"%s\"", nghttp3_strerror(rv));
    rv = rv == NGHTTP3_ERR_NOMEM ? -ENOMEM : -EPROTO;
    goto out;
  }
  if (nghttp3_buf_len(&ebuf) != 0) {
    /* Would need an encoder stream we do not have: never with capacity 0. */
    log_error("qpack encode failed", "err=%s", "encoder_stream_output");
    rv = -EPROTO;
    goto out;
  }
  plen = nghttp3_buf_len(&pbuf);
  rlen = nghttp3_buf_len(&rbuf);
  if (plen + rlen > cap || plen + rlen > INT_MAX) {
    rv = -ENOSPC;
    goto out;
  }
  if (plen)
    memcpy(buf, pbuf.pos, plen);
  if (rlen)
    memcpy(buf + plen, rbuf.pos, rlen);
  rv = (int)(plen + rlen);

out:
  nghttp3_buf_free(&pbuf, mem);
  nghttp3_buf_free(&rbuf, mem);
  nghttp3_buf_free(&ebuf, mem);
  if (tmp)
    nghttp3_qpack_encoder_del(tmp);
  return rv;
}

int h3_qpack_encode_response(struct h3_qpack *q, uint8_t *buf, size_t cap, int status,
                             bool webtransport_draft_header)
{
  char code[4];
  nghttp3_nv nva[2];
  size_t n = 0;

  if (status < 100 || status > 599)
    return -EINVAL;
  snprintf(code, sizeof(code), "%d", status);
  nva[n++] = mknv(":status", code);
  if (webtransport_draft_header)
    nva[n++] = mknv("sec-webtransport-http3-draft", "draft02");
  return qpack_encode(q, buf, cap, nva, n);
}

static bool arg_ok(const char *s)
{
  return s && s[0] && value_ok((const uint8_t *)s, strlen(s), true);
}

int h3_qpack_encode_connect_request(struct h3_qpack *q, uint8_t *buf, size_t cap,
                                    const char *authority, const char *path, const char *origin)
{
  nghttp3_nv nva[7];
  size_t n = 0;
  bool with_origin = origin && origin[0];

  if (!arg_ok(authority) || !arg_ok(path) || path[0] != '/' || (with_origin && !arg_ok(origin)))
    return -EINVAL;
  nva[n++] = mknv(":method", "CONNECT");
  nva[n++] = mknv(":scheme", "https");
  nva[n++] = mknv(":authority", authority);
  nva[n++] = mknv(":path", path);
  nva[n++] = mknv(":protocol", "webtransport");
  nva[n++] = mknv("sec-webtransport-http3-draft02", "1");
  if (with_origin)
    nva[n++] = mknv("origin", origin);
  return qpack_encode(q, buf, cap, nva, n);
}
