/*
 * tls: every GnuTLS call of wtrelay lives here.
 *
 * Owns: the certificate in use (loaded PEM chain + key, or an ephemeral
 * ECDSA P-256 self-signed one valid for at most 14 days, as Chrome's
 * serverCertificateHashes demands), its SHA-256 over the DER leaf, and the
 * setup of GnuTLS sessions for QUIC (ngtcp2_crypto_gnutls) in both roles,
 * and TLS over a byte stream for the WebSocket fallback (tls_stream).
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
#include <sys/types.h>

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

/*
 * TLS over a byte stream (TCP), for the WebSocket fallback transport: a
 * GnuTLS session whose transport is two buffers of the caller's sizes,
 * so the socket I/O stays the caller's (io_uring). The caller feeds the
 * ciphertext it received (tls_stream_feed), drives the handshake and
 * reads plaintext, writes plaintext (encrypted into the out buffer, never
 * beyond it), sends t->out[0..outlen) and says how much went
 * (tls_stream_consumed). ALPN http/1.1 (not required of the client). A
 * server stream made from a shared certificate holds a reference to it
 * until tls_stream_fini.
 */
struct tls_stream {
  gnutls_session_t s;
  uint8_t *in; /* ciphertext received, not yet decrypted: in[inoff..inlen) */
  size_t inlen, inoff, incap;
  uint8_t *out; /* ciphertext to send: out[0..outlen) */
  size_t outlen, outcap;
  bool handshake_done;
  int alert;         /* the alert the peer sent during a failed handshake, else -1 */
  const char *error; /* GnuTLS's text of the last error (static) */
};

int tls_stream_server_new(struct tls_stream *t, const struct tls_cert *c, size_t incap,
                          size_t outcap);
/* Checks the server against pin_sha256 when given, else the PEM CA file
 * ca_file when given, else the system's CAs. */
int tls_stream_client_new(struct tls_stream *t, const char *server_name,
                          const uint8_t pin_sha256[32], const char *ca_file, size_t incap,
                          size_t outcap);
void tls_stream_fini(struct tls_stream *t);
/* Appends received ciphertext: 0, -ENOBUFS (no room: the caller reads
 * plaintext first, or the peer sends more than incap at once). */
int tls_stream_feed(struct tls_stream *t, const uint8_t *data, size_t len);
/* Where the next received ciphertext goes (*room bytes free), for a
 * receive straight into the stream; then tls_stream_in_commit(n). */
uint8_t *tls_stream_in_tail(struct tls_stream *t, size_t *room);
void tls_stream_in_commit(struct tls_stream *t, size_t n);
/* 0 once done, -EAGAIN (more input needed; output may be pending),
 * -EPROTO (failed: t->alert, t->error). */
int tls_stream_handshake(struct tls_stream *t);
/* Plaintext: a count, 0 at the peer's close, -EAGAIN, -EPROTO. */
ssize_t tls_stream_read(struct tls_stream *t, uint8_t *buf, size_t cap);
/* Encrypts as much of data as the out buffer takes: the count, -ENOBUFS
 * (none fits), -EPROTO. */
ssize_t tls_stream_write(struct tls_stream *t, const uint8_t *data, size_t len);
/* Plaintext bytes one tls_stream_write takes now at least. */
size_t tls_stream_writable(const struct tls_stream *t);
/* n bytes of t->out were sent. */
void tls_stream_consumed(struct tls_stream *t, size_t n);
/* Queues close_notify (when there is room). */
void tls_stream_bye(struct tls_stream *t);

#endif
