/*
 * fuzz_qpack_request: h3_qpack_decode_request() and
 * h3_qpack_decode_response_status() on a HEADERS payload (nghttp3 decoding
 * plus our validation), with a fresh decoder per input (q == NULL).
 *
 * Checks beyond "no crash / no leak": results are one of the documented
 * errors, accepted requests satisfy the documented invariants, and an
 * accepted extended CONNECT re-encoded with our client encoder decodes to
 * the same authority, path and origin.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/h3_qpack.h"

static void check_str(const char *s, size_t cap, bool has)
{
  if (has && strnlen(s, cap) >= cap)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static uint8_t out[8192];
  struct h3_request req, again;
  int rv, status, n;

  rv = h3_qpack_decode_response_status(NULL, data, size, &status);
  if (rv != 0 && rv != -EINVAL && rv != -EPROTO)
    abort();
  if (rv == 0 && (status < 100 || status > 599))
    abort();

  rv = h3_qpack_decode_request(NULL, data, size, &req);
  if (rv != 0 && rv != -EINVAL && rv != -EPROTO)
    abort();
  if (rv != 0)
    return 0;
  check_str(req.method, sizeof(req.method), req.has_method);
  check_str(req.scheme, sizeof(req.scheme), req.has_scheme);
  check_str(req.protocol, sizeof(req.protocol), req.has_protocol);
  check_str(req.authority, sizeof(req.authority), req.has_authority);
  check_str(req.path, sizeof(req.path), req.has_path);
  check_str(req.origin, sizeof(req.origin), req.has_origin);
  if (!req.has_method)
    abort();
  if (!req.has_protocol)
    return 0;
  if (strcmp(req.method, "CONNECT") != 0 || !req.has_scheme || !req.has_authority ||
      !req.has_path || req.path[0] != '/')
    abort();

  n = h3_qpack_encode_connect_request(NULL, out, sizeof(out), req.authority, req.path,
                                      req.has_origin ? req.origin : NULL);
  if (n < 0)
    abort();
  if (h3_qpack_decode_request(NULL, out, (size_t)n, &again) != 0 ||
      strcmp(again.authority, req.authority) != 0 || strcmp(again.path, req.path) != 0 ||
      again.has_origin != (req.has_origin && req.origin[0] != '\0') ||
      (again.has_origin && strcmp(again.origin, req.origin) != 0) || !again.wt_draft02)
    abort();
  return 0;
}
