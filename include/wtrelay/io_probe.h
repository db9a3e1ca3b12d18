/*
 * io_probe: can this process use io_uring at all?
 *
 * Container runtimes (Docker 25+, containerd) block io_uring_setup,
 * io_uring_enter and io_uring_register in their default seccomp profiles,
 * and Linux 6.6+ can switch io_uring off with the sysctl
 * kernel.io_uring_disabled. Either way the relay cannot run, and a bare
 * "Operation not permitted" from deep inside start-up says nothing about
 * the remedy. The programs call io_probe_uring() once, before anything
 * else needs a ring, and print its one-line explanation.
 *
 * Never changes any sysctl; only reads /proc/sys/kernel/io_uring_disabled.
 */
#ifndef WTRELAY_IO_PROBE_H
#define WTRELAY_IO_PROBE_H

#include <stddef.h>

/* Creates a small ring, registers a probe (io_uring_register) and runs one
 * NOP through it (io_uring_enter). Returns 0 when all three calls work (or
 * fail for a reason other than a block: the real start-up reports those),
 * or -EPERM / -ENOSYS when io_uring is blocked or missing; then `why` holds
 * one line (no newline) naming the cause and how to allow io_uring: the
 * seccomp profile scripts/seccomp-wtrelay.json (docker --security-opt) and
 * sysctl kernel.io_uring_disabled=0. */
int io_probe_uring(char *why, size_t cap);

#endif
