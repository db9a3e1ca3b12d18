/*
 * fuzz_h3_settings: h3_settings_parse() on a SETTINGS payload, plus the
 * other single-payload parsers of h3_frame.c (frame header, id frames).
 *
 * Checks beyond "no crash": a payload that parses is re-encoded pair by
 * pair with h3_settings_encode() and must parse again to the same result,
 * and the reported booleans must agree with the raw values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/cursor.h"
#include "wtrelay/h3_frame.h"

static int same(const struct h3_peer_settings *a, const struct h3_peer_settings *b)
{
  return a->enable_webtransport == b->enable_webtransport && a->webtransport == b->webtransport &&
         a->webtransport_max_sessions == b->webtransport_max_sessions &&
         a->h3_datagram == b->h3_datagram && a->h3_datagram_draft04 == b->h3_datagram_draft04 &&
         a->connect_protocol == b->connect_protocol &&
         a->qpack_max_table_capacity == b->qpack_max_table_capacity &&
         a->qpack_blocked_streams == b->qpack_blocked_streams &&
         a->max_field_section_size == b->max_field_section_size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct h3_setting pairs[H3_SETTINGS_MAX_PAIRS];
  static uint8_t frame[H3_SETTINGS_MAX_PAIRS * 16 + 16];
  struct h3_peer_settings ps, ps2;
  uint64_t err = 0, t, l, id;
  struct cursor c;
  size_t n = 0;
  int rv, fl, hl;

  h3_frame_header_parse(data, size, &t, &l);
  h3_frame_id_parse(data, size, &id);

  rv = h3_settings_parse(data, size, &ps, &err);
  if (rv != 0) {
    if (err != H3_FRAME_ERROR && err != H3_SETTINGS_ERROR && err != H3_EXCESSIVE_LOAD)
      abort();
    return 0;
  }
  if (ps.enable_webtransport != (ps.webtransport == 1))
    abort();
  if (ps.h3_datagram_draft04 && !ps.h3_datagram)
    abort();

  cursor_init(&c, data, size);
  while (cursor_left(&c) > 0) {
    if (n == H3_SETTINGS_MAX_PAIRS || cursor_varint(&c, &pairs[n].id) < 0 ||
        cursor_varint(&c, &pairs[n].value) < 0)
      abort(); /* parse said it was well-formed */
    n++;
  }
  fl = h3_settings_encode(frame, sizeof(frame), pairs, n);
  if (fl < 0)
    abort();
  hl = h3_frame_header_parse(frame, (size_t)fl, &t, &l);
  if (hl < 0 || t != H3_FRAME_SETTINGS || (size_t)hl + l != (size_t)fl)
    abort();
  if (h3_settings_parse(frame + hl, (size_t)l, &ps2, &err) != 0 || !same(&ps, &ps2))
    abort();
  return 0;
}
