/*
 * capsule: HTTP capsules (RFC 9297 section 3) on a WebTransport CONNECT
 * stream.
 *
 * After the CONNECT request and its 200 response, the stream carries DATA
 * frames whose payloads, concatenated, are a sequence of capsules (type
 * varint, length varint, value). The stream layer passes each DATA payload
 * slice (h3_frame_reader's H3_FRAME_EV_DATA) to a struct capsule_reader,
 * which reports the capsules that matter to a WebTransport session:
 *
 *   CLOSE_WEBTRANSPORT_SESSION (0x2843): u32 code + UTF-8 reason (<= 1024
 *     bytes; the value must be 4..1028 bytes, else malformed). The reason
 *     bytes are passed on as they are: not checked for UTF-8.
 *   DRAIN_WEBTRANSPORT_SESSION (0x78ae): reported; a non-empty value is
 *     skipped, not refused.
 *   DATAGRAM (0x00): reported with its payload when it fits the reader's
 *     buffer (CAPSULE_BUF_MAX), else skipped and counted in
 *     datagrams_dropped. Browsers send datagrams as QUIC DATAGRAM frames,
 *     not as capsules; this is only for completeness.
 *
 * Any other type (GREASE 0x29*N+0x17, unknown) is skipped without being
 * buffered, however long. Pure code, no allocation, no logging: the reader
 * embeds its bounded buffer.
 */
#ifndef WTRELAY_CAPSULE_H
#define WTRELAY_CAPSULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wtrelay/memcount.h"

#define CAPSULE_DATAGRAM 0x00
#define CAPSULE_CLOSE_WEBTRANSPORT_SESSION 0x2843
#define CAPSULE_DRAIN_WEBTRANSPORT_SESSION 0x78ae

#define CAPSULE_GREASE(n) (UINT64_C(0x29) * (uint64_t)(n) + 0x17)
static inline bool capsule_is_grease(uint64_t t)
{
  return t >= 0x17 && (t - 0x17) % 0x29 == 0;
}

#define CAPSULE_CLOSE_REASON_MAX 1024
/* Largest value the reader buffers: a close capsule (4 + 1024) or a DATAGRAM
 * payload up to this size. */
#define CAPSULE_BUF_MAX 2048
#define CAPSULE_HEADER_MAX 16

enum capsule_ev_kind {
  CAPSULE_EV_CLOSE, /* code, data/len = reason */
  CAPSULE_EV_DRAIN,
  CAPSULE_EV_DATAGRAM, /* data/len = HTTP datagram payload */
};

struct capsule_event {
  enum capsule_ev_kind kind;
  uint32_t code;       /* CLOSE: application error code */
  const uint8_t *data; /* borrowed, valid only during the callback; never
                        * NULL, even when len is 0 */
  size_t len;
};

/* Returns 0 to go on, or a negative errno that stops the reader for good and
 * is returned by capsule_reader_feed(). Must not call back into the reader. */
typedef int (*capsule_cb)(void *user, const struct capsule_event *ev);

struct capsule_reader {
  capsule_cb cb;
  void *user;                  /* borrowed */
  uint64_t type, length, done; /* capsule being read */
  uint8_t hdr[CAPSULE_HEADER_MAX];
  uint8_t hdr_len;
  uint8_t state;
  int err;             /* sticky once failed */
  uint64_t error_code; /* H3 code for errors found by the reader, else 0 */
  uint64_t capsules;   /* counters */
  uint64_t skipped;
  uint64_t datagrams_dropped;
  /* a capsule value split across slices, gathered (a whole one is read
   * in place): owned, allocated for it and freed once reported */
  uint8_t *buf;
  struct memcount *mc; /* where buf is counted; NULL: plain malloc */
};

/* Prepares r for a new CONNECT stream (release what an earlier use may
 * hold first). mc (borrowed, may be NULL) counts r's buffer. */
void capsule_reader_init(struct capsule_reader *r, capsule_cb cb, void *user);
void capsule_reader_init_counted(struct capsule_reader *r, capsule_cb cb, void *user,
                                 struct memcount *mc);
/* Frees the buffer of a capsule cut short; harmless twice. */
void capsule_reader_release(struct capsule_reader *r);

/* Consumes all of data (a DATA payload slice; any slicing gives the same
 * events). Returns 0, the callback's negative value, or -EINVAL for a
 * malformed close capsule (value shorter than 4 or longer than 1028 bytes)
 * with error_code H3_MESSAGE_ERROR. After an error every call returns it. */
int capsule_reader_feed(struct capsule_reader *r, const uint8_t *data, size_t len);

/* The CONNECT stream ended (FIN). Returns 0 at a capsule boundary, else
 * -EINVAL with error_code H3_MESSAGE_ERROR (truncated capsule). */
int capsule_reader_fin(struct capsule_reader *r);

/* Parses a CLOSE_WEBTRANSPORT_SESSION value. *reason points into value.
 * Returns 0 or -EINVAL (malformed, H3_MESSAGE_ERROR). */
int capsule_close_parse(const uint8_t *value, size_t len, uint32_t *code, const uint8_t **reason,
                        size_t *reason_len);

/* Writes a CLOSE_WEBTRANSPORT_SESSION capsule (type, length, code, reason):
 * the bytes inside a DATA frame, not the DATA frame header. reason is a
 * NUL-terminated UTF-8 string, NULL for none. Returns bytes written,
 * -EINVAL when the reason is over 1024 bytes, -ENOSPC. */
int capsule_close_encode(uint8_t *buf, size_t cap, uint32_t code, const char *reason);

/* Writes a DRAIN_WEBTRANSPORT_SESSION capsule. Returns bytes or -ENOSPC. */
int capsule_drain_encode(uint8_t *buf, size_t cap);

#endif
