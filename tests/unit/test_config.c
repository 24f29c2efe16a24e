/* test_config.c -- configuration loading: defaults, overrides, clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char path[64];

static void write_conf(const char *text) {
    snprintf(path, sizeof(path), "/tmp/callbus-conf-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_defaults(void **state) {
    (void)state;
    callbus_config c;
    char err[256];
    assert_int_equal(config_load(&c, NULL, err, sizeof(err)), 0);
    assert_string_equal(c.topic_prefix, "callbus");
    assert_int_equal(c.agent.ami_port, 5038);
    char topic[128];
    config_topic(&c, "calls", topic, sizeof(topic));
    assert_string_equal(topic, "callbus.site1.calls");
    config_free(&c);
}

static void test_full_file(void **state) {
    (void)state;
    write_conf("site = \"riga\";\n"
               "kafka = [\"bootstrap.servers=127.0.0.1:9092\", \"linger.ms=1\", \"linger.ms=2\"];\n"
               "agent: { id = \"a-1\"; ami: { host = \"pbx\"; port = 5039; secret = \"s3\"; ping_interval = 3; };\n"
               "         spool: { max_mb = 5; }; http: { listen = \"127.0.0.1:0\"; }; };\n"
               "operators = ( { id = \"alice\"; interface = \"PJSIP/1001\"; name = \"Alice\"; } );\n");
    callbus_config c;
    char err[256];
    assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
    assert_string_equal(c.site, "riga");
    assert_string_equal(c.agent.id, "a-1");
    assert_string_equal(c.agent.ami_host, "pbx");
    assert_int_equal(c.agent.ami_port, 5039);
    assert_int_equal(c.agent.ping_interval_s, 3);
    assert_int_equal(c.agent.spool_max_bytes, 5LL << 20);
    assert_int_equal(c.kafka_count, 2);
    assert_string_equal(config_get_kafka(&c, "linger.ms"), "2");
    assert_int_equal(c.operator_count, 1);
    assert_string_equal(c.operators[0].interface, "PJSIP/1001");
    assert_int_equal(config_set_kafka(&c, "acks=1", err, sizeof(err)), 0);
    assert_string_equal(config_get_kafka(&c, "acks"), "1");
    assert_int_equal(config_set_kafka(&c, "nonsense", err, sizeof(err)), -1);
    config_free(&c);
    unlink(path);
}

static void expect_error(const char *text, const char *fragment) {
    write_conf(text);
    callbus_config c;
    char err[256] = "";
    assert_int_equal(config_load(&c, path, err, sizeof(err)), -1);
    if (!strstr(err, fragment)) fail_msg("error \"%s\" lacks \"%s\"", err, fragment);
    config_free(&c);
    unlink(path);
}

static void test_errors_are_clear(void **state) {
    (void)state;
    expect_error("site = \"riga\";\nagent: { id = ; };", ":2:");                 /* syntax, with line */
    expect_error("site = \"ri ga\";", "site");                          /* unsafe id */
    expect_error("agent: { ami: { port = 70000; }; };", "agent.ami.port");
    expect_error("agent: { ami: { port = \"x\"; }; };", "must be an integer");
    expect_error("kafka = [\"linger.ms\"];", "not name=value");
    expect_error("agent: { ami: { secret_file = \"/nonexistent/x\"; }; };", "secret_file");
    expect_error("operators = ( { id = \"a\"; } );", "operators[0]");
    expect_error("agent: { ami: { reconnect_min_ms = 5000; reconnect_max_ms = 100; }; };", "reconnect_max_ms");
    /* A wrong type is an error, not the default: these must not leave commands on. */
    expect_error("commands: { enabled = 0; };", "commands.enabled must be true or false");
    expect_error("commands: { enabled = \"false\"; };", "commands.enabled must be true or false");
    expect_error("agent: { spool: { write_ahead = 0; }; };", "agent.spool.write_ahead must be true or false");
    expect_error("operators = ( { id = \"a\"; interface = \"PJSIP/1\"; name = 7; } );", "operators[0].name");
    expect_error("operators = ( { id = \"a\"; interface = \"1001\"; } );", "operators[0].interface");
    expect_error("operators = ( { id = \"a\"; interface = \"PJSIP/1\\r\\nAction: Hangup\"; } );",
                 "operators[0].interface");
    expect_error("operators = ( { id = \"a\"; interface = \"PJSIP/ 1\"; } );", "operators[0].interface");
}

static void test_switches_can_be_turned_off(void **state) {
    (void)state;
    write_conf("commands: { enabled = false; };\nagent: { spool: { write_ahead = false; }; };");
    callbus_config c;
    char err[256];
    assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
    assert_int_equal(c.commands.enabled, 0);
    assert_int_equal(c.agent.spool_write_ahead, 0);
    config_free(&c);
    unlink(path);
    assert_int_equal(config_load(&c, NULL, err, sizeof(err)), 0);
    assert_int_equal(c.commands.enabled, 1);
    assert_int_equal(c.agent.spool_write_ahead, 1);
    config_free(&c);
}

static void test_secret_file(void **state) {
    (void)state;
    char secret[64] = "/tmp/callbus-secret-XXXXXX";
    int fd = mkstemp(secret);
    assert_int_equal(write(fd, "t0p\n", 4), 4);
    close(fd);
    char text[256];
    snprintf(text, sizeof(text), "agent: { ami: { secret_file = \"%s\"; }; };", secret);
    write_conf(text);
    callbus_config c;
    char err[256];
    assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
    assert_string_equal(c.agent.ami_secret, "t0p");
    config_free(&c);
    unlink(path);
    unlink(secret);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_errors_are_clear), cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_switches_can_be_turned_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
