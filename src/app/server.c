/*
 * server: the relay process. Two levels:
 *
 * - The process (struct server): the configuration, the certificate store
 *   (the reference new connections start from, under cert_lock), the
 *   secrets every worker's QUIC endpoint shares (struct quic_shared:
 *   stateless reset, token key), the one signalfd, the certificate poll,
 *   and --workers worker threads. Its thread (the caller of server_run)
 *   waits on the signalfd and on the workers' exit notes; it reaches a
 *   worker only through that worker's event bits and doorbell eventfd.
 * - A worker (struct server_worker), one thread: its own io_uring, timer
 *   heap, UDP socket on the port (SO_REUSEPORT when there are several),
 *   QUIC endpoint, h3, relay (rooms, switch, gateway, NAT), and its own
 *   reference to the certificate. A worker owns its data: no other thread
 *   reads or writes it, except the published per-worker gauges (atomics).
 *   Worker 0 also runs the ops listener.
 *
 * Steering without BPF: the kernel spreads datagrams over the sockets by
 * their 4-tuple. A packet for a connection of another worker (its DCID's
 * first byte names the worker, quic.c) is copied into the ring of that
 * worker pair (fring) and read by its owner, never answered here. Hook for
 * the SK_REUSEPORT program: see steer_attach_hook below.
 *
 * Shutdown (SIGINT/SIGTERM): stop accepting, send GOAWAY and a
 * CLOSE_WEBTRANSPORT_SESSION on every session, then CONNECTION_CLOSE on
 * every connection a moment later, then leave the loop: well within a
 * second.
 *
 * The QUIC socket binds --bind, "::" (dual-stack) by default. A host
 * without IPv6 (a kernel booted with ipv6.disable=1 or built without it, a
 * sandbox that refuses AF_INET6) fails that with EAFNOSUPPORT or
 * EADDRNOTAVAIL; then the default, and only the default, falls back to
 * 0.0.0.0 with a warning. An explicit --bind :: is a request for IPv6 and
 * fails like any other address. (net.ipv6.conf.*.disable_ipv6 does not
 * count: "::" still binds there and serves IPv4 through mapped addresses.)
 */
#include "wtrelay/server.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wtrelay/auth.h"
#include "wtrelay/capture.h"
#include "wtrelay/container_of.h"
#include "wtrelay/fed.h"
#include "wtrelay/filewatch.h"
#include "wtrelay/fring.h"
#include "wtrelay/gateway.h"
#include "wtrelay/h3.h"
#include "wtrelay/io.h"
#include "wtrelay/log.h"
#include "wtrelay/metrics.h"
#include "wtrelay/ops.h"
#include "wtrelay/quic.h"
#include "wtrelay/relay.h"
#include "wtrelay/rng.h"
#include "wtrelay/roomdir.h"
#include "wtrelay/steer.h"
#include "wtrelay/timeunit.h"
#include "wtrelay/worker.h"
#include "wtrelay/ws_listen.h"

#include "fwd_api.h"
#include "pcap_http.h"
#include "status.h"

#define SHUTDOWN_STEP_NS 150000000ull

/* Hand-off rings: slots per worker pair, and the largest QUIC datagram
 * handed over (larger ones are dropped and counted: no client sends them,
 * ngtcp2's packets are at most the path's UDP payload). */
#define HANDOFF_SLOTS 256
#define HANDOFF_MAX_PKT 2048
/* Control rings (takeover asks and verdicts, forwarded connections and
 * datagrams on their way to the VM's worker): slots per worker pair. A
 * Register that collides sends one ask to each other worker, each answered
 * once; a burst of accepts on a forwarded port (a page's parallel
 * connections) sends one handoff each: 1024 slots (24 KiB a pair) hold
 * one loop turn's worth. */
#define CONTROL_SLOTS 1024

/* A worker's process events (server_worker.events), set by the process
 * thread with its doorbell rung after. */
#define EV_STOP 0x1u     /* SIGINT/SIGTERM: close every session, then leave */
#define EV_STOP_NOW 0x2u /* a second signal, or another worker failed: leave now */
#define EV_CERT 0x4u     /* the store holds a new certificate: take it */
#define EV_RELOAD 0x8u   /* SIGHUP: check the token key now */

/* What a hand-off slot carries before the packet's bytes. */
struct handoff_meta {
  union io_sockaddr peer;
  socklen_t peerlen;
  struct io_local local;
};

/* Gauges a worker publishes once per loop turn (relaxed stores by the
 * worker, relaxed loads by the ops listener on worker 0: no torn values,
 * no locks; each is a snapshot, not a sum over a consistent instant). */
struct server_worker_pub {
  _Atomic uint64_t sessions, dgrams_in, dgrams_out, handed_off, handoff_in, turns, pkts_in;
  _Atomic uint64_t uplink_no_room;
  _Atomic uint64_t turn_ns; /* the clock at its last loop turn */
  _Atomic uint64_t busy_ns; /* worker.busy_ns: time outside the wait on the ring */
  /* busy time / wall time over the last UTIL_WINDOW_NS, in millionths
   * (snapshot_publish) */
  _Atomic uint64_t util_ppm;
  /* readiness: not shutting down, and the window of the certificate its
   * new connections get (unix seconds) */
  _Atomic bool stopping;
  _Atomic int64_t cert_not_before, cert_not_after;
};

/* Everything a worker counts, for /metrics: its struct metrics_worker
 * (every module's counters struct and its gauges, all 64-bit words) as
 * atomic words. The owner fills one from its live modules and copies it in
 * with relaxed atomic stores (snapshot_publish, every SNAPSHOT_NS and at
 * the end); worker 0 reads every worker's with relaxed loads and sums them
 * word by word: no torn value, no lock, no data race; a sum is a sum of
 * values each at most SNAPSHOT_NS old. Process-wide values (the
 * directory's lease table, the ops listener, certificates) are not in it:
 * /metrics reads them once. */
#define WORDS(T) (sizeof(T) / sizeof(uint64_t))
static_assert(sizeof(struct metrics_worker) % 8 == 0, "metrics_worker: 64-bit words");
#define SNAPSHOT_NS (100 * NS_PER_MS)
/* The window of the loop utilisation gauge. */
#define UTIL_WINDOW_NS NS_PER_S

struct server_worker_snap {
  _Atomic uint64_t w[WORDS(struct metrics_worker)];
};

struct server;

struct server_worker {
  struct server *proc;
  uint32_t index;
  struct worker w;
  struct io_udp_sock *udp;
  struct quic_endpoint quic;
  struct h3_endpoint h3;
  struct relay relay;
  bool relay_ok;
  struct policy policy;
  struct hostaddr hostaddr; /* the host's local routes, followed live */
  struct gateway gw;
  bool gw_ok;
  struct ops ops; /* worker 0 only */
  bool ops_ok;
  struct ws_listen ws; /* the WebSocket fallback (--ws-listen) */
  bool ws_ok;
  struct auth auth; /* tokens and origins (auth.c) */
  bool auth_ok;
  /* this worker's reference to the certificate new connections get; each
   * connection holds its own through its TLS session */
  struct tls_cert *cert;
  struct timer auth_timer;
  struct timer shutdown_timer, shutdown_deadline;
  int shutdown_phase;
  /* process -> worker: event bits and the doorbell (an eventfd polled on
   * the worker's ring) */
  _Atomic uint32_t events;
  int bell;
  bool bell_armed;
  /* hand-off rings into this worker: proc->rings[j * n + index], j != index */
  uint64_t handoff_in;
  uint64_t uplink_no_room; /* frames from another worker's copy of a room this one has not */
  struct server_worker_pub pub;
  struct server_worker_snap snap;
  uint64_t snap_ns;             /* last snapshot_publish */
  struct timer snap_timer;      /* publishes an idle worker's snapshot too */
  uint64_t util_t0, util_busy0; /* start of the utilisation window: clock, busy_ns */
  struct timer stall_timer;     /* WTRELAY_TEST_STALL (see stall_hook) */
  struct status_snap status;    /* its sessions for /status (status.h); freed with the process */
  bool status_ok;
  bool worker_ok, h3_ok, quic_ok;
  pthread_t thread;
  bool started;
  int rc; /* worker_run's result */
};

/* What a worker leaves for the exit line as it stops (final_store); the
 * process writes the line from them once every worker has ended
 * (log_exit_counters). */
struct worker_final {
  struct metrics_worker mw;
  uint64_t turns, busy_ns, wait_ns, handoff_in, uplink_no_room; /* its loop */
  /* worker 0 only: the process-wide lease table and the ops listener */
  struct lease_counters lease;
  uint64_t leases, leases_active;
  struct ops_counters ops;
  bool ops_ok;
};

struct server {
  const struct config *cfg;
  uint8_t ula_global_id[5]; /* the rooms' IPv6 ULA prefixes (gateway.h), random per process */
  uint32_t nworkers;
  struct server_worker **ws;
  struct steer *steer; /* the SK_REUSEPORT program, NULL = kernel hash + hand-off */
  int steer_fd;        /* the group's socket as steer holds it (a dup of worker 0's), -1 */
  int port_claim;      /* io_udp_port_claim's descriptor with several workers, -1 */
  struct nat_share_clients nat_clients; /* NAT client shares over the workers (several) */
  struct fwd_counts fwd_counts;         /* the forwards' bounds over the workers (atomics) */
  bool nat_clients_ok;
  struct metrics_worker metrics_sum; /* /metrics' sum: worker 0's thread (the ops listener) only */
  struct worker_final *finals;       /* each worker's counters as it stopped (the exit line) */
  struct fring *rings;  /* hand-off: nworkers x nworkers, [from * n + to]; the diagonal unused */
  struct fring *frings; /* frames between room copies, the same layout */
  struct fring *crings; /* control messages (takeover across workers), the same layout */
  struct roomdir dir;   /* rooms, pools, leases: shared by every worker's relay */
  bool dir_ok;
  struct fed fed; /* --nats: rooms across relays (fed.h) */
  bool fed_ok;
  struct capture_hub cap; /* packet capture (GET /rooms/<room>/pcap, --pcap) */
  bool cap_ok;
  int freed; /* workers other than 0 that freed their data (worker 0 frees last: its
              * lease table is the directory's) */
  struct quic_shared shared;
  struct quic_iptab ips; /* per-address connection counts over every worker (N > 1) */
  bool ips_ok;
  struct quic_counts counts; /* connections, handshakes, unvalidated over every worker (N > 1) */
  char bind[64];             /* the address the sockets are bound to: cfg->bind or the fallback */
  uint16_t port;
  /* the certificate store: the process's reference to the certificate new
   * connections get; workers copy it (with a reference) under cert_lock */
  pthread_mutex_t cert_lock;
  struct tls_cert *cert;
  struct stat cert_st, key_st;
  _Atomic uint64_t cert_reloads, cert_reload_failures;
  uint64_t start_time;
  /* start-up: each worker builds itself in its thread (its ring is single
   * issuer), reports, and waits for every socket to be bound */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int built;    /* workers that finished building (with built_rc) */
  int nstarted; /* worker threads started */
  int built_rc; /* the first failure */
  bool go;      /* every worker built: run */
  int done_fd;  /* eventfd: a worker thread ended */
  /* WTRELAY_TEST_STALL=worker:ms:after_s, read once at start (stall_hook) */
  uint32_t stall_worker, stall_ms, stall_after_s;
  bool stall;
  int sigfd;
  sigset_t sigmask;
};

/* Timers, by owner (grep timer_arm): every QUIC connection has its
 * loss/idle timer (quic.c; at most max_sessions connections), every h3
 * connection its close delay (h3.c; one per QUIC connection), every relay
 * peer its takeover deadline (relay.c; max_sessions peers), every TCP NAT
 * connection its connect/RTO/idle timer (nat_tcp.c; max_tcp_conns). UDP and
 * ICMP flows and DNS queries have none: the gateway's sweep ages them.
 * Fixed: the relay's sweep and aging, the lease writer, the gateway's
 * sweep, the ops sweep, the token-key poll, the metrics snapshot, the
 * test stall hook and the two shutdown timers
 * (10), rounded up to SERVER_FIXED_TIMERS for fixed timers to come. A
 * failed arm is counted (wtrelay_timer_arm_failures_total). */
#define SERVER_TIMERS_PER_SESSION 3
#define SERVER_TIMERS_PER_TCP_CONN 1
#define SERVER_FIXED_TIMERS 64

uint32_t server_timers_needed(const struct config *cfg)
{
  uint64_t n = (uint64_t)cfg->max_sessions * SERVER_TIMERS_PER_SESSION +
               (uint64_t)cfg->max_tcp_conns * SERVER_TIMERS_PER_TCP_CONN + SERVER_FIXED_TIMERS;
  return n > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)n;
}

/* The NAT never reaches the relay's own addresses: a /32 deny for each. */
static void deny_own_addresses(struct policy *p)
{
  struct ifaddrs *ifa = NULL;
  if (getifaddrs(&ifa) < 0)
    return;
  for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
      policy_add_addr(p, ntohl(((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr.s_addr), 32,
                      false, true);
  freeifaddrs(ifa);
}

/* Every NAT flow is a socket: allow as many descriptors as the hard limit. */
static void raise_nofile(uint32_t need)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < need)
    log_warn("file descriptor limit is lower than the NAT bounds need", "limit=%llu need=%u",
             (unsigned long long)rl.rlim_cur, need);
}

static const struct fwd_pass_ops fwd_pass_ops;

static int gateway_setup(struct server_worker *s)
{
  const struct config *cfg = s->proc->cfg;
  struct gateway_params gp;
  memset(&gp, 0, sizeof(gp));
  memcpy(gp.mac, cfg->gateway_mac, 6);
  gp.netmask = cfg->prefix ? ~0u << (32 - cfg->prefix) : 0;
  gp.subnet = cfg->subnet;
  gp.ip = cfg->subnet + 2;
  gp.dns_ip = cfg->subnet + 3;
  gp.announce_dns = cfg->dns ? cfg->dns : gp.dns_ip;
  memcpy(gp.ula_global_id, s->proc->ula_global_id, sizeof(gp.ula_global_id));
  gp.subnet6_fixed = cfg->has_subnet6;
  memcpy(gp.subnet6, cfg->subnet6, sizeof(gp.subnet6));
  gp.mtu = (uint16_t)cfg->mtu;
  gp.lease_s = 86400;
  gp.max_rooms = cfg->max_rooms;
  gp.max_udp_flows = cfg->max_udp_flows;
  gp.max_udp_flows_per_vm = cfg->max_udp_flows_per_vm;
  gp.udp_timeout_ns = (uint64_t)cfg->udp_timeout_s * 1000000000ull;
  gp.max_icmp_flows = 256;
  gp.icmp_timeout_ns = 30ull * 1000000000ull;
  gp.icmp_worker = s->index;
  gp.icmp_workers = s->proc->nworkers;
  gp.max_tcp_conns = cfg->max_tcp_conns;
  gp.max_tcp_conns_per_vm = cfg->max_tcp_conns_per_vm;
  gp.max_udp_flows_per_client =
      cfg->max_udp_flows_per_client ? cfg->max_udp_flows_per_client : (cfg->max_udp_flows + 3) / 4;
  gp.max_tcp_conns_per_client =
      cfg->max_tcp_conns_per_client ? cfg->max_tcp_conns_per_client : (cfg->max_tcp_conns + 3) / 4;
  gp.max_tcp_pending_per_client = cfg->max_tcp_pending_per_client;
  gp.max_tcp_pending_per_vm = cfg->max_tcp_pending_per_vm;
  gp.nat_new_rate = cfg->nat_new_rate;
  gp.nat_new_burst = cfg->nat_new_burst;
  if (s->proc->nat_clients_ok) {
    gp.shared_clients = &s->proc->nat_clients;
    gp.report_shared = s->index == 0;
  }
  gp.tcp_idle_ns = (uint64_t)cfg->tcp_idle_timeout_s * NS_PER_S;
  gp.tcp_connect_timeout_ns = 10 * NS_PER_S;
  gp.max_dns_inflight = 1024;
  gp.dns_timeout_ns = 5ull * 1000000000ull;
  for (uint32_t i = 0; i < cfg->ndns_upstream; i++)
    if (io_sockaddr_parse(cfg->dns_upstream[i], cfg->dns_upstream_port[i],
                          &gp.upstream[gp.nupstreams], &gp.upstream_len[gp.nupstreams]) == 0)
      gp.nupstreams++;
  if (!cfg->ndns_upstream)
    dns_fwd_load_resolv_conf(&gp, "/etc/resolv.conf");
  gp.max_dns_inflight_per_vm = cfg->max_dns_inflight_per_vm;
  gp.max_icmp_flows_per_vm = cfg->max_icmp_flows_per_vm;
  /* worker 0 owns the forwards (their sockets; the ops API runs there
   * too); a connection whose VM sits on another worker's LAN is handed
   * over the control rings to the worker that has it */
  if (s->index == 0) {
    gp.forwards = cfg->forward;
    gp.nforwards = cfg->nforward;
  }
  gp.max_fwd_conns = cfg->max_forward_conns;
  gp.max_fwd_conns_per_fwd = cfg->max_forward_conns_per_fwd;
  gp.ngateways = s->proc->nworkers;
  if (s->proc->nworkers > 1) {
    gp.fwd_counts = &s->proc->fwd_counts;
    gp.fwd_pass = &fwd_pass_ops;
    gp.fwd_pass_ctx = s;
  }
  policy_init(&s->policy);
  /* the start-up snapshot stays as a floor; hostaddr follows every change */
  deny_own_addresses(&s->policy);
  hostaddr_init(&s->hostaddr);
  int hrc = hostaddr_open(&s->hostaddr, &s->w.io);
  if (hrc < 0)
    log_warn("cannot follow the host's local addresses (rtnetlink): only those of start-up "
             "are refused",
             "err=\"%s\"", strerror(-hrc));
  else
    gp.hostaddr = &s->hostaddr;
  for (uint32_t i = 0; i < cfg->negress; i++)
    policy_add(&s->policy, cfg->egress[i].cidr, cfg->egress[i].allow);
  gp.policy = &s->policy;
  raise_nofile(cfg->max_udp_flows + gp.max_icmp_flows + cfg->max_tcp_conns + gp.max_dns_inflight +
               gp.nforwards + 64);
  int rc = gateway_init(&s->gw, &gp, &s->relay.sw, &s->w.io, &s->w.timers, &s->w.now,
                        &relay_addr_ops, &s->relay);
  if (rc < 0) {
    hostaddr_fini(&s->hostaddr);
    return rc;
  }
  s->gw_ok = true;
  relay_set_gateway(&s->relay, &s->gw);
  char a[16];
  log_info("gateway",
           "ip=%s mac=%02x:%02x:%02x:%02x:%02x:%02x dns_upstreams=%u icmp_nat=%d worker=%u",
           net_ip_str(gp.ip, a), gp.mac[0], gp.mac[1], gp.mac[2], gp.mac[3], gp.mac[4], gp.mac[5],
           gp.nupstreams, s->gw.icmp_ok, s->index);
  return 0;
}

/* ---- hand-off between workers (fallback steering) ---- */

static struct fring *ring_of(struct server *p, uint32_t from, uint32_t to)
{
  return &p->rings[(size_t)from * p->nworkers + to];
}

static struct fring *fring_of(struct server *p, uint32_t from, uint32_t to)
{
  return &p->frings[(size_t)from * p->nworkers + to];
}

/* relay_uplink_send_fn, on the sending worker's thread: one copy of the
 * frame into the ring toward the room's copy on worker `to`. A full ring
 * drops and counts (fring); the doorbell rings once per turn. */
static int uplink_send(void *ctx, uint32_t to, uint32_t gid, const struct switch_frame *f)
{
  struct server_worker *s = ctx;
  int rc = fring_push(fring_of(s->proc, s->index, to), gid, f->flood ? FRING_F_FLOOD : 0, f->iov,
                      f->iovcnt);
  return rc < 0 ? rc : 0;
}

/* Switches every frame other workers' copies sent, from the uplink port
 * toward the sender, straight from the ring's slot. */
static void frames_drain(struct server_worker *s, uint32_t from)
{
  struct fring *r = fring_of(s->proc, from, s->index);
  const struct fring_slot *sl;
  while ((sl = fring_peek(r))) {
    if (relay_uplink_input(&s->relay, from, sl->domain, sl->data, sl->len) == -ENOENT)
      s->uplink_no_room++;
    fring_release(r);
  }
}

/* quic_shared.handoff, on the thread of worker `from`: one copy of the
 * packet and its addresses into the ring toward `to`; a full ring drops
 * and counts (fring), it never waits. The doorbell rings once per turn. */
static void handoff_push(void *ctx, uint32_t from, uint32_t to, const uint8_t *pkt, size_t len,
                         const union io_sockaddr *peer, socklen_t peerlen,
                         const struct io_local *local)
{
  struct server *p = ctx;
  struct handoff_meta m;
  memset(&m, 0, sizeof(m));
  memcpy(&m.peer, peer, peerlen <= sizeof(m.peer) ? peerlen : sizeof(m.peer));
  m.peerlen = peerlen;
  if (local)
    m.local = *local;
  struct iovec iov[2] = {{.iov_base = &m, .iov_len = sizeof(m)},
                         {.iov_base = (void *)pkt, .iov_len = len}};
  (void)fring_push(ring_of(p, from, to), 0, 0, iov, 2);
}

/* Reads every packet other workers handed to this one, as if received
 * on its own socket (replies leave from it: the same address and port). */
static void handoff_drain(struct server_worker *s, uint32_t from)
{
  struct fring *r = ring_of(s->proc, from, s->index);
  const struct fring_slot *sl;
  while ((sl = fring_peek(r))) {
    if (sl->len > sizeof(struct handoff_meta)) {
      struct handoff_meta m;
      memcpy(&m, sl->data, sizeof(m));
      s->handoff_in++;
      quic_endpoint_on_packet(&s->quic, s->udp, (uint8_t *)sl->data + sizeof(m),
                              sl->len - sizeof(m), &m.peer, m.peerlen, &m.local);
    }
    fring_release(r);
  }
}

/* ---- control messages between workers: takeover across workers ----
 * The relay asks and answers through struct relay_remote_ops; each message
 * is one small slot in the control ring of the worker pair (the producer
 * is the sender's thread, the consumer the receiver's), read on the
 * receiver's loop, which calls into its own relay. A full ring refuses the
 * message (counted by the ring and by the relay); nothing waits. */

#define CTL_ASK 1u
#define CTL_VERDICT 2u
#define CTL_FWD 3u /* an accepted forwarded connection (token: its struct fwd_handoff) */

struct ctl_msg {
  uint32_t kind; /* CTL_* */
  uint32_t gid;  /* ask: the room's ring id */
  uint64_t token;
  uint8_t mac[6];  /* ask */
  uint8_t verdict; /* verdict: enum relay_verdict */
  uint8_t pad;
};

static struct fring *cring_of(struct server *p, uint32_t from, uint32_t to)
{
  return &p->crings[(size_t)from * p->nworkers + to];
}

static int ctl_push(struct server_worker *s, uint32_t to, const struct ctl_msg *m)
{
  if (to >= s->proc->nworkers || to == s->index)
    return -EINVAL;
  struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof(*m)};
  return fring_push(cring_of(s->proc, s->index, to), m->kind, 0, &iov, 1);
}

static int ctl_ask(void *ctx, uint32_t to, uint32_t gid, const uint8_t mac[6], uint64_t token)
{
  struct ctl_msg m = {.kind = CTL_ASK, .gid = gid, .token = token};
  memcpy(m.mac, mac, 6);
  return ctl_push(ctx, to, &m);
}

static int ctl_answer(void *ctx, uint32_t to, uint64_t token, enum relay_verdict v)
{
  struct ctl_msg m = {.kind = CTL_VERDICT, .token = token, .verdict = (uint8_t)v};
  return ctl_push(ctx, to, &m);
}

static const struct relay_remote_ops ctl_ops = {.ask = ctl_ask, .answer = ctl_answer};

/* A forwarded connection whose VM is not on this worker's LAN: to the next
 * worker (each looks in turn; the last one asked refuses it). */
static int ctl_fwd_pass(void *ctx, struct fwd_handoff *h)
{
  struct server_worker *s = ctx;
  struct ctl_msg m = {.kind = CTL_FWD, .token = (uint64_t)(uintptr_t)h};
  return ctl_push(s, (s->index + 1) % s->proc->nworkers, &m);
}

static const struct fwd_pass_ops fwd_pass_ops = {.pass = ctl_fwd_pass};

static void ctl_drain(struct server_worker *s, uint32_t from)
{
  struct fring *r = cring_of(s->proc, from, s->index);
  const struct fring_slot *sl;
  while ((sl = fring_peek(r))) {
    struct ctl_msg m;
    if (sl->len == sizeof(m)) {
      memcpy(&m, sl->data, sizeof(m));
      if (m.kind == CTL_ASK)
        relay_takeover_ask(&s->relay, from, m.gid, m.mac, m.token);
      else if (m.kind == CTL_VERDICT)
        relay_takeover_verdict(&s->relay, from, m.token, (enum relay_verdict)m.verdict);
      else if (m.kind == CTL_FWD)
        gateway_fwd_take(&s->gw, (struct fwd_handoff *)(uintptr_t)m.token);
    }
    fring_release(r);
  }
}

/* ---- doorbells: one poll per eventfd on the worker's ring ----
 * user_data index 0: the process's doorbell; 1 + j: the hand-off ring from
 * worker j; 1 + n + j: the frame ring from worker j; 1 + 2n + j: the
 * control ring from worker j; 1 + 3n: the federation's incoming ring (--nats). */

/* ---- the federation uplink (--nats): fed.h carries the frames ---- */

static int fed_input(void *ctx, uint32_t ring_id, const uint8_t *frame, size_t len)
{
  struct server_worker *s = ctx;
  return relay_fed_input(&s->relay, ring_id, frame, len);
}

static void fed_open(void *ctx, uint32_t ring_id, const char *name)
{
  struct server_worker *s = ctx;
  fed_room_open(&s->proc->fed, s->index, ring_id, name);
}

static void fed_close(void *ctx, uint32_t ring_id)
{
  struct server_worker *s = ctx;
  fed_room_close(&s->proc->fed, s->index, ring_id);
}

static int fed_out(void *ctx, uint32_t ring_id, const struct switch_frame *f)
{
  struct server_worker *s = ctx;
  return fed_send(&s->proc->fed, s->index, ring_id, f, s->w.now);
}

static int fed_claim(void *ctx, uint64_t token, const char *name, const uint8_t mac[6],
                     uint32_t candidate)
{
  struct server_worker *s = ctx;
  return fed_lease_claim(&s->proc->fed, s->index, token, name, mac, candidate);
}

static void fed_release(void *ctx, const char *name, const uint8_t mac[6], uint32_t ip)
{
  struct server_worker *s = ctx;
  fed_lease_release(&s->proc->fed, s->index, name, mac, ip);
}

static void fed_lease_in(void *ctx, const struct fed_lease_ans *a)
{
  struct server_worker *s = ctx;
  relay_fed_lease(&s->relay, a->token, (int)a->status, a->ip);
}

static void fed_takeover_in(void *ctx, const char *room, const uint8_t mac[6], bool conflict)
{
  struct server_worker *s = ctx;
  relay_fed_takeover(&s->relay, room, mac, conflict);
}

/* fed_params.local_busy: the lease thread's look at the process's pools. */
static bool fed_local_busy(void *ctx, const char *room, uint32_t ip, const uint8_t mac[6])
{
  struct server *p = ctx;
  uint8_t holder[6];
  bool busy = false;
  roomdir_lock(&p->dir);
  uint32_t id = roomdir_find(&p->dir, room);
  if (id != ROOMDIR_NONE)
    busy = ippool_lookup_ip(roomdir_pool(&p->dir, id), ip, holder) && memcmp(holder, mac, 6) != 0;
  roomdir_unlock(&p->dir);
  return busy;
}

/* fed_params.local_take: the lease thread moves a MAC's local lease to
 * the address the cluster gave it, atomically with the other workers'
 * Registers (the directory's lock). */
static int fed_local_take(void *ctx, const char *room, const uint8_t mac[6], uint32_t from,
                          uint32_t to)
{
  struct server *p = ctx;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  int rc = 0;
  roomdir_lock(&p->dir);
  uint32_t id = roomdir_find(&p->dir, room);
  if (id != ROOMDIR_NONE && roomdir_pool(&p->dir, id)->observer)
    rc = ippool_move(roomdir_pool(&p->dir, id), mac, from, to, now);
  roomdir_unlock(&p->dir);
  return rc == -EBUSY ? -EBUSY : 0;
}

static const struct relay_fed_ops fed_ops = {.open = fed_open,
                                             .close = fed_close,
                                             .send = fed_out,
                                             .lease_claim = fed_claim,
                                             .lease_release = fed_release};
static const struct fed_drain_ops fed_drain_ops = {
    .input = fed_input, .lease = fed_lease_in, .takeover = fed_takeover_in};

static void bell_arm(struct server_worker *s, uint32_t idx)
{
  uint32_t n = s->proc->nworkers;
  int fd = idx == 1 + 3 * n ? fed_bell_fd(&s->proc->fed, s->index)
           : idx == 0       ? s->bell
           : idx <= n       ? fring_doorbell_fd(ring_of(s->proc, idx - 1, s->index))
           : idx <= 2 * n   ? fring_doorbell_fd(fring_of(s->proc, idx - 1 - n, s->index))
                            : fring_doorbell_fd(cring_of(s->proc, idx - 1 - 2 * n, s->index));
  struct io_uring_sqe *sqe = io_sqe(&s->w.io);
  if (!sqe) {
    log_error("no submission entry for a worker doorbell", "worker=%u", s->index);
    return;
  }
  io_uring_prep_poll_add(sqe, fd, POLLIN);
  io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_BELL, idx));
}

static void process_events(struct server_worker *s);

static void on_bell(void *ctx, uint32_t idx, struct io_uring_cqe *cqe)
{
  struct server_worker *s = ctx;
  if (cqe->res == -ECANCELED)
    return;
  if (idx == 0) {
    uint64_t v;
    while (read(s->bell, &v, sizeof(v)) == (ssize_t)sizeof(v))
      ;
    process_events(s);
  } else if (idx - 1 < s->proc->nworkers) {
    (void)fring_doorbell_ack(ring_of(s->proc, idx - 1, s->index));
    handoff_drain(s, idx - 1);
  } else if (idx - 1 - s->proc->nworkers < s->proc->nworkers) {
    uint32_t from = idx - 1 - s->proc->nworkers;
    (void)fring_doorbell_ack(fring_of(s->proc, from, s->index));
    frames_drain(s, from);
  } else if (idx - 1 - 2 * s->proc->nworkers < s->proc->nworkers) {
    uint32_t from = idx - 1 - 2 * s->proc->nworkers;
    (void)fring_doorbell_ack(cring_of(s->proc, from, s->index));
    ctl_drain(s, from);
  } else if (idx == 1 + 3 * s->proc->nworkers && s->proc->fed_ok) {
    fed_drain(&s->proc->fed, s->index, &fed_drain_ops, s, s->w.now);
  }
  if (!s->w.stop)
    bell_arm(s, idx);
}

/* ---- the loop turn ---- */

static void publish(struct server_worker *s)
{
  struct server_worker_pub *g = &s->pub;
  atomic_store_explicit(&g->sessions, quic_endpoint_active(&s->quic), memory_order_relaxed);
  atomic_store_explicit(&g->dgrams_in, s->quic.ctr.dgrams_in, memory_order_relaxed);
  atomic_store_explicit(&g->dgrams_out, s->quic.ctr.dgrams_out, memory_order_relaxed);
  atomic_store_explicit(&g->handed_off, s->quic.ctr.pkts_handed_off, memory_order_relaxed);
  atomic_store_explicit(&g->handoff_in, s->handoff_in, memory_order_relaxed);
  atomic_store_explicit(&g->pkts_in, s->quic.ctr.pkts_in, memory_order_relaxed);
  atomic_store_explicit(&g->turns, s->w.turns, memory_order_relaxed);
  atomic_store_explicit(&g->uplink_no_room, s->uplink_no_room, memory_order_relaxed);
  atomic_store_explicit(&g->turn_ns, s->w.now, memory_order_relaxed);
  atomic_store_explicit(&g->busy_ns, s->w.busy_ns, memory_order_relaxed);
}

static void words_store(_Atomic uint64_t *dst, const void *src, size_t n)
{
  const uint64_t *w = src;
  for (size_t i = 0; i < n; i++)
    atomic_store_explicit(&dst[i], w[i], memory_order_relaxed);
}

static void words_add(void *dst, _Atomic uint64_t *src, size_t n)
{
  uint64_t *w = dst;
  for (size_t i = 0; i < n; i++)
    w[i] += atomic_load_explicit(&src[i], memory_order_relaxed);
}

/* The worker's live counters and gauges (its own thread only). */
static void worker_counters(struct server_worker *s, struct metrics_worker *mw)
{
  struct metrics_worker_src src = {
      .io = &s->w.io,
      .timers = &s->w.timers,
      .quic = &s->quic,
      .h3 = &s->h3,
      .relay = &s->relay,
      .gw = s->gw_ok ? &s->gw : NULL,
      .auth = s->auth_ok ? &s->auth : NULL,
      .hostaddr = s->gw_ok && s->gw.p.hostaddr ? &s->hostaddr : NULL,
      .ws = s->ws_ok ? &s->ws : NULL,
  };
  metrics_worker_fill(mw, &src);
}

/* The owner's counters into its snapshot (see struct server_worker_snap),
 * and the loop utilisation of the window that ended. */
static void snapshot_publish(struct server_worker *s)
{
  struct metrics_worker mw;
  worker_counters(s, &mw);
  words_store(s->snap.w, &mw, WORDS(struct metrics_worker));
  s->snap_ns = s->w.now;
  if (s->relay_ok && status_snap_wanted(&s->status, s->w.now))
    (void)status_snap_fill(&s->status, &s->relay, s->w.now); /* -EBUSY: the next one */
  uint64_t wall = s->w.now - s->util_t0;
  if (s->util_t0 && wall >= UTIL_WINDOW_NS) {
    uint64_t busy = s->w.busy_ns - s->util_busy0;
    atomic_store_explicit(&s->pub.util_ppm, busy >= wall ? 1000000 : busy * 1000000 / wall,
                          memory_order_relaxed);
  }
  if (!s->util_t0 || wall >= UTIL_WINDOW_NS) {
    s->util_t0 = s->w.now;
    s->util_busy0 = s->w.busy_ns;
  }
}

static void on_turn(void *ctx, uint64_t now)
{
  struct server_worker *s = ctx;
  quic_endpoint_turn(&s->quic, now);
  struct server *p = s->proc;
  for (uint32_t to = 0; p->nworkers > 1 && to < p->nworkers; to++)
    if (to != s->index) {
      (void)fring_doorbell_ring(ring_of(p, s->index, to));
      (void)fring_doorbell_ring(fring_of(p, s->index, to));
      (void)fring_doorbell_ring(cring_of(p, s->index, to));
    }
  if (p->fed_ok)
    fed_turn(&p->fed, s->index);
  publish(s);
}

/* Test hook (tests/integration/test_workers.c, /healthz): with
 * WTRELAY_TEST_STALL=worker:ms:after_s in the environment at start, worker
 * `worker` blocks its thread for ms milliseconds, once, after_s seconds
 * after it started, as a worker stuck in a long computation or a blocking
 * call would. Logged as a warning; never set in production. */
static void stall_hook(struct server *p)
{
  const char *e = getenv("WTRELAY_TEST_STALL");
  unsigned w, ms, after;
  if (!e || !*e)
    return;
  if (sscanf(e, "%u:%u:%u", &w, &ms, &after) != 3 || ms > 600000) {
    log_warn("WTRELAY_TEST_STALL ignored: not worker:ms:after_s", "value=%s", LOG_Q(e));
    return;
  }
  p->stall = true;
  p->stall_worker = w;
  p->stall_ms = ms;
  p->stall_after_s = after;
  log_warn("test hook: a worker will stall", "worker=%u ms=%u after_s=%u", w, ms, after);
}

static void stall_fn(struct timer *t, uint64_t now)
{
  struct server_worker *s = container_of(t, struct server_worker, stall_timer);
  (void)now;
  uint32_t ms = s->proc->stall_ms;
  log_warn("test hook: worker stalling", "worker=%u ms=%u", s->index, ms);
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

static void snap_timer_fn(struct timer *t, uint64_t now)
{
  struct server_worker *s = container_of(t, struct server_worker, snap_timer);
  snapshot_publish(s);
  timer_arm(&s->w.timers, &s->snap_timer, now + SNAPSHOT_NS);
}

/* ---- shutdown ---- */

static void shutdown_step(struct timer *t, uint64_t now)
{
  struct server_worker *s = container_of(t, struct server_worker, shutdown_timer);
  s->shutdown_phase++;
  if (s->shutdown_phase == 2) {
    quic_endpoint_shutdown(&s->quic, H3_NO_ERROR);
    timer_arm(&s->w.timers, &s->shutdown_timer, now + SHUTDOWN_STEP_NS);
  } else {
    /* CONNECTION_CLOSE packets were written last turn; flush and leave. */
    s->w.stop = true;
  }
}

/* --shutdown-timeout: whatever is still open then, we leave. */
static void shutdown_deadline(struct timer *t, uint64_t now)
{
  struct server_worker *s = container_of(t, struct server_worker, shutdown_deadline);
  (void)now;
  log_warn("shutdown timeout reached, leaving", "connections=%u worker=%u",
           quic_endpoint_active(&s->quic), s->index);
  s->w.stop = true;
}

static void worker_stop(struct server_worker *s)
{
  if (s->shutdown_phase) {
    s->w.stop = true; /* second signal: leave now */
    return;
  }
  log_info("stop signal received, closing sessions", "sessions=%u worker=%u",
           quic_endpoint_active(&s->quic), s->index);
  s->shutdown_phase = 1;
  s->w.stopping = true;
  atomic_store_explicit(&s->pub.stopping, true, memory_order_relaxed);
  timer_arm(&s->w.timers, &s->shutdown_deadline,
            s->w.now + (uint64_t)s->proc->cfg->shutdown_timeout_s * NS_PER_S);
  s->quic.accepting = false;
  h3_endpoint_shutdown(&s->h3, 0, "relay shutting down");
  if (s->ws_ok)
    ws_listen_shutdown(&s->ws);
  timer_arm(&s->w.timers, &s->shutdown_timer, s->w.now + SHUTDOWN_STEP_NS);
}

/* ---- certificates ---- */

/* The store's certificate with a reference for the caller (any thread). */
static struct tls_cert *cert_get(struct server *p)
{
  pthread_mutex_lock(&p->cert_lock);
  struct tls_cert *c = tls_cert_ref(p->cert);
  pthread_mutex_unlock(&p->cert_lock);
  return c;
}

/* A worker takes the store's certificate for its new connections. */
static void worker_cert_take(struct server_worker *s)
{
  struct tls_cert *c = cert_get(s->proc);
  struct tls_cert *old = s->cert;
  s->cert = c;
  s->quic.cert = c;
  tls_cert_unref(old);
  atomic_store_explicit(&s->pub.cert_not_before, c->not_before, memory_order_relaxed);
  atomic_store_explicit(&s->pub.cert_not_after, c->not_after, memory_order_relaxed);
}

static void process_events(struct server_worker *s)
{
  uint32_t ev = atomic_exchange_explicit(&s->events, 0, memory_order_acquire);
  if (ev & EV_CERT)
    worker_cert_take(s);
  if (ev & EV_RELOAD)
    auth_key_check(&s->auth, true);
  if (ev & EV_STOP)
    worker_stop(s);
  if (ev & EV_STOP_NOW)
    s->w.stop = true;
}

/* Process thread: sets events on every worker and rings its doorbell. */
static void broadcast_others(struct server *p, uint32_t except, uint32_t ev)
{
  for (uint32_t i = 0; i < p->nworkers; i++) {
    struct server_worker *s = p->ws[i];
    if (!s || i == except)
      continue;
    atomic_fetch_or_explicit(&s->events, ev, memory_order_release);
    uint64_t one = 1;
    if (write(s->bell, &one, sizeof(one)) < 0 && errno != EAGAIN)
      log_error("cannot ring a worker's doorbell", "worker=%u err=\"%s\"", i, strerror(errno));
  }
}

static void broadcast(struct server *p, uint32_t ev)
{
  broadcast_others(p, UINT32_MAX, ev);
}

/* Puts a new certificate (a filled value, taken) in the store: new
 * connections on every worker get it once the worker took it (EV_CERT);
 * live ones keep the one they hold a reference to. The store's reference
 * to the old one is dropped; it is freed when the last worker and the last
 * connection that use it let it go. Process thread. */
static void cert_install(struct server *p, struct tls_cert *c, const char *why)
{
  struct tls_cert *shared = tls_cert_share(c);
  if (!shared) {
    tls_cert_fini(c);
    atomic_fetch_add(&p->cert_reload_failures, 1);
    log_error("cannot keep a new certificate, keeping the old one", "err=%s", LOG_Q("no memory"));
    return;
  }
  pthread_mutex_lock(&p->cert_lock);
  struct tls_cert *old = p->cert;
  p->cert = shared;
  pthread_mutex_unlock(&p->cert_lock);
  tls_cert_unref(old);
  atomic_fetch_add(&p->cert_reloads, 1);
  broadcast(p, EV_CERT);
  log_info("certificate in use changed", "why=%s sha256=%s not_after=%lld certificates_live=%u",
           LOG_Q(why), shared->sha256_hex, (long long)shared->not_after, tls_cert_live());
  const char *no_hash = tls_cert_hash_unusable(shared);
  if (no_hash)
    log_warn("browsers will not accept this certificate through serverCertificateHashes",
             "why=%s sha256=%s", LOG_Q(no_hash), shared->sha256_hex);
}

/* PEM mode: reload when either file changed (or forced by SIGHUP); a pair
 * that does not load or does not match keeps the old certificate. Ephemeral
 * mode: a new self-signed certificate a day before the old one expires.
 * Process thread (the only writer of the store). */
static void cert_check(struct server *p, bool force)
{
  const struct config *cfg = p->cfg;
  const struct tls_cert *cur = p->cert; /* this thread's own store: no lock to read */
  if (cfg->cert_pem[0]) {
    bool a = filewatch_changed(cfg->cert_pem, &p->cert_st);
    bool b = filewatch_changed(cfg->key_pem, &p->key_st);
    if (!a && !b && !force)
      return;
    struct tls_cert c;
    char err[256];
    if (tls_cert_load_pem(&c, cfg->cert_pem, cfg->key_pem, err, sizeof(err)) < 0) {
      atomic_fetch_add(&p->cert_reload_failures, 1);
      log_error("certificate reload failed, keeping the old one", "cert=%s key=%s err=%s",
                LOG_Q(cfg->cert_pem), LOG_Q(cfg->key_pem), LOG_Q(err));
      return;
    }
    if (memcmp(c.sha256, cur->sha256, 32) == 0) {
      tls_cert_fini(&c);
      return;
    }
    cert_install(p, &c, force ? "reload" : "files changed");
    return;
  }
  if ((int64_t)time(NULL) < cur->not_after - 86400 && !force)
    return;
  struct tls_cert c;
  if (tls_cert_generate(&c, 13) < 0) {
    atomic_fetch_add(&p->cert_reload_failures, 1);
    log_error("cannot generate a new ephemeral certificate", "%s", "");
    return;
  }
  cert_install(p, &c, "ephemeral rotation");
}

/* Worker 0 alone polls the token key file; when it sees a change (a new
 * key or a failed load) every other worker loads the file at once
 * (EV_RELOAD), so the workers never hold different keys for a poll
 * interval (each polling on its own, one could miss a key that was
 * replaced again before its turn, and keep the old one). */
static void auth_timer_fn(struct timer *t, uint64_t now)
{
  struct server_worker *s = container_of(t, struct server_worker, auth_timer);
  uint64_t before = s->auth.ctr.key_reloads + s->auth.ctr.key_reload_failures;
  auth_key_check(&s->auth, false);
  if (s->auth.ctr.key_reloads + s->auth.ctr.key_reload_failures != before)
    broadcast_others(s->proc, s->index, EV_RELOAD);
  timer_arm(&s->w.timers, &s->auth_timer, now + (uint64_t)s->proc->cfg->cert_poll_s * NS_PER_S);
}

/* ---- ops routes (worker 0's thread) ---- */

static uint64_t ld(_Atomic uint64_t *v)
{
  return atomic_load_explicit(v, memory_order_relaxed);
}

/* Steering (steer.c, the hand-off above): which path is in use, the BPF
 * program's choices, and the hand-offs summed over the workers. */
static void metrics_steer(struct server *p, struct ops_buf *b)
{
  const char *mode = p->nworkers < 2 ? "single" : p->steer ? "bpf" : "reuseport_hash";
  static const char *const modes[] = {"single", "bpf", "reuseport_hash"};
  ops_buf_printf(b, "# HELP wtrelay_steer_mode How datagrams reach their worker: one worker "
                    "(single), the SK_REUSEPORT program by connection ID (bpf), or the kernel's "
                    "4-tuple hash (reuseport_hash); both multi-worker modes hand mis-steered "
                    "packets on\n# TYPE wtrelay_steer_mode gauge\n");
  for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
    ops_buf_printf(b, "wtrelay_steer_mode{mode=\"%s\"} %d\n", modes[i],
                   strcmp(modes[i], mode) == 0);
  struct steer_stats st;
  memset(&st, 0, sizeof(st));
  if (p->steer)
    (void)steer_stats(p->steer, &st); /* this thread only (worker 0's ops) */
  static const char *const how[STEER_STAT__COUNT] = {[STEER_STAT_SHORT] = "short",
                                                     [STEER_STAT_HANDSHAKE] = "handshake",
                                                     [STEER_STAT_HASH] = "hash",
                                                     [STEER_STAT_NO_SOCKET] = "no_socket"};
  ops_buf_printf(b, "# HELP wtrelay_steer_datagrams_total Datagrams the SK_REUSEPORT program saw: "
                    "steered by the connection ID of a short header or Handshake, or left to the "
                    "kernel hash (Initial and the rest; no_socket: a worker index without a "
                    "socket); a GRO batch counts once, so the sum can be below "
                    "wtrelay_udp_datagrams_total\n# TYPE wtrelay_steer_datagrams_total counter\n");
  for (int i = 0; i < STEER_STAT__COUNT; i++)
    ops_buf_printf(b, "wtrelay_steer_datagrams_total{how=\"%s\"} %llu\n", how[i],
                   (unsigned long long)st.n[i]);
  uint64_t out = 0, in = 0, dropped = 0;
  for (uint32_t i = 0; i < p->nworkers; i++) {
    out += ld(&p->ws[i]->pub.handed_off);
    in += ld(&p->ws[i]->pub.handoff_in);
    for (uint32_t j = 0; j < p->nworkers; j++)
      if (j != i)
        dropped += ld(&ring_of(p, i, j)->ctr.dropped_full) + ld(&ring_of(p, i, j)->ctr.dropped_big);
  }
  ops_buf_printf(b,
                 "# HELP wtrelay_steer_handoffs_total QUIC packets a worker received for another "
                 "worker's connection: handed on (out), read by the owner (in)\n"
                 "# TYPE wtrelay_steer_handoffs_total counter\n"
                 "wtrelay_steer_handoffs_total{dir=\"out\"} %llu\n"
                 "wtrelay_steer_handoffs_total{dir=\"in\"} %llu\n"
                 "# HELP wtrelay_steer_handoffs_dropped_total QUIC packets for another worker's "
                 "connection dropped at a full hand-off ring\n"
                 "# TYPE wtrelay_steer_handoffs_dropped_total counter\n"
                 "wtrelay_steer_handoffs_dropped_total %llu\n",
                 (unsigned long long)out, (unsigned long long)in, (unsigned long long)dropped);
}

/* Worker i's frames between room copies, summed over its rings: pushed
 * into and dropped at its outgoing ones (full or too big), popped from its
 * incoming ones. */
struct ring_sum {
  uint64_t pushed, dropped, popped;
};

static struct ring_sum ring_frames(struct server *p, uint32_t i)
{
  struct ring_sum c = {0};
  for (uint32_t j = 0; j < p->nworkers; j++) {
    if (j == i)
      continue;
    struct fring_counters *o = &fring_of(p, i, j)->ctr, *in = &fring_of(p, j, i)->ctr;
    c.pushed += ld(&o->pushed);
    c.dropped += ld(&o->dropped_full) + ld(&o->dropped_big);
    c.popped += ld(&in->popped);
  }
  return c;
}

/* Per-worker families: each worker's published gauges (worker 0 reads the
 * others' atomics; their own tables stay theirs). */
static void metrics_workers(struct server *p, struct ops_buf *b)
{
  static const struct {
    const char *name, *type, *help;
  } fam[] = {
      {"wtrelay_worker_sessions", "gauge", "QUIC connections of each worker"},
      {"wtrelay_worker_datagrams_total", "counter",
       "WebTransport datagrams in and out, per worker"},
      {"wtrelay_worker_packets_in_total", "counter", "QUIC packets read, per worker"},
      {"wtrelay_worker_turns_total", "counter", "loop turns, per worker"},
      {"wtrelay_worker_handoffs_total", "counter",
       "QUIC packets handed to the worker their connection ID names (fallback steering): handed "
       "on (out), read (in)"},
      {"wtrelay_worker_handoffs_dropped_total", "counter",
       "QUIC packets for another worker's connection dropped at a full hand-off ring, per worker"},
  };
  for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
    ops_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name,
                   fam[f].type);
    for (uint32_t i = 0; i < p->nworkers; i++) {
      struct server_worker_pub *g = &p->ws[i]->pub;
      if (f == 1 || f == 4) {
        _Atomic uint64_t *in = f == 1 ? &g->dgrams_in : &g->handoff_in;
        _Atomic uint64_t *out = f == 1 ? &g->dgrams_out : &g->handed_off;
        ops_buf_printf(b, "%s{worker=\"%u\",dir=\"in\"} %llu\n", fam[f].name, i,
                       (unsigned long long)ld(in));
        ops_buf_printf(b, "%s{worker=\"%u\",dir=\"out\"} %llu\n", fam[f].name, i,
                       (unsigned long long)ld(out));
        continue;
      }
      if (f == 5) {
        uint64_t dropped = 0;
        for (uint32_t j = 0; j < p->nworkers; j++)
          if (j != i)
            dropped +=
                ld(&ring_of(p, i, j)->ctr.dropped_full) + ld(&ring_of(p, i, j)->ctr.dropped_big);
        ops_buf_printf(b, "%s{worker=\"%u\"} %llu\n", fam[f].name, i, (unsigned long long)dropped);
        continue;
      }
      _Atomic uint64_t *v = f == 0 ? &g->sessions : f == 2 ? &g->pkts_in : &g->turns;
      ops_buf_printf(b, "%s{worker=\"%u\"} %llu\n", fam[f].name, i, (unsigned long long)ld(v));
    }
  }
  ops_buf_printf(b, "# HELP wtrelay_worker_ring_frames_total Frames between room copies on "
                    "workers: pushed into this worker's outgoing rings (out), popped from its "
                    "incoming ones (in)\n# TYPE wtrelay_worker_ring_frames_total counter\n");
  for (uint32_t i = 0; p->nworkers > 1 && i < p->nworkers; i++) {
    struct ring_sum c = ring_frames(p, i);
    ops_buf_printf(b,
                   "wtrelay_worker_ring_frames_total{worker=\"%u\",dir=\"out\"} %llu\n"
                   "wtrelay_worker_ring_frames_total{worker=\"%u\",dir=\"in\"} %llu\n",
                   i, (unsigned long long)c.pushed, i, (unsigned long long)c.popped);
  }
  ops_buf_printf(b, "# HELP wtrelay_worker_ring_frames_dropped_total Frames between room copies "
                    "dropped: not pushed (this worker's outgoing ring full, or the frame too "
                    "big), or popped for a room this worker has no copy of (no_room)\n"
                    "# TYPE wtrelay_worker_ring_frames_dropped_total counter\n");
  for (uint32_t i = 0; p->nworkers > 1 && i < p->nworkers; i++) {
    struct ring_sum c = ring_frames(p, i);
    ops_buf_printf(b,
                   "wtrelay_worker_ring_frames_dropped_total{worker=\"%u\",reason=\"push_failed\"} "
                   "%llu\n"
                   "wtrelay_worker_ring_frames_dropped_total{worker=\"%u\",reason=\"no_room\"} "
                   "%llu\n",
                   i, (unsigned long long)c.dropped, i,
                   (unsigned long long)ld(&p->ws[i]->pub.uplink_no_room));
  }
  ops_buf_printf(b, "# HELP wtrelay_worker_busy_seconds_total Time each worker's loop spent "
                    "outside its wait on the ring\n"
                    "# TYPE wtrelay_worker_busy_seconds_total counter\n");
  for (uint32_t i = 0; i < p->nworkers; i++) {
    uint64_t ns = ld(&p->ws[i]->pub.busy_ns);
    ops_buf_printf(b, "wtrelay_worker_busy_seconds_total{worker=\"%u\"} %llu.%09llu\n", i,
                   (unsigned long long)(ns / NS_PER_S), (unsigned long long)(ns % NS_PER_S));
  }
  ops_buf_printf(b, "# HELP wtrelay_worker_loop_utilisation Busy time over wall time of each "
                    "worker's loop in the last second (1 = never waiting)\n"
                    "# TYPE wtrelay_worker_loop_utilisation gauge\n");
  for (uint32_t i = 0; i < p->nworkers; i++) {
    uint64_t ppm = ld(&p->ws[i]->pub.util_ppm);
    ops_buf_printf(b, "wtrelay_worker_loop_utilisation{worker=\"%u\"} %llu.%06llu\n", i,
                   (unsigned long long)(ppm / 1000000), (unsigned long long)(ppm % 1000000));
  }
  ops_buf_printf(b,
                 "# HELP wtrelay_workers Worker threads\n# TYPE wtrelay_workers gauge\n"
                 "wtrelay_workers %u\n",
                 p->nworkers);
  metrics_steer(p, b);
}

/* Counters of an event every worker sees once for the process (each loads
 * the token key file itself): the process's figure is worker 0's, not the
 * sum. */
static void mirrored_from_worker0(struct metrics_worker *sum, const struct auth_counters *w0)
{
  sum->auth.key_reloads = w0->key_reloads;
  sum->auth.key_reload_failures = w0->key_reload_failures;
}

static void route_metrics(void *ctx, struct ops_buf *b)
{
  struct server_worker *s = ctx;
  struct server *p = s->proc;
  uint32_t rooms = 0;
  for (uint32_t i = 0; i < s->relay.max_rooms; i++)
    rooms += s->relay.rooms[i].used;
  /* worker 0's live counters plus every other worker's snapshot */
  struct metrics_worker *sum = &p->metrics_sum;
  worker_counters(s, sum);
  struct auth_counters auth0 = sum->auth;
  for (uint32_t i = 1; i < p->nworkers; i++)
    words_add(sum, p->ws[i]->snap.w, WORDS(struct metrics_worker));
  mirrored_from_worker0(sum, &auth0);
  struct metrics_src m = {
      .sum = sum,
      .auth = s->relay.auth != NULL,
      .hostaddr = s->gw_ok && s->gw.p.hostaddr,
      .host_routes = s->hostaddr.n,
      .now = s->w.now,
      .ops = &s->ops.ctr,
      .cert = s->cert,
      .rooms = rooms,
      .start_time = p->start_time,
      .cert_reloads = atomic_load(&p->cert_reloads),
      .cert_reload_failures = atomic_load(&p->cert_reload_failures),
      .certs_live = tls_cert_live(),
  };
  roomdir_lock(&p->dir); /* the lease table is shared */
  m.leases = p->dir.leases ? p->dir.leases : &s->relay.leases;
  m.dir = &p->dir;
  if (p->nworkers > 1)
    m.rooms = p->dir.nrooms; /* rooms, not copies */
  metrics_write(b, &m);
  roomdir_unlock(&p->dir);
  metrics_workers(p, b);
  if (p->fed_ok) {
    struct fed_counters fc;
    fed_counters_read(&p->fed, &fc);
    metrics_table_write(b, &fed_counter_table, &fc);
  }
  if (p->cap_ok) {
    struct capture_counters cc;
    capture_counters_read(&p->cap, &cc);
    metrics_table_write(b, &capture_counter_table, &cc);
  }
}

/* A worker that has not turned its loop for HEALTH_STALL_NS is stuck:
 * each turns at least every SNAPSHOT_NS (its snapshot timer), so this
 * never fires for an idle one. Worker 0 answers the probe, so it is
 * turning. */
#define HEALTH_STALL_NS (2 * NS_PER_S)

static bool worker_turning(struct server_worker *self, struct server_worker *o)
{
  uint64_t t = ld(&o->pub.turn_ns);
  return o == self || !t || self->w.now <= t + HEALTH_STALL_NS;
}

static bool route_healthy(void *ctx)
{
  struct server_worker *s = ctx;
  struct server *p = s->proc;
  for (uint32_t i = 0; i < p->nworkers; i++)
    if (!worker_turning(s, p->ws[i]))
      return false;
  return true;
}

/* Ready when every worker is: turning its loop, not shutting down, and
 * its certificate for new connections within its validity. */
static bool route_ready(void *ctx)
{
  struct server_worker *s = ctx;
  struct server *p = s->proc;
  int64_t now = (int64_t)time(NULL);
  for (uint32_t i = 0; i < p->nworkers; i++) {
    struct server_worker_pub *g = &p->ws[i]->pub;
    if (!worker_turning(s, p->ws[i]) || atomic_load_explicit(&g->stopping, memory_order_relaxed) ||
        now < atomic_load_explicit(&g->cert_not_before, memory_order_relaxed) ||
        now >= atomic_load_explicit(&g->cert_not_after, memory_order_relaxed))
      return false;
  }
  return true;
}

static void route_cert(void *ctx, struct ops_buf *b)
{
  struct server_worker *s = ctx;
  const struct tls_cert *c = s->cert;
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char enc[48];
  size_t o = 0;
  for (size_t i = 0; i < 32; i += 3) {
    uint32_t v = (uint32_t)c->sha256[i] << 16 | (i + 1 < 32 ? (uint32_t)c->sha256[i + 1] << 8 : 0) |
                 (i + 2 < 32 ? c->sha256[i + 2] : 0);
    enc[o++] = b64[(v >> 18) & 63];
    enc[o++] = b64[(v >> 12) & 63];
    enc[o++] = i + 1 < 32 ? b64[(v >> 6) & 63] : '=';
    enc[o++] = i + 2 < 32 ? b64[v & 63] : '=';
  }
  enc[o] = '\0';
  char when[32];
  time_t t = (time_t)c->not_after;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
  ops_buf_printf(b, "{\"sha256\":\"%s\",\"sha256_b64\":\"%s\",\"not_after\":\"%s\"}\n",
                 c->sha256_hex, enc, when);
}

/* GET /rooms/<room>/pcap (pcap_http.h): worker 0's ops listener drains
 * the capture's ring. */
static int pcap_open(void *ctx, const char *path, const char *query, void **stream,
                     const char **ctype, uint64_t *max_ns, struct ops_buf *b)
{
  struct server *p = ((struct server_worker *)ctx)->proc;
  return p->cap_ok ? pcap_http_open(&p->cap, &p->dir, path, query, stream, ctype, max_ns, b) : 0;
}

static size_t pcap_peek(void *ctx, void *stream, const uint8_t **ptr, bool *done)
{
  return capture_peek(&((struct server_worker *)ctx)->proc->cap, stream, ptr, done);
}

static void pcap_consume(void *ctx, void *stream, size_t n)
{
  capture_consume(&((struct server_worker *)ctx)->proc->cap, stream, n);
}

static void pcap_close(void *ctx, void *stream)
{
  capture_stop(&((struct server_worker *)ctx)->proc->cap, stream);
}

static const struct ops_stream_ops pcap_stream = {
    .open = pcap_open, .peek = pcap_peek, .consume = pcap_consume, .close = pcap_close};

/* /status and / (status.h): every worker asked to keep its snapshot
 * filled; worker 0's filled now (its own thread); then all of them read
 * under their locks. */
static int route_status(void *ctx, bool page, const char *query, struct ops_buf *b)
{
  struct server_worker *s = ctx;
  struct server *p = s->proc;
  uint32_t offset, limit;
  if (page) {
    status_write_page(b);
    return 200;
  }
  if (status_query_parse(query, &offset, &limit) < 0) {
    ops_buf_printf(b, "{\"error\":\"offset and limit: decimal integers, limit at least 1\"}\n");
    return 400;
  }
  struct status_snap *snaps[p->nworkers]; /* --workers is at most 256 */
  for (uint32_t i = 0; i < p->nworkers; i++) {
    snaps[i] = &p->ws[i]->status;
    status_snap_want(snaps[i], s->w.now);
  }
  (void)status_snap_fill(&s->status, &s->relay, s->w.now);
  struct status_info in = {
      .version = WTRELAY_VERSION,
      .uptime_s = (uint64_t)time(NULL) - p->start_time,
      .cert_sha256 = s->cert->sha256_hex,
      .cert_not_after = s->cert->not_after,
      .now_ns = s->w.now,
  };
  status_write_json(b, &in, snaps, p->nworkers, offset, limit);
  return 200;
}

/* ---- the forwards' API (--ops-api): worker 0's gateway, which owns them ---- */

static int api_add(void *ctx, const struct fwd_spec *spec, uint32_t *id)
{
  return gateway_fwd_add(ctx, spec, id);
}
static int api_del(void *ctx, uint32_t id)
{
  return gateway_fwd_del(ctx, id);
}
static uint32_t api_list(void *ctx, struct fwd_info *out, uint32_t cap)
{
  return gateway_fwd_list(ctx, out, cap);
}
static const struct fwd_api_ops api_ops = {.add = api_add, .del = api_del, .list = api_list};

static int route_api(void *ctx, const char *method, const char *path, const char *auth,
                     const char *body, size_t bodylen, struct ops_buf *b)
{
  struct server_worker *s = ctx;
  struct fwd_api a = {.token = s->proc->cfg->ops_token, .ops = &api_ops, .ctx = &s->gw};
  return fwd_api_handle(&a, method, path, auth, body, bodylen, b);
}

static const struct ops_routes routes = {.metrics = route_metrics,
                                         .ready = route_ready,
                                         .healthy = route_healthy,
                                         .cert_json = route_cert,
                                         .stream = &pcap_stream,
                                         .status = route_status};
static const struct ops_routes routes_api = {.metrics = route_metrics,
                                             .ready = route_ready,
                                             .healthy = route_healthy,
                                             .cert_json = route_cert,
                                             .stream = &pcap_stream,
                                             .status = route_status,
                                             .api = route_api};

/* ---- a worker: build, run, free (all on its own thread) ---- */

/* Steering by connection ID (steer.c): called by the process thread once
 * every worker's socket is bound and before any of them receives (the
 * workers wait for p->go), with fds[i] the socket of worker i (the
 * program's socket-array index is the worker index, the first byte of the
 * server CIDs). When BPF cannot be used (no CAP_BPF, a container, a build
 * without it, WTRELAY_NO_BPF=1) the kernel's 4-tuple hash and the hand-off
 * above do the steering; the hand-off stays in place either way (packets
 * the program leaves to the hash, e.g. a migrated client's Initial-less
 * long headers, may still land elsewhere). The group is attached through
 * a duplicate of worker 0's socket, owned here, so the detach at the end
 * never names a descriptor a worker has closed and the kernel reused. */
static void steer_attach_hook(struct server *p)
{
  p->steer_fd = -1;
  if (p->nworkers < 2)
    return;
  int fds[256]; /* --workers is at most 256 */
  for (uint32_t i = 0; i < p->nworkers; i++)
    fds[i] = p->ws[i]->udp->fd;
  p->steer_fd = fcntl(fds[0], F_DUPFD_CLOEXEC, 0);
  int rc = p->steer_fd < 0 ? -errno : 0;
  if (rc == 0) {
    fds[0] = p->steer_fd;
    rc = steer_attach(fds, p->nworkers, &p->steer);
  }
  if (rc < 0) {
    p->steer = NULL;
    if (p->steer_fd >= 0)
      close(p->steer_fd);
    p->steer_fd = -1;
    log_info("steering", "mode=%s workers=%u bpf=\"%s\"", "reuseport_hash+handoff", p->nworkers,
             strerror(-rc));
    return;
  }
  log_info("steering", "mode=%s workers=%u", "bpf+handoff", p->nworkers);
}

static void steer_release(struct server *p)
{
  if (p->steer)
    steer_detach(p->steer);
  p->steer = NULL;
  if (p->steer_fd >= 0)
    close(p->steer_fd);
  p->steer_fd = -1;
}

/* Worker 0's socket on p->bind. With several workers the address and
 * port are claimed first (io_udp_port_claim: SO_REUSEPORT would let a
 * second relay join our group); an ephemeral port is claimed once the
 * kernel has chosen it (worker_open_socket). */
static int open_first_socket(struct server_worker *s, bool many)
{
  struct server *p = s->proc;
  const struct config *cfg = p->cfg;
  if (many && cfg->port) {
    int fd = io_udp_port_claim(p->bind, cfg->port, true);
    if (fd < 0)
      return fd;
    p->port_claim = fd;
  }
  int rc = io_udp_open_quic(&s->w.io, p->bind, cfg->port, many, quic_endpoint_on_packet, &s->quic,
                            &s->udp);
  if (rc < 0 && p->port_claim >= 0) {
    close(p->port_claim);
    p->port_claim = -1;
  }
  return rc;
}

static int worker_open_socket(struct server_worker *s)
{
  struct server *p = s->proc;
  const struct config *cfg = p->cfg;
  bool many = p->nworkers > 1;
  if (s->index > 0) /* the others join worker 0's address and port */
    return io_udp_open_quic(&s->w.io, p->bind, p->port, true, quic_endpoint_on_packet, &s->quic,
                            &s->udp);
  snprintf(p->bind, sizeof(p->bind), "%s", cfg->bind);
  int rc = open_first_socket(s, many);
  if ((rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL) && !cfg->bind_given &&
      strcmp(cfg->bind, "::") == 0) {
    log_warn("no IPv6 on this host, listening on IPv4 only", "bind=:: err=\"%s\" fallback=0.0.0.0",
             strerror(-rc));
    snprintf(p->bind, sizeof(p->bind), "0.0.0.0");
    rc = open_first_socket(s, many);
  }
  if (rc == 0)
    p->port = s->udp->port;
  if (rc == 0 && many && !cfg->port &&
      (p->port_claim = io_udp_port_claim(p->bind, p->port, false)) < 0)
    return p->port_claim; /* the socket goes with worker 0's io */
  return rc;
}

static void worker_free(struct server_worker *s)
{
  if (s->ops_ok)
    ops_fini(&s->ops);
  if (s->ws_ok)
    ws_listen_fini(&s->ws);
  if (s->quic_ok)
    quic_endpoint_fini(&s->quic);
  if (s->h3_ok)
    h3_endpoint_fini(&s->h3);
  if (s->gw_ok) {
    gateway_fini(&s->gw);
    hostaddr_fini(&s->hostaddr);
  }
  if (s->relay_ok)
    relay_fini(&s->relay);
  if (s->auth_ok)
    auth_fini(&s->auth);
  if (s->worker_ok)
    worker_fini(&s->w);
  tls_cert_unref(s->cert); /* the connections dropped theirs above */
  s->cert = NULL;
}

static int worker_build(struct server_worker *s)
{
  struct server *p = s->proc;
  const struct config *cfg = p->cfg;
  int rc;
  s->cert = cert_get(p);
  atomic_store_explicit(&s->pub.cert_not_before, s->cert->not_before, memory_order_relaxed);
  atomic_store_explicit(&s->pub.cert_not_after, s->cert->not_after, memory_order_relaxed);
  struct io_params iop;
  io_params_default(&iop);
  /* QUIC, UDP and ICMP NAT, a socket per DNS query in flight */
  iop.max_udp_socks = 8 + cfg->max_udp_flows + 256 + 1024;
  if ((rc = worker_init(&s->w, s->index, &iop, server_timers_needed(cfg))) < 0)
    return rc;
  s->worker_ok = true;
  if ((rc = worker_open_socket(s)) < 0)
    return rc;
  if ((rc = relay_init(&s->relay, cfg, &s->w.timers, &s->w.now)) < 0)
    return rc;
  s->relay_ok = true;
  if ((rc = relay_set_roomdir(&s->relay, &p->dir)) < 0)
    return rc;
  if (p->nworkers > 1 &&
      (rc = relay_set_uplinks(&s->relay, s->index, p->nworkers, uplink_send, s)) < 0)
    return rc;
  if (p->nworkers > 1)
    relay_set_remote(&s->relay, &ctl_ops, s);
  if (p->fed_ok)
    relay_set_fed(&s->relay, &fed_ops, s);
  relay_set_io(&s->relay, &s->w.io);
  if ((rc = auth_init(&s->auth, cfg)) < 0)
    return rc;
  s->auth_ok = true;
  if (cfg->auth_key[0] || cfg->nallow_origin)
    relay_set_auth(&s->relay, &s->auth);
  if ((rc = gateway_setup(s)) < 0)
    return rc;
  if (p->cap_ok)
    relay_set_capture(&s->relay, &p->cap);
  if ((rc = h3_endpoint_init(&s->h3, true, cfg->max_sessions, &s->w.timers, &relay_h3_ops,
                             &s->relay)) < 0)
    return rc;
  s->h3_ok = true;
  struct quic_params qp;
  quic_params_default(&qp);
  qp.shared = &p->shared;
  qp.max_conns = cfg->max_sessions;
  qp.max_conns_per_ip = cfg->max_sessions_per_ip;
  qp.retry = (enum quic_retry)cfg->retry;
  qp.retry_threshold = cfg->retry_threshold;
  qp.max_unvalidated = cfg->max_unvalidated;
  if ((rc = quic_endpoint_init(&s->quic, &s->w, s->udp, s->cert, true, &qp, &h3_quic_ops, &s->h3)) <
      0)
    return rc;
  s->quic_ok = true;
  h3_endpoint_bind(&s->h3, &s->quic);
  timer_init(&s->shutdown_timer, shutdown_step);
  timer_init(&s->shutdown_deadline, shutdown_deadline);
  timer_init(&s->auth_timer, auth_timer_fn);
  timer_init(&s->snap_timer, snap_timer_fn);
  if ((rc = timer_arm(&s->w.timers, &s->snap_timer, s->w.now)) < 0)
    return rc;
  timer_init(&s->stall_timer, stall_fn);
  if (p->stall && p->stall_worker == s->index &&
      (rc = timer_arm(&s->w.timers, &s->stall_timer,
                      s->w.now + (uint64_t)p->stall_after_s * NS_PER_S)) < 0)
    return rc;
  if (s->index == 0 && (rc = timer_arm(&s->w.timers, &s->auth_timer,
                                       s->w.now + (uint64_t)cfg->cert_poll_s * NS_PER_S)) < 0)
    return rc;
  if (s->index == 0 && cfg->http_listen[0]) {
    if ((rc = ops_init(&s->ops, &s->w.io, &s->w.timers, &s->w.now, cfg->http_listen,
                       cfg->ops_max_conns, cfg->cors_origin, cfg->ops_api ? &routes_api : &routes,
                       s)) < 0) {
      log_error("cannot listen for operations HTTP", "http_listen=%s err=\"%s\"",
                LOG_Q(cfg->http_listen), strerror(-rc));
      return rc;
    }
    s->ops_ok = true;
  }
  if (cfg->ws_listen[0]) {
    struct ws_listen_params wp = {.listen = cfg->ws_listen,
                                  .max_conns = cfg->ws_max_conns,
                                  .max_conns_per_ip = cfg->ws_max_conns_per_ip,
                                  .max_msg = (size_t)cfg->max_frame_size + 1,
                                  .max_queue = cfg->ws_max_queue};
    rc = ws_listen_init(&s->ws, &s->w.io, &s->w.timers, &s->w.now, &s->relay, &s->cert, &wp);
    if (rc < 0 && !cfg->ws_listen_auto) {
      log_error("cannot listen for the WebSocket fallback", "ws_listen=%s err=\"%s\"",
                LOG_Q(cfg->ws_listen), strerror(-rc));
      return rc;
    }
    if (rc < 0 && s->index == 0) /* the default: the relay runs without the fallback */
      log_warn("WebSocket fallback off: cannot listen on the QUIC port's number over TCP; "
               "give --ws-listen ADDR:PORT (or --ws-listen '' to silence this)",
               "ws_listen=%s err=\"%s\"", LOG_Q(cfg->ws_listen), strerror(-rc));
    s->ws_ok = rc == 0;
    if (s->ws_ok && s->index == 0)
      log_info("WebSocket fallback listening", "listen=%s url=wss://HOST:PORT/ROOM",
               cfg->ws_listen);
  }
  s->w.turn = on_turn;
  s->w.turn_ctx = s;
  if ((rc = io_set_handler(&s->w.io, IO_OP_BELL, on_bell, s)) < 0)
    return rc;
  bell_arm(s, 0);
  for (uint32_t j = 0; p->nworkers > 1 && j < p->nworkers; j++)
    if (j != s->index) {
      bell_arm(s, 1 + j);
      bell_arm(s, 1 + p->nworkers + j);
      bell_arm(s, 1 + 2 * p->nworkers + j);
    }
  if (p->fed_ok)
    bell_arm(s, 1 + 3 * p->nworkers);
  return 0;
}

static void final_store(struct server_worker *s);

/* --cpu-affinity: worker i runs on the i-th CPU of the process's affinity
 * mask (wrapping around when there are more workers than CPUs). A failure
 * is logged and the worker runs unpinned. */
static void worker_pin(struct server_worker *s)
{
  char name[16];
  snprintf(name, sizeof(name), "wtrelay-w%u", s->index);
  pthread_setname_np(pthread_self(), name);
  if (!s->proc->cfg->cpu_affinity)
    return;
  cpu_set_t all, one;
  int rc = sched_getaffinity(0, sizeof(all), &all) == 0 ? 0 : errno;
  int n = rc ? 0 : CPU_COUNT(&all), want = n ? (int)(s->index % (uint32_t)n) : 0, cpu = -1;
  for (int c = 0; n && c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &all) && want-- == 0) {
      cpu = c;
      break;
    }
  if (cpu >= 0) {
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    rc = pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
  }
  if (cpu < 0 || rc)
    log_warn("worker not pinned", "worker=%u err=\"%s\"", s->index, strerror(rc ? rc : ENOENT));
  else
    log_info("worker pinned", "worker=%u cpu=%d", s->index, cpu);
}

static void *worker_main(void *arg)
{
  struct server_worker *s = arg;
  struct server *p = s->proc;
  worker_pin(s);
  int rc = worker_build(s);
  pthread_mutex_lock(&p->lock);
  p->built++;
  if (rc < 0 && !p->built_rc)
    p->built_rc = rc;
  pthread_cond_broadcast(&p->cond);
  while (!p->go && !p->built_rc)
    pthread_cond_wait(&p->cond, &p->lock);
  bool run = p->go && !p->built_rc;
  pthread_mutex_unlock(&p->lock);
  if (run) {
    s->rc = worker_run(&s->w);
    final_store(s);
  } else {
    s->rc = rc;
  }
  /* Freed here: the ring is this thread's (single issuer), and io_fini
   * and the lease writer's last write wait on it. Worker 0 last: its lease
   * table is the directory's, which the others' rooms still use. */
  pthread_mutex_lock(&p->lock);
  while (s->index == 0 && p->freed < p->nstarted - 1)
    pthread_cond_wait(&p->cond, &p->lock);
  pthread_mutex_unlock(&p->lock);
  worker_free(s);
  if (s->index != 0) {
    pthread_mutex_lock(&p->lock);
    p->freed++;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
  }
  uint64_t one = 1;
  if (write(p->done_fd, &one, sizeof(one)) < 0)
    log_error("cannot note a worker's end", "worker=%u", s->index);
  return NULL;
}

/* ---- the process ---- */

static void server_destroy(struct server *p)
{
  if (p->fed_ok)
    fed_stop(&p->fed); /* the workers stopped: nothing pushes into its rings */
  p->fed_ok = false;
  if (p->cap_ok)
    capture_hub_fini(&p->cap); /* the workers and the ops listener stopped */
  p->cap_ok = false;
  for (uint32_t i = 0; p->ws && i < p->nworkers; i++) {
    struct server_worker *s = p->ws[i];
    if (!s)
      continue;
    if (s->bell >= 0)
      close(s->bell);
    if (s->status_ok)
      status_snap_fini(&s->status); /* after every thread: worker 0 reads them all */
    free(s);
  }
  free(p->ws);
  free(p->finals);
  if (p->nat_clients_ok)
    nat_share_clients_fini(&p->nat_clients);
  for (uint32_t i = 0; p->rings && i < p->nworkers * p->nworkers; i++)
    fring_fini(&p->rings[i]);
  for (uint32_t i = 0; p->frings && i < p->nworkers * p->nworkers; i++)
    fring_fini(&p->frings[i]);
  for (uint32_t i = 0; p->crings && i < p->nworkers * p->nworkers; i++)
    fring_fini(&p->crings[i]);
  free(p->rings);
  free(p->frings);
  free(p->crings);
  if (p->dir_ok)
    roomdir_fini(&p->dir);
  if (p->ips_ok)
    quic_iptab_fini(&p->ips);
  if (p->done_fd >= 0)
    close(p->done_fd);
  if (p->port_claim >= 0)
    close(p->port_claim);
  if (p->sigfd >= 0)
    close(p->sigfd);
  tls_cert_unref(p->cert);
  pthread_mutex_destroy(&p->cert_lock);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->cond);
  free(p);
}

/* Joins every started worker thread (each freed its own data). */
static void join_workers(struct server *p)
{
  for (uint32_t i = 0; i < p->nworkers; i++) {
    struct server_worker *s = p->ws[i];
    if (!s || !s->started)
      continue;
    pthread_join(s->thread, NULL);
    s->started = false;
  }
}

/* The process's bounds with several workers: the QUIC endpoints count
 * connections (--max-sessions), handshakes in progress (--retry-threshold)
 * and unvalidated connections (--max-unvalidated) in one set of atomics
 * (struct quic_counts) instead of one per worker; the relays count rooms,
 * their creators and creation rates and the sessions per client and room
 * in the room directory (roomdir.h), which relay_set_roomdir shares. */
static void shares_setup(struct server *p)
{
  atomic_init(&p->counts.conns, 0);
  atomic_init(&p->counts.handshaking, 0);
  atomic_init(&p->counts.unvalidated, 0);
  p->shared.counts = &p->counts;
}

int server_new(struct server **out, const struct config *cfg, struct tls_cert *cert)
{
  int rc = -ENOMEM;
  struct server *p = calloc(1, sizeof(*p));
  if (!p)
    return -ENOMEM;
  p->steer_fd = -1;
  p->cfg = cfg;
  p->nworkers = cfg->workers ? cfg->workers : 1;
  p->done_fd = -1;
  p->port_claim = -1;
  p->sigfd = -1;
  pthread_mutex_init(&p->cert_lock, NULL);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->cond, NULL);
  p->cert = tls_cert_share(cert); /* taken */
  p->ws = calloc(p->nworkers, sizeof(*p->ws));
  p->finals = calloc(p->nworkers, sizeof(*p->finals)); /* none: no exit line, nothing else lost */
  if (p->nworkers > 1) {
    uint64_t cap = (uint64_t)p->nworkers * ((uint64_t)cfg->max_udp_flows + cfg->max_tcp_conns);
    if ((rc = nat_share_clients_init(&p->nat_clients,
                                     cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap)) < 0)
      goto fail;
    p->nat_clients_ok = true;
  }
  size_t nr = (size_t)p->nworkers * p->nworkers;
  p->rings = aligned_alloc(alignof(struct fring), sizeof(struct fring) * nr);
  p->frings = aligned_alloc(alignof(struct fring), sizeof(struct fring) * nr);
  p->crings = aligned_alloc(alignof(struct fring), sizeof(struct fring) * nr);
  if (p->rings)
    memset(p->rings, 0, sizeof(struct fring) * nr);
  if (p->frings)
    memset(p->frings, 0, sizeof(struct fring) * nr);
  if (p->crings)
    memset(p->crings, 0, sizeof(struct fring) * nr);
  for (size_t i = 0; i < nr; i++) {
    if (p->rings)
      p->rings[i].efd = -1;
    if (p->frings)
      p->frings[i].efd = -1;
    if (p->crings)
      p->crings[i].efd = -1;
  }
  if (!p->cert || !p->ws || !p->rings || !p->frings || !p->crings ||
      roomdir_init(&p->dir, cfg->max_rooms) < 0) {
    server_destroy(p);
    return -ENOMEM;
  }
  p->dir_ok = true;
  if (capture_hub_init(&p->cap) == 0)
    p->cap_ok = true;
  if (p->cap_ok && cfg->pcap[0]) {
    if ((rc = capture_file_start(&p->cap, cfg->pcap, cfg->pcap_room, cfg->pcap_max_bytes)) < 0) {
      log_error("cannot start --pcap", "path=%s err=\"%s\"", LOG_Q(cfg->pcap), strerror(-rc));
      server_destroy(p);
      return rc;
    }
    log_info("capturing a room to a pcap file", "room=%s path=%s max_bytes=%u",
             LOG_Q(cfg->pcap_room), LOG_Q(cfg->pcap), cfg->pcap_max_bytes);
  }
  p->start_time = (uint64_t)time(NULL);
  stall_hook(p);
  if (cfg->cert_pem[0]) {
    stat(cfg->cert_pem, &p->cert_st);
    stat(cfg->key_pem, &p->key_st);
  }
  rng_fill(p->shared.reset_secret, sizeof(p->shared.reset_secret));
  rng_fill(p->ula_global_id, sizeof(p->ula_global_id));
  rng_fill(p->shared.token_key, sizeof(p->shared.token_key));
  p->shared.nworkers = p->nworkers;
  if (p->nworkers > 1) {
    uint64_t n = (uint64_t)cfg->max_sessions * p->nworkers;
    if ((rc = quic_iptab_init(&p->ips, n > UINT32_MAX ? UINT32_MAX : (uint32_t)n, true)) < 0)
      goto fail;
    p->ips_ok = true;
    p->shared.ips = &p->ips;
    shares_setup(p);
  }
  p->shared.handoff = handoff_push;
  p->shared.handoff_ctx = p;
  for (uint32_t f = 0; p->nworkers > 1 && f < p->nworkers; f++)
    for (uint32_t t = 0; t < p->nworkers; t++)
      if (f != t &&
          ((rc = fring_init(ring_of(p, f, t), HANDOFF_SLOTS,
                            sizeof(struct handoff_meta) + HANDOFF_MAX_PKT)) < 0 ||
           (rc = fring_init(fring_of(p, f, t), cfg->worker_ring_slots, cfg->max_frame_size)) < 0 ||
           (rc = fring_init(cring_of(p, f, t), CONTROL_SLOTS, sizeof(struct ctl_msg))) < 0))
        goto fail;
  if ((p->done_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
    rc = -errno;
    goto fail;
  }
  /* Signals: blocked in every thread (the workers inherit the mask), read
   * from one signalfd by the process thread. */
  sigemptyset(&p->sigmask);
  sigaddset(&p->sigmask, SIGINT);
  sigaddset(&p->sigmask, SIGTERM);
  sigaddset(&p->sigmask, SIGHUP);
  if ((rc = -pthread_sigmask(SIG_BLOCK, &p->sigmask, NULL)) < 0)
    goto fail;
  if ((p->sigfd = signalfd(-1, &p->sigmask, SFD_CLOEXEC)) < 0) {
    rc = -errno;
    goto fail;
  }
  /* after the signal mask: libnats's threads inherit it */
  if (cfg->nats_url[0]) {
    struct fed_params fp = {.urls = cfg->nats_url,
                            .creds = cfg->nats_creds,
                            .id = cfg->relay_id,
                            .prefix = cfg->nats_prefix,
                            .port = cfg->port,
                            .nworkers = p->nworkers,
                            .max_rooms = cfg->max_rooms,
                            .max_frame = cfg->max_frame_size,
                            .aging_ns = (uint64_t)cfg->mac_aging_s * NS_PER_S,
                            .lease_ns = (uint64_t)cfg->lease_time_s * NS_PER_S,
                            .max_live = cfg->max_sessions * p->nworkers,
                            .local_busy = fed_local_busy,
                            .local_take = fed_local_take,
                            .local_ctx = p};
    config_pool_range(cfg, &fp.pool_first, &fp.pool_last);
    if (cfg->lease_file[0])
      log_warn("--lease-file is not used with --nats: leases are kept in NATS", "lease_file=%s",
               LOG_Q(cfg->lease_file));
    if ((rc = fed_start(&p->fed, &fp)) < 0)
      goto fail;
    p->fed_ok = true;
  }
  /* One worker at a time, so that worker 0 fixes the address and port
   * (the fallback, an ephemeral port) the others bind with SO_REUSEPORT;
   * none receives before all are built (p->go). */
  for (uint32_t i = 0; i < p->nworkers; i++) {
    struct server_worker *s = calloc(1, sizeof(*s));
    if (!s)
      goto fail_threads;
    p->ws[i] = s;
    s->proc = p;
    s->index = i;
    s->bell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->bell < 0) {
      rc = -errno;
      goto fail_threads;
    }
    if ((rc = status_snap_init(&s->status)) < 0)
      goto fail_threads;
    s->status_ok = true;
    if ((rc = -pthread_create(&s->thread, NULL, worker_main, s)) < 0)
      goto fail_threads;
    s->started = true;
    pthread_mutex_lock(&p->lock);
    p->nstarted++;
    while (p->built < (int)i + 1)
      pthread_cond_wait(&p->cond, &p->lock);
    rc = p->built_rc;
    pthread_mutex_unlock(&p->lock);
    if (rc < 0)
      goto fail_threads;
  }
  steer_attach_hook(p);
  *out = p;
  return 0;
fail_threads:
  if (rc == 0)
    rc = -ENOMEM;
  pthread_mutex_lock(&p->lock);
  if (!p->built_rc)
    p->built_rc = rc;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  join_workers(p);
fail:
  server_destroy(p);
  return rc;
}

/* The exit line: one debug line, msg="counters at exit", with every
 * counter of every table as key=value (counter_exit_key: "quic_resets"),
 * zeros included, summed over the workers (workers=N first): the same
 * figures /metrics gave last, plus each loop's turns and times. */
static void log_exit_counters(struct server *p)
{
  if (!log_enabled(LOG_DEBUG) || !p->finals)
    return;
  struct metrics_worker *sum = &p->metrics_sum;
  memset(sum, 0, sizeof(*sum));
  uint64_t loop[5] = {0};
  for (uint32_t i = 0; i < p->nworkers; i++) {
    const struct worker_final *f = &p->finals[i];
    uint64_t *d = (uint64_t *)sum;
    const uint64_t *w = (const uint64_t *)&f->mw;
    for (size_t k = 0; k < WORDS(struct metrics_worker); k++)
      d[k] += w[k];
    const uint64_t l[5] = {f->turns, f->busy_ns, f->wait_ns, f->handoff_in, f->uplink_no_room};
    for (size_t k = 0; k < 5; k++)
      loop[k] += l[k];
  }
  const struct worker_final *f0 = &p->finals[0];
  mirrored_from_worker0(sum, &f0->mw.auth);
  struct counter_line l = {0};
  counter_line_add(&l, "workers", p->nworkers);
  metrics_worker_line(&l, sum);
  static const char *const loop_keys[5] = {"loop_turns", "loop_busy_ns", "loop_wait_ns",
                                           "loop_handoff_in", "loop_uplink_no_room"};
  for (size_t k = 0; k < 5; k++)
    counter_line_add(&l, loop_keys[k], loop[k]);
  counter_line_add(&l, "leases", f0->leases);
  counter_line_add(&l, "leases_active", f0->leases_active);
  counter_line_table(&l, &lease_counter_table, &f0->lease);
  if (f0->ops_ok)
    counter_line_table(&l, &ops_counter_table, &f0->ops);
  if (p->fed_ok) {
    struct fed_counters fc;
    fed_counters_read(&p->fed, &fc);
    counter_line_table(&l, &fed_counter_table, &fc);
  }
  if (p->cap_ok) {
    struct capture_counters cc;
    capture_counters_read(&p->cap, &cc);
    counter_line_table(&l, &capture_counter_table, &cc);
  }
  if (counter_line_emit(&l, LOG_DEBUG, "counters at exit") < 0)
    log_warn("no memory for the exit counters", "workers=%u", p->nworkers);
}

uint16_t server_port(const struct server *p)
{
  return p->port;
}

const char *server_bind(const struct server *p)
{
  return p->bind;
}

const struct tls_cert *server_cert(const struct server *p)
{
  return p->cert;
}

/* The process thread: starts the workers, then waits for signals, the
 * certificate poll and the workers' ends. */
int server_run(struct server *p)
{
  pthread_mutex_lock(&p->lock);
  p->go = true;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  uint32_t ended = 0;
  bool stopping = false;
  int poll_ms = (int)(p->cfg->cert_poll_s > 2000000 ? 2000000000 : p->cfg->cert_poll_s * 1000);
  while (ended < p->nworkers) {
    struct pollfd pf[2] = {{.fd = p->sigfd, .events = POLLIN},
                           {.fd = p->done_fd, .events = POLLIN}};
    int n = poll(pf, 2, poll_ms);
    if (n < 0 && errno != EINTR) {
      log_error("process poll failed", "err=\"%s\"", strerror(errno));
      broadcast(p, EV_STOP_NOW);
      break;
    }
    if (n == 0) {
      cert_check(p, false);
      continue;
    }
    if (pf[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read(p->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
          log_info("SIGHUP: checking the certificate", "%s", "");
          cert_check(p, true);
          broadcast(p, EV_RELOAD);
        } else if (!stopping) {
          log_info("stop signal received", "signal=%u workers=%u", si.ssi_signo, p->nworkers);
          stopping = true;
          broadcast(p, EV_STOP);
        } else {
          broadcast(p, EV_STOP_NOW);
        }
      }
    }
    if (pf[1].revents & POLLIN) {
      uint64_t v = 0;
      if (read(p->done_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        ended += (uint32_t)v;
      if (!stopping && ended < p->nworkers) {
        /* a worker left on its own (an error): the relay stops */
        log_error("a worker stopped, stopping the relay", "ended=%u", ended);
        stopping = true;
        broadcast(p, EV_STOP);
      }
    }
  }
  join_workers(p);
  steer_release(p);
  log_exit_counters(p);
  int rc = 0;
  for (uint32_t i = 0; i < p->nworkers; i++)
    if (p->ws[i]->rc < 0 && !rc)
      rc = p->ws[i]->rc;
  return rc;
}

/* The worker's part of the exit line (log_exit_counters): its counters
 * from the same tables as /metrics and its loop's; worker 0 adds the
 * process-wide lease table and the ops listener's. */
static void final_store(struct server_worker *s)
{
  struct server *p = s->proc;
  if (!p->finals || !log_enabled(LOG_DEBUG))
    return;
  struct worker_final *f = &p->finals[s->index];
  worker_counters(s, &f->mw);
  f->turns = s->w.turns;
  f->busy_ns = s->w.busy_ns;
  f->wait_ns = s->w.wait_ns;
  f->handoff_in = s->handoff_in;
  f->uplink_no_room = s->uplink_no_room;
  if (s->index != 0)
    return;
  roomdir_lock(&p->dir); /* the lease table is shared */
  const struct lease_table *lt = p->dir.leases ? p->dir.leases : &s->relay.leases;
  f->leases = lt->nused;
  f->leases_active = lease_active(lt, s->w.now);
  f->lease = lt->ctr;
  roomdir_unlock(&p->dir);
  f->ops_ok = s->ops_ok;
  if (s->ops_ok)
    f->ops = s->ops.ctr;
}

void server_free(struct server *p)
{
  if (!p)
    return;
  join_workers(p);
  steer_release(p);
  server_destroy(p);
}
