/* The run-time API of inbound forwards (fwd_api.c) against a fake table:
 * the token, the three routes, bad requests. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fwd_api.h"

struct fake {
  struct fwd_info f[4];
  uint32_t n, next;
  int add_rc;
};

static int fake_add(void *ctx, const struct fwd_spec *spec, uint32_t *id)
{
  struct fake *k = ctx;
  if (k->add_rc)
    return k->add_rc;
  for (uint32_t i = 0; i < k->n; i++)
    if (fwd_spec_same_socket(&k->f[i].spec, spec))
      return -EEXIST;
  if (k->n == 4)
    return -ENOSPC;
  k->f[k->n] = (struct fwd_info){.id = ++k->next, .spec = *spec};
  *id = k->f[k->n++].id;
  return 0;
}

static int fake_del(void *ctx, uint32_t id)
{
  struct fake *k = ctx;
  for (uint32_t i = 0; i < k->n; i++)
    if (k->f[i].id == id) {
      k->f[i] = k->f[--k->n];
      return 0;
    }
  return -ENOENT;
}

static uint32_t fake_list(void *ctx, struct fwd_info *out, uint32_t cap)
{
  struct fake *k = ctx;
  for (uint32_t i = 0; i < k->n && i < cap; i++)
    out[i] = k->f[i];
  return k->n;
}

static const struct fwd_api_ops ops = {.add = fake_add, .del = fake_del, .list = fake_list};

static int call(struct fake *k, const char *token, const char *method, const char *path,
                const char *auth, const char *body, char *out, size_t cap)
{
  struct fwd_api a = {.token = token, .ops = &ops, .ctx = k};
  struct ops_buf b = {.max = 65536};
  int st = fwd_api_handle(&a, method, path, auth, body, body ? strlen(body) : 0, &b);
  snprintf(out, cap, "%.*s", (int)b.len, b.p ? b.p : "");
  free(b.p);
  return st;
}

Test(fwd_api, add_list_delete)
{
  struct fake k = {0};
  char out[2048];
  cr_assert_eq(call(&k, "", "GET", "/forwards", "", NULL, out, sizeof(out)), 200);
  cr_assert_str_eq(out, "{\"forwards\":[]}\n");
  cr_assert_eq(call(&k, "", "POST", "/forwards", "",
                    "{\"forward\":\"tcp:8080=[52:54:00:12:34:56]:80@/lab\"}", out, sizeof(out)),
               201, "%s", out);
  cr_assert_str_eq(out, "{\"id\":1,\"forward\":\"tcp:8080=[52:54:00:12:34:56]:80@/lab\"}\n");
  cr_assert_eq(call(&k, "", "POST", "/forwards", "", "{\"forward\":\"udp:53=10.0.2.10:53\"}", out,
                    sizeof(out)),
               201);
  cr_assert_eq(call(&k, "", "GET", "/forwards", "", NULL, out, sizeof(out)), 200);
  cr_assert(strstr(out, "\"forward\":\"udp:53=10.0.2.10:53@/\""), "%s", out);
  cr_assert(strstr(out, "\"id\":1,\"forward\":\"tcp:8080"), "%s", out);
  cr_assert_eq(call(&k, "", "DELETE", "/forwards/1", "", NULL, out, sizeof(out)), 200);
  cr_assert_str_eq(out, "{\"deleted\":1}\n");
  cr_assert_eq(call(&k, "", "DELETE", "/forwards/1", "", NULL, out, sizeof(out)), 404);
  cr_assert_eq(k.n, 1);
}

Test(fwd_api, refusals)
{
  struct fake k = {0};
  char out[2048];
  /* the same port twice, a port in use, too many */
  cr_assert_eq(call(&k, "", "POST", "/forwards", "", "{\"forward\":\"tcp:80=10.0.2.10:80\"}", out,
                    sizeof(out)),
               201);
  cr_assert_eq(call(&k, "", "POST", "/forwards", "", "{\"forward\":\"tcp:80=10.0.2.11:80\"}", out,
                    sizeof(out)),
               409);
  k.add_rc = -EADDRINUSE;
  cr_assert_eq(call(&k, "", "POST", "/forwards", "", "{\"forward\":\"tcp:81=10.0.2.11:80\"}", out,
                    sizeof(out)),
               409);
  k.add_rc = -ENOSPC;
  cr_assert_eq(call(&k, "", "POST", "/forwards", "", "{\"forward\":\"tcp:82=10.0.2.11:80\"}", out,
                    sizeof(out)),
               503);
  k.add_rc = 0;
  /* bad bodies: the reason comes back as JSON, quotes escaped */
  cr_assert_eq(
      call(&k, "", "POST", "/forwards", "", "{\"forward\":\"tcp:8\\\"0=x\"}", out, sizeof(out)),
      400);
  cr_assert(strstr(out, "{\"error\":\"the host port") == out, "%s", out);
  cr_assert(strstr(out, "tcp:8\\\"0=x"), "quote escaped: %s", out);
  cr_assert_eq(call(&k, "", "POST", "/forwards", "", "not json", out, sizeof(out)), 400);
  cr_assert_eq(call(&k, "", "POST", "/forwards", "", "{\"forward\":7}", out, sizeof(out)), 400);
  cr_assert_eq(call(&k, "", "POST", "/forwards", "", NULL, out, sizeof(out)), 400);
  /* methods and paths */
  cr_assert_eq(call(&k, "", "PUT", "/forwards", "", NULL, out, sizeof(out)), 405);
  cr_assert_eq(call(&k, "", "GET", "/forwards/1", "", NULL, out, sizeof(out)), 405);
  cr_assert_eq(call(&k, "", "DELETE", "/forwards/x1", "", NULL, out, sizeof(out)), 404);
  cr_assert_eq(call(&k, "", "DELETE", "/forwards/", "", NULL, out, sizeof(out)), 404);
  cr_assert_eq(call(&k, "", "DELETE", "/forwards/99999999999", "", NULL, out, sizeof(out)), 404);
  cr_assert_eq(k.n, 1);
}

Test(fwd_api, token)
{
  struct fake k = {0};
  char out[2048];
  const char *tok = "s3cret-token";
  cr_assert_eq(call(&k, tok, "GET", "/forwards", "", NULL, out, sizeof(out)), 401);
  cr_assert(strstr(out, "token"), "%s", out);
  cr_assert_eq(call(&k, tok, "GET", "/forwards", "Bearer s3cret-toke", NULL, out, sizeof(out)),
               401);
  cr_assert_eq(call(&k, tok, "GET", "/forwards", "Bearer s3cret-token2", NULL, out, sizeof(out)),
               401);
  cr_assert_eq(call(&k, tok, "GET", "/forwards", "Basic s3cret-token", NULL, out, sizeof(out)),
               401);
  cr_assert_eq(call(&k, tok, "POST", "/forwards", "Bearer wrong",
                    "{\"forward\":\"tcp:80=10.0.2.10:80\"}", out, sizeof(out)),
               401);
  cr_assert_eq(k.n, 0, "nothing added without the token");
  cr_assert_eq(call(&k, tok, "GET", "/forwards", "Bearer s3cret-token", NULL, out, sizeof(out)),
               200);
  cr_assert_eq(call(&k, tok, "GET", "/forwards", "bearer s3cret-token", NULL, out, sizeof(out)),
               200, "the scheme is case-insensitive");
}
