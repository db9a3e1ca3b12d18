/*
 * ws_listen: the WebSocket fallback transport of one worker: TLS over TCP
 * on the relay's port (--ws-listen), an HTTP/1.1 Upgrade on GET /ROOM,
 * then one bavy datagram payload per binary message, each connection a
 * relay session (wtrelay/session.h) like a WebTransport one: the same
 * Register/Assigned, heartbeats, port security, takeover, leases, tokens,
 * origin checks, rate limits and status.
 *
 * Owns: one listening TCP socket per worker (SO_REUSEPORT: the kernel
 * spreads connections over the workers), a fixed table of connections
 * (--ws-max-conns per worker), each with its TLS stream (tls.h: a
 * receive buffer the socket reads into and a send buffer), its request
 * head buffer until the Upgrade is answered, and its WebSocket framing
 * (ws.h, a send queue bounded by --ws-max-queue bytes). All socket I/O is
 * on the worker's ring: multishot accept, one recv and one send in flight
 * per connection.
 *
 * Bounds and timeouts: the TLS handshake and the Upgrade request must be
 * done within WS_UPGRADE_TIMEOUT (408 or a plain close otherwise); the
 * request head is at most WS_REQ_MAX bytes (431); connections per client
 * address (--ws-max-conns-per-ip, per worker) and in all (a full table
 * refuses: the socket is closed at once); a message from the client of
 * more than --max-frame-size + 1 bytes closes with 1009; a frame toward a
 * client whose queue is full is dropped and counted (the relay counts it
 * as a failed send), so a reader that never reads holds at most its queue
 * and its TLS buffer and never stalls the others; a keep-alive ping
 * after WS_PING_IDLE without traffic from the client, and the connection
 * closed after WS_IDLE_TIMEOUT without any (the relay's heartbeat timeout
 * usually ends the session first).
 *
 * Close codes: a relay close with code 0 is 1000 (normal) with the
 * relay's reason text; a nonzero code c is 4000 + (c % 1000); the
 * relay's shutdown is 1001 (going away).
 *
 * Takeover probes (a send with an id): the message is followed by a
 * ping; its pong reports the id acknowledged.
 *
 * Never: knows QUIC; touches the switch or the NAT (only through the
 * relay's session entry points).
 */
#ifndef WTRELAY_WS_LISTEN_H
#define WTRELAY_WS_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wtrelay/counter.h"
#include "wtrelay/io.h"
#include "wtrelay/log.h"
#include "wtrelay/session.h"
#include "wtrelay/timer.h"
#include "wtrelay/tls.h"
#include "wtrelay/ws.h"

#define WS_REQ_MAX 4096
#define WS_UPGRADE_TIMEOUT_NS (10ull * 1000000000ull)
#define WS_CLOSE_TIMEOUT_NS (2ull * 1000000000ull)
#define WS_PING_IDLE_NS (20ull * 1000000000ull)
#define WS_IDLE_TIMEOUT_NS (60ull * 1000000000ull)
/* the TLS stream's buffers: a whole record (16 KiB + overhead) and more */
#define WS_TLS_IN 34816
#define WS_TLS_OUT 32768

struct relay;

struct ws_listen_params {
  const char *listen; /* ADDR:PORT */
  uint32_t max_conns;
  uint32_t max_conns_per_ip; /* 0 = no cap */
  size_t max_msg;            /* longest message from a client (max frame size + 1) */
  size_t max_queue;          /* bytes queued toward one client */
};

struct ws_listen_counters {
  uint64_t accepted, refused_full, refused_per_ip;
  uint64_t tls_failed, tls_timeouts;
  uint64_t upgrades, upgrade_refused, upgrade_timeouts, req_too_large;
  uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
  uint64_t send_dropped; /* frames refused by a full queue */
  uint64_t pings_sent, idle_closed, proto_errors, text_refused;
  uint64_t closed;
};

enum ws_lconn_state { WS_ST_TLS, WS_ST_HTTP, WS_ST_OPEN, WS_ST_CLOSING };

struct ws_listen;

struct ws_lconn {
  struct session sess; /* what the relay sees */
  struct ws_listen *l;
  int fd;
  uint16_t gen;
  bool used, reading, sending, closing_fd;
  bool sess_open; /* the relay took the session (relay_session_open said 200) */
  bool ws_ok;
  uint8_t st; /* enum ws_lconn_state */
  union io_sockaddr peer;
  uint64_t client;
  struct tls_stream tls;
  char *req; /* the request head while it is read (WS_REQ_MAX) */
  size_t reqlen;
  struct ws_conn ws;
  uint64_t deadline_ns; /* the TLS/Upgrade or close deadline; 0 = none */
  uint64_t last_rx_ns;
  bool ping_out;
  uint64_t probe_id; /* a takeover probe waiting for its pong */
};

struct ws_listen {
  struct io *io;
  struct timer_heap *timers;
  uint64_t *now;
  struct relay *relay;
  struct tls_cert **cert; /* the worker's certificate for new connections (borrowed) */
  struct ws_listen_params p;
  int lfd;
  bool accept_armed;
  struct ws_lconn *conns;
  uint32_t nslots, nconns;
  uint8_t *plain; /* one record of plaintext, shared by the connections (synchronous use) */
  uint8_t *msg;   /* one message gathered for sending */
  struct timer sweep;
  struct log_ratelimit rl;
  struct ws_listen_counters ctr;
  uint16_t port; /* bound */
};

/* Listens on p->listen and serves connections into `relay`. 0 or a
 * negative errno (the address is logged by the caller). */
int ws_listen_init(struct ws_listen *l, struct io *io, struct timer_heap *timers, uint64_t *now,
                   struct relay *relay, struct tls_cert **cert, const struct ws_listen_params *p);
/* Closes every open session with 1001 (the relay is stopping). */
void ws_listen_shutdown(struct ws_listen *l);
void ws_listen_fini(struct ws_listen *l);
/* Open WebSocket sessions (the relay took them). */
uint32_t ws_listen_sessions(const struct ws_listen *l);

extern const struct counter_table ws_listen_counter_table;

#endif
