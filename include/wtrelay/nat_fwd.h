/*
 * nat_fwd: inbound port forwarding, the outside world reaching a VM
 * (--forward, and POST/DELETE /forwards on the ops listener).
 *
 * A forward is PROTO:[BIND_ADDR:]HOST_PORT=VM:VM_PORT[@ROOM]: the relay
 * listens on the host port (TCP: a listening socket accepted through the
 * worker's io_uring; UDP: one bound socket) and carries each connection or
 * each remote address's datagrams to VM_PORT of the VM, named by its IPv4
 * address or by its MAC (then resolved to the address of the session that
 * holds the MAC at each new connection, so the forward follows the VM
 * across reconnects). TCP goes through the same translation as outbound
 * connections (nat_tcp.c): a SYN toward the guest from the remote's
 * address and port; UDP keeps a mapping per remote address and port with
 * the UDP NAT's idle timeout. Bounds: connections and mappings per forward
 * and in all; a forward to a VM that is not connected refuses (TCP: the
 * accepted socket closed with a reset) and counts.
 * Talks to: the gateway (its TCP and UDP NAT, gateway_addr_ops.vm_lookup
 * to find the VM), io.
 */
#ifndef WTRELAY_NAT_FWD_H
#define WTRELAY_NAT_FWD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FWD_ROOM_MAX 256
#define FWD_MAX 64 /* forwards at most (flags and API together) */

struct fwd_spec {
  uint8_t proto;    /* IPPROTO_TCP or IPPROTO_UDP */
  uint32_t bind_ip; /* host order, 0 = every address */
  uint16_t host_port;
  bool by_mac; /* VM named by MAC (mac), else by address (vm_ip) */
  uint8_t mac[6];
  uint32_t vm_ip; /* host order */
  uint16_t vm_port;
  char room[FWD_ROOM_MAX]; /* the room's URL path, "/" by default */
};

/* Parses PROTO:[BIND_ADDR:]HOST_PORT=VM:VM_PORT[@ROOM], where PROTO is tcp
 * or udp, BIND_ADDR an IPv4 address, VM an IPv4 address or a MAC in
 * brackets ([52:54:00:12:34:56]), ROOM a path starting with '/'. Returns 0,
 * or -EINVAL with a one-line reason in err. */
int fwd_spec_parse(const char *s, struct fwd_spec *out, char *err, size_t errlen);
/* Would a and b listen on the same socket (protocol and port, and the
 * same or an overlapping bind address)? */
bool fwd_spec_same_socket(const struct fwd_spec *a, const struct fwd_spec *b);
/* Writes the spec in the syntax fwd_spec_parse reads. */
void fwd_spec_format(const struct fwd_spec *f, char *buf, size_t cap);

struct gateway;

/* The bounds' counts of the forwards of one process, shared by the
 * gateways of its workers: the owner (worker 0) takes a count when it
 * accepts, whichever gateway serves the connection gives it back when it
 * ends. Relaxed atomics; gen[slot] tells a forward's counts from those of
 * a forward that had its slot before. */
struct fwd_counts {
  _Atomic uint32_t total;
  _Atomic uint32_t active[FWD_MAX];
  _Atomic uint32_t gen[FWD_MAX];
  /* per forward: connections (UDP: mappings) served, and refused */
  _Atomic uint64_t served[FWD_MAX], refused[FWD_MAX];
};

/* An accepted connection (TCP) or a datagram (UDP) on its way to the
 * gateway (the worker) whose LAN holds the VM: the forward's owner found no
 * such VM on its own. */
struct fwd_handoff {
  int fd;
  uint32_t ref; /* the forward's slot and generation (its counts) */
  uint32_t rip; /* the remote, host order */
  uint16_t rport;
  uint32_t asked; /* gateways that looked for the VM so far */
  struct fwd_spec spec;
  /* UDP: one datagram (fd: a duplicate of the forward's socket, for the
   * answers of a mapping made where the VM is) */
  uint16_t len;
  uint8_t data[];
};

/* The process layer's: hands h to the next worker's gateway (which calls
 * gateway_fwd_take there). 0: h is that gateway's now; < 0: not passed
 * (a full ring), h is still the caller's. */
struct fwd_pass_ops {
  int (*pass)(void *ctx, struct fwd_handoff *h);
};
/* A handoff reached this gateway: the connection is served here when the
 * VM is on this LAN, else passed on, or refused (a reset, counted) once
 * every one of the `ngateways` was asked. Takes h (frees it). */
void gateway_fwd_take(struct gateway *gw, struct fwd_handoff *h);

/* A forward as the API lists it. */
struct fwd_info {
  uint32_t id;
  struct fwd_spec spec;
  uint32_t active;            /* TCP connections or UDP mappings now */
  uint64_t accepted, refused; /* connections (TCP) or mappings (UDP) made, refused */
};

/* Opens a forward on gw (its socket bound at once): 0 and *id, -EEXIST
 * (a forward of the same socket), -ENOSPC (FWD_MAX), -ENOTSUP (the gateway
 * has no vm_lookup), or the bind's negative errno (-EADDRINUSE...). */
int gateway_fwd_add(struct gateway *gw, const struct fwd_spec *spec, uint32_t *id);
/* Closes forward id (its listening socket; connections in progress go on
 * to their end, UDP mappings end at once). 0 or -ENOENT. */
int gateway_fwd_del(struct gateway *gw, uint32_t id);
/* Copies up to cap forwards into out, returns how many there are. */
uint32_t gateway_fwd_list(const struct gateway *gw, struct fwd_info *out, uint32_t cap);

#endif
