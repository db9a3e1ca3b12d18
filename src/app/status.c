/*
 * status: /status and the page at /. See status.h.
 *
 * Paging: the sessions of every snapshot, worker 0's first, each worker's
 * in the order of its peer table, which is the order of peer ids (worker
 * i's ids start at i x --max-sessions). offset and limit index that list;
 * totals count all of it. The response stops early, with "truncated" and
 * the next offset, when fewer than STATUS_RESERVE bytes of OPS_RESP_MAX
 * are left (a room name and an origin of 255 bytes each escape to about
 * 3 KiB, so 5000 such sessions would not fit).
 */
#include "status.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wtrelay/gateway.h"
#include "wtrelay/h3.h"
#include "wtrelay/timeunit.h"

/* Room left for one more entry and the closing of the document. */
#define STATUS_RESERVE (16u * 1024u)

int status_snap_init(struct status_snap *s)
{
  memset(s, 0, sizeof(*s));
  return -pthread_mutex_init(&s->lock, NULL);
}

void status_snap_fini(struct status_snap *s)
{
  pthread_mutex_destroy(&s->lock);
  free(s->sess);
  free(s->rooms);
  s->sess = NULL;
  s->rooms = NULL;
}

void status_snap_want(struct status_snap *s, uint64_t now_ns)
{
  atomic_store_explicit(&s->wanted_until, now_ns + STATUS_WANT_NS, memory_order_relaxed);
}

bool status_snap_wanted(struct status_snap *s, uint64_t now_ns)
{
  return now_ns < atomic_load_explicit(&s->wanted_until, memory_order_relaxed);
}

/* Grows *p (elements of size sz, *cap of them) to hold want; false when it
 * cannot (the old array stays). */
static bool grow(void **p, uint32_t *cap, uint32_t want, size_t sz)
{
  if (want <= *cap)
    return true;
  uint32_t n = *cap ? *cap : 16;
  while (n < want)
    n = n > UINT32_MAX / 2 ? want : n * 2;
  void *np = realloc(*p, (size_t)n * sz);
  if (!np)
    return false;
  *p = np;
  *cap = n;
  return true;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
  size_t l = strnlen(src, cap - 1);
  memcpy(dst, src, l);
  dst[l] = '\0';
}

int status_snap_fill(struct status_snap *s, const struct relay *r, uint64_t now_ns)
{
  if (pthread_mutex_trylock(&s->lock) != 0)
    return -EBUSY;
  int rc = 0;
  grow((void **)&s->sess, &s->cap, r->npeers, sizeof(*s->sess));
  grow((void **)&s->rooms, &s->room_cap, r->nrooms, sizeof(*s->rooms));
  s->nsess = s->nrooms = s->missing = 0;
  for (uint32_t i = 0; i < r->max_peers; i++) {
    const struct relay_peer *p = &r->peers[i];
    if (!p->used)
      continue;
    if (s->nsess == s->cap) {
      s->missing++;
      rc = -ENOMEM;
      continue;
    }
    struct status_session *o = &s->sess[s->nsess++];
    o->id = p->id;
    o->registered = p->registered;
    memcpy(o->mac, p->mac, 6);
    o->ip = p->ip;
    o->created_ns = p->created_ns;
    o->frames_in = p->frames_in;
    o->bytes_in = p->bytes_in;
    o->frames_out = p->frames_out;
    o->bytes_out = p->bytes_out;
    struct gateway_vm_flows nf = {0};
    if (r->gw && p->registered && p->ip && p->room != RELAY_NO_ROOM)
      gateway_vm_flows(r->gw, p->room, p->ip, &nf);
    o->nat_udp = nf.udp;
    o->nat_icmp = nf.icmp;
    o->nat_tcp = nf.tcp;
    const char *room = p->room != RELAY_NO_ROOM      ? r->rooms[p->room].name
                       : p->sess && p->sess->path[0] ? p->sess->path
                                                     : "/";
    copy_str(o->room, sizeof(o->room), room);
    copy_str(o->origin, sizeof(o->origin), p->sess ? p->sess->origin : "");
    o->transport = p->sess ? p->sess->transport : SESSION_WEBTRANSPORT;
    if (p->sess)
      session_remote_str(p->sess, o->remote, sizeof(o->remote));
    else
      copy_str(o->remote, sizeof(o->remote), "?");
  }
  for (uint32_t i = 0; i < r->max_rooms && s->nrooms < s->room_cap; i++) {
    const struct relay_room *rm = &r->rooms[i];
    if (!rm->used || !rm->npeers)
      continue;
    struct status_room *o = &s->rooms[s->nrooms++];
    copy_str(o->name, sizeof(o->name), rm->name);
    o->sessions = rm->npeers;
  }
  s->at_ns = now_ns ? now_ns : 1;
  pthread_mutex_unlock(&s->lock);
  return rc;
}

/* ---- the query ---- */

static int parse_u32(const char *v, size_t len, uint32_t *out)
{
  if (len == 0 || len > 10)
    return -EINVAL;
  uint64_t x = 0;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9')
      return -EINVAL;
    x = x * 10 + (uint64_t)(v[i] - '0');
  }
  if (x > UINT32_MAX)
    return -EINVAL;
  *out = (uint32_t)x;
  return 0;
}

int status_query_parse(const char *query, uint32_t *offset, uint32_t *limit)
{
  *offset = 0;
  *limit = STATUS_LIMIT_DEFAULT;
  for (const char *p = query ? query : ""; *p;) {
    size_t len = strcspn(p, "&");
    const char *eq = memchr(p, '=', len);
    if (eq) {
      size_t kl = (size_t)(eq - p), vl = len - kl - 1;
      if (kl == 6 && memcmp(p, "offset", 6) == 0 && parse_u32(eq + 1, vl, offset) < 0)
        return -EINVAL;
      if (kl == 5 && memcmp(p, "limit", 5) == 0 && parse_u32(eq + 1, vl, limit) < 0)
        return -EINVAL;
    }
    p += len;
    if (*p == '&')
      p++;
  }
  if (*limit == 0)
    return -EINVAL;
  if (*limit > STATUS_LIMIT_MAX)
    *limit = STATUS_LIMIT_MAX;
  return 0;
}

/* ---- JSON ---- */

/* The length of the valid UTF-8 sequence at s (1 to 4), 0 when invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_len(const unsigned char *s)
{
  if (s[0] < 0x80)
    return 1;
  size_t n = s[0] >= 0xc2 && s[0] <= 0xdf   ? 2
             : (s[0] & 0xf0) == 0xe0        ? 3
             : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                            : 0;
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
      (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
    return 0;
  return n;
}

void status_json_str(struct ops_buf *b, const char *s)
{
  char out[512];
  size_t o = 0;
  ops_buf_printf(b, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    if (o + 8 > sizeof(out)) {
      ops_buf_printf(b, "%.*s", (int)o, out);
      o = 0;
    }
    size_t n = utf8_len(p);
    if (n == 0) {
      memcpy(out + o, "\\ufffd", 6); /* a byte that is no UTF-8 */
      o += 6;
      p++;
    } else if (*p == '"' || *p == '\\') {
      out[o++] = '\\';
      out[o++] = (char)*p++;
    } else if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>' || *p == '&') {
      /* control bytes; and the page's markup characters, so the JSON is
       * safe even where someone pastes it into HTML */
      o += (size_t)snprintf(out + o, sizeof(out) - o, "\\u%04x", *p++);
    } else {
      memcpy(out + o, p, n);
      o += n;
      p += n;
    }
  }
  ops_buf_printf(b, "%.*s\"", (int)o, out);
}

static void write_session(struct ops_buf *b, uint32_t worker, const struct status_session *x,
                          uint64_t now_ns)
{
  uint32_t ip = x->ip;
  ops_buf_printf(b,
                 "{\"id\":%u,\"worker\":%u,\"state\":\"%s\",\"transport\":\"%s\",\"room\":", x->id,
                 worker, x->registered ? "registered" : "open",
                 x->transport == SESSION_WEBSOCKET ? "websocket" : "webtransport");
  status_json_str(b, x->room);
  ops_buf_printf(b, ",\"remote\":");
  status_json_str(b, x->remote);
  ops_buf_printf(b, ",\"origin\":");
  status_json_str(b, x->origin);
  ops_buf_printf(
      b,
      ",\"mac\":\"%02x:%02x:%02x:%02x:%02x:%02x\",\"ip\":\"%u.%u.%u.%u\","
      "\"age_s\":%llu,\"frames_in\":%llu,\"bytes_in\":%llu,\"frames_out\":%llu,"
      "\"bytes_out\":%llu,\"nat_flows\":{\"udp\":%u,\"icmp\":%u,\"tcp\":%u}}",
      x->mac[0], x->mac[1], x->mac[2], x->mac[3], x->mac[4], x->mac[5], ip >> 24, (ip >> 16) & 255,
      (ip >> 8) & 255, ip & 255,
      (unsigned long long)(now_ns > x->created_ns ? (now_ns - x->created_ns) / NS_PER_S : 0),
      (unsigned long long)x->frames_in, (unsigned long long)x->bytes_in,
      (unsigned long long)x->frames_out, (unsigned long long)x->bytes_out, x->nat_udp, x->nat_icmp,
      x->nat_tcp);
}

static int room_cmp(const void *a, const void *b)
{
  const struct status_room *x = *(const struct status_room *const *)a;
  const struct status_room *y = *(const struct status_room *const *)b;
  return strcmp(x->name, y->name);
}

static bool full(const struct ops_buf *b)
{
  return b->overflow || b->len + STATUS_RESERVE > b->max;
}

/* Rooms over every worker's copies, by name: their sessions summed; at
 * most limit listed. */
static void write_rooms(struct ops_buf *b, struct status_snap *const *snaps, uint32_t n,
                        uint32_t limit)
{
  size_t nr = 0;
  for (uint32_t w = 0; w < n; w++)
    nr += snaps[w]->nrooms;
  const struct status_room **v = nr ? calloc(nr, sizeof(*v)) : NULL;
  nr = 0;
  for (uint32_t w = 0; v && w < n; w++)
    for (uint32_t i = 0; i < snaps[w]->nrooms; i++)
      v[nr++] = &snaps[w]->rooms[i];
  if (nr)
    qsort(v, nr, sizeof(*v), room_cmp);
  uint32_t total = 0, listed = 0;
  ops_buf_printf(b, "\"rooms\":[");
  for (size_t i = 0; i < nr;) {
    uint32_t sessions = 0;
    size_t j = i;
    for (; j < nr && strcmp(v[j]->name, v[i]->name) == 0; j++)
      sessions += v[j]->sessions;
    if (listed < limit && !full(b)) {
      ops_buf_printf(b, "%s{\"name\":", listed ? "," : "");
      status_json_str(b, v[i]->name);
      ops_buf_printf(b, ",\"sessions\":%u}", sessions);
      listed++;
    }
    total++;
    i = j;
  }
  ops_buf_printf(b, "],\"rooms_total\":%u,", total);
  free(v);
}

static void write_json(struct ops_buf *b, const struct status_info *in,
                       struct status_snap *const *snaps, uint32_t n, uint32_t offset,
                       uint32_t limit)
{
  char when[32] = "";
  time_t t = (time_t)in->cert_not_after;
  struct tm tm;
  if (gmtime_r(&t, &tm))
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
  ops_buf_printf(b,
                 "{\"version\":\"%s\",\"uptime_s\":%llu,\"cert\":{\"sha256\":\"%s\","
                 "\"not_after\":\"%s\"},\"workers\":[",
                 in->version, (unsigned long long)in->uptime_s, in->cert_sha256, when);
  uint64_t total = 0;
  for (uint32_t w = 0; w < n; w++) {
    const struct status_snap *s = snaps[w];
    ops_buf_printf(b, "%s{\"worker\":%u,\"sessions\":%u,\"rooms\":%u,\"missing\":%u,", w ? "," : "",
                   w, s->nsess, s->nrooms, s->missing);
    if (s->at_ns)
      ops_buf_printf(
          b, "\"snapshot_age_ms\":%llu}",
          (unsigned long long)(in->now_ns > s->at_ns ? (in->now_ns - s->at_ns) / NS_PER_MS : 0));
    else
      ops_buf_printf(b, "\"snapshot_age_ms\":null}");
    total += s->nsess;
  }
  ops_buf_printf(b, "],");
  write_rooms(b, snaps, n, limit);
  ops_buf_printf(b, "\"sessions_total\":%llu,\"offset\":%u,\"limit\":%u,\"sessions\":[",
                 (unsigned long long)total, offset, limit);
  uint64_t idx = 0;
  uint32_t listed = 0;
  bool truncated = false;
  for (uint32_t w = 0; w < n && listed < limit && !truncated; w++) {
    const struct status_snap *s = snaps[w];
    if (idx + s->nsess <= offset) {
      idx += s->nsess;
      continue;
    }
    for (uint32_t i = (uint32_t)(offset > idx ? offset - idx : 0); i < s->nsess && listed < limit;
         i++) {
      if (full(b)) {
        truncated = true;
        break;
      }
      if (listed)
        ops_buf_printf(b, ",");
      write_session(b, w, &s->sess[i], in->now_ns);
      listed++;
    }
    idx += s->nsess;
  }
  uint64_t next = (uint64_t)offset + listed;
  ops_buf_printf(b, "],\"count\":%u,\"truncated\":%s,\"next_offset\":", listed,
                 truncated ? "true" : "false");
  if (next < total)
    ops_buf_printf(b, "%llu}\n", (unsigned long long)next);
  else
    ops_buf_printf(b, "null}\n");
}

void status_write_json(struct ops_buf *b, const struct status_info *in,
                       struct status_snap *const *snaps, uint32_t n, uint32_t offset,
                       uint32_t limit)
{
  /* in worker order; an owner only ever trylocks, so no order can
   * deadlock and no worker waits for the reader */
  for (uint32_t w = 0; w < n; w++)
    pthread_mutex_lock(&snaps[w]->lock);
  write_json(b, in, snaps, n, offset, limit);
  for (uint32_t w = n; w-- > 0;)
    pthread_mutex_unlock(&snaps[w]->lock);
}

/* ---- the page ---- */

/* Self-contained: no external assets; every value goes into the document
 * as text (textContent), never as markup. */
static const char status_page[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<title>wtrelay status</title>\n<style>\n"
    "body{font:14px system-ui,sans-serif;margin:1em;color:#222}\n"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}\n"
    "th,td{border:1px solid #ccc;padding:2px 6px;text-align:left}\n"
    "th{background:#eee}td.n{text-align:right}\n#err{color:#b00}\n"
    "</style></head><body>\n<h1>wtrelay</h1>\n<p id=\"summary\">loading…</p>\n"
    "<p id=\"err\"></p>\n<h2>Workers</h2><table id=\"workers\"></table>\n"
    "<h2>Rooms</h2><table id=\"rooms\"></table>\n"
    "<h2>Sessions</h2><p id=\"paging\"></p><table id=\"sessions\"></table>\n"
    "<script>\n"
    "'use strict';\n"
    "const PER_PAGE = 500;\n"
    "let offset = Number(new URLSearchParams(location.search).get('offset')) || 0;\n"
    "function table(id, head, rows, numeric) {\n"
    "  const t = document.getElementById(id);\n"
    "  t.replaceChildren();\n"
    "  const hr = t.insertRow();\n"
    "  for (const h of head) { const th = document.createElement('th'); th.textContent = h; "
    "hr.appendChild(th); }\n"
    "  for (const r of rows) {\n"
    "    const tr = t.insertRow();\n"
    "    r.forEach((v, i) => { const td = tr.insertCell(); td.textContent = v === null ? '' : "
    "String(v); if (numeric[i]) td.className = 'n'; });\n"
    "  }\n"
    "}\n"
    "function render(s) {\n"
    "  document.getElementById('summary').textContent = 'version ' + s.version + ', up ' + "
    "s.uptime_s + ' s, certificate ' + s.cert.sha256 + ' until ' + s.cert.not_after + ', ' + "
    "s.sessions_total + ' sessions in ' + s.rooms_total + ' rooms';\n"
    "  table('workers', ['worker', 'sessions', 'rooms', 'snapshot age (ms)'], "
    "s.workers.map(w => [w.worker, w.sessions, w.rooms, w.snapshot_age_ms]), [1, 1, 1, 1]);\n"
    "  table('rooms', ['room', 'sessions'], s.rooms.map(r => [r.name, r.sessions]), [0, 1]);\n"
    "  const ss = s.sessions.slice().sort((a, b) => a.room < b.room ? -1 : a.room > b.room ? 1 : "
    "a.id - b.id);\n"
    "  table('sessions', ['room', 'id', 'state', 'transport', 'remote', 'origin', 'MAC', 'IP', "
    "'age (s)', 'frames in', 'bytes in', 'frames out', 'bytes out', 'NAT UDP', 'NAT ICMP', "
    "'NAT TCP', 'worker'], ss.map(x => [x.room, x.id, x.state, x.transport, x.remote, x.origin, "
    "x.mac, x.ip, x.age_s, x.frames_in, x.bytes_in, x.frames_out, x.bytes_out, x.nat_flows.udp, "
    "x.nat_flows.icmp, x.nat_flows.tcp, x.worker]), [0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, "
    "1, 1]);\n"
    "  const p = document.getElementById('paging');\n"
    "  p.replaceChildren(document.createTextNode('sessions ' + (s.count ? s.offset + 1 : 0) + "
    "'–' + (s.offset + s.count) + ' of ' + s.sessions_total + ' '));\n"
    "  const link = (label, to) => { const a = document.createElement('a'); a.href = '?offset=' + "
    "to; a.textContent = label; a.onclick = e => { e.preventDefault(); offset = to; "
    "history.replaceState(null, '', '?offset=' + to); refresh(); }; p.appendChild(a); "
    "p.appendChild(document.createTextNode(' ')); };\n"
    "  if (s.offset > 0) link('previous', Math.max(0, s.offset - PER_PAGE));\n"
    "  if (s.next_offset !== null) link('next', s.next_offset);\n"
    "}\n"
    "let timer = null;\n"
    "async function refresh() {\n"
    "  clearTimeout(timer);\n"
    "  try {\n"
    "    const r = await fetch('/status?offset=' + offset + '&limit=' + PER_PAGE, {cache: "
    "'no-store'});\n"
    "    if (!r.ok) throw new Error('HTTP ' + r.status);\n"
    "    render(await r.json());\n"
    "    document.getElementById('err').textContent = '';\n"
    "  } catch (e) {\n"
    "    document.getElementById('err').textContent = 'status unavailable: ' + e.message;\n"
    "  }\n"
    "  timer = setTimeout(refresh, 3000);\n"
    "}\n"
    "refresh();\n"
    "</script></body></html>\n";

void status_write_page(struct ops_buf *b)
{
  ops_buf_printf(b, "%s", status_page);
}
