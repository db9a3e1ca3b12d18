/*
 * fuzz_relay_datagram: datagram payloads from several peers into the relay
 * (relay.c: control messages, 0x01 frames, 0x02 chunks, reassembly in the
 * chunk pool, port security, the switch). The sessions are stand-ins
 * without a transport, so frames stop at the destination port (whose
 * maximum datagram is 0) after the switch decided where they go.
 *
 * Input: records of [peer byte][len byte][len bytes][clock step byte]; the
 * peer byte's low 2 bits pick one of four sessions (three in room "/", one
 * in "/b"); the clock advances by the step in 50 ms units and the relay's
 * timers run (sweeps, MAC aging, chunk expiry). Four sessions are
 * registered before the input starts. Invariants: the chunk pool's slots
 * held by owners equal the slots in use, and after every session ends, the
 * switch holds no port or MAC and the pool holds no slot.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wtrelay/config.h"
#include "wtrelay/log.h"
#include "wtrelay/relay.h"

#define NPEERS 4

static uint32_t slots_in_use(const struct chunk_pool *cp)
{
  uint32_t n = 0;
  for (uint32_t i = 0; i < cp->used; i++)
    n += cp->slots[i].owner != NULL;
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct config cfg;
  static struct timer_heap th;
  static struct relay r;
  static struct session sess[NPEERS];
  uint64_t now = 1000000000ull;

  log_set_level(LOG_ERROR);
  config_defaults(&cfg);
  cfg.max_sessions = 8;
  cfg.max_rooms = 4;
  cfg.max_reassembly = 2;
  cfg.mac_aging_s = 2;
  if (timer_heap_init(&th, 64) < 0 || relay_init(&r, &cfg, &th, &now) < 0)
    abort();
  memset(sess, 0, sizeof(sess));
  for (int i = 0; i < NPEERS; i++) {
    snprintf(sess[i].path, sizeof(sess[i].path), "%s", i == 3 ? "/b" : "/");
    if (relay_session_open(&r, &sess[i], 0) != 200)
      abort();
    char reg[80];
    int n =
        snprintf(reg, sizeof(reg), "%c{\"type\":\"Register\",\"mac\":[82,84,0,0,0,%d]}", 0, i + 1);
    relay_on_datagram(&r, sess[i].app_data, (const uint8_t *)reg, (size_t)n);
  }

  size_t off = 0;
  while (off + 2 <= size) {
    unsigned peer = data[off] & 3;
    size_t len = data[off + 1];
    off += 2;
    if (len > size - off)
      len = size - off;
    /* exact-size copy so ASan sees reads past the datagram */
    uint8_t *d = malloc(len ? len : 1);
    if (!d)
      abort();
    memcpy(d, data + off, len);
    off += len;
    if (sess[peer].app_data)
      relay_on_datagram(&r, sess[peer].app_data, d, len);
    free(d);
    if (off < size)
      now += (uint64_t)data[off++] * 50000000ull;
    timer_run(&th, now);
    uint32_t held = 0;
    for (uint32_t i = 0; i < r.max_peers; i++)
      if (r.peers[i].used)
        held += r.peers[i].chunks.n;
    if (held != slots_in_use(&r.chunks))
      abort();
  }

  for (int i = 0; i < NPEERS; i++)
    if (sess[i].app_data)
      relay_session_closed(&r, &sess[i], 0, "fuzz");
  if (r.sw.nmacs != 0 || slots_in_use(&r.chunks) != 0 || r.npeers != 0)
    abort();
  for (uint32_t d = 0; d < r.sw.p.max_domains; d++)
    if (r.sw.domains[d].nports != 0 || r.sw.domains[d].nmacs != 0)
      abort();
  relay_fini(&r);
  timer_heap_fini(&th);
  return 0;
}
