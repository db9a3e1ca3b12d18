/*
 * steer: loads the SK_REUSEPORT steering program and attaches it to the
 * relay's reuseport group. See include/wtrelay/steer.h.
 *
 * The program's ELF object is compiled by clang (-target bpf) at build
 * time and linked in as a byte array (steer_bpf_obj, generated from
 * src/bpf/reuseport_steer.bpf.c by CMake), so the relay stays one binary
 * with no file to find at run time. Start-up, in order:
 *
 *   open the object from memory -> load it (creates the socket array and
 *   the counters, verifies the program: needs CAP_BPF) -> put fds[i] in
 *   slot i -> SO_ATTACH_REUSEPORT_EBPF on fds[0] (no capability needed:
 *   the group takes a reference to the program).
 *
 * The slots are filled before the program is attached, so the first
 * datagram it sees already finds every worker. A socket closed later
 * leaves its slot by itself (the kernel removes it from the array), and
 * its DCIDs fall back to the hash.
 *
 * Built with -DBPF=OFF, every entry point says -EOPNOTSUPP.
 */
#include "wtrelay/steer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/quic.h"

_Static_assert(STEER_CID_LEN == QUIC_SCID_LEN, "steer reads server CIDs of QUIC_SCID_LEN bytes");
_Static_assert(STEER_MAX_WORKERS == 256, "the worker index is one byte of the CID");

/* WTRELAY_NO_BPF set to anything but "" or "0". */
static int disabled_by_env(void)
{
  const char *v = getenv("WTRELAY_NO_BPF");
  return v && *v && strcmp(v, "0") != 0;
}

#ifndef WTRELAY_BPF

int steer_attach(const int *fds, unsigned int n, struct steer **out)
{
  (void)fds;
  (void)n;
  (void)disabled_by_env;
  *out = NULL;
  return -EOPNOTSUPP;
}

void steer_detach(struct steer *s)
{
  (void)s;
}

int steer_stats(struct steer *s, struct steer_stats *st)
{
  (void)s;
  memset(st, 0, sizeof(*st));
  return -EOPNOTSUPP;
}

#else

#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "wtrelay/log.h"

/* Generated at build time from the compiled program (CMakeLists.txt). */
extern const unsigned char steer_bpf_obj[];
extern const size_t steer_bpf_obj_len;

struct steer {
  struct bpf_object *obj; /* owns the program and both maps */
  int group_fd;           /* borrowed: fds[0], the socket we attached through */
  int socks_fd;           /* the socket array (owned by obj) */
  unsigned int nslots;    /* slots 0..nslots-1 filled */
  int counters_fd;        /* the per-CPU counter map (owned by obj) */
  int ncpus;              /* possible CPUs: values per counter */
  uint64_t *percpu;       /* ncpus values, steer_stats' buffer */
};

/* libbpf speaks through one process-wide callback: its warnings (a refused
 * map without CAP_BPF, the verifier's log) are details of a refusal that
 * steer_attach returns and the caller logs once, so they go to debug. */
static int libbpf_to_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
  if (level == LIBBPF_DEBUG || !log_enabled(LOG_DEBUG))
    return 0;
  char line[512];
  int n = vsnprintf(line, sizeof(line), fmt, ap);
  if (n < 0)
    return 0;
  size_t len = strlen(line);
  while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
    line[--len] = '\0';
  log_debug("libbpf", "detail=%s", LOG_Q(line));
  return n;
}

void steer_detach(struct steer *s)
{
  if (!s)
    return;
  if (s->group_fd >= 0) {
    /* The value is ignored, but the kernel wants an int's worth of it. */
    int unused = 0;
    (void)setsockopt(s->group_fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &unused, sizeof(unused));
  }
  /* Empty the slots now: a socket stays marked as a member of the array
   * until the map is freed, which the kernel defers, and meanwhile no
   * other array (a new steer_attach) could take it (-EBUSY). */
  for (uint32_t i = 0; i < s->nslots; i++)
    (void)bpf_map_delete_elem(s->socks_fd, &i);
  bpf_object__close(s->obj);
  free(s->percpu);
  free(s);
}

/* Puts fds[i] into slot i of the socket array. The kernel checks each one:
 * a UDP or TCP socket, bound, SO_REUSEPORT (else -EINVAL), in no other
 * socket array (else -EBUSY). */
static int fill_slots(struct steer *s, const int *fds, unsigned int n)
{
  for (uint32_t i = 0; i < n; i++) {
    uint64_t fd = (uint64_t)fds[i];
    if (fds[i] < 0)
      return -EBADF;
    if (bpf_map_update_elem(s->socks_fd, &i, &fd, BPF_ANY) != 0)
      return -errno;
    s->nslots = i + 1;
  }
  return 0;
}

int steer_attach(const int *fds, unsigned int n, struct steer **out)
{
  *out = NULL;
  if (disabled_by_env())
    return -EOPNOTSUPP;
  if (!fds || n == 0 || n > STEER_MAX_WORKERS)
    return -EINVAL;

  struct steer *s = calloc(1, sizeof(*s));
  if (!s)
    return -ENOMEM;
  s->group_fd = -1;
  int rv;

  libbpf_set_print(libbpf_to_log);
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "wtrelay_steer");
  s->obj = bpf_object__open_mem(steer_bpf_obj, steer_bpf_obj_len, &opts);
  if (!s->obj) {
    rv = errno ? -errno : -EINVAL;
    goto fail;
  }
  rv = bpf_object__load(s->obj);
  if (rv < 0)
    goto fail;

  struct bpf_program *prog = bpf_object__find_program_by_name(s->obj, "steer_select");
  struct bpf_map *socks = bpf_object__find_map_by_name(s->obj, "steer_socks");
  struct bpf_map *counters = bpf_object__find_map_by_name(s->obj, "steer_counters");
  if (!prog || !socks || !counters) {
    rv = -ENOENT; /* the embedded object does not match this file */
    goto fail;
  }
  s->counters_fd = bpf_map__fd(counters);
  s->ncpus = libbpf_num_possible_cpus();
  if (s->ncpus <= 0) {
    rv = s->ncpus < 0 ? s->ncpus : -EINVAL;
    goto fail;
  }
  s->percpu = calloc((size_t)s->ncpus, sizeof(uint64_t));
  if (!s->percpu) {
    rv = -ENOMEM;
    goto fail;
  }

  s->socks_fd = bpf_map__fd(socks);
  rv = fill_slots(s, fds, n);
  if (rv < 0)
    goto fail;

  int prog_fd = bpf_program__fd(prog);
  if (setsockopt(fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd, sizeof(prog_fd)) != 0) {
    rv = -errno;
    goto fail;
  }
  s->group_fd = fds[0];
  *out = s;
  return 0;

fail:
  steer_detach(s);
  return rv;
}

int steer_stats(struct steer *s, struct steer_stats *st)
{
  memset(st, 0, sizeof(*st));
  if (!s)
    return -EINVAL;
  for (uint32_t k = 0; k < STEER_STAT__COUNT; k++) {
    if (bpf_map_lookup_elem(s->counters_fd, &k, s->percpu) != 0)
      return -errno;
    for (int c = 0; c < s->ncpus; c++)
      st->n[k] += s->percpu[c];
  }
  return 0;
}

#endif /* WTRELAY_BPF */
