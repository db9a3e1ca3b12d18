/*
 * seccomp_run: runs a program under a seccomp filter, for tests that need
 * io_uring blocked (as Docker's default profile does) or that check an
 * allow-list (scripts/seccomp-wtrelay.json) against a real run. No
 * libseccomp: a classic BPF program loaded with prctl(PR_SET_SECCOMP).
 *
 *   seccomp_run [-d ACTION] [-r SYSCALL=ACTION]... [-f FILE] -- PROG [ARG...]
 *
 * ACTION is allow, an errno name (EPERM, ENOSYS, EACCES) or an errno
 * number. -d is the action for every system call without a rule (default
 * allow). SYSCALL is a number or one of io_uring_setup, io_uring_enter,
 * io_uring_register. FILE holds one rule per line, "NUMBER ACTION" (the
 * test turns the JSON profile's names into numbers with the C headers).
 * A system call of another audit architecture gets EPERM; x32 numbers on
 * x86_64 match no rule and get the default. A test tool, not a sandbox.
 * Exit 125 on a usage or set-up error, else PROG's (exec).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define SR_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SR_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp_run: add the audit architecture of this machine"
#endif

#define SR_MAX_RULES 1024

struct sr_rule {
  unsigned nr;
  unsigned action;
};

static int parse_action(const char *s, unsigned *out)
{
  static const struct {
    const char *name;
    int err;
  } names[] = {{"EPERM", EPERM}, {"ENOSYS", ENOSYS}, {"EACCES", EACCES}};
  if (strcmp(s, "allow") == 0) {
    *out = SECCOMP_RET_ALLOW;
    return 0;
  }
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcmp(s, names[i].name) == 0) {
      *out = SECCOMP_RET_ERRNO | (unsigned)names[i].err;
      return 0;
    }
  }
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < 1 || v > 4095)
    return -EINVAL;
  *out = SECCOMP_RET_ERRNO | (unsigned)v;
  return 0;
}

static int parse_nr(const char *s, unsigned *out)
{
  if (strcmp(s, "io_uring_setup") == 0)
    *out = __NR_io_uring_setup;
  else if (strcmp(s, "io_uring_enter") == 0)
    *out = __NR_io_uring_enter;
  else if (strcmp(s, "io_uring_register") == 0)
    *out = __NR_io_uring_register;
  else {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 4095)
      return -EINVAL;
    *out = (unsigned)v;
  }
  return 0;
}

/* "NR=ACTION" or "NR ACTION" */
static int parse_rule(char *s, struct sr_rule *r)
{
  size_t k = strcspn(s, "= \t");
  if (s[k] == '\0')
    return -EINVAL;
  s[k] = '\0';
  char *a = s + k + 1;
  a += strspn(a, " \t");
  a[strcspn(a, " \t\r\n")] = '\0';
  if (parse_nr(s, &r->nr) < 0 || parse_action(a, &r->action) < 0)
    return -EINVAL;
  return 0;
}

static int read_rules(const char *path, struct sr_rule *rules, unsigned *n)
{
  FILE *f = fopen(path, "r");
  char line[256];
  if (!f)
    return -errno;
  while (fgets(line, sizeof(line), f)) {
    if (line[0] == '#' || line[strspn(line, " \t\r\n")] == '\0')
      continue;
    if (*n == SR_MAX_RULES || parse_rule(line, &rules[*n]) < 0) {
      fclose(f);
      return -EINVAL;
    }
    (*n)++;
  }
  fclose(f);
  return 0;
}

static int load_filter(const struct sr_rule *rules, unsigned n, unsigned dflt)
{
  static struct sock_filter prog[4 + 2 * SR_MAX_RULES + 1];
  unsigned k = 0;
  prog[k++] =
      (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SR_ARCH, 1, 0);
  prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
  prog[k++] =
      (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  for (unsigned i = 0; i < n; i++) {
    prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, rules[i].nr, 0, 1);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, rules[i].action);
  }
  prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, dflt);
  struct sock_fprog fp = {.len = (unsigned short)k, .filter = prog};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return -errno;
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) < 0)
    return -errno;
  return 0;
}

static int usage(void)
{
  fprintf(stderr, "usage: seccomp_run [-d ACTION] [-r SYSCALL=ACTION]... [-f FILE] -- PROG "
                  "[ARG...]\n");
  return 125;
}

int main(int argc, char **argv)
{
  static struct sr_rule rules[SR_MAX_RULES];
  unsigned n = 0, dflt = SECCOMP_RET_ALLOW;
  int i = 1, rc;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (i + 1 >= argc)
      return usage();
    if (strcmp(argv[i], "-d") == 0) {
      if (parse_action(argv[++i], &dflt) < 0)
        return usage();
    } else if (strcmp(argv[i], "-r") == 0) {
      if (n == SR_MAX_RULES || parse_rule(argv[++i], &rules[n++]) < 0)
        return usage();
    } else if (strcmp(argv[i], "-f") == 0) {
      if ((rc = read_rules(argv[++i], rules, &n)) < 0) {
        fprintf(stderr, "seccomp_run: %s: %s\n", argv[i], strerror(-rc));
        return 125;
      }
    } else {
      return usage();
    }
  }
  if (i + 1 >= argc)
    return usage();
  if ((rc = load_filter(rules, n, dflt)) < 0) {
    fprintf(stderr, "seccomp_run: cannot load the filter: %s\n", strerror(-rc));
    return 125;
  }
  execvp(argv[i + 1], argv + i + 1);
  fprintf(stderr, "seccomp_run: %s: %s\n", argv[i + 1], strerror(errno));
  return 125;
}
