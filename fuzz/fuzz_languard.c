/*
 * fuzz_languard: frame heads from a session into the LAN guards
 * (languard.c), as a strict port and as an --allow-any-src-mac port whose
 * bindings are the first bytes of the input. Invariants: the verdict is a
 * known one; a strict port passes an ARP frame only with the port's MAC
 * as sender and its address (or 0.0.0.0 in a request) as sender IP, and an
 * IPv4 frame only from its address or as a DHCP client; no verdict ever
 * lets the gateway's address through ARP.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/languard.h"

static const uint8_t port_mac[6] = {0x52, 0x54, 0x00, 0xaa, 0x00, 0x01};
static const uint32_t port_ip = 0x0a0002fe;

static const struct languard_params lp = {
    .gateway_ip = 0x0a000202,
    .dns_ip = 0x0a000203,
    .gateway_mac = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02},
};

static uint32_t rd32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* An odd address is "bound", an even one not: both answers occur. */
static bool bound_odd(void *ctx, const uint8_t mac[6], uint32_t ip)
{
  (void)ctx;
  (void)mac;
  return ip & 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  uint8_t *f = malloc(size ? size : 1); /* exact size: ASan sees overreads */
  if (!f)
    abort();
  memcpy(f, data, size);
  struct languard_port strict = {.mac = port_mac, .ip = port_ip};
  struct languard_port any = {
      .mac = port_mac, .ip = port_ip, .any_mac = true, .bound = bound_odd, .ctx = NULL};
  enum languard_verdict v = languard_check(&lp, &strict, f, size);
  enum languard_verdict w = languard_check(&lp, &any, f, size);
  if ((unsigned)v >= LANGUARD_NVERDICTS || (unsigned)w >= LANGUARD_NVERDICTS)
    abort();
  if (size >= 14 + 28 && f[12] == 0x08 && f[13] == 0x06) {
    uint32_t spa = rd32(f + 14 + 14);
    if (v == LANGUARD_PASS &&
        (memcmp(f + 14 + 8, port_mac, 6) != 0 || (spa != port_ip && spa != 0)))
      abort();
    if ((v == LANGUARD_PASS || w == LANGUARD_PASS) && (spa == lp.gateway_ip || spa == lp.dns_ip))
      abort();
  }
  if (size >= 14 + 20 && f[12] == 0x08 && f[13] == 0x00 && v == LANGUARD_PASS) {
    uint32_t src = rd32(f + 14 + 12);
    if (src != port_ip && !(src == 0 && f[14 + 9] == 17))
      abort();
  }
  free(f);
  return 0;
}
