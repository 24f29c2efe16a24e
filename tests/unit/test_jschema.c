/* test_jschema.c -- the JSON Schema validator behind `callbus check`: every
 * example in schemas/ passes, broken messages fail at the right place, and
 * a schema with a keyword the validator does not know is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jschema.h"

#ifndef FIXTURES
#define FIXTURES "tests/fixtures"
#endif
#define SCHEMAS FIXTURES "/../../schemas"

typedef struct seen {
    int n;
    char pointers[16][256];
    char reasons[16][512];
} seen;

static void collect(void *ud, const char *pointer, const char *reason) {
    seen *s = ud;
    if (s->n < 16) {
        snprintf(s->pointers[s->n], 256, "%s", pointer);
        snprintf(s->reasons[s->n], 512, "%s", reason);
    }
    s->n++;
}

static jschema_set *load(void) {
    char err[512];
    jschema_set *s = jschema_load_dir(SCHEMAS, err, sizeof(err));
    if (!s) fail_msg("load: %s", err);
    return s;
}

static void test_examples_pass(void **state) {
    (void)state;
    jschema_set *s = load();
    assert_int_equal(jschema_type_count(s), 30);
    const char *names[] = {"callbus.call.ended", "callbus.ami.event", "callbus.command.originate",
                           "callbus.result", "callbus.agent.gap", "cloudevent", NULL};
    int checked = 0;
    for (int i = 0; names[i]; i++) {
        char path[512];
        snprintf(path, sizeof(path), SCHEMAS "/%s.schema.json", names[i]);
        json_t *doc = json_load_file(path, 0, NULL);
        assert_non_null(doc);
        size_t k;
        json_t *ex;
        json_array_foreach(json_object_get(doc, "examples"), k, ex) {
            seen got = {0};
            assert_int_equal(jschema_validate_message(s, ex, collect, &got), 0);
            checked++;
        }
        json_decref(doc);
    }
    assert_true(checked >= 6);
    jschema_free(s);
}

/* The first example of a schema, to break. */
static json_t *example(const char *name) {
    char path[512];
    snprintf(path, sizeof(path), SCHEMAS "/%s.schema.json", name);
    json_t *doc = json_load_file(path, 0, NULL);
    json_t *ex = json_deep_copy(json_array_get(json_object_get(doc, "examples"), 0));
    json_decref(doc);
    return ex;
}

static seen check(jschema_set *s, json_t *msg) {
    seen got = {0};
    int n = jschema_validate_message(s, msg, collect, &got);
    assert_int_equal(n, got.n);
    json_decref(msg);
    return got;
}

static void test_broken_messages(void **state) {
    (void)state;
    jschema_set *s = load();
    json_t *m = example("callbus.call.ended");
    json_object_set_new(json_object_get(m, "data"), "disposition", json_string("lost"));
    seen g = check(s, m);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.pointers[0], "/data/disposition");
    assert_non_null(strstr(g.reasons[0], "is not one of"));

    m = example("callbus.call.ended");
    json_object_del(json_object_get(m, "data"), "ended_at");
    g = check(s, m);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.pointers[0], "/data");
    assert_non_null(strstr(g.reasons[0], "\"ended_at\" is a required property"));

    /* anyOf (operator id or null) fails at the value, with both reasons. */
    m = example("callbus.call.ended");
    json_object_set_new(json_object_get(m, "data"), "answered_by", json_string("op 101"));
    g = check(s, m);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.pointers[0], "/data/answered_by");
    assert_non_null(strstr(g.reasons[0], "anyOf"));

    /* Integer-valued reals are integers (2020-12); 1.5 is not. */
    m = example("callbus.call.ended");
    json_object_set_new(json_object_get(m, "data"), "hangup_cause", json_real(16.0));
    assert_int_equal(check(s, m).n, 0);
    m = example("callbus.call.ended");
    json_object_set_new(json_object_get(m, "data"), "hangup_cause", json_real(16.5));
    assert_string_equal(check(s, m).pointers[0], "/data/hangup_cause");

    /* The id must agree with seq; the date must exist. */
    m = example("callbus.call.ended");
    json_object_set_new(m, "seq", json_integer(20));
    g = check(s, m);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.pointers[0], "/id");
    m = example("callbus.call.ended");
    json_object_set_new(m, "time", json_string("2026-02-30T05:19:16Z"));
    g = check(s, m);
    assert_string_equal(g.pointers[0], "/time");
    assert_non_null(strstr(g.reasons[0], "date-time"));

    /* header_pair: exactly two strings (prefixItems, items: false). */
    m = example("callbus.ami.event");
    json_t *pair = json_array_get(json_object_get(json_object_get(m, "data"), "headers"), 1);
    json_array_append_new(pair, json_string("third"));
    g = check(s, m);
    assert_int_equal(g.n, 2);  /* items false + maxItems */
    assert_string_equal(g.pointers[0], "/data/headers/1");

    /* Extra attribute names must be lower-case (propertyNames). */
    m = example("callbus.call.ended");
    json_object_set_new(m, "Extra", json_true());
    g = check(s, m);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.pointers[0], "");
    assert_non_null(strstr(g.reasons[0], "property name \"Extra\""));

    /* Unknown type, not an object. */
    m = example("callbus.call.ended");
    json_object_set_new(m, "type", json_string("callbus.call.lost"));
    assert_string_equal(check(s, m).pointers[0], "/type");
    g = check(s, json_integer(3));
    assert_int_equal(g.n, 1);
    jschema_free(s);
}

/* ECMA-262: $ is the end of the string, not "before a final newline" as in
 * Python's re, so a trailing LF never passes a no-control-characters rule. */
static void test_dollar_is_end_of_string(void **state) {
    (void)state;
    jschema_set *s = load();
    json_t *m = example("callbus.command.pause");
    json_object_set_new(json_object_get(m, "data"), "reason", json_string("lunch\n"));
    seen g = check(s, m);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.pointers[0], "/data/reason");
    jschema_free(s);
}

static char *schema_dir(const char *name, const char *text) {
    char *dir = strdup("/tmp/jschema-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return dir;
}

static void remove_dir(char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
    rmdir(dir);
    free(dir);
}

static void refuses(const char *text, const char *why) {
    char err[512] = "";
    char *dir = schema_dir("x.schema.json", text);
    jschema_set *s = jschema_load_dir(dir, err, sizeof(err));
    assert_null(s);
    if (!strstr(err, why)) fail_msg("error \"%s\" lacks \"%s\"", err, why);
    remove_dir(dir, "x.schema.json");
}

/* minLength and maxLength count characters, not bytes. */
static void test_length_in_characters(void **state) {
    (void)state;
    char err[512];
    char *dir = schema_dir("x.schema.json", "{\"minLength\":2,\"maxLength\":2}");
    jschema_set *s = jschema_load_dir(dir, err, sizeof(err));
    assert_non_null(s);
    json_t *one = json_string("\xc3\xa4"), *two = json_string("\xc3\xa4\xc3\xa4");
    assert_int_equal(jschema_validate(s, "x", one, NULL, NULL), 1);
    assert_int_equal(jschema_validate(s, "x", two, NULL, NULL), 0);
    assert_int_equal(jschema_validate(s, "nope", two, NULL, NULL), -1);
    json_decref(one);
    json_decref(two);
    jschema_free(s);
    remove_dir(dir, "x.schema.json");
}

static void test_unknown_keywords_refused(void **state) {
    (void)state;
    refuses("{\"type\":\"object\",\"unevaluatedProperties\":false}", "keyword \"unevaluatedProperties\" is not implemented");
    refuses("{\"properties\":{\"a\":{\"uniqueItems\":true}}}", "/properties/a");
    refuses("{\"format\":\"email\"}", "format \"email\" is not implemented");
    refuses("{\"$ref\":\"missing.schema.json\"}", "$ref missing.schema.json does not resolve");
    refuses("{\"$ref\":\"#/$defs/nope\"}", "does not resolve");
    refuses("{\"pattern\":\"(\"}", "pattern (");
    refuses("{\"type\":\"text\"}", "unknown type text");
    refuses("{\"type\":", "x.schema.json:1");
    char err[512];
    assert_null(jschema_load_dir("/nonexistent-schemas", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent-schemas"));
}

static void test_datetime(void **state) {
    (void)state;
    assert_true(jschema_is_datetime("2026-11-26T05:17:42.907184Z"));
    assert_true(jschema_is_datetime("2024-02-29t05:17:42+03:00"));
    assert_false(jschema_is_datetime("2026-02-29T05:17:42Z"));
    assert_false(jschema_is_datetime("2026-11-26T24:00:00Z"));
    assert_false(jschema_is_datetime("2026-11-26T05:17:42"));
    assert_false(jschema_is_datetime("2026-11-26 05:17:42Z"));
    assert_false(jschema_is_datetime("2026-11-26T05:17:42.Z"));
    assert_false(jschema_is_datetime("2026-11-26T05:17:42+24:00"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_pass),
        cmocka_unit_test(test_broken_messages),
        cmocka_unit_test(test_dollar_is_end_of_string),
        cmocka_unit_test(test_length_in_characters),
        cmocka_unit_test(test_unknown_keywords_refused),
        cmocka_unit_test(test_datetime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
