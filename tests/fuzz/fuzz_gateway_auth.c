/* fuzz_gateway_auth.c -- libFuzzer target for the gateway's token checks.
 * fuzz-needs: gateway
 *
 * First byte picks the mode: even, the rest is a raw token checked against
 * an HS256 gateway, with and without an issuer, and against one with no
 * usable key (which must refuse everything); odd, the
 * rest is a claims object the CRM signs, so the claim checks behind a valid
 * signature are reached too. Invariants: never crashes; an accepted identity
 * has a well-formed operator id, this site, a known role; a refusal leaves
 * the identity zeroed and maps to a close code. */
#include <jwt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define SECRET "fuzz-secret-fuzz-secret-fuzz-secret!"
#define NOW 1800000000.0

static void check(const auth_config *cfg, const char *token) {
    auth_identity id;
    auth_result r = auth_verify(cfg, token, NOW, &id);
    if (auth_close_code(r) == 0 || !auth_result_text(r)) abort();
    if (r != AUTH_OK) {
        if (id.operator_id[0] || id.site[0]) abort();
        return;
    }
    size_t n = strlen(id.operator_id);
    if (n == 0 || n > 63 || strspn(id.operator_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            "abcdefghijklmnopqrstuvwxyz0123456789_.-") != n)
        abort();
    if (strcmp(id.site, "lyon") || (id.role != ROLE_OPERATOR && id.role != ROLE_SUPERVISOR))
        abort();
    if (!(id.expires > NOW - 30)) abort();
}

/* Signs the fuzz input as claims; NULL when libjwt will not (not a JSON
 * object), which is not interesting. */
static char *signed_token(const char *claims) {
    jwt_t *j = NULL;
    char *t = NULL;
    if (jwt_new(&j) == 0 && jwt_add_grants_json(j, claims) == 0 &&
        jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET)) == 0)
        t = jwt_encode_str(j);
    jwt_free(j);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 16384) return 0;
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    auth_config hs = {.alg = AUTH_HS256, .key = (const unsigned char *)SECRET,
                      .key_len = strlen(SECRET), .site = "lyon", .leeway_s = 30};
    if (data[0] & 1) {
        char *t = signed_token(s);
        if (t) check(&hs, t);
        free(t);
    } else {
        check(&hs, s);
        /* Any token at all against a gateway with no usable key: refused. */
        auth_config nokey = hs;
        nokey.key_len = 0;
        auth_identity id;
        if (auth_verify(&nokey, s, NOW, &id) != AUTH_BAD_CONFIG) abort();
        hs.issuer = "crm";
        check(&hs, s);
    }
    free(s);
    return 0;
}
