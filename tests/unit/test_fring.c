#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "wtrelay/fring.h"
#include "wtrelay/switch.h"

static uint64_t ld(_Atomic uint64_t *c)
{
  return atomic_load(c);
}

/* Frame n: its length and byte i of it, so the consumer can check both. */
static size_t frame_len(uint32_t n)
{
  return 60 + n % 1455; /* 60 .. 1514 */
}

static uint8_t frame_byte(uint32_t n, size_t i)
{
  return (uint8_t)(n * 31 + i * 7);
}

/* Fills buf with frame n and describes it as three iovecs, the way a
 * chunked frame reaches a port. */
static int frame_iov(uint8_t *buf, uint32_t n, struct iovec iov[3])
{
  size_t len = frame_len(n);
  for (size_t i = 0; i < len; i++)
    buf[i] = frame_byte(n, i);
  memcpy(buf, &n, sizeof(n)); /* the number in the first bytes */
  size_t a = len / 3, b = len / 2;
  iov[0] = (struct iovec){buf, a};
  iov[1] = (struct iovec){buf + a, b - a};
  iov[2] = (struct iovec){buf + b, len - b};
  return 3;
}

/* Checks that slot s holds frame n, byte for byte. */
static bool frame_ok(const struct fring_slot *s, uint32_t n)
{
  size_t len = frame_len(n);
  if (s->len != len)
    return false;
  uint32_t got;
  memcpy(&got, s->data, sizeof(got));
  if (got != n)
    return false;
  for (size_t i = sizeof(n); i < len; i++)
    if (s->data[i] != frame_byte(n, i))
      return false;
  return true;
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

/* ---- two threads ---- */

#define STRESS_FRAMES 1000000u
#define STRESS_TURN 64 /* pushes per producer "loop turn", then one ring */

struct stress {
  struct fring r;
  _Atomic bool done;
  uint64_t attempts, refused; /* producer's own view */
  uint64_t got, bad, out_of_order, wakeups;
};

static void *producer(void *arg)
{
  struct stress *st = arg;
  static uint8_t buf[1514];
  struct iovec iov[3];
  for (uint32_t n = 0; n < STRESS_FRAMES; n++) {
    int rc = fring_push(&st->r, n & 0xff, 0, iov, frame_iov(buf, n, iov));
    st->attempts++;
    if (rc == -ENOBUFS)
      st->refused++;
    else if (rc != 0)
      abort();
    if (n % STRESS_TURN == STRESS_TURN - 1)
      fring_doorbell_ring(&st->r);
  }
  atomic_store_explicit(&st->done, true, memory_order_release);
  fring_doorbell_ring(&st->r);
  /* the last ring after `done`: rings even when nothing was pushed since */
  st->r.dirty = true;
  fring_doorbell_ring(&st->r);
  return NULL;
}

static void *consumer(void *arg)
{
  struct stress *st = arg;
  int64_t last = -1;
  for (;;) {
    const struct fring_slot *s;
    while ((s = fring_peek(&st->r))) {
      uint32_t n;
      memcpy(&n, s->data, sizeof(n));
      if ((int64_t)n <= last)
        st->out_of_order++;
      if (!frame_ok(s, n) || s->domain != (n & 0xff))
        st->bad++;
      last = n;
      st->got++;
      fring_release(&st->r);
    }
    if (atomic_load_explicit(&st->done, memory_order_acquire) && !fring_peek(&st->r))
      break;
    /* sleep on the doorbell, as the worker's armed read would */
    struct pollfd pfd = {.fd = fring_doorbell_fd(&st->r), .events = POLLIN};
    poll(&pfd, 1, 1000);
    fring_doorbell_ack(&st->r);
    st->wakeups++;
  }
  return NULL;
}

Test(fring, two_threads_a_million_frames, .timeout = 240)
{
  struct stress *st = calloc(1, sizeof(*st));
  cr_assert_eq(fring_init(&st->r, 256, 1514), 0);
  pthread_t pt, ct;
  cr_assert_eq(pthread_create(&ct, NULL, consumer, st), 0);
  cr_assert_eq(pthread_create(&pt, NULL, producer, st), 0);
  pthread_join(pt, NULL);
  pthread_join(ct, NULL);
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
