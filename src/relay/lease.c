/*
 * lease: see include/wtrelay/lease.h for the theory of operation.
 *
 * Lookups by (room, MAC) and (room, IP) walk the room's list, which is no
 * longer than its pool (245 addresses for a /24), like ippool's own scans;
 * room names are found by hash then strcmp over the name table. Slots are
 * touched only as used (a high-water mark), so a large --max-leases costs
 * address space, not memory, until it fills.
 */
#include "wtrelay/lease.h"
#include "wtrelay/timeunit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wtrelay/counter.h"

#define WRITE_EVERY_NS 1000000000ull
#define HEADER "# wtrelay leases v1\n"
#define ROOM_LINE_MAX (5 + 3 * LEASE_NAME_MAX + 2) /* "room ", name, newline, NUL */
#define LEASE_LINE_LEN 64 /* "aa:bb:cc:dd:ee:ff 255.255.255.255 <20 digits>\n" = 55 */
#define MAX_AGE_S (100ll * 366 * 86400)

static int64_t wall_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec;
}

static uint32_t name_hash(const char *s)
{
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

static bool expired(const struct lease_table *t, const struct lease *l, uint64_t now)
{
  return !l->live && (int64_t)now - l->released_ns >= (int64_t)t->p.lease_ns;
}

/* ---- lists ---- */

static void old_unlink(struct lease_table *t, uint32_t i)
{
  struct lease *l = &t->l[i];
  if (l->oprev != LEASE_NONE)
    t->l[l->oprev].onext = l->onext;
  else
    t->old_head = l->onext;
  if (l->onext != LEASE_NONE)
    t->l[l->onext].oprev = l->oprev;
  else
    t->old_tail = l->oprev;
  l->oprev = l->onext = LEASE_NONE;
}

/* Appends i to the released list; callers release in time order (the
 * loader sorts first), so the list stays sorted. */
static void old_append(struct lease_table *t, uint32_t i)
{
  struct lease *l = &t->l[i];
  l->onext = LEASE_NONE;
  l->oprev = t->old_tail;
  if (t->old_tail != LEASE_NONE)
    t->l[t->old_tail].onext = i;
  else
    t->old_head = i;
  t->old_tail = i;
}

static void room_free(struct lease_table *t, uint32_t r)
{
  t->rooms[r].used = false;
  t->nrooms--;
}

/* Forgets lease i (its room's slot too when it was the last). */
static void lease_drop(struct lease_table *t, uint32_t i)
{
  struct lease *l = &t->l[i];
  struct lease_room *rm = &t->rooms[l->room];
  if (!l->live)
    old_unlink(t, i);
  else
    rm->nlive--;
  if (l->rprev != LEASE_NONE)
    t->l[l->rprev].rnext = l->rnext;
  else
    rm->head = l->rnext;
  if (l->rnext != LEASE_NONE)
    t->l[l->rnext].rprev = l->rprev;
  if (--rm->nleases == 0)
    room_free(t, l->room);
  memset(l, 0, sizeof(*l));
  l->onext = t->free_head;
  t->free_head = i;
  t->nused--;
}

static uint32_t room_find(const struct lease_table *t, const char *name)
{
  uint32_t h = name_hash(name);
  for (uint32_t r = 0; r < t->p.max_rooms; r++)
    if (t->rooms[r].used && t->rooms[r].hash == h && strcmp(t->rooms[r].name, name) == 0)
      return r;
  return LEASE_NONE;
}

/* The room's slot, made when missing. A full name table forgets the room
 * without live leases used longest ago (unless `evict` is false). */
static uint32_t room_get(struct lease_table *t, const char *name, bool evict, uint64_t now)
{
  uint32_t r = room_find(t, name);
  if (r != LEASE_NONE)
    return r;
  if (strlen(name) == 0 || strlen(name) > LEASE_NAME_MAX)
    return LEASE_NONE;
  uint32_t slot = LEASE_NONE, victim = LEASE_NONE;
  for (uint32_t i = 0; i < t->p.max_rooms && slot == LEASE_NONE; i++) {
    if (!t->rooms[i].used)
      slot = i;
    else if (t->rooms[i].nlive == 0 &&
             (victim == LEASE_NONE || t->rooms[i].last_ns < t->rooms[victim].last_ns))
      victim = i;
  }
  if (slot == LEASE_NONE) {
    if (!evict || victim == LEASE_NONE)
      return LEASE_NONE;
    while (t->rooms[victim].used) { /* the last drop frees the slot */
      t->ctr.dropped++;
      lease_drop(t, t->rooms[victim].head);
    }
    slot = victim;
  }
  struct lease_room *rm = &t->rooms[slot];
  memset(rm, 0, sizeof(*rm));
  rm->used = true;
  rm->hash = name_hash(name);
  rm->head = LEASE_NONE;
  rm->last_ns = (int64_t)now;
  snprintf(rm->name, sizeof(rm->name), "%s", name);
  t->nrooms++;
  return slot;
}

/* A free lease slot in room r; the table full drops the oldest released
 * lease. LEASE_NONE when every lease is live. */
static uint32_t lease_alloc(struct lease_table *t, uint32_t r)
{
  uint32_t i;
  if (t->free_head != LEASE_NONE) {
    i = t->free_head;
    t->free_head = t->l[i].onext;
  } else if (t->hwm < t->p.max_leases) {
    i = t->hwm++;
  } else {
    if (t->old_head == LEASE_NONE)
      return LEASE_NONE;
    t->ctr.dropped++;
    uint32_t v = t->old_head;
    if (t->l[v].room == r && t->rooms[r].nleases == 1) {
      /* keep the room's slot: reuse the lease in place */
      old_unlink(t, v);
      t->l[v].live = true;
      t->rooms[r].nlive++;
      return v;
    }
    lease_drop(t, v);
    i = t->free_head;
    t->free_head = t->l[i].onext;
  }
  struct lease *l = &t->l[i];
  memset(l, 0, sizeof(*l));
  l->used = true;
  l->live = true;
  l->room = r;
  l->oprev = l->onext = LEASE_NONE;
  l->rprev = LEASE_NONE;
  l->rnext = t->rooms[r].head;
  if (l->rnext != LEASE_NONE)
    t->l[l->rnext].rprev = i;
  t->rooms[r].head = i;
  t->rooms[r].nleases++;
  t->rooms[r].nlive++;
  t->nused++;
  return i;
}

static void touch(struct lease_table *t);

/* Sets (room r, mac) -> ip, live or released at `released`. Another lease
 * of the room on ip (a reclaimed address) is reused for it, any other
 * lease of mac is dropped: one lease per MAC and per IP in a room. */
/* client: the acquiring client when live; a release keeps the lease's. */
static int lease_set(struct lease_table *t, uint32_t r, const uint8_t mac[6], uint32_t ip,
                     bool live, int64_t released, uint64_t client)
{
  uint32_t have = LEASE_NONE;
  for (uint32_t i = t->rooms[r].head; i != LEASE_NONE && have == LEASE_NONE; i = t->l[i].rnext)
    if (memcmp(t->l[i].mac, mac, 6) == 0)
      have = i;
  for (uint32_t i = t->rooms[r].head; i != LEASE_NONE && have == LEASE_NONE; i = t->l[i].rnext)
    if (t->l[i].ip == ip)
      have = i;
  /* have keeps the room's slot alive while the others go */
  for (uint32_t i = t->rooms[r].head, next; have != LEASE_NONE && i != LEASE_NONE; i = next) {
    next = t->l[i].rnext;
    if (i != have && (t->l[i].ip == ip || memcmp(t->l[i].mac, mac, 6) == 0))
      lease_drop(t, i);
  }
  if (have == LEASE_NONE) {
    have = lease_alloc(t, r);
    if (have == LEASE_NONE) {
      t->ctr.dropped++;
      return -ENOSPC;
    }
  } else if (!t->l[have].live) {
    old_unlink(t, have);
    t->l[have].live = true;
    t->rooms[r].nlive++;
  }
  struct lease *l = &t->l[have];
  if (live || memcmp(l->mac, mac, 6) != 0 || l->ip != ip)
    l->client = live ? client : 0;
  memcpy(l->mac, mac, 6);
  l->ip = ip;
  if (!live) {
    l->live = false;
    l->released_ns = released;
    t->rooms[r].nlive--;
    old_append(t, have);
  }
  if (released > t->rooms[r].last_ns)
    t->rooms[r].last_ns = released;
  return 0;
}

/* ---- the table ---- */

size_t lease_buf_size(uint32_t max_leases, uint32_t max_rooms)
{
  return sizeof(HEADER) + (size_t)max_rooms * ROOM_LINE_MAX + (size_t)max_leases * LEASE_LINE_LEN;
}

static void write_timer(struct timer *tm, uint64_t now);

int lease_init(struct lease_table *t, const struct lease_params *p, struct timer_heap *timers,
               uint64_t *now)
{
  memset(t, 0, sizeof(*t));
  timer_init(&t->timer, write_timer);
  t->p = *p;
  t->p.path = NULL;
  t->fd = -1;
  t->timers = timers;
  t->now = now;
  t->free_head = t->old_head = t->old_tail = LEASE_NONE;
  if (!p->max_leases || !p->max_rooms) {
    t->timers = NULL;
    return -EINVAL;
  }
  if (p->path && p->path[0]) {
    if (strlen(p->path) >= sizeof(t->path))
      return -ENAMETOOLONG;
    snprintf(t->path, sizeof(t->path), "%s", p->path);
    snprintf(t->tmp, sizeof(t->tmp), "%s.tmp", p->path);
  }
  t->l = calloc(p->max_leases, sizeof(*t->l));
  t->rooms = calloc(p->max_rooms, sizeof(*t->rooms));
  t->cap = lease_buf_size(p->max_leases, p->max_rooms);
  t->buf = t->path[0] ? malloc(t->cap) : NULL;
  if (!t->l || !t->rooms || (t->path[0] && !t->buf)) {
    free(t->l);
    free(t->rooms);
    free(t->buf);
    memset(t, 0, sizeof(*t));
    timer_init(&t->timer, write_timer);
    return -ENOMEM;
  }
  log_ratelimit_init(&t->rl, NS_PER_S, 5);
  return 0;
}

int lease_acquired(struct lease_table *t, const char *room, const uint8_t mac[6], uint32_t ip,
                   uint64_t now)
{
  return lease_acquired_for(t, room, mac, ip, 0, now);
}

int lease_acquired_for(struct lease_table *t, const char *room, const uint8_t mac[6], uint32_t ip,
                       uint64_t client, uint64_t now)
{
  uint32_t r = room_get(t, room, true, now);
  if (r == LEASE_NONE) {
    t->ctr.dropped++;
    return -ENOSPC;
  }
  int rc = lease_set(t, r, mac, ip, true, (int64_t)now, client);
  touch(t);
  return rc;
}

void lease_released(struct lease_table *t, const char *room, const uint8_t mac[6], uint32_t ip,
                    uint64_t now)
{
  uint32_t r = room_get(t, room, true, now);
  if (r == LEASE_NONE) {
    t->ctr.dropped++;
    return;
  }
  lease_set(t, r, mac, ip, false, (int64_t)now, 0);
  touch(t);
}

void lease_room_closed(struct lease_table *t, const char *room, uint64_t now)
{
  uint32_t r = room_find(t, room);
  if (r == LEASE_NONE || t->rooms[r].nlive == 0)
    return;
  for (uint32_t i = t->rooms[r].head; i != LEASE_NONE; i = t->l[i].rnext) {
    struct lease *l = &t->l[i];
    if (!l->live)
      continue;
    l->live = false;
    l->released_ns = (int64_t)now;
    t->rooms[r].nlive--;
    old_append(t, i);
  }
  t->rooms[r].last_ns = (int64_t)now;
  touch(t);
}

void lease_reclaimed(struct lease_table *t, const char *room, uint32_t ip, const uint8_t old_mac[6],
                     bool was_expired, uint64_t now)
{
  uint32_t sup;
  if (was_expired) {
    t->ctr.reclaims_expired++;
    return;
  }
  t->ctr.reclaims_unexpired++;
  if (!log_ratelimit_allow(&t->rl, now, &sup))
    return;
  char name[3 * LEASE_NAME_MAX + 1] = "?";
  lease_name_encode(room, name, sizeof(name));
  log_warn("address pool full, reclaiming an unexpired lease",
           "room=%s ip=%u.%u.%u.%u from_mac=%02x:%02x:%02x:%02x:%02x:%02x suppressed=%u",
           LOG_Q(name), ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255, old_mac[0],
           old_mac[1], old_mac[2], old_mac[3], old_mac[4], old_mac[5], sup);
}

int lease_seed(struct lease_table *t, const char *room, struct ippool *pool, uint64_t now)
{
  uint32_t r = room_find(t, room);
  int n = 0;
  if (r == LEASE_NONE)
    return 0;
  for (uint32_t i = t->rooms[r].head; i != LEASE_NONE; i = t->l[i].rnext) {
    const struct lease *l = &t->l[i];
    if (ippool_seed_for(pool, l->mac, l->ip, l->live ? (int64_t)now : l->released_ns, l->client) ==
        0)
      n++;
  }
  return n;
}

const struct lease *lease_find(const struct lease_table *t, const char *room, const uint8_t mac[6])
{
  uint32_t r = room_find(t, room);
  if (r == LEASE_NONE)
    return NULL;
  for (uint32_t i = t->rooms[r].head; i != LEASE_NONE; i = t->l[i].rnext)
    if (memcmp(t->l[i].mac, mac, 6) == 0)
      return &t->l[i];
  return NULL;
}

uint32_t lease_active(const struct lease_table *t, uint64_t now)
{
  uint32_t n = 0;
  for (uint32_t i = 0; i < t->hwm; i++)
    n += t->l[i].used && !expired(t, &t->l[i], now);
  return n;
}

/* ---- the file format ---- */

int lease_name_encode(const char *name, char *out, size_t cap)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const uint8_t *s = (const uint8_t *)name; *s; s++) {
    if (o + 4 > cap)
      return -ENOBUFS;
    if (*s > 0x20 && *s < 0x7f && *s != '%') {
      out[o++] = (char)*s;
    } else {
      out[o++] = '%';
      out[o++] = hex[*s >> 4];
      out[o++] = hex[*s & 15];
    }
  }
  if (o + 1 > cap)
    return -ENOBUFS;
  out[o] = '\0';
  return (int)o;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int lease_name_decode(const char *in, size_t len, char *out, size_t cap)
{
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    int c = (uint8_t)in[i];
    if (c <= 0x20 || c >= 0x7f)
      return -EINVAL;
    if (c == '%') {
      if (i + 2 >= len)
        return -EINVAL;
      int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
      if (hi < 0 || lo < 0)
        return -EINVAL;
      c = hi << 4 | lo;
      i += 2;
      if (c == 0)
        return -EINVAL;
    }
    if (o + 1 >= cap || o >= LEASE_NAME_MAX)
      return -EINVAL;
    out[o++] = (char)c;
  }
  if (o == 0)
    return -EINVAL;
  out[o] = '\0';
  return (int)o;
}

static int mac_parse(const char *s, size_t len, uint8_t mac[6])
{
  if (len != 17)
    return -EINVAL;
  for (int i = 0; i < 6; i++) {
    int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
      return -EINVAL;
    mac[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

static int ip_parse(const char *s, size_t len, uint32_t *ip)
{
  char b[16];
  struct in_addr a;
  if (len == 0 || len >= sizeof(b))
    return -EINVAL;
  memcpy(b, s, len);
  b[len] = '\0';
  if (inet_pton(AF_INET, b, &a) != 1)
    return -EINVAL;
  *ip = ntohl(a.s_addr);
  return 0;
}

/* Unix seconds (at most 20 digits, no sign) or "live" (-1). */
static int time_parse(const char *s, size_t len, int64_t *out)
{
  if (len == 4 && memcmp(s, "live", 4) == 0) {
    *out = -1;
    return 0;
  }
  if (len == 0 || len > 18)
    return -EINVAL;
  int64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -EINVAL;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/* Splits a line into at most n space-separated fields (exactly n wanted). */
static int fields(const char *s, size_t len, const char **f, size_t *fl, int n)
{
  int k = 0;
  size_t i = 0;
  while (i < len) {
    if (k == n)
      return -EINVAL;
    size_t start = i;
    while (i < len && s[i] != ' ')
      i++;
    if (i == start)
      return -EINVAL; /* two blanks, or a leading one */
    f[k] = s + start;
    fl[k++] = i - start;
    if (i < len && ++i == len)
      return -EINVAL; /* trailing blank */
  }
  return k == n ? 0 : -EINVAL;
}

/* A full table may drop the last lease of a room while the loader still
 * holds lines for it: the slot (name intact) is taken back. */
static bool room_revive(struct lease_table *t, uint32_t r)
{
  struct lease_room *rm = &t->rooms[r];
  if (!rm->used) {
    rm->used = true;
    rm->nleases = rm->nlive = 0;
    rm->head = LEASE_NONE;
    t->nrooms++;
  }
  return true;
}

struct pending {
  uint32_t room, ip;
  uint8_t mac[6];
  int64_t released_ns;
};

static int pending_cmp(const void *a, const void *b)
{
  const struct pending *x = a, *y = b;
  return x->released_ns < y->released_ns ? -1 : x->released_ns > y->released_ns;
}

int lease_parse(struct lease_table *t, const char *data, size_t len, uint64_t now_ns,
                int64_t wall_s)
{
  size_t maxp = t->p.max_leases * 2 + 16, np = 0;
  struct pending *pend = calloc(maxp, sizeof(*pend));
  uint32_t room = LEASE_NONE;
  int loaded = 0;
  if (!pend)
    return -ENOMEM;
  for (size_t pos = 0; pos < len;) {
    const char *nl = memchr(data + pos, '\n', len - pos);
    const char *s = data + pos;
    size_t l = nl ? (size_t)(nl - s) : len - pos;
    pos += l + (nl ? 1 : 0);
    if (!nl || l >= LEASE_LINE_MAX) { /* truncated last line, or overlong */
      t->ctr.lines_skipped++;
      continue;
    }
    if (l == 0 || s[0] == '#')
      continue;
    const char *f[3];
    size_t fl[3];
    if (l > 5 && memcmp(s, "room ", 5) == 0) {
      char name[LEASE_NAME_MAX + 1];
      room = LEASE_NONE;
      if (lease_name_decode(s + 5, l - 5, name, sizeof(name)) < 0 ||
          (room = room_get(t, name, false, now_ns)) == LEASE_NONE)
        t->ctr.lines_skipped++;
      continue;
    }
    struct pending pe;
    int64_t when;
    if (room == LEASE_NONE || np == maxp || fields(s, l, f, fl, 3) < 0 ||
        mac_parse(f[0], fl[0], pe.mac) < 0 || ip_parse(f[1], fl[1], &pe.ip) < 0 ||
        time_parse(f[2], fl[2], &when) < 0 || pe.ip < t->p.pool_first || pe.ip > t->p.pool_last) {
      t->ctr.lines_skipped++;
      continue;
    }
    int64_t age = when < 0 || when > wall_s ? 0 : wall_s - when;
    if (age > MAX_AGE_S)
      age = MAX_AGE_S;
    pe.released_ns = (int64_t)now_ns - age * (int64_t)NS_PER_S;
    pe.room = room;
    pend[np++] = pe;
  }
  /* Oldest first, so the released list stays in order and a full table
   * keeps the newest. */
  qsort(pend, np, sizeof(*pend), pending_cmp);
  for (size_t i = 0; i < np; i++)
    if (room_revive(t, pend[i].room) &&
        lease_set(t, pend[i].room, pend[i].mac, pend[i].ip, false, pend[i].released_ns, 0) == 0)
      loaded++;
  /* A room line without a lease left leaves an empty slot: free it. */
  for (uint32_t r = 0; r < t->p.max_rooms; r++)
    if (t->rooms[r].used && t->rooms[r].nleases == 0)
      room_free(t, r);
  free(pend);
  return loaded;
}

int lease_format(const struct lease_table *t, char *buf, size_t cap, uint64_t now_ns,
                 int64_t wall_s)
{
  size_t o = 0;
  if (cap < sizeof(HEADER))
    return -ENOBUFS;
  memcpy(buf, HEADER, sizeof(HEADER) - 1);
  o = sizeof(HEADER) - 1;
  for (uint32_t r = 0; r < t->p.max_rooms; r++) {
    const struct lease_room *rm = &t->rooms[r];
    if (!rm->used || !rm->nleases)
      continue;
    char name[3 * LEASE_NAME_MAX + 1];
    if (lease_name_encode(rm->name, name, sizeof(name)) < 0 || cap - o < ROOM_LINE_MAX)
      return -ENOBUFS;
    o += (size_t)snprintf(buf + o, cap - o, "room %s\n", name);
    for (uint32_t i = rm->head; i != LEASE_NONE; i = t->l[i].rnext) {
      const struct lease *l = &t->l[i];
      char when[24] = "live";
      if (!l->live) {
        int64_t age = ((int64_t)now_ns - l->released_ns) / (int64_t)NS_PER_S;
        snprintf(when, sizeof(when), "%lld",
                 (long long)(age < 0        ? wall_s
                             : age > wall_s ? 0
                                            : wall_s - age));
      }
      if (cap - o < LEASE_LINE_LEN)
        return -ENOBUFS;
      o +=
          (size_t)snprintf(buf + o, cap - o, "%02x:%02x:%02x:%02x:%02x:%02x %u.%u.%u.%u %s\n",
                           l->mac[0], l->mac[1], l->mac[2], l->mac[3], l->mac[4], l->mac[5],
                           l->ip >> 24, (l->ip >> 16) & 255, (l->ip >> 8) & 255, l->ip & 255, when);
    }
  }
  return (int)o;
}

int lease_load_file(struct lease_table *t)
{
  if (!t->path[0])
    return 0;
  int fd = open(t->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      log_info("no lease file yet, starting with no leases", "path=%s", LOG_Q(t->path));
      return 0;
    }
    t->ctr.load_errors++;
    log_error("cannot read the lease file, starting with no leases", "path=%s err=\"%s\"",
              LOG_Q(t->path), strerror(errno));
    return 0;
  }
  size_t n = 0;
  bool too_big = false;
  int err = 0;
  for (;;) {
    if (n == t->cap) {
      char c;
      too_big = read(fd, &c, 1) > 0;
      break;
    }
    ssize_t k = read(fd, t->buf + n, t->cap - n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      err = errno;
    if (k <= 0)
      break;
    n += (size_t)k;
  }
  close(fd);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t skipped0 = t->ctr.lines_skipped;
  int loaded = lease_parse(
      t, t->buf, n, t->now ? *t->now : (uint64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec, wall_now());
  uint64_t skipped = t->ctr.lines_skipped - skipped0;
  if (loaded < 0 || err || too_big || skipped) {
    t->ctr.load_errors++;
    log_error("lease file damaged or unreadable, continuing with what could be read",
              "path=%s leases=%d lines_skipped=%llu read_error=\"%s\" too_large=%d", LOG_Q(t->path),
              loaded < 0 ? 0 : loaded, (unsigned long long)skipped, err ? strerror(err) : "",
              too_big);
  } else {
    log_info("lease file read", "path=%s leases=%d rooms=%u", LOG_Q(t->path), loaded, t->nrooms);
  }
  return loaded < 0 ? 0 : loaded;
}

/* ---- the writer ---- */

static void tlock(struct lease_table *t)
{
  if (t->lock)
    pthread_mutex_lock(t->lock);
}

static void tunlock(struct lease_table *t)
{
  if (t->lock)
    pthread_mutex_unlock(t->lock);
}

static void write_failed(struct lease_table *t, const char *step, int err)
{
  uint32_t sup;
  tlock(t);
  t->ctr.write_errors++;
  t->dirty = true; /* try again later */
  tunlock(t);
  if (log_ratelimit_allow(&t->rl, t->now ? *t->now : 0, &sup))
    log_error("cannot write the lease file", "path=%s step=%s err=\"%s\" suppressed=%u",
              LOG_Q(t->path), step, strerror(err > 0 ? err : -err), sup);
}

/* Arms the write timer: at most one write a second. A shared table's
 * timer runs every second whatever happens (write_timer): it is armed on
 * the writer's thread only, never by a change from another thread. */
static void schedule(struct lease_table *t)
{
  if (t->lock || !t->dirty || t->state != LEASE_W_IDLE || !t->timers || timer_armed(&t->timer))
    return;
  uint64_t at = t->last_start_ns ? t->last_start_ns + WRITE_EVERY_NS : *t->now;
  timer_arm(t->timers, &t->timer, at > *t->now ? at : *t->now);
}

static void touch(struct lease_table *t)
{
  if (!t->path[0])
    return;
  t->dirty = true;
  schedule(t);
}

static int write_sync(struct lease_table *t)
{
  int fd = open(t->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    write_failed(t, "open", errno);
    return -errno;
  }
  size_t off = 0;
  int err = 0;
  while (off < t->len && !err) {
    ssize_t k = write(fd, t->buf + off, t->len - off);
    if (k < 0 && errno != EINTR)
      err = errno;
    else if (k > 0)
      off += (size_t)k;
  }
  if (!err && fsync(fd) < 0)
    err = errno;
  if (close(fd) < 0 && !err)
    err = errno;
  if (!err && rename(t->tmp, t->path) < 0)
    err = errno;
  if (err) {
    unlink(t->tmp);
    write_failed(t, "write", err);
    return -err;
  }
  t->ctr.written++;
  return 0;
}

static struct io_uring_sqe *sqe_for(struct lease_table *t, uint32_t step)
{
  struct io_uring_sqe *sqe = io_sqe(t->io);
  if (sqe)
    io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_LEASE, step));
  return sqe;
}

enum { STEP_OPEN = 1, STEP_WRITE, STEP_FSYNC, STEP_CLOSE, STEP_RENAME, STEP_UNLINK };

int lease_write_now(struct lease_table *t)
{
  if (!t->path[0] || t->state != LEASE_W_IDLE)
    return 0;
  uint64_t now = t->now ? *t->now : 0;
  tlock(t); /* the table as of now; the disk operations run unlocked */
  int n = lease_format(t, t->buf, t->cap, now, wall_now());
  if (n >= 0) {
    t->len = (size_t)n;
    t->dirty = false;
  }
  tunlock(t);
  if (n < 0) {
    write_failed(t, "format", n);
    return n;
  }
  t->last_start_ns = now ? now : 1;
  if (!t->io)
    return write_sync(t);
  struct io_uring_sqe *sqe = sqe_for(t, STEP_OPEN);
  if (!sqe) {
    write_failed(t, "submit", EBUSY);
    schedule(t);
    return -EBUSY;
  }
  io_uring_prep_openat(sqe, AT_FDCWD, t->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  t->state = LEASE_W_OPEN;
  return 0;
}

static void write_timer(struct timer *tm, uint64_t now)
{
  struct lease_table *t =
      (struct lease_table *)(void *)((char *)tm - offsetof(struct lease_table, timer));
  if (t->lock) {
    tlock(t);
    bool dirty = t->dirty;
    tunlock(t);
    if (t->state == LEASE_W_IDLE && dirty)
      lease_write_now(t);
    if (t->timers)
      timer_arm(t->timers, &t->timer, now + WRITE_EVERY_NS);
    return;
  }
  if (t->state == LEASE_W_IDLE && t->dirty)
    lease_write_now(t);
}

void lease_set_lock(struct lease_table *t, pthread_mutex_t *lock)
{
  t->lock = lock;
  if (t->path[0] && t->timers)
    timer_arm(t->timers, &t->timer, (t->now ? *t->now : 0) + WRITE_EVERY_NS);
}

static void write_done(struct lease_table *t)
{
  t->state = LEASE_W_IDLE;
  schedule(t);
}

static void on_cqe(void *ctx, uint32_t step, struct io_uring_cqe *cqe)
{
  struct lease_table *t = ctx;
  int res = cqe->res;
  struct io_uring_sqe *sqe;
  switch (step) {
  case STEP_OPEN:
    if (res < 0) {
      write_failed(t, "open", res);
      write_done(t);
      return;
    }
    t->fd = res;
    t->pending = 0;
    t->close_sync = false;
    t->res[0] = t->res[1] = t->res[2] = -EBUSY;
    /* Hard links: each runs after the previous whatever its result, so the
     * descriptor is always closed. */
    if ((sqe = sqe_for(t, STEP_WRITE))) {
      io_uring_prep_write(sqe, t->fd, t->buf, (unsigned)t->len, 0);
      sqe->flags |= IOSQE_IO_HARDLINK;
      t->pending++;
    }
    if (t->pending && (sqe = sqe_for(t, STEP_FSYNC))) {
      io_uring_prep_fsync(sqe, t->fd, 0);
      sqe->flags |= IOSQE_IO_HARDLINK;
      t->pending++;
    }
    if (t->pending && (sqe = sqe_for(t, STEP_CLOSE))) {
      io_uring_prep_close(sqe, t->fd);
      t->pending++;
    } else {
      t->close_sync = true; /* the ring is full: close it ourselves when done */
    }
    t->state = LEASE_W_SYNC;
    if (t->pending)
      return;
    /* fall through: nothing in flight */
    res = -EBUSY;
    step = STEP_CLOSE;
    t->pending = 1;
    __attribute__((fallthrough));
  case STEP_WRITE:
  case STEP_FSYNC:
  case STEP_CLOSE:
    t->res[step - STEP_WRITE] = res;
    if (t->pending && --t->pending)
      return;
    if (t->close_sync)
      t->res[2] = close(t->fd) < 0 ? -errno : 0;
    t->fd = -1;
    if (t->res[0] != (int)t->len || t->res[1] < 0 || t->res[2] < 0) {
      int err = t->res[0] < 0   ? t->res[0]
                : t->res[1] < 0 ? t->res[1]
                : t->res[2] < 0 ? t->res[2]
                                : -EIO;
      write_failed(t, t->res[0] != (int)t->len ? "write" : t->res[1] < 0 ? "fsync" : "close", err);
      if ((sqe = sqe_for(t, STEP_UNLINK))) {
        io_uring_prep_unlinkat(sqe, AT_FDCWD, t->tmp, 0);
        t->state = LEASE_W_UNLINK;
      } else {
        write_done(t);
      }
      return;
    }
    if (!(sqe = sqe_for(t, STEP_RENAME))) {
      write_failed(t, "submit", EBUSY);
      write_done(t);
      return;
    }
    io_uring_prep_renameat(sqe, AT_FDCWD, t->tmp, AT_FDCWD, t->path, 0);
    t->state = LEASE_W_RENAME;
    return;
  case STEP_RENAME:
    if (res < 0)
      write_failed(t, "rename", res);
    else
      t->ctr.written++;
    write_done(t);
    return;
  case STEP_UNLINK:
    write_done(t);
    return;
  }
}

int lease_attach_io(struct lease_table *t, struct io *io)
{
  int rc = io_set_handler(io, IO_OP_LEASE, on_cqe, t);
  if (rc == 0)
    t->io = io;
  return rc;
}

/* After the loop ended: runs our own completions until the writer is idle
 * (at most 2 s). Other modules' completions are consumed and dropped: every
 * other module has stopped by now. */
static void drain(struct lease_table *t)
{
  struct timespec start, ts;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (t->state != LEASE_W_IDLE) {
    struct io_uring_cqe *cqe;
    struct __kernel_timespec to = {.tv_sec = 0, .tv_nsec = 100000000};
    io_uring_submit(&t->io->ring);
    int rc = io_uring_wait_cqe_timeout(&t->io->ring, &cqe, &to);
    if (rc == 0) {
      uint64_t ud = io_uring_cqe_get_data64(cqe);
      struct io_uring_cqe copy = *cqe;
      io_uring_cqe_seen(&t->io->ring, cqe);
      if (IO_UD_OP(ud) == IO_OP_LEASE)
        on_cqe(t, IO_UD_IDX(ud), &copy);
    } else if (rc != -ETIME && rc != -EINTR) {
      break;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ts.tv_sec - start.tv_sec > 2) {
      log_error("lease file write did not finish at exit", "path=%s", LOG_Q(t->path));
      break;
    }
  }
}

void lease_fini(struct lease_table *t)
{
  if (t->timers)
    timer_disarm(t->timers, &t->timer);
  t->timers = NULL; /* no re-arming from here */
  if (t->path[0] && t->buf) {
    if (t->io)
      drain(t); /* a write in flight ends first */
    tlock(t);
    bool dirty = t->dirty;
    tunlock(t);
    if (dirty && t->state == LEASE_W_IDLE) {
      lease_write_now(t);
      if (t->io)
        drain(t);
    }
  }
  free(t->l);
  free(t->rooms);
  free(t->buf);
  t->l = NULL;
  t->rooms = NULL;
  t->buf = NULL;
}

/* ---- counters ---- */

/* The lease table's counters for /metrics and the exit log, one row per
 * field (test_counter checks that every field has exactly one). */
#define L(fam, help, labels, key, field)                                                           \
  COUNTER_DEF(struct lease_counters, fam, help, labels, "lease counters", key, field)
static const struct counter_def lease_counter_defs[] = {
    L("wtrelay_lease_file_writes_total", "lease file writes", "result=\"ok\"", "written", written),
    L("wtrelay_lease_file_writes_total", NULL, "result=\"error\"", "write_errors", write_errors),
    L("wtrelay_lease_file_lines_skipped_total",
      "lease file lines that did not parse when it was read", NULL, "lines_skipped", lines_skipped),
    L("wtrelay_lease_file_load_errors_total",
      "lease file reads that failed or skipped lines (a missing file is none)", NULL, "load_errors",
      load_errors),
    L("wtrelay_lease_reclaims_total", "released addresses handed to another MAC",
      "lease=\"expired\"", "reclaims_expired", reclaims_expired),
    L("wtrelay_lease_reclaims_total", NULL, "lease=\"unexpired\"", "reclaims_unexpired",
      reclaims_unexpired),
    L("wtrelay_leases_dropped_total",
      "leases forgotten because the lease or room name table was full", NULL, "dropped", dropped),
};
#undef L

const struct counter_table lease_counter_table =
    COUNTER_TABLE(lease_counter_defs, struct lease_counters);
