/*
 * dns: DNS header and first question. See include/wtrelay/dns.h.
 *
 * Only the header and the first question are read, through a cursor; the
 * rest of the message (further questions, answers with their compression
 * pointers) is never looked at, so a forwarder can match any upstream answer
 * to its query without a full DNS parser. The question name is copied into
 * struct dns_question in wire form, lowercased, bounded by DNS_NAME_MAX
 * before each byte is copied.
 */
#include "wtrelay/dns.h"

#include <errno.h>
#include <string.h>

#include "wtrelay/cursor.h"

#define DNS_FLAG_QR 0x8000
#define DNS_LABEL_MAX 63
#define DNS_LABEL_PTR 0xc0 /* top two bits of a compression pointer */

static uint8_t lower(uint8_t ch)
{
  return ch >= 'A' && ch <= 'Z' ? (uint8_t)(ch + 32) : ch;
}

/* QNAME as uncompressed labels into q->qname. Pointers (0xc0..0xff) and the
 * reserved label types (64..191) are refused, as is a name longer than
 * DNS_NAME_MAX bytes counting its final 0 label. */
static int parse_name(struct cursor *c, struct dns_question *q)
{
  size_t n = 0;

  for (;;) {
    uint8_t l;
    const uint8_t *label;

    if (cursor_u8(c, &l) < 0)
      return -EINVAL;
    if (l == 0)
      break;
    if ((l & DNS_LABEL_PTR) == DNS_LABEL_PTR || l > DNS_LABEL_MAX)
      return -EINVAL;
    /* this label plus at least the final 0 must still fit */
    if (n + 1 + l + 1 > DNS_NAME_MAX)
      return -EINVAL;
    if (cursor_bytes(c, l, &label) < 0)
      return -EINVAL;
    q->qname[n++] = l;
    for (size_t i = 0; i < l; i++)
      q->qname[n++] = lower(label[i]);
  }
  q->qname[n++] = 0;
  q->qname_len = (uint8_t)n;
  return 0;
}

int dns_parse_question(const uint8_t *p, size_t len, struct dns_question *q)
{
  struct cursor c;
  uint16_t nscount, arcount;

  memset(q, 0, sizeof(*q));
  cursor_init(&c, p, len);
  if (cursor_u16be(&c, &q->id) < 0 || cursor_u16be(&c, &q->flags) < 0 ||
      cursor_u16be(&c, &q->qdcount) < 0 || cursor_u16be(&c, &q->ancount) < 0 ||
      cursor_u16be(&c, &nscount) < 0 || cursor_u16be(&c, &arcount) < 0)
    return -EINVAL;
  if (q->qdcount == 0)
    return -EINVAL;
  if (parse_name(&c, q) < 0)
    return -EINVAL;
  if (cursor_u16be(&c, &q->qtype) < 0 || cursor_u16be(&c, &q->qclass) < 0)
    return -EINVAL;
  q->end = c.off;
  return 0;
}

bool dns_same_question(const struct dns_question *a, const struct dns_question *b)
{
  return a->qname_len == b->qname_len && a->qtype == b->qtype && a->qclass == b->qclass &&
         memcmp(a->qname, b->qname, a->qname_len) == 0;
}

uint16_t dns_get_id(const uint8_t *p)
{
  return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

void dns_set_id(uint8_t *p, uint16_t id)
{
  p[0] = (uint8_t)(id >> 8);
  p[1] = (uint8_t)id;
}

bool dns_is_response(const struct dns_question *q)
{
  return (q->flags & DNS_FLAG_QR) != 0;
}
