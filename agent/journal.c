/* journal.c -- append-only, fsynced command journal (see journal.h).
 *
 * One line per change: "<state> <expires> <command id>\n". The last line for
 * an id wins. Ids are checked by the decoder (printable, no spaces), so a
 * complete line always parses.
 *
 * The file always ends with a complete record. A line torn by a crash or a
 * full disk is a record whose fsync never returned, i.e. an action never
 * sent; it is cut off when the journal opens and right after a failed
 * write. Otherwise the next append (O_APPEND) would be glued onto the
 * fragment and read back as one line with a different id, and the command
 * it recorded would be forgotten: run again on redelivery. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uthash.h>

#include "alloc.h"
#include "durable.h"
#include "log.h"

typedef struct entry {
    char *id;
    double expires;
    journal_state st;
    UT_hash_handle hh;
} entry;

struct journal {
    char *path;
    int fd;
    entry *entries;
    size_t lines;   /* lines in the file, to know when a rewrite pays */
    off_t size;     /* bytes of complete records: the file's length after each success */
};

static void put(journal *j, const char *id, double expires, journal_state st) {
    entry *e;
    HASH_FIND_STR(j->entries, id, e);
    if (!e) {
        e = xcalloc(1, sizeof(*e));
        e->id = xstrdup(id);
        HASH_ADD_KEYPTR(hh, j->entries, e->id, strlen(e->id), e);
    }
    e->expires = expires;
    e->st = st;
}

/* One complete line (without its '\n'); a line that is not exactly a
 * record (from a foreign or damaged file) is skipped, never half-read. */
static void load_line(journal *j, const char *line, size_t len) {
    char st, id[400], buf[512];
    double expires;
    int used = -1;
    if (len >= sizeof(buf)) return;
    memcpy(buf, line, len);
    buf[len] = '\0';
    if (sscanf(buf, "%c %lf %399s%n", &st, &expires, id, &used) != 3 || (size_t)used != len) return;
    if (st != JOURNAL_EXECUTING && st != JOURNAL_DONE) return;
    put(j, id, expires, (journal_state)st);
    j->lines++;
}

/* Reads every complete line; j->size ends after the last '\n'. Returns -1
 * (errno set) when the file exists but cannot be read. */
static int load(journal *j, int fd) {
    struct stat sb;
    if (fstat(fd, &sb) < 0) return -1;
    char *data = xmalloc((size_t)sb.st_size + 1);
    size_t have = 0;
    while (have < (size_t)sb.st_size) {
        ssize_t n = read(fd, data + have, (size_t)sb.st_size - have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            free(data);
            return -1;
        }
        if (n == 0) break;
        have += (size_t)n;
    }
    size_t start = 0;
    for (size_t i = 0; i < have; i++) {
        if (data[i] != '\n') continue;
        load_line(j, data + start, i - start);
        start = i + 1;
    }
    free(data);
    j->size = (off_t)start;
    return 0;
}

/* Cuts the file back to its last complete record. */
static int cut_torn_tail(journal *j) {
    struct stat sb;
    if (fstat(j->fd, &sb) < 0) return -1;
    if (sb.st_size == j->size) return 0;
    if (ftruncate(j->fd, j->size) < 0 || fdatasync(j->fd) < 0) return -1;
    log_warn("command journal %s: cut %lld bytes of a torn last record (never completed, never executed)",
             j->path, (long long)(sb.st_size - j->size));
    return 0;
}

journal *journal_open(const char *path, char *err, size_t errlen) {
    journal *j = xcalloc(1, sizeof(*j));
    j->path = xstrdup(path);
    j->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    /* The directory entry too: a journal lost with a power cut would let
     * commands it recorded run again. */
    if (j->fd < 0 || durable_sync_dir_of(path) < 0 || load(j, j->fd) < 0 || cut_torn_tail(j) < 0) {
        snprintf(err, errlen, "command journal %s: %s", path, strerror(errno));
        journal_close(j);
        return NULL;
    }
    return j;
}

journal_state journal_get(const journal *j, const char *id) {
    entry *e;
    HASH_FIND_STR(j->entries, id, e);
    return e ? e->st : JOURNAL_NONE;
}

/* Returns the bytes written, or -1. */
static int write_line(int fd, const char *id, double expires, journal_state st) {
    char line[512];
    int n = snprintf(line, sizeof(line), "%c %.3f %s\n", (char)st, expires, id);
    if (n <= 0 || (size_t)n >= sizeof(line)) return -1;
    return write(fd, line, (size_t)n) == n ? n : -1;
}

int journal_set(journal *j, const char *id, double expires, journal_state st) {
    if (strlen(id) >= 400 || strchr(id, ' ') || strchr(id, '\n') || j->fd < 0) return -1;
    /* A failed write earlier may have left a fragment that could not be cut
     * then: nothing is appended behind it. */
    if (cut_torn_tail(j) < 0) return -1;
    int n = write_line(j->fd, id, expires, st);
    if (n < 0 || fdatasync(j->fd) < 0) {
        int e = errno;
        /* Not durable, so not executed: the record must not stay either. */
        if (cut_torn_tail(j) < 0)
            log_error("command journal %s: cannot cut a failed record: %s", j->path, strerror(errno));
        errno = e;
        return -1;
    }
    j->size += n;
    put(j, id, expires, st);
    j->lines++;
    return 0;
}

void journal_each(journal *j, journal_visit_fn fn, void *ctx) {
    entry *e, *tmp;
    HASH_ITER(hh, j->entries, e, tmp) fn(ctx, e->id, e->expires, e->st);
}

/* Rewrites the file with the live entries, atomically by rename. */
static void rewrite(journal *j) {
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", j->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return;
    entry *e, *t;
    size_t lines = 0;
    off_t size = 0;
    HASH_ITER(hh, j->entries, e, t) {
        int n = write_line(fd, e->id, e->expires, e->st);
        if (n < 0) { close(fd); unlink(tmp); return; }
        lines++;
        size += n;
    }
    if (fsync(fd) < 0 || durable_rename(tmp, j->path) < 0) { close(fd); unlink(tmp); return; }
    close(fd);
    close(j->fd);
    j->fd = open(j->path, O_RDWR | O_APPEND | O_CLOEXEC);
    j->lines = lines;
    j->size = size;
}

void journal_prune(journal *j, double before) {
    entry *e, *t;
    HASH_ITER(hh, j->entries, e, t) {
        /* An entry still executing keeps its place until its result is out. */
        if (e->expires < before && e->st == JOURNAL_DONE) {
            HASH_DEL(j->entries, e);
            free(e->id);
            free(e);
        }
    }
    if (j->lines > 2 * HASH_COUNT(j->entries) + 1000) rewrite(j);
}

size_t journal_size(const journal *j) { return HASH_COUNT(j->entries); }

void journal_close(journal *j) {
    if (!j) return;
    entry *e, *t;
    HASH_ITER(hh, j->entries, e, t) {
        HASH_DEL(j->entries, e);
        free(e->id);
        free(e);
    }
    if (j->fd >= 0) close(j->fd);
    free(j->path);
    free(j);
}
