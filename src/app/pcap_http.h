/*
 * pcap_http: GET /rooms/<room>/pcap?seconds=N on the ops listener, a
 * stream (ops_stream_ops) of the room's frames as pcap (capture.h).
 *
 * Owns: the parsing of the path and query: <room> is the room's URL path
 * as one percent-encoded segment (%2Flab, or lab: the leading '/' is
 * added), seconds from 1 to CAPTURE_MAX_SECONDS (default
 * CAPTURE_DEFAULT_SECONDS; beyond the bounds 400). A room no worker holds
 * is 404; CAPTURE_HTTP_MAX streams at once, the next 429.
 * Talks to: the room directory (does the room exist), the capture table.
 * Never: touches a socket (the ops listener sends).
 */
#ifndef WTRELAY_APP_PCAP_HTTP_H
#define WTRELAY_APP_PCAP_HTTP_H

#include "wtrelay/capture.h"
#include "wtrelay/ops.h"
#include "wtrelay/roomdir.h"

/* ops_stream_ops.open for the capture table h and the directory d. */
int pcap_http_open(struct capture_hub *h, struct roomdir *d, const char *path, const char *query,
                   void **stream, const char **ctype, uint64_t *max_ns, struct ops_buf *b);

#endif
