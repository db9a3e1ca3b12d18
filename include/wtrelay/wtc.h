/*
 * wtc: the native WebTransport client library (bavy protocol on top).
 *
 * One struct wtc is one client process's endpoint: its own worker (ring,
 * timers), one UDP socket, a QUIC client endpoint and the client side of
 * the h3 layer. It can hold many sessions (each its own QUIC connection) to
 * one relay URL, which is what the integration tests, wtrelay-tap and the
 * load generator need. The server is verified by a pinned SHA-256 of its
 * certificate (like serverCertificateHashes) or by the system CA store.
 */
#ifndef WTRELAY_WTC_H
#define WTRELAY_WTC_H

#include <stdbool.h>
#include <stdint.h>

#include "wtrelay/bavy.h"
#include "wtrelay/chunk.h"
#include "wtrelay/h3.h"
#include "wtrelay/quic.h"
#include "wtrelay/worker.h"
#include "wtrelay/wsc.h"

enum wtc_state {
  WTC_FREE = 0,
  WTC_CONNECTING,
  WTC_OPEN,       /* CONNECT answered 200 */
  WTC_REGISTERED, /* Assigned received */
  WTC_CLOSED,
  WTC_FAILED,
};

#define WTC_MAX_FRAME 9216

struct wtc;

/* How sessions reach the relay: WebTransport, the relay's WebSocket
 * fallback, or WebTransport first and the WebSocket when a session does
 * not open within WTC_FALLBACK_NS (then for every later connect). */
enum wtc_transport { WTC_WT, WTC_WS, WTC_AUTO };
#define WTC_FALLBACK_NS (3ull * 1000000000ull)

struct wtc_session {
  struct wtc *c;
  uint32_t idx;
  enum wtc_state state;
  struct quic_conn *qc;
  struct h3_session *hs;
  struct wsc *wc;     /* a WebSocket connection in use */
  struct session *sx; /* the open session of either transport, or NULL */
  struct timer fallback_timer;
  int status; /* HTTP status of the CONNECT */
  uint8_t mac[6];
  uint8_t ip[4], gateway[4], netmask[4], dns[4];
  char last_error[256]; /* last Error message from the relay */
  uint32_t errors, heartbeat_acks, assigned, frames_in, ctrl_in;
  uint32_t close_code;
  char close_reason[128];
  uint64_t t_open_ns, t_assigned_ns;
  uint64_t frames_out, chunks_in, chunks_out;
  uint16_t next_chunk_id;
  struct chunk_owner chunks;
  /* kept sessions (wtc_keep): registered again after every reconnect */
  char path[128]; /* "" = the URL's path */
  bool keep;
  uint8_t keep_mac[6];
  uint64_t heartbeat_ns, backoff_ns;
  uint32_t reconnects, hb_sent;
  struct timer retry_timer, hb_timer;
  void *user;
};

struct wtc_ops {
  void (*on_state)(void *user, struct wtc_session *s);
  void (*on_frame)(void *user, struct wtc_session *s, const uint8_t *frame, size_t len);
};

struct wtc {
  struct worker w;
  struct io_udp_sock *udp;
  struct quic_endpoint quic;
  struct h3_endpoint h3;
  union io_sockaddr remote;
  socklen_t remotelen;
  char host[256];
  uint8_t pin[32];
  bool has_pin;
  struct wtc_session *sess;
  uint32_t max_sess;
  const struct wtc_ops *ops;
  void *user;
  struct chunk_pool chunks; /* reassembly of 0x02 frames from the relay */
  enum wtc_transport transport;
  bool prefer_ws; /* auto: the WebSocket opened where WebTransport did not */
  struct wsc_table wsc;
  char hostport[240]; /* Host of the WebSocket Upgrade */
  uint8_t frame_buf[WTC_MAX_FRAME];
};

/* Parses https://HOST[:PORT]/PATH[?QUERY] (HOST may be [v6]). Port defaults
 * to 443. path_out keeps path and query. */
int wtc_url_parse(const char *url, char *host, size_t hostcap, uint16_t *port, char *path_out,
                  size_t pathcap);

/* pin may be NULL (CA verification). Resolves the host once, here. */
int wtc_init(struct wtc *c, const char *url, const uint8_t *pin, uint32_t max_sessions,
             const struct wtc_ops *ops, void *user);
void wtc_fini(struct wtc *c);
/* The transport of the sessions opened from now on (default WTC_WT). */
void wtc_set_transport(struct wtc *c, enum wtc_transport t);
/* The transport of an open session: "webtransport" or "websocket". */
const char *wtc_session_transport(const struct wtc_session *s);
/* Starts one session (QUIC handshake, SETTINGS, CONNECT). */
int wtc_open(struct wtc *c, struct wtc_session **out);
/* The same, to another path (room) on the same relay. */
int wtc_open_path(struct wtc *c, const char *path, struct wtc_session **out);
int wtc_register(struct wtc_session *s, const uint8_t mac[6]);
/* Keeps the session up: registers `mac` whenever the session opens, sends a
 * Heartbeat every heartbeat_ns while registered, and reopens it with
 * exponential backoff (250 ms doubling to 30 s, reset once registered)
 * whenever it closes or fails, so the MAC (and so the IP) stays. */
void wtc_keep(struct wtc_session *s, const uint8_t mac[6], uint64_t heartbeat_ns);
int wtc_heartbeat(struct wtc_session *s);
int wtc_disconnect(struct wtc_session *s);
/* Sends raw bytes as one datagram payload (type byte included). */
int wtc_send_raw(struct wtc_session *s, const uint8_t *data, size_t len);
/* Sends one Ethernet frame: a 0x01 datagram when it fits the session's
 * current maximum datagram payload, else 0x02 chunks. 0 or negative errno. */
int wtc_send_frame(struct wtc_session *s, const uint8_t *frame, size_t len);
/* Closes the session (close capsule) and its connection; a kept session is
 * no longer kept. */
void wtc_close(struct wtc_session *s, uint32_t code, const char *reason);
/* One loop turn: timers, writes, flush, wait at most max_wait_ns for
 * completions, dispatch them. 0 or negative errno. */
int wtc_poll(struct wtc *c, uint64_t max_wait_ns);
/* Runs the loop until done(arg) is true or timeout_ns passes.
 * Returns 0 when done, -ETIMEDOUT otherwise. */
int wtc_run(struct wtc *c, uint64_t timeout_ns, bool (*done)(void *arg), void *arg);
const char *wtc_state_name(enum wtc_state st);

#endif
