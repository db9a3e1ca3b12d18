/*
 * quic: ngtcp2 endpoints. Theory of operation in include/wtrelay/quic.h.
 *
 * Packet path in: io -> quic_endpoint_on_packet -> CID lookup (or accept a
 * new Initial) -> ngtcp2_conn_read_pkt -> callbacks into the application.
 * Packet path out: the worker's turn calls quic_endpoint_turn, which writes
 * each dirty connection: pending stream bytes first, then queued datagrams,
 * then whatever ngtcp2 has (ACKs, retransmissions), up to the send quantum
 * (pacing), straight into the io tx arena. After writing, the connection's
 * timer is re-armed at ngtcp2_conn_get_expiry (which includes pacing).
 *
 * Closing: a local close writes CONNECTION_CLOSE once, keeps the packet and
 * re-sends it when the peer keeps sending, for three PTOs (closing period);
 * a peer close enters the draining period (silent, three PTOs). Then the
 * connection is deleted and the application told (on_conn_closed).
 */
#include "wtrelay/quic.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <malloc.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/container_of.h"
#include "wtrelay/counter.h"
#include "wtrelay/log.h"
#include "wtrelay/rng.h"

static const uint32_t quic_versions[] = {NGTCP2_PROTO_VER_V1};

#define QUIC_MEM_SLOTS_PER_CONN 16

void quic_params_default(struct quic_params *p)
{
  p->shared = NULL;
  p->max_conns = 4096;
  p->max_conns_per_ip = 64;
  p->dgram_pool = 8192;
  p->dgram_queue = 64;
  p->idle_timeout_ns = 180ull * NGTCP2_SECONDS;
  p->keep_alive_ns = 15ull * NGTCP2_SECONDS;
  p->handshake_timeout_ns = 10ull * NGTCP2_SECONDS;
  p->retry = QUIC_RETRY_AUTO;
  p->retry_threshold = 32;
  p->max_unvalidated = 0; /* 0: max_conns / 4 */
  p->unvalidated_handshake_timeout_ns = 3ull * NGTCP2_SECONDS;
}

/* ---- CID table ---- */

static uint64_t cid_hash(const struct quic_endpoint *ep, const uint8_t *cid, size_t len)
{
  /* Keyed multiply-xorshift: client-chosen CIDs must not be able to pick
   * buckets. */
  uint64_t h = ep->hash_key[0] ^ (uint64_t)len;
  for (size_t i = 0; i < len; i++) {
    h ^= cid[i];
    h *= 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  h ^= ep->hash_key[1];
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 31);
}

static struct quic_conn *cid_lookup(struct quic_endpoint *ep, const uint8_t *cid, size_t len)
{
  uint32_t b = (uint32_t)(cid_hash(ep, cid, len) & (ep->nbuckets - 1));
  for (uint32_t i = ep->buckets[b]; i; i = ep->cids[i - 1].next) {
    struct quic_cid_entry *e = &ep->cids[i - 1];
    if (e->len == len && memcmp(e->cid, cid, len) == 0)
      return &ep->conns[e->conn];
  }
  return NULL;
}

static int cid_insert(struct quic_endpoint *ep, const uint8_t *cid, size_t len, uint32_t conn)
{
  if (!ep->cid_free || len > NGTCP2_MAX_CIDLEN)
    return -ENOSPC;
  if (cid_lookup(ep, cid, len))
    return -EEXIST;
  uint32_t i = ep->cid_free;
  struct quic_cid_entry *e = &ep->cids[i - 1];
  ep->cid_free = e->next;
  uint32_t b = (uint32_t)(cid_hash(ep, cid, len) & (ep->nbuckets - 1));
  e->len = (uint8_t)len;
  memcpy(e->cid, cid, len);
  e->conn = conn;
  e->next = ep->buckets[b];
  ep->buckets[b] = i;
  return 0;
}

static void cid_remove(struct quic_endpoint *ep, const uint8_t *cid, size_t len)
{
  uint32_t b = (uint32_t)(cid_hash(ep, cid, len) & (ep->nbuckets - 1));
  uint32_t *link = &ep->buckets[b];
  while (*link) {
    struct quic_cid_entry *e = &ep->cids[*link - 1];
    if (e->len == len && memcmp(e->cid, cid, len) == 0) {
      uint32_t i = *link;
      *link = e->next;
      e->next = ep->cid_free;
      ep->cid_free = i;
      return;
    }
    link = &e->next;
  }
}

/* Removes every CID that routes to conn (bounded by the table size; only on
 * connection deletion). */
static void cid_remove_conn(struct quic_endpoint *ep, uint32_t conn)
{
  for (uint32_t b = 0; b < ep->nbuckets; b++) {
    uint32_t *link = &ep->buckets[b];
    while (*link) {
      struct quic_cid_entry *e = &ep->cids[*link - 1];
      if (e->conn == conn) {
        uint32_t i = *link;
        *link = e->next;
        e->next = ep->cid_free;
        ep->cid_free = i;
      } else {
        link = &e->next;
      }
    }
  }
}

/* ---- datagram pool ---- */

/* The free list first, then a buffer never used: the pool's pages are
 * touched only as buffers are first needed (an idle endpoint's pool costs
 * address space, not memory). */
static struct quic_dgram *dgram_get(struct quic_endpoint *ep)
{
  struct quic_dgram *d = ep->dfree;
  if (d)
    ep->dfree = d->next;
  else if (ep->dpool_next < ep->p.dgram_pool)
    d = &ep->dpool[ep->dpool_next++];
  return d;
}

static void dgram_put(struct quic_endpoint *ep, struct quic_dgram *d)
{
  d->next = ep->dfree;
  ep->dfree = d;
}

/* ---- per-address connection counts ---- */

static void ip_key(const union io_sockaddr *a, uint8_t *family, uint8_t *len, const uint8_t **addr)
{
  *family = (uint8_t)a->sa.sa_family;
  if (a->sa.sa_family == AF_INET) {
    *len = 4;
    *addr = (const uint8_t *)&a->in.sin_addr;
  } else {
    *len = 16;
    *addr = (const uint8_t *)&a->in6.sin6_addr;
  }
}

/* The link (bucket head or a `next`) that points at a's entry, or at the
 * terminating 0 when there is none. */
static uint32_t *ip_link(struct quic_endpoint *ep, const union io_sockaddr *a)
{
  struct quic_iptab *t = ep->ipt;
  uint8_t family, len;
  const uint8_t *addr;
  ip_key(a, &family, &len, &addr);
  uint64_t h = t->key ^ family;
  for (uint8_t i = 0; i < len; i++) {
    h ^= addr[i];
    h *= 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  uint32_t *link = &t->buckets[h & (t->nbuckets - 1)];
  while (*link) {
    struct quic_ip_entry *e = &t->ips[*link - 1];
    if (e->family == family && e->len == len && memcmp(e->addr, addr, len) == 0)
      break;
    link = &e->next;
  }
  return link;
}

int quic_iptab_init(struct quic_iptab *t, uint32_t max_entries, bool shared)
{
  memset(t, 0, sizeof(*t));
  t->nbuckets = 1;
  while (t->nbuckets < max_entries)
    t->nbuckets <<= 1;
  t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
  t->ips = calloc(max_entries ? max_entries : 1, sizeof(*t->ips));
  if (!t->buckets || !t->ips) {
    free(t->buckets);
    free(t->ips);
    t->buckets = NULL;
    t->ips = NULL;
    return -ENOMEM;
  }
  for (uint32_t i = 0; i < max_entries; i++)
    t->ips[i].next = i + 2 <= max_entries ? i + 2 : 0;
  t->free = max_entries ? 1 : 0;
  rng_fill(&t->key, sizeof(t->key));
  t->shared = shared;
  if (shared)
    pthread_mutex_init(&t->lock, NULL);
  return 0;
}

void quic_iptab_fini(struct quic_iptab *t)
{
  if (t->shared && t->buckets)
    pthread_mutex_destroy(&t->lock);
  free(t->buckets);
  free(t->ips);
  t->buckets = NULL;
  t->ips = NULL;
}

static void ipt_lock(struct quic_endpoint *ep)
{
  if (ep->ipt->shared)
    pthread_mutex_lock(&ep->ipt->lock);
}

static void ipt_unlock(struct quic_endpoint *ep)
{
  if (ep->ipt->shared)
    pthread_mutex_unlock(&ep->ipt->lock);
}

static uint32_t conns_of(struct quic_endpoint *ep, const union io_sockaddr *a)
{
  uint32_t *link = ip_link(ep, a);
  return *link ? ep->ipt->ips[*link - 1].count : 0;
}

uint32_t quic_endpoint_conns_of(struct quic_endpoint *ep, const union io_sockaddr *a)
{
  ipt_lock(ep);
  uint32_t n = conns_of(ep, a);
  ipt_unlock(ep);
  return n;
}

/* Counts c under its current remote address (at most once). */
static void ip_count_add(struct quic_conn *c)
{
  struct quic_endpoint *ep = c->ep;
  if (c->ip_counted)
    return;
  struct quic_iptab *t = ep->ipt;
  uint32_t *link = ip_link(ep, &c->remote);
  if (!*link) {
    if (!t->free)
      return; /* cannot happen: one entry per counted connection at most */
    uint32_t i = t->free;
    struct quic_ip_entry *e = &t->ips[i - 1];
    t->free = e->next;
    const uint8_t *addr;
    ip_key(&c->remote, &e->family, &e->len, &addr);
    memcpy(e->addr, addr, e->len);
    e->count = 0;
    e->next = 0;
    *link = i;
  }
  t->ips[*link - 1].count++;
  c->counted_ip = c->remote;
  c->ip_counted = true;
}

static void ip_count_del(struct quic_conn *c)
{
  struct quic_endpoint *ep = c->ep;
  if (!c->ip_counted)
    return;
  c->ip_counted = false;
  uint32_t *link = ip_link(ep, &c->counted_ip);
  if (!*link)
    return;
  uint32_t i = *link;
  struct quic_ip_entry *e = &ep->ipt->ips[i - 1];
  if (--e->count == 0) {
    *link = e->next;
    e->next = ep->ipt->free;
    ep->ipt->free = i;
  }
}

/* ---- process-wide connection counts (quic_shared.counts) ---- */

static uint32_t n_handshaking(const struct quic_endpoint *ep)
{
  return ep->counts ? atomic_load_explicit(&ep->counts->handshaking, memory_order_relaxed)
                    : ep->nhandshaking;
}

static uint32_t n_unvalidated(const struct quic_endpoint *ep)
{
  return ep->counts ? atomic_load_explicit(&ep->counts->unvalidated, memory_order_relaxed)
                    : ep->nunvalidated;
}

/* One more of *n unless it is at max already (then false and unchanged):
 * a fetch-add, given back when over, so racing workers never overshoot. */
static bool count_reserve(_Atomic uint32_t *n, uint32_t max)
{
  if (atomic_fetch_add_explicit(n, 1, memory_order_relaxed) < max)
    return true;
  atomic_fetch_sub_explicit(n, 1, memory_order_relaxed);
  return false;
}

static void count_release(_Atomic uint32_t *n)
{
  atomic_fetch_sub_explicit(n, 1, memory_order_relaxed);
}

static void hs_done(struct quic_conn *c)
{
  if (!c->hs_counted)
    return;
  c->hs_counted = false;
  c->ep->nhandshaking--;
  if (c->ep->counts)
    count_release(&c->ep->counts->handshaking);
}

static void unval_done(struct quic_conn *c)
{
  if (!c->unval_counted)
    return;
  c->unval_counted = false;
  c->ep->nunvalidated--;
  if (c->ep->counts)
    count_release(&c->ep->counts->unvalidated);
}

/* ---- address-validation tokens ---- */

#define TOKEN_ROTATE_NS (3600ull * NGTCP2_SECONDS)
#define RETRY_TOKEN_TIMEOUT_NS (10ull * NGTCP2_SECONDS)
#define REGULAR_TOKEN_TIMEOUT_NS (24ull * 3600 * NGTCP2_SECONDS)

/* The token secret of rotation period n under the process's shared key. */
static void token_derive(const struct quic_shared *sh, uint64_t n, uint8_t *out)
{
  uint8_t msg[8];
  for (int i = 0; i < 8; i++)
    msg[i] = (uint8_t)(n >> (8 * i));
  if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, sh->token_key, sizeof(sh->token_key), msg, sizeof(msg),
                       out) < 0) {
    log_error("token secret derivation failed", "%s", "");
    abort();
  }
}

static void token_rotate(struct quic_endpoint *ep, uint64_t now)
{
  const struct quic_shared *sh = ep->p.shared;
  if (sh) {
    uint64_t n = now / TOKEN_ROTATE_NS + 1; /* + 1: never 0, the "not derived yet" mark */
    if (n == ep->token_period)
      return;
    token_derive(sh, n, ep->token_secret);
    token_derive(sh, n - 1, ep->token_secret_prev);
    ep->token_period = n;
    return;
  }
  if (ep->token_rotated_ns && now - ep->token_rotated_ns < TOKEN_ROTATE_NS)
    return;
  memcpy(ep->token_secret_prev, ep->token_secret, sizeof(ep->token_secret));
  rng_fill(ep->token_secret, sizeof(ep->token_secret));
  ep->token_rotated_ns = now ? now : 1;
}

/* ---- endpoint ---- */

int quic_endpoint_init(struct quic_endpoint *ep, struct worker *w, struct io_udp_sock *udp,
                       const struct tls_cert *cert, bool is_server, const struct quic_params *p,
                       const struct quic_app_ops *ops, void *app)
{
  memset(ep, 0, sizeof(*ep));
  ep->w = w;
  ep->udp = udp;
  ep->cert = cert;
  ep->is_server = is_server;
  ep->p = *p;
  ep->ops = ops;
  ep->app = app;
  ep->accepting = true;
  log_ratelimit_init(&ep->rl, 1000000000ull, 10);
  rng_fill(ep->hash_key, sizeof(ep->hash_key));
  if (p->shared)
    memcpy(ep->reset_secret, p->shared->reset_secret, sizeof(ep->reset_secret));
  else
    rng_fill(ep->reset_secret, sizeof(ep->reset_secret));

  ep->ngtcp2_mem = (ngtcp2_mem)MEMCOUNT_HOOKS(&ep->ngtcp2_bytes);
  /* ngtcp2's pools in page slots: an idle connection writes one or two
   * pages of each (about 10 pools of 4-12 KiB); 16 a connection bounds
   * them, the rest (busy connections' extra pools) goes to malloc */
  if (memcount_slots_init(&ep->ngtcp2_bytes, p->max_conns * QUIC_MEM_SLOTS_PER_CONN) < 0)
    log_warn("ngtcp2 page slots not reserved: malloc only", "slots=%u",
             p->max_conns * QUIC_MEM_SLOTS_PER_CONN);
  ep->conns = calloc(p->max_conns, sizeof(*ep->conns));
  ep->free_conns = calloc(p->max_conns, sizeof(*ep->free_conns));
  uint32_t ncids = p->max_conns * 8;
  ep->nbuckets = 1;
  while (ep->nbuckets < ncids)
    ep->nbuckets <<= 1;
  ep->buckets = calloc(ep->nbuckets, sizeof(*ep->buckets));
  ep->cids = calloc(ncids, sizeof(*ep->cids));
  ep->dpool = calloc(p->dgram_pool, sizeof(*ep->dpool));
  int iprc = p->shared && p->shared->ips ? 0 : quic_iptab_init(&ep->own_ips, p->max_conns, false);
  ep->ipt = p->shared && p->shared->ips ? p->shared->ips : &ep->own_ips;
  ep->counts = is_server && p->shared ? p->shared->counts : NULL;
  if (!ep->p.max_unvalidated)
    ep->p.max_unvalidated = p->max_conns / 4 ? p->max_conns / 4 : 1;
  rng_fill(ep->token_secret, sizeof(ep->token_secret));
  memcpy(ep->token_secret_prev, ep->token_secret, sizeof(ep->token_secret));
  ep->token_rotated_ns = w->now ? w->now : 1;
  if (p->shared)
    token_rotate(ep, w->now);
  if (!ep->conns || !ep->free_conns || !ep->buckets || !ep->cids || !ep->dpool || iprc < 0) {
    quic_endpoint_fini(ep);
    return -ENOMEM;
  }
  /* conn_alloc sets a slot's handle: the table's pages are touched only
   * as connections use them */
  for (uint32_t i = 0; i < p->max_conns; i++)
    ep->free_conns[i] = p->max_conns - 1 - i;
  ep->nfree = p->max_conns;
  for (uint32_t i = 0; i < ncids; i++)
    ep->cids[i].next = i + 2 <= ncids ? i + 2 : 0;
  ep->cid_free = ncids ? 1 : 0;
  ep->dpool_next = 0; /* dgram_get hands the pool out as needed */
  return 0;
}

static void conn_delete(struct quic_conn *c);

void quic_endpoint_fini(struct quic_endpoint *ep)
{
  if (ep->conns) {
    for (uint32_t i = 0; i < ep->p.max_conns; i++)
      if (ep->conns[i].state != QUIC_CONN_FREE)
        conn_delete(&ep->conns[i]);
  }
  free(ep->conns);
  free(ep->free_conns);
  free(ep->buckets);
  free(ep->cids);
  free(ep->dpool);
  quic_iptab_fini(&ep->own_ips);
  memcount_slots_fini(&ep->ngtcp2_bytes); /* every connection is deleted */
  memset(ep, 0, sizeof(*ep));
}

uint32_t quic_endpoint_active(const struct quic_endpoint *ep)
{
  return ep->nactive;
}

static uint64_t now_ns(const struct quic_conn *c)
{
  return c->ep->w->now;
}

static void conn_mark_dirty(struct quic_conn *c)
{
  if (c->dirty)
    return;
  c->dirty = true;
  struct quic_endpoint *ep = c->ep;
  c->dirty_next = ep->dirty_head;
  ep->dirty_head = c->handle + 1;
}

void quic_conn_remote_str(const struct quic_conn *c, char *buf, size_t cap)
{
  io_sockaddr_str(&c->remote, buf, cap);
}

uint64_t quic_conn_client_key(const struct quic_conn *c)
{
  return io_sockaddr_client_key(&c->remote);
}

/* ---- ngtcp2 callbacks ---- */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
  struct quic_conn *c = ref->user_data;
  return c->conn;
}

static void cb_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
  (void)ctx;
  rng_fill(dest, len);
}

static int cb_get_new_cid(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                          void *user_data)
{
  struct quic_conn *c = user_data;
  struct quic_endpoint *ep = c->ep;
  uint8_t buf[NGTCP2_MAX_CIDLEN];
  for (int tries = 0; tries < 4; tries++) {
    rng_fill(buf, cidlen);
    buf[0] = (uint8_t)ep->w->index; /* room to route by worker later */
    ngtcp2_cid_init(cid, buf, cidlen);
    if (cid_lookup(ep, buf, cidlen))
      continue;
    if (ngtcp2_crypto_generate_stateless_reset_token(token, ep->reset_secret,
                                                     sizeof(ep->reset_secret), cid) != 0)
      return NGTCP2_ERR_CALLBACK_FAILURE;
    if (cid_insert(ep, buf, cidlen, c->handle) < 0)
      return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
  }
  return NGTCP2_ERR_CALLBACK_FAILURE;
}

static int cb_remove_cid(ngtcp2_conn *conn, const ngtcp2_cid *cid, void *user_data)
{
  struct quic_conn *c = user_data;
  cid_remove(c->ep, cid->data, cid->datalen);
  return 0;
}

/* The peer's address is proven: count it per address, leave the
 * unvalidated cap. */
static void conn_validated(struct quic_conn *c)
{
  struct quic_endpoint *ep = c->ep;
  c->validated = true;
  unval_done(c);
  if (!ep->is_server)
    return;
  /* Several handshakes from one address may run at once; the limit holds
   * when they complete (their addresses are proven then). */
  ipt_lock(ep); /* the check and the count at once: other workers count too */
  if (conns_of(ep, &c->remote) >= ep->p.max_conns_per_ip) {
    ipt_unlock(ep);
    ep->ctr.conns_refused_ip++;
    c->refuse = true;
    conn_mark_dirty(c);
    return;
  }
  ip_count_add(c);
  ipt_unlock(ep);
}

/* Server: a NEW_TOKEN for the client's next connection (it skips Retry). */
static void send_new_token(struct quic_conn *c)
{
  struct quic_endpoint *ep = c->ep;
  uint8_t token[NGTCP2_CRYPTO_MAX_REGULAR_TOKENLEN];
  const ngtcp2_path *path = ngtcp2_conn_get_path(c->conn);
  token_rotate(ep, now_ns(c));
  ngtcp2_ssize n =
      ngtcp2_crypto_generate_regular_token(token, ep->token_secret, sizeof(ep->token_secret),
                                           path->remote.addr, path->remote.addrlen, now_ns(c));
  if (n > 0 && ngtcp2_conn_submit_new_token(c->conn, token, (size_t)n) == 0)
    ep->ctr.new_tokens_sent++;
}

/* CRYPTO data to GnuTLS, while the connection still has its TLS session.
 * Once released (conn_release_tls) QUIC has no use for more: TLS KeyUpdate
 * is forbidden (RFC 9001 section 6) and a server sends its tickets itself;
 * whatever a client sends then is ignored. */
static int cb_recv_crypto_data(ngtcp2_conn *conn, ngtcp2_crypto_level level, uint64_t offset,
                               const uint8_t *data, size_t len, void *user_data)
{
  struct quic_conn *c = user_data;
  if (!c->tls)
    return 0;
  return ngtcp2_crypto_recv_crypto_data_cb(conn, level, offset, data, len, user_data);
}

/* A server's TLS session is not needed after the handshake (confirmed at
 * once on a server, which then drops the Handshake keys): ngtcp2 keeps the
 * negotiated AEAD and hash and the traffic secrets, and derives the keys of
 * a key update from those alone (ngtcp2_crypto_update_key_cb reads nothing
 * of GnuTLS's session); CRYPTO data sent is in ngtcp2's own buffers. Freed
 * after ngtcp2_conn_read_pkt returned, never inside it: the handshake
 * completes inside gnutls_handshake. */
static void conn_release_tls(struct quic_conn *c)
{
  if (!c->tls || !c->ep->is_server || !c->handshake_done ||
      !ngtcp2_conn_get_handshake_completed(c->conn))
    return;
  ngtcp2_conn_set_tls_native_handle(c->conn, NULL);
  tls_session_free(c->tls);
  c->tls = NULL;
  c->ep->ctr.tls_released++;
  /* the handshake's temporaries are free now too: counts toward a trim */
  c->ep->deleted_since_trim++;
}

static int cb_handshake_completed(ngtcp2_conn *conn, void *user_data)
{
  struct quic_conn *c = user_data;
  struct quic_endpoint *ep = c->ep;
  c->handshake_done = true;
  ep->ctr.handshakes++;
  if (ep->is_server)
    hist_observe(&ep->handshake_hist, hist_bounds_fast, now_ns(c) - c->created_ns);
  hs_done(c);
  conn_validated(c);
  if (c->refuse)
    return 0; /* over the per-address limit: closed at the next write */
  if (ep->is_server)
    send_new_token(c);
  if (c->ep->ops->on_handshake_done && c->ep->ops->on_handshake_done(c->ep->app, c) < 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags, int64_t sid, uint64_t offset,
                               const uint8_t *data, size_t len, void *user_data,
                               void *stream_user_data)
{
  struct quic_conn *c = user_data;
  c->ep->ctr.stream_bytes_in += len;
  if (c->ep->ops->on_stream_data &&
      c->ep->ops->on_stream_data(c->ep->app, c, sid, data, len,
                                 (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0) < 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static struct quic_sout *sout_find(struct quic_conn *c, int64_t sid)
{
  for (int i = 0; i < QUIC_SOUT_SLOTS; i++)
    if (c->sout[i].used && c->sout[i].sid == sid)
      return &c->sout[i];
  return NULL;
}

static int cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t sid, uint64_t app_err,
                           void *user_data, void *stream_user_data)
{
  struct quic_conn *c = user_data;
  struct quic_sout *so = sout_find(c, sid);
  if (so)
    so->used = false;
  if (c->ep->ops->on_stream_close)
    c->ep->ops->on_stream_close(c->ep->app, c, sid, app_err);
  return 0;
}

static int cb_stream_reset(ngtcp2_conn *conn, int64_t sid, uint64_t final_size, uint64_t app_err,
                           void *user_data, void *stream_user_data)
{
  struct quic_conn *c = user_data;
  if (c->ep->ops->on_stream_close)
    c->ep->ops->on_stream_close(c->ep->app, c, sid, app_err);
  return 0;
}

static int cb_recv_datagram(ngtcp2_conn *conn, uint32_t flags, const uint8_t *data, size_t len,
                            void *user_data)
{
  struct quic_conn *c = user_data;
  c->ep->ctr.dgrams_in++;
  if (c->ep->ops->on_datagram)
    c->ep->ops->on_datagram(c->ep->app, c, data, len);
  return 0;
}

static int cb_lost_datagram(ngtcp2_conn *conn, uint64_t id, void *user_data)
{
  struct quic_conn *c = user_data;
  c->ep->ctr.dgrams_lost++;
  if (id && c->ep->ops->on_datagram_ack)
    c->ep->ops->on_datagram_ack(c->ep->app, c, id, false);
  return 0;
}

static int cb_ack_datagram(ngtcp2_conn *conn, uint64_t id, void *user_data)
{
  struct quic_conn *c = user_data;
  if (id && c->ep->ops->on_datagram_ack)
    c->ep->ops->on_datagram_ack(c->ep->app, c, id, true);
  return 0;
}

static int cb_extend_max_stream_data(ngtcp2_conn *conn, int64_t sid, uint64_t max, void *user_data,
                                     void *stream_user_data)
{
  conn_mark_dirty(user_data);
  return 0;
}

static void set_callbacks(ngtcp2_callbacks *cb, bool server)
{
  memset(cb, 0, sizeof(*cb));
  if (server) {
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  } else {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
  }
  cb->recv_crypto_data = cb_recv_crypto_data;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb->rand = cb_rand;
  cb->get_new_connection_id = cb_get_new_cid;
  cb->remove_connection_id = cb_remove_cid;
  cb->handshake_completed = cb_handshake_completed;
  cb->recv_stream_data = cb_recv_stream_data;
  cb->stream_close = cb_stream_close;
  cb->stream_reset = cb_stream_reset;
  cb->recv_datagram = cb_recv_datagram;
  cb->lost_datagram = cb_lost_datagram;
  cb->ack_datagram = cb_ack_datagram;
  cb->extend_max_stream_data = cb_extend_max_stream_data;
}

static void set_transport_params(ngtcp2_transport_params *tp, const struct quic_params *p)
{
  ngtcp2_transport_params_default(tp);
  tp->initial_max_stream_data_bidi_local = 256 * 1024;
  tp->initial_max_stream_data_bidi_remote = 256 * 1024;
  tp->initial_max_stream_data_uni = 256 * 1024;
  tp->initial_max_data = 1024 * 1024;
  tp->initial_max_streams_bidi = 16;
  tp->initial_max_streams_uni = 16; /* Chromium needs >= 3 */
  tp->max_idle_timeout = p->idle_timeout_ns;
  tp->active_connection_id_limit = 4;
  /* 0 would open the session but silently drop every datagram. */
  tp->max_datagram_frame_size = 65535;
}

static void set_settings(ngtcp2_settings *s, const struct quic_params *p, uint64_t now)
{
  ngtcp2_settings_default(s);
  s->initial_ts = now;
  s->handshake_timeout = p->handshake_timeout_ns;
  s->cc_algo = NGTCP2_CC_ALGO_CUBIC;
}

/* ---- connection lifecycle ---- */

static void conn_on_timer(struct timer *t, uint64_t now);

static struct quic_conn *conn_alloc(struct quic_endpoint *ep)
{
  if (!ep->nfree)
    return NULL;
  uint32_t h = ep->free_conns[--ep->nfree];
  struct quic_conn *c = &ep->conns[h];
  bool dirty = c->dirty;
  uint32_t dnext = c->dirty_next;
  memset(c, 0, sizeof(*c));
  /* Membership of the dirty list survives reuse of the slot. */
  c->dirty = dirty;
  c->dirty_next = dnext;
  c->ep = ep;
  c->handle = h;
  c->conn_ref.get_conn = get_conn;
  c->conn_ref.user_data = c;
  timer_init(&c->timer, conn_on_timer);
  c->created_ns = ep->w->now;
  ep->nactive++;
  return c;
}

static void conn_delete(struct quic_conn *c)
{
  struct quic_endpoint *ep = c->ep;
  log_debug("quic conn delete", "state=%d", c->state);
  if (c->state == QUIC_CONN_FREE)
    return;
  if (ep->ops->on_conn_closed)
    ep->ops->on_conn_closed(ep->app, c);
  timer_disarm(&ep->w->timers, &c->timer);
  cid_remove_conn(ep, c->handle);
  ipt_lock(ep);
  ip_count_del(c);
  ipt_unlock(ep);
  hs_done(c);
  unval_done(c);
  if (c->proc_counted)
    count_release(&ep->counts->conns);
  c->proc_counted = false;
  ep->deleted_since_trim++;
  if (c->conn)
    ngtcp2_conn_del(c->conn);
  c->conn = NULL;
  if (c->tls)
    tls_session_free(c->tls);
  c->tls = NULL;
  while (c->dq_head) {
    struct quic_dgram *d = c->dq_head;
    c->dq_head = d->next;
    dgram_put(ep, d);
  }
  c->dq_tail = NULL;
  c->dq_len = 0;
  free(c->close_pkt);
  c->close_pkt = NULL;
  c->state = QUIC_CONN_FREE;
  c->app_data = NULL;
  ep->free_conns[ep->nfree++] = c->handle;
  ep->nactive--;
  ep->ctr.conns_closed++;
}

static void conn_path(struct quic_conn *c, ngtcp2_path *path)
{
  path->local.addr = (ngtcp2_sockaddr *)&c->local.addr;
  path->local.addrlen = c->local.addr.sa.sa_family == AF_INET
                            ? (ngtcp2_socklen)sizeof(struct sockaddr_in)
                            : (ngtcp2_socklen)sizeof(struct sockaddr_in6);
  path->remote.addr = (ngtcp2_sockaddr *)&c->remote;
  path->remote.addrlen = c->remotelen;
  path->user_data = NULL;
}

static bool same_ip(const union io_sockaddr *a, const union io_sockaddr *b);

/* Copies an ngtcp2 path's addresses into ours (addrlen 0 or oversized:
 * false, nothing written). */
static bool path_addrs(const ngtcp2_path *p, union io_sockaddr *remote, socklen_t *remotelen,
                       union io_sockaddr *local)
{
  if (!p || !p->remote.addrlen || p->remote.addrlen > sizeof(*remote) || !p->local.addrlen ||
      p->local.addrlen > sizeof(*local))
    return false;
  memset(remote, 0, sizeof(*remote));
  memcpy(remote, p->remote.addr, p->remote.addrlen);
  *remotelen = p->remote.addrlen;
  memset(local, 0, sizeof(*local));
  memcpy(local, p->local.addr, p->local.addrlen);
  return true;
}

/* Queues one written packet toward the path ngtcp2 wrote it for: the
 * connection's current path, or a path being validated (PATH_CHALLENGE /
 * PATH_RESPONSE). Never simply to the source of the last packet read:
 * that may be forged, and ngtcp2 drops undecryptable packets silently. */
static void conn_commit(struct quic_conn *c, size_t len, const ngtcp2_path *path)
{
  struct quic_endpoint *ep = c->ep;
  union io_sockaddr dst;
  socklen_t dstlen;
  struct io_local loc;
  if (!c->validated && ep->is_server)
    ep->ctr.bytes_out_unvalidated += len;
  if (!path_addrs(path, &dst, &dstlen, &loc.addr)) {
    io_tx_commit(&ep->w->io, len, ep->udp, &c->remote, c->remotelen,
                 c->has_local ? &c->local : NULL);
    return;
  }
  loc.ifindex = same_ip(&loc.addr, &c->local.addr) ? c->local.ifindex : 0;
  io_tx_commit(&ep->w->io, len, ep->udp, &dst, dstlen, c->has_local ? &loc : NULL);
}

/* After a successful read: our copy of the path follows ngtcp2's current
 * path, which moves only when a packet on a new path decrypted (and is
 * then validated, with anti-amplification on the new path). */
static void conn_sync_path(struct quic_conn *c, const struct io_local *pkt_local)
{
  union io_sockaddr remote, local;
  socklen_t remotelen;
  if (!path_addrs(ngtcp2_conn_get_path(c->conn), &remote, &remotelen, &local))
    return;
  c->remote = remote;
  c->remotelen = remotelen;
  if (c->ip_counted && !same_ip(&c->counted_ip, &c->remote)) {
    /* a validated migration: the connection now counts for its new address */
    ipt_lock(c->ep);
    ip_count_del(c);
    ip_count_add(c);
    ipt_unlock(c->ep);
  }
  if (pkt_local && same_ip(&pkt_local->addr, &local)) {
    c->local = *pkt_local;
    c->has_local = true;
  } else {
    uint32_t ifindex = same_ip(&c->local.addr, &local) ? c->local.ifindex : 0;
    c->local.addr = local;
    c->local.ifindex = ifindex;
  }
}

static uint64_t three_pto(struct quic_conn *c)
{
  return 3 * ngtcp2_conn_get_pto(c->conn);
}

static void conn_arm_timer(struct quic_conn *c)
{
  uint64_t exp = ngtcp2_conn_get_expiry(c->conn);
  if (timer_arm(&c->ep->w->timers, &c->timer, exp) < 0)
    c->ep->ctr.write_errors++;
}

/* Writes CONNECTION_CLOSE (once) and enters the closing period. */
static void conn_write_close(struct quic_conn *c, const ngtcp2_connection_close_error *ccerr)
{
  struct quic_endpoint *ep = c->ep;
  uint64_t now = now_ns(c);
  if (c->state != QUIC_CONN_ACTIVE)
    return;
  if (ngtcp2_conn_is_in_closing_period(c->conn) || ngtcp2_conn_is_in_draining_period(c->conn)) {
    c->state = QUIC_CONN_DRAINING;
    timer_arm(&ep->w->timers, &c->timer, now + three_pto(c));
    return;
  }
  size_t mtu = ngtcp2_conn_get_max_tx_udp_payload_size(c->conn);
  uint8_t *buf = io_tx_reserve(&ep->w->io, mtu);
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  ngtcp2_ssize nw = -1;
  if (buf)
    nw = ngtcp2_conn_write_connection_close(c->conn, &ps.path, &pi, buf, mtu, ccerr, now);
  if (nw <= 0) {
    conn_delete(c);
    return;
  }
  c->close_pkt = malloc((size_t)nw);
  if (c->close_pkt) {
    memcpy(c->close_pkt, buf, (size_t)nw);
    c->close_pktlen = (size_t)nw;
  }
  conn_commit(c, (size_t)nw, &ps.path);
  c->state = QUIC_CONN_CLOSING;
  timer_arm(&ep->w->timers, &c->timer, now + three_pto(c));
}

static const char *tls_alert_name(uint8_t a)
{
  switch (a) {
  case 40:
    return "handshake_failure";
  case 42:
    return "bad_certificate";
  case 43:
    return "unsupported_certificate";
  case 44:
    return "certificate_revoked";
  case 45:
    return "certificate_expired";
  case 46:
    return "certificate_unknown";
  case 48:
    return "unknown_ca";
  case 80:
    return "internal_error";
  case 120:
    return "no_application_protocol";
  default:
    return "other";
  }
}

/* The peer closed: a client that gave up the handshake with a TLS alert
 * is logged and counted apart, with a hint when the alert is about our
 * certificate (the usual cause: a page pinning a stale hash). */
static void conn_peer_closed(struct quic_conn *c)
{
  struct quic_endpoint *ep = c->ep;
  ngtcp2_connection_close_error peer;
  ngtcp2_conn_get_connection_close_error(c->conn, &peer);
  if (peer.type != NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT ||
      peer.error_code < NGTCP2_CRYPTO_ERROR || peer.error_code > NGTCP2_CRYPTO_ERROR + 0xff ||
      ngtcp2_conn_get_handshake_completed(c->conn))
    return;
  uint8_t alert = (uint8_t)(peer.error_code - NGTCP2_CRYPTO_ERROR);
  bool cert = alert >= 42 && alert <= 48 && alert != 47;
  if (cert)
    ep->ctr.client_alert_cert++;
  else
    ep->ctr.client_alert_other++;
  uint32_t sup;
  if (log_ratelimit_allow(&ep->rl, now_ns(c), &sup)) {
    char addr[64];
    quic_conn_remote_str(c, addr, sizeof(addr));
    log_warn(cert ? "client rejected our certificate: stale serverCertificateHashes hash, or a CA "
                    "the browser does not trust?"
                  : "client aborted the TLS handshake",
             "remote=%s alert=%u alert_name=%s reason=%s suppressed=%u", addr, alert,
             tls_alert_name(alert),
             log_quote((char[LOG_QUOTE_MAX]){0}, LOG_QUOTE_MAX, (const char *)peer.reason,
                       peer.reason ? peer.reasonlen : 0),
             sup);
  }
}

/* Handles an ngtcp2 error from read or write or expiry. */
static void conn_fail(struct quic_conn *c, int liberr)
{
  struct quic_endpoint *ep = c->ep;
  ngtcp2_connection_close_error ccerr;
  switch (liberr) {
  case NGTCP2_ERR_DRAINING:
    log_debug("quic draining", "%s", "");
    conn_peer_closed(c);
    ep->ctr.conns_draining++;
    c->state = QUIC_CONN_DRAINING;
    timer_arm(&ep->w->timers, &c->timer, now_ns(c) + three_pto(c));
    return;
  case NGTCP2_ERR_IDLE_CLOSE:
    ep->ctr.conns_idle++;
    conn_delete(c);
    return;
  case NGTCP2_ERR_DROP_CONN:
  case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
    ep->ctr.conns_failed++;
    conn_delete(c);
    return;
  case NGTCP2_ERR_CRYPTO:
    ep->ctr.conns_failed++;
    ep->ctr.conns_tls_failed++;
    ngtcp2_connection_close_error_set_transport_error_tls_alert(
        &ccerr, ngtcp2_conn_get_tls_alert(c->conn), NULL, 0);
    break;
  default:
    ep->ctr.read_errors++;
    ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, liberr, NULL, 0);
    break;
  }
  uint32_t sup;
  if (log_ratelimit_allow(&ep->rl, now_ns(c), &sup)) {
    char addr[64];
    quic_conn_remote_str(c, addr, sizeof(addr));
    log_info("closing QUIC connection on error", "remote=%s err=\"%s\" suppressed=%u", addr,
             ngtcp2_strerror(liberr), sup);
  }
  conn_write_close(c, &ccerr);
}

static void conn_on_timer(struct timer *t, uint64_t now)
{
  struct quic_conn *c = container_of(t, struct quic_conn, timer);
  if (c->state == QUIC_CONN_CLOSING || c->state == QUIC_CONN_DRAINING) {
    conn_delete(c);
    return;
  }
  int rv = ngtcp2_conn_handle_expiry(c->conn, now);
  if (rv != 0) {
    conn_fail(c, rv);
    return;
  }
  conn_mark_dirty(c);
}

/* ---- write path ---- */

/* Room for a DATAGRAM frame's payload in one packet on the current path:
 * short header (1) + DCID + packet number (<= 4) + AEAD tag (16) + frame
 * type (1) + length (2). */
static size_t dgram_room(struct quic_conn *c)
{
  size_t mtu = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->conn);
  const ngtcp2_cid *dcid = ngtcp2_conn_get_dcid(c->conn);
  size_t overhead = 1 + (dcid ? dcid->datalen : NGTCP2_MAX_CIDLEN) + 4 + 16 + 1 + 2;
  return mtu > overhead ? mtu - overhead : 0;
}

/* Whether the packet about to carry a datagram of `len` bytes should also
 * carry an anchor: when the bytes in flight, with this packet, reach half
 * the congestion window (so the newest packet in flight is PTO-eliciting
 * whenever the window is full, also after a loss shrank it by up to a
 * half), and the stream's own data is all written (no interleaving). */
static bool anchor_wanted(struct quic_conn *c, size_t len)
{
  if (!c->anchor_unit)
    return false;
  if (c->anchor_off)
    return true; /* finish a unit written in part */
  struct quic_sout *so = sout_find(c, c->anchor_sid);
  if (so && (so->sent < so->len || so->fin))
    return false;
  size_t room = dgram_room(c);
  if (len + QUIC_ANCHOR_ROOM > room)
    return false;
  ngtcp2_conn_stat st;
  ngtcp2_conn_get_conn_stat(c->conn, &st);
  return (st.bytes_in_flight + room) * 2 >= st.cwnd;
}

/* Writes the rest of one anchor unit into the packet being built in buf,
 * leaving the packet open (FLAG_MORE) for the datagram that follows.
 * Returns ngtcp2's result (NGTCP2_ERR_WRITE_MORE when the packet is open),
 * or 0 when the stream cannot take it now (flow control) or is gone. */
static ngtcp2_ssize anchor_write(struct quic_conn *c, ngtcp2_path *path, ngtcp2_pkt_info *pi,
                                 uint8_t *buf, size_t mtu, uint64_t now)
{
  ngtcp2_vec v = {.base = (uint8_t *)c->anchor_unit + c->anchor_off,
                  .len = (size_t)(c->anchor_len - c->anchor_off)};
  ngtcp2_ssize ndatalen = -1;
  ngtcp2_ssize nw =
      ngtcp2_conn_writev_stream(c->conn, path, pi, buf, mtu, &ndatalen,
                                NGTCP2_WRITE_STREAM_FLAG_MORE, c->anchor_sid, &v, 1, now);
  if (ndatalen > 0) {
    c->anchor_off = (uint8_t)(c->anchor_off + ndatalen);
    if (c->anchor_off >= c->anchor_len) {
      c->anchor_off = 0;
      c->ep->ctr.anchors++;
    }
  }
  if (nw == NGTCP2_ERR_STREAM_DATA_BLOCKED)
    return 0;
  if (nw == NGTCP2_ERR_STREAM_SHUT_WR || nw == NGTCP2_ERR_STREAM_NOT_FOUND) {
    c->anchor_unit = NULL;
    return 0;
  }
  return nw;
}

static int conn_write(struct quic_conn *c, uint64_t now)
{
  struct quic_endpoint *ep = c->ep;
  struct io *io = &ep->w->io;
  if (c->state != QUIC_CONN_ACTIVE)
    return 0;
  if (c->close_pending || c->refuse) {
    ngtcp2_connection_close_error ccerr;
    if (c->refuse)
      ngtcp2_connection_close_error_set_transport_error(&ccerr, NGTCP2_CONNECTION_REFUSED, NULL, 0);
    else
      ngtcp2_connection_close_error_set_application_error(&ccerr, c->close_app_err, NULL, 0);
    conn_write_close(c, &ccerr);
    return 0;
  }
  size_t mtu = ngtcp2_conn_get_max_tx_udp_payload_size(c->conn);
  size_t path_mtu = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->conn);
  size_t quantum = ngtcp2_conn_get_send_quantum(c->conn);
  size_t max_pkts = path_mtu ? quantum / path_mtu : 1;
  if (max_pkts < 1)
    max_pkts = 1;
  if (max_pkts > IO_GSO_MAX_SEGS)
    max_pkts = IO_GSO_MAX_SEGS;
  unsigned blocked = 0;   /* sout slots that cannot write now */
  bool anchored = false;  /* the open packet carries an anchor */
  bool no_anchor = false; /* an anchor crowded a datagram out: none more this pass */
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;

  for (size_t npkts = 0; npkts < max_pkts;) {
    uint8_t *buf = io_tx_reserve(io, mtu);
    if (!buf) {
      /* Every arena is in flight: try again next turn. */
      conn_mark_dirty(c);
      break;
    }
    struct quic_sout *so = NULL;
    int si;
    for (si = 0; si < QUIC_SOUT_SLOTS; si++) {
      struct quic_sout *s = &c->sout[si];
      if (s->used && !(blocked & (1u << si)) && (s->sent < s->len || (s->fin && !s->fin_sent)) &&
          !(c->anchor_off && s->sid == c->anchor_sid)) {
        so = s;
        break;
      }
    }
    ngtcp2_ssize nw;
    if (so) {
      ngtcp2_vec v = {.base = so->buf + so->sent, .len = so->len - so->sent};
      uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
      if (so->fin)
        flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
      ngtcp2_ssize ndatalen = -1;
      nw = ngtcp2_conn_writev_stream(c->conn, &ps.path, &pi, buf, mtu, &ndatalen, flags, so->sid,
                                     &v, 1, now);
      if (ndatalen >= 0) {
        so->sent += (uint32_t)ndatalen;
        if (so->fin && so->sent == so->len)
          so->fin_sent = true;
      }
      if (nw == NGTCP2_ERR_WRITE_MORE)
        continue;
      if (nw == NGTCP2_ERR_STREAM_DATA_BLOCKED || nw == NGTCP2_ERR_STREAM_SHUT_WR ||
          nw == NGTCP2_ERR_STREAM_NOT_FOUND) {
        blocked |= 1u << si;
        if (nw != NGTCP2_ERR_STREAM_DATA_BLOCKED)
          so->used = false;
        continue;
      }
    } else if (c->dq_head && !anchored && !no_anchor && anchor_wanted(c, c->dq_head->len)) {
      anchored = true;
      nw = anchor_write(c, &ps.path, &pi, buf, mtu, now);
      if (nw == NGTCP2_ERR_WRITE_MORE || nw == 0)
        continue; /* the datagram goes into the same packet */
    } else if (c->dq_head) {
      struct quic_dgram *d = c->dq_head;
      ngtcp2_vec v = {.base = d->data, .len = d->len};
      int accepted = 0;
      nw = ngtcp2_conn_writev_datagram(c->conn, &ps.path, &pi, buf, mtu, &accepted,
                                       NGTCP2_WRITE_DATAGRAM_FLAG_MORE, d->id, &v, 1, now);
      if (anchored && !accepted && nw > 0)
        no_anchor = true;
      if (accepted || nw == NGTCP2_ERR_INVALID_ARGUMENT) {
        if (accepted)
          ep->ctr.dgrams_out++;
        else
          ep->ctr.dgrams_too_big++;
        c->dq_head = d->next;
        if (!c->dq_head)
          c->dq_tail = NULL;
        c->dq_len--;
        dgram_put(ep, d);
      }
      if (nw == NGTCP2_ERR_WRITE_MORE || nw == NGTCP2_ERR_INVALID_ARGUMENT)
        continue;
    } else {
      nw = ngtcp2_conn_write_pkt(c->conn, &ps.path, &pi, buf, mtu, now);
    }
    if (nw < 0) {
      ep->ctr.write_errors++;
      conn_fail(c, (int)nw);
      return (int)nw;
    }
    if (nw == 0)
      break;
    conn_commit(c, (size_t)nw, &ps.path);
    anchored = false;
    npkts++;
  }
  ngtcp2_conn_update_pkt_tx_time(c->conn, now);
  conn_arm_timer(c);
  return 0;
}

void quic_endpoint_turn(struct quic_endpoint *ep, uint64_t now)
{
  /* Give memory back after many connections went away or finished their
   * handshakes (a handshake flood ends, a crowd arrives or leaves): glibc
   * keeps freed heap otherwise. */
  if (ep->deleted_since_trim >= 64 && now - ep->last_trim_ns >= NGTCP2_SECONDS) {
    malloc_trim(0);
    ep->deleted_since_trim = 0;
    ep->last_trim_ns = now;
    ep->ctr.malloc_trims++;
  }
  /* Take the list; writes may mark connections dirty again for next turn. */
  uint32_t h = ep->dirty_head;
  ep->dirty_head = 0;
  while (h) {
    struct quic_conn *c = &ep->conns[h - 1];
    h = c->dirty_next;
    c->dirty_next = 0;
    c->dirty = false;
    if (c->state == QUIC_CONN_ACTIVE)
      conn_write(c, now);
  }
}

/* ---- read path ---- */

static void send_version_negotiation(struct quic_endpoint *ep, const ngtcp2_version_cid *vc,
                                     const union io_sockaddr *peer, socklen_t peerlen,
                                     const struct io_local *local)
{
  uint8_t *buf = io_tx_reserve(&ep->w->io, 256);
  if (!buf)
    return;
  uint8_t rnd;
  rng_fill(&rnd, 1);
  ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(
      buf, 256, rnd, vc->scid, vc->scidlen, vc->dcid, vc->dcidlen, quic_versions,
      sizeof(quic_versions) / sizeof(quic_versions[0]));
  if (n <= 0)
    return;
  ep->ctr.version_negotiations++;
  io_tx_commit(&ep->w->io, (size_t)n, ep->udp, peer, peerlen, local);
}

static void send_stateless_reset(struct quic_endpoint *ep, const uint8_t *dcid, size_t dcidlen,
                                 size_t pktlen, const union io_sockaddr *peer, socklen_t peerlen,
                                 const struct io_local *local)
{
  /* Smaller than what triggered it, so two endpoints cannot loop. */
  if (pktlen < 43 || dcidlen != QUIC_SCID_LEN)
    return;
  size_t len = pktlen - 1 < 64 ? pktlen - 1 : 64;
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, dcid, dcidlen);
  if (ngtcp2_crypto_generate_stateless_reset_token(token, ep->reset_secret,
                                                   sizeof(ep->reset_secret), &cid) != 0)
    return;
  uint8_t *buf = io_tx_reserve(&ep->w->io, len);
  if (!buf)
    return;
  uint8_t rnd[64];
  size_t rlen = len - 1 - NGTCP2_STATELESS_RESET_TOKENLEN;
  rng_fill(rnd, rlen);
  ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(buf, len, token, rnd, rlen);
  if (n <= 0)
    return;
  ep->ctr.stateless_resets++;
  io_tx_commit(&ep->w->io, (size_t)n, ep->udp, peer, peerlen, local);
}

static bool same_ip(const union io_sockaddr *a, const union io_sockaddr *b)
{
  if (a->sa.sa_family != b->sa.sa_family)
    return false;
  if (a->sa.sa_family == AF_INET)
    return a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
  return memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0;
}

static bool sockaddr_is_wildcard(const union io_sockaddr *a)
{
  if (a->sa.sa_family == AF_INET)
    return a->in.sin_addr.s_addr == htonl(INADDR_ANY);
  return IN6_IS_ADDR_UNSPECIFIED(&a->in6.sin6_addr);
}

static void set_local(struct quic_conn *c, const struct io_local *local)
{
  if (local) {
    c->local = *local;
    c->has_local = true;
    return;
  }
  /* No PKTINFO: use the socket's own address. */
  socklen_t len = sizeof(c->local.addr);
  getsockname(c->ep->udp->fd, &c->local.addr.sa, &len);
  c->has_local = false;
}

/* Retry (RFC 9000 section 8.1.2): a stateless answer with a token bound
 * to the client's address; only a client that receives it can come back. */
static void send_retry(struct quic_endpoint *ep, const ngtcp2_pkt_hd *hd,
                       const union io_sockaddr *peer, socklen_t peerlen,
                       const struct io_local *local)
{
  uint64_t now = ep->w->now;
  token_rotate(ep, now);
  uint8_t scid_buf[QUIC_SCID_LEN];
  rng_fill(scid_buf, sizeof(scid_buf));
  scid_buf[0] = (uint8_t)ep->w->index;
  ngtcp2_cid scid;
  ngtcp2_cid_init(&scid, scid_buf, sizeof(scid_buf));
  uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
  ngtcp2_ssize tl =
      ngtcp2_crypto_generate_retry_token(token, ep->token_secret, sizeof(ep->token_secret),
                                         hd->version, &peer->sa, peerlen, &scid, &hd->dcid, now);
  if (tl < 0)
    return;
  uint8_t *buf = io_tx_reserve(&ep->w->io, 256);
  if (!buf)
    return;
  ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, 256, hd->version, &hd->scid, &scid, &hd->dcid,
                                             token, (size_t)tl);
  if (n <= 0)
    return;
  ep->ctr.retries_sent++;
  ep->ctr.bytes_out_unvalidated += (uint64_t)n;
  io_tx_commit(&ep->w->io, (size_t)n, ep->udp, peer, peerlen, local);
}

/* Checks an Initial's token. Returns 1 when it proves the address (odcid
 * set for a Retry token), 0 when there is none or it is a stale NEW_TOKEN
 * (treated as none), -1 when a Retry token is invalid (drop). */
static int token_check(struct quic_endpoint *ep, const ngtcp2_pkt_hd *hd,
                       const union io_sockaddr *peer, socklen_t peerlen, ngtcp2_cid *odcid,
                       bool *retried)
{
  *retried = false;
  if (hd->type != NGTCP2_PKT_INITIAL || !hd->token.len)
    return 0;
  uint64_t now = ep->w->now;
  const uint8_t *secrets[2] = {ep->token_secret, ep->token_secret_prev};
  if (hd->token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
    for (int k = 0; k < 2; k++)
      if (ngtcp2_crypto_verify_retry_token(odcid, hd->token.base, hd->token.len, secrets[k], 32,
                                           hd->version, &peer->sa, peerlen, &hd->dcid,
                                           RETRY_TOKEN_TIMEOUT_NS, now) == 0) {
        ep->ctr.tokens_retry_ok++;
        *retried = true;
        return 1;
      }
    ep->ctr.tokens_bad++;
    return -1;
  }
  if (hd->token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_REGULAR) {
    for (int k = 0; k < 2; k++)
      if (ngtcp2_crypto_verify_regular_token(hd->token.base, hd->token.len, secrets[k], 32,
                                             &peer->sa, peerlen, REGULAR_TOKEN_TIMEOUT_NS,
                                             now) == 0) {
        ep->ctr.tokens_regular_ok++;
        return 1;
      }
  }
  ep->ctr.tokens_bad++;
  return 0;
}

/* A new connection for an Initial. Address validation: a valid token
 * (Retry or NEW_TOKEN) proves the client's address; without one the client
 * gets a Retry when --retry is always, or (auto) once retry_threshold
 * handshakes are in progress or the unvalidated cap is full; otherwise it
 * is accepted into its own, smaller cap (max_unvalidated) with a shorter
 * handshake timeout, so a flood of forged Initials can never take the
 * slots that validated clients use. Per-address limits count validated
 * addresses only (a forged source cannot lock its owner out). */
static struct quic_conn *server_accept(struct quic_endpoint *ep, const uint8_t *pkt, size_t len,
                                       const union io_sockaddr *peer, socklen_t peerlen,
                                       const struct io_local *local)
{
  ngtcp2_pkt_hd hd;
  int arv = ngtcp2_accept(&hd, pkt, len);
  if (arv == NGTCP2_ERR_RETRY) {
    send_retry(ep, &hd, peer, peerlen, local);
    return NULL;
  }
  if (arv != 0) {
    ep->ctr.pkts_dropped_unknown++;
    return NULL;
  }
  if (!ep->accepting || ep->nfree == 0) {
    ep->ctr.conns_refused_limit++;
    if (ep->nfree == 0)
      ep->ctr.pkts_dropped_full++; /* every slot of the connection table is taken */
    return NULL;
  }
  ngtcp2_cid odcid;
  bool retried;
  int tv = token_check(ep, &hd, peer, peerlen, &odcid, &retried);
  if (tv < 0)
    return NULL;
  bool validated = tv > 0;
  if (!validated) {
    /* with several workers the counts are the process's: the bounds and
     * the threshold hold over all of them */
    bool retry = ep->p.retry == QUIC_RETRY_ALWAYS ||
                 (ep->p.retry == QUIC_RETRY_AUTO && (n_handshaking(ep) >= ep->p.retry_threshold ||
                                                     n_unvalidated(ep) >= ep->p.max_unvalidated));
    if (retry) {
      send_retry(ep, &hd, peer, peerlen, local);
      return NULL;
    }
    if (n_unvalidated(ep) >= ep->p.max_unvalidated) {
      ep->ctr.conns_refused_unvalidated++;
      return NULL;
    }
  }
  if (quic_endpoint_conns_of(ep, peer) >= ep->p.max_conns_per_ip) {
    ep->ctr.conns_refused_ip++;
    return NULL;
  }
  /* the process's bounds, reserved now (conn_delete gives them back) */
  if (ep->counts && !count_reserve(&ep->counts->conns, ep->p.max_conns)) {
    ep->ctr.conns_refused_limit++;
    ep->ctr.pkts_dropped_full++;
    return NULL;
  }
  if (ep->counts && !validated && !count_reserve(&ep->counts->unvalidated, ep->p.max_unvalidated)) {
    count_release(&ep->counts->conns);
    ep->ctr.conns_refused_unvalidated++;
    return NULL;
  }

  struct quic_conn *c = conn_alloc(ep);
  c->proc_counted = ep->counts != NULL;
  c->unval_counted = !validated;
  if (!validated)
    ep->nunvalidated++; /* the process's count was reserved above */
  c->hs_counted = true;
  ep->nhandshaking++;
  if (ep->counts)
    atomic_fetch_add_explicit(&ep->counts->handshaking, 1, memory_order_relaxed);
  c->state = QUIC_CONN_ACTIVE;
  memcpy(&c->remote, peer, peerlen < sizeof(c->remote) ? peerlen : sizeof(c->remote));
  c->remotelen = peerlen;
  set_local(c, local);

  uint8_t scid_buf[QUIC_SCID_LEN];
  ngtcp2_cid scid;
  do {
    rng_fill(scid_buf, sizeof(scid_buf));
    scid_buf[0] = (uint8_t)ep->w->index;
  } while (cid_lookup(ep, scid_buf, sizeof(scid_buf)));
  ngtcp2_cid_init(&scid, scid_buf, sizeof(scid_buf));

  ngtcp2_callbacks cb;
  set_callbacks(&cb, true);
  ngtcp2_settings settings;
  set_settings(&settings, &ep->p, now_ns(c));
  if (!validated)
    settings.handshake_timeout = ep->p.unvalidated_handshake_timeout_ns;
  settings.token = hd.token;
  ngtcp2_transport_params tp;
  set_transport_params(&tp, &ep->p);
  if (retried) {
    tp.original_dcid = odcid;
    tp.retry_scid = hd.dcid;
    tp.retry_scid_present = 1;
  } else {
    tp.original_dcid = hd.dcid;
  }
  tp.stateless_reset_token_present = 1;
  if (ngtcp2_crypto_generate_stateless_reset_token(tp.stateless_reset_token, ep->reset_secret,
                                                   sizeof(ep->reset_secret), &scid) != 0)
    goto fail;

  ngtcp2_path path;
  conn_path(c, &path);
  int rv = ngtcp2_conn_server_new(&c->conn, &hd.scid, &scid, &path, hd.version, &cb, &settings, &tp,
                                  &ep->ngtcp2_mem, c);
  if (rv != 0) {
    c->conn = NULL;
    goto fail;
  }
  if (tls_server_session_new(&c->tls, ep->cert, &c->conn_ref) < 0)
    goto fail;
  ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
  ngtcp2_conn_set_keep_alive_timeout(c->conn, ep->p.keep_alive_ns);
  if (cid_insert(ep, scid.data, scid.datalen, c->handle) < 0 ||
      cid_insert(ep, hd.dcid.data, hd.dcid.datalen, c->handle) < 0)
    goto fail;
  ep->ctr.conns_accepted++;
  if (validated)
    conn_validated(c);
  return c;
fail:
  ep->ctr.conns_failed++;
  conn_delete(c);
  return NULL;
}

static void conn_read(struct quic_conn *c, const uint8_t *pkt, size_t len,
                      const union io_sockaddr *peer, socklen_t peerlen,
                      const struct io_local *local)
{
  struct quic_endpoint *ep = c->ep;
  if (c->state == QUIC_CONN_DRAINING)
    return;
  if (c->state == QUIC_CONN_CLOSING) {
    /* Peer keeps talking: repeat our CONNECTION_CLOSE, to the path we
     * know (a packet's source address may be forged), for the 1st, 2nd,
     * 4th, 8th... packet only (RFC 9000 section 10.2.1: limit the rate).
     * When both ends close at once, each one's close is the other's
     * "peer keeps talking": answering every packet ping-pongs at line rate
     * for the whole closing period (seen: 70 000 packets for 10 sessions). */
    c->close_rx++;
    if (c->close_pkt && !(c->close_rx & (c->close_rx - 1))) {
      uint8_t *buf = io_tx_reserve(&ep->w->io, c->close_pktlen);
      if (buf) {
        memcpy(buf, c->close_pkt, c->close_pktlen);
        io_tx_commit(&ep->w->io, c->close_pktlen, ep->udp, &c->remote, c->remotelen,
                     c->has_local ? &c->local : NULL);
      }
    }
    return;
  }
  union io_sockaddr remote;
  memset(&remote, 0, sizeof(remote));
  memcpy(&remote, peer, peerlen < sizeof(remote) ? peerlen : sizeof(remote));
  struct io_local loc = c->local;
  if (local)
    loc = *local;
  ngtcp2_path path = {.local = {.addr = (ngtcp2_sockaddr *)&loc.addr,
                                .addrlen = loc.addr.sa.sa_family == AF_INET
                                               ? (ngtcp2_socklen)sizeof(struct sockaddr_in)
                                               : (ngtcp2_socklen)sizeof(struct sockaddr_in6)},
                      .remote = {.addr = (ngtcp2_sockaddr *)&remote, .addrlen = peerlen},
                      .user_data = NULL};
  ngtcp2_pkt_info pi = {0};
  if (!c->validated && ep->is_server)
    ep->ctr.bytes_in_unvalidated += len;
  c->in_read = true;
  int rv = ngtcp2_conn_read_pkt(c->conn, &path, &pi, pkt, len, now_ns(c));
  c->in_read = false;
  if (c->state != QUIC_CONN_ACTIVE)
    return; /* closed by the application during the callbacks */
  if (rv != 0) {
    conn_fail(c, rv);
    return;
  }
  /* ngtcp2_conn_read_pkt returns 0 also for packets it dropped (forged,
   * undecryptable): never take the packet's source as the peer's address;
   * follow ngtcp2's own path instead (NAT rebinding and migration). */
  conn_sync_path(c, local);
  conn_release_tls(c);
  conn_mark_dirty(c);
}

/* Long-header packet types of QUIC v1 (RFC 9000 section 17.2). */
#define LONG_TYPE(b) (((b)&0x30) >> 4)
#define LONG_TYPE_HANDSHAKE 2

/* A packet for no connection of ours whose DCID names another worker of
 * this process: hand it over and say so. Only short-header and Handshake
 * packets carry a CID the server chose; an Initial's or 0-RTT's is the
 * client's (random), so it stays with the worker the kernel picked (the
 * 4-tuple hash sends every Initial of one client address to one socket). */
static bool handoff(struct quic_endpoint *ep, const uint8_t *pkt, size_t len,
                    const ngtcp2_version_cid *vc, const union io_sockaddr *peer, socklen_t peerlen,
                    const struct io_local *local)
{
  const struct quic_shared *sh = ep->p.shared;
  if (!sh || sh->nworkers < 2 || !sh->handoff || vc->dcidlen != QUIC_SCID_LEN)
    return false;
  if ((pkt[0] & 0x80) && LONG_TYPE(pkt[0]) != LONG_TYPE_HANDSHAKE)
    return false;
  uint32_t owner = vc->dcid[0];
  if (owner == ep->w->index || owner >= sh->nworkers)
    return false;
  ep->ctr.pkts_handed_off++;
  sh->handoff(sh->handoff_ctx, ep->w->index, owner, pkt, len, peer, peerlen, local);
  return true;
}

void quic_endpoint_on_packet(void *ctx, struct io_udp_sock *s, uint8_t *pkt, size_t len,
                             const union io_sockaddr *peer, socklen_t peerlen,
                             const struct io_local *local)
{
  struct quic_endpoint *ep = ctx;
  ngtcp2_version_cid vc;
  ep->ctr.pkts_in++;
  int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, QUIC_SCID_LEN);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    if (ep->is_server && len >= 1200)
      send_version_negotiation(ep, &vc, peer, peerlen, local);
    return;
  }
  if (rv != 0) {
    ep->ctr.pkts_dropped_unknown++;
    return;
  }
  struct quic_conn *c = cid_lookup(ep, vc.dcid, vc.dcidlen);
  if (!c) {
    if (!ep->is_server) {
      ep->ctr.pkts_dropped_unknown++;
      return;
    }
    if (handoff(ep, pkt, len, &vc, peer, peerlen, local))
      return;
    if (!(pkt[0] & 0x80)) {
      ep->ctr.pkts_short_unknown++;
      send_stateless_reset(ep, vc.dcid, vc.dcidlen, len, peer, peerlen, local);
      return;
    }
    c = server_accept(ep, pkt, len, peer, peerlen, local);
    if (!c) {
      ep->ctr.bytes_in_unvalidated += len; /* answered by a Retry, or dropped */
      return;
    }
  }
  conn_read(c, pkt, len, peer, peerlen, local);
}

/* ---- client ---- */

int quic_client_connect(struct quic_endpoint *ep, const union io_sockaddr *remote,
                        socklen_t remotelen, const char *server_name, const uint8_t *pin_sha256,
                        struct quic_conn **out)
{
  struct quic_conn *c = conn_alloc(ep);
  if (!c)
    return -ENOSPC;
  c->state = QUIC_CONN_ACTIVE;
  memcpy(&c->remote, remote, remotelen);
  c->remotelen = remotelen;
  set_local(c, NULL);
  int rc = -EPROTO;
  if (sockaddr_is_wildcard(&c->local.addr)) {
    /* A wildcard-bound socket has no address of its own: name our side of
     * the path by the source the kernel's routing picks toward the relay
     * (the address the relay's packets will arrive on, as IP_PKTINFO then
     * reports). Taking the remote's address here was right only on
     * loopback; across a real link every packet arrived on a path ngtcp2
     * did not know and the handshake never completed. */
    union io_sockaddr src;
    if ((rc = io_route_source(remote, remotelen, &src)) < 0)
      goto fail;
    uint16_t port = c->local.addr.sa.sa_family == AF_INET ? c->local.addr.in.sin_port
                                                          : c->local.addr.in6.sin6_port;
    if (src.sa.sa_family == AF_INET)
      src.in.sin_port = port;
    else
      src.in6.sin6_port = port;
    c->local.addr = src;
  }

  uint8_t dcid_buf[QUIC_SCID_LEN], scid_buf[QUIC_SCID_LEN];
  rng_fill(dcid_buf, sizeof(dcid_buf));
  rng_fill(scid_buf, sizeof(scid_buf));
  scid_buf[0] = (uint8_t)ep->w->index;
  ngtcp2_cid dcid, scid;
  ngtcp2_cid_init(&dcid, dcid_buf, sizeof(dcid_buf));
  ngtcp2_cid_init(&scid, scid_buf, sizeof(scid_buf));

  ngtcp2_callbacks cb;
  set_callbacks(&cb, false);
  ngtcp2_settings settings;
  set_settings(&settings, &ep->p, now_ns(c));
  ngtcp2_transport_params tp;
  set_transport_params(&tp, &ep->p);
  ngtcp2_path path;
  conn_path(c, &path);
  if (ngtcp2_conn_client_new(&c->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &settings,
                             &tp, &ep->ngtcp2_mem, c) != 0) {
    c->conn = NULL;
    goto fail;
  }
  if ((rc = tls_client_session_new(&c->tls, server_name, pin_sha256, &c->conn_ref)) < 0)
    goto fail;
  ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
  ngtcp2_conn_set_keep_alive_timeout(c->conn, ep->p.keep_alive_ns);
  if ((rc = cid_insert(ep, scid.data, scid.datalen, c->handle)) < 0)
    goto fail;
  conn_mark_dirty(c);
  *out = c;
  return 0;
fail:
  conn_delete(c);
  return rc;
}

/* ---- application API ---- */

int quic_conn_open_uni(struct quic_conn *c, int64_t *sid)
{
  int rv = ngtcp2_conn_open_uni_stream(c->conn, sid, NULL);
  return rv == 0 ? 0 : -EAGAIN;
}

int quic_conn_open_bidi(struct quic_conn *c, int64_t *sid)
{
  int rv = ngtcp2_conn_open_bidi_stream(c->conn, sid, NULL);
  return rv == 0 ? 0 : -EAGAIN;
}

int quic_conn_stream_send(struct quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
                          bool fin)
{
  struct quic_sout *so = sout_find(c, sid);
  if (!so) {
    for (int i = 0; i < QUIC_SOUT_SLOTS && !so; i++)
      if (!c->sout[i].used)
        so = &c->sout[i];
    if (!so) {
      c->ep->ctr.sout_overflow++;
      return -ENOBUFS;
    }
    memset(so, 0, offsetof(struct quic_sout, buf));
    so->used = true;
    so->sid = sid;
  }
  if (so->fin || len > QUIC_SOUT_SIZE - so->len) {
    c->ep->ctr.sout_overflow++;
    return -ENOBUFS;
  }
  memcpy(so->buf + so->len, data, len);
  so->len += (uint32_t)len;
  so->fin = fin;
  conn_mark_dirty(c);
  return 0;
}

int quic_conn_stream_reset(struct quic_conn *c, int64_t sid, uint64_t app_err)
{
  struct quic_sout *so = sout_find(c, sid);
  if (so)
    so->used = false;
  int rv = ngtcp2_conn_shutdown_stream(c->conn, sid, app_err);
  conn_mark_dirty(c);
  return rv == 0 ? 0 : -ENOENT;
}

void quic_conn_stream_consumed(struct quic_conn *c, int64_t sid, size_t n)
{
  ngtcp2_conn_extend_max_stream_offset(c->conn, sid, n);
  ngtcp2_conn_extend_max_offset(c->conn, n);
}

size_t quic_conn_max_datagram(struct quic_conn *c)
{
  if (!c->conn || c->state != QUIC_CONN_ACTIVE)
    return 0;
  const ngtcp2_transport_params *rp = ngtcp2_conn_get_remote_transport_params(c->conn);
  if (!rp || rp->max_datagram_frame_size == 0)
    return 0;
  size_t max = dgram_room(c);
  if (c->anchor_unit)
    max = max > QUIC_ANCHOR_ROOM ? max - QUIC_ANCHOR_ROOM : 0;
  uint64_t frame_max = rp->max_datagram_frame_size > 3 ? rp->max_datagram_frame_size - 3 : 0;
  return max < frame_max ? max : (size_t)frame_max;
}

void quic_conn_set_anchor(struct quic_conn *c, int64_t sid, const uint8_t *unit, size_t len)
{
  if (!len || len > 4)
    return;
  c->anchor_unit = unit;
  c->anchor_len = (uint8_t)len;
  c->anchor_off = 0;
  c->anchor_sid = sid;
}

static size_t iov_total(const struct iovec *iov, int n)
{
  size_t t = 0;
  for (int i = 0; i < n; i++)
    t += iov[i].iov_len;
  return t;
}

static int dgram_enqueue(struct quic_conn *c, const struct iovec *iov, int iovcnt, size_t total,
                         uint64_t id, unsigned flags)
{
  struct quic_endpoint *ep = c->ep;
  if ((flags & QUIC_DGRAM_LOW) && c->dq_len >= ep->p.dgram_queue / 2) {
    ep->ctr.dgrams_queue_low_full++;
    return -ENOBUFS;
  }
  if (c->dq_len >= ep->p.dgram_queue) {
    ep->ctr.dgrams_queue_full++;
    return -ENOBUFS;
  }
  struct quic_dgram *d = dgram_get(ep);
  if (!d) {
    ep->ctr.dgrams_pool_empty++;
    return -ENOBUFS;
  }
  size_t off = 0;
  for (int i = 0; i < iovcnt; i++) {
    memcpy(d->data + off, iov[i].iov_base, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  d->len = (uint32_t)total;
  d->id = id;
  d->next = NULL;
  if (c->dq_tail)
    c->dq_tail->next = d;
  else
    c->dq_head = d;
  c->dq_tail = d;
  c->dq_len++;
  ep->ctr.dgrams_queued++;
  conn_mark_dirty(c);
  return 0;
}

int quic_conn_send_datagram(struct quic_conn *c, const struct iovec *iov, int iovcnt)
{
  return quic_conn_send_datagram_id(c, iov, iovcnt, 0);
}

size_t quic_conn_dcid(const struct quic_conn *c, uint8_t *out, size_t cap)
{
  if (!c->conn)
    return 0;
  const ngtcp2_cid *d = ngtcp2_conn_get_dcid(c->conn);
  size_t n = d->datalen < cap ? d->datalen : cap;
  memcpy(out, d->data, n);
  return n;
}

uint64_t quic_conn_pto(struct quic_conn *c)
{
  return c->conn && c->state == QUIC_CONN_ACTIVE ? ngtcp2_conn_get_pto(c->conn) : 0;
}

int quic_conn_send_datagram_id(struct quic_conn *c, const struct iovec *iov, int iovcnt,
                               uint64_t id)
{
  return quic_conn_send_datagram_flags(c, iov, iovcnt, id, 0);
}

int quic_conn_send_datagram_flags(struct quic_conn *c, const struct iovec *iov, int iovcnt,
                                  uint64_t id, unsigned flags)
{
  struct quic_endpoint *ep = c->ep;
  if (c->state != QUIC_CONN_ACTIVE || c->close_pending)
    return -ENOTCONN;
  size_t total = iov_total(iov, iovcnt);
  if (total > QUIC_DGRAM_BUF || total > quic_conn_max_datagram(c)) {
    ep->ctr.dgrams_too_big++;
    return -EMSGSIZE;
  }
  /* ngtcp2 is not re-entrant: inside this connection's own read callbacks,
   * or behind earlier queued datagrams, queue to keep order. */
  if (c->in_read || c->dq_head || !c->handshake_done)
    return dgram_enqueue(c, iov, iovcnt, total, id, flags);
  /* The packet should carry an anchor: the turn's write loop builds it. */
  if (anchor_wanted(c, total))
    return dgram_enqueue(c, iov, iovcnt, total, id, flags);

  size_t mtu = ngtcp2_conn_get_max_tx_udp_payload_size(c->conn);
  uint8_t *buf = io_tx_reserve(&ep->w->io, mtu);
  if (!buf)
    return dgram_enqueue(c, iov, iovcnt, total, id, flags);
  ngtcp2_vec v[QUIC_DGRAM_IOV_MAX];
  if (iovcnt > QUIC_DGRAM_IOV_MAX)
    return -EINVAL;
  for (int i = 0; i < iovcnt; i++) {
    v[i].base = iov[i].iov_base;
    v[i].len = iov[i].iov_len;
  }
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  int accepted = 0;
  uint64_t now = now_ns(c);
  ngtcp2_ssize nw =
      ngtcp2_conn_writev_datagram(c->conn, &ps.path, &pi, buf, mtu, &accepted,
                                  NGTCP2_WRITE_DATAGRAM_FLAG_NONE, id, v, (size_t)iovcnt, now);
  if (nw < 0) {
    if (nw == NGTCP2_ERR_INVALID_ARGUMENT) {
      ep->ctr.dgrams_too_big++;
      return -EMSGSIZE;
    }
    conn_fail(c, (int)nw);
    return -ENOTCONN;
  }
  if (nw > 0) {
    conn_commit(c, (size_t)nw, &ps.path);
    ngtcp2_conn_update_pkt_tx_time(c->conn, now);
    conn_arm_timer(c);
  }
  if (accepted) {
    ep->ctr.dgrams_out++;
    ep->ctr.dgrams_direct++;
    return 0;
  }
  /* Congestion limited (or only an ACK fitted): queue, bounded. */
  return dgram_enqueue(c, iov, iovcnt, total, id, flags);
}

void quic_conn_close(struct quic_conn *c, uint64_t app_err)
{
  if (c->state != QUIC_CONN_ACTIVE || c->close_pending)
    return;
  c->close_pending = true;
  c->close_app_err = app_err;
  conn_mark_dirty(c);
}

int quic_conn_key_update(struct quic_conn *c)
{
  if (c->state != QUIC_CONN_ACTIVE || c->close_pending)
    return -ENOTCONN;
  /* refused until the previous update is confirmed by the peer */
  if (ngtcp2_conn_initiate_key_update(c->conn, now_ns(c)) != 0)
    return -EAGAIN;
  conn_mark_dirty(c);
  return 0;
}

void quic_endpoint_shutdown(struct quic_endpoint *ep, uint64_t app_err)
{
  ep->accepting = false;
  for (uint32_t i = 0; i < ep->p.max_conns; i++)
    if (ep->conns[i].state == QUIC_CONN_ACTIVE)
      quic_conn_close(&ep->conns[i], app_err);
}

/* ---- counters ---- */

/* The QUIC counters for /metrics and the exit log, one row per field
 * (test_counter checks that every field has exactly one). */
#define Q(fam, help, labels, key, field)                                                           \
  COUNTER_DEF(struct quic_counters, fam, help, labels, "quic counters", key, field)
#define REFUSED "wtrelay_quic_connections_refused_total"
#define DGRAMS "wtrelay_quic_datagrams_total"
#define DROPS "wtrelay_quic_datagrams_dropped_total"
#define TOKENS "wtrelay_quic_tokens_accepted_total"
static const struct counter_def quic_counter_defs[] = {
    Q("wtrelay_quic_packets_received_total", "QUIC packets received", NULL, "pkts_in", pkts_in),
    Q("wtrelay_quic_packets_dropped_total", "QUIC packets dropped", "reason=\"unknown_connection\"",
      "dropped_unknown", pkts_dropped_unknown),
    Q("wtrelay_quic_packets_dropped_total", NULL, "reason=\"table_full\"", "dropped_full",
      pkts_dropped_full),
    Q("wtrelay_quic_packets_dropped_total", NULL, "reason=\"short_unknown\"", "short_unknown",
      pkts_short_unknown),
    Q("wtrelay_quic_packets_handed_off_total",
      "QUIC packets passed to the worker their connection ID names (fallback steering)", NULL,
      "handed_off", pkts_handed_off),
    Q("wtrelay_quic_connections_accepted_total",
      "QUIC connections accepted (an Initial took a slot)", NULL, "accepted", conns_accepted),
    Q(REFUSED,
      "QUIC connections refused: all slots taken, the address's share taken, or the cap "
      "on connections from unvalidated addresses reached",
      "reason=\"limit\"", "refused_limit", conns_refused_limit),
    Q(REFUSED, NULL, "reason=\"per_ip\"", "refused_ip", conns_refused_ip),
    Q(REFUSED, NULL, "reason=\"unvalidated_full\"", "refused_unvalidated",
      conns_refused_unvalidated),
    Q("wtrelay_quic_connections_failed_total",
      "QUIC connections that failed: handshake timeout, dropped by ngtcp2, TLS or set-up error",
      NULL, "failed", conns_failed),
    Q("wtrelay_quic_connections_tls_failed_total",
      "QUIC connections whose TLS handshake failed here (a part of the failed ones)", NULL,
      "tls_failed", conns_tls_failed),
    Q("wtrelay_quic_connections_closed_total", "QUIC connections freed, for any reason", NULL,
      "closed", conns_closed),
    Q("wtrelay_quic_connections_idle_timeouts_total", "QUIC connections closed by the idle timeout",
      NULL, "idle", conns_idle),
    Q("wtrelay_quic_connections_draining_total",
      "QUIC connections the peer closed (entered the draining state)", NULL, "draining",
      conns_draining),
    Q("wtrelay_quic_client_tls_alerts_total",
      "Handshakes the client gave up with a TLS alert: about our certificate (a stale "
      "serverCertificateHashes hash, an untrusted CA) or another alert",
      "kind=\"certificate\"", "client_alert_cert", client_alert_cert),
    Q("wtrelay_quic_client_tls_alerts_total", NULL, "kind=\"other\"", "client_alert_other",
      client_alert_other),
    Q("wtrelay_quic_handshakes_total", "QUIC handshakes completed", NULL, "handshakes", handshakes),
    Q("wtrelay_quic_version_negotiations_total", "Version Negotiation packets sent", NULL, "vn",
      version_negotiations),
    Q("wtrelay_quic_stateless_resets_total", "stateless resets sent", NULL, "resets",
      stateless_resets),
    Q("wtrelay_quic_errors_total",
      "ngtcp2 errors reading a packet or writing (or arming the timer of) a connection",
      "kind=\"read\"", "read_errors", read_errors),
    Q("wtrelay_quic_errors_total", NULL, "kind=\"write\"", "write_errors", write_errors),
    Q(DGRAMS, "QUIC DATAGRAM frames received (in) and sent (out)", "dir=\"in\"", "dgrams_in",
      dgrams_in),
    Q(DGRAMS, NULL, "dir=\"out\"", "dgrams_out", dgrams_out),
    Q("wtrelay_quic_datagrams_sent_direct_total",
      "QUIC datagrams sent at once, not queued (a part of the sent ones)", NULL, "dgrams_direct",
      dgrams_direct),
    Q("wtrelay_quic_datagrams_queued_total", "QUIC datagrams queued on their connection", NULL,
      "dgrams_queued", dgrams_queued),
    Q("wtrelay_quic_datagrams_lost_total", "QUIC datagrams declared lost by loss recovery", NULL,
      "lost", dgrams_lost),
    Q(DROPS, "datagrams not sent", "reason=\"queue_full\"", "queue_full", dgrams_queue_full),
    Q(DROPS, NULL, "reason=\"queue_half_full_low_priority\"", "queue_low_full",
      dgrams_queue_low_full),
    Q(DROPS, NULL, "reason=\"too_big\"", "too_big", dgrams_too_big),
    Q(DROPS, NULL, "reason=\"pool_empty\"", "pool_empty", dgrams_pool_empty),
    Q("wtrelay_quic_stream_bytes_received_total",
      "stream bytes received (HTTP/3 control, capsules)", NULL, "stream_bytes_in", stream_bytes_in),
    Q("wtrelay_quic_stream_send_overflows_total",
      "stream writes refused: the connection's stream send buffers were full", NULL,
      "sout_overflow", sout_overflow),
    Q("wtrelay_quic_anchors_total",
      "loss-recovery anchors (HTTP/3 reserved frames) sent beside datagrams", NULL, "anchors",
      anchors),
    Q("wtrelay_quic_retries_sent_total", "Retry packets sent (address validation)", NULL, "retries",
      retries_sent),
    Q(TOKENS, "address-validation tokens accepted: from a Retry or from NEW_TOKEN",
      "kind=\"retry\"", "tokens_retry_ok", tokens_retry_ok),
    Q(TOKENS, NULL, "kind=\"new_token\"", "tokens_regular_ok", tokens_regular_ok),
    Q("wtrelay_quic_tokens_rejected_total", "address-validation tokens rejected", NULL,
      "tokens_bad", tokens_bad),
    Q("wtrelay_quic_new_tokens_sent_total", "NEW_TOKEN frames sent", NULL, "new_tokens",
      new_tokens_sent),
    Q("wtrelay_quic_unvalidated_bytes_total",
      "bytes to and from addresses not yet validated (anti-amplification)", "dir=\"in\"",
      "bytes_in_unvalidated", bytes_in_unvalidated),
    Q("wtrelay_quic_unvalidated_bytes_total", NULL, "dir=\"out\"", "bytes_out_unvalidated",
      bytes_out_unvalidated),
    Q("wtrelay_quic_tls_sessions_released_total",
      "TLS sessions freed once the handshake was done (the keys live on in ngtcp2)", NULL,
      "tls_released", tls_released),
    Q("wtrelay_malloc_trims_total", "heap given back to the system after many connections ended",
      NULL, "trims", malloc_trims),
};
#undef TOKENS
#undef DROPS
#undef DGRAMS
#undef REFUSED
#undef Q

const struct counter_table quic_counter_table =
    COUNTER_TABLE(quic_counter_defs, struct quic_counters);
