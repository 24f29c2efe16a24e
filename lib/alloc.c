/* alloc.c -- allocation that aborts when memory runs out (see alloc.h). */
#include "alloc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *out_of_memory(size_t n) {
    fprintf(stderr, "callbus: out of memory allocating %zu bytes: aborting\n", n);
    fflush(stderr);
    abort();
}

/* malloc(0) may return NULL: ask for one byte so that NULL means failure. */
void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    return p ? p : out_of_memory(n);
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    return p ? p : out_of_memory(count * size);
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    return q ? q : out_of_memory(n);
}

char *xstrdup(const char *s) {
    char *p = strdup(s);
    return p ? p : out_of_memory(strlen(s) + 1);
}

char *xstrndup(const char *s, size_t n) {
    char *p = strndup(s, n);
    return p ? p : out_of_memory(n + 1);
}

void alloc_init(void) { json_set_alloc_funcs(xmalloc, free); }
