/*
 * http1: a strict parser of one HTTP/1.1 request head (request line and
 * header fields, RFC 9112), for the listeners that read requests from
 * peers: the WebSocket Upgrade on the relay's TCP port (ws.c).
 *
 * Owns nothing: the parsed request points into the caller's buffer
 * (borrowed; valid as long as it is). Bounds: the head is whatever the
 * caller collected (its buffer bounds it), at most HTTP1_MAX_HEADERS
 * fields. Strict where a lenient reading could let two parsers disagree
 * (request smuggling): CRLF line ends only, no obsolete line folding, no
 * whitespace between a field name and its colon, field names are tokens,
 * values hold no control byte but tab, one space between the request
 * line's parts, version "HTTP/1.0" or "HTTP/1.1" only.
 *
 * Never: allocates, copies or decodes percent-encoding.
 */
#ifndef WTRELAY_HTTP1_H
#define WTRELAY_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_HEADERS 32

/* A byte range of the caller's buffer. */
struct http1_str {
  const char *p;
  size_t len;
};

struct http1_field {
  struct http1_str name, value; /* value without leading/trailing blanks */
};

struct http1_req {
  struct http1_str method, target;
  int minor;  /* HTTP/1.<minor>: 0 or 1 */
  int status; /* a response's status code (http1_parse_response) */
  struct http1_field f[HTTP1_MAX_HEADERS];
  uint32_t nf;
};

/* The length of the request head at the start of buf (through its empty
 * line), or 0 when buf does not hold a whole one yet. */
size_t http1_head_len(const uint8_t *buf, size_t len);

/* Parses the head buf[0..len) (len as http1_head_len gave it). 0, or
 * -EINVAL (malformed), -E2BIG (more than HTTP1_MAX_HEADERS fields). */
int http1_parse(const uint8_t *buf, size_t len, struct http1_req *r);

/* The same for a response head (a client reads its server's answer):
 * the status line HTTP/1.x, three digits, a reason; method and target
 * stay empty. */
int http1_parse_response(const uint8_t *buf, size_t len, struct http1_req *r);

/* The value of the one field named `name` (case-insensitive): 1 and *v,
 * 0 when absent, -EEXIST when it appears more than once. */
int http1_field(const struct http1_req *r, const char *name, struct http1_str *v);

/* Whether the comma-separated list s holds `token` (case-insensitive,
 * blanks around the elements ignored). */
bool http1_list_has(struct http1_str s, const char *token);

/* Whether s equals the NUL-terminated t, case-insensitively. */
bool http1_str_ieq(struct http1_str s, const char *t);

#endif
