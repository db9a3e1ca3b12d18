/*
 * io_probe: checks that io_uring is usable. See include/wtrelay/io_probe.h.
 */
#include "wtrelay/io_probe.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IO_PROBE_SYSCTL "/proc/sys/kernel/io_uring_disabled"
#define IO_PROBE_PROFILE "scripts/seccomp-wtrelay.json"

/* kernel.io_uring_disabled: 0, 1 (only CAP_SYS_ADMIN or the group
 * kernel.io_uring_group), 2 (nobody); -1 when the kernel has no such sysctl
 * (before 6.6) or it cannot be read. */
static int sysctl_disabled(void)
{
  FILE *f = fopen(IO_PROBE_SYSCTL, "re");
  int v = -1;
  if (!f)
    return -1;
  if (fscanf(f, "%d", &v) != 1)
    v = -1;
  fclose(f);
  return v;
}

/* The three system calls in the order the relay makes them; 0 or the
 * negative errno of the first that fails, with its name in *call. */
static int try_ring(const char **call)
{
  struct io_uring ring;
  *call = "io_uring_setup";
  int rc = io_uring_queue_init(2, &ring, 0);
  if (rc < 0)
    return rc;
  *call = "io_uring_register";
  struct io_uring_probe *p = calloc(1, sizeof(*p) + 256 * sizeof(struct io_uring_probe_op));
  if (!p) {
    io_uring_queue_exit(&ring);
    return 0; /* not a block; start-up will report the memory shortage */
  }
  rc = io_uring_register_probe(&ring, p, 256);
  free(p);
  if (rc == 0) {
    *call = "io_uring_enter";
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_nop(sqe);
    rc = io_uring_submit_and_wait(&ring, 1);
    if (rc > 0)
      rc = 0;
  }
  io_uring_queue_exit(&ring);
  return rc;
}

int io_probe_uring(char *why, size_t cap)
{
  const char *call;
  int rc = try_ring(&call);
  if (rc != -EPERM && rc != -ENOSYS)
    return 0;
  int dis = sysctl_disabled();
  if (dis > 0)
    snprintf(why, cap,
             "io_uring is blocked: %s: %s, kernel.io_uring_disabled=%d on this host; allow it "
             "with 'sysctl -w kernel.io_uring_disabled=0'%s",
             call, strerror(-rc), dis,
             dis == 1 ? " or run the relay in the group kernel.io_uring_group names" : "");
  else if (rc == -EPERM)
    snprintf(why, cap,
             "io_uring is blocked: %s: %s, most likely by a seccomp filter such as Docker's or "
             "containerd's default profile; allow it with the relay's profile: docker run "
             "--security-opt seccomp=" IO_PROBE_PROFILE " (docker-compose.yml does this), "
             "and keep sysctl kernel.io_uring_disabled=0",
             call, strerror(-rc));
  else
    snprintf(why, cap,
             "io_uring is blocked or missing: %s: %s, the kernel lacks io_uring "
             "(CONFIG_IO_URING) or a seccomp filter hides it; allow it with docker run "
             "--security-opt seccomp=" IO_PROBE_PROFILE " and sysctl kernel.io_uring_disabled=0",
             call, strerror(-rc));
  return rc;
}
