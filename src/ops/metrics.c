/*
 * metrics: every counter of the worker as Prometheus text exposition
 * (version 0.0.4). Names follow Prometheus conventions: the wtrelay_
 * prefix, _total for counters, base units (bytes, seconds); drop reasons
 * and directions are labels of one family. This is application wiring: it
 * reads the counter structs of every module and knows their meaning. The
 * relay's and the gateway's counters come from their counter tables
 * (wtrelay/counter.h: family, labels and exit-log key beside the struct),
 * which their exit log lines are written from too, so the two cannot
 * drift; the other modules' families are written here by hand.
 */
#include "wtrelay/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* A family header once, then its samples. */
static void family(struct ops_buf *b, const char *name, const char *type, const char *help)
{
  ops_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct ops_buf *b, const char *name, const char *labels, uint64_t v)
{
  if (labels && *labels)
    ops_buf_printf(b, "%s{%s} %" PRIu64 "\n", name, labels, v);
  else
    ops_buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

static void counter(struct ops_buf *b, const char *name, const char *help, uint64_t v)
{
  family(b, name, "counter", help);
  sample(b, name, NULL, v);
}

static void gauge(struct ops_buf *b, const char *name, const char *help, uint64_t v)
{
  family(b, name, "gauge", help);
  sample(b, name, NULL, v);
}

struct lv {
  const char *labels;
  uint64_t v;
};

static void counters(struct ops_buf *b, const char *name, const char *help, const struct lv *s,
                     size_t n)
{
  family(b, name, "counter", help);
  for (size_t i = 0; i < n; i++)
    sample(b, name, s[i].labels, s[i].v);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Every exported row of a counter table (wtrelay/counter.h): a family
 * header at the first row of each family, then one sample per row. */
static void table(struct ops_buf *b, const struct counter_table *t, const void *ctr)
{
  const char *fam = NULL;
  for (size_t i = 0; i < t->n; i++) {
    const struct counter_def *d = &t->defs[i];
    if (!d->family)
      continue;
    if (!fam || strcmp(fam, d->family) != 0)
      family(b, d->family, "counter", d->help);
    fam = d->family;
    sample(b, d->family, d->labels, counter_value(d, ctr));
  }
}

void metrics_write(struct ops_buf *b, const struct metrics_src *m)
{
  const struct io_counters *io = m->io;
  const struct quic_counters *q = m->quic;
  const struct h3_counters *h = m->h3;
  const struct relay_counters *r = m->relay_ctr ? m->relay_ctr : &m->relay->ctr;
  const struct switch_counters *w = &m->relay->sw.ctr;
  const struct chunk_counters *k = &m->relay->chunks.ctr;

  /* state */
  gauge(b, "wtrelay_sessions", "WebTransport sessions (registered or not)", m->relay->npeers);
  gauge(b, "wtrelay_quic_connections", "QUIC connections in any state", m->quic_conns);
  gauge(b, "wtrelay_rooms", "rooms (virtual LANs) in use: each has a registered session", m->rooms);
  gauge(b, "wtrelay_switch_mac_entries", "learned MAC addresses", m->relay->sw.nmacs);
  gauge(b, "wtrelay_leases", "address leases remembered (live, released or expired)",
        m->relay->leases.nused);
  gauge(b, "wtrelay_leases_active",
        "address leases held: live, or released less than --lease-time ago",
        lease_active(&m->relay->leases, *m->relay->now));
  uint64_t reasm = 0;
  for (uint32_t i = 0; i < m->relay->chunks.used; i++)
    reasm += m->relay->chunks.slots[i].owner != NULL;
  gauge(b, "wtrelay_chunk_reassemblies", "chunked frames being reassembled", reasm);
  if (m->gw) {
    gauge(b, "wtrelay_nat_udp_flows", "UDP NAT mappings", m->gw->nudp);
    gauge(b, "wtrelay_nat_icmp_flows", "ICMP NAT mappings", m->gw->nicmp);
    gauge(b, "wtrelay_dns_queries_in_flight", "DNS queries waiting for an upstream",
          m->gw->dns_inflight);
  }
  if (m->timers) {
    gauge(b, "wtrelay_timers", "timers armed", m->timers->len);
    gauge(b, "wtrelay_timers_capacity", "timers the heap holds (sized from every bound)",
          m->timers->cap);
    counter(b, "wtrelay_timer_arm_failures_total",
            "timers that could not be armed: the heap was full (a sizing defect)",
            m->timers->arm_failures);
  }
  gauge(b, "wtrelay_certificate_expiry_timestamp_seconds",
        "notAfter of the certificate in use, unix time", (uint64_t)m->cert->not_after);
  gauge(b, "wtrelay_certificates_live",
        "certificates in memory: the one in use and retired ones live connections still use",
        m->certs_live);
  gauge(b, "wtrelay_start_time_seconds", "start of the process, unix time", m->start_time);
  counters(b, "wtrelay_certificate_reloads_total", "certificate reload attempts",
           (struct lv[]){{"result=\"ok\"", m->cert_reloads},
                         {"result=\"failed\"", m->cert_reload_failures}},
           2);

  /* UDP I/O and batching */
  counters(
      b, "wtrelay_udp_datagrams_total", "UDP datagrams through the QUIC socket and NAT",
      (struct lv[]){{"direction=\"in\"", io->rx_datagrams}, {"direction=\"out\"", io->tx_packets}},
      2);
  counters(b, "wtrelay_udp_bytes_total", "UDP payload bytes",
           (struct lv[]){{"direction=\"in\"", io->rx_bytes}, {"direction=\"out\"", io->tx_bytes}},
           2);
  counter(b, "wtrelay_udp_recvmsg_completions_total",
          "receive completions (datagrams per recvmsg = datagrams in / this)", io->rx_completions);
  counter(b, "wtrelay_udp_sendmsg_total",
          "sendmsg calls (packets per sendmsg = datagrams out / this)", io->tx_msgs);
  counter(b, "wtrelay_udp_gso_sendmsg_total", "sendmsg calls carrying a GSO batch",
          io->tx_gso_msgs);
  counter(b, "wtrelay_udp_gro_batches_total", "receive completions holding a GRO batch",
          io->rx_gro_batches);
  counters(b, "wtrelay_udp_errors_total", "UDP I/O problems",
           (struct lv[]){{"kind=\"rx_enobufs\"", io->rx_enobufs},
                         {"kind=\"rx_truncated\"", io->rx_truncated},
                         {"kind=\"rx_error\"", io->rx_errors},
                         {"kind=\"tx_error\"", io->tx_errors},
                         {"kind=\"tx_arena_full\"", io->tx_arena_full},
                         {"kind=\"gso_fallback\"", io->tx_gso_fallbacks}},
           6);

  /* QUIC */
  counter(b, "wtrelay_quic_packets_received_total", "QUIC packets received", q->pkts_in);
  counters(b, "wtrelay_quic_packets_dropped_total", "QUIC packets dropped",
           (struct lv[]){{"reason=\"unknown_connection\"", q->pkts_dropped_unknown},
                         {"reason=\"table_full\"", q->pkts_dropped_full},
                         {"reason=\"short_unknown\"", q->pkts_short_unknown}},
           3);
  counters(b, "wtrelay_quic_connections_total", "QUIC connection events",
           (struct lv[]){{"event=\"accepted\"", q->conns_accepted},
                         {"event=\"refused_limit\"", q->conns_refused_limit},
                         {"event=\"refused_per_ip\"", q->conns_refused_ip},
                         {"event=\"failed\"", q->conns_failed},
                         {"event=\"tls_failed\"", q->conns_tls_failed},
                         {"event=\"closed\"", q->conns_closed},
                         {"event=\"idle_timeout\"", q->conns_idle},
                         {"event=\"draining\"", q->conns_draining}},
           8);
  counter(b, "wtrelay_quic_handshakes_total", "QUIC handshakes completed", q->handshakes);
  counter(b, "wtrelay_quic_version_negotiations_total", "Version Negotiation packets sent",
          q->version_negotiations);
  counter(b, "wtrelay_quic_stateless_resets_total", "stateless resets sent", q->stateless_resets);
  counters(b, "wtrelay_quic_datagrams_total", "QUIC DATAGRAM frames",
           (struct lv[]){{"event=\"in\"", q->dgrams_in},
                         {"event=\"out\"", q->dgrams_out},
                         {"event=\"out_direct\"", q->dgrams_direct},
                         {"event=\"queued\"", q->dgrams_queued},
                         {"event=\"lost\"", q->dgrams_lost}},
           5);
  counters(b, "wtrelay_quic_datagrams_dropped_total", "datagrams not sent",
           (struct lv[]){{"reason=\"queue_full\"", q->dgrams_queue_full},
                         {"reason=\"queue_half_full_low_priority\"", q->dgrams_queue_low_full},
                         {"reason=\"too_big\"", q->dgrams_too_big},
                         {"reason=\"pool_empty\"", q->dgrams_pool_empty}},
           4);
  counters(b, "wtrelay_quic_address_validation_total",
           "QUIC address validation: Retry packets sent, tokens checked, NEW_TOKEN sent",
           (struct lv[]){{"event=\"retry_sent\"", q->retries_sent},
                         {"event=\"retry_token_ok\"", q->tokens_retry_ok},
                         {"event=\"new_token_ok\"", q->tokens_regular_ok},
                         {"event=\"token_bad\"", q->tokens_bad},
                         {"event=\"new_token_sent\"", q->new_tokens_sent},
                         {"event=\"refused_unvalidated_full\"", q->conns_refused_unvalidated}},
           6);
  counters(b, "wtrelay_quic_unvalidated_bytes_total",
           "bytes to and from addresses not yet validated (anti-amplification)",
           (struct lv[]){{"direction=\"in\"", q->bytes_in_unvalidated},
                         {"direction=\"out\"", q->bytes_out_unvalidated}},
           2);
  counter(b, "wtrelay_quic_anchors_total",
          "loss-recovery anchors (HTTP/3 reserved frames) sent beside datagrams", q->anchors);

  /* HTTP/3 and WebTransport */
  counters(b, "wtrelay_webtransport_sessions_total", "WebTransport session events",
           (struct lv[]){{"event=\"opened\"", h->sessions_opened},
                         {"event=\"closed\"", h->sessions_closed},
                         {"event=\"rejected\"", h->requests_rejected}},
           3);
  counters(b, "wtrelay_h3_events_total", "HTTP/3 events of note",
           (struct lv[]){{"event=\"stream_refused\"", h->streams_refused},
                         {"event=\"unknown_stream\"", h->unknown_streams},
                         {"event=\"unknown_frame\"", h->unknown_frames},
                         {"event=\"capsule_skipped\"", h->capsules_skipped},
                         {"event=\"protocol_error\"", h->protocol_errors},
                         {"event=\"close_capsule_in\"", h->close_capsules_in},
                         {"event=\"goaway_in\"", h->goaways_in}},
           7);
  counters(b, "wtrelay_h3_requests_refused_total",
           "extended CONNECTs refused for their :path (also counted as rejected)",
           (struct lv[]){{"reason=\"room_control_chars\"", h->refused_room_control},
                         {"reason=\"path_too_long\"", h->refused_path_too_long},
                         {"reason=\"query_too_long\"", h->refused_query_too_long}},
           3);
  counters(b, "wtrelay_h3_datagrams_dropped_total", "HTTP datagrams dropped",
           (struct lv[]){{"reason=\"unknown_session\"", h->dgrams_unknown_session},
                         {"reason=\"bad_prefix\"", h->dgrams_bad_prefix},
                         {"reason=\"send_failed\"", h->dgrams_send_failed}},
           3);

  /* bavy protocol, frames, LAN guards and storm control: the relay's table */
  if (m->relay->auth) {
    /* access control (auth.c): every refusal reason, even at zero */
    const struct auth_counters *a = &m->relay->auth->ctr;
    family(b, "wtrelay_auth_refused_total", "counter",
           "extended CONNECTs refused by token or origin checks, by reason");
    for (int i = 1; i < AUTH_NREASONS; i++) {
      char label[64];
      snprintf(label, sizeof(label), "reason=\"%s\"", auth_reason_name((enum auth_reason)i));
      sample(b, "wtrelay_auth_refused_total", label, a->refused[i]);
    }
    counter(b, "wtrelay_auth_accepted_total", "extended CONNECTs that passed the checks",
            a->accepted);
    counter(b, "wtrelay_auth_register_refused_mac_total",
            "Register of a MAC other than the one the token names", a->register_refused_mac);
    counters(b, "wtrelay_auth_key_reloads_total", "token key reloads",
             (struct lv[]){{"result=\"ok\"", a->key_reloads},
                           {"result=\"failed\"", a->key_reload_failures}},
             2);
  }
  table(b, &relay_counter_table, r);
  /* the table ends with the storm-control family; the switch's sample joins it */
  sample(b, "wtrelay_storm_control_drops_total", "reason=\"rate_limited\"", w->flood_limited);

  /* switch */
  counters(b, "wtrelay_switch_frames_total", "frames switched",
           (struct lv[]){{"kind=\"in\"", w->frames_in},
                         {"kind=\"unicast\"", w->unicast},
                         {"kind=\"flood\"", w->floods},
                         {"kind=\"flood_copy\"", w->flood_copies},
                         {"kind=\"routed\"", w->routed},
                         {"kind=\"delivered\"", w->delivered}},
           6);
  counters(b, "wtrelay_switch_drops_total", "frames the switch dropped",
           (struct lv[]){{"reason=\"deliver_failed\"", w->deliver_failed},
                         {"reason=\"runt\"", w->drop_runt},
                         {"reason=\"same_port\"", w->drop_same_port},
                         {"reason=\"source_multicast\"", w->drop_src_multicast},
                         {"reason=\"too_deep\"", w->drop_too_deep}},
           5);
  counters(b, "wtrelay_switch_mac_events_total", "MAC table events",
           (struct lv[]){{"event=\"learned\"", w->learned},
                         {"event=\"moved\"", w->moved},
                         {"event=\"aged\"", w->aged},
                         {"event=\"full_port\"", w->learn_full_port},
                         {"event=\"full_room\"", w->learn_full_domain},
                         {"event=\"full_table\"", w->learn_full_table}},
           6);
  counters(b, "wtrelay_chunk_reassembly_total", "chunk reassembly events",
           (struct lv[]){{"event=\"chunk_in\"", k->chunks_in},
                         {"event=\"frame_done\"", k->frames_done},
                         {"event=\"single_chunk\"", k->single},
                         {"event=\"duplicate\"", k->duplicates},
                         {"event=\"bad_total\"", k->bad_total},
                         {"event=\"bad_stride\"", k->bad_stride},
                         {"event=\"too_big\"", k->too_big},
                         {"event=\"expired\"", k->expired},
                         {"event=\"evicted\"", k->evicted},
                         {"event=\"pool_empty\"", k->pool_empty}},
           10);
  const struct lease_counters *ls = &m->relay->leases.ctr;
  counters(b, "wtrelay_lease_file_writes_total", "lease file writes",
           (struct lv[]){{"result=\"ok\"", ls->written}, {"result=\"error\"", ls->write_errors}},
           2);
  counter(b, "wtrelay_lease_file_lines_skipped_total",
          "lease file lines that did not parse when it was read", ls->lines_skipped);
  counters(b, "wtrelay_lease_reclaims_total", "released addresses handed to another MAC",
           (struct lv[]){{"lease=\"expired\"", ls->reclaims_expired},
                         {"lease=\"unexpired\"", ls->reclaims_unexpired}},
           2);
  counter(b, "wtrelay_leases_dropped_total",
          "leases forgotten because the lease or room name table was full", ls->dropped);

  /* gateway and NAT */
  if (m->gw) {
    table(b, &gateway_counter_table, m->gw_ctr ? m->gw_ctr : &m->gw->ctr);
    gauge(b, "wtrelay_nat_tcp_connections", "TCP NAT connections", m->gw->ntcp);
    gauge(b, "wtrelay_nat_share_clients", "clients holding NAT flows", m->gw->share_clients.nused);
    if (m->gw->p.hostaddr) {
      const struct hostaddr_counters *hc = &m->gw->p.hostaddr->ctr;
      gauge(b, "wtrelay_host_local_routes", "local and broadcast routes of the host, followed",
            m->gw->p.hostaddr->n);
      counters(b, "wtrelay_host_local_routes_total", "rtnetlink events of the local route mirror",
               (struct lv[]){{"event=\"added\"", hc->added},
                             {"event=\"removed\"", hc->removed},
                             {"event=\"overrun\"", hc->overruns},
                             {"event=\"resync\"", hc->resyncs},
                             {"event=\"full\"", hc->full},
                             {"event=\"error\"", hc->errors}},
               6);
    }
  }

  /* the ops listener itself */
  if (m->ops) {
    const struct ops_counters *o = m->ops;
    counters(b, "wtrelay_ops_http_total", "operations HTTP listener events",
             (struct lv[]){{"event=\"accepted\"", o->accepted},
                           {"event=\"refused_full\"", o->refused_full},
                           {"event=\"request\"", o->requests},
                           {"event=\"response_2xx\"", o->responses_2xx},
                           {"event=\"response_4xx\"", o->responses_4xx},
                           {"event=\"response_5xx\"", o->responses_5xx},
                           {"event=\"too_large\"", o->too_large},
                           {"event=\"timeout\"", o->timeouts},
                           {"event=\"bad_request\"", o->bad_requests},
                           {"event=\"evicted\"", o->evicted}},
             10);
  }
}
