/* seen.h -- a fuzz target's memory of the checks it already passed, for
 * checks whose verdict depends on some bytes only (a record or message the
 * code under test produced, parsed back and checked). Most of those repeat
 * from input to input (the same errors, the same records), and parsing them
 * back under ASan was most of an input's allocations; a repeat of the very
 * same bytes (compared whole, not by hash) skips the check. Only passes are
 * remembered, so a check that fails always runs. Direct-mapped by hash: a
 * new entry replaces the old one in its slot. Header-only: each target is
 * one file linked alone. */
#ifndef CALLBUS_FUZZ_SEEN_H
#define CALLBUS_FUZZ_SEEN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SEEN_SLOTS 4096
#define SEEN_MAX 1024 /* longer bytes are checked every time */

static struct {
    uint64_t hash;
    size_t alen, blen;
    char text[SEEN_MAX];
} seen_table[SEEN_SLOTS];

/* FNV-1a; not instrumented: a coverage callback per byte would cost more
 * than the check it saves, and the harness's loops are no coverage to chase. */
__attribute__((no_sanitize("coverage"))) static uint64_t seen_hash(uint64_t h, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

/* 1 when a then b (a: what the verdict also depends on, e.g. a key; may be
 * empty) passed before; *h is for seen_remember. */
static int seen_before(const char *a, size_t alen, const char *b, size_t blen, uint64_t *h) {
    *h = seen_hash(seen_hash(1469598103934665603ULL, a, alen) ^ alen, b, blen);
    const __typeof__(seen_table[0]) *e = &seen_table[*h % SEEN_SLOTS];
    return alen + blen > 0 && e->hash == *h && e->alen == alen && e->blen == blen &&
           !memcmp(e->text, a, alen) && !memcmp(e->text + alen, b, blen);
}

/* a then b passed their check. */
static void seen_remember(uint64_t h, const char *a, size_t alen, const char *b, size_t blen) {
    if (alen + blen > SEEN_MAX) return;
    __typeof__(seen_table[0]) *e = &seen_table[h % SEEN_SLOTS];
    e->hash = h;
    e->alen = alen;
    e->blen = blen;
    memcpy(e->text, a, alen);
    memcpy(e->text + alen, b, blen);
}

#endif
