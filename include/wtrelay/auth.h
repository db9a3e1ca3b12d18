/*
 * auth: access control of the extended CONNECT (tokens and origins).
 *
 * Owns: the token key (--auth-key, reloaded like the certificate), the
 * verification of a JSON Web Token against it (libjwt with its GnuTLS
 * backend: HS256 for a shared secret, ES256 for a PEM public key), the
 * claims the relay acts on (exp, nbf, room, mac, sub, max_sessions), the
 * origin allow-list match (--allow-origin), a bounded table of live
 * sessions per token subject, the refusal counters by reason, and the
 * signing the `wtrelay token` subcommand (src/app/token.c) mints tokens
 * with.
 * Talks to: nothing at run time but the file system (the key file); the
 * relay calls auth_admit() from its CONNECT handler and auth_release() when
 * a session ends, the server polls auth_key_check().
 * Never: sees the network; auth_verify() and auth_origin_match() are pure
 * functions of their arguments (unit tests need no relay).
 *
 * The algorithm comes from the key, never from the token: a token whose
 * header names another algorithm (HS256 offered to an ES256 key, signed
 * with the public key's PEM text as the secret, or "none") is refused
 * before any signature check.
 */
#ifndef WTRELAY_AUTH_H
#define WTRELAY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "wtrelay/config.h"
#include "wtrelay/counter.h"

#define AUTH_SUB_MAX 128
#define AUTH_ROOM_MAX 256
#define AUTH_TOKEN_MAX 4096

enum auth_alg {
  AUTH_ALG_NONE = 0, /* no key */
  AUTH_ALG_HS256,    /* shared secret: the file's bytes, a trailing newline dropped */
  AUTH_ALG_ES256,    /* PEM key on P-256: public (verify) or private (mint) */
};

struct auth_key {
  enum auth_alg alg;
  bool is_private;      /* ES256: a private key (wtrelay token), not for the relay */
  unsigned char *bytes; /* owned: the secret, or the PEM text (NUL-terminated) */
  size_t len;
};

/* What a valid token grants. */
struct auth_claims {
  int64_t exp, nbf; /* nbf 0 = none */
  char room[AUTH_ROOM_MAX];
  bool has_mac;
  uint8_t mac[6];
  char sub[AUTH_SUB_MAX]; /* "" = none */
  uint32_t max_sessions;  /* live sessions of sub; 0 = no bound */
};

/* Why a CONNECT was refused (also the metric label, auth_reason_name). */
enum auth_reason {
  AUTH_OK = 0,
  AUTH_MISSING,       /* 401: no token in the query */
  AUTH_MALFORMED,     /* 401: not a JWT, or claims of the wrong type */
  AUTH_BAD_ALG,       /* 401: the header names another algorithm than the key's */
  AUTH_BAD_SIGNATURE, /* 401 */
  AUTH_NO_EXP,        /* 401: exp is required */
  AUTH_EXPIRED,       /* 401 */
  AUTH_NOT_YET_VALID, /* 401: nbf in the future */
  AUTH_ROOM,          /* 403: valid token, the room is not granted */
  AUTH_ORIGIN,        /* 403: Origin not in --allow-origin */
  AUTH_NO_ORIGIN,     /* 403: no Origin, --allow-origin given and no --auth-key */
  AUTH_SUBJECT_LIMIT, /* 429: the subject has max_sessions live sessions */
  AUTH_SUBJECT_FULL,  /* 503: the subject table is full */
  AUTH_NREASONS
};

struct auth_counters {
  uint64_t accepted; /* CONNECTs that passed (with a token or an allowed origin) */
  uint64_t refused[AUTH_NREASONS];
  uint64_t register_refused_mac; /* Register of a MAC the token does not name */
  uint64_t key_reloads, key_reload_failures;
};

/* Live sessions of one token subject. */
struct auth_subject {
  char sub[AUTH_SUB_MAX];
  uint32_t live; /* 0 = free slot */
};

struct auth {
  const struct config *cfg; /* borrowed: key path, skew, origins */
  struct auth_key key;      /* alg NONE without --auth-key */
  struct stat key_st;
  struct auth_subject *subjects; /* max_subjects, made at init */
  uint32_t max_subjects;
  struct auth_counters ctr;
};

/* Parses key material: a PEM EC P-256 public key ("-----BEGIN PUBLIC
 * KEY-----") or private key (PKCS#8 or SEC1) is ES256, anything else is an
 * HS256 secret (its bytes without one trailing "\n" or "\r\n"; empty is
 * refused). Returns 0 or -EINVAL with a message in err. */
int auth_key_parse(struct auth_key *k, const unsigned char *data, size_t len, char *err,
                   size_t errlen);
/* auth_key_parse of a file's content (at most 64 KiB). */
int auth_key_load(struct auth_key *k, const char *path, char *err, size_t errlen);
void auth_key_fini(struct auth_key *k);

/* Verifies `token` against k at `now` (Unix seconds), allowing skew_s of
 * clock difference on exp and nbf, and checks that it grants `room` (the
 * CONNECT path without the query). Fills *out (may be NULL) on AUTH_OK.
 * k must be a verification key (HS256 secret or ES256 public key). */
enum auth_reason auth_verify(const struct auth_key *k, const char *token, int64_t now,
                             uint32_t skew_s, const char *room, struct auth_claims *out);

/* Does the room claim `grant` cover `room`? Either exactly, or a grant
 * that ends in a slash and a star (a prefix grant) covers every room that
 * starts with the grant minus its star: the grant "/lab/" + "*" covers
 * "/lab/x", not "/lab" or "/labx"; "/" + "*" covers every room. */
bool auth_room_granted(const char *grant, const char *room);

/* The token of a CONNECT's query (`token=` or `jwt=`, the first one), into
 * out. Returns its length, 0 when there is none, -ENAMETOOLONG. */
int auth_query_token(const char *query, char *out, size_t cap);

/* Origin allow-list. A pattern is an origin, `scheme://host[:port]`, or a
 * wildcard, scheme + "://" + "*." + domain [+ ":port"]: then the origin's
 * host must be a proper subdomain of domain, any depth, with the same
 * scheme and port. With the wildcard for example.org, https://a.example.org,
 * https://a.b.example.org and https://evil.com.example.org match (all are
 * names under example.org, which its owner controls); https://example.org,
 * https://example.org.evil.com, http://a.example.org and
 * https://a.example.org:8443 do not. Case-insensitive. */
bool auth_origin_match(const char *pattern, const char *origin);
/* 0 when pattern is a valid --allow-origin value, else -EINVAL. */
int auth_origin_pattern_check(const char *pattern);

/* Metric label and HTTP status of a reason. */
const char *auth_reason_name(enum auth_reason r);
int auth_reason_status(enum auth_reason r);

/* Signs claims_json (a JSON object) with k: HS256 with a secret, ES256 with
 * a private key. Writes the token to out. Returns its length or a negative
 * errno. */
int auth_token_sign(const struct auth_key *k, const char *claims_json, char *out, size_t cap);

/* Loads --auth-key (when given) and sizes the subject table from
 * --max-sessions. Logs and returns a negative errno on failure. */
int auth_init(struct auth *a, const struct config *cfg);
void auth_fini(struct auth *a);
/* Reloads the key file when it changed (or always with force): a key that
 * does not load is logged and the old one stays. */
void auth_key_check(struct auth *a, bool force);

/* Decides one CONNECT: the origin ("" = no Origin header) against the
 * allow-list, then the token of `query` against the key and `room`, then
 * the subject's live sessions. On AUTH_OK *subject is the subject slot + 1
 * to give back with auth_release (0 = none) and *out the claims (zeroed
 * without a key). Counts the result. now is Unix seconds. */
enum auth_reason auth_admit(struct auth *a, const char *origin, const char *query, const char *room,
                            int64_t now, struct auth_claims *out, uint32_t *subject);
/* A session admitted with subject (slot + 1) ended. */
void auth_release(struct auth *a, uint32_t subject);

/* The counters' table (wtrelay/counter.h): /metrics and the exit log
 * are written from it. */
extern const struct counter_table auth_counter_table;

#endif
