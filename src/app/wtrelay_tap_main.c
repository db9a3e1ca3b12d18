/*
 * wtrelay-tap: puts a Linux network stack on a wtrelay virtual LAN.
 *
 *   wtrelay-tap --url https://HOST:PORT/ROOM [--cert-hash HEX] [--tap NAME]
 *               [--mac MAC] [--netns NAME] [--configure] [--heartbeat DURATION]
 *               [--log-level L]
 *
 * Flags follow getopt_long (--flag=value, unambiguous prefixes); the
 * heartbeat is a `sleep`-style duration (20, 20s, 1m), parsed by
 * config_duration_parse.
 *
 * Creates a TAP device with the MAC, optionally moves it into a network
 * namespace, and bridges it to one WebTransport session: frames the kernel
 * sends on the TAP go to the relay (chunked when they do not fit a
 * datagram), frames from the relay are written to the TAP. The session is
 * kept: it registers the MAC, heartbeats, and reconnects with backoff,
 * keeping the MAC and so the address. --configure applies Assigned (address,
 * netmask, default route via the gateway) to the TAP in its namespace, again
 * after a reconnect if the address changed. SIGINT/SIGTERM close the
 * session and exit 0. Exit 1 on a start-up failure (with one line saying
 * why), 2 on usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "wtrelay/config.h"
#include "wtrelay/io_probe.h"
#include "wtrelay/log.h"
#include "wtrelay/net.h"
#include "wtrelay/rng.h"
#include "wtrelay/tap.h"
#include "wtrelay/tls.h"
#include "wtrelay/wtc.h"

#define TAP_FRAME_MAX 1518 /* 1514 + a VLAN tag */

struct tapper {
  struct wtc c;
  struct wtc_session *s;
  struct io_pktfd *dev;
  char ifname[TAP_NAME_MAX];
  const char *netns;
  bool configure, replace_route;
  uint8_t configured_ip[4];
  bool stop;
  uint32_t assigned_seen;
  uint64_t to_relay, to_relay_dropped, from_relay, from_relay_dropped;
};

/* A usage error: one line naming the flag, a pointer to --help; exit 2. */
#define usage_error(...) cli_usage_error("wtrelay-tap", __VA_ARGS__)

struct args {
  const char *url, *hash, *tapname, *netns;
  uint8_t mac[6];
  bool have_mac, configure, replace_route;
  uint64_t heartbeat_ms;
  enum wtc_transport transport;
};

enum {
  O_URL = 256,
  O_HASH,
  O_TAP,
  O_NETNS,
  O_HEARTBEAT,
  O_MAC,
  O_LOG,
  O_CONFIGURE,
  O_REPLACE_ROUTE,
  O_TRANSPORT
};

/* The flags, once: getopt's table, --help, the man page and the bash
 * completion are made from it (cli.h). */
static const struct cli_flag flags[] = {
    CLI_FLAG_URL(O_URL),
    CLI_FLAG_CERT_HASH(O_HASH),
    {"tap", 0, "NAME", NULL, NULL, NULL,
     "name of the TAP device, created or attached to (default: the kernel picks wtrN)", O_TAP},
    {"mac", 0, "MAC", NULL, NULL, NULL,
     "MAC of the TAP device and of the registration (default 52:54:00 and three random bytes)",
     O_MAC},
    {"netns", 0, "NAME", NULL, NULL, NULL,
     "move the TAP device into network namespace /run/netns/NAME (or a path)", O_NETNS},
    {"configure", 0, NULL, NULL, NULL, NULL,
     "apply the relay's Assigned to the device: address, netmask, default route via the "
     "gateway; with --netns also bring lo up and write /etc/netns/NAME/resolv.conf with the "
     "DNS server",
     O_CONFIGURE},
    {"replace-default-route", 0, NULL, NULL, NULL, NULL,
     "with --configure, replace a default route the namespace (or host) already has; without "
     "it such a route is left alone and a warning says so",
     O_REPLACE_ROUTE},
    {"heartbeat", 0, "DURATION", NULL, NULL, NULL,
     "time between heartbeats, 1s to 1h (default 20s)", O_HEARTBEAT},
    {"transport", 0, "wt|ws|auto", NULL, NULL, NULL,
     "WebTransport (wt), the relay's WebSocket fallback over TLS/TCP on the same port (ws), or "
     "WebTransport and the WebSocket when a session does not open within 3 s, for example "
     "where UDP is blocked (auto, the default)",
     O_TRANSPORT},
    CLI_FLAG_LOG_LEVEL(O_LOG),
    CLI_FLAGS_HELP_VERSION,
};
#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

static const struct cli_page page = {
    .prog = "wtrelay-tap",
    .summary = "put a Linux network stack on a wtrelay virtual LAN",
    .synopsis = "--url https://HOST:PORT/ROOM [OPTIONS]",
    .description =
        "wtrelay-tap creates a TAP device, optionally moves it into a network namespace, and "
        "bridges it to one session of a wtrelay room (WebTransport, or the relay's WebSocket "
        "fallback where UDP is blocked: --transport): frames the kernel sends on "
        "the device go to the relay, frames from the relay are written to the device. The "
        "session registers the MAC, heartbeats, and reconnects with backoff, keeping the MAC "
        "and so the address.\n\n"
        "With --configure the address the relay assigns is set on the device, again after a "
        "reconnect that changed it. It needs CAP_NET_ADMIN.",
    .help_footer = "DURATION is 20 or 20s (seconds), 1m, 1h. See docs/wtrelay-tap.md.",
    .man_sections =
        ".SH FILES\n.TP\n\\fI/etc/netns/NAME/resolv.conf\\fR\n"
        "Written by \\fB\\-\\-configure \\-\\-netns\\fR \\fINAME\\fR: the relay's DNS server. "
        "\\fBip netns exec\\fR shows it to the namespace's programs as /etc/resolv.conf.\n"
        ".SH SIGNALS\n\\fBSIGINT\\fR and \\fBSIGTERM\\fR close the session; the program "
        "exits 0.\n"
        ".SH EXIT STATUS\n0 after a signal, 1 on a start-up failure (one line says why) or when "
        "the TAP device went away, 2 on a usage error.\n"
        ".SH SEE ALSO\n\\fBwtrelay\\fR(1), \\fBwtclient\\fR(1), \\fBip\\-netns\\fR(8)\n",
    .flags = flags,
    .nflags = NFLAGS,
};

static struct option long_opts[NFLAGS + 1];

#define opt_name(val) cli_opt_name(long_opts, (val))

/* Parses the command line into a. Returns 0, CLI_HELP, CLI_VERSION, or 2 after
 * printing a usage error. */
static int parse_args(struct args *a, int argc, char **argv)
{
  int ch, li;
  opterr = 0; /* our messages, one line each */
  cli_long_options(flags, NFLAGS, long_opts);
  while ((ch = getopt_long(argc, argv, ":hV", long_opts, &li)) != -1) {
    const char *v = optarg;
    switch (ch) {
    case 'h':
      return CLI_HELP;
    case 'V':
      return CLI_VERSION;
    case O_URL:
      a->url = v;
      break;
    case O_HASH:
      a->hash = v;
      break;
    case O_TAP:
      a->tapname = v;
      break;
    case O_NETNS:
      a->netns = v;
      break;
    case O_HEARTBEAT:
      if (config_duration_parse(v, &a->heartbeat_ms) < 0 || a->heartbeat_ms < 1000 ||
          a->heartbeat_ms > 3600 * 1000)
        return usage_error("--heartbeat: expected a duration from 1s to 1h such as 20, 20s or 1m, "
                           "got '%s'",
                           v);
      break;
    case O_MAC:
      if (net_mac_parse(v, a->mac) < 0)
        return usage_error("--mac: expected a unicast MAC such as 52:54:00:12:34:57, got '%s'", v);
      a->have_mac = true;
      break;
    case O_LOG: {
      enum log_level l;
      if (log_level_parse(v, &l) < 0)
        return usage_error("--log-level: expected error, warn, info or debug, got '%s'", v);
      log_set_level(l);
      break;
    }
    case O_CONFIGURE:
      a->configure = true;
      break;
    case O_REPLACE_ROUTE:
      a->replace_route = true;
      break;
    case O_TRANSPORT:
      if (strcmp(v, "wt") == 0)
        a->transport = WTC_WT;
      else if (strcmp(v, "ws") == 0)
        a->transport = WTC_WS;
      else if (strcmp(v, "auto") == 0)
        a->transport = WTC_AUTO;
      else
        return usage_error("--transport: expected wt, ws or auto, got '%s'", v);
      break;
    default:
      return cli_getopt_error("wtrelay-tap", long_opts, ch, argv);
    }
  }
  if (optind < argc)
    return usage_error("unexpected argument '%s'", argv[optind]);
  if (!a->url)
    return usage_error("--url is required");
  return 0;
}

static uint32_t be32(const uint8_t b[4])
{
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void on_state(void *user, struct wtc_session *s)
{
  struct tapper *t = user;
  if (s->state == WTC_REGISTERED && s->assigned != t->assigned_seen) {
    t->assigned_seen = s->assigned;
    log_info("registered", "tap=%s ip=%u.%u.%u.%u gateway=%u.%u.%u.%u reconnects=%u transport=%s",
             t->ifname, s->ip[0], s->ip[1], s->ip[2], s->ip[3], s->gateway[0], s->gateway[1],
             s->gateway[2], s->gateway[3], s->reconnects, wtc_session_transport(s));
    if (t->configure && memcmp(t->configured_ip, s->ip, 4) != 0) {
      char err[256];
      struct tap_addr addr = {.ip = be32(s->ip),
                              .netmask = be32(s->netmask),
                              .gw = be32(s->gateway),
                              .dns = be32(s->dns),
                              .replace_default_route = t->replace_route};
      int rc = tap_configure(t->netns, t->ifname, &addr, err, sizeof(err));
      if (rc < 0)
        log_error("cannot configure the TAP device", "tap=%s why=%s", t->ifname, LOG_Q(err));
      else
        memcpy(t->configured_ip, s->ip, 4);
      if (rc == TAP_ROUTE_KEPT)
        log_warn("a default route exists and was left in place (--replace-default-route "
                 "replaces it)",
                 "tap=%s netns=%s route=%s", t->ifname, t->netns ? t->netns : "-", LOG_Q(err));
    }
  } else if (s->state == WTC_OPEN && s->errors) {
    log_warn("relay refused the registration", "why=%s", LOG_Q(s->last_error));
  } else if (s->state == WTC_FAILED && s->reconnects == 0 && s->status == 0 && !t->stop) {
    log_warn("cannot reach the relay (will retry)", "why=%s",
             LOG_Q(s->close_reason[0] ? s->close_reason : "handshake failed or timed out"));
  }
}

/* relay -> TAP */
static void on_frame(void *user, struct wtc_session *s, const uint8_t *frame, size_t len)
{
  struct tapper *t = user;
  (void)s;
  struct iovec iov = {.iov_base = (void *)frame, .iov_len = len};
  if (io_pktfd_write(&t->c.w.io, t->dev, &iov, 1) == 0)
    t->from_relay++;
  else
    t->from_relay_dropped++;
}

/* TAP -> relay */
static void on_tap(void *ctx, struct io_pktfd *d, const uint8_t *pkt, size_t len)
{
  struct tapper *t = ctx;
  (void)d;
  if (t->s->state == WTC_REGISTERED && wtc_send_frame(t->s, pkt, len) == 0)
    t->to_relay++;
  else
    t->to_relay_dropped++;
}

static void on_signal(void *ctx, int signo)
{
  struct tapper *t = ctx;
  log_info("signal, closing", "signal=%d", signo);
  t->stop = true;
}

static const struct wtc_ops ops = {.on_state = on_state, .on_frame = on_frame};

static bool stopped(void *arg)
{
  return ((struct tapper *)arg)->stop;
}

int main(int argc, char **argv)
{
  struct args a = {.tapname = "", .heartbeat_ms = 20000, .transport = WTC_AUTO};
  if (cli_generate(argc, argv, &page))
    return 0;
  int prc = parse_args(&a, argc, argv);
  if (cli_print_info(prc, &page))
    return 0;
  if (prc)
    return prc;
  const char *url = a.url, *hash = a.hash, *tapname = a.tapname, *netns = a.netns;
  uint8_t mac[6];
  memcpy(mac, a.mac, sizeof(mac));
  bool have_mac = a.have_mac, configure = a.configure;
  uint8_t pin[32];
  if (hash && tls_hash_parse_hex(hash, pin) < 0) {
    return usage_error("--cert-hash: expected 64 hex digits (the relay prints them as "
                       "'Certificate SHA-256 Hash:'), got '%s'",
                       hash);
  }
  if (!have_mac) {
    /* QEMU's prefix, random rest; fixed for the life of the process so the
     * relay gives the same address back after a reconnect */
    mac[0] = 0x52;
    mac[1] = 0x54;
    mac[2] = 0x00;
    rng_fill(mac + 3, 3);
  }

  static struct tapper t;
  char err[256] = "";
  int fd, rc;
  t.netns = netns;
  t.configure = configure;
  t.replace_route = a.replace_route;
  char why[512];
  if (io_probe_uring(why, sizeof(why)) < 0) {
    fprintf(stderr, "wtrelay-tap: %s\n", why);
    return 1;
  }
  if ((rc = tap_open(tapname, mac, &fd, t.ifname, err, sizeof(err))) < 0) {
    fprintf(stderr, "wtrelay-tap: %s\n", err);
    return 1;
  }
  if (netns && (rc = tap_move_netns(t.ifname, netns, err, sizeof(err))) < 0) {
    fprintf(stderr, "wtrelay-tap: %s\n", err);
    return 1;
  }
  if ((rc = tap_up(netns, t.ifname, err, sizeof(err))) < 0) {
    fprintf(stderr, "wtrelay-tap: %s\n", err);
    return 1;
  }
  if ((rc = wtc_init(&t.c, url, hash ? pin : NULL, 1, &ops, &t)) < 0) {
    fprintf(stderr, "wtrelay-tap: cannot use %s: %s\n", url,
            rc == -EINVAL ? "expected https://HOST[:PORT]/ROOM" : strerror(-rc));
    return 1;
  }
  wtc_set_transport(&t.c, a.transport);
  if ((rc = io_pktfd_open(&t.c.w.io, fd, 16, 256, TAP_FRAME_MAX, on_tap, &t, &t.dev)) < 0) {
    fprintf(stderr, "wtrelay-tap: TAP I/O: %s\n", strerror(-rc));
    return 1;
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if ((rc = io_signals(&t.c.w.io, &mask, on_signal, &t)) < 0) {
    fprintf(stderr, "wtrelay-tap: signals: %s\n", strerror(-rc));
    return 1;
  }
  if ((rc = wtc_open(&t.c, &t.s)) < 0) {
    fprintf(stderr, "wtrelay-tap: cannot start a session: %s\n", strerror(-rc));
    return 1;
  }
  wtc_keep(t.s, mac, a.heartbeat_ms * 1000000ull);
  log_info("wtrelay-tap started",
           "tap=%s netns=%s mac=%02x:%02x:%02x:%02x:%02x:%02x url=%s configure=%d", t.ifname,
           netns ? netns : "-", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], url, configure);
  /* A certificate that fails verification before any handshake succeeded
   * is a configuration error: say so once and stop, rather than retry. An
   * unreachable relay is retried with backoff (and logged). */
  uint64_t t_start = clock_now_ns();
  bool warned_slow = false;
  while (!t.stop) {
    wtc_run(&t.c, 1000000000ull, stopped, &t);
    bool never_open = t.s->t_open_ns == 0 && t.c.quic.ctr.handshakes == 0;
    if (!warned_slow && never_open && clock_now_ns() - t_start > 3000000000ull) {
      log_warn("no answer from the relay yet, still trying", "url=%s", url);
      warned_slow = true;
    }
    /* WebTransport's TLS failure, or the WebSocket's (status -EACCES) */
    if (never_open && (t.c.quic.ctr.conns_tls_failed > 0 || t.s->status == -EACCES)) {
      fprintf(stderr, "wtrelay-tap: TLS handshake with %s failed: %s\n", url,
              hash ? "the relay's certificate does not match --cert-hash"
                   : "the relay's certificate is not trusted (use --cert-hash for a "
                     "self-signed relay)");
      wtc_fini(&t.c);
      return 1;
    }
    if (t.dev->dead) {
      log_error("the TAP device went away", "tap=%s", t.ifname);
      break;
    }
  }
  wtc_close(t.s, 0, "wtrelay-tap stopping");
  wtc_run(&t.c, 200000000ull, NULL, NULL);
  log_info("wtrelay-tap stopped",
           "to_relay=%llu to_relay_dropped=%llu from_relay=%llu from_relay_dropped=%llu "
           "reconnects=%u",
           (unsigned long long)t.to_relay, (unsigned long long)t.to_relay_dropped,
           (unsigned long long)t.from_relay, (unsigned long long)t.from_relay_dropped,
           t.s->reconnects);
  wtc_fini(&t.c);
  close(fd);
  return t.dev && t.dev->dead ? 1 : 0;
}
