#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/bavy.h"
#include "wtrelay/ippool.h"

static int parse(const char *s, struct bavy_ctrl *m)
{
  return bavy_ctrl_parse((const uint8_t *)s, strlen(s), m);
}

Test(bavy, register_valid)
{
  struct bavy_ctrl m;
  cr_assert_eq(parse("{\"type\":\"Register\",\"mac\":[82,84,0,171,205,239]}", &m), 0);
  cr_assert_eq(m.type, BAVY_MSG_REGISTER);
  uint8_t want[6] = {82, 84, 0, 171, 205, 239};
  cr_assert_arr_eq(m.mac, want, 6);
  cr_assert_eq(parse("{\"mac\":[2,0,0,0,0,1],\"extra\":{\"a\":1},\"type\":\"Register\"}", &m), 0);
  cr_assert_eq(m.mac[5], 1);
}

Test(bavy, register_bad_mac)
{
  struct bavy_ctrl m;
  const char *bad[] = {
      "{\"type\":\"Register\"}",
      "{\"type\":\"Register\",\"mac\":\"52:54:00:00:00:01\"}",
      "{\"type\":\"Register\",\"mac\":[82,84,0,171,205]}",
      "{\"type\":\"Register\",\"mac\":[82,84,0,171,205,239,1]}",
      "{\"type\":\"Register\",\"mac\":[82,84,0,171,205,256]}",
      "{\"type\":\"Register\",\"mac\":[82,84,0,171,205,-1]}",
      "{\"type\":\"Register\",\"mac\":[82,84,0,171,205,1.5]}",
      "{\"type\":\"Register\",\"mac\":[82,84,0,171,205,\"1\"]}",
      "{\"type\":\"Register\",\"mac\":[1,0,0,0,0,1]}",
      "{\"type\":\"Register\",\"mac\":[0,0,0,0,0,0]}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
    cr_assert_eq(parse(bad[i], &m), -EINVAL, "%s", bad[i]);
}

Test(bavy, bad_json_and_bounds)
{
  struct bavy_ctrl m;
  cr_assert_eq(parse("{\"type\":\"Register\",\"mac\":[1,2", &m), -EBADMSG);
  cr_assert_eq(parse("[1,2,3]", &m), -EBADMSG);
  cr_assert_eq(parse("{\"type\":5}", &m), -EBADMSG);
  cr_assert_eq(parse("", &m), -EBADMSG);
  cr_assert_eq(bavy_ctrl_parse((const uint8_t *)"{\"type\"\0:1}", 11, &m), -EBADMSG);
  cr_assert_eq(bavy_ctrl_parse((const uint8_t *)"{\"type\":\"\xff\xfe\"}", 14, &m), -EBADMSG);
  size_t big = 1 << 20;
  uint8_t *huge = malloc(big);
  memset(huge, '[', big);
  cr_assert_eq(bavy_ctrl_parse(huge, big, &m), -EMSGSIZE);
  cr_assert_eq(bavy_ctrl_parse(huge, 4000, &m), -EBADMSG); /* deep nesting */
  free(huge);
  cr_assert_eq(parse("{\"type\":\"Heartbeat\"}", &m), 0);
  cr_assert_eq(m.type, BAVY_MSG_HEARTBEAT);
  cr_assert_eq(parse("{\"type\":\"Disconnect\"}", &m), 0);
  cr_assert_eq(m.type, BAVY_MSG_DISCONNECT);
  cr_assert_eq(parse("{\"type\":\"PeerListRequest\"}", &m), 0);
  cr_assert_eq(m.type, BAVY_MSG_UNKNOWN);
  cr_assert_str_eq(m.name, "PeerListRequest");
}

Test(bavy, writers_exact_bytes)
{
  char b[256];
  uint8_t ip[4] = {10, 0, 2, 10}, gw[4] = {10, 0, 2, 2}, nm[4] = {255, 255, 255, 0},
          dns[4] = {8, 8, 8, 8};
  cr_assert_gt(bavy_write_assigned(b, sizeof(b), ip, gw, nm, dns), 0);
  cr_assert_str_eq(b, "{\"type\":\"Assigned\",\"ip\":[10,0,2,10],\"gateway\":[10,0,2,2],"
                      "\"netmask\":[255,255,255,0],\"dns\":[8,8,8,8]}");
  cr_assert_eq(bavy_write_heartbeat_ack(b, sizeof(b)), 23);
  cr_assert_str_eq(b, "{\"type\":\"HeartbeatAck\"}");
  cr_assert_gt(bavy_write_error(b, sizeof(b), "IP pool exhausted"), 0);
  cr_assert_str_eq(b, "{\"type\":\"Error\",\"message\":\"IP pool exhausted\"}");
  cr_assert_gt(bavy_write_error(b, sizeof(b), "a\"b\n"), 0);
  cr_assert_str_eq(b, "{\"type\":\"Error\",\"message\":\"a\\\"b\\u000a\"}");
  uint8_t mac[6] = {82, 84, 0, 171, 205, 239};
  cr_assert_gt(bavy_write_register(b, sizeof(b), mac), 0);
  cr_assert_str_eq(b, "{\"type\":\"Register\",\"mac\":[82,84,0,171,205,239]}");
  cr_assert_eq(bavy_write_assigned(b, 10, ip, gw, nm, dns), -ENOSPC);
  cr_assert_eq(bavy_write_error(b, 10, "x"), -ENOSPC);
}

Test(bavy, server_parse_roundtrip)
{
  struct bavy_server_msg m;
  const char *s = "{\"type\":\"Assigned\",\"ip\":[10,0,2,9],\"gateway\":[10,0,2,2],"
                  "\"netmask\":[255,255,255,0],\"dns\":[8,8,8,8],\"mtu\":1400}";
  cr_assert_eq(bavy_ctrl_parse_server((const uint8_t *)s, strlen(s), &m), 0);
  cr_assert_eq(m.type, BAVY_SMSG_ASSIGNED);
  cr_assert_eq(m.ip[3], 9);
  cr_assert_eq(m.netmask[0], 255);
}

/* A long Error message or type name is cut at a character boundary, never
 * inside a multi-byte UTF-8 sequence (found by fuzz_bavy_ctrl: the cut
 * message no longer survived the writer and re-parse). */
Test(bavy, long_strings_cut_at_utf8_boundary)
{
  struct bavy_server_msg m;
  char s[600], out[BAVY_CTRL_MAX];
  for (int lead = 253; lead <= 255; lead++) {
    /* lead ASCII bytes then U+00E9 (2 bytes) and U+20AC (3 bytes) */
    char run[256];
    memset(run, 'a', (size_t)lead);
    run[lead] = '\0';
    int n = snprintf(s, sizeof(s), "{\"type\":\"Error\",\"message\":\"%s\u00e9\u20ac\"}", run);
    cr_assert_eq(bavy_ctrl_parse_server((const uint8_t *)s, (size_t)n, &m), 0);
    size_t len = strlen(m.message);
    cr_assert_leq(len, sizeof(m.message) - 1);
    /* what was kept ends on a whole character: 255 - lead bytes are left
     * after the ASCII run; a 2-byte character fits only in 2 or more */
    size_t want = (size_t)lead + (255 - lead >= 2 ? 2 : 0);
    cr_assert_eq(len, want, "lead %d: kept %zu bytes, want %zu", lead, len, want);
    int w = bavy_write_error(out, sizeof(out), m.message);
    struct bavy_server_msg m2;
    cr_assert_gt(w, 0);
    cr_assert_eq(bavy_ctrl_parse_server((const uint8_t *)out, (size_t)w, &m2), 0);
    cr_assert_str_eq(m2.message, m.message);
  }
  struct bavy_ctrl c;
  const char *t = "{\"type\":\"abcdefghijklmnopqrstuvwxyz01234\u00e9\"}";
  cr_assert_eq(bavy_ctrl_parse((const uint8_t *)t, strlen(t), &c), 0);
  cr_assert_eq(c.type, BAVY_MSG_UNKNOWN);
  cr_assert_str_eq(c.name, "abcdefghijklmnopqrstuvwxyz01234");
}

Test(bavy, chunk_header)
{
  struct bavy_chunk_hdr h;
  uint8_t p[910] = {0x12, 0x34, 1, 3};
  cr_assert_eq(bavy_chunk_header_parse(p, 104, &h), 0);
  cr_assert_eq(h.chunk_id, 0x1234);
  cr_assert_eq(h.index, 1);
  cr_assert_eq(h.total, 3);
  cr_assert_eq(h.len, 100);
  p[2] = 3;
  cr_assert_eq(bavy_chunk_header_parse(p, 104, &h), -EINVAL);
  p[2] = 0;
  p[3] = 0;
  cr_assert_eq(bavy_chunk_header_parse(p, 104, &h), -EINVAL);
  p[3] = 1;
  cr_assert_eq(bavy_chunk_header_parse(p, 3, &h), -ENODATA);
  cr_assert_eq(bavy_chunk_header_parse(p, 4, &h), -EINVAL);
  cr_assert_eq(bavy_chunk_header_parse(p, 905, &h), -EINVAL);
  cr_assert_eq(bavy_chunk_header_parse(p, 904, &h), 0);
}

Test(ippool, top_down_sticky_busy_exhaust_reclaim)
{
  struct ippool p;
  uint32_t ip;
  uint8_t mac[6] = {2, 0, 0, 0, 0, 0};
  cr_assert_eq(ippool_init(&p, 0x0a00020a, 0x0a0002fe), 0);
  mac[5] = 1;
  cr_assert_eq(ippool_acquire(&p, mac, &ip, 1), 0);
  cr_assert_eq(ip, 0x0a0002fe);
  cr_assert_eq(ippool_acquire(&p, mac, &ip, 1), -EBUSY);
  uint8_t m2[6] = {2, 0, 0, 0, 0, 2};
  cr_assert_eq(ippool_acquire(&p, m2, &ip, 1), 0);
  cr_assert_eq(ip, 0x0a0002fd);
  ippool_release(&p, 0x0a0002fe, 5);
  uint8_t m3[6] = {2, 0, 0, 0, 0, 3};
  cr_assert_eq(ippool_acquire(&p, m3, &ip, 6), 0);
  cr_assert_eq(ip, 0x0a0002fc, "a new MAC takes a never-used address first");
  cr_assert_eq(ippool_acquire(&p, mac, &ip, 7), 0);
  cr_assert_eq(ip, 0x0a0002fe, "the old MAC gets its address back");
  /* Fill the pool: 245 addresses in all. */
  uint32_t got = 3;
  for (uint32_t i = 0; i < 300; i++) {
    uint8_t m[6] = {2, 1, 0, 0, (uint8_t)(i >> 8), (uint8_t)i};
    if (ippool_acquire(&p, m, &ip, 10) == 0)
      got++;
  }
  cr_assert_eq(got, 245);
  uint8_t m4[6] = {2, 9, 9, 9, 9, 9};
  cr_assert_eq(ippool_acquire(&p, m4, &ip, 11), -ENOSPC);
  ippool_release(&p, 0x0a0002fd, 12);
  ippool_release(&p, 0x0a0002fc, 13);
  cr_assert_eq(ippool_acquire(&p, m4, &ip, 14), 0);
  cr_assert_eq(ip, 0x0a0002fd, "reclaims the address released longest ago");
  uint8_t who[6];
  cr_assert(ippool_lookup_ip(&p, 0x0a0002fd, who));
  cr_assert_arr_eq(who, m4, 6);
  cr_assert(!ippool_lookup_ip(&p, 0x0a0002fc, NULL));
  cr_assert(ippool_lookup_mac(&p, m4, &ip));
  ippool_fini(&p);
}
