/* journal.c -- append-only, fsynced command journal (see journal.h).
 *
 * One line per change: "<state> <expires> <command id>\n". The last line for
 * an id wins. Ids are checked by the decoder (printable, no spaces), so a
 * line always parses; a line torn by a crash is ignored, which at worst
 * forgets a record whose fsync never returned, i.e. an action never sent. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uthash.h>

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
};

static void put(journal *j, const char *id, double expires, journal_state st) {
    entry *e;
    HASH_FIND_STR(j->entries, id, e);
    if (!e) {
        e = calloc(1, sizeof(*e));
        e->id = strdup(id);
        HASH_ADD_KEYPTR(hh, j->entries, e->id, strlen(e->id), e);
    }
    e->expires = expires;
    e->st = st;
}

static void load(journal *j) {
    FILE *f = fopen(j->path, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char st, id[400];
        double expires;
        size_t n = strlen(line);
        if (n == 0 || line[n - 1] != '\n') break; /* torn tail */
        if (sscanf(line, "%c %lf %399s", &st, &expires, id) != 3) continue;
        if (st != JOURNAL_EXECUTING && st != JOURNAL_DONE) continue;
        put(j, id, expires, (journal_state)st);
        j->lines++;
    }
    fclose(f);
}

journal *journal_open(const char *path, char *err, size_t errlen) {
    journal *j = calloc(1, sizeof(*j));
    j->path = strdup(path);
    load(j);
    j->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (j->fd < 0) {
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

static int write_line(int fd, const char *id, double expires, journal_state st) {
    char line[512];
    int n = snprintf(line, sizeof(line), "%c %.3f %s\n", (char)st, expires, id);
    if (n <= 0 || (size_t)n >= sizeof(line)) return -1;
    return write(fd, line, (size_t)n) == n ? 0 : -1;
}

int journal_set(journal *j, const char *id, double expires, journal_state st) {
    if (strlen(id) >= 400 || strchr(id, ' ') || strchr(id, '\n')) return -1;
    if (write_line(j->fd, id, expires, st) < 0 || fdatasync(j->fd) < 0) return -1;
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
    HASH_ITER(hh, j->entries, e, t) {
        if (write_line(fd, e->id, e->expires, e->st) < 0) { close(fd); unlink(tmp); return; }
        lines++;
    }
    if (fsync(fd) < 0 || rename(tmp, j->path) < 0) { close(fd); unlink(tmp); return; }
    close(fd);
    close(j->fd);
    j->fd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    j->lines = lines;
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
