/*
 * log: logfmt writer. See include/wtrelay/log.h for the contract.
 * One write(2) per line so lines from several threads never interleave.
 */
#include "wtrelay/log.h"

#include <errno.h>
#include <stdarg.h>
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
  case LOG_ERROR: return "error";
  case LOG_WARN: return "warn";
  case LOG_INFO: return "info";
  case LOG_DEBUG: return "debug";
  }
  return "info";
}

void log_set_level(enum log_level lvl) { log_threshold = lvl; }

bool log_enabled(enum log_level lvl) { return lvl <= log_threshold; }

void log_emit(enum log_level lvl, const char *msg, const char *kvfmt, ...)
{
  if (!log_enabled(lvl))
    return;
  char line[1024];
  size_t n = 0;
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  n += strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
  n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s msg=\"",
                        ts.tv_nsec / 1000000, log_level_name(lvl));
  for (const char *p = msg; *p && n < sizeof(line) - 4; p++) {
    if (*p == '"' || *p == '\\')
      line[n++] = '\\';
    line[n++] = (*p == '\n') ? ' ' : *p;
  }
  line[n++] = '"';
  if (kvfmt && *kvfmt && n < sizeof(line) - 2) {
    line[n++] = ' ';
    va_list ap;
    va_start(ap, kvfmt);
    int w = vsnprintf(line + n, sizeof(line) - n, kvfmt, ap);
    va_end(ap);
    if (w > 0)
      n += ((size_t)w < sizeof(line) - n) ? (size_t)w : sizeof(line) - n - 1;
  }
  if (n > sizeof(line) - 2)
    n = sizeof(line) - 2;
  line[n++] = '\n';
  ssize_t r = write(STDERR_FILENO, line, n);
  (void)r;
}

void log_ratelimit_init(struct log_ratelimit *rl, uint64_t interval_ns,
                        uint32_t burst)
{
  memset(rl, 0, sizeof(*rl));
  rl->interval_ns = interval_ns;
  rl->burst = burst;
}

bool log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_ns,
                         uint32_t *suppressed)
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
