/*
 * pcap_http: the packet-capture stream of the ops listener. See
 * pcap_http.h.
 */
#include "pcap_http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/lease.h"
#include "wtrelay/timeunit.h"

#define PREFIX "/rooms/"
#define SUFFIX "/pcap"
#define STREAM_GRACE_S 30 /* a slow reader's time to drain after the capture ends */

/* Decodes the segment s[0..n) (lease_name_decode: percent escapes, no
 * NUL, no raw control or space) into out (cap bytes), with a leading '/'.
 * 0 or -EINVAL. */
static int room_decode(const char *s, size_t n, char *out, size_t cap)
{
  if (lease_name_decode(s, n, out + 1, cap - 1) < 0)
    return -EINVAL;
  if (out[1] == '/')
    memmove(out, out + 1, strlen(out + 1) + 1);
  else
    out[0] = '/';
  return 0;
}

/* seconds=N in the query; *secs untouched when absent. 0 or -EINVAL. */
static int query_seconds(const char *q, uint32_t *secs)
{
  while (*q) {
    size_t n = strcspn(q, "&");
    if (n > 8 && strncmp(q, "seconds=", 8) == 0) {
      char *end;
      unsigned long v = strtoul(q + 8, &end, 10);
      if (end != q + n || q[8] < '0' || q[8] > '9' || v < 1 || v > CAPTURE_MAX_SECONDS)
        return -EINVAL;
      *secs = (uint32_t)v;
    } else if (n >= 7 && strncmp(q, "seconds", 7) == 0) {
      return -EINVAL;
    }
    q += n + (q[n] == '&');
  }
  return 0;
}

int pcap_http_open(struct capture_hub *h, struct roomdir *d, const char *path, const char *query,
                   void **stream, const char **ctype, uint64_t *max_ns, struct ops_buf *b)
{
  size_t len = strlen(path), pl = strlen(PREFIX), sl = strlen(SUFFIX);
  if (len <= pl + sl || strncmp(path, PREFIX, pl) != 0 || strcmp(path + len - sl, SUFFIX) != 0 ||
      memchr(path + pl, '/', len - pl - sl))
    return 0;
  char room[CAPTURE_ROOM_MAX];
  if (room_decode(path + pl, len - pl - sl, room, sizeof(room)) < 0) {
    ops_buf_printf(b, "bad room: its URL path as one percent-encoded segment (%%2Flab)\n");
    return 400;
  }
  uint32_t secs = CAPTURE_DEFAULT_SECONDS;
  if (query_seconds(query, &secs) < 0) {
    ops_buf_printf(b, "seconds: from 1 to %d\n", CAPTURE_MAX_SECONDS);
    return 400;
  }
  roomdir_lock(d);
  bool known = roomdir_find(d, room) != ROOMDIR_NONE;
  roomdir_unlock(d);
  if (!known) {
    ops_buf_printf(b, "no such room\n");
    return 404;
  }
  struct capture *c;
  int rc = capture_start(h, room, secs, CAPTURE_HTTP_MAX_BYTES, CAPTURE_HTTP_RING, false, &c);
  if (rc == -EBUSY) {
    ops_buf_printf(b, "%d captures running; try later\n", CAPTURE_HTTP_MAX);
    return 429;
  }
  if (rc < 0) {
    ops_buf_printf(b, "cannot start the capture\n");
    return 503;
  }
  *stream = c;
  *ctype = "application/vnd.tcpdump.pcap";
  *max_ns = (uint64_t)(secs + STREAM_GRACE_S) * NS_PER_S;
  return 200;
}
