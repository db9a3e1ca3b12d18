/*
 * The two-thread test of the frame ring, shared by test_fring.c
 * (Criterion) and fring_stress_main.c (a plain program, for a
 * -fsanitize=thread build: Criterion's process arena does not start under
 * ThreadSanitizer). A producer thread pushes STRESS_FRAMES numbered frames
 * of varying length as three iovecs, ringing once per STRESS_TURN pushes;
 * a consumer thread sleeps on the doorbell, drains, and checks order and
 * every byte.
 */
#ifndef FRING_STRESS_H
#define FRING_STRESS_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/fring.h"

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

/* Runs producer and consumer on a ring of `slots` slots; st zeroed. 0 or
 * -errno (then nothing ran). st->r is left for the caller to check and
 * fring_fini. */
static int stress_run(struct stress *st, uint32_t slots)
{
  int rc = fring_init(&st->r, slots, 1514);
  if (rc < 0)
    return rc;
  pthread_t pt, ct;
  if ((rc = pthread_create(&ct, NULL, consumer, st)) != 0)
    return -rc;
  if ((rc = pthread_create(&pt, NULL, producer, st)) != 0)
    abort(); /* the consumer would wait for ever */
  pthread_join(pt, NULL);
  pthread_join(ct, NULL);
  return 0;
}

#endif
