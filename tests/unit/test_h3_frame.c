/*
 * Unit tests for h3_frame.c: frame headers, the streaming frame reader,
 * SETTINGS encode/parse and our own SETTINGS frames.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "wtrelay/h3_frame.h"
#include "wtrelay/varint.h"

/* --- helpers ------------------------------------------------------------ */

/* Records events in a slicing-independent form: DATA slices and RAW bytes
 * are joined, so feeding the same stream in any pieces gives the same log. */
struct collector {
  uint8_t log[65536];
  size_t log_len;
  uint8_t data[65536]; /* current DATA frame */
  size_t data_len;
  uint8_t raw[4096];
  size_t raw_len;
  int frames, datas, skips, wts;
  uint64_t last_type;
  uint64_t session_id;
  int fail_on_frame; /* return -ECANCELED on this FRAME event (1-based) */
};

static void log_put(struct collector *c, const void *p, size_t n)
{
  cr_assert_leq(c->log_len + n, sizeof(c->log));
  memcpy(c->log + c->log_len, p, n);
  c->log_len += n;
}

static void log_u64(struct collector *c, char tag, uint64_t v)
{
  log_put(c, &tag, 1);
  log_put(c, &v, sizeof(v));
}

static int collect(void *user, const struct h3_frame_event *ev)
{
  struct collector *c = user;

  switch (ev->kind) {
  case H3_FRAME_EV_FRAME:
    c->frames++;
    c->last_type = ev->type;
    cr_assert_eq(ev->len, ev->length);
    if (c->fail_on_frame && c->frames == c->fail_on_frame)
      return -ECANCELED;
    log_u64(c, 'F', ev->type);
    log_u64(c, 'L', ev->len);
    log_put(c, ev->data, ev->len);
    break;
  case H3_FRAME_EV_DATA:
    cr_assert_eq(ev->offset, c->data_len, "DATA slices arrive in order");
    cr_assert_leq(c->data_len + ev->len, sizeof(c->data));
    memcpy(c->data + c->data_len, ev->data, ev->len);
    c->data_len += ev->len;
    if (ev->end) {
      cr_assert_eq(c->data_len, ev->length);
      c->datas++;
      log_u64(c, 'D', c->data_len);
      log_put(c, c->data, c->data_len);
      c->data_len = 0;
    }
    break;
  case H3_FRAME_EV_SKIP:
    c->skips++;
    log_u64(c, 'S', ev->type);
    log_u64(c, 'L', ev->length);
    break;
  case H3_FRAME_EV_WT_STREAM:
    c->wts++;
    c->session_id = ev->session_id;
    log_u64(c, 'W', ev->session_id);
    break;
  case H3_FRAME_EV_RAW:
    cr_assert_leq(c->raw_len + ev->len, sizeof(c->raw));
    memcpy(c->raw + c->raw_len, ev->data, ev->len);
    c->raw_len += ev->len;
    break;
  }
  return 0;
}

static size_t put_frame(uint8_t *out, uint64_t type, const uint8_t *payload, size_t len)
{
  int n = h3_frame_header_write(out, 32, type, len);
  cr_assert_gt(n, 0);
  if (len)
    memcpy(out + n, payload, len);
  return (size_t)n + len;
}

static uint8_t rbuf[H3_FRAME_BUF_DEFAULT];

/* Feeds stream in pieces of `step` bytes (0: all at once) and returns the
 * feed result; the collector holds the events. */
static int feed_in_steps(struct collector *c, const uint8_t *stream, size_t len, size_t step)
{
  struct h3_frame_reader r;
  int rv = 0;

  memset(c, 0, sizeof(*c));
  h3_frame_reader_init(&r, rbuf, sizeof(rbuf), collect, c);
  if (step == 0)
    step = len ? len : 1;
  for (size_t off = 0; off < len && rv == 0; off += step)
    rv = h3_frame_reader_feed(&r, stream + off, len - off < step ? len - off : step);
  if (rv == 0)
    rv = h3_frame_reader_fin(&r);
  return rv;
}

/* Chromium's control-stream SETTINGS (protocol.md section 2) with a GREASE
 * setting 0x5194c4d74 = 0x6b2a, then a GREASE frame (type 0x746). */
static const uint8_t chromium_settings[] = {
    0x04, 0x25, 0x01, 0x80, 0x01, 0x00, 0x00, 0x06, 0x80, 0x00, 0x40, 0x00, 0x07,
    0x40, 0x64, 0x33, 0x01, 0x80, 0xff, 0xd2, 0x77, 0x01, 0xab, 0x60, 0x37, 0x42,
    0x01, 0xc0, 0x00, 0x00, 0x05, 0x19, 0x4c, 0x4d, 0x74, 0x80, 0x00, 0x6b, 0x2a,
};
static const uint8_t chromium_grease_frame[] = {0x47, 0x46, 0x03, 0x01, 0x02, 0x03};

/* --- frame headers ------------------------------------------------------ */

Test(h3_frame, header_parse_and_truncation)
{
  uint8_t b[32];
  uint64_t t, l;
  int n = h3_frame_header_write(b, sizeof(b), H3_FRAME_HEADERS, 16384);

  cr_assert_eq(n, 1 + 4);
  cr_assert_eq(h3_frame_header_parse(b, (size_t)n, &t, &l), n);
  cr_assert_eq(t, H3_FRAME_HEADERS);
  cr_assert_eq(l, 16384);
  for (int i = 0; i < n; i++)
    cr_assert_eq(h3_frame_header_parse(b, (size_t)i, &t, &l), -ENODATA, "prefix %d", i);

  /* largest header: 8 + 8 bytes */
  n = h3_frame_header_write(b, sizeof(b), UINT64_C(0x2a1b3c4d5e), VARINT_MAX);
  cr_assert_eq(n, 16);
  cr_assert_eq(h3_frame_header_parse(b, 16, &t, &l), 16);
  cr_assert_eq(t, UINT64_C(0x2a1b3c4d5e));
  cr_assert_eq(l, VARINT_MAX);
  cr_assert_eq(h3_frame_header_parse(b, 15, &t, &l), -ENODATA);

  cr_assert_eq(h3_frame_header_write(b, 4, H3_FRAME_DATA, 16384), -ENOSPC);
  cr_assert_eq(h3_frame_header_write(b, 32, UINT64_C(1) << 62, 0), -ERANGE);
}

Test(h3_frame, header_http2_types_rejected)
{
  static const uint8_t types[] = {0x02, 0x06, 0x08, 0x09};
  uint64_t t, l;

  for (size_t i = 0; i < sizeof(types); i++) {
    uint8_t b[2] = {types[i], 0x00};
    cr_assert_eq(h3_frame_header_parse(b, 2, &t, &l), -EINVAL, "type %u", types[i]);
  }
}

Test(h3_frame, webtransport_stream_header_carries_session_id)
{
  static const uint8_t b[] = {0x40, 0x41, 0x04};
  uint64_t t, l;

  cr_assert_eq(h3_frame_header_parse(b, sizeof(b), &t, &l), 3);
  cr_assert_eq(t, H3_FRAME_WEBTRANSPORT_STREAM);
  cr_assert_eq(l, 4);
}

Test(h3_frame, goaway_and_id_payload)
{
  uint8_t b[32];
  uint64_t t, l, id;
  int n = h3_goaway_encode(b, sizeof(b), 4);

  cr_assert_eq(n, 3);
  cr_assert_eq(h3_frame_header_parse(b, (size_t)n, &t, &l), 2);
  cr_assert_eq(t, H3_FRAME_GOAWAY);
  cr_assert_eq(l, 1);
  cr_assert_eq(h3_frame_id_parse(b + 2, 1, &id), 0);
  cr_assert_eq(id, 4);

  n = h3_goaway_encode(b, sizeof(b), 1000000);
  cr_assert_eq(n, 2 + 4);
  cr_assert_eq(h3_frame_id_parse(b + 2, 4, &id), 0);
  cr_assert_eq(id, 1000000);
  cr_assert_eq(h3_goaway_encode(b, 5, 1000000), -ENOSPC);
  cr_assert_eq(h3_goaway_encode(b, 32, UINT64_MAX), -ERANGE);

  cr_assert_eq(h3_frame_id_parse(b, 0, &id), -EINVAL, "empty");
  static const uint8_t two[] = {0x04, 0x04};
  cr_assert_eq(h3_frame_id_parse(two, 2, &id), -EINVAL, "trailing byte");
  static const uint8_t cut[] = {0x80, 0x01};
  cr_assert_eq(h3_frame_id_parse(cut, 2, &id), -EINVAL, "truncated");
}

Test(h3_frame, grease_helpers)
{
  cr_assert(h3_is_grease(0x21));
  cr_assert(h3_is_grease(H3_GREASE(1)));
  cr_assert(h3_is_grease(UINT64_C(0x5194c4d74)));
  cr_assert(h3_is_grease(0x746));
  cr_assert_not(h3_is_grease(0x20));
  cr_assert_not(h3_is_grease(H3_FRAME_HEADERS));
  cr_assert_not(h3_is_grease(0x22));
}

/* --- streaming reader --------------------------------------------------- */

/* A control stream and request stream mixed: every kind of frame. */
static size_t build_mixed_stream(uint8_t *s)
{
  static uint8_t big[1000], unk[300];
  static const uint8_t hdrs[] = {0x00, 0x00, 0xd1, 0xd7};
  size_t off = 0;
  int n;

  for (size_t i = 0; i < sizeof(big); i++)
    big[i] = (uint8_t)(i * 7);
  memset(unk, 0xee, sizeof(unk));
  memcpy(s, chromium_settings, sizeof(chromium_settings));
  off += sizeof(chromium_settings);
  memcpy(s + off, chromium_grease_frame, sizeof(chromium_grease_frame));
  off += sizeof(chromium_grease_frame);
  off += put_frame(s + off, H3_FRAME_HEADERS, hdrs, sizeof(hdrs));
  off += put_frame(s + off, H3_FRAME_DATA, big, sizeof(big));
  off += put_frame(s + off, H3_FRAME_DATA, NULL, 0);
  off += put_frame(s + off, 0x1234, unk, sizeof(unk));
  off += put_frame(s + off, H3_GREASE(0x1000000), NULL, 0);
  off += put_frame(s + off, H3_FRAME_HEADERS, NULL, 0);
  n = h3_goaway_encode(s + off, 16, 8);
  cr_assert_gt(n, 0);
  off += (size_t)n;
  return off;
}

Test(h3_frame_reader, any_slicing_gives_identical_events)
{
  static uint8_t stream[4096];
  static struct collector whole, piece;
  size_t len = build_mixed_stream(stream);

  cr_assert_eq(feed_in_steps(&whole, stream, len, 0), 0);
  cr_assert_eq(whole.frames, 4, "SETTINGS, HEADERS x2, GOAWAY");
  cr_assert_eq(whole.datas, 2);
  cr_assert_eq(whole.skips, 3, "GREASE, 0x1234, GREASE");
  cr_assert_eq(whole.last_type, H3_FRAME_GOAWAY);

  static const size_t steps[] = {1, 2, 3, 7, 16, 17, 100, 999};
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    cr_assert_eq(feed_in_steps(&piece, stream, len, steps[i]), 0, "step %zu", steps[i]);
    cr_assert_eq(piece.log_len, whole.log_len, "step %zu", steps[i]);
    cr_assert_arr_eq(piece.log, whole.log, whole.log_len, "step %zu", steps[i]);
  }
}

/* Heap mode: the same events for any slicing as with a caller's buffer; a
 * frame whole in one slice allocates nothing, a split one allocates its
 * length and gives it back once delivered, so an idle stream holds
 * nothing. */
Test(h3_frame_reader, heap_mode_buffers_only_split_frames)
{
  static uint8_t stream[4096];
  static struct collector whole, piece;
  size_t len = build_mixed_stream(stream);
  cr_assert_eq(feed_in_steps(&whole, stream, len, 0), 0);

  static const size_t steps[] = {0, 1, 3, 16, 999};
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    struct memcount mc = {0};
    struct h3_frame_reader r;
    size_t step = steps[i] ? steps[i] : len;
    memset(&piece, 0, sizeof(piece));
    h3_frame_reader_init_heap(&r, H3_FRAME_BUF_DEFAULT, &mc, collect, &piece);
    for (size_t off = 0; off < len; off += step)
      cr_assert_eq(h3_frame_reader_feed(&r, stream + off, len - off < step ? len - off : step), 0);
    cr_assert_eq(h3_frame_reader_fin(&r), 0);
    cr_assert_eq(piece.log_len, whole.log_len, "step %zu", step);
    cr_assert_arr_eq(piece.log, whole.log, whole.log_len, "step %zu", step);
    cr_assert_eq(mc.bytes, 0, "nothing held between frames (step %zu)", step);
    cr_assert_eq(mc.blocks, 0);
    cr_assert_null(r.buf);
    if (step == len)
      cr_assert_eq(mc.peak, 0, "whole frames are read in place");
    else if (step <= 16) /* larger steps may cut no buffered frame */
      cr_assert_gt(mc.peak, 0, "a split frame was gathered (step %zu)", step);
  }

  /* cut short inside a frame: held until released */
  struct memcount mc = {0};
  struct h3_frame_reader r;
  memset(&piece, 0, sizeof(piece));
  h3_frame_reader_init_heap(&r, H3_FRAME_BUF_DEFAULT, &mc, collect, &piece);
  cr_assert_eq(h3_frame_reader_feed(&r, chromium_settings, 10), 0);
  cr_assert_eq(mc.blocks, 1);
  h3_frame_reader_release(&r);
  h3_frame_reader_release(&r);
  cr_assert_eq(mc.bytes, 0);
  cr_assert_eq(mc.blocks, 0);
  /* a frame longer than cap is refused before anything is allocated */
  uint64_t peak = mc.peak;
  h3_frame_reader_init_heap(&r, 8, &mc, collect, &piece);
  cr_assert_eq(h3_frame_reader_feed(&r, chromium_settings, 10), -EMSGSIZE);
  cr_assert_eq(mc.peak, peak);
  cr_assert_eq(mc.blocks, 0);
}

Test(h3_frame_reader, unknown_and_grease_frames_skipped_unbuffered)
{
  static uint8_t stream[70000];
  static uint8_t payload[65000];
  static struct collector c;
  struct h3_frame_reader r;
  uint8_t tiny[8];
  size_t off = 0;

  /* a 65000-byte unknown frame through a reader that can buffer 8 bytes */
  off += put_frame(stream + off, H3_GREASE(77), payload, sizeof(payload));
  off += put_frame(stream + off, 0x3fff, payload, 10);
  off += put_frame(stream + off, H3_FRAME_GOAWAY, (const uint8_t[]){0x00}, 1);
  memset(&c, 0, sizeof(c));
  h3_frame_reader_init(&r, tiny, sizeof(tiny), collect, &c);
  for (size_t i = 0; i < off; i += 4000)
    cr_assert_eq(h3_frame_reader_feed(&r, stream + i, off - i < 4000 ? off - i : 4000), 0);
  cr_assert_eq(h3_frame_reader_fin(&r), 0);
  cr_assert_eq(c.skips, 2);
  cr_assert_eq(r.skipped, 2);
  cr_assert_eq(r.frames, 3);
  cr_assert_eq(c.frames, 1);
  cr_assert_eq(c.last_type, H3_FRAME_GOAWAY);
}

Test(h3_frame_reader, oversized_headers_rejected_before_payload)
{
  static uint8_t small[1024];
  struct collector c = {0};
  struct h3_frame_reader r;
  uint8_t hdr[16];
  int n = h3_frame_header_write(hdr, sizeof(hdr), H3_FRAME_HEADERS, sizeof(small) + 1);

  h3_frame_reader_init(&r, small, sizeof(small), collect, &c);
  cr_assert_eq(h3_frame_reader_feed(&r, hdr, (size_t)n), -EMSGSIZE);
  cr_assert_eq(r.error_code, H3_EXCESSIVE_LOAD);
  cr_assert_eq(c.frames, 0);
  /* sticky */
  cr_assert_eq(h3_frame_reader_feed(&r, hdr, 1), -EMSGSIZE);
  cr_assert_eq(h3_frame_reader_fin(&r), -EMSGSIZE);

  /* exactly the bound is fine */
  static uint8_t stream[2048];
  static uint8_t payload[1024];
  size_t len = put_frame(stream, H3_FRAME_HEADERS, payload, sizeof(payload));
  h3_frame_reader_init(&r, small, sizeof(small), collect, &c);
  cr_assert_eq(h3_frame_reader_feed(&r, stream, len), 0);
  cr_assert_eq(c.frames, 1);

  /* a huge SETTINGS too */
  n = h3_frame_header_write(hdr, sizeof(hdr), H3_FRAME_SETTINGS, UINT64_C(1) << 40);
  h3_frame_reader_init(&r, small, sizeof(small), collect, &c);
  cr_assert_eq(h3_frame_reader_feed(&r, hdr, (size_t)n), -EMSGSIZE);
  cr_assert_eq(r.error_code, H3_EXCESSIVE_LOAD);
}

Test(h3_frame_reader, bad_id_frame_length_is_frame_error)
{
  struct collector c = {0};
  struct h3_frame_reader r;
  static const uint8_t goaway9[] = {0x07, 0x09};
  static const uint8_t maxpush0[] = {0x0d, 0x00};

  h3_frame_reader_init(&r, rbuf, sizeof(rbuf), collect, &c);
  cr_assert_eq(h3_frame_reader_feed(&r, goaway9, sizeof(goaway9)), -EINVAL);
  cr_assert_eq(r.error_code, H3_FRAME_ERROR);
  h3_frame_reader_init(&r, rbuf, sizeof(rbuf), collect, &c);
  cr_assert_eq(h3_frame_reader_feed(&r, maxpush0, sizeof(maxpush0)), -EINVAL);
  cr_assert_eq(r.error_code, H3_FRAME_ERROR);
}

Test(h3_frame_reader, http2_frame_type_is_frame_unexpected)
{
  struct collector c = {0};
  struct h3_frame_reader r;
  static const uint8_t ping[] = {0x06, 0x08, 1, 2, 3, 4, 5, 6, 7, 8};

  h3_frame_reader_init(&r, rbuf, sizeof(rbuf), collect, &c);
  cr_assert_eq(h3_frame_reader_feed(&r, ping, 1), 0, "header incomplete yet");
  cr_assert_eq(h3_frame_reader_feed(&r, ping + 1, sizeof(ping) - 1), -EINVAL);
  cr_assert_eq(r.error_code, H3_FRAME_UNEXPECTED);
}

Test(h3_frame_reader, fin_inside_frame_is_frame_error)
{
  struct collector c = {0};
  struct h3_frame_reader r;
  static const uint8_t part[] = {0x01, 0x05, 0x00, 0x00};
  static const uint8_t half_hdr[] = {0x01, 0x80};

  h3_frame_reader_init(&r, rbuf, sizeof(rbuf), collect, &c);
  cr_assert_eq(h3_frame_reader_fin(&r), 0, "empty stream ends cleanly");

  h3_frame_reader_init(&r, rbuf, sizeof(rbuf), collect, &c);
  cr_assert_eq(h3_frame_reader_feed(&r, part, sizeof(part)), 0);
  cr_assert_eq(h3_frame_reader_fin(&r), -EINVAL);
  cr_assert_eq(r.error_code, H3_FRAME_ERROR);

  h3_frame_reader_init(&r, rbuf, sizeof(rbuf), collect, &c);
  cr_assert_eq(h3_frame_reader_feed(&r, half_hdr, sizeof(half_hdr)), 0);
  cr_assert_eq(h3_frame_reader_fin(&r), -EINVAL);
  cr_assert_eq(r.error_code, H3_FRAME_ERROR);
}

Test(h3_frame_reader, callback_error_stops_reader)
{
  static uint8_t stream[4096];
  static struct collector c;
  struct h3_frame_reader r;
  size_t len = build_mixed_stream(stream);

  memset(&c, 0, sizeof(c));
  c.fail_on_frame = 2;
  h3_frame_reader_init(&r, rbuf, sizeof(rbuf), collect, &c);
  cr_assert_eq(h3_frame_reader_feed(&r, stream, len), -ECANCELED);
  cr_assert_eq(r.error_code, 0, "not the reader's error");
  cr_assert_eq(c.frames, 2);
  cr_assert_eq(c.datas, 0, "nothing after the failing event");
  cr_assert_eq(h3_frame_reader_feed(&r, stream, 1), -ECANCELED);
}

Test(h3_frame_reader, webtransport_bidi_stream_is_raw_after_signal)
{
  static const uint8_t s[] = {0x40, 0x41, 0x00, 'h', 'e', 'l', 'l', 'o', 0x01, 0x02};
  static struct collector c;

  for (size_t step = 0; step <= 3; step++) {
    cr_assert_eq(feed_in_steps(&c, s, sizeof(s), step), 0);
    cr_assert_eq(c.wts, 1);
    cr_assert_eq(c.session_id, 0);
    cr_assert_eq(c.raw_len, 7);
    cr_assert_arr_eq(c.raw, "hello\x01\x02", 7);
    cr_assert_eq(c.frames + c.datas + c.skips, 0);
  }
}

/* --- SETTINGS ----------------------------------------------------------- */

static void parse_frame_settings(const uint8_t *frame, size_t len, struct h3_peer_settings *ps)
{
  uint64_t t, l, err = 0;
  int n = h3_frame_header_parse(frame, len, &t, &l);

  cr_assert_gt(n, 0);
  cr_assert_eq(t, H3_FRAME_SETTINGS);
  cr_assert_eq((size_t)n + l, len);
  cr_assert_eq(h3_settings_parse(frame + n, (size_t)l, ps, &err), 0, "err 0x%llx",
               (unsigned long long)err);
}

Test(h3_settings, chromium_settings)
{
  static struct collector c;
  struct h3_peer_settings ps;
  uint8_t stream[sizeof(chromium_settings) + sizeof(chromium_grease_frame)];

  parse_frame_settings(chromium_settings, sizeof(chromium_settings), &ps);
  cr_assert(ps.enable_webtransport);
  cr_assert_eq(ps.webtransport, 1);
  cr_assert(ps.h3_datagram);
  cr_assert(ps.h3_datagram_draft04);
  cr_assert_not(ps.connect_protocol);
  cr_assert_eq(ps.qpack_max_table_capacity, 65536);
  cr_assert_eq(ps.max_field_section_size, 16384);
  cr_assert_eq(ps.qpack_blocked_streams, 100);
  cr_assert_eq(ps.webtransport_max_sessions, 0);

  /* and through the reader, one byte at a time, with the GREASE frame */
  memcpy(stream, chromium_settings, sizeof(chromium_settings));
  memcpy(stream + sizeof(chromium_settings), chromium_grease_frame, sizeof(chromium_grease_frame));
  cr_assert_eq(feed_in_steps(&c, stream, sizeof(stream), 1), 0);
  cr_assert_eq(c.frames, 1);
  cr_assert_eq(c.skips, 1);
}

Test(h3_settings, firefox_settings)
{
  static const struct h3_setting ff[] = {
      {0x1, 65536}, {0x7, 20}, {0x2b603742, 1}, {0xffd277, 1}, {0x33, 1}, {0x8, 1},
  };
  uint8_t b[128];
  struct h3_peer_settings ps;
  int n = h3_settings_encode(b, sizeof(b), ff, 6);

  cr_assert_gt(n, 0);
  parse_frame_settings(b, (size_t)n, &ps);
  cr_assert(ps.enable_webtransport);
  cr_assert(ps.h3_datagram);
  cr_assert(ps.connect_protocol);
  cr_assert_eq(ps.qpack_blocked_streams, 20);
  cr_assert_eq(ps.max_field_section_size, UINT64_MAX, "absent: unlimited");
}

Test(h3_settings, roundtrip_and_defaults)
{
  static const struct h3_setting s[] = {
      {H3_SETTINGS_QPACK_MAX_TABLE_CAPACITY, 4096},
      {H3_SETTINGS_MAX_FIELD_SECTION_SIZE, VARINT_MAX},
      {H3_SETTINGS_QPACK_BLOCKED_STREAMS, 16383},
      {H3_SETTINGS_H3_DATAGRAM, 0},
      {H3_SETTINGS_ENABLE_WEBTRANSPORT, 2},
      {H3_SETTINGS_WEBTRANSPORT_MAX_SESSIONS, 16384},
      {0x1234567, 99},
  };
  uint8_t b[128];
  struct h3_peer_settings ps;
  int n = h3_settings_encode(b, sizeof(b), s, sizeof(s) / sizeof(s[0]));

  cr_assert_gt(n, 0);
  parse_frame_settings(b, (size_t)n, &ps);
  cr_assert_eq(ps.qpack_max_table_capacity, 4096);
  cr_assert_eq(ps.max_field_section_size, VARINT_MAX);
  cr_assert_eq(ps.qpack_blocked_streams, 16383);
  cr_assert_not(ps.h3_datagram);
  cr_assert_not(ps.enable_webtransport, "only 1 enables");
  cr_assert_eq(ps.webtransport, 2);
  cr_assert_eq(ps.webtransport_max_sessions, 16384);

  for (int cap = 0; cap < n; cap++)
    cr_assert_eq(h3_settings_encode(b, (size_t)cap, s, sizeof(s) / sizeof(s[0])), -ENOSPC);
  static const struct h3_setting bad[] = {{UINT64_C(1) << 62, 0}};
  cr_assert_eq(h3_settings_encode(b, sizeof(b), bad, 1), -ERANGE);

  /* empty SETTINGS is valid */
  n = h3_settings_encode(b, sizeof(b), NULL, 0);
  cr_assert_eq(n, 2);
  parse_frame_settings(b, 2, &ps);
  cr_assert_not(ps.enable_webtransport);
}

static int parse_pairs(const struct h3_setting *s, size_t n, uint64_t *err)
{
  uint8_t b[2048];
  struct h3_peer_settings ps;
  uint64_t t, l;
  int hl, fl = h3_settings_encode(b, sizeof(b), s, n);

  cr_assert_gt(fl, 0);
  hl = h3_frame_header_parse(b, (size_t)fl, &t, &l);
  cr_assert_gt(hl, 0);
  *err = 0;
  return h3_settings_parse(b + hl, (size_t)l, &ps, err);
}

Test(h3_settings, duplicate_id_rejected)
{
  static const struct h3_setting dup_known[] = {{0x33, 1}, {0x2b603742, 1}, {0x33, 1}};
  static const struct h3_setting dup_unknown[] = {{0x21, 0}, {0x99, 1}, {0x21, 1}};
  uint64_t err;

  cr_assert_eq(parse_pairs(dup_known, 3, &err), -EINVAL);
  cr_assert_eq(err, H3_SETTINGS_ERROR);
  cr_assert_eq(parse_pairs(dup_unknown, 3, &err), -EINVAL);
  cr_assert_eq(err, H3_SETTINGS_ERROR);
}

Test(h3_settings, http2_reserved_ids_rejected)
{
  static const uint64_t reserved[] = {0x0, 0x2, 0x3, 0x4, 0x5};
  uint64_t err;

  for (size_t i = 0; i < 5; i++) {
    struct h3_setting s[] = {{0x33, 1}, {reserved[i], 0}};
    cr_assert_eq(parse_pairs(s, 2, &err), -EINVAL, "id %llu", (unsigned long long)reserved[i]);
    cr_assert_eq(err, H3_SETTINGS_ERROR);
  }
}

Test(h3_settings, boolean_settings_other_values_rejected)
{
  static const uint64_t ids[] = {H3_SETTINGS_ENABLE_CONNECT_PROTOCOL, H3_SETTINGS_H3_DATAGRAM,
                                 H3_SETTINGS_H3_DATAGRAM_DRAFT04};
  uint64_t err;

  for (size_t i = 0; i < 3; i++) {
    struct h3_setting s[] = {{ids[i], 2}};
    cr_assert_eq(parse_pairs(s, 1, &err), -EINVAL);
    cr_assert_eq(err, H3_SETTINGS_ERROR);
  }
}

Test(h3_settings, truncated_pair_is_frame_error)
{
  static const uint8_t p1[] = {0x33};
  static const uint8_t p2[] = {0x33, 0x01, 0x80, 0xff};
  struct h3_peer_settings ps;
  uint64_t err = 0;

  cr_assert_eq(h3_settings_parse(p1, sizeof(p1), &ps, &err), -EINVAL);
  cr_assert_eq(err, H3_FRAME_ERROR);
  cr_assert_eq(h3_settings_parse(p2, sizeof(p2), &ps, NULL), -EINVAL, "h3_error may be NULL");
}

Test(h3_settings, too_many_pairs_is_excessive_load)
{
  static struct h3_setting s[H3_SETTINGS_MAX_PAIRS + 1];
  uint64_t err;

  for (size_t i = 0; i < H3_SETTINGS_MAX_PAIRS + 1; i++)
    s[i] = (struct h3_setting){H3_GREASE(i), i};
  cr_assert_eq(parse_pairs(s, H3_SETTINGS_MAX_PAIRS, &err), 0);
  cr_assert_eq(parse_pairs(s, H3_SETTINGS_MAX_PAIRS + 1, &err), -EMSGSIZE);
  cr_assert_eq(err, H3_EXCESSIVE_LOAD);
}

Test(h3_settings, our_server_and_client_settings)
{
  uint8_t b[64];
  struct h3_peer_settings ps;
  int n = h3_settings_build_server(b, sizeof(b));

  cr_assert_gt(n, 0);
  parse_frame_settings(b, (size_t)n, &ps);
  cr_assert(ps.enable_webtransport);
  cr_assert_eq(ps.webtransport, 1);
  cr_assert(ps.h3_datagram);
  cr_assert(ps.h3_datagram_draft04);
  cr_assert(ps.connect_protocol);
  cr_assert_eq(ps.qpack_max_table_capacity, 0);
  cr_assert_eq(ps.qpack_blocked_streams, 0);
  cr_assert_eq(ps.webtransport_max_sessions, 1);
  cr_assert_eq(h3_settings_build_server(b, (size_t)n - 1), -ENOSPC);

  /* exactly one GREASE id, value 0 */
  uint64_t t, l, id, v, grease = 0;
  int hl = h3_frame_header_parse(b, (size_t)n, &t, &l);
  for (int off = hl; off < n;) {
    off += varint_read(b + off, (size_t)(n - off), &id);
    off += varint_read(b + off, (size_t)(n - off), &v);
    if (h3_is_grease(id)) {
      grease++;
      cr_assert_eq(v, 0);
    }
  }
  cr_assert_eq(grease, 1);

  n = h3_settings_build_client(b, sizeof(b));
  cr_assert_gt(n, 0);
  parse_frame_settings(b, (size_t)n, &ps);
  cr_assert(ps.enable_webtransport);
  cr_assert(ps.h3_datagram);
  cr_assert_not(ps.connect_protocol);
}
