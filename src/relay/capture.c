/*
 * capture: a room's frames as pcap. See include/wtrelay/capture.h.
 *
 * A ring holds pcap bytes as they will be sent or written: head and tail
 * count bytes ever written and released, the free space is
 * size - (head - tail), and a record that does not fit whole is dropped,
 * so the consumer always reads whole records in order. The consumer sends
 * from the ring in place (the bytes between tail and head are never
 * written while buffered), so a frame is copied once, by its worker.
 */
#include "wtrelay/capture.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wtrelay/log.h"

#define PCAP_MAGIC_US 0xa1b2c3d4u
#define PCAP_LINKTYPE_ETHERNET 1u
#define PCAP_REC_HDR 16u
#define FILE_IDLE_NS 20000000L /* the writer's nap when the ring is empty */

static uint64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int capture_hub_init(struct capture_hub *h)
{
  memset(h, 0, sizeof(*h));
  h->fd = -1;
  atomic_init(&h->gen, 1u);
  atomic_init(&h->stop, false);
  int rc = pthread_mutex_init(&h->mu, NULL);
  return rc ? -rc : 0;
}

/* Copies n bytes at the ring's head (the caller checked the room). */
static void ring_put(struct capture *c, const void *p, size_t n)
{
  size_t off = (size_t)(c->head % c->size);
  size_t first = n < c->size - off ? n : c->size - off;
  memcpy(c->ring + off, p, first);
  memcpy(c->ring, (const uint8_t *)p + first, n - first);
  c->head += n;
}

int capture_start(struct capture_hub *h, const char *room, uint32_t seconds, uint64_t max_bytes,
                  size_t ring_size, bool file, struct capture **out)
{
  if (strlen(room) >= CAPTURE_ROOM_MAX || ring_size < 64)
    return -EINVAL;
  uint8_t *ring = malloc(ring_size);
  if (!ring)
    return -ENOMEM;
  pthread_mutex_lock(&h->mu);
  struct capture *c = NULL;
  uint32_t streams = 0;
  for (uint32_t i = 0; i < CAPTURE_SLOTS; i++) {
    struct capture *s = &h->slots[i];
    streams += s->used && !s->file;
    if (!s->used && !c)
      c = s;
  }
  if (!c || (!file && streams >= CAPTURE_HTTP_MAX)) {
    h->ctr.refused_busy++;
    pthread_mutex_unlock(&h->mu);
    free(ring);
    return -EBUSY;
  }
  memset(c, 0, sizeof(*c));
  c->used = true;
  c->file = file;
  snprintf(c->room, sizeof(c->room), "%s", room);
  c->ring = ring;
  c->size = ring_size;
  c->max_bytes = max_bytes;
  c->end_ns = seconds ? mono_ns() + (uint64_t)seconds * 1000000000ull : 0;
  /* the file header in host order (readers tell it by the magic) */
  uint8_t hdr[24];
  uint32_t magic = PCAP_MAGIC_US, zero = 0, snap = CAPTURE_SNAPLEN, link = PCAP_LINKTYPE_ETHERNET;
  uint16_t major = 2, minor = 4;
  memcpy(hdr, &magic, 4);
  memcpy(hdr + 4, &major, 2);
  memcpy(hdr + 6, &minor, 2);
  memcpy(hdr + 8, &zero, 4);  /* thiszone: UTC */
  memcpy(hdr + 12, &zero, 4); /* sigfigs */
  memcpy(hdr + 16, &snap, 4);
  memcpy(hdr + 20, &link, 4);
  ring_put(c, hdr, sizeof(hdr));
  c->bytes = sizeof(hdr);
  h->ctr.started++;
  atomic_fetch_add_explicit(&h->gen, 1, memory_order_relaxed);
  pthread_mutex_unlock(&h->mu);
  *out = c;
  return 0;
}

void capture_stop(struct capture_hub *h, struct capture *c)
{
  pthread_mutex_lock(&h->mu);
  uint8_t *ring = c->ring;
  c->used = false;
  c->ring = NULL;
  atomic_fetch_add_explicit(&h->gen, 1, memory_order_relaxed);
  pthread_mutex_unlock(&h->mu);
  free(ring);
}

/* Under the mutex: one record of the frame into c. */
static void record(struct capture_hub *h, struct capture *c, const struct timespec *ts,
                   const struct iovec *iov, int iovcnt, size_t len)
{
  uint32_t incl = len < CAPTURE_SNAPLEN ? (uint32_t)len : CAPTURE_SNAPLEN;
  uint64_t need = PCAP_REC_HDR + incl;
  if (c->full || c->bytes + need > c->max_bytes) {
    c->full = true;
    h->ctr.dropped_limit++;
    return;
  }
  if (c->size - (c->head - c->tail) < need) {
    h->ctr.dropped_slow++;
    return;
  }
  uint32_t rh[4] = {(uint32_t)ts->tv_sec, (uint32_t)(ts->tv_nsec / 1000), incl, (uint32_t)len};
  ring_put(c, rh, sizeof(rh));
  uint32_t left = incl;
  for (int i = 0; i < iovcnt && left; i++) {
    size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;
    ring_put(c, iov[i].iov_base, n);
    left -= (uint32_t)n;
  }
  c->bytes += need;
  h->ctr.frames++;
  h->ctr.bytes += need;
}

void capture_tap_slow(struct capture_hub *h, struct capture_room *rc, const char *room,
                      const struct iovec *iov, int iovcnt, size_t len)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  pthread_mutex_lock(&h->mu);
  rc->gen = atomic_load_explicit(&h->gen, memory_order_relaxed);
  rc->on = false;
  for (uint32_t i = 0; i < CAPTURE_SLOTS; i++) {
    struct capture *c = &h->slots[i];
    if (!c->used || strcmp(c->room, room) != 0)
      continue;
    rc->on = true;
    if (!c->closed)
      record(h, c, &ts, iov, iovcnt, len);
  }
  pthread_mutex_unlock(&h->mu);
}

size_t capture_peek(struct capture_hub *h, struct capture *c, const uint8_t **p, bool *done)
{
  pthread_mutex_lock(&h->mu);
  if (c->end_ns && !c->closed && mono_ns() >= c->end_ns)
    c->closed = true;
  uint64_t n = c->head - c->tail;
  size_t off = (size_t)(c->tail % c->size);
  if (n > c->size - off)
    n = c->size - off;
  *p = c->ring + off;
  *done = n == 0 && (c->closed || c->full);
  pthread_mutex_unlock(&h->mu);
  return (size_t)n;
}

void capture_consume(struct capture_hub *h, struct capture *c, size_t n)
{
  pthread_mutex_lock(&h->mu);
  c->tail += n;
  pthread_mutex_unlock(&h->mu);
}

void capture_counters_read(struct capture_hub *h, struct capture_counters *out)
{
  pthread_mutex_lock(&h->mu);
  *out = h->ctr;
  pthread_mutex_unlock(&h->mu);
}

/* ---- the file capture ---- */

/* Writes all of p; 0 or -errno. */
static int write_all(int fd, const uint8_t *p, size_t n)
{
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return w < 0 ? -errno : -EIO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void *file_writer(void *arg)
{
  struct capture_hub *h = arg;
  struct capture *c = h->fcap;
  for (;;) {
    const uint8_t *p;
    bool done;
    bool stop = atomic_load_explicit(&h->stop, memory_order_acquire);
    size_t n = capture_peek(h, c, &p, &done);
    if (n) {
      int rc = write_all(h->fd, p, n);
      if (rc < 0) {
        log_error("pcap file write failed; capture stopped", "err=\"%s\"", strerror(-rc));
        break;
      }
      capture_consume(h, c, n);
      continue;
    }
    if (done) {
      log_warn("pcap file reached --pcap-max-bytes; capture stopped", "room=%s max_bytes=%llu",
               LOG_Q(c->room), (unsigned long long)c->max_bytes);
      break;
    }
    if (stop)
      break;
    struct timespec nap = {0, FILE_IDLE_NS};
    nanosleep(&nap, NULL);
  }
  return NULL;
}

int capture_file_start(struct capture_hub *h, const char *path, const char *room,
                       uint64_t max_bytes)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0)
    return -errno;
  int rc = capture_start(h, room, 0, max_bytes, CAPTURE_FILE_RING, true, &h->fcap);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  h->fd = fd;
  /* the writer takes no signal: the process thread handles them */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&h->thread, NULL, file_writer, h);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    capture_stop(h, h->fcap);
    h->fcap = NULL;
    close(fd);
    h->fd = -1;
    return -rc;
  }
  h->thread_on = true;
  return 0;
}

void capture_hub_fini(struct capture_hub *h)
{
  if (h->thread_on) {
    atomic_store_explicit(&h->stop, true, memory_order_release);
    pthread_join(h->thread, NULL);
    h->thread_on = false;
  }
  if (h->fd >= 0)
    close(h->fd);
  h->fd = -1;
  for (uint32_t i = 0; i < CAPTURE_SLOTS; i++)
    if (h->slots[i].used)
      capture_stop(h, &h->slots[i]);
  h->fcap = NULL;
  pthread_mutex_destroy(&h->mu);
}

/* ---- counters ---- */

#define C(fam, help, labels, key, field)                                                           \
  COUNTER_DEF(struct capture_counters, fam, help, labels, "capture counters", key, field)
static const struct counter_def capture_counter_defs[] = {
    C("wtrelay_captures_started_total", "packet captures started (GET /rooms/<room>/pcap, --pcap)",
      NULL, "started", started),
    C("wtrelay_captures_refused_total", "packet captures refused: every capture slot busy", NULL,
      "refused_busy", refused_busy),
    C("wtrelay_capture_frames_total", "frames written to captures", NULL, "frames", frames),
    C("wtrelay_capture_bytes_total", "bytes written to captures", NULL, "bytes", bytes),
    C("wtrelay_capture_frames_dropped_total",
      "frames not captured: the reader was slow (ring full), the capture reached its byte bound",
      "reason=\"slow\"", "dropped_slow", dropped_slow),
    C("wtrelay_capture_frames_dropped_total", NULL, "reason=\"limit\"", "dropped_limit",
      dropped_limit),
};
#undef C

const struct counter_table capture_counter_table =
    COUNTER_TABLE(capture_counter_defs, struct capture_counters);
