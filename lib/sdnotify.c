/* sdnotify.c -- the service manager's notification protocol (see sdnotify.h). */
#include "sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

static int warned;

static int fail(const char *what, const char *addr) {
    if (!warned) log_warn("sd_notify: %s %s: %s", what, addr, strerror(errno));
    warned = 1;
    return -1;
}

/* "/run/systemd/notify" is a path; "@name" is Linux's abstract namespace. */
static int notify_address(const char *name, struct sockaddr_un *sa, socklen_t *len) {
    size_t n = strlen(name);
    if ((name[0] != '/' && name[0] != '@') || n < 2 || n >= sizeof(sa->sun_path)) return -1;
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, name, n);
    if (name[0] == '@') sa->sun_path[0] = '\0';
    /* an abstract name is exactly its bytes, a path ends at its NUL */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));
    return 0;
}

int sdnotify(const char *state) {
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !*name) return 0;
    struct sockaddr_un sa;
    socklen_t len;
    if (notify_address(name, &sa, &len) < 0) {
        errno = EAFNOSUPPORT;
        return fail("cannot use NOTIFY_SOCKET", name);
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail("socket for", name);
    ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    int saved = errno;
    close(fd);
    errno = saved;
    if (sent < 0) return fail("cannot send to", name);
    return 1;
}

int sdnotify_status(const char *fmt, ...) {
    char line[512] = "STATUS=";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + 7, sizeof(line) - 7, fmt, ap);
    va_end(ap);
    /* one line: a newline would start another assignment */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return sdnotify(line);
}

double sdnotify_watchdog_interval(void) {
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (!usec || !getenv("NOTIFY_SOCKET")) return 0;
    if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid()) return 0;
    char *end;
    double us = strtod(usec, &end);
    if (*end || us <= 0) return 0;
    return us / 2e6;
}

void sdnotify_watchdog(void) {
    static double interval = -1, next;
    if (interval < 0) interval = sdnotify_watchdog_interval();
    if (interval <= 0) return;
    double now = mono_now();
    if (now < next) return;
    next = now + interval;
    sdnotify("WATCHDOG=1");
}
