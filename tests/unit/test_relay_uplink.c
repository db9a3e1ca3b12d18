/*
 * relay.c with several workers: two relays (workers 0 and 1 of 2) sharing
 * one room directory, their uplinks' ring pushes replaced by a recorder.
 * A room copy sends a frame toward another worker only while that worker
 * has a copy of the room (the directory's copy set): a flood in a room
 * that lives on one worker costs no ring copy, and so no no_room drop on
 * the idle worker. Sessions are stand-ins without a transport, as in
 * test_relay.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "wtrelay/config.h"
#include "wtrelay/log.h"
#include "wtrelay/relay.h"
#include "wtrelay/roomdir.h"
#include "wtrelay/timeunit.h"

#define CLIENT 0xffff00010a510102ull /* 10.81.1.2 */

static struct config cfg;
static struct roomdir dir;
static struct timer_heap th[2];
static struct relay r[2];
static struct session sess[2][4];
static uint64_t now;
/* what each worker's uplinks pushed, by target worker */
static uint32_t pushed[2][2];
static uint32_t last_gid[2];

static int record_send(void *ctx, uint32_t to, uint32_t gid, const struct switch_frame *f)
{
  uint32_t self = (uint32_t)(uintptr_t)ctx;
  (void)f;
  cr_assert_lt(to, 2);
  cr_assert_neq(to, self, "an uplink toward its own worker");
  pushed[self][to]++;
  last_gid[self] = gid;
  return 0;
}

static void start(void)
{
  log_set_level(LOG_ERROR);
  config_defaults(&cfg);
  cfg.max_sessions = 4;
  now = 1000 * NS_PER_S;
  memset(sess, 0, sizeof(sess));
  memset(pushed, 0, sizeof(pushed));
  cr_assert_eq(roomdir_init(&dir, cfg.max_rooms), 0);
  for (uint32_t w = 0; w < 2; w++) {
    cr_assert_eq(timer_heap_init(&th[w], 1024), 0);
    cr_assert_eq(relay_init(&r[w], &cfg, &th[w], &now), 0);
    relay_set_roomdir(&r[w], &dir);
    cr_assert_eq(relay_set_uplinks(&r[w], w, 2, record_send, (void *)(uintptr_t)w), 0);
  }
}

static void stop(void)
{
  for (int w = 1; w >= 0; w--) {
    for (int i = 0; i < 4; i++)
      if (sess[w][i].app_data)
        relay_session_closed(&r[w], &sess[w][i], 0, "end");
    relay_fini(&r[w]); /* worker 0 last: its lease table is the directory's */
    timer_heap_fini(&th[w]);
  }
  cr_assert_eq(dir.nrooms, 0);
  roomdir_fini(&dir);
}

/* Session i on worker w opens /lan and registers MAC 52:54:00:00:w:i. */
static void join(uint32_t w, int i)
{
  memset(&sess[w][i], 0, sizeof(sess[w][i]));
  snprintf(sess[w][i].path, sizeof(sess[w][i].path), "/lan");
  cr_assert_eq(relay_session_open(&r[w], &sess[w][i], CLIENT), 200);
  char m[80];
  int n = snprintf(m, sizeof(m), "%c{\"type\":\"Register\",\"mac\":[82,84,0,0,%u,%d]}", 0, w, i);
  struct relay_peer *p = sess[w][i].app_data;
  relay_on_datagram(&r[w], p, (const uint8_t *)m, (size_t)n);
  cr_assert(p->registered, "session %d on worker %u did not register", i, w);
}

static void leave(uint32_t w, int i)
{
  relay_session_closed(&r[w], &sess[w][i], 0, "bye");
  cr_assert_null(sess[w][i].app_data);
}

/* A broadcast frame (local experimental ethertype: the LAN guard passes
 * it) from session i on worker w. */
static void broadcast(uint32_t w, int i)
{
  uint8_t d[1 + 60];
  memset(d, 0, sizeof(d));
  d[0] = 0x01;
  memset(d + 1, 0xff, 6);
  const uint8_t src[6] = {0x52, 0x54, 0, 0, (uint8_t)w, (uint8_t)i};
  memcpy(d + 7, src, 6);
  d[13] = 0x88;
  d[14] = 0xb5;
  relay_on_datagram(&r[w], sess[w][i].app_data, d, sizeof(d));
}

Test(relay_uplink, flood_reaches_only_workers_with_a_copy, .init = start, .fini = stop)
{
  join(0, 0);
  uint32_t gid = r[0].rooms[0].gid;
  cr_assert(roomdir_copy_has(&dir, gid, 0));
  cr_assert_not(roomdir_copy_has(&dir, gid, 1));

  /* the room lives on worker 0 only: no ring copy toward worker 1 */
  for (int k = 0; k < 5; k++)
    broadcast(0, 0);
  cr_assert_eq(pushed[0][1], 0, "a flood was copied toward a worker without the room");
  cr_assert_eq(r[0].ctr.uplink_skipped, 5);
  /* the switch counts the skipped copies neither as out nor as failed */
  cr_assert_eq(r[0].sw.kind[SWITCH_PORT_UPLINK].frames_out, 0);
  cr_assert_eq(r[0].sw.ctr.deliver_failed, 0);

  /* worker 1 makes its copy: floods go there once each, with the room's ring id */
  join(1, 0);
  cr_assert(roomdir_copy_has(&dir, gid, 1));
  broadcast(0, 0);
  cr_assert_eq(pushed[0][1], 1);
  cr_assert_eq(last_gid[0], r[0].rooms[0].ring_id);
  cr_assert_eq(r[0].sw.kind[SWITCH_PORT_UPLINK].frames_out, 1);
  broadcast(1, 0);
  cr_assert_eq(pushed[1][0], 1, "worker 1's copy floods toward worker 0's");
  cr_assert_eq(r[0].ctr.uplink_skipped, 5);

  /* worker 1's last session leaves: its copy goes, and so does its bit */
  leave(1, 0);
  cr_assert_not(roomdir_copy_has(&dir, gid, 1));
  broadcast(0, 0);
  cr_assert_eq(pushed[0][1], 1, "a flood toward a copy that ended");
  cr_assert_eq(r[0].ctr.uplink_skipped, 6);

  /* the last copy anywhere: the room leaves the directory with its set */
  leave(0, 0);
  cr_assert_eq(dir.nrooms, 0);
  cr_assert_not(roomdir_copy_has(&dir, gid, 0));
}

/* Unicast to a MAC learned behind an uplink stops too once that worker's
 * copy has gone (the MAC went with it). */
Test(relay_uplink, unicast_behind_a_gone_copy, .init = start, .fini = stop)
{
  join(0, 0);
  join(1, 0);
  broadcast(1, 0); /* worker 0 learns 52:54:00:00:01:00 behind its uplink */
  uint8_t d[1 + 60];
  memset(d, 0, sizeof(d));
  d[0] = 0x01;
  const uint8_t dst[6] = {0x52, 0x54, 0, 0, 1, 0}, src[6] = {0x52, 0x54, 0, 0, 0, 0};
  memcpy(d + 1, dst, 6);
  memcpy(d + 7, src, 6);
  d[13] = 0x88;
  d[14] = 0xb5;
  /* the switch only learns what comes in from the uplink: feed the frame
   * worker 1 pushed into worker 0's copy as the ring would */
  uint8_t f[60];
  memset(f, 0, sizeof(f));
  memset(f, 0xff, 6);
  memcpy(f + 6, dst, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  cr_assert_geq(relay_uplink_input(&r[0], 1, r[0].rooms[0].ring_id, f, sizeof(f)), 0);
  relay_on_datagram(&r[0], sess[0][0].app_data, d, sizeof(d));
  cr_assert_eq(pushed[0][1], 1, "unicast to the MAC behind the uplink");
  leave(1, 0);
  relay_on_datagram(&r[0], sess[0][0].app_data, d, sizeof(d));
  cr_assert_eq(pushed[0][1], 1, "unicast toward a worker whose copy has gone");
  cr_assert_eq(r[0].ctr.uplink_skipped, 1);
}
