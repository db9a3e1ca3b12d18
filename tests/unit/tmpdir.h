/*
 * tmpdir: a fresh directory for one unit test's files (key files, PEM
 * files, lease files), made by mkdtemp under $TMPDIR (default /tmp), and
 * its removal. One place for what test_auth, test_lease and test_tls need.
 */
#ifndef WTRELAY_TEST_TMPDIR_H
#define WTRELAY_TEST_TMPDIR_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#define TEST_TMPDIR_MAX 192 /* leaves room for a file name in a 256-byte path */

/* out (cap >= 64) becomes $TMPDIR/wtrelay-<tag>-<6 random characters>. */
static inline void test_tmpdir(char *out, size_t cap, const char *tag)
{
  const char *base = getenv("TMPDIR");
  int n = snprintf(out, cap, "%s/wtrelay-%s-XXXXXX", base && *base ? base : "/tmp", tag);
  cr_assert(n > 0 && (size_t)n < cap, "temporary directory name too long");
  cr_assert_not_null(mkdtemp(out), "mkdtemp %s", out);
}

/* Removes dir and everything in it. */
static inline void test_tmpdir_rm(const char *dir)
{
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
}

#endif
