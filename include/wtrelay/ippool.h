/*
 * ippool: the IPv4 address pool of one room (virtual LAN).
 *
 * A fixed table, one entry per address of the range, allocated at init.
 * Addresses are handed out from the top of the range downward, as the seed
 * does. A MAC keeps its address after its lease ends for as long as nobody
 * else needs it, so a VM that reconnects gets the same IP; when every
 * address has been used, the one released longest ago is reclaimed. A MAC
 * with a live lease is refused (-EBUSY): no session hijacks another.
 * Shared by Register/Assigned and (later) DHCP.
 */
#ifndef WTRELAY_IPPOOL_H
#define WTRELAY_IPPOOL_H

#include <stdbool.h>
#include <stdint.h>

struct ippool_entry {
  uint8_t mac[6];
  bool used_ever; /* mac is meaningful */
  bool live;
  uint64_t released_ns;
};

struct ippool {
  uint32_t first, last; /* host order, inclusive */
  uint32_t n;
  struct ippool_entry *e;
};

int ippool_init(struct ippool *p, uint32_t first_host, uint32_t last_host);
void ippool_fini(struct ippool *p);
/* 0 with *ip_out, -EBUSY (MAC holds a live lease), -ENOSPC (exhausted). */
int ippool_acquire(struct ippool *p, const uint8_t mac[6], uint32_t *ip_out, uint64_t now);
void ippool_release(struct ippool *p, uint32_t ip, uint64_t now);
/* Whether ip holds a live lease (its MAC in mac_out, may be NULL). */
bool ippool_lookup_ip(const struct ippool *p, uint32_t ip, uint8_t mac_out[6]);
/* Whether mac holds a live lease (its address in *ip). */
bool ippool_lookup_mac(const struct ippool *p, const uint8_t mac[6], uint32_t *ip);

#endif
