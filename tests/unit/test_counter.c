#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/auth.h"
#include "wtrelay/capture.h"
#include "wtrelay/chunk.h"
#include "wtrelay/counter.h"
#include "wtrelay/fed.h"
#include "wtrelay/gateway.h"
#include "wtrelay/h3.h"
#include "wtrelay/hostaddr.h"
#include "wtrelay/io.h"
#include "wtrelay/languard.h"
#include "wtrelay/lease.h"
#include "wtrelay/log.h"
#include "wtrelay/metrics.h"
#include "wtrelay/ops.h"
#include "wtrelay/quic.h"
#include "wtrelay/relay.h"
#include "wtrelay/switch.h"
#include "wtrelay/timer.h"

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

/* Every counters struct of the tree and its table: a struct added here
 * without a table, or a field without a row, fails below. */
#define ENTRY(tab, T)                                                                              \
  {                                                                                                \
#tab, &(tab), sizeof(T)                                                                        \
  }
static const struct {
  const char *name;
  const struct counter_table *t;
  size_t size;
} tables[] = {
    ENTRY(io_counter_table, struct io_counters),
    ENTRY(quic_counter_table, struct quic_counters),
    ENTRY(h3_counter_table, struct h3_counters),
    ENTRY(relay_counter_table, struct relay_counters),
    ENTRY(switch_counter_table, struct switch_counters),
    ENTRY(switch_kind_counter_table, struct switch_kind_table),
    ENTRY(chunk_counter_table, struct chunk_counters),
    ENTRY(lease_counter_table, struct lease_counters),
    ENTRY(gateway_counter_table, struct gateway_counters),
    ENTRY(auth_counter_table, struct auth_counters),
    ENTRY(hostaddr_counter_table, struct hostaddr_counters),
    ENTRY(ops_counter_table, struct ops_counters),
    ENTRY(timer_counter_table, struct timer_stats),
    ENTRY(fed_counter_table, struct fed_counters),
    ENTRY(capture_counter_table, struct capture_counters),
    ENTRY(metrics_gauge_table, struct metrics_gauges),
};
#undef ENTRY

/* Each table names every 64-bit word of its struct exactly once (the
 * check: one row per slot, no offset twice), and describes the struct it
 * is declared for. */
Test(counter, every_table_names_every_field_once)
{
  for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
    check_ok(tables[i].t, tables[i].name);
    cr_assert_eq(tables[i].t->size, tables[i].size, "%s", tables[i].name);
    cr_assert_eq(tables[i].t->n, tables[i].size / sizeof(uint64_t), "%s", tables[i].name);
    size_t exported = 0;
    for (size_t j = 0; j < tables[i].t->n; j++)
      exported += tables[i].t->defs[j].family != NULL;
    cr_assert_gt(exported, 0, "%s exports nothing", tables[i].name);
  }
}

/* The parts of what a worker counts (the unit of the snapshot, the sum
 * and the exit log) tile struct metrics_worker up to its histograms, which
 * end it: no gap a counter could hide in, no overlap counted twice. */
Test(counter, worker_parts_tile_the_worker_struct)
{
  size_t at = 0;
  for (size_t i = 0; i < metrics_worker_nparts; i++) {
    cr_assert_eq(metrics_worker_parts[i].off, at, "part %zu", i);
    at += metrics_worker_parts[i].t->size;
  }
  cr_assert_eq(at, offsetof(struct metrics_worker, hist));
  cr_assert_eq(at + sizeof(struct metrics_hists), sizeof(struct metrics_worker));
}

/* The exit line's keys: the group's words but the last, then the key;
 * the key alone when it names its group already. */
Test(counter, exit_key_from_group_and_key)
{
  static const struct {
    const char *line, *key, *want;
  } cases[] = {
      {"quic counters", "resets", "quic_resets"},
      {"nat share counters", "rate_tcp", "nat_share_rate_tcp"},
      {"tcp nat counters", "tcp_opened", "tcp_opened"},
      {"frame counters", "frames_in", "frame_frames_in"},
      {"counters", "x", "x"},
  };
  char k[COUNTER_KEY_MAX];
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct counter_def d = {.line = cases[i].line, .key = cases[i].key};
    cr_assert_eq(counter_exit_key(&d, k, sizeof(k)), strlen(cases[i].want));
    cr_assert_str_eq(k, cases[i].want);
  }
  struct counter_def d = {.line = "quic counters", .key = NULL};
  cr_assert_eq(counter_exit_key(&d, k, sizeof(k)), 0, "not logged");
  d.key = "resets";
  cr_assert_eq(counter_exit_key(&d, k, 8), 0, "too long for out");
}

/* Every key of the exit line is unique: the tables of a worker, the
 * process-wide ones, and the keys the server adds itself (server.c's
 * log_exit_counters). */
Test(counter, exit_keys_unique_across_tables)
{
  static const char *const own[] = {"workers",      "loop_turns",      "loop_busy_ns",
                                    "loop_wait_ns", "loop_handoff_in", "loop_uplink_no_room",
                                    "leases",       "leases_active"};
  static char keys[2048][COUNTER_KEY_MAX];
  size_t n = 0;
  for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
    snprintf(keys[n++], COUNTER_KEY_MAX, "%s", own[i]);
  for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
    for (size_t j = 0; j < tables[i].t->n; j++) {
      cr_assert_lt(n, 2048);
      if (counter_exit_key(&tables[i].t->defs[j], keys[n], COUNTER_KEY_MAX))
        n++;
    }
  cr_assert_gt(n, 300);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < i; j++)
      cr_assert_str_neq(keys[i], keys[j], "exit key %s twice", keys[i]);
}

/* The line: key=value fields in order, zeros included, growing past
 * LOG_LINE_MAX. */
Test(counter, line_grows_and_keeps_every_field)
{
  struct counter_line l = {0};
  counter_line_add(&l, "workers", 2);
  struct switch_kind_table sk = {0};
  counter_line_table(&l, &switch_kind_counter_table, &sk);
  for (int i = 0; i < 400; i++) {
    char k[32];
    snprintf(k, sizeof(k), "k%d", i);
    counter_line_add(&l, k, (uint64_t)i * 1000000007u);
  }
  cr_assert_not(l.failed);
  cr_assert_gt(l.n, (size_t)LOG_LINE_MAX);
  cr_assert_eq(strlen(l.s), l.n);
  cr_assert(strncmp(l.s, "workers=2 switch_port_local_in=0 ", 33) == 0, "%.40s", l.s);
  cr_assert(strstr(l.s, " k399=399000002793"), "%s", l.s + l.n - 40);
  log_set_level(LOG_INFO);
  cr_assert_eq(counter_line_emit(&l, LOG_DEBUG, "counters at exit"), 0); /* off: nothing */
  cr_assert_null(l.s);
  cr_assert_eq(l.n, 0);
}

/* A family two tables share is written once: storm control ends the
 * relay's table and starts the switch's, which metrics.c writes next. */
Test(counter, storm_control_family_spans_relay_and_switch)
{
  const struct counter_def *last = &relay_counter_table.defs[relay_counter_table.n - 1];
  cr_assert_str_eq(last->family, "wtrelay_storm_control_drops_total");
  cr_assert_str_eq(switch_counter_table.defs[0].family, last->family);
}

/* Summing adds every word. */
Test(counter, sum_adds_every_word)
{
  struct switch_counters a, b;
  uint64_t *wa = (uint64_t *)(void *)&a, *wb = (uint64_t *)(void *)&b;
  for (size_t i = 0; i < sizeof(a) / 8; i++) {
    wa[i] = i;
    wb[i] = 1000 + i;
  }
  counter_sum(&switch_counter_table, &a, &b);
  for (size_t i = 0; i < sizeof(a) / 8; i++)
    cr_assert_eq(wa[i], 1000 + 2 * i);
}

/* The refusal rows are labelled with auth's own reason names. */
Test(counter, auth_labels_match_reason_names)
{
  for (int r = 1; r < AUTH_NREASONS; r++) {
    size_t off = offsetof(struct auth_counters, refused) + (size_t)r * sizeof(uint64_t);
    const struct counter_def *d = NULL;
    for (size_t i = 0; i < auth_counter_table.n; i++)
      if (auth_counter_table.defs[i].off == off)
        d = &auth_counter_table.defs[i];
    cr_assert_not_null(d);
    char want[64];
    snprintf(want, sizeof(want), "reason=\"%s\"", auth_reason_name((enum auth_reason)r));
    cr_assert_str_eq(d->labels, want);
  }
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
  /* a family of counters and gauges mixed */
  const struct counter_def mixed[] = {
      good[0], COUNTER_GAUGE(struct three, "x_total", NULL, "k=\"b\"", "l", "b", b), good[2]};
  cr_assert_lt(check(mixed, 3), 0);
  /* a reserved slot (neither exported nor logged) is fine */
  const struct counter_def reserved[] = {good[0], good[1], D(NULL, NULL, NULL, NULL, NULL, c)};
  cr_assert_eq(check(reserved, 3), 0);
}
