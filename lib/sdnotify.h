/* sdnotify.h -- telling systemd (or any service manager speaking its
 * protocol) that a daemon is ready, stopping, alive and what it is doing.
 *
 * The protocol is one datagram of "NAME=value" lines on the AF_UNIX socket
 * named by $NOTIFY_SOCKET; systemd documents it as stable for other
 * implementations (sd_notify(3)). Written here rather than linking
 * libsystemd: a dozen lines against a whole library (and its dependencies)
 * in two network-facing daemons. Without $NOTIFY_SOCKET every call is a
 * no-op, so the programs run the same by hand, in a container or under
 * another supervisor. */
#ifndef CALLBUS_SDNOTIFY_H
#define CALLBUS_SDNOTIFY_H

/* Sends state ("READY=1", "STOPPING=1", "STATUS=..."; several lines may be
 * joined with '\n'). Returns 1 when sent, 0 without $NOTIFY_SOCKET, -1 on
 * an error (logged once). */
int sdnotify(const char *state);
/* sdnotify("STATUS=<formatted text>"): what `systemctl status` shows. */
int sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Seconds between watchdog pings the manager asks for: half of
 * $WATCHDOG_USEC (when $WATCHDOG_PID, if set, is this process), else 0. */
double sdnotify_watchdog_interval(void);
/* Sends "WATCHDOG=1" when a ping is due (by the monotonic clock, which a
 * stepped wall clock cannot stall); cheap to call every loop turn. */
void sdnotify_watchdog(void);

#endif
