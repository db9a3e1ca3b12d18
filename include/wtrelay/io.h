/*
 * io: one io_uring per worker, and every socket operation of that worker.
 *
 * Receive: each UDP socket has one multishot IORING_OP_RECVMSG that draws
 * buffers from a provided buffer ring shared by the worker's sockets
 * (64 KiB buffers, so a UDP_GRO super-packet fits). A completion is split
 * into its datagrams (UDP_GRO cmsg = segment size) and each is handed to the
 * socket's callback in place, then the buffer goes straight back to the ring.
 * A multishot that ends (ENOBUFS under overload, or any error) is re-armed
 * at the end of the same dispatch.
 *
 * Send: callers reserve space in the current tx arena, write a packet there
 * (ngtcp2 encrypts straight into it) and commit it with its destination.
 * io_flush() turns the packets of one loop turn into as few sendmsg SQEs as
 * possible: consecutive packets to one destination from one local address
 * with equal sizes (the last may be shorter) become one UDP_SEGMENT (GSO)
 * message. Arenas are reused only after all their sends completed; when none
 * is free, io_tx_reserve() returns NULL and the caller writes later
 * (backpressure, never an unbounded queue).
 *
 * Signals arrive through a signalfd read on the ring. Nothing here knows
 * about QUIC; the worker drives the loop: timers, writes, io_flush(),
 * io_wait(), io_dispatch().
 *
 * Every submission carries one tagged 64-bit user_data: op << 48 | index.
 */
#ifndef WTRELAY_IO_H
#define WTRELAY_IO_H

#include <liburing.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "wtrelay/counter.h"

enum io_op {
  IO_OP_NONE = 0,
  IO_OP_UDP_RECV = 1,
  IO_OP_UDP_SEND = 2,
  IO_OP_SIGNAL = 3,
  IO_OP_NOP = 4,
  IO_OP_PKTFD_READ = 5,
  IO_OP_PKTFD_WRITE = 6,
  IO_OP_USER_FIRST = 16, /* ops of other modules (io_set_handler) */
  IO_OP_OPS_HTTP = 16,
  IO_OP_NAT_TCP = 17,
  IO_OP_LEASE = 18,
  IO_OP_NAT_FWD = 21,  /* inbound forwarding: accepts (nat_fwd.c) */
  IO_OP_HOSTADDR = 25, /* rtnetlink local routes (hostaddr.c) */
  IO_OP_BELL = 26,     /* a worker's doorbells: process events and hand-off rings (server.c) */
  IO_OP_WS = 27,       /* the WebSocket fallback listener (ws_listen.c) */
  IO_OP_WSC = 28,      /* the native client's WebSocket connections (wsc.c) */
  IO_OP_USER_LAST = 31,
  IO_OP_MAX = 0xffff,
};

#define IO_UD(op, idx) (((uint64_t)(op) << 48) | ((uint64_t)(idx)&0xffffffffffffull))
#define IO_UD_OP(ud) ((enum io_op)((ud) >> 48))
#define IO_UD_IDX(ud) ((uint32_t)((ud)&0xffffffffull))

#define IO_UDP_GEN_SHIFT 20 /* user_data index = slot | generation << 20 */
#define IO_UDP_SLOT_MASK ((1u << IO_UDP_GEN_SHIFT) - 1)
#define IO_MAX_PKTFDS 8
#define IO_PKTFD_SLOTS_MAX 256
#define IO_GSO_MAX_SEGS 64
#define IO_GSO_MAX_BYTES 65000

union io_sockaddr {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
};

/* A local address a datagram arrived on (from IP(V6)_PKTINFO), so replies
 * leave from the same address. ifindex 0 / family 0 = unknown. */
struct io_local {
  union io_sockaddr addr;
  uint32_t ifindex;
};

struct io_udp_sock;

/* Called once per datagram. `pkt` is writable and valid only during the
 * call (it lives in a ring buffer). `local` may be NULL. */
typedef void (*io_udp_recv_fn)(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                               const union io_sockaddr *peer, socklen_t peerlen,
                               const struct io_local *local);
typedef void (*io_signal_fn)(void *ctx, int signo);
/* A receive failed with err (negative errno, e.g. -ECONNREFUSED from an
 * ICMP error with IP_RECVERR); the socket is re-armed afterwards. */
typedef void (*io_udp_err_fn)(void *ctx, struct io_udp_sock *s, int err);

struct io_udp_sock {
  int fd;
  int family;    /* AF_INET or AF_INET6 (dual-stack) */
  uint16_t port; /* bound port, host order */
  uint32_t idx;  /* slot */
  uint16_t gen;  /* bumped when the slot is reused: stale completions are ignored */
  bool armed;
  bool gro;
  bool closing;
  bool in_rearm;
  bool no_gso; /* one packet per sendmsg: opened without gso, an ICMP socket, or a GSO send on
                * this socket failed (then for good; io_counters.tx_gso_fallbacks) */
  struct msghdr rmsg; /* multishot template: name and control lengths */
  io_udp_recv_fn fn;
  io_udp_err_fn on_err;
  void *ctx;
};

/* A packet device (a TAP fd): every read returns one packet, every write
 * takes one. `nread` reads stay in flight, each re-armed as it completes;
 * writes copy the packet into one of `nwrite` slots (bounded: a full set of
 * slots is -ENOBUFS, counted, never a queue that grows). */
struct io_pktfd;
typedef void (*io_pktfd_recv_fn)(void *ctx, struct io_pktfd *d, const uint8_t *pkt, size_t len);

struct io_pktfd_counters {
  uint64_t rx_pkts, rx_bytes, rx_errors, tx_pkts, tx_bytes, tx_full, tx_errors;
};

struct io_pktfd {
  int fd; /* borrowed: the caller closes it after io_fini */
  uint32_t idx;
  unsigned nread, nwrite, bufsize;
  uint8_t *rbuf, *wbuf;
  uint16_t *wfree; /* stack of free write slots */
  unsigned nwfree;
  uint16_t *wpend; /* slots written this turn, in order, not yet given to the ring */
  uint32_t *wlen;  /* per slot: its frame's length */
  unsigned nwpend;
  bool *rarmed;
  bool dead; /* a read failed for good (EBADF, the device went away) */
  io_pktfd_recv_fn fn;
  void *ctx;
  struct io_pktfd_counters ctr;
};

/* What io_udp_open_ex sets up. */
struct io_udp_opts {
  const char *bind_addr; /* "::" dual-stack, "0.0.0.0", ... */
  uint16_t port;         /* 0 = ephemeral */
  int bufsize;           /* SO_RCVBUF/SO_SNDBUF, 0 = the kernel's default */
  bool pktinfo;          /* report the local address of each datagram */
  bool gro;              /* UDP_GRO */
  bool gso;              /* group equal packets into UDP_SEGMENT sends (the QUIC socket; NAT
                          * sockets carry a guest's datagrams one by one and need none) */
  bool pmtu_probe;       /* IP_PMTUDISC_PROBE: never fragment (QUIC) */
  int proto;             /* 0 = UDP; IPPROTO_ICMP = an ICMP datagram ("ping") socket */
  bool raw;              /* SOCK_RAW instead of SOCK_DGRAM (with proto; CAP_NET_RAW) */
  bool recverr;          /* IP_RECVERR (and IPV6_RECVERR on an IPv6 socket): ICMP errors reach
                          * on_err and the error queue */
  bool reuseport;        /* SO_REUSEPORT: one socket per worker on the QUIC port, all made by
                          * one process at start-up (a second relay still fails to bind) */
  io_udp_err_fn on_err;
};

/* A completion of an op another module submitted with io_sqe(). */
typedef void (*io_handler_fn)(void *ctx, uint32_t idx, struct io_uring_cqe *cqe);

struct io_params {
  unsigned max_udp_socks; /* 64 */
  unsigned sq_entries;    /* 512 */
  unsigned rx_bufs;       /* power of two, 128 */
  unsigned rx_buf_size;   /* 65536 */
  unsigned tx_arenas;     /* 8 */
  unsigned tx_arena_size; /* 256 KiB */
  unsigned tx_max_pkts;   /* packets per arena, 512 */
};

struct io_counters {
  uint64_t rx_completions, rx_datagrams, rx_bytes, rx_gro_batches;
  uint64_t rx_enobufs, rx_rearms, rx_truncated, rx_errors;
  uint64_t tx_msgs, tx_packets, tx_bytes, tx_gso_msgs, tx_errors, tx_arena_full;
  uint64_t tx_gso_fallbacks; /* sockets that stopped using GSO after a failed GSO send */
  uint64_t flushes, waits, signals;
};

struct io_txpkt {
  uint32_t off, len;
  struct io_udp_sock *sock;
  union io_sockaddr dst;
  socklen_t dstlen;
  struct io_local local;
};

struct io_txmsg {
  struct msghdr mh;
  struct iovec iov;
  uint32_t sock_idx; /* the socket's slot and generation, for the completion */
  uint16_t sock_gen;
  uint16_t segs; /* packets in this sendmsg (> 1: a GSO send) */
  /* last: clang sees CMSG_SPACE as a variable size (a GNU extension) */
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t)) + CMSG_SPACE(sizeof(struct in6_pktinfo))];
    struct cmsghdr align;
  } ctl;
};

struct io_arena {
  uint8_t *data;
  uint32_t used;
  uint32_t npkts;
  uint32_t inflight; /* sendmsg SQEs not yet completed */
  struct io_txpkt *pkts;
  struct io_txmsg *msgs;
};

struct io {
  struct io_uring ring;
  struct io_params p;
  /* provided buffer ring (group 0) */
  struct io_uring_buf_ring *br;
  size_t br_size;
  uint8_t *rxmem;
  unsigned rx_mask;
  /* sockets: a slot table with a free stack; re-arm and close lists */
  struct io_udp_sock **socks;
  uint32_t nsocks; /* slots ever used (high-water mark) */
  uint32_t *sock_free;
  uint32_t nsock_free;
  uint32_t *rearm;
  uint32_t nrearm;
  struct io_udp_sock **closing;
  uint32_t nclosing;
  uint32_t open_socks;
  io_handler_fn handler[IO_OP_USER_LAST - IO_OP_USER_FIRST + 1];
  void *handler_ctx[IO_OP_USER_LAST - IO_OP_USER_FIRST + 1];
  struct io_pktfd *pktfds[IO_MAX_PKTFDS];
  unsigned npktfds;
  /* tx arenas; cur is being filled */
  struct io_arena *arenas;
  unsigned cur;
  /* signals */
  int sigfd;
  struct signalfd_siginfo siginfo;
  io_signal_fn on_signal;
  void *sig_ctx;
  struct io_counters ctr;
};

void io_params_default(struct io_params *p);
int io_init(struct io *io, const struct io_params *p);
void io_fini(struct io *io);

/* Opens a UDP socket bound to bind_addr:port ("::" = dual-stack that also
 * accepts IPv4), with UDP_GRO, PKTINFO and large buffers (no port sharing), and
 * arms its multishot receive. Takes ownership of nothing; *out is owned by
 * io until io_fini. Returns 0 or negative errno. */
int io_udp_open(struct io *io, const char *bind_addr, uint16_t port, io_udp_recv_fn fn, void *ctx,
                struct io_udp_sock **out);
/* io_udp_open with SO_REUSEPORT when reuseport: the QUIC socket of one
 * worker of several (each binds its own on the same port). */
/* The claim that keeps a port to one relay when its workers share it with
 * SO_REUSEPORT (which would let a second relay of the same user join the
 * group and take part of every connection's packets): an abstract Unix
 * socket named after the address and UDP port, so per network namespace
 * and gone with the process; relays on two addresses of one host share a
 * port number, as single sockets do. With probe (a port chosen by the
 * caller, before binding), first a plain bind of bind_addr:port, closed at
 * once: it fails where any socket holds an overlapping address (the
 * wildcard against a specific one, either way), which SO_REUSEPORT
 * sockets of the same user would not. Returns the claim's descriptor (the
 * caller closes it at the end), -EADDRINUSE when another process holds
 * the address and port, or negative errno. */
int io_udp_port_claim(const char *bind_addr, uint16_t port, bool probe);
int io_udp_open_quic(struct io *io, const char *bind_addr, uint16_t port, bool reuseport,
                     io_udp_recv_fn fn, void *ctx, struct io_udp_sock **out);
/* The same with explicit options (NAT sockets: ephemeral port, default
 * buffers, no PKTINFO). */
int io_udp_open_ex(struct io *io, const struct io_udp_opts *o, io_udp_recv_fn fn, void *ctx,
                   struct io_udp_sock **out);
/* Stops receiving and closes the socket once this loop turn's sends are
 * submitted; s must not be used afterwards. */
void io_udp_close(struct io *io, struct io_udp_sock *s);
/* The locally bound port of s (useful with port 0). */
uint16_t io_udp_port(const struct io_udp_sock *s);

/* Starts reading packets from fd (nread reads in flight, buffers of bufsize
 * bytes) and prepares nwrite write slots. *out is owned by io. */
int io_pktfd_open(struct io *io, int fd, unsigned nread, unsigned nwrite, unsigned bufsize,
                  io_pktfd_recv_fn fn, void *ctx, struct io_pktfd **out);
/* Queues one packet (gathered from iov) for writing: copied into a write
 * slot now, given to the ring at the next io_flush or io_wait after the
 * UDP sends of the turn (so a QUIC ACK does not wait behind the writes),
 * in the order written. 0, -ENOBUFS when every write slot is busy,
 * -EMSGSIZE when it exceeds bufsize. */
int io_pktfd_write(struct io *io, struct io_pktfd *d, const struct iovec *iov, int iovcnt);

/* Registers the handler of op (IO_OP_USER_FIRST..IO_OP_USER_LAST). */
int io_set_handler(struct io *io, enum io_op op, io_handler_fn fn, void *ctx);
/* An SQE for the caller to prepare (submitted with the loop's next wait),
 * or NULL when the ring is full even after a submit. The caller sets its
 * user_data with IO_UD(op, idx). */
struct io_uring_sqe *io_sqe(struct io *io);

/* Blocks signals in `mask` for the calling thread and delivers them through
 * the ring. Returns 0 or negative errno. */
int io_signals(struct io *io, const sigset_t *mask, io_signal_fn fn, void *ctx);

/* Returns space for one packet of up to `maxlen` bytes in the current arena,
 * or NULL when every arena is busy (caller retries after io_dispatch). */
uint8_t *io_tx_reserve(struct io *io, size_t maxlen);
/* Commits the packet just written into the reserved space. */
void io_tx_commit(struct io *io, size_t len, struct io_udp_sock *s, const union io_sockaddr *dst,
                  socklen_t dstlen, const struct io_local *local);
/* Turns committed packets into sendmsg SQEs (GSO-grouped). Returns the
 * number of sendmsg SQEs prepared. */
unsigned io_flush(struct io *io);
/* Submits and waits for at least one completion or until deadline_ns
 * (CLOCK_MONOTONIC, TIMER_NEVER = no deadline; 0 = do not wait). */
int io_wait(struct io *io, uint64_t deadline_ns, uint64_t now_ns);
/* Handles every ready completion; returns how many. */
unsigned io_dispatch(struct io *io);

/* Address helpers used by every layer above. */
int io_sockaddr_parse(const char *host, uint16_t port, union io_sockaddr *out, socklen_t *outlen);
/* "HOST:PORT" or "[V6]:PORT" (port 1-65535, host an address): host (NUL-
 * terminated, hostcap bytes) and port; 0 or -EINVAL. */
int io_parse_listen(const char *s, char *host, size_t hostcap, uint16_t *port);
void io_sockaddr_str(const union io_sockaddr *a, char *buf, size_t cap);
bool io_sockaddr_equal(const union io_sockaddr *a, const union io_sockaddr *b);
/* The client a remote address stands for, as a nonzero 64-bit key for
 * per-client shares: an IPv4 address (also when seen IPv4-mapped on a
 * dual-stack socket) by itself, an IPv6 address by its /64 (one host or
 * subscriber usually holds a whole /64). 0 for any other family. */
uint64_t io_sockaddr_client_key(const union io_sockaddr *a);
/* The source address the kernel's routing picks toward `remote` (a UDP
 * socket of the same family is connected there and asked getsockname; no
 * packet is sent). A socket bound to a wildcard address needs this to name
 * its side of a QUIC path: the remote's own address is right only on
 * loopback. Writes the address (port 0) to *out; 0 or negative errno. */
int io_route_source(const union io_sockaddr *remote, socklen_t remotelen, union io_sockaddr *out);

/* The counters' table (wtrelay/counter.h): /metrics and the exit log
 * are written from it. */
extern const struct counter_table io_counter_table;

#endif
