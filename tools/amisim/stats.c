/* stats.c -- action and event counters, dumped as JSON (see stats.h). */
#include "stats.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "log.h"

typedef struct action_count {
    char *name;
    unsigned long count;
    UT_hash_handle hh;
} action_count;

static action_count *actions;
static unsigned long events_sent;
static unsigned long clients;

void stats_action(const char *name) {
    action_count *a;
    HASH_FIND_STR(actions, name, a);
    if (!a) {
        a = calloc(1, sizeof(*a));
        if (!a) abort();
        a->name = strdup(name);
        HASH_ADD_KEYPTR(hh, actions, a->name, strlen(a->name), a);
    }
    a->count++;
}

void stats_events(unsigned long n) {
    events_sent += n;
}

void stats_client(void) {
    clients++;
}

/* Written to a temporary file and renamed, so a reader never sees half. */
int stats_write(const char *path) {
    json_t *acts = json_object();
    for (action_count *a = actions; a; a = a->hh.next)
        json_object_set_new(acts, a->name, json_integer((json_int_t)a->count));
    json_t *root = json_pack("{s:o, s:I, s:I}", "actions", acts, "events_sent",
                             (json_int_t)events_sent, "clients", (json_int_t)clients);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int rc = json_dump_file(root, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (rc == 0 && rename(tmp, path) == 0) return 0;
    log_warn("cannot write stats file %s", path);
    return -1;
}

void stats_free(void) {
    action_count *a, *tmp;
    HASH_ITER(hh, actions, a, tmp) {
        HASH_DEL(actions, a);
        free(a->name);
        free(a);
    }
}
