#include <criterion/criterion.h>
#include <errno.h>
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
