/*
 * cli: shared command-line error handling. See cli.h.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>

int cli_usage_error(const char *prog, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", prog);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, ". Try '%s --help'.\n", prog);
  va_end(ap);
  return 2;
}

const char *cli_opt_name(const struct option *opts, int val)
{
  for (const struct option *o = opts; o->name; o++)
    if (o->val == val)
      return o->name;
  return "?";
}

int cli_getopt_error(const char *prog, const struct option *opts, int ch, char **argv)
{
  if (ch == ':')
    return cli_usage_error(prog, "--%s: missing value", cli_opt_name(opts, optopt));
  if (optopt >= 256)
    return cli_usage_error(prog, "--%s: takes no value", cli_opt_name(opts, optopt));
  if (optopt)
    return cli_usage_error(prog, "unknown flag '-%c'", optopt);
  return cli_usage_error(prog, "unknown flag '%s'", argv[optind - 1]);
}
