/*
 * Reading a capture from the relay's ops listener in integration tests:
 * GET /rooms/<room>/pcap, the response read as it streams, the pcap file
 * parsed (header checked, records listed) and records counted by
 * ethertype, addresses and a marker byte. Included by test_pcap.c and
 * test_fed.c (one translation unit each).
 */
#ifndef WTRELAY_TEST_PCAP_READ_H
#define WTRELAY_TEST_PCAP_READ_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay_proc.h"

#ifndef CAP_MAX
#define CAP_MAX (8u << 20)
#endif

/* ---- the ops listener ---- */

static int ops_connect(const struct relay_proc *rp)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(rp->ops_port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  return fd;
}

/* A capture in progress: its socket and what it read. */
struct cap {
  int fd;
  uint8_t *buf;
  size_t len;
  bool eof;
  int status;
  size_t body; /* offset of the body in buf */
};

/* Sends GET target and reads the response head (within 5 s). */
static void cap_start(struct cap *c, const struct relay_proc *rp, const char *target)
{
  memset(c, 0, sizeof(*c));
  c->buf = malloc(CAP_MAX);
  cr_assert(c->buf);
  c->fd = ops_connect(rp);
  char req[512];
  int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
  cr_assert_eq(send(c->fd, req, (size_t)n, 0), n);
  fcntl(c->fd, F_SETFL, O_NONBLOCK);
  for (int i = 0; i < 500 && !c->body; i++) {
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    poll(&p, 1, 10);
    ssize_t r = recv(c->fd, c->buf + c->len, CAP_MAX - 1 - c->len, 0);
    if (r == 0)
      c->eof = true;
    if (r > 0)
      c->len += (size_t)r;
    c->buf[c->len] = '\0';
    char *e = strstr((char *)c->buf, "\r\n\r\n");
    if (e)
      c->body = (size_t)(e + 4 - (char *)c->buf);
    if (c->eof)
      break;
  }
  cr_assert(c->body, "no response head");
  cr_assert_eq(sscanf((char *)c->buf, "HTTP/1.1 %d", &c->status), 1);
}

/* Reads what is there without waiting. */
static void cap_drain(struct cap *c)
{
  ssize_t r;
  while (!c->eof && (r = recv(c->fd, c->buf + c->len, CAP_MAX - c->len, 0)) != 0) {
    if (r < 0)
      return;
    c->len += (size_t)r;
  }
  c->eof = true;
}

/* Reads until the relay closes the stream, within max_ms; pump_fn (if not
 * NULL) runs the test's clients for about 10 ms between reads. */
static void cap_finish(struct cap *c, void (*pump_fn)(void *), void *arg, uint32_t max_ms)
{
  for (uint32_t t = 0; t < max_ms / 10 && !c->eof; t++) {
    if (pump_fn)
      pump_fn(arg);
    else
      usleep(10000);
    cap_drain(c);
  }
  cr_assert(c->eof, "the capture did not end");
}

static void cap_free(struct cap *c)
{
  close(c->fd);
  free(c->buf);
}

/* ---- pcap reading ---- */

struct rec {
  const uint8_t *p;
  uint32_t len, orig;
  uint32_t sec;
};

static uint32_t rd32(const uint8_t *p)
{
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Checks the file header; fills up to max records; returns how many. */
static uint32_t pcap_parse(const uint8_t *p, size_t len, struct rec *out, uint32_t max)
{
  cr_assert_geq(len, 24, "no pcap file header (%zu bytes)", len);
  cr_assert_eq(rd32(p), 0xa1b2c3d4u, "pcap magic (host order, microseconds)");
  uint16_t major, minor;
  memcpy(&major, p + 4, 2);
  memcpy(&minor, p + 6, 2);
  cr_assert_eq(major, 2);
  cr_assert_eq(minor, 4);
  cr_assert_eq(rd32(p + 16), 65535u, "snaplen");
  cr_assert_eq(rd32(p + 20), 1u, "LINKTYPE_ETHERNET");
  uint32_t n = 0;
  size_t off = 24;
  while (off < len) {
    cr_assert_leq(off + 16, len, "a truncated record header");
    struct rec r = {.sec = rd32(p + off), .len = rd32(p + off + 8), .orig = rd32(p + off + 12)};
    cr_assert_lt(rd32(p + off + 4), 1000000u, "microseconds");
    cr_assert_leq(r.len, r.orig);
    cr_assert_leq(off + 16 + r.len, len, "a truncated record");
    r.p = p + off + 16;
    if (n < max)
      out[n] = r;
    n++;
    off += 16 + r.len;
  }
  return n;
}

/* Records of ethertype type (0 = any) with source src (NULL = any),
 * destination dst (NULL = any) and byte 14 mark (-1 = any). */
static uint32_t count(const struct rec *r, uint32_t n, uint16_t type, const uint8_t *src,
                      const uint8_t *dst, int mark)
{
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (r[i].len < 15)
      continue;
    uint16_t t = (uint16_t)(r[i].p[12] << 8 | r[i].p[13]);
    if ((type && t != type) || (src && memcmp(r[i].p + 6, src, 6) != 0) ||
        (dst && memcmp(r[i].p, dst, 6) != 0) || (mark >= 0 && r[i].p[14] != mark))
      continue;
    k++;
  }
  return k;
}

#endif
