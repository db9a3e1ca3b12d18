/*
 * relay_proc.h: the C integration tests' relay process. A wtrelay on a
 * free loopback port (and, when asked, an ops listener on a free TCP
 * port), started with the caller's extra flags, waited for until it says
 * "Listening on", its certificate hash read from its stdout; stopped with
 * SIGTERM and required to exit 0 within 3 s. The relay dies with the test
 * process (PR_SET_PDEATHSIG): a failed assertion ends the test at once, and
 * an orphaned relay would hold ctest's output pipe open.
 */
#ifndef WTRELAY_TESTS_RELAY_PROC_H
#define WTRELAY_TESTS_RELAY_PROC_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wtrelay/tls.h"

#define RELAY_PROC_MAX_ARGS 16

struct relay_proc {
  pid_t pid;
  uint16_t port, ops_port; /* ops_port 0: no ops listener */
  uint8_t hash[32];
};

/* A loopback port of `type` (SOCK_DGRAM, SOCK_STREAM) free a moment ago. */
static inline uint16_t relay_proc_free_port(int type)
{
  int fd = socket(AF_INET, type, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof(a);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  getsockname(fd, (struct sockaddr *)&a, &l);
  close(fd);
  return ntohs(a.sin_port);
}

/* Starts the relay with `extra` (a NULL-terminated list of flags, or NULL)
 * after its address, port, ops listener (with_ops) and log level. */
static inline void relay_proc_start(struct relay_proc *rp, bool with_ops, const char *const *extra)
{
  int pfd[2];
  cr_assert_eq(pipe(pfd), 0);
  rp->port = relay_proc_free_port(SOCK_DGRAM);
  rp->ops_port = with_ops ? relay_proc_free_port(SOCK_STREAM) : 0;
  char port[16], ops[64] = "";
  snprintf(port, sizeof(port), "%u", rp->port);
  if (with_ops)
    snprintf(ops, sizeof(ops), "127.0.0.1:%u", rp->ops_port);
  const char *argv[8 + RELAY_PROC_MAX_ARGS + 1] = {WTRELAY_BIN, "--bind",      "127.0.0.1",
                                                   "--port",    port,          "--http-listen",
                                                   ops,         "--log-level", "warn"};
  int n = 9;
  for (int i = 0; extra && extra[i] && i < RELAY_PROC_MAX_ARGS; i++)
    argv[n++] = extra[i];
  argv[n] = NULL;
  rp->pid = fork();
  cr_assert_geq(rp->pid, 0);
  if (rp->pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(pfd[1], 1);
    close(pfd[0]);
    execv(WTRELAY_BIN, (char *const *)argv);
    _exit(127);
  }
  close(pfd[1]);
  FILE *f = fdopen(pfd[0], "r");
  char line[512], hex[65] = "";
  bool listening = false;
  while (!listening && fgets(line, sizeof(line), f)) {
    sscanf(line, "Certificate SHA-256 Hash: %64s", hex);
    listening = strncmp(line, "Listening on", 12) == 0;
  }
  fclose(f);
  cr_assert(listening, "relay did not start");
  cr_assert_eq(tls_hash_parse_hex(hex, rp->hash), 0);
}

static inline void relay_proc_stop(struct relay_proc *rp)
{
  int st = 0;
  kill(rp->pid, SIGTERM);
  for (int i = 0; i < 300; i++) {
    if (waitpid(rp->pid, &st, WNOHANG) == rp->pid) {
      cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "relay exit status %d", st);
      return;
    }
    usleep(10000);
  }
  kill(rp->pid, SIGKILL);
  waitpid(rp->pid, &st, 0);
  cr_assert_fail("relay did not exit within 3 s of SIGTERM");
}

/* GET path from the relay's ops listener: the whole response (head and
 * body) into buf, NUL-terminated; its length. */
static inline size_t relay_proc_get(const struct relay_proc *rp, const char *path, char *buf,
                                    size_t cap)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval tv = {.tv_sec = 3};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(rp->ops_port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  char req[512];
  int rl =
      snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
  cr_assert(rl > 0 && (size_t)rl < sizeof(req));
  cr_assert_eq(send(fd, req, (size_t)rl, 0), rl);
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = recv(fd, buf + n, cap - 1 - n, 0)) > 0)
    n += (size_t)r;
  buf[n] = '\0';
  close(fd);
  return n;
}

/* GET /metrics from the relay's ops listener into buf (NUL-terminated). */
static inline void relay_proc_metrics(const struct relay_proc *rp, char *buf, size_t cap)
{
  relay_proc_get(rp, "/metrics", buf, cap);
}

/* The value of the sample line "series value" in a /metrics text, or -1. */
static inline long long relay_proc_metric(const char *text, const char *series)
{
  char pat[256];
  snprintf(pat, sizeof(pat), "\n%s ", series);
  const char *p = strstr(text, pat);
  return p ? atoll(p + strlen(pat)) : -1;
}

#endif
