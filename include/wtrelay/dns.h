/*
 * dns: just enough of the DNS wire format (RFC 1035) for a forwarder that
 * matches answers to queries, no I/O, no state.
 *
 * dns_parse_question() reads the 12-byte header and the first question:
 * QNAME as uncompressed labels (a compression pointer in a question is an
 * error), each label 1..63 bytes, the whole name at most 255 bytes on the
 * wire, then QTYPE and QCLASS. The name is kept in wire form with ASCII
 * letters lowercased, so two questions compare with memcmp (DNS names are
 * case-insensitive; 0x20-randomised upstream answers still match).
 */
#ifndef WTRELAY_DNS_H
#define WTRELAY_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_HDR_LEN 12
#define DNS_NAME_MAX 255

struct dns_question {
  uint16_t id;
  uint16_t flags; /* QR, opcode, AA, TC, RD, RA, Z, RCODE as on the wire */
  uint16_t qdcount, ancount;
  uint8_t qname[DNS_NAME_MAX]; /* wire form, lowercased, ends with the 0 label */
  uint8_t qname_len;
  uint16_t qtype, qclass;
  size_t end; /* offset just after the first question */
};

/* 0, or -EINVAL (shorter than a header, qdcount 0, bad or compressed name,
 * truncated question). Never reads outside p[0..len). */
int dns_parse_question(const uint8_t *p, size_t len, struct dns_question *q);
/* True when both carry the same first question (name, type, class). */
bool dns_same_question(const struct dns_question *a, const struct dns_question *b);
/* Reads / overwrites the ID of a message of at least 2 bytes. */
uint16_t dns_get_id(const uint8_t *p);
void dns_set_id(uint8_t *p, uint16_t id);
/* True when the QR bit (response) is set; the message must have a header. */
bool dns_is_response(const struct dns_question *q);

#endif
