/* fuzz_state_restore.c -- libFuzzer target for the live state read back
 * from the state topics (hostile: anyone who can write a topic writes them).
 * fuzz-needs: agent
 * fuzz-max-len: 1024
 *
 * The input is lines, each a record: its first byte picks the topic (c, o,
 * q) or a tombstone (t), the rest is the record's data as JSON. They are
 * restored, the state is reconciled and driven by a few events.
 * Invariants: never crashes or leaks; every record handed out is a JSON
 * object whose id field is its key; only calls get tombstones. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "seen.h"
#include "state.h"

static const char *id_field[STATE_KINDS] = {"call_id", "operator_id", "queue"};

static void check(void *ctx, state_kind kind, const char *key, double time, const char *json, size_t len) {
    (void)ctx;
    (void)time;
    if (kind >= STATE_KINDS || !key) abort();
    if (!json) {
        if (kind != STATE_CALLS) abort();
        return;
    }
    /* The verdict is the kind's, the key's and the record's: a record seen
     * with them before (most repeat: the events below are the same for all
     * inputs) is not parsed again (seen.h). */
    char who[80];
    int wl = snprintf(who, sizeof(who), "%d:%s", (int)kind, key);
    uint64_t h;
    if (wl > 0 && (size_t)wl < sizeof(who) && seen_before(who, (size_t)wl, json, len, &h)) return;
    json_t *d = json_loadb(json, len, 0, NULL);
    const char *id = json_string_value(json_object_get(d, id_field[kind]));
    if (!json_is_object(d) || !id || strcmp(id, key) != 0) abort();
    json_decref(d);
    if (wl > 0 && (size_t)wl < sizeof(who)) seen_remember(h, who, (size_t)wl, json, len);
}

/* Returns 1 when the state took the record. */
static int restore_line(state *st, const char *line, size_t n) {
    if (n < 1) return 0;
    state_kind kind = line[0] == 'o' ? STATE_OPERATORS : line[0] == 'q' ? STATE_QUEUES : STATE_CALLS;
    json_t *d = line[0] == 't' ? NULL : json_loadb(line + 1, n - 1, 0, NULL);
    const char *key = d ? json_string_value(json_object_get(d, id_field[kind])) : NULL;
    if (d && !key) key = "k";   /* the mismatch of key and id is refused */
    char tomb[64];
    if (line[0] == 't') {
        snprintf(tomb, sizeof(tomb), "%.*s", (int)(n - 1 < 60 ? n - 1 : 60), line + 1);
        key = tomb;
    }
    int took = key && state_restore(st, kind, key, d) == 0;
    json_decref(d);
    return took;
}

/* Ends every call the state knows of, as the call model would. */
static void end_all(state *st, double t) {
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", i);
        json_t *d = json_pack("{s:s, s:s, s:[s]}", "call_id", id, "answered_by", "op101", "operators", "op101");
        state_apply(st, "callbus.call.ended", id, t, d);
        json_decref(d);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    state_settings set = {.timezone = "UTC", .service_level_s = 20};
    state *st = state_new(&set);
    const char *p = (const char *)data, *end = p + size;
    int took = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        took += restore_line(st, p, n);
        p += n + 1;
    }
    state_restore_end(st, 1795670000.0);
    /* The events below and the checks of every record flushed cost far more
     * than the restore: only for inputs that restored something (most
     * mutations are refused whole; the empty state's path is the same for
     * all of them and the seeds reach it). */
    if (!took) {
        state_free(st);
        return 0;
    }
    state_flush(st, check, NULL);
    state_reconcile(st, 1795670001.0, size % 2);
    json_t *ev = json_pack("{s:s, s:s, s:s}", "call_id", "1", "operator_id", "op101", "queue", "support");
    static const char *types[] = {"callbus.call.queued", "callbus.call.offered", "callbus.call.answered",
                                  "callbus.operator.paused", "callbus.call.held", "callbus.operator.ready",
                                  "callbus.call.transferred", "callbus.operator.logged_out"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) state_apply(st, types[i], "1", 1795670002.0 + i, ev);
    json_decref(ev);
    end_all(st, 1795670100.0);
    state_tick(st, 1795756400.0);
    state_flush(st, check, NULL);
    state_stats stats;
    state_get_stats(st, &stats);
    state_free(st);
    return 0;
}
