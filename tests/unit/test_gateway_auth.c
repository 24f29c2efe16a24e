/* test_gateway_auth.c -- the gateway's JWT checks: valid HS256/RS256 tokens,
 * forgeries, expiry, wrong site, missing claims, "alg":"none", algorithm
 * confusion, garbage input, issuer, renewal and the close codes.
 *
 * Tokens are made with libjwt itself (as the CRM would); RSA keys are
 * generated per run with OpenSSL, so no key material lives in the repo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define NOW 1800000000.0
#define SECRET "0123456789abcdef0123456789abcdef-callbus"

static char *rsa_priv, *rsa_pub;       /* the CRM's key pair */
static char *rsa2_priv, *rsa2_pub;     /* somebody else's */

/* ---- helpers ------------------------------------------------------------ */

static char *pem_of(EVP_PKEY *k, int private_key) {
    BIO *b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    if (private_key)
        assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    else
        assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = strndup(data, (size_t)n);
    BIO_free(b);
    return s;
}

static void keypair(char **priv, char **pub) {
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(k);
    *priv = pem_of(k, 1);
    *pub = pem_of(k, 0);
    EVP_PKEY_free(k);
}

static int setup_keys(void **state) {
    (void)state;
    keypair(&rsa_priv, &rsa_pub);
    keypair(&rsa2_priv, &rsa2_pub);
    return 0;
}

static int teardown_keys(void **state) {
    (void)state;
    free(rsa_priv);
    free(rsa_pub);
    free(rsa2_priv);
    free(rsa2_pub);
    return 0;
}

static auth_config hs_cfg(void) {
    auth_config c = {.alg = AUTH_HS256, .key = (const unsigned char *)SECRET,
                     .key_len = strlen(SECRET), .site = "lyon", .leeway_s = 30};
    return c;
}

static auth_config rs_cfg(void) {
    auth_config c = {.alg = AUTH_RS256, .key = (const unsigned char *)rsa_pub,
                     .key_len = strlen(rsa_pub), .site = "lyon", .leeway_s = 30};
    return c;
}

/* A token as the CRM would sign it; claims is a JSON object text. The
 * caller frees the result. */
static char *sign(jwt_alg_t alg, const char *key, const char *claims) {
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    char *t = jwt_encode_str(j);
    assert_non_null(t);
    jwt_free(j);
    return t;
}

static char *claims_json(const char *extra) {
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             "{\"sub\":\"op-1042\",\"site\":\"lyon\",\"role\":\"operator\","
             "\"exp\":%.0f%s%s}", NOW + 600, extra[0] ? "," : "", extra);
    return buf;
}

static char *hs_token(const char *claims) { return sign(JWT_ALG_HS256, SECRET, claims); }
static char *rs_token(const char *claims) { return sign(JWT_ALG_RS256, rsa_priv, claims); }

static void b64url(const char *in, char *out) {
    unsigned char tmp[1024];
    int n = EVP_EncodeBlock(tmp, (const unsigned char *)in, (int)strlen(in));
    int o = 0;
    for (int i = 0; i < n; i++) {
        if (tmp[i] == '=') break;
        out[o++] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : (char)tmp[i];
    }
    out[o] = '\0';
}

/* header.payload.sig assembled by hand, for tokens no signer would make. */
static void craft(char out[4096], const char *header, const char *payload, const char *sig) {
    char h[1024], p[1024];
    b64url(header, h);
    b64url(payload, p);
    snprintf(out, 4096, "%s.%s.%s", h, p, sig);
}

static auth_result verify_hs(const char *token) {
    auth_config c = hs_cfg();
    auth_identity id;
    return auth_verify(&c, token, NOW, &id);
}

static auth_result verify_rs(const char *token) {
    auth_config c = rs_cfg();
    auth_identity id;
    return auth_verify(&c, token, NOW, &id);
}

static void expect_hs(const char *claims, auth_result want) {
    char *t = hs_token(claims);
    assert_int_equal(verify_hs(t), want);
    free(t);
}

/* ---- valid tokens ------------------------------------------------------- */

static void test_valid_hs256(void **state) {
    (void)state;
    char *t = hs_token(claims_json("\"name\":\"J\xc3\xa9r\xc3\xb4me\",\"iat\":1799999990,"
                                   "\"nbf\":1799999990"));
    auth_config c = hs_cfg();
    auth_identity id;
    assert_int_equal(auth_verify(&c, t, NOW, &id), AUTH_OK);
    assert_string_equal(id.operator_id, "op-1042");
    assert_string_equal(id.site, "lyon");
    assert_int_equal(id.role, ROLE_OPERATOR);
    assert_true(id.expires == NOW + 600);
    assert_string_equal(id.name, "J\xc3\xa9r\xc3\xb4me");
    free(t);
}

static void test_valid_rs256(void **state) {
    (void)state;
    char *t = rs_token("{\"sub\":\"sup_7.a\",\"site\":\"lyon\",\"role\":\"supervisor\","
                       "\"exp\":1800000060}");
    auth_config c = rs_cfg();
    assert_null(auth_config_problem(&c));
    auth_identity id;
    assert_int_equal(auth_verify(&c, t, NOW, &id), AUTH_OK);
    assert_string_equal(id.operator_id, "sup_7.a");
    assert_string_equal(id.site, "lyon");
    assert_int_equal(id.role, ROLE_SUPERVISOR);
    assert_true(id.expires == 1800000060.0);
    assert_string_equal(id.name, "");
    free(t);
}

static void test_name_truncated_on_char_boundary(void **state) {
    (void)state;
    char extra[512] = "\"name\":\"";
    for (int i = 0; i < 100; i++) strcat(extra, "\xc3\xa9");   /* 200 bytes of é */
    strcat(extra, "\"");
    char *t = hs_token(claims_json(extra));
    auth_config c = hs_cfg();
    auth_identity id;
    assert_int_equal(auth_verify(&c, t, NOW, &id), AUTH_OK);
    assert_int_equal(strlen(id.name), 126);                  /* 63 whole é */
    free(t);
}

/* ---- forgeries ---------------------------------------------------------- */

static void flip_in_part(char *t, int part) {
    char *p = t;
    for (int i = 0; i < part; i++) p = strchr(p, '.') + 1;
    p[2] = p[2] == 'A' ? 'B' : 'A';
}

static void test_forged_flipped_byte(void **state) {
    (void)state;
    char *t = hs_token(claims_json(""));
    char *u = strdup(t);
    flip_in_part(u, 2);
    assert_int_equal(verify_hs(u), AUTH_BAD_SIGNATURE);
    strcpy(u, t);
    flip_in_part(u, 1);
    assert_int_not_equal(verify_hs(u), AUTH_OK);
    free(u);
    free(t);

    t = rs_token(claims_json(""));
    flip_in_part(t, 2);
    assert_int_equal(verify_rs(t), AUTH_BAD_SIGNATURE);
    free(t);
}

static void test_forged_other_secret(void **state) {
    (void)state;
    char *t = sign(JWT_ALG_HS256, "another-secret-of-at-least-32-bytes!!", claims_json(""));
    assert_int_equal(verify_hs(t), AUTH_BAD_SIGNATURE);
    free(t);
}

static void test_forged_other_rsa_key(void **state) {
    (void)state;
    char *t = sign(JWT_ALG_RS256, rsa2_priv, claims_json(""));
    assert_int_equal(verify_rs(t), AUTH_BAD_SIGNATURE);
    free(t);
}

/* An operator pastes a supervisor token's payload under their own signature. */
static void test_forged_payload_swap(void **state) {
    (void)state;
    char *op = hs_token(claims_json(""));
    char *sup = hs_token("{\"sub\":\"op-1042\",\"site\":\"lyon\",\"role\":\"supervisor\","
                         "\"exp\":1800000600}");
    char mixed[4096];
    const char *op_body = strchr(op, '.');
    const char *sup_body = strchr(sup, '.');
    const char *sup_sig = strchr(sup_body + 1, '.');
    snprintf(mixed, sizeof(mixed), "%.*s%.*s%s", (int)(op_body - op), op,
             (int)(sup_sig - sup_body), sup_body, strrchr(op, '.'));
    assert_int_equal(verify_hs(mixed), AUTH_BAD_SIGNATURE);
    free(op);
    free(sup);
}

static void test_signature_stripped(void **state) {
    (void)state;
    char *t = hs_token(claims_json(""));
    strrchr(t, '.')[1] = '\0';
    assert_int_equal(verify_hs(t), AUTH_MALFORMED);
    free(t);
}

/* ---- time --------------------------------------------------------------- */

static void test_expired(void **state) {
    (void)state;
    char *t = hs_token("{\"sub\":\"a\",\"site\":\"lyon\",\"role\":\"operator\","
                       "\"exp\":1800000000}");
    auth_config c = hs_cfg();
    auth_identity id;
    /* Within the 30 s leeway: still good. */
    assert_int_equal(auth_verify(&c, t, NOW + 29, &id), AUTH_OK);
    assert_int_equal(auth_verify(&c, t, NOW + 30, &id), AUTH_EXPIRED);
    assert_int_equal(auth_verify(&c, t, NOW + 3600, &id), AUTH_EXPIRED);
    assert_int_equal(auth_close_code(AUTH_EXPIRED), 4002);
    c.leeway_s = 0;
    assert_int_equal(auth_verify(&c, t, NOW - 1, &id), AUTH_OK);
    assert_int_equal(auth_verify(&c, t, NOW, &id), AUTH_EXPIRED);   /* exp is exclusive */
    free(t);
}

static void test_not_yet_valid(void **state) {
    (void)state;
    expect_hs(claims_json("\"nbf\":1800000100"), AUTH_NOT_YET_VALID);
    expect_hs(claims_json("\"nbf\":1800000020"), AUTH_OK);          /* leeway */
    expect_hs(claims_json("\"iat\":1800000100"), AUTH_NOT_YET_VALID);
    expect_hs(claims_json("\"nbf\":\"soon\""), AUTH_MALFORMED);
    /* exp as a JSON real is a number like any other. */
    expect_hs("{\"sub\":\"a\",\"site\":\"lyon\",\"role\":\"operator\",\"exp\":1800000000.5}",
              AUTH_OK);
    expect_hs("{\"sub\":\"a\",\"site\":\"lyon\",\"role\":\"operator\",\"exp\":1.7e9}",
              AUTH_EXPIRED);
}

/* ---- claims ------------------------------------------------------------- */

static void test_wrong_site(void **state) {
    (void)state;
    char *t = hs_token("{\"sub\":\"a\",\"site\":\"paris\",\"role\":\"operator\","
                       "\"exp\":1800000600}");
    assert_int_equal(verify_hs(t), AUTH_WRONG_SITE);
    assert_int_equal(auth_close_code(AUTH_WRONG_SITE), 4003);
    free(t);
    expect_hs("{\"sub\":\"a\",\"site\":\"Lyon\",\"role\":\"operator\",\"exp\":1800000600}",
              AUTH_WRONG_SITE);
}

static void test_missing_claims(void **state) {
    (void)state;
    expect_hs("{\"site\":\"lyon\",\"role\":\"operator\",\"exp\":1800000600}", AUTH_MISSING_CLAIM);
    expect_hs("{\"sub\":\"a\",\"role\":\"operator\",\"exp\":1800000600}", AUTH_MISSING_CLAIM);
    expect_hs("{\"sub\":\"a\",\"site\":\"lyon\",\"exp\":1800000600}", AUTH_MISSING_CLAIM);
    expect_hs("{\"sub\":\"a\",\"site\":\"lyon\",\"role\":\"operator\"}", AUTH_MISSING_CLAIM);
    /* Present but of the wrong type counts as missing. */
    expect_hs("{\"sub\":\"a\",\"site\":\"lyon\",\"role\":\"operator\",\"exp\":\"1800000600\"}",
              AUTH_MISSING_CLAIM);
    expect_hs("{\"sub\":42,\"site\":\"lyon\",\"role\":\"operator\",\"exp\":1800000600}",
              AUTH_MISSING_CLAIM);
    assert_int_equal(auth_close_code(AUTH_MISSING_CLAIM), 4001);
}

static void test_bad_operator_id(void **state) {
    (void)state;
    const char *bad[] = {"", "a b", "op/1", "op\\u00e9", "a\\n", "a\\tb",
                         "x123456789012345678901234567890123456789012345678901234567890123"};
    char claims[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"site\":\"lyon\","
                 "\"role\":\"operator\",\"exp\":1800000600}", bad[i]);
        expect_hs(claims, AUTH_MISSING_CLAIM);
    }
    /* 63 characters is the longest accepted. */
    expect_hs("{\"sub\":\"x12345678901234567890123456789012345678901234567890123456789012\","
              "\"site\":\"lyon\",\"role\":\"operator\",\"exp\":1800000600}", AUTH_OK);
}

static void test_bad_role(void **state) {
    (void)state;
    expect_hs("{\"sub\":\"a\",\"site\":\"lyon\",\"role\":\"admin\",\"exp\":1800000600}", AUTH_BAD_ROLE);
    expect_hs("{\"sub\":\"a\",\"site\":\"lyon\",\"role\":\"Supervisor\",\"exp\":1800000600}", AUTH_BAD_ROLE);
    expect_hs("{\"sub\":\"a\",\"site\":\"lyon\",\"role\":\"\",\"exp\":1800000600}", AUTH_BAD_ROLE);
}

static void test_issuer(void **state) {
    (void)state;
    auth_config c = hs_cfg();
    c.issuer = "https://crm.example";
    auth_identity id;
    char *ok = hs_token(claims_json("\"iss\":\"https://crm.example\""));
    char *other = hs_token(claims_json("\"iss\":\"https://evil.example\""));
    char *none = hs_token(claims_json(""));
    assert_int_equal(auth_verify(&c, ok, NOW, &id), AUTH_OK);
    assert_int_equal(auth_verify(&c, other, NOW, &id), AUTH_WRONG_ISSUER);
    assert_int_equal(auth_verify(&c, none, NOW, &id), AUTH_WRONG_ISSUER);
    /* Without a configured issuer, iss is not looked at. */
    assert_int_equal(verify_hs(other), AUTH_OK);
    free(ok);
    free(other);
    free(none);
}

static void test_audience(void **state) {
    (void)state;
    auth_config c = hs_cfg();
    c.audience = "callbus-gateway";
    auth_identity id;
    char *one = hs_token(claims_json("\"aud\":\"callbus-gateway\""));
    char *among = hs_token(claims_json("\"aud\":[\"crm-reports\",\"callbus-gateway\"]"));
    char *other = hs_token(claims_json("\"aud\":\"crm-reports\""));
    char *others = hs_token(claims_json("\"aud\":[\"crm-reports\",7]"));
    char *prefix = hs_token(claims_json("\"aud\":\"callbus-gateway-2\""));
    char *none = hs_token(claims_json(""));
    assert_int_equal(auth_verify(&c, one, NOW, &id), AUTH_OK);
    assert_int_equal(auth_verify(&c, among, NOW, &id), AUTH_OK);
    assert_int_equal(auth_verify(&c, other, NOW, &id), AUTH_WRONG_AUDIENCE);
    assert_int_equal(auth_verify(&c, others, NOW, &id), AUTH_WRONG_AUDIENCE);
    assert_int_equal(auth_verify(&c, prefix, NOW, &id), AUTH_WRONG_AUDIENCE);
    assert_int_equal(auth_verify(&c, none, NOW, &id), AUTH_WRONG_AUDIENCE);
    assert_int_equal(auth_close_code(AUTH_WRONG_AUDIENCE), 4001);
    /* Without a configured audience, aud is not looked at. */
    assert_int_equal(verify_hs(other), AUTH_OK);
    free(one);
    free(among);
    free(other);
    free(others);
    free(prefix);
    free(none);
}

/* ---- algorithms --------------------------------------------------------- */

static void test_alg_none_refused(void **state) {
    (void)state;
    char t[4096];
    const char *payload = claims_json("");
    const char *headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"none\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}", "{\"alg\":\"\"}"};
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        craft(t, headers[i], payload, "");
        assert_int_equal(verify_hs(t), AUTH_MALFORMED);       /* no signature part */
        craft(t, headers[i], payload, "c2ln");
        assert_int_equal(verify_hs(t), AUTH_WRONG_ALG);
        assert_int_equal(verify_rs(t), AUTH_WRONG_ALG);
    }
    /* The same token made by libjwt itself. */
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, payload), 0);
    char *none = jwt_encode_str(j);
    jwt_free(j);
    assert_int_equal(verify_hs(none), AUTH_MALFORMED);
    assert_int_equal(auth_close_code(AUTH_MALFORMED), 4001);
    free(none);
}

static void test_hs256_token_on_rs256_gateway(void **state) {
    (void)state;
    char *t = hs_token(claims_json(""));
    assert_int_equal(verify_rs(t), AUTH_WRONG_ALG);
    free(t);
}

/* The confusion attack: the RS256 public key is public, so an attacker
 * HMACs a token with its PEM. libjwt 1.10 accepts that when given the PEM as
 * key (asserted below, so a libjwt upgrade that changes it is noticed); the
 * pinned algorithm must refuse it. */
static void test_alg_confusion_public_key_as_secret(void **state) {
    (void)state;
    char *t = sign(JWT_ALG_HS256, rsa_pub,
                   "{\"sub\":\"op-1042\",\"site\":\"lyon\",\"role\":\"supervisor\","
                   "\"exp\":1800000600}");
    jwt_t *j = NULL;
    assert_int_equal(jwt_decode(&j, t, (const unsigned char *)rsa_pub, (int)strlen(rsa_pub)), 0);
    jwt_free(j);
    assert_int_equal(verify_rs(t), AUTH_WRONG_ALG);
    assert_int_equal(auth_close_code(AUTH_WRONG_ALG), 4001);
    free(t);
}

static void test_rs256_token_on_hs256_gateway(void **state) {
    (void)state;
    char *t = rs_token(claims_json(""));
    assert_int_equal(verify_hs(t), AUTH_WRONG_ALG);
    free(t);
    t = sign(JWT_ALG_HS512, SECRET, claims_json(""));
    assert_int_equal(verify_hs(t), AUTH_WRONG_ALG);
    free(t);
}

/* A header with two "alg" members could be read as HS256 by one parser and
 * something else by another: refused outright. */
static void test_header_tricks(void **state) {
    (void)state;
    char t[4096];
    const char *payload = claims_json("");
    craft(t, "{\"alg\":\"HS256\",\"alg\":\"none\"}", payload, "c2ln");
    assert_int_equal(verify_hs(t), AUTH_MALFORMED);
    craft(t, "{\"typ\":\"JWT\"}", payload, "c2ln");
    assert_int_equal(verify_hs(t), AUTH_MALFORMED);
    craft(t, "[\"HS256\"]", payload, "c2ln");
    assert_int_equal(verify_hs(t), AUTH_MALFORMED);
    craft(t, "{\"alg\":256}", payload, "c2ln");
    assert_int_equal(verify_hs(t), AUTH_MALFORMED);
    craft(t, "not json", payload, "c2ln");
    assert_int_equal(verify_hs(t), AUTH_MALFORMED);
    /* Right alg, forged signature, payload not JSON. */
    craft(t, "{\"alg\":\"HS256\"}", "garbage", "c2ln");
    assert_int_equal(verify_hs(t), AUTH_BAD_SIGNATURE);
}

/* ---- garbage ------------------------------------------------------------ */

static void test_garbage(void **state) {
    (void)state;
    const char *bad[] = {"", ".", "..", "...", "a", "a.b", "a.b.", ".b.c", "a..c",
                         "a.b.c.d", "a.b.c", "eyJ.eyJ.sig", "Bearer abc.def.ghi",
                         "abc.d=f.ghi", "abc.def.gh i", "abc.def.ghi\n", "\xff\xfe.a.b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        auth_result r = verify_hs(bad[i]);
        assert_true(r == AUTH_MALFORMED || r == AUTH_BAD_SIGNATURE);
        assert_int_equal(auth_close_code(r), 4001);
    }
    assert_int_equal(verify_hs(NULL), AUTH_MALFORMED);
    assert_int_equal(verify_hs(""), AUTH_MALFORMED);
}

static void test_huge_token(void **state) {
    (void)state;
    /* A valid token padded with a huge claim: over the limit, refused
     * before any decoding. */
    char *extra = malloc(AUTH_MAX_TOKEN + 64);
    strcpy(extra, "\"pad\":\"");
    memset(extra + 7, 'x', AUTH_MAX_TOKEN);
    strcpy(extra + 7 + AUTH_MAX_TOKEN, "\"");
    char claims[AUTH_MAX_TOKEN + 256];
    snprintf(claims, sizeof(claims), "{\"sub\":\"a\",\"site\":\"lyon\",\"role\":\"operator\","
             "\"exp\":1800000600,%s}", extra);
    char *t = hs_token(claims);
    assert_true(strlen(t) > AUTH_MAX_TOKEN);
    assert_int_equal(verify_hs(t), AUTH_MALFORMED);
    free(t);
    free(extra);

    char *junk = malloc(1 << 20);
    memset(junk, 'A', (1 << 20) - 1);
    junk[(1 << 20) - 1] = '\0';
    junk[100] = '.';
    junk[200] = '.';
    assert_int_equal(verify_hs(junk), AUTH_MALFORMED);
    free(junk);
}

static void test_failure_zeroes_identity(void **state) {
    (void)state;
    char *t = hs_token("{\"sub\":\"a\",\"site\":\"lyon\",\"role\":\"admin\",\"exp\":1800000600}");
    auth_config c = hs_cfg();
    auth_identity id;
    memset(&id, 0x55, sizeof(id));
    assert_int_equal(auth_verify(&c, t, NOW, &id), AUTH_BAD_ROLE);
    assert_string_equal(id.operator_id, "");
    assert_string_equal(id.site, "");
    free(t);
}

/* ---- configuration ------------------------------------------------------ */

static void test_config_problems(void **state) {
    (void)state;
    auth_config c = hs_cfg();
    assert_null(auth_config_problem(&c));
    c.key_len = 31;
    assert_non_null(auth_config_problem(&c));
    c = hs_cfg();
    c.key = NULL;
    assert_non_null(auth_config_problem(&c));
    c = hs_cfg();
    c.key_len = 0;
    assert_non_null(auth_config_problem(&c));
    c = hs_cfg();
    c.alg = 3;
    assert_non_null(auth_config_problem(&c));
    c = hs_cfg();
    c.site = "";
    assert_non_null(auth_config_problem(&c));
    c.site = "x123456789012345678901234567890123456789012345678901234567890123";
    assert_non_null(auth_config_problem(&c));

    c = rs_cfg();
    c.key = (const unsigned char *)rsa_priv;     /* the signing key: never */
    c.key_len = strlen(rsa_priv);
    assert_non_null(auth_config_problem(&c));
    c.key = (const unsigned char *)SECRET;
    c.key_len = strlen(SECRET);
    assert_non_null(auth_config_problem(&c));
    assert_non_null(auth_config_problem(NULL));
}

/* libjwt verifies nothing when the key is NULL or key_len is 0; auth_verify
 * must never get there. */
static void test_no_key_fails_closed(void **state) {
    (void)state;
    char *t = sign(JWT_ALG_HS256, "whatever-the-attacker-likes-here!!", claims_json(""));
    jwt_t *j = NULL;
    assert_int_equal(jwt_decode(&j, t, NULL, 0), 0);     /* libjwt: accepted */
    jwt_free(j);

    auth_config c = hs_cfg();
    auth_identity id;
    c.key = NULL;
    assert_int_equal(auth_verify(&c, t, NOW, &id), AUTH_BAD_CONFIG);
    c = hs_cfg();
    c.key_len = 0;
    assert_int_equal(auth_verify(&c, t, NOW, &id), AUTH_BAD_CONFIG);
    assert_int_equal(auth_verify(NULL, t, NOW, &id), AUTH_BAD_CONFIG);
    assert_int_equal(auth_close_code(AUTH_BAD_CONFIG), 1011);
    free(t);
}

/* ---- renewal, texts, codes ---------------------------------------------- */

static void test_renewal(void **state) {
    (void)state;
    auth_config c = hs_cfg();
    auth_identity cur, next;
    char *first = hs_token(claims_json(""));
    assert_int_equal(auth_verify(&c, first, NOW, &cur), AUTH_OK);

    char *promoted = hs_token("{\"sub\":\"op-1042\",\"site\":\"lyon\",\"role\":\"supervisor\","
                              "\"exp\":1800001200}");
    assert_int_equal(auth_renew(&c, &cur, promoted, NOW + 500, &next), AUTH_OK);
    assert_int_equal(next.role, ROLE_SUPERVISOR);
    assert_true(next.expires == 1800001200.0);

    char *other = hs_token("{\"sub\":\"op-2000\",\"site\":\"lyon\",\"role\":\"operator\","
                           "\"exp\":1800001200}");
    assert_int_equal(auth_renew(&c, &cur, other, NOW + 500, &next), AUTH_SUBJECT_CHANGED);
    assert_string_equal(next.operator_id, "");
    assert_int_equal(auth_close_code(AUTH_SUBJECT_CHANGED), 4001);

    /* Renewing with the old token after it ran out closes with 4002. */
    auth_result r = auth_renew(&c, &cur, first, NOW + 700, &next);
    assert_int_equal(r, AUTH_EXPIRED);
    assert_int_equal(auth_close_code(r), 4002);
    free(first);
    free(promoted);
    free(other);
}

/* A renewal may not go back to a token issued before the one in use: a
 * supervisor demoted to operator must not renew with the supervisor token
 * they kept. */
static void test_renewal_not_older(void **state) {
    (void)state;
    auth_config c = hs_cfg();
    auth_identity cur, next;
    char *old_sup = hs_token("{\"sub\":\"op-1042\",\"site\":\"lyon\",\"role\":\"supervisor\","
                             "\"exp\":1800001200,\"iat\":1799999000}");
    char *now_op = hs_token("{\"sub\":\"op-1042\",\"site\":\"lyon\",\"role\":\"operator\","
                            "\"exp\":1800001200,\"iat\":1799999900}");
    char *same = hs_token("{\"sub\":\"op-1042\",\"site\":\"lyon\",\"role\":\"operator\","
                          "\"exp\":1800001300,\"iat\":1799999900}");
    char *no_iat = hs_token("{\"sub\":\"op-1042\",\"site\":\"lyon\",\"role\":\"supervisor\","
                            "\"exp\":1800001200}");
    assert_int_equal(auth_verify(&c, now_op, NOW, &cur), AUTH_OK);
    assert_true(cur.issued == 1799999900.0);
    assert_int_equal(auth_renew(&c, &cur, old_sup, NOW + 10, &next), AUTH_OLDER_TOKEN);
    assert_string_equal(next.operator_id, "");
    assert_int_equal(auth_close_code(AUTH_OLDER_TOKEN), 4001);
    /* Without an iat it cannot be shown newer: refused too. */
    assert_int_equal(auth_renew(&c, &cur, no_iat, NOW + 10, &next), AUTH_OLDER_TOKEN);
    /* Issued the same second: fine. */
    assert_int_equal(auth_renew(&c, &cur, same, NOW + 10, &next), AUTH_OK);
    /* A connection whose token had no iat has nothing to compare with. */
    assert_int_equal(auth_verify(&c, no_iat, NOW, &cur), AUTH_OK);
    assert_true(cur.issued == 0);
    assert_int_equal(auth_renew(&c, &cur, old_sup, NOW + 10, &next), AUTH_OK);
    free(old_sup);
    free(now_op);
    free(same);
    free(no_iat);
}

static void test_texts_and_codes(void **state) {
    (void)state;
    for (int r = AUTH_OK; r <= AUTH_BAD_CONFIG; r++) {
        const char *s = auth_result_text((auth_result)r);
        assert_non_null(s);
        assert_true(strlen(s) > 10);
        /* Close reasons must fit a control frame (123 bytes). */
        assert_true(strlen(s) <= 123);
        int code = auth_close_code((auth_result)r);
        assert_true(code == 1000 || code == 1011 || (code >= 4001 && code <= 4003));
    }
    assert_int_equal(auth_close_code(AUTH_OK), 1000);
    assert_int_equal(auth_close_code(AUTH_BAD_SIGNATURE), 4001);
    assert_int_equal(auth_close_code(AUTH_NOT_YET_VALID), 4002);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_hs256),
        cmocka_unit_test(test_valid_rs256),
        cmocka_unit_test(test_name_truncated_on_char_boundary),
        cmocka_unit_test(test_forged_flipped_byte),
        cmocka_unit_test(test_forged_other_secret),
        cmocka_unit_test(test_forged_other_rsa_key),
        cmocka_unit_test(test_forged_payload_swap),
        cmocka_unit_test(test_signature_stripped),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_not_yet_valid),
        cmocka_unit_test(test_wrong_site),
        cmocka_unit_test(test_missing_claims),
        cmocka_unit_test(test_bad_operator_id),
        cmocka_unit_test(test_bad_role),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_audience),
        cmocka_unit_test(test_alg_none_refused),
        cmocka_unit_test(test_hs256_token_on_rs256_gateway),
        cmocka_unit_test(test_alg_confusion_public_key_as_secret),
        cmocka_unit_test(test_rs256_token_on_hs256_gateway),
        cmocka_unit_test(test_header_tricks),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_huge_token),
        cmocka_unit_test(test_failure_zeroes_identity),
        cmocka_unit_test(test_config_problems),
        cmocka_unit_test(test_no_key_fails_closed),
        cmocka_unit_test(test_renewal),
        cmocka_unit_test(test_renewal_not_older),
        cmocka_unit_test(test_texts_and_codes),
    };
    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
