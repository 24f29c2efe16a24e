/* test_command.c -- command decoding and checks, and the at-most-once journal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "command.h"
#include "journal.h"

#define ENVELOPE(type, data) \
    "{\"specversion\":\"1.0\",\"id\":\"central:crm1:1795669000:1\",\"source\":\"callbus://central/crm/crm1\"," \
    "\"type\":\"callbus.command." type "\",\"time\":\"2026-11-26T05:20:00.125Z\"," \
    "\"expires\":\"2026-11-26T05:20:30.125Z\",\"sender\":\"crm:jdoe\",\"data\":" data "}"

static int decode(const char *json, command *c, char *reason) {
    return command_decode(json, strlen(json), c, reason, 256);
}

static void test_originate_ok(void **state) {
    (void)state;
    command c;
    char reason[256] = "";
    assert_int_equal(decode(ENVELOPE("originate", "{\"operator_id\":\"op101\",\"number\":\"+5552001\","
                                                  "\"variables\":{\"CC_TICKET\":\"T-1\"}}"), &c, reason), 0);
    assert_int_equal(c.kind, CMD_ORIGINATE);
    assert_string_equal(c.id, "central:crm1:1795669000:1");
    assert_string_equal(c.sender, "crm:jdoe");
    assert_string_equal(c.operator_id, "op101");
    assert_string_equal(c.number, "+5552001");
    assert_int_equal(c.nvars, 1);
    assert_string_equal(c.var_names[0], "CC_TICKET");
    assert_true(c.expires - c.time > 29.99 && c.expires - c.time < 30.01);
    assert_true(c.expires > 1795670429.0 && c.expires < 1795670431.0);
}

static void expect_reject(const char *json, const char *fragment) {
    command c;
    char reason[256] = "";
    assert_int_equal(decode(json, &c, reason), -1);
    if (!strstr(reason, fragment)) fail_msg("reason \"%s\" lacks \"%s\"", reason, fragment);
}

static void test_rejections_are_clear(void **state) {
    (void)state;
    expect_reject("not json", "not a JSON object");
    expect_reject("[1,2]", "not a JSON object");
    expect_reject(ENVELOPE("reboot", "{}"), "unknown command type");
    expect_reject(ENVELOPE("originate", "{\"operator_id\":\"op101\"}"), "needs data.number");
    /* Header injection: CR/LF in any value never passes. */
    expect_reject(ENVELOPE("originate", "{\"operator_id\":\"op101\",\"number\":\"555\\r\\nAction: Hangup\"}"),
                  "data.number");
    expect_reject(ENVELOPE("pause", "{\"operator_id\":\"op101\",\"reason\":\"lunch\\nAction: Originate\"}"),
                  "data.reason");
    expect_reject(ENVELOPE("originate", "{\"operator_id\":\"op101\",\"number\":\"5552001\","
                                        "\"variables\":{\"X\":\"a\\rb\"}}"), "variables.X");
    expect_reject(ENVELOPE("originate", "{\"operator_id\":\"op101\",\"number\":\"5552001\","
                                        "\"variables\":{\"BAD NAME\":\"a\"}}"), "not a valid variable name");
    expect_reject(ENVELOPE("hangup", "{\"call_id\":\"x\",\"channel\":\"SIP/evil\"}"), "not a field");
    expect_reject(ENVELOPE("originate", "{\"operator_id\":\"op 101\",\"number\":\"5552001\"}"), "operator_id");
    expect_reject(ENVELOPE("transfer", "{\"call_id\":\"c1\",\"to\":\"103\",\"kind\":\"attended\"}"), "blind only");
    expect_reject(ENVELOPE("queue_login", "{\"operator_id\":\"op1\",\"queue\":\"q\",\"penalty\":-1}"), "penalty");
    expect_reject("{\"specversion\":\"1.0\",\"id\":\"a b\",\"type\":\"callbus.command.hangup\"}", "id is missing");
    expect_reject("{\"specversion\":\"1.0\",\"id\":\"a1\",\"type\":\"callbus.command.hangup\",\"sender\":\"x\","
                  "\"data\":{\"call_id\":\"c\"}}", "expires");
    expect_reject("{\"specversion\":\"1.0\",\"id\":\"a1\",\"type\":\"callbus.command.hangup\","
                  "\"expires\":\"2026-11-26T05:20:30Z\",\"data\":{\"call_id\":\"c\"}}", "sender");
    expect_reject("{\"specversion\":\"1.0\",\"id\":\"a1\",\"id\":\"a2\"}", "not a JSON object");
}

static void test_rejection_still_names_the_command(void **state) {
    (void)state;
    command c;
    char reason[256];
    assert_int_equal(decode(ENVELOPE("originate", "{\"operator_id\":\"op101\"}"), &c, reason), -1);
    assert_string_equal(c.id, "central:crm1:1795669000:1");
    assert_string_equal(c.sender, "crm:jdoe");
}

static void test_times(void **state) {
    (void)state;
    assert_true(command_parse_time("2026-11-26T05:17:39Z") == 1795670259.0);
    assert_true(command_parse_time("2026-11-26T07:17:39.5+02:00") == 1795670259.5);
    assert_true(command_parse_time("2026-11-26 05:17:39") < 0);
    assert_true(command_parse_time("2026-11-26T05:17:39") < 0);
    assert_true(command_parse_time(NULL) < 0);
}

static void test_journal_survives_reopen(void **state) {
    (void)state;
    char path[] = "/tmp/callbus-journal-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char err[256];
    journal *j = journal_open(path, err, sizeof(err));
    assert_non_null(j);
    assert_int_equal(journal_get(j, "c1"), JOURNAL_NONE);
    assert_int_equal(journal_set(j, "c1", 100.0, JOURNAL_EXECUTING), 0);
    assert_int_equal(journal_set(j, "c2", 200.0, JOURNAL_EXECUTING), 0);
    assert_int_equal(journal_set(j, "c2", 200.0, JOURNAL_DONE), 0);
    assert_int_equal(journal_set(j, "bad id", 1.0, JOURNAL_DONE), -1);
    journal_close(j);
    /* A crash in the middle of a line. */
    FILE *f = fopen(path, "a");
    fputs("E 300.000 c3", f);
    fclose(f);
    j = journal_open(path, err, sizeof(err));
    assert_int_equal(journal_get(j, "c1"), JOURNAL_EXECUTING);
    assert_int_equal(journal_get(j, "c2"), JOURNAL_DONE);
    assert_int_equal(journal_get(j, "c3"), JOURNAL_NONE);
    /* Expired and done entries are forgotten; executing ones stay. */
    journal_set(j, "c1", 100.0, JOURNAL_DONE);
    journal_prune(j, 150.0);
    assert_int_equal(journal_get(j, "c1"), JOURNAL_NONE);
    assert_int_equal(journal_get(j, "c2"), JOURNAL_DONE);
    assert_int_equal(journal_size(j), 1);
    journal_close(j);
    unlink(path);
}

static void test_journal_compacts(void **state) {
    (void)state;
    char path[] = "/tmp/callbus-journal-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char err[256], id[32];
    journal *j = journal_open(path, err, sizeof(err));
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "cmd-%d", i);
        journal_set(j, id, i < 2900 ? 10.0 : 1000.0, JOURNAL_DONE);
    }
    journal_prune(j, 100.0);
    assert_int_equal(journal_size(j), 100);
    journal_close(j);
    j = journal_open(path, err, sizeof(err));
    assert_int_equal(journal_size(j), 100);
    assert_int_equal(journal_get(j, "cmd-2950"), JOURNAL_DONE);
    assert_int_equal(journal_get(j, "cmd-5"), JOURNAL_NONE);
    journal_close(j);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_originate_ok), cmocka_unit_test(test_rejections_are_clear),
        cmocka_unit_test(test_rejection_still_names_the_command), cmocka_unit_test(test_times),
        cmocka_unit_test(test_journal_survives_reopen), cmocka_unit_test(test_journal_compacts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
