/*
 * Unit tests for varint.c and the cursor reader (cursor.h) it decodes with.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "wtrelay/cursor.h"
#include "wtrelay/varint.h"

static void roundtrip(uint64_t v, size_t want_len)
{
  uint8_t buf[VARINT_MAXLEN + 1];
  uint64_t got = ~v;

  cr_assert_eq(varint_len(v), want_len, "len(%llu)", (unsigned long long)v);
  cr_assert_eq(varint_write(buf, sizeof(buf), v), (int)want_len);
  cr_assert_eq(varint_len_first(buf[0]), want_len);
  cr_assert_eq(varint_read(buf, want_len, &got), (int)want_len);
  cr_assert_eq(got, v, "value %llu", (unsigned long long)v);
  /* every shorter input is truncated */
  for (size_t n = 0; n < want_len; n++)
    cr_assert_eq(varint_read(buf, n, &got), -ENODATA);
  /* not enough room to write */
  cr_assert_eq(varint_write(buf, want_len - 1, v), -ENOSPC);
}

Test(varint, length_boundaries)
{
  roundtrip(0, 1);
  roundtrip(63, 1);
  roundtrip(64, 2);
  roundtrip(16383, 2);
  roundtrip(16384, 4);
  roundtrip((UINT64_C(1) << 30) - 1, 4);
  roundtrip(UINT64_C(1) << 30, 8);
  roundtrip((UINT64_C(1) << 62) - 1, 8);
  cr_assert_eq(VARINT_MAX, (UINT64_C(1) << 62) - 1);
}

Test(varint, too_large_is_invalid)
{
  uint8_t buf[8] = {0xaa};

  cr_assert_eq(varint_len(UINT64_C(1) << 62), 0);
  cr_assert_eq(varint_len(UINT64_MAX), 0);
  cr_assert_eq(varint_write(buf, sizeof(buf), UINT64_C(1) << 62), -ERANGE);
  cr_assert_eq(varint_write(buf, 0, UINT64_MAX), -ERANGE);
  cr_assert_eq(buf[0], 0xaa, "nothing written");
}

Test(varint, rfc9000_appendix_a)
{
  static const struct {
    uint8_t bytes[8];
    size_t len;
    uint64_t value;
  } ex[] = {
      {{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c}, 8, UINT64_C(151288809941952652)},
      {{0x9d, 0x7f, 0x3e, 0x7d}, 4, 494878333},
      {{0x7b, 0xbd}, 2, 15293},
      {{0x25}, 1, 37},
      {{0x40, 0x25}, 2, 37}, /* non-minimal encoding decodes too */
  };
  for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
    uint64_t v = 0;
    cr_assert_eq(varint_read(ex[i].bytes, ex[i].len, &v), (int)ex[i].len);
    cr_assert_eq(v, ex[i].value, "example %zu", i);
    cr_assert_eq(varint_read(ex[i].bytes, ex[i].len - 1, &v), -ENODATA);
  }
  /* the writer picks the shortest form, which is the RFC's bytes for the
   * first four examples */
  for (size_t i = 0; i < 4; i++) {
    uint8_t out[8];
    cr_assert_eq(varint_write(out, sizeof(out), ex[i].value), (int)ex[i].len);
    cr_assert_arr_eq(out, ex[i].bytes, ex[i].len);
  }
}

Test(varint, empty_and_null_input)
{
  uint64_t v;

  cr_assert_eq(varint_read(NULL, 0, &v), -ENODATA);
  cr_assert_eq(varint_read(NULL, 8, &v), -ENODATA);
}

Test(cursor, fixed_width_reads_and_truncation)
{
  static const uint8_t b[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
  struct cursor c;
  uint8_t u8;
  uint16_t u16;
  uint32_t u32;
  const uint8_t *p;

  cursor_init(&c, b, sizeof(b));
  cr_assert_eq(cursor_left(&c), 7);
  cr_assert_eq(cursor_u8(&c, &u8), 0);
  cr_assert_eq(u8, 0x01);
  cr_assert_eq(cursor_u16be(&c, &u16), 0);
  cr_assert_eq(u16, 0x0203);
  cr_assert_eq(cursor_u32be(&c, &u32), 0);
  cr_assert_eq(u32, 0x04050607);
  cr_assert_eq(cursor_left(&c), 0);
  cr_assert_eq(cursor_u8(&c, &u8), -ENODATA);

  cursor_init(&c, b, 3);
  cr_assert_eq(cursor_u32be(&c, &u32), -ENODATA);
  cr_assert_eq(c.off, 0, "failed read does not advance");
  cr_assert_eq(cursor_skip(&c, 4), -ENODATA);
  cr_assert_eq(cursor_bytes(&c, 2, &p), 0);
  cr_assert_eq(p, b, "no copy");
  cr_assert_eq(cursor_peek(&c, 1, &p), 0);
  cr_assert_eq(p, b + 2);
  cr_assert_eq(c.off, 2, "peek does not advance");
  cr_assert_eq(cursor_u16be(&c, &u16), -ENODATA);
  cr_assert_eq(cursor_skip(&c, 1), 0);
  cr_assert_eq(cursor_left(&c), 0);
}

Test(cursor, varint_sequence_and_truncation)
{
  static const uint8_t b[] = {0x25, 0x7b, 0xbd, 0x9d, 0x7f, 0x3e};
  struct cursor c;
  uint64_t v;

  cursor_init(&c, b, sizeof(b));
  cr_assert_eq(cursor_varint(&c, &v), 0);
  cr_assert_eq(v, 37);
  cr_assert_eq(cursor_varint(&c, &v), 0);
  cr_assert_eq(v, 15293);
  cr_assert_eq(cursor_varint(&c, &v), -ENODATA, "4-byte varint with 3 bytes left");
  cr_assert_eq(c.off, 3);
}
