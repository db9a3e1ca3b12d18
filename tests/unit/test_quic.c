/*
 * quic: the client's side of its QUIC path. A client socket bound to a
 * wildcard address must name a real address of this host as the local
 * address of its path (the one the relay's packets will arrive on), never
 * the remote's address (which is right only on loopback).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ifaddrs.h>
#include <string.h>

#include "wtrelay/io.h"
#include "wtrelay/quic.h"
#include "wtrelay/worker.h"

static const struct quic_app_ops no_ops = {0};

static bool is_host_address(const union io_sockaddr *a)
{
  struct ifaddrs *ifs, *i;
  bool found = false;
  cr_assert_eq(getifaddrs(&ifs), 0);
  for (i = ifs; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != a->sa.sa_family)
      continue;
    if (a->sa.sa_family == AF_INET)
      found = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == a->in.sin_addr.s_addr;
    else
      found = memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, &a->in6.sin6_addr, 16) == 0;
  }
  freeifaddrs(ifs);
  return found;
}

/* A client endpoint on a socket bound to `bind_addr`. */
struct client_env {
  struct worker w;
  struct quic_endpoint ep;
  struct io_udp_sock *s;
};

static void client_env_init(struct client_env *e, const char *bind_addr)
{
  struct io_params iop;
  io_params_default(&iop);
  iop.rx_bufs = 8;
  cr_assert_eq(worker_init(&e->w, 0, &iop, 16), 0);
  cr_assert_eq(io_udp_open(&e->w.io, bind_addr, 0, quic_endpoint_on_packet, &e->ep, &e->s), 0);
  struct quic_params qp;
  quic_params_default(&qp);
  qp.max_conns = 4;
  qp.dgram_pool = 8;
  cr_assert_eq(quic_endpoint_init(&e->ep, &e->w, e->s, NULL, false, &qp, &no_ops, NULL), 0);
}

static void client_env_fini(struct client_env *e)
{
  quic_endpoint_fini(&e->ep);
  worker_fini(&e->w);
}

/* Starts a connection to remote:443; 0 or the negative errno. */
static int client_connect(struct client_env *e, const char *remote, struct quic_conn **c)
{
  union io_sockaddr ra;
  socklen_t ralen;
  cr_assert_eq(io_sockaddr_parse(remote, 443, &ra, &ralen), 0);
  return quic_client_connect(&e->ep, &ra, ralen, "localhost", NULL, c);
}

/* Connects from a socket bound to `bind_addr` to remote:443 and returns the
 * path's local address (the connection is deleted with the endpoint). */
static void client_local(const char *bind_addr, const char *remote, union io_sockaddr *local,
                         uint16_t *sock_port)
{
  struct client_env e;
  client_env_init(&e, bind_addr);
  struct quic_conn *c = NULL;
  cr_assert_eq(client_connect(&e, remote, &c), 0);
  *local = c->local.addr;
  *sock_port = e.s->port;
  client_env_fini(&e);
}

Test(quic, wildcard_ipv4_client_names_a_host_address)
{
  union io_sockaddr l;
  uint16_t port;
  /* 127.0.0.2 is routed through lo with source 127.0.0.1: the remote's own
   * address (the old choice) is not an address of this host. */
  client_local("0.0.0.0", "127.0.0.2", &l, &port);
  cr_assert_eq(l.sa.sa_family, AF_INET);
  char buf[64];
  inet_ntop(AF_INET, &l.in.sin_addr, buf, sizeof(buf));
  cr_assert_str_eq(buf, "127.0.0.1");
  cr_assert(is_host_address(&l), "%s is not an address of this host", buf);
  cr_assert_eq(ntohs(l.in.sin_port), port, "the path's port is the socket's");
}

Test(quic, wildcard_ipv6_client_names_a_host_address)
{
  union io_sockaddr l;
  uint16_t port;
  client_local("::", "::1", &l, &port);
  cr_assert_eq(l.sa.sa_family, AF_INET6);
  cr_assert(IN6_IS_ADDR_LOOPBACK(&l.in6.sin6_addr));
  cr_assert(is_host_address(&l));
  cr_assert_eq(ntohs(l.in6.sin6_port), port);
}

Test(quic, dual_stack_client_to_mapped_ipv4_names_the_mapped_source)
{
  union io_sockaddr l;
  uint16_t port;
  client_local("::", "::ffff:127.0.0.2", &l, &port);
  cr_assert_eq(l.sa.sa_family, AF_INET6);
  cr_assert(IN6_IS_ADDR_V4MAPPED(&l.in6.sin6_addr));
  union io_sockaddr v4 = {.in = {.sin_family = AF_INET}};
  memcpy(&v4.in.sin_addr, &l.in6.sin6_addr.s6_addr[12], 4);
  char buf[64];
  inet_ntop(AF_INET, &v4.in.sin_addr, buf, sizeof(buf));
  cr_assert_str_eq(buf, "127.0.0.1");
  cr_assert(is_host_address(&v4));
  cr_assert_eq(ntohs(l.in6.sin6_port), port);
}

Test(quic, unroutable_remote_is_an_error_not_a_guess)
{
  struct client_env e;
  client_env_init(&e, "0.0.0.0");
  /* The broadcast address cannot be connected to without SO_BROADCAST. */
  struct quic_conn *c = NULL;
  cr_assert_lt(client_connect(&e, "255.255.255.255", &c), 0);
  cr_assert_eq(quic_endpoint_active(&e.ep), 0);
  client_env_fini(&e);
}
