/*
 * tap: a Linux TAP device for wtrelay-tap, and its configuration.
 *
 * Owns: creating the device (/dev/net/tun, IFF_TAP | IFF_NO_PI), its MAC,
 * moving it into another network namespace (rtnetlink RTM_NEWLINK with
 * IFLA_NET_NS_FD), and inside that namespace bringing it up and setting
 * its IPv4 address, netmask and default route (ioctls on a socket created
 * in the namespace; the calling thread enters the namespace only for that
 * and returns to its own, so the process keeps its network for QUIC).
 * Never: reads or writes frames (io_pktfd does, on the worker's ring).
 * Every function returns 0 or a negative errno and writes a one-line
 * explanation to err.
 */
#ifndef WTRELAY_TAP_H
#define WTRELAY_TAP_H

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
/* Sets address/netmask (host order) and a default route via gw (0 = no
 * route), in netns or here. An existing default route is replaced. */
int tap_configure(const char *netns, const char *ifname, uint32_t ip, uint32_t netmask, uint32_t gw,
                  char *err, size_t errlen);

#endif
