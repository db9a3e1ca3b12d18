/*
 * counter: the exit line's keys and text, and the self-check of counter
 * tables. See
 * include/wtrelay/counter.h.
 */
#include "wtrelay/counter.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/log.h"

static bool same(const char *a, const char *b)
{
  return a && b && strcmp(a, b) == 0;
}

void counter_sum(const struct counter_table *t, void *dst, const void *src)
{
  uint64_t *d = dst;
  const uint64_t *s = src;
  for (size_t i = 0; i < t->size / sizeof(uint64_t); i++)
    d[i] += s[i];
}

size_t counter_exit_key(const struct counter_def *d, char *out, size_t cap)
{
  if (!d->key || !d->line || cap == 0)
    return 0;
  const char *last = strrchr(d->line, ' ');
  size_t plen = last ? (size_t)(last - d->line) : 0;
  size_t first = strcspn(d->line, " ");
  if (plen && strncmp(d->key, d->line, first) == 0 && d->key[first] == '_')
    plen = 0; /* the key names its group already */
  int w = snprintf(out, cap, "%.*s%s%s", (int)plen, d->line, plen ? "_" : "", d->key);
  if (w < 0 || (size_t)w >= cap) {
    out[0] = '\0';
    return 0;
  }
  for (size_t i = 0; i < plen; i++)
    if (out[i] == ' ')
      out[i] = '_';
  return (size_t)w;
}

/* Makes room for `more` bytes; false (and the line failed) when it cannot. */
static bool line_room(struct counter_line *l, size_t more)
{
  if (l->failed)
    return false;
  if (l->n + more <= l->cap)
    return true;
  size_t cap = l->cap ? l->cap : 4096;
  while (cap < l->n + more)
    cap *= 2;
  char *s = realloc(l->s, cap);
  if (!s) {
    l->failed = true;
    return false;
  }
  l->s = s;
  l->cap = cap;
  return true;
}

void counter_line_add(struct counter_line *l, const char *key, uint64_t v)
{
  size_t klen = strlen(key);
  if (!line_room(l, klen + 24)) /* a blank, the key, '=', 20 digits, the NUL */
    return;
  int w = snprintf(l->s + l->n, l->cap - l->n, "%s%s=%llu", l->n ? " " : "", key,
                   (unsigned long long)v);
  if (w > 0)
    l->n += (size_t)w;
}

void counter_line_table(struct counter_line *l, const struct counter_table *t, const void *ctr)
{
  for (size_t i = 0; i < t->n; i++) {
    char key[COUNTER_KEY_MAX];
    if (counter_exit_key(&t->defs[i], key, sizeof(key)))
      counter_line_add(l, key, counter_value(&t->defs[i], ctr));
  }
}

int counter_line_emit(struct counter_line *l, enum log_level lvl, const char *msg)
{
  int rc = l->failed ? -ENOMEM : log_emit_long(lvl, msg, l->s ? l->s : "", l->n);
  free(l->s);
  *l = (struct counter_line){0};
  return rc;
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
    char kd[COUNTER_KEY_MAX];
    if (d->key && !counter_exit_key(d, kd, sizeof(kd))) {
      snprintf(err, errlen, "row %zu (%s): exit key longer than %d bytes", i, name,
               COUNTER_KEY_MAX - 1);
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
      char ke[COUNTER_KEY_MAX];
      if (d->key && counter_exit_key(e, ke, sizeof(ke)) && same(ke, kd)) {
        snprintf(err, errlen, "rows %zu and %zu: exit key %s twice", j, i, kd);
        return -EINVAL;
      }
    }
  }
  return 0;
}
