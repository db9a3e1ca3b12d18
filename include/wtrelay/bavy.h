/*
 * bavy: the bavy datagram protocol codec (protocol.md section 1), no I/O.
 *
 * Every datagram payload starts with a type byte: 0x00 control (compact
 * JSON, internally tagged by "type"), 0x01 Ethernet frame, 0x02 chunk.
 * Control input is parsed with jansson (made for untrusted input: depth
 * limit, UTF-8 validation), bounded to BAVY_CTRL_MAX bytes before parsing.
 * Output is written with snprintf so the bytes match the seed exactly.
 */
#ifndef WTRELAY_BAVY_H
#define WTRELAY_BAVY_H

#include <stddef.h>
#include <stdint.h>

#define BAVY_CONTROL 0x00
#define BAVY_FRAME 0x01
#define BAVY_CHUNK 0x02
#define BAVY_CTRL_MAX 4096
#define BAVY_CHUNK_DATA_MAX 900

enum bavy_msg_type {
  BAVY_MSG_UNKNOWN = 0,
  BAVY_MSG_REGISTER,
  BAVY_MSG_HEARTBEAT,
  BAVY_MSG_DISCONNECT,
};

struct bavy_ctrl {
  enum bavy_msg_type type;
  uint8_t mac[6]; /* REGISTER */
  char name[32];  /* the "type" string (truncated) */
};

/* Client -> relay. 0, or -EMSGSIZE (over BAVY_CTRL_MAX), -EBADMSG (not a
 * JSON object with a string "type"), -EINVAL (Register with a bad MAC). */
int bavy_ctrl_parse(const uint8_t *json, size_t len, struct bavy_ctrl *out);
const char *bavy_ctrl_strerror(int err);

enum bavy_server_type {
  BAVY_SMSG_UNKNOWN = 0,
  BAVY_SMSG_ASSIGNED,
  BAVY_SMSG_HEARTBEAT_ACK,
  BAVY_SMSG_ERROR,
  BAVY_SMSG_PEER_LIST,
};

struct bavy_server_msg {
  enum bavy_server_type type;
  uint8_t ip[4], gateway[4], netmask[4], dns[4];
  char message[256];
  uint32_t peers;
};

/* Relay -> client (the native client). Same error convention. */
int bavy_ctrl_parse_server(const uint8_t *json, size_t len, struct bavy_server_msg *out);

/* Writers: JSON only (the caller prepends 0x00). Length or -ENOSPC. */
int bavy_write_assigned(char *buf, size_t cap, const uint8_t ip[4], const uint8_t gw[4],
                        const uint8_t netmask[4], const uint8_t dns[4]);
int bavy_write_heartbeat_ack(char *buf, size_t cap);
int bavy_write_error(char *buf, size_t cap, const char *message);
int bavy_write_register(char *buf, size_t cap, const uint8_t mac[6]);
int bavy_write_heartbeat(char *buf, size_t cap);
int bavy_write_disconnect(char *buf, size_t cap);

struct bavy_chunk_hdr {
  uint16_t chunk_id;
  uint8_t index, total;
  const uint8_t *data; /* borrowed */
  size_t len;
};

/* After the 0x02 byte. -ENODATA when shorter than 4 bytes, -EINVAL on
 * index >= total, total 0, or data length 0 or over 900. */
int bavy_chunk_header_parse(const uint8_t *p, size_t len, struct bavy_chunk_hdr *out);
/* Writes the 4-byte header (after 0x02). Returns 4 or -ENOSPC. */
int bavy_chunk_header_write(uint8_t *buf, size_t cap, uint16_t chunk_id, uint8_t index,
                            uint8_t total);

#endif
