/*
 * fuzz_dns: the DNS header and question parser (dns.c) on bytes from a guest
 * (queries) or an upstream resolver (answers).
 *
 * Invariants checked: the parser never reads past the input; a parsed
 * question is the same as itself; its qname is 1..255 bytes of labels of
 * 1..63 bytes without uppercase ASCII, ending in the 0 label, and the
 * question ends inside the input; the same message cut right after the
 * question parses to the same question; a query rebuilt from the parsed
 * fields parses back to the same question; setting and getting the ID
 * round-trips and changes nothing else.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/dns.h"

static void check_qname(const struct dns_question *q)
{
  size_t i = 0;

  if (q->qname_len < 1 || q->qname_len > DNS_NAME_MAX || q->qname[q->qname_len - 1] != 0)
    abort();
  while (q->qname[i] != 0) {
    uint8_t l = q->qname[i];
    if (l > 63 || i + 1 + l >= q->qname_len)
      abort();
    for (size_t k = i + 1; k <= i + l; k++)
      if (q->qname[k] >= 'A' && q->qname[k] <= 'Z')
        abort();
    i += 1 + l;
  }
  if (i + 1 != q->qname_len)
    abort();
}

static void check_rebuilt(const struct dns_question *q)
{
  uint8_t b[DNS_HDR_LEN + DNS_NAME_MAX + 4];
  struct dns_question r;
  size_t n = 0;

  memset(b, 0, DNS_HDR_LEN);
  b[5] = 1; /* qdcount */
  n = DNS_HDR_LEN;
  memcpy(b + n, q->qname, q->qname_len);
  n += q->qname_len;
  b[n++] = (uint8_t)(q->qtype >> 8);
  b[n++] = (uint8_t)q->qtype;
  b[n++] = (uint8_t)(q->qclass >> 8);
  b[n++] = (uint8_t)q->qclass;
  if (dns_parse_question(b, n, &r) != 0 || !dns_same_question(q, &r) || r.end != n)
    abort();
}

static void check_id(uint8_t *copy, size_t size, const uint8_t *orig)
{
  uint16_t id = dns_get_id(copy);
  uint16_t other = (uint16_t)~id;

  dns_set_id(copy, other);
  if (dns_get_id(copy) != other || memcmp(copy + 2, orig + 2, size - 2) != 0)
    abort();
  dns_set_id(copy, id);
  if (memcmp(copy, orig, size) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* Exact-size heap copy so ASan sees any read past the end. */
  uint8_t *copy = malloc(size ? size : 1);
  struct dns_question q, q2;
  int rc;

  if (copy == NULL)
    return 0;
  memcpy(copy, data, size);
  if (size >= 2)
    check_id(copy, size, data);
  rc = dns_parse_question(copy, size, &q);
  if (rc != 0 && rc != -EINVAL)
    abort();
  if (rc == 0) {
    if (!dns_same_question(&q, &q) || q.qdcount == 0 || q.end > size ||
        q.end != DNS_HDR_LEN + (size_t)q.qname_len + 4 || q.id != dns_get_id(copy) ||
        dns_is_response(&q) != ((copy[2] & 0x80) != 0))
      abort();
    check_qname(&q);
    if (dns_parse_question(copy, q.end, &q2) != 0 || !dns_same_question(&q, &q2) || q2.id != q.id ||
        q2.flags != q.flags || q2.end != q.end)
      abort();
    check_rebuilt(&q);
  }
  free(copy);
  return 0;
}
