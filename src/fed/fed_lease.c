/*
 * fed_lease: addresses across the cluster. The theory of operation is in
 * wtrelay/fed.h ("Addresses across the cluster"). The lease thread
 * (lease_main) alone calls the JetStream key-value API: those calls block
 * (each bounded by KV_WAIT_MS), so no worker ever makes one. Workers push
 * requests into their lreq rings (fed_lease_claim / fed_lease_release)
 * and get answers in their incoming rings (FED_IN_LEASE); a takeover told
 * by another relay reaches every worker the same way (FED_IN_TAKEOVER).
 *
 * The thread's table of live leases (those this relay holds and renews)
 * is keyed by (room, MAC): chained hash over a fixed array of
 * p.max_live entries. `holders` counts the claims not yet released, as a
 * release on one worker may reach the thread after a new claim of the MAC
 * on another (each worker's ring is read in its own order).
 */
#include <errno.h>
#include <nats/nats.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fed_util.h"
#include "wtrelay/fed.h"

#define KV_WAIT_MS 1000
#define TICK_MS 250
#define SCAN_MAX 4096 /* addresses a claim tries at most */
#define VAL_MAX (16 + FED_ID_MAX)

struct fed_lease_live {
  bool used;
  uint8_t mac[6];
  uint32_t ip, holders, next;
  uint64_t rev, renew_at;
  char room[FED_NAME_MAX];
};

/* ---- keys and values ---- */

static size_t room_tok(char *out, const char *room)
{
  out[0] = 'r';
  fed_token(out + 1, room, strnlen(room, FED_NAME_MAX - 1));
  return strlen(out);
}

void fed_lease_ip_key(char *out, const char *room, uint32_t ip)
{
  size_t n = room_tok(out, room);
  snprintf(out + n, FED_KEY_MAX - n, ".ip.%u_%u_%u_%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255,
           ip & 255);
}

void fed_lease_mac_key(char *out, const char *room, const uint8_t mac[6])
{
  size_t n = room_tok(out, room);
  snprintf(out + n, FED_KEY_MAX - n, ".mac.%02x%02x%02x%02x%02x%02x", mac[0], mac[1], mac[2],
           mac[3], mac[4], mac[5]);
}

/* "<12 hex> L|R <relay id>" */
struct holder {
  uint8_t mac[6];
  bool live;
  char relay[FED_ID_MAX + 1];
};

static int hexval(char c)
{
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool holder_parse(const char *v, int len, struct holder *h)
{
  if (len < 16 || len > 15 + FED_ID_MAX || v[12] != ' ' || (v[13] != 'L' && v[13] != 'R') ||
      v[14] != ' ')
    return false;
  for (int i = 0; i < 6; i++) {
    int a = hexval(v[2 * i]), b = hexval(v[2 * i + 1]);
    if (a < 0 || b < 0)
      return false;
    h->mac[i] = (uint8_t)(a << 4 | b);
  }
  h->live = v[13] == 'L';
  memcpy(h->relay, v + 15, (size_t)len - 15);
  h->relay[len - 15] = '\0';
  return true;
}

static int holder_write(char *out, const uint8_t mac[6], bool live, const char *relay)
{
  return snprintf(out, VAL_MAX, "%02x%02x%02x%02x%02x%02x %c %s", mac[0], mac[1], mac[2], mac[3],
                  mac[4], mac[5], live ? 'L' : 'R', relay);
}

/* ---- the key-value store (lease thread only) ---- */

static bool kv_down(natsStatus s)
{
  return s == NATS_TIMEOUT || s == NATS_CONNECTION_CLOSED || s == NATS_CONNECTION_DISCONNECTED ||
         s == NATS_NOT_YET_CONNECTED || s == NATS_NO_RESPONDERS || s == NATS_IO_ERROR ||
         s == NATS_NO_SERVER || s == NATS_STALE_CONNECTION;
}

static void kv_error(struct fed *f, const char *op, const char *key, natsStatus s)
{
  add(&f->lease_kv_errors, 1);
  uint32_t supp;
  if (log_ratelimit_allow(&f->rl_lease, mono_ns(), &supp))
    log_warn("NATS key-value operation failed", "op=%s key=%s err=%s suppressed=%u", op, key,
             natsStatus_GetText(s), supp);
}

/* 1 with the value (NUL-terminated, at most cap - 1 bytes) and its
 * revision, 0 when the key holds nothing, -1 on an error. */
static int kv_get(struct fed *f, const char *key, char *val, size_t cap, int *vlen, uint64_t *rev)
{
  kvEntry *e = NULL;
  natsStatus s = kvStore_Get(&e, f->kv, key);
  if (s == NATS_NOT_FOUND)
    return 0;
  if (s != NATS_OK) {
    kv_error(f, "get", key, s);
    return -1;
  }
  int rc = 0;
  if (kvEntry_Operation(e) == kvOp_Put) {
    int n = kvEntry_ValueLen(e);
    if (n < 0 || (size_t)n >= cap)
      n = (int)cap - 1;
    memcpy(val, kvEntry_Value(e), (size_t)n);
    val[n] = '\0';
    *vlen = n;
    *rev = kvEntry_Revision(e);
    rc = 1;
  }
  kvEntry_Destroy(e);
  return rc;
}

/* Create-if-absent (last == 0) or compare-and-set on revision `last`:
 * 0 with *rev, -EEXIST when the key changed (or exists), -EIO on an error
 * (NATS unreachable). */
static int kv_write(struct fed *f, const char *key, const char *val, uint64_t last, uint64_t *rev)
{
  natsStatus s = last ? kvStore_Update(rev, f->kv, key, val, (int)strlen(val), last)
                      : kvStore_Create(rev, f->kv, key, val, (int)strlen(val));
  if (s == NATS_OK)
    return 0;
  if (kv_down(s)) {
    kv_error(f, last ? "update" : "create", key, s);
    return -EIO;
  }
  return -EEXIST;
}

static void mac_key_put(struct fed *f, const char *room, const uint8_t mac[6], uint32_t ip)
{
  char key[FED_KEY_MAX], val[24];
  fed_lease_mac_key(key, room, mac);
  snprintf(val, sizeof(val), "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
  natsStatus s = kvStore_PutString(NULL, f->kv, key, val);
  if (s != NATS_OK)
    kv_error(f, "put", key, s);
}

/* ---- live leases ---- */

static uint32_t live_hash(const char *room, const uint8_t mac[6])
{
  uint32_t h = 2166136261u;
  for (const char *c = room; *c; c++)
    h = (h ^ (uint8_t)*c) * 16777619u;
  for (int i = 0; i < 6; i++)
    h = (h ^ mac[i]) * 16777619u;
  return h;
}

static uint32_t *live_link(struct fed *f, const char *room, const uint8_t mac[6])
{
  uint32_t *link = &f->live_head[live_hash(room, mac) & f->live_mask];
  while (*link != UINT32_MAX) {
    struct fed_lease_live *e = &f->live[*link];
    if (memcmp(e->mac, mac, 6) == 0 && strcmp(e->room, room) == 0)
      break;
    link = &e->next;
  }
  return link;
}

static struct fed_lease_live *live_find(struct fed *f, const char *room, const uint8_t mac[6])
{
  uint32_t i = *live_link(f, room, mac);
  return i == UINT32_MAX ? NULL : &f->live[i];
}

static struct fed_lease_live *live_add(struct fed *f, const char *room, const uint8_t mac[6])
{
  uint32_t i = f->live_free;
  if (i == UINT32_MAX)
    return NULL;
  struct fed_lease_live *e = &f->live[i];
  f->live_free = e->next;
  memset(e, 0, sizeof(*e));
  e->used = true;
  memcpy(e->mac, mac, 6);
  snprintf(e->room, sizeof(e->room), "%s", room);
  uint32_t *head = &f->live_head[live_hash(room, mac) & f->live_mask];
  e->next = *head;
  *head = i;
  f->nlive++;
  atomic_store(&f->leases_held, f->nlive);
  return e;
}

static void live_del(struct fed *f, struct fed_lease_live *e)
{
  uint32_t *link = live_link(f, e->room, e->mac);
  uint32_t i = *link;
  *link = e->next;
  e->used = false;
  e->next = f->live_free;
  f->live_free = i;
  f->nlive--;
  atomic_store(&f->leases_held, f->nlive);
}

/* ---- claims ---- */

static bool connected(struct fed *f)
{
  return natsConnection_Status(f->nc) == NATS_CONN_STATUS_CONNECTED;
}

/* Tells relay `relay` (not this one) that the MAC of `room` is ours now. */
static void takeover_tell(struct fed *f, const char *relay, const char *room, const uint8_t mac[6])
{
  char tok[2 * FED_ID_MAX + 1], subj[256 + 2 * FED_ID_MAX];
  uint8_t msg[6 + FED_NAME_MAX];
  size_t n = strnlen(room, FED_NAME_MAX - 1);
  fed_token(tok, relay, strnlen(relay, FED_ID_MAX));
  snprintf(subj, sizeof(subj), "%s.relay.%s.takeover", f->prefix, tok);
  memcpy(msg, mac, 6);
  memcpy(msg + 6, room, n);
  if (natsConnection_Publish(f->nc, subj, msg, (int)(6 + n)) == NATS_OK)
    add(&f->lease_takeovers_sent, 1);
}

enum try_result { TRY_OK, TRY_TAKEN, TRY_ERROR };

/* Tries to make ip's key the MAC's (live, this relay). A key released by
 * another MAC is remembered in *old (its revision) when older than the
 * one there, for the reclaim of a full range. */
/* The key of ip is ours now: the MAC's local lease moves there from its
 * candidate at once, under the pools' lock (local_take), so no Register
 * of another worker takes the address between this claim and its answer.
 * false when a local VM holds it after all: the key is given back
 * (deleted when this claim created it, else marked released). */
static bool local_take(struct fed *f, const struct fed_lease_req *q, uint32_t ip, const char *key,
                       bool created, uint64_t rev)
{
  if (ip == q->ip || !f->p.local_take ||
      f->p.local_take(f->p.local_ctx, q->room, q->mac, q->ip, ip) != -EBUSY)
    return true;
  if (created) {
    natsStatus s = kvStore_Delete(f->kv, key);
    if (s != NATS_OK)
      kv_error(f, "delete", key, s);
  } else {
    char val[VAL_MAX];
    uint64_t r2;
    holder_write(val, q->mac, false, f->id);
    (void)kv_write(f, key, val, rev, &r2);
  }
  return false;
}

static enum try_result try_ip(struct fed *f, const struct fed_lease_req *q, uint32_t ip,
                              uint64_t *rev, uint32_t *old_ip, uint64_t *old_rev)
{
  char key[FED_KEY_MAX], val[VAL_MAX], mine[VAL_MAX];
  /* another Register's candidate here, its claim still queued (the
   * workers' queues are read in turns, not in the order they were
   * filled), or a lease made here while NATS was unreachable */
  if (f->p.local_busy && f->p.local_busy(f->p.local_ctx, q->room, ip, q->mac))
    return TRY_TAKEN;
  fed_lease_ip_key(key, q->room, ip);
  holder_write(mine, q->mac, true, f->id);
  for (int attempt = 0; attempt < 2; attempt++) {
    int vlen = 0;
    uint64_t have = 0;
    int g = kv_get(f, key, val, sizeof(val), &vlen, &have);
    if (g < 0)
      return TRY_ERROR;
    if (g == 0) {
      int w = kv_write(f, key, mine, 0, rev);
      if (w == 0)
        return local_take(f, q, ip, key, true, *rev) ? TRY_OK : TRY_TAKEN;
      if (w == -EIO)
        return TRY_ERROR;
      continue; /* created meanwhile by someone else: look again */
    }
    struct holder h;
    if (!holder_parse(val, vlen, &h))
      return TRY_TAKEN; /* not ours to interpret */
    if (memcmp(h.mac, q->mac, 6) != 0) {
      /* the released key of the lowest revision was written longest ago */
      if (!h.live && (*old_rev == 0 || have < *old_rev)) {
        *old_ip = ip;
        *old_rev = have;
      }
      return TRY_TAKEN;
    }
    int w = kv_write(f, key, mine, have, rev);
    if (w == -EIO)
      return TRY_ERROR;
    if (w < 0)
      continue;
    if (!local_take(f, q, ip, key, false, *rev))
      return TRY_TAKEN;
    if (h.live && strcmp(h.relay, f->id) != 0)
      takeover_tell(f, h.relay, q->room, q->mac);
    return TRY_OK;
  }
  return TRY_TAKEN;
}

static bool in_range(const struct fed *f, uint32_t ip)
{
  return ip >= f->p.pool_first && ip <= f->p.pool_last;
}

/* NATS unreachable: the relay keeps its local candidate; recorded as held
 * with no revision, so renewal claims it when NATS is back. */
static void unavailable(struct fed *f, const struct fed_lease_req *q)
{
  if (!q->ip || !in_range(f, q->ip))
    return;
  struct fed_lease_live *e = live_add(f, q->room, q->mac);
  if (!e)
    return;
  e->ip = q->ip;
  e->holders = 1;
  e->renew_at = 0;
}

static void answer(struct fed *f, uint32_t w, uint64_t token, enum fed_lease_status st, uint32_t ip)
{
  struct fed_lease_ans a = {.token = token, .status = st, .ip = ip};
  if (st == FED_LEASE_UNAVAILABLE)
    add(&f->lease_unavailable, 1);
  else if (st == FED_LEASE_EXHAUSTED)
    add(&f->lease_exhausted, 1);
  fed_push_one(f, w, FED_IN_LEASE, &a, sizeof(a));
}

static void claim(struct fed *f, uint32_t w, const struct fed_lease_req *q)
{
  struct fed_lease_live *e = live_find(f, q->room, q->mac);
  if (e) {
    /* held here already (a claim of another worker not yet released) */
    e->holders++;
    add(&f->lease_claims, 1);
    if (e->ip != q->ip)
      add(&f->lease_moved, 1);
    answer(f, w, q->token, FED_LEASE_OK, e->ip);
    return;
  }
  if (!connected(f)) {
    unavailable(f, q);
    answer(f, w, q->token, FED_LEASE_UNAVAILABLE, 0);
    return;
  }
  uint32_t tried[2] = {0, 0}, ip = 0, old_ip = 0;
  uint64_t rev = 0, old_rev = 0;
  enum try_result r = TRY_TAKEN;
  /* the MAC's own address, wherever it was leased */
  char key[FED_KEY_MAX], val[VAL_MAX];
  int vlen;
  uint64_t mrev;
  fed_lease_mac_key(key, q->room, q->mac);
  int g = kv_get(f, key, val, sizeof(val), &vlen, &mrev);
  unsigned a, b, c, d;
  if (g < 0) {
    unavailable(f, q);
    answer(f, w, q->token, FED_LEASE_UNAVAILABLE, 0);
    return;
  }
  if (g > 0 && sscanf(val, "%u.%u.%u.%u", &a, &b, &c, &d) == 4 && a < 256 && b < 256 && c < 256 &&
      d < 256 && in_range(f, a << 24 | b << 16 | c << 8 | d))
    tried[0] = a << 24 | b << 16 | c << 8 | d;
  if (q->ip && q->ip != tried[0] && in_range(f, q->ip))
    tried[1] = q->ip;
  for (int i = 0; i < 2 && r == TRY_TAKEN; i++)
    if (tried[i] && (r = try_ip(f, q, tried[i], &rev, &old_ip, &old_rev)) == TRY_OK)
      ip = tried[i];
  /* the range, top-down from the candidate (the local pool's order) */
  uint32_t n = f->p.pool_last - f->p.pool_first + 1;
  uint32_t start = tried[1] ? tried[1] : f->p.pool_last;
  for (uint32_t k = 0; k < n && k < SCAN_MAX && r == TRY_TAKEN; k++) {
    uint32_t off = (f->p.pool_last - start + k) % n;
    uint32_t cand = f->p.pool_last - off;
    if (cand == tried[0] || cand == tried[1])
      continue;
    if ((r = try_ip(f, q, cand, &rev, &old_ip, &old_rev)) == TRY_OK)
      ip = cand;
  }
  if (r == TRY_TAKEN && old_rev) {
    /* every address held: the one released longest ago, if it has not
     * changed since it was read */
    char mine[VAL_MAX];
    fed_lease_ip_key(key, q->room, old_ip);
    holder_write(mine, q->mac, true, f->id);
    int wr = kv_write(f, key, mine, old_rev, &rev);
    if (wr == 0 && !local_take(f, q, old_ip, key, false, rev)) {
      r = TRY_TAKEN;
    } else if (wr == 0) {
      r = TRY_OK;
      ip = old_ip;
    } else if (wr == -EIO) {
      r = TRY_ERROR;
    }
  }
  if (r == TRY_ERROR) {
    unavailable(f, q);
    answer(f, w, q->token, FED_LEASE_UNAVAILABLE, 0);
    return;
  }
  if (r != TRY_OK) {
    answer(f, w, q->token, FED_LEASE_EXHAUSTED, 0);
    return;
  }
  mac_key_put(f, q->room, q->mac, ip);
  if ((e = live_add(f, q->room, q->mac))) {
    e->ip = ip;
    e->rev = rev;
    e->holders = 1;
    e->renew_at = mono_ns() + f->renew_ns;
  } else {
    /* not renewed: it expires a TTL from now, and is claimed again at the
     * MAC's next Register */
    add(&f->lease_kv_errors, 1);
  }
  add(&f->lease_claims, 1);
  if (ip != q->ip)
    add(&f->lease_moved, 1);
  answer(f, w, q->token, FED_LEASE_OK, ip);
}

static void release(struct fed *f, const struct fed_lease_req *q)
{
  struct fed_lease_live *e = live_find(f, q->room, q->mac);
  if (!e || e->ip != q->ip || --e->holders > 0)
    return;
  add(&f->lease_releases, 1);
  if (connected(f)) {
    char key[FED_KEY_MAX], val[VAL_MAX];
    uint64_t rev;
    fed_lease_ip_key(key, e->room, e->ip);
    holder_write(val, e->mac, false, f->id);
    /* a key another relay took over meanwhile stays as it is */
    if (kv_write(f, key, val, e->rev, &rev) == 0)
      mac_key_put(f, e->room, e->mac, e->ip);
  }
  live_del(f, e);
}

/* Renews what is due; a key that changed under us is looked at again:
 * gone (expired while NATS was unreachable) is created again, another
 * MAC's is a conflict, this MAC's behind another relay was taken over. */
static void renew(struct fed *f, uint64_t now)
{
  if (!connected(f))
    return;
  for (uint32_t i = 0; i < f->p.max_live; i++) {
    struct fed_lease_live *e = &f->live[i];
    if (!e->used || e->renew_at > now)
      continue;
    char key[FED_KEY_MAX], mine[VAL_MAX], val[VAL_MAX];
    fed_lease_ip_key(key, e->room, e->ip);
    holder_write(mine, e->mac, true, f->id);
    uint64_t rev;
    int rc = kv_write(f, key, mine, e->rev, &rev);
    if (rc == -EEXIST) {
      int vlen;
      uint64_t have;
      int g = kv_get(f, key, val, sizeof(val), &vlen, &have);
      struct holder h;
      if (g == 0) {
        rc = kv_write(f, key, mine, 0, &rev);
      } else if (g > 0 && holder_parse(val, vlen, &h) && memcmp(h.mac, e->mac, 6) == 0 &&
                 strcmp(h.relay, f->id) == 0) {
        rc = kv_write(f, key, mine, have, &rev); /* our own write, its answer lost */
      } else if (g > 0) {
        bool same_mac = holder_parse(val, vlen, &h) && memcmp(h.mac, e->mac, 6) == 0;
        if (same_mac) {
          add(&f->lease_renew_lost, 1);
        } else {
          add(&f->lease_conflicts, 1);
          log_error("address held by two VMs of a room (one got it while NATS was unreachable): "
                    "the session here is ended, its VM gets a free address when it reconnects",
                    "room=%s ip=%u.%u.%u.%u", LOG_Q(e->room), e->ip >> 24, (e->ip >> 16) & 255,
                    (e->ip >> 8) & 255, e->ip & 255);
          uint8_t msg[6 + FED_NAME_MAX];
          size_t n = strnlen(e->room, FED_NAME_MAX - 1);
          memcpy(msg, e->mac, 6);
          memcpy(msg + 6, e->room, n);
          fed_push_all(f, FED_IN_CONFLICT, msg, 6 + n);
        }
        live_del(f, e);
        continue;
      }
    }
    if (rc == 0) {
      e->rev = rev;
      e->renew_at = now + f->renew_ns;
      add(&f->lease_renewals, 1);
      mac_key_put(f, e->room, e->mac, e->ip);
    } else {
      e->renew_at = now + 1000000000ull; /* NATS trouble: again in a second */
    }
  }
}

/* ---- the thread ---- */

static void on_takeover(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
  struct fed *f = closure;
  int len = natsMsg_GetDataLength(msg);
  if (len >= 6 && len <= 6 + FED_NAME_MAX - 1) {
    add(&f->lease_takeovers_received, 1);
    fed_push_all(f, FED_IN_TAKEOVER, natsMsg_GetData(msg), (size_t)len);
  } else {
    add(&f->ws[0].drop_in_bad, 1);
  }
  natsMsg_Destroy(msg);
}

static void *lease_main(void *arg)
{
  struct fed *f = arg;
  uint32_t n = f->p.nworkers;
  struct pollfd *pf = fed_pollfds(f, f->lbell, offsetof(struct fed_worker, lreq));
  if (!pf)
    return NULL;
  uint64_t next_renew = 0;
  while (!atomic_load(&f->stop)) {
    (void)poll(pf, n + 1, TICK_MS);
    for (uint32_t w = 0; w < n && !atomic_load(&f->stop); w++) {
      struct fring *r = &f->ws[w].lreq;
      (void)fring_doorbell_ack(r);
      const struct fring_slot *sl;
      while ((sl = fring_peek(r))) {
        struct fed_lease_req q;
        memcpy(&q, sl->data, sizeof(q));
        q.room[FED_NAME_MAX - 1] = '\0';
        fring_release(r);
        if (q.type == FED_LREQ_CLAIM)
          claim(f, w, &q);
        else
          release(f, &q);
      }
    }
    uint64_t now = mono_ns();
    if (now >= next_renew) {
      renew(f, now);
      next_renew = now + 1000000000ull;
    }
  }
  free(pf);
  return NULL;
}

static void bucket_name(char *out, size_t cap, const char *prefix)
{
  snprintf(out, cap, "%s_leases", prefix);
  for (char *c = out; *c; c++)
    if (*c == '.')
      *c = '_';
}

int fed_lease_start(struct fed *f)
{
  f->lbell = -1;
  log_ratelimit_init(&f->rl_lease, 10ull * 1000000000ull, 1);
  uint32_t buckets = 1;
  while (buckets < f->p.max_live)
    buckets <<= 1;
  f->live = calloc(f->p.max_live, sizeof(*f->live));
  f->live_head = malloc(sizeof(*f->live_head) * buckets);
  if (!f->live || !f->live_head)
    return -ENOMEM;
  f->live_mask = buckets - 1;
  for (uint32_t i = 0; i < buckets; i++)
    f->live_head[i] = UINT32_MAX;
  for (uint32_t i = 0; i < f->p.max_live; i++)
    f->live[i].next = i + 1 < f->p.max_live ? i + 1 : UINT32_MAX;
  f->live_free = 0;

  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = KV_WAIT_MS;
  jsCtx *js = NULL;
  natsStatus s = natsConnection_JetStream(&js, f->nc, &jo);
  if (s != NATS_OK)
    return -ENOMEM;
  f->js = js;
  char bucket[160];
  bucket_name(bucket, sizeof(bucket), f->prefix);
  kvStore *kv = NULL;
  s = js_KeyValue(&kv, js, bucket);
  if (s == NATS_NOT_FOUND) {
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = bucket;
    kc.Description = "wtrelay: addresses of the VMs of every room (--lease-time TTL)";
    kc.History = 1;
    kc.TTL = (int64_t)f->p.lease_ns; /* a stream's max age, in nanoseconds */
    kc.StorageType = js_FileStorage;
    s = js_CreateKeyValue(&kv, js, &kc);
  }
  if (s != NATS_OK) {
    log_error("NATS JetStream key-value bucket unavailable: cluster leases need JetStream "
              "(start nats-server with -js)",
              "bucket=%s err=%s detail=%s", bucket, natsStatus_GetText(s),
              LOG_Q(nats_GetLastError(NULL)));
    return -EPROTONOSUPPORT;
  }
  f->kv = kv;
  kvStatus *st = NULL;
  int64_t ttl = (int64_t)f->p.lease_ns;
  if (kvStore_Status(&st, kv) == NATS_OK) {
    if (kvStatus_TTL(st) > 0)
      ttl = kvStatus_TTL(st);
    if (kvStatus_TTL(st) != (int64_t)f->p.lease_ns)
      log_warn("the lease bucket's TTL differs from --lease-time (the first relay made it): "
               "leases last the bucket's TTL",
               "bucket=%s ttl_s=%lld lease_time_s=%llu", bucket,
               (long long)(kvStatus_TTL(st) / 1000000000),
               (unsigned long long)(f->p.lease_ns / 1000000000));
    kvStatus_Destroy(st);
  }
  f->renew_ns = (uint64_t)ttl / 3;
  if (f->renew_ns < 100000000ull)
    f->renew_ns = 100000000ull;

  char subj[256 + 2 * FED_ID_MAX];
  snprintf(subj, sizeof(subj), "%s.relay.%s.takeover", f->prefix, f->idtok);
  natsSubscription *sub = NULL;
  if ((s = natsConnection_Subscribe(&sub, f->nc, subj, on_takeover, f)) != NATS_OK) {
    log_error("NATS subscribe failed", "subject=%s err=%s", subj, natsStatus_GetText(s));
    return -EIO;
  }
  f->sub_takeover = sub;
  if ((f->lbell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
    return -errno;
  int rc = -pthread_create(&f->lthread, NULL, lease_main, f);
  if (rc < 0)
    return rc;
  f->lthread_started = true;
  log_info("cluster leases in NATS key-value", "bucket=%s ttl_s=%lld", bucket,
           (long long)(ttl / 1000000000));
  return 0;
}

void fed_lease_stop(struct fed *f)
{
  if (f->lthread_started) {
    uint64_t one = 1;
    (void)!write(f->lbell, &one, sizeof(one));
    pthread_join(f->lthread, NULL);
    f->lthread_started = false;
  }
  if (f->sub_takeover) {
    (void)natsSubscription_Unsubscribe(f->sub_takeover);
    natsSubscription_Destroy(f->sub_takeover);
    f->sub_takeover = NULL;
  }
  if (f->kv)
    kvStore_Destroy(f->kv);
  if (f->js)
    jsCtx_Destroy(f->js);
  f->kv = f->js = NULL;
  if (f->lbell >= 0)
    close(f->lbell);
  f->lbell = -1;
  free(f->live);
  free(f->live_head);
  f->live = NULL;
  f->live_head = NULL;
}

/* ---- workers ---- */

static int push_req(struct fed *f, uint32_t w, const struct fed_lease_req *q)
{
  struct fed_worker *fw = &f->ws[w];
  struct iovec iov = {.iov_base = (void *)q, .iov_len = sizeof(*q)};
  if (fring_push(&fw->lreq, 0, 0, &iov, 1) < 0) {
    add(&f->lease_req_full, 1);
    return -ENOBUFS;
  }
  (void)fring_doorbell_ring(&fw->lreq);
  return 0;
}

int fed_lease_claim(struct fed *f, uint32_t w, uint64_t token, const char *room,
                    const uint8_t mac[6], uint32_t candidate)
{
  if (!f->lthread_started)
    return -ENOTSUP;
  struct fed_lease_req q = {.type = FED_LREQ_CLAIM, .ip = candidate, .token = token};
  memcpy(q.mac, mac, 6);
  snprintf(q.room, sizeof(q.room), "%s", room);
  return push_req(f, w, &q);
}

void fed_lease_release(struct fed *f, uint32_t w, const char *room, const uint8_t mac[6],
                       uint32_t ip)
{
  if (!f->lthread_started)
    return;
  struct fed_lease_req q = {.type = FED_LREQ_RELEASE, .ip = ip};
  memcpy(q.mac, mac, 6);
  snprintf(q.room, sizeof(q.room), "%s", room);
  (void)push_req(f, w, &q);
}
