/* tls.h -- AMI over TLS, as Asterisk serves it (manager.conf tlsenable,
 * port 5039): OpenSSL's general TLS server method with SSLv2/SSLv3 off, the
 * certificate chain and private key from files (the key from the
 * certificate file when none is given), no client certificate asked for
 * (main/tcptls.c, __ssl_setup). The session then speaks plain AMI inside.
 *
 * Non-blocking: reads and writes return -1 with errno EAGAIN while TLS
 * waits for the socket, as read() and write() would. */
#ifndef AMISIM_TLS_H
#define AMISIM_TLS_H

#include <stddef.h>
#include <sys/types.h>

/* Once, before any client: 0, or -1 with the reason logged. */
int tls_server_init(const char *cert_file, const char *key_file);
int tls_enabled(void);
/* A TLS session over a connected, non-blocking fd (NULL on failure). */
void *tls_session_new(int fd);
void tls_session_free(void *ssl);
/* Like read()/write(). *want_write is set when TLS needs the socket
 * writable before it can go on (the caller polls for it). */
ssize_t tls_read(void *ssl, void *buf, size_t n, int *want_write);
ssize_t tls_write(void *ssl, const void *buf, size_t n, int *want_write);
/* Sends close_notify (best effort, never waits). */
void tls_close_notify(void *ssl);
/* Decrypted input TLS holds that no poll for the socket will announce. */
int tls_buffered(void *ssl);

#endif
