/*
 * fuzz_capsule: the streaming capsule reader (capsule.c) as the CONNECT
 * stream's DATA payloads would feed it.
 *
 * Input: byte 0 low 3 bits = k, then k slice lengths (one byte each), then
 * the capsule stream. It is fed once whole and once in slices of those
 * lengths (cycled; k = 0: one byte at a time); both readers must report the
 * same capsules and the same result. The stream is also given to
 * capsule_close_parse(), and every close reason is re-encoded and parsed
 * back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/capsule.h"

struct run {
  uint64_t hash;
  unsigned events;
};

static void mix(struct run *r, const void *p, size_t n)
{
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    r->hash = (r->hash ^ b[i]) * UINT64_C(0x100000001b3);
}

/* A reason from the wire, encoded again, must parse to the same bytes
 * (when it has no NUL, which the C-string encoder cannot carry). */
static void check_close_roundtrip(uint32_t code, const uint8_t *reason, size_t len)
{
  static uint8_t out[CAPSULE_BUF_MAX + 16];
  char text[CAPSULE_CLOSE_REASON_MAX + 1];
  const uint8_t *r2;
  uint32_t c2;
  size_t l2, hl;
  int n;

  if (len > CAPSULE_CLOSE_REASON_MAX || memchr(reason, 0, len))
    return;
  memcpy(text, reason, len);
  text[len] = '\0';
  n = capsule_close_encode(out, sizeof(out), code, text);
  if (n < 0)
    abort();
  hl = (size_t)n - 4 - len; /* type and length varints */
  if (capsule_close_parse(out + hl, 4 + len, &c2, &r2, &l2) != 0 || c2 != code || l2 != len ||
      memcmp(r2, reason, len) != 0)
    abort();
}

static int on_capsule(void *user, const struct capsule_event *ev)
{
  struct run *r = user;
  uint64_t kc[2] = {ev->kind, ev->code};

  if (ev->data == NULL)
    abort();
  if (ev->kind == CAPSULE_EV_CLOSE) {
    if (ev->len > CAPSULE_CLOSE_REASON_MAX)
      abort();
    check_close_roundtrip(ev->code, ev->data, ev->len);
  }
  r->events++;
  mix(r, kc, sizeof(kc));
  mix(r, ev->data, ev->len);
  return 0;
}

static struct capsule_reader ra, rb;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct run run_a = {UINT64_C(0xcbf29ce484222325), 0}, run_b = run_a;
  const uint8_t *steps, *s, *reason;
  size_t k, n, off, i, rlen;
  uint32_t code;
  int ea, eb;

  if (size < 1)
    return 0;
  k = data[0] & 7;
  if (size < 1 + k)
    return 0;
  steps = data + 1;
  s = data + 1 + k;
  n = size - 1 - k;

  if (capsule_close_parse(s, n, &code, &reason, &rlen) == 0 &&
      (rlen != n - 4 || reason != s + 4))
    abort();

  capsule_reader_init(&ra, on_capsule, &run_a);
  capsule_reader_init(&rb, on_capsule, &run_b);
  ea = capsule_reader_feed(&ra, s, n);
  eb = 0;
  for (off = 0, i = 0; off < n && eb == 0; i++) {
    size_t step = k ? (size_t)steps[i % k] + 1 : 1;
    if (step > n - off)
      step = n - off;
    eb = capsule_reader_feed(&rb, s + off, step);
    off += step;
  }
  if (ea == 0)
    ea = capsule_reader_fin(&ra);
  if (eb == 0)
    eb = capsule_reader_fin(&rb);
  if (ea != eb || ra.error_code != rb.error_code || ra.capsules != rb.capsules ||
      ra.skipped != rb.skipped || ra.datagrams_dropped != rb.datagrams_dropped ||
      run_a.hash != run_b.hash || run_a.events != run_b.events)
    abort();
  return 0;
}
