/*
 * capture: the pcap ring without a relay. The file header, records as a
 * reader sees them (wrapping around the ring), a room's view of the table
 * (no lock while nobody captures it), a full ring dropping (a slow reader)
 * and the byte bound, the stream limit, the end of a timed capture.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wtrelay/capture.h"

static struct capture_hub hub;

static void setup(void)
{
  cr_assert_eq(capture_hub_init(&hub), 0);
}

static void teardown(void)
{
  capture_hub_fini(&hub);
}

/* Drains c into out (at most cap bytes); returns the bytes read. */
static size_t drain(struct capture *c, uint8_t *out, size_t cap, bool *done)
{
  size_t n = 0, k;
  const uint8_t *p;
  while ((k = capture_peek(&hub, c, &p, done)) > 0) {
    cr_assert_leq(n + k, cap);
    memcpy(out + n, p, k);
    capture_consume(&hub, c, k);
    n += k;
  }
  return n;
}

static uint32_t rd32(const uint8_t *p)
{
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static void tap(struct capture_room *rc, const char *room, uint8_t mark, size_t len)
{
  uint8_t f[2000];
  memset(f, mark, sizeof(f));
  /* two pieces, as the switch hands them */
  struct iovec iov[2] = {{f, 14}, {f + 14, len - 14}};
  capture_tap(&hub, rc, room, iov, 2, len);
}

TestSuite(capture, .init = setup, .fini = teardown);

Test(capture, header_records_and_rooms)
{
  struct capture *c;
  cr_assert_eq(capture_start(&hub, "/lab", 0, 1 << 20, 4096, false, &c), 0);
  struct capture_room lab = {0}, other = {0};
  tap(&lab, "/lab", 0x11, 60);
  tap(&other, "/other", 0x22, 60);
  tap(&lab, "/lab", 0x33, 1514);
  static uint8_t out[8192];
  bool done;
  size_t n = drain(c, out, sizeof(out), &done);
  cr_assert_not(done, "a capture without an end is never done");
  cr_assert_eq(n, 24 + 16 + 60 + 16 + 1514);
  cr_assert_eq(rd32(out), 0xa1b2c3d4u);
  cr_assert_eq(rd32(out + 16), 65535u);
  cr_assert_eq(rd32(out + 20), 1u);
  cr_assert_eq(rd32(out + 24 + 8), 60u, "incl_len");
  cr_assert_eq(rd32(out + 24 + 12), 60u, "orig_len");
  cr_assert_eq(out[24 + 16], 0x11);
  cr_assert_eq(out[24 + 16 + 59], 0x11);
  cr_assert_eq(rd32(out + 100 + 8), 1514u);
  cr_assert_eq(out[100 + 16 + 1513], 0x33);
  cr_assert(lab.on);
  cr_assert_not(other.on, "/other is nobody's");
  /* nothing changed: /other's view is current, no lock taken */
  cr_assert_not(capture_wanted(&hub, &other));
  cr_assert(capture_wanted(&hub, &lab));
  /* a stop changes the generation: views look again, then rest */
  capture_stop(&hub, c);
  cr_assert(capture_wanted(&hub, &lab));
  tap(&lab, "/lab", 0x44, 60);
  cr_assert_not(lab.on);
  cr_assert_not(capture_wanted(&hub, &lab));
  struct capture_counters ctr;
  capture_counters_read(&hub, &ctr);
  cr_assert_eq(ctr.frames, 2);
  cr_assert_eq(ctr.started, 1);
}

Test(capture, slow_reader_drops_and_wraps)
{
  struct capture *c;
  /* 24-byte header + 76-byte records in 512 bytes: 6 fit */
  cr_assert_eq(capture_start(&hub, "/lab", 0, 1 << 20, 512, false, &c), 0);
  struct capture_room rc = {0};
  for (int i = 0; i < 10; i++)
    tap(&rc, "/lab", (uint8_t)i, 60);
  struct capture_counters ctr;
  capture_counters_read(&hub, &ctr);
  cr_assert_eq(ctr.frames, 6);
  cr_assert_eq(ctr.dropped_slow, 4);
  static uint8_t out[8192];
  bool done;
  size_t n = drain(c, out, sizeof(out), &done);
  cr_assert_eq(n, 24 + 6 * 76);
  /* the reader caught up: the next records wrap around the ring's end */
  for (int i = 0; i < 5; i++)
    tap(&rc, "/lab", (uint8_t)(0x80 + i), 60);
  n = drain(c, out, sizeof(out), &done);
  cr_assert_eq(n, 5 * 76);
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(rd32(out + i * 76 + 8), 60u);
    cr_assert_eq(out[i * 76 + 16], 0x80 + i, "record %d", i);
    cr_assert_eq(out[i * 76 + 75], 0x80 + i, "record %d", i);
  }
  capture_stop(&hub, c);
}

Test(capture, byte_bound_then_done)
{
  struct capture *c;
  cr_assert_eq(capture_start(&hub, "/lab", 0, 24 + 3 * 76 + 10, 4096, true, &c), 0);
  struct capture_room rc = {0};
  for (int i = 0; i < 5; i++)
    tap(&rc, "/lab", (uint8_t)i, 60);
  static uint8_t out[8192];
  bool done;
  size_t n = drain(c, out, sizeof(out), &done);
  cr_assert_eq(n, 24 + 3 * 76, "whole records up to the bound");
  cr_assert(done);
  struct capture_counters ctr;
  capture_counters_read(&hub, &ctr);
  cr_assert_eq(ctr.dropped_limit, 2);
  capture_stop(&hub, c);
}

Test(capture, stream_limit_and_end)
{
  struct capture *c[CAPTURE_HTTP_MAX], *x, *f;
  for (int i = 0; i < CAPTURE_HTTP_MAX; i++)
    cr_assert_eq(capture_start(&hub, "/lab", 1, 1 << 20, 4096, false, &c[i]), 0);
  cr_assert_eq(capture_start(&hub, "/lab", 1, 1 << 20, 4096, false, &x), -EBUSY);
  cr_assert_eq(capture_start(&hub, "/lab", 0, 1 << 20, 4096, true, &f), 0, "the file's slot");
  struct capture_room rc = {0};
  tap(&rc, "/lab", 1, 60);
  static uint8_t out[8192];
  bool done;
  cr_assert_eq(drain(c[0], out, sizeof(out), &done), 24 + 76);
  cr_assert_not(done, "one second is not over");
  usleep(1100000);
  tap(&rc, "/lab", 2, 60); /* recorded: the end is seen by the reader */
  drain(c[0], out, sizeof(out), &done);
  cr_assert(done, "over after its second");
  tap(&rc, "/lab", 3, 60);
  cr_assert_eq(drain(c[0], out, sizeof(out), &done), 0, "a closed capture takes no frame");
  for (int i = 0; i < CAPTURE_HTTP_MAX; i++)
    capture_stop(&hub, c[i]);
  cr_assert_eq(capture_start(&hub, "/lab", 1, 1 << 20, 4096, false, &x), 0, "slots free again");
  capture_stop(&hub, x);
  capture_stop(&hub, f);
}
