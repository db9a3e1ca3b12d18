/*
 * wtrelay: main(). Parses the configuration, prepares the certificate,
 * starts the worker and runs it until SIGINT/SIGTERM. Exit codes: 0 on a
 * clean stop, 1 on a start-up failure, 2 on a usage error.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/config.h"
#include "wtrelay/log.h"
#include "wtrelay/server.h"
#include "wtrelay/tls.h"

static const char *env_get(const char *name) { return getenv(name); }

int main(int argc, char **argv)
{
  struct config cfg;
  char err[512];
  config_defaults(&cfg);
  int rc = config_parse(&cfg, argc, argv, env_get, err, sizeof(err));
  if (rc == CONFIG_HELP) {
    config_usage_print(stdout);
    return 0;
  }
  if (rc == CONFIG_VERSION) {
    printf("wtrelay %s\n", WTRELAY_VERSION);
    return 0;
  }
  if (rc < 0) {
    fprintf(stderr, "wtrelay: %s\n\n", err);
    config_usage_print(stderr);
    return 2;
  }
  log_set_level(cfg.log_level);
  signal(SIGPIPE, SIG_IGN);

  if (tls_global_init() < 0) {
    log_error("TLS library initialisation failed", "%s", "");
    return 1;
  }
  struct tls_cert cert;
  if (cfg.cert_pem[0]) {
    rc = tls_cert_load_pem(&cert, cfg.cert_pem, cfg.key_pem, err, sizeof(err));
    if (rc < 0) {
      log_error("cannot load certificate", "cert=%s key=%s err=\"%s\"", cfg.cert_pem,
                cfg.key_pem, err);
      return 1;
    }
  } else {
    rc = tls_cert_generate(&cert, 13);
    if (rc < 0) {
      log_error("cannot generate certificate", "err=%d", rc);
      return 1;
    }
  }

  struct server *srv = NULL;
  rc = server_new(&srv, &cfg, &cert);
  if (rc < 0) {
    log_error("cannot start relay", "bind=%s port=%u err=\"%s\"", cfg.bind, cfg.port,
              strerror(-rc));
    tls_cert_fini(&cert);
    return 1;
  }
  /* The seed's two lines, exactly; tools and users parse them. */
  printf("Certificate SHA-256 Hash: %s\n", cert.sha256_hex);
  printf("Listening on https://%s:%u\n", cfg.bind, server_port(srv));
  fflush(stdout);
  log_info("relay started", "version=%s bind=%s port=%u cert=%s not_after=%lld",
           WTRELAY_VERSION, cfg.bind, server_port(srv),
           cert.ephemeral ? "ephemeral" : "pem", (long long)cert.not_after);

  rc = server_run(srv);
  server_free(srv);
  tls_cert_fini(&cert);
  if (rc < 0) {
    log_error("relay stopped on an error", "err=\"%s\"", strerror(-rc));
    return 1;
  }
  log_info("relay stopped", "%s", "");
  return 0;
}
