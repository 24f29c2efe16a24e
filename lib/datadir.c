/* datadir.c -- the files a program ships with, found next to it (see datadir.h). */
#include "datadir.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* buf holds path, without its "..", when it is a directory. */
static int found(const char *path, char *buf, size_t len) {
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(path, real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) return 0;
    snprintf(buf, len, "%s", real);
    return 1;
}

int datadir_find(const char *name, const char *source, char *buf, size_t len) {
    char exe[PATH_MAX], path[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        snprintf(buf, len, "share/callbus/%s (the program's own location is unknown)", name);
        return -1;
    }
    exe[n] = '\0';
    /* /usr/local/bin/callbus -> /usr/local */
    const char *prefix = dirname(dirname(exe));
    snprintf(path, sizeof(path), "%s/share/callbus/%s", prefix, name);
    if (found(path, buf, len)) return 0;
    snprintf(buf, len, "%s", path);
    snprintf(path, sizeof(path), "%s/%s", prefix, source);
    return found(path, buf, len) ? 0 : -1;
}
