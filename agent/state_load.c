/* state_load.c -- reading the state topics back at start (see state_load.h).
 *
 * The three topics from their beginning (topic_read.h). Records are
 * CloudEvents; only their data matters here, keyed by the Kafka key. */
#include "state_load.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "topic_read.h"

static const char *const kinds[STATE_KINDS] = {"state.calls", "state.operators", "state.queues"};

typedef struct loader {
    state *st;
    long skipped;
} loader;

static void restore(void *ctx, int kind, const rd_kafka_message_t *m) {
    loader *l = ctx;
    char key[512];
    if (kind < 0 || !m->key || m->key_len == 0 || m->key_len >= sizeof(key)) {
        l->skipped++;
        return;
    }
    memcpy(key, m->key, m->key_len);
    key[m->key_len] = '\0';
    json_t *ev = m->payload ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
    int rc = state_restore(l->st, (state_kind)kind, key, m->payload ? json_object_get(ev, "data") : NULL);
    if (m->payload && !ev) rc = -1;
    json_decref(ev);
    if (rc < 0 && l->skipped++ == 0)
        log_warn("state: %s/%d@%lld (key %s) is not a state record: skipped", rd_kafka_topic_name(m->rkt),
                 m->partition, (long long)m->offset, log_str(key));
}

long state_load(const callbus_config *cfg, state *st, double timeout_s, char *err, size_t errlen) {
    char names[STATE_KINDS][256];
    const char *topics[STATE_KINDS];
    for (int k = 0; k < STATE_KINDS; k++) {
        config_topic(cfg, kinds[k], names[k], sizeof(names[k]));
        topics[k] = names[k];
    }
    loader l = {.st = st};
    long n = topic_read(cfg, topics, STATE_KINDS, TOPIC_READ_BEGINNING, timeout_s, restore, &l, err, errlen);
    if (l.skipped) log_warn("state: %ld records skipped (not state records)", l.skipped);
    return n;
}
