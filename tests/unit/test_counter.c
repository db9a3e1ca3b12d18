#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/counter.h"
#include "wtrelay/gateway.h"
#include "wtrelay/languard.h"
#include "wtrelay/relay.h"

static void check_ok(const struct counter_table *t, const char *name)
{
  char err[256] = "";
  cr_assert_eq(counter_table_check(t, err, sizeof(err)), 0, "%s: %s", name, err);
}

/* Every field of the struct has exactly one row: a new counter without a
 * row (or a row for a field that went) fails here. */
Test(counter, relay_table_names_every_field)
{
  check_ok(&relay_counter_table, "relay_counter_table");
  cr_assert_eq(relay_counter_table.n, sizeof(struct relay_counters) / sizeof(uint64_t));
}

Test(counter, gateway_table_names_every_field)
{
  check_ok(&gateway_counter_table, "gateway_counter_table");
  cr_assert_eq(gateway_counter_table.n, sizeof(struct gateway_counters) / sizeof(uint64_t));
}

/* The LAN guard rows are labelled with languard's own verdict names. */
Test(counter, relay_guard_labels_match_verdict_names)
{
  for (int v = 1; v < LANGUARD_NVERDICTS; v++) {
    size_t off = offsetof(struct relay_counters, guard_drops) + (size_t)v * sizeof(uint64_t);
    const struct counter_def *d = NULL;
    for (size_t i = 0; i < relay_counter_table.n; i++)
      if (relay_counter_table.defs[i].off == off)
        d = &relay_counter_table.defs[i];
    cr_assert_not_null(d);
    char want[64];
    snprintf(want, sizeof(want), "reason=\"%s\"", languard_verdict_name((enum languard_verdict)v));
    cr_assert_str_eq(d->labels, want);
    cr_assert_str_eq(d->key, languard_verdict_name((enum languard_verdict)v));
  }
}

/* The check itself fails on each broken rule. */
struct three {
  uint64_t a, b, c;
};
#define D(fam, help, labels, line, key, field)                                                     \
  COUNTER_DEF(struct three, fam, help, labels, line, key, field)

static int check(const struct counter_def *defs, size_t n)
{
  struct counter_table t = {.defs = defs, .n = n, .size = sizeof(struct three)};
  char err[256];
  return counter_table_check(&t, err, sizeof(err));
}

Test(counter, check_fails_on_broken_tables)
{
  const struct counter_def good[] = {
      D("x_total", "x", "k=\"a\"", "l", "a", a),
      D("x_total", NULL, "k=\"b\"", "l", "b", b),
      D("y_total", "y", NULL, "l", "c", c),
  };
  cr_assert_eq(check(good, 3), 0);
  /* a field without a row */
  cr_assert_lt(check(good, 2), 0);
  /* a field named twice */
  const struct counter_def twice[] = {good[0], good[1], D("y_total", "y", NULL, "l", "c", a)};
  cr_assert_lt(check(twice, 3), 0);
  /* a family split by another */
  const struct counter_def split[] = {
      D("x_total", "x", "k=\"a\"", "l", "a", a),
      D("y_total", "y", NULL, "l", "c", c),
      D("x_total", "x", "k=\"b\"", "l", "b", b),
  };
  cr_assert_lt(check(split, 3), 0);
  /* help missing, or repeated */
  const struct counter_def nohelp[] = {good[0], good[1], D("y_total", NULL, NULL, "l", "c", c)};
  cr_assert_lt(check(nohelp, 3), 0);
  const struct counter_def rehelp[] = {good[0], D("x_total", "x", "k=\"b\"", "l", "b", b), good[2]};
  cr_assert_lt(check(rehelp, 3), 0);
  /* the same sample twice, the same key twice in a line */
  const struct counter_def dupsample[] = {good[0], D("x_total", NULL, "k=\"a\"", "l", "b", b),
                                          good[2]};
  cr_assert_lt(check(dupsample, 3), 0);
  const struct counter_def dupkey[] = {good[0], D("x_total", NULL, "k=\"b\"", "l", "a", b),
                                       good[2]};
  cr_assert_lt(check(dupkey, 3), 0);
  /* exported but not logged */
  const struct counter_def nolog[] = {good[0], good[1], D("y_total", "y", NULL, NULL, NULL, c)};
  cr_assert_lt(check(nolog, 3), 0);
  /* a reserved slot (neither exported nor logged) is fine */
  const struct counter_def reserved[] = {good[0], good[1], D(NULL, NULL, NULL, NULL, NULL, c)};
  cr_assert_eq(check(reserved, 3), 0);
}
