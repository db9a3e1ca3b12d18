#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/dhcp.h"

static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

/* A client message under construction, written byte by byte the way a
 * client would put it on the wire. */
struct msg {
  uint8_t b[1024];
  size_t len;
};

static void put(struct msg *m, const void *p, size_t n)
{
  cr_assert_leq(m->len + n, sizeof(m->b));
  if (n)
    memcpy(m->b + m->len, p, n);
  m->len += n;
}

static void put8(struct msg *m, uint8_t v)
{
  put(m, &v, 1);
}

static void put32(struct msg *m, uint32_t v)
{
  uint8_t b[4] = {v >> 24, v >> 16, v >> 8, v};
  put(m, b, 4);
}

/* BOOTREQUEST header and magic cookie (240 bytes). */
static void header(struct msg *m, uint32_t xid, uint16_t flags, uint32_t ciaddr)
{
  static const uint8_t zero[192];
  uint8_t chaddr[16] = {0};

  memcpy(chaddr, mac, 6);
  m->len = 0;
  put8(m, 1); /* op BOOTREQUEST */
  put8(m, 1); /* htype Ethernet */
  put8(m, 6); /* hlen */
  put8(m, 0); /* hops */
  put32(m, xid);
  put8(m, 0); /* secs */
  put8(m, 3);
  put8(m, flags >> 8);
  put8(m, flags & 0xff);
  put32(m, ciaddr);
  put32(m, 0); /* yiaddr */
  put32(m, 0); /* siaddr */
  put32(m, 0); /* giaddr */
  put(m, chaddr, 16);
  put(m, zero, 192); /* sname, file */
  put32(m, 0x63825363);
  cr_assert_eq(m->len, DHCP_MIN_LEN);
}

static void opt(struct msg *m, uint8_t code, const void *v, uint8_t len)
{
  put8(m, code);
  put8(m, len);
  put(m, v, len);
}

static void opt32(struct msg *m, uint8_t code, uint32_t v)
{
  uint8_t b[4] = {v >> 24, v >> 16, v >> 8, v};
  opt(m, code, b, 4);
}

static void client_id(struct msg *m)
{
  uint8_t id[7] = {1};
  memcpy(id + 1, mac, 6);
  opt(m, 61, id, 7);
}

/* busybox udhcpc: DISCOVER with a requested address, padded to 300 bytes. */
static void busybox_discover(struct msg *m)
{
  static const uint8_t prl[] = {1, 3, 6, 12, 15, 28, 42};
  static const uint8_t maxsize[] = {0x02, 0x40};

  header(m, 0x3903f326, 0x8000, 0);
  opt(m, 53, (uint8_t[]){1}, 1);
  client_id(m);
  opt32(m, 50, 0x0a00020a); /* 10.0.2.10 */
  opt(m, 57, maxsize, 2);
  opt(m, 55, prl, sizeof(prl));
  opt(m, 60, "udhcp 1.36.1", 12);
  opt(m, 12, "vm1", 3);
  put8(m, 255);
  while (m->len < 300)
    put8(m, 0);
}

/* dhclient: REQUEST in SELECTING state, pad bytes between options. */
static void dhclient_request(struct msg *m)
{
  static const uint8_t prl[] = {1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42};
  static const uint8_t maxsize[] = {0x05, 0xdc};

  header(m, 0xdeadbeef, 0, 0);
  opt(m, 53, (uint8_t[]){3}, 1);
  client_id(m);
  put8(m, 0);
  opt32(m, 50, 0x0a00020b); /* 10.0.2.11 */
  opt32(m, 54, 0x0a000202); /* 10.0.2.2 */
  opt(m, 55, prl, sizeof(prl));
  put8(m, 0);
  put8(m, 0);
  opt(m, 57, maxsize, 2);
  opt(m, 12, "debian", 6);
  put8(m, 255);
}

/* Parses an exact-size heap copy, so an ASan build sees any overread. */
static int parse(const uint8_t *p, size_t len, struct dhcp_msg *out)
{
  uint8_t *copy = malloc(len ? len : 1);
  cr_assert_not_null(copy);
  memcpy(copy, p, len);
  int rc = dhcp_parse(copy, len, out);
  free(copy);
  return rc;
}

Test(dhcp, busybox_discover)
{
  struct msg m;
  struct dhcp_msg d;

  busybox_discover(&m);
  cr_assert_eq(m.len, 300);
  cr_assert_eq(parse(m.b, m.len, &d), 0);
  cr_assert_eq(d.op, 1);
  cr_assert_eq(d.msg_type, DHCP_DISCOVER);
  cr_assert_eq(d.xid, 0x3903f326);
  cr_assert_eq(d.flags, 0x8000);
  cr_assert_eq(d.ciaddr, 0);
  cr_assert_eq(d.yiaddr, 0);
  cr_assert_eq(d.siaddr, 0);
  cr_assert_eq(d.giaddr, 0);
  cr_assert_arr_eq(d.chaddr, mac, 6);
  cr_assert(d.has_requested_ip);
  cr_assert_eq(d.requested_ip, 0x0a00020a);
  cr_assert_not(d.has_server_id);
  cr_assert_eq(d.server_id, 0);
}

Test(dhcp, dhclient_request)
{
  struct msg m;
  struct dhcp_msg d;

  dhclient_request(&m);
  cr_assert_eq(parse(m.b, m.len, &d), 0);
  cr_assert_eq(d.msg_type, DHCP_REQUEST);
  cr_assert_eq(d.xid, 0xdeadbeef);
  cr_assert_eq(d.flags, 0);
  cr_assert_arr_eq(d.chaddr, mac, 6);
  cr_assert(d.has_requested_ip);
  cr_assert_eq(d.requested_ip, 0x0a00020b);
  cr_assert(d.has_server_id);
  cr_assert_eq(d.server_id, 0x0a000202);
}

Test(dhcp, renew_and_release)
{
  struct msg m;
  struct dhcp_msg d;

  /* RENEWING: ciaddr set, no options 50/54. */
  header(&m, 7, 0, 0x0a00020b);
  opt(&m, 53, (uint8_t[]){3}, 1);
  client_id(&m);
  put8(&m, 255);
  cr_assert_eq(parse(m.b, m.len, &d), 0);
  cr_assert_eq(d.msg_type, DHCP_REQUEST);
  cr_assert_eq(d.ciaddr, 0x0a00020b);
  cr_assert_not(d.has_requested_ip);
  cr_assert_not(d.has_server_id);

  header(&m, 8, 0, 0x0a00020b);
  opt(&m, 53, (uint8_t[]){7}, 1);
  opt32(&m, 54, 0x0a000202);
  put8(&m, 255);
  cr_assert_eq(parse(m.b, m.len, &d), 0);
  cr_assert_eq(d.msg_type, DHCP_RELEASE);
  cr_assert_eq(d.xid, 8);
  cr_assert(d.has_server_id);
  cr_assert_eq(d.server_id, 0x0a000202);
}

Test(dhcp, options_end_and_padding)
{
  struct msg m;
  struct dhcp_msg d;

  /* The buffer may end the option list without 255 ... */
  header(&m, 1, 0, 0);
  opt(&m, 53, (uint8_t[]){8}, 1);
  cr_assert_eq(parse(m.b, m.len, &d), 0);
  cr_assert_eq(d.msg_type, DHCP_INFORM);
  /* ... and nothing after 255 is read, not even a malformed option. */
  put8(&m, 255);
  put8(&m, 50);
  put8(&m, 200);
  cr_assert_eq(parse(m.b, m.len, &d), 0);
  cr_assert_not(d.has_requested_ip);
  /* Option 53 after 255 does not count. */
  header(&m, 1, 0, 0);
  put8(&m, 255);
  opt(&m, 53, (uint8_t[]){1}, 1);
  cr_assert_eq(parse(m.b, m.len, &d), -EINVAL);
  /* The last option 53 wins; unknown options of any length are skipped. */
  header(&m, 1, 0, 0);
  opt(&m, 53, (uint8_t[]){1}, 1);
  opt(&m, 43, (uint8_t[255]){0}, 255);
  opt(&m, 224, NULL, 0);
  opt(&m, 53, (uint8_t[]){4}, 1);
  put8(&m, 255);
  cr_assert_eq(parse(m.b, m.len, &d), 0);
  cr_assert_eq(d.msg_type, DHCP_DECLINE);
}

Test(dhcp, file_and_sname_not_scanned)
{
  struct msg m;
  struct dhcp_msg d;

  /* Option 52 asks for overload; unsupported, so the 53 in file is unseen. */
  header(&m, 1, 0, 0);
  m.b[108] = 53;
  m.b[109] = 1;
  m.b[110] = 1;
  m.b[111] = 255;
  opt(&m, 52, (uint8_t[]){1}, 1);
  put8(&m, 255);
  cr_assert_eq(parse(m.b, m.len, &d), -EINVAL);
}

Test(dhcp, bad_header)
{
  struct msg m;
  struct dhcp_msg d;

  busybox_discover(&m);
  m.b[0] = 2; /* BOOTREPLY */
  cr_assert_eq(parse(m.b, m.len, &d), -EINVAL);
  busybox_discover(&m);
  m.b[1] = 6; /* IEEE 802 */
  cr_assert_eq(parse(m.b, m.len, &d), -EINVAL);
  busybox_discover(&m);
  m.b[2] = 16; /* hlen */
  cr_assert_eq(parse(m.b, m.len, &d), -EINVAL);
  busybox_discover(&m);
  m.b[2] = 0;
  cr_assert_eq(parse(m.b, m.len, &d), -EINVAL);
  busybox_discover(&m);
  m.b[3] = 1; /* hops: a relayed message is fine */
  cr_assert_eq(parse(m.b, m.len, &d), 0);
}

Test(dhcp, missing_cookie)
{
  struct msg m;
  struct dhcp_msg d;

  for (int i = 236; i < 240; i++) {
    busybox_discover(&m);
    m.b[i] ^= 0x01;
    cr_assert_eq(parse(m.b, m.len, &d), -EINVAL, "cookie byte %d", i);
  }
  /* Plain BOOTP: 236-byte header with the options area taken by vendor data. */
  busybox_discover(&m);
  memmove(m.b + 236, m.b + 240, m.len - 240);
  cr_assert_eq(parse(m.b, m.len - 4, &d), -EINVAL);
  cr_assert_eq(parse(m.b, 236, &d), -EINVAL);
}

Test(dhcp, option_past_end)
{
  struct msg m;
  struct dhcp_msg d;

  header(&m, 1, 0, 0);
  opt(&m, 53, (uint8_t[]){1}, 1);
  put8(&m, 12);
  put8(&m, 10); /* hostname of 10 bytes, 3 present */
  put(&m, "vm1", 3);
  cr_assert_eq(parse(m.b, m.len, &d), -EMSGSIZE);
  /* A code byte with no length byte. */
  header(&m, 1, 0, 0);
  opt(&m, 53, (uint8_t[]){1}, 1);
  put8(&m, 61);
  cr_assert_eq(parse(m.b, m.len, &d), -EMSGSIZE);
  /* Option 53 itself cut short. */
  header(&m, 1, 0, 0);
  put8(&m, 53);
  put8(&m, 1);
  cr_assert_eq(parse(m.b, m.len, &d), -EMSGSIZE);
}

Test(dhcp, option_53_and_addresses)
{
  struct msg m;
  struct dhcp_msg d;

  header(&m, 1, 0, 0);
  client_id(&m);
  opt32(&m, 50, 0x0a00020a);
  put8(&m, 255);
  cr_assert_eq(parse(m.b, m.len, &d), -EINVAL); /* no option 53 */

  const uint8_t bad_types[] = {0, 9, 255};
  for (size_t i = 0; i < sizeof(bad_types); i++) {
    header(&m, 1, 0, 0);
    opt(&m, 53, &bad_types[i], 1);
    put8(&m, 255);
    cr_assert_eq(parse(m.b, m.len, &d), -EINVAL, "type %u", bad_types[i]);
  }
  header(&m, 1, 0, 0);
  opt(&m, 53, (uint8_t[]){1, 1}, 2);
  put8(&m, 255);
  cr_assert_eq(parse(m.b, m.len, &d), -EINVAL);
  header(&m, 1, 0, 0);
  opt(&m, 53, NULL, 0);
  put8(&m, 255);
  cr_assert_eq(parse(m.b, m.len, &d), -EINVAL);

  header(&m, 1, 0, 0);
  opt(&m, 53, (uint8_t[]){3}, 1);
  opt(&m, 50, (uint8_t[]){10, 0, 2}, 3);
  put8(&m, 255);
  cr_assert_eq(parse(m.b, m.len, &d), -EINVAL);
  header(&m, 1, 0, 0);
  opt(&m, 53, (uint8_t[]){3}, 1);
  opt(&m, 54, (uint8_t[]){10, 0, 2, 2, 0}, 5);
  put8(&m, 255);
  cr_assert_eq(parse(m.b, m.len, &d), -EINVAL);
}

Test(dhcp, truncated_every_length)
{
  struct msg m;
  struct dhcp_msg d;

  dhclient_request(&m);
  /* Header and cookie cut anywhere: -EINVAL. */
  for (size_t n = 0; n < DHCP_MIN_LEN; n++)
    cr_assert_eq(parse(m.b, n, &d), -EINVAL, "len %zu", n);
  /* Cut inside the options: only the three defined outcomes, and the cut
   * right after option 53 (before anything else) still parses. */
  for (size_t n = DHCP_MIN_LEN; n <= m.len; n++) {
    int rc = parse(m.b, n, &d);
    cr_assert(rc == 0 || rc == -EINVAL || rc == -EMSGSIZE, "len %zu rc %d", n, rc);
  }
  cr_assert_eq(parse(m.b, DHCP_MIN_LEN, &d), -EINVAL);
  cr_assert_eq(parse(m.b, DHCP_MIN_LEN + 2, &d), -EMSGSIZE);
  cr_assert_eq(parse(m.b, DHCP_MIN_LEN + 3, &d), 0);
  cr_assert_eq(parse(m.b, DHCP_MIN_LEN + 5, &d), -EMSGSIZE);
  cr_assert_eq(dhcp_parse(NULL, 0, &d), -EINVAL);
  cr_assert_eq(dhcp_parse(NULL, 300, &d), -EINVAL);
}

Test(dhcp, huge_input)
{
  size_t big = 1 << 20;
  uint8_t *huge = malloc(big);
  struct msg m;
  struct dhcp_msg d;

  cr_assert_not_null(huge);
  memset(huge, 0xff, big);
  cr_assert_eq(dhcp_parse(huge, big, &d), -EINVAL);
  /* A valid message followed by a megabyte of pad options, no end. */
  memset(huge, 0, big);
  header(&m, 42, 0, 0);
  opt(&m, 53, (uint8_t[]){1}, 1);
  memcpy(huge, m.b, m.len);
  cr_assert_eq(dhcp_parse(huge, big, &d), 0);
  cr_assert_eq(d.xid, 42);
  cr_assert_eq(d.msg_type, DHCP_DISCOVER);
  /* The same with a long option at the very end that does not fit. */
  huge[big - 2] = 12;
  huge[big - 1] = 5;
  cr_assert_eq(dhcp_parse(huge, big, &d), -EMSGSIZE);
  free(huge);
}

/* ---- dhcp_build, read back byte by byte ---- */

static uint32_t be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Walks the options of a built reply; returns the value of code (its length
 * in *olen) or NULL. Also asserts the list is well formed and ends in 255. */
static const uint8_t *find_opt(const uint8_t *b, int len, uint8_t code, uint8_t *olen)
{
  const uint8_t *found = NULL;
  int i = 240;

  for (;;) {
    cr_assert_lt(i, len, "no end option");
    if (b[i] == 255)
      break;
    if (b[i] == 0) {
      i++;
      continue;
    }
    cr_assert_lt(i + 1, len);
    cr_assert_leq(i + 2 + b[i + 1], len);
    if (b[i] == code) {
      cr_assert_null(found, "option %u twice", code);
      found = b + i + 2;
      *olen = b[i + 1];
    }
    i += 2 + b[i + 1];
  }
  for (i++; i < len; i++)
    cr_assert_eq(b[i], 0, "padding byte %d", i);
  return found;
}

static void check_fixed(const uint8_t *b, int n, const struct dhcp_reply *r)
{
  static const uint8_t zero[192];

  cr_assert_geq(n, 300);
  cr_assert_eq(b[0], 2);
  cr_assert_eq(b[1], 1);
  cr_assert_eq(b[2], 6);
  cr_assert_eq(b[3], 0);
  cr_assert_eq(be32(b + 4), r->xid);
  cr_assert_eq(b[8], 0);
  cr_assert_eq(b[9], 0);
  cr_assert_eq(b[10] << 8 | b[11], r->flags);
  cr_assert_eq(be32(b + 12), r->ciaddr);
  cr_assert_eq(be32(b + 16), r->yiaddr);
  cr_assert_eq(be32(b + 20), r->server_id);
  cr_assert_eq(be32(b + 24), 0);
  cr_assert_arr_eq(b + 28, r->chaddr, 6);
  cr_assert_arr_eq(b + 34, zero, 10);
  cr_assert_arr_eq(b + 44, zero, 192);
  cr_assert_eq(be32(b + 236), 0x63825363);
}

static struct dhcp_reply offer(void)
{
  struct dhcp_reply r = {
      .msg_type = DHCP_OFFER,
      .xid = 0x3903f326,
      .flags = 0x8000,
      .yiaddr = 0x0a00020a,
      .server_id = 0x0a000202,
      .netmask = 0xffffff00,
      .router = 0x0a000202,
      .dns = {0x08080808, 0x01010101, 0x09090909},
      .ndns = 3,
      .lease_s = 86400,
      .mtu = 1400,
  };
  memcpy(r.chaddr, mac, 6);
  return r;
}

Test(dhcp, build_offer)
{
  uint8_t b[1500];
  struct dhcp_reply r = offer();
  const uint8_t *v;
  uint8_t l = 0;

  memset(b, 0xaa, sizeof(b));
  int n = dhcp_build(b, sizeof(b), &r);
  cr_assert_eq(n, 300);
  cr_assert_eq(b[300], 0xaa, "wrote past the returned length");
  check_fixed(b, n, &r);
  cr_assert_eq(b[240], 53, "option 53 first");
  v = find_opt(b, n, 53, &l);
  cr_assert(v && l == 1 && v[0] == DHCP_OFFER);
  v = find_opt(b, n, 54, &l);
  cr_assert(v && l == 4 && be32(v) == 0x0a000202);
  v = find_opt(b, n, 1, &l);
  cr_assert(v && l == 4 && be32(v) == 0xffffff00);
  v = find_opt(b, n, 3, &l);
  cr_assert(v && l == 4 && be32(v) == 0x0a000202);
  v = find_opt(b, n, 6, &l);
  cr_assert(v && l == 12);
  cr_assert_eq(be32(v), 0x08080808);
  cr_assert_eq(be32(v + 4), 0x01010101);
  cr_assert_eq(be32(v + 8), 0x09090909);
  v = find_opt(b, n, 51, &l);
  cr_assert(v && l == 4 && be32(v) == 86400);
  v = find_opt(b, n, 26, &l);
  cr_assert(v && l == 2 && (v[0] << 8 | v[1]) == 1400);

  /* Read back with our own parser, as a request. */
  struct dhcp_msg d;
  b[0] = 1;
  cr_assert_eq(dhcp_parse(b, (size_t)n, &d), 0);
  cr_assert_eq(d.msg_type, DHCP_OFFER);
  cr_assert_eq(d.xid, r.xid);
  cr_assert_eq(d.flags, r.flags);
  cr_assert_eq(d.yiaddr, r.yiaddr);
  cr_assert_eq(d.siaddr, r.server_id);
  cr_assert_arr_eq(d.chaddr, mac, 6);
  cr_assert(d.has_server_id);
  cr_assert_eq(d.server_id, r.server_id);
}

Test(dhcp, build_ack_one_dns_no_mtu)
{
  uint8_t b[300];
  struct dhcp_reply r = offer();
  const uint8_t *v;
  uint8_t l = 0;

  r.msg_type = DHCP_ACK;
  r.flags = 0;
  r.ciaddr = 0x0a00020a; /* renewing */
  r.ndns = 1;
  r.mtu = 0;
  r.lease_s = 0xffffffff;
  int n = dhcp_build(b, sizeof(b), &r);
  cr_assert_eq(n, 300);
  check_fixed(b, n, &r);
  v = find_opt(b, n, 53, &l);
  cr_assert(v && l == 1 && v[0] == DHCP_ACK);
  v = find_opt(b, n, 6, &l);
  cr_assert(v && l == 4 && be32(v) == 0x08080808);
  v = find_opt(b, n, 51, &l);
  cr_assert(v && l == 4 && be32(v) == 0xffffffff);
  cr_assert_null(find_opt(b, n, 26, &l));
  cr_assert_not_null(find_opt(b, n, 1, &l));
  cr_assert_not_null(find_opt(b, n, 3, &l));
  cr_assert_not_null(find_opt(b, n, 54, &l));

  r.ndns = 0;
  n = dhcp_build(b, sizeof(b), &r);
  cr_assert_eq(n, 300);
  cr_assert_null(find_opt(b, n, 6, &l));
  cr_assert_not_null(find_opt(b, n, 51, &l));
}

Test(dhcp, build_nak)
{
  uint8_t b[512];
  struct dhcp_reply r = offer();
  const uint8_t *v;
  uint8_t l = 0;

  r.msg_type = DHCP_NAK;
  r.yiaddr = 0;
  int n = dhcp_build(b, sizeof(b), &r);
  cr_assert_eq(n, 300);
  check_fixed(b, n, &r);
  v = find_opt(b, n, 53, &l);
  cr_assert(v && l == 1 && v[0] == DHCP_NAK);
  v = find_opt(b, n, 54, &l);
  cr_assert(v && l == 4 && be32(v) == 0x0a000202);
  const uint8_t absent[] = {1, 3, 6, 26, 51};
  for (size_t i = 0; i < sizeof(absent); i++)
    cr_assert_null(find_opt(b, n, absent[i], &l), "option %u in NAK", absent[i]);
  /* Exactly 53, 54, end. */
  cr_assert_eq(b[249], 255);
}

Test(dhcp, build_errors)
{
  uint8_t b[300];
  struct dhcp_reply r = offer();

  memset(b, 0xaa, sizeof(b));
  cr_assert_eq(dhcp_build(b, 299, &r), -ENOSPC);
  cr_assert_eq(dhcp_build(b, 0, &r), -ENOSPC);
  for (size_t i = 0; i < sizeof(b); i++)
    cr_assert_eq(b[i], 0xaa, "byte %zu written on -ENOSPC", i);
  cr_assert_eq(dhcp_build(b, 300, &r), 300);

  r.ndns = 4;
  cr_assert_eq(dhcp_build(b, sizeof(b), &r), -EINVAL);
  r.ndns = -1;
  cr_assert_eq(dhcp_build(b, sizeof(b), &r), -EINVAL);
  r.ndns = 2;
  const uint8_t bad[] = {0, DHCP_DISCOVER, DHCP_REQUEST, DHCP_DECLINE, DHCP_RELEASE, DHCP_INFORM,
                         9};
  for (size_t i = 0; i < sizeof(bad); i++) {
    r.msg_type = bad[i];
    cr_assert_eq(dhcp_build(b, sizeof(b), &r), -EINVAL, "type %u", bad[i]);
  }
}
