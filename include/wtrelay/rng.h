/*
 * rng: every random byte of the tree (QUIC secrets, connection IDs and
 * ngtcp2's draws, TCP initial sequence numbers, DNS ids and ports, echo id
 * bases, certificate serials, a tool's MAC) comes from here.
 *
 * Owns: nothing; a wrapper over GnuTLS's generator (gnutls_rnd), which
 * seeds itself from the kernel (getrandom, /dev/urandom where getrandom is
 * unavailable) and reseeds on its own.
 * Never: returns without filling the buffer. A process without random
 * bytes must not serve, and callers such as ngtcp2's rand callback cannot
 * report a failure, so a failing generator is logged once and aborts.
 */
#ifndef WTRELAY_RNG_H
#define WTRELAY_RNG_H

#include <stddef.h>

/* Fills buf with len unpredictable bytes (GNUTLS_RND_RANDOM: fit for
 * secrets and for values a peer must not guess). Aborts on failure. */
void rng_fill(void *buf, size_t len);

#endif
