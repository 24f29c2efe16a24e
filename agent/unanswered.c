/* unanswered.c -- the commands another instance accepted and never
 * answered (see unanswered.h).
 *
 * The results topic is read as hostile input: a record that is not a
 * CloudEvent with a string source, command id and status is skipped, and
 * so is one whose id, type or sender is longer than a command's own fields
 * (agent/command_decode.h), so nothing read here can make a result the
 * executor could not have written. */
#include "unanswered.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "alloc.h"
#include "log.h"
#include "topic_read.h"

#define ID_MAX 160
#define TYPE_MAX 48
#define SENDER_MAX 128
#define SOURCE_MAX 192

typedef struct seen {
    char id[ID_MAX];
    char type[TYPE_MAX];
    char sender[SENDER_MAX];
    double accepted_at;
    int accepted, answered;
    UT_hash_handle hh;
} seen;

struct unanswered {
    char source[SOURCE_MAX];
    seen *by_id;
};

unanswered *unanswered_new(const char *source) {
    unanswered *u = xcalloc(1, sizeof(*u));
    snprintf(u->source, sizeof(u->source), "%s", source);
    return u;
}

static seen *seen_get(unanswered *u, const char *id) {
    seen *e;
    HASH_FIND_STR(u->by_id, id, e);
    if (!e) {
        e = xcalloc(1, sizeof(*e));
        snprintf(e->id, sizeof(e->id), "%s", id);
        HASH_ADD_STR(u->by_id, id, e);
    }
    return e;
}

/* A string that fits in max bytes with its NUL, or NULL. */
static const char *fitting(json_t *o, const char *key, size_t max) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) && json_string_length(v) < max && strlen(json_string_value(v)) == json_string_length(v)
               ? json_string_value(v)
               : NULL;
}

static void record_accepted(unanswered *u, const char *id, json_t *data, int64_t timestamp_ms) {
    seen *e = seen_get(u, id);
    const char *type = fitting(data, "command_type", TYPE_MAX), *sender = fitting(data, "sender", SENDER_MAX);
    snprintf(e->type, sizeof(e->type), "%s", type ? type : "");
    snprintf(e->sender, sizeof(e->sender), "%s", sender ? sender : "");
    e->accepted = 1;
    e->accepted_at = timestamp_ms > 0 ? (double)timestamp_ms / 1000.0 : 0;
}

int unanswered_add(unanswered *u, const char *value, size_t len, int64_t timestamp_ms) {
    json_t *ev = value ? json_loadb(value, len, 0, NULL) : NULL;
    json_t *data = json_object_get(ev, "data");
    const char *id = fitting(data, "command_id", ID_MAX), *status = fitting(data, "status", 32);
    const char *source = fitting(ev, "source", SOURCE_MAX);
    int rc = 0;
    if (!id || !*id || !status || !source) rc = -1;
    else if (strcmp(status, "accepted") != 0) seen_get(u, id)->answered = 1;
    else if (strcmp(source, u->source) == 0) record_accepted(u, id, data, timestamp_ms);
    json_decref(ev);
    return rc;
}

long unanswered_each(unanswered *u, unanswered_fn fn, void *ctx) {
    long n = 0;
    seen *e, *tmp;
    HASH_ITER(hh, u->by_id, e, tmp) {
        if (!e->accepted || e->answered) continue;
        fn(ctx, &(unanswered_command){.id = e->id, .type = e->type, .sender = e->sender,
                                      .accepted_at = e->accepted_at});
        n++;
    }
    return n;
}

void unanswered_free(unanswered *u) {
    if (!u) return;
    seen *e, *tmp;
    HASH_ITER(hh, u->by_id, e, tmp) {
        HASH_DEL(u->by_id, e);
        free(e);
    }
    free(u);
}

typedef struct reading {
    unanswered *u;
    long skipped;
} reading;

static void take(void *ctx, int topic, const rd_kafka_message_t *m) {
    (void)topic;
    reading *r = ctx;
    if (unanswered_add(r->u, m->payload, m->len, rd_kafka_message_timestamp(m, NULL)) < 0) r->skipped++;
}

long unanswered_find(const callbus_config *cfg, const char *source, int64_t since_ms, double timeout_s,
                     unanswered_fn fn, void *ctx, char *err, size_t errlen) {
    char topic[256];
    config_topic(cfg, "results", topic, sizeof(topic));
    const char *topics[] = {topic};
    reading r = {.u = unanswered_new(source)};
    long n = topic_read(cfg, topics, 1, since_ms, timeout_s, take, &r, err, errlen);
    if (r.skipped) log_warn("commands: %ld records on %s are not results: skipped", r.skipped, topic);
    if (n >= 0) n = unanswered_each(r.u, fn, ctx);
    unanswered_free(r.u);
    return n;
}
