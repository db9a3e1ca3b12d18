/*
 * tls: GnuTLS glue. See include/wtrelay/tls.h.
 *
 * Client sessions need their own credentials and the pinned hash; server
 * sessions hold a reference to their shared certificate. Both live in a
 * small struct hung on the session's db pointer (the session pointer itself
 * must be the ngtcp2_crypto_conn_ref; no session database is configured, so
 * GnuTLS never reads it) and are released in tls_session_free.
 *
 * Reference counts are plain integers: one worker thread makes and frees
 * every session. With several workers they become atomic (and server.c's
 * publish of the certificate in use an atomic exchange).
 */
#include "wtrelay/tls.h"
#include "wtrelay/rng.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TLS_PRIORITY                                                                               \
  "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"             \
  "+AES-256-GCM:+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"                     \
  "+GROUP-SECP384R1"

static const gnutls_datum_t alpn_h3 = {.data = (unsigned char *)"h3", .size = 2};

int tls_global_init(void)
{
  /* GnuTLS 3.7 initialises itself; kept as the one hook for a backend that
   * needs it. */
  return 0;
}

static void hex_of(const uint8_t *in, size_t n, char *out)
{
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[in[i] >> 4];
    out[2 * i + 1] = d[in[i] & 15];
  }
  out[2 * n] = '\0';
}

/* Fills hash, times and DER from the leaf certificate. */
static int cert_fill(struct tls_cert *c, gnutls_x509_crt_t crt)
{
  if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &c->der) < 0)
    return -EINVAL;
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, c->der.data, c->der.size, c->sha256) < 0)
    return -EINVAL;
  hex_of(c->sha256, 32, c->sha256_hex);
  c->not_before = (int64_t)gnutls_x509_crt_get_activation_time(crt);
  c->not_after = (int64_t)gnutls_x509_crt_get_expiration_time(crt);
  c->ecdsa = gnutls_x509_crt_get_pk_algorithm(crt, NULL) == GNUTLS_PK_ECDSA;
  return 0;
}

const char *tls_cert_hash_unusable(const struct tls_cert *c)
{
  if (!c->ecdsa)
    return "its key is not ECDSA";
  if (c->not_after - c->not_before > 14 * 86400)
    return "it is valid for more than 14 days";
  return NULL;
}

int tls_cert_generate(struct tls_cert *out, unsigned valid_days)
{
  gnutls_x509_privkey_t key = NULL;
  gnutls_x509_crt_t crt = NULL;
  int rc = -EINVAL;
  memset(out, 0, sizeof(*out));
  if (valid_days == 0 || valid_days > 14)
    return -EINVAL;
  if (gnutls_x509_privkey_init(&key) < 0 || gnutls_x509_crt_init(&crt) < 0)
    goto done;
  if (gnutls_x509_privkey_generate2(
          key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0) < 0)
    goto done;
  time_t now = time(NULL);
  uint8_t serial[16];
  rng_fill(serial, sizeof(serial));
  serial[0] &= 0x7f;
  serial[0] |= 0x01;
  uint8_t ip4[4] = {127, 0, 0, 1};
  uint8_t ip6[16] = {0};
  ip6[15] = 1;
  if (gnutls_x509_crt_set_version(crt, 3) < 0 ||
      gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
      gnutls_x509_crt_set_activation_time(crt, now - 3600) < 0 ||
      gnutls_x509_crt_set_expiration_time(crt, now - 3600 + (time_t)valid_days * 86400) < 0 ||
      gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost", 9) < 0 ||
      gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                           GNUTLS_FSAN_SET) < 0 ||
      gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip4, 4, GNUTLS_FSAN_APPEND) <
          0 ||
      gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip6, 16, GNUTLS_FSAN_APPEND) <
          0 ||
      gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
      gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
      gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0) < 0 ||
      gnutls_x509_crt_set_key(crt, key) < 0 ||
      gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0)
    goto done;
  if (gnutls_certificate_allocate_credentials(&out->cred) < 0) {
    rc = -ENOMEM;
    goto done;
  }
  if (gnutls_certificate_set_x509_key(out->cred, &crt, 1, key) < 0)
    goto done;
  if ((rc = cert_fill(out, crt)) < 0)
    goto done;
  out->ephemeral = true;
  rc = 0;
done:
  if (crt)
    gnutls_x509_crt_deinit(crt);
  if (key)
    gnutls_x509_privkey_deinit(key);
  if (rc < 0)
    tls_cert_fini(out);
  return rc;
}

static int read_file(const char *path, gnutls_datum_t *d, char *err, size_t errlen)
{
  struct stat st;
  if (stat(path, &st) < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(e));
    return -e;
  }
  if (gnutls_load_file(path, d) < 0) {
    snprintf(err, errlen, "cannot read %s", path);
    return -EIO;
  }
  return 0;
}

int tls_cert_load_pem(struct tls_cert *out, const char *cert_path, const char *key_path, char *err,
                      size_t errlen)
{
  gnutls_datum_t cd = {0}, kd = {0};
  gnutls_x509_crt_t crt = NULL;
  int rc;
  memset(out, 0, sizeof(*out));
  if ((rc = read_file(cert_path, &cd, err, errlen)) < 0)
    goto done;
  if ((rc = read_file(key_path, &kd, err, errlen)) < 0)
    goto done;
  rc = -EINVAL;
  if (gnutls_x509_crt_init(&crt) < 0)
    goto done;
  if (gnutls_x509_crt_import(crt, &cd, GNUTLS_X509_FMT_PEM) < 0) {
    snprintf(err, errlen, "%s: no PEM certificate found", cert_path);
    goto done;
  }
  if (gnutls_certificate_allocate_credentials(&out->cred) < 0) {
    rc = -ENOMEM;
    goto done;
  }
  int g = gnutls_certificate_set_x509_key_mem2(out->cred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
  if (g == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
    snprintf(err, errlen, "private key %s does not match certificate %s", key_path, cert_path);
    rc = -EKEYREJECTED;
    goto done;
  }
  if (g < 0) {
    snprintf(err, errlen, "cannot use %s with %s: %s", cert_path, key_path, gnutls_strerror(g));
    goto done;
  }
  if ((rc = cert_fill(out, crt)) < 0) {
    snprintf(err, errlen, "%s: cannot encode certificate", cert_path);
    goto done;
  }
  rc = 0;
done:
  if (crt)
    gnutls_x509_crt_deinit(crt);
  gnutls_free(cd.data);
  gnutls_free(kd.data);
  if (rc < 0)
    tls_cert_fini(out);
  return rc;
}

static _Atomic uint32_t tls_certs_live; /* shared objects, made and freed by any worker */

struct tls_cert *tls_cert_share(struct tls_cert *c)
{
  struct tls_cert *s = malloc(sizeof(*s));
  if (!s)
    return NULL;
  memcpy(s, c, sizeof(*s));
  atomic_store(&s->refs, 1);
  memset(c, 0, sizeof(*c));
  tls_certs_live++;
  return s;
}

struct tls_cert *tls_cert_ref(struct tls_cert *c)
{
  atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
  return c;
}

void tls_cert_unref(struct tls_cert *c)
{
  /* acq_rel: every use of the object by a thread that dropped its
   * reference happens before the free by the last one */
  if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) > 1)
    return;
  tls_cert_fini(c);
  free(c);
  tls_certs_live--;
}

uint32_t tls_cert_live(void)
{
  return atomic_load_explicit(&tls_certs_live, memory_order_relaxed);
}

void tls_cert_fini(struct tls_cert *c)
{
  if (c->cred)
    gnutls_certificate_free_credentials(c->cred);
  c->cred = NULL;
  gnutls_free(c->der.data);
  c->der.data = NULL;
  c->der.size = 0;
}

int tls_cert_export_der(const struct tls_cert *c, uint8_t *buf, size_t cap)
{
  if (c->der.size > cap)
    return -ENOSPC;
  memcpy(buf, c->der.data, c->der.size);
  return (int)c->der.size;
}

int tls_cert_export_pem(const struct tls_cert *c, char *buf, size_t cap)
{
  gnutls_datum_t pem = {0};
  if (gnutls_pem_base64_encode2("CERTIFICATE", &c->der, &pem) < 0)
    return -EINVAL;
  int rc = -ENOSPC;
  if (pem.size + 1 <= cap) {
    memcpy(buf, pem.data, pem.size);
    buf[pem.size] = '\0';
    rc = (int)pem.size;
  }
  gnutls_free(pem.data);
  return rc;
}

/* What a session owns besides itself (on its db pointer). */
struct tls_session_extra {
  gnutls_certificate_credentials_t cred; /* client: its own, freed with it */
  bool has_pin;
  uint8_t pin[32];
  struct tls_cert *cert; /* server: a reference to a shared certificate */
};

static const gnutls_datum_t alpn_http11 = {.data = (unsigned char *)"http/1.1", .size = 8};

/* A server session with c's credentials: for QUIC (quic: ngtcp2's glue,
 * ALPN h3 mandatory, early data) or a TLS stream over TCP (ALPN http/1.1
 * when the client offers ALPN). */
static int server_new(gnutls_session_t *out, const struct tls_cert *c, bool quic)
{
  gnutls_session_t s;
  struct tls_session_extra *x = NULL;
  if (c->refs) {
    x = calloc(1, sizeof(*x));
    if (!x)
      return -ENOMEM;
  }
  unsigned flags = quic ? GNUTLS_SERVER | GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA
                        : GNUTLS_SERVER | GNUTLS_NONBLOCK;
  if (gnutls_init(&s, flags) < 0) {
    free(x);
    return -ENOMEM;
  }
  if (gnutls_priority_set_direct(s, TLS_PRIORITY, NULL) < 0 ||
      (quic && ngtcp2_crypto_gnutls_configure_server_session(s) != 0) ||
      gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, c->cred) < 0 ||
      gnutls_alpn_set_protocols(s, quic ? &alpn_h3 : &alpn_http11, 1,
                                quic ? GNUTLS_ALPN_MANDATORY : 0) < 0) {
    gnutls_deinit(s);
    free(x);
    return -EINVAL;
  }
  if (x) {
    /* A shared object was allocated writable by tls_cert_share; callers see
     * it const because its value never changes, only its count. */
    x->cert = tls_cert_ref((struct tls_cert *)c);
    gnutls_db_set_ptr(s, x);
  }
  *out = s;
  return 0;
}

int tls_server_session_new(gnutls_session_t *out, const struct tls_cert *c,
                           ngtcp2_crypto_conn_ref *conn_ref)
{
  int rc = server_new(out, c, true);
  if (rc == 0)
    gnutls_session_set_ptr(*out, conn_ref);
  return rc;
}

static int verify_pin(gnutls_session_t s)
{
  struct tls_session_extra *x = gnutls_db_get_ptr(s);
  unsigned n = 0;
  const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
  uint8_t h[32];
  if (!x || !certs || n == 0)
    return -1;
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, certs[0].data, certs[0].size, h) < 0)
    return -1;
  return memcmp(h, x->pin, 32) == 0 ? 0 : -1;
}

/* A client session toward server_name, its certificate checked against
 * pin_sha256 when given, else the CA file `ca_file` when given, else the
 * system's CAs; for QUIC or a TLS stream (as server_new). */
static int client_new(gnutls_session_t *out, const char *server_name, const uint8_t pin_sha256[32],
                      const char *ca_file, bool quic)
{
  struct tls_session_extra *x = calloc(1, sizeof(*x));
  gnutls_session_t s = NULL;
  if (!x)
    return -ENOMEM;
  if (gnutls_certificate_allocate_credentials(&x->cred) < 0)
    goto fail;
  unsigned flags = quic ? GNUTLS_CLIENT | GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA
                        : GNUTLS_CLIENT | GNUTLS_NONBLOCK;
  if (gnutls_init(&s, flags) < 0) {
    s = NULL;
    goto fail;
  }
  if (gnutls_priority_set_direct(s, TLS_PRIORITY, NULL) < 0 ||
      (quic && ngtcp2_crypto_gnutls_configure_client_session(s) != 0) ||
      gnutls_alpn_set_protocols(s, quic ? &alpn_h3 : &alpn_http11, 1,
                                quic ? GNUTLS_ALPN_MANDATORY : 0) < 0)
    goto fail;
  struct in6_addr a6;
  bool is_ip =
      inet_pton(AF_INET, server_name, &a6) == 1 || inet_pton(AF_INET6, server_name, &a6) == 1;
  if (!is_ip && gnutls_server_name_set(s, GNUTLS_NAME_DNS, server_name, strlen(server_name)) < 0)
    goto fail;
  if (pin_sha256) {
    x->has_pin = true;
    memcpy(x->pin, pin_sha256, 32);
    gnutls_session_set_verify_function(s, verify_pin);
  } else {
    if ((ca_file ? gnutls_certificate_set_x509_trust_file(x->cred, ca_file, GNUTLS_X509_FMT_PEM)
                 : gnutls_certificate_set_x509_system_trust(x->cred)) <= 0)
      goto fail;
    gnutls_session_set_verify_cert(s, is_ip ? NULL : server_name, 0);
  }
  if (gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, x->cred) < 0)
    goto fail;
  gnutls_db_set_ptr(s, x);
  *out = s;
  return 0;
fail:
  if (s)
    gnutls_deinit(s);
  if (x->cred)
    gnutls_certificate_free_credentials(x->cred);
  free(x);
  return -EINVAL;
}

int tls_client_session_new(gnutls_session_t *out, const char *server_name,
                           const uint8_t pin_sha256[32], ngtcp2_crypto_conn_ref *conn_ref)
{
  int rc = client_new(out, server_name, pin_sha256, NULL, true);
  if (rc == 0)
    gnutls_session_set_ptr(*out, conn_ref);
  return rc;
}

void tls_session_free(gnutls_session_t s)
{
  if (!s)
    return;
  struct tls_session_extra *x = NULL;
  x = gnutls_db_get_ptr(s);
  gnutls_deinit(s);
  if (x) {
    if (x->cred)
      gnutls_certificate_free_credentials(x->cred);
    tls_cert_unref(x->cert);
    free(x);
  }
}

int tls_hash_parse_hex(const char *hex, uint8_t out[32])
{
  size_t n = 0;
  int hi = -1;
  for (const char *p = hex; *p; p++) {
    int v;
    if (*p >= '0' && *p <= '9')
      v = *p - '0';
    else if (*p >= 'a' && *p <= 'f')
      v = *p - 'a' + 10;
    else if (*p >= 'A' && *p <= 'F')
      v = *p - 'A' + 10;
    else if (*p == ':' && hi < 0)
      continue;
    else
      return -EINVAL;
    if (hi < 0) {
      hi = v;
    } else {
      if (n >= 32)
        return -EINVAL;
      out[n++] = (uint8_t)(hi << 4 | v);
      hi = -1;
    }
  }
  return n == 32 && hi < 0 ? 0 : -EINVAL;
}

/* ---- TLS over a byte stream ---- */

/* GnuTLS's transport: the ciphertext the caller fed, and the buffer of
 * ciphertext to send. A push never fails: tls_stream_write makes sure of
 * the room before GnuTLS encrypts. */
static ssize_t stream_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
  struct tls_stream *t = ptr;
  size_t have = t->inlen - t->inoff;
  if (!have) {
    gnutls_transport_set_errno(t->s, EAGAIN);
    return -1;
  }
  size_t n = len < have ? len : have;
  memcpy(buf, t->in + t->inoff, n);
  t->inoff += n;
  if (t->inoff == t->inlen)
    t->inoff = t->inlen = 0;
  return (ssize_t)n;
}

static ssize_t stream_push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
  struct tls_stream *t = ptr;
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++)
    total += iov[i].iov_len;
  if (total > t->outcap - t->outlen) {
    gnutls_transport_set_errno(t->s, EAGAIN);
    return -1;
  }
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len)
      memcpy(t->out + t->outlen, iov[i].iov_base, iov[i].iov_len);
    t->outlen += iov[i].iov_len;
  }
  return (ssize_t)total;
}

static int stream_init(struct tls_stream *t, gnutls_session_t s, size_t incap, size_t outcap)
{
  t->s = s;
  t->in = malloc(incap);
  t->out = malloc(outcap);
  t->incap = incap;
  t->outcap = outcap;
  t->inlen = t->inoff = t->outlen = 0;
  t->handshake_done = false;
  if (!t->in || !t->out) {
    tls_stream_fini(t);
    return -ENOMEM;
  }
  gnutls_transport_set_ptr(s, t);
  gnutls_transport_set_pull_function(s, stream_pull);
  gnutls_transport_set_vec_push_function(s, stream_push);
  gnutls_handshake_set_timeout(s, 0);
  return 0;
}

int tls_stream_server_new(struct tls_stream *t, const struct tls_cert *c, size_t incap,
                          size_t outcap)
{
  memset(t, 0, sizeof(*t));
  gnutls_session_t s;
  int rc = server_new(&s, c, false);
  return rc < 0 ? rc : stream_init(t, s, incap, outcap);
}

int tls_stream_client_new(struct tls_stream *t, const char *server_name,
                          const uint8_t pin_sha256[32], const char *ca_file, size_t incap,
                          size_t outcap)
{
  memset(t, 0, sizeof(*t));
  gnutls_session_t s;
  int rc = client_new(&s, server_name, pin_sha256, ca_file, false);
  return rc < 0 ? rc : stream_init(t, s, incap, outcap);
}

void tls_stream_fini(struct tls_stream *t)
{
  tls_session_free(t->s);
  free(t->in);
  free(t->out);
  memset(t, 0, sizeof(*t));
}

uint8_t *tls_stream_in_tail(struct tls_stream *t, size_t *room)
{
  if (t->inoff && t->inoff < t->inlen) { /* keep what is left at the front */
    memmove(t->in, t->in + t->inoff, t->inlen - t->inoff);
    t->inlen -= t->inoff;
    t->inoff = 0;
  }
  *room = t->incap - t->inlen;
  return t->in + t->inlen;
}

void tls_stream_in_commit(struct tls_stream *t, size_t n)
{
  t->inlen += n <= t->incap - t->inlen ? n : t->incap - t->inlen;
}

int tls_stream_feed(struct tls_stream *t, const uint8_t *data, size_t len)
{
  size_t room;
  uint8_t *tail = tls_stream_in_tail(t, &room);
  if (len > room)
    return -ENOBUFS;
  memcpy(tail, data, len);
  tls_stream_in_commit(t, len);
  return 0;
}

int tls_stream_handshake(struct tls_stream *t)
{
  if (t->handshake_done)
    return 0;
  int rc = gnutls_handshake(t->s);
  if (rc == GNUTLS_E_SUCCESS) {
    t->handshake_done = true;
    return 0;
  }
  if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
    return -EAGAIN;
  t->alert = rc == GNUTLS_E_WARNING_ALERT_RECEIVED || rc == GNUTLS_E_FATAL_ALERT_RECEIVED
                 ? (int)gnutls_alert_get(t->s)
                 : -1;
  t->error = gnutls_strerror(rc);
  return -EPROTO;
}

ssize_t tls_stream_read(struct tls_stream *t, uint8_t *buf, size_t cap)
{
  if (!cap)
    return -EINVAL;
  ssize_t n = gnutls_record_recv(t->s, buf, cap);
  if (n >= 0)
    return n; /* 0: the peer's close_notify */
  if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
    return -EAGAIN;
  if (n == GNUTLS_E_PREMATURE_TERMINATION)
    return 0;
  t->error = gnutls_strerror((int)n);
  return -EPROTO;
}

/* Room a record of len plaintext bytes takes at most: TLS 1.3's header,
 * the content type, the AEAD tag and padding we never add. */
#define RECORD_OVERHEAD 64

ssize_t tls_stream_write(struct tls_stream *t, const uint8_t *data, size_t len)
{
  size_t done = 0;
  while (done < len) {
    size_t n = len - done < 16384 ? len - done : 16384;
    if (t->outcap - t->outlen < n + RECORD_OVERHEAD)
      break;
    ssize_t w = gnutls_record_send(t->s, data + done, n);
    if (w < 0) {
      t->error = gnutls_strerror((int)w);
      return done ? (ssize_t)done : -EPROTO;
    }
    done += (size_t)w;
  }
  return done ? (ssize_t)done : -ENOBUFS;
}

size_t tls_stream_writable(const struct tls_stream *t)
{
  size_t room = t->outcap - t->outlen;
  return room > RECORD_OVERHEAD ? room - RECORD_OVERHEAD : 0;
}

void tls_stream_consumed(struct tls_stream *t, size_t n)
{
  if (n >= t->outlen) {
    t->outlen = 0;
    return;
  }
  memmove(t->out, t->out + n, t->outlen - n);
  t->outlen -= n;
}

void tls_stream_bye(struct tls_stream *t)
{
  if (t->handshake_done && t->outcap - t->outlen >= RECORD_OVERHEAD)
    gnutls_bye(t->s, GNUTLS_SHUT_WR);
}
