/*
 * h3_frame: HTTP/3 frame codec (RFC 9114 section 7) and SETTINGS, with the
 * WebTransport (draft-02) and HTTP Datagram (RFC 9297) extensions that
 * browsers need (docs: protocol.md section 2).
 *
 * Pure functions over byte buffers: this module never sees a QUIC stream,
 * ngtcp2 or a socket. The stream layer feeds what ngtcp2 hands it, in
 * whatever pieces, to one struct h3_frame_reader per stream, and decides
 * what a frame means on that stream (DATA on the control stream is
 * FRAME_UNEXPECTED, the first control frame must be SETTINGS, ...). The
 * reader only enforces what holds on every stream: the frame grammar, the
 * HTTP/2-only frame types, the size of the frames it has to buffer.
 *
 * Errors are negative errno values. Where the peer broke the protocol, the
 * HTTP/3 error code to close the connection (or reset the stream) with is
 * handed back beside it (struct field or out-parameter), so the caller does
 * not have to guess it from the errno.
 *
 * Nothing here logs: every failure is caused by peer bytes, and the caller
 * counts it and logs it through its rate limiter.
 */
#ifndef WTRELAY_H3_FRAME_H
#define WTRELAY_H3_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wtrelay/memcount.h"

/* Frame types (RFC 9114 section 7.2; 0x41 from WebTransport draft-02). */
#define H3_FRAME_DATA 0x00
#define H3_FRAME_HEADERS 0x01
#define H3_FRAME_CANCEL_PUSH 0x03
#define H3_FRAME_SETTINGS 0x04
#define H3_FRAME_PUSH_PROMISE 0x05
#define H3_FRAME_GOAWAY 0x07
#define H3_FRAME_MAX_PUSH_ID 0x0d
/* Not a frame: on a client bidi stream it is followed by a session id (not
 * a length) and then raw WebTransport stream data until FIN. */
#define H3_FRAME_WEBTRANSPORT_STREAM 0x41

/* Unidirectional stream types (first varint on a uni stream). 0x54 is
 * followed by the session id varint, then raw data. */
#define H3_STREAM_CONTROL 0x00
#define H3_STREAM_PUSH 0x01
#define H3_STREAM_QPACK_ENCODER 0x02
#define H3_STREAM_QPACK_DECODER 0x03
#define H3_STREAM_WEBTRANSPORT_UNI 0x54

/* Setting identifiers. */
#define H3_SETTINGS_QPACK_MAX_TABLE_CAPACITY 0x01
#define H3_SETTINGS_MAX_FIELD_SECTION_SIZE 0x06
#define H3_SETTINGS_QPACK_BLOCKED_STREAMS 0x07
#define H3_SETTINGS_ENABLE_CONNECT_PROTOCOL 0x08
#define H3_SETTINGS_H3_DATAGRAM 0x33
#define H3_SETTINGS_H3_DATAGRAM_DRAFT04 0xffd277
#define H3_SETTINGS_ENABLE_WEBTRANSPORT UINT64_C(0x2b603742)
#define H3_SETTINGS_WEBTRANSPORT_MAX_SESSIONS UINT64_C(0xc671706a)

/* Reserved ("GREASE") frame types, setting ids and stream types: 0x1f*N +
 * 0x21 (RFC 9114 section 7.2.8). Capsule GREASE is in capsule.h. */
#define H3_GREASE(n) (UINT64_C(0x1f) * (uint64_t)(n) + 0x21)
static inline bool h3_is_grease(uint64_t v)
{
  return v >= 0x21 && (v - 0x21) % 0x1f == 0;
}

/* HTTP/3 error codes (RFC 9114 section 8.1, RFC 9204, WebTransport). */
#define H3_NO_ERROR 0x100
#define H3_GENERAL_PROTOCOL_ERROR 0x101
#define H3_INTERNAL_ERROR 0x102
#define H3_STREAM_CREATION_ERROR 0x103
#define H3_CLOSED_CRITICAL_STREAM 0x104
#define H3_FRAME_UNEXPECTED 0x105
#define H3_FRAME_ERROR 0x106
#define H3_EXCESSIVE_LOAD 0x107
#define H3_ID_ERROR 0x108
#define H3_SETTINGS_ERROR 0x109
#define H3_MISSING_SETTINGS 0x10a
#define H3_REQUEST_REJECTED 0x10b
#define H3_REQUEST_CANCELLED 0x10c
#define H3_REQUEST_INCOMPLETE 0x10d
#define H3_MESSAGE_ERROR 0x10e
#define H3_CONNECT_ERROR 0x10f
#define H3_VERSION_FALLBACK 0x110
#define H3_QPACK_DECOMPRESSION_FAILED 0x200
#define H3_QPACK_ENCODER_STREAM_ERROR 0x201
#define H3_QPACK_DECODER_STREAM_ERROR 0x202
#define H3_WEBTRANSPORT_BUFFERED_STREAM_REJECTED UINT64_C(0x3994bd84)

/* Largest frame header: two 8-byte varints. */
#define H3_FRAME_HEADER_MAX 16
/* Suggested bound for buffered frames (HEADERS, SETTINGS, ...). */
#define H3_FRAME_BUF_DEFAULT 16384
/* At most this many pairs in one SETTINGS frame (more: H3_EXCESSIVE_LOAD);
 * browsers send fewer than ten. */
#define H3_SETTINGS_MAX_PAIRS 64

/* --- frame headers ------------------------------------------------------ */

/* Parses type and length at the start of buf. For H3_FRAME_WEBTRANSPORT_STREAM
 * *length receives the session id. Returns the header's size, -ENODATA when
 * buf ends inside the header (call again with more), -EINVAL for the frame
 * types reserved from HTTP/2 (0x02, 0x06, 0x08, 0x09), whose receipt is a
 * connection error H3_FRAME_UNEXPECTED. */
int h3_frame_header_parse(const uint8_t *buf, size_t len, uint64_t *type, uint64_t *length);

/* Writes a frame header (e.g. HEADERS or DATA in front of a payload the
 * caller writes next). Returns bytes written, -ENOSPC, -ERANGE. */
int h3_frame_header_write(uint8_t *buf, size_t cap, uint64_t type, uint64_t length);

/* Full GOAWAY frame carrying id (a stream id from the server, a push id from
 * the client). Returns bytes written, -ENOSPC, -ERANGE. */
int h3_goaway_encode(uint8_t *buf, size_t cap, uint64_t id);

/* Payload of GOAWAY, MAX_PUSH_ID or CANCEL_PUSH: exactly one varint.
 * Returns 0, or -EINVAL (connection error H3_FRAME_ERROR). */
int h3_frame_id_parse(const uint8_t *payload, size_t len, uint64_t *id);

/* --- streaming frame reader --------------------------------------------- */

enum h3_frame_ev_kind {
  /* A complete buffered frame (HEADERS, SETTINGS, GOAWAY, MAX_PUSH_ID,
   * CANCEL_PUSH, PUSH_PROMISE): data/len is the whole payload. */
  H3_FRAME_EV_FRAME,
  /* A slice of a DATA frame's payload as it arrived (not buffered). offset
   * is the slice's position in the payload, end marks the last slice. A
   * zero-length DATA frame gives one event with len 0 and end set. */
  H3_FRAME_EV_DATA,
  /* Header of a frame that is skipped unread (unknown or GREASE type). Lets
   * the caller enforce ordering (e.g. SETTINGS first); payload not given. */
  H3_FRAME_EV_SKIP,
  /* WEBTRANSPORT_STREAM signal: session_id set. Every later byte on the
   * stream comes as H3_FRAME_EV_RAW. Whether the signal is allowed here
   * (first thing on a client bidi stream: r->frames == 1 during the
   * callback) is the caller's decision. */
  H3_FRAME_EV_WT_STREAM,
  /* Raw stream bytes after H3_FRAME_EV_WT_STREAM. */
  H3_FRAME_EV_RAW,
};

struct h3_frame_event {
  enum h3_frame_ev_kind kind;
  uint64_t type;       /* frame type (FRAME, DATA, SKIP) */
  uint64_t length;     /* the frame's whole payload length (FRAME, DATA, SKIP) */
  uint64_t offset;     /* DATA: offset of this slice in the payload */
  uint64_t session_id; /* WT_STREAM */
  const uint8_t *data; /* borrowed, valid only during the callback; never
                        * NULL, even when len is 0 */
  size_t len;
  bool end; /* DATA: this slice completes the frame */
};

/* Returns 0 to go on, or a negative errno that stops the reader for good and
 * is returned by h3_frame_reader_feed(). Must not call back into the same
 * reader. */
typedef int (*h3_frame_cb)(void *user, const struct h3_frame_event *ev);

struct h3_frame_reader {
  h3_frame_cb cb;
  void *user;
  uint8_t *buf; /* borrowed from the caller, cap bytes: bound for buffered frames;
                   heap mode (mc set): owned, only while a split frame is gathered */
  size_t cap;
  struct memcount *mc;         /* heap mode: where the gathering buffer is counted */
  uint64_t type, length, done; /* frame being read; done = payload bytes seen */
  uint8_t hdr[H3_FRAME_HEADER_MAX];
  uint8_t hdr_len;
  uint8_t state;
  int err;             /* sticky once failed */
  uint64_t error_code; /* H3 code for errors found by the reader, else 0 */
  uint64_t frames;     /* counters: frame headers read, frames skipped */
  uint64_t skipped;
};

/* Prepares r for a new stream. buf/cap is where buffered frames are
 * gathered and bounds their payload (H3_FRAME_BUF_DEFAULT suggested; 0 for
 * a stream that may only carry DATA or WebTransport data). buf and user are
 * borrowed for r's lifetime. No fini: r owns nothing. */
void h3_frame_reader_init(struct h3_frame_reader *r, uint8_t *buf, size_t cap, h3_frame_cb cb,
                          void *user);
/* The same with no buffer held: a frame to buffer that arrives whole in
 * one slice is given to cb from the slice; one split across slices is
 * gathered in a buffer of its length (at most cap) allocated through mc
 * (borrowed) and freed once cb has seen it. An idle stream holds nothing.
 * -ENOMEM (H3_EXCESSIVE_LOAD) when that allocation fails. */
void h3_frame_reader_init_heap(struct h3_frame_reader *r, size_t cap, struct memcount *mc,
                               h3_frame_cb cb, void *user);
/* Frees a heap-mode reader's buffer (a frame was cut short); no-op
 * otherwise, and harmless twice. */
void h3_frame_reader_release(struct h3_frame_reader *r);

/* Consumes all of data (any slicing of the stream gives the same events)
 * and calls cb for each event. Returns 0, the callback's negative value, or
 * an error of the reader's own with r->error_code set:
 *   -EINVAL    an HTTP/2-only frame type (H3_FRAME_UNEXPECTED), or a
 *              GOAWAY/MAX_PUSH_ID/CANCEL_PUSH whose length cannot hold one
 *              varint (H3_FRAME_ERROR)
 *   -EMSGSIZE  a frame to buffer is longer than cap (H3_EXCESSIVE_LOAD)
 * After an error every call returns the same error. */
int h3_frame_reader_feed(struct h3_frame_reader *r, const uint8_t *data, size_t len);

/* The stream ended (FIN). Returns 0 when it ended between frames or inside
 * WebTransport raw data, else -EINVAL with error_code H3_FRAME_ERROR
 * (RFC 9114 section 7.1). */
int h3_frame_reader_fin(struct h3_frame_reader *r);

/* --- SETTINGS ----------------------------------------------------------- */

struct h3_setting {
  uint64_t id;
  uint64_t value;
};

/* What the peer's SETTINGS mean for us. Absent settings get their RFC
 * defaults (0 / false; max_field_section_size UINT64_MAX = unlimited). */
struct h3_peer_settings {
  bool enable_webtransport;           /* 0x2b603742 == 1 */
  uint64_t webtransport;              /* raw value of 0x2b603742 */
  uint64_t webtransport_max_sessions; /* 0xc671706a */
  bool h3_datagram;                   /* 0x33 == 1 or 0xffd277 == 1 */
  bool h3_datagram_draft04;           /* 0xffd277 == 1 */
  bool connect_protocol;              /* 0x08 == 1 */
  uint64_t qpack_max_table_capacity;
  uint64_t qpack_blocked_streams;
  uint64_t max_field_section_size;
};

/* Writes a whole SETTINGS frame (type, length, pairs in the given order).
 * No semantic check: it will write duplicates or reserved ids if asked (the
 * tests use that). Returns bytes written, -ENOSPC, -ERANGE. */
int h3_settings_encode(uint8_t *buf, size_t cap, const struct h3_setting *s, size_t n);

/* Parses a SETTINGS payload (the frame reader's H3_FRAME_EV_FRAME data).
 * Unknown and GREASE ids are ignored. Returns 0, or a negative errno with
 * *h3_error (may be NULL) set to the connection error:
 *   -EINVAL    payload ends inside a pair (H3_FRAME_ERROR); an id appears
 *              twice, an HTTP/2-only id (0x00, 0x02..0x05), or a value
 *              other than 0/1 for 0x08, 0x33, 0xffd277 (H3_SETTINGS_ERROR)
 *   -EMSGSIZE  more than H3_SETTINGS_MAX_PAIRS pairs (H3_EXCESSIVE_LOAD)
 * *out is fully written on success, undefined on error. */
int h3_settings_parse(const uint8_t *payload, size_t len, struct h3_peer_settings *out,
                      uint64_t *h3_error);

/* Our SETTINGS frames (the control stream type byte is not included).
 * Server: QPACK_MAX_TABLE_CAPACITY=0, QPACK_BLOCKED_STREAMS=0,
 * ENABLE_CONNECT_PROTOCOL=1, H3_DATAGRAM=1, H3_DATAGRAM_DRAFT04=1,
 * ENABLE_WEBTRANSPORT=1, WEBTRANSPORT_MAX_SESSIONS=1, one GREASE id = 0.
 * Client: the same without ENABLE_CONNECT_PROTOCOL and MAX_SESSIONS.
 * Returns bytes written or -ENOSPC (64 bytes are always enough). */
int h3_settings_build_server(uint8_t *buf, size_t cap);
int h3_settings_build_client(uint8_t *buf, size_t cap);

#endif
