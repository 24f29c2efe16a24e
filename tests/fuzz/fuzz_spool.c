/* fuzz_spool.c -- libFuzzer target for the disk spool's reader
 * (agent/spool.c: spool_open and spool_peek on files that anything may have
 * left: torn or damaged records, lengths past the end, read.offset nonsense).
 * fuzz-needs: agent
 *
 * The input is what a crash, a full disk or a hand left in the spool
 * directory: up to its first "\n--\n", read.offset; after it (or all of it,
 * without one), the last segment. The spool is opened and read to its end,
 * each record released as the broker would; then a new record is appended
 * and must come back whole, next and alone (never glued to a torn record
 * before it); then closed. Invariants: no crash, leak, UB or endless read;
 * every record's key and payload lie inside the record. The directory lives
 * on /dev/shm when there is one. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"

static char dir[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    snprintf(dir, sizeof(dir), "%s/callbus-fuzz-spool-%d", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm",
             (int)getpid());
    if (mkdir(dir, 0700) < 0) abort();
    return 0;
}

static void put_file(const char *name, const uint8_t *data, size_t n) {
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

static void clear_dir(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[400];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (unlink(path) < 0) abort();
    }
    if (d) closedir(d);
}

/* Reads everything; each record's bytes are touched, so that the
 * sanitizer sees any that lie outside what the spool owns. */
static void read_all(spool *s, size_t at_most) {
    spool_record r;
    size_t n = 0;
    while (spool_peek(s, &r) == 1) {
        if (++n > at_most) abort();   /* more records than bytes: an endless read */
        volatile unsigned sum = r.topic;
        for (size_t i = 0; i < r.keylen; i++) sum += (unsigned char)r.key[i];
        for (size_t i = 0; r.payload && i < r.len; i++) sum += (unsigned char)r.payload[i];
        if (!r.payload && r.len) abort();
        spool_consume(s);
        spool_release(s, r.hold);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *seg = data;
    size_t seglen = size;
    const uint8_t *sep = memmem(data, size, "\n--\n", 4);
    if (sep) {
        put_file("read.offset", data, (size_t)(sep - data));
        seg = sep + 4;
        seglen = size - (size_t)(seg - data);
    }
    char name[64];
    snprintf(name, sizeof(name), "seg-%020lld.spool", 1LL << 40);
    put_file(name, seg, seglen);

    char err[256];
    spool *s = spool_open(dir, 1 << 20, err, sizeof(err));
    if (!s) abort();
    read_all(s, seglen / 12 + 1);
    if (!spool_empty(s)) abort();

    spool_record mine = {.topic = 3, .key = "fuzz-key", .keylen = 8, .payload = "{\"fuzz\":1}", .len = 10};
    if (spool_append(s, &mine) < 0) abort();
    spool_record r;
    if (spool_peek(s, &r) != 1 || r.topic != 3 || r.keylen != 8 || memcmp(r.key, "fuzz-key", 8) ||
        r.len != 10 || !r.payload || memcmp(r.payload, "{\"fuzz\":1}", 10))
        abort();
    spool_consume(s);
    spool_release(s, r.hold);
    if (spool_peek(s, &r) != 0) abort();
    spool_close(s);
    clear_dir();
    return 0;
}
