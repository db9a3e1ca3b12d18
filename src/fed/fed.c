/*
 * fed: rooms across relays over NATS. The theory of operation is in
 * wtrelay/fed.h; this file keeps three threads apart:
 *  - workers: fed_room_open/close, fed_send, fed_turn, fed_drain (their own
 *    fed_worker only; atomics for what other threads read);
 *  - the publisher thread (pub_main): wishes -> subscriptions, outgoing
 *    rings -> natsConnection_Publish; it alone changes f->rooms, under
 *    f->lock;
 *  - libnats's threads: on_msg (incoming rings' producer, under f->lock),
 *    on_ping, and the connection callbacks (atomics only).
 */
#include "wtrelay/fed.h"

#include <errno.h>
#include <nats/nats.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "fed_util.h"
#include "wtrelay/roomdir.h"

#define WANT_ON (1ull << 32)
#define SUBJ_MAX 1024
#define POLL_MS 100

/* ---- subjects ---- */

char *fed_token(char *out, const void *in, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  const uint8_t *b = in;
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hex[b[i] >> 4];
    out[2 * i + 1] = hex[b[i] & 15];
  }
  out[2 * n] = '\0';
  return out;
}

bool fed_prefix_valid(const char *s)
{
  size_t tok = 0;
  if (!*s)
    return false;
  for (; *s; s++) {
    char c = *s;
    if (c == '.') {
      if (!tok)
        return false;
      tok = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_'))
      return false;
    tok++;
  }
  return tok > 0;
}

int fed_subject(char *out, size_t cap, const char *prefix, const char *room, const char *to)
{
  int n = to ? snprintf(out, cap, "%s.room.%s.to.%s", prefix, room, to)
             : snprintf(out, cap, "%s.room.%s.flood", prefix, room);
  return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : n;
}

void fed_urls_redact(char *out, size_t cap, const char *urls)
{
  size_t o = 0;
  out[0] = '\0';
  while (*urls && o + 1 < cap) {
    size_t n = strcspn(urls, ",");
    /* scheme://user:password@host: the userinfo is everything before the
     * last '@' of the authority (a password may hold '@', not '/') */
    const char *auth = memmem(urls, n, "://", 3);
    auth = auth ? auth + 3 : urls;
    size_t alen = strcspn(auth, ",/");
    const char *at = NULL;
    for (const char *c = auth; c < auth + alen; c++)
      if (*c == '@')
        at = c;
    int w;
    if (at)
      w = snprintf(out + o, cap - o, "%.*s***%.*s", (int)(auth - urls), urls, (int)(urls + n - at),
                   at);
    else
      w = snprintf(out + o, cap - o, "%.*s", (int)n, urls);
    if (w < 0 || (size_t)w >= cap - o)
      return;
    o += (size_t)w;
    urls += n;
    if (*urls == ',') {
      if (o + 2 > cap)
        return;
      out[o++] = *urls++;
      out[o] = '\0';
    }
  }
}

/* ---- remote MACs (a worker's, direct-mapped) ---- */

static struct fed_mac *mac_slot(struct fed_worker *fw, uint32_t ring_id, const uint8_t mac[6])
{
  uint64_t h = ring_id;
  for (int i = 0; i < 6; i++)
    h = h << 8 | mac[i];
  /* a full 64-bit mix (MurmurHash3's finaliser): MACs of one vendor
   * differ in their last bytes only */
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return &fw->macs[h & (FED_MACS - 1)];
}

static bool mac_is(const struct fed_mac *m, uint32_t ring_id, const uint8_t mac[6])
{
  return m->idlen && m->ring_id == ring_id && memcmp(m->mac, mac, 6) == 0;
}

bool fed_mac_learn(struct fed_worker *fw, uint32_t ring_id, const uint8_t mac[6], const uint8_t *id,
                   uint8_t n, uint64_t now)
{
  struct fed_mac *m = mac_slot(fw, ring_id, mac);
  m->seen_ns = now;
  if (mac_is(m, ring_id, mac) && m->idlen == n && memcmp(m->id, id, n) == 0)
    return false;
  m->ring_id = ring_id;
  memcpy(m->mac, mac, 6);
  m->idlen = n;
  memcpy(m->id, id, n);
  return true;
}

const struct fed_mac *fed_mac_find(struct fed_worker *fw, uint64_t aging_ns, uint32_t ring_id,
                                   const uint8_t mac[6], uint64_t now)
{
  struct fed_mac *m = mac_slot(fw, ring_id, mac);
  if (!mac_is(m, ring_id, mac))
    return NULL;
  if (aging_ns && now > m->seen_ns && now - m->seen_ns > aging_ns) {
    m->idlen = 0;
    add(&fw->macs_expired, 1);
    return NULL;
  }
  return m;
}

/* The first 6 bytes of a frame spread over iovecs. */
static bool frame_head(const struct switch_frame *fr, uint8_t out[6])
{
  size_t got = 0;
  for (int i = 0; i < fr->iovcnt && got < 6; i++) {
    size_t k = fr->iov[i].iov_len < 6 - got ? fr->iov[i].iov_len : 6 - got;
    memcpy(out + got, fr->iov[i].iov_base, k);
    got += k;
  }
  return got == 6;
}

/* ---- worker side ---- */

void fed_room_open(struct fed *f, uint32_t w, uint32_t ring_id, const char *name)
{
  struct fed_worker *fw = &f->ws[w];
  uint32_t slot = ROOMDIR_SLOT(ring_id);
  if (slot >= f->p.max_rooms)
    return;
  snprintf(fw->names[slot], FED_NAME_MAX, "%s", name);
  atomic_store_explicit(&fw->want[slot], WANT_ON | ring_id, memory_order_release);
  atomic_store(&f->dirty, true);
  uint64_t one = 1;
  (void)!write(f->bell, &one, sizeof(one));
}

void fed_room_close(struct fed *f, uint32_t w, uint32_t ring_id)
{
  struct fed_worker *fw = &f->ws[w];
  uint32_t slot = ROOMDIR_SLOT(ring_id);
  if (slot >= f->p.max_rooms)
    return;
  atomic_store_explicit(&fw->want[slot], 0, memory_order_release);
  /* its remote MACs are forgotten lazily: a new room in this slot has
   * another ring id */
  atomic_store(&f->dirty, true);
  uint64_t one = 1;
  (void)!write(f->bell, &one, sizeof(one));
}

int fed_send(struct fed *f, uint32_t w, uint32_t ring_id, const struct switch_frame *fr,
             uint64_t now)
{
  struct fed_worker *fw = &f->ws[w];
  if (!ld(&f->connected)) {
    add(&fw->drop_down, 1);
    return -ENOTCONN;
  }
  uint8_t hdr[1 + FED_ID_MAX];
  hdr[0] = 0;
  uint8_t dst[6];
  if (!fr->flood && frame_head(fr, dst) && !(dst[0] & 1)) {
    const struct fed_mac *m = fed_mac_find(fw, f->p.aging_ns, ring_id, dst, now);
    if (m) {
      hdr[0] = m->idlen;
      memcpy(hdr + 1, m->id, m->idlen);
    }
  }
  struct iovec iov[1 + SWITCH_FRAME_IOV_MAX];
  iov[0].iov_base = hdr;
  iov[0].iov_len = 1 + (size_t)hdr[0];
  int n = fr->iovcnt < SWITCH_FRAME_IOV_MAX ? fr->iovcnt : SWITCH_FRAME_IOV_MAX;
  memcpy(&iov[1], fr->iov, sizeof(iov[0]) * (size_t)n);
  int rc = fring_push(&fw->out, ring_id, 0, iov, 1 + n);
  if (rc == -EMSGSIZE)
    add(&fw->drop_too_big, 1);
  else if (rc < 0)
    add(&fw->drop_ring_full, 1);
  return rc;
}

void fed_turn(struct fed *f, uint32_t w)
{
  (void)fring_doorbell_ring(&f->ws[w].out);
}

int fed_bell_fd(struct fed *f, uint32_t w)
{
  return fring_doorbell_fd(&f->ws[w].in);
}

void fed_drain(struct fed *f, uint32_t w, const struct fed_drain_ops *ops, void *ctx, uint64_t now)
{
  struct fed_worker *fw = &f->ws[w];
  const struct fring_slot *sl;
  (void)fring_doorbell_ack(&fw->in);
  while ((sl = fring_peek(&fw->in))) {
    if (sl->flags == FED_IN_LEASE) {
      struct fed_lease_ans a;
      memcpy(&a, sl->data, sizeof(a)); /* the size is the pusher's */
      ops->lease(ctx, &a);
      fring_release(&fw->in);
      continue;
    }
    if (sl->flags == FED_IN_TAKEOVER || sl->flags == FED_IN_CONFLICT) {
      char room[FED_NAME_MAX];
      size_t n = sl->len - 6 < FED_NAME_MAX - 1 ? sl->len - 6 : FED_NAME_MAX - 1;
      memcpy(room, sl->data + 6, n);
      room[n] = '\0';
      ops->takeover(ctx, room, sl->data, sl->flags == FED_IN_CONFLICT);
      fring_release(&fw->in);
      continue;
    }
    uint8_t n = sl->data[0]; /* checked by on_msg */
    const uint8_t *frame = sl->data + 1 + n;
    size_t len = sl->len - 1 - n;
    const uint8_t *src = frame + 6;
    if (!(src[0] & 1) && fed_mac_learn(fw, sl->domain, src, sl->data + 1, n, now))
      add(&fw->macs_learned, 1);
    int rc = ops->input(ctx, sl->domain, frame, len);
    if (rc == -ENOENT)
      add(&fw->drop_in_no_room, 1);
    else if (rc < 0)
      add(&fw->drop_in_switch, 1);
    else {
      add(&fw->frames_in, 1);
      add(&fw->bytes_in, len);
    }
    fring_release(&fw->in);
  }
}

void fed_push_one(struct fed *f, uint32_t w, uint32_t flags, const void *data, size_t len)
{
  struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
  pthread_mutex_lock(&f->lock);
  if (fring_push(&f->ws[w].in, 0, flags, &iov, 1) < 0)
    add(&f->drop_in_full, 1);
  else
    (void)fring_doorbell_ring(&f->ws[w].in);
  pthread_mutex_unlock(&f->lock);
}

void fed_push_all(struct fed *f, uint32_t flags, const void *data, size_t len)
{
  for (uint32_t w = 0; w < f->p.nworkers; w++)
    fed_push_one(f, w, flags, data, len);
}

/* ---- libnats's threads ---- */

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
  struct fed_room *room = closure;
  struct fed *f = room->fed;
  const uint8_t *d = (const uint8_t *)natsMsg_GetData(msg);
  int len = natsMsg_GetDataLength(msg);
  if (len < 1 || d[0] == 0 || d[0] > FED_ID_MAX || len < 1 + d[0] + 14 ||
      (size_t)len > 1 + FED_ID_MAX + f->p.max_frame) {
    /* counted on worker 0's row: the callback has no worker */
    add(&f->ws[0].drop_in_bad, 1);
  } else if (d[0] == f->idlen && memcmp(d + 1, f->id, f->idlen) == 0) {
    add(&f->own_ignored, 1);
  } else {
    struct iovec iov = {.iov_base = (void *)d, .iov_len = (size_t)len};
    pthread_mutex_lock(&f->lock);
    if (room->active && ((void *)sub == room->sub_flood || (void *)sub == room->sub_to))
      for (uint32_t w = 0; w < f->p.nworkers; w++) {
        if (!room->workers[w])
          continue;
        if (fring_push(&f->ws[w].in, room->ring_id, FED_IN_FRAME, &iov, 1) < 0)
          add(&f->drop_in_full, 1);
        else
          (void)fring_doorbell_ring(&f->ws[w].in);
      }
    pthread_mutex_unlock(&f->lock);
  }
  natsMsg_Destroy(msg);
}

static void on_ping(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
  struct fed *f = closure;
  const char *reply = natsMsg_GetReply(msg);
  if (reply)
    (void)natsConnection_Publish(nc, reply, f->id, f->idlen);
  natsMsg_Destroy(msg);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
  struct fed *f = closure;
  atomic_store(&f->connected, 0);
  if (atomic_load(&f->stop))
    return; /* fed_stop closes it */
  add(&f->disconnects, 1);
  log_warn("NATS connection lost: frames to other relays are dropped until it is back",
           "relay_id=%s", f->id);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
  struct fed *f = closure;
  atomic_store(&f->connected, 1);
  add(&f->reconnects, 1);
  log_info("NATS connection back", "relay_id=%s", f->id);
}

static void on_closed(natsConnection *nc, void *closure)
{
  struct fed *f = closure;
  atomic_store(&f->connected, 0);
}

/* ---- the publisher thread ---- */

static void room_unsubscribe(struct fed *f, struct fed_room *room)
{
  pthread_mutex_lock(&f->lock);
  room->active = false;
  natsSubscription *a = room->sub_flood, *b = room->sub_to;
  room->sub_flood = room->sub_to = NULL;
  memset(room->workers, 0, f->p.nworkers);
  pthread_mutex_unlock(&f->lock);
  if (a) {
    (void)natsSubscription_Unsubscribe(a);
    natsSubscription_Destroy(a);
  }
  if (b) {
    (void)natsSubscription_Unsubscribe(b);
    natsSubscription_Destroy(b);
  }
  add(&f->rooms_subscribed, (uint64_t)-1);
}

static int room_subscribe(struct fed *f, struct fed_room *room, uint32_t ring_id, const char *name)
{
  char token[sizeof(room->token)];
  fed_token(token, name, strnlen(name, FED_NAME_MAX - 1));
  char sf[SUBJ_MAX], st[SUBJ_MAX];
  if (fed_subject(sf, sizeof(sf), f->prefix, token, NULL) < 0 ||
      fed_subject(st, sizeof(st), f->prefix, token, f->idtok) < 0)
    return -ENAMETOOLONG;
  natsSubscription *a = NULL, *b = NULL;
  natsStatus s = natsConnection_Subscribe(&a, f->nc, sf, on_msg, room);
  if (s == NATS_OK)
    s = natsConnection_Subscribe(&b, f->nc, st, on_msg, room);
  if (s != NATS_OK) {
    log_warn("NATS subscribe failed", "room=%s err=%s", LOG_Q(name), natsStatus_GetText(s));
    if (a) {
      (void)natsSubscription_Unsubscribe(a);
      natsSubscription_Destroy(a);
    }
    return -EIO;
  }
  pthread_mutex_lock(&f->lock);
  memcpy(room->token, token, sizeof(token));
  room->ring_id = ring_id;
  room->sub_flood = a;
  room->sub_to = b;
  room->active = true;
  pthread_mutex_unlock(&f->lock);
  add(&f->rooms_subscribed, 1);
  return 0;
}

/* Subscriptions follow the workers' wishes. */
static void reconcile(struct fed *f)
{
  for (uint32_t slot = 0; slot < f->p.max_rooms; slot++) {
    struct fed_room *room = &f->rooms[slot];
    uint64_t want = 0;
    uint32_t from = 0;
    for (uint32_t w = 0; w < f->p.nworkers && !want; w++)
      if ((want = atomic_load_explicit(&f->ws[w].want[slot], memory_order_acquire)))
        from = w;
    if (room->active && (!want || room->ring_id != (uint32_t)want))
      room_unsubscribe(f, room);
    if (!want)
      continue;
    if (!room->active) {
      char name[FED_NAME_MAX];
      memcpy(name, f->ws[from].names[slot], sizeof(name));
      name[FED_NAME_MAX - 1] = '\0';
      /* the wish changed while the name was read: next pass */
      if (atomic_load_explicit(&f->ws[from].want[slot], memory_order_acquire) != want) {
        atomic_store(&f->dirty, true);
        continue;
      }
      if (room_subscribe(f, room, (uint32_t)want, name) < 0) {
        atomic_store(&f->dirty, true); /* retried next pass */
        continue;
      }
    }
    pthread_mutex_lock(&f->lock);
    for (uint32_t w = 0; w < f->p.nworkers; w++)
      room->workers[w] = atomic_load_explicit(&f->ws[w].want[slot], memory_order_acquire) == want;
    pthread_mutex_unlock(&f->lock);
  }
}

static void publish_one(struct fed *f, const struct fring_slot *sl)
{
  struct fed_room *room = &f->rooms[ROOMDIR_SLOT(sl->domain)];
  if (!room->active || room->ring_id != sl->domain) {
    if (atomic_exchange(&f->dirty, false))
      reconcile(f);
    if (!room->active || room->ring_id != sl->domain) {
      add(&f->drop_publish, 1);
      return;
    }
  }
  if (natsConnection_Status(f->nc) != NATS_CONN_STATUS_CONNECTED) {
    add(&f->drop_down_pub, 1);
    uint32_t supp;
    if (log_ratelimit_allow(&f->rl_down, mono_ns(), &supp))
      log_warn("NATS not connected: frame to other relays dropped", "suppressed=%u", supp);
    return;
  }
  uint8_t n = sl->data[0];
  char to[2 * FED_ID_MAX + 1];
  if (n)
    fed_token(to, sl->data + 1, n);
  if (fed_subject(f->subj, SUBJ_MAX, f->prefix, room->token, n ? to : NULL) < 0) {
    add(&f->drop_publish, 1);
    return;
  }
  size_t flen = sl->len - 1 - n;
  f->scratch[0] = f->idlen;
  memcpy(f->scratch + 1, f->id, f->idlen);
  memcpy(f->scratch + 1 + f->idlen, sl->data + 1 + n, flen);
  natsStatus s = natsConnection_Publish(f->nc, f->subj, f->scratch, (int)(1 + f->idlen + flen));
  if (s != NATS_OK) {
    add(&f->drop_publish, 1);
    uint32_t supp;
    if (log_ratelimit_allow(&f->rl_down, mono_ns(), &supp))
      log_warn("NATS publish failed", "err=%s suppressed=%u", natsStatus_GetText(s), supp);
    return;
  }
  add(&f->frames_out, 1);
  add(&f->bytes_out, flen);
  if (n)
    add(&f->frames_directed, 1);
}

static void *pub_main(void *arg)
{
  struct fed *f = arg;
  uint32_t n = f->p.nworkers;
  struct pollfd *pf = fed_pollfds(f, f->bell, offsetof(struct fed_worker, out));
  if (!pf)
    return NULL;
  while (!atomic_load(&f->stop)) {
    (void)poll(pf, n + 1, POLL_MS);
    uint64_t v;
    while (read(f->bell, &v, sizeof(v)) == (ssize_t)sizeof(v))
      ;
    if (atomic_exchange(&f->dirty, false))
      reconcile(f);
    for (uint32_t w = 0; w < n; w++) {
      struct fring *r = &f->ws[w].out;
      (void)fring_doorbell_ack(r);
      const struct fring_slot *sl;
      while ((sl = fring_peek(r))) {
        publish_one(f, sl);
        fring_release(r);
      }
    }
  }
  free(pf);
  return NULL;
}

/* ---- start and stop ---- */

static int servers_set(natsOptions *o, const char *urls)
{
  char buf[4096];
  const char *list[16];
  int n = 0;
  snprintf(buf, sizeof(buf), "%s", urls);
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < 16;
       t = strtok_r(NULL, ",", &save))
    if (*t)
      list[n++] = t;
  if (!n)
    return -EINVAL;
  return natsOptions_SetServers(o, list, n) == NATS_OK ? 0 : -EINVAL;
}

int fed_start(struct fed *f, const struct fed_params *p)
{
  memset(f, 0, sizeof(*f));
  f->bell = -1;
  f->p = *p;
  log_ratelimit_init(&f->rl_down, 10ull * 1000000000ull, 1);
  if (!fed_prefix_valid(p->prefix) || strlen(p->prefix) >= sizeof(f->prefix)) {
    log_error("--nats-subject-prefix: dot-separated tokens of letters, digits, - and _",
              "prefix=%s", LOG_Q(p->prefix));
    return -EINVAL;
  }
  snprintf(f->prefix, sizeof(f->prefix), "%s", p->prefix);
  if (p->id && p->id[0]) {
    snprintf(f->id, sizeof(f->id), "%.64s", p->id);
    if (strlen(p->id) > FED_ID_MAX) {
      log_error("--relay-id: at most 64 bytes", "relay_id=%s", LOG_Q(p->id));
      return -EINVAL;
    }
  } else {
    char host[256] = "relay";
    (void)gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(f->id, sizeof(f->id), "%.56s:%u", host, p->port);
  }
  f->idlen = (uint8_t)strlen(f->id);
  for (size_t i = 0; i < f->idlen; i++)
    if ((uint8_t)f->id[i] < 0x20 || f->id[i] == 0x7f) {
      log_error("--relay-id: no control characters", "relay_id=%s", LOG_Q(f->id));
      return -EINVAL;
    }
  fed_token(f->idtok, f->id, f->idlen);

  int rc = -ENOMEM;
  uint32_t slot_frame = p->max_frame + 1 + FED_ID_MAX;
  f->ws = calloc(p->nworkers, sizeof(*f->ws));
  f->rooms = calloc(p->max_rooms, sizeof(*f->rooms));
  f->scratch = malloc(slot_frame);
  f->subj = malloc(SUBJ_MAX);
  if (!f->ws || !f->rooms || !f->scratch || !f->subj)
    goto fail;
  pthread_mutex_init(&f->lock, NULL);
  for (uint32_t w = 0; w < p->nworkers; w++) {
    struct fed_worker *fw = &f->ws[w];
    fw->out.efd = fw->in.efd = fw->lreq.efd = -1;
  }
  for (uint32_t w = 0; w < p->nworkers; w++) {
    struct fed_worker *fw = &f->ws[w];
    fw->want = calloc(p->max_rooms, sizeof(*fw->want));
    fw->names = calloc(p->max_rooms, sizeof(*fw->names));
    fw->macs = calloc(FED_MACS, sizeof(*fw->macs));
    if (!fw->want || !fw->names || !fw->macs)
      goto fail;
    if ((rc = fring_init(&fw->out, FED_RING_SLOTS, slot_frame)) < 0 ||
        (rc = fring_init(&fw->in, FED_RING_SLOTS, slot_frame)) < 0 ||
        (p->max_live &&
         (rc = fring_init(&fw->lreq, FED_LREQ_SLOTS, (uint32_t)sizeof(struct fed_lease_req))) < 0))
      goto fail;
    rc = -ENOMEM;
  }
  for (uint32_t i = 0; i < p->max_rooms; i++) {
    f->rooms[i].fed = f;
    if (!(f->rooms[i].workers = calloc(p->nworkers, 1)))
      goto fail;
  }
  if ((f->bell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
    rc = -errno;
    goto fail;
  }

  natsOptions *o = NULL;
  natsStatus s = nats_Open(-1);
  if (s == NATS_OK) {
    f->lib_open = true;
    s = natsOptions_Create(&o);
  }
  if (s != NATS_OK) {
    rc = -ENOMEM;
    goto fail;
  }
  char name[128];
  snprintf(name, sizeof(name), "wtrelay %s", f->id);
  char shown[512];
  fed_urls_redact(shown, sizeof(shown), p->urls);
  rc = servers_set(o, p->urls);
  if (rc == 0 && p->creds && p->creds[0] &&
      natsOptions_SetUserCredentialsFromFiles(o, p->creds, NULL) != NATS_OK)
    rc = -EINVAL;
  if (rc < 0) {
    log_error("--nats: bad URL list or credentials file", "nats=%s", LOG_Q(shown));
    natsOptions_Destroy(o);
    goto fail;
  }
  (void)natsOptions_SetName(o, name);
  (void)natsOptions_SetNoEcho(o, true);
  (void)natsOptions_SetMaxReconnect(o, -1);
  (void)natsOptions_SetReconnectWait(o, 500);
  /* a NATS node that dies without closing the connection (power, network)
   * is noticed after 2 unanswered pings 5 s apart, not libnats's default
   * 2 x 2 minutes, and the connection moves to another URL of --nats */
  (void)natsOptions_SetPingInterval(o, 5000);
  (void)natsOptions_SetMaxPingsOut(o, 2);
  (void)natsOptions_UseGlobalMessageDelivery(o, true);
  (void)natsOptions_SetDisconnectedCB(o, on_disconnected, f);
  (void)natsOptions_SetReconnectedCB(o, on_reconnected, f);
  (void)natsOptions_SetClosedCB(o, on_closed, f);
  natsConnection *nc = NULL;
  s = natsConnection_Connect(&nc, o);
  natsOptions_Destroy(o);
  if (s != NATS_OK) {
    log_error("cannot connect to NATS (tls:// URLs: the server's CA must be trusted, e.g. "
              "SSL_CERT_FILE=ca.pem)",
              "nats=%s err=%s", LOG_Q(shown), natsStatus_GetText(s));
    rc = -ECONNREFUSED;
    goto fail;
  }
  f->nc = nc;
  atomic_store(&f->connected, 1);

  /* the id must be unique: nobody may answer its ping */
  char subj[SUBJ_MAX];
  snprintf(subj, sizeof(subj), "%s.relay.%s.ping", f->prefix, f->idtok);
  natsMsg *reply = NULL;
  s = natsConnection_RequestString(&reply, nc, subj, "ping", 1000);
  if (s == NATS_OK) {
    natsMsg_Destroy(reply);
    log_error("another relay connected to NATS has this relay id; give each relay its own "
              "--relay-id",
              "relay_id=%s", LOG_Q(f->id));
    rc = -EADDRINUSE;
    goto fail;
  }
  natsSubscription *ps = NULL;
  if ((s = natsConnection_Subscribe(&ps, nc, subj, on_ping, f)) != NATS_OK ||
      (s = natsConnection_FlushTimeout(nc, 2000)) != NATS_OK) {
    if (ps)
      natsSubscription_Destroy(ps);
    log_error("NATS subscribe failed", "subject=%s err=%s", subj, natsStatus_GetText(s));
    rc = -EIO;
    goto fail;
  }
  f->sub_ping = ps;
  if (p->max_live && (rc = fed_lease_start(f)) < 0)
    goto fail;
  if ((rc = -pthread_create(&f->thread, NULL, pub_main, f)) < 0)
    goto fail;
  f->thread_started = true;
  log_info("federated over NATS", "relay_id=%s prefix=%s nats=%s", LOG_Q(f->id), f->prefix,
           LOG_Q(shown));
  return 0;
fail:
  fed_stop(f);
  return rc;
}

void fed_stop(struct fed *f)
{
  atomic_store(&f->stop, true);
  if (f->thread_started) {
    uint64_t one = 1;
    (void)!write(f->bell, &one, sizeof(one));
    pthread_join(f->thread, NULL);
    f->thread_started = false;
  }
  fed_lease_stop(f);
  for (uint32_t i = 0; f->rooms && i < f->p.max_rooms; i++)
    if (f->rooms[i].active)
      room_unsubscribe(f, &f->rooms[i]);
  if (f->sub_ping) {
    (void)natsSubscription_Unsubscribe(f->sub_ping);
    natsSubscription_Destroy(f->sub_ping);
    f->sub_ping = NULL;
  }
  if (f->nc) {
    natsConnection_Close(f->nc);
    natsConnection_Destroy(f->nc);
    f->nc = NULL;
  }
  if (f->lib_open)
    (void)nats_CloseAndWait(2000); /* no callback runs after this */
  f->lib_open = false;
  for (uint32_t w = 0; f->ws && w < f->p.nworkers; w++) {
    struct fed_worker *fw = &f->ws[w];
    fring_fini(&fw->out);
    fring_fini(&fw->in);
    fring_fini(&fw->lreq);
    free(fw->want);
    free(fw->names);
    free(fw->macs);
  }
  for (uint32_t i = 0; f->rooms && i < f->p.max_rooms; i++)
    free(f->rooms[i].workers);
  if (f->ws)
    pthread_mutex_destroy(&f->lock);
  free(f->ws);
  free(f->rooms);
  free(f->scratch);
  free(f->subj);
  if (f->bell >= 0)
    close(f->bell);
  f->ws = NULL;
  f->rooms = NULL;
  f->scratch = NULL;
  f->subj = NULL;
  f->bell = -1;
}

/* ---- counters ---- */

void fed_counters_read(struct fed *f, struct fed_counters *c)
{
  memset(c, 0, sizeof(*c));
  c->frames_out = ld(&f->frames_out);
  c->bytes_out = ld(&f->bytes_out);
  c->frames_directed = ld(&f->frames_directed);
  c->drop_publish = ld(&f->drop_publish);
  c->drop_down = ld(&f->drop_down_pub);
  c->drop_in_full = ld(&f->drop_in_full);
  c->own_ignored = ld(&f->own_ignored);
  c->reconnects = ld(&f->reconnects);
  c->disconnects = ld(&f->disconnects);
  c->connected = ld(&f->connected);
  c->rooms_subscribed = ld(&f->rooms_subscribed);
  c->lease_claims = ld(&f->lease_claims);
  c->lease_moved = ld(&f->lease_moved);
  c->lease_unavailable = ld(&f->lease_unavailable);
  c->lease_exhausted = ld(&f->lease_exhausted);
  c->lease_req_full = ld(&f->lease_req_full);
  c->lease_renewals = ld(&f->lease_renewals);
  c->lease_renew_lost = ld(&f->lease_renew_lost);
  c->lease_releases = ld(&f->lease_releases);
  c->lease_conflicts = ld(&f->lease_conflicts);
  c->lease_kv_errors = ld(&f->lease_kv_errors);
  c->lease_takeovers_sent = ld(&f->lease_takeovers_sent);
  c->lease_takeovers_received = ld(&f->lease_takeovers_received);
  c->leases_held = ld(&f->leases_held);
  for (uint32_t w = 0; f->ws && w < f->p.nworkers; w++) {
    struct fed_worker *fw = &f->ws[w];
    c->drop_down += ld(&fw->drop_down);
    c->drop_ring_full += ld(&fw->drop_ring_full);
    c->drop_too_big += ld(&fw->drop_too_big);
    c->drop_in_no_room += ld(&fw->drop_in_no_room);
    c->drop_in_switch += ld(&fw->drop_in_switch);
    c->drop_in_bad += ld(&fw->drop_in_bad);
    c->macs_learned += ld(&fw->macs_learned);
    c->macs_expired += ld(&fw->macs_expired);
    c->frames_in += ld(&fw->frames_in);
    c->bytes_in += ld(&fw->bytes_in);
  }
}

#define FL "fed counters"
#define C(fam, help, lbl, key, field)                                                              \
  COUNTER_DEF(struct fed_counters, fam, help, lbl, FL, key, field)
#define G(fam, help, lbl, key, field)                                                              \
  COUNTER_GAUGE(struct fed_counters, fam, help, lbl, FL, key, field)
static const struct counter_def fed_defs[] = {
    C("wtrelay_fed_frames_total",
      "Frames through the federation uplinks: published to NATS (out), switched from NATS (in)",
      "dir=\"out\"", "frames_out", frames_out),
    C("wtrelay_fed_frames_total", NULL, "dir=\"in\"", "frames_in", frames_in),
    C("wtrelay_fed_bytes_total", "Ethernet bytes of those frames", "dir=\"out\"", "bytes_out",
      bytes_out),
    C("wtrelay_fed_bytes_total", NULL, "dir=\"in\"", "bytes_in", bytes_in),
    C("wtrelay_fed_dropped_total",
      "Frames the federation uplinks dropped: NATS not connected, a full or too small ring, a "
      "publish refused, a malformed message, no local copy of the room, refused by the switch",
      "reason=\"nats_down\"", "drop_down", drop_down),
    C("wtrelay_fed_dropped_total", NULL, "reason=\"ring_full\"", "drop_ring_full", drop_ring_full),
    C("wtrelay_fed_dropped_total", NULL, "reason=\"too_big\"", "drop_too_big", drop_too_big),
    C("wtrelay_fed_dropped_total", NULL, "reason=\"publish\"", "drop_publish", drop_publish),
    C("wtrelay_fed_dropped_total", NULL, "reason=\"in_ring_full\"", "drop_in_full", drop_in_full),
    C("wtrelay_fed_dropped_total", NULL, "reason=\"malformed\"", "drop_in_bad", drop_in_bad),
    C("wtrelay_fed_dropped_total", NULL, "reason=\"no_room\"", "drop_in_no_room", drop_in_no_room),
    C("wtrelay_fed_dropped_total", NULL, "reason=\"switch\"", "drop_in_switch", drop_in_switch),
    C("wtrelay_fed_directed_total",
      "Of the frames out, those published to one relay's .to. subject (the destination MAC was "
      "last seen behind it) instead of the room's flood subject",
      NULL, "directed", frames_directed),
    C("wtrelay_fed_own_ignored_total", "Messages from NATS carrying this relay's own id", NULL,
      "own_ignored", own_ignored),
    C("wtrelay_fed_remote_macs_learned_total",
      "MACs learned (or moved) behind another relay, per worker copy", NULL, "macs_learned",
      macs_learned),
    C("wtrelay_fed_remote_macs_expired_total",
      "Remote MACs older than --mac-aging when a unicast looked them up: forgotten, the frame "
      "published on the room's flood subject",
      NULL, "macs_expired", macs_expired),
    C("wtrelay_nats_reconnects_total", "NATS reconnections", NULL, "reconnects", reconnects),
    C("wtrelay_nats_disconnects_total", "NATS connection losses", NULL, "disconnects", disconnects),
    G("wtrelay_nats_connected", "1 when connected to NATS", NULL, "connected", connected),
    G("wtrelay_fed_rooms", "Rooms subscribed on NATS", NULL, "rooms", rooms_subscribed),
    C("wtrelay_fed_lease_claims_total",
      "Cluster lease claims (JetStream key-value) by answer: an address, unavailable (NATS down: "
      "local address kept), exhausted",
      "result=\"address\"", "lease_claims", lease_claims),
    C("wtrelay_fed_lease_claims_total", NULL, "result=\"unavailable\"", "lease_unavailable",
      lease_unavailable),
    C("wtrelay_fed_lease_claims_total", NULL, "result=\"exhausted\"", "lease_exhausted",
      lease_exhausted),
    C("wtrelay_fed_lease_claims_moved_total",
      "claims answered with another address than the local candidate (the MAC's own elsewhere, "
      "or the candidate taken)",
      NULL, "lease_moved", lease_moved),
    C("wtrelay_fed_lease_requests_dropped_total", "lease requests dropped at a full queue", NULL,
      "lease_req_full", lease_req_full),
    C("wtrelay_fed_lease_renewals_total", "cluster lease renewals", NULL, "lease_renewals",
      lease_renewals),
    C("wtrelay_fed_lease_renewals_lost_total", "renewals lost: the key changed under us", NULL,
      "lease_renew_lost", lease_renew_lost),
    C("wtrelay_fed_lease_releases_total", "cluster leases released", NULL, "lease_releases",
      lease_releases),
    C("wtrelay_fed_lease_conflicts_total", "addresses another MAC took while NATS was unreachable",
      NULL, "lease_conflicts", lease_conflicts),
    C("wtrelay_fed_lease_kv_errors_total", "key-value errors of the cluster lease table", NULL,
      "lease_kv_errors", lease_kv_errors),
    C("wtrelay_fed_takeovers_total",
      "Same-MAC takeovers across relays: told to the relay that held the MAC (out), or told by "
      "another relay (in)",
      "dir=\"out\"", "takeovers_sent", lease_takeovers_sent),
    C("wtrelay_fed_takeovers_total", NULL, "dir=\"in\"", "takeovers_received",
      lease_takeovers_received),
    G("wtrelay_fed_leases", "Live cluster leases this relay holds and renews", NULL, "leases",
      leases_held),
};
const struct counter_table fed_counter_table = COUNTER_TABLE(fed_defs, struct fed_counters);
