/*
 * languard: the LAN guards of a session's switch port (ARP and IPv4 source
 * guard, VLAN tags, reserved MACs).
 *
 * Owns: nothing but the verdict. languard_check() reads the head of one
 * Ethernet frame that a session sent and says whether the room may see
 * it, and if not, why:
 * - ARP (0x0806): must be Ethernet/IPv4 ARP, a request or a reply; the
 *   sender MAC must be the port's MAC (with any_mac: the frame's source
 *   MAC); the sender IP must be the port's address, or 0.0.0.0 in a
 *   request (an RFC 5227 probe, duplicate address detection), never the
 *   gateway's or the DNS forwarder's address, and with any_mac an address
 *   the port's `bound` callback vouches for (a DHCP lease made through
 *   this port for that MAC).
 * - IPv4 (0x0800): the source must be the port's address (with any_mac,
 *   or an address bound as above), except a DHCP client's UDP from
 *   0.0.0.0:68 to port 67 (DISCOVER and REQUEST before the client has an
 *   address). A header that is not IPv4 or does not fit the frame is
 *   dropped too (a receiver would drop it anyway; here it cannot hide a
 *   source).
 * - 802.1Q / 802.1ad tagged frames (0x8100, 0x88a8, 0x9100): an ARP or
 *   IPv4 packet inside a tag would pass untested, so they are dropped
 *   unless any_mac (a VM bridging others may carry VLANs; its bridged
 *   traffic is then its own business, within the MACs it may use).
 * - with any_mac, a source MAC the relay reserves (all-zero, the
 *   gateway's; group addresses never reach here, the switch drops them).
 * - IPv6 (0x86dd): the source must carry the port MAC's modified EUI-64
 *   interface identifier (its SLAAC or EUI-64 link-local address, in any
 *   prefix: no other session's address can be formed that way), or be ::
 *   in a Neighbor/Router Solicitation or an MLD report (duplicate address
 *   detection, joining groups before an address). Router Advertisements
 *   and Redirects are the gateway's alone (RA guard, RFC 6105); a
 *   Neighbor Advertisement's target must follow the source rule, and a
 *   link-layer address option in ND must be the port's MAC. The header
 *   chain must reach the upper layer within the head (a chain longer than
 *   the head could hide an RA, RFC 7112), except in a non-first fragment.
 *   An address the port claimed by DAD (its `claimed6` callback; privacy
 *   and stable-privacy addresses) passes too. With any_mac, IPv6 passes (a
 *   bridging VM's hosts have their own IIDs).
 * - everything else passes untouched.
 * Talks to: nothing; the caller (relay.c, port security of the session
 * ports) gathers the frame's head and counts the verdicts.
 * Never: parses past the head it is given, keeps state, or allocates.
 *
 * Why here and not in the switch: the verdict needs what only the relay
 * knows (the peer's registered MAC and assigned address, --allow-any-src-mac
 * and the DHCP leases made through that session); the switch stays a pure
 * L2 learning bridge that knows nothing of sessions, and the gateway's own
 * port (whose frames are built by the relay itself) needs no guard.
 */
#ifndef WTRELAY_LANGUARD_H
#define WTRELAY_LANGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a frame's head languard_check reads at most: Ethernet (14), an
 * IPv4 header with options (60) and the UDP ports (4); or an IPv6 header
 * (40), a few extension headers and an ND message up to its first option
 * (8 + 16 + 8). */
#define LANGUARD_HEAD 160

enum languard_verdict {
  LANGUARD_PASS = 0,
  LANGUARD_ARP_SPOOF,    /* ARP sender IP not the port's (or .2/.3) */
  LANGUARD_ARP_MAC,      /* ARP sender MAC not the port's */
  LANGUARD_ARP_BAD,      /* not Ethernet/IPv4 ARP, truncated, or an unknown op */
  LANGUARD_IP_SPOOF,     /* IPv4 source not the port's */
  LANGUARD_IP_BAD,       /* not IPv4 inside 0x0800, or the header does not fit */
  LANGUARD_VLAN,         /* 802.1Q/802.1ad tag without --allow-any-src-mac */
  LANGUARD_RESERVED_SRC, /* source MAC all-zero or the gateway's (any_mac only) */
  LANGUARD_IP6_SPOOF,    /* IPv6 source (or NA target, ND link-layer option) not the port's */
  LANGUARD_IP6_BAD,      /* not IPv6 inside 0x86dd, or its header chain leaves the head */
  LANGUARD_ND_ROUTER,    /* a Router Advertisement or Redirect from a session */
  LANGUARD_NVERDICTS
};

/* The room's fixed addresses (host order). */
struct languard_params {
  uint32_t gateway_ip, dns_ip;
  uint8_t gateway_mac[6];
};

/* The port a frame came from. */
struct languard_port {
  const uint8_t *mac; /* the session's registered MAC */
  uint32_t ip;        /* its assigned address, host order */
  bool any_mac;       /* --allow-any-src-mac */
  /* With any_mac: true when the DHCP server leased ip to mac through this
   * port. May be NULL (nothing bound). */
  bool (*bound)(void *ctx, const uint8_t mac[6], uint32_t ip);
  /* IPv6 addresses the port claimed by duplicate address detection
   * (privacy and stable-privacy addresses): true when a is one. May be
   * NULL (none). */
  bool (*claimed6)(void *ctx, const uint8_t a[16]);
  void *ctx;
  /* When not NULL: set to the target (16 bytes, in head) of a DAD
   * Neighbor Solicitation from :: that passed, else to NULL; the caller
   * may record the claim. */
  const uint8_t **dad_target;
};

/* The verdict on a frame whose first hlen bytes are `head` (the whole
 * frame when it is shorter than LANGUARD_HEAD; no more is read). The caller has checked len >= 14
 * and, without any_mac, that the source MAC is the port's. */
enum languard_verdict languard_check(const struct languard_params *lp,
                                     const struct languard_port *port, const uint8_t *head,
                                     size_t hlen);

/* A MAC no session may register: group bit (broadcast, multicast),
 * all-zero, or the gateway's. */
bool languard_mac_reserved(const struct languard_params *lp, const uint8_t mac[6]);

/* The verdict's name for counters and logs ("arp_spoof"). */
const char *languard_verdict_name(enum languard_verdict v);

#endif
