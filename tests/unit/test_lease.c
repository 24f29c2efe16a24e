/* test_lease.c -- the standby's reading of the leases topic (agent/leader.c):
 * a lease is any bytes someone wrote to the topic until lease_parse says
 * otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "leader.h"

#define LEASE(data) \
    "{\"specversion\":\"1.0\",\"id\":\"s1:agent1:leases:1796529346:7\",\"type\":\"callbus.agent.lease\"," \
    "\"time\":\"2026-12-06T03:55:46.838Z\",\"data\":" data "}"

static int parse(const char *s, lease *l) { return lease_parse(s, strlen(s), l); }

static void test_a_lease(void **state) {
    (void)state;
    lease l;
    assert_int_equal(parse(LEASE("{\"agent_id\":\"agent1\",\"instance\":\"pbx1/4242/1796529342\","
                                 "\"epoch\":1796529346,\"time\":\"2026-12-06T03:55:46.838Z\",\"released\":false}"), &l), 0);
    assert_string_equal(l.instance, "pbx1/4242/1796529342");
    assert_true(l.epoch == 1796529346);
    assert_true(l.time > 1796529346.8 && l.time < 1796529346.9);
    assert_int_equal(l.released, 0);
    assert_int_equal(parse(LEASE("{\"instance\":\"x\",\"epoch\":1,\"time\":\"2026-12-06T03:55:46Z\","
                                 "\"released\":true}"), &l), 0);
    assert_int_equal(l.released, 1);
}

static void test_not_leases(void **state) {
    (void)state;
    lease l;
    const char *bad[] = {
        "", "{", "null", "[]", "{\"data\":null}", LEASE("{}"),
        LEASE("{\"instance\":\"\",\"epoch\":1,\"time\":\"2026-12-06T03:55:46Z\"}"),       /* empty instance */
        LEASE("{\"instance\":7,\"epoch\":1,\"time\":\"2026-12-06T03:55:46Z\"}"),
        LEASE("{\"instance\":\"x\",\"epoch\":\"1\",\"time\":\"2026-12-06T03:55:46Z\"}"),  /* epoch a string */
        LEASE("{\"instance\":\"x\",\"epoch\":1.5,\"time\":\"2026-12-06T03:55:46Z\"}"),
        LEASE("{\"instance\":\"x\",\"epoch\":1,\"time\":\"yesterday\"}"),
        LEASE("{\"instance\":\"x\",\"epoch\":1,\"time\":\"2026-02-30T00:00:00Z\"}"),      /* no such day */
        LEASE("{\"instance\":\"x\",\"epoch\":1}"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) assert_int_equal(parse(bad[i], &l), -1);
    /* An instance longer than any this agent writes is refused, not cut:
     * a cut one could equal another instance's. */
    char big[600];
    memset(big, 'a', 300);
    big[300] = 0;
    char json[800];
    snprintf(json, sizeof(json), LEASE("{\"instance\":\"%s\",\"epoch\":1,\"time\":\"2026-12-06T03:55:46Z\"}"), big);
    assert_int_equal(parse(json, &l), -1);
    /* Not NUL-terminated: only len bytes are read. */
    const char *ok = LEASE("{\"instance\":\"x\",\"epoch\":1,\"time\":\"2026-12-06T03:55:46Z\"}") "garbage";
    assert_int_equal(lease_parse(ok, strlen(ok) - strlen("garbage"), &l), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_a_lease), cmocka_unit_test(test_not_leases)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
