#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "wtrelay/chunk.h"
#include "wtrelay/iov.h"
#include "wtrelay/timeunit.h"

static struct chunk_pool pool;
static struct chunk_owner own, own2;
static uint8_t frame[4096];

static void setup(uint32_t slots, uint32_t per_owner)
{
  struct chunk_params p = {
      .slots = slots, .per_owner = per_owner, .max_frame = 1514, .max_age_ns = 5 * NS_PER_S};
  cr_assert_eq(chunk_pool_init(&pool, &p), 0);
  chunk_owner_init(&own);
  chunk_owner_init(&own2);
  for (size_t i = 0; i < sizeof(frame); i++)
    frame[i] = (uint8_t)(i * 7 + 3);
}

static int feed(struct chunk_owner *o, uint16_t id, uint8_t index, uint8_t total, size_t off,
                size_t len, uint64_t now, struct chunk_frame *out)
{
  struct bavy_chunk_hdr h = {
      .chunk_id = id, .index = index, .total = total, .data = frame + off, .len = len};
  return chunk_reasm_input(&pool, o, &h, now, out);
}

static void expect_frame(const struct chunk_frame *f, size_t len)
{
  uint8_t got[4096];
  cr_assert_eq(f->len, len);
  cr_assert_eq(iov_gather(got, 0, sizeof(got), f->iov, f->iovcnt), len);
  cr_assert_arr_eq(got, frame, len);
}

Test(chunk, in_order_seed_layout)
{
  struct chunk_frame f;
  setup(8, 4);
  /* the seed: 1514 bytes = 900 + 614 */
  cr_assert_eq(feed(&own, 7, 0, 2, 0, 900, 0, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 7, 1, 2, 900, 614, 0, &f), CHUNK_COMPLETE);
  expect_frame(&f, 1514);
  cr_assert_eq(pool.ctr.frames_done, 1);
  chunk_reasm_release(&pool, &f);
  cr_assert_eq(own.n, 0);
  chunk_pool_fini(&pool);
}

Test(chunk, reordered_and_duplicated)
{
  struct chunk_frame f;
  setup(8, 4);
  /* 3 chunks of stride 500, last one first, duplicates ignored */
  cr_assert_eq(feed(&own, 1, 2, 3, 1000, 300, 0, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 1, 2, 3, 1000, 300, 0, &f), -EALREADY);
  cr_assert_eq(feed(&own, 1, 0, 3, 0, 500, 0, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 1, 0, 3, 0, 500, 0, &f), -EALREADY);
  cr_assert_eq(feed(&own, 1, 1, 3, 500, 500, 0, &f), CHUNK_COMPLETE);
  expect_frame(&f, 1300);
  cr_assert_eq(pool.ctr.duplicates, 2);
  chunk_reasm_release(&pool, &f);
  chunk_pool_fini(&pool);
}

Test(chunk, single_chunk_is_zero_copy)
{
  struct chunk_frame f;
  setup(1, 1);
  cr_assert_eq(feed(&own, 9, 0, 1, 0, 700, 0, &f), CHUNK_COMPLETE);
  cr_assert_eq(f.iovcnt, 1);
  cr_assert_eq(f.iov[0].iov_base, frame);
  cr_assert_eq(own.n, 0);
  chunk_pool_fini(&pool);
}

Test(chunk, lost_chunk_expires)
{
  struct chunk_frame f;
  setup(4, 4);
  cr_assert_eq(feed(&own, 3, 0, 2, 0, 900, 0, &f), CHUNK_PENDING);
  cr_assert_eq(pool.free_head, 0);
  /* the owner's next chunk after 5 s expires the old one */
  cr_assert_eq(feed(&own, 4, 0, 2, 0, 900, 5 * NS_PER_S, &f), CHUNK_PENDING);
  cr_assert_eq(pool.ctr.expired, 1);
  cr_assert_eq(own.n, 1);
  /* and the periodic sweep takes the rest */
  cr_assert_eq(chunk_reasm_expire(&pool, 11 * NS_PER_S), 1);
  cr_assert_eq(own.n, 0);
  /* chunk 1 of id 3 alone, much later, starts a new reassembly */
  cr_assert_eq(feed(&own, 3, 1, 2, 900, 100, 12 * NS_PER_S, &f), CHUNK_PENDING);
  chunk_pool_fini(&pool);
}

Test(chunk, bad_headers_and_bounds)
{
  struct chunk_frame f;
  setup(8, 4);
  /* total changes within one chunk_id: reassembly dropped */
  cr_assert_eq(feed(&own, 5, 0, 3, 0, 500, 0, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 5, 1, 4, 500, 500, 0, &f), -EPROTO);
  cr_assert_eq(pool.ctr.bad_total, 1);
  cr_assert_eq(own.n, 0);
  /* inconsistent stride */
  cr_assert_eq(feed(&own, 6, 0, 3, 0, 500, 0, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 6, 1, 3, 500, 400, 0, &f), -EPROTO);
  cr_assert_eq(pool.ctr.bad_stride, 1);
  /* last chunk longer than the stride */
  cr_assert_eq(feed(&own, 7, 0, 2, 0, 300, 0, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 7, 1, 2, 300, 400, 0, &f), -EPROTO);
  /* over max_frame (1514): 2 x 900 would need >= 1801 */
  cr_assert_eq(feed(&own, 8, 2, 3, 0, 1, 0, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 8, 0, 3, 0, 900, 0, &f), -EMSGSIZE);
  cr_assert_eq(pool.ctr.too_big, 1);
  /* exactly at the bound: 900 + 614 = 1514 */
  cr_assert_eq(feed(&own, 9, 1, 2, 900, 614, 0, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 9, 0, 2, 0, 900, 0, &f), CHUNK_COMPLETE);
  expect_frame(&f, 1514);
  chunk_reasm_release(&pool, &f);
  /* one byte over */
  cr_assert_eq(feed(&own, 10, 0, 2, 0, 900, 0, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 10, 1, 2, 900, 615, 0, &f), -EMSGSIZE);
  chunk_pool_fini(&pool);
}

Test(chunk, over_max_frame_with_last_within_stride)
{
  struct chunk_frame f;
  setup(8, 4);
  /* 3 x 600 = 1800 > 1514 */
  cr_assert_eq(feed(&own, 1, 0, 3, 0, 600, 0, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 1, 1, 3, 600, 600, 0, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 1, 2, 3, 1200, 600, 0, &f), -EMSGSIZE);
  chunk_pool_fini(&pool);
}

Test(chunk, owner_cap_evicts_oldest_and_pool_is_shared)
{
  struct chunk_frame f;
  setup(3, 2);
  cr_assert_eq(feed(&own, 1, 0, 2, 0, 900, 1, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 2, 0, 2, 0, 900, 2, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own, 3, 0, 2, 0, 900, 3, &f), CHUNK_PENDING);
  cr_assert_eq(pool.ctr.evicted, 1);
  cr_assert_eq(own.n, 2);
  /* id 1 was evicted: its second half starts over */
  cr_assert_eq(feed(&own, 1, 1, 2, 900, 100, 4, &f), CHUNK_PENDING);
  cr_assert_eq(pool.ctr.evicted, 2);
  /* another owner gets the last free slot, then the pool is empty */
  cr_assert_eq(feed(&own2, 1, 0, 2, 0, 900, 4, &f), CHUNK_PENDING);
  cr_assert_eq(feed(&own2, 2, 0, 2, 0, 900, 4, &f), -ENOBUFS);
  cr_assert_eq(pool.ctr.pool_empty, 1);
  /* an owner that goes away frees its slots */
  chunk_owner_release(&pool, &own);
  cr_assert_eq(feed(&own2, 2, 0, 2, 0, 900, 4, &f), CHUNK_PENDING);
  cr_assert_eq(own2.n, 2);
  chunk_pool_fini(&pool);
}

Test(chunk, split_plan)
{
  struct chunk_plan p;
  cr_assert_eq(chunk_split_plan(1400, 1420, &p), 0);
  cr_assert(!p.chunked, "1 + 1400 fits 1420");
  cr_assert_eq(chunk_split_plan(1419, 1420, &p), 0);
  cr_assert(!p.chunked);
  cr_assert_eq(chunk_split_plan(1420, 1420, &p), 0);
  cr_assert(p.chunked);
  cr_assert_eq(chunk_split_plan(1514, 1420, &p), 0);
  cr_assert(p.chunked);
  cr_assert_eq(p.size, 900);
  cr_assert_eq(p.total, 2);
  /* a small datagram (Firefox starts at 1024; say 600) chunks smaller */
  cr_assert_eq(chunk_split_plan(1514, 600, &p), 0);
  cr_assert_eq(p.size, 595);
  cr_assert_eq(p.total, 3);
  cr_assert_eq(chunk_split_plan(1514, 5, &p), -EMSGSIZE);
  cr_assert_eq(chunk_split_plan(1514, 0, &p), -EMSGSIZE);
  cr_assert_eq(chunk_split_plan(0, 1420, &p), -EINVAL);
}

Test(chunk, split_then_reassemble_roundtrip)
{
  setup(4, 4);
  size_t sizes[][2] = {{905, 905}, {1514, 905}, {1514, 300}};
  for (size_t t = 0; t < 3; t++) {
    struct chunk_plan p;
    size_t len = sizes[t][0];
    cr_assert_eq(chunk_split_plan(len, sizes[t][1], &p), 0);
    cr_assert(p.chunked);
    struct iovec iov[2] = {{frame, 7}, {frame + 7, len - 7}};
    struct chunk_frame f;
    int last = -1;
    for (uint32_t k = p.total; k-- > 0;) { /* reverse order */
      uint8_t buf[CHUNK_HDR + BAVY_CHUNK_DATA_MAX];
      int n = chunk_split_write(buf, sizeof(buf), &p, 42, k, iov, 2);
      cr_assert_gt(n, CHUNK_HDR);
      cr_assert_eq(buf[0], BAVY_CHUNK);
      struct bavy_chunk_hdr h;
      cr_assert_eq(bavy_chunk_header_parse(buf + 1, (size_t)n - 1, &h), 0);
      cr_assert_eq(h.total, p.total);
      last = chunk_reasm_input(&pool, &own, &h, 0, &f);
    }
    cr_assert_eq(last, CHUNK_COMPLETE);
    uint8_t got[2048];
    cr_assert_eq(iov_gather(got, 0, sizeof(got), f.iov, f.iovcnt), len);
    cr_assert_arr_eq(got, frame, len);
    chunk_reasm_release(&pool, &f);
  }
  chunk_pool_fini(&pool);
}
