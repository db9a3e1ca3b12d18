#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/metrics.h"

static const char *esc(const char *s, size_t cap)
{
  static char buf[256];
  cr_assert_leq(cap, sizeof(buf));
  size_t n = metrics_label_escape(buf, cap, s);
  cr_assert_eq(n, strlen(buf));
  return buf;
}

/* The three escapes of the text format; everything else valid passes. */
Test(metrics_process, label_escape)
{
  cr_assert_str_eq(esc("room-1", 64), "room-1");
  cr_assert_str_eq(esc("a\"b", 64), "a\\\"b");
  cr_assert_str_eq(esc("a\\b", 64), "a\\\\b");
  cr_assert_str_eq(esc("a\nb", 64), "a\\nb");
  cr_assert_str_eq(esc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 64),
                   "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  cr_assert_str_eq(esc("", 64), "");
}

/* Bytes that are no UTF-8 (a lone continuation, a cut sequence, an
 * overlong form, a surrogate) become U+FFFD, one per byte. */
Test(metrics_process, label_escape_invalid_utf8)
{
  cr_assert_str_eq(esc("a\x80z", 64), "a\xef\xbf\xbdz");
  cr_assert_str_eq(esc("\xc3", 64), "\xef\xbf\xbd");
  cr_assert_str_eq(esc("\xc0\xaf", 64), "\xef\xbf\xbd\xef\xbf\xbd");
  cr_assert_str_eq(esc("\xed\xa0\x80", 64), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

/* An escape that does not fit is left out whole: never half an escape
 * (a lone backslash would swallow the closing quote). */
Test(metrics_process, label_escape_truncates_whole)
{
  cr_assert_str_eq(esc("ab\"", 4), "ab");
  cr_assert_str_eq(esc("ab\"", 5), "ab\\\"");
  cr_assert_str_eq(esc("\xe2\x82\xac", 3), "");
  char one[1];
  cr_assert_eq(metrics_label_escape(one, 1, "x"), 0);
  cr_assert_eq(one[0], '\0');
}

/* build_info and the process families, each with its HELP and TYPE. */
Test(metrics_process, families)
{
  struct ops_buf b = {.max = 1 << 16};
  metrics_process_write(&b);
  cr_assert(!b.overflow);
  cr_assert(b.p);
  const char *want[] = {
      "# TYPE wtrelay_build_info gauge\nwtrelay_build_info{version=\"",
      "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ",
      "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ",
      "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ",
      "# TYPE process_open_fds gauge\nprocess_open_fds ",
  };
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
    cr_assert(strstr(b.p, want[i]), "no %s in\n%s", want[i], b.p);
  free(b.p);
}
