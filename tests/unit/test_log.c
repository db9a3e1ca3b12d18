/*
 * Unit tests for log.c: the logfmt escaper (log_quote) for every class of
 * byte, its bounds and cut marker, and log_emit's lines (escaped msg,
 * LOG_Q values, long lines cut after a whole field).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wtrelay/log.h"

static const char *q(const char *in, size_t len)
{
  static char out[256];
  memset(out, 'Z', sizeof(out));
  return log_quote(out, sizeof(out), in, len);
}

Test(log_quote, plain_text_unchanged)
{
  cr_assert_str_eq(q("lab", 3), "\"lab\"");
  cr_assert_str_eq(q("/room-1 with space=x'y", 22), "\"/room-1 with space=x'y\"");
  cr_assert_str_eq(q("", 0), "\"\"");
  cr_assert_str_eq(log_quote_str((char[8]){0}, 8, NULL), "\"\"");
  cr_assert_str_eq(q(" ~", 2), "\" ~\"", "0x20 and 0x7e are printable");
}

Test(log_quote, quote_and_backslash)
{
  cr_assert_str_eq(q("a\"b", 3), "\"a\\\"b\"");
  cr_assert_str_eq(q("a\\b", 3), "\"a\\\\b\"");
  /* a backslash before a quote cannot un-escape it */
  cr_assert_str_eq(q("\\\"", 2), "\"\\\\\\\"\"");
}

Test(log_quote, named_control_bytes)
{
  cr_assert_str_eq(q("a\nb", 3), "\"a\\nb\"");
  cr_assert_str_eq(q("a\rb", 3), "\"a\\rb\"");
  cr_assert_str_eq(q("a\tb", 3), "\"a\\tb\"");
}

Test(log_quote, every_other_byte_as_hex)
{
  char in[1], want[16];
  for (int b = 0; b < 256; b++) {
    in[0] = (char)b;
    const char *got = q(in, 1);
    if (b == '"' || b == '\\' || b == '\n' || b == '\r' || b == '\t')
      continue;
    if (b >= 0x20 && b < 0x7f)
      snprintf(want, sizeof(want), "\"%c\"", b);
    else
      snprintf(want, sizeof(want), "\"\\x%02x\"", b);
    cr_assert_str_eq(got, want, "byte 0x%02x", b);
  }
  cr_assert_str_eq(q("\x1b[31m", 5), "\"\\x1b[31m\"");
  cr_assert_str_eq(q("\x00", 1), "\"\\x00\"", "NUL inside the length is escaped");
  cr_assert_str_eq(q("\xc3\xa9", 2), "\"\\xc3\\xa9\"", "UTF-8 bytes as hex");
}

Test(log_quote, output_never_has_raw_specials)
{
  char in[256];
  for (int i = 0; i < 256; i++)
    in[i] = (char)i;
  char out[2048];
  log_quote(out, sizeof(out), in, sizeof(in));
  size_t n = strlen(out);
  cr_assert_gt(n, 2);
  cr_assert_eq(out[0], '"');
  cr_assert_eq(out[n - 1], '"');
  for (size_t i = 1; i + 1 < n; i++) {
    unsigned char c = (unsigned char)out[i];
    cr_assert(c >= 0x20 && c < 0x7f, "raw byte 0x%02x at %zu", c, i);
    if (c == '"')
      cr_assert_eq(out[i - 1], '\\', "unescaped quote at %zu", i);
    if (c == '\\')
      i++; /* the escaped byte */
  }
  cr_assert_eq(strstr(out, "..."), NULL, "fits whole: no cut marker");
}

Test(log_quote, exact_fit_and_cut_marker)
{
  char out[16];
  /* "abcdefghijklm" + NUL = 16: fits exactly */
  cr_assert_str_eq(log_quote(out, sizeof(out), "abcdefghijklm", 13), "\"abcdefghijklm\"");
  /* one more byte: cut, and the marker takes the end */
  cr_assert_str_eq(log_quote(out, sizeof(out), "abcdefghijklmn", 14), "\"abcdefghij...\"");
  cr_assert_eq(strlen(out), sizeof(out) - 1);
}

Test(log_quote, cut_never_splits_an_escape)
{
  char out[12];
  /* room for 6 bytes before `..."`: one \xNN (4) fits, the next does not */
  log_quote(out, sizeof(out), "\x01\x02\x03", 3);
  cr_assert_str_eq(out, "\"\\x01...\"");
  log_quote(out, sizeof(out), "ab\"\"\"\"", 6);
  cr_assert_str_eq(out, "\"ab\\\"\\\"...\"");
  log_quote(out, sizeof(out), "abc\"\"\"\"", 7);
  cr_assert_str_eq(out, "\"abc\\\"...\"", "a 2-byte escape that would end at 7 is left out");
}

Test(log_quote, tiny_buffers)
{
  char out[8];
  memset(out, 'Z', sizeof(out));
  log_quote(out, 0, "abc", 3);
  cr_assert_eq(out[0], 'Z', "cap 0 writes nothing");
  cr_assert_str_eq(log_quote(out, 1, "abc", 3), "");
  cr_assert_str_eq(log_quote(out, 2, "abc", 3), "");
  cr_assert_str_eq(log_quote(out, 3, "abc", 3), "\"\"");
  cr_assert_str_eq(log_quote(out, 5, "abc", 3), "\"\"");
  cr_assert_str_eq(log_quote(out, 5, "ab", 2), "\"ab\"");
  cr_assert_str_eq(log_quote(out, 6, "abcd", 4), "\"...\"");
  cr_assert_str_eq(log_quote(out, 3, "", 0), "\"\"");
}

Test(log_quote, log_q_macro_bounded)
{
  char big[1000];
  memset(big, '"', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  const char *s = LOG_Q(big);
  cr_assert_eq(strlen(s), LOG_QUOTE_MAX - 1);
  cr_assert_str_eq(s + strlen(s) - 4, "...\"");
  /* a 255-byte ASCII room name fits whole */
  char room[256];
  memset(room, 'r', 255);
  room[255] = '\0';
  cr_assert_eq(strlen(LOG_Q(room)), 257);
}

/* Runs fn with stderr sent to a temporary file; returns what was written. */
static char *capture(void (*fn)(void))
{
  FILE *f = tmpfile();
  cr_assert_not_null(f);
  int saved = dup(STDERR_FILENO);
  dup2(fileno(f), STDERR_FILENO);
  fn();
  dup2(saved, STDERR_FILENO);
  close(saved);
  long n = ftell(f);
  char *buf = calloc(1, (size_t)n + 1);
  rewind(f);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  return buf;
}

static void emit_hostile(void)
{
  log_set_level(LOG_INFO);
  log_info("session ended", "room=%s reason=%s code=%u", LOG_Q("/x\" level=error msg=\"forged"),
           LOG_Q("bye\nts=1 level=error msg=\"forged\""), 7u);
  log_info("msg with \"quote\"\nand newline", "%s", "");
}

Test(log_emit, hostile_values_stay_in_their_fields)
{
  char *out = capture(emit_hostile);
  char *nl = strchr(out, '\n');
  cr_assert_not_null(nl);
  *nl = '\0';
  cr_assert_not_null(strstr(out, " level=info msg=\"session ended\" "
                                 "room=\"/x\\\" level=error msg=\\\"forged\" "
                                 "reason=\"bye\\nts=1 level=error msg=\\\"forged\\\"\" code=7"),
                     "%s", out);
  char *second = nl + 1;
  nl = strchr(second, '\n');
  cr_assert_not_null(nl);
  cr_assert_eq(nl[1], '\0', "exactly two lines");
  *nl = '\0';
  cr_assert_not_null(strstr(second, "msg=\"msg with \\\"quote\\\"\\nand newline\""), "%s", second);
  free(out);
}

static void emit_long(void)
{
  char v[LOG_QUOTE_MAX];
  memset(v, 'a', sizeof(v) - 1);
  v[sizeof(v) - 1] = '\0';
  log_set_level(LOG_INFO);
  log_info("long", "a=%s b=%s c=%s d=%s e=%s f=%s g=%s", LOG_Q(v), LOG_Q(v), LOG_Q(v), LOG_Q(v),
           LOG_Q(v), LOG_Q(v), LOG_Q(v));
  log_info("one huge bare field", "x=%s", v);
}

static void emit_one_huge_field(void)
{
  static char v[3 * LOG_LINE_MAX];
  memset(v, 'b', sizeof(v) - 1);
  log_set_level(LOG_INFO);
  log_info("one huge bare field", "x=%s", v);
}

Test(log_emit, long_lines_lose_whole_fields)
{
  char *out = capture(emit_long);
  char *nl = strchr(out, '\n');
  cr_assert_not_null(nl);
  cr_assert_leq((size_t)(nl - out + 1), (size_t)LOG_LINE_MAX);
  *nl = '\0';
  size_t n = strlen(out);
  const char *mark = " truncated=true";
  cr_assert_str_eq(out + n - strlen(mark), mark, "%s", out + n - 40);
  cr_assert_eq(out[n - strlen(mark) - 1], '"', "the last kept field is whole");
  cr_assert_not_null(strstr(out, " e=\""));
  cr_assert_null(strstr(out, " g="));
  free(out);

  out = capture(emit_one_huge_field);
  nl = strchr(out, '\n');
  cr_assert_not_null(nl);
  *nl = '\0';
  cr_assert_not_null(strstr(out, "msg=\"one huge bare field\" truncated=true"), "%s", out);
  free(out);
}

/* A key=value part of 4 x LOG_LINE_MAX bytes: "k0=0 k1=1 ...". */
static char *many_fields(size_t *len)
{
  static char kv[4 * LOG_LINE_MAX];
  size_t n = 0;
  for (int i = 0; n + 32 < sizeof(kv); i++)
    n += (size_t)snprintf(kv + n, sizeof(kv) - n, "%sk%d=%d", n ? " " : "", i, i);
  *len = n;
  return kv;
}

static bool long_json; /* emit_long_kv: as JSON */

static void emit_long_kv(void)
{
  size_t n;
  const char *kv = many_fields(&n);
  log_set_json(long_json);
  log_set_level(LOG_DEBUG);
  cr_assert_eq(log_emit_long(LOG_DEBUG, "counters at exit", kv, n), 0);
  log_set_level(LOG_INFO);
  cr_assert_eq(log_emit_long(LOG_DEBUG, "not shown", kv, n), 0);
  log_set_json(false);
}

/* log_emit_long: one line however long, every field kept, in logfmt and
 * as one JSON object; nothing below the level. */
Test(log_emit, long_kv_is_one_whole_line)
{
  size_t n;
  const char *kv = many_fields(&n);
  long_json = false;
  char *out = capture(emit_long_kv);
  char *nl = strchr(out, '\n');
  cr_assert_not_null(nl);
  cr_assert_eq(nl[1], '\0', "one line");
  cr_assert_gt((size_t)(nl - out), 3 * (size_t)LOG_LINE_MAX);
  *nl = '\0';
  cr_assert_not_null(strstr(out, " level=debug msg=\"counters at exit\" k0=0 k1=1 "), "%.80s", out);
  cr_assert_str_eq(out + strlen(out) - n, kv);
  cr_assert_null(strstr(out, "truncated"));
  free(out);

  long_json = true;
  out = capture(emit_long_kv);
  nl = strchr(out, '\n');
  cr_assert_not_null(nl);
  cr_assert_eq(nl[1], '\0', "one line");
  cr_assert_eq(out[0], '{');
  cr_assert_eq(nl[-1], '}');
  cr_assert_not_null(
      strstr(out, "\"level\":\"debug\",\"msg\":\"counters at exit\",\"k0\":0,\"k1\":1,"));
  const char *last = strrchr(kv, ' ') + 1; /* "kN=N" */
  char want[48];
  snprintf(want, sizeof(want), "\"%.*s\":%s}", (int)(strchr(last, '=') - last), last,
           strchr(last, '=') + 1);
  cr_assert_not_null(strstr(out, want), "%s", nl - 40);
  free(out);
}
