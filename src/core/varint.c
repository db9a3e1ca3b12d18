/*
 * varint: QUIC variable-length integers. See include/wtrelay/varint.h.
 * Decoding lives in cursor_varint() so that there is exactly one decoder.
 */
#include "wtrelay/varint.h"

#include <errno.h>

#include "wtrelay/cursor.h"

size_t varint_len(uint64_t v)
{
  if (v < (UINT64_C(1) << 6))
    return 1;
  if (v < (UINT64_C(1) << 14))
    return 2;
  if (v < (UINT64_C(1) << 30))
    return 4;
  if (v <= VARINT_MAX)
    return 8;
  return 0;
}

int varint_write(uint8_t *buf, size_t cap, uint64_t v)
{
  static const uint8_t prefix[9] = {[1] = 0x00, [2] = 0x40, [4] = 0x80, [8] = 0xc0};
  size_t n = varint_len(v);

  if (n == 0)
    return -ERANGE;
  if (cap < n)
    return -ENOSPC;
  for (size_t i = n; i-- > 0; v >>= 8)
    buf[i] = (uint8_t)v;
  buf[0] |= prefix[n];
  return (int)n;
}

int varint_read(const uint8_t *buf, size_t len, uint64_t *v)
{
  struct cursor c;
  int rv;

  cursor_init(&c, buf, len);
  rv = cursor_varint(&c, v);
  if (rv < 0)
    return rv;
  return (int)c.off;
}
