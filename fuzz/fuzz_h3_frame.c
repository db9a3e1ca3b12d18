/*
 * fuzz_h3_frame: the streaming HTTP/3 frame reader (h3_frame.c), as a
 * control or request stream would feed it, without a transport.
 *
 * Input: byte 0 low 3 bits = k, then k slice lengths (one byte each), then
 * the stream. The stream is fed once whole and once in slices of those
 * lengths (cycled; k = 0 means one byte at a time). Both readers must give
 * the same events (hashed in a slicing-independent way) and the same
 * result: that is the reader's contract. SETTINGS and id frames go through
 * their parsers, DATA payloads through a capsule reader.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/capsule.h"
#include "wtrelay/h3_frame.h"

/* Frame events and capsule events are hashed apart: each sequence is
 * slicing-independent, their interleaving is not. */
struct run {
  uint64_t hash;
  uint64_t chash;
  struct capsule_reader caps;
};

static void mix_into(uint64_t *h, const void *p, size_t n)
{
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    *h = (*h ^ b[i]) * UINT64_C(0x100000001b3);
}

static void mix(struct run *r, const void *p, size_t n) { mix_into(&r->hash, p, n); }

static void mix_u64(struct run *r, char tag, uint64_t v)
{
  mix(r, &tag, 1);
  mix(r, &v, sizeof(v));
}

static int on_capsule(void *user, const struct capsule_event *ev)
{
  struct run *r = user;
  uint64_t kc[2] = {ev->kind, ev->code};

  if (ev->data == NULL || (ev->kind == CAPSULE_EV_CLOSE && ev->len > CAPSULE_CLOSE_REASON_MAX))
    abort();
  mix_into(&r->chash, kc, sizeof(kc));
  mix_into(&r->chash, ev->data, ev->len);
  return 0;
}

static int on_event(void *user, const struct h3_frame_event *ev)
{
  struct run *r = user;
  struct h3_peer_settings ps;
  uint64_t v;

  if (ev->data == NULL)
    abort();
  switch (ev->kind) {
  case H3_FRAME_EV_FRAME:
    if (ev->len != ev->length)
      abort();
    mix_u64(r, 'F', ev->type);
    mix_u64(r, 'L', ev->len);
    mix(r, ev->data, ev->len);
    if (ev->type == H3_FRAME_SETTINGS) {
      int rv = h3_settings_parse(ev->data, ev->len, &ps, &v);
      mix_u64(r, 's', (uint64_t)rv);
      if (rv == 0 && ps.enable_webtransport != (ps.webtransport == 1))
        abort();
    } else if (ev->type != H3_FRAME_HEADERS && ev->type != H3_FRAME_PUSH_PROMISE) {
      mix_u64(r, 'i', (uint64_t)h3_frame_id_parse(ev->data, ev->len, &v));
    }
    break;
  case H3_FRAME_EV_DATA:
    if (ev->offset + ev->len > ev->length || ev->end != (ev->offset + ev->len == ev->length))
      abort();
    mix(r, ev->data, ev->len); /* slice contents only: slicing-independent */
    if (ev->end)
      mix_u64(r, 'D', ev->length);
    capsule_reader_feed(&r->caps, ev->data, ev->len);
    break;
  case H3_FRAME_EV_SKIP:
    mix_u64(r, 'S', ev->type);
    mix_u64(r, 'L', ev->length);
    break;
  case H3_FRAME_EV_WT_STREAM:
    mix_u64(r, 'W', ev->session_id);
    break;
  case H3_FRAME_EV_RAW:
    mix(r, ev->data, ev->len);
    break;
  }
  return 0;
}

static uint8_t buf_a[H3_FRAME_BUF_DEFAULT], buf_b[H3_FRAME_BUF_DEFAULT];
static struct run run_a, run_b;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct h3_frame_reader a, b;
  const uint8_t *steps, *s;
  size_t k, n, off, i;
  int ra, rb;

  if (size < 1)
    return 0;
  k = data[0] & 7;
  if (size < 1 + k)
    return 0;
  steps = data + 1;
  s = data + 1 + k;
  n = size - 1 - k;

  run_a.hash = run_b.hash = run_a.chash = run_b.chash = UINT64_C(0xcbf29ce484222325);
  capsule_reader_init(&run_a.caps, on_capsule, &run_a);
  capsule_reader_init(&run_b.caps, on_capsule, &run_b);
  h3_frame_reader_init(&a, buf_a, sizeof(buf_a), on_event, &run_a);
  h3_frame_reader_init(&b, buf_b, sizeof(buf_b), on_event, &run_b);

  ra = h3_frame_reader_feed(&a, s, n);
  rb = 0;
  for (off = 0, i = 0; off < n && rb == 0; i++) {
    size_t step = k ? (size_t)steps[i % k] + 1 : 1;
    if (step > n - off)
      step = n - off;
    rb = h3_frame_reader_feed(&b, s + off, step);
    off += step;
  }
  if (ra == 0)
    ra = h3_frame_reader_fin(&a);
  if (rb == 0)
    rb = h3_frame_reader_fin(&b);

  if (ra != rb || a.error_code != b.error_code || a.frames != b.frames ||
      a.skipped != b.skipped || run_a.hash != run_b.hash || run_a.chash != run_b.chash)
    abort();
  if (capsule_reader_fin(&run_a.caps) != capsule_reader_fin(&run_b.caps) ||
      run_a.caps.capsules != run_b.caps.capsules)
    abort();
  return 0;
}
