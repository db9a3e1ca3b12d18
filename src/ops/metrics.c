/*
 * metrics: every counter of the relay as Prometheus text exposition
 * (version 0.0.4). Names follow Prometheus conventions: the wtrelay_
 * prefix, _total for counters, base units (bytes, seconds); drop reasons
 * and directions are labels of one family. This is application wiring: it
 * reads the counter structs of every module and knows their meaning.
 * Every counters struct has a table beside it (wtrelay/counter.h: family,
 * labels and exit-log key of each field), which both /metrics and the
 * exit log are written from, so the two cannot drift; the gauges a worker
 * keeps outside any counters struct have a table here
 * (metrics_gauge_table). Only process-wide values (rooms, leases,
 * certificates, the start time) are written by hand.
 */
#include "wtrelay/metrics.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/timeunit.h"

/* The writer's state: the family whose header was written last, so that a
 * family two tables share (storm control: the relay's and the switch's)
 * gets one header. */
struct w {
  struct ops_buf *b;
  const char *fam;
};

/* A family header once, then its samples. */
static void family(struct w *w, const char *name, const char *type, const char *help)
{
  ops_buf_printf(w->b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
  w->fam = name;
}

static void sample(struct w *w, const char *name, const char *labels, uint64_t v)
{
  if (labels && *labels)
    ops_buf_printf(w->b, "%s{%s} %" PRIu64 "\n", name, labels, v);
  else
    ops_buf_printf(w->b, "%s %" PRIu64 "\n", name, v);
}

static void gauge(struct w *w, const char *name, const char *help, uint64_t v)
{
  family(w, name, "gauge", help);
  sample(w, name, NULL, v);
}

/* Every exported row of a counter table (wtrelay/counter.h): a family
 * header at the first row of each family, then one sample per row. */
static void table(struct w *w, const struct counter_table *t, const void *ctr)
{
  for (size_t i = 0; i < t->n; i++) {
    const struct counter_def *d = &t->defs[i];
    if (!d->family)
      continue;
    if (!w->fam || strcmp(w->fam, d->family) != 0)
      family(w, d->family, d->gauge ? "gauge" : "counter", d->help);
    sample(w, d->family, d->labels, counter_value(d, ctr));
  }
}

void metrics_table_write(struct ops_buf *b, const struct counter_table *t, const void *ctr)
{
  struct w w = {.b = b};
  table(&w, t, ctr);
}

/* A Prometheus histogram: cumulative buckets up to each bound (seconds),
 * +Inf, the sum in seconds and the count. */
static void histogram(struct w *w, const char *name, const char *help, const struct hist *h,
                      const uint64_t *bounds)
{
  family(w, name, "histogram", help);
  uint64_t cum = 0;
  for (int i = 0; i < HIST_BUCKETS; i++) {
    cum += h->n[i];
    ops_buf_printf(w->b, "%s_bucket{le=\"%.9g\"} %" PRIu64 "\n", name,
                   (double)bounds[i] / (double)NS_PER_S, cum);
  }
  ops_buf_printf(w->b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
  ops_buf_printf(w->b, "%s_sum %" PRIu64 ".%09" PRIu64 "\n%s_count %" PRIu64 "\n", name,
                 (uint64_t)(h->sum_ns / NS_PER_S), (uint64_t)(h->sum_ns % NS_PER_S), name,
                 h->count);
}

/* Registered sessions per room, over every worker: one sample per room in
 * use (at most --max-rooms); the name is the peer's, escaped. */
static void room_sessions(struct w *w, const struct roomdir *d)
{
  family(w, "wtrelay_room_sessions", "gauge", "registered sessions of each room in use");
  for (uint32_t i = 0; i < d->max_rooms; i++) {
    const struct roomdir_room *r = &d->rooms[i];
    if (!r->used)
      continue;
    char name[3 * sizeof(r->name)];
    metrics_label_escape(name, sizeof(name), r->name);
    ops_buf_printf(w->b, "wtrelay_room_sessions{room=\"%s\"} %u\n", name,
                   atomic_load_explicit(&r->sessions, memory_order_relaxed));
  }
}

/* ---- a worker's gauges and parts ---- */

#define G(fam, help, key, field)                                                                   \
  COUNTER_GAUGE(struct metrics_gauges, fam, help, NULL, "worker gauges", key, field)
static const struct counter_def gauge_defs[] = {
    G("wtrelay_sessions", "sessions of either transport (registered or not)", "sessions", sessions),
    COUNTER_GAUGE(struct metrics_gauges, "wtrelay_transport_sessions",
                  "sessions (registered or not) by transport: WebTransport over QUIC, or the "
                  "WebSocket fallback over TLS/TCP",
                  "transport=\"webtransport\"", "worker gauges", "sessions_wt", sessions_wt),
    COUNTER_GAUGE(struct metrics_gauges, "wtrelay_transport_sessions", NULL,
                  "transport=\"websocket\"", "worker gauges", "sessions_ws", sessions_ws),
    G("wtrelay_quic_connections", "QUIC connections in any state", "quic_conns", quic_conns),
    G("wtrelay_switch_mac_entries", "learned MAC addresses", "mac_entries", mac_entries),
    G("wtrelay_chunk_reassemblies", "chunked frames being reassembled", "reassemblies",
      chunk_reassemblies),
    G("wtrelay_nat_udp_flows", "UDP NAT mappings", "nat_udp_flows", nat_udp_flows),
    G("wtrelay_nat_icmp_flows", "ICMP NAT mappings", "nat_icmp_flows", nat_icmp_flows),
    G("wtrelay_nat_tcp_connections", "TCP NAT connections", "nat_tcp_conns", nat_tcp_conns),
    G("wtrelay_nat_share_clients", "clients holding NAT flows", "nat_share_clients",
      nat_share_clients),
    G("wtrelay_dns_queries_in_flight", "DNS queries waiting for an upstream", "dns_inflight",
      dns_inflight),
    COUNTER_GAUGE(struct metrics_gauges, "wtrelay_memory_bytes",
                  "bytes the connections hold, by owner: ngtcp2 and nghttp3 (counted by their "
                  "allocator hooks), the relay (its per-connection structs), the relay's "
                  "buffers allocated as needed; "
                  "GnuTLS's share is in wtrelay_heap_bytes",
                  "owner=\"ngtcp2\"", "worker gauges", "mem_ngtcp2", mem_ngtcp2),
    COUNTER_GAUGE(struct metrics_gauges, "wtrelay_memory_bytes", NULL, "owner=\"nghttp3\"",
                  "worker gauges", "mem_nghttp3", mem_nghttp3),
    COUNTER_GAUGE(struct metrics_gauges, "wtrelay_memory_bytes", NULL, "owner=\"relay\"",
                  "worker gauges", "mem_relay", mem_relay),
    COUNTER_GAUGE(struct metrics_gauges, "wtrelay_memory_bytes", NULL, "owner=\"relay_buffers\"",
                  "worker gauges", "mem_relay_buffers", mem_relay_buffers),
    COUNTER_GAUGE(struct metrics_gauges, "wtrelay_memory_page_slot_bytes",
                  "of wtrelay_memory_bytes, the bytes in page slots of their own (outside the "
                  "heap; resident only where written)",
                  "owner=\"ngtcp2\"", "worker gauges", "mem_ngtcp2_slots", mem_ngtcp2_slots),
};
#undef G

const struct counter_table metrics_gauge_table = COUNTER_TABLE(gauge_defs, struct metrics_gauges);

#define PART(tab, field)                                                                           \
  {                                                                                                \
    &(tab), offsetof(struct metrics_worker, field)                                                 \
  }
const struct metrics_part metrics_worker_parts[] = {
    PART(metrics_gauge_table, gauges),
    PART(timer_counter_table, timers),
    PART(io_counter_table, io),
    PART(quic_counter_table, quic),
    PART(h3_counter_table, h3),
    PART(auth_counter_table, auth),
    PART(relay_counter_table, relay),
    PART(switch_counter_table, sw),
    PART(switch_kind_counter_table, sw_kind),
    PART(chunk_counter_table, chunk),
    PART(gateway_counter_table, gw),
    PART(hostaddr_counter_table, hostaddr),
    PART(ws_listen_counter_table, ws),
};
#undef PART
const size_t metrics_worker_nparts = sizeof(metrics_worker_parts) / sizeof(metrics_worker_parts[0]);

void metrics_worker_fill(struct metrics_worker *mw, const struct metrics_worker_src *s)
{
  memset(mw, 0, sizeof(*mw));
  const struct relay *r = s->relay;
  struct metrics_gauges *g = &mw->gauges;
  g->sessions = r->npeers;
  g->quic_conns = quic_endpoint_active(s->quic);
  g->mac_entries = r->sw.nmacs;
  g->mem_ngtcp2 = s->quic->ngtcp2_bytes.bytes;
  g->mem_nghttp3 = s->h3->nghttp3_bytes.bytes;
  g->mem_ngtcp2_slots = s->quic->ngtcp2_bytes.slot_bytes;
  g->mem_relay = quic_endpoint_active(s->quic) * (sizeof(struct quic_conn) + h3_conn_size()) +
                 r->npeers * sizeof(struct relay_peer);
  g->mem_relay_buffers = h3_buffer_bytes(s->h3);
  for (uint32_t i = 0; i < r->chunks.used; i++)
    g->chunk_reassemblies += r->chunks.slots[i].owner != NULL;
  timer_heap_stats(s->timers, &mw->timers);
  mw->io = s->io->ctr;
  mw->quic = s->quic->ctr;
  mw->h3 = s->h3->ctr;
  mw->relay = r->ctr;
  mw->sw = r->sw.ctr;
  memcpy(&mw->sw_kind, r->sw.kind, sizeof(mw->sw_kind));
  mw->chunk = r->chunks.ctr;
  mw->hist.handshake = s->quic->handshake_hist;
  mw->hist.reg = r->register_hist;
  mw->hist.session = r->session_hist;
  if (s->auth)
    mw->auth = s->auth->ctr;
  if (s->hostaddr)
    mw->hostaddr = s->hostaddr->ctr;
  if (s->ws) {
    mw->ws = s->ws->ctr;
    g->sessions_ws = ws_listen_sessions(s->ws);
  }
  g->sessions_wt = g->sessions > g->sessions_ws ? g->sessions - g->sessions_ws : 0;
  if (s->gw) {
    const struct gateway *gw = s->gw;
    mw->gw = gw->ctr;
    g->nat_udp_flows = gw->nudp;
    g->nat_icmp_flows = gw->nicmp;
    g->nat_tcp_conns = gw->ntcp;
    g->nat_share_clients = gateway_share_clients(gw);
    g->dns_inflight = gw->dns_inflight;
  }
}

void metrics_worker_line(struct counter_line *l, const struct metrics_worker *mw)
{
  for (size_t i = 0; i < metrics_worker_nparts; i++)
    counter_line_table(l, metrics_worker_parts[i].t,
                       (const char *)mw + metrics_worker_parts[i].off);
}

/* ---- the exposition ---- */

void metrics_write(struct ops_buf *b, const struct metrics_src *m)
{
  struct w w = {.b = b};
  const struct metrics_worker *s = m->sum;

  /* state */
  table(&w, &metrics_gauge_table, &s->gauges);
  gauge(&w, "wtrelay_rooms", "rooms (virtual LANs) in use: each has a registered session",
        m->rooms);
  gauge(&w, "wtrelay_leases", "address leases remembered (live, released or expired)",
        m->leases->nused);
  gauge(&w, "wtrelay_leases_active",
        "address leases held: live, or released less than --lease-time ago",
        lease_active(m->leases, m->now));
  table(&w, &timer_counter_table, &s->timers);
  gauge(&w, "wtrelay_certificate_expiry_timestamp_seconds",
        "notAfter of the certificate in use, unix time", (uint64_t)m->cert->not_after);
  gauge(&w, "wtrelay_certificates_live",
        "certificates in memory: the one in use and retired ones handshakes in progress still use",
        m->certs_live);
  gauge(&w, "wtrelay_start_time_seconds", "start of the process, unix time", m->start_time);
  /* every arena: the libraries' allocations, GnuTLS's among them (it has
   * no allocator hooks since 3.3), minus what the gauges above count */
  struct mallinfo2 mi = mallinfo2();
  gauge(&w, "wtrelay_heap_bytes", "bytes allocated with malloc in the whole process",
        (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd);
  if (m->dir)
    room_sessions(&w, m->dir);
  family(&w, "wtrelay_certificate_reloads_total", "counter", "certificate reload attempts");
  sample(&w, "wtrelay_certificate_reloads_total", "result=\"ok\"", m->cert_reloads);
  sample(&w, "wtrelay_certificate_reloads_total", "result=\"failed\"", m->cert_reload_failures);

  /* UDP I/O and batching, QUIC, HTTP/3 and WebTransport */
  table(&w, &io_counter_table, &s->io);
  table(&w, &quic_counter_table, &s->quic);
  table(&w, &h3_counter_table, &s->h3);
  histogram(&w, "wtrelay_quic_handshake_duration_seconds",
            "QUIC connection accepted to its handshake completed", &s->hist.handshake,
            hist_bounds_fast);
  histogram(&w, "wtrelay_register_duration_seconds",
            "WebTransport session opened to its first Assigned sent", &s->hist.reg,
            hist_bounds_fast);
  histogram(&w, "wtrelay_session_duration_seconds",
            "WebTransport sessions at their end: opened to closed", &s->hist.session,
            hist_bounds_long);

  /* access control (auth.c): every refusal reason, even at zero */
  if (m->auth)
    table(&w, &auth_counter_table, &s->auth);
  /* bavy protocol, frames, LAN guards and storm control: the relay's
   * table ends with the storm-control family, the switch's begins with it */
  table(&w, &relay_counter_table, &s->relay);
  table(&w, &switch_counter_table, &s->sw);
  table(&w, &switch_kind_counter_table, &s->sw_kind);
  table(&w, &chunk_counter_table, &s->chunk);
  table(&w, &lease_counter_table, &m->leases->ctr);

  /* gateway and NAT */
  table(&w, &gateway_counter_table, &s->gw);
  if (m->hostaddr) {
    gauge(&w, "wtrelay_host_local_routes", "local and broadcast routes of the host, followed",
          m->host_routes);
    table(&w, &hostaddr_counter_table, &s->hostaddr);
  }

  /* the WebSocket fallback (zeros when --ws-listen is off) */
  table(&w, &ws_listen_counter_table, &s->ws);

  /* the ops listener itself */
  if (m->ops)
    table(&w, &ops_counter_table, m->ops);

  metrics_process_write(b);
}
