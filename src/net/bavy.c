/*
 * bavy: protocol codec. See include/wtrelay/bavy.h.
 */
#include "wtrelay/bavy.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/cursor.h"

static json_t *load_object(const uint8_t *json, size_t len, const char **type)
{
  json_error_t e;
  json_t *root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, &e);
  if (!root)
    return NULL;
  json_t *t = json_is_object(root) ? json_object_get(root, "type") : NULL;
  if (!t || !json_is_string(t)) {
    json_decref(root);
    return NULL;
  }
  *type = json_string_value(t);
  return root;
}

/* Copies the NUL-terminated UTF-8 string src into dst (cap > 0 bytes),
 * truncated at a character boundary: a message cut in the middle of a
 * multi-byte character would be invalid UTF-8 when logged or sent on. */
static void copy_utf8(char *dst, size_t cap, const char *src)
{
  size_t n = strlen(src);
  if (n >= cap) {
    n = cap - 1;
    /* Back off continuation bytes (10xxxxxx) to the start of the cut
     * character, then drop that lead byte too. */
    while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
      n--;
  }
  memcpy(dst, src, n);
  dst[n] = '\0';
}

/* Reads an array of exactly n integers 0..255. */
static int read_bytes(json_t *arr, uint8_t *out, size_t n)
{
  if (!arr || !json_is_array(arr) || json_array_size(arr) != n)
    return -EINVAL;
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_array_get(arr, i);
    if (!json_is_integer(v))
      return -EINVAL;
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > 255)
      return -EINVAL;
    out[i] = (uint8_t)x;
  }
  return 0;
}

int bavy_ctrl_parse(const uint8_t *json, size_t len, struct bavy_ctrl *out)
{
  const char *type;
  memset(out, 0, sizeof(*out));
  if (len > BAVY_CTRL_MAX)
    return -EMSGSIZE;
  json_t *root = load_object(json, len, &type);
  if (!root)
    return -EBADMSG;
  int rc = 0;
  copy_utf8(out->name, sizeof(out->name), type);
  if (strcmp(type, "Register") == 0) {
    out->type = BAVY_MSG_REGISTER;
    rc = read_bytes(json_object_get(root, "mac"), out->mac, 6);
    if (rc == 0) {
      static const uint8_t zero[6];
      if ((out->mac[0] & 1) || memcmp(out->mac, zero, 6) == 0)
        rc = -EINVAL;
    }
  } else if (strcmp(type, "Heartbeat") == 0) {
    out->type = BAVY_MSG_HEARTBEAT;
  } else if (strcmp(type, "Disconnect") == 0) {
    out->type = BAVY_MSG_DISCONNECT;
  } else {
    out->type = BAVY_MSG_UNKNOWN;
  }
  json_decref(root);
  return rc;
}

const char *bavy_ctrl_strerror(int err)
{
  switch (err) {
  case -EMSGSIZE:
    return "oversized control message";
  case -EBADMSG:
    return "invalid control message";
  case -EINVAL:
    return "invalid MAC address";
  default:
    return "bad control message";
  }
}

int bavy_ctrl_parse_server(const uint8_t *json, size_t len, struct bavy_server_msg *out)
{
  const char *type;
  memset(out, 0, sizeof(*out));
  if (len > BAVY_CTRL_MAX)
    return -EMSGSIZE;
  json_t *root = load_object(json, len, &type);
  if (!root)
    return -EBADMSG;
  int rc = 0;
  if (strcmp(type, "Assigned") == 0) {
    out->type = BAVY_SMSG_ASSIGNED;
    if (read_bytes(json_object_get(root, "ip"), out->ip, 4) < 0 ||
        read_bytes(json_object_get(root, "gateway"), out->gateway, 4) < 0 ||
        read_bytes(json_object_get(root, "netmask"), out->netmask, 4) < 0 ||
        read_bytes(json_object_get(root, "dns"), out->dns, 4) < 0)
      rc = -EINVAL;
  } else if (strcmp(type, "HeartbeatAck") == 0) {
    out->type = BAVY_SMSG_HEARTBEAT_ACK;
  } else if (strcmp(type, "Error") == 0) {
    out->type = BAVY_SMSG_ERROR;
    json_t *m = json_object_get(root, "message");
    copy_utf8(out->message, sizeof(out->message), json_is_string(m) ? json_string_value(m) : "");
  } else if (strcmp(type, "PeerList") == 0) {
    out->type = BAVY_SMSG_PEER_LIST;
    json_t *p = json_object_get(root, "peers");
    out->peers = json_is_array(p) ? (uint32_t)json_array_size(p) : 0;
  }
  json_decref(root);
  return rc;
}

static int fmt(char *buf, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fmt(char *buf, size_t cap, const char *f, ...)
{
  va_list ap;
  va_start(ap, f);
  int n = vsnprintf(buf, cap, f, ap);
  va_end(ap);
  return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

#define Q4 "[%u,%u,%u,%u]"
#define A4(a) a[0], a[1], a[2], a[3]

int bavy_write_assigned(char *buf, size_t cap, const uint8_t ip[4], const uint8_t gw[4],
                        const uint8_t netmask[4], const uint8_t dns[4])
{
  return fmt(buf, cap,
             "{\"type\":\"Assigned\",\"ip\":" Q4 ",\"gateway\":" Q4 ",\"netmask\":" Q4
             ",\"dns\":" Q4 "}",
             A4(ip), A4(gw), A4(netmask), A4(dns));
}

int bavy_write_heartbeat_ack(char *buf, size_t cap)
{
  return fmt(buf, cap, "{\"type\":\"HeartbeatAck\"}");
}

int bavy_write_heartbeat(char *buf, size_t cap)
{
  return fmt(buf, cap, "{\"type\":\"Heartbeat\"}");
}

int bavy_write_disconnect(char *buf, size_t cap)
{
  return fmt(buf, cap, "{\"type\":\"Disconnect\"}");
}

int bavy_write_register(char *buf, size_t cap, const uint8_t mac[6])
{
  return fmt(buf, cap, "{\"type\":\"Register\",\"mac\":[%u,%u,%u,%u,%u,%u]}", mac[0], mac[1],
             mac[2], mac[3], mac[4], mac[5]);
}

int bavy_write_error(char *buf, size_t cap, const char *message)
{
  static const char head[] = "{\"type\":\"Error\",\"message\":\"";
  size_t n = sizeof(head) - 1;
  if (cap < n + 3)
    return -ENOSPC;
  memcpy(buf, head, n);
  for (const unsigned char *p = (const unsigned char *)message; *p; p++) {
    char esc[8];
    size_t el;
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*p;
      el = 2;
    } else if (*p < 0x20) {
      el = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
    } else {
      esc[0] = (char)*p;
      el = 1;
    }
    if (n + el + 3 > cap)
      return -ENOSPC;
    memcpy(buf + n, esc, el);
    n += el;
  }
  buf[n++] = '"';
  buf[n++] = '}';
  buf[n] = '\0';
  return (int)n;
}

int bavy_chunk_header_parse(const uint8_t *p, size_t len, struct bavy_chunk_hdr *out)
{
  struct cursor c;
  cursor_init(&c, p, len);
  if (cursor_u16be(&c, &out->chunk_id) < 0 || cursor_u8(&c, &out->index) < 0 ||
      cursor_u8(&c, &out->total) < 0)
    return -ENODATA;
  out->len = cursor_left(&c);
  out->data = p + 4;
  if (out->total == 0 || out->index >= out->total || out->len == 0 ||
      out->len > BAVY_CHUNK_DATA_MAX)
    return -EINVAL;
  return 0;
}

int bavy_chunk_header_write(uint8_t *buf, size_t cap, uint16_t chunk_id, uint8_t index,
                            uint8_t total)
{
  if (cap < 4)
    return -ENOSPC;
  buf[0] = (uint8_t)(chunk_id >> 8);
  buf[1] = (uint8_t)chunk_id;
  buf[2] = index;
  buf[3] = total;
  return 4;
}
