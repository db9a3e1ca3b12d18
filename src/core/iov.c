/*
 * iov: helpers over scatter-gather lists. See include/wtrelay/iov.h.
 */
#include "wtrelay/iov.h"

#include <string.h>

size_t iov_gather(uint8_t *dst, size_t off, size_t n, const struct iovec *iov, int iovcnt)
{
  size_t done = 0;
  for (int i = 0; i < iovcnt && done < n; i++) {
    size_t l = iov[i].iov_len;
    if (off >= l) {
      off -= l;
      continue;
    }
    size_t take = l - off;
    if (take > n - done)
      take = n - done;
    memcpy(dst + done, (const uint8_t *)iov[i].iov_base + off, take);
    done += take;
    off = 0;
  }
  return done;
}
