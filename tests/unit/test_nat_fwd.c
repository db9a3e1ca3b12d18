/* Inbound port forwarding: the --forward spec (fwd_spec_parse) and its
 * flags and checks in the configuration. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "wtrelay/config.h"
#include "wtrelay/nat_fwd.h"

Test(fwd_spec, tcp_by_address_default_room)
{
  struct fwd_spec f;
  char err[256];
  cr_assert_eq(fwd_spec_parse("tcp:8080=10.0.2.15:80", &f, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(f.proto, IPPROTO_TCP);
  cr_assert_eq(f.bind_ip, 0);
  cr_assert_eq(f.host_port, 8080);
  cr_assert_not(f.by_mac);
  cr_assert_eq(f.vm_ip, 0x0a00020f);
  cr_assert_eq(f.vm_port, 80);
  cr_assert_str_eq(f.room, "/");
}

Test(fwd_spec, udp_by_mac_bind_and_room)
{
  struct fwd_spec f;
  char err[256], out[400];
  cr_assert_eq(
      fwd_spec_parse("udp:127.0.0.1:5353=[52:54:00:12:34:56]:53@/lab/a", &f, err, sizeof(err)), 0,
      "%s", err);
  cr_assert_eq(f.proto, IPPROTO_UDP);
  cr_assert_eq(f.bind_ip, 0x7f000001);
  cr_assert_eq(f.host_port, 5353);
  cr_assert(f.by_mac);
  cr_assert_eq(memcmp(f.mac, (uint8_t[]){0x52, 0x54, 0, 0x12, 0x34, 0x56}, 6), 0);
  cr_assert_eq(f.vm_port, 53);
  cr_assert_str_eq(f.room, "/lab/a");
  fwd_spec_format(&f, out, sizeof(out));
  cr_assert_str_eq(out, "udp:127.0.0.1:5353=[52:54:00:12:34:56]:53@/lab/a");
  struct fwd_spec g;
  cr_assert_eq(fwd_spec_parse(out, &g, err, sizeof(err)), 0);
  cr_assert_eq(memcmp(&f, &g, sizeof(f)), 0);
}

Test(fwd_spec, rejected)
{
  static const char *const bad[] = {
      "",
      "sctp:80=10.0.2.15:80",
      "tcp:80",
      "tcp:0=10.0.2.15:80",
      "tcp:65536=10.0.2.15:80",
      "tcp:80=10.0.2.15",
      "tcp:80=10.0.2.15:0",
      "tcp:80=10.0.2.15:8x",
      "tcp:80=10.0.2.15:80@lab",
      "tcp:80=10.0.2.15:80@/a b",
      "tcp:80=10.0.2.15:80@/a\"b",
      "tcp:80=0.0.0.0:80",
      "tcp:80=224.0.0.1:80",
      "tcp:80=255.255.255.255:80",
      "tcp:80=host:80",
      "tcp:::1:80=10.0.2.15:80",
      "tcp:1.2.3:80=10.0.2.15:80",
      "tcp:80=[52:54:00:12:34]:80",
      "tcp:80=[53:54:00:12:34:56]:80", /* a group MAC */
      "tcp:80=[52:54:00:12:34:56]80",
      "tcp:80=52:54:00:12:34:56:80",
      "tcp:80=[52:54:00:12:34:56:80",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct fwd_spec f;
    char err[256] = "";
    cr_assert_eq(fwd_spec_parse(bad[i], &f, err, sizeof(err)), -EINVAL, "accepted '%s'", bad[i]);
    cr_assert(strstr(err, "expected PROTO:") != NULL, "no clear message for '%s': %s", bad[i], err);
  }
}

Test(fwd_spec, same_socket)
{
  struct fwd_spec a, b;
  cr_assert_eq(fwd_spec_parse("tcp:8080=10.0.2.15:80", &a, NULL, 0), 0);
  cr_assert_eq(fwd_spec_parse("tcp:127.0.0.1:8080=10.0.2.16:22", &b, NULL, 0), 0);
  cr_assert(fwd_spec_same_socket(&a, &b)); /* the wildcard overlaps any address */
  cr_assert_eq(fwd_spec_parse("udp:8080=10.0.2.15:80", &b, NULL, 0), 0);
  cr_assert_not(fwd_spec_same_socket(&a, &b));
}

static int parse(struct config *c, char *err, int argc, char **argv)
{
  config_defaults(c);
  return config_parse(c, argc, argv, NULL, err, 512);
}
#define ARGV(...) ((char *[]){"wtrelay", __VA_ARGS__})
#define ARGC(...) ((int)(sizeof((char *[]){"wtrelay", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(c, err, ...) parse(c, err, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

Test(fwd_config, flags)
{
  struct config c;
  char err[512];
  cr_assert_eq(PARSE(&c, err, "--forward", "tcp:8080=[52:54:00:12:34:56]:80@/lab", "--forward",
                     "udp:5300=10.0.2.10:53"),
               CONFIG_OK, "%s", err);
  cr_assert_eq(c.nforward, 2);
  cr_assert_str_eq(c.forward[0].room, "/lab");
  cr_assert_eq(c.forward[1].proto, IPPROTO_UDP);
  cr_assert_eq(c.max_forward_conns, 1024);
  cr_assert_eq(c.max_forward_conns_per_fwd, 256);
  cr_assert_not(c.ops_api);
  cr_assert_eq(PARSE(&c, err, "--forward", "tcp:80=10.0.2.10:80x"), -EINVAL);
  cr_assert(strstr(err, "--forward") && strstr(err, "VM port"), "%s", err);
  cr_assert_eq(PARSE(&c, err, "--forward", "tcp:80=10.0.2.10:80", "--forward",
                     "tcp:127.0.0.1:80=10.0.2.11:80"),
               -EINVAL);
  cr_assert(strstr(err, "two forwards"), "%s", err);
}

Test(fwd_config, ops_api_needs_token_off_loopback)
{
  struct config c;
  char err[512];
  cr_assert_eq(PARSE(&c, err, "--ops-api"), CONFIG_OK, "%s", err);
  cr_assert(c.ops_api);
  cr_assert_eq(PARSE(&c, err, "--ops-api", "--http-listen", "0.0.0.0:8433"), -EINVAL);
  cr_assert(strstr(err, "--ops-token"), "%s", err);
  cr_assert_eq(PARSE(&c, err, "--ops-api", "--http-listen", "0.0.0.0:8433", "--ops-token", "s3"),
               CONFIG_OK, "%s", err);
  cr_assert_eq(PARSE(&c, err, "--ops-api", "--http-listen", "[::1]:8433"), CONFIG_OK, "%s", err);
  cr_assert_eq(PARSE(&c, err, "--ops-api", "--http-listen", ""), -EINVAL);
  cr_assert(config_listen_is_loopback("127.0.0.2:1"));
  cr_assert_not(config_listen_is_loopback("10.0.0.1:1"));
}
