/*
 * fuzz_lease: the lease file parser (lease.c) on arbitrary file contents
 * (a corrupt, truncated or hostile lease file read at start-up).
 *
 * Invariants checked: the parser never reads past the input or fails
 * other than by skipping lines; the table stays within its bounds; what it
 * loaded formats into a file that parses back with no line skipped and
 * formats again to the same lines (the order of leases released in the same
 * second may differ, so lines are compared as a sorted set).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/lease.h"

#define NOW (5000ull * 1000000000ull)
#define WALL 1700000000ll

static char a[1 << 16], b[1 << 16];

static int cmp_line(const void *x, const void *y)
{
  return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Splits buf (NUL-terminated) into lines in place; returns their count. */
static size_t lines(char *buf, char **out, size_t max)
{
  size_t n = 0;
  for (char *s = buf; *s && n < max;) {
    char *nl = strchr(s, '\n');
    if (!nl)
      abort(); /* the formatter always ends lines */
    *nl = '\0';
    out[n++] = s;
    s = nl + 1;
  }
  qsort(out, n, sizeof(*out), cmp_line);
  return n;
}

static void mk(struct lease_table *t)
{
  struct lease_params p = {.max_leases = 64,
                           .max_rooms = 8,
                           .lease_ns = 3600ull * 1000000000ull,
                           .pool_first = 0x0a00020a,
                           .pool_last = 0x0a0002fe};
  static uint64_t now = NOW;
  if (lease_init(t, &p, NULL, &now) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* Exact-size heap copy so ASan sees any read past the end. */
  char *copy = malloc(size ? size : 1);
  struct lease_table t, u;
  static char *la[2048], *lb[2048];
  if (!copy)
    return 0;
  memcpy(copy, data, size);
  mk(&t);
  int n = lease_parse(&t, copy, size, NOW, WALL);
  if (n < 0 || t.nused > 64 || t.nrooms > 8 || (uint32_t)n < t.nused)
    abort();
  int la_len = lease_format(&t, a, sizeof(a) - 1, NOW, WALL);
  if (la_len < 0)
    abort();
  a[la_len] = '\0';
  mk(&u);
  if (lease_parse(&u, a, (size_t)la_len, NOW, WALL) != (int)t.nused || u.ctr.lines_skipped ||
      u.nused != t.nused || u.nrooms != t.nrooms)
    abort();
  int lb_len = lease_format(&u, b, sizeof(b) - 1, NOW, WALL);
  if (lb_len != la_len)
    abort();
  b[lb_len] = '\0';
  size_t na = lines(a, la, 2048), nb = lines(b, lb, 2048);
  if (na != nb)
    abort();
  for (size_t i = 0; i < na; i++)
    if (strcmp(la[i], lb[i]) != 0)
      abort();
  lease_fini(&t);
  lease_fini(&u);
  free(copy);
  return 0;
}
