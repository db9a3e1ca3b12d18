#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "wtrelay/config.h"

static const char *env_vals[8][2];
static const char *fake_env(const char *name)
{
  for (int i = 0; i < 8 && env_vals[i][0]; i++)
    if (strcmp(env_vals[i][0], name) == 0)
      return env_vals[i][1];
  return NULL;
}

static int parse(struct config *c, char *err, int argc, char **argv)
{
  config_defaults(c);
  return config_parse(c, argc, argv, fake_env, err, 512);
}

#define ARGV(...) ((char *[]){"wtrelay", __VA_ARGS__})
#define ARGC(...) ((int)(sizeof((char *[]){"wtrelay", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(c, err, ...) parse(c, err, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

TestSuite(config, .init = NULL);

Test(config, defaults)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK);
  cr_assert_eq(c.port, 4433);
  cr_assert_str_eq(c.bind, "::");
  cr_assert_eq(c.heartbeat_interval_s, 30);
  cr_assert_eq(c.peer_timeout_s, 150);
  cr_assert_str_eq(c.cert_pem, "");
  cr_assert_eq(c.max_sessions_per_ip, 256);
  cr_assert_not(c.bind_given);
  /* the ops port is not Prometheus's 9090 nor in its exporters' 9100-9999 */
  cr_assert_str_eq(c.http_listen, "127.0.0.1:8433");
}

Test(config, valid_flags)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(PARSE(&c, err, "--port", "5000", "--bind", "0.0.0.0"), CONFIG_OK);
  cr_assert_eq(c.port, 5000);
  cr_assert_str_eq(c.bind, "0.0.0.0");
  cr_assert_eq(PARSE(&c, err, "--port=6000", "-b", "127.0.0.1"), CONFIG_OK);
  cr_assert_eq(c.port, 6000);
  cr_assert_str_eq(c.bind, "127.0.0.1");
  cr_assert_eq(PARSE(&c, err, "-p", "7", "--heartbeat-interval", "5", "--peer-timeout", "10"),
               CONFIG_OK);
  cr_assert_eq(c.port, 7);
  cr_assert_eq(c.heartbeat_interval_s, 5);
  cr_assert_eq(c.peer_timeout_s, 10);
}

Test(config, invalid_values_name_the_flag)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  const char *bad_ports[] = {"0", "65536", "abc", "-1", "1x", ""};
  for (size_t i = 0; i < sizeof(bad_ports) / sizeof(*bad_ports); i++) {
    cr_assert_eq(PARSE(&c, err, "--port", (char *)bad_ports[i]), -EINVAL, "port %s", bad_ports[i]);
    cr_assert(strstr(err, "--port"), "message names the flag: %s", err);
  }
  cr_assert_eq(PARSE(&c, err, "--bind", "localhost"), -EINVAL);
  cr_assert(strstr(err, "--bind"));
  cr_assert_eq(PARSE(&c, err, "--heartbeat-interval", "0"), -EINVAL);
  cr_assert(strstr(err, "--heartbeat-interval"));
  cr_assert_eq(PARSE(&c, err, "--heartbeat-interval", "60", "--peer-timeout", "30"), -EINVAL);
  cr_assert(strstr(err, "--peer-timeout"));
  cr_assert_eq(PARSE(&c, err, "--log-level", "loud"), -EINVAL);
  cr_assert(strstr(err, "--log-level"));
  cr_assert_eq(PARSE(&c, err, "--frobnicate"), -EINVAL);
  cr_assert(strstr(err, "unknown flag"));
  cr_assert_eq(PARSE(&c, err, "-x"), -EINVAL);
  cr_assert(strstr(err, "unknown flag '-x'"), "%s", err);
  cr_assert_eq(PARSE(&c, err, "stray"), -EINVAL);
  cr_assert(strstr(err, "unexpected argument 'stray'"), "%s", err);
  cr_assert_eq(PARSE(&c, err, "--port"), -EINVAL);
  cr_assert(strstr(err, "missing value"));
}

Test(config, env_and_flag_precedence)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  env_vals[0][0] = "RELAY_CERT_PEM";
  env_vals[0][1] = "/env/cert.pem";
  env_vals[1][0] = "RELAY_KEY_PEM";
  env_vals[1][1] = "/env/key.pem";
  env_vals[2][0] = "RELAY_LOG";
  env_vals[2][1] = "debug";
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK);
  cr_assert_str_eq(c.cert_pem, "/env/cert.pem");
  cr_assert_eq(c.log_level, LOG_DEBUG);
  cr_assert_eq(PARSE(&c, err, "--cert-pem", "/flag/c.pem", "--log-level", "warn"), CONFIG_OK);
  cr_assert_str_eq(c.cert_pem, "/flag/c.pem");
  cr_assert_str_eq(c.key_pem, "/env/key.pem");
  cr_assert_eq(c.log_level, LOG_WARN);
  memset(env_vals, 0, sizeof(env_vals));
  env_vals[0][0] = "RELAY_LOG";
  env_vals[0][1] = "nonsense";
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), -EINVAL);
  cr_assert(strstr(err, "RELAY_LOG"));
}

Test(config, half_given_cert_pair)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(PARSE(&c, err, "--cert-pem", "/a.pem"), -EINVAL);
  cr_assert(strstr(err, "--cert-pem") && strstr(err, "--key-pem"));
  cr_assert_eq(PARSE(&c, err, "--key-pem", "/k.pem"), -EINVAL);
  env_vals[0][0] = "RELAY_KEY_PEM";
  env_vals[0][1] = "/env/key.pem";
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), -EINVAL);
}

Test(config, help_and_version)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(PARSE(&c, err, "--help"), CONFIG_HELP);
  cr_assert_eq(PARSE(&c, err, "--version"), CONFIG_VERSION);
}

Test(config, short_and_long_value_forms)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(PARSE(&c, err, "-p4433"), CONFIG_OK, "%s", err);
  cr_assert_eq(c.port, 4433);
  cr_assert_eq(PARSE(&c, err, "-p5001"), CONFIG_OK, "%s", err);
  cr_assert_eq(c.port, 5001);
  cr_assert_eq(PARSE(&c, err, "--port=4434"), CONFIG_OK, "%s", err);
  cr_assert_eq(c.port, 4434);
  cr_assert_eq(PARSE(&c, err, "-p", "4435"), CONFIG_OK, "%s", err);
  cr_assert_eq(c.port, 4435);
  cr_assert_eq(PARSE(&c, err, "--port", "4436"), CONFIG_OK, "%s", err);
  cr_assert_eq(c.port, 4436);
  cr_assert_eq(PARSE(&c, err, "-b0.0.0.0", "--bind=::1"), CONFIG_OK, "%s", err);
  cr_assert_str_eq(c.bind, "::1");
  cr_assert(c.bind_given);
  /* getopt_long: unambiguous prefixes, flags with =value, "--" */
  cr_assert_eq(PARSE(&c, err, "--heartbeat=10", "--peer-t", "20"), CONFIG_OK, "%s", err);
  cr_assert_eq(c.heartbeat_interval_s, 10);
  cr_assert_eq(c.peer_timeout_s, 20);
  cr_assert_eq(PARSE(&c, err, "--max-s", "5"), -EINVAL);
  cr_assert(strstr(err, "ambiguous flag '--max-s'"), "%s", err);
  cr_assert_eq(PARSE(&c, err, "--allow-any-src-mac", "--", "-p1"), -EINVAL);
  cr_assert_eq(PARSE(&c, err, "--allow-any-src-mac", "--"), CONFIG_OK, "%s", err);
  cr_assert(c.allow_any_src_mac);
  cr_assert_eq(PARSE(&c, err, "-h"), CONFIG_HELP);
  cr_assert_eq(PARSE(&c, err, "-V"), CONFIG_VERSION);
  cr_assert_eq(PARSE(&c, err, "--help=x"), -EINVAL);
  /* a bad value: one line that names the flag, whichever form was used */
  const char *bad[][2] = {
      {"-pabc", NULL}, {"--port=abc", NULL}, {"-p", "abc"}, {"--port", "99999"}, {"--port=", NULL}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rc = bad[i][1] ? PARSE(&c, err, (char *)bad[i][0], (char *)bad[i][1])
                       : PARSE(&c, err, (char *)bad[i][0]);
    cr_assert_eq(rc, -EINVAL, "%s", bad[i][0]);
    cr_assert(strncmp(err, "--port: ", 8) == 0, "names the flag: %s", err);
    cr_assert_null(strchr(err, '\n'), "one line: %s", err);
  }
  cr_assert_eq(PARSE(&c, err, "-p"), -EINVAL);
  cr_assert_str_eq(err, "--port: missing value");
}

Test(config, duration_forms)
{
  static const struct {
    const char *s;
    uint64_t ms;
  } ok[] = {
      {"0", 0},          {"60", 60000},     {"60s", 60000},
      {"1m", 60000},     {"1h", 3600000},   {"1d", 86400000},
      {"90m", 5400000},  {"1.5", 1500},     {"1.5m", 90000},
      {".5s", 500},      {"0.25h", 900000}, {"007", 7000},
      {"2d", 172800000}, {"0.0001", 0},     {"18446744073709551", 18446744073709551000ull},
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    uint64_t ms = 12345;
    cr_assert_eq(config_duration_parse(ok[i].s, &ms), 0, "'%s'", ok[i].s);
    cr_assert_eq(ms, ok[i].ms, "'%s' = %llu ms", ok[i].s, (unsigned long long)ms);
  }
  static const char *bad[] = {"",    "s",   "-1",    "+1",  " 1",   "1 ",  "1x",  "1ss", "1sm",
                              "1e3", "5.",  ".",     "1.s", "0x10", "1 m", "1M",  "m1",  "1,5",
                              "1w",  "abc", "1.2.3", "\t1", "1\n",  "--1", "1ms", "inf", "nan"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint64_t ms = 12345;
    cr_assert_eq(config_duration_parse(bad[i], &ms), -EINVAL, "'%s'", bad[i]);
    cr_assert_eq(ms, 12345, "'%s' leaves the output alone", bad[i]);
  }
  uint64_t ms;
  cr_assert_eq(config_duration_parse(NULL, &ms), -EINVAL);
  cr_assert_eq(config_duration_parse("18446744073709552", &ms), -ERANGE);
  cr_assert_eq(config_duration_parse("99999999999999999999999", &ms), -ERANGE);
  cr_assert_eq(config_duration_parse("213503982335d", &ms), -ERANGE);
  cr_assert_eq(config_duration_parse("213503982334d", &ms), 0);
}

Test(config, duration_flags)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(PARSE(&c, err, "--heartbeat-interval", "1m", "--peer-timeout=1h",
                     "--register-timeout", "45s", "--mac-aging", "1d", "--udp-timeout", "90",
                     "--tcp-idle-timeout", "2h", "--shutdown-timeout", "1.5m",
                     "--cert-poll-interval", "10m"),
               CONFIG_OK, "%s", err);
  cr_assert_eq(c.heartbeat_interval_s, 60);
  cr_assert_eq(c.peer_timeout_s, 3600);
  cr_assert_eq(c.register_timeout_s, 45);
  cr_assert_eq(c.mac_aging_s, 86400);
  cr_assert_eq(c.udp_timeout_s, 90);
  cr_assert_eq(c.tcp_idle_timeout_s, 7200);
  cr_assert_eq(c.shutdown_timeout_s, 90);
  cr_assert_eq(c.cert_poll_s, 600);
  env_vals[0][0] = "CERT_POLL_INTERVAL";
  env_vals[0][1] = "5m";
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK, "%s", err);
  cr_assert_eq(c.cert_poll_s, 300);
  cr_assert_eq(PARSE(&c, err, "--cert-poll-interval", "30s"), CONFIG_OK, "%s", err);
  cr_assert_eq(c.cert_poll_s, 30);
  env_vals[0][1] = "1y";
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), -EINVAL);
  cr_assert(strncmp(err, "CERT_POLL_INTERVAL: ", 20) == 0, "%s", err);
  memset(env_vals, 0, sizeof(env_vals));

  static const char *flags[] = {"--heartbeat-interval", "--peer-timeout",      "--register-timeout",
                                "--mac-aging",          "--udp-timeout",       "--tcp-idle-timeout",
                                "--shutdown-timeout",   "--cert-poll-interval"};
  static const char *bad[] = {"",
                              "abc",
                              "-1",
                              "-1s",
                              "0",
                              "1.5",
                              "10x",
                              "10s ",
                              "1w",
                              "8d",
                              "1e2",
                              "0.5m5",
                              "99999999999999999999999"};
  for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
      cr_assert_eq(PARSE(&c, err, (char *)flags[f], (char *)bad[i]), -EINVAL, "%s '%s'", flags[f],
                   bad[i]);
      cr_assert(strncmp(err, flags[f], strlen(flags[f])) == 0, "names the flag: %s", err);
      cr_assert(strstr(err, "1m"), "shows the syntax: %s", err);
    }
  }
  /* bounds are shown as durations */
  cr_assert_eq(PARSE(&c, err, "--tcp-idle-timeout", "5"), -EINVAL);
  cr_assert(strstr(err, "from 10s to 7d"), "%s", err);
  cr_assert_eq(PARSE(&c, err, "--shutdown-timeout", "6m"), -EINVAL);
  cr_assert(strstr(err, "from 1s to 5m"), "%s", err);
}

static enum log_level level_with(const char *relay_log, const char *rust_log, char *note)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  int n = 0;
  if (relay_log) {
    env_vals[n][0] = "RELAY_LOG";
    env_vals[n++][1] = relay_log;
  }
  if (rust_log) {
    env_vals[n][0] = "RUST_LOG";
    env_vals[n++][1] = rust_log;
  }
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK, "%s", err);
  snprintf(note, 256, "%s", c.log_note);
  return c.log_level;
}

Test(config, rust_log)
{
  char note[256];
  cr_assert_eq(level_with(NULL, "info", note), LOG_INFO);
  cr_assert_str_eq(note, "");
  cr_assert_eq(level_with(NULL, "WARN", note), LOG_WARN);
  cr_assert_str_eq(note, "");
  cr_assert_eq(level_with(NULL, "error", note), LOG_ERROR);
  cr_assert_eq(level_with(NULL, "trace", note), LOG_DEBUG);
  cr_assert_eq(level_with(NULL, "off", note), LOG_ERROR);

  cr_assert_eq(level_with(NULL, "bavy_relay=debug", note), LOG_DEBUG);
  cr_assert(strstr(note, "module targets") && strstr(note, "bavy_relay"), "%s", note);

  cr_assert_eq(level_with(NULL, "warn,relay=trace", note), LOG_DEBUG);
  cr_assert(strstr(note, "relay") && !strstr(note, "warn"), "%s", note);

  cr_assert_eq(level_with(NULL, "relay::quic=debug,info", note), LOG_DEBUG);
  cr_assert(strstr(note, "relay::quic"), "%s", note);

  cr_assert_eq(level_with(NULL, "bavy_relay=warn, error", note), LOG_WARN);
  cr_assert_eq(level_with(NULL, "error,bavy_relay=info", note), LOG_INFO);
  cr_assert_eq(level_with(NULL, "info/foo", note), LOG_INFO);
  cr_assert(strstr(note, "regex") && strstr(note, "foo"), "%s", note);

  /* unknown words: the default stays, with a note */
  cr_assert_eq(level_with(NULL, "loud", note), LOG_INFO);
  cr_assert(strstr(note, "not a level: loud") && strstr(note, "keeping level info"), "%s", note);
  cr_assert_eq(level_with(NULL, "relay=loud", note), LOG_INFO);
  cr_assert(strstr(note, "relay=loud"), "%s", note);
  cr_assert_eq(level_with(NULL, "debug,x=\"y", note), LOG_DEBUG);
  cr_assert_null(strchr(note, '"'), "the note is safe in a quoted logfmt value: %s", note);
  cr_assert_eq(level_with(NULL, ",,", note), LOG_INFO);
  cr_assert_eq(level_with(NULL, "", note), LOG_INFO);
  cr_assert_str_eq(note, "");

  /* RELAY_LOG wins over RUST_LOG, and --log-level over both */
  cr_assert_eq(level_with("warn", "debug", note), LOG_WARN);
  cr_assert_str_eq(note, "");
  cr_assert_eq(level_with("error", "relay=debug", note), LOG_ERROR);
  cr_assert_str_eq(note, "");
  struct config c;
  char err[512];
  cr_assert_eq(level_with(NULL, "relay=debug", note), LOG_DEBUG);
  cr_assert_eq(PARSE(&c, err, "--log-level", "error"), CONFIG_OK);
  cr_assert_eq(c.log_level, LOG_ERROR);
  cr_assert_str_eq(c.log_note, "", "RUST_LOG was overridden, nothing to warn about");
}

Test(config, rust_log_parser_alone)
{
  enum log_level l = LOG_INFO;
  char note[64];
  cr_assert_eq(config_rust_log_parse("a=debug,b=debug,c=debug,d=debug,e=debug,f=debug,g=debug", &l,
                                     note, sizeof(note)),
               1);
  cr_assert_eq(l, LOG_DEBUG);
  cr_assert(strlen(note) < sizeof(note));
  l = LOG_WARN;
  cr_assert_eq(config_rust_log_parse("nonsense", &l, NULL, 0), 0);
  cr_assert_eq(l, LOG_WARN, "left alone");
}

/* --max-tcp-conns 0 is the TCP NAT switched off (the NAT treats 0 so); the
 * per-VM bound still needs at least 1. */
Test(config, max_tcp_conns_zero_turns_the_tcp_nat_off)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(PARSE(&c, err, "--max-tcp-conns", "0"), CONFIG_OK, "%s", err);
  cr_assert_eq(c.max_tcp_conns, 0);
  cr_assert_eq(PARSE(&c, err, "--max-tcp-conns", "65001"), -EINVAL);
  cr_assert(strstr(err, "--max-tcp-conns"), "%s", err);
  cr_assert_eq(PARSE(&c, err, "--max-tcp-conns-per-vm", "0"), -EINVAL);
}

Test(config, nat_share_flags)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK);
  cr_assert_eq(c.max_udp_flows_per_client, 0, "0: a quarter of --max-udp-flows");
  cr_assert_eq(c.max_tcp_conns_per_client, 0, "0: a quarter of --max-tcp-conns");
  cr_assert_eq(c.max_tcp_pending_per_client, 64);
  cr_assert_eq(c.max_tcp_pending_per_vm, 32);
  cr_assert_eq(c.nat_new_rate, 50);
  cr_assert_eq(c.nat_new_burst, 100);
  cr_assert_eq(PARSE(&c, err, "--max-udp-flows-per-client", "100", "--max-tcp-conns-per-client",
                     "200", "--max-tcp-pending-per-client", "16", "--max-tcp-pending-per-vm", "8",
                     "--nat-new-rate", "0", "--nat-new-burst", "20"),
               CONFIG_OK, "%s", err);
  cr_assert_eq(c.max_udp_flows_per_client, 100);
  cr_assert_eq(c.max_tcp_conns_per_client, 200);
  cr_assert_eq(c.max_tcp_pending_per_client, 16);
  cr_assert_eq(c.max_tcp_pending_per_vm, 8);
  cr_assert_eq(c.nat_new_rate, 0, "0: no rate limit");
  cr_assert_eq(c.nat_new_burst, 20);
  cr_assert_eq(PARSE(&c, err, "--max-tcp-pending-per-vm", "0"), -EINVAL);
  cr_assert(strstr(err, "--max-tcp-pending-per-vm"), "%s", err);
  cr_assert_eq(PARSE(&c, err, "--nat-new-burst", "0"), -EINVAL);
  cr_assert(strstr(err, "--nat-new-burst"), "%s", err);
}

/* The DNS and echo shares per VM: defaults, values, bounds. */
Test(config, per_vm_dns_and_echo_shares)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK);
  cr_assert_eq(c.max_dns_inflight_per_vm, 32);
  cr_assert_eq(c.max_icmp_flows_per_vm, 16);
  cr_assert_eq(PARSE(&c, err, "--max-dns-inflight-per-vm", "8", "--max-icmp-flows-per-vm", "4"),
               CONFIG_OK);
  cr_assert_eq(c.max_dns_inflight_per_vm, 8);
  cr_assert_eq(c.max_icmp_flows_per_vm, 4);
  cr_assert_eq(PARSE(&c, err, "--max-dns-inflight-per-vm", "0"), -EINVAL);
  cr_assert(strstr(err, "--max-dns-inflight-per-vm"), "%s", err);
  cr_assert_eq(PARSE(&c, err, "--max-dns-inflight-per-vm", "1025"), -EINVAL);
  cr_assert_eq(PARSE(&c, err, "--max-icmp-flows-per-vm", "0"), -EINVAL);
  cr_assert(strstr(err, "--max-icmp-flows-per-vm"), "%s", err);
}

Test(config, workers_default_to_the_cpus_the_process_may_use)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cpu_set_t set;
  cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
  uint32_t cpus = (uint32_t)CPU_COUNT(&set);
  cr_assert_gt(cpus, 0);
  cr_assert_eq(config_cpus_allowed(), cpus > 256 ? 256 : cpus);

  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK);
  cr_assert_eq(c.workers, config_cpus_allowed());
  cr_assert_eq(PARSE(&c, err, "--workers", "0"), CONFIG_OK);
  cr_assert_eq(c.workers, config_cpus_allowed());
  cr_assert_eq(PARSE(&c, err, "--workers", "3"), CONFIG_OK);
  cr_assert_eq(c.workers, 3);
  env_vals[0][0] = "RELAY_WORKERS";
  env_vals[0][1] = "1";
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK);
  cr_assert_eq(c.workers, 1);
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_neq(PARSE(&c, err, "--workers", "257"), CONFIG_OK);

  /* one CPU in the mask: one worker, whatever the machine has */
  cpu_set_t one;
  CPU_ZERO(&one);
  for (int i = 0; i < CPU_SETSIZE; i++)
    if (CPU_ISSET(i, &set)) {
      CPU_SET(i, &one);
      break;
    }
  cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
  uint32_t got = config_cpus_allowed();
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK);
  uint32_t w = c.workers;
  cr_assert_eq(sched_setaffinity(0, sizeof(set), &set), 0);
  cr_assert_eq(got, 1);
  cr_assert_eq(w, 1);
}

/* --max-macs-per-uplink: 0 (the room's bound) by default, then the
 * switch's max_macs_per_uplink. */
Test(config, max_macs_per_uplink)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK);
  cr_assert_eq(c.max_macs_per_uplink, 0);
  cr_assert_eq(PARSE(&c, err, "--max-macs-per-room", "64", "--max-macs-per-uplink", "7"), CONFIG_OK,
               "%s", err);
  cr_assert_eq(c.max_macs_per_uplink, 7);
  cr_assert_eq(c.max_macs_per_room, 64);
  cr_assert_neq(PARSE(&c, err, "--max-macs-per-uplink", "2000000"), CONFIG_OK);
  cr_assert(strstr(err, "max-macs-per-uplink"), "%s", err);
}

Test(config, nats_flags_and_pool_range)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(PARSE(&c, err, "--port", "4433"), CONFIG_OK);
  cr_assert_str_eq(c.nats_url, "", "federation is off by default");
  cr_assert_str_eq(c.nats_prefix, "wtrelay");
  cr_assert_str_eq(c.relay_id, "");
  cr_assert_eq(c.pool_first, 0);
  env_vals[0][0] = "RELAY_NATS_URL";
  env_vals[0][1] = "nats://10.1.1.1:4222";
  cr_assert_eq(PARSE(&c, err, "--relay-id", "eu-1", "--nats-subject-prefix", "org.wt",
                     "--nats-creds", "/etc/wt.creds"),
               CONFIG_OK);
  cr_assert_str_eq(c.nats_url, "nats://10.1.1.1:4222");
  cr_assert_str_eq(c.relay_id, "eu-1");
  cr_assert_str_eq(c.nats_prefix, "org.wt");
  cr_assert_str_eq(c.nats_creds, "/etc/wt.creds");
  cr_assert_eq(PARSE(&c, err, "--nats", "nats://a:1,nats://b:2"), CONFIG_OK);
  cr_assert_str_eq(c.nats_url, "nats://a:1,nats://b:2", "the flag wins over the environment");
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(PARSE(&c, err, "--pool-first", "10.0.2.128", "--pool-last", "10.0.2.200"),
               CONFIG_OK);
  cr_assert_eq(c.pool_first, 0x0a000280);
  cr_assert_eq(c.pool_last, 0x0a0002c8);
  static const char *const bad[][2] = {
      {"--pool-first", "10.0.2.9"}, {"--pool-last", "10.0.2.255"}, {"--pool-first", "10.0.3.20"}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cr_assert_eq(PARSE(&c, err, (char *)bad[i][0], (char *)bad[i][1]), -EINVAL, "%s %s", bad[i][0],
                 bad[i][1]);
    cr_assert(strstr(err, "--pool-first"), "%s", err);
  }
  cr_assert_eq(PARSE(&c, err, "--pool-first", "10.0.2.200", "--pool-last", "10.0.2.100"), -EINVAL);
}

/* --worker-ring-slots: a power of two in range, 1024 by default, from the
 * flag or RELAY_WORKER_RING_SLOTS. */
Test(config, worker_ring_slots)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK);
  cr_assert_eq(c.worker_ring_slots, 1024);
  cr_assert_eq(PARSE(&c, err, "--worker-ring-slots", "4"), CONFIG_OK);
  cr_assert_eq(c.worker_ring_slots, 4);
  cr_assert_eq(PARSE(&c, err, "--worker-ring-slots", "1048576"), CONFIG_OK);
  const char *bad[] = {"0", "1", "3", "1000", "2097152", "x"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    cr_assert_eq(PARSE(&c, err, "--worker-ring-slots", (char *)bad[i]), -EINVAL, "%s", bad[i]);
    cr_assert(strstr(err, "--worker-ring-slots"), "message names the flag: %s", err);
  }
  env_vals[0][0] = "RELAY_WORKER_RING_SLOTS";
  env_vals[0][1] = "8";
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK);
  cr_assert_eq(c.worker_ring_slots, 8);
  memset(env_vals, 0, sizeof(env_vals));
}

Test(config, pcap_flags)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(parse(&c, err, 1, (char *[]){"wtrelay"}), CONFIG_OK);
  cr_assert_eq(c.pcap[0], '\0');
  cr_assert_eq(c.pcap_max_bytes, 1u << 30);
  cr_assert_eq(PARSE(&c, err, "--pcap", "/tmp/x.pcap", "--pcap-room", "lab"), CONFIG_OK);
  cr_assert_str_eq(c.pcap_room, "/lab", "the leading '/' is added");
  cr_assert_eq(
      PARSE(&c, err, "--pcap", "/tmp/x.pcap", "--pcap-room", "/lab", "--pcap-max-bytes", "8192"),
      CONFIG_OK);
  cr_assert_str_eq(c.pcap_room, "/lab");
  cr_assert_eq(c.pcap_max_bytes, 8192);
  cr_assert_eq(PARSE(&c, err, "--pcap", "/tmp/x.pcap"), -EINVAL);
  cr_assert(strstr(err, "--pcap-room"), "%s", err);
  cr_assert_eq(PARSE(&c, err, "--pcap-room", "/lab"), -EINVAL);
  cr_assert_eq(PARSE(&c, err, "--pcap-max-bytes", "100"), -EINVAL);
}

/* --healthcheck [URL]: a URL as before (spaced or after '='); without one,
 * or an empty one, the /healthz of the ops listener --http-listen or
 * RELAY_HTTP_LISTEN names, a wildcard address as 127.0.0.1. */
Test(config, healthcheck_url_or_the_ops_listener)
{
  struct config c;
  char err[512];
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(PARSE(&c, err, "--healthcheck", "http://10.0.0.1:9/x"), CONFIG_OK);
  cr_assert_str_eq(c.healthcheck, "http://10.0.0.1:9/x");
  cr_assert_eq(PARSE(&c, err, "--healthcheck=http://h/"), CONFIG_OK);
  cr_assert_str_eq(c.healthcheck, "http://h/");
  cr_assert_eq(PARSE(&c, err, "--healthcheck"), CONFIG_OK);
  cr_assert_str_eq(c.healthcheck, "http://127.0.0.1:8433/healthz");
  cr_assert_eq(PARSE(&c, err, "--healthcheck", "--http-listen", "10.1.2.3:9000"), CONFIG_OK);
  cr_assert_str_eq(c.healthcheck, "http://10.1.2.3:9000/healthz");
  cr_assert_eq(PARSE(&c, err, "--http-listen", "0.0.0.0:9001", "--healthcheck="), CONFIG_OK);
  cr_assert_str_eq(c.healthcheck, "http://127.0.0.1:9001/healthz");
  cr_assert_eq(PARSE(&c, err, "--healthcheck", "--http-listen=[::]:9002"), CONFIG_OK);
  cr_assert_str_eq(c.healthcheck, "http://127.0.0.1:9002/healthz");
  cr_assert_eq(PARSE(&c, err, "--healthcheck", "--http-listen", "[::1]:9003"), CONFIG_OK);
  cr_assert_str_eq(c.healthcheck, "http://[::1]:9003/healthz");
  env_vals[0][0] = "RELAY_HTTP_LISTEN";
  env_vals[0][1] = "127.0.0.2:9004";
  cr_assert_eq(PARSE(&c, err, "--healthcheck"), CONFIG_OK);
  cr_assert_str_eq(c.healthcheck, "http://127.0.0.2:9004/healthz");
  cr_assert_eq(PARSE(&c, err, "--healthcheck", "--http-listen", "127.0.0.3:9005"), CONFIG_OK);
  cr_assert_str_eq(c.healthcheck, "http://127.0.0.3:9005/healthz", "the flag wins");
  memset(env_vals, 0, sizeof(env_vals));
  cr_assert_eq(PARSE(&c, err, "--healthcheck", "--http-listen", ""), -EINVAL);
  cr_assert(strstr(err, "--healthcheck") && strstr(err, "ops listener is off"), "%s", err);
  /* no --healthcheck: nothing to probe, the relay runs */
  cr_assert_eq(PARSE(&c, err, "--http-listen", "127.0.0.1:9006"), CONFIG_OK);
  cr_assert_str_eq(c.healthcheck, "");
}
