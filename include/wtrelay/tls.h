/*
 * tls: every GnuTLS call of wtrelay lives here.
 *
 * Owns: the certificate in use (loaded PEM chain + key, or an ephemeral
 * ECDSA P-256 self-signed one valid for at most 14 days, as Chrome's
 * serverCertificateHashes demands), its SHA-256 over the DER leaf, and the
 * setup of GnuTLS sessions for QUIC (ngtcp2_crypto_gnutls) in both roles.
 * Talks to: GnuTLS and ngtcp2_crypto_gnutls only. Never: touches sockets.
 *
 * Lifetime: a certificate is filled as a plain value (generate, load), then
 * tls_cert_share moves it into a reference-counted object. A server TLS
 * session made from a shared certificate holds a reference until
 * tls_session_free, so a connection keeps its credentials however often the
 * certificate in use is replaced; the last tls_cert_unref frees them.
 */
#ifndef WTRELAY_TLS_H
#define WTRELAY_TLS_H

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_cert {
  gnutls_certificate_credentials_t cred;
  uint8_t sha256[32];
  char sha256_hex[65];
  int64_t not_before, not_after; /* unix seconds */
  bool ephemeral;
  bool ecdsa;            /* the leaf's key is ECDSA */
  gnutls_datum_t der;    /* leaf certificate, owned */
  _Atomic uint32_t refs; /* 0: a plain value; else references to a shared object (every
                          * worker takes and drops them: atomic) */
};

int tls_global_init(void);
/* NULL when browsers accept c through serverCertificateHashes (an ECDSA
 * key, valid for at most 14 days), else why not, for a warning. */
const char *tls_cert_hash_unusable(const struct tls_cert *c);
/* Ephemeral ECDSA P-256 self-signed cert (SAN localhost, 127.0.0.1, ::1),
 * valid from now - 1 h for valid_days (at most 14: -EINVAL otherwise). */
int tls_cert_generate(struct tls_cert *out, unsigned valid_days);
/* PEM chain + key. -ENOENT missing file, -EINVAL unparsable, -EKEYREJECTED
 * key does not match; a human message in err. */
int tls_cert_load_pem(struct tls_cert *out, const char *cert_path, const char *key_path, char *err,
                      size_t errlen);
/* Frees a plain value's credentials (not for a shared object). */
void tls_cert_fini(struct tls_cert *c);
/* Moves the filled value *c into a new shared object with one reference,
 * the caller's; *c is left empty (tls_cert_fini on it does nothing).
 * Returns NULL (c untouched) when out of memory. */
struct tls_cert *tls_cert_share(struct tls_cert *c);
/* One more reference to a shared certificate; returns c. */
struct tls_cert *tls_cert_ref(struct tls_cert *c);
/* Drops one reference; the last frees the credentials and the object.
 * NULL is ignored. */
void tls_cert_unref(struct tls_cert *c);
/* Shared certificate objects alive in the process (/metrics, tests). */
uint32_t tls_cert_live(void);
int tls_cert_export_pem(const struct tls_cert *c, char *buf, size_t cap);
int tls_cert_export_der(const struct tls_cert *c, uint8_t *buf, size_t cap);

/* QUIC server session (ALPN h3); conn_ref is borrowed and must outlive it.
 * A shared c gets a reference, held until tls_session_free; a plain c is
 * borrowed and must outlive the session. */
int tls_server_session_new(gnutls_session_t *out, const struct tls_cert *c,
                           ngtcp2_crypto_conn_ref *conn_ref);
/* QUIC client session: SNI server_name (not for IP literals); verify by
 * pin_sha256 (SHA-256 of the leaf DER) when given, else system CAs. */
int tls_client_session_new(gnutls_session_t *out, const char *server_name,
                           const uint8_t pin_sha256[32], ngtcp2_crypto_conn_ref *conn_ref);
void tls_session_free(gnutls_session_t s);
/* 64 hex digits (any case, ':' separators allowed) -> 32 bytes. */
int tls_hash_parse_hex(const char *hex, uint8_t out[32]);

#endif
