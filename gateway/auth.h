/* auth.h -- operator authentication for callbus-gateway: verify the JWT the
 * CRM signs and turn it into an identity.
 *
 * The CRM and the gateway share either an HS256 secret or the CRM's RS256
 * public key; the token is checked locally, with no round trip to the CRM,
 * so a WAN outage does not lock operators out. Everything the gateway knows
 * about who is on the other end of a WebSocket comes from auth_verify(): the
 * browser never gets to name an operator, site or role itself.
 *
 * The algorithm is pinned by configuration, never taken from the token: a
 * token whose header names another algorithm (including "none") is refused
 * before its signature or claims are looked at. This is what stops the
 * classic confusion attack of an HS256 token "signed" with the RS256 public
 * key, which libjwt 1.10 would otherwise accept.
 *
 * Claims:
 *   sub   operator id, required, [A-Za-z0-9_.-]{1,63}
 *   site  required, must equal the gateway's site
 *   role  required, "operator" or "supervisor"
 *   exp   required, seconds since the epoch
 *   nbf   optional; the token is refused before it
 *   iat   optional; a token issued in the future is refused, and a renewal
 *         may not go back to a token issued before the one in use
 *   iss   checked only when the configuration names an issuer
 *   aud   checked only when the configuration names an audience: a string
 *         equal to it, or an array holding it (RFC 7519 4.1.3)
 *   name  optional display name, truncated to fit
 * Time checks allow leeway_s of clock skew either way.
 *
 * WebSocket close codes (RFC 6455 private range), sent by the gateway when it
 * drops a connection because of its token:
 *   4001  token invalid: malformed, forged, wrong algorithm, missing or bad
 *         claim, wrong issuer, or a renewal for a different operator. The
 *         browser must fetch a new token from the CRM; retrying with the same
 *         one will fail the same way.
 *   4002  token expired (or not valid yet): fetch a fresh token and
 *         reconnect. A live connection whose token reaches its exp without a
 *         renewal is closed with this code.
 *   4003  token is for another site: the browser is talking to the wrong
 *         gateway.
 *   1011  the gateway's own authentication settings are unusable (server
 *         fault, see the gateway log).
 *
 * Tokens are secrets: nothing here logs them, and callers must not either. */
#ifndef CALLBUS_GATEWAY_AUTH_H
#define CALLBUS_GATEWAY_AUTH_H

#include <stddef.h>

/* Largest token accepted; real ones are well under 1 KiB. */
#define AUTH_MAX_TOKEN 8192

#define AUTH_HS256 1
#define AUTH_RS256 2

#define AUTH_CLOSE_INVALID 4001
#define AUTH_CLOSE_EXPIRED 4002
#define AUTH_CLOSE_WRONG_SITE 4003
#define AUTH_CLOSE_SERVER_ERROR 1011

typedef enum { ROLE_OPERATOR, ROLE_SUPERVISOR } auth_role;

typedef struct auth_identity {
    char operator_id[64];
    char site[64];
    auth_role role;
    double expires;            /* exp, seconds since the epoch */
    double issued;             /* iat, seconds since the epoch; 0 when absent */
    char name[128];            /* display name, "" when the token has none */
} auth_identity;

typedef struct auth_config {
    int alg;                   /* AUTH_HS256 or AUTH_RS256 */
    const unsigned char *key;  /* HS256 secret, or RS256 public key PEM */
    size_t key_len;
    const char *site;          /* this gateway's site */
    double leeway_s;           /* allowed clock skew, seconds */
    const char *issuer;        /* optional: required iss when set */
    const char *audience;      /* optional: required in aud when set */
} auth_config;

typedef enum {
    AUTH_OK,
    AUTH_MALFORMED,
    AUTH_BAD_SIGNATURE,
    AUTH_WRONG_ALG,
    AUTH_EXPIRED,
    AUTH_NOT_YET_VALID,
    AUTH_WRONG_SITE,
    AUTH_MISSING_CLAIM,
    AUTH_BAD_ROLE,
    AUTH_WRONG_ISSUER,
    AUTH_WRONG_AUDIENCE,
    AUTH_SUBJECT_CHANGED,      /* auth_renew: token names another operator */
    AUTH_OLDER_TOKEN,          /* auth_renew: issued before the one in use */
    AUTH_BAD_CONFIG            /* the auth_config itself is unusable */
} auth_result;

/* NULL when cfg is usable, else why not (for the startup error message):
 * unknown alg, empty or short HS256 secret (< 32 bytes, RFC 7518 3.2), RS256
 * key that is not a public key PEM, missing or overlong site. Checked at
 * startup so a typo stops the gateway instead of refusing every operator. */
const char *auth_config_problem(const auth_config *cfg);

/* Verifies token at time now (seconds since the epoch). On AUTH_OK fills
 * *out; on anything else *out is zeroed. */
auth_result auth_verify(const auth_config *cfg, const char *token, double now,
                        auth_identity *out);

/* Token renewal on a live connection: verifies token as auth_verify does and
 * also requires it to name the same operator and site as *current, since a
 * connection never changes hands, and not to be older: when the token in
 * use has an iat, the new one needs one at least as late, or a token
 * captured earlier (say, from before a demotion) could be renewed back
 * into. The role may change (a promotion takes effect on the next
 * renewal). On AUTH_OK the caller replaces *current with
 * *out; on failure it closes the connection with auth_close_code(). */
auth_result auth_renew(const auth_config *cfg, const auth_identity *current,
                       const char *token, double now, auth_identity *out);

/* A reason a person can act on, e.g. for the gateway log or the close
 * frame's reason text. Never contains any part of the token. */
const char *auth_result_text(auth_result r);

/* The WebSocket close code for a refused token (see above); 1000 for AUTH_OK. */
int auth_close_code(auth_result r);

#endif
