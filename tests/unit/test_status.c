/*
 * status (src/app/status.c): the query, JSON strings from hostile bytes,
 * paging over several workers' snapshots, and the bound on the response
 * (it stops early, still valid JSON, with the next offset).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

Test(status, query)
{
  uint32_t off, lim;
  cr_assert_eq(status_query_parse("", &off, &lim), 0);
  cr_assert_eq(off, 0);
  cr_assert_eq(lim, STATUS_LIMIT_DEFAULT);
  cr_assert_eq(status_query_parse("x=1&offset=3&limit=7", &off, &lim), 0);
  cr_assert_eq(off, 3);
  cr_assert_eq(lim, 7);
  cr_assert_eq(status_query_parse("limit=999999", &off, &lim), 0);
  cr_assert_eq(lim, STATUS_LIMIT_MAX);
  cr_assert_eq(status_query_parse("limit=0", &off, &lim), -EINVAL);
  cr_assert_eq(status_query_parse("offset=-1", &off, &lim), -EINVAL);
  cr_assert_eq(status_query_parse("offset=", &off, &lim), -EINVAL);
  cr_assert_eq(status_query_parse("offset=4294967296", &off, &lim), -EINVAL);
  cr_assert_eq(status_query_parse("limit=2x", &off, &lim), -EINVAL);
}

/* s written as a JSON string and decoded again. */
static char *roundtrip(const char *s, char *raw, size_t cap)
{
  struct ops_buf b = {.max = 1 << 20};
  ops_buf_printf(&b, "[");
  status_json_str(&b, s);
  ops_buf_printf(&b, "]");
  cr_assert(!b.overflow);
  snprintf(raw, cap, "%s", b.p);
  json_error_t err;
  json_t *j = json_loads(b.p, 0, &err);
  cr_assert_not_null(j, "%s: %s", b.p, err.text);
  char *out = strdup(json_string_value(json_array_get(j, 0)));
  json_decref(j);
  free(b.p);
  return out;
}

Test(status, json_strings)
{
  char raw[2048];
  char *o = roundtrip("/r\"\\<b>&\t\x1b\x7f", raw, sizeof(raw));
  cr_assert_str_eq(o, "/r\"\\<b>&\t\x1b\x7f");
  cr_assert_null(strpbrk(raw + 1, "<>&\t\x1b\x7f"), "not escaped: %s", raw);
  free(o);
  /* valid UTF-8 passes; a lone continuation byte, an overlong form, a
   * surrogate, a cut sequence and 0xff become U+FFFD */
  o = roundtrip("\xc3\xa9\xf0\x9f\x98\x80|\x80|\xc0\x80|\xed\xa0\x80|\xe2\x82|\xff", raw,
                sizeof(raw));
  cr_assert_str_eq(o, "\xc3\xa9\xf0\x9f\x98\x80|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
                      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd");
  free(o);
  /* longer than the escaper's staging buffer */
  char big[3000];
  memset(big, '"', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  char *raw2 = malloc(8192);
  o = roundtrip(big, raw2, 8192);
  cr_assert_str_eq(o, big);
  free(o);
  free(raw2);
}

/* Three workers' snapshots with n0, 0 and n2 sessions (ids w * 100 + i). */
static struct status_snap snaps[3];

static void make_snaps(const char *room, uint32_t n0, uint32_t n2)
{
  const uint32_t n[3] = {n0, 0, n2};
  for (uint32_t w = 0; w < 3; w++) {
    cr_assert_eq(status_snap_init(&snaps[w]), 0);
    snaps[w].sess = calloc(n[w] ? n[w] : 1, sizeof(*snaps[w].sess));
    snaps[w].rooms = calloc(1, sizeof(*snaps[w].rooms));
    snaps[w].nsess = snaps[w].cap = n[w];
    snaps[w].at_ns = 1000;
    for (uint32_t i = 0; i < n[w]; i++) {
      struct status_session *x = &snaps[w].sess[i];
      x->id = w * 100 + i;
      x->registered = true;
      x->ip = 0x0a000200u + i;
      x->frames_in = i;
      x->nat_udp = i;
      x->nat_icmp = w;
      x->nat_tcp = 7;
      x->created_ns = 1000000000ull;
      snprintf(x->room, sizeof(x->room), "%s", room);
      snprintf(x->origin, sizeof(x->origin), "%s", room);
      snprintf(x->remote, sizeof(x->remote), "127.0.0.1:%u", 1000 + i);
    }
    if (n[w]) {
      snaps[w].nrooms = snaps[w].room_cap = 1;
      snprintf(snaps[w].rooms[0].name, sizeof(snaps[w].rooms[0].name), "%s", room);
      snaps[w].rooms[0].sessions = n[w];
    }
  }
}

static void free_snaps(void)
{
  for (uint32_t w = 0; w < 3; w++)
    status_snap_fini(&snaps[w]);
}

static json_t *page(size_t max, uint32_t off, uint32_t lim, size_t *len)
{
  struct status_snap *v[3] = {&snaps[0], &snaps[1], &snaps[2]};
  struct status_info in = {.version = "t", .cert_sha256 = "00", .now_ns = 5000000000ull};
  struct ops_buf b = {.max = max};
  status_write_json(&b, &in, v, 3, off, lim);
  cr_assert(!b.overflow, "the response outgrew its bound");
  *len = b.len;
  json_error_t err;
  json_t *j = json_loads(b.p, 0, &err);
  cr_assert_not_null(j, "%s", err.text);
  free(b.p);
  return j;
}

static long long geti(json_t *o, const char *k)
{
  return json_integer_value(json_object_get(o, k));
}

Test(status, paging_over_workers)
{
  make_snaps("/lan", 2, 3);
  size_t len;
  json_t *j = page(1 << 20, 1, 3, &len);
  cr_assert_eq(geti(j, "sessions_total"), 5);
  cr_assert_eq(geti(j, "rooms_total"), 1); /* one room, copies on two workers */
  cr_assert_eq(geti(json_array_get(json_object_get(j, "rooms"), 0), "sessions"), 5);
  json_t *ss = json_object_get(j, "sessions");
  cr_assert_eq(json_array_size(ss), 3);
  const long long want[3] = {1, 200, 201};
  for (size_t i = 0; i < 3; i++)
    cr_assert_eq(geti(json_array_get(ss, i), "id"), want[i]);
  cr_assert_eq(geti(json_array_get(ss, 1), "worker"), 2);
  /* session 201: worker 2's second */
  json_t *nf = json_object_get(json_array_get(ss, 2), "nat_flows");
  cr_assert(json_is_object(nf));
  cr_assert_eq(geti(nf, "udp"), 1);
  cr_assert_eq(geti(nf, "icmp"), 2);
  cr_assert_eq(geti(nf, "tcp"), 7);
  cr_assert_eq(geti(json_array_get(ss, 0), "age_s"), 4);
  cr_assert_eq(geti(j, "next_offset"), 4);
  cr_assert(json_is_false(json_object_get(j, "truncated")));
  json_decref(j);
  j = page(1 << 20, 4, 3, &len);
  cr_assert_eq(json_array_size(json_object_get(j, "sessions")), 1);
  cr_assert(json_is_null(json_object_get(j, "next_offset")));
  json_decref(j);
  j = page(1 << 20, 9, 3, &len);
  cr_assert_eq(json_array_size(json_object_get(j, "sessions")), 0);
  json_decref(j);
  free_snaps();
}

Test(status, bounded_response)
{
  char room[256];
  memset(room, '<', sizeof(room) - 1); /* 6 bytes each, escaped */
  room[sizeof(room) - 1] = '\0';
  make_snaps(room, 10, 10);
  /* about 3.4 KiB a session: a few fit before the last 16 KiB */
  size_t len, max = 32 * 1024;
  json_t *j = page(max, 0, 20, &len);
  cr_assert_leq(len, max);
  long long count = geti(j, "count");
  cr_assert(count >= 1 && count < 10, "count %lld", count);
  cr_assert(json_is_true(json_object_get(j, "truncated")));
  cr_assert_eq(geti(j, "next_offset"), count);
  cr_assert_eq(geti(j, "sessions_total"), 20);
  json_decref(j);
  free_snaps();
}
