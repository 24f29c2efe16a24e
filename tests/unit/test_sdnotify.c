/* test_sdnotify.c -- the service manager's notification protocol, on real
 * AF_UNIX datagram sockets: a path and an abstract name, addresses a
 * manager would never give (refused, no crash), the watchdog interval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

/* A datagram socket bound to name ("/path" or "@abstract"), as systemd's. */
static int listen_at(const char *name) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    memcpy(sa.sun_path, name, n);
    if (name[0] == '@') sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
    return fd;
}

static void expect_datagram(int fd, const char *want) {
    char buf[600];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    assert_true(n >= 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void expect_nothing(int fd) {
    char buf[16];
    assert_true(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0);
}

static void test_path_socket(void **state) {
    (void)state;
    char dir[] = "/tmp/sdnotify-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/notify", dir);
    int fd = listen_at(path);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(sdnotify("READY=1"), 1);
    expect_datagram(fd, "READY=1");
    assert_int_equal(sdnotify("STOPPING=1\nSTATUS=stopping"), 1);
    expect_datagram(fd, "STOPPING=1\nSTATUS=stopping");
    close(fd);
    unlink(path);
    rmdir(dir);
    unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket_and_status(void **state) {
    (void)state;
    char name[64];
    snprintf(name, sizeof(name), "@callbus-test-%d", (int)getpid());
    int fd = listen_at(name);
    setenv("NOTIFY_SOCKET", name, 1);
    /* a newline in the text would become a second assignment */
    assert_int_equal(sdnotify_status("AMI down (%s)", "closed\nREADY=1"), 1);
    expect_datagram(fd, "STATUS=AMI down (closed READY=1)");
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void test_without_manager_or_with_bad_address(void **state) {
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(sdnotify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(sdnotify("READY=1"), 0);
    /* relative, too long, unsupported (vsock), nobody listening */
    char longname[200];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[0] = '/';
    longname[sizeof(longname) - 1] = '\0';
    const char *bad[] = {"run/notify", longname, "vsock:2:1234", "@", "/nonexistent/callbus/notify"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        setenv("NOTIFY_SOCKET", bad[i], 1);
        assert_int_equal(sdnotify("READY=1"), -1);
    }
    unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog(void **state) {
    (void)state;
    char name[64], pid[32];
    snprintf(name, sizeof(name), "@callbus-test-wd-%d", (int)getpid());
    int fd = listen_at(name);
    setenv("NOTIFY_SOCKET", name, 1);
    setenv("WATCHDOG_USEC", "3000000", 1);
    unsetenv("WATCHDOG_PID");
    assert_true(sdnotify_watchdog_interval() == 1.5);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    assert_true(sdnotify_watchdog_interval() == 1.5);
    /* the watchdog is another process's (we were forked from it) */
    snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    assert_true(sdnotify_watchdog_interval() == 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "soon", 1);
    assert_true(sdnotify_watchdog_interval() == 0);
    setenv("WATCHDOG_USEC", "3000000", 1);
    /* once now, then not again within the interval */
    sdnotify_watchdog();
    expect_datagram(fd, "WATCHDOG=1");
    sdnotify_watchdog();
    expect_nothing(fd);
    close(fd);
    unsetenv("WATCHDOG_USEC");
    unsetenv("NOTIFY_SOCKET");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket_and_status),
        cmocka_unit_test(test_without_manager_or_with_bad_address),
        cmocka_unit_test(test_watchdog),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
