/* fuzz_config.c -- libFuzzer target for the config loader (lib/config.c:
 * config_load on a file, through libconfig and the settings table).
 * fuzz-flags: -detect_leaks=0
 *
 * libconfig 1.5 leaks its scanner's buffer on many syntax errors (see
 * tests/fuzz/lsan.supp), and libFuzzer scans for leaks after every input
 * whose mallocs and frees differ: ~1 ms each, 800 executions/s. So no scan
 * per input; LeakSanitizer still checks the whole run at exit (with the
 * suppression), so a leak of lib/config.c's own still fails the run.
 *
 * The input is the file. Invariants: no crash, leak or UB; a refusal says
 * why (a non-empty message); a loaded config is freed whole, and loading the
 * same bytes again gives the same answer (no state kept between loads). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    snprintf(path, sizeof(path), "%s/callbus-fuzz-config-%d.conf", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm",
             (int)getpid());
    return 0;
}

static int load(char *err, size_t errlen) {
    callbus_config c;
    err[0] = 0;
    int rc = config_load(&c, path, err, errlen);
    if (rc < 0 && !err[0]) abort();
    config_free(&c);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    char err1[512], err2[512];
    int a = load(err1, sizeof(err1));
    /* The second load is a costlier check: only for inputs that loaded. */
    if (a == 0 && load(err2, sizeof(err2)) != 0) abort();
    unlink(path);
    return 0;
}
