/*
 * http1: see include/wtrelay/http1.h for the theory of operation. Every
 * read of the peer's bytes goes through a cursor.
 */
#include "wtrelay/http1.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "wtrelay/cursor.h"

size_t http1_head_len(const uint8_t *buf, size_t len)
{
  for (size_t i = 3; i < len; i++)
    if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
      return i + 1;
  return 0;
}

/* RFC 9110 5.6.2 tchar. */
static bool is_tchar(uint8_t c)
{
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
    return true;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* One line through its CRLF: *line is it without the CRLF. A bare CR or
 * LF inside is malformed. */
static int read_line(struct cursor *c, struct http1_str *line)
{
  const uint8_t *start = c->p + c->off;
  size_t n = 0;
  uint8_t b;
  for (;;) {
    if (cursor_u8(c, &b) < 0)
      return -EINVAL;
    if (b == '\r')
      break;
    if (b == '\n')
      return -EINVAL;
    n++;
  }
  if (cursor_u8(c, &b) < 0 || b != '\n')
    return -EINVAL;
  *line = (struct http1_str){(const char *)start, n};
  return 0;
}

/* Splits s at its first byte `sep`: *head before it, s after it. */
static bool split(struct http1_str *s, char sep, struct http1_str *head)
{
  const char *at = s->len ? memchr(s->p, sep, s->len) : NULL;
  if (!at)
    return false;
  *head = (struct http1_str){s->p, (size_t)(at - s->p)};
  s->len -= (size_t)(at - s->p) + 1;
  s->p = at + 1;
  return true;
}

static bool all_tchar(struct http1_str s)
{
  for (size_t i = 0; i < s.len; i++)
    if (!is_tchar((uint8_t)s.p[i]))
      return false;
  return s.len > 0;
}

static struct http1_str trim(struct http1_str s)
{
  while (s.len && (s.p[0] == ' ' || s.p[0] == '\t'))
    s.p++, s.len--;
  while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
    s.len--;
  return s;
}

static int request_line(struct http1_str l, struct http1_req *r)
{
  struct http1_str version;
  if (!split(&l, ' ', &r->method) || !split(&l, ' ', &r->target))
    return -EINVAL;
  version = l;
  if (!all_tchar(r->method) || r->target.len == 0)
    return -EINVAL;
  for (size_t i = 0; i < r->target.len; i++) {
    uint8_t c = (uint8_t)r->target.p[i];
    if (c <= 0x20 || c >= 0x7f)
      return -EINVAL;
  }
  if (version.len != 8 || memcmp(version.p, "HTTP/1.", 7) != 0 ||
      (version.p[7] != '0' && version.p[7] != '1'))
    return -EINVAL;
  r->minor = version.p[7] - '0';
  return 0;
}

/* A response's status line: HTTP/1.x SP 3 digits SP reason. */
static int status_line(struct http1_str l, struct http1_req *r)
{
  if (l.len < 12 || memcmp(l.p, "HTTP/1.", 7) != 0 || (l.p[7] != '0' && l.p[7] != '1') ||
      l.p[8] != ' ' || (l.len > 12 && l.p[12] != ' '))
    return -EINVAL;
  int st = 0;
  for (int i = 9; i < 12; i++) {
    if (l.p[i] < '0' || l.p[i] > '9')
      return -EINVAL;
    st = st * 10 + (l.p[i] - '0');
  }
  r->minor = l.p[7] - '0';
  r->status = st;
  return 0;
}

/* The head: its first line by `first`, then the fields. */
static int parse_head(const uint8_t *buf, size_t len, struct http1_req *r,
                      int (*first)(struct http1_str, struct http1_req *))
{
  struct cursor c;
  struct http1_str line;
  memset(r, 0, sizeof(*r));
  cursor_init(&c, buf, len);
  int rc = read_line(&c, &line);
  if (rc < 0 || (rc = first(line, r)) < 0)
    return rc;
  for (;;) {
    if ((rc = read_line(&c, &line)) < 0)
      return rc;
    if (line.len == 0)
      return 0;
    if (line.p[0] == ' ' || line.p[0] == '\t')
      return -EINVAL; /* obsolete line folding */
    struct http1_field f;
    if (!split(&line, ':', &f.name) || !all_tchar(f.name))
      return -EINVAL;
    f.value = trim(line);
    for (size_t i = 0; i < f.value.len; i++) {
      uint8_t b = (uint8_t)f.value.p[i];
      if ((b < 0x20 && b != '\t') || b == 0x7f)
        return -EINVAL;
    }
    if (r->nf == HTTP1_MAX_HEADERS)
      return -E2BIG;
    r->f[r->nf++] = f;
  }
}

int http1_parse(const uint8_t *buf, size_t len, struct http1_req *r)
{
  return parse_head(buf, len, r, request_line);
}

int http1_parse_response(const uint8_t *buf, size_t len, struct http1_req *r)
{
  return parse_head(buf, len, r, status_line);
}

bool http1_str_ieq(struct http1_str s, const char *t)
{
  return strlen(t) == s.len && strncasecmp(s.p, t, s.len) == 0;
}

int http1_field(const struct http1_req *r, const char *name, struct http1_str *v)
{
  int found = 0;
  for (uint32_t i = 0; i < r->nf; i++) {
    if (!http1_str_ieq(r->f[i].name, name))
      continue;
    if (found)
      return -EEXIST;
    *v = r->f[i].value;
    found = 1;
  }
  return found;
}

bool http1_list_has(struct http1_str s, const char *token)
{
  struct http1_str el;
  while (split(&s, ',', &el))
    if (http1_str_ieq(trim(el), token))
      return true;
  return http1_str_ieq(trim(s), token);
}
