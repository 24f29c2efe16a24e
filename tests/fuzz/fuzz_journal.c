/* fuzz_journal.c -- libFuzzer target for the command journal's reader
 * (agent/journal.c: journal_open on a file that anything may have left:
 * torn lines, NULs, damaged records, a full disk).
 * fuzz-needs: agent
 *
 * The input is the journal file as found on disk. It is opened, walked,
 * given a new record, closed and opened again. Invariants: no crash, leak or
 * UB; every id it hands out is non-empty with a known state; the record
 * written after opening is read back whole after reopening (a torn last
 * line was cut, never glued to it), and so is every entry seen before. The
 * file lives on /dev/shm when there is one: fsync costs nothing there. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    snprintf(path, sizeof(path), "%s/callbus-fuzz-journal-%d", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm",
             (int)getpid());
    return 0;
}

typedef struct seen {
    size_t n;
    char ids[64][128];
    journal_state st[64];
} seen;

static void visit(void *ctx, const char *id, double expires, journal_state st) {
    seen *s = ctx;
    (void)expires;
    if (!id || !*id || (st != JOURNAL_EXECUTING && st != JOURNAL_DONE)) abort();
    if (s->n < 64 && strlen(id) < sizeof(s->ids[0])) {
        snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", id);
        s->st[s->n++] = st;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    char err[256];
    journal *j = journal_open(path, err, sizeof(err));
    if (!j) {
        unlink(path);
        return 0;
    }
    seen before = {0};
    journal_each(j, visit, &before);
    if (journal_size(j) < before.n) abort();
    if (journal_set(j, "fuzz:new:1", 4102444800.0, JOURNAL_EXECUTING) < 0) abort();
    journal_close(j);

    j = journal_open(path, err, sizeof(err));
    if (!j) abort();   /* what it wrote itself it must read back */
    if (journal_get(j, "fuzz:new:1") != JOURNAL_EXECUTING) abort();
    for (size_t i = 0; i < before.n; i++)
        if (strcmp(before.ids[i], "fuzz:new:1") && journal_get(j, before.ids[i]) == JOURNAL_NONE) abort();
    journal_close(j);
    unlink(path);
    return 0;
}
