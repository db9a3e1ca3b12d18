/*
 * ws: the WebSocket side of a bavy session (issue 20's fallback for
 * networks that block UDP): the opening handshake (RFC 6455 4.2) checked
 * on a parsed HTTP/1.1 request (http1.h) and answered, and a connection's
 * framing through Debian's libwslay, without I/O of its own.
 *
 * A connection is a byte pump: the caller feeds what it read from the
 * peer (after TLS) into ws_conn_input, which hands each whole binary
 * message to ops->on_message (one bavy datagram payload: type byte +
 * body), answers pings, and runs the close handshake; the caller queues
 * messages with ws_conn_send and drains the bytes to write with
 * ws_conn_output. Bounds: a received message longer than max_msg closes
 * the connection with 1009 (message too big); the send queue holds at
 * most max_queue bytes of messages not yet serialised, beyond which
 * ws_conn_send refuses (-ENOBUFS: the caller drops and counts, so a peer
 * that does not read never makes the relay hold frames without bound);
 * ws_conn_output never writes beyond the caller's buffer (what does not
 * fit stays queued). Text messages are refused with 1003 (unsupported
 * data): bavy is binary.
 *
 * wslay allocates each queued message and the fragments of a message it
 * is receiving (bounded by max_msg and max_queue above); nothing else is
 * allocated after ws_conn_init.
 *
 * Never: touches sockets, TLS, sessions or the switch.
 */
#ifndef WTRELAY_WS_H
#define WTRELAY_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wtrelay/http1.h"

#define WS_PROTOCOL "bavy"

/* ---- the opening handshake ---- */

struct ws_upgrade {
  struct http1_str target; /* the request target (path and query), borrowed */
  struct http1_str origin; /* Origin, len 0 when absent */
  bool bavy;               /* the client offered the bavy subprotocol */
  char accept[29];         /* Sec-WebSocket-Accept, NUL-terminated */
};

/* Whether r is a WebSocket opening handshake we accept: 0 and *u, or the
 * HTTP status to refuse it with: 405 (not GET), 400 (no Upgrade:
 * websocket / Connection: upgrade / valid Sec-WebSocket-Key, a field
 * given twice, HTTP/1.0, no Host), 426 (Sec-WebSocket-Version not 13). */
int ws_upgrade_check(const struct http1_req *r, struct ws_upgrade *u);

/* The 101 Switching Protocols answer to u (with Sec-WebSocket-Protocol:
 * bavy when the client offered it): its length, or -ENOSPC. */
int ws_upgrade_response(char *out, size_t cap, const struct ws_upgrade *u);

/* A refusal with `status` and the text `why` as body, Connection: close
 * (426 also names version 13): its length, or -ENOSPC. */
int ws_refusal(char *out, size_t cap, int status, const char *why);

/* The client's side: an Upgrade request for target on host with a fresh
 * key (kept in key, 25 bytes, to check the answer) and the bavy
 * subprotocol; its length or -ENOSPC. */
int ws_client_request(char *out, size_t cap, const char *host, const char *target, char key[25]);
/* The server's answer head (through its empty line): 0 for a 101 whose
 * Sec-WebSocket-Accept matches key, the status of any other answer, or
 * -EPROTO (malformed, wrong accept value). */
int ws_client_check(const uint8_t *head, size_t len, const char key[25]);

/* ---- a connection's messages ---- */

struct ws_conn_ops {
  /* One whole binary message from the peer (borrowed for the call). */
  void (*on_message)(void *ctx, const uint8_t *data, size_t len);
  /* Optional: a pong came back (the answer to ws_conn_ping). */
  void (*on_pong)(void *ctx);
};

struct ws_conn_params {
  size_t max_msg;   /* longest message accepted from the peer */
  size_t max_queue; /* bytes of messages queued toward the peer */
};

struct ws_conn_counters {
  uint64_t msgs_in, msgs_out;
  uint64_t text_refused; /* text messages (closed with 1003) */
  uint64_t queue_full;   /* messages refused by ws_conn_send */
  uint64_t pings, pongs; /* received */
  uint64_t proto_errors; /* malformed frames (closed with 1002) */
};

struct ws_conn {
  void *ev; /* wslay_event_context_ptr */
  const struct ws_conn_ops *ops;
  void *ctx;
  struct ws_conn_params p;
  /* the current ws_conn_input and ws_conn_output calls' buffers */
  const uint8_t *in;
  size_t inlen;
  uint8_t *out;
  size_t outlen, outcap;
  struct ws_conn_counters ctr;
};

/* A server-side connection after a 101 was sent. 0 or -ENOMEM. */
int ws_conn_init(struct ws_conn *c, const struct ws_conn_params *p, const struct ws_conn_ops *ops,
                 void *ctx);
/* The same for the client side (its frames masked), after a 101 came. */
int ws_conn_init_client(struct ws_conn *c, const struct ws_conn_params *p,
                        const struct ws_conn_ops *ops, void *ctx);
void ws_conn_fini(struct ws_conn *c);

/* Feeds len bytes read from the peer: whole messages go to on_message,
 * pings are answered (queued pongs), a close is answered. 0, or -EPROTO
 * once the peer broke the protocol (a close is queued: drain it with
 * ws_conn_output, then close the transport). */
int ws_conn_input(struct ws_conn *c, const uint8_t *data, size_t len);

/* Queues one binary message of len bytes: 0, -ENOBUFS (queue full,
 * counted), -EPIPE (closing). */
int ws_conn_send(struct ws_conn *c, const uint8_t *data, size_t len);

/* Queues a ping (keep-alive) or a close with code and reason. 0 or
 * -EPIPE (a close was already sent). */
int ws_conn_ping(struct ws_conn *c);
int ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason);

/* Writes the queued frames' bytes into out (at most cap): the count. */
size_t ws_conn_output(struct ws_conn *c, uint8_t *out, size_t cap);

/* Bytes of messages queued and not yet written by ws_conn_output. */
size_t ws_conn_queued(const struct ws_conn *c);

/* Whether a close was sent or received. */
bool ws_conn_closing(const struct ws_conn *c);

/* Whether the connection is over: a close was sent and received (or
 * sent after a protocol error) and nothing is left to write. */
bool ws_conn_done(const struct ws_conn *c);

#endif
