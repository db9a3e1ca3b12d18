/*
 * fwd_api: the ops listener's run-time API of inbound forwards
 * (wtrelay --ops-api): GET /forwards lists them, POST /forwards
 * {"forward":"SPEC"} adds one, DELETE /forwards/ID removes one. With a
 * token every request must carry "Authorization: Bearer TOKEN" (compared
 * in constant time). The forwards themselves are the gateway's
 * (nat_fwd.h), reached through struct fwd_api_ops so the handler can be
 * tested alone.
 */
#ifndef WTRELAY_FWD_API_H
#define WTRELAY_FWD_API_H

#include <stddef.h>
#include <stdint.h>

#include "wtrelay/nat_fwd.h"
#include "wtrelay/ops.h"

struct fwd_api_ops {
  int (*add)(void *ctx, const struct fwd_spec *spec, uint32_t *id);
  int (*del)(void *ctx, uint32_t id);
  uint32_t (*list)(void *ctx, struct fwd_info *out, uint32_t cap);
};

struct fwd_api {
  const char *token; /* "" = none (a loopback listener) */
  const struct fwd_api_ops *ops;
  void *ctx;
};

/* One request (ops_routes.api): writes the JSON body, returns the status. */
int fwd_api_handle(const struct fwd_api *a, const char *method, const char *path, const char *auth,
                   const char *body, size_t bodylen, struct ops_buf *b);

#endif
