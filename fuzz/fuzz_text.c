/*
 * fuzz_text: small parsers and writers of text that comes from outside or
 * carries outside bytes: the /status query (status.c), the logfmt-to-JSON
 * log converter (log.c, --log-format json) on any line, and the redaction
 * of --nats URLs for the log (fed.c).
 *
 * Invariants checked: a query that parses has 1 <= limit <= the maximum;
 * the JSON line is one object ({...}) within its buffer and holds no raw
 * byte below 0x20 or from 0x7f up (everything escaped), and its quotes
 * are balanced outside escapes; the redacted URL list is NUL-terminated
 * within its buffer and no longer than it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "wtrelay/fed.h"
#include "wtrelay/log.h"

static char in[8192], out[2 * 8192 + 64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size >= sizeof(in))
    size = sizeof(in) - 1;
  memcpy(in, data, size);
  in[size] = '\0';

  uint32_t offset, limit;
  if (status_query_parse(in, &offset, &limit) == 0 && (limit == 0 || limit > STATUS_LIMIT_MAX))
    abort();

  size_t n = log_logfmt_to_json(in, size, out, sizeof(out));
  if (n == 0 || n > sizeof(out) || out[0] != '{' || out[n - 1] != '}')
    abort();
  bool quoted = false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)out[i];
    if (c < 0x20 || c >= 0x7f)
      abort();
    if (quoted && c == '\\')
      i++;
    else if (c == '"')
      quoted = !quoted;
  }
  if (quoted)
    abort();

  char red[64];
  fed_urls_redact(red, sizeof(red), in);
  if (!memchr(red, '\0', sizeof(red)))
    abort();
  return 0;
}
