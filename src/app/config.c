/*
 * config: flags and environment of wtrelay. See include/wtrelay/config.h.
 *
 * One table describes every flag (name, env var, kind, bounds, target,
 * heading, value name), so parsing, validation, --help, the man page and
 * the bash completion (config_cli_page, printed by cli.c) cannot drift
 * apart. --help groups the flags under their headings in enum opt_group's
 * order; within a heading they keep the table's order. Environment values are
 * applied first, then flags, so a flag always wins. The command line is read
 * by hand rather than with getopt_long (global state, argv permutation,
 * messages printed to stderr) but follows its conventions: attached and
 * separate values for short and long flags, unambiguous long prefixes, `--`.
 * Values in seconds are OPT_SECS: config_duration_parse, whole seconds.
 * RUST_LOG is the seed's logging variable; it only fills in for RELAY_LOG.
 */
#include "wtrelay/config.h"

#include "cli.h"

#include "wtrelay/auth.h"
#include "wtrelay/net.h"
#include "wtrelay/ops.h"
#include "wtrelay/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum opt_kind {
  OPT_U32,
  OPT_SECS, /* a duration (60, 60s, 1m, 1h, 1d) in whole seconds, into a uint32_t */
  OPT_PORT,
  OPT_BIND,
  OPT_PATH,
  OPT_LOGLEVEL,
  OPT_LOGFORMAT,
  OPT_RETRY, /* auto|always|never into a uint8_t */
  OPT_MAC,
  OPT_FLAG,
  OPT_SUBNET,
  OPT_SUBNET6,
  OPT_IPV4,
  OPT_UPSTREAM,
  OPT_EGRESS_ALLOW,
  OPT_EGRESS_DENY,
  OPT_FORWARD, /* --forward, repeatable (fwd_spec_parse) */
  OPT_STR128,
  OPT_STR256,
  OPT_ORIGIN,      /* --allow-origin, repeatable */
  OPT_HEALTHCHECK, /* --healthcheck [URL]: an optional http:// URL (config_parse) */
  OPT_HELP,        /* no value: config_parse returns CONFIG_HELP */
  OPT_VERSION,     /* no value: config_parse returns CONFIG_VERSION */
};

/* The headings of --help and the man page, in their order. */
enum opt_group {
  G_OTHER, /* an entry without a heading: listed last, under "Other" (test_cli fails) */
  G_NET,
  G_CERT,
  G_ROOMS,
  G_LIMITS,
  G_NAT,
  G_ACCESS,
  G_OPS,
  G_FED,
  G_WORKERS,
  G_LOG,
  G_COUNT
};

static const char *const group_names[G_COUNT] = {
    "Other",       "Network",        "Certificates", "Rooms and addresses", "Limits and shares",
    "NAT and DNS", "Access control", "Operations",   "Federation",          "Workers",
    "Logging"};

struct opt {
  const char *flag;
  char short_flag;
  const char *env;
  enum opt_kind kind;
  uint32_t min, max;
  size_t offset;
  const char *help;
  enum opt_group group;
  const char *metavar; /* NULL: the kind's (kind_metavar) */
};

#define OFF(f) offsetof(struct config, f)

static const struct opt opts[] = {
    {"port", 'p', NULL, OPT_PORT, 1, 65535, OFF(port), "UDP port to listen on (default 4433)",
     G_NET, NULL},
    {"bind", 'b', NULL, OPT_BIND, 0, 0, OFF(bind),
     "address to bind; '::' is dual-stack and also accepts IPv4 (default ::)", G_NET, NULL},
    {"cert-pem", 0, "RELAY_CERT_PEM", OPT_PATH, 0, 0, OFF(cert_pem),
     "PEM certificate chain; without it an ephemeral self-signed one is made", G_CERT, NULL},
    {"key-pem", 0, "RELAY_KEY_PEM", OPT_PATH, 0, 0, OFF(key_pem),
     "PEM private key for --cert-pem (both or neither)", G_CERT, NULL},
    {"heartbeat-interval", 0, NULL, OPT_SECS, 1, 3600, OFF(heartbeat_interval_s),
     "time between peer liveness sweeps (default 30s)", G_NET, NULL},
    {"peer-timeout", 0, NULL, OPT_SECS, 1, 86400, OFF(peer_timeout_s),
     "time without traffic before a peer is dropped (default 150s)", G_NET, NULL},
    {"register-timeout", 0, NULL, OPT_SECS, 1, 3600, OFF(register_timeout_s),
     "time a session may stay unregistered (default 30s)", G_NET, NULL},
    {"log-level", 0, "RELAY_LOG", OPT_LOGLEVEL, 0, 0, OFF(log_level),
     "error, warn, info or debug (default info; RUST_LOG is read when RELAY_LOG "
     "is unset)",
     G_LOG, NULL},
    {"log-format", 0, "RELAY_LOG_FORMAT", OPT_LOGFORMAT, 0, 0, OFF(log_json),
     "logfmt or json: one key=value line, or one JSON object per line (default logfmt)", G_LOG,
     "FORMAT"},
    {"max-sessions", 0, NULL, OPT_U32, 1, 1000000, OFF(max_sessions),
     "maximum concurrent QUIC connections (default 4096)", G_LIMITS, NULL},
    {"max-sessions-per-ip", 0, NULL, OPT_U32, 1, 1000000, OFF(max_sessions_per_ip),
     "maximum concurrent connections from one source address (default 256)", G_LIMITS, NULL},
    {"retry", 0, NULL, OPT_RETRY, 0, 0, OFF(retry),
     "QUIC address validation by Retry: auto (once --retry-threshold handshakes are in "
     "progress), always, never (default auto)",
     G_NET, NULL},
    {"retry-threshold", 0, NULL, OPT_U32, 0, 1000000, OFF(retry_threshold),
     "handshakes in progress before --retry auto asks new clients to prove their address "
     "(default 32)",
     G_NET, NULL},
    {"max-unvalidated", 0, NULL, OPT_U32, 0, 1000000, OFF(max_unvalidated),
     "connections from addresses not yet validated, apart from the others (default: "
     "max-sessions / 4)",
     G_NET, NULL},
    {"max-rooms", 0, NULL, OPT_U32, 1, 65536, OFF(max_rooms),
     "maximum number of rooms (virtual LANs) (default 256)", G_ROOMS, NULL},
    {"max-rooms-per-client", 0, NULL, OPT_U32, 0, 65536, OFF(max_rooms_per_client),
     "rooms one client address (IPv6: /64) may have created that are alive; a room counts once "
     "a session registered in it (default 0 = max-rooms / 16, at least 1: 16)",
     G_LIMITS, NULL},
    {"room-rate", 0, NULL, OPT_U32, 1, 1000000, OFF(room_rate),
     "rooms one client address may create per second, on average (default 1)", G_LIMITS, "PER_SEC"},
    {"room-burst", 0, NULL, OPT_U32, 1, 65536, OFF(room_burst),
     "rooms one client address may create at once after a pause (default 8)", G_LIMITS, NULL},
    {"max-client-sessions-per-room", 0, NULL, OPT_U32, 1, 1000000,
     OFF(max_client_sessions_per_room),
     "sessions one client address may have in one room, registered or not (default 64)", G_LIMITS,
     NULL},
    {"max-client-addrs-per-room", 0, NULL, OPT_U32, 0, 65536, OFF(max_client_addrs_per_room),
     "addresses of a room's pool one client address may hold, live or sticky (default 0 = a "
     "fifth of the pool: 49 for a /24)",
     G_LIMITS, NULL},
    {"lease-time", 0, "RELAY_LEASE_TIME", OPT_SECS, 1, 31536000, OFF(lease_time_s),
     "time a MAC keeps its IP in a room after its session ended (default 1d)", G_ROOMS, NULL},
    {"lease-file", 0, "RELAY_LEASE_FILE", OPT_PATH, 0, 0, OFF(lease_file),
     "file the leases are kept in across restarts (default: none)", G_ROOMS, NULL},
    {"max-leases", 0, NULL, OPT_U32, 1, 4194304, OFF(max_leases),
     "leases remembered in all (default: max-rooms x pool size, at most 65536)", G_ROOMS, NULL},
    {"gateway-mac", 0, NULL, OPT_MAC, 0, 0, OFF(gateway_mac),
     "MAC address of the gateway 10.0.2.2 (default 52:55:0a:00:02:02)", G_ROOMS, NULL},
    {"max-frame-size", 0, NULL, OPT_U32, 64, 9216, OFF(max_frame_size),
     "largest Ethernet frame accepted or reassembled, bytes (default 1514)", G_ROOMS, "BYTES"},
    {"mac-aging", 0, NULL, OPT_SECS, 1, 86400, OFF(mac_aging_s),
     "time a learned MAC address is remembered (default 5m)", G_ROOMS, NULL},
    {"max-macs-per-port", 0, NULL, OPT_U32, 1, 1024, OFF(max_macs_per_port),
     "MAC addresses learned per session (default 4)", G_ROOMS, NULL},
    {"max-macs-per-room", 0, NULL, OPT_U32, 1, 1048576, OFF(max_macs_per_room),
     "MAC addresses learned per room (default 1024)", G_ROOMS, NULL},
    {"max-macs-per-uplink", 0, NULL, OPT_U32, 0, 1048576, OFF(max_macs_per_uplink),
     "MAC addresses learned behind one uplink port (another worker's copy of the room); 0 = "
     "the room's bound (default 0)",
     G_ROOMS, NULL},
    {"max-reassembly", 0, NULL, OPT_U32, 1, 16, OFF(max_reassembly),
     "chunked frames being reassembled per session (default 4)", G_ROOMS, NULL},
    {"allow-any-src-mac", 0, NULL, OPT_FLAG, 0, 0, OFF(allow_any_src_mac),
     "let a session send frames from MACs other than its registered one (default off)", G_ROOMS,
     NULL},
    {"flood-rate", 0, NULL, OPT_U32, 0, 1000000, OFF(flood_rate),
     "broadcast, multicast and unknown-unicast frames a session may flood per second; "
     "more are dropped; 0 = unlimited (default 100)",
     G_LIMITS, "PER_SEC"},
    {"flood-burst", 0, NULL, OPT_U32, 1, 1000000, OFF(flood_burst),
     "flooded frames a session may send at once above --flood-rate (default 200)", G_LIMITS, NULL},
    {"subnet", 0, NULL, OPT_SUBNET, 0, 0, OFF(subnet),
     "the virtual LAN's IPv4 subnet, /16 to /28; gateway .2, DNS .3, pool .10 up "
     "(default 10.0.2.0/24)",
     G_ROOMS, NULL},
    {"subnet6", 0, NULL, OPT_SUBNET6, 0, 0, OFF(subnet6),
     "every room's IPv6 /64, announced for SLAAC; gateway ::2 and fe80::2 (default: a ULA "
     "prefix per room, fd + a random global id of this process + a hash of the room)",
     G_ROOMS, NULL},
    {"dns", 0, NULL, OPT_IPV4, 0, 0, OFF(dns),
     "DNS server announced in Assigned and DHCP (default: the forwarder at .3; "
     "8.8.8.8 = the seed's behaviour)",
     G_NAT, "ADDR"},
    {"dns-upstream", 0, NULL, OPT_UPSTREAM, 0, 0, OFF(dns_upstream),
     "resolver the forwarder asks, ADDR or ADDR:PORT, repeatable (default: /etc/resolv.conf)",
     G_NAT, NULL},
    {"egress-allow", 0, NULL, OPT_EGRESS_ALLOW, 0, 0, OFF(egress),
     "let the NAT reach this CIDR (IPv4 or IPv6), repeatable (most specific rule wins)", G_NAT,
     NULL},
    {"egress-deny", 0, NULL, OPT_EGRESS_DENY, 0, 0, OFF(egress),
     "never let the NAT reach this CIDR (IPv4 or IPv6), repeatable", G_NAT, NULL},
    {"forward", 0, NULL, OPT_FORWARD, 0, 0, OFF(forward),
     "forward a host port to a VM: tcp or udp, an optional IPv4 address to bind, the host port, "
     "the VM's IPv4 address or its MAC in brackets (followed across reconnects), its port, the "
     "room's URL path (default /); e.g. tcp:8080=[52:54:00:12:34:56]:80@/lab; repeatable (up "
     "to 32)",
     G_NAT, "PROTO:[ADDR:]PORT=VM:PORT[@ROOM]"},
    {"max-forward-conns", 0, NULL, OPT_U32, 1, 65000, OFF(max_forward_conns),
     "TCP connections and UDP mappings of every --forward together (default 1024)", G_NAT, NULL},
    {"max-forward-conns-per-forward", 0, NULL, OPT_U32, 1, 65000, OFF(max_forward_conns_per_fwd),
     "TCP connections or UDP mappings (one per remote address and port) of one forward "
     "(default 256)",
     G_NAT, NULL},
    {"mtu", 0, NULL, OPT_U32, 576, 9000, OFF(mtu), "interface MTU announced by DHCP (default 1500)",
     G_NAT, "BYTES"},
    {"max-udp-flows", 0, NULL, OPT_U32, 1, 65536, OFF(max_udp_flows),
     "UDP NAT mappings in all (default 4096)", G_NAT, NULL},
    {"max-udp-flows-per-vm", 0, NULL, OPT_U32, 1, 65536, OFF(max_udp_flows_per_vm),
     "UDP NAT mappings per VM (default 256)", G_NAT, NULL},
    {"udp-timeout", 0, NULL, OPT_SECS, 1, 86400, OFF(udp_timeout_s),
     "time a UDP NAT mapping lives after the VM's last datagram through it (default 60s)", G_NAT,
     NULL},
    {"max-dns-inflight-per-vm", 0, NULL, OPT_U32, 1, 1024, OFF(max_dns_inflight_per_vm),
     "DNS queries one VM may have in flight at the forwarder; beyond, SERVFAIL (default 32)", G_NAT,
     NULL},
    {"max-icmp-flows-per-vm", 0, NULL, OPT_U32, 1, 256, OFF(max_icmp_flows_per_vm),
     "ICMP echo ids (ping NAT flows) per VM (default 16)", G_NAT, NULL},
    {"max-tcp-conns", 0, NULL, OPT_U32, 0, 65000, OFF(max_tcp_conns),
     "TCP NAT connections in all; 0 turns the TCP NAT off (every SYN gets RST) (default 4096)",
     G_NAT, NULL},
    {"max-tcp-conns-per-vm", 0, NULL, OPT_U32, 1, 65000, OFF(max_tcp_conns_per_vm),
     "TCP NAT connections per VM (default 256)", G_NAT, NULL},
    {"max-udp-flows-per-client", 0, NULL, OPT_U32, 0, 65536, OFF(max_udp_flows_per_client),
     "UDP NAT mappings per client address (IPv6: per /64), all its VMs together "
     "(default 0: a quarter of --max-udp-flows)",
     G_LIMITS, NULL},
    {"max-tcp-conns-per-client", 0, NULL, OPT_U32, 0, 65000, OFF(max_tcp_conns_per_client),
     "TCP NAT connections per client address (IPv6: per /64) "
     "(default 0: a quarter of --max-tcp-conns)",
     G_LIMITS, NULL},
    {"max-tcp-pending-per-client", 0, NULL, OPT_U32, 1, 65000, OFF(max_tcp_pending_per_client),
     "TCP NAT connects in progress per client address (IPv6: per /64) (default 64)", G_LIMITS,
     NULL},
    {"max-tcp-pending-per-vm", 0, NULL, OPT_U32, 1, 65000, OFF(max_tcp_pending_per_vm),
     "TCP NAT connects in progress per VM (default 32)", G_NAT, NULL},
    {"nat-new-rate", 0, NULL, OPT_U32, 0, 1000000, OFF(nat_new_rate),
     "new NAT flows (UDP mappings, TCP connections, ping ids) per second per VM; 0 = no limit "
     "(default 50)",
     G_LIMITS, "PER_SEC"},
    {"nat-new-burst", 0, NULL, OPT_U32, 1, 1000000, OFF(nat_new_burst),
     "new NAT flows a VM may open at once above --nat-new-rate (default 100)", G_LIMITS, NULL},
    {"tcp-idle-timeout", 0, NULL, OPT_SECS, 10, 604800, OFF(tcp_idle_timeout_s),
     "time an idle TCP NAT connection lives (default 2h)", G_NAT, NULL},
    {"ws-listen", 0, "RELAY_WS_LISTEN", OPT_STR128, 0, 0, OFF(ws_listen),
     "ADDR:PORT of the WebSocket fallback (TLS over TCP, wss://HOST:PORT/ROOM) for networks "
     "that block UDP; empty disables (default: TCP on --bind and --port)",
     G_NET, "ADDR:PORT"},
    {"ws-max-conns", 0, NULL, OPT_U32, 1, 65000, OFF(ws_max_conns),
     "WebSocket fallback connections per worker (default 1024)", G_LIMITS, NULL},
    {"ws-max-conns-per-ip", 0, NULL, OPT_U32, 0, 65000, OFF(ws_max_conns_per_ip),
     "WebSocket fallback connections per client address and worker; 0 = no cap (default 16)",
     G_LIMITS, NULL},
    {"ws-max-queue", 0, NULL, OPT_U32, 16384, 67108864, OFF(ws_max_queue),
     "bytes of frames queued toward one WebSocket client; more are dropped and counted "
     "(default 262144)",
     G_LIMITS, "BYTES"},
    {"http-listen", 0, "RELAY_HTTP_LISTEN", OPT_STR128, 0, 0, OFF(http_listen),
     "ADDR:PORT of /metrics, /healthz, /readyz, /cert-hash; empty disables "
     "(default " CONFIG_HTTP_LISTEN_DEFAULT ")",
     G_OPS, "ADDR:PORT"},
    {"cors-origin", 0, NULL, OPT_STR128, 0, 0, OFF(cors_origin),
     "Access-Control-Allow-Origin of /cert-hash (default *)", G_OPS, "ORIGIN"},
    {"ops-max-conns", 0, NULL, OPT_U32, 1, 65000, OFF(ops_max_conns),
     "concurrent connections to the ops listener; at the bound the one waiting longest for a "
     "request is closed for a newcomer (default 256)",
     G_OPS, NULL},
    {"ops-api", 0, NULL, OPT_FLAG, 0, 0, OFF(ops_api),
     "serve GET, POST and DELETE /forwards on the ops listener (off by default; on an address "
     "other than loopback only with --ops-token)",
     G_OPS, NULL},
    {"ops-token", 0, "RELAY_OPS_TOKEN", OPT_STR128, 0, 0, OFF(ops_token),
     "bearer token the ops API requires (Authorization: Bearer TOKEN); prefer the environment "
     "variable, which ps does not show",
     G_OPS, "TOKEN"},
    {"pcap", 0, NULL, OPT_PATH, 0, 0, OFF(pcap),
     "write the frames of room --pcap-room to this pcap file (created or truncated) until exit "
     "(default off)",
     G_OPS, NULL},
    {"pcap-room", 0, NULL, OPT_STR256, 0, 0, OFF(pcap_room),
     "the room --pcap captures, by its URL path (/lab)", G_OPS, "ROOM"},
    {"pcap-max-bytes", 0, NULL, OPT_U32, 4096, UINT32_MAX, OFF(pcap_max_bytes),
     "bytes --pcap writes at most; then it stops and logs (default 1073741824)", G_OPS, "BYTES"},
    {"workers", 0, "RELAY_WORKERS", OPT_U32, 0, 256, OFF(workers),
     "worker threads, each with its own UDP socket on the port (SO_REUSEPORT), io_uring, "
     "connections and room copies; 0: one per CPU the process may run on, at most 256 "
     "(default 0)",
     G_WORKERS, "N"},
    {"worker-ring-slots", 0, "RELAY_WORKER_RING_SLOTS", OPT_U32, 2, 1048576, OFF(worker_ring_slots),
     "frames each worker-pair ring holds (rooms across workers; a power of two; a full ring "
     "drops and counts) (default 1024)",
     G_WORKERS, "SLOTS"},
    {"cpu-affinity", 0, NULL, OPT_FLAG, 0, 0, OFF(cpu_affinity),
     "pin worker i to the i-th CPU the process may run on (wrapping around) and name its thread "
     "wtrelay-wN (default off)",
     G_WORKERS, NULL},
    {"cert-poll-interval", 0, "CERT_POLL_INTERVAL", OPT_SECS, 1, 86400, OFF(cert_poll_s),
     "time between checks of the PEM files for a new certificate (default 60s)", G_CERT, NULL},
    {"shutdown-timeout", 0, NULL, OPT_SECS, 1, 300, OFF(shutdown_timeout_s),
     "time SIGTERM waits for sessions to close (default 5s)", G_OPS, NULL},
    {"healthcheck", 0, NULL, OPT_HEALTHCHECK, 0, 0, OFF(healthcheck),
     "probe http://ADDR:PORT/PATH, exit 0 if it answers 200, else 1; without a URL (or an "
     "empty one) the /healthz of the relay the other flags and environment describe: "
     "http://<--http-listen>/healthz, a wildcard address as 127.0.0.1",
     G_OPS, "[URL]"},
    {"auth-key", 0, "RELAY_AUTH_KEY", OPT_PATH, 0, 0, OFF(auth_key),
     "require a token (JWT) in the CONNECT's query, signed with this key: a shared secret "
     "(HS256) or a PEM EC P-256 public key (ES256)",
     G_ACCESS, NULL},
    {"auth-skew", 0, NULL, OPT_SECS, 0, 3600, OFF(auth_skew_s),
     "clock skew allowed on a token's exp and nbf (default 60s)", G_ACCESS, NULL},
    {"allow-origin", 0, NULL, OPT_ORIGIN, 0, 0, OFF(allow_origin),
     "accept CONNECTs only from this Origin (https://app.example.org or https://*.example.org), "
     "repeatable (up to 16); without an Origin a valid token is needed",
     G_ACCESS, NULL},
    /* federation over NATS (src/fed) */
    {"nats", 0, "RELAY_NATS_URL", OPT_PATH, 0, 0, OFF(nats_url),
     "join the relays of a NATS cluster: rooms span every relay connected to it "
     "(nats://HOST:PORT[,nats://...], tls:// for TLS, user:password@ in the URL; default off)",
     G_FED, "URL"},
    {"nats-creds", 0, NULL, OPT_PATH, 0, 0, OFF(nats_creds),
     "NATS credentials file (JWT and NKey seed) for --nats", G_FED, NULL},
    {"relay-id", 0, NULL, OPT_STR128, 0, 0, OFF(relay_id),
     "this relay's name in the cluster, unique, up to 64 bytes (default HOSTNAME:PORT)", G_FED,
     "NAME"},
    {"nats-subject-prefix", 0, NULL, OPT_STR128, 0, 0, OFF(nats_prefix),
     "first tokens of every NATS subject the relays use (default wtrelay)", G_FED, "PREFIX"},
    {"pool-first", 0, NULL, OPT_IPV4, 0, 0, OFF(pool_first),
     "lowest address the pool hands out (default subnet .10); with --nats, give each relay "
     "its own part of the subnet",
     G_ROOMS, "ADDR"},
    {"pool-last", 0, NULL, OPT_IPV4, 0, 0, OFF(pool_last),
     "highest address the pool hands out (default the last before the broadcast)", G_ROOMS, "ADDR"},
    {"help", 'h', NULL, OPT_HELP, 0, 0, 0, "print this help", G_OPS, NULL},
    {"version", 'V', NULL, OPT_VERSION, 0, 0, 0, "print the version", G_OPS, NULL},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

void config_defaults(struct config *c)
{
  memset(c, 0, sizeof(*c));
  c->port = 4433;
  snprintf(c->bind, sizeof(c->bind), "::");
  c->heartbeat_interval_s = 30;
  c->peer_timeout_s = 150;
  c->register_timeout_s = 30;
  c->log_level = LOG_INFO;
  c->max_sessions = 4096;
  c->max_sessions_per_ip = 256;
  c->retry = 0; /* auto */
  c->retry_threshold = 32;
  c->max_unvalidated = 0;
  c->max_rooms = 256;
  c->max_rooms_per_client = 0; /* max_rooms / 16 */
  c->room_rate = 1;
  c->room_burst = 8;
  c->max_client_sessions_per_room = 64;
  c->max_client_addrs_per_room = 0; /* a fifth of the pool */
  c->lease_time_s = 86400;
  memcpy(c->gateway_mac, (uint8_t[]){0x52, 0x55, 0x0a, 0x00, 0x02, 0x02}, 6);
  c->max_frame_size = 1514;
  c->mac_aging_s = 300;
  c->max_macs_per_port = 4;
  c->max_macs_per_room = 1024;
  c->max_macs_per_uplink = 0; /* the room's bound */
  c->max_reassembly = 4;
  c->allow_any_src_mac = false;
  c->flood_rate = 100;
  c->flood_burst = 200;
  c->subnet = 0x0a000200;
  c->prefix = 24;
  c->mtu = 1500;
  c->max_udp_flows = 4096;
  c->max_udp_flows_per_vm = 256;
  c->udp_timeout_s = 60;
  c->max_dns_inflight_per_vm = 32;
  c->max_icmp_flows_per_vm = 16;
  c->max_tcp_conns = 4096;
  c->max_tcp_conns_per_vm = 256;
  c->max_udp_flows_per_client = 0; /* a quarter of max_udp_flows */
  c->max_tcp_conns_per_client = 0; /* a quarter of max_tcp_conns */
  c->max_tcp_pending_per_client = 64;
  c->max_tcp_pending_per_vm = 32;
  c->nat_new_rate = 50;
  c->nat_new_burst = 100;
  c->tcp_idle_timeout_s = 7200;
  c->max_forward_conns = 1024;
  c->max_forward_conns_per_fwd = 256;
  snprintf(c->ws_listen, sizeof(c->ws_listen), "auto");
  c->ws_max_conns = 1024;
  c->ws_max_conns_per_ip = 16;
  c->ws_max_queue = 262144;
  snprintf(c->http_listen, sizeof(c->http_listen), "%s", CONFIG_HTTP_LISTEN_DEFAULT);
  snprintf(c->cors_origin, sizeof(c->cors_origin), "*");
  c->ops_max_conns = 256;
  c->pcap_max_bytes = 1u << 30;
  c->workers = 0; /* config_validate: the CPUs the process may run on */
  c->worker_ring_slots = 1024;
  c->cert_poll_s = 60;
  c->auth_skew_s = 60;
  snprintf(c->nats_prefix, sizeof(c->nats_prefix), "wtrelay");
  c->shutdown_timeout_s = 5;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  if (err && errlen)
    vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

int config_u32_parse(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
  if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
    return -EINVAL;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v < min || v > max)
    return -EINVAL;
  *out = (uint32_t)v;
  return 0;
}

int config_duration_parse(const char *s, uint64_t *ms)
{
  uint64_t whole = 0, frac = 0, scale = 1, unit = 1000;
  size_t nwhole = 0, nfrac = 0;
  bool overflow = false;
  if (!s)
    return -EINVAL;
  for (; *s >= '0' && *s <= '9'; s++, nwhole++) {
    if (whole > (UINT64_MAX - 9) / 10)
      overflow = true;
    else
      whole = whole * 10 + (uint64_t)(*s - '0');
  }
  if (*s == '.') {
    for (s++; *s >= '0' && *s <= '9'; s++, nfrac++) {
      if (nfrac < 9) { /* finer than a nanosecond of the unit: ignored */
        frac = frac * 10 + (uint64_t)(*s - '0');
        scale *= 10;
      }
    }
    if (nfrac == 0)
      return -EINVAL; /* "5." */
  }
  if (nwhole + nfrac == 0)
    return -EINVAL;
  switch (*s) {
  case 's':
    s++;
    break;
  case 'm':
    unit = 60 * 1000;
    s++;
    break;
  case 'h':
    unit = 3600 * 1000;
    s++;
    break;
  case 'd':
    unit = 86400 * 1000;
    s++;
    break;
  }
  if (*s)
    return -EINVAL;
  if (overflow || whole > UINT64_MAX / unit)
    return -ERANGE;
  uint64_t v = whole * unit, f = frac * unit / scale; /* frac < 1e9: no overflow */
  if (v > UINT64_MAX - f)
    return -ERANGE;
  *ms = v + f;
  return 0;
}

/* "90s", "5m", "2h", "7d": the largest unit that divides the value. */
static const char *secs_str(uint32_t secs, char *buf, size_t len)
{
  if (secs && secs % 86400 == 0)
    snprintf(buf, len, "%ud", secs / 86400);
  else if (secs && secs % 3600 == 0)
    snprintf(buf, len, "%uh", secs / 3600);
  else if (secs && secs % 60 == 0)
    snprintf(buf, len, "%um", secs / 60);
  else
    snprintf(buf, len, "%us", secs);
  return buf;
}

/* Appends ", item" (or "item") to a note, "..." once it is full. Quotes,
 * backslashes and control characters become '?': the note ends up inside a
 * quoted logfmt value. */
static void note_add(char *note, size_t len, const char *item, size_t ilen)
{
  size_t n = strlen(note);
  if (n + 4 >= len)
    return;
  if (n + (n ? 2 : 0) + ilen + 4 >= len) {
    snprintf(note + n, len - n, "...");
    return;
  }
  if (n) {
    memcpy(note + n, ", ", 2);
    n += 2;
  }
  for (size_t i = 0; i < ilen; i++)
    note[n++] =
        (item[i] == '"' || item[i] == '\\' || (unsigned char)item[i] < 0x20) ? '?' : item[i];
  note[n] = '\0';
}

/* One level word of env_logger, case-insensitive; off is our quietest. */
static int rust_level(const char *w, size_t len, enum log_level *out)
{
  char buf[16];
  if (len == 0 || len >= sizeof(buf))
    return -EINVAL;
  memcpy(buf, w, len);
  buf[len] = '\0';
  if (strcasecmp(buf, "off") == 0) {
    *out = LOG_ERROR;
    return 0;
  }
  return log_level_parse(buf, out);
}

int config_rust_log_parse(const char *filter, enum log_level *out, char *note, size_t notelen)
{
  char targets[128] = "", unknown[128] = "";
  enum log_level best = LOG_ERROR;
  bool found = false;
  const char *slash = strchr(filter, '/');
  size_t speclen = slash ? (size_t)(slash - filter) : strlen(filter);

  for (size_t i = 0; i < speclen;) {
    size_t dl = strcspn(filter + i, ",");
    if (i + dl > speclen)
      dl = speclen - i;
    const char *d = filter + i;
    i += dl + 1;
    while (dl && (*d == ' ' || *d == '\t')) /* env_logger trims each directive */
      d++, dl--;
    while (dl && (d[dl - 1] == ' ' || d[dl - 1] == '\t'))
      dl--;
    if (!dl)
      continue;
    const char *eq = memchr(d, '=', dl);
    const char *lvl = eq ? eq + 1 : d;
    size_t ll = eq ? dl - (size_t)(eq + 1 - d) : dl;
    enum log_level l;
    if (rust_level(lvl, ll, &l) < 0 || (eq && eq == d)) {
      note_add(unknown, sizeof(unknown), d, dl); /* "loud", "relay=loud", bare module */
      continue;
    }
    if (eq)
      note_add(targets, sizeof(targets), d, (size_t)(eq - d));
    if (!found || l > best)
      best = l;
    found = true;
  }
  if (note && notelen) {
    note[0] = '\0';
    size_t n = 0;
    if (targets[0])
      n += (size_t)snprintf(note + n, notelen - n, "module targets (level applied to all): %s",
                            targets);
    if (unknown[0] && n < notelen)
      n += (size_t)snprintf(note + n, notelen - n, "%snot a level: %s", n ? "; " : "", unknown);
    if (slash && n < notelen) {
      snprintf(note + n, notelen - n, "%sregex filter: ", n ? "; " : "");
      note_add(note + strlen(note), notelen - strlen(note), slash + 1, strlen(slash + 1));
    }
  }
  if (found)
    *out = best;
  return found ? 1 : 0;
}

/* Applies one value to the field of `o`. `origin` is "--flag" or the env var
 * name, used in the error. */
static int apply(struct config *c, const struct opt *o, const char *val, const char *origin,
                 char *err, size_t errlen)
{
  char *field = (char *)c + o->offset;
  uint32_t u;
  switch (o->kind) {
  case OPT_U32:
    if (config_u32_parse(val, o->min, o->max, &u))
      return fail(err, errlen, "%s: expected an integer from %u to %u, got '%s'", origin, o->min,
                  o->max, val);
    memcpy(field, &u, sizeof(u));
    return 0;
  case OPT_SECS: {
    uint64_t ms;
    char lo[16], hi[16];
    if (config_duration_parse(val, &ms) < 0 || ms % 1000 || ms / 1000 < o->min ||
        ms / 1000 > o->max)
      return fail(err, errlen,
                  "%s: expected a duration in whole seconds from %s to %s (60, 60s, 1m, 1h, 1d), "
                  "got '%s'",
                  origin, secs_str(o->min, lo, sizeof(lo)), secs_str(o->max, hi, sizeof(hi)), val);
    u = (uint32_t)(ms / 1000);
    memcpy(field, &u, sizeof(u));
    return 0;
  }
  case OPT_PORT:
    if (config_u32_parse(val, o->min, o->max, &u))
      return fail(err, errlen, "%s: expected a port from 1 to 65535, got '%s'", origin, val);
    *(uint16_t *)(void *)field = (uint16_t)u;
    return 0;
  case OPT_BIND: {
    struct in6_addr a6;
    struct in_addr a4;
    if (strlen(val) >= sizeof(c->bind) ||
        (inet_pton(AF_INET, val, &a4) != 1 && inet_pton(AF_INET6, val, &a6) != 1))
      return fail(err, errlen,
                  "%s: expected an IPv4 or IPv6 address such as 0.0.0.0 or ::, got '%s'", origin,
                  val);
    snprintf(c->bind, sizeof(c->bind), "%s", val);
    c->bind_given = true;
    return 0;
  }
  case OPT_PATH:
    if (!*val)
      return fail(err, errlen, "%s: empty path", origin);
    if (strlen(val) >= CONFIG_PATH_MAX)
      return fail(err, errlen, "%s: path too long", origin);
    snprintf(field, CONFIG_PATH_MAX, "%s", val);
    return 0;
  case OPT_RETRY: {
    static const char *const modes[] = {"auto", "always", "never"};
    for (uint8_t i = 0; i < 3; i++)
      if (strcmp(val, modes[i]) == 0) {
        memcpy(field, &i, 1);
        return 0;
      }
    return fail(err, errlen, "%s: expected auto, always or never, got '%s'", origin, val);
  }
  case OPT_LOGFORMAT:
    if (strcmp(val, "logfmt") != 0 && strcmp(val, "json") != 0)
      return fail(err, errlen, "%s: expected logfmt or json, got '%s'", origin, val);
    *(bool *)field = strcmp(val, "json") == 0;
    return 0;
  case OPT_LOGLEVEL: {
    enum log_level lvl;
    if (log_level_parse(val, &lvl))
      return fail(err, errlen, "%s: expected error, warn, info or debug, got '%s'", origin, val);
    memcpy(field, &lvl, sizeof(lvl));
    return 0;
  }
  case OPT_MAC:
    if (net_mac_parse(val, (uint8_t *)field) < 0)
      return fail(err, errlen, "%s: expected a unicast MAC such as 52:55:0a:00:02:02, got '%s'",
                  origin, val);
    return 0;
  case OPT_SUBNET: {
    uint32_t net;
    uint8_t len;
    if (policy_parse_cidr(val, &net, &len) < 0 || len < 16 || len > 28)
      return fail(err, errlen,
                  "%s: expected an IPv4 network from /16 to /28 such as 10.0.2.0/24, "
                  "got '%s'",
                  origin, val);
    c->subnet = net;
    c->prefix = len;
    return 0;
  }
  case OPT_SUBNET6: {
    char a[64];
    const char *slash = strchr(val, '/');
    struct in6_addr in6;
    if (!slash || strcmp(slash, "/64") != 0 || (size_t)(slash - val) >= sizeof(a))
      return fail(err, errlen, "%s: expected an IPv6 /64 such as fd00:77:72::/64, got '%s'", origin,
                  val);
    memcpy(a, val, (size_t)(slash - val));
    a[slash - val] = '\0';
    if (inet_pton(AF_INET6, a, &in6) != 1 || in6.s6_addr[0] == 0xff ||
        memcmp(in6.s6_addr + 8, "\0\0\0\0\0\0\0\0", 8) != 0)
      return fail(err, errlen,
                  "%s: expected a unicast IPv6 /64 with no host bits such as fd00:77:72::/64, "
                  "got '%s'",
                  origin, val);
    memcpy(c->subnet6, in6.s6_addr, 8);
    c->has_subnet6 = true;
    return 0;
  }
  case OPT_IPV4: {
    uint32_t ip;
    uint8_t len;
    if (policy_parse_cidr(val, &ip, &len) < 0 || len != 32 || strchr(val, '/'))
      return fail(err, errlen, "%s: expected an IPv4 address, got '%s'", origin, val);
    memcpy(field, &ip, sizeof(ip));
    return 0;
  }
  case OPT_UPSTREAM: {
    char host[64];
    unsigned long port = 53;
    const char *colon = strrchr(val, ':');
    size_t hl = colon && !strchr(colon + 1, ']') && strchr(val, ':') == colon
                    ? (size_t)(colon - val)
                    : strlen(val);
    if (hl == 0 || hl >= sizeof(host) || c->ndns_upstream >= CONFIG_LIST_MAX)
      return fail(err, errlen, "%s: expected ADDR or ADDR:PORT (at most %d), got '%s'", origin,
                  CONFIG_LIST_MAX, val);
    memcpy(host, val, hl);
    host[hl] = '\0';
    if (hl < strlen(val)) {
      char *end;
      port = strtoul(val + hl + 1, &end, 10);
      if (*end || port == 0 || port > 65535)
        return fail(err, errlen, "%s: bad port in '%s'", origin, val);
    }
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) != 1 && inet_pton(AF_INET6, host, &a6) != 1)
      return fail(err, errlen, "%s: expected an IP address, got '%s'", origin, host);
    memcpy(c->dns_upstream[c->ndns_upstream], host, hl + 1);
    c->dns_upstream_port[c->ndns_upstream++] = (uint16_t)port;
    return 0;
  }
  case OPT_EGRESS_ALLOW:
  case OPT_EGRESS_DENY: {
    uint32_t net;
    uint8_t len, net6[16];
    if ((strchr(val, ':') ? policy_parse_cidr6(val, net6, &len)
                          : policy_parse_cidr(val, &net, &len)) < 0 ||
        strlen(val) >= sizeof(c->egress[0].cidr))
      return fail(err, errlen,
                  "%s: expected a CIDR such as 198.18.0.0/15 or 2001:db8::/32 (no host bits), "
                  "got '%s'",
                  origin, val);
    if (c->negress >= CONFIG_EGRESS_MAX)
      return fail(err, errlen, "%s: at most %d egress rules", origin, CONFIG_EGRESS_MAX);
    snprintf(c->egress[c->negress].cidr, sizeof(c->egress[0].cidr), "%s", val);
    c->egress[c->negress++].allow = o->kind == OPT_EGRESS_ALLOW;
    return 0;
  }
  case OPT_FORWARD: {
    char why[400];
    if (c->nforward >= CONFIG_FORWARD_MAX)
      return fail(err, errlen, "%s: at most %d forwards", origin, CONFIG_FORWARD_MAX);
    if (fwd_spec_parse(val, &c->forward[c->nforward], why, sizeof(why)) < 0)
      return fail(err, errlen, "%s: %s", origin, why);
    c->nforward++;
    return 0;
  }
  case OPT_STR128:
  case OPT_STR256:
  case OPT_HEALTHCHECK: {
    size_t cap = o->kind == OPT_STR128 ? 128 : 256;
    if (strlen(val) >= cap)
      return fail(err, errlen, "%s: longer than %zu characters", origin, cap - 1);
    if (strpbrk(val, "\r\n\"\\"))
      return fail(err, errlen, "%s: control characters or quotes are not allowed", origin);
    snprintf(field, cap, "%s", val);
    return 0;
  }
  case OPT_ORIGIN:
    if (strlen(val) >= sizeof(c->allow_origin[0]) || auth_origin_pattern_check(val) < 0)
      return fail(err, errlen,
                  "%s: expected an origin such as https://app.example.org or "
                  "https://*.example.org (no path), got '%s'",
                  origin, val);
    if (c->nallow_origin >= CONFIG_ORIGIN_MAX)
      return fail(err, errlen, "%s: at most %d origins", origin, CONFIG_ORIGIN_MAX);
    snprintf(c->allow_origin[c->nallow_origin++], sizeof(c->allow_origin[0]), "%s", val);
    return 0;
  case OPT_FLAG:
    if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0 || strcmp(val, "yes") == 0)
      *(bool *)(void *)field = true;
    else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0 || strcmp(val, "no") == 0)
      *(bool *)(void *)field = false;
    else
      return fail(err, errlen, "%s: expected true or false, got '%s'", origin, val);
    return 0;
  case OPT_HELP:
  case OPT_VERSION:
    return fail(err, errlen, "%s: takes no value", origin);
  }
  return fail(err, errlen, "%s: internal error", origin);
}

/* getopt_long's lookup: an exact name, else the one flag the name is a
 * prefix of. NULL with *ambiguous set when several flags start with it. */
static const struct opt *find_long(const char *name, size_t len, bool *ambiguous)
{
  const struct opt *hit = NULL;
  *ambiguous = false;
  for (size_t i = 0; i < NOPTS; i++) {
    if (strncmp(opts[i].flag, name, len) != 0)
      continue;
    if (opts[i].flag[len] == '\0')
      return &opts[i];
    if (hit)
      *ambiguous = true;
    hit = &opts[i];
  }
  return *ambiguous ? NULL : hit;
}

static const struct opt *find_short(char ch)
{
  for (size_t i = 0; i < NOPTS; i++)
    if (opts[i].short_flag && opts[i].short_flag == ch)
      return &opts[i];
  return NULL;
}

static bool takes_value(const struct opt *o)
{
  return o->kind != OPT_FLAG && o->kind != OPT_HELP && o->kind != OPT_VERSION;
}

/* RUST_LOG, the seed's variable, when RELAY_LOG is not set. Never an error:
 * a filter we cannot honour leaves a note for main() to log. */
static void apply_rust_log(struct config *c, config_getenv_fn getenv_fn)
{
  const char *relay = getenv_fn("RELAY_LOG"), *rust = getenv_fn("RUST_LOG");
  if ((relay && *relay) || !rust || !*rust)
    return;
  char note[sizeof(c->log_note) - 64];
  if (config_rust_log_parse(rust, &c->log_level, note, sizeof(note)) == 0)
    snprintf(c->log_note, sizeof(c->log_note), "%s; keeping level %s", note,
             log_level_name(c->log_level));
  else if (note[0])
    snprintf(c->log_note, sizeof(c->log_note), "%s; using level %s", note,
             log_level_name(c->log_level));
}

/* --healthcheck without a URL: the /healthz of the ops listener the
 * configuration describes (--http-listen, checked by the caller), a
 * wildcard address as 127.0.0.1 (the listener takes IPv4 on "::" too). */
/* A listener flag's ADDR:PORT, or empty (off): 0, or the failure written. */
static int listen_check(const char *flag, const char *v, const char *example, char *err,
                        size_t errlen)
{
  char host[128];
  uint16_t port;
  if (!v[0] || ops_parse_listen(v, host, sizeof(host), &port) == 0)
    return 0;
  return fail(err, errlen, "%s: expected ADDR:PORT such as %s, or empty to disable, got '%s'", flag,
              example, v);
}

static int healthcheck_url(struct config *c, char *err, size_t errlen)
{
  char host[128];
  uint16_t port;
  if (!c->http_listen[0])
    return fail(err, errlen,
                "--healthcheck: no URL, and the ops listener is off (--http-listen is empty)");
  if (ops_parse_listen(c->http_listen, host, sizeof(host), &port) < 0)
    return fail(err, errlen, "--healthcheck: --http-listen '%s' is no ADDR:PORT", c->http_listen);
  if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
    snprintf(host, sizeof(host), "127.0.0.1");
  bool v6 = strchr(host, ':') != NULL;
  snprintf(c->healthcheck, sizeof(c->healthcheck), "http://%s%s%s:%u/healthz", v6 ? "[" : "", host,
           v6 ? "]" : "", port);
  return 0;
}

int config_parse(struct config *c, int argc, char **argv, config_getenv_fn getenv_fn, char *err,
                 size_t errlen)
{
  int rc;
  bool level_flag = false, healthcheck = false;
  if (err && errlen)
    err[0] = '\0';

  for (size_t i = 0; getenv_fn && i < NOPTS; i++) {
    if (!opts[i].env)
      continue;
    const char *v = getenv_fn(opts[i].env);
    if (v && *v && (rc = apply(c, &opts[i], v, opts[i].env, err, errlen)))
      return rc;
  }
  if (getenv_fn)
    apply_rust_log(c, getenv_fn);

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const struct opt *o = NULL;
    const char *val = NULL;
    char origin[64];

    if (strcmp(arg, "--") == 0) {
      if (i + 1 < argc)
        return fail(err, errlen, "unexpected argument '%s'", argv[i + 1]);
      break;
    }
    if (strncmp(arg, "--", 2) == 0) {
      const char *name = arg + 2;
      const char *eq = strchr(name, '=');
      size_t len = eq ? (size_t)(eq - name) : strlen(name);
      bool ambiguous;
      o = find_long(name, len, &ambiguous);
      if (ambiguous)
        return fail(err, errlen, "ambiguous flag '%.*s'", (int)(len + 2), arg);
      if (!o)
        return fail(err, errlen, "unknown flag '%.*s'", (int)(len + 2), arg);
      if (eq)
        val = eq + 1;
    } else if (arg[0] == '-' && arg[1]) {
      o = find_short(arg[1]);
      if (!o)
        return fail(err, errlen, "unknown flag '-%c'", arg[1]);
      if (arg[2] && !takes_value(o))
        return fail(err, errlen, "unknown flag '%s'", arg);
      if (arg[2])
        val = arg + 2; /* -p4433 */
    } else {
      return fail(err, errlen, "unexpected argument '%s'", arg);
    }
    snprintf(origin, sizeof(origin), "--%s", o->flag);
    if (o->kind == OPT_HELP && !val)
      return CONFIG_HELP;
    if (o->kind == OPT_VERSION && !val)
      return CONFIG_VERSION;
    if (!val && o->kind == OPT_FLAG)
      val = "true";
    if (!val && o->kind == OPT_HEALTHCHECK)
      val = i + 1 < argc && argv[i + 1][0] != '-' ? argv[++i] : ""; /* a URL, or none */
    healthcheck |= o->kind == OPT_HEALTHCHECK;
    if (!val) {
      if (i + 1 >= argc)
        return fail(err, errlen, "%s: missing value", origin);
      val = argv[++i];
    }
    if ((rc = apply(c, o, val, origin, err, errlen)))
      return rc;
    level_flag |= o->kind == OPT_LOGLEVEL;
  }
  if (level_flag)
    c->log_note[0] = '\0'; /* RUST_LOG was not used */

  if ((c->cert_pem[0] != 0) != (c->key_pem[0] != 0))
    return fail(err, errlen,
                "--cert-pem and --key-pem (RELAY_CERT_PEM, RELAY_KEY_PEM) must be "
                "given together, or neither for an ephemeral self-signed certificate");
  if ((rc = listen_check("--http-listen", c->http_listen, "127.0.0.1:8433 or [::1]:8433", err,
                         errlen)))
    return rc;
  c->ws_listen_auto = strcmp(c->ws_listen, "auto") == 0;
  if (c->ws_listen_auto) /* the QUIC port's number, on TCP */
    snprintf(c->ws_listen, sizeof(c->ws_listen), strchr(c->bind, ':') ? "[%s]:%u" : "%s:%u",
             c->bind, c->port);
  if ((rc = listen_check("--ws-listen", c->ws_listen, "[::]:4433 or 0.0.0.0:443", err, errlen)))
    return rc;
  if (c->ops_api && !c->http_listen[0])
    return fail(err, errlen, "--ops-api needs the ops listener (--http-listen is empty)");
  if (c->ops_api && !c->ops_token[0] && !config_listen_is_loopback(c->http_listen))
    return fail(err, errlen,
                "--ops-api on --http-listen %s, which is not a loopback address, needs "
                "--ops-token (or RELAY_OPS_TOKEN)",
                c->http_listen);
  for (uint32_t i = 0; i < c->nforward; i++)
    for (uint32_t j = 0; j < i; j++)
      if (fwd_spec_same_socket(&c->forward[i], &c->forward[j]))
        return fail(err, errlen, "--forward: two forwards of %s port %u",
                    c->forward[i].proto == IPPROTO_UDP ? "UDP" : "TCP", c->forward[i].host_port);
  if (healthcheck && !c->healthcheck[0] && (rc = healthcheck_url(c, err, errlen)))
    return rc;
  if ((c->pcap[0] != 0) != (c->pcap_room[0] != 0))
    return fail(err, errlen, "--pcap and --pcap-room must be given together");
  if (c->pcap_room[0] && c->pcap_room[0] != '/') {
    if (strlen(c->pcap_room) + 1 >= sizeof(c->pcap_room))
      return fail(err, errlen, "--pcap-room: name too long");
    memmove(c->pcap_room + 1, c->pcap_room, strlen(c->pcap_room) + 1);
    c->pcap_room[0] = '/';
  }
  if (c->worker_ring_slots & (c->worker_ring_slots - 1))
    return fail(err, errlen,
                "--worker-ring-slots: expected a power of two from 2 to 1048576, got %u",
                c->worker_ring_slots);
  if (!c->workers)
    c->workers = config_cpus_allowed();
  if (c->pool_first || c->pool_last) {
    uint32_t mask = c->prefix ? ~0u << (32 - c->prefix) : 0;
    uint32_t first, last;
    config_pool_range(c, &first, &last);
    if ((first & mask) != c->subnet || (last & mask) != c->subnet || first > last ||
        first < c->subnet + 10 || last >= (c->subnet | ~mask))
      return fail(err, errlen,
                  "--pool-first/--pool-last: a range inside the subnet from .10 up to the last "
                  "address before the broadcast, first <= last");
  }
  if (c->peer_timeout_s < c->heartbeat_interval_s)
    return fail(err, errlen,
                "--peer-timeout (%us) must not be shorter than --heartbeat-interval (%us)",
                c->peer_timeout_s, c->heartbeat_interval_s);
  return CONFIG_OK;
}

bool config_listen_is_loopback(const char *listen)
{
  char host[128];
  uint16_t port;
  struct in_addr a4;
  struct in6_addr a6;
  if (ops_parse_listen(listen, host, sizeof(host), &port) < 0)
    return false;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

uint32_t config_cpus_allowed(void)
{
  /* the affinity mask, not the online count: a container or taskset that
   * gives the process 2 of 64 CPUs wants 2 workers */
  cpu_set_t set;
  long n = 0;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    n = CPU_COUNT(&set);
  if (n <= 0)
    n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n <= 0)
    n = 1;
  return n > 256 ? 256 : (uint32_t)n;
}

/* The value's name in --help and the man page when the table has none. */
static const char *kind_metavar(enum opt_kind k)
{
  switch (k) {
  case OPT_U32:
    return "N";
  case OPT_SECS:
    return "DURATION";
  case OPT_PORT:
    return "PORT";
  case OPT_BIND:
  case OPT_IPV4:
    return "ADDR";
  case OPT_PATH:
    return "FILE";
  case OPT_LOGLEVEL:
    return "LEVEL";
  case OPT_LOGFORMAT:
    return "FORMAT";
  case OPT_RETRY:
    return "MODE";
  case OPT_MAC:
    return "MAC";
  case OPT_SUBNET:
  case OPT_SUBNET6:
  case OPT_EGRESS_ALLOW:
  case OPT_EGRESS_DENY:
    return "CIDR";
  case OPT_UPSTREAM:
    return "ADDR[:PORT]";
  case OPT_FORWARD:
    return "SPEC";
  case OPT_STR128:
  case OPT_STR256:
    return "VALUE";
  case OPT_HEALTHCHECK:
    return "[URL]";
  case OPT_ORIGIN:
    return "ORIGIN";
  case OPT_FLAG:
  case OPT_HELP:
  case OPT_VERSION:
    break;
  }
  return NULL;
}

static const char *kind_choices(enum opt_kind k)
{
  if (k == OPT_LOGLEVEL)
    return "error warn info debug";
  if (k == OPT_RETRY)
    return "auto always never";
  if (k == OPT_LOGFORMAT)
    return "logfmt json";
  return NULL;
}

/* Written by hand: the man page's sections after OPTIONS (roff). */
#define WTRELAY_MAN_SECTIONS                                                                       \
  ".SH DURATIONS\n"                                                                                \
  "A \\fIDURATION\\fR is a whole number of seconds (60 or 60s), minutes (5m), hours (2h) or "      \
  "days (1d).\n"                                                                                   \
  ".SH SIGNALS\n"                                                                                  \
  ".TP\n\\fBSIGTERM\\fR, \\fBSIGINT\\fR\n"                                                         \
  "Close every session and exit, waiting at most \\fB\\-\\-shutdown\\-timeout\\fR.\n"              \
  ".TP\n\\fBSIGHUP\\fR\n"                                                                          \
  "Read the certificate, key and \\fB\\-\\-auth\\-key\\fR files again at once.\n"                  \
  ".SH EXIT STATUS\n"                                                                              \
  "0 after a clean stop, 1 when the relay cannot start, 2 on a usage error. With "                 \
  "\\fB\\-\\-healthcheck\\fR: 0 when the URL (without one, the ops listener's /healthz) "          \
  "answers 200, else 1; 2 without a URL and with \\fB\\-\\-http\\-listen\\fR empty.\n"             \
  ".SH EXAMPLES\n"                                                                                 \
  "An ephemeral certificate, metrics on the default ops port:\n"                                   \
  ".PP\n.RS\n.nf\nwtrelay \\-\\-port 4433\ncurl http://" CONFIG_HTTP_LISTEN_DEFAULT "/metrics\n"   \
  ".fi\n.RE\n"                                                                                     \
  ".PP\nIs it healthy? (the /healthz of the ops listener the same flags and environment "          \
  "name):\n"                                                                                       \
  ".PP\n.RS\n.nf\nwtrelay \\-\\-healthcheck && echo up\n.fi\n.RE\n"                                \
  ".SH SEE ALSO\n"                                                                                 \
  "\\fBwtrelay\\-tap\\fR(1), \\fBwtclient\\fR(1); README.md and docs/ in the documentation "       \
  "directory.\n"

void config_cli_page(struct cli_page *p)
{
  static struct cli_flag flags[NOPTS];
  size_t n = 0;
  for (int k = 1; k <= G_COUNT; k++) /* G_NET first, G_OTHER last */
    for (size_t i = 0; i < NOPTS; i++) {
      const struct opt *o = &opts[i];
      int g = k % G_COUNT;
      if (o->group != (enum opt_group)g)
        continue;
      flags[n++] = (struct cli_flag){
          .name = o->flag,
          .short_flag = o->short_flag,
          .metavar = takes_value(o) ? (o->metavar ? o->metavar : kind_metavar(o->kind)) : NULL,
          .group = group_names[g],
          .env = o->env,
          .choices = kind_choices(o->kind),
          .help = o->help,
      };
    }
  *p = (struct cli_page){
      .prog = "wtrelay",
      .summary = "WebTransport relay and NAT gateway for browser VMs (a C drop-in for "
                 "bavy-relay).",
      .synopsis = "[OPTIONS]",
      .description =
          "wtrelay accepts WebTransport sessions over HTTP/3 and QUIC, one per browser VM, "
          "and switches the Ethernet frames they send as datagrams between the sessions of a "
          "room, a virtual LAN named by the URL path. Each VM gets an IPv4 address of the "
          "room's subnet; a gateway in the relay answers ARP, DHCP and DNS and gives the VMs "
          "the outside world through a user-space NAT for UDP, TCP and ping.\n\n"
          "At start it prints the SHA-256 hash of its certificate (a page passes it as "
          "serverCertificateHashes) and the URL it listens on. Every flag has a default; "
          "a flag wins over its environment variable.",
      .help_footer = "DURATION is 60 or 60s (seconds), 1m, 1h or 1d. 'wtrelay token --help' "
                     "mints access tokens for --auth-key.",
      .man_sections = WTRELAY_MAN_SECTIONS,
      .flags = flags,
      .nflags = n,
  };
}

void config_usage_print(FILE *f)
{
  struct cli_page p;
  config_cli_page(&p);
  cli_help_print(f, &p);
}
