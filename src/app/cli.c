/*
 * cli: shared command-line handling. See cli.h. Every program describes
 * its flags once (struct cli_flag); getopt's table, --help, the man page
 * and the bash completion are printed from that description, so they
 * cannot drift apart. CMake runs `PROG --man` and `PROG --bash-completion`
 * at build time and installs what they print.
 */
#include "cli.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

void cli_long_options(const struct cli_flag *flags, size_t nflags, struct option *out)
{
  for (size_t i = 0; i < nflags; i++)
    out[i] = (struct option){flags[i].name, flags[i].metavar ? required_argument : no_argument,
                             NULL, flags[i].val};
  out[nflags] = (struct option){NULL, 0, NULL, 0};
}

/* Writes text from column `col` on, words wrapped before column 80, every
 * continuation line indented to `indent`. */
static void wrap(FILE *f, const char *text, size_t col, size_t indent)
{
  while (*text) {
    size_t w = strcspn(text, " ");
    if (col > indent && col + 1 + w > 79) {
      fprintf(f, "\n%*s", (int)indent, "");
      col = indent;
    } else if (col > indent) {
      fputc(' ', f);
      col++;
    }
    fwrite(text, 1, w, f);
    col += w;
    text += w;
    text += strspn(text, " ");
  }
}

static const char *group_of(const struct cli_flag *fl)
{
  return fl->group ? fl->group : "Options";
}

void cli_help_print(FILE *f, const struct cli_page *p)
{
  enum { COL = 32 };
  fprintf(f, "Usage: %s %s\n\n", p->prog, p->synopsis);
  wrap(f, p->summary, 0, 0);
  fputc('\n', f);
  for (size_t i = 0; i < p->nflags; i++) {
    const struct cli_flag *fl = &p->flags[i];
    if (i == 0 || strcmp(group_of(fl), group_of(&p->flags[i - 1])) != 0)
      fprintf(f, "\n%s:\n", group_of(fl));
    char head[96], help[1024];
    int n = snprintf(head, sizeof(head), "  %c%c%s--%s%s%s", fl->short_flag ? '-' : ' ',
                     fl->short_flag ? fl->short_flag : ' ', fl->short_flag ? ", " : "  ", fl->name,
                     fl->metavar ? " " : "", fl->metavar ? fl->metavar : "");
    fputs(head, f);
    if (n + 2 > COL) {
      fprintf(f, "\n%*s", COL, "");
      n = COL;
    } else {
      fprintf(f, "%*s", COL - n, "");
      n = COL;
    }
    snprintf(help, sizeof(help), "%s%s%s%s", fl->help, fl->env ? " [env: " : "",
             fl->env ? fl->env : "", fl->env ? "]" : "");
    wrap(f, help, (size_t)n, COL);
    fputc('\n', f);
  }
  if (p->help_footer) {
    fputc('\n', f);
    wrap(f, p->help_footer, 0, 0);
    fputc('\n', f);
  }
}

/* Plain text as roff: backslashes escaped, hyphens as \- (so they copy as
 * ASCII), a control character at the start of a line neutralised. */
static void roff_text(FILE *f, const char *s)
{
  bool bol = true;
  for (; *s; s++) {
    if (bol && (*s == '.' || *s == '\''))
      fputs("\\&", f);
    if (*s == '\\')
      fputs("\\e", f);
    else if (*s == '-')
      fputs("\\-", f);
    else
      fputc(*s, f);
    bol = *s == '\n';
  }
}

static void roff_upper(FILE *f, const char *s)
{
  for (; *s; s++) {
    if (*s == '-')
      fputs("\\-", f);
    else
      fputc(toupper((unsigned char)*s), f);
  }
}

/* before, text in roff, back to the roman font, after and a newline when
 * after is not empty (before picks the font: "\\fB", "\\fI"). */
static void roff_font(FILE *f, const char *before, const char *text, const char *after)
{
  fputs(before, f);
  roff_text(f, text);
  fprintf(f, "\\fR%s%s", after, *after ? "\n" : "");
}

void cli_man_print(FILE *f, const struct cli_page *p, const char *version)
{
  fputs(".TH ", f);
  roff_upper(f, p->prog);
  fprintf(f, " 1 \"\" \"%s %s\" \"User Commands\"\n.SH NAME\n", p->prog, version);
  roff_text(f, p->prog);
  fputs(" \\- ", f);
  roff_text(f, p->summary);
  fputs("\n.SH SYNOPSIS\n.B ", f);
  roff_text(f, p->prog);
  fputc('\n', f);
  roff_text(f, p->synopsis);
  fputs("\n.SH DESCRIPTION\n", f);
  for (const char *d = p->description; *d;) {
    const char *end = strstr(d, "\n\n");
    size_t len = end ? (size_t)(end - d) : strlen(d);
    char para[2048];
    snprintf(para, sizeof(para), "%.*s", (int)len, d);
    fputs(d == p->description ? "" : ".PP\n", f);
    roff_text(f, para);
    fputc('\n', f);
    d += len;
    d += strspn(d, "\n");
  }
  fputs(".SH OPTIONS\n", f);
  for (size_t i = 0; i < p->nflags; i++) {
    const struct cli_flag *fl = &p->flags[i];
    if (fl->group && (i == 0 || strcmp(group_of(fl), group_of(&p->flags[i - 1])) != 0)) {
      fputs(".SS ", f);
      roff_text(f, fl->group);
      fputc('\n', f);
    }
    fputs(".TP\n", f);
    if (fl->short_flag)
      fprintf(f, "\\fB\\-%c\\fR, ", fl->short_flag);
    roff_font(f, "\\fB\\-\\-", fl->name, "");
    if (fl->metavar)
      roff_font(f, " \\fI", fl->metavar, "");
    fputc('\n', f);
    roff_text(f, fl->help);
    fputc('\n', f);
    if (fl->env)
      roff_font(f, "Environment: \\fB", fl->env, ".");
  }
  if (p->man_sections)
    fputs(p->man_sections, f);
}

/* A shell function name from the program's: wtrelay-tap -> _wtrelay_tap. */
static void shell_name(FILE *f, const char *prog)
{
  fputc('_', f);
  for (; *prog; prog++)
    fputc(isalnum((unsigned char)*prog) ? *prog : '_', f);
}

void cli_completion_print(FILE *f, const struct cli_page *p)
{
  fprintf(f, "# bash completion for %s, generated by '%s --bash-completion'\n", p->prog, p->prog);
  shell_name(f, p->prog);
  fputs("()\n{\n  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
        "  case $prev in\n",
        f);
  for (size_t i = 0; i < p->nflags; i++) {
    const struct cli_flag *fl = &p->flags[i];
    if (!fl->metavar)
      continue;
    fprintf(f, "  --%s", fl->name);
    if (fl->short_flag)
      fprintf(f, "|-%c", fl->short_flag);
    if (fl->choices)
      fprintf(f, ")\n    mapfile -t COMPREPLY < <(compgen -W '%s' -- \"$cur\")\n    return ;;\n",
              fl->choices);
    else if (strcmp(fl->metavar, "FILE") == 0)
      fputs(")\n    mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n    return ;;\n", f);
    else
      fputs(")\n    return ;;\n", f);
  }
  fputs("  esac\n  mapfile -t COMPREPLY < <(compgen -W '", f);
  for (size_t i = 0; i < p->nflags; i++)
    fprintf(f, "%s--%s", i ? " " : "", p->flags[i].name);
  fputs("' -- \"$cur\")\n}\ncomplete -F ", f);
  shell_name(f, p->prog);
  fprintf(f, " %s\n", p->prog);
}

int cli_generate(int argc, char **argv, const struct cli_page *p)
{
  if (argc != 2)
    return 0;
  if (strcmp(argv[1], "--man") == 0)
    cli_man_print(stdout, p, WTRELAY_VERSION);
  else if (strcmp(argv[1], "--bash-completion") == 0)
    cli_completion_print(stdout, p);
  else
    return 0;
  return 1;
}

int cli_print_info(int parsed, const struct cli_page *p)
{
  if (parsed == CLI_HELP)
    cli_help_print(stdout, p);
  else if (parsed == CLI_VERSION)
    cli_version_print(stdout, p->prog);
  else
    return 0;
  return 1;
}
