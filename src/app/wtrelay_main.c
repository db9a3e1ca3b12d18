/*
 * wtrelay: main(). Parses the configuration, prepares the certificate,
 * starts the worker and runs it until SIGINT/SIGTERM. Exit codes: 0 on a
 * clean stop, 1 on a start-up failure, 2 on a usage error.
 * `wtrelay token ...` mints an access token instead (auth.c).
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "token.h"
#include "wtrelay/config.h"
#include "wtrelay/io_probe.h"
#include "wtrelay/log.h"
#include "wtrelay/server.h"
#include "wtrelay/tls.h"

static const char *env_get(const char *name)
{
  return getenv(name);
}

/* --healthcheck http://HOST:PORT/PATH (HOST may be [IPv6]; config_parse
 * makes the ops listener's /healthz when no URL was given): one GET with a
 * 3 s budget; 0 when the answer is 200. For container health checks (no
 * curl in the image). */
static int healthcheck(const char *url)
{
  char host[128], path[256] = "/", port[8] = "80";
  const char *p = url;
  if (strncmp(p, "http://", 7) != 0) {
    fprintf(stderr, "wtrelay: --healthcheck: expected http://HOST:PORT/PATH\n");
    return 2;
  }
  p += 7;
  bool v6 = *p == '[';
  size_t hl = v6 ? strcspn(++p, "]") : strcspn(p, ":/");
  if (hl == 0 || hl >= sizeof(host) || (v6 && p[hl] != ']'))
    return 2;
  memcpy(host, p, hl);
  host[hl] = '\0';
  p += hl + v6;
  if (*p == ':') {
    size_t pl = strcspn(p + 1, "/");
    if (pl == 0 || pl >= sizeof(port))
      return 2;
    memcpy(port, p + 1, pl);
    port[pl] = '\0';
    p += 1 + pl;
  }
  if (*p == '/')
    snprintf(path, sizeof(path), "%s", p);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
  if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) {
    fprintf(stderr, "wtrelay: --healthcheck: cannot resolve %s\n", host);
    return 1;
  }
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {.tv_sec = 3};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int ok = fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
  freeaddrinfo(ai);
  char req[512], resp[64] = "";
  if (ok) {
    int n =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s%s%s\r\nConnection: close\r\n\r\n",
                 path, v6 ? "[" : "", host, v6 ? "]" : "");
    ok = send(fd, req, (size_t)n, MSG_NOSIGNAL) == n && recv(fd, resp, sizeof(resp) - 1, 0) > 12;
  }
  if (fd >= 0)
    close(fd);
  if (!ok || strncmp(resp, "HTTP/1.1 200", 12) != 0) {
    fprintf(stderr, "wtrelay: --healthcheck %s: %s\n", url, ok ? "not 200" : "no answer");
    return 1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  struct config cfg;
  char err[512];
  if (argc > 1 && strcmp(argv[1], "token") == 0)
    return token_main(argc - 1, argv + 1);
  struct cli_page page;
  config_cli_page(&page);
  if (cli_generate(argc, argv, &page))
    return 0;
  config_defaults(&cfg);
  int rc = config_parse(&cfg, argc, argv, env_get, err, sizeof(err));
  if (rc == CONFIG_HELP) {
    config_usage_print(stdout);
    return 0;
  }
  if (rc == CONFIG_VERSION) {
    cli_version_print(stdout, "wtrelay");
    return 0;
  }
  if (rc < 0) {
    fprintf(stderr, "wtrelay: %s. Try 'wtrelay --help'.\n", err);
    return 2;
  }
  log_set_level(cfg.log_level);
  log_set_json(cfg.log_json);
  signal(SIGPIPE, SIG_IGN);
  if (cfg.log_note[0])
    log_warn("RUST_LOG partly ignored", "ignored=%s", LOG_Q(cfg.log_note));
  if (cfg.healthcheck[0])
    return healthcheck(cfg.healthcheck);
  if (io_probe_uring(err, sizeof(err)) < 0) {
    fprintf(stderr, "wtrelay: %s\n", err);
    return 1;
  }

  if (tls_global_init() < 0) {
    log_error("TLS library initialisation failed", "%s", "");
    return 1;
  }
  struct tls_cert cert;
  if (cfg.cert_pem[0]) {
    rc = tls_cert_load_pem(&cert, cfg.cert_pem, cfg.key_pem, err, sizeof(err));
    if (rc < 0) {
      log_error("cannot load certificate", "cert=%s key=%s err=%s", LOG_Q(cfg.cert_pem),
                LOG_Q(cfg.key_pem), LOG_Q(err));
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
  rc = server_new(&srv, &cfg, &cert); /* takes the certificate */
  if (rc < 0) {
    log_error("cannot start relay", "bind=%s port=%u err=\"%s\"", LOG_Q(cfg.bind), cfg.port,
              strerror(-rc));
    tls_cert_fini(&cert);
    return 1;
  }
  const struct tls_cert *inuse = server_cert(srv);
  const char *why = tls_cert_hash_unusable(inuse);
  if (why)
    log_warn("browsers will not accept this certificate through serverCertificateHashes: a page "
             "needs a CA the browser trusts (fine for a CA-signed certificate)",
             "why=%s sha256=%s", LOG_Q(why), inuse->sha256_hex);
  /* The seed's two lines, exactly; tools and users parse them. */
  printf("Certificate SHA-256 Hash: %s\n", inuse->sha256_hex);
  const char *bound = server_bind(srv);
  bool v6 = strchr(bound, ':') != NULL; /* a URL wants [::]:4433 */
  printf("Listening on https://%s%s%s:%u\n", v6 ? "[" : "", bound, v6 ? "]" : "", server_port(srv));
  fflush(stdout);
  log_info("relay started", "version=%s bind=%s port=%u cert=%s not_after=%lld workers=%u",
           WTRELAY_VERSION, bound, server_port(srv), inuse->ephemeral ? "ephemeral" : "pem",
           (long long)inuse->not_after, cfg.workers);
  if (cfg.http_listen[0])
    log_info("operations HTTP listening", "url=http://%s/metrics", cfg.http_listen);

  rc = server_run(srv);
  server_free(srv);
  if (rc < 0) {
    log_error("relay stopped on an error", "err=\"%s\"", strerror(-rc));
    return 1;
  }
  log_info("relay stopped", "%s", "");
  return 0;
}
