/*
 * wtclient: a small native WebTransport client for tests and manual checks.
 * Opens N sessions to a relay, registers them, exchanges heartbeats, can
 * send junk, and prints one line per session plus a JSON summary.
 *
 *   wtclient --url https://127.0.0.1:4433/room --cert-hash HEX [--sessions N]
 *            [--mac 52:54:00:00:00:01] [--same-mac] [--heartbeats K] [--junk]
 *            [--no-register] [--hold DURATION] [--until-closed] [--timeout DURATION]
 *
 * Flags follow getopt_long (--flag=value, unambiguous prefixes); durations
 * are `sleep`-style (0.5, 10, 10s, 1m), parsed by config_duration_parse.
 *
 * Exit status: 0 when every session reached what was asked (registered,
 * heartbeats acknowledged; with --until-closed: closed by the relay), 1
 * otherwise, 2 on usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "wtrelay/config.h"
#include "wtrelay/io_probe.h"
#include "wtrelay/log.h"
#include "wtrelay/net.h"
#include "wtrelay/tls.h"
#include "wtrelay/wtc.h"

struct opts {
  const char *url, *hash, *close_reason;
  uint32_t sessions, heartbeats, late_heartbeats;
  uint8_t mac[6];
  bool same_mac, junk, no_register, until_closed, expect_error;
  double hold_s, timeout_s, silent_s;
  double tick_s; /* --tick: a heartbeat every tick_s during --hold (0 = silent hold) */
};

/* A usage error: one line naming the flag, a pointer to --help; exit 2. */
#define usage_error(...) cli_usage_error("wtclient", __VA_ARGS__)

enum {
  O_URL = 256,
  O_HASH,
  O_SESSIONS,
  O_HEARTBEATS,
  O_HOLD,
  O_LATE,
  O_TIMEOUT,
  O_MAC,
  O_LOG,
  O_SAME_MAC,
  O_JUNK,
  O_NO_REGISTER,
  O_UNTIL_CLOSED,
  O_EXPECT_ERROR,
  O_GO_SILENT,
  O_CLOSE_REASON,
  O_TICK,
};

/* The flags, once: getopt's table, --help, the man page and the bash
 * completion are made from it (cli.h). */
static const struct cli_flag flags[] = {
    CLI_FLAG_URL(O_URL),
    CLI_FLAG_CERT_HASH(O_HASH),
    {"sessions", 0, "N", NULL, NULL, NULL, "sessions to open, 1 to 100000 (default 1)", O_SESSIONS},
    {"mac", 0, "MAC", NULL, NULL, NULL,
     "MAC of the first session, the next ones count up from it (default 52:54:00:ab:00:01)", O_MAC},
    {"same-mac", 0, NULL, NULL, NULL, NULL, "every session registers the same MAC", O_SAME_MAC},
    {"heartbeats", 0, "N", NULL, NULL, NULL,
     "heartbeats each session sends after registering; each must be answered (default 0)",
     O_HEARTBEATS},
    {"junk", 0, NULL, NULL, NULL, NULL,
     "before registering, send malformed datagrams (empty, an unknown type, cut-off JSON)", O_JUNK},
    {"no-register", 0, NULL, NULL, NULL, NULL, "open the sessions but never register",
     O_NO_REGISTER},
    {"hold", 0, "DURATION", NULL, NULL, NULL, "keep the sessions open this long after registering",
     O_HOLD},
    {"tick", 0, "DURATION", NULL, NULL, NULL,
     "during --hold, a heartbeat every DURATION (each must be answered too): keeps packets "
     "flowing, e.g. while the client's address changes",
     O_TICK},
    {"late-heartbeats", 0, "N", NULL, NULL, NULL, "heartbeats sent after --hold (default 0)",
     O_LATE},
    {"until-closed", 0, NULL, NULL, NULL, NULL,
     "at the end, wait (at most --timeout) until the relay closes every session; success only then",
     O_UNTIL_CLOSED},
    {"expect-error", 0, NULL, NULL, NULL, NULL,
     "success when the relay answers the registration with an Error", O_EXPECT_ERROR},
    {"go-silent", 0, "DURATION", NULL, NULL, NULL,
     "after registering, print the result, then neither read nor send for DURATION and exit "
     "without closing (a client whose network died)",
     O_GO_SILENT},
    {"close-reason", 0, "STR", NULL, NULL, NULL,
     "the reason of the CLOSE_WEBTRANSPORT_SESSION sent at the end, any bytes (default \"bye\")",
     O_CLOSE_REASON},
    {"timeout", 0, "DURATION", NULL, NULL, NULL,
     "time each step (opening, registering, heartbeats) may take (default 20s)", O_TIMEOUT},
    CLI_FLAG_LOG_LEVEL(O_LOG),
    CLI_FLAGS_HELP_VERSION,
};
#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

static const struct cli_page page = {
    .prog = "wtclient",
    .summary = "a small native WebTransport client for testing a wtrelay",
    .synopsis = "--url https://HOST:PORT/ROOM [OPTIONS]",
    .description =
        "wtclient opens sessions to a relay, registers them, exchanges heartbeats, can send "
        "junk, and prints one line per session plus a JSON summary. Tests and manual checks "
        "use it.\n\nFlags follow getopt_long (--flag=value, unambiguous prefixes).",
    .help_footer = "DURATION is 0.5, 10 or 10s (seconds), 1m, 1h.",
    .man_sections = ".SH EXIT STATUS\n"
                    "0 when every session reached what was asked (registered, heartbeats "
                    "acknowledged; with \\fB\\-\\-until\\-closed\\fR: closed by the relay), 1 "
                    "otherwise, 2 on a usage error.\n"
                    ".SH SEE ALSO\n\\fBwtrelay\\fR(1), \\fBwtrelay\\-tap\\fR(1)\n",
    .flags = flags,
    .nflags = NFLAGS,
};

static struct option long_opts[NFLAGS + 1];

#define opt_name(val) cli_opt_name(long_opts, (val))

/* Parses the command line into o. Returns 0, CLI_HELP, CLI_VERSION, or 2 after
 * printing a usage error. */
static int parse_args(struct opts *o, int argc, char **argv)
{
  int ch, li;
  uint32_t u;
  uint64_t ms;
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
      o->url = v;
      break;
    case O_HASH:
      o->hash = v;
      break;
    case O_CLOSE_REASON:
      o->close_reason = v;
      break;
    case O_SESSIONS:
      if (config_u32_parse(v, 1, 100000, &o->sessions) < 0)
        return usage_error("--sessions: expected an integer from 1 to 100000, got '%s'", v);
      break;
    case O_HEARTBEATS:
    case O_LATE:
      if (config_u32_parse(v, 0, 1000000, &u) < 0)
        return usage_error("--%s: expected an integer from 0 to 1000000, got '%s'", opt_name(ch),
                           v);
      *(ch == O_HEARTBEATS ? &o->heartbeats : &o->late_heartbeats) = u;
      break;
    case O_HOLD:
    case O_TICK:
    case O_TIMEOUT:
    case O_GO_SILENT:
      if (config_duration_parse(v, &ms) < 0 || ms > 30ull * 86400 * 1000 ||
          (ch != O_HOLD && ms == 0))
        return usage_error("--%s: expected a duration up to 30d such as 0.5, 10, 10s or 1m, "
                           "got '%s'",
                           opt_name(ch), v);
      *(ch == O_HOLD      ? &o->hold_s
        : ch == O_TICK    ? &o->tick_s
        : ch == O_TIMEOUT ? &o->timeout_s
                          : &o->silent_s) = (double)ms / 1e3;
      break;
    case O_MAC:
      if (net_mac_parse(v, o->mac) < 0)
        return usage_error("--mac: expected a unicast MAC such as 52:54:00:ab:00:01, got '%s'", v);
      break;
    case O_LOG: {
      enum log_level l;
      if (log_level_parse(v, &l) < 0)
        return usage_error("--log-level: expected error, warn, info or debug, got '%s'", v);
      log_set_level(l);
      break;
    }
    case O_SAME_MAC:
      o->same_mac = true;
      break;
    case O_JUNK:
      o->junk = true;
      break;
    case O_NO_REGISTER:
      o->no_register = true;
      break;
    case O_UNTIL_CLOSED:
      o->until_closed = true;
      break;
    case O_EXPECT_ERROR:
      o->expect_error = true;
      break;
    default:
      return cli_getopt_error("wtclient", long_opts, ch, argv);
    }
  }
  if (optind < argc)
    return usage_error("unexpected argument '%s'", argv[optind]);
  if (!o->url)
    return usage_error("--url is required");
  return 0;
}

struct run {
  struct wtc *c;
  struct wtc_session **s;
  const struct opts *o;
  int phase;
};

static bool all_state(void *arg)
{
  struct run *r = arg;
  for (uint32_t i = 0; i < r->o->sessions; i++) {
    enum wtc_state st = r->s[i]->state;
    if (r->phase == 0 && st == WTC_CONNECTING)
      return false;
    if (r->phase == 1 && st == WTC_OPEN && !r->s[i]->errors)
      return false;
    if (r->phase == 2 && (st == WTC_REGISTERED || st == WTC_OPEN) &&
        r->s[i]->heartbeat_acks < r->o->heartbeats)
      return false;
    if (r->phase == 3 && (st == WTC_OPEN || st == WTC_REGISTERED))
      return false;
  }
  return true;
}

static bool never(void *arg)
{
  return false;
}

int main(int argc, char **argv)
{
  struct opts o = {.sessions = 1, .mac = {0x52, 0x54, 0x00, 0xab, 0x00, 0x01}, .timeout_s = 20};
  if (cli_generate(argc, argv, &page))
    return 0;
  int prc = parse_args(&o, argc, argv);
  if (cli_print_info(prc, &page))
    return 0;
  if (prc)
    return prc;
  uint8_t pin[32];
  if (o.hash && tls_hash_parse_hex(o.hash, pin) < 0) {
    return usage_error("--cert-hash: expected 64 hex digits, got '%s'", o.hash);
  }
  char why[512];
  if (io_probe_uring(why, sizeof(why)) < 0) {
    fprintf(stderr, "wtclient: %s\n", why);
    return 1;
  }
  struct wtc c;
  int rc = wtc_init(&c, o.url, o.hash ? pin : NULL, o.sessions, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "wtclient: cannot start: %s\n", strerror(-rc));
    return 1;
  }
  struct wtc_session **s = calloc(o.sessions, sizeof(*s));
  uint64_t t0 = clock_now_ns();
  uint64_t timeout = (uint64_t)(o.timeout_s * 1e9);
  for (uint32_t i = 0; i < o.sessions; i++) {
    if ((rc = wtc_open(&c, &s[i])) < 0) {
      fprintf(stderr, "wtclient: open session %u: %s\n", i, strerror(-rc));
      return 1;
    }
  }
  struct run r = {.c = &c, .s = s, .o = &o, .phase = 0};
  wtc_run(&c, timeout, all_state, &r);
  uint64_t t_open = clock_now_ns();

  if (o.junk) {
    static const uint8_t empty[1];
    static const uint8_t unknown_type[] = {0x7f, 1, 2, 3};
    static const char bad_json[] = "\x00{\"type\":\"Register\",\"mac\":[1,2";
    for (uint32_t i = 0; i < o.sessions; i++) {
      if (s[i]->state != WTC_OPEN)
        continue;
      wtc_send_raw(s[i], empty, 0);
      wtc_send_raw(s[i], unknown_type, sizeof(unknown_type));
      wtc_send_raw(s[i], (const uint8_t *)bad_json, sizeof(bad_json) - 1);
    }
  }
  if (!o.no_register) {
    for (uint32_t i = 0; i < o.sessions; i++) {
      uint8_t mac[6];
      memcpy(mac, o.mac, 6);
      if (!o.same_mac) {
        mac[4] = (uint8_t)(mac[4] + (i >> 8));
        mac[5] = (uint8_t)(mac[5] + i);
      }
      if (s[i]->state == WTC_OPEN)
        wtc_register(s[i], mac);
    }
    r.phase = 1;
    wtc_run(&c, timeout, all_state, &r);
  }
  uint64_t t_reg = clock_now_ns();
  /* --late-heartbeats K: K more rounds after --hold (the session must still
   * work then, e.g. across a certificate reload) */
  uint32_t rounds = o.heartbeats;
again:
  for (uint32_t k = o.heartbeats - rounds; k < o.heartbeats; k++) {
    for (uint32_t i = 0; i < o.sessions; i++)
      if (s[i]->state == WTC_REGISTERED || s[i]->state == WTC_OPEN)
        wtc_heartbeat(s[i]);
    r.phase = 2;
    /* One round trip per round, so acks are counted per heartbeat. */
    struct run rr = r;
    struct opts oo = o;
    oo.heartbeats = k + 1;
    rr.o = &oo;
    wtc_run(&c, timeout, all_state, &rr);
  }
  if (o.hold_s > 0 && !o.silent_s && o.tick_s > 0) {
    /* --tick: one heartbeat round every tick_s, each answered before the next */
    for (double t = 0; t < o.hold_s; t += o.tick_s) {
      wtc_run(&c, (uint64_t)(o.tick_s * 1e9), never, NULL);
      for (uint32_t i = 0; i < o.sessions; i++)
        if (s[i]->state == WTC_REGISTERED || s[i]->state == WTC_OPEN)
          wtc_heartbeat(s[i]);
      o.heartbeats++;
      struct run rr = r;
      rr.phase = 2;
      rr.o = &o;
      wtc_run(&c, timeout, all_state, &rr);
    }
  } else if (o.hold_s > 0 && !o.silent_s) {
    wtc_run(&c, (uint64_t)(o.hold_s * 1e9), o.until_closed ? NULL : never, NULL);
  }
  if (o.late_heartbeats) {
    o.hold_s = 0;
    rounds = o.late_heartbeats;
    o.heartbeats += o.late_heartbeats;
    o.late_heartbeats = 0;
    goto again;
  }
  if (o.until_closed) {
    r.phase = 3;
    wtc_run(&c, timeout, all_state, &r);
  }

  uint32_t open = 0, registered = 0, failed = 0, closed = 0, errors = 0, acks_ok = 0;
  for (uint32_t i = 0; i < o.sessions; i++) {
    struct wtc_session *x = s[i];
    printf("session=%u state=%s status=%d ip=%u.%u.%u.%u gateway=%u.%u.%u.%u acks=%u "
           "errors=%u last_error=\"%s\" close_code=%u close_reason=\"%s\"\n",
           i, wtc_state_name(x->state), x->status, x->ip[0], x->ip[1], x->ip[2], x->ip[3],
           x->gateway[0], x->gateway[1], x->gateway[2], x->gateway[3], x->heartbeat_acks, x->errors,
           x->last_error, x->close_code, x->close_reason);
    if (x->status == 200)
      open++;
    if (x->assigned)
      registered++;
    if (x->state == WTC_FAILED)
      failed++;
    if (x->state == WTC_CLOSED)
      closed++;
    if (x->errors)
      errors++;
    if (x->heartbeat_acks >= o.heartbeats)
      acks_ok++;
  }
  printf("{\"sessions\":%u,\"open\":%u,\"registered\":%u,\"errors\":%u,\"failed\":%u,"
         "\"closed\":%u,\"heartbeats_ok\":%u,\"open_ms\":%.1f,\"register_ms\":%.1f}\n",
         o.sessions, open, registered, errors, failed, closed, acks_ok, (double)(t_open - t0) / 1e6,
         (double)(t_reg - t_open) / 1e6);
  fflush(stdout);
  bool ok = open == o.sessions && acks_ok == o.sessions;
  if (!o.no_register)
    ok = ok && (o.expect_error ? errors > 0 : registered == o.sessions);
  if (o.until_closed)
    ok = ok && closed == o.sessions;
  if (o.silent_s > 0) {
    /* --go-silent: the connections stay open but nothing is read or sent
     * any more (a client whose path died); then exit without a close */
    struct timespec ts = {.tv_sec = (time_t)o.silent_s,
                          .tv_nsec = (long)((o.silent_s - (double)(time_t)o.silent_s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
      ;
    _exit(ok ? 0 : 1);
  }
  for (uint32_t i = 0; i < o.sessions; i++)
    if (s[i]->state == WTC_OPEN || s[i]->state == WTC_REGISTERED)
      wtc_close(s[i], 0, o.close_reason ? o.close_reason : "bye");
  wtc_run(&c, 400000000ull, never, NULL);
  free(s);
  wtc_fini(&c);
  return ok ? 0 : 1;
}
