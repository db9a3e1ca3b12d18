/*
 * steer: which worker's socket receives a QUIC datagram.
 *
 * Every worker has its own UDP socket on the relay's port (SO_REUSEPORT),
 * and every connection ID the server issues carries the index of the
 * worker that owns the connection in its first byte (quic.c). Steering
 * makes the kernel deliver each datagram to the owner's socket, so the
 * owner sees every packet of its connections even after the client's
 * address changes (migration, NAT rebinding), when the kernel's own
 * 4-tuple hash would pick another socket.
 *
 * Owns: an SK_REUSEPORT eBPF program (src/bpf/reuseport_steer.bpf.c,
 * embedded in the library at build time), its socket array (slot i = the
 * socket of worker i) and its counters. It reads the first bytes of the
 * UDP payload and picks the slot with steer_pick() below; anything it
 * cannot steer (Initial and 0-RTT packets, unknown versions, a worker
 * index with no socket) is left to the kernel's 4-tuple hash.
 *
 * Talks to: libbpf and the socket API, once at start-up and shutdown.
 * Never: touches a socket's data, runs on the hot path in user space, or
 * drops a datagram (the program always passes; at worst the kernel hash
 * decides, and the receiving worker hands the datagram on).
 *
 * This header is also compiled into the BPF program (clang -target bpf):
 * the part above `#ifndef __bpf__` uses no library type, so that the
 * program and the relay share one definition of the choice.
 */
#ifndef WTRELAY_STEER_H
#define WTRELAY_STEER_H

/* Length of every connection ID the server issues (QUIC_SCID_LEN, checked
 * in steer.c). A long-header DCID of another length is the client's own
 * choice and says nothing about a worker. */
#define STEER_CID_LEN 16
/* The worker index is one byte: slots 0..255 of the socket array. */
#define STEER_MAX_WORKERS 256
/* Bytes of the UDP payload steer_pick reads at most. */
#define STEER_HDR_LEN 7
/* steer_pick: no owner can be told from the header; any worker may take it. */
#define STEER_ANY (-1)

#define STEER_QUIC_V1 0x00000001u
/* Long-header packet types of QUIC v1 (RFC 9000, 17.2). */
#define STEER_LONG_INITIAL 0x0u
#define STEER_LONG_0RTT 0x1u
#define STEER_LONG_HANDSHAKE 0x2u
#define STEER_LONG_RETRY 0x3u

/* Counters of the program (a per-CPU array, summed by steer_stats). */
enum steer_stat {
  STEER_STAT_SHORT = 0, /* short header: sent to the worker in DCID[0] */
  STEER_STAT_HANDSHAKE, /* Handshake with a server CID: to the worker in DCID[0] */
  STEER_STAT_HASH,      /* Initial, 0-RTT, Retry, other versions, unparsable: kernel hash */
  STEER_STAT_NO_SOCKET, /* DCID[0] names a slot without a socket: kernel hash */
  STEER_STAT__COUNT
};

/*
 * The worker that owns the datagram whose UDP payload starts with
 * p[0..len), or STEER_ANY. Reads at most STEER_HDR_LEN bytes.
 *
 * - Short header (first bit 0): the DCID starts at byte 1 and was issued by
 *   the server (a short header always carries a server CID): its first
 *   byte is the worker.
 * - Long header, QUIC v1, Handshake, DCID length STEER_CID_LEN: the DCID
 *   (byte 6 on) is the server's SCID, which the client learnt from the
 *   server's Initial before it could send a Handshake packet.
 * - Everything else is STEER_ANY: Initials (the DCID is the client's random
 *   choice: the worker that takes the first Initial of a 4-tuple becomes
 *   the owner, and the kernel hash sends the rest of that 4-tuple's
 *   Initials to it too), 0-RTT (its DCID is the client's original DCID
 *   until the server's Initial arrives, which may well be 16 random bytes;
 *   a client cannot migrate during the handshake, so the hash that took
 *   its Initial takes its 0-RTT), Retry and Version Negotiation (never sent
 *   by a client), other versions (answered with Version Negotiation by
 *   whoever gets them), and anything too short to read.
 *
 * The caller compares the result with the number of workers: an index
 * past the last worker is not an owner either.
 */
static inline int steer_pick(const unsigned char *p, unsigned int len)
{
  if (len < 2)
    return STEER_ANY;
  if (!(p[0] & 0x80))
    return p[1];
  if (len < STEER_HDR_LEN)
    return STEER_ANY;
  unsigned int version = (unsigned int)p[1] << 24 | (unsigned int)p[2] << 16 |
                         (unsigned int)p[3] << 8 | (unsigned int)p[4];
  if (version != STEER_QUIC_V1)
    return STEER_ANY;
  if (((p[0] >> 4) & 0x3) != STEER_LONG_HANDSHAKE)
    return STEER_ANY;
  if (p[5] != STEER_CID_LEN)
    return STEER_ANY;
  return p[6];
}

#ifndef __bpf__

#include <stdint.h>

struct steer;

struct steer_stats {
  uint64_t n[STEER_STAT__COUNT]; /* enum steer_stat */
};

/*
 * Loads the steering program and attaches it to the reuseport group of
 * fds: fds[i] is worker i's UDP socket, already bound with SO_REUSEPORT to
 * the relay's address (all n of them in one group). n is 1 to
 * STEER_MAX_WORKERS. The sockets stay the caller's: they are borrowed, and
 * steer_detach must run before fds[0] is closed.
 *
 * On success stores a handle in *out and returns 0. On failure returns a
 * negative errno and stores NULL; the group is then as before (no
 * program), and the caller relies on the kernel's 4-tuple hash plus
 * handing mis-steered datagrams to their owner:
 *   -EOPNOTSUPP  built without BPF (cmake -DBPF=OFF), or disabled by the
 *                environment (WTRELAY_NO_BPF set to anything but "" or "0")
 *   -EPERM       no CAP_BPF (nor CAP_SYS_ADMIN) in the initial user
 *                namespace, or a seccomp filter refused bpf()
 *   -EINVAL      n out of range, or a socket not bound with SO_REUSEPORT
 *   -EBUSY       a socket is already in another steering array (attached
 *                twice without steer_detach)
 *   other        from the bpf() system call or setsockopt
 * libbpf's own messages go to the log at debug level.
 */
int steer_attach(const int *fds, unsigned int n, struct steer **out);

/* Detaches the program from the group (through fds[0], which must still be
 * open; the group then falls back to the kernel hash) and frees the
 * handle. NULL is a no-op. */
void steer_detach(struct steer *s);

/* Sums the program's per-CPU counters into *st. Returns 0 or a negative
 * errno. One caller at a time (it reuses a buffer of the handle). */
int steer_stats(struct steer *s, struct steer_stats *st);

#endif /* __bpf__ */

#endif
