/*
 * counter: one table per counters struct, naming each 64-bit field for
 * both outputs, so /metrics and the exit log cannot drift apart.
 *
 * Owns: the table types, the exit line's keys and text (counter_exit_key,
 * struct counter_line) and the table's self-check (counter_table_check, run
 * by the unit tests).
 * Talks to: log. The Prometheus writer is metrics.c's (ops layer), which
 * walks the same rows; a module exports its table beside its struct
 * (relay_counter_table, gateway_counter_table).
 * Never: holds counter values; rows point into a struct by offset.
 *
 * Rules a table keeps (counter_table_check): every 8-byte slot of the
 * struct is named by exactly one row, so a field added without a row fails
 * the unit test; the rows of one Prometheus family are adjacent and the
 * first carries the family's help; a slot that is never counted (an array
 * index such as "pass") has a row with no family and no key; every logged
 * row's exit key (counter_exit_key) is unique in its table and shorter than
 * COUNTER_KEY_MAX.
 *
 * Gauges: a row made with COUNTER_GAUGE is a value that goes up and down
 * (MACs learned now), exported with TYPE gauge; every row of its family
 * must be a gauge too. Counters and gauges alike are summed over workers
 * (counter_sum): a struct is either per worker and summed, or process-wide
 * and read once.
 */
#ifndef WTRELAY_COUNTER_H
#define WTRELAY_COUNTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wtrelay/log.h"

struct counter_def {
  const char *family; /* Prometheus counter family ("wtrelay_frames_total"); NULL: not exported */
  const char *help;   /* the family's help, on its first row only (NULL on the others) */
  const char *labels; /* the sample's labels ("dir=\"in\""), NULL for none */
  const char *line;   /* its group ("relay counters"): the exit key's prefix, counter_exit_key */
  const char *key;    /* its key in that group; NULL: not logged */
  size_t off;         /* offsetof the uint64_t in the struct */
  int gauge;          /* 1: a gauge (COUNTER_GAUGE), 0: a counter */
};

struct counter_table {
  const struct counter_def *defs;
  size_t n;
  size_t size; /* sizeof the counters struct: size / 8 slots */
};

/* One table row: family, help, labels, log line, key, field. */
#define COUNTER_DEF(T, fam, hlp, lbl, ln, k, field)                                                \
  {                                                                                                \
    .family = (fam), .help = (hlp), .labels = (lbl), .line = (ln), .key = (k),                     \
    .off = offsetof(T, field)                                                                      \
  }

/* A gauge row: as COUNTER_DEF. */
#define COUNTER_GAUGE(T, fam, hlp, lbl, ln, k, field)                                              \
  {                                                                                                \
    .family = (fam), .help = (hlp), .labels = (lbl), .line = (ln), .key = (k),                     \
    .off = offsetof(T, field), .gauge = 1                                                          \
  }

/* The table of a row array `rows` describing struct type T. */
#define COUNTER_TABLE(rows, T)                                                                     \
  {                                                                                                \
    .defs = (rows), .n = sizeof(rows) / sizeof((rows)[0]), .size = sizeof(T)                       \
  }

static inline uint64_t counter_value(const struct counter_def *d, const void *ctr)
{
  return *(const uint64_t *)(const void *)((const char *)ctr + d->off);
}

/* Longest exit-line key (counter_exit_key), NUL included. */
#define COUNTER_KEY_MAX 96

/* The key of a logged row in the exit line: the words of its `line` but
 * the last, joined by '_', then '_' and its key ("quic counters" and
 * "resets" give "quic_resets", "nat share counters" and "rate_tcp" give
 * "nat_share_rate_tcp"); the key alone when it starts with the line's first
 * word and '_' already ("tcp nat counters" and "tcp_opened" give
 * "tcp_opened"). Writes it into out (cap bytes): its length, 0 for a row
 * that is not logged (or a key longer than cap). */
size_t counter_exit_key(const struct counter_def *d, char *out, size_t cap);

/* The exit line: every counter of every table as key=value, one log line
 * however long (log_emit_long). Start from {0}; a failed allocation makes
 * the line fail as a whole (emit returns -ENOMEM, nothing is written). */
struct counter_line {
  char *s;
  size_t n, cap;
  bool failed;
};
/* Appends key=v. */
void counter_line_add(struct counter_line *l, const char *key, uint64_t v);
/* Appends every logged row of the table, read from ctr (the struct the
 * table describes), in table order, under its counter_exit_key. */
void counter_line_table(struct counter_line *l, const struct counter_table *t, const void *ctr);
/* Writes the line at level lvl with msg, and frees it (l is {0} after).
 * Returns 0 or -ENOMEM. */
int counter_line_emit(struct counter_line *l, enum log_level lvl, const char *msg);

/* Adds every 64-bit word of src (a struct the table describes) to dst's. */
void counter_sum(const struct counter_table *t, void *dst, const void *src);

/* Checks the rules above. Returns 0, or -EINVAL with a reason in err. */
int counter_table_check(const struct counter_table *t, char *err, size_t errlen);

#endif
