/* ami_tls.c -- AMI over TLS, the agent's end (see ami_tls.h). */
#include "ami_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

struct ami_tls {
    SSL_CTX *ctx;
    char name[256];     /* what Asterisk's certificate must name */
    int name_is_ip;
};

struct ami_tls_conn {
    SSL *ssl;
    const ami_tls *t;
};

static void openssl_reason(char *err, size_t errlen, const char *what) {
    char buf[256] = "";
    unsigned long e = ERR_peek_last_error();
    if (e) ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s%s%s", what, *buf ? ": " : "", buf);
    ERR_clear_error();
}

ami_tls *ami_tls_new(const callbus_config *c, char *err, size_t errlen) {
    ami_tls *t = xcalloc(1, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", *c->agent.ami_tls_server_name ? c->agent.ami_tls_server_name
                                                                          : c->agent.ami_host);
    unsigned char addr[16];
    t->name_is_ip = inet_pton(AF_INET, t->name, addr) == 1 || inet_pton(AF_INET6, t->name, addr) == 1;
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) {
        openssl_reason(err, errlen, "AMI TLS: cannot create an OpenSSL context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* Asterisk closes its end without close_notify: that is an end, not an attack */
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    const char *ca = c->agent.ami_tls_ca_file;
    if (*ca ? SSL_CTX_load_verify_locations(t->ctx, ca, NULL) != 1 : SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        char what[PATH_MAX + 64];
        snprintf(what, sizeof(what), "agent.ami.tls_ca_file %s: no CA certificate could be read from it",
                 *ca ? ca : "(the system's CAs)");
        openssl_reason(err, errlen, what);
        goto fail;
    }
    return t;
fail:
    ami_tls_free(t);
    return NULL;
}

void ami_tls_free(ami_tls *t) {
    if (!t) return;
    SSL_CTX_free(t->ctx);
    free(t);
}

ami_tls_conn *ami_tls_conn_new(ami_tls *t, int fd, char *err, size_t errlen) {
    ami_tls_conn *s = xcalloc(1, sizeof(*s));
    s->t = t;
    s->ssl = SSL_new(t->ctx);
    if (!s->ssl || SSL_set_fd(s->ssl, fd) != 1) {
        openssl_reason(err, errlen, "AMI TLS: cannot start a session");
        ami_tls_conn_free(s);
        return NULL;
    }
    /* The name check is OpenSSL's own (RFC 6125), as part of verification. */
    X509_VERIFY_PARAM *vp = SSL_get0_param(s->ssl);
    if (t->name_is_ip) X509_VERIFY_PARAM_set1_ip_asc(vp, t->name);
    else {
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        X509_VERIFY_PARAM_set1_host(vp, t->name, 0);
        SSL_set_tlsext_host_name(s->ssl, t->name);
    }
    SSL_set_connect_state(s->ssl);
    return s;
}

void ami_tls_conn_free(ami_tls_conn *s) {
    if (!s) return;
    if (s->ssl && SSL_is_init_finished(s->ssl)) SSL_shutdown(s->ssl);
    ERR_clear_error();
    SSL_free(s->ssl);
    free(s);
}

/* The reason a failed handshake or record gets: the certificate check's
 * own words when that was it, else OpenSSL's. */
static int failed(ami_tls_conn *s, int rc, char *err, size_t errlen) {
    int e = SSL_get_error(s->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) return AMI_TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE) return AMI_TLS_WANT_WRITE;
    long v = SSL_get_verify_result(s->ssl);
    if (e == SSL_ERROR_SSL && v == X509_V_ERR_HOSTNAME_MISMATCH)
        snprintf(err, errlen, "TLS: Asterisk's certificate is not for %s (set agent.ami.tls_server_name to the "
                 "name it carries, or give Asterisk a certificate for %s)", s->t->name, s->t->name);
    else if (e == SSL_ERROR_SSL && v == X509_V_ERR_IP_ADDRESS_MISMATCH)
        snprintf(err, errlen, "TLS: Asterisk's certificate is not for the address %s (set agent.ami.tls_server_name "
                 "to the name it carries)", s->t->name);
    else if (e == SSL_ERROR_SSL && v != X509_V_OK)
        snprintf(err, errlen, "TLS: Asterisk's certificate is not trusted: %s (agent.ami.tls_ca_file must hold the "
                 "CA that signed it)", X509_verify_cert_error_string(v));
    else if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
        snprintf(err, errlen, "TLS: %s", errno ? strerror(errno) : "connection closed during the handshake "
                 "(is this Asterisk's TLS port, manager.conf tlsbindaddr?)");
    else
        openssl_reason(err, errlen, "TLS");
    ERR_clear_error();
    return AMI_TLS_FAILED;
}

int ami_tls_handshake(ami_tls_conn *s, char *err, size_t errlen) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(s->ssl);
    return rc == 1 ? AMI_TLS_DONE : failed(s, rc, err, errlen);
}

ssize_t ami_tls_read(ami_tls_conn *s, void *buf, size_t n, char *err, size_t errlen) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_read(s->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (rc > 0) return rc;
    if (SSL_get_error(s->ssl, rc) == SSL_ERROR_ZERO_RETURN) return 0;
    /* a close without close_notify is how Asterisk (and a cut link) end it */
    if (SSL_get_error(s->ssl, rc) == SSL_ERROR_SYSCALL && !ERR_peek_error() && !errno) return 0;
    return failed(s, rc, err, errlen);
}

ssize_t ami_tls_write(ami_tls_conn *s, const void *buf, size_t n, char *err, size_t errlen) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_write(s->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    return rc > 0 ? rc : failed(s, rc, err, errlen);
}
