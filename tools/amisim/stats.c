/* stats.c -- action and event counters, dumped as JSON (see stats.h). */
#include "stats.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <uthash.h>

#include "log.h"

typedef struct action_count {
    char *name;
    char *action;           /* by ActionID: the action that carried it first */
    unsigned long count;
    double first_at;        /* when the first one arrived (for latency benchmarks) */
    UT_hash_handle hh;
} action_count;

static action_count *actions, *by_id;
static json_t *originates;
static unsigned long events_sent;
static unsigned long clients;

static action_count *count_in(action_count **table, const char *key) {
    action_count *a;
    HASH_FIND_STR(*table, key, a);
    if (!a) {
        a = calloc(1, sizeof(*a));
        if (!a) abort();
        a->name = strdup(key);
        HASH_ADD_KEYPTR(hh, *table, a->name, strlen(a->name), a);
    }
    a->count++;
    return a;
}

/* Session housekeeping is not a command: only the others are counted by id. */
static int counted_by_id(const char *name) {
    static const char *skip[] = {"Login", "Logoff", "Ping", "Events"};
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (strcasecmp(name, skip[i]) == 0) return 0;
    return 1;
}

void stats_action(const char *name, const char *actionid) {
    count_in(&actions, name);
    if (!*actionid || !counted_by_id(name)) return;
    action_count *a = count_in(&by_id, actionid);
    if (!a->action) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        a->action = strdup(name);
        a->first_at = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
    }
}

void stats_originate(const char *actionid, const char *channel, const char *exten,
                     const char (*vars)[2][128], int nvars) {
    if (!originates) originates = json_array();
    json_t *v = json_object();
    for (int i = 0; i < nvars; i++) json_object_set_new(v, vars[i][0], json_string(vars[i][1]));
    json_array_append_new(originates, json_pack("{s:s, s:s, s:s, s:o}", "action_id", actionid,
                                                "channel", channel, "exten", exten,
                                                "variables", v));
}

void stats_events(unsigned long n) {
    events_sent += n;
}

void stats_client(void) {
    clients++;
}

static json_t *counts_json(void) {
    json_t *acts = json_object();
    for (action_count *a = actions; a; a = a->hh.next)
        json_object_set_new(acts, a->name, json_integer((json_int_t)a->count));
    return acts;
}

static json_t *by_id_json(void) {
    json_t *ids = json_object();
    for (action_count *a = by_id; a; a = a->hh.next)
        json_object_set_new(ids, a->name, json_pack("{s:s, s:I, s:f}", "action", a->action,
                                                    "count", (json_int_t)a->count,
                                                    "first_at", a->first_at));
    return ids;
}

/* Written to a temporary file and renamed, so a reader never sees half. */
int stats_write(const char *path) {
    json_t *orig = originates ? json_incref(originates) : json_array();
    json_t *root = json_pack("{s:o, s:o, s:o, s:I, s:I}", "actions", counts_json(),
                             "by_action_id", by_id_json(), "originates", orig, "events_sent",
                             (json_int_t)events_sent, "clients", (json_int_t)clients);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int rc = json_dump_file(root, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (rc == 0 && rename(tmp, path) == 0) return 0;
    log_warn("cannot write stats file %s", path);
    return -1;
}

static void free_table(action_count **table) {
    action_count *a, *tmp;
    HASH_ITER(hh, *table, a, tmp) {
        HASH_DEL(*table, a);
        free(a->name);
        free(a->action);
        free(a);
    }
}

void stats_free(void) {
    free_table(&actions);
    free_table(&by_id);
    json_decref(originates);
    originates = NULL;
}
