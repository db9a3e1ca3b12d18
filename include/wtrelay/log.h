/*
 * log: logfmt lines on stderr.
 *
 * Every line is `ts=<RFC 3339 UTC> level=<lvl> msg="<text>" key=value ...`.
 * The level threshold is process-wide and set once at start-up from
 * --log-level / RELAY_LOG (the only process-wide setting; it is written
 * before any worker starts and only read after). Logs about peers go through
 * a struct log_ratelimit owned by the caller, so one hostile peer cannot
 * flood stderr.
 *
 * Values from a peer or the network (room names, close reasons, error
 * details, file names) never go into a line raw: the caller writes `key=%s`
 * and passes LOG_Q(value), which quotes and escapes it (log_quote), so a
 * value cannot end its field, add fields or start a new line. Bare `%s`
 * stays for our own words without spaces (levels, "ephemeral", an address
 * we formatted).
 */
#ifndef WTRELAY_LOG_H
#define WTRELAY_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Parses "error", "warn", "info", "debug" (also "warning", "trace" = debug).
 * Returns 0, or -EINVAL for anything else. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);
void log_set_level(enum log_level lvl);
/* Lines as JSON objects instead of logfmt (--log-format json): the same
 * fields, in the same order, "ts", "level" and "msg" first; a bare value
 * that is a JSON number or true/false stays one, every other value is a
 * string (a logfmt \xNN escape becomes \u00NN). Set before threads log. */
void log_set_json(bool on);
/* Writes the JSON object of one logfmt line (in[0..n), no newline) into
 * out (cap bytes, at least 2n + 64): its length. For tests. */
size_t log_logfmt_to_json(const char *in, size_t n, char *out, size_t cap);
bool log_enabled(enum log_level lvl);

/* Writes one line of at most LOG_LINE_MAX bytes. `kvfmt` is a printf format
 * for the key=value part (may be NULL or ""); `msg` is quoted and escaped.
 * A key=value part that does not fit is cut after its last whole field and
 * ends with `truncated=true`, so every line stays parseable. */
void log_emit(enum log_level lvl, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_LINE_MAX 2048

/* The same with a key=value part already formatted (kv[0..kvlen), whole
 * fields, values quoted as above) and no length bound: the line is as long
 * as it needs (the exit counters, counter_line_emit). Returns 0, or
 * -ENOMEM (nothing written). */
int log_emit_long(enum log_level lvl, const char *msg, const char *kv, size_t kvlen);
/* Bytes of one quoted value from LOG_Q, quotes and NUL included: any
 * 255-byte room name in plain ASCII fits whole. */
#define LOG_QUOTE_MAX 384

/* Writes in[0..inlen) into out as one logfmt value: in double quotes, `"`
 * and `\` as \" and \\, newline, CR and tab as \n \r \t, every other byte
 * below 0x20 and every byte from 0x7f up as \xNN (two lowercase hex
 * digits); other bytes unchanged. At most cap bytes are written, NUL
 * included: a value that does not fit ends with `..."` after the last whole
 * escape that fits (a cap below 6 gives `""` or an empty string). Returns
 * out, so a call can be a printf argument. in may be NULL when inlen is 0. */
const char *log_quote(char *out, size_t cap, const char *in, size_t inlen);
/* The same for a NUL-terminated string; NULL is quoted as "". */
const char *log_quote_str(char *out, size_t cap, const char *s);
/* A quoted copy of s for a printf argument, in a compound literal that lives
 * until the end of the enclosing block:
 *   log_info("peer registered", "room=%s", LOG_Q(room->name)); */
#define LOG_Q(s) log_quote_str((char[LOG_QUOTE_MAX]){0}, LOG_QUOTE_MAX, (s))

#define log_error(msg, ...) log_emit(LOG_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_emit(LOG_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...) log_emit(LOG_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...)                                                                        \
  do {                                                                                             \
    if (log_enabled(LOG_DEBUG))                                                                    \
      log_emit(LOG_DEBUG, msg, __VA_ARGS__);                                                       \
  } while (0)

/* At most `burst` lines per `interval_ns`; the next allowed line reports how
 * many were suppressed. Owned by the caller (per worker, per reason). */
struct log_ratelimit {
  uint64_t interval_ns;
  uint64_t window_start_ns;
  uint32_t burst;
  uint32_t used;
  uint32_t suppressed;
};

void log_ratelimit_init(struct log_ratelimit *rl, uint64_t interval_ns, uint32_t burst);
/* Returns true when a line may be written now; *suppressed (may be NULL)
 * receives the number of lines dropped since the last allowed one. */
bool log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_ns, uint32_t *suppressed);

#endif
