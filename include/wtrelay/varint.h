/*
 * varint: QUIC variable-length integers (RFC 9000 section 16).
 *
 * Used by every HTTP/3 codec (frame and stream types, lengths, SETTINGS,
 * capsules, the quarter stream id in front of each datagram). Values are
 * 62-bit; the writer always picks the shortest encoding, the reader accepts
 * any encoding. Pure functions over caller buffers: no state, no allocation.
 * Parsers inside a larger structure use cursor_varint() (cursor.h), which
 * shares the decoding rule with varint_read().
 */
#ifndef WTRELAY_VARINT_H
#define WTRELAY_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define VARINT_MAX ((UINT64_C(1) << 62) - 1)
#define VARINT_MAXLEN 8

/* Encoded length of v: 1, 2, 4 or 8; 0 when v > VARINT_MAX (not
 * representable). */
size_t varint_len(uint64_t v);

/* Length of an encoding whose first byte is `first` (1, 2, 4 or 8). */
static inline size_t varint_len_first(uint8_t first)
{
  return (size_t)1 << (first >> 6);
}

/* Writes the shortest encoding of v at buf. Returns the bytes written,
 * -ERANGE when v > VARINT_MAX, -ENOSPC when cap is too small (nothing is
 * written in either case). */
int varint_write(uint8_t *buf, size_t cap, uint64_t v);

/* Reads one varint from the start of buf. Returns the bytes consumed (1, 2,
 * 4 or 8), or -ENODATA when len is shorter than the encoding (read again
 * with more data). */
int varint_read(const uint8_t *buf, size_t len, uint64_t *v);

#endif
