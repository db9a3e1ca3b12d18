/*
 * quic_initial.h: a client's first QUIC packet (an Initial with a
 * ClientHello, pinned-hash TLS so no trust store is loaded), made by
 * ngtcp2 for tests that flood or count handshakes without following them
 * up (tests/netns/qflood.c, tests/integration/test_bounds_workers.c).
 */
#ifndef WTRELAY_TESTS_QUIC_INITIAL_H
#define WTRELAY_TESTS_QUIC_INITIAL_H

#include <netinet/in.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <stdint.h>
#include <time.h>

#include "wtrelay/rng.h"
#include "wtrelay/tls.h"

static inline uint64_t qi_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void qi_cb_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
  (void)ctx;
  rng_fill(dest, len);
}

static inline int qi_cb_new_cid(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                                void *u)
{
  (void)conn;
  (void)u;
  uint8_t b[NGTCP2_MAX_CIDLEN];
  rng_fill(b, cidlen);
  ngtcp2_cid_init(cid, b, cidlen);
  rng_fill(token, NGTCP2_STATELESS_RESET_TOKENLEN);
  return 0;
}

struct qi_conn {
  ngtcp2_conn *conn;
  ngtcp2_crypto_conn_ref ref;
};

static inline ngtcp2_conn *qi_get_conn(ngtcp2_crypto_conn_ref *ref)
{
  return ((struct qi_conn *)ref->user_data)->conn;
}

/* One client Initial from local to remote into buf (a ClientHello nobody
 * follows up): its length, or 0. */
static inline size_t quic_client_initial(uint8_t *buf, size_t cap, const struct sockaddr_in *local,
                                         const struct sockaddr_in *remote)
{
  ngtcp2_callbacks cb = {
      .client_initial = ngtcp2_crypto_client_initial_cb,
      .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
      .encrypt = ngtcp2_crypto_encrypt_cb,
      .decrypt = ngtcp2_crypto_decrypt_cb,
      .hp_mask = ngtcp2_crypto_hp_mask_cb,
      .recv_retry = ngtcp2_crypto_recv_retry_cb,
      .update_key = ngtcp2_crypto_update_key_cb,
      .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
      .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
      .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
      .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
      .rand = qi_cb_rand,
      .get_new_connection_id = qi_cb_new_cid,
  };
  uint8_t d[16], s[16];
  rng_fill(d, sizeof(d));
  rng_fill(s, sizeof(s));
  ngtcp2_cid dcid, scid;
  ngtcp2_cid_init(&dcid, d, sizeof(d));
  ngtcp2_cid_init(&scid, s, sizeof(s));
  ngtcp2_settings st;
  ngtcp2_settings_default(&st);
  st.initial_ts = qi_now_ns();
  ngtcp2_transport_params tp;
  ngtcp2_transport_params_default(&tp);
  tp.initial_max_streams_uni = 3;
  tp.initial_max_data = 1 << 20;
  tp.max_datagram_frame_size = 65535;
  ngtcp2_path path = {.local = {.addr = (ngtcp2_sockaddr *)local, .addrlen = sizeof(*local)},
                      .remote = {.addr = (ngtcp2_sockaddr *)remote, .addrlen = sizeof(*remote)}};
  struct qi_conn o = {0};
  o.ref.get_conn = qi_get_conn;
  o.ref.user_data = &o;
  if (ngtcp2_conn_client_new(&o.conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &st, &tp, NULL,
                             &o) != 0)
    return 0;
  gnutls_session_t tls = NULL;
  size_t n = 0;
  static const uint8_t pin[32]; /* pinned mode: no trust store to load per packet */
  if (tls_client_session_new(&tls, "localhost", pin, &o.ref) == 0) {
    ngtcp2_conn_set_tls_native_handle(o.conn, tls);
    ngtcp2_ssize w = ngtcp2_conn_write_pkt(o.conn, NULL, NULL, buf, cap, qi_now_ns());
    n = w > 0 ? (size_t)w : 0;
  }
  ngtcp2_conn_del(o.conn);
  if (tls)
    tls_session_free(tls);
  return n;
}

#endif
