/*
 * h3_qpack: field sections (the payload of HEADERS frames) for the extended
 * CONNECT that opens a WebTransport session, through nghttp3's public QPACK
 * API (RFC 9204).
 *
 * We advertise QPACK_MAX_TABLE_CAPACITY = 0 and QPACK_BLOCKED_STREAMS = 0,
 * so both directions use the static table and literals only: nothing is
 * ever written to a QPACK encoder or decoder stream, and no field section
 * can block. nghttp3 allocates per call (rcbufs, output buffers); that is
 * fine here, a connection sends and receives one or two HEADERS.
 *
 * State: a struct h3_qpack per connection holds one nghttp3 encoder and one
 * decoder (both capacity 0). Every function also accepts q == NULL and then
 * uses a temporary encoder/decoder for that one call, which is what the
 * tests and fuzzers do. Note that nghttp3 marks a decoder as failed for good
 * after any decoding error; that matches RFC 9204, where such an error
 * (QPACK_DECOMPRESSION_FAILED) closes the connection.
 *
 * Validation is ours (nghttp3's QPACK layer does none): names must be
 * lowercase tokens, values free of NUL/CR/LF, pseudo-headers known, unique
 * and before regular fields, connection-specific fields absent, and the
 * request must be a well-formed HTTP/3 request (RFC 9114 section 4.3.1,
 * RFC 9220 for :protocol). Regular fields other than origin and
 * sec-webtransport-http3-draft02 are ignored.
 *
 * Errors: peer-caused failures are returned, not logged (the caller counts
 * and rate-limits); nghttp3 failures while encoding our own fields are
 * logged here once.
 */
#ifndef WTRELAY_H3_QPACK_H
#define WTRELAY_H3_QPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nghttp3_qpack_encoder;
struct nghttp3_qpack_decoder;
struct nghttp3_mem;

struct h3_qpack {
  struct nghttp3_qpack_encoder *enc; /* owned */
  struct nghttp3_qpack_decoder *dec; /* owned */
  const struct nghttp3_mem *mem;     /* borrowed: what enc and dec allocate with */
};

/* A decoded request. Strings are NUL-terminated and valid only when the
 * matching has_* is set; a value that does not fit its array makes the
 * request malformed. */
struct h3_request {
  char method[16];
  char scheme[16];
  char protocol[32];
  char authority[256];
  char path[1024]; /* with query: selects the room, may carry a token */
  char origin[256];
  bool has_method, has_scheme, has_protocol, has_authority, has_path, has_origin;
  bool wt_draft02; /* sec-webtransport-http3-draft02 present (Chromium) */
};

/* mem (borrowed, outlives q) is the allocator of q's nghttp3 state; NULL:
 * nghttp3's default. The state is made on first use. Returns 0. */
int h3_qpack_init(struct h3_qpack *q, const struct nghttp3_mem *mem);
/* Frees q's state; q may be zeroed or already finished. An initialized q
 * stays usable: its state is made again on use (with a table capacity of
 * 0 nothing is lost). */
void h3_qpack_fini(struct h3_qpack *q);

/* Bytes from the peer's QPACK encoder stream (after its stream type byte).
 * With our capacity of 0 the only valid instruction is "set capacity 0"
 * (Firefox sends it); anything else returns -EPROTO: connection error
 * H3_QPACK_ENCODER_STREAM_ERROR. -ENOMEM. Reading is optional: discarding
 * the stream is also correct. */
int h3_qpack_read_encoder_stream(struct h3_qpack *q, const uint8_t *data, size_t len);

/* Decodes a complete request field section into *out (fully written).
 * Returns:
 *   0        a well-formed request: either an extended CONNECT (has_protocol,
 *            with :scheme, :authority, :path) or any other well-formed
 *            request; the caller decides what it serves
 *   -EINVAL  malformed request: missing, duplicated, unknown or misplaced
 *            pseudo-header, uppercase or invalid name, invalid value, value
 *            longer than its array, duplicated origin. Answer 400 (or reset
 *            with H3_MESSAGE_ERROR).
 *   -EPROTO  the QPACK bytes are invalid (connection error
 *            H3_QPACK_DECOMPRESSION_FAILED)
 *   -ENOMEM */
int h3_qpack_decode_request(struct h3_qpack *q, const uint8_t *field_section, size_t len,
                            struct h3_request *out);

/* Encodes a response field section (":status", and with
 * webtransport_draft_header "sec-webtransport-http3-draft: draft02") into
 * buf. Returns its length, -EINVAL for a status outside 100..599, -ENOSPC,
 * -ENOMEM, -EPROTO (nghttp3 failure, logged). */
int h3_qpack_encode_response(struct h3_qpack *q, uint8_t *buf, size_t cap, int status,
                             bool webtransport_draft_header);

/* Client side: encodes the extended CONNECT for a WebTransport session, in
 * Chromium's order: :method CONNECT, :scheme https, :authority, :path,
 * :protocol webtransport, sec-webtransport-http3-draft02: 1, origin.
 * origin may be NULL or "" (omitted). Returns the length, -EINVAL for an
 * empty or invalid authority/path/origin, -ENOSPC, -ENOMEM, -EPROTO. */
int h3_qpack_encode_connect_request(struct h3_qpack *q, uint8_t *buf, size_t cap,
                                    const char *authority, const char *path, const char *origin);

/* Client side: decodes a response field section and gives its :status
 * (100..599; a 1xx is an interim response, a final one follows).
 * Returns 0, -EINVAL (malformed response), -EPROTO, -ENOMEM as above. */
int h3_qpack_decode_response_status(struct h3_qpack *q, const uint8_t *field_section, size_t len,
                                    int *status);

#endif
