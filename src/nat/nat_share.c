/*
 * nat_share: fair shares of the NAT's tables among clients and VMs.
 *
 * Two bounded tables of accounts, allocated at start-up:
 *  - per client (the opaque key gateway_addr_ops.client_of gives for the
 *    switch port a frame came from: one address, or one IPv6 /64): UDP
 *    mappings, TCP connections and TCP connects in progress it holds,
 *    whatever its sessions and VMs. An account exists only while the client
 *    holds something, so the table never needs more entries than the UDP
 *    and TCP tables together (each account holds at least one flow).
 *  - per VM (room + guest address, IPv4 or IPv6 (wtrelay/inany.h), the
 *    key the NAT uses for VMs; a dual-stack VM has one account per
 *    address it uses, bounded by the LAN guard's addresses per session): the same
 *    counts, for the per-VM caps, and a rate of new flows (UDP mappings,
 *    TCP connections, ICMP echo flows) kept as a GCRA token bucket: `tat`
 *    is the time at which the bucket would be full again; a new flow costs
 *    NS_PER_S / rate, and is refused when that would put tat more than
 *    (burst - 1) flows ahead of now. An account lives while the VM holds a
 *    flow or its bucket is refilling; the table has room for every flow
 *    holder plus every ICMP flow, and when it is full anyway (VMs that held
 *    nothing but still refill) the idle account closest to full is reused:
 *    that VM starts again with a full bucket (documented).
 *
 * nat_share_admit() is called by the NAT modules before a new flow takes a
 * slot; it checks every cap first, then the VM's bucket, and only then
 * takes the accounts, so a refused flow holds nothing. The flow remembers
 * its client key and gives the accounts back with nat_share_release()
 * when it ends. Counters per reason; logs rate-limited (gw_log).
 * Never allocates after nat_share_init; never touches sockets.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gateway_internal.h"
#include "wtrelay/hash.h"
#include "wtrelay/timeunit.h"

static struct nat_share_key vm_key(uint32_t room, const union inany *ip)
{
  return (struct nat_share_key){.room = room, .ip = *ip};
}

static struct nat_share_key client_key(uint64_t client)
{
  return (struct nat_share_key){.client = client};
}

static bool key_eq(const struct nat_share_key *a, const struct nat_share_key *b)
{
  return a->client == b->client && a->room == b->room && inany_eq(&a->ip, &b->ip);
}

static int tab_init(struct nat_share_tab *t, uint32_t cap)
{
  uint32_t hcap = 16;
  while (hcap < 2 * cap)
    hcap <<= 1;
  t->cap = cap;
  t->e = calloc(cap ? cap : 1, sizeof(*t->e));
  t->hash = calloc(hcap, sizeof(*t->hash));
  if (!t->e || !t->hash)
    return -ENOMEM;
  t->mask = hcap - 1;
  /* free list through `next`, index + 1 */
  for (uint32_t i = 0; i < cap; i++)
    t->e[i].next = i + 1 < cap ? i + 2 : 0;
  t->free_head = cap ? 1 : 0;
  t->nused = 0;
  return 0;
}

static void tab_fini(struct nat_share_tab *t)
{
  free(t->e);
  free(t->hash);
  memset(t, 0, sizeof(*t));
}

static uint32_t *tab_head(const struct nat_share_tab *t, const struct nat_share_key *key)
{
  uint64_t h = hash_mix64(key->client ^ ((uint64_t)key->room << 32));
  for (int i = 0; i < 4; i++)
    h = hash_mix64(h ^ key->ip.w[i]);
  return &t->hash[h & t->mask];
}

static struct nat_share_ent *tab_find(const struct nat_share_tab *t,
                                      const struct nat_share_key *key)
{
  for (uint32_t i = *tab_head(t, key); i; i = t->e[i - 1].next)
    if (key_eq(&t->e[i - 1].key, key))
      return &t->e[i - 1];
  return NULL;
}

static void tab_free(struct nat_share_tab *t, struct nat_share_ent *e)
{
  uint32_t idx = (uint32_t)(e - t->e) + 1;
  uint32_t *pp = tab_head(t, &e->key);
  while (*pp && *pp != idx)
    pp = &t->e[*pp - 1].next;
  if (*pp == idx)
    *pp = e->next;
  memset(e, 0, sizeof(*e));
  e->next = t->free_head;
  t->free_head = idx;
  t->nused--;
}

static bool ent_idle(const struct nat_share_ent *e)
{
  for (int k = 0; k < NAT_SHARE_KINDS; k++)
    if (e->n[k])
      return false;
  return true;
}

/* The VM table is full: reuse the idle account whose bucket is fullest
 * (smallest tat). There is always one: accounts that hold flows are fewer
 * than the UDP and TCP tables together, and the table is larger. */
static struct nat_share_ent *vm_evict(struct gateway *gw)
{
  struct nat_share_tab *t = &gw->share_vms;
  struct nat_share_ent *best = NULL;
  for (uint32_t i = 0; i < t->cap; i++) {
    struct nat_share_ent *e = &t->e[i];
    if (e->used && ent_idle(e) && (!best || e->tat < best->tat))
      best = e;
  }
  if (!best)
    return NULL;
  gw->ctr.share_vm_evicted++;
  tab_free(t, best);
  return best;
}

static struct nat_share_ent *tab_get(struct gateway *gw, struct nat_share_tab *t,
                                     const struct nat_share_key *key)
{
  struct nat_share_ent *e = tab_find(t, key);
  if (e)
    return e;
  if (!t->free_head && (t != &gw->share_vms || !vm_evict(gw)))
    return NULL;
  uint32_t idx = t->free_head;
  e = &t->e[idx - 1];
  t->free_head = e->next;
  memset(e, 0, sizeof(*e));
  e->used = true;
  e->key = *key;
  uint32_t *head = tab_head(t, key);
  e->next = *head;
  *head = idx;
  t->nused++;
  return e;
}

/* The client accounts: the process's shared table (locked by the caller
 * through clients_lock) or this gateway's own. */
static struct nat_share_tab *clients(struct gateway *gw)
{
  return gw->p.shared_clients ? &gw->p.shared_clients->tab : &gw->share_clients;
}

static void clients_lock(struct gateway *gw)
{
  if (gw->p.shared_clients)
    pthread_mutex_lock(&gw->p.shared_clients->lock);
}

static void clients_unlock(struct gateway *gw)
{
  if (gw->p.shared_clients)
    pthread_mutex_unlock(&gw->p.shared_clients->lock);
}

int nat_share_clients_init(struct nat_share_clients *c, uint32_t cap)
{
  memset(c, 0, sizeof(*c));
  int rc = tab_init(&c->tab, cap);
  if (rc < 0) {
    tab_fini(&c->tab);
    return rc;
  }
  pthread_mutex_init(&c->lock, NULL);
  return 0;
}

void nat_share_clients_fini(struct nat_share_clients *c)
{
  tab_fini(&c->tab);
  pthread_mutex_destroy(&c->lock);
}

uint32_t gateway_share_clients(const struct gateway *gw)
{
  struct nat_share_clients *sc = gw->p.shared_clients;
  if (!sc)
    return gw->share_clients.nused;
  if (!gw->p.report_shared)
    return 0;
  pthread_mutex_lock(&sc->lock);
  uint32_t n = sc->tab.nused;
  pthread_mutex_unlock(&sc->lock);
  return n;
}

int nat_share_init(struct gateway *gw)
{
  int rc;
  uint32_t flows = gw->p.max_udp_flows + gw->p.max_tcp_conns;
  if ((rc = tab_init(&gw->share_clients, gw->p.shared_clients ? 0 : flows)) < 0 ||
      (rc = tab_init(&gw->share_vms, flows + gw->p.max_icmp_flows + 16)) < 0)
    return rc;
  return 0;
}

void nat_share_fini(struct gateway *gw)
{
  tab_fini(&gw->share_clients);
  tab_fini(&gw->share_vms);
}

uint64_t nat_share_client_of(const struct gateway *gw, const struct gw_pkt *pkt)
{
  if (!gw->addr || !gw->addr->client_of)
    return 0;
  return gw->addr->client_of(gw->addr_ctx, pkt->room, pkt->src_port);
}

static const char *const proto_name[] = {"udp", "tcp", "icmp"};

static int refuse(struct gateway *gw, uint64_t *ctr, const char *detail)
{
  (*ctr)++;
  gw_log(gw, "NAT flow refused", detail);
  return -EDQUOT;
}

/* A cap on what is in progress (TCP connects): passes again as soon as
 * one completes, so the caller drops the SYN and lets the guest's own
 * retransmission (1 s, 3 s, ...) try again, where a reset would fail the
 * guest's connect (a VM opening 100 connections at once to a slow host). */
static int busy(struct gateway *gw, uint64_t *ctr, const char *detail)
{
  (*ctr)++;
  gw_log(gw, "NAT SYN dropped, the guest will retry", detail);
  return -EBUSY;
}

/* The VM's bucket: room for one more flow now? Takes it when so. */
static bool bucket_take(const struct gateway *gw, struct nat_share_ent *v, uint64_t now)
{
  if (!gw->p.nat_new_rate)
    return true;
  uint64_t cost = NS_PER_S / gw->p.nat_new_rate;
  uint64_t burst = gw->p.nat_new_burst ? gw->p.nat_new_burst : 1;
  uint64_t tat = v->tat > now ? v->tat : now;
  if (tat - now > (burst - 1) * cost)
    return false;
  v->tat = tat + cost;
  return true;
}

static int admit(struct gateway *gw, const struct gw_pkt *pkt, enum nat_share_proto proto,
                 uint64_t client, uint64_t *client_out)
{
  const struct gateway_params *p = &gw->p;
  union inany src = gw_pkt_src(pkt);
  struct nat_share_key ck = client_key(client), vk = vm_key(pkt->room, &src);
  struct nat_share_ent *c = client ? tab_find(clients(gw), &ck) : NULL;
  struct nat_share_ent *v = tab_find(&gw->share_vms, &vk);
  uint32_t zero[NAT_SHARE_KINDS] = {0};
  const uint32_t *cn = c ? c->n : zero, *vn = v ? v->n : zero;
  *client_out = 0;

  if (proto == NAT_SHARE_P_UDP) {
    if (p->max_udp_flows_per_vm && vn[NAT_SHARE_UDP] >= p->max_udp_flows_per_vm)
      return refuse(gw, &gw->ctr.udp_flows_full, "UDP mappings per VM (--max-udp-flows-per-vm)");
    if (client && p->max_udp_flows_per_client && cn[NAT_SHARE_UDP] >= p->max_udp_flows_per_client)
      return refuse(gw, &gw->ctr.share_udp_client,
                    "UDP mappings per client (--max-udp-flows-per-client)");
  } else if (proto == NAT_SHARE_P_TCP) {
    if (p->max_tcp_conns_per_vm && vn[NAT_SHARE_TCP] >= p->max_tcp_conns_per_vm)
      return refuse(gw, &gw->ctr.tcp_full, "TCP connections per VM (--max-tcp-conns-per-vm)");
    if (p->max_tcp_pending_per_vm && vn[NAT_SHARE_PENDING] >= p->max_tcp_pending_per_vm)
      return busy(gw, &gw->ctr.share_pending_vm,
                  "TCP connects in progress per VM (--max-tcp-pending-per-vm)");
    if (client && p->max_tcp_conns_per_client && cn[NAT_SHARE_TCP] >= p->max_tcp_conns_per_client)
      return refuse(gw, &gw->ctr.share_tcp_client,
                    "TCP connections per client (--max-tcp-conns-per-client)");
    if (client && p->max_tcp_pending_per_client &&
        cn[NAT_SHARE_PENDING] >= p->max_tcp_pending_per_client)
      return busy(gw, &gw->ctr.share_pending_client,
                  "TCP connects in progress per client (--max-tcp-pending-per-client)");
  }

  /* every cap passed: the rate, then the accounts */
  if (proto == NAT_SHARE_P_ICMP && !p->nat_new_rate)
    return 0; /* nothing to rate, nothing to hold */
  if (!v && !(v = tab_get(gw, &gw->share_vms, &vk)))
    return refuse(gw, &gw->ctr.share_table_full, "per-VM account table full");
  if (!bucket_take(gw, v, *gw->now)) {
    gw->ctr.rate_limited[proto]++;
    gw_log(gw, "NAT flow refused: new flows per VM over --nat-new-rate", proto_name[proto]);
    return -EAGAIN;
  }
  if (proto == NAT_SHARE_P_ICMP)
    return 0; /* echo flows are rated, not held here */
  if (client && !c && !(c = tab_get(gw, clients(gw), &ck)))
    return refuse(gw, &gw->ctr.share_table_full, "per-client account table full");
  enum nat_share_kind k = proto == NAT_SHARE_P_UDP ? NAT_SHARE_UDP : NAT_SHARE_TCP;
  v->n[k]++;
  if (c)
    c->n[k]++;
  if (proto == NAT_SHARE_P_TCP) {
    v->n[NAT_SHARE_PENDING]++;
    if (c)
      c->n[NAT_SHARE_PENDING]++;
  }
  *client_out = client;
  return 0;
}

int nat_share_admit(struct gateway *gw, const struct gw_pkt *pkt, enum nat_share_proto proto,
                    uint64_t *client_out)
{
  uint64_t client = nat_share_client_of(gw, pkt);
  clients_lock(gw);
  int rc = admit(gw, pkt, proto, client, client_out);
  clients_unlock(gw);
  return rc;
}

static void put(struct gateway *gw, struct nat_share_tab *t, struct nat_share_ent *e,
                enum nat_share_kind k)
{
  if (!e)
    return;
  if (e->n[k])
    e->n[k]--;
  /* a client account ends with its last flow; a VM account once its
   * bucket is full again too (else the sweep frees it later) */
  if (ent_idle(e) && (t != &gw->share_vms || e->tat <= *gw->now))
    tab_free(t, e);
}

void nat_share_connected(struct gateway *gw, uint64_t client, uint32_t room, const union inany *ip)
{
  struct nat_share_key vk = vm_key(room, ip), ck = client_key(client);
  put(gw, &gw->share_vms, tab_find(&gw->share_vms, &vk), NAT_SHARE_PENDING);
  if (client) {
    clients_lock(gw);
    put(gw, clients(gw), tab_find(clients(gw), &ck), NAT_SHARE_PENDING);
    clients_unlock(gw);
  }
}

void nat_share_release(struct gateway *gw, enum nat_share_proto proto, uint64_t client,
                       uint32_t room, const union inany *ip, bool pending)
{
  if (proto == NAT_SHARE_P_ICMP)
    return;
  if (pending)
    nat_share_connected(gw, client, room, ip);
  enum nat_share_kind k = proto == NAT_SHARE_P_UDP ? NAT_SHARE_UDP : NAT_SHARE_TCP;
  struct nat_share_key vk = vm_key(room, ip), ck = client_key(client);
  put(gw, &gw->share_vms, tab_find(&gw->share_vms, &vk), k);
  if (client) {
    clients_lock(gw);
    put(gw, clients(gw), tab_find(clients(gw), &ck), k);
    clients_unlock(gw);
  }
}

void nat_share_sweep(struct gateway *gw, uint64_t now)
{
  struct nat_share_tab *t = &gw->share_vms;
  for (uint32_t i = 0; i < t->cap; i++)
    if (t->e[i].used && ent_idle(&t->e[i]) && t->e[i].tat <= now)
      tab_free(t, &t->e[i]);
}

uint32_t nat_share_count(struct gateway *gw, uint64_t client, enum nat_share_kind k)
{
  clients_lock(gw);
  struct nat_share_key ck = client_key(client);
  const struct nat_share_ent *e = tab_find(clients(gw), &ck);
  uint32_t n = e ? e->n[k] : 0;
  clients_unlock(gw);
  return n;
}

uint32_t nat_share_vm_count(const struct gateway *gw, uint32_t room, const union inany *ip,
                            enum nat_share_kind k)
{
  struct nat_share_key vk = vm_key(room, ip);
  const struct nat_share_ent *e = tab_find(&gw->share_vms, &vk);
  return e ? e->n[k] : 0;
}

void gateway_vm_flows(const struct gateway *gw, uint32_t room, uint32_t ip,
                      struct gateway_vm_flows *out)
{
  /* UDP and TCP from the VM's account (every held flow is counted there,
   * whatever the caps); echo flows are not held in accounts, so they come
   * from the flow table's VM index */
  union inany a = inany_from4(ip);
  out->udp = nat_share_vm_count(gw, room, &a, NAT_SHARE_UDP);
  out->tcp = nat_share_vm_count(gw, room, &a, NAT_SHARE_TCP);
  out->icmp = flowtab_vm_count(gw->flows, FT_ICMP, room, &a, UINT32_MAX);
}
