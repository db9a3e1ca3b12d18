/*
 * dhcp: DHCP wire codec. See include/wtrelay/dhcp.h.
 *
 * dhcp_parse() walks a client message with a cursor: the fixed BOOTP header
 * (only BOOTREQUEST, htype 1, hlen 6 is accepted), the magic cookie, then the
 * options up to 255 (end) or the end of the buffer, whichever comes first;
 * bytes after the end option are padding and ignored. Only the options the
 * server acts on are kept (53, 50, 54); each of them must have its exact
 * length, any other option is skipped after its length is checked.
 *
 * dhcp_build() knows the exact size of its reply before it writes a byte, so
 * it either fills the buffer whole or returns -ENOSPC having written nothing.
 * It owns no state and allocates nothing.
 */
#include "wtrelay/dhcp.h"

#include <errno.h>
#include <string.h>

#include "wtrelay/cursor.h"

#define DHCP_MAGIC 0x63825363u
#define DHCP_BOOTREQUEST 1
#define DHCP_BOOTREPLY 2
#define DHCP_HTYPE_ETHER 1
#define DHCP_HLEN_ETHER 6
#define DHCP_CHADDR_LEN 16
#define DHCP_SNAME_LEN 64
#define DHCP_FILE_LEN 128
#define DHCP_REPLY_MIN 300 /* BOOTP minimum message (RFC 951), some clients insist */

enum {
  OPT_PAD = 0,
  OPT_NETMASK = 1,
  OPT_ROUTER = 3,
  OPT_DNS = 6,
  OPT_MTU = 26,
  OPT_REQUESTED_IP = 50,
  OPT_LEASE_TIME = 51,
  OPT_MSG_TYPE = 53,
  OPT_SERVER_ID = 54,
  OPT_END = 255,
};

/* The fixed header and the cookie. -EINVAL for anything that is not an
 * Ethernet BOOTREQUEST, a short header included. */
static int parse_header(struct cursor *c, struct dhcp_msg *m)
{
  uint8_t htype, hlen, hops;
  uint16_t secs;
  uint32_t magic;
  const uint8_t *chaddr;

  if (cursor_u8(c, &m->op) < 0 || cursor_u8(c, &htype) < 0 || cursor_u8(c, &hlen) < 0 ||
      cursor_u8(c, &hops) < 0 || cursor_u32be(c, &m->xid) < 0 || cursor_u16be(c, &secs) < 0 ||
      cursor_u16be(c, &m->flags) < 0 || cursor_u32be(c, &m->ciaddr) < 0 ||
      cursor_u32be(c, &m->yiaddr) < 0 || cursor_u32be(c, &m->siaddr) < 0 ||
      cursor_u32be(c, &m->giaddr) < 0 || cursor_bytes(c, DHCP_CHADDR_LEN, &chaddr) < 0 ||
      cursor_skip(c, DHCP_SNAME_LEN + DHCP_FILE_LEN) < 0 || cursor_u32be(c, &magic) < 0)
    return -EINVAL;
  if (m->op != DHCP_BOOTREQUEST || htype != DHCP_HTYPE_ETHER || hlen != DHCP_HLEN_ETHER ||
      magic != DHCP_MAGIC)
    return -EINVAL;
  memcpy(m->chaddr, chaddr, sizeof(m->chaddr));
  return 0;
}

/* A 4-byte address option; any other length is a malformed message. */
static int opt_addr(const uint8_t *v, uint8_t len, uint32_t *out)
{
  struct cursor c;

  if (len != 4)
    return -EINVAL;
  cursor_init(&c, v, len);
  return cursor_u32be(&c, out) < 0 ? -EINVAL : 0;
}

static int parse_option(struct dhcp_msg *m, uint8_t code, const uint8_t *v, uint8_t len)
{
  switch (code) {
  case OPT_MSG_TYPE:
    if (len != 1 || v[0] < DHCP_DISCOVER || v[0] > DHCP_INFORM)
      return -EINVAL;
    m->msg_type = v[0];
    return 0;
  case OPT_REQUESTED_IP:
    m->has_requested_ip = true;
    return opt_addr(v, len, &m->requested_ip);
  case OPT_SERVER_ID:
    m->has_server_id = true;
    return opt_addr(v, len, &m->server_id);
  default:
    return 0; /* not ours; its length was checked by the caller */
  }
}

int dhcp_parse(const uint8_t *p, size_t len, struct dhcp_msg *m)
{
  struct cursor c;
  int rc;

  memset(m, 0, sizeof(*m));
  cursor_init(&c, p, len);
  rc = parse_header(&c, m);
  if (rc < 0)
    return rc;
  for (;;) {
    uint8_t code, olen;
    const uint8_t *v;

    if (cursor_u8(&c, &code) < 0 || code == OPT_END)
      break; /* a missing end option is tolerated: the buffer ends the list */
    if (code == OPT_PAD)
      continue;
    if (cursor_u8(&c, &olen) < 0 || cursor_bytes(&c, olen, &v) < 0)
      return -EMSGSIZE;
    rc = parse_option(m, code, v, olen);
    if (rc < 0)
      return rc;
  }
  return m->msg_type ? 0 : -EINVAL;
}

/* Writer over a buffer whose size dhcp_build() has already checked. */
struct out {
  uint8_t *p;
  size_t off;
};

static void put8(struct out *o, uint8_t v)
{
  o->p[o->off++] = v;
}

static void put16(struct out *o, uint16_t v)
{
  put8(o, (uint8_t)(v >> 8));
  put8(o, (uint8_t)v);
}

static void put32(struct out *o, uint32_t v)
{
  put16(o, (uint16_t)(v >> 16));
  put16(o, (uint16_t)v);
}

static void put_opt32(struct out *o, uint8_t code, uint32_t v)
{
  put8(o, code);
  put8(o, 4);
  put32(o, v);
}

/* Bytes of options after the cookie, the end option included. */
static size_t options_len(const struct dhcp_reply *r)
{
  size_t n = 3 + 6 + 1; /* 53, 54, 255 */

  if (r->msg_type == DHCP_NAK)
    return n;
  n += 6 + 6 + 6; /* 1, 3, 51 */
  if (r->ndns > 0)
    n += 2 + 4 * (size_t)r->ndns;
  if (r->mtu != 0)
    n += 4;
  return n;
}

int dhcp_build(uint8_t *buf, size_t cap, const struct dhcp_reply *r)
{
  struct out o = {buf, 0};
  size_t len;

  if (r->msg_type != DHCP_OFFER && r->msg_type != DHCP_ACK && r->msg_type != DHCP_NAK)
    return -EINVAL;
  if (r->ndns < 0 || r->ndns > 3)
    return -EINVAL;
  len = DHCP_MIN_LEN + options_len(r);
  if (len < DHCP_REPLY_MIN)
    len = DHCP_REPLY_MIN;
  if (cap < len)
    return -ENOSPC;
  memset(buf, 0, len); /* hops, secs, giaddr, chaddr tail, sname, file, padding */

  put8(&o, DHCP_BOOTREPLY);
  put8(&o, DHCP_HTYPE_ETHER);
  put8(&o, DHCP_HLEN_ETHER);
  put8(&o, 0); /* hops */
  put32(&o, r->xid);
  put16(&o, 0); /* secs */
  put16(&o, r->flags);
  put32(&o, r->ciaddr);
  put32(&o, r->yiaddr);
  put32(&o, r->server_id); /* siaddr */
  put32(&o, 0);            /* giaddr: replies go straight to the LAN */
  memcpy(buf + o.off, r->chaddr, sizeof(r->chaddr));
  o.off += DHCP_CHADDR_LEN + DHCP_SNAME_LEN + DHCP_FILE_LEN;
  put32(&o, DHCP_MAGIC);

  put8(&o, OPT_MSG_TYPE);
  put8(&o, 1);
  put8(&o, r->msg_type);
  put_opt32(&o, OPT_SERVER_ID, r->server_id);
  if (r->msg_type != DHCP_NAK) {
    put_opt32(&o, OPT_NETMASK, r->netmask);
    put_opt32(&o, OPT_ROUTER, r->router);
    if (r->ndns > 0) {
      put8(&o, OPT_DNS);
      put8(&o, (uint8_t)(4 * r->ndns));
      for (int i = 0; i < r->ndns; i++)
        put32(&o, r->dns[i]);
    }
    put_opt32(&o, OPT_LEASE_TIME, r->lease_s);
    if (r->mtu != 0) {
      put8(&o, OPT_MTU);
      put8(&o, 2);
      put16(&o, r->mtu);
    }
  }
  put8(&o, OPT_END);
  return (int)len;
}
