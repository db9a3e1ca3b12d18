/*
 * switch: virtual Ethernet switch. See include/wtrelay/switch.h.
 *
 * The MAC table is open addressing with linear probing and backward-shift
 * deletion (no tombstones), at most half full. Aged entries are ignored on
 * lookup and removed by switch_age() (the owner calls it periodically) or
 * replaced when their MAC is learned again. Flooding walks a snapshot of
 * the domain's ports, because a port may be detached while a frame is
 * delivered to another (its connection failed inside the send).
 *
 * Uplinks (see the header's rules) change four places: the bound in
 * learn(), the exemption at attach, the skips in flood(), and the checks
 * before a unicast or routed delivery. Each refusal has its own counter.
 */
#include "wtrelay/switch.h"
#include "wtrelay/hash.h"
#include "wtrelay/timeunit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/counter.h"

#define ETH_HLEN 14
#define ETH_P_IPV4 0x0800
#define IPV4_MIN 20

static uint64_t mac_u64(const uint8_t m[6])
{
  return (uint64_t)m[0] << 40 | (uint64_t)m[1] << 32 | (uint64_t)m[2] << 24 | (uint64_t)m[3] << 16 |
         (uint64_t)m[4] << 8 | m[5];
}

static uint32_t mac_home(const struct switch_table *sw, uint32_t domain, const uint8_t m[6])
{
  uint64_t k = mac_u64(m) ^ ((uint64_t)domain * UINT64_C(0x9e3779b97f4a7c15));
  return (uint32_t)hash_mix64(k) & sw->mac_mask;
}

int switch_init(struct switch_table *sw, const struct switch_params *p)
{
  memset(sw, 0, sizeof(*sw));
  if (!p->max_ports || !p->max_domains || !p->max_macs || p->max_macs > (1u << 28))
    return -EINVAL;
  sw->p = *p;
  uint32_t cap = 16;
  while (cap < 2 * p->max_macs)
    cap <<= 1;
  sw->mac_mask = cap - 1;
  sw->ports = calloc(p->max_ports, sizeof(*sw->ports));
  sw->domains = calloc(p->max_domains, sizeof(*sw->domains));
  sw->macs = calloc(cap, sizeof(*sw->macs));
  sw->scratch = calloc((size_t)p->max_ports * SWITCH_MAX_DEPTH, sizeof(*sw->scratch));
  if (!sw->ports || !sw->domains || !sw->macs || !sw->scratch) {
    switch_fini(sw);
    return -ENOMEM;
  }
  for (uint32_t i = 0; i < p->max_domains; i++)
    sw->domains[i].head = SWITCH_NO_PORT;
  return 0;
}

void switch_fini(struct switch_table *sw)
{
  free(sw->ports);
  free(sw->domains);
  free(sw->macs);
  free(sw->scratch);
  sw->ports = NULL;
  sw->domains = NULL;
  sw->macs = NULL;
  sw->scratch = NULL;
}

/* ---- MAC table ---- */

static struct switch_mac *mac_find(struct switch_table *sw, uint32_t domain, const uint8_t m[6],
                                   uint32_t *slot)
{
  for (uint32_t i = mac_home(sw, domain, m);; i = (i + 1) & sw->mac_mask) {
    struct switch_mac *e = &sw->macs[i];
    if (!e->used) {
      *slot = i;
      return NULL;
    }
    if (e->domain == domain && memcmp(e->mac, m, 6) == 0) {
      *slot = i;
      return e;
    }
  }
}

/* Removes entry i, keeping every probe chain intact (backward shift). */
static void mac_remove(struct switch_table *sw, uint32_t i)
{
  struct switch_mac *e = &sw->macs[i];
  sw->ports[e->port].nmacs--;
  sw->kind[sw->ports[e->port].kind].macs--;
  sw->domains[e->domain].nmacs--;
  sw->nmacs--;
  for (uint32_t j = i;;) {
    j = (j + 1) & sw->mac_mask;
    struct switch_mac *n = &sw->macs[j];
    if (!n->used)
      break;
    uint32_t k = mac_home(sw, n->domain, n->mac);
    /* n stays when its home lies cyclically in (i, j]. */
    bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (stays)
      continue;
    sw->macs[i] = *n;
    i = j;
  }
  sw->macs[i].used = false;
}

static bool is_uplink(const struct switch_port *pt)
{
  return pt->kind == SWITCH_PORT_UPLINK;
}

/* How many MACs may be learned on the port. */
static uint32_t port_mac_limit(const struct switch_table *sw, const struct switch_port *pt)
{
  if (!is_uplink(pt))
    return sw->p.max_macs_per_port;
  return sw->p.max_macs_per_uplink ? sw->p.max_macs_per_uplink : sw->p.max_macs_per_domain;
}

/* May a frame from port `from` leave through port `to`? Counts the reason
 * when not: split horizon (uplink to uplink), and the router port and
 * uplinks never meet. */
static bool may_pass(struct switch_table *sw, const struct switch_port *from,
                     const struct switch_port *to)
{
  if (is_uplink(from) && is_uplink(to)) {
    sw->ctr.split_horizon++;
    return false;
  }
  if ((is_uplink(from) && to->router) || (from->router && is_uplink(to))) {
    sw->ctr.drop_uplink_router++;
    return false;
  }
  return true;
}

static bool aged(const struct switch_table *sw, const struct switch_mac *e, uint64_t now)
{
  return !e->fixed && now - e->seen_ns >= sw->p.aging_ns;
}

static void learn(struct switch_table *sw, uint32_t port, const uint8_t src[6], uint64_t now)
{
  struct switch_port *pt = &sw->ports[port];
  uint32_t slot;
  struct switch_mac *e = mac_find(sw, pt->domain, src, &slot);
  if (e) {
    if (e->fixed && e->port != port)
      return; /* nobody takes over a pinned address */
    if (e->port != port) {
      if (pt->nmacs >= port_mac_limit(sw, pt)) {
        sw->ctr.learn_full_port++;
        sw->kind[pt->kind].learn_full++;
        return;
      }
      struct switch_port *old = &sw->ports[e->port];
      old->nmacs--;
      sw->kind[old->kind].macs--;
      pt->nmacs++;
      sw->kind[pt->kind].macs++;
      e->port = port;
      sw->ctr.moved++;
      sw->kind[pt->kind].moved_in++;
    }
    e->seen_ns = now;
    return;
  }
  if (pt->nmacs >= port_mac_limit(sw, pt)) {
    sw->ctr.learn_full_port++;
    sw->kind[pt->kind].learn_full++;
    return;
  }
  if (sw->domains[pt->domain].nmacs >= sw->p.max_macs_per_domain) {
    sw->ctr.learn_full_domain++;
    return;
  }
  if (sw->nmacs >= sw->p.max_macs) {
    sw->ctr.learn_full_table++;
    return;
  }
  e = &sw->macs[slot];
  memcpy(e->mac, src, 6);
  e->used = true;
  e->fixed = false;
  e->domain = pt->domain;
  e->port = port;
  e->seen_ns = now;
  pt->nmacs++;
  sw->domains[pt->domain].nmacs++;
  sw->nmacs++;
  sw->ctr.learned++;
  sw->kind[pt->kind].learned++;
  sw->kind[pt->kind].macs++;
}

int switch_port_pin_mac(struct switch_table *sw, uint32_t port, const uint8_t mac[6])
{
  if (port >= sw->p.max_ports || !sw->ports[port].used)
    return -EINVAL;
  learn(sw, port, mac, 0);
  uint32_t slot;
  struct switch_mac *e = mac_find(sw, sw->ports[port].domain, mac, &slot);
  if (!e || e->port != port)
    return -ENOSPC;
  e->fixed = true;
  return 0;
}

uint32_t switch_lookup(struct switch_table *sw, uint32_t domain, const uint8_t mac[6], uint64_t now)
{
  uint32_t slot;
  struct switch_mac *e = mac_find(sw, domain, mac, &slot);
  return e && !aged(sw, e, now) ? e->port : SWITCH_NO_PORT;
}

uint32_t switch_age(struct switch_table *sw, uint64_t now)
{
  uint32_t n = 0;
  for (uint32_t i = 0; i <= sw->mac_mask;) {
    struct switch_mac *e = &sw->macs[i];
    if (e->used && aged(sw, e, now)) {
      mac_remove(sw, i); /* another entry may have moved into i */
      n++;
      continue;
    }
    i++;
  }
  sw->ctr.aged += n;
  return n;
}

/* ---- ports ---- */

static int attach(struct switch_table *sw, uint32_t domain, enum switch_port_kind kind,
                  const struct switch_port_ops *ops, void *ctx, uint32_t *port)
{
  if (domain >= sw->p.max_domains)
    return -EINVAL;
  for (uint32_t i = 0; i < sw->p.max_ports; i++) {
    struct switch_port *pt = &sw->ports[i];
    if (pt->used)
      continue;
    memset(pt, 0, sizeof(*pt));
    pt->used = true;
    pt->kind = (uint8_t)kind;
    /* an uplink's frames were limited where they entered the LAN */
    pt->flood_exempt = kind == SWITCH_PORT_UPLINK;
    pt->domain = domain;
    pt->ops = ops;
    pt->ctx = ctx;
    struct switch_domain *d = &sw->domains[domain];
    pt->prev = SWITCH_NO_PORT;
    pt->next = d->head;
    if (d->head != SWITCH_NO_PORT)
      sw->ports[d->head].prev = i;
    d->head = i;
    d->nports++;
    d->nuplinks += kind == SWITCH_PORT_UPLINK;
    *port = i;
    return 0;
  }
  return -ENOSPC;
}

int switch_port_attach(struct switch_table *sw, uint32_t domain, const struct switch_port_ops *ops,
                       void *ctx, uint32_t *port)
{
  return attach(sw, domain, SWITCH_PORT_LOCAL, ops, ctx, port);
}

int switch_uplink_attach(struct switch_table *sw, uint32_t domain,
                         const struct switch_port_ops *ops, void *ctx, uint32_t *port)
{
  return attach(sw, domain, SWITCH_PORT_UPLINK, ops, ctx, port);
}

enum switch_port_kind switch_port_kind(const struct switch_table *sw, uint32_t port)
{
  if (port >= sw->p.max_ports || !sw->ports[port].used)
    return SWITCH_PORT_LOCAL;
  return (enum switch_port_kind)sw->ports[port].kind;
}

void switch_port_detach(struct switch_table *sw, uint32_t port)
{
  if (port >= sw->p.max_ports || !sw->ports[port].used)
    return;
  struct switch_port *pt = &sw->ports[port];
  for (uint32_t i = 0; pt->nmacs && i <= sw->mac_mask;) {
    if (sw->macs[i].used && sw->macs[i].port == port) {
      mac_remove(sw, i);
      continue;
    }
    i++;
  }
  struct switch_domain *d = &sw->domains[pt->domain];
  if (pt->prev != SWITCH_NO_PORT)
    sw->ports[pt->prev].next = pt->next;
  else
    d->head = pt->next;
  if (pt->next != SWITCH_NO_PORT)
    sw->ports[pt->next].prev = pt->prev;
  d->nports--;
  d->nuplinks -= is_uplink(pt);
  pt->used = false;
}

uint32_t switch_port_ip(const struct switch_table *sw, uint32_t port)
{
  return port < sw->p.max_ports && sw->ports[port].used ? sw->ports[port].ip : 0;
}

void switch_port_set_addr(struct switch_table *sw, uint32_t port, const uint8_t mac[6], uint32_t ip)
{
  if (port >= sw->p.max_ports || !sw->ports[port].used || is_uplink(&sw->ports[port]))
    return;
  memcpy(sw->ports[port].mac, mac, 6);
  sw->ports[port].ip = ip;
  sw->ports[port].router = memcmp(mac, sw->p.router_mac, 6) == 0;
}

void switch_port_set_alias(struct switch_table *sw, uint32_t port, uint32_t ip)
{
  if (port >= sw->p.max_ports || !sw->ports[port].used || is_uplink(&sw->ports[port]))
    return;
  sw->ports[port].alias = ip;
}

/* ---- forwarding ---- */

static int deliver(struct switch_table *sw, uint32_t port, const struct switch_frame *f)
{
  struct switch_port *pt = &sw->ports[port];
  struct switch_kind_counters *k = &sw->kind[pt->kind];
  int rc = pt->ops->deliver(pt->ctx, f);
  if (rc < 0) {
    sw->ctr.deliver_failed++;
    return 0;
  }
  if (rc == SWITCH_DELIVER_SKIPPED)
    return 0;
  /* The port may have been detached inside deliver. */
  if (pt->used)
    pt->frames_out++;
  sw->ctr.delivered++;
  k->frames_out++;
  k->flood_copies += f->flood;
  return 1;
}

void switch_port_flood_exempt(struct switch_table *sw, uint32_t port)
{
  if (port < sw->p.max_ports && sw->ports[port].used)
    sw->ports[port].flood_exempt = true;
}

/* Token bucket in nanoframes: refilled at flood_rate per second (elapsed
 * time clamped so the product cannot overflow), flood_burst deep, full at
 * the port's first flood. */
bool switch_flood_allowed(struct switch_table *sw, uint32_t port, uint64_t now)
{
  struct switch_port *pt = &sw->ports[port];
  if (!sw->p.flood_rate || pt->flood_exempt)
    return true;
  uint64_t depth = (uint64_t)(sw->p.flood_burst ? sw->p.flood_burst : 1) * NS_PER_S;
  if (!pt->flood_started) {
    pt->flood_started = true;
    pt->flood_tokens = depth;
  } else if (now > pt->flood_last_ns) {
    uint64_t dt = now - pt->flood_last_ns;
    if (dt > depth / sw->p.flood_rate)
      dt = depth / sw->p.flood_rate;
    pt->flood_tokens += dt * sw->p.flood_rate;
    if (pt->flood_tokens > depth)
      pt->flood_tokens = depth;
  }
  pt->flood_last_ns = now;
  if (pt->flood_tokens < NS_PER_S) {
    pt->floods_limited++;
    sw->ctr.flood_limited++;
    return false;
  }
  pt->flood_tokens -= NS_PER_S;
  return true;
}

static int flood(struct switch_table *sw, uint32_t from, const struct switch_frame *in,
                 uint64_t now)
{
  if (!switch_flood_allowed(sw, from, now))
    return -ENOBUFS;
  struct switch_frame copy = *in;
  const struct switch_frame *f = &copy;
  copy.flood = true;
  const struct switch_port *src = &sw->ports[from];
  uint32_t domain = src->domain, n = 0;
  uint32_t *snap = sw->scratch + (size_t)(sw->depth - 1) * sw->p.max_ports;
  for (uint32_t i = sw->domains[domain].head; i != SWITCH_NO_PORT; i = sw->ports[i].next)
    if (i != from && may_pass(sw, src, &sw->ports[i]))
      snap[n++] = i;
  int delivered = 0;
  for (uint32_t k = 0; k < n; k++) {
    struct switch_port *pt = &sw->ports[snap[k]];
    if (pt->used && pt->domain == domain)
      delivered += deliver(sw, snap[k], f);
  }
  sw->ctr.floods++;
  sw->ctr.flood_copies += (uint64_t)n;
  return delivered;
}

/* A routed frame for an address no local port holds goes, unchanged, to
 * every uplink of the domain: the side that holds the address routes it.
 * A flood in all but name, so it takes one of the sender's tokens. */
static int route_to_uplinks(struct switch_table *sw, uint32_t from, const struct switch_frame *f,
                            uint64_t now)
{
  if (!switch_flood_allowed(sw, from, now))
    return -ENOBUFS;
  uint32_t domain = sw->ports[from].domain, n = 0;
  uint32_t *snap = sw->scratch + (size_t)(sw->depth - 1) * sw->p.max_ports;
  for (uint32_t i = sw->domains[domain].head; i != SWITCH_NO_PORT; i = sw->ports[i].next)
    if (is_uplink(&sw->ports[i]))
      snap[n++] = i;
  int delivered = 0;
  for (uint32_t k = 0; k < n; k++) {
    struct switch_port *pt = &sw->ports[snap[k]];
    if (pt->used && pt->domain == domain && is_uplink(pt))
      delivered += deliver(sw, snap[k], f);
  }
  sw->ctr.routed_uplink++;
  return delivered;
}

/* The seed's shortcut: IPv4 to the router's MAC for an address of this
 * domain goes to the port holding that address, with the header a router
 * would write; an address held by no local port goes to the uplinks (from
 * a local port), or nowhere (from an uplink). Returns deliveries, or
 * -ENOENT when it does not apply. */
static int route(struct switch_table *sw, uint32_t from, const uint8_t *hdr, size_t hlen,
                 const struct switch_frame *f, uint64_t now)
{
  if (hlen < ETH_HLEN + IPV4_MIN || memcmp(hdr, sw->p.router_mac, 6) != 0 ||
      ((uint32_t)hdr[12] << 8 | hdr[13]) != ETH_P_IPV4 || (hdr[14] >> 4) != 4)
    return -ENOENT;
  uint32_t dst =
      (uint32_t)hdr[30] << 24 | (uint32_t)hdr[31] << 16 | (uint32_t)hdr[32] << 8 | hdr[33];
  if ((dst & sw->p.netmask) != sw->p.subnet)
    return -ENOENT;
  const struct switch_port *src = &sw->ports[from];
  uint32_t to = SWITCH_NO_PORT;
  for (uint32_t i = sw->domains[src->domain].head; i != SWITCH_NO_PORT; i = sw->ports[i].next) {
    if ((sw->ports[i].ip == dst || (dst && sw->ports[i].alias == dst)) &&
        !is_uplink(&sw->ports[i])) {
      to = i;
      break;
    }
  }
  if (to == SWITCH_NO_PORT && is_uplink(src)) {
    sw->ctr.drop_uplink_router++; /* not ours: never to our gateway */
    return 0;
  }
  if (to == SWITCH_NO_PORT && sw->domains[src->domain].nuplinks && !src->router)
    return route_to_uplinks(sw, from, f, now);
  if (to == SWITCH_NO_PORT || to == from)
    return -ENOENT;
  if (!may_pass(sw, src, &sw->ports[to]))
    return 0;
  if (memcmp(sw->ports[to].mac, sw->p.router_mac, 6) == 0) {
    /* addressed to the router itself (the gateway port): as it is */
    sw->ctr.unicast++;
    return deliver(sw, to, f);
  }
  uint8_t eth[12];
  memcpy(eth, sw->ports[to].mac, 6);
  memcpy(eth + 6, sw->p.router_mac, 6);
  /* iov = new 12-byte header + the frame from byte 12 on. */
  struct iovec iov[SWITCH_FRAME_IOV_MAX + 1];
  int n = 0;
  size_t skip = 12;
  iov[n].iov_base = eth;
  iov[n++].iov_len = sizeof(eth);
  for (int i = 0; i < f->iovcnt; i++) {
    size_t l = f->iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    if (n > SWITCH_FRAME_IOV_MAX)
      return -ENOENT;
    iov[n].iov_base = (uint8_t *)f->iov[i].iov_base + skip;
    iov[n++].iov_len = l - skip;
    skip = 0;
  }
  struct switch_frame rf = {.iov = iov, .iovcnt = n, .len = f->len, .src_port = from};
  sw->ctr.routed++;
  return deliver(sw, to, &rf);
}

static int input(struct switch_table *sw, uint32_t port, const struct switch_frame *f,
                 uint64_t now);

int switch_input(struct switch_table *sw, uint32_t port, const struct switch_frame *in,
                 uint64_t now)
{
  if (sw->depth >= SWITCH_MAX_DEPTH) {
    sw->ctr.drop_too_deep++;
    return -ELOOP;
  }
  struct switch_frame f = *in;
  f.src_port = port;
  f.flood = false;
  sw->depth++;
  int rc = input(sw, port, &f, now);
  sw->depth--;
  return rc;
}

static int input(struct switch_table *sw, uint32_t port, const struct switch_frame *f, uint64_t now)
{
  if (port >= sw->p.max_ports || !sw->ports[port].used) {
    sw->ctr.drop_bad_port++;
    return -EINVAL;
  }
  uint8_t hdr[ETH_HLEN + IPV4_MIN];
  size_t hlen = 0;
  for (int i = 0; i < f->iovcnt && hlen < sizeof(hdr); i++) {
    size_t take = f->iov[i].iov_len;
    if (take > sizeof(hdr) - hlen)
      take = sizeof(hdr) - hlen;
    memcpy(hdr + hlen, f->iov[i].iov_base, take);
    hlen += take;
  }
  if (hlen < ETH_HLEN || f->len < ETH_HLEN) {
    sw->ctr.drop_runt++;
    return -EINVAL;
  }
  const uint8_t *dst = hdr, *src = hdr + 6;
  if (src[0] & 1) {
    sw->ctr.drop_src_multicast++;
    return -EINVAL;
  }
  struct switch_port *pt = &sw->ports[port];
  if (is_uplink(pt)) {
    /* an address pinned here (a session's, the gateway's) is not taken
     * from elsewhere, nor used by frames from there */
    uint32_t slot;
    const struct switch_mac *e = mac_find(sw, pt->domain, src, &slot);
    if (e && e->fixed && e->port != port) {
      sw->ctr.drop_uplink_pinned_src++;
      return -EPERM;
    }
  }
  pt->frames_in++;
  sw->ctr.frames_in++;
  sw->kind[pt->kind].frames_in++;
  learn(sw, port, src, now);

  if (dst[0] & 1) /* broadcast and multicast */
    return flood(sw, port, f, now);
  int rc = route(sw, port, hdr, hlen, f, now);
  if (rc != -ENOENT)
    return rc;
  uint32_t to = switch_lookup(sw, pt->domain, dst, now);
  if (to == SWITCH_NO_PORT)
    return flood(sw, port, f, now);
  if (to == port) {
    sw->ctr.drop_same_port++;
    return 0;
  }
  if (!may_pass(sw, pt, &sw->ports[to]))
    return 0;
  sw->ctr.unicast++;
  return deliver(sw, to, f);
}

/* ---- counters ---- */

/* The switch's counters for /metrics and the exit log, one row per field
 * (test_counter checks that every field has exactly one). The first
 * family is storm control's, which the relay's table ends with: metrics.c
 * writes the two tables one after the other, so the sample joins it. */
#define S(fam, help, labels, key, field)                                                           \
  COUNTER_DEF(struct switch_counters, fam, help, labels, "switch counters", key, field)
#define FWD(how, key, field)                                                                       \
  S("wtrelay_switch_forwarded_total", NULL, "how=\"" how "\"", key, field)
#define DR(reason, key, field)                                                                     \
  S("wtrelay_switch_drops_total", NULL, "reason=\"" reason "\"", key, field)
#define MACF(reason, key, field)                                                                   \
  S("wtrelay_switch_macs_refused_total", NULL, "reason=\"" reason "\"", key, field)
static const struct counter_def switch_counter_defs[] = {
    S("wtrelay_storm_control_drops_total",
      "flooded frames dropped by storm control: at the sender's rate limit (frames), or "
      "flood copies a receiver's half-full datagram queue refused (copies)",
      "reason=\"rate_limited\"", "flood_limited", flood_limited),
    S("wtrelay_switch_frames_total", "frames into the switch (in) and delivered to a port (out)",
      "dir=\"in\"", "frames_in", frames_in),
    S("wtrelay_switch_frames_total", NULL, "dir=\"out\"", "delivered", delivered),
    S("wtrelay_switch_forwarded_total",
      "frames in by how they were forwarded: to one port, flooded, routed by the shortcut, routed "
      "to the uplinks",
      "how=\"unicast\"", "unicast", unicast),
    FWD("flood", "floods", floods),
    FWD("routed", "routed", routed),
    FWD("routed_uplink", "routed_uplink", routed_uplink),
    S("wtrelay_switch_flood_copies_total", "copies made of flooded frames", NULL, "flood_copies",
      flood_copies),
    S("wtrelay_switch_drops_total", "frames (or flood copies) the switch dropped or did not send",
      "reason=\"deliver_failed\"", "deliver_failed", deliver_failed),
    DR("runt", "runt", drop_runt),
    DR("bad_port", "bad_port", drop_bad_port),
    DR("same_port", "same_port", drop_same_port),
    DR("source_multicast", "src_multicast", drop_src_multicast),
    DR("too_deep", "too_deep", drop_too_deep),
    DR("split_horizon", "split_horizon", split_horizon),
    DR("uplink_router", "uplink_router", drop_uplink_router),
    DR("uplink_pinned_source", "uplink_pinned_src", drop_uplink_pinned_src),
    S("wtrelay_switch_macs_learned_total", "MAC addresses learned new", NULL, "learned", learned),
    S("wtrelay_switch_macs_moved_total", "MAC addresses moved to another port", NULL, "moved",
      moved),
    S("wtrelay_switch_macs_aged_total", "MAC addresses aged out", NULL, "aged", aged),
    S("wtrelay_switch_macs_refused_total",
      "MAC addresses not learned: the port's, the room's or the table's bound reached",
      "reason=\"port_full\"", "full_port", learn_full_port),
    MACF("room_full", "full_room", learn_full_domain),
    MACF("table_full", "full_table", learn_full_table),
};
#undef MACF
#undef DR
#undef FWD
#undef S

const struct counter_table switch_counter_table =
    COUNTER_TABLE(switch_counter_defs, struct switch_counters);

/* Per port kind: local ports (sessions, the gateway) and uplinks (the
 * room's copies on other workers). */
#define K(fam, help, labels, key, field)                                                           \
  COUNTER_DEF(struct switch_kind_table, fam, help, labels, "switch port counters", key, field)
#define KG(fam, help, labels, key, field)                                                          \
  COUNTER_GAUGE(struct switch_kind_table, fam, help, labels, "switch port counters", key, field)
#define LOC(f) kind[SWITCH_PORT_LOCAL].f
#define UPL(f) kind[SWITCH_PORT_UPLINK].f
static const struct counter_def switch_kind_counter_defs[] = {
    K("wtrelay_switch_port_frames_total", "frames through the switch's ports, by port kind",
      "kind=\"local\",dir=\"in\"", "local_in", LOC(frames_in)),
    K("wtrelay_switch_port_frames_total", NULL, "kind=\"local\",dir=\"out\"", "local_out",
      LOC(frames_out)),
    K("wtrelay_switch_port_frames_total", NULL, "kind=\"uplink\",dir=\"in\"", "uplink_in",
      UPL(frames_in)),
    K("wtrelay_switch_port_frames_total", NULL, "kind=\"uplink\",dir=\"out\"", "uplink_out",
      UPL(frames_out)),
    K("wtrelay_switch_port_flood_copies_total",
      "flood copies delivered to ports, by port kind (also in frames out)", "kind=\"local\"",
      "local_flood_copies", LOC(flood_copies)),
    K("wtrelay_switch_port_flood_copies_total", NULL, "kind=\"uplink\"", "uplink_flood_copies",
      UPL(flood_copies)),
    K("wtrelay_switch_port_macs_learned_total", "MACs learned new on ports, by port kind",
      "kind=\"local\"", "local_learned", LOC(learned)),
    K("wtrelay_switch_port_macs_learned_total", NULL, "kind=\"uplink\"", "uplink_learned",
      UPL(learned)),
    K("wtrelay_switch_port_macs_moved_in_total", "MACs moved to ports, by port kind",
      "kind=\"local\"", "local_moved_in", LOC(moved_in)),
    K("wtrelay_switch_port_macs_moved_in_total", NULL, "kind=\"uplink\"", "uplink_moved_in",
      UPL(moved_in)),
    K("wtrelay_switch_port_macs_refused_total",
      "MACs not learned on ports (the port's bound), by port kind", "kind=\"local\"",
      "local_learn_full", LOC(learn_full)),
    K("wtrelay_switch_port_macs_refused_total", NULL, "kind=\"uplink\"", "uplink_learn_full",
      UPL(learn_full)),
    KG("wtrelay_switch_port_mac_entries", "MACs learned on ports now, by port kind",
       "kind=\"local\"", "local_macs", LOC(macs)),
    KG("wtrelay_switch_port_mac_entries", NULL, "kind=\"uplink\"", "uplink_macs", UPL(macs)),
};
#undef UPL
#undef LOC
#undef KG
#undef K

_Static_assert(sizeof(struct switch_kind_table) == sizeof(((struct switch_table *)0)->kind),
               "switch_kind_table is switch_table.kind");

const struct counter_table switch_kind_counter_table =
    COUNTER_TABLE(switch_kind_counter_defs, struct switch_kind_table);
