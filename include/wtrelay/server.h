/*
 * server: the relay process as one object. Builds the worker, opens the
 * QUIC socket, wires quic -> h3 -> relay, and runs until a stop signal.
 */
#ifndef WTRELAY_SERVER_H
#define WTRELAY_SERVER_H

#include <stdint.h>

#include "wtrelay/config.h"
#include "wtrelay/tls.h"

struct server;

/* Timers the worker's heap must hold at once for cfg: every bound that
 * owns a timer (per QUIC connection, per h3 connection, per relay peer, per
 * TCP NAT connection) plus the fixed ones. */
uint32_t server_timers_needed(const struct config *cfg);

/* cfg is borrowed and must outlive the server. The certificate is taken
 * (moved into a shared object, tls.h; tls_cert_fini on *cert afterwards
 * does nothing): the server reloads, rotates and frees certificates from
 * then on. */
int server_new(struct server **out, const struct config *cfg, struct tls_cert *cert);
/* The certificate in use now. */
const struct tls_cert *server_cert(const struct server *s);
uint16_t server_port(const struct server *s);
/* The address the QUIC socket is bound to: --bind, or 0.0.0.0 when the
 * default "::" fell back on a host without IPv6. */
const char *server_bind(const struct server *s);
/* Runs until SIGINT/SIGTERM; returns 0 after a clean shutdown. */
int server_run(struct server *s);
void server_free(struct server *s);

#endif
