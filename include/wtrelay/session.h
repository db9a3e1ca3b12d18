/*
 * session: what the relay sees of a client's session, whatever carries
 * it: a WebTransport session over HTTP/3 (h3.c) or a WebSocket
 * connection over TLS/TCP (the fallback transport). The transport embeds
 * a struct session, fills the request's path, query and origin, and gives
 * the operations below; the relay keeps its peer in app_data and talks
 * only through these, so one relay session, one switch port and one set
 * of rules serve both transports.
 *
 * Datagram semantics are the transport's: over WebTransport a send may be
 * lost (QUIC datagrams), over WebSocket it is delivered in order unless
 * the connection's bounded queue refuses it (-ENOBUFS). Header-only.
 */
#ifndef WTRELAY_SESSION_H
#define WTRELAY_SESSION_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* send flags: low priority, may take at most half of the queue (flood
 * copies); past that it is dropped (-ENOBUFS) */
#define SESSION_LOW 1u

enum session_transport { SESSION_WEBTRANSPORT, SESSION_WEBSOCKET };

struct session;

struct session_ops {
  /* One datagram payload (type byte + body) of iovcnt pieces (at most
   * 4). A nonzero id asks for a report through the relay's
   * relay_session_datagram_ack: whether the peer is still there. 0 or a
   * negative errno. */
  int (*send)(struct session *s, const struct iovec *iov, int iovcnt, unsigned flags, uint64_t id);
  /* The time (ns) after which an unanswered send means the peer is gone
   * (QUIC's probe timeout), 0 when unknown. */
  uint64_t (*pto)(const struct session *s);
  /* Largest payload one send carries now (0: none fits). */
  size_t (*max_datagram)(const struct session *s);
  /* Ends the session with code and reason (the transport's close). */
  void (*close)(struct session *s, uint32_t code, const char *reason);
  void (*remote_str)(const struct session *s, char *buf, size_t cap);
  /* The client behind it (its address as a 64-bit key), 0 when gone. */
  uint64_t (*client_key)(const struct session *s);
};

struct session {
  const struct session_ops *ops; /* NULL: not connected (sends fail) */
  uint8_t transport;             /* enum session_transport */
  char path[256];                /* the request's path without the query: the room */
  char query[512];               /* after '?', kept for auth */
  char origin[256];
  void *app_data; /* owned by the application */
};

/* Sets path (up to '?') and query (after it) from a request target of
 * len bytes, never cut (two long paths with one prefix would share a
 * room): 0, -ENAMETOOLONG (path), -E2BIG (query). */
static inline int session_set_target(struct session *s, const char *target, size_t len)
{
  size_t plen = 0;
  while (plen < len && target[plen] != '?')
    plen++;
  size_t qlen = plen < len ? len - plen - 1 : 0;
  if (plen >= sizeof(s->path))
    return -ENAMETOOLONG;
  if (qlen >= sizeof(s->query))
    return -E2BIG;
  for (size_t i = 0; i < plen; i++)
    s->path[i] = target[i];
  s->path[plen] = '\0';
  for (size_t i = 0; i < qlen; i++)
    s->query[i] = target[plen + 1 + i];
  s->query[qlen] = '\0';
  return 0;
}

/* The operations table of a transport whose functions are named
 * PREFIX_send, PREFIX_pto, ... (one shape for every transport). */
#define SESSION_OPS(prefix)                                                                        \
  {                                                                                                \
    .send = prefix##_send, .pto = prefix##_pto, .max_datagram = prefix##_max_datagram,             \
    .close = prefix##_close, .remote_str = prefix##_remote_str, .client_key = prefix##_client_key  \
  }

static inline int session_send_ex(struct session *s, const struct iovec *iov, int iovcnt,
                                  unsigned flags, uint64_t id)
{
  return s->ops ? s->ops->send(s, iov, iovcnt, flags, id) : -ENOTCONN;
}
static inline int session_send(struct session *s, const struct iovec *iov, int iovcnt)
{
  return session_send_ex(s, iov, iovcnt, 0, 0);
}
static inline int session_send_id(struct session *s, const struct iovec *iov, int iovcnt,
                                  uint64_t id)
{
  return session_send_ex(s, iov, iovcnt, 0, id);
}
static inline int session_send_flags(struct session *s, const struct iovec *iov, int iovcnt,
                                     unsigned flags)
{
  return session_send_ex(s, iov, iovcnt, flags, 0);
}
static inline uint64_t session_pto(const struct session *s)
{
  return s->ops ? s->ops->pto(s) : 0;
}
static inline size_t session_max_datagram(const struct session *s)
{
  return s->ops ? s->ops->max_datagram(s) : 0;
}
static inline void session_close(struct session *s, uint32_t code, const char *reason)
{
  if (s->ops)
    s->ops->close(s, code, reason);
}
static inline void session_remote_str(const struct session *s, char *buf, size_t cap)
{
  if (s->ops)
    s->ops->remote_str(s, buf, cap);
  else if (cap >= 2)
    buf[0] = '?', buf[1] = '\0';
}
static inline uint64_t session_client_key(const struct session *s)
{
  return s->ops ? s->ops->client_key(s) : 0;
}
static inline const char *session_transport_name(const struct session *s)
{
  return s->transport == SESSION_WEBSOCKET ? "websocket" : "webtransport";
}

#endif
