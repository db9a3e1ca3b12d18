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

/* cfg and cert are borrowed and must outlive the server. */
int server_new(struct server **out, const struct config *cfg, const struct tls_cert *cert);
uint16_t server_port(const struct server *s);
/* Runs until SIGINT/SIGTERM; returns 0 after a clean shutdown. */
int server_run(struct server *s);
void server_free(struct server *s);

#endif
