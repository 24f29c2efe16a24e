/* fuzz_unanswered.c -- libFuzzer target for reading the results topic back
 * (agent/unanswered.c: whatever anyone wrote there).
 * fuzz-needs: agent
 * fuzz-max-len: 4096
 *
 * The input is cut at newlines into records, in topic order. Invariants: no
 * crash, leak or UB; every command handed out has an id that fits a
 * command's and is non-empty, and a type and sender that fit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unanswered.h"

static void check(void *ctx, const unanswered_command *c) {
    (void)ctx;
    size_t id = strlen(c->id);
    if (id == 0 || id >= 160 || strlen(c->type) >= 48 || strlen(c->sender) >= 128) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unanswered *u = unanswered_new("callbus://riga/agent/agent1");
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        unanswered_add(u, p, len, (int64_t)len * 1000);
        p += len + 1;
    }
    unanswered_each(u, check, NULL);
    unanswered_free(u);
    return 0;
}
