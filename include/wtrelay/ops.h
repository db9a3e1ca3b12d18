/*
 * ops: the operations HTTP/1.1 listener (/metrics, /healthz, /readyz,
 * /cert-hash, /status and /) on TCP, through the worker's io_uring.
 *
 * Owns: one listening socket (multishot accept), a fixed table of
 * connections (--ops-max-conns), each with a bounded request buffer
 * (OPS_REQ_MAX; a request that does not fit gets 431 and the connection is
 * closed), a response buffer built per request (bounded), keep-alive and
 * pipelining, a deadline per connection (a request must arrive whole within
 * OPS_REQ_TIMEOUT, an idle keep-alive connection is closed after
 * OPS_IDLE_TIMEOUT). A full table makes room for a new connection by
 * closing the live one that has waited longest for a request (counted as
 * evicted), so probes (/healthz, /readyz) always get in while slow or idle
 * clients hold every slot. Only GET and HEAD, but for the API's paths
 * (ops_routes.api: any method, a body of Content-Length bytes); anything
 * else is 405, unknown paths 404. A path the application claims through
 * ops_stream_ops is a streamed response (packet capture): no
 * Content-Length, sent from the application's buffer as it fills, the
 * connection closed at its end; streams are never evicted.
 * Talks to: io (accept/recv/send/close SQEs, a handler for its op), the
 * application through struct ops_routes, which writes the bodies.
 * Never: knows what the counters mean.
 */
#ifndef WTRELAY_OPS_H
#define WTRELAY_OPS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wtrelay/counter.h"
#include "wtrelay/io.h"
#include "wtrelay/timer.h"

#define OPS_REQ_MAX 8192
#define OPS_RESP_MAX (4u << 20)
#define OPS_REQ_TIMEOUT_NS (10ull * 1000000000ull)
#define OPS_IDLE_TIMEOUT_NS (30ull * 1000000000ull)
/* Slots beyond --ops-max-conns for evicted connections still closing. */
#define OPS_SPARE_SLOTS 16

/* A growing text buffer with a hard bound; overflow is sticky. */
struct ops_buf {
  char *p;
  size_t len, cap, max;
  bool overflow;
};
void ops_buf_printf(struct ops_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A streamed response (GET only): the application claims a path and
 * hands the listener a source it drains until the source is done; the
 * response has no Content-Length and the connection closes after it.
 * Polled every OPS_STREAM_TICK_NS, and at once after each send. */
struct ops_stream_ops {
  /* Claims `path` (as sent, percent-encoded; query: what follows '?', ""
   * when none): 0 when it is no stream's path (404 follows); 200 with
   * *stream and *ctype set to start one, the connection's deadline
   * *max_ns from now; any other status refuses, with a text body in b. */
  int (*open)(void *ctx, const char *path, const char *query, void **stream, const char **ctype,
              uint64_t *max_ns, struct ops_buf *b);
  /* The next bytes at *p (borrowed until consume or close); 0 when none
   * now. *done: none will come. */
  size_t (*peek)(void *ctx, void *stream, const uint8_t **p, bool *done);
  /* n bytes of what peek returned were sent. */
  void (*consume)(void *ctx, void *stream, size_t n);
  /* The connection ended (done, peer gone, timeout, shutdown). */
  void (*close)(void *ctx, void *stream);
};

#define OPS_STREAM_TICK_NS (20ull * 1000000ull)

struct ops_routes {
  /* Writes the Prometheus text exposition. */
  void (*metrics)(void *ctx, struct ops_buf *b);
  /* /readyz: listening with a valid certificate. */
  bool (*ready)(void *ctx);
  /* /healthz: false when the process is stuck (a worker stopped turning
   * its loop); NULL = always healthy while the listener answers. */
  bool (*healthy)(void *ctx);
  /* Writes the /cert-hash JSON. */
  void (*cert_json)(void *ctx, struct ops_buf *b);
  /* Streamed responses; NULL = none. */
  const struct ops_stream_ops *stream;
  /* /status (page false: JSON; query: what follows '?', "" when none) and
   * / (page true: an HTML page). Writes the body, returns the HTTP status
   * (200, or 400 for a bad query). NULL = both are 404. */
  int (*status)(void *ctx, bool page, const char *query, struct ops_buf *b);
  /* The run-time API (wtrelay --ops-api): every request whose path is
   * /forwards or below, any method, with its Authorization header's value
   * ("" when none) and its body (Content-Length bytes, at most
   * OPS_BODY_MAX). Writes a JSON body, returns the HTTP status. NULL =
   * no API: those paths are 404 (405 for methods other than GET and HEAD). */
  int (*api)(void *ctx, const char *method, const char *path, const char *auth, const char *body,
             size_t bodylen, struct ops_buf *b);
};

/* Request bodies (the API's) at most; one must fit the request buffer
 * with its head. */
#define OPS_BODY_MAX 4096

struct ops_conn {
  int fd;
  bool used, reading, sending, closing, close_after;
  uint16_t gen;
  uint8_t in[OPS_REQ_MAX];
  size_t inlen;
  struct ops_buf out;
  size_t outoff;
  uint64_t deadline_ns;
  uint64_t since_ns; /* accepted, or the last response sent: waiting for a request since */
  void *stream;      /* a streamed response's source (ops_stream_ops), NULL = none */
  bool stream_body;  /* its head is sent: sends come from the source */
};

struct ops_counters {
  uint64_t accepted, refused_full, requests, responses_2xx, responses_4xx, responses_5xx;
  uint64_t too_large, timeouts, bad_requests;
  uint64_t evicted; /* live connections closed to make room for a new one */
};

struct ops {
  struct io *io;
  struct timer_heap *timers;
  uint64_t *now;
  int lfd;
  bool accept_armed;
  struct ops_conn *conns;
  uint32_t max_conns, nslots; /* live connections at most; slots (max_conns + spare) */
  uint32_t nconns, nlive;     /* slots in use; of them, not closing */
  char cors[128];
  const struct ops_routes *routes;
  void *ctx;
  struct timer sweep;
  struct timer stream_tick; /* armed while a stream is open */
  uint32_t nstreams;
  struct ops_counters ctr;
};

/* Listens on "ADDR:PORT" ("127.0.0.1:8433", "[::1]:8433", "0.0.0.0:8433").
 * Returns 0 or negative errno (-EINVAL bad address, -EADDRINUSE...). */
int ops_init(struct ops *o, struct io *io, struct timer_heap *timers, uint64_t *now,
             const char *listen, uint32_t max_conns, const char *cors_origin,
             const struct ops_routes *routes, void *ctx);
void ops_fini(struct ops *o);
/* Parses "ADDR:PORT" (IPv6 in brackets). */
int ops_parse_listen(const char *s, char *host, size_t hostcap, uint16_t *port);

/* The counters' table (wtrelay/counter.h): /metrics and the exit log
 * are written from it. */
extern const struct counter_table ops_counter_table;

#endif
