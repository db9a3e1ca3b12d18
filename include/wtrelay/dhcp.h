/*
 * dhcp: the DHCP wire codec (RFC 2131/2132 subset), no I/O, no state.
 *
 * The gateway's DHCP server parses client messages (BOOTREQUEST) with
 * dhcp_parse() and answers with dhcp_build(). Parsing goes through bounds-
 * checked readers (cursor.h): the fixed BOOTP header (236 bytes), the magic
 * cookie 99.130.83.99, then options (code, length, value; 0 = pad, 255 =
 * end), each length checked against the remaining bytes. Unknown options
 * are skipped. Option overload (52) is not supported (ignored: file/sname
 * are not scanned).
 */
#ifndef WTRELAY_DHCP_H
#define WTRELAY_DHCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DHCP_MIN_LEN 240 /* BOOTP header + magic cookie */

enum dhcp_type {
  DHCP_DISCOVER = 1,
  DHCP_OFFER = 2,
  DHCP_REQUEST = 3,
  DHCP_DECLINE = 4,
  DHCP_ACK = 5,
  DHCP_NAK = 6,
  DHCP_RELEASE = 7,
  DHCP_INFORM = 8,
};

/* A client message. Addresses are host byte order. */
struct dhcp_msg {
  uint8_t op; /* 1 = BOOTREQUEST */
  uint32_t xid;
  uint16_t flags; /* 0x8000 = broadcast */
  uint32_t ciaddr, yiaddr, siaddr, giaddr;
  uint8_t chaddr[6]; /* htype 1 / hlen 6 only */
  uint8_t msg_type;  /* option 53, required */
  bool has_requested_ip, has_server_id;
  uint32_t requested_ip; /* option 50 */
  uint32_t server_id;    /* option 54 */
};

/* 0, or -EINVAL when not a well-formed BOOTREQUEST for Ethernet with a
 * magic cookie and an option 53 of 1..8 (-EMSGSIZE if an option runs past
 * the end). Never reads outside p[0..len). */
int dhcp_parse(const uint8_t *p, size_t len, struct dhcp_msg *m);

/* A server reply. Host byte order. */
struct dhcp_reply {
  uint8_t msg_type; /* DHCP_OFFER, DHCP_ACK or DHCP_NAK */
  uint32_t xid;
  uint16_t flags; /* echoed from the request */
  uint8_t chaddr[6];
  uint32_t ciaddr;    /* echoed for ACK to a renewing client */
  uint32_t yiaddr;    /* 0 for NAK */
  uint32_t server_id; /* option 54, also siaddr */
  uint32_t netmask;   /* option 1 (not in NAK) */
  uint32_t router;    /* option 3 (not in NAK) */
  uint32_t dns[3];    /* option 6 (not in NAK) */
  int ndns;
  uint32_t lease_s; /* option 51 (not in NAK); renewal T1/T2 left to defaults */
  uint16_t mtu;     /* option 26 when nonzero (not in NAK) */
};

/* Writes a BOOTREPLY (op 2, htype 1, hlen 6, the fields above, the magic
 * cookie, options 53, 54, then 1, 3, 6, 51, 26 unless NAK, then 255),
 * padded to at least 300 bytes (the BOOTP minimum some clients expect).
 * Returns the length, -ENOSPC (buf untouched), or -EINVAL when msg_type is
 * not OFFER/ACK/NAK or ndns is not 0..3. */
int dhcp_build(uint8_t *buf, size_t cap, const struct dhcp_reply *r);

#endif
