/*
 * wsc: the native client's WebSocket connections (the relay's fallback
 * transport, ws_listen.h): TCP connect, TLS (tls_stream, the relay's
 * certificate pinned or a CA checked), the Upgrade on the room's path,
 * then one bavy datagram payload per binary message. A connection is a
 * struct session (wtrelay/session.h), so the client sends through it as
 * through a WebTransport session.
 *
 * Owns: a fixed table of connections, each with its TLS buffers and its
 * framing while in use; all socket I/O on the owner's io_uring (user op
 * IO_OP_WSC: connect, one recv and one send in flight per connection).
 * Talks to: its owner through struct wsc_ops (opened, message, closed).
 * Never: knows bavy (the owner does) or QUIC.
 */
#ifndef WTRELAY_WSC_H
#define WTRELAY_WSC_H

#include <stdbool.h>
#include <stdint.h>

#include "wtrelay/io.h"
#include "wtrelay/session.h"
#include "wtrelay/timer.h"
#include "wtrelay/tls.h"
#include "wtrelay/ws.h"

#define WSC_HEAD_MAX 4096
#define WSC_MSG_MAX 9217 /* the client's largest frame + the type byte */
#define WSC_TIMEOUT_NS (10ull * 1000000000ull)

struct wsc;

struct wsc_ops {
  /* The Upgrade's outcome: 200 (open), another HTTP status, or a negative
   * errno (connect, TLS or protocol failure). Not open: closed already. */
  void (*on_open)(void *ctx, struct wsc *w, int status);
  /* One message (a datagram payload), borrowed for the call. */
  void (*on_message)(void *ctx, struct wsc *w, const uint8_t *data, size_t len);
  /* An open connection ended (called once). */
  void (*on_closed)(void *ctx, struct wsc *w, uint32_t code, const char *reason);
};

enum wsc_state { WSC_FREE, WSC_CONNECTING, WSC_TLS, WSC_UPGRADE, WSC_OPEN, WSC_CLOSING };

struct wsc_table;

struct wsc {
  struct session sess;
  struct wsc_table *t;
  void *user; /* the owner's */
  int fd;
  uint16_t gen;
  uint8_t st; /* enum wsc_state */
  bool reading, sending, connecting, ending, reported_open;
  union io_sockaddr remote;
  socklen_t remotelen;
  struct tls_stream tls;
  bool tls_ok;
  char key[25];
  char host[256];
  char target[512];
  uint8_t *head; /* the answer's head while it is read */
  size_t headlen;
  struct ws_conn ws;
  bool ws_ok;
  uint64_t deadline_ns; /* connect + TLS + Upgrade, or the close */
};

struct wsc_table {
  struct io *io;
  struct timer_heap *timers;
  uint64_t *now;
  const struct wsc_ops *ops;
  void *ctx;
  struct wsc *w;
  uint32_t n;
  uint8_t *plain, *msg; /* shared, used synchronously */
  struct timer sweep;
};

int wsc_table_init(struct wsc_table *t, struct io *io, struct timer_heap *timers, uint64_t *now,
                   uint32_t n, const struct wsc_ops *ops, void *ctx);
void wsc_table_fini(struct wsc_table *t);

/* Starts connection `idx` of the table toward remote: TLS to server_name
 * checked against pin (32 bytes) or the system's CAs, then GET target
 * with Host: host. 0 (on_open reports the outcome) or a negative errno. */
int wsc_connect(struct wsc_table *t, uint32_t idx, const union io_sockaddr *remote,
                socklen_t remotelen, const char *server_name, const char *host, const char *target,
                const uint8_t *pin, void *user);
/* Drops a connection at once, without a close handshake and without
 * on_closed (the owner gave up on it). */
void wsc_abort(struct wsc *w);

#endif
