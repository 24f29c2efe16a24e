/* tls.c -- AMI over TLS, the way Asterisk's main/tcptls.c sets it up (see tls.h). */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"

static SSL_CTX *ctx;

static void log_openssl(const char *what, const char *file) {
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof(buf));
    log_error("tls: %s %s: %s", what, file, e ? buf : "failed");
    ERR_clear_error();
}

int tls_server_init(const char *cert_file, const char *key_file) {
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        log_openssl("cannot create a context for", cert_file);
        return -1;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* the output queue may grow (move) between the tries of one write */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        log_openssl("cannot load the certificate", cert_file);
        return -1;
    }
    const char *key = key_file ? key_file : cert_file;
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        log_openssl("cannot load the private key", key);
        return -1;
    }
    return 0;
}

int tls_enabled(void) { return ctx != NULL; }

void *tls_session_new(int fd) {
    SSL *ssl = SSL_new(ctx);
    if (!ssl) return NULL;
    SSL_set_fd(ssl, fd);
    SSL_set_accept_state(ssl);
    return ssl;
}

void tls_session_free(void *ssl) { SSL_free(ssl); }

/* Maps an OpenSSL result to read()/write()'s: n, 0 at the peer's close,
 * -1 with errno (EAGAIN while the handshake or a record waits). */
static ssize_t result(SSL *ssl, int rc, int *want_write) {
    *want_write = 0;
    if (rc > 0) return rc;
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_WRITE: *want_write = 1; /* fall through */
    case SSL_ERROR_WANT_READ: errno = EAGAIN; return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL: if (!errno) errno = ECONNRESET; ERR_clear_error(); return -1;
    default: {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
        log_info("tls: %s", buf);   /* e.g. the client refused our certificate */
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
    }
}

ssize_t tls_read(void *ssl, void *buf, size_t n, int *want_write) {
    ERR_clear_error();
    return result(ssl, SSL_read(ssl, buf, (int)(n > 1 << 30 ? 1 << 30 : n)), want_write);
}

ssize_t tls_write(void *ssl, const void *buf, size_t n, int *want_write) {
    ERR_clear_error();
    return result(ssl, SSL_write(ssl, buf, (int)(n > 1 << 30 ? 1 << 30 : n)), want_write);
}

void tls_close_notify(void *ssl) {
    if (SSL_is_init_finished((SSL *)ssl)) SSL_shutdown(ssl);
    ERR_clear_error();
}

int tls_buffered(void *ssl) { return SSL_pending(ssl) > 0; }
