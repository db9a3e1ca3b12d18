/*
 * rng: random bytes from GnuTLS's generator. See include/wtrelay/rng.h.
 */
#include "wtrelay/rng.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>

#include "wtrelay/log.h"

void rng_fill(void *buf, size_t len)
{
  int rc = gnutls_rnd(GNUTLS_RND_RANDOM, buf, len);
  if (rc < 0) {
    log_error("random bytes failed: the generator has no entropy, stopping", "err=\"%s\"",
              gnutls_strerror(rc));
    abort();
  }
}
