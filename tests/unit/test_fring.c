#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>

#include "fring_stress.h"
#include "wtrelay/fring.h"
#include "wtrelay/switch.h"

static uint64_t ld(_Atomic uint64_t *c)
{
  return atomic_load(c);
}

Test(fring, init_bounds)
{
  struct fring r;
  cr_assert_eq(fring_init(&r, 0, 1514), -EINVAL);
  cr_assert_eq(fring_init(&r, 8, 0), -EINVAL);
  cr_assert_eq(fring_init(&r, FRING_MAX_SLOTS + 1, 1514), -EINVAL);
  cr_assert_eq(fring_init(&r, 8, FRING_MAX_FRAME + 1), -EINVAL);
  fring_fini(&r);
  cr_assert_eq(fring_init(&r, 5, 1514), 0);
  cr_assert_eq(r.nslots, 8, "rounded up to a power of two");
  cr_assert_eq(r.stride % FRING_CACHE_LINE, 0);
  cr_assert_geq(r.stride, sizeof(struct fring_slot) + 1514);
  cr_assert_eq((uintptr_t)r.mem % FRING_CACHE_LINE, 0);
  cr_assert_neq((char *)&r.tail - (char *)&r.head, 0);
  cr_assert_geq((size_t)((char *)&r.tail - (char *)&r.head), FRING_CACHE_LINE,
                "head and tail on separate lines");
  cr_assert_geq(fring_doorbell_fd(&r), 0);
  fring_fini(&r);
  fring_fini(&r); /* twice is fine */
}

Test(fring, push_pop_in_order_from_an_iovec_list)
{
  struct fring r;
  cr_assert_eq(fring_init(&r, 16, 1514), 0);
  cr_assert_null(fring_peek(&r));
  uint8_t buf[1514];
  struct iovec iov[3];
  for (uint32_t n = 0; n < 10; n++) {
    int cnt = frame_iov(buf, n, iov);
    cr_assert_eq(fring_push(&r, 7 + n, n & 1 ? FRING_F_FLOOD : 0, iov, cnt), 0);
  }
  cr_assert_eq(fring_count(&r), 10);
  for (uint32_t n = 0; n < 10; n++) {
    const struct fring_slot *s = fring_peek(&r);
    cr_assert_not_null(s);
    cr_assert_eq(fring_peek(&r), s, "peek again: the same slot");
    cr_assert(frame_ok(s, n), "frame %u", n);
    cr_assert_eq(s->domain, 7 + n);
    cr_assert_eq(s->flags, n & 1 ? FRING_F_FLOOD : 0u);
    cr_assert_eq(s->seq, n);
    fring_release(&r);
  }
  cr_assert_null(fring_peek(&r));
  fring_release(&r); /* nothing peeked: no effect */
  cr_assert_eq(fring_count(&r), 0);
  cr_assert_eq(ld(&r.ctr.pushed), 10);
  cr_assert_eq(ld(&r.ctr.popped), 10);
  fring_fini(&r);
}

Test(fring, pushes_a_switch_frame)
{
  struct fring r;
  cr_assert_eq(fring_init(&r, 4, 1514), 0);
  uint8_t hdr[14] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 8, 6};
  uint8_t body[28] = {0, 1, 8, 0, 6, 4, 0, 1};
  struct iovec iov[2] = {{hdr, sizeof(hdr)}, {body, sizeof(body)}};
  struct switch_frame f = {.iov = iov, .iovcnt = 2, .len = 42, .flood = true};
  cr_assert_eq(fring_push(&r, 3, f.flood ? FRING_F_FLOOD : 0, f.iov, f.iovcnt), 0);
  const struct fring_slot *s = fring_peek(&r);
  cr_assert_eq(s->len, f.len);
  cr_assert_arr_eq(s->data, hdr, 14);
  cr_assert_arr_eq(s->data + 14, body, 28);
  cr_assert_eq(s->flags, FRING_F_FLOOD);
  fring_release(&r);
  fring_fini(&r);
}

Test(fring, full_ring_drops_and_counts)
{
  struct fring r;
  cr_assert_eq(fring_init(&r, 4, 1514), 0);
  uint8_t buf[1514];
  struct iovec iov[3];
  for (uint32_t n = 0; n < 4; n++)
    cr_assert_eq(fring_push(&r, 0, 0, iov, frame_iov(buf, n, iov)), 0);
  for (uint32_t n = 4; n < 7; n++)
    cr_assert_eq(fring_push(&r, 0, 0, iov, frame_iov(buf, n, iov)), -ENOBUFS);
  cr_assert_eq(ld(&r.ctr.dropped_full), 3);
  cr_assert_eq(ld(&r.ctr.pushed), 4);
  cr_assert_eq(fring_count(&r), 4);
  /* what is in the ring is untouched by the refused pushes */
  const struct fring_slot *s = fring_peek(&r);
  cr_assert(frame_ok(s, 0));
  fring_release(&r);
  /* one slot free: one push fits */
  cr_assert_eq(fring_push(&r, 0, 0, iov, frame_iov(buf, 100, iov)), 0);
  cr_assert_eq(fring_push(&r, 0, 0, iov, frame_iov(buf, 101, iov)), -ENOBUFS);
  const uint32_t want[] = {1, 2, 3, 100};
  for (int i = 0; i < 4; i++) {
    cr_assert(frame_ok(fring_peek(&r), want[i]), "frame %u", want[i]);
    fring_release(&r);
  }
  cr_assert_null(fring_peek(&r));
  fring_fini(&r);
}

Test(fring, wraps_around)
{
  struct fring r;
  cr_assert_eq(fring_init(&r, 8, 1514), 0);
  /* the free-running indices start near 2^32, so they wrap too */
  atomic_store(&r.head, UINT32_MAX - 20);
  atomic_store(&r.tail, UINT32_MAX - 20);
  r.tail_cache = r.head_cache = UINT32_MAX - 20;
  uint8_t buf[1514];
  struct iovec iov[3];
  uint32_t next_in = 0, next_out = 0;
  /* uneven batches so the fill level walks around the slots many times */
  for (int round = 0; round < 200; round++) {
    int in = 1 + round % 8, out = 1 + (round * 5) % 8;
    for (int i = 0; i < in; i++) {
      int rc = fring_push(&r, 0, 0, iov, frame_iov(buf, next_in, iov));
      if (rc == 0)
        next_in++;
      else
        cr_assert_eq(rc, -ENOBUFS);
    }
    for (int i = 0; i < out; i++) {
      const struct fring_slot *s = fring_peek(&r);
      if (!s)
        break;
      cr_assert(frame_ok(s, next_out), "frame %u", next_out);
      fring_release(&r);
      next_out++;
    }
    cr_assert_leq(fring_count(&r), 8);
  }
  while (fring_peek(&r)) {
    cr_assert(frame_ok(fring_peek(&r), next_out));
    fring_release(&r);
    next_out++;
  }
  cr_assert_eq(next_out, next_in);
  cr_assert_gt(next_in, 400, "went around the 8 slots many times");
  cr_assert_lt(atomic_load(&r.head), 1000u, "the index wrapped");
  fring_fini(&r);
}

Test(fring, frames_larger_than_a_slot_are_refused)
{
  struct fring r;
  cr_assert_eq(fring_init(&r, 4, 1514), 0);
  static uint8_t big[1515];
  struct iovec one = {big, sizeof(big)};
  cr_assert_eq(fring_push(&r, 0, 0, &one, 1), -EMSGSIZE);
  /* the total counts, not each iovec */
  struct iovec two[2] = {{big, 1000}, {big, 515}};
  cr_assert_eq(fring_push(&r, 0, 0, two, 2), -EMSGSIZE);
  cr_assert_eq(ld(&r.ctr.dropped_big), 2);
  cr_assert_eq(ld(&r.ctr.pushed), 0);
  cr_assert_null(fring_peek(&r));
  cr_assert_not(fring_doorbell_pending(&r), "a refused frame rings nothing");
  two[1].iov_len = 514;
  cr_assert_eq(fring_push(&r, 0, 0, two, 2), 0, "exactly max_frame fits");
  cr_assert_eq(fring_peek(&r)->len, 1514);
  fring_fini(&r);
}

Test(fring, doorbell_once_per_turn)
{
  struct fring r;
  cr_assert_eq(fring_init(&r, 16, 1514), 0);
  uint8_t buf[1514];
  struct iovec iov[3];
  cr_assert_not(fring_doorbell_pending(&r));
  cr_assert_eq(fring_doorbell_ring(&r), 0, "nothing pushed: no ring");
  cr_assert_eq(fring_doorbell_ack(&r), 0);
  /* a turn with five pushes rings once */
  for (uint32_t n = 0; n < 5; n++)
    fring_push(&r, 0, 0, iov, frame_iov(buf, n, iov));
  cr_assert(fring_doorbell_pending(&r));
  cr_assert_eq(fring_doorbell_ring(&r), 1);
  cr_assert_not(fring_doorbell_pending(&r));
  cr_assert_eq(fring_doorbell_ring(&r), 0);
  struct pollfd pfd = {.fd = fring_doorbell_fd(&r), .events = POLLIN};
  cr_assert_eq(poll(&pfd, 1, 0), 1, "the consumer's read completes");
  cr_assert_eq(fring_doorbell_ack(&r), 1);
  cr_assert_eq(poll(&pfd, 1, 0), 0);
  /* a turn whose pushes all failed rings nothing */
  for (uint32_t n = 5; n < 40; n++)
    fring_push(&r, 0, 0, iov, frame_iov(buf, n, iov));
  fring_doorbell_ring(&r);
  fring_doorbell_ack(&r);
  cr_assert_eq(fring_push(&r, 0, 0, iov, frame_iov(buf, 99, iov)), -ENOBUFS);
  cr_assert_eq(fring_doorbell_ring(&r), 0);
  cr_assert_eq(ld(&r.ctr.rings), 2);
  fring_fini(&r);
}

Test(fring, two_threads_a_million_frames, .timeout = 240)
{
  /* struct fring is cache-line aligned: malloc's 16 bytes are not enough */
  struct stress *st = aligned_alloc(alignof(struct stress), sizeof(*st));
  cr_assert_not_null(st);
  memset(st, 0, sizeof(*st));
  cr_assert_eq(stress_run(st, 256), 0);
  uint64_t pushed = ld(&st->r.ctr.pushed), dropped = ld(&st->r.ctr.dropped_full);
  cr_log_info("pushed %llu dropped %llu popped %llu wakeups %llu rings %llu",
              (unsigned long long)pushed, (unsigned long long)dropped,
              (unsigned long long)ld(&st->r.ctr.popped), (unsigned long long)st->wakeups,
              (unsigned long long)ld(&st->r.ctr.rings));
  cr_assert_eq(st->attempts, STRESS_FRAMES);
  cr_assert_eq(st->bad, 0, "every frame byte-exact");
  cr_assert_eq(st->out_of_order, 0, "in order (gaps only where dropped)");
  cr_assert_eq(st->got, ld(&st->r.ctr.popped));
  cr_assert_eq(pushed, st->got, "every frame pushed was popped");
  cr_assert_eq(dropped, st->refused);
  cr_assert_eq(pushed + dropped, STRESS_FRAMES, "attempts = popped + dropped");
  cr_assert_eq(ld(&st->r.ctr.dropped_big), 0);
  fring_fini(&st->r);
  free(st);
}
