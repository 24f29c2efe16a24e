/* test_unanswered.c -- which commands a new leader must answer for the old
 * one (agent/unanswered.c): the results topic read back, record by record,
 * as anything anyone wrote there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "unanswered.h"

#define ME "callbus://riga/agent/agent1"

typedef struct found {
    char ids[8][200];
    char types[8][64];
    double at[8];
    int n;
} found;

static void collect(void *ctx, const unanswered_command *c) {
    found *f = ctx;
    if (f->n == 8) return;
    snprintf(f->ids[f->n], sizeof(f->ids[0]), "%s", c->id);
    snprintf(f->types[f->n], sizeof(f->types[0]), "%s", c->type);
    f->at[f->n++] = c->accepted_at;
}

static int add(unanswered *u, const char *source, const char *id, const char *status, int64_t ts) {
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"specversion\":\"1.0\",\"source\":\"%s\",\"type\":\"callbus.result\",\"data\":"
             "{\"command_id\":\"%s\",\"command_type\":\"callbus.command.originate\",\"status\":\"%s\","
             "\"sender\":\"crm:7\"}}",
             source, id, status);
    return unanswered_add(u, json, strlen(json), ts);
}

static void test_accepted_without_a_final_result(void **state) {
    (void)state;
    unanswered *u = unanswered_new(ME);
    assert_int_equal(add(u, ME, "c1", "accepted", 1796529346123), 0);
    assert_int_equal(add(u, ME, "c2", "accepted", 1796529347000), 0);
    assert_int_equal(add(u, ME, "c2", "succeeded", 1796529347100), 0);
    assert_int_equal(add(u, ME, "c3", "rejected", 1796529348000), 0);
    /* Another agent of the site: its commands are its own to answer. */
    assert_int_equal(add(u, "callbus://riga/agent/agent2", "c4", "accepted", 1796529349000), 0);
    /* A final result from anyone answers it (the new leader's own, after a
     * restart of this one). */
    assert_int_equal(add(u, ME, "c5", "accepted", 1796529349000), 0);
    assert_int_equal(add(u, "callbus://riga/agent/agentX", "c5", "failed", 1796529350000), 0);
    found f = {0};
    assert_int_equal(unanswered_each(u, collect, &f), 1);
    assert_string_equal(f.ids[0], "c1");
    assert_string_equal(f.types[0], "callbus.command.originate");
    assert_true(f.at[0] > 1796529346.12 && f.at[0] < 1796529346.13);
    unanswered_free(u);
}

static void test_not_results(void **state) {
    (void)state;
    unanswered *u = unanswered_new(ME);
    const char *bad[] = {
        "", "{", "null", "[]", "{\"data\":null}",
        "{\"source\":\"" ME "\",\"data\":{\"command_id\":\"x\"}}",                       /* no status */
        "{\"source\":\"" ME "\",\"data\":{\"status\":\"accepted\"}}",                      /* no id */
        "{\"source\":\"" ME "\",\"data\":{\"command_id\":\"\",\"status\":\"accepted\"}}",  /* empty id */
        "{\"source\":\"" ME "\",\"data\":{\"command_id\":7,\"status\":\"accepted\"}}",
        "{\"data\":{\"command_id\":\"x\",\"status\":\"accepted\"}}",                         /* no source */
        "{\"source\":\"" ME "\",\"data\":{\"command_id\":\"a\\u0000b\",\"status\":\"accepted\"}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(unanswered_add(u, bad[i], strlen(bad[i]), 1), -1);
    assert_int_equal(unanswered_add(u, NULL, 0, 1), -1);   /* a tombstone */
    /* An id longer than any command's is refused, not cut: a cut one could
     * equal another command's. */
    char big[400];
    memset(big, 'a', 300);
    big[300] = 0;
    assert_int_equal(add(u, ME, big, "accepted", 1), -1);
    /* A type or sender that does not fit is left out, the id still answered. */
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"source\":\"" ME "\",\"data\":{\"command_id\":\"c9\",\"status\":\"accepted\","
             "\"command_type\":\"%s\",\"sender\":[1]}}", big);
    assert_int_equal(unanswered_add(u, json, strlen(json), 1), 0);
    found f = {0};
    assert_int_equal(unanswered_each(u, collect, &f), 1);
    assert_string_equal(f.ids[0], "c9");
    assert_string_equal(f.types[0], "");
    unanswered_free(u);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_accepted_without_a_final_result),
                                       cmocka_unit_test(test_not_results)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
