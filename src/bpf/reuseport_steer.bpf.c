/*
 * reuseport_steer: SK_REUSEPORT program that picks the worker socket of a
 * QUIC datagram from its destination connection ID (see
 * include/wtrelay/steer.h for the rule and src/steer.c for the loader).
 *
 * The kernel runs it for every datagram to the relay's reuseport group,
 * before choosing a socket. ctx->data is the UDP header; the QUIC packet
 * starts 8 bytes in. The program never drops: when it selects nothing,
 * or the selection fails (an empty slot), it returns SK_PASS and the
 * kernel falls back to its 4-tuple hash.
 *
 * Built with clang -target bpf by CMake and embedded into the library as
 * a byte array; never installed as a file.
 */
#include <linux/bpf.h>
#include <linux/in.h>

#include <bpf/bpf_helpers.h>

#include "wtrelay/steer.h"

#define UDP_HDR_LEN 8

/* Slot i: the UDP socket of worker i (filled by steer_attach). */
struct {
  __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
  __uint(max_entries, STEER_MAX_WORKERS);
  __type(key, __u32);
  __type(value, __u64);
} steer_socks SEC(".maps");

/* enum steer_stat, per CPU: no atomic operation on the packet path. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, STEER_STAT__COUNT);
  __type(key, __u32);
  __type(value, __u64);
} steer_counters SEC(".maps");

static __always_inline void count(__u32 what)
{
  __u64 *v = bpf_map_lookup_elem(&steer_counters, &what);
  if (v)
    (*v)++;
}

SEC("sk_reuseport")
int steer_select(struct sk_reuseport_md *md)
{
  unsigned char hdr[STEER_HDR_LEN];

  if (md->ip_protocol != IPPROTO_UDP ||
      bpf_skb_load_bytes(md, UDP_HDR_LEN, hdr, sizeof(hdr)) != 0) {
    /* Shorter than any QUIC packet the relay could accept. */
    count(STEER_STAT_HASH);
    return SK_PASS;
  }
  int w = steer_pick(hdr, sizeof(hdr));
  if (w == STEER_ANY) {
    count(STEER_STAT_HASH);
    return SK_PASS;
  }
  __u32 key = (__u32)w;
  if (bpf_sk_select_reuseport(md, &steer_socks, &key, 0) != 0) {
    count(STEER_STAT_NO_SOCKET);
    return SK_PASS;
  }
  count((hdr[0] & 0x80) ? STEER_STAT_HANDSHAKE : STEER_STAT_SHORT);
  return SK_PASS;
}

/* The kernel reads this only to allow GPL-only helpers; none is used. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
