/*
 * auth: tokens and origins at the extended CONNECT. See
 * include/wtrelay/auth.h.
 *
 * Verification is libjwt's (GnuTLS flavour): one decode without a key to
 * read the header's algorithm, refused unless it is the key's, then one
 * decode with the key, which checks the signature. The claims are read
 * from libjwt's JSON with jansson, strictly typed. Signing HS256 is
 * libjwt's too; ES256 signatures are made with GnuTLS directly, because
 * libjwt 1.10's GnuTLS backend writes r and s padded to 66 bytes each
 * (ES512's size) instead of JWS's 32 (its verification accepts the
 * standard form, which is what browsers' backends and every other library
 * produce).
 *
 * The subject table is a fixed array of --max-sessions slots: a session
 * whose token has `sub` and `max_sessions` takes one reference on its
 * subject's slot, so the table cannot fill before the session table does.
 */
#include "wtrelay/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "wtrelay/counter.h"
#include "wtrelay/filewatch.h"
#include "wtrelay/log.h"
#include "wtrelay/net.h"

#define KEY_FILE_MAX 65536

static int fail(char *err, size_t errlen, const char *msg)
{
  if (err && errlen)
    snprintf(err, errlen, "%s", msg);
  return -EINVAL;
}

/* ---- keys ---- */

static bool has_text(const unsigned char *d, size_t len, const char *needle)
{
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(d + i, needle, n) == 0)
      return true;
  return false;
}

/* Checks that a PEM key is EC P-256 (public or private). */
static int pem_check(const unsigned char *pem, size_t len, bool is_private, char *err,
                     size_t errlen)
{
  gnutls_datum_t d = {.data = (unsigned char *)pem, .size = (unsigned)len};
  gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
  int pk = -1, rc;
  if (is_private) {
    gnutls_privkey_t k;
    if (gnutls_privkey_init(&k) < 0)
      return fail(err, errlen, "out of memory");
    rc = gnutls_privkey_import_x509_raw(k, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc >= 0) {
      pk = gnutls_privkey_get_pk_algorithm(k, NULL);
      gnutls_privkey_export_ecc_raw(k, &curve, NULL, NULL, NULL);
    }
    gnutls_privkey_deinit(k);
  } else {
    gnutls_pubkey_t k;
    if (gnutls_pubkey_init(&k) < 0)
      return fail(err, errlen, "out of memory");
    rc = gnutls_pubkey_import(k, &d, GNUTLS_X509_FMT_PEM);
    if (rc >= 0) {
      pk = gnutls_pubkey_get_pk_algorithm(k, NULL);
      gnutls_pubkey_export_ecc_raw(k, &curve, NULL, NULL);
    }
    gnutls_pubkey_deinit(k);
  }
  if (rc < 0) {
    snprintf(err, errlen, "PEM key does not load: %s", gnutls_strerror(rc));
    return -EINVAL;
  }
  if (pk != GNUTLS_PK_ECDSA || curve != GNUTLS_ECC_CURVE_SECP256R1)
    return fail(err, errlen, "PEM key is not an EC P-256 key (ES256 needs one)");
  return 0;
}

int auth_key_parse(struct auth_key *k, const unsigned char *data, size_t len, char *err,
                   size_t errlen)
{
  memset(k, 0, sizeof(*k));
  bool pem = has_text(data, len, "-----BEGIN ");
  if (pem) {
    bool priv = has_text(data, len, "PRIVATE KEY-----");
    if (!priv && !has_text(data, len, "-----BEGIN PUBLIC KEY-----"))
      return fail(err, errlen, "PEM file holds neither a PUBLIC KEY nor a PRIVATE KEY");
    int rc = pem_check(data, len, priv, err, errlen);
    if (rc < 0)
      return rc;
    k->alg = AUTH_ALG_ES256;
    k->is_private = priv;
  } else {
    if (len && data[len - 1] == '\n')
      len--;
    if (len && data[len - 1] == '\r')
      len--;
    if (len == 0)
      return fail(err, errlen, "empty secret");
    k->alg = AUTH_ALG_HS256;
  }
  k->bytes = malloc(len + 1);
  if (!k->bytes) {
    k->alg = AUTH_ALG_NONE;
    return fail(err, errlen, "out of memory");
  }
  memcpy(k->bytes, data, len);
  k->bytes[len] = '\0';
  k->len = len;
  return 0;
}

int auth_key_load(struct auth_key *k, const char *path, char *err, size_t errlen)
{
  memset(k, 0, sizeof(*k));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open: %s", strerror(errno));
    return -errno;
  }
  unsigned char *buf = malloc(KEY_FILE_MAX + 1);
  size_t len = 0;
  ssize_t n = 0;
  while (buf && len <= KEY_FILE_MAX && (n = read(fd, buf + len, KEY_FILE_MAX + 1 - len)) > 0)
    len += (size_t)n;
  close(fd);
  int rc;
  if (!buf)
    rc = fail(err, errlen, "out of memory");
  else if (n < 0)
    rc = fail(err, errlen, "read error");
  else if (len > KEY_FILE_MAX)
    rc = fail(err, errlen, "larger than 64 KiB");
  else
    rc = auth_key_parse(k, buf, len, err, errlen);
  if (buf) {
    memset(buf, 0, KEY_FILE_MAX + 1); /* the secret does not linger */
    free(buf);
  }
  return rc;
}

void auth_key_fini(struct auth_key *k)
{
  if (k->bytes) {
    memset(k->bytes, 0, k->len);
    free(k->bytes);
  }
  memset(k, 0, sizeof(*k));
}

/* ---- verification ---- */

bool auth_room_granted(const char *grant, const char *room)
{
  size_t gl = strlen(grant);
  if (gl >= 2 && grant[gl - 2] == '/' && grant[gl - 1] == '*')
    return strncmp(grant, room, gl - 1) == 0;
  return strcmp(grant, room) == 0;
}

int auth_query_token(const char *query, char *out, size_t cap)
{
  const char *p = query;
  while (p && *p) {
    size_t len = strcspn(p, "&");
    const char *v = NULL;
    if (len > 6 && strncmp(p, "token=", 6) == 0)
      v = p + 6;
    else if (len > 4 && strncmp(p, "jwt=", 4) == 0)
      v = p + 4;
    if (v) {
      size_t vl = len - (size_t)(v - p);
      if (vl >= cap)
        return -ENAMETOOLONG;
      memcpy(out, v, vl);
      out[vl] = '\0';
      return (int)vl;
    }
    p += len;
    if (*p == '&')
      p++;
  }
  if (cap)
    out[0] = '\0';
  return 0;
}

static bool json_time(json_t *v, int64_t *out)
{
  if (!json_is_number(v))
    return false;
  double d = json_number_value(v);
  if (d < 0 || d > 1e15)
    return false;
  *out = (int64_t)d;
  return true;
}

/* Reads the claims we act on from the token's JSON, strictly typed. */
static enum auth_reason claims_parse(const char *json, struct auth_claims *c)
{
  json_error_t je;
  json_t *root = json_loads(json, 0, &je);
  enum auth_reason r = AUTH_MALFORMED;
  memset(c, 0, sizeof(*c));
  if (!json_is_object(root))
    goto out;
  json_t *v = json_object_get(root, "exp");
  if (!v) {
    r = AUTH_NO_EXP;
    goto out;
  }
  if (!json_time(v, &c->exp))
    goto out;
  if ((v = json_object_get(root, "nbf")) && !json_time(v, &c->nbf))
    goto out;
  if ((v = json_object_get(root, "room"))) {
    if (!json_is_string(v) || json_string_length(v) >= sizeof(c->room))
      goto out;
    snprintf(c->room, sizeof(c->room), "%s", json_string_value(v));
  }
  if ((v = json_object_get(root, "mac"))) {
    if (!json_is_string(v) || net_mac_parse(json_string_value(v), c->mac) < 0)
      goto out;
    c->has_mac = true;
  }
  if ((v = json_object_get(root, "sub"))) {
    if (!json_is_string(v) || json_string_length(v) >= sizeof(c->sub))
      goto out;
    snprintf(c->sub, sizeof(c->sub), "%s", json_string_value(v));
  }
  if ((v = json_object_get(root, "max_sessions"))) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000)
      goto out;
    c->max_sessions = (uint32_t)json_integer_value(v);
  }
  r = AUTH_OK;
out:
  json_decref(root);
  return r;
}

static jwt_alg_t key_jwt_alg(const struct auth_key *k)
{
  return k->alg == AUTH_ALG_ES256 ? JWT_ALG_ES256 : JWT_ALG_HS256;
}

/* The "alg" of a token's header (libjwt reports none for a token decoded
 * without a key), JWT_ALG_INVAL when the header does not parse. */
static jwt_alg_t header_alg(const char *token)
{
  char b64[1024];
  size_t n = strcspn(token, ".");
  if (token[n] != '.' || n == 0 || n + 4 > sizeof(b64))
    return JWT_ALG_INVAL;
  for (size_t i = 0; i < n; i++)
    b64[i] = token[i] == '-' ? '+' : token[i] == '_' ? '/' : token[i];
  while (n % 4)
    b64[n++] = '=';
  gnutls_datum_t in = {.data = (unsigned char *)b64, .size = (unsigned)n}, out = {0};
  if (gnutls_base64_decode2(&in, &out) < 0)
    return JWT_ALG_INVAL;
  json_error_t je;
  json_t *h = json_loadb((const char *)out.data, out.size, 0, &je);
  gnutls_free(out.data);
  json_t *a = json_object_get(h, "alg");
  jwt_alg_t alg = json_is_string(a) ? jwt_str_alg(json_string_value(a)) : JWT_ALG_INVAL;
  json_decref(h);
  return alg;
}

enum auth_reason auth_verify(const struct auth_key *k, const char *token, int64_t now,
                             uint32_t skew_s, const char *room, struct auth_claims *out)
{
  struct auth_claims tmp;
  struct auth_claims *c = out ? out : &tmp;
  memset(c, 0, sizeof(*c));
  if (!token || !*token)
    return AUTH_MISSING;
  if (k->alg == AUTH_ALG_NONE || k->is_private || !k->bytes)
    return AUTH_BAD_SIGNATURE; /* no verification key: nothing is valid */
  size_t tl = strnlen(token, AUTH_TOKEN_MAX);
  if (tl >= AUTH_TOKEN_MAX || strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                            "0123456789-_.") != tl)
    return AUTH_MALFORMED;
  /* The header first, unverified: the algorithm must be the key's. */
  jwt_alg_t alg = header_alg(token);
  if (alg == JWT_ALG_INVAL)
    return AUTH_MALFORMED;
  if (alg != key_jwt_alg(k))
    return AUTH_BAD_ALG;
  jwt_t *j = NULL;
  if (jwt_decode(&j, token, k->bytes, (int)k->len) != 0 || !j)
    return AUTH_BAD_SIGNATURE;
  enum auth_reason r = AUTH_MALFORMED;
  if (jwt_get_alg(j) == key_jwt_alg(k)) {
    char *json = jwt_get_grants_json(j, NULL);
    r = json ? claims_parse(json, c) : AUTH_MALFORMED;
    free(json);
  }
  jwt_free(j);
  if (r != AUTH_OK)
    return r;
  if (now >= c->exp + (int64_t)skew_s)
    return AUTH_EXPIRED;
  if (c->nbf && now + (int64_t)skew_s < c->nbf)
    return AUTH_NOT_YET_VALID;
  if (!c->room[0] || !auth_room_granted(c->room, room))
    return AUTH_ROOM;
  return AUTH_OK;
}

/* ---- origins ---- */

/* An origin split: scheme (with "://"), host, ":port" or "". */
struct origin_parts {
  const char *scheme, *host, *port;
  size_t scheme_len, host_len, port_len;
};

static bool host_char(char ch)
{
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '-' || ch == '.' || ch == '[' || ch == ']' || ch == ':' || ch == '*';
}

static bool origin_split(const char *o, struct origin_parts *p)
{
  const char *sep = strstr(o, "://");
  if (!sep || sep == o)
    return false;
  p->scheme = o;
  p->scheme_len = (size_t)(sep - o) + 3;
  p->host = sep + 3;
  for (const char *q = p->host; *q; q++)
    if (!host_char(*q))
      return false; /* no path, userinfo, query or odd bytes in an origin */
  const char *end = p->host + strlen(p->host);
  const char *colon = strrchr(p->host, ':');
  const char *bracket = strrchr(p->host, ']');
  if (colon && (!bracket || colon > bracket)) {
    p->host_len = (size_t)(colon - p->host);
    p->port = colon;
    p->port_len = (size_t)(end - colon);
    if (p->port_len < 2 || strspn(colon + 1, "0123456789") != p->port_len - 1)
      return false;
  } else {
    p->host_len = (size_t)(end - p->host);
    p->port = end;
    p->port_len = 0;
  }
  return p->host_len > 0;
}

int auth_origin_pattern_check(const char *pattern)
{
  struct origin_parts p;
  if (!origin_split(pattern, &p))
    return -EINVAL;
  if (strncasecmp(p.scheme, "https://", 8) != 0 && strncasecmp(p.scheme, "http://", 7) != 0)
    return -EINVAL;
  const char *star = memchr(p.host, '*', p.host_len);
  if (star && (star != p.host || p.host_len < 4 || p.host[1] != '.' ||
               memchr(p.host + 1, '*', p.host_len - 1)))
    return -EINVAL; /* only a leading "*." */
  return 0;
}

bool auth_origin_match(const char *pattern, const char *origin)
{
  struct origin_parts p, o;
  if (!origin_split(pattern, &p) || !origin_split(origin, &o))
    return false;
  if (memchr(o.host, '*', o.host_len))
    return false;
  if (p.scheme_len != o.scheme_len || strncasecmp(p.scheme, o.scheme, p.scheme_len) != 0)
    return false;
  if (p.port_len != o.port_len || strncmp(p.port, o.port, p.port_len) != 0)
    return false;
  if (p.host_len >= 2 && p.host[0] == '*' && p.host[1] == '.') {
    /* "*.example.org": a proper subdomain, i.e. the origin's host ends with
     * ".example.org" and has at least one label before it */
    size_t suffix = p.host_len - 1; /* ".example.org" */
    if (o.host_len <= suffix)
      return false;
    const char *tail = o.host + o.host_len - suffix;
    return strncasecmp(tail, p.host + 1, suffix) == 0 && tail[-1] != '.' && o.host[0] != '.';
  }
  return p.host_len == o.host_len && strncasecmp(p.host, o.host, p.host_len) == 0;
}

/* ---- reasons ---- */

static const char *const reason_names[AUTH_NREASONS] = {
    [AUTH_OK] = "ok",
    [AUTH_MISSING] = "missing_token",
    [AUTH_MALFORMED] = "malformed",
    [AUTH_BAD_ALG] = "wrong_algorithm",
    [AUTH_BAD_SIGNATURE] = "bad_signature",
    [AUTH_NO_EXP] = "no_exp",
    [AUTH_EXPIRED] = "expired",
    [AUTH_NOT_YET_VALID] = "not_yet_valid",
    [AUTH_ROOM] = "room_not_granted",
    [AUTH_ORIGIN] = "origin_not_allowed",
    [AUTH_NO_ORIGIN] = "no_origin",
    [AUTH_SUBJECT_LIMIT] = "subject_limit",
    [AUTH_SUBJECT_FULL] = "subject_table_full",
};

const char *auth_reason_name(enum auth_reason r)
{
  return (unsigned)r < AUTH_NREASONS ? reason_names[r] : "?";
}

int auth_reason_status(enum auth_reason r)
{
  switch (r) {
  case AUTH_OK:
    return 200;
  case AUTH_ROOM:
  case AUTH_ORIGIN:
  case AUTH_NO_ORIGIN:
    return 403;
  case AUTH_SUBJECT_LIMIT:
    return 429;
  case AUTH_SUBJECT_FULL:
    return 503;
  default:
    return 401;
  }
}

/* ---- signing ---- */

/* base64url without padding of len bytes into out (cap bytes). */
static int b64url(const unsigned char *in, size_t len, char *out, size_t cap)
{
  gnutls_datum_t d = {.data = (unsigned char *)in, .size = (unsigned)len}, enc = {0};
  if (gnutls_base64_encode2(&d, &enc) < 0)
    return -ENOMEM;
  size_t n = 0;
  for (unsigned i = 0; i < enc.size && enc.data[i] != '='; i++) {
    char ch = (char)enc.data[i];
    if (n + 1 >= cap) {
      gnutls_free(enc.data);
      return -ENOSPC;
    }
    out[n++] = ch == '+' ? '-' : ch == '/' ? '_' : ch;
  }
  out[n] = '\0';
  gnutls_free(enc.data);
  return (int)n;
}

/* An unsigned integer (big-endian, maybe with a leading zero) into 32
 * bytes. */
static int pad32(const gnutls_datum_t *v, unsigned char out[32])
{
  const unsigned char *p = v->data;
  size_t n = v->size;
  while (n > 32 && *p == 0) {
    p++;
    n--;
  }
  if (n > 32)
    return -EINVAL;
  memset(out, 0, 32 - n);
  memcpy(out + 32 - n, p, n);
  return 0;
}

/* Appends ".SIG" to "header.payload" in out: ECDSA P-256 with SHA-256, r
 * and s of 32 bytes each (JWS). */
static int es256_sign(const struct auth_key *k, char *out, size_t cap)
{
  gnutls_privkey_t pk;
  gnutls_datum_t key = {.data = k->bytes, .size = (unsigned)k->len};
  gnutls_datum_t data = {.data = (unsigned char *)out, .size = (unsigned)strlen(out)};
  gnutls_datum_t sig = {0}, r = {0}, s = {0};
  unsigned char rs[64];
  int rc = -EINVAL;
  if (gnutls_privkey_init(&pk) < 0)
    return -ENOMEM;
  if (gnutls_privkey_import_x509_raw(pk, &key, GNUTLS_X509_FMT_PEM, NULL, 0) < 0 ||
      gnutls_privkey_sign_data(pk, GNUTLS_DIG_SHA256, 0, &data, &sig) < 0 ||
      gnutls_decode_rs_value(&sig, &r, &s) < 0 || pad32(&r, rs) < 0 || pad32(&s, rs + 32) < 0)
    goto out;
  size_t used = strlen(out);
  if (used + 2 >= cap) {
    rc = -ENOSPC;
    goto out;
  }
  out[used] = '.';
  rc = b64url(rs, sizeof(rs), out + used + 1, cap - used - 1);
  if (rc >= 0)
    rc = (int)(used + 1) + rc;
out:
  gnutls_free(sig.data);
  gnutls_free(r.data);
  gnutls_free(s.data);
  gnutls_privkey_deinit(pk);
  return rc;
}

int auth_token_sign(const struct auth_key *k, const char *claims_json, char *out, size_t cap)
{
  if (k->alg == AUTH_ALG_NONE || (k->alg == AUTH_ALG_ES256 && !k->is_private))
    return -EINVAL;
  jwt_t *j = NULL;
  char *tok = NULL;
  int rc = -EINVAL;
  if (jwt_new(&j) != 0)
    return -ENOMEM;
  if (jwt_add_grants_json(j, claims_json) != 0 ||
      jwt_set_alg(j, key_jwt_alg(k), k->bytes, (int)k->len) != 0 || !(tok = jwt_encode_str(j)))
    goto out;
  size_t tl = strlen(tok);
  if (k->alg == AUTH_ALG_ES256) {
    char *dot = strrchr(tok, '.'); /* drop libjwt's signature, sign ourselves */
    if (!dot)
      goto out;
    tl = (size_t)(dot - tok);
    if (tl >= cap) {
      rc = -ENOSPC;
      goto out;
    }
    memcpy(out, tok, tl);
    out[tl] = '\0';
    rc = es256_sign(k, out, cap);
    goto out;
  }
  if (tl >= cap) {
    rc = -ENOSPC;
    goto out;
  }
  memcpy(out, tok, tl + 1);
  rc = (int)tl;
out:
  free(tok);
  jwt_free(j);
  return rc;
}

/* ---- the relay's state ---- */

static const char *alg_name(enum auth_alg a)
{
  return a == AUTH_ALG_ES256 ? "ES256" : a == AUTH_ALG_HS256 ? "HS256" : "none";
}

int auth_init(struct auth *a, const struct config *cfg)
{
  memset(a, 0, sizeof(*a));
  a->cfg = cfg;
  if (!cfg->auth_key[0])
    return 0;
  char err[256];
  stat(cfg->auth_key, &a->key_st);
  if (auth_key_load(&a->key, cfg->auth_key, err, sizeof(err)) < 0) {
    log_error("cannot load the token key", "auth_key=%s err=\"%s\"", cfg->auth_key, err);
    return -EINVAL;
  }
  if (a->key.is_private) {
    log_error("the token key is a private key; give the relay the public key",
              "auth_key=%s hint=\"openssl ec -in KEY -pubout\"", cfg->auth_key);
    auth_key_fini(&a->key);
    return -EINVAL;
  }
  a->max_subjects = cfg->max_sessions;
  a->subjects = calloc(a->max_subjects, sizeof(*a->subjects));
  if (!a->subjects) {
    auth_key_fini(&a->key);
    return -ENOMEM;
  }
  log_info("tokens required", "auth_key=%s alg=%s skew_s=%u", cfg->auth_key, alg_name(a->key.alg),
           cfg->auth_skew_s);
  return 0;
}

void auth_fini(struct auth *a)
{
  auth_key_fini(&a->key);
  free(a->subjects);
  a->subjects = NULL;
  a->max_subjects = 0;
}

void auth_key_check(struct auth *a, bool force)
{
  const char *path = a->cfg ? a->cfg->auth_key : "";
  if (!path[0] || (!filewatch_changed(path, &a->key_st) && !force))
    return;
  struct auth_key k;
  char err[256];
  int rc = auth_key_load(&k, path, err, sizeof(err));
  if (rc == 0 && k.is_private) {
    snprintf(err, sizeof(err), "a private key; give the relay the public key");
    auth_key_fini(&k);
    rc = -EINVAL;
  }
  if (rc < 0) {
    a->ctr.key_reload_failures++;
    log_error("token key reload failed, keeping the old one", "auth_key=%s err=\"%s\"", path, err);
    return;
  }
  if (k.alg == a->key.alg && k.len == a->key.len && memcmp(k.bytes, a->key.bytes, k.len) == 0) {
    auth_key_fini(&k);
    return;
  }
  auth_key_fini(&a->key);
  a->key = k;
  a->ctr.key_reloads++;
  log_info("token key changed", "auth_key=%s alg=%s why=%s", path, alg_name(k.alg),
           force ? "reload" : "file changed");
}

static enum auth_reason subject_take(struct auth *a, const struct auth_claims *c, uint32_t *slot)
{
  uint32_t free_slot = UINT32_MAX;
  for (uint32_t i = 0; i < a->max_subjects; i++) {
    struct auth_subject *e = &a->subjects[i];
    if (e->live && strcmp(e->sub, c->sub) == 0) {
      if (e->live >= c->max_sessions)
        return AUTH_SUBJECT_LIMIT;
      e->live++;
      *slot = i + 1;
      return AUTH_OK;
    }
    if (!e->live && free_slot == UINT32_MAX)
      free_slot = i;
  }
  if (free_slot == UINT32_MAX)
    return AUTH_SUBJECT_FULL;
  snprintf(a->subjects[free_slot].sub, AUTH_SUB_MAX, "%s", c->sub);
  a->subjects[free_slot].live = 1;
  *slot = free_slot + 1;
  return AUTH_OK;
}

static enum auth_reason admit(struct auth *a, const char *origin, const char *query,
                              const char *room, int64_t now, struct auth_claims *out,
                              uint32_t *subject)
{
  const struct config *cfg = a->cfg;
  if (cfg->nallow_origin) {
    if (origin && origin[0]) {
      bool ok = false;
      for (uint32_t i = 0; i < cfg->nallow_origin && !ok; i++)
        ok = auth_origin_match(cfg->allow_origin[i], origin);
      if (!ok)
        return AUTH_ORIGIN;
    } else if (a->key.alg == AUTH_ALG_NONE) {
      return AUTH_NO_ORIGIN; /* a native client, and nothing to prove who it is */
    }
  }
  if (a->key.alg == AUTH_ALG_NONE)
    return AUTH_OK;
  char token[AUTH_TOKEN_MAX];
  int n = auth_query_token(query, token, sizeof(token));
  if (n < 0)
    return AUTH_MALFORMED;
  enum auth_reason r = auth_verify(&a->key, token, now, cfg->auth_skew_s, room, out);
  if (r != AUTH_OK || !out->sub[0] || !out->max_sessions)
    return r;
  return subject_take(a, out, subject);
}

enum auth_reason auth_admit(struct auth *a, const char *origin, const char *query, const char *room,
                            int64_t now, struct auth_claims *out, uint32_t *subject)
{
  memset(out, 0, sizeof(*out));
  *subject = 0;
  enum auth_reason r = admit(a, origin, query, room, now, out, subject);
  if (r == AUTH_OK)
    a->ctr.accepted++;
  else
    a->ctr.refused[r]++;
  return r;
}

void auth_release(struct auth *a, uint32_t subject)
{
  if (!a || subject == 0 || subject > a->max_subjects)
    return;
  struct auth_subject *e = &a->subjects[subject - 1];
  if (e->live && --e->live == 0)
    e->sub[0] = '\0';
}

/* ---- counters ---- */

/* Access control's counters for /metrics and the exit log, one row per
 * field (test_counter checks that every field has exactly one, and that
 * the refusal labels are reason_names above). */
#define A(fam, help, labels, key, field)                                                           \
  COUNTER_DEF(struct auth_counters, fam, help, labels, "auth counters", key, field)
#define REF(r, name) A("wtrelay_auth_refused_total", NULL, "reason=\"" name "\"", name, refused[r])
static const struct counter_def auth_counter_defs[] = {
    A(NULL, NULL, NULL, NULL, refused[AUTH_OK]), /* never counted */
    A("wtrelay_auth_refused_total",
      "extended CONNECTs refused by token or origin checks, by reason", "reason=\"missing_token\"",
      "missing_token", refused[AUTH_MISSING]),
    REF(AUTH_MALFORMED, "malformed"),
    REF(AUTH_BAD_ALG, "wrong_algorithm"),
    REF(AUTH_BAD_SIGNATURE, "bad_signature"),
    REF(AUTH_NO_EXP, "no_exp"),
    REF(AUTH_EXPIRED, "expired"),
    REF(AUTH_NOT_YET_VALID, "not_yet_valid"),
    REF(AUTH_ROOM, "room_not_granted"),
    REF(AUTH_ORIGIN, "origin_not_allowed"),
    REF(AUTH_NO_ORIGIN, "no_origin"),
    REF(AUTH_SUBJECT_LIMIT, "subject_limit"),
    REF(AUTH_SUBJECT_FULL, "subject_table_full"),
    A("wtrelay_auth_accepted_total", "extended CONNECTs that passed the checks", NULL, "accepted",
      accepted),
    A("wtrelay_auth_register_refused_mac_total",
      "Register of a MAC other than the one the token names", NULL, "register_refused_mac",
      register_refused_mac),
    A("wtrelay_auth_key_reloads_total", "token key reloads", "result=\"ok\"", "key_reloads",
      key_reloads),
    A("wtrelay_auth_key_reloads_total", NULL, "result=\"failed\"", "key_reload_failures",
      key_reload_failures),
};
#undef REF
#undef A

const struct counter_table auth_counter_table =
    COUNTER_TABLE(auth_counter_defs, struct auth_counters);
