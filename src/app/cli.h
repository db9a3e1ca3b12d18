/*
 * cli: what the command lines of wtclient and wtrelay-tap share around
 * getopt_long: one-line usage errors that name the flag and point to
 * --help (exit status 2), and the messages for getopt's own errors.
 * (wtrelay's parser is config.c: pure, table-driven, no getopt.)
 */
#ifndef WTRELAY_CLI_H
#define WTRELAY_CLI_H

#include <getopt.h>

/* Prints "PROG: <message>. Try 'PROG --help'." on stderr; returns 2. */
int cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The long name of option value `val` in opts, "?" when none. */
const char *cli_opt_name(const struct option *opts, int val);
/* getopt_long returned ':' or '?' (or an unknown value): the one-line
 * error for it (missing value, value given to a flag that takes none,
 * unknown flag); returns 2. */
int cli_getopt_error(const char *prog, const struct option *opts, int ch, char **argv);

#endif
