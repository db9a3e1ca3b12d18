/*
 * nat_fwd: inbound port forwarding (include/wtrelay/nat_fwd.h).
 *
 * A gateway holds the forwards it was given (--forward at start, the ops
 * API at run time) in a fixed table of FWD_MAX. For each:
 *
 * TCP: a listening socket with a multishot accept on the worker's ring.
 * An accepted connection is bounded (per forward, in all), its VM looked
 * up through gateway_addr_ops.vm_lookup (by MAC: the session that holds
 * the MAC now, so a forward follows a VM that reconnected; by address:
 * the session with that address), and handed to the TCP NAT
 * (nat_tcp_inbound), which sends the guest a SYN from the remote's address
 * and port and carries the connection as it carries outbound ones: the
 * guest's data is acknowledged only once the kernel took it, the remote's
 * is peeked and discarded only when the guest acknowledged it. Refused
 * (no VM, a bound, no slot): the accepted socket is closed with SO_LINGER
 * 0, a reset to the remote, counted and logged (rate-limited).
 *
 * UDP: one socket bound to the host port. A datagram from a remote
 * address and port with no mapping makes one (bounded per forward and in
 * all, VM looked up as for TCP; no VM: dropped and counted); the datagram
 * goes to the guest from the remote's address and port. The guest's
 * datagrams from VM_PORT to that remote go out of the forward's socket
 * (nat_fwd_guest_input, called by the gateway before its egress policy:
 * they are answers). A mapping lives --udp-timeout after its last datagram
 * either way. Lookups scan the live mappings (at most
 * max_fwd_conns), only while there are any.
 */
#include "wtrelay/nat_fwd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway_internal.h"

/* ---- the spec ---- */

static int bad(char *err, size_t errlen, const char *what, const char *s)
{
  if (err && errlen)
    snprintf(err, errlen, "%s in '%s' (expected PROTO:[BIND_ADDR:]HOST_PORT=VM:VM_PORT[@ROOM])",
             what, s);
  return -EINVAL;
}

/* A port 1..65535 in [p, end). */
static int port_parse(const char *p, const char *end, uint16_t *out)
{
  if (p >= end || end - p > 5)
    return -EINVAL;
  uint32_t v = 0;
  for (; p < end; p++) {
    if (*p < '0' || *p > '9')
      return -EINVAL;
    v = v * 10 + (uint32_t)(*p - '0');
  }
  if (v == 0 || v > 65535)
    return -EINVAL;
  *out = (uint16_t)v;
  return 0;
}

/* An IPv4 address in [p, end), host order. */
static int ip_parse(const char *p, const char *end, uint32_t *out)
{
  char a[16];
  struct in_addr in;
  if (p >= end || (size_t)(end - p) >= sizeof(a))
    return -EINVAL;
  memcpy(a, p, (size_t)(end - p));
  a[end - p] = '\0';
  if (inet_pton(AF_INET, a, &in) != 1)
    return -EINVAL;
  *out = ntohl(in.s_addr);
  return 0;
}

int fwd_spec_parse(const char *s, struct fwd_spec *out, char *err, size_t errlen)
{
  memset(out, 0, sizeof(*out));
  if (!s)
    return bad(err, errlen, "no forward", "");
  if (strncmp(s, "tcp:", 4) == 0)
    out->proto = IPPROTO_TCP;
  else if (strncmp(s, "udp:", 4) == 0)
    out->proto = IPPROTO_UDP;
  else
    return bad(err, errlen, "the protocol must be tcp or udp", s);
  const char *host = s + 4;
  const char *eq = strchr(host, '=');
  if (!eq)
    return bad(err, errlen, "no '='", s);
  /* host side: [BIND_ADDR:]HOST_PORT */
  const char *colon = memchr(host, ':', (size_t)(eq - host));
  if (colon) {
    if (ip_parse(host, colon, &out->bind_ip) < 0)
      return bad(err, errlen, "the bind address is not an IPv4 address", s);
    host = colon + 1;
  }
  if (port_parse(host, eq, &out->host_port) < 0)
    return bad(err, errlen, "the host port must be 1 to 65535", s);
  /* VM side: VM:VM_PORT[@ROOM] */
  const char *vm = eq + 1;
  const char *at = strchr(vm, '@');
  const char *vend = at ? at : vm + strlen(vm);
  const char *pc;
  if (*vm == '[') {
    const char *rb = memchr(vm, ']', (size_t)(vend - vm));
    char mac[18];
    if (!rb || rb - vm - 1 != 17)
      return bad(err, errlen, "the VM's MAC must be in brackets, [52:54:00:12:34:56]", s);
    memcpy(mac, vm + 1, 17);
    mac[17] = '\0';
    if (net_mac_parse(mac, out->mac) < 0 || (out->mac[0] & 1))
      return bad(err, errlen, "the VM's MAC is not a unicast MAC", s);
    out->by_mac = true;
    pc = rb + 1;
    if (pc >= vend || *pc != ':')
      return bad(err, errlen, "no ':' before the VM port", s);
  } else {
    pc = memchr(vm, ':', (size_t)(vend - vm));
    if (!pc)
      return bad(err, errlen, "no ':' before the VM port", s);
    if (ip_parse(vm, pc, &out->vm_ip) < 0 || out->vm_ip == 0 || out->vm_ip == 0xffffffffu ||
        (out->vm_ip >> 28) == 14)
      return bad(err, errlen, "the VM must be a unicast IPv4 address or a MAC in brackets", s);
  }
  if (port_parse(pc + 1, vend, &out->vm_port) < 0)
    return bad(err, errlen, "the VM port must be 1 to 65535", s);
  if (!at) {
    snprintf(out->room, sizeof(out->room), "/");
    return 0;
  }
  const char *room = at + 1;
  size_t rl = strlen(room);
  if (room[0] != '/' || rl >= sizeof(out->room))
    return bad(err, errlen, "the room must be a URL path starting with '/' (at most 255 bytes)", s);
  for (size_t i = 0; i < rl; i++)
    if ((unsigned char)room[i] <= ' ' || room[i] == '"' || room[i] == '\\' || room[i] == 0x7f)
      return bad(err, errlen, "the room has a blank, quote or control character", s);
  memcpy(out->room, room, rl + 1);
  return 0;
}

void fwd_spec_format(const struct fwd_spec *f, char *buf, size_t cap)
{
  char bind[20] = "", vm[24], a[16];
  if (f->bind_ip)
    snprintf(bind, sizeof(bind), "%s:", net_ip_str(f->bind_ip, a));
  if (f->by_mac)
    snprintf(vm, sizeof(vm), "[%02x:%02x:%02x:%02x:%02x:%02x]", f->mac[0], f->mac[1], f->mac[2],
             f->mac[3], f->mac[4], f->mac[5]);
  else
    snprintf(vm, sizeof(vm), "%s", net_ip_str(f->vm_ip, a));
  snprintf(buf, cap, "%s:%s%u=%s:%u@%s", f->proto == IPPROTO_UDP ? "udp" : "tcp", bind,
           f->host_port, vm, f->vm_port, f->room);
}

bool fwd_spec_same_socket(const struct fwd_spec *a, const struct fwd_spec *b)
{
  return a->proto == b->proto && a->host_port == b->host_port &&
         (a->bind_ip == b->bind_ip || !a->bind_ip || !b->bind_ip);
}
