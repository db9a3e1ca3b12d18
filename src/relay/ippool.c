/*
 * ippool: see include/wtrelay/ippool.h. Index = last - ip, so the first
 * free index is the highest free address. MAC lookups are linear over the
 * range (at most 245 entries for a /24; bounded by init).
 */
#include "wtrelay/ippool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ippool_init(struct ippool *p, uint32_t first_host, uint32_t last_host)
{
  memset(p, 0, sizeof(*p));
  if (last_host < first_host || last_host - first_host >= 65536)
    return -EINVAL;
  p->first = first_host;
  p->last = last_host;
  p->n = last_host - first_host + 1;
  p->e = calloc(p->n, sizeof(*p->e));
  return p->e ? 0 : -ENOMEM;
}

void ippool_fini(struct ippool *p)
{
  free(p->e);
  p->e = NULL;
  p->n = 0;
}

static uint32_t ip_of(const struct ippool *p, uint32_t i)
{
  return p->last - i;
}

void ippool_observe(struct ippool *p, ippool_observer_fn fn, void *ctx)
{
  p->observer = fn;
  p->observer_ctx = ctx;
}

int ippool_seed(struct ippool *p, const uint8_t mac[6], uint32_t ip, int64_t released_ns)
{
  return ippool_seed_for(p, mac, ip, released_ns, 0);
}

int ippool_seed_for(struct ippool *p, const uint8_t mac[6], uint32_t ip, int64_t released_ns,
                    uint64_t client)
{
  if (ip < p->first || ip > p->last)
    return -ERANGE;
  for (uint32_t i = 0; i < p->n; i++)
    if (p->e[i].used_ever && memcmp(p->e[i].mac, mac, 6) == 0)
      return -EEXIST;
  struct ippool_entry *e = &p->e[p->last - ip];
  if (e->used_ever)
    return -EEXIST;
  memcpy(e->mac, mac, 6);
  e->used_ever = true;
  e->live = false;
  e->released_ns = released_ns;
  e->client = client;
  return 0;
}

static bool older(const struct ippool *p, uint32_t i, uint32_t best)
{
  return best == UINT32_MAX || p->e[i].released_ns < p->e[best].released_ns;
}

int ippool_acquire(struct ippool *p, const uint8_t mac[6], uint32_t *ip_out, uint64_t now)
{
  return ippool_acquire_for(p, mac, 0, ip_out, now);
}

/* One pass finds the MAC's own entry, the first fresh one, the oldest
 * expired and the oldest released ones, and the client's holdings with its
 * oldest released address. */
int ippool_acquire_for(struct ippool *p, const uint8_t mac[6], uint64_t client, uint32_t *ip_out,
                       uint64_t now)
{
  uint32_t remembered = UINT32_MAX, fresh = UINT32_MAX, expired = UINT32_MAX, released = UINT32_MAX;
  uint32_t own_old = UINT32_MAX, held = 0;
  for (uint32_t i = 0; i < p->n; i++) {
    struct ippool_entry *e = &p->e[i];
    if (e->used_ever && memcmp(e->mac, mac, 6) == 0) {
      if (e->live)
        return -EBUSY;
      remembered = i;
    }
    if (!e->used_ever && fresh == UINT32_MAX)
      fresh = i;
    if (!e->used_ever)
      continue;
    if (client && e->client == client) {
      held++;
      if (!e->live && older(p, i, own_old))
        own_old = i;
    }
    if (e->live)
      continue;
    if ((int64_t)now - e->released_ns >= (int64_t)p->lease_ns) {
      if (older(p, i, expired))
        expired = i;
    } else if (older(p, i, released)) {
      released = i;
    }
  }
  uint32_t pick = remembered != UINT32_MAX ? remembered
                  : fresh != UINT32_MAX    ? fresh
                  : expired != UINT32_MAX  ? expired
                                           : released;
  uint32_t forget = UINT32_MAX;
  bool recycled = false;
  bool own = remembered != UINT32_MAX && p->e[remembered].client == client;
  if (client && p->client_max && !own && held >= p->client_max) {
    /* at its share: this MAC takes the client's own oldest released
     * address; the MAC's entry of another client (if any) is forgotten,
     * the lease table drops it with the new lease of this MAC */
    if (own_old == UINT32_MAX)
      return -EDQUOT;
    forget = remembered;
    pick = own_old;
    recycled = true;
  }
  if (pick == UINT32_MAX)
    return -ENOSPC;
  struct ippool_entry *e = &p->e[pick];
  struct ippool_event ev = {
      .type = IPPOOL_ACQUIRED, .mac = mac, .ip = ip_of(p, pick), .client = client};
  if (pick != remembered && e->used_ever) {
    ev.reclaimed = true;
    ev.reclaimed_expired = (int64_t)now - e->released_ns >= (int64_t)p->lease_ns;
    ev.share_recycled = recycled;
    memcpy(ev.old_mac, e->mac, 6);
  }
  if (forget != UINT32_MAX)
    memset(&p->e[forget], 0, sizeof(p->e[forget]));
  memcpy(e->mac, mac, 6);
  e->used_ever = true;
  e->live = true;
  e->client = client;
  *ip_out = ev.ip;
  if (p->observer)
    p->observer(p->observer_ctx, p, &ev, now);
  return 0;
}

uint32_t ippool_client_held(const struct ippool *p, uint64_t client)
{
  uint32_t n = 0;
  for (uint32_t i = 0; i < p->n; i++)
    if (p->e[i].used_ever && p->e[i].client == client)
      n++;
  return n;
}

void ippool_release(struct ippool *p, uint32_t ip, uint64_t now)
{
  if (ip < p->first || ip > p->last)
    return;
  struct ippool_entry *e = &p->e[p->last - ip];
  if (!e->live)
    return;
  e->live = false;
  e->released_ns = (int64_t)now;
  if (p->observer) {
    struct ippool_event ev = {.type = IPPOOL_RELEASED, .mac = e->mac, .ip = ip};
    p->observer(p->observer_ctx, p, &ev, now);
  }
}

int ippool_move(struct ippool *p, const uint8_t mac[6], uint32_t from, uint32_t to, uint64_t now)
{
  if (from < p->first || from > p->last || to < p->first || to > p->last)
    return -ERANGE;
  struct ippool_entry *a = &p->e[p->last - from], *b = &p->e[p->last - to];
  if (!a->live || memcmp(a->mac, mac, 6) != 0)
    return -ENOENT;
  if (a == b)
    return 0;
  if (b->live)
    return -EBUSY;
  struct ippool_event ev = {.type = IPPOOL_ACQUIRED, .mac = mac, .ip = to, .client = a->client};
  if (b->used_ever) {
    ev.reclaimed = true;
    ev.reclaimed_expired = (int64_t)now - b->released_ns >= (int64_t)p->lease_ns;
    memcpy(ev.old_mac, b->mac, 6);
  }
  uint64_t client = a->client;
  memset(a, 0, sizeof(*a));
  memcpy(b->mac, mac, 6);
  b->used_ever = true;
  b->live = true;
  b->client = client;
  if (p->observer)
    p->observer(p->observer_ctx, p, &ev, now);
  return 0;
}

bool ippool_lookup_ip(const struct ippool *p, uint32_t ip, uint8_t mac_out[6])
{
  if (ip < p->first || ip > p->last)
    return false;
  const struct ippool_entry *e = &p->e[p->last - ip];
  if (e->live && mac_out)
    memcpy(mac_out, e->mac, 6);
  return e->live;
}

bool ippool_lookup_mac(const struct ippool *p, const uint8_t mac[6], uint32_t *ip)
{
  for (uint32_t i = 0; i < p->n; i++) {
    if (p->e[i].live && memcmp(p->e[i].mac, mac, 6) == 0) {
      *ip = ip_of(p, i);
      return true;
    }
  }
  return false;
}
