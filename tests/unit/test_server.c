/*
 * test_server: what the server derives from the configuration. The timer
 * heap must hold every timer that can be armed at once: a connection that
 * cannot get its timer has no timeout at all (nat_tcp refuses it, but a
 * heap sized below the bounds refuses real traffic).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "wtrelay/config.h"
#include "wtrelay/server.h"

/* Timers per owner, counted in the modules (grep timer_arm): a QUIC
 * connection, its h3 connection and its relay peer one each per session;
 * one per TCP NAT connection; the fixed ones (relay sweep and aging, lease
 * writer, gateway sweep, ops sweep, certificate poll, two shutdown timers). */
#define PER_SESSION 3
#define PER_TCP_CONN 1
#define FIXED 8

static void check(uint32_t sessions, uint32_t tcp)
{
  struct config c;
  config_defaults(&c);
  c.max_sessions = sessions;
  c.max_tcp_conns = tcp;
  uint64_t need = (uint64_t)sessions * PER_SESSION + (uint64_t)tcp * PER_TCP_CONN + FIXED;
  cr_assert_geq(server_timers_needed(&c), need,
                "sessions=%u tcp=%u: heap of %u timers, every bound at once needs %llu", sessions,
                tcp, server_timers_needed(&c), (unsigned long long)need);
}

Test(server, timer_heap_holds_every_bound_at_once)
{
  struct config c;
  config_defaults(&c);
  check(c.max_sessions, c.max_tcp_conns); /* the defaults */
  check(1, 65000);                        /* few sessions, the most TCP connections */
  check(100000, 0);                       /* TCP NAT off */
  check(1, 0);
}
