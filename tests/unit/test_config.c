/* test_config.c -- configuration loading: defaults, overrides, clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

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
    /* Nothing reaches the dialplan as a variable unless the site says so. */
    assert_int_equal(c.commands.originate_variable_count, 0);
    assert_int_equal(c.gateway.browser_variables, 0);
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
    /* glibc would take an unknown zone as UTC without a word. */
    expect_error("timezone = \"Europe/Talinn\";", "timezone \"Europe/Talinn\" is not a time zone");
    expect_error("timezone = \"../../etc/passwd\";", "is not a time zone");
    expect_error("timezone = \"/usr/share/zoneinfo/UTC\";", "is not a time zone");
    expect_error("timezone = \"Europe\";", "is not a time zone");   /* a directory */
    expect_error("agent: { state: { service_level = -1; }; };", "agent.state.service_level");
    expect_error("agent: { state: { stats_interval = 0; }; };", "agent.state.stats_interval");
    expect_error("commands: { originate_variables = [ \"CALLERID(num)\" ]; };",
                 "commands.originate_variables[0] \"CALLERID(num)\" is not a variable name");
}

static void test_state_settings(void **state) {
    (void)state;
    callbus_config c;
    char err[256];
    assert_int_equal(config_load(&c, NULL, err, sizeof(err)), 0);
    assert_string_equal(c.timezone, "UTC");
    assert_int_equal(c.agent.state_service_level_s, 20);
    assert_int_equal(c.agent.state_stats_interval_s, 10);
    assert_int_equal(c.agent.state_load_timeout_s, 15);
    config_free(&c);
    write_conf("timezone = \"Europe/Tallinn\";\n"
               "agent: { state: { service_level = 30; stats_interval = 5; load_timeout = 3; }; };\n");
    assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
    assert_string_equal(c.timezone, "Europe/Tallinn");
    assert_int_equal(c.agent.state_service_level_s, 30);
    assert_int_equal(c.agent.state_stats_interval_s, 5);
    assert_int_equal(c.agent.state_load_timeout_s, 3);
    config_free(&c);
    unlink(path);
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

/* conf_format names the secret file with its one %s. */
static void expect_secret(const char *file_content, const char *conf_format, const char *want) {
    char secret[64] = "/tmp/callbus-secret-XXXXXX";
    int fd = mkstemp(secret);
    assert_int_equal(write(fd, file_content, strlen(file_content)), (ssize_t)strlen(file_content));
    close(fd);
    char text[256];
    snprintf(text, sizeof(text), conf_format, secret);
    write_conf(text);
    callbus_config c;
    char err[256];
    assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
    assert_string_equal(c.agent.ami_secret, want);
    config_free(&c);
    unlink(path);
    unlink(secret);
}

static void test_secret_file(void **state) {
    (void)state;
    expect_secret("t0p\n", "agent: { ami: { secret_file = \"%s\"; }; };", "t0p");
}

/* ---------------------------------------------------------------- the table-driven loader */

/* The setting at a dotted path, with its groups, in a libconfig tree. */
static config_setting_t *add_at(config_t *cf, const char *dotted, int type) {
    config_setting_t *at = config_root_setting(cf);
    char name[128];
    snprintf(name, sizeof(name), "%s", dotted);
    char *part = name, *dot;
    while ((dot = strchr(part, '.'))) {
        *dot = '\0';
        config_setting_t *group = config_setting_get_member(at, part);
        at = group ? group : config_setting_add(at, part, CONFIG_TYPE_GROUP);
        part = dot + 1;
    }
    return config_setting_add(at, part, type);
}

static void write_tree(config_t *cf) {
    snprintf(path, sizeof(path), "/tmp/callbus-conf-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_true(config_write_file(cf, path));
    config_destroy(cf);
}

/* One integer setting; the backoff bounds, which must stay in order, as wide
 * apart as they go so that either can take any value of its range. */
static int load_one_int(const char *name, int value, callbus_config *c, char *err, size_t errlen) {
    static const struct { const char *name; int value; } apart[] = {
        {"agent.ami.reconnect_min_ms", 10}, {"agent.ami.reconnect_max_ms", 3600000}};
    config_t cf;
    config_init(&cf);
    config_setting_set_int(add_at(&cf, name, CONFIG_TYPE_INT), value);
    for (size_t i = 0; i < sizeof(apart) / sizeof(apart[0]); i++)
        if (strcmp(apart[i].name, name)) config_setting_set_int(add_at(&cf, apart[i].name, CONFIG_TYPE_INT), apart[i].value);
    write_tree(&cf);
    int rc = config_load(c, path, err, errlen);
    unlink(path);
    return rc;
}

static long long number_at(const callbus_config *c, const callbus_setting *s) {
    if (s->size == sizeof(int)) return *(const int *)((const char *)c + s->offset);
    long long v;
    memcpy(&v, (const char *)c + s->offset, sizeof(v));
    return v;
}

/* Each integer takes its bounds and refuses one past them, naming itself. */
static void test_every_integer_is_range_checked(void **state) {
    (void)state;
    int n = 0;
    for (const callbus_setting *s = config_settings; s->name; s++) {
        if (s->type != CONFIG_INT) continue;
        n++;
        callbus_config c;
        char err[512] = "";
        for (int edge = 0; edge < 2; edge++) {
            long long v = edge ? s->max : s->min;
            if (load_one_int(s->name, (int)v, &c, err, sizeof(err)) != 0) fail_msg("%s = %lld: %s", s->name, v, err);
            if (number_at(&c, s) != v << s->shift) fail_msg("%s = %lld stored %lld", s->name, v, number_at(&c, s));
            config_free(&c);
            v = edge ? s->max + 1 : s->min - 1;
            assert_int_equal(load_one_int(s->name, (int)v, &c, err, sizeof(err)), -1);
            if (!strstr(err, s->name) || !strstr(err, "out of range")) fail_msg("%s = %lld: \"%s\"", s->name, v, err);
            config_free(&c);
        }
    }
    assert_true(n >= 20);
}

/* Every setting written at its default loads, and gives what no file gives:
 * the table's defaults are in range, pass their checks, and the loader
 * reads every row. */
static void test_every_setting_at_its_default_loads(void **state) {
    (void)state;
    callbus_config want, got;
    char err[512] = "";
    assert_int_equal(config_load(&want, NULL, err, sizeof(err)), 0);
    config_t cf;
    config_init(&cf);
    for (const callbus_setting *s = config_settings; s->name; s++) {
        const char *text = (const char *)&want + s->offset;
        switch (s->type) {
        case CONFIG_STRING: config_setting_set_string(add_at(&cf, s->name, CONFIG_TYPE_STRING), text); break;
        case CONFIG_INT:
            config_setting_set_int(add_at(&cf, s->name, CONFIG_TYPE_INT), (int)s->number_default);
            break;
        case CONFIG_BOOL: config_setting_set_bool(add_at(&cf, s->name, CONFIG_TYPE_BOOL), (int)s->number_default); break;
        case CONFIG_STRINGS: {
            config_setting_t *list = add_at(&cf, s->name, CONFIG_TYPE_ARRAY);
            for (size_t i = 0; s->list_default[i]; i++)
                config_setting_set_string_elem(list, -1, s->list_default[i]);
            break;
        }
        case CONFIG_FILE: case CONFIG_CUSTOM: break;  /* no default value; tested on their own */
        }
    }
    write_tree(&cf);
    if (config_load(&got, path, err, sizeof(err)) != 0) fail_msg("%s", err);
    unlink(path);
    for (const callbus_setting *s = config_settings; s->name; s++) {
        const char *a = (const char *)&want + s->offset, *b = (const char *)&got + s->offset;
        if (s->type == CONFIG_STRINGS) {
            size_t n = *(const size_t *)((const char *)&want + s->count_offset);
            assert_int_equal(n, *(const size_t *)((const char *)&got + s->count_offset));
            for (size_t i = 0; i < n; i++) assert_string_equal((*(char *const *const *)a)[i], (*(char *const *const *)b)[i]);
        } else if (s->type != CONFIG_CUSTOM && memcmp(a, b, s->size)) {
            fail_msg("%s differs from its default", s->name);
        }
    }
    config_free(&want);
    config_free(&got);
}

/* A misspelt name would leave the default running where a change was meant:
 * refused, with the line, before anything else is read. */
static void test_unknown_settings_are_refused(void **state) {
    (void)state;
    expect_error("sitee = \"riga\";", ":1: unknown setting sitee");
    expect_error("site = \"riga\";\nagent: {\n  ami: { prot = 5039; };\n};", ":3: unknown setting agent.ami.prot");
    expect_error("agnet: { id = \"a\"; };", "unknown setting agnet");
    expect_error("commands: { enable = false; };", "unknown setting commands.enable");
    expect_error("gateway: { max_frames = 1024; };", "unknown setting gateway.max_frames");
    expect_error("agent = \"a1\";", "setting agent must be a group");
    expect_error("agent: { ami = 5038; };", "setting agent.ami must be a group");
    expect_error("operators = ( { id = \"a\"; interface = \"PJSIP/1\"; nmae = \"A\"; } );",
                 "operators[0].nmae is not a setting");
    /* One file configures a site: the agent's loader knows the gateway's settings. */
    write_conf("gateway: { max_frame = 1024; };\nagent: { id = \"a\"; };");
    callbus_config c;
    char err[256];
    assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
    assert_int_equal(c.gateway.max_frame, 1024);
    config_free(&c);
    unlink(path);
}

static void test_bad_types_are_refused(void **state) {
    (void)state;
    expect_error("site = 5;", "setting site must be a string");
    expect_error("site = \"a-very-long-site-name-that-is-longer-than-sixty-three-bytes-in-all-of-it\";",
                 "setting site is too long (max 63)");
    expect_error("agent: { ami: { port = 5038.0; }; };", "setting agent.ami.port must be an integer");
    expect_error("gateway: { history = true; };", "setting gateway.history must be an integer");
    expect_error("agent: { ami: { secret_file = 3; }; };", "setting agent.ami.secret_file must be a string");
    expect_error("gateway: { origins = \"https://crm\"; };", "setting gateway.origins must be a list of strings");
    expect_error("commands: { allowed_contexts = [ 1 ]; };", "commands.allowed_contexts[0] must be a string");
    expect_error("kafka = \"bootstrap.servers=x\";", "setting kafka must be a list");
    expect_error("kafka = [ 9092 ];", "kafka[0] must be a \"name=value\" string");
    expect_error("operators = \"alice\";", "setting operators must be a list of groups");
    expect_error("operators = ( \"alice\" );", "operators[0] needs id and interface strings");
}

/* The checks a type cannot say: alphabets, names, pairs and patterns. */
static void test_checks_beyond_types(void **state) {
    (void)state;
    expect_error("topic_prefix = \"call.bus\";", "topic_prefix \"call.bus\" may hold only");
    expect_error("agent: { id = \"a/1\"; };", "agent.id \"a/1\" may hold only");
    expect_error("gateway: { id = \"\"; };", "gateway.id \"\" may hold only");
    expect_error("log_level = \"loud\";", "log_level \"loud\" must be debug, info, warn or error");
    expect_error("gateway: { jwt_alg = \"none\"; };", "gateway.jwt_alg must be \"HS256\" or \"RS256\"");
    expect_error("gateway: { tls_cert = \"/c.pem\"; };", "gateway.tls_cert and gateway.tls_key go together");
    expect_error("gateway: { tls_key = \"/k.pem\"; };", "gateway.tls_cert and gateway.tls_key go together");
    expect_error("gateway: { listen = \"8080\"; };", "gateway.listen must be \"host:port\"");
    expect_error("commands: { operator_phone = \"PJSIP/%s/%s\"; };", "commands.operator_phone must contain %s");
    expect_error("commands: { transfer_patterns = [ \"[0-9\" ]; };", "commands.transfer_patterns[0] \"[0-9\"");
}

/* secret_file wins over secret wherever each stands in the file. */
static void test_secret_file_wins(void **state) {
    (void)state;
    expect_secret("fromfile\r\n", "agent: { ami: { secret_file = \"%s\"; secret = \"inline\"; }; };", "fromfile");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_errors_are_clear),
        cmocka_unit_test(test_state_settings), cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_switches_can_be_turned_off),
        cmocka_unit_test(test_every_integer_is_range_checked),
        cmocka_unit_test(test_every_setting_at_its_default_loads),
        cmocka_unit_test(test_unknown_settings_are_refused),
        cmocka_unit_test(test_bad_types_are_refused),
        cmocka_unit_test(test_checks_beyond_types),
        cmocka_unit_test(test_secret_file_wins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
