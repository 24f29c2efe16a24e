/* test_command.c -- command decoding and checks, and the at-most-once journal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "command_decode.h"
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

/* Asterisk splits an Originate Variable on commas and calls a name ending in
 * ')' a dialplan function: a value must not be able to add an assignment. */
static void test_variable_values_cannot_carry_asterisk_syntax(void **state) {
    (void)state;
    static const char *const bad[] = {
        "1,CALLERID(num)=112", "2,CDR(userfield)=owned", "a\\\"b", "a\\\\,b", "x(", "y)",
        "1|CHANNEL(hangup_handler_push)=evil", "tab\\there"};
    char json[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        snprintf(json, sizeof(json), ENVELOPE("originate", "{\"operator_id\":\"op101\",\"number\":\"5552001\","
                                                           "\"variables\":{\"X\":\"%s\"}}"), bad[i]);
        expect_reject(json, "data.variables.X");
    }
    expect_reject(ENVELOPE("originate", "{\"operator_id\":\"op101\",\"number\":\"5552001\","
                                        "\"variables\":{\"X\":\"1,CALLERID(num)=112\"}}"),
                  "contains ','");
    /* Ordinary values still pass: letters, digits, spaces, - _ . : / @ # + = */
    command c;
    char reason[256] = "";
    assert_int_equal(decode(ENVELOPE("originate", "{\"operator_id\":\"op101\",\"number\":\"5552001\","
                                                  "\"variables\":{\"CC_TICKET\":\"T-1 a_b.c:d/e@f#g+h=i\"}}"),
                            &c, reason), 0);
    assert_string_equal(c.var_values[0], "T-1 a_b.c:d/e@f#g+h=i");
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
    assert_true(rfc3339_parse("2026-11-26T05:17:39Z") == 1795670259.0);
    assert_true(rfc3339_parse("2026-11-26T07:17:39.5+02:00") == 1795670259.5);
    assert_true(rfc3339_parse("2026-11-26 05:17:39") < 0);
    assert_true(rfc3339_parse("2026-11-26T05:17:39") < 0);
    assert_true(rfc3339_parse(NULL) < 0);
}

/* Each bad time in a buffer of its own exact size, so that ASan (make SAN=1
 * unit) sees any read past its end; the decoder gets it from jansson's heap. */
static void test_times_never_read_past_the_string(void **state) {
    (void)state;
    static const char *const bad[] = {
        "2026-11-26T05:20:30+1:2", "2026-11-26T05:20:30+", "2026-11-26T05:20:30-01", "2026-11-26T05:20:30+01:",
        "2026-11-26T05:20:30+01:2", "2026-11-26T05:20:30.", "2026-11-26T05:20:30.5e3Z", "2026-11-26T05:20:3",
        "2026-11-26T05:20", "2026", "", "2026-11-26T05:20:30+1:2:", "2026-11-26T05:20:30+ab:cd",
        "2026-13-26T05:20:30Z", "2026-11-26T24:20:30Z", "2026-11-26T05:20:30+24:00", " 026-11-26T05:20:30Z",
        "2026-11-26T05:20:30Z "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char *s = strdup(bad[i]);
        if (rfc3339_parse(s) >= 0) fail_msg("\"%s\" parsed as a time", bad[i]);
        free(s);
    }
    char *ok = strdup("2026-11-26T05:17:39.125-00:30");
    assert_true(rfc3339_parse(ok) == 1795670259.125 + 1800);
    free(ok);
    expect_reject("{\"specversion\":\"1.0\",\"id\":\"a1\",\"type\":\"callbus.command.hangup\",\"sender\":\"x\","
                  "\"expires\":\"2026-11-26T05:20:30+1:2\",\"data\":{\"call_id\":\"c\"}}",
                  "expires is missing or not an RFC 3339 time");
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

static char *temp_journal(char *path, const char *content) {
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

static char *file_text(const char *path) {
    static char buf[4096];
    FILE *f = fopen(path, "r");
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* A crash mid-write leaves a fragment; the next record must not be glued
 * onto it (it would read back as the id "c3E" and c4 would be forgotten,
 * so a redelivered c4 would run again). */
static void test_journal_cuts_a_torn_last_line(void **state) {
    (void)state;
    /* Fragments as a crash leaves them; some file systems show a torn block as NULs. */
    static const struct { const char *bytes; size_t n; } torn[] = {
        {"E 300.000 c3", 12}, {"E 300.0", 7}, {"E", 1}, {"E 300.000 c3\0\0", 14}, {"\0\0\0\0", 4}};
    for (size_t i = 0; i < sizeof(torn) / sizeof(*torn); i++) {
        char path[] = "/tmp/callbus-journal-XXXXXX", err[256];
        temp_journal(path, "E 100.000 c1\nD 200.000 c2\n");
        FILE *f = fopen(path, "a");
        assert_int_equal(fwrite(torn[i].bytes, 1, torn[i].n, f), torn[i].n);
        fclose(f);
        journal *j = journal_open(path, err, sizeof(err));
        assert_non_null(j);
        assert_string_equal(file_text(path), "E 100.000 c1\nD 200.000 c2\n");
        assert_int_equal(journal_set(j, "c4", 400.0, JOURNAL_EXECUTING), 0);
        journal_close(j);
        j = journal_open(path, err, sizeof(err));
        assert_int_equal(journal_get(j, "c1"), JOURNAL_EXECUTING);
        assert_int_equal(journal_get(j, "c2"), JOURNAL_DONE);
        assert_int_equal(journal_get(j, "c3"), JOURNAL_NONE);
        assert_int_equal(journal_get(j, "c4"), JOURNAL_EXECUTING);
        assert_int_equal(journal_size(j), 3);
        journal_close(j);
        unlink(path);
    }
}

/* A damaged line in the middle is skipped, and what follows it is kept. */
static void test_journal_skips_a_damaged_middle_line(void **state) {
    (void)state;
    char path[] = "/tmp/callbus-journal-XXXXXX", err[256];
    temp_journal(path, "E 100.000 c1\nE 300.000 c3E 400.000 c4\nX 1 y\nD 200.000 c2\n");
    journal *j = journal_open(path, err, sizeof(err));
    assert_int_equal(journal_get(j, "c1"), JOURNAL_EXECUTING);
    assert_int_equal(journal_get(j, "c2"), JOURNAL_DONE);
    assert_int_equal(journal_get(j, "c3E"), JOURNAL_NONE);
    assert_int_equal(journal_size(j), 2);
    journal_close(j);
    unlink(path);
}

/* The disk fills in the middle of a record: the kernel writes part of it
 * (RLIMIT_FSIZE makes write() stop at a byte count as a full disk does, with
 * EFBIG for ENOSPC). The record is refused, its fragment cut, and the next
 * record lands whole. */
static void test_journal_full_disk_leaves_no_fragment(void **state) {
    (void)state;
    char path[] = "/tmp/callbus-journal-XXXXXX", err[256];
    temp_journal(path, "");
    journal *j = journal_open(path, err, sizeof(err));
    assert_int_equal(journal_set(j, "c1", 100.0, JOURNAL_EXECUTING), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)sb.st_size + 5;   /* room for "E 200" only */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = journal_set(j, "central:crm1:1795669000:2", 200.0, JOURNAL_EXECUTING);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, was);
    assert_int_equal(rc, -1);
    assert_int_equal(journal_get(j, "central:crm1:1795669000:2"), JOURNAL_NONE);
    assert_string_equal(file_text(path), "E 100.000 c1\n");
    assert_int_equal(journal_set(j, "c3", 300.0, JOURNAL_EXECUTING), 0);
    journal_close(j);
    j = journal_open(path, err, sizeof(err));
    assert_int_equal(journal_get(j, "c1"), JOURNAL_EXECUTING);
    assert_int_equal(journal_get(j, "c3"), JOURNAL_EXECUTING);
    assert_int_equal(journal_size(j), 2);
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

/* A data key is the client's text: quoted in the reason (which is logged and
 * published as JSON) escaped on one line, and cut between characters, never
 * inside one (jansson refuses invalid UTF-8: the result would be lost). */
static void test_rejection_quotes_a_key_safely(void **state) {
    (void)state;
    command c;
    char reason[256] = "";
    assert_int_equal(decode(ENVELOPE("hangup", "{\"call_id\":\"c1\",\"x\\nFAKE error line\":1}"), &c, reason), -1);
    assert_null(strchr(reason, '\n'));
    assert_non_null(strstr(reason, "data.x\\nFAKE error line is not a field"));
    /* 39 ASCII bytes then a 2-byte character straddling byte 40. */
    assert_int_equal(decode(ENVELOPE("hangup", "{\"call_id\":\"c1\",\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u00e9\u00e9\":1}"),
                            &c, reason), -1);
    json_t *j = json_string(reason);
    assert_non_null(j);   /* valid UTF-8 */
    json_decref(j);
    assert_int_equal(decode(ENVELOPE("originate", "{\"operator_id\":\"op101\",\"number\":\"5552001\","
                                                  "\"variables\":{\"A\\r\\nB\":\"1\"}}"), &c, reason), -1);
    assert_null(strchr(reason, '\n'));
    assert_null(strchr(reason, '\r'));
    assert_non_null(strstr(reason, "\"A\\r\\nB\" is not a valid variable name"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_originate_ok), cmocka_unit_test(test_rejections_are_clear),
        cmocka_unit_test(test_variable_values_cannot_carry_asterisk_syntax),
        cmocka_unit_test(test_rejection_still_names_the_command),
        cmocka_unit_test(test_rejection_quotes_a_key_safely), cmocka_unit_test(test_times),
        cmocka_unit_test(test_times_never_read_past_the_string),
        cmocka_unit_test(test_journal_survives_reopen), cmocka_unit_test(test_journal_compacts),
        cmocka_unit_test(test_journal_cuts_a_torn_last_line), cmocka_unit_test(test_journal_skips_a_damaged_middle_line),
        cmocka_unit_test(test_journal_full_disk_leaves_no_fragment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
