/*
 * Unit tests for capsule.c: the streaming capsule reader and encoders.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "wtrelay/capsule.h"
#include "wtrelay/h3_frame.h"
#include "wtrelay/varint.h"

struct seen {
  int closes, drains, datagrams;
  uint32_t code;
  char reason[CAPSULE_CLOSE_REASON_MAX + 1];
  size_t reason_len;
  uint8_t dgram[CAPSULE_BUF_MAX];
  size_t dgram_len;
  int fail;
};

static int on_capsule(void *user, const struct capsule_event *ev)
{
  struct seen *s = user;

  switch (ev->kind) {
  case CAPSULE_EV_CLOSE:
    s->closes++;
    s->code = ev->code;
    cr_assert_leq(ev->len, CAPSULE_CLOSE_REASON_MAX);
    memcpy(s->reason, ev->data, ev->len);
    s->reason[ev->len] = '\0';
    s->reason_len = ev->len;
    break;
  case CAPSULE_EV_DRAIN:
    s->drains++;
    break;
  case CAPSULE_EV_DATAGRAM:
    s->datagrams++;
    memcpy(s->dgram, ev->data, ev->len);
    s->dgram_len = ev->len;
    break;
  }
  return s->fail ? -ECANCELED : 0;
}

static size_t put_capsule(uint8_t *out, uint64_t type, const uint8_t *v, size_t len)
{
  int a = varint_write(out, 8, type);
  int b = varint_write(out + a, 8, len);

  cr_assert_gt(a, 0);
  cr_assert_gt(b, 0);
  if (len)
    memcpy(out + a + b, v, len);
  return (size_t)(a + b) + len;
}

static int feed_steps(struct capsule_reader *r, struct seen *s, const uint8_t *b, size_t len,
                      size_t step)
{
  int rv = 0;

  memset(s, 0, sizeof(*s));
  capsule_reader_init(r, on_capsule, s);
  if (!step)
    step = len ? len : 1;
  for (size_t off = 0; off < len && rv == 0; off += step)
    rv = capsule_reader_feed(r, b + off, len - off < step ? len - off : step);
  return rv ? rv : capsule_reader_fin(r);
}

static struct capsule_reader rd;
static struct seen seen;

Test(capsule, close_roundtrip)
{
  uint8_t b[64];
  int n = capsule_close_encode(b, sizeof(b), 0x1234abcd, "bye \xc3\xa9");

  /* 0x2843 is a 2-byte varint, length 4+6 a 1-byte one */
  cr_assert_eq(n, 2 + 1 + 4 + 6);
  cr_assert_eq(b[0], 0x68);
  cr_assert_eq(b[1], 0x43);
  cr_assert_eq(b[2], 10);
  cr_assert_eq(feed_steps(&rd, &seen, b, (size_t)n, 0), 0);
  cr_assert_eq(seen.closes, 1);
  cr_assert_eq(seen.code, 0x1234abcd);
  cr_assert_str_eq(seen.reason, "bye \xc3\xa9");

  n = capsule_close_encode(b, sizeof(b), 0, NULL);
  cr_assert_eq(n, 2 + 1 + 4);
  cr_assert_eq(feed_steps(&rd, &seen, b, (size_t)n, 1), 0);
  cr_assert_eq(seen.closes, 1);
  cr_assert_eq(seen.code, 0);
  cr_assert_eq(seen.reason_len, 0);
}

Test(capsule, close_split_across_slices)
{
  static uint8_t b[2048];
  static char reason[CAPSULE_CLOSE_REASON_MAX + 1];
  int n;

  memset(reason, 'r', CAPSULE_CLOSE_REASON_MAX);
  reason[CAPSULE_CLOSE_REASON_MAX] = '\0';
  n = capsule_close_encode(b, sizeof(b), 7, reason);
  cr_assert_eq(n, 2 + 2 + 4 + CAPSULE_CLOSE_REASON_MAX);
  static const size_t steps[] = {1, 2, 3, 5, 64, 1000};
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    cr_assert_eq(feed_steps(&rd, &seen, b, (size_t)n, steps[i]), 0);
    cr_assert_eq(seen.closes, 1);
    cr_assert_eq(seen.code, 7);
    cr_assert_eq(seen.reason_len, CAPSULE_CLOSE_REASON_MAX);
    cr_assert_str_eq(seen.reason, reason);
  }
}

Test(capsule, close_reason_too_long)
{
  static uint8_t b[2048];
  static char reason[CAPSULE_CLOSE_REASON_MAX + 2];

  memset(reason, 'r', CAPSULE_CLOSE_REASON_MAX + 1);
  cr_assert_eq(capsule_close_encode(b, sizeof(b), 7, reason), -EINVAL);

  /* on the wire: value of 4 + 1025 bytes is refused at the header */
  uint8_t hdr[8];
  size_t hl = 0;
  hl += (size_t)varint_write(hdr, 8, CAPSULE_CLOSE_WEBTRANSPORT_SESSION);
  hl += (size_t)varint_write(hdr + hl, 8, 4 + CAPSULE_CLOSE_REASON_MAX + 1);
  capsule_reader_init(&rd, on_capsule, &seen);
  cr_assert_eq(capsule_reader_feed(&rd, hdr, hl), -EINVAL);
  cr_assert_eq(rd.error_code, H3_MESSAGE_ERROR);
}

Test(capsule, truncated_close_is_malformed)
{
  /* value shorter than the 32-bit code */
  static const uint8_t short_value[] = {0x68, 0x43, 0x02, 0x00, 0x01};
  cr_assert_eq(feed_steps(&rd, &seen, short_value, sizeof(short_value), 0), -EINVAL);
  cr_assert_eq(rd.error_code, H3_MESSAGE_ERROR);
  cr_assert_eq(seen.closes, 0);
  cr_assert_eq(capsule_reader_feed(&rd, short_value, 1), -EINVAL, "sticky");

  /* stream ends inside the capsule */
  uint8_t b[64];
  int n = capsule_close_encode(b, sizeof(b), 1, "abc");
  for (int cut = 1; cut < n; cut++) {
    cr_assert_eq(feed_steps(&rd, &seen, b, (size_t)cut, 1), -EINVAL, "cut at %d", cut);
    cr_assert_eq(rd.error_code, H3_MESSAGE_ERROR);
    cr_assert_eq(seen.closes, 0);
  }

  /* close_parse directly */
  uint32_t code;
  const uint8_t *r;
  size_t rl;
  cr_assert_eq(capsule_close_parse(b + 3, 3, &code, &r, &rl), -EINVAL);
  cr_assert_eq(capsule_close_parse(b + 3, 7, &code, &r, &rl), 0);
  cr_assert_eq(code, 1);
  cr_assert_eq(rl, 3);
  cr_assert_arr_eq(r, "abc", 3);
}

Test(capsule, grease_capsule_skipped_unbuffered)
{
  static uint8_t b[8192];
  static uint8_t junk[5000];
  size_t off = 0;
  int n;

  memset(junk, 0x5a, sizeof(junk));
  off += put_capsule(b + off, CAPSULE_GREASE(0x1234), junk, sizeof(junk));
  off += put_capsule(b + off, 0x3fffffff, junk, 3000); /* unknown */
  off += put_capsule(b + off, CAPSULE_GREASE(1), NULL, 0);
  n = capsule_close_encode(b + off, sizeof(b) - off, 0x99, "done");
  off += (size_t)n;
  for (size_t step = 0; step < 8; step += 7) {
    cr_assert_eq(feed_steps(&rd, &seen, b, off, step), 0);
    cr_assert_eq(rd.skipped, 3);
    cr_assert_eq(rd.capsules, 4);
    cr_assert_eq(seen.closes, 1);
    cr_assert_eq(seen.code, 0x99);
    cr_assert_str_eq(seen.reason, "done");
  }
  cr_assert(capsule_is_grease(CAPSULE_GREASE(0x1234)));
  cr_assert(capsule_is_grease(0x17));
  cr_assert_not(capsule_is_grease(CAPSULE_CLOSE_WEBTRANSPORT_SESSION));
}

Test(capsule, huge_unknown_capsule_length)
{
  uint8_t hdr[16];
  size_t hl = 0;

  hl += (size_t)varint_write(hdr, 8, CAPSULE_GREASE(9));
  hl += (size_t)varint_write(hdr + hl, 8, VARINT_MAX);
  capsule_reader_init(&rd, on_capsule, &seen);
  cr_assert_eq(capsule_reader_feed(&rd, hdr, hl), 0);
  cr_assert_eq(capsule_reader_feed(&rd, hdr, sizeof(hdr)), 0);
  cr_assert_eq(capsule_reader_fin(&rd), -EINVAL, "ended inside it");
}

Test(capsule, drain_and_datagram)
{
  static uint8_t b[8192];
  static uint8_t big[CAPSULE_BUF_MAX + 1];
  size_t off = 0;
  int n = capsule_drain_encode(b, sizeof(b));

  cr_assert_eq(n, 4 + 1, "0x78ae is a 4-byte varint");
  off += (size_t)n;
  off += put_capsule(b + off, CAPSULE_DATAGRAM,
                     (const uint8_t *)"\x01"
                                      "frame",
                     6);
  off += put_capsule(b + off, CAPSULE_DATAGRAM, big, sizeof(big)); /* too big: dropped */
  off += put_capsule(b + off, CAPSULE_DRAIN_WEBTRANSPORT_SESSION, (const uint8_t *)"xx", 2);
  cr_assert_eq(feed_steps(&rd, &seen, b, off, 1), 0);
  cr_assert_eq(seen.drains, 2);
  cr_assert_eq(seen.datagrams, 1);
  cr_assert_eq(seen.dgram_len, 6);
  cr_assert_arr_eq(seen.dgram,
                   "\x01"
                   "frame",
                   6);
  cr_assert_eq(rd.datagrams_dropped, 1);
  cr_assert_eq(capsule_drain_encode(b, 4), -ENOSPC);
}

Test(capsule, callback_error_propagates)
{
  uint8_t b[32];
  int n = capsule_close_encode(b, sizeof(b), 5, "x");

  memset(&seen, 0, sizeof(seen));
  seen.fail = 1;
  capsule_reader_init(&rd, on_capsule, &seen);
  cr_assert_eq(capsule_reader_feed(&rd, b, (size_t)n), -ECANCELED);
  cr_assert_eq(rd.error_code, 0);
  cr_assert_eq(capsule_reader_fin(&rd), -ECANCELED);
}

Test(capsule, close_encode_no_space)
{
  uint8_t b[32];
  int n = capsule_close_encode(b, sizeof(b), 5, "reason");

  cr_assert_gt(n, 0);
  for (int cap = 0; cap < n; cap++)
    cr_assert_eq(capsule_close_encode(b, (size_t)cap, 5, "reason"), -ENOSPC, "cap %d", cap);
}

/* A capsule whole in one slice is read in place; a split one is gathered
 * in a buffer allocated for it and freed once reported (or when the reader
 * fails or is released), so an idle CONNECT stream holds nothing. */
Test(capsule, buffer_only_while_split)
{
  static uint8_t b[4096];
  struct memcount mc = {0};
  size_t off = 0;
  int n = capsule_close_encode(b, sizeof(b), 7, "gone");
  cr_assert_gt(n, 0);
  off += (size_t)n;
  off += put_capsule(b + off, CAPSULE_DATAGRAM,
                     (const uint8_t *)"\x01"
                                      "frame",
                     6);

  memset(&seen, 0, sizeof(seen));
  capsule_reader_init_counted(&rd, on_capsule, &seen, &mc);
  cr_assert_eq(capsule_reader_feed(&rd, b, off), 0);
  cr_assert_eq(seen.closes, 1);
  cr_assert_eq(seen.datagrams, 1);
  cr_assert_eq(mc.peak, 0, "whole capsules are read in place");

  memset(&seen, 0, sizeof(seen));
  capsule_reader_init_counted(&rd, on_capsule, &seen, &mc);
  for (size_t i = 0; i < off; i++)
    cr_assert_eq(capsule_reader_feed(&rd, b + i, 1), 0);
  cr_assert_eq(capsule_reader_fin(&rd), 0);
  cr_assert_eq(seen.closes, 1);
  cr_assert_str_eq(seen.reason, "gone");
  cr_assert_eq(seen.dgram_len, 6);
  cr_assert_arr_eq(seen.dgram,
                   "\x01"
                   "frame",
                   6);
  cr_assert_gt(mc.peak, 0);
  cr_assert_eq(mc.bytes, 0, "given back once reported");
  cr_assert_null(rd.buf);

  /* cut short: held until released, or freed by fin */
  capsule_reader_init_counted(&rd, on_capsule, &seen, &mc);
  cr_assert_eq(capsule_reader_feed(&rd, b, 5), 0);
  cr_assert_eq(mc.blocks, 1);
  capsule_reader_release(&rd);
  capsule_reader_release(&rd);
  cr_assert_eq(mc.blocks, 0);
  capsule_reader_init_counted(&rd, on_capsule, &seen, &mc);
  cr_assert_eq(capsule_reader_feed(&rd, b, 5), 0);
  cr_assert_eq(capsule_reader_fin(&rd), -EINVAL);
  cr_assert_eq(mc.blocks, 0);
  cr_assert_eq(mc.bytes, 0);
}
