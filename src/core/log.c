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
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_threshold = LOG_INFO;

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

void log_emit(enum log_level lvl, const char *msg, const char *kvfmt, ...)
{
  static const char cut_mark[] = " truncated=true";
  if (!log_enabled(lvl))
    return;
  char line[LOG_LINE_MAX];
  size_t n = 0;
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  n += strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
  n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s msg=", ts.tv_nsec / 1000000,
                        log_level_name(lvl));
  log_quote_str(line + n, LOG_QUOTE_MAX, msg);
  n += strlen(line + n);
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
  line[n++] = '\n';
  ssize_t r = write(STDERR_FILENO, line, n);
  (void)r;
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
