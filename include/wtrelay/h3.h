/*
 * h3: HTTP/3 for WebTransport, per QUIC connection, both roles.
 *
 * Owns: our control stream and SETTINGS, the peer's control/QPACK/unknown
 * uni streams (RFC 9114: unknown types and frames ignored), the request
 * stream that carries the extended CONNECT (answered 200, or an error
 * status for anything else: 414 for a room or query longer than the
 * session keeps, 400 for a room with a control byte), capsules on that stream, and the quarter
 * stream id framing of datagrams. One WebTransport session per connection
 * (all the bavy protocol needs); a second CONNECT gets 429.
 * Talks to: quic below (struct quic_app_ops is implemented here) and one
 * application above (struct h3_app_ops: the relay, or the native client).
 * Never: knows what a datagram payload means.
 */
#ifndef WTRELAY_H3_H
#define WTRELAY_H3_H

#include <nghttp3/nghttp3.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "wtrelay/capsule.h"
#include "wtrelay/counter.h"
#include "wtrelay/h3_frame.h"
#include "wtrelay/h3_qpack.h"
#include "wtrelay/memcount.h"
#include "wtrelay/quic.h"
#include "wtrelay/session.h"
#include "wtrelay/timer.h"

struct h3_conn;
struct h3_endpoint;

/* A WebTransport session: what the relay sees of it is `base` (path
 * without the query: the room, query, origin, never cut on the server;
 * app_data; the session operations, which h3 fills). */
struct h3_session {
  struct session base;
  struct h3_conn *hc;
  int64_t sid; /* CONNECT stream id; datagrams carry sid / 4 */
  bool open;   /* 200 sent (server) or received (client) */
  bool closed;
};

struct h3_app_ops {
  /* Server: an extended CONNECT arrived. Return the HTTP status to answer
   * (200 opens the session). */
  int (*on_session_request)(void *app, struct h3_session *s);
  /* Client: the server answered our CONNECT with `status`. */
  void (*on_session_ready)(void *app, struct h3_session *s, int status);
  /* One datagram payload of the session (prefix stripped), valid during the
   * call. */
  void (*on_session_datagram)(void *app, struct h3_session *s, const uint8_t *data, size_t len);
  /* The session ended (peer close capsule, FIN, reset, or the connection
   * went away). Called once; the app must drop its references to s. */
  void (*on_session_closed)(void *app, struct h3_session *s, uint32_t code, const char *reason);
  /* Client: a connection ended before any session opened (handshake or
   * certificate failure, refused connection). */
  void (*on_conn_failed)(void *app, struct quic_conn *qc);
  /* Client, optional: the :path (with query) to CONNECT to on this
   * connection; NULL = the endpoint's target path. */
  const char *(*client_path)(void *app, struct quic_conn *qc);
  /* Optional: a datagram sent with h3_session_send_id was acknowledged by
   * the peer's QUIC stack (acked) or declared lost. */
  void (*on_session_datagram_ack)(void *app, struct h3_session *s, uint64_t id, bool acked);
};

struct h3_counters {
  uint64_t sessions_opened, sessions_closed, requests_rejected;
  uint64_t dgrams_in, dgrams_out, dgrams_unknown_session, dgrams_bad_prefix;
  uint64_t dgrams_send_failed;
  uint64_t streams_refused, unknown_streams, unknown_frames, capsules_skipped;
  uint64_t protocol_errors, close_capsules_in, goaways_in;
  /* CONNECTs refused for their :path (also in requests_rejected): a room
   * with a control byte (400), a room or query too long for the session
   * (414) */
  uint64_t refused_room_control, refused_path_too_long, refused_query_too_long;
};

/* What the client sends in its CONNECT. */
struct h3_client_target {
  char authority[256];
  char path[512];
  char origin[256];
};

struct h3_endpoint {
  struct quic_endpoint *quic;
  bool is_server;
  const struct h3_app_ops *ops;
  void *app;
  struct h3_conn *conns; /* one per quic connection slot */
  uint32_t nconns;
  struct timer_heap *timers;
  struct h3_client_target target;
  struct log_ratelimit rl;
  struct h3_counters ctr;
  /* the connections' QPACK state is allocated through nghttp3_mem, which
   * counts it in nghttp3_bytes (this worker's only) */
  struct memcount nghttp3_bytes;
  nghttp3_mem nghttp3_mem;
  /* frame readers' buffers, held only while a split frame is gathered */
  struct memcount buf_bytes;
};

/* The quic_app_ops the quic endpoint must be created with (ctx = h3). */
extern const struct quic_app_ops h3_quic_ops;

int h3_endpoint_init(struct h3_endpoint *h3, bool is_server, uint32_t max_conns,
                     struct timer_heap *timers, const struct h3_app_ops *ops, void *app);
/* Binds the quic endpoint once it exists (quic and h3 point at each other). */
void h3_endpoint_bind(struct h3_endpoint *h3, struct quic_endpoint *quic);
void h3_endpoint_fini(struct h3_endpoint *h3);
/* sizeof the per-connection state (one per quic connection slot), for the
 * memory gauges. */
size_t h3_conn_size(void);
/* Bytes the connections' frame readers hold now (split frames). */
uint64_t h3_buffer_bytes(const struct h3_endpoint *h3);
/* Server shutdown: GOAWAY and a CLOSE_WEBTRANSPORT_SESSION on every
 * session. The caller closes the QUIC connections a moment later. */
void h3_endpoint_shutdown(struct h3_endpoint *h3, uint32_t code, const char *reason);

#define H3_DGRAM_IOV_MAX 4
/* Sends one datagram on the session: quarter stream id + iov (at most
 * H3_DGRAM_IOV_MAX entries). Returns 0 or a negative errno from
 * quic_conn_send_datagram. */
int h3_session_send(struct h3_session *s, const struct iovec *iov, int iovcnt);
/* The same, with a nonzero id reported through on_session_datagram_ack:
 * whether the peer is still there (its QUIC stack acknowledges). */
int h3_session_send_id(struct h3_session *s, const struct iovec *iov, int iovcnt, uint64_t id);
/* Low priority (QUIC_DGRAM_LOW): the datagram may take at most half of the
 * connection's datagram queue; past that it is dropped (-ENOBUFS, counted)
 * and the rest of the queue stays for ordinary datagrams. */
#define H3_DGRAM_LOW QUIC_DGRAM_LOW
/* h3_session_send with flags (0 or H3_DGRAM_LOW). */
int h3_session_send_flags(struct h3_session *s, const struct iovec *iov, int iovcnt,
                          unsigned flags);
/* The session's connection's probe timeout (ns), 0 when it has none. */
uint64_t h3_session_pto(const struct h3_session *s);
/* Largest payload (after the prefix) that fits one datagram now. */
size_t h3_session_max_datagram(const struct h3_session *s);
/* Ends the session with a CLOSE_WEBTRANSPORT_SESSION capsule and FIN, then
 * closes the QUIC connection shortly after. */
void h3_session_close(struct h3_session *s, uint32_t code, const char *reason);
struct quic_conn *h3_session_quic(const struct h3_session *s);
void h3_session_remote_str(const struct h3_session *s, char *buf, size_t cap);
/* The client behind the session (quic_conn_client_key), 0 when gone. */
uint64_t h3_session_client_key(const struct h3_session *s);

/* The counters' table (wtrelay/counter.h): /metrics and the exit log
 * are written from it. */
extern const struct counter_table h3_counter_table;

#endif
