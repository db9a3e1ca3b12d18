/*
 * metrics: every counter of the worker as Prometheus text exposition
 * (version 0.0.4). Names follow Prometheus conventions: the wtrelay_
 * prefix, _total for counters, base units (bytes, seconds); drop reasons
 * and directions are labels of one family. This is application wiring: it
 * reads the counter structs of every module and knows their meaning; no
 * module knows about Prometheus.
 */
#include "wtrelay/metrics.h"
#include "wtrelay/languard.h"

#include <inttypes.h>
#include <stdio.h>

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

void metrics_write(struct ops_buf *b, const struct metrics_src *m)
{
  const struct io_counters *io = m->io;
  const struct quic_counters *q = m->quic;
  const struct h3_counters *h = m->h3;
  const struct relay_counters *r = &m->relay->ctr;
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

  /* bavy protocol */
  counters(b, "wtrelay_control_messages_total", "bavy control messages handled",
           (struct lv[]){{"type=\"register\"", r->registers},
                         {"type=\"assigned\"", r->assigned},
                         {"type=\"heartbeat\"", r->heartbeats},
                         {"type=\"disconnect\"", r->disconnects}},
           4);
  counters(b, "wtrelay_control_refused_total", "control messages refused or bad",
           (struct lv[]){{"reason=\"mac_busy\"", r->register_refused_busy},
                         {"reason=\"pool_exhausted\"", r->register_refused_pool},
                         {"reason=\"other_mac\"", r->register_refused_other_mac},
                         {"reason=\"bad_json\"", r->ctrl_bad_json},
                         {"reason=\"bad_mac\"", r->ctrl_bad_mac},
                         {"reason=\"oversized\"", r->ctrl_oversized},
                         {"reason=\"unknown_type\"", r->ctrl_unknown_type},
                         {"reason=\"switch_full\"", r->ports_full},
                         {"reason=\"reserved_mac\"", r->register_refused_reserved},
                         {"reason=\"rooms_full\"", r->register_refused_rooms},
                         {"reason=\"client_rooms\"", r->register_refused_client_rooms},
                         {"reason=\"client_room_rate\"", r->register_refused_client_rate},
                         {"reason=\"client_address_share\"", r->register_refused_share}},
           13);
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
  counters(b, "wtrelay_takeovers_total",
           "Register for a MAC held by another session: the holder probed, then",
           (struct lv[]){{"result=\"taken_over\"", r->takeovers},
                         {"result=\"holder_alive\"", r->takeover_refused_alive}},
           2);
  counter(b, "wtrelay_takeover_probes_total", "liveness probes sent to a MAC's holder",
          r->takeover_probes);
  counters(b, "wtrelay_sessions_ended_total", "sessions ended by the relay",
           (struct lv[]){{"reason=\"register_timeout\"", r->timeouts_register},
                         {"reason=\"peer_timeout\"", r->timeouts_peer},
                         {"reason=\"relay_full\"", r->sessions_refused_full},
                         {"reason=\"rooms_full\"", r->sessions_refused_rooms},
                         {"reason=\"client_rooms\"", r->sessions_refused_client_rooms},
                         {"reason=\"client_room_rate\"", r->sessions_refused_client_rate},
                         {"reason=\"client_sessions\"", r->sessions_refused_client_sessions}},
           7);
  counter(b, "wtrelay_address_share_recycled_total",
          "Register or DHCP of a client at its address share that got its own oldest sticky lease",
          r->share_recycled);
  counter(b, "wtrelay_client_rate_evictions_total",
          "clients forgotten by the full room-creation rate table", r->clients_evicted);
  counters(b, "wtrelay_frames_total", "Ethernet frames through the relay",
           (struct lv[]){{"direction=\"in\"", r->frames_in}, {"direction=\"out\"", r->frames_out}},
           2);
  counters(b, "wtrelay_frame_bytes_total", "Ethernet frame bytes",
           (struct lv[]){{"direction=\"in\"", r->frame_bytes_in},
                         {"direction=\"out\"", r->frame_bytes_out}},
           2);
  counter(b, "wtrelay_frames_out_chunked_total", "frames sent to a session as chunks",
          r->frames_out_chunked);
  counter(b, "wtrelay_chunks_out_total", "chunks sent", r->chunks_out);
  counters(b, "wtrelay_frames_dropped_total", "frames dropped",
           (struct lv[]){{"reason=\"unregistered\"", r->frames_unregistered},
                         {"reason=\"spoofed_mac\"", r->frames_spoofed},
                         {"reason=\"runt\"", r->frames_runt},
                         {"reason=\"oversized\"", r->frames_oversized},
                         {"reason=\"send_failed\"", r->frames_out_failed},
                         {"reason=\"too_big_for_session\"", r->frames_out_too_big},
                         {"reason=\"bad_chunk_header\"", r->chunks_bad_header},
                         {"reason=\"empty_datagram\"", r->dgram_empty},
                         {"reason=\"unknown_type\"", r->dgram_unknown_type}},
           9);

  /* LAN guards (languard.c): every verdict, even at zero */
  family(b, "wtrelay_lan_guard_drops_total", "counter",
         "frames from sessions the LAN guards dropped, by reason");
  for (int i = 1; i < LANGUARD_NVERDICTS; i++) {
    char label[64];
    snprintf(label, sizeof(label), "reason=\"%s\"",
             languard_verdict_name((enum languard_verdict)i));
    sample(b, "wtrelay_lan_guard_drops_total", label, r->guard_drops[i]);
  }
  counters(b, "wtrelay_lan_guard_bindings_total",
           "DHCP leases bound to the port they were asked through (--allow-any-src-mac)",
           (struct lv[]){{"event=\"added\"", r->bindings_added},
                         {"event=\"replaced\"", r->bindings_replaced}},
           2);
  /* storm control */
  counters(b, "wtrelay_storm_control_drops_total",
           "flooded frames dropped by storm control: at the sender's rate limit (frames), or "
           "flood copies a receiver's half-full datagram queue refused (copies)",
           (struct lv[]){{"reason=\"rate_limited\"", w->flood_limited},
                         {"reason=\"receiver_queue\"", r->flood_out_dropped}},
           2);

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
    const struct gateway_counters *g = &m->gw->ctr;
    counters(b, "wtrelay_gateway_answers_total", "answers from the gateway itself",
             (struct lv[]){{"kind=\"arp\"", g->arp_replies},
                           {"kind=\"echo\"", g->echo_replies},
                           {"kind=\"dhcp_offer\"", g->dhcp_offers},
                           {"kind=\"dhcp_ack\"", g->dhcp_acks},
                           {"kind=\"dhcp_nak\"", g->dhcp_naks}},
             5);
    counter(b, "wtrelay_dhcp_messages_total", "DHCP messages received", g->dhcp_in);
    counters(b, "wtrelay_gateway_drops_total", "packets the gateway dropped or refused",
             (struct lv[]){{"reason=\"bad_ethernet\"", g->bad_eth},
                           {"reason=\"bad_ip\"", g->bad_ip},
                           {"reason=\"bad_l4\"", g->bad_l4},
                           {"reason=\"fragment\"", g->fragments},
                           {"reason=\"spoofed_ip\"", g->spoofed},
                           {"reason=\"ttl_expired\"", g->ttl_expired},
                           {"reason=\"egress_denied\"", g->denied},
                           {"reason=\"other_protocol\"", g->other_proto},
                           {"reason=\"no_such_host\"", g->no_port},
                           {"reason=\"dhcp_bad\"", g->dhcp_bad},
                           {"reason=\"icmp_disabled\"", g->icmp_disabled_drops}},
             11);
    counters(b, "wtrelay_nat_flows_total", "NAT mappings",
             (struct lv[]){{"protocol=\"udp\",event=\"opened\"", g->udp_flows_opened},
                           {"protocol=\"udp\",event=\"closed\"", g->udp_flows_closed},
                           {"protocol=\"udp\",event=\"refused_full\"", g->udp_flows_full},
                           {"protocol=\"icmp\",event=\"opened\"", g->icmp_flows_opened},
                           {"protocol=\"icmp\",event=\"closed\"", g->icmp_flows_closed},
                           {"protocol=\"icmp\",event=\"refused_full\"", g->icmp_flows_full}},
             6);
    counters(b, "wtrelay_nat_packets_total", "packets through the NAT",
             (struct lv[]){{"protocol=\"udp\",direction=\"out\"", g->udp_out},
                           {"protocol=\"udp\",direction=\"in\"", g->udp_in},
                           {"protocol=\"icmp\",direction=\"out\"", g->icmp_out},
                           {"protocol=\"icmp\",direction=\"in\"", g->icmp_in},
                           {"protocol=\"icmp_error\",direction=\"in\"", g->udp_icmp_errors}},
             5);
    counter(b, "wtrelay_nat_send_failures_total", "NAT packets that could not be sent",
            g->udp_send_failed);
    gauge(b, "wtrelay_nat_tcp_connections", "TCP NAT connections", m->gw->ntcp);
    counters(b, "wtrelay_nat_tcp_connections_total", "TCP NAT connection events",
             (struct lv[]){{"event=\"opened\"", g->tcp_opened},
                           {"event=\"established\"", g->tcp_established},
                           {"event=\"closed\"", g->tcp_closed},
                           {"event=\"refused_full\"", g->tcp_full},
                           {"event=\"connect_refused\"", g->tcp_refused},
                           {"event=\"connect_failed\"", g->tcp_connect_failed},
                           {"event=\"reset_by_guest\"", g->tcp_rst_in},
                           {"event=\"reset_to_guest\"", g->tcp_rst_out},
                           {"event=\"host_error\"", g->tcp_host_errors},
                           {"event=\"timeout\"", g->tcp_idle_closed},
                           {"event=\"no_timer\"", g->tcp_no_timer}},
             11);
    counters(b, "wtrelay_nat_share_refusals_total",
             "new NAT flows refused by a fair share (per client, per VM) or the rate of new flows",
             (struct lv[]){{"reason=\"udp_per_client\"", g->share_udp_client},
                           {"reason=\"tcp_per_client\"", g->share_tcp_client},
                           {"reason=\"tcp_pending_per_client\"", g->share_pending_client},
                           {"reason=\"tcp_pending_per_vm\"", g->share_pending_vm},
                           {"reason=\"rate_udp\"", g->rate_limited[NAT_SHARE_P_UDP]},
                           {"reason=\"rate_tcp\"", g->rate_limited[NAT_SHARE_P_TCP]},
                           {"reason=\"rate_icmp\"", g->rate_limited[NAT_SHARE_P_ICMP]},
                           {"reason=\"account_table_full\"", g->share_table_full}},
             8);
    counter(b, "wtrelay_nat_share_vm_accounts_reused_total",
            "idle per-VM accounts reused while their new-flow bucket was still refilling",
            g->share_vm_evicted);
    gauge(b, "wtrelay_nat_share_clients", "clients holding NAT flows", m->gw->share_clients.nused);
    counters(b, "wtrelay_nat_tcp_segments_total", "TCP segments to and from the guests",
             (struct lv[]){{"direction=\"from_guest\"", g->tcp_segs_in},
                           {"direction=\"to_guest\"", g->tcp_segs_out},
                           {"direction=\"retransmitted\"", g->tcp_retransmits},
                           {"direction=\"tail_loss_probe\"", g->tcp_tail_probes},
                           {"direction=\"out_of_order_from_guest\"", g->tcp_out_of_order}},
             5);
    counters(b, "wtrelay_nat_tcp_bytes_total", "TCP payload bytes through the NAT",
             (struct lv[]){{"direction=\"to_internet\"", g->tcp_bytes_out},
                           {"direction=\"to_guest\"", g->tcp_bytes_in}},
             2);
    counters(b, "wtrelay_dns_forwarder_total", "DNS forwarder events",
             (struct lv[]){{"event=\"query\"", g->dns_queries},
                           {"event=\"answer\"", g->dns_answers},
                           {"event=\"timeout\"", g->dns_timeouts},
                           {"event=\"full\"", g->dns_full},
                           {"event=\"bad\"", g->dns_bad},
                           {"event=\"unmatched\"", g->dns_unmatched},
                           {"event=\"no_upstream\"", g->dns_no_upstream}},
             7);
    counters(b, "wtrelay_nat_security_total",
             "NAT filtering, own-address refusals and per-VM shares of DNS and echo ids",
             (struct lv[]){{"event=\"udp_filtered\"", g->udp_filtered},
                           {"event=\"udp_peer_replaced\"", g->udp_peers_replaced},
                           {"event=\"local_refused\"", g->local_refused},
                           {"event=\"dns_vm_full\"", g->dns_vm_full},
                           {"event=\"dns_socket_failed\"", g->dns_sock_failed},
                           {"event=\"icmp_vm_full\"", g->icmp_vm_full}},
             6);
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
