#include <criterion/criterion.h>
#include <errno.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wtrelay/tls.h"

#include "tmpdir.h"

static void openssl_hash(const char *pem_path, char out[65])
{
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "openssl x509 -in %s -outform DER | sha256sum", pem_path);
  FILE *f = popen(cmd, "r");
  cr_assert(f);
  cr_assert(fgets(out, 65, f));
  pclose(f);
}

Test(tls, generated_cert_is_p256_short_lived_with_sans)
{
  struct tls_cert c;
  cr_assert_eq(tls_cert_generate(&c, 13), 0);
  gnutls_x509_crt_t crt;
  gnutls_x509_crt_init(&crt);
  cr_assert_geq(gnutls_x509_crt_import(crt, &c.der, GNUTLS_X509_FMT_DER), 0);
  unsigned bits = 0;
  cr_assert_eq(gnutls_x509_crt_get_pk_algorithm(crt, &bits), GNUTLS_PK_ECDSA);
  gnutls_ecc_curve_t curve;
  cr_assert_geq(gnutls_x509_crt_get_pk_ecc_raw(crt, &curve, NULL, NULL), 0);
  cr_assert_eq(curve, GNUTLS_ECC_CURVE_SECP256R1);
  cr_assert_eq(gnutls_x509_crt_get_version(crt), 3);
  time_t now = time(NULL);
  cr_assert_leq(c.not_before, now);
  cr_assert_leq(c.not_after - c.not_before, 14 * 86400);
  cr_assert_gt(c.not_after - c.not_before, 12 * 86400);
  bool dns = false, v4 = false, v6 = false;
  for (unsigned i = 0;; i++) {
    char buf[64];
    size_t len = sizeof(buf);
    int t = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &len, NULL);
    if (t < 0)
      break;
    if (t == GNUTLS_SAN_DNSNAME && len == 9 && !memcmp(buf, "localhost", 9))
      dns = true;
    if (t == GNUTLS_SAN_IPADDRESS && len == 4 && !memcmp(buf, "\x7f\0\0\x01", 4))
      v4 = true;
    if (t == GNUTLS_SAN_IPADDRESS && len == 16 && buf[15] == 1)
      v6 = true;
  }
  cr_assert(dns && v4 && v6, "SANs localhost, 127.0.0.1, ::1");
  gnutls_x509_crt_deinit(crt);
  cr_assert_eq(strlen(c.sha256_hex), 64);
  tls_cert_fini(&c);
  cr_assert_eq(tls_cert_generate(&c, 15), -EINVAL);
}

Test(tls, hash_matches_openssl_generated_and_loaded)
{
  struct tls_cert c;
  char path[TEST_TMPDIR_MAX];
  test_tmpdir(path, sizeof(path), "tls");
  char pem[4096], cpath[256], kpath[256], want[65];
  cr_assert_eq(tls_cert_generate(&c, 13), 0);
  cr_assert_gt(tls_cert_export_pem(&c, pem, sizeof(pem)), 0);
  snprintf(cpath, sizeof(cpath), "%s/gen.pem", path);
  FILE *f = fopen(cpath, "w");
  fputs(pem, f);
  fclose(f);
  openssl_hash(cpath, want);
  cr_assert_str_eq(c.sha256_hex, want);
  tls_cert_fini(&c);

  char cmd[1024];
  snprintf(cpath, sizeof(cpath), "%s/c.pem", path);
  snprintf(kpath, sizeof(kpath), "%s/k.pem", path);
  snprintf(cmd, sizeof(cmd),
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 10 "
           "-subj /CN=localhost -keyout %s -out %s 2>/dev/null",
           kpath, cpath);
  cr_assert_eq(system(cmd), 0);
  char err[256];
  cr_assert_eq(tls_cert_load_pem(&c, cpath, kpath, err, sizeof(err)), 0, "%s", err);
  openssl_hash(cpath, want);
  cr_assert_str_eq(c.sha256_hex, want);
  cr_assert(!c.ephemeral);
  tls_cert_fini(&c);

  /* errors */
  cr_assert_eq(tls_cert_load_pem(&c, "/nonexistent/c.pem", kpath, err, sizeof(err)), -ENOENT);
  cr_assert(strstr(err, "/nonexistent/c.pem"), "%s", err);
  char other[256];
  snprintf(other, sizeof(other), "%s/k2.pem", path);
  snprintf(cmd, sizeof(cmd),
           "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s 2>/dev/null",
           other);
  cr_assert_eq(system(cmd), 0);
  cr_assert_eq(tls_cert_load_pem(&c, cpath, other, err, sizeof(err)), -EKEYREJECTED);
  cr_assert(strstr(err, "does not match"), "%s", err);
  snprintf(other, sizeof(other), "%s/garbage.pem", path);
  f = fopen(other, "w");
  fputs("not a certificate\n", f);
  fclose(f);
  cr_assert_eq(tls_cert_load_pem(&c, other, kpath, err, sizeof(err)), -EINVAL);
  test_tmpdir_rm(path);
}

/* Which certificates browsers take through serverCertificateHashes: the
 * ephemeral one and a 10-day ECDSA pair yes; RSA, or ECDSA valid 90 days,
 * no (the relay warns at start and at a reload). */
Test(tls, hash_usable_certificates)
{
  struct tls_cert c;
  char path[TEST_TMPDIR_MAX], cmd[1024], cpath[256], kpath[256], err[256];
  cr_assert_eq(tls_cert_generate(&c, 13), 0);
  cr_assert_null(tls_cert_hash_unusable(&c));
  tls_cert_fini(&c);
  test_tmpdir(path, sizeof(path), "tlshash");
  snprintf(cpath, sizeof(cpath), "%s/c.pem", path);
  snprintf(kpath, sizeof(kpath), "%s/k.pem", path);
  static const char *const kinds[][2] = {
      {"-newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 10", NULL},
      {"-newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 90", "more than 14 days"},
      {"-newkey rsa:2048 -days 10", "not ECDSA"},
  };
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 %s -nodes -subj /CN=localhost -keyout %s -out %s 2>/dev/null",
             kinds[i][0], kpath, cpath);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(tls_cert_load_pem(&c, cpath, kpath, err, sizeof(err)), 0, "%s", err);
    const char *why = tls_cert_hash_unusable(&c);
    if (kinds[i][1])
      cr_assert(why && strstr(why, kinds[i][1]), "%s: %s", kinds[i][0], why ? why : "usable");
    else
      cr_assert_null(why, "%s: %s", kinds[i][0], why);
    tls_cert_fini(&c);
  }
  test_tmpdir_rm(path);
}

Test(tls, hash_hex_parse)
{
  uint8_t h[32];
  const char *ok = "075e5212c5ce2f136c8a2a47917c42c5777f050bad2f5e4b526d875fa242487d";
  cr_assert_eq(tls_hash_parse_hex(ok, h), 0);
  cr_assert_eq(h[0], 0x07);
  cr_assert_eq(h[31], 0x7d);
  cr_assert_eq(
      tls_hash_parse_hex("075E5212C5CE2F136C8A2A47917C42C5777F050BAD2F5E4B526D875FA242487D", h), 0);
  cr_assert_eq(tls_hash_parse_hex("07:5e:52:12:c5:ce:2f:13:6c:8a:2a:47:91:7c:42:c5:77:7f:05:0b:ad:"
                                  "2f:5e:4b:52:6d:87:5f:a2:42:48:7d",
                                  h),
               0);
  cr_assert_eq(tls_hash_parse_hex("075e", h), -EINVAL);
  cr_assert_eq(
      tls_hash_parse_hex("zz5e5212c5ce2f136c8a2a47917c42c5777f050bad2f5e4b526d875fa242487d", h),
      -EINVAL);
}

/* A server session holds a reference to a shared certificate: replacing the
 * store's certificate many times frees each replaced one only when the last
 * session made from it is freed. */
Test(tls, shared_certificates_live_until_their_last_session)
{
  ngtcp2_crypto_conn_ref ref = {0};
  struct tls_cert v;
  cr_assert_eq(tls_cert_generate(&v, 13), 0);
  uint32_t base = tls_cert_live();
  struct tls_cert *first = tls_cert_share(&v);
  cr_assert_not_null(first);
  cr_assert_null(v.cred, "the value was moved");
  tls_cert_fini(&v); /* does nothing */
  cr_assert_eq(tls_cert_live(), base + 1);
  cr_assert_eq(first->refs, 1);

  gnutls_session_t held;
  cr_assert_eq(tls_server_session_new(&held, first, &ref), 0);
  cr_assert_eq(first->refs, 2);

  /* twelve replacements, the store dropping its reference each time */
  struct tls_cert *cur = first;
  for (int i = 0; i < 12; i++) {
    cr_assert_eq(tls_cert_generate(&v, 13), 0);
    struct tls_cert *next = tls_cert_share(&v);
    cr_assert_not_null(next);
    gnutls_session_t brief;
    cr_assert_eq(tls_server_session_new(&brief, next, &ref), 0);
    tls_session_free(brief);
    tls_cert_unref(cur);
    cur = next;
    /* the current one and the first one (its session lives) */
    cr_assert_eq(tls_cert_live(), base + 2, "after replacement %d", i + 1);
  }
  cr_assert_eq(first->refs, 1, "only the held session keeps the first certificate");
  tls_session_free(held);
  cr_assert_eq(tls_cert_live(), base + 1, "freed with its last session");
  tls_cert_unref(cur);
  cr_assert_eq(tls_cert_live(), base);

  /* a plain value is borrowed, not counted */
  cr_assert_eq(tls_cert_generate(&v, 13), 0);
  cr_assert_eq(tls_server_session_new(&held, &v, &ref), 0);
  cr_assert_eq(v.refs, 0);
  tls_session_free(held);
  tls_cert_fini(&v);
  cr_assert_eq(tls_cert_live(), base);
}

/* ---- TLS over a byte stream ---- */

/* Moves what a has to send into b: bytes moved. */
static size_t pump(struct tls_stream *a, struct tls_stream *b)
{
  size_t n = a->outlen;
  if (n && tls_stream_feed(b, a->out, n) == 0) {
    tls_stream_consumed(a, n);
    return n;
  }
  return 0;
}

static int shake(struct tls_stream *srv, struct tls_stream *cli)
{
  int rs = -EAGAIN, rc = -EAGAIN;
  for (int i = 0; i < 20 && (rs || rc); i++) {
    if (rc == -EAGAIN)
      rc = tls_stream_handshake(cli);
    pump(cli, srv);
    if (rs == -EAGAIN)
      rs = tls_stream_handshake(srv);
    pump(srv, cli);
    if ((rs < 0 && rs != -EAGAIN) || (rc < 0 && rc != -EAGAIN))
      break;
  }
  if (rc < 0 && rc != -EAGAIN)
    return rc;
  return rs ? rs : rc;
}

/* A server and a client stream, pinned to the certificate: the handshake
 * over buffers, ALPN http/1.1, 100 KB each way through buffers smaller
 * than that (so writes stop at the buffer's end and resume), close_notify
 * read as the end; a shared certificate held until the stream ends. */
Test(tls, stream_handshake_data_and_close)
{
  cr_assert_eq(tls_global_init(), 0);
  struct tls_cert v;
  cr_assert_eq(tls_cert_generate(&v, 13), 0);
  struct tls_cert *c = tls_cert_share(&v);
  struct tls_stream srv, cli;
  cr_assert_eq(tls_stream_server_new(&srv, c, 32768, 32768), 0);
  cr_assert_eq(tls_stream_client_new(&cli, "localhost", c->sha256, NULL, 32768, 32768), 0);
  uint32_t live = tls_cert_live();
  tls_cert_unref(c);
  cr_assert_eq(tls_cert_live(), live, "the stream's certificate was freed under it");
  cr_assert_eq(shake(&srv, &cli), 0);
  gnutls_datum_t proto;
  cr_assert_eq(gnutls_alpn_get_selected_protocol(srv.s, &proto), 0);
  cr_assert_eq(proto.size, 8);
  cr_assert_eq(memcmp(proto.data, "http/1.1", 8), 0);
  static uint8_t data[100000], got[100000];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)(i * 31 + 7);
  struct tls_stream *ends[2][2] = {{&cli, &srv}, {&srv, &cli}};
  for (int dir = 0; dir < 2; dir++) {
    struct tls_stream *a = ends[dir][0], *b = ends[dir][1];
    size_t sent = 0, recvd = 0;
    int rounds = 0;
    while (recvd < sizeof(data) && rounds++ < 1000) {
      ssize_t w = tls_stream_write(a, data + sent, sizeof(data) - sent);
      if (w > 0)
        sent += (size_t)w;
      else
        cr_assert(w == -ENOBUFS || sent == sizeof(data), "write: %zd", w);
      pump(a, b);
      ssize_t r = -EAGAIN;
      while (recvd < sizeof(got) && (r = tls_stream_read(b, got + recvd, sizeof(got) - recvd)) > 0)
        recvd += (size_t)r;
      cr_assert(r > 0 || r == -EAGAIN, "read: %zd %s", r, b->error ? b->error : "");
    }
    cr_assert_eq(recvd, sizeof(data), "direction %d", dir);
    cr_assert_eq(memcmp(got, data, sizeof(data)), 0);
  }
  tls_stream_bye(&cli);
  pump(&cli, &srv);
  uint8_t b[16];
  cr_assert_eq(tls_stream_read(&srv, b, sizeof(b)), 0, "close_notify not read as the end");
  tls_stream_fini(&srv);
  tls_stream_fini(&cli);
  cr_assert_eq(tls_cert_live(), live - 1);
}

/* A client pinned to another certificate refuses the server's. */
Test(tls, stream_wrong_pin_fails)
{
  cr_assert_eq(tls_global_init(), 0);
  struct tls_cert c;
  cr_assert_eq(tls_cert_generate(&c, 13), 0);
  uint8_t pin[32];
  memcpy(pin, c.sha256, 32);
  pin[0] ^= 1;
  struct tls_stream srv, cli;
  cr_assert_eq(tls_stream_server_new(&srv, &c, 32768, 32768), 0);
  cr_assert_eq(tls_stream_client_new(&cli, "localhost", pin, NULL, 32768, 32768), 0);
  int rc = shake(&srv, &cli);
  cr_assert_eq(rc, -EPROTO);
  cr_assert_not(cli.handshake_done);
  tls_stream_fini(&srv);
  tls_stream_fini(&cli);
  tls_cert_fini(&c);
}
