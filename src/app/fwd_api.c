/*
 * fwd_api: the run-time API of inbound forwards. See fwd_api.h.
 */
#include "fwd_api.h"

#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Does the Authorization value say "Bearer <token>"? In time that depends
 * on the lengths only, not on where the first difference is. */
static bool token_ok(const char *token, const char *auth)
{
  static const char scheme[] = "Bearer ";
  size_t sl = sizeof(scheme) - 1;
  if (strncasecmp(auth, scheme, sl) != 0)
    return false;
  const char *got = auth + sl;
  size_t n = strlen(token), m = strlen(got);
  unsigned diff = n != m;
  for (size_t i = 0; i < n; i++)
    diff |= (unsigned char)token[i] ^ (unsigned char)(i < m ? got[i] : 0);
  return diff == 0;
}

static int reply(struct ops_buf *b, int status, json_t *j)
{
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!s) {
    b->overflow = true;
    return 500;
  }
  ops_buf_printf(b, "%s\n", s);
  free(s);
  return status;
}

static int error(struct ops_buf *b, int status, const char *msg)
{
  return reply(b, status, json_pack("{s:s}", "error", msg));
}

static json_t *forward_json(const struct fwd_info *f)
{
  char spec[400];
  fwd_spec_format(&f->spec, spec, sizeof(spec));
  return json_pack("{s:I,s:s,s:I,s:I,s:I}", "id", (json_int_t)f->id, "forward", spec, "active",
                   (json_int_t)f->active, "accepted", (json_int_t)f->accepted, "refused",
                   (json_int_t)f->refused);
}

static int list(const struct fwd_api *a, struct ops_buf *b)
{
  struct fwd_info *all = calloc(FWD_MAX, sizeof(*all));
  if (!all)
    return error(b, 500, "out of memory");
  uint32_t n = a->ops->list(a->ctx, all, FWD_MAX);
  json_t *arr = json_array();
  for (uint32_t i = 0; i < n && i < FWD_MAX; i++)
    json_array_append_new(arr, forward_json(&all[i]));
  free(all);
  return reply(b, 200, json_pack("{s:o}", "forwards", arr));
}

static int add(const struct fwd_api *a, const char *body, size_t len, struct ops_buf *b)
{
  json_error_t je;
  json_t *j = json_loadb(body, len, 0, &je);
  const char *s = j ? json_string_value(json_object_get(j, "forward")) : NULL;
  if (!s) {
    json_decref(j);
    return error(b, 400,
                 "expected a JSON object {\"forward\": \"PROTO:[BIND_ADDR:]HOST_PORT="
                 "VM:VM_PORT[@ROOM]\"}");
  }
  struct fwd_spec spec;
  char why[400];
  if (fwd_spec_parse(s, &spec, why, sizeof(why)) < 0) {
    json_decref(j);
    return error(b, 400, why);
  }
  json_decref(j);
  uint32_t id;
  int rc = a->ops->add(a->ctx, &spec, &id);
  if (rc == -EEXIST || rc == -EADDRINUSE)
    return error(b, 409,
                 rc == -EEXIST ? "a forward of that port exists" : "the host port is in use");
  if (rc == -ENOSPC)
    return error(b, 503, "too many forwards");
  if (rc < 0)
    return error(b, 500, strerror(-rc));
  char out[400];
  fwd_spec_format(&spec, out, sizeof(out));
  return reply(b, 201, json_pack("{s:I,s:s}", "id", (json_int_t)id, "forward", out));
}

int fwd_api_handle(const struct fwd_api *a, const char *method, const char *path, const char *auth,
                   const char *body, size_t bodylen, struct ops_buf *b)
{
  if (a->token && a->token[0] && !token_ok(a->token, auth))
    return error(b, 401, "missing or wrong token (Authorization: Bearer TOKEN)");
  bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  if (strcmp(path, "/forwards") == 0) {
    if (get)
      return list(a, b);
    if (strcmp(method, "POST") == 0)
      return add(a, body, bodylen, b);
    return error(b, 405, "GET or POST /forwards, DELETE /forwards/ID");
  }
  /* /forwards/ID */
  const char *ids = path + strlen("/forwards/");
  char *end;
  unsigned long id = strtoul(ids, &end, 10);
  if (*ids < '0' || *ids > '9' || *end || id > UINT32_MAX)
    return error(b, 404, "no such forward");
  if (strcmp(method, "DELETE") != 0)
    return error(b, 405, "DELETE /forwards/ID");
  if (a->ops->del(a->ctx, (uint32_t)id) < 0)
    return error(b, 404, "no such forward");
  return reply(b, 200, json_pack("{s:I}", "deleted", (json_int_t)id));
}
