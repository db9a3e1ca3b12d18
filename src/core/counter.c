/*
 * counter: exit-log lines and self-check of counter tables. See
 * include/wtrelay/counter.h.
 */
#include "wtrelay/counter.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/log.h"

static bool same(const char *a, const char *b)
{
  return a && b && strcmp(a, b) == 0;
}

void counter_log(const struct counter_table *t, const void *ctr)
{
  counter_log_tagged(t, ctr, NULL);
}

void counter_sum(const struct counter_table *t, void *dst, const void *src)
{
  uint64_t *d = dst;
  const uint64_t *s = src;
  for (size_t i = 0; i < t->size / sizeof(uint64_t); i++)
    d[i] += s[i];
}

void counter_log_tagged(const struct counter_table *t, const void *ctr, const char *tag)
{
  counter_log_at(t, ctr, tag, LOG_INFO);
}

void counter_log_at(const struct counter_table *t, const void *ctr, const char *tag,
                    enum log_level lvl)
{
  if (!log_enabled(lvl))
    return;
  for (size_t i = 0; i < t->n; i++) {
    const char *line = t->defs[i].line;
    if (!line || !t->defs[i].key)
      continue;
    bool seen = false;
    for (size_t j = 0; j < i && !seen; j++)
      seen = t->defs[j].key && same(t->defs[j].line, line);
    if (seen)
      continue;
    char kv[LOG_LINE_MAX];
    size_t n = 0;
    if (tag && *tag) {
      int w = snprintf(kv, sizeof(kv), "%s", tag);
      n = w < 0 ? 0 : (size_t)w < sizeof(kv) ? (size_t)w : sizeof(kv) - 1;
    }
    for (size_t j = i; j < t->n && n < sizeof(kv); j++) {
      const struct counter_def *d = &t->defs[j];
      if (!d->key || !same(d->line, line))
        continue;
      int w = snprintf(kv + n, sizeof(kv) - n, "%s%s=%llu", n ? " " : "", d->key,
                       (unsigned long long)counter_value(d, ctr));
      if (w < 0)
        break;
      n += (size_t)w;
    }
    log_emit(lvl, line, "%s", kv);
  }
}

int counter_table_check(const struct counter_table *t, char *err, size_t errlen)
{
  size_t slots = t->size / sizeof(uint64_t);
  if (t->size % sizeof(uint64_t)) {
    snprintf(err, errlen, "struct size %zu is not a whole number of counters", t->size);
    return -EINVAL;
  }
  if (t->n != slots) {
    snprintf(err, errlen, "%zu rows for %zu counters", t->n, slots);
    return -EINVAL;
  }
  for (size_t i = 0; i < t->n; i++) {
    const struct counter_def *d = &t->defs[i];
    const char *name = d->key ? d->key : d->family ? d->family : "(reserved)";
    if (d->off % sizeof(uint64_t) || d->off >= t->size) {
      snprintf(err, errlen, "row %zu (%s): offset %zu", i, name, d->off);
      return -EINVAL;
    }
    if (!d->family != !d->key) {
      snprintf(err, errlen, "row %zu (%s): exported without being logged, or logged only", i, name);
      return -EINVAL;
    }
    if (d->key && !d->line) {
      snprintf(err, errlen, "row %zu (%s): a key without a log line", i, name);
      return -EINVAL;
    }
    bool first = i == 0 || !same(t->defs[i - 1].family, d->family);
    if (d->family && !first && !t->defs[i - 1].gauge != !d->gauge) {
      snprintf(err, errlen, "row %zu (%s): a family of counters and gauges mixed", i, name);
      return -EINVAL;
    }
    if (d->family && first != (d->help != NULL)) {
      snprintf(err, errlen, "row %zu (%s): help must be on the family's first row only", i, name);
      return -EINVAL;
    }
    for (size_t j = 0; j < i; j++) {
      const struct counter_def *e = &t->defs[j];
      if (e->off == d->off) {
        snprintf(err, errlen, "rows %zu and %zu name the same counter", j, i);
        return -EINVAL;
      }
      if (first && d->family && same(e->family, d->family)) {
        snprintf(err, errlen, "row %zu: family %s is split", i, d->family);
        return -EINVAL;
      }
      if (d->family && same(e->family, d->family) &&
          (e->labels == d->labels || same(e->labels, d->labels))) {
        snprintf(err, errlen, "rows %zu and %zu: the same sample of %s", j, i, d->family);
        return -EINVAL;
      }
      if (d->key && same(e->key, d->key) && same(e->line, d->line)) {
        snprintf(err, errlen, "rows %zu and %zu: key %s twice in one line", j, i, d->key);
        return -EINVAL;
      }
    }
  }
  return 0;
}
