/*
 * config: command-line flags and environment variables of `wtrelay`.
 *
 * The interface is the Rust bavy-relay's: --port, --bind, --cert-pem /
 * RELAY_CERT_PEM, --key-pem / RELAY_KEY_PEM, --heartbeat-interval,
 * --peer-timeout, plus wtrelay's own flags (log level, bounds). A flag wins
 * over its environment variable. Every value is validated here, once, and an
 * error message names the flag; nothing else in the relay re-validates.
 * The parser is pure: it reads argv and an injected getenv function, writes
 * a struct config, and never exits or prints (main() does).
 *
 * Command lines follow getopt_long's conventions: `--port 4433`,
 * `--port=4433`, `-p 4433`, `-p4433`, unambiguous prefixes of long flags
 * (`--heartbeat` for --heartbeat-interval), `--` ends the flags. Every value
 * in seconds is a duration in `sleep`'s syntax (config_duration_parse), which
 * wtclient and wtrelay-tap use too. RUST_LOG (env_logger's filter syntax) is
 * read when RELAY_LOG is unset; what it could not honour is left in
 * config.log_note for main() to log once.
 */
#ifndef WTRELAY_CONFIG_H
#define WTRELAY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wtrelay/log.h"
#include "wtrelay/nat_fwd.h"

#define CONFIG_PATH_MAX 4096
#define CONFIG_LIST_MAX 4
#define CONFIG_EGRESS_MAX 64
#define CONFIG_ORIGIN_MAX 16
#define CONFIG_FORWARD_MAX 32
/* The ops listener's default. 8433 rather than Prometheus's 9090 (a relay
 * and the Prometheus scraping it often share a host) and outside 9100-9999,
 * the range the Prometheus project hands out to exporters; /etc/services
 * names no service on it. The 4433 in it recalls the relay's UDP port. */
#define CONFIG_OPS_PORT 8433
#define CONFIG_HTTP_LISTEN_DEFAULT "127.0.0.1:8433"

struct config {
  uint16_t port;                    /* --port, 4433 */
  char bind[64];                    /* --bind, "::" (dual-stack) */
  bool bind_given;                  /* --bind was on the command line */
  char cert_pem[CONFIG_PATH_MAX];   /* --cert-pem / RELAY_CERT_PEM, "" = ephemeral */
  char key_pem[CONFIG_PATH_MAX];    /* --key-pem / RELAY_KEY_PEM */
  uint32_t heartbeat_interval_s;    /* --heartbeat-interval, 30 */
  uint32_t peer_timeout_s;          /* --peer-timeout, 150 */
  uint32_t register_timeout_s;      /* --register-timeout, 30 */
  bool log_json;                    /* --log-format json */
  enum log_level log_level;         /* --log-level / RELAY_LOG / RUST_LOG, info */
  char log_note[256];               /* what RUST_LOG had that was ignored, "" = none */
  uint32_t max_sessions;            /* --max-sessions, 4096 */
  uint32_t max_sessions_per_ip;     /* --max-sessions-per-ip, 256 */
  uint8_t retry;                    /* --retry auto|always|never (enum quic_retry order), auto */
  uint32_t retry_threshold;         /* --retry-threshold, 32 handshakes in progress */
  uint32_t max_unvalidated;         /* --max-unvalidated, 0 = max_sessions / 4 */
  uint32_t max_rooms;               /* --max-rooms, 256 */
  uint32_t lease_time_s;            /* --lease-time / RELAY_LEASE_TIME, 86400 */
  char lease_file[CONFIG_PATH_MAX]; /* --lease-file / RELAY_LEASE_FILE, "" = none */
  uint32_t max_leases;              /* --max-leases, 0 = max_rooms x pool size, at most 65536 */

  /* per-client shares of rooms and addresses (relay.h) */
  uint32_t max_rooms_per_client;         /* --max-rooms-per-client, 0 = max_rooms / 16, >= 1 */
  uint32_t room_rate;                    /* --room-rate, 1 room per second per client */
  uint32_t room_burst;                   /* --room-burst, 8 */
  uint32_t max_client_sessions_per_room; /* --max-client-sessions-per-room, 64 */
  uint32_t max_client_addrs_per_room;    /* --max-client-addrs-per-room, 0 = pool / 5 */

  /* virtual switch */
  uint8_t gateway_mac[6];       /* --gateway-mac, 52:55:0a:00:02:02 */
  uint32_t max_frame_size;      /* --max-frame-size, 1514 */
  uint32_t mac_aging_s;         /* --mac-aging, 300 */
  uint32_t max_macs_per_port;   /* --max-macs-per-port, 4 */
  uint32_t max_macs_per_room;   /* --max-macs-per-room, 1024 */
  uint32_t max_macs_per_uplink; /* --max-macs-per-uplink, 0 = max_macs_per_room */
  uint32_t max_reassembly;      /* --max-reassembly, 4 chunked frames per session */
  bool allow_any_src_mac;       /* --allow-any-src-mac, off (port security on) */
  uint32_t flood_rate;          /* --flood-rate, 100 flooded frames/s per session, 0 = unlimited */
  uint32_t flood_burst;         /* --flood-burst, 200 */
  /* gateway and NAT */
  uint32_t subnet; /* --subnet, 10.0.2.0/24 (host order) */
  uint8_t prefix;
  uint8_t subnet6[8]; /* --subnet6 (network order), when has_subnet6 */
  bool has_subnet6;
  uint32_t dns;                           /* --dns: announced DNS, 0 = the forwarder (subnet .3) */
  char dns_upstream[CONFIG_LIST_MAX][64]; /* --dns-upstream ADDR[:PORT], repeatable */
  uint16_t dns_upstream_port[CONFIG_LIST_MAX];
  uint32_t ndns_upstream;
  struct config_egress {
    char cidr[48]; /* IPv4 or IPv6 */
    bool allow;
  } egress[CONFIG_EGRESS_MAX]; /* --egress-allow / --egress-deny CIDR, repeatable */
  uint32_t negress;
  uint32_t mtu;                     /* --mtu, DHCP option 26, 1500 */
  uint32_t max_udp_flows;           /* --max-udp-flows, 4096 */
  uint32_t max_udp_flows_per_vm;    /* --max-udp-flows-per-vm, 256 */
  uint32_t udp_timeout_s;           /* --udp-timeout, 60 */
  uint32_t max_dns_inflight_per_vm; /* --max-dns-inflight-per-vm, 32 */
  uint32_t max_icmp_flows_per_vm;   /* --max-icmp-flows-per-vm, 16 */
  uint32_t max_tcp_conns;           /* --max-tcp-conns, 4096; 0 = off */
  uint32_t max_tcp_conns_per_vm;    /* --max-tcp-conns-per-vm, 256 */
  /* fair shares of the NAT (nat_share.c) */
  uint32_t max_udp_flows_per_client;   /* --max-udp-flows-per-client, 0 = max_udp_flows / 4 */
  uint32_t max_tcp_conns_per_client;   /* --max-tcp-conns-per-client, 0 = max_tcp_conns / 4 */
  uint32_t max_tcp_pending_per_client; /* --max-tcp-pending-per-client, 64 */
  uint32_t max_tcp_pending_per_vm;     /* --max-tcp-pending-per-vm, 32 */
  uint32_t nat_new_rate;               /* --nat-new-rate, new flows/s per VM, 50, 0 = off */
  uint32_t nat_new_burst;              /* --nat-new-burst, 100 */
  uint32_t tcp_idle_timeout_s;         /* --tcp-idle-timeout, 7200 */
  /* inbound port forwarding (nat_fwd.h) */
  struct fwd_spec forward[CONFIG_FORWARD_MAX]; /* --forward, repeatable */
  uint32_t nforward;
  uint32_t max_forward_conns;         /* --max-forward-conns, 1024 (TCP connections and UDP
                                       * mappings of every forward together) */
  uint32_t max_forward_conns_per_fwd; /* --max-forward-conns-per-forward, 256 */
  /* the WebSocket fallback (ws_listen.c) */
  char ws_listen[128];          /* --ws-listen / RELAY_WS_LISTEN: ADDR:PORT; "auto" (default): TCP
                                 * on --bind and --port; "" = off */
  bool ws_listen_auto;          /* ws_listen came from "auto": a port in use only warns */
  uint32_t ws_max_conns;        /* --ws-max-conns, per worker, 1024 */
  uint32_t ws_max_conns_per_ip; /* --ws-max-conns-per-ip, per worker, 16; 0 = no cap */
  uint32_t ws_max_queue;        /* --ws-max-queue, bytes queued toward one client, 262144 */
  /* operations */
  char http_listen[128];  /* --http-listen, CONFIG_HTTP_LISTEN_DEFAULT, "" = off */
  char cors_origin[128];  /* --cors-origin, "*" */
  uint32_t ops_max_conns; /* --ops-max-conns, 256 */
  bool ops_api;           /* --ops-api: GET/POST/DELETE /forwards, off */
  char ops_token[128];    /* --ops-token / RELAY_OPS_TOKEN: Bearer token of the API, "" = none */
  uint32_t workers;       /* --workers / RELAY_WORKERS; 0 (default): config_cpus_allowed() */
  uint32_t worker_ring_slots;  /* --worker-ring-slots, 1024 (frames per worker-pair ring) */
  bool cpu_affinity;           /* --cpu-affinity, off */
  uint32_t cert_poll_s;        /* --cert-poll-interval / CERT_POLL_INTERVAL, 60 */
  uint32_t shutdown_timeout_s; /* --shutdown-timeout, 5 */
  char healthcheck[256];       /* --healthcheck [URL]: probe and exit; without a URL, the
                                * ops listener's /healthz (config_parse fills it in) */
  char pcap[CONFIG_PATH_MAX];  /* --pcap FILE: capture --pcap-room to it, "" = off */
  char pcap_room[256];         /* --pcap-room (a leading '/' added when missing) */
  uint32_t pcap_max_bytes;     /* --pcap-max-bytes, 1 GiB */
  /* access control (auth.c) */
  char auth_key[CONFIG_PATH_MAX];            /* --auth-key / RELAY_AUTH_KEY, "" = no tokens */
  uint32_t auth_skew_s;                      /* --auth-skew, 60 */
  char allow_origin[CONFIG_ORIGIN_MAX][256]; /* --allow-origin, repeatable */
  uint32_t nallow_origin;
  /* federation over NATS (fed.h) */
  char nats_url[CONFIG_PATH_MAX];   /* --nats / RELAY_NATS_URL, "" = off */
  char nats_creds[CONFIG_PATH_MAX]; /* --nats-creds, "" = none */
  char relay_id[128];               /* --relay-id, "" = hostname:port */
  char nats_prefix[128];            /* --nats-subject-prefix, "wtrelay" */
  uint32_t pool_first, pool_last; /* --pool-first/--pool-last (host order), 0 = subnet .10 / last */
};

enum config_result {
  CONFIG_OK = 0,
  CONFIG_HELP = 1,    /* --help given: print config_usage(), exit 0 */
  CONFIG_VERSION = 2, /* --version given: print version, exit 0 */
};

typedef const char *(*config_getenv_fn)(const char *name);

void config_defaults(struct config *c);

/* Parses argv[1..argc-1] over the defaults and the environment read through
 * `getenv_fn` (NULL = no environment), with getopt_long's conventions (see
 * above). Returns enum config_result, or -EINVAL with a one-line message
 * that names the flag written to err (main prints it with a pointer to
 * --help and exits 2). */
int config_parse(struct config *c, int argc, char **argv, config_getenv_fn getenv_fn, char *err,
                 size_t errlen);

/* Parses a duration as `sleep` writes it: a non-negative decimal number
 * (`60`, `1.5`) with an optional unit `s`, `m`, `h` or `d`; no unit means
 * seconds. Nothing else is accepted: no sign, blanks, exponent or trailing
 * characters. Writes milliseconds (a fraction finer than 1 ms is
 * truncated). Returns 0, -EINVAL on a malformed value, -ERANGE when it does
 * not fit 64 bits of milliseconds. */
int config_duration_parse(const char *s, uint64_t *ms);

/* Parses a decimal integer from min to max (no sign, no blanks, no
 * trailing characters). Returns 0 or -EINVAL. */
int config_u32_parse(const char *s, uint32_t min, uint32_t max, uint32_t *out);

/* Reads an env_logger filter (RUST_LOG): comma-separated directives `LEVEL`,
 * `TARGET=LEVEL` or `TARGET`, with an optional `/REGEX` suffix. Sets *out
 * to the most verbose level named anywhere (trace = debug, off = error) and
 * returns 1, or returns 0 and leaves *out alone when no level was
 * recognised. Writes to note (may be NULL) the parts that were ignored or
 * widened (module targets, the regex, unknown words), "" when none. */
int config_rust_log_parse(const char *filter, enum log_level *out, char *note, size_t notelen);

/* The address pool's range of every room (host order): --pool-first and
 * --pool-last, by default .10 up to the last address before the broadcast. */
static inline void config_pool_range(const struct config *c, uint32_t *first, uint32_t *last)
{
  uint32_t mask = c->prefix ? ~0u << (32 - c->prefix) : 0;
  *first = c->pool_first ? c->pool_first : c->subnet + 10;
  *last = c->pool_last ? c->pool_last : (c->subnet | ~mask) - 1;
}

/* Is the ops listener's ADDR:PORT on a loopback address (127/8, ::1)? */
bool config_listen_is_loopback(const char *listen);
/* Writes the --help text. */
/* CPUs the process may run on (its affinity mask; the online count if
 * that cannot be read), 1 to 256: the default worker count. */
uint32_t config_cpus_allowed(void);
void config_usage_print(FILE *f);

#endif
