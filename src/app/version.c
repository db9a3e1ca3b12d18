/*
 * version: what `PROG --version` prints. The libraries are asked for their
 * own version at run time (the shared object that was loaded, not the
 * header the program was built with), except liburing before 2.4, which
 * has no such call: its pkg-config version at build time is printed and
 * marked so.
 */
#include "cli.h"

#include <gnutls/gnutls.h>
#include <jansson.h>
#include <liburing.h>
#include <nats/nats.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>

#ifndef WTRELAY_URING_VERSION
#define WTRELAY_URING_VERSION "unknown"
#endif

void cli_version_print(FILE *f, const char *prog)
{
  fprintf(f, "%s %s\n", prog, WTRELAY_VERSION);
  fprintf(f, "ngtcp2 %s\n", ngtcp2_version(0)->version_str);
  fprintf(f, "nghttp3 %s\n", nghttp3_version(0)->version_str);
  fprintf(f, "GnuTLS %s\n", gnutls_check_version(NULL));
#ifdef IO_URING_VERSION_MAJOR
  fprintf(f, "liburing %d.%d\n", io_uring_major_version(), io_uring_minor_version());
#else
  fprintf(f, "liburing %s (at build time)\n", WTRELAY_URING_VERSION);
#endif
  fprintf(f, "libnats %s\n", nats_GetVersion());
  fprintf(f, "jansson %s\n", jansson_version_str());
}
