/*
 * quic: QUIC endpoints on ngtcp2 0.12 (server and client), one per worker.
 *
 * Owns: the connection pool (fixed, sized from config), the CID table that
 * routes packets to connections, stateless reset and version negotiation,
 * per-connection timers (in the worker's heap), the write loop that puts
 * packets into the io tx arena (GSO batches), closing and draining.
 * Talks to: io below (packets in, packets out), and one application above
 * through struct quic_app_ops (the h3 layer). It knows nothing of HTTP/3.
 *
 * Stream data written by the application is copied into a small per-stream
 * buffer that lives until the stream closes (ngtcp2 needs the bytes until
 * acknowledged; our streams carry only SETTINGS, HEADERS and capsules).
 * Datagrams are written straight into a packet when possible
 * (quic_conn_send_datagram), else queued in a bounded per-connection queue
 * drawing from an endpoint-wide pool; a full queue drops and counts. A
 * low-priority datagram (QUIC_DGRAM_LOW) may use only half of that queue,
 * so what the application marks low never crowds out the rest.
 *
 * Loss recovery of DATAGRAM-only flights. ngtcp2 0.12.1 counts a packet
 * that carries only DATAGRAM frames as ack-eliciting but not as
 * PTO-eliciting (upstream fixed this in 0.14, "Make DATAGRAM
 * PTO-eliciting"). With only such packets in flight it arms no loss
 * timer; if the acknowledgements of the newest packets are lost while the
 * congestion window is full, nothing is ever sent again (ACK-only and
 * keep-alive packets are held by the window too): the datagram queue
 * fills, every later datagram is dropped, a guest's TCP backs off to its
 * maximum RTO and the flow stalls for good. So the application names an
 * "anchor" (quic_conn_set_anchor): a tiny frame on one of its own streams
 * that the peer ignores (an HTTP/3 reserved frame type on the control
 * stream). A datagram packet carries one whenever the bytes in flight
 * reach half the congestion window; then, whenever the window is full
 * (by sending, or because a loss shrank it), the newest packet in flight
 * is PTO-eliciting, the PTO fires when its ACK is lost, and ngtcp2's
 * probes (written with the queued datagrams) bring the peer's ACK back.
 */
#ifndef WTRELAY_QUIC_H
#define WTRELAY_QUIC_H

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "wtrelay/counter.h"
#include "wtrelay/hist.h"
#include "wtrelay/io.h"
#include "wtrelay/log.h"
#include "wtrelay/memcount.h"
#include "wtrelay/timer.h"
#include "wtrelay/tls.h"
#include "wtrelay/worker.h"

#define QUIC_SCID_LEN 16
#define QUIC_SOUT_SLOTS 6
#define QUIC_SOUT_SIZE 1024
#define QUIC_DGRAM_BUF 1600
#define QUIC_DGRAM_IOV_MAX 8
/* Bytes a packet keeps free beside a datagram for an anchor STREAM frame:
 * type, stream id (< 64), offset (< 2^30), length, a 2-byte unit. */
#define QUIC_ANCHOR_ROOM 10

struct quic_conn;
struct quic_endpoint;

struct quic_app_ops {
  /* Handshake completed (both roles). Return <0 to close the connection. */
  int (*on_handshake_done)(void *app, struct quic_conn *c);
  /* In-order stream data; `fin` marks the end. Return <0 to close. */
  int (*on_stream_data)(void *app, struct quic_conn *c, int64_t sid, const uint8_t *data,
                        size_t len, bool fin);
  /* Peer reset the stream or it closed; app_err is the peer's code. */
  void (*on_stream_close)(void *app, struct quic_conn *c, int64_t sid, uint64_t app_err);
  /* One DATAGRAM frame payload, valid during the call only. */
  void (*on_datagram)(void *app, struct quic_conn *c, const uint8_t *data, size_t len);
  /* The connection is going away; drop every reference to c. */
  void (*on_conn_closed)(void *app, struct quic_conn *c);
  /* Optional: a datagram sent with a nonzero id was acknowledged by the
   * peer (acked) or declared lost (!acked). */
  void (*on_datagram_ack)(void *app, struct quic_conn *c, uint64_t id, bool acked);
};

enum quic_retry {
  QUIC_RETRY_AUTO = 0, /* Retry once handshakes in progress pass retry_threshold */
  QUIC_RETRY_ALWAYS,   /* every new client proves its address first */
  QUIC_RETRY_NEVER,
};

/* Hands a packet whose destination CID names another worker to that
 * worker (bytes, peer and local address copied; the owner reads it). */
typedef void (*quic_handoff_fn)(void *ctx, uint32_t from, uint32_t to, const uint8_t *pkt,
                                size_t len, const union io_sockaddr *peer, socklen_t peerlen,
                                const struct io_local *local);

/* What the server endpoints of one process's workers share, so that any of
 * them answers and checks alike: the stateless-reset secret (a reset token
 * made by one worker is the one another would make) and the key the
 * address-validation token secrets are derived from (per rotation period,
 * HMAC-SHA-256(token_key, period number); every worker derives the same).
 * Read-only once the workers run. The server CID's first byte names the
 * worker (< nworkers); with nworkers > 1 a short-header or Handshake packet
 * for an unknown CID that names another worker goes to `handoff` and is
 * never answered here (no stateless reset, no VN for another's CID). */
/* Counts every worker's server endpoint shares (quic_shared.counts), so
 * that the process's bounds hold for the process and not per worker:
 * connections (--max-sessions, quic_params.max_conns), handshakes in
 * progress (the Retry threshold) and connections of unvalidated addresses
 * (--max-unvalidated). Atomics owned by the process layer; an endpoint
 * reserves a connection and an unvalidated slot with one fetch-add each
 * (given back when over the bound), so N workers never overshoot. */
struct quic_counts {
  _Atomic uint32_t conns, handshaking, unvalidated;
};

struct quic_shared {
  uint8_t reset_secret[32];
  uint8_t token_key[32];
  uint32_t nworkers;
  struct quic_iptab *ips;     /* per-address counts over every worker; NULL = per endpoint */
  struct quic_counts *counts; /* connection counts over every worker; NULL = per endpoint */
  quic_handoff_fn handoff;
  void *handoff_ctx;
};

struct quic_params {
  const struct quic_shared *shared; /* NULL: secrets of this endpoint alone (clients, tests) */
  uint32_t max_conns;
  uint32_t max_conns_per_ip; /* counted over validated addresses only */
  enum quic_retry retry;
  uint32_t retry_threshold; /* handshakes in progress before auto Retry (32) */
  uint32_t max_unvalidated; /* connections of unvalidated addresses (max_conns / 4) */
  uint64_t unvalidated_handshake_timeout_ns; /* 3 s */
  uint32_t dgram_pool;                       /* datagram buffers for queued sends */
  uint32_t dgram_queue;                      /* queued datagrams per connection */
  uint64_t idle_timeout_ns;                  /* 180 s */
  uint64_t keep_alive_ns;                    /* 15 s */
  uint64_t handshake_timeout_ns;             /* 10 s */
};

struct quic_counters {
  uint64_t pkts_in, pkts_dropped_unknown, pkts_dropped_full, pkts_short_unknown;
  uint64_t pkts_handed_off; /* sent to the worker their DCID names (quic_shared.handoff) */
  uint64_t conns_accepted, conns_refused_limit, conns_refused_ip, conns_failed;
  uint64_t conns_tls_failed; /* TLS handshake failed here (e.g. pinned hash mismatch) */
  /* the client closed during the handshake with a TLS alert: about our
   * certificate (a stale serverCertificateHashes hash, an untrusted CA),
   * or another one */
  uint64_t client_alert_cert, client_alert_other;
  uint64_t conns_closed, conns_idle, conns_draining, handshakes;
  uint64_t version_negotiations, stateless_resets, read_errors, write_errors;
  uint64_t dgrams_in, dgrams_out, dgrams_direct, dgrams_queued, dgrams_queue_full;
  uint64_t dgrams_queue_low_full; /* low-priority datagrams refused at a half-full queue */
  uint64_t dgrams_too_big, dgrams_pool_empty, dgrams_lost;
  uint64_t stream_bytes_in, sout_overflow;
  uint64_t anchors; /* anchor units written beside datagrams */
  /* address validation */
  uint64_t retries_sent, tokens_retry_ok, tokens_regular_ok, tokens_bad, new_tokens_sent;
  uint64_t conns_refused_unvalidated;                   /* the unvalidated cap was full */
  uint64_t bytes_in_unvalidated, bytes_out_unvalidated; /* before the address was validated */
  uint64_t malloc_trims;
  uint64_t tls_released; /* server TLS sessions freed after the handshake */
};

/* Connections counted per source address (validated addresses only): a
 * chained hash over a fixed pool, one entry per distinct address. */
struct quic_ip_entry {
  uint32_t next; /* index+1, 0 = end */
  uint32_t count;
  uint8_t family, len;
  uint8_t addr[16];
};

/* Per-address connection counts: a chained hash over a fixed entry pool.
 * Each endpoint has its own, or the process shares one between its
 * workers' endpoints (shared: every use under lock; only validation,
 * migration and deletion of a connection touch it, never a datagram). */
struct quic_iptab {
  uint32_t *buckets;
  uint32_t nbuckets;
  struct quic_ip_entry *ips;
  uint32_t free; /* index+1 free list */
  uint64_t key;
  bool shared;
  pthread_mutex_t lock;
};

/* max_entries: the connections that may be counted at once. 0 or -ENOMEM. */
int quic_iptab_init(struct quic_iptab *t, uint32_t max_entries, bool shared);
void quic_iptab_fini(struct quic_iptab *t);

struct quic_sout {
  int64_t sid;
  uint32_t len, sent;
  bool used, fin, fin_sent;
  uint8_t buf[QUIC_SOUT_SIZE];
};

struct quic_dgram {
  struct quic_dgram *next;
  uint64_t id; /* 0, or reported through on_datagram_ack */
  uint32_t len;
  uint8_t data[QUIC_DGRAM_BUF];
};

enum quic_conn_state {
  QUIC_CONN_FREE = 0,
  QUIC_CONN_ACTIVE,
  QUIC_CONN_CLOSING,  /* we sent CONNECTION_CLOSE; resend on input */
  QUIC_CONN_DRAINING, /* peer closed; stay silent */
};

struct quic_conn {
  struct quic_endpoint *ep;
  uint32_t handle;
  enum quic_conn_state state;
  ngtcp2_conn *conn;
  gnutls_session_t tls;
  ngtcp2_crypto_conn_ref conn_ref;
  struct timer timer;
  union io_sockaddr remote;
  socklen_t remotelen;
  struct io_local local;
  bool has_local;
  bool dirty, in_read, handshake_done;
  bool validated;                 /* the peer's address is proven (token or handshake) */
  bool ip_counted;                /* counted in the per-address table under counted_ip */
  bool hs_counted, unval_counted; /* in the endpoint's nhandshaking / nunvalidated */
  bool proc_counted;              /* in quic_shared.counts->conns */
  bool refuse;                    /* close with CONNECTION_REFUSED at the next write */
  union io_sockaddr counted_ip;
  bool close_pending; /* app asked to close: write CONNECTION_CLOSE */
  uint64_t close_app_err;
  uint8_t *close_pkt; /* closing period: the CONNECTION_CLOSE packet */
  size_t close_pktlen;
  uint32_t close_rx;   /* packets received in the closing period */
  uint32_t dirty_next; /* index+1 in dirty list, 0 = end */
  struct quic_sout sout[QUIC_SOUT_SLOTS];
  struct quic_dgram *dq_head, *dq_tail;
  uint32_t dq_len;
  /* anchor: a unit of the application's own bytes (static storage) on one
   * of its streams; anchor_off > 0 while a unit is written only in part */
  const uint8_t *anchor_unit;
  int64_t anchor_sid;
  uint8_t anchor_len, anchor_off;
  uint64_t created_ns;
  void *app_data; /* owned by the application layer */
};

struct quic_cid_entry {
  uint32_t next; /* index+1 of next in bucket chain, 0 = end */
  uint32_t conn; /* handle */
  uint8_t len;
  uint8_t cid[NGTCP2_MAX_CIDLEN];
};

struct quic_endpoint {
  struct worker *w;
  struct io_udp_sock *udp;
  const struct tls_cert *cert;
  bool is_server;
  struct quic_params p;
  const struct quic_app_ops *ops;
  void *app;
  struct quic_conn *conns;
  uint32_t *free_conns;
  uint32_t nfree;
  uint32_t nactive;
  uint32_t dirty_head; /* index+1 */
  /* CID table: chained hash over a fixed entry pool */
  uint32_t *buckets;
  uint32_t nbuckets;
  struct quic_cid_entry *cids;
  uint32_t cid_free; /* index+1 free list through next */
  uint64_t hash_key[2];
  uint8_t reset_secret[32];
  /* address-validation tokens (Retry and NEW_TOKEN): a secret rotated
   * every hour; tokens made with the previous one stay valid */
  uint8_t token_secret[32], token_secret_prev[32];
  uint64_t token_rotated_ns;
  uint64_t token_period; /* shared secrets: the rotation period token_secret is derived for */
  uint32_t nhandshaking, nunvalidated;
  struct quic_counts *counts; /* the process's (quic_shared.counts), or NULL */
  /* per-address connection counts: own_ips, or the process's (quic_shared.ips) */
  struct quic_iptab own_ips;
  struct quic_iptab *ipt;
  uint32_t deleted_since_trim;
  uint64_t last_trim_ns;
  /* datagram buffer pool */
  struct quic_dgram *dpool;
  struct quic_dgram *dfree;
  uint32_t dpool_next; /* buffers below it have been handed out (pages touched as used) */
  bool accepting;
  struct log_ratelimit rl;
  struct quic_counters ctr;
  struct hist handshake_hist; /* accepted to handshake completed (server) */
  /* ngtcp2 allocates every connection's state through ngtcp2_mem, which
   * counts it in ngtcp2_bytes (this worker's only) */
  struct memcount ngtcp2_bytes;
  ngtcp2_mem ngtcp2_mem;
};

void quic_params_default(struct quic_params *p);
/* Sets up an endpoint on `udp` (borrowed; its receive callback must be
 * quic_endpoint_on_packet with ep as ctx). cert may be NULL for a client. */
int quic_endpoint_init(struct quic_endpoint *ep, struct worker *w, struct io_udp_sock *udp,
                       const struct tls_cert *cert, bool is_server, const struct quic_params *p,
                       const struct quic_app_ops *ops, void *app);
void quic_endpoint_fini(struct quic_endpoint *ep);
/* io receive callback. */
void quic_endpoint_on_packet(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                             const union io_sockaddr *peer, socklen_t peerlen,
                             const struct io_local *local);
/* Writes every connection that has something to send; call once per turn. */
void quic_endpoint_turn(struct quic_endpoint *ep, uint64_t now);
/* Stop accepting; close every connection with app_err (H3_NO_ERROR). */
void quic_endpoint_shutdown(struct quic_endpoint *ep, uint64_t app_err);
uint32_t quic_endpoint_active(const struct quic_endpoint *ep);

/* Connections counted for the source address of `a` (validated only). */
uint32_t quic_endpoint_conns_of(struct quic_endpoint *ep, const union io_sockaddr *a);

/* Client: start a connection to remote. pin_sha256 may be NULL (CA). */
int quic_client_connect(struct quic_endpoint *ep, const union io_sockaddr *remote,
                        socklen_t remotelen, const char *server_name, const uint8_t *pin_sha256,
                        struct quic_conn **out);

/* Stream API for the application. All return 0 or negative errno. */
int quic_conn_open_uni(struct quic_conn *c, int64_t *sid);
int quic_conn_open_bidi(struct quic_conn *c, int64_t *sid);
/* Copies data into the stream's send buffer (-ENOBUFS when it does not fit). */
int quic_conn_stream_send(struct quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
                          bool fin);
/* Abort both directions of a stream with an application error code. */
int quic_conn_stream_reset(struct quic_conn *c, int64_t sid, uint64_t app_err);
/* Consumed bytes of a stream: extend flow control windows. */
void quic_conn_stream_consumed(struct quic_conn *c, int64_t sid, size_t n);
/* Sends one datagram made of iov (gathered). 0 when sent or queued;
 * -EMSGSIZE when larger than the peer accepts; -ENOBUFS when the queue or
 * pool is full (dropped and counted). */
int quic_conn_send_datagram(struct quic_conn *c, const struct iovec *iov, int iovcnt);
/* The same with an id (nonzero): its acknowledgement or loss is reported
 * through on_datagram_ack, a liveness proof of the peer. */
int quic_conn_send_datagram_id(struct quic_conn *c, const struct iovec *iov, int iovcnt,
                               uint64_t id);
/* Low priority: queued only while the connection's datagram queue is
 * less than half full (else -ENOBUFS, counted as dgrams_queue_low_full),
 * so such datagrams never take the room ordinary ones need. */
#define QUIC_DGRAM_LOW 1u
/* quic_conn_send_datagram_id with flags (0 or QUIC_DGRAM_LOW). */
int quic_conn_send_datagram_flags(struct quic_conn *c, const struct iovec *iov, int iovcnt,
                                  uint64_t id, unsigned flags);
/* The connection's current probe timeout (ngtcp2's PTO), ns. */
uint64_t quic_conn_pto(struct quic_conn *c);
/* The connection ID this side sends to (the peer's current one) into out
 * (at most cap bytes): its length, 0 when none yet. A client of a relay
 * with several workers learns the worker from its first byte. */
size_t quic_conn_dcid(const struct quic_conn *c, uint8_t *out, size_t cap);
/* Names the anchor (see "Loss recovery" above): `unit` (static storage,
 * 1..4 bytes, a complete frame the peer ignores) may be written on stream
 * `sid` of ours any number of times, between whole writes of the stream's
 * own data. Call after the stream's first bytes were given. */
void quic_conn_set_anchor(struct quic_conn *c, int64_t sid, const uint8_t *unit, size_t len);
/* Largest datagram payload that fits one packet to this peer now (with
 * room for an anchor when one is set). */
size_t quic_conn_max_datagram(struct quic_conn *c);
/* Closes the connection with an application error (CONNECTION_CLOSE). */
void quic_conn_close(struct quic_conn *c, uint64_t app_err);
/* Starts a QUIC key update (RFC 9001 section 6): the next packets go with
 * the next key phase. 0, -EAGAIN while the previous one is unconfirmed,
 * -ENOTCONN when the connection is closing. */
int quic_conn_key_update(struct quic_conn *c);
void quic_conn_remote_str(const struct quic_conn *c, char *buf, size_t cap);
/* io_sockaddr_client_key of the connection's current peer address. */
uint64_t quic_conn_client_key(const struct quic_conn *c);

/* The counters' table (wtrelay/counter.h): /metrics and the exit log
 * are written from it. */
extern const struct counter_table quic_counter_table;

#endif
