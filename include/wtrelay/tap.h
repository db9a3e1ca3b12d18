/*
 * tap: a Linux TAP device for wtrelay-tap, and its configuration.
 *
 * Owns: creating the device (/dev/net/tun, IFF_TAP | IFF_NO_PI), its MAC,
 * moving it into another network namespace (rtnetlink RTM_NEWLINK with
 * IFLA_NET_NS_FD), and inside that namespace bringing it up and setting
 * its IPv4 address, netmask and default route, lo, and the namespace's
 * resolv.conf under /etc/netns (ioctls on a socket created in the namespace; the calling thread
 * enters the namespace only for that and returns to its own, so the process keeps its network for
 * QUIC). Never: reads or writes frames (io_pktfd does, on the worker's ring). Every function
 * returns 0 or a negative errno and writes a one-line explanation to err.
 */
#ifndef WTRELAY_TAP_H
#define WTRELAY_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAP_NAME_MAX 16

/* Creates (or attaches to) TAP device `name` ("" lets the kernel pick
 * wtrN), sets its MAC. *fd is blocking (io_uring polls it). */
int tap_open(const char *name, const uint8_t mac[6], int *fd, char ifname[TAP_NAME_MAX], char *err,
             size_t errlen);
/* Moves the device into the namespace /run/netns/<netns>. */
int tap_move_netns(const char *ifname, const char *netns, char *err, size_t errlen);
/* Brings the device up (in netns, or here when netns is NULL/""). */
int tap_up(const char *netns, const char *ifname, char *err, size_t errlen);
/* What tap_configure applies: the room's Assigned, host byte order. */
struct tap_addr {
  uint32_t ip, netmask;
  uint32_t gw;                /* 0: no default route */
  uint32_t dns;               /* 0: no resolv.conf */
  bool replace_default_route; /* replace another device's default route */
};

/* tap_configure left another default route in place. */
#define TAP_ROUTE_KEPT 1

/* Sets address and netmask, brings the device up and adds a default route
 * via gw, in netns or here. A default route on another device is replaced
 * only with replace_default_route; otherwise it stays, the return value is
 * TAP_ROUTE_KEPT and err names it ("dev eth0 via 192.0.2.1"). In a named
 * namespace (not a path) also brings lo up and writes the DNS server to
 * /etc/netns/NETNS/resolv.conf. 0, TAP_ROUTE_KEPT or a negative errno. */
int tap_configure(const char *netns, const char *ifname, const struct tap_addr *addr, char *err,
                  size_t errlen);

#endif
