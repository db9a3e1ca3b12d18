#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "wtrelay/rng.h"

Test(rng, fills_and_differs)
{
  uint8_t a[64], b[64], zero[64] = {0};
  memset(a, 0, sizeof(a));
  memset(b, 0, sizeof(b));
  rng_fill(a, sizeof(a));
  rng_fill(b, sizeof(b));
  cr_assert(memcmp(a, zero, sizeof(a)) != 0);
  cr_assert(memcmp(a, b, sizeof(a)) != 0);
  rng_fill(a, 0); /* nothing to draw is not an error */
}

Test(rng, odd_lengths)
{
  /* the byte past the request is never written */
  uint8_t buf[8];
  for (size_t n = 1; n < sizeof(buf); n++) {
    memset(buf, 0xee, sizeof(buf));
    rng_fill(buf, n);
    cr_assert_eq(buf[n], 0xee);
  }
}
