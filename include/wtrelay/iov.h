/*
 * iov: helpers over scatter-gather lists (struct iovec).
 *
 * Owns: nothing; pure functions over the caller's iovecs and buffers.
 * Talks to: nothing. Used wherever a frame arrives in pieces (a chunked
 * frame's reassembly, a switch delivery) and must be read flat: the relay,
 * the gateway, the chunk codec, the native client.
 */
#ifndef WTRELAY_IOV_H
#define WTRELAY_IOV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Copies bytes [off, off+n) of the gathered iovecs to dst; returns bytes
 * copied (less than n when the iovecs are shorter). */
size_t iov_gather(uint8_t *dst, size_t off, size_t n, const struct iovec *iov, int iovcnt);

#endif
