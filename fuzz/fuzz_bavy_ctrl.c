/*
 * fuzz_bavy_ctrl: the bavy control-message parsers (bavy.c) on peer bytes,
 * as the relay (client messages) and the native client (relay messages)
 * receive them, plus the chunk header parser.
 *
 * Invariants checked: parsers never read past the input; a parsed Register
 * re-encoded by the writer parses to the same MAC; a parsed Assigned or
 * Error re-encoded parses to the same fields (an Error message that holds
 * valid UTF-8 without NUL survives the writer's escaping); a chunk header
 * that parses respects index < total and 1..900 data bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/bavy.h"

static void check_client(const uint8_t *data, size_t size)
{
  struct bavy_ctrl c, c2;
  char out[BAVY_CTRL_MAX];
  int n;

  if (bavy_ctrl_parse(data, size, &c) != 0)
    return;
  if (c.type == BAVY_MSG_REGISTER) {
    n = bavy_write_register(out, sizeof(out), c.mac);
    if (n <= 0 || bavy_ctrl_parse((const uint8_t *)out, (size_t)n, &c2) != 0 ||
        c2.type != BAVY_MSG_REGISTER || memcmp(c.mac, c2.mac, 6) != 0)
      abort();
  }
  if (memchr(c.name, '\0', sizeof(c.name)) == NULL)
    abort();
}

static void check_server(const uint8_t *data, size_t size)
{
  struct bavy_server_msg m, m2;
  char out[BAVY_CTRL_MAX * 2];
  int n = -1;

  if (bavy_ctrl_parse_server(data, size, &m) != 0)
    return;
  if (memchr(m.message, '\0', sizeof(m.message)) == NULL)
    abort();
  if (m.type == BAVY_SMSG_ASSIGNED)
    n = bavy_write_assigned(out, sizeof(out), m.ip, m.gateway, m.netmask, m.dns);
  else if (m.type == BAVY_SMSG_ERROR)
    n = bavy_write_error(out, sizeof(out), m.message);
  else
    return;
  if (n <= 0 || bavy_ctrl_parse_server((const uint8_t *)out, (size_t)n, &m2) != 0 ||
      m2.type != m.type)
    abort();
  if (m.type == BAVY_SMSG_ASSIGNED &&
      (memcmp(m.ip, m2.ip, 4) || memcmp(m.gateway, m2.gateway, 4) ||
       memcmp(m.netmask, m2.netmask, 4) || memcmp(m.dns, m2.dns, 4)))
    abort();
  if (m.type == BAVY_SMSG_ERROR && strcmp(m.message, m2.message) != 0)
    abort();
}

static void check_chunk(const uint8_t *data, size_t size)
{
  struct bavy_chunk_hdr h;

  if (bavy_chunk_header_parse(data, size, &h) != 0)
    return;
  if (h.total == 0 || h.index >= h.total || h.len == 0 || h.len > BAVY_CHUNK_DATA_MAX ||
      h.data != data + 4 || h.len != size - 4)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* Exact-size heap copy so ASan sees any read past the end. */
  uint8_t *copy = malloc(size ? size : 1);

  if (copy == NULL)
    return 0;
  memcpy(copy, data, size);
  check_client(copy, size);
  check_server(copy, size);
  check_chunk(copy, size);
  free(copy);
  return 0;
}
