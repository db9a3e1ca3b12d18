/*
 * nat_tcp: guest TCP to the internet, translated onto host TCP sockets
 * (after passt's model: no second TCP stack with its own retransmission
 * buffers; the host kernel's socket buffers are the buffers).
 *
 * One host socket per guest connection (room, guest IP:port, remote
 * IP:port), every operation on the worker's ring (connect, send, recv with
 * MSG_PEEK, discard, shutdown, close, cancel). The connection's key and
 * slot are in the NAT's flow table (flowtab.h, FT_TCP); a connection that
 * ends leaves its lookups at once and its slot when its last ring
 * operation is back.
 *
 * IPv6 (NAT66, nat6.c): the same translation onto AF_INET6 sockets; the
 * connection's addresses are union inany, its segments toward the guest
 * carry IPv6 headers with the IPv6 pseudo-header checksum, and both MSS
 * values are 20 bytes smaller (the larger IPv6 header), so the frames stay
 * the size they are over IPv4.
 *
 * Set-up: a guest SYN to an allowed destination connects a host socket;
 * success -> SYN-ACK to the guest with our random ISN and an MSS small
 * enough that the guest's segments fit one browser datagram; refusal or
 * failure -> RST to the guest. SYN retransmissions are recognised.
 *
 * Guest -> host: in-order payload is appended to a bounded staging buffer
 * (one window, 64 KiB) and sent to the socket; the guest is acknowledged
 * only for bytes the kernel accepted, so nothing acknowledged is lost; the
 * window advertised is the staging buffer's free space. Out-of-order
 * segments within the window are kept in the staging buffer at their
 * offset (up to TCP_OOO_MAX ranges) and answered with a duplicate ACK, so
 * a lost segment costs the guest one fast retransmit, not the rest of its
 * window: when the hole is filled the in-order run extends over what was
 * held, and the next ACK covers all of it.
 *
 * Host -> guest: data is read with MSG_PEEK and SO_PEEK_OFF, so what the
 * guest has not acknowledged stays in the kernel: acknowledged bytes are
 * discarded (recv MSG_TRUNC, in batches, together with the next peek); a
 * retransmission (RTO per RFC 6298, or
 * three duplicate ACKs) rewinds the peek offset to the first
 * unacknowledged byte. Segments respect the guest's window and MSS.
 *
 * Teardown: FIN both ways with half-close (shutdown(SHUT_WR) after the
 * staged bytes), RST both ways, idle timeouts; bounded connections per VM
 * and in all, per client, connects in progress per VM and per client,
 * and a rate of new connections per VM (nat_share.c): a refusal answers
 * RST. Window scaling is offered back when the guest offers it (our own
 * shift 0: our window is the 64 KiB staging buffer). Toward the guest: a
 * congestion window (slow start, halving on loss), NewReno fast recovery
 * resending one segment per hole, a tail-loss probe before the RTO; toward
 * us, SACK blocks for the held ranges when the guest offered SACK
 * (docs/architecture.md, "The NAT path").
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway_internal.h"
#include "wtrelay/container_of.h"
#include "wtrelay/rng.h"
#include "wtrelay/timeunit.h"

#define K_CONNECT 0u
#define K_SEND 1u
#define K_PEEK 2u
#define K_DISCARD 3u
#define K_SHUT 4u
#define K_CLOSE 5u
#define K_CANCEL 6u
#define K_POLL 7u
#define UDX(kind, gen, slot) (((uint32_t)(kind) << 29) | ((uint32_t)((gen)&0x1fff) << 16) | (slot))

static bool seq_lt(uint32_t a, uint32_t b)
{
  return (int32_t)(a - b) < 0;
}
static bool seq_leq(uint32_t a, uint32_t b)
{
  return (int32_t)(a - b) <= 0;
}

/* A connection's key in the flow table: the guest's 4-tuple and room. */
static struct ft_key conn_key(const struct gw_pkt *pkt, const struct net_tcp *t)
{
  return (struct ft_key){.proto = FT_TCP,
                         .room = pkt->room,
                         .vip = gw_pkt_src(pkt),
                         .vport = t->sport,
                         .rip = gw_pkt_dst(pkt),
                         .rport = t->dport};
}

static void submit(struct gateway *gw, struct io_uring_sqe *sqe, uint32_t kind,
                   struct nat_tcp_conn *c)
{
  io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_NAT_TCP, UDX(kind, c->gen, (uint32_t)(c - gw->tcp))));
  c->ops++;
}

/* ---- segments toward the guest ---- */

/* What an IPv6 header costs beyond IPv4's: the MSS both ways is that much
 * smaller over IPv6, so the frames stay the same size. */
static uint16_t ip6_extra(const struct nat_tcp_conn *c)
{
  return inany_is4(&c->guest_ip) ? 0 : IPV6_HDR - IPV4_HDR;
}

static uint16_t our_window(const struct nat_tcp_conn *c)
{
  return (uint16_t)(TCP_STAGE_CAP - c->staged);
}

/* SACK blocks (RFC 2018) for the held out-of-order ranges: the one with
 * the latest segment first, then the others in order. */
static uint8_t sack_blocks(const struct nat_tcp_conn *c, struct net_tcp_opts *o)
{
  uint8_t n = 0;
  for (uint32_t k = 0; k < c->nooo && n < NET_TCP_SACK_MAX; k++)
    if (c->ooo_lo[k] <= c->ooo_recent && c->ooo_recent < c->ooo_hi[k]) {
      o->sack[n][0] = c->rcv_nxt + c->ooo_lo[k];
      o->sack[n][1] = c->rcv_nxt + c->ooo_hi[k];
      n++;
    }
  for (uint32_t k = 0; k < c->nooo && n < NET_TCP_SACK_MAX; k++)
    if (!(c->ooo_lo[k] <= c->ooo_recent && c->ooo_recent < c->ooo_hi[k])) {
      o->sack[n][0] = c->rcv_nxt + c->ooo_lo[k];
      o->sack[n][1] = c->rcv_nxt + c->ooo_hi[k];
      n++;
    }
  return n;
}

/* Returns what gw_emit_payload does (0: the guest's port could not take
 * the frame), or -EMSGSIZE when the segment could not be built. */
static int emit(struct gateway *gw, struct nat_tcp_conn *c, uint32_t seq, uint8_t flags,
                uint16_t mss, const uint8_t *data, size_t len)
{
  struct net_l2 l2 = {.dst_mac = c->guest_mac, .src_mac = gw->p.mac};
  struct net_tcp_opts o = {.mss = mss, .wscale = -1};
  if (!len && c->sack_ok && c->nooo)
    o.nsack = sack_blocks(c, &o); /* pure ACKs only: data segments keep their size */
  /* the headers only: the payload goes from where it was peeked */
  int n = gw_build_tcp_hdr(gw, gw->out, sizeof(gw->out) - len, &l2, &c->dst_ip, &c->guest_ip,
                           c->dst_port, c->guest_port, seq, c->rcv_nxt, flags, our_window(c), &o,
                           data, len);
  if (n <= 0)
    return -EMSGSIZE;
  gw->ctr.tcp_segs_out++;
  return gw_emit_payload(gw, c->room, (size_t)n, data, len);
}

/* SYN-ACK: our MSS, window scaling (our own shift 0) when the guest
 * offered it, so the guest's window may grow beyond 64 KiB, and SACK
 * permitted when the guest offered it: our duplicate ACKs then name what
 * we hold beyond a hole, and the guest resends only the holes. */
static void syn_ack(struct gateway *gw, struct nat_tcp_conn *c)
{
  struct net_l2 l2 = {.dst_mac = c->guest_mac, .src_mac = gw->p.mac};
  struct net_tcp_opts o = {.mss = (uint16_t)(TCP_MSS_ADV - ip6_extra(c)),
                           .wscale = (int8_t)(c->g_wscale >= 0 ? 0 : -1),
                           .sack_ok = c->sack_ok};
  int n = gw_build_tcp_hdr(gw, gw->out, sizeof(gw->out), &l2, &c->dst_ip, &c->guest_ip, c->dst_port,
                           c->guest_port, c->snd_una - 1, c->rcv_nxt, TCP_SYN | TCP_ACK,
                           our_window(c), &o, NULL, 0);
  if (n > 0) {
    gw->ctr.tcp_segs_out++;
    gw_emit(gw, c->room, (size_t)n);
  }
}

static void ack_now(struct gateway *gw, struct nat_tcp_conn *c)
{
  emit(gw, c, c->snd_nxt, TCP_ACK, 0, NULL, 0);
}

/* RST for a segment that has no connection (or a refused one). */
static void rst_for(struct gateway *gw, const struct gw_pkt *pkt, const struct net_tcp *t)
{
  struct net_l2 l2 = {.dst_mac = pkt->src_mac, .src_mac = gw->p.mac};
  uint32_t seq = (t->flags & TCP_ACK) ? t->ack : 0;
  uint32_t ack =
      t->seq + (uint32_t)t->len + ((t->flags & TCP_SYN) ? 1 : 0) + ((t->flags & TCP_FIN) ? 1 : 0);
  union inany from = gw_pkt_dst(pkt), to = gw_pkt_src(pkt);
  int n = gw_build_tcp_hdr(gw, gw->out, sizeof(gw->out), &l2, &from, &to, t->dport, t->sport, seq,
                           ack, TCP_RST | TCP_ACK, 0, NULL, NULL, 0);
  if (n > 0) {
    gw->ctr.tcp_rst_out++;
    gw_emit(gw, pkt->room, (size_t)n);
  }
}

/* ---- connection life ---- */

/* Out of the flow table's lookups; the slot stays taken until conn_reap
 * (ring operations in flight still name it). */
static void unlink_conn(struct gateway *gw, struct nat_tcp_conn *c)
{
  flowtab_unlink(gw->flows, FT_TCP, (uint32_t)(c - gw->tcp));
}

/* Ends the connection: RST to the guest and/or the host as asked, cancel
 * what is in flight, close the socket once nothing is. */
static void conn_end(struct gateway *gw, struct nat_tcp_conn *c, bool rst_guest, bool rst_host)
{
  if (c->state == TCP_S_DEAD)
    return;
  if (rst_guest) {
    emit(gw, c, c->snd_nxt, TCP_RST | TCP_ACK, 0, NULL, 0);
    gw->ctr.tcp_rst_out++;
  }
  if (rst_host && c->fd >= 0) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  if (c->fwd)
    nat_fwd_tcp_closed(gw, c->fwd); /* an inbound forward's: no share was taken */
  else
    nat_share_release(gw, NAT_SHARE_P_TCP, c->client, c->room, &c->guest_ip,
                      c->state == TCP_S_CONNECTING);
  c->state = TCP_S_DEAD;
  unlink_conn(gw, c);
  timer_disarm(gw->timers, &c->timer);
  gw->ntcp--;
  gw->ctr.tcp_closed++;
  if (c->ops) {
    struct io_uring_sqe *sqe = io_sqe(gw->io);
    if (sqe) {
      io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_NAT_TCP, UDX(K_CANCEL, 0, 0xffff)));
    }
  }
}

/* Called after every completion of a dead connection: free it when the
 * last one came back. */
static void conn_reap(struct gateway *gw, struct nat_tcp_conn *c)
{
  if (c->state != TCP_S_DEAD || c->ops || !c->used)
    return;
  if (c->fd >= 0) {
    struct io_uring_sqe *sqe = io_sqe(gw->io);
    if (sqe) {
      io_uring_prep_close(sqe, c->fd);
      io_uring_sqe_set_data64(sqe, IO_UD(IO_OP_NAT_TCP, UDX(K_CLOSE, 0, 0xffff)));
    } else {
      close(c->fd);
    }
  }
  free(c->stage);
  free(c->peekbuf);
  c->stage = c->peekbuf = NULL;
  c->fd = -1;
  c->used = false;
  c->gen++;
  flowtab_free(gw->flows, FT_TCP, (uint32_t)(c - gw->tcp));
}

/* Arms the connection's one timer (connect timeout, RTO, idle check) for
 * `at`. A connection without it would have no timeout at all, so when the
 * heap refuses (full: a sizing defect, counted there too) the connection is
 * reset both ways and counted (tcp_no_timer); false then. Every caller's
 * path ends in conn_reap, which frees it. */
static bool arm_at(struct gateway *gw, struct nat_tcp_conn *c, uint64_t at)
{
  if (timer_arm(gw->timers, &c->timer, at) == 0)
    return true;
  gw->ctr.tcp_no_timer++;
  gw_log(gw, "TCP NAT connection reset", "no timer could be armed (timer heap full)");
  conn_end(gw, c, true, true);
  return false;
}

static bool arm_timer(struct gateway *gw, struct nat_tcp_conn *c, uint64_t after)
{
  return arm_at(gw, c, *gw->now + after);
}

#define TCP_DELACK_NS (45 * NS_PER_MS) /* a guest may hold an ACK this long (Linux: 40 ms) */

/* The retransmission timer for outstanding data: first a tail-loss probe
 * (two round trips plus the guest's delayed-ACK time; it resends the first
 * unacknowledged segment once, which is where a cumulative ACK leaves the
 * first hole), then the RTO proper. A loss near the end of a flight gets
 * too few duplicate ACKs for fast retransmit; without the probe it would
 * wait for the RTO (at least 200 ms, doubling). */
static void arm_rto(struct gateway *gw, struct nat_tcp_conn *c)
{
  c->rto_at = *gw->now + c->rto_ns;
  uint64_t after = c->rto_ns;
  if (!c->tlp_done && c->srtt && 2 * c->srtt + TCP_DELACK_NS < after)
    after = 2 * c->srtt + TCP_DELACK_NS;
  arm_timer(gw, c, after);
}

/* ---- host -> guest ---- */

/* One receive turn at a time on the socket: the discard of what the guest
 * acknowledged since the last one and the next peek, submitted together
 * (both non-blocking, so the ring runs them in order when it submits them,
 * and both come back in the same round trip). The kernel moves the peek
 * offset back by what a discard consumes, so an offset set while no
 * receive is in flight stays right across the discard that follows:
 * relative to the first byte the kernel holds, which is snd_una minus the
 * acknowledged bytes not yet discarded (rx_head). New data is waited for
 * with a POLLIN poll, but only when the socket's queue is empty
 * (everything acknowledged and discarded): with data queued, POLLIN would
 * fire at once, and the guest's next ACK is the event that lets us go on. */
static void arm_poll(struct gateway *gw, struct nat_tcp_conn *c)
{
  if (c->poll_busy)
    return;
  struct io_uring_sqe *sqe = io_sqe(gw->io);
  if (!sqe)
    return;
  io_uring_prep_poll_add(sqe, c->fd, POLLIN | POLLRDHUP);
  submit(gw, sqe, K_POLL, c);
  c->poll_busy = true;
}

/* Fast recovery: resends the one segment at retx_seq (peeked at its
 * offset; the normal peek offset is set again afterwards), or the FIN.
 * True when a peek was submitted. */
static bool retx_one(struct gateway *gw, struct nat_tcp_conn *c, uint32_t head)
{
  c->retx_pending = false;
  if (seq_lt(c->retx_seq, c->snd_una))
    c->retx_seq = c->snd_una;
  if (!seq_lt(c->retx_seq, c->snd_nxt))
    return false;           /* acknowledged meanwhile */
  c->rtt_seq_valid = false; /* Karn: no RTT sample across a retransmission */
  if (c->fin_ever && c->retx_seq == c->fin_seq) {
    gw->ctr.tcp_retransmits++;
    emit(gw, c, c->fin_seq, TCP_FIN | TCP_ACK, 0, NULL, 0);
    return false;
  }
  uint32_t end = c->fin_ever && seq_lt(c->fin_seq, c->snd_nxt) ? c->fin_seq : c->snd_nxt;
  uint32_t n = end - c->retx_seq < c->mss ? end - c->retx_seq : c->mss;
  struct io_uring_sqe *sqe = io_sqe(gw->io);
  if (!sqe) {
    c->retx_pending = true;
    return false;
  }
  int off = (int)(c->retx_seq - head);
  setsockopt(c->fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
  c->retx_t = *gw->now;
  c->retx_peek_seq = c->retx_seq; /* retx_seq may move (a partial ACK) before it completes */
  io_uring_prep_recv(sqe, c->fd, c->peekbuf, n, MSG_PEEK | MSG_DONTWAIT);
  submit(gw, sqe, K_PEEK, c);
  c->peek_busy = true;
  c->retx_busy = true;
  c->peek_epoch_sent = c->peek_epoch;
  c->need_rewind = true; /* the next normal peek starts at snd_nxt again */
  return true;
}

static uint32_t rx_head(const struct nat_tcp_conn *c)
{
  return c->snd_una - c->discard_pending;
}

/* Acknowledged bytes are discarded in batches of TCP_DISCARD_MIN while
 * data is in flight (the peek offset does not care how many acknowledged
 * bytes still precede it, and each discard is a ring operation), all at
 * once when nothing is. */
#define TCP_DISCARD_MIN 16384u
static bool discard_due(const struct nat_tcp_conn *c)
{
  return c->discard_pending && (c->discard_pending >= TCP_DISCARD_MIN || c->snd_una == c->snd_nxt);
}

static void try_rx(struct gateway *gw, struct nat_tcp_conn *c)
{
  if (c->state != TCP_S_OPEN || c->discard_busy || c->peek_busy)
    return;
  uint32_t head = rx_head(c); /* exact: nothing is in flight */
  if (discard_due(c)) {
    struct io_uring_sqe *sqe = io_sqe(gw->io);
    if (!sqe)
      return;
    uint32_t n = c->discard_pending < TCP_PEEK_CAP ? c->discard_pending : TCP_PEEK_CAP;
    io_uring_prep_recv(sqe, c->fd, gw->tcp_scratch, n, MSG_TRUNC | MSG_DONTWAIT);
    submit(gw, sqe, K_DISCARD, c);
    c->discard_busy = true;
    c->discard_n = n;
    c->discard_pending -= n;
    /* the peek below goes with it */
  }
  if (c->retx_pending && retx_one(gw, c, head))
    return;
  if (c->need_rewind) {
    int off = (int)(c->snd_nxt - head);
    setsockopt(c->fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
    c->need_rewind = false;
  }
  if (c->host_eof || c->tx_held)
    return;
  uint32_t inflight = c->snd_nxt - c->snd_una;
  uint32_t wnd = c->g_wnd < c->cwnd ? c->g_wnd : c->cwnd;
  if (inflight >= wnd)
    return;
  uint32_t cap = c->peek_cap ? c->peek_cap : TCP_PEEK_CAP;
  uint32_t want = wnd - inflight < cap ? wnd - inflight : cap;
  struct io_uring_sqe *sqe = io_sqe(gw->io);
  if (!sqe)
    return;
  io_uring_prep_recv(sqe, c->fd, c->peekbuf, want, MSG_PEEK | MSG_DONTWAIT);
  submit(gw, sqe, K_PEEK, c);
  c->peek_busy = true;
  c->peek_epoch_sent = c->peek_epoch;
}

/* Loss: multiplicative decrease (RFC 5681, without fast recovery's
 * inflation): ssthresh = half the flight, cwnd = ssthresh after three
 * duplicate ACKs, one segment after a timeout. */
static void congestion(struct nat_tcp_conn *c, bool timeout)
{
  uint32_t flight = c->snd_nxt - c->snd_una;
  c->ssthresh = flight / 2 > 2u * c->mss ? flight / 2 : 2u * c->mss;
  c->cwnd = timeout ? c->mss : c->ssthresh;
}

static void retransmit(struct gateway *gw, struct nat_tcp_conn *c)
{
  gw->ctr.tcp_retransmits++;
  c->in_recovery = false;
  c->retx_pending = false;
  c->snd_nxt = c->snd_una;
  c->fin_sent = false;
  c->host_eof = false;
  c->tx_held = false;
  c->rtt_seq_valid = false;
  c->need_rewind = true;
  c->peek_epoch++; /* a peek in flight now reads from the old offset */
  try_rx(gw, c);
}

/* Back-pressure from the guest's side: a segment that its port could not
 * take (the session's datagram queue toward it is full) while earlier ones
 * are still unacknowledged is not sent, rather than sent and lost (a loss
 * would halve the congestion window and cost a retransmission): it and the
 * rest of the peek wait for the guest's next ACK, which is sure to come,
 * and peeks ask for about twice what went through until one goes through
 * whole. (With nothing in flight the segment counts as sent: no ACK would
 * come to resume, so the retransmission timer does.) */
static void hold_rest(struct nat_tcp_conn *c, int off, int res)
{
  if (off < res) {
    c->tx_held = true;
    c->need_rewind = true; /* the peek moved the offset past what was not sent */
    uint32_t cap = 2u * (uint32_t)off;
    if (cap < 2u * c->mss)
      cap = 2u * c->mss;
    c->peek_cap = cap < TCP_PEEK_CAP ? cap : 0;
  } else if (c->peek_cap && (uint32_t)res >= c->peek_cap) {
    c->peek_cap = c->peek_cap < TCP_PEEK_CAP / 2 ? 2 * c->peek_cap : 0;
  }
}

static void peek_done(struct gateway *gw, struct nat_tcp_conn *c, int res)
{
  bool retx = c->retx_busy;
  c->peek_busy = false;
  c->retx_busy = false;
  if (c->state != TCP_S_OPEN)
    return;
  if (c->peek_epoch_sent != c->peek_epoch) {
    /* raced with a rewind: what it read is not used, and the offset it
     * moved is set again before the next peek */
    c->need_rewind = true;
    try_rx(gw, c);
    return;
  }
  if (retx) {
    if (res > 0) {
      gw->ctr.tcp_retransmits++;
      emit(gw, c, c->retx_peek_seq, TCP_ACK, 0, c->peekbuf, (size_t)res);
    }
    arm_rto(gw, c);
    try_rx(gw, c);
    return;
  }
  if (res < 0) {
    if (res == -EAGAIN || res == -EINTR) {
      /* nothing new: wait for data when the queue is empty, else for the
       * guest's next ACK */
      if (discard_due(c) || c->need_rewind || c->retx_pending)
        try_rx(gw, c); /* an ACK came meanwhile: discard (or resend), then peek again */
      else if (c->snd_una == c->snd_nxt && !c->discard_busy)
        arm_poll(gw, c);
      return;
    }
    gw->ctr.tcp_host_errors++;
    conn_end(gw, c, true, false);
    return;
  }
  if (res == 0) {
    c->host_eof = true;
    if (!c->fin_sent) {
      emit(gw, c, c->snd_nxt, TCP_FIN | TCP_ACK, 0, NULL, 0);
      c->fin_seq = c->snd_nxt;
      c->fin_ever = true;
      c->snd_nxt++;
      c->fin_sent = true;
      if (seq_lt(c->snd_max, c->snd_nxt))
        c->snd_max = c->snd_nxt;
      if (!timer_armed(&c->timer))
        arm_timer(gw, c, c->rto_ns);
    }
    try_rx(gw, c);
    return;
  }
  int off = 0;
  while (off < res) {
    int n = res - off < c->mss ? res - off : c->mss;
    if (emit(gw, c, c->snd_nxt, TCP_ACK | (off + n == res ? TCP_PSH : 0), 0, c->peekbuf + off,
             (size_t)n) == 0 &&
        c->snd_nxt != c->snd_una)
      break; /* held: see hold_rest */
    if (!c->rtt_seq_valid) {
      c->rtt_seq = c->snd_nxt + (uint32_t)n;
      c->rtt_t = *gw->now;
      c->rtt_seq_valid = true;
    }
    c->snd_nxt += (uint32_t)n;
    off += n;
  }
  hold_rest(c, off, res);
  if (seq_lt(c->snd_max, c->snd_nxt))
    c->snd_max = c->snd_nxt;
  gw->ctr.tcp_bytes_in += (uint64_t)off;
  arm_rto(gw, c);
  try_rx(gw, c);
}

/* ---- guest -> host ---- */

static void try_send(struct gateway *gw, struct nat_tcp_conn *c)
{
  if (c->send_busy || c->state != TCP_S_OPEN)
    return;
  if (c->staged) {
    struct io_uring_sqe *sqe = io_sqe(gw->io);
    if (!sqe)
      return;
    io_uring_prep_send(sqe, c->fd, c->stage, c->staged, MSG_NOSIGNAL);
    submit(gw, sqe, K_SEND, c);
    c->send_busy = true;
    return;
  }
  if (c->guest_fin && !c->host_shut) {
    struct io_uring_sqe *sqe = io_sqe(gw->io);
    if (!sqe)
      return;
    io_uring_prep_shutdown(sqe, c->fd, SHUT_WR);
    submit(gw, sqe, K_SHUT, c);
    c->host_shut = true;
    c->rcv_nxt++; /* the guest's FIN: everything before it is in the kernel */
    ack_now(gw, c);
  }
}

static void maybe_finished(struct gateway *gw, struct nat_tcp_conn *c)
{
  if (c->state == TCP_S_OPEN && c->host_shut && c->fin_sent && c->snd_una == c->snd_nxt &&
      !c->staged && !c->discard_pending && !c->discard_busy)
    conn_end(gw, c, false, false);
}

static void send_done(struct gateway *gw, struct nat_tcp_conn *c, int res)
{
  c->send_busy = false;
  if (c->state != TCP_S_OPEN)
    return;
  if (res <= 0) {
    if (res == -EAGAIN || res == -EINTR) {
      try_send(gw, c);
      return;
    }
    gw->ctr.tcp_host_errors++;
    conn_end(gw, c, true, false);
    return;
  }
  uint32_t used = c->nooo ? c->ooo_hi[c->nooo - 1] : c->staged;
  memmove(c->stage, c->stage + res, used - (uint32_t)res);
  c->staged -= (uint32_t)res;
  for (uint32_t k = 0; k < c->nooo; k++) {
    c->ooo_lo[k] -= (uint32_t)res;
    c->ooo_hi[k] -= (uint32_t)res;
  }
  c->ooo_recent = c->ooo_recent > (uint32_t)res ? c->ooo_recent - (uint32_t)res : 0;
  c->rcv_nxt += (uint32_t)res;
  gw->ctr.tcp_bytes_out += (uint64_t)res;
  ack_now(gw, c); /* acknowledged: the kernel has it */
  try_send(gw, c);
  maybe_finished(gw, c);
}

/* A discard came back. Short of what was asked (which a queue holding
 * every byte asked for does not do) or refused: the rest is discarded
 * again, and a peek that went with it read at an offset that assumed the
 * whole discard, so it is not used (the epoch) and the offset is set again. */
static void discard_done(struct gateway *gw, struct nat_tcp_conn *c, int res)
{
  uint32_t n = c->discard_n;
  c->discard_busy = false;
  c->discard_n = 0;
  if (res < 0 && res != -EAGAIN && res != -EINTR) {
    c->discard_pending = 0; /* the socket is gone; nothing to keep in step */
  } else if ((uint32_t)(res < 0 ? 0 : res) < n) {
    c->discard_pending += n - (uint32_t)(res < 0 ? 0 : res);
    c->need_rewind = true;
    c->peek_epoch++;
  }
  try_rx(gw, c);
  maybe_finished(gw, c);
}

static void connect_done(struct gateway *gw, struct nat_tcp_conn *c, int res)
{
  if (c->state != TCP_S_CONNECTING)
    return;
  if (res < 0) {
    gw->ctr.tcp_connect_failed++;
    if (res == -ECONNREFUSED)
      gw->ctr.tcp_refused++;
    conn_end(gw, c, true, false);
    return;
  }
  c->state = TCP_S_OPEN;
  nat_share_connected(gw, c->client, c->room, &c->guest_ip);
  syn_ack(gw, c);
  gw->ctr.tcp_established++;
  arm_timer(gw, c, c->rto_ns);
  try_rx(gw, c);
}

static void on_cqe(void *ctx, uint32_t idx, struct io_uring_cqe *cqe)
{
  struct gateway *gw = ctx;
  uint32_t kind = idx >> 29, gen = (idx >> 16) & 0x1fff, slot = idx & 0xffff;
  if (kind == K_CLOSE || kind == K_CANCEL || slot >= gw->p.max_tcp_conns)
    return;
  struct nat_tcp_conn *c = &gw->tcp[slot];
  if (!c->used || (c->gen & 0x1fff) != gen)
    return;
  c->ops--;
  switch (kind) {
  case K_CONNECT:
    connect_done(gw, c, cqe->res);
    break;
  case K_SEND:
    send_done(gw, c, cqe->res);
    break;
  case K_PEEK:
    peek_done(gw, c, cqe->res);
    break;
  case K_DISCARD:
    discard_done(gw, c, cqe->res);
    break;
  case K_SHUT:
    maybe_finished(gw, c);
    break;
  case K_POLL:
    c->poll_busy = false;
    try_rx(gw, c);
    break;
  default:
    break;
  }
  conn_reap(gw, c);
}

static void syn_to_guest(struct gateway *gw, struct nat_tcp_conn *c);

static void conn_timer_run(struct gateway *gw, struct nat_tcp_conn *c, uint64_t now)
{
  if (c->state == TCP_S_SYN_SENT) {
    /* the guest has not answered our SYN: again, doubling, until the
     * connect timeout; then the remote gets a reset */
    if (now - c->last_ns >= gw->p.tcp_connect_timeout_ns) {
      gw->ctr.fwd_tcp_vm_refused++;
      conn_end(gw, c, false, true);
      conn_reap(gw, c);
      return;
    }
    gw->ctr.tcp_retransmits++;
    syn_to_guest(gw, c);
    c->rto_ns *= 2;
    arm_timer(gw, c, c->rto_ns);
    return;
  }
  if (c->state == TCP_S_CONNECTING) {
    gw->ctr.tcp_connect_failed++;
    conn_end(gw, c, true, false);
    conn_reap(gw, c);
    return;
  }
  if (c->state != TCP_S_OPEN)
    return;
  if (c->snd_una == c->snd_nxt) {
    /* nothing unacknowledged: idle check */
    if (now - c->last_ns >= gw->p.tcp_idle_ns) {
      gw->ctr.tcp_idle_closed++;
      conn_end(gw, c, true, true);
      conn_reap(gw, c);
      return;
    }
    arm_timer(gw, c, 10000 * NS_PER_MS);
    return;
  }
  if (!c->tlp_done && now < c->rto_at) {
    /* tail-loss probe: resend the first hole once, RTO later */
    c->tlp_done = true;
    gw->ctr.tcp_tail_probes++;
    if (!c->in_recovery) {
      c->in_recovery = true;
      c->recover = c->snd_nxt;
    }
    c->retx_pending = true;
    c->retx_seq = c->snd_una;
    try_rx(gw, c);
    if (c->state == TCP_S_OPEN)
      arm_at(gw, c, c->rto_at);
    return;
  }
  if (++c->rto_count > 10) {
    gw->ctr.tcp_idle_closed++;
    conn_end(gw, c, true, true);
    conn_reap(gw, c);
    return;
  }
  c->rto_ns = c->rto_ns * 2 > 60000 * NS_PER_MS ? 60000 * NS_PER_MS : c->rto_ns * 2;
  retransmit(gw, c);
  if (c->state == TCP_S_OPEN)
    arm_timer(gw, c, c->rto_ns);
}

static void conn_timer(struct timer *t, uint64_t now)
{
  struct nat_tcp_conn *c = container_of(t, struct nat_tcp_conn, timer);
  struct gateway *gw = c->gw;
  conn_timer_run(gw, c, now);
  conn_reap(gw, c); /* a connection ended above (or by a failed re-arm) */
}

/* ---- guest segments ---- */

static struct nat_tcp_conn *conn_find(struct gateway *gw, const struct gw_pkt *pkt,
                                      const struct net_tcp *t)
{
  struct ft_key k = conn_key(pkt, t);
  uint32_t i = flowtab_lookup(gw->flows, &k);
  return i == FT_NONE ? NULL : &gw->tcp[i];
}

/* A slot's connection made anew (its generation kept) with its two
 * buffers; false when they could not be had (then freed). */
static bool conn_fresh(struct gateway *gw, struct nat_tcp_conn *c)
{
  uint16_t gen = c->gen;
  memset(c, 0, sizeof(*c));
  c->gen = gen;
  c->gw = gw;
  c->fd = -1;
  c->stage = malloc(TCP_STAGE_CAP);
  c->peekbuf = malloc(TCP_PEEK_CAP);
  if (c->stage && c->peekbuf)
    return true;
  free(c->stage);
  free(c->peekbuf);
  c->stage = c->peekbuf = NULL;
  return false;
}

/* The connection takes its host socket (peeked at offsets, no Nagle). */
static void conn_take_fd(struct nat_tcp_conn *c, int fd, uint8_t state)
{
  int zero = 0, one = 1;
  setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero));
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  c->used = true;
  c->fd = fd;
  c->state = state;
}

static void conn_open(struct gateway *gw, const struct gw_pkt *pkt, const struct net_tcp *t)
{
  /* a slot (a connection still closing holds its own until its ring
   * operations are back), then the per-VM and per-client caps
   * (connections, connects in progress) and the VM's rate of new flows:
   * refused like a full table, with RST */
  struct ft_key k = conn_key(pkt, t);
  uint32_t slot;
  if (flowtab_insert(gw->flows, &k, *gw->now, &slot) < 0) {
    gw->ctr.tcp_full++;
    gw_log(gw, "TCP NAT connection refused", "table full (--max-tcp-conns)");
    rst_for(gw, pkt, t);
    return;
  }
  struct nat_tcp_conn *c = &gw->tcp[slot];
  uint64_t client;
  int arc = nat_share_admit(gw, pkt, NAT_SHARE_P_TCP, &client);
  if (arc < 0) {
    flowtab_free(gw->flows, FT_TCP, slot);
    if (arc != -EBUSY) /* busy: dropped, the guest's SYN comes again */
      rst_for(gw, pkt, t);
    return;
  }
  int fd =
      conn_fresh(gw, c) ? socket(pkt->ip6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) : -1;
  if (fd < 0) {
    free(c->stage);
    free(c->peekbuf);
    c->stage = c->peekbuf = NULL;
    flowtab_free(gw->flows, FT_TCP, slot);
    nat_share_release(gw, NAT_SHARE_P_TCP, client, pkt->room, &k.vip, true);
    gw->ctr.tcp_full++;
    rst_for(gw, pkt, t);
    return;
  }
  conn_take_fd(c, fd, TCP_S_CONNECTING);
  c->client = client;
  c->room = pkt->room;
  c->guest_ip = k.vip;
  c->guest_port = t->sport;
  c->dst_ip = k.rip;
  c->dst_port = t->dport;
  memcpy(c->guest_mac, pkt->src_mac, 6);
  c->rcv_nxt = t->seq + 1;
  uint32_t isn;
  rng_fill(&isn, sizeof(isn));
  c->snd_una = c->snd_nxt = c->snd_max = isn + 1; /* the SYN-ACK takes isn */
  c->g_wnd = t->window;                           /* a SYN's window is never scaled */
  c->g_wscale = t->wscale;
  c->sack_ok = t->sack_ok;
  c->mss = t->mss ? t->mss : 536;
  if (c->mss > TCP_MSS_TO_GUEST - ip6_extra(c))
    c->mss = (uint16_t)(TCP_MSS_TO_GUEST - ip6_extra(c));
  c->rto_ns = 1000 * NS_PER_MS;
  c->cwnd = 10u * c->mss; /* RFC 6928 initial window */
  c->ssthresh = TCP_CWND_MAX;
  c->last_ns = *gw->now;
  timer_init(&c->timer, conn_timer);
  gw->ntcp++;
  gw->ctr.tcp_opened++;
  gw->ctr.nat6_tcp_opened += pkt->ip6 != NULL;
  c->salen = gw_sockaddr(&c->sa, &c->dst_ip, c->dst_port);
  /* the connect timeout first: no connection is ever without its timer */
  if (!arm_timer(gw, c, gw->p.tcp_connect_timeout_ns)) {
    conn_reap(gw, c);
    return;
  }
  struct io_uring_sqe *sqe = io_sqe(gw->io);
  if (!sqe) {
    conn_end(gw, c, true, false);
    conn_reap(gw, c);
    return;
  }
  io_uring_prep_connect(sqe, fd, &c->sa.sa, c->salen);
  submit(gw, sqe, K_CONNECT, c);
}

/* Records [lo, hi) (offsets from rcv_nxt, beyond staged) as held;
 * false when the range table is full and [lo, hi) touches no range. */
static bool ooo_add(struct nat_tcp_conn *c, uint32_t lo, uint32_t hi)
{
  uint32_t i = 0;
  while (i < c->nooo && c->ooo_hi[i] < lo)
    i++;
  if (i < c->nooo && c->ooo_lo[i] <= hi) {
    /* overlaps or touches range i: widen it, then swallow its followers */
    if (lo < c->ooo_lo[i])
      c->ooo_lo[i] = lo;
    if (hi > c->ooo_hi[i])
      c->ooo_hi[i] = hi;
    uint32_t j = i + 1;
    while (j < c->nooo && c->ooo_lo[j] <= c->ooo_hi[i]) {
      if (c->ooo_hi[j] > c->ooo_hi[i])
        c->ooo_hi[i] = c->ooo_hi[j];
      j++;
    }
    uint32_t gone = j - i - 1;
    for (uint32_t k = i + 1; k + gone < c->nooo; k++) {
      c->ooo_lo[k] = c->ooo_lo[k + gone];
      c->ooo_hi[k] = c->ooo_hi[k + gone];
    }
    c->nooo = (uint8_t)(c->nooo - gone);
    return true;
  }
  if (c->nooo == TCP_OOO_MAX)
    return false;
  for (uint32_t k = c->nooo; k > i; k--) {
    c->ooo_lo[k] = c->ooo_lo[k - 1];
    c->ooo_hi[k] = c->ooo_hi[k - 1];
  }
  c->ooo_lo[i] = lo;
  c->ooo_hi[i] = hi;
  c->nooo++;
  return true;
}

/* The in-order run grew to `staged`: take in the held ranges it reaches. */
static void ooo_join(struct nat_tcp_conn *c)
{
  while (c->nooo && c->ooo_lo[0] <= c->staged) {
    if (c->ooo_hi[0] > c->staged)
      c->staged = c->ooo_hi[0];
    for (uint32_t k = 1; k < c->nooo; k++) {
      c->ooo_lo[k - 1] = c->ooo_lo[k];
      c->ooo_hi[k - 1] = c->ooo_hi[k];
    }
    c->nooo--;
  }
}

/* A guest segment's payload: in order -> staged and sent on; within the
 * window but beyond a hole -> held at its offset (duplicate ACK); old or
 * beyond the buffer -> duplicate ACK. Returns the next expected sequence
 * number (rcv_nxt + staged). */
static uint32_t guest_data(struct gateway *gw, struct nat_tcp_conn *c, const struct net_tcp *t)
{
  int32_t rel = (int32_t)(t->seq - c->rcv_nxt);
  uint32_t skip = rel < 0 ? (uint32_t)-rel : 0;
  uint32_t lo = rel < 0 ? 0 : (uint32_t)rel;
  if (skip >= (uint32_t)t->len || lo >= TCP_STAGE_CAP) {
    ack_now(gw, c); /* all old, or beyond the buffer: tell the guest where we are */
    return c->rcv_nxt + c->staged;
  }
  uint32_t hi = lo + ((uint32_t)t->len - skip);
  if (hi > TCP_STAGE_CAP)
    hi = TCP_STAGE_CAP;
  if (lo < c->staged) {
    /* bytes we hold already (a send may be reading them): copy only the rest */
    skip += c->staged - lo;
    lo = c->staged;
  }
  if (hi <= lo) {
    ack_now(gw, c);
    return c->rcv_nxt + c->staged;
  }
  if (lo == c->staged) {
    memcpy(c->stage + lo, t->payload + skip, hi - lo);
    c->staged = hi;
    ooo_join(c);
    try_send(gw, c);
  } else {
    gw->ctr.tcp_out_of_order++;
    if (ooo_add(c, lo, hi)) {
      memcpy(c->stage + lo, t->payload + skip, hi - lo);
      c->ooo_recent = lo;
    }
    ack_now(gw, c); /* duplicate ACK: the guest fast-retransmits the hole */
  }
  return c->rcv_nxt + c->staged;
}

/* ---- inbound forwards: we are the one who connects ---- */

/* Our SYN to the guest (isn = snd_una - 1), with the options our SYN-ACKs
 * offer: MSS, window scaling (our shift 0), SACK permitted. */
static void syn_to_guest(struct gateway *gw, struct nat_tcp_conn *c)
{
  struct net_l2 l2 = {.dst_mac = c->guest_mac, .src_mac = gw->p.mac};
  struct net_tcp_opts o = {.mss = TCP_MSS_ADV, .wscale = 0, .sack_ok = true};
  int n = gw_build_tcp_hdr(gw, gw->out, sizeof(gw->out), &l2, &c->dst_ip, &c->guest_ip, c->dst_port,
                           c->guest_port, c->snd_una - 1, 0, TCP_SYN, our_window(c), &o, NULL, 0);
  if (n > 0) {
    gw->ctr.tcp_segs_out++;
    gw_emit(gw, c->room, (size_t)n);
  }
}

/* The guest's answer to our SYN: SYN-ACK opens the connection (its
 * options taken as from a guest's SYN), RST refuses it (the remote gets a
 * reset), anything else is ignored (our SYN is resent on the timer). */
static void inbound_answer(struct gateway *gw, struct nat_tcp_conn *c, const struct net_tcp *t)
{
  if ((t->flags & TCP_ACK) && t->ack != c->snd_una)
    return; /* not about our SYN */
  if (t->flags & TCP_RST) {
    if (!(t->flags & TCP_ACK))
      return;
    gw->ctr.tcp_rst_in++;
    gw->ctr.fwd_tcp_vm_refused++;
    conn_end(gw, c, false, true);
    return;
  }
  if ((t->flags & (TCP_SYN | TCP_ACK)) != (TCP_SYN | TCP_ACK))
    return;
  c->rcv_nxt = t->seq + 1;
  c->g_wscale = t->wscale; /* we offered scaling: the guest's shift holds if it sent one */
  c->g_wnd = t->window;    /* a SYN's window is never scaled */
  c->sack_ok = t->sack_ok;
  c->mss = t->mss ? t->mss : 536;
  if (c->mss > TCP_MSS_TO_GUEST)
    c->mss = TCP_MSS_TO_GUEST;
  c->cwnd = 10u * c->mss;
  c->rto_ns = 1000 * NS_PER_MS;
  c->last_ns = *gw->now;
  c->state = TCP_S_OPEN;
  gw->ctr.tcp_established++;
  nat_fwd_tcp_established(gw, c->fwd);
  ack_now(gw, c);
  if (!arm_timer(gw, c, 10000 * NS_PER_MS))
    return;
  try_rx(gw, c);
}

int nat_tcp_inbound(struct gateway *gw, uint32_t room, const uint8_t mac[6], uint32_t ip,
                    uint16_t port, int fd, uint32_t rip, uint16_t rport, uint32_t fwd)
{
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  struct ft_key k = {.proto = FT_TCP,
                     .room = room,
                     .vip = inany_from4(ip),
                     .vport = port,
                     .rip = inany_from4(rip),
                     .rport = rport};
  uint32_t slot;
  int rc = gw->tcp ? flowtab_insert(gw->flows, &k, *gw->now, &slot) : -ENOSPC;
  if (rc < 0) {
    if (rc == -ENOSPC)
      gw->ctr.tcp_full++;
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    return rc;
  }
  struct nat_tcp_conn *c = &gw->tcp[slot];
  if (!conn_fresh(gw, c)) {
    flowtab_free(gw->flows, FT_TCP, slot);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    return -ENOMEM;
  }
  conn_take_fd(c, fd, TCP_S_SYN_SENT);
  c->fwd = fwd;
  c->room = room;
  c->guest_ip = k.vip;
  c->guest_port = port;
  c->dst_ip = k.rip;
  c->dst_port = rport;
  memcpy(c->guest_mac, mac, 6);
  uint32_t isn;
  rng_fill(&isn, sizeof(isn));
  c->snd_una = c->snd_nxt = c->snd_max = isn + 1; /* our SYN takes isn */
  c->g_wscale = -1;
  c->mss = 536;
  c->rto_ns = 1000 * NS_PER_MS;
  c->ssthresh = TCP_CWND_MAX;
  c->last_ns = *gw->now; /* the SYN timeout counts from here */
  timer_init(&c->timer, conn_timer);
  gw->ntcp++;
  gw->ctr.tcp_opened++;
  if (!arm_timer(gw, c, c->rto_ns)) {
    conn_reap(gw, c);
    return 0; /* ended and counted: the remote has its reset */
  }
  syn_to_guest(gw, c);
  return 0;
}

void nat_tcp_input(struct gateway *gw, const struct gw_pkt *pkt, const struct net_tcp *t)
{
  gw->ctr.tcp_segs_in++;
  if (!gw->tcp) {
    if (!(t->flags & TCP_RST))
      rst_for(gw, pkt, t);
    return;
  }
  struct nat_tcp_conn *c = conn_find(gw, pkt, t);
  if (!c) {
    if ((t->flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN)
      conn_open(gw, pkt, t);
    else if (!(t->flags & TCP_RST))
      rst_for(gw, pkt, t);
    return;
  }
  if (c->state == TCP_S_SYN_SENT) {
    inbound_answer(gw, c, t);
    conn_reap(gw, c);
    return;
  }
  c->last_ns = *gw->now;
  if (t->flags & TCP_RST) {
    gw->ctr.tcp_rst_in++;
    conn_end(gw, c, false, true);
    conn_reap(gw, c);
    return;
  }
  if (c->state == TCP_S_CONNECTING)
    return; /* a retransmitted SYN: the connect is still running */
  if (t->flags & TCP_SYN) {
    if (t->seq + 1 == c->rcv_nxt && c->snd_una == c->snd_nxt && !c->staged)
      syn_ack(gw, c);
    return;
  }
  /* ACK of our data */
  if (t->flags & TCP_ACK) {
    if (seq_lt(c->snd_una, t->ack) && seq_leq(t->ack, c->snd_max)) {
      uint32_t acked = t->ack - c->snd_una;
      bool fin_acked = c->fin_ever && t->ack == c->fin_seq + 1;
      if (fin_acked)
        acked--; /* the FIN is not a byte in the kernel */
      if (seq_lt(c->snd_nxt, t->ack)) {
        /* after a rewind, the guest had more than we resent: go on from
         * its ACK (the peek offset follows snd_nxt) */
        c->snd_nxt = t->ack;
        c->need_rewind = true;
        c->peek_epoch++;
        if (fin_acked) {
          c->fin_sent = true;
          c->host_eof = true;
        }
      }
      c->snd_una = t->ack;
      c->discard_pending += acked;
      c->tx_held = false;
      if (c->in_recovery && seq_lt(t->ack, c->recover)) {
        /* partial ACK: the next hole, at once */
        c->retx_pending = true;
        c->retx_seq = t->ack;
      } else if (c->in_recovery) {
        c->in_recovery = false; /* everything sent before the loss is in */
      }
      /* slow start below ssthresh, then about one segment per window */
      if (c->in_recovery)
        ; /* no growth while holes are being filled */
      else if (c->cwnd < c->ssthresh)
        c->cwnd += acked < c->mss ? acked : c->mss;
      else
        c->cwnd += (uint32_t)((uint64_t)c->mss * c->mss / (c->cwnd ? c->cwnd : 1)) + 1;
      if (c->cwnd > TCP_CWND_MAX)
        c->cwnd = TCP_CWND_MAX;
      c->dupacks = 0;
      c->rto_count = 0;
      if (c->rtt_seq_valid && seq_leq(c->rtt_seq, t->ack)) {
        uint64_t r = *gw->now - c->rtt_t;
        if (!c->srtt) {
          c->srtt = r;
          c->rttvar = r / 2;
        } else {
          uint64_t d = r > c->srtt ? r - c->srtt : c->srtt - r;
          c->rttvar = (3 * c->rttvar + d) / 4;
          c->srtt = (7 * c->srtt + r) / 8;
        }
        c->rto_ns = c->srtt + 4 * c->rttvar;
        if (c->rto_ns < 200 * NS_PER_MS)
          c->rto_ns = 200 * NS_PER_MS;
        c->rtt_seq_valid = false;
      }
      c->tlp_done = false; /* progress: the next flight gets its probe */
      if (c->snd_una == c->snd_nxt)
        arm_timer(gw, c, 10000 * NS_PER_MS);
      else
        arm_rto(gw, c);
    } else if (t->ack == c->snd_una && !t->len && c->snd_nxt != c->snd_una &&
               !(t->flags & TCP_FIN) &&
               (t->nsack ||
                ((uint32_t)t->window << (c->g_wscale > 0 ? c->g_wscale : 0)) == c->g_wnd)) {
      /* a duplicate ACK: the same window (RFC 5681), or SACK blocks, which
       * say the same unambiguously while the guest's window shrinks by the
       * out-of-order data it holds */
      if (++c->dupacks == 3 && !c->in_recovery) {
        /* fast retransmit of the first hole only; new data goes on as the
         * window allows (NewReno) */
        congestion(c, false);
        c->in_recovery = true;
        c->recover = c->snd_nxt;
        c->retx_pending = true;
        c->retx_seq = c->snd_una;
      } else if (c->in_recovery && !c->retx_pending &&
                 *gw->now - c->retx_t > c->srtt + c->srtt / 4 + NS_PER_MS) {
        /* still reported missing a round trip after we resent it: that
         * retransmission was lost too; resend it now rather than wait for
         * the RTO (as RACK would) */
        c->retx_pending = true;
        c->retx_seq = c->snd_una;
      }
    }
    c->g_wnd = (uint32_t)t->window << (c->g_wscale > 0 ? c->g_wscale : 0);
    if (!c->g_wnd && !timer_armed(&c->timer))
      arm_timer(gw, c, c->rto_ns);
    if (c->state != TCP_S_OPEN) {
      conn_reap(gw, c); /* reset above: no timer could be armed */
      return;
    }
  }
  /* the guest's data and FIN */
  uint32_t expect = c->rcv_nxt + c->staged;
  if (!t->len && !(t->flags & TCP_FIN) && seq_lt(t->seq, c->rcv_nxt))
    ack_now(gw, c); /* a window probe or keep-alive: answer with our window */
  if (t->len && !c->guest_fin)
    expect = guest_data(gw, c, t);
  if ((t->flags & TCP_FIN) && !c->guest_fin && t->seq + (uint32_t)t->len == expect) {
    c->guest_fin = true;
    try_send(gw, c);
  } else if ((t->flags & TCP_FIN) && c->guest_fin && c->host_shut) {
    ack_now(gw, c); /* a retransmitted FIN */
  }
  try_rx(gw, c);
  maybe_finished(gw, c);
  conn_reap(gw, c);
}

int nat_tcp_init(struct gateway *gw)
{
  if (!gw->p.max_tcp_conns)
    return 0; /* TCP NAT off: every SYN is answered with RST */
  if (gw->p.max_tcp_conns > 0xfffe)
    return -EINVAL;
  gw->tcp = calloc(gw->p.max_tcp_conns, sizeof(*gw->tcp));
  gw->tcp_scratch = malloc(TCP_PEEK_CAP);
  if (!gw->tcp || !gw->tcp_scratch)
    return -ENOMEM;
  for (uint32_t i = 0; i < gw->p.max_tcp_conns; i++)
    gw->tcp[i].fd = -1;
  return io_set_handler(gw->io, IO_OP_NAT_TCP, on_cqe, gw);
}

void nat_tcp_fini(struct gateway *gw)
{
  for (uint32_t i = 0; gw->tcp && i < gw->p.max_tcp_conns; i++) {
    struct nat_tcp_conn *c = &gw->tcp[i];
    if (c->used) {
      if (c->state != TCP_S_DEAD)
        timer_disarm(gw->timers, &c->timer);
      if (c->fd >= 0)
        close(c->fd);
      free(c->stage);
      free(c->peekbuf);
    }
  }
  for (uint32_t i = 0; gw->tcp && i < gw->p.max_tcp_conns; i++)
    flowtab_free(gw->flows, FT_TCP, i);
  free(gw->tcp);
  free(gw->tcp_scratch);
  gw->tcp = NULL;
  gw->tcp_scratch = NULL;
}

void nat_tcp_room_gone(struct gateway *gw, uint32_t room)
{
  for (uint32_t i = 0; gw->tcp && i < gw->p.max_tcp_conns; i++) {
    struct nat_tcp_conn *c = &gw->tcp[i];
    if (c->used && c->state != TCP_S_DEAD && c->room == room) {
      conn_end(gw, c, false, true);
      conn_reap(gw, c);
    }
  }
}
