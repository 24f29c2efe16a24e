/* ami_tls.h -- the agent's end of AMI over TLS (Asterisk's manager.conf
 * tlsenable, port 5039 by default): OpenSSL on the AMI socket, driven by
 * the AMI link's state machine (ami_client.c) inside the agent's one poll
 * loop, never blocking it.
 *
 * Asterisk's certificate is always verified: its chain against
 * agent.ami.tls_ca_file (else the system's CAs), its name against
 * agent.ami.tls_server_name (else agent.ami.host; an IP address is matched
 * as one). A link whose check fails is refused with the reason. */
#ifndef CALLBUS_AMI_TLS_H
#define CALLBUS_AMI_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

typedef struct ami_tls ami_tls;         /* the settings: one per agent */
typedef struct ami_tls_conn ami_tls_conn; /* one TLS session on one socket */

/* NULL with err when the CA file cannot be used. */
ami_tls *ami_tls_new(const callbus_config *c, char *err, size_t errlen);
void ami_tls_free(ami_tls *t);

/* A session on a connected non-blocking socket (not closed by us). */
ami_tls_conn *ami_tls_conn_new(ami_tls *t, int fd, char *err, size_t errlen);
/* Sends close_notify if the handshake was done (never waits), frees. */
void ami_tls_conn_free(ami_tls_conn *s);

/* Results of the calls below that are not byte counts. */
enum { AMI_TLS_DONE = 0, AMI_TLS_WANT_READ = -2, AMI_TLS_WANT_WRITE = -3, AMI_TLS_FAILED = -1 };

/* Goes on with the handshake: DONE, WANT_READ/WANT_WRITE (poll for it and
 * call again), or FAILED with the reason in err ("certificate not trusted
 * ...", "certificate is not for ..."). */
int ami_tls_handshake(ami_tls_conn *s, char *err, size_t errlen);
/* Bytes read (> 0), 0 when Asterisk closed, WANT_READ/WANT_WRITE, or FAILED
 * with err. */
ssize_t ami_tls_read(ami_tls_conn *s, void *buf, size_t n, char *err, size_t errlen);
/* Bytes written (> 0), WANT_READ/WANT_WRITE, or FAILED with err. The same
 * bytes must be offered again after a WANT (they may have moved). */
ssize_t ami_tls_write(ami_tls_conn *s, const void *buf, size_t n, char *err, size_t errlen);

#endif
