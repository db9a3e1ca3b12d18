/*
 * /status and / end to end: the real relay with --workers 2, two native
 * sessions in two rooms, one on each worker (a session that lands on the
 * first one's worker is closed and opened again from a new socket, so
 * the kernel's 4-tuple hash places it anew), each registering, sending
 * heartbeats and frames. /status must parse as JSON and list both
 * sessions with their rooms, MACs, IPs, frames and bytes each way
 * equal to what the clients sent and received and no NAT flows (worker 1's snapshot is
 * filled every 100 ms while someone looks: polled until it matches);
 * limit=1 gives one session and the total 2, offset=1 the other one; a
 * room name with quotes, a backslash, markup characters and a byte that
 * is no UTF-8 comes back escaped; a bad query is 400; / is an HTML page.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wtrelay/log.h"
#include "wtrelay/wtc.h"

#include "relay_proc.h"

#define RESP_MAX (1u << 20)

/* The hostile room: what the client asks for, and what /status must
 * give back once decoded (the 0xff byte as U+FFFD). */
static const char EVIL[] = "/r\"<b>\\\xff&x";
static const char EVIL_JSON[] = "/r\"<b>\\\xef\xbf\xbd&x";

struct client {
  struct wtc c;
  struct wtc_session *s;
  bool live;
  uint8_t mac[6];
  uint64_t frames_got, bytes_got;
  uint64_t frames_sent, bytes_sent;
};

static void on_frame(void *user, struct wtc_session *s, const uint8_t *f, size_t len)
{
  struct client *cl = user;
  (void)s;
  (void)f;
  cl->frames_got++;
  cl->bytes_got += len;
}

static const struct wtc_ops ops = {.on_frame = on_frame};

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Turns the live clients' loops for ms milliseconds. */
static void run_for(struct client *cl, uint32_t n, uint64_t ms)
{
  uint64_t end = now_ms() + ms;
  while (now_ms() < end) {
    for (uint32_t i = 0; i < n; i++)
      if (cl[i].live)
        wtc_poll(&cl[i].c, 0);
    usleep(500);
  }
}

/* GET path: the status code; the body (NUL-terminated) into body. */
static int http_get(const struct relay_proc *rp, const char *path, char *body, size_t cap)
{
  char *buf = malloc(RESP_MAX);
  cr_assert_not_null(buf);
  relay_proc_get(rp, path, buf, RESP_MAX);
  int code = 0;
  sscanf(buf, "HTTP/1.1 %d", &code);
  const char *b = strstr(buf, "\r\n\r\n");
  cr_assert_not_null(b, "no response head from %s", path);
  snprintf(body, cap, "%s", b + 4);
  free(buf);
  return code;
}

/* GET path as JSON (must be 200 and parse). */
static json_t *get_json(const struct relay_proc *rp, const char *path, char *raw, size_t cap)
{
  cr_assert_eq(http_get(rp, path, raw, cap), 200, "GET %s", path);
  json_error_t err;
  json_t *j = json_loads(raw, 0, &err);
  cr_assert_not_null(j, "%s is no JSON: %s (%s)", path, err.text, raw);
  return j;
}

static long long jint(json_t *o, const char *key)
{
  json_t *v = json_object_get(o, key);
  cr_assert(json_is_integer(v), "no integer %s", key);
  return json_integer_value(v);
}

static const char *jstr(json_t *o, const char *key)
{
  json_t *v = json_object_get(o, key);
  cr_assert(json_is_string(v), "no string %s", key);
  return json_string_value(v);
}

/* Worker w's sessions (/metrics: wtrelay_worker_sessions). */
static int worker_sessions(const struct relay_proc *rp, int w)
{
  char text[1 << 16];
  relay_proc_metrics(rp, text, sizeof(text));
  char series[64];
  snprintf(series, sizeof(series), "wtrelay_worker_sessions{worker=\"%d\"}", w);
  return (int)relay_proc_metric(text, series);
}

/* Opens and registers client k in room path with MAC ...:0k; true once
 * registered. */
static bool open_client(struct client *cl, uint32_t k, const struct relay_proc *rp,
                        const char *path)
{
  struct client *c = &cl[k];
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/", rp->port);
  memset(c, 0, sizeof(*c));
  cr_assert_eq(wtc_init(&c->c, url, rp->hash, 1, &ops, c), 0);
  cr_assert_eq(wtc_open_path(&c->c, path, &c->s), 0);
  c->live = true;
  const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x5a, 0x00, (uint8_t)(k + 1)};
  memcpy(c->mac, mac, 6);
  uint64_t end = now_ms() + 10000;
  bool asked = false;
  while (now_ms() < end && c->s->state != WTC_REGISTERED && c->s->state != WTC_FAILED &&
         c->s->state != WTC_CLOSED) {
    if (!asked && c->s->state == WTC_OPEN) {
      cr_assert_eq(wtc_register(c->s, c->mac), 0);
      asked = true;
    }
    run_for(cl, 2, 2);
  }
  return c->s->state == WTC_REGISTERED;
}

static void close_client(struct client *cl, uint32_t k)
{
  wtc_close(cl[k].s, 0, "again");
  run_for(cl, 2, 100);
  cl[k].live = false;
  wtc_fini(&cl[k].c);
}

/* Waits until the workers hold `total` sessions; worker 0's count. */
static int settle(struct client *cl, const struct relay_proc *rp, int total)
{
  for (int i = 0; i < 100; i++) {
    int w0 = worker_sessions(rp, 0), w1 = worker_sessions(rp, 1);
    if (w0 + w1 == total)
      return w0;
    run_for(cl, 2, 50);
  }
  cr_assert_fail("the workers never held %d sessions", total);
  return -1;
}

static void send_frames(struct client *c, uint32_t count, size_t len, uint16_t type)
{
  uint8_t f[256];
  memset(f, 0xff, 6);
  memcpy(f + 6, c->mac, 6);
  f[12] = (uint8_t)(type >> 8);
  f[13] = (uint8_t)type;
  for (size_t i = 14; i < len; i++)
    f[i] = (uint8_t)i;
  for (uint32_t i = 0; i < count; i++) {
    cr_assert_eq(wtc_send_frame(c->s, f, len), 0);
    c->frames_sent++;
    c->bytes_sent += len;
  }
}

/* An ARP request for the gateway: the gateway answers, so the session
 * has a frame out too. */
static void send_arp(struct client *c)
{
  uint8_t f[60] = {0};
  memset(f, 0xff, 6);
  memcpy(f + 6, c->mac, 6);
  const uint8_t hdr[8] = {0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4};
  memcpy(f + 12, hdr, 8);
  f[21] = 1; /* request */
  memcpy(f + 22, c->mac, 6);
  memcpy(f + 28, c->s->ip, 4);
  memcpy(f + 38, c->s->gateway, 4);
  cr_assert_eq(wtc_send_frame(c->s, f, sizeof(f)), 0);
  c->frames_sent++;
  c->bytes_sent += sizeof(f);
}

/* The session of /status's list with this MAC, NULL when absent. */
static json_t *session_of(json_t *st, const uint8_t mac[6])
{
  char m[32];
  snprintf(m, sizeof(m), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
           mac[5]);
  json_t *ss = json_object_get(st, "sessions"), *x;
  size_t i;
  json_array_foreach(ss, i, x)
  {
    if (strcmp(jstr(x, "mac"), m) == 0)
      return x;
  }
  return NULL;
}

/* The session as /status lists it matches what its client did. */
static bool matches(json_t *x, const struct client *c)
{
  return x && jint(x, "frames_in") == (long long)c->frames_sent &&
         jint(x, "bytes_in") == (long long)c->bytes_sent &&
         jint(x, "frames_out") == (long long)c->frames_got &&
         jint(x, "bytes_out") == (long long)c->bytes_got;
}

Test(status, sessions_rooms_paging_escaping, .timeout = 120)
{
  struct relay_proc rp;
  log_set_level(LOG_WARN);
  const char *argv[] = {"--workers", "2", "--room-burst", "64", "--room-rate", "100", NULL};
  relay_proc_start(&rp, true, argv);
  struct client *cl = calloc(2, sizeof(*cl));
  char *raw = malloc(RESP_MAX);
  cr_assert(cl && raw);

  cr_assert(open_client(cl, 0, &rp, "/alpha"), "client 0 did not register");
  int w_a = settle(cl, &rp, 1) == 1 ? 0 : 1;
  int w_b = -1;
  for (int attempt = 0; attempt < 16 && w_b < 0; attempt++) {
    cr_assert(open_client(cl, 1, &rp, EVIL), "client 1 did not register (attempt %d)", attempt);
    if (settle(cl, &rp, 2) == 1) { /* one on each worker */
      w_b = 1 - w_a;
      break;
    }
    close_client(cl, 1);
    settle(cl, &rp, 1);
  }
  cr_assert_geq(w_b, 0, "16 sockets and the second session never on the other worker");

  for (int round = 0; round < 2; round++) {
    cr_assert_eq(wtc_heartbeat(cl[0].s), 0);
    cr_assert_eq(wtc_heartbeat(cl[1].s), 0);
    send_frames(&cl[0], 5, 100, 0x88b5);
    send_frames(&cl[1], 3, 80, 0x88b5);
    send_arp(&cl[0]);
    send_arp(&cl[1]);
    run_for(cl, 2, 100);
  }
  run_for(cl, 2, 300);

  /* until worker 1's snapshot has caught up (100 ms while wanted) */
  json_t *st = NULL;
  for (int i = 0; i < 50; i++) {
    if (st)
      json_decref(st);
    st = get_json(&rp, "/status", raw, RESP_MAX);
    if (matches(session_of(st, cl[0].mac), &cl[0]) && matches(session_of(st, cl[1].mac), &cl[1]))
      break;
    run_for(cl, 2, 100);
  }
  json_t *a = session_of(st, cl[0].mac), *b = session_of(st, cl[1].mac);
  cr_assert(a && b, "a session missing: %s", raw);
  cr_assert(matches(a, &cl[0]) && matches(b, &cl[1]),
            "frames and bytes differ from the clients' (sent %llu/%llu, got %llu/%llu and "
            "sent %llu/%llu, got %llu/%llu): %s",
            (unsigned long long)cl[0].frames_sent, (unsigned long long)cl[0].bytes_sent,
            (unsigned long long)cl[0].frames_got, (unsigned long long)cl[0].bytes_got,
            (unsigned long long)cl[1].frames_sent, (unsigned long long)cl[1].bytes_sent,
            (unsigned long long)cl[1].frames_got, (unsigned long long)cl[1].bytes_got, raw);
  cr_assert_eq(cl[0].frames_sent, 12);
  cr_assert(cl[0].frames_got >= 2 && cl[1].frames_got >= 2, "no ARP replies");
  cr_assert_str_eq(jstr(a, "room"), "/alpha");
  cr_assert_str_eq(jstr(b, "room"), EVIL_JSON);
  cr_assert_str_eq(jstr(a, "state"), "registered");
  cr_assert_eq(jint(a, "worker"), w_a);
  cr_assert_eq(jint(b, "worker"), w_b);
  cr_assert_neq(jint(a, "id"), jint(b, "id"));
  for (int k = 0; k < 2; k++) {
    json_t *x = k ? b : a;
    char ip[16];
    snprintf(ip, sizeof(ip), "%u.%u.%u.%u", cl[k].s->ip[0], cl[k].s->ip[1], cl[k].s->ip[2],
             cl[k].s->ip[3]);
    cr_assert_str_eq(jstr(x, "ip"), ip);
    cr_assert(strncmp(jstr(x, "remote"), "127.0.0.1:", 10) == 0, "remote %s", jstr(x, "remote"));
    cr_assert_lt(jint(x, "age_s"), 60);
    /* ARP to the gateway only: no NAT flows (tests/netns/test_status_nat.sh
     * makes real ones) */
    json_t *nf = json_object_get(x, "nat_flows");
    cr_assert(json_is_object(nf) && jint(nf, "udp") == 0 && jint(nf, "icmp") == 0 &&
                  jint(nf, "tcp") == 0,
              "nat_flows of a session without flows");
  }
  /* the hostile name is escaped in the raw text: no markup, no raw byte */
  cr_assert(strstr(raw, "\\u003cb\\u003e") && !strstr(raw, "<b>") && !strchr(raw, '\xff'),
            "room name not escaped: %s", raw);
  cr_assert_eq(jint(st, "sessions_total"), 2);
  cr_assert_eq(jint(st, "rooms_total"), 2);
  cr_assert_eq(json_array_size(json_object_get(st, "workers")), 2);
  cr_assert_eq(json_array_size(json_object_get(st, "rooms")), 2);
  cr_assert_eq(strlen(jstr(json_object_get(st, "cert"), "sha256")), 64);
  json_decref(st);

  /* paging: one at a time, the total stays 2 */
  long long ids[2];
  for (int off = 0; off < 2; off++) {
    char path[64];
    snprintf(path, sizeof(path), "/status?offset=%d&limit=1", off);
    st = get_json(&rp, path, raw, RESP_MAX);
    json_t *ss = json_object_get(st, "sessions");
    cr_assert_eq(json_array_size(ss), 1, "%s: %s", path, raw);
    cr_assert_eq(jint(st, "sessions_total"), 2);
    cr_assert_eq(jint(st, "count"), 1);
    ids[off] = jint(json_array_get(ss, 0), "id");
    json_t *next = json_object_get(st, "next_offset");
    cr_assert(off == 0 ? json_integer_value(next) == 1 : json_is_null(next), "%s: %s", path, raw);
    json_decref(st);
  }
  cr_assert_lt(ids[0], ids[1], "pages in the order of peer ids");
  st = get_json(&rp, "/status?offset=2&limit=1", raw, RESP_MAX);
  cr_assert_eq(json_array_size(json_object_get(st, "sessions")), 0);
  json_decref(st);
  cr_assert_eq(http_get(&rp, "/status?limit=0", raw, RESP_MAX), 400);
  cr_assert_eq(http_get(&rp, "/status?offset=x", raw, RESP_MAX), 400);

  /* the page: HTML with its tables and script, nothing fetched from elsewhere */
  cr_assert_eq(http_get(&rp, "/", raw, RESP_MAX), 200);
  cr_assert(strstr(raw, "<table id=\"sessions\">") && strstr(raw, "fetch('/status"), "%s", raw);
  cr_assert_null(strstr(raw, "http"), "the page names an external resource");

  for (int k = 0; k < 2; k++)
    if (cl[k].live)
      close_client(cl, (uint32_t)k);
  relay_proc_stop(&rp);
  free(cl);
  free(raw);
}
