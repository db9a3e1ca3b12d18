/*
 * cli: what the command lines of wtclient and wtrelay-tap share around
 * getopt_long: one-line usage errors that name the flag and point to
 * --help (exit status 2), and the messages for getopt's own errors.
 * (wtrelay's parser is config.c: pure, table-driven, no getopt.)
 */
#ifndef WTRELAY_CLI_H
#define WTRELAY_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

/* One flag of a program: the single description that getopt's table,
 * --help, the man page and the bash completion are all made from. */
struct cli_flag {
  const char *name;    /* long name without "--" */
  char short_flag;     /* 0: none */
  const char *metavar; /* NULL: takes no value */
  const char *group;   /* heading in --help and the man page; NULL: "Options" */
  const char *env;     /* environment variable, or NULL */
  const char *choices; /* space-separated values the completion offers, or NULL */
  const char *help;    /* one sentence or a few; plain text */
  int val;             /* getopt_long's value for it */
};

/* A program's page: what --help prints and the man page is made of. The
 * roff strings are written by hand (they are short) and emitted as is. */
struct cli_page {
  const char *prog, *summary; /* "wtrelay", "WebTransport relay ..." */
  const char *synopsis;       /* after the program name: "[OPTIONS]" */
  const char *description;    /* plain text, paragraphs split by blank lines */
  const char *help_footer;    /* plain text after the options in --help, or NULL */
  const char *man_sections;   /* roff (.SH ...) after OPTIONS, or NULL */
  const struct cli_flag *flags;
  size_t nflags;
};

/* Prints "PROG: <message>. Try 'PROG --help'." on stderr; returns 2. */
int cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The long name of option value `val` in opts, "?" when none. */
const char *cli_opt_name(const struct option *opts, int val);
/* getopt_long returned ':' or '?' (or an unknown value): the one-line
 * error for it (missing value, value given to a flag that takes none,
 * unknown flag); returns 2. */
int cli_getopt_error(const char *prog, const struct option *opts, int ch, char **argv);

/* The flags wtclient and wtrelay-tap share, as table entries. */
#define CLI_FLAG_URL(val)                                                                          \
  {                                                                                                \
    "url", 0, "URL", NULL, NULL, NULL, "the relay and room, https://HOST:PORT/ROOM (required)",    \
        val                                                                                        \
  }
#define CLI_FLAG_CERT_HASH(val)                                                                    \
  {                                                                                                \
    "cert-hash", 0, "HEX", NULL, NULL, NULL,                                                       \
        "SHA-256 of the relay's certificate, 64 hex digits (what the relay prints as "             \
        "'Certificate "                                                                            \
        "SHA-256 Hash:'); without it the certificate must be trusted",                             \
        val                                                                                        \
  }
#define CLI_FLAG_LOG_LEVEL(val)                                                                    \
  {                                                                                                \
    "log-level", 0, "LEVEL", NULL, NULL, "error warn info debug",                                  \
        "error, warn, info or debug (default info)", val                                           \
  }
#define CLI_FLAGS_HELP_VERSION                                                                     \
  {"help", 'h', NULL, NULL, NULL, NULL, "print this help", 'h'},                                   \
  {                                                                                                \
    "version", 'V', NULL, NULL, NULL, NULL, "print the version and the libraries' versions", 'V'   \
  }

/* What a program's parse_args returns for -h/--help and -V/--version. */
enum { CLI_HELP = 1, CLI_VERSION = 3 };
/* Prints --help (parsed == CLI_HELP) or --version (CLI_VERSION) of p;
 * returns 1 when it printed, else 0. */
int cli_print_info(int parsed, const struct cli_page *p);

/* Fills out (nflags + 1 entries, the last zeroed) for getopt_long. */
void cli_long_options(const struct cli_flag *flags, size_t nflags, struct option *out);
/* --help: usage, summary, the flags grouped under their headings, each
 * with its metavar and environment variable, the footer. */
void cli_help_print(FILE *f, const struct cli_page *p);
/* The man page (section 1, roff -man) of p; version goes into .TH. */
void cli_man_print(FILE *f, const struct cli_page *p, const char *version);
/* A bash completion script for p's program: its flags, the choices of a
 * flag that has them, file names for a FILE metavar. */
void cli_completion_print(FILE *f, const struct cli_page *p);
/* The hidden generator flags every program takes as its only argument:
 * --man prints the man page, --bash-completion the completion script.
 * Returns 1 when argv was one of them (and the text was printed), else 0. */
int cli_generate(int argc, char **argv, const struct cli_page *p);
/* "PROG VERSION" and the versions of the libraries linked in, read from
 * the libraries at run time where they can say (version.c). */
void cli_version_print(FILE *f, const char *prog);

/* wtrelay's flag table (config.c) as a page, for --help and its man page. */
void config_cli_page(struct cli_page *p);

#endif
