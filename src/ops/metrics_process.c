/*
 * metrics_process: the process as Prometheus sees any process
 * (process_cpu_seconds_total, process_resident_memory_bytes,
 * process_open_fds, process_start_time_seconds, read from /proc/self when
 * /metrics is served) and wtrelay_build_info, the versions of the relay
 * and of the libraries it runs with, asked of the libraries themselves
 * where they tell (ngtcp2_version, nghttp3_version, gnutls_check_version;
 * liburing from 2.4), else the version built against.
 *
 * Owns: nothing; reads /proc on the caller's thread (worker 0's, the ops
 * listener's) with a few small reads, no allocation.
 * Also: the label-value escaping every family with a peer-chosen label
 * value (room names) goes through.
 */
#include <dirent.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <liburing.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "wtrelay/metrics.h"

#ifndef WTRELAY_VERSION
#define WTRELAY_VERSION "unknown"
#endif
#ifndef WTRELAY_URING_VERSION
#define WTRELAY_URING_VERSION "unknown"
#endif

/* The whole of a small /proc file into buf (NUL-terminated). Returns its
 * length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  size_t n = 0;
  while (n + 1 < cap) {
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  return (ssize_t)n;
}

/* The boot time (unix seconds) from /proc/stat's btime, 0 if unknown. */
static unsigned long long boot_time(void)
{
  char buf[8192];
  if (read_small("/proc/stat", buf, sizeof(buf)) < 0)
    return 0;
  const char *l = strstr(buf, "\nbtime ");
  unsigned long long bt = 0;
  if (!l || sscanf(l + 7, "%llu", &bt) != 1)
    return 0;
  return bt;
}

/* Descriptors open now: the entries of /proc/self/fd less the one that
 * reads them. -1 if unknown. */
static long open_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  long n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  return n - 1;
}

static void gauge_f(struct ops_buf *b, const char *name, const char *type, const char *help,
                    double v)
{
  ops_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type, name, v);
}

static void build_info(struct ops_buf *b)
{
  const ngtcp2_info *tq = ngtcp2_version(0);
  const nghttp3_info *h3 = nghttp3_version(0);
  const char *tls = gnutls_check_version(NULL);
  char uring[32];
#if defined(IO_URING_VERSION_MAJOR)
  snprintf(uring, sizeof(uring), "%d.%d", io_uring_major_version(), io_uring_minor_version());
#else
  snprintf(uring, sizeof(uring), "%s", WTRELAY_URING_VERSION);
#endif
  ops_buf_printf(b,
                 "# HELP wtrelay_build_info The relay's version and the versions of the libraries "
                 "it runs with (ngtcp2, nghttp3, GnuTLS as they report themselves; liburing as "
                 "built against before 2.4)\n# TYPE wtrelay_build_info gauge\n"
                 "wtrelay_build_info{version=\"%s\",ngtcp2=\"%s\",nghttp3=\"%s\",gnutls=\"%s\","
                 "liburing=\"%s\"} 1\n",
                 WTRELAY_VERSION, tq ? tq->version_str : "unknown",
                 h3 ? h3->version_str : "unknown", tls ? tls : "unknown", uring);
}

void metrics_process_write(struct ops_buf *b)
{
  build_info(b);
  char buf[1024];
  long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  const char *rp;
  unsigned long long ut, st, start, rss;
  /* after the command name in parentheses (which may hold anything):
   * fields 3 on; utime 14, stime 15, starttime 22, rss 24 */
  if (tck > 0 && page > 0 && read_small("/proc/self/stat", buf, sizeof(buf)) > 0 &&
      (rp = strrchr(buf, ')')) != NULL &&
      sscanf(rp + 1,
             " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
             "%llu %*u %llu",
             &ut, &st, &start, &rss) == 4) {
    gauge_f(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.",
            (double)(ut + st) / (double)tck);
    gauge_f(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
            (double)rss * (double)page);
    unsigned long long bt = boot_time();
    if (bt)
      gauge_f(b, "process_start_time_seconds", "gauge",
              "Start time of the process since unix epoch in seconds.",
              (double)bt + (double)start / (double)tck);
  }
  long fds = open_fds();
  if (fds >= 0)
    gauge_f(b, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
}

/* The length of the UTF-8 sequence starting at s (1 to 4), or 0 if the
 * bytes there are no valid one (overlong, surrogate, beyond U+10FFFF, cut
 * short). */
static size_t utf8_len(const unsigned char *s)
{
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  size_t n = c >= 0xc2 && c <= 0xdf   ? 2
             : c >= 0xe0 && c <= 0xef ? 3
             : c >= 0xf0 && c <= 0xf4 ? 4
                                      : 0;
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
      (c == 0xf4 && s[1] > 0x8f))
    return 0;
  return n;
}

size_t metrics_label_escape(char *dst, size_t cap, const char *s)
{
  size_t n = 0;
  if (cap == 0)
    return 0;
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    const char *out = (const char *)p;
    size_t k = utf8_len(p), adv = k ? k : 1;
    if (*p == '\\')
      out = "\\\\", k = 2;
    else if (*p == '"')
      out = "\\\"", k = 2;
    else if (*p == '\n')
      out = "\\n", k = 2;
    else if (!k)
      out = "\xef\xbf\xbd", k = 3;
    if (n + k + 1 > cap)
      break;
    memcpy(dst + n, out, k);
    n += k;
    p += adv;
  }
  dst[n] = '\0';
  return n;
}
