/*
 * cursor: bounds-checked reader over a borrowed byte buffer.
 *
 * Every parser of peer bytes (HTTP/3 frames, capsules, SETTINGS, bavy
 * messages, packets) reads through a cursor and never does pointer
 * arithmetic on an untrusted length itself. A read either succeeds whole and
 * advances the cursor, or fails with -ENODATA ("the input is too short":
 * truncated, or a streaming parser needs more data) and leaves the cursor
 * where it was, so the caller can retry from the same offset. Nothing is
 * copied or allocated: cursor_bytes() and cursor_peek() return pointers into
 * the caller's buffer, valid as long as that buffer is.
 *
 * Header-only: every function is a small static inline.
 */
#ifndef WTRELAY_CURSOR_H
#define WTRELAY_CURSOR_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

struct cursor {
  const uint8_t *p; /* borrowed; never NULL */
  size_t len;
  size_t off; /* invariant: off <= len */
};

/* p may be NULL, then the cursor is empty whatever len says (and points at
 * a static empty string, so that no NULL pointer ever comes out). */
static inline void cursor_init(struct cursor *c, const uint8_t *p, size_t len)
{
  c->p = p ? p : (const uint8_t *)"";
  c->len = p ? len : 0;
  c->off = 0;
}

static inline size_t cursor_left(const struct cursor *c)
{
  return c->len - c->off;
}

/* Pointer to n bytes at the current position without advancing. */
static inline int cursor_peek(const struct cursor *c, size_t n, const uint8_t **out)
{
  if (cursor_left(c) < n)
    return -ENODATA;
  *out = c->p + c->off;
  return 0;
}

static inline int cursor_u8(struct cursor *c, uint8_t *v)
{
  if (cursor_left(c) < 1)
    return -ENODATA;
  *v = c->p[c->off++];
  return 0;
}

static inline int cursor_u16be(struct cursor *c, uint16_t *v)
{
  if (cursor_left(c) < 2)
    return -ENODATA;
  const uint8_t *b = c->p + c->off;
  *v = (uint16_t)((uint16_t)b[0] << 8 | b[1]);
  c->off += 2;
  return 0;
}

static inline int cursor_u32be(struct cursor *c, uint32_t *v)
{
  if (cursor_left(c) < 4)
    return -ENODATA;
  const uint8_t *b = c->p + c->off;
  *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
  c->off += 4;
  return 0;
}

/* *out points at the n bytes inside the buffer (no copy); advances by n. */
static inline int cursor_bytes(struct cursor *c, size_t n, const uint8_t **out)
{
  if (cursor_left(c) < n)
    return -ENODATA;
  *out = c->p + c->off;
  c->off += n;
  return 0;
}

static inline int cursor_skip(struct cursor *c, size_t n)
{
  if (cursor_left(c) < n)
    return -ENODATA;
  c->off += n;
  return 0;
}

/* QUIC variable-length integer (RFC 9000 section 16): the two top bits of
 * the first byte give the length (1, 2, 4 or 8 bytes). Every bit pattern is
 * a valid encoding, non-minimal ones included, so the only failure is a
 * short input. The result is always < 2^62. */
static inline int cursor_varint(struct cursor *c, uint64_t *v)
{
  if (cursor_left(c) < 1)
    return -ENODATA;
  const uint8_t *b = c->p + c->off;
  size_t n = (size_t)1 << (b[0] >> 6);
  if (cursor_left(c) < n)
    return -ENODATA;
  uint64_t x = b[0] & 0x3f;
  for (size_t i = 1; i < n; i++)
    x = x << 8 | b[i];
  *v = x;
  c->off += n;
  return 0;
}

#endif
