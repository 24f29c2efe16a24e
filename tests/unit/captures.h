/* captures.h -- the real Asterisk captures of tests/fixtures/ami-samples,
 * replayed into the call model, for the unit tests of the call model and
 * of the live state that follows it.
 *
 * Messages are built from the recorded header pairs with ami_msg_add, so
 * these tests do not depend on the parser. Before a capture the tests
 * replay what the agent does on connect (capture_connect_resync): a resync
 * with the QueueStatus members of the lab (support: op101-op103,
 * support-rna: op198, op102), because click-to-call direction needs to
 * know operators before their first channel appears. Include after
 * <cmocka.h>. */
#ifndef CALLBUS_TEST_CAPTURES_H
#define CALLBUS_TEST_CAPTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "ami.h"
#include "callmodel.h"

#ifndef FIXTURES
#define FIXTURES "tests/fixtures"
#endif
#define SAMPLES FIXTURES "/ami-samples/"

static const char *const capture_names[] = {
    "01-inbound-queue-answered", "02-inbound-queue-paused-abandon", "03a-c2c-answered",
    "03b-c2c-busy", "03d-c2c-invalid-number", "04-queue-member-management", "05a-redirect",
    "06-hangup-and-info-actions", "09a-restart-gracefully", "10a-cdr-cel-inbound-answered",
};
#define CAPTURE_COUNT (sizeof(capture_names) / sizeof(capture_names[0]))

static inline void capture_add(ami_msg *m, const char *k, const char *v) {
    ami_msg_add(m, k, strlen(k), v, strlen(v));
}

static inline void capture_msg(ami_msg *m, const json_t *headers) {
    ami_msg_init(m);
    size_t i;
    json_t *pair;
    json_array_foreach(headers, i, pair)
        capture_add(m, json_string_value(json_array_get(pair, 0)),
                    json_string_value(json_array_get(pair, 1)));
}

/* Called after each replayed event (the agent's loop turn). */
typedef void (*capture_step_fn)(void *ctx, double recv_ts);

/* Replays the events of a capture with from_seq <= seq < stop_before_seq
 * (stop_before_seq < 0: to the end). Returns the last recv_ts seen. */
static inline double capture_replay_each(callmodel *cm, const char *name, long from_seq,
                                         long stop_before_seq, capture_step_fn step, void *ctx) {
    char path[512];
    snprintf(path, sizeof(path), SAMPLES "%s.events.jsonl", name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    double last = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        long seq = (long)json_integer_value(json_object_get(o, "seq"));
        json_t *headers = json_object_get(o, "headers");
        if (seq >= from_seq && (stop_before_seq < 0 || seq < stop_before_seq) && headers) {
            ami_msg m;
            capture_msg(&m, headers);
            last = json_number_value(json_object_get(o, "recv_ts"));
            callmodel_on_event(cm, &m, last);
            ami_msg_free(&m);
            if (step) step(ctx, last);
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    return last;
}

static inline double capture_replay(callmodel *cm, const char *name, long from_seq,
                                    long stop_before_seq) {
    return capture_replay_each(cm, name, from_seq, stop_before_seq, NULL, NULL);
}

static inline void capture_member_item(callmodel *cm, const char *queue, const char *name,
                                       const char *location) {
    ami_msg m;
    ami_msg_init(&m);
    capture_add(&m, "Event", "QueueMember");
    capture_add(&m, "Queue", queue);
    capture_add(&m, "Name", name);
    capture_add(&m, "Location", location);
    capture_add(&m, "StateInterface", location);
    capture_add(&m, "Membership", "static");
    capture_add(&m, "InCall", "0");
    capture_add(&m, "Status", "1");
    capture_add(&m, "Paused", "0");
    capture_add(&m, "PausedReason", "");
    capture_add(&m, "ActionID", "resync-1");
    callmodel_resync_item(cm, &m);
    ami_msg_free(&m);
}

/* What the agent does right after login, as QueueStatus showed in 04. */
static inline void capture_connect_resync(callmodel *cm, double now) {
    callmodel_resync_begin(cm);
    capture_member_item(cm, "support", "Operator 101", "Local/op101@phones");
    capture_member_item(cm, "support", "Operator 102", "Local/op102@phones");
    capture_member_item(cm, "support", "Operator 103", "Local/op103@phones");
    capture_member_item(cm, "support-rna", "Operator 198 (away)", "Local/op198@phones");
    capture_member_item(cm, "support-rna", "Operator 102", "Local/op102@phones");
    callmodel_resync_end(cm, "ended_while_link_down", now);
}

/* The header lists of every message of every capture, in capture order. */
static inline json_t *capture_all_headers(void) {
    json_t *all = json_array();
    for (size_t c = 0; c < CAPTURE_COUNT; c++) {
        char path[512];
        snprintf(path, sizeof(path), SAMPLES "%s.events.jsonl", capture_names[c]);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
            json_t *o = json_loads(line, 0, NULL);
            json_t *h = json_object_get(o, "headers");
            if (h) json_array_append(all, h);
            json_decref(o);
        }
        free(line);
        fclose(f);
    }
    return all;
}

/* The capture's facts file (NULL if it has none). New reference. */
static inline json_t *capture_facts(const char *name) {
    char path[512];
    snprintf(path, sizeof(path), SAMPLES "%s.facts.json", name);
    return json_load_file(path, 0, NULL);
}

#endif
