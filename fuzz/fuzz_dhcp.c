/*
 * fuzz_dhcp: the DHCP client-message parser (dhcp.c) on bytes from a guest,
 * and the reply builder on fields taken from what was parsed.
 *
 * Invariants checked: the parser never reads past the input; a message that
 * parses is a BOOTREQUEST with an option 53 of 1..8, and option 50/54 values
 * are only set with their flags; an OFFER, ACK or NAK built for that xid and
 * chaddr (the other fields drawn from the input) is exactly 300 bytes and,
 * with its op byte flipped to BOOTREQUEST, parses back with xid, flags,
 * chaddr, ciaddr, yiaddr, siaddr, server id and message type intact.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/dhcp.h"

static const uint8_t reply_types[3] = {DHCP_OFFER, DHCP_ACK, DHCP_NAK};

static void check_reply(const struct dhcp_msg *m)
{
  struct dhcp_reply r;
  struct dhcp_msg back;
  uint8_t buf[576];
  int n;

  memset(&r, 0, sizeof(r));
  r.msg_type = reply_types[m->xid % 3];
  r.xid = m->xid;
  r.flags = m->flags;
  memcpy(r.chaddr, m->chaddr, sizeof(r.chaddr));
  r.ciaddr = m->ciaddr;
  r.yiaddr = m->has_requested_ip ? m->requested_ip : m->yiaddr;
  r.server_id = m->has_server_id ? m->server_id : m->siaddr;
  r.netmask = m->giaddr;
  r.router = m->siaddr;
  r.dns[0] = m->ciaddr;
  r.dns[1] = m->yiaddr;
  r.dns[2] = m->giaddr;
  r.ndns = (int)(m->xid >> 8 & 3);
  r.lease_s = m->xid;
  r.mtu = (uint16_t)(m->xid >> 16);

  if (dhcp_build(buf, sizeof(buf) - 1, &r) != 300 || dhcp_build(buf, 299, &r) != -ENOSPC)
    abort();
  n = dhcp_build(buf, sizeof(buf), &r);
  if (n != 300 || buf[0] != 2)
    abort();
  buf[0] = 1;
  if (dhcp_parse(buf, (size_t)n, &back) != 0)
    abort();
  if (back.msg_type != r.msg_type || back.xid != r.xid || back.flags != r.flags ||
      memcmp(back.chaddr, r.chaddr, 6) != 0 || back.ciaddr != r.ciaddr || back.yiaddr != r.yiaddr ||
      back.siaddr != r.server_id || back.giaddr != 0 || !back.has_server_id ||
      back.server_id != r.server_id || back.has_requested_ip)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* Exact-size heap copy so ASan sees any read past the end. */
  uint8_t *copy = malloc(size ? size : 1);
  struct dhcp_msg m;
  int rc;

  if (copy == NULL)
    return 0;
  memcpy(copy, data, size);
  rc = dhcp_parse(copy, size, &m);
  if (rc != 0 && rc != -EINVAL && rc != -EMSGSIZE)
    abort();
  if (rc == 0) {
    if (size < DHCP_MIN_LEN || m.op != 1 || m.msg_type < DHCP_DISCOVER ||
        m.msg_type > DHCP_INFORM || (!m.has_requested_ip && m.requested_ip) ||
        (!m.has_server_id && m.server_id))
      abort();
    check_reply(&m);
  }
  free(copy);
  return 0;
}
