/*
 * token: the `wtrelay token` subcommand. Parses its flags and prints a
 * token signed with auth_token_sign (relay/auth.c); the relay itself never
 * runs this. It lives with the programs because its flag values share the
 * config parsers (config_duration_parse, config_u32_parse).
 */
#include "token.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wtrelay/auth.h"
#include "wtrelay/config.h"
#include "wtrelay/net.h"

static int token_usage(const char *msg)
{
  if (msg)
    fprintf(stderr, "wtrelay token: %s. Try 'wtrelay token --help'.\n", msg);
  return 2;
}

int token_main(int argc, char **argv)
{
  static const struct option lo[] = {
      {"key", required_argument, NULL, 'k'}, {"room", required_argument, NULL, 'r'},
      {"ttl", required_argument, NULL, 't'}, {"mac", required_argument, NULL, 'm'},
      {"sub", required_argument, NULL, 's'}, {"max-sessions", required_argument, NULL, 'n'},
      {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0},
  };
  const char *keyfile = NULL, *room = NULL, *mac = NULL, *sub = NULL;
  uint64_t ttl_ms = 3600 * 1000;
  uint32_t max_sessions = 0;
  uint8_t macb[6];
  int ch;
  optind = 1;
  opterr = 0;
  while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
    switch (ch) {
    case 'k':
      keyfile = optarg;
      break;
    case 'r':
      room = optarg;
      break;
    case 't':
      if (config_duration_parse(optarg, &ttl_ms) < 0 || ttl_ms < 1000 ||
          ttl_ms > 366ull * 86400 * 1000)
        return token_usage("--ttl: expected a duration from 1s to 366d such as 10m, 1h, 1d");
      break;
    case 'm':
      if (net_mac_parse(optarg, macb) < 0)
        return token_usage("--mac: expected a unicast MAC such as 52:54:00:ab:00:01");
      mac = optarg;
      break;
    case 's':
      if (strlen(optarg) >= AUTH_SUB_MAX || strpbrk(optarg, "\"\\"))
        return token_usage("--sub: at most 127 characters, no quotes or backslashes");
      sub = optarg;
      break;
    case 'n':
      if (config_u32_parse(optarg, 1, 1000000, &max_sessions) < 0)
        return token_usage("--max-sessions: expected an integer from 1 to 1000000");
      break;
    case 'h':
      printf("Usage: wtrelay token --key FILE --room PATH [--ttl DUR] [--mac MAC] [--sub S]\n"
             "                     [--max-sessions N]\n\n"
             "Prints a token for the relay's --auth-key. FILE is the shared secret (HS256) or\n"
             "an EC P-256 PEM private key (ES256; the relay is given the public key).\n"
             "PATH is a room (/lab) or a prefix (/lab/*). --ttl defaults to 1h.\n");
      return 0;
    case ':':
      return token_usage("missing value for a flag");
    default:
      return token_usage("unknown flag");
    }
  }
  if (optind < argc)
    return token_usage("unexpected argument");
  if (!keyfile || !room)
    return token_usage("--key and --room are required");
  if (room[0] != '/' || strlen(room) >= AUTH_ROOM_MAX)
    return token_usage("--room: expected a path such as /lab or /lab/*");
  struct auth_key k;
  char err[256];
  if (auth_key_load(&k, keyfile, err, sizeof(err)) < 0) {
    fprintf(stderr, "wtrelay token: %s: %s\n", keyfile, err);
    return 1;
  }
  if (k.alg == AUTH_ALG_ES256 && !k.is_private) {
    fprintf(stderr,
            "wtrelay token: %s: a public key cannot sign; give the private key (the "
            "relay gets the public one)\n",
            keyfile);
    auth_key_fini(&k);
    return 1;
  }
  json_t *c = json_object();
  json_object_set_new(c, "room", json_string(room));
  json_object_set_new(c, "exp", json_integer((json_int_t)time(NULL) + (json_int_t)(ttl_ms / 1000)));
  if (mac)
    json_object_set_new(c, "mac", json_string(mac));
  if (sub)
    json_object_set_new(c, "sub", json_string(sub));
  if (max_sessions)
    json_object_set_new(c, "max_sessions", json_integer(max_sessions));
  char *claims = json_dumps(c, JSON_COMPACT);
  json_decref(c);
  char tok[AUTH_TOKEN_MAX];
  int rc = claims ? auth_token_sign(&k, claims, tok, sizeof(tok)) : -ENOMEM;
  free(claims);
  auth_key_fini(&k);
  if (rc < 0) {
    fprintf(stderr, "wtrelay token: signing failed: %s\n", strerror(-rc));
    return 1;
  }
  printf("%s\n", tok);
  return 0;
}
