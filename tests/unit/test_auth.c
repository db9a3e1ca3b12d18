#include <criterion/criterion.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wtrelay/auth.h"
#include "wtrelay/config.h"

#include "tmpdir.h"

#define NOW 1700000000

static struct auth_key secret_key(const char *s)
{
  struct auth_key k;
  char err[256];
  cr_assert_eq(auth_key_parse(&k, (const unsigned char *)s, strlen(s), err, sizeof(err)), 0, "%s",
               err);
  return k;
}

/* A fresh EC P-256 pair as PEM text: private (PKCS#8) and public. */
static void ec_pair(char *priv, size_t privcap, char *pub, size_t pubcap)
{
  gnutls_x509_privkey_t x;
  gnutls_privkey_t pk;
  gnutls_pubkey_t pb;
  cr_assert_eq(gnutls_x509_privkey_init(&x), 0);
  cr_assert_eq(gnutls_x509_privkey_generate(x, GNUTLS_PK_ECDSA,
                                            GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
               0);
  size_t n = privcap;
  cr_assert_eq(
      gnutls_x509_privkey_export_pkcs8(x, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, priv, &n),
      0);
  priv[n] = '\0';
  gnutls_privkey_init(&pk);
  gnutls_pubkey_init(&pb);
  cr_assert_eq(gnutls_privkey_import_x509(pk, x, 0), 0);
  cr_assert_eq(gnutls_pubkey_import_privkey(pb, pk, 0, 0), 0);
  n = pubcap;
  cr_assert_eq(gnutls_pubkey_export(pb, GNUTLS_X509_FMT_PEM, pub, &n), 0);
  pub[n] = '\0';
  gnutls_pubkey_deinit(pb);
  gnutls_privkey_deinit(pk);
  gnutls_x509_privkey_deinit(x);
}

static struct auth_key pem_key(const char *pem)
{
  return secret_key(pem);
}

static void sign(const struct auth_key *k, const char *claims, char *out)
{
  int rc = auth_token_sign(k, claims, out, AUTH_TOKEN_MAX);
  cr_assert_gt(rc, 0, "sign: %d", rc);
}

Test(auth, hs256_valid_and_claims)
{
  struct auth_key k = secret_key("s3cret-s3cret\n");
  cr_assert_eq(k.alg, AUTH_ALG_HS256);
  cr_assert_eq(k.len, 13, "the trailing newline is not part of the secret");
  char t[AUTH_TOKEN_MAX];
  sign(&k,
       "{\"exp\":1700000600,\"room\":\"/lab\",\"mac\":\"52:54:00:ab:cd:ef\",\"sub\":\"alice\","
       "\"max_sessions\":2}",
       t);
  struct auth_claims c;
  cr_assert_eq(auth_verify(&k, t, NOW, 60, "/lab", &c), AUTH_OK);
  cr_assert_eq(c.exp, 1700000600);
  cr_assert(c.has_mac);
  cr_assert_eq(memcmp(c.mac, (uint8_t[]){0x52, 0x54, 0, 0xab, 0xcd, 0xef}, 6), 0);
  cr_assert_str_eq(c.sub, "alice");
  cr_assert_eq(c.max_sessions, 2);
  /* the same secret without the newline verifies it too */
  struct auth_key k2 = secret_key("s3cret-s3cret");
  cr_assert_eq(auth_verify(&k2, t, NOW, 60, "/lab", NULL), AUTH_OK);
  auth_key_fini(&k);
  auth_key_fini(&k2);
}

Test(auth, times_and_skew)
{
  struct auth_key k = secret_key("secret");
  char t[AUTH_TOKEN_MAX];
  sign(&k, "{\"exp\":1700000000,\"room\":\"/\"}", t);
  cr_assert_eq(auth_verify(&k, t, NOW - 1, 0, "/", NULL), AUTH_OK);
  cr_assert_eq(auth_verify(&k, t, NOW, 0, "/", NULL), AUTH_EXPIRED);
  cr_assert_eq(auth_verify(&k, t, NOW + 59, 60, "/", NULL), AUTH_OK, "within the skew");
  cr_assert_eq(auth_verify(&k, t, NOW + 60, 60, "/", NULL), AUTH_EXPIRED);
  sign(&k, "{\"exp\":1700009999,\"nbf\":1700000100,\"room\":\"/\"}", t);
  cr_assert_eq(auth_verify(&k, t, NOW, 60, "/", NULL), AUTH_NOT_YET_VALID);
  cr_assert_eq(auth_verify(&k, t, NOW, 100, "/", NULL), AUTH_OK, "nbf within the skew");
  cr_assert_eq(auth_verify(&k, t, NOW + 100, 0, "/", NULL), AUTH_OK);
  sign(&k, "{\"room\":\"/\"}", t);
  cr_assert_eq(auth_verify(&k, t, NOW, 60, "/", NULL), AUTH_NO_EXP);
  sign(&k, "{\"exp\":\"soon\",\"room\":\"/\"}", t);
  cr_assert_eq(auth_verify(&k, t, NOW, 60, "/", NULL), AUTH_MALFORMED);
  sign(&k, "{\"exp\":1700009999,\"room\":\"/\",\"mac\":\"01:00:5e:00:00:01\"}", t);
  cr_assert_eq(auth_verify(&k, t, NOW, 60, "/", NULL), AUTH_MALFORMED, "multicast MAC claim");
  auth_key_fini(&k);
}

Test(auth, wrong_key_and_garbage)
{
  struct auth_key k = secret_key("secret"), other = secret_key("another secret");
  char t[AUTH_TOKEN_MAX];
  sign(&other, "{\"exp\":1700009999,\"room\":\"/\"}", t);
  cr_assert_eq(auth_verify(&k, t, NOW, 60, "/", NULL), AUTH_BAD_SIGNATURE);
  cr_assert_eq(auth_verify(&k, "", NOW, 60, "/", NULL), AUTH_MISSING);
  cr_assert_eq(auth_verify(&k, "not-a-token", NOW, 60, "/", NULL), AUTH_MALFORMED);
  cr_assert_eq(auth_verify(&k, "a.b.c", NOW, 60, "/", NULL), AUTH_MALFORMED);
  cr_assert_eq(auth_verify(&k, "a b.c", NOW, 60, "/", NULL), AUTH_MALFORMED);
  /* a flipped signature byte */
  sign(&k, "{\"exp\":1700009999,\"room\":\"/\"}", t);
  size_t n = strlen(t);
  t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
  cr_assert_eq(auth_verify(&k, t, NOW, 60, "/", NULL), AUTH_BAD_SIGNATURE);
  auth_key_fini(&k);
  auth_key_fini(&other);
}

Test(auth, alg_none_refused)
{
  struct auth_key k = secret_key("secret");
  /* {"alg":"none"} . {"exp":2000000000,"room":"/"} . (empty) */
  const char *none = "eyJhbGciOiJub25lIn0.eyJleHAiOjIwMDAwMDAwMDAsInJvb20iOiIvIn0.";
  cr_assert_eq(auth_verify(&k, none, NOW, 60, "/", NULL), AUTH_BAD_ALG);
  auth_key_fini(&k);
}

Test(auth, es256_valid_wrong_key_and_confusion)
{
  char priv[4096], pub[4096], priv2[4096], pub2[4096];
  ec_pair(priv, sizeof(priv), pub, sizeof(pub));
  ec_pair(priv2, sizeof(priv2), pub2, sizeof(pub2));
  struct auth_key sk = pem_key(priv), vk = pem_key(pub), vk2 = pem_key(pub2);
  cr_assert_eq(sk.alg, AUTH_ALG_ES256);
  cr_assert(sk.is_private);
  cr_assert_eq(vk.alg, AUTH_ALG_ES256);
  cr_assert_not(vk.is_private);
  char t[AUTH_TOKEN_MAX];
  sign(&sk, "{\"exp\":1700009999,\"room\":\"/lab\"}", t);
  /* JWS form: the signature is r || s, 64 bytes = 86 base64url characters */
  cr_assert_eq(strlen(strrchr(t, '.') + 1), 86, "%s", t);
  cr_assert_eq(auth_verify(&vk, t, NOW, 60, "/lab", NULL), AUTH_OK);
  cr_assert_eq(auth_verify(&vk2, t, NOW, 60, "/lab", NULL), AUTH_BAD_SIGNATURE);
  cr_assert_eq(auth_verify(&sk, t, NOW, 60, "/lab", NULL), AUTH_BAD_SIGNATURE,
               "a private key is not a verification key");
  cr_assert_lt(auth_token_sign(&vk, "{\"exp\":1}", t, sizeof(t)), 0, "a public key cannot sign");

  /* Algorithm confusion: HS256 with the public key's PEM text as the
   * secret (libjwt alone would accept it). */
  jwt_t *j;
  cr_assert_eq(jwt_new(&j), 0);
  jwt_add_grants_json(j, "{\"exp\":1700009999,\"room\":\"/lab\"}");
  cr_assert_eq(jwt_set_alg(j, JWT_ALG_HS256, vk.bytes, (int)vk.len), 0);
  char *forged = jwt_encode_str(j);
  cr_assert_eq(auth_verify(&vk, forged, NOW, 60, "/lab", NULL), AUTH_BAD_ALG);
  free(forged);
  jwt_free(j);
  /* and an ES256 token offered to an HS256 secret */
  struct auth_key hk = secret_key("secret");
  sign(&sk, "{\"exp\":1700009999,\"room\":\"/lab\"}", t);
  cr_assert_eq(auth_verify(&hk, t, NOW, 60, "/lab", NULL), AUTH_BAD_ALG);
  auth_key_fini(&hk);
  auth_key_fini(&sk);
  auth_key_fini(&vk);
  auth_key_fini(&vk2);
}

Test(auth, bad_pem_refused)
{
  struct auth_key k;
  char err[256];
  const char *bad = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
  cr_assert_lt(auth_key_parse(&k, (const unsigned char *)bad, strlen(bad), err, sizeof(err)), 0);
  cr_assert_lt(auth_key_parse(&k, (const unsigned char *)"\n", 1, err, sizeof(err)), 0,
               "an empty secret");
}

Test(auth, rooms)
{
  cr_assert(auth_room_granted("/lab", "/lab"));
  cr_assert_not(auth_room_granted("/lab", "/lab/x"));
  cr_assert_not(auth_room_granted("/lab", "/labx"));
  cr_assert(auth_room_granted("/lab/*", "/lab/x"));
  cr_assert(auth_room_granted("/lab/*", "/lab/x/y"));
  cr_assert_not(auth_room_granted("/lab/*", "/labx"));
  cr_assert_not(auth_room_granted("/lab/*", "/lab"));
  cr_assert(auth_room_granted("/*", "/"));
  cr_assert(auth_room_granted("/*", "/anything"));
  cr_assert_not(auth_room_granted("/lab*", "/labx"), "a star without a slash is literal");

  struct auth_key k = secret_key("secret");
  char t[AUTH_TOKEN_MAX];
  sign(&k, "{\"exp\":1700009999,\"room\":\"/lab/*\"}", t);
  cr_assert_eq(auth_verify(&k, t, NOW, 60, "/lab/x", NULL), AUTH_OK);
  cr_assert_eq(auth_verify(&k, t, NOW, 60, "/labx", NULL), AUTH_ROOM);
  sign(&k, "{\"exp\":1700009999,\"room\":\"/lab\"}", t);
  cr_assert_eq(auth_verify(&k, t, NOW, 60, "/other", NULL), AUTH_ROOM);
  sign(&k, "{\"exp\":1700009999}", t);
  cr_assert_eq(auth_verify(&k, t, NOW, 60, "/", NULL), AUTH_ROOM, "no room claim grants nothing");
  cr_assert_eq(auth_reason_status(AUTH_ROOM), 403);
  cr_assert_eq(auth_reason_status(AUTH_EXPIRED), 401);
  cr_assert_eq(auth_reason_status(AUTH_MISSING), 401);
  auth_key_fini(&k);
}

Test(auth, query_token)
{
  char t[64];
  cr_assert_eq(auth_query_token("token=abc", t, sizeof(t)), 3);
  cr_assert_str_eq(t, "abc");
  cr_assert_eq(auth_query_token("x=1&jwt=a.b.c&token=zzz", t, sizeof(t)), 5);
  cr_assert_str_eq(t, "a.b.c");
  cr_assert_eq(auth_query_token("tokenx=1&xtoken=2", t, sizeof(t)), 0);
  cr_assert_eq(auth_query_token("", t, sizeof(t)), 0);
  cr_assert_eq(auth_query_token("token=", t, sizeof(t)), 0);
  cr_assert_eq(auth_query_token("token=0123456789", t, 8), -ENAMETOOLONG);
}

Test(auth, origins)
{
  cr_assert(auth_origin_match("https://app.example.org", "https://app.example.org"));
  cr_assert(auth_origin_match("https://app.example.org", "HTTPS://App.Example.org"));
  cr_assert_not(auth_origin_match("https://app.example.org", "http://app.example.org"));
  cr_assert_not(auth_origin_match("https://app.example.org", "https://app.example.org:8443"));
  cr_assert(auth_origin_match("http://127.0.0.1:8080", "http://127.0.0.1:8080"));
  cr_assert_not(auth_origin_match("http://127.0.0.1:8080", "http://127.0.0.1:8081"));
  /* wildcard: proper subdomains of example.org, any depth */
  const char *w = "https://*.example.org";
  cr_assert(auth_origin_match(w, "https://a.example.org"));
  cr_assert(auth_origin_match(w, "https://a.b.example.org"));
  cr_assert(auth_origin_match(w, "https://evil.com.example.org"), "a name under example.org");
  cr_assert_not(auth_origin_match(w, "https://example.org"));
  cr_assert_not(auth_origin_match(w, "https://example.org.evil.com"));
  cr_assert_not(auth_origin_match(w, "https://evilexample.org"));
  cr_assert_not(auth_origin_match(w, "http://a.example.org"));
  cr_assert_not(auth_origin_match(w, "https://a.example.org:8443"));
  cr_assert_not(auth_origin_match(w, "https://.example.org"));
  cr_assert_not(auth_origin_match(w, "https://a..example.org"));
  cr_assert_not(auth_origin_match(w, "https://a.example.org/"));
  cr_assert_not(auth_origin_match(w, "https://x@a.example.org"));
  cr_assert_not(auth_origin_match(w, "https://*.example.org"), "a literal star never matches");
  cr_assert_not(auth_origin_match(w, ""));
  cr_assert_not(auth_origin_match(w, "null"));
  cr_assert(auth_origin_match("https://*.example.org:8443", "https://a.example.org:8443"));
  /* patterns accepted by --allow-origin */
  cr_assert_eq(auth_origin_pattern_check("https://app.example.org"), 0);
  cr_assert_eq(auth_origin_pattern_check("https://*.example.org"), 0);
  cr_assert_eq(auth_origin_pattern_check("http://127.0.0.1:8080"), 0);
  cr_assert_lt(auth_origin_pattern_check("app.example.org"), 0);
  cr_assert_lt(auth_origin_pattern_check("https://app.example.org/path"), 0);
  cr_assert_lt(auth_origin_pattern_check("https://a.*.example.org"), 0);
  cr_assert_lt(auth_origin_pattern_check("https://*example.org"), 0);
  cr_assert_lt(auth_origin_pattern_check("ftp://example.org"), 0);
}

/* The relay's path: origins, tokens, subjects, through auth_admit. */
static void write_file(const char *path, const char *text)
{
  char tmp[CONFIG_PATH_MAX + 8];
  snprintf(tmp, sizeof(tmp), "%s.new", path);
  FILE *f = fopen(tmp, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
  cr_assert_eq(rename(tmp, path), 0);
}

Test(auth, admit_subjects_and_origins)
{
  char dir[TEST_TMPDIR_MAX];
  test_tmpdir(dir, sizeof(dir), "auth");
  static struct config cfg;
  config_defaults(&cfg);
  snprintf(cfg.auth_key, sizeof(cfg.auth_key), "%s/key", dir);
  write_file(cfg.auth_key, "secret\n");
  cfg.max_sessions = 4;
  struct auth a;
  cr_assert_eq(auth_init(&a, &cfg), 0);
  struct auth_key k = secret_key("secret");
  char t[AUTH_TOKEN_MAX], q[AUTH_TOKEN_MAX + 8];
  int64_t now = time(NULL);
  char claims[256];
  snprintf(claims, sizeof(claims),
           "{\"exp\":%lld,\"room\":\"/lab\",\"sub\":\"bob\",\"max_sessions\":2}",
           (long long)now + 600);
  sign(&k, claims, t);
  snprintf(q, sizeof(q), "token=%s", t);
  struct auth_claims c;
  uint32_t s1, s2, s3;
  cr_assert_eq(auth_admit(&a, "", q, "/lab", now, &c, &s1), AUTH_OK);
  cr_assert_eq(auth_admit(&a, "", q, "/lab", now, &c, &s2), AUTH_OK);
  cr_assert_eq(s1, s2);
  cr_assert_neq(s1, 0);
  cr_assert_eq(auth_admit(&a, "", q, "/lab", now, &c, &s3), AUTH_SUBJECT_LIMIT);
  cr_assert_eq(auth_reason_status(AUTH_SUBJECT_LIMIT), 429);
  auth_release(&a, s1);
  cr_assert_eq(auth_admit(&a, "", q, "/lab", now, &c, &s3), AUTH_OK, "one slot back");
  auth_release(&a, s2);
  auth_release(&a, s3);
  cr_assert_eq(a.subjects[s1 - 1].live, 0);
  cr_assert_eq(auth_admit(&a, "", "", "/lab", now, &c, &s1), AUTH_MISSING);
  cr_assert_eq(a.ctr.refused[AUTH_SUBJECT_LIMIT], 1);
  cr_assert_eq(a.ctr.refused[AUTH_MISSING], 1);
  cr_assert_eq(a.ctr.accepted, 3);

  /* key reload: a new secret replaces the old one; a broken file keeps it */
  sleep(1); /* a different mtime even on coarse file systems */
  write_file(cfg.auth_key, "new secret\n");
  auth_key_check(&a, false);
  cr_assert_eq(a.ctr.key_reloads, 1);
  cr_assert_eq(auth_admit(&a, "", q, "/lab", now, &c, &s1), AUTH_BAD_SIGNATURE);
  struct auth_key nk = secret_key("new secret");
  sign(&nk, claims, t);
  snprintf(q, sizeof(q), "jwt=%s", t);
  cr_assert_eq(auth_admit(&a, "", q, "/lab", now, &c, &s1), AUTH_OK);
  auth_release(&a, s1);
  write_file(cfg.auth_key, "-----BEGIN PUBLIC KEY-----\nbroken\n-----END PUBLIC KEY-----\n");
  auth_key_check(&a, true);
  cr_assert_eq(a.ctr.key_reload_failures, 1);
  cr_assert_eq(auth_admit(&a, "", q, "/lab", now, &c, &s1), AUTH_OK, "the old key stays");
  auth_release(&a, s1);
  auth_fini(&a);

  /* origins without a key: a listed origin passes, another is refused, no
   * origin (a native client) is refused: nothing proves who it is */
  cfg.auth_key[0] = '\0';
  snprintf(cfg.allow_origin[0], sizeof(cfg.allow_origin[0]), "https://*.example.org");
  cfg.nallow_origin = 1;
  cr_assert_eq(auth_init(&a, &cfg), 0);
  cr_assert_eq(auth_admit(&a, "https://app.example.org", "", "/", now, &c, &s1), AUTH_OK);
  cr_assert_eq(auth_admit(&a, "https://example.org.evil.com", "", "/", now, &c, &s1), AUTH_ORIGIN);
  cr_assert_eq(auth_admit(&a, "", "", "/", now, &c, &s1), AUTH_NO_ORIGIN);
  cr_assert_eq(auth_reason_status(AUTH_NO_ORIGIN), 403);
  auth_fini(&a);

  /* origins with a key: no origin needs the token, a wrong origin is
   * refused even with one */
  snprintf(cfg.auth_key, sizeof(cfg.auth_key), "%s/key", dir);
  write_file(cfg.auth_key, "new secret\n");
  cr_assert_eq(auth_init(&a, &cfg), 0);
  cr_assert_eq(auth_admit(&a, "", q, "/lab", now, &c, &s1), AUTH_OK);
  auth_release(&a, s1);
  cr_assert_eq(auth_admit(&a, "", "", "/lab", now, &c, &s1), AUTH_MISSING);
  cr_assert_eq(auth_admit(&a, "https://other.example", q, "/lab", now, &c, &s1), AUTH_ORIGIN);
  auth_fini(&a);
  auth_key_fini(&k);
  auth_key_fini(&nk);
  test_tmpdir_rm(dir);
}

Test(auth, config_flags)
{
  static struct config c;
  char err[512];
  config_defaults(&c);
  cr_assert_eq(c.auth_skew_s, 60);
  char *argv[] = {"wtrelay",      "--auth-key",     "/k",          "--auth-skew",
                  "2m",           "--allow-origin", "https://a.b", "--allow-origin",
                  "https://*.c.d"};
  cr_assert_eq(config_parse(&c, 9, argv, NULL, err, sizeof(err)), CONFIG_OK, "%s", err);
  cr_assert_str_eq(c.auth_key, "/k");
  cr_assert_eq(c.auth_skew_s, 120);
  cr_assert_eq(c.nallow_origin, 2);
  cr_assert_str_eq(c.allow_origin[1], "https://*.c.d");
  config_defaults(&c);
  char *bad[] = {"wtrelay", "--allow-origin", "https://a.b/path"};
  cr_assert_lt(config_parse(&c, 3, bad, NULL, err, sizeof(err)), 0);
  cr_assert(strstr(err, "--allow-origin"), "%s", err);
}
