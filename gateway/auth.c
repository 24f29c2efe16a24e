/* auth.c -- verify the CRM's JWT and extract the operator's identity.
 *
 * libjwt 1.10 does the signature check; everything around it is here because
 * libjwt's own jwt_decode() is too trusting to be used on its own:
 *
 *   - it believes the token's "alg" header: given an RS256 public key PEM it
 *     happily verifies an HS256 token whose HMAC secret is that PEM (anyone
 *     can compute it), so the algorithm is pinned from configuration and
 *     compared against the header before jwt_decode() runs, and again after;
 *   - with a NULL key, or a key_len of 0, it verifies nothing at all and
 *     accepts any token, forged or "alg":"none"; auth_config_problem() and
 *     check_config() make sure that can never be what we pass it;
 *   - it checks no claims, not even exp.
 *
 * See auth.h for the claims and the close codes. */
#include "auth.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <string.h>

/* RFC 7518 3.2: an HS256 key must be at least as long as the hash. */
#define HS256_MIN_KEY 32
#define MAX_KEY_LEN 16384
#define MAX_HEADER_LEN 1024

static const char *alg_name(int alg) {
    switch (alg) {
    case AUTH_HS256: return "HS256";
    case AUTH_RS256: return "RS256";
    default: return NULL;
    }
}

static jwt_alg_t alg_jwt(int alg) {
    return alg == AUTH_HS256 ? JWT_ALG_HS256 : JWT_ALG_RS256;
}

/* The checks cheap enough to repeat on every token, so a config that slipped
 * past startup still fails closed instead of reaching jwt_decode() with no
 * key (which would accept anything). */
static const char *check_config(const auth_config *cfg) {
    if (!cfg) return "no authentication settings";
    if (!alg_name(cfg->alg)) return "token algorithm must be HS256 or RS256";
    if (!cfg->key || cfg->key_len == 0) return "no token key configured";
    if (cfg->key_len > MAX_KEY_LEN) return "token key is too long";
    if (cfg->alg == AUTH_HS256 && cfg->key_len < HS256_MIN_KEY)
        return "HS256 secret is shorter than 32 bytes";
    if (!cfg->site || !cfg->site[0]) return "no site configured";
    if (strlen(cfg->site) >= sizeof(((auth_identity *)0)->site))
        return "site name is longer than 63 bytes";
    if (!(cfg->leeway_s >= 0)) return "token leeway must be zero or more seconds";
    return NULL;
}

/* An RS256 key must be an RSA public key PEM: a private key here means the
 * gateway holds the CRM's signing key, which it must never have. */
static const char *check_rsa_public_pem(const unsigned char *pem, size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return "out of memory";
    EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    const char *why = NULL;
    if (!pkey)
        why = "RS256 key is not a public key PEM (\"BEGIN PUBLIC KEY\")";
    else if (!EVP_PKEY_is_a(pkey, "RSA"))
        why = "RS256 key is not an RSA key";
    else if (EVP_PKEY_get_bits(pkey) < 2048)
        why = "RS256 key is shorter than 2048 bits";
    EVP_PKEY_free(pkey);
    return why;
}

const char *auth_config_problem(const auth_config *cfg) {
    const char *why = check_config(cfg);
    if (!why && cfg->alg == AUTH_RS256)
        why = check_rsa_public_pem(cfg->key, cfg->key_len);
    return why;
}

static int b64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Unpadded base64url (RFC 7515 2) into out, NUL-terminated; -1 when the
 * input is not base64url or does not fit in cap - 1 bytes. */
static long b64url_decode(const char *in, size_t n, char *out, size_t cap) {
    if (n % 4 == 1 || n / 4 * 3 + 3 >= cap) return -1;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    return (long)o;
}

/* Shape check before any parsing: three dot-separated base64url parts, all
 * non-empty (with a pinned algorithm there is always a signature). Sets
 * *header_len to the length of the first part. */
static int token_shape_ok(const char *token, size_t len, size_t *header_len) {
    int dots = 0;
    size_t part = 0;
    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (part == 0) return 0;
            if (dots++ == 0) *header_len = i;
            part = 0;
        } else if (b64url_value((unsigned char)token[i]) < 0) {
            return 0;
        } else {
            part++;
        }
    }
    return dots == 2 && part > 0;
}

/* Reads the header's "alg" ourselves so the pinned algorithm is enforced
 * before libjwt sees the key. Duplicate keys are refused: two "alg" members
 * could otherwise be read differently by two parsers. */
static auth_result check_header_alg(const auth_config *cfg, const char *token,
                                    size_t header_len) {
    char header[MAX_HEADER_LEN];
    long n = b64url_decode(token, header_len, header, sizeof(header));
    if (n < 0) return AUTH_MALFORMED;
    json_t *h = json_loadb(header, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(h)) {
        json_decref(h);
        return AUTH_MALFORMED;
    }
    const char *alg = json_string_value(json_object_get(h, "alg"));
    auth_result r = !alg ? AUTH_MALFORMED
                  : strcmp(alg, alg_name(cfg->alg)) ? AUTH_WRONG_ALG : AUTH_OK;
    json_decref(h);
    return r;
}

/* Signature check by libjwt, then the claims as a jansson object (the
 * caller frees it). jwt_decode() fails alike for a bad signature and an
 * unparsable payload; after our header check a well-formed token that fails
 * is almost always forged, so both are reported as a bad signature. */
static auth_result verified_claims(const auth_config *cfg, const char *token,
                                   json_t **claims) {
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, cfg->key, (int)cfg->key_len) != 0 || !jwt) {
        jwt_free(jwt);
        return AUTH_BAD_SIGNATURE;
    }
    if (jwt_get_alg(jwt) != alg_jwt(cfg->alg)) {
        jwt_free(jwt);
        return AUTH_WRONG_ALG;
    }
    char *json = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    *claims = json ? json_loads(json, 0, NULL) : NULL;
    free(json);
    if (!json_is_object(*claims)) {
        json_decref(*claims);
        *claims = NULL;
        return AUTH_MALFORMED;
    }
    return AUTH_OK;
}

/* Operator ids end up in log lines, Kafka keys and filters, so only a
 * conservative alphabet is accepted rather than escaped everywhere. */
static int operator_id_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(((auth_identity *)0)->operator_id)) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* Display name only: cut at a UTF-8 character boundary (jansson guarantees
 * valid UTF-8) rather than refuse the operator over a long name. */
static void copy_name(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80) n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Optional time claim: absent is fine, present must be a number. */
static int optional_time(json_t *claims, const char *key, double *t, int *present) {
    json_t *v = json_object_get(claims, key);
    *present = v != NULL;
    if (!v) return 1;
    if (!json_is_number(v)) return 0;
    *t = json_number_value(v);
    return 1;
}

static auth_result check_times(const auth_config *cfg, json_t *claims, double now) {
    double exp = json_number_value(json_object_get(claims, "exp"));
    double nbf = 0, iat = 0;
    int has_nbf, has_iat;
    if (!optional_time(claims, "nbf", &nbf, &has_nbf) ||
        !optional_time(claims, "iat", &iat, &has_iat))
        return AUTH_MALFORMED;
    /* RFC 7519 4.1.4: the token is valid strictly before exp. */
    if (now >= exp + cfg->leeway_s) return AUTH_EXPIRED;
    if (has_nbf && now + cfg->leeway_s < nbf) return AUTH_NOT_YET_VALID;
    if (has_iat && now + cfg->leeway_s < iat) return AUTH_NOT_YET_VALID;
    return AUTH_OK;
}

/* RFC 7519 4.1.3: aud is one string or an array of them; ours must be one. */
static int audience_ok(json_t *aud, const char *want) {
    if (json_is_string(aud)) return !strcmp(json_string_value(aud), want);
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v) {
        if (json_is_string(v) && !strcmp(json_string_value(v), want)) return 1;
    }
    return 0;
}

static auth_result check_claims(const auth_config *cfg, json_t *claims, double now,
                                auth_identity *out) {
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    const char *site = json_string_value(json_object_get(claims, "site"));
    const char *role = json_string_value(json_object_get(claims, "role"));
    if (!sub || !site || !role || !json_is_number(json_object_get(claims, "exp")))
        return AUTH_MISSING_CLAIM;
    if (!operator_id_ok(sub)) return AUTH_MISSING_CLAIM;
    if (cfg->issuer) {
        const char *iss = json_string_value(json_object_get(claims, "iss"));
        if (!iss || strcmp(iss, cfg->issuer)) return AUTH_WRONG_ISSUER;
    }
    if (strcmp(site, cfg->site)) return AUTH_WRONG_SITE;
    if (cfg->audience && !audience_ok(json_object_get(claims, "aud"), cfg->audience))
        return AUTH_WRONG_AUDIENCE;
    auth_result r = check_times(cfg, claims, now);
    if (r != AUTH_OK) return r;
    if (!strcmp(role, "operator")) out->role = ROLE_OPERATOR;
    else if (!strcmp(role, "supervisor")) out->role = ROLE_SUPERVISOR;
    else return AUTH_BAD_ROLE;

    strcpy(out->operator_id, sub);          /* length checked above */
    strcpy(out->site, cfg->site);           /* length checked in check_config */
    out->expires = json_number_value(json_object_get(claims, "exp"));
    out->issued = json_number_value(json_object_get(claims, "iat"));   /* 0 when absent */
    const char *name = json_string_value(json_object_get(claims, "name"));
    copy_name(out->name, sizeof(out->name), name ? name : "");
    return AUTH_OK;
}

auth_result auth_verify(const auth_config *cfg, const char *token, double now,
                        auth_identity *out) {
    memset(out, 0, sizeof(*out));
    if (check_config(cfg)) return AUTH_BAD_CONFIG;
    if (!token) return AUTH_MALFORMED;
    size_t len = strnlen(token, AUTH_MAX_TOKEN + 1);
    size_t header_len = 0;
    if (len > AUTH_MAX_TOKEN || !token_shape_ok(token, len, &header_len))
        return AUTH_MALFORMED;

    auth_result r = check_header_alg(cfg, token, header_len);
    if (r != AUTH_OK) return r;
    json_t *claims = NULL;
    r = verified_claims(cfg, token, &claims);
    if (r == AUTH_OK) r = check_claims(cfg, claims, now, out);
    json_decref(claims);
    if (r != AUTH_OK) memset(out, 0, sizeof(*out));
    return r;
}

auth_result auth_renew(const auth_config *cfg, const auth_identity *current,
                       const char *token, double now, auth_identity *out) {
    auth_result r = auth_verify(cfg, token, now, out);
    if (r != AUTH_OK) return r;
    if (strcmp(out->operator_id, current->operator_id) ||
        strcmp(out->site, current->site)) {
        memset(out, 0, sizeof(*out));
        return AUTH_SUBJECT_CHANGED;
    }
    if (current->issued > 0 && out->issued < current->issued) {
        memset(out, 0, sizeof(*out));
        return AUTH_OLDER_TOKEN;
    }
    return AUTH_OK;
}

const char *auth_result_text(auth_result r) {
    switch (r) {
    case AUTH_OK: return "token accepted";
    case AUTH_MALFORMED: return "token is not a well-formed JWT (or is larger than 8 KiB); get a new one from the CRM";
    case AUTH_BAD_SIGNATURE: return "token signature does not verify: check that the CRM and the gateway use the same key";
    case AUTH_WRONG_ALG: return "token is signed with another algorithm than the gateway is configured for (HS256/RS256)";
    case AUTH_EXPIRED: return "token has expired: get a fresh one from the CRM (or check the clocks)";
    case AUTH_NOT_YET_VALID: return "token is not valid yet (nbf/iat in the future): check the clocks of the CRM and the gateway";
    case AUTH_WRONG_SITE: return "token is for another site: connect to that site's gateway";
    case AUTH_MISSING_CLAIM: return "token lacks a usable sub, site, role or exp claim (sub: letters, digits, _ . -, under 64)";
    case AUTH_BAD_ROLE: return "token role is neither \"operator\" nor \"supervisor\"";
    case AUTH_WRONG_ISSUER: return "token issuer (iss) is not the one the gateway is configured to trust";
    case AUTH_WRONG_AUDIENCE: return "token audience (aud) does not name this gateway's jwt_audience";
    case AUTH_SUBJECT_CHANGED: return "renewal token names another operator or site than the connection";
    case AUTH_OLDER_TOKEN: return "renewal token was issued (iat) before the one in use: get a fresh one from the CRM";
    case AUTH_BAD_CONFIG: return "gateway authentication settings are unusable: see auth_config_problem at startup";
    }
    return "unknown authentication result";
}

int auth_close_code(auth_result r) {
    switch (r) {
    case AUTH_OK: return 1000;
    case AUTH_EXPIRED:
    case AUTH_NOT_YET_VALID: return AUTH_CLOSE_EXPIRED;
    case AUTH_WRONG_SITE: return AUTH_CLOSE_WRONG_SITE;
    case AUTH_BAD_CONFIG: return AUTH_CLOSE_SERVER_ERROR;
    default: return AUTH_CLOSE_INVALID;
    }
}
