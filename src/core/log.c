/*
 * log: logfmt writer. See include/wtrelay/log.h for the contract.
 * One write(2) per line so lines from several threads never interleave.
 * Lines are built so that a parser always finds key=value pairs: msg and
 * every LOG_Q value are escaped (log_quote), and a line that is too long
 * loses whole fields, never half a quoted value.
 */
#include "wtrelay/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_threshold = LOG_INFO;
static bool log_json; /* set once at start (log_set_json), read by every thread */

void log_set_json(bool on)
{
  log_json = on;
}

static int hexdigit(char c)
{
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A bare logfmt value that JSON takes as it is: a number or a boolean. */
static bool json_literal(const char *v, size_t n)
{
  if ((n == 4 && memcmp(v, "true", 4) == 0) || (n == 5 && memcmp(v, "false", 5) == 0))
    return true;
  size_t i = 0;
  if (i < n && v[i] == '-')
    i++;
  if (i == n || v[i] < '0' || v[i] > '9' || (v[i] == '0' && i + 1 < n && v[i + 1] != '.'))
    return false;
  while (i < n && v[i] >= '0' && v[i] <= '9')
    i++;
  if (i < n && v[i] == '.') {
    if (++i == n)
      return false;
    while (i < n && v[i] >= '0' && v[i] <= '9')
      i++;
  }
  return i == n;
}

/* Appends byte b to a JSON string. */
static size_t json_byte(char *out, size_t o, unsigned char b)
{
  static const char hex[] = "0123456789abcdef";
  if (b == '"' || b == '\\') {
    out[o++] = '\\';
    out[o++] = (char)b;
  } else if (b == '\n' || b == '\r' || b == '\t') {
    out[o++] = '\\';
    out[o++] = b == '\n' ? 'n' : b == '\r' ? 'r' : 't';
  } else if (b < 0x20 || b >= 0x7f) {
    memcpy(out + o, "\\u00", 4);
    o += 4;
    out[o++] = hex[b >> 4];
    out[o++] = hex[b & 15];
  } else {
    out[o++] = (char)b;
  }
  return o;
}

size_t log_logfmt_to_json(const char *in, size_t n, char *out, size_t cap)
{
  size_t o = 0, i = 0;
  if (cap < 2 * n + 64)
    return 0;
  out[o++] = '{';
  bool first = true, open = false; /* open: a string value still being written */
  while (i < n) {
    while (i < n && in[i] == ' ')
      i++;
    if (i == n)
      break;
    size_t k = i;
    while (i < n && in[i] != '=' && in[i] != ' ')
      i++;
    if (i == n || in[i] == ' ') {
      /* a word without '=' (a bare value with a blank in it): part of the
       * previous string value, else a key of its own with no value */
      if (open) {
        o--; /* reopen the string */
        out[o++] = ' ';
        for (size_t j = k; j < i; j++)
          o = json_byte(out, o, (unsigned char)in[j]);
        out[o++] = '"';
      }
      continue;
    }
    if (!first)
      out[o++] = ',';
    first = false;
    out[o++] = '"';
    for (size_t j = k; j < i; j++)
      o = json_byte(out, o, (unsigned char)in[j]);
    out[o++] = '"';
    out[o++] = ':';
    i++; /* '=' */
    if (i < n && in[i] == '"') {
      out[o++] = '"';
      for (i++; i < n && in[i] != '"'; i++) {
        unsigned char b = (unsigned char)in[i];
        if (b == '\\' && i + 1 < n) {
          char e = in[++i];
          if (e == 'n')
            b = '\n';
          else if (e == 'r')
            b = '\r';
          else if (e == 't')
            b = '\t';
          else if (e == 'x' && i + 2 < n && hexdigit(in[i + 1]) >= 0 && hexdigit(in[i + 2]) >= 0) {
            b = (unsigned char)(hexdigit(in[i + 1]) << 4 | hexdigit(in[i + 2]));
            i += 2;
          } else {
            b = (unsigned char)e;
          }
        }
        o = json_byte(out, o, b);
      }
      if (i < n)
        i++; /* closing quote */
      out[o++] = '"';
      open = false;
      continue;
    }
    size_t v = i;
    while (i < n && in[i] != ' ')
      i++;
    if (json_literal(in + v, i - v)) {
      memcpy(out + o, in + v, i - v);
      o += i - v;
      open = false;
    } else {
      out[o++] = '"';
      for (size_t j = v; j < i; j++)
        o = json_byte(out, o, (unsigned char)in[j]);
      out[o++] = '"';
      open = true;
    }
  }
  out[o++] = '}';
  return o;
}

int log_level_parse(const char *s, enum log_level *out)
{
  static const struct {
    const char *name;
    enum log_level lvl;
  } names[] = {{"error", LOG_ERROR}, {"warn", LOG_WARN},   {"warning", LOG_WARN},
               {"info", LOG_INFO},   {"debug", LOG_DEBUG}, {"trace", LOG_DEBUG}};
  if (!s)
    return -EINVAL;
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcasecmp(s, names[i].name) == 0) {
      *out = names[i].lvl;
      return 0;
    }
  }
  return -EINVAL;
}

const char *log_level_name(enum log_level lvl)
{
  switch (lvl) {
  case LOG_ERROR:
    return "error";
  case LOG_WARN:
    return "warn";
  case LOG_INFO:
    return "info";
  case LOG_DEBUG:
    return "debug";
  }
  return "info";
}

void log_set_level(enum log_level lvl)
{
  log_threshold = lvl;
}

bool log_enabled(enum log_level lvl)
{
  return lvl <= log_threshold;
}

/* The escape of one byte into u (at most 4 bytes); returns its length. */
static size_t quote_unit(unsigned char b, char u[4])
{
  static const char hex[] = "0123456789abcdef";
  switch (b) {
  case '"':
    u[0] = '\\', u[1] = '"';
    return 2;
  case '\\':
    u[0] = '\\', u[1] = '\\';
    return 2;
  case '\n':
    u[0] = '\\', u[1] = 'n';
    return 2;
  case '\r':
    u[0] = '\\', u[1] = 'r';
    return 2;
  case '\t':
    u[0] = '\\', u[1] = 't';
    return 2;
  default:
    break;
  }
  if (b < 0x20 || b >= 0x7f) {
    u[0] = '\\', u[1] = 'x', u[2] = hex[b >> 4], u[3] = hex[b & 15];
    return 4;
  }
  u[0] = (char)b;
  return 1;
}

const char *log_quote(char *out, size_t cap, const char *in, size_t inlen)
{
  const unsigned char *p = (const unsigned char *)in;
  char u[4];
  size_t need = 2; /* the quotes */
  if (cap == 0)
    return out;
  for (size_t i = 0; i < inlen; i++)
    need += quote_unit(p[i], u);
  size_t n = 0;
  if (need + 1 > cap && cap < 6) { /* no room for a cut marker */
    if (cap >= 3)
      out[n++] = '"', out[n++] = '"';
    out[n] = '\0';
    return out;
  }
  out[n++] = '"';
  bool cut = need + 1 > cap;
  for (size_t i = 0; i < inlen; i++) {
    size_t k = quote_unit(p[i], u);
    if (cut && n + k + 5 > cap) /* keep room for `..."` and the NUL */
      break;
    memcpy(out + n, u, k);
    n += k;
  }
  if (cut) {
    memcpy(out + n, "...", 3);
    n += 3;
  }
  out[n++] = '"';
  out[n] = '\0';
  return out;
}

const char *log_quote_str(char *out, size_t cap, const char *s)
{
  return log_quote(out, cap, s, s ? strlen(s) : 0);
}

/* The length of the longest prefix of kv[0..len) made of whole fields: the
 * position of the last space outside quotes, or 0. */
static size_t whole_fields(const char *kv, size_t len)
{
  size_t last = 0;
  bool quoted = false;
  for (size_t i = 0; i < len; i++) {
    if (quoted && kv[i] == '\\')
      i++;
    else if (kv[i] == '"')
      quoted = !quoted;
    else if (!quoted && kv[i] == ' ')
      last = i;
  }
  return last;
}

/* Writes `ts=... level=... msg="..."` into line (room for LOG_QUOTE_MAX +
 * 64 bytes at least): its length. */
static size_t line_head(char *line, size_t cap, enum log_level lvl, const char *msg)
{
  size_t n = 0;
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  n += strftime(line, cap, "ts=%Y-%m-%dT%H:%M:%S", &tm);
  n += (size_t)snprintf(line + n, cap - n, ".%03ldZ level=%s msg=", ts.tv_nsec / 1000000,
                        log_level_name(lvl));
  log_quote_str(line + n, LOG_QUOTE_MAX, msg);
  return n + strlen(line + n);
}

/* Writes line[0..n) and a newline (line has room for it at n) to stderr in
 * one write, as JSON when asked; json is a buffer of at least 2n + 65
 * bytes for that. */
static void line_out(char *line, size_t n, char *json)
{
  if (log_json) {
    size_t j = log_logfmt_to_json(line, n, json, 2 * n + 64);
    json[j++] = '\n';
    ssize_t r = write(STDERR_FILENO, json, j);
    (void)r;
    return;
  }
  line[n++] = '\n';
  ssize_t r = write(STDERR_FILENO, line, n);
  (void)r;
}

void log_emit(enum log_level lvl, const char *msg, const char *kvfmt, ...)
{
  static const char cut_mark[] = " truncated=true";
  if (!log_enabled(lvl))
    return;
  char line[LOG_LINE_MAX];
  size_t n = line_head(line, sizeof(line), lvl, msg);
  if (kvfmt && *kvfmt) {
    /* room for the key=value part, then the cut mark and the newline */
    size_t room = sizeof(line) - n - 1 - (sizeof(cut_mark) - 1) - 1;
    line[n++] = ' ';
    va_list ap;
    va_start(ap, kvfmt);
    int w = vsnprintf(line + n, room, kvfmt, ap);
    va_end(ap);
    if (w <= 0) {
      n--; /* nothing after msg: no trailing space */
    } else if ((size_t)w < room) {
      n += (size_t)w;
    } else {
      size_t keep = whole_fields(line + n, room - 1);
      if (keep)
        n += keep;
      else
        n--; /* not even the first field fits: only the mark */
      memcpy(line + n, cut_mark, sizeof(cut_mark) - 1);
      n += sizeof(cut_mark) - 1;
    }
  }
  char json[2 * LOG_LINE_MAX + 64];
  line_out(line, n, json);
}

int log_emit_long(enum log_level lvl, const char *msg, const char *kv, size_t kvlen)
{
  if (!log_enabled(lvl))
    return 0;
  size_t head = LOG_QUOTE_MAX + 64, cap = head + 1 + kvlen + 1;
  char *line = malloc(cap + (log_json ? 2 * cap + 64 : 0));
  if (!line)
    return -ENOMEM;
  size_t n = line_head(line, head, lvl, msg);
  if (kvlen) {
    line[n++] = ' ';
    memcpy(line + n, kv, kvlen);
    n += kvlen;
  }
  line_out(line, n, line + cap);
  free(line);
  return 0;
}

void log_ratelimit_init(struct log_ratelimit *rl, uint64_t interval_ns, uint32_t burst)
{
  memset(rl, 0, sizeof(*rl));
  rl->interval_ns = interval_ns;
  rl->burst = burst;
}

bool log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_ns, uint32_t *suppressed)
{
  if (now_ns - rl->window_start_ns >= rl->interval_ns) {
    rl->window_start_ns = now_ns;
    rl->used = 0;
  }
  if (rl->used >= rl->burst) {
    rl->suppressed++;
    return false;
  }
  rl->used++;
  if (suppressed)
    *suppressed = rl->suppressed;
  rl->suppressed = 0;
  return true;
}
